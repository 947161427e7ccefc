"""EWS behaviours Microsoft does not document (issue 16), each reproduced by a mode of
the fake EWS endpoint, with kit-sync keeping its promises in it:

5. the completed copy of a regenerating task comes without kit-sync's named
   properties;
6. the server counts the regenerated due date in UTC, in the mailbox's zone, or in the
   request's TimeZoneContext;
8. the fake endpoint's own GetFolder answer follows the schema's element order.

docs/exchange.md lists each assumption and what the code does when it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from ews_server import EwsServer
from ews_server.soap import FOLDER_ELEMENT_ORDER
from ews_server.store import local, t
from ews_server.testing import PASSWORD, new_mailbox, second_client
from test_exchange import ANN, BOB, ExchangeWorld, assert_one_open_each, base_config

from kit_sync.model import Status

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ews() -> Iterator[EwsServer]:
    with EwsServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _friendly_modes(ews: EwsServer) -> Iterator[None]:
    yield
    ews.store.copy_named_properties = True
    ews.store.regenerate_in = "utc"
    ews.store.mailbox_zone.clear()


# --- 5. completed copies without named properties ------------------------------------------


def test_outlook_completion_without_marker_on_the_copy_is_still_a_touch(
    tmp_path: Path, ews: EwsServer
) -> None:
    ews.store.copy_named_properties = False
    world = ExchangeWorld(tmp_path, ews, base_config())
    world.sync()
    ann = world.the_open(ANN)
    world.at(datetime(2026, 12, 2, 17, 0, tzinfo=UTC))
    copy_ = ews.store.complete_like_outlook(ann.href, date(2026, 12, 2), world.tz)
    assert not copy_.ext  # the mode: the copy has none of kit-sync's properties
    result = world.sync()
    assert result.ok, result.failures
    assert (ANN, date(2026, 12, 2)) in world.touches()  # the touch is not missed
    master = assert_one_open_each(world, ANN, BOB)[ANN]
    assert master.href == ann.href
    assert master.due == date(2026, 12, 2) + timedelta(weeks=3)
    assert master.meta.anchor == date(2026, 12, 2)  # read as a completion, not a snooze
    assert not master.snoozed
    done = [x for x in world.tasks() if x.status is Status.COMPLETED]
    assert [(x.href, x.contact_id) for x in done] == [(copy_.id, ANN)]
    assert ews.store.item(copy_.id).ext == {}  # recognised, never written to
    assert world.sync().plan.actions == []


def test_server_completion_without_marker_gets_the_due_corrected(
    tmp_path: Path, ews: EwsServer
) -> None:
    """A phone completes at 08:30 in Auckland (still yesterday in UTC): the copy has
    no marker and the server counted from the UTC day. kit-sync sees the completion
    from the master and moves the due date to the user's day."""
    ews.store.copy_named_properties = False
    world = ExchangeWorld(tmp_path, ews, base_config("Pacific/Auckland"))
    world.sync()
    ann = world.the_open(ANN)
    world.at(datetime(2026, 12, 10, 8, 30, tzinfo=ZoneInfo("Pacific/Auckland")).astimezone(UTC))
    ews.store.complete_on_server(ann.href)
    assert world.item(ann).due == date(2026, 12, 30)  # from Dec 9, the UTC day
    result = world.sync()
    assert result.ok, result.failures
    assert (ANN, date(2026, 12, 10)) in world.touches()
    assert world.the_open(ANN).due == date(2026, 12, 31)


def test_an_unrelated_completed_task_is_not_taken_for_the_copy(
    tmp_path: Path, ews: EwsServer
) -> None:
    """A hand-made due date change plus someone's own completed task with another
    subject in the same sync: a snooze, no touch."""
    ews.store.copy_named_properties = False
    world = ExchangeWorld(tmp_path, ews, base_config())
    world.sync()
    ann = world.the_open(ANN)
    assert ann.due is not None
    snoozed = ann.due + timedelta(days=4)
    ews.store.edit(ann.href, DueDate=snoozed.isoformat())
    account = second_client(ews, world.email)
    from exchangelib import Task

    Task(folder=account.tasks, subject="Buy milk", status=Task.COMPLETED).save()
    result = world.sync()
    assert result.ok
    assert world.touches() == []
    assert world.the_open(ANN).due == snoozed


# --- 6. which day the server regenerates from ----------------------------------------------


@pytest.mark.parametrize("mode", ["utc", "mailbox", "context"])
def test_next_due_is_corrected_in_one_conditional_write_whatever_zone_the_server_counts_in(
    tmp_path: Path, ews: EwsServer, mode: str
) -> None:
    """08:30 on Dec 10 in Auckland is Dec 9 in UTC, Dec 9 in Los Angeles (the
    mailbox's zone here) and Dec 10 in Tokyo (the completing client's zone)."""
    world = ExchangeWorld(tmp_path, ews, base_config("Pacific/Auckland"))
    ews.store.regenerate_in = mode
    ews.store.mailbox_zone[world.email] = ZoneInfo("America/Los_Angeles")
    world.sync()
    ann = world.the_open(ANN)
    world.at(datetime(2026, 12, 10, 8, 30, tzinfo=ZoneInfo("Pacific/Auckland")).astimezone(UTC))
    from exchangelib import Task

    account = second_client(ews, world.email, zone="Asia/Tokyo")
    item = account.tasks.get(id=ann.href)
    item.status = Task.COMPLETED
    item.save(update_fields=["status", "percent_complete"])
    counted_from = {"utc": date(2026, 12, 9), "mailbox": date(2026, 12, 9)}
    assert world.item(ann).due == counted_from.get(mode, date(2026, 12, 10)) + timedelta(weeks=3)
    ews.reset_log()
    result = world.sync()
    assert result.ok, result.failures
    assert world.the_open(ANN).due == date(2026, 12, 31)
    assert (ANN, date(2026, 12, 10)) in world.touches()
    # The correction, the bookkeeping and the note in one UpdateItem with the change
    # key (NeverOverwrite): an edit made meanwhile is a conflict, never overwritten.
    assert ews.count("UpdateItem") == 1
    assert world.sync().plan.actions == []


def test_the_correction_does_not_overwrite_an_edit_made_meanwhile(
    tmp_path: Path, ews: EwsServer
) -> None:
    """The phone edits the regenerated task just before kit-sync's correction: the
    change key no longer matches (NeverOverwrite), kit-sync re-reads and re-plans,
    and both edits are there."""
    world = ExchangeWorld(tmp_path, ews, base_config("Pacific/Auckland"))
    world.sync()
    ann = world.the_open(ANN)
    world.at(datetime(2026, 12, 10, 8, 30, tzinfo=ZoneInfo("Pacific/Auckland")).astimezone(UTC))
    ews.store.complete_on_server(ann.href)

    def phone_edits_first(op: str) -> None:
        if op == "UpdateItem":
            ews.before = None
            ews.store.edit(ann.href, Sensitivity="Private")

    ews.before = phone_edits_first
    ews.reset_log()
    try:
        result = world.sync()
    finally:
        ews.before = None
    assert result.ok, result.failures
    assert ews.count("UpdateItem") == 2  # the refused one, then the re-planned one
    assert world.item(ann).text("Sensitivity") == "Private"
    assert world.the_open(ANN).due == date(2026, 12, 31)


# --- 8. the endpoint's own answers follow the schema --------------------------------------


GET_FOLDER = """<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <s:Header><t:RequestServerVersion Version="Exchange2016"/></s:Header>
  <s:Body><m:GetFolder>
    <m:FolderShape><t:BaseShape>AllProperties</t:BaseShape><t:AdditionalProperties>
      <t:FieldURI FieldURI="folder:DistinguishedFolderId"/>
      <t:FieldURI FieldURI="folder:ParentFolderId"/>
    </t:AdditionalProperties></m:FolderShape>
    <m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds>
  </m:GetFolder></s:Body>
</s:Envelope>"""


def test_getfolder_answer_has_the_schema_element_order(ews: EwsServer) -> None:
    """types.xsd: DistinguishedFolderId (BaseFolderType) comes before UnreadCount
    (FolderType's extension)."""
    import httpx
    from lxml import etree

    email = new_mailbox(ews)
    r = httpx.post(
        ews.url,
        content=GET_FOLDER.encode(),
        auth=(email, PASSWORD),
        headers={"Content-Type": "text/xml; charset=utf-8"},
    )
    assert r.status_code == 200, r.text
    folder = etree.fromstring(r.content).find(f".//{t('Folder')}")
    assert folder is not None, r.text
    names = [local(child.tag) for child in folder]
    assert "DistinguishedFolderId" in names and "UnreadCount" in names, names
    positions = [FOLDER_ELEMENT_ORDER.index(n) for n in names]
    assert positions == sorted(positions), names
