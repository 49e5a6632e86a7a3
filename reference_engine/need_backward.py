"""Which layers, bottoms and params take part in backward, and why.

Caffe: the flag loops of Net::Init (src/caffe/net.cpp): a forward sweep during
construction, a reverse sweep over blobs under a loss and blobs that skip
backprop, then force_backward. A pure function of the wiring: it never touches a
tensor. Every flag carries its reasons as sentences a user can read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .topology import Topology


@dataclass
class LayerFlags:
    logged_need_backward: bool = False  # what Caffe logs: after the reverse sweep, before force_backward
    need_backward: bool = False  # what Caffe does
    reasons: list[str] = field(default_factory=list)
    bottom_need_backward: list[bool] = field(default_factory=list)
    bottom_reasons: list[list[str]] = field(default_factory=list)
    param_propagate_down: list[bool] = field(default_factory=list)
    param_reasons: list[str] = field(default_factory=list)


@dataclass
class BackwardAnalysis:
    layers: list[LayerFlags]
    blob_need_backward: list[bool]
    under_loss: set[str]


def _fmt(value: float) -> str:
    return f"{value:g}"


def analyse(topology: Topology) -> BackwardAnalysis:
    names = topology.blob_names
    blob_nb = [False] * len(names)
    blob_why: dict[int, str] = {}
    blob_source: dict[int, LayerFlags] = {}  # the layer whose need_backward made a blob carry gradient
    flags = [LayerFlags() for _ in topology.layers]

    # Forward sweep (Net::Init's construction loop).
    for node, f in zip(topology.layers, flags):
        propagate_down = node.propagate_down
        for k, b in enumerate(node.bottom_ids):
            carried = blob_nb[b]
            why = [
                f"bottom '{names[b]}' "
                + (
                    f"carries gradient: {blob_why[b]}"
                    if carried
                    else "carries no gradient: nothing above it learns"
                )
            ]
            if carried:
                f.need_backward = True
                f.reasons.append(f"bottom '{names[b]}' carries gradient ({blob_why[b]})")
            if propagate_down is not None:
                f.bottom_need_backward.append(propagate_down[k])
                why = [f"propagate_down: {str(propagate_down[k]).lower()} on bottom {k} '{names[b]}'"]
            else:
                f.bottom_need_backward.append(carried)
            f.bottom_reasons.append(why)
        for p, lr in enumerate(node.param_lr_mults):
            f.param_propagate_down.append(lr != 0)
            if lr != 0:
                f.need_backward = True
                f.reasons.append(f"param {p} has lr_mult {_fmt(lr)}")
                f.param_reasons.append(f"lr_mult {_fmt(lr)}")
            else:
                f.param_reasons.append("lr_mult 0: no gradient wanted")
        if f.need_backward:
            for t in node.top_ids:
                if not blob_nb[t]:
                    blob_why[t] = f"layer '{node.name}' needs backward"
                    blob_source[t] = f
                blob_nb[t] = True

    # Reverse sweep: keep a layer only if one of its tops is under a loss and not every top
    # is skipped. Sets are keyed by blob name, as in Caffe.
    under_loss: set[str] = set()
    skip: dict[str, str] = {}
    for node, f in zip(reversed(topology.layers), reversed(flags)):
        tops = [names[t] for t in node.top_ids]
        contributes = False
        skip_all = True
        loss_tops = []
        for t, name in enumerate(tops):
            weight = node.loss_weights[t] if t < len(node.loss_weights) else 0.0
            if weight:
                loss_tops.append(f"top '{name}' has loss weight {_fmt(weight)}")
            if weight or name in under_loss:
                contributes = True
            if name not in skip:
                skip_all = False
            if contributes and not skip_all:
                break
        if not contributes:
            f.need_backward = False
            f.reasons = ["no backward: " + ("the layer has no top" if not tops else "no top is under a loss")]
        elif f.need_backward and skip_all:
            f.need_backward = False
            # Each reason says what holds at the end: the first pass's reason is kept as what
            # would have been, not as what is.
            f.bottom_reasons = [
                _overridden("its layer is pruned", why) if needed else why
                for why, needed in zip(f.bottom_reasons, f.bottom_need_backward)
            ]
            f.bottom_need_backward = [False] * len(f.bottom_need_backward)
            detail = "; ".join(f"'{n}' is not propagated: {skip[n]}" for n in tops)
            f.reasons = [f"no backward: no top takes gradient ({detail})"]
        elif f.need_backward:
            under = [f"top '{n}' is under a loss" for n in tops if n in under_loss]
            f.reasons = (loss_tops or under[:1]) + f.reasons
        else:
            f.reasons = ["no backward: no bottom carries gradient and no param learns"]
        f.logged_need_backward = f.need_backward
        for k, b in enumerate(node.bottom_ids):
            name = names[b]
            if contributes:
                under_loss.add(name)
            elif f.bottom_need_backward[k]:
                f.bottom_need_backward[k] = False
                f.bottom_reasons[k] = _overridden(
                    f"layer '{node.name}' is under no loss", f.bottom_reasons[k]
                )
            if not f.bottom_need_backward[k]:
                skip.setdefault(name, _skip_reason(node, f, k))

    # A kept layer's flag was set in the first pass by a bottom whose producer the reverse
    # sweep pruned since: Caffe keeps the flag (Net::Init resets only pruned layers), so say so.
    for node, f in zip(topology.layers, flags):
        for b in node.bottom_ids:
            source = blob_source.get(b)
            if f.need_backward and source is not None and not source.need_backward:
                f.reasons = [
                    _first_pass(r) if r.startswith(f"bottom '{names[b]}' carries gradient") else r
                    for r in f.reasons
                ]

    if topology.force_backward:
        for node, f in zip(topology.layers, flags):
            if not f.need_backward:
                f.reasons.append("force_backward: true runs its backward anyway")
            f.need_backward = True
            for k, b in enumerate(node.bottom_ids):
                if not f.bottom_need_backward[k] and node.cls.allow_force_backward(k):
                    f.bottom_need_backward[k] = True
                    f.bottom_reasons[k].append("force_backward: true")
                elif not f.bottom_need_backward[k]:
                    f.bottom_reasons[k].append(
                        f"force_backward is not allowed into bottom {k} of a {node.type}"
                    )
                blob_nb[b] = blob_nb[b] or f.bottom_need_backward[k]
            for p in range(len(f.param_propagate_down)):
                if not f.param_propagate_down[p]:
                    f.param_propagate_down[p] = True
                    f.param_reasons[p] += "; force_backward: true computes its gradient anyway"
    return BackwardAnalysis(flags, blob_nb, under_loss)


def _first_pass(reason: str) -> str:
    return f"{reason.replace('carries', 'carried', 1).replace(' needs ', ' needed ', 1)} in Caffe's first pass, and the flag stays though that layer is pruned later"


def _overridden(cause: str, reasons: list[str]) -> list[str]:
    """A bottom's reasons once ``cause`` has taken its gradient away."""
    return [f"{cause}; without that, {'; '.join(reasons)}"]


def _skip_reason(node, f: LayerFlags, k: int) -> str:
    if node.propagate_down is not None and not node.propagate_down[k]:
        return f"{node.name} has propagate_down: false on it"
    if not f.need_backward:
        return f"{node.name} does not need backward"
    return f"{node.name} takes no gradient into it"
