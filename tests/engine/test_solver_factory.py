"""The solver registry and the legacy `solver_type` enum upgrade.

Caffe: include/caffe/solver_factory.hpp (SolverRegistry::CreateSolver),
src/caffe/util/upgrade_proto.cpp (UpgradeSolverType).
"""

import pytest
from solver_testing import QuadraticNet, solver_param

from reference_engine.checks import CaffeError
from reference_engine.solvers import SOLVERS, make_solver, register_solver, upgrade_solver_type

KNOWN = "AdaDelta, AdaGrad, Adam, Nesterov, RMSProp, SGD"


def test_registry_holds_caffes_six_types():
    assert ", ".join(sorted(SOLVERS)) == KNOWN
    for type_name, cls in SOLVERS.items():
        assert cls.__name__ == f"{type_name}Solver"


def test_type_defaults_to_sgd():
    solver = make_solver(solver_param('lr_policy: "fixed"'), QuadraticNet([[1.0]]))
    assert type(solver) is SOLVERS["SGD"]


def test_unknown_solver_type_lists_the_known_ones():
    with pytest.raises(CaffeError) as error:
        make_solver(solver_param('type: "LBFGS"'), QuadraticNet([[1.0]]))
    assert error.value.message == (
        f"Check failed: registry.count(type) == 1 (0 vs. 1) Unknown solver type: LBFGS (known types: {KNOWN})"
    )


def test_solver_type_is_case_sensitive():
    with pytest.raises(CaffeError):
        make_solver(solver_param('type: "adam"'), QuadraticNet([[1.0]]))


def test_registering_a_type_twice_is_refused():
    with pytest.raises(CaffeError) as error:
        register_solver("SGD")(type("Again", (), {}))
    assert error.value.message == (
        "Check failed: registry.count(type) == 0 (1 vs. 0) Solver type SGD already registered."
    )


@pytest.mark.parametrize(
    "enum_name, type_name",
    [
        ("SGD", "SGD"),
        ("NESTEROV", "Nesterov"),
        ("ADAGRAD", "AdaGrad"),
        ("RMSPROP", "RMSProp"),
        ("ADADELTA", "AdaDelta"),
        ("ADAM", "Adam"),
    ],
)
def test_legacy_solver_type_enum_is_upgraded(enum_name, type_name):
    param = solver_param(f'solver_type: {enum_name} lr_policy: "fixed"')
    upgraded = upgrade_solver_type(param)
    assert upgraded.type == type_name and upgraded.HasField("type")
    assert not upgraded.HasField("solver_type")
    assert param.HasField("solver_type")  # the caller's message is left alone
    solver = make_solver(param, QuadraticNet([[1.0]]))
    assert type(solver) is SOLVERS[type_name]
    assert not solver.param.HasField("solver_type")


@pytest.mark.parametrize("type_name", ["SGD", "Adam"])
def test_solver_type_and_type_both_set_is_refused_even_when_they_agree(type_name):
    param = solver_param(f'solver_type: ADAM type: "{type_name}" lr_policy: "fixed"')
    with pytest.raises(CaffeError) as error:
        make_solver(param, QuadraticNet([[1.0]]))
    assert error.value.message == (
        "Check failed: !solver_param->has_solver_type() || !solver_param->has_type() "
        "Failed to upgrade solver: old solver_type field (enum) and new type field (string) "
        "cannot be both specified in solver proto text."
    )


def test_solver_type_is_upgraded_before_the_type_is_looked_up():
    """solver_type ADAGRAD with momentum: the AdaGrad constructor's CHECK, not SGD's silence."""
    param = solver_param('solver_type: ADAGRAD momentum: 0.9 lr_policy: "fixed"')
    with pytest.raises(CaffeError) as error:
        make_solver(param, QuadraticNet([[1.0]]))
    assert "Momentum cannot be used with AdaGrad." in error.value.message


def test_unknown_type_is_refused_before_the_net_is_built():
    built = []
    with pytest.raises(CaffeError):
        make_solver(solver_param('type: "Foo"'), lambda: built.append(1))
    assert built == []
