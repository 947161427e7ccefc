"""Backends are imported lazily by name, so `kit-sync --help` never imports a
heavy client library (exchangelib, caldav) and the local backend never needs one."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from kit_sync.clock import Clock, system_clock

if TYPE_CHECKING:
    from kit_sync.backends.base import Backend
    from kit_sync.config import BackendConfig

# backend type (config `backend.type`) -> "module:factory"
REGISTRY: dict[str, str] = {
    "local": "kit_sync.backends.local:LocalBackend",
    "caldav": "kit_sync.backends.caldav:CaldavBackend",
    "exchange": "kit_sync.backends.exchange:ExchangeBackend",
    "graph": "kit_sync.backends.graph:GraphBackend",
}


def open_backend(config: BackendConfig, tz: ZoneInfo, *, clock: Clock = system_clock) -> Backend:
    """Build the configured backend: its class takes its own config model (CaldavConfig,
    ...), the user's zone and the clock. Raises BackendUnavailable for a missing library."""
    from kit_sync.backends.base import Backend, BackendUnavailable

    target = REGISTRY[config.type]
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(
            f"the '{config.type}' backend needs a library that is not installed ({exc.name}); "
            f"install it with: pip install 'kit-sync[{config.type}]'"
        ) from exc
    factory = getattr(module, attr)
    backend = factory(config, tz, clock=clock)
    if not isinstance(backend, Backend):
        raise TypeError(f"{target} is not a kit_sync.backends.base.Backend")
    return backend
