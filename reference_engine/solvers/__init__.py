"""The solver catalogue: SOLVERS maps Caffe's solver type string to its class.

Caffe: include/caffe/solver_factory.hpp (SolverRegistry), src/caffe/util/upgrade_proto.cpp
(UpgradeSolverType). Each solver module registers its class when imported below.
"""

from ..checks import check, check_eq, fatal
from ..semantics import MASTER, CaffeSemantics

SOLVERS = {}

# SolverParameter.SolverType (the deprecated enum) to the type string, as UpgradeSolverType.
_LEGACY_SOLVER_TYPES = {
    0: "SGD",
    1: "Nesterov",
    2: "AdaGrad",
    3: "RMSProp",
    4: "AdaDelta",
    5: "Adam",
}


def register_solver(type_name: str):
    """REGISTER_SOLVER_CLASS: one class per type string, registered once."""

    def register(cls):
        check_eq(
            int(type_name in SOLVERS),
            0,
            "registry.count(type)",
            "0",
            f"Solver type {type_name} already registered.",
        )
        SOLVERS[type_name] = cls
        return cls

    return register


def upgrade_solver_type(solver_param):
    """A copy of ``solver_param`` with the legacy `solver_type` enum moved into `type`.

    Caffe: upgrade_proto.cpp, UpgradeSolverType, which runs whenever a solver is read from a
    file (ReadSolverParamsFromTextFileOrDie: `caffe train`, pycaffe get_solver). Both fields
    set is refused even when they agree.
    """
    upgraded = type(solver_param)()
    upgraded.CopyFrom(solver_param)
    if not upgraded.HasField("solver_type"):
        return upgraded
    check(
        not (upgraded.HasField("solver_type") and upgraded.HasField("type")),
        "!solver_param->has_solver_type() || !solver_param->has_type()",
        "Failed to upgrade solver: old solver_type field (enum) and new type field (string) "
        "cannot be both specified in solver proto text.",
    )
    solver_type = _LEGACY_SOLVER_TYPES.get(upgraded.solver_type)
    if solver_type is None:
        # Caffe streams the still-empty string here, so the message names no type.
        fatal("Unknown SolverParameter solver_type: ")
    upgraded.type = solver_type
    upgraded.ClearField("solver_type")
    return upgraded


def make_solver(solver_param, net, semantics: CaffeSemantics = MASTER):
    """SolverRegistry::CreateSolver on the upgraded parameter, as `caffe train` does.

    ``net`` is the train net or a function of no arguments that builds it (see Solver).
    """
    solver_param = upgrade_solver_type(solver_param)
    solver_type = solver_param.type
    check_eq(
        int(solver_type in SOLVERS),
        1,
        "registry.count(type)",
        "1",
        f"Unknown solver type: {solver_type} (known types: {', '.join(sorted(SOLVERS))})",
    )
    return SOLVERS[solver_type](solver_param, net, semantics)


from . import adadelta, adagrad, adam, nesterov, rmsprop, sgd  # noqa: F401  (they register)
