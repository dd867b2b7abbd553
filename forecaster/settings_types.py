"""The types of Settings' text variables: comma lists, booleans, tickers, window features, broker
URLs (each parsed from text only: values given in code are already typed), and the variable
STOCKCAST_EXECUTOR replaced."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator
from pydantic_settings import NoDecode

from forecaster.errors import ConfigError, InvalidTicker
from forecaster.providers.base import normalize_ticker
from forecaster.rules import bad, shown

DEFAULT_FEATURES: tuple[str, ...] = ("open", "high", "low", "volume", "close")

# The variable STOCKCAST_EXECUTOR replaced: process (a child per step) or inline.
_LEGACY_ISOLATION = {"process": "local", "inline": "inline"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


# --- text rules for the variables' values ----------------------------------------------------


def csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def text_rule(parse: Any) -> BeforeValidator:
    """Applied to text only: values given in code (tests, `replace`) are already typed."""
    return BeforeValidator(lambda raw: parse(raw.strip()) if isinstance(raw, str) else raw)


def boolean(raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise bad("must be true or false")


def features_valid(features: tuple[str, ...]) -> tuple[str, ...]:
    if set(features) - set(DEFAULT_FEATURES) or "close" not in features:
        raise bad(f"must be drawn from {DEFAULT_FEATURES} and include close")
    return features


def tickers(raw: str) -> tuple[str, ...]:
    try:
        return tuple(normalize_ticker(t) for t in csv(raw))
    except InvalidTicker as exc:
        raise bad(f"holds a {exc}") from None


def broker(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://")):
        raise bad("must be a redis:// or rediss:// URL", echo=False)
    return raw


Features = Annotated[tuple[str, ...], NoDecode, text_rule(csv), AfterValidator(features_valid)]
Tickers = Annotated[tuple[str, ...], NoDecode, text_rule(tickers)]


def with_legacy_executor(given: Mapping[str, str], executors: tuple[str, ...]) -> dict[str, str]:
    """`given` with STOCKCAST_EXECUTOR from the variable it replaced, when only that one is set."""
    out = dict(given)
    if "STOCKCAST_EXECUTOR" not in out and "STOCKCAST_PIPELINE_ISOLATION" in out:
        legacy = out["STOCKCAST_PIPELINE_ISOLATION"].lower()
        if legacy not in _LEGACY_ISOLATION:
            raise ConfigError(
                f"STOCKCAST_EXECUTOR must be one of {', '.join(executors)} "
                f"(STOCKCAST_PIPELINE_ISOLATION: {shown(legacy)})"
            )
        out["STOCKCAST_EXECUTOR"] = _LEGACY_ISOLATION[legacy]
    return out
