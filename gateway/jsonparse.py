"""Strict, bounded JSON parsing for bytes that come from outside.

Partners' bodies are parsed once, here, with limits: a size cap (before
anything else), a nesting cap (checked on the parsed value; a nesting bomb
stops the C parser at the interpreter's recursion limit, a thousand levels,
and is refused the same way), strict UTF-8 (no escaped lone surrogates
either), no duplicate member names (two parsers must never see two
different documents), and no ``NaN`` /
``Infinity`` or numbers too large to represent.

    >>> parse_json(b'{"a": [1, 2]}', max_bytes=1024, max_depth=8)
    {'a': [1, 2]}
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from gateway.errors import MalformedJSON, PayloadTooLarge


def parse_json(body: bytes, *, max_bytes: int, max_depth: int) -> Any:
    """Parse ``body`` or raise :class:`MalformedJSON` / :class:`PayloadTooLarge`."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"body is {len(body)} bytes; the limit is {max_bytes}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJSON(f"body is not valid UTF-8 (byte {exc.start})") from exc
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_members,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
        )
    except RecursionError:  # nested past the interpreter's limit: far past any max_depth
        raise MalformedJSON(f"JSON nesting is deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise MalformedJSON(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except ValueError as exc:  # int too long to convert, from the stdlib
        raise MalformedJSON(f"invalid JSON: {exc}") from exc
    _check_depth(value, max_depth)
    if _SURROGATE_ESCAPE.search(body):  # rare: a walk over every string only then
        _check_strings(value)
    return value


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""``\\uD800``-``\\uDFFF``: half of a pair, or a lone surrogate (then refused)."""


def _check_strings(value: Any) -> None:
    """Every member name and string is Unicode text: an escaped lone surrogate
    (``"\\ud800"``) is not I-JSON (RFC 7493) and cannot be written as UTF-8 again."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            items = [*node.keys(), *node.values()]
        else:
            items = node if isinstance(node, list) else [node]
        for item in items:
            if isinstance(item, dict | list):
                stack.append(item)
            elif isinstance(item, str) and not _encodable(item):
                raise MalformedJSON("a string holds a lone surrogate escape (\\uD800-\\uDFFF)")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_depth(value: Any, max_depth: int) -> None:
    """Objects and arrays nested at most ``max_depth`` deep (the outermost is 1). Walked
    after parsing (the C parser refuses what would exhaust the stack): a scan of the
    raw bytes that skips strings cost more than the parse itself."""
    if not isinstance(value, dict | list):
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise MalformedJSON(f"JSON nesting is deeper than {max_depth} levels")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


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
