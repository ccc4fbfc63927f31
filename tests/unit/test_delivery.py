"""Inbox bookkeeping: what is handed out, what is committed, what is dead-lettered."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.audit import AuditLog
from gateway.config import DeliveryConfig, GatewayConfig
from gateway.contracts import load_catalog
from gateway.crypto.keys import KeyStore
from gateway.delivery import Inbox
from gateway.receiving import Receiver
from gateway.transport import OutboundRecord
from tests.fakes import MemoryBroker, MemorySource, MemoryTransport
from tests.support import CONTRACTS, SECRET, Federation, referral

ME = "socialtreasury"


@dataclasses.dataclass
class World:
    fed: Federation
    config: GatewayConfig
    broker: MemoryBroker
    inbox: Inbox

    @property
    def topic(self) -> str:
        return self.config.inbox_topic(ME)

    def put(self, number: int, *, tamper: bool = False) -> str:
        message_id, value, headers = self.fed.envelope(
            sealed_for=ME, encrypted_to=ME, payload=json.dumps(referral(number)).encode()
        )
        if tamper:
            value = value[:-5] + (b"AAAAA" if value[-5:] != b"AAAAA" else b"BBBBB")
        self.broker.topics.setdefault(self.topic, []).append(
            OutboundRecord(self.topic, b"k", value, tuple(headers))
        )
        return message_id

    def committed(self) -> int:
        return self.broker.committed.get((f"{self.config.prefix}inbox.{ME}", self.topic), 0)

    async def settle(self) -> None:
        """Let the fetch loop run a few cycles."""
        for _ in range(20):
            await asyncio.sleep(0.01)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    fed = Federation.create(tmp_path)
    config = dataclasses.replace(fed.config((ME,)), delivery=DeliveryConfig(max_in_flight=3))
    transport = MemoryTransport()
    keys = KeyStore.load(config.keys_dir, hosted={ME}, secret=SECRET)
    publisher = transport.publisher()
    audit = AuditLog(node_id="n")
    inbox = Inbox(
        participant=ME,
        config=config,
        source=transport.source(
            topic=config.inbox_topic(ME), group_id=f"{config.prefix}inbox.{ME}"
        ),
        receiver=Receiver(
            participant=ME, config=config, catalog=load_catalog(CONTRACTS), keys=keys
        ),
        publisher=publisher,
        audit=audit,
    )
    task = asyncio.create_task(inbox.run())
    await inbox.started.wait()
    yield World(fed, config, transport.broker, inbox)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    audit.close()


async def test_offsets_commit_only_up_to_the_first_unacknowledged(world: World) -> None:
    ids = [world.put(n) for n in (1, 2, 3)]
    taken = await world.inbox.pull(max_messages=10, wait_s=2)
    assert [d.message.message_id for d in taken] == ids
    await world.inbox.ack([taken[1].tag, taken[2].tag])
    await world.settle()
    assert world.committed() == 0  # the first is still out
    await world.inbox.ack([taken[0].tag])
    await world.settle()
    assert world.committed() == 3


async def test_a_message_is_handed_out_once_and_acked_once(world: World) -> None:
    world.put(1)
    [first] = await world.inbox.pull(max_messages=10, wait_s=2)
    assert await world.inbox.pull(max_messages=10, wait_s=0) == []
    assert (await world.inbox.ack([first.tag])).acknowledged == [first.tag]
    assert (await world.inbox.ack([first.tag])).unknown == [first.tag]


async def test_a_ready_but_not_handed_out_message_cannot_be_acked(world: World) -> None:
    world.put(1)
    await world.settle()
    tag = f"{world.inbox._epoch}.0.0"
    assert (await world.inbox.ack([tag])).unknown == [tag]
    [delivery] = await world.inbox.pull(max_messages=1, wait_s=1)
    assert delivery.tag == tag


async def test_a_rejected_envelope_is_dead_lettered_and_committed_past(world: World) -> None:
    bad = world.put(1, tamper=True)
    good = world.put(2)
    [delivery] = await world.inbox.pull(max_messages=10, wait_s=2)
    assert delivery.message.message_id == good
    [dead] = world.broker.records(world.config.dlq_topic(ME))
    headers = dict(dead.headers)
    assert headers["gw_reason"] == b"decryption-failed"
    assert headers["ce_id"] == bad.encode()
    await world.inbox.ack([delivery.tag])
    await world.settle()
    assert world.committed() == 2


async def test_fetching_pauses_at_max_in_flight(world: World) -> None:
    for n in range(5):
        world.put(n)
    await world.settle()
    first = await world.inbox.pull(max_messages=10, wait_s=0)
    assert len(first) == 3  # max_in_flight
    await world.inbox.ack([d.tag for d in first])
    await world.settle()
    second = await world.inbox.pull(max_messages=10, wait_s=2)
    assert len(second) == 2


async def test_revoked_partitions_forget_their_messages(world: World) -> None:
    world.put(1)
    [delivery] = await world.inbox.pull(max_messages=1, wait_s=2)
    world.inbox._revoked({delivery.where})
    assert (await world.inbox.ack([delivery.tag])).unknown == [delivery.tag]


async def test_long_poll_wakes_when_a_message_arrives(world: World) -> None:
    async def later() -> None:
        await asyncio.sleep(0.1)
        world.put(1)

    adder = asyncio.create_task(later())
    started = time.monotonic()
    taken = await world.inbox.pull(max_messages=1, wait_s=5)
    await adder
    assert len(taken) == 1
    assert time.monotonic() - started < 2


async def test_memory_source_resumes_from_the_committed_offset() -> None:
    broker = MemoryBroker()
    broker.committed[("g", "t")] = 1
    broker.topics["t"] = [OutboundRecord("t", b"", b"a", ()), OutboundRecord("t", b"", b"b", ())]
    source = MemorySource(broker, "t", "g")
    await source.start(lambda _: None)
    assert [r.value for r in await source.fetch(10, 0)] == [b"b"]
