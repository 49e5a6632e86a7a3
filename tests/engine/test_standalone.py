"""The reference engine is a product of its own: importable without the harness."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import reference_engine


def test_reference_engine_imports_nothing_from_the_harness():
    modules = [m.name for m in pkgutil.walk_packages(reference_engine.__path__, "reference_engine.")]
    script = (
        "import importlib, sys\n"
        + "".join(f"importlib.import_module({m!r})\n" for m in modules)
        + "print(sorted(n for n in sys.modules if n == 'harness' or n.startswith('harness.')))"
    )
    found = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert len(modules) > 40
    assert found.stdout.strip() == "[]"
