"""Things Caffe accepts silently that users trip over, found from the need-backward analysis.

Each hazard names its kind, the layer and a sentence saying what Caffe will do and why,
citing the Caffe source that decides it. Everything here reads the shape-free
analysis (reference_engine/analysis.py): no tensor, no data file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from reference_engine import caffe_pb2
from reference_engine.analysis import NetAnalysis


@dataclass(frozen=True)
class Hazard:
    kind: str
    layer: str
    message: str

    def to_json(self) -> dict:
        return asdict(self)


def _g(value: float) -> str:
    return f"{value:g}"


# ---- the analysis ------------------------------------------------------------------------------


def find_hazards(analysis: NetAnalysis) -> list[Hazard]:
    topology, flags = analysis.topology, analysis.flags
    names = topology.blob_names
    found: list[Hazard] = []

    def add(kind, node, message):
        found.append(Hazard(kind, node.name, message))

    consumers: dict[int, list] = {}
    for node in topology.layers:
        for b in node.bottom_ids:
            consumers.setdefault(b, []).append(node)

    for node, f in zip(topology.layers, flags.layers):
        learnables = [topology.learnables[topology.params[i].learnable] for i in node.net_param_ids]
        learning = [l for l in learnables if l.lr_mult != 0]
        contributes = any(
            (node.loss_weights[t] if t < len(node.loss_weights) else 0) or names[b] in flags.under_loss
            for t, b in enumerate(node.top_ids)
        )

        # propagate_down: false stops one bottom's gradient, never the layer's own params.
        if node.propagate_down is not None and not all(node.propagate_down) and learning:
            cut = [names[node.bottom_ids[k]] for k, on in enumerate(node.propagate_down) if not on]
            add(
                "propagate_down_does_not_freeze",
                node,
                f"propagate_down: false stops the gradient into {', '.join(repr(c) for c in cut)} only; "
                f"this layer's own params still learn (lr_mult {', '.join(_g(l.lr_mult) for l in learnables)}) "
                "and keep it needing backward. To freeze them set lr_mult: 0 (net.cpp, Net::Init: "
                "param_propagate_down = lr_mult != 0).",
            )

        # Pruned layers keep param_propagate_down, and the solver still decays their weights.
        decaying = [l for l in learning if l.decay_mult != 0]
        if not f.need_backward and decaying:
            why = "it is under no loss" if not contributes else "every top's gradient is cut below a loss"
            add(
                "pruned_but_decays",
                node,
                f"this layer is pruned from backward ({why}), yet its params still change every step: the "
                "solver regularizes every learnable param (sgd_solver.cpp, Regularize), so SGD moves "
                "each weight by -lr*lr_mult*weight_decay*decay_mult*w (plus momentum). Set lr_mult: 0 "
                "(or decay_mult: 0) to really freeze it.",
            )

        # lr_mult 0 with an explicit nonzero decay_mult: the decay never reaches the weights.
        for spec, learnable in zip(node.param.param, learnables):
            if learnable.lr_mult == 0 and spec.HasField("decay_mult") and spec.decay_mult != 0:
                add(
                    "decay_without_lr",
                    node,
                    f"decay_mult {_g(spec.decay_mult)} has no effect with lr_mult 0: Regularize adds the "
                    "decay to the diff, but ComputeUpdateValue scales it by local_rate = lr*lr_mult = 0 "
                    "(sgd_solver.cpp), so the weight never moves; AdaGrad/RMSProp/Adam history still "
                    "accumulates it.",
                )
                break

        # Negative lr_mult: gradient ascent, and decay grows the weight.
        if any(l.lr_mult < 0 for l in learnables):
            add(
                "negative_lr_mult",
                node,
                "a negative lr_mult climbs the loss on this param, and weight "
                "decay then grows the weight instead of shrinking it; Caffe has no check for it",
            )

        # In-place computation Caffe gets wrong or refuses.
        if node.in_place and node.in_place[0]:
            why = node.cls.in_place_hazard(node.param)
            if why:
                add("in_place_broken", node, f"in place on '{names[node.top_ids[0]]}': {why}")

        # loss_weight on a layer that is not a loss layer.
        if not node.cls.is_loss and node.type != "Split" and any(w != 0 for w in node.param.loss_weight):
            add(
                "loss_weight_on_non_loss",
                node,
                f"loss_weight {', '.join(_g(w) for w in node.param.loss_weight)} on a {node.type} layer: "
                "the sum of its top's values times the weight is added to the loss (Layer::Forward), and "
                "its top diff is filled with the weight (SetLossWeights)",
            )

        # A branch that reaches no loss: learnable layers that never get a gradient.
        if not contributes and learning and node.top_ids:
            add(
                "no_loss_branch",
                node,
                "no top of this layer leads to a loss, so Caffe prunes its backward "
                "(net.cpp, Net::Init reverse sweep); its learnable params get no gradient",
            )

        # A layer whose backward aborts, once the net calls it.
        if f.need_backward:
            why = node.cls.backward_abort(node.param, f.bottom_need_backward)
            if why:
                cause = (
                    "force_backward: true makes every layer run backward"
                    if topology.force_backward
                    else "the net runs this layer's backward"
                )
                add("backward_aborts", node, f"{cause}, and {why}: Caffe aborts at the first Backward")

        # Label bottoms that need backward.
        for k in node.cls.label_bottoms() if node.cls.label_backward_fatal else ():
            if f.need_backward and k < len(f.bottom_need_backward) and f.bottom_need_backward[k]:
                add(
                    "label_needs_backward",
                    node,
                    f"bottom {k} '{names[node.bottom_ids[k]]}' needs backward (something above it learns), "
                    f'so Caffe aborts at Backward: "{node.type} Layer cannot backpropagate to label inputs." '
                    f"Set propagate_down: true, false on this layer.",
                )

        # The implicit loss weight trap: an unsplit loss top read by another layer.
        if node.cls.is_loss and not node.param.loss_weight and node.top_ids:
            readers = [c.name for c in consumers.get(node.top_ids[0], []) if c is not node]
            if readers:
                add(
                    "loss_top_consumed",
                    node,
                    f"its loss top '{names[node.top_ids[0]]}' is also read by {', '.join(readers)}: the "
                    "loss weight lives in that blob's diff (Layer::SetLossWeights), and the reader's "
                    "backward writes that diff, so the weight this layer's backward uses is no longer "
                    "the loss weight. With the implicit loss_weight 1 no Split is even inserted "
                    "(insert_splits.cpp counts explicit weights only). Read the loss layer's bottom "
                    "instead of its top.",
                )

        # BatchNorm without param specs looks trainable to the flag loop (docs/semantics.md §2.7).
        if node.type == "BatchNorm" and not node.param.param and node.param_lr_mults:
            add(
                "batch_norm_looks_learnable",
                node,
                "without param { lr_mult: 0 } x3 the net's flag loop reads the default lr_mult 1 "
                "(net.cpp) although BatchNorm sets lr_mult 0 on its own copy: layers after it need "
                "backward and it writes a useless gradient into its input",
            )

    found.extend(_shared_param_hazards(topology))
    found.extend(_unread_outputs(topology, consumers))
    return found


def _shared_param_hazards(topology) -> list[Hazard]:
    """Shared params whose multipliers Net::AppendParam silently merges (net.cpp)."""
    out = []
    for entry in topology.params:
        if entry.owner < 0:
            continue
        owner = topology.params[entry.owner]
        owner_node, node = topology.layers[owner.layer], topology.layers[entry.layer]
        mine = node.param.param[entry.index] if entry.index < len(node.param.param) else caffe_pb2.ParamSpec()
        theirs = (
            owner_node.param.param[owner.index]
            if owner.index < len(owner_node.param.param)
            else caffe_pb2.ParamSpec()
        )
        learnable = topology.learnables[entry.learnable]
        for field, merged in (("lr_mult", learnable.lr_mult), ("decay_mult", learnable.decay_mult)):
            a, b = getattr(theirs, field), getattr(mine, field)
            if a != b:
                out.append(
                    Hazard(
                        "shared_param_mismatch",
                        node.name,
                        f"param '{entry.display_name}' is shared with layer '{owner_node.name}': {field} "
                        f"{_g(b)} here{'' if mine.HasField(field) else ' (default)'}, {_g(a)} there"
                        f"{'' if theirs.HasField(field) else ' (default)'}; Caffe silently uses "
                        f"{_g(merged)} for both (net.cpp, AppendParam: only two explicit values are "
                        "checked against each other)"
                        + (
                            "; the gradient each layer adds still follows its own lr_mult"
                            if field == "lr_mult" and (a == 0) != (b == 0)
                            else ""
                        ),
                    )
                )
    return out


def _unread_outputs(topology, consumers) -> list[Hazard]:
    out = []
    producer = {}
    for node in topology.layers:
        for t, b in enumerate(node.top_ids):
            producer[topology.blob_names[b]] = (node, t)
    for name in topology.outputs:
        node, t = producer[name]
        weight = node.loss_weights[t] if t < len(node.loss_weights) else 0.0
        if weight or node.type in ("Accuracy", "Input") or node.type.endswith("Data"):
            continue
        out.append(
            Hazard(
                "unread_output",
                node.name,
                f"output '{name}' is read by no layer and has no loss weight: nothing trains through "
                "it (expected for a prediction or metric, a mistake for a branch meant to learn)",
            )
        )
    return out
