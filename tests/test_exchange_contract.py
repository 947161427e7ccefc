"""The backend contract on the Exchange backend, against the fake EWS server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

import pytest
from contract import BackendContract
from ews_server import EwsServer
from ews_server.testing import exchange_config, new_mailbox, second_client

from kit_sync.backends.exchange import ExchangeBackend

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ews() -> Iterator[EwsServer]:
    with EwsServer() as server:
        yield server


class TestExchangeContract(BackendContract):
    @pytest.fixture
    def mailbox(self, ews: EwsServer) -> str:
        return new_mailbox(ews)

    @pytest.fixture
    def backend(self, ews: EwsServer, mailbox: str, tz: ZoneInfo) -> Iterator[ExchangeBackend]:
        backend = ExchangeBackend(exchange_config(ews, mailbox), tz)
        yield backend
        backend.close()

    @pytest.fixture
    def put_foreign(self, ews: EwsServer, mailbox: str) -> Callable[[str], Callable[[], bytes]]:
        def put(summary: str) -> Callable[[], bytes]:
            from exchangelib import Task

            account = second_client(ews, mailbox)
            item = Task(folder=account.tasks, subject=summary, categories=["Keep in touch"])
            item.save()
            store = ews.store
            return lambda: store.serialise(store.item(item.id))

        return put


class TestExchangeContractWestOfUtc(TestExchangeContract):
    """The same promises for a user whose day ends after UTC's."""

    @pytest.fixture
    def tz(self) -> ZoneInfo:
        return ZoneInfo("America/Los_Angeles")
