"""A bundle saved over another replaces it whole, in one step, and never a directory that is
not a bundle."""

import errno

import pytest

from harness.campaign import bundle
from harness.campaign.bundle import Bundle
from harness.campaign.compare import Comparison, Mismatch
from harness.case import Case
from harness.errors import HarnessError

NET = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'
FOUND = Bundle(Case(NET), {}, {}, Comparison([Mismatch("loss", None, "forward loss as found")]))
SHRUNK = Bundle(Case(NET), {}, {}, Comparison([Mismatch("loss", None, "forward loss shrunk")]))


def _replaced_whole(tmp_path):
    path = FOUND.save(tmp_path / "b")
    (path / "results" / "gone").mkdir(parents=True)  # a result the shrunk case no longer has
    SHRUNK.save(path)
    assert Bundle.load(path).comparison.summary() == SHRUNK.comparison.summary()
    assert not (path / "results").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # nothing left beside it


def test_a_bundle_saved_over_another_replaces_it_whole(tmp_path):
    _replaced_whole(tmp_path)


def test_where_the_file_system_cannot_exchange_the_two_it_still_replaces_it_whole(tmp_path, monkeypatch):
    def cannot(first, second):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(bundle, "_exchange", cannot)
    _replaced_whole(tmp_path)


def test_a_directory_that_is_not_a_bundle_is_not_replaced(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(HarnessError, match="is there and is not a bundle"):
        FOUND.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    FOUND.save(tmp_path / "empty")
    assert Bundle.load(tmp_path / "empty").comparison.summary() == FOUND.comparison.summary()
