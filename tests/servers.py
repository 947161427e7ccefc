"""Real CalDAV servers for the tests: Radicale, Xandikos and Cyrus IMAP, as
subprocesses on 127.0.0.1 and free ports, with their data in a temporary folder.

Radicale and Xandikos come from PyPI (the `test` extra); Cyrus (the server Fastmail
runs, and the strictest of the three) from the Debian packages cyrus-imapd and
cyrus-caldav, which scripts/test.sh installs. A server can be stopped, killed and started
again on the same port and data, which the fault tests use. `Phone` is an
independent client (plain httpx, not the caldav library kit-sync uses) that plays a
phone app or a desktop client writing to the same task list.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin

import httpx
import pytest

KINDS = ("radicale", "xandikos", "cyrus")

MKCALENDAR = """<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop>
    <D:displayname>{name}</D:displayname>
    <C:supported-calendar-component-set>
      <C:comp name="{component}"/>
    </C:supported-calendar-component-set>
  </D:prop></D:set>
</C:mkcalendar>"""

PROPFIND_ETAGS = """<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:resourcetype/></D:prop></D:propfind>"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes] | None, log: Path, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:]
            raise RuntimeError(f"server exited with {proc.returncode}:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(
        f"server did not listen on {port} within {timeout} s:\n{log.read_text()[-3000:]}"
    )


class DavServer:
    """One server process. `root` is what a user would put in `url:`."""

    kind = ""
    user = "alice"
    password = "s3cret"

    def __init__(self, folder: Path, *, port: int | None = None) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = port or free_port()
        self.log = folder / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    #: (certificate, key) when the server speaks TLS; the certificate is its own CA.
    tls: tuple[Path, Path] | None = None

    @property
    def root(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/"

    @property
    def home(self) -> str:
        """Where this user's calendars live (for making collections directly)."""
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def auth(self, url: str | None = None) -> tuple[str, str] | None:
        """The login for `url` (a task list made by new_collection), or the user's."""
        return (self.user, self.password)

    # --- process ------------------------------------------------------------------------

    def start(self) -> DavServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for_port(self.port, self.proc, self.log)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def kill(self) -> None:
        """kill -9: the server is gone without a goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    # --- collections --------------------------------------------------------------------

    def http(self, url: str | None = None) -> httpx.Client:
        import ssl

        verify: Any = ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else True
        return httpx.Client(auth=self.auth(url), timeout=30, verify=verify)

    def home_of(self, owner: str | None) -> str:
        """Where a new task list goes: the user's home (`owner` matters on Cyrus)."""
        return self.home

    def new_collection(
        self, name: str | None = None, owner: str | None = None, component: str = "VTODO"
    ) -> str:
        """A fresh, empty VTODO task list (or a calendar of `component`); returns its URL."""
        slug = uuid.uuid4().hex[:12]
        url = urljoin(self.root, self.home_of(owner) + slug + "/")
        with self.http(url) as http:
            r = http.request(
                "MKCALENDAR",
                url,
                content=MKCALENDAR.format(
                    name=name or f"tasks {slug}", component=component
                ).encode(),
                headers={"Content-Type": "application/xml; charset=utf-8"},
            )
            assert r.status_code in (200, 201), (r.status_code, r.text)
        return url

    def provision(self) -> None:
        """Make sure the user's home exists (a first login)."""


class Radicale(DavServer):
    kind = "radicale"

    def __init__(
        self,
        folder: Path,
        *,
        port: int | None = None,
        htpasswd: bool = False,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        super().__init__(folder, port=port)
        self.htpasswd = htpasswd
        self.tls = tls

    @property
    def home(self) -> str:
        return f"/{self.user}/"

    def command(self) -> list[str]:
        config = self.folder / "radicale.conf"
        auth = "[auth]\ntype = none\n"
        if self.htpasswd:
            users = self.folder / "users"
            users.write_text(f"{self.user}:{self.password}\n")
            auth = (
                f"[auth]\ntype = htpasswd\nhtpasswd_filename = {users}\n"
                "htpasswd_encryption = plain\ndelay = 0\n"
            )
        config.write_text(
            f"[server]\nhosts = 127.0.0.1:{self.port}\nmax_connections = 64\n{self._tls()}\n"
            f"{auth}\n"
            f"[storage]\nfilesystem_folder = {self.data}\n\n"
            "[rights]\ntype = owner_only\n\n[logging]\nlevel = warning\n"
        )
        return [sys.executable, "-m", "radicale", "--config", str(config)]

    def _tls(self) -> str:
        if not self.tls:
            return ""
        return f"ssl = True\ncertificate = {self.tls[0]}\nkey = {self.tls[1]}\n"

    def provision(self) -> None:
        with self.http() as http:
            http.request("PROPFIND", urljoin(self.root, self.home), headers={"Depth": "0"})

    def forget_sync_tokens(self, collection_url: str) -> None:
        """Radicale's token history for a collection, gone (as after its max age)."""
        path = unquote(httpx.URL(collection_url).path).strip("/")
        cache = self.data / "collection-root" / path / ".Radicale.cache" / "sync-token"
        if cache.exists():
            for f in cache.iterdir():
                f.unlink()


class Xandikos(DavServer):
    kind = "xandikos"
    user = "user"

    @property
    def home(self) -> str:
        return "/user/calendars/"

    def auth(self, url: str | None = None) -> tuple[str, str] | None:
        return None  # Basic auth needs TLS on Xandikos; it runs open on 127.0.0.1 here

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "xandikos.web",
            "--listen-address",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--directory",
            str(self.data),
            "--defaults",
            "--no-detect-systemd",
            "--state-dir",
            str(self.folder / "state"),
        ]


CYRUS_BIN = Path("/usr/lib/cyrus/bin")


def cyrus_installed() -> bool:
    return (CYRUS_BIN / "master").exists() and (CYRUS_BIN / "httpd").exists()


class Cyrus(DavServer):
    """Cyrus IMAP with its CalDAV module (httpd), run by its own `master` process.

    Everything lives in one folder with a generated imapd.conf/cyrus.conf; the user and
    user is in a SASL password file made with `saslpasswd2`. Cyrus provisions a user's
    calendar home only once their mailbox exists; the mailbox is made the way a mail
    server makes it: Cyrus's own `deliver` hands a first message to its lmtpd, which
    creates the INBOX (`autocreate_post`). No imapd: Debian's cyrus-imapd conflicts with
    dovecot-imapd (both are an `imap-server`), which the IMAP touch-source tests need;
    the CalDAV server is cyrus-caldav (httpd) on cyrus-common (master, lmtpd, deliver).
    Cyrus never runs as root: started by root, it runs as the `cyrus` user the Debian
    package made, in a folder that user owns.
    """

    kind = "cyrus"

    def __init__(self, folder: Path, *, port: int | None = None) -> None:
        super().__init__(folder, port=port)
        self.runas: tuple[str, str] | None = None
        if os.geteuid() == 0:
            # pytest's temporary folders are private to root (0700): the cyrus user could
            # not enter them. Its folder goes under /tmp instead and is removed with us.
            self.runas = ("cyrus", "mail")
            self.base = Path(tempfile.mkdtemp(prefix="kit-cyrus-"))
            self.base.chmod(0o755)
            weakref.finalize(self, shutil.rmtree, str(self.base), True)
        else:
            self.base = folder / "cyrus"
        self.log = self.base / "server.log"
        self.made = False

    @property
    def home(self) -> str:
        return f"/dav/calendars/user/{self.user}/"

    # Cyrus keeps UIDs unique across all of an account's calendars. Tests make a task
    # list each and use the same contacts, so each list gets an account of its own
    # (as a real user has one list): otherwise every test after the first would run
    # into the UIDs of the ones before. `owner=` puts a list in a chosen account; the
    # account-wide UID rule itself is tested that way.

    def home_of(self, owner: str | None) -> str:
        if owner is None:
            owner = f"t{uuid.uuid4().hex[:10]}"
            self.add_user(owner)
        return f"/dav/calendars/user/{owner}/"

    def auth(self, url: str | None = None) -> tuple[str, str] | None:
        found = re.search(r"/dav/calendars/user/([^/]+)/", url or "")
        return (found.group(1) if found else self.user, self.password)

    def add_user(self, name: str) -> None:
        """A user with the common password, their mailbox (a first delivery creates
        it, see provision()) and their calendar home (made on their first request)."""
        base = self.base
        subprocess.run(
            ["saslpasswd2", "-p", "-c", "-f", str(base / "sasldb2"), "-u", "localhost", name],
            input=self.password.encode(),
            check=True,
            capture_output=True,
            **self._as_cyrus(),
        )
        welcome = f"From: postmaster@localhost\r\nTo: {name}@localhost\r\n"
        welcome += "Subject: welcome\r\n\r\nkit-sync tests\r\n"
        deliver = [str(CYRUS_BIN / "deliver"), "-C", str(base / "imapd.conf")]
        done = subprocess.run(
            [*deliver, "-a", name, name],
            input=welcome.encode(),
            capture_output=True,
            **self._as_cyrus(),
        )
        assert done.returncode == 0, done.stderr
        home = f"/dav/calendars/user/{name}/"
        with self.http(urljoin(self.root, home)) as http:
            r = http.request("PROPFIND", urljoin(self.root, home), headers={"Depth": "0"})
            assert r.status_code == 207, (r.status_code, r.text)

    def _files(self) -> None:
        base = self.base
        for sub in ("conf/db", "conf/socket", "conf/proc", "conf/log", "spool"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        user = self.runas[0] if self.runas else _whoami()
        (base / "imapd.conf").write_text(
            f"configdirectory: {base}/conf\n"
            f"partition-default: {base}/spool\n"
            "defaultpartition: default\n"
            "servername: localhost\n"
            f"cyrus_user: {user}\n"
            "sasl_pwcheck_method: auxprop\n"
            "sasl_auxprop_plugin: sasldb\n"
            f"sasl_sasldb_path: {base}/sasldb2\n"
            "sasl_mech_list: PLAIN\n"
            # Basic auth over plain HTTP on 127.0.0.1 (tests only).
            "allowplaintext: yes\n"
            "httpmodules: caldav\n"
            "unixhierarchysep: yes\n"
            "caldav_create_default: no\n"
            "caldav_create_attach: no\n"
            # (the scheduling Inbox/Outbox stay: without them Cyrus 3.6 answers 404 to
            # a DELETE of a calendar it did delete)
            # The first delivery to a user creates their mailbox (see provision()).
            "autocreate_quota: 0\n"
            "autocreate_post: yes\n"
            f"lmtpsocket: {base}/conf/socket/lmtp\n"
            f"idlesocket: {base}/conf/socket/idle\n"
            f"notifysocket: {base}/conf/socket/notify\n"
            "syslog_prefix: kit-cyrus\n"
        )
        (base / "cyrus.conf").write_text(self._services())
        if self.runas:
            subprocess.run(["chown", "-R", ":".join(self.runas), str(base)], check=True)

    def _services(self) -> str:
        conf = self.base / "imapd.conf"
        return (
            "START {\n"
            f'  recover cmd="{CYRUS_BIN}/ctl_cyrusdb -C {conf} -r"\n'
            "}\n"
            "SERVICES {\n"
            f'  lmtp cmd="{CYRUS_BIN}/lmtpd -C {conf}" listen="{self.base}/conf/socket/lmtp"'
            " prefork=0\n"
            # Two httpd processes wait for connections (each new connection would
            # otherwise start one: ~0.1 s); more are started when needed.
            f'  http cmd="{CYRUS_BIN}/httpd -C {conf}" listen="127.0.0.1:{self.port}"'
            " prefork=2\n"
            "}\n"
            "EVENTS {\n}\n"
            "DAEMON {\n}\n"
        )

    def command(self) -> list[str]:
        base = self.base
        return [
            str(CYRUS_BIN / "master"),
            "-D",  # stay in the foreground: this Popen is the master
            "-C",
            str(base / "imapd.conf"),
            "-M",
            str(base / "cyrus.conf"),
            "-p",
            str(base / "master.pid"),
        ]

    def start(self) -> DavServer:
        if not self.made:
            self._files()
            self.made = True
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.base,
                **self._as_cyrus(),
            )
        wait_for_port(self.port, self.proc, self.log)
        return self

    def _signal_all(self, sig: int) -> None:
        """The master and the httpd/imapd children it forked (one process group)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal_all(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._signal_all(signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._signal_all(signal.SIGKILL)  # a child that outlived its master
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self._signal_all(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def _as_cyrus(self) -> dict[str, Any]:
        if not self.runas:
            return {}
        return {"user": self.runas[0], "group": self.runas[1], "extra_groups": []}

    def provision(self) -> None:
        self.add_user(self.user)


def _whoami() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def make_server(kind: str, folder: Path, **kw: Any) -> DavServer:
    need(kind)
    cls: type[DavServer] = {"radicale": Radicale, "xandikos": Xandikos, "cyrus": Cyrus}[kind]
    server = cls(folder, **kw)
    try:
        server.start()
        server.provision()
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def running(kind: str, folder: Path, **kw: Any) -> Iterator[DavServer]:
    server = make_server(kind, folder, **kw)
    try:
        yield server
    finally:
        server.stop()


# --- an independent client: the phone --------------------------------------------------


class Phone:
    """A second client on the same task list (httpx, no caldav library): what
    tasks.org, Thunderbird or iOS Reminders do to the tasks, written to the server."""

    def __init__(self, server: DavServer, collection: str) -> None:
        self.server = server
        self.collection = collection
        self.http = server.http(collection)

    def close(self) -> None:
        self.http.close()

    def url(self, href: str) -> str:
        return urljoin(self.collection, href)

    def listing(self) -> dict[str, str]:
        """href -> etag of every item in the list."""
        r = self.http.request(
            "PROPFIND",
            self.collection,
            headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
            content=PROPFIND_ETAGS.encode(),
        )
        assert r.status_code == 207, r.text
        out = {}
        for block in re.findall(r"<(?:\w+:)?response>(.*?)</(?:\w+:)?response>", r.text, re.S):
            href = re.search(r"<(?:\w+:)?href>(.*?)</(?:\w+:)?href>", block, re.S)
            etag = re.search(r"<(?:\w+:)?getetag>(.*?)</(?:\w+:)?getetag>", block, re.S)
            if href and etag and not href.group(1).endswith("/"):
                out[href.group(1)] = etag.group(1).replace("&quot;", '"')
        return out

    def get(self, href: str) -> tuple[str, str]:
        r = self.http.get(self.url(href))
        assert r.status_code == 200, (r.status_code, r.text)
        return r.text, r.headers["etag"]

    def put(self, href: str, text: str, etag: str | None = None) -> str:
        headers = {"Content-Type": "text/calendar; charset=utf-8"}
        headers["If-Match" if etag else "If-None-Match"] = etag or "*"
        r = self.http.put(
            self.url(href),
            content=text.replace("\r\n", "\n").replace("\n", "\r\n").encode(),
            headers=headers,
        )
        assert r.status_code in (200, 201, 204), (r.status_code, r.text)
        return r.headers.get("etag", "")

    def edit(self, href: str, fn: Any) -> str:
        """Read, change with fn(text) -> text, write back conditionally."""
        text, etag = self.get(href)
        return self.put(href, fn(text), etag)

    def delete(self, href: str) -> None:
        r = self.http.delete(self.url(href))
        assert r.status_code in (200, 204), (r.status_code, r.text)


# --- shared servers: one per kind for the whole test session ---------------------------

_SHARED: dict[str, DavServer] = {}


def need(kind: str) -> None:
    """Skip when the server is not installed here, except in CI, where scripts/test.sh
    installs all three and a missing one is a failure, not a silent skip."""
    if kind == "cyrus":
        if not cyrus_installed():
            if os.environ.get("CI"):
                pytest.fail("Cyrus is not installed: scripts/test.sh installs it")
            pytest.skip("Cyrus is not installed (apt-get install cyrus-imapd cyrus-caldav)")
        return
    pytest.importorskip(kind)


def shared(kind: str, request: pytest.FixtureRequest) -> DavServer:
    """The session's server of this kind, started on first use and stopped at the end
    of the session (the test modules share it; each test makes its own task list)."""
    need(kind)
    server = _SHARED.get(kind)
    if server is None or server.proc is None or server.proc.poll() is not None:
        factory = request.getfixturevalue("tmp_path_factory")
        server = make_server(kind, Path(factory.mktemp(f"{kind}-shared")))
        _SHARED[kind] = server
        request.config.add_cleanup(server.stop)
    return server


def caldav_config(server: DavServer, url: str | None = None, **extra: Any) -> Any:
    """A validated `backend:` section for kit-sync pointing at `url` (a task list)."""
    from kit_sync.config import CaldavConfig

    data: dict[str, Any] = {"type": "caldav", "url": url or server.root, "timeout": 10}
    auth = server.auth(url)
    if auth is not None:
        data.update(username=auth[0], password=auth[1])
    elif server.kind == "xandikos":
        data.update(username=server.user, password="unused")
    data.update(extra)
    return CaldavConfig.model_validate(data)


FOREIGN = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Some Phone//EN
BEGIN:VTODO
UID:{uid}
DTSTAMP:20261101T090000Z
SUMMARY:{summary}
DUE;VALUE=DATE:20261201
STATUS:NEEDS-ACTION
END:VTODO
END:VCALENDAR
"""


# --- kit-sync pointed at a server ---------------------------------------------------------

BASE_CONTACTS: list[dict[str, Any]] = [
    {"name": "Ann Lee", "email": "ann@example.com", "tier": "inner"},
    {"name": "Bob Stone", "email": "bob@example.com", "tier": "core"},
]
ANN = "ann-example-com"
BOB = "bob-example-com"


class Kit:
    """A kit-sync config in `folder` pointing at a task list on `server`, and the ways
    to run it: an engine in this process (as the daemon holds it), or the real
    `kit-sync` command in a subprocess."""

    def __init__(
        self,
        folder: Path,
        server: DavServer,
        collection: str,
        contacts: list[dict[str, Any]] | None = None,
        **backend: Any,
    ) -> None:
        self.folder = folder
        self.server = server
        self.collection = collection
        folder.mkdir(parents=True, exist_ok=True)
        self.config_path = folder / "config.yaml"
        self.backend_extra = backend
        self.write(contacts if contacts is not None else BASE_CONTACTS)

    def backend_section(self) -> dict[str, Any]:
        section: dict[str, Any] = {"type": "caldav", "url": self.collection, "timeout": 10}
        auth = self.server.auth(self.collection)
        if auth is not None:
            section.update(username=auth[0], password=auth[1])
        section.update(self.backend_extra)
        return section

    def write(self, contacts: list[dict[str, Any]], **top: Any) -> None:
        import yaml

        config = {
            "timezone": "Europe/Berlin",
            "backend": self.backend_section(),
            "state": "state.sqlite",
            "tiers": {
                "inner": {"every": "3 weeks", "channel": "lunch", "priority": "high"},
                "core": {"every": "2 months", "channel": "call"},
            },
            "contacts": contacts,
            **top,
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))

    def engine(self) -> Any:
        from kit_sync.app import load, open_engine

        return open_engine(load(self.config_path))

    def sync(self) -> Any:
        """One cycle in this process, with a fresh engine (like one `kit-sync sync`)."""
        engine = self.engine()
        try:
            return engine.run_cycle()
        finally:
            engine.backend.close()
            engine.state.close()

    def listing(self) -> Any:
        engine = self.engine()
        try:
            return engine.backend.fetch_listing()
        finally:
            engine.backend.close()
            engine.state.close()

    def opens(self, contact_id: str | None = None) -> list[Any]:
        from kit_sync.model import Status

        return [
            t
            for t in self.listing().tasks
            if t.status is Status.OPEN and (contact_id is None or t.contact_id == contact_id)
        ]

    def the_open(self, contact_id: str) -> Any:
        opens = self.opens(contact_id)
        assert len(opens) == 1, opens
        return opens[0]

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The real command, as a user runs it."""
        return subprocess.run(
            [sys.executable, "-m", "kit_sync", "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.folder,
        )


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, and its key (PEM files)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kit-sync test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
