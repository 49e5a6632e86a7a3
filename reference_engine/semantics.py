"""Where Caffe 1.0 (tag 1.0, the bvlc/caffe:cpu image) and master (9b89154) differ.

One value, read where the difference acts; each field cites both sources.
docs/semantics.md §6 lists the differences.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class CaffeSemantics:
    name: str
    # Clip and Swish layers exist only in master (src/caffe/layers/clip_layer.cpp, swish_layer.cpp).
    has_clip_and_swish: bool = True
    # PoolingParameter.round_mode (master); 1.0 always rounds the output size up (pooling_layer.cpp).
    pooling_round_mode: bool = True
    # Accuracy: master counts the other classes scoring at least the true one (a tie counts
    # against the sample) and hits when fewer than top_k do (accuracy_layer.cpp); 1.0 ranks
    # with partial_sort.
    accuracy_ties_by_count: bool = True
    # Master checks lr-policy parameters (solver.cpp / sgd_solver.cpp GetLearningRate CHECKs).
    lr_policy_checks: bool = True
    # Master increments iter_ inside SGDSolver::ApplyUpdate; 1.0 in Solver::Step after it.
    # Same values for step(); only a bare apply_update differs.
    iter_incremented_in_apply_update: bool = True


MASTER = CaffeSemantics(name="master")
CAFFE_1_0 = CaffeSemantics(
    name="1.0",
    has_clip_and_swish=False,
    pooling_round_mode=False,
    accuracy_ties_by_count=False,
    lr_policy_checks=False,
    iter_incremented_in_apply_update=False,
)
SEMANTICS = {s.name: s for s in (MASTER, CAFFE_1_0)}
