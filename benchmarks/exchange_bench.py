"""Request counts and timings of the Exchange backend against the fake EWS server.

    .venv/bin/python benchmarks/exchange_bench.py [--contacts 1000]

Prints, for one roster: the first sync (provisioning: CreateItem with up to 100
tasks each; target: at most ceil(N / 100) + 2 requests, printed with pass/fail),
the cycle that reads the new tasks back (SyncFolderItems pages; no GetItem, the
change keys match what kit-sync wrote), an idle cycle in a new process, a cycle
after Outlook completed 5% of the tasks, and one after a lost state file. Figures,
not assertions: the tests pin the counts; this shows them at scale.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from ews_server import EwsServer  # noqa: E402
from ews_server.testing import exchange_config, new_mailbox  # noqa: E402

from kit_sync.backends.exchange import ExchangeBackend  # noqa: E402
from kit_sync.config import Config  # noqa: E402
from kit_sync.engine import Engine  # noqa: E402
from kit_sync.model import Status  # noqa: E402
from kit_sync.roster import load_roster  # noqa: E402
from kit_sync.state import State  # noqa: E402

ZONE = ZoneInfo("Europe/Berlin")


def describe(server: EwsServer) -> str:
    counts = Counter(server.requests)
    parts = ", ".join(f"{n} × {k}" for k, n in sorted(counts.items()))
    return f"{sum(counts.values())} requests ({parts})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=1000)
    args = parser.parse_args()
    now = datetime(2026, 11, 21, 10, tzinfo=UTC)
    with EwsServer() as server, tempfile.TemporaryDirectory() as tmp:
        server.store.clock = lambda: now
        email = new_mailbox(server)
        data = {
            "timezone": ZONE.key,
            "tiers": {"wide": {"every": "quarterly"}},
            "contacts": [
                {"name": f"Person {i:04d}", "email": f"p{i}@example.com", "tier": "wide"}
                for i in range(args.contacts)
            ],
            "state": str(Path(tmp) / "state.sqlite"),
        }
        config = Config.model_validate(data)
        roster = load_roster(config)
        backend_config = exchange_config(server, email)

        def cycle(label: str) -> int:
            backend = ExchangeBackend(backend_config, ZONE)
            state = State(Path(tmp) / "state.sqlite")
            engine = Engine(config, roster, backend, state, ZONE, clock=lambda: now)
            server.reset_log()
            start = time.perf_counter()
            result = engine.run_cycle()
            took = time.perf_counter() - start
            backend.close()
            state.close()
            counts = {k: v for k, v in result.counts.items() if v}
            print(f"{label:<40} {took:6.2f} s  {describe(server)}  {counts}")
            return len(server.requests)

        sent = cycle(f"provisioning {args.contacts} contacts")
        limit = -(-args.contacts // 100) + 2
        print(
            f"  provisioning: {sent} requests for {args.contacts} contacts (target <= "
            f"ceil(N/100) + 2 = {limit}) {'PASS' if sent <= limit else 'FAIL'}"
        )
        cycle("reading them back")
        cycle("idle (new process)")
        store = server.store
        folder = store.distinguished(email, "tasks")
        masters = [i for i in store.items_in(folder) if i.status != "Completed"]
        for item in masters[: max(1, len(masters) // 20)]:
            store.complete_like_outlook(item.id, date(2026, 11, 21), ZONE)
        cycle("after Outlook completed 5%")
        cycle("idle again")
        (Path(tmp) / "state.sqlite").unlink()
        cycle("state file lost")
        backend = ExchangeBackend(backend_config, ZONE)
        opens = Counter(
            t.contact_id for t in backend.fetch_listing().tasks if t.status is Status.OPEN
        )
        backend.close()
        print(f"open tasks: {sum(opens.values())} for {len(opens)} contacts")


if __name__ == "__main__":
    main()
