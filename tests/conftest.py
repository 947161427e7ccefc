from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

# Tests never depend on the machine's zone or the user's config.
os.environ.setdefault("TZ", "UTC")
os.environ.pop("KIT_SYNC_CONFIG", None)


@pytest.fixture
def root() -> Path:
    return ROOT


# CI must be deterministic: the same examples every run, no deadline flakiness on
# a loaded machine. Locally hypothesis explores new examples each run.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


# --- the clock of date-sensitive tests ------------------------------------------------------
#
# Tests marked `dates` read "now" from the `clock` fixture: by default a fixed instant,
# or the one given with `--clock ISO` / $KIT_SYNC_TEST_NOW. scripts/test.sh (the full
# run) runs them again at the calendar's awkward days (CLOCK_MATRIX), so no test can
# pass only because of the day it happens to run on.

DEFAULT_NOW = "2026-11-21T10:00:00+00:00"

#: Month ends, a leap day, both DST changes in New York and London, the year's end;
#: each near a local midnight (Europe/Berlin, the zone most tests configure) or
#: during the hour the clocks change.
CLOCK_MATRIX = (
    "2026-01-31T22:30:00+00:00",  # 31 Jan, 23:30 in Berlin: tomorrow is 1 Feb there
    "2028-02-29T12:00:00+00:00",  # a leap day ("1 month" later is 29 Mar)
    "2026-03-08T07:30:00+00:00",  # New York springs forward (02:00 -> 03:00 EDT)
    "2026-11-01T05:30:00+00:00",  # New York falls back (the 01:00-02:00 hour twice)
    "2026-03-29T01:30:00+00:00",  # London springs forward (01:00 GMT -> 02:00 BST)
    "2026-10-25T00:30:00+00:00",  # London falls back (01:00-02:00 BST twice)
    "2026-12-31T23:30:00+00:00",  # 31 Dec in UTC, already 1 Jan in Berlin
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock",
        default=os.environ.get("KIT_SYNC_TEST_NOW") or None,
        metavar="ISO",
        help="the instant date-sensitive tests (marker 'dates') run at "
        f"(default {DEFAULT_NOW}; also $KIT_SYNC_TEST_NOW)",
    )


@pytest.fixture
def test_now(request: pytest.FixtureRequest) -> datetime:
    """The instant this test's world starts at (aware)."""
    value = request.config.getoption("--clock") or DEFAULT_NOW
    return datetime.fromisoformat(value)


@pytest.fixture
def clock(test_now: datetime) -> Iterator[datetime]:
    """Move this process's clock to `test_now` (it keeps ticking from there)."""
    import time_machine

    with time_machine.travel(test_now, tick=True):
        yield test_now


# --- scripts/test.sh --fast ------------------------------------------------------------------
#
# The quick loop skips, besides the slow/integration/install markers, every test at the
# moment it starts a separate process (kit-sync in a subprocess, a server, a linter):
# those run in the full suite. No list of modules to keep up to date.


@pytest.fixture(scope="session")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Radicale that asks for a password (htpasswd, Basic), one for the session."""
    from servers import Radicale

    server = Radicale(tmp_path_factory.mktemp("radicale-htpasswd"), htpasswd=True)
    server.start()
    server.provision()
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """kit-sync's cache folder (the quick check's pointer files) is the session's own,
    for in-process runs and the processes they start alike."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield


@pytest.fixture(scope="session", autouse=True)
def _fast_runs_start_no_process() -> Iterator[None]:
    if not os.environ.get("KIT_SYNC_FAST"):
        yield
        return
    import subprocess

    def refuse(self: object, *args: object, **kwargs: object) -> None:
        pytest.skip("starts a process: run by scripts/test.sh, not --fast")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "__init__", refuse)
        yield
