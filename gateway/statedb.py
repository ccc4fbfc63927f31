"""A bounded, restart-proof window of entries per owner, in one SQLite file.

What the replay store (:mod:`gateway.replay`) and the idempotency store
(:mod:`gateway.idempotency`) share: a table of entries, each belonging to an
owner (a participant) and stamped with the time it was written, of which only
the last ``window_s`` seconds count, and at most ``max_entries`` per owner.
A :class:`Layout` names the table's SQL; a :class:`Window` owns the database.

The file is created 0600 (its directory 0700) and opened with an exclusive
lock, so a second node (or store) on the same file is refused instead of
sharing it. WAL journal with ``synchronous=NORMAL``: a commit survives a crash
of the process (it is in the WAL, in the OS page cache) but the last commits
before a power loss or kernel crash may be lost; the file itself is never
corrupted. The schema version is kept in ``user_version``; a file that is not
this store, or is in use, is a :class:`ConfigError`. Without a path the
database lives in memory.

Pruning needs no timer: a store tells :meth:`Window.added` how many entries it
inserted, and the window prunes once ``every`` entries were added or
``every_s`` seconds passed since the last prune, dropping at most ``budget``
rows; a prune cut short leaves the next one due. Opening prunes everything
due, once. An owner thus holds about ``max_entries + every`` entries at most
(plus one batch); the store's own queries must ignore expired entries
(:meth:`Window.cutoff`), pruned or not. An owner over ``max_entries`` loses
its oldest entries early, logged as the layout's ``truncated`` event.

    >>> layout = Layout(
    ...     what="example store",
    ...     table="t",
    ...     schema=("CREATE TABLE t (owner TEXT, item TEXT, at REAL)",),
    ...     count="SELECT owner, COUNT(*) FROM t GROUP BY owner",
    ...     expire_all="DELETE FROM t WHERE owner = ? AND at < ?",
    ...     expire="DELETE FROM t WHERE rowid IN (SELECT rowid FROM t"
    ...     " WHERE owner = ?1 AND at < ?2 ORDER BY at LIMIT ?3)",
    ...     trim="DELETE FROM t WHERE rowid IN (SELECT rowid FROM t"
    ...     " WHERE owner = ?1 ORDER BY at LIMIT ?2)",
    ...     truncated="example.window_truncated",
    ... )
    >>> window = Window.open(None, layout, window_s=60, max_entries=10, clock=lambda: 0.0)
    >>> window.prune()
    0
    >>> window.close()
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import structlog

from gateway.errors import ConfigError

log = structlog.get_logger("gateway.statedb")

FILE_MODE = 0o600


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """One store's table and the statements that keep it bounded."""

    what: str
    """How errors name the store, e.g. ``replay store``."""
    table: str
    """The store's table: a file at this schema version without it is another store."""
    schema: Sequence[str]
    """Statements creating the tables and indexes of an empty file."""
    count: str
    """``(owner, entries)`` for every owner."""
    expire_all: str
    """Delete an owner's entries older than a cutoff: ``(owner, cutoff)``."""
    expire: str
    """Delete at most ``?3`` of them, oldest first: ``(owner, cutoff, budget)``."""
    trim: str
    """Delete an owner's ``?2`` oldest entries: ``(owner, n)``."""
    truncated: str
    """The log event when an owner's entries beyond ``max_entries`` are dropped."""
    owner: str = "participant"
    """The field naming the owner in that event."""
    version: int = 1


class Window:
    def __init__(
        self,
        db: sqlite3.Connection,
        layout: Layout,
        *,
        window_s: float,
        max_entries: int,
        clock: Callable[[], float],
    ) -> None:
        """Take over ``db``; use :meth:`open`, which checks the bounds and the file."""
        self.db = db
        self._layout = layout
        self._window_s = float(window_s)
        self._max_entries = max_entries
        self._clock = clock
        self._counts: dict[str, int] = {}
        self._since_prune = 0
        self._pruned_at = clock()
        self._counts.update(db.execute(layout.count))
        self.prune()

    @classmethod
    def open(
        cls,
        path: Path | None,
        layout: Layout,
        *,
        window_s: float,
        max_entries: int,
        clock: Callable[[], float],
    ) -> Window:
        """Open (or create) the file at ``path``, None: in memory; prune what is due."""
        if not (window_s > 0 and math.isfinite(window_s)):  # also refuses NaN
            raise ValueError(f"window_s must be a positive number of seconds, got {window_s!r}")
        if not max_entries > 0:
            raise ValueError(f"max_entries must be greater than zero, got {max_entries!r}")
        db = _memory(layout) if path is None else _open_file(path, layout)
        try:
            return cls(db, layout, window_s=window_s, max_entries=max_entries, clock=clock)
        except sqlite3.DatabaseError as exc:
            db.close()
            raise ConfigError(
                f"{layout.what} {path} is damaged ({exc}); move it aside to start empty"
            ) from exc
        except BaseException:
            db.close()
            raise

    def cutoff(self, now: float) -> float:
        """Entries written before this time are expired."""
        return now - self._window_s

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.rollback()
            raise
        self.db.commit()

    def added(
        self, owner: str, inserted: int, now: float, *, every: int, every_s: float, budget: int
    ) -> None:
        """Count ``inserted`` new entries of ``owner`` (written at ``now``); prune,
        dropping at most ``budget`` rows, when ``every`` entries were added or
        ``every_s`` seconds passed since the last prune."""
        self._counts[owner] = self._counts.get(owner, 0) + inserted
        self._since_prune += inserted
        if self._since_prune >= every or now - self._pruned_at >= every_s:
            self._prune(budget=budget)

    def prune(self) -> int:
        """Drop entries older than the window, then each owner's oldest beyond
        ``max_entries``; returns how many entries were dropped."""
        return self._prune(budget=-1)

    def close(self) -> None:
        """Close the database (idempotent); later calls raise ``sqlite3.ProgrammingError``."""
        self.db.close()

    def __enter__(self) -> Window:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _prune(self, *, budget: int) -> int:
        """Prune, dropping at most ``budget`` rows (-1: all). A prune that used up
        its budget leaves the schedule due, so the next insert carries on."""
        now = self._clock()
        cutoff = self.cutoff(now)
        dropped = 0
        with self.transaction():
            for owner in list(self._counts):
                dropped += self._prune_one(owner, cutoff, budget - dropped if budget >= 0 else -1)
                if dropped == budget:
                    return dropped
        self._since_prune = 0
        self._pruned_at = now
        return dropped

    def _prune_one(self, owner: str, cutoff: float, budget: int) -> int:
        layout = self._layout
        if budget < 0:  # the plain range delete is twice as fast
            expired = self.db.execute(layout.expire_all, (owner, cutoff)).rowcount
        else:
            expired = self.db.execute(layout.expire, (owner, cutoff, budget)).rowcount
        count = self._counts[owner] - expired
        excess = count - self._max_entries
        trimmed = 0
        if excess > 0 and expired != budget:
            trimmed = excess if budget < 0 else min(excess, budget - expired)
            self.db.execute(layout.trim, (owner, trimmed))
            log.warning(
                layout.truncated,
                **{layout.owner: owner},
                dropped=trimmed,
                max_entries=self._max_entries,
            )
        if count - trimmed:
            self._counts[owner] = count - trimmed
        else:
            del self._counts[owner]
        return expired + trimmed


def _memory(layout: Layout) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    _ensure_schema(db, layout, ":memory:")
    return db


def _open_file(path: Path, layout: Layout) -> sqlite3.Connection:
    """Open the store's file, created 0600; a file that is not a store is a ConfigError."""
    what = layout.what
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Never open and close an existing file here: closing any descriptor of a
        # file drops every POSIX lock this process holds on it, including the
        # lock of a store already open on it.
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            os.chmod(path, FILE_MODE)  # tighten a file created by hand
        else:
            try:
                os.fchmod(fd, FILE_MODE)  # exactly 0600, whatever the umask
            finally:
                os.close(fd)
    except OSError as exc:
        raise ConfigError(f"cannot open {what} {path}: {exc.strerror}") from exc
    # mode=rw: SQLite opens the file created above and never creates one itself.
    # timeout=0: a file locked by another process fails now, not after blocking the loop.
    uri = f"{path.absolute().as_uri()}?mode=rw"
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=0)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open {what} {path}: {exc}") from exc
    try:
        db.execute("PRAGMA locking_mode = EXCLUSIVE")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise ConfigError(f"{what} {path}: cannot use WAL journal mode (got {mode})")
        db.execute("PRAGMA synchronous = NORMAL")
        _ensure_schema(db, layout, str(path))
    except sqlite3.OperationalError as exc:
        db.close()
        if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:  # any extended BUSY code
            raise ConfigError(f"{what} {path} is in use by another process") from exc
        raise ConfigError(f"cannot open {what} {path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        db.close()
        raise ConfigError(
            f"{what} {path} is not an SQLite database ({exc}); move it aside to start empty"
        ) from exc
    except BaseException:
        db.close()
        raise
    return db


def _ensure_schema(db: sqlite3.Connection, layout: Layout, where: str) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    ours = db.execute(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?", (layout.table,)
    ).fetchone()[0]
    if version == layout.version and ours:
        return
    tables = db.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
    if version != 0 or tables:
        raise ConfigError(f"{layout.what} {where} holds another database (schema {version})")
    db.execute("BEGIN")
    for statement in layout.schema:
        db.execute(statement)
    db.execute(f"PRAGMA user_version = {int(layout.version)}")
    db.commit()


class WindowStore:
    """What a store kept in a :class:`Window` shares: pruning, closing, ``with``."""

    _window: Window

    def prune(self) -> int:
        """Drop entries older than the window, then each owner's oldest beyond
        ``max_entries``; returns how many entries were dropped."""
        return self._window.prune()

    def close(self) -> None:
        """Close the database (idempotent); later calls raise ``sqlite3.ProgrammingError``."""
        self._window.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
