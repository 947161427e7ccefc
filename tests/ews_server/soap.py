"""EWS SOAP operations over the in-memory store.

Request and response shapes follow Microsoft's EWS reference (the operation pages
for GetFolder, FindFolder, CreateFolder, FindItem, GetItem, CreateItem, UpdateItem,
DeleteItem and SyncFolderItems): one `<m:XResponseMessage ResponseClass=...>` per
requested object, `ResponseCode` `NoError` or an error code with `MessageText`, and
SOAP faults for request-level errors such as ErrorServerBusy.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

from .store import (
    NOT_IN_VIEWS,
    ORDER,
    STATUS_TEXT,
    EwsError,
    ExtKey,
    Folder,
    Item,
    Store,
    elem,
    ext_key,
    iso,
    local,
    parse_datetime,
    t,
)

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
NSMAP = {"s": S, "m": M, "t": T}


FOLDER_CLASSES = {
    "TasksFolder": "IPF.Task",
    "CalendarFolder": "IPF.Appointment",
    "ContactsFolder": "IPF.Contact",
}


def m(name: str) -> str:
    return f"{{{M}}}{name}"


class SoapFault(Exception):
    def __init__(self, code: str, text: str, values: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text
        self.values = values or {}


#: The element order of a folder in a response (types.xsd: BaseFolderType, then
#: FolderType's extension). A schema-validating client rejects any other order.
FOLDER_ELEMENT_ORDER = (
    "FolderId",
    "ParentFolderId",
    "FolderClass",
    "DisplayName",
    "TotalCount",
    "ChildFolderCount",
    "ExtendedProperty",
    "ManagedFolderInformation",
    "EffectiveRights",
    "DistinguishedFolderId",
    "PolicyTag",
    "ArchiveTag",
    "ReplicaList",
    "PermissionSet",
    "UnreadCount",
)


@dataclass
class Caller:
    user: str  # who authenticated
    mailbox: str  # whose mailbox the request acts on (impersonated or own)
    delegated: set[str] = field(default_factory=set)  # other mailboxes the user may open
    #: the request's TimeZoneContext (TimeZoneDefinition Id, a Windows zone name)
    zone: str | None = None


@dataclass
class Shape:
    base: str
    fields: set[str]
    ext: set[ExtKey]
    ext_elems: dict[ExtKey, etree._Element]


def envelope(body_child: etree._Element) -> bytes:
    env = etree.Element(f"{{{S}}}Envelope", nsmap={"s": S})
    header = etree.SubElement(env, f"{{{S}}}Header")
    etree.SubElement(
        header,
        t("ServerVersionInfo"),
        MajorVersion="15",
        MinorVersion="1",
        MajorBuildNumber="2507",
        MinorBuildNumber="6",
        Version="Exchange2016",
        nsmap={"t": T},
    )
    body = etree.SubElement(env, f"{{{S}}}Body")
    body.append(body_child)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def fault(code: str, text: str, values: dict[str, str] | None = None) -> bytes:
    env = etree.Element(f"{{{S}}}Envelope", nsmap={"s": S})
    body = etree.SubElement(env, f"{{{S}}}Body")
    f = etree.SubElement(body, f"{{{S}}}Fault")
    fc = etree.SubElement(f, "faultcode", nsmap={"a": T})
    fc.text = f"a:{code}"
    fs = etree.SubElement(f, "faultstring")
    fs.set("{http://www.w3.org/XML/1998/namespace}lang", "en-US")
    fs.text = text
    detail = etree.SubElement(f, "detail")
    etree.SubElement(detail, f"{{{E}}}ResponseCode", nsmap={"e": E}).text = code
    etree.SubElement(detail, f"{{{E}}}Message", nsmap={"e": E}).text = text
    if values:
        mx = etree.SubElement(detail, t("MessageXml"), nsmap={"t": T})
        for name, value in values.items():
            etree.SubElement(mx, t("Value"), Name=name).text = value
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def response_message(
    op: str, error: EwsError | None = None, *, warning: bool = False
) -> etree._Element:
    """A response message; with `warning`, the error is a Warning (an item the server
    did not process because an earlier one in the batch failed)."""
    kind = ("Warning" if warning else "Error") if error else "Success"
    msg = etree.Element(m(f"{op}ResponseMessage"), ResponseClass=kind)
    if error is not None:
        etree.SubElement(msg, m("MessageText")).text = error.text
        etree.SubElement(msg, m("ResponseCode")).text = error.code
        etree.SubElement(msg, m("DescriptiveLinkKey")).text = "0"
        if op == "SyncFolderItems":
            # The response message type has these even on errors (messages.xsd).
            etree.SubElement(msg, m("SyncState"))
            etree.SubElement(msg, m("IncludesLastItemInRange")).text = "true"
    else:
        etree.SubElement(msg, m("ResponseCode")).text = "NoError"
    return msg


class Operations:
    """One method per EWS operation: (request element, caller) -> response element."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def dispatch(self, op: str) -> Callable[[etree._Element, Caller], etree._Element]:
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise SoapFault("ErrorInvalidRequest", f"The request is not supported: {op}")
        result: Callable[[etree._Element, Caller], etree._Element] = handler
        return result

    # --- addressing and permissions ------------------------------------------------------

    def _check_access(self, caller: Caller, mailbox: str) -> None:
        if mailbox == caller.mailbox or mailbox in caller.delegated:
            return
        raise EwsError("ErrorAccessDenied", "Access is denied. Check credentials and try again.")

    def resolve_folder(self, ref: etree._Element, caller: Caller) -> Folder:
        name = local(ref.tag)
        if name == "DistinguishedFolderId":
            mbox = ref.find(f"{t('Mailbox')}/{t('EmailAddress')}")
            email = mbox.text.lower() if mbox is not None and mbox.text else caller.mailbox
            self._check_access(caller, email)
            return self.store.distinguished(email, ref.get("Id", ""))
        if name == "FolderId":
            f = self.store.folder(ref.get("Id", ""))
            self._check_access(caller, f.mailbox)
            return f
        raise EwsError("ErrorInvalidIdMalformed", f"Unsupported folder id element {name}")

    def resolve_item(self, ref: etree._Element, caller: Caller) -> Item:
        item_id = ref.get("Id", "")
        if not item_id:
            raise EwsError("ErrorInvalidIdEmpty", "Id is empty.")
        item = self.store.item(item_id)
        self._check_access(caller, self.store.folder(item.folder_id).mailbox)
        return item

    # --- shapes and rendering ------------------------------------------------------------

    @staticmethod
    def parse_shape(shape_elem: etree._Element | None) -> Shape:
        base = "IdOnly"
        fields: set[str] = set()
        ext: set[ExtKey] = set()
        ext_elems: dict[ExtKey, etree._Element] = {}
        if shape_elem is not None:
            b = shape_elem.find(t("BaseShape"))
            if b is not None and b.text:
                base = b.text
            props = shape_elem.find(t("AdditionalProperties"))
            if props is not None:
                for p in props:
                    kind = local(p.tag)
                    if kind == "FieldURI":
                        fields.add(p.get("FieldURI", "").partition(":")[2])
                    elif kind == "ExtendedFieldURI":
                        key = ext_key(p)
                        ext.add(key)
                        ext_elems[key] = p
        return Shape(base, fields, ext, ext_elems)

    def computed(self, item: Item) -> dict[str, etree._Element]:
        folder = self.store.folder(item.folder_id)
        out = {
            "ParentFolderId": elem("ParentFolderId", Id=folder.id, ChangeKey=folder.changekey),
            "ItemClass": elem("ItemClass", item.item_class),
            "DateTimeCreated": elem("DateTimeCreated", iso(item.created)),
            "DateTimeReceived": elem("DateTimeReceived", iso(item.created)),
            "LastModifiedTime": elem("LastModifiedTime", iso(item.modified)),
            "Size": elem("Size", str(len(self.store.serialise(item)))),
            "HasAttachments": elem("HasAttachments", "false"),
            "IsAssociated": elem("IsAssociated", "false"),
        }
        if item.tag == "Task":
            out.update(
                IsComplete=elem("IsComplete", "true" if item.status == "Completed" else "false"),
                IsRecurring=elem("IsRecurring", "true" if "Recurrence" in item.props else "false"),
                ChangeCount=elem("ChangeCount", str(item.change_count)),
                StatusDescription=elem("StatusDescription", STATUS_TEXT.get(item.status, "")),
            )
            complete = item.props.get("CompleteDate")
            if complete is not None:
                out["CompleteDate"] = complete
        return out

    def render_item(self, item: Item, shape: Shape, *, view: bool) -> etree._Element:
        if view:
            refused = shape.fields & NOT_IN_VIEWS
            if refused:
                raise SoapFault(
                    "ErrorInvalidPropertyRequest",
                    f"The property {sorted(refused)[0]} can't be used in FindItem or "
                    "SyncFolderItems requests; use GetItem.",
                )
        out = etree.Element(t(item.tag))
        parts: list[tuple[int, int, etree._Element]] = [
            (ORDER["ItemId"], 0, elem("ItemId", Id=item.id, ChangeKey=item.changekey))
        ]
        available = dict(item.props)
        available.update(self.computed(item))
        if shape.base == "IdOnly":
            wanted = shape.fields
        else:
            wanted = set(available) | shape.fields
            if view:
                wanted -= NOT_IN_VIEWS
        for name in wanted:
            if name in available and name in ORDER and name != "ItemId":
                parts.append((ORDER[name], 0, self._outgoing(name, available[name])))
        for n, key in enumerate(sorted(shape.ext)):
            if key in item.ext:
                parts.append((ORDER["ExtendedProperty"], n + 1, copy.deepcopy(item.ext[key])))
        for _, _, e in sorted(parts, key=lambda p: (p[0], p[1])):
            out.append(e)
        return out

    @staticmethod
    def _outgoing(name: str, e: etree._Element) -> etree._Element:
        e = copy.deepcopy(e)
        if name == "Recurrence":
            # Task recurrence dates come back as dates with a zone ("2006-01-09Z").
            for d in e.iter(t("StartDate"), t("EndDate")):
                if d.text and len(d.text) == 10:
                    d.text += "Z"
        return e

    def render_folder(self, f: Folder, shape_elem: etree._Element | None) -> etree._Element:
        tag = {
            "IPF.Task": "TasksFolder",
            "IPF.Appointment": "CalendarFolder",
            "IPF.Contact": "ContactsFolder",
        }.get(f.folder_class or "", "Folder")
        out = etree.Element(t(tag))
        out.append(elem("FolderId", Id=f.id, ChangeKey=f.changekey))
        base = "IdOnly"
        fields: set[str] = set()
        if shape_elem is not None:
            b = shape_elem.find(t("BaseShape"))
            base = b.text if b is not None and b.text else base
            props = shape_elem.find(t("AdditionalProperties"))
            for p in props if props is not None else []:
                fields.add(p.get("FieldURI", "").partition(":")[2])
        if base != "IdOnly":
            fields |= {"DisplayName", "TotalCount", "ChildFolderCount", "UnreadCount"}
        values = {
            "ParentFolderId": (
                elem(
                    "ParentFolderId",
                    Id=f.parent_id,
                    ChangeKey=self.store.folder(f.parent_id).changekey,
                )
                if f.parent_id
                else None
            ),
            "FolderClass": elem("FolderClass", f.folder_class) if f.folder_class else None,
            "DisplayName": elem("DisplayName", f.name),
            "TotalCount": elem("TotalCount", str(len(self.store.items_in(f)))),
            "ChildFolderCount": elem("ChildFolderCount", str(len(self.store.children(f, False)))),
            "UnreadCount": elem("UnreadCount", "0") if tag == "Folder" else None,
        }
        if f.distinguished:
            values["DistinguishedFolderId"] = elem("DistinguishedFolderId", f.distinguished)
        # types.xsd order: BaseFolderType's sequence (... ChildFolderCount, ...,
        # DistinguishedFolderId, ...), then FolderType's own elements (UnreadCount).
        for name in FOLDER_ELEMENT_ORDER:
            v = values.get(name)
            if name in fields and v is not None:
                out.append(v)
        return out

    # --- restrictions (FindItem, FindFolder) ------------------------------------------

    def _value_of(self, target: Item | Folder, ref: etree._Element) -> str | None:
        kind = local(ref.tag)
        if isinstance(target, Folder):
            name = ref.get("FieldURI", "").partition(":")[2]
            return {"DisplayName": target.name, "FolderClass": target.folder_class}.get(name)
        if kind == "ExtendedFieldURI":
            prop = target.ext.get(ext_key(ref))
            if prop is None:
                return None
            v = prop.find(t("Value"))
            return None if v is None else (v.text or "")
        name = ref.get("FieldURI", "").partition(":")[2]
        e = target.props.get(name)
        if e is None:
            e = self.computed(target).get(name)
        if e is None:
            return None
        if len(e):
            return " ".join((c.text or "") for c in e)
        return e.text or ""

    def matches(self, target: Item | Folder, r: etree._Element) -> bool:
        kind = local(r.tag)
        if kind == "Restriction":
            return all(self.matches(target, c) for c in r)
        if kind == "And":
            return all(self.matches(target, c) for c in r)
        if kind == "Or":
            return any(self.matches(target, c) for c in r)
        if kind == "Not":
            return not self.matches(target, r[0])
        if kind == "Exists":
            return self._value_of(target, r[0]) is not None
        ref = r[0]
        const = r.find(f"{t('FieldURIOrConstant')}/{t('Constant')}")
        if const is None:
            const = r.find(t("Constant"))
        want = const.get("Value", "") if const is not None else ""
        have = self._value_of(target, ref)
        if kind == "IsEqualTo":
            return have is not None and have == want
        if kind == "IsNotEqualTo":
            return have != want
        if kind == "Contains":
            return have is not None and want.lower() in have.lower()
        raise SoapFault("ErrorUnsupportedQueryFilter", f"Restriction {kind} is not supported")

    def op_ConvertId(self, req: etree._Element, caller: Caller) -> etree._Element:
        # exchangelib's version guess sends ConvertId with a dummy id; any response
        # carrying ServerVersionInfo answers it. Ids are not convertible here.
        msgs = etree.Element(m("ResponseMessages"))
        for _ in req.find(m("SourceIds")) if req.find(m("SourceIds")) is not None else []:
            msgs.append(
                response_message(
                    "ConvertId", EwsError("ErrorInvalidIdMalformed", "Id is malformed.")
                )
            )
        return self._wrap("ConvertId", msgs)

    # --- folder operations ----------------------------------------------------------------

    def op_GetFolder(self, req: etree._Element, caller: Caller) -> etree._Element:
        shape = req.find(m("FolderShape"))
        msgs = etree.Element(m("ResponseMessages"))
        for ref in req.find(m("FolderIds")):
            try:
                f = self.resolve_folder(ref, caller)
            except EwsError as exc:
                msg = response_message("GetFolder", exc)
                etree.SubElement(msg, m("Folders"))
            else:
                msg = response_message("GetFolder")
                etree.SubElement(msg, m("Folders")).append(self.render_folder(f, shape))
            msgs.append(msg)
        return self._wrap("GetFolder", msgs)

    def op_FindFolder(self, req: etree._Element, caller: Caller) -> etree._Element:
        shape = req.find(m("FolderShape"))
        deep = req.get("Traversal") == "Deep"
        restriction = req.find(m("Restriction"))
        view = req.find(m("IndexedPageFolderView"))
        msgs = etree.Element(m("ResponseMessages"))
        for ref in req.find(m("ParentFolderIds")):
            try:
                parent = self.resolve_folder(ref, caller)
            except EwsError as exc:
                msgs.append(response_message("FindFolder", exc))
                continue
            found = [
                f
                for f in self.store.children(parent, deep)
                if restriction is None or self.matches(f, restriction)
            ]
            offset, page = self._paging(view, len(found))
            chunk = found[offset : offset + page]
            msg = response_message("FindFolder")
            root = etree.SubElement(
                msg,
                m("RootFolder"),
                IndexedPagingOffset=str(offset + len(chunk)),
                TotalItemsInView=str(len(found)),
                IncludesLastItemInRange="true" if offset + len(chunk) >= len(found) else "false",
            )
            folders = etree.SubElement(root, t("Folders"))
            for f in chunk:
                folders.append(self.render_folder(f, shape))
            msgs.append(msg)
        return self._wrap("FindFolder", msgs)

    def op_CreateFolder(self, req: etree._Element, caller: Caller) -> etree._Element:
        parent = self.resolve_folder(req.find(m("ParentFolderId"))[0], caller)
        msgs = etree.Element(m("ResponseMessages"))
        for spec in req.find(m("Folders")):
            name_e = spec.find(t("DisplayName"))
            cls_e = spec.find(t("FolderClass"))
            folder_class = cls_e.text if cls_e is not None else None
            if folder_class is None:
                folder_class = FOLDER_CLASSES.get(local(spec.tag), "IPF.Note")
            try:
                f = self.store.create_folder(
                    parent, name_e.text if name_e is not None and name_e.text else "", folder_class
                )
            except EwsError as exc:
                msg = response_message("CreateFolder", exc)
                etree.SubElement(msg, m("Folders"))
            else:
                msg = response_message("CreateFolder")
                out = etree.SubElement(etree.SubElement(msg, m("Folders")), t(local(spec.tag)))
                out.append(elem("FolderId", Id=f.id, ChangeKey=f.changekey))
            msgs.append(msg)
        return self._wrap("CreateFolder", msgs)

    # --- item operations ------------------------------------------------------------------

    @staticmethod
    def _paging(view: etree._Element | None, total: int) -> tuple[int, int]:
        if view is None:
            return 0, total
        offset = int(view.get("Offset", "0"))
        if view.get("BasePoint") == "End":
            offset = max(0, total - offset - int(view.get("MaxEntriesReturned", total)))
        return offset, int(view.get("MaxEntriesReturned", str(max(total, 1))))

    def op_FindItem(self, req: etree._Element, caller: Caller) -> etree._Element:
        shape = self.parse_shape(req.find(m("ItemShape")))
        restriction = req.find(m("Restriction"))
        view = req.find(m("IndexedPageItemView"))
        calendar_view = req.find(m("CalendarView"))
        msgs = etree.Element(m("ResponseMessages"))
        for ref in req.find(m("ParentFolderIds")):
            try:
                folder = self.resolve_folder(ref, caller)
            except EwsError as exc:
                msgs.append(response_message("FindItem", exc))
                continue
            found = [
                i
                for i in sorted(self.store.items_in(folder), key=lambda i: i.created_seq)
                if (restriction is None or self.matches(i, restriction))
                and (calendar_view is None or self._in_view(i, calendar_view))
            ]
            offset, page = self._paging(view, len(found))
            chunk = found[offset : offset + page]
            msg = response_message("FindItem")
            root = etree.SubElement(
                msg,
                m("RootFolder"),
                IndexedPagingOffset=str(offset + len(chunk)),
                TotalItemsInView=str(len(found)),
                IncludesLastItemInRange="true" if offset + len(chunk) >= len(found) else "false",
            )
            items = etree.SubElement(root, t("Items"))
            for i in chunk:
                items.append(self.render_item(i, shape, view=True))
            msgs.append(msg)
        return self._wrap("FindItem", msgs)

    @staticmethod
    def _in_view(item: Item, view: etree._Element) -> bool:
        """CalendarView: calendar items overlapping [StartDate, EndDate) (occurrences are
        stored one by one here; the real server expands recurring masters)."""
        if item.tag != "CalendarItem" or not item.text("Start") or not item.text("End"):
            return False
        start = parse_datetime(view.get("StartDate", ""))
        end = parse_datetime(view.get("EndDate", ""))
        return parse_datetime(item.text("Start") or "") < end and start < parse_datetime(
            item.text("End") or ""
        )

    def op_GetItem(self, req: etree._Element, caller: Caller) -> etree._Element:
        shape = self.parse_shape(req.find(m("ItemShape")))
        msgs = etree.Element(m("ResponseMessages"))
        for ref in req.find(m("ItemIds")):
            try:
                item = self.resolve_item(ref, caller)
                if item.id in self.store.corrupt:
                    raise EwsError("ErrorCorruptData", "The item is corrupt.")
            except EwsError as exc:
                msg = response_message("GetItem", exc)
                etree.SubElement(msg, m("Items"))
            else:
                msg = response_message("GetItem")
                etree.SubElement(msg, m("Items")).append(self.render_item(item, shape, view=False))
            msgs.append(msg)
        return self._wrap("GetItem", msgs)

    def op_CreateItem(self, req: etree._Element, caller: Caller) -> etree._Element:
        target = req.find(m("SavedItemFolderId"))
        folder = (
            self.resolve_folder(target[0], caller)
            if target is not None
            else self.store.distinguished(caller.mailbox, "drafts")
        )
        msgs = etree.Element(m("ResponseMessages"))
        stopped = False
        for spec in req.find(m("Items")):
            if stopped:
                # What Exchange answers for the items after a failed one when it stops
                # a batch (CreateItemResponseMessage, ResponseClass="Warning").
                error = EwsError(
                    "ErrorBatchProcessingStopped",
                    "The batch was stopped: an earlier item in the request failed.",
                )
                msg = response_message("CreateItem", error, warning=True)
                etree.SubElement(msg, m("Items"))
                msgs.append(msg)
                continue
            refusal = self.store.create_refusals.get(spec.findtext(t("Subject")) or "")
            if refusal is not None:
                msg = response_message("CreateItem", EwsError(*refusal))
                etree.SubElement(msg, m("Items"))
                msgs.append(msg)
                stopped = self.store.stop_batch_on_error
                continue
            item = self.store.create_item(folder, spec)
            msg = response_message("CreateItem")
            out = etree.SubElement(etree.SubElement(msg, m("Items")), t(item.tag))
            out.append(elem("ItemId", Id=item.id, ChangeKey=item.changekey))
            msgs.append(msg)
        return self._wrap("CreateItem", msgs)

    def op_UpdateItem(self, req: etree._Element, caller: Caller) -> etree._Element:
        resolution = req.get("ConflictResolution", "AutoResolve")
        msgs = etree.Element(m("ResponseMessages"))
        for change in req.find(m("ItemChanges")):
            try:
                ref = change.find(t("ItemId"))
                if ref is None:
                    raise EwsError("ErrorInvalidIdMalformed", "ItemChange has no ItemId")
                with self.store.lock:
                    item = self.resolve_item(ref, caller)
                    key = ref.get("ChangeKey")
                    if resolution != "AlwaysOverwrite" and not key:
                        raise EwsError(
                            "ErrorChangeKeyRequiredForWriteOperations",
                            "When making a write request, the change key must be provided.",
                        )
                    if key and key != item.changekey and resolution == "NeverOverwrite":
                        raise EwsError(
                            "ErrorIrresolvableConflict",
                            "The send or update operation could not be performed because the "
                            "change key passed in the request does not match the current change "
                            "key for the item.",
                        )
                    changes: list[tuple[str, etree._Element, etree._Element | None]] = []
                    for u in change.find(t("Updates")):
                        kind = {"SetItemField": "set", "AppendToItemField": "append",
                                "DeleteItemField": "delete"}[local(u.tag)]  # fmt: skip
                        uri = u[0]
                        value = u[1] if len(u) > 1 else None
                        changes.append((kind, uri, value))
                    result = self.store.update_item(item, changes, context_zone=caller.zone)
            except EwsError as exc:
                msg = response_message("UpdateItem", exc)
                etree.SubElement(msg, m("Items"))
            else:
                msg = response_message("UpdateItem")
                out = etree.SubElement(etree.SubElement(msg, m("Items")), t(result.tag))
                out.append(elem("ItemId", Id=result.id, ChangeKey=result.changekey))
                conflicts = etree.SubElement(msg, m("ConflictResults"))
                etree.SubElement(conflicts, t("Count")).text = "0"
            msgs.append(msg)
        return self._wrap("UpdateItem", msgs)

    def op_DeleteItem(self, req: etree._Element, caller: Caller) -> etree._Element:
        delete_type = req.get("DeleteType", "MoveToDeletedItems")
        msgs = etree.Element(m("ResponseMessages"))
        for ref in req.find(m("ItemIds")):
            # Like Exchange, DeleteItem does not compare change keys.
            try:
                with self.store.lock:
                    self.store.delete_item(self.resolve_item(ref, caller), delete_type)
            except EwsError as exc:
                msgs.append(response_message("DeleteItem", exc))
            else:
                msgs.append(response_message("DeleteItem"))
        return self._wrap("DeleteItem", msgs)

    def op_SyncFolderItems(self, req: etree._Element, caller: Caller) -> etree._Element:
        shape = self.parse_shape(req.find(m("ItemShape")))
        folder = self.resolve_folder(req.find(m("SyncFolderId"))[0], caller)
        state_e = req.find(m("SyncState"))
        since = 0
        if state_e is not None and state_e.text:
            try:
                folder_id, _, seq = base64.b64decode(state_e.text).decode().rpartition("|")
                since = int(seq)
            except (ValueError, UnicodeDecodeError):
                folder_id = ""
            if folder_id != folder.id:
                msgs = etree.Element(m("ResponseMessages"))
                msgs.append(
                    response_message(
                        "SyncFolderItems",
                        EwsError(
                            "ErrorInvalidSyncStateData",
                            "Synchronization state data is corrupt or otherwise invalid.",
                        ),
                    )
                )
                return self._wrap("SyncFolderItems", msgs)
        ignore_e = req.find(m("Ignore"))
        ignore = {r.get("Id", "") for r in ignore_e} if ignore_e is not None else set()
        limit_e = req.find(m("MaxChangesReturned"))
        limit = int(limit_e.text) if limit_e is not None and limit_e.text else 512
        limit = max(1, min(limit, 512))
        with self.store.lock:
            changes = self.store.changes_since(folder, since, ignore)
            chunk = changes[:limit]
            last = len(chunk) == len(changes)
            new_seq = self.store.last_seq if last else chunk[-1][0]
            msg = response_message("SyncFolderItems")
            state = base64.b64encode(f"{folder.id}|{new_seq}".encode()).decode()
            etree.SubElement(msg, m("SyncState")).text = state
            etree.SubElement(msg, m("IncludesLastItemInRange")).text = "true" if last else "false"
            out = etree.SubElement(msg, m("Changes"))
            for _, kind, what in chunk:
                c = etree.SubElement(out, t(kind))
                if isinstance(what, str):
                    c.append(elem("ItemId", Id=what))
                else:
                    c.append(self.render_item(what, shape, view=True))
        msgs = etree.Element(m("ResponseMessages"))
        msgs.append(msg)
        return self._wrap("SyncFolderItems", msgs)

    @staticmethod
    def _wrap(op: str, msgs: etree._Element) -> etree._Element:
        resp = etree.Element(m(f"{op}Response"), nsmap={"m": M, "t": T})
        resp.append(msgs)
        return resp
