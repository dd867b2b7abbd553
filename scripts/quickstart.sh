#!/usr/bin/env bash
# The main job on the embedded default: SQLite in ./data + the offline sample tickers.
# migrate -> backfill -> the pipeline once (backtest, refit on every day, choose the serving
# method, predict)
# -> serve the API on http://$HOST:$PORT (in the background). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
TICKERS=${STOCKCAST_TICKERS:-^GSPC,GOOG}
IFS=',' read -r -a SYMBOLS <<< "$TICKERS"

step() { printf '\n==> %s\n' "$*" >&2; }

step "migrating the database"
"$BIN/stockcast" db upgrade
step "backfilling ${SYMBOLS[*]} from the offline sample provider"
"$BIN/stockcast" backfill "${SYMBOLS[@]}" --provider sample
step "running the pipeline: rolling-origin backtest, refit on every stored day, choose the serving method, forecast the next trading day"
"$BIN/stockcast" run-now "${SYMBOLS[@]}"
"$BIN/stockcast" models list "${SYMBOLS[0]}"
step "serving the API on http://$HOST:$PORT"
"$BIN/stockcast" serve --daemon --host "$HOST" --port "$PORT"
for _ in $(seq 1 60); do
    if "$BIN/python" - "$HOST" "$PORT" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/readyz", timeout=1)
PY
    sleep 0.5
done
"$BIN/python" - "$HOST" "$PORT" <<'PY'
import json, sys, urllib.request
base = f"http://{sys.argv[1]}:{sys.argv[2]}"
with urllib.request.urlopen(f"{base}/v1/forecasts/%5EGSPC", timeout=5) as r:
    print(json.dumps(json.load(r), indent=2))
print(f"\nstockcast is serving on {base}")
print(f"  dashboard: {base}/   (^GSPC: {base}/tickers/%5EGSPC)")
print(f"  API docs:  {base}/docs   (stop with `make stop`)")
PY
