"""The `kit-sync` command: the quick check first (`kit_sync.quick`: an idle `sync`
or `status` answered from its record, without importing the CLI, the config's
validation or the backends), else the full CLI."""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if "sync" in argv or "status" in argv:  # the only commands it answers
        from kit_sync.quick import answer

        code = answer(argv)
        if code is not None:
            sys.exit(code)
    from kit_sync.cli import main as cli_main

    cli_main()
