"""Pull delivery: a hosted participant's inbox, with delivery tags and acks.

A background task reads the participant's inbox topic as a member of its
consumer group, runs each record through the :class:`Receiver`, and keeps
verified messages until the participant pulls and acknowledges them.
Offsets are committed only up to the first message not yet acknowledged in
each partition, so anything unacknowledged comes back after a restart.
Records that fail verification go to the dead-letter topic with their reason
and are never delivered.

    inbox = Inbox(participant="socialtreasury", source=..., receiver=..., ...)
    task = asyncio.create_task(inbox.run())
    deliveries = await inbox.pull(max_messages=10, wait_s=5)
    await inbox.ack([d.tag for d in deliveries])
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

import structlog

from gateway.audit import AuditLog, digest
from gateway.config import GatewayConfig
from gateway.errors import RejectReason, TransportError, VerificationError
from gateway.instruments import DeliveryOutcome, NodeMetrics
from gateway.receiving import ReceivedMessage, Receiver
from gateway.replay import SeenStore
from gateway.replies import Replies
from gateway.tracing import Span, Tracer, parse
from gateway.transport import InboundRecord, OutboundRecord, Partition, Publisher, RecordSource

log = structlog.get_logger("gateway.delivery")

_FETCH_WAIT_S = 0.5
_RECENT = 10_000
_FINAL_COMMIT_S = 2.0


class State(StrEnum):
    READY = "ready"
    HANDED_OUT = "handed-out"
    DELAYED = "delayed"
    """Given back with a delay (nack): handed out again when it passes."""
    DONE = "done"


@dataclass(slots=True)
class Delivery:
    tag: str
    message: ReceivedMessage
    where: Partition
    offset: int
    record: InboundRecord
    """The envelope as read: what goes to the dead-letter topic if it cannot be delivered."""
    span: Span
    """The delivery's span: a child of the publish span, ended when first delivered."""
    state: State = field(default=State.READY)
    due: float = 0.0
    """Handed out: when it is handed out again unless acknowledged (monotonic time)."""
    handed: int = 0
    """How many times it was handed out."""


class Seen(NamedTuple):
    """What an inbox remembers of a message it verified, for a reply to it."""

    message_id: str
    sender: str
    contract: str
    version: str


@dataclass(frozen=True, slots=True)
class AckResult:
    acknowledged: list[str]
    unknown: list[str]


class Inbox:
    def __init__(
        self,
        *,
        participant: str,
        config: GatewayConfig,
        source: RecordSource,
        receiver: Receiver,
        publisher: Publisher,
        audit: AuditLog,
        seen: SeenStore | None = None,
        visibility_timeout_s: float | None = None,
        replies: Replies | None = None,
        metrics: NodeMetrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        """``visibility_timeout_s``: pulled messages not acknowledged within it are handed
        out again (None: never, for push, whose pusher holds each until it is settled)."""
        self.participant = participant
        self._metrics = metrics or NodeMetrics()
        self._tracer = tracer or Tracer()
        self._visibility_s = visibility_timeout_s
        self._replies = replies
        self._recent: OrderedDict[str, Seen] = OrderedDict()
        """Messages verified lately (bounded), by id: what a reply may answer. Never the
        payload: plaintext does not outlive its delivery in this process."""
        self._config = config
        self._source = source
        self._receiver = receiver
        self._publisher = publisher
        self._audit = audit
        self._seen = seen
        self._epoch = secrets.token_hex(4)
        self._pending: dict[Partition, dict[int, Delivery | None]] = {}
        self._by_tag: dict[str, Delivery] = {}
        self._held: dict[str, str] = {}
        """Message id -> delivery tag of every message held, for replay defence."""
        self._ready: deque[Delivery] = deque()
        self._arrived = asyncio.Condition()
        self._room = asyncio.Event()
        self._room.set()
        self.started = asyncio.Event()
        self._timers: set[asyncio.Task[None]] = set()

    # -- consuming side ------------------------------------------------------

    async def run(self) -> None:
        """Fetch, verify and buffer records until cancelled.

        Whatever was buffered before is dropped first: a (re)started consumer
        reads again from the last committed offsets.
        """
        self.started.clear()
        self._revoked(set(self._pending))
        self._epoch = secrets.token_hex(4)  # tags of an earlier run are never taken again
        await self._source.start(self._revoked)
        self.started.set()
        try:
            while True:
                await self._room.wait()
                room = self._config.delivery.max_in_flight - self._in_flight()
                records = await self._source.fetch(max(room, 1), _FETCH_WAIT_S)
                for record in records:
                    await self._take(record)
                await self._expire()
                await self._commit()
        finally:
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            # Stopping: commit what was acknowledged, so a restart does not hand it out
            # again (bounded: a broker that does not answer must not hold the shutdown).
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_FINAL_COMMIT_S):
                    await self._commit()
            await self._source.stop()

    async def _take(self, record: InboundRecord) -> None:
        slots = self._pending.setdefault(record.where, {})
        try:
            message = self._receiver.receive(record)
        except VerificationError as exc:
            if exc.reason is RejectReason.REPLAYED:
                self._duplicate(record, exc)
            else:
                await self._dead_letter(record, exc.reason.value, exc.detail)
            slots[record.offset] = None  # settled: nothing to deliver
            return
        tag = f"{self._epoch}.{record.partition}.{record.offset}"
        span = self._tracer.start("deliver", parent=message.traceparent, recipient=self.participant)
        delivery = Delivery(tag, message, record.where, record.offset, record, span)
        slots[record.offset] = delivery
        self._by_tag[tag] = delivery
        self._held[message.message_id] = tag
        self._remember(message)
        if self._replies is not None and self._replies.claim(delivery):
            # A reply a request is waiting for: handed to that call, which acknowledges
            # it; unacknowledged, it comes back after the visibility timeout.
            delivery.state = State.HANDED_OUT
            delivery.handed = 1
            delivery.due = time.monotonic() + (self._visibility_s or 0)
            self._delivered(delivery, mode="reply")
            return
        self._ready.append(delivery)
        if self._in_flight() >= self._config.delivery.max_in_flight:
            self._room.clear()
        async with self._arrived:
            self._arrived.notify_all()

    def _duplicate(self, record: InboundRecord, exc: VerificationError) -> None:
        """A message this participant acknowledged (within the replay window) or holds
        right now, read again: after a crash before the offset commit, a producer's
        retry, or a replay. It is settled without a second delivery and without a dead
        letter (nothing failed); the audit record shows it, for a security team."""
        self._metrics.delivered(record.header("ce_type") or "", DeliveryOutcome.DUPLICATE)
        self._audit.record(
            "message.duplicate",
            recipient=self.participant,
            message_id=(record.header("ce_id") or "")[:64],
            detail=exc.detail[:200],
            origin=f"{record.topic}/{record.partition}/{record.offset}",
            envelope_sha256=digest(record.value),
        )

    async def _dead_letter(
        self, record: InboundRecord, reason: str, detail: str, *, attempts: int | None = None
    ) -> None:
        headers = (
            *record.headers,
            ("gw_reason", reason.encode()),
            ("gw_detail", detail[:500].encode()),
            ("gw_node", self._config.node_id.encode()),
            ("gw_origin", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            *((("gw_attempts", str(attempts).encode()),) if attempts is not None else ()),
        )
        dead = OutboundRecord(
            self._config.dlq_topic(self.participant), record.key or b"", record.value, headers
        )
        while True:  # a verified refusal must not be lost: retry until the DLQ has it
            try:
                await self._publisher.publish([dead])
                break
            except TransportError:
                await asyncio.sleep(self._config.delivery.retry_backoff_s)
        self._metrics.delivered(record.header("ce_type") or "", DeliveryOutcome.DEAD_LETTERED)
        self._metrics.dead_letters.inc(self.participant, reason)
        trace = parse(record.header("traceparent"))
        traced = {"trace_id": trace.trace_id} if trace is not None else {}
        if attempts is None:  # refused by a check, not by the endpoint
            self._audit.record(
                "envelope.rejected",
                recipient=self.participant,
                message_id=(record.header("ce_id") or "")[:64],
                reason=reason,
                detail=detail[:200],
                origin=f"{record.topic}/{record.partition}/{record.offset}",
                envelope_sha256=digest(record.value),
            )
        self._audit.record(
            "message.dead_lettered",
            recipient=self.participant,
            message_id=(record.header("ce_id") or "")[:64],
            reason=reason,
            topic=dead.topic,
            **({"attempts": attempts} if attempts is not None else {}),
            **traced,
        )

    def _revoked(self, partitions: set[Partition]) -> None:
        """Another member owns these partitions now: forget their messages."""
        for where in partitions:
            for delivery in (self._pending.pop(where, None) or {}).values():
                if delivery is not None:
                    self._forget(delivery)
        self._ready = deque(d for d in self._ready if d.where not in partitions)
        self._room.set()

    async def _expire(self) -> None:
        """Hand out again what was pulled and not acknowledged within the visibility
        timeout (a consumer that crashed, or lost the tags)."""
        if self._visibility_s is None:
            return
        now = time.monotonic()
        late = [d for d in self._by_tag.values() if d.state is State.HANDED_OUT and d.due <= now]
        if late:
            await self._return(late, reason="visibility-timeout")

    async def _return(self, deliveries: list[Delivery], *, reason: str) -> None:
        """Back to the front of the queue, in their original order."""
        for delivery in sorted(deliveries, key=lambda d: (d.where, d.offset), reverse=True):
            if self._by_tag.get(delivery.tag) is not delivery:
                continue  # settled, or its partition went elsewhere, meanwhile
            delivery.state = State.READY
            self._ready.appendleft(delivery)
            self._metrics.delivered(delivery.message.contract, DeliveryOutcome.RELEASED)
            self._audit.record(
                "message.released",
                recipient=self.participant,
                message_id=delivery.message.message_id,
                reason=reason,
                handed=delivery.handed,
            )
        async with self._arrived:
            self._arrived.notify_all()

    async def nack(self, tags: Iterable[str], *, delay_s: float) -> AckResult:
        """Give handed-out messages back: they are handed out again after ``delay_s``."""
        released, unknown = [], []
        for tag in tags:
            delivery = self._by_tag.get(tag)
            if delivery is None or delivery.state is not State.HANDED_OUT:
                unknown.append(tag)
                continue
            released.append(delivery)
        if delay_s <= 0:
            await self._return(released, reason="nack")
        else:
            for delivery in released:  # not handed to anyone, not yet ready either
                delivery.state = State.DELAYED
            timer = asyncio.create_task(self._later(released, delay_s), name="inbox:nack")
            self._timers.add(timer)
            timer.add_done_callback(self._timers.discard)
        return AckResult([d.tag for d in released], unknown)

    async def _later(self, deliveries: list[Delivery], delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await self._return([d for d in deliveries if d.state is State.DELAYED], reason="nack")

    def _in_flight(self) -> int:
        return len(self._by_tag)

    async def _commit(self) -> None:
        offsets = {}
        for where, slots in self._pending.items():
            settled = None
            for offset in list(slots):
                delivery = slots[offset]
                if delivery is not None and delivery.state is not State.DONE:
                    break
                settled = offset
                del slots[offset]
            if settled is not None:
                offsets[where] = settled + 1
        if offsets:
            try:
                await self._source.commit(offsets)
            except TransportError as exc:  # acked messages may come back: dedup is by id
                log.warning("commit_failed", participant=self.participant, error=exc.detail)

    # -- participant side ----------------------------------------------------

    async def pull(self, *, max_messages: int, wait_s: float) -> list[Delivery]:
        """Up to ``max_messages`` verified messages, waiting up to ``wait_s`` for one."""
        taken = await self.hand_out(max_messages=max_messages, wait_s=wait_s)
        for delivery in taken:
            self._delivered(delivery, mode="pull")
        return taken

    def _delivered(self, delivery: Delivery, *, mode: str, **fields: object) -> None:
        """Record a hand-over: audited each time; counted, timed end to end and its span
        ended the first time (a message handed out again was counted as released)."""
        self._audit.record("message.delivered", **self._fields(delivery), mode=mode, **fields)
        if delivery.handed > 1:
            return
        m = delivery.message
        self._metrics.delivered(m.contract, DeliveryOutcome.DELIVERED)
        if m.sent_at is not None:
            elapsed = max(0.0, time.time() - m.sent_at)
            self._metrics.end_to_end.observe(elapsed, self._metrics.contract(m.contract))
        delivery.span.end()

    async def hand_out(self, *, max_messages: int, wait_s: float) -> list[Delivery]:
        """Take ready messages without recording a delivery (push records its own, when
        the endpoint answered)."""
        if not self._ready and wait_s > 0:
            async with self._arrived:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._arrived.wait_for(lambda: bool(self._ready)), wait_s
                    )
        taken: list[Delivery] = []
        due = time.monotonic() + (self._visibility_s or 0)
        while self._ready and len(taken) < max_messages:
            delivery = self._ready.popleft()
            if delivery.state is not State.READY:
                continue  # settled meanwhile (acknowledged late, after a release)
            delivery.state = State.HANDED_OUT
            delivery.due = due
            delivery.handed += 1
            taken.append(delivery)
        return taken

    async def pushed(self, delivery: Delivery, *, attempts: int) -> None:
        """The endpoint took ``delivery`` (a 2xx): it is delivered and acknowledged."""
        self._delivered(delivery, mode="push", attempts=attempts)
        await self.ack([delivery.tag])

    async def give_up(self, delivery: Delivery, *, detail: str, attempts: int) -> None:
        """The endpoint never took ``delivery`` within the retry budget: it goes to the
        dead-letter topic (reason ``webhook-failed``) and the inbox moves past it."""
        if not self.current(delivery):
            return  # its partition went to another member meanwhile
        await self._dead_letter(delivery.record, "webhook-failed", detail, attempts=attempts)
        delivery.span.end(error="webhook-failed")
        self._forget(delivery)
        delivery.state = State.DONE
        self._room.set()

    async def ack(self, tags: Iterable[str]) -> AckResult:
        """Acknowledge handed-out messages; their offsets commit on the next cycle."""
        acknowledged, unknown, settled = [], [], []
        for tag in tags:
            delivery = self._by_tag.get(tag)
            # Also after a release (late, or nacked and then done after all): the
            # consumer has it; what it acknowledges is not handed out again.
            if delivery is None or delivery.state is State.DONE or delivery.handed == 0:
                unknown.append(tag)
                continue
            self._forget(delivery)
            delivery.state = State.DONE
            acknowledged.append(tag)
            settled.append(delivery.message.message_id)
            self._metrics.delivered(delivery.message.contract, DeliveryOutcome.ACKNOWLEDGED)
            self._audit.record("message.acknowledged", **self._fields(delivery))
        if acknowledged:
            self._room.set()
        if settled and self._seen is not None:
            # Remembered before the offset commits: a redelivery is then a replay.
            self._seen.mark(self.participant, settled)
        return AckResult(acknowledged, unknown)

    def _remember(self, message: ReceivedMessage) -> None:
        self._recent[message.message_id] = Seen(
            message.message_id, message.sender, message.contract, message.version
        )
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

    async def stats(self) -> dict[str, int]:
        """What the inbox holds now: ready to hand out, handed out (or pushing), and given
        back with a delay; with the source's lag, what a consumer is behind by."""
        states = [d.state for d in self._by_tag.values()]
        return {
            "ready": states.count(State.READY),
            "handed_out": states.count(State.HANDED_OUT),
            "delayed": states.count(State.DELAYED),
            "lag": await self._source.lag(),
        }

    def received(self, message_id: str) -> Seen | None:
        """A message this inbox verified lately (the last 10,000), for a reply to it."""
        return self._recent.get(message_id)

    def holds(self, message_id: str) -> bool:
        """Whether a message with this id waits in this inbox now (not yet acknowledged)."""
        return message_id in self._held

    def current(self, delivery: Delivery) -> bool:
        """Still this inbox's to deliver (not settled, its partition not gone elsewhere)."""
        return self._by_tag.get(delivery.tag) is delivery and delivery.state is not State.DONE

    def _forget(self, delivery: Delivery) -> None:
        if self._by_tag.get(delivery.tag) is delivery:
            del self._by_tag[delivery.tag]
        if self._held.get(delivery.message.message_id) == delivery.tag:
            del self._held[delivery.message.message_id]

    def _fields(self, delivery: Delivery) -> dict[str, object]:
        m = delivery.message
        return {
            "message_id": m.message_id,
            "contract": f"{m.contract}@{m.version}",
            "sender": m.sender,
            "recipient": m.recipient,
            "payload_sha256": digest(m.payload),
            "payload_size": len(m.payload),
            **({"migrated_from": m.migrated_from} if m.migrated_from else {}),
            "trace_id": delivery.span.context.trace_id,
        }
