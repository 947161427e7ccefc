"""Hardening (issue 11): the files kit-sync keeps, full disks and read-only state,
the single-instance lock, stopping, secrets in URLs, JSON logs.

Real files, real SQLite and real processes. A full disk is a real tmpfs of a few
KB mounted in a user namespace (`unshare -rm`, no privileges needed) where the
kernel allows it; the same code path is also driven by an ENOSPC injected at the
OS call, which runs everywhere. Each test failed on the main of 2026-12-02."""

from __future__ import annotations

import copy
import errno
import logging
import os
import shlex
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from kit import BASE_CONFIG, World

from kit_sync.model import Status

ANN = "ann-example-com"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KIT_SYNC")}


def kit(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kit_sync", *args],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path, copy.deepcopy(BASE_CONFIG))


def many(n: int) -> dict[str, object]:
    data = copy.deepcopy(BASE_CONFIG)
    data["contacts"] = [
        {"name": f"Person {i:03d}", "email": f"p{i}@example.com", "tier": "core"} for i in range(n)
    ]
    return data


# --- 2: file modes --------------------------------------------------------------------------


def test_state_files_and_folders_are_private_from_the_start(world: World) -> None:
    os.umask(0o022)
    world.edit_config(state="private/state.sqlite", backend={"type": "local", "path": "tasks"})
    engine = world.engine()
    try:
        engine.run_cycle()
        folder = world.dir / "private"
        assert mode(folder) == 0o700
        names = sorted(p.name for p in folder.iterdir())
        assert "state.sqlite-wal" in names  # open: the journal files exist now
        for path in folder.iterdir():
            assert mode(path) == 0o600, path.name
    finally:
        engine.state.close()
    assert mode(world.folder) == 0o700  # a task folder kit-sync creates
    assert {mode(p) for p in world.folder.iterdir()} == {0o600}


def test_existing_state_files_and_the_default_folder_are_tightened_with_a_log_line(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "xdg"
    default = home / "kit-sync"
    default.mkdir(parents=True)
    default.chmod(0o755)
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    data = copy.deepcopy(BASE_CONFIG)
    del data["state"]
    world.write_config(data)
    state = default / "config.sqlite"
    db = sqlite3.connect(state)  # an older kit-sync's file, world-readable
    db.execute("CREATE TABLE x (y)")
    db.close()
    state.chmod(0o644)
    from kit_sync.app import load, open_engine

    with caplog.at_level(logging.INFO, logger="kit_sync"):
        engine = open_engine(load(world.config_path))
    engine.state.close()
    engine.backend.close()
    assert engine.state.path == state
    told = [r.getMessage() for r in caplog.records if "private" in r.getMessage()]
    assert mode(state) == 0o600 and any(str(state) in m and "644" in m for m in told)
    assert mode(default) == 0o700 and any(str(default) in m for m in told)


@pytest.mark.integration
def test_the_caldav_cache_is_private(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from servers import Kit, shared

    server = shared("radicale", request)
    kit_ = Kit(tmp_path, server, server.new_collection())
    assert kit_.cli("sync").returncode == 0
    # The listing cache lives in the state file (state.ListingCache), which is 0600;
    # no other file holds it.
    assert not list(tmp_path.glob("*caldav-cache*"))
    with sqlite3.connect(tmp_path / "state.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM listing_items").fetchone()[0] > 0
    assert mode(tmp_path / "state.sqlite") == 0o600


# --- 9 and 10: a full disk, a read-only state file ------------------------------------------


def namespaces() -> bool:
    """Can this machine mount a tmpfs in a user namespace without privileges?"""
    if not shutil.which("unshare"):
        return False
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k none /mnt 2>/dev/null"],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def in_namespace(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`script` (sh) in a private mount namespace; $KIT runs kit-sync."""
    kit_cmd = shlex.join([sys.executable, "-m", "kit_sync"])
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"KIT={shlex.quote(kit_cmd)}\n{script}"],
        cwd=cwd,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


needs_namespaces = pytest.mark.skipif(
    not namespaces(), reason="user namespaces are off here; the ENOSPC-injection tests cover it"
)


def sections(out: str) -> list[str]:
    return out.split("=====\n")


@needs_namespaces
def test_a_full_task_folder_on_a_real_small_disk(tmp_path: Path) -> None:
    world = World(tmp_path, many(60))
    world.folder.mkdir()
    done = in_namespace(
        "mount -t tmpfs -o size=32k none tasks || exit 99\n"
        '$KIT -c config.yaml sync; echo "rc=$?"\n'
        "ls -a tasks | grep -c kit-sync-tmp; echo =====\n"
        "mount -o remount,size=4m tasks\n"
        '$KIT -c config.yaml sync; echo "rc=$?"\n'
        "cp -a tasks after\n",
        tmp_path,
    )
    first, second = sections(done.stdout)
    assert "rc=1" in first, done.stdout + done.stderr
    assert "no space left on the disk of the task folder" in done.stderr
    assert str(world.folder) in done.stderr and "Traceback" not in done.stderr
    assert first.strip().endswith("0")  # no temp file left behind
    assert "rc=0" in second
    from zoneinfo import ZoneInfo

    from kit_sync.backends.local import LocalBackend

    listing = LocalBackend(type("C", (), {"path": tmp_path / "after"})(), ZoneInfo("UTC"))
    found = listing.fetch_listing()
    assert found.problems == []  # nothing half-written
    opens = [t.contact_id for t in found.tasks if t.status is Status.OPEN]
    assert len(opens) == 60 and len(set(opens)) == 60


@needs_namespaces
def test_a_full_state_disk_on_a_real_small_disk(tmp_path: Path) -> None:
    world = World(tmp_path, many(200))
    world.edit_config(state="st/state.sqlite")
    (tmp_path / "st").mkdir()
    done = in_namespace(
        "mount -t tmpfs -o size=48k none st || exit 99\n"
        "head -c 20000 /dev/zero > st/filler\n"
        '$KIT -c config.yaml sync; echo "rc=$?"; echo =====\n'
        "rm st/filler; mount -o remount,size=4m st\n"
        '$KIT -c config.yaml sync; echo "rc=$?"\n'
        '$KIT -c config.yaml sync; echo "rc=$?"\n',
        tmp_path,
    )
    first, second = sections(done.stdout)
    assert "rc=1" in first, done.stdout + done.stderr
    assert "no space left on the disk of the state file" in done.stderr
    assert "st/state.sqlite" in done.stderr and "Traceback" not in done.stderr
    assert second.count("rc=0") == 2, done.stdout + done.stderr
    assert "created 0, regenerated 0, updated 0, cancelled 0, failed 0" in second
    opens = [t.contact_id for t in world.open_tasks()]
    assert len(opens) == 200 and len(set(opens)) == 200


def test_enospc_in_the_task_folder_is_a_clear_error_and_the_daemon_backs_off(
    world: World, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import kit_sync.backends.local as local

    real_fsync = os.fsync

    def full(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(local.os, "fsync", full)
    from test_service_health import cli

    ran = cli(capfd, "--config", str(world.config_path), "sync")
    assert ran.code == 1
    assert f"no space left on the disk of the task folder {world.folder}" in ran.err
    assert not list(world.folder.iterdir())  # neither a task nor a temp file

    from kit_sync.daemon import Daemon

    engine = world.engine()
    daemon = Daemon(engine, engine.config)
    daemon.cycle()
    assert daemon.failures == 1 and daemon.not_before is not None
    monkeypatch.setattr(local.os, "fsync", real_fsync)
    daemon.not_before = None
    daemon.cycle()
    assert daemon.failures == 0
    assert len(world.open_tasks()) == 2
    engine.state.close()


def test_a_full_state_database_is_a_clear_error_that_loses_nothing(
    world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    """SQLite's own SQLITE_FULL (a page limit stands in for the disk)."""
    from kit_sync.errors import DiskFull

    world.write_config(many(300))
    engine = world.engine()
    pages = engine.state.db.execute("PRAGMA page_count").fetchone()[0]
    engine.state.db.execute(f"PRAGMA max_page_count = {pages + 1}")
    with pytest.raises(DiskFull, match="no space left on the disk of the state file"):
        engine.run_cycle()
    engine.state.close()
    assert world.sync().ok  # the next run carries on
    assert len(world.open_tasks()) == 300


@pytest.mark.parametrize("how", ["chmod", "read-only-mount"])
def test_a_read_only_state_file_is_called_read_only_not_damaged(world: World, how: str) -> None:
    world.edit_config(state="st/state.sqlite")
    assert world.sync().ok
    state = world.dir / "st" / "state.sqlite"
    if how == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root writes to read-only files; the read-only mount case covers it")
        state.chmod(0o444)
        done = kit(world.dir, "-c", "config.yaml", "sync")
        out, code = done.stderr, done.returncode
    else:
        if not namespaces():
            pytest.skip("user namespaces are off here; the chmod case covers it")
        done = in_namespace(
            "mount --bind st st && mount -o remount,bind,ro st || exit 99\n"
            "$KIT -c config.yaml sync\n",
            world.dir,
        )
        out, code = done.stderr, done.returncode
    assert code == 2, out
    assert "read-only" in out and "damaged" not in out and "state.sqlite" in out
    assert "do not delete it" in out


# --- 1: a password in backend.url, and who may ask /healthz ---------------------------------

PASSWORD = "Pa55-w0rd-in-the-url"


def caldav_world(tmp_path: Path, **health: object) -> World:
    from test_service_health import free_port

    data = copy.deepcopy(BASE_CONFIG)
    # Nothing listens on this port: every cycle fails with an error naming the server.
    data["backend"] = {
        "type": "caldav",
        "url": f"http://alice:{PASSWORD}@127.0.0.1:{free_port()}/dav/",
        "timeout": 5,
    }
    data["sync"] = {"every": "2 seconds"}
    if health:
        data["health"] = health
    return World(tmp_path, data)


def every_file_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_a_password_in_the_backend_url_is_masked_in_errors_state_and_health(
    tmp_path: Path,
) -> None:
    world = caldav_world(tmp_path)
    done = kit(tmp_path, "-c", "config.yaml", "sync")
    assert done.returncode == 3, done.stderr
    assert "alice:***@127.0.0.1" in done.stderr and PASSWORD not in done.stderr
    health = kit(tmp_path, "-c", "config.yaml", "health", "--json")
    assert health.returncode == 1 and "cannot reach" in health.stdout
    assert PASSWORD not in health.stdout
    config = world.config_path.read_bytes()
    world.config_path.unlink()
    assert PASSWORD.encode() not in every_file_bytes(tmp_path)  # state, WAL, cache
    world.config_path.write_bytes(config)


def get(url: str, token: str | None = None) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


@pytest.mark.slow
def test_healthz_needs_the_token_and_shows_no_password(tmp_path: Path) -> None:
    from test_service_health import free_port, wait_for

    port = free_port()
    token = "t0ken-for-the-monitor"
    world = caldav_world(tmp_path, listen=f"127.0.0.1:{port}", token={"env": "HEALTH_TOKEN"})
    log = tmp_path / "run.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kit_sync", "--log-format", "json", "-c", "config.yaml", "run"],
        cwd=tmp_path,
        env=env() | {"HEALTH_TOKEN": token},
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: "cannot reach" in get(base + "/healthz", token)[1], "a failed cycle")
        status, body = get(base + "/healthz", token)
        assert status == 503
        assert "cannot reach" in body and "alice:***@" in body and PASSWORD not in body
        assert get(base + "/healthz")[0] == 401
        assert get(base + "/metrics", "wrong")[0] == 401
        assert get(base + "/metrics", token)[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert PASSWORD not in text and token not in text
    assert world.config_path.exists()


@pytest.mark.parametrize(
    ("listen", "token", "ok"),
    [
        ("0.0.0.0:8765", None, False),
        ("192.168.1.5:8765", None, False),
        ("[::]:8765", None, False),
        ("myhost.example:8765", None, False),
        ("0.0.0.0:8765", "a-long-secret", True),
        ("127.0.0.1:8765", None, True),
        ("[::1]:8765", None, True),
        ("localhost:8765", None, True),
    ],
)
def test_health_listen_beyond_this_machine_needs_a_token(
    world: World, capfd: pytest.CaptureFixture[str], listen: str, token: str | None, ok: bool
) -> None:
    from test_service_health import cli

    health: dict[str, object] = {"listen": listen}
    if token:
        health["token"] = token
    world.edit_config(health=health)
    ran = cli(capfd, "--config", str(world.config_path), "check")
    assert ran.code == (0 if ok else 2), ran.text
    if not ok:
        assert "health" in ran.err and "set health.token" in ran.err


# --- 11: one kit-sync at a time on one state file -------------------------------------------


def start_run(world: World, *extra_env: tuple[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    log = world.dir / f"run-{len(list(world.dir.glob('run-*.log')))}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kit_sync", "-c", "config.yaml", "run"],
        cwd=world.dir,
        env=env() | dict(extra_env),
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    return proc, log


def stop_run(proc: subprocess.Popen[bytes]) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@pytest.mark.slow
def test_a_second_daemon_exits_and_one_shot_commands_wait_for_the_running_cycle(
    world: World,
) -> None:
    from test_service_health import wait_for

    world.write_config(many(40) | {"sync": {"every": "1 second"}})
    proc, log = start_run(world)
    try:
        wait_for(lambda: "cycle done" in log.read_text(), "the daemon's first cycle")
        second = kit(world.dir, "-c", "config.yaml", "run", timeout=60)
        assert second.returncode == 2, second.stderr
        assert f"already running (pid {proc.pid})" in second.stderr
        # One-shot commands run between the daemon's cycles, never during one.
        for command in (["sync"], ["status", "--json"], ["touch", "p1@example.com"], ["sync"]):
            done = kit(world.dir, "-c", "config.yaml", *command)
            assert done.returncode == 0, done.stderr
            assert "interrupted" not in done.stderr
        assert proc.poll() is None
    finally:
        assert stop_run(proc) == 0
    assert "interrupted" not in log.read_text()
    opens = [t.contact_id for t in world.open_tasks()]
    assert len(opens) == 40 and len(set(opens)) == 40


def test_sync_waits_for_the_cycle_lock_and_gives_up_after_the_bound(world: World) -> None:
    from test_service_health import wait_for

    from kit_sync.lock import Busy, StateLock

    err = world.dir / "sync.err"
    with StateLock(world.dir / "state.sqlite").cycle():
        proc = subprocess.Popen(
            [sys.executable, "-m", "kit_sync", "-c", "config.yaml", "sync"],
            cwd=world.dir,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=err.open("w"),
            text=True,
        )
        try:
            wait_for(lambda: "waiting for the sync cycle" in err.read_text(), "sync to wait")
            assert f"another kit-sync (pid {os.getpid()})" in err.read_text()
            assert proc.poll() is None  # it waits for us...
            assert not world.folder.exists() or not list(world.folder.iterdir())
        except BaseException:
            proc.kill()
            raise
    out, _ = proc.communicate(timeout=60)  # ...and runs once we let go
    assert proc.returncode == 0, err.read_text()
    assert "created 2" in out

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from kit_sync.lock import StateLock\n"
            "with StateLock(Path(sys.argv[1])).cycle():\n"
            "    print('held', flush=True); time.sleep(60)\n",
            str(world.dir / "state.sqlite"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        busy = f"another kit-sync \\(pid {holder.pid}\\) has been syncing"
        with (
            pytest.raises(Busy, match=busy),
            StateLock(world.dir / "state.sqlite").cycle(wait=0.5),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()


# --- 12: SIGTERM while the backend hangs ----------------------------------------------------


class Silent:
    """A TCP server that accepts connections and never answers (a hung backend)."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.mark.slow
def test_sigterm_stops_the_daemon_at_once_while_a_backend_call_hangs(world: World) -> None:
    import signal
    import time

    from test_service_health import wait_for

    silent = Silent()
    try:
        data = copy.deepcopy(BASE_CONFIG)
        data["backend"] = {
            "type": "caldav",
            "url": f"http://127.0.0.1:{silent.port}/dav/",
            "timeout": 120,  # the hung call would last this long
        }
        world.write_config(data)
        proc, log = start_run(world)
        try:
            wait_for(lambda: silent.conns, "kit-sync to be waiting on the server")
            time.sleep(0.5)
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=15)
            took = time.monotonic() - start
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert code == 0, log.read_text()
        assert took < 15
        text = log.read_text()
        assert "received SIGTERM; stopping" in text
        assert "stopping without waiting" in text
        print(f"SIGTERM with a hung backend call: stopped in {took:.2f} s")
    finally:
        silent.close()


# --- 13: --log-format json for everything on the log stream ----------------------------------

CRASH = """
import sys, threading, warnings
import kit_sync.engine as engine

def boom(self, *args, **kwargs):
    warnings.warn("a library's deprecation warning")
    print("a library printing to stderr\\nover two lines", file=sys.stderr)
    threading.Thread(target=lambda: 1 / 0, name="helper").start()
    raise RuntimeError("a bug nobody caught")

engine.Engine.run_cycle = boom
from kit_sync.cli import main
main(sys.argv[1:])
"""


def json_records(text: str) -> list[dict[str, object]]:
    import json

    return [json.loads(line) for line in text.splitlines()]  # each line one object


def test_json_logs_keep_tracebacks_warnings_and_stray_text_as_json_objects(
    world: World,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CRASH, "--log-format", "json", "-c", "config.yaml", "sync"],
        cwd=world.dir,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    records = json_records(done.stderr)
    crash = [r for r in records if r["level"] == "critical" and "a bug nobody" in str(r["message"])]
    assert len(crash) == 1
    assert "Traceback" in str(crash[0]["error"]) and "RuntimeError" in str(crash[0]["error"])
    thread = [r for r in records if "ZeroDivisionError" in str(r.get("error", ""))]
    assert len(thread) == 1 and "helper" in str(thread[0]["message"])
    messages = [str(r["message"]) for r in records]
    assert any("deprecation warning" in m for m in messages)
    assert "a library printing to stderr" in messages and "over two lines" in messages


@pytest.mark.parametrize(
    "args",
    [["-c", "missing.yaml", "sync"], ["-c", "config.yaml", "sync", "--no-such-option"]],
    ids=["config-error", "usage-error"],
)
def test_json_logs_keep_errors_as_json_objects(world: World, args: list[str]) -> None:
    data = copy.deepcopy(BASE_CONFIG)
    data["tiers"]["inner"]["every"] = "sometimes"
    done = kit(world.dir, "--log-format", "json", *args)
    assert done.returncode == 2
    assert json_records(done.stderr)
    world.write_config(data)
    done = kit(world.dir, "--log-format", "json", "-c", "config.yaml", "sync")
    assert done.returncode == 2
    (record,) = json_records(done.stderr)  # the problem list stays in one object
    assert "sometimes" in str(record["message"]) and record["exit_code"] == 2
