"""A small fault-injecting proxy on 127.0.0.1 between kit-sync and a real server.

It understands just enough HTTP/1.1 to handle one request per connection (it asks
both sides for `Connection: close`): read the request, then forward it, or
misbehave as the current rules say:

- ``refuse``: the port is closed (the server is down);
- ``drop``: accept, read the request, close without a word;
- ``reset``: accept, read the request, answer with a TCP RST;
- ``delay``: wait `seconds` before forwarding (a slow server, past the timeout);
- ``status``: answer `status` with `headers` instead of the server (503, 429 +
  Retry-After, 401, 403, ...);
- ``lose_response``: forward the request (the server does it) and then reset the
  connection instead of relaying the answer: the client cannot know it worked.

Rules match on method and a substring of the request (line, headers or body) and
can be limited to the next N matching requests. Every request seen is logged.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Rule:
    action: str  # drop / reset / delay / status / lose_response
    method: str | None = None
    contains: bytes = b""
    lacks: bytes | None = None  # match only requests without this (case-insensitive)
    times: int | None = None  # None: until removed
    skip: int = 0  # let this many matching requests through first
    seconds: float = 0.0
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    hits: int = 0

    def matches(self, method: str, raw: bytes) -> bool:
        if self.method is not None and method != self.method:
            return False
        if self.lacks is not None and self.lacks.lower() in raw.lower():
            return False
        return self.contains in raw


REASONS = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    412: "Precondition Failed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class FaultProxy:
    def __init__(self, upstream_port: int, port: int = 0) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str]] = []  # (method, path) of every request seen
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.port = port
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def url_for(self, upstream_url: str) -> str:
        """The same resource through the proxy."""
        prefix = f"http://127.0.0.1:{self.upstream[1]}/"
        assert upstream_url.startswith(prefix), upstream_url
        return self.url + upstream_url[len(prefix) :]

    # --- control ------------------------------------------------------------------------

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        sock.settimeout(0.2)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def refuse(self) -> None:
        """Close the port: connections are refused, as when the server is down."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        self._listener = None

    def accept_again(self) -> None:
        if self._listener is None:
            self.start()

    def close(self) -> None:
        self.refuse()

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def methods(self) -> list[str]:
        return [m for m, _ in self.log]

    # --- serving ------------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._listener is not None
        listener = self._listener
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _pick(self, method: str, raw: bytes) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if not rule.matches(method, raw):
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    return None
                if rule.times is not None and rule.hits >= rule.times:
                    continue
                rule.hits += 1
                return rule
        return None

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            raw = _read_request(conn)
            if raw is None:
                return
            line = raw.split(b"\r\n", 1)[0].decode("latin-1")
            method, path = [*line.split(" "), "", ""][:2]
            self.log.append((method, path))
            rule = self._pick(method, raw)
            if rule is None:
                conn.sendall(self._forward(raw))
            elif rule.action == "drop":
                pass
            elif rule.action == "reset":
                _reset(conn)
                return
            elif rule.action == "delay":
                time.sleep(rule.seconds)
                with contextlib.suppress(OSError):
                    conn.sendall(self._forward(raw))
            elif rule.action == "status":
                conn.sendall(_response(rule.status, rule.headers, rule.body))
            elif rule.action == "lose_response":
                self._forward(raw)
                _reset(conn)
                return
            else:
                raise ValueError(rule.action)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _forward(self, raw: bytes) -> bytes:
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = [
            ln
            for ln in head.split(b"\r\n")
            if not ln.lower().startswith((b"connection:", b"keep-alive:"))
        ]
        lines.append(b"Connection: close")
        with socket.create_connection(self.upstream, timeout=60) as up:
            up.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            chunks = []
            while True:
                chunk = up.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        answer = b"".join(chunks)
        rhead, sep, rbody = answer.partition(b"\r\n\r\n")
        rlines = [ln for ln in rhead.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
        rlines.append(b"Connection: close")
        return b"\r\n".join(rlines) + sep + rbody


def _read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            raise OSError("chunked request bodies are not supported by the test proxy")
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _response(status: int, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}"]
    merged = {"Content-Type": "text/plain", **headers}
    merged["Content-Length"] = str(len(body))
    merged["Connection"] = "close"
    lines += [f"{k}: {v}" for k, v in merged.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _reset(conn: socket.socket) -> None:
    """Close with RST instead of FIN: the peer sees 'connection reset by peer'."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
