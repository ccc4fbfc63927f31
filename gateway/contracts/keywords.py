"""Two JSON Schema keywords implemented the way the specification means them.

- ``pattern``: JSON Schema patterns are ECMA-262 regular expressions. There,
  ``$`` (without the multiline flag) matches only at the very end and ``\\d``
  only ASCII digits; Python's ``$`` also matches before a final newline and its
  ``\\d`` matches any Unicode digit, so ``"P0000012345\\n"`` used to pass
  ``^P[0-9]{10}$``-style rules. Patterns are translated and compiled once.
- ``multipleOf``: decided in exact decimal arithmetic, so 19.99 is a multiple
  of 0.01 (float division said it was not).

    >>> bool(ecma_regex("^a$").search("a\\n"))
    False
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators


@functools.lru_cache(maxsize=1024)
def ecma_regex(pattern: str) -> re.Pattern[str]:
    """Compile an ECMA-262 pattern: unescaped ``$`` outside classes means end of input."""
    out, index, in_class = [], 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            out.append(pattern[index : index + 2])
            index += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(r"(?!\n)\Z" if char == "$" and not in_class else char)
        index += 1
    return re.compile("".join(out), re.ASCII)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not ecma_regex(pattern).search(instance):
        yield ValidationError(f"does not match {pattern!r}")


def _exact(number: float | int) -> Fraction:
    return Fraction(str(number)) if isinstance(number, float) else Fraction(number)


def _multiple_of(
    validator: Any, divisor: float | int, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "number"):
        return
    if _exact(instance) % _exact(divisor) != 0:
        yield ValidationError(f"is not a multiple of {divisor}")


ContractValidator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"pattern": _pattern, "multipleOf": _multiple_of}
)
"""Draft 2020-12, with ``pattern`` and ``multipleOf`` as the specification means them."""
