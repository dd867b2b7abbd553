"""The forecast document: what `GET /v1/forecasts/<ticker>` returns, shaped by pydantic models and
rendered once, when the forecast is stored (forecaster.service.predict_ticker writes it beside the
prediction in `predictions.document`), so the API serves it with one read and no rendering.

The models live here, not in api/, because the service renders the document and forecaster never
imports api/; api/schemas.py re-exports them, so /openapi.json still documents the very models that
shape the bytes. The builders round numbers with `num()`, which also turns NaN and infinities into
null: strict JSON never carries them.

One part of a stored document can change after it was written: the model version's `status` (a
newer version is promoted and this one retired). The registry then renders the newest
forecast's document again in the promotion's transaction (forecaster.predict.render_again), so
a stored document is always current and served as it is.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema

from forecaster.backtest import SCHEME
from forecaster.policy import BASELINES, METHODS, backtest_key
from forecaster.storage import MODEL_STATUSES, ModelVersion, Prediction, as_utc

# `Literal[tuple]` is `Literal[*tuple]`: the values stay in their owning module.
Method = Literal[METHODS]  # type: ignore[valid-type]
Baseline = Literal[BASELINES]  # type: ignore[valid-type]
ModelStatus = Literal[MODEL_STATUSES]  # type: ignore[valid-type]

# Timestamps keep Python's isoformat ("+00:00", not pydantic's "Z"); stored naive times are UTC.
UtcDatetime = Annotated[
    datetime,
    PlainSerializer(lambda value: as_utc(value).isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def _open_schema(schema: dict[str, Any]) -> None:
    # extra="forbid" catches a builder's misspelt field; the published schema stays open (clients
    # must ignore fields added later), as it always was, and without a title per property.
    schema.pop("additionalProperties", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)


class Schema(BaseModel):
    """Base of every response body: no field may be added by accident."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_open_schema)


class Interval(Schema):
    """`coverage` is the nominal share the interval is built for. `calibrated` says whether the
    backtest measured the served method's interval out of sample (false when it was too short
    to: one fold), so a client knows whether `coverage` is a measured claim; null where the
    model version is not part of the answer (history items: see their `model_version`)."""

    low: float
    high: float
    coverage: float
    calibrated: bool | None


class BaselineFigures(Schema):
    mae: float | None
    rmse: float | None
    mape: float | None
    directional_accuracy: float | None


class Backtest(Schema):
    """Rolling-origin (expanding window) backtest: the network refit at regular origins, every
    forecast one step ahead from a model that saw nothing after its origin. dm_stat and
    dm_pvalue: Diebold-Mariano test (absolute-error loss, Newey-West variance, HLN correction) of
    the network vs persistence; dm_best_*: vs the best baseline. p-values are one-sided for 'the
    network is more accurate', at full precision. coverage: out-of-sample share of actual
    closes inside the served method's interval (null when the backtest is too short to measure
    it); coverage_by_method: the same for each method's own interval, the network's under
    `lstm`. gaps: breaks of more than 7 calendar days between consecutive bars of the backtest
    window (each scored as a one-step forecast across the break), largest_gap_days the longest;
    both null for versions recorded before they were counted."""

    scheme: Literal[SCHEME]  # type: ignore[valid-type]
    folds: int
    n_forecasts: int
    start: date
    end: date
    mae: float | None
    rmse: float | None
    mape: float | None
    directional_accuracy: float | None
    persistence_mae: float | None
    mae_ratio: float | None
    best_baseline: Baseline
    best_baseline_mae: float | None
    best_baseline_mae_ratio: float | None
    dm_stat: float | None
    dm_pvalue: float | None
    dm_best_stat: float | None
    dm_best_pvalue: float | None
    coverage: float | None
    coverage_by_method: dict[str, float | None]
    nominal_coverage: float | None
    gaps: int | None
    largest_gap_days: int | None
    baselines: dict[str, BaselineFigures]


class UniverseModel(Schema):
    """Universe scope: the one network (an ensemble of `members` seeds) every ticker's version
    shares, what it was trained on and through which day."""

    tickers: int
    windows: int
    members: int
    trained_through: date
    warm_start: bool  # a quiet night: the networks fine-tuned, the backtest reused


class ModelSummary(Schema):
    version: int
    status: ModelStatus
    method: Method
    method_reason: str | None
    trained_at: UtcDatetime
    trained_through: date | None
    mae: float | None
    persistence_mae: float | None
    mae_ratio_vs_persistence: float | None
    directional_accuracy: float | None
    test_start: date
    test_end: date
    backtest: Backtest | None
    # ticker: the ticker's own network; universe: one network for every tracked ticker
    scope: Literal["ticker", "universe"] = "ticker"
    universe: UniverseModel | None = None


class Live(Schema):
    """The live record (forecaster.live): every method's stored forecasts of the nights after the
    backtest's end (`since`), scored against the closes that arrived; n_forecasts counts the
    nights on which every method forecast. dm_best_pvalue: one-sided for 'the network is more
    accurate than the best baseline'; worse_pvalue: for 'the best baseline is more accurate' (the
    demotion test). demoted: the live record took the network off serving until a full backtest."""

    since: date | None
    n_forecasts: int
    mae: dict[str, float | None]
    mae_ratio: dict[str, float | None]
    best_baseline: Baseline | None
    dm_best_pvalue: float | None
    worse_pvalue: float | None
    demoted: bool


class Forecast(Schema):
    ticker: str
    as_of: date
    target_date: date
    predicted_close: float
    interval: Interval
    last_close: float
    persistence_forecast: float
    predicted_change_pct: float
    method: Method
    method_reason: str | None
    model: ModelSummary
    live: Live | None
    created_at: UtcDatetime


# --- builders: rows -> models ----------------------------------------------------------------


def num(value: float | None, digits: int | None = 6) -> float | None:
    """A JSON number, or null: NaN and infinities never reach a response (strict JSON).
    digits=None keeps full precision (p-values: 2.3e-9 is not 0)."""
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return value if digits is None else round(value, digits)


def pvalue(value: float | None) -> float | None:
    return num(value, None)


def served_coverage(bt: dict[str, Any], method: str) -> float | None:
    """Out-of-sample coverage of the served method's own interval (the network's is `model`)."""
    by_method = bt.get("coverage_by_method") or {}
    return num(by_method.get(backtest_key(method)), 4)


def backtest(mv: ModelVersion) -> Backtest | None:
    """The public figures of a version's rolling-origin backtest (None for legacy versions)."""
    bt = mv.record("backtest")
    if bt is None:
        return None
    model = bt.get("metrics", {}).get("model", {})
    found = bt.get("gaps")
    gaps: dict[str, Any] = found if isinstance(found, dict) else {}
    return Backtest(
        scheme=bt.get("scheme"),
        # stored values (ints, ISO dates): pydantic validates them when the model is built
        folds=cast(int, bt.get("folds")),
        n_forecasts=cast(int, bt.get("n_forecasts")),
        start=cast(date, bt.get("start")),
        end=cast(date, bt.get("end")),
        mae=num(bt.get("mae")),
        rmse=num(model.get("rmse")),
        mape=num(model.get("mape")),
        directional_accuracy=num(model.get("directional_accuracy")),
        persistence_mae=num(bt.get("persistence_mae")),
        mae_ratio=num(bt.get("mae_ratio")),
        best_baseline=bt.get("best_baseline"),
        best_baseline_mae=num(bt.get("best_baseline_mae")),
        best_baseline_mae_ratio=num(bt.get("best_baseline_mae_ratio")),
        dm_stat=num(bt.get("dm_stat"), 4),
        dm_pvalue=pvalue(bt.get("dm_pvalue")),
        dm_best_stat=num(bt.get("dm_best_stat"), 4),
        dm_best_pvalue=pvalue(bt.get("dm_best_pvalue")),
        coverage=served_coverage(bt, mv.method),
        coverage_by_method={
            ("lstm" if m == "model" else m): num(v, 4)
            for m, v in (bt.get("coverage_by_method") or {}).items()
        },
        nominal_coverage=num(bt.get("nominal_coverage"), 4),
        gaps=gaps.get("count"),
        largest_gap_days=gaps.get("largest_days"),
        baselines={
            name: BaselineFigures(
                mae=num(m.get("mae")),
                rmse=num(m.get("rmse")),
                mape=num(m.get("mape")),
                directional_accuracy=num(m.get("directional_accuracy")),
            )
            for name, m in bt.get("metrics", {}).items()
            if name != "model"
        },
    )


def summary_fields(mv: ModelVersion) -> dict[str, Any]:
    """ModelSummary's fields of a version (also the first fields of the API's ModelVersion)."""
    bt = mv.record("backtest")
    legacy = mv.record("metrics") or {}
    figures = bt.get("metrics", {}) if bt is not None else legacy
    return {
        "version": mv.version,
        "status": mv.status,
        "method": mv.method,
        "method_reason": mv.method_reason,
        "trained_at": mv.trained_at,
        "trained_through": mv.trained_through,
        "mae": num(mv.mae),
        "persistence_mae": num(mv.persistence_mae),
        "mae_ratio_vs_persistence": num(mv.mae_ratio),
        "directional_accuracy": num(figures.get("model", {}).get("directional_accuracy")),
        "test_start": mv.test_start,
        "test_end": mv.test_end,
        "backtest": backtest(mv),
        **scope_fields(bt),
    }


def scope_fields(bt: Any) -> dict[str, Any]:
    """The model scope of a version's backtest record (forecaster.universe_training)."""
    info = bt.get("universe") if isinstance(bt, dict) else None
    if not isinstance(info, dict):
        return {"scope": "ticker", "universe": None}
    return {
        "scope": "universe",
        "universe": UniverseModel(
            tickers=int(info.get("tickers", 0)),
            windows=int(info.get("windows", 0)),
            members=int(info.get("members", 0)),
            trained_through=date.fromisoformat(str(info["trained_through"])),
            warm_start=bool(info.get("warm_start", False)),
        ),
    }


def model_summary(mv: ModelVersion) -> ModelSummary:
    return ModelSummary(**summary_fields(mv))


def figure(value: float, digits: int = 4) -> float:
    """A stored number the contract requires: finite by the storage rules; pydantic refuses a
    non-finite one (None here) rather than let it reach a response."""
    return cast(float, num(value, digits))


def interval(p: Prediction, mv: ModelVersion | None) -> Interval:
    """The prediction's interval; `mv` is the version that made it (None: not known here)."""
    calibrated = None
    if mv is not None:
        bt = mv.record("backtest")
        calibrated = bt is not None and served_coverage(bt, p.method) is not None
    return Interval(
        low=figure(p.lower),
        high=figure(p.upper),
        coverage=figure(p.coverage),
        calibrated=calibrated,
    )


def change_pct(p: Prediction) -> float | None:
    return num((p.predicted_close / p.last_close - 1.0) * 100.0, 4)


def live(record: Any, demoted: bool) -> Live | None:
    """The public figures of a forecaster.live.LiveRecord (None: no record, a legacy version)."""
    if record is None:
        return None
    return Live(
        since=record.since,
        n_forecasts=record.n,
        mae={m: num(v) for m, v in record.mae.items()},
        mae_ratio={m: num(record.ratio(m)) for m in record.mae},
        best_baseline=record.best_baseline,
        dm_best_pvalue=pvalue(record.dm_pvalue),
        worse_pvalue=pvalue(record.worse_pvalue),
        demoted=demoted,
    )


def forecast(
    symbol: str, p: Prediction, mv: ModelVersion, record: Any = None, demoted: bool = False
) -> Forecast:
    return Forecast(
        ticker=symbol,
        as_of=p.as_of_date,
        target_date=p.target_date,
        predicted_close=figure(p.predicted_close),
        interval=interval(p, mv),
        last_close=figure(p.last_close),
        persistence_forecast=figure(p.last_close),
        predicted_change_pct=cast(float, change_pct(p)),
        method=p.method,
        method_reason=p.method_reason,
        model=model_summary(mv),
        live=live(record, demoted),
        created_at=p.created_at,
    )


# --- the stored document ---------------------------------------------------------------------


def dumps(body: BaseModel) -> str:
    """A response model as the API sends it: the bytes of Flask's default JSON provider in
    production (compact separators, ASCII, keys in field order, a final newline)."""
    return json.dumps(body.model_dump(mode="json"), ensure_ascii=True, separators=(",", ":")) + "\n"


def render(
    symbol: str, p: Prediction, mv: ModelVersion, record: Any = None, demoted: bool = False
) -> str:
    """The forecast document stored in `predictions.document`."""
    return dumps(forecast(symbol, p, mv, record, demoted))
