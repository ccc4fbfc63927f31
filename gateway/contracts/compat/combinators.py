"""anyOf / allOf / oneOf: branches matched by equality, then by position.

- anyOf: a branch added widens, a branch removed narrows;
- allOf: a branch added narrows, a branch removed widens;
- oneOf: any change may alter which instances match exactly one branch, so
  every change inside or to a oneOf is treated as breaking both ways.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.contracts.compat.model import BOTH, NARROWS, WIDENS

if TYPE_CHECKING:
    from gateway.contracts.compat.differ import Differ

_ADDED = {"anyOf": WIDENS, "allOf": NARROWS, "oneOf": BOTH}
_REMOVED = {"anyOf": NARROWS, "allOf": WIDENS, "oneOf": BOTH}
_KEYWORD_ADDED = {"anyOf": NARROWS, "allOf": NARROWS, "oneOf": NARROWS}
_CODES = {"anyOf": "any-of", "allOf": "all-of", "oneOf": "one-of"}


def compare_branches(d: Differ, key: str, old: Any, new: Any, where: str) -> None:
    code = _CODES[key]
    if old is None or new is None:
        added = old is None
        d.add(
            f"{code}-{'added' if added else 'removed'}",
            where,
            _KEYWORD_ADDED[key] if added else WIDENS,
            f"'{key}' {'added' if added else 'removed'}",
        )
        return
    before = [b for b in old if not any(d.same(b, n) for n in new)]
    after = [b for b in new if not any(d.same(o, b) for o in old)]
    for index, (o, n) in enumerate(zip(before, after, strict=False)):
        _paired(d, key, o, n, f"{where}/{new.index(n)}", index)
    for extra in after[len(before) :]:
        d.add(f"{code}-branch-added", f"{where}/{new.index(extra)}", _ADDED[key], "branch added")
    for extra in before[len(after) :]:
        d.add(
            f"{code}-branch-removed", f"{where}/{old.index(extra)}", _REMOVED[key], "branch removed"
        )


def _paired(d: Differ, key: str, old: Any, new: Any, where: str, _index: int) -> None:
    nested = d.nested(old, new, where)
    for change in nested:
        effect = BOTH if key == "oneOf" else (change.breaks_backward, change.breaks_forward)
        detail = change.detail + (" (inside oneOf)" if key == "oneOf" else "")
        d.add(change.code, change.pointer, effect, detail)
