"""The cycle history in the state file (health and `status` read it): kept to the
last KEEP_CYCLES cycles. Light (the standard library's sqlite3 only), so the quick
check (`kit_sync.quick`) records its cycles as `State` does."""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself is slow to import
if TYPE_CHECKING:
    import sqlite3

#: The cycles table keeps the last KEEP_CYCLES cycles. It is pruned once PRUNE_SLACK
#: more have piled up, not at every cycle: the prune sorts the cycles and scans the
#: action journal, most of what an idle daemon cycle would cost otherwise.
KEEP_CYCLES = 1000
PRUNE_SLACK = 100


def prune(db: sqlite3.Connection) -> None:
    """Back to the newest KEEP_CYCLES cycles, with the actions of those dropped, when
    more than PRUNE_SLACK extra have piled up. Inside the caller's transaction."""
    (count,) = db.execute("SELECT COUNT(*) FROM cycles").fetchone()
    if count > KEEP_CYCLES + PRUNE_SLACK:
        db.execute(
            "DELETE FROM cycles WHERE id NOT IN (SELECT id FROM cycles "
            "ORDER BY started DESC, rowid DESC LIMIT ?)",
            (KEEP_CYCLES,),
        )
        db.execute("DELETE FROM actions WHERE cycle NOT IN (SELECT id FROM cycles)")
