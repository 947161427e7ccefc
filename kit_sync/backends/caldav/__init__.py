"""A CalDAV task list (Radicale, Xandikos, Nextcloud, Baïkal, Fastmail, ...): one plain,
non-recurring VTODO per occurrence, read and written with the caldav library.

How a cycle talks to the server:

- Listing is incremental (RFC 6578): the backend keeps every item it has seen
  (href -> ETag, and the parsed task for kit-owned ones) and asks only for what
  changed since its sync token: ONE sync-collection REPORT when nothing changed,
  plus one calendar-multiget for the items whose ETag it does not know yet. Its
  own writes come back in the next report with the ETag the PUT returned, so they
  are recognised and not fetched again. A token the server no longer accepts
  (Radicale answers 403, Xandikos 412, both with DAV:valid-sync-token) leads to one
  fresh full listing and a new real token; caldav's own fallback (a fake token and
  a full listing on every cycle) is switched off with ``disable_fallback=True``. A
  server without sync-collection is listed by ETags (a Depth-1 PROPFIND) instead.
- The cache (items + token) lives in memory between the daemon's cycles and in the
  state DB's one listing cache (state.ListingCache), written in one transaction per listing,
  so a new `kit-sync sync` process is also one request when idle.
- Writes are conditional and sent as exact bytes: create with
  ``If-None-Match: *`` (never a UID search first), update and delete with
  ``If-Match: <ETag>`` (never ``If-Schedule-Tag-Match``, which Xandikos would
  honour by merging instead of refusing a stale write). Every item is addressed by
  its href; nothing is looked up by UID.
- `transport._translate` is the one place where HTTP statuses and library/transport
  exceptions become the project's errors (base.py).

The package: `items` (pure conversions, unit-tested), `transport` (HTTP helpers and
error translation), `cache` (the listing cache) and this module, the backend class.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urljoin, urlsplit
from zoneinfo import ZoneInfo

from kit_sync.backends.base import (
    AlreadyExists,
    Backend,
    BackendError,
    BackendUnavailable,
    Conflict,
    ItemRejected,
    NotFound,
)
from kit_sync.backends.caldav.cache import _Cache
from kit_sync.backends.caldav.items import _file_name, _Item, _key, _strong
from kit_sync.backends.caldav.transport import (
    ICS,
    MULTIGET_BATCH,
    SUPPORTED_REPORT,
    UID_CONFLICT,
    USER_AGENT,
    VALID_SYNC_TOKEN,
    _body,
    _CollectionGone,
    _conflict_href,
    _header,
    _lib,
    _parse_sync_report,
    _read,
    _short,
    _status_error,
    _sync_body,
    _SyncUnsupported,
    _TokenRejected,
    _translate,
    _UidTakenElsewhere,
)
from kit_sync.clock import Clock, system_clock
from kit_sync.config import CaldavConfig
from kit_sync.errors import ConfigError
from kit_sync.files import MAX_ITEM_BYTES, MB
from kit_sync.logs import mask_url
from kit_sync.model import (
    ItemProblem,
    KitTask,
    Listing,
    NewTask,
    Status,
    TaskChange,
    make_uid,
)
from kit_sync.state import State

log = logging.getLogger("kit_sync.caldav")
#: Our own writes are noted in the cache file in batches of this many.
WRITE_BATCH = 200
#: A server that refused sync-collection is asked again after this long.
REPROBE_SYNC = 24 * 3600.0


# --- the backend --------------------------------------------------------------------------


def _in_cache(items: Iterable[_Item]) -> None:
    """The raw iCalendar of these items is in the cache file now: read back from there
    when an update needs it (`_current_data`), not held in memory (10,000 tasks
    held some 10 MB more, and the peak RSS target is 100 MB at that size)."""
    for item in items:
        item.data = None


class CaldavBackend(Backend):
    """Backend over one CalDAV task list. See base.Backend for the contract."""

    regenerates_itself: ClassVar[bool] = False

    def __init__(self, config: CaldavConfig, tz: ZoneInfo, *, clock: Clock | None = None) -> None:
        # caldav and lxml are imported on first use (an idle cycle needs neither), so
        # a plain install without the extra is found out here, not as a traceback.
        for library in ("caldav", "lxml"):
            if importlib.util.find_spec(library) is None:
                raise BackendUnavailable(
                    f"the 'caldav' backend needs a library that is not installed ({library}); "
                    "install it with: pip install 'kit-sync[caldav]'"
                )
        self.config = config
        self.tz = tz
        self._clock = clock or system_clock
        self.url: str = config.url
        # Shown in errors and stored in the cache's keys: never with a password.
        self._where = (
            f"the CalDAV server {urlsplit(mask_url(self.url)).netloc or mask_url(self.url)}"
        )
        if config.server:
            from caldav.config import resolve_features

            try:
                resolve_features(config.server)
            except Exception:
                raise ConfigError(
                    f"backend.server: '{config.server}' is not a server profile caldav knows "
                    "(e.g. radicale, xandikos, nextcloud, baikal, davical, sogo, zimbra)"
                ) from None
        self._client: Any = None
        self._calendar: Any = None
        self.collection: str | None = None  # the task list's URL, once resolved
        self._items: dict[str, _Item] = {}
        self._token: str | None = None
        self._mode = "sync"  # or "etag": the server does not do sync-collection
        self._unsaved: list[tuple[str, _Item | None, str | None]] = []
        self._cache: _Cache | None = None
        self._identity = f"{mask_url(self.url)}|{config.username or ''}"
        self._list_key = f"collection|{self._identity}|{config.task_list or ''}"
        #: HTTP requests sent by this backend (tests and benchmarks count them).
        self.requests = 0

    # --- state ----------------------------------------------------------------------------

    def bind_state(self, state: State) -> None:
        """Keep the listing cache in the state DB (the engine calls this)."""
        try:
            self._cache = _Cache(state.listing_cache())
        except sqlite3.Error as exc:
            log.warning(
                "cannot use the listing cache in %s (%s); every new process lists the "
                "whole task list once",
                state.path,
                exc,
            )
            self._cache = None

    # --- connecting -----------------------------------------------------------------------

    def _count(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        return response

    def _secret(self, auth: str | None) -> str | None:
        cfg = self.config
        bearer = auth == "bearer" or (cfg.token is not None and cfg.password is None)
        secret = cfg.token if bearer and cfg.token is not None else cfg.password
        return secret.get_secret_value() if secret is not None else None

    def _auth_type(self) -> str | None:
        """auth as configured, or as learned from this server before (auto)."""
        if self.config.auth != "auto":
            return str(self.config.auth)
        remembered = self._cache.get(f"auth|{self._identity}") if self._cache else None
        # A remembered scheme saves the 401 round trip of negotiating it again.
        return remembered if remembered in ("basic", "digest") else None

    def _connect(self) -> None:
        """The caldav client and the task list's URL (from the cache file, else found)."""
        if self._calendar is not None:
            return
        cfg = self.config
        auth = self._auth_type()
        try:
            self._client = _lib().DAVClient(
                url=self.url,
                username=cfg.username,
                password=self._secret(auth),
                auth_type=auth,
                timeout=cfg.timeout,
                ssl_verify_cert=cfg.verify,
                **self._features(),
                enable_rfc6764=False,
                headers={"User-Agent": USER_AGENT},
            )
        except Exception as exc:
            raise _translate(exc, self._where, "connect") from None
        self._client.session.hooks.setdefault("response", []).append(self._count)
        url = self.collection or (self._cache.get(self._list_key) if self._cache else None)
        if url is None:
            try:
                url = self._discover()
            except BaseException:
                self._drop_client()
                raise
            url = url if url.endswith("/") else url + "/"
            if self._cache:
                self._cache.put(self._list_key, url)
        url = url if url.endswith("/") else url + "/"
        if url != self.collection:
            self._load_collection(url)
        self._calendar = self._client.calendar(url=url)

    def _learn_auth(self) -> None:
        """After a listing worked with auth: auto, remember what the server wanted
        (nothing, Basic or Digest) for the next process."""
        if self._cache is None or self.config.auth != "auto" or self._client is None:
            return
        kind = type(self._client.auth).__name__.lower() if self._client.auth else ""
        learned = "digest" if "digest" in kind else "basic" if "basic" in kind else None
        if self._client.auth is None:
            learned = "none"  # the server never asked for credentials
        key = f"auth|{self._identity}"
        if learned and self._cache.get(key) != learned:
            self._cache.put(key, learned)

    def _features(self) -> dict[str, Any]:
        """caldav's server profile (`features=`) when the config names one."""
        server = getattr(self.config, "server", None)
        return {"features": server} if server else {}

    def _load_collection(self, url: str) -> None:
        """Point at the task list `url` and load what the cache knows of it."""
        self.collection = url
        self._path = urlsplit(url).path
        self._where = f"the task list {mask_url(url)}"
        self._items = {}
        self._token = None
        self._mode = "sync"
        if self._cache is not None:
            self._items = self._cache.load(url)
            self._token = self._cache.token(url)
            mode = self._cache.get(f"mode|{url}")
            if mode and time.time() - float(mode) < REPROBE_SYNC:
                self._mode = "etag"

    # --- the idle cycle of a new process ----------------------------------------------------

    def _quick_refresh(self) -> bool:
        """One sync-collection REPORT over the standard library, before caldav is
        even imported: a `kit-sync sync` run from cron with nothing to do then costs
        one request and no library start-up. Only when this process has not talked
        to the server yet, the cache knows the task list and a token, and the
        auth is none, Basic or a bearer token. Returns False to leave the work to the
        caldav path, which also reports every error: an HTTP error status, a
        redirect, TLS trouble or an answer this does not understand."""
        if self._calendar is not None:
            return False
        if self._cache is None:
            return False
        url = self._cache.get(self._list_key)
        if url is None:
            return False
        if url != self.collection:
            self._load_collection(url)
        headers = self._quick_headers()
        if self._mode != "sync" or not self._token or headers is None:
            return False
        import urllib.error
        import urllib.request

        body = _sync_body(self._token)
        request = urllib.request.Request(url, data=body, method="REPORT", headers=headers)
        self.requests += 1
        try:
            with urllib.request.urlopen(
                request, timeout=self.config.timeout, context=self._ssl_context(url)
            ) as response:
                status, data = response.status, response.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (403, 409, 412) and b"valid-sync-token" in _read(exc):
                self._token_refused()  # the caldav path then lists everything once
            return False  # (the caldav path asks again and tells what the status means)
        except (TimeoutError, ConnectionError) as exc:
            raise _translate(exc, self._where, "list the tasks") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError | ConnectionError):
                raise _translate(exc.reason, self._where, "list the tasks") from None
            return False  # TLS, name resolution, proxy...: the caldav path decides
        except (OSError, ValueError):
            return False
        parsed = _parse_sync_report(data, url) if status == 207 else None
        if parsed is None:
            return False
        changed, removed, token = parsed
        self._reconcile(changed, removed, complete=False, token=token)
        return True

    def plain_auth(self) -> str | None:
        """How a request sent without caldav logs in: "bearer", "basic", "none" (the
        server never asked for credentials), or None (digest, or not known yet:
        caldav negotiates it)."""
        auth = self._auth_type()
        remembered = self._cache.get(f"auth|{self._identity}") if self._cache else None
        if auth == "bearer" or (auth is None and self.config.token is not None):
            return "bearer"
        if auth == "basic" and self.config.username is not None:
            return "basic"
        if auth is None and remembered == "none":
            return "none"
        return None

    def known_collection(self) -> str | None:
        """The task list's URL, when this process or the cache knows it already."""
        if self.collection is not None:
            return self.collection
        return self._cache.get(self._list_key) if self._cache else None

    def _quick_headers(self) -> dict[str, str] | None:
        import base64

        headers = {
            "Content-Type": "application/xml; charset=utf-8",
            "Depth": "1",
            "User-Agent": USER_AGENT,
        }
        auth = self.plain_auth()
        if auth == "bearer":
            headers["Authorization"] = f"Bearer {self._secret('bearer')}"
        elif auth == "basic":
            pair = f"{self.config.username}:{self._secret('basic') or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        elif auth is None:
            return None
        return headers

    def _ssl_context(self, url: str) -> Any:
        if not url.lower().startswith("https:"):
            return None
        import ssl

        verify = self.config.verify
        context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
        if verify is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _probe(self, url: str) -> tuple[set[str], set[str]]:
        """PROPFIND Depth 0: the resource types of `url` and, for a calendar, the
        component types it accepts (empty: any)."""
        body = (
            b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" '
            b'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:resourcetype/>'
            b"<C:supported-calendar-component-set/></D:prop></D:propfind>"
        )
        try:
            response = self._client.propfind(url, body, 0)
        except Exception as exc:
            raise _translate(exc, self._where, "find the task list") from None
        results = response.parse_propfind() if response.status in (200, 207) else []
        if response.status == 404 or (results and results[0].status == 404):
            # (Xandikos answers 207 with a 404 inside)
            raise BackendUnavailable(
                f"{url} does not exist on the server (HTTP 404); set backend.url to the "
                "server's CalDAV root or to the task list's URL"
            )
        if response.status not in (200, 207):
            raise _status_error(response.status, _body(response), url, "look at")
        if not results:
            return set(), set()
        props = results[0].properties  # Depth 0: the resource itself
        kinds = props.get(_lib().dav.ResourceType.tag) or []
        comps = props.get(_lib().cdav.SupportedCalendarComponentSet.tag) or []
        return (
            {str(k) for k in kinds} if isinstance(kinds, list) else set(),
            {str(c).upper() for c in comps} if isinstance(comps, list) else set(),
        )

    def _principal(self) -> Any:
        """The logged-in user's principal (RFC 5397 current-user-principal at the URL).

        A server that lets anyone read its root (Cyrus does) never answers 401 there,
        so with auth: auto no credentials were sent and the principal comes back as
        "unauthenticated": then log in with Basic (the only scheme that needs no
        challenge) and ask again, rather than taking the root for the principal."""
        from caldav.davobject import DAVObject
        from caldav.lib.url import URL

        client = self._client
        cup = DAVObject(client=client, url=self.url).get_property(_lib().dav.CurrentUserPrincipal())
        if cup is None and client.auth is None and self.config.username:
            client.auth_type = "basic"
            client.build_auth_object(["basic"])
            cup = DAVObject(client=client, url=self.url).get_property(
                _lib().dav.CurrentUserPrincipal()
            )
        if cup is None:
            return client.principal()  # the library's fallback: the URL itself
        return client.principal(url=URL.objectify(self.url).join(URL.objectify(str(cup))))

    def _discover(self) -> str:
        """The task list's URL: config.url itself when it is a calendar, else the
        principal's calendar named task_list (created when allowed)."""
        cfg = self.config
        kinds, comps = self._probe(self.url)
        if _lib().cdav.Calendar.tag in kinds:
            if comps and "VTODO" not in comps:
                raise BackendUnavailable(
                    f"{self.url} is a calendar that cannot hold tasks (no VTODO); point "
                    "backend.url at a task list, or at the server root with backend.task_list"
                )
            return self.url
        try:
            principal = self._principal()
            calendars = principal.calendars()
            lists = []
            for cal in calendars:
                comps = cal.get_supported_components()
                if not comps or "VTODO" in comps:
                    lists.append((cal, cal.get_display_name() or ""))
        except Exception as exc:
            raise _translate(exc, self._where, "find the task lists") from None
        wanted = cfg.task_list
        if wanted:
            for cal, name in lists:
                slug = unquote(urlsplit(str(cal.url)).path.rstrip("/").rsplit("/", 1)[-1])
                if wanted.casefold() in (name.casefold(), slug.casefold()):
                    return str(cal.url)
        elif lists:
            return str(lists[0][0].url)
        names = ", ".join(sorted(repr(n) for _, n in lists if n)) or "none"
        if not cfg.create:
            what = f"no task list named '{wanted}'" if wanted else "no task list"
            raise BackendUnavailable(
                f"{self.url} has {what} (task lists there: {names}); set backend.create: "
                "true to create it, or backend.task_list to one of these"
            )
        name = wanted or "Keep in touch"
        try:
            made = principal.make_calendar(name=name, supported_calendar_component_set=["VTODO"])
        except Exception as exc:
            raise _translate(exc, self._where, f"create the task list '{name}'") from None
        log.info("created the task list '%s' at %s", name, made.url)
        return str(made.url)

    # --- listing ----------------------------------------------------------------------------

    def fetch_listing(self) -> Listing:
        self._save_writes()
        try:
            if not self._quick_refresh():
                self._connect()
                try:
                    self._refresh()
                except _CollectionGone:
                    self._forget_collection()
                    self._connect()
                    self._refresh()
                self._learn_auth()
        except _CollectionGone:
            raise BackendUnavailable(
                f"{self._where} is gone (HTTP 404); was it deleted or renamed on the server?"
            ) from None
        except Exception as exc:
            raise _translate(exc, self._where, "list the tasks") from None
        listing = Listing()
        for item in self._items.values():
            if item.task is not None:
                listing.tasks.append(item.task)
            elif item.problem is not None:
                listing.problems.append(item.problem)
        return listing

    def _forget_collection(self) -> None:
        log.warning("%s answers 404; looking for the task list again", self._where)
        if self._cache is not None:
            self._cache.put(self._list_key, None)
        self.collection = None
        self._drop_client()

    def _refresh(self) -> None:
        if self._mode == "sync":
            try:
                self._sync()
                return
            except _SyncUnsupported as exc:
                log.warning(
                    "%s does not support sync-collection (%s); listing it by ETags instead",
                    self._where,
                    exc,
                )
                self._mode = "etag"
                if self._cache is not None:
                    self._cache.put(f"mode|{self.collection}", str(time.time()))
        self._etag_listing()

    def _sync(self) -> None:
        token = self._token
        try:
            changed, removed, new_token = self._report_sync(token)
        except _TokenRejected:
            self._token_refused()
            token = None
            try:
                changed, removed, new_token = self._report_sync(None)
            except _TokenRejected as exc:
                raise BackendUnavailable(
                    f"{self._where} refused a listing without a token"
                ) from exc
        self._reconcile(changed, removed, complete=token is None, token=new_token)

    def _token_refused(self) -> None:
        log.info(
            "%s no longer accepts the sync token (expired or reset); listing it once in full",
            self._where,
        )
        self._token = None

    def _report_sync(
        self, token: str | None
    ) -> tuple[dict[str, tuple[str, str | None]], set[str], str]:
        try:
            result = self._calendar.get_objects_by_sync_token(
                token, load_objects=False, disable_fallback=True
            )
        except _lib().error.NotFoundError:
            raise _CollectionGone() from None
        except _lib().error.DAVError as exc:
            if isinstance(exc, _lib().error.RateLimitError):
                raise
            pre = set(exc.preconditions)
            refused = isinstance(exc, _lib().error.AuthorizationError)
            if token and (
                VALID_SYNC_TOKEN in pre or (not refused and exc.status in (400, 409, 410, 412))
            ):
                raise _TokenRejected() from exc
            if exc.status == 404:
                raise _CollectionGone() from None
            if SUPPORTED_REPORT in pre or (
                not isinstance(exc, _lib().error.AuthorizationError)
                and exc.status in (400, 403, 405, 415, 422, 501)
            ):
                raise _SyncUnsupported(f"HTTP {exc.status}") from exc
            raise
        if getattr(result, "truncated", False):
            raise _SyncUnsupported("the server cut the sync report short")
        new_token = result.sync_token
        if not new_token or str(new_token).startswith("fake-"):
            raise _SyncUnsupported("no sync token in the answer")
        deleted = {_key(str(u)) for u in getattr(result, "deleted_urls", ()) or ()}
        changed: dict[str, tuple[str, str | None]] = {}
        for obj in result:
            href = urlsplit(str(obj.url)).path
            key = _key(href)
            if key in deleted or key.endswith("/") or key.rstrip("/") == self._path.rstrip("/"):
                continue
            changed[key] = (href, obj.props.get(_lib().dav.GetEtag.tag))
        return changed, deleted, str(new_token)

    def _etag_listing(self) -> None:
        body = (
            b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
            b"<D:getetag/><D:resourcetype/></D:prop></D:propfind>"
        )
        response = self._client.propfind(self.collection, body, 1)
        if response.status == 404:
            raise _CollectionGone()
        if response.status not in (200, 207):
            raise _translate(
                _lib().error.PropfindError(
                    self.collection, f"HTTP {response.status}", status=response.status
                ),
                self._where,
                "list the tasks",
            )
        changed: dict[str, tuple[str, str | None]] = {}
        for result in response.parse_propfind():
            key = _key(result.href)
            if key.endswith("/") or key.rstrip("/") == self._path.rstrip("/"):
                continue
            etag = result.properties.get(_lib().dav.GetEtag.tag)
            changed[key] = (urlsplit(result.href).path, str(etag) if etag else None)
        self._reconcile(changed, set(), complete=True, token=None)

    def _reconcile(
        self,
        changed: dict[str, tuple[str, str | None]],
        removed: set[str],
        *,
        complete: bool,
        token: str | None,
    ) -> None:
        """Apply what the server reported: fetch only items whose ETag is new to us."""
        removed = set(removed)
        if complete:
            removed |= set(self._items) - set(changed)
        wanted = [
            (key, href)
            for key, (href, etag) in changed.items()
            if etag is None or key not in self._items or self._items[key].etag != etag
        ]
        fresh: dict[str, _Item] = {}
        for key, href, etag, data in self._multiget([href for _, href in wanted]):
            etag = etag or changed.get(key, (href, None))[1] or ""
            if isinstance(data, ItemProblem):
                # Skipped (too large, unreadable answer): reported by href until its
                # ETag changes; the rest of the list syncs.
                fresh[key] = _Item(href, etag, problem=data)
                continue
            fresh[key] = self._parse(href, etag, data)
        for key, _href in wanted:
            if key not in fresh:
                removed.add(key)  # deleted between the report and the multiget
        for key in removed:
            self._items.pop(key, None)
        self._items.update(fresh)
        # Nothing new under the same token (an idle cycle): the cache holds this
        # listing already (or an older one, still consistent with its own token), so
        # there is nothing to commit.
        same = not (fresh or removed or complete) and token == self._token
        self._token = token
        if self._cache is not None and self.collection is not None and not same:
            self._cache.save_listing(
                self.collection, token, fresh, removed, keep=set(changed) if complete else None
            )
            _in_cache(fresh.values())
        if wanted or removed:
            log.debug(
                "%s: %d changed item(s) fetched, %d removed", self._where, len(fresh), len(removed)
            )

    def _multiget(
        self, hrefs: list[str]
    ) -> Iterator[tuple[str, str, str | None, bytes | ItemProblem]]:
        """(key, path, etag, data) of each item, in batches; an item the server's
        answer cannot carry (a 50 MB task exceeds the XML parser's limits, a broken
        entry) comes as an ItemProblem instead, so one bad item never stops the rest."""
        if hrefs:
            self._connect()
        for start in range(0, len(hrefs), MULTIGET_BATCH):
            batch = hrefs[start : start + MULTIGET_BATCH]
            results: list[tuple[str, str, str | None, bytes | ItemProblem] | None]
            try:
                results = list(self._multiget_batch(batch))
            except (_CollectionGone, BackendError):
                raise
            except Exception as exc:
                if self._transport(exc):
                    raise
                log.info(
                    "%s: the answer for %d item(s) cannot be read (%s); reading them one by one",
                    self._where,
                    len(batch),
                    _short(exc),
                )
                results = [self._get_one(href) for href in batch]
            yield from (r for r in results if r is not None)

    @staticmethod
    def _transport(exc: BaseException) -> bool:
        """A network failure (not an answer that cannot be read)."""
        http = _lib().http
        return isinstance(exc, OSError | http.exceptions.RequestException | TimeoutError)

    def _get_one(self, href: str) -> tuple[str, str, str | None, bytes | ItemProblem] | None:
        """One item by GET, after its batch could not be read; None when gone."""
        path = urlsplit(href).path
        response = self._send("GET", href, "", {"Accept": "text/calendar"})
        if response.status == 404:
            return None
        if response.status >= 300:
            raise _status_error(response.status, None, href, "read")
        etag = _strong(_header(response, "ETag")) or _header(response, "ETag")
        raw = getattr(response, "_raw", None)
        size = len(raw) if isinstance(raw, bytes | str) else len(_body(response))
        if size > MAX_ITEM_BYTES:
            limit = MAX_ITEM_BYTES // MB
            problem = ItemProblem(
                path, f"is too large ({size / MB:.1f} MB; at most {limit} MB is read); skipped"
            )
            return _key(path), path, etag, problem
        data = _body(response).encode("utf-8")
        return _key(path), path, etag, data

    def _multiget_batch(
        self, batch: list[str]
    ) -> Iterator[tuple[str, str, str | None, bytes | ItemProblem] | None]:
        root = (
            _lib().cdav.CalendarMultiGet()
            + (_lib().dav.Prop() + [_lib().dav.GetEtag(), _lib().cdav.CalendarData()])
            + [_lib().dav.Href(value=quote(h, safe="/@:+,;=!$&'()*~")) for h in batch]
        )
        body = _lib().etree.tostring(root.xmlelement(), encoding="utf-8", xml_declaration=True)
        response = self._client.report(self.collection, body, 1)
        if response.status == 404:
            raise _CollectionGone()
        if response.status not in (200, 207):
            raise _translate(
                _lib().error.ReportError(
                    self.collection, f"HTTP {response.status}", status=response.status
                ),
                self._where,
                "read the changed tasks",
            )
        for result in response.parse_calendar_query():
            if result.calendar_data is None or result.status == 404:
                continue  # deleted meanwhile
            path = urlsplit(result.href).path
            yield _key(path), path, result.etag, result.calendar_data.encode("utf-8")

    def _parse(self, href: str, etag: str, data: bytes) -> _Item:
        found = _lib().ical.task_from_ical(data, href, etag)
        item = _Item(href, etag)
        if isinstance(found, KitTask):
            item.task, item.data = found, data
        elif isinstance(found, ItemProblem) and found.contact_id is not None:
            item.problem, item.data = found, data
        return item

    # --- writing ----------------------------------------------------------------------------

    def _send(self, method: str, href: str, body: bytes | str, headers: dict[str, str]) -> Any:
        url = urljoin(self.collection or self.url, quote(href, safe="/@:+,;=!$&'()*~"))
        try:
            return self._client.request(url, method, body, headers)
        except _lib().error.AuthorizationError as exc:
            pre = set(exc.preconditions)
            if pre & UID_CONFLICT:
                raise self._uid_conflict(href, exc.body) from None
            if exc.status == 403 and pre:
                names = ", ".join(p.split("}")[-1] for p in pre)
                raise ItemRejected(f"the server refused {href} (HTTP 403: {names})") from None
            raise _translate(exc, self._where, f"write {href}") from None
        except Exception as exc:
            raise _translate(exc, self._where, f"write {href}") from None

    def _fetch_one(self, href: str) -> tuple[bytes, str]:
        """GET one item: its data and strong ETag. Raises NotFound."""
        # Not compressed: Cyrus marks the ETag of a gzip-encoded answer weak (W/"..."),
        # rightly so for that encoding, and a weak ETag cannot go into If-Match.
        response = self._send(
            "GET", href, "", {"Accept": "text/calendar", "Accept-Encoding": "identity"}
        )
        if response.status == 404:
            self._drop(href, None)
            raise NotFound(f"{href} is gone (deleted on another device?)")
        if response.status >= 300:
            raise _status_error(response.status, None, href, "read")
        etag = _strong(_header(response, "ETag"))
        data = _body(response).encode("utf-8")
        if etag is None:
            raise ItemRejected(f"the server gives no usable ETag for {href}; cannot edit it safely")
        return data, etag

    def _stored(self, href: str, response: Any, data: bytes) -> _Item:
        """The item after our PUT: the ETag the server returned, else read it back."""
        etag = _strong(_header(response, "ETag"))
        if etag is None:
            # A server that changed what we sent must not return a strong ETag
            # (RFC 4791 5.3.4): read back what it stored.
            data, etag = self._fetch_one(href)
        return self._parse(href, etag, data)

    def _uid_conflict(self, href: str, body: Any) -> AlreadyExists:
        other = _conflict_href(body)
        if other is not None and not _key(other).startswith(self._path):
            return _UidTakenElsewhere(f"the UID of {href} is used in another task list ({other})")
        return AlreadyExists(f"another task on the server already has this UID ({href})")

    def create_task(self, new: NewTask) -> KitTask:
        try:
            return self._create(new)
        except _UidTakenElsewhere as exc:
            # The same contact's task in another list of this account (an earlier
            # list, a second kit-sync config) holds this UID. Our UIDs only need to be
            # unique in this list; one derived from the list's path is, and stays the
            # same on a retry, so a create after a crash still finds its first copy.
            log.info("%s; using a UID for this list", exc)
            own = make_uid(new.meta.contact_id, f"{new.uid}|{self._path}")
            try:
                return self._create(replace(new, uid=own))
            except _UidTakenElsewhere as again:
                raise AlreadyExists(str(again)) from None

    def _create(self, new: NewTask) -> KitTask:
        self._ensure_connected()
        data = _lib().ical.new_vtodo(new, self.tz, self._clock())
        href = self._path + _file_name(new.uid)
        response = self._send("PUT", href, data, {**ICS, "If-None-Match": "*"})
        if response.status == 412:
            raise AlreadyExists(f"{href} already exists")
        if response.status in (403, 409) and (
            set(_lib().error.parse_preconditions(_body(response))) & UID_CONFLICT
        ):
            raise self._uid_conflict(href, _body(response))
        if response.status not in (200, 201, 204):
            raise _status_error(response.status, _body(response), href, "create")
        etag = _strong(_header(response, "ETag"))
        if etag is not None:
            # Stored as sent: the task is what we built (no need to parse it back).
            task = KitTask(
                uid=new.uid,
                href=href,
                etag=etag,
                status=Status.OPEN,
                due=new.due,
                meta=new.meta,
                summary=new.content.summary,
            )
            item = _Item(href, etag, task=task, data=data)
        else:
            item = self._stored(href, response, data)
        if item.task is None:
            raise ItemRejected(f"{href}: the server stored a task that does not read back")
        self._remember(href, item, None)
        return item.task

    def update_task(self, task: KitTask, change: TaskChange) -> KitTask:
        self._ensure_connected()
        href = task.href
        current, etag = self._current_data(task)
        try:
            data = _lib().ical.apply_change(current, change, self.tz, self._clock())
        except _lib().ical.ParseError as exc:
            raise ItemRejected(f"{href}: {exc}") from None
        response = self._send("PUT", href, data, {**ICS, "If-Match": etag})
        if response.status == 412:
            self._conflict_or_gone(href)
        if response.status not in (200, 201, 204):
            raise _status_error(response.status, _body(response), href, "update")
        item = self._stored(href, response, data)
        if item.task is None:
            raise ItemRejected(f"{href}: the server stored a task that does not read back")
        self._remember(href, item, etag)
        return item.task

    def delete_task(self, task: KitTask) -> None:
        self._ensure_connected()
        href = task.href
        known = self._items.get(_key(href))
        if known is not None and known.etag != task.etag:
            raise Conflict(f"{href} changed since it was read")
        response = self._send("DELETE", href, "", {"If-Match": task.etag})
        if response.status == 412:
            self._conflict_or_gone(href)
        if response.status == 404:
            self._drop(href, task.etag)
            raise NotFound(f"{href} is gone (deleted on another device?)")
        if response.status not in (200, 202, 204):
            raise _status_error(response.status, _body(response), href, "delete")
        self._drop(href, task.etag)

    def _ensure_connected(self) -> None:
        try:
            self._connect()
        except _CollectionGone:
            raise BackendUnavailable(f"{self._where} is gone (HTTP 404)") from None
        except BackendError:
            raise
        except Exception as exc:
            raise _translate(exc, self._where, "connect") from None

    def _current_data(self, task: KitTask) -> tuple[bytes, str]:
        """The raw item `task` was read from, and the ETag to send in If-Match.
        Conflict if we already know a newer version."""
        known = self._items.get(_key(task.href))
        if known is not None and known.etag != task.etag:
            raise Conflict(f"{task.href} changed since it was read")
        if task.etag and known is not None and known.data is not None:
            return known.data, task.etag
        if task.etag and known is not None and self._cache is not None and self.collection:
            data = self._cache.data(self.collection, _key(task.href), task.etag)
            if data is not None:
                known.data = data
                return data, task.etag
        data, etag = self._fetch_one(task.href)
        if task.etag and etag != task.etag:
            raise Conflict(f"{task.href} changed since it was read")
        # (a server that listed no ETag: the version just read is the one we edit)
        return data, etag

    def _conflict_or_gone(self, href: str) -> None:
        """A 412 on If-Match: changed, or (Radicale answers 412 for this too) deleted."""
        self._fetch_one(href)  # raises NotFound when gone
        raise Conflict(f"{href} changed on the server since it was read")

    def _remember(self, href: str, item: _Item, before: str | None) -> None:
        key = _key(href)
        self._items[key] = item
        self._note_write(key, item, before)

    def _drop(self, href: str, etag: str | None) -> None:
        key = _key(href)
        self._items.pop(key, None)
        if etag is not None:
            self._note_write(key, None, etag)

    def _note_write(self, key: str, item: _Item | None, before: str | None) -> None:
        """Our writes go to the cache in batches (at the next listing, at close,
        or every WRITE_BATCH): a write lost by a crash only costs a re-fetch of that
        item, since the server reports it as changed since the saved token."""
        if self._cache is None or self.collection is None:
            return
        self._unsaved.append((key, item, before))
        if len(self._unsaved) >= WRITE_BATCH:
            self._save_writes()

    def _save_writes(self) -> None:
        if not self._unsaved or self._cache is None or self.collection is None:
            self._unsaved.clear()
            return
        try:
            self._cache.save_writes(self.collection, self._unsaved)
        except sqlite3.Error as exc:
            log.warning("could not note writes in the CalDAV cache: %s", exc)
        else:
            _in_cache(item for _, item, _ in self._unsaved if item is not None)
        self._unsaved.clear()

    def _drop_client(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        self._client = None
        self._calendar = None

    def close(self) -> None:
        self._save_writes()
        self._drop_client()
        self._cache = None


__all__ = ["CaldavBackend", "_file_name"]
