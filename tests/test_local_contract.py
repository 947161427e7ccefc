"""The backend contract on the local vdir backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from contract import BackendContract

from kit_sync.backends.local import LocalBackend
from kit_sync.state import State

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


class TestLocalContractWithCache(TestLocalContract):
    """The same contract with the listing cache in a state DB: files edited behind the
    backend's back between listings (as the contract does, within the same second and
    often at the same size) are seen as they are."""

    @pytest.fixture
    def backend(self, tmp_path: Path, tz: ZoneInfo) -> Iterator[LocalBackend]:
        backend = LocalBackend(SimpleNamespace(path=tmp_path / "tasks"), tz)
        state = State(tmp_path / "state.sqlite")
        backend.bind_state(state)
        yield backend
        state.close()
