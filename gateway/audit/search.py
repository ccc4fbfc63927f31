"""Finding audit records: by message, participant, contract, outcome, event and time.

What a security team asks of a node's log, over HTTP (``GET /v1/audit``) or
the CLI. Records come back oldest first, a page at a time; a page's
``next_after`` is the ``after`` of the next page. Segment file names give
each segment's first seq, so a page that starts late skips whole segments
unread; within a segment the scan is linear. Unchecked, like
:func:`gateway.audit.store.records`: run ``gateway audit verify`` before
relying on what a search returns.

    query = Query(participant="minhealth", since=parse_time("2026-11-26"))
    page = search(Path("audit"), query, limit=50)
    while page.next_after is not None:
        page = search(Path("audit"), query, after=page.next_after, limit=50)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from gateway.audit.store import lines, parse_record, segments

PARTY_FIELDS = ("sender", "recipient", "participant", "owner", "principal")
"""The fields naming who a record is about; ``recipients`` (a list) is checked too."""

_MAX_TIME_TEXT = 64


@dataclass(frozen=True, slots=True)
class Query:
    """Which records to return; every field given must match (None matches anything)."""

    message_id: str | None = None
    participant: str | None = None
    """Matches sender, recipient, any of recipients, participant, owner or principal."""
    contract: str | None = None
    """``id`` matches any version of the contract; ``id@version`` matches exactly."""
    outcome: str | None = None
    event: str | None = None
    since: datetime | None = None
    """Inclusive; timezone-aware."""
    until: datetime | None = None
    """Exclusive; timezone-aware."""

    def __post_init__(self) -> None:
        for name, value in (("since", self.since), ("until", self.until)):
            if value is not None and value.utcoffset() is None:
                raise ValueError(f"'{name}' must be timezone-aware")

    def matches(self, record: Mapping[str, Any]) -> bool:
        return (
            _equal(record, "message_id", self.message_id)
            and _equal(record, "outcome", self.outcome)
            and _equal(record, "event", self.event)
            and (self.participant is None or _involves(record, self.participant))
            and (self.contract is None or _under(record.get("contract"), self.contract))
            and ((self.since is None and self.until is None) or self._in_range(record.get("time")))
        )

    def _in_range(self, text: Any) -> bool:
        when = _record_time(text)
        if when is None:
            return False
        return (self.since is None or when >= self.since) and (
            self.until is None or when < self.until
        )


@dataclass(frozen=True, slots=True)
class Page:
    records: list[dict[str, Any]]
    next_after: int | None
    """The ``after`` for the next page; None when no further record matches."""


def search(directory: Path, query: Query, *, after: int | None = None, limit: int = 100) -> Page:
    """Records with seq > ``after`` that match, oldest first, at most ``limit``.

    The scan looks one match past a full page, so ``next_after`` is None
    exactly when nothing more matches now; otherwise it is the seq just
    before that next match, so the next page starts there without rescanning.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    found: list[dict[str, Any]] = []
    for seq, record in _stored(directory, after):
        if not query.matches(record):
            continue
        if len(found) == limit:
            return Page(found, seq - 1)
        found.append(record)
    return Page(found, None)


def matching(directory: Path, query: Query) -> Iterator[dict[str, Any]]:
    """Every matching record, oldest first, in one pass (for exports)."""
    for _, record in _stored(directory, None):
        if query.matches(record):
            yield record


def records_after(directory: Path, after: int | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(seq, record) of every complete record with seq > ``after`` (all when None), oldest
    first: for readers that keep their own place in the log."""
    return _stored(directory, after)


def parse_time(text: str) -> datetime:
    """An RFC 3339 / ISO 8601 time with ``Z`` or an offset, as UTC; a date alone is midnight UTC.

    >>> parse_time("2026-11-26T13:41:15+01:00")
    datetime.datetime(2026, 11, 26, 12, 41, 15, tzinfo=datetime.timezone.utc)
    """
    text = text.strip()
    if not text or len(text) > _MAX_TIME_TEXT:
        raise ValueError("expected a time like 2026-11-26T12:41:15Z or a date like 2026-11-26")
    given, text = text, text.upper()  # RFC 3339 allows a lower-case t and z
    with contextlib.suppress(ValueError):  # not a date alone: try a full time below
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"'{given}' is not a time like 2026-11-26T12:41:15Z or a date like 2026-11-26"
        ) from None
    if when.utcoffset() is None:
        raise ValueError(f"'{given}' has no UTC offset: add Z (UTC) or an offset like +01:00")
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"'{given}' is outside the years a time can have") from None


# -- scanning -------------------------------------------------------------------


def _stored(directory: Path, after: int | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(seq, record) of every complete record with seq > ``after``, oldest first."""
    present = segments(directory)
    for index, (_, path) in enumerate(present):
        following = present[index + 1][0] if index + 1 < len(present) else None
        if after is not None and following is not None and following - 1 <= after:
            continue  # every seq in this segment is at most ``after``
        try:
            yield from _segment_records(path, after)
        except FileNotFoundError:
            continue  # retention removed it while we listed: it held older records


def _segment_records(path: Path, after: int | None) -> Iterator[tuple[int, dict[str, Any]]]:
    for line in lines(path):
        record = parse_record(line.raw) if line.complete else None
        seq = record.get("seq") if record is not None else None
        if record is None or type(seq) is not int:
            continue
        if after is None or seq > after:
            yield seq, record


# -- matching -------------------------------------------------------------------


def _equal(record: Mapping[str, Any], field: str, wanted: str | None) -> bool:
    return wanted is None or record.get(field) == wanted


def _involves(record: Mapping[str, Any], participant: str) -> bool:
    if any(record.get(field) == participant for field in PARTY_FIELDS):
        return True
    recipients = record.get("recipients")
    return isinstance(recipients, list) and participant in recipients


def _under(recorded: Any, wanted: str) -> bool:
    if not isinstance(recorded, str):
        return False
    if "@" in wanted:
        return recorded == wanted
    return recorded.partition("@")[0] == wanted


def _record_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.utcoffset() is not None else None
