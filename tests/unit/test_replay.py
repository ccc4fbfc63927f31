"""SeenStore: settled ids within the window, bounded, surviving a restart, private."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import replay
from gateway.errors import ConfigError
from gateway.replay import SeenStore

WINDOW_S = 100.0
ME = "socialtreasury"
OTHER = "acme-analytics"


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "replay.sqlite3"


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[SeenStore]:
    with SeenStore(db_path, window_s=WINDOW_S, max_entries=1000, clock=clock) as opened:
        yield opened


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_seen_after_mark(store: SeenStore) -> None:
    assert not store.seen(ME, "m-1")
    store.mark(ME, ["m-1", "m-2"])
    assert store.seen(ME, "m-1")
    assert store.seen(ME, "m-2")
    assert not store.seen(ME, "m-3")


def test_not_seen_for_another_participant(store: SeenStore) -> None:
    store.mark(ME, ["m-1"])
    assert not store.seen(OTHER, "m-1")


def test_mark_is_idempotent_and_the_first_time_wins(store: SeenStore, clock: FakeClock) -> None:
    store.mark(ME, ["m-1", "m-1"])
    clock.now += 60
    store.mark(ME, ["m-1"])
    store.mark(ME, [])
    clock.now += 50  # 110 s after the first mark, 50 s after the second
    assert not store.seen(ME, "m-1")
    assert store.prune() == 1


def test_an_id_marked_again_after_its_window_is_seen_again(
    store: SeenStore, clock: FakeClock
) -> None:
    store.mark(ME, ["m-1"])
    clock.now += WINDOW_S + 1  # expired, not yet pruned
    store.mark(ME, ["m-1", "m-2"])
    assert store.seen(ME, "m-1")
    assert store.prune() == 0


def test_survives_a_restart(db_path: Path, clock: FakeClock) -> None:
    with SeenStore(db_path, window_s=WINDOW_S, max_entries=10, clock=clock) as first:
        first.mark(ME, ["m-1"])
        first.mark(OTHER, ["m-2"])
    clock.now += 10
    with SeenStore(db_path, window_s=WINDOW_S, max_entries=10, clock=clock) as second:
        assert second.seen(ME, "m-1")
        assert second.seen(OTHER, "m-2")
        assert not second.seen(ME, "m-2")
        second.mark(ME, ["m-3"])
    with SeenStore(db_path, window_s=WINDOW_S, max_entries=10, clock=clock) as third:
        assert third.seen(ME, "m-3")


def test_forgets_after_the_window(store: SeenStore, clock: FakeClock) -> None:
    store.mark(ME, ["m-1"])
    clock.now += WINDOW_S
    assert store.seen(ME, "m-1")  # the window's edge is inside
    clock.now += 0.5
    assert not store.seen(ME, "m-1")


def test_max_entries_drops_the_oldest_per_participant(db_path: Path, clock: FakeClock) -> None:
    with SeenStore(db_path, window_s=WINDOW_S, max_entries=3, clock=clock) as store:
        for number in range(5):
            store.mark(ME, [f"m-{number}"])
            clock.now += 1
        store.mark(OTHER, ["o-1", "o-2"])
        assert store.prune() == 2
        assert [store.seen(ME, f"m-{n}") for n in range(5)] == [False, False, True, True, True]
        assert store.seen(OTHER, "o-1")
        assert store.seen(OTHER, "o-2")


def test_opening_with_a_smaller_bound_trims_at_once(db_path: Path, clock: FakeClock) -> None:
    with SeenStore(db_path, window_s=WINDOW_S, max_entries=10, clock=clock) as store:
        store.mark(ME, ["m-1"])
        clock.now += 1
        store.mark(ME, ["m-2", "m-3"])
    with SeenStore(db_path, window_s=WINDOW_S, max_entries=2, clock=clock) as store:
        assert not store.seen(ME, "m-1")
        assert store.seen(ME, "m-2")
        assert store.seen(ME, "m-3")
        assert store.prune() == 0


def test_prune_counts_expired_and_excess_entries(db_path: Path, clock: FakeClock) -> None:
    # A window shorter than PRUNE_EVERY_S, so that mark does not prune on its own.
    with SeenStore(db_path, window_s=10, max_entries=2, clock=clock) as store:
        assert store.prune() == 0
        store.mark(ME, ["old-1", "old-2"])
        store.mark(OTHER, ["old-3"])
        clock.now += 11
        store.mark(ME, ["new-1", "new-2", "new-3"])
        assert store.prune() == 3 + 1  # three expired, one beyond max_entries
        assert store.prune() == 0
        assert [store.seen(ME, i) for i in ("new-1", "new-2", "new-3")] == [False, True, True]


@pytest.mark.parametrize(
    ("more", "left"), [(replay.PRUNE_EVERY_MARKS - 2, 1), (replay.PRUNE_EVERY_MARKS - 1, 0)]
)
def test_mark_prunes_after_enough_marks(clock: FakeClock, more: int, left: int) -> None:
    with SeenStore(None, window_s=10, max_entries=10_000, clock=clock) as store:
        store.mark(ME, ["old"])
        clock.now += 11  # "old" expired; fewer than PRUNE_EVERY_S since the last prune
        store.mark(ME, [f"m-{n}" for n in range(more)])
        assert store.prune() == left  # 1 + more newly settled ids reached PRUNE_EVERY_MARKS?


def test_mark_prunes_after_enough_time(store: SeenStore, clock: FakeClock) -> None:
    store.mark(ME, ["old"])
    clock.now += WINDOW_S + 1  # more than PRUNE_EVERY_S
    store.mark(ME, ["new"])
    assert store.prune() == 0


def test_mark_does_not_prune_between_intervals(clock: FakeClock) -> None:
    with SeenStore(None, window_s=1, max_entries=10, clock=clock) as store:
        store.mark(ME, ["old"])
        clock.now += 2  # expired, but the last prune was only 2 s ago
        store.mark(ME, ["new"])
        assert store.prune() == 1


def test_in_memory_stores_work_and_are_separate(clock: FakeClock) -> None:
    with (
        SeenStore(None, window_s=WINDOW_S, max_entries=2, clock=clock) as one,
        SeenStore(None, window_s=WINDOW_S, max_entries=2, clock=clock) as two,
    ):
        one.mark(ME, ["m-1", "m-2", "m-3"])
        assert one.seen(ME, "m-3")
        assert not two.seen(ME, "m-3")
        assert one.prune() == 1
        clock.now += WINDOW_S + 1
        assert one.prune() == 2


@pytest.mark.parametrize(
    ("window_s", "max_entries", "message"),
    [
        (0.0, 10, "window_s"),
        (-1.0, 10, "window_s"),
        (float("nan"), 10, "window_s"),
        (float("inf"), 10, "window_s"),
        (60.0, 0, "max_entries"),
        (60.0, -5, "max_entries"),
    ],
)
def test_invalid_parameters_raise(window_s: float, max_entries: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SeenStore(None, window_s=window_s, max_entries=max_entries)


def test_invalid_parameters_create_no_file(db_path: Path) -> None:
    with pytest.raises(ValueError, match="window_s"):
        SeenStore(db_path, window_s=0, max_entries=10)
    assert not db_path.parent.exists()


def test_the_files_are_private_whatever_the_umask(db_path: Path) -> None:
    previous = os.umask(0o000)
    try:
        with SeenStore(db_path, window_s=WINDOW_S, max_entries=10) as store:
            store.mark(ME, ["m-1"])
            wal = db_path.with_name(db_path.name + "-wal")
            assert wal.exists()
            assert mode(db_path) == 0o600
            assert mode(wal) == 0o600
            assert mode(db_path.parent) == 0o700
    finally:
        os.umask(previous)


def test_an_existing_file_is_made_private(db_path: Path) -> None:
    db_path.parent.mkdir()
    db_path.touch()
    db_path.chmod(0o644)
    with SeenStore(db_path, window_s=WINDOW_S, max_entries=10):
        assert mode(db_path) == 0o600


def test_a_file_that_is_not_sqlite_is_a_config_error(db_path: Path) -> None:
    db_path.parent.mkdir()
    db_path.write_bytes(b"not a database, just some bytes of an old log file\n" * 100)
    with pytest.raises(ConfigError, match="is not an SQLite database") as info:
        SeenStore(db_path, window_s=WINDOW_S, max_entries=10)
    assert str(db_path) in info.value.detail


def test_another_sqlite_database_is_a_config_error(db_path: Path) -> None:
    db_path.parent.mkdir()
    other = sqlite3.connect(db_path)
    try:
        other.execute("CREATE TABLE settled (anything TEXT)")
        other.commit()
    finally:
        other.close()
    with pytest.raises(ConfigError, match="holds another database") as info:
        SeenStore(db_path, window_s=WINDOW_S, max_entries=10)
    assert str(db_path) in info.value.detail


def test_a_directory_at_the_path_is_a_config_error(db_path: Path) -> None:
    db_path.mkdir(parents=True)
    with pytest.raises(ConfigError, match="cannot open replay store") as info:
        SeenStore(db_path, window_s=WINDOW_S, max_entries=10)
    assert str(db_path) in info.value.detail


def test_a_store_in_use_is_refused_and_keeps_its_lock(
    store: SeenStore, db_path: Path, clock: FakeClock
) -> None:
    with pytest.raises(ConfigError, match="in use by another process"):
        SeenStore(db_path, window_s=WINDOW_S, max_entries=10, clock=clock)
    store.mark(ME, ["m-1"])  # the first store still works
    with pytest.raises(ConfigError, match="in use"):  # and still holds the file
        SeenStore(db_path, window_s=WINDOW_S, max_entries=10, clock=clock)


def test_close_is_idempotent_and_a_closed_store_refuses_calls(clock: FakeClock) -> None:
    store = SeenStore(None, window_s=WINDOW_S, max_entries=10, clock=clock)
    store.close()
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.seen(ME, "m-1")


def pruned_after(marks: int, *, max_entries: int, window_s: float) -> int:
    """Settle 8 ids, let PRUNE_EVERY_S pass, mark ``marks`` more times; what is left to prune?"""
    clock = FakeClock()
    with SeenStore(None, window_s=window_s, max_entries=max_entries, clock=clock) as store:
        store.mark(ME, [f"m-{n}" for n in range(8)])
        clock.now += replay.PRUNE_EVERY_S + 1
        for n in range(marks):
            store.mark(OTHER, [f"o-{n}"])
        return store.prune()


@pytest.mark.parametrize(("marks", "left"), [(0, 8), (1, 5), (2, 2), (3, 0)])
def test_a_prune_run_by_mark_drops_a_bounded_number_of_expired_rows(
    monkeypatch: pytest.MonkeyPatch, marks: int, left: int
) -> None:
    monkeypatch.setattr(replay, "PRUNE_MAX_ROWS", 3)
    assert pruned_after(marks, max_entries=100, window_s=10) == left


@pytest.mark.parametrize(("marks", "left"), [(0, 6), (1, 3), (2, 0)])
def test_a_prune_run_by_mark_trims_a_bounded_number_of_rows(
    monkeypatch: pytest.MonkeyPatch, marks: int, left: int
) -> None:
    monkeypatch.setattr(replay, "PRUNE_MAX_ROWS", 3)
    assert pruned_after(marks, max_entries=2, window_s=1000) == left


def test_a_damaged_store_is_a_config_error(db_path: Path, clock: FakeClock) -> None:
    with SeenStore(db_path, window_s=WINDOW_S, max_entries=100_000, clock=clock) as store:
        store.mark(ME, [f"message-{n:06}" for n in range(20_000)])
    data = bytearray(db_path.read_bytes())
    page = 4096
    data[2 * page : len(data) - page] = b"\xa5" * (len(data) - 3 * page)  # keep the header
    db_path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="is damaged") as info:
        SeenStore(db_path, window_s=WINDOW_S, max_entries=100_000, clock=clock)
    assert str(db_path) in info.value.detail
