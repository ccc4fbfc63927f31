"""Idempotent publish: a retry with the same ``Idempotency-Key`` gets the original answer.

Follows draft-ietf-httpapi-idempotency-key-header: the client sends a unique
key with a publish; the node remembers the key with a fingerprint of the
request and the result. A retry with the same key and fingerprint is answered
with the stored result (the same message id) and sends nothing; the same key
with another fingerprint is refused (422 ``idempotency-key-reused``); a
request with the key while the first one is still being processed is refused
as a conflict (409 ``idempotency-key-in-use``, ``Retry-After: 1``).

Keys belong to the authenticated sender: entries are keyed by ``(sender,
key)``, so two participants may pick the same key and none can reach
another's result (the draft's advice to combine the key with what only the
server knows about the client).

The fingerprint is a SHA-256 over the contract as given in the path, the
SHA-256 of the body, the ``to`` list, the ordering key and the correlation
id. ``traceparent`` is left out: a retry rightly carries a new trace context.
Only successes are stored, once the router returned (every recipient's record
acknowledged by Kafka): a refused publish (4xx, 5xx) leaves nothing, so the
client may fix the request and retry with the same key.

An entry counts for ``window_s`` seconds after it was stored (the node's
``http.idempotency_window_s``, a day by default); later the key is new again.
A sender keeps at most about ``max_entries`` entries; beyond that its oldest
go first (logged as ``idempotency.window_truncated``). With a ``state_dir``
the entries are in ``<state_dir>/idempotency.sqlite3`` and survive a restart
(the file, its lock and its pruning: :mod:`gateway.statedb`); without one
they live in memory.

The message id of a keyed publish is derived from the sender, the key and
the request (:func:`gateway.ids.derived_message_id`), so what the store
cannot recognise still reaches each recipient once in effect: a retry sends
the same id, and the receiving node suppresses the second copy within its
replay window (``message.duplicate``). That covers:

- a crash after Kafka's acknowledgement and before the store's commit (the
  router's audit record and a few SQLite statements, no ``await`` in
  between), or a power loss before the WAL reached the disk
  (``synchronous=NORMAL``): the key is forgotten, the retry produces the
  same message again (two ``message.accepted`` records with one id);
- a 503, or a publish cut off by the node's shutdown while it waited for
  Kafka, which stores nothing though the broker may have taken some records.

What this cannot promise:

- A 202 whose entry could not be written (a full disk) stands; the failure is
  logged as ``idempotency.not_stored`` and the key is not remembered.
- Requests in flight are known to this process only, and nodes do not share
  their stores: a retry that reaches another node hosting the same sender is
  not answered from a store (it is sent again, with the same message id,
  which receivers suppress).

Calls are short and synchronous, for one asyncio event-loop thread. Measured
on the development machine (2-vCPU VM shared with other work, Python 3.11,
SQLite 3.40, a file store of 100,000 UUID keys): a claim and complete of a new
key 0.2 ms (a publish itself takes milliseconds), a claim answered from the
store 30 µs, opening the file 32 ms. The file holds about 335 bytes per key
(UUID keys; about 600 with 255-character keys), so the default bound of
1,000,000 keys per sender is some 335 MB per sender (600 MB at the most).

    >>> now = [1000.0]
    >>> store = IdempotencyStore(None, window_s=60, max_entries=10, clock=lambda: now[0])
    >>> sent = Accepted("m-1", "health.patient-referral@1.1.0", ("socialtreasury",))
    >>> with store.claim("minhealth", "k-1", "f1") as claim:
    ...     claim.original is None
    ...     claim.complete(sent)
    True
    >>> with store.claim("minhealth", "k-1", "f1") as claim:
    ...     claim.original.message_id
    'm-1'
    >>> store.close()
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog

from gateway.errors import IdempotencyKeyInUse, IdempotencyKeyReused, InvalidParameter
from gateway.routing import Accepted, PublishRequest
from gateway.statedb import Layout, Window, WindowStore

log = structlog.get_logger("gateway.idempotency")

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
"""The response header (``true``) of an answer taken from the store."""
MAX_KEY = 255

PRUNE_EVERY_PUTS = 1000
"""Newly stored keys after which :meth:`Claim.complete` prunes."""
PRUNE_EVERY_S = 60.0
"""Seconds after which :meth:`Claim.complete` prunes, however few keys arrived."""
PRUNE_MAX_ROWS = 5000
"""Rows one prune run by :meth:`Claim.complete` drops at most."""

_KEY = re.compile(rf"[!-~]{{1,{MAX_KEY}}}")  # visible ASCII (VCHAR)
_SF_STRING = re.compile(r'"((?:[ !#-\[\]-~]|\\["\\])*)"')  # RFC 8941 section 3.3.3
_ESCAPED = re.compile(r'\\(["\\])')

_LAYOUT = Layout(
    what="idempotency store",
    table="published",
    schema=(
        "CREATE TABLE published ("
        " sender TEXT NOT NULL,"
        " key TEXT NOT NULL,"
        " fingerprint TEXT NOT NULL,"
        " message_id TEXT NOT NULL,"
        " contract TEXT NOT NULL,"
        " recipients TEXT NOT NULL,"  # a JSON array
        " stored_at REAL NOT NULL,"
        " PRIMARY KEY (sender, key))",
        # Per sender by time: window prune, oldest-first cap.
        "CREATE INDEX published_by_time ON published (sender, stored_at)",
    ),
    count="SELECT sender, COUNT(*) FROM published GROUP BY sender",
    expire_all="DELETE FROM published WHERE sender = ? AND stored_at < ?",
    expire=(
        "DELETE FROM published WHERE rowid IN (SELECT rowid FROM published"
        " WHERE sender = ?1 AND stored_at < ?2 ORDER BY stored_at LIMIT ?3)"
    ),
    trim=(
        "DELETE FROM published WHERE rowid IN (SELECT rowid FROM published"
        " WHERE sender = ?1 ORDER BY stored_at, rowid LIMIT ?2)"
    ),
    truncated="idempotency.window_truncated",
    owner="sender",
)
_FIND = (
    "SELECT fingerprint, message_id, contract, recipients FROM published"
    " WHERE sender = ? AND key = ? AND stored_at >= ?"
)
_EXISTS = "SELECT 1 FROM published WHERE sender = ? AND key = ?"
_UPSERT = (
    "INSERT INTO published"
    " (sender, key, fingerprint, message_id, contract, recipients, stored_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (sender, key) DO UPDATE SET fingerprint = excluded.fingerprint,"
    " message_id = excluded.message_id, contract = excluded.contract,"
    " recipients = excluded.recipients, stored_at = excluded.stored_at"
)


def parse_key(value: str) -> str:
    """The key an ``Idempotency-Key`` field carries: 1-255 visible ASCII characters,
    as an RFC 8941 string (``"..."``, as the draft specifies) or bare, as many
    clients send it. Anything else is an :class:`InvalidParameter`."""
    key = value
    if value.startswith('"'):
        quoted = _SF_STRING.fullmatch(value)
        key = _ESCAPED.sub(r"\1", quoted[1]) if quoted else ""
    if not _KEY.fullmatch(key):
        raise InvalidParameter(
            HEADER, f"{HEADER} must be 1-{MAX_KEY} visible ASCII characters (e.g. a UUID)"
        )
    return key


def fingerprint(request: PublishRequest) -> str:
    """What makes a publish the same request, as a SHA-256 hex digest."""
    body = hashlib.sha256(request.body).hexdigest()
    parts = [request.contract, body, list(request.to), request.ordering_key, request.correlation_id]
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()


class Claim:
    """One request's hold on its key, for the length of a ``store.claim(...)`` block."""

    def __init__(self, original: Accepted | None, save: Callable[[Accepted], None]) -> None:
        self.original = original
        """The stored result when the request repeats a success: answer it, send nothing."""
        self._save = save

    def complete(self, accepted: Accepted) -> None:
        """Remember ``accepted`` as the key's result; call it once Kafka acknowledged.

        Never raises: the message is durable whatever happens here, so a store
        that cannot write logs ``idempotency.not_stored`` and the answer stands."""
        self._save(accepted)


class IdempotencyStore(WindowStore):
    def __init__(
        self,
        path: Path | None,
        *,
        window_s: float,
        max_entries: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open (or create) the store at ``path``; None keeps it in memory.

        A file that is not an idempotency store, or is in use, is a ConfigError."""
        self._clock = clock
        self._window = Window.open(
            path, _LAYOUT, window_s=window_s, max_entries=max_entries, clock=clock
        )
        self._db = self._window.db
        self._in_flight: set[tuple[str, str]] = set()

    @contextlib.contextmanager
    def claim(self, sender: str, key: str, fingerprint: str) -> Iterator[Claim]:
        """Hold ``sender``'s ``key`` for one request with this ``fingerprint``.

        Raises :class:`IdempotencyKeyReused` when the key's stored success was
        another request, :class:`IdempotencyKeyInUse` while a request with the key
        is in progress. Otherwise yields a :class:`Claim`: with ``original`` set
        the request repeats a stored success; without, the caller publishes and
        calls ``complete``. Leaving the block without it stores nothing."""
        stored = self._find(sender, key)
        if stored is not None:
            if stored[0] != fingerprint:
                raise IdempotencyKeyReused(
                    f"this {HEADER} was used for a different request (contract, body, "
                    "recipients, ordering key or correlation id); send a new key"
                )
            yield Claim(stored[1], self._refuse_overwrite)
            return
        held = (sender, key)
        if held in self._in_flight:
            raise IdempotencyKeyInUse(f"a request with this {HEADER} is still in progress")
        self._in_flight.add(held)
        try:
            yield Claim(None, functools.partial(self._put, sender, key, fingerprint))
        finally:
            self._in_flight.discard(held)

    def _find(self, sender: str, key: str) -> tuple[str, Accepted] | None:
        """The fingerprint and result stored for the key within the window."""
        cutoff = self._window.cutoff(self._clock())
        row = self._db.execute(_FIND, (sender, key, cutoff)).fetchone()
        if row is None:
            return None
        stored, message_id, contract, recipients = row
        return stored, Accepted(message_id, contract, tuple(json.loads(recipients)))

    def _put(self, sender: str, key: str, fingerprint: str, accepted: Accepted) -> None:
        now = self._clock()
        recipients = json.dumps(list(accepted.recipients))
        row = (sender, key, fingerprint, accepted.message_id, accepted.contract, recipients, now)
        try:
            with self._window.transaction():
                # An entry here has outlived the window (claim found none): replace it.
                replaced = self._db.execute(_EXISTS, (sender, key)).fetchone() is not None
                self._db.execute(_UPSERT, row)
        except sqlite3.Error as exc:
            log.error("idempotency.not_stored", sender=sender, message_id=row[3], error=str(exc))
            return
        try:
            self._window.added(
                sender,
                0 if replaced else 1,
                now,
                every=PRUNE_EVERY_PUTS,
                every_s=PRUNE_EVERY_S,
                budget=PRUNE_MAX_ROWS,
            )
        except sqlite3.Error as exc:  # stored; the next prune carries on
            log.error("idempotency.prune_failed", error=str(exc))

    @staticmethod
    def _refuse_overwrite(accepted: Accepted) -> None:
        raise RuntimeError("a request answered from the store has no result of its own")
