"""A real Dovecot IMAP server for the touch-source tests (Debian package
dovecot-imapd, installed by scripts/test.sh).

Each server runs unprivileged on a free port on 127.0.0.1 with a generated config
and its own folders (plain login, no TLS: that is only allowed on 127.0.0.1). Run
as root (CI), the whole server drops to the `dovecot` system user with setpriv.
Messages go in with APPEND, with the Date header and INTERNALDATE the test wants.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from servers import free_port, wait_for_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

CONFIG = """\
base_dir = {d}/run
state_dir = {d}/state
instance_name = kit-dovecot-{port}
listen = 127.0.0.1
protocols = imap
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {d}/dovecot.log
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = 1
first_valid_gid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Archive {{
    auto = subscribe
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
service anvil {{
  chroot =
}}
"""


def available() -> bool:
    return Path(DOVECOT).exists()


class Dovecot:
    user = "me@example.com"
    password = "imap-s3cret"

    def __init__(self, *, port: int | None = None, tls: tuple[Path, Path] | None = None) -> None:
        self.port = port or free_port()
        #: (certificate, key): STARTTLS on `port` and implicit TLS on `imaps_port`.
        self.tls = tls
        self.imaps_port = free_port() if tls else 0
        # Not under pytest's tmp_path: that is 0700 root in CI, and the server runs
        # as the dovecot user.
        self.dir = Path(tempfile.mkdtemp(prefix="kit-dovecot-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Dovecot:
        root = os.geteuid() == 0
        run_as = pwd.getpwnam("dovecot") if root else pwd.getpwuid(os.geteuid())
        for sub in ("run", "state", "home"):
            (self.dir / sub).mkdir(exist_ok=True)
        (self.dir / "users").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        config = self.dir / "dovecot.conf"
        ssl = "ssl = no"
        if self.tls:
            for name, source in zip(("cert.pem", "key.pem"), self.tls, strict=True):
                shutil.copyfile(source, self.dir / name)
            ssl = f"ssl = yes\nssl_cert = <{self.dir}/cert.pem\nssl_key = <{self.dir}/key.pem"
        config.write_text(
            CONFIG.format(
                d=self.dir,
                ssl=ssl,
                imaps_port=self.imaps_port,
                port=self.port,
                user=run_as.pw_name,
                group=_group(run_as.pw_gid),
                uid=run_as.pw_uid,
                gid=run_as.pw_gid,
            )
        )
        argv = [DOVECOT, "-F", "-c", str(config)]
        if root:
            for path in [self.dir, *self.dir.rglob("*")]:
                os.chown(path, run_as.pw_uid, run_as.pw_gid)
            argv = [
                "setpriv",
                f"--reuid={run_as.pw_uid}",
                f"--regid={run_as.pw_gid}",
                "--clear-groups",
                *argv,
            ]
        out = (self.dir / "stdout.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.proc, self.dir / "stdout.log")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- the mailbox ------------------------------------------------------------------------

    def client(self) -> Any:
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=30)
        client.login(self.user, self.password)
        return client

    def append(
        self,
        folder: str,
        when: datetime,
        *,
        to: str = "",
        cc: str = "",
        bcc: str = "",
        sender: str = "Me <me@example.com>",
        subject: str = "hello",
        message_id: str | None = None,
        date_header: str | None = None,
    ) -> str:
        """APPEND one message; returns its Message-ID. `when` is aware: its offset
        goes into the Date header as a mail client writes it."""
        message_id = message_id if message_id is not None else f"<{uuid.uuid4().hex}@example.com>"
        lines = [
            f"From: {sender}",
            *([f"To: {to}"] if to else []),
            *([f"Cc: {cc}"] if cc else []),
            *([f"Bcc: {bcc}"] if bcc else []),
            f"Subject: {subject}",
            f"Date: {date_header if date_header is not None else format_datetime(when)}",
            *([f"Message-ID: {message_id}"] if message_id else []),
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "",
            "A body kit-sync must never read.",
            "",
        ]
        with contextlib.closing(_Closing(self.client())) as c:
            c.client.append(folder, "\r\n".join(lines).encode(), msg_time=when)
        return message_id

    def append_many(self, folder: str, messages: list[bytes], when: datetime) -> None:
        """APPEND raw messages over one connection (MULTIAPPEND would be faster; a
        loop keeps the fixture simple)."""
        with contextlib.closing(_Closing(self.client())) as c:
            for raw in messages:
                c.client.append(folder, raw, msg_time=when)

    def create_folder(self, name: str) -> None:
        with contextlib.closing(_Closing(self.client())) as c:
            c.client.create_folder(name)


class _Closing:
    def __init__(self, client: Any) -> None:
        self.client = client

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.logout()


def _group(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


@contextlib.contextmanager
def running(**kw: Any) -> Iterator[Dovecot]:
    server = Dovecot(**kw)
    try:
        server.start()
        yield server
    finally:
        server.remove()


def require_dovecot() -> None:
    """Skip without Dovecot locally; in CI (CI=true) its absence is a failure."""
    if available():
        return
    message = "Dovecot is not installed (apt-get install dovecot-imapd; scripts/test.sh does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    require_dovecot()
    with running() as server:
        yield server


_SHARED: list[Dovecot] = []


def shared_dovecot(request: pytest.FixtureRequest) -> Dovecot:
    """The session's Dovecot, started on first use and removed at the end of the
    session (tests that share it each use folders of their own)."""
    require_dovecot()
    if _SHARED and _SHARED[0].proc is not None and _SHARED[0].proc.poll() is None:
        return _SHARED[0]
    server = Dovecot().start()
    _SHARED[:] = [server]
    request.config.add_cleanup(server.remove)
    return server
