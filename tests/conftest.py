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
