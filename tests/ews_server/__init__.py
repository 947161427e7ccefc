"""A fake Exchange Web Services endpoint for tests (no real Exchange can run here).

exchangelib talks to it unmodified through its real HTTP stack. It answers the
operations kit-sync's Exchange backend and a second EWS client send (GetFolder,
FindFolder, CreateFolder, FindItem, GetItem, CreateItem, UpdateItem, DeleteItem,
SyncFolderItems) with the response shapes of Microsoft's EWS reference, and lets a
test play Outlook or a phone on the same mailbox (`server.store`).
"""

from .server import EwsServer
from .store import EwsError, Item, Store

__all__ = ["EwsError", "EwsServer", "Item", "Store"]
