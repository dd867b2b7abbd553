"""Rows -> the response models of api/schemas.py, shared by the endpoints. The forecast document's
builders live in forecaster/documents.py (the service renders that document when it stores a
forecast) and are re-exported here."""

from __future__ import annotations

import api.schemas as schemas
from forecaster import documents
from forecaster.evaluation import finite
from forecaster.storage import ModelVersion

# The forecast document's builders (forecaster/documents.py), shared with the other endpoints.
num = documents.num
pvalue = documents.pvalue
backtest = documents.backtest
model_summary = documents.model_summary
interval = documents.interval
change_pct = documents.change_pct
forecast = documents.forecast


def model_version(mv: ModelVersion) -> schemas.ModelVersion:
    return schemas.ModelVersion(
        **documents.summary_fields(mv),
        champion=mv.status == "champion",
        rejection_reason=mv.rejection_reason,
        promoted_at=mv.promoted_at,
        train_start=mv.train_start,
        train_end=mv.train_end,
        n_train=mv.n_train,
        train_seconds=num(mv.train_seconds, 3),
        interval_halfwidth_log=num(mv.interval_halfwidth),
        interval_coverage=num(mv.interval_coverage, 4),
        config=finite(mv.config),
        evaluation=finite(mv.metrics),
    )
