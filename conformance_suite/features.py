"""What each test of the suite checks: a Feature, and the catalogue of features to check.

The catalogue is the reference engine's: every layer type its registry holds
(reference_engine/layer.py) and every solver type (reference_engine/solvers), so a type
added there is a test here with no other edit.

A test fails on the first mismatch of a case (harness/campaign/compare.py lists them in
running order: the layer list, flags, forward data layer by layer, then backward from the
loss) where that mismatch is its feature's business: a layer type's test on a mismatch
blamed on a layer of that type, or on no layer at all (an outcome, a layer list); the flags
test on outcomes, layer lists and flags; a solver's test on outcomes, layer lists, losses,
updates and weights. A wrong rule then turns the test of its own feature red, not every
test whose nets happen to run through it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from harness.campaign.compare import Comparison, Mismatch
from harness.capabilities import MODELLED_STAGES, Capabilities
from harness.case import Result

# What the first mismatch of a case may be, whatever layer it blames, for it to fail a test.
STRUCTURE_KINDS = frozenset({"outcome", "layers"})
FLAG_KINDS = STRUCTURE_KINDS | {"flags"}
SOLVER_KINDS = STRUCTURE_KINDS | {"loss", "update", "weights"}


def layer_types() -> tuple[str, ...]:
    """Every layer type the reference engine registers, by name."""
    import reference_engine.layers  # noqa: F401  (importing the catalogue registers every type)
    from reference_engine.layer import LAYERS

    return tuple(sorted(LAYERS))


def solver_types() -> tuple[str, ...]:
    """Every solver type the reference engine registers, by name."""
    from reference_engine.solvers import SOLVERS

    return tuple(sorted(SOLVERS))


def drawn_layer_types() -> frozenset[str]:
    """The layer types the generator can put in a net: its kinds, and Input (in every net)."""
    from harness.generate import LAYER_KINDS, LOSS_KINDS

    return frozenset({"Input", *LAYER_KINDS, *LOSS_KINDS})


def up_to(capabilities: Capabilities, stage: str) -> Capabilities:
    """``capabilities`` ending at ``stage``: nothing after it is drawn or compared."""
    return dataclasses.replace(capabilities, stages=MODELLED_STAGES[: MODELLED_STAGES.index(stage) + 1])


@dataclass(frozen=True)
class Feature:
    """One test's feature: the stage its cases are drawn and compared up to, what each case
    must hold, and which first mismatch fails it (see the module's docstring)."""

    stage: str  # "forward", "backward" or "solver"
    kinds: frozenset[str]  # mismatch kinds that fail the test whatever layer they blame
    layer_type: str | None = None  # every net holds one; a mismatch blamed on it fails the test
    solver_type: str | None = None  # every case runs this solver
    refusals: bool = False  # nets Caffe refuses on purpose, drawn too

    @classmethod
    def flags(cls) -> Feature:
        return cls("backward", FLAG_KINDS, refusals=True)

    @classmethod
    def forward(cls, layer_type: str) -> Feature:
        return cls("forward", STRUCTURE_KINDS, layer_type=layer_type)

    @classmethod
    def backward(cls, layer_type: str) -> Feature:
        return cls("backward", STRUCTURE_KINDS, layer_type=layer_type)

    @classmethod
    def solver(cls, solver_type: str) -> Feature:
        return cls("solver", SOLVER_KINDS, solver_type=solver_type)

    def unsupported(self, capabilities: Capabilities) -> str | None:
        """Why an engine of these capabilities has no test of this feature, or None."""
        if not capabilities.models(self.stage):
            return f"the engine models only {', '.join(capabilities.stages)} (capabilities.stages)"
        if self.layer_type is not None:
            if self.layer_type not in drawn_layer_types():
                return f"the generator draws no {self.layer_type} layer (harness/generate/kinds.py)"
            if self.layer_type != "Input" and not capabilities.allows_type(self.layer_type):
                return f"{self.layer_type} is not among the engine's capabilities.layer_types"
        if self.solver_type is not None:
            if "TRAIN" not in capabilities.phases:
                return "a solver trains a TRAIN net, and the engine models only TEST (capabilities.phases)"
            if capabilities.solver_types is not None and self.solver_type not in capabilities.solver_types:
                return f"{self.solver_type} is not among the engine's capabilities.solver_types"
        return None

    def cases(self, capabilities: Capabilities):
        """The Hypothesis strategy of this feature's cases, within ``capabilities`` (which end
        at this feature's stage: up_to)."""
        from harness.generate import cases

        return cases(
            refusals=self.refusals,
            solvers=False,
            capabilities=capabilities,
            layer_type=self.layer_type,
            solver_type=self.solver_type,
        )

    def failure(self, comparison: Comparison, oracle: Result, capabilities: Capabilities) -> Mismatch | None:
        """The comparison's first mismatch where it fails this feature's test, else None.
        A layer is typed by the oracle's layer list, which holds the Split layers Caffe
        inserts; a mismatch blamed on a type that no test of the engine's checks (such a
        Split where capabilities.layer_types leaves Split out) fails every layer type's test,
        as does one blamed on no layer, or on a layer only the engine under test has."""
        first = comparison.first
        if first is None or first.kind in self.kinds:
            return first
        if self.layer_type is None:
            return None
        blamed = next((record.type for record in oracle.layers if record.name == first.layer), None)
        if blamed in (None, self.layer_type) or not _tested(blamed, capabilities):
            return first
        return None


def _tested(layer_type: str, capabilities: Capabilities) -> bool:
    """Whether a layer type has tests of its own for an engine of these capabilities."""
    if layer_type not in drawn_layer_types():
        return False
    return layer_type == "Input" or capabilities.allows_type(layer_type)
