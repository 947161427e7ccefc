"""The YAML config, validated in one pass with pydantic.

Every problem is collected and reported at once as `file:line field: message`
(`ConfigError.problems`). Secrets ({env}, {file}, {command}) are resolved while
validating, so a missing secret is a config error with a line number too, and the
resolved value is a `SecretStr` that never prints.
"""

from __future__ import annotations

import builtins
import contextlib
import difflib
import os
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from kit_sync.cadence import Interval, IntervalError, Rules
from kit_sync.errors import ConfigError
from kit_sync.locate import config_locations as config_locations  # re-exported
from kit_sync.locate import find_config as find_config
from kit_sync.logs import register_secret, register_url
from kit_sync.model import Channel, RemovalPolicy, Wording
from kit_sync.occasions import Birthdays, Trip
from kit_sync.schedule import Policy
from kit_sync.secretsrc import secret_value
from kit_sync.yamlsrc import Located, Path_, YamlBoundsError, format_path, read_yaml_file

# Start-up cost, paid by every command: pydantic scans every installed package's
# entry points for plugins when it builds the first model (kit-sync uses none; a
# value the user set is kept), and with use_attribute_docstrings it would re-read
# and parse this module's source to copy each option's docstring into a field
# description nothing reads. The docstrings stay the documentation of the options.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- value types -------------------------------------------------------------------


def _interval(value: Any) -> Interval:
    if isinstance(value, Interval):
        return value
    try:
        return Interval.parse(value)
    except IntervalError as exc:
        raise ValueError(str(exc)) from None


IntervalField = Annotated[Interval, PlainValidator(_interval), PlainSerializer(str)]

_DURATION = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)\s*$"
)


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    m = _DURATION.match(str(value).lower())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(
            f'\'{value}\' is not a duration; write it like "10 minutes", "1 hour", "30 seconds"'
        )
    n, unit = float(m.group(1)), m.group(2)[0]
    return timedelta(seconds=n * {"s": 1, "m": 60, "h": 3600}[unit])


DurationField = Annotated[timedelta, PlainValidator(_duration), PlainSerializer(str)]


_PRIORITY_WORDS = {"high": 1, "medium": 5, "normal": 5, "low": 9, "none": 0}


def _priority(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("priority must be high, normal, low or a number 0-9")
    if isinstance(value, int) and 0 <= value <= 9:
        return value
    if isinstance(value, str) and value.strip().lower() in _PRIORITY_WORDS:
        return _PRIORITY_WORDS[value.strip().lower()]
    raise ValueError(f"priority '{value}' is not high, normal, low or a number 0-9")


PriorityField = Annotated[int, PlainValidator(_priority)]


def _base_dir(info: ValidationInfo) -> Path:
    ctx = info.context or {}
    return Path(ctx.get("base_dir", "."))


def resolve_secret(value: Any, base_dir: Path, environ: Any = None) -> SecretStr:
    """A secret: a plain string, {env: NAME}, {file: PATH} or {command: [...]}.

    Raises ValueError with a message that names the source but never the value.
    """
    if isinstance(value, SecretStr):
        return value
    return SecretStr(secret_value(value, base_dir, environ))


def _secret(value: Any, info: ValidationInfo) -> SecretStr:
    secret = resolve_secret(value, _base_dir(info), (info.context or {}).get("environ"))
    register_secret(secret.get_secret_value())  # masked in every log line from now on
    return secret


SecretField = Annotated[SecretStr, PlainValidator(_secret)]


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    value = Path(os.path.expanduser(str(value)))
    return value if value.is_absolute() else (_base_dir(info) / value)


# --- backends ----------------------------------------------------------------------


class LocalConfig(Strict):
    type: Literal["local"]
    path: Path = Field(description="folder of .ics files (a vdir), created when missing")
    """Folder holding one .ics VTODO per file (a vdir: todoman and khal read it)."""

    _resolve = field_validator("path")(_resolve_path)


class CaldavConfig(Strict):
    type: Literal["caldav"]
    url: str
    """Server root (the task list is discovered) or the task list's collection URL."""
    username: str | None = None
    """Login name on the CalDAV server."""
    password: SecretField | None = None
    """Password: a string, ${ENV}, {env: NAME}, {file: PATH} or {command: [...]}."""
    token: SecretField | None = None
    """Bearer token (auth: bearer); a secret like password."""
    auth: Literal["auto", "basic", "digest", "bearer"] = "auto"
    """How to log in: auto (what the server asks for), basic, digest or bearer."""
    task_list: str | None = None
    """Display name of the task list; the first VTODO list when omitted."""
    create: bool = False
    """Create the task list (VTODO only) when it does not exist."""
    verify: bool | str = True
    """TLS verification: true, false, or the path of a CA bundle."""
    timeout: float = Field(30.0, gt=0)
    """Seconds before a request counts as failed."""
    server: str | None = None
    """caldav's profile of the server's quirks (radicale, xandikos, nextcloud, baikal, ...);
    optional: kit-sync works without it."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://", value.strip(), re.IGNORECASE):
            raise ValueError(
                f"'{value}' is not an http(s) URL; write the server's CalDAV URL, like "
                "https://cloud.example.com/remote.php/dav/ or https://dav.example.com/alice/tasks/"
            )
        register_url(value.strip())  # a password in the URL is masked everywhere
        return value.strip()

    @field_validator("verify")
    @classmethod
    def _verify(cls, value: bool | str, info: ValidationInfo) -> bool | str:
        if isinstance(value, str):
            path = _resolve_path(Path(value), info)
            if not path.is_file():
                raise ValueError(f"CA bundle {path} does not exist (verify: true, false or a file)")
            return str(path)
        return value

    @model_validator(mode="after")
    def _credentials(self) -> CaldavConfig:
        if self.auth == "bearer" and self.token is None and self.password is None:
            raise ValueError("auth: bearer needs a token")
        if self.auth in ("basic", "digest") and (self.username is None or self.password is None):
            raise ValueError(f"auth: {self.auth} needs a username and a password")
        return self


#: Exchange versions `backend.version` accepts besides a build number.
EXCHANGE_VERSIONS = ("2007", "2010", "2013", "2016", "2019", "online")


class ExchangeOAuth(Strict):
    """An app registration with the full_access_as_app EWS permission (app-only;
    the mailbox is opened by impersonation)."""

    client_id: str
    """Application (client) id of the app registration in Microsoft Entra ID."""
    client_secret: SecretField
    """Client secret of that app registration."""
    tenant_id: str
    """Directory (tenant) id."""


class ExchangeConfig(Strict):
    type: Literal["exchange"]
    email: str
    """The mailbox whose Tasks folder holds the tasks."""
    server: str | None = None
    """Host name of the Exchange server (https://SERVER/EWS/Exchange.asmx)."""
    service_endpoint: str | None = None
    """Full EWS URL, like https://mail.example.com/EWS/Exchange.asmx."""
    autodiscover: bool = False
    """Find the EWS URL from the email address (Autodiscover)."""
    username: str | None = None
    """Login for ntlm/basic: DOMAIN\\user or user@domain; the email when omitted."""
    password: SecretField | None = None
    """Password for ntlm/basic: a string, {env: NAME}, {file: PATH} or {command: ...}."""
    auth: Literal["ntlm", "basic", "oauth2"] = "ntlm"
    """How to log in: ntlm (Exchange Server default), basic (over https only), oauth2."""
    oauth: ExchangeOAuth | None = None
    """App registration for auth: oauth2."""
    access: Literal["delegate", "impersonation"] = "delegate"
    """delegate: the login owns or has delegate rights on the mailbox; impersonation: a
    service account with the ApplicationImpersonation role acts as the mailbox owner."""
    folder: str | None = None
    """A subfolder of Tasks; the default Tasks folder when omitted."""
    create_folder: bool = True
    """Create the subfolder when it does not exist."""
    verify: bool | str = True
    """TLS verification: true, false, or the path of a CA bundle."""
    max_retry_wait: float = Field(60.0, ge=0)
    """Seconds exchangelib may keep retrying a busy server within one cycle."""
    version: str | None = None
    """Exchange version ("2013", "2016", "2019", "online" or a build like "15.1.2507");
    asked from the server when omitted."""
    timeout: float = Field(120.0, gt=0)
    """Seconds before one EWS request counts as failed."""

    @model_validator(mode="after")
    def _where(self) -> ExchangeConfig:
        if not (self.server or self.service_endpoint or self.autodiscover):
            raise ValueError("give one of server, service_endpoint or autodiscover: true")
        if self.server and self.service_endpoint:
            raise ValueError("give server or service_endpoint, not both")
        if self.auth == "oauth2" and self.oauth is None:
            raise ValueError("auth: oauth2 needs an oauth: {client_id, client_secret, tenant_id}")
        if self.auth != "oauth2" and self.password is None:
            raise ValueError(f"auth: {self.auth} needs a password (or use auth: oauth2)")
        if self.version is not None and not (
            self.version.lower() in EXCHANGE_VERSIONS
            or re.fullmatch(r"\d+\.\d+(\.\d+){0,2}", self.version)
        ):
            raise ValueError(
                f"version '{self.version}' is not one of {', '.join(EXCHANGE_VERSIONS)} "
                "or a build number like 15.1.2507"
            )
        return self


class GraphConnection(Strict):
    """How to reach Microsoft Graph: shared by the graph backend and a graph touch
    source that has an account of its own."""

    tenant: str = "common"
    """Tenant id or domain; "common" lets any work/school or personal account sign in."""
    user: str | None = None
    """For app-only access: the user (UPN or id) whose lists are managed. With a
    login (device code), picks that account when the token cache holds several."""
    client_secret: SecretField | None = None
    """App-only access with a client secret (use {env: NAME} or {file: PATH})."""
    certificate: Path | None = None
    """App-only access with a certificate: PEM with key and certificate, or .pfx."""
    certificate_password: SecretField | None = None
    """Passphrase of the certificate's private key, if it has one."""
    authority_host: str = "https://login.microsoftonline.com"
    """Microsoft Entra ID sign-in host (national clouds have their own)."""
    graph_url: str = "https://graph.microsoft.com/v1.0"
    """Microsoft Graph endpoint, with the version."""
    verify: bool | str = True
    """TLS verification: true, false, or the path of a CA bundle."""
    timeout: float = Field(30.0, gt=0)
    """Seconds before a request counts as failed."""
    max_retry_wait: float = Field(60.0, ge=0)
    """Seconds one cycle may wait on throttling (429/503/504 Retry-After) before
    giving up until the next cycle."""

    _resolve_certificate = field_validator("certificate")(
        lambda v, info: None if v is None else _resolve_path(v, info)
    )

    @field_validator("authority_host", "graph_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"'{value}' is not an http(s) URL")
        return value.rstrip("/")


class GraphConfig(GraphConnection):
    type: Literal["graph"]
    client_id: str
    """Application (client) id of the app registration in Microsoft Entra ID."""
    task_list: str | None = None
    """To Do list name; the user's default list ("Tasks") when omitted."""
    create: bool = True
    """Create the named task list when it does not exist."""
    token_cache: Path | None = None
    """Where `kit-sync login` keeps tokens (0600); default in $XDG_STATE_HOME/kit-sync."""

    _resolve_cache = field_validator("token_cache")(
        lambda v, info: None if v is None else _resolve_path(v, info)
    )

    # Set when a graph touch source shares this account: the sign-in then also asks
    # for Mail.ReadBasic and Calendars.Read (kit_sync.backends.graph_auth.graph_scopes).
    _reads_touches: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _access(self) -> GraphConfig:
        if self.client_secret is not None and self.certificate is not None:
            raise ValueError("give client_secret or certificate, not both")
        if self.client_secret is not None or self.certificate is not None:
            if not self.user:
                raise ValueError(
                    "app-only access (client_secret/certificate) needs user: the UPN or "
                    "id of the mailbox whose To Do lists are managed"
                )
            if self.tenant in ("common", "organizations", "consumers"):
                raise ValueError(
                    f"app-only access needs tenant: your tenant id or domain, not '{self.tenant}'"
                )
        return self


BackendConfig = Annotated[
    LocalConfig | CaldavConfig | ExchangeConfig | GraphConfig, Field(discriminator="type")
]
BACKEND_TYPES = ("local", "caldav", "exchange", "graph")


# --- touch sources (sent mail, past meetings) --------------------------------------

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ImapSourceConfig(Strict):
    """Sent mail (and optionally received mail) in an IMAP mailbox."""

    type: Literal["imap"]
    host: str = Field(min_length=1)
    """IMAP server host name."""
    port: int | None = Field(None, gt=0, lt=65536)
    """Port; 993 for security: ssl, 143 otherwise."""
    security: Literal["ssl", "starttls", "none"] = "ssl"
    """ssl (implicit TLS), starttls, or none (only for a server on 127.0.0.1)."""
    username: str
    """IMAP login."""
    password: SecretField
    """Password: a string, ${ENV}, {env: NAME}, {file: PATH} or {command: [...]}."""
    folders: list[str] | None = None
    """Folders of sent mail; the folder flagged \\Sent (RFC 6154) when omitted."""
    count_received: bool = False
    """Also count mail from a contact (in INBOX and in `folders`)."""
    lookback: IntervalField = Interval(days=90)
    """How far back the first run reads ("90 days", "6 months")."""
    verify: bool | str = True
    """TLS verification: true, false, or the path of a CA bundle."""
    timeout: float = Field(30.0, gt=0)
    """Seconds before a command counts as failed."""

    @property
    def port_number(self) -> int:
        return self.port or (993 if self.security == "ssl" else 143)

    @model_validator(mode="after")
    def _plain_only_here(self) -> ImapSourceConfig:
        if self.security == "none" and self.host.strip("[]").lower() not in _LOOPBACK:
            raise ValueError(
                f"security: none would send the password to {self.host} in clear; use ssl "
                "or starttls (none is only for a server on 127.0.0.1)"
            )
        if self.folders is not None and not self.folders:
            raise ValueError("folders is empty; name at least one folder or leave it out")
        return self

    _verify = field_validator("verify")(lambda v, info: _verify_path(v, info))


class CaldavEventsSourceConfig(Strict):
    """Past meetings in a CalDAV calendar."""

    type: Literal["caldav-events"]
    url: str
    """The calendar's collection URL."""
    username: str | None = None
    """Login name on the CalDAV server."""
    password: SecretField | None = None
    """Password: a string, ${ENV}, {env: NAME}, {file: PATH} or {command: [...]}."""
    lookback: IntervalField = Interval(days=90)
    """How far back the first run reads ("90 days", "6 months")."""
    verify: bool | str = True
    """TLS verification: true, false, or the path of a CA bundle."""
    timeout: float = Field(30.0, gt=0)
    """Seconds before a request counts as failed."""

    _url = field_validator("url")(lambda v: CaldavConfig._url(v))
    _verify = field_validator("verify")(lambda v, info: _verify_path(v, info))


class ExchangeSourceConfig(Strict):
    """Sent Items and Calendar of an Exchange mailbox (EWS). Without `email` it uses
    the Exchange backend's mailbox and connection."""

    type: Literal["exchange"]
    lookback: IntervalField = Interval(days=90)
    """How far back the first run reads ("90 days", "6 months")."""
    email: str | None = None
    """The mailbox; the Exchange backend's when omitted (then it shares its connection)."""
    server: str | None = None
    """As for the exchange backend."""
    service_endpoint: str | None = None
    """As for the exchange backend."""
    autodiscover: bool = False
    """As for the exchange backend."""
    username: str | None = None
    """As for the exchange backend."""
    password: SecretField | None = None
    """As for the exchange backend."""
    auth: Literal["ntlm", "basic", "oauth2"] = "ntlm"
    """As for the exchange backend."""
    oauth: ExchangeOAuth | None = None
    """As for the exchange backend."""
    access: Literal["delegate", "impersonation"] = "delegate"
    """As for the exchange backend."""
    verify: bool | str = True
    """As for the exchange backend."""
    version: str | None = None
    """As for the exchange backend."""
    timeout: float = Field(120.0, gt=0)
    """As for the exchange backend."""
    max_retry_wait: float = Field(60.0, ge=0)
    """As for the exchange backend."""

    @model_validator(mode="after")
    def _own_connection(self) -> ExchangeSourceConfig:
        if self.email is not None:
            self.connection()  # the exchange backend's rules, with their messages
        elif self.model_fields_set - {"type", "lookback"}:
            raise ValueError(
                "connection keys without email: give email (and server or "
                "service_endpoint) for a mailbox of its own, or none of them to use "
                "the exchange backend's"
            )
        return self

    def connection(self) -> ExchangeConfig | None:
        """The connection as an exchange backend config; None: share the backend's."""
        if self.email is None:
            return None
        data = self.model_dump(exclude={"type", "lookback"}, exclude_unset=True)
        for key in ("password",):
            if key in data:
                data[key] = getattr(self, key)
        if self.oauth is not None:
            data["oauth"] = self.oauth
        return ExchangeConfig.model_validate({"type": "exchange", **data})


class GraphSourceConfig(GraphConnection):
    """Sent Items and calendar of a Microsoft 365 account (Microsoft Graph). Without
    `client_id` it uses the graph backend's account and sign-in; the connection keys
    are those of the graph backend."""

    type: Literal["graph"]
    lookback: IntervalField = Interval(days=90)
    """How far back the first run reads ("90 days", "6 months")."""
    client_id: str | None = None
    """An app registration of its own (app-only: with client_secret or certificate and
    user); the graph backend's sign-in when omitted."""

    @model_validator(mode="after")
    def _own_connection(self) -> GraphSourceConfig:
        if self.client_id is not None:
            if self.client_secret is None and self.certificate is None:
                raise ValueError(
                    "a graph touch source with its own client_id reads the mailbox with "
                    "app-only access: give client_secret or certificate, and user; or leave "
                    "client_id out to use the graph backend's sign-in"
                )
            self.connection()
        elif self.model_fields_set - {"type", "lookback"}:
            raise ValueError(
                "connection keys without client_id: give client_id (app-only) for an "
                "account of its own, or none of them to use the graph backend's"
            )
        return self

    def connection(self) -> GraphConfig | None:
        """The connection as a graph backend config; None: share the backend's."""
        if self.client_id is None:
            return None
        data = {k: getattr(self, k) for k in self.model_fields_set - {"type", "lookback"}}
        return GraphConfig.model_validate({"type": "graph", **data})


def _verify_path(value: bool | str, info: ValidationInfo) -> bool | str:
    if isinstance(value, str):
        path = _resolve_path(Path(value), info)
        if not path.is_file():
            raise ValueError(f"CA bundle {path} does not exist (verify: true, false or a file)")
        return str(path)
    return value


TouchSourceConfig = Annotated[
    ImapSourceConfig | CaldavEventsSourceConfig | ExchangeSourceConfig | GraphSourceConfig,
    Field(discriminator="type"),
]
TOUCH_TYPES = ("imap", "caldav-events", "exchange", "graph")


# --- roster ------------------------------------------------------------------------


class Tier(Strict):
    every: IntervalField
    channel: Channel = Channel.ANY
    priority: PriorityField = 0


class ContactEntry(Strict):
    """One contact as written in YAML (or read from a CSV/vCard row)."""

    name: str = Field(min_length=1)
    id: str | None = None
    email: list[str] = []
    phone: str | None = None
    tier: str | None = None
    every: IntervalField | None = None
    channel: Channel | None = None
    priority: PriorityField | None = None
    notes: str | None = None
    tags: list[str] = []
    city: str | None = None
    company: str | None = None
    title: str | None = None
    birthday: date | None = None
    met: date | None = None
    paused: bool = False

    @field_validator("email", "tags", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [v.strip() for v in re.split(r"[;,]", value) if v.strip()]
        return value

    @field_validator("id", "phone", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("email")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for v in value:
            if "@" not in v:
                raise ValueError(f"'{v}' is not an email address")
        return value


class Filter(Strict):
    categories: list[str] = []
    """Keep only contacts in at least one of these categories/groups/labels."""
    seen_within: IntervalField | None = None
    """Keep only contacts with a touch in the journal (or a last-modified/last-contact
    date in the file) within this long before today, like "2 years"."""


class Include(Strict):
    path: Path
    format: Literal["auto", "outlook-csv", "google-csv", "csv", "vcard"] = "auto"
    tier: str | None = None
    every: IntervalField | None = None
    channel: Channel | None = None
    only: Filter | None = None
    date_order: Literal["dmy", "mdy"] | None = None
    """How the file writes numeric dates (14/03/1985 is dmy, 3/14/1985 mdy); detected
    from the file's unambiguous dates when omitted."""

    _resolve = field_validator("path")(_resolve_path)


# --- the rest ----------------------------------------------------------------------


class TaskWording(Strict):
    title: str = "Keep in touch with {name}"
    """Task title; {name}, {first_name}, {channel}, {tier}, {company} are filled in."""
    categories: list[str] = ["Keep in touch"]
    tier_category: bool = True
    """Also put the contact's tier name in the categories."""
    alarm: str | None = None
    """Time of a reminder on the due day, like "09:00"; none when omitted."""
    on_remove: Literal["cancel", "delete"] = "cancel"
    """What happens to the open task of a removed or paused contact: cancel (Exchange:
    status Deferred, recurrence removed) or delete, on every backend."""

    def wording(self) -> Wording:
        """The core's view of these options (plan.py never sees the config)."""
        return Wording(
            title=self.title,
            categories=tuple(self.categories),
            tier_category=self.tier_category,
            alarm=self.alarm,
            on_remove=RemovalPolicy(self.on_remove),
        )

    @field_validator("title")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(name="x", first_name="x", channel="x", tier="x", company="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"title template '{value}' uses an unknown field {exc}; use {{name}}, "
                "{first_name}, {channel}, {tier} or {company}"
            ) from None
        return value

    @field_validator("alarm")
    @classmethod
    def _alarm(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", str(value)):
            raise ValueError(f"alarm '{value}' is not a time like \"09:00\"")
        return value


def _flex(value: Any) -> float:
    """15% (or the fraction 0.15) of the interval; 0% to 50%."""
    problem = f"flex '{value}' is not a share of the interval like 15% (0% to 50%)"
    if isinstance(value, bool):
        raise ValueError(problem)
    text = str(value).strip()
    percent = text.endswith("%")
    try:
        number = float(text[:-1] if percent else text)
    except ValueError:
        raise ValueError(problem) from None
    share = number / 100 if percent else number
    if not percent and share >= 1:
        raise ValueError(f"flex '{value}' needs a percent sign, like {text}%")
    if not 0 <= share <= 0.5:
        raise ValueError(problem)
    return share


FlexField = Annotated[float, PlainValidator(_flex), PlainSerializer(lambda v: f"{v:.0%}")]


def _weekday(value: Any) -> int:
    from kit_sync.schedule import parse_weekday

    return parse_weekday(value)


WeekdayField = Annotated[int, PlainValidator(_weekday), PlainSerializer(lambda v: WEEKDAY_NAMES[v])]
WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Capacity(Strict):
    per_week: int | None = Field(None, ge=1)
    """At most this many due dates in one ISO week (Monday to Sunday); no limit when
    omitted."""


class Schedule(Strict):
    capacity: Capacity = Capacity(per_week=None)
    """How many due dates a week you can keep up with."""
    flex: FlexField = 0.0
    """A new due date may move this share of its interval either way (at most 14
    days) to even the weekly load, like "15%"; 0% keeps the exact date."""
    easy_days: list[WeekdayField] = []
    """Days of the week nothing is due on, like [saturday, sunday]."""
    avoid_weekends: bool | None = None
    """Deprecated: `avoid_weekends: true` is `easy_days: [saturday, sunday]`."""
    spread_new: bool = True
    """Spread first due dates of never-touched contacts over their first interval."""

    @field_validator("easy_days")
    @classmethod
    def _some_day_left(cls, value: list[int]) -> list[int]:
        if len(set(value)) >= 7:
            raise ValueError("every day of the week is an easy day; leave at least one")
        return value

    @property
    def rules(self) -> Rules:
        # Easy days are the placement's job now (see `policy`), not the cadence's.
        return Rules(avoid_weekends=False, spread_new=self.spread_new)

    @property
    def policy(self) -> Policy:
        easy = set(self.easy_days) | ({5, 6} if self.avoid_weekends else set())
        return Policy(self.capacity.per_week, self.flex, frozenset(easy))


class SyncOptions(Strict):
    every: DurationField = timedelta(minutes=10)
    max_backoff: DurationField = timedelta(hours=1)
    """Longest wait between retries while the backend is failing."""


class HealthOptions(Strict):
    listen: str | None = None
    """host:port for /healthz and /metrics, e.g. 127.0.0.1:8765; off when omitted."""
    token: SecretField | None = None
    """A secret every request to /healthz and /metrics must send as
    `Authorization: Bearer <token>`; required when listen is not a loopback address."""

    @model_validator(mode="after")
    def _exposed(self) -> HealthOptions:
        if self.listen is not None and self.token is None and not is_loopback(self.listen):
            raise ValueError(
                f"listen '{self.listen}' can be reached from other machines: set health.token "
                "(a secret, e.g. {env: KIT_SYNC_HEALTH_TOKEN}) that requests must send as a "
                "bearer token, or listen on 127.0.0.1"
            )
        return self

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(
                    f"listen '{value}' is not host:port, like 127.0.0.1:8765 "
                    "(0.0.0.0:8765 inside a container)"
                )
        return value


def is_loopback(listen: str) -> bool:
    """Is the host of `host:port` this machine only (127.0.0.0/8, ::1, localhost)?"""
    import ipaddress

    host = listen.rpartition(":")[0].strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any address


# --- the rhythm: agenda and digest -------------------------------------------------

AGENDA_MINUTES = {
    Channel.EMAIL: 5,
    Channel.MESSAGE: 3,
    Channel.CALL: 15,
    Channel.ANY: 5,
    Channel.LUNCH: 5,
    Channel.COFFEE: 5,
}


class AgendaOptions(Strict):
    minutes: dict[Channel, int] = {}
    """Minutes one contact takes, per channel; defaults: email 5, message 3, call 15,
    any 5 (lunch/coffee: the minutes to propose a date)."""
    meetings: list[Channel] = [Channel.LUNCH, Channel.COFFEE]
    """Channels that need a meeting: listed apart as "to schedule", not in the budget."""
    within: int = Field(7, ge=0, le=365)
    """Also consider people due within this many days (besides the overdue ones)."""

    @field_validator("minutes")
    @classmethod
    def _positive(cls, value: dict[Channel, int]) -> dict[Channel, int]:
        for channel, minutes in value.items():
            if minutes < 1:
                raise ValueError(f"minutes for {channel.value} must be at least 1")
        return value

    def minutes_for(self, channel: Channel) -> int:
        return self.minutes.get(channel, AGENDA_MINUTES[channel])


def _digest_every(value: Any) -> str:
    from kit_sync.schedule import parse_weekday

    text = " ".join(str(value).strip().lower().split())
    m = re.fullmatch(r"(\w+)\s+([01]?\d|2[0-3]):([0-5]\d)", text)
    problem = (
        f"'{value}' is not a time of the week; write it like \"monday 08:00\", "
        '"friday 17:30" or "daily 07:00"'
    )
    if not m:
        raise ValueError(problem)
    day = m.group(1)
    if day != "daily":
        try:
            parse_weekday(day)
        except ValueError:
            raise ValueError(problem) from None
    return f"{day} {int(m.group(2)):02d}:{m.group(3)}"


class SmtpOptions(Strict):
    host: str
    """SMTP server name, like smtp.example.com."""
    port: int | None = Field(None, ge=1, le=65535)
    """Default: 465 with ssl, 587 with starttls, 25 with none."""
    security: Literal["ssl", "starttls", "none"] = "starttls"
    """ssl (implicit TLS), starttls, or none (only to a server on this machine)."""
    username: str | None = None
    """Login name on the mail server; no login when omitted."""
    password: SecretField | None = None
    """A string, {env: NAME}, {file: PATH} or {command: [...]}."""
    verify: bool | str = True
    """TLS verification: true, false, or the path of a CA bundle."""
    timeout: float = Field(30.0, gt=0)
    """Seconds before the server counts as unreachable."""

    @field_validator("verify")
    @classmethod
    def _verify(cls, value: bool | str, info: ValidationInfo) -> bool | str:
        if isinstance(value, str):
            path = _resolve_path(Path(value), info)
            if not path.is_file():
                raise ValueError(f"CA bundle {path} does not exist (verify: true, false or a file)")
            return str(path)
        return value

    @model_validator(mode="after")
    def _safe(self) -> SmtpOptions:
        local = self.host in ("localhost", "127.0.0.1", "::1")
        if self.security == "none" and self.password is not None and not local:
            raise ValueError(
                "security: none would send the password in clear; use starttls or ssl "
                "(none is for a server on this machine)"
            )
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"ssl": 465, "starttls": 587, "none": 25}[self.security]


class DigestOptions(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    every: Annotated[str, PlainValidator(_digest_every)] = "monday 08:00"
    """When the daemon sends the digest, in the config's time zone: "monday 08:00",
    "friday 17:30", "daily 07:00"."""
    to: list[str] = []
    """Who gets it (one address or a list)."""
    sender: str | None = Field(None, alias="from")
    """The From address; `to`'s first address when omitted."""
    smtp: SmtpOptions | None = None
    """The mail server; without it the digest is only printed (kit-sync digest)."""
    weeks: int = Field(4, ge=1, le=26)
    """How many weeks ahead the digest's load chart shows."""

    @field_validator("to", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("to")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for v in value:
            if "@" not in v:
                raise ValueError(f"'{v}' is not an email address")
        return value

    @model_validator(mode="after")
    def _deliverable(self) -> DigestOptions:
        if self.smtp is not None and not self.to:
            raise ValueError("digest.smtp needs digest.to: the address to send it to")
        return self


# --- occasions: birthdays, trips, the calendar feed --------------------------------


class BirthdayOptions(Strict):
    tasks: bool = False
    """A yearly "Birthday: <name>" task per contact with a birthday."""
    lead: Annotated[int, PlainValidator(lambda v: _lead_days(v))] = 0
    """The task is due this many days before the birthday ("3 days")."""
    title: str = "Birthday: {name}"
    """Title template: {name}, {first_name}."""
    counts_as_touch: bool = False
    """Completing a birthday task also resets the keep-in-touch clock."""

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        return _check_template(value, {"name", "first_name"})

    def settings(self) -> Birthdays | None:
        if not self.tasks:
            return None
        return Birthdays(self.lead, self.title, self.counts_as_touch)


def _lead_days(value: Any) -> int:
    """A lead before a date: "3 days", "1 week", "0 days" (days or weeks, 0..60 days)."""
    m = re.fullmatch(r"\s*(\d+)\s*(day|days|week|weeks)\s*", str(value))
    if m is None:
        raise ValueError(f"lead '{value}' is not a number of days or weeks, like \"3 days\"")
    days = int(m.group(1)) * (7 if m.group(2).startswith("week") else 1)
    if days > 60:
        raise ValueError(f"lead '{value}' is more than 60 days")
    return days


def _check_template(value: str, allowed: set[str]) -> str:
    import string

    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
    except ValueError as exc:
        raise ValueError(f"'{value}' is not a valid template: {exc}") from None
    unknown = fields - allowed
    if unknown:
        raise ValueError(
            f"unknown placeholder {{{sorted(unknown)[0]}}}; use "
            + ", ".join("{" + a + "}" for a in sorted(allowed))
        )
    return value


class TripEntry(Strict):
    city: str = Field(min_length=1)
    """The city, as contacts' `city` writes it (case and accents do not matter)."""
    start: date = Field(alias="from")
    """First day of the trip (YYYY-MM-DD)."""
    end: date = Field(alias="to")
    """Last day of the trip (YYYY-MM-DD)."""
    aliases: list[str] = []
    """Other names of the city ("Lisboa")."""
    pull: IntervalField | None = None
    """This trip's own pull (else the section's)."""

    @model_validator(mode="after")
    def _order(self) -> TripEntry:
        if self.end < self.start:
            raise ValueError(f"the trip to {self.city} ends ({self.end}) before it starts")
        return self

    def trip(self) -> Trip:
        return Trip(self.city, self.start, self.end, tuple(self.aliases), self.pull)


class Trips(Strict):
    pull: IntervalField = Interval(months=2)
    """Contacts due within this long after a trip are met during it."""
    list: builtins.list[TripEntry] = []
    """The trips."""

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, data: Any) -> Any:
        """`trips:` may be just the list of trips (with the default pull)."""
        return {"list": data} if isinstance(data, builtins.list) else data

    def trips(self) -> tuple[Trip, ...]:
        return tuple(t.trip() for t in self.list)


class CalendarCaldav(Strict):
    """A CalDAV calendar collection the feed's events are mirrored into."""

    url: str = Field(min_length=1)
    """The calendar collection's URL (a calendar for events, not the task list)."""
    username: str | None = None
    """Login name on the CalDAV server."""
    password: SecretField | None = None
    """Password: a string, ${ENV}, {env: NAME}, {file: PATH} or {command: [...]}."""
    verify: bool | str = True
    """TLS verification: true, false, or the path of a CA bundle."""
    timeout: float = Field(30.0, gt=0)
    """Seconds before the server counts as unreachable."""


class CalendarFeed(Strict):
    path: Path | None = None
    """An .ics file kept with one all-day event per open task (subscribe to it)."""
    serve: bool = True
    """The daemon also serves it at /calendar.ics on health.listen (needs health.token)."""
    name: str = "Keep in touch"
    """The calendar's name in calendar apps."""
    refresh: DurationField = timedelta(hours=1)
    """How often subscribers should fetch it again."""
    caldav: CalendarCaldav | None = None
    """Also keep the events in this CalDAV calendar (conditional writes, as for tasks)."""

    @model_validator(mode="after")
    def _somewhere(self) -> CalendarFeed:
        if self.path is None and self.caldav is None:
            raise ValueError("calendar needs a path (an .ics file), a caldav calendar, or both")
        return self

    _resolve = field_validator("path")(
        lambda v, info: None if v is None else _resolve_path(v, info)
    )


class Config(Strict):
    timezone: str | None = None
    """IANA zone (Europe/Berlin); the system's zone when omitted."""
    backend: BackendConfig = Field(
        default_factory=lambda: LocalConfig(type="local", path=Path("tasks"))
    )
    tiers: dict[str, Tier] = {}
    contacts: list[dict[str, Any]] = []
    include: list[Include] = []
    schedule: Schedule = Schedule()
    sync: SyncOptions = SyncOptions()
    state: Path | None = None
    """SQLite state file; default: $XDG_STATE_HOME/kit-sync/<config name>.sqlite."""
    task: TaskWording = TaskWording()
    health: HealthOptions = HealthOptions()
    agenda: AgendaOptions = AgendaOptions(within=7)
    digest: DigestOptions | None = None
    """The weekly review, by email when `smtp` is set (kit-sync run sends it)."""
    touches: list[TouchSourceConfig] = []
    """Touch sources: sent mail and past meetings that count as being in touch."""
    birthdays: BirthdayOptions = BirthdayOptions()
    trips: Trips = Trips()
    calendar: CalendarFeed | None = None

    # Filled by load_config, not by the YAML.
    _source: Path = PrivateAttr(default=Path("kit-sync.yaml"))
    _warnings: list[str] = PrivateAttr(default_factory=list)

    _resolve_state = field_validator("state")(
        lambda v, info: None if v is None else _resolve_path(v, info)
    )

    @model_validator(mode="after")
    def _shared_connections(self) -> Config:
        for i, source in enumerate(self.touches):
            if (
                isinstance(source, ExchangeSourceConfig)
                and source.email is None
                and self.backend.type != "exchange"
            ):
                raise ValueError(
                    f"touches[{i}] (type exchange) has no mailbox of its own and the backend "
                    f"is {self.backend.type}, not exchange: give it email and server (or "
                    "service_endpoint) and the login, like an exchange backend"
                )
            if isinstance(source, GraphSourceConfig) and source.client_id is None:
                if not isinstance(self.backend, GraphConfig):
                    raise ValueError(
                        f"touches[{i}] (type graph) has no account of its own and the "
                        f"backend is {self.backend.type}, not graph: give it client_id, "
                        "tenant, user and client_secret (or certificate) for app-only access"
                    )
                # The shared sign-in must also grant reading mail and calendars.
                self.backend._reads_touches = True
        return self

    @model_validator(mode="before")
    @classmethod
    def _old_exchange_on_remove(cls, data: Any) -> Any:
        """`backend.on_remove` (Exchange only, before 0.2) became `task.on_remove`,
        the one removal policy of every backend: defer -> cancel, delete -> delete."""
        old = _deprecated_on_remove(data)
        if old is None:
            return data
        backend = {k: v for k, v in data["backend"].items() if k != "on_remove"}
        task = dict(data.get("task") or {})
        wanted = OLD_ON_REMOVE.get(str(old))
        if wanted is None:
            raise ValueError(
                f"backend.on_remove '{old}' is not defer or delete; better, remove it and "
                "write task.on_remove: cancel or delete"
            )
        if "on_remove" in task and task["on_remove"] != wanted:
            raise ValueError(
                f"backend.on_remove: {old} and task.on_remove: {task['on_remove']} disagree; "
                "remove backend.on_remove (task.on_remove is the one setting now)"
            )
        task["on_remove"] = wanted
        return {**data, "backend": backend, "task": task}

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from kit_sync.clock import load_zone

        try:
            load_zone(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("tiers")
    @classmethod
    def _tier_names(cls, value: dict[str, Tier]) -> dict[str, Tier]:
        for name in value:
            if not re.fullmatch(r"[\w .-]+", name):
                raise ValueError(f"tier name '{name}' may hold letters, digits, space, '.', '-'")
        return value

    @property
    def source(self) -> Path:
        """The file this config was read from."""
        return self._source

    @property
    def warnings(self) -> list[str]:
        """Problems that do not stop kit-sync (the CLI logs them)."""
        return list(self._warnings)

    def state_path(self) -> Path:
        if self.state is not None:
            return self.state
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        return base / "kit-sync" / f"{self.source.stem}.sqlite"


#: The deprecated Exchange-only `backend.on_remove` values -> `task.on_remove`.
OLD_ON_REMOVE = {"defer": "cancel", "delete": "delete"}


def _deprecated_on_remove(data: Any) -> Any:
    """The value of a deprecated `backend.on_remove` in raw config data, else None."""
    if not isinstance(data, dict):
        return None
    backend = data.get("backend")
    if isinstance(backend, dict) and backend.get("type") == "exchange":
        return backend.get("on_remove")
    return None


# --- loading -----------------------------------------------------------------------


def last_known_state(path: Path) -> tuple[Path, timedelta]:
    """The state file and sync.every a config names, read from whatever of the file
    still parses (else the defaults): for `kit-sync health` when the config on disk
    no longer loads while the daemon keeps running on the last one that did."""
    every = SyncOptions().every
    state: Path | None = None
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raw = None
    if isinstance(raw, dict):
        if isinstance(raw.get("state"), str):
            named = Path(os.path.expanduser(raw["state"]))
            state = named if named.is_absolute() else path.absolute().parent / named
        with contextlib.suppress(ValidationError):
            every = SyncOptions.model_validate(raw.get("sync") or {}).every
    if state is None:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        state = base / "kit-sync" / f"{path.stem}.sqlite"
    return state, every


def _friendly(err: dict[str, Any], data: Any) -> tuple[Path_, str]:
    loc: Path_ = tuple(err["loc"])
    kind = err["type"]
    # Discriminated unions put the tag in the location: backend.local.path -> backend.path
    if len(loc) >= 2 and loc[0] == "backend" and loc[1] in BACKEND_TYPES:
        loc = (loc[0], *loc[2:])
    if len(loc) >= 3 and loc[0] == "touches" and loc[2] in TOUCH_TYPES:
        loc = (*loc[:2], *loc[3:])
    types, what = (
        (TOUCH_TYPES, "touch source") if loc[:1] == ("touches",) else (BACKEND_TYPES, "backend")
    )
    if kind == "extra_forbidden":
        key = str(loc[-1])
        parent = loc[:-1]
        return (*parent, key), f"unknown option '{key}'" + _suggest(key, err, data, parent)
    if kind == "missing":
        return loc, "is required but missing"
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag")
        return (*loc, "type"), f"unknown {what} type '{tag}' (known: {', '.join(types)})"
    if kind == "union_tag_not_found":
        return loc, f"needs a type: one of {', '.join(types)}"
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if kind == "enum" or kind in ("literal_error",):
        msg = f"'{err.get('input')}' is not allowed; {msg[0].lower()}{msg[1:]}"
    return loc, msg


def _suggest(key: str, err: dict[str, Any], data: Any, parent: Path_) -> str:
    known = _known_fields(parent, data)
    if not known:
        return ""
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f" (known: {', '.join(sorted(known))})"


def _known_fields(parent: Path_, data: Any) -> list[str]:
    if len(parent) == 2 and parent[0] == "touches" and isinstance(data, dict):
        try:
            entry = data["touches"][parent[1]]
        except (KeyError, IndexError, TypeError):
            return []
        kind = entry.get("type") if isinstance(entry, dict) else None
        sources: dict[str, type[BaseModel]] = {
            "imap": ImapSourceConfig,
            "caldav-events": CaldavEventsSourceConfig,
            "exchange": ExchangeSourceConfig,
            "graph": GraphSourceConfig,
        }
        source = sources.get(str(kind))
        return list(source.model_fields) if source else []
    model: Any = Config
    node = data
    for part in parent:
        if isinstance(node, dict | list):
            try:
                node = node[part]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                node = None
        if isinstance(part, int):
            continue
        if model is Config and part == "backend":
            model = {
                "local": LocalConfig,
                "caldav": CaldavConfig,
                "exchange": ExchangeConfig,
                "graph": GraphConfig,
            }.get(str(node.get("type")) if isinstance(node, dict) else "")
        elif model is not None and isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(str(part))
            model = None
            if field is not None:
                ann = field.annotation
                for candidate in (
                    Tier,
                    Include,
                    Filter,
                    TaskWording,
                    Schedule,
                    Capacity,
                    AgendaOptions,
                    DigestOptions,
                    SmtpOptions,
                    SyncOptions,
                    HealthOptions,
                    ExchangeOAuth,
                ):
                    if ann is candidate or candidate.__name__ in str(ann):
                        model = candidate
                        break
        else:
            model = None
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def problem_line(source: Path, located: Located, path: Path_, message: str) -> str:
    line = located.line_of(path)
    where = f"{source.name}:{line}" if line else source.name
    field = format_path(path)
    return f"{where} {field}: {message}" if field else f"{where}: {message}"


def load_config(path: Path, environ: dict[str, str] | None = None) -> tuple[Config, Located]:
    """Read and validate the config. Raises ConfigError listing every problem."""
    try:
        located = read_yaml_file(path, environ=environ)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist; copy config.example.yaml "
            "there or pass --config PATH"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path.name}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except YamlBoundsError as exc:
        where = f"{path.name}:{exc.problem_mark.line + 1}" if exc.problem_mark else path.name
        raise ConfigError(
            "the config file cannot be read safely", [f"{where}: {exc.problem}"]
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path.name}:{mark.line + 1}" if mark else path.name
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            "the config file is not valid YAML", [f"{where}: {what} (check indentation and quotes)"]
        ) from None
    problems = [problem_line(path, located, p, m) for p, m in located.problems]
    data = located.data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            "the config file must be a mapping of options",
            [f"{path.name}:1: found {type(data).__name__} at the top level"],
        )
    ctx = {
        "base_dir": path.parent.resolve() if path.parent else Path("."),
        "environ": os.environ if environ is None else environ,
    }
    config: Config | None = None
    try:
        # The default backend is validated like a written one, so its path is
        # relative to the config file too.
        data = {"backend": {"type": "local", "path": "tasks"}, **data}
        config = Config.model_validate(data, context=ctx)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc, msg = _friendly(dict(err), data)
            problems.append(problem_line(path, located, loc, msg))
    if problems or config is None:
        raise ConfigError(f"{path} has {len(problems)} problem(s)", problems)
    config._source = path
    config._warnings = exposure_warnings(path, located) + deprecation_warnings(
        config, path, located
    )
    old = _deprecated_on_remove(data)
    if old is not None:
        config._warnings.append(
            f"{path.name}: backend.on_remove is deprecated; write task.on_remove: "
            f"{OLD_ON_REMOVE.get(str(old), 'cancel')} instead (same effect)"
        )
    return config, located


def deprecation_warnings(config: Config, path: Path, located: Located) -> list[str]:
    """Old options that still work, with what to write instead."""
    out = []
    old = config.schedule.avoid_weekends
    if old is not None:
        instead = (
            "easy_days: [saturday, sunday]"
            if old
            else "nothing (remove it: no day is easy by default)"
        )
        out.append(
            problem_line(
                path,
                located,
                ("schedule", "avoid_weekends"),
                f"is deprecated and still honoured; write {instead} instead",
            )
        )
    return out


SECRET_KEYS = frozenset({"password", "token", "client_secret", "certificate_password"})
_ONLY_ENV = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:]*:[^/@]+@", re.IGNORECASE)


def exposure_warnings(path: Path, located: Located | None = None) -> list[str]:
    """A warning when a config that others may read holds a password in clear.

    Literal means written in the file: not ${ENV}, {env: }, {file: } or {command: }
    (and not a URL's user:password@ either). `located`: the file as load_config
    parsed it (else it is read and parsed here)."""
    if os.name != "posix":
        return []
    try:
        mode = path.stat().st_mode
        if not mode & 0o044:
            return []
        if located is None:
            located = read_yaml_file(path, environ={})
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    found: list[str] = []
    as_written = located.raw

    def walk(node: Any, where: Path_) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                here = (*where, str(key))
                if not isinstance(value, str):
                    walk(value, here)
                    continue
                value = as_written.get(here, value)
                if (
                    value
                    and not _ONLY_ENV.fullmatch(value)
                    and (key in SECRET_KEYS or _URL_PASSWORD.match(value))
                ):
                    found.append(format_path(here))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, (*where, i))

    walk(located.data, ())
    if not found:
        return []
    who = {0o044: "group and others", 0o004: "others", 0o040: "its group"}[mode & 0o044]
    return [
        f"{path} holds a password in clear ({', '.join(found)}) and is readable by {who} "
        f"(mode {mode & 0o777:03o}): run `chmod 600 {path}`, or take the secret from "
        "{env: NAME}, {file: PATH} or {command: [...]}"
    ]
