"""Data quality from the audit trail: accepted against rejected publishes, and where they fail.

Every publish this node refused is a ``message.rejected`` record naming the
contract, the sender, the reason and the JSON pointers of the violations
(tokens of undeclared members already masked as ``*``); every publish it
took is a ``message.accepted``. :class:`Quality` reads the node's audit log
from where it stopped last time (a page view pays only for records written
since), counts them in five-minute buckets per contract and sender, and
forgets buckets older than a week.

    quality = Quality(Path("node-1.audit"))
    quality.refresh()                     # in a thread: it reads files
    view = quality.view(contract="health.patient-referral", span_s=86_400, now=time.time())
    view.series, view.top_pointers, view.totals
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.audit.search import records_after

BUCKET_S = 300
KEEP_S = 7 * 86_400
SPANS = {"1h": (3_600, 300), "6h": (21_600, 900), "24h": (86_400, 3_600), "7d": (KEEP_S, 21_600)}
"""Span name -> (seconds shown, seconds per bar)."""

_EVENTS = {"message.accepted": 0, "message.rejected": 1}


@dataclass(slots=True)
class _Bucket:
    accepted: int = 0
    rejected: int = 0
    pointers: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Point:
    start: float
    """Unix seconds at which this bar's interval starts."""
    accepted: int
    rejected: int


@dataclass(frozen=True, slots=True)
class ContractTotals:
    contract: str
    accepted: int
    rejected: int

    @property
    def rejected_share(self) -> float:
        total = self.accepted + self.rejected
        return self.rejected / total if total else 0.0


@dataclass(frozen=True, slots=True)
class View:
    series: list[Point]
    totals: list[ContractTotals]
    """Every contract seen in the span, most rejections first."""
    top_pointers: list[tuple[str, int]]
    reasons: list[tuple[str, int]]

    @property
    def accepted(self) -> int:
        return sum(p.accepted for p in self.series)

    @property
    def rejected(self) -> int:
        return sum(p.rejected for p in self.series)


class Quality:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._cursor: int | None = None
        self._buckets: defaultdict[tuple[str, str, int], _Bucket] = defaultdict(_Bucket)
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Count the records written since the last refresh (blocking: reads files)."""
        with self._lock:
            newest = 0
            for seq, record in records_after(self._directory, self._cursor):
                self._cursor = seq
                newest = max(newest, self._take(record))
            if newest:
                self._forget(before=newest - KEEP_S)

    def view(
        self,
        *,
        contract: str | None = None,
        sender: str | None = None,
        span_s: int,
        step_s: int,
        now: float,
        top: int = 10,
    ) -> View:
        """Counts in the ``span_s`` up to ``now``, in bars of ``step_s``; ``contract`` and
        ``sender`` narrow the series and the failures (the totals stay per contract)."""
        first = (int(now) // step_s) * step_s - span_s + step_s
        bars = {first + i * step_s: [0, 0] for i in range(span_s // step_s)}
        totals: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
        pointers: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        with self._lock:
            for (contract_id, who, start), bucket in self._buckets.items():
                if start < first or (sender is not None and who != sender):
                    continue
                totals[contract_id][0] += bucket.accepted
                totals[contract_id][1] += bucket.rejected
                if contract is not None and contract_id != contract:
                    continue
                bar = bars.get(first + (start - first) // step_s * step_s)
                if bar is not None:
                    bar[0] += bucket.accepted
                    bar[1] += bucket.rejected
                pointers.update(bucket.pointers)
                reasons.update(bucket.reasons)
        return View(
            series=[Point(start, a, r) for start, (a, r) in sorted(bars.items())],
            totals=sorted(
                (ContractTotals(c, a, r) for c, (a, r) in totals.items()),
                key=lambda t: (-t.rejected, t.contract),
            ),
            top_pointers=pointers.most_common(top),
            reasons=reasons.most_common(top),
        )

    def _take(self, record: dict[str, Any]) -> int:
        """Count one record; its time in Unix seconds, 0 when it is not a publish outcome."""
        kind = _EVENTS.get(record.get("event", ""))
        contract, sender, when = record.get("contract"), record.get("sender"), record.get("time")
        if kind is None or not isinstance(contract, str) or not isinstance(when, str):
            return 0
        try:
            seconds = int(datetime.fromisoformat(when).timestamp())
        except ValueError:
            return 0
        who = sender if isinstance(sender, str) else ""
        bucket = self._buckets[(contract.partition("@")[0], who, seconds // BUCKET_S * BUCKET_S)]
        if kind == 0:
            bucket.accepted += 1
            return seconds
        bucket.rejected += 1
        reason = record.get("reason")
        bucket.reasons[reason if isinstance(reason, str) else "unknown"] += 1
        pointers = record.get("pointers")
        if isinstance(pointers, list):
            # "" is the payload itself (a wrong type at the root, say): shown as "/".
            bucket.pointers.update(p or "/" for p in pointers if isinstance(p, str))
        return seconds

    def _forget(self, *, before: int) -> None:
        for key in [k for k in self._buckets if k[2] < before]:
            del self._buckets[key]
