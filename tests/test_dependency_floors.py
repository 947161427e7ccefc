"""The declared dependency ranges cover what the code uses (issue 16, point 7)."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def requirement(extra: str, name: str) -> Requirement:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for line in data["project"]["optional-dependencies"][extra]:
        req = Requirement(line)
        if req.name.lower() == name:
            return req
    raise AssertionError(f"{name} is not in the {extra} extra")


def test_msal_floor_allows_pem_certificates_without_a_thumbprint() -> None:
    """graph_auth passes {"private_key", "public_certificate"} with no thumbprint
    (MSAL >= 1.35 computes one) or {"private_key_pfx_path"} (>= 1.29)."""
    spec = requirement("graph", "msal").specifier
    assert "1.34.1" not in spec
    assert "1.28.0" not in spec
    assert "1.35.0" in spec
    assert version("msal") in spec


def test_exchangelib_is_pinned_to_the_tested_minor() -> None:
    """The backend uses exchangelib.services (semi-internal): only the minor version
    the suite runs against is allowed."""
    spec = requirement("exchange", "exchangelib").specifier
    installed = version("exchangelib")
    assert installed in spec
    major, minor = (int(x) for x in installed.split(".")[:2])
    assert f"{major}.{minor + 1}.0" not in spec
    assert f"{major}.{minor - 1}.0" not in spec
    assert f"{major + 1}.0.0" not in spec


def test_the_service_calls_exist_in_the_installed_exchangelib() -> None:
    from exchangelib import services

    for name in ("SyncFolderItems", "GetItem", "UpdateItem", "CreateItem", "DeleteItem"):
        assert hasattr(getattr(services, name), "call"), name
