"""One JSON error shape for every failure: {"error": {"code": ..., "message": ...}}."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from api.schemas import Error, ErrorDetail
from forecaster.errors import (
    DatabaseUnavailable,
    InvalidDateRange,
    InvalidTicker,
    NoChampion,
    StockcastError,
    UnknownTicker,
)
from forecaster.storage import db_error_summary

log = logging.getLogger("stockcast.api")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify(Error(error=ErrorDetail(code=code, message=message)).model_dump()), status


_DOMAIN_STATUS: dict[type[StockcastError], int] = {
    InvalidTicker: 400,
    InvalidDateRange: 400,
    UnknownTicker: 404,
    NoChampion: 404,
    DatabaseUnavailable: 503,
}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int]:
        return error_response(exc.status, exc.code, exc.message)

    @app.errorhandler(StockcastError)
    def _domain_error(exc: StockcastError) -> tuple[Response, int]:
        status = next((s for t, s in _DOMAIN_STATUS.items() if isinstance(exc, t)), 400)
        return error_response(status, exc.code, str(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        response, _ = error_response(status, code, exc.description or exc.name)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response, status

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def _db_down(exc: DBAPIError) -> tuple[Response, int]:
        log.error(
            "database unavailable",
            extra={"error": db_error_summary(exc)},
        )
        response, status = error_response(
            503, "database_unavailable", "the database is unavailable; try again shortly"
        )
        response.headers["Retry-After"] = "5"
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")
