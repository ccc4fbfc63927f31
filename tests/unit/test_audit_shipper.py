"""The audit shipper copies every record and head to the audit topic, in order, once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from gateway.audit.log import AuditLog
from gateway.audit.shipper import AuditShipper
from gateway.audit.store import records
from gateway.config import AuditConfig
from gateway.crypto.jwk import SignKey, Suite
from gateway.transport.records import OutboundRecord
from tests.fakes import MemoryBroker, MemoryPublisher

TOPIC = "gw.audit"
KEY = SignKey.generate(Suite.ED25519)


def open_log(directory: Path, *, head_every_records: int = 10_000) -> AuditLog:
    return AuditLog(
        node_id="node-a",
        directory=directory,
        signer=KEY,
        settings=AuditConfig(head_every_records=head_every_records),
    )


def accepted(audit: AuditLog, n: int) -> None:
    audit.record(
        "message.accepted",
        message_id=f"m{n}",
        contract="c@1.0.0",
        sender="a",
        recipients=["b"],
        payload_sha256="0" * 64,
        payload_size=10,
    )


def lines(broker: MemoryBroker, kind: str | None = None) -> list[tuple[str, bytes]]:
    """Every line on the topic, unpacked from the JSON Lines values, with its kind."""
    found = []
    for record in broker.records(TOPIC):
        headers = dict(record.headers)
        got = headers["gw_kind"].decode()
        values = record.value.split(b"\n")
        assert int(headers["gw_count"]) == len(values)
        if kind in (None, got):
            found += [(got, value) for value in values]
    return found


def shipped(broker: MemoryBroker) -> list[tuple[str, dict[str, object]]]:
    return [(kind, json.loads(value)) for kind, value in lines(broker)]


async def settle(broker: MemoryBroker, count: int) -> None:
    async with asyncio.timeout(5):
        while len(lines(broker)) < count:  # noqa: ASYNC110 - polls a fake broker
            await asyncio.sleep(0.01)


def held_publisher(broker: MemoryBroker) -> tuple[MemoryPublisher, asyncio.Event]:
    """A publisher whose batches wait at the broker until the event is set."""
    publisher = MemoryPublisher(broker)
    release = asyncio.Event()
    real_publish = publisher.publish

    async def held(batch: Sequence[OutboundRecord]) -> None:
        await release.wait()
        await real_publish(batch)

    publisher.publish = held  # type: ignore[method-assign,assignment]
    return publisher, release


@contextlib.asynccontextmanager
async def running(shipper: AuditShipper) -> AsyncIterator[None]:
    task = asyncio.create_task(shipper.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_every_record_and_head_reaches_the_topic_in_order(tmp_path: Path) -> None:
    broker = MemoryBroker()
    audit = open_log(tmp_path / "audit", head_every_records=3)
    shipper = AuditShipper(audit, MemoryPublisher(broker), topic=TOPIC, node="node-a")
    async with running(shipper):
        for n in range(7):
            accepted(audit, n)
        await settle(broker, 7 + 2)

    sent = shipped(broker)
    kinds = [kind for kind, _ in sent]
    # A head follows the records it covers: records 0-2, head (3), 3-5, head (6), 6.
    assert kinds == ["record"] * 3 + ["head"] + ["record"] * 3 + ["head"] + ["record"]
    stored = [line.raw for line, _ in records(tmp_path / "audit")]
    assert [value for _, value in lines(broker, "record")] == stored
    assert {r.key for r in broker.records(TOPIC)} == {b"node-a"}
    assert shipper.shipped == (7, 2)
    audit.close()


async def test_records_written_while_the_broker_is_down_are_sent_when_it_returns(
    tmp_path: Path,
) -> None:
    broker = MemoryBroker()
    audit = open_log(tmp_path / "audit")
    shipper = AuditShipper(
        audit, MemoryPublisher(broker), topic=TOPIC, node="node-a", retry_backoff_s=0.01
    )
    async with running(shipper):
        accepted(audit, 0)
        await settle(broker, 1)
        broker.down = True
        for n in range(1, 5):
            accepted(audit, n)
        await asyncio.sleep(0.05)
        assert len(lines(broker)) == 1
        broker.down = False
        await settle(broker, 5)

    seqs = [body["seq"] for kind, body in shipped(broker) if kind == "record"]
    assert seqs == [0, 1, 2, 3, 4]
    audit.close()


async def test_a_restarted_node_sends_only_what_the_broker_never_acknowledged(
    tmp_path: Path,
) -> None:
    broker = MemoryBroker()
    directory = tmp_path / "audit"
    audit = open_log(directory)
    shipper = AuditShipper(audit, MemoryPublisher(broker), topic=TOPIC, node="node-a")
    async with running(shipper):
        for n in range(3):
            accepted(audit, n)
        await settle(broker, 3)
    accepted(audit, 3)  # after the shipper stopped: only in the file
    audit.close()  # signs a head over all four

    audit = open_log(directory)
    shipper = AuditShipper(audit, MemoryPublisher(broker), topic=TOPIC, node="node-a")
    async with running(shipper):
        await settle(broker, 5)
        await asyncio.sleep(0.05)

    sent = shipped(broker)
    assert [(kind, body.get("seq", body.get("tree_head"))) for kind, body in sent[3:]] == [
        ("record", 3),
        ("head", sent[4][1]["tree_head"]),
    ]
    assert [body["seq"] for kind, body in sent if kind == "record"] == [0, 1, 2, 3]
    audit.close()


async def test_flush_reports_what_the_broker_would_not_take(tmp_path: Path) -> None:
    broker = MemoryBroker()
    audit = open_log(tmp_path / "audit")
    shipper = AuditShipper(
        audit, MemoryPublisher(broker), topic=TOPIC, node="node-a", retry_backoff_s=0.01
    )
    accepted(audit, 0)
    broker.down = True

    assert await shipper.flush(0.1) is False
    broker.down = False
    assert await shipper.flush(1.0) is True
    assert [body["seq"] for _, body in shipped(broker)] == [0]
    audit.close()


@pytest.mark.parametrize("cursor", ["not json", '{"records": "x"}', "[]"])
async def test_a_damaged_cursor_resends_everything_rather_than_skip(
    tmp_path: Path, cursor: str
) -> None:
    broker = MemoryBroker()
    directory = tmp_path / "audit"
    audit = open_log(directory)
    accepted(audit, 0)
    accepted(audit, 1)
    (directory / "shipped.json").write_text(cursor)
    shipper = AuditShipper(audit, MemoryPublisher(broker), topic=TOPIC, node="node-a")

    assert await shipper.flush(1.0) is True
    assert [body["seq"] for _, body in shipped(broker)] == [0, 1]
    audit.close()


async def test_past_its_memory_bound_the_shipper_reads_the_files_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.audit.shipper._MAX_QUEUED", 2)
    broker = MemoryBroker()
    audit = open_log(tmp_path / "audit")
    shipper = AuditShipper(
        audit, MemoryPublisher(broker), topic=TOPIC, node="node-a", retry_backoff_s=0.01
    )
    async with running(shipper):
        accepted(audit, 0)
        await settle(broker, 1)
        broker.down = True
        for n in range(1, 8):  # more than the queue holds while the broker is away
            accepted(audit, n)
        broker.down = False
        await settle(broker, 8)
        await asyncio.sleep(0.05)

    assert [body["seq"] for _, body in shipped(broker)] == list(range(8))
    audit.close()


async def test_closing_lets_the_batch_in_flight_finish_instead_of_sending_it_twice(
    tmp_path: Path,
) -> None:
    broker = MemoryBroker()
    audit = open_log(tmp_path / "audit")
    publisher, release = held_publisher(broker)
    shipper = AuditShipper(audit, publisher, topic=TOPIC, node="node-a")
    task = asyncio.create_task(shipper.run())
    accepted(audit, 0)
    accepted(audit, 1)
    await asyncio.sleep(0.02)  # the batch is now waiting on the broker
    closing = asyncio.create_task(shipper.close(task, 1.0))
    await asyncio.sleep(0.02)
    release.set()

    assert await closing is True
    assert task.done()
    assert [body["seq"] for _, body in shipped(broker)] == [0, 1]
    audit.close()


async def test_retention_spares_segments_the_topic_has_not_taken_yet(tmp_path: Path) -> None:
    broker = MemoryBroker()
    directory = tmp_path / "audit"
    audit = AuditLog(
        node_id="node-a",
        directory=directory,
        signer=KEY,
        settings=AuditConfig(segment_max_bytes=600, retain_segments=1),
    )
    broker.down = True
    shipper = AuditShipper(
        audit, MemoryPublisher(broker), topic=TOPIC, node="node-a", retry_backoff_s=0.01
    )
    for n in range(12):  # several segments, none shipped
        accepted(audit, n)
    assert [r["seq"] for _, r in records(directory)] == list(range(12))

    broker.down = False
    assert await shipper.flush(1.0) is True
    accepted(audit, 12)
    for n in range(13, 20):  # rotations after shipping: now retention may prune
        accepted(audit, n)
    kept = [r["seq"] for _, r in records(directory)]
    assert kept[0] > 0
    assert kept == list(range(kept[0], 20))
    assert [body["seq"] for kind, body in shipped(broker) if kind == "record"][:12] == list(
        range(12)
    )
    audit.close()


async def test_lines_are_packed_by_kind_with_their_first_number_and_count(
    tmp_path: Path,
) -> None:
    broker = MemoryBroker()
    audit = open_log(tmp_path / "audit", head_every_records=4)
    for n in range(6):  # records 0-3, head 0, records 4-5
        accepted(audit, n)
    shipper = AuditShipper(audit, MemoryPublisher(broker), topic=TOPIC, node="node-a")

    assert await shipper.flush(1.0) is True

    packed = [
        (dict(r.headers)["gw_kind"], dict(r.headers)["gw_first"], dict(r.headers)["gw_count"])
        for r in broker.records(TOPIC)
    ]
    assert packed == [
        (b"record", b"0", b"4"),
        (b"head", b"0", b"1"),
        (b"record", b"4", b"2"),
    ]
    stored = [line.raw for line, _ in records(tmp_path / "audit")]
    assert [value for _, value in lines(broker, "record")] == stored
    audit.close()


async def test_a_value_stays_under_the_size_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.audit.shipper._MAX_VALUE", 700)
    broker = MemoryBroker()
    audit = open_log(tmp_path / "audit")
    for n in range(5):
        accepted(audit, n)
    shipper = AuditShipper(audit, MemoryPublisher(broker), topic=TOPIC, node="node-a")

    assert await shipper.flush(1.0) is True

    assert all(len(r.value) <= 700 for r in broker.records(TOPIC))
    assert len(broker.records(TOPIC)) > 1
    assert [body["seq"] for _, body in shipped(broker)] == list(range(5))
    audit.close()


async def test_an_overflow_while_a_batch_is_in_flight_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue is dropped while the broker holds a batch: that batch still counts as
    shipped, and everything after it is read back from the files."""
    monkeypatch.setattr("gateway.audit.shipper._MAX_QUEUED", 3)
    broker = MemoryBroker()
    audit = open_log(tmp_path / "audit")
    publisher, release = held_publisher(broker)
    shipper = AuditShipper(audit, publisher, topic=TOPIC, node="node-a")
    accepted(audit, 0)
    task = asyncio.create_task(shipper.run())
    await asyncio.sleep(0.02)  # record 0 is in flight
    for n in range(1, 10):  # more than the queue holds
        accepted(audit, n)
    release.set()
    await settle(broker, 10)
    assert await shipper.close(task, 1.0) is True

    seqs = [body["seq"] for _, body in shipped(broker)]
    assert seqs == list(range(10))
    assert shipper.shipped == (10, 0)
    audit.close()


async def test_a_backlog_larger_than_memory_is_sent_in_bounded_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.audit.shipper._MAX_QUEUED", 4)
    broker = MemoryBroker()
    audit = open_log(tmp_path / "audit")
    for n in range(11):  # the backlog: in the files, never shipped
        accepted(audit, n)
    shipper = AuditShipper(audit, MemoryPublisher(broker), topic=TOPIC, node="node-a")
    async with running(shipper):
        accepted(audit, 11)  # arrives while the catch-up runs
        await settle(broker, 12)
        await asyncio.sleep(0.05)

    assert [body["seq"] for _, body in shipped(broker)] == list(range(12))
    assert max(len(r.value.split(b"\n")) for r in broker.records(TOPIC)) <= 4
    audit.close()


async def test_a_cursor_past_the_end_of_the_log_is_pulled_back(tmp_path: Path) -> None:
    """A cursor from another log (or a restored backup) must not skip records."""
    broker = MemoryBroker()
    directory = tmp_path / "audit"
    audit = open_log(directory)
    accepted(audit, 0)
    accepted(audit, 1)
    (directory / "shipped.json").write_text('{"records": 500, "heads": 70}')
    shipper = AuditShipper(audit, MemoryPublisher(broker), topic=TOPIC, node="node-a")

    assert shipper.shipped == (2, 0)
    accepted(audit, 2)
    assert await shipper.flush(1.0) is True
    assert [body["seq"] for _, body in shipped(broker)] == [2]
    audit.close()


async def test_after_retention_the_cursor_starts_at_the_first_record_kept(
    tmp_path: Path,
) -> None:
    broker = MemoryBroker()
    directory = tmp_path / "audit"
    settings = AuditConfig(segment_max_bytes=600, retain_segments=1)
    audit = AuditLog(node_id="node-a", directory=directory, signer=KEY, settings=settings)
    for n in range(12):
        accepted(audit, n)
    audit.close()
    first = min(r["seq"] for _, r in records(directory))
    assert first > 0
    (directory / "shipped.json").unlink(missing_ok=True)

    audit = AuditLog(node_id="node-a", directory=directory, signer=KEY, settings=settings)
    shipper = AuditShipper(audit, MemoryPublisher(broker), topic=TOPIC, node="node-a")
    assert shipper.shipped[0] == first
    assert await shipper.flush(1.0) is True

    record_batches = [r for r in broker.records(TOPIC) if dict(r.headers)["gw_kind"] == b"record"]
    assert dict(record_batches[0].headers)["gw_first"] == str(first).encode()
    assert [body["seq"] for kind, body in shipped(broker) if kind == "record"] == list(
        range(first, 12)
    )
    audit.close()
