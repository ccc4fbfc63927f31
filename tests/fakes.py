"""An in-memory transport behind the same protocols as the Kafka one."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from gateway.errors import TransportError
from gateway.transport import InboundRecord, OutboundRecord, Partition
from gateway.transport.records import RevokedCallback


class MemoryBroker:
    def __init__(self) -> None:
        self.topics: dict[str, list[OutboundRecord]] = {}
        self.committed: dict[tuple[str, str], int] = {}
        self.down = False

    def records(self, topic: str) -> list[OutboundRecord]:
        return self.topics.get(topic, [])


class MemoryPublisher:
    def __init__(self, broker: MemoryBroker) -> None:
        self._broker = broker

    async def start(self) -> None:
        if self._broker.down:
            raise TransportError("broker is down")

    async def stop(self) -> None:
        return None

    async def publish(self, records: Sequence[OutboundRecord]) -> None:
        if self._broker.down:
            raise TransportError("the broker did not acknowledge the message in time")
        for record in records:
            self._broker.topics.setdefault(record.topic, []).append(record)


class MemorySource:
    """A single-partition topic read from the group's committed offset."""

    def __init__(self, broker: MemoryBroker, topic: str, group_id: str) -> None:
        self._broker = broker
        self._topic = topic
        self._group = group_id
        self._position = 0

    async def start(self, on_revoked: RevokedCallback) -> None:
        self._position = self._broker.committed.get((self._group, self._topic), 0)

    async def fetch(self, max_records: int, timeout_s: float) -> list[InboundRecord]:
        records = self._broker.records(self._topic)[self._position : self._position + max_records]
        if not records:
            await asyncio.sleep(min(timeout_s, 0.01))
        start = self._position
        self._position += len(records)
        return [
            InboundRecord(self._topic, 0, start + i, r.key, r.value, r.headers)
            for i, r in enumerate(records)
        ]

    async def commit(self, offsets: Mapping[Partition, int]) -> None:
        for where, offset in offsets.items():
            self._broker.committed[(self._group, where.topic)] = offset

    async def lag(self) -> int:
        return len(self._broker.records(self._topic)) - self._position

    async def stop(self) -> None:
        return None


class MemoryReader:
    """A topic read from its beginning, outside any group."""

    def __init__(self, broker: MemoryBroker, topic: str) -> None:
        self._broker = broker
        self._topic = topic
        self._position = 0
        self.running = False

    async def start(self) -> None:
        if self._broker.down:
            raise TransportError("broker is down")
        self.running = True

    async def fetch(self, max_records: int, timeout_s: float) -> list[InboundRecord]:
        if self._broker.down:
            raise TransportError(f"reading {self._topic} failed")
        records = self._broker.records(self._topic)[self._position : self._position + max_records]
        if not records:
            await asyncio.sleep(min(timeout_s, 0.01))
        start = self._position
        self._position += len(records)
        return [
            InboundRecord(self._topic, 0, start + i, r.key, r.value, r.headers)
            for i, r in enumerate(records)
        ]

    async def lag(self) -> int:
        return len(self._broker.records(self._topic)) - self._position

    async def ends(self) -> dict[int, int]:
        if self._broker.down:
            raise TransportError(f"reading {self._topic} failed")
        return {0: len(self._broker.records(self._topic))}

    async def reached(self, ends: Mapping[int, int]) -> bool:
        return self._position >= ends.get(0, 0)

    async def stop(self) -> None:
        self.running = False


class MemoryTransport:
    def __init__(self, broker: MemoryBroker | None = None) -> None:
        self.broker = broker or MemoryBroker()

    def publisher(self) -> MemoryPublisher:
        return MemoryPublisher(self.broker)

    def source(self, *, topic: str, group_id: str) -> MemorySource:
        return MemorySource(self.broker, topic, group_id)

    def reader(self, topic: str) -> MemoryReader:
        return MemoryReader(self.broker, topic)

    async def ensure_topics(self, topics: Sequence[str], *, compacted: Sequence[str] = ()) -> None:
        for topic in [*topics, *compacted]:
            self.broker.topics.setdefault(topic, [])
