"""Header injection in every string that reaches Kafka headers or the logs: the
X-Correlation-Id, X-Ordering-Key, Idempotency-Key and traceparent headers, the
``to`` recipients, a batch item's fields, and the credentials themselves.

CR, LF, NUL and other control bytes in a header field never reach the
application (the HTTP parser refuses them); non-ASCII, blanks and overlong values
do, and are refused by the gateway's own checks before anything is sent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.hostile.conftest import PUBLISH, Target, Trail
from tests.hostile.raw import exchange, request
from tests.support import referral

pytestmark = pytest.mark.asyncio(loop_scope="module")

GOOD = json.dumps(referral()).encode()
JSON = ("Content-Type", "application/json")
HEADERS = ("X-Correlation-Id", "X-Ordering-Key", "Idempotency-Key", "traceparent")
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

PARSER_REFUSES = {
    "bare-cr": b"a\rInjected: 1",
    "bare-lf-then-garbage": b"a\nInjected",
    "nul": b"a\x00b",
    "del": b"a\x7fb",
    "escape-sequence": b"\x1b[31mred",
    "vertical-tab": b"a\x0bb",
}
GATEWAY_REFUSES = {
    "utf8-non-ascii": "caf\u00e9".encode(),
    "invalid-utf8": b"\xff\xfe",
    "right-to-left-override": "a\u202eb".encode(),
    "blank-inside": b"a b",
    "tab-inside": b"a\tb",
    "json-injection": b'a","ce_source":"x',
    "overlong-300": b"a" * 300,
    "overlong-8000": b"a" * 8000,
    "traceparent-shaped-overlong": TRACE.encode() + b"-" + b"f" * 200,
}


def publish_with(target: Target, name: str, value: bytes) -> bytes:
    return request("POST", PUBLISH, headers=[target.auth(), JSON, (name, value)], body=GOOD)


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("value", sorted(PARSER_REFUSES))
async def test_control_bytes_in_headers_never_reach_the_gateway(
    target: Target, header: str, value: str
) -> None:
    answer = await target.refused(
        publish_with(target, header, PARSER_REFUSES[value]),
        trail=Trail.LOG,
        statuses=frozenset({400}),
    )
    assert answer.json()["type"] == "urn:gateway:problem:bad-http-request"


ODD_HEADER_CASES = [
    pytest.param(header, value, id=f"{value}-{header}")
    for value in sorted(GATEWAY_REFUSES)
    for header in HEADERS
    # An idempotency key is any visible ASCII (RFC 8941 string): it only derives the
    # message id, and reaches neither Kafka headers nor logs.
    if (value, header) != ("json-injection", "Idempotency-Key")
]


@pytest.mark.parametrize(("header", "value"), ODD_HEADER_CASES)
async def test_odd_header_values_are_refused_before_sending(
    target: Target, header: str, value: str
) -> None:
    answer = await target.refused(
        publish_with(target, header, GATEWAY_REFUSES[value]), statuses=frozenset({400})
    )
    document = answer.json()
    assert document["type"] == "urn:gateway:problem:invalid-parameter"
    assert document["parameter"] == header


async def test_a_header_split_by_crlf_is_two_headers_not_one(target: Target) -> None:
    """CR LF ends the field: what follows is a header of its own (here an unknown one),
    so the correlation id that reaches Kafka is exactly the part before it."""
    before = {t: len(r) for t, r in target.transport.broker.topics.items()}
    data = publish_with(target, "X-Correlation-Id", b"c-1\r\nce_source: forged")
    answer = await exchange(target.port, data)
    assert answer.status == 202
    new = [
        dict(record.headers)
        for topic, records in target.transport.broker.topics.items()
        for record in records[before.get(topic, 0) :]
    ]
    assert [h["ce_correlationid"] for h in new] == [b"c-1", b"c-1"]
    assert {h["ce_source"] for h in new} == {b"minhealth"}


TO = {
    "crlf": "socialtreasury%0d%0aX-Injected:%201",
    "nul": "socialtreasury%00",
    "non-ascii": "soci%c3%a4ltreasury",
    "invalid-utf8": "%ff",
    "overlong": "a" * 5000,
    "traversal": "..%2f..%2fetc",
    "65-recipients": ",".join(["socialtreasury"] * 65),
    "not-a-consumer": "metro-medical",
    "the-sender-itself": "minhealth",
    "upper-case": "SOCIALTREASURY",
}


@pytest.mark.parametrize("value", sorted(TO))
async def test_odd_recipients(target: Target, value: str) -> None:
    data = request("POST", f"{PUBLISH}?to={TO[value]}", headers=[target.auth(), JSON], body=GOOD)
    await target.refused(data, statuses=frozenset({400, 422}))


ITEM_FIELDS = ("ordering_key", "correlation_id", "idempotency_key")
ITEM_VALUES: dict[str, Any] = {
    "crlf": "a\r\nce_source: forged",
    "nul": "a\u0000b",
    "non-ascii": "caf\u00e9",
    "overlong": "a" * 129,
    "blank": "a b",
    "empty": "",
    "number": 1,
    "list": ["a"],
    "object": {"a": 1},
    "true": True,
}


@pytest.mark.parametrize("field", ITEM_FIELDS)
@pytest.mark.parametrize("value", sorted(ITEM_VALUES))
async def test_odd_batch_item_fields_refuse_the_batch(
    target: Target, field: str, value: str
) -> None:
    item = {"payload": referral(), field: ITEM_VALUES[value]}
    body = json.dumps({"messages": [{"payload": referral()}, item]}).encode()
    data = request("POST", f"{PUBLISH}:batch", headers=[target.auth(), JSON], body=body)
    answer = await target.refused(data, statuses=frozenset({400}))
    assert answer.json()["parameter"] == "messages[1]"


BATCH_TO: dict[str, Any] = {
    "crlf": ["socialtreasury\r\nX: 1"],
    "nul": ["socialtreasury\u0000"],
    "non-ascii": ["soci\u00e4ltreasury"],
    "overlong": ["a" * 5000],
    "traversal": ["../../etc"],
}


@pytest.mark.parametrize("value", sorted(BATCH_TO))
async def test_odd_batch_item_recipients_refuse_the_item(target: Target, value: str) -> None:
    body = json.dumps({"messages": [{"payload": referral(), "to": BATCH_TO[value]}]}).encode()
    data = request("POST", f"{PUBLISH}:batch", headers=[target.auth(), JSON], body=body)
    [result] = await target.batch_refused(data)
    assert result["problem"]["type"] == "urn:gateway:problem:recipient-not-allowed"


@pytest.mark.parametrize(
    "value", [1, "socialtreasury", [1], [["socialtreasury"]], {"a": 1}], ids=str
)
async def test_batch_item_recipients_of_the_wrong_type(target: Target, value: Any) -> None:
    body = json.dumps({"messages": [{"payload": referral(), "to": value}]}).encode()
    data = request("POST", f"{PUBLISH}:batch", headers=[target.auth(), JSON], body=body)
    await target.refused(data, statuses=frozenset({400}))


def credentials(target: Target) -> dict[str, tuple[bytes, Trail]]:
    token = target.fed.tokens["minhealth"].encode()
    return {
        "token-then-nul": (b"Bearer " + token + b"\x00", Trail.LOG),
        "token-then-cr": (b"Bearer " + token + b"\rX", Trail.LOG),
        "token-then-del": (b"Bearer " + token + b"\x7f", Trail.LOG),
        "token-then-non-ascii": (b"Bearer " + token + "\u00e9".encode(), Trail.AUTH),
        "invalid-utf8-token": (b"Bearer \xff\xfe", Trail.AUTH),
        "overlong-600": (b"Bearer " + b"a" * 600, Trail.AUTH),
        "overlong-8000": (b"Bearer " + b"a" * 8000, Trail.AUTH),
        "basic-scheme": (b"Basic bWluaGVhbHRoOnB3", Trail.AUTH),
        "scheme-only": (b"Bearer", Trail.AUTH),
        "empty": (b"", Trail.AUTH),
        "two-tokens": (b"Bearer " + token + b", Bearer " + token, Trail.AUTH),
        "token-as-participant-id": (b"Bearer minhealth", Trail.AUTH),
        "json-injection": (b'Bearer x","principal":"minhealth', Trail.AUTH),
        "token-digest": (b"Bearer " + target.fed.digests["minhealth"].encode(), Trail.AUTH),
    }


@pytest.mark.parametrize(
    "case",
    [
        "token-then-nul",
        "token-then-cr",
        "token-then-del",
        "token-then-non-ascii",
        "invalid-utf8-token",
        "overlong-600",
        "overlong-8000",
        "basic-scheme",
        "scheme-only",
        "empty",
        "two-tokens",
        "token-as-participant-id",
        "json-injection",
        "token-digest",
    ],
)
async def test_hostile_credentials(target: Target, case: str) -> None:
    value, trail = credentials(target)[case]
    data = request("POST", PUBLISH, headers=[("Authorization", value), JSON], body=GOOD)
    answer = await target.refused(data, trail=trail, statuses=frozenset({400, 401}))
    assert target.fed.tokens["minhealth"].encode() not in answer.body
    if trail is Trail.AUTH:
        assert answer.headers["www-authenticate"] == 'Bearer realm="gateway"'
