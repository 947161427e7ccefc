"""Time zone lookup and the one place that reads the clock (so tests can pass `now`)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
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


def utcnow() -> datetime:
    return datetime.now(UTC)
