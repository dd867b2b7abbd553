#!/usr/bin/env bash
# Run lint and the whole test suite: SQLite always, PostgreSQL on 127.0.0.1:5432 (required in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin

# PostgreSQL: start the local cluster if it is installed but down (CI machines have it).
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "PostgreSQL is down; starting the local cluster" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    for _ in $(seq 1 20); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
fi

"$BIN/ruff" check .
"$BIN/ruff" format --check .

# pytest exits 5 when it collected no test: that is a failure here, like any other non-zero code.
set +e
"$BIN/python" -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
    echo "pytest collected no tests" >&2
fi
exit "$code"
