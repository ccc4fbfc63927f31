"""Field minimisation: the part of a payload, and of its schema, one consumer may see.

A contract may list per consumer the JSON pointers (RFC 6901) of the members
that consumer may receive. Before signing and encrypting for that recipient
the gateway sends :func:`project` of the payload instead of the payload, so
a member the recipient is not entitled to never reaches it, not even as
ciphertext. :func:`consumer_view` is the schema the recipient can check such
projections against; :func:`check_fields` lists what is wrong with a field
list, so contract loading can refuse it with a precise message.

    >>> schema = {
    ...     "type": "object", "additionalProperties": False, "required": ["id", "patient"],
    ...     "properties": {
    ...         "id": {"type": "string"},
    ...         "patient": {
    ...             "type": "object", "required": ["name", "birthDate"],
    ...             "properties": {"name": {"type": "string"}, "birthDate": {"type": "string"}},
    ...         },
    ...     },
    ... }
    >>> payload = {"id": "R1", "patient": {"name": "Ann", "birthDate": "1961-03-14"}}
    >>> project(payload, ["/patient/birthDate"])
    {'patient': {'birthDate': '1961-03-14'}}
    >>> view = consumer_view(schema, ["/patient/birthDate"])
    >>> view["required"], view["properties"]["patient"]["required"]
    (['patient'], ['birthDate'])
    >>> check_fields(schema, ["/patient/age", "/id"])
    ["/patient/age: no property 'age' is declared at /patient"]

The rules:

- **Members.** A pointer keeps the member it names, whole, and the objects
  on the path to it. ``""`` keeps the whole document; an empty list keeps
  none of an object payload's members (the projection is ``{}``). Overlapping
  pointers are fine (``/patient`` covers ``/patient/sex``). A pointer that
  names a missing member contributes nothing beyond the objects on its path
  that exist: with ``/patient/regionCode`` and a patient without one, the
  projection holds ``"patient": {}``, so a required ``patient`` is still
  there for the view. Member order follows the payload; the payload is never
  changed and the projection shares nothing with it.
- **Arrays are atomic.** A pointer may name a member holding an array (the
  whole array is received) but never reach inside one: ``/basis`` is a valid
  field, ``/basis/0`` is not. Keeping only some items would renumber them and
  break ``minItems``, ``uniqueItems``, ``prefixItems`` and ``contains`` in
  ways a view cannot restate. :func:`check_fields` refuses such pointers;
  :func:`project` is total and lets a pointer that meets anything but an
  object before its end (an array, a string, null) contribute nothing there.
- **Only plain objects are pruned.** Every schema a pointer passes *through*
  (the root included, unless ``""`` is listed) must say ``type: object`` and
  declare the next name in its ``properties``. Such a schema may not use
  ``$ref``, ``$dynamicRef``, ``allOf``, ``anyOf`` or ``oneOf``: they can
  declare or constrain members in ways the view cannot derive structurally,
  so the contract author must restructure (declare the members inline) or
  list the object whole. A member the pointer descends into may not also be
  governed by a ``patternProperties`` pattern (it would see a pruned object).
- **The view.** The contract schema with every pruned object reduced to its
  kept ``properties`` (a whole member keeps its whole subschema); ``required``
  and ``dependentRequired`` lose the names that are not kept;
  ``additionalProperties``, ``patternProperties``, ``propertyNames``,
  ``maxProperties`` and ``unevaluatedProperties`` stay as they were (an object
  closed before stays closed, an open one stays open, so it would accept a
  removed name as an unknown member). Rules about the whole object that a
  subset of its members can break are dropped, which only widens the view:
  ``minProperties``, ``const``, ``enum``, ``not``, ``if``/``then``/``else``
  and ``dependentSchemas`` (a condition such as "unfit requires reasons"
  cannot be stated over a projection that may lack either member), and the
  ``default`` and ``examples`` annotations. Beside ``unevaluatedProperties``
  the conditionals cannot be dropped (their evaluations count) and are refused.
- **References.** ``$defs`` stay. Every local ``$ref`` the view still holds
  (inside kept subtrees) must resolve in the view to what it resolved to in
  the contract; one into a pruned part (``#/properties/...``, ``#``) is refused.

So for every payload valid under the contract and every field list
:func:`check_fields` accepts, ``project(payload, fields)`` is valid under
``consumer_view(schema, fields)``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeAlias

from gateway.contracts.compat.refs import anchor, resolve_pointer
from gateway.contracts.keywords import ecma_regex
from gateway.contracts.migration import tokens
from gateway.contracts.validation import pointer
from gateway.errors import InvalidContract

_Tree: TypeAlias = dict[str, "_Tree | None"]
"""The kept members by name; ``None`` for a member kept whole."""

_REFUSED = ("$ref", "$dynamicRef", "allOf", "anyOf", "oneOf")
_CONDITIONALS = ("if", "then", "else", "dependentSchemas")
_DROPPED = frozenset(
    {*_CONDITIONALS, "minProperties", "const", "enum", "not", "default", "examples"}
)
_REF_KEYWORDS = ("$ref", "$dynamicRef")


def project(payload: Any, pointers: Sequence[str]) -> Any:
    """A new document holding only the members ``pointers`` name (see the module rules).

    A payload that is not an object projects to ``{}`` unless ``""`` is listed.
    Raises ``ValueError`` if a pointer is not an RFC 6901 pointer.
    """
    tree, bad = _parse(pointers)
    if bad:
        raise ValueError(bad[0])
    if tree is None:
        return copy.deepcopy(payload)
    return _pick(payload, tree) if isinstance(payload, dict) else {}


def consumer_view(
    schema: Mapping[str, Any] | bool, pointers: Sequence[str]
) -> dict[str, Any] | bool:
    """The JSON Schema the projections of valid payloads to ``pointers`` satisfy.

    Raises ``ValueError`` naming every problem :func:`check_fields` reports.
    """
    view, problems = _view(schema, pointers)
    if problems:
        raise ValueError("cannot derive the consumer's view: " + "; ".join(problems))
    return view


def check_fields(schema: Mapping[str, Any] | bool, pointers: Sequence[str]) -> list[str]:
    """What is wrong with a consumer's field list, one ``"<where>: <why>"`` each.

    ``<where>`` is the member's pointer (``the root`` for the document), or for
    a reference the view would break, the schema location of that ``$ref``.
    An empty list means the list is usable: :func:`consumer_view` succeeds.
    """
    return _view(schema, pointers)[1]


def _parse(pointers: Sequence[str]) -> tuple[_Tree | None, list[str]]:
    """The tree of kept members (``None``: the whole document) and the malformed pointers."""
    if isinstance(pointers, str):
        raise TypeError("pointers must be a sequence of JSON pointers, not one string")
    root: _Tree = {}
    whole, bad = False, []
    for text in pointers:
        try:
            path = tokens(text)
        except InvalidContract as exc:
            bad.append(f"{_shown(text)}: {exc.detail}")
            continue
        if not path:
            whole = True
        _insert(root, path)
    return (None if whole else root), bad


def _insert(tree: _Tree, path: list[str]) -> None:
    node = tree
    for token in path[:-1]:
        child = node.setdefault(token, {})
        if child is None:
            return  # an ancestor is already kept whole
        node = child
    if path:
        node[path[-1]] = None


def _pick(value: dict[str, Any], tree: _Tree) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, child in value.items():
        if name not in tree:
            continue
        below = tree[name]
        if below is None:
            out[name] = copy.deepcopy(child)
        elif isinstance(child, dict):
            out[name] = _pick(child, below)
    return out


def _view(
    schema: Mapping[str, Any] | bool, pointers: Sequence[str]
) -> tuple[dict[str, Any] | bool, list[str]]:
    tree, problems = _parse(pointers)
    if tree is None:
        whole = copy.deepcopy(schema)
        return (whole if isinstance(whole, bool) else dict(whole)), problems
    problems += _problems(schema, tree, [])
    if problems or not isinstance(schema, Mapping):
        return False, problems
    view = _prune(schema, tree)
    return view, _reference_problems(schema, view)


def _problems(schema: Any, tree: _Tree, path: list[str]) -> Iterator[str]:
    """The problems of pruning ``schema``, at member ``path``, to ``tree``."""
    at, listed = (pointer(path), pointer(path)) if path else ("the root", '""')
    if not _is_object(schema):
        yield _not_object(at, listed, schema)
        return
    for keyword in _REFUSED:
        if keyword in schema:
            yield (
                f"{at}: uses '{keyword}', so its members cannot be derived structurally; "
                f"declare them in 'properties', or list {listed} whole"
            )
    if "unevaluatedProperties" in schema and any(k in schema for k in _CONDITIONALS):
        yield f"{at}: has 'unevaluatedProperties' beside a conditional, which cannot be pruned"
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    for name, below in tree.items():
        here = pointer([*path, name])
        if name not in properties:
            yield f"{here}: no property '{_shown(name)}' is declared at {at}"
        elif below is not None:
            pattern = next((p for p in patterns if _matches(p, name)), None)
            if pattern is not None:
                yield f"{here}: is also governed by patternProperties '{_shown(pattern)}'"
            yield from _problems(properties[name], below, [*path, name])


def _is_object(schema: Any) -> bool:
    return isinstance(schema, Mapping) and schema.get("type") in ("object", ["object"])


def _not_object(at: str, listed: str, schema: Any) -> str:
    if isinstance(schema, Mapping) and schema.get("type") in ("array", ["array"]):
        return f"{at}: is an array; arrays are received whole, so list {listed} itself"
    return (
        f"{at}: is not declared as an object (type: object), "
        "so a field list cannot name members inside it"
    )


def _matches(pattern: str, name: str) -> bool:
    try:
        return ecma_regex(pattern).search(name) is not None
    except re.error:
        return True  # cannot tell: assume it governs the name


def _prune(schema: Mapping[str, Any], tree: _Tree) -> dict[str, Any]:
    out = {k: copy.deepcopy(v) for k, v in schema.items() if k not in _DROPPED}
    if "properties" in schema:
        kept: dict[str, Any] = {}
        for name, sub in schema["properties"].items():
            if name in tree:
                below = tree[name]
                kept[name] = copy.deepcopy(sub) if below is None else _prune(sub, below)
        out["properties"] = kept
    if "required" in schema:
        out["required"] = [name for name in schema["required"] if name in tree]
    if "dependentRequired" in schema:
        out["dependentRequired"] = {
            name: [other for other in others if other in tree]
            for name, others in schema["dependentRequired"].items()
            if name in tree
        }
    return out


def _reference_problems(schema: Mapping[str, Any], view: dict[str, Any]) -> list[str]:
    """References the view keeps that no longer mean what they meant in the contract."""
    problems = []
    for where, ref in _references(view, []):
        target = _target(view, ref)
        if target is None or target != _target(schema, ref):
            problems.append(
                f"{pointer(where)}: '{_shown(ref)}' refers to a part of the schema "
                "the consumer's view does not keep"
            )
    return problems


def _references(node: Any, where: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    """Each local reference in a schema, with the schema location holding it."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _REF_KEYWORDS and isinstance(value, str):
                yield [*where, key], value
            else:
                yield from _references(value, [*where, key])
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _references(item, [*where, index])


def _target(root: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#"):
        return None  # not local: PayloadValidator refuses the schema anyway
    fragment = ref[1:]
    if fragment == "" or fragment.startswith("/"):
        return resolve_pointer(dict(root), fragment)
    return anchor(dict(root), fragment)


def _shown(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."
