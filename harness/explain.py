"""``explain``: which layers of a user's net run backward, and why, as Caffe decides it.

The analysis is the reference engine's shape-free net construction
(reference_engine/analysis.py); this module only turns it into a table or JSON.
"""

from __future__ import annotations

from reference_engine.analysis import NetAnalysis, analyse_text


def explain(text: str, phase: str = "TRAIN", level: int = 0, stages=()) -> dict:
    """The explain report as plain data; raises CaffeError where Caffe would refuse the net."""
    return report(analyse_text(text, phase, level, stages))


def report(analysis: NetAnalysis) -> dict:
    topology, flags = analysis.topology, analysis.flags
    names = topology.blob_names
    layers = []
    for node, f in zip(topology.layers, flags.layers):
        params = []
        for p, net_param_id in enumerate(node.net_param_ids):
            entry = topology.params[net_param_id]
            learnable = topology.learnables[entry.learnable]
            params.append({
                "name": entry.display_name,
                "lr_mult": learnable.lr_mult,
                "decay_mult": learnable.decay_mult,
                "propagate_down": f.param_propagate_down[p],
                "learns": learnable.lr_mult != 0,
                "update": _update_kind(f.need_backward, f.param_propagate_down[p], learnable),
                "shared_from": None if entry.owner < 0 else topology.layers[topology.params[entry.owner].layer].name,
                "reason": f.param_reasons[p],
            })
        layers.append({
            "name": node.name,
            "type": node.type,
            "need_backward": f.need_backward,
            "logged_need_backward": f.logged_need_backward,
            "reasons": list(f.reasons),
            "bottoms": [{"blob": names[b], "need_backward": f.bottom_need_backward[k],
                         "reasons": list(f.bottom_reasons[k])} for k, b in enumerate(node.bottom_ids)],
            "tops": [{"blob": names[t], "loss_weight": node.loss_weights[j] if j < len(node.loss_weights) else 0.0,
                      "in_place": node.in_place[j]} for j, t in enumerate(node.top_ids)],
            "params": params,
        })
    return {"layers": layers, "outputs": list(topology.outputs), "errors": [],
            "notes": list(analysis.upgrade_notes)}


def _update_kind(need_backward: bool, propagate_down: bool, learnable) -> str:
    """What the solver does to a param: Caffe updates every learnable param each step (sgd_solver.cpp)."""
    if learnable.lr_mult == 0:
        return "frozen (lr_mult 0)"
    if need_backward and propagate_down:
        return "gradient" + (" + decay" if learnable.decay_mult else "")
    if learnable.decay_mult:
        return "decay only (no gradient reaches it)"
    return "unchanged (no gradient, decay_mult 0)"


def render_table(data: dict) -> str:
    """One row per layer in Caffe's order, then its bottoms and params indented beneath."""
    rows = []
    width = max([len(l["name"]) for l in data["layers"]] + [5])
    twidth = max([len(l["type"]) for l in data["layers"]] + [4])
    rows.append(f"{'layer':<{width}}  {'type':<{twidth}}  backward  why")
    for layer in data["layers"]:
        mark = "yes" if layer["need_backward"] else "no"
        if layer["need_backward"] != layer["logged_need_backward"]:
            mark += "*"
        rows.append(f"{layer['name']:<{width}}  {layer['type']:<{twidth}}  {mark:<8}  {'; '.join(layer['reasons'])}")
        for b in layer["bottoms"]:
            flow = "gradient" if b["need_backward"] else "no gradient"
            rows.append(f"{'':<{width}}    <- {b['blob']}: {flow} ({'; '.join(b['reasons'])})")
        for p in layer["params"]:
            shared = f", shared from {p['shared_from']}" if p["shared_from"] else ""
            rows.append(f"{'':<{width}}    param {p['name']}: lr_mult {p['lr_mult']:g}, decay_mult "
                        f"{p['decay_mult']:g}{shared}: {p['update']}")
    if any(l["need_backward"] != l["logged_need_backward"] for l in data["layers"]):
        rows.append("* Caffe's log says otherwise: it prints its flags before force_backward is applied.")
    rows.append("outputs: " + ", ".join(data["outputs"]))
    rows.extend(f"note: {n}" for n in data["notes"])
    return "\n".join(rows)
