"""Reading a JSON Schema of the OpenAPI document for people: the fields of a response model as
rows (nested models indented) and an example value built from the schema itself, so the docs
page and /openapi.json can never describe different shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]
REF_PREFIX = "#/components/schemas/"

# Example values by field name, where a type alone would give a meaningless one.
_NAMED: dict[str, Any] = {
    "ticker": "^GSPC",
    "symbol": "^GSPC",
    "name": "S&P 500",
    "provider": "sample",
    "best_baseline": "drift",
    "last_close": 2506.85,
    "close": 2506.85,
    "open": 2498.94,
    "high": 2509.24,
    "low": 2482.82,
    "predicted_close": 2507.64,
    "persistence_forecast": 2506.85,
    "actual_close": 2510.03,
    "adj_close": 2506.85,
    "volume": 3442870000.0,
    "coverage": 0.9,
    "nominal_coverage": 0.9,
    "mae_ratio": 0.9928,
    "best_baseline_mae_ratio": 0.9971,
    "dm_pvalue": 0.18,
    "dm_best_pvalue": 0.36,
    "predicted_change_pct": 0.0315,
    "model_version": 2,
    "version": 2,
    "run_id": 12,
    "total": 1,
    "limit": 100,
    "offset": 0,
    "n_forecasts": 500,
    "status": "succeeded",
    "method_reason": "the network did not beat drift significantly (DM p = 0.36)",
    "scheme": "rolling-origin",
    "mae": 13.03,
    "persistence_mae": 13.12,
    "best_baseline_mae": 13.07,
    "rmse": 18.41,
    "mape": 0.62,
    "directional_accuracy": 0.52,
    "dm_stat": -0.93,
    "dm_best_stat": -0.36,
    "error": -3.21,
    "abs_error": 3.21,
    "persistence_abs_error": 3.18,
}


def resolve(schema: Schema, components: dict[str, Schema]) -> tuple[str | None, Schema]:
    """(model name or None, the schema itself) of a $ref, anyOf-with-null or plain schema."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(REF_PREFIX)
        return name, components[name]
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        return resolve(options[0], components)
    return None, schema


def nullable(schema: Schema) -> bool:
    return any(s.get("type") == "null" for s in schema.get("anyOf", []))


def type_name(schema: Schema, components: dict[str, Schema]) -> str:
    """A short type for people: `Interval`, `list[date]`, `"lstm" | "drift"`, `number | null`."""
    name, inner = resolve(schema, components)
    if name is not None:
        shown = name
    elif "enum" in inner:
        shown = " | ".join(f'"{v}"' for v in inner["enum"])
    elif inner.get("type") == "array":
        shown = f"list[{type_name(inner.get('items', {}), components)}]"
    elif inner.get("type") == "object" and isinstance(inner.get("additionalProperties"), dict):
        shown = f"map[string, {type_name(inner['additionalProperties'], components)}]"
    elif "anyOf" in inner:
        shown = " | ".join(
            type_name(s, components) for s in inner["anyOf"] if s.get("type") != "null"
        )
    else:
        shown = inner.get("format") or inner.get("type") or "any"
    return f"{shown} | null" if nullable(schema) else shown


@dataclass(frozen=True)
class FieldRow:
    depth: int  # 0: a field of the response model; 1: of a model nested in it, ...
    path: str  # dotted, e.g. model.backtest.mae_ratio
    type: str
    required: bool
    description: str


def field_rows(
    model: str, components: dict[str, Schema], depth: int = 0, prefix: str = "", seen: tuple = ()
) -> list[FieldRow]:
    """Every field of `model`, depth first; a nested model's fields follow it, indented (a model
    already being expanded on the path is not expanded again)."""
    schema = components[model]
    rows = []
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        nested, inner = resolve(prop, components)
        if nested is None and inner.get("type") == "array":
            nested, _ = resolve(inner.get("items", {}), components)
        description = prop.get("description") or inner.get("description") or ""
        if nested is not None and not prop.get("description"):
            description = components[nested].get("description", "")
        rows.append(
            FieldRow(
                depth,
                prefix + name,
                type_name(prop, components),
                name in required,
                " ".join(description.split()),
            )
        )
        if nested is not None and nested not in seen and depth < 4:
            rows += field_rows(nested, components, depth + 1, f"{prefix}{name}.", (*seen, model))
    return rows


def example(schema: Schema, components: dict[str, Schema], name: str = "", depth: int = 0) -> Any:
    """A value of `schema`: its own example or default where it has one, else by field name and
    type; nullable fields get a value, lists one item, maps one entry."""
    _, inner = resolve(schema, components)
    for source in (schema, inner):
        if source.get("examples"):
            return source["examples"][0]
    if depth > 6:
        return None
    if "enum" in inner:
        return inner["enum"][0]
    kind = inner.get("type")
    if kind == "object" or "properties" in inner:
        if "properties" in inner:
            return {
                key: example(prop, components, key, depth + 1)
                for key, prop in inner["properties"].items()
            }
        extra = inner.get("additionalProperties")
        return (
            {"lstm": example(extra, components, name, depth + 1)} if isinstance(extra, dict) else {}
        )
    if kind == "array":
        return [example(inner.get("items", {}), components, name, depth + 1)]
    if "anyOf" in inner:
        return example(inner["anyOf"][0], components, name, depth + 1)
    return _scalar(inner, name)


_FITS: dict[str, type | tuple[type, ...]] = {"string": str, "number": (int, float), "integer": int}


def _scalar(schema: Schema, name: str) -> Any:
    kind = schema.get("type")
    named = _NAMED.get(name)
    fits = _FITS.get(kind or "")
    if fits is not None and isinstance(named, fits) and not isinstance(named, bool):
        return named
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    fmt = schema.get("format")
    if kind == "string":
        if fmt == "date":
            return "2019-01-02" if "target" in name else "2018-12-31"
        if fmt == "date-time":
            return "2019-01-01T23:30:00Z"
        return "…"
    return {"integer": 1, "number": 1.0, "boolean": True}.get(kind or "")
