"""aiokafka behind the transport protocols, plus topic provisioning.

Producers use ``acks=all`` and wait for every record's acknowledgement, so
a publish that returns means the records are durable in Kafka. Consumers
never auto-commit: offsets move only when the delivery layer says so. TLS,
SASL and the codec come from :mod:`gateway.transport.kafka_options`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from gateway.config import KafkaConfig
from gateway.errors import TransportError
from gateway.transport.kafka_options import client_options
from gateway.transport.records import (
    InboundRecord,
    OutboundRecord,
    Partition,
    RevokedCallback,
)

log = structlog.get_logger("gateway.transport")


def _common(config: KafkaConfig) -> dict[str, Any]:
    return client_options(config)


def producer_options(config: KafkaConfig) -> dict[str, Any]:
    """Every record acknowledged by all in-sync replicas (with the brokers'
    ``min.insync.replicas=2``, a write survives the loss of one broker), batched per
    partition for ``linger_ms`` up to ``producer_batch_bytes``."""
    return {
        **_common(config),
        "acks": "all",
        "enable_idempotence": config.enable_idempotence,
        "compression_type": None if config.compression == "none" else config.compression,
        "linger_ms": config.linger_ms,
        "max_batch_size": config.producer_batch_bytes,
    }


class KafkaPublisher:
    def __init__(self, *, config: KafkaConfig) -> None:
        self._config = config
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(**producer_options(self._config))
        try:
            await asyncio.wait_for(producer.start(), self._config.request_timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            await producer.stop()
            raise TransportError(f"cannot connect to Kafka at {self._config.bootstrap}") from exc
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, records: Sequence[OutboundRecord]) -> None:
        producer = self._producer
        if producer is None:
            raise TransportError("producer is not running")
        try:
            async with asyncio.timeout(self._config.publish_timeout_s):
                futures = [
                    await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
                    for r in records
                ]
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError) as exc:
            log.warning("publish_failed", error=type(exc).__name__, records=len(records))
            raise TransportError("the broker did not acknowledge the message in time") from exc


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, callback: RevokedCallback) -> None:
        self._callback = callback

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._callback({Partition(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        log.info("partitions_assigned", partitions=sorted(str(tp) for tp in assigned))


def inbox_consumer_options(config: KafkaConfig, group_id: str) -> dict[str, Any]:
    """A group member that never commits on its own: offsets move when delivery says so."""
    return {
        **_common(config),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": int(config.session_timeout_s * 1000),
        "heartbeat_interval_ms": int(config.heartbeat_interval_s * 1000),
        "rebalance_timeout_ms": int(config.rebalance_timeout_s * 1000),
        "fetch_max_wait_ms": config.fetch_max_wait_ms,
    }


class KafkaRecordSource:
    def __init__(self, *, config: KafkaConfig, topic: str, group_id: str) -> None:
        self._config = config
        self._topic = topic
        self._group_id = group_id
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self, on_revoked: RevokedCallback) -> None:
        consumer = AIOKafkaConsumer(**inbox_consumer_options(self._config, self._group_id))
        try:
            await consumer.start()
        except (KafkaError, OSError) as exc:
            await consumer.stop()
            raise TransportError(f"cannot connect to Kafka at {self._config.bootstrap}") from exc
        consumer.subscribe([self._topic], listener=_Revocations(on_revoked))
        self._consumer = consumer

    async def fetch(self, max_records: int, timeout_s: float) -> list[InboundRecord]:
        consumer = self._running()
        batches = await consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        return _inbound(batches)

    async def commit(self, offsets: Mapping[Partition, int]) -> None:
        consumer = self._running()
        try:
            await consumer.commit({TopicPartition(*p): o for p, o in offsets.items()})
        except KafkaError as exc:
            raise TransportError(f"offset commit failed: {type(exc).__name__}") from exc

    async def lag(self) -> int:
        consumer = self._consumer
        if consumer is None:
            return 0
        behind = 0
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)  # from the last fetch; None before one
            if highwater is None:
                continue
            try:
                behind += max(0, highwater - await consumer.position(tp))
            except KafkaError:
                continue
        return behind

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    def _running(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise TransportError("consumer is not running")
        return self._consumer


def _inbound(batches: Mapping[TopicPartition, Sequence[Any]]) -> list[InboundRecord]:
    return [
        InboundRecord(
            topic=m.topic,
            partition=m.partition,
            offset=m.offset,
            key=m.key,
            value=m.value or b"",
            headers=tuple(m.headers or ()),
        )
        for messages in batches.values()
        for m in messages
    ]


class KafkaTopicReader:
    """Every partition of one topic, assigned (no group) and read from the beginning."""

    def __init__(self, *, config: KafkaConfig, topic: str) -> None:
        self._config = config
        self._topic = topic
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            **_common(self._config),
            group_id=None,
            enable_auto_commit=False,
            # An offset gone (retention) means reading from the oldest record left,
            # never jumping to the end and skipping what was not read.
            auto_offset_reset="earliest",
            # A quiet topic where a change must land fast (a suspension): the broker
            # answers a fetch at once when records come, else after 100 ms, not 500.
            fetch_max_wait_ms=100,
        )
        try:
            await consumer.start()
            partitions = await self._partitions_of(consumer)
            if not partitions:
                raise TransportError(f"topic {self._topic} does not exist")
            self._partitions = [TopicPartition(self._topic, p) for p in sorted(partitions)]
            consumer.assign(self._partitions)
            await consumer.seek_to_beginning(*self._partitions)
        except (KafkaError, OSError) as exc:
            await consumer.stop()
            raise TransportError(f"cannot connect to Kafka at {self._config.bootstrap}") from exc
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer

    async def _partitions_of(self, consumer: AIOKafkaConsumer) -> set[int]:
        partitions: set[int] = consumer.partitions_for_topic(self._topic) or set()
        if not partitions:  # metadata is fetched lazily: topics() fetches it now
            await consumer.topics()
            partitions = consumer.partitions_for_topic(self._topic) or set()
        return partitions

    async def fetch(self, max_records: int, timeout_s: float) -> list[InboundRecord]:
        consumer = self._running()
        try:
            batches = await consumer.getmany(
                timeout_ms=int(timeout_s * 1000), max_records=max_records
            )
        except KafkaError as exc:
            raise TransportError(f"reading {self._topic} failed: {type(exc).__name__}") from exc
        return _inbound(batches)

    async def lag(self) -> int:
        ends, positions = await self.ends(), await self._positions()
        return sum(max(0, ends[p] - at) for p, at in positions.items())

    async def ends(self) -> dict[int, int]:
        consumer = self._running()
        try:
            ends = await consumer.end_offsets(self._partitions)
        except KafkaError as exc:
            raise TransportError(f"reading {self._topic} failed: {type(exc).__name__}") from exc
        return {tp.partition: at for tp, at in ends.items()}

    async def reached(self, ends: Mapping[int, int]) -> bool:
        positions = await self._positions()
        return all(at >= ends.get(p, 0) for p, at in positions.items())

    async def _positions(self) -> dict[int, int]:
        consumer = self._running()
        try:
            return {tp.partition: await consumer.position(tp) for tp in self._partitions}
        except KafkaError as exc:
            raise TransportError(f"reading {self._topic} failed: {type(exc).__name__}") from exc

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    def _running(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise TransportError("topic reader is not running")
        return self._consumer


async def ensure_topics(
    config: KafkaConfig, topics: Iterable[str], *, compacted: Iterable[str] = ()
) -> None:
    """Create the topics that do not exist yet (idempotent); ``compacted`` ones with one
    partition and ``cleanup.policy=compact``."""
    plain, compact = set(topics), set(compacted)
    admin = AIOKafkaAdminClient(**_common(config))
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(t, config.topic_partitions, config.replication_factor)
            for t in sorted(plain - compact - existing)
        ] + [
            NewTopic(t, 1, config.replication_factor, topic_configs=_COMPACTED)
            for t in sorted(compact - existing)
        ]
        if missing:
            await _create(admin, missing)
    except KafkaError as exc:
        raise TransportError(f"cannot create topics: {type(exc).__name__}") from exc
    finally:
        await admin.close()


_COMPACTED = {"cleanup.policy": "compact"}


async def _create(admin: AIOKafkaAdminClient, new: list[NewTopic]) -> None:
    topics = [t.name for t in new]
    try:
        await admin.create_topics(new)
    except TopicAlreadyExistsError:
        log.info("topics_exist", topics=topics)
    else:
        log.info("topics_created", topics=topics)


class KafkaTransport:
    """The :class:`gateway.transport.Transport` of a real Kafka-protocol cluster."""

    def __init__(self, config: KafkaConfig) -> None:
        self._config = config

    def publisher(self) -> KafkaPublisher:
        return KafkaPublisher(config=self._config)

    def source(self, *, topic: str, group_id: str) -> KafkaRecordSource:
        return KafkaRecordSource(config=self._config, topic=topic, group_id=group_id)

    def reader(self, topic: str) -> KafkaTopicReader:
        return KafkaTopicReader(config=self._config, topic=topic)

    async def ensure_topics(self, topics: Sequence[str], *, compacted: Sequence[str] = ()) -> None:
        if self._config.create_topics:
            await ensure_topics(self._config, topics, compacted=compacted)
