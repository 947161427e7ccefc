"""Helpers for tests that run kit-sync's Exchange backend against the fake server."""

from __future__ import annotations

import itertools
from typing import Any

from kit_sync.config import ExchangeConfig

from .server import EwsServer

_n = itertools.count(1)
PASSWORD = "s3cret-pw"


def new_mailbox(server: EwsServer, name: str = "ann") -> str:
    """A fresh, empty mailbox on the shared server; returns its address."""
    email = f"{name}{next(_n)}@example.com"
    server.add_user(email, PASSWORD)
    return email


def exchange_config(server: EwsServer, email: str, **overrides: Any) -> ExchangeConfig:
    data: dict[str, Any] = {
        "type": "exchange",
        "email": email,
        "service_endpoint": server.url,
        "username": email,
        "password": PASSWORD,
        "auth": "basic",
        "version": "2016",
        "max_retry_wait": 5,
        "timeout": 10,
    }
    data.update(overrides)
    return ExchangeConfig.model_validate(data)


def second_client(server: EwsServer, email: str, zone: str | None = None) -> Any:
    """An independent EWS client on the mailbox (the way another program, or Outlook
    through EWS, sees it): exchangelib's high-level API as a delegate. `zone`: the
    client's own zone, sent as the TimeZoneContext of its requests (default UTC)."""
    from exchangelib import DELEGATE, UTC, Account, Configuration, Credentials, Version
    from exchangelib.transport import BASIC
    from exchangelib.version import EXCHANGE_2016

    login = f"assistant-of-{email}"
    server.add_user(f"{login}", PASSWORD, login=login)
    server.grant_delegate(login, email)
    config = Configuration(
        service_endpoint=server.url,
        credentials=Credentials(login, PASSWORD),
        auth_type=BASIC,
        version=Version(build=EXCHANGE_2016),
    )
    from exchangelib import EWSTimeZone

    tz = EWSTimeZone(zone) if zone else UTC
    return Account(
        email, config=config, autodiscover=False, access_type=DELEGATE, default_timezone=tz
    )
