"""What users install works: a fresh virtual environment with exactly `pip install .`
runs README command 1 on a copy of config.example.yaml (one `sync`, then `run`
stopped with Ctrl+C), and each extra alone, in its own fresh environment, brings
every library its part of kit_sync imports. A dependency that kit_sync imports but
pyproject.toml does not declare (typer 0.29 stopped pulling in click) fails here, not
on a user's machine.

Marked `install` (and `slow`): `scripts/test.sh --fast` skips it, the full run and CI
run it. pip's own cache and the kit-sync wheel built once keep it to one resolve per
environment.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.install, pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "kit_sync"

#: Which extra provides the libraries of which part of kit_sync; the rest is the base.
EXTRA_PARTS: dict[str, tuple[str, ...]] = {
    "caldav": ("backends/caldav", "touches/caldav_events.py", "touches/meetings.py"),
    "exchange": ("backends/exchange", "touches/exchange.py"),
    "graph": ("backends/graph", "backends/graph_auth.py", "touches/graph.py"),
    "imap": ("touches/imap.py",),
    "metrics": ("health.py",),
}
#: The backend package each extra's environment must import.
BACKENDS = {"caldav": "caldav", "exchange": "exchange", "graph": "graph"}


def third_party_imports(path: Path, *, optional: bool) -> set[str]:
    """Top-level names of the non-stdlib modules `path` imports. Imports inside a
    `try: ... except ImportError` are optional ones (kept only with optional=True)."""
    tree = ast.parse(path.read_text())
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
            for h in node.handlers
        ):
            guarded |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in guarded and not optional:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("kit_sync",)}


def part_of(path: Path) -> str | None:
    rel = path.relative_to(PACKAGE).as_posix()
    for extra, parts in EXTRA_PARTS.items():
        if any(rel == p or rel.startswith(p + "/") for p in parts):
            return extra
    return None


def needed_modules(extra: str | None) -> set[str]:
    out: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if part_of(path) == extra:
            out |= third_party_imports(path, optional=extra is not None)
    return out


def test_every_extra_in_the_map_is_declared_in_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(EXTRA_PARTS) <= set(project["optional-dependencies"])
    # And no part of kit_sync imports a library the map does not place.
    assert needed_modules(None), "the base imports third-party libraries"
    assert {"typer", "pydantic", "yaml"} <= needed_modules(None)
    assert "click" not in needed_modules(None)  # typer >= 0.29 brings its own


# --- fresh environments -------------------------------------------------------------------


def pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIT_", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, env=pip_env(), check=False, cwd=cwd)
    assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what `pip install .` reads, so the build writes nothing into the
    real checkout."""
    dest = tmp_path_factory.mktemp("checkout")
    for name in ("pyproject.toml", "README.md", "config.example.yaml", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copyfile(ROOT / name, dest / name)
    shutil.copytree(PACKAGE, dest / "kit_sync", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture(scope="module")
def wheel(checkout: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kit-sync built once, for the extras' environments."""
    out = tmp_path_factory.mktemp("wheel")
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), "."],
        cwd=checkout,
    )
    (found,) = out.glob("kit_sync-*.whl")
    return found


def fresh_venv(where: Path) -> Path:
    run([sys.executable, "-m", "venv", str(where)])
    return where / "bin"


def readme_command() -> str:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text.split("---", 1)[0], flags=re.S)[0]


def test_pip_install_dot_runs_readme_command_one(checkout: Path) -> None:
    # README command 1 is: venv, `pip install .`, `kit-sync --config config.example.yaml run`.
    command = readme_command()
    assert command.startswith("python3 -m venv .venv && .venv/bin/pip install . && ")
    assert command.endswith(".venv/bin/kit-sync --config config.example.yaml run")
    bin_ = fresh_venv(checkout / ".venv")
    run([str(bin_ / "pip"), "install", "--quiet", "."], cwd=checkout)
    installed = run([str(bin_ / "pip"), "list", "--format=freeze"]).stdout.lower()
    assert "kit-sync==" in installed
    # Nothing of the extras came along (the test extra pulls them into the dev .venv).
    for lib in ("exchangelib", "caldav", "msal", "imapclient"):
        assert f"\n{lib}==" not in f"\n{installed}", lib
    version = run([str(bin_ / "kit-sync"), "--version"]).stdout.strip()
    assert version.startswith("kit-sync ")
    # Every third-party module the base of kit_sync imports is there.
    modules = sorted(needed_modules(None))
    run(
        [
            str(bin_ / "python"),
            "-c",
            f"import importlib; [importlib.import_module(m) for m in {modules!r}]",
        ]
    )

    work = checkout / "user"
    work.mkdir()
    shutil.copyfile(checkout / "config.example.yaml", work / "config.example.yaml")
    kit = [str(bin_ / "kit-sync"), "--config", "config.example.yaml"]
    synced = run([*kit, "sync"], cwd=work)
    made = len(list((work / "kit-data" / "tasks").glob("*.ics")))
    assert made >= 9, synced.stdout  # one per active contact of the example, and more
    assert f"created {made}," in synced.stdout, synced.stdout
    for gone in (work / "kit-data").iterdir():  # `run` starts from nothing, as a user would
        shutil.rmtree(gone) if gone.is_dir() else gone.unlink()
    proc = subprocess.Popen(
        [*kit, "run"],
        cwd=work,
        env=pip_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Bounded by the work: the same files, or the process ending on its own.
        while proc.poll() is None and len(list((work / "kit-data" / "tasks").glob("*.ics"))) < made:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "kit-sync stopped" in err
    assert "Traceback" not in err
    assert len(list((work / "kit-data" / "tasks").glob("*.ics"))) == made


@pytest.fixture(scope="module", params=sorted(EXTRA_PARTS))
def extra_venv(
    request: pytest.FixtureRequest, wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    extra = str(request.param)
    # Without pip of its own (this pip installs into it): one ensurepip less per extra.
    where = tmp_path_factory.mktemp(f"venv-{extra}")
    run([sys.executable, "-m", "venv", "--without-pip", str(where)])
    bin_ = where / "bin"
    pip = [sys.executable, "-m", "pip", "--python", str(bin_ / "python")]
    run([*pip, "install", "--quiet", f"{wheel}[{extra}]"])
    yield extra, bin_


def test_each_extra_alone_brings_what_its_part_imports(extra_venv: tuple[str, Path]) -> None:
    extra, bin_ = extra_venv
    modules = sorted(needed_modules(extra))
    assert modules, extra
    code = "import importlib\n" + f"for m in {modules!r}:\n    importlib.import_module(m)\n"
    if extra in BACKENDS:
        code += f"import kit_sync.backends.{BACKENDS[extra]}\n"
    run([str(bin_ / "python"), "-c", code])
