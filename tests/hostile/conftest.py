"""One running node per test module, attacked over real HTTP on a loopback port.

The node runs on the in-memory transport, so "nothing reached Kafka" is an exact
comparison of its records; requests go out as raw bytes (:mod:`tests.hostile.raw`).
:meth:`Target.refused` is the one assertion every hostile input must pass.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from gateway.node import RunningNode, running_node
from tests.fakes import MemoryTransport
from tests.hostile.raw import Answer, exchange, request
from tests.support import Federation, referral

HOSTED = ("minhealth", "socialtreasury", "acme-analytics")
SENDER = "minhealth"
CONTRACT = "health.patient-referral"
PUBLISH = f"/v1/contracts/{CONTRACT}/messages"
BODY_READ_TIMEOUT_S = 1.0
MAX_BATCH_BYTES = 2 * 1_048_576
REFUSALS = frozenset({"message.rejected", "request.refused", "access.denied"})
"""Audit events that record a refused request of a known caller."""


class Trail(Enum):
    """Where a refusal must leave its trace."""

    CALLER = "a refusal record in the audit log naming the authenticated sender"
    AUTH = "an auth.failed record: the credentials were refused"
    LOG = "no audit record (nobody authenticated), a request_refused/http_unparsable log line"
    EITHER = "CALLER or LOG: which one depends on whether a route matched at all"


@dataclass
class Target:
    node: RunningNode
    fed: Federation
    transport: MemoryTransport
    port: int

    def auth(self, participant: str = SENDER) -> tuple[str, str]:
        return ("Authorization", f"Bearer {self.fed.tokens[participant]}")

    def kafka(self) -> dict[str, int]:
        return {topic: len(records) for topic, records in self.transport.broker.topics.items()}

    def audit(self) -> list[dict[str, Any]]:
        return self.fed.audit("node-1")

    async def refused(
        self,
        data: bytes,
        *,
        trail: Trail = Trail.CALLER,
        statuses: frozenset[int] | None = None,
        timeout_s: float = 10.0,
    ) -> Answer:
        """Send ``data``; assert a 4xx problem document, nothing new in Kafka, the
        refusal's trace, and a node that still accepts a good publish."""
        kafka, audited = self.kafka(), len(self.audit())
        with capture_logs() as logs:
            answer = await exchange(self.port, data, timeout_s=timeout_s)
        assert_problem(answer, statuses)
        assert self.kafka() == kafka, "a refused request left records in Kafka"
        assert_trail(self.audit()[audited:], logs, trail, answer)
        await self.still_serving()
        return answer

    async def batch_refused(self, data: bytes) -> list[dict[str, Any]]:
        """A batch answers 200 with one result per item: every item must be a 4xx problem,
        audited as ``message.rejected``, with nothing in Kafka."""
        kafka, audited = self.kafka(), len(self.audit())
        answer = await exchange(self.port, data)
        assert answer.status == 200, answer.body[:300]
        results: list[dict[str, Any]] = answer.json()["results"]
        for result in results:
            assert 400 <= result["status"] < 500, result
            problem = result["problem"]
            assert problem["status"] == result["status"], problem
            assert problem["title"], problem
            assert problem["type"].startswith("urn:gateway:problem:")
        assert self.kafka() == kafka, "a refused batch item left records in Kafka"
        rejected = [r for r in self.audit()[audited:] if r["event"] == "message.rejected"]
        assert len(rejected) == len(results)
        assert all(r["sender"] == SENDER for r in rejected)
        await self.still_serving()
        return results

    async def still_serving(self) -> None:
        before = sum(self.kafka().values())
        answer = await exchange(self.port, good_publish(self))
        assert answer.status == 202, answer.body[:300]
        assert sum(self.kafka().values()) == before + 2  # one envelope per consumer


def good_publish(target: Target) -> bytes:
    return request(
        "POST",
        PUBLISH,
        headers=[target.auth(), ("Content-Type", "application/json")],
        body=json.dumps(referral()).encode(),
    )


def assert_problem(answer: Answer, statuses: frozenset[int] | None = None) -> None:
    assert answer.status is not None, "the server closed the connection without an answer"
    assert 400 <= answer.status < 500, (answer.status, answer.body[:300])
    if statuses is not None:
        assert answer.status in statuses, (answer.status, answer.body[:300])
    assert answer.headers["content-type"].startswith("application/problem+json")
    document = answer.json()
    assert document["status"] == answer.status
    assert document["type"].startswith("urn:gateway:problem:")
    assert isinstance(document["title"], str)
    assert document["title"]
    assert "Traceback" not in answer.body.decode("utf-8", "replace")


def assert_trail(
    records: list[dict[str, Any]],
    logs: Sequence[Mapping[str, Any]],
    trail: Trail,
    answer: Answer,
) -> None:
    events = [r["event"] for r in records]
    if trail is Trail.EITHER:
        caller = any(r["event"] in REFUSALS for r in records)
        trail = Trail.CALLER if caller else Trail.LOG
    if trail is Trail.CALLER:
        refusals = [r for r in records if r["event"] in REFUSALS]
        assert refusals, f"no refusal audited, only {events}"
        assert all(r.get("principal", r.get("sender")) == SENDER for r in refusals)
        return
    if trail is Trail.AUTH:
        assert "auth.failed" in events, events
        return
    assert not REFUSALS.intersection(events), events
    assert "auth.failed" not in events, events
    lines = [e for e in logs if e["event"] in ("request_refused", "http_unparsable")]
    assert [e["status"] for e in lines] == [answer.status], logs


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def target(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Target]:
    fed = Federation.create(tmp_path_factory.mktemp("hostile"))
    config = fed.config(HOSTED, bootstrap="memory")
    http = dataclasses.replace(
        config.http, body_read_timeout_s=BODY_READ_TIMEOUT_S, max_batch_bytes=MAX_BATCH_BYTES
    )
    transport = MemoryTransport()
    async with running_node(dataclasses.replace(config, http=http), transport=transport) as node:
        await node.wait_ready(5)
        yield Target(node, fed, transport, int(node.url.rsplit(":", 1)[1]))
