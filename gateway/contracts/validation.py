"""Payload validation against a contract's JSON Schema 2020-12, formats on.

Every violation is reported with the JSON pointer (RFC 6901) of the failing
member and a message built from the *schema*, never from the payload, so a
violation can be logged or returned without echoing personal data.

    >>> v = PayloadValidator({"type": "object", "required": ["id"]})
    >>> [x.pointer for x in v.violations({})]
    ['/id']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import SchemaError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

from gateway.contracts.keywords import ContractValidator
from gateway.errors import ContractProblem, InvalidContract, Violation

_TEMPLATES: dict[str, str] = {
    "type": "expected type {value}",
    "enum": "expected one of {value}",
    "const": "expected the value {value}",
    "format": "not a valid '{value}'",
    "pattern": "does not match the pattern {value}",
    "minLength": "shorter than {value} characters",
    "maxLength": "longer than {value} characters",
    "minimum": "less than the minimum {value}",
    "maximum": "greater than the maximum {value}",
    "exclusiveMinimum": "not greater than {value}",
    "exclusiveMaximum": "not less than {value}",
    "multipleOf": "not a multiple of {value}",
    "minItems": "fewer than {value} items",
    "maxItems": "more than {value} items",
    "uniqueItems": "items are not unique",
    "minProperties": "fewer than {value} members",
    "maxProperties": "more than {value} members",
    "required": "required member is missing",
    "additionalProperties": "member is not allowed by the contract",
    "unevaluatedProperties": "member is not allowed by the contract",
    "propertyNames": "member name is not allowed",
    "false": "no value is allowed here",
}
_MAX_SHOWN = 120
_SUBSCHEMA_KEYWORDS = ("allOf", "anyOf", "oneOf", "if", "then", "else", "$ref", "dependentSchemas")


def _refuse_remote(uri: str) -> Resource[Any]:
    """A contract is self-contained: a validator never fetches a schema."""
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


_OFFLINE: Registry[Any] = Registry(retrieve=_refuse_remote)  # type: ignore[call-arg]


def _remote_refs(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if (
                key in ("$ref", "$dynamicRef")
                and isinstance(value, str)
                and not value.startswith("#")
            ):
                yield value
            else:
                yield from _remote_refs(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _remote_refs(item)


def _reference_formats() -> dict[str, Callable[[str], bool]]:
    """The reference's own format functions, for the fast validator to call: formats are
    where the two disagree otherwise (tests/unit/test_validator_agreement.py)."""
    checker = Draft202012Validator.FORMAT_CHECKER

    def make(name: str) -> Callable[[str], bool]:
        return lambda value: checker.conforms(value, name)

    return {name: make(name) for name in checker.checkers}


_FORMATS = _reference_formats()


def _fast_validator(schema: Mapping[str, Any] | bool) -> jsonschema_rs.Validator | None:
    """jsonschema_rs over the same schema: offline (a contract is self-contained), with
    the reference's format functions. Its ``pattern`` (ECMA-262) and ``multipleOf``
    (exact) are what the gateway's own keywords implement (gateway/contracts/keywords.py).
    None when it cannot compile the schema: the reference alone then decides."""
    try:
        return jsonschema_rs.validator_for(
            schema if isinstance(schema, bool) else dict(schema),
            validate_formats=True,
            offline=True,
            formats=_FORMATS,
        )
    except (ValueError, TypeError, jsonschema_rs.ValidationError):
        return None


def pointer(path: Iterable[str | int]) -> str:
    """The RFC 6901 JSON pointer for a sequence of member names and indexes."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


class PayloadValidator:
    """A compiled contract schema that lists every violation of a payload."""

    def __init__(self, schema: Mapping[str, Any] | bool) -> None:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise InvalidContract(
                f"/schema{pointer(exc.absolute_path)}: not valid JSON Schema 2020-12: "
                f"{exc.message[:200]}",
                [ContractProblem(f"/schema{pointer(exc.absolute_path)}", exc.message[:200])],
            ) from exc
        remote = next(_remote_refs(schema), None)
        if remote is not None:
            message = f"refers to '{remote[:80]}': only local references ('#/...') are allowed"
            raise InvalidContract(f"/schema: {message}", [ContractProblem("/schema", message)])
        self._validator = ContractValidator(
            _explicit_false(schema),
            format_checker=Draft202012Validator.FORMAT_CHECKER,
            registry=_OFFLINE,
        )
        self._fast = _fast_validator(schema)

    def violations(self, instance: Any) -> list[Violation]:
        """Every violation, or none. A valid payload (the usual case) is recognised by the
        fast validator; only one it refuses is walked by the reference, which names the
        violations (and has the last word: it may still find none)."""
        if self._fast is not None:
            try:
                if self._fast.is_valid(instance):
                    return []
            except (ValueError, OverflowError):  # a value it cannot take: the reference decides
                pass
        found = {
            (v.pointer, v.keyword): v
            for error in self._validator.iter_errors(instance)
            for v in _explain(error)
        }
        return sorted(found.values(), key=lambda v: (v.pointer, v.keyword))


# additionalProperties, items and unevaluated*: false is reported well as it is.
_ONE_SCHEMA = ("contains", "propertyNames", "not", "if", "then", "else")
_FALSE_KEPT = ("additionalProperties", "items", "unevaluatedProperties", "unevaluatedItems")
_SCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas", "$defs")
_SCHEMA_LISTS = ("prefixItems", "allOf", "anyOf", "oneOf")
_FALSE: dict[str, Any] = {"not": {}}


def _explicit_false(schema: Any) -> Any:
    """The same schema with every ``false`` subschema written as ``{"not": {}}``.

    jsonschema reports a failing ``false`` subschema without its location;
    ``{"not": {}}`` means the same and is reported at the member it refuses.
    """
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _ONE_SCHEMA:
        if key in out:
            out[key] = _FALSE if out[key] is False else _explicit_false(out[key])
    for key in _FALSE_KEPT:
        if isinstance(out.get(key), dict):
            out[key] = _explicit_false(out[key])
    for key in _SCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {
                k: _FALSE if v is False else _explicit_false(v) for k, v in out[key].items()
            }
    for key in _SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_FALSE if v is False else _explicit_false(v) for v in out[key]]
    return out


def _explain(error: ValidationError) -> Iterator[Violation]:
    keyword = str(error.validator)
    if error.validator is None or (keyword == "not" and error.validator_value == {}):
        keyword = "false"  # a false (sub)schema: nothing is allowed here
    path = list(error.absolute_path)
    instance: Any = error.instance
    required: Any = error.validator_value
    if keyword == "required" and isinstance(instance, dict) and isinstance(required, list):
        for name in required:
            if name not in instance:
                yield Violation(pointer([*path, name]), keyword, _TEMPLATES[keyword])
        return
    if keyword in ("additionalProperties", "unevaluatedProperties") and isinstance(instance, dict):
        names = _unexpected_members(error, instance)
        for name in names:
            yield Violation(pointer([*path, name]), keyword, _TEMPLATES[keyword])
        if names:
            return
    yield Violation(pointer(path), keyword, _message(keyword, error.validator_value))


def _unexpected_members(error: ValidationError, instance: dict[str, Any]) -> list[str]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "unevaluatedProperties" and any(k in schema for k in _SUBSCHEMA_KEYWORDS):
        return []  # which members a subschema evaluated is not known here: point at the object
    declared = set(schema.get("properties", {}))
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    return [
        name
        for name in instance
        if name not in declared and not any(p.search(name) for p in patterns)
    ]


def _message(keyword: str, value: Any) -> str:
    template = _TEMPLATES.get(keyword)
    if template is None:
        return f"fails the '{keyword}' rule"
    shown = repr(value) if not isinstance(value, str) else value
    if len(shown) > _MAX_SHOWN:
        shown = shown[: _MAX_SHOWN - 3] + "..."
    return template.format(value=shown)
