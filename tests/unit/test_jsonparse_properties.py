"""Properties of parse_json, over inputs hypothesis generates.

The table tests in test_jsonparse.py pin chosen cases; these state what holds for every
input: a JSON value survives serialise -> parse; any byte string parses or is refused
with MalformedJSON / PayloadTooLarge and nothing else; a duplicate member name at any
depth, nesting past the limit, a non-finite number and a byte that is not UTF-8 are
each refused wherever they sit in an otherwise good document.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from gateway.errors import MalformedJSON, PayloadTooLarge
from gateway.jsonparse import parse_json

MAX_BYTES = 1 << 16
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)


def depth(value: Any) -> int:
    """Objects and arrays nested in ``value``: 0 for a scalar, 1 for ``[]``."""
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def parse(body: bytes, max_depth: int = 64) -> Any:
    return parse_json(body, max_bytes=MAX_BYTES, max_depth=max_depth)


def dump(
    value: Any, *, duplicate: int | None = None, leaf: str | None = None, ascii_only: bool = True
) -> str:
    """``value`` as JSON text. The ``duplicate``-th non-empty object (in document order)
    repeats its first member name; ``leaf`` replaces the first scalar, raw."""
    state: dict[str, Any] = {"objects": 0, "leaf": leaf}

    def out(node: Any) -> str:
        if isinstance(node, list):
            return "[" + ",".join(out(item) for item in node) + "]"
        if isinstance(node, dict):
            index = state["objects"] if node else None
            state["objects"] += bool(node)
            members = [
                json.dumps(k, ensure_ascii=ascii_only) + ":" + out(v) for k, v in node.items()
            ]
            if index is not None and index == duplicate:
                first = next(iter(node))
                members.append(json.dumps(first, ensure_ascii=ascii_only) + ":0")
            return "{" + ",".join(members) + "}"
        if state["leaf"] is not None:
            raw, state["leaf"] = state["leaf"], None
            return str(raw)
        return json.dumps(node, ensure_ascii=ascii_only)

    return out(value)


def non_empty_objects(value: Any) -> int:
    if isinstance(value, dict):
        return bool(value) + sum(non_empty_objects(v) for v in value.values())
    if isinstance(value, list):
        return sum(non_empty_objects(v) for v in value)
    return 0


def refused(body: bytes, max_depth: int = 64) -> MalformedJSON:
    with pytest.raises(MalformedJSON) as info:
        parse(body, max_depth)
    return info.value


@settings(max_examples=300)
@given(value=VALUES, ascii_only=st.booleans(), indent=st.sampled_from([None, 0, 2]))
def test_any_json_value_round_trips(value: Any, ascii_only: bool, indent: int | None) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()
    parsed = parse(body, max_depth=max(depth(value), 1))
    assert parsed == value
    assert json.dumps(parsed, sort_keys=True) == json.dumps(value, sort_keys=True)


JSONISH = st.text(alphabet='{}[]":,.0123456789-+eE \n\\u"tfnrula', max_size=60).map(str.encode)


@settings(max_examples=500)
@given(body=st.binary(max_size=200) | JSONISH)
@example(body=b"9" * 5000)  # past the interpreter's int digit limit
@example(body=b"[" * 5000)  # past the recursion limit
@example(body=b'"\\ud800"')  # a lone surrogate escape: not Unicode text
@example(body=b'{"\\udc00": 1}')  # the same in a member name
@example(body=b"\xef\xbb\xbf{}")  # a UTF-8 byte order mark
def test_any_bytes_parse_or_are_refused_as_bad_json(body: bytes) -> None:
    try:
        value = parse(body, max_depth=32)
    except (MalformedJSON, PayloadTooLarge):
        return
    # Accepted: JSON the standard library reads the same way, within the limits, and
    # Unicode text throughout (it can be written as UTF-8 again).
    assert json.dumps(value, sort_keys=True) == json.dumps(json.loads(body), sort_keys=True)
    assert depth(value) <= 32
    json.dumps(value, ensure_ascii=False).encode("utf-8")


@settings(max_examples=100)
@given(body=st.binary(min_size=1, max_size=64), limit=st.integers(min_value=0, max_value=63))
def test_a_body_over_the_byte_limit_is_too_large_whatever_it_holds(body: bytes, limit: int) -> None:
    assume(len(body) > limit)
    with pytest.raises(PayloadTooLarge):
        parse_json(body, max_bytes=limit, max_depth=32)


@settings(max_examples=200)
@given(value=VALUES, data=st.data())
def test_a_duplicate_member_name_at_any_depth_is_refused(value: Any, data: st.DataObject) -> None:
    objects = non_empty_objects(value)
    assume(objects > 0)
    which = data.draw(st.integers(min_value=0, max_value=objects - 1), label="object")
    error = refused(dump(value, duplicate=which).encode())
    assert "duplicate member name" in error.detail


@settings(max_examples=200)
@given(
    shape=st.lists(st.booleans(), min_size=1, max_size=80),
    limit=st.integers(min_value=1, max_value=80),
)
def test_nesting_is_accepted_up_to_max_depth_and_refused_past_it(
    shape: list[bool], limit: int
) -> None:
    opening = "".join('{"k":' if is_object else "[" for is_object in shape)
    closing = "".join("}" if is_object else "]" for is_object in reversed(shape))
    body = (opening + "0" + closing).encode()
    if len(shape) <= limit:
        assert depth(parse(body, max_depth=limit)) == len(shape)
    else:
        assert "nesting is deeper than" in refused(body, max_depth=limit).detail


@settings(max_examples=200)
@given(
    value=VALUES,
    constant=st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "1E+309"]),
)
def test_a_non_finite_number_anywhere_is_refused(value: Any, constant: str) -> None:
    body = dump([value, 0], leaf=constant).encode()
    assert constant in body.decode()
    refused(body)


BAD_UTF8 = st.sampled_from(
    [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80", b"\x80"]
)


@settings(max_examples=200)
@given(value=VALUES, bad=BAD_UTF8, data=st.data())
def test_a_byte_that_is_not_utf8_is_refused_wherever_it_sits(
    value: Any, bad: bytes, data: st.DataObject
) -> None:
    body = json.dumps([value, "marker"]).encode()
    quote = body.rindex(b'"marker"') + 1
    at = data.draw(st.integers(min_value=quote, max_value=quote + len("marker")), label="at")
    error = refused(body[:at] + bad + body[at:])
    assert "not valid UTF-8" in error.detail


@settings(max_examples=100)
@given(value=VALUES, codec=st.sampled_from(["utf-16", "utf-16-be", "utf-32"]))
def test_json_in_another_unicode_encoding_is_refused(value: Any, codec: str) -> None:
    body = json.dumps(value).encode(codec)
    assume(body != json.dumps(value).encode())
    refused(body)


@settings(max_examples=100)
@given(digits=st.integers(min_value=1, max_value=6000))
def test_long_integers_parse_exactly_or_are_refused(digits: int) -> None:
    body = b"7" * digits
    try:
        value = parse(body)
    except MalformedJSON:
        assert digits > 4000
        return
    assert value == int("7" * digits)
    assert type(value) is int
