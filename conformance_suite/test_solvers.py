"""Each solver type: a TRAIN net and a solver of the type run for 1-3 iterations, every lr
policy the engine models drawn; the losses, updates and weights of each iteration."""

import pytest

from .features import Feature, solver_types


@pytest.mark.parametrize("solver_type", solver_types())
def test_solver(check_feature, solver_type):
    check_feature(Feature.solver(solver_type))
