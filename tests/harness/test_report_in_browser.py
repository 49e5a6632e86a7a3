"""report.html as a browser renders it (headless Chromium): the summary table, a section per
signature with its picture, and the one legend are in the page the browser built.

Without Chromium the test skips, saying why; CAFFE_CONFORMANCE_REQUIRE_BROWSER=1 (CI) makes that
a failure, as a silent skip would hide a page no browser was ever shown."""

import os
import re
import shutil
import subprocess

import pytest

from tests.harness.campaigns import disagreeing_campaign


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        why = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CAFFE_CONFORMANCE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{why}, and CAFFE_CONFORMANCE_REQUIRE_BROWSER=1 requires it")
        pytest.skip(why)
    return path


def rendered(browser: str, page, profile) -> str:
    """The DOM Chromium built from the page, serialised."""
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}"]
        + ["--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_browser_shows_the_summary_table_the_signature_section_and_one_legend(tmp_path):
    browser = chromium()
    report = disagreeing_campaign(tmp_path / "report")
    dom = rendered(browser, report / "report.html", tmp_path / "profile")
    assert re.search(
        r'<table class="verdicts">.*<td>disagree</td><td class="number">\d+</td>', dom, re.DOTALL
    )
    assert dom.index('<table class="run">') < dom.index('<section class="signature"')
    (section,) = re.findall(r'<section class="signature".*?</section>', dom, re.DOTALL)
    assert (
        "<h3>loss:-:forward loss</h3>" in section
        and "<svg" in section
        and "caffe-conformance replay" in section
    )
    assert '<table class="mismatches">' in section
    assert dom.count('<figure class="legend">') == 1 and dom.count("<svg") == 2  # the net's, the legend's
