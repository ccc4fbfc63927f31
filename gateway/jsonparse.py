"""Strict, bounded JSON parsing for bytes that come from outside.

Partners' bodies are parsed once, here, with limits that hold before any
recursion starts: a size cap, a nesting cap (checked by a linear scan, so a
nesting bomb costs at most ``max_depth`` steps), strict UTF-8, no duplicate
member names (two parsers must never see two different documents), and no
``NaN`` / ``Infinity`` or numbers too large to represent.

    >>> parse_json(b'{"a": [1, 2]}', max_bytes=1024, max_depth=8)
    {'a': [1, 2]}
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from gateway.errors import MalformedJSON, PayloadTooLarge

# Possessive, and an unterminated string runs to the end: each byte is scanned
# once, so a body of unbalanced quotes cannot make the pre-scan quadratic.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def parse_json(body: bytes, *, max_bytes: int, max_depth: int) -> Any:
    """Parse ``body`` or raise :class:`MalformedJSON` / :class:`PayloadTooLarge`."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"body is {len(body)} bytes; the limit is {max_bytes}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJSON(f"body is not valid UTF-8 (byte {exc.start})") from exc
    _check_depth(body, max_depth)
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_members,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
        )
    except json.JSONDecodeError as exc:
        raise MalformedJSON(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except ValueError as exc:  # int too long to convert, from the stdlib
        raise MalformedJSON(f"invalid JSON: {exc}") from exc


def _check_depth(body: bytes, max_depth: int) -> None:
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    depth = 0
    for byte in brackets:
        if byte in b"[{":
            depth += 1
            if depth > max_depth:
                raise MalformedJSON(f"JSON nesting is deeper than {max_depth} levels")
        else:
            depth -= 1


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedJSON(f"duplicate member name {json.dumps(key)[:80]}")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise MalformedJSON(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedJSON("number is too large to represent")
    return value
