"""parse_json: strict, bounded parsing of bytes from outside."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway.errors import MalformedJSON, PayloadTooLarge
from gateway.jsonparse import parse_json

MAX_BYTES = 1 << 20
MAX_DEPTH = 32


def parse(body: bytes, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    return parse_json(body, max_bytes=max_bytes, max_depth=max_depth)


def malformed(body: bytes, *, max_depth: int = MAX_DEPTH) -> str:
    """The message of the MalformedJSON that parsing ``body`` must raise."""
    with pytest.raises(MalformedJSON) as info:
        parse(body, max_depth=max_depth)
    return info.value.detail


def nested(depth: int) -> bytes:
    """Arrays and objects alternating, ``depth`` levels deep."""
    opening = b"".join(b"[" if level % 2 == 0 else b'{"k":' for level in range(depth))
    closing = b"".join(b"]" if level % 2 == 0 else b"}" for level in reversed(range(depth)))
    return opening + b"0" + closing


def elapsed(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": [1, 2]}', {"a": [1, 2]}),
        (b"[]", []),
        (b"{}", {}),
        (b'"text"', "text"),
        (b"null", None),
        (b"true", True),
        (b" \n\t 1.5 \r\n", 1.5),
        (b"-0", 0),
        (b"1e308", 1e308),
        (b'{"name": "\xc3\xa9l\xc3\xa8ve \xe2\x82\xac \xf0\x9f\x98\x80"}', {"name": "élève € 😀"}),
        (b'"\\u00e9\\n\\"\\\\"', 'é\n"\\'),
        (b'{"a": {"a": 1}}', {"a": {"a": 1}}),
        (b'[{"a": 1}, {"a": 2}]', [{"a": 1}, {"a": 2}]),
        (b"9" * 4000, int("9" * 4000)),
    ],
    ids=[
        "object",
        "empty-array",
        "empty-object",
        "string",
        "null",
        "true",
        "whitespace",
        "negative-zero",
        "large-float",
        "utf8",
        "escapes",
        "same-name-at-different-levels",
        "same-name-in-sibling-objects",
        "4000-digit-integer",
    ],
)
def test_valid_documents(body: bytes, expected: Any) -> None:
    assert parse(body) == expected


def test_numbers_keep_their_type() -> None:
    assert parse(b"[1, 1.0]") == [1, 1.0]
    assert [type(n) for n in parse(b"[1, 1.0]")] == [int, float]


# -- size ----------------------------------------------------------------------


def test_body_of_exactly_max_bytes_is_accepted() -> None:
    body = b'"' + b"x" * 98 + b'"'

    assert parse(body, max_bytes=100) == "x" * 98


def test_body_over_max_bytes_is_too_large() -> None:
    with pytest.raises(PayloadTooLarge) as info:
        parse(b'"' + b"x" * 99 + b'"', max_bytes=100)

    assert info.value.detail == "body is 101 bytes; the limit is 100"


def test_size_is_checked_before_anything_else() -> None:
    with pytest.raises(PayloadTooLarge):
        parse(b"\xff" + b"[" * 200, max_bytes=100)


# -- malformed ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'"\xff"', "body is not valid UTF-8 (byte 1)"),
        (b'"\xc0\xaf"', "body is not valid UTF-8"),
        (b'"\xed\xa0\x80"', "body is not valid UTF-8"),
        (b'{"a": "\xe2\x82"}', "body is not valid UTF-8"),
        (b'{"a": [1, 2', "invalid JSON at line 1"),
        (b'{"a": "unterminated', "invalid JSON at line 1"),
        (b"", "invalid JSON at line 1 column 1"),
        (b"{} x", "invalid JSON at line 1 column 4"),
        (b"[1, 2,]", "invalid JSON"),
        (b"{'a': 1}", "invalid JSON"),
        (b"\xef\xbb\xbf{}", "invalid JSON"),
        (b'{"a": 1, "a": 2}', 'duplicate member name "a"'),
        (b'{"x": [{"b": 1, "b": 1}]}', 'duplicate member name "b"'),
        (b'{"o": {"deep": {"c": 1, "c": 1}}}', 'duplicate member name "c"'),
        (b'{"a": 1, "\\u0061": 2}', 'duplicate member name "a"'),
        (b"NaN", "NaN is not valid JSON"),
        (b"[Infinity]", "Infinity is not valid JSON"),
        (b'{"v": -Infinity}', "-Infinity is not valid JSON"),
        (b"1e999", "number is too large to represent"),
        (b"[-1e999]", "number is too large to represent"),
        (b"5" * 5000, "invalid JSON"),
    ],
    ids=[
        "invalid-utf8",
        "overlong-utf8",
        "utf8-surrogate",
        "truncated-utf8",
        "truncated",
        "unterminated-string",
        "empty",
        "trailing-data",
        "trailing-comma",
        "single-quotes",
        "byte-order-mark",
        "duplicate-member",
        "nested-duplicate-member",
        "deeply-nested-duplicate-member",
        "duplicate-member-through-escape",
        "nan",
        "infinity",
        "negative-infinity",
        "1e999",
        "-1e999",
        "5000-digit-integer",
    ],
)
def test_malformed_documents(body: bytes, message: str) -> None:
    assert malformed(body).startswith(message)


@pytest.mark.parametrize(
    "body",
    [b'"\\ud800"', b'{"a": ["x", "\\uDFFF"]}', b'{"\\udc00": 1}', b'["\\ude00\\ud83d"]'],
    ids=["lone-high", "lone-low-in-list", "lone-in-member-name", "pair-reversed"],
)
def test_escaped_lone_surrogates_are_refused(body: bytes) -> None:
    """Not I-JSON: such a string cannot be written as UTF-8 again (a batch item's payload
    is re-serialised), so it is malformed input, not a 500 later."""
    assert malformed(body) == "a string holds a lone surrogate escape (\\uD800-\\uDFFF)"


def test_surrogate_pairs_and_escaped_backslashes_are_text() -> None:
    assert parse(b'["\\ud83d\\ude00", "\\\\ud800"]') == ["\U0001f600", "\\ud800"]


def test_duplicate_member_message_is_bounded() -> None:
    name = "n" * 500
    body = f'{{"{name}": 1, "{name}": 2}}'.encode()

    assert len(malformed(body)) < 120


# -- depth ---------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2, 31, 32])
def test_depth_up_to_the_limit_is_accepted(depth: int) -> None:
    document = parse(nested(depth), max_depth=32)

    for level in range(depth):
        document = document[0] if level % 2 == 0 else document["k"]
    assert document == 0


@pytest.mark.parametrize("depth", [33, 34, 1000])
def test_depth_over_the_limit_is_refused(depth: int) -> None:
    assert malformed(nested(depth), max_depth=32) == "JSON nesting is deeper than 32 levels"


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 100_000, b"[" * MAX_BYTES])
def test_nesting_bomb_fails_fast(body: bytes) -> None:
    def attempt() -> None:
        assert malformed(body) == "JSON nesting is deeper than 32 levels"

    assert elapsed(attempt) < 1.0


def test_balanced_but_deep_document_is_refused_before_parsing() -> None:
    body = b"[" * 50_000 + b"]" * 50_000

    assert malformed(body) == "JSON nesting is deeper than 32 levels"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'["[[[[[[[[", "{{{{{{{{"]', ["[[[[[[[[", "{{{{{{{{"]),
        (b'{"[[[[": "]]]]"}', {"[[[[": "]]]]"}),
        (b'["a\\"[[[[[[", 1]', ['a"[[[[[[', 1]),
        (b'["\\\\\\"[[[[["]', ['\\"[[[[[']),
    ],
    ids=["brackets-in-values", "brackets-in-names", "escaped-quote", "escaped-backslash-quote"],
)
def test_brackets_inside_strings_do_not_count(body: bytes, expected: Any) -> None:
    assert parse(body, max_depth=1) == expected


@pytest.mark.parametrize(
    "body",
    [
        b'["]]]]]]", [[[1]]]]',
        b'["a\\\\", [[[1]]]]',
        b'["\\"", [[[1]]]]',
    ],
    ids=["closing-brackets-in-string", "escaped-backslash-ends-string", "escaped-quote"],
)
def test_brackets_after_strings_still_count(body: bytes) -> None:
    assert parse(body, max_depth=4) is not None
    assert malformed(body, max_depth=3) == "JSON nesting is deeper than 3 levels"


def test_unterminated_string_of_escaped_quotes_fails_fast() -> None:
    body = b'"' + b'\\"' * 15_000  # 30 kB, far below the 1 MiB default body limit

    def attempt() -> None:
        malformed(body)

    assert elapsed(attempt) < 0.1
