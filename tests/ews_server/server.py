"""A threaded HTTP server on 127.0.0.1 that answers EWS SOAP requests.

Basic authentication (401 without valid credentials, as IIS answers), the SOAP
envelope with a ServerVersionInfo header, and test hooks:

- `busy(times, back_off_ms)`: the next `times` requests get the SOAP fault
  ErrorServerBusy with a BackOffMilliseconds hint, the way Exchange throttles;
- `before`: called with the operation name before a request is processed (to make
  a concurrent edit land between a client's read and its write);
- `after_write`: called after a write (CreateItem, UpdateItem, DeleteItem) was applied
  and before its response is sent, to kill a client in exactly that window;
- `requests`: the operation name of every request that was answered, in order.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lxml import etree

from .soap import Caller, M, Operations, S, SoapFault, envelope, fault, response_message
from .store import EwsError, Store, local, t

WRITES = {"CreateItem", "UpdateItem", "DeleteItem", "CreateFolder"}


class EwsServer:
    """The fake endpoint. Use as a context manager or call start()/stop()."""

    def __init__(self) -> None:
        self.store = Store()
        self.ops = Operations(self.store)
        self.users: dict[str, str] = {}  # login (lower case) -> password
        self.user_mailbox: dict[str, str] = {}  # login -> own mailbox address
        self.delegates: dict[str, set[str]] = {}  # login -> mailboxes it may open
        self.impersonators: set[str] = set()  # logins with the ApplicationImpersonation role
        self.requests: list[str] = []
        self.after_write: Callable[[str], None] | None = None
        self.before: Callable[[str], None] | None = None
        self._busy: list[int] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- setup -----------------------------------------------------------------------

    def add_user(self, email: str, password: str, login: str | None = None) -> None:
        """A mailbox `email` whose owner logs in as `login` (default: the address)."""
        self.store.add_mailbox(email)
        name = (login or email).lower()
        self.users[name] = password
        self.user_mailbox[name] = email.lower()

    def grant_delegate(self, login: str, mailbox: str) -> None:
        self.delegates.setdefault(login.lower(), set()).add(mailbox.lower())

    def grant_impersonation(self, login: str) -> None:
        self.impersonators.add(login.lower())

    def busy(self, times: int = 1, back_off_ms: int = 500) -> None:
        with self._lock:
            self._busy.extend([back_off_ms] * times)

    def count(self, op: str | None = None) -> int:
        with self._lock:
            return len(self.requests) if op is None else self.requests.count(op)

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- lifecycle --------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/EWS/Exchange.asmx"

    def start(self) -> EwsServer:
        handler = _handler_for(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> EwsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- one request --------------------------------------------------------------------

    def authenticate(self, header: str | None) -> str | None:
        if not header or not header.startswith("Basic "):
            return None
        try:
            login, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        login = login.lower()
        return login if self.users.get(login) == password else None

    def handle(self, login: str, body: bytes) -> tuple[int, bytes]:
        try:
            root = etree.fromstring(body)
        except etree.XMLSyntaxError as exc:
            return 500, fault(
                "ErrorSchemaValidation", f"The request failed schema validation: {exc}"
            )
        soap_body = root.find(f"{{{S}}}Body")
        if soap_body is None or len(soap_body) == 0:
            return 500, fault("ErrorInvalidRequest", "The request is invalid.")
        request = soap_body[0]
        if etree.QName(request.tag).namespace != M:
            return 500, fault("ErrorInvalidRequest", "The request is invalid.")
        op = local(request.tag)
        with self._lock:
            back_off = self._busy.pop(0) if self._busy else None
            self.requests.append(op if back_off is None else f"{op} (busy)")
        if back_off is not None:
            return 500, fault(
                "ErrorServerBusy",
                "The server cannot service this request right now. Try again later.",
                {"BackOffMilliseconds": str(back_off)},
            )
        if self.before is not None:
            self.before(op)
        try:
            caller = self._caller(login, root)
            response = self.ops.dispatch(op)(request, caller)
        except SoapFault as exc:
            return 500, fault(exc.code, exc.text, exc.values)
        except EwsError as exc:
            # Errors about the request's target come back as one error response message.
            msgs = etree.Element(f"{{{M}}}ResponseMessages")
            msgs.append(response_message(op, exc))
            response = Operations._wrap(op, msgs)
        if op in WRITES and self.after_write is not None:
            self.after_write(op)
        return 200, envelope(response)

    def _caller(self, login: str, root: etree._Element) -> Caller:
        mailbox = self.user_mailbox[login]
        header = root.find(f"{{{S}}}Header")
        if header is not None:
            imp = header.find(f"{t('ExchangeImpersonation')}/{t('ConnectingSID')}")
            if imp is not None:
                target = next((c.text for c in imp if c.text), None)
                if login not in self.impersonators:
                    raise SoapFault(
                        "ErrorImpersonateUserDenied",
                        "The account does not have permission to impersonate the requested user.",
                    )
                if not target or target.lower() not in self.store.mailboxes:
                    raise SoapFault(
                        "ErrorNonExistentMailbox", f"The SMTP address has no mailbox: {target}"
                    )
                return Caller(login, target.lower(), set(), None)
        zone = None
        if header is not None:
            definition = header.find(f"{t('TimeZoneContext')}/{t('TimeZoneDefinition')}")
            zone = definition.get("Id") if definition is not None else None
        return Caller(login, mailbox, self.delegates.get(login, set()), zone)


def _handler_for(server: EwsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if self.path.lower().rstrip("/") != "/ews/exchange.asmx":
                self._send(404, b"")
                return
            login = server.authenticate(self.headers.get("Authorization"))
            if login is None:
                self._send(401, b"", {"WWW-Authenticate": 'Basic realm="127.0.0.1"'})
                return
            status, payload = server.handle(login, body)
            try:
                self._send(status, payload)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client is gone (killed mid-request)

        def do_GET(self) -> None:
            self._send(405, b"")

    return Handler
