"""Integration fixtures: a real Kafka-protocol broker over TCP (``bootstrap``, in
tests/conftest.py), a federation, raw clients to look behind the gateway's back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.support import Federation

pytestmark = pytest.mark.integration


@pytest.fixture
def fed(tmp_path: Path) -> Federation:
    return Federation.create(tmp_path)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A raw producer, to put records in inboxes behind the gateway's back."""
    raw = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await raw.start()
    yield raw
    await raw.stop()


async def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
    """Every record currently in ``topic`` (value, headers), without joining a group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()  # fresh metadata
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: list[tuple[bytes, dict[str, bytes]]] = []
        remaining = sum(ends.values())
        while remaining > len(found):
            batches = await consumer.getmany(timeout_ms=2000)
            if not batches:
                break
            for messages in batches.values():
                found += [(m.value, dict(m.headers)) for m in messages]
        return found
    finally:
        await consumer.stop()
