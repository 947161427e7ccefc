"""The backend contract on the Graph backend, against the fake Graph on 127.0.0.1
with real MSAL (client credentials) for the tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from contract import BackendContract, new_task
from graph_server import FakeMicrosoft
from graph_server.fixtures import fresh, mailbox, ms  # noqa: F401

from kit_sync.backends.base import Conflict
from kit_sync.backends.graph import GraphBackend
from kit_sync.backends.graph_auth import AppTokens
from kit_sync.config import GraphConfig
from kit_sync.model import TaskChange

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app_tokens(ms: FakeMicrosoft) -> AppTokens:  # noqa: F811
    return AppTokens(GraphConfig.model_validate(ms.backend_config("secret")))


class TestGraphContract(BackendContract):
    @pytest.fixture(params=["Europe/Berlin", "America/Los_Angeles"])
    def tz(self, request: pytest.FixtureRequest) -> ZoneInfo:
        return ZoneInfo(request.param)

    @pytest.fixture
    def backend(
        self,
        fresh: FakeMicrosoft,  # noqa: F811
        mailbox: str,  # noqa: F811
        tz: ZoneInfo,
        app_tokens: AppTokens,
    ) -> Any:
        config = GraphConfig.model_validate(fresh.backend_config("secret", user=mailbox))
        backend = GraphBackend(config, tz, tokens=app_tokens)
        yield backend
        backend.close()

    @pytest.fixture
    def put_foreign(
        self,
        fresh: FakeMicrosoft,  # noqa: F811
        mailbox: str,  # noqa: F811
    ) -> Callable[[str], Callable[[], bytes]]:
        def put(summary: str) -> Callable[[], bytes]:
            task = fresh.graph.add_task(
                mailbox,
                {
                    "title": summary,
                    "dueDateTime": {"dateTime": "2026-12-01T00:00:00", "timeZone": "UTC"},
                    "linkedResources": [
                        {
                            "applicationName": "Outlook",
                            "displayName": "An email",
                            "webUrl": "https://outlook.office.com/mail/id/AAA",
                        }
                    ],
                },
            )
            return lambda: fresh.graph.render(mailbox, task.id)

        return put

    def test_a_second_client_sees_changes_through_its_delta_link(
        self,
        backend: Any,
        fresh: FakeMicrosoft,  # noqa: F811
        mailbox: str,  # noqa: F811
        tz: ZoneInfo,
        app_tokens: AppTokens,
    ) -> None:
        config = GraphConfig.model_validate(fresh.backend_config("secret", user=mailbox))
        other = GraphBackend(config, tz, tokens=app_tokens)
        try:
            assert other.fetch_listing().tasks == []  # other now holds a delta link
            made = backend.create_task(new_task())
            fresh.graph.clear_log()
            [seen] = other.fetch_listing().tasks
            assert (seen.uid, seen.etag, seen.meta) == (made.uid, made.etag, made.meta)
            assert [r["path"].rsplit("/", 1)[-1] for r in fresh.graph.log] == ["delta"]
            moved = other.update_task(seen, TaskChange(due=date(2027, 2, 2)))
            with pytest.raises(Conflict):
                backend.update_task(made, TaskChange(due=date(2027, 3, 3)))
            [again] = backend.fetch_listing().tasks
            assert again.etag == moved.etag and again.due == date(2027, 2, 2)
            other.delete_task(moved)
            assert backend.fetch_listing().tasks == []
        finally:
            other.close()
