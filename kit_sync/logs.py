"""Logging setup: readable lines on a terminal, one JSON object per line for Docker."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("contact_id", "href", "cycle"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S")
        )
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("kit_sync").setLevel(getattr(logging, level.upper(), logging.INFO))
    # Client libraries are chatty at INFO and may log request details.
    for noisy in ("apscheduler", "urllib3", "caldav", "exchangelib", "httpx", "msal"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
