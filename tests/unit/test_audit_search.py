"""Searching the audit log: matching, time parsing, and paging across segments."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import AuditLog
from gateway.audit import search as search_module
from gateway.audit.search import Page, Query, parse_time, search
from gateway.audit.store import Line, lines, records, segments
from gateway.config import AuditConfig
from gateway.crypto.jwk import SignKey, Suite

REFERRAL = "health.patient-referral"
NOON = datetime(2026, 11, 26, 12, tzinfo=UTC)

ACCEPTED: dict[str, Any] = {
    "seq": 7,
    "event": "message.accepted",
    "outcome": "accepted",
    "time": "2026-11-26T12:00:00.000000Z",
    "message_id": "m-1",
    "contract": f"{REFERRAL}@1.1.0",
    "sender": "minhealth",
    "recipients": ["socialtreasury", "acme-analytics"],
}


# -- Query.matches ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (Query(), True),
        (Query(message_id="m-1"), True),
        (Query(message_id="m-2"), False),
        (Query(participant="minhealth"), True),
        (Query(participant="acme-analytics"), True),
        (Query(participant="metro-medical"), False),
        (Query(participant="acme"), False),
        (Query(contract=REFERRAL), True),
        (Query(contract=f"{REFERRAL}@1.1.0"), True),
        (Query(contract=f"{REFERRAL}@1.0.0"), False),
        (Query(contract="health"), False),
        (Query(contract="health.patient"), False),
        (Query(outcome="accepted"), True),
        (Query(outcome="rejected"), False),
        (Query(event="message.accepted"), True),
        (Query(event="message"), False),
        (Query(since=NOON), True),
        (Query(since=NOON + timedelta(microseconds=1)), False),
        (Query(until=NOON), False),
        (Query(until=NOON + timedelta(microseconds=1)), True),
        (Query(since=NOON - timedelta(hours=1), until=NOON + timedelta(hours=1)), True),
        (Query(participant="minhealth", outcome="accepted", contract=REFERRAL), True),
        (Query(participant="minhealth", outcome="rejected"), False),
    ],
    ids=repr,
)
def test_query_matches_an_accepted_message(query: Query, expected: bool) -> None:
    assert query.matches(ACCEPTED) is expected


@pytest.mark.parametrize("field", ["sender", "recipient", "participant", "owner", "principal"])
def test_participant_matches_every_field_that_names_a_party(field: str) -> None:
    record = {"event": "x", field: "minhealth"}

    assert Query(participant="minhealth").matches(record)
    assert not Query(participant="socialtreasury").matches(record)


def test_participant_does_not_match_other_fields() -> None:
    record = {"event": "participant.suspended", "by": "minhealth", "reason": "minhealth"}

    assert not Query(participant="minhealth").matches(record)


@pytest.mark.parametrize(
    ("recorded", "wanted", "expected"),
    [
        ("no.such-contract", "no.such-contract", True),  # a rejection keeps what was asked
        (f"{REFERRAL}@x", REFERRAL, True),
        (f"{REFERRAL}@x", f"{REFERRAL}@x", True),
        (None, REFERRAL, False),
        (["not", "a", "string"], REFERRAL, False),
    ],
)
def test_contract_of_odd_records(recorded: Any, wanted: str, expected: bool) -> None:
    assert Query(contract=wanted).matches({"contract": recorded}) is expected


@pytest.mark.parametrize("time", [None, 12, "", "yesterday", "2026-11-26T12:00:00"])
def test_a_record_without_a_usable_time_never_matches_a_time_range(time: Any) -> None:
    record = {**ACCEPTED, "time": time}

    assert Query(participant="minhealth").matches(record)
    assert not Query(since=NOON - timedelta(days=1)).matches(record)
    assert not Query(until=NOON + timedelta(days=1)).matches(record)


def test_recipients_that_are_not_a_list_do_not_match() -> None:
    assert not Query(participant="minhealth").matches({"recipients": "minhealth"})


@pytest.mark.parametrize("name", ["since", "until"])
def test_query_refuses_naive_times(name: str) -> None:
    naive = datetime(2026, 11, 26)
    with pytest.raises(ValueError, match=f"'{name}' must be timezone-aware"):
        Query(since=naive) if name == "since" else Query(until=naive)


# -- parse_time -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T12:41:15Z", datetime(2026, 11, 26, 12, 41, 15, tzinfo=UTC)),
        ("2026-11-26T12:41:15.657888Z", datetime(2026, 11, 26, 12, 41, 15, 657888, tzinfo=UTC)),
        ("2026-11-26t12:41:15z", datetime(2026, 11, 26, 12, 41, 15, tzinfo=UTC)),
        ("2026-11-26T13:41:15+01:00", datetime(2026, 11, 26, 12, 41, 15, tzinfo=UTC)),
        ("2026-11-26T07:41:15-05:00", datetime(2026, 11, 26, 12, 41, 15, tzinfo=UTC)),
        ("2026-11-26T12:41:15+00:00", datetime(2026, 11, 26, 12, 41, 15, tzinfo=UTC)),
        ("2026-11-26 12:41Z", datetime(2026, 11, 26, 12, 41, tzinfo=UTC)),
        ("2026-11-26", datetime(2026, 11, 26, tzinfo=UTC)),
        (" 2026-11-26 ", datetime(2026, 11, 26, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = parse_time(text)

    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-11-26T12:41:15", "has no UTC offset: add Z"),
        ("2026-11-26T12:41", "has no UTC offset"),
        ("yesterday", "is not a time like 2026-11-26T12:41:15Z"),
        ("2026-13-01", "is not a time like"),
        ("2026-11-26T25:00Z", "is not a time like"),
        ("", "expected a time like"),
        ("2026-11-26T12:41:15Z" + "0" * 64, "expected a time like"),
    ],
)
def test_parse_time_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_time(text)


def test_parse_time_keeps_the_instant_of_an_offset() -> None:
    plus_one = timezone(timedelta(hours=1))

    assert parse_time("2026-11-26T00:30:00+01:00") == datetime(2026, 11, 26, 0, 30, tzinfo=plus_one)
    assert parse_time("2026-11-26T00:30:00+01:00").day == 25  # in UTC


# -- search over a log on disk ------------------------------------------------------


PARTIES = ("minhealth", "socialtreasury", "acme-analytics")


def write_log(directory: Path, count: int, *, segment_max_bytes: int = 900) -> None:
    """``count`` records cycling through a few kinds, over many small segments."""
    log = AuditLog(
        node_id="node-1",
        directory=directory,
        signer=SignKey.generate(Suite.ED25519),
        settings=AuditConfig(dir=directory, segment_max_bytes=segment_max_bytes),
    )
    for n in range(count):
        party = PARTIES[n % len(PARTIES)]
        if n % 4 == 0:
            log.record(
                "message.accepted",
                message_id=f"m-{n}",
                contract=f"{REFERRAL}@1.{n // 4 % 2}.0",
                sender=party,
                recipients=["acme-analytics"],
                payload_sha256="0" * 64,
                payload_size=10,
            )
        elif n % 4 == 1:
            log.record("message.delivered", message_id=f"m-{n - 1}", recipient=party, mode="pull")
        elif n % 4 == 2:
            log.record("access.denied", principal=party, reason="forbidden", method="GET", path="/")
        else:
            log.record("contract.registered", contract="social.x@1.0.0", owner=party)
    log.close()


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "audit"
    write_log(directory, 40)
    return directory


def stored(directory: Path) -> list[dict[str, Any]]:
    return [record for _, record in records(directory)]


def every_page(directory: Path, query: Query, limit: int) -> Iterator[Page]:
    page = search(directory, query, limit=limit)
    yield page
    while page.next_after is not None:
        page = search(directory, query, after=page.next_after, limit=limit)
        yield page


def test_the_fixture_spans_many_segments(log_dir: Path) -> None:
    assert len(segments(log_dir)) >= 8
    assert [r["seq"] for r in stored(log_dir)] == list(range(40))


def test_search_without_filters_returns_everything_oldest_first(log_dir: Path) -> None:
    page = search(log_dir, Query(), limit=1000)

    assert page.records == stored(log_dir)
    assert page.next_after is None


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 10, 39, 40, 41])
@pytest.mark.parametrize(
    "query",
    [Query(), Query(participant="acme-analytics"), Query(event="message.accepted")],
    ids=["all", "participant", "event"],
)
def test_pages_return_every_match_exactly_once(log_dir: Path, query: Query, limit: int) -> None:
    expected = [r for r in stored(log_dir) if query.matches(r)]

    pages = list(every_page(log_dir, query, limit))

    assert [r for page in pages for r in page.records] == expected
    assert all(len(page.records) == limit for page in pages[:-1])
    assert 0 < len(pages[-1].records) <= limit
    assert len(pages) == -(-len(expected) // limit)  # no empty last page


def test_a_full_page_with_nothing_after_it_has_no_cursor(log_dir: Path) -> None:
    query = Query(event="message.accepted")  # seqs 0, 4, ..., 36

    page = search(log_dir, query, limit=10)

    assert [r["seq"] for r in page.records] == list(range(0, 40, 4))
    assert page.next_after is None


def test_the_cursor_lies_before_the_next_match(log_dir: Path) -> None:
    page = search(log_dir, Query(event="message.accepted"), limit=2)

    assert [r["seq"] for r in page.records] == [0, 4]
    assert 4 <= page.next_after < 8  # type: ignore[operator]
    assert (
        search(log_dir, Query(event="message.accepted"), after=page.next_after, limit=1).records[0][
            "seq"
        ]
        == 8
    )


def test_after_skips_whole_segments_unread(log_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    present = segments(log_dir)
    opened: list[str] = []

    def spying(path: Path) -> Iterator[Line]:
        opened.append(path.name)
        return lines(path)

    monkeypatch.setattr(search_module, "lines", spying)
    start = present[-2][0]

    page = search(log_dir, Query(), after=start, limit=1000)

    assert page.records[0]["seq"] == start + 1
    assert page.records[-1]["seq"] == 39
    assert opened == [present[-2][1].name, present[-1][1].name]


def test_a_cursor_on_a_segment_boundary_skips_the_segment_before(log_dir: Path) -> None:
    present = segments(log_dir)
    boundary = present[3][0]

    page = search(log_dir, Query(), after=boundary - 1, limit=1000)

    assert [r["seq"] for r in page.records] == list(range(boundary, 40))


def test_after_the_last_record_finds_nothing(log_dir: Path) -> None:
    assert search(log_dir, Query(), after=39) == Page([], None)
    assert search(log_dir, Query(), after=10_000) == Page([], None)


def test_filters_combine_across_segments(log_dir: Path) -> None:
    page = search(log_dir, Query(participant="minhealth", contract=f"{REFERRAL}@1.0.0"))

    assert [(r["seq"], r["sender"]) for r in page.records] == [(0, "minhealth"), (24, "minhealth")]
    assert search(log_dir, Query(participant="minhealth", contract=REFERRAL)).records == [
        r
        for r in stored(log_dir)
        if r["event"] == "message.accepted" and r["sender"] == "minhealth"
    ]


def test_time_range_over_stored_records(log_dir: Path) -> None:
    every = stored(log_dir)
    since, until = parse_time(every[10]["time"]), parse_time(every[20]["time"])

    page = search(log_dir, Query(since=since, until=until))

    # Records written within one microsecond share a time; the range is by time, not seq.
    assert [r for r in page.records] == [r for r in every if since <= parse_time(r["time"]) < until]
    assert page.records[0]["seq"] <= 10
    assert page.records[-1]["seq"] < 20


def test_an_unfinished_last_line_is_ignored(log_dir: Path) -> None:
    _, last = segments(log_dir)[-1]
    with last.open("ab") as handle:
        handle.write(b'{"seq": 40, "event": "message.accepted"')

    page = search(log_dir, Query(), after=35)

    assert [r["seq"] for r in page.records] == [36, 37, 38, 39]


def test_lines_that_are_not_records_are_skipped(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    directory.mkdir()
    (directory / "segment-000000000000.jsonl").write_bytes(
        b'{"seq": 0, "event": "a"}\nnot json\n[1]\n{"seq": "1", "event": "b"}\n{"seq": 2}\n'
    )

    assert [r["seq"] for r in search(directory, Query()).records] == [0, 2]


def test_a_segment_removed_by_retention_during_a_search_is_passed_over(
    log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    present = segments(log_dir)
    monkeypatch.setattr(
        search_module, "segments", lambda _: [(0, log_dir / "segment-gone.jsonl"), *present[1:]]
    )

    page = search(log_dir, Query(), limit=1000)

    assert page.records[0]["seq"] == present[1][0]


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_must_be_positive(log_dir: Path, limit: int) -> None:
    with pytest.raises(ValueError, match="limit must be at least 1"):
        search(log_dir, Query(), limit=limit)


def test_default_limit_is_100(tmp_path: Path) -> None:
    directory = tmp_path / "audit"
    write_log(directory, 150, segment_max_bytes=64 * 1024)

    page = search(directory, Query())

    assert len(page.records) == 100
    assert page.next_after == 99
