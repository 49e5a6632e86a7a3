"""Hypothesis strategies for caffe-conformance: random DAG nets, solvers and cases.

- ``nets()``: caffe_pb2.NetParameter values Caffe accepts (or, with ``refusals=True``,
  sometimes refuses on purpose), grown layer by layer on known shapes (nets.py, kinds.py,
  draft.py);
- ``solver_params()``: caffe_pb2.SolverParameter values without a net (solvers.py);
- ``cases()``: harness.case.Case values with inputs and params from one seed (cases.py).

``nets()`` and ``cases()`` take the engine under test's capabilities (harness/capabilities.py)
and draw only inside them; ``solver_params()`` the solver types and lr policies they allow.
"""

from .determinism import independent_of_imports

# Before any strategy draws: the same seed then draws the same cases in every process.
independent_of_imports()

from .cases import case_from_draft, cases
from .kinds import LAYER_KINDS, LOSS_KINDS
from .nets import net_drafts, nets
from .solvers import solver_params

__all__ = [
    "LAYER_KINDS",
    "LOSS_KINDS",
    "case_from_draft",
    "cases",
    "net_drafts",
    "nets",
    "solver_params",
]
