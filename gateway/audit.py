"""Audit events: who sent what to whom under which contract, and what happened.

Every event is one JSON object per line, rendered by structlog, with stable
snake_case fields. Records carry digests and sizes, never payload plaintext,
tokens or keys. (The tamper-evident log with signed tree heads builds on
this stream.)

    audit = AuditLog(node_id="node-a", path=Path("audit.jsonl"))
    audit.record("message.accepted", message_id="...", payload_sha256="...")
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import IO, Any

import structlog

_FORBIDDEN_FIELDS = frozenset({"payload", "body", "token", "plaintext", "private_key"})


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


class AuditLog:
    def __init__(self, *, node_id: str, path: Path | None) -> None:
        self._node_id = node_id
        self._file: IO[str] | None = None
        self._lock = threading.Lock()
        self._stream = structlog.get_logger("gateway.audit")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")
        self._render = structlog.processors.JSONRenderer(sort_keys=True)
        self._stamp = structlog.processors.TimeStamper(fmt="iso", utc=True, key="time")

    def record(self, event: str, **fields: Any) -> None:
        """Append one audit event; refuses fields that could carry secrets."""
        leaked = _FORBIDDEN_FIELDS & set(fields)
        if leaked:
            raise ValueError(f"audit events never carry {sorted(leaked)}")
        entry = self._stamp(None, "", {"event": event, "node": self._node_id, **fields})
        if self._file is not None:
            line = str(self._render(None, "", dict(entry)))
            with self._lock:
                self._file.write(line + "\n")
                self._file.flush()
        self._stream.info(event, audit=True, **{k: v for k, v in entry.items() if k != "event"})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
