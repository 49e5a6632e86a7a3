"""Build one layer from inline prototxt and check its backward by finite differences.

Mirrors Caffe's GradientChecker (include/caffe/test/test_gradient_check_util.hpp):
central differences in float64 on every bottom and every param, compared with
the layer's explicit backward, relative to max(|analytic|, |numeric|, 1).
The objective is a fixed random weighting of every top, so one backward checks
the whole Jacobian-vector product.
"""

import torch
from google.protobuf import text_format

from reference_engine import caffe_pb2
from reference_engine.blob import Blob
from reference_engine.layer import layer_class

PHASES = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST}


def make_layer(prototxt: str, bottom_values, phase="TRAIN", num_tops=1, dtype=torch.float64):
    """Set up a layer on bottoms holding ``bottom_values``; returns (layer, bottom, top)."""
    param = text_format.Parse(prototxt, caffe_pb2.LayerParameter())
    layer = layer_class(param.type)(param, PHASES[phase], dtype, "cpu")
    bottom = []
    for value in bottom_values:
        value = torch.as_tensor(value, dtype=dtype)
        blob = Blob(value.shape, dtype=dtype)
        blob.data.copy_(value)
        bottom.append(blob)
    top = [Blob((), dtype=dtype) for _ in range(num_tops)]
    layer.setup(bottom, top)
    return layer, bottom, top


def run_forward(layer, bottom, top):
    layer.forward_layer(bottom, top)
    return [t.data.clone() for t in top]


def check_gradients(layer, bottom, top, check_bottom=None, step=1e-3, threshold=1e-3, seed=1701):
    """Assert that backward matches central differences for the bottoms in ``check_bottom``
    (default: all) and for every param blob."""
    check_bottom = list(range(len(bottom))) if check_bottom is None else list(check_bottom)
    generator = torch.Generator().manual_seed(seed)
    layer.forward_layer(bottom, top)
    weights = [torch.randn(t.data.shape, generator=generator, dtype=t.data.dtype) for t in top]

    def objective():
        layer.forward_layer(bottom, top)
        return sum(float((t.data * w).sum()) for t, w in zip(top, weights))

    objective()
    for t, w in zip(top, weights):
        t.diff.copy_(w)
    for p in layer.blobs:
        p.diff.zero_()
    if not layer.param_propagate_down:
        layer.param_propagate_down = [True] * len(layer.blobs)
    propagate_down = [i in check_bottom for i in range(len(bottom))]
    layer.backward(top, propagate_down, bottom)
    analytic = [("bottom", i, bottom[i].diff.clone()) for i in check_bottom]
    analytic += [("param", j, p.diff.clone()) for j, p in enumerate(layer.blobs)]

    for kind, index, expected in analytic:
        blob = bottom[index] if kind == "bottom" else layer.blobs[index]
        flat = blob.data.view(-1)
        for e in range(flat.numel()):
            saved = float(flat[e])
            flat[e] = saved + step
            plus = objective()
            flat[e] = saved - step
            minus = objective()
            flat[e] = saved
            numeric = (plus - minus) / (2 * step)
            got = float(expected.view(-1)[e])
            scale = max(abs(got), abs(numeric), 1.0)
            assert abs(got - numeric) <= threshold * scale, (
                f"{layer.type} {kind} {index} element {e}: backward={got:.6g} finite difference={numeric:.6g}"
            )
