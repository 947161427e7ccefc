"""Outlook tasks on Exchange, through Exchange Web Services (exchangelib).

Each contact has one native *regenerating* Outlook task ("Regenerate new task N
weeks after each task is completed"), so Outlook, OWA and phones show and
regenerate it themselves. kit-sync's part:

- the task carries named properties in the PublicStrings set: the contact id (the
  ownership marker, X-KIT-SYNC-CONTACT), the kit UID, and kit-sync's bookkeeping
  (KitMeta as JSON). A task is kit-sync's only with both the marker and a kit UID
  of that contact (`items.kit_owner`); anything else, a task carrying a copied
  marker under no or its own UID included, is never read further, changed or
  deleted (a marker without the UID is reported once);
- completing a regenerating task (in Outlook, on a phone, or through EWS) leaves the
  same item open as the next occurrence, with a due date the server or Outlook
  computed (the server counts in UTC, so it can be a day off), and creates a
  completed one-off copy. The copy is listed as a COMPLETED task with its own uid
  (derived from its item id): that is the touch. The plan then checks the master's
  new due date against `touch day + every` and fixes it with a conditional update;
- change detection is SyncFolderItems with the sync state and a cache of the kit
  items kept in the state DB: an idle cycle is one EWS request, also in a new
  process. SyncFolderItems cannot return every property, so changed kit items are
  read with one GetItem;
- writes are conditional: UpdateItem with the item's change key and
  ConflictResolution=NeverOverwrite (ErrorIrresolvableConflict -> Conflict). EWS
  DeleteItem ignores change keys, so a delete first reads the current change key.

All exchangelib errors become kit-sync backend errors in `transport._translate`.

The package: `items` (pure conversions, unit-tested), `transport` (retry policy,
versions, error translation), `cache` (the listing cache) and this module, the
backend class.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    NTLM,
    OAUTH2,
    Account,
    BaseProtocol,
    Body,
    Configuration,
    Credentials,
    EWSDateTime,
    FailFast,
    Identity,
    Mailbox,
    NoVerifyHTTPAdapter,
    OAuth2Credentials,
    Task,
)
from exchangelib import errors as ews
from exchangelib.folders import Folder, Root, Tasks
from exchangelib.items import (
    ALL_OCCURRENCES,
    ID_ONLY,
    MOVE_TO_DELETED_ITEMS,
    NEVER_OVERWRITE,
    SAVE_ONLY,
    SEND_TO_NONE,
)
from exchangelib.properties import DistinguishedFolderId
from exchangelib.protocol import Protocol
from exchangelib.recurrence import (
    TaskRecurrence,
)
from exchangelib.restriction import Q, Restriction
from exchangelib.services import (
    CreateFolder,
    CreateItem,
    DeleteItem,
    FindFolder,
    GetItem,
    SyncFolderItems,
    UpdateItem,
)

from kit_sync.backends.base import (
    AlreadyExists,
    Backend,
    BackendError,
    BackendUnavailable,
    Conflict,
)
from kit_sync.backends.exchange.cache import _Cache
from kit_sync.backends.exchange.items import (
    READ_FIELDS,
    SYNC_FIELDS,
    _assign_uids,
    _done_stamp,
    _Entry,
    _iso_or_none,
    _paths,
    _register_properties,
    _utc,
    importance_for,
    kit_owner,
    meta_from_json,
    meta_to_json,
    regeneration_for,
)
from kit_sync.backends.exchange.transport import (
    _ca_bundle_adapter,
    _ews,
    _Patience,
    _raise_if_error,
    _short,
    _translate,
    _utc_zone,
    parse_version,
)
from kit_sync.cadence import today
from kit_sync.clock import Clock, system_clock
from kit_sync.config import ExchangeConfig
from kit_sync.model import (
    ItemProblem,
    KitMeta,
    KitTask,
    Listing,
    NewTask,
    Status,
    TaskChange,
)
from kit_sync.state import State

log = logging.getLogger("kit_sync.exchange")
SYNC_PAGE = 512  # SyncFolderItems returns at most 512 changes per call

#: item ids already reported as carrying kit-sync's marker without a kit UID (foreign),
#: so each is reported once per process, not at every cycle.
_warned_foreign: set[str] = set()


def _warn_foreign(item_id: str, contact: str, subject: str | None) -> None:
    if item_id in _warned_foreign:
        return
    _warned_foreign.add(item_id)
    log.warning(
        "the task %s carries kit-sync's marker (%s) but not a kit-sync UID of that "
        "contact: made or copied by another program or by hand. kit-sync leaves it alone "
        "(delete it if it is a stray copy)",
        f"'{subject}'" if subject is not None else item_id,
        contact,
        extra={"href": item_id},
    )


class _CreateItems(CreateItem):
    """CreateItem that gives every item's own error back as that item's result.

    exchangelib raises most per-item errors, which would end the reading of the
    response at that item: the items before it, created on the server, would be
    lost to us (and created again later). Exchange has no create-if-absent."""

    ERRORS_TO_CATCH_IN_RESPONSE = (ews.ResponseMessageError,)


# --- the backend ------------------------------------------------------------------------------


class ExchangeBackend(Backend):
    """Backend over an Exchange Tasks folder. See base.Backend for the contract."""

    regenerates_itself: ClassVar[bool] = True
    #: creates per CreateItem request (exchangelib's chunk size for EWS calls)
    batch_size: ClassVar[int] = 100

    def __init__(self, config: ExchangeConfig, tz: ZoneInfo, *, clock: Clock | None = None) -> None:
        _register_properties()
        self.config = config
        self.tz = tz
        self._clock = clock or system_clock
        self.email: str = config.email
        self._state: State | None = None
        self._cache = _Cache()
        self._dirty = False
        self._account: Account | None = None
        self._folder: Any = None
        self._cache_key = f"exchange:{self.email.lower()}:{config.folder or ''}"

    # --- wiring -----------------------------------------------------------------------

    def bind_state(self, state: State) -> None:
        """Keep the sync state and the cached listing in the state DB (an idle cycle
        in a new process is then one request)."""
        self._state = state
        self._cache = _Cache.load(state.listing_cache(), self._cache_key)
        for entry in list(self._cache.items.values()):
            if entry.problem is None and not kit_owner(entry.contact_id, entry.stored_uid):
                # Listed by a kit-sync that went by the marker alone: foreign.
                del self._cache.items[entry.id]
                self._dirty = True
                _warn_foreign(entry.id, entry.contact_id, entry.summary)

    def _save(self) -> None:
        if self._state is not None and self._dirty:
            self._cache.save(self._state.listing_cache(), self._cache_key)
        self._dirty = False

    def _acct(self) -> Account:
        if self._account is None:
            with _ews("connecting"):
                self._account = self._make_account()
        return self._account

    def _make_account(self) -> Account:
        cfg = self.config
        if cfg.auth == "oauth2":
            oauth = cfg.oauth
            assert oauth is not None  # the config model requires it with auth: oauth2
            credentials: Any = OAuth2Credentials(
                client_id=oauth.client_id,
                client_secret=oauth.client_secret.get_secret_value(),
                tenant_id=oauth.tenant_id,
                identity=Identity(primary_smtp_address=self.email),
            )
            auth_type = OAUTH2
        else:
            credentials = Credentials(
                cfg.username or self.email, cfg.password.get_secret_value() if cfg.password else ""
            )
            auth_type = NTLM if cfg.auth == "ntlm" else BASIC
        if cfg.verify is False:
            BaseProtocol.HTTP_ADAPTER_CLS = NoVerifyHTTPAdapter
        elif isinstance(cfg.verify, str):
            BaseProtocol.HTTP_ADAPTER_CLS = _ca_bundle_adapter(cfg.verify)
        policy: Any = _Patience(max_wait=cfg.max_retry_wait) if cfg.max_retry_wait else FailFast()
        version = parse_version(cfg.version) if cfg.version else None
        if version is None and self._cache.version:
            version = parse_version(self._cache.version)  # learned earlier: skip the guess
        access = (
            IMPERSONATION if cfg.access == "impersonation" or cfg.auth == "oauth2" else DELEGATE
        )
        if cfg.autodiscover:
            config = Configuration(
                credentials=credentials, auth_type=auth_type, version=version, retry_policy=policy
            )
            account = Account(
                self.email,
                config=config,
                autodiscover=True,
                access_type=access,
                default_timezone=_utc_zone(),
            )
        else:
            config = Configuration(
                server=cfg.server,
                service_endpoint=cfg.service_endpoint,
                credentials=credentials,
                auth_type=auth_type,
                version=version,
                retry_policy=policy,
                max_connections=1,
            )
            account = Account(
                self.email,
                config=config,
                autodiscover=False,
                access_type=access,
                default_timezone=_utc_zone(),
            )
        # Protocols are shared per (endpoint, credentials): make this config's policy
        # and timeout the ones in force.
        account.protocol.config.retry_policy = policy
        account.protocol.TIMEOUT = cfg.timeout
        return account

    def close(self) -> None:
        with suppress(Exception):
            self._save()
        if self._account is not None:
            protocol = self._account.protocol
            with suppress(Exception):
                protocol.close()
            with suppress(Exception):
                del Protocol[protocol.config]
            self._account = None
            self._folder = None

    # --- the folder ----------------------------------------------------------------------

    def _root(self) -> Root:
        # A root that never asks the server: ids are all kit-sync needs.
        return Root(account=self._acct())

    def _tasks_folder(self) -> Tasks:
        return Tasks(
            root=self._root(),
            _distinguished_id=DistinguishedFolderId(
                id=Tasks.DISTINGUISHED_FOLDER_ID, mailbox=Mailbox(email_address=self.email)
            ),
        )

    def _target(self) -> Any:
        """The folder the tasks live in, resolved once (then cached in the state DB)."""
        if self._folder is not None:
            return self._folder
        name = self.config.folder
        if not name:
            self._folder = self._tasks_folder()
            return self._folder
        if self._cache.folder_id:
            self._folder = Folder(root=self._root(), id=self._cache.folder_id)
            return self._folder
        parent = self._tasks_folder()
        with _ews(f"looking for the task folder '{name}'"):
            found = [
                _raise_if_error(f, "listing task folders")
                for f in FindFolder(account=self._acct()).call(
                    folders=[parent],
                    additional_fields=set(),
                    restriction=Restriction(Q(name=name), [parent], Restriction.FOLDERS),
                    shape=ID_ONLY,
                    depth="Shallow",
                    max_items=None,
                    offset=0,
                )
            ]
            if not found:
                if not self.config.create_folder:
                    raise BackendUnavailable(
                        f"the task folder '{name}' does not exist under Tasks in {self.email}; "
                        "create it in Outlook or set backend.create_folder: true"
                    )
                made = list(
                    CreateFolder(account=self._acct()).call(
                        parent_folder=parent,
                        folders=[Tasks(root=self._root(), name=name)],
                    )
                )
                if isinstance(made[0], ews.ErrorFolderExists):
                    return self._target()  # created meanwhile by another client
                found = [_raise_if_error(made[0], f"creating the task folder '{name}'")]
                log.info("created the task folder '%s' in %s", name, self.email)
        self._cache.folder_id = found[0].id
        self._dirty = True
        self._folder = Folder(root=self._root(), id=found[0].id)
        return self._folder

    # --- reading ---------------------------------------------------------------------------

    def fetch_listing(self) -> Listing:
        self._sync()
        return self._listing()

    def _sync(self) -> None:
        try:
            with _ews("reading changes"):
                try:
                    self._sync_once()
                except ews.ErrorInvalidSyncStateData:
                    log.warning(
                        "Exchange no longer accepts the saved sync state; reading the folder again"
                    )
                    self._cache.sync_state = None
                    self._cache.items.clear()
                    self._dirty = True
                    self._sync_once()
                except ews.ErrorFolderNotFound:
                    if not self._cache.folder_id:
                        raise
                    log.warning("the task folder was deleted or moved; looking it up again")
                    self._cache = _Cache(version=self._cache.version)
                    self._folder = None
                    self._dirty = True
                    self._sync_once()
        finally:
            self._save()

    def _sync_once(self) -> None:
        account = self._acct()
        state = self._cache.sync_state
        # item id -> (change key, contact id, kit uid)
        changed: dict[str, tuple[str, str, str]] = {}
        new_foreign: list[str] = []  # foreign tasks created since the last sync
        marker_only: dict[str, str] = {}  # item id -> the contact its copied marker names
        while True:
            svc = SyncFolderItems(account=account)
            try:
                changes = list(
                    svc.call(
                        folder=self._target(),
                        shape=ID_ONLY,
                        additional_fields=_paths(*SYNC_FIELDS),
                        sync_state=state,
                        ignore=None,
                        max_changes_returned=SYNC_PAGE,
                        sync_scope=None,
                    )
                )
            except (ews.ErrorInvalidSyncStateData, ews.ErrorFolderNotFound, BackendError):
                raise  # _sync recovers from the first two
            except Exception as exc:
                raise _translate(exc, "reading changes") from exc
            for kind, item in changes:
                if isinstance(item, Exception):
                    raise _translate(item, "reading changes")
                if kind == SyncFolderItems.DELETE:
                    if self._cache.items.pop(item.id, None) is not None:
                        self._dirty = True
                    changed.pop(item.id, None)
                    continue
                if kind == SyncFolderItems.READ_FLAG_CHANGE:
                    continue
                marker = getattr(item, "kit_contact", None) if isinstance(item, Task) else None
                uid = getattr(item, "kit_uid", None) or ""
                owned = kit_owner(marker, uid)
                if not owned:
                    if marker:
                        marker_only[item.id] = marker
                    if kind == SyncFolderItems.CREATE and isinstance(item, Task):
                        new_foreign.append(item.id)
                    # Foreign (or no longer ours): forget it, never touch it.
                    if self._cache.items.pop(item.id, None) is not None:
                        self._dirty = True
                    changed.pop(item.id, None)
                    continue
                known = self._cache.items.get(item.id)
                if known is None or known.ck != item.changekey:
                    changed[item.id] = (item.changekey, owned, uid)
            if svc.sync_state != state:
                self._dirty = True
            state = svc.sync_state
            if svc.includes_last_item_in_range or not changes:
                break
        if changed:
            before = {i: self._cache.items.get(i) for i in changed}
            read = self._read_items(sorted(changed), changed)
            if new_foreign:
                self._find_unmarked_copies(before, read, new_foreign)
        self._report_foreign(marker_only)
        self._cache.sync_state = state
        self._learn_version()

    def _report_foreign(self, found: dict[str, str]) -> None:
        """Warn, once per item and process, about tasks with kit-sync's marker but no
        kit UID of that contact, named by subject (read here: SyncFolderItems only
        brought the marker) so the user can find them."""
        fresh = sorted(i for i in found if i not in _warned_foreign)
        if not fresh:
            return
        subjects: dict[str, str] = {}
        try:
            with _ews("reading tasks"):
                results = GetItem(account=self._acct()).call(
                    items=[(i, None) for i in fresh],
                    additional_fields=_paths("subject"),
                    shape=ID_ONLY,
                )
                for item_id, item in zip(fresh, results, strict=True):
                    if isinstance(item, Task):
                        subjects[item_id] = item.subject or ""
        except BackendError as exc:
            log.debug("cannot read the subjects of foreign tasks: %s", exc)
        for item_id in fresh:
            _warn_foreign(item_id, found[item_id], subjects.get(item_id))

    def _find_unmarked_copies(
        self, before: dict[str, _Entry | None], read: dict[str, _Entry], new_foreign: list[str]
    ) -> None:
        """Completions whose completed copy came without kit-sync's properties.

        Exchange documents that completing a regenerating task creates a completed
        one-off copy and moves the task on, not that named properties are copied.
        A master that regenerated (open before and after, its due date moved by the
        server, not by us) with no marked copy in the same sync is matched to a
        completed task without the marker, created in the same sync, with the
        master's subject and previous due date. That copy is listed as the completed
        task (contact and bookkeeping from the master as it was); it is never
        written to."""
        masters: list[tuple[_Entry, _Entry]] = []
        marked = {e.stored_uid for e in read.values() if e.status is Status.COMPLETED}
        for entry in read.values():
            was = before.get(entry.id)
            if (
                was is not None
                and was.status is Status.OPEN
                and entry.status is Status.OPEN
                and entry.recurring
                and was.due is not None
                and entry.due != was.due
                and entry.stored_uid not in marked
            ):
                masters.append((was, entry))
        if not masters:
            return
        with _ews("reading completed tasks"):
            found = list(
                GetItem(account=self._acct()).call(
                    items=[(i, None) for i in new_foreign],
                    additional_fields=_paths(*READ_FIELDS),
                    shape=ID_ONLY,
                )
            )
        copies = [
            c
            for c in found
            if isinstance(c, Task)
            and c.status == Task.COMPLETED
            and c.recurrence is None
            and not c.kit_contact  # a marker without a kit UID: another program's task
        ]
        for was, master in masters:
            match = next(
                (
                    c
                    for c in copies
                    if (c.subject or "") == was.summary
                    and c.due_date is not None
                    and date(c.due_date.year, c.due_date.month, c.due_date.day) == was.due
                ),
                None,
            )
            if match is None:
                continue
            copies.remove(match)
            self._cache.items[match.id] = _Entry(
                match.id,
                match.changekey,
                master.contact_id,
                master.stored_uid,
                Status.COMPLETED,
                was.due,
                _utc(match.complete_date) if match.complete_date else None,
                match.subject or "",
                False,
                None,
                was.meta,
            )
            self._dirty = True
            log.info(
                "the completed copy %s of %s's task carries no kit-sync marker; recognised "
                "from the regenerated task",
                match.id,
                master.contact_id,
            )

    def _learn_version(self) -> None:
        if self._account is None or self.config.version:
            return
        build = self._account.version.build
        if build is not None:
            text = ".".join(str(p) for p in (build.major_version, build.minor_version,
                                             build.major_build, build.minor_build))  # fmt: skip
            if text != self._cache.version:
                self._cache.version = text
                self._dirty = True

    def _read_items(
        self, ids: list[str], seen: dict[str, tuple[str, str, str]] | None = None
    ) -> dict[str, _Entry]:
        """GetItem the kit items `ids` into the cache; returns the entries read.
        `seen` has the change key, contact and kit UID SyncFolderItems reported for each."""
        out: dict[str, _Entry] = {}
        with _ews("reading tasks"):
            results = list(
                GetItem(account=self._acct()).call(
                    items=[(i, None) for i in ids],
                    additional_fields=_paths(*READ_FIELDS),
                    shape=ID_ONLY,
                )
            )
        for item_id, item in zip(ids, results, strict=True):
            if isinstance(item, ews.ErrorItemNotFound):
                self._cache.items.pop(item_id, None)  # deleted since it was listed
                continue
            if isinstance(item, Exception):
                # Reported (the contact is left alone) until the item changes again.
                ck, cid, uid = (seen or {}).get(item_id, ("", "", ""))
                previous = self._cache.items.get(item_id)
                if previous is None and cid:
                    previous = _Entry(item_id, ck, cid, uid or None, Status.OPEN, None, None,
                                      "", False, None, KitMeta(cid))  # fmt: skip
                    self._cache.items[item_id] = previous
                if previous is not None:
                    previous.ck = ck or previous.ck
                    previous.problem = f"Exchange cannot read this task: {_short(str(item))}"
                continue
            entry = self._entry_of(item)
            if entry is None:
                self._cache.items.pop(item_id, None)
                continue
            self._cache.items[entry.id] = entry
            out[entry.id] = entry
        self._dirty = True
        return out

    def _entry_of(self, item: Any) -> _Entry | None:
        uid = item.kit_uid or None
        cid = kit_owner(item.kit_contact, uid)
        if not cid:
            return None  # foreign (its marker, if any, is reported when it is listed)
        meta = meta_from_json(cid, item.kit_meta)
        if item.status == Task.COMPLETED:
            status = Status.COMPLETED
        elif item.status == "Deferred" and item.kit_state == "cancelled":
            status = Status.CANCELLED
        else:
            status = Status.OPEN
        due = (
            date(item.due_date.year, item.due_date.month, item.due_date.day)
            if item.due_date
            else None
        )
        completed: datetime | date | None = None
        if status is Status.COMPLETED:
            completed = _done_stamp(item.kit_done, due) or (
                _utc(item.complete_date) if item.complete_date else None
            )
        reminder = item.reminder_due_by if item.reminder_is_set else None
        return _Entry(
            item.id,
            item.changekey,
            cid,
            uid,
            status,
            due,
            completed,
            item.subject or "",
            item.recurrence is not None,
            _utc(reminder) if reminder is not None else None,
            meta,
            has_done=bool(item.kit_done),
        )

    def _listing(self) -> Listing:
        listing = Listing()
        entries = sorted(self._cache.items.values(), key=lambda e: e.id)
        uids = _assign_uids(entries)
        copies: dict[str, list[_Entry]] = {}
        for e in entries:
            if e.status is Status.COMPLETED and e.stored_uid:
                copies.setdefault(e.stored_uid, []).append(e)
        for e in entries:
            if e.problem:
                listing.problems.append(ItemProblem(e.id, e.problem, e.contact_id))
                continue
            listing.tasks.append(self._kit_task(e, uids[e.id], copies.get(e.stored_uid or "", [])))
        return listing

    def _kit_task(self, e: _Entry, uid: str, copies: list[_Entry] | None = None) -> KitTask:
        meta = e.meta
        if (
            e.status is Status.OPEN
            and meta.planned_due is not None
            and e.due != meta.planned_due
            and any(c.due == meta.planned_due for c in copies or [])
        ):
            # The server (or Outlook) regenerated this task after a completion whose
            # day is not newer than our anchor (a second completion the same day, a
            # touch --on an earlier day): its new due date is not a snooze. Without
            # an anchor the plan counts the due date from the last touch again.
            meta = replace(meta, anchor=None)
        return KitTask(
            uid=uid,
            href=e.id,
            etag=e.ck,
            status=e.status,
            due=e.due,
            meta=meta,
            summary=e.summary,
            completed=e.completed,
        )

    # --- writing -------------------------------------------------------------------------------

    def _ensure_synced(self) -> None:
        if self._cache.sync_state is None:
            self._sync()

    def _new_item(self, new: NewTask) -> tuple[Task, EWSDateTime | None]:
        """The Task item a create sends for `new`, and its reminder time."""
        item = Task(
            account=self._acct(),
            folder=self._target(),
            subject=new.content.summary,
            body=Body(new.content.description),
            categories=list(new.content.categories) or None,
            importance=importance_for(new.content.priority),
            due_date=new.due,
            recurrence=TaskRecurrence(pattern=regeneration_for(new.meta.every), start=new.due),
            kit_contact=new.meta.contact_id,
            kit_uid=new.uid,
            kit_meta=meta_to_json(new.meta),
        )
        reminder = self._reminder(new.due, new.content.alarm)
        if reminder is not None:
            item.reminder_is_set = True
            item.reminder_due_by = reminder
            item.reminder_minutes_before_start = 0
        return item, reminder

    def _exists(self, new: NewTask) -> AlreadyExists | None:
        # Exchange has no create-if-absent: the listing (refreshed each cycle, and
        # re-read after a crash) is what makes a create exclusive.
        if any(e.stored_uid == new.uid for e in self._cache.items.values()):
            return AlreadyExists(f"a task with uid {new.uid} already exists")
        return None

    def _send_creates(self, items: list[Task], what: str) -> list[Any]:
        """One CreateItem per 100 items (exchangelib's chunk); per item: the created
        item (id, change key) or the exception the server answered for it."""
        with _ews(what):
            return list(
                _CreateItems(account=self._acct()).call(
                    items=items,
                    folder=self._target(),
                    message_disposition=SAVE_ONLY,
                    send_meeting_invitations=SEND_TO_NONE,
                )
            )

    def _created(self, new: NewTask, made: Any, reminder: EWSDateTime | None) -> KitTask:
        """Remember a created item: the task is what was sent (no read back)."""
        entry = _Entry(
            made.id,
            made.changekey,
            new.meta.contact_id,
            new.uid,
            Status.OPEN,
            new.due,
            None,
            new.content.summary,
            True,
            _utc(reminder) if reminder is not None else None,
            new.meta,
        )
        self._cache.items[entry.id] = entry
        self._dirty = True
        return self._kit_task(entry, new.uid)

    def create_task(self, new: NewTask) -> KitTask:
        self._ensure_synced()
        exists = self._exists(new)
        if exists is not None:
            raise exists
        item, reminder = self._new_item(new)
        what = f"creating the task for {new.meta.contact_id}"
        (made,) = self._send_creates([item], what)
        return self._created(new, _raise_if_error(made, what), reminder)

    def create_tasks(self, news: Sequence[NewTask]) -> list[KitTask | BackendError]:
        """Up to `batch_size` creates in one CreateItem. The server answers each item
        on its own: a refused item is that item's error, the others are created; the
        items it did not process after a failure (ErrorBatchProcessingStopped) and a
        request refused as a whole (not for being unreachable or busy) are sent again
        one at a time, so each item gets its own answer. Nothing is sent twice that
        the server may have created: Exchange has no create-if-absent."""
        self._ensure_synced()
        outcomes: list[KitTask | BackendError | None] = [self._exists(new) for new in news]
        todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if not todo:
            return [o for o in outcomes if o is not None]
        built = [self._new_item(news[i]) for i in todo]
        try:
            results = self._send_creates([item for item, _ in built], f"creating {len(todo)} tasks")
        except BackendUnavailable:
            raise
        except BackendError as exc:
            log.info("the server refused %d creates together (%s); sending them one by one",
                     len(todo), exc)  # fmt: skip
            for i in todo:
                try:
                    outcomes[i] = self.create_task(news[i])
                except BackendUnavailable:
                    raise
                except BackendError as one:
                    outcomes[i] = one
            return [o for o in outcomes if o is not None]
        if len(results) != len(todo):
            raise BackendUnavailable(
                f"the server answered {len(results)} of {len(todo)} creates; nothing is "
                "lost: the next cycle lists what was created"
            )
        for i, (_, reminder), made in zip(todo, built, results, strict=True):
            new = news[i]
            if isinstance(made, ews.ErrorBatchProcessingStopped):
                try:  # not processed: safe to send again, on its own
                    outcomes[i] = self.create_task(new)
                except BackendUnavailable:
                    raise
                except BackendError as one:
                    outcomes[i] = one
            elif isinstance(made, Exception):
                outcomes[i] = _translate(made, f"creating the task for {new.meta.contact_id}")
            else:
                outcomes[i] = self._created(new, made, reminder)
        return [o for o in outcomes if o is not None]

    def _reminder(self, due: date, alarm: str | None) -> EWSDateTime | None:
        if not alarm:
            return None
        hh, mm = (int(x) for x in alarm.split(":"))
        local = datetime.combine(due, time(hh, mm), tzinfo=self.tz).astimezone(UTC)
        return EWSDateTime.from_datetime(local)

    def _ref(self, task: KitTask) -> Task:
        return Task(account=self._acct(), id=task.href, changekey=task.etag)

    def _update(self, item: Task, fields: list[str], what: str) -> tuple[str, str]:
        """One conditional UpdateItem; returns (item id, change key) of the response."""
        with _ews(what):
            (result,) = UpdateItem(account=self._acct()).call(
                items=[(item, fields)],
                conflict_resolution=NEVER_OVERWRITE,
                message_disposition=SAVE_ONLY,
                send_meeting_invitations_or_cancellations=SEND_TO_NONE,
                suppress_read_receipts=True,
            )
            item_id, changekey = _raise_if_error(result, what)
        return item_id, changekey

    def update_task(self, task: KitTask, change: TaskChange) -> KitTask:
        self._ensure_synced()
        if change.status is Status.COMPLETED:
            return self._complete(task, change.completed_at)
        entry = self._cache.items.get(task.href)
        item = self._ref(task)
        fields: list[str] = []
        due = change.due or task.due
        if change.due is not None:
            item.due_date = change.due
            fields.append("due_date")
            if entry is not None and entry.reminder is not None and change.content is None:
                # Keep the user's reminder on the due day, at the same time of day.
                moved = entry.reminder.astimezone(self.tz)
                item.reminder_due_by = EWSDateTime.from_datetime(
                    datetime.combine(change.due, moved.time(), tzinfo=self.tz).astimezone(UTC)
                )
                fields.append("reminder_due_by")
        if change.content is not None:
            c = change.content
            item.subject = c.summary
            item.body = Body(c.description)
            item.categories = list(c.categories) or None
            item.importance = importance_for(c.priority)
            fields += ["subject", "body", "categories", "importance"]
            reminder = self._reminder(due, c.alarm) if due else None
            item.reminder_is_set = reminder is not None
            fields.append("reminder_is_set")
            if reminder is not None:
                item.reminder_due_by = reminder
                item.reminder_minutes_before_start = 0
                fields += ["reminder_due_by", "reminder_minutes_before_start"]
        if change.meta is not None:
            item.kit_meta = meta_to_json(change.meta)
            fields.append("kit_meta")
            old_every = entry.meta.every if entry else task.meta.every
            if change.meta.every and change.meta.every != old_every:
                start = due or today(self._clock(), self.tz)
                item.recurrence = TaskRecurrence(
                    pattern=regeneration_for(change.meta.every), start=start
                )
                fields.append("recurrence")
        if entry is not None and entry.has_done and entry.status is Status.OPEN:
            item.kit_done = None  # a completion stamp that belongs to the completed copy
            fields.append("kit_done")
        if change.status is Status.CANCELLED:
            # Retire the task: no recurrence (never a zombie that regenerates forever),
            # Deferred, no reminder, and our note that kit-sync retired it.
            item.recurrence = None
            item.status = "Deferred"
            item.reminder_is_set = False
            item.kit_state = "cancelled"
            fields += ["recurrence", "status", "reminder_is_set", "kit_state"]
        elif change.status is Status.OPEN:
            item.status = Task.NOT_STARTED
            item.percent_complete = Decimal(0)
            item.kit_state = None
            fields += ["status", "percent_complete", "kit_state"]
        if not fields:
            return task
        fields = list(dict.fromkeys(fields))
        item_id, changekey = self._update(item, fields, f"updating the task of {task.contact_id}")
        if item_id != task.href or entry is None:
            read = self._read_items([item_id])
            return self._kit_task(read[item_id], task.uid) if item_id in read else task
        entry.ck = changekey
        if change.due is not None:
            entry.due = change.due
        if change.content is not None:
            entry.reminder = _utc(item.reminder_due_by) if item.reminder_is_set else None
        elif "reminder_due_by" in fields:
            entry.reminder = _utc(item.reminder_due_by)
        if change.content is not None:
            entry.summary = change.content.summary
        if change.meta is not None:
            entry.meta = change.meta
        if "kit_done" in fields:
            entry.has_done = False
        if change.status is Status.CANCELLED:
            entry.status, entry.recurring, entry.reminder = Status.CANCELLED, False, None
        elif change.status is Status.OPEN:
            entry.status = Status.OPEN
        if "recurrence" in fields and change.status is not Status.CANCELLED:
            entry.recurring = True
        self._dirty = True
        return self._kit_task(entry, task.uid)

    def _complete(self, task: KitTask, at: datetime | None) -> KitTask:
        """Complete the task through EWS. A regenerating task stays open (the server
        moves its due date) and a completed copy appears; EWS ignores a client-set
        CompleteDate, so the day kit-sync was told is kept in our own property,
        together with the due date it belongs to (a stale stamp copied into a later
        completion is then recognisably not that completion's)."""
        entry = self._cache.items.get(task.href)
        due = entry.due if entry is not None else task.due
        item = self._ref(task)
        item.status = Task.COMPLETED
        item.percent_complete = Decimal(100)
        fields = ["status", "percent_complete"]
        if at is not None:
            item.kit_done = json.dumps(
                {"at": at.astimezone(UTC).isoformat(), "due": _iso_or_none(due)}
            )
            fields.append("kit_done")
        result_id, _ = self._update(item, fields, f"completing the task of {task.contact_id}")
        read = self._read_items(sorted({task.href, result_id}))
        master = read.get(task.href)
        done_copy = read.get(result_id)
        if master is not None and result_id != task.href and master.has_done:
            # The master is the next occurrence: the stamp belongs to the copy only.
            clear = Task(account=self._acct(), id=master.id, changekey=master.ck)
            clear.kit_done = None
            _, master.ck = self._update(clear, ["kit_done"], "tidying the regenerated task")
            master.has_done = False
        if (
            at is not None
            and done_copy is not None
            and done_copy.status is Status.COMPLETED
            and done_copy.completed != at.astimezone(UTC)
        ):
            # The server made the copy before applying our stamp: stamp the copy.
            stamp = Task(account=self._acct(), id=done_copy.id, changekey=done_copy.ck)
            stamp.kit_done = json.dumps(
                {"at": at.astimezone(UTC).isoformat(), "due": _iso_or_none(done_copy.due)}
            )
            _, done_copy.ck = self._update(stamp, ["kit_done"], "recording the touch day")
            done_copy.completed = at.astimezone(UTC)
            done_copy.has_done = True
        self._dirty = True
        keep = master if master is not None and master.status is Status.OPEN else done_copy
        if keep is None:
            return task
        uids = _assign_uids(sorted(self._cache.items.values(), key=lambda e: e.id))
        return self._kit_task(keep, uids.get(keep.id, task.uid))

    def delete_task(self, task: KitTask) -> None:
        self._ensure_synced()
        with _ews(f"deleting the task of {task.contact_id}"):
            (current,) = GetItem(account=self._acct()).call(
                items=[(task.href, None)], additional_fields=set(), shape=ID_ONLY
            )
            current = _raise_if_error(current, f"deleting the task of {task.contact_id}")
            if current.changekey != task.etag:
                # EWS DeleteItem ignores change keys: compare first.
                raise Conflict(f"the task of {task.contact_id} changed since it was read")
            (result,) = DeleteItem(account=self._acct()).call(
                items=[(task.href, task.etag)],
                delete_type=MOVE_TO_DELETED_ITEMS,
                send_meeting_cancellations=SEND_TO_NONE,
                affected_task_occurrences=ALL_OCCURRENCES,
                suppress_read_receipts=True,
            )
            _raise_if_error(result, f"deleting the task of {task.contact_id}")
        self._cache.items.pop(task.href, None)
        self._dirty = True


__all__ = [
    "ExchangeBackend",
    "importance_for",
    "meta_from_json",
    "meta_to_json",
    "parse_version",
    "regeneration_for",
]
