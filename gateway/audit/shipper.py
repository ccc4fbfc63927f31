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
arrive twice. Readers deduplicate by (node, ``seq``) for records and (node,
``head``) for heads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._records, self._heads = self._read_cursor()
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

    def _appended(self, kind: str, line: bytes) -> None:
        if self._behind:
            return  # the catch-up from the files will find it
        if len(self._queue) >= _MAX_QUEUED:
            self._queue.clear()
            self._behind = True
        else:
            self._queue.append((kind, line))
        self._wake.set()

    async def run(self) -> None:
        """Ship until :meth:`close`; a failed batch is retried after a pause."""
        while True:
            if self._behind:
                self._behind = False
                self._queue.clear()
                self._queue.extend(self._unshipped())
            if not self._queue:
                self._save_cursor()
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._ship()

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
        return not self._queue

    async def flush(self, timeout_s: float) -> bool:
        """Ship what is pending without a running task; False when the broker did not
        take it all in time."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                if self._behind:
                    self._behind = False
                    self._queue.clear()
                    self._queue.extend(self._unshipped())
                while self._queue:
                    await self._ship()
        self._save_cursor()
        return not self._queue and not self._behind

    async def _ship(self) -> None:
        batch = [self._queue[i] for i in range(min(_BATCH, len(self._queue)))]
        records = self._pack(batch)
        try:
            await self._publisher.publish(records)
        except TransportError as exc:
            log.warning("audit_ship_failed", error=exc.detail, pending=len(self._queue))
            await asyncio.sleep(self._backoff)
            return
        for _ in batch:
            self._queue.popleft()
        for kind, line in batch:
            if kind == "record":
                self._records += 1
            else:
                numbered = _numbered(line)
                self._heads = numbered[0] + 1 if numbered else self._heads
        self._dirty = True
        if time.monotonic() - self._saved_at >= _CURSOR_EVERY_S:
            self._save_cursor()

    def _pack(self, batch: list[tuple[str, bytes]]) -> list[OutboundRecord]:
        """Consecutive lines of one kind, as JSON Lines in as few Kafka records as the size
        bound allows (one Kafka record per audit record would add a second produce to every
        message: measured in benchmarks/audit_e2e.py)."""
        packed: list[OutboundRecord] = []
        records = self._records
        i = 0
        while i < len(batch):
            kind, size, j = batch[i][0], 0, i
            while j < len(batch) and batch[j][0] == kind and size + len(batch[j][1]) < _MAX_VALUE:
                size += len(batch[j][1]) + 1
                j += 1
            j = max(j, i + 1)  # one line always goes, whatever its size
            lines = [line for _, line in batch[i:j]]
            if kind == "record":
                first, records = records, records + len(lines)
            else:
                numbered = _numbered(lines[0])
                first = numbered[0] if numbered else self._heads
            headers = (
                ("gw_kind", kind.encode()),
                ("gw_node", self._key),
                ("gw_first", str(first).encode()),
                ("gw_count", str(len(lines)).encode()),
            )
            packed.append(OutboundRecord(self._topic, self._key, b"\n".join(lines), headers))
            i = j
        return packed

    def _unshipped(self) -> list[tuple[str, bytes]]:
        """Records from seq ``records`` and heads from number ``heads`` on, in the order
        they were written (a head follows the records it covers)."""
        pending: list[tuple[str, bytes]] = []
        heads = []
        for _, raw, complete in read_heads(self._dir):
            numbered = _numbered(raw) if complete else None
            if numbered is not None and numbered[0] >= self._heads:
                heads.append((numbered[1], raw))
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
                    pending.append(("head", heads[next_head][1]))
                    next_head += 1
                pending.append(("record", line.raw))
        pending.extend(("head", raw) for _, raw in heads[next_head:])
        return pending

    def _read_cursor(self) -> tuple[int, int]:
        try:
            data = json.loads((self._dir / CURSOR).read_text())
            return int(data["records"]), int(data["heads"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0, 0

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
        temporary.write_text(json.dumps({"records": self._records, "heads": self._heads}))
        temporary.replace(path)


def _numbered(raw: bytes) -> tuple[int, int] | None:
    """A stored head's (number, size), unchecked."""
    entry = parse_record(raw)
    head = entry.get("tree_head") if entry else None
    if not isinstance(head, dict):
        return None
    number, size = head.get("head"), head.get("size")
    return (number, size) if type(number) is int and type(size) is int else None
