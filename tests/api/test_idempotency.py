"""Idempotent publish over HTTP: a retry with the same Idempotency-Key gets the original
answer and sends nothing; the key's misuse is a problem, and a refusal stores nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import yaml
from multidict import CIMultiDict

from gateway.api.openapi import openapi_document
from gateway.config import Limits
from gateway.node import running_node
from gateway.transport import OutboundRecord
from tests.api.conftest import Gateway
from tests.clocks import FakeClock
from tests.fakes import MemoryPublisher, MemoryTransport
from tests.support import CONTRACTS, REFERRAL, Federation, referral

PUBLISH = f"/v1/contracts/{REFERRAL}/messages"
KEY = "8e03978e-40d5-43e8-bc93-6894a57f9324"
PROBLEM = "application/problem+json"


@dataclass
class Answer:
    status: int
    headers: CIMultiDict[str]
    body: dict[str, Any]


async def post(
    gw: Gateway,
    payload: Any,
    *,
    key: str | None = KEY,
    sender: str = "minhealth",
    path: str = PUBLISH,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    sent = CIMultiDict({"Content-Type": "application/json", **gw.fed.auth(sender)})
    if key is not None:
        sent["Idempotency-Key"] = key
    sent.update(headers or {})
    async with gw.http.post(
        path, data=json.dumps(payload), params=params or {}, headers=sent
    ) as response:
        body = await response.json(content_type=None)
        return Answer(response.status, CIMultiDict(response.headers), body)


def inbox(gw: Gateway, participant: str) -> list[OutboundRecord]:
    return gw.transport.broker.records(f"{gw.fed.prefix}inbox.{participant}")


def audit(gw: Gateway, event: str) -> list[dict[str, Any]]:
    return [r for r in gw.fed.audit("node-1") if r["event"] == event]


def assert_problem(answer: Answer, status: int, code: str) -> None:
    assert answer.status == status
    assert answer.headers["Content-Type"].startswith(PROBLEM)
    assert answer.body["type"] == f"urn:gateway:problem:{code}"


async def test_a_retry_gets_the_original_answer_and_sends_nothing(gateway: Gateway) -> None:
    first = await post(gateway, referral(1))
    assert first.status == 202
    assert "Idempotent-Replayed" not in first.headers
    assert (len(inbox(gateway, "socialtreasury")), len(inbox(gateway, "acme-analytics"))) == (1, 1)

    retry = await post(gateway, referral(1))

    assert retry.status == 202
    assert retry.body == first.body  # the same message id, contract@version, recipients
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert (len(inbox(gateway, "socialtreasury")), len(inbox(gateway, "acme-analytics"))) == (1, 1)
    [accepted] = audit(gateway, "message.accepted")
    [deduplicated] = audit(gateway, "message.deduplicated")
    assert deduplicated["outcome"] == "deduplicated"
    assert deduplicated["message_id"] == accepted["message_id"] == first.body["message_id"]
    assert deduplicated["sender"] == "minhealth"
    assert deduplicated["contract"] == f"{REFERRAL}@1.1.0"
    assert deduplicated["recipients"] == ["acme-analytics", "socialtreasury"]
    assert deduplicated["payload_sha256"] == accepted["payload_sha256"]
    assert "REF-2026-000001" not in json.dumps(deduplicated)  # digests, never the payload


async def test_a_quoted_key_and_the_bare_key_are_one_key(gateway: Gateway) -> None:
    first = await post(gateway, referral(1), key=f'"{KEY}"')  # the draft's RFC 8941 string
    retry = await post(gateway, referral(1), key=KEY)
    assert retry.body["message_id"] == first.body["message_id"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert len(inbox(gateway, "socialtreasury")) == 1


async def test_without_a_key_every_publish_is_a_new_message(gateway: Gateway) -> None:
    first = await post(gateway, referral(1), key=None)
    second = await post(gateway, referral(1), key=None)
    assert (first.status, second.status) == (202, 202)
    assert first.body["message_id"] != second.body["message_id"]
    assert "Idempotent-Replayed" not in second.headers
    assert len(inbox(gateway, "socialtreasury")) == 2


@pytest.mark.parametrize(
    "change",
    [
        {"payload": referral(2)},
        {"params": {"to": "socialtreasury"}},
        {"path": f"/v1/contracts/{REFERRAL}@1.1.0/messages"},  # the same version, named
        {"headers": {"X-Correlation-Id": "case-7"}},
        {"headers": {"X-Ordering-Key": "patient-1"}},
    ],
    ids=["body", "recipients", "contract", "correlation-id", "ordering-key"],
)
async def test_the_key_of_another_request_is_refused(
    gateway: Gateway, change: dict[str, Any]
) -> None:
    first = await post(gateway, referral(1))
    assert first.status == 202

    reused = await post(gateway, change.pop("payload", referral(1)), **change)

    assert_problem(reused, 422, "idempotency-key-reused")
    assert "Retry-After" not in reused.headers
    assert len(inbox(gateway, "socialtreasury")) == 1  # nothing sent
    [rejected] = audit(gateway, "message.rejected")
    assert rejected["reason"] == "idempotency-key-reused"
    assert rejected["sender"] == "minhealth"
    again = await post(gateway, referral(1))  # the key still answers for the first request
    assert again.body["message_id"] == first.body["message_id"]


async def test_a_new_trace_context_is_still_a_retry(gateway: Gateway) -> None:
    trace = "00-0af7651916cd43dd8448eb211c80319c-{}-01"
    first = await post(gateway, referral(1), headers={"traceparent": trace.format("1" * 16)})
    retry = await post(gateway, referral(1), headers={"traceparent": trace.format("2" * 16)})
    assert retry.body["message_id"] == first.body["message_id"]


async def test_keys_belong_to_their_sender(gateway: Gateway) -> None:
    document = yaml.safe_load((CONTRACTS / "social.support-measure/1.0.0.yaml").read_text())
    measure = document["examples"]["valid"][0]
    referred = await post(gateway, referral(1), sender="minhealth")
    measured = await post(
        gateway,
        measure,
        sender="socialtreasury",
        path="/v1/contracts/social.support-measure/messages",
    )
    assert (referred.status, measured.status) == (202, 202)  # neither a retry nor a reuse
    assert measured.body["message_id"] != referred.body["message_id"]
    assert "Idempotent-Replayed" not in measured.headers
    assert len(inbox(gateway, "minhealth")) == 1


@dataclass
class Held:
    """Publishes wait for ``release``: a broker slow to acknowledge."""

    entered: asyncio.Event
    release: asyncio.Event


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Held:
    gate = Held(asyncio.Event(), asyncio.Event())
    publish = MemoryPublisher.publish

    async def slow(self: MemoryPublisher, records: Sequence[OutboundRecord]) -> None:
        gate.entered.set()
        await gate.release.wait()
        await publish(self, records)

    monkeypatch.setattr(MemoryPublisher, "publish", slow)
    return gate


async def test_a_retry_while_the_first_is_in_flight_is_a_conflict(
    gateway: Gateway, held: Held
) -> None:
    first = asyncio.create_task(post(gateway, referral(1)))
    await asyncio.wait_for(held.entered.wait(), 5)  # the first waits for Kafka now

    concurrent = await post(gateway, referral(1))
    different = await post(gateway, referral(2))  # unknown yet whether the first succeeds

    for answer in (concurrent, different):
        assert_problem(answer, 409, "idempotency-key-in-use")
        assert answer.headers["Retry-After"] == "1"
    assert inbox(gateway, "socialtreasury") == []
    held.release.set()
    assert (await first).status == 202
    retry = await post(gateway, referral(1))
    assert retry.body["message_id"] == (await first).body["message_id"]
    assert len(inbox(gateway, "socialtreasury")) == 1
    assert len(audit(gateway, "message.accepted")) == 1


async def test_a_refused_publish_stores_nothing_so_the_fixed_retry_goes_out(
    gateway: Gateway,
) -> None:
    broken = referral(1)
    del broken["diagnosis"]
    refused = await post(gateway, broken)
    assert_problem(refused, 422, "contract-violation")

    fixed = await post(gateway, referral(1))  # same key, corrected payload

    assert fixed.status == 202
    assert "Idempotent-Replayed" not in fixed.headers
    assert len(inbox(gateway, "socialtreasury")) == 1
    retry = await post(gateway, referral(1))
    assert retry.body["message_id"] == fixed.body["message_id"]


async def test_a_publish_the_broker_did_not_take_can_be_retried_with_its_key(
    gateway: Gateway,
) -> None:
    gateway.transport.broker.down = True
    refused = await post(gateway, referral(1))
    assert_problem(refused, 503, "broker-unavailable")
    gateway.transport.broker.down = False

    retry = await post(gateway, referral(1))

    assert retry.status == 202
    assert "Idempotent-Replayed" not in retry.headers
    assert len(inbox(gateway, "socialtreasury")) == 1


@pytest.mark.parametrize(
    "key",
    ["k" * 256, "two words", '"unterminated', '""', '"a", "b"'],
    ids=["too-long", "space", "unterminated", "empty", "list"],
)
async def test_an_invalid_key_is_a_bad_request_and_sends_nothing(
    gateway: Gateway, key: str
) -> None:
    answer = await post(gateway, referral(1), key=key)
    assert_problem(answer, 400, "invalid-parameter")
    assert answer.body["parameter"] == "Idempotency-Key"
    assert inbox(gateway, "socialtreasury") == []


async def test_two_keys_in_one_request_are_a_bad_request(gateway: Gateway) -> None:
    headers = CIMultiDict(
        [
            ("Content-Type", "application/json"),
            *gateway.fed.auth("minhealth").items(),
            ("Idempotency-Key", "one"),
            ("Idempotency-Key", "two"),
        ]
    )
    async with gateway.http.post(PUBLISH, data=json.dumps(referral()), headers=headers) as resp:
        problem = await resp.json(content_type=PROBLEM)
    assert resp.status == 400
    assert problem["parameter"] == "Idempotency-Key"
    assert inbox(gateway, "socialtreasury") == []


async def test_the_openapi_document_describes_idempotent_publish(gateway: Gateway) -> None:
    operation = openapi_document()["paths"]["/v1/contracts/{contract}/messages"]["post"]
    [parameter] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert (parameter["in"], parameter["required"]) == ("header", False)
    responses = operation["responses"]
    assert responses["409"] == {"$ref": "#/components/responses/IdempotencyKeyInUse"}
    assert "idempotency-key-reused" in responses["422"]["description"]
    accepted = responses["202"]
    first = await post(gateway, referral(1))
    replayed = await post(gateway, referral(1))
    assert first.body == replayed.body
    jsonschema.validate(replayed.body, accepted["content"]["application/json"]["schema"])
    header = accepted["headers"]["Idempotent-Replayed"]["schema"]
    jsonschema.validate(replayed.headers["Idempotent-Replayed"], header)
    in_use = openapi_document()["components"]["responses"]["IdempotencyKeyInUse"]
    assert in_use["headers"]["Retry-After"]["required"] is True


async def test_a_retry_counts_against_the_rate_but_not_the_quota(tmp_path: Path) -> None:
    fed = Federation.create(tmp_path)
    config = fed.config(("minhealth", "socialtreasury", "acme-analytics"), bootstrap="memory")
    size = len(json.dumps(referral(1)).encode())
    limits = Limits(messages_per_s=1, burst=3, bytes_per_day=size)  # one referral a day
    config = dataclasses.replace(config, default_limits=limits)
    transport = MemoryTransport()
    async with (
        running_node(config, transport=transport, clock=FakeClock()) as node,
        aiohttp.ClientSession(base_url=node.url) as http,
    ):
        gw = Gateway(node, http, fed, transport)
        first = await post(gw, referral(1))
        retry = await post(gw, referral(1))
        assert (first.status, retry.status) == (202, 202)
        assert retry.headers["Idempotent-Replayed"] == "true"  # no quota left, none needed
        assert_problem(await post(gw, referral(2), key="another"), 429, "quota-exceeded")
        assert_problem(await post(gw, referral(1)), 429, "rate-limited")  # the 4th attempt
        assert len(inbox(gw, "socialtreasury")) == 1


async def test_a_retry_no_store_recognises_is_suppressed_by_the_receiver(
    tmp_path: Path,
) -> None:
    """Two nodes host the sender; a retry that a load balancer sends to the other one is
    not answered from a store, but it carries the same message id, and the receiving
    node delivers the message once."""
    fed = Federation.create(tmp_path)
    transport = MemoryTransport()
    receiving = fed.config(("minhealth", "socialtreasury"), bootstrap="memory")
    other = fed.config(("minhealth",), node_id="node-2", bootstrap="memory")
    async with (
        running_node(receiving, transport=transport) as a,
        running_node(other, transport=MemoryTransport(transport.broker)) as b,
    ):
        await a.wait_ready(5)
        await b.wait_ready(5)
        ids = []
        for node in (a, b):
            async with aiohttp.ClientSession(base_url=node.url) as http:
                gw = Gateway(node, http, fed, transport)
                answer = await post(gw, referral(), params={"to": "socialtreasury"})
                assert answer.status == 202
                ids.append(answer.body["message_id"])
        assert ids[0] == ids[1]  # the same id, derived from sender, key and request
        async with aiohttp.ClientSession(base_url=a.url) as http:
            async with http.get("/v1/inbox?wait=2", headers=fed.auth("socialtreasury")) as got:
                first = (await got.json())["messages"]
            await asyncio.sleep(0.3)
            async with http.get("/v1/inbox?wait=1", headers=fed.auth("socialtreasury")) as got:
                second = (await got.json())["messages"]
    assert [m["message_id"] for m in first] == ids[:1]
    assert second == []
    duplicates = [r for r in fed.audit("node-1") if r["event"] == "message.duplicate"]
    assert [d["message_id"] for d in duplicates] == ids[:1]
