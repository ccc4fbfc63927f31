"""Compatibility between contract versions, as a classified structural diff.

>>> report = compare({"type": "string"}, {"type": ["string", "null"]})
>>> report.backward, report.forward, [c.code for c in report.changes]
(True, False, ['type-widened'])
"""

from __future__ import annotations

from gateway.contracts.compat.differ import diff
from gateway.contracts.compat.model import Change, Mode, Policy, Report, Schema


def compare(old: Schema, new: Schema, *, policy: Policy = Policy.STRICT) -> Report:
    """Compare two schemas; a change reached twice (both sides of a $ref) counts once."""
    return Report(tuple(dict.fromkeys(diff(old, new, policy=policy))))


__all__ = ["Change", "Mode", "Policy", "Report", "compare", "diff"]
