"""A campaign as slices: the unit of work that can run on any machine.

A slice is one Hunter (fuzz.py) over a fixed number of examples, seeded from (campaign seed,
slice index) and nothing else, so a slice run again (its worker lost half-way, a CI shard rerun)
generates the very same cases, and a campaign's cases do not depend on how many machines ran
it. A slice hands back data, never files on its machine's disk: its records, and its bundles'
files as bytes, which whoever collects the slices writes into the report.

Two slices may each find and bundle the same bug (they hunt independently: telling a slice
what others found would make its cases depend on timing; each is told the corpus's bugs
alike, found before any slice starts). The collector keeps each
signature's bundle from the lowest slice index that found it, whatever order slices finish
in, so the report of a campaign is the same on one machine or a hundred, and merging CI
shards' reports (merge.py) keeps the very bundle a single run would.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.campaign.fuzz import (
    Budget,
    CampaignOptions,
    CaseRecord,
    Hunter,
    Records,
    engine_roles,
    make_engine,
    precision_triage,
    preflight,
)

# A slice's Hunter seed is seed * SLICE_SEEDS + index: distinct for every slice of a campaign
# of fewer slices than this (a 2-hour campaign on 100 workers has some 300,000).
SLICE_SEEDS = 1_000_000

BundleFiles = dict[str, tuple[int, bytes]]  # a bundle's files: relative path -> (mode, content)


@dataclass(frozen=True)
class Slice:
    """One slice of a campaign: all it takes, with the campaign's options, to run it anywhere."""

    index: int
    seed: int  # the Hunter's seed
    examples: int


def campaign_slices(options: CampaignOptions) -> Iterator[Slice]:
    """The campaign's slices in order of index: options.slice_examples examples each, the last
    one the rest of --examples, endless under a time budget; with a shard (I, N), every N-th
    slice from the I-th (--examples counts the whole campaign, all shards together)."""
    first, step = options.shard or (0, 1)
    size, index = options.slice_examples, first
    while options.examples is None or index * size < options.examples:
        left = size if options.examples is None else options.examples - index * size
        yield Slice(index, options.seed * SLICE_SEEDS + index, min(size, left))
        index += step


class CampaignEngines:
    """A campaign's engine under test, oracle and precision triage, checked (preflight) and
    started once per process, then kept across every slice the process runs."""

    def __init__(self, options: CampaignOptions):
        preflight(options)
        self.under_test = make_engine(options.under_test, options, options.engine_cmd)
        self.oracle = make_engine(options.oracle, options)
        self.triage = precision_triage(options, self.under_test, self.oracle)

    def close(self) -> None:
        self.under_test.close()
        self.oracle.close()


@dataclass(frozen=True)
class SliceResult:
    """What a slice hands back: data only."""

    slice: Slice
    records: list[CaseRecord]  # a bundled record's bundle is the bundle's name, a key of bundles
    bundles: dict[str, BundleFiles]


def run_slice(
    slice_: Slice,
    engines: CampaignEngines,
    options: CampaignOptions,
    known: frozenset[str] = frozenset(),
    seconds: float | None = None,
) -> SliceResult:
    """Hunt over the slice's examples, bundling none of the signatures ``known`` (the corpus's,
    which every slice is told alike), for at most ``seconds`` (what is left of a time budget:
    a shrink ends with it too); its bundles come back as bytes, from a scratch directory that
    is gone when this returns."""
    records = Records()
    bundles: dict[str, BundleFiles] = {}
    with tempfile.TemporaryDirectory(prefix="caffe-conformance-slice-") as scratch:
        hunter = Hunter(
            engines.under_test,
            engines.oracle,
            engine_roles(options),
            Budget(examples=slice_.examples, seconds=seconds),
            slice_.seed,
            Path(scratch),
            None,  # no example database: replaying one would change the slice's cases
            records.take,
            options.strategy_options,
            options.shrink_seconds,
            options.shrink_attempts,
            triage=engines.triage,
            known=known,
        )
        hunter.hunt()
        for record in records.kept:
            record.slice = slice_.index
            if record.bundle is not None:
                name = Path(record.bundle).name
                bundles[name] = read_files(Path(record.bundle))
                record.bundle = name
    return SliceResult(slice_, records.kept, bundles)


def read_files(directory: Path) -> BundleFiles:
    """Every file under directory, as bytes with its permissions (replay.sh is executable)."""
    return {
        str(path.relative_to(directory)): (path.stat().st_mode & 0o777, path.read_bytes())
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def write_files(directory: Path, files: BundleFiles) -> None:
    for relative, (mode, content) in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)


class SliceCollector:
    """The records of the slices that finished, taken in any order: kept by slice index, with
    one bundle per signature, the lowest slice's (the module's docstring says why), written
    under bundle_dir. ``on_record`` sees each record kept as it comes."""

    def __init__(self, bundle_dir: Path, on_record: Callable[[CaseRecord], None]):
        # Absolute: a record's bundle path is, so that a report read from anywhere finds it.
        self.bundle_dir, self.on_record = Path(bundle_dir).absolute(), on_record
        self.corpus: list[CaseRecord] = []
        self.by_slice: dict[int, list[CaseRecord]] = {}
        self.bundled: dict[str, CaseRecord] = {}  # signature -> the record whose bundle is kept

    def take_corpus(self, record: CaseRecord) -> None:
        self.corpus.append(record)
        self.on_record(record)

    def take(self, index: int, records: list[CaseRecord], write_bundle: Callable[[str, Path], None]):
        """One slice's records; write_bundle(bundle, path) writes the bundle a record names at path."""
        kept = self.by_slice.setdefault(index, [])
        for record in records:
            if record.bundle is not None and not self._keep_bundle(record, write_bundle):
                continue  # a lower slice's bundle of the same bug is kept; its cases still count
            kept.append(record)
            self.on_record(record)

    def _keep_bundle(self, record: CaseRecord, write_bundle) -> bool:
        holder = self.bundled.get(record.signature)
        if holder is not None and holder.slice <= record.slice:
            return False
        if holder is not None:  # found again by a lower slice that finished later
            shutil.rmtree(holder.bundle)
            self.by_slice[holder.slice].remove(holder)
        path = self.bundle_dir / Path(record.bundle).name
        write_bundle(record.bundle, path)
        record.bundle = str(path)
        self.bundled[record.signature] = record
        return True

    def records(self) -> list[CaseRecord]:
        """The corpus's records, then every slice's in order of index."""
        return self.corpus + [r for index in sorted(self.by_slice) for r in self.by_slice[index]]

    def slices(self) -> list[int]:
        """The indices of the slices taken."""
        return sorted(self.by_slice)
