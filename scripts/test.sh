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
