"""Copy every audit record and signed head to the ``<prefix>audit`` topic.

A central security team reads all nodes' trails from one topic. The node's
own files stay the source of truth: the shipper keeps a cursor of what the
broker acknowledged (``shipped.json`` in the audit directory), so records
appended while the broker was away, or before a restart, are read back from
the segments and sent later, in order. Each Kafka record is keyed by node id
(one node's trail stays in one partition, in order); its value is one or more
lines exactly as stored, joined by newlines (JSON Lines), so leaf hashes and
proofs can be checked from the topic alone. Headers: ``gw_kind`` (``record``
or ``head``), ``gw_node``, ``gw_first`` (the first line's seq, or head number)
and ``gw_count``. Lines are packed because each Kafka record costs the node a
produce: one per audit record would add a second produce to every message.

Delivery to the topic is at least once: after a broker timeout a batch may
arrive twice. Readers deduplicate by node, ``seq`` (or ``head``) and the line's
hash: after a power cut a node may reuse a seq the disk lost for a new record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import deque
from pathlib import Path

import structlog

from gateway.audit.log import AuditLog
from gateway.audit.store import lines, parse_record, read_heads, segments
from gateway.errors import TransportError
from gateway.transport.records import OutboundRecord, Publisher

log = structlog.get_logger("gateway.audit")

CURSOR = "shipped.json"
_BATCH = 500
_MAX_VALUE = 256 * 1024
"""Bytes of JSON Lines in one Kafka record at most (brokers accept 1 MB by default)."""
Line = tuple[str, int, bytes]
"""(kind, seq or head number, the stored line)"""
_CURSOR_EVERY_S = 1.0
_MAX_QUEUED = 50_000
"""Lines held in memory at most; past that the shipper reads from the files again."""


class AuditShipper:
    def __init__(
        self,
        audit: AuditLog,
        publisher: Publisher,
        *,
        topic: str,
        node: str,
        retry_backoff_s: float = 1.0,
    ) -> None:
        assert audit.directory is not None
        self._dir: Path = audit.directory
        self._publisher = publisher
        self._topic = topic
        self._key = node.encode()
        self._backoff = retry_backoff_s
        self._queue: deque[Line] = deque()
        self._generation = 0
        """Bumped whenever the queue is dropped: a batch in flight then pops nothing."""
        self._wake = asyncio.Event()
        self._records, self._heads = self._read_cursor(audit)
        self._behind = True  # first, catch up from the files
        self._closing = False
        self._dirty = False
        self._saved_at = time.monotonic()
        audit.subscribe(self._appended)
        audit.hold_from(lambda: self._records)  # retention spares what is not shipped

    @property
    def shipped(self) -> tuple[int, int]:
        """The next record seq and head number to ship: all before were acknowledged."""
        return self._records, self._heads

    def _appended(self, kind: str, number: int, line: bytes) -> None:
        if self._behind:
            return  # the catch-up from the files will find it
        if len(self._queue) >= _MAX_QUEUED:
            self._drop_queue()
        else:
            self._queue.append((kind, number, line))
        self._wake.set()

    def _drop_queue(self) -> None:
        self._queue.clear()
        self._generation += 1
        self._behind = True

    def _catch_up(self) -> None:
        """Queue the next lines from the files (at most ``_MAX_QUEUED``); stay behind
        until the files hold nothing more than the queue."""
        pending, complete = self._unshipped(_MAX_QUEUED)
        self._queue.clear()
        self._queue.extend(pending)
        self._generation += 1
        self._behind = not complete

    async def run(self) -> None:
        """Ship until :meth:`close`; a failed batch is retried after a pause."""
        try:
            while True:
                if self._behind and not self._queue:
                    self._catch_up()
                if not self._queue:
                    self._save_cursor()
                    if self._closing:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._ship()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("audit_shipper_failed", shipped=self.shipped)
            raise

    async def close(self, task: asyncio.Task[None], timeout_s: float) -> bool:
        """Let ``task`` (running :meth:`run`) ship what is queued, then stop it.

        Not a cancel in mid-batch, which would send that batch twice. Returns False
        when the broker did not take everything in time; the rest is sent from the
        files on the next start."""
        self._closing = True
        self._wake.set()
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return False
        return not self._queue and not self._behind

    async def flush(self, timeout_s: float) -> bool:
        """Ship what is pending without a running task; False when the broker did not
        take it all in time."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while True:
                    if self._behind and not self._queue:
                        self._catch_up()
                    if not self._queue:
                        break
                    await self._ship()
        self._save_cursor()
        return not self._queue and not self._behind

    async def _ship(self) -> None:
        batch = [self._queue[i] for i in range(min(_BATCH, len(self._queue)))]
        generation = self._generation
        try:
            await self._publisher.publish(self._pack(batch))
        except TransportError as exc:
            log.warning("audit_ship_failed", error=exc.detail, pending=len(self._queue))
            await asyncio.sleep(self._backoff)
            return
        if generation == self._generation:  # else the queue was dropped meanwhile
            for _ in batch:
                self._queue.popleft()
        for kind, number, _ in batch:
            if kind == "record":
                self._records = max(self._records, number + 1)
            else:
                self._heads = max(self._heads, number + 1)
        self._dirty = True
        if time.monotonic() - self._saved_at >= _CURSOR_EVERY_S:
            self._save_cursor()

    def _pack(self, batch: list[Line]) -> list[OutboundRecord]:
        """Consecutive lines of one kind, as JSON Lines in as few Kafka records as the size
        bound allows (one Kafka record per audit record would add a second produce to every
        message: measured in benchmarks/audit_e2e.py)."""
        packed: list[OutboundRecord] = []
        i = 0
        while i < len(batch):
            kind, size, j = batch[i][0], 0, i
            while j < len(batch) and batch[j][0] == kind and size + len(batch[j][2]) < _MAX_VALUE:
                size += len(batch[j][2]) + 1
                j += 1
            j = max(j, i + 1)  # one line always goes (a record is at most 64 KiB)
            headers = (
                ("gw_kind", kind.encode()),
                ("gw_node", self._key),
                ("gw_first", str(batch[i][1]).encode()),
                ("gw_count", str(j - i).encode()),
            )
            value = b"\n".join(line for _, _, line in batch[i:j])
            packed.append(OutboundRecord(self._topic, self._key, value, headers))
            i = j
        return packed

    def _unshipped(self, limit: int) -> tuple[list[Line], bool]:
        """Up to ``limit`` records from seq ``records`` and heads from number ``heads`` on,
        in the order they were written (a head follows the records it covers), and
        whether that is everything the files hold."""
        pending: list[Line] = []
        heads: list[tuple[int, int, bytes]] = []
        for _, raw, complete in read_heads(self._dir):
            numbered = _numbered(raw) if complete else None
            if numbered is not None and numbered[0] >= self._heads:
                heads.append((numbered[1], numbered[0], raw))
        next_head = 0
        present = segments(self._dir)
        for i, (_, path) in enumerate(present):
            if i + 1 < len(present) and present[i + 1][0] <= self._records:
                continue  # wholly shipped
            for line in lines(path):
                record = parse_record(line.raw) if line.complete else None
                seq = record.get("seq") if record else None
                if type(seq) is not int or seq < self._records:
                    continue
                while next_head < len(heads) and heads[next_head][0] <= seq:
                    pending.append(("head", heads[next_head][1], heads[next_head][2]))
                    next_head += 1
                if len(pending) >= limit:
                    return pending, False
                pending.append(("record", seq, line.raw))
        pending.extend(("head", number, raw) for _, number, raw in heads[next_head:])
        return pending, True

    def _read_cursor(self, audit: AuditLog) -> tuple[int, int]:
        """The saved cursor, kept within what the log holds: never past its end (which
        would skip records), never before its first retained record."""
        try:
            data = json.loads((self._dir / CURSOR).read_text())
            records, heads = data["records"], data["heads"]
            if type(records) is not int or type(heads) is not int:
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError):
            records, heads = 0, 0
        present = segments(self._dir)
        first = present[0][0] if present else 0
        if records < first:
            log.warning("audit_not_shipped_before_retention", lost_from=records, to=first)
        return min(max(records, first), audit.size), max(0, min(heads, audit.next_head))

    def _save_cursor(self) -> None:
        """Persist the cursor: when idle, and at most once a second under load (a crash
        may then send up to a second's records again: delivery is at least once)."""
        if self._dirty:
            self._write_cursor()
            self._dirty = False
            self._saved_at = time.monotonic()

    def _write_cursor(self) -> None:
        path = self._dir / CURSOR
        temporary = path.with_name(f".{CURSOR}.tmp")
        with temporary.open("w") as handle:
            handle.write(json.dumps({"records": self._records, "heads": self._heads}))
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)


def _numbered(raw: bytes) -> tuple[int, int] | None:
    """A stored head's (number, size), unchecked."""
    entry = parse_record(raw)
    head = entry.get("tree_head") if entry else None
    if not isinstance(head, dict):
        return None
    number, size = head.get("head"), head.get("size")
    return (number, size) if type(number) is int and type(size) is int else None
