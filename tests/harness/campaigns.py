"""Small campaigns whose artefacts tests read: with engines that claim nothing about Caffe, a
loss 1% off, so that the campaign disagrees and writes a bundle."""

from pathlib import Path

from harness.cli import main

PERTURBED = "tests.harness.fake_engines:PerturbedEngine"


def disagreeing_campaign(report: Path) -> Path:
    """`fuzz` of 15 cases against the reference engine, its report written in ``report``."""
    argv = ["-q", "fuzz", "--engine", PERTURBED, "--against", "reference", "--examples", "15", "--seed", "3"]
    assert main([*argv, "--report", str(report)]) == 1
    return report
