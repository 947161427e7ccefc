"""CalDAV backend figures against real servers (Radicale and Xandikos on 127.0.0.1).

    .venv/bin/python benchmarks/caldav_bench.py [--large] [--servers radicale,xandikos]

For N contacts (100 and 1,000; also 5,000 with --large), measured in the same run:

1. provisioning: the first `kit-sync sync` cycle creating N tasks on an empty list,
   against a bare loop of N caldav PUTs (`DAVClient.put` with If-None-Match: *) of
   the very same VTODOs on an empty list of the same server. The bare loop runs
   before and after kit-sync (the server slows down as lists and history grow) and
   the ratio is against their mean. Target: <= 1.15.
2. an idle cycle, as the daemon runs it (one engine kept): HTTP requests (target 1)
   and time, against one bare sync-collection REPORT with a valid token. Target
   ratio <= 1.3. The backend's own share (fetch_listing) is printed beside it, and
   the engine's own work (the cycle less its listing). Medians of 9 rounds, each
   round timing all three in turn (in a rotated order), so the machine's load falls
   on each alike.
3. a cycle after k = 10 completions made on a phone: requests (target k + 2), time.
4. `kit-sync sync` as a whole process with no changes (N = 1,000), against
   `vdirsyncer sync` of the same list to a local folder, also with no changes.
   Target: faster.
5. the peak RSS of the `kit-sync sync` process (provisioning, and a first full
   listing with no cache file) at the largest N. Target at N = 5,000: <= 100 MB.

Figures, not assertions: tests pin the request counts; this shows times at scale.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402
from servers import DavServer, Phone, make_server  # noqa: E402

from kit_sync.app import load, open_engine  # noqa: E402
from kit_sync.backends.caldav import CaldavBackend, _file_name  # noqa: E402
from kit_sync.backends.ical import new_vtodo  # noqa: E402
from kit_sync.engine import Engine  # noqa: E402

K = 10
LARGE = 5000  # from this N on, provisioning is measured once, as a process
PUT_HEADERS = {"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"}


def line(text: str = "") -> None:
    print(text, flush=True)


def write_kit(folder: Path, server: DavServer, collection: str, n: int) -> Path:
    """A config whose roster is a CSV of n people (as an Outlook/Google export would be)."""
    folder.mkdir(parents=True, exist_ok=True)
    people = folder / "people.csv"
    with people.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "email", "tier", "notes"])
        for i in range(n):
            w.writerow([f"Person {i:05d}", f"p{i}@example.com", ("inner", "core")[i % 2], ""])
    backend: dict[str, Any] = {"type": "caldav", "url": collection, "timeout": 60}
    auth = server.auth()
    if auth:
        backend.update(username=auth[0], password=auth[1])
    config = {
        "timezone": "Europe/Berlin",
        "backend": backend,
        "state": "state.sqlite",
        "tiers": {"inner": {"every": "3 weeks"}, "core": {"every": "2 months"}},
        "include": [{"path": "people.csv", "format": "csv"}],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)  # it holds a password: kit-sync warns at every run otherwise
    return path


def engine_for(config: Path) -> Engine:
    return open_engine(load(config))


def close(engine: Engine) -> None:
    engine.backend.close()
    engine.state.close()


def planned_bodies(config: Path) -> list[tuple[str, bytes]]:
    """The VTODOs kit-sync's first cycle will PUT, as (file name, bytes)."""
    engine = engine_for(config)
    try:
        plan, _, _ = engine.fetch_plan()
        now = engine.clock()
        return [
            (_file_name(a.new.uid), new_vtodo(a.new, engine.tz, now))
            for a in plan.actions
            if a.new is not None
        ]
    finally:
        close(engine)


def bare_put_loop(server: DavServer, bodies: list[tuple[str, bytes]]) -> float:
    """N plain caldav PUTs of the same bytes on a fresh, empty list."""
    from caldav.davclient import DAVClient

    url = server.new_collection()
    auth = server.auth()
    client = DAVClient(
        url=url, username=auth[0] if auth else None, password=auth[1] if auth else None
    )
    try:
        t0 = time.perf_counter()
        for name, body in bodies:
            r = client.put(url + name, body, PUT_HEADERS)
            assert r.status in (201, 204), r.status
        return time.perf_counter() - t0
    finally:
        client.close()


class BareReport:
    """One sync-collection REPORT with a valid token (nothing changed), via caldav, on
    a client of its own kept open (as the daemon keeps its engine)."""

    def __init__(self, server: DavServer, collection: str, token: str) -> None:
        from caldav.davclient import DAVClient

        auth = server.auth()
        self.client = DAVClient(
            url=collection, username=auth[0] if auth else None, password=auth[1] if auth else None
        )
        self.calendar = self.client.calendar(url=collection)
        self.token = token
        self()  # warm

    def __call__(self) -> float:
        t0 = time.perf_counter()
        self.calendar.get_objects_by_sync_token(
            self.token, load_objects=False, disable_fallback=True
        )
        return time.perf_counter() - t0

    def close(self) -> None:
        self.client.close()


class IdleFigures:
    """Medians of interleaved rounds (so the machine's load falls on each alike)."""

    def __init__(self, rounds: list[tuple[float, float, float, float]], requests: list[int]):
        def median(i: int) -> float:
            return statistics.median(r[i] for r in rounds)

        self.cycle, self.own, self.listing, self.report = (median(i) for i in range(4))
        self.requests = requests


def timed_cycles(engine: Engine, report: BareReport, n: int = 9) -> IdleFigures:
    """Each round: an engine cycle (and the engine's own work in it: the cycle less
    its listing), the backend's fetch_listing alone, and a bare REPORT, in an order
    rotated from round to round (a request right after another one can be slower or
    faster on these servers; each of the three comes first, second and third alike)."""
    backend: CaldavBackend = engine.backend  # type: ignore[assignment]
    listed = engine._fetch_listing
    inner = [0.0]

    def timed_listing() -> Any:
        t0 = time.perf_counter()
        try:
            return listed()
        finally:
            inner[0] += time.perf_counter() - t0

    requests: list[int] = []

    def cycle() -> tuple[float, float]:
        before = backend.requests
        inner[0] = 0.0
        t0 = time.perf_counter()
        result = engine.run_cycle()
        took = time.perf_counter() - t0
        requests.append(backend.requests - before)
        assert result.ok and sum(result.counts.values()) == 0, result.counts
        return took, took - inner[0]

    def listing() -> float:
        t0 = time.perf_counter()
        backend.fetch_listing()
        return time.perf_counter() - t0

    engine._fetch_listing = timed_listing  # type: ignore[method-assign]
    rounds = []
    try:
        for i in range(n):
            got: dict[str, Any] = {}
            steps = [("cycle", cycle), ("listing", listing), ("report", report)]
            for name, step in steps[i % 3 :] + steps[: i % 3]:
                got[name] = step()
            rounds.append((*got["cycle"], got["listing"], got["report"]))
    finally:
        del engine._fetch_listing  # the class's method again
    return IdleFigures(rounds, requests)


def run_process(args: list[str], cwd: Path) -> tuple[float, int, int]:
    """(wall seconds, exit code, peak RSS in MB) of a child process.

    The peak is the child's own VmHWM, polled from /proc: `ru_maxrss` of a child
    forked from this (big) benchmark process would count the parent's pages too."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_kb = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for row in status.read_text().splitlines():
                if row.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(row.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    code = proc.returncode
    if code != 0 and proc.stderr is not None:
        sys.stderr.write(proc.stderr.read().decode()[-2000:])
    return wall, code, peak_kb // 1024


def kit_sync_cmd(config: Path) -> list[str]:
    return [sys.executable, "-m", "kit_sync", "-q", "--config", str(config), "sync"]


def vdirsyncer(
    folder: Path, server: DavServer, collection: str
) -> tuple[Callable[[], float], list[str], dict[str, str]]:
    """A vdirsyncer pair: the same list to a local folder. Returns a timed `sync`,
    and its command and environment."""
    exe = shutil.which("vdirsyncer") or str(Path(sys.executable).with_name("vdirsyncer"))
    (folder / "local").mkdir(parents=True, exist_ok=True)
    auth = server.auth()
    creds = f'username = "{auth[0]}"\npassword = "{auth[1]}"\n' if auth else ""
    (folder / "config").write_text(
        f'[general]\nstatus_path = "{folder}/status/"\n\n'
        '[pair tasks]\na = "local"\nb = "dav"\ncollections = null\n\n'
        f'[storage local]\ntype = "filesystem"\npath = "{folder}/local/"\nfileext = ".ics"\n\n'
        f'[storage dav]\ntype = "caldav"\nurl = "{collection}"\n{creds}'
    )
    env = dict(os.environ, VDIRSYNCER_CONFIG=str(folder / "config"))
    subprocess.run([exe, "discover"], env=env, check=True, capture_output=True, input=b"y\n" * 4)

    def sync() -> float:
        t0 = time.perf_counter()
        subprocess.run([exe, "sync"], env=env, check=True, capture_output=True)
        return time.perf_counter() - t0

    return sync, [exe, "sync"], env


def child(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one child process; CPU is its own user + sys (wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, args
    return time.perf_counter() - t0, usage.ru_utime + usage.ru_stime


def spread(values: list[float]) -> str:
    return (
        f"{statistics.median(values) * 1000:.0f} ms "
        f"[{min(values) * 1000:.0f}-{max(values) * 1000:.0f}]"
    )


def complete_on_phone(server: DavServer, collection: str, engine: Engine, k: int) -> None:
    phone = Phone(server, collection)
    try:
        tasks = sorted(engine.backend.fetch_listing().tasks, key=lambda t: t.uid)[:k]
        stamp = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
        for t in tasks:
            phone.edit(
                t.href.rsplit("/", 1)[-1],
                lambda text: text.replace(
                    "STATUS:NEEDS-ACTION", f"STATUS:COMPLETED\r\nCOMPLETED:{stamp}"
                ),
            )
    finally:
        phone.close()


def bench(kind: str, n: int, work: Path, *, whole_process: bool, rss: bool) -> None:
    line(f"\n## {kind}, N = {n:,}")
    server = make_server(kind, work / f"{kind}-{n}-server")
    try:
        collection = server.new_collection()
        config = write_kit(work / f"{kind}-{n}-kit", server, collection, n)
        bodies = planned_bodies(config)
        assert len(bodies) == n
        if n >= LARGE:
            # One run each (a PUT on these servers costs O(list size), so each run
            # is minutes), the bare loop on a server of its own: a server that has
            # just taken N items is slower for everything after (bigger heap and
            # caches), which would count against whoever comes second.
            bare_server = make_server(kind, work / f"{kind}-{n}-bare-server")
            try:
                bare1 = bare_put_loop(bare_server, bodies)
            finally:
                bare_server.stop()
            t_kit, code, peak = run_process(kit_sync_cmd(config), config.parent)
            assert code == 0
            line(
                f"provisioning: `kit-sync sync` as a process {t_kit:.1f} s (peak RSS {peak} MB)"
                f" vs bare PUT loop {bare1:.1f} s: ratio {t_kit / bare1:.3f} (target <= 1.15)"
            )
            engine = engine_for(config)
            engine.run_cycle()  # this process: its own writes come back, by ETag
        else:
            # 1. provisioning, as `kit-sync sync` does it (in this process; the RSS
            # run below repeats it as a real process on a list of its own), between
            # two bare loops on the same server
            bare1 = bare_put_loop(server, bodies)
            engine = engine_for(config)
            t0 = time.perf_counter()
            result = engine.run_cycle()
            t_kit = time.perf_counter() - t0
            assert result.ok and result.counts["created"] == n, result.counts
            provisioning_requests = engine.backend.requests  # type: ignore[attr-defined]
            bare2 = bare_put_loop(server, bodies)
            bare = (bare1 + bare2) / 2
            line(
                f"provisioning: kit-sync {t_kit:.2f} s ({provisioning_requests} requests) vs "
                f"bare PUT loop {bare:.2f} s (runs {bare1:.2f} / {bare2:.2f}): ratio "
                f"{t_kit / bare:.3f} (target <= 1.15)"
            )
        # 2. idle cycle in the daemon's engine
        engine.run_cycle()  # our own writes come back: recognised by ETag
        report = BareReport(server, collection, engine.backend._token)  # type: ignore[attr-defined]
        try:
            idle = timed_cycles(engine, report)
        finally:
            report.close()
        line(
            f"idle cycle: {max(idle.requests)} request(s) (all: {sorted(set(idle.requests))}); "
            f"{idle.cycle * 1000:.1f} ms vs bare sync REPORT {idle.report * 1000:.1f} ms: ratio "
            f"{idle.cycle / idle.report:.2f} (target <= 1.3); backend fetch_listing alone "
            f"{idle.listing * 1000:.1f} ms: ratio {idle.listing / idle.report:.2f}; "
            f"the engine's own work {idle.own * 1000:.2f} ms"
        )
        # 3. k completions
        complete_on_phone(server, collection, engine, K)
        before = engine.backend.requests  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        result = engine.run_cycle()
        t_k = time.perf_counter() - t0
        used = engine.backend.requests - before  # type: ignore[attr-defined]
        assert result.counts["regenerated"] == K, result.counts
        line(
            f"cycle after k = {K} completions: {used} requests (target <= {K + 2}), "
            f"{t_k * 1000:.0f} ms"
        )
        close(engine)
        # 4. whole process, no changes, against vdirsyncer
        if whole_process:
            _, _, peak = run_process(kit_sync_cmd(config), config.parent)  # settle
            sync, vdir_cmd, vdir_env = vdirsyncer(
                work / f"{kind}-{n}-vdirsyncer", server, collection
            )
            sync()  # the first sync downloads everything
            kit_runs, vdir_runs = [], []
            for _ in range(7):  # interleaved, so both see the same machine load
                kit_runs.append(child(kit_sync_cmd(config), config.parent))
                vdir_runs.append(child(vdir_cmd, config.parent, vdir_env))
            for i, what in ((1, "CPU"), (0, "wall")):
                k = [r[i] for r in kit_runs]
                v = [r[i] for r in vdir_runs]
                ratio = statistics.median(k) / statistics.median(v)
                verdict = ("PASS" if ratio <= 0.7 else "FAIL") if i == 1 else "(for reference)"
                line(
                    f"`kit-sync sync`, no changes, whole process ({what}): {spread(k)} vs "
                    f"`vdirsyncer sync` {spread(v)}: ratio {ratio:.2f} (target <= 0.7 on CPU) "
                    f"{verdict}"
                )
            line(f"(peak RSS of that process: {peak} MB)")
        # 5. peak RSS of real processes: provisioning, then a first full listing
        if rss:
            config2 = config
            if n < LARGE:
                other = server.new_collection()
                config2 = write_kit(work / f"{kind}-{n}-rss", server, other, n)
                wall, _, peak = run_process(kit_sync_cmd(config2), config2.parent)
                line(
                    f"`kit-sync sync` provisioning {n:,} as a process: {wall:.1f} s, "
                    f"peak RSS {peak} MB"
                )
            wall, _, peak = run_process(kit_sync_cmd(config2), config2.parent)
            line(f"`kit-sync sync` idle, as a process: {wall:.2f} s, peak RSS {peak} MB")
            drop_caches(config2)
            wall, _, peak2 = run_process(kit_sync_cmd(config2), config2.parent)
            line(
                f"`kit-sync sync` with no listing cache (full listing + multiget of {n:,}): "
                f"{wall:.1f} s, peak RSS {peak2} MB (target <= 100 MB at N = 5,000)"
            )
    finally:
        server.stop()


def drop_caches(config: Path) -> None:
    """The listing cache and the quick check's record: the next run lists in full."""
    with sqlite3.connect(config.parent / "state.sqlite") as db:
        db.execute("DELETE FROM listing_items")
        db.execute("DELETE FROM listing_meta")
        db.execute("DELETE FROM meta WHERE key = 'quick'")


def rss_only(kind: str, n: int, work: Path) -> None:
    """Peak RSS of real `kit-sync sync` processes at N (no bare loops, no timings
    to compare): provisioning, the settling run, a no-change run answered by the
    quick check, a no-change run the full way, a full listing with no cache."""
    line(f"\n## {kind}, N = {n:,}: peak RSS of `kit-sync sync` processes")
    server = make_server(kind, work / f"{kind}-{n}-rss-server")
    try:
        config = write_kit(work / f"{kind}-{n}-rss-kit", server, server.new_collection(), n)
        runs = [
            ("first sync (provisioning)", None),
            ("second sync (its own writes come back)", None),
            ("no-change sync (quick check)", None),
            ("no-change sync, the full way", "quick"),
            ("no-change sync with no listing cache (full listing + multiget)", "all"),
        ]
        for what, drop in runs:
            if drop == "quick":
                with sqlite3.connect(config.parent / "state.sqlite") as db:
                    db.execute("DELETE FROM meta WHERE key = 'quick'")
            elif drop == "all":
                drop_caches(config)
            wall, code, peak = run_process(kit_sync_cmd(config), config.parent)
            assert code == 0, what
            verdict = "PASS" if peak <= 100 else "FAIL"
            line(f"{what}: {wall:.1f} s, peak RSS {peak} MB (target <= 100 MB) {verdict}")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", action="store_true", help="also N = 5,000")
    parser.add_argument("--servers", default="radicale,xandikos")
    parser.add_argument("--sizes", default=None, help="comma-separated N (overrides)")
    parser.add_argument(
        "--rss-only", action="store_true", help="only the peak RSS of kit-sync processes at N"
    )
    args = parser.parse_args()
    sizes = [100, 1000] + ([5000] if args.large else [])
    if args.sizes:
        sizes = [int(x) for x in args.sizes.split(",")]
    line(f"# kit-sync CalDAV benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    line(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="kit-caldav-bench-") as tmp:
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")  # the quick check's pointers
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: see local_bench
        for kind in args.servers.split(","):
            for n in sizes:
                if args.rss_only:
                    rss_only(kind, n, Path(tmp))
                    continue
                bench(
                    kind,
                    n,
                    Path(tmp),
                    whole_process=n == 1000 or (n == max(sizes) and 1000 not in sizes),
                    rss=n == max(sizes),
                )


if __name__ == "__main__":
    main()
