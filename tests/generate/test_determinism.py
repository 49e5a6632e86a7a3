"""A seed draws the same cases whatever else the process has imported."""

import subprocess
import sys
import textwrap
from pathlib import Path

DRAW_CASES = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    if sys.argv[2] == "with-constants":
        import many_constants  # noqa: F401  a local module full of literals, loaded first
    from hypothesis import HealthCheck, given, seed, settings
    from harness.generate import cases

    digests = []

    @settings(max_examples=200, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @seed(11)
    @given(cases())
    def draw(case):
        digests.append(case.digest())

    draw()
    print("\\n".join(digests))
""")


def _digests(tmp_path: Path, variant: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", DRAW_CASES, str(tmp_path), variant],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return out.stdout.split()


def test_same_seed_same_cases_in_processes_with_different_imports(tmp_path):
    # Without the fix Hypothesis draws some values from the literals of loaded local modules.
    # (Hypothesis skips integers under 100 in size; every float counts.)
    ints = ", ".join(str(n) for n in range(100, 700, 7))
    floats = ", ".join(repr(n / 97) for n in range(-300, 300, 7))
    strings = ", ".join(repr(f"s{n}") for n in range(60))
    (tmp_path / "many_constants.py").write_text(
        f"INTS = [{ints}]\nFLOATS = [{floats}]\nSTRINGS = [{strings}]\n"
    )
    plain, loaded = _digests(tmp_path, "plain"), _digests(tmp_path, "with-constants")
    assert len(plain) == 200
    assert plain == loaded
