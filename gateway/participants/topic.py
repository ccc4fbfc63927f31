"""The registry as a Kafka topic: ``<prefix>registry``, compacted, one partition.

In a cluster every node follows the same topic instead of its own directory,
so one approval or suspension reaches all of them. Each Kafka record is one
bundle, keyed by participant id; compaction keeps the newest per key, and
since the serial decides, a broker that has not compacted yet (or never does)
only makes the first read longer. One partition gives a total order, so a sponsor's record is
read before the contractor records signed after it.

The topic is not trusted: what a node takes from it holds only when its
signature chain ends at the node's own trust anchor, exactly as for files, and
when it is stored under its own key (a record under another participant's key
could push that participant's newest record out of the compacted topic). A
node keeps what it holds in its state directory, so after a restart the
serials it saw stay its floor whatever the topic holds then. Who may write to
the topic is still worth restricting (Kafka ACLs): a node that has never seen
a participant's newest record takes the newest the topic still holds.

    follower = RegistryFollower(view, transport.reader(config.registry_topic), topic)
    await follower.catch_up(timeout_s=30)     # before the node serves
    task = asyncio.create_task(follower.run())

    await publish_records(config, [record])   # the CLI, after approve/suspend/...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence

import structlog

from gateway.config import GatewayConfig
from gateway.errors import TransportError
from gateway.participants.contract_records import KEY_PREFIX, ContractRecord
from gateway.participants.follow import RegistryView
from gateway.participants.registry import Record
from gateway.transport import InboundRecord, OutboundRecord, TopicReader
from gateway.transport.kafka import KafkaTransport

log = structlog.get_logger("gateway.registry")

_BATCH = 500
_FETCH_WAIT_S = 0.5
_DRAIN_WAIT_S = 0.2
_RETRY_S = 1.0


def outbound(topic: str, record: Record | ContractRecord) -> OutboundRecord:
    """The Kafka record of a registry record: keyed by participant id, or by
    ``contract:<id>@<version>``, with a ``gw_kind`` header for tools."""
    value = json.dumps(record.bundle(), sort_keys=True, separators=(",", ":")).encode()
    if isinstance(record, ContractRecord):
        key, kind = f"{KEY_PREFIX}{record.contract.ref}", b"contract"
    else:
        key, kind = record.id, b"participant"
    return OutboundRecord(topic, key.encode(), value, (("gw_kind", kind),))


async def publish_records(config: GatewayConfig, records: Sequence[Record]) -> None:
    """Produce ``records`` to the cluster's registry topic, acknowledged by all replicas."""
    transport = KafkaTransport(config.kafka)
    await transport.ensure_topics([], compacted=[config.registry_topic])
    publisher = transport.publisher()
    await publisher.start()
    try:
        await publisher.publish([outbound(config.registry_topic, r) for r in records])
    finally:
        await publisher.stop()


class RegistryFollower:
    def __init__(self, view: RegistryView, reader: TopicReader, topic: str) -> None:
        self._view = view
        self._reader = reader
        self._topic = topic

    async def catch_up(self, timeout_s: float) -> int:
        """Start reading and take in the whole topic as it stands; the records read.

        Raises :class:`TransportError` when the broker cannot be read, or when the end
        is not reached within ``timeout_s``: a node does not serve on half a registry."""
        await self._reader.start()
        started, taken = time.monotonic(), 0
        try:
            async with asyncio.timeout(timeout_s):
                with self._view.catching_up():
                    while await self._reader.lag() > 0:
                        taken += self._take(await self._reader.fetch(_BATCH, _FETCH_WAIT_S))
                    # A broker may report a partition's end short of a batch's last
                    # records (the embedded one does): read on until a fetch is empty.
                    while batch := await self._reader.fetch(_BATCH, _DRAIN_WAIT_S):
                        taken += self._take(batch)
        except TimeoutError:
            await self._reader.stop()
            raise TransportError(
                f"the registry topic {self._topic} was not read to its end in {timeout_s:g} s"
            ) from None
        except BaseException:
            await self._reader.stop()
            raise
        log.info(
            "registry_caught_up",
            topic=self._topic,
            records=taken,
            participants=len(self._view.registry.records()),
            seconds=round(time.monotonic() - started, 3),
        )
        return taken

    async def run(self) -> None:
        """Follow the topic until cancelled; a broker outage is logged and waited out
        (the last good registry stays in force meanwhile)."""
        try:
            while True:
                try:
                    self._take(await self._reader.fetch(_BATCH, _FETCH_WAIT_S))
                except TransportError as exc:
                    log.error("registry_follow_failed", topic=self._topic, error=exc.detail)
                    await asyncio.sleep(_RETRY_S)
                except Exception as exc:
                    log.error("registry_follow_failed", topic=self._topic, error=type(exc).__name__)
                    await asyncio.sleep(_RETRY_S)
        finally:
            await self._reader.stop()

    async def stop(self) -> None:
        """Stop reading (again is harmless)."""
        await self._reader.stop()

    def _take(self, records: Sequence[InboundRecord]) -> int:
        for record in records:
            origin = f"{record.topic}:{record.partition}:{record.offset}"
            try:
                self._view.take(record.value, origin, record.key)
            except Exception as exc:
                # A record that breaks what takes it in (or a full disk while writing
                # what it says) is skipped: the follower goes on, or every later
                # suspension would be lost, and no node could start again.
                log.error(
                    "registry_record_failed", origin=origin, error=f"{type(exc).__name__}: {exc}"
                )
                with contextlib.suppress(Exception):
                    self._view.audit.record(
                        "registry.refused",
                        file=origin,
                        reason="internal",
                        detail=f"{type(exc).__name__}"[:300],
                    )
        return len(records)
