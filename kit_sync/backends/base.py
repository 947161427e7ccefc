"""The backend contract. Every backend implements `Backend` exactly as documented;
`tests/contract.py` runs the same tests against each one.

Errors are a small semantic hierarchy: each backend translates its library's errors
into these in one place (`_translate` or similar), so the engine and CLI never see
an HTTP status or an EWS response code.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from kit_sync.errors import KitError
from kit_sync.model import KitTask, Listing, NewTask, TaskChange


class BackendError(KitError):
    """Something went wrong talking to the backend. Base of all backend errors."""

    exit_code = 1


class BackendUnavailable(BackendError):
    """Cannot reach the backend at all (down, DNS, TLS, timeout, folder missing).
    The daemon retries with back-off; a one-shot command exits 3."""

    exit_code = 3


class AuthFailed(BackendUnavailable):
    """The backend refused our credentials (401/403, bad password, expired token)."""


class Throttled(BackendUnavailable):
    """The server asked us to slow down (429/503 with Retry-After, ErrorServerBusy)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(BackendError):
    """The item is gone (deleted on another device since we listed it)."""


class AlreadyExists(BackendError):
    """A create found an item at that address/UID already (If-None-Match failed)."""


class Conflict(BackendError):
    """The item changed since we listed it (If-Match / change key failed).
    The engine reloads, re-plans that one contact, and retries once."""


class ItemRejected(BackendError):
    """The server refused this one item (validation, size, permissions on it)."""


class Backend(Protocol):
    """A task list kit-sync keeps tasks in.

    Capabilities are plain class attributes, checked when the backend is built.
    """

    #: The backend regenerates a completed task itself (Exchange's regenerating
    #: tasks): the open task keeps its address and only its due date needs checking.
    regenerates_itself: ClassVar[bool]

    def fetch_listing(self) -> Listing:
        """All kit-owned tasks (any status) and problems with unreadable items.

        A task is kit-owned when it carries the kit marker or a kit UID. Foreign
        items are never returned and never modified. Raises BackendUnavailable or
        AuthFailed when the list cannot be read at all."""
        ...

    def create_task(self, new: NewTask) -> KitTask:
        """Create a task with `new.uid`, failing if one exists (If-None-Match: *).

        Returns the task as stored (href, etag). Raises AlreadyExists when an item
        with that UID/address is already there."""
        ...

    def update_task(self, task: KitTask, change: TaskChange) -> KitTask:
        """Apply `change` to `task` only if it is unchanged since listed (If-Match:
        task.etag). Properties kit-sync does not manage are kept as they are.

        Returns the updated task (new etag). Raises Conflict when the etag no
        longer matches, NotFound when the item is gone."""
        ...

    def delete_task(self, task: KitTask) -> None:
        """Delete `task` if unchanged since listed. Raises Conflict / NotFound."""
        ...

    def close(self) -> None:
        """Release connections. Safe to call twice."""
        ...
