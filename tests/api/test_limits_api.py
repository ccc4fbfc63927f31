"""Publish limits over HTTP: 429 with Retry-After, a ``message.throttled`` audit record,
and nothing in Kafka for a refused publish. Time only moves when a test moves it."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.config import Limits
from gateway.node import running_node
from tests.clocks import FakeClock
from tests.fakes import MemoryTransport
from tests.support import CONTRACTS, REFERRAL, Federation, referral

HOSTED = ("minhealth", "socialtreasury", "acme-analytics")
MEASURE = "social.support-measure"
PROBLEM = "application/problem+json"
SIZE = len(json.dumps(referral()).encode())
"""Payload bytes of every ``referral(n)`` (its number is zero-padded)."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Limited:
    """A one-node gateway whose publish limits run on ``clock``."""

    fed: Federation
    http: aiohttp.ClientSession
    transport: MemoryTransport
    clock: FakeClock

    async def post(
        self,
        sender: str,
        body: bytes,
        *,
        contract: str = REFERRAL,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        sent = {"Content-Type": "application/json", **self.fed.auth(sender), **(headers or {})}
        async with self.http.post(
            f"/v1/contracts/{contract}/messages", data=body, headers=sent
        ) as response:
            answer = await response.json(content_type=None)
            return Answer(response.status, dict(response.headers), answer)

    async def refer(self, number: int = 1) -> Answer:
        return await self.post("minhealth", json.dumps(referral(number)).encode())

    async def measure(self) -> Answer:
        return await self.post("socialtreasury", json.dumps(measure()).encode(), contract=MEASURE)

    def inbox(self, participant: str) -> int:
        return len(self.transport.broker.records(f"{self.fed.prefix}inbox.{participant}"))

    def audit(self, event: str) -> list[dict[str, Any]]:
        return [r for r in self.fed.audit("node-1") if r["event"] == event]


Start = Callable[..., Awaitable[Limited]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """Start the node once, with per-participant ``limits`` and a ``default``."""
    async with contextlib.AsyncExitStack() as stack:

        async def started(
            limits: dict[str, Limits],
            default: Limits | None = None,
            clock: FakeClock | None = None,
        ) -> Limited:
            fed = Federation.create(tmp_path)
            config = fed.config(HOSTED, bootstrap="memory")
            config = dataclasses.replace(
                config,
                participants=tuple(
                    dataclasses.replace(p, limits=limits.get(p.id)) for p in config.participants
                ),
                default_limits=default,
            )
            clock = clock or FakeClock()
            transport = MemoryTransport()
            node = await stack.enter_async_context(
                running_node(config, transport=transport, clock=clock)
            )
            await node.wait_ready(5)
            http = await stack.enter_async_context(aiohttp.ClientSession(base_url=node.url))
            return Limited(fed, http, transport, clock)

        yield started


def measure() -> dict[str, Any]:
    document = yaml.safe_load((CONTRACTS / MEASURE / "1.0.0.yaml").read_text())
    example: dict[str, Any] = document["examples"]["valid"][0]
    return example


def assert_throttled(answer: Answer, code: str, retry_after_s: int) -> None:
    assert answer.status == 429
    assert answer.headers["Content-Type"].startswith(PROBLEM)
    assert answer.headers["Retry-After"] == str(retry_after_s)
    assert answer.body["type"] == f"urn:gateway:problem:{code}"
    assert answer.body["status"] == 429


# -- rate ----------------------------------------------------------------------------


async def test_a_burst_beyond_the_rate_gets_429_with_retry_after_and_sends_nothing(
    start: Start,
) -> None:
    gw = await start({"minhealth": Limits(messages_per_s=0.5, burst=3)})

    answers = [await gw.refer(n) for n in range(1, 6)]

    assert [a.status for a in answers] == [202, 202, 202, 429, 429]
    assert_throttled(answers[3], "rate-limited", 2)  # one token back at 0.5/s
    assert answers[3].body["title"] == "Publish rate exceeded"
    assert (gw.inbox("socialtreasury"), gw.inbox("acme-analytics")) == (3, 3)
    assert len(gw.audit("message.accepted")) == 3
    assert gw.audit("message.rejected") == []
    throttled = gw.audit("message.throttled")
    assert len(throttled) == 2
    assert {k: throttled[0][k] for k in ("sender", "contract", "reason", "outcome")} == {
        "sender": "minhealth",
        "contract": REFERRAL,
        "reason": "rate",
        "outcome": "throttled",
    }
    assert throttled[0]["retry_after_s"] == 2
    assert throttled[0]["payload_size"] == SIZE
    assert "payload" not in throttled[0]
    assert "REF-2026-000004" not in json.dumps(throttled)  # never the payload


async def test_waiting_retry_after_lets_the_next_publish_through(start: Start) -> None:
    gw = await start({"minhealth": Limits(messages_per_s=0.1, burst=1)})
    assert (await gw.refer(1)).status == 202
    assert_throttled(await gw.refer(2), "rate-limited", 10)

    gw.clock.advance(4)
    assert_throttled(await gw.refer(3), "rate-limited", 6)
    gw.clock.advance(6)

    assert (await gw.refer(4)).status == 202
    assert gw.inbox("socialtreasury") == 2


async def test_a_participant_under_its_limits_is_unaffected(start: Start) -> None:
    gw = await start({"minhealth": Limits(messages_per_s=100.0, burst=10, bytes_per_day=10 * SIZE)})

    answers = [await gw.refer(n) for n in range(1, 6)]

    assert [a.status for a in answers] == [202] * 5
    assert all("Retry-After" not in a.headers for a in answers)
    assert gw.inbox("socialtreasury") == 5
    assert gw.audit("message.throttled") == []


async def test_each_participant_has_its_own_rate(start: Start) -> None:
    gw = await start(
        {
            "minhealth": Limits(messages_per_s=0.5, burst=1),
            "socialtreasury": Limits(messages_per_s=0.5, burst=2),
        }
    )
    assert (await gw.refer(1)).status == 202
    assert (await gw.refer(2)).status == 429

    measures = [await gw.measure() for _ in range(3)]

    assert [a.status for a in measures] == [202, 202, 429]
    assert [r["sender"] for r in gw.audit("message.throttled")] == ["minhealth", "socialtreasury"]
    assert gw.inbox("minhealth") == 2  # the measures, the referral went to the others
    assert gw.inbox("socialtreasury") == 1


async def test_default_limits_apply_to_participants_without_their_own(start: Start) -> None:
    gw = await start(
        {"minhealth": Limits(messages_per_s=0.5, burst=3)},
        default=Limits(messages_per_s=0.5, burst=1),
    )

    referrals = [await gw.refer(n) for n in range(1, 5)]
    measures = [await gw.measure() for _ in range(2)]

    assert [a.status for a in referrals] == [202, 202, 202, 429]
    assert [a.status for a in measures] == [202, 429]


async def test_the_rate_is_checked_before_the_request_is_read_or_validated(
    start: Start,
) -> None:
    gw = await start({"minhealth": Limits(messages_per_s=0.5, burst=1)})
    assert (await gw.refer()).status == 202

    junk = await gw.post("minhealth", b"<not json/>", headers={"Content-Type": "text/xml"})

    assert_throttled(junk, "rate-limited", 2)  # not 415: no work was done on it
    assert gw.audit("message.throttled")[-1]["payload_size"] == len(b"<not json/>")
    assert gw.audit("message.rejected") == []


async def test_every_attempt_takes_from_the_rate_even_a_refused_one(start: Start) -> None:
    gw = await start({"minhealth": Limits(messages_per_s=0.5, burst=2)})
    assert (await gw.post("minhealth", b"{")).status == 400

    assert (await gw.refer(1)).status == 202
    assert (await gw.refer(2)).status == 429


async def test_a_caller_without_a_valid_token_is_refused_before_the_rate(start: Start) -> None:
    gw = await start({"minhealth": Limits(messages_per_s=0.5, burst=1)})
    async with gw.http.post(
        f"/v1/contracts/{REFERRAL}/messages",
        json=referral(),
        headers={"Authorization": "Bearer not-a-token"},
    ) as response:
        assert response.status == 401

    assert (await gw.refer()).status == 202  # the stranger took nothing from minhealth
    assert gw.audit("message.throttled") == []


# -- daily quota ---------------------------------------------------------------------


async def test_quota_exhaustion_answers_quota_exceeded_until_utc_midnight(start: Start) -> None:
    clock = FakeClock(wall=datetime(2026, 11, 26, 22, 0, tzinfo=UTC))
    gw = await start({"minhealth": Limits(bytes_per_day=2 * SIZE + SIZE // 2)}, clock=clock)
    assert [(await gw.refer(n)).status for n in (1, 2)] == [202, 202]

    refused = await gw.refer(3)

    assert_throttled(refused, "quota-exceeded", 7200)
    assert refused.body["title"] == "Daily quota exceeded"
    assert gw.inbox("socialtreasury") == 2
    [record] = gw.audit("message.throttled")
    assert (record["reason"], record["retry_after_s"]) == ("quota", 7200)
    assert (record["sender"], record["payload_size"]) == ("minhealth", SIZE)

    clock.advance(7200)

    assert (await gw.refer(4)).status == 202
    assert gw.inbox("socialtreasury") == 3


async def test_only_accepted_bytes_count_toward_the_quota(start: Start) -> None:
    gw = await start({"minhealth": Limits(bytes_per_day=SIZE)})
    invalid = referral()
    del invalid["diagnosis"]
    assert (await gw.post("minhealth", json.dumps(invalid).encode())).status == 422
    gw.transport.broker.down = True
    assert (await gw.refer(1)).status == 503
    gw.transport.broker.down = False

    assert (await gw.refer(2)).status == 202
    assert_throttled(await gw.refer(3), "quota-exceeded", 43_200)
    assert gw.inbox("socialtreasury") == 1


async def test_a_payload_larger_than_the_quota_is_refused_before_validation(
    start: Start,
) -> None:
    gw = await start({"minhealth": Limits(bytes_per_day=SIZE - 1)})

    answer = await gw.refer()

    assert_throttled(answer, "quota-exceeded", 43_200)
    assert gw.audit("message.rejected") == []
    assert gw.inbox("socialtreasury") == 0


async def test_the_quota_of_one_participant_leaves_another_alone(start: Start) -> None:
    gw = await start(
        {"minhealth": Limits(bytes_per_day=SIZE)},
        default=Limits(bytes_per_day=10 * SIZE),
    )
    assert (await gw.refer(1)).status == 202
    assert (await gw.refer(2)).status == 429

    assert [(await gw.measure()).status for _ in range(3)] == [202, 202, 202]
