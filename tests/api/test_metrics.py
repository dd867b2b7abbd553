"""/metrics exposition in one process (Flask test client), and the gunicorn hooks that keep the
multiprocess folder right."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from api import create_app, gunicorn_conf

ROUTE = "/v1/forecasts/<ticker>"


def scrape(client: FlaskClient) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample by name, keyed by its sorted labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def test_exposition_counts_by_route_rule(client: FlaskClient) -> None:
    for _ in range(3):
        client.get("/v1/forecasts/GOOG")
    client.get("/v1/forecasts/NOPE")
    client.get("/no/such/path/12345")
    samples = scrape(client)
    requests = samples["stockcast_http_requests_total"]
    assert requests[(("method", "GET"), ("route", ROUTE), ("status", "200"))] == 3
    assert requests[(("method", "GET"), ("route", ROUTE), ("status", "404"))] == 1
    # The raw path never becomes a label value: unmatched paths share one series.
    assert requests[(("method", "GET"), ("route", "<unmatched>"), ("status", "404"))] == 1
    assert all(dict(k)["route"] in (ROUTE, "<unmatched>") for k in requests)
    latency = samples["stockcast_http_request_duration_seconds_count"]
    assert latency[(("method", "GET"), ("route", ROUTE))] == 4
    inf = (("le", "+Inf"), ("method", "GET"), ("route", ROUTE))
    assert samples["stockcast_http_request_duration_seconds_bucket"][inf] == 4
    assert samples["stockcast_forecast_age_days"][(("ticker", "GOOG"),)] > 0
    # No worker pid (it told the world the server's process ids) and no `_created` series.
    assert not any("pid" in dict(k) for series in samples.values() for k in series)
    assert not any(name.endswith("_created") for name in samples)


def test_each_app_counts_its_own_requests(client: FlaskClient, app: Flask) -> None:
    """Metrics live in the app, not in prometheus_client's global registry."""
    client.get("/v1/forecasts/GOOG")
    own = app.extensions["stockcast"]
    other = create_app(own.settings, own.engine)
    samples = scrape(other.test_client())
    assert (("method", "GET"), ("route", ROUTE), ("status", "200")) not in samples.get(
        "stockcast_http_requests_total", {}
    )


def test_when_ready_empties_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_4242.db").write_bytes(b"stale")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    gunicorn_conf.when_ready(SimpleNamespace(master_pid=7))  # USR2 re-exec: old workers live on
    assert (folder / "counter_4242.db").exists()
    gunicorn_conf.when_ready(SimpleNamespace(master_pid=0))
    assert list(folder.iterdir()) == []
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "new" / "dir"))
    gunicorn_conf.when_ready(SimpleNamespace(master_pid=0))
    assert (tmp_path / "new" / "dir").is_dir()


def test_child_exit_marks_the_worker_dead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("gauge_livesum_4242.db", "counter_4242.db", "gauge_livesum_4343.db"):
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    gunicorn_conf.child_exit(SimpleNamespace(), SimpleNamespace(pid=4242))
    # Live gauges of the dead worker go; its counters stay so totals never go backwards.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "counter_4242.db",
        "gauge_livesum_4343.db",
    ]
