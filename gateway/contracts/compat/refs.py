"""Local references on one side of a comparison: JSON pointers, anchors,
embedded resources, and when a ``$ref``'s siblings can be merged into its target."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gateway.contracts.compat.model import Schema, canonical
from gateway.contracts.compat.vocabulary import ADJACENT, ANNOTATIONS, EVALUATORS


def refers(text: str) -> bool:
    return '"$ref"' in text or '"$dynamicRef"' in text


def is_resource(node: Any) -> bool:
    """A schema with its own ``$id`` (a string: a property named "$id" is not)."""
    return isinstance(node, dict) and isinstance(node.get("$id"), str)


def references(schema: Schema) -> Iterator[Any]:
    """Every ``$ref`` and ``$dynamicRef`` value below ``schema`` (over-approximated:
    a member named "$ref" counts too)."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref":
                yield value
            elif key == "$dynamicRef":
                yield None  # its target is found through the dynamic scope: never its own
            yield from references(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from references(item)


def self_contained(schema: Schema) -> bool:
    """A resource with its own ``$id`` whose references are all its own fragments
    means the same wherever it is embedded."""
    return is_resource(schema) and all(
        isinstance(r, str) and r.startswith("#") for r in references(schema)
    )


def embedded(schema: Schema, root: Schema) -> bool:
    """A schema below the root with its own ``$id`` resolves its references
    against itself, not the root, which this differ does not follow."""
    return is_resource(schema) and schema is not root and refers(canonical(schema))


def mergeable(target: Schema, siblings: dict[str, Any]) -> bool:
    """Whether ``{**target, **siblings}`` means the same as ``$ref`` beside siblings.

    Not when both set a keyword, nor when they split a group of keywords that
    read each other (additionalProperties beside a $ref sees only its own
    siblings' properties), nor when the target has unevaluated* (it does not
    see the siblings' evaluations)."""
    if not isinstance(target, dict):
        return False
    ours, theirs = set(target) - ANNOTATIONS, set(siblings) - ANNOTATIONS
    if not theirs:
        return True
    if ours & theirs or ours & set(EVALUATORS):
        return False
    return not any(group & ours and group & theirs for group in ADJACENT)


def resolve_pointer(root: Schema, fragment: str) -> Schema:
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
        if is_resource(node) and refers(canonical(node)):
            return None
    return node


def anchor(root: Schema, name: str) -> Schema:
    """The one subschema of this resource named ``name`` by ``$anchor`` (or
    ``$dynamicAnchor``, which is also a plain anchor); None if not exactly one."""
    found = list(_anchored(root, name, root))
    return found[0] if len(found) == 1 else None


def _anchored(node: Any, name: str, root: Schema) -> Iterator[Any]:
    if isinstance(node, dict):
        if node is not root and is_resource(node):
            return  # another resource: its anchors are its own
        if name in (node.get("$anchor"), node.get("$dynamicAnchor")):
            yield node
        for value in node.values():
            yield from _anchored(value, name, root)
    elif isinstance(node, list):
        for item in node:
            yield from _anchored(item, name, root)
