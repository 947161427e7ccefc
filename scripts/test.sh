#!/usr/bin/env bash
# The full test suite, on a fresh machine with only Python 3.11 and access to PyPI:
# creates .venv, installs kit-sync with every backend plus the test tools, then runs
# the linters (ruff, mypy, hadolint), pytest, and the date-sensitive tests again at
# each awkward instant of tests/conftest.py CLOCK_MATRIX. Extra arguments go to pytest.
#
#   bash scripts/test.sh --fast [pytest args]
#
# is the quick loop while you work: the unit and engine tests only (no tests marked
# slow, integration or install, and KIT_SYNC_FAST makes tests/conftest.py skip any
# test the moment it starts a process; no linters, no Debian packages), in .venv as it
# is (created when missing; the test tools installed when it lacks them, as after README
# command 1, which installs plain `pip install .`). The full run is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

FAST=0
if [ "${1:-}" = "--fast" ]; then
    FAST=1
    shift
fi
if [ "$FAST" = 1 ]; then
    if [ ! -x .venv/bin/python ]; then
        "${PYTHON:-python3}" -m venv .venv
    fi
    if ! .venv/bin/python -c "import pytest, hypothesis, kit_sync" >/dev/null 2>&1; then
        .venv/bin/python -m pip install --quiet -e ".[test]"
    fi
    echo "== pytest --fast (unit and engine tests)"
    KIT_SYNC_FAST=1 exec .venv/bin/python -m pytest -m "not slow and not integration and not install" "$@"
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"

# Real servers the tests start on 127.0.0.1 that are Debian packages, not on PyPI:
# Dovecot IMAP (the imap touch source) and Cyrus's CalDAV server (cyrus-caldav on
# cyrus-common, with sasl2-bin for its password file; not cyrus-imapd, which conflicts
# with dovecot-imapd). Installed with apt-get when missing (as root, as CI runs);
# without root, install them yourself: sudo apt-get install <the packages named below>.
missing=()
[ -x /usr/sbin/dovecot ] || command -v dovecot >/dev/null 2>&1 || missing+=(dovecot-imapd)
[ -x /usr/lib/cyrus/bin/httpd ] || missing+=(cyrus-caldav)
command -v saslpasswd2 >/dev/null 2>&1 || missing+=(sasl2-bin)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    else
        echo "missing ${missing[*]}; the IMAP/Cyrus tests need them (apt-get install ${missing[*]})" >&2
    fi
fi

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

# No test may pass only because of the day it runs on: the tests marked `dates` run
# again with their clock at month ends, a leap day, the DST changes of New York and
# London, and the year's end.
for instant in $(.venv/bin/python -c 'import sys; sys.path.insert(0, "tests"); from conftest import CLOCK_MATRIX; print(" ".join(CLOCK_MATRIX))'); do
    echo "== pytest -m dates --clock $instant"
    .venv/bin/python -m pytest -q -p no:cacheprovider -m dates --clock "$instant"
done
