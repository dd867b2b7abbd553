#!/usr/bin/env bash
# Run lint, the type check and the whole test suite: SQLite always, PostgreSQL on 127.0.0.1:5432 (required in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin

# PostgreSQL: start the local cluster if it is installed but down (CI machines have it).
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "PostgreSQL is down; starting the local cluster" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    for _ in $(seq 1 20); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
fi

# Redis (the Celery broker of tests/jobs/test_celery.py, marker `redis`): start a local server
# if none answers (install the Debian package if missing); in CI one that cannot start fails here.
ensure_redis() {
    if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
    if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing redis-server for the Celery tests" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null; } || true
    fi
    if command -v redis-server >/dev/null 2>&1; then
        echo "Redis is down; starting redis-server on 127.0.0.1:6379" >&2
        redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save "" --appendonly no >/dev/null || true
        for _ in $(seq 1 20); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.25; done
    fi
    if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        echo "redis: $(redis-cli -h 127.0.0.1 -p 6379 info server | grep -m1 redis_version | tr -d '\r')" >&2
    elif [ "${CI:-}" = "true" ]; then
        echo "Redis is required in CI (127.0.0.1:6379; apt-get install redis-server)" >&2
        exit 1
    else
        echo "no Redis on 127.0.0.1:6379: the Celery tests will be skipped" >&2
    fi
}
ensure_redis

# The browser suite (tests/pages, marker `browser`) drives Debian's chromium through chromedriver.
# Install them if missing (as root, or with password-less sudo), then check both answer. In CI a
# browser that cannot be installed or does not start fails the run here, before pytest.
ensure_browser() {
    if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
        local apt=()
        if [ "$(id -u)" -eq 0 ]; then apt=(apt-get); elif sudo -n true 2>/dev/null; then apt=(sudo apt-get); fi
        if [ "${#apt[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "installing chromium and chromium-driver for the browser tests" >&2
            DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q chromium chromium-driver >/dev/null \
                || { "${apt[@]}" update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
                     "${apt[@]}" install -y -q chromium chromium-driver >/dev/null; } || true
        fi
    fi
    if chromium --version >/dev/null 2>&1 && chromedriver --version >/dev/null 2>&1; then
        echo "browser: $(chromium --version 2>/dev/null); $(chromedriver --version 2>/dev/null | cut -d' ' -f1-2)" >&2
    elif [ "${CI:-}" = "true" ]; then
        echo "chromium and chromedriver are required in CI (apt-get install chromium chromium-driver)" >&2
        exit 1
    else
        echo "no working chromium/chromedriver: the browser tests will be skipped" >&2
    fi
}
if [ "${STOCKCAST_SKIP_BROWSER_INSTALL:-}" != "1" ]; then
    ensure_browser
fi

"$BIN/ruff" check .
"$BIN/ruff" format --check .
"$BIN/mypy" forecaster api jobs cli  # make typecheck

# Whole test files spread over pytest-xdist workers, one more than the cores: many tests wait on
# processes of their own (workers starting, deadlines running out), and a third worker fills
# those waits (2 cores: 9:04 against 10:08 with two). STOCKCAST_TEST_WORKERS=0: one process. The
# heaviest files start first (tests/conftest.py). Bytecode is cached between runs even where the
# environment says otherwise (pytest's assertion rewrites included).
unset PYTHONDONTWRITEBYTECODE
WORKERS=${STOCKCAST_TEST_WORKERS:-$(( $(nproc 2>/dev/null || echo 1) + 1 ))}
PARALLEL=()
if [ "$WORKERS" != "0" ]; then PARALLEL=(-n "$WORKERS" --dist loadfile --no-loadscope-reorder); fi

# pytest exits 5 when it collected no test: that is a failure here, like any other non-zero code.
set +e
"$BIN/python" -m pytest ${PARALLEL[@]+"${PARALLEL[@]}"} "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
    echo "pytest collected no tests" >&2
fi
exit "$code"
