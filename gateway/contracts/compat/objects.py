"""Content models: properties, patternProperties, additionalProperties, and
prefixItems / items.

The schema that governs one member name (or one array position) is compared
on both sides: the declared property if there is one, else the matching
``patternProperties``, else ``additionalProperties`` (absent means ``true``:
an *open* model; ``false`` is *closed*; a schema is *partially open*). Adding
or removing a property is therefore a comparison against what governed that
name before, which is what makes the rules exact for every content model.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from gateway.contracts.compat.model import BOTH, NARROWS, WIDENS, Policy, Schema, escape

if TYPE_CHECKING:
    from gateway.contracts.compat.differ import Differ


def _governing(schema: dict[str, Any], name: str) -> Schema:
    """The subschema an undeclared member ``name`` is validated against."""
    patterns = schema.get("patternProperties", {})
    matching = [s for p, s in patterns.items() if _search(p, name)]
    if matching:
        return matching[0] if len(matching) == 1 else {"allOf": matching}
    return _rest(schema)


def _rest(schema: dict[str, Any]) -> Schema:
    """What governs names nothing declares. Without additionalProperties that is
    unevaluatedProperties (an in-place applicator may evaluate more names; the
    differ reports any change there as undecidable)."""
    return schema.get("additionalProperties", schema.get("unevaluatedProperties", True))


def _search(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return True  # cannot tell: assume it governs the name (a conservative reading)


def _model(governing: Schema) -> str:
    if governing is True or governing == {}:
        return "open"
    if governing is False:
        return "closed"
    return "partially-open"


def compare_objects(d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
    before, after = old.get("properties", {}), new.get("properties", {})
    for name in sorted(set(before) | set(after)):
        where = f"{pointer}/properties/{escape(name)}"
        if name in before and name in after:
            d.diff(before[name], after[name], where)
        elif name in after:
            _member_changed(d, "property-added", _governing(old, name), after[name], where)
        else:
            _member_changed(d, "property-removed", before[name], _governing(new, name), where)
    _patterns(d, old, new, pointer)
    d.diff(
        old.get("additionalProperties", True),
        new.get("additionalProperties", True),
        f"{pointer}/additionalProperties",
    )


def _member_changed(d: Differ, code: str, old: Schema, new: Schema, where: str) -> None:
    """A member name moved between a declared property and the rest of the model."""
    # The model the name moves from or into; its root is chosen by side, not by
    # identity, as both sides may share one object.
    added = code == "property-added"
    model = _model(d.resolve(old if added else new, d.old_root if added else d.new_root, where))
    if model == "open" and d.policy is Policy.LENIENT:
        return  # lenient: undeclared names are assumed absent from data
    nested = d.nested(old, new, where)
    if not nested:
        return
    effect = (any(c.breaks_backward for c in nested), any(c.breaks_forward for c in nested))
    verb = "added to" if code == "property-added" else "removed from"
    d.add(
        f"{code}-{model}-model",
        where,
        effect,
        f"property {verb} an {model} content model"
        if model == "open"
        else f"property {verb} a {model} content model",
    )


def _patterns(d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
    before, after = old.get("patternProperties", {}), new.get("patternProperties", {})
    for pattern in sorted(set(before) | set(after)):
        where = f"{pointer}/patternProperties/{escape(pattern)}"
        if pattern in before and pattern in after:
            d.diff(before[pattern], after[pattern], where)
            continue
        added = pattern in after
        if added:
            nested = d.nested(_rest(old), after[pattern], where)
        else:
            nested = d.nested(before[pattern], _rest(new), where)
        effect = (any(c.breaks_backward for c in nested), any(c.breaks_forward for c in nested))
        if _over_declared(d, pattern, old, new, where, added=added):
            # A declared property the pattern matches is validated by both: it
            # gains the pattern's constraint (narrows) or loses it (widens).
            effect = (True, effect[1]) if added else (effect[0], True)
        if (set(before) | set(after)) - {pattern}:
            effect = BOTH  # overlap with the other patterns cannot be decided
        if any(effect):
            verb = "added" if pattern in after else "removed"
            d.add(f"pattern-property-{verb}", where, effect, f"pattern {pattern!r} {verb}")


def _over_declared(
    d: Differ, pattern: str, old: dict[str, Any], new: dict[str, Any], where: str, *, added: bool
) -> bool:
    """Whether a pattern added (removed) constrains a declared property's name."""
    side = new if added else old
    schema = side["patternProperties"][pattern]
    if _model(d.resolve(schema, d.new_root if added else d.old_root, where)) == "open":
        return False  # a pattern schema that accepts anything constrains nothing
    names = set(old.get("properties", {})) | set(new.get("properties", {}))
    return any(_search(pattern, name) for name in names)


def compare_arrays(d: Differ, old: dict[str, Any], new: dict[str, Any], pointer: str) -> None:
    before, after = old.get("prefixItems", []), new.get("prefixItems", [])
    rest_before, rest_after = old.get("items", True), new.get("items", True)
    for index in range(max(len(before), len(after))):
        where = f"{pointer}/prefixItems/{index}"
        if index < len(before) and index < len(after):
            d.diff(before[index], after[index], where)
            continue
        added = index < len(after)
        nested = (
            d.nested(rest_before, after[index], where)
            if added
            else d.nested(before[index], rest_after, where)
        )
        effect = (any(c.breaks_backward for c in nested), any(c.breaks_forward for c in nested))
        if any(effect):
            verb = "added" if added else "removed"
            d.add(f"prefix-item-{verb}", where, effect, f"position {index} {verb}")
    d.diff(rest_before, rest_after, f"{pointer}/items")


__all__ = ["NARROWS", "WIDENS", "compare_arrays", "compare_objects"]
