"""The kit-sync CLI on Exchange, in real processes: kill -9 in the worst window
(the server applied a write, the client never saw the answer), exit codes and
messages for refused credentials and a throttling server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from ews_server import EwsServer
from ews_server.server import WRITES
from ews_server.testing import PASSWORD, new_mailbox

from kit_sync.backends.exchange import ExchangeBackend
from kit_sync.cadence import Interval
from kit_sync.config import load_config
from kit_sync.model import KitTask, Status
from kit_sync.state import State

pytestmark = pytest.mark.integration

ZONE = "Pacific/Auckland"
N = 12


@pytest.fixture(scope="module")
def ews() -> Iterator[EwsServer]:
    with EwsServer() as server:
        yield server


def write_config(folder: Path, server: EwsServer, email: str, **backend: Any) -> Path:
    config = {
        "timezone": ZONE,
        "backend": {
            "type": "exchange",
            "email": email,
            "service_endpoint": server.url,
            "password": {"env": "KIT_TEST_EWS_PASSWORD"},
            "auth": "basic",
            "version": "2016",
            "max_retry_wait": 2,
            "timeout": 20,
        }
        | backend,
        "state": "state.sqlite",
        "tiers": {"inner": {"every": "3 weeks"}, "wide": {"every": "2 months"}},
        "contacts": [
            {
                "name": f"Person {i:02d}",
                "email": f"p{i}@example.com",
                "tier": "inner" if i % 2 else "wide",
            }
            for i in range(N)
        ],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def every_of(contact_id: str) -> Interval:
    number = int(contact_id.split("-")[0][1:])
    return Interval.parse("3 weeks" if number % 2 else "2 months")


def cli(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "kit_sync", "--quiet", "--config", str(config), *args]


def environ(password: str = PASSWORD) -> dict[str, str]:
    return {**os.environ, "KIT_TEST_EWS_PASSWORD": password}


def run(config: Path, *args: str, kill_at_write: int = 0, server: EwsServer | None = None) -> int:
    """Run the CLI; with kill_at_write=k, SIGKILL it right after the server applied
    its k-th write and before the answer goes out."""
    holder: dict[str, subprocess.Popen[bytes]] = {}
    writes = 0

    def hook(op: str) -> None:
        nonlocal writes
        if op in WRITES:
            writes += 1
            if writes == kill_at_write:
                os.kill(holder["proc"].pid, signal.SIGKILL)
                holder["proc"].wait(timeout=30)

    if kill_at_write and server is not None:
        server.after_write = hook
    try:
        proc = subprocess.Popen(
            cli(config, *args), env=environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        holder["proc"] = proc
        proc.communicate(timeout=120)
    finally:
        if server is not None:
            server.after_write = None
    return proc.returncode


def listing(config: Path) -> list[KitTask]:
    os.environ["KIT_TEST_EWS_PASSWORD"] = PASSWORD
    loaded, _ = load_config(config)
    backend = ExchangeBackend(loaded.backend, ZoneInfo(ZONE))
    try:
        return backend.fetch_listing().tasks
    finally:
        backend.close()


def assert_one_open_each(config: Path) -> dict[str, KitTask]:
    tasks = listing(config)
    opens = Counter(t.contact_id for t in tasks if t.status is Status.OPEN)
    assert len(opens) == N, opens
    assert set(opens.values()) == {1}, opens
    assert len({t.uid for t in tasks}) == len(tasks)
    return {t.contact_id: t for t in tasks if t.status is Status.OPEN}


@pytest.mark.slow
def test_kill_9_after_a_write_never_duplicates_nor_loses_a_completion(
    tmp_path: Path, ews: EwsServer
) -> None:
    email = new_mailbox(ews)
    config = write_config(tmp_path, ews, email)
    folder = ews.store.distinguished(email, "tasks")
    # Provisioning sends the N creates in one CreateItem (batches of 100): killed
    # right after it landed, before the answer with the new ids came back. The next
    # run finds them by their kit UID and creates none again.
    assert run(config, "sync", kill_at_write=1, server=ews) == -signal.SIGKILL
    assert len(ews.store.items_in(folder)) == N
    assert run(config, "sync") == 0
    opens = assert_one_open_each(config)
    assert len(ews.store.items_in(folder)) == N

    # Half the people were contacted: some ticked off in Outlook, some on a phone
    # (the server regenerates, counting in UTC).
    now = datetime.now(UTC)
    local_day = now.astimezone(ZoneInfo(ZONE)).date()
    done = sorted(opens)[: N // 2]
    for n, cid in enumerate(done):
        if n % 2:
            ews.store.complete_like_outlook(opens[cid].href, local_day, ZoneInfo(ZONE))
        else:
            ews.store.complete_on_server(opens[cid].href)
    # The fixing cycle is killed twice right after an UpdateItem landed.
    for k in (2, 1):
        assert run(config, "sync", kill_at_write=k, server=ews) == -signal.SIGKILL
    assert run(config, "sync") == 0
    after = assert_one_open_each(config)
    tasks = listing(config)
    for cid in done:
        assert after[cid].href == opens[cid].href
        assert after[cid].due == every_of(cid).after(local_day)
        assert len([t for t in tasks if t.contact_id == cid and t.status is Status.COMPLETED]) == 1
    state = State(tmp_path / "state.sqlite")
    try:
        touched = {x.contact_id: x.day for x in state.touches()}
    finally:
        state.close()
    assert touched == dict.fromkeys(done, local_day)
    # A touch --on an earlier day, killed right after the completing UpdateItem.
    cid = sorted(after)[-1]
    day = local_day - timedelta(days=2)
    number = int(cid.split("-")[0][1:])
    killed = run(
        config,
        "touch",
        f"p{number}@example.com",
        "--on",
        day.isoformat(),
        kill_at_write=1,
        server=ews,
    )
    assert killed == -signal.SIGKILL
    assert run(config, "sync") == 0
    final = assert_one_open_each(config)
    assert final[cid].due == every_of(cid).after(day)
    assert final[cid].meta.anchor == day
    assert run(config, "sync") == 0


def test_wrong_password_exits_3_with_a_readable_message(tmp_path: Path, ews: EwsServer) -> None:
    email = new_mailbox(ews)
    config = write_config(tmp_path, ews, email)
    proc = subprocess.run(
        cli(config, "sync"), env=environ("not-the-password"), capture_output=True, text=True
    )
    assert proc.returncode == 3
    assert "refused the credentials" in proc.stderr
    assert "not-the-password" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_server_that_asks_to_wait_too_long_exits_3_quickly(
    tmp_path: Path, ews: EwsServer
) -> None:
    email = new_mailbox(ews)
    config = write_config(tmp_path, ews, email, max_retry_wait=1)
    ews.busy(times=1, back_off_ms=600_000)
    proc = subprocess.run(cli(config, "sync"), env=environ(), capture_output=True, text=True)
    assert proc.returncode == 3
    assert "busy" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_touch_through_the_cli_counts_from_the_given_day(tmp_path: Path, ews: EwsServer) -> None:
    email = new_mailbox(ews)
    config = write_config(tmp_path, ews, email)
    assert run(config, "sync") == 0
    today = datetime.now(UTC).astimezone(ZoneInfo(ZONE)).date()
    day = today - timedelta(days=3)
    proc = subprocess.run(
        cli(config, "touch", "p1@example.com", "--on", day.isoformat()),
        env=environ(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"next due {day + timedelta(weeks=3)}" in proc.stdout
    opens = assert_one_open_each(config)
    assert opens["p1-example-com"].due == day + timedelta(weeks=3)
    assert today != day  # the server's stamp was today; the touch is `day`
