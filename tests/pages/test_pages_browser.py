"""The pages in a real browser (Debian chromium + chromedriver through Selenium) against the real
app under gunicorn (`stockcast serve`) on a SQLite database seeded with the sample prices.

One server and one browser for the module. Screenshots go to test-artifacts/ (or
STOCKCAST_TEST_ARTIFACTS). Locally a missing browser skips these tests; in CI the skip fails the
run (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pagedata import seed_pages
from selenium.webdriver.support.select import Select

from forecaster import migrate, service, storage
from forecaster.providers.synthetic import SyntheticProvider

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = os.environ.get("STOCKCAST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("STOCKCAST_CHROMEDRIVER", "/usr/bin/chromedriver")
NEW = "SYN-RW-1"
NETWORK = "SYN-AR30-1"
SUSPECT_DAY = date(2018, 10, 1)
SUSPECT_NOTE = (
    "the close moved -50% on 2018-10-01 (log return -0.69) with no split, dividend or revision "
    "recorded"
)
ARTIFACTS = Path(
    os.environ.get(
        "STOCKCAST_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"
    )
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=10) as response:
        return json.load(response)


@contextmanager
def serving(url: str, tmp: Path, seed: Callable[[], None]) -> Iterator[str]:
    """`stockcast serve` (gunicorn, one worker) on `url`; `seed` fills the database meanwhile."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "STOCKCAST_DATA_DIR": str(tmp),
        "STOCKCAST_LOG_FORMAT": "json",
    }
    stockcast = Path(sys.executable).parent / "stockcast"
    proc = subprocess.Popen(
        [str(stockcast), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        seed()  # while the server boots (the app reads per request): a few seconds saved
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"stockcast serve died: {err[-2000:]}") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("pages")
    url = f"sqlite:///{tmp / 'pages.db'}"
    migrate.upgrade(url)

    def seed() -> None:
        engine = storage.make_engine(url)
        sessions = storage.make_session_factory(engine)
        seed_pages(sessions, forecast_days=300)
        seed_pages(  # a ticker the network serves
            sessions,
            forecast_days=20,
            tickers=(NETWORK,),
            provider=SyntheticProvider(),
            start=date(2018, 7, 1),
            runs=False,
        )
        with sessions.begin() as session:  # a ticker with prices only: no model, no forecast
            service.backfill_ticker(session, SyntheticProvider(), NEW, date(2018, 7, 1))
            new = storage.get_ticker(session, NEW)
            assert new is not None  # ... suspect since a move no action explains, and a split
            new.suspect_day, new.suspect_note = SUSPECT_DAY, SUSPECT_NOTE
            session.add(
                storage.CorporateAction(
                    ticker_id=new.id, date=date(2018, 9, 4), kind="split", value=2.0, source="t"
                )
            )
        engine.dispose()

    with serving(url, tmp, seed) as base:
        yield base


@pytest.fixture(scope="module")
def pipeline_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The set-up of `make run` (scripts/quickstart.sh) for ^GSPC: migrate, backfill the sample,
    one real pipeline run (backtest, refit, forecast), serve. A small network: the pages are
    under test, not its skill."""
    tmp = tmp_path_factory.mktemp("pipeline")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'stockcast.db'}",
        "STOCKCAST_DATA_DIR": str(tmp),
        "STOCKCAST_LSTM_UNITS": "8,4",
        "STOCKCAST_EPOCHS": "2",
        "STOCKCAST_LOG_FORMAT": "json",
    }
    stockcast = str(Path(sys.executable).parent / "stockcast")
    for args in (
        ["db", "upgrade"],
        # Seven years: the backtest's 500 days and their folds, trained in seconds.
        ["backfill", "^GSPC", "--provider", "sample", "--start", "2012-01-03"],
        ["run-now", "^GSPC"],
    ):
        done = subprocess.run(
            [stockcast, *args], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-2000:]
    with serving(env["DATABASE_URL"], tmp, lambda: None) as base:
        yield base


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(
            f"no browser: {CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install chromium chromium-driver)"
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1700",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield browser
    finally:
        browser.quit()


def wait_for(driver: Any, script: str, timeout: float = 15) -> Any:
    """Poll a JavaScript expression until it is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {script}")


def console_problems(driver: Any) -> list[str]:
    """Console errors and warnings since the last call (CSP violations and failed loads included)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def test_dashboard_lists_the_sample_tickers(driver: Any, server: str) -> None:
    driver.get(server + "/")
    wait_for(driver, "document.querySelector('#tickers').dataset.loaded === 'true'")
    assert driver.title == "Dashboard · stockcast"
    summary = api(server, "/v1/summary?limit=25")
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#tickers tbody tr')].map(r => r.dataset.ticker)"
    )
    assert rows == [t["ticker"] for t in summary["tickers"]] == ["GOOG", NETWORK, NEW, "^GSPC"]
    cells = driver.execute_script(
        "const r = document.querySelector('tr[data-ticker=\"^GSPC\"]');"
        "return [...r.children].map(c => c.textContent.trim())"
    )
    gspc = next(t for t in summary["tickers"] if t["ticker"] == "^GSPC")
    assert cells[0] == "^GSPC"
    assert "2,506.85" in cells[1] and "2018-12-31" in cells[1]
    assert "2019-01-02" in cells[2]
    assert cells[5] == gspc["forecast"]["method"] == "drift"
    assert cells[6] == f"{gspc['skill']['mae_ratio']:.3f}"
    assert cells[8] == "staleas of 2018-12-31"  # the sample data ends in 2018
    assert driver.execute_script("return document.querySelectorAll('canvas.spark').length") == 4
    new = driver.execute_script(
        f"return [...document.querySelector('tr[data-ticker=\"{NEW}\"]').children]"
        ".map(c => c.textContent.trim())"
    )
    assert new[2] == new[5] == new[6] == "–"  # no forecast, no model
    assert new[8] == "staleno forecast" and new[9] == "none"
    driver.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    assert console_problems(driver) == []

    search = driver.find_element("id", "q")
    search.send_keys("goo")
    wait_for(driver, "document.querySelector('#tickers').dataset.total === '1'")
    assert driver.execute_script(
        "return [...document.querySelectorAll('#tickers tbody tr')].map(r => r.dataset.ticker)"
    ) == ["GOOG"]
    assert "q=goo" in driver.current_url
    assert console_problems(driver) == []


def test_dashboard_sorts_filters_and_sums_up_the_universe(driver: Any, server: str) -> None:
    driver.get(server + "/")
    wait_for(driver, "document.querySelector('#tickers').dataset.loaded === 'true'")
    universe = api(server, "/v1/summary")["universe"]
    tile = lambda name: driver.find_element("id", name).text  # noqa: E731
    assert tile("u-tickers") == "4" and tile("u-tracked") == "4 tracked"
    assert tile("u-network") == "1" == str(universe["served_by_network"])
    assert tile("u-stale") == str(universe["stale"]) and tile("u-failed") == "1"
    assert tile("u-suspect") == "1"
    assert tile("u-night") == "partial" and "2 tickers, 1 failed" in tile("u-night-detail")
    rows = "[...document.querySelectorAll('#tickers tbody tr')].map(r => r.dataset.ticker)"
    driver.find_element("css selector", "th[data-sort='mae_ratio'] button").click()
    wait_for(driver, "document.querySelector('#tickers').dataset.sort === 'mae_ratio'")
    # lowest MAE ratio first, no model last: SYN-AR30-1 0.971, ^GSPC 0.993, GOOG 1.003
    assert driver.execute_script(f"return {rows}") == [NETWORK, "^GSPC", "GOOG", NEW]
    header = driver.find_element("css selector", "th[data-sort='mae_ratio']")
    assert header.get_attribute("aria-sort") == "ascending"
    driver.find_element("css selector", "th[data-sort='mae_ratio'] button").click()
    wait_for(driver, "document.querySelector('#tickers').dataset.sort === '-mae_ratio'")
    assert driver.execute_script(f"return {rows}") == ["GOOG", "^GSPC", NETWORK, NEW]
    Select(driver.find_element("id", "method")).select_by_visible_text("lstm")
    wait_for(driver, "document.querySelector('#tickers').dataset.total === '1'")
    assert driver.execute_script(f"return {rows}") == [NETWORK]
    assert "method=lstm" in driver.current_url and "sort=-mae_ratio" in driver.current_url
    assert driver.find_element("id", "status").text == "1 ticker served by lstm"
    driver.save_screenshot(str(ARTIFACTS / "dashboard-lstm.png"))
    Select(driver.find_element("id", "method")).select_by_visible_text("all")
    Select(driver.find_element("id", "state")).select_by_visible_text("failed")
    wait_for(driver, f"JSON.stringify({rows}) === '[\"GOOG\"]'")
    assert console_problems(driver) == []


def test_gspc_chart_draws_every_point_and_the_band(driver: Any, server: str) -> None:
    driver.get(server + "/tickers/%5EGSPC")
    wait_for(driver, "document.querySelector('#price-chart').dataset.ready === 'true'")
    assert driver.title == "^GSPC · stockcast"
    series = api(server, "/v1/series/%5EGSPC")
    closes, forecasts = series["closes"]["close"], series["forecasts"]["target_date"]
    assert len(closes) == 5031 and len(forecasts) == 300
    fig = driver.find_element("id", "price-chart")
    assert fig.get_attribute("aria-label").startswith("Daily closes of ^GSPC")
    assert int(fig.get_attribute("data-points")) == len(closes)
    assert int(fig.get_attribute("data-forecasts")) == len(forecasts)
    assert int(fig.get_attribute("data-band")) == len(forecasts)
    drawn = driver.execute_script(
        "const d = window.stockcastChart.data;"
        "const n = (a) => a.filter(v => v !== null).length;"
        "return {x: d[0].length, close: n(d[1]), pred: n(d[2]), low: n(d[3]), high: n(d[4]),"
        " bands: window.stockcastChart.bands.length}"
    )
    # Closes plus the newest forecast's target (2019-01-02), which has no close yet.
    assert drawn == {
        "x": len(closes) + 1,
        "close": len(closes),
        "pred": len(forecasts),
        "low": len(forecasts),
        "high": len(forecasts),
        "bands": 2,  # the live forecasts' interval and the backtest's (none stored here)
    }
    assert fig.get_attribute("data-backtest") == "0"
    realized = sum(e is not None for e in series["forecasts"]["abs_error"])
    assert int(driver.find_element("id", "error-chart").get_attribute("data-points")) == (
        realized - 19
    )  # rolling mean of 20
    ms = driver.execute_script("return window.stockcastChartMs")
    assert 0 < ms < 500
    assert "Forecast for 2019-01-02" in driver.find_element("id", "headline").text
    card = driver.find_element("id", "model-card")
    assert card.get_attribute("data-version") == "2" and "drift" in card.text
    assert "ticker: its own network" in card.text  # the model scope
    assert len(driver.find_elements("css selector", "#runs tbody tr")) == 3
    driver.save_screenshot(str(ARTIFACTS / "ticker-gspc.png"))
    assert console_problems(driver) == []


def test_range_buttons_change_the_visible_range(driver: Any, server: str) -> None:
    if "/tickers/%5EGSPC" not in driver.current_url:
        driver.get(server + "/tickers/%5EGSPC")
        wait_for(driver, "document.querySelector('#price-chart').dataset.ready === 'true'")
    day = 86400
    scale = "(() => { const s = window.stockcastChart.scales.x; return [s.min, s.max]; })()"
    first, last = driver.execute_script(
        "const x = window.stockcastChart.data[0]; return [x[0], x[x.length - 1]]"
    )
    closes = api(server, "/v1/series/%5EGSPC")["closes"]["date"]
    assert (
        driver.find_element("css selector", "[data-range='1Y']").get_attribute("aria-pressed")
        == "true"
    )
    spans = {}
    for name in ("3M", "1Y", "5Y", "all"):
        driver.find_element("css selector", f"[data-range='{name}']").click()
        lo, hi = wait_for(driver, scale)
        assert hi == last
        spans[name] = (hi - lo) / day
        assert (
            driver.find_element("css selector", f"[data-range='{name}']").get_attribute(
                "aria-pressed"
            )
            == "true"
        )
        # the error panel follows the price chart
        assert driver.execute_script("return window.stockcastErrorChart.scales.x.min") == lo
    assert spans["3M"] == 91 and spans["1Y"] == 365 and spans["5Y"] == 5 * 365 + 1
    assert spans["all"] == (last - first) / day
    driver.find_element("css selector", "#table-details summary").click()
    rows = int(wait_for(driver, "document.querySelector('#data-table').dataset.rows"))
    table = driver.find_element("id", "data-table")
    assert int(table.get_attribute("data-total")) == len(closes) + 1  # every day of "all"
    assert rows == 1300  # capped: the note links the JSON with every day
    assert "The newest 1,300 of 5,032 days" in driver.find_element("id", "table-note").text
    driver.find_element("css selector", "[data-range='3M']").click()
    wait_for(driver, "document.querySelector('#data-table').dataset.rows < 100")
    first_row = driver.find_element("css selector", "#data-table tbody tr").text
    assert first_row.startswith("2019-01-02 – 2,506.12")  # newest first: the open forecast
    assert console_problems(driver) == []


def test_unknown_ticker_gets_an_html_404(driver: Any, server: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(server + "/tickers/NOPE", timeout=5)
    assert missing.value.code == 404
    assert missing.value.headers["Content-Type"].startswith("text/html")
    driver.get(server + "/tickers/NOPE")
    assert driver.title == "Unknown ticker (404) · stockcast"
    assert driver.find_element("tag name", "h1").text == "Unknown ticker"
    driver.save_screenshot(str(ARTIFACTS / "ticker-404.png"))
    # A symbol full of markup is shown as text, never run.
    driver.get(server + "/tickers/%3Cimg%20src=x%20onerror=alert(1)%3E")
    assert driver.find_element("id", "error-message").text.startswith(
        "<img src=x onerror=alert(1)>"
    )
    assert driver.find_elements("css selector", "main img") == []
    # The only console entries are the 404 documents themselves.
    assert all("404" in m for m in console_problems(driver))


def test_a_suspect_ticker_is_flagged_with_its_actions(driver: Any, server: str) -> None:
    driver.get(server + "/")
    wait_for(driver, "document.querySelector('#tickers').dataset.loaded === 'true'")
    flagged = driver.execute_script(
        "return [...document.querySelectorAll('#tickers tbody tr')]"
        ".filter(r => r.querySelector('.badge.suspect')).map(r => r.dataset.ticker)"
    )
    assert flagged == [NEW]
    title = driver.execute_script(
        f"return document.querySelector('tr[data-ticker=\"{NEW}\"] .badge.suspect').title"
    )
    assert SUSPECT_NOTE in title and f"stockcast tickers resolve {NEW}" in title
    driver.get(f"{server}/tickers/{NEW}")
    wait_for(driver, "document.querySelector('#price-chart').dataset.ready === 'true'")
    card = driver.find_element("id", "data-card").text
    assert SUSPECT_NOTE in card and f"stockcast tickers resolve {NEW}" in card
    assert driver.find_element("id", "actions").text == "2018-09-04: split 2:1"
    assert console_problems(driver) == []


def test_a_ticker_without_forecasts(driver: Any, server: str) -> None:
    driver.get(f"{server}/tickers/{NEW}")
    wait_for(driver, "document.querySelector('#price-chart').dataset.ready === 'true'")
    closes = api(server, f"/v1/series/{NEW}")["closes"]["close"]
    fig = driver.find_element("id", "price-chart")
    assert int(fig.get_attribute("data-points")) == len(closes) > 100
    assert fig.get_attribute("data-forecasts") == fig.get_attribute("data-band") == "0"
    assert driver.find_element("id", "headline").text == "No forecast yet."
    assert driver.find_element("id", "model-card").text.startswith("No model yet")
    assert driver.find_element("css selector", "#runs tbody").text == "No pipeline run yet."
    assert console_problems(driver) == []


def test_the_backtest_record_is_on_the_chart_from_the_first_night(
    driver: Any, pipeline_server: str
) -> None:
    driver.get(pipeline_server + "/tickers/%5EGSPC")
    wait_for(driver, "document.querySelector('#price-chart').dataset.ready === 'true'")
    series = api(pipeline_server, "/v1/series/%5EGSPC")
    backtest = series["backtest"]
    assert len(backtest["target_date"]) == 500 and len(series["forecasts"]["target_date"]) == 1
    fig = driver.find_element("id", "price-chart")
    assert int(fig.get_attribute("data-backtest")) == 500 >= 400
    drawn = driver.execute_script(
        "const d = window.stockcastChart.data;"
        "const n = (a) => a.filter(v => v !== null).length;"
        "return {bt: n(d[5]), low: n(d[6]), high: n(d[7]), labels: window.stockcastChart.series.map(s => s.label)}"
    )
    first_fold = 125  # no interval: no earlier fold to calibrate on
    assert drawn["bt"] == 500 and drawn["low"] == drawn["high"] == 500 - first_fold
    assert drawn["labels"][5] == f"Backtest (out of sample, {backtest['method']})"
    # The realized-error panel: the backtest's rolling error and persistence's, from night one.
    errors = driver.execute_script(
        "const d = window.stockcastErrorChart.data;"
        "const n = (a) => a.filter(v => v !== null).length;"
        "return {x: d[0].length, backtest: n(d[1]), live: n(d[2]), persistence: n(d[3])}"
    )
    assert errors == {"x": 500 - 19, "backtest": 500 - 19, "live": 0, "persistence": 500 - 19}
    driver.find_element("css selector", "[data-range='3M']").click()
    wait_for(driver, "document.querySelector('#price-chart').dataset.range === '3M'")
    driver.save_screenshot(str(ARTIFACTS / "ticker-gspc-backtest.png"))
    assert console_problems(driver) == []


def test_the_docs_page_shows_each_response_shape(driver: Any, server: str) -> None:
    driver.get(server + "/docs")
    assert driver.title == "API docs · stockcast"
    shape = driver.find_element("css selector", "#getForecast details.shape[data-model='Forecast']")
    fields = driver.execute_script(
        "return [...arguments[0].querySelectorAll('tr[data-field]')].map(r => r.dataset.field)",
        shape,
    )
    for name in (
        "method",
        "interval",
        "interval.low",
        "model.backtest",
        "model.backtest.mae_ratio",
    ):
        assert name in fields
        row = shape.find_element("css selector", f"tr[data-field='{name}']")
        assert row.is_displayed()
    assert "lstm" in shape.find_element("css selector", "tr[data-field='method']").text
    example = driver.find_element("css selector", "#getForecast details.example")
    example.find_element("tag name", "summary").click()
    shown = json.loads(example.find_element("tag name", "pre").text)
    spec = api(server, "/openapi.json")
    ok = spec["paths"]["/v1/forecasts/{ticker}"]["get"]["responses"]["200"]
    assert shown == ok["content"]["application/json"]["example"]
    assert set(shown) == set(spec["components"]["schemas"]["Forecast"]["properties"])
    history = driver.find_element("id", "getForecastHistory").text
    assert "text/csv" in history and "kind" in history and "HistoryItem" in history
    driver.save_screenshot(str(ARTIFACTS / "docs.png"))
    assert console_problems(driver) == []  # the pages' CSP: no inline style or script
