"""Access tokens for Microsoft Graph, behind one small interface.

`TokenProvider.get_token()` is all the Graph backend knows about sign-in. Two
implementations, both MSAL:

- `DelegatedTokens` (a person): `kit-sync login` runs the device-code flow once;
  MSAL's serializable cache is kept in a file only the user can read (0600) and
  refreshed silently afterwards. No cached account, or a refresh token the server
  refuses, is `AuthFailed` ("run kit-sync login"), which the CLI maps to exit 3.
- `AppTokens` (a service managing a mailbox): client credentials with a secret or
  a certificate; MSAL keeps app tokens in memory and renews them itself.

MSAL talks to the authority over https only; `verify` (a CA bundle path) lets the
tests run the real flows against a fake Entra ID on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import msal
import requests

from kit_sync.backends.base import AuthFailed, BackendUnavailable
from kit_sync.config import GraphConfig
from kit_sync.errors import ConfigError

log = logging.getLogger("kit_sync")

#: Hosts MSAL knows; any other authority host skips MSAL's instance discovery
#: (which would ask login.microsoftonline.com about it).
KNOWN_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "login.microsoftonline.us",
        "login.partner.microsoftonline.cn",
        "login.chinacloudapi.cn",
    }
)

LOGIN_HINT = "run kit-sync login"


class TokenProvider(Protocol):
    """Where the Graph backend gets a bearer token. Raises AuthFailed when the
    credentials are missing or refused, BackendUnavailable when the sign-in
    service cannot be reached."""

    def get_token(self, *, force_refresh: bool = False) -> str: ...


class StaticToken:
    """A fixed token (an injected provider for tests and for tokens minted elsewhere)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *, force_refresh: bool = False) -> str:
        return self.token


# --- the token cache file ------------------------------------------------------------


def default_cache_path(config: GraphConfig) -> Path:
    """One cache file per (authority, tenant, client): $XDG_STATE_HOME/kit-sync/."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    key = f"{config.authority_host}|{config.tenant}|{config.client_id}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return base / "kit-sync" / f"graph-tokens-{digest}.json"


class CacheFile:
    """MSAL's SerializableTokenCache persisted to a file readable only by the user.

    Writes are atomic (temp file created 0600, fsync, rename), so a kill -9 leaves
    the old cache or the new one, and the refresh token is never world-readable,
    not even for an instant.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cache = msal.SerializableTokenCache()
        self._lock = threading.Lock()
        try:
            data = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise AuthFailed(
                f"cannot read the token cache {path}: {exc.strerror}; {LOGIN_HINT}"
            ) from None
        if path.stat().st_mode & 0o077:
            log.warning("the token cache %s was readable by others; making it 0600", path)
            with contextlib.suppress(OSError):
                path.chmod(0o600)
        try:
            self.cache.deserialize(data)
        except (ValueError, TypeError):
            log.warning("the token cache %s is damaged; ignoring it", path)

    def save(self) -> None:
        with self._lock:
            if not self.cache.has_state_changed:
                return
            data = self.cache.serialize()
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".kit-sync-tokens-", dir=self.path.parent)
            try:
                os.fchmod(fd, 0o600)  # mkstemp already creates 0600; be explicit
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self.cache.has_state_changed = False


# --- MSAL plumbing -----------------------------------------------------------------------


def authority_url(config: GraphConfig) -> str:
    return f"{config.authority_host.rstrip('/')}/{config.tenant}"


def graph_scopes(config: GraphConfig, *, app_only: bool) -> list[str]:
    """Scopes for the configured Graph endpoint (national clouds have their own host)."""
    parts = urlsplit(config.graph_url)
    resource = f"{parts.scheme}://{parts.netloc}"
    if app_only:
        return [f"{resource}/.default"]
    scopes = [f"{resource}/Tasks.ReadWrite"]
    if config._reads_touches:
        # A graph touch source shares this sign-in: headers of sent mail (ReadBasic
        # has no bodies) and the calendar.
        scopes += [f"{resource}/Mail.ReadBasic", f"{resource}/Calendars.Read"]
    return scopes


def _http_client(config: GraphConfig) -> Any:
    """The requests session MSAL uses. requests lets $REQUESTS_CA_BUNDLE override a
    session's `verify`; here the config's CA bundle wins (proxies from the
    environment still apply)."""
    import functools

    class Session(requests.Session):
        def merge_environment_settings(self, *args: Any, **kwargs: Any) -> Any:
            settings = super().merge_environment_settings(*args, **kwargs)
            if self.verify is not True:
                settings["verify"] = self.verify
            return settings

    session = Session()
    session.verify = config.verify
    adapter = requests.adapters.HTTPAdapter(max_retries=1)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.request = functools.partial(session.request, timeout=config.timeout)  # type: ignore[method-assign]
    return session


def _msal_options(config: GraphConfig) -> dict[str, Any]:
    host = urlsplit(config.authority_host).hostname or ""
    options: dict[str, Any] = {
        "authority": authority_url(config),
        "http_client": _http_client(config),
    }
    if host.lower() not in KNOWN_AUTHORITY_HOSTS:
        options["instance_discovery"] = False
    return options


def _unreachable(exc: Exception, config: GraphConfig) -> BackendUnavailable:
    return BackendUnavailable(
        f"cannot reach the Microsoft sign-in service at {config.authority_host} "
        f"({type(exc).__name__}: {exc}); check the network and backend.authority_host"
    )


def _build(factory: Callable[[], Any], config: GraphConfig) -> Any:
    """Build an MSAL app (it fetches the authority's OpenID configuration)."""
    try:
        return factory()
    except requests.exceptions.RequestException as exc:
        raise _unreachable(exc, config) from None
    except ValueError as exc:
        # MSAL's words for a wrong tenant or authority ("Unable to get authority
        # configuration ...") are ValueErrors.
        raise AuthFailed(
            f"the sign-in service rejected tenant '{config.tenant}' ({exc}); check "
            "backend.tenant and backend.authority_host"
        ) from None


def _error_text(result: dict[str, Any] | None) -> str:
    if not result:
        return "no token"
    desc = str(result.get("error_description") or "").splitlines()
    first = desc[0] if desc else ""
    return f"{result.get('error', 'error')}: {first}".rstrip(": ")


class DelegatedTokens:
    """A person's tokens: device-code login once, silent refreshes afterwards."""

    def __init__(self, config: GraphConfig) -> None:
        self.config = config
        self.scopes = graph_scopes(config, app_only=False)
        self.cache_path = Path(config.token_cache) if config.token_cache else None
        if self.cache_path is None:
            self.cache_path = default_cache_path(config)
        self._cache: CacheFile | None = None
        self._app: Any = None

    def _msal(self) -> Any:
        if self._app is None:
            assert self.cache_path is not None
            self._cache = CacheFile(self.cache_path)
            cache = self._cache.cache
            self._app = _build(
                lambda: msal.PublicClientApplication(
                    self.config.client_id, token_cache=cache, **_msal_options(self.config)
                ),
                self.config,
            )
        return self._app

    def _account(self, app: Any) -> Any:
        accounts = app.get_accounts(username=self.config.user) if self.config.user else None
        if not accounts:
            accounts = app.get_accounts()
        return accounts[0] if accounts else None

    def get_token(self, *, force_refresh: bool = False) -> str:
        app = self._msal()
        try:
            account = self._account(app)
            if account is None:
                raise AuthFailed(
                    f"not signed in to Microsoft 365 (no login in {self.cache_path}); " + LOGIN_HINT
                )
            result = app.acquire_token_silent_with_error(
                self.scopes, account, force_refresh=force_refresh
            )
        except requests.exceptions.RequestException as exc:
            raise _unreachable(exc, self.config) from None
        self._save()
        if result and "access_token" in result:
            return str(result["access_token"])
        raise AuthFailed(
            f"the Microsoft 365 login has expired or was revoked ({_error_text(result)}); "
            + LOGIN_HINT
        )

    def _save(self) -> None:
        if self._cache is not None:
            try:
                self._cache.save()
            except OSError as exc:
                log.warning("cannot write the token cache %s: %s", self.cache_path, exc)

    def login(self, echo: Callable[[str], None]) -> str:
        """Device-code flow: print the URL and code, wait for the person. Returns the
        signed-in user name."""
        app = self._msal()
        try:
            flow = app.initiate_device_flow(scopes=self.scopes)
            if "user_code" not in flow:
                raise AuthFailed(
                    f"the sign-in service refused to start a login ({_error_text(flow)})"
                )
            echo(str(flow["message"]))
            result = app.acquire_token_by_device_flow(flow)
        except requests.exceptions.RequestException as exc:
            raise _unreachable(exc, self.config) from None
        if "access_token" not in result:
            raise AuthFailed(f"login failed ({_error_text(result)})")
        self._save()
        claims = result.get("id_token_claims") or {}
        return str(claims.get("preferred_username") or claims.get("name") or "your account")


class AppTokens:
    """App-only tokens (client credentials with a secret or a certificate)."""

    def __init__(self, config: GraphConfig) -> None:
        self.config = config
        self.scopes = graph_scopes(config, app_only=True)
        self._app: Any = None

    def _credential(self) -> Any:
        if self.config.client_secret is not None:
            return self.config.client_secret.get_secret_value()
        path = self.config.certificate
        assert path is not None  # AppTokens is built for a client_secret or a certificate
        password = self.config.certificate_password
        if path.suffix.lower() in (".pfx", ".p12"):
            cred: dict[str, Any] = {"private_key_pfx_path": str(path)}
            if password is not None:
                cred["passphrase"] = password.get_secret_value()
            return cred
        try:
            pem = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read the certificate {path}: {exc.strerror} (backend.certificate)"
            ) from None
        if "PRIVATE KEY-----" not in pem or "CERTIFICATE-----" not in pem:
            raise ConfigError(
                f"{path} must hold the private key and the certificate (PEM), or be a .pfx"
            )
        cred = {"private_key": pem, "public_certificate": pem}
        if password is not None:
            cred["passphrase"] = password.get_secret_value()
        return cred

    def _msal(self) -> Any:
        if self._app is None:
            credential = self._credential()
            self._app = _build(
                lambda: msal.ConfidentialClientApplication(
                    self.config.client_id,
                    client_credential=credential,
                    **_msal_options(self.config),
                ),
                self.config,
            )
        return self._app

    def get_token(self, *, force_refresh: bool = False) -> str:
        app = self._msal()
        if force_refresh:
            app.remove_tokens_for_client()
        try:
            result = app.acquire_token_for_client(scopes=self.scopes)
        except requests.exceptions.RequestException as exc:
            raise _unreachable(exc, self.config) from None
        except ValueError as exc:  # a broken key or certificate
            raise AuthFailed(f"cannot use the client certificate: {exc}") from None
        if result and "access_token" in result:
            return str(result["access_token"])
        raise AuthFailed(
            f"the app credentials were refused ({_error_text(result)}); check "
            "backend.client_id, client_secret/certificate and the admin consent for "
            "Tasks.ReadWrite.All"
        )


def token_provider(config: GraphConfig) -> DelegatedTokens | AppTokens:
    """The provider the config asks for: app-only with a secret/certificate, else a person."""
    if config.client_secret is not None or config.certificate is not None:
        return AppTokens(config)
    return DelegatedTokens(config)


def login(config: GraphConfig, echo: Callable[[str], None]) -> str:
    """`kit-sync login`: the device-code flow for a person; for app-only credentials,
    acquire one token to prove they work. Returns a line to print."""
    provider = token_provider(config)
    if isinstance(provider, AppTokens):
        provider.get_token()
        return (
            f"app-only credentials for client {config.client_id} work; no login is needed "
            f"(managing the tasks of {config.user})"
        )
    who = provider.login(echo)
    return f"signed in as {who}; tokens are cached in {provider.cache_path} (readable only by you)"
