"""Schema compatibility, one row per schema change.

Every row states what the change does to the *set of valid instances*, derived
from the definitions and not from the checker:

- backward compatible: every instance valid under OLD is valid under NEW;
- forward compatible: every instance valid under NEW is valid under OLD;
- structure the checker cannot decide (if/then/else, unevaluated*, unresolvable
  references) must break both ways, never pass silently.

Rows carry sample instances. They are validated with ``jsonschema`` on both
schemas, which gives two checks over the whole table: the expectation agrees
with the samples (a sample valid under OLD and invalid under NEW witnesses a
backward break, and every break a row expects is witnessed unless the row is
marked undecidable), and the checker is sound on them (whenever it says
"compatible" no sample contradicts it).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from gateway.contracts.compat import Change, Mode, Policy, Report, compare

Verdict = tuple[bool, bool]
"""(backward compatible, forward compatible)."""

SAME: Verdict = (True, True)
NARROWER: Verdict = (False, True)
"""NEW accepts fewer instances: old data may be rejected (breaks backward)."""
WIDER: Verdict = (True, False)
"""NEW accepts more instances: new data may be rejected by old readers (breaks forward)."""
BOTH: Verdict = (False, False)

STRICT, LENIENT = Policy.STRICT, Policy.LENIENT


@dataclass(frozen=True)
class Case:
    id: str
    old: Any
    new: Any
    backward: bool
    forward: bool
    codes: frozenset[str]
    samples: tuple[Any, ...]
    policy: Policy
    pointers: frozenset[str]
    witnessed: bool
    """Every break the row expects is shown by a sample; False where the verdict
    is "undecidable, so both" and one direction has no real counterexample."""


def row(
    id_: str,
    old: Any,
    new: Any,
    verdict: Verdict,
    codes: set[str] | frozenset[str],
    *samples: Any,
    policy: Policy = STRICT,
    pointers: tuple[str, ...] = (),
    witnessed: bool = True,
) -> Case:
    return Case(
        id_,
        old,
        new,
        verdict[0],
        verdict[1],
        frozenset(codes),
        samples,
        policy,
        frozenset(pointers),
        witnessed,
    )


def obj(**members: Any) -> dict[str, Any]:
    """An object schema; ``properties`` given as keyword ``props``."""
    schema: dict[str, Any] = {"type": "object"}
    if "props" in members:
        schema["properties"] = members.pop("props")
    schema.update(members)
    return schema


STR: dict[str, Any] = {"type": "string"}
INT: dict[str, Any] = {"type": "integer"}
NUM: dict[str, Any] = {"type": "number"}


# -- type ------------------------------------------------------------------------

TYPE_ROWS = [
    row(
        "type-null-dropped",
        {"type": ["string", "null"]},
        STR,
        NARROWER,
        {"type-narrowed"},
        None,
        "a",
        1,
        pointers=("/type",),
    ),
    row(
        "type-null-added",
        STR,
        {"type": ["string", "null"]},
        WIDER,
        {"type-widened"},
        None,
        "a",
        pointers=("/type",),
    ),
    row("type-string-to-integer", STR, INT, BOTH, {"type-changed"}, "a", 1),
    # 1.0 is an integer in JSON Schema; 1.5 is only a number.
    row("type-integer-to-number", INT, NUM, WIDER, {"type-widened"}, 1, 1.0, 1.5),
    row("type-number-to-integer", NUM, INT, NARROWER, {"type-narrowed"}, 2, 1.5),
    row("type-added", {}, STR, NARROWER, {"type-narrowed"}, 1, "a"),
    row("type-removed", STR, {}, WIDER, {"type-widened"}, 1, "a"),
    row(
        "type-array-reordered",
        {"type": ["string", "null"]},
        {"type": ["null", "string"]},
        SAME,
        set(),
        None,
        "a",
        1,
    ),
    # "integer" is redundant beside "number": the same numbers are valid.
    row(
        "type-integer-beside-number-dropped",
        {"type": ["integer", "number"]},
        NUM,
        SAME,
        set(),
        1,
        1.5,
        "a",
    ),
    row(
        "type-array-changed",
        {"type": ["integer", "string"]},
        {"type": ["number", "boolean"]},
        BOTH,
        {"type-changed"},
        "a",
        True,
        1.5,
        1,
    ),
]

# -- enum and const --------------------------------------------------------------

ENUM_ROWS = [
    row(
        "enum-shrunk",
        {"enum": ["a", "b", "c"]},
        {"enum": ["a", "b"]},
        NARROWER,
        {"enum-shrunk"},
        "a",
        "c",
        pointers=("/enum",),
    ),
    row(
        "enum-extended",
        {"enum": ["a", "b"]},
        {"enum": ["a", "b", "c"]},
        WIDER,
        {"enum-extended"},
        "a",
        "c",
    ),
    row(
        "enum-changed",
        {"enum": ["a", "b"]},
        {"enum": ["a", "c"]},
        BOTH,
        {"enum-changed"},
        "a",
        "b",
        "c",
    ),
    row("enum-added", STR, {**STR, "enum": ["a"]}, NARROWER, {"enum-added"}, "a", "b"),
    row("enum-removed", {**STR, "enum": ["a"]}, STR, WIDER, {"enum-removed"}, "a", "b"),
    # 1 and 1.0 are the same JSON number.
    row("enum-int-vs-float-equal", {"enum": [1, 2]}, {"enum": [1.0, 2]}, SAME, set(), 1, 1.0, 2, 3),
    row("enum-reordered", {"enum": ["a", "b"]}, {"enum": ["b", "a"]}, SAME, set(), "a", "b"),
    # true is not 1 in JSON Schema.
    row("enum-true-is-not-one", {"enum": [1]}, {"enum": [True]}, BOTH, {"enum-changed"}, 1, True),
]

CONST_ROWS = [
    row(
        "const-added",
        STR,
        {**STR, "const": "a"},
        NARROWER,
        {"const-added"},
        "a",
        "b",
        pointers=("/const",),
    ),
    row("const-removed", {**STR, "const": "a"}, STR, WIDER, {"const-removed"}, "a", "b"),
    row("const-changed", {"const": "a"}, {"const": "b"}, BOTH, {"const-changed"}, "a", "b"),
    row("const-int-vs-float-equal", {"const": 1}, {"const": 1.0}, SAME, set(), 1, 1.0, 2),
    row(
        "const-object-int-vs-float",
        {"const": {"a": 1}},
        {"const": {"a": 1.0}},
        SAME,
        set(),
        {"a": 1},
        {"a": 2},
    ),
]

# -- bounds ----------------------------------------------------------------------
# Each bound moves between 2 and 5. A lower bound raised (or added) rejects
# the sizes between, an upper bound lowered (or added) likewise; the samples
# are every size 0..7, so each break has a witness.

_SIZES = range(8)
_BOUND_SUBJECTS: dict[str, tuple[str, list[Any]]] = {
    "minimum": ("number", [*_SIZES, 1.5, 3.5]),
    "maximum": ("number", [*_SIZES, 1.5, 3.5]),
    "exclusiveMinimum": ("number", [*_SIZES, 1.5, 3.5]),
    "exclusiveMaximum": ("number", [*_SIZES, 1.5, 3.5]),
    "minLength": ("string", ["x" * n for n in _SIZES]),
    "maxLength": ("string", ["x" * n for n in _SIZES]),
    "minItems": ("array", [[0] * n for n in _SIZES]),
    "maxItems": ("array", [[0] * n for n in _SIZES]),
    "minProperties": ("object", [{f"k{i}": i for i in range(n)} for n in _SIZES]),
    "maxProperties": ("object", [{f"k{i}": i for i in range(n)} for n in _SIZES]),
}


def _bound_rows(key: str) -> Iterator[Case]:
    kind, samples = _BOUND_SUBJECTS[key]
    lower = key.startswith(("min", "exclusiveMin"))
    tight, loose = (5, 2) if lower else (2, 5)
    base = {"type": kind}
    at = f"/{key}"
    yield row(
        f"{key}-tightened",
        {**base, key: loose},
        {**base, key: tight},
        NARROWER,
        {"bound-tightened"},
        *samples,
        pointers=(at,),
    )
    yield row(
        f"{key}-loosened",
        {**base, key: tight},
        {**base, key: loose},
        WIDER,
        {"bound-loosened"},
        *samples,
        pointers=(at,),
    )
    yield row(
        f"{key}-added",
        base,
        {**base, key: tight},
        NARROWER,
        {"bound-added"},
        *samples,
        pointers=(at,),
    )
    yield row(
        f"{key}-removed",
        {**base, key: tight},
        base,
        WIDER,
        {"bound-removed"},
        *samples,
        pointers=(at,),
    )


BOUND_ROWS = [
    *(case for key in _BOUND_SUBJECTS for case in _bound_rows(key)),
    row("maximum-int-vs-float-equal", {"maximum": 5}, {"maximum": 5.0}, SAME, set(), 5, 5.5),
    # A count's lower bound of 0 is its default: stating it changes nothing.
    row(
        "min-items-zero-added",
        {"type": "array"},
        {"type": "array", "minItems": 0},
        SAME,
        set(),
        [],
        [1],
    ),
    row("min-length-zero-removed", {**STR, "minLength": 0}, STR, SAME, set(), "", "a"),
]

# -- multipleOf, pattern, format, required ---------------------------------------

MULTIPLE_ROWS = [
    row(
        "multiple-of-added",
        INT,
        {**INT, "multipleOf": 2},
        NARROWER,
        {"multiple-of-added"},
        1,
        2,
        3,
        4,
        pointers=("/multipleOf",),
    ),
    row("multiple-of-removed", {**INT, "multipleOf": 2}, INT, WIDER, {"multiple-of-removed"}, 1, 2),
    # Multiples of 4 are multiples of 2, not the other way round; 2 and 3 overlap.
    row(
        "multiple-of-2-to-4",
        {"multipleOf": 2},
        {"multipleOf": 4},
        NARROWER,
        {"multiple-of-changed"},
        2,
        4,
        6,
        8,
    ),
    row(
        "multiple-of-4-to-2",
        {"multipleOf": 4},
        {"multipleOf": 2},
        WIDER,
        {"multiple-of-changed"},
        2,
        4,
        6,
        8,
    ),
    row(
        "multiple-of-2-to-3",
        {"multipleOf": 2},
        {"multipleOf": 3},
        BOTH,
        {"multiple-of-changed"},
        2,
        3,
        6,
    ),
    row(
        "multiple-of-half-to-one-and-half",
        {"multipleOf": 0.5},
        {"multipleOf": 1.5},
        NARROWER,
        {"multiple-of-changed"},
        0.5,
        1.5,
        3,
    ),
    row(
        "multiple-of-int-vs-float-equal", {"multipleOf": 2}, {"multipleOf": 2.0}, SAME, set(), 2, 3
    ),
]

PATTERN_ROWS = [
    row(
        "pattern-added",
        STR,
        {**STR, "pattern": "^a"},
        NARROWER,
        {"pattern-added"},
        "abc",
        "b",
        1,
        pointers=("/pattern",),
    ),
    row(
        "pattern-changed", {"pattern": "^a"}, {"pattern": "^b"}, BOTH, {"pattern-changed"}, "a", "b"
    ),
    row("pattern-removed", {**STR, "pattern": "^a"}, STR, WIDER, {"pattern-removed"}, "abc", "b"),
]

FORMAT_ROWS = [
    row(
        "format-added",
        STR,
        {**STR, "format": "email"},
        NARROWER,
        {"format-added"},
        "a@b",
        "nope",
        pointers=("/format",),
    ),
    row(
        "format-removed", {**STR, "format": "email"}, STR, WIDER, {"format-removed"}, "a@b", "nope"
    ),
    row(
        "format-changed",
        {**STR, "format": "email"},
        {**STR, "format": "date"},
        BOTH,
        {"format-changed"},
        "a@b",
        "2024-01-31",
    ),
]

REQUIRED_ROWS = [
    row(
        "required-added",
        obj(props={"a": {}}),
        obj(props={"a": {}}, required=["a"]),
        NARROWER,
        {"required-added"},
        {},
        {"a": 1},
        pointers=("/required",),
    ),
    row(
        "required-removed",
        obj(props={"a": {}}, required=["a"]),
        obj(props={"a": {}}),
        WIDER,
        {"required-removed"},
        {},
        {"a": 1},
    ),
    row(
        "required-reordered",
        obj(required=["a", "b"]),
        obj(required=["b", "a"]),
        SAME,
        set(),
        {"a": 1},
        {"a": 1, "b": 2},
    ),
]

# -- properties under each content model -----------------------------------------
# Open: no additionalProperties. Strict policy: old data may already carry an
# undeclared name with any value. Lenient: data never carries undeclared names.

_A = {"a": STR}
_AB = {"a": STR, "b": INT}

PROPERTY_ROWS = [
    row(
        "property-added-open-strict",
        obj(props=_A),
        obj(props=_AB),
        NARROWER,
        {"property-added-open-model"},
        {"a": "x", "b": "x"},
        {"b": 1},
        pointers=("/properties/b",),
    ),
    row(
        "property-added-open-untyped",
        obj(props=_A),
        obj(props={**_A, "b": {}}),
        SAME,
        set(),
        {"b": 1},
        {"a": "x"},
    ),
    row(
        "property-removed-open-strict",
        obj(props=_AB),
        obj(props=_A),
        WIDER,
        {"property-removed-open-model"},
        {"b": "x"},
        {"b": 1},
        pointers=("/properties/b",),
    ),
    row(
        "property-added-open-lenient",
        obj(props=_A),
        obj(props=_AB),
        SAME,
        set(),
        {"a": "x"},
        {"a": "x", "b": 1},
        policy=LENIENT,
    ),
    row(
        "property-removed-open-lenient",
        obj(props=_AB),
        obj(props=_A),
        SAME,
        set(),
        {"a": "x", "b": 1},
        {"a": "x"},
        policy=LENIENT,
    ),
    row(
        "property-added-closed-strict",
        obj(props={"a": {}}, additionalProperties=False),
        obj(props={"a": {}, "b": INT}, additionalProperties=False),
        WIDER,
        {"property-added-closed-model"},
        {"a": 1, "b": 1},
        {"b": "x"},
        pointers=("/properties/b",),
    ),
    row(
        "property-added-closed-lenient",
        obj(props={"a": {}}, additionalProperties=False),
        obj(props={"a": {}, "b": INT}, additionalProperties=False),
        WIDER,
        {"property-added-closed-model"},
        {"a": 1, "b": 1},
        policy=LENIENT,
    ),
    row(
        "property-removed-closed-strict",
        obj(props={"a": {}, "b": INT}, additionalProperties=False),
        obj(props={"a": {}}, additionalProperties=False),
        NARROWER,
        {"property-removed-closed-model"},
        {"a": 1, "b": 1},
        {"a": 1},
    ),
    row(
        "property-removed-closed-lenient",
        obj(props={"a": {}, "b": INT}, additionalProperties=False),
        obj(props={"a": {}}, additionalProperties=False),
        NARROWER,
        {"property-removed-closed-model"},
        {"a": 1, "b": 1},
        policy=LENIENT,
    ),
    # Partially open: additionalProperties is a schema; the new property is
    # compared with what governed the name before.
    row(
        "property-added-partially-open-narrower",
        obj(additionalProperties=STR),
        obj(props={"b": {**STR, "maxLength": 3}}, additionalProperties=STR),
        NARROWER,
        {"property-added-partially-open-model"},
        {"b": "abcdef"},
        {"b": "ab"},
        {"c": 1},
    ),
    row(
        "property-added-partially-open-wider",
        obj(additionalProperties=STR),
        obj(props={"b": {"type": ["string", "integer"]}}, additionalProperties=STR),
        WIDER,
        {"property-added-partially-open-model"},
        {"b": 1},
        {"b": "x"},
    ),
    row(
        "property-added-partially-open-wider-lenient",
        obj(additionalProperties=STR),
        obj(props={"b": {"type": ["string", "integer"]}}, additionalProperties=STR),
        WIDER,
        {"property-added-partially-open-model"},
        {"b": 1},
        policy=LENIENT,
    ),
    row(
        "property-removed-partially-open",
        obj(props={"b": INT}, additionalProperties=STR),
        obj(additionalProperties=STR),
        BOTH,
        {"property-removed-partially-open-model"},
        {"b": 1},
        {"b": "x"},
    ),
    # patternProperties matching the name governs it like a partial model.
    row(
        "property-added-matching-pattern",
        obj(patternProperties={"^b": STR}),
        obj(props={"b": {**STR, "maxLength": 2}}, patternProperties={"^b": STR}),
        NARROWER,
        {"property-added-partially-open-model"},
        {"b": "abc"},
        {"b": "ab"},
    ),
    row(
        "property-removed-matching-pattern",
        obj(props={"b": {**STR, "maxLength": 2}}, patternProperties={"^b": STR}),
        obj(patternProperties={"^b": STR}),
        WIDER,
        {"property-removed-partially-open-model"},
        {"b": "abc"},
    ),
    row(
        "property-added-not-matching-pattern-open",
        obj(patternProperties={"^x": STR}),
        obj(props={"b": INT}, patternProperties={"^x": STR}),
        NARROWER,
        {"property-added-open-model"},
        {"b": "s"},
        {"b": 1},
    ),
    row(
        "property-added-not-matching-pattern-open-lenient",
        obj(patternProperties={"^x": STR}),
        obj(props={"b": INT}, patternProperties={"^x": STR}),
        SAME,
        set(),
        {"xa": "s"},
        {"b": 1},
        policy=LENIENT,
    ),
    row(
        "property-added-not-matching-pattern-closed",
        obj(patternProperties={"^x": STR}, additionalProperties=False),
        obj(props={"b": INT}, patternProperties={"^x": STR}, additionalProperties=False),
        WIDER,
        {"property-added-closed-model"},
        {"b": 1},
        {"xa": "s"},
    ),
]

ADDITIONAL_ROWS = [
    row(
        "additional-properties-true-to-false",
        obj(additionalProperties=True),
        obj(additionalProperties=False),
        NARROWER,
        {"schema-false"},
        {"x": 1},
        {},
        pointers=("/additionalProperties",),
    ),
    row(
        "additional-properties-false-to-true",
        obj(additionalProperties=False),
        obj(additionalProperties=True),
        WIDER,
        {"schema-no-longer-false"},
        {"x": 1},
        {},
    ),
    row(
        "additional-properties-absent-to-false",
        obj(),
        obj(additionalProperties=False),
        NARROWER,
        {"schema-false"},
        {"x": 1},
    ),
    row(
        "additional-properties-schema-narrowed",
        obj(additionalProperties={"type": ["string", "integer"]}),
        obj(additionalProperties=STR),
        NARROWER,
        {"type-narrowed"},
        {"x": 1},
        {"x": "s"},
        pointers=("/additionalProperties/type",),
    ),
    row(
        "additional-properties-schema-widened",
        obj(additionalProperties=STR),
        obj(additionalProperties={"type": ["string", "integer"]}),
        WIDER,
        {"type-widened"},
        {"x": 1},
    ),
]

PATTERN_PROPERTY_ROWS = [
    row(
        "pattern-properties-added",
        obj(),
        obj(patternProperties={"^x": STR}),
        NARROWER,
        {"pattern-property-added"},
        {"xa": 1},
        {"xa": "s"},
        pointers=("/patternProperties/^x",),
    ),
    row(
        "pattern-properties-removed",
        obj(patternProperties={"^x": STR}),
        obj(),
        WIDER,
        {"pattern-property-removed"},
        {"xa": 1},
    ),
    row(
        "pattern-properties-schema-changed",
        obj(patternProperties={"^x": STR}),
        obj(patternProperties={"^x": {**STR, "maxLength": 2}}),
        NARROWER,
        {"bound-added"},
        {"xa": "abc"},
        {"xa": "ab"},
        pointers=("/patternProperties/^x/maxLength",),
    ),
    # x* names lose their constraint, y* names gain one.
    row(
        "pattern-properties-regex-changed",
        obj(patternProperties={"^x": STR}),
        obj(patternProperties={"^y": STR}),
        BOTH,
        {"pattern-property-added", "pattern-property-removed"},
        {"xa": 1},
        {"ya": 1},
    ),
    # A pattern also constrains a declared property whose name it matches:
    # "xa" must now be an integer and a string, while "xb" becomes allowed.
    row(
        "pattern-properties-added-over-declared-property",
        obj(props={"xa": INT}, additionalProperties=False),
        obj(props={"xa": INT}, patternProperties={"^x": STR}, additionalProperties=False),
        BOTH,
        {"pattern-property-added"},
        {"xa": 1},
        {"xb": "s"},
    ),
    # A pattern that accepts anything constrains neither declared nor other names.
    row(
        "pattern-properties-true-added-over-declared-property",
        obj(props={"xa": INT}),
        obj(props={"xa": INT}, patternProperties={"^x": True}),
        SAME,
        set(),
        {"xa": 1},
        {"xb": "s"},
    ),
    row(
        "pattern-properties-removed-over-declared-property",
        obj(
            props={"xa": {"type": ["integer", "string"]}},
            patternProperties={"^x": STR},
            additionalProperties=False,
        ),
        obj(props={"xa": {"type": ["integer", "string"]}}, additionalProperties=False),
        BOTH,
        {"pattern-property-removed"},
        {"xa": 1},
        {"xb": "s"},
    ),
]

# -- arrays ----------------------------------------------------------------------

ARR: dict[str, Any] = {"type": "array"}

ARRAY_ROWS = [
    row(
        "items-narrowed",
        {**ARR, "items": {"type": ["string", "integer"]}},
        {**ARR, "items": STR},
        NARROWER,
        {"type-narrowed"},
        [1],
        ["a"],
        pointers=("/items/type",),
    ),
    row(
        "items-widened",
        {**ARR, "items": STR},
        {**ARR, "items": {"type": ["string", "integer"]}},
        WIDER,
        {"type-widened"},
        [1],
        ["a"],
    ),
    row("items-added", ARR, {**ARR, "items": STR}, NARROWER, {"type-narrowed"}, [1], ["a"]),
    row("items-removed", {**ARR, "items": STR}, ARR, WIDER, {"type-widened"}, [1], ["a"]),
    row(
        "items-true-to-false",
        {**ARR, "items": True},
        {**ARR, "items": False},
        NARROWER,
        {"schema-false"},
        [1],
        [],
        pointers=("/items",),
    ),
    row(
        "prefix-item-added-items-false",
        {**ARR, "prefixItems": [STR], "items": False},
        {**ARR, "prefixItems": [STR, INT], "items": False},
        WIDER,
        {"prefix-item-added"},
        ["a", 1],
        ["a"],
        pointers=("/prefixItems/1",),
    ),
    row(
        "prefix-item-added-items-open",
        {**ARR, "prefixItems": [STR]},
        {**ARR, "prefixItems": [STR, INT]},
        NARROWER,
        {"prefix-item-added"},
        ["a", "b"],
        ["a", 1],
    ),
    row(
        "prefix-item-added-untyped",
        {**ARR, "prefixItems": [STR]},
        {**ARR, "prefixItems": [STR, {}]},
        SAME,
        set(),
        ["a", "b"],
        ["a"],
    ),
    row(
        "prefix-item-removed-items-false",
        {**ARR, "prefixItems": [STR, INT], "items": False},
        {**ARR, "prefixItems": [STR], "items": False},
        NARROWER,
        {"prefix-item-removed"},
        ["a", 1],
        ["a"],
        pointers=("/prefixItems/1",),
    ),
    row(
        "prefix-item-removed-items-open",
        {**ARR, "prefixItems": [STR, INT]},
        {**ARR, "prefixItems": [STR]},
        WIDER,
        {"prefix-item-removed"},
        ["a", "b"],
        ["a", 1],
    ),
    row(
        "prefix-item-schema-changed",
        {**ARR, "prefixItems": [STR]},
        {**ARR, "prefixItems": [INT]},
        BOTH,
        {"type-changed"},
        ["a"],
        [1],
        pointers=("/prefixItems/0/type",),
    ),
    row(
        "items-false-to-schema-after-prefix",
        {**ARR, "prefixItems": [STR], "items": False},
        {**ARR, "prefixItems": [STR], "items": INT},
        WIDER,
        {"schema-no-longer-false"},
        ["a", 1],
        ["a"],
        pointers=("/items",),
    ),
    row(
        "unique-items-added",
        ARR,
        {**ARR, "uniqueItems": True},
        NARROWER,
        {"unique-items-added"},
        [1, 1],
        [1, 2],
        pointers=("/uniqueItems",),
    ),
    row(
        "unique-items-removed",
        {**ARR, "uniqueItems": True},
        ARR,
        WIDER,
        {"unique-items-removed"},
        [1, 1],
        [1, 2],
    ),
    row("unique-items-false-dropped", {**ARR, "uniqueItems": False}, ARR, SAME, set(), [1, 1]),
    row(
        "contains-added",
        ARR,
        {**ARR, "contains": INT},
        NARROWER,
        {"contains-added"},
        ["a"],
        [1],
        pointers=("/contains",),
    ),
    row("contains-removed", {**ARR, "contains": INT}, ARR, WIDER, {"contains-removed"}, ["a"], [1]),
    row(
        "contains-widened",
        {**ARR, "contains": INT},
        {**ARR, "contains": NUM},
        WIDER,
        {"type-widened"},
        [1.5],
        [1],
        pointers=("/contains/type",),
    ),
    # With maxContains, more matching items can exceed the maximum: [1, 1.5]
    # has one integer but two numbers.
    row(
        "contains-widened-under-max-contains",
        {**ARR, "contains": INT, "maxContains": 1},
        {**ARR, "contains": NUM, "maxContains": 1},
        BOTH,
        {"type-widened"},
        [1, 1.5],
        [1.5],
    ),
    row(
        "max-contains-lowered",
        {**ARR, "contains": INT, "maxContains": 3},
        {**ARR, "contains": INT, "maxContains": 1},
        NARROWER,
        {"bound-tightened"},
        [1, 2],
        [1],
    ),
    # minContains defaults to 1: 0 accepts arrays without a match.
    row(
        "min-contains-zero-removed",
        {**ARR, "contains": INT, "minContains": 0},
        {**ARR, "contains": INT},
        NARROWER,
        {"bound-removed"},
        ["a"],
        [1],
    ),
    row(
        "min-contains-zero-added",
        {**ARR, "contains": INT},
        {**ARR, "contains": INT, "minContains": 0},
        WIDER,
        {"bound-added"},
        ["a"],
        [1],
    ),
    row(
        "min-contains-one-added",
        {**ARR, "contains": INT},
        {**ARR, "contains": INT, "minContains": 1},
        SAME,
        set(),
        ["a"],
        [1],
    ),
]

# -- combinators -----------------------------------------------------------------

COMBINATOR_ROWS = [
    row(
        "any-of-branch-added",
        {"anyOf": [STR, INT]},
        {"anyOf": [STR, INT, {"type": "null"}]},
        WIDER,
        {"any-of-branch-added"},
        None,
        "a",
        pointers=("/anyOf/2",),
    ),
    row(
        "any-of-branch-removed",
        {"anyOf": [STR, INT, {"type": "null"}]},
        {"anyOf": [STR, INT]},
        NARROWER,
        {"any-of-branch-removed"},
        None,
        "a",
        pointers=("/anyOf/2",),
    ),
    row(
        "any-of-branch-changed",
        {"anyOf": [STR, INT]},
        {"anyOf": [STR, NUM]},
        WIDER,
        {"type-widened"},
        1.5,
        1,
        pointers=("/anyOf/1/type",),
    ),
    row(
        "any-of-reordered", {"anyOf": [STR, INT]}, {"anyOf": [INT, STR]}, SAME, set(), 1, "a", None
    ),
    row(
        "any-of-added",
        {},
        {"anyOf": [STR, INT]},
        NARROWER,
        {"any-of-added"},
        None,
        "a",
        pointers=("/anyOf",),
    ),
    row("any-of-removed", {"anyOf": [STR, INT]}, {}, WIDER, {"any-of-removed"}, None, "a"),
    row(
        "all-of-branch-added",
        {"allOf": [NUM]},
        {"allOf": [NUM, {"minimum": 0}]},
        NARROWER,
        {"all-of-branch-added"},
        -1,
        1,
        pointers=("/allOf/1",),
    ),
    row(
        "all-of-branch-removed",
        {"allOf": [NUM, {"minimum": 0}]},
        {"allOf": [NUM]},
        WIDER,
        {"all-of-branch-removed"},
        -1,
        1,
    ),
    row(
        "all-of-branch-changed",
        {"allOf": [NUM, {"minimum": 0}]},
        {"allOf": [NUM, {"minimum": 5}]},
        NARROWER,
        {"bound-tightened"},
        3,
        6,
        pointers=("/allOf/1/minimum",),
    ),
    row("all-of-added", NUM, {**NUM, "allOf": [{"minimum": 0}]}, NARROWER, {"all-of-added"}, -1, 1),
    row(
        "all-of-removed", {**NUM, "allOf": [{"minimum": 0}]}, NUM, WIDER, {"all-of-removed"}, -1, 1
    ),
    # oneOf: -1 now matches two branches (rejected), -0.5 now matches one.
    row(
        "one-of-branch-added",
        {"oneOf": [INT, STR]},
        {"oneOf": [INT, STR, {**NUM, "maximum": 0}]},
        BOTH,
        {"one-of-branch-added"},
        -1,
        -0.5,
        1,
        "a",
        pointers=("/oneOf/2",),
    ),
    # 12 matched both branches before; 10.5 only the removed one.
    row(
        "one-of-branch-removed",
        {"oneOf": [INT, {**NUM, "minimum": 10}]},
        {"oneOf": [INT]},
        BOTH,
        {"one-of-branch-removed"},
        12,
        10.5,
        3,
    ),
    # 5 now matches both branches; 5.5 now matches the loosened one.
    row(
        "one-of-branch-changed",
        {"oneOf": [INT, {**NUM, "minimum": 10}]},
        {"oneOf": [INT, {**NUM, "minimum": 0}]},
        BOTH,
        {"bound-loosened"},
        5,
        5.5,
        pointers=("/oneOf/1/minimum",),
    ),
    row(
        "one-of-added",
        NUM,
        {**NUM, "oneOf": [INT, {"minimum": 0}]},
        NARROWER,
        {"one-of-added"},
        1,
        -1,
        0.5,
        -1.5,
    ),
    row(
        "one-of-removed",
        {**NUM, "oneOf": [INT, {"minimum": 0}]},
        NUM,
        WIDER,
        {"one-of-removed"},
        1,
        -1,
    ),
    row(
        "not-added",
        INT,
        {**INT, "not": {"const": 0}},
        NARROWER,
        {"not-added"},
        0,
        1,
        pointers=("/not",),
    ),
    row("not-removed", {**INT, "not": {"const": 0}}, INT, WIDER, {"not-removed"}, 0, 1),
    # Widening what is excluded narrows what is accepted, and vice versa.
    row(
        "not-inner-widened",
        {"not": STR},
        {"not": {"type": ["string", "null"]}},
        NARROWER,
        {"type-widened"},
        None,
        "a",
        1,
        pointers=("/not/type",),
    ),
    row(
        "not-inner-narrowed",
        {"not": {"type": ["string", "null"]}},
        {"not": STR},
        WIDER,
        {"type-narrowed"},
        None,
        "a",
        1,
    ),
    row(
        "not-inner-bound-tightened",
        {"not": {"minimum": 5}},
        {"not": {"minimum": 10}},
        WIDER,
        {"bound-tightened"},
        7,
        3,
        12,
    ),
]

# -- object keywords: dependentRequired, propertyNames ---------------------------

OBJECT_KEYWORD_ROWS = [
    row(
        "dependent-required-added",
        obj(),
        obj(dependentRequired={"a": ["b"]}),
        NARROWER,
        {"dependent-required-added"},
        {"a": 1},
        {"a": 1, "b": 2},
        pointers=("/dependentRequired/a",),
    ),
    row(
        "dependent-required-removed",
        obj(dependentRequired={"a": ["b"]}),
        obj(),
        WIDER,
        {"dependent-required-removed"},
        {"a": 1},
    ),
    row(
        "dependent-required-extended",
        obj(dependentRequired={"a": ["b"]}),
        obj(dependentRequired={"a": ["b", "c"]}),
        NARROWER,
        {"dependent-required-added"},
        {"a": 1, "b": 2},
        {"a": 1, "b": 2, "c": 3},
    ),
    row(
        "dependent-required-name-is-escaped",
        obj(),
        obj(dependentRequired={"a/b": ["c"]}),
        NARROWER,
        {"dependent-required-added"},
        {"a/b": 1},
        pointers=("/dependentRequired/a~1b",),
    ),
    row(
        "property-names-added",
        obj(),
        obj(propertyNames={"maxLength": 3}),
        NARROWER,
        {"property-names-added"},
        {"abcd": 1},
        {"ab": 1},
        pointers=("/propertyNames",),
    ),
    row(
        "property-names-loosened",
        obj(propertyNames={"maxLength": 3}),
        obj(propertyNames={"maxLength": 5}),
        WIDER,
        {"bound-loosened"},
        {"abcd": 1},
        pointers=("/propertyNames/maxLength",),
    ),
]

# -- $ref ------------------------------------------------------------------------

_NODE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "value": INT,
        "next": {"$ref": "#/$defs/node", "description": "the rest of the list"},
    },
}

_EMBEDDED: dict[str, Any] = {
    "$id": "https://example.com/x",
    "$defs": {"a": INT},
    "$ref": "#/$defs/a",
}

REF_ROWS = [
    row(
        "ref-target-changed",
        {"$defs": {"s": STR}, **obj(props={"x": {"$ref": "#/$defs/s"}})},
        {"$defs": {"s": {**STR, "maxLength": 3}}, **obj(props={"x": {"$ref": "#/$defs/s"}})},
        NARROWER,
        {"bound-added"},
        {"x": "abcdef"},
        {"x": "ab"},
        pointers=("/properties/x/maxLength",),
    ),
    row(
        "ref-retargeted-to-equal-definition",
        {"$defs": {"s": STR, "t": STR}, **obj(props={"x": {"$ref": "#/$defs/s"}})},
        {"$defs": {"s": STR, "t": STR}, **obj(props={"x": {"$ref": "#/$defs/t"}})},
        SAME,
        set(),
        {"x": "a"},
        {"x": 1},
    ),
    row(
        "ref-with-sibling-changed",
        {"$defs": {"s": STR}, "$ref": "#/$defs/s", "maxLength": 5},
        {"$defs": {"s": STR}, "$ref": "#/$defs/s", "maxLength": 3},
        NARROWER,
        {"bound-tightened"},
        "abcd",
        "ab",
        pointers=("/maxLength",),
    ),
    # additionalProperties beside a $ref sees only its own siblings, so it
    # also governs "x": NEW rejects {"x": 1} and accepts {"y": "s"}. The
    # $ref and its siblings compare as an allOf of the two.
    row(
        "ref-sibling-additional-properties-ignores-target-properties",
        obj(props={"x": INT}, additionalProperties=False),
        {
            "$defs": {"a": {"properties": {"x": INT}}},
            "$ref": "#/$defs/a",
            "type": "object",
            "additionalProperties": STR,
        },
        BOTH,
        {"all-of-added", "property-removed-open-model", "schema-no-longer-false", "type-widened"},
        {"x": 1},
        {"y": "s"},
    ),
    # A recursive definition whose $ref carries a sibling must still terminate.
    row(
        "recursive-ref-with-sibling",
        {"$defs": {"node": _NODE}, "$ref": "#/$defs/node"},
        {
            "$defs": {"node": {**_NODE, "properties": {**_NODE["properties"], "value": NUM}}},
            "$ref": "#/$defs/node",
        },
        WIDER,
        {"type-widened"},
        {"value": 1, "next": {"value": 1.5}},
        {"value": 1},
        pointers=("/properties/value/type", "/properties/next/properties/value/type"),
    ),
    row(
        "recursive-root-ref",
        obj(props={"v": INT, "children": {"type": "array", "items": {"$ref": "#"}}}),
        obj(props={"v": NUM, "children": {"type": "array", "items": {"$ref": "#"}}}),
        WIDER,
        {"type-widened"},
        {"v": 1, "children": [{"v": 1.5}]},
        {"v": 1},
        pointers=("/properties/v/type",),
    ),
    row(
        "ref-anchor",
        {"$defs": {"s": {"$anchor": "str", **STR}}, **obj(props={"x": {"$ref": "#str"}})},
        {
            "$defs": {"s": {"$anchor": "str", **STR, "maxLength": 3}},
            **obj(props={"x": {"$ref": "#str"}}),
        },
        NARROWER,
        {"bound-added"},
        {"x": "abcdef"},
        {"x": "ab"},
        pointers=("/properties/x/maxLength",),
    ),
    row(
        "ref-percent-encoded-pointer",
        {"$defs": {"a b": STR}, **obj(props={"x": {"$ref": "#/$defs/a%20b"}})},
        {
            "$defs": {"a b": {"type": ["string", "null"]}},
            **obj(props={"x": {"$ref": "#/$defs/a%20b"}}),
        },
        WIDER,
        {"type-widened"},
        {"x": None},
        {"x": "s"},
        pointers=("/properties/x/type",),
    ),
    # The root's own $id is the base of "#..." references: they resolve as usual.
    row(
        "ref-under-root-id",
        {
            "$id": "https://example.com/root",
            "$defs": {"s": STR},
            **obj(props={"x": {"$ref": "#/$defs/s"}}),
        },
        {
            "$id": "https://example.com/root",
            "$defs": {"s": INT},
            **obj(props={"x": {"$ref": "#/$defs/s"}}),
        },
        BOTH,
        {"type-changed"},
        {"x": "s"},
        {"x": 1},
        pointers=("/properties/x/type",),
    ),
    # Two definitions that refer to each other through $refs with siblings.
    row(
        "mutual-recursion-with-siblings",
        {
            "$defs": {
                "a": obj(props={"n": INT, "b": {"$ref": "#/$defs/b", "title": "b"}}),
                "b": obj(props={"a": {"$ref": "#/$defs/a", "title": "a"}}),
            },
            "$ref": "#/$defs/a",
        },
        {
            "$defs": {
                "a": obj(
                    props={"n": {**INT, "minimum": 0}, "b": {"$ref": "#/$defs/b", "title": "b"}}
                ),
                "b": obj(props={"a": {"$ref": "#/$defs/a", "title": "a"}}),
            },
            "$ref": "#/$defs/a",
        },
        NARROWER,
        {"bound-added"},
        {"n": 1, "b": {"a": {"n": -1}}},
        {"n": 1},
        pointers=("/properties/n/minimum", "/properties/b/properties/a/properties/n/minimum"),
    ),
    # The target's unevaluatedProperties does not see the $ref's siblings, so
    # OLD rejects {"y": 1} that NEW, written inline, accepts.
    row(
        "ref-target-unevaluated-beside-sibling-patterns",
        {
            "$defs": {"a": {"properties": {"x": {}}, "unevaluatedProperties": False}},
            "$ref": "#/$defs/a",
            "patternProperties": {"^y": {}},
        },
        {"properties": {"x": {}}, "patternProperties": {"^y": {}}, "unevaluatedProperties": False},
        BOTH,
        {"all-of-removed", "keyword-undecidable"},
        {"y": 1},
        {"x": 1},
        witnessed=False,
    ),
    # Undecidable: the referenced schema is not available here.
    row(
        "ref-unresolvable-local",
        STR,
        {"$ref": "#/$defs/missing"},
        BOTH,
        {"ref-unresolvable"},
        witnessed=False,
        pointers=("",),
    ),
    row(
        "ref-remote",
        STR,
        {"$ref": "https://example.com/schemas/s.json"},
        BOTH,
        {"ref-unresolvable"},
        witnessed=False,
    ),
    row(
        "ref-remote-in-property",
        obj(props={"x": STR}),
        obj(props={"x": {"$ref": "https://example.com/schemas/s.json"}}),
        BOTH,
        {"ref-unresolvable"},
        witnessed=False,
        pointers=("/properties/x",),
    ),
    # "#str" is an anchor, not a JSON pointer to a member named "str".
    row(
        "ref-plain-name-is-not-a-pointer",
        {"str": STR, **obj(props={"x": STR})},
        {"str": STR, **obj(props={"x": {"$ref": "#str"}})},
        BOTH,
        {"ref-unresolvable"},
        witnessed=False,
    ),
    row(
        "identical-remote-ref",
        {"$ref": "https://example.com/s.json"},
        {"$ref": "https://example.com/s.json"},
        SAME,
        set(),
    ),
    # Inside a schema with its own $id, "#/$defs/a" is that resource's $defs.
    row(
        "ref-inside-embedded-resource",
        {
            "$defs": {"a": STR},
            **obj(
                props={
                    "x": {"$id": "https://example.com/x", "$defs": {"a": INT}, "$ref": "#/$defs/a"}
                }
            ),
        },
        {
            "$defs": {"a": STR},
            **obj(
                props={
                    "x": {
                        "$id": "https://example.com/x",
                        "$defs": {"a": {"type": "boolean"}},
                        "$ref": "#/$defs/a",
                    }
                }
            ),
        },
        BOTH,
        {"ref-unresolvable"},
        {"x": 1},
        {"x": True},
        witnessed=False,
    ),
    # An unchanged embedded resource whose references are its own means the
    # same wherever it sits; only the real change counts.
    row(
        "embedded-resource-unchanged-beside-change",
        {"$defs": {"a": STR}, **obj(props={"x": _EMBEDDED, "y": INT})},
        {"$defs": {"a": NUM}, **obj(props={"x": copy.deepcopy(_EMBEDDED), "y": NUM})},
        WIDER,
        {"type-widened"},
        {"x": 1, "y": 1.5},
        {"x": "s"},
        pointers=("/properties/y/type",),
    ),
    row(
        "dynamic-ref-target-changed",
        {"$defs": {"n": {"$dynamicAnchor": "n", **STR}}, **obj(props={"x": {"$dynamicRef": "#n"}})},
        {"$defs": {"n": {"$dynamicAnchor": "n", **INT}}, **obj(props={"x": {"$dynamicRef": "#n"}})},
        BOTH,
        {"keyword-undecidable"},
        {"x": "s"},
        {"x": 1},
    ),
]

# -- undecidable keywords --------------------------------------------------------

UNDECIDABLE_ROWS = [
    row(
        "then-changed",
        obj(
            **{
                "if": {"properties": {"a": {"const": 1}}, "required": ["a"]},
                "then": {"required": ["b"]},
            }
        ),
        obj(
            **{
                "if": {"properties": {"a": {"const": 1}}, "required": ["a"]},
                "then": {"required": ["c"]},
            }
        ),
        BOTH,
        {"keyword-undecidable"},
        {"a": 1, "b": 1},
        {"a": 1, "c": 1},
        pointers=("/then",),
    ),
    row(
        "if-then-added",
        obj(),
        obj(**{"if": {"required": ["a"]}, "then": {"required": ["b"]}}),
        BOTH,
        {"keyword-undecidable"},
        {"a": 1},
        witnessed=False,
    ),
    row(
        "else-removed",
        obj(**{"if": {"required": ["a"]}, "else": {"required": ["b"]}}),
        obj(**{"if": {"required": ["a"]}}),
        BOTH,
        {"keyword-undecidable"},
        {},
        witnessed=False,
    ),
    # A $defs change reached only through "then" changes "then".
    row(
        "defs-change-reached-through-then",
        {
            "$defs": {"n": STR},
            **obj(
                **{"if": {"required": ["a"]}, "then": {"properties": {"a": {"$ref": "#/$defs/n"}}}}
            ),
        },
        {
            "$defs": {"n": INT},
            **obj(
                **{"if": {"required": ["a"]}, "then": {"properties": {"a": {"$ref": "#/$defs/n"}}}}
            ),
        },
        BOTH,
        {"keyword-undecidable"},
        {"a": "s"},
        {"a": 1},
    ),
    row(
        "dependent-schemas-changed",
        obj(dependentSchemas={"a": {"required": ["b"]}}),
        obj(dependentSchemas={"a": {"required": ["c"]}}),
        BOTH,
        {"keyword-undecidable"},
        {"a": 1, "b": 1},
        {"a": 1, "c": 1},
    ),
    row(
        "unevaluated-properties-added",
        obj(props={"a": {}}),
        obj(props={"a": {}}, unevaluatedProperties=False),
        BOTH,
        {"keyword-undecidable"},
        {"b": 1},
        witnessed=False,
        pointers=("/unevaluatedProperties",),
    ),
    row(
        "unevaluated-properties-changed",
        obj(props={"a": {}}, unevaluatedProperties=False),
        obj(props={"a": {}}, unevaluatedProperties=STR),
        BOTH,
        {"keyword-undecidable"},
        {"b": "s"},
        witnessed=False,
    ),
    # unevaluatedProperties: false closes the model, so a new property widens
    # ({"b": 1} was rejected): "b" moves out of a closed model. Which names
    # count as evaluated is not decided structurally, so it is undecidable too.
    row(
        "property-added-beside-unevaluated-properties",
        obj(props={"a": {}}, unevaluatedProperties=False),
        obj(props={"a": {}, "b": INT}, unevaluatedProperties=False),
        BOTH,
        {"keyword-undecidable", "property-added-closed-model"},
        {"b": 1},
        witnessed=False,
    ),
    row(
        "any-of-branch-changed-beside-unevaluated-properties",
        obj(anyOf=[{"properties": {"a": {}}}], unevaluatedProperties=False),
        obj(anyOf=[{"properties": {"a": {}, "b": {}}}], unevaluatedProperties=False),
        BOTH,
        {"keyword-undecidable"},
        {"b": 1},
        witnessed=False,
    ),
    row(
        "prefix-item-added-beside-unevaluated-items",
        {**ARR, "prefixItems": [STR], "unevaluatedItems": False},
        {**ARR, "prefixItems": [STR, {}], "unevaluatedItems": False},
        BOTH,
        {"keyword-undecidable"},
        ["a", 1],
        witnessed=False,
    ),
    row(
        "unknown-keyword-changed",
        {"x-rule": 1},
        {"x-rule": 2},
        BOTH,
        {"keyword-undecidable"},
        1,
        witnessed=False,
    ),
]

# -- boolean schemas -------------------------------------------------------------

BOOLEAN_ROWS = [
    row("true-to-false", True, False, NARROWER, {"schema-false"}, 1, pointers=("",)),
    row("false-to-true", False, True, WIDER, {"schema-no-longer-false"}, 1),
    row("true-to-empty", True, {}, SAME, set(), 1, None),
    row("schema-to-false", STR, False, NARROWER, {"schema-false"}, "a"),
    row("false-to-schema", False, STR, WIDER, {"schema-no-longer-false"}, "a"),
    row(
        "property-true-to-false",
        obj(props={"a": True}),
        obj(props={"a": False}),
        NARROWER,
        {"schema-false"},
        {"a": 1},
        {},
        pointers=("/properties/a",),
    ),
    row(
        "items-false-to-true",
        {**ARR, "items": False},
        {**ARR, "items": True},
        WIDER,
        {"schema-no-longer-false"},
        [1],
        [],
    ),
]

# -- nesting, identity, annotations ----------------------------------------------

_DEEP_OLD = obj(props={"a": obj(props={"b": obj(props={"c/d~e": INT})})})
_DEEP_NEW = obj(props={"a": obj(props={"b": obj(props={"c/d~e": NUM})})})

_RICH = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"}},
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "items"],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "country": {"$ref": "#/$defs/code"},
        "items": {
            "type": "array",
            "minItems": 1,
            "prefixItems": [{"const": "head"}],
            "items": {"anyOf": [INT, {"$ref": "#/$defs/code"}]},
        },
        "kind": {"enum": ["a", "b"]},
        "when": {"if": {"type": "string"}, "then": {"format": "date"}},
    },
}

NESTING_ROWS = [
    row(
        "deep-property-widened",
        _DEEP_OLD,
        _DEEP_NEW,
        WIDER,
        {"type-widened"},
        {"a": {"b": {"c/d~e": 1.5}}},
        pointers=("/properties/a/properties/b/properties/c~1d~0e/type",),
    ),
    row(
        "items-property-tightened",
        {**ARR, "items": obj(props={"x": {"maxLength": 5}})},
        {**ARR, "items": obj(props={"x": {"maxLength": 3}})},
        NARROWER,
        {"bound-tightened"},
        [{"x": "abcd"}],
        pointers=("/items/properties/x/maxLength",),
    ),
    row(
        "two-changes",
        obj(props={"a": INT}),
        obj(props={"a": NUM}, required=["a"]),
        BOTH,
        {"type-widened", "required-added"},
        {},
        {"a": 1.5},
        pointers=("/properties/a/type", "/required"),
    ),
    row(
        "identical-rich-schema",
        _RICH,
        copy.deepcopy(_RICH),
        SAME,
        set(),
        {"id": "0b7e5a4c-3c1e-4a7e-9d55-2a8f0a0c6e11", "items": ["head", 1, "ABC"]},
    ),
    row("identical-boolean", False, False, SAME, set(), 1),
    row(
        "annotations-changed",
        {
            **obj(props={"a": {**STR, "title": "A", "examples": ["x"]}}),
            "title": "Old",
            "description": "d",
        },
        {
            **obj(
                props={
                    "a": {
                        **STR,
                        "title": "B",
                        "examples": ["y"],
                        "default": "z",
                        "deprecated": True,
                    }
                }
            ),
            "title": "New",
            "description": "e",
            "$comment": "c",
        },
        SAME,
        set(),
        {"a": "x"},
        {"a": 1},
    ),
    # Definitions nothing refers to do not validate anything.
    row(
        "unused-definition-changed",
        {"$defs": {"u": STR}, **INT},
        {"$defs": {"u": NUM}, **INT},
        SAME,
        set(),
        1,
        "a",
    ),
]

CASES: list[Case] = [
    *TYPE_ROWS,
    *ENUM_ROWS,
    *CONST_ROWS,
    *BOUND_ROWS,
    *MULTIPLE_ROWS,
    *PATTERN_ROWS,
    *FORMAT_ROWS,
    *REQUIRED_ROWS,
    *PROPERTY_ROWS,
    *ADDITIONAL_ROWS,
    *PATTERN_PROPERTY_ROWS,
    *ARRAY_ROWS,
    *COMBINATOR_ROWS,
    *OBJECT_KEYWORD_ROWS,
    *REF_ROWS,
    *UNDECIDABLE_ROWS,
    *BOOLEAN_ROWS,
    *NESTING_ROWS,
]

cases = pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])


# -- the checks over every row ---------------------------------------------------


def test_table_has_enough_distinct_rows() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) >= 70
    assert len(set(ids)) == len(ids)


@cases
def test_schemas_are_valid_2020_12(case: Case) -> None:
    Draft202012Validator.check_schema(case.old)
    Draft202012Validator.check_schema(case.new)


@cases
def test_verdict_and_codes(case: Case) -> None:
    report = compare(case.old, case.new, policy=case.policy)

    assert (report.backward, report.forward) == (case.backward, case.forward), report.changes
    assert {c.code for c in report.changes} == case.codes, report.changes
    assert case.pointers <= {c.pointer for c in report.changes}, report.changes


def _valid(schema: Any, instance: Any) -> bool:
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return validator.is_valid(instance)


def _admitted(case: Case, writer: Any, instance: Any) -> bool:
    """Whether ``instance`` fits the policy's assumption about data written under ``writer``.

    Lenient policy assumes data never carries names an *open* content model
    did not declare; names a closed or partially open model governs are real.
    """
    if case.policy is not LENIENT or not isinstance(instance, dict) or not isinstance(writer, dict):
        return True
    if writer.get("additionalProperties", True) not in (True, {}):
        return True
    declared = writer.get("properties", {})
    patterns = writer.get("patternProperties", {})
    return all(name in declared or any(re.search(p, name) for p in patterns) for name in instance)


def witnesses(case: Case) -> tuple[list[Any], list[Any]]:
    """Samples that break backward (valid under OLD only) and forward (valid under NEW only)."""
    backward, forward = [], []
    for sample in case.samples:
        in_old, in_new = _valid(case.old, sample), _valid(case.new, sample)
        if in_old and not in_new and _admitted(case, case.old, sample):
            backward.append(sample)
        if in_new and not in_old and _admitted(case, case.new, sample):
            forward.append(sample)
    return backward, forward


@cases
def test_expectation_agrees_with_samples(case: Case) -> None:
    backward, forward = witnesses(case)

    assert not (case.backward and backward), f"expected backward compatible, broken by {backward}"
    assert not (case.forward and forward), f"expected forward compatible, broken by {forward}"
    if case.witnessed:
        assert case.backward or backward, "expected a backward break: add a sample that shows it"
        assert case.forward or forward, "expected a forward break: add a sample that shows it"


@cases
def test_checker_is_sound_on_samples(case: Case) -> None:
    """Whatever the checker calls compatible, no sample contradicts."""
    report = compare(case.old, case.new, policy=case.policy)
    backward, forward = witnesses(case)

    assert not (report.backward and backward), backward
    assert not (report.forward and forward), forward


def test_comparison_is_deterministic_and_deduplicated() -> None:
    old = {
        "$defs": {"s": STR},
        **obj(props={"x": {"$ref": "#/$defs/s"}, "y": {"$ref": "#/$defs/s"}}),
    }
    new = {
        "$defs": {"s": INT},
        **obj(props={"x": {"$ref": "#/$defs/s"}, "y": {"$ref": "#/$defs/s"}}),
    }

    first, second = compare(old, new), compare(old, new)

    assert first == second
    assert [c.pointer for c in first.changes] == ["/properties/x/type", "/properties/y/type"]
    assert len(set(first.changes)) == len(first.changes)


# -- modes -----------------------------------------------------------------------

NARROWING = Change("type-narrowed", "/a", True, False, "narrows")
WIDENING = Change("type-widened", "/b", False, True, "widens")
BREAKING_BOTH = Change("type-changed", "/c", True, True, "both")

REPORTS = {
    "none": Report(()),
    "narrows": Report((NARROWING,)),
    "widens": Report((WIDENING,)),
    "both": Report((NARROWING, WIDENING)),
    "both-in-one": Report((BREAKING_BOTH,)),
}

# mode -> the report kinds it accepts.
ACCEPTS: dict[Mode, set[str]] = {
    Mode.NONE: {"none", "narrows", "widens", "both", "both-in-one"},
    Mode.BACKWARD: {"none", "widens"},
    Mode.FORWARD: {"none", "narrows"},
    Mode.FULL: {"none"},
    Mode.BACKWARD_TRANSITIVE: {"none", "widens"},
    Mode.FORWARD_TRANSITIVE: {"none", "narrows"},
    Mode.FULL_TRANSITIVE: {"none"},
}


def test_every_mode_has_a_row() -> None:
    assert set(ACCEPTS) == set(Mode)


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("kind", list(REPORTS))
def test_compatible_per_mode(mode: Mode, kind: str) -> None:
    assert REPORTS[kind].compatible(mode) is (kind in ACCEPTS[mode])


# mode -> the changes of REPORTS["both"] + BREAKING_BOTH it forbids.
FORBIDS: dict[Mode, list[Change]] = {
    Mode.NONE: [],
    Mode.BACKWARD: [NARROWING, BREAKING_BOTH],
    Mode.FORWARD: [WIDENING, BREAKING_BOTH],
    Mode.FULL: [NARROWING, WIDENING, BREAKING_BOTH],
    Mode.BACKWARD_TRANSITIVE: [NARROWING, BREAKING_BOTH],
    Mode.FORWARD_TRANSITIVE: [WIDENING, BREAKING_BOTH],
    Mode.FULL_TRANSITIVE: [NARROWING, WIDENING, BREAKING_BOTH],
}


@pytest.mark.parametrize("mode", list(Mode))
def test_breaking_per_mode(mode: Mode) -> None:
    report = Report((NARROWING, WIDENING, BREAKING_BOTH))

    assert report.breaking(mode) == FORBIDS[mode]
    assert report.compatible(mode) is (not FORBIDS[mode])


@pytest.mark.parametrize("mode", list(Mode))
def test_transitive_modes_judge_one_comparison_like_their_base(mode: Mode) -> None:
    base = Mode(mode.value.removesuffix("_transitive"))
    assert mode.transitive is (mode is not base)
    for report in REPORTS.values():
        assert report.compatible(mode) is report.compatible(base)
        assert report.breaking(mode) == report.breaking(base)


@pytest.mark.parametrize(
    ("old", "new", "accepted"),
    [
        (STR, {"type": ["string", "null"]}, {Mode.NONE, Mode.BACKWARD, Mode.BACKWARD_TRANSITIVE}),
        ({"type": ["string", "null"]}, STR, {Mode.NONE, Mode.FORWARD, Mode.FORWARD_TRANSITIVE}),
        (STR, INT, {Mode.NONE}),
        (STR, {**STR, "title": "t"}, set(Mode)),
    ],
    ids=["widened", "narrowed", "changed", "annotation"],
)
def test_compared_report_per_mode(old: Any, new: Any, accepted: set[Mode]) -> None:
    report = compare(old, new)

    assert {m for m in Mode if report.compatible(m)} == accepted
    for mode in Mode:
        assert bool(report.breaking(mode)) is (mode not in accepted)
