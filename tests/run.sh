#!/usr/bin/env bash
# The whole test suite, from a fresh machine: dependencies, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
install() { python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'; }
if ! install; then
    # A Python that refuses installs outside a virtual environment (PEP 668,
    # e.g. Debian's own): use one here, first on PATH for the tests' commands.
    echo "tests/run.sh: installing into .venv instead" >&2
    python3 -m venv .venv
    # shellcheck disable=SC1091
    . .venv/bin/activate
    install
fi
python3 -m pytest -q -p no:cacheprovider "$@"
