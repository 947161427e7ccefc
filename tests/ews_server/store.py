"""The in-memory mailboxes behind the fake EWS endpoint.

Items are kept as the EWS XML elements clients sent (one element per property), so
what a client wrote comes back exactly as written and a foreign item's bytes can be
compared before and after a sync. Everything the real server computes (ids, change
keys, IsComplete, IsRecurring, ChangeCount, the regenerated due date) is computed
here, following Microsoft's EWS reference:

- every write gives the item a new ChangeKey;
- completing a task with a regeneration pattern (UpdateItem setting Status to
  Completed) turns the request's item into the next occurrence and creates a new,
  completed, non-recurring copy, whose ItemId the UpdateItem response returns; the
  server stamps CompleteDate itself (a client-set one is ignored) and computes the
  next due date from the current date in UTC;
- Outlook completes a regenerating task the same way but counts in the user's zone
  (`complete_like_outlook`).
"""

from __future__ import annotations

import base64
import copy
import itertools
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from lxml import etree

T = "http://schemas.microsoft.com/exchange/services/2006/types"
PUBLIC_STRINGS = "00020329-0000-0000-c000-000000000046"
DISTINGUISHED_SETS = {
    "PublicStrings": PUBLIC_STRINGS,
    "Common": "00062008-0000-0000-c000-000000000046",
    "Task": "00062003-0000-0000-c000-000000000046",
    "Appointment": "00062002-0000-0000-c000-000000000046",
    "Address": "00062004-0000-0000-c000-000000000046",
    "InternetHeaders": "00020386-0000-0000-c000-000000000046",
}


def t(name: str) -> str:
    return f"{{{T}}}{name}"


def local(tag: str) -> str:
    return etree.QName(tag).localname


# Element order of ItemType then TaskType in the EWS schema (types.xsd): responses
# list the properties in this order.
ITEM_ORDER = [
    "MimeContent", "ItemId", "ParentFolderId", "ItemClass", "Subject", "Sensitivity", "Body",
    "Attachments", "DateTimeReceived", "Size", "Categories", "Importance", "InReplyTo",
    "IsSubmitted", "IsDraft", "IsFromMe", "IsResend", "IsUnmodified", "InternetMessageHeaders",
    "DateTimeSent", "DateTimeCreated", "ResponseObjects", "ReminderDueBy", "ReminderIsSet",
    "ReminderNextTime", "ReminderMinutesBeforeStart", "DisplayCc", "DisplayTo", "HasAttachments",
    "ExtendedProperty", "Culture", "EffectiveRights", "LastModifiedName", "LastModifiedTime",
    "IsAssociated", "WebClientReadFormQueryString", "WebClientEditFormQueryString",
    "ConversationId", "UniqueBody", "TextBody",
]  # fmt: skip
TASK_ORDER = [
    "ActualWork", "AssignedTime", "BillingInformation", "ChangeCount", "Companies",
    "CompleteDate", "Contacts", "DelegationState", "Delegator", "DueDate",
    "IsAssignmentEditable", "IsComplete", "IsRecurring", "IsTeamTask", "Mileage", "Owner",
    "PercentComplete", "Recurrence", "StartDate", "Status", "StatusDescription", "TotalWork",
]  # fmt: skip
# MessageType and CalendarItemType after ItemType (the touch sources read them).
MESSAGE_ORDER = [
    "Sender", "ToRecipients", "CcRecipients", "BccRecipients", "IsReadReceiptRequested",
    "IsDeliveryReceiptRequested", "ConversationIndex", "ConversationTopic", "From",
    "InternetMessageId", "IsRead",
]  # fmt: skip
CALENDAR_ORDER = [
    "UID", "RecurrenceId", "DateTimeStamp", "Start", "End", "OriginalStart", "IsAllDayEvent",
    "LegacyFreeBusyStatus", "Location", "When", "IsMeeting", "IsCancelled",
    "CalendarItemType", "MyResponseType", "Organizer", "RequiredAttendees",
    "OptionalAttendees", "Resources",
]  # fmt: skip
ORDER = {name: i for i, name in enumerate(ITEM_ORDER + TASK_ORDER + MESSAGE_ORDER + CALENDAR_ORDER)}
#: Properties only the server sets; a client's SetItemField on them is refused.
READ_ONLY = {
    "ItemId", "ParentFolderId", "ItemClass", "DateTimeReceived", "Size", "DateTimeCreated",
    "LastModifiedTime", "HasAttachments", "IsComplete", "IsRecurring", "ChangeCount",
    "CompleteDate", "StatusDescription", "LastModifiedName", "IsAssignmentEditable",
    "DelegationState", "Delegator", "Owner", "IsTeamTask", "AssignedTime", "EffectiveRights",
    "TextBody", "IsAssociated", "ConversationId",
}  # fmt: skip
#: What FindItem and SyncFolderItems cannot return (EWS reference, SyncFolderItems
#: remarks: "it cannot return properties like Body or Attachments").
NOT_IN_VIEWS = {
    "Body", "Attachments", "MimeContent", "UniqueBody",
    # Recipient and attendee lists: FindItem/SyncFolderItems refuse them (GetItem only).
    "ToRecipients", "CcRecipients", "BccRecipients", "RequiredAttendees", "OptionalAttendees",
    "Resources",
}  # fmt: skip

STATUS_TEXT = {
    "NotStarted": "Not Started",
    "InProgress": "In Progress",
    "Completed": "Completed",
    "WaitingOnOthers": "Waiting on someone else",
    "Deferred": "Deferred",
}


class EwsError(Exception):
    """An error a response message carries (ResponseClass="Error")."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


ExtKey = tuple[str, str, str]  # (property set guid or "tag", name or id, type)


def ext_key(uri: etree._Element) -> ExtKey:
    """Identity of an ExtendedFieldURI: a distinguished set name and its GUID are the same set."""
    a = uri.attrib
    ptype = a.get("PropertyType", "")
    if "PropertyTag" in a:
        return ("tag", str(int(a["PropertyTag"], 0)), ptype)
    set_id = a.get("PropertySetId", "").lower()
    if "DistinguishedPropertySetId" in a:
        set_id = DISTINGUISHED_SETS.get(
            a["DistinguishedPropertySetId"], a["DistinguishedPropertySetId"]
        )
    name = a.get("PropertyName")
    if name is None:
        name = "#" + str(int(a.get("PropertyId", "0"), 0))
    return (set_id, name, ptype)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(text: str) -> datetime:
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def day_of(text: str) -> date:
    """The date of a DueDate/StartDate dateTime. This server runs in UTC."""
    return parse_datetime(text).astimezone(UTC).date()


def elem(name: str, text: str | None = None, **attrs: str) -> etree._Element:
    e = etree.Element(t(name), attrs)
    if text is not None:
        e.text = text
    return e


@dataclass
class Folder:
    id: str
    changekey: str
    mailbox: str
    parent_id: str | None
    name: str
    folder_class: str | None
    distinguished: str | None = None
    # (seq, item id, seq the item was created at) for SyncFolderItems Delete changes
    tombstones: list[tuple[int, str, int]] = field(default_factory=list)


@dataclass
class Item:
    id: str
    changekey: str
    folder_id: str
    tag: str
    item_class: str
    props: dict[str, etree._Element]
    ext: dict[ExtKey, etree._Element]
    created: datetime
    modified: datetime
    created_seq: int
    seq: int
    change_count: int = 1

    # --- task helpers ---------------------------------------------------------------

    def text(self, name: str) -> str | None:
        e = self.props.get(name)
        return None if e is None else (e.text or "")

    @property
    def status(self) -> str:
        return self.text("Status") or "NotStarted"

    @property
    def due(self) -> date | None:
        text = self.text("DueDate")
        return day_of(text) if text else None

    def set_text(self, name: str, value: str | None) -> None:
        if value is None:
            self.props.pop(name, None)
        else:
            self.props[name] = elem(name, value)

    def set_due(self, day: date) -> None:
        self.set_text("DueDate", f"{day.isoformat()}T00:00:00Z")

    def ext_value(self, name: str) -> str | None:
        for (_, n, _), e in self.ext.items():
            if n == name:
                v = e.find(t("Value"))
                return None if v is None else (v.text or "")
        return None

    def regeneration(self) -> tuple[str, int] | None:
        """(pattern element name, interval) of the task's recurrence, if any."""
        rec = self.props.get("Recurrence")
        if rec is None or len(rec) == 0:
            return None
        pattern = rec[0]
        interval = pattern.find(t("Interval"))
        return local(pattern.tag), int(interval.text) if interval is not None else 1


def advance(day: date, pattern: str, interval: int) -> date:
    """The next occurrence `interval` units of `pattern` after `day`."""
    if pattern in ("DailyRegeneration", "DailyRecurrence"):
        return day + timedelta(days=interval)
    if pattern in ("WeeklyRegeneration", "WeeklyRecurrence"):
        return day + timedelta(weeks=interval)
    if pattern in ("MonthlyRegeneration", "AbsoluteMonthlyRecurrence", "RelativeMonthlyRecurrence"):
        return day + relativedelta(months=interval)
    return day + relativedelta(years=interval)


class Store:
    """All mailboxes of the fake server. Every public method takes the lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.mailboxes: dict[str, dict[str, str]] = {}  # email -> distinguished name -> folder id
        self.folders: dict[str, Folder] = {}
        self.items: dict[str, Item] = {}
        self._seq = itertools.count(1)
        self.last_seq = 0
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.corrupt: set[str] = set()  # item ids GetItem answers with ErrorCorruptData
        #: CreateItem refuses an item with this subject: (response code, message text)
        self.create_refusals: dict[str, tuple[str, str]] = {}
        #: after a refused item, the rest of that CreateItem gets ErrorBatchProcessingStopped
        self.stop_batch_on_error = False
        # Behaviours Microsoft does not document, as modes (issue 16):
        #: the completed copy of a regenerating task keeps the named (extended)
        #: properties of the task; False: the copy comes without them
        self.copy_named_properties = True
        #: the day a completion through EWS/ActiveSync regenerates from, counted in
        #: "utc", the mailbox's zone ("mailbox", see mailbox_zone) or the request's
        #: TimeZoneContext ("context")
        self.regenerate_in = "utc"
        self.mailbox_zone: dict[str, ZoneInfo] = {}

    # --- ids ------------------------------------------------------------------------

    @staticmethod
    def new_id(kind: bytes) -> str:
        # Shaped like real ids (base64 of an entry id), opaque to clients.
        return base64.b64encode(b"\x00\x00\x00\x00" + kind + uuid.uuid4().bytes * 3).decode()

    @staticmethod
    def new_changekey() -> str:
        return base64.b64encode(b"\x16\x00\x00\x00" + uuid.uuid4().bytes).decode()

    def next_seq(self) -> int:
        self.last_seq = next(self._seq)
        return self.last_seq

    def now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    # --- mailboxes and folders ---------------------------------------------------------

    def add_mailbox(self, email: str) -> None:
        with self.lock:
            email = email.lower()
            if email in self.mailboxes:
                return
            names: dict[str, str] = {}
            self.mailboxes[email] = names

            def make(name: str, display: str, parent: str | None, cls: str | None) -> str:
                f = Folder(
                    self.new_id(b"F"), self.new_changekey(), email, parent, display, cls, name
                )
                self.folders[f.id] = f
                names[name] = f.id
                return f.id

            root = make("root", "", None, None)
            top = make("msgfolderroot", "Top of Information Store", root, "IPF.Note")
            make("inbox", "Inbox", top, "IPF.Note")
            make("sentitems", "Sent Items", top, "IPF.Note")
            make("calendar", "Calendar", top, "IPF.Appointment")
            make("contacts", "Contacts", top, "IPF.Contact")
            make("tasks", "Tasks", top, "IPF.Task")
            make("deleteditems", "Deleted Items", top, "IPF.Note")

    def distinguished(self, email: str, name: str) -> Folder:
        ids = self.mailboxes.get(email.lower())
        if ids is None:
            raise EwsError("ErrorNonExistentMailbox", f"No mailbox with such guid or email {email}")
        if name not in ids:
            raise EwsError(
                "ErrorFolderNotFound", "The specified folder could not be found in the store."
            )
        return self.folders[ids[name]]

    def folder(self, folder_id: str) -> Folder:
        f = self.folders.get(folder_id)
        if f is None:
            raise EwsError(
                "ErrorFolderNotFound", "The specified folder could not be found in the store."
            )
        return f

    def children(self, folder: Folder, deep: bool) -> list[Folder]:
        out = []
        for f in self.folders.values():
            if f.parent_id == folder.id:
                out.append(f)
                if deep:
                    out.extend(self.children(f, True))
        return out

    def create_folder(self, parent: Folder, name: str, folder_class: str | None) -> Folder:
        with self.lock:
            for f in self.children(parent, False):
                if f.name.lower() == name.lower():
                    raise EwsError(
                        "ErrorFolderExists", "A folder with the specified name already exists."
                    )
            f = Folder(
                self.new_id(b"F"),
                self.new_changekey(),
                parent.mailbox,
                parent.id,
                name,
                folder_class,
            )
            self.folders[f.id] = f
            return f

    def items_in(self, folder: Folder) -> list[Item]:
        return [i for i in self.items.values() if i.folder_id == folder.id]

    # --- items ---------------------------------------------------------------------------

    def item(self, item_id: str) -> Item:
        i = self.items.get(item_id)
        if i is None:
            raise EwsError("ErrorItemNotFound", "The specified object was not found in the store.")
        return i

    def create_item(self, folder: Folder, element: etree._Element) -> Item:
        with self.lock:
            tag = local(element.tag)
            props: dict[str, etree._Element] = {}
            ext: dict[ExtKey, etree._Element] = {}
            for child in element:
                name = local(child.tag)
                if name == "ExtendedProperty":
                    ext[ext_key(child.find(t("ExtendedFieldURI")))] = copy.deepcopy(child)
                elif name in READ_ONLY:
                    continue  # the server sets these (EWS ignores a client-set CompleteDate)
                else:
                    props[name] = copy.deepcopy(child)
            now = self.now()
            seq = self.next_seq()
            item_class = props.pop("ItemClass", None)
            item = Item(
                self.new_id(b"I"),
                self.new_changekey(),
                folder.id,
                tag,
                (item_class.text if item_class is not None else None)
                or ("IPM.Task" if tag == "Task" else "IPM.Note"),
                props,
                ext,
                now,
                now,
                seq,
                seq,
            )
            if tag == "Task":
                self._normalise_task(item)
                if item.status == "Completed":
                    self._stamp_completed(item, now)
            self.items[item.id] = item
            return item

    def touch(self, item: Item) -> None:
        """Record a write: new change key, new sync position."""
        item.changekey = self.new_changekey()
        item.seq = self.next_seq()
        item.modified = self.now()
        item.change_count += 1

    def _normalise_task(self, item: Item) -> None:
        if "Status" not in item.props:
            item.set_text("Status", "NotStarted")
        if "PercentComplete" not in item.props:
            item.set_text("PercentComplete", "0")
        due = item.text("DueDate")
        if due:
            item.set_due(day_of(due))

    def _stamp_completed(self, item: Item, stamp: datetime) -> None:
        item.set_text("Status", "Completed")
        item.set_text("PercentComplete", "100")
        item.set_text("CompleteDate", iso(stamp))

    def regeneration_day(self, item: Item, context_zone: str | None = None) -> date:
        """The day a completion made now regenerates from, as the mode says."""
        now = self.now()
        zone: Any = UTC
        if self.regenerate_in == "mailbox":
            mailbox = self.folder(item.folder_id).mailbox
            zone = self.mailbox_zone.get(mailbox, UTC)
        elif self.regenerate_in == "context" and context_zone:
            from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP

            zone = ZoneInfo(MS_TIMEZONE_TO_IANA_MAP.get(context_zone, context_zone))
        return now.astimezone(zone).date()

    def update_item(
        self,
        item: Item,
        changes: list[tuple[str, etree._Element, etree._Element | None]],
        context_zone: str | None = None,
    ) -> Item:
        """Apply (kind, field uri element, value element) changes; returns the item whose
        id the response carries (the completed copy when a regenerating task completes)."""
        with self.lock:
            completing = False
            reopening = False
            for kind, uri, value in changes:
                if local(uri.tag) == "ExtendedFieldURI":
                    key = ext_key(uri)
                    if kind == "delete":
                        item.ext.pop(key, None)
                    else:
                        assert value is not None
                        prop = value.find(t("ExtendedProperty"))
                        if prop is None:
                            raise EwsError("ErrorInvalidPropertySet", "missing ExtendedProperty")
                        item.ext[key] = copy.deepcopy(prop)
                    continue
                name = uri.get("FieldURI", "").partition(":")[2]
                if name in READ_ONLY:
                    if name == "CompleteDate":
                        continue  # accepted and ignored, as on Exchange
                    raise EwsError("ErrorInvalidPropertySet", f"The property {name} is read-only.")
                if kind == "delete":
                    item.props.pop(name, None)
                    continue
                assert value is not None
                new = value.find(t(name))
                if new is None:
                    raise EwsError(
                        "ErrorInvalidPropertyRequest", f"SetItemField has no {name} element"
                    )
                if kind == "append" and name in item.props:
                    item.props[name].extend(copy.deepcopy(list(new)))
                else:
                    item.props[name] = copy.deepcopy(new)
                if name == "Status":
                    completing = new.text == "Completed"
                    reopening = new.text != "Completed"
            if item.tag == "Task":
                self._normalise_task(item)
            result = item
            was_complete = item.text("CompleteDate") is not None
            if completing and not was_complete:
                result = self.complete(
                    item, self.now(), regenerate_from=self.regeneration_day(item, context_zone)
                )
            elif reopening and was_complete:
                item.props.pop("CompleteDate", None)
                if item.text("PercentComplete") == "100":
                    item.set_text("PercentComplete", "0")
            self.touch(item)
            return result

    def complete(self, item: Item, stamp: datetime, *, regenerate_from: date) -> Item:
        """Complete `item`. A recurring task stays open as the next occurrence, due
        `regenerate_from` + its interval, and a completed one-off copy is created and
        returned; a one-off task is itself completed and returned."""
        regen = item.regeneration()
        number = (
            item.props["Recurrence"].find(f"{t('NumberedRecurrence')}/{t('NumberOfOccurrences')}")
            if regen
            else None
        )
        if regen is None or (number is not None and int(number.text or "1") <= 1):
            # A one-off task, or the last occurrence: the item itself is completed
            # and the response carries its own id.
            item.props.pop("Recurrence", None)
            self._stamp_completed(item, stamp)
            return item
        pattern, interval = regen
        copy_ = Item(
            self.new_id(b"I"),
            self.new_changekey(),
            item.folder_id,
            item.tag,
            item.item_class,
            {k: copy.deepcopy(v) for k, v in item.props.items() if k != "Recurrence"},
            {k: copy.deepcopy(v) for k, v in item.ext.items()}
            if self.copy_named_properties
            else {},
            stamp,
            stamp,
            0,
            0,
        )
        self._stamp_completed(copy_, stamp)
        copy_.props.pop("ReminderIsSet", None)
        copy_.props.pop("ReminderDueBy", None)
        seq = self.next_seq()
        copy_.created_seq = copy_.seq = seq
        self.items[copy_.id] = copy_
        # The request's item becomes the next occurrence.
        old_due = item.due
        if pattern.endswith("Regeneration"):
            new_due = advance(regenerate_from, pattern, interval)
        else:
            new_due = advance(old_due or regenerate_from, pattern, interval)
        item.set_due(new_due)
        item.set_text("Status", "NotStarted")
        item.set_text("PercentComplete", "0")
        item.props.pop("CompleteDate", None)
        if item.text("ReminderDueBy") and old_due is not None:
            reminder = parse_datetime(item.text("ReminderDueBy") or "")
            item.set_text("ReminderDueBy", iso(reminder + (new_due - old_due)))
        rec = item.props["Recurrence"]
        boundary = rec[1] if len(rec) > 1 else None
        if boundary is not None:
            start = boundary.find(t("StartDate"))
            if start is not None:
                start.text = new_due.isoformat()
            left = boundary.find(t("NumberOfOccurrences"))
            if left is not None and left.text:
                left.text = str(int(left.text) - 1)
        return copy_

    def delete_item(self, item: Item, delete_type: str) -> None:
        with self.lock:
            folder = self.folder(item.folder_id)
            del self.items[item.id]
            folder.tombstones.append((self.next_seq(), item.id, item.created_seq))
            if delete_type == "MoveToDeletedItems" and folder.distinguished != "deleteditems":
                trash = self.distinguished(folder.mailbox, "deleteditems")
                moved = copy.copy(item)
                moved.id = self.new_id(b"I")
                moved.folder_id = trash.id
                moved.created_seq = moved.seq = self.next_seq()
                self.items[moved.id] = moved

    # --- sync --------------------------------------------------------------------------

    def changes_since(
        self, folder: Folder, since: int, ignore: set[str]
    ) -> list[tuple[int, str, Item | str]]:
        """(seq, kind, item or deleted id) for every change after `since`, oldest first."""
        out: list[tuple[int, str, Item | str]] = []
        for i in self.items_in(folder):
            if i.seq > since and i.id not in ignore:
                out.append((i.seq, "Create" if i.created_seq > since else "Update", i))
        for seq, item_id, created in folder.tombstones:
            if seq > since and created <= since and item_id not in ignore:
                out.append((seq, "Delete", item_id))
        out.sort(key=lambda c: c[0])
        return out

    # --- test hooks: what Outlook, a phone or a user does ------------------------------

    def add_message(
        self,
        email: str,
        sent: datetime,
        *,
        to: tuple[str, ...] = (),
        cc: tuple[str, ...] = (),
        bcc: tuple[str, ...] = (),
        sender: str | None = None,
        folder: str = "sentitems",
        message_id: str | None = None,
        subject: str = "hello",
    ) -> Item:
        """A message in a mailbox folder, as Outlook leaves a sent one in Sent Items."""

        def mailboxes(name: str, addresses: tuple[str, ...]) -> etree._Element:
            e = elem(name)
            for a in addresses:
                box = etree.SubElement(e, t("Mailbox"))
                box.append(elem("Name", a.split("@")[0]))
                box.append(elem("EmailAddress", a))
                box.append(elem("RoutingType", "SMTP"))
            return e

        m = elem("Message")
        m.append(elem("ItemClass", "IPM.Note"))
        m.append(elem("Subject", subject))
        m.append(elem("DateTimeSent", iso(sent.astimezone(UTC))))
        for name, addresses in (("ToRecipients", to), ("CcRecipients", cc), ("BccRecipients", bcc)):
            if addresses:
                m.append(mailboxes(name, addresses))
        frm = elem("From")
        frm.append(mailboxes("x", (sender or email,))[0])
        m.append(frm)
        m.append(elem("InternetMessageId", message_id or f"<{uuid.uuid4().hex}@example.com>"))
        with self.lock:
            return self.create_item(self.distinguished(email, folder), m)

    def add_meeting(
        self,
        email: str,
        start: datetime,
        end: datetime,
        *,
        organizer: str,
        attendees: dict[str, str] | None = None,
        cancelled: bool = False,
        my_response: str = "Accept",
        uid: str | None = None,
    ) -> Item:
        """A calendar item (one occurrence; the real server expands recurring ones in a
        CalendarView). attendees: address -> ResponseType (Accept, Decline, ...)."""
        c = elem("CalendarItem")
        c.append(elem("ItemClass", "IPM.Appointment"))
        c.append(elem("Subject", "Meeting"))
        c.append(elem("UID", uid or str(uuid.uuid4())))
        c.append(elem("Start", iso(start.astimezone(UTC))))
        c.append(elem("End", iso(end.astimezone(UTC))))
        c.append(elem("IsMeeting", "true"))
        c.append(elem("IsCancelled", "true" if cancelled else "false"))
        c.append(elem("CalendarItemType", "Single"))
        c.append(elem("MyResponseType", my_response))
        org = elem("Organizer")
        box = etree.SubElement(org, t("Mailbox"))
        box.append(elem("EmailAddress", organizer))
        c.append(org)
        if attendees:
            req = elem("RequiredAttendees")
            for address, response in attendees.items():
                a = etree.SubElement(req, t("Attendee"))
                box = etree.SubElement(a, t("Mailbox"))
                box.append(elem("EmailAddress", address))
                a.append(elem("ResponseType", response))
            c.append(req)
        with self.lock:
            return self.create_item(self.distinguished(email, "calendar"), c)

    def all_tasks(self, folder: Folder) -> Iterator[Item]:
        yield from (i for i in self.items_in(folder) if i.tag == "Task")

    def complete_like_outlook(self, item_id: str, day: date, tz: ZoneInfo) -> Item:
        """Outlook marks a task complete on `day` (the user's local day): a regenerating
        task's next occurrence is counted from that local day, and Date Completed is
        that day (local midnight, stored in UTC)."""
        with self.lock:
            item = self.item(item_id)
            stamp = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
            copy_ = self.complete(item, stamp, regenerate_from=day)
            self.touch(item)
            return copy_

    def complete_on_server(self, item_id: str) -> Item:
        """A phone (Exchange ActiveSync) or an EWS client completes the task: the
        server regenerates it counting from today in UTC."""
        with self.lock:
            item = self.item(item_id)
            now = self.now()
            copy_ = self.complete(item, now, regenerate_from=self.regeneration_day(item))
            self.touch(item)
            return copy_

    def edit(self, item_id: str, **props: str | None) -> Item:
        """A user edits properties by hand (Subject="...", DueDate="2026-01-02", ...)."""
        with self.lock:
            item = self.item(item_id)
            for name, value in props.items():
                if name == "DueDate" and value is not None:
                    item.set_due(date.fromisoformat(value))
                else:
                    item.set_text(name, value)
            self.touch(item)
            return item

    def serialise(self, item: Item) -> bytes:
        """Canonical bytes of everything stored on an item (to prove it is untouched)."""
        root = etree.Element(t(item.tag), Id=item.id, ChangeKey=item.changekey)
        for name in sorted(item.props):
            root.append(copy.deepcopy(item.props[name]))
        for key in sorted(item.ext):
            root.append(copy.deepcopy(item.ext[key]))
        return bytes(etree.tostring(root, encoding="utf-8"))
