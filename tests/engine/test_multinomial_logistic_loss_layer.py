"""MultinomialLogisticLoss: a port of src/caffe/test/test_multinomial_logistic_loss_layer.cpp."""

import math

import pytest
import torch
from layer_testing import check_gradients, make_layer, run_forward

from reference_engine.checks import CaffeError


def probabilities(num=4, classes=5, seed=1701):
    u = torch.rand((num, classes), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return 0.1 + u  # away from the 1e-20 floor, as Caffe's test uses a positive filler


def labels(num=4, classes=5, seed=7):
    return torch.randint(0, classes, (num, 1, 1, 1), generator=torch.Generator().manual_seed(seed)).to(
        torch.float64
    )


def test_forward_and_gradient():
    p, y = probabilities(), labels()
    layer, bottom, top = make_layer('type: "MultinomialLogisticLoss"', [p, y])
    (loss,) = run_forward(layer, bottom, top)
    torch.testing.assert_close(loss, -torch.log(p[torch.arange(4), y.reshape(-1).long()]).sum() / 4)
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_probability_is_floored_at_log_threshold():
    p = torch.zeros(1, 3, dtype=torch.float64)
    layer, bottom, top = make_layer('type: "MultinomialLogisticLoss"', [p, torch.zeros(1, 1)])
    (loss,) = run_forward(layer, bottom, top)
    floor = float(torch.tensor(1e-20, dtype=torch.float32))  # kLOG_THRESHOLD is a C++ float
    assert loss.item() == -math.log(floor)
    top[0].diff.fill_(2.0)
    layer.backward(top, [True, False], bottom)
    assert bottom[0].diff.tolist() == [[-2.0 / floor, 0.0, 0.0]]


def test_label_blob_must_be_one_value_per_sample():
    with pytest.raises(CaffeError, match=r"^Check failed: bottom\[1\]->channels\(\) == 1 \(2 vs\. 1\) $"):
        make_layer('type: "MultinomialLogisticLoss"', [probabilities(), torch.zeros(4, 2)])


def test_cannot_backpropagate_to_labels():
    layer, bottom, top = make_layer('type: "MultinomialLogisticLoss"', [probabilities(), labels()])
    run_forward(layer, bottom, top)
    with pytest.raises(CaffeError) as error:
        layer.backward(top, [True, True], bottom)
    assert error.value.message == "MultinomialLogisticLoss Layer cannot backpropagate to label inputs."
