"""The files that run kit-sync as a service: Dockerfile, .dockerignore, the compose
example, the systemd units, and the README lines they must agree with.

No Docker engine or systemd manager runs here: hadolint lints the Dockerfile,
`systemd-analyze verify` checks the units offline, and the rest is read as data.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

# --- the README's commands ------------------------------------------------------------

#: `python3 -m venv DIR && DIR/bin/pip install TARGET`, then maybe `&& DIR/bin/kit-sync ...`
INSTALL = re.compile(
    r"python3 -m venv (?P<venv>\S+) && (?P=venv)/bin/pip install (?P<target>\S+)"
    r"(?: && (?P=venv)/bin/kit-sync (?P<args>.+))?$"
)


def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def service_section() -> str:
    text = readme()
    m = re.search(r"<!-- service:begin -->(.*?)<!-- service:end -->", text, re.S)
    assert m, "README.md has no <!-- service:begin --> ... <!-- service:end --> section"
    return m.group(1)


def code_lines(markdown: str) -> list[str]:
    """Lines of the fenced code blocks, with backslash continuations joined."""
    lines: list[str] = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", markdown, re.S):
        lines += [ln.strip() for ln in block.replace("\\\n", " ").splitlines() if ln.strip()]
    return lines


def readme_run_command() -> re.Match[str]:
    """The README's own run command (outside the service section): the source of truth."""
    outside = readme().replace(service_section(), "")
    for line in code_lines(outside):
        m = INSTALL.match(line)
        if m and m.group("args"):
            return m
    raise AssertionError("README.md shows no `python3 -m venv ... && ... kit-sync ... run` line")


def docker_lines() -> tuple[re.Match[str], list[str]]:
    """The service section's install line and run line (as argv)."""
    lines = code_lines(service_section())
    installs = [m for m in map(INSTALL.match, lines) if m and not m.group("args")]
    assert len(installs) == 1, f"expected one install line in the service section: {lines}"
    venv = installs[0].group("venv")
    runs = [shlex.split(ln) for ln in lines if ln.startswith(f"{venv}/bin/kit-sync ")]
    assert len(runs) == 1, f"expected one `{venv}/bin/kit-sync ...` line: {lines}"
    return installs[0], runs[0]


# --- the Dockerfile, as instructions ---------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuations joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    )
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"use the exec (JSON) form: {args}"
    return [str(v) for v in value]


def test_hadolint_is_clean() -> None:
    hadolint = VENV_BIN / "hadolint"
    if not hadolint.exists():
        hadolint = Path(shutil.which("hadolint") or "hadolint")
    done = subprocess.run(
        [str(hadolint), "--no-color", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr
    # Ignored rules need a reason, written next to them.
    config = ROOT / ".hadolint.yaml"
    if config.exists():
        for rule in (yaml.safe_load(config.read_text()) or {}).get("ignored", []):
            assert re.search(rf"{rule}.*#|#.*{rule}", config.read_text()), rule


def test_the_readme_docker_lines_are_the_readme_install_and_run_lines() -> None:
    """The Docker section installs and runs kit-sync the way the README's run command does."""
    top = readme_run_command()
    install, run = docker_lines()
    # Same form: a virtualenv, then its pip on this source tree (extras allowed).
    assert re.fullmatch(r"""(["']?)\.(\[[a-z,]+\])?\1""", install.group("target")), install[0]
    assert top.group("target") == "."
    # Same command: the venv's kit-sync, with --config, running `run`.
    top_args = shlex.split(top.group("args"))
    assert run[0] == f"{install.group('venv')}/bin/kit-sync"
    assert run[-1] == top_args[-1] == "run"
    assert "--config" in top_args and "--config" in run
    # The only additions are the container's config path and JSON logs.
    extra = [a for a in run[1:] if a not in top_args]
    assert extra == ["--log-format", "json", run[run.index("--config") + 1]], run


def test_the_dockerfile_runs_the_readme_docker_lines() -> None:
    install, run = docker_lines()
    runs = [args for word, args in dockerfile() if word == "RUN"]
    assert install.group(0) in runs, f"no RUN {install.group(0)!r} in the Dockerfile: {runs}"
    final = final_stage()
    entrypoint = [exec_form(a) for w, a in final if w == "ENTRYPOINT"]
    cmd = [exec_form(a) for w, a in final if w == "CMD"]
    assert len(entrypoint) == 1 and len(cmd) == 1
    assert entrypoint[0] + cmd[0] == run
    assert cmd[0] == ["run"], "`kit-sync run` is the default command"
    # The final stage has the build stage's virtualenv at the same path.
    venv = install.group("venv")
    assert any(w == "COPY" and args.endswith(f"{venv} {venv}") for w, args in final)


def test_the_dockerfile_is_safe_to_run_unattended() -> None:
    final = final_stage()
    words = [w for w, _ in final]
    env = " ".join(a for w, a in final if w == "ENV")
    # A slim official Python base with a tag, never :latest.
    bases = [a.split()[0] for w, a in dockerfile() if w == "FROM"]
    assert all(re.fullmatch(r"python:3\.\d+-slim(-\w+)?", b) for b in bases), bases
    # Runs as a non-root user.
    users = [a for w, a in final if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    # Config read from /config, data on the /data volume.
    _, run = docker_lines()
    config = run[run.index("--config") + 1]
    assert config == "/config/config.yaml"
    assert f"KIT_SYNC_CONFIG={config}" in env
    assert "XDG_STATE_HOME=/data" in env
    volumes = [exec_form(a) for w, a in final if w == "VOLUME"]
    assert volumes == [["/data"]]
    # The health check is `kit-sync health`.
    checks = [a for w, a in final if w == "HEALTHCHECK"]
    assert len(checks) == 1
    assert exec_form(checks[0].split(" CMD ", 1)[1]) == ["kit-sync", "health"]
    # SIGTERM stops it (the exec form keeps kit-sync PID 1, so it receives it).
    assert words.index("ENTRYPOINT") > words.index("USER")
    assert all(a != "SIGKILL" for w, a in final if w == "STOPSIGNAL")
    # Nothing secret is baked in: no ARG/ENV carrying one, nothing copied but the package.
    for word, args in dockerfile():
        if word in ("ARG", "ENV"):
            assert not re.search(r"(?i)(password|secret|token)", args), args
        if word in ("COPY", "ADD") and "--from=" not in args:
            sources = args.split()[:-1]
            assert set(sources) <= {"pyproject.toml", "README.md", "kit_sync"}, args


def test_the_build_context_leaves_configs_and_state_out() -> None:
    """.dockerignore excludes everything, then lets in only what the Dockerfile copies."""
    lines = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "kit_sync"}


def test_the_compose_example_runs_kit_sync_next_to_radicale() -> None:
    compose = yaml.safe_load((ROOT / "compose.example.yaml").read_text())
    kit = compose["services"]["kit-sync"]
    assert kit["build"] == "."
    assert "./config.yaml:/config/config.yaml:ro" in kit["volumes"]
    assert any(v.split(":")[1] == "/data" for v in kit["volumes"])
    assert kit["depends_on"]["radicale"]["condition"] == "service_healthy"
    assert kit["stop_grace_period"] == "10s"
    assert kit["init"] is True
    # The password reaches kit-sync as a file, not through the environment.
    assert "environment" not in kit
    assert kit["secrets"] == ["radicale_password"]
    assert compose["secrets"]["radicale_password"] == {"file": "./secrets/radicale_password"}
    radicale = compose["services"]["radicale"]
    assert "radicale" in radicale["build"]["dockerfile_inline"]
    assert radicale["healthcheck"]["test"][0] == "CMD"
    assert all(p.startswith("127.0.0.1:") for p in radicale["ports"])
    config = compose["configs"]["radicale_config"]["content"]
    assert "type = htpasswd" in config


# --- systemd -----------------------------------------------------------------------


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((ROOT / "contrib" / name).read_text())
    return parser


@pytest.mark.parametrize(
    ("name", "command"), [("kit-sync.service", "run"), ("kit-sync-sync.service", "sync")]
)
def test_the_systemd_units_run_kit_sync_hardened(name: str, command: str) -> None:
    service = unit(name)["Service"]
    argv = service["ExecStart"].split()
    assert argv[0] == "%h/.local/kit-sync/bin/kit-sync"  # the README's install path
    assert argv[-1] == command
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["PrivateTmp"] == "yes"
    # The default state folder stays writable under ProtectSystem=strict.
    assert "%h/.local/state/kit-sync" in service["ReadWritePaths"]
    assert service["KillSignal"] == "SIGTERM"


def test_the_daemon_unit_restarts_on_failure_but_not_on_a_config_error() -> None:
    parsed = unit("kit-sync.service")
    assert parsed["Service"]["Restart"] == "on-failure"
    assert parsed["Service"]["RestartPreventExitStatus"] == "2"
    assert parsed["Install"]["WantedBy"] == "default.target"


def test_reload_sends_sighup_which_reloads_the_config() -> None:
    # What SIGHUP does is pinned in test_cli_e2e.py.
    assert unit("kit-sync.service")["Service"]["ExecReload"] == "/bin/kill -HUP $MAINPID"


def test_the_timer_starts_the_one_shot_sync() -> None:
    assert unit("kit-sync-sync.service")["Service"]["Type"] == "oneshot"
    timer = unit("kit-sync-sync.timer")
    assert timer["Timer"]["OnCalendar"]
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    home = tmp_path / "home"
    units = home / ".config" / "systemd" / "user"
    units.mkdir(parents=True)
    for name in ("kit-sync.service", "kit-sync-sync.service", "kit-sync-sync.timer"):
        # Contents only: a checkout may give the files an exec bit, which systemd
        # warns about ("marked executable"), and that is not what users install.
        shutil.copyfile(ROOT / "contrib" / name, units / name)
    # ExecStart must point at an executable: the one this test runs with.
    bin_dir = home / ".local" / "kit-sync" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "kit-sync").symlink_to(VENV_BIN / "kit-sync")
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    done = subprocess.run(
        ["systemd-analyze", "verify", "--user", *(f"./{p.name}" for p in units.iterdir())],
        cwd=units,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "Failed to initialize manager" in done.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {done.stderr.strip()}")
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr
    assert "kit-sync" not in done.stderr, done.stderr


def test_the_service_docs_cover_every_file() -> None:
    docs = (ROOT / "docs" / "service.md").read_text()
    for name in (
        "Dockerfile",
        "compose.example.yaml",
        "contrib/kit-sync.service",
        "contrib/kit-sync-sync.timer",
        "kit-sync health",
        "/healthz",
        "/metrics",
        "--log-format json",
        "health:",
    ):
        assert name in docs, name
    assert "docs/service.md" in service_section()
