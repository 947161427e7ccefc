"""The backend contract. Every backend implements `Backend` exactly as documented;
`tests/contract.py` runs the same tests against each one.

Errors are a small semantic hierarchy: each backend translates its library's errors
into these in one place (`_translate` or similar), so the engine and CLI never see
an HTTP status or an EWS response code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from kit_sync.errors import KitError
from kit_sync.model import KitTask, Listing, NewTask, Status, TaskChange

if TYPE_CHECKING:
    from kit_sync.state import State


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


class Backend(ABC):
    """A task list kit-sync keeps tasks in: everything the engine calls.

    Every backend subclasses this. The four abstract methods are the core; the
    rest are optional capabilities with defaults that are right for a plain task
    list, so a new backend (or a touch source) overrides only what it does better.
    Capabilities are plain class attributes.
    """

    #: The backend regenerates a completed task itself (Exchange's regenerating
    #: tasks): the open task keeps its address and only its due date needs checking.
    regenerates_itself: ClassVar[bool] = False

    #: How many creates `create_tasks` takes at once. 1: the engine creates one
    #: task at a time, in plan order, through `create_task`.
    batch_size: ClassVar[int] = 1

    @abstractmethod
    def fetch_listing(self) -> Listing:
        """All kit-owned tasks (any status) and problems with unreadable items.

        A task is kit-owned when it carries the kit marker or a kit UID. Foreign
        items are never returned and never modified. Raises BackendUnavailable or
        AuthFailed when the list cannot be read at all."""

    @abstractmethod
    def create_task(self, new: NewTask) -> KitTask:
        """Create a task with `new.uid`, failing if one exists (If-None-Match: *).

        Returns the task as stored (href, etag). Raises AlreadyExists when an item
        with that UID/address is already there."""

    @abstractmethod
    def update_task(self, task: KitTask, change: TaskChange) -> KitTask:
        """Apply `change` to `task` only if it is unchanged since listed (If-Match:
        task.etag). Properties kit-sync does not manage are kept as they are.

        Returns the updated task (new etag). Raises Conflict when the etag no
        longer matches, NotFound when the item is gone."""

    @abstractmethod
    def delete_task(self, task: KitTask) -> None:
        """Delete `task` if unchanged since listed. Raises Conflict / NotFound."""

    def create_tasks(self, news: Sequence[NewTask]) -> list[KitTask | BackendError]:
        """Create several tasks (at most `batch_size`), each as `create_task` would.

        Returns one outcome per item, in order: the stored task, or the error for
        that item alone (AlreadyExists, ItemRejected, ...). Raises BackendUnavailable
        when the backend cannot be reached at all. The default creates them one at
        a time."""
        out: list[KitTask | BackendError] = []
        for new in news:
            try:
                out.append(self.create_task(new))
            except BackendUnavailable:
                raise
            except BackendError as exc:
                out.append(exc)
        return out

    def complete_tasks(self, tasks: Sequence[KitTask], at: datetime, listed: Listing) -> list[str]:
        """Mark the open `tasks` completed at `at`, as a client would (`kit-sync touch`).

        Returns the uids of the completed items that record this touch, so the next
        listing does not count it twice: the tasks themselves; for a backend that
        regenerates itself, the completed copies it made (each with its own id,
        stamped with the server's "today"), found by one more listing compared with
        `listed`, the listing the tasks came from."""
        for task in tasks:
            self.update_task(task, TaskChange(status=Status.COMPLETED, completed_at=at))
        if not self.regenerates_itself:
            return [t.uid for t in tasks]
        if not tasks:
            return []
        before = {t.uid for t in listed.tasks}
        contacts = {t.contact_id for t in tasks}
        return [
            t.uid
            for t in self.fetch_listing().tasks
            if t.contact_id in contacts and t.status is Status.COMPLETED and t.uid not in before
        ]

    def bind_state(self, state: State) -> None:
        """The engine hands over its state DB once, before the first listing, for a
        backend that keeps its listing cache there. Default: nothing to keep."""
        return None

    def close(self) -> None:
        """Release connections. Safe to call twice. Default: nothing to release."""
        return None
