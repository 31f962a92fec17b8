"""CI's ``FRUGAL_REQUIRE_*`` flags: with a flag set, a missing resource FAILS the tests that need
it instead of skipping them (``.ci/run`` sets them all, so nothing silently stops running).

Each row runs a probe test in a child pytest that uses this suite's real fixtures
(``tests/conftest.py``: ``shared_data``, ``postgres_url``; ``tests/report/conftest.py``:
``chromium`` and its set-up hook), with the resource made absent (a data folder that does not
exist, no browser on PATH, no PostgreSQL URL), and reads the child's JUnit XML: skipped without
the flag, failed (or errored in set-up) with it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE_CONFTEST = f"""
import importlib.util
import sys

def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

_root = _load("frugal_tests_conftest", {str(ROOT / "tests" / "conftest.py")!r})
_report = _load("frugal_report_conftest", {str(ROOT / "tests" / "report" / "conftest.py")!r})
shared_data, postgres_url = _root.shared_data, _root.postgres_url
chromium = _report.chromium
globals().update({{k: v for k, v in vars(_report).items() if k.startswith("pytest_")}})  # hooks
"""
PROBE_TESTS = """
def test_data(shared_data):
    pass

def test_data_then_browser(shared_data, chromium):  # data first, as the report CLI tests
    pass

def test_postgres(postgres_url):
    pass
"""


def _outcome(test: str, tmp_path: Path, **env: str) -> tuple[str, str]:
    """("passed" | "skipped" | "failed", message) of one probe test run in a child pytest."""
    probe = tmp_path / "probe"
    probe.mkdir(exist_ok=True)
    (probe / "conftest.py").write_text(PROBE_CONFTEST, encoding="utf-8")
    (probe / "test_probe.py").write_text(PROBE_TESTS, encoding="utf-8")
    child = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FRUGAL_REQUIRE_")
        and k not in ("FRUGAL_SHARED_DATA", "FRUGAL_TEST_POSTGRES_URL", "PYTEST_ADDOPTS")
    }
    child["FRUGAL_SHARED_DATA"] = str(tmp_path / "no-such-data")  # absent in every row
    child.update(env)
    xml = tmp_path / "junit.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", f"test_probe.py::{test}", "-p", "no:cacheprovider",
         f"--junitxml={xml}", f"--rootdir={probe}", "-c", os.devnull],
        capture_output=True,
        text=True,
        cwd=probe,
        env=child,
        timeout=300,
    )  # fmt: skip
    assert xml.exists(), f"the child pytest wrote no report:\n{done.stdout[-2000:]}{done.stderr}"
    cases = ET.parse(xml).getroot().findall(".//testcase")
    assert len(cases) == 1, f"expected one test, got {len(cases)}:\n{done.stdout[-2000:]}"
    for kind in ("skipped", "failure", "error"):
        node = cases[0].find(kind)
        if node is not None:
            text = (node.get("message") or "") + (node.text or "")
            return ("skipped" if kind == "skipped" else "failed"), text
    return "passed", ""


def test_missing_shared_data_skips_without_the_flag(tmp_path: Path) -> None:
    outcome, message = _outcome("test_data", tmp_path)
    assert outcome == "skipped" and "real datasets not found" in message


def test_missing_shared_data_fails_with_the_flag(tmp_path: Path) -> None:
    outcome, message = _outcome("test_data", tmp_path, FRUGAL_REQUIRE_SHARED_DATA="1")
    assert outcome == "failed"
    assert "FRUGAL_REQUIRE_SHARED_DATA is set" in message and "no-such-data" in message


@pytest.mark.parametrize("flag", ["", "0"])
def test_flag_off_values_still_skip(tmp_path: Path, flag: str) -> None:
    outcome, _ = _outcome("test_data", tmp_path, FRUGAL_REQUIRE_SHARED_DATA=flag)
    assert outcome == "skipped"


def test_browser_requirement_is_checked_before_the_data_skip(tmp_path: Path) -> None:
    # No browser on PATH and no shared data, only the browser flag: the browser test must
    # fail on the browser, not skip on the data.
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    outcome, message = _outcome(
        "test_data_then_browser", tmp_path, PATH=str(empty), FRUGAL_REQUIRE_BROWSER="1"
    )
    assert outcome == "failed" and "FRUGAL_REQUIRE_BROWSER is set" in message


def test_missing_postgres_fails_with_the_flag(tmp_path: Path) -> None:
    assert _outcome("test_postgres", tmp_path)[0] == "skipped"
    outcome, message = _outcome("test_postgres", tmp_path, FRUGAL_REQUIRE_POSTGRES="1")
    assert outcome == "failed" and "FRUGAL_REQUIRE_POSTGRES is set" in message


def test_ci_sets_every_require_flag() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    conftests = "".join(p.read_text(encoding="utf-8") for p in ROOT.glob("tests/**/conftest.py"))
    flags = set(re.findall(r"FRUGAL_REQUIRE_[A-Z]+(?:_[A-Z]+)*", conftests))
    assert {"FRUGAL_REQUIRE_SHARED_DATA", "FRUGAL_REQUIRE_BROWSER"} <= flags
    for flag in flags:
        assert f"{flag}=1" in ci, f".ci/run does not set {flag}=1"
