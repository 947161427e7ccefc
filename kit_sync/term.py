"""What the output stream is: colour and width. Light, so the quick check
(`kit_sync.quick`) decides them as the full commands do."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing itself is slow to import
if TYPE_CHECKING:
    from typing import Any


def use_color(choice: str, stream: Any, environ: Any = None) -> bool:
    """--color: always/never win; auto means a terminal, without NO_COLOR or TERM=dumb."""
    env = os.environ if environ is None else environ
    if choice == "always":
        return True
    if choice == "never" or env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def output_width(stream: Any = None) -> int | None:
    """The terminal's width; $COLUMNS for a pipe when set; else no limit."""
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if isatty and isatty():
        import shutil

        return shutil.get_terminal_size().columns
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else None
