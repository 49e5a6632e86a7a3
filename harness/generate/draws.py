"""Draws that every strategy here is built from: small, cached, eager, and shrinking
towards their first option (an index draw), so a shrunk value is Caffe's default.

Hypothesis validates a strategy object when it is built and unwraps a lazy one at every
draw; building these once, eager, is what keeps a case's generation cheap.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

from hypothesis import strategies as st


def eager(strategy):
    """The strategy a lazy one stands for, which draws exactly the same choices in the same
    span. Hypothesis unwraps a lazy strategy (``st.integers``, ``st.booleans``, ``st.lists``,
    a composite) again at every draw, which made each of a net's draws about half as dear
    again. Where a Hypothesis version lacks the attribute, the lazy strategy serves, slower."""
    return getattr(strategy, "wrapped_strategy", strategy)


@functools.cache
def integers(low: int, high: int):
    """``st.integers(low, high)``, built once and eager (``eager``)."""
    return eager(st.integers(low, high))


BOOLEANS = eager(st.booleans())


def pick(draw, options: Sequence):
    """One of ``options``, the first when shrunk: an index draw."""
    return options[draw(integers(0, len(options) - 1))]


@functools.cache
def combinations(*options: tuple) -> tuple:
    """Every choice of one value from each of ``options`` (the first of each being the default),
    fewest non-defaults first: one ``pick`` takes a whole combination (one draw, not one per
    field), and a smaller index, which the shrinker seeks, is a simpler one."""
    return tuple(
        sorted(itertools.product(*options), key=lambda combo: sum(v != o[0] for v, o in zip(combo, options)))
    )


def pick_or_none(draw, options: Sequence):
    """None first, then one of ``options`` (None only, when there are none)."""
    index = draw(integers(0, len(options)))
    return None if index == 0 else options[index - 1]


def maybe(*values):
    """None (the field left unset) first, then the given values in order (cached: a
    strategy built once is validated once)."""
    # Keyed by type too: False == 0 == 0.0 would otherwise share one cached strategy.
    return _maybe(tuple((type(v), v) for v in values))


@functools.cache
def _maybe(typed_values):
    return st.sampled_from((None, *(v for _, v in typed_values)))
