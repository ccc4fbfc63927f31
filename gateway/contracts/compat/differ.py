"""The structural diff of two JSON Schema 2020-12 schemas.

Each keyword has a rule that says whether its change narrows the set of
valid instances (breaks backward), widens it (breaks forward), or cannot be
decided here (both: never silently compatible). Subschemas are compared
recursively, local ``$ref`` is resolved on each side, and recursion through
cyclic references stops at a pair already under comparison.

    >>> [c.code for c in diff({"type": "integer"}, {"type": "number"})]
    ['type-widened']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any
from urllib.parse import unquote

from gateway.contracts.compat.combinators import compare_branches
from gateway.contracts.compat.model import (
    BOTH,
    NARROWS,
    WIDENS,
    Change,
    Policy,
    Schema,
    canonical,
    escape,
)
from gateway.contracts.compat.objects import compare_arrays, compare_objects

_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "definitions",
        "$anchor",
        "$dynamicAnchor",
        "$vocabulary",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "contentMediaType",
        "contentEncoding",
        "contentSchema",
    }
)
_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains")
_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains")
_DEFAULT_BOUND = {"minLength": 0, "minItems": 0, "minProperties": 0, "minContains": 1}
"""Bounds that apply when absent: stating one at its default changes nothing, and
minContains 0 accepts arrays without a match, which the default 1 rejects."""
_OPAQUE = (
    "if",
    "then",
    "else",
    "dependentSchemas",
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
)
_OBJECT_MODEL = ("properties", "patternProperties", "additionalProperties")
_ARRAY_MODEL = ("prefixItems", "items")
_IN_PLACE = ("allOf", "anyOf", "oneOf", "if", "then", "else", "dependentSchemas", "$dynamicRef")
_EVALUATORS = {
    "unevaluatedProperties": (*_OBJECT_MODEL, *_IN_PLACE),
    "unevaluatedItems": (*_ARRAY_MODEL, "contains", *_IN_PLACE),
}
"""What decides which members an unevaluated* keyword applies to."""
_ADJACENT = (
    frozenset(_OBJECT_MODEL),
    frozenset(_ARRAY_MODEL),
    frozenset({"contains", "minContains", "maxContains"}),
    frozenset({"if", "then", "else"}),
)
"""Keywords that read their neighbours in the same schema object: splitting one
group between a $ref target and the $ref's siblings changes what they mean."""


class Differ:
    """Compares two root schemas; ``changes`` collects the classified differences."""

    def __init__(self, old_root: Schema, new_root: Schema, policy: Policy) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.policy = policy
        self.changes: list[Change] = []
        self._active: set[tuple[str, str]] = set()
        self._roots_equal = canonical(old_root) == canonical(new_root)

    # -- recording ---------------------------------------------------------

    def add(self, code: str, pointer: str, effect: tuple[bool, bool], detail: str) -> None:
        self.changes.append(Change(code, pointer, effect[0], effect[1], detail))

    def nested(self, old: Schema, new: Schema, pointer: str) -> list[Change]:
        """Diff into a fresh list (for rules that summarise or transform nested changes)."""
        saved, self.changes = self.changes, []
        try:
            self.diff(old, new, pointer)
            return self.changes
        finally:
            self.changes = saved

    def same(self, old: Schema, new: Schema) -> bool:
        """Equal text means equal meaning unless a reference inside points at a
        definition that changed (the roots differ somewhere). ``$dynamicRef``
        counts: its target is found through the roots too."""
        text = canonical(old)
        if text != canonical(new):
            return False
        return self._roots_equal or not _refers(text) or _self_contained(old)

    # -- references --------------------------------------------------------

    def resolve(self, schema: Schema, root: Schema, pointer: str) -> Schema:
        """Follow local ``$ref``s; siblings of a ``$ref`` are merged into its target
        where that keeps their meaning, else both become branches of an allOf."""
        for _hop in range(32):
            if not isinstance(schema, dict) or "$ref" not in schema or _embedded(schema, root):
                return schema
            target = self._target(schema["$ref"], root, pointer)
            if target is None:
                return None
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            if not siblings:
                schema = target
            elif _mergeable(target, siblings):
                schema = {**target, **siblings}
            else:
                return {"allOf": [target, siblings]}
        self.add("ref-unresolvable", pointer, BOTH, "reference chain is too long")
        return None

    def _target(self, ref: Any, root: Schema, pointer: str) -> Schema:
        if not isinstance(ref, str) or not ref.startswith("#"):
            self.add(
                "ref-unresolvable", pointer, BOTH, f"only local references are compared: {ref!r}"
            )
            return None
        fragment = unquote(ref[1:])
        # A fragment that is not a JSON pointer is an anchor, not a member of the root.
        pointer_like = fragment[:1] in ("", "/")
        node = _pointer(root, fragment) if pointer_like else _anchor(root, fragment)
        if node is None:
            self.add("ref-unresolvable", pointer, BOTH, f"{ref} does not resolve here")
        return node

    # -- the walk ----------------------------------------------------------

    def diff(self, old: Schema, new: Schema, pointer: str) -> None:
        if self.same(old, new):  # before resolving: identical remote references are equal
            return
        old = self.resolve(old, self.old_root, pointer)
        new = self.resolve(new, self.new_root, pointer)
        if old is None or new is None or self.same(old, new):
            return
        if _embedded(old, self.old_root) or _embedded(new, self.new_root):
            self.add(
                "ref-unresolvable",
                pointer,
                BOTH,
                "an embedded resource ($id) is the base of its own references; not compared",
            )
            return
        # A cycle: assume consistent, as the recursion decides. Keyed by text,
        # not identity: a $ref with siblings resolves to a fresh dict each time.
        key = (canonical(old), canonical(new))
        if key in self._active:
            return
        self._active.add(key)
        try:
            self._compare(old, new, pointer)
        finally:
            self._active.discard(key)

    def _compare(self, old: Schema, new: Schema, pointer: str) -> None:
        if old is False or new is False or (old is True and new is True):
            self._booleans(old, new, pointer)
            return
        old = {} if old is True else old
        new = {} if new is True else new
        for rule in RULES:
            rule(self, old, new, pointer)
        self._unknown_keywords(old, new, pointer)

    def _booleans(self, old: Schema, new: Schema, pointer: str) -> None:
        if new is False and old is not False:
            self.add("schema-false", pointer, NARROWS, "no value is valid any more")
        elif old is False and new is not False:
            self.add("schema-no-longer-false", pointer, WIDENS, "values are valid now")

    def _unknown_keywords(self, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
        known = _ANNOTATIONS | KNOWN_KEYWORDS
        for name in sorted((set(old) | set(new)) - known):
            if canonical(old.get(name)) != canonical(new.get(name)):
                self.add(
                    "keyword-undecidable",
                    f"{pointer}/{escape(name)}",
                    BOTH,
                    f"'{name}' changed and its effect cannot be decided",
                )


# -- references ------------------------------------------------------------


def _refers(text: str) -> bool:
    return '"$ref"' in text or '"$dynamicRef"' in text


def _is_resource(node: Any) -> bool:
    """A schema with its own ``$id`` (a string: a property named "$id" is not)."""
    return isinstance(node, dict) and isinstance(node.get("$id"), str)


def _references(schema: Schema) -> Iterator[Any]:
    """Every ``$ref`` and ``$dynamicRef`` value below ``schema`` (over-approximated:
    a member named "$ref" counts too)."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref":
                yield value
            elif key == "$dynamicRef":
                yield None  # its target is found through the dynamic scope: never its own
            yield from _references(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _references(item)


def _self_contained(schema: Schema) -> bool:
    """A resource with its own ``$id`` whose references are all its own fragments
    means the same wherever it is embedded."""
    return _is_resource(schema) and all(
        isinstance(r, str) and r.startswith("#") for r in _references(schema)
    )


def _embedded(schema: Schema, root: Schema) -> bool:
    """A schema below the root with its own ``$id`` resolves its references
    against itself, not the root, which this differ does not follow."""
    return _is_resource(schema) and schema is not root and _refers(canonical(schema))


def _mergeable(target: Schema, siblings: dict[str, Any]) -> bool:
    """Whether ``{**target, **siblings}`` means the same as ``$ref`` beside siblings.

    Not when both set a keyword, nor when they split a group of keywords that
    read each other (additionalProperties beside a $ref sees only its own
    siblings' properties), nor when the target has unevaluated* (it does not
    see the siblings' evaluations)."""
    if not isinstance(target, dict):
        return False
    ours, theirs = set(target) - _ANNOTATIONS, set(siblings) - _ANNOTATIONS
    if not theirs:
        return True
    if ours & theirs or ours & set(_EVALUATORS):
        return False
    return not any(group & ours and group & theirs for group in _ADJACENT)


def _pointer(root: Schema, fragment: str) -> Schema:
    """The node a JSON pointer names; None if it does not resolve, or if it
    passes through an embedded resource whose references are relative to that
    resource, not to the root."""
    node = root
    for raw in [p for p in fragment.split("/") if p]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
        if _is_resource(node) and _refers(canonical(node)):
            return None
    return node


def _anchor(root: Schema, name: str) -> Schema:
    """The one subschema of this resource named ``name`` by ``$anchor`` (or
    ``$dynamicAnchor``, which is also a plain anchor); None if not exactly one."""
    found = list(_anchored(root, name, root))
    return found[0] if len(found) == 1 else None


def _anchored(node: Any, name: str, root: Schema) -> Iterator[Any]:
    if isinstance(node, dict):
        if node is not root and _is_resource(node):
            return  # another resource: its anchors are its own
        if name in (node.get("$anchor"), node.get("$dynamicAnchor")):
            yield node
        for value in node.values():
            yield from _anchored(value, name, root)
    elif isinstance(node, list):
        for item in node:
            yield from _anchored(item, name, root)


# -- keyword rules ---------------------------------------------------------

Rule = Callable[[Differ, dict[str, Any], dict[str, Any], str], None]


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
    for key in (*_LOWER, *_UPPER):
        default = _DEFAULT_BOUND.get(key)
        before, after = old.get(key, default), new.get(key, default)
        if before == after:  # also a bound stated at its default
            continue
        where = f"{pointer}/{key}"
        if before is None:
            d.add("bound-added", where, NARROWS, f"'{key}' {after} added")
        elif after is None:
            d.add("bound-removed", where, WIDENS, f"'{key}' {before} removed")
        else:
            tighter = after > before if key in _LOWER else after < before
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
    for key in _OPAQUE:
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
    if key not in _EVALUATORS:
        return False
    # unevaluated* applies to what the other keywords did not evaluate, which
    # is not decided structurally: any change to those is a change to it.
    return any(_evaluation_changed(d, k, old.get(k), new.get(k)) for k in _EVALUATORS[key])


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
    if any(not d.same(old.get(k), new.get(k)) for k in _OBJECT_MODEL):
        compare_objects(d, old, new, pointer)


def _array_rule(d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
    if any(not d.same(old.get(k), new.get(k)) for k in _ARRAY_MODEL):
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
        *_LOWER,
        *_UPPER,
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
        *_OBJECT_MODEL,
        *_ARRAY_MODEL,
        *_OPAQUE,
        "$ref",
    }
)


def diff(old: Schema, new: Schema, *, policy: Policy = Policy.STRICT) -> list[Change]:
    """Every classified change from ``old`` to ``new``."""
    differ = Differ(old, new, policy)
    differ.diff(old, new, "")
    return differ.changes
