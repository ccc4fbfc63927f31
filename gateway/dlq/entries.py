"""The records of a dead-letter topic: entries, and the markers replays leave.

An entry is a refused record as the inbox consumer wrote it: the original key, value
and headers plus the ``gw_*`` diagnostics. A marker is a record with an empty value
and a ``gw_replayed: <dlq topic>/<partition>/<offset>`` header naming the entry a
replay took, with ``gw_by``, ``gw_node`` and ``gw_time``.

    >>> Position.parse("0:17")
    Position(partition=0, offset=17)
    >>> str(Position(2, 5))
    '2:5'
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from gateway.audit import digest
from gateway.transport import InboundRecord, OutboundRecord

DIAGNOSTIC = "gw_"
"""The prefix of the headers the gateway adds to a dead letter."""
REPLAYED_FROM = "gw_replayed_from"
"""On a replayed copy: the dead letter it was made from."""

_MAX_TEXT = 256
_MAX_DETAIL = 500
_DIGITS = re.compile(r"[0-9]{1,18}")
_DATASCHEMA = "urn:gateway:contract:"


class Position(NamedTuple):
    """Where a dead letter is: its partition and offset in the dead-letter topic."""

    partition: int
    offset: int

    @classmethod
    def parse(cls, text: str, separator: str = ":") -> Position:
        """``PARTITION:OFFSET`` such as ``0:17``; :class:`ValueError` otherwise."""
        partition, found, offset = text.partition(separator)
        if not found or not _DIGITS.fullmatch(partition) or not _DIGITS.fullmatch(offset):
            example = f"0{separator}17"
            raise ValueError(f"'{text[:40]}' is not PARTITION{separator}OFFSET, e.g. {example}")
        return cls(int(partition), int(offset))

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of a dead-letter topic. The text fields come from record headers, which
    anyone with write access to the topic could have set: they describe, never prove."""

    partition: int
    offset: int
    message_id: str | None
    sender: str | None
    contract: str | None
    version: str | None
    """From ``ce_dataschema``, when it names a version of ``contract``."""
    reason: str | None
    detail: str | None
    node: str | None
    """The node that refused it."""
    origin: str | None
    """Where it was refused: ``<inbox topic>/<partition>/<offset>``."""
    attempts: int | None
    """Delivery attempts before it was given up, where delivery counted them."""
    replayed_from: str | None
    """Set when this entry is a replayed copy that was refused again."""
    time: str | None
    """``ce_time``: when the sender published it."""
    envelope_size: int
    envelope_sha256: str
    replays: int = 0
    """How often it was replayed (the markers in the topic)."""
    last_replayed: str | None = None

    @property
    def position(self) -> Position:
        return Position(self.partition, self.offset)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def dead_letter(record: InboundRecord) -> DeadLetter:
    """The entry a dead-letter record stands for: metadata and digest, never the value."""
    contract = _text(record, "ce_type")
    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        message_id=_text(record, "ce_id"),
        sender=_text(record, "ce_source"),
        contract=contract,
        version=_version(contract, _text(record, "ce_dataschema")),
        reason=_text(record, "gw_reason"),
        detail=_text(record, "gw_detail", _MAX_DETAIL),
        node=_text(record, "gw_node"),
        origin=_text(record, "gw_origin"),
        attempts=_count(_text(record, "gw_attempts")),
        replayed_from=_text(record, REPLAYED_FROM),
        time=_text(record, "ce_time"),
        envelope_size=len(record.value),
        envelope_sha256=digest(record.value),
    )


def replayed_copy(record: InboundRecord, *, inbox: str) -> OutboundRecord:
    """The dead letter ``record`` as a new inbox record: its key, value and original
    headers, without the diagnostics, naming where it came from."""
    headers = tuple(h for h in record.headers if not h[0].startswith(DIAGNOSTIC))
    source = f"{record.topic}/{record.partition}/{record.offset}".encode()
    return OutboundRecord(
        inbox, record.key or b"", record.value, (*headers, (REPLAYED_FROM, source))
    )


def marker(topic: str, where: Position, *, by: str, node: str, at: str) -> OutboundRecord:
    """The record saying that the entry at ``where`` was replayed."""
    headers = {
        "gw_replayed": f"{topic}/{where.partition}/{where.offset}",
        "gw_by": by,
        "gw_node": node,
        "gw_time": at,
    }
    return OutboundRecord(topic, b"", b"", tuple((k, v.encode()) for k, v in headers.items()))


class Marks:
    """The markers of one topic: how often, and when last, each entry was replayed."""

    def __init__(self, topic: str) -> None:
        self._prefix = f"{topic}/"
        self.seen: dict[Position, tuple[int, str | None]] = {}

    def take(self, record: InboundRecord) -> bool:
        """Count ``record`` if it is a marker; whether it was one (and so no entry)."""
        target = record.header("gw_replayed")
        if target is None or record.value:
            return False
        if target.startswith(self._prefix):
            try:
                where = Position.parse(target.removeprefix(self._prefix), "/")
            except ValueError:
                return True
            count, _ = self.seen.get(where, (0, None))
            self.seen[where] = (count + 1, _text(record, "gw_time"))
        return True

    def apply(self, entry: DeadLetter) -> DeadLetter:
        """``entry`` with its replay count and time."""
        count, last = self.seen.get(entry.position, (0, None))
        return dataclasses.replace(entry, replays=count, last_replayed=last) if count else entry


def _text(record: InboundRecord, name: str, limit: int = _MAX_TEXT) -> str | None:
    value = record.header(name)
    return value[:limit] if value is not None else None


def _count(text: str | None) -> int | None:
    return int(text) if text is not None and _DIGITS.fullmatch(text) else None


def _version(contract: str | None, dataschema: str | None) -> str | None:
    prefix = f"{_DATASCHEMA}{contract}@"
    if contract is None or dataschema is None or not dataschema.startswith(prefix):
        return None
    return dataschema.removeprefix(prefix) or None
