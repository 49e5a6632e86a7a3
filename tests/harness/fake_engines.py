"""Engines for testing the harness itself (they claim nothing about Caffe)."""

import dataclasses

from google.protobuf import text_format

from harness.capabilities import Capabilities
from harness.case import Outcome, Result
from harness.engines.reference import ReferenceEngine
from reference_engine import caffe_pb2
from reference_engine.net import parse_net


class RenamedReference:
    """The reference engine under another name: it must agree with the reference."""

    name = "renamed"

    def __init__(self):
        self.inner = ReferenceEngine()

    def run(self, case):
        return dataclasses.replace(self.inner.run(case), engine=self.name)

    def close(self):
        self.inner.close()


class PerturbedEngine(RenamedReference):
    """Reports every loss 1% too high: a disagreement on every case with a loss."""

    name = "perturbed"

    def run(self, case):
        result = super().run(case)
        return dataclasses.replace(result, losses=tuple(x * 1.01 + 1e-3 for x in result.losses))


class CountingReference(RenamedReference):
    """The reference under another name, keeping every case it was given."""

    name = "counting"

    def __init__(self):
        super().__init__()
        self.cases = []

    def run(self, case):
        self.cases.append(case)
        return super().run(case)


class HandfulReference(CountingReference):
    """An engine of a handful of layer types and the SGD solver: the reference, with any other
    type or solver UNSUPPORTED, checked on the case itself (not through its capabilities)."""

    name = "handful"
    layer_types = frozenset(
        {
            "ReLU",
            "Sigmoid",
            "InnerProduct",
            "Convolution",
            "Pooling",
            "Concat",
            "EuclideanLoss",
            "SoftmaxWithLoss",
        }
    )
    capabilities = Capabilities(layer_types=layer_types, solver_types={"SGD"})

    def run(self, case):
        types = {layer.type for layer in parse_net(case.net).layer} - {"Input"}
        solver = text_format.Parse(case.solver or "", caffe_pb2.SolverParameter())
        if types - self.layer_types or (case.solver is not None and solver.type != "SGD"):
            why = f"types {sorted(types - self.layer_types)}, solver {solver.type}"
            return Result(self.name, Outcome.UNSUPPORTED, "init", why)
        return super().run(case)


class TwoUpdateBugs(RenamedReference):
    """Two bugs in one layer type's update, told apart only by the quantity: every param 1
    (an InnerProduct's bias) steps 0.1 too far, and, where the solver decays weights, every
    param 0 too. A case with weight decay shows the param 0 bug first; dropping the decay
    leaves the param 1 bug alone, a different cause that a shrink must not slip to."""

    name = "two-update-bugs"
    capabilities = Capabilities(
        layer_types={"InnerProduct", "EuclideanLoss", "ReLU"}, solver_types={"SGD"}, lr_policies={"fixed"}
    )

    def run(self, case):
        result = super().run(case)
        decays = case.solver is not None and self._decays(case.solver)
        wrong = {1, 0} if decays else {1}
        history = tuple(
            {
                layer: tuple(p + 0.1 if i in wrong else p for i, p in enumerate(params))
                for layer, params in snapshot.items()
            }
            for snapshot in result.param_history
        )
        return dataclasses.replace(result, param_history=history)

    @staticmethod
    def _decays(solver_text: str) -> bool:
        return text_format.Parse(solver_text, caffe_pb2.SolverParameter()).weight_decay != 0
