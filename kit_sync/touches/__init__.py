"""Touch sources: sent mail and past meetings that reset a person's clock.

DESIGN rule 10: a touch a source detects enters the same journal as a ticked task
or `kit-sync touch`, with its day, source and kind. Sources read headers only
(Date, From, To, Cc, Bcc, Message-ID; a meeting's start, end, status and
attendees) and keep nothing about people who are not on the roster: addresses are
matched against the roster in memory and only the contact id, the day, the time
and a hash of the Message-ID / event UID are journaled.

Modules:
  base.py           the source contract, its errors, and what a source returns
  match.py          pure: roster addresses -> contacts, the local day of a moment
  runner.py         polls every configured source with back-off, journals in one
                    transaction with the source's cursor
  imap.py           sent (and optionally received) mail over IMAP (imapclient)
  caldav_events.py  meetings from a CalDAV calendar (caldav, recurring-ical-events)
  exchange.py       Sent Items and meetings of an Exchange mailbox (exchangelib)
  graph.py          Sent Items and meetings of a Microsoft 365 account (Graph)

Sources are imported lazily by type, like backends.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from kit_sync.touches.base import TouchSource

# touch source type (config `touches[].type`) -> ("module:factory", pip extra)
REGISTRY: dict[str, tuple[str, str]] = {
    "imap": ("kit_sync.touches.imap:ImapSource", "imap"),
    "caldav-events": ("kit_sync.touches.caldav_events:CaldavEventsSource", "caldav"),
    "exchange": ("kit_sync.touches.exchange:ExchangeSource", "exchange"),
    "graph": ("kit_sync.touches.graph:GraphSource", "graph"),
}

#: The libraries each source imports when it first reads (checked when it is built,
#: so a missing extra is one clear line, not an internal error at the first read).
LIBRARIES: dict[str, tuple[str, ...]] = {
    "imap": ("imapclient",),
    "caldav-events": ("caldav", "recurring_ical_events"),
    "exchange": ("exchangelib",),
    "graph": ("msal", "httpx"),
}


def open_source(config: Any, tz: ZoneInfo, backend: Any = None) -> TouchSource:
    """Build one configured touch source. Raises SourceUnavailable for a missing
    library (the task sync still runs; the source is reported as failing)."""
    from kit_sync.touches.base import SourceUnavailable

    target, extra = REGISTRY[config.type]
    module_name, _, attr = target.partition(":")
    for library in LIBRARIES.get(config.type, ()):
        if importlib.util.find_spec(library) is None:
            raise SourceUnavailable(
                f"the '{config.type}' touch source needs a library that is not installed "
                f"({library}); install it with: pip install 'kit-sync[{extra}]'"
            )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SourceUnavailable(
            f"the '{config.type}' touch source needs a library that is not installed "
            f"({exc.name}); install it with: pip install 'kit-sync[{extra}]'"
        ) from exc
    source: TouchSource = getattr(module, attr)(config, tz, backend)
    return source
