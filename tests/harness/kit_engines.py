"""Engines built with the adapter kit (harness/engines/kit.py): a handful of Caffe's layer types
and SGD written on torch, as a reimplementation's author would write them (docs/engines.md shows
ExampleEngine whole), and the same engine with one wrong rule planted.

    caffe-conformance fuzz --engine tests.harness.kit_engines:ExampleEngine --against caffe
"""

from __future__ import annotations

import math

import numpy as np
import torch

from harness.capabilities import Capabilities
from harness.engines.kit import TorchEngine, Unsupported
from reference_engine import caffe_pb2
from reference_engine.checks import CaffeError

LOG_FLT_MIN = math.log(np.finfo(np.float32).tiny)  # SoftmaxWithLoss takes log(max(p, FLT_MIN))
LossParameter = caffe_pb2.LossParameter


def inner_product(layer, bottom, params):
    """y = x W^T + b over the axes from ``axis`` on (x W with transpose: W is then K x N)."""
    p = layer.inner_product_param
    x = bottom[0]
    axis = p.axis % x.dim()
    rows = x.reshape(math.prod(x.shape[:axis]), -1)
    y = rows @ (params[0] if p.transpose else params[0].T)
    if p.bias_term:
        y = y + params[1]
    return [y.reshape(*x.shape[:axis], p.num_output)]


def relu(layer, bottom, params):
    """max(x, 0) + negative_slope min(x, 0). leaky_relu's backward tests x > 0 on the bottom
    as Backward finds it, as Caffe's does (the slope's gradient at 0, too)."""
    return [torch.nn.functional.leaky_relu(bottom[0], layer.relu_param.negative_slope)]


def sigmoid(layer, bottom, params):
    """Its backward reads the top, y (1 - y), as Caffe's does."""
    return [torch.sigmoid(bottom[0])]


def tanh(layer, bottom, params):
    """Its backward reads the top, 1 - y^2, as Caffe's does."""
    return [torch.tanh(bottom[0])]


def eltwise(layer, bottom, params):
    """SUM (with a coeff per bottom), PROD, or MAX, where bottom 0 wins only when strictly
    greater than bottom 1 and each later bottom only when strictly greater than the maximum."""
    p, E = layer.eltwise_param, caffe_pb2.EltwiseParameter
    if p.operation == E.PROD:
        top = bottom[0]
        for x in bottom[1:]:
            top = top * x
    elif p.operation == E.SUM:
        top = torch.zeros_like(bottom[0])
        for coeff, x in zip(p.coeff or [1.0] * len(bottom), bottom):
            top = top + coeff * x
    else:
        top = torch.where(bottom[0] > bottom[1], bottom[0], bottom[1])
        for x in bottom[2:]:
            top = torch.where(x > top, x, top)
    return [top]


def euclidean_loss(layer, bottom, params):
    """sum((a - b)^2) / num / 2, num being the first axis."""
    difference = bottom[0] - bottom[1]
    return [(difference * difference).sum() / bottom[0].shape[0] / 2]


def softmax_with_loss(layer, bottom, params):
    """-sum of log(max(p_label, FLT_MIN)) over the labels not ignored, over the normalizer."""
    scores, label = bottom
    axis = layer.softmax_param.axis % scores.dim()
    outer, classes = math.prod(scores.shape[:axis]), scores.shape[axis]
    log_p = torch.log_softmax(scores.reshape(outer, classes, -1), dim=1).clamp_min(LOG_FLT_MIN)
    labels = label.reshape(outer, -1).long()  # Caffe reads a label as static_cast<int>
    loss_param = layer.loss_param
    valid = torch.ones_like(labels, dtype=torch.bool)
    if loss_param.HasField("ignore_label"):
        valid = labels != loss_param.ignore_label
    picked = log_p.gather(1, torch.where(valid, labels, 0).unsqueeze(1)).squeeze(1)
    total = -torch.where(valid, picked, 0.0).sum()
    mode = loss_param.normalization
    if not loss_param.HasField("normalization") and loss_param.HasField("normalize"):
        mode = LossParameter.VALID if loss_param.normalize else LossParameter.BATCH_SIZE
    normalizer = {
        LossParameter.FULL: labels.numel(),
        LossParameter.VALID: int(valid.sum()),
        LossParameter.BATCH_SIZE: outer,
        LossParameter.NONE: 1,
    }[mode]
    return [total / max(1, normalizer)]


LAYERS = {
    "InnerProduct": inner_product,
    "ReLU": relu,
    "Sigmoid": sigmoid,
    "TanH": tanh,
    "Eltwise": eltwise,
    "EuclideanLoss": euclidean_loss,
    "SoftmaxWithLoss": softmax_with_loss,
}


def learning_rate(solver, iteration: int) -> np.float32:
    """SGDSolver::GetLearningRate for "fixed" and "step" (gamma^k in double, stored in float)."""
    if solver.lr_policy == "fixed":
        return np.float32(solver.base_lr)
    if solver.lr_policy == "step":
        return np.float32(solver.base_lr * solver.gamma ** (iteration // solver.stepsize))
    raise CaffeError(f"Unknown learning rate policy: {solver.lr_policy}")


def clip_gradients(params, clip: float):
    """Scale every diff by clip / L where the L2 norm L of all the diffs together exceeds it."""
    if clip < 0:
        return
    norm = np.sqrt(sum(np.float32(torch.dot(p.diff.flatten(), p.diff.flatten())) for p in params))
    if norm > clip:
        for p in params:
            p.diff.mul_(float(np.float32(clip) / np.float32(norm)))


class ExampleEngine(TorchEngine):
    """Seven layer types and SGD on torch; the kit does the net, the backward and the loop."""

    name = "torch-example"
    capabilities = Capabilities(
        layer_types={*LAYERS, "Split"},  # the kit runs Split layers itself
        solver_types={"SGD"},
        lr_policies={"fixed", "step"},
    )
    layers = LAYERS

    def forward(self, layer, bottom, params):
        if layer.type not in self.layers:
            raise Unsupported(f"layer type {layer.type}")
        return self.layers[layer.type](layer, bottom, params)

    def apply_update(self, params, solver, iteration):
        """SGDSolver::ApplyUpdate: the rate, clipping, then per param normalize, regularize and
        h = momentum h + local_rate diff; data -= h (sgd_solver.cpp)."""
        rate = learning_rate(solver, iteration)
        clip_gradients(params, solver.clip_gradients)
        for p in params:
            if solver.iter_size != 1:
                p.diff.mul_(float(np.float32(1) / np.float32(solver.iter_size)))
            local_decay = np.float32(solver.weight_decay) * np.float32(p.decay_mult)
            if local_decay:
                if solver.regularization_type == "L2":
                    p.diff.add_(p.data, alpha=float(local_decay))
                elif solver.regularization_type == "L1":
                    # caffe_cpu_sign is (0 < x) - (x < 0): 0 at 0, and at NaN too.
                    sign = (p.data > 0).to(p.data.dtype) - (p.data < 0).to(p.data.dtype)
                    p.diff.add_(sign, alpha=float(local_decay))
                else:
                    raise CaffeError(f"Unknown regularization type: {solver.regularization_type}")
            local_rate = float(rate * np.float32(p.lr_mult))
            history = p.history.setdefault("momentum", torch.zeros_like(p.data))
            # caffe_cpu_axpby skips an operand whose coefficient is 0 (docs/semantics.md §8.1).
            momentum = np.float32(solver.momentum)
            if momentum:
                history.mul_(float(momentum))
            else:
                history.zero_()
            if local_rate:
                history.add_(p.diff, alpha=local_rate)
            p.data.sub_(history)


def relu_ignoring_negative_slope(layer, bottom, params):
    """The planted bug: a leaky ReLU computed as a plain one."""
    return [torch.relu(bottom[0])]


SLOPE_BUG_LAYERS = {**LAYERS, "ReLU": relu_ignoring_negative_slope}


class IgnoresNegativeSlope(ExampleEngine):
    """ExampleEngine with one wrong rule: ReLU's negative_slope ignored."""

    name = "torch-example-slope-bug"
    layers = SLOPE_BUG_LAYERS
