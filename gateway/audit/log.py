"""The node's audit log: append-only segments, a Merkle tree, signed tree heads.

Each event becomes one JSON line rendered by structlog (sorted keys), with
``seq`` (its leaf index) and ``prev`` (the leaf hash of the record before it).
The Merkle tree over the lines (RFC 9162) gives inclusion and consistency
proofs; the ``prev`` chain lets a verifier name the exact record that was
changed, removed, inserted or moved. The node signs a tree head every
``head_interval_s`` (when something was appended), every
``head_every_records`` records, when it seals a segment and when it stops.

Durability: each record is written and flushed to the operating system before
``record`` returns; segment and heads are fsynced whenever a head is signed.

    audit = AuditLog.open(node_id="node-a", directory=Path("audit"), signer=key)
    audit.record("message.accepted", message_id="...", payload_sha256="...")
    audit.close()   # signs a last head
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import structlog

from gateway.audit.events import EVENTS
from gateway.audit.merkle import Frontier, leaf_hash
from gateway.audit.store import (
    HEADS,
    ZERO,
    AuditError,
    SignedHead,
    TreeHead,
    parse_record,
    segment_name,
    segments,
)
from gateway.config import AuditConfig
from gateway.crypto.jwk import SignKey

FORBIDDEN_FIELDS = frozenset(
    {"payload", "body", "token", "plaintext", "private_key", "passphrase", "secret"}
)
RESERVED_FIELDS = frozenset({"seq", "prev", "event", "node", "time", "outcome"})

Listener = Callable[[str, bytes], None]
"""Called with ("record" | "head", line) after each append, on the appending thread."""


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class AuditLog:
    """Appends audit records; with no directory, events go to the structured log only."""

    def __init__(
        self,
        *,
        node_id: str,
        directory: Path | None = None,
        signer: SignKey | None = None,
        settings: AuditConfig | None = None,
    ) -> None:
        self._node = node_id
        self._dir = directory
        self._signer = signer
        self._settings = settings or AuditConfig()
        self._lock = threading.Lock()
        self._stream = structlog.get_logger("gateway.audit")
        self._render = structlog.processors.JSONRenderer(sort_keys=True)
        self._listeners: list[Listener] = []
        self._segment: IO[bytes] | None = None
        self._segment_start = 0
        self._segment_bytes = 0
        self._heads: IO[bytes] | None = None
        self._lockfile: IO[bytes] | None = None
        self._tree = Frontier()
        self._prev = ZERO
        self._next_head = 0
        self._signed_size = 0
        self._signed_at = time.monotonic()
        self._recovered: dict[str, Any] | None = None
        if directory is not None:
            if signer is None:
                raise AuditError("an audit log on disk needs the node's audit key to sign heads")
            self._open(directory)
            if self._recovered is not None:
                self.record("audit.recovered", **self._recovered)

    # -- appending -----------------------------------------------------------

    @property
    def size(self) -> int:
        return self._tree.size

    @property
    def directory(self) -> Path | None:
        return self._dir

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def record(self, event: str, **fields: Any) -> None:
        """Append one audit event; refuses names outside the catalogue and secret fields."""
        spec = EVENTS.get(event)
        if spec is None:
            raise ValueError(f"'{event}' is not in the audit event catalogue")
        leaked = FORBIDDEN_FIELDS & set(fields)
        if leaked:
            raise ValueError(f"audit events never carry {sorted(leaked)}")
        clash = RESERVED_FIELDS & set(fields)
        if clash:
            raise ValueError(f"{sorted(clash)} are set by the audit log itself")
        entry: dict[str, Any] = {
            **fields,
            "event": event,
            "node": self._node,
            "outcome": spec.outcome,
            "time": now_iso(),
        }
        if self._dir is None:
            self._stream.info(event, audit=True, **{k: v for k, v in entry.items() if k != "event"})
            return
        with self._lock:
            if self._segment is None:
                raise AuditError("the audit log is closed")
            entry["seq"] = self._tree.size
            entry["prev"] = self._prev
            line = str(self._render(None, "", entry)).encode()
            self._segment.write(line + b"\n")
            self._segment.flush()
            leaf = leaf_hash(line)
            self._tree.append(leaf)
            self._prev = leaf.hex()
            self._segment_bytes += len(line) + 1
            for listener in self._listeners:
                listener("record", line)
            if self._segment_bytes >= self._settings.segment_max_bytes:
                self._rotate()
            elif self._tree.size - self._signed_size >= self._settings.head_every_records:
                self._sign_head()
        self._stream.info(event, audit=True, **{k: v for k, v in entry.items() if k != "event"})

    def sign_head_if_due(self) -> SignedHead | None:
        """Sign a head when records arrived and ``head_interval_s`` passed since the last."""
        if self._dir is None:
            return None
        with self._lock:
            due = time.monotonic() - self._signed_at >= self._settings.head_interval_s
            if self._segment is None or self._tree.size == self._signed_size or not due:
                return None
            return self._sign_head()

    def sign_head(self) -> SignedHead | None:
        """Sign a head now if anything was appended since the last one."""
        if self._dir is None:
            return None
        with self._lock:
            if self._segment is None or self._tree.size == self._signed_size:
                return None
            return self._sign_head()

    def close(self) -> None:
        """Sign a last head and release the log."""
        if self._dir is None:
            return
        with self._lock:
            if self._segment is None:
                return
            if self._tree.size != self._signed_size:
                self._sign_head()
            for handle in (self._segment, self._heads, self._lockfile):
                if handle is not None:
                    handle.close()
            self._segment = self._heads = self._lockfile = None

    # -- inside the lock ---------------------------------------------------------

    def _sign_head(self, *, checkpoint: bool = False) -> SignedHead:
        assert self._signer is not None
        assert self._segment is not None
        assert self._heads is not None
        os.fsync(self._segment.fileno())  # what the head covers is on disk before the head
        head = TreeHead(
            head=self._next_head,
            node=self._node,
            size=self._tree.size,
            root=self._tree.root().hex(),
            last=self._prev,
            time=now_iso(),
            frontier=tuple(h.hex() for h in self._tree.hashes) if checkpoint else None,
        )
        signed = SignedHead.sign(head, self._signer)
        line = signed.to_line()
        self._heads.write(line + b"\n")
        self._heads.flush()
        os.fsync(self._heads.fileno())
        self._next_head += 1
        self._signed_size = self._tree.size
        self._signed_at = time.monotonic()
        for listener in self._listeners:
            listener("head", line)
        return signed

    def _rotate(self) -> None:
        """Seal the current segment with a checkpoint head and start the next one."""
        assert self._dir is not None
        assert self._segment is not None
        self._sign_head(checkpoint=True)
        self._segment.close()
        self._segment_start = self._tree.size
        self._segment = (self._dir / segment_name(self._segment_start)).open("ab")
        self._segment_bytes = 0
        self._apply_retention()

    def _apply_retention(self) -> None:
        keep = self._settings.retain_segments
        assert self._dir is not None
        assert self._heads is not None
        present = segments(self._dir)
        if keep <= 0 or len(present) <= keep + 1:
            return
        first_kept = present[-(keep + 1)][0]
        # The heads file first, so a crash in between leaves extra segments, never a
        # segment with no checkpoint to start from.
        kept_heads = [
            raw
            for raw in (self._dir / HEADS).read_bytes().splitlines()
            if _head_size(raw) >= first_kept
        ]
        temporary = self._dir / f".{HEADS}.tmp"
        temporary.write_bytes(b"".join(raw + b"\n" for raw in kept_heads))
        self._heads.close()
        os.replace(temporary, self._dir / HEADS)
        self._heads = (self._dir / HEADS).open("ab")
        for _, path in present[: -(keep + 1)]:
            path.unlink()

    # -- opening -----------------------------------------------------------------

    def _open(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._lockfile = (directory / ".lock").open("ab")
        try:
            fcntl.flock(self._lockfile.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lockfile.close()
            raise AuditError(
                f"the audit log {directory} is in use by another process (a running node?)"
            ) from None
        self._resume_heads(directory)
        present = segments(directory)
        if not present:
            self._segment = (directory / segment_name(0)).open("ab")
            return
        start, path = present[-1]
        self._segment_start = start
        self._tree = self._checkpoint(directory, start)
        self._replay(path)
        self._segment = path.open("ab")
        self._segment_bytes = path.stat().st_size

    def _resume_heads(self, directory: Path) -> None:
        path = directory / HEADS
        if path.exists():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):  # a crash mid-write: the head never was
                data = data[: data.rfind(b"\n") + 1]
                path.write_bytes(data)
            last = data.splitlines()[-1] if data else None
            if last is not None:
                head = _parse_head(last)
                self._next_head = head.head + 1
                self._signed_size = head.size
        self._heads = path.open("ab")

    def _checkpoint(self, directory: Path, start: int) -> Frontier:
        if start == 0:
            return Frontier()
        for raw in (directory / HEADS).read_bytes().splitlines():
            head = _parse_head(raw)
            if head.size == start and head.frontier is not None:
                tree = Frontier(start, [bytes.fromhex(h) for h in head.frontier])
                if tree.root().hex() != head.root:
                    break
                self._prev = head.last
                return tree
        raise AuditError(
            f"cannot resume the audit log: no checkpoint head for {segment_name(start)}; "
            f"run: gateway audit verify {directory}"
        )

    def _replay(self, path: Path) -> None:
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            dropped = data[cut:]
            with path.open("r+b") as handle:
                handle.truncate(cut)
            data = data[:cut]
            self._recovered = {
                "segment": path.name,
                "dropped_bytes": len(dropped),
                "dropped_sha256": digest(dropped),
            }
        for raw in data.splitlines():
            record = parse_record(raw)
            if record is None or record.get("seq") != self._tree.size:
                raise AuditError(
                    f"cannot resume the audit log: {path.name} is damaged near record "
                    f"{self._tree.size}; run: gateway audit verify {path.parent}"
                )
            leaf = leaf_hash(raw)
            self._tree.append(leaf)
            self._prev = leaf.hex()


def _parse_head(raw: bytes) -> TreeHead:
    entry = parse_record(raw)
    try:
        return TreeHead.from_json(entry.get("tree_head") if entry else None)
    except ValueError as exc:
        raise AuditError(f"cannot resume the audit log: a stored head is damaged: {exc}") from exc


def _head_size(raw: bytes) -> int:
    return _parse_head(raw).size
