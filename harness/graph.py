"""The net as a Graphviz picture: layers coloured by backward, edges by gradient flow.

Input is the explain report (harness/explain.py). Layers that need backward are
filled orange, those that do not grey; a bold green border marks layers whose
params learn; edges carry gradient (solid) or not (dashed), and a red "✂" marks a
propagate_down: false cut. ``blame`` outlines one layer in red (the first divergence).
"""

from __future__ import annotations

import shutil
import subprocess

from .errors import HarnessError


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(report: dict, blame: str | None = None, title: str | None = None) -> str:
    lines = ["digraph net {", "  rankdir=TB; nodesep=0.25; ranksep=0.35;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=8];']
    if title:
        lines.append(f"  labelloc=t; label={_quote(title)};")
    producer: dict[str, str] = {}
    for i, layer in enumerate(report["layers"]):
        node = f"l{i}"
        learns = any(p["learns"] for p in layer["params"])
        fill = "#f6b26b" if layer["need_backward"] else "#e0e0e0"
        label = f"{layer['name']}\\n{layer['type']}"
        if layer["params"]:
            label += "\\nlr " + "/".join(f"{p['lr_mult']:g}" for p in layer["params"])
        attrs = [f"label={_quote(label)}", f'fillcolor="{fill}"']
        if learns:
            attrs += ['color="#38761d"', "penwidth=2.5"]
        if layer["name"] == blame:
            attrs += ['color="#cc0000"', "penwidth=4", 'xlabel="first divergence"', 'fontcolor="#cc0000"']
        lines.append(f"  {node} [{', '.join(attrs)}];")
        for b in layer["bottoms"]:
            source = producer.get(b["blob"])
            if source is None:
                continue
            cut = any("propagate_down: false" in r for r in b["reasons"])
            style = "solid" if b["need_backward"] else "dashed"
            label = b["blob"] + ("  ✂" if cut else "")
            color = "#cc0000" if cut else ("#b45f06" if b["need_backward"] else "#999999")
            lines.append(f"  {source} -> {node} [label={_quote(label)}, style={style}, color=\"{color}\"];")
        for t in layer["tops"]:
            producer[t["blob"]] = node
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
