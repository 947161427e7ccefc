"""Microsoft To Do through the Microsoft Graph To Do API (Microsoft 365 / Outlook.com).

One todoTask per occurrence, as for CalDAV: To Do's own recurrence has no
"regenerate after completion" pattern, so kit-sync creates the next task itself.

What is where on a todoTask:

- title, body (text), categories, importance (from the priority), dueDateTime
  (local midnight of the due day in the user's zone), a reminder on the due day;
- one linkedResource is ours: applicationName "kit-sync", externalId = contact id
  (the ownership marker), and kit-sync's bookkeeping (uid, anchor, cadence, the due
  date it wrote, ...) url-encoded in the fragment of its webUrl, so state can be
  rebuilt from the server alone. A task is kit-sync's only when that link holds a
  kit UID of the contact it names (`items.find_link`, with the rule and its two
  exceptions); a task with a copied marker but an identity of its own is foreign,
  reported once. To Do has no "cancelled" status: a cancelled task
  is a completed one whose link says so.

Reading is incremental: the tasks delta query (`/tasks/delta`) with the
deltaLink and a mirror of the kit-owned tasks kept in the state DB, so an idle
cycle is one request. A delta link the server no longer knows (410 Gone,
syncStateNotFound) resets to one full listing. Creates go out 20 to a `$batch`.
429/503/504 are retried after Retry-After within `max_retry_wait` per cycle;
updates and deletes carry `If-Match: <@odata.etag>` and a 412 is a Conflict.

The one module that turns HTTP statuses and Graph error codes into the backend
errors of `base.py` is `transport._error`.

The package: `items` (pure conversions, unit-tested), `transport` (batching,
Retry-After, error translation) and this module, the backend class.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import httpx

from kit_sync.backends.base import (
    AlreadyExists,
    Backend,
    BackendError,
    BackendUnavailable,
    Conflict,
    ItemRejected,
    NotFound,
)
from kit_sync.backends.graph.items import (
    compact,
    completed_of,
    copied_marker,
    decode_link,
    due_of,
    encode_link,
    find_link,
    html_note,
    importance_of,
    is_partial,
    merge_partial,
    note_text,
    parse_dtz,
    to_dtz,
    zone_name_for_graph,
    zone_named,
)
from kit_sync.backends.graph.transport import (
    BATCH_LIMIT,
    PAGE_SIZE,
    RESYNC_CODES,
    _chunks,
    _error,
    _graph_error,
    _json,
    _ok,
    _throttled,
    retry_after,
)
from kit_sync.backends.graph_auth import TokenProvider, token_provider
from kit_sync.clock import Clock, system_clock
from kit_sync.config import GraphConfig
from kit_sync.model import (
    ItemProblem,
    KitTask,
    Listing,
    NewTask,
    Status,
    TaskChange,
    TaskContent,
    make_uid,
)
from kit_sync.state import CachedItem, ListingCache, State

log = logging.getLogger("kit_sync")

#: Graph ids already reported as carrying kit-sync's marker without a kit UID (foreign),
#: so each is reported once per process, not at every cycle or daily full listing.
_warned_foreign: set[str] = set()


def _report_foreign(raw: dict[str, Any], marker: dict[str, Any]) -> None:
    tid = str(raw.get("id"))
    if tid in _warned_foreign:
        return
    _warned_foreign.add(tid)
    log.warning(
        "the To Do task '%s' carries kit-sync's link (%s) but not a kit-sync UID of that "
        "contact: made or copied by another app. kit-sync leaves it alone (delete it if it "
        "is a stray copy)",
        raw.get("title") or tid,
        marker.get("externalId"),
        extra={"href": tid},
    )


def parse_dtz_utc(value: Any) -> datetime | None:
    """lastModifiedDateTime as an instant (Graph writes it with 7 fractional digits)."""
    try:
        return datetime.fromisoformat(str(value).rstrip("Z")[:26]).replace(tzinfo=UTC)
    except ValueError:
        return None


#: Delta does not report changes to navigation properties (the linked resources that
#: hold kit-sync's marker), so the whole list is read again this often.
RELIST_EVERY = timedelta(days=1)


# --- the backend -----------------------------------------------------------------


class GraphBackend(Backend):
    """A Microsoft To Do list through Microsoft Graph. See base.Backend for the contract."""

    regenerates_itself: ClassVar[bool] = False
    #: Creates per `$batch` request; the engine sends creates to `create_tasks` in
    #: chunks of this size.
    batch_size: ClassVar[int] = BATCH_LIMIT

    def __init__(
        self,
        config: GraphConfig,
        tz: ZoneInfo,
        *,
        tokens: TokenProvider | None = None,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self.tz = tz
        self.tokens: TokenProvider = tokens or token_provider(config)
        self._clock = clock or system_clock
        self._sleep = sleep or time.sleep
        self._base = config.graph_url.rstrip("/")
        origin = urlsplit(self._base)
        self._origin = f"{origin.scheme}://{origin.netloc}".lower()
        app_only = config.client_secret is not None or config.certificate is not None
        self._root = f"/users/{quote(config.user or '', safe='@')}" if app_only else "/me"
        verify: Any = config.verify
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify)
        self._http = httpx.Client(
            base_url=self._base + "/",
            verify=verify,
            timeout=config.timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        scope_key = f"{self._base}|{self._root}|{config.task_list or ''}"
        self._key = "graph:" + hashlib.sha256(scope_key.encode()).hexdigest()[:12]
        self._state: State | None = None
        self._list_id: str | None = None
        self._delta: str | None = None
        self._tasks: dict[str, dict[str, Any]] = {}  # kit-owned tasks by Graph id
        self._pending: dict[str, dict[str, Any]] = {}  # half-done link writes by task id
        self._synced = False  # the mirror was brought up to date in this process
        self._listed_at: datetime | None = None  # the last full listing
        self._budget = float(config.max_retry_wait)
        #: Requests sent to Graph (each $batch counts once), for benchmarks and logs.
        self.requests = 0

    # --- state -----------------------------------------------------------------------

    def bind_state(self, state: State) -> None:
        """Keep the delta link and the mirror in the state DB's listing cache (the
        engine calls this): items by Graph id, the delta link as the scope's token,
        the list id and half-done link writes ("p:<id>") as meta values."""
        self._state = state
        if self._synced:
            self._persist(set(self._tasks), set(), full=True)
            return
        cache = state.listing_cache()
        meta = cache.meta(self._key)
        self._list_id = meta.get("list")
        self._delta = meta.get(ListingCache.TOKEN)
        try:
            listed = meta.get("listed")
            self._listed_at = datetime.fromisoformat(listed) if listed else None
        except ValueError:
            self._listed_at = None
        try:
            for key, value in meta.items():
                if key.startswith("p:"):
                    self._pending[key[2:]] = json.loads(value)
            for tid, item in cache.load(self._key).items():
                self._tasks[tid] = json.loads(item.info or "")
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a damaged Graph cache entry; re-listing")
            self._delta = None
        if self._delta is None:
            self._tasks.clear()
        foreign = {tid for tid, raw in self._tasks.items() if find_link(raw) is None}
        for tid in sorted(foreign):
            # Mirrored by a kit-sync that went by the marker alone: foreign.
            raw = self._tasks.pop(tid)
            marker = copied_marker(raw)
            if marker is not None:
                _report_foreign(raw, marker)
        if foreign:
            self._persist(set(), foreign)

    def _put(self, key: str, value: str | None) -> None:
        if self._state is not None:
            self._state.listing_cache().put(self._key, key, value)

    def _persist(self, changed: set[str], removed: set[str], *, full: bool = False) -> None:
        """The mirror's changes and the delta link that covers them, in one transaction."""
        if self._state is None:
            return
        fresh = {
            tid: CachedItem(
                tid,
                str(self._tasks[tid].get("@odata.etag") or ""),
                "task",
                json.dumps(self._tasks[tid], separators=(",", ":")),
            )
            for tid in changed
            if tid in self._tasks
        }
        meta: dict[str, str | None] = {
            "list": self._list_id,
            "listed": self._listed_at.isoformat() if self._listed_at else None,
        }
        meta |= {f"p:{tid}": None for tid in removed}
        self._state.listing_cache().save_listing(
            self._key,
            self._delta,
            fresh,
            removed,
            keep=set(self._tasks) if full else None,
            meta=meta,
        )

    def _set_pending(self, tid: str, record: dict[str, Any] | None) -> None:
        if record is None:
            self._pending.pop(tid, None)
        else:
            self._pending[tid] = record
        self._put(f"p:{tid}", None if record is None else json.dumps(record))

    # --- HTTP ------------------------------------------------------------------------

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Prefer": f'outlook.timezone="{self.tz.key}"'}
        if extra:
            headers.update(extra)
        return headers

    def _send(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        safe: bool = True,
    ) -> httpx.Response:
        """One request with a fresh token, retried on 429/503 (and 504 when `safe`:
        a non-idempotent request may have been done) after Retry-After, within the
        cycle's throttling budget. Returns the response, whatever its status."""
        refreshed = False
        attempts = 0
        while True:
            token = self.tokens.get_token(force_refresh=refreshed)
            try:
                self.requests += 1
                resp = self._http.request(
                    method,
                    url,
                    json=body,
                    headers={**self._headers(headers), "Authorization": f"Bearer {token}"},
                )
            except httpx.TimeoutException as exc:
                attempts += 1
                if safe and attempts < 2:
                    continue
                raise BackendUnavailable(
                    f"Microsoft Graph did not answer in {self.config.timeout:.0f} s ({exc!r}); "
                    "retried at the next sync"
                ) from None
            except httpx.TransportError as exc:
                raise BackendUnavailable(
                    f"cannot reach Microsoft Graph at {self._base} ({type(exc).__name__}: {exc})"
                ) from None
            if resp.status_code == 401 and not refreshed:
                refreshed = True  # a revoked or clock-skewed token: get a new one, once
                continue
            if resp.status_code in (429, 503) or (resp.status_code == 504 and safe):
                wait = retry_after(resp.headers)
                if not self._spend(wait):
                    raise _error(resp.status_code, _json(resp), "the request", resp.headers)
                log.info(
                    "Microsoft Graph answered %d; waiting %.1f s as asked", resp.status_code, wait
                )
                self._sleep(wait)
                continue
            return resp

    def _spend(self, wait: float) -> bool:
        """Take `wait` seconds from this cycle's throttling budget, if there are enough."""
        if wait > self._budget:
            return False
        self._budget -= wait
        return True

    def _call(
        self, method: str, url: str, what: str, *, body: Any = None, **kw: Any
    ) -> dict[str, Any]:
        resp = self._send(method, url, body=body, **kw)
        data = _json(resp)
        if not _ok(resp.status_code):
            raise _error(resp.status_code, data, what, resp.headers)
        return data if isinstance(data, dict) else {}

    def _batch(self, requests: list[dict[str, Any]], *, safe: bool) -> dict[str, dict[str, Any]]:
        """Send up to 20 requests as one `$batch`; returns the responses by id.

        Requests answered 429/503 (504 too when `safe`), and those that failed only
        because one of them did (424), are sent again after the longest
        Retry-After, while the throttling budget lasts."""
        assert len(requests) <= BATCH_LIMIT
        pending = {r["id"]: r for r in requests}
        done: dict[str, dict[str, Any]] = {}
        while pending:
            data = self._call(
                "POST",
                "$batch",
                "a batch request",
                body={"requests": list(pending.values())},
                safe=safe,
            )
            answers = {
                str(a.get("id")): a for a in data.get("responses") or [] if isinstance(a, dict)
            }
            status = {rid: int((answers.get(rid) or {}).get("status") or 0) for rid in pending}
            throttled = {rid for rid, st in status.items() if _throttled(st, safe)}
            again = set(throttled)
            grew = True
            while grew:  # 424: failed only because a request it depends on was throttled
                grew = False
                for rid, request in pending.items():
                    needs = set(request.get("dependsOn") or ())
                    if rid not in again and status[rid] == 424 and needs & again:
                        again.add(rid)
                        grew = True
            for rid in pending:
                if rid not in again:
                    done[rid] = answers.get(rid) or {
                        "id": rid,
                        "status": 502,
                        "body": {"error": {"code": "noAnswer", "message": "missing in the batch"}},
                    }
            if not again:
                break
            wait = max(
                (retry_after(answers[r].get("headers")) for r in throttled),
                default=0.0,
            )
            if not self._spend(wait):
                for rid in again:
                    done[rid] = answers[rid]
                break
            log.info(
                "Microsoft Graph throttled %d request(s) of a batch; waiting %.1f s",
                len(throttled),
                wait,
            )
            self._sleep(wait)
            retry = {}
            for rid in sorted(again):
                request = dict(pending[rid])
                deps = [d for d in request.get("dependsOn") or () if d in again]
                if deps:
                    request["dependsOn"] = deps
                else:
                    request.pop("dependsOn", None)
                retry[rid] = request
            pending = retry
        return done

    def _own_link(self, link: str) -> str:
        """A nextLink/deltaLink, checked to point at our Graph host before a token goes with it."""
        parts = urlsplit(link)
        if f"{parts.scheme}://{parts.netloc}".lower() != self._origin:
            raise BackendUnavailable(
                f"Microsoft Graph returned a link to another host ({parts.netloc}); "
                "not following it"
            )
        return link

    # --- the task list ---------------------------------------------------------------

    @property
    def _lists(self) -> str:
        return f"{self._root}/todo/lists"

    def _tasks_url(self) -> str:
        return f"{self._lists}/{quote(self._list(), safe='=')}/tasks"

    def _task_url(self, tid: str) -> str:
        return f"{self._tasks_url()}/{quote(tid, safe='=')}"

    def _list(self) -> str:
        if self._list_id is not None:
            return self._list_id
        lists: list[dict[str, Any]] = []
        url = self._lists
        while True:
            try:
                page = self._call("GET", url, "the To Do lists")
            except NotFound as exc:
                who = f"user '{self.config.user}'" if self._root != "/me" else "the signed-in user"
                raise BackendUnavailable(
                    f"Microsoft Graph finds no To Do for {who} ({exc}); check backend.user"
                ) from None
            lists += [x for x in page.get("value") or [] if isinstance(x, dict)]
            if not page.get("@odata.nextLink"):
                break
            url = self._own_link(str(page["@odata.nextLink"]))
        name = self.config.task_list
        found = None
        if name:
            found = next((x for x in lists if x.get("displayName") == name), None) or next(
                (x for x in lists if str(x.get("displayName", "")).casefold() == name.casefold()),
                None,
            )
        else:
            found = next((x for x in lists if x.get("wellknownListName") == "defaultList"), None)
        if found is None and name and self.config.create:
            found = self._call(
                "POST",
                self._lists,
                f"the new To Do list '{name}'",
                body={"displayName": name},
                safe=False,
            )
            log.info("created the To Do list '%s'", name)
        if found is None or not found.get("id"):
            names = ", ".join(sorted(repr(x.get("displayName")) for x in lists)) or "none"
            what = f"a To Do list named '{name}'" if name else "a default To Do list"
            raise BackendUnavailable(
                f"there is no {what} (lists: {names}); fix backend.task_list or set "
                "backend.create: true"
            )
        list_id = str(found["id"])
        if self._tasks:  # a mirror of another list (the cached id was forgotten)
            self._reset_mirror()
        self._list_id = list_id
        self._put("list", list_id)
        return list_id

    def _reset_mirror(self) -> None:
        self._delta = None
        self._tasks.clear()
        self._pending.clear()

    def _forget_list(self) -> None:
        self._list_id = None
        self._put("list", None)
        self._reset_mirror()
        self._persist(set(), set(), full=True)

    # --- reading ---------------------------------------------------------------------

    def fetch_listing(self) -> Listing:
        self._budget = float(self.config.max_retry_wait)
        self._sync()
        self._roll_forward()
        return self._listing()

    def _ensure_synced(self) -> None:
        if not self._synced:
            self._sync()

    def _sync(self) -> None:
        """One delta round: every change since the stored deltaLink, applied to the mirror."""
        start = f"{self._tasks_url()}/delta?$expand=linkedResources"
        now = self._clock()
        if self._delta is not None and self._listed_at is None:
            self._listed_at = now  # (a state from before this was kept: count from now)
        if (
            self._delta is not None
            and self._listed_at is not None
            and now - self._listed_at >= RELIST_EVERY
        ):
            # A change to a linked resource alone (a client removing or editing
            # kit-sync's link) need not show in delta: once a day, read everything.
            log.info("reading the whole To Do list again (the daily check of the links)")
            self._delta = None
        url = self._delta or start
        full = self._delta is None
        items: list[dict[str, Any]] = []
        headers = {"Prefer": f'outlook.timezone="{self.tz.key}", odata.maxpagesize={PAGE_SIZE}'}
        while True:
            resp = self._send("GET", url, headers=headers)
            data = _json(resp)
            if not _ok(resp.status_code):
                code = _graph_error(data)[0].lower()
                if resp.status_code == 410 or code in RESYNC_CODES:
                    if full:
                        raise BackendUnavailable(
                            "Microsoft Graph refused a full listing of the task list "
                            f"({resp.status_code} {code}); retried at the next sync"
                        )
                    log.warning(
                        "the stored delta link of the To Do list expired (%d %s); "
                        "listing the whole list once",
                        resp.status_code,
                        code or "Gone",
                    )
                    url, full, items = start, True, []
                    self._delta = None
                    continue
                if resp.status_code == 404:
                    self._forget_list()
                    raise BackendUnavailable(
                        "the To Do list is gone (deleted or moved?); the next sync looks it "
                        "up again"
                    )
                raise _error(resp.status_code, data, "the task list", resp.headers)
            page = data if isinstance(data, dict) else {}
            items += [x for x in page.get("value") or [] if isinstance(x, dict) and x.get("id")]
            if page.get("@odata.nextLink"):
                url = self._own_link(str(page["@odata.nextLink"]))
                continue
            if not page.get("@odata.deltaLink"):
                raise BackendUnavailable("Microsoft Graph ended a delta round without a deltaLink")
            delta = self._own_link(str(page["@odata.deltaLink"]))
            break
        self._apply_delta(items, full, delta)

    def _apply_delta(self, items: list[dict[str, Any]], full: bool, delta: str) -> None:
        before = self._tasks
        now = {} if full else dict(before)
        changed: set[str] = set()
        unknown: list[str] = []
        for item in items:
            tid = str(item["id"])
            if "@removed" in item:
                now.pop(tid, None)
                unknown = [u for u in unknown if u != tid]
                continue
            known = before.get(tid)
            if is_partial(item):
                # Only the changed properties came: merged into what we hold; a task
                # we hold nothing of is read whole.
                if known is None:
                    unknown.append(tid)
                    continue
                item = merge_partial(known, item)
            if "linkedResources" not in item:
                # The server did not expand linkedResources in the delta: what we
                # knew still holds; a task never seen must be looked at.
                if known is None:
                    unknown.append(tid)
                    continue
                item = {**item, "linkedResources": known.get("linkedResources", [])}
                if known.get("_detached"):
                    item["_detached"] = True
            if find_link(item) is None:
                marker = copied_marker(item)
                if marker is not None or known is None or find_link(known) is None:
                    # Foreign. A copied marker without a kit UID is foreign even on a
                    # task the mirror knew: only a removed link is added back (items.py).
                    if marker is not None:
                        _report_foreign(item, marker)
                    now.pop(tid, None)
                    continue
                kept = {k: v for k, v in find_link(known).items() if k != "id"}  # type: ignore[union-attr]
                log.warning(
                    "task %s lost kit-sync's link (removed by a client?); still contact %s's, "
                    "the link is added again at the next update",
                    tid,
                    kept["externalId"],
                )
                # No id: the next link write adds it back (POST) instead of patching it.
                item = {**item, "linkedResources": [kept], "_detached": True}
            now[tid] = compact(item)
            changed.add(tid)
        for raw in self._fetch_many(unknown):
            if find_link(raw) is not None:
                now[str(raw["id"])] = compact(raw)
                changed.add(str(raw["id"]))
            elif (marker := copied_marker(raw)) is not None:
                _report_foreign(raw, marker)
        removed = set(before) - set(now)
        self._tasks = now
        self._delta = delta
        self._synced = True
        if full:
            self._listed_at = self._clock()
        self._persist(changed, removed, full=full)
        if changed or removed:
            log.debug("delta: %d changed, %d removed kit-sync task(s)", len(changed), len(removed))

    def _fetch_many(self, ids: list[str]) -> list[dict[str, Any]]:
        """Tasks by id with their linkedResources, 20 to a batch; gone ones are skipped."""
        found: list[dict[str, Any]] = []
        for chunk in _chunks(sorted(set(ids)), BATCH_LIMIT):
            requests = [
                {
                    "id": str(i),
                    "method": "GET",
                    "url": f"{self._task_url(tid)}?$expand=linkedResources",
                }
                for i, tid in enumerate(chunk)
            ]
            for answer in self._batch(requests, safe=True).values():
                status = int(answer.get("status") or 0)
                if _ok(status) and isinstance(answer.get("body"), dict):
                    found.append(answer["body"])
                elif status != 404:
                    raise _error(status, answer.get("body"), "a task", answer.get("headers"))
        return found

    def _listing(self) -> Listing:
        listing = Listing()
        taken: set[str] = set()
        ordered = sorted(
            self._tasks.values(), key=lambda r: (str(r.get("createdDateTime") or ""), str(r["id"]))
        )
        for raw in ordered:
            found = self._kit_task(raw, taken)
            if isinstance(found, KitTask):
                taken.add(found.uid)
                listing.tasks.append(found)
            else:
                listing.problems.append(found)
        return listing

    def _kit_task(
        self, raw: dict[str, Any], taken: set[str] | None = None
    ) -> KitTask | ItemProblem:
        link = find_link(raw)
        tid = str(raw["id"])
        assert link is not None
        uid, meta, _alarm, cancelled = decode_link(link)
        if uid is None or (taken is not None and uid in taken):
            # No uid (a mangled link), or a copy of another task's link (To Do's own
            # recurrence copies the task): a stable uid of its own from the Graph id.
            uid = make_uid(meta.contact_id, f"graph:{tid}")
        try:
            if raw.get("status") == "completed":
                status = Status.CANCELLED if cancelled else Status.COMPLETED
            else:
                status = Status.OPEN
            completed = (
                completed_of(raw.get("completedDateTime")) if status is Status.COMPLETED else None
            )
            return KitTask(
                uid=uid,
                href=tid,
                etag=str(raw.get("@odata.etag") or ""),
                status=status,
                due=due_of(raw.get("dueDateTime"), self.tz),
                meta=meta,
                summary=str(raw.get("title") or ""),
                completed=completed,
                recurring=bool(raw.get("recurrence")),
            )
        except (ValueError, TypeError, KeyError) as exc:
            return ItemProblem(tid, f"cannot read the task ({exc})", meta.contact_id)

    def _task_or_reject(self, raw: dict[str, Any]) -> KitTask:
        found = self._kit_task(raw)
        if not isinstance(found, KitTask):
            raise ItemRejected(f"task {raw.get('id')}: {found.message}")
        return found

    # --- writing ---------------------------------------------------------------------

    def _local(self, day: date, at: str | None = None) -> dict[str, str]:
        hh, mm = (int(x) for x in (at or "00:00").split(":"))
        return to_dtz(datetime.combine(day, dtime(hh, mm)), self.tz)

    def _content(self, content: TaskContent, *, update: bool = False) -> dict[str, Any]:
        # Creates send the note as text (as the To Do apps do); the todoTask update
        # page says only HTML bodies are supported on PATCH, so updates send it as
        # escaped HTML. Either reads back as the same text (items.note_text).
        note = (
            html_note(content.description)
            if update
            else {"content": content.description, "contentType": "text"}
        )
        return {
            "title": content.summary,
            "body": note,
            "categories": list(content.categories),
            "importance": importance_of(content.priority),
        }

    def _new_body(self, new: NewTask) -> dict[str, Any]:
        body = self._content(new.content)
        body["status"] = "notStarted"
        body["dueDateTime"] = self._local(new.due)
        if new.content.alarm:
            body["isReminderOn"] = True
            body["reminderDateTime"] = self._local(new.due, new.content.alarm)
        body["linkedResources"] = [encode_link(new.uid, new.meta, new.content.alarm)]
        return body

    def _uids(self) -> set[str]:
        out = set()
        for raw in self._tasks.values():
            link = find_link(raw)
            if link is not None:
                uid = decode_link(link)[0]
                if uid:
                    out.add(uid)
        return out

    def _store(self, raw: dict[str, Any], sent_link: dict[str, Any] | None = None) -> KitTask:
        """Remember a task the server returned after a write (the mirror follows our
        own writes at once; the next delta round brings the same version again)."""
        tid = str(raw["id"])
        if "linkedResources" not in raw or find_link(raw) is None:
            known = self._tasks.get(tid)
            links = known.get("linkedResources", []) if known else []
            if not links and sent_link is not None:
                links = [sent_link]
            raw = {**raw, "linkedResources": links}
        self._tasks[tid] = compact(raw)
        self._persist({tid}, set())
        return self._task_or_reject(self._tasks[tid])

    def create_task(self, new: NewTask) -> KitTask:
        self._ensure_synced()
        if new.uid in self._uids():
            raise AlreadyExists(f"a task with uid {new.uid} is already in the list")
        # POST is not idempotent: a 504 or a timeout is not retried here (the task
        # may exist); the next cycle's listing shows whether it does.
        raw = self._call(
            "POST",
            self._tasks_url(),
            f"the new task for {new.meta.contact_id}",
            body=self._new_body(new),
            safe=False,
        )
        return self._store(raw, self._new_body(new)["linkedResources"][0])

    def create_tasks(self, news: Sequence[NewTask]) -> list[KitTask | BackendError]:
        """Create many tasks, 20 to a `$batch` request. One result per task, in order:
        the stored task, or the error for that one task. Raises BackendUnavailable
        when nothing could be sent at all."""
        self._ensure_synced()
        results: list[KitTask | BackendError | None] = [None] * len(news)
        uids = self._uids()
        todo: list[int] = []
        for i, new in enumerate(news):
            if new.uid in uids:
                results[i] = AlreadyExists(f"a task with uid {new.uid} is already in the list")
            else:
                uids.add(new.uid)
                todo.append(i)
        url = self._tasks_url()
        changed: set[str] = set()
        sent_any = False
        for chunk in _chunks(todo, BATCH_LIMIT):
            bodies = {i: self._new_body(news[i]) for i in chunk}
            requests = [
                {
                    "id": str(i),
                    "method": "POST",
                    "url": url,
                    "headers": {"Content-Type": "application/json"},
                    "body": bodies[i],
                }
                for i in chunk
            ]
            try:
                answers = self._batch(requests, safe=False)
            except BackendUnavailable as exc:
                if not sent_any:
                    raise
                for i in chunk:
                    results[i] = exc
                continue
            sent_any = True
            for i in chunk:
                answer = answers[str(i)]
                status = int(answer.get("status") or 0)
                body = answer.get("body")
                what = f"the new task for {news[i].meta.contact_id}"
                if _ok(status) and isinstance(body, dict) and body.get("id"):
                    tid = str(body["id"])
                    raw = (
                        body
                        if find_link(body)
                        else {**body, "linkedResources": bodies[i]["linkedResources"]}
                    )
                    self._tasks[tid] = compact(raw)
                    changed.add(tid)
                    results[i] = self._task_or_reject(self._tasks[tid])
                else:
                    results[i] = _error(status, body, what, answer.get("headers"))
        self._persist(changed, set())
        return [r if r is not None else BackendError("not sent") for r in results]

    def _current(self, task: KitTask) -> dict[str, Any]:
        """The task as last seen, with our link and (when the server has it) its id."""
        raw = self._tasks.get(task.href)
        link = find_link(raw) if raw is not None else None
        if raw is not None and link is not None and (link.get("id") or raw.get("_detached")):
            return raw
        # Unknown here, or created by a POST whose answer left out the link's id:
        # read it, so a link update patches that link instead of adding another.
        fresh = self._call(
            "GET", f"{self._task_url(task.href)}?$expand=linkedResources", f"task {task.href}"
        )
        if find_link(fresh) is None:
            marker = copied_marker(fresh)
            if marker is not None:
                # Its link lost the kit UID: foreign now (only a removed link is added back).
                _report_foreign(fresh, marker)
                self._tasks.pop(task.href, None)
                self._persist(set(), {task.href})
            if link is None or marker is not None:
                raise NotFound(f"task {task.href} is no longer kit-sync's")
            fresh = {**fresh, "linkedResources": [link], "_detached": True}
        self._tasks[task.href] = compact(fresh)
        return self._tasks[task.href]

    def _task_patch(
        self, raw: dict[str, Any], task: KitTask, change: TaskChange, alarm: str | None
    ) -> dict[str, Any]:
        patch: dict[str, Any] = {}
        if change.content is not None:
            patch.update(self._content(change.content, update=True))
        if change.due is not None:
            patch["dueDateTime"] = self._local(change.due)
        due = change.due or task.due
        new_alarm = change.content.alarm if change.content is not None else alarm
        if (change.content is not None or change.due is not None) and due is not None:
            if new_alarm:
                patch["isReminderOn"] = True
                patch["reminderDateTime"] = self._local(due, new_alarm)
            elif alarm and raw.get("isReminderOn"):
                patch["isReminderOn"] = False  # our reminder went away; a client's stays
        now_local = self._clock().astimezone(self.tz)
        if change.status is Status.COMPLETED:
            at = (change.completed_at or self._clock()).astimezone(self.tz)
            patch["status"] = "completed"
            patch["completedDateTime"] = to_dtz(at.replace(microsecond=0), self.tz)
            if raw.get("recurrence"):
                patch["recurrence"] = None  # kept as a plain completed task: kit-sync regenerates
        elif change.status is Status.CANCELLED:
            patch["status"] = "completed"
            patch["completedDateTime"] = to_dtz(now_local.replace(microsecond=0), self.tz)
        elif change.status is Status.OPEN:
            patch["status"] = "notStarted"
            patch["completedDateTime"] = None
        return patch

    def update_task(self, task: KitTask, change: TaskChange) -> KitTask:
        raw = self._current(task)
        link = find_link(raw)
        assert link is not None
        uid, meta, alarm, cancelled = decode_link(link)
        patch = self._task_patch(raw, task, change, alarm)
        want_meta = change.meta if change.meta is not None else meta
        want_alarm = change.content.alarm if change.content is not None else alarm
        want_cancelled = cancelled
        if change.status is Status.CANCELLED:
            want_cancelled = True
        elif change.status in (Status.OPEN, Status.COMPLETED):
            want_cancelled = False
        new_link = encode_link(uid or task.uid, want_meta, want_alarm, want_cancelled)
        link_patch = {k: v for k, v in new_link.items() if link.get(k) != v}
        url = self._task_url(task.href)
        what = f"task {task.href} ({task.contact_id})"
        if not link_patch and not patch:
            return self._task_or_reject(raw)
        # Request "0" reads the task just before the write, in the same $batch: if
        # it changed since it was planned and the service did not refuse the PATCH
        # (To Do does not document If-Match), the write is undone from that copy.
        requests: list[dict[str, Any]] = [self._pre_read(url)]
        if not link_patch:
            requests.append(self._patch_request(url, patch, task.etag))
            answers = self._batch(requests, safe=True)
            self._check_unchanged(answers, raw, task, url, patch, None, None)
            first = answers["1"]
            if not _ok(int(first.get("status") or 0)):
                raise _error(
                    int(first.get("status") or 0), first.get("body"), what, first.get("headers")
                )
            data = first.get("body")
            return self._store(data if isinstance(data, dict) else {"id": task.href})
        # The link is a sub-resource: a second request. All go in one $batch, in
        # order (dependsOn), so the task is patched only if unchanged (If-Match)
        # and read back with its new etag. Should the link write fail after the task
        # write, a pending record lets the next listing finish it (roll forward).
        if patch and ("dueDateTime" in patch or "status" in patch):
            self._set_pending(
                task.href,
                {
                    "etag": task.etag,
                    "link": link_patch,
                    "due": change.due.isoformat() if change.due else None,
                    "status": patch.get("status"),
                },
            )
        requests += [
            self._patch_request(url, patch, task.etag),
            self._link_request(url, link, link_patch, new_link, depends="1"),
            {
                "id": "3",
                "method": "GET",
                "url": f"{url}?$expand=linkedResources",
                "dependsOn": ["2"],
            },
        ]
        answers = self._batch(requests, safe=True)
        self._check_unchanged(answers, raw, task, url, patch, link, link_patch)
        first = answers["1"]
        if not _ok(int(first.get("status") or 0)):
            self._set_pending(task.href, None)
            raise _error(
                int(first.get("status") or 0), first.get("body"), what, first.get("headers")
            )
        second = answers["2"]
        if not _ok(int(second.get("status") or 0)):
            err = _error(
                int(second.get("status") or 0),
                second.get("body"),
                f"kit-sync's link on {what}",
                second.get("headers"),
            )
            # The task itself changed: the next delta round brings it (our copy keeps
            # it kit-sync's meanwhile, and the pending record finishes the link).
            raise type(err)(
                f"{err}; the task was updated, kit-sync's bookkeeping on it is finished at "
                "the next sync"
            )
        third = answers["3"]
        self._set_pending(task.href, None)
        if _ok(int(third.get("status") or 0)) and isinstance(third.get("body"), dict):
            return self._store(third["body"])
        fresh = self._call("GET", f"{url}?$expand=linkedResources", what)
        return self._store(fresh)

    def _pre_read(self, url: str) -> dict[str, Any]:
        return {"id": "0", "method": "GET", "url": url, "headers": self._headers()}

    def _patch_request(self, url: str, patch: dict[str, Any], etag: str) -> dict[str, Any]:
        return {
            "id": "1",
            "method": "PATCH",
            "url": url,
            "headers": {"Content-Type": "application/json", "If-Match": etag},
            "body": patch,
            "dependsOn": ["0"],
        }

    @staticmethod
    def _moved(current: Any, raw: dict[str, Any], task: KitTask) -> bool:
        """Did the task change since `task` was planned? By its etag, and by
        lastModifiedDateTime where both copies have one."""
        if not isinstance(current, dict):
            return False
        etag = current.get("@odata.etag")
        if etag and task.etag and etag != task.etag:
            return True
        planned, now = raw.get("lastModifiedDateTime"), current.get("lastModifiedDateTime")
        return bool(planned and now and parse_dtz_utc(planned) != parse_dtz_utc(now))

    def _check_unchanged(
        self,
        answers: dict[str, dict[str, Any]],
        raw: dict[str, Any],
        task: KitTask,
        url: str,
        patch: dict[str, Any],
        link: dict[str, Any] | None,
        link_patch: dict[str, Any] | None,
    ) -> None:
        """Conflict when the pre-read ("0") shows the task changed since it was
        planned. The usual answer to that is a 412 on the PATCH; if the PATCH went
        through anyway, the service ignored If-Match: put back what it overwrote."""
        pre = answers.get("0") or {}
        what = f"task {task.href} ({task.contact_id})"
        pre_status = int(pre.get("status") or 0)
        if not _ok(pre_status):
            if int(answers.get("1", {}).get("status") or 0) == 424:
                # The write was not sent because the read failed: that read's answer
                # (404: deleted meanwhile) is the outcome.
                self._set_pending(task.href, None)
                raise _error(pre_status, pre.get("body"), what, pre.get("headers"))
            return
        if not self._moved(pre.get("body"), raw, task):
            return
        if not _ok(int(answers.get("1", {}).get("status") or 0)):
            return  # refused (412): the caller raises the Conflict
        before = pre["body"]
        undo = {k: before.get(k) for k in patch}
        if isinstance(undo.get("body"), dict):
            undo["body"] = html_note(note_text(undo["body"]))  # updates take HTML only
        restore: list[dict[str, Any]] = [
            {
                "id": "1",
                "method": "PATCH",
                "url": url,
                "headers": {"Content-Type": "application/json"},
                "body": undo,
            }
        ]
        link_written = _ok(int(answers.get("2", {}).get("status") or 0))
        if link is not None and link_patch and link.get("id") and link_written:
            lid = quote(str(link["id"]), safe="=")
            restore.append(
                {
                    "id": "2",
                    "method": "PATCH",
                    "url": f"{url}/linkedResources/{lid}",
                    "headers": {"Content-Type": "application/json"},
                    "body": {k: link.get(k) for k in link_patch},
                }
            )
        self._set_pending(task.href, None)
        log.warning(
            "%s changed on another device while kit-sync wrote to it, and Microsoft Graph "
            "did not refuse the write (If-Match); kit-sync put the other device's version "
            "back and plans again",
            what,
        )
        try:
            self._batch(restore, safe=True)
        finally:
            self._tasks.pop(task.href, None)  # the next delta round brings it whole
            self._persist(set(), {task.href})
        raise Conflict(f"{what} changed on the server since it was read")

    def _link_request(
        self,
        url: str,
        link: dict[str, Any],
        link_patch: dict[str, Any],
        full: dict[str, Any],
        depends: str | None,
    ) -> dict[str, Any]:
        """Request "2": patch our linkedResource (or add it back when a client removed it)."""
        request: dict[str, Any] = {
            "id": "2",
            "headers": {"Content-Type": "application/json"},
        }
        if link.get("id"):
            lid = quote(str(link["id"]), safe="=")
            request.update(method="PATCH", url=f"{url}/linkedResources/{lid}", body=link_patch)
        else:
            fields = {k: v for k, v in full.items() if k != "id"}
            request.update(method="POST", url=f"{url}/linkedResources", body=fields)
        if depends is not None:
            request["dependsOn"] = [depends]
        return request

    def _roll_forward(self) -> None:
        """Finish link writes a failed request or a killed process left half done."""
        for tid, record in list(self._pending.items()):
            raw = self._tasks.get(tid)
            if raw is None:
                self._set_pending(tid, None)
                continue
            link = find_link(raw)
            task = self._kit_task(raw)
            done = link is not None and all(link.get(k) == v for k, v in record["link"].items())
            applied = (
                isinstance(task, KitTask)
                and str(raw.get("@odata.etag")) != record["etag"]
                and (
                    record["due"] is None
                    or (task.due is not None and task.due.isoformat() == record["due"])
                )
                and (record["status"] is None or raw.get("status") == record["status"])
            )
            if done or not applied or link is None:
                self._set_pending(tid, None)
                continue
            url = self._task_url(tid)
            requests = [
                self._link_request(url, link, record["link"], {**link, **record["link"]}, None),
                {
                    "id": "3",
                    "method": "GET",
                    "url": f"{url}?$expand=linkedResources",
                    "dependsOn": ["2"],
                },
            ]
            try:
                answers = self._batch(requests, safe=True)
            except BackendError as exc:
                log.warning("cannot finish kit-sync's link on task %s yet: %s", tid, exc)
                continue
            if _ok(int(answers["3"].get("status") or 0)) and isinstance(
                answers["3"].get("body"), dict
            ):
                self._store(answers["3"]["body"])
                log.info("finished kit-sync's bookkeeping on task %s", tid)
            if _ok(int(answers["2"].get("status") or 0)):
                self._set_pending(tid, None)

    def delete_task(self, task: KitTask) -> None:
        url = self._task_url(task.href)
        # Read first: a delete the service carries out despite a stale If-Match
        # cannot be undone, so a task that changed since it was planned is left alone.
        current = self._call("GET", url, f"task {task.href} ({task.contact_id})")
        if self._moved(current, self._tasks.get(task.href) or {}, task):
            raise Conflict(f"task {task.href} ({task.contact_id}) changed since it was read")
        resp = self._send("DELETE", url, headers={"If-Match": task.etag})
        if not _ok(resp.status_code):
            raise _error(
                resp.status_code, _json(resp), f"task {task.href} ({task.contact_id})", resp.headers
            )
        self._tasks.pop(task.href, None)
        self._pending.pop(task.href, None)
        self._persist(set(), {task.href})

    def close(self) -> None:
        self._http.close()


__all__ = [
    "GraphBackend",
    "_error",
    "compact",
    "completed_of",
    "copied_marker",
    "decode_link",
    "due_of",
    "encode_link",
    "find_link",
    "importance_of",
    "parse_dtz",
    "retry_after",
    "to_dtz",
    "zone_name_for_graph",
    "zone_named",
]
