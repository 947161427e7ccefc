"""Backends are imported lazily by name, so `kit-sync --help` never imports a
heavy client library (exchangelib, caldav) and the local backend never needs one."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kit_sync.backends.base import Backend

# backend type (config `backend.type`) -> "module:factory"
REGISTRY: dict[str, str] = {
    "local": "kit_sync.backends.local:LocalBackend",
    "caldav": "kit_sync.backends.caldav:CaldavBackend",
    "exchange": "kit_sync.backends.exchange:ExchangeBackend",
    "graph": "kit_sync.backends.graph:GraphBackend",
}


def open_backend(config: Any, tz: Any) -> Backend:
    """Build the configured backend. Raises BackendUnavailable for a missing library."""
    from kit_sync.backends.base import BackendUnavailable

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
    backend: Backend = factory(config, tz)
    return backend
