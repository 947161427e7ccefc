"""A fake Microsoft Entra ID (v2.0 endpoints) for the subset MSAL uses here:
OpenID discovery, the device-code flow, refresh tokens and client credentials
(secret or certificate assertion). Shapes follow the Microsoft identity platform
reference; the access tokens it issues are opaque strings the fake Graph checks.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass, field

import jwt
from cryptography import x509

from .http import Request, Response

TENANT_ID = "6f3c2a1e-7d54-4c1b-9a8e-1b2c3d4e5f60"
TENANT_DOMAIN = "contoso.example"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class App:
    client_id: str
    secret: str | None = None
    certificate: bytes | None = None  # PEM: its key signs client assertions
    public: bool = False


@dataclass
class User:
    upn: str
    oid: str = field(default_factory=lambda: str(uuid.uuid4()))
    name: str = ""


@dataclass
class Principal:
    """Who a Graph access token belongs to."""

    kind: str  # "user" or "app"
    client_id: str
    user: User | None
    scopes: list[str]
    expires: float


@dataclass
class DeviceFlow:
    device_code: str
    user_code: str
    client_id: str
    scopes: list[str]
    expires: float
    approved_by: User | None = None
    denied: bool = False
    used: bool = False


class FakeEntra:
    def __init__(self) -> None:
        self.url = ""  # set when the server starts
        self.apps: dict[str, App] = {}
        self.users: dict[str, User] = {}
        self.flows: dict[str, DeviceFlow] = {}
        self.access: dict[str, Principal] = {}
        self.refresh: dict[str, tuple[str, User, list[str]]] = {}
        self.access_lifetime = 3600
        self.log: list[tuple[str, str]] = []  # (path, grant_type)
        self.lock = threading.Lock()
        self.device_codes_issued = threading.Event()

    # --- setup / knobs ---------------------------------------------------------------

    def add_app(self, app: App) -> App:
        self.apps[app.client_id] = app
        return app

    def add_user(self, upn: str, name: str = "") -> User:
        user = self.users.get(upn.lower())
        if user is None:
            user = User(upn, name=name or upn.split("@")[0].title())
            self.users[upn.lower()] = user
        return user

    def approve(self, user_code: str, upn: str) -> None:
        """The person opened the verification page, entered the code and signed in."""
        with self.lock:
            for flow in self.flows.values():
                if flow.user_code == user_code:
                    flow.approved_by = self.add_user(upn)
                    return
        raise KeyError(user_code)

    def pending_codes(self) -> list[str]:
        return [f.user_code for f in self.flows.values() if f.approved_by is None]

    def expire_access_tokens(self) -> None:
        """Access tokens stop working at Graph (as after a revocation or clock skew)."""
        with self.lock:
            for p in self.access.values():
                p.expires = 0

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.refresh.clear()
            for p in self.access.values():
                p.expires = 0

    def mint(self, upn: str, client_id: str = "static") -> str:
        """An access token for `upn` without any flow (for tests that inject tokens)."""
        user = self.add_user(upn)
        token = secrets.token_urlsafe(24)
        self.access[token] = Principal(
            "user", client_id, user, ["Tasks.ReadWrite"], time.time() + 86400
        )
        return token

    def check(self, token: str) -> Principal | None:
        with self.lock:
            p = self.access.get(token)
        if p is None or p.expires < time.time():
            return None
        return p

    # --- HTTP --------------------------------------------------------------------------

    def __call__(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        if len(parts) >= 3 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return self._discovery(parts[0])
        if len(parts) == 4 and parts[1:3] == ["oauth2", "v2.0"] and request.method == "POST":
            form = request.form()
            self.log.append((request.path, form.get("grant_type", parts[3])))
            if parts[3] == "devicecode":
                return self._devicecode(form)
            if parts[3] == "token":
                return self._token(parts[0], form)
        return Response(404, {"error": "not_found", "error_description": request.path})

    def _tenant_id(self, tenant: str) -> str:
        return TENANT_ID if tenant in ("common", "organizations", TENANT_DOMAIN) else tenant

    def _discovery(self, tenant: str) -> Response:
        base = f"{self.url}/{tenant}"
        tid = self._tenant_id(tenant)
        return Response(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{self.url}/{tenant}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{self.url}/{tid}/v2.0",
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "tenant_region_scope": "EU",
            },
        )

    def _error(self, status: int, error: str, aadsts: str, text: str) -> Response:
        return Response(
            status,
            {
                "error": error,
                "error_description": f"{aadsts}: {text}\r\nTrace ID: {uuid.uuid4()}\r\n"
                f"Correlation ID: {uuid.uuid4()}\r\n"
                f"Timestamp: {time.strftime('%Y-%m-%d %H:%M:%SZ')}",
                "error_codes": [int(aadsts[6:])],
                "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ"),
                "trace_id": str(uuid.uuid4()),
                "correlation_id": str(uuid.uuid4()),
            },
        )

    def _devicecode(self, form: dict[str, str]) -> Response:
        app = self.apps.get(form.get("client_id", ""))
        if app is None or not app.public:
            return self._error(
                400,
                "invalid_client",
                "AADSTS7000218",
                "The request body must contain the following parameter: 'client_assertion' "
                "or 'client_secret'.",
            )
        code = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(9))
        flow = DeviceFlow(
            device_code=secrets.token_urlsafe(32),
            user_code=code,
            client_id=app.client_id,
            scopes=form.get("scope", "").split(),
            expires=time.time() + 900,
        )
        with self.lock:
            self.flows[flow.device_code] = flow
        self.device_codes_issued.set()
        uri = f"{self.url}/devicelogin"
        return Response(
            200,
            {
                "user_code": code,
                "device_code": flow.device_code,
                "verification_uri": uri,
                "expires_in": 900,
                "interval": 1,
                "message": f"To sign in, use a web browser to open the page {uri} and enter "
                f"the code {code} to authenticate.",
            },
        )

    def _user_tokens(self, client_id: str, user: User, scopes: list[str]) -> Response:
        access = secrets.token_urlsafe(32)
        refresh = secrets.token_urlsafe(48)
        now = time.time()
        with self.lock:
            self.access[access] = Principal(
                "user", client_id, user, scopes, now + self.access_lifetime
            )
            self.refresh[refresh] = (client_id, user, scopes)
        claims = {
            "aud": client_id,
            "iss": f"{self.url}/{TENANT_ID}/v2.0",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now) + 3600,
            "name": user.name,
            "oid": user.oid,
            "preferred_username": user.upn,
            "sub": _b64(user.oid.encode())[:43],
            "tid": TENANT_ID,
            "ver": "2.0",
        }
        id_token = ".".join(
            [
                _b64(b'{"typ":"JWT","alg":"RS256","kid":"fake"}'),
                _b64(json.dumps(claims).encode()),
                _b64(b"sig"),
            ]
        )
        client_info = _b64(json.dumps({"uid": user.oid, "utid": TENANT_ID}).encode())
        granted = [s for s in scopes if s not in ("openid", "profile", "offline_access")]
        return Response(
            200,
            {
                "token_type": "Bearer",
                "scope": " ".join(granted),
                "expires_in": self.access_lifetime,
                "ext_expires_in": self.access_lifetime,
                "access_token": access,
                "refresh_token": refresh,
                "id_token": id_token,
                "client_info": client_info,
            },
        )

    def _token(self, tenant: str, form: dict[str, str]) -> Response:
        grant = form.get("grant_type", "")
        client_id = form.get("client_id", "")
        app = self.apps.get(client_id)
        if app is None:
            return self._error(
                400,
                "unauthorized_client",
                "AADSTS700016",
                f"Application with identifier '{client_id}' was not found in the directory.",
            )
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            with self.lock:
                flow = self.flows.get(form.get("device_code", ""))
            if flow is None or flow.used:
                return self._error(
                    400,
                    "invalid_grant",
                    "AADSTS70000",
                    "The provided value for the 'device_code' is not valid.",
                )
            if flow.expires < time.time():
                return self._error(
                    400,
                    "expired_token",
                    "AADSTS70020",
                    "The provided value for the input parameter 'device_code' is not valid. "
                    "This device code has expired.",
                )
            if flow.approved_by is None:
                return self._error(
                    400,
                    "authorization_pending",
                    "AADSTS70016",
                    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                )
            flow.used = True
            return self._user_tokens(client_id, flow.approved_by, flow.scopes)
        if grant == "refresh_token":
            with self.lock:
                found = self.refresh.pop(form.get("refresh_token", ""), None)
            if found is None or found[0] != client_id:
                return self._error(
                    400,
                    "invalid_grant",
                    "AADSTS700082",
                    "The refresh token has expired due to inactivity.",
                )
            scopes = form.get("scope", "").split() or found[2]
            return self._user_tokens(client_id, found[1], scopes)
        if grant == "client_credentials":
            if not self._client_authenticated(app, tenant, form):
                return self._error(
                    401,
                    "invalid_client",
                    "AADSTS7000215",
                    "Invalid client secret provided. Ensure the secret being sent in the "
                    "request is the client secret value, not the client secret ID.",
                )
            access = secrets.token_urlsafe(32)
            with self.lock:
                self.access[access] = Principal(
                    "app",
                    client_id,
                    None,
                    ["Tasks.ReadWrite.All"],
                    time.time() + self.access_lifetime,
                )
            return Response(
                200,
                {
                    "token_type": "Bearer",
                    "expires_in": self.access_lifetime,
                    "ext_expires_in": self.access_lifetime,
                    "access_token": access,
                },
            )
        return self._error(
            400,
            "unsupported_grant_type",
            "AADSTS70003",
            f"The app requested an unsupported grant type '{grant}'.",
        )

    def _client_authenticated(self, app: App, tenant: str, form: dict[str, str]) -> bool:
        if app.secret is not None and form.get("client_secret") == app.secret:
            return True
        assertion = form.get("client_assertion")
        if app.certificate is None or not assertion:
            return False
        cert = x509.load_pem_x509_certificate(app.certificate)
        try:
            claims = jwt.decode(
                assertion,
                cert.public_key(),  # type: ignore[arg-type]
                algorithms=["PS256", "RS256"],
                audience=f"{self.url}/{tenant}/oauth2/v2.0/token",
            )
        except jwt.PyJWTError:
            return False
        return bool(claims.get("iss") == app.client_id == claims.get("sub"))
