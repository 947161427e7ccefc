"""Which config file a command reads: light (no YAML, no validation, not even
pathlib), so the quick check (`kit_sync.quick`) finds it as the full commands do."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing itself is slow to import
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


def config_locations(environ: Any = None) -> list[Path]:
    """Where kit-sync looks for a config when neither --config nor KIT_SYNC_CONFIG
    names one, in order: ./kit-sync.yaml, then the user's config folder
    ($XDG_CONFIG_HOME/kit-sync/config.yaml, by default ~/.config/kit-sync/config.yaml)."""
    from pathlib import Path

    return [Path(p) for p in _locations(environ)]


def _locations(environ: Any = None) -> list[str]:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return ["kit-sync.yaml", os.path.join(base, "kit-sync", "config.yaml")]


def config_file(explicit: str | None, environ: Any = None) -> str | None:
    """The config file a command reads, or None when there is none."""
    env = os.environ if environ is None else environ
    if explicit:
        return explicit
    if env.get("KIT_SYNC_CONFIG"):
        return str(env["KIT_SYNC_CONFIG"])
    return next((p for p in _locations(env) if os.path.exists(p)), None)


def find_config(explicit: str | None, environ: Any = None) -> Path:
    """The config file a command reads; ConfigError saying where it looked."""
    from pathlib import Path

    from kit_sync.errors import ConfigError

    found = config_file(explicit, environ)
    if found is not None:
        return Path(found)
    looked = config_locations(environ)
    raise ConfigError(
        "no config file found; pass --config PATH, set KIT_SYNC_CONFIG, or create one "
        "(kit-sync init writes a starter; config.example.yaml shows every option). Looked in:",
        [
            "--config: not given",
            "$KIT_SYNC_CONFIG: not set",
            *(f"{p.absolute() if not p.is_absolute() else p}: no such file" for p in looked),
        ],
    )
