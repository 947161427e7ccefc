"""A backend whose library is not installed says which extra to install (exit 3),
also when the backend imports that library only on first use (CalDAV)."""

from __future__ import annotations

import importlib.util
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kit_sync.backends import open_backend
from kit_sync.backends.base import BackendUnavailable
from kit_sync.config import CaldavConfig


@pytest.mark.parametrize("library", ["caldav", "lxml"])
def test_caldav_without_its_extra_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, library: str
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == library else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    config = CaldavConfig(type="caldav", url="http://127.0.0.1:9/", username="me", password="x")
    with pytest.raises(BackendUnavailable) as err:
        open_backend(config, ZoneInfo("Europe/Berlin"))
    assert err.value.exit_code == 3
    assert f"({library})" in str(err.value)
    assert "pip install 'kit-sync[caldav]'" in str(err.value)


@pytest.mark.parametrize(
    ("kind", "library", "extra"),
    [
        ("imap", "imapclient", "imap"),
        ("caldav-events", "recurring_ical_events", "caldav"),
        ("exchange", "exchangelib", "exchange"),
        ("graph", "msal", "graph"),
    ],
)
def test_a_touch_source_without_its_extra_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, kind: str, library: str, extra: str
) -> None:
    from types import SimpleNamespace

    from kit_sync.touches import open_source
    from kit_sync.touches.base import SourceUnavailable

    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == library else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(SourceUnavailable) as err:
        open_source(SimpleNamespace(type=kind), ZoneInfo("Europe/Berlin"))
    assert f"({library})" in str(err.value)
    assert f"pip install 'kit-sync[{extra}]'" in str(err.value)
