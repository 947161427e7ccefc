"""Where a secret comes from: a plain string, {env: NAME}, {file: PATH} or
{command: [program, args...]}. Light (config.py wraps the value in a SecretStr), so
the quick check (`kit_sync.quick`) reads a password exactly as the config does."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing itself is slow to import
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


def secret_value(value: Any, base_dir: str | Path, environ: Any = None) -> str:
    """The secret `value` names. Raises ValueError with a message that names the
    source but never the value."""
    env = os.environ if environ is None else environ
    if isinstance(value, str):
        return value
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(
            "a secret is a string, {env: NAME}, {file: PATH} or {command: [program, args...]}"
        )
    ((kind, arg),) = value.items()
    if kind == "env":
        if not isinstance(arg, str) or arg not in env:
            raise ValueError(f"environment variable {arg} is not set")
        return str(env[arg])
    if kind == "file":
        path = os.path.join(base_dir, os.path.expanduser(str(arg)))  # absolute stays
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read().rstrip("\r\n")
        except OSError as exc:
            raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
    if kind == "command":
        import shlex
        import subprocess

        argv = shlex.split(arg) if isinstance(arg, str) else [str(a) for a in arg]
        if not argv:
            raise ValueError("secret command is empty")
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ValueError(f"secret command '{argv[0]}' could not run: {exc}") from None
        if done.returncode != 0:
            # stderr may echo the secret for some tools: report only the exit code.
            raise ValueError(f"secret command '{argv[0]}' failed with exit code {done.returncode}")
        return done.stdout.splitlines()[0] if done.stdout else ""
    raise ValueError(f"unknown secret source '{kind}' (use env, file or command)")
