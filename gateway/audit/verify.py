"""Recompute a node's audit log and check every signed tree head against it.

Two independent checks, each naming what it finds first:

- the record chain: every line is a complete JSON object whose ``seq`` follows
  the one before and whose ``prev`` is the leaf hash of the record before. A
  changed byte, a removed, inserted or moved record, and a truncated segment
  each break it at a known place, so the report names the record and line;
- the tree heads: each head's signature verifies with a given audit key, heads
  are numbered without gaps, and the Merkle root (RFC 9162) of the first
  ``size`` records, recomputed here, equals the signed root. This catches what
  the chain alone cannot: a rewrite of the whole tail, or records removed
  from the end of the log.

    report = verify(Path("audit"), read_verify_keys(Path("node-a.audit.jwks.json")))
    report.ok, report.problems[0].message if report.problems else None
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.audit.merkle import Frontier, leaf_hash
from gateway.audit.store import (
    HEADS,
    ZERO,
    Line,
    SignedHead,
    lines,
    open_head,
    parse_record,
    read_heads,
    segment_name,
    segments,
)
from gateway.crypto.jwk import VerifyKey


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    """record-changed, record-missing, record-inserted, record-moved, record-truncated,
    segment-missing, head-invalid, head-missing, head-mismatch, head-beyond-log, ..."""
    message: str
    record: int | None = None
    head: int | None = None
    where: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "record": self.record,
            "head": self.head,
            "where": self.where,
        }


@dataclass(slots=True)
class Report:
    directory: Path
    node: str | None = None
    first_seq: int = 0
    records: int = 0
    heads: int = 0
    signed_size: int = 0
    signed_time: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def size(self) -> int:
        return self.first_seq + self.records

    @property
    def whole(self) -> bool:
        """Nothing tampered and every record under a signed head: what a stopped node's
        log must be (a running node's newest records may still wait for a head)."""
        return self.ok and self.unsigned == 0

    @property
    def unsigned(self) -> int:
        """Records after the last signed head (the node signs them within its interval)."""
        return max(0, self.size - self.signed_size)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "directory": str(self.directory),
            "node": self.node,
            "first_seq": self.first_seq,
            "size": self.size,
            "records": self.records,
            "heads": self.heads,
            "signed_size": self.signed_size,
            "signed_time": self.signed_time,
            "unsigned": self.unsigned,
            "problems": [p.to_json() for p in self.problems],
        }


def verify(
    directory: Path, keys: dict[str, VerifyKey], *, anchors: Sequence[SignedHead] = ()
) -> Report:
    """Check the log; ``anchors`` are signed heads kept elsewhere (such as the audit
    topic), which the log must still match: deleting the newest heads together with
    the records after them cannot hide from a head the node already gave away."""
    report = Report(directory)
    present = segments(directory)
    from_zero = not present or present[0][0] == 0
    stored = _check_heads(directory, keys, report, first=0 if from_zero else None)
    if not _same_node(anchors, report):
        return report
    heads = [*stored, *anchors]
    by_size: dict[int, list[SignedHead]] = {}
    for signed in heads:
        by_size.setdefault(signed.head.size, []).append(signed)
    if not present:
        _no_more_than(heads, 0, report)
        return report
    start = present[0][0]
    report.first_seq = start
    tree, prev = _anchor(start, heads, report)
    if tree is None:
        return report
    chain = _Chain(report, tree, prev, start, by_size)
    for index, (first, path) in enumerate(present):
        following = present[index + 1][1] if index + 1 < len(present) else None
        if not chain.segment(first, path, following):
            break
    else:
        _no_more_than(heads, chain.expected, report)
    return report


def _no_more_than(heads: Sequence[SignedHead], size: int, report: Report) -> None:
    """Name the first head that signs more records than the log holds."""
    beyond = next((signed for signed in heads if signed.head.size > size), None)
    if beyond is not None:
        report.problems.append(_beyond(beyond, size))


def _same_node(anchors: Sequence[SignedHead], report: Report) -> bool:
    for anchor in anchors:
        if report.node is not None and anchor.head.node != report.node:
            report.problems.append(
                Problem(
                    "head-mismatch",
                    f"the expected head {anchor.head.head} is node {anchor.head.node!r}'s, "
                    f"not {report.node!r}'s",
                    head=anchor.head.head,
                )
            )
            return False
    return True


def _check_heads(
    directory: Path, keys: dict[str, VerifyKey], report: Report, *, first: int | None
) -> list[SignedHead]:
    """The heads whose signature verifies; ``first`` is the number the first must have
    (0 when the log still starts at record 0; unknown after retention)."""
    good: list[SignedHead] = []
    previous: SignedHead | None = None
    for number, raw, complete in read_heads(directory):
        where = f"{HEADS}:{number}"
        if not complete:
            report.problems.append(
                Problem("head-truncated", f"{where}: the head is cut off", where=where)
            )
            break
        try:
            signed = open_head(json.loads(raw), keys)
        except (ValueError, RecursionError) as exc:
            report.problems.append(
                Problem("head-invalid", f"{where}: {exc}", head=_claimed_head(raw), where=where)
            )
            continue
        head = signed.head
        label = f"head {head.head} ({where})"
        if previous is None and first is not None and head.head != first:
            report.problems.append(
                Problem(
                    "head-missing",
                    f"head {first} is missing before {label}",
                    head=first,
                    where=where,
                )
            )
        if previous is not None:
            if head.head != previous.head.head + 1:
                kind, what = (
                    ("head-missing", f"head {previous.head.head + 1} is missing before {label}")
                    if head.head > previous.head.head + 1
                    else ("head-moved", f"{label} comes after head {previous.head.head}")
                )
                named = previous.head.head + 1 if kind == "head-missing" else head.head
                report.problems.append(Problem(kind, what, head=named, where=where))
            elif head.size < previous.head.size:
                report.problems.append(
                    Problem(
                        "head-mismatch",
                        f"{label} signs {head.size} records, fewer than head "
                        f"{previous.head.head} before it",
                        head=head.head,
                        where=where,
                    )
                )
            if head.node != previous.head.node:
                report.problems.append(
                    Problem(
                        "head-mismatch",
                        f"{label} names node {head.node!r}, not {previous.head.node!r}",
                        head=head.head,
                        where=where,
                    )
                )
        report.node = head.node
        report.heads += 1
        good.append(signed)
        previous = signed
    return good


def _claimed_head(raw: bytes) -> int | None:
    entry = parse_record(raw)
    body = entry.get("tree_head") if entry else None
    value = body.get("head") if isinstance(body, dict) else None
    return value if type(value) is int else None


def _anchor(start: int, heads: list[SignedHead], report: Report) -> tuple[Frontier | None, str]:
    """The tree state before the first stored record: empty, or a signed checkpoint."""
    if start == 0:
        return Frontier(), ZERO
    _removed_before(start, heads, report)
    checkpoint = next(
        (s.head for s in heads if s.head.size == start and s.head.frontier is not None), None
    )
    if checkpoint is None or checkpoint.frontier is None:
        report.problems.append(
            Problem(
                "segment-missing",
                f"the log starts at record {start} and no signed checkpoint head covers "
                f"records 0..{start - 1} (a segment was removed without retention)",
                record=0,
            )
        )
        return None, ZERO
    try:
        tree = Frontier(start, [bytes.fromhex(h) for h in checkpoint.frontier])
    except ValueError:
        tree = None
    if tree is None or tree.root().hex() != checkpoint.root:
        report.problems.append(
            Problem(
                "head-mismatch",
                f"checkpoint head {checkpoint.head}: its frontier does not give its signed "
                f"root, so records {start} and after cannot be checked",
                head=checkpoint.head,
            )
        )
        return None, ZERO
    return tree, checkpoint.last


def _removed_before(start: int, heads: list[SignedHead], report: Report) -> None:
    """Retention removes the heads of the records it removes, before the segments: a head
    of fewer than ``start`` records means segments were deleted some other way."""
    stale = next((s.head for s in heads if s.head.size < start), None)
    if stale is None:
        return
    first = heads[0].head
    lost = first.size if first.head != 0 and first.frontier is not None else 0
    report.problems.append(
        Problem(
            "segment-missing",
            f"records {lost}..{start - 1} are missing: {segment_name(lost)} and any segment "
            f"up to record {start - 1} were removed, yet head {stale.head} (signing "
            f"{stale.size} records) is still stored: this was not retention",
            record=lost,
            where=segment_name(lost),
        )
    )


def _beyond(signed: SignedHead, size: int) -> Problem:
    head = signed.head
    return Problem(
        "head-beyond-log",
        f"head {head.head} signs {head.size} records but the log ends at record {size - 1}: "
        f"record {size} and after are missing (truncated)",
        record=size,
        head=head.head,
    )


class _Chain:
    def __init__(
        self,
        report: Report,
        tree: Frontier,
        prev: str,
        start: int,
        heads: dict[int, list[SignedHead]],
    ) -> None:
        self.report = report
        self.tree = tree
        self.prev = prev
        self.prev_where = "the checkpoint head" if start else "the start of the log"
        self.expected = start
        self.heads = heads

    def fail(self, kind: str, message: str, record: int, where: str) -> bool:
        self.report.problems.append(Problem(kind, message, record=record, where=where))
        return False

    def segment(self, first: int, path: Path, following: Path | None) -> bool:
        if first != self.expected:
            if first > self.expected and self._sealed_at(self.expected):
                return self.fail(
                    "segment-missing",
                    f"records {self.expected}..{first - 1} are missing: "
                    f"{segment_name(self.expected)} was removed (the segment before it was "
                    f"sealed at record {self.expected - 1}; {path.name} starts at {first})",
                    self.expected,
                    segment_name(self.expected),
                )
            if first > self.expected:
                return self.fail(
                    "record-missing",
                    f"record {self.expected} is missing: the segment before {path.name} ends "
                    f"early (truncated) or a segment was removed; {path.name} starts at {first}",
                    self.expected,
                    path.name,
                )
            return self.fail(
                "record-inserted",
                f"{path.name} starts at record {first}, but records up to "
                f"{self.expected - 1} came before it",
                first,
                path.name,
            )
        stored = list(lines(path))
        own = len(stored)
        # The next segment's first line, to tell which of two lines at a seal is genuine.
        stored.extend(itertools.islice(lines(following), 1) if following else ())
        parsed = [parse_record(line.raw) for line in stored]
        return all(self.line(i, stored, parsed) for i in range(own))

    def _sealed_at(self, size: int) -> bool:
        return any(s.head.frontier is not None for s in self.heads.get(size, ()))

    def line(self, i: int, stored: list[Line], parsed: list[dict[str, Any] | None]) -> bool:
        line, record, n = stored[i], parsed[i], self.expected
        if not line.complete:
            return self.fail(
                "record-truncated",
                f"record {n} ({line.where}) is cut off: the segment was truncated",
                n,
                line.where,
            )
        if record is None:
            return self.fail(
                "record-changed",
                f"record {n} ({line.where}) is not a JSON object: it was changed",
                n,
                line.where,
            )
        seq = record.get("seq")
        if type(seq) is not int or seq != n:
            return self._out_of_place(i, stored, parsed, seq)
        if record.get("prev") != self.prev:
            return self.fail(
                "record-changed",
                f"record {n - 1} ({self.prev_where}) was changed: its hash is not the one "
                f"record {n} ({line.where}) links to",
                n - 1,
                self.prev_where,
            )
        before = self.tree.copy() if n + 1 in self.heads else None
        leaf = leaf_hash(line.raw)
        self.tree.append(leaf)
        self.prev, self.prev_where = leaf.hex(), line.where
        self.expected += 1
        self.report.records += 1
        if self.report.node is None and isinstance(record.get("node"), str):
            self.report.node = record["node"]
        if before is None:
            return True
        following = stored[i + 1] if i + 1 < len(stored) else None
        return self._heads_at(self.expected, line, before, following)

    def _heads_at(self, size: int, line: Line, before: Frontier, following: Line | None) -> bool:
        """Check the heads of ``size`` records; ``before`` is the tree without the last."""
        for signed in self.heads.get(size, ()):
            head = signed.head
            if head.last == self.prev and head.root == self.tree.root().hex():
                self.report.signed_size = size
                self.report.signed_time = head.time
                continue
            if following is not None and leaf_hash(following.raw).hex() == head.last:
                return self.fail(
                    "record-inserted",
                    f"{line.where} holds a record inserted as record {size - 1}: head "
                    f"{head.head} signed the one at {following.where}",
                    size - 1,
                    line.where,
                )
            signed_last = before.copy()
            signed_last.append(bytes.fromhex(head.last))
            if head.last != self.prev and signed_last.root().hex() == head.root:
                return self.fail(
                    "record-changed",
                    f"record {size - 1} ({line.where}) was changed: it is not the record "
                    f"head {head.head} signed",
                    size - 1,
                    line.where,
                )
            return self._mismatch(head.head, size)
        return True

    def _mismatch(self, head: int, size: int) -> bool:
        good = max(self.report.signed_size, self.report.first_seq)
        matched = f" (up to record {good - 1} it matches the heads before)" if good else ""
        self.report.problems.append(
            Problem(
                "head-mismatch",
                f"head {head}: records 0..{size - 1} do not give its signed root: the log was "
                f"rewritten between record {good} and record {size - 1}{matched}",
                head=head,
            )
        )
        return False

    def _out_of_place(
        self, i: int, stored: list[Line], parsed: list[dict[str, Any] | None], seq: Any
    ) -> bool:
        n, line = self.expected, stored[i]
        if type(seq) is not int:
            return self.fail(
                "record-changed", f"record {n} ({line.where}) has no valid seq", n, line.where
            )
        if seq < n:
            return self._duplicate(i, stored, parsed, seq)
        later = [j for j in range(i + 1, len(parsed)) if (parsed[j] or {}).get("seq") == n]
        if later:
            mine = leaf_hash(line.raw).hex()
            if self._linked(mine, seq, parsed[i + 1 :]):
                return self.fail(
                    "record-moved",
                    f"records are out of order: {line.where} holds record {seq} where record "
                    f"{n} belongs (record {n} is at {stored[later[0]].where})",
                    n,
                    line.where,
                )
            return self.fail(
                "record-inserted",
                f"{line.where} holds a record (seq {seq}) inserted where record {n} belongs",
                n,
                line.where,
            )
        return self.fail(
            "record-missing",
            f"record {n} is missing: {line.where} holds record {seq} right after record {n - 1}",
            n,
            line.where,
        )

    def _linked(self, leaf: str, seq: int, later: list[dict[str, Any] | None]) -> bool:
        """Does a later record, or a head of ``seq + 1`` records, link to this leaf?"""
        return any(other is not None and other.get("prev") == leaf for other in later) or any(
            signed.head.last == leaf for signed in self.heads.get(seq + 1, ())
        )

    def _duplicate(
        self, i: int, stored: list[Line], parsed: list[dict[str, Any] | None], seq: int
    ) -> bool:
        """A seq seen before: decide which of the two lines the chain disowns."""
        line, n = stored[i], self.expected
        if seq == n - 1 and i + 1 < len(stored):
            following = parsed[i + 1]
            if following is not None and following.get("prev") == leaf_hash(line.raw).hex():
                # The chain continues from this line: the one before it was the intruder.
                return self.fail(
                    "record-inserted",
                    f"{self.prev_where} holds a record inserted as record {seq}: the record "
                    f"after it links to the one at {line.where}",
                    seq,
                    self.prev_where,
                )
        return self.fail(
            "record-inserted",
            f"{line.where} repeats record {seq} where record {n} belongs: it was inserted",
            n,
            line.where,
        )
