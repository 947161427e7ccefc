from __future__ import annotations

import os
import sys
from pathlib import Path

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
