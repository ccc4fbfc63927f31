"""IdempotencyStore: one result per sender and key within the window, surviving a restart."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway import idempotency
from gateway.api.openapi import openapi_document
from gateway.errors import ConfigError, IdempotencyKeyInUse, IdempotencyKeyReused, InvalidParameter
from gateway.idempotency import IdempotencyStore, fingerprint, parse_key
from gateway.replay import SeenStore
from gateway.routing import Accepted, PublishRequest

WINDOW_S = 100.0
ME = "minhealth"
OTHER = "socialtreasury"
KEY = "8e03978e-40d5-43e8-bc93-6894a57f9324"
FIRST = Accepted("m-1", "health.patient-referral@1.1.0", ("acme-analytics", "socialtreasury"))
SECOND = Accepted("m-2", "health.patient-referral@1.1.0", ("socialtreasury",))


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
    return tmp_path / "state" / "idempotency.sqlite3"


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[IdempotencyStore]:
    with IdempotencyStore(db_path, window_s=WINDOW_S, max_entries=1000, clock=clock) as opened:
        yield opened


def publish(
    store: IdempotencyStore, sender: str, key: str, result: Accepted, fp: str = "f1"
) -> None:
    """A publish that succeeded with ``result``."""
    with store.claim(sender, key, fp) as claim:
        assert claim.original is None
        claim.complete(result)


def original(store: IdempotencyStore, sender: str, key: str, fp: str = "f1") -> Accepted | None:
    with store.claim(sender, key, fp) as claim:
        return claim.original


# -- the header ----------------------------------------------------------------


VALID = [
    (KEY, KEY),
    (f'"{KEY}"', KEY),  # the draft's form: an RFC 8941 string
    ('"clkyoesmbgybucifusbbtdsbohtyuuwz"', "clkyoesmbgybucifusbbtdsbohtyuuwz"),
    (r'"a\"b\\c"', 'a"b\\c'),  # escapes are undone
    ('a"b\\c', 'a"b\\c'),  # the same key, bare
    ("x", "x"),
    ("k" * 255, "k" * 255),
    (f'"{"k" * 255}"', "k" * 255),
    ("~!#$%&'()*+,-./:;<=>?@[]^_`{|}", "~!#$%&'()*+,-./:;<=>?@[]^_`{|}"),
]
INVALID = [
    "",
    '""',
    "k" * 256,
    f'"{"k" * 256}"',
    "two words",
    '"two words"',  # a valid RFC 8941 string, but not visible ASCII
    "tab\there",
    "caf\u00e9",
    "nul\x00",
    "line\n",
    '"unterminated',
    '"a"b"',
    r'"bad \escape"',
    '"a", "b"',  # a list, not one key
]


@pytest.mark.parametrize(("value", "key"), VALID)
def test_keys_are_visible_ascii_bare_or_quoted(value: str, key: str) -> None:
    assert parse_key(value) == key


@pytest.mark.parametrize("value", INVALID)
def test_other_keys_are_invalid_parameters(value: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_key(value)
    assert info.value.parameter == "Idempotency-Key"


@pytest.mark.parametrize(
    ("value", "valid"), [(v, True) for v, _ in VALID] + [(v, False) for v in INVALID]
)
def test_the_openapi_pattern_says_the_same(value: str, valid: bool) -> None:
    operation = openapi_document()["paths"]["/v1/contracts/{contract}/messages"]["post"]
    [parameter] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    # Anchored both ends; fullmatch, as ECMA-262's $ does not match before a final newline.
    assert (re.fullmatch(parameter["schema"]["pattern"], value) is not None) == valid


# -- the fingerprint -------------------------------------------------------------

REQUEST = PublishRequest(
    sender=ME,
    contract="health.patient-referral",
    body=b'{"referralId": "REF-1"}',
    to=("socialtreasury",),
    ordering_key="patient-1",
    correlation_id="case-7",
    traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
)


@pytest.mark.parametrize(
    "change",
    [
        {"contract": "health.patient-referral@1.1.0"},
        {"body": b'{"referralId": "REF-2"}'},
        {"body": b'{"referralId":"REF-1"}'},  # the same JSON, other bytes
        {"to": ("socialtreasury", "acme-analytics")},
        {"to": ()},
        {"ordering_key": "patient-2"},
        {"ordering_key": None},
        {"correlation_id": "case-8"},
        {"correlation_id": None},
    ],
)
def test_every_part_of_the_request_is_in_the_fingerprint(change: dict[str, object]) -> None:
    assert fingerprint(dataclasses.replace(REQUEST, **change)) != fingerprint(REQUEST)  # type: ignore[arg-type]


def test_a_new_trace_context_or_another_sender_is_the_same_request() -> None:
    retry = dataclasses.replace(REQUEST, traceparent=None, sender=OTHER)
    assert fingerprint(retry) == fingerprint(REQUEST)
    assert len(fingerprint(REQUEST)) == 64


def test_fields_cannot_run_into_each_other() -> None:
    one = dataclasses.replace(REQUEST, ordering_key="a", correlation_id="bc")
    two = dataclasses.replace(REQUEST, ordering_key="ab", correlation_id="c")
    assert fingerprint(one) != fingerprint(two)


# -- the store ---------------------------------------------------------------------


def test_a_retry_gets_the_original_result(store: IdempotencyStore) -> None:
    assert original(store, ME, KEY) is None  # nothing stored by merely looking
    publish(store, ME, KEY, FIRST)
    assert original(store, ME, KEY) == FIRST
    assert original(store, ME, KEY) == FIRST


def test_the_same_key_for_another_request_is_refused(store: IdempotencyStore) -> None:
    publish(store, ME, KEY, FIRST, fp="f1")
    with pytest.raises(IdempotencyKeyReused, match="different request"), store.claim(ME, KEY, "f2"):
        pytest.fail("claimed a key that stands for another request")
    assert original(store, ME, KEY, fp="f1") == FIRST  # the stored result is untouched


def test_keys_belong_to_their_sender(store: IdempotencyStore) -> None:
    publish(store, ME, KEY, FIRST, fp="f1")
    publish(store, OTHER, KEY, SECOND, fp="f2")  # neither a replay nor a reuse
    assert original(store, ME, KEY, fp="f1") == FIRST
    assert original(store, OTHER, KEY, fp="f2") == SECOND


def test_a_key_in_flight_is_in_use_until_its_request_ends(store: IdempotencyStore) -> None:
    with store.claim(ME, KEY, "f1") as first:
        assert first.original is None
        with pytest.raises(IdempotencyKeyInUse), store.claim(ME, KEY, "f1"):
            pytest.fail("two requests held one key")
        with pytest.raises(IdempotencyKeyInUse), store.claim(ME, KEY, "f2"):
            pytest.fail("two requests held one key")
        assert original(store, OTHER, KEY) is None  # another sender's key is free
        first.complete(FIRST)
    assert original(store, ME, KEY) == FIRST


def test_a_failed_request_stores_nothing_and_frees_its_key(store: IdempotencyStore) -> None:
    with pytest.raises(RuntimeError, match="broker"), store.claim(ME, KEY, "f1"):
        raise RuntimeError("the broker did not acknowledge")
    with store.claim(ME, KEY, "f2") as retry:  # fixed request, same key
        assert retry.original is None
        retry.complete(SECOND)
    assert original(store, ME, KEY, fp="f2") == SECOND


def test_a_replayed_claim_has_nothing_to_complete(store: IdempotencyStore) -> None:
    publish(store, ME, KEY, FIRST)
    with pytest.raises(RuntimeError, match="no result of its own"), store.claim(ME, KEY, "f1") as c:
        c.complete(SECOND)
    assert original(store, ME, KEY) == FIRST


def test_a_key_is_forgotten_after_the_window(db_path: Path, clock: FakeClock) -> None:
    with IdempotencyStore(db_path, window_s=WINDOW_S, max_entries=1, clock=clock) as store:
        publish(store, ME, KEY, FIRST, fp="f1")
        clock.now += WINDOW_S
        assert original(store, ME, KEY, fp="f1") == FIRST  # the window's edge is inside
        clock.now += 0.5
        assert original(store, ME, KEY, fp="f1") is None  # expired, not yet pruned
        publish(store, ME, KEY, SECOND, fp="f2")  # a new request may take the key
        assert store.prune() == 0  # replaced in place and counted once: nothing to trim
        assert original(store, ME, KEY, fp="f2") == SECOND


def test_prune_drops_expired_entries(db_path: Path, clock: FakeClock) -> None:
    # A window shorter than PRUNE_EVERY_S, so that complete does not prune on its own.
    with IdempotencyStore(db_path, window_s=10, max_entries=100, clock=clock) as store:
        publish(store, ME, "old-1", FIRST)
        publish(store, OTHER, "old-2", FIRST)
        clock.now += 11
        publish(store, ME, "new", SECOND)
        assert store.prune() == 2
        assert store.prune() == 0
        assert original(store, ME, "new") == SECOND


def test_max_entries_drops_the_oldest_per_sender(db_path: Path, clock: FakeClock) -> None:
    with IdempotencyStore(db_path, window_s=WINDOW_S, max_entries=3, clock=clock) as store:
        for number in range(5):
            publish(store, ME, f"k-{number}", FIRST)
            clock.now += 1
        publish(store, OTHER, "k-0", SECOND)
        with capture_logs() as logs:
            assert store.prune() == 2
        assert [original(store, ME, f"k-{n}") for n in range(5)] == [None, None] + [FIRST] * 3
        assert original(store, OTHER, "k-0") == SECOND
    [truncated] = logs
    assert truncated == {
        "event": "idempotency.window_truncated",
        "log_level": "warning",
        "sender": ME,
        "dropped": 2,
        "max_entries": 3,
    }


def test_complete_prunes_after_enough_new_keys(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    monkeypatch.setattr(idempotency, "PRUNE_EVERY_PUTS", 3)
    with IdempotencyStore(None, window_s=10, max_entries=100, clock=clock) as store:
        publish(store, ME, "old", FIRST)
        clock.now += 11  # "old" expired; fewer than PRUNE_EVERY_S since the last prune
        publish(store, ME, "new-1", FIRST)
        assert store.prune() == 1  # two new keys: not yet due
        publish(store, ME, "old", FIRST)
        clock.now += 11
        publish(store, ME, "new-2", FIRST)
        publish(store, ME, "new-3", FIRST)  # the third since the last prune: pruned here
        assert store.prune() == 0


def test_survives_a_restart(db_path: Path, clock: FakeClock) -> None:
    with IdempotencyStore(db_path, window_s=WINDOW_S, max_entries=10, clock=clock) as first:
        publish(first, ME, KEY, FIRST, fp="f1")
        publish(first, OTHER, KEY, SECOND, fp="f2")
    clock.now += 10
    with IdempotencyStore(db_path, window_s=WINDOW_S, max_entries=10, clock=clock) as second:
        assert original(second, ME, KEY, fp="f1") == FIRST
        assert original(second, OTHER, KEY, fp="f2") == SECOND
        with pytest.raises(IdempotencyKeyReused), second.claim(ME, KEY, "f2"):
            pytest.fail("a reopened store forgot the fingerprint")
    clock.now += WINDOW_S
    with IdempotencyStore(db_path, window_s=WINDOW_S, max_entries=10, clock=clock) as third:
        assert third.prune() == 0  # opening pruned the expired entries
        assert original(third, ME, KEY, fp="f2") is None


def test_in_memory_stores_are_separate(clock: FakeClock) -> None:
    with (
        IdempotencyStore(None, window_s=WINDOW_S, max_entries=10, clock=clock) as one,
        IdempotencyStore(None, window_s=WINDOW_S, max_entries=10, clock=clock) as two,
    ):
        publish(one, ME, KEY, FIRST)
        assert original(one, ME, KEY) == FIRST
        assert original(two, ME, KEY) is None


def test_an_entry_that_cannot_be_written_is_logged_and_the_answer_stands(
    store: IdempotencyStore,
) -> None:
    with capture_logs() as logs, store.claim(ME, KEY, "f1") as claim:
        store.close()  # any SQLite failure: a full disk, an I/O error
        claim.complete(FIRST)  # does not raise: the message is durable in Kafka
    [failed] = logs
    assert failed["event"] == "idempotency.not_stored"
    assert failed["log_level"] == "error"
    assert (failed["sender"], failed["message_id"]) == (ME, "m-1")


@pytest.mark.parametrize(
    ("window_s", "max_entries", "message"),
    [(0.0, 10, "window_s"), (float("inf"), 10, "window_s"), (60.0, 0, "max_entries")],
)
def test_invalid_bounds_raise(window_s: float, max_entries: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IdempotencyStore(None, window_s=window_s, max_entries=max_entries)


def test_the_file_is_private(store: IdempotencyStore, db_path: Path) -> None:
    publish(store, ME, KEY, FIRST)
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_a_store_in_use_is_refused(store: IdempotencyStore, db_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"idempotency store .* is in use by another process"):
        IdempotencyStore(db_path, window_s=WINDOW_S, max_entries=10)


def test_another_database_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir()
    other = sqlite3.connect(db_path)
    try:
        other.execute("CREATE TABLE settled (anything TEXT)")  # e.g. the replay store
        other.commit()
    finally:
        other.close()
    with pytest.raises(ConfigError, match=r"idempotency store .* holds another database"):
        IdempotencyStore(db_path, window_s=WINDOW_S, max_entries=10)


def test_a_replay_store_is_not_taken_for_an_idempotency_store(db_path: Path) -> None:
    SeenStore(db_path, window_s=WINDOW_S, max_entries=10).close()
    with pytest.raises(ConfigError, match=r"idempotency store .* holds another database"):
        IdempotencyStore(db_path, window_s=WINDOW_S, max_entries=10)
