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

import json
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


def verify(directory: Path, keys: dict[str, VerifyKey]) -> Report:
    report = Report(directory)
    heads = _check_heads(directory, keys, report)
    by_size: dict[int, list[SignedHead]] = {}
    for signed in heads:
        by_size.setdefault(signed.head.size, []).append(signed)
    present = segments(directory)
    if not present:
        for signed in heads:
            if signed.head.size > 0:
                report.problems.append(_beyond(signed, 0))
                break
        return report
    start = present[0][0]
    report.first_seq = start
    tree, prev = _anchor(start, heads, report)
    if tree is None:
        return report
    chain = _Chain(report, tree, prev, start, by_size)
    for first, path in present:
        if not chain.segment(first, path):
            break
    else:
        for signed in heads:
            if signed.head.size > chain.expected:
                report.problems.append(_beyond(signed, chain.expected))
                break
    return report


def _check_heads(directory: Path, keys: dict[str, VerifyKey], report: Report) -> list[SignedHead]:
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
        if previous is not None:
            if head.head != previous.head.head + 1:
                kind, what = (
                    ("head-missing", f"head {previous.head.head + 1} is missing before {label}")
                    if head.head > previous.head.head + 1
                    else ("head-moved", f"{label} comes after head {previous.head.head}")
                )
                report.problems.append(Problem(kind, what, head=head.head, where=where))
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
    for signed in heads:
        head = signed.head
        if head.size == start and head.frontier is not None:
            try:
                tree = Frontier(start, [bytes.fromhex(h) for h in head.frontier])
            except ValueError:
                break
            if tree.root().hex() == head.root:
                return tree, head.last
            break
    report.problems.append(
        Problem(
            "segment-missing",
            f"the log starts at record {start} and no signed checkpoint head covers "
            f"records 0..{start - 1} (a segment was removed without retention)",
            record=0,
        )
    )
    return None, ZERO


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

    def segment(self, first: int, path: Path) -> bool:
        if first != self.expected:
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
        parsed = [parse_record(line.raw) for line in stored]
        return all(self.line(i, stored, parsed) for i in range(len(stored)))

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
        leaf = leaf_hash(line.raw)
        self.tree.append(leaf)
        self.prev, self.prev_where = leaf.hex(), line.where
        self.expected += 1
        self.report.records += 1
        if self.report.node is None and isinstance(record.get("node"), str):
            self.report.node = record["node"]
        return self._heads_at(self.expected, line)

    def _heads_at(self, size: int, line: Line) -> bool:
        for signed in self.heads.get(size, ()):
            head = signed.head
            if head.last != self.prev:
                return self.fail(
                    "record-changed",
                    f"record {size - 1} ({line.where}) was changed: it is not the record "
                    f"head {head.head} signed",
                    size - 1,
                    line.where,
                )
            if head.root != self.tree.root().hex():
                self.report.problems.append(
                    Problem(
                        "head-mismatch",
                        f"head {head.head}: records 0..{size - 1} do not give its signed root "
                        "(records before it were rewritten)",
                        head=head.head,
                    )
                )
                return False
            self.report.signed_size = size
            self.report.signed_time = head.time
        return True

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
            if any(other is not None and other.get("prev") == mine for other in parsed[i + 1 :]):
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
