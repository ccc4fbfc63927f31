"""Where a node's audit log lives on disk, and how it is read back.

One directory per node::

    <dir>/segment-000000000000.jsonl   records, one JSON object per line; the name is
    <dir>/segment-000000041872.jsonl   the seq of the segment's first record
    <dir>/heads.jsonl                  signed tree heads, one per line, oldest first
    <dir>/audit-key.jwks.json          the node's audit public key(s), for convenience
    <dir>/.lock                        held by the node writing the log

A record's leaf in the Merkle tree is its line's exact bytes without the
newline. Every segment but the last is sealed: the node signed a checkpoint
head (a tree head carrying its frontier) at its end, so the segments after it
verify on their own once retention removed the ones before.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from gateway.crypto.encoding import b64u_decode
from gateway.crypto.envelope import sign_compact, verify_signature
from gateway.crypto.jwk import SignKey, VerifyKey
from gateway.errors import GatewayError, KeyStoreError

SEGMENT = re.compile(r"segment-(\d{12})\.jsonl")
HEADS = "heads.jsonl"
KEY_FILE = "audit-key.jwks.json"
HEAD_TYP = "gw-audit-head"
ZERO = "0" * 64
"""The ``prev`` of the first record: no record came before it."""


class AuditError(GatewayError):
    code = "audit-error"
    title = "Audit log problem"


def segment_name(first_seq: int) -> str:
    return f"segment-{first_seq:012d}.jsonl"


def segments(directory: Path) -> list[tuple[int, Path]]:
    """The segment files, oldest first, with the seq each starts at."""
    if not directory.is_dir():
        raise AuditError(f"no audit log at {directory}: not a directory")
    found = []
    for path in directory.iterdir():
        match = SEGMENT.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a segment, as stored."""

    segment: str
    number: int
    """1-based line number within the segment."""
    raw: bytes
    """Without the newline."""
    complete: bool
    """False for a last line with no newline (a truncated or unfinished write)."""

    @property
    def where(self) -> str:
        return f"{self.segment}:{self.number}"


def lines(path: Path) -> Iterator[Line]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            complete = raw.endswith(b"\n")
            yield Line(path.name, number, raw[:-1] if complete else raw, complete)


def parse_record(raw: bytes) -> dict[str, Any] | None:
    """The record as a mapping, or None when the line is not a JSON object."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


# -- tree heads ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreeHead:
    """What the node signs: the log had ``size`` records with this root at ``time``."""

    head: int
    """The head's own sequence number (0, 1, 2, ...): a removed head leaves a gap."""
    node: str
    size: int
    root: str
    last: str
    """The leaf hash of record ``size - 1``: names a changed last record exactly."""
    time: str
    frontier: tuple[str, ...] | None = None
    """Only in checkpoint heads, signed when a segment was sealed."""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "head": self.head,
            "node": self.node,
            "size": self.size,
            "root": self.root,
            "last": self.last,
            "time": self.time,
        }
        if self.frontier is not None:
            body["frontier"] = list(self.frontier)
        return body

    @classmethod
    def from_json(cls, body: Any) -> TreeHead:
        if not isinstance(body, dict):
            raise ValueError("a tree head is a JSON object")
        expected = {"head", "node", "size", "root", "last", "time"}
        if not expected <= set(body) or not set(body) <= expected | {"frontier"}:
            raise ValueError("a tree head has head, node, size, root, last, time, maybe frontier")
        head, size = body["head"], body["size"]
        if type(head) is not int or type(size) is not int or head < 0 or size < 0:
            raise ValueError("head and size are non-negative integers")
        if not _is_hash(body["root"]) or not _is_hash(body["last"]):
            raise ValueError("root and last are hex SHA-256 hashes")
        if not isinstance(body["node"], str):
            raise ValueError("node is a string")
        if not isinstance(body["time"], str):
            raise ValueError("time is an RFC 3339 string")
        frontier = body.get("frontier")
        if frontier is not None and (
            not isinstance(frontier, list) or not all(_is_hash(h) for h in frontier)
        ):
            raise ValueError("frontier is a list of hex SHA-256 hashes")
        return cls(
            head,
            body["node"],
            size,
            body["root"],
            body["last"],
            body["time"],
            tuple(frontier) if frontier is not None else None,
        )


def _is_hash(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


@dataclass(frozen=True, slots=True)
class SignedHead:
    head: TreeHead
    signature: str
    """Compact JWS whose payload is the tree head's JSON."""
    kid: str

    def to_line(self) -> bytes:
        line = {"tree_head": self.head.to_json(), "signature": self.signature}
        return json.dumps(line, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def sign(cls, head: TreeHead, key: SignKey) -> SignedHead:
        payload = json.dumps(head.to_json(), sort_keys=True, separators=(",", ":")).encode()
        header = {"alg": key.alg, "kid": key.kid, "typ": HEAD_TYP}
        return cls(head, sign_compact(header, payload, key).decode(), key.kid)


def open_head(entry: Any, keys: dict[str, VerifyKey]) -> SignedHead:
    """Check a stored head's signature and that the signed payload is what it says.

    Raises ValueError with the reason; only the signed payload is trusted."""
    if not isinstance(entry, dict) or set(entry) != {"tree_head", "signature"}:
        raise ValueError("not a signed tree head (expected tree_head and signature)")
    compact = entry["signature"]
    if not isinstance(compact, str) or compact.count(".") != 2:
        raise ValueError("the signature is not a compact JWS")
    protected, payload, signature = compact.split(".")
    try:
        header = json.loads(b64u_decode(protected.encode()))
        signed = json.loads(b64u_decode(payload.encode()))
        raw_signature = b64u_decode(signature.encode())
    except ValueError as exc:
        raise ValueError("the signature is not a well-formed JWS") from exc
    if not isinstance(header, dict) or header.get("typ") != HEAD_TYP:
        raise ValueError("the JWS is not a gateway tree head")
    key = keys.get(str(header.get("kid")))
    if key is None:
        raise ValueError(f"signed with kid {str(header.get('kid'))[:60]!r}, not an audit key given")
    if header.get("alg") != key.alg:
        raise ValueError("the JWS alg does not match the audit key")
    try:
        verify_signature(key, raw_signature, f"{protected}.{payload}".encode())
    except InvalidSignature:
        raise ValueError("the signature does not verify") from None
    head = TreeHead.from_json(signed)
    shown = json.dumps(entry["tree_head"], sort_keys=True, separators=(",", ":")).encode()
    if shown != b64u_decode(payload.encode()):  # byte for byte: true is not 1, 5.0 not 5
        raise ValueError("the tree head differs from what the signature covers")
    return SignedHead(head, compact, key.kid)


def read_heads(directory: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, raw line, complete) of each stored head."""
    path = directory / HEADS
    if not path.exists():
        return
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            complete = raw.endswith(b"\n")
            yield number, raw[:-1] if complete else raw, complete


# -- the audit key --------------------------------------------------------------


def audit_key_paths(keys_dir: Path, node: str) -> tuple[Path, Path]:
    """The node's audit signing key (encrypted PEM) and its public key set."""
    return keys_dir / f"{node}.audit.pem", keys_dir / f"{node}.audit.jwks.json"


def read_verify_keys(path: Path) -> dict[str, VerifyKey]:
    """Audit public keys by kid, from a JWK Set file."""
    try:
        jwks = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeyStoreError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise KeyStoreError(f"{path} is not JSON") from exc
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise KeyStoreError(f"{path}: expected a JWK Set: an object with a 'keys' list")
    keys: dict[str, VerifyKey] = {}
    for jwk in jwks["keys"]:
        if not isinstance(jwk, dict):
            raise KeyStoreError(f"{path}: every entry of 'keys' must be a JWK object")
        try:
            key = VerifyKey.from_jwk(jwk)
        except KeyStoreError as exc:
            raise KeyStoreError(f"{path}: {exc.detail}") from exc
        keys[key.kid] = key
    if not keys:
        raise KeyStoreError(f"{path} holds no key")
    return keys


def audit_jwks(node: str, keys: list[VerifyKey]) -> dict[str, Any]:
    return {"node": node, "purpose": "audit", "keys": [k.to_jwk() for k in keys]}


def records(directory: Path) -> Iterator[tuple[Line, dict[str, Any]]]:
    """Every complete, parseable record of the retained segments, oldest first.

    Unchecked: run :func:`gateway.audit.verify.verify` before relying on them."""
    for _, path in segments(directory):
        for line in lines(path):
            record = parse_record(line.raw) if line.complete else None
            if record is not None:
                yield line, record
