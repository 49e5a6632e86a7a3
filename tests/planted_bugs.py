"""Realistic Caffe-semantics mistakes, planted in the reference engine to measure the harness.

Each plant is a context manager that swaps one rule of the reference engine for a
wrong one while it is active; ``PlantedEngine`` activates it only inside its own
``run``, so an oracle in the same process is untouched. They live under tests/ so
that nothing outside the tests can switch them on.
"""

from __future__ import annotations

import contextlib
from unittest import mock

import torch

from harness.engines.reference import ReferenceEngine
from reference_engine import caffe_pb2, topology
from reference_engine.layer import Layer
from reference_engine.layers import eltwise, inner_product, pooling, relu, sigmoid, softmax_loss, split
from reference_engine.layers.concat import ConcatLayer
from reference_engine.layers.euclidean_loss import EuclideanLossLayer
from reference_engine.layers.loss import LossLayer
from reference_engine.solvers import lr_policies, sgd
from reference_engine.solvers.adam import AdamSolver
from reference_engine.solvers.nesterov import NesterovSolver

PLANTS = {}


def plant(name: str):
    def register(factory):
        PLANTS[name] = factory
        return factory

    return register


class PlantedEngine:
    """The reference engine with one planted bug, active only while it runs a case."""

    def __init__(self, bug: str, inner: ReferenceEngine | None = None):
        self.bug = bug
        self.name = "reference"
        self.inner = inner or ReferenceEngine()

    def in_float32(self):
        """The same planted bug in float32: the precision triage must see it too."""
        return PlantedEngine(self.bug, self.inner.in_float32())

    def run(self, case):
        with PLANTS[self.bug]():
            return self.inner.run(case)

    def close(self):
        self.inner.close()


# ---- net semantics ----------------------------------------------------------------------


@plant("propagate_down ignored on multi-bottom layers")
def _():
    original = topology.LayerNode.propagate_down

    def ignored(node):
        return None if len(node.bottom_ids) > 1 else original.fget(node)

    return mock.patch.object(topology.LayerNode, "propagate_down", property(ignored))


@plant("force_backward ignores AllowForceBackward")
def _():
    return mock.patch.object(LossLayer, "allow_force_backward", classmethod(lambda cls, i: True))


@plant("split diffs overwritten instead of summed")
def _():
    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff.copy_(top[-1].diff)

    return mock.patch.object(split.SplitLayer, "backward", backward)


@plant("loss_weight ignored on a non-loss top")
def _():
    original = Layer.set_loss_weights

    def set_loss_weights(self, top):
        if not self.is_loss:
            del self.param.loss_weight[:]
        original(self, top)

    return mock.patch.object(Layer, "set_loss_weights", set_loss_weights)


@plant("shared-param multipliers taken from the sharer")
def _():
    original = topology._append_param

    def append(layers, node, own_param, p, *rest):
        entry = original(layers, node, own_param, p, *rest)
        if entry.owner >= 0:
            learnables = rest[-1]
            spec = own_param.param[p]
            learnables[entry.learnable].lr_mult = spec.lr_mult
            learnables[entry.learnable].decay_mult = spec.decay_mult
        return entry

    return mock.patch.object(topology, "_append_param", append)


# ---- layers -----------------------------------------------------------------------------


@plant("AVE pooling divisor without padding")
def _():
    def sizes(self, dtype):
        def extent(pooled, stride, pad, kernel, size):
            start = torch.arange(pooled, device=self.device) * stride - pad
            end = torch.clamp(start + kernel, max=size)
            return end - torch.clamp(start, min=0)

        hs = extent(self.pooled_height, self.stride_h, self.pad_h, self.kernel_h, self.height)
        ws = extent(self.pooled_width, self.stride_w, self.pad_w, self.kernel_w, self.width)
        return (hs[:, None] * ws[None, :]).to(dtype)

    return mock.patch.object(pooling.PoolingLayer, "_pool_sizes", sizes)


@plant("MAX pooling tie-breaking reversed")
def _():
    # The offset loop spells the rule out; torch's max_pool2d, which keeps it too, is bypassed.
    return _together(
        mock.patch.object(pooling.PoolingLayer, "_torch_max_pool_agrees", lambda self, x: False),
        _swap_source(
            pooling.PoolingLayer, "_max_pool_by_offsets", "(values > maximum)", "(values >= maximum)"
        ),
    )


@plant("ReLU negative_slope ignored in backward")
def _():
    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x = bottom[0].data
            bottom[0].diff.copy_(top[0].diff * (x > 0).to(x.dtype))

    return mock.patch.object(relu.ReLULayer, "backward", backward)


@plant("Sigmoid backward from the input instead of the output")
def _():
    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            x = bottom[0].data
            bottom[0].diff.copy_(top[0].diff * x * (1 - x))

    return mock.patch.object(sigmoid.SigmoidLayer, "backward", backward)


@plant("SoftmaxWithLoss normalizes VALID by the batch size")
def _():
    original = softmax_loss.SoftmaxWithLossLayer.valid_normalizer

    def normalizer(self, valid):
        if self.normalization == caffe_pb2.LossParameter.VALID:
            return max(1.0, float(self.outer_num))
        return original(self, valid)

    return mock.patch.object(softmax_loss.SoftmaxWithLossLayer, "valid_normalizer", normalizer)


@plant("InnerProduct weight diff overwritten instead of accumulated")
def _():
    return _swap_source(
        inner_product.InnerProductLayer,
        "backward",
        "self.blobs[0].diff.add_(dw.view_as(self.blobs[0].diff))",
        "self.blobs[0].diff.copy_(dw.view_as(self.blobs[0].diff))",
    )


@plant("Eltwise SUM coefficients ignored in backward")
def _():
    return _swap_source(eltwise.EltwiseLayer, "backward", "if self.coeffs[i] == 1:", "if True:")


@plant("Concat backward gives every bottom the first slice")
def _():
    return _swap_source(ConcatLayer, "backward", "dy[:, offset : offset + size]", "dy[:, 0:size]")


@plant("EuclideanLoss gives both bottoms the same sign")
def _():
    return _swap_source(EuclideanLossLayer, "backward", "sign = 1.0 if i == 0 else -1.0", "sign = 1.0")


# ---- solvers ----------------------------------------------------------------------------


@plant("lr_mult 0 params still updated")
def _():
    def local_rate(self, param_id, rate):
        lr = self.net.params_lr[param_id]
        return float(rate * self.dtype(lr if lr != 0 else 1.0))

    return mock.patch.object(sgd.SGDSolver, "local_rate", local_rate)


@plant("pruned layer's params not decayed")
def _():
    original = sgd.SGDSolver.regularize

    def regularize(self, param_id):
        net = self.net
        entry = net.topology.params[net.topology.learnables[param_id].net_param_id]
        if not net.flags.layers[entry.layer].need_backward:
            return
        original(self, param_id)

    return mock.patch.object(sgd.SGDSolver, "regularize", regularize)


@plant("clip_gradients after iter_size normalisation")
def _():
    def apply_update(self):
        rate = self.get_learning_rate()
        self.rates.append(float(rate))
        for param_id in range(len(self.net.learnable_params)):
            self.normalize(param_id)
        self.clip_gradients()
        for param_id in range(len(self.net.learnable_params)):
            self.regularize(param_id)
            self.compute_update_value(param_id, rate)
        self.net.update()
        if self.semantics.iter_incremented_in_apply_update:
            self.iter += 1

    return mock.patch.object(sgd.SGDSolver, "apply_update", apply_update)


@plant("clip_gradients on each param's own norm")
def _():
    def clip_gradients(self):
        clip = float(self.param.clip_gradients)
        if clip < 0:
            return
        for p in self.net.learnable_params:
            norm = float(p.diff.norm())
            if norm > clip:
                p.diff.mul_(clip / norm)

    return mock.patch.object(sgd.SGDSolver, "clip_gradients", clip_gradients)


@plant("iter_size does not normalise")
def _():
    return mock.patch.object(sgd.SGDSolver, "normalize", lambda self, param_id: None)


@plant("Adam bias correction off by one")
def _():
    original = AdamSolver.compute_update_value

    def compute(self, param_id, rate):
        self.iter += 1
        try:
            original(self, param_id, rate)
        finally:
            self.iter -= 1

    return mock.patch.object(AdamSolver, "compute_update_value", compute)


@plant("Nesterov written as plain momentum")
def _():
    return mock.patch.object(NesterovSolver, "compute_update_value", sgd.SGDSolver.compute_update_value)


@plant("weight decay on the data instead of the diff")
def _():
    def regularize(self, param_id):
        p = self.net.learnable_params[param_id]
        decay = float(self.param.weight_decay) * float(self.net.params_weight_decay[param_id])
        p.data.mul_(1 - decay)

    return mock.patch.object(sgd.SGDSolver, "regularize", regularize)


@plant("step lr policy one step early")
def _():
    original = lr_policies.LR_POLICIES["step"]

    def step(param, it, current_step, dtype, checks):
        return original(param, it + 1, current_step, dtype, checks)

    return mock.patch.dict(lr_policies.LR_POLICIES, {"step": step})


@contextlib.contextmanager
def _together(*plants):
    """Several patches that make one plant, active together."""
    with contextlib.ExitStack() as stack:
        for planted in plants:
            stack.enter_context(planted)
        yield


def _swap_source(cls, method: str, old: str, new: str):
    """Recompile one method of a layer with one expression replaced: the smallest wrong rule."""
    import inspect
    import textwrap

    function = getattr(cls, method)
    source = textwrap.dedent(inspect.getsource(function))
    if old not in source:
        raise AssertionError(f"plant for {cls.__name__}.{method}: {old!r} is not in its source any more")
    namespace = dict(function.__globals__)
    exec(compile(source.replace(old, new), f"<planted {cls.__name__}.{method}>", "exec"), namespace)
    return mock.patch.object(cls, method, namespace[method])


def hunt_planted(bug: str, oracle, max_examples: int, seed: int, bundle_dir, shrink_attempts: int = 600):
    """A default fuzz run against ``oracle`` with ``bug`` planted, stopped at its first bundle;
    shrinking is bounded by a number of cases, so the result does not depend on the machine.
    The precision triage is on, as in a campaign: it must not explain the plant away.

    Returns (examples generated before the catch or None, the bundle or None)."""
    from harness.campaign.bundle import Bundle
    from harness.campaign.fuzz import DEFAULT_STRATEGY_OPTIONS, Budget, Hunter
    from harness.campaign.triage import PrecisionTriage

    budget = Budget(examples=max_examples)
    found = []

    def on_record(record):
        if record.bundle:
            found.append(record)
            budget.stop_requested = True

    engine = PlantedEngine(bug)
    hunter = Hunter(
        engine,
        oracle,
        {"under_test": f"planted:{bug}", "oracle": oracle.name},
        budget,
        seed,
        bundle_dir,
        None,
        on_record,
        DEFAULT_STRATEGY_OPTIONS,
        shrink_attempts=shrink_attempts,
        triage=PrecisionTriage.for_engines(engine, oracle),
    )
    hunter.hunt()
    if not found:
        return None, None
    return budget.generated, Bundle.load(found[0].bundle)
