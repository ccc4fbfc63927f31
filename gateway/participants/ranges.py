"""Version ranges in participant files: which versions of a contract are asked for.

A range is space-separated comparators, all of which a version must satisfy:
``>=1.2.0``, ``>1.2.0``, ``<=2.0.0``, ``<2.0.0``, ``=1.2.0`` or ``1.2.0``,
``^1.2.0`` (same major: ``>=1.2.0 <2.0.0``; ``^0.3.1`` stays within 0.3),
``~1.2.0`` (same minor: ``>=1.2.0 <1.3.0``), and ``*`` (any; the default).

    >>> VersionRange.parse(">=1.1.0 <2.0.0").admits(Version(1, 4, 2))
    True
    >>> VersionRange.parse("^1.2.0").admits(Version(2, 0, 0))
    False
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from gateway.contracts.model import Version

_COMPARATOR = re.compile(
    r"(>=|<=|>|<|=|\^|~)?(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})"
)
_TESTS: dict[str, Callable[[Version, Version], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}


@dataclass(frozen=True, slots=True)
class VersionRange:
    text: str
    bounds: tuple[tuple[str, Version], ...]

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """Raise ValueError naming the part that is not a comparator."""
        parts = text.split()
        if parts in ([], ["*"]):
            return cls("*", ())
        bounds: list[tuple[str, Version]] = []
        for part in parts:
            match = _COMPARATOR.fullmatch(part)
            if match is None:
                raise ValueError(
                    f"'{part[:40]}' is not a version comparator like >=1.2.0, <2.0.0, ^1.2.0 "
                    "or ~1.2.0"
                )
            op, version = match.group(1) or "=", Version(*(int(g) for g in match.groups()[1:]))
            bounds += _expand(op, version)
        return cls(" ".join(parts), tuple(bounds))

    def admits(self, version: Version) -> bool:
        return all(_TESTS[op](version, bound) for op, bound in self.bounds)

    def __str__(self) -> str:
        return self.text


def _expand(op: str, v: Version) -> list[tuple[str, Version]]:
    if op == "^":
        upper = Version(v.major + 1, 0, 0) if v.major else Version(0, v.minor + 1, 0)
        return [(">=", v), ("<", upper)]
    if op == "~":
        return [(">=", v), ("<", Version(v.major, v.minor + 1, 0))]
    return [(op, v)]
