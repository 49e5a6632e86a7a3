"""A fake train net with a hand-written quadratic loss, and a numpy reference for the solvers.

Allowed here because these tests claim nothing about Caffe: they check the solvers against the
formulas of docs/semantics.md §4 (src/caffe/solvers/*.cpp), computed by hand in float64 numpy.
"""

import numpy as np
import torch
from google.protobuf import text_format

from reference_engine import caffe_pb2
from reference_engine.blob import Blob


def solver_param(prototxt: str):
    return text_format.Parse(prototxt, caffe_pb2.SolverParameter())


class QuadraticNet:
    """Net interface of reference_engine/net.py over a fixed loss, per param k:

    loss_k = sum(0.5 * curvature * (p - target - drift * pass)^2 + linear * p),
    gradient = curvature * (p - target - drift * pass) + linear,

    where ``pass`` counts forward_backward calls, so the iter_size passes of one iteration see
    different "batches". Gradients accumulate into the diff as Caffe's layers do, and a param
    with lr_mult 0 gets none (param_propagate_down is false, net.cpp Net::Init).
    """

    def __init__(
        self,
        values,
        lr_mults=None,
        decay_mults=None,
        curvature=1.0,
        target=0.5,
        drift=0.0,
        linear=0.0,
        dtype=torch.float64,
    ):
        values = [np.asarray(v, dtype=np.float64) for v in values]
        self.learnable_params = []
        for v in values:
            blob = Blob(v.shape, dtype=dtype)
            blob.data.copy_(torch.as_tensor(v))
            self.learnable_params.append(blob)
        self.params_lr = list(lr_mults or [1.0] * len(values))
        self.params_weight_decay = list(decay_mults or [1.0] * len(values))
        self.curvature, self.target, self.drift, self.linear = curvature, target, drift, linear
        self.passes = 0
        self.calls = []

    def loss_and_gradient(self, k, value, pass_index):
        centred = value - self.target - self.drift * pass_index
        loss = float(np.sum(0.5 * self.curvature * centred**2 + self.linear * value))
        return loss, self.curvature * centred + self.linear

    def forward_backward(self) -> float:
        self.calls.append("forward_backward")
        total = 0.0
        for k, blob in enumerate(self.learnable_params):
            loss, gradient = self.loss_and_gradient(k, blob.data.double().numpy(), self.passes)
            total += loss
            if self.params_lr[k] != 0:
                blob.diff.add_(torch.as_tensor(gradient, dtype=blob.diff.dtype))
        self.passes += 1
        return total

    def clear_param_diffs(self):
        self.calls.append("clear_param_diffs")
        for blob in self.learnable_params:
            blob.diff.zero_()

    def update(self):
        self.calls.append("update")
        for blob in self.learnable_params:
            blob.update()

    def values(self):
        return [blob.data.double().numpy().copy() for blob in self.learnable_params]


def reference_train(param, net: QuadraticNet, iterations: int):
    """Run ``iterations`` of Caffe's Step/ApplyUpdate in numpy float64 on a copy of ``net``'s
    loss; returns (values, history, losses). Formulas from docs/semantics.md §4.2-§4.5."""
    values = net.values()
    n = len(values)
    history = [np.zeros_like(v) for _ in range(2) for v in values]
    passes, losses = 0, []
    for it in range(iterations):
        diffs = [np.zeros_like(v) for v in values]
        loss = 0.0
        for _ in range(param.iter_size):
            for k, v in enumerate(values):
                part, gradient = net.loss_and_gradient(k, v, passes)
                loss += part
                if net.params_lr[k] != 0:
                    diffs[k] += gradient
            passes += 1
        losses.append(loss / param.iter_size)
        rate = reference_rate(param, it)
        if param.clip_gradients >= 0:
            norm = np.sqrt(sum(np.sum(d * d) for d in diffs))
            if norm > param.clip_gradients:
                diffs = [d * (param.clip_gradients / norm) for d in diffs]
        for k, v in enumerate(values):
            g = diffs[k] / param.iter_size
            decay = param.weight_decay * net.params_weight_decay[k]
            g = g + decay * (v if param.regularization_type == "L2" else np.sign(v))
            lr = rate * net.params_lr[k]
            h, h2 = history[k], history[n + k]
            m, d, t = param.momentum, param.delta, it + 1
            if param.type == "SGD":
                h[...] = m * h + lr * g
                step = h.copy()
            elif param.type == "Nesterov":
                old = h.copy()
                h[...] = m * h + lr * g
                step = (1 + m) * h - m * old
            elif param.type == "AdaGrad":
                h[...] = h + g * g
                step = lr * g / (np.sqrt(h) + d)
            elif param.type == "RMSProp":
                r = param.rms_decay
                h[...] = (1 - r) * g * g + r * h
                step = lr * g / (np.sqrt(h) + d)
            elif param.type == "AdaDelta":
                h[...] = (1 - m) * g * g + m * h
                u = g * np.sqrt((h2 + d) / (h + d))
                h2[...] = (1 - m) * u * u + m * h2
                step = lr * u
            elif param.type == "Adam":
                b2 = param.momentum2
                h[...] = (1 - m) * g + m * h
                h2[...] = (1 - b2) * g * g + b2 * h2
                step = lr * np.sqrt(1 - b2**t) / (1 - m**t) * h / (np.sqrt(h2) + d)
            values[k] = v - step
    two_sets = param.type in ("AdaDelta", "Adam")
    return values, history if two_sets else history[:n], losses


def reference_rate(param, it):
    """The lr policies of docs/semantics.md §4.3 in float64 (multistep replayed from iter 0)."""
    p = param
    if p.lr_policy == "fixed":
        return p.base_lr
    if p.lr_policy == "step":
        return p.base_lr * p.gamma ** (it // p.stepsize)
    if p.lr_policy == "exp":
        return p.base_lr * p.gamma**it
    if p.lr_policy == "inv":
        return p.base_lr * (1 + p.gamma * it) ** (-p.power)
    if p.lr_policy == "multistep":
        return p.base_lr * p.gamma ** sum(1 for s in p.stepvalue if it >= s)
    if p.lr_policy == "poly":
        return p.base_lr * (1 - it / p.max_iter) ** p.power
    if p.lr_policy == "sigmoid":
        return p.base_lr / (1 + np.exp(-p.gamma * (it - p.stepsize)))
    raise AssertionError(p.lr_policy)
