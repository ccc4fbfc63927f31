"""Declarative payload upgrades from one contract version to the next.

A contract version may say how to turn a payload of the previous version
into one of its own, with four operations on JSON pointers::

    migration:
      from: 1.0.0
      steps:
        - rename: {from: /patient/sex, to: /patient/gender}
        - default: {pointer: /priority, value: normal}
        - drop: /legacyCode
        - map: {pointer: /urgency, values: {emergency: urgent}}

``rename`` moves a member (creating missing parent objects), ``default``
sets a member that is absent (creating missing parent objects), ``drop``
removes one, ``map`` replaces string values. Pointers may pass through
arrays by index; ``rename`` and ``default`` place object members only. Steps
that find nothing to act on, or cannot act, leave the payload as it was.

    >>> m = Migration.parse({"from": "1.0.0", "steps": [{"drop": "/a"}]})
    >>> m.apply({"a": 1, "b": 2})
    {'b': 2}
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidContract

_INDEX = re.compile(r"0|[1-9][0-9]*")
"""An array index as RFC 6901 writes it: ASCII digits, no leading zero."""
_BAD_ESCAPE = re.compile(r"~(?![01])")


def tokens(pointer: str) -> list[str]:
    """The reference tokens of an RFC 6901 pointer (``""`` is the whole document)."""
    if pointer == "":
        return []
    if not pointer.startswith("/") or _BAD_ESCAPE.search(pointer):
        raise InvalidContract(f"'{pointer[:80]}' is not a JSON pointer")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _index(token: str, items: list[Any]) -> int | None:
    """The position ``token`` names in ``items``, if it names an existing item."""
    if _INDEX.fullmatch(token) and int(token) < len(items):
        return int(token)
    return None


def _child(node: Any, token: str) -> tuple[bool, Any]:
    if isinstance(node, dict) and token in node:
        return True, node[token]
    if isinstance(node, list):
        index = _index(token, node)
        if index is not None:
            return True, node[index]
    return False, None


def _parent(document: Any, path: list[str], *, create: bool) -> Any:
    """The container of the member ``path`` names; ``create`` adds missing objects."""
    node = document
    for token in path[:-1]:
        found, child = _child(node, token)
        if not found and create and isinstance(node, dict):
            found, child = True, node.setdefault(token, {})
        if not found:
            return None
        node = child
    return node


def _locate(document: Any, path: list[str]) -> tuple[Any, Any] | None:
    """The container holding the member ``path`` names and its key there, if it exists."""
    parent = _parent(document, path, create=False)
    if isinstance(parent, dict) and path[-1] in parent:
        return parent, path[-1]
    if isinstance(parent, list):
        index = _index(path[-1], parent)
        if index is not None:
            return parent, index
    return None


def _put(document: Any, path: list[str], value: Any, *, only_if_absent: bool) -> bool:
    """Set an object member (creating missing parent objects); False if it cannot go there."""
    parent = _parent(document, path, create=True)
    if not isinstance(parent, dict):
        return False
    if not (only_if_absent and path[-1] in parent):
        parent[path[-1]] = value
    return True


@dataclass(frozen=True, slots=True)
class Step:
    operation: str
    arguments: Any

    def apply(self, document: Any) -> None:
        args = self.arguments
        if self.operation == "rename":
            self._rename(document, tokens(args["from"]), tokens(args["to"]))
        elif self.operation == "default":
            value = copy.deepcopy(args["value"])
            _put(document, tokens(args["pointer"]), value, only_if_absent=True)
        elif self.operation == "drop":
            found = _locate(document, tokens(args))
            if found is not None:
                container, key = found
                del container[key]
        elif self.operation == "map":
            self._map(document, tokens(args["pointer"]), args["values"])

    @staticmethod
    def _rename(document: Any, source: list[str], target: list[str]) -> None:
        found = _locate(document, source)
        if found is None:
            return
        container, key = found
        before = list(container.items()) if isinstance(container, dict) else None
        value = container.pop(key)
        if _put(document, target, value, only_if_absent=False):
            return
        # The target cannot hold a member (its parent is a string, an array, ...):
        # leave the document as it was rather than lose the value.
        if before is None:
            container.insert(key, value)
        else:
            container.clear()
            container.update(before)

    @staticmethod
    def _map(document: Any, path: list[str], values: Mapping[str, Any]) -> None:
        found = _locate(document, path)
        if found is None:
            return
        container, key = found
        value = container[key]
        if isinstance(value, str) and value in values:
            container[key] = copy.deepcopy(values[value])


@dataclass(frozen=True, slots=True)
class Migration:
    source: str
    """The version this migration upgrades from."""
    steps: tuple[Step, ...]

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Migration:
        steps = tuple(Step(*next(iter(step.items()))) for step in data["steps"])
        for step in steps:  # every pointer must parse before the contract is accepted
            args = step.arguments
            for pointer in (
                [args]
                if isinstance(args, str)
                else [v for k, v in args.items() if k in ("from", "to", "pointer")]
            ):
                if not tokens(pointer):
                    raise InvalidContract("a migration step cannot act on the whole document")
        return cls(str(data["from"]), steps)

    def apply(self, payload: Any) -> Any:
        """A migrated copy of ``payload``; the original is left untouched."""
        document = copy.deepcopy(payload)
        for step in self.steps:
            step.apply(document)
        return document
