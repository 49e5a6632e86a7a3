"""A campaign on Dask workers against the same campaign on --jobs shards, and what the
scheduler costs per slice.

    python benchmarks/bench_cluster.py [--examples 600] [--seed 0] [--repeat 3] [--noop-slices 300]

Runs the reference engine against real Caffe at one seed, side by side:
  --jobs 1 and 2       the fork pool (fuzz.run_campaign's shards)
  LocalCluster 1 and 2 the sliced campaign on a LocalCluster of that many worker processes,
                       started and stopped inside the timing, as a campaign without --cluster is
  dask workers 1 and 2 the sliced campaign on `dask scheduler` and `dask worker` processes started
                       beforehand (--cluster): a cluster that outlives the campaign
and prints cases per second for each (wall time, start-up included), the median of --repeat
runs taken in turns, so that a load that comes and goes on the machine spreads over all. Then the scheduler's cost
per slice, from slices of no examples through the same path (the plugin's engines, the
resource, the options pickled with each): the round trip one after another, the throughput 32
at a time, and the scheduler process's CPU time per slice. Figures only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.campaign.cluster import ClusterCampaign, run_sliced_campaign, slice_task
from harness.campaign.fuzz import SLICE_EXAMPLES, CampaignOptions, run_campaign
from harness.campaign.report import Progress
from harness.campaign.slices import Slice
from tests.dask_processes import dask_processes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--noop-slices", type=int, default=300)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-cluster-"))

    def options(**kw):
        return CampaignOptions(examples=args.examples, seed=args.seed, report_dir=scratch / "report", **kw)

    print(f"{args.examples} examples, seed {args.seed}, reference against Caffe, {SLICE_EXAMPLES} per slice")
    with (
        dask_processes(scratch / "dask", workers=1) as one,
        dask_processes(scratch / "dask2", workers=2) as two,
    ):
        modes = {
            ("--jobs", 1): lambda p: run_campaign(options(jobs=1), p),
            ("--jobs", 2): lambda p: run_campaign(options(jobs=2), p),
            ("LocalCluster", 1): lambda p: run_sliced_campaign(options(jobs=1), p),
            ("LocalCluster", 2): lambda p: run_sliced_campaign(options(jobs=2), p),
            ("dask workers", 1): lambda p: run_campaign(options(cluster=one.address), p),
            ("dask workers", 2): lambda p: run_campaign(options(cluster=two.address), p),
        }
        walls: dict = {mode: [] for mode in modes}
        for _ in range(args.repeat):
            for mode, run in modes.items():
                walls[mode].append(timed(run, args.examples))
        print(f"{'mode':<16}{'workers':>8}{'wall s':>9}{'cases/s':>9}   (median of {args.repeat})")
        for (mode, workers), times in walls.items():
            wall = statistics.median(times)
            print(f"{mode:<16}{workers:>8}{wall:>9.1f}{args.examples / wall:>9.1f}")
        scheduler_cost(two, options(cluster=two.address), args.noop_slices)


def timed(run, examples: int) -> float:
    """The wall time of one campaign, which must have generated every example it was asked for."""
    started = time.monotonic()
    with open(os.devnull, "w") as quiet:
        records, _ = run(Progress(stream=quiet))
    wall = time.monotonic() - started
    cases = sum(not r.shrinking for r in records)
    if cases != examples:
        raise SystemExit(f"a campaign of {examples} examples generated {cases}")
    return wall


def scheduler_cost(cluster, options: CampaignOptions, count: int) -> None:
    """Slices of no examples: all the scheduler and the task path cost, none of the hunt."""
    from distributed import Client, wait

    with Client(cluster.address) as client, open(os.devnull, "w") as quiet:
        campaign = ClusterCampaign(client, cluster.address, options, Progress(stream=quiet), None)
        campaign.start()
        try:

            def noop(index: int):
                return campaign.submit(
                    slice_task, Slice(index, 0, 0), options, campaign.campaign, None, key=f"noop-{index}"
                )

            noop(-1).result()  # the first task imports what a slice needs on the worker
            started = time.monotonic()
            for index in range(count):
                noop(index).result()
            serial = (time.monotonic() - started) / count
            cpu_before = _cpu_seconds(cluster.scheduler.pid)
            started = time.monotonic()
            futures, index = [], count
            while index < 3 * count:
                futures = [f for f in futures if not f.done()]
                while len(futures) < 32 and index < 3 * count:
                    futures.append(noop(index))
                    index += 1
                wait(futures, return_when="FIRST_COMPLETED")
            wait(futures)
            overlapped = (time.monotonic() - started) / (2 * count)
            cpu = (_cpu_seconds(cluster.scheduler.pid) - cpu_before) / (2 * count)
        finally:
            campaign.close()
    print(
        f"scheduler cost per slice: round trip {serial * 1000:.1f} ms one at a time, "
        f"{overlapped * 1000:.1f} ms each 32 in flight on 2 workers, "
        f"scheduler CPU {cpu * 1000:.2f} ms"
    )


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
