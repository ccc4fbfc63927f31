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

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
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
_CHECKED = FORBIDDEN_FIELDS | RESERVED_FIELDS
MAX_RECORD_BYTES = 64 * 1024
"""A rendered record at most: the audit topic and every reader can rely on it."""
_ENCODER = json.JSONEncoder(sort_keys=True, default=str)
"""One encoder, made once: sorted keys, so a record's bytes do not depend on call order."""


def _serialize(value: Any, **_: Any) -> str:
    """structlog's JSON serializer hook: the same bytes as ``json.dumps(sort_keys=True)``."""
    return _ENCODER.encode(value)


Listener = Callable[[str, int, bytes], None]
"""Called with ("record", seq, line) or ("head", number, line) after each append, on the
appending thread."""


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


_second: tuple[int, str] = (-1, "")
"""The last whole second and its text (most records share one); replaced whole, so a
thread never sees one without the other."""


def now_iso() -> str:
    """UTC now as RFC 3339 with microseconds, e.g. ``2026-11-26T12:41:15.657888Z``."""
    global _second  # noqa: PLW0603 - a one-entry cache
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    cached = _second
    if cached[0] != seconds:
        cached = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{cached[1]}.{micros:06d}Z"


class AuditLog:
    """Appends audit records to its directory; with none, events go to the structured log
    (the operational log then carries them, unprotected: for tests and trials only)."""

    def __init__(
        self,
        *,
        node_id: str,
        directory: Path | None = None,
        signer: SignKey | Callable[[], SignKey] | None = None,
        settings: AuditConfig | None = None,
    ) -> None:
        """``signer`` may be a function: it is called once the log's lock is held, so
        nothing (such as creating a key) happens while another process holds the log."""
        self._node = node_id
        self._dir = directory
        self._signer: SignKey | None = None
        self._settings = settings or AuditConfig()
        self._lock = threading.Lock()
        self._stream = structlog.get_logger("gateway.audit")
        self._render = structlog.processors.JSONRenderer(serializer=_serialize)
        self._listeners: list[Listener] = []
        self._floors: list[Callable[[], int]] = []
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
        self._recovered: list[dict[str, Any]] = []
        if directory is not None:
            if signer is None:
                raise AuditError("an audit log on disk needs the node's audit key to sign heads")
            try:
                self._open(directory)
                self._signer = signer if isinstance(signer, SignKey) else signer()
            except BaseException:
                self._release()
                raise
            for recovered in self._recovered:
                self.record("audit.recovered", **recovered)

    # -- appending -----------------------------------------------------------

    @property
    def size(self) -> int:
        return self._tree.size

    @property
    def directory(self) -> Path | None:
        return self._dir

    @property
    def next_head(self) -> int:
        """The number the next signed head will carry."""
        return self._next_head

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def hold_from(self, floor: Callable[[], int]) -> None:
        """Retention keeps every segment holding a seq at or above ``floor()`` (such as
        records the audit topic has not acknowledged yet)."""
        self._floors.append(floor)

    def record(self, event: str, /, **fields: Any) -> None:
        """Append one audit event; refuses names outside the catalogue and secret fields."""
        spec = EVENTS.get(event)
        if spec is None:
            raise ValueError(f"'{event}' is not in the audit event catalogue")
        types = set(map(type, fields.values()))
        if not fields.keys().isdisjoint(_CHECKED) or dict in types or list in types:
            _check_names(fields)
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
            if len(line) > MAX_RECORD_BYTES:
                raise ValueError(
                    f"an audit record of {len(line)} bytes: callers bound their fields"
                )
            _append(self._segment, line + b"\n", self._segment_bytes)
            leaf = leaf_hash(line)
            self._tree.append(leaf)
            self._prev = leaf.hex()
            self._segment_bytes += len(line) + 1
            for listener in self._listeners:
                listener("record", entry["seq"], line)
            if self._segment_bytes >= self._settings.segment_max_bytes:
                self._rotate()
            elif self._tree.size - self._signed_size >= self._settings.head_every_records:
                self._sign_head()

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
            try:
                if self._tree.size != self._signed_size:
                    self._sign_head()
            finally:
                self._release()

    def _release(self) -> None:
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
        _append(self._heads, line + b"\n", os.fstat(self._heads.fileno()).st_size)
        os.fsync(self._heads.fileno())
        self._next_head += 1
        self._signed_size = self._tree.size
        self._signed_at = time.monotonic()
        for listener in self._listeners:
            listener("head", head.head, line)
        return signed

    def _rotate(self) -> None:
        """Seal the current segment with a checkpoint head and start the next one."""
        assert self._dir is not None
        assert self._segment is not None
        self._sign_head(checkpoint=True)
        self._segment.close()
        self._segment_start = self._tree.size
        self._segment = _open_append(self._dir / segment_name(self._segment_start))
        _sync_directory(self._dir)
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
        for floor in self._floors:
            # A segment ends where the next begins: keep it while it holds seq >= floor.
            held = next((i for i, (start, _) in enumerate(present[1:]) if start > floor()), None)
            if held is not None:
                first_kept = min(first_kept, present[held][0])
        if first_kept == present[0][0]:
            return
        # The heads file first, so a crash in between leaves extra segments, never a
        # segment with no checkpoint to start from.
        kept_heads = [
            raw
            for raw in (self._dir / HEADS).read_bytes().splitlines()
            if _head_size(raw) >= first_kept
        ]
        temporary = self._dir / f".{HEADS}.tmp"
        with temporary.open("wb") as handle:
            handle.write(b"".join(raw + b"\n" for raw in kept_heads))
            handle.flush()
            os.fsync(handle.fileno())
        self._heads.close()
        os.replace(temporary, self._dir / HEADS)
        _sync_directory(self._dir)  # the pruned heads are durable before any segment goes
        self._heads = _open_append(self._dir / HEADS)
        for start, path in present:
            if start < first_kept:
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
        present = self._finish_retention(directory, segments(directory))
        if not present:
            self._segment = _open_append(directory / segment_name(0))
            return
        start, path = present[-1]
        self._segment_start = start
        self._tree = self._checkpoint(directory, start)
        self._replay(path)
        self._segment = _open_append(path)
        self._segment_bytes = path.stat().st_size

    def _finish_retention(
        self, directory: Path, present: list[tuple[int, Path]]
    ) -> list[tuple[int, Path]]:
        """Delete segments an interrupted retention meant to (it prunes heads first)."""
        path = directory / HEADS
        first = path.read_bytes().split(b"\n", 1)[0] if path.exists() else b""
        if not first:
            return present
        head = _parse_head(first)
        if head.head == 0 or head.frontier is None:
            return present  # nothing was ever pruned
        starts = [start for start, _ in present]
        doomed = [
            p
            for i, (_, p) in enumerate(present)
            if i + 1 < len(starts) and starts[i + 1] <= head.size
        ]
        for stale in doomed:
            stale.unlink()
        return [(start, p) for start, p in present if p not in doomed]

    def _resume_heads(self, directory: Path) -> None:
        path = directory / HEADS
        if path.exists():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):  # a crash mid-write: the head never was
                cut = data.rfind(b"\n") + 1
                self._recovered.append(_dropped(HEADS, data[cut:]))
                data = data[:cut]
                with path.open("r+b") as handle:
                    handle.truncate(cut)
            last = data.splitlines()[-1] if data else None
            if last is not None:
                head = _parse_head(last)
                self._next_head = head.head + 1
                self._signed_size = head.size
        self._heads = _open_append(path)

    def _checkpoint(self, directory: Path, start: int) -> Frontier:
        if start == 0:
            return Frontier()
        for raw in (directory / HEADS).read_bytes().splitlines():
            head = _parse_head(raw)
            if head.size == start and head.frontier is not None:
                try:
                    tree = Frontier(start, [bytes.fromhex(h) for h in head.frontier])
                except ValueError:
                    break
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
            self._recovered.append(_dropped(path.name, dropped))
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


def _dropped(name: str, data: bytes) -> dict[str, Any]:
    return {"segment": name, "dropped_bytes": len(data), "dropped_sha256": digest(data)}


def _check_names(fields: dict[str, Any]) -> None:
    leaked = _leaked(fields)
    if leaked:
        raise ValueError(f"audit events never carry {sorted(leaked)}")
    clash = RESERVED_FIELDS & set(fields)
    if clash:
        raise ValueError(f"{sorted(clash)} are set by the audit log itself")


def _leaked(fields: dict[str, Any]) -> set[str]:
    """Forbidden names among the fields, at any depth."""
    found = set(FORBIDDEN_FIELDS & set(fields))
    for value in fields.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                found |= _leaked(item)
    return found


def _sync_directory(directory: Path) -> None:
    """Make a file created, renamed or removed in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_append(path: Path) -> IO[bytes]:
    """Unbuffered: each record is one write, and a failed one can be undone exactly."""
    return path.open("ab", buffering=0)


def _append(handle: IO[bytes], data: bytes, size: int) -> None:
    """Write all of ``data`` at the end of a file of ``size`` bytes, or nothing at all:
    a write that fails half-way (a full disk) is cut back, so no partial line is left
    for later records to follow."""
    try:
        view = memoryview(data)
        while view:
            written = handle.write(view)
            view = view[written or 0 :]
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(handle.fileno(), size)
        raise AuditError(f"cannot write the audit log: {exc.strerror or exc}") from exc


def _parse_head(raw: bytes) -> TreeHead:
    entry = parse_record(raw)
    try:
        return TreeHead.from_json(entry.get("tree_head") if entry else None)
    except ValueError as exc:
        raise AuditError(f"cannot resume the audit log: a stored head is damaged: {exc}") from exc


def _head_size(raw: bytes) -> int:
    return _parse_head(raw).size
