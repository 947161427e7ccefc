"""The shape of the code, checked: the clock is read in one place, the core imports
no I/O or config, the engine and its callers use the backend contract as declared."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from kit_sync.backends import REGISTRY
from kit_sync.backends.base import Backend

SOURCE = Path(__file__).resolve().parent.parent / "kit_sync"
#: The outer layers: the pure core (plan.py and everything it imports) reaches none of
#: them, directly or through another module (DESIGN: "dependencies point inward").
OUTER = (
    "kit_sync.config",
    "kit_sync.state",
    "kit_sync.backends",
    "kit_sync.engine",
    "kit_sync.app",
    "kit_sync.cli",
    "kit_sync.daemon",
    "kit_sync.health",
    "kit_sync.roster",
    "kit_sync.importers",
    "kit_sync.touches",
    "kit_sync.yamlsrc",
    "kit_sync.logs",
)
IO_LIBRARIES = re.compile(r"^\s*(import|from) (pydantic|sqlite3|yaml|httpx|socket)\b", re.MULTILINE)


def _modules() -> list[Path]:
    return sorted(SOURCE.rglob("*.py"))


def _kit_imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kit_sync"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("kit_sync")}
    return out


def test_the_clock_is_read_only_in_clock_py() -> None:
    reads = re.compile(r"\b(datetime\.now|datetime\.utcnow|date\.today|datetime\.today)\s*\(")
    found = [
        f"{path.relative_to(SOURCE.parent)}:{n}: {line.strip()}"
        for path in _modules()
        if path.name != "clock.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if reads.search(line)
    ]
    assert found == [], "take a Clock (kit_sync.clock) instead of reading the time:\n" + "\n".join(
        found
    )


def _file_of(module: str) -> Path:
    base = SOURCE.parent / module.replace(".", "/")
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


@pytest.mark.parametrize("module", ["plan", "cadence", "model", "schedule"])
def test_the_core_imports_only_the_core(module: str) -> None:
    seen: set[str] = set()
    todo = [f"kit_sync.{module}"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _file_of(name)
        assert not name.startswith(OUTER), f"kit_sync/{module}.py reaches {name}"
        assert not IO_LIBRARIES.search(path.read_text()), f"{name} imports an I/O library"
        todo += sorted(_kit_imports(path))


@pytest.mark.parametrize("module", ["engine", "health", "daemon", "cli"])
def test_no_duck_typing_of_the_backend(module: str) -> None:
    """The contract is the code: no getattr on a backend and no type: ignore."""
    text = (SOURCE / f"{module}.py").read_text()
    assert not re.search(r"getattr\(.*backend|type: ignore", text)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_backend_implements_the_declared_contract(name: str) -> None:
    module_name, _, attr = REGISTRY[name].partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    assert issubclass(cls, Backend)
    assert not getattr(cls, "__abstractmethods__", None)
    assert isinstance(cls.regenerates_itself, bool) and cls.batch_size >= 1
