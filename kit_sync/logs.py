"""Logging setup: readable lines on a terminal, one JSON object per line for Docker.

Every line goes through `redact` before it is written: the values of all secrets
the config resolved (`register_secret`, called while the config is validated) and
anything shaped like a credential (Authorization headers, `user:password@` in URLs,
`password=...` / `"access_token": "..."` pairs) are replaced by `***`. This is the
last line of defence: backends already keep secrets out of their messages, but a
client library's exception text or traceback is not under our control.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from kit_sync.clock import system_clock

MASK = "***"

#: Shorter values are not masked: replacing every "ab" in a log would only
#: garble it, and a secret that short protects nothing anyway.
MIN_SECRET_LENGTH = 4

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secret_pattern: re.Pattern[str] | None = None

_CREDENTIAL_WORDS = (
    r"password|passwd|pwd|secret|client_secret|token|access_token|refresh_token|"
    r"id_token|api_key|apikey"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Basic dXNlcjpwdw== / 'Authorization': 'Bearer eyJ...'
    (
        re.compile(
            r"(?i)(\b(?:proxy-)?authorization\b['\"]?\s*[:=]\s*['\"]?)"
            r"(?:(basic|bearer|digest|ntlm|negotiate|token)\s+)?[^\s'\",}]+"
        ),
        r"\1\2 " + MASK,
    ),
    # A bare "Bearer eyJ..." anywhere else.
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]{8,}=*"), r"\1 " + MASK),
    # https://user:password@host, and user:password@host without the scheme (a
    # netloc quoted in a message)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):[^/\s@]+@"), r"\1:" + MASK + "@"),
    (re.compile(r"(?<![\w/:.%+-])([\w.%+-]+):[^\s/:@'\"]+@(?=[\w.-]+[\w\]])"), r"\1:" + MASK + "@"),
    # password=... in query strings and form bodies
    (re.compile(rf"(?i)\b((?:{_CREDENTIAL_WORDS})=)[^\s&'\",]+"), r"\1" + MASK),
    # "access_token": "..." in JSON or a repr'd dict
    (
        re.compile(rf"(?i)(['\"](?:{_CREDENTIAL_WORDS})['\"]\s*:\s*['\"])[^'\"]+"),
        r"\1" + MASK,
    ),
)


def mask_url(url: str) -> str:
    """`url` with the password of a `user:password@` part replaced by `***` (the user
    name stays: it says which account). For showing a configured URL anywhere."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def register_url(url: str) -> None:
    """Register the password a URL carries (`https://user:pw@host/`), in the forms it
    may be shown in (as written, percent-decoded), so no log line, stored error or
    health answer ever shows it."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        register_secret(password)
        register_secret(unquote(password))


def register_secret(value: str | None) -> None:
    """Mask `value` (and its URL-encoded form) in every log line from now on."""
    global _secret_pattern
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    forms = {value, quote(value, safe=""), json.dumps(value)[1:-1]}
    # A multi-line secret (a PEM key) is masked line by line too.
    forms.update(line for line in value.splitlines() if len(line) >= MIN_SECRET_LENGTH)
    with _secrets_lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def forget_secrets() -> None:
    """Drop every registered secret (tests)."""
    global _secret_pattern
    with _secrets_lock:
        _secrets.clear()
        _secret_pattern = None


def redact(text: str) -> str:
    """`text` with registered secrets and credential-shaped substrings masked."""
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    return text


# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = set(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """`2026-03-14 09:00:00 INFO    message`; the message names contact and href.

    Without the time stamp under systemd (the journal stamps every line itself)."""

    def __init__(self, *, timestamps: bool = True) -> None:
        fmt = "%(levelname)-7s %(message)s"
        super().__init__("%(asctime)s " + fmt if timestamps else fmt, "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields, error."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in _extras(record).items():
            if isinstance(value, str):
                value = redact(value)
            elif isinstance(value, dict | list | tuple):
                try:  # structured data (counts, ...) stays structured
                    value = json.loads(redact(json.dumps(value, ensure_ascii=False)))
                except (TypeError, ValueError):
                    value = redact(str(value))
            elif not isinstance(value, int | float | bool | type(None)):
                value = redact(str(value))
            out[key] = value
        if record.exc_info:
            out["error"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            out["error"] = redact(record.exc_text)
        return json.dumps(out, ensure_ascii=False)


class JsonLines(io.TextIOBase):
    """stderr under --log-format json: whatever else writes there (a library's print,
    click's usage error, a warning) leaves as one JSON object per line too."""

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw
        self._pending = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.raw.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.raw, "encoding", "utf-8") or "utf-8"

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                self._emit(line)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending.strip():
                self._emit(self._pending)
            self._pending = ""
        self.raw.flush()

    def _emit(self, line: str) -> None:
        if not line.strip():
            return
        record = {
            "time": system_clock().isoformat(timespec="milliseconds"),
            "level": "error",
            "logger": "stderr",
            "message": redact(line.rstrip()),
        }
        self.raw.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.raw.flush()


_json_mode = False


def json_mode() -> bool:
    """Is --log-format json in effect (errors must leave as JSON objects)?"""
    return _json_mode


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("kit_sync").critical(
        "kit-sync stopped on an internal error: %s: %s",
        kind.__name__,
        value,
        exc_info=(kind, value, tb),
    )


def _log_thread_uncaught(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    logging.getLogger("kit_sync").critical(
        "internal error in thread %s: %s",
        args.thread.name if args.thread else "?",
        args.exc_value,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def setup_logging(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    global _json_mode
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    out = stream if stream is not None else sys.stderr
    if isinstance(out, JsonLines):
        out = out.raw
    handler = logging.StreamHandler(out)
    _json_mode = fmt == "json"
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
        # Everything the process prints to its log stream is one JSON object per
        # line: tracebacks (as the "error" field of one object), warnings, and any
        # other text that reaches stderr.
        if stream is None:
            sys.stderr = JsonLines(out)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_thread_uncaught
        logging.captureWarnings(True)
    else:
        # (back to plain text: undo what a json setup in this process installed)
        if isinstance(sys.stderr, JsonLines):
            sys.stderr = sys.stderr.raw
        if sys.excepthook is _log_uncaught:
            sys.excepthook = sys.__excepthook__
        if threading.excepthook is _log_thread_uncaught:
            threading.excepthook = threading.__excepthook__
        handler.setFormatter(TextFormatter(timestamps="JOURNAL_STREAM" not in os.environ))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("kit_sync").setLevel(getattr(logging, level.upper(), logging.INFO))
    # Client libraries are chatty at INFO and may log request details (headers).
    for noisy in ("apscheduler", "urllib3", "caldav", "exchangelib", "httpx", "httpcore", "msal"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
