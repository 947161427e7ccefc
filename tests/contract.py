"""The backend contract: one test class every backend runs unchanged.

Subclass `BackendContract` in a backend's test module and provide fixtures:

- ``backend``: a fresh backend (``kit_sync.backends.base.Backend``) on an empty
  task list, built with the ``tz`` fixture's zone.
- ``put_foreign``: a callable ``put_foreign(summary: str) -> Callable[[], bytes]``
  that stores a task *without* the kit marker through an independent client and
  returns a function reading that item's raw data back (to prove it is untouched).
- optionally override ``tz`` (default Europe/Berlin).

Every test states one promise the engine relies on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kit_sync.backends.base import AlreadyExists, Conflict, NotFound
from kit_sync.cadence import local_day
from kit_sync.model import (
    AnchorKind,
    KitMeta,
    KitTask,
    NewTask,
    Status,
    TaskChange,
    TaskContent,
    make_uid,
)


def new_task(
    contact_id: str = "ann-lee",
    due: date = date(2026, 12, 14),
    seed: str | None = None,
    **content: Any,
) -> NewTask:
    """A task to create. Each call gets its own UID: the test lists of one server share
    an account, and a server may keep UIDs unique across the whole account (Cyrus)."""
    body = TaskContent(
        summary=content.get("summary", f"Keep in touch with {contact_id}"),
        description=content.get("description", "How: lunch\nEmail: ann@example.com"),
        categories=content.get("categories", ("Keep in touch", "inner")),
        priority=content.get("priority", 1),
        alarm=content.get("alarm"),
    )
    meta = KitMeta(
        contact_id=contact_id,
        anchor=date(2026, 11, 23),
        anchor_kind=AnchorKind.TOUCH,
        every="P21D",
        planned_due=due,
        from_uid=None,
        fingerprint=body.fingerprint,
    )
    uid = make_uid(contact_id, seed or uuid.uuid4().hex)
    return NewTask(uid=uid, due=due, content=body, meta=meta)


def by_uid(backend: Any) -> dict[str, KitTask]:
    return {t.uid: t for t in backend.fetch_listing().tasks}


class BackendContract:
    @pytest.fixture
    def tz(self) -> ZoneInfo:
        return ZoneInfo("Europe/Berlin")

    def test_empty_list_lists_nothing(self, backend: Any) -> None:
        listing = backend.fetch_listing()
        assert listing.tasks == []
        assert listing.problems == []

    def test_create_returns_the_stored_task(self, backend: Any) -> None:
        new = new_task()
        made = backend.create_task(new)
        assert made.uid == new.uid
        assert made.href and made.etag
        assert made.status is Status.OPEN
        assert made.due == new.due
        assert made.meta == new.meta
        assert made.summary == new.content.summary

    def test_created_task_is_listed_with_same_etag_and_meta(self, backend: Any) -> None:
        made = backend.create_task(new_task())
        listed = by_uid(backend)[made.uid]
        assert listed.etag == made.etag
        assert listed.href == made.href
        assert listed.meta == made.meta
        assert listed.due == made.due
        assert listed.status is Status.OPEN

    def test_create_is_exclusive(self, backend: Any) -> None:
        new = new_task()
        backend.create_task(new)
        with pytest.raises(AlreadyExists):
            backend.create_task(new)
        assert len(backend.fetch_listing().tasks) == 1

    def test_update_due_content_and_meta(self, backend: Any) -> None:
        made = backend.create_task(new_task())
        content = TaskContent("Keep in touch with Ann L.", "How: call", ("Keep in touch",), 5)
        meta = KitMeta(
            "ann-lee",
            date(2026, 12, 1),
            AnchorKind.TOUCH,
            "P2M",
            date(2027, 2, 1),
            "kit-prev@kit-sync",
            content.fingerprint,
        )
        updated = backend.update_task(
            made, TaskChange(due=date(2027, 2, 1), content=content, meta=meta)
        )
        assert updated.etag != made.etag
        listed = by_uid(backend)[made.uid]
        assert listed.due == date(2027, 2, 1)
        assert listed.meta == meta
        assert listed.summary == "Keep in touch with Ann L."
        assert listed.status is Status.OPEN

    def test_update_keeps_meta_when_only_due_changes(self, backend: Any) -> None:
        made = backend.create_task(new_task())
        backend.update_task(made, TaskChange(due=date(2027, 1, 5)))
        listed = by_uid(backend)[made.uid]
        assert listed.due == date(2027, 1, 5)
        assert listed.meta == made.meta  # planned_due unchanged: this now reads as a snooze
        assert listed.snoozed

    def test_stale_etag_is_a_conflict(self, backend: Any) -> None:
        made = backend.create_task(new_task())
        backend.update_task(made, TaskChange(due=date(2027, 1, 5)))
        with pytest.raises(Conflict):
            backend.update_task(made, TaskChange(due=date(2027, 1, 9)))
        with pytest.raises(Conflict):
            backend.delete_task(made)
        assert by_uid(backend)[made.uid].due == date(2027, 1, 5)

    def test_complete_records_the_day_in_the_users_zone(self, backend: Any, tz: ZoneInfo) -> None:
        made = backend.create_task(new_task())
        day = date(2026, 11, 30)
        # 23:30 local on the 30th is already the 1st in some zones' UTC... and the
        # other way round west of UTC: the day must come back as the 30th.
        stamp = datetime.combine(day, time(23, 30), tzinfo=tz).astimezone(UTC)
        backend.update_task(made, TaskChange(status=Status.COMPLETED, completed_at=stamp))
        tasks = backend.fetch_listing().tasks
        done = [t for t in tasks if t.status is Status.COMPLETED]
        assert len(done) == 1
        assert done[0].contact_id == "ann-lee"
        assert done[0].completed is not None
        assert local_day(done[0].completed, tz) == day
        opens = [t for t in tasks if t.status is Status.OPEN]
        # A self-regenerating backend keeps an open master; others have none left.
        assert len(opens) == (1 if type(backend).regenerates_itself else 0)

    def test_cancel(self, backend: Any) -> None:
        made = backend.create_task(new_task())
        backend.update_task(made, TaskChange(status=Status.CANCELLED))
        statuses = {t.status for t in backend.fetch_listing().tasks if t.uid == made.uid}
        assert statuses <= {Status.CANCELLED}
        assert not [t for t in backend.fetch_listing().tasks if t.status is Status.OPEN]

    def test_delete_and_gone(self, backend: Any) -> None:
        made = backend.create_task(new_task())
        backend.delete_task(made)
        assert made.uid not in by_uid(backend)
        with pytest.raises(NotFound):
            backend.update_task(made, TaskChange(due=date(2027, 1, 1)))
        with pytest.raises(NotFound):
            backend.delete_task(made)

    def test_many_contacts_have_distinct_addresses(self, backend: Any) -> None:
        ids = ["bob", "bob-2", "bob-22", "b\u00f6b", "x@y"]
        made = [backend.create_task(new_task(cid)) for cid in ids]
        assert len({m.href for m in made}) == len(ids)
        listed = by_uid(backend)
        assert {listed[m.uid].contact_id for m in made} == set(ids)

    def test_foreign_tasks_are_invisible_and_untouched(
        self, backend: Any, put_foreign: Callable[[str], Callable[[], bytes]]
    ) -> None:
        read_back = put_foreign("Keep in touch with Ann Lee")
        before = read_back()
        made = backend.create_task(new_task())
        backend.update_task(made, TaskChange(due=date(2027, 3, 3)))
        listing = backend.fetch_listing()
        assert [t.uid for t in listing.tasks] == [made.uid]
        assert read_back() == before

    def test_each_kind_of_task_keeps_its_own_marker_and_uid(self, backend: Any) -> None:
        # DESIGN rule 11: a birthday task is a kit task of its own kind. Its kind
        # travels in the marker value (task key); the backend must store and list it
        # back exactly, beside the same contact's keep-in-touch task.
        from kit_sync.occasions import BIRTHDAY, split_key, task_key

        key = task_key("ann-lee", BIRTHDAY)
        keep = backend.create_task(new_task("ann-lee", seed="k"))
        bday = backend.create_task(
            new_task(key, due=date(2027, 3, 2), seed="b", summary="Birthday: Ann Lee")
        )
        assert bday.uid != keep.uid and bday.href != keep.href
        listed = by_uid(backend)
        assert listed[bday.uid].contact_id == key
        assert split_key(listed[bday.uid].contact_id) == ("ann-lee", BIRTHDAY)
        assert listed[keep.uid].contact_id == "ann-lee"
        assert listed[bday.uid].due == date(2027, 3, 2)
        backend.update_task(
            listed[bday.uid],
            TaskChange(status=Status.COMPLETED, completed_at=datetime(2027, 3, 2, 9, tzinfo=UTC)),
        )
        after = backend.fetch_listing().tasks
        opens = {t.contact_id for t in after if t.status is Status.OPEN}
        assert "ann-lee" in opens
        assert [t.contact_id for t in after if t.status is Status.COMPLETED] == [key]
