"""Which of Caffe's code a campaign reached: the gcov counters of the rootfs-instrumented
runtime's workers (harness/engines/runtimes/instrumented.py) turned into a line and branch
report of src/caffe with gcovr (HTML for people, JSON for tools), and a summary per group:
net construction, each layer type the reference engine implements, the solvers.

Each worker leaves its counters under <coverage dir>/counters/worker-*/ as <build dir>/....gcda
(GCOV_PREFIX). gcov itself runs inside the tree (its gcov-10 reads gcc 10's files; a newer gcov
does not), next to a copy of the build's .gcno files; its .gcov text files, their source paths
pointed at the tree as this machine sees it, are what gcovr reads (--gcov-use-existing-files).
docs/coverage.md shows the output.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

COUNTERS = "counters"  # under the coverage dir: a directory per worker start
GCOV = "/usr/bin/gcov-10"  # in the tree: the gcov of the compiler that built Caffe
# What a net's construction runs (Net::Init and the helpers it calls), and the solvers.
CONSTRUCTION = ("src/caffe/net.cpp", "src/caffe/util/insert_splits.cpp", "src/caffe/util/upgrade_proto.cpp")
SOLVER = re.compile(r"^src/caffe/(solver\.cpp|solvers/[^/]+\.cpp)$")
# The layer file of a type: the one that instantiates its class (conv_layer.cpp holds
# INSTANTIATE_CLASS(ConvolutionLayer)); its creator may sit in layer_factory.cpp instead.
INSTANTIATE = re.compile(r"^INSTANTIATE_CLASS\((\w+)Layer\);", re.MULTILINE)


@dataclass(frozen=True)
class GroupCoverage:
    name: str
    files: tuple[str, ...]
    lines_covered: int
    lines_total: int
    branches_covered: int
    branches_total: int

    @property
    def lines_percent(self) -> float | None:
        return 100.0 * self.lines_covered / self.lines_total if self.lines_total else None

    @property
    def branches_percent(self) -> float | None:
        return 100.0 * self.branches_covered / self.branches_total if self.branches_total else None

    def to_json(self) -> dict:
        return {
            "group": self.name,
            "files": list(self.files),
            "lines_covered": self.lines_covered,
            "lines_total": self.lines_total,
            "lines_percent": self.lines_percent,
            "branches_covered": self.branches_covered,
            "branches_total": self.branches_total,
            "branches_percent": self.branches_percent,
        }


def counters_dir(coverage_dir: Path) -> Path:
    return Path(coverage_dir) / COUNTERS


def layer_files(source_dir: Path, types: list[str]) -> dict[str, tuple[str, ...]]:
    """Each layer type's file(s) in Caffe's source, from its INSTANTIATE_CLASS line."""
    found: dict[str, list[str]] = {}
    for path in sorted((source_dir / "src" / "caffe" / "layers").glob("*.cpp")):
        for name in INSTANTIATE.findall(path.read_text(errors="replace")):
            found.setdefault(name, []).append(str(path.relative_to(source_dir)))
    return {t: tuple(found.get(t, ())) for t in types}


def reference_layer_types() -> list[str]:
    import reference_engine.layers  # noqa: F401  (registers every layer type)
    from reference_engine.layer import LAYERS

    return sorted(LAYERS)


def groups(files: dict[str, dict], source_dir: Path) -> list[GroupCoverage]:
    """The summary's groups, from gcovr's per-file summary (its JSON summary's "files")."""

    def group(name: str, members) -> GroupCoverage:
        members = tuple(sorted(members))
        rows = [files[f] for f in members if f in files]
        return GroupCoverage(
            name,
            members,
            sum(r["line_covered"] for r in rows),
            sum(r["line_total"] for r in rows),
            sum(r["branch_covered"] for r in rows),
            sum(r["branch_total"] for r in rows),
        )

    out = [group("net construction", CONSTRUCTION)]
    for type_, members in layer_files(source_dir, reference_layer_types()).items():
        if members:
            out.append(group(f"layer {type_}", members))
    out.append(group("solvers", [f for f in files if SOLVER.match(f)]))
    out.append(group("all of src/caffe", files))
    return out


def table(columns: dict[str, list[GroupCoverage]]) -> str:
    """A text table: each group's lines % and branches %, a pair of columns per run (a campaign,
    Caffe's unit tests), the groups as the first run lists them."""
    first = next(iter(columns.values()))
    width = max(len(r.name) for r in first)

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}%"

    by_name = {title: {r.name: r for r in rows} for title, rows in columns.items()}
    head = [f"{'':<{width}}"] + [f"{title:>19}" for title in columns]
    sub = [f"{'group':<{width}}"] + [f"{'lines':>9} {'branches':>9}" for _ in columns]
    lines = ["  ".join(head).rstrip(), "  ".join(sub)]
    for row in first:
        cells = [f"{row.name:<{width}}"]
        for title in columns:
            other = by_name[title].get(row.name)
            cells.append(
                f"{percent(other and other.lines_percent):>9} {percent(other and other.branches_percent):>9}"
            )
        lines.append("  ".join(cells))
    return "\n".join(lines)


class CoverageReport:
    """gcov over one coverage dir's counters, then gcovr: html/index.html, coverage.json
    (gcovr's JSON), summary.json (gcovr's per-file summary) and groups.json."""

    def __init__(self, coverage_dir: Path, runtime):
        self.coverage_dir = Path(coverage_dir).resolve()
        self.runtime = runtime
        from harness.engines.runtimes.instrumented import BUILD_DIR, SOURCE_DIR

        self.tree = runtime.directory
        self.build_inside = BUILD_DIR
        self.source_inside = SOURCE_DIR
        self.source_dir = self.tree / SOURCE_DIR.lstrip("/")

    def gcov_files(self, progress: Callable[[str], None]) -> Path:
        """Run gcov over every worker's counters; returns the directory of its .gcov files."""
        workers = sorted(p for p in counters_dir(self.coverage_dir).glob("worker-*") if p.is_dir())
        out = self.coverage_dir / "gcov"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir()
        used = 0
        for worker in workers:
            objects: dict[Path, list[Path]] = {}
            for gcda in worker.rglob("*.gcda"):
                objects.setdefault(gcda.parent, []).append(gcda)
            if not objects:
                continue
            used += 1
            for directory, gcdas in objects.items():
                inside = "/" + str(directory.relative_to(worker))
                for gcda in gcdas:  # gcov wants each .gcno beside its .gcda
                    gcno = self.tree / inside.lstrip("/") / (gcda.name[: -len(".gcda")] + ".gcno")
                    if gcno.exists():
                        shutil.copyfile(gcno, gcda.with_suffix(".gcno"))
                self._gcov(worker, directory, gcdas, out / worker.name)
        if used == 0:
            raise HarnessError(
                f"coverage dir {self.coverage_dir}: no worker left gcov counters under {counters_dir(self.coverage_dir)}"
            )
        self._point_sources_here(out)
        return out

    def _gcov(self, worker: Path, directory: Path, gcdas: list[Path], out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        mount = "/tmp/coverage"  # /tmp: a tmpfs of its own, where bwrap can make the mount point

        def relative(path: Path) -> str:  # the coverage dir is bound at mount
            return f"{mount}/{path.relative_to(self.coverage_dir)}"

        command = [GCOV, "--preserve-paths", "--branch-probabilities", "--branch-counts", "--all-blocks"]
        command += ["--object-directory", relative(directory)] + [relative(g) for g in sorted(gcdas)]
        argv = ["bwrap", "--ro-bind", str(self.tree), "/", "--dev", "/dev", "--proc", "/proc"]
        argv += [
            "--tmpfs",
            "/tmp",
            "--bind",
            str(self.coverage_dir),
            mount,
            "--unshare-net",
            "--die-with-parent",
        ]
        argv += ["--chdir", relative(out), "--", *command]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise HarnessError(f"gcov over {directory} failed ({done.returncode}): {done.stderr[-2000:]}")

    def _point_sources_here(self, out: Path) -> None:
        """Keep the .gcov files of src/caffe (not its tests, not headers or the system's), with
        their Source: line naming the file where this machine sees it."""
        inside = self.source_inside + "/src/caffe/"
        here = str(self.source_dir) + "/src/caffe/"
        for path in out.rglob("*.gcov"):
            text = path.read_text(errors="replace")
            first = text.split("\n", 1)[0]
            source = first.split("Source:", 1)[-1]
            if not source.startswith(inside) or source.startswith(inside + "test/"):
                path.unlink()
                continue
            path.write_text(text.replace("Source:" + inside, "Source:" + here, 1))

    def write(
        self, progress: Callable[[str], None] = lambda m: print(m, file=sys.stderr)
    ) -> list[GroupCoverage]:
        gcov_dir = self.gcov_files(progress)
        html = self.coverage_dir / "html"
        html.mkdir(exist_ok=True)
        argv = [sys.executable, "-m", "gcovr", "--gcov-use-existing-files", "--keep"]
        # A filter is a regular expression, and the source dir's name has a "+" and dots.
        argv += ["--root", str(self.source_dir), "--filter", re.escape(f"{self.source_dir}/src/caffe/")]
        argv += ["--exclude-throw-branches", "--exclude-unreachable-branches"]
        # Caffe instantiates every layer for float and double, and only float runs: a line counts
        # as run where either instance ran it (coverage.json keeps the instances apart).
        argv += ["--merge-lines", "--merge-mode-functions", "separate"]
        argv += ["--html-details", str(html / "index.html"), "--html-title", "Caffe: what the campaign ran"]
        argv += ["--json", str(self.coverage_dir / "coverage.json")]
        argv += ["--json-summary", str(self.coverage_dir / "summary.json"), str(gcov_dir)]
        progress(f"coverage: gcovr over {gcov_dir}")
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            if "No module named gcovr" in done.stderr:
                raise HarnessError("coverage needs gcovr: pip install -e '.[coverage]'")
            raise HarnessError(f"gcovr failed ({done.returncode}): {done.stderr[-3000:]}")
        summary = json.loads((self.coverage_dir / "summary.json").read_text())
        files = {row["filename"]: row for row in summary["files"]}
        rows = groups(files, self.source_dir)
        (self.coverage_dir / "groups.json").write_text(
            json.dumps({"groups": [r.to_json() for r in rows]}, indent=2) + "\n"
        )
        return rows


def write_coverage_report(coverage_dir: Path, progress=None) -> list[GroupCoverage]:
    """The report of the rootfs-instrumented runtime's counters in coverage_dir (fuzz --coverage)."""
    from harness.engines.runtimes.instrumented import InstrumentedRuntime

    runtime = InstrumentedRuntime()
    runtime.ensure_ready()
    report = CoverageReport(coverage_dir, runtime)
    return report.write(progress) if progress else report.write()
