"""The long mutation run: mutated prototxts, solvers and bundles through explain, check and
replay, counting exit codes and tracebacks (tests/harness/test_bad_input.py is the bounded one).

    python benchmarks/mutation_fuzz.py [--mutants 5000] [--seed 0]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.harness.test_bad_input import (
    BUNDLE_FILES,
    NET,
    RENAMED,
    SOLVER,
    _pristine_bundle,
    exit_code,
    mutants,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mutation-fuzz-"))
    pristine = _pristine_bundle(work / "pristine")
    codes, tracebacks = Counter(), []

    def run(argv):
        try:
            codes[exit_code(argv)] += 1
        except Exception:  # noqa: BLE001 - what this benchmark counts
            tracebacks.append(traceback.format_exc())

    @settings(
        max_examples=args.mutants, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @seed(args.seed)
    @given(kind=st.sampled_from(("net", "solver", "bundle")), data=st.data())
    def mutate(kind, data):
        case = work / "case"
        shutil.rmtree(case, ignore_errors=True)
        case.mkdir()
        engines = ["--engine", RENAMED, "--against", "reference"]
        if kind == "net":
            (case / "net.prototxt").write_bytes(data.draw(mutants(NET)))
            run(["explain", str(case / "net.prototxt")])
            run(["check", str(case / "net.prototxt"), *engines])
        elif kind == "solver":
            (case / "net.prototxt").write_bytes(NET)
            (case / "solver.prototxt").write_bytes(data.draw(mutants(SOLVER)))
            run(["check", str(case / "net.prototxt"), "--solver", str(case / "solver.prototxt"), *engines])
        else:
            bundle = case / "b"
            shutil.copytree(pristine, bundle)
            target = bundle / data.draw(st.sampled_from(BUNDLE_FILES))
            target.write_bytes(data.draw(mutants(target.read_bytes())))
            run(["replay", str(bundle), *engines])

    mutate()
    print(
        f"{args.mutants} mutants, {sum(codes.values()) + len(tracebacks)} commands: "
        f"exit codes {dict(sorted(codes.items()))}, tracebacks {len(tracebacks)}"
    )
    for text in tracebacks[:5]:
        print(text)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
