"""Sent (and, with `count_received`, received) mail over IMAP, with imapclient.

Only headers are fetched (BODY.PEEK[HEADER.FIELDS (DATE FROM TO CC BCC
MESSAGE-ID)], read-only, so no \\Seen flag changes) and INTERNALDATE as a fallback
for a missing or broken Date header. Nothing else of a message is read.

Incremental per folder: the cursor keeps UIDVALIDITY and UIDNEXT (and
HIGHESTMODSEQ where the server offers CONDSTORE). An idle check is one STATUS
command per folder; when UIDNEXT moved, only the new UIDs are fetched. A changed
UIDVALIDITY (the folder was rebuilt) means looking back again; the journal keeps
each message once (by a hash of its Message-ID), so that counts nothing twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from kit_sync.model import EMAIL_RECEIVED, EMAIL_SENT, Touch
from kit_sync.touches.base import Found, SourceUnavailable, detected_touch, digest
from kit_sync.touches.match import AddressBook, aware

log = logging.getLogger("kit_sync")

HEADERS = b"BODY.PEEK[HEADER.FIELDS (DATE FROM TO CC BCC MESSAGE-ID)]"
#: UIDs fetched per FETCH command on a first look-back.
CHUNK = 1000


def _imapclient() -> Any:
    import imapclient

    return imapclient


class ImapSource:
    type: ClassVar[str] = "imap"

    def __init__(self, config: Any, tz: ZoneInfo, backend: Any = None) -> None:
        self.config = config
        self.tz = tz
        self._client: Any = None
        self._sent: list[str] | None = None
        self._condstore = False
        #: IMAP commands sent by this source (benchmarks count them).
        self.commands = 0

    @property
    def name(self) -> str:
        return f"imap {self.config.host} ({self.config.username})"

    @property
    def key(self) -> str:
        c = self.config
        folders = ",".join(c.folders or [])
        return f"touches|imap|{c.host}|{c.port_number}|{c.username}|{folders}|{c.count_received}"

    # --- connection -------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        verify = self.config.verify
        if verify is False:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)

    def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        c = self.config
        lib = _imapclient()
        try:
            client = lib.IMAPClient(
                c.host,
                port=c.port_number,
                ssl=c.security == "ssl",
                ssl_context=self._ssl_context() if c.security == "ssl" else None,
                timeout=c.timeout,
            )
            self.commands += 1
            if c.security == "starttls":
                client.starttls(self._ssl_context())
                self.commands += 1
            client.normalise_times = False  # INTERNALDATE with its zone
            client.login(c.username, c.password.get_secret_value())
            self.commands += 1
            self._condstore = bool(client.has_capability("CONDSTORE"))
        except lib.exceptions.LoginError:
            raise SourceUnavailable(
                f"{self.name}: the server refused the login; check username and password"
            ) from None
        except (OSError, lib.exceptions.IMAPClientError) as exc:
            raise SourceUnavailable(f"{self.name}: cannot connect: {_why(exc)}") from None
        self._client = client
        return client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
            except Exception:
                # A dead connection is closed either way.
                with contextlib.suppress(Exception):
                    client.shutdown()

    # --- reading ----------------------------------------------------------------------

    def fetch_touches(
        self, book: AddressBook, since: datetime, now: datetime, cursor: str | None
    ) -> Found:
        lib = _imapclient()
        try:
            return self._fetch(book, since, now, cursor)
        except SourceUnavailable:
            self.close()
            raise
        except (OSError, lib.exceptions.IMAPClientError) as exc:
            # A connection the server dropped between two cycles: once more, fresh.
            self.close()
            log.info("%s: %s; connecting again", self.name, _why(exc))
            try:
                return self._fetch(book, since, now, cursor)
            except (OSError, lib.exceptions.IMAPClientError) as again:
                self.close()
                raise SourceUnavailable(f"{self.name}: {_why(again)}") from None

    def _folders(self, client: Any) -> tuple[list[str], list[str]]:
        """(sent folders, received-only folders)."""
        if self._sent is None:
            if self.config.folders:
                self._sent = list(self.config.folders)
            else:
                found = client.find_special_folder(_imapclient().imapclient.SENT)
                self.commands += 1
                if not found:
                    raise SourceUnavailable(
                        f"{self.name}: no folder is flagged \\Sent; name it with folders: [...]"
                    )
                self._sent = [found]
        received = (
            ["INBOX"]
            if self.config.count_received and "INBOX" not in {f.upper() for f in self._sent}
            else []
        )
        return self._sent, received

    def _fetch(
        self, book: AddressBook, since: datetime, now: datetime, cursor: str | None
    ) -> Found:
        client = self._connect()
        sent, received = self._folders(client)
        state: dict[str, Any] = json.loads(cursor) if cursor else {}
        folders_state: dict[str, Any] = dict(state.get("folders", {}))
        found = Found()
        for folder in [*sent, *received]:
            folders_state[folder] = self._folder(
                client, folder, folder in sent, folders_state.get(folder), book, since, now, found
            )
        found.cursor = json.dumps({"folders": folders_state}, sort_keys=True)
        return found

    def _folder(
        self,
        client: Any,
        folder: str,
        is_sent: bool,
        mark: dict[str, int] | None,
        book: AddressBook,
        since: datetime,
        now: datetime,
        found: Found,
    ) -> dict[str, int]:
        lib = _imapclient()
        what = [b"UIDVALIDITY", b"UIDNEXT"] + ([b"HIGHESTMODSEQ"] if self._condstore else [])
        try:
            status = client.folder_status(folder, what)
        except lib.exceptions.IMAPClientError as exc:
            raise SourceUnavailable(
                f"{self.name}: cannot read the folder '{folder}' ({_why(exc)}); "
                "check folders: in the config"
            ) from None
        self.commands += 1
        validity = int(status[b"UIDVALIDITY"])
        uidnext = int(status[b"UIDNEXT"])
        now_mark = {"v": validity, "n": uidnext}
        if b"HIGHESTMODSEQ" in status:
            now_mark["m"] = int(status[b"HIGHESTMODSEQ"])
        if mark and mark.get("v") == validity and mark.get("n") == uidnext:
            return now_mark  # nothing new: this STATUS was the whole check
        client.select_folder(folder, readonly=True)
        self.commands += 1
        if mark and mark.get("v") == validity:
            start = int(mark["n"])
            uids = [u for u in client.search(["UID", f"{start}:*"]) if u >= start]
        else:
            if mark:
                log.info(
                    "%s: folder '%s' was rebuilt (UIDVALIDITY); looking back again",
                    self.name,
                    folder,
                )
            day = (since - timedelta(days=1)).date()
            uids = client.search(["OR", "SINCE", day, "SENTSINCE", day])
        self.commands += 1
        uids = sorted(uids)
        for i in range(0, len(uids), CHUNK):
            chunk = uids[i : i + CHUNK]
            data = client.fetch(chunk, [HEADERS, b"INTERNALDATE"])
            self.commands += 1
            for uid in chunk:
                item = data.get(uid)
                if item is not None:
                    found.read += 1
                    found.touches += self._touches(item, is_sent, book, since, now, folder, uid)
        # Leave the folder: STATUS on a selected folder may answer from this session's
        # stale view (Dovecot does), and the next idle check is a STATUS.
        if client.has_capability("UNSELECT"):
            client.unselect_folder()
        else:
            client.close_folder()  # read-only: expunges nothing
        self.commands += 1
        top = max(uids) + 1 if uids else 0
        now_mark["n"] = max(uidnext, top)
        return now_mark

    def _touches(
        self,
        item: dict[bytes, Any],
        is_sent: bool,
        book: AddressBook,
        since: datetime,
        now: datetime,
        folder: str,
        uid: int,
    ) -> list[Touch]:
        raw = next((v for k, v in item.items() if k.startswith(b"BODY[")), b"") or b""
        if not book.mentioned_in(raw):
            return []  # no roster address in its headers: nothing to parse
        headers = _headers(raw)
        at = _sent_at(headers.get("date"), item.get(b"INTERNALDATE"))
        if at is None:
            log.warning("%s: message %s/%s has no usable date; skipped", self.name, folder, uid)
            return []
        if at > now:
            # A sender's clock ahead of ours: it happened at the latest now.
            at = now
        if at < since:
            return []
        senders = book.contacts_in(headers.get("from"))
        if senders:
            if not self.config.count_received:
                return []
            kind, contacts = EMAIL_RECEIVED, senders
        elif is_sent:
            kind = EMAIL_SENT
            contacts = book.contacts_in(headers.get("to"), headers.get("cc"), headers.get("bcc"))
        else:
            return []
        if not contacts:
            return []
        message_id = (headers.get("message-id") or "").strip()
        if message_id:
            item_hash = digest("message-id", message_id.strip("<>").strip())
        else:
            # No Message-ID: what identifies the message among its headers.
            parts = [str(headers.get(h) or "") for h in ("date", "from", "to", "cc")]
            item_hash = digest("headers", *parts)
        return [detected_touch(cid, at, kind, self.type, item_hash, self.tz) for cid in contacts]


def _headers(raw: bytes) -> dict[str, str]:
    """The few header fields fetched, unfolded, by lower-case name (the first of each).
    Much cheaper than the email package's parser, which builds a whole message."""
    text = raw.decode("utf-8", "surrogateescape")
    out: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        if not line.strip():
            if name is None and not out:
                continue
            break
        if line[:1] in (" ", "\t") and name is not None:
            out[name] += " " + line.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep:
            name = None
            continue
        name = key.strip().lower()
        if name in out:
            name = None  # a repeated field: the first one counts (as get() does)
            continue
        out[name] = value.strip()
    return out


def _sent_at(date_header: str | None, internal: Any) -> datetime | None:
    if date_header:
        try:
            return aware(parsedate_to_datetime(str(date_header)))
        except (TypeError, ValueError, IndexError):
            pass
    if isinstance(internal, datetime):
        return aware(internal)
    return None


def _why(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running, are host and port right?)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc}); check security: and verify:"
    text = str(exc) or type(exc).__name__
    return text
