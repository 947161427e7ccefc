"""Touch-source figures against a real Dovecot IMAP server on 127.0.0.1.

    .venv/bin/python benchmarks/touches_bench.py [--messages 10000] [--contacts 300]

Measured in the same run, on one Sent folder of M messages (default 10,000; dated
over the last 80 days; every second one to a roster contact, the rest to people not
on the roster; 2 recipients each):

1. the first look-back: `ImapSource.fetch_touches` without a cursor (what the first
   sync reads), against a bare imapclient loop sending the very same SEARCH and
   header FETCH commands and parsing nothing. Commands, time, ratio.
2. an idle source check with the cursor: IMAP commands (target: one STATUS per
   folder) and time, against one bare STATUS command (median of 15).
3. a whole first `kit-sync sync` cycle with the source (local backend, N contacts:
   look-back, journal, plan, writes) and the idle cycle after it.
4. the same for the caldav-events source: E meetings (default 1,000) on Radicale,
   first read vs a bare caldav `get_objects_by_sync_token(load_objects=True)`, and
   the idle check (target: one sync-collection REPORT).

Figures, not assertions: the tests pin behaviour and upper bounds.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402
from imap_server import Dovecot, available  # noqa: E402

from kit_sync.app import load, open_engine  # noqa: E402
from kit_sync.config import CaldavEventsSourceConfig, ImapSourceConfig  # noqa: E402
from kit_sync.touches.caldav_events import CaldavEventsSource  # noqa: E402
from kit_sync.touches.imap import HEADERS, ImapSource  # noqa: E402
from kit_sync.touches.match import AddressBook  # noqa: E402

TZ = ZoneInfo("Europe/Berlin")


def line(text: str = "") -> None:
    print(text, flush=True)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median_of(n: int, fn: Callable[[], Any]) -> float:
    return statistics.median(timed(fn)[0] for _ in range(n))


def contacts(n: int) -> list[dict[str, Any]]:
    return [
        {"name": f"Person {i:04d}", "email": f"p{i}@example.com", "every": "3 weeks"}
        for i in range(n)
    ]


def fill(server: Dovecot, m: int, n: int, now: datetime) -> None:
    rng = random.Random(14)
    client = server.client()
    batch: list[dict[str, Any]] = []
    for i in range(m):
        when = now - timedelta(minutes=rng.randrange(80 * 24 * 60))
        if i % 2 == 0:
            to = f"p{rng.randrange(n)}@example.com, someone{i}@elsewhere.example"
        else:
            to = f"stranger{i}@elsewhere.example, other{i}@elsewhere.example"
        raw = (
            f"From: Me <me@example.com>\r\nTo: {to}\r\nSubject: message {i}\r\n"
            f"Date: {format_datetime(when.astimezone(TZ))}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.com>\r\n\r\nbody {i}\r\n"
        ).encode()
        batch.append({"msg": raw, "date": when})
        if len(batch) == 500:
            client.multiappend("Sent", batch)
            batch = []
    if batch:
        client.multiappend("Sent", batch)
    client.logout()


def bare_lookback(server: Dovecot, since: datetime) -> int:
    client = server.client()
    client.folder_status("Sent", [b"UIDVALIDITY", b"UIDNEXT", b"HIGHESTMODSEQ"])
    client.select_folder("Sent", readonly=True)
    day = (since - timedelta(days=1)).date()
    uids = sorted(client.search(["OR", "SINCE", day, "SENTSINCE", day]))
    got = 0
    for i in range(0, len(uids), 1000):
        got += len(client.fetch(uids[i : i + 1000], [HEADERS, b"INTERNALDATE"]))
    client.logout()
    return got


def imap_part(m: int, n: int) -> None:
    if not available():
        line("Dovecot is not installed (apt-get install dovecot-imapd): IMAP part skipped")
        return
    server = Dovecot().start()
    try:
        now = datetime.now(UTC)
        t_fill, _ = timed(lambda: fill(server, m, n, now))
        line(f"## IMAP: {m} messages in Sent ({t_fill:.1f} s to APPEND), {n} contacts")
        config = ImapSourceConfig.model_validate(
            {
                "type": "imap",
                "host": "127.0.0.1",
                "port": server.port,
                "security": "none",
                "username": server.user,
                "password": server.password,
            }
        )
        book = AddressBook((f"p{i}@example.com", f"p{i}") for i in range(n))
        since = now - timedelta(days=90)
        bare_before, got = timed(lambda: bare_lookback(server, since))
        source = ImapSource(config, TZ)
        t_first, found = timed(lambda: source.fetch_touches(book, since, now, None))
        first_cmds = source.commands
        bare_after, _ = timed(lambda: bare_lookback(server, since))
        bare = (bare_before + bare_after) / 2
        line(
            f"first look-back: {found.read} messages read ({got} by the bare loop), "
            f"{len(found.touches)} touches, {first_cmds} IMAP commands (incl. connect and "
            f"login), {t_first:.2f} s; bare SEARCH+FETCH {bare:.2f} s "
            f"(before {bare_before:.2f}, after {bare_after:.2f}); ratio {t_first / bare:.2f}"
        )
        cursor = found.cursor
        before = source.commands
        idle_found = source.fetch_touches(book, since, now, cursor)
        idle_cmds = source.commands - before
        t_idle = median_of(15, lambda: source.fetch_touches(book, since, now, cursor))
        probe = server.client()
        what = [b"UIDVALIDITY", b"UIDNEXT", b"HIGHESTMODSEQ"]  # what the source asks
        t_status = median_of(15, lambda: probe.folder_status("Sent", what))
        probe.logout()
        source.close()
        line(
            f"idle check: {idle_cmds} IMAP command(s), {len(idle_found.touches)} touches, "
            f"{t_idle * 1000:.2f} ms (median of 15); bare STATUS {t_status * 1000:.2f} ms; "
            f"ratio {t_idle / t_status:.2f}"
        )

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            cfg = {
                "timezone": "Europe/Berlin",
                "backend": {"type": "local", "path": "tasks"},
                "state": "state.sqlite",
                "contacts": contacts(n),
                "touches": [
                    {
                        "type": "imap",
                        "host": "127.0.0.1",
                        "port": server.port,
                        "security": "none",
                        "username": server.user,
                        "password": server.password,
                    }
                ],
            }
            (folder / "c.yaml").write_text(yaml.safe_dump(cfg))
            engine = open_engine(load(folder / "c.yaml"))
            try:
                t_cycle, result = timed(engine.run_cycle)
                t_idle_cycle, idle = timed(engine.run_cycle)
            finally:
                assert engine.sources is not None
                engine.sources.close()
                engine.state.close()
            line(
                f"first `sync` cycle with the source: {t_cycle:.2f} s "
                f"({len(result.detected)} touches journaled, counts {result.counts}); "
                f"idle cycle after it: {t_idle_cycle * 1000:.1f} ms "
                f"({sum(idle.counts.values())} actions)"
            )
    finally:
        server.remove()


def caldav_part(e: int) -> None:
    from servers import make_server
    from test_touches_caldav import Calendar, vevent

    with tempfile.TemporaryDirectory() as tmp:
        server = make_server("radicale", Path(tmp))
        try:
            cal = Calendar(server)
            rng = random.Random(7)
            now = datetime.now(UTC)
            with server.http() as http:
                for i in range(e):
                    start = (now - timedelta(hours=rng.randrange(80 * 24))).astimezone(TZ)
                    text = vevent(
                        start.replace(second=0, microsecond=0),
                        attendees={
                            f"p{rng.randrange(300)}@example.com": "ACCEPTED",
                            f"x{i}@elsewhere.example": "ACCEPTED",
                        },
                    )
                    http.put(
                        f"{cal.url}{i}.ics",
                        content=text.encode(),
                        headers={"Content-Type": "text/calendar; charset=utf-8"},
                    )
            line(f"## CalDAV events: {e} meetings on Radicale")
            config = CaldavEventsSourceConfig.model_validate(cal.section())
            book = AddressBook((f"p{i}@example.com", f"p{i}") for i in range(300))
            since = now - timedelta(days=90)

            def bare() -> int:
                import caldav

                client = caldav.DAVClient(
                    url=cal.url, username=server.user, password=server.password
                )
                got = len(
                    list(
                        client.calendar(url=cal.url).get_objects_by_sync_token(
                            None, load_objects=True
                        )
                    )
                )
                client.close()
                return got

            t_bare, got = timed(bare)
            source = CaldavEventsSource(config, TZ)
            t_first, found = timed(lambda: source.fetch_touches(book, since, now, None))
            requests = source.requests
            line(
                f"first read: {got} objects, {found.read} occurrences, "
                f"{len(found.touches)} touches, {requests} HTTP requests, {t_first:.2f} s; "
                f"bare get_objects_by_sync_token {t_bare:.2f} s; ratio {t_first / t_bare:.2f}"
            )
            before = source.requests
            source.fetch_touches(book, since, now, found.cursor)
            idle_requests = source.requests - before
            t_idle = median_of(15, lambda: source.fetch_touches(book, since, now, found.cursor))
            source.close()
            line(
                f"idle check: {idle_requests} HTTP request(s), {t_idle * 1000:.1f} ms "
                "(median of 15)"
            )
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=300)
    parser.add_argument("--events", type=int, default=1_000)
    args = parser.parse_args()
    line(f"# kit-sync touch-source benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    line(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    if args.messages > 0:
        imap_part(args.messages, args.contacts)
    if args.events > 0:
        caldav_part(args.events)


if __name__ == "__main__":
    main()
