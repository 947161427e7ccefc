"""Signing in: `kit-sync login` runs the real MSAL device-code flow against the fake
Entra ID, caches tokens 0600, and `kit-sync sync` refreshes silently afterwards; a
missing, expired or revoked login exits 3 with "run kit-sync login". App-only
access with a client secret or a certificate (client assertion) works as well."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from graph_server import USER, FakeMicrosoft
from graph_server.fixtures import fresh, ms  # noqa: F401
from graph_server.world import GraphWorld

from kit_sync.backends.graph_auth import CacheFile, DelegatedTokens, StaticToken
from kit_sync.config import GraphConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def person(tmp_path: Path, fresh: FakeMicrosoft) -> Iterator[GraphWorld]:  # noqa: F811
    """A person's config (device-code login), with a task list of its own."""
    backend = fresh.backend_config(
        "login", token_cache=str(tmp_path / "tokens.json"), task_list=f"kit {tmp_path.name}"
    )
    yield GraphWorld(tmp_path, fresh, USER, StaticToken("unused"), backend=backend)


def login(world: GraphWorld) -> tuple[int, str, str]:
    """Run `kit-sync login`, read the code it prints, sign in as Ann, wait for it."""
    proc = world.popen("login")
    assert proc.stdout is not None
    printed = []
    code = None
    for line in proc.stdout:
        printed.append(line)
        found = re.search(r"enter the code (\w+)", line)
        if found:
            code = found.group(1)
            break
    assert code, "".join(printed)
    assert world.ms.entra.url + "/devicelogin" in printed[-1]
    world.ms.entra.approve(code, USER)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, "".join(printed) + out, err


def grants(ms: FakeMicrosoft) -> list[str]:  # noqa: F811
    return [grant for _, grant in ms.entra.log]


def test_login_once_then_sync_refreshes_silently(person: GraphWorld) -> None:
    code, out, err = login(person)
    assert code == 0, err
    assert "signed in as ann@contoso.example" in out
    cache = Path(person.config["backend"]["token_cache"])
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert "RefreshToken" in json.loads(cache.read_text())

    done = person.cli("sync")
    assert done.returncode == 0, done.stderr
    assert "created 3" in done.stdout
    assert len(person.server_tasks()) == 3

    person.ms.entra.expire_access_tokens()  # the cached access token stops working
    before = len(person.ms.entra.log)
    done = person.cli("sync")
    assert done.returncode == 0, done.stderr
    assert "refresh_token" in grants(person.ms)[before:]
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600


def test_sync_without_login_exits_3(person: GraphWorld) -> None:
    done = person.cli("sync")
    assert done.returncode == 3
    assert "not signed in" in done.stderr and "run kit-sync login" in done.stderr
    assert not Path(person.config["backend"]["token_cache"]).exists()


def test_revoked_login_exits_3_and_login_again_fixes_it(person: GraphWorld) -> None:
    assert login(person)[0] == 0
    assert person.cli("sync").returncode == 0
    person.ms.entra.revoke_refresh_tokens()  # password reset, admin revoked sessions, ...
    done = person.cli("sync")
    assert done.returncode == 3
    assert "expired or was revoked" in done.stderr and "run kit-sync login" in done.stderr
    assert login(person)[0] == 0
    done = person.cli("sync")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("mode", ["secret", "certificate"])
def test_app_only_access(tmp_path: Path, fresh: FakeMicrosoft, mode: str) -> None:  # noqa: F811
    upn = f"svc-{mode}@contoso.example"
    fresh.entra.add_user(upn)
    world = GraphWorld(
        tmp_path, fresh, upn, StaticToken("unused"), backend=fresh.backend_config(mode, user=upn)
    )
    done = world.cli("login")
    assert done.returncode == 0, done.stderr
    assert "no login is needed" in done.stdout
    done = world.cli("sync")
    assert done.returncode == 0, done.stderr
    assert len(world.server_tasks()) == 3
    assert "client_credentials" in grants(fresh)


def test_wrong_client_secret_exits_3(tmp_path: Path, fresh: FakeMicrosoft) -> None:  # noqa: F811
    backend = fresh.backend_config("secret", client_secret="not-the-secret")
    world = GraphWorld(tmp_path, fresh, USER, StaticToken("unused"), backend=backend)
    done = world.cli("sync")
    assert done.returncode == 3
    assert "credentials were refused" in done.stderr and "invalid_client" in done.stderr
    assert "not-the-secret" not in done.stderr + done.stdout


def test_login_is_only_for_graph(tmp_path: Path) -> None:
    world_dir = tmp_path
    (world_dir / "config.yaml").write_text("backend: {type: local, path: tasks}\n")
    import subprocess
    import sys

    from graph_server.world import cli_env

    done = subprocess.run(
        [sys.executable, "-m", "kit_sync", "--config", str(world_dir / "config.yaml"), "login"],
        capture_output=True,
        text=True,
        env=cli_env(world_dir),
        timeout=60,
    )
    assert done.returncode == 2
    assert "login is for backend type graph" in done.stderr


def test_app_only_config_needs_a_user_and_a_tenant(tmp_path: Path) -> None:
    from kit_sync.config import load_config
    from kit_sync.errors import ConfigError

    path = tmp_path / "config.yaml"
    path.write_text("backend:\n  type: graph\n  client_id: abc\n  client_secret: s3cret\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert "config.yaml:1 backend: " in text and "needs user" in text
    assert "s3cret" not in text


def test_token_cache_readable_by_others_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("{}")
    path.chmod(0o644)
    cache = CacheFile(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cache.cache.has_state_changed = True
    cache.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".kit-sync-tokens-")]


def test_delegated_provider_without_cache_names_the_file(
    tmp_path: Path,
    fresh: FakeMicrosoft,  # noqa: F811
) -> None:
    config = GraphConfig.model_validate(
        fresh.backend_config("login", token_cache=str(tmp_path / "none.json"))
    )
    from kit_sync.backends.base import AuthFailed

    with pytest.raises(AuthFailed) as caught:
        DelegatedTokens(config).get_token()
    assert "none.json" in str(caught.value) and caught.value.exit_code == 3
