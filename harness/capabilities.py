"""What an engine models: the generator draws only inside it, and a case outside it runs on
neither engine.

An engine class says what it models in a ``capabilities`` class attribute (docs/engines.md);
one without it models everything. The campaign hands the engine under test's capabilities to
``harness.generate.cases``, and checks every case against them before either engine runs it,
so that a corpus case drawn for another engine is skipped, not blamed on this one.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import text_format

from harness.errors import HarnessError
from reference_engine import caffe_pb2

MODELLED_STAGES = ("forward", "backward", "solver")  # each stage needs the ones before it
PHASES = ("TRAIN", "TEST")


@dataclass(frozen=True)
class Capabilities:
    """The cases an engine models. Every field's default is "all of it": Capabilities()
    draws what the generator draws for real Caffe, draw for draw.

    ``layer_types`` names the types a net may hold besides its Input layers (and the Split
    layers Caffe inserts itself); None: every type the generator knows. ``solver_types`` and
    ``lr_policies`` likewise, None being all of them. The booleans turn one feature off each;
    ``refusals`` is nets that Caffe refuses on purpose, which the generator honours but
    ``outside`` cannot see in a case."""

    stages: tuple[str, ...] = MODELLED_STAGES  # forward only; forward and backward; and solver steps
    layer_types: frozenset[str] | None = None
    solver_types: frozenset[str] | None = None
    lr_policies: frozenset[str] | None = None
    phases: tuple[str, ...] = PHASES  # ("TEST",): the TEST phase only
    param_sharing: bool = True  # params shared by name between layers
    state_rules: bool = True  # include/exclude rules, which may name a phase other than the net's
    levels_and_stages: bool = True  # a NetState level or stages, and rules on them
    force_backward: bool = True
    in_place: bool = True  # a layer whose top is its bottom
    non_loss_weights: bool = True  # loss_weight on the tops of layers that are not losses
    propagate_down: bool = True
    refusals: bool = True

    def __post_init__(self):
        if self.stages not in [MODELLED_STAGES[:n] for n in range(1, len(MODELLED_STAGES) + 1)]:
            raise HarnessError(
                f"stages={self.stages!r}: must be ('forward',), ('forward', 'backward') or {MODELLED_STAGES}"
            )
        if not self.phases or set(self.phases) - set(PHASES):
            raise HarnessError(f"phases={self.phases!r}: must be one or both of {PHASES}")
        # Sets in, frozensets kept: the value is hashable, so the generator caches what it derives.
        for name in ("layer_types", "solver_types", "lr_policies"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, frozenset(value))
        object.__setattr__(self, "phases", tuple(p for p in PHASES if p in self.phases))

    def models(self, stage: str) -> bool:
        """Whether the engine runs a case up to ``stage`` ("forward", "backward" or "solver")."""
        return stage in self.stages

    def allows_type(self, type_name: str) -> bool:
        return self.layer_types is None or type_name in self.layer_types

    def outside(self, case) -> str | None:
        """Why ``case`` (a harness.case.Case) lies outside these capabilities, or None. A net
        that does not parse is left to the engines, which refuse it."""
        if self == EVERYTHING:
            return None  # nothing to check, and no net to parse
        if case.phase not in self.phases:
            return f"phase {case.phase}: not among phases {self.phases}"
        if case.solver is not None:
            why = self._outside_solver(case.solver)
            if why is not None:
                return why
        if not self.levels_and_stages and (case.level or case.stages):
            return f"NetState level {case.level}, stages {list(case.stages)}: levels_and_stages is off"
        try:
            net = text_format.Parse(case.net, caffe_pb2.NetParameter())
        except text_format.ParseError:
            return None
        if net.force_backward and not self.force_backward:
            return "force_backward: true: force_backward is off"
        return self._outside_layers(net)

    def _outside_solver(self, solver_text: str) -> str | None:
        if not self.models("solver"):
            return f"a solver: the engine models only {', '.join(self.stages)}"
        try:
            solver = text_format.Parse(solver_text, caffe_pb2.SolverParameter())
        except text_format.ParseError:
            return None
        if self.solver_types is not None and solver.type not in self.solver_types:
            return f"solver type {solver.type}: not among solver_types {sorted(self.solver_types)}"
        if self.lr_policies is not None and solver.lr_policy not in self.lr_policies:
            return f"lr_policy {solver.lr_policy!r}: not among lr_policies {sorted(self.lr_policies)}"
        return None

    def _outside_layers(self, net) -> str | None:
        param_names = [spec.name for layer in net.layer for spec in layer.param if spec.name]
        for layer in net.layer:
            where = f"layer {layer.name!r} ({layer.type})"
            if layer.type != "Input" and not self.allows_type(layer.type):
                return f"{where}: its type is not among layer_types {sorted(self.layer_types)}"
            if not self.param_sharing and any(param_names.count(s.name) > 1 for s in layer.param if s.name):
                return f"{where}: shares a param by name: param_sharing is off"
            rules = [*layer.include, *layer.exclude]
            if rules and not self.state_rules:
                return f"{where}: has include/exclude rules: state_rules is off"
            if not self.levels_and_stages and any(
                r.HasField("min_level") or r.HasField("max_level") or r.stage or r.not_stage for r in rules
            ):
                return f"{where}: has a rule on levels or stages: levels_and_stages is off"
            if not self.in_place and set(layer.top) & set(layer.bottom):
                return f"{where}: runs in place: in_place is off"
            if not self.propagate_down and layer.propagate_down:
                return f"{where}: sets propagate_down: propagate_down is off"
            if not self.non_loss_weights and layer.loss_weight and not _is_loss(layer.type):
                return f"{where}: a loss_weight on a layer that is not a loss: non_loss_weights is off"
        return None


def _is_loss(type_name: str) -> bool:
    from reference_engine.checks import CaffeError
    from reference_engine.layer import layer_class  # the layer catalogue loads torch

    try:
        return layer_class(type_name).is_loss
    except CaffeError:  # an unknown type, which the engines refuse
        return False


EVERYTHING = Capabilities()


def within(known: tuple[str, ...], allowed, field: str) -> tuple[str, ...]:
    """The names of ``known`` that ``allowed`` (a set, or None: all) keeps, in their order, so
    that a restricted draw still shrinks towards the first; a name outside ``known``, or no name
    at all, is refused (``field`` names the capability)."""
    if allowed is None:
        return known
    unknown = sorted(set(allowed) - set(known))
    if unknown:
        raise HarnessError(f"{field}={sorted(allowed)!r}: {', '.join(unknown)} not among {', '.join(known)}")
    if not allowed:
        raise HarnessError(f"{field}=[]: must name at least one of {', '.join(known)}")
    return tuple(name for name in known if name in allowed)


def capabilities_of(engine) -> Capabilities:
    """An engine's capabilities: its class's ``capabilities``, or everything where it has none."""
    return getattr(engine, "capabilities", EVERYTHING)
