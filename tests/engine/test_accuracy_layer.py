"""Accuracy: a port of src/caffe/test/test_accuracy_layer.cpp, plus ties under master and 1.0."""

import math

import pytest
import torch
from google.protobuf import text_format
from layer_testing import make_layer, run_forward

from reference_engine import caffe_pb2
from reference_engine.blob import Blob
from reference_engine.checks import CaffeError
from reference_engine.layer import layer_class
from reference_engine.semantics import CAFFE_1_0, MASTER


def accuracy(prototxt, scores, labels, semantics=MASTER, num_tops=1):
    param = text_format.Parse(prototxt, caffe_pb2.LayerParameter())
    layer = layer_class("Accuracy")(param, caffe_pb2.TEST, torch.float64, "cpu", semantics=semantics)
    bottom = []
    for value in (scores, labels):
        value = torch.as_tensor(value, dtype=torch.float64)
        bottom.append(Blob(value.shape, dtype=torch.float64))
        bottom[-1].data.copy_(value)
    top = [Blob((), dtype=torch.float64) for _ in range(num_tops)]
    layer.setup(bottom, top)
    return layer, bottom, top, run_forward(layer, bottom, top)


def reference_top_k(scores, labels, k):
    ranked = scores.argsort(dim=1, descending=True)[:, :k]
    return (ranked == labels.long()[:, None]).any(1)


@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_forward_top_k(top_k):
    scores = torch.randn((20, 6), generator=torch.Generator().manual_seed(1701), dtype=torch.float64)
    labels = torch.randint(0, 6, (20,), generator=torch.Generator().manual_seed(7)).to(torch.float64)
    _, _, _, (acc,) = accuracy(f'type: "Accuracy" accuracy_param {{ top_k: {top_k} }}', scores, labels)
    assert acc.item() == pytest.approx(reference_top_k(scores, labels, top_k).double().mean().item())


def test_axis_ignore_label_and_per_class_top():
    scores = torch.randn((2, 3, 5), generator=torch.Generator().manual_seed(1701), dtype=torch.float64)
    labels = torch.randint(0, 5, (2, 3), generator=torch.Generator().manual_seed(7)).to(torch.float64)
    labels[0, 0] = labels[1, 2] = 3.0
    _, _, top, (acc, per_class) = accuracy(
        'type: "Accuracy" accuracy_param { axis: 2 ignore_label: 3 }', scores, labels, num_tops=2
    )
    flat_scores, flat_labels = scores.reshape(-1, 5), labels.reshape(-1)
    keep = flat_labels != 3
    hits = reference_top_k(flat_scores, flat_labels, 1)
    assert acc.item() == pytest.approx(hits[keep].double().mean().item())
    assert top[1].shape == [5]
    for c in range(5):
        of_c = keep & (flat_labels == c)
        want = hits[of_c].double().mean().item() if of_c.any() else 0.0
        assert per_class[c].item() == pytest.approx(want)


def test_ties_count_against_the_sample_in_master_but_rank_by_index_in_1_0():
    scores = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    labels = torch.tensor([0.0, 1.0])
    # master: the other tied class scores >= the true one, so neither is a top-1 hit.
    assert accuracy('type: "Accuracy"', scores, labels)[3][0].item() == 0.0
    # 1.0: partial_sort on (score, index) with std::greater puts index 1 ahead of index 0.
    assert accuracy('type: "Accuracy"', scores, labels, semantics=CAFFE_1_0)[3][0].item() == 0.5


def test_all_ignored_gives_zero_in_master_and_nan_in_1_0():
    scores, labels = torch.ones(2, 3), torch.zeros(2)
    proto = 'type: "Accuracy" accuracy_param { ignore_label: 0 }'
    assert accuracy(proto, scores, labels)[3][0].item() == 0.0
    assert math.isnan(accuracy(proto, scores, labels, semantics=CAFFE_1_0)[3][0].item())


def test_top_k_beyond_the_classes_is_refused():
    with pytest.raises(
        CaffeError,
        match=r"^Check failed: top_k_ <= bottom\[0\]->count\(\) / bottom\[1\]->count\(\) "
        r"\(4 vs\. 3\) top_k must be less than or equal to the number of classes\.$",
    ):
        accuracy('type: "Accuracy" accuracy_param { top_k: 4 }', torch.ones(2, 3), torch.zeros(2))


def test_backward_is_not_implemented_when_asked_for():
    layer, bottom, top, _ = accuracy('type: "Accuracy"', torch.ones(2, 3), torch.zeros(2))
    layer.backward(top, [False, False], bottom)  # nothing asked: nothing happens
    with pytest.raises(CaffeError, match="^Not Implemented Yet$"):
        layer.backward(top, [True, False], bottom)


def test_make_layer_shape():
    _layer, _bottom, top = make_layer('type: "Accuracy"', [torch.ones(2, 3), torch.zeros(2)], phase="TEST")
    assert top[0].shape == []
