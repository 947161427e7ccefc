"""Fake Microsoft 365 for tests: an Entra ID authority and a Graph To Do API, each
on its own https://127.0.0.1 port with a throwaway CA.

    ms = FakeMicrosoft(tmp_dir).start()
    ms.backend_config(user=...)   # the `backend:` section of a kit-sync config
    ms.graph.tasks("ann@contoso.example")
    ms.stop()

`python -m graph_server` (from tests/) runs one in the foreground for trying
kit-sync by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .authority import TENANT_DOMAIN, App, FakeEntra
from .graph import FakeGraph
from .http import ServerThread
from .tls import make_client_certificate, make_tls

PUBLIC_CLIENT = "0d9f4c2a-3b1e-4f5a-8c7d-2e1f0a9b8c7d"  # a "mobile and desktop" app registration
DAEMON_CLIENT = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"  # a confidential client
DAEMON_SECRET = "kit~sync.test-secret_value"
USER = "ann@contoso.example"

__all__ = ["DAEMON_CLIENT", "DAEMON_SECRET", "PUBLIC_CLIENT", "USER", "FakeMicrosoft"]


class FakeMicrosoft:
    def __init__(self, folder: Path, *, completion: str = "date") -> None:
        self.folder = folder
        self.ca, cert, key = make_tls(folder / "tls")
        self.certificate, cert_pem = make_client_certificate(folder)
        self.entra = FakeEntra()
        self.entra.add_app(App(PUBLIC_CLIENT, public=True))
        self.entra.add_app(App(DAEMON_CLIENT, secret=DAEMON_SECRET, certificate=cert_pem))
        self.entra.add_user(USER, "Ann Lee")
        self.graph = FakeGraph(self.entra, completion=completion)
        self._entra_server = ServerThread(self.entra, cert, key)
        self._graph_server = ServerThread(self.graph, cert, key)
        self.entra.url = self._entra_server.url
        self.graph.url = self._graph_server.url + "/v1.0"

    def start(self) -> FakeMicrosoft:
        self._entra_server.start()
        self._graph_server.start()
        return self

    def stop(self) -> None:
        self._graph_server.stop()
        self._entra_server.stop()

    def backend_config(self, mode: str = "login", **extra: Any) -> dict[str, Any]:
        """The `backend:` mapping of a config: mode "login" (device code, a person),
        "secret" or "certificate" (app-only)."""
        config: dict[str, Any] = {
            "type": "graph",
            "authority_host": self.entra.url,
            "graph_url": self.graph.url,
            "verify": str(self.ca),
        }
        if mode == "login":
            config.update(client_id=PUBLIC_CLIENT, token_cache=str(self.folder / "tokens.json"))
        else:
            config.update(client_id=DAEMON_CLIENT, tenant=TENANT_DOMAIN, user=USER)
            if mode == "secret":
                config["client_secret"] = DAEMON_SECRET
            else:
                config["certificate"] = str(self.certificate)
        config.update(extra)
        return config
