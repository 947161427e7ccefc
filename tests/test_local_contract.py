"""The backend contract on the local vdir backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from contract import BackendContract

from kit_sync.backends.local import LocalBackend

FOREIGN = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Some Phone//EN\r
BEGIN:VTODO\r
UID:foreign-{n}@phone.example\r
DTSTAMP:20261101T090000Z\r
SUMMARY:{summary}\r
DUE;VALUE=DATE:20261201\r
STATUS:NEEDS-ACTION\r
END:VTODO\r
END:VCALENDAR\r
"""


class TestLocalContract(BackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path, tz: ZoneInfo) -> LocalBackend:
        return LocalBackend(SimpleNamespace(path=tmp_path / "tasks"), tz)

    @pytest.fixture
    def put_foreign(self, tmp_path: Path) -> Callable[[str], Callable[[], bytes]]:
        def put(summary: str) -> Callable[[], bytes]:
            folder = tmp_path / "tasks"
            folder.mkdir(exist_ok=True)
            path = folder / f"foreign-{len(list(folder.iterdir()))}.ics"
            path.write_bytes(FOREIGN.format(n=path.stem, summary=summary).encode())
            return path.read_bytes

        return put
