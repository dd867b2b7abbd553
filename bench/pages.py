"""Pages benchmark: server time of the HTML pages and their API calls, and the chart's draw time in
a real browser.

Seeds a temporary SQLite database with the sample ^GSPC (5,031 closes, 1999-2018) and GOOG, a
forecast for every ^GSPC day after its first month (so the chart holds about 5,000 closes and
5,000 forecasts with their band), and `--extra` synthetic tickers (one year each, a few
forecasts) so the dashboard pages through ~500 tickers. Starts `stockcast serve` (gunicorn) on a
free loopback port with the per-worker response cache off, times sequential keep-alive requests
(median and p95; loopback round trip included, so an upper bound of server time), then drives headless chromium (Debian's chromium +
chromedriver) to read `window.stockcastChartMs`: building the uPlot chart and drawing every point.

Run: .venv/bin/python bench/pages.py [--requests 200] [--loads 5] [--extra 500]
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "pages"))  # the seed shared with the browser tests
sys.path.insert(0, str(ROOT / "bench"))  # api_load's gunicorn line for the bare app

from api_load import bare_argv  # noqa: E402
from pagedata import seed_pages  # noqa: E402

from forecaster import migrate, series_document, storage  # noqa: E402
from forecaster.providers.synthetic import SyntheticProvider  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(url: str, extra: int) -> None:
    migrate.upgrade(url)
    engine = storage.make_engine(url)
    sessions = storage.make_session_factory(engine)
    started = time.perf_counter()
    seeded = seed_pages(sessions, forecast_days=10_000)
    if extra:
        synthetic = tuple(f"SYN-RW-{i}" for i in range(1, extra + 1))
        seed_pages(
            sessions,
            forecast_days=5,
            tickers=synthetic,
            provider=SyntheticProvider(),
            start=date(2018, 1, 1),
            runs=False,
        )
    engine.dispose()
    for s in seeded:
        print(
            f"seeded {s.ticker}: {s.prices} closes, {s.forecasts} forecasts ({s.realized} realized)"
        )
    print(f"seeded {extra} synthetic tickers; {time.perf_counter() - started:.1f} s")
    # What the stored series document costs each write of a ticker's data (a night's step).
    with sessions() as s:
        for symbol in ("^GSPC", "SYN-RW-1" if extra else "GOOG"):
            row = storage.get_ticker(s, symbol)
            assert row is not None
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                series_document.write(s, row)
                s.flush()
                times.append((time.perf_counter() - t0) * 1000)
            stored = s.get(storage.SeriesDocument, row.id)
            assert stored is not None
            print(
                f"series document of {symbol}: render + gzip + write {statistics.median(times):.1f}"
                f" ms, {stored.size:,} bytes of JSON, {len(stored.body):,} gzipped"
            )
        s.rollback()


def time_requests(
    port: int, path: str, n: int, headers: dict[str, str] | None = None
) -> tuple[float, float, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(3):  # warm: templates compiled, calendars loaded, pool connected
        conn.request("GET", path, headers=headers or {})
        conn.getresponse().read()
    times = []
    size = 0
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status == 200, (path, response.status)
        size = len(body)
    conn.close()
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], size


def chart_draws(base: str, loads: int) -> list[tuple[float, int, int]]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("STOCKCAST_CHROMIUM", "/usr/bin/chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    service = Service(os.environ.get("STOCKCAST_CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    out = []
    try:
        for _ in range(loads):
            driver.get(f"{base}/tickers/%5EGSPC?range=all")
            deadline = time.monotonic() + 30
            while not driver.execute_script(
                "return document.querySelector('#price-chart').dataset.ready === 'true'"
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("the chart did not finish drawing")
                time.sleep(0.05)
            ms, points, forecasts = driver.execute_script(
                "const f = document.querySelector('#price-chart');"
                "return [window.stockcastChartMs, +f.dataset.points, +f.dataset.forecasts]"
            )
            out.append((ms, points, forecasts))
    finally:
        driver.quit()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per path")
    parser.add_argument("--loads", type=int, default=5, help="chart page loads in the browser")
    parser.add_argument("--extra", type=int, default=500, help="synthetic tickers to add")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="stockcast-pages-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'pages.db'}"
        seed(url, args.extra)
        port = free_port()
        # Response cache off: every timed request is rendered from the database.
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "STOCKCAST_DATA_DIR": tmp,
            "STOCKCAST_API_RESPONSE_TTL": "0",
        }
        stockcast = Path(sys.executable).parent / "stockcast"
        server = subprocess.Popen(
            [str(stockcast), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{base}/readyz", timeout=1).read()
                    break
                except OSError:
                    if server.poll() is not None:
                        raise SystemExit("stockcast serve exited") from None
                    time.sleep(0.1)
            print(f"\nserver time over loopback, {args.requests} sequential keep-alive requests:")
            print(f"{'path':<40} {'median ms':>10} {'p95 ms':>8} {'bytes':>9}")
            for path in (
                "/",
                "/tickers/%5EGSPC",
                "/v1/summary?limit=25",
                "/v1/summary?limit=25&sort=-mae_ratio",
                "/v1/summary?limit=25&method=lstm&status=stale&sort=change",
                "/v1/summary?limit=25&offset=475&q=syn",
                "/v1/series/%5EGSPC",
                "/v1/forecasts/%5EGSPC/history?format=csv",
                "/v1/models/%5EGSPC",
                "/v1/runs?ticker=%5EGSPC&limit=10",
            ):
                median, p95, size = time_requests(port, path, args.requests)
                print(f"{path:<40} {median:>10.2f} {p95:>8.2f} {size:>9,}")
            # The whole series as a browser asks for it (the stored gzip as it is), and rendered
            # per request (a range, as every whole history was before the stored document).
            for label, path, headers in (
                ("/v1/series/%5EGSPC (gzip)", "/v1/series/%5EGSPC", {"Accept-Encoding": "gzip"}),
                ("/v1/series/%5EGSPC?start=1900-01-01", "/v1/series/%5EGSPC?start=1900-01-01", {}),
            ):
                median, p95, size = time_requests(port, path, args.requests, headers)
                print(f"{label:<40} {median:>10.2f} {p95:>8.2f} {size:>9,}")
            # The yardstick, same database, same run: a bare Flask route doing one read.
            bare_port = free_port()
            bare = subprocess.Popen(
                bare_argv(bare_port, 2, 4), cwd=ROOT, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                for _ in range(300):
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{bare_port}/read", timeout=1)
                        break
                    except OSError:
                        time.sleep(0.1)
                median, p95, size = time_requests(bare_port, "/read", args.requests)
                print(f"{'bare Flask route, one read':<40} {median:>10.2f} {p95:>8.2f} {size:>9,}")
            finally:
                bare.terminate()
                bare.wait(timeout=15)
            draws = chart_draws(base, args.loads)
            ms = sorted(d[0] for d in draws)
            print(
                f"\nchart (headless chromium, {args.loads} loads of /tickers/%5EGSPC?range=all): "
                f"{draws[0][1]:,} closes + {draws[0][2]:,} forecasts with band drawn in "
                f"median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms"
            )
        finally:
            server.terminate()
            server.wait(timeout=15)


if __name__ == "__main__":
    main()
