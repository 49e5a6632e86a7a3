"""Net construction without numerics: what ``explain`` and the flag tests read.

The same steps as Net's constructor (state filter, splits, wiring, need-backward),
with param counts and loss weights taken from the layer classes, so no shape,
tensor or data source is needed.
"""

from dataclasses import dataclass

from .need_backward import BackwardAnalysis, analyse
from .net import read_net_param
from .splits import insert_splits
from .state import filter_net
from .topology import Topology, build_topology


@dataclass
class NetAnalysis:
    topology: Topology
    flags: BackwardAnalysis
    upgrade_notes: list[str]


def analyse_param(param, upgrade_notes=()) -> NetAnalysis:
    topology = build_topology(insert_splits(filter_net(param)))
    return NetAnalysis(topology, analyse(topology), list(upgrade_notes))


def analyse_text(text: str, phase: str = "TRAIN", level: int = 0, stages=()) -> NetAnalysis:
    """As Net(file, phase, level, stages) would build it."""
    param, notes = read_net_param(text, phase, level, stages)
    return analyse_param(param, notes)
