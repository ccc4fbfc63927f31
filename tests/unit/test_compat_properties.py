"""Properties of the compatibility checker, over schema pairs hypothesis generates.

test_compat_table.py names the verdict for each kind of change; this states what the
verdicts promise for every pair (old, edited old) and every instance tried:

- *backward* compatible: every instance valid under OLD is valid under NEW;
- *forward* compatible: every instance valid under NEW is valid under OLD;
- a schema compared with itself has no changes.

Validity is the gateway's own (PayloadValidator). The checker may be cautious (say a
change breaks when no instance shows it); it must never promise what an instance breaks.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.contracts.compat import Policy, compare
from gateway.contracts.validation import PayloadValidator
from tests.unit.test_validator_agreement import conforming

NAMES = st.sampled_from(["a", "b", "c"])
TEXT = st.text(alphabet="ab", max_size=3)
KEYWORDS: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(["string", "integer", "number", "boolean", "null", "object"])
    | st.lists(st.sampled_from(["string", "integer", "null"]), min_size=1, max_size=3, unique=True),
    "minLength": st.integers(0, 3),
    "maxLength": st.integers(0, 3),
    "minimum": st.integers(-2, 2),
    "maximum": st.integers(-2, 2),
    "exclusiveMinimum": st.integers(-2, 2),
    "enum": st.lists(TEXT | st.integers(-2, 2), min_size=1, max_size=3, unique=True),
    "const": TEXT | st.integers(-2, 2),
    "required": st.lists(NAMES, max_size=3, unique=True),
    "additionalProperties": st.booleans() | st.just({"type": "integer"}),
}
LEAVES = st.fixed_dictionaries(
    {"type": KEYWORDS["type"]},
    optional={k: KEYWORDS[k] for k in ("minLength", "maxLength", "minimum", "maximum", "enum")},
)
SCHEMAS = st.recursive(
    LEAVES,
    lambda inner: st.fixed_dictionaries(
        {"type": st.just("object"), "properties": st.dictionaries(NAMES, inner, max_size=3)},
        optional={
            "required": KEYWORDS["required"],
            "additionalProperties": KEYWORDS["additionalProperties"],
        },
    ),
    max_leaves=4,
)
INSTANCES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([1.5, -0.5]) | TEXT,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(NAMES | st.just("d"), inner),
    max_leaves=6,
)


def subschemas(schema: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if isinstance(schema, dict):
        for name, inner in schema.get("properties", {}).items():
            found += subschemas(inner, (*path, "properties", name))
        if isinstance(schema.get("additionalProperties"), dict):
            found += subschemas(schema["additionalProperties"], (*path, "additionalProperties"))
    return found


@st.composite
def edited(draw: st.DrawFn, schema: Any) -> Any:
    """``schema`` with one keyword of one subschema dropped, set or replaced."""
    new = copy.deepcopy(schema)
    path = draw(st.sampled_from(subschemas(new)))
    node = new
    for key in path:
        node = node[key]
    action = draw(st.sampled_from(["drop", "set", "replace"]))
    if action == "drop" and node:
        del node[draw(st.sampled_from(sorted(node)))]
    elif action == "set":
        name = draw(st.sampled_from(sorted(KEYWORDS)))
        node[name] = draw(KEYWORDS[name])
    else:
        node.clear()
        node.update(draw(LEAVES))
    return new


@st.composite
def pairs(draw: st.DrawFn) -> tuple[Any, Any]:
    old = draw(SCHEMAS)
    new = draw(edited(old))
    if draw(st.booleans()):
        new = draw(edited(new))
    return old, new


@settings(max_examples=250)
@given(pair=pairs(), data=st.data())
def test_a_compatible_verdict_holds_for_every_instance_tried(
    pair: tuple[Any, Any], data: st.DataObject
) -> None:
    """Under the strict policy (set semantics; lenient assumes undeclared names never
    occur, so instances carrying them are outside its promise)."""
    old, new = pair
    report = compare(old, new, policy=Policy.STRICT)
    before, after = PayloadValidator(old), PayloadValidator(new)
    tries = data.draw(
        st.lists(INSTANCES | conforming(old) | conforming(new), min_size=10, max_size=20),
        label="instances",
    )
    for instance in tries:
        valid_before = not before.violations(instance)
        valid_after = not after.violations(instance)
        if report.backward and valid_before:
            assert valid_after, (instance, report.changes)
        if report.forward and valid_after:
            assert valid_before, (instance, report.changes)


@settings(max_examples=150)
@given(schema=SCHEMAS, policy=st.sampled_from(list(Policy)))
def test_a_schema_compared_with_itself_has_no_changes(schema: Any, policy: Policy) -> None:
    report = compare(schema, copy.deepcopy(schema), policy=policy)
    assert report.changes == ()
    assert report.backward
    assert report.forward
