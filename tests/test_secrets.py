"""Secrets never reach a log line, an error message or kit-sync's output.

Known secret strings go in through every way the config takes them (a literal,
{env}, {file}, {command}, ${ENV}), through config errors, and through every
backend's error paths that can be triggered here (connection refused on
127.0.0.1, a 401 from a small local HTTP server); then all output, log lines in
both formats and exception text are searched for them (and for their base64
`user:secret` and URL-encoded forms). Backends are taken from the registry, so a
new backend is covered as soon as it is registered.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import ssl
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from servers import self_signed
from test_service_health import Ran, cli, free_port

from kit_sync.backends import REGISTRY
from kit_sync.config import CaldavConfig, LocalConfig, exposure_warnings
from kit_sync.errors import KitError
from kit_sync.logs import forget_secrets, redact, register_secret, setup_logging

USER = "kit-user"
LITERAL = "lit-Secret-7Hq2xZ"
FROM_ENV = "env-Secret-9Xk4pQ"
FROM_FILE = "file-Secret-3Lm8rT"
FROM_COMMAND = "cmd-Secret-5Rt1wV"
IN_URL = "url-Secret-6Wn3bY"
ALL = (LITERAL, FROM_ENV, FROM_FILE, FROM_COMMAND, IN_URL)
ENV_NAME = "KIT_SYNC_TEST_SECRET"


def forms(secret: str) -> list[str]:
    """How a secret can show up: as is, URL-encoded, in a Basic Authorization header."""
    basic = base64.b64encode(f"{USER}:{secret}".encode()).decode()
    return [secret, quote(secret, safe=""), basic]


def assert_no_secret(text: str, secrets: tuple[str, ...] = ALL) -> None:
    for secret in secrets:
        for form in forms(secret):
            assert form not in text, f"secret {secret!r} leaked as {form!r} in:\n{text}"


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no registered secret: masking must come from its config."""
    forget_secrets()
    monkeypatch.setenv(ENV_NAME, FROM_ENV)
    yield
    forget_secrets()


def write_config(tmp_path: Path, backend: dict[str, Any], **more: Any) -> Path:
    (tmp_path / "secret.txt").write_text(FROM_FILE + "\n")
    (tmp_path / "secret.txt").chmod(0o600)
    data = {
        "timezone": "Europe/Berlin",
        "backend": backend,
        "state": "state.sqlite",
        "contacts": [{"name": "Ann Lee", "email": "ann@example.com", "every": "3 weeks"}],
        **more,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o600)
    return path


def command(secret: str, exit_code: int = 0) -> dict[str, list[str]]:
    """A {command: ...} secret whose program also echoes the secret on stderr."""
    script = f"echo {secret}; echo {secret} >&2; exit {exit_code}"
    return {"command": ["sh", "-c", script]}


def all_outputs(capfd: pytest.CaptureFixture[str], config: Path, *args: str) -> list[Ran]:
    """The command in text and JSON logs, verbose: everything it printed."""
    return [
        cli(capfd, "-v", "--log-format", fmt, "--config", str(config), *args)
        for fmt in ("text", "json")
    ]


# --- masking itself ----------------------------------------------------------------


def test_registered_secrets_are_masked_in_any_form() -> None:
    register_secret(LITERAL)
    text = f"a {LITERAL} b {quote(LITERAL, safe='')} c"
    assert redact(text) == "a *** b *** c"
    register_secret("ab")  # too short to mask without garbling every line
    assert redact("tab cab") == "tab cab"


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("headers {'Authorization': 'Basic a2l0OnB3'}", "headers {'Authorization': 'Basic ***'}"),
        ("Authorization: Bearer eyJhbGciOi.x.y", "Authorization: Bearer ***"),
        ("proxy-authorization=NTLM TlRMTVNTUAAB", "proxy-authorization=NTLM ***"),
        ("got Bearer abcdefghijklmnop back", "got Bearer *** back"),
        (
            "server bob:hunter2@dav.example.com:8443 (refused)",
            "server bob:***@dav.example.com:8443 (refused)",
        ),
        ("Email: ann@example.com, at 12:30", "Email: ann@example.com, at 12:30"),
        ("GET https://bob:hunter2@dav.example.com/x", "GET https://bob:***@dav.example.com/x"),
        ("POST /token body=client_secret=abc123&grant", "POST /token body=client_secret=***&grant"),
        (
            '{"access_token": "eyJ0eXAi", "expires_in": 3599}',
            '{"access_token": "***", "expires_in": 3599}',
        ),
        ("password=pa55word&user=x", "password=***&user=x"),
        ("the token expired", "the token expired"),
        ("https://dav.example.com:8443/tasks/", "https://dav.example.com:8443/tasks/"),
    ],
)
def test_credential_shaped_text_is_masked(line: str, masked: str) -> None:
    assert redact(line) == masked


def test_both_log_formats_mask_messages_arguments_extras_and_tracebacks() -> None:
    register_secret(LITERAL)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    log = logging.getLogger("kit_sync")
    try:
        for fmt in ("text", "json"):
            out = io.StringIO()
            setup_logging("debug", fmt, stream=out)
            log.info("login with %s", LITERAL, extra={"href": f"x?password={LITERAL}"})
            try:
                try:
                    raise OSError(f"server said: bad password {LITERAL}")
                except OSError as inner:
                    raise KitError("cannot log in") from inner
            except KitError:
                log.exception("internal error")
            text = out.getvalue()
            assert_no_secret(text)
            assert "bad password ***" in text
            if fmt == "json":
                [json.loads(line) for line in text.splitlines()]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


# --- through the config --------------------------------------------------------------


def caldav_with(password: Any, url: str = "http://127.0.0.1:9/dav/") -> dict[str, Any]:
    return {"type": "caldav", "url": url, "username": USER, "password": password}


@pytest.mark.parametrize(
    "password",
    [LITERAL, {"env": ENV_NAME}, {"file": "secret.txt"}, command(FROM_COMMAND), f"${{{ENV_NAME}}}"],
    ids=["literal", "env", "file", "command", "dollar-env"],
)
def test_secrets_from_every_source_stay_out_of_output(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], password: Any
) -> None:
    config = write_config(tmp_path, caldav_with(password))
    for ran in all_outputs(capfd, config, "check"):
        assert ran.code == 0, ran.text
        assert_no_secret(ran.text)
    # And the config objects never print them either.
    from kit_sync.config import load_config

    loaded, _ = load_config(config)
    assert_no_secret(repr(loaded) + str(loaded))


def test_a_config_error_next_to_secrets_names_no_secret(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # The user pasted the password variable into the URL by mistake: the URL error
    # quotes the value it got, which is the secret.
    backend = caldav_with({"env": ENV_NAME}, url=f"${{{ENV_NAME}}}")
    config = write_config(tmp_path, backend, timezone="Mars/Olympus", sync={"evry": 5})
    for ran in all_outputs(capfd, config, "check"):
        assert ran.code == 2
        assert "timezone" in ran.err and "evry" in ran.err and "backend.url" in ran.err
        assert_no_secret(ran.text)


@pytest.mark.parametrize(
    "backend",
    [
        {
            "type": "exchange",
            "email": "me@example.com",
            "server": "127.0.0.1",
            "auth": "oauth2",
            "oauth": {"client_id": "c", "client_secret": LITERAL, "tenant_id": "t", "extra": 1},
        },
        {
            "type": "graph",
            "client_id": "c",
            "tenant": "common",
            "user": "me@example.com",
            "client_secret": {"env": ENV_NAME},
        },
        {
            "type": "caldav",
            "url": "dav.example.com",
            "username": USER,
            "password": command(FROM_COMMAND),
        },
        {
            "type": "caldav",
            "url": "http://127.0.0.1:9/",
            "auth": "digest",
            "username": USER,
            "password": [LITERAL],
        },
        {
            "type": "caldav",
            "url": "http://127.0.0.1:9/",
            "username": USER,
            "password": {"env": ENV_NAME, "file": "secret.txt"},
        },
    ],
    ids=["exchange-oauth-extra", "graph-common-tenant", "caldav-bad-url", "list", "two-sources"],
)
def test_invalid_secret_settings_are_reported_without_the_secret(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], backend: dict[str, Any]
) -> None:
    config = write_config(tmp_path, backend)
    for ran in all_outputs(capfd, config, "check"):
        assert ran.code == 2, ran.text
        assert "backend" in ran.err
        assert_no_secret(ran.text)


def test_a_failing_secret_command_is_reported_by_name_and_exit_code_only(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, caldav_with(command(FROM_COMMAND, exit_code=3)))
    for ran in all_outputs(capfd, config, "check"):
        assert ran.code == 2
        assert "secret command 'sh' failed with exit code 3" in ran.err
        assert_no_secret(ran.text)


# --- the warning for a config others can read --------------------------------------------


@pytest.mark.parametrize(
    ("backend", "mode", "field"),
    [
        (caldav_with(LITERAL), 0o644, "backend.password"),
        (caldav_with(LITERAL), 0o640, "backend.password"),
        (caldav_with(LITERAL), 0o600, None),
        (caldav_with({"env": ENV_NAME}), 0o644, None),
        (caldav_with(f"${{{ENV_NAME}}}"), 0o644, None),
        (caldav_with({"file": "secret.txt"}), 0o644, None),
        (caldav_with(None, url=f"http://{USER}:{IN_URL}@127.0.0.1:9/"), 0o644, "backend.url"),
        (
            {
                "type": "exchange",
                "email": "me@example.com",
                "server": "127.0.0.1",
                "auth": "oauth2",
                "oauth": {"client_id": "c", "client_secret": LITERAL, "tenant_id": "t"},
            },
            0o604,
            "backend.oauth.client_secret",
        ),
    ],
    ids=["644", "640", "600", "env", "dollar-env", "file", "url", "exchange-oauth"],
)
def test_a_readable_config_with_a_password_in_clear_gets_a_warning(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    backend: dict[str, Any],
    mode: int,
    field: str | None,
) -> None:
    if backend.get("password") is None:
        backend = {k: v for k, v in backend.items() if k != "password"}
    config = write_config(tmp_path, backend)
    config.chmod(mode)
    warnings = exposure_warnings(config)
    if field is None:
        assert warnings == []
        return
    assert len(warnings) == 1
    assert f"({field})" in warnings[0]
    assert f"(mode {mode:03o})" in warnings[0]
    assert "chmod 600" in warnings[0]
    ran = cli(capfd, "--config", str(config), "check")
    assert ran.code == 0, ran.text
    assert "holds a password in clear" in ran.err
    assert_no_secret(ran.text)


# --- through every backend's error paths -----------------------------------------------


class Refuser(BaseHTTPRequestHandler):
    """Answers every request 401, the way servers reject bad credentials, and keeps
    what it was sent (to prove the secret really went out)."""

    seen: list[str]

    def _refuse(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("latin-1") if length else ""
        self.seen.append(f"{self.command} {self.path}\n{self.headers}\n{body}")
        if self.path.endswith("/.well-known/openid-configuration"):
            # An OpenID provider's discovery document (MSAL reads it before it sends
            # the client secret to the token endpoint, which then refuses it).
            scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
            tenant = f"{scheme}://{self.headers['Host']}{self.path.split('/v2.0/')[0]}"
            document = {
                "issuer": f"{tenant}/v2.0",
                "authorization_endpoint": f"{tenant}/oauth2/v2.0/authorize",
                "token_endpoint": f"{tenant}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{tenant}/oauth2/v2.0/devicecode",
            }
            self._send(200, json.dumps(document).encode())
            return
        payload = json.dumps(
            {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided.",
                "error_codes": [7000215],
            }
        ).encode()
        self._send(401, payload)

    def _send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="kit-sync-test"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._refuse
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Refusing:
    base: str  # http://127.0.0.1:PORT
    tls_base: str  # https://127.0.0.1:PORT2, same behaviour
    ca: Path  # the certificate to trust for tls_base
    seen: list[str]


@pytest.fixture(scope="module")
def refuser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Refusing]:
    seen: list[str] = []
    handler = type("Handler", (Refuser,), {"seen": seen})
    plain = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    tls = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    tls.socket = context.wrap_socket(tls.socket, server_side=True)
    for server in (plain, tls):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Refusing(
        f"http://127.0.0.1:{plain.server_address[1]}",
        f"https://127.0.0.1:{tls.server_address[1]}",
        cert,
        seen,
    )
    for server in (plain, tls):
        server.shutdown()
        server.server_close()


def backend_cases() -> list[Any]:
    """(backend type, error path, secrets the case feeds in) for every registered
    backend that takes credentials. The local backend takes none (its config model
    has no secret field: see the test below)."""
    cases = [
        ("caldav", "refused", (LITERAL,)),
        ("caldav", "401", (FROM_ENV,)),
        ("caldav", "password-in-url", (IN_URL,)),
        ("caldav", "bearer-401", (FROM_FILE,)),
        ("exchange", "refused", (FROM_FILE,)),
        ("exchange", "401", (FROM_COMMAND,)),
        ("exchange", "ntlm-401", (LITERAL,)),
        ("graph", "refused", (FROM_ENV,)),
        ("graph", "401", (LITERAL,)),
    ]
    return [
        pytest.param(*case, id=f"{case[0]}-{case[1]}", marks=pytest.mark.integration)
        if case[0] in REGISTRY
        else pytest.param(
            *case, id=f"{case[0]}-{case[1]}", marks=pytest.mark.skip(reason="not registered")
        )
        for case in cases
    ]


def secret_value(secret: str) -> Any:
    """The config value that makes the config resolve to `secret`."""
    return {
        LITERAL: LITERAL,
        FROM_ENV: {"env": ENV_NAME},
        FROM_FILE: {"file": "secret.txt"},
        FROM_COMMAND: command(FROM_COMMAND),
    }[secret]


def backend_config(kind: str, path: str, refusing: Refusing, secret: str) -> dict[str, Any]:
    base = refusing.tls_base if kind == "graph" else refusing.base
    if path == "refused":
        base = f"{base.split(':')[0]}://127.0.0.1:{free_port()}"  # nothing listens there
    if kind == "caldav":
        if path == "password-in-url":
            refused = f"127.0.0.1:{free_port()}"
            return {"type": "caldav", "url": f"http://{USER}:{IN_URL}@{refused}/dav/", "timeout": 5}
        if path == "bearer-401":
            return {
                "type": "caldav",
                "url": base + "/dav/",
                "auth": "bearer",
                "token": secret_value(secret),
                "timeout": 5,
            }
        return {
            "type": "caldav",
            "url": base + "/dav/",
            "username": USER,
            "auth": "basic",
            "password": secret_value(secret),
            "timeout": 5,
        }
    if kind == "exchange":
        return {
            "type": "exchange",
            "email": "me@example.com",
            "service_endpoint": base + "/EWS/Exchange.asmx",
            "username": USER,
            "password": secret_value(secret),
            "auth": "ntlm" if path == "ntlm-401" else "basic",
            "max_retry_wait": 0,
            "version": "2016",
            "timeout": 10,
        }
    if kind == "graph":
        return {
            "type": "graph",
            "client_id": "00000000-0000-0000-0000-000000000001",
            "tenant": "contoso.example",
            "user": "me@contoso.example",
            "client_secret": secret_value(secret),
            "authority_host": base,
            "graph_url": base + "/v1.0",
            "verify": str(refusing.ca),
            "max_retry_wait": 0,
            "timeout": 5,
            "task_list": "Keep in touch",
        }
    raise AssertionError(kind)


def exception_text(exc: BaseException) -> str:
    """The message and the whole chain of causes, as a traceback prints them."""
    return "".join(traceback.format_exception(exc))


@pytest.mark.parametrize(("kind", "path", "secrets"), backend_cases())
def test_backend_error_paths_leak_no_secret(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    refuser: Refusing,
    kind: str,
    path: str,
    secrets: tuple[str, ...],
) -> None:
    refuser.seen.clear()
    config = write_config(tmp_path, backend_config(kind, path, refuser, secrets[0]))

    # The CLI, as a user or the daemon's log would show it.
    for ran in all_outputs(capfd, config, "sync"):
        assert ran.code == 3, ran.text  # unreachable or credentials refused
        assert_no_secret(ran.text)
    if path == "401":
        # The secret did go out (so this test exercises a real rejection of it).
        sent = "\n".join(refuser.seen)
        assert any(form in sent for form in forms(secrets[0])), sent

    # The exception itself, and every exception it was raised from.
    from kit_sync.app import load, open_engine

    with pytest.raises(KitError) as caught:
        engine = open_engine(load(config))
        try:
            engine.run_cycle()
        finally:
            engine.backend.close()
            engine.state.close()
    if path == "password-in-url":
        # A password the user wrote into the URL is not a registered secret; only
        # the masking of `user:password@` keeps it out of logs and messages.
        assert_no_secret(redact(exception_text(caught.value)), secrets)
    else:
        assert_no_secret(exception_text(caught.value), secrets)


def test_the_local_backend_takes_no_secret() -> None:
    """Nothing to leak: its config has no secret field (so it needs no error-path
    case above); a config error for it is covered by the tests on config errors."""

    def secret_fields(model: type[Any]) -> list[str]:
        return [n for n, f in model.model_fields.items() if "SecretStr" in str(f.annotation)]

    assert secret_fields(LocalConfig) == []
    assert secret_fields(CaldavConfig) == ["password", "token"]  # the check sees them


def test_no_secret_in_the_state_file_or_the_task_files(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], refuser: Refusing
) -> None:
    """After failing cycles, nothing kit-sync stored holds a secret either."""
    if "caldav" not in REGISTRY:
        pytest.skip("caldav backend not registered")
    config = write_config(tmp_path, backend_config("caldav", "401", refuser, FROM_ENV))
    cli(capfd, "--config", str(config), "sync")
    for stored in tmp_path.rglob("*"):
        if stored.is_file() and stored.name != "secret.txt":
            data = stored.read_bytes().decode("latin-1")
            assert_no_secret(data)
