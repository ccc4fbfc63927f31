"""What a compatibility check reports: classified changes and verdicts.

Direction follows the schema-registry convention:

- *backward* compatible: consumers on the new version read data written under
  the old one, i.e. every instance valid under OLD stays valid under NEW;
- *forward* compatible: consumers still on the old version read data written
  under the new one, i.e. every instance valid under NEW is valid under OLD.

A change that makes the set of valid instances smaller *narrows* it (breaks
backward); one that makes it larger *widens* it (breaks forward).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

Schema = Any
"""A JSON Schema: a mapping or a boolean."""

NARROWS = (True, False)
"""(breaks backward, breaks forward) of a change that accepts fewer instances."""
WIDENS = (False, True)
BOTH = (True, True)
"""Both ways, also used wherever the effect cannot be decided."""


def canonical(value: Any) -> str:
    """Equal JSON values give equal strings (1 and 1.0 are the same number)."""
    return json.dumps(_normal(value), sort_keys=True, separators=(",", ":"))


def _normal(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def escape(token: str | int) -> str:
    """One JSON pointer reference token (RFC 6901)."""
    return str(token).replace("~", "~0").replace("/", "~1")


class Mode(StrEnum):
    NONE = "none"
    BACKWARD = "backward"
    FORWARD = "forward"
    FULL = "full"
    BACKWARD_TRANSITIVE = "backward_transitive"
    FORWARD_TRANSITIVE = "forward_transitive"
    FULL_TRANSITIVE = "full_transitive"

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_transitive")

    @property
    def needs_backward(self) -> bool:
        return self.value.startswith(("backward", "full"))

    @property
    def needs_forward(self) -> bool:
        return self.value.startswith(("forward", "full"))


class Policy(StrEnum):
    """How to judge names an *open* content model did not declare.

    ``strict`` (default): set semantics. Old data may carry any undeclared
    name with any value, so giving that name a schema narrows (breaks
    backward) and dropping a declared name widens (breaks forward).
    ``lenient``: assume data never carried undeclared names, as most schema
    registries do; adding or removing a property of an open model is then
    compatible both ways.
    """

    STRICT = "strict"
    LENIENT = "lenient"


@dataclass(frozen=True, slots=True)
class Change:
    code: str
    pointer: str
    """JSON pointer into the schema where the change happened."""
    breaks_backward: bool
    breaks_forward: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "pointer": self.pointer,
            "breaks_backward": self.breaks_backward,
            "breaks_forward": self.breaks_forward,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Report:
    changes: tuple[Change, ...]

    @property
    def backward(self) -> bool:
        return not any(c.breaks_backward for c in self.changes)

    @property
    def forward(self) -> bool:
        return not any(c.breaks_forward for c in self.changes)

    def compatible(self, mode: Mode) -> bool:
        return (not mode.needs_backward or self.backward) and (
            not mode.needs_forward or self.forward
        )

    def breaking(self, mode: Mode) -> list[Change]:
        """The changes that ``mode`` forbids."""
        return [
            c
            for c in self.changes
            if (mode.needs_backward and c.breaks_backward)
            or (mode.needs_forward and c.breaks_forward)
        ]
