"""Values that arrive as text (environment variables, query strings): the strict parsers both use,
and the one formatter that turns a pydantic ValidationError into the one line a person reads.

pydantic's own wording ("Input should be ...", the error URL, the multi-line report) never
reaches an operator or an HTTP client: a rule of ours raises `fail(code, message)` with its own
line, and pydantic's standard errors (bounds, numbers, booleans) are phrased here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError
from pydantic.json_schema import JsonDict
from pydantic_core import PydanticCustomError

INTEGER = re.compile(r"[+-]?[0-9]+")  # ASCII digits and a sign: no underscores or other scripts

# pydantic's error types, phrased as the end of "<name> ...".
_PHRASES = {
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "int_type": "must be an integer",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "finite_number": "must be a finite number",
}
# Errors of a value's bounds: a field's own rule text, when it has one, says it better.
_BOUNDS = frozenset(
    {"greater_than_equal", "greater_than", "less_than_equal", "less_than", "finite_number"}
)


def shown(raw: str, limit: int = 24) -> str:
    """Input echoed in an error, bounded."""
    return repr(raw if len(raw) <= limit else raw[:limit] + "...")


def fail(code: str, message: str) -> PydanticCustomError:
    """A validation error whose type is `code` and whose message is exactly `message`."""
    # The message goes in through the context: braces in echoed input are not placeholders.
    return PydanticCustomError(code, "{message}", {"message": message})


def bad(phrase: str, *, echo: bool = True) -> PydanticCustomError:
    """A rule of ours broken: one_line says "<name> <phrase>, got <input>" (without the input
    when `echo` is false: a URL may hold a password)."""
    return PydanticCustomError("bad_value", "{phrase}", {"phrase": phrase, "echo": echo})


def strict_integer(raw: Any) -> Any:
    """Text as a strict integer ("+3" yes; "5_0", "3.0", "٣" no); other values pass as given."""
    if not isinstance(raw, str):
        return raw
    if not INTEGER.fullmatch(raw.strip()):
        raise bad("must be an integer")
    return int(raw.strip())


def choice(choices: tuple[str, ...], normalize: Callable[[str], str] = str.lower) -> Any:
    """Text that must be one of `choices` once normalised (case, surrounding spaces)."""

    def parse(raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        value = normalize(raw.strip())
        if value not in choices:
            raise bad(f"must be one of {', '.join(choices)}")
        return value

    return parse


def one_line(exc: ValidationError, rules: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The first error of `exc` as (error type, one line naming what was wrong).

    The name is the last text part of the error's location (a variable or a parameter); `rules`
    maps a name to the rule its bounds break ("must be in (0, 1]").
    """
    first = exc.errors(include_url=False)[0]
    names = [str(part) for part in first["loc"] if isinstance(part, str)]
    name = names[-1] if names else "value"
    kind, ctx = first["type"], first.get("ctx") or {}
    if kind not in _PHRASES and "message" in ctx:  # a rule of ours: its line as written
        return kind, str(ctx["message"])
    rule = (rules or {}).get(name) if kind in _BOUNDS else None
    if kind == "bad_value":
        phrase = str(ctx["phrase"])
    else:
        phrase = rule or _PHRASES.get(kind, "is invalid").format(**ctx)
    raw: Any = first.get("input")
    echo = ctx.get("echo", True) and isinstance(raw, str | int | float)
    got = f", got {shown(str(raw))}" if echo else ""
    return kind, f"{name} {phrase}{got}"


def variable(name: str, description: str, rule: str | None = None, **bounds: Any) -> Any:
    """A field set by the environment variable `name` (its model also accepts the field's own
    name: `validate_by_name`), with its description and, optionally, the rule its bounds state in
    an error ("must be positive")."""
    extra: JsonDict = {"env": name, **({"rule": rule} if rule else {})}
    return Field(validation_alias=name, description=description, json_schema_extra=extra, **bounds)


def variables(model: type[BaseModel]) -> dict[str, str]:
    """Environment variable -> field name, for a model declared with `variable(...)`."""
    found: dict[str, str] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and "env" in extra:
            found[str(extra["env"])] = name
    return found


M = TypeVar("M", bound=BaseModel)


def rules(model: type[BaseModel]) -> dict[str, str]:
    """The rule text of each bounded field, by variable and by field name."""
    found: dict[str, str] = {}
    for field, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and "rule" in extra:
            found[str(extra["env"])] = found[field] = str(extra["rule"])
    return found


def replaced(instance: M, changes: Mapping[str, Any]) -> M:
    """A copy of a frozen model with `changes` (field names only), validated like the original;
    a bad or unknown field is a ValueError with one line."""
    model = type(instance)
    unknown = sorted(set(changes) - set(model.model_fields))
    if unknown:
        raise ValueError(f"{model.__name__} has no field {', '.join(unknown)}")
    try:
        return model.model_validate({**instance.__dict__, **changes})
    except ValidationError as exc:
        raise ValueError(one_line(exc, rules(model))[1]) from None
