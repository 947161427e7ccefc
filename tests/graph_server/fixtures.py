"""pytest fixtures for the Graph tests (import them into a test module)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from . import FakeMicrosoft

_users = itertools.count(1)


@pytest.fixture(scope="module")
def ms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeMicrosoft]:
    """A fake Entra ID + Graph, on 127.0.0.1, for the test module."""
    server = FakeMicrosoft(tmp_path_factory.mktemp("ms")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh(ms: FakeMicrosoft) -> Iterator[FakeMicrosoft]:
    """The module's fake with an empty request log and no knobs left set."""
    ms.graph.clear_log()
    ms.graph.hooks.clear()
    ms.graph._throttle.clear()
    ms.graph._throttle_items.clear()
    ms.graph.delta_expands = True
    ms.graph.delta_partial = False
    ms.graph.honour_if_match = True
    ms.graph.link_changes_in_delta = True
    ms.graph.update_body_html_only = False
    ms.graph.completion = "date"
    yield ms
    ms.graph.hooks.clear()


@pytest.fixture
def mailbox(ms: FakeMicrosoft) -> str:
    """A user nobody else in the session uses (an empty default list)."""
    upn = f"user{next(_users)}@contoso.example"
    ms.entra.add_user(upn)
    return upn
