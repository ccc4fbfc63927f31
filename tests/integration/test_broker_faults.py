"""The broker stopped under a publish stream: a publisher gets 503 with Retry-After while
it is gone, never a 2xx for a message Kafka does not hold, and publishing resumes
when the broker is back, without a node restart.

The embedded broker (Tansu) keeps its data in memory, so it is faulted two ways:
frozen (SIGSTOP, then SIGCONT: it keeps its data, and every 2xx'd message id is
then read back from the topic, requests in flight at the freeze included), and
killed (SIGKILL) then started again on the same port: it comes back empty, so
what it held before is checked just before the kill and what was accepted after
the restart is read back from the new broker.

Tansu creates a topic on first use when it does not have it (as after a restart), and
such a topic acknowledges records that a fetch then never returns: the restarted
broker gets its topics created (as a restarted cluster that lost its data would need)
before the stream resumes. With Apache Kafka topics outlive a broker restart.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from gateway.transport.broker import EmbeddedBroker
from gateway.transport.kafka import ensure_topics
from tests.integration.conftest import read_topic
from tests.integration.helpers import free_port, node
from tests.support import REFERRAL, Federation, referral

pytestmark = pytest.mark.integration

ME = "socialtreasury"
PUBLISHERS = 3


@dataclass
class Answer:
    status: int
    at: float
    message_id: str | None = None
    retry_after: str | None = None
    problem_type: str | None = None


@dataclass
class Stream:
    """Publishers that keep publishing while ``flowing`` is set, recording every answer."""

    url: str
    fed: Federation
    answers: list[Answer] = field(default_factory=list)
    flowing: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    number: int = 0

    def accepted(self, since: float = 0.0) -> list[str]:
        return [a.message_id for a in self.answers if a.message_id and a.at >= since]

    def refused(self, since: float = 0.0) -> list[Answer]:
        return [a for a in self.answers if a.status >= 300 and a.at >= since]

    async def publisher(self, http: aiohttp.ClientSession) -> None:
        while True:
            await self.flowing.wait()
            self.number += 1
            self.in_flight += 1
            try:
                self.answers.append(await self._one(http, self.number))
            finally:
                self.in_flight -= 1

    async def _one(self, http: aiohttp.ClientSession, number: int) -> Answer:
        async with http.post(
            f"{self.url}/v1/contracts/{REFERRAL}/messages?to={ME}",
            json=referral(number),
            headers=self.fed.auth("minhealth"),
        ) as response:
            body = await response.json(content_type=None)
            answer = Answer(response.status, time.monotonic())
            if response.status == 202:
                answer.message_id = body["message_id"]
            else:
                answer.retry_after = response.headers.get("Retry-After")
                answer.problem_type = response.headers.get("Content-Type")
            return answer

    async def pause(self) -> None:
        """No new request, and none in flight, once this returns."""
        self.flowing.clear()
        await until(lambda: self.in_flight == 0, 30, "requests in flight to finish")


async def until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.05)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of this test's own (the session's one is shared: never stopped)."""
    with EmbeddedBroker.start(port=free_port(), log_path=tmp_path / "broker.log") as started:
        yield started


async def ids_in(bootstrap: str, topic: str) -> set[str]:
    return {headers["ce_id"].decode() for _, headers in await read_topic(bootstrap, topic)}


def assert_refusals_are_503_with_retry_after(refused: list[Answer]) -> None:
    assert refused
    for answer in refused:
        assert answer.status == 503
        assert answer.retry_after is not None
        assert int(answer.retry_after) >= 1
        assert (answer.problem_type or "").startswith("application/problem+json")


async def test_a_publish_stream_survives_the_broker_frozen_then_killed_and_restarted(
    fed: Federation, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    config = fed.config(
        ("minhealth",),
        node_id="node-a",
        bootstrap=broker.bootstrap,
        publish_timeout_s=2.0,
        request_timeout_s=2.0,
    )
    inbox = config.inbox_topic(ME)
    await ensure_topics(config.kafka, [inbox])
    async with (
        node(fed, broker.bootstrap, ("minhealth",), "node-a", config=config) as running,
        aiohttp.ClientSession() as http,
    ):
        stream = Stream(running.url, fed)
        workers = [asyncio.create_task(stream.publisher(http)) for _ in range(PUBLISHERS)]
        try:
            # 1. Frozen mid-stream: requests in flight wait, then get 503.
            stream.flowing.set()
            await until(lambda: len(stream.accepted()) >= 20, 30, "a first 20 accepted")
            frozen_at = time.monotonic()
            os.kill(broker.pid, signal.SIGSTOP)
            await until(lambda: len(stream.refused(frozen_at)) >= PUBLISHERS, 20, "503s")
            os.kill(broker.pid, signal.SIGCONT)
            thawed_at = time.monotonic()
            await until(lambda: len(stream.accepted(thawed_at)) >= 20, 30, "accepted again")
            await stream.pause()
            frozen = stream.refused(frozen_at)
            assert_refusals_are_503_with_retry_after(frozen)
            held = await ids_in(broker.bootstrap, inbox)
            assert set(stream.accepted()) <= held  # requests in flight at the freeze included
            refused_yet_held = len(held - set(stream.accepted()))
            accepted_before_kill = len(stream.accepted())

            # 2. Killed with nothing in flight: every publish is refused until it is back.
            os.kill(broker.pid, signal.SIGKILL)
            broker.stop()  # reaps it
            killed_at = time.monotonic()
            stream.flowing.set()
            await until(lambda: len(stream.refused(killed_at)) >= PUBLISHERS, 20, "503s")
            await stream.pause()
            assert stream.accepted(killed_at) == []
            # What the producer still held has expired by now (request_timeout_s): the
            # empty broker gets its topics created before anything is published to it.
            await asyncio.sleep(config.kafka.request_timeout_s)
            restarted = EmbeddedBroker.start(port=broker.port, log_path=tmp_path / "broker.log")
            try:
                await ensure_topics(config.kafka, [inbox])
                back_at = time.monotonic()
                stream.flowing.set()
                await until(lambda: len(stream.accepted(back_at)) >= 20, 40, "accepted after")
                await stream.pause()
                down = stream.refused(killed_at)
                assert_refusals_are_503_with_retry_after(down)
                after = stream.accepted(killed_at)
                assert set(after) <= await ids_in(restarted.bootstrap, inbox)
            finally:
                restarted.stop()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
    refused_ids = len(stream.answers) - len(stream.accepted())
    print(
        f"\nfrozen: {len(frozen)} refused ({refused_yet_held} of them in Kafka after all),"
        f" {accepted_before_kill} accepted, all in Kafka;"
        f" killed: {len(down)} refused, {len(after)} accepted after the restart, all in Kafka;"
        f" {refused_ids} refused in all"
    )
    audit = fed.audit("node-a")
    rejected = [r for r in audit if r["event"] == "message.rejected"]
    assert len(rejected) == refused_ids
    assert {r["reason"] for r in rejected} == {"broker-unavailable"}
