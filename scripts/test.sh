#!/usr/bin/env bash
# The full test suite, on a fresh machine with only Python 3.11 and access to PyPI:
# creates .venv, installs kit-sync with every backend plus the test tools, then runs
# the linters (ruff, mypy, hadolint) and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
if [ -f Dockerfile ]; then
    echo "== hadolint"
    .venv/bin/hadolint Dockerfile
fi
echo "== pytest"
# pytest exits 5 when it collected no tests: with `set -e` that fails the run.
.venv/bin/python -m pytest "$@"
