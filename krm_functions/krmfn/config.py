"""Typed function configs: each function declares a JSON Schema for its `spec`.

Validation takes the fast path (fastjsonschema, compiled once, fills defaults);
only when that fails is jsonschema loaded, to report *every* problem, one line
each, with the field path.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import fastjsonschema

from .results import ERROR, Field, FunctionError, Result


def envelope(api_version: str, kind: str, spec_schema: dict) -> dict:
    """Schema of a whole function config object around a function's spec schema."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "spec"],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": {"type": "object", "properties": {
                "name": {"type": "string"}, "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "spec": spec_schema,
        },
    }


_checkers: dict[int, tuple[dict, Callable[[Any], Any]]] = {}


def _checker(schema: dict) -> Callable[[Any], Any]:
    # Keyed by identity; the schema is kept alive in the entry so its id cannot be reused.
    entry = _checkers.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = _checkers[id(schema)] = (schema, fastjsonschema.compile(schema, use_default=True))
    return entry[1]


def validate(schema: dict, config: dict, ref: Any = None) -> dict:
    """A validated deep copy of `config` with schema defaults filled in."""
    try:
        valid = _checker(schema)(copy.deepcopy(config))
    except fastjsonschema.JsonSchemaException:
        raise FunctionError(*_all_problems(schema, config, ref)) from None
    _check_integers(schema, config, ref)
    return valid


def check(schema: dict, data: Any, ref: Any = None) -> None:
    """Check `data` against the schema as it is (no copy, no defaults)."""
    try:
        _checker(schema)(data)
    except fastjsonschema.JsonSchemaException:
        raise FunctionError(*_all_problems(schema, data, ref)) from None
    _check_integers(schema, data, ref)


def _check_integers(schema: dict, data: Any, ref: Any) -> None:
    floats = list(_float_integers(schema, data, ()))
    if floats:  # JSON Schema counts 2.0 as an integer; a flag would read `--size=2.0`
        raise FunctionError(*(Result(f"must be a whole number, got {value!r}", ERROR, ref, Field(_path(path), value))
                              for path, value in floats))


def _float_integers(schema: Any, value: Any, path: tuple) -> Any:
    """(path, value) of each float where the schema wants an integer."""
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "integer" and isinstance(value, float):
        yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            sub = (schema.get("properties") or {}).get(key, schema.get("additionalProperties"))
            yield from _float_integers(sub, item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _float_integers(schema.get("items"), item, path + (index,))


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean",
               dict: "object", list: "array", type(None): "null"}


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(root)"


def _all_problems(schema: dict, config: dict, ref: Any) -> list[Result]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    results = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        path = _path(err.absolute_path)
        if err.validator == "additionalProperties":
            known = sorted((err.schema.get("properties") or {}).keys())
            for extra in sorted(set(err.instance) - set(known)):
                where = f"{path}.{extra}" if path != "(root)" else extra
                results.append(Result(f"unknown field (known fields: {', '.join(known)})", ERROR, ref, Field(where)))
            continue
        if err.validator == "required":
            missing = [r for r in err.validator_value if r not in err.instance]
            for name in missing:
                where = f"{path}.{name}" if path != "(root)" else name
                results.append(Result("required field is missing", ERROR, ref, Field(where)))
            continue
        if err.validator == "type":
            got = _JSON_TYPES.get(type(err.instance), "value")
            message = f"must be {err.validator_value}, got {got}" + (f" {repr(err.instance)[:200]}" if err.instance is not None
                                                                      and not isinstance(err.instance, (dict, list))
                                                                      else "")
        elif err.validator == "enum":
            message = f"must be one of {', '.join(map(str, err.validator_value))}; got {err.instance!r}"
        elif err.validator == "const":
            message = f"must be {err.validator_value!r}; got {err.instance!r}"
        else:
            message = err.message
        results.append(Result(message, ERROR, ref, Field(path, err.instance if not isinstance(err.instance, (dict, list)) else None)))
    unique = list({r.line(): r for r in results}.values())  # one problem reached by two schema paths: one line
    return unique or [Result("invalid function config", ERROR, ref)]
