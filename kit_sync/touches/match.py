"""Pure matching: which roster contacts an address belongs to, and on which local
day a moment falls. No I/O.

Addresses are compared case-insensitively and otherwise exactly: `+tag` parts and
dots are not folded (ann+news@example.com is a different address unless the
contact lists it), so a touch is never credited to the wrong person.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from email.utils import getaddresses
from zoneinfo import ZoneInfo

from kit_sync.roster import Roster

#: An address in a plain header value (no quotes, comments or encoded words).
_PLAIN = re.compile(r"[^\s<>,;:]+@[^\s<>,;:]+")
#: An address as it appears in a header (lower-cased bytes), for `mentioned_in`.
_ADDRESS = re.compile(rb"[a-z0-9._%+'=!#$&*/?^`{|}~-]+@[a-z0-9.-]+")


def normalise(address: str) -> str:
    """The comparable form of one address: trimmed, without mailto:, lower case."""
    text = address.strip().strip("<>").strip()
    if text.lower().startswith("mailto:"):
        text = text[len("mailto:") :]
    return text.strip().lower()


class AddressBook:
    """Roster addresses -> contact ids (an address two contacts share counts for both)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._ids: dict[str, list[str]] = {}
        self._simple: bool | None = None
        for address, contact_id in pairs:
            key = normalise(address)
            if key and contact_id not in self._ids.setdefault(key, []):
                self._ids[key].append(contact_id)

    @classmethod
    def of(cls, roster: Roster) -> AddressBook:
        return cls((e, c.id) for c in roster.contacts for e in c.emails)

    def mentioned_in(self, raw: bytes) -> bool:
        """Whether raw header bytes may name a roster address: a cheap test that lets
        a source skip parsing the many messages that cannot be a touch. True when
        unsure (a roster address the pattern would not find)."""
        if self._simple is None:
            self._simple = all(_ADDRESS.fullmatch(a.encode()) for a in self._ids)
        if not self._simple:
            return True
        return any(m.decode("ascii", "replace") in self._ids for m in _ADDRESS.findall(raw.lower()))

    def __len__(self) -> int:
        return len(self._ids)

    def contacts_of(self, address: str) -> list[str]:
        return list(self._ids.get(normalise(address), ()))

    def contacts_in(self, *header_values: str | None) -> list[str]:
        """Contacts among the addresses of header values like To/Cc ("Ann <ann@x>,
        bob@y"), in order, each once. Addresses not on the roster are dropped here
        and go no further."""
        found: list[str] = []
        values = [v for v in header_values if v]
        if any(c in v for v in values for c in '"(\\') or any("=?" in v for v in values):
            # Quoted names, comments or encoded words may hold an "@" that is not an
            # address: the full RFC 5322 parser decides.
            addresses = [address for _name, address in getaddresses(values)]
        else:
            # Plain lists ("Ann Lee <ann@x>, bob@y"): an unquoted name cannot hold "@",
            # so every "@" word is an address (and this is ~10x faster).
            addresses = [a for v in values for a in _PLAIN.findall(v)]
        for address in addresses:
            for cid in self._ids.get(normalise(address), ()):
                if cid not in found:
                    found.append(cid)
        return found

    def fingerprint(self) -> str:
        """Changes when an address is added or moves to another contact: the sources
        then look back again, for mail and meetings of the new address."""
        h = hashlib.sha256()
        for address in sorted(self._ids):
            h.update(address.encode() + b"\x00" + ",".join(self._ids[address]).encode() + b"\n")
        return h.hexdigest()[:16]


def aware(moment: datetime) -> datetime:
    """A moment with a zone: naive ones (a Date header with -0000) are taken as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def local_day(moment: datetime, tz: ZoneInfo) -> date:
    """The calendar day of `moment` in the user's zone (DST included)."""
    return aware(moment).astimezone(tz).date()
