"""A sliced campaign (slices.py) on Dask distributed: a scheduler, workers, and this client.

Dask does the scheduling, the queue and the rerun of a lost worker's slices; this module only
says what a slice needs and what the client does with the results:

- Each worker holds the campaign's engines in a WorkerPlugin, started once (the Caffe worker
  process, the reference engine) and kept across slices, and says on the campaign's event
  topic whether they started. One whose engines cannot start (its Caffe runtime is not
  ready, the engine does not import) says why, and never receives the resource that every
  slice asks for, so it takes no slices. The resource is 1 per worker, so a worker runs one
  slice at a time whatever its thread count: the engines are not shared between threads.
- The client keeps IN_FLIGHT_PER_WORKER slices per ready worker submitted, takes each slice's
  records and bundles as it completes (a slice is counted once: only its future's one result
  is taken, however often Dask ran it), and writes the bundles itself.
- Ctrl-C cancels the slices not finished and reports the ones that did; a scheduler that goes
  away ends the campaign with CampaignFailed, whose records are the slices that finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
import traceback
import uuid
import warnings

from distributed import WorkerPlugin, as_completed
from distributed.client import FutureCancelledError
from distributed.core import Status

from harness.campaign.fuzz import (
    CampaignFailed,
    CampaignOptions,
    _bundle_dir,
    corpus_cases,
    known_signatures,
    replay,
)
from harness.campaign.slices import (
    CampaignEngines,
    Slice,
    SliceCollector,
    campaign_slices,
    run_slice,
    write_files,
)
from harness.errors import HarnessError

IN_FLIGHT_PER_WORKER = 2  # one running, one waiting on the worker: no idle round trip between slices
CONNECT_TIMEOUT = "30s"  # to reach the scheduler
WORKERS_TIMEOUT_S = 120.0  # for a first worker to join a scheduler that has none


class CampaignEnginesPlugin(WorkerPlugin):
    """The campaign's engines on one Dask worker, from setup to teardown."""

    def __init__(self, options: CampaignOptions, campaign: str):
        self.options, self.campaign = options, campaign
        self.engines: CampaignEngines | None = None
        self.unready: str | None = None  # why this worker takes no slices

    async def setup(self, worker) -> None:
        # Paused while the engines start, then as it was: a worker that starts running again is
        # sent the tasks that wait for what it has, where a resource set alone leaves them
        # waiting (dask/distributed#6677), as the slices of a campaign whose every ready worker
        # was lost would wait for this one.
        status, worker.status = worker.status, Status.paused
        try:
            # Off the event loop: torch imports and a Caffe runtime check take seconds, during
            # which the worker must keep answering the scheduler.
            self.engines = await asyncio.to_thread(CampaignEngines, self.options)
            await worker.set_resources(**{_name(self.campaign): 1})
        except HarnessError as e:
            self.unready = str(e)
        finally:
            worker.status = status
        worker.log_event(_name(self.campaign), {"worker": worker.address, "unready": self.unready})

    async def teardown(self, worker) -> None:
        if self.engines is None:
            return
        try:
            await worker.set_resources(**{_name(self.campaign): 0})
        finally:  # a worker closing may no longer reach the scheduler; its Caffe stops all the same
            await asyncio.to_thread(self.engines.close)


def _name(campaign: str) -> str:
    """The campaign's plugin, resource and event topic: its own, so that campaigns sharing a
    cluster keep their engines apart."""
    return f"caffe-conformance-{campaign}"


def _engines_here(campaign: str) -> CampaignEngines:
    from distributed import get_worker

    return get_worker().plugins[_name(campaign)].engines


def slice_task(
    slice_: Slice, options: CampaignOptions, campaign: str, not_after: float | None, known: frozenset[str]
):
    """Run one slice on this worker, until a time budget's end (time.time()) at the latest;
    None if it starts after it. ``known``: the signatures the corpus holds already."""
    from hypothesis.errors import HypothesisDeprecationWarning

    if not_after is not None and time.time() >= not_after:
        return None
    seconds = None if not_after is None else not_after - time.time()
    with warnings.catch_warnings():
        # Dask's own threads draw from the random module while the slice runs; Hypothesis,
        # which watches that module's state around each draw, takes it for the strategy's use.
        warnings.simplefilter("ignore", HypothesisDeprecationWarning)
        return run_slice(slice_, _engines_here(campaign), options, known, seconds)


def replay_task(cases, options: CampaignOptions, campaign: str):
    """The corpus's cases (fuzz.corpus_cases), replayed on this worker: their records."""
    engines, records = _engines_here(campaign), []
    replay(cases, engines.under_test, engines.oracle, engines.triage, records.append)
    return records


def _unready_reason(campaign: str, dask_worker=None) -> str | None:
    return dask_worker.plugins[_name(campaign)].unready


@contextlib.contextmanager
def _scheduler(options: CampaignOptions):
    """The scheduler's address: --cluster's, or a LocalCluster's of --jobs worker processes."""
    if options.cluster is not None:
        yield options.cluster
        return
    from distributed import LocalCluster

    # Ctrl-C reaches every process of the terminal's group, the workers too, which would die of
    # it mid-slice; this client alone must take it (run's KeyboardInterrupt). A worker started
    # while SIGINT is ignored keeps ignoring it: Python leaves an inherited SIG_IGN alone.
    with _sigint_ignored():
        cluster = LocalCluster(
            n_workers=options.jobs,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            # No dashboard is wanted, but the scheduler's HTTP server (its metrics) starts
            # anyway: on a free port, rather than on 8787, where another cluster may be.
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )
    with cluster:
        yield cluster.scheduler_address


@contextlib.contextmanager
def _sigint_ignored():
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread, where a Ctrl-C lands
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class ClusterCampaign:
    """One campaign's client side: what is in flight, what finished, what failed."""

    def __init__(self, client, address: str, options: CampaignOptions, progress, not_after: float | None):
        self.client, self.address, self.options, self.progress = client, address, options, progress
        self.campaign = uuid.uuid4().hex
        self.collector = SliceCollector(_bundle_dir(options), progress.update)
        self.slices = campaign_slices(options)
        self.not_after = not_after  # the end of a time budget, by time.time(): workers read it too
        self.in_flight: dict = {}  # future -> Slice
        self.completed = as_completed()  # the futures in flight, as they finish
        # Every worker that has held the engines, as their plugins report (events come on the
        # client's own thread): they size the window, with no call to the scheduler per slice.
        self.ready: set[str] = set()
        self.errors: list[str] = []
        self.known: frozenset[str] = frozenset()  # the corpus's signatures, once it is replayed

    def start(self) -> None:
        """Every worker starts the engines; fail, with each worker's reason, if none could."""
        try:
            self.client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError:
            raise HarnessError(
                f"no Dask worker joined the scheduler at {self.address} in {WORKERS_TIMEOUT_S:.0f} s"
            ) from None
        self.client.subscribe_topic(_name(self.campaign), self._worker_started)
        self.client.register_plugin(CampaignEnginesPlugin(self.options, self.campaign), _name(self.campaign))
        reasons = self.client.run(_unready_reason, self.campaign)
        self.ready.update(worker for worker, reason in reasons.items() if reason is None)
        if not self.ready:
            raise HarnessError(
                f"no worker of the Dask scheduler at {self.address} can run the campaign's engines:\n"
                + "\n".join(f"  {worker}: {reason}" for worker, reason in sorted(reasons.items()))
            )

    def _worker_started(self, event) -> None:
        _, message = event
        if message["unready"] is None:
            self.ready.add(message["worker"])
        else:
            self.progress.note(f"worker {message['worker']} takes no slices: {message['unready']}")

    def run(self) -> bool:
        """Replay the corpus, then the slices; True if Ctrl-C cut it short."""
        try:
            cases = corpus_cases(self.options)
            if cases:
                corpus = self.submit(replay_task, cases, self.options, self.campaign, key="corpus")
                for record in corpus.result():
                    self.collector.take_corpus(record)
                self.known = known_signatures(self.collector.corpus)
            self._submit_more()
            for future in self.completed:
                self._take(future, self.in_flight.pop(future))
                self._submit_more()
        except KeyboardInterrupt:
            self.progress.note("interrupted: the slices not finished are cancelled; writing the report")
            self.client.cancel(list(self.in_flight))
            return True
        except (FutureCancelledError, OSError):
            # A future cancelled by no one here, or a call that cannot reach the scheduler: if
            # the client has lost the scheduler, that is the campaign's end; else a bug.
            if not self._scheduler_gone():
                raise
            finished = len(self.collector.slices())
            gone = f"the Dask scheduler at {self.address} went away; the report holds the {finished} "
            raise CampaignFailed(self.collector.records(), False, [gone + "slice(s) that finished"]) from None
        return False

    def _scheduler_gone(self, patience_s: float = 10.0) -> bool:
        """Whether the client has lost the scheduler. A call can fail on a closed connection
        (CommClosedError) a moment before the client itself notices: give it that moment."""
        deadline = time.monotonic() + patience_s
        while self.client.status == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.client.status != "running"

    def submit(self, function, *args, key: str):
        """Run function(*args) on a worker holding the campaign's engines."""
        return self.client.submit(
            function, *args, key=f"{key}-{self.campaign}", resources={_name(self.campaign): 1}
        )

    def _submit_more(self) -> None:
        window = IN_FLIGHT_PER_WORKER * len(self.ready)
        while len(self.in_flight) < window and not self.errors:
            if self.not_after is not None and time.time() >= self.not_after:
                return
            slice_ = next(self.slices, None)
            if slice_ is None:
                return
            future = self.submit(
                slice_task,
                slice_,
                self.options,
                self.campaign,
                self.not_after,
                self.known,
                key=f"slice-{slice_.index}",
            )
            self.in_flight[future] = slice_
            self.completed.add(future)

    def _take(self, future, slice_: Slice) -> None:
        if future.status == "error":
            exception = future.exception()
            text = "".join(traceback.format_exception(type(exception), exception, future.traceback()))
            self.errors.append(f"slice {slice_.index}:\n{text}")
            self.progress.note(f"slice {slice_.index} failed:\n{text}")
            return
        result = future.result()
        if result is not None:
            self.collector.take(
                slice_.index, result.records, lambda name, path: write_files(path, result.bundles[name])
            )

    def close(self) -> None:
        if self.client.status == "running":
            try:
                self.client.unregister_worker_plugin(_name(self.campaign))
            except OSError:
                # The scheduler went away a moment ago (CommClosedError), before the client
                # noticed: there is no plugin left to unregister, and the campaign's own error,
                # raised already, must not be masked.
                pass


@contextlib.contextmanager
def _client(address: str):
    from distributed import Client

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except OSError as e:
        raise HarnessError(f"no Dask scheduler answers at {address}: {e}") from None
    try:
        yield client
    finally:
        logger = logging.getLogger("distributed.client")
        level = logger.level
        if client.status != "running":
            # The scheduler went away: the client's attempts to reconnect, which close cuts
            # short, would each log a traceback under the campaign's one clear error.
            logger.setLevel(logging.CRITICAL)
        try:
            client.close()
        finally:
            logger.setLevel(level)


def run_sliced_campaign(options: CampaignOptions, progress):
    """Run the campaign as slices on Dask; returns (records, interrupted), as run_campaign does."""
    # The budget counts from now, as the user's wait does: a cluster's start-up included.
    not_after = None if options.seconds is None else time.time() + options.seconds
    campaign = None
    try:
        with _scheduler(options) as address, _client(address) as client:
            campaign = ClusterCampaign(client, address, options, progress, not_after)
            try:
                campaign.start()
                interrupted = campaign.run()
            finally:
                campaign.close()
    except KeyboardInterrupt:
        # Before the slices ran (the cluster or its engines starting), or while the cluster
        # closed: what was taken is reported.
        progress.note("interrupted: writing the report")
        interrupted = True
    finally:
        progress.close()
    if campaign is None:
        return [], interrupted
    records = campaign.collector.records()
    if campaign.errors:
        raise CampaignFailed(records, interrupted, campaign.errors)
    return records, interrupted
