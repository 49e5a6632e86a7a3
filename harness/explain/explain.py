"""``explain``: which layers of a user's net run backward, and why, as Caffe decides it.

The analysis is the reference engine's shape-free net construction
(reference_engine/analysis.py); this module only turns it into a table or JSON.
"""

from __future__ import annotations

import math
import textwrap

from harness.explain.hazards import find_hazards
from harness.versions import stamp
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
            params.append(
                {
                    "name": entry.display_name,
                    "lr_mult": learnable.lr_mult,
                    "decay_mult": learnable.decay_mult,
                    "propagate_down": f.param_propagate_down[p],
                    "learns": learnable.lr_mult != 0,
                    "update": _update_kind(f.need_backward, f.param_propagate_down[p], learnable),
                    "shared_from": None
                    if entry.owner < 0
                    else topology.layers[topology.params[entry.owner].layer].name,
                    "reason": f.param_reasons[p],
                }
            )
        layers.append(
            {
                "name": node.name,
                "type": node.type,
                "need_backward": f.need_backward,
                "logged_need_backward": f.logged_need_backward,
                "reasons": list(f.reasons),
                "bottoms": [
                    {
                        "blob": names[b],
                        "need_backward": f.bottom_need_backward[k],
                        "reasons": list(f.bottom_reasons[k]),
                    }
                    for k, b in enumerate(node.bottom_ids)
                ],
                "tops": [
                    {
                        "blob": names[t],
                        "loss_weight": node.loss_weights[j] if j < len(node.loss_weights) else 0.0,
                        "in_place": node.in_place[j],
                    }
                    for j, t in enumerate(node.top_ids)
                ],
                "params": params,
                "note": _frozen_but_passing(f, params),
            }
        )
    return {
        **stamp("explain"),
        "layers": layers,
        "outputs": list(topology.outputs),
        "errors": [],
        "notes": list(analysis.upgrade_notes),
        "hazards": [h.to_json() for h in find_hazards(analysis)],
    }


def refused_report(message: str) -> dict:
    """The explain report of a net Caffe refuses: no layers, the refusal its one error."""
    return {**stamp("explain"), "layers": [], "outputs": [], "errors": [message], "notes": [], "hazards": []}


def _frozen_but_passing(flags, params) -> str | None:
    """What to say of a layer that needs backward although none of its params learns: it
    is on the gradient's way to a bottom, and that costs nothing but the pass."""
    if (
        flags.need_backward
        and params
        and not any(p["learns"] for p in params)
        and any(flags.bottom_need_backward)
    ):
        return (
            "still needs backward, harmlessly: a gradient passes through it to its bottoms, "
            "but with lr_mult 0 its own weights do not move"
        )
    return None


def _update_kind(need_backward: bool, propagate_down: bool, learnable) -> str:
    """What the solver does to a param: Caffe updates every learnable param each step (sgd_solver.cpp)."""
    if learnable.lr_mult == 0:
        return "frozen (lr_mult 0)"
    if need_backward and propagate_down:
        return "gradient" + (" + decay" if learnable.decay_mult else "")
    if learnable.decay_mult:
        return "decay only (no gradient reaches it)"
    return "unchanged (no gradient, decay_mult 0)"


def render_table(data: dict, width: int | None = None) -> str:
    """The answer first (the hazards: what Caffe will do that the net may not mean), then one
    row per layer in Caffe's order with its bottoms and params beneath, each line wrapped to
    ``width`` columns under its own indent (None: unwrapped)."""
    lines = _Lines(width)
    add = lines.add
    if data.get("hazards"):
        add("hazards (what Caffe will do that this net may not mean):")
        for h in data["hazards"]:
            add(f"  [{h['kind']}] {h['layer']}: {h['message']}", hang=4)
        add("")
    name_width = max([len(l["name"]) for l in data["layers"]] + [5])
    type_width = max([len(l["type"]) for l in data["layers"]] + [4])
    why = name_width + type_width + 14  # where the "why" column starts
    add(f"{'layer':<{name_width}}  {'type':<{type_width}}  backward  why")
    for layer in data["layers"]:
        mark = "yes" if layer["need_backward"] else "no"
        if layer["need_backward"] != layer["logged_need_backward"]:
            mark += "*"
        reasons = "; ".join(layer["reasons"] + ([layer["note"]] if layer.get("note") else []))
        add(f"{layer['name']:<{name_width}}  {layer['type']:<{type_width}}  {mark:<8}  {reasons}", indent=why)
        for b in layer["bottoms"]:
            flow = "gradient" if b["need_backward"] else "no gradient"
            add(
                f"{'':<{name_width}}    <- {b['blob']}: {flow} ({'; '.join(b['reasons'])})",
                indent=name_width + 7,
            )
        for p in layer["params"]:
            shared = f", shared from {p['shared_from']}" if p["shared_from"] else ""
            add(
                f"{'':<{name_width}}    param {p['name']}: lr_mult {p['lr_mult']:g}, decay_mult "
                f"{p['decay_mult']:g}{shared}: {p['update']}",
                indent=name_width + 7,
            )
    if any(l["need_backward"] != l["logged_need_backward"] for l in data["layers"]):
        add("* Caffe's log says otherwise: it prints its flags before force_backward is applied.", hang=2)
    add("outputs: " + ", ".join(data["outputs"]), hang=2)
    for n in data["notes"]:
        add(f"note: {n}", hang=2)
    return lines.text()


class _Lines:
    """Text lines, each wrapped to ``width`` columns (None: unwrapped), its continuation
    lines starting at column ``indent + hang``."""

    def __init__(self, width: int | None):
        self.width = width
        self.rows: list[str] = []

    def add(self, text: str, indent: int = 0, hang: int = 0):
        if self.width is None or len(text) <= self.width:
            self.rows.append(text)
        else:
            self.rows.extend(
                textwrap.wrap(
                    text, self.width, subsequent_indent=" " * (indent + hang), break_on_hyphens=False
                )
            )

    def text(self) -> str:
        return "\n".join(self.rows)


# ---- confirmed by real Caffe ------------------------------------------------------------------

DEFAULT_SOLVER = 'type: "SGD" base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005 lr_policy: "fixed"'
# Fields a user's solver may hold that the explain run must drop: the case's own net is used,
# and test nets, snapshots and display would need files or print (worker.py, solver_text).
_SOLVER_FIELDS_DROPPED = (
    "net",
    "net_param",
    "train_net",
    "train_net_param",
    "test_net",
    "test_net_param",
    "test_iter",
    "test_interval",
    "test_state",
    "train_state",
    "snapshot",
    "snapshot_prefix",
    "display",
    "max_iter",
    "weights",
)
# Policies whose rate at iteration 0 is base_lr (sgd_solver.cpp, GetLearningRate).
_BASE_RATE_POLICIES = ("fixed", "step", "exp", "inv", "poly")
# A decay-only SGD step is data - rate*(decay*data), three float32 roundings (Regularize's axpy,
# ComputeUpdateValue's axpby, Blob::Update's axpy); allow two ulps of the weight for BLAS's order.
_DECAY_STEP_ULPS = 2


def solver_for_explain(text: str | None) -> tuple[str, object]:
    """The user's solver (or the default SGD) without net, test or snapshot fields; legacy
    solver_type upgraded as Caffe does when it reads the file (reference_engine/solvers)."""
    from google.protobuf import text_format

    from harness.errors import HarnessError
    from reference_engine import caffe_pb2
    from reference_engine.checks import CaffeError
    from reference_engine.solvers import upgrade_solver_type

    try:
        param = text_format.Parse(text if text is not None else DEFAULT_SOLVER, caffe_pb2.SolverParameter())
        param = upgrade_solver_type(param)
    except text_format.ParseError as e:
        raise HarnessError(f"not a valid SolverParameter prototxt: {e}") from e
    except CaffeError as e:
        raise HarnessError(f"Caffe refuses this solver: {e.message}") from e
    for name in _SOLVER_FIELDS_DROPPED:
        param.ClearField(name)
    return text_format.MessageToString(param), param


def caffe_section(data: dict, case, result, solver_param) -> dict:
    """Caffe's flags next to ours, the gradient norms it computed, and what one step changed."""
    import numpy as np

    section = {
        "outcome": result.outcome.value,
        "stage": result.stage,
        "message": result.message,
        "runtime": result.info.get("runtime"),
        "version": result.info.get("caffe_version"),
        "agree": True,
        "layers": [],
        "notes": [],
    }
    if result.outcome.value != "ok":
        section["agree"] = None
        return section
    if result.info.get("flags_probe"):
        section["notes"].append(f"{result.info['flags_probe']}: compared Caffe's logged flags only")
    ours = {layer["name"]: layer for layer in data["layers"]}
    ours_names = [layer["name"] for layer in data["layers"]]
    theirs_names = [record.name for record in result.layers]
    if ours_names != theirs_names:
        section["agree"] = False
        section["notes"].append(f"layer lists differ: ours {ours_names}, Caffe's {theirs_names}")
    rate = solver_param.base_lr if solver_param.lr_policy in _BASE_RATE_POLICIES else None
    exact_decay = solver_param.type == "SGD" and solver_param.regularization_type == "L2" and rate is not None
    after = result.param_history[0] if result.param_history else {}
    for record in result.layers:
        mine = ours.get(record.name)
        differences = []
        if mine is not None:
            pairs = [
                ("need_backward", record.need_backward, mine["need_backward"]),
                ("logged_need_backward", record.logged_need_backward, mine["logged_need_backward"]),
                (
                    "bottom_need_backward",
                    record.bottom_need_backward,
                    tuple(b["need_backward"] for b in mine["bottoms"]),
                ),
                (
                    "param_propagate_down",
                    record.param_propagate_down,
                    tuple(p["propagate_down"] for p in mine["params"]),
                ),
            ]
            for name, caffe_value, our_value in pairs:
                if caffe_value is not None and tuple(np.atleast_1d(caffe_value)) != tuple(
                    np.atleast_1d(our_value)
                ):
                    differences.append(f"{name}: caffe={_flag(caffe_value)} reference={_flag(our_value)}")
        if differences:
            section["agree"] = False
        bottoms = [{"blob": b, "grad_norm": _norm(result.blob_diff.get(b))} for b in record.bottoms]
        params = []
        initial = case.params.get(record.name, ())
        for i, diff in enumerate(result.param_diff.get(record.name, ())):
            entry = {
                "index": i,
                "grad_norm": _norm(diff),
                "changed": None,
                "max_abs_change": None,
                "decay_only": None,
            }
            if i < len(initial) and record.name in after:
                old, new = initial[i], after[record.name][i]
                change = new.astype(np.float64) - old
                entry["changed"] = bool(np.any(new != old))
                entry["max_abs_change"] = float(np.max(np.abs(change))) if change.size else 0.0
                lr_mult = record.param_lr[i] if record.param_lr else 1.0
                decay_mult = record.param_decay[i] if record.param_decay else 1.0
                if exact_decay and not np.any(diff) and lr_mult * decay_mult * solver_param.weight_decay != 0:
                    entry["decay_only"] = _is_decay_step(
                        old, new, rate * lr_mult, solver_param.weight_decay * decay_mult
                    )
            params.append(entry)
        section["layers"].append(
            {
                "name": record.name,
                "agree": not differences,
                "differences": differences,
                "caffe": {
                    "need_backward": record.need_backward,
                    "logged_need_backward": record.logged_need_backward,
                    "bottom_need_backward": _list(record.bottom_need_backward),
                    "param_propagate_down": _list(record.param_propagate_down),
                },
                "bottoms": bottoms,
                "params": params,
            }
        )
    section["losses"] = list(result.losses)
    section["step_unknown"] = _why_step_unknown(case, result)
    section["non_finite"] = _where_non_finite(result)
    return section


def _why_step_unknown(case, result) -> str | None:
    """What every param's step shows, and why, where no step can be shown (None: each can)."""
    if not result.param_history:
        # explain gives a solver to TRAIN nets only: a TEST net never steps.
        return f"not run (phase {case.phase}: a solver always trains its TRAIN net)"
    if not case.params:
        # The reference engine could not shape the net (synthetic_case), so Caffe filled the params.
        return "not compared (Caffe's own fillers set the weights it started from)"
    return None


def _where_non_finite(result) -> str | None:
    """Where Caffe's numbers stopped being finite: the first such blob of the forward, else the
    first layer of the backward to write such a diff (None: every number is finite)."""
    import numpy as np

    def finite(arrays) -> bool:
        return all(np.all(np.isfinite(a)) for a in arrays if a is not None)

    for record in result.layers:
        for top in record.tops:
            if not finite([result.blob_data.get(top)]):
                return f"from the forward: blob '{top}' is not finite on the synthetic inputs"
    for record in reversed(result.layers):
        diffs = [result.blob_diff.get(b) for b in record.bottoms] + list(
            result.param_diff.get(record.name, ())
        )
        if not finite(diffs):
            return f"from the backward of layer '{record.name}', the forward being finite"
    return None


def _is_decay_step(old, new, local_rate, local_decay) -> bool:
    """Did SGD's first step move ``old`` to ``new`` by exactly -local_rate*local_decay*old?"""
    import numpy as np

    f = np.float32
    expected = old - f(local_rate) * (f(local_decay) * old)
    ulp = np.spacing(np.abs(old).astype(np.float32))
    return bool(np.all(np.abs(new - expected) <= _DECAY_STEP_ULPS * ulp)) and bool(np.any(new != old))


def _norm(array):
    import numpy as np

    return None if array is None else float(np.linalg.norm(np.asarray(array, dtype=np.float64)))


def _list(value):
    return None if value is None else list(value)


def _flag(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flag(v) for v in value) + "]"
    return {True: "yes", False: "no", None: "?"}.get(value, str(value))


def render_caffe(section: dict, width: int | None = None) -> str:
    """The real-Caffe half of the table: flags agreement, gradient norms, what one step did,
    each line wrapped to ``width`` columns as render_table's are (None: unwrapped)."""
    lines = _Lines(width)
    add = lines.add
    add(
        f"real Caffe ({section.get('version') or 'unknown version'}): {section['outcome']}"
        + (f" at {section['stage']}: {section['message']}" if section["outcome"] != "ok" else ""),
        hang=2,
    )
    if section["outcome"] != "ok":
        return lines.text()
    name_width = max([len(l["name"]) for l in section["layers"]] + [5])
    add(
        f"{'layer':<{name_width}}  flags     caffe backward  gradients (L2 norm) and one solver step",
        indent=name_width + 28,
    )

    def gradient(value) -> str:
        if value is None:
            return "n/a"
        if value == 0:
            return "0 (exactly)"
        if math.isfinite(value):
            return f"{value:.3g}"
        return f"{value:g} ({section['non_finite']})"

    for layer in section["layers"]:
        flags = "agree" if layer["agree"] else "DIFFER"
        bottoms = "; ".join(f"<- {b['blob']}: {gradient(b['grad_norm'])}" for b in layer["bottoms"])
        add(
            f"{layer['name']:<{name_width}}  {flags:<8}  {_flag(layer['caffe']['need_backward']):<14}  "
            f"{bottoms}".rstrip(),
            indent=name_width + 28,
        )
        for d in layer["differences"]:
            add(f"{'':<{name_width}}    differs: {d}", indent=name_width + 4, hang=2)
        for p in layer["params"]:
            if p["changed"] is None:
                step = section["step_unknown"]
            elif not p["changed"]:
                step = "unchanged"
            else:
                step = f"changed (max |dw| {p['max_abs_change']:.3g})"
            if p["decay_only"]:
                step += ", by weight decay only: dw = -lr*lr_mult*weight_decay*decay_mult*w exactly"
            elif p["decay_only"] is False and p["changed"]:
                step += ", without a gradient"
            add(
                f"{'':<{name_width}}    param {p['index']}: gradient {gradient(p['grad_norm'])}; step: {step}",
                indent=name_width + 4,
                hang=2,
            )
    for n in section["notes"]:
        add(f"note: {n}", hang=2)
    add(
        "flags: Caffe and the reference agree"
        if section["agree"]
        else "flags: Caffe and the reference DISAGREE"
    )
    return lines.text()
