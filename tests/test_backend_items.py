"""The pure item conversions of the network backends (no server): what each
backend package's `items` module promises on its own."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from kit_sync.model import AnchorKind, ItemProblem, KitMeta, KitTask, Status, make_uid

META = KitMeta("ann", date(2026, 3, 1), AnchorKind.TOUCH, "2 weeks", date(2026, 3, 15), None, "f1")


def test_caldav_file_names_are_plain_ascii() -> None:
    from kit_sync.backends.caldav.items import _file_name

    assert _file_name("kit-ann-1@kit-sync") == "kit-ann-1_kit-sync.ics"
    assert _file_name("ünï cøde/..%") == "_n__c_de_.._.ics"


def test_caldav_one_spelling_per_href_and_only_strong_etags() -> None:
    from kit_sync.backends.caldav.items import _key, _strong

    assert _key("/cal/a%40b.ics") == _key("http://h/cal/a@b.ics") == "/cal/a@b.ics"
    assert _strong('W/"1"') is None and _strong(None) is None and _strong('"1"') == '"1"'


@pytest.mark.parametrize(
    "completed", [None, date(2026, 3, 2), datetime(2026, 3, 2, 9, 30, tzinfo=UTC)]
)
def test_caldav_cached_task_reads_back_as_it_was(completed: datetime | date | None) -> None:
    from kit_sync.backends.caldav.items import _info_json, _Item, _item_from_row

    task = KitTask(
        uid=make_uid("ann", "s"),
        href="/cal/x.ics",
        etag='"e1"',
        status=Status.COMPLETED if completed else Status.OPEN,
        due=date(2026, 3, 15),
        meta=META,
        summary="Keep in touch with Ann",
        completed=completed,
        recurring=False,
    )
    item = _Item(task.href, task.etag, task=task)
    back = _item_from_row(task.href, task.etag, item.kind, _info_json(item))
    assert back.task == task and back.kind == "task"


def test_caldav_cached_problem_and_foreign_items_read_back() -> None:
    from kit_sync.backends.caldav.items import _info_json, _Item, _item_from_row

    problem = _Item("/c/p.ics", '"2"', problem=ItemProblem("/c/p.ics", "bad DUE", "bob"))
    assert _item_from_row("/c/p.ics", '"2"', "problem", _info_json(problem)).problem == (
        problem.problem
    )
    foreign = _Item("/c/f.ics", '"3"')
    assert _info_json(foreign) is None
    assert _item_from_row("/c/f.ics", '"3"', "foreign", None).kind == "foreign"


def test_exchange_bookkeeping_reads_back_and_survives_damage() -> None:
    from kit_sync.backends.exchange.items import meta_from_json, meta_to_json

    assert meta_from_json("ann", meta_to_json(META)) == META
    assert meta_from_json("ann", "{not json") == KitMeta("ann")
    assert meta_from_json("ann", None) == KitMeta("ann")


def test_exchange_cache_entry_reads_back() -> None:
    from kit_sync.backends.exchange.items import _Entry

    entry = _Entry(
        "AAMk1", "ck1", "ann", "u@kit-sync", Status.OPEN, date(2026, 3, 15),
        None, "Keep in touch with Ann", True,
        datetime(2026, 3, 15, 9, tzinfo=UTC), META, has_done=True,
    )  # fmt: skip
    assert _Entry.from_json("AAMk1", json.loads(json.dumps(entry.to_json()))) == entry


def test_exchange_completed_copies_get_their_own_uid_and_the_recurring_master_keeps_it() -> None:
    from kit_sync.backends.exchange.items import _assign_uids, _Entry

    def entry(item_id: str, status: Status, recurring: bool) -> _Entry:
        return _Entry(item_id, "ck", "ann", "u@kit-sync", status, None, None, "", recurring,
                      None, KitMeta("ann"))  # fmt: skip

    uids = _assign_uids(
        [
            entry("copy", Status.OPEN, False),
            entry("master", Status.OPEN, True),
            entry("done", Status.COMPLETED, False),
        ]
    )
    assert uids["master"] == "u@kit-sync"
    assert len({uids["copy"], uids["done"], uids["master"]}) == 3


def test_exchange_completion_stamp_only_for_the_same_due_date() -> None:
    from kit_sync.backends.exchange.items import _done_stamp

    raw = json.dumps({"due": "2026-03-15", "at": "2026-03-14T10:00:00+00:00"})
    assert _done_stamp(raw, date(2026, 3, 15)) == datetime(2026, 3, 14, 10, tzinfo=UTC)
    assert _done_stamp(raw, date(2026, 3, 29)) is None
    assert _done_stamp("garbage", date(2026, 3, 15)) is None
