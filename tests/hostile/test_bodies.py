"""Hostile JSON bodies at every endpoint that parses one: malformed, truncated,
invalid UTF-8, duplicate members, nesting bombs, huge numbers and strings,
oversized bodies (declared, chunked, lied about) and wrong content types."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.hostile.conftest import CONTRACT, MAX_BATCH_BYTES, PUBLISH, Target, Trail
from tests.hostile.raw import chunked, request
from tests.support import referral

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_BODY = 1_048_576
"""The node's http.max_body_bytes (the default)."""

ENDPOINTS = {
    "publish": PUBLISH,
    "batch": f"{PUBLISH}:batch",
    "ack": "/v1/inbox/ack",
    "nack": "/v1/inbox/nack",
    "dlq-replay": "/v1/dlq/replay",
    "register": f"/v1/contracts/{CONTRACT}/versions",
}
GOOD = json.dumps(referral()).encode()

MALFORMED = {
    "open-brace": b"{",
    "unterminated-member": b'{"referralId":',
    "unterminated-array": b"[1, 2",
    "unterminated-string": b'{"a": "abc',
    "missing-colon": b'{"a" 1}',
    "trailing-comma": b'{"a": 1,}',
    "trailing-garbage": b"{} x",
    "single-quotes": b"{'a': 1}",
    "bare-word": b"nul",
    "empty": b"",
    "whitespace-only": b" \r\n\t ",
    "nan": b'{"a": NaN}',
    "infinity": b"[Infinity]",
    "byte-order-mark": b"\xef\xbb\xbf{}",
    "control-char-in-string": b'{"a": "x\x01y"}',
    "truncated-at-10": GOOD[:10],
    "truncated-at-half": GOOD[: len(GOOD) // 2],
    "truncated-before-last-brace": GOOD[:-1],
}
INVALID_UTF8 = {
    "lone-ff": b'{"a": "\xff"}',
    "overlong-slash": b'{"a": "\xc0\xaf"}',
    "encoded-surrogate": b'{"a": "\xed\xa0\x80"}',
    "truncated-multibyte": b'{"a": "\xe2\x82"}',
    "invalid-in-member-name": b'{"\xfe": 1}',
    "latin1-text": '{"a": "caf\u00e9"}'.encode("latin-1"),
    "utf16": '{"a": 1}'.encode("utf-16"),
    "escaped-lone-surrogate": b'{"a": "\\ud800"}',
}
DUPLICATES = {
    "top-level": b'{"a": 1, "a": 2}',
    "through-escape": b'{"a": 1, "\\u0061": 2}',
    "nested": b'{"x": [{"b": 1, "b": 1}]}',
    "messages-twice": b'{"messages": [], "messages": [{"payload": {}}]}',
    "tags-twice": b'{"tags": [], "tags": ["x"]}',
    "payload-members": GOOD[:-1] + b', "urgency": "urgent"}',
}


def nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


NESTING = {
    f"{kind}-{depth}": build(depth)
    for depth in (100, 10_000, 100_000)
    for kind, build in (("arrays", nested_arrays), ("objects", nested_objects))
}
HUGE_NUMBERS = {
    "5000-digit-integer": b'{"a": ' + b"1" * 5000 + b"}",
    "100000-digit-integer": b"[" + b"9" * 100_000 + b"]",
    "1e999999": b'{"a": 1e999999}',
    "-1e999999": b'{"a": -1e999999}',
    "long-fraction": b'{"a": 0.' + b"1" * 100_000 + b"}",
}
HUGE_STRINGS = {
    "900k-string": json.dumps({**referral(), "referralId": "R" * 900_000}).encode(),
    "900k-member-name": b'{"' + b"k" * 900_000 + b'": 1}',
    "900k-escapes": b'{"a": "' + b"\\u0041" * 150_000 + b'"}',
}


def cases(inputs: dict[str, bytes]) -> list[Any]:
    return [
        pytest.param(ENDPOINTS[endpoint], body, id=f"{endpoint}:{name}")
        for name, body in inputs.items()
        for endpoint in ENDPOINTS
    ]


def post(target: Target, path: str, body: bytes, *, content_length: int | None = None) -> bytes:
    headers = [target.auth(), ("Content-Type", "application/json")]
    return request("POST", path, headers=headers, body=body, content_length=content_length)


@pytest.mark.parametrize(("path", "body"), cases(MALFORMED))
async def test_malformed_and_truncated_json(target: Target, path: str, body: bytes) -> None:
    await target.refused(post(target, path, body), statuses=frozenset({400, 422}))


@pytest.mark.parametrize(("path", "body"), cases(INVALID_UTF8))
async def test_invalid_utf8(target: Target, path: str, body: bytes) -> None:
    answer = await target.refused(post(target, path, body), statuses=frozenset({400}))
    assert answer.json()["type"] == "urn:gateway:problem:malformed-json"


@pytest.mark.parametrize(("path", "body"), cases(DUPLICATES))
async def test_duplicate_member_names(target: Target, path: str, body: bytes) -> None:
    answer = await target.refused(post(target, path, body), statuses=frozenset({400}))
    assert answer.json()["type"] == "urn:gateway:problem:malformed-json"


@pytest.mark.parametrize(("path", "body"), cases(NESTING))
async def test_nesting_bombs(target: Target, path: str, body: bytes) -> None:
    # Bodies over an endpoint's own limit (64 KiB for tags and replays) are 413 first.
    answer = await target.refused(post(target, path, body), statuses=frozenset({400, 413}))
    if answer.status == 400:
        assert "nesting is deeper than" in answer.json()["detail"]


@pytest.mark.parametrize(("path", "body"), cases(HUGE_NUMBERS))
async def test_huge_numbers(target: Target, path: str, body: bytes) -> None:
    await target.refused(post(target, path, body), statuses=frozenset({400, 413, 422}))


@pytest.mark.parametrize(("path", "body"), cases(HUGE_STRINGS))
async def test_huge_strings(target: Target, path: str, body: bytes) -> None:
    await target.refused(post(target, path, body), statuses=frozenset({400, 413, 422}))


def batch_of(payload: bytes) -> bytes:
    return b'{"messages": [{"payload": ' + payload + b"}]}"


@pytest.mark.parametrize(
    "payload",
    [b'{"a": "\\udfff"}', nested_arrays(40), b'{"x": 1, "x": 2}', b"1e999999"],
    ids=["lone-surrogate", "nested-40", "duplicate-member", "1e999999"],
)
async def test_hostile_batch_item_payloads(target: Target, payload: bytes) -> None:
    """Inside a well-formed batch document the whole batch is refused, not one item."""
    answer = await target.refused(post(target, f"{PUBLISH}:batch", batch_of(payload)))
    assert answer.json()["type"] == "urn:gateway:problem:malformed-json"


# -- oversized bodies -------------------------------------------------------------------

LIMITS = {"publish": MAX_BODY, "batch": MAX_BATCH_BYTES, "ack": 65536, "dlq-replay": 65536}


def oversized(limit: int) -> bytes:
    """Well-formed JSON one byte over ``limit``."""
    return b'{"a": "' + b"x" * (limit - 8) + b'"}'


@pytest.mark.parametrize("endpoint", sorted(LIMITS))
@pytest.mark.parametrize("framing", ["content-length", "chunked", "close-delimited"])
async def test_oversized_bodies(target: Target, endpoint: str, framing: str) -> None:
    body = oversized(LIMITS[endpoint])
    assert len(body) == LIMITS[endpoint] + 1
    path = ENDPOINTS[endpoint]
    if framing == "content-length":
        data = post(target, path, body)
    elif framing == "chunked":
        data = request(
            "POST",
            path,
            headers=[target.auth(), ("Content-Type", "application/json"), chunked_header()],
            body=chunked(body),
            content_length=-1,
        )
    else:
        data = post(target, path, body, content_length=-1)
    if framing != "close-delimited":
        answer = await target.refused(data, statuses=frozenset({413}))
        assert answer.json()["type"] == "urn:gateway:problem:payload-too-large"
        return
    # A request without a length has no body (RFC 9112 6.3): the body's bytes are the
    # next request, which the parser refuses, and aiohttp answers only that refusal.
    answer = await target.refused(data, trail=Trail.LOG, statuses=frozenset({400}))
    assert answer.json()["type"] == "urn:gateway:problem:bad-http-request"


def chunked_header() -> tuple[str, str]:
    return ("Transfer-Encoding", "chunked")


@pytest.mark.parametrize("declared", [MAX_BODY + 1, 10**12, 2**63 - 1])
async def test_declared_length_over_the_limit_is_refused_before_reading(
    target: Target, declared: int
) -> None:
    """Content-Length alone decides: the body is neither sent nor waited for."""
    answer = await target.refused(
        post(target, PUBLISH, b"", content_length=declared),
        statuses=frozenset({413}),
        timeout_s=BODY_READ_TIMEOUT_WITH_MARGIN_S,
    )
    assert answer.elapsed_s < 0.5


BODY_READ_TIMEOUT_WITH_MARGIN_S = 3.0

# -- content types ---------------------------------------------------------------------

CONTENT_TYPES = {
    "missing": None,
    "text-plain": "text/plain",
    "form": "application/x-www-form-urlencoded",
    "multipart": "multipart/form-data; boundary=x",
    "octet-stream": "application/octet-stream",
    "json-lookalike": "application/jsonp",
    "xml": "application/xml",
    "empty": "",
}


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@pytest.mark.parametrize("ctype", sorted(CONTENT_TYPES))
async def test_wrong_or_missing_content_type(target: Target, endpoint: str, ctype: str) -> None:
    value = CONTENT_TYPES[ctype]
    headers = [target.auth()] + ([] if value is None else [("Content-Type", value)])
    data = request("POST", ENDPOINTS[endpoint], headers=headers, body=GOOD)
    answer = await target.refused(data, statuses=frozenset({415}))
    assert answer.json()["type"] == "urn:gateway:problem:unsupported-media-type"
