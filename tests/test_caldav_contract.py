"""The backend contract (tests/contract.py) on real CalDAV servers: Radicale and
Xandikos, started on 127.0.0.1 by the fixtures."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

import pytest
from contract import BackendContract
from servers import FOREIGN, KINDS, DavServer, Phone, caldav_config, shared

from kit_sync.backends.caldav import CaldavBackend

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=KINDS)
def server(request: pytest.FixtureRequest) -> DavServer:
    return shared(request.param, request)


@pytest.fixture
def collection(server: DavServer) -> str:
    return server.new_collection()


@pytest.fixture
def phone(server: DavServer, collection: str) -> Iterator[Phone]:
    p = Phone(server, collection)
    yield p
    p.close()


class TestCaldavContract(BackendContract):
    @pytest.fixture
    def backend(self, server: DavServer, collection: str, tz: ZoneInfo) -> Iterator[CaldavBackend]:
        backend = CaldavBackend(caldav_config(server, collection), tz)
        yield backend
        backend.close()

    @pytest.fixture
    def put_foreign(self, phone: Phone) -> Callable[[str], Callable[[], bytes]]:
        def put(summary: str) -> Callable[[], bytes]:
            uid = f"foreign-{uuid.uuid4().hex[:8]}@phone.example"
            href = f"{uid.split('@')[0]}.ics"
            phone.put(href, FOREIGN.format(uid=uid, summary=summary))

            def read_back() -> bytes:
                return phone.get(href)[0].encode()

            return read_back

        return put


def test_phone_fixture_roundtrip(phone: Phone) -> None:
    etag = phone.put("x.ics", FOREIGN.format(uid="x@phone", summary="hello"))
    assert etag
    assert "x.ics" in "".join(phone.listing())
    text, _ = phone.get("x.ics")
    assert "hello" in text
