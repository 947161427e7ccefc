"""Request counts and timings of the Graph backend against the fake Graph on 127.0.0.1.

    .venv/bin/python benchmarks/graph_bench.py [--contacts 1000] [--throttle 0.1]

Prints, for one roster: the first sync (provisioning with $batch), the cycle that
reads the new tasks back through the delta query, an idle cycle, a cycle after the
To Do app completed 1% of the tasks, and provisioning again with a share of the
batch items answered 429 (Retry-After: 0). Figures, not assertions: the tests pin
the counts; this shows them at scale.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from graph_server import FakeMicrosoft  # noqa: E402
from graph_server.world import GraphWorld, roster  # noqa: E402

from kit_sync.backends.graph_auth import AppTokens  # noqa: E402
from kit_sync.config import GraphConfig  # noqa: E402


def requests(ms: FakeMicrosoft) -> str:
    top = Counter(
        f"{r['method']} {r['path'].rsplit('/', 1)[-1]}" for r in ms.graph.requests(batch=False)
    )
    inner = len(ms.graph.requests(batch=True))
    parts = ", ".join(f"{n} × {k}" for k, n in sorted(top.items()))
    return f"{sum(top.values())} HTTP requests ({parts}); {inner} requests inside $batch"


def cycle(world: GraphWorld, label: str) -> None:
    world.ms.graph.clear_log()
    start = time.perf_counter()
    result = world.sync()
    took = time.perf_counter() - start
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items() if v)
    print(f"{label:<34} {took:6.2f} s  {counts or 'nothing to do'}")
    print(f"{'':<34} {requests(world.ms)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--throttle", type=float, default=0.1, help="share of batch items 429'd")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ms = FakeMicrosoft(folder / "ms").start()
        try:
            tokens = AppTokens(GraphConfig.model_validate(ms.backend_config("secret")))
            ms.entra.add_user("bench@contoso.example")
            (folder / "a").mkdir()
            world = GraphWorld(
                folder / "a", ms, "bench@contoso.example", tokens, contacts=roster(args.contacts)
            )
            world.now = datetime.now(UTC)
            print(f"{args.contacts} contacts, fake Graph on {ms.graph.url}")
            cycle(world, "first sync (provisioning)")
            cycle(world, "next sync (reads its tasks back)")
            cycle(world, "idle sync")
            done = max(1, args.contacts // 100)
            berlin = ZoneInfo("Europe/Berlin")
            for task in world.open_tasks()[:done]:
                ms.graph.app_complete(world.mailbox, task.href, datetime.now(berlin))
            world.now = datetime.now(UTC) + timedelta(minutes=1)
            cycle(world, f"after {done} completion(s) in the app")

            ms.entra.add_user("bench2@contoso.example")
            (folder / "b").mkdir()
            throttled = GraphWorld(
                folder / "b", ms, "bench2@contoso.example", tokens, contacts=roster(args.contacts)
            )
            items = int(args.contacts * args.throttle)
            ms.graph.throttle_batch_items(items, retry_after=0)
            cycle(throttled, f"provisioning, {items} items 429'd")
            print(f"{'':<34} waits: {len(throttled.waits)} × Retry-After 0 s")
            print(f"{'':<34} tasks on the server: {len(throttled.server_tasks())}")
        finally:
            ms.stop()


if __name__ == "__main__":
    main()
