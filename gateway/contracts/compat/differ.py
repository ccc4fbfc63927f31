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

from typing import Any
from urllib.parse import unquote

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
from gateway.contracts.compat.refs import (
    anchor,
    embedded,
    mergeable,
    refers,
    resolve_pointer,
    self_contained,
)
from gateway.contracts.compat.rules import KNOWN_KEYWORDS, RULES
from gateway.contracts.compat.vocabulary import ANNOTATIONS


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
        return self._roots_equal or not refers(text) or self_contained(old)

    # -- references --------------------------------------------------------

    def resolve(self, schema: Schema, root: Schema, pointer: str) -> Schema:
        """Follow local ``$ref``s; siblings of a ``$ref`` are merged into its target
        where that keeps their meaning, else both become branches of an allOf."""
        for _hop in range(32):
            if not isinstance(schema, dict) or "$ref" not in schema or embedded(schema, root):
                return schema
            target = self._target(schema["$ref"], root, pointer)
            if target is None:
                return None
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            if not siblings:
                schema = target
            elif mergeable(target, siblings):
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
        node = resolve_pointer(root, fragment) if pointer_like else anchor(root, fragment)
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
        if embedded(old, self.old_root) or embedded(new, self.new_root):
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
        known = ANNOTATIONS | KNOWN_KEYWORDS
        for name in sorted((set(old) | set(new)) - known):
            if canonical(old.get(name)) != canonical(new.get(name)):
                self.add(
                    "keyword-undecidable",
                    f"{pointer}/{escape(name)}",
                    BOTH,
                    f"'{name}' changed and its effect cannot be decided",
                )


def diff(old: Schema, new: Schema, *, policy: Policy = Policy.STRICT) -> list[Change]:
    """Every classified change from ``old`` to ``new``."""
    differ = Differ(old, new, policy)
    differ.diff(old, new, "")
    return differ.changes
