"""Run a fake Microsoft 365 (Entra ID + Graph To Do) in the foreground, to try
kit-sync by hand without a tenant:

    cd tests && ../.venv/bin/python -m graph_server [folder]

It prints a `backend:` section for a config file; `kit-sync login` codes are
approved automatically for ann@contoso.example after two seconds.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import yaml

from . import USER, FakeMicrosoft


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="fake-m365-"))
    ms = FakeMicrosoft(folder).start()
    config = {"backend": ms.backend_config("login")}
    print("# fake Microsoft 365 is running; put this in your kit-sync config:")
    print(yaml.safe_dump(config, sort_keys=False))
    print("# Ctrl+C stops it. Device codes are approved as", USER)
    try:
        while True:
            time.sleep(2)
            for code in ms.entra.pending_codes():
                ms.entra.approve(code, USER)
                print(f"approved device code {code} as {USER}", flush=True)
            tasks = ms.graph.tasks(USER)
            print(f"{len(tasks)} task(s) in {USER}'s default list", end="\r", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        ms.stop()


if __name__ == "__main__":
    main()
