"""The net as a Graphviz picture: layers coloured by backward, edges by gradient flow.

Input is the explain report (harness/explain.py). Layers that need backward are
filled orange, those that do not grey; a bold green border marks layers whose
params learn; edges carry gradient (solid) or not (dashed), and a red "✂" marks a
propagate_down: false cut (a tee arrowhead). Split layers are folded into the edges
they stand for; hazards outline a layer in dashed red; with --against caffe each edge
carries the gradient norm Caffe computed. ``blame`` outlines one layer in red (the first
divergence). A legend explains the marks, in each picture or, where many pictures share a page
(report.html), drawn once on its own (legend_dot).
"""

from __future__ import annotations

import shutil
import subprocess

from harness.errors import HarnessError


def _quote(text: str) -> str:
    """A dot string: quotes escaped; a backslash is left alone so that our "\\n" breaks the line."""
    return '"' + text.replace('"', '\\"') + '"'


HEADER = [
    "  rankdir=TB; nodesep=0.2; ranksep=0.3; newrank=true; splines=true;",
    '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=9, height=0.3];',
    '  edge [fontname="Helvetica", fontsize=7, arrowsize=0.6];',
]


def _legend(blame: bool) -> list[str]:
    """The legend's cluster: every mark a picture can carry, the first divergence where one is marked."""
    lines = [
        "  subgraph cluster_legend {",
        '    label="legend"; fontsize=9; style=dashed; color="#999999";',
        '    k1 [label="needs backward", fillcolor="#f6b26b"];',
        '    k2 [label="no backward", fillcolor="#e0e0e0"];',
        '    k3 [label="params learn", fillcolor="#ffffff", color="#38761d", penwidth=2.5];',
        '    k4 [label="hazard", fillcolor="#ffffff", color="#cc0000", style="rounded,filled,dashed", penwidth=2];',
        '    k1 -> k2 [label="gradient", color="#b45f06"];',
        '    k2 -> k3 [label="no gradient", style=dashed, color="#999999"];',
        '    k3 -> k4 [label="cut: propagate_down: false", color="#cc0000", style=dashed, arrowhead=tee];',
    ]
    if blame:
        lines.append(
            '    k5 [label="first divergence", fillcolor="#ffffff", color="#cc0000", penwidth=4, '
            'fontcolor="#cc0000"];'
        )
    return [*lines, "  }"]


def legend_dot() -> str:
    """The legend alone, for a page of pictures of bundles drawn without one (to_dot's
    ``legend=False``), the first divergence among its marks."""
    return "\n".join(["digraph legend {", *HEADER, "  rankdir=LR;", *_legend(blame=True), "}"])


def to_dot(report: dict, blame: str | None = None, title: str | None = None, legend: bool = True) -> str:
    """Split layers are drawn as the edges they stand for, so a 30-layer net stays readable.
    ``legend``: False where the page draws the legend once for all its pictures (legend_dot)."""
    lines = ["digraph net {", *HEADER]
    if title:
        lines.append(f"  labelloc=t; label={_quote(title)};")
    hazards = {}
    for h in report.get("hazards", []):
        hazards.setdefault(h["layer"], []).append(h["kind"])
    norms = {}
    for layer in report.get("caffe", {}).get("layers", []):
        for b in layer["bottoms"]:
            norms[(layer["name"], b["blob"])] = b["grad_norm"]
    producer: dict[str, str] = {}
    for i, layer in enumerate(report["layers"]):
        node = f"l{i}"
        if layer["type"] == "Split":
            # A split top stands for its bottom's producer: consumers are wired to it directly.
            source = producer.get(layer["bottoms"][0]["blob"]) if layer["bottoms"] else None
            for t in layer["tops"]:
                if source:
                    producer[t["blob"]] = source
            continue
        learns = any(p["learns"] for p in layer["params"])
        fill = "#f6b26b" if layer["need_backward"] else "#e0e0e0"
        label = f"{layer['name']}\\n{layer['type']}"
        if layer["params"]:
            label += "\\nlr " + "/".join(f"{p['lr_mult']:g}" for p in layer["params"])
            if any(p["update"].startswith("decay only") for p in layer["params"]):
                label += " (decay only)"
        if any(t["in_place"] for t in layer["tops"]):
            label += "\\n(in place)"
        attrs = [f"label={_quote(label)}", f'fillcolor="{fill}"']
        if learns:
            attrs += ['color="#38761d"', "penwidth=2.5"]
        if layer["name"] in hazards:
            attrs += [
                'color="#cc0000"',
                'style="rounded,filled,dashed"',
                "penwidth=2",
                f"tooltip={_quote(', '.join(hazards[layer['name']]))}",
            ]
        if layer["name"] == blame:
            attrs += ['color="#cc0000"', "penwidth=4", 'xlabel="first divergence"', 'fontcolor="#cc0000"']
        lines.append(f"  {node} [{', '.join(attrs)}];")
        for b in layer["bottoms"]:
            source = producer.get(b["blob"])
            if source is None:
                continue
            cut = any("propagate_down: false" in r for r in b["reasons"])
            blob = b["blob"].split("_split_")[0] if "_split_" in b["blob"] else b["blob"]
            label = blob + ("  ✂ cut" if cut else "")
            norm = norms.get((layer["name"], b["blob"]))
            if norm is not None:
                label += f"\\n|grad| {norm:.2g}"
            style = "solid" if b["need_backward"] else "dashed"
            color = "#cc0000" if cut else ("#b45f06" if b["need_backward"] else "#999999")
            extra = ", arrowhead=tee" if cut else ""
            lines.append(
                f'  {source} -> {node} [label={_quote(label)}, style={style}, color="{color}"{extra}];'
            )
        for t in layer["tops"]:
            producer[t["blob"]] = node
    if legend:
        lines += _legend(blame is not None)
    lines.append("}")
    return "\n".join(lines)


def render(dot: str, fmt: str) -> bytes:
    """Run Graphviz's ``dot`` to make SVG or PNG."""
    if shutil.which("dot") is None:
        raise HarnessError(f"--{fmt}: Graphviz's 'dot' is not installed (apt-get install graphviz)")
    done = subprocess.run(["dot", f"-T{fmt}"], input=dot.encode(), capture_output=True, check=False)
    if done.returncode != 0:
        raise HarnessError(f"dot -T{fmt} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout
