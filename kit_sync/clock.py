"""Time zone lookup and the one place that reads the clock.

Everything else takes a `Clock` (engine, daemon, state, health, backends) and
defaults to `system_clock`; `tests/test_layers.py` fails when `datetime.now`,
`date.today` or `datetime.utcnow` appear anywhere else in kit_sync/, so every
date a test sees comes from the clock it passes."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def load_zone(name: str) -> ZoneInfo:
    """An IANA zone. Raises ValueError with a hint for a wrong name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"'{name}' is not a time zone; use an IANA name like Europe/Berlin, "
            "America/New_York or UTC"
        ) from None


def system_zone() -> ZoneInfo:
    """The machine's zone: $TZ, then /etc/localtime, then UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    from pathlib import Path

    try:
        target = Path("/etc/localtime").resolve()
        parts = target.parts
        if "zoneinfo" in parts:
            return ZoneInfo("/".join(parts[parts.index("zoneinfo") + 1 :]))
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    try:
        name = Path("/etc/timezone").read_text().strip()
        return ZoneInfo(name)
    except (OSError, ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def zone_of(name: str | None) -> ZoneInfo:
    return load_zone(name) if name else system_zone()


#: Returns the current time, aware (UTC).
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The machine's clock, aware, in UTC: the default `Clock`."""
    return datetime.now(UTC)
