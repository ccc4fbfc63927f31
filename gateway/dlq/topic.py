"""One participant's dead-letter topic: pages of entries, one entry, and replays.

Every read goes through the topic from its beginning up to its end as it stood when
the read started (so a read of a busy topic ends; an entry written meanwhile may come
along), outside any consumer group, within the Kafka request timeout. Only the metadata of a page is
kept while reading; a replay reads twice: once to choose entries from their metadata,
once more to fetch the values it replays, stopping at the last of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from gateway.audit import AuditLog
from gateway.audit.log import now_iso
from gateway.config import GatewayConfig
from gateway.dlq.entries import DeadLetter, Marks, Position, dead_letter, marker, replayed_copy
from gateway.errors import TransportError, UnknownDeadLetter
from gateway.transport import InboundRecord, Publisher, Transport

log = structlog.get_logger("gateway.dlq")

MAX_REPLAY = 100
"""Entries one replay takes at most (a bounded request, and a bounded batch to produce)."""
MAX_REPLAY_BYTES = 32 * 1024 * 1024
"""Envelope bytes one replay holds in memory at most; what does not fit is ``remaining``."""

_BATCH = 500
_FETCH_WAIT_S = 0.2

Visit = Callable[[InboundRecord], bool]
"""Takes one record; True once it has seen enough."""


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[DeadLetter]
    total: int
    """Entries in the topic when it was read."""
    next_after: Position | None
    """The cursor of the next page; None when this page is the last."""


@dataclass(frozen=True, slots=True)
class Selection:
    """What to replay: these positions, the newest entry of each of these message ids,
    or every entry not replayed yet."""

    positions: tuple[Position, ...] = ()
    message_ids: tuple[str, ...] = ()
    everything: bool = False


@dataclass(frozen=True, slots=True)
class ReplayResult:
    replayed: list[DeadLetter]
    not_found: list[Position | str]
    """Positions and message ids the selection named that are not in the topic."""
    remaining: int
    """Chosen entries left for another replay (past :data:`MAX_REPLAY` or the byte bound)."""


class DeadLetters:
    """One hosted participant's dead-letter topic."""

    def __init__(
        self,
        *,
        participant: str,
        config: GatewayConfig,
        transport: Transport,
        publisher: Publisher,
        audit: AuditLog,
    ) -> None:
        self.participant = participant
        self.topic = config.dlq_topic(participant)
        self._inbox = config.inbox_topic(participant)
        self._node = config.node_id
        self._transport = transport
        self._publisher = publisher
        self._audit = audit
        self._timeout_s = config.kafka.request_timeout_s
        self._replaying = asyncio.Lock()
        """One replay at a time: two at once would choose, and copy, the same entries."""

    async def page(self, *, after: Position | None, limit: int) -> Page:
        """Entries past ``after`` in (partition, offset) order, at most ``limit``."""
        marks, kept, total = Marks(self.topic), list[DeadLetter](), 0

        def visit(record: InboundRecord) -> bool:
            nonlocal kept, total
            if marks.take(record):
                return False
            total += 1
            if after is None or (record.partition, record.offset) > after:
                kept.append(dead_letter(record))
                if len(kept) > 2 * (limit + 1):  # bounded: only the first limit + 1 matter
                    kept = sorted(kept, key=_order)[: limit + 1]
            return False

        await self._scan(visit)
        kept.sort(key=_order)
        following = kept[limit - 1].position if len(kept) > limit else None
        return Page([marks.apply(e) for e in kept[:limit]], total, following)

    async def entry(self, where: Position) -> DeadLetter:
        """The entry at ``where``; :class:`UnknownDeadLetter` when there is none."""
        marks, found = Marks(self.topic), list[DeadLetter]()

        def visit(record: InboundRecord) -> bool:
            if not marks.take(record) and (record.partition, record.offset) == where:
                found.append(dead_letter(record))
            return False  # read on: its markers come later

        await self._scan(visit)
        if not found:
            raise UnknownDeadLetter(f"no dead letter at {where} in {self.topic}")
        return marks.apply(found[0])

    async def replay(self, selection: Selection, *, by: str) -> ReplayResult:
        """Produce the chosen entries to the inbox, with a marker each, and return once
        the broker acknowledged them all (acks=all); each is audited as message.replayed."""
        async with self._replaying:
            choice = _Choice(selection, Marks(self.topic))
            await self._scan(choice.visit)
            chosen, remaining = choice.chosen()
            records = await self._records({e.position for e in chosen})
            replayed = [e for e in chosen if e.position in records]
            gone = [e.position for e in chosen if e.position not in records]  # retention
            if replayed:
                await self._produce(replayed, records, by)
            for entry in replayed:
                self._audited(entry, by)
        log.info("dlq_replayed", participant=self.participant, count=len(replayed), by=by)
        return ReplayResult(replayed, [*choice.not_found(), *gone], remaining)

    async def _produce(
        self, entries: list[DeadLetter], records: dict[Position, InboundRecord], by: str
    ) -> None:
        at = now_iso()
        copies = [replayed_copy(records[e.position], inbox=self._inbox) for e in entries]
        markers = [marker(self.topic, e.position, by=by, node=self._node, at=at) for e in entries]
        try:
            await self._publisher.publish([*copies, *markers])
        except TransportError:
            # Some copies may be in the inbox all the same (Kafka has no all-or-nothing
            # here): they are checked like any record, and a copy that then arrives twice
            # is refused the second time as a replay. They are not audited as replayed,
            # so say which ones were attempted.
            log.warning(
                "dlq_replay_unacknowledged",
                participant=self.participant,
                positions=[str(e.position) for e in entries],
                by=by,
            )
            raise

    def where(self, position: Position) -> str:
        """``<dlq topic>/<partition>/<offset>``, as ``gw_replayed_from`` names it."""
        return f"{self.topic}/{position.partition}/{position.offset}"

    def _audited(self, entry: DeadLetter, by: str) -> None:
        self._audit.record(
            "message.replayed",
            message_id=(entry.message_id or "")[:64],
            recipient=self.participant,
            replayed_from=self.where(entry.position),
            origin=entry.origin,
            reason=entry.reason,
            envelope_sha256=entry.envelope_sha256,
            by=by,
        )

    async def _records(self, positions: set[Position]) -> dict[Position, InboundRecord]:
        """The records at ``positions``, reading no further than the last of them."""
        found: dict[Position, InboundRecord] = {}

        def visit(record: InboundRecord) -> bool:
            where = Position(record.partition, record.offset)
            if where in positions:
                found[where] = record
            return len(found) == len(positions)

        if positions:
            await self._scan(visit)
        return found

    async def _scan(self, visit: Visit) -> None:
        """Hand ``visit`` each record up to (at least) the topic's end as it is now, until
        it has seen enough. :class:`TransportError` when the broker cannot be read, or the end
        is not reached within the Kafka request timeout."""
        reader = self._transport.reader(self.topic)
        try:
            async with asyncio.timeout(self._timeout_s):
                await reader.start()
                ends = await reader.ends()
                while not await reader.reached(ends):
                    # Records written since the read began may come along: taking them is
                    # harmless, and not filtering by the snapshot keeps every record of a
                    # batch the embedded broker reports too short an end for.
                    for record in await reader.fetch(_BATCH, _FETCH_WAIT_S):
                        if visit(record):
                            return
        except TimeoutError:
            raise TransportError(
                f"the dead-letter topic {self.topic} was not read in {self._timeout_s:g} s"
            ) from None
        finally:
            await reader.stop()


class _Choice:
    """Pass one of a replay: the entries a selection names, from their metadata."""

    def __init__(self, selection: Selection, marks: Marks) -> None:
        self._selection = selection
        self._marks = marks
        self._positions = set(selection.positions)
        self._ids = set(selection.message_ids)
        self._found: dict[Position, DeadLetter] = {}
        self._newest: dict[str, DeadLetter] = {}
        self._every: list[DeadLetter] = []

    def visit(self, record: InboundRecord) -> bool:
        if self._marks.take(record):
            return False
        message_id = record.header("ce_id")
        if self._selection.everything:
            self._every.append(dead_letter(record))
        elif (record.partition, record.offset) in self._positions:
            entry = dead_letter(record)
            self._found[entry.position] = entry
        elif message_id is not None and message_id in self._ids:
            # A message dead-lettered again after a replay keeps its key, so its copies
            # share a partition: the newest is the one at the highest offset.
            known = self._newest.get(message_id)
            if known is None or record.offset > known.offset:
                self._newest[message_id] = dead_letter(record)
        return False

    def chosen(self) -> tuple[list[DeadLetter], int]:
        """The entries to replay now, in position order, and how many are left over."""
        if self._selection.everything:
            candidates = [e for e in self._every if e.position not in self._marks.seen]
        else:
            candidates = [*self._found.values(), *self._newest.values()]
        candidates.sort(key=_order)
        taken, size = list[DeadLetter](), 0
        for entry in candidates:
            too_big = bool(taken) and size + entry.envelope_size > MAX_REPLAY_BYTES
            if len(taken) == MAX_REPLAY or too_big:  # the first is taken whatever its size
                break
            taken.append(entry)
            size += entry.envelope_size
        return taken, len(candidates) - len(taken)

    def not_found(self) -> Iterable[Position | str]:
        yield from (p for p in self._selection.positions if p not in self._found)
        yield from (i for i in self._selection.message_ids if i not in self._newest)


def _order(entry: DeadLetter) -> Position:
    return entry.position
