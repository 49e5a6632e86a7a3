"""Engines for the conformance suite's own tests (test_suite_plugin.py), each made with no
arguments, as ``--engine package.module:Class`` makes it."""

from __future__ import annotations

import dataclasses

from tests.planted_bugs import PlantedEngine


class EuclideanLossSignEngine:
    """The reference engine with one planted bug (tests/planted_bugs.py): EuclideanLoss gives
    its second bottom the first one's gradient. Its forward is right, and so is every other
    layer type's backward."""

    name = "planted"

    def __init__(self, inner: PlantedEngine | None = None):
        self.inner = inner or PlantedEngine("EuclideanLoss gives both bottoms the same sign")

    def in_float32(self):
        """The same engine in float32: the suite's precision triage reruns it (triage.py)."""
        return EuclideanLossSignEngine(self.inner.in_float32())

    def run(self, case):
        return dataclasses.replace(self.inner.run(case), engine=self.name)

    def close(self):
        self.inner.close()
