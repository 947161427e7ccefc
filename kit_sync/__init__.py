"""kit-sync: keep one regenerating keep-in-touch task per person.

The version lives in pyproject.toml only; `kit-sync --version` reads the installed
metadata (importlib.metadata)."""
