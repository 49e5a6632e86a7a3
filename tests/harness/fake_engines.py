"""Engines for testing the harness itself (they claim nothing about Caffe)."""

import dataclasses

from harness.engines.reference import ReferenceEngine


class RenamedReference:
    """The reference engine under another name: it must agree with the reference."""

    name = "renamed"

    def __init__(self):
        self.inner = ReferenceEngine()

    def run(self, case):
        return dataclasses.replace(self.inner.run(case), engine=self.name)

    def close(self):
        self.inner.close()


class PerturbedEngine(RenamedReference):
    """Reports every loss 1% too high: a disagreement on every case with a loss."""

    name = "perturbed"

    def run(self, case):
        result = super().run(case)
        return dataclasses.replace(result, losses=tuple(x * 1.01 + 1e-3 for x in result.losses))
