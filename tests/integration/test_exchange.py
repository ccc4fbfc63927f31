"""The core exchange path end to end: HTTP -> node A -> Kafka -> node B -> HTTP."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from gateway.node import RunningNode
from tests.integration.conftest import read_topic
from tests.integration.helpers import ack, audit, node, publish, pull
from tests.support import Federation, referral

pytestmark = pytest.mark.integration

SENDER = ("minhealth",)
CONSUMERS = ("socialtreasury", "acme-analytics")


async def test_publish_pull_ack_round_trip_for_two_recipients(
    fed: Federation, bootstrap: str, http: aiohttp.ClientSession
) -> None:
    async with (
        node(fed, bootstrap, SENDER, "node-a") as a,
        node(fed, bootstrap, CONSUMERS, "node-b") as b,
    ):
        sent = [await publish(http, a.url, fed, referral(n)) for n in (1, 2)]
        assert [status for status, _ in sent] == [202, 202]
        ids = {body["message_id"] for _, body in sent}
        for consumer in CONSUMERS:
            messages = await pull(http, b.url, fed, consumer, expect=2)
            assert {m["message_id"] for m in messages} == ids
            assert {m["payload"]["referralId"] for m in messages} == {
                "REF-2026-000001",
                "REF-2026-000002",
            }
            assert all(m["sender"] == "minhealth" and m["version"] == "1.1.0" for m in messages)
            result = await ack(http, b.url, fed, consumer, [m["tag"] for m in messages])
            assert len(result["acknowledged"]) == 2
            assert result["unknown"] == []
            assert await pull(http, b.url, fed, consumer, expect=1, wait_s=1.5) == []
    events = [e["event"] for e in audit(fed, "node-b")]
    assert events.count("message.delivered") == 4
    assert events.count("message.acknowledged") == 4
    # The Kafka value is ciphertext: nothing of the payload is readable in the topic.
    records = await read_topic(bootstrap, f"{fed.prefix}inbox.socialtreasury")
    assert len(records) == 2
    assert all(b"REF-2026" not in value and b"P0000012345" not in value for value, _ in records)
    assert {h["ce_source"] for _, h in records} == {b"minhealth"}


async def test_unacknowledged_messages_come_back_after_the_consumer_restarts(
    fed: Federation, bootstrap: str, http: aiohttp.ClientSession
) -> None:
    async with node(fed, bootstrap, SENDER, "node-a") as a:
        ids = [(await publish(http, a.url, fed, referral(n)))[1]["message_id"] for n in (1, 2)]
    async with node(fed, bootstrap, ("socialtreasury",), "node-b") as b:
        first = await pull(http, b.url, fed, "socialtreasury", expect=2)
        assert {m["message_id"] for m in first} == set(ids)
        acked = next(m for m in first if m["message_id"] == ids[0])
        await ack(http, b.url, fed, "socialtreasury", [acked["tag"]])
        await asyncio.sleep(1.5)  # one fetch cycle commits the acknowledged offset
    async with node(fed, bootstrap, ("socialtreasury",), "node-b") as b:
        again = await pull(http, b.url, fed, "socialtreasury", expect=1, wait_s=20)
        assert [m["message_id"] for m in again] == [ids[1]]
        # Tags of the previous incarnation are not valid any more.
        result = await ack(http, b.url, fed, "socialtreasury", [acked["tag"]])
        assert result["unknown"] == [acked["tag"]]


def flip(value: bytes, at: int) -> bytes:
    """Change one byte for another character of the base64url alphabet."""
    replacement = b"A" if value[at : at + 1] != b"A" else b"B"
    return value[:at] + replacement + value[at + 1 :]


async def assert_rejected_and_not_delivered(
    fed: Federation,
    bootstrap: str,
    http: aiohttp.ClientSession,
    b: RunningNode,
    producer: AIOKafkaProducer,
    *,
    value: bytes,
    headers: list[tuple[str, bytes]],
    message_id: str,
    reason: str,
) -> None:
    inbox = f"{fed.prefix}inbox.socialtreasury"
    await producer.send_and_wait(inbox, value, key=b"k", headers=headers)
    # A valid message after it proves the consumer went past the bad record.
    _, good_value, good_headers = fed.envelope(
        sealed_for="socialtreasury",
        encrypted_to="socialtreasury",
        payload=json.dumps(referral(7)).encode(),
    )
    await producer.send_and_wait(inbox, good_value, key=b"k", headers=good_headers)
    delivered = await pull(http, b.url, fed, "socialtreasury", expect=1)
    assert [m["payload"]["referralId"] for m in delivered] == ["REF-2026-000007"]
    assert message_id not in {m["message_id"] for m in delivered}
    dead = await read_topic(bootstrap, f"{fed.prefix}dlq.socialtreasury")
    assert [(v, h["gw_reason"].decode()) for v, h in dead] == [(value, reason)]
    rejected = [e for e in audit(fed, "node-b") if e["event"] == "envelope.rejected"]
    assert [(e["message_id"], e["reason"]) for e in rejected] == [(message_id, reason)]


@pytest.mark.parametrize(
    ("part", "reason"),
    [
        (0, "malformed"),
        (1, "decryption-failed"),
        (2, "decryption-failed"),
        (3, "decryption-failed"),
        (4, "decryption-failed"),
    ],
)
async def test_a_tampered_envelope_is_rejected_and_never_delivered(
    fed: Federation,
    bootstrap: str,
    http: aiohttp.ClientSession,
    producer: AIOKafkaProducer,
    part: int,
    reason: str,
) -> None:
    message_id, value, headers = fed.envelope(
        sealed_for="socialtreasury",
        encrypted_to="socialtreasury",
        payload=json.dumps(referral()).encode(),
    )
    # One byte in the middle of the chosen compact-serialization part.
    pieces = value.split(b".")
    offset = sum(len(p) + 1 for p in pieces[:part]) + len(pieces[part]) // 2
    tampered = flip(value, offset)
    async with node(fed, bootstrap, ("socialtreasury",), "node-b") as b:
        await assert_rejected_and_not_delivered(
            fed,
            bootstrap,
            http,
            b,
            producer,
            value=tampered,
            headers=headers,
            message_id=message_id,
            reason=reason,
        )


@pytest.mark.parametrize(
    ("sealed_for", "reason"),
    [
        # Copied from another participant's inbox: not encrypted to this one's key.
        ("acme-analytics", "unknown-key"),
        # Encrypted to this participant, but the signature names someone else.
        ("socialtreasury-as-acme", "recipient-mismatch"),
    ],
)
async def test_a_readdressed_envelope_is_rejected(
    fed: Federation,
    bootstrap: str,
    http: aiohttp.ClientSession,
    producer: AIOKafkaProducer,
    sealed_for: str,
    reason: str,
) -> None:
    payload = json.dumps(referral()).encode()
    encrypted_to = "acme-analytics" if sealed_for == "acme-analytics" else "socialtreasury"
    message_id, value, headers = fed.envelope(
        sealed_for="acme-analytics", encrypted_to=encrypted_to, payload=payload
    )
    headers = [(k, b"socialtreasury" if k == "ce_recipient" else v) for k, v in headers]
    async with node(fed, bootstrap, ("socialtreasury",), "node-b") as b:
        await assert_rejected_and_not_delivered(
            fed,
            bootstrap,
            http,
            b,
            producer,
            value=value,
            headers=headers,
            message_id=message_id,
            reason=reason,
        )


async def test_a_contract_violation_answers_422_and_writes_nothing_to_kafka(
    fed: Federation, bootstrap: str, http: aiohttp.ClientSession
) -> None:
    bad = referral()
    bad["urgency"] = "tomorrow"
    bad["patient"]["sex"] = 3
    async with node(fed, bootstrap, SENDER, "node-a") as a:
        status, good = await publish(http, a.url, fed, referral())
        assert status == 202
        status, problem = await publish(http, a.url, fed, bad)
        assert status == 422
        assert problem["type"] == "urn:gateway:problem:contract-violation"
        assert [e["pointer"] for e in problem["errors"]] == ["/patient/sex", "/urgency"]
    # Each inbox holds the valid message and nothing else.
    for consumer in CONSUMERS:
        records = await read_topic(bootstrap, f"{fed.prefix}inbox.{consumer}")
        assert [h["ce_id"].decode() for _, h in records] == [good["message_id"]]
    [rejected] = [e for e in audit(fed, "node-a") if e["event"] == "message.rejected"]
    assert rejected["reason"] == "contract-violation"
    assert rejected["pointers"] == ["/patient/sex", "/urgency"]
