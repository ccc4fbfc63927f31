"""Dead-letter topics on the in-memory transport: entries, bounded reads and replays."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
from structlog.testing import capture_logs

import gateway.dlq.topic
from gateway.audit import AuditLog
from gateway.config import GatewayConfig, KafkaConfig
from gateway.dlq import DeadLetters, Position, Selection
from gateway.dlq.entries import Marks, dead_letter, replayed_copy
from gateway.dlq.topic import MAX_REPLAY
from gateway.errors import TransportError, UnknownDeadLetter
from gateway.transport import InboundRecord, OutboundRecord
from tests.fakes import MemoryBroker, MemoryReader, MemoryTransport

ME = "socialtreasury"


def config() -> GatewayConfig:
    return GatewayConfig(node_id="node-1", kafka=KafkaConfig(request_timeout_s=2.0))


def letters(transport: MemoryTransport, cfg: GatewayConfig | None = None) -> DeadLetters:
    return DeadLetters(
        participant=ME,
        config=cfg or config(),
        transport=transport,
        publisher=transport.publisher(),
        audit=AuditLog(node_id="node-1"),
    )


def fill(transport: MemoryTransport, count: int, *, size: int = 10) -> None:
    topic = config().dlq_topic(ME)
    for n in range(count):
        headers = (("ce_id", f"m-{n}".encode()), ("gw_reason", b"unknown-contract"))
        transport.broker.topics.setdefault(topic, []).append(
            OutboundRecord(topic, b"k", b"e" * size, headers)
        )


@pytest.mark.parametrize("text", ["0", "0:", ":1", "a:1", "1:b", "-1:0", "0:1:2", "1" * 19 + ":0"])
def test_a_position_is_two_whole_numbers(text: str) -> None:
    with pytest.raises(ValueError, match="PARTITION:OFFSET"):
        Position.parse(text)
    assert Position.parse("3:1234") == (3, 1234)
    assert str(Position(3, 1234)) == "3:1234"


def test_an_entry_carries_metadata_and_digest_only() -> None:
    record = InboundRecord(
        "gw.dlq.x",
        1,
        7,
        b"k",
        b"sealed",
        (
            ("ce_type", b"health.patient-referral"),
            ("ce_dataschema", b"urn:gateway:contract:health.patient-referral@1.2.0"),
            ("gw_detail", b"d" * 900),
            ("ce_source", b"\xff\xfe"),  # not UTF-8: not shown
        ),
    )
    entry = dead_letter(record)
    assert (entry.position, entry.version, entry.sender) == (Position(1, 7), "1.2.0", None)
    assert len(entry.detail or "") == 500
    assert b"sealed".decode() not in str(entry.as_dict().values())
    other = dataclasses.replace(record, headers=(("ce_type", b"a.b"), ("ce_dataschema", b"urn:x")))
    assert dead_letter(other).version is None


def test_a_replayed_copy_keeps_the_record_but_not_the_diagnostics() -> None:
    record = InboundRecord(
        "gw.dlq.x",
        0,
        3,
        None,
        b"sealed",
        (("ce_id", b"m"), ("gw_reason", b"r"), ("gw_replayed_from", b"old"), ("traceparent", b"t")),
    )
    copy = replayed_copy(record, inbox="gw.inbox.x")
    assert (copy.topic, copy.key, copy.value) == ("gw.inbox.x", b"", b"sealed")
    assert copy.headers == (
        ("ce_id", b"m"),
        ("traceparent", b"t"),
        ("gw_replayed_from", b"gw.dlq.x/0/3"),
    )


def test_markers_count_only_entries_of_their_own_topic() -> None:
    marks = Marks("gw.dlq.x")
    for target in ("gw.dlq.x/0/3", "gw.dlq.x/0/3", "gw.dlq.y/0/4", "gw.dlq.x/zero"):
        headers = (("gw_replayed", target.encode()), ("gw_time", b"t"))
        assert marks.take(InboundRecord("gw.dlq.x", 0, 9, b"", b"", headers))
    assert marks.seen == {Position(0, 3): (2, "t")}
    entry = InboundRecord("gw.dlq.x", 0, 3, b"", b"v", (("gw_replayed", b"gw.dlq.x/0/3"),))
    assert not marks.take(entry)  # a value: an entry, whatever its headers say


async def test_all_takes_at_most_a_bounded_batch_and_says_what_remains() -> None:
    transport = MemoryTransport()
    fill(transport, MAX_REPLAY + 5)
    topic = letters(transport)

    first = await topic.replay(Selection(everything=True), by=ME)
    second = await topic.replay(Selection(everything=True), by=ME)
    third = await topic.replay(Selection(everything=True), by=ME)

    assert (len(first.replayed), first.remaining) == (MAX_REPLAY, 5)
    assert [e.offset for e in second.replayed] == list(range(MAX_REPLAY, MAX_REPLAY + 5))
    assert (len(third.replayed), third.remaining) == (0, 0)
    inbox = transport.broker.records(config().inbox_topic(ME))
    assert len(inbox) == MAX_REPLAY + 5


async def test_the_byte_bound_leaves_the_rest_for_later(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gateway.dlq.topic, "MAX_REPLAY_BYTES", 25)
    transport = MemoryTransport()
    fill(transport, 3, size=20)

    result = await letters(transport).replay(Selection(everything=True), by=ME)

    assert ([e.offset for e in result.replayed], result.remaining) == ([0], 2)


async def test_a_read_of_a_topic_that_keeps_growing_ends() -> None:
    class Growing(MemoryReader):
        """After every fetch one more record is written, as a busy inbox would: the
        topic's end keeps moving away."""

        async def fetch(self, max_records: int, timeout_s: float) -> list[InboundRecord]:
            records = await super().fetch(max_records, timeout_s)
            fill_one(self._broker)
            return records

    def fill_one(broker: MemoryBroker) -> None:
        topic = config().dlq_topic(ME)
        broker.topics[topic].append(OutboundRecord(topic, b"k", b"late", ()))

    transport = MemoryTransport()
    transport.reader = lambda topic: Growing(transport.broker, topic)  # type: ignore[method-assign]
    fill(transport, 3)

    page = await letters(transport).page(after=None, limit=10)

    # Read to where the topic ended when the read began, not on after the end that moves
    # away with every fetch (that would run into the timeout).
    assert [e.offset for e in page.entries][:3] == [0, 1, 2]
    assert page.total < 10


async def test_a_topic_never_read_to_its_end_is_a_transport_error() -> None:
    class Stuck(MemoryReader):
        async def reached(self, ends: object) -> bool:
            return False

    transport = MemoryTransport()
    transport.reader = lambda topic: Stuck(transport.broker, topic)  # type: ignore[method-assign]
    cfg = dataclasses.replace(config(), kafka=KafkaConfig(request_timeout_s=0.1))

    with pytest.raises(TransportError, match=r"not read in 0\.1 s"):
        await letters(transport, cfg).page(after=None, limit=10)


async def test_a_missing_entry_and_a_broker_that_is_down() -> None:
    transport = MemoryTransport()
    fill(transport, 1)
    topic = letters(transport)

    with pytest.raises(UnknownDeadLetter, match="no dead letter at 0:1"):
        await topic.entry(Position(0, 1))
    transport.broker.down = True
    with pytest.raises(TransportError):
        await topic.entry(Position(0, 0))
    with pytest.raises(TransportError):
        await topic.replay(Selection(positions=(Position(0, 0),)), by=ME)


async def test_a_replay_the_broker_did_not_acknowledge_is_logged_not_audited() -> None:
    class Refusing:
        async def publish(self, records: Sequence[OutboundRecord]) -> None:
            raise TransportError("the broker did not acknowledge the message in time")

    transport = MemoryTransport()
    fill(transport, 2)
    topic = DeadLetters(
        participant=ME,
        config=config(),
        transport=transport,
        publisher=Refusing(),
        audit=AuditLog(node_id="node-1"),
    )

    with capture_logs() as logs, pytest.raises(TransportError):
        await topic.replay(Selection(everything=True), by=ME)

    assert [e for e in logs if e["event"] == "message.replayed"] == []
    [warning] = [e for e in logs if e["event"] == "dlq_replay_unacknowledged"]
    assert (warning["positions"], warning["by"]) == (["0:0", "0:1"], ME)
