"""One rule per keyword: how a change to it moves the set of valid instances."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from gateway.contracts.compat.combinators import compare_branches
from gateway.contracts.compat.model import BOTH, NARROWS, WIDENS, canonical, escape
from gateway.contracts.compat.objects import compare_arrays, compare_objects
from gateway.contracts.compat.vocabulary import (
    ARRAY_MODEL,
    DEFAULT_BOUND,
    EVALUATORS,
    LOWER,
    OBJECT_MODEL,
    OPAQUE,
    UPPER,
)

if TYPE_CHECKING:
    from gateway.contracts.compat.differ import Differ

Rule = Callable[["Differ", dict[str, Any], dict[str, Any], str], None]


def _types(schema: dict[str, Any]) -> set[str] | None:
    value = schema.get("type")
    if value is None:
        return None
    return {value} if isinstance(value, str) else set(value)


def _covered(kind: str, kinds: set[str] | None) -> bool:
    return kinds is None or kind in kinds or (kind == "integer" and "number" in kinds)


def _type_rule(d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
    before, after = _types(old), _types(new)
    if before == after:
        return
    everything = {"null", "boolean", "object", "array", "number", "string"}
    widened = any(not _covered(t, before) for t in (after or everything))
    narrowed = any(not _covered(t, after) for t in (before or everything))
    code = {
        (True, True): "type-changed",
        (True, False): "type-narrowed",
        (False, True): "type-widened",
    }.get((narrowed, widened))
    if code:
        d.add(
            code,
            f"{pointer}/type",
            (narrowed, widened),
            f"type {sorted(before or ['any'])} -> {sorted(after or ['any'])}",
        )


def _values(values: list[Any]) -> set[str]:
    return {canonical(v) for v in values}


def _enum_rule(d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
    where = f"{pointer}/enum"
    if "enum" not in old and "enum" in new:
        d.add("enum-added", where, NARROWS, "values are now limited to a list")
    elif "enum" in old and "enum" not in new:
        d.add("enum-removed", where, WIDENS, "values are no longer limited to a list")
    elif "enum" in old:
        before, after = _values(old["enum"]), _values(new["enum"])
        effect = (bool(before - after), bool(after - before))
        code = {
            (True, True): "enum-changed",
            (True, False): "enum-shrunk",
            (False, True): "enum-extended",
        }.get(effect)
        if code:
            d.add(
                code,
                where,
                effect,
                f"{len(before - after)} value(s) removed, {len(after - before)} added",
            )


def _presence(code: str, key: str) -> Rule:
    """Added narrows, removed widens, changed cannot be decided (pattern, format, const)."""

    def rule(d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
        if key not in old and key not in new:
            return
        where = f"{pointer}/{key}"
        if key not in old:
            d.add(f"{code}-added", where, NARROWS, f"'{key}' added")
        elif key not in new:
            d.add(f"{code}-removed", where, WIDENS, f"'{key}' removed")
        elif canonical(old[key]) != canonical(new[key]):
            d.add(f"{code}-changed", where, BOTH, f"'{key}' changed; overlap cannot be decided")

    return rule


def _bounds_rule(d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
    for key in (*LOWER, *UPPER):
        default = DEFAULT_BOUND.get(key)
        before, after = old.get(key, default), new.get(key, default)
        if before == after:  # also a bound stated at its default
            continue
        where = f"{pointer}/{key}"
        if before is None:
            d.add("bound-added", where, NARROWS, f"'{key}' {after} added")
        elif after is None:
            d.add("bound-removed", where, WIDENS, f"'{key}' {before} removed")
        else:
            tighter = after > before if key in LOWER else after < before
            code = _bound_code(key in old, key in new, tighter=tighter)
            d.add(code, where, NARROWS if tighter else WIDENS, f"'{key}' {before} -> {after}")


def _bound_code(in_old: bool, in_new: bool, *, tighter: bool) -> str:
    """Named for what the schema text did; the effect is against the default."""
    if not in_old:
        return "bound-added"
    if not in_new:
        return "bound-removed"
    return "bound-tightened" if tighter else "bound-loosened"


def _multiple_rule(d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
    before, after = old.get("multipleOf"), new.get("multipleOf")
    if before == after:
        return
    where = f"{pointer}/multipleOf"
    if before is None:
        d.add("multiple-of-added", where, NARROWS, f"multipleOf {after} added")
    elif after is None:
        d.add("multiple-of-removed", where, WIDENS, f"multipleOf {before} removed")
    else:
        a, b = Fraction(str(before)), Fraction(str(after))
        effect = (
            NARROWS if (b / a).denominator == 1 else WIDENS if (a / b).denominator == 1 else BOTH
        )
        d.add("multiple-of-changed", where, effect, f"multipleOf {before} -> {after}")


def _set_rule(key: str, code: str) -> Rule:
    """Lists whose members each add a constraint (required)."""

    def rule(d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
        before, after = set(old.get(key, [])), set(new.get(key, []))
        where = f"{pointer}/{escape(key)}"  # key is a member name for dependentRequired
        for name in sorted(after - before):
            d.add(f"{code}-added", where, NARROWS, f"'{name}' is now {key}")
        for name in sorted(before - after):
            d.add(f"{code}-removed", where, WIDENS, f"'{name}' is no longer {key}")

    return rule


def _dependent_required_rule(
    d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str
) -> None:
    before, after = old.get("dependentRequired", {}), new.get("dependentRequired", {})
    for name in sorted(set(before) | set(after)):
        sub = _set_rule(name, "dependent-required")
        sub(d, before, after, f"{pointer}/dependentRequired")


def _unique_rule(d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
    before, after = bool(old.get("uniqueItems")), bool(new.get("uniqueItems"))
    if before != after:
        d.add(
            "unique-items-added" if after else "unique-items-removed",
            f"{pointer}/uniqueItems",
            NARROWS if after else WIDENS,
            "uniqueItems changed",
        )


def _subschema_rule(key: str, *, invert: bool = False, counted: bool = False) -> Rule:
    """A keyword holding one subschema (contains, propertyNames, not).

    ``counted``: beside maxContains, a contains schema that matches more items
    can also exceed the maximum, so a change inside it breaks both ways."""

    def rule(d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
        if key not in old and key not in new:
            return
        where = f"{pointer}/{key}"
        if key not in old or key not in new:  # a new constraint narrows, a dropped one widens
            added = key in new
            d.add(
                f"{_kebab(key)}-{'added' if added else 'removed'}",
                where,
                NARROWS if added else WIDENS,
                f"'{key}' {'added' if added else 'removed'}",
            )
            return
        both = counted and ("maxContains" in old or "maxContains" in new)
        for change in d.nested(old[key], new[key], where):
            effect = (change.breaks_backward, change.breaks_forward)
            if both:
                effect = BOTH
            elif invert:
                effect = (effect[1], effect[0])
            d.add(change.code, change.pointer, effect, change.detail)

    return rule


def _kebab(name: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name)


def _opaque_rule(d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
    for key in OPAQUE:
        if _opaque_changed(d, key, old, new):
            d.add(
                "keyword-undecidable",
                f"{pointer}/{escape(key)}",
                BOTH,
                f"'{key}' changed; its effect is not decided structurally",
            )


def _opaque_changed(d: Differ, key: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
    if key not in old and key not in new:
        return False
    # Compared as {key: value} with the differ's notion of sameness: a $ref
    # inside (or the $dynamicRef itself) may reach a definition that changed.
    if not d.same({key: old.get(key)}, {key: new.get(key)}):
        return True
    if key not in EVALUATORS:
        return False
    # unevaluated* applies to what the other keywords did not evaluate, which
    # is not decided structurally: any change to those is a change to it.
    return any(_evaluation_changed(d, k, old.get(k), new.get(k)) for k in EVALUATORS[key])


def _evaluation_changed(d: Differ, key: str, old: Any, new: Any) -> bool:
    """Whether ``key`` may evaluate other members or items than before."""
    if key in ("properties", "patternProperties"):  # their names, not their schemas
        return set(old or {}) != set(new or {})
    if key in ("additionalProperties", "items"):  # they evaluate the rest, whatever their schema
        return (old is None) != (new is None)
    if key == "prefixItems":
        return len(old or []) != len(new or [])
    return not d.same(old, new)


def _branches_rule(key: str) -> Rule:
    def rule(d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
        if key in old or key in new:
            compare_branches(d, key, old.get(key), new.get(key), f"{pointer}/{key}")

    return rule


def _object_rule(d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
    if any(not d.same(old.get(k), new.get(k)) for k in OBJECT_MODEL):
        compare_objects(d, old, new, pointer)


def _array_rule(d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
    if any(not d.same(old.get(k), new.get(k)) for k in ARRAY_MODEL):
        compare_arrays(d, old, new, pointer)


RULES: tuple[Rule, ...] = (
    _type_rule,
    _enum_rule,
    _presence("const", "const"),
    _presence("pattern", "pattern"),
    _presence("format", "format"),
    _bounds_rule,
    _multiple_rule,
    _set_rule("required", "required"),
    _dependent_required_rule,
    _unique_rule,
    _subschema_rule("contains", counted=True),
    _subschema_rule("propertyNames"),
    _subschema_rule("not", invert=True),
    _branches_rule("anyOf"),
    _branches_rule("allOf"),
    _branches_rule("oneOf"),
    _object_rule,
    _array_rule,
    _opaque_rule,
)

KNOWN_KEYWORDS = frozenset(
    {
        "type",
        "enum",
        "const",
        "pattern",
        "format",
        *LOWER,
        *UPPER,
        "multipleOf",
        "required",
        "dependentRequired",
        "uniqueItems",
        "contains",
        "propertyNames",
        "not",
        "anyOf",
        "allOf",
        "oneOf",
        *OBJECT_MODEL,
        *ARRAY_MODEL,
        *OPAQUE,
        "$ref",
    }
)
