"""Quality counts from the audit log, and the charts drawn from them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.console.charts import _nice, horizontal_bars, stacked_bars
from gateway.console.quality import KEEP_S, Point, Quality

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC).timestamp()
REFERRAL = "health.patient-referral"


class Log:
    """A node's audit segment, written as the node writes it (one JSON record a line)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir()
        self.seq = 0

    def add(self, event: str, at: float, **fields: Any) -> None:
        record = {
            "event": event,
            "seq": self.seq,
            "time": datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z"),
            **fields,
        }
        with (self.directory / "segment-000000000000.jsonl").open("a") as segment:
            segment.write(json.dumps(record) + "\n")
        self.seq += 1

    def accepted(self, at: float, contract: str = REFERRAL, sender: str = "minhealth") -> None:
        self.add("message.accepted", at, contract=f"{contract}@1.1.0", sender=sender)

    def rejected(
        self, at: float, pointers: list[str], contract: str = REFERRAL, sender: str = "minhealth"
    ) -> None:
        self.add(
            "message.rejected",
            at,
            contract=f"{contract}@1.1.0",
            sender=sender,
            reason="contract-violation",
            pointers=pointers,
        )


@pytest.fixture
def log(tmp_path: Path) -> Log:
    return Log(tmp_path / "audit")


def test_publishes_are_counted_per_bar_and_failures_per_pointer(log: Log) -> None:
    log.accepted(NOW - 30)
    log.accepted(NOW - 4000)
    log.rejected(NOW - 60, ["/urgency", "/patient/birthDate"])
    log.rejected(NOW - 70, ["/urgency"])
    log.add("message.delivered", NOW - 20, contract=f"{REFERRAL}@1.1.0", sender="minhealth")
    quality = Quality(log.directory)
    quality.refresh()
    view = quality.view(span_s=3 * 3600, step_s=3600, now=NOW)
    # 10:00-11:00, 11:00-12:00, and the bar holding now (12:00-13:00).
    assert [(p.accepted, p.rejected) for p in view.series] == [(1, 0), (1, 2), (0, 0)]
    assert view.series[-1].start == NOW
    assert view.top_pointers == [("/urgency", 2), ("/patient/birthDate", 1)]
    assert view.reasons == [("contract-violation", 2)]
    [totals] = view.totals
    assert (totals.contract, totals.accepted, totals.rejected) == (REFERRAL, 2, 2)
    assert totals.rejected_share == 0.5


def test_a_refresh_reads_only_what_was_written_since(log: Log) -> None:
    quality = Quality(log.directory)
    log.accepted(NOW - 10)
    quality.refresh()
    log.accepted(NOW - 5)
    quality.refresh()
    quality.refresh()
    assert quality.view(span_s=3600, step_s=300, now=NOW).accepted == 2


def test_contract_and_sender_narrow_the_series_not_the_per_contract_totals(log: Log) -> None:
    log.accepted(NOW - 10)
    log.rejected(NOW - 10, ["/a"], contract="social.support-measure", sender="socialtreasury")
    quality = Quality(log.directory)
    quality.refresh()
    view = quality.view(contract=REFERRAL, span_s=3600, step_s=300, now=NOW)
    assert (view.accepted, view.rejected, view.top_pointers) == (1, 0, [])
    assert [t.contract for t in view.totals] == ["social.support-measure", REFERRAL]
    mine = quality.view(sender="socialtreasury", span_s=3600, step_s=300, now=NOW)
    assert (mine.accepted, mine.rejected) == (0, 1)
    assert [t.contract for t in mine.totals] == ["social.support-measure"]


def test_the_payload_root_is_shown_as_a_slash_and_odd_records_are_skipped(log: Log) -> None:
    log.rejected(NOW - 10, ["", 7, "/x"])  # type: ignore[list-item]
    log.add("message.accepted", NOW - 10, contract=None)
    log.add("message.accepted", NOW - 10, contract=REFERRAL, time="yesterday")
    with (log.directory / "segment-000000000000.jsonl").open("a") as segment:
        segment.write("{not json\n")
    quality = Quality(log.directory)
    quality.refresh()
    view = quality.view(span_s=3600, step_s=300, now=NOW)
    assert (view.accepted, view.rejected) == (0, 1)
    assert view.top_pointers == [("/", 1), ("/x", 1)]


def test_buckets_older_than_a_week_are_forgotten(log: Log) -> None:
    log.accepted(NOW - KEEP_S - 3600)
    log.accepted(NOW - 10)
    quality = Quality(log.directory)
    quality.refresh()
    assert quality.view(span_s=KEEP_S * 2, step_s=KEEP_S, now=NOW).accepted == 1


def test_without_records_the_view_is_empty_bars(log: Log) -> None:
    quality = Quality(log.directory)
    quality.refresh()
    view = quality.view(span_s=3600, step_s=300, now=NOW)
    assert len(view.series) == 12
    assert (view.accepted, view.rejected, view.totals) == (0, 0, [])


def test_stacked_bars_scale_to_a_round_top_and_stack_rejected_on_accepted() -> None:
    chart = stacked_bars(
        [Point(0, 3, 1), Point(300, 0, 0), Point(600, 8, 0)], label=str, title="rates"
    )
    [a, r, b] = chart.rects
    assert (a.kind, r.kind, b.kind) == ("accepted", "rejected", "accepted")
    assert a.height == pytest.approx(b.height * 3 / 8)
    assert r.y + r.height == pytest.approx(a.y)  # on top of the accepted part
    assert "10" in [t.text for t in chart.texts]  # the axis top: 8 rounded up
    assert a.title == "0: 3 accepted"


def test_horizontal_bars_are_proportional_and_labels_are_cut_short() -> None:
    chart = horizontal_bars([("/" + "x" * 60, 10), ("/b", 5)], title="pointers")
    first, second = chart.rects
    assert first.width == pytest.approx(second.width * 2)
    assert chart.texts[0].text.endswith("…")
    assert len(chart.texts[0].text) == 40
    assert first.title.startswith("/" + "x" * 60)  # the tooltip keeps the whole pointer
    assert horizontal_bars([], title="none").empty


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (1, 1), (2, 2), (3, 5), (7, 10), (11, 20), (51, 100), (100, 100)]
)
def test_axis_tops_are_one_two_or_five_times_a_power_of_ten(value: int, top: int) -> None:
    assert _nice(value) == top
