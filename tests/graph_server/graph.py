"""A fake Microsoft Graph v1.0 for the To Do subset kit-sync uses.

Implemented as the v1.0 reference documents it (payload shapes from the
todoTaskList, todoTask, linkedResource, delta and JSON-batching pages):

- GET/POST  /{me|users/{id}}/todo/lists
- GET/POST  .../lists/{id}/tasks            ($expand=linkedResources, paging)
- GET       .../lists/{id}/tasks/delta      (nextLink/deltaLink, @removed, $expand)
- GET/PATCH/DELETE .../tasks/{id}           (@odata.etag, If-Match -> 412)
- GET/POST  .../tasks/{id}/linkedResources, PATCH/DELETE .../linkedResources/{id}
- POST      /$batch                         (20 requests max, dependsOn, 424)
- Prefer: outlook.timezone (answers name the zone the Windows way), else UTC
- 401 without a valid token from the fake authority; 429 + Retry-After on demand;
  410 Gone (syncStateNotFound) for a delta link issued before `expire_delta_tokens`.

Known service behaviour it reproduces on purpose: To Do keeps a due *date*
(dueDateTime comes back as local midnight of the zone it was written in), and,
in the default `completion="date"` mode, the completion *date* as UTC midnight
(microsoftgraph/microsoft-graph-docs-contrib#8664). `completion="exact"` keeps
the instant instead (what a precise API client would see).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import tz_win, win_tz

from .authority import FakeEntra, Principal, User
from .http import Request, Response

TASK_TYPE = "#microsoft.graph.todoTask"
TASK_PROPS = (
    "title",
    "body",
    "importance",
    "status",
    "categories",
    "isReminderOn",
    "reminderDateTime",
    "dueDateTime",
    "startDateTime",
    "completedDateTime",
    "recurrence",
)
LINK_PROPS = ("webUrl", "applicationName", "displayName", "externalId")


def _zone(name: str) -> ZoneInfo:
    if name.upper() == "UTC":
        return ZoneInfo("UTC")
    if name in win_tz:
        return ZoneInfo(win_tz[name])
    return ZoneInfo(name)


def _graph_id(prefix: str = "AAMkAD") -> str:
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(30)).decode().rstrip("=") + "AAA="


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}0Z"


def _err(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status,
        {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": secrets.token_hex(16),
                },
            }
        },
        headers or {},
    )


class BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Task:
    id: str
    props: dict[str, Any]
    links: list[dict[str, Any]]
    created: datetime
    modified: datetime
    version: int = 1
    seq: int = 0
    created_seq: int = 0
    #: property name -> list seq of its last change ("linkedResources" for the links)
    changed: dict[str, int] = field(default_factory=dict)

    @property
    def etag(self) -> str:
        tag = base64.b64encode(f"{self.id[-12:]}:{self.version}".encode()).decode()
        return f'W/"{tag}"'


@dataclass
class TaskList:
    id: str
    name: str
    wellknown: str = "none"
    tasks: dict[str, Task] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)  # task id -> seq of deletion
    seq: int = 0

    @property
    def etag(self) -> str:
        return 'W/"' + base64.b64encode(self.id[-8:].encode()).decode() + '"'


@dataclass
class Hook:
    match: Callable[[str, str], bool]  # (method, path without version) -> bool
    action: Callable[[], None]
    when: str  # "before" | "after"
    times: int = 1


class FakeGraph:
    def __init__(self, authority: FakeEntra, *, completion: str = "date") -> None:
        self.authority = authority
        self.url = ""  # base with /v1.0, set when the server starts
        self.completion = completion
        self.mailboxes: dict[str, dict[str, TaskList]] = {}  # user oid -> lists by id
        self.lock = threading.RLock()
        self.page_size = 50  # when the client sets no odata.maxpagesize
        self.epoch = 1  # delta tokens from an older epoch are Gone
        self.delta_expands = True  # honour $expand=linkedResources in delta
        # Behaviours Microsoft does not promise against, each a mode the tests turn on
        # (issue 16); the defaults are the friendly reading of the docs.
        #: delta returns an updated task with only its changed properties ("at least
        #: the properties that have been updated", the delta query overview)
        self.delta_partial = False
        #: PATCH/DELETE honour If-Match (To Do's pages do not document it)
        self.honour_if_match = True
        #: a change to a linked resource alone surfaces in delta (navigation
        #: properties are not supported in delta, says the overview)
        self.link_changes_in_delta = True
        #: PATCH refuses a text body ("only HTML type is supported" on update)
        self.update_body_html_only = False
        self.log: list[dict[str, Any]] = []
        self.hooks: list[Hook] = []
        self._throttle: list[tuple[int, float, int, Callable[[str, str], bool]]] = []
        self._throttle_items: list[tuple[int, float, int, Callable[[str, str], bool]]] = []
        # Sent Items and calendar events by user oid (the touch sources read them).
        self.sent_items: dict[str, list[dict[str, Any]]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.mail_seq = 0

    # --- knobs for tests --------------------------------------------------------------

    def throttle(
        self,
        count: int = 1,
        retry_after: float = 1,
        status: int = 429,
        match: Callable[[str, str], bool] | None = None,
    ) -> None:
        """Answer the next `count` (matching) top-level requests with `status` + Retry-After."""
        self._throttle.append((count, retry_after, status, match or (lambda m, p: True)))

    def throttle_batch_items(
        self,
        count: int,
        retry_after: float = 1,
        status: int = 429,
        match: Callable[[str, str], bool] | None = None,
    ) -> None:
        """Answer the next `count` (matching) requests inside $batch bodies with `status`."""
        self._throttle_items.append((count, retry_after, status, match or (lambda m, p: True)))

    def before(
        self, match: Callable[[str, str], bool], action: Callable[[], None], times: int = 1
    ) -> None:
        self.hooks.append(Hook(match, action, "before", times))

    def after(
        self, match: Callable[[str, str], bool], action: Callable[[], None], times: int = 1
    ) -> None:
        self.hooks.append(Hook(match, action, "after", times))

    def expire_delta_tokens(self) -> None:
        """Every delta/skip token issued so far is Gone (as after a long absence)."""
        with self.lock:
            self.epoch += 1

    def requests(
        self, method: str | None = None, contains: str = "", batch: bool | None = None
    ) -> list[dict[str, Any]]:
        return [
            r
            for r in self.log
            if (method is None or r["method"] == method)
            and contains in r["path"]
            and (batch is None or r["in_batch"] is batch)
        ]

    def clear_log(self) -> None:
        self.log.clear()

    # --- the mailbox, as the To Do apps change it ------------------------------------------

    def mailbox(self, user: User) -> dict[str, TaskList]:
        with self.lock:
            box = self.mailboxes.get(user.oid)
            if box is None:
                default = TaskList(_graph_id("AQMkAD"), "Tasks", "defaultList")
                box = {default.id: default}
                self.mailboxes[user.oid] = box
            return box

    def lists_of(self, upn: str) -> dict[str, TaskList]:
        return self.mailbox(self.authority.add_user(upn))

    def list_named(self, upn: str, name: str | None = None) -> TaskList:
        for lst in self.lists_of(upn).values():
            if (name is None and lst.wellknown == "defaultList") or lst.name == name:
                return lst
        raise KeyError(name)

    def tasks(self, upn: str, name: str | None = None) -> list[Task]:
        return list(self.list_named(upn, name).tasks.values())

    def render(self, upn: str, task_id: str, name: str | None = None) -> bytes:
        lst = self.list_named(upn, name)
        return json.dumps(self._task_json(lst.tasks[task_id], None, expand=True)).encode()

    def _touch(self, lst: TaskList, task: Task, keys: Any = ()) -> None:
        lst.seq += 1
        task.seq = lst.seq
        task.version += 1
        task.modified = datetime.now(UTC)
        keys = set(keys)
        if "status" in keys:
            keys.add("completedDateTime")  # set or cleared along with the status
        for key in keys:
            task.changed[key] = lst.seq
        task.changed["lastModifiedDateTime"] = lst.seq

    def _touch_links(self, lst: TaskList, task: Task) -> None:
        """A linked resource was written: the task moves in delta, unless the mode
        says navigation properties stay out of it (then nothing on the task moves)."""
        if self.link_changes_in_delta:
            self._touch(lst, task, ("linkedResources",))

    def add_task(self, upn: str, props: dict[str, Any], name: str | None = None) -> Task:
        """A task created by the To Do app (no kit-sync link unless given)."""
        with self.lock:
            lst = self.list_named(upn, name)
            return self._create(lst, props)

    def app_edit(
        self, upn: str, task_id: str, props: dict[str, Any], name: str | None = None
    ) -> None:
        """An edit made in Outlook or the To Do app (dateTimeTimeZone values as the apps
        send them)."""
        with self.lock:
            lst = self.list_named(upn, name)
            task = lst.tasks[task_id]
            self._apply(task, props)
            self._touch(lst, task, props)

    def app_remove_link(self, upn: str, task_id: str, name: str | None = None) -> None:
        """A client removes kit-sync's linked resource from the task."""
        with self.lock:
            lst = self.list_named(upn, name)
            task = lst.tasks[task_id]
            task.links = [x for x in task.links if x.get("applicationName") != "kit-sync"]
            self._touch_links(lst, task)

    def app_complete(
        self, upn: str, task_id: str, local: datetime, name: str | None = None
    ) -> None:
        """The person ticks the task off in the To Do app at `local` (aware, their zone)."""
        zone = local.tzinfo.key if isinstance(local.tzinfo, ZoneInfo) else "UTC"
        self.app_edit(
            upn,
            task_id,
            {
                "status": "completed",
                "completedDateTime": {
                    "dateTime": local.replace(tzinfo=None).isoformat(),
                    "timeZone": tz_win.get(zone, zone),
                },
            },
            name,
        )

    def app_delete(self, upn: str, task_id: str, name: str | None = None) -> None:
        with self.lock:
            lst = self.list_named(upn, name)
            self._delete(lst, lst.tasks[task_id])

    # --- storage rules -------------------------------------------------------------------------

    def _create(self, lst: TaskList, body: dict[str, Any]) -> Task:
        now = datetime.now(UTC)
        task = Task(
            _graph_id(),
            {
                "title": "",
                "status": "notStarted",
                "importance": "normal",
                "isReminderOn": False,
                "categories": [],
                "body": {"content": "", "contentType": "text"},
            },
            [],
            now,
            now,
            0,
        )
        self._apply(task, {k: v for k, v in body.items() if k != "linkedResources"})
        for link in body.get("linkedResources") or []:
            task.links.append(self._new_link(link))
        lst.tasks[task.id] = task
        self._touch(lst, task, [*task.props, "linkedResources"])
        task.created_seq = task.seq
        return task

    def _new_link(self, body: dict[str, Any]) -> dict[str, Any]:
        if (
            not isinstance(body, dict)
            or not body.get("applicationName")
            or not body.get("displayName")
        ):
            raise BadRequest("applicationName and displayName are required for a linkedResource")
        link = {"id": str(_uuid()), **{k: body.get(k) for k in LINK_PROPS}}
        return link

    def _delete(self, lst: TaskList, task: Task) -> None:
        lst.tasks.pop(task.id, None)
        lst.seq += 1
        lst.removed[task.id] = lst.seq

    def _apply(self, task: Task, body: dict[str, Any]) -> None:
        for key, value in body.items():
            if key.startswith("@odata") or key in (
                "id",
                "createdDateTime",
                "lastModifiedDateTime",
                "bodyLastModifiedDateTime",
                "hasAttachments",
            ):
                continue
            if key not in TASK_PROPS:
                raise BadRequest(f"Invalid property '{key}' for todoTask")
            if key == "status" and value not in (
                "notStarted",
                "inProgress",
                "completed",
                "waitingOnOthers",
                "deferred",
            ):
                raise BadRequest(f"Invalid value '{value}' for status")
            if key == "importance" and value not in ("low", "normal", "high"):
                raise BadRequest(f"Invalid value '{value}' for importance")
            if key.endswith("DateTime") and value is not None:
                value = self._store_dtz(key, value)
            task.props[key] = copy.deepcopy(value)
        if task.props.get("status") == "completed" and not task.props.get("completedDateTime"):
            task.props["completedDateTime"] = self._store_dtz(
                "completedDateTime",
                {"dateTime": datetime.now(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"},
            )
        if task.props.get("status") != "completed":
            task.props.pop("completedDateTime", None)

    def _store_dtz(self, key: str, value: Any) -> datetime:
        if not isinstance(value, dict) or "dateTime" not in value:
            raise BadRequest(f"{key} must be a dateTimeTimeZone")
        try:
            zone = _zone(str(value.get("timeZone") or "UTC"))
            local = datetime.fromisoformat(str(value["dateTime"])[:26]).replace(tzinfo=zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise BadRequest(f"Invalid {key}: {exc}") from None
        if key in ("dueDateTime", "startDateTime"):
            # To Do keeps a date: local midnight of the day, in the zone it was written in.
            return datetime.combine(local.date(), dtime(0), tzinfo=zone)
        if key == "completedDateTime" and self.completion == "date":
            return datetime.combine(local.date(), dtime(0), tzinfo=UTC)
        return local

    def _dtz(self, value: datetime, zone: str | None) -> dict[str, str]:
        if zone:
            tz = _zone(zone)
            name = tz_win.get(tz.key, zone)
        else:
            tz, name = ZoneInfo("UTC"), "UTC"
        local = value.astimezone(tz).replace(tzinfo=None)
        return {
            "dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond:06d}0",
            "timeZone": name,
        }

    def _task_json(self, task: Task, zone: str | None, *, expand: bool) -> dict[str, Any]:
        p = task.props
        out: dict[str, Any] = {
            "@odata.etag": task.etag,
            "importance": p.get("importance", "normal"),
            "isReminderOn": bool(p.get("isReminderOn")),
            "status": p.get("status", "notStarted"),
            "title": p.get("title", ""),
            "createdDateTime": _stamp(task.created),
            "lastModifiedDateTime": _stamp(task.modified),
            "hasAttachments": False,
            "categories": list(p.get("categories") or []),
            "id": task.id,
            "body": copy.deepcopy(p.get("body") or {"content": "", "contentType": "text"}),
        }
        for key in ("dueDateTime", "startDateTime", "completedDateTime", "reminderDateTime"):
            if p.get(key) is not None:
                out[key] = self._dtz(p[key], zone)
        if p.get("recurrence"):
            out["recurrence"] = copy.deepcopy(p["recurrence"])
        if expand:
            out["linkedResources"] = copy.deepcopy(task.links)
        return out

    # --- HTTP ----------------------------------------------------------------------------------

    def __call__(self, request: Request) -> Response:
        path = request.path
        if not path.startswith("/v1.0/"):
            return _err(404, "BadRequest", f"Resource not found for the segment '{path}'.")
        rel = path[len("/v1.0") :]
        entry = {
            "method": request.method,
            "path": rel,
            "query": dict(request.query),
            "in_batch": False,
            "status": 0,
            "at": time.monotonic(),
        }
        self.log.append(entry)
        principal = self._auth(request.header("authorization"))
        if principal is None:
            entry["status"] = 401
            return _err(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
        throttled = self._throttled(request.method, rel)
        if throttled is not None:
            entry["status"] = throttled.status
            return throttled
        if rel == "/$batch" and request.method == "POST":
            response = self._batch(request, principal)
        else:
            response = self._dispatch(
                request.method,
                rel,
                request.query,
                request.headers,
                request.json() if request.body else None,
                principal,
            )
        entry["status"] = response.status
        return response

    def _auth(self, header: str | None) -> Principal | None:
        if not header or not header.lower().startswith("bearer "):
            return None
        return self.authority.check(header[7:].strip())

    def _throttled(self, method: str, rel: str) -> Response | None:
        with self.lock:
            for i, (count, wait, status, match) in enumerate(self._throttle):
                if count > 0 and match(method, rel):
                    self._throttle[i] = (count - 1, wait, status, match)
                    code = "TooManyRequests" if status == 429 else "ServiceUnavailable"
                    return _err(status, code, "Please retry after", {"Retry-After": f"{wait:g}"})
        return None

    def _run_hooks(self, when: str, method: str, rel: str) -> None:
        for hook in list(self.hooks):
            if hook.when == when and hook.times > 0 and hook.match(method, rel):
                hook.times -= 1
                hook.action()

    def _batch(self, request: Request, principal: Principal) -> Response:
        body = request.json() or {}
        items = body.get("requests")
        if not isinstance(items, list) or not items:
            return _err(400, "BadRequest", "Invalid batch payload format.")
        if len(items) > 20:
            return _err(400, "BadRequest", "Batch request limit exceeded 20.")
        ids = [str(r.get("id")) for r in items]
        if len(set(ids)) != len(ids):
            return _err(400, "BadRequest", "Batch requests must have unique ids.")
        results: dict[str, dict[str, Any]] = {}
        for item in items:
            rid = str(item.get("id"))
            deps = item.get("dependsOn") or []
            if any(d not in results for d in deps):
                results[rid] = {
                    "id": rid,
                    "status": 400,
                    "body": {
                        "error": {
                            "code": "BadRequest",
                            "message": "dependsOn must name an earlier request",
                        }
                    },
                }
                continue
            if any(not 200 <= results[d]["status"] < 300 for d in deps):
                results[rid] = {
                    "id": rid,
                    "status": 424,
                    "body": {"error": {"code": "FailedDependency", "message": "Failed dependency"}},
                }
                continue
            method = str(item.get("method", "GET")).upper()
            path, query = self._split(str(item.get("url", "")))
            headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
            entry = {
                "method": method,
                "path": path,
                "query": query,
                "in_batch": True,
                "status": 0,
                "at": time.monotonic(),
            }
            self.log.append(entry)
            throttled = None
            with self.lock:
                for i, (count, wait, status, match) in enumerate(self._throttle_items):
                    if count > 0 and match(method, path):
                        self._throttle_items[i] = (count - 1, wait, status, match)
                        throttled = {
                            "id": rid,
                            "status": status,
                            "headers": {
                                "Retry-After": f"{wait:g}",
                                "Content-Type": "application/json",
                            },
                            "body": {
                                "error": {
                                    "code": "TooManyRequests",
                                    "message": "Please retry after",
                                }
                            },
                        }
                        break
            if throttled is not None:
                entry["status"] = throttled["status"]
                results[rid] = throttled
                continue
            if "body" in item and method in ("POST", "PATCH") and "content-type" not in headers:
                results[rid] = {
                    "id": rid,
                    "status": 400,
                    "body": {
                        "error": {
                            "code": "BadRequest",
                            "message": "Content-Type header must be specified for a request "
                            "with a body.",
                        }
                    },
                }
                entry["status"] = 400
                continue
            response = self._dispatch(method, path, query, headers, item.get("body"), principal)
            entry["status"] = response.status
            answer: dict[str, Any] = {
                "id": rid,
                "status": response.status,
                "headers": {"Content-Type": "application/json", **response.headers},
            }
            if response.body is not None:
                answer["body"] = response.body
            results[rid] = answer
        return Response(200, {"responses": [results[i] for i in ids]})

    def _split(self, url: str) -> tuple[str, dict[str, str]]:
        parts = urlsplit(url)
        path = parts.path
        if path.startswith("/v1.0/"):
            path = path[len("/v1.0") :]
        if not path.startswith("/"):
            path = "/" + path
        return unquote(path), dict(parse_qsl(parts.query, keep_blank_values=True))

    def _dispatch(
        self,
        method: str,
        rel: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: Any,
        principal: Principal,
    ) -> Response:
        self._run_hooks("before", method, rel)
        try:
            with self.lock:
                response = self._route(method, rel, query, headers, body, principal)
        except BadRequest as exc:
            response = _err(400, "invalidRequest", exc.message)
        self._run_hooks("after", method, rel)
        return response

    def _prefer(self, headers: dict[str, str]) -> tuple[str | None, int | None]:
        zone = None
        size = None
        for part in (headers.get("prefer") or "").split(","):
            key, _, value = part.strip().partition("=")
            if key.strip() == "outlook.timezone":
                zone = value.strip().strip('"')
            elif key.strip() == "odata.maxpagesize":
                with contextlib.suppress(ValueError):
                    size = int(value)
        return zone, size

    def _route(
        self,
        method: str,
        rel: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: Any,
        principal: Principal,
    ) -> Response:
        parts = [p for p in rel.split("/") if p]
        if parts[:1] == ["me"]:
            if principal.user is None:
                return _err(
                    400,
                    "BadRequest",
                    "/me request is only valid with delegated authentication flow.",
                )
            user, rest = principal.user, parts[1:]
        elif parts[:1] == ["users"] and len(parts) >= 2:
            named = self.authority.users.get(parts[1].lower()) or next(
                (u for u in self.authority.users.values() if u.oid == parts[1]), None
            )
            if named is None:
                return _err(404, "ResourceNotFound", f"User not found: {parts[1]}")
            user = named
            if principal.kind == "user" and principal.user is not user:
                return _err(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )
            rest = parts[2:]
        else:
            return _err(400, "BadRequest", f"Unsupported segment '{rel}'")
        if method == "GET" and rest == ["mailFolders", "sentitems", "messages", "delta"]:
            return self._mail_delta(user, query, rel)
        if method == "GET" and rest == ["calendarView"]:
            return self._calendar_view(user, query, headers, rel)
        if rest[:2] != ["todo", "lists"]:
            return _err(
                400, "BadRequest", f"Resource not found for the segment '{'/'.join(rest)}'."
            )
        box = self.mailbox(user)
        zone, size = self._prefer(headers)
        rest = rest[2:]
        base = f"{self.url}{rel.split('/todo/')[0]}/todo/lists"
        if not rest:
            if method == "GET":
                return Response(
                    200,
                    {
                        "@odata.context": f"{self.url}/$metadata#lists",
                        "value": [self._list_json(x) for x in box.values()],
                    },
                )
            if method == "POST":
                name = (body or {}).get("displayName")
                if not name:
                    raise BadRequest("displayName is required")
                lst = TaskList(_graph_id("AQMkAD"), str(name))
                box[lst.id] = lst
                return Response(201, self._list_json(lst))
            return _err(405, "BadRequest", "Method not allowed")
        found_list = box.get(rest[0])
        if found_list is None:
            return _err(404, "ResourceNotFound", "The specified object was not found in the store.")
        lst = found_list
        rest = rest[1:]
        if not rest:
            return (
                Response(200, self._list_json(lst))
                if method == "GET"
                else _err(405, "BadRequest", "no")
            )
        if rest[0] != "tasks":
            return _err(400, "BadRequest", f"Unsupported segment '{rest[0]}'")
        rest = rest[1:]
        expand = "linkedResources" in query.get("$expand", "")
        if not rest:
            if method == "GET":
                return self._page(lst, query, size, zone, expand, f"{base}/{quote(lst.id)}/tasks")
            if method == "POST":
                task = self._create(lst, body or {})
                return Response(
                    201,
                    self._task_json(task, zone, expand=True)
                    | {"@odata.context": f"{self.url}/$metadata#tasks/$entity"},
                )
            return _err(405, "BadRequest", "Method not allowed")
        if rest == ["delta"] and method == "GET":
            return self._delta(lst, query, size, zone, f"{base}/{quote(lst.id)}/tasks/delta")
        found_task = lst.tasks.get(rest[0])
        if found_task is None:
            return _err(404, "ResourceNotFound", "The specified object was not found in the store.")
        task = found_task
        rest = rest[1:]
        if not rest:
            if method == "GET":
                return Response(200, self._task_json(task, zone, expand=expand))
            match = headers.get("if-match")
            if match and self.honour_if_match and match not in ("*", task.etag):
                return _err(
                    412,
                    "PreconditionFailed",
                    "The ETag value in the If-Match header does not match the current "
                    "version of the task.",
                )
            if method == "PATCH":
                note = (body or {}).get("body")
                if (
                    self.update_body_html_only
                    and isinstance(note, dict)
                    and str(note.get("contentType", "text")).lower() != "html"
                ):
                    raise BadRequest("Only HTML type is supported for the body on update")
                if body:
                    self._apply(task, body)
                    self._touch(lst, task, body)
                return Response(200, self._task_json(task, zone, expand=False))
            if method == "DELETE":
                self._delete(lst, task)
                return Response(204)
            return _err(405, "BadRequest", "Method not allowed")
        if rest[0] != "linkedResources":
            return _err(400, "BadRequest", f"Unsupported segment '{rest[0]}'")
        rest = rest[1:]
        if not rest:
            if method == "GET":
                return Response(200, {"value": copy.deepcopy(task.links)})
            if method == "POST":
                link = self._new_link(body or {})
                task.links.append(link)
                self._touch_links(lst, task)
                return Response(201, copy.deepcopy(link))
            return _err(405, "BadRequest", "Method not allowed")
        found_link = next((x for x in task.links if x["id"] == rest[0]), None)
        if found_link is None:
            return _err(404, "ResourceNotFound", "The linked resource was not found.")
        link = found_link
        if method == "GET":
            return Response(200, copy.deepcopy(link))
        if method == "PATCH":
            for key, value in (body or {}).items():
                if key not in LINK_PROPS:
                    raise BadRequest(f"Invalid property '{key}' for linkedResource")
                link[key] = value
            # The link is part of the task item: the task's version moves.
            self._touch_links(lst, task)
            return Response(200, copy.deepcopy(link))
        if method == "DELETE":
            task.links.remove(link)
            self._touch_links(lst, task)
            return Response(204)
        return _err(405, "BadRequest", "Method not allowed")

    def _partial(self, task: Task, full: dict[str, Any], since: int) -> dict[str, Any]:
        """The task as a partial delta item: its id and etag, and only the properties
        changed since the token (null for one that was cleared)."""
        out: dict[str, Any] = {"@odata.etag": full["@odata.etag"], "id": task.id}
        for key, seq in task.changed.items():
            if seq > since and (key != "linkedResources" or "linkedResources" in full):
                out[key] = full.get(key)
        return out

    # --- mail and calendar (the touch sources read them) ------------------------------------

    def add_message(
        self,
        upn: str,
        sent: datetime,
        *,
        to: tuple[str, ...] = (),
        cc: tuple[str, ...] = (),
        bcc: tuple[str, ...] = (),
        message_id: str | None = None,
    ) -> dict[str, Any]:
        """A message in the user's Sent Items, as Outlook leaves one there."""
        user = self.authority.add_user(upn)

        def people(addresses: tuple[str, ...]) -> list[dict[str, Any]]:
            return [{"emailAddress": {"name": a.split("@")[0], "address": a}} for a in addresses]

        with self.lock:
            self.mail_seq += 1
            message = {
                "id": _graph_id(),
                "sentDateTime": _stamp(sent).replace(".0000000Z", "Z"),
                "receivedDateTime": _stamp(sent).replace(".0000000Z", "Z"),
                "subject": "hello",
                "toRecipients": people(to),
                "ccRecipients": people(cc),
                "bccRecipients": people(bcc),
                "internetMessageId": message_id or f"<{uuid.uuid4().hex}@contoso.example>",
                "_seq": self.mail_seq,
                "_at": sent.astimezone(UTC),
            }
            self.sent_items.setdefault(user.oid, []).append(message)
            return message

    def add_event(
        self,
        upn: str,
        start: datetime,
        end: datetime,
        *,
        organizer: str,
        attendees: dict[str, str] | None = None,
        cancelled: bool = False,
        my_response: str = "accepted",
    ) -> dict[str, Any]:
        """One event occurrence in the user's calendar (the real service expands
        series in a calendarView). attendees: address -> response (accepted, declined...)."""
        user = self.authority.add_user(upn)
        with self.lock:
            event = {
                "id": _graph_id(),
                "iCalUId": _graph_id("040000008200E0"),
                "subject": "Meeting",
                "isCancelled": cancelled,
                "responseStatus": {"response": my_response, "time": "0001-01-01T00:00:00Z"},
                "organizer": {"emailAddress": {"name": "", "address": organizer}},
                "attendees": [
                    {
                        "type": "required",
                        "status": {"response": r, "time": "0001-01-01T00:00:00Z"},
                        "emailAddress": {"name": "", "address": a},
                    }
                    for a, r in (attendees or {}).items()
                ],
                "_start": start.astimezone(UTC),
                "_end": end.astimezone(UTC),
            }
            self.events.setdefault(user.oid, []).append(event)
            return event

    @staticmethod
    def _public(item: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in item.items() if not k.startswith("_")}

    def _mail_delta(self, user: User, query: dict[str, str], rel: str) -> Response:
        """messages/delta on Sent Items: pages of `page_size`, then a deltaLink; a
        `$filter=receivedDateTime ge ...` on the first round (as the service allows)."""
        url = f"{self.url}{rel}"
        token_text = query.get("$deltatoken") or query.get("$skiptoken")
        if token_text is not None:
            state = self._untoken(token_text)
            if state is None or state.get("u") != user.oid[-12:]:
                return _err(400, "syncStateInvalid", "The sync state token is not valid.")
            if state.get("e") != self.epoch:
                return _err(410, "syncStateNotFound", "The sync state generation is not found.")
        else:
            since = query.get("$filter", "").partition(" ge ")[2].strip()
            state = {"u": user.oid[-12:], "e": self.epoch, "s": 0, "f": since}
        with self.lock:
            items = self.sent_items.get(user.oid, [])
            start = int(state.get("c", state["s"]))
            since = state.get("f") or ""
            floor = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
            changes = [
                m for m in items if m["_seq"] > start and (floor is None or m["_at"] >= floor)
            ]
            page = changes[: self.page_size]
            out: dict[str, Any] = {
                "@odata.context": f"{self.url}/$metadata#Collection(message)",
                "value": [self._public(m) for m in page],
            }
            if len(changes) > len(page):
                nxt = dict(state, c=page[-1]["_seq"])
                out["@odata.nextLink"] = f"{url}?$skiptoken={self._token(nxt)}"
            else:
                top = max((m["_seq"] for m in items), default=0)
                done = {"u": state["u"], "e": self.epoch, "s": top}
                out["@odata.deltaLink"] = f"{url}?$deltatoken={self._token(done)}"
        return Response(200, out)

    def _calendar_view(
        self, user: User, query: dict[str, str], headers: dict[str, str], rel: str
    ) -> Response:
        """calendarView: occurrences overlapping [startDateTime, endDateTime), start and
        end in the Prefer: outlook.timezone zone; paged with $skip."""
        try:
            lo = datetime.fromisoformat(query["startDateTime"].replace("Z", "+00:00"))
            hi = datetime.fromisoformat(query["endDateTime"].replace("Z", "+00:00"))
        except (KeyError, ValueError):
            return _err(
                400,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the query string "
                "parameters StartDateTime and EndDateTime.",
            )
        lo = lo if lo.tzinfo else lo.replace(tzinfo=UTC)
        hi = hi if hi.tzinfo else hi.replace(tzinfo=UTC)
        zone, size = self._prefer(headers)
        with self.lock:
            found = sorted(
                (e for e in self.events.get(user.oid, []) if e["_start"] < hi and lo < e["_end"]),
                key=lambda e: e["_start"],
            )
        skip = int(query.get("$skip", "0") or 0)
        top = size or self.page_size
        page = found[skip : skip + top]
        value = []
        for e in page:
            item = self._public(e)
            item["start"] = self._dtz(e["_start"], zone)
            item["end"] = self._dtz(e["_end"], zone)
            value.append(item)
        out: dict[str, Any] = {"@odata.context": f"{self.url}/$metadata#events", "value": value}
        if skip + top < len(found):
            keep = {k: v for k, v in query.items() if k != "$skip"}
            tail = "&".join(f"{k}={quote(v, safe='')}" for k, v in keep.items())
            out["@odata.nextLink"] = f"{self.url}{rel}?{tail}&$skip={skip + top}"
        return Response(200, out)

    def _list_json(self, lst: TaskList) -> dict[str, Any]:
        return {
            "@odata.etag": lst.etag,
            "displayName": lst.name,
            "isOwner": True,
            "isShared": False,
            "wellknownListName": lst.wellknown,
            "id": lst.id,
        }

    def _token(self, data: dict[str, Any]) -> str:
        return (
            base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode())
            .decode()
            .rstrip("=")
        )

    def _untoken(self, text: str) -> dict[str, Any] | None:
        try:
            data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (ValueError, TypeError):
            return None
        return data if isinstance(data, dict) else None

    def _page(
        self,
        lst: TaskList,
        query: dict[str, str],
        size: int | None,
        zone: str | None,
        expand: bool,
        url: str,
    ) -> Response:
        ordered = sorted(lst.tasks.values(), key=lambda t: t.created)
        skip = int(query.get("$skip", "0") or 0)
        top = int(query.get("$top", "0") or 0) or size or self.page_size
        page = ordered[skip : skip + top]
        out: dict[str, Any] = {
            "@odata.context": f"{self.url}/$metadata#tasks",
            "value": [self._task_json(t, zone, expand=expand) for t in page],
        }
        if skip + top < len(ordered):
            out["@odata.nextLink"] = f"{url}?$skip={skip + top}&$top={top}" + (
                "&$expand=linkedResources" if expand else ""
            )
        return Response(200, out)

    def _delta(
        self, lst: TaskList, query: dict[str, str], size: int | None, zone: str | None, url: str
    ) -> Response:
        token_text = query.get("$deltatoken") or query.get("$skiptoken")
        if token_text is not None:
            state = self._untoken(token_text)
            if state is None or state.get("l") != lst.id[-16:]:
                return _err(400, "syncStateInvalid", "The sync state token is not valid.")
            if state.get("e") != self.epoch:
                return _err(
                    410,
                    "syncStateNotFound",
                    "The sync state generation is not found. Restart the sync.",
                )
        else:
            state = {
                "l": lst.id[-16:],
                "e": self.epoch,
                "s": 0,
                "x": "linkedResources" in query.get("$expand", ""),
                "i": True,  # the initial round lists what exists, no deletions
            }
        since = int(state.get("s", 0))
        upto = int(state.get("u", lst.seq))
        cursor = int(state.get("c", since))
        expand = bool(state.get("x")) and self.delta_expands
        changes: list[tuple[int, dict[str, Any]]] = []
        for task in lst.tasks.values():
            if cursor < task.seq <= upto:
                shown = self._task_json(task, zone, expand=expand)
                if self.delta_partial and not state.get("i") and task.created_seq <= since:
                    shown = self._partial(task, shown, since)
                changes.append((task.seq, shown))
        if not state.get("i"):
            for tid, seq in lst.removed.items():
                if cursor < seq <= upto:
                    changes.append(
                        (
                            seq,
                            {
                                "@odata.type": TASK_TYPE,
                                "id": tid,
                                "@removed": {"reason": "deleted"},
                            },
                        )
                    )
        changes.sort(key=lambda c: c[0])
        limit = size or self.page_size
        page = changes[:limit]
        out: dict[str, Any] = {
            "@odata.context": f"{self.url}/$metadata#Collection(todoTask)",
            "value": [c[1] for c in page],
        }
        if len(changes) > limit:
            nxt = dict(state, s=since, u=upto, c=page[-1][0])
            out["@odata.nextLink"] = f"{url}?$skiptoken={self._token(nxt)}"
        else:
            done = {"l": state["l"], "e": self.epoch, "s": upto, "x": state.get("x", False)}
            out["@odata.deltaLink"] = f"{url}?$deltatoken={self._token(done)}"
        return Response(200, out)


def _uuid() -> str:
    return str(uuid.uuid4())


def local(day: date, hh: int, mm: int, zone: str) -> datetime:
    return datetime.combine(day, dtime(hh, mm), tzinfo=ZoneInfo(zone))
