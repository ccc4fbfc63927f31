"""Hostile HTTP framing: oversized and too many headers, broken chunking, request
smuggling shapes, and slow or truncated bodies (slowloris). Most never reach the
application: the HTTP parser refuses them and :mod:`gateway.api.protocol` answers."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.hostile.conftest import BODY_READ_TIMEOUT_S, PUBLISH, Target, Trail
from tests.hostile.raw import HOST, Answer, request, trickle
from tests.support import referral

pytestmark = pytest.mark.asyncio(loop_scope="module")

GOOD = json.dumps(referral()).encode()
JSON = ("Content-Type", "application/json")


def framing_cases(auth: tuple[str, str]) -> dict[str, bytes]:
    head = [auth, JSON]
    return {
        "header-value-9000": request("POST", PUBLISH, headers=[*head, ("X-Pad", "a" * 9000)]),
        "header-name-9000": request("POST", PUBLISH, headers=[*head, ("X" * 9000, "1")]),
        "request-line-9000": request("POST", PUBLISH + "?q=" + "a" * 9000, headers=head),
        "200-headers": request(
            "POST", PUBLISH, headers=[*head, *((f"X-H{i}", "1") for i in range(200))]
        ),
        "1000-headers": request(
            "POST", PUBLISH, headers=[*head, *((f"X-H{i}", "1") for i in range(1000))]
        ),
        "headers-total-1mb": request(
            "POST", PUBLISH, headers=[*head, *((f"X-H{i}", "a" * 8000) for i in range(128))]
        ),
        "bad-chunk-size": request(
            "POST",
            PUBLISH,
            headers=[*head, ("Transfer-Encoding", "chunked")],
            body=b"zz\r\n{}\r\n0\r\n\r\n",
            content_length=-1,
        ),
        "chunk-size-overflow": request(
            "POST",
            PUBLISH,
            headers=[*head, ("Transfer-Encoding", "chunked")],
            body=b"ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
            content_length=-1,
        ),
        "content-length-and-chunked": request(
            "POST",
            PUBLISH,
            headers=[*head, ("Transfer-Encoding", "chunked")],
            body=b"2\r\n{}\r\n0\r\n\r\n",
            content_length=13,
        ),
        "two-content-lengths": request(
            "POST", PUBLISH, headers=[*head, ("Content-Length", "5")], body=GOOD
        ),
        "content-length-not-a-number": request(
            "POST", PUBLISH, headers=[*head, ("Content-Length", "12abc")], content_length=-1
        ),
        "negative-content-length": request(
            "POST", PUBLISH, headers=[*head, ("Content-Length", "-1")], content_length=-1
        ),
        "transfer-encoding-gzip-chunked": request(
            "POST",
            PUBLISH,
            headers=[*head, ("Transfer-Encoding", "gzip, identity")],
            body=GOOD,
            content_length=-1,
        ),
        "obsolete-line-folding": request(
            "POST", PUBLISH, headers=[*head, ("X-Correlation-Id", "a\r\n b")], body=GOOD
        ),
        "space-before-colon": request("POST", PUBLISH, headers=[*head, ("X-A ", "1")], body=GOOD),
        "bad-method": request("P\x00ST", PUBLISH, headers=head, body=GOOD),
        "not-http": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
        "http-version-9": request("POST", PUBLISH, headers=head, body=GOOD).replace(
            b"HTTP/1.1", b"HTTP/9.9", 1
        ),
        "nul-in-target": request("POST", PUBLISH.encode() + b"\x00", headers=head, body=GOOD),
    }


CASES = sorted(framing_cases(("Authorization", "Bearer x")))


@pytest.mark.parametrize("case", CASES)
async def test_requests_the_parser_refuses(target: Target, case: str) -> None:
    data = framing_cases(target.auth())[case]
    answer = await target.refused(data, trail=Trail.LOG, statuses=frozenset({400, 431, 501, 505}))
    assert answer.json()["type"] == "urn:gateway:problem:bad-http-request"
    # aiohttp's own message quotes the offending bytes, the token among them.
    assert target.fed.tokens["minhealth"].encode() not in answer.body


# -- slow and truncated bodies ------------------------------------------------------------

BOUND_S = BODY_READ_TIMEOUT_S + 1.5
"""The deadline, plus room for a loaded machine."""


def head(target: Target, length: int) -> bytes:
    return request("POST", PUBLISH, headers=[target.auth(), JSON], content_length=length)


async def trickled(target: Target, body: bytes, interval_s: float) -> Answer:
    return await trickle(
        target.port, head(target, len(body)), body, interval_s=interval_s, timeout_s=BOUND_S
    )


@pytest.mark.parametrize("interval_s", [1.0, 0.25])
async def test_a_body_sent_a_byte_at_a_time_is_cut_off(target: Target, interval_s: float) -> None:
    kafka, audited = target.kafka(), len(target.audit())
    answer = await trickled(target, GOOD, interval_s)
    assert answer.status == 408
    assert answer.json()["type"] == "urn:gateway:problem:body-timeout"
    assert answer.headers["connection"].lower() == "close"
    assert BODY_READ_TIMEOUT_S <= answer.elapsed_s < BOUND_S
    assert target.kafka() == kafka
    [refusal] = [r for r in target.audit()[audited:] if r["event"] == "request.refused"]
    assert (refusal["principal"], refusal["reason"], refusal["status"]) == (
        "minhealth",
        "body-timeout",
        408,
    )
    await target.still_serving()


async def test_a_body_shorter_than_its_length_times_out(target: Target) -> None:
    data = head(target, len(GOOD)) + GOOD[: len(GOOD) // 2]
    answer = await target.refused(data, statuses=frozenset({408}), timeout_s=BOUND_S)
    assert BODY_READ_TIMEOUT_S <= answer.elapsed_s < BOUND_S


async def test_a_body_cut_short_by_the_sender_closing_is_refused(target: Target) -> None:
    """The sender half-closes after half its body: 400 incomplete-body, not a 500 and
    not an unhandled_error log; the connection is gone, so no answer is expected."""
    kafka, audited = target.kafka(), len(target.audit())
    reader, writer = await asyncio.open_connection(HOST, target.port)
    writer.write(head(target, len(GOOD)) + GOOD[: len(GOOD) // 2])
    writer.write_eof()
    raw = await asyncio.wait_for(reader.read(), BOUND_S)
    writer.close()
    if raw:  # aiohttp may still write the answer before closing
        assert raw.startswith(b"HTTP/1.1 400"), raw[:200]
        assert b"incomplete-body" in raw
    assert target.kafka() == kafka
    refusals = [r for r in target.audit()[audited:] if r["event"] == "request.refused"]
    assert [r["reason"] for r in refusals] == ["incomplete-body"]
    await target.still_serving()


async def test_slow_clients_do_not_stop_others(target: Target) -> None:
    """Ten slow senders at once hold no worker the others need: a normal publish
    goes through while they trickle, and each of them is cut off."""
    slow = [asyncio.create_task(trickled(target, GOOD, 0.5)) for _ in range(10)]
    await asyncio.sleep(0.1)
    await target.still_serving()
    answers = await asyncio.gather(*slow)
    assert [a.status for a in answers] == [408] * 10
