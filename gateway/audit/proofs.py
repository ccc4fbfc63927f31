"""Inclusion and consistency proofs over a node's audit log, and their offline check.

A proof file is self-contained JSON: the signed tree head(s) it is checked
against, and for an inclusion proof the exact record lines with their RFC 9162
audit paths. Checking needs nothing but the file and the node's audit public
key, so a court, a regulator or the other party can do it without access to
the gateway::

    {"format": "gateway-audit-proof/1",
     "tree_head": {...}, "signature": "<compact JWS>",
     "inclusions": [{"leaf_index": 12, "record": "<the stored line>", "path": ["<hex>", ...]}],
     "consistency": {"tree_head": {...}, "signature": "...", "path": ["<hex>", ...]}}

``consistency`` proves that the log at an older head is a prefix of the log at
``tree_head``: nothing signed earlier was changed or removed since.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.audit.merkle import Frontier, LeafHashes, Pruned, leaf_hash
from gateway.audit.merkle import verify_consistency as _consistent
from gateway.audit.merkle import verify_inclusion as _included
from gateway.audit.store import (
    AuditError,
    SignedHead,
    TreeHead,
    lines,
    open_head,
    parse_record,
    read_heads,
    segments,
)
from gateway.crypto.jwk import VerifyKey

FORMAT = "gateway-audit-proof/1"


@dataclass(slots=True)
class _Log:
    """The retained leaves of a log, with the heads the node stored."""

    hashes: LeafHashes
    lines: dict[int, bytes]
    heads: list[tuple[TreeHead, str]]


def _load(directory: Path, wanted: set[int] | None = None) -> _Log:
    stored_heads: list[tuple[TreeHead, str]] = []
    for number, raw, complete in read_heads(directory):
        entry = parse_record(raw) if complete else None
        try:
            head = TreeHead.from_json(entry.get("tree_head") if entry else None)
        except ValueError as exc:
            raise AuditError(
                f"heads.jsonl:{number} is damaged ({exc}); run gateway audit verify"
            ) from exc
        stored_heads.append((head, str(entry.get("signature", "") if entry else "")))
    present = segments(directory)
    start = present[0][0] if present else 0
    frontier = Frontier()
    if start:
        checkpoint = next(
            (h for h, _ in stored_heads if h.size == start and h.frontier is not None), None
        )
        if checkpoint is None or checkpoint.frontier is None:
            raise AuditError(f"no checkpoint head for record {start}; run gateway audit verify")
        try:
            frontier = Frontier(start, [bytes.fromhex(h) for h in checkpoint.frontier])
        except ValueError as exc:
            raise AuditError(f"the checkpoint head for record {start} is damaged: {exc}") from exc
    leaves: list[bytes] = []
    kept: dict[int, bytes] = {}
    for _, path in present:
        for line in lines(path):
            if not line.complete:
                raise AuditError(f"{line.where} is cut off; run gateway audit verify")
            seq = start + len(leaves)
            leaves.append(leaf_hash(line.raw))
            if wanted is None or seq in wanted:
                kept[seq] = line.raw
    return _Log(LeafHashes(frontier, leaves), kept, stored_heads)


def _signed(log: _Log, head: TreeHead, signature: str) -> dict[str, Any]:
    try:
        root = log.hashes.root(head.size).hex()
    except ValueError:
        root = ""  # the head covers more records than the log holds: truncated
    if root != head.root:
        raise AuditError(
            f"the log does not match head {head.head}: run gateway audit verify before proving"
        )
    return {"tree_head": head.to_json(), "signature": signature}


def find_records(directory: Path, message_id: str) -> list[int]:
    """Seqs of the records that name this message id."""
    found = []
    # The id as the stored JSON spells it (escapes included): a cheap filter before parsing.
    needle = json.dumps(message_id)[1:-1].encode()
    for _, path in segments(directory):
        for line in lines(path):
            if needle not in line.raw:
                continue
            record = parse_record(line.raw)
            if record is not None and record.get("message_id") == message_id:
                seq = record.get("seq")
                if type(seq) is int:
                    found.append(seq)
    return found


def prove_message(directory: Path, message_id: str) -> dict[str, Any]:
    """Inclusion proofs for every record about a message, against the latest signed head."""
    seqs = find_records(directory, message_id)
    if not seqs:
        present = segments(directory)
        pruned = (
            f" (records before {present[0][0]} were removed by retention)"
            if present and present[0][0]
            else ""
        )
        raise AuditError(f"no audit record names message {message_id}{pruned}")
    log = _load(directory, set(seqs))
    if not log.heads or log.heads[-1][0].size <= max(seqs):
        raise AuditError(
            "the newest records are not covered by a signed tree head yet "
            "(the node signs one within its head interval); try again shortly"
        )
    head, signature = log.heads[-1]
    proof = {"format": FORMAT, **_signed(log, head, signature)}
    inclusions = []
    for seq in sorted(seqs):
        try:
            path = log.hashes.inclusion_proof(seq, head.size)
        except Pruned as exc:
            raise AuditError(f"cannot prove record {seq}: {exc}") from exc
        inclusions.append(
            {"leaf_index": seq, "record": log.lines[seq].decode(), "path": [p.hex() for p in path]}
        )
    proof["inclusions"] = inclusions
    return proof


def prove_consistency(directory: Path, old: int, new: int | None = None) -> dict[str, Any]:
    """Proof that the log at head ``old`` is a prefix of the log at head ``new`` (default: the
    newest head)."""
    log = _load(directory, set())
    by_number = {h.head: (h, s) for h, s in log.heads}
    if not log.heads:
        raise AuditError("the log has no signed tree head yet")
    newest = log.heads[-1][0].head
    new = newest if new is None else new
    oldest = log.heads[0][0].head
    for number in (old, new):
        if number not in by_number:
            raise AuditError(
                f"there is no head {number} in the log (it holds heads {oldest} to {newest}"
                + ("; older ones were removed by retention)" if oldest else ")")
            )
    old_head, old_sig = by_number[old]
    new_head, new_sig = by_number[new]
    if old_head.size > new_head.size or old_head.size == 0:
        raise AuditError(f"head {old} is not an earlier, non-empty state than head {new}")
    try:
        path = log.hashes.consistency_proof(old_head.size, new_head.size)
        old_signed = _signed(log, old_head, old_sig)
    except Pruned as exc:
        raise AuditError(f"cannot prove consistency from head {old}: {exc}") from exc
    return {
        "format": FORMAT,
        **_signed(log, new_head, new_sig),
        "consistency": {**old_signed, "path": [p.hex() for p in path]},
    }


# -- checking, offline ---------------------------------------------------------------


@dataclass(slots=True)
class Checked:
    node: str = ""
    size: int = 0
    time: str = ""
    kid: str = ""
    records: list[dict[str, Any]] = field(default_factory=list)
    consistent_from: int | None = None
    """The older head's size, when a consistency proof was checked."""

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": True,
            "node": self.node,
            "tree_size": self.size,
            "signed_at": self.time,
            "kid": self.kid,
            "records": self.records,
            "consistent_from": self.consistent_from,
        }


class InvalidProof(AuditError):
    code = "invalid-proof"
    title = "The proof does not hold"


def check_proof(proof: Any, keys: dict[str, VerifyKey]) -> Checked:
    """Check a proof file with the audit public keys only. Raises :class:`InvalidProof`."""
    if not isinstance(proof, dict) or proof.get("format") != FORMAT:
        raise InvalidProof(f"not a {FORMAT} document")
    unknown = set(proof) - {"format", "tree_head", "signature", "inclusions", "consistency"}
    if unknown:
        raise InvalidProof(f"unknown members {sorted(unknown)[:5]}")
    if not proof.get("inclusions") and "consistency" not in proof:
        raise InvalidProof("the proof holds neither inclusions nor a consistency proof")
    signed = _head(proof, keys, "the tree head")
    head = signed.head
    result = Checked(head.node, head.size, head.time, signed.kid)
    root = bytes.fromhex(head.root)
    for n, item in enumerate(_list(proof.get("inclusions", []), "inclusions")):
        result.records.append(_inclusion(item, f"inclusions[{n}]", head.size, root))
    if "consistency" in proof:
        older = proof["consistency"]
        if not isinstance(older, dict) or set(older) != {"tree_head", "signature", "path"}:
            raise InvalidProof("consistency: expected tree_head, signature and path")
        old = _head(older, keys, "the older tree head").head
        if old.node != head.node:
            raise InvalidProof("the two tree heads are from different nodes")
        path = _hashes(older["path"], "consistency.path")
        if not _consistent(old.size, head.size, bytes.fromhex(old.root), root, path):
            raise InvalidProof(
                f"the log at head {head.head} does not extend the log at head {old.head}"
            )
        result.consistent_from = old.size
    return result


def _inclusion(item: Any, where: str, size: int, root: bytes) -> dict[str, Any]:
    if not isinstance(item, dict) or set(item) != {"leaf_index", "record", "path"}:
        raise InvalidProof(f"{where}: expected leaf_index, record and path")
    index, record = item["leaf_index"], item["record"]
    if type(index) is not int or not isinstance(record, str):
        raise InvalidProof(f"{where}: leaf_index is an integer and record a string")
    try:
        raw = record.encode()
    except UnicodeEncodeError:
        raise InvalidProof(f"{where}: the record is not valid text") from None
    parsed = parse_record(raw)
    if parsed is None or parsed.get("seq") != index:
        raise InvalidProof(f"{where}: the record's seq is not its leaf index {index}")
    path = _hashes(item["path"], f"{where}.path")
    if not _included(leaf_hash(raw), index, size, path, root):
        raise InvalidProof(f"{where}: record {index} is not in the signed tree")
    return parsed


def _head(container: dict[str, Any], keys: dict[str, VerifyKey], what: str) -> SignedHead:
    try:
        return open_head(
            {"tree_head": container.get("tree_head"), "signature": container.get("signature")},
            keys,
        )
    except ValueError as exc:
        raise InvalidProof(f"{what}: {exc}") from exc


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidProof(f"{where} must be a list")
    return value


def _hashes(value: Any, where: str) -> list[bytes]:
    items = _list(value, where)
    if len(items) > 64 or not all(
        isinstance(h, str) and len(h) == 64 and h == h.lower() for h in items
    ):
        raise InvalidProof(f"{where}: expected at most 64 lowercase hex SHA-256 hashes")
    try:
        return [bytes.fromhex(h) for h in items]
    except ValueError:
        raise InvalidProof(f"{where}: not hex") from None
