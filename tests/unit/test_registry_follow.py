"""A node's registry view: records from the topic, catching up, a changed trust anchor,
and the per-contract entitlements a record grants."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import AuditLog
from gateway.contracts import load_catalog
from gateway.crypto.jwk import SignKey, Suite
from gateway.errors import TransportError
from gateway.participants.document import Role
from gateway.participants.follow import RegistryView
from gateway.participants.registry import ANCHOR_FILE, RECORD_SUFFIX, Status
from gateway.participants.topic import RegistryFollower, outbound
from gateway.transport import OutboundRecord
from tests.fakes import MemoryBroker, MemoryReader
from tests.unit.test_participant_registry import (
    ACME,
    AUTHORITY_KEY,
    MINHEALTH,
    SOCIAL,
    STRANGER_KEY,
    bundle,
    by_authority,
    by_sponsor,
)

CATALOG = load_catalog(Path(__file__).resolve().parents[2] / "contracts")
REFERRAL = "health.patient-referral"
TOPIC = "gw.registry"
AUDIT_KEY = SignKey.generate(Suite.ED25519)


class Events:
    """The audit records a view writes, as dicts."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def __call__(self, kind: str, _number: int, line: bytes) -> None:
        if kind == "record":
            self.lines.append(json.loads(line))

    def named(self, event: str) -> list[dict[str, Any]]:
        return [r for r in self.lines if r["event"] == event]

    def names(self) -> list[str]:
        return [r["event"] for r in self.lines if r["event"].startswith(("participant", "reg"))]


def anchor_file(directory: Path, *keys: SignKey) -> None:
    jwks = {"keys": [k.verify_key().to_jwk() for k in keys]}
    (directory / ANCHOR_FILE).write_text(json.dumps(jwks))


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def view(tmp_path: Path, events: Events) -> Iterator[RegistryView]:
    anchor_file(tmp_path, AUTHORITY_KEY)
    audit = AuditLog(node_id="node-1", directory=tmp_path / "audit", signer=AUDIT_KEY)
    audit.subscribe(events)
    yield RegistryView.open(tmp_path, audit=audit, files=False)
    audit.close()


def value(record: str, *chain: str) -> bytes:
    return json.dumps(bundle(record, *chain)).encode()


MINHEALTH_1 = by_authority(MINHEALTH.doc)
ACME_1 = by_sponsor(ACME.doc, MINHEALTH)


# -- records from the topic ------------------------------------------------------------


def test_a_record_from_the_topic_admits_its_participant(view: RegistryView, events: Events) -> None:
    assert view.take(value(MINHEALTH_1), "gw.registry:0:0")

    assert view.admitted("minhealth")
    assert events.named("participant.approved")[0]["participant"] == "minhealth"


def test_a_contractor_arriving_before_its_sponsor_brings_the_sponsor_from_its_chain(
    view: RegistryView,
) -> None:
    assert view.take(value(ACME_1, MINHEALTH_1), "gw.registry:0:0")

    assert view.admitted("acme-analytics")
    assert view.admitted("minhealth")


def test_a_newer_sponsor_record_after_the_chain_one_still_decides(view: RegistryView) -> None:
    view.take(value(ACME_1, MINHEALTH_1), "gw.registry:0:0")
    suspended = by_authority(MINHEALTH.doc, serial=2, status=Status.SUSPENDED)

    assert view.take(value(suspended), "gw.registry:0:1")

    assert not view.admitted("minhealth")
    assert not view.admitted("acme-analytics")  # what the sponsor signed falls with it


def test_a_chain_record_older_than_the_held_sponsor_changes_nothing(view: RegistryView) -> None:
    view.take(value(MINHEALTH_1), "gw.registry:0:0")
    view.take(value(by_authority(MINHEALTH.doc, serial=2, status=Status.SUSPENDED)), "t:0:1")

    assert not view.take(value(ACME_1, MINHEALTH_1), "gw.registry:0:2")
    assert view.status("minhealth") is Status.SUSPENDED
    assert not view.admitted("acme-analytics")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "malformed"),
        (b'{"record": 1}', "malformed"),
        (value(by_authority(MINHEALTH.doc, key=STRANGER_KEY)), "unknown-signer"),
        (value(MINHEALTH_1[:-4] + "AAAA"), "bad-signature"),
    ],
)
def test_a_bad_record_from_the_topic_is_refused_and_audited_with_its_position(
    view: RegistryView, events: Events, raw: bytes, reason: str
) -> None:
    view.take(value(MINHEALTH_1), "gw.registry:0:0")

    assert not view.take(raw, "gw.registry:0:7")

    refusal = events.named("registry.refused")[0]
    assert (refusal["file"], refusal["reason"]) == ("gw.registry:0:7", reason)
    assert view.admitted("minhealth")  # the last good registry stays


def test_an_older_serial_from_the_topic_cannot_undo_a_suspension(
    view: RegistryView, events: Events
) -> None:
    view.take(value(by_authority(MINHEALTH.doc, serial=2, status=Status.SUSPENDED)), "t:0:0")

    assert not view.take(value(MINHEALTH_1), "gw.registry:0:1")

    assert not view.admitted("minhealth")
    assert events.named("registry.refused")[0]["reason"] == "older-serial"


def test_with_records_from_the_topic_record_files_are_not_read(
    tmp_path: Path, view: RegistryView
) -> None:
    (tmp_path / f"minhealth{RECORD_SUFFIX}").write_text(json.dumps(bundle(MINHEALTH_1)))

    view.refresh()

    assert not view.admitted("minhealth")


# -- catching up ---------------------------------------------------------------------------


def test_catching_up_audits_each_participant_once_as_it_ends(
    view: RegistryView, events: Events
) -> None:
    with view.catching_up():
        view.take(value(MINHEALTH_1), "t:0:0")
        view.take(value(by_authority(MINHEALTH.doc, serial=2, status=Status.SUSPENDED)), "t:0:1")
        view.take(value(by_authority(MINHEALTH.doc, serial=3)), "t:0:2")
        view.take(value(by_authority(SOCIAL.doc)), "t:0:3")
        assert events.names() == []  # nothing before the end

    approved = events.named("participant.approved")
    assert sorted((r["participant"], r["serial"]) for r in approved) == [
        ("minhealth", 3),
        ("socialtreasury", 1),
    ]
    assert events.named("participant.suspended") == []


def test_catching_up_still_audits_refusals_as_they_come(view: RegistryView, events: Events) -> None:
    with view.catching_up():
        view.take(b"[]", "t:0:0")
        assert [r["reason"] for r in events.named("registry.refused")] == ["malformed"]


async def test_the_follower_reads_the_topic_to_its_end_before_it_returns(
    view: RegistryView,
) -> None:
    broker = MemoryBroker()
    broker.topics[TOPIC] = [
        OutboundRecord(TOPIC, b"minhealth", value(MINHEALTH_1), ()),
        OutboundRecord(TOPIC, b"acme-analytics", value(ACME_1, MINHEALTH_1), ()),
    ]
    follower = RegistryFollower(view, MemoryReader(broker, TOPIC), TOPIC)

    assert await follower.catch_up(timeout_s=5) == 2

    assert view.admitted("acme-analytics")
    await follower.stop()


async def test_a_topic_that_cannot_be_read_stops_the_start(view: RegistryView) -> None:
    broker = MemoryBroker()
    broker.down = True
    reader = MemoryReader(broker, TOPIC)
    follower = RegistryFollower(view, reader, TOPIC)

    with pytest.raises(TransportError):
        await follower.catch_up(timeout_s=5)
    assert not reader.running


async def test_a_topic_never_read_to_its_end_stops_the_start_and_the_reader(
    view: RegistryView,
) -> None:
    class Stuck(MemoryReader):
        async def lag(self) -> int:
            return 1  # the end moves away forever

    reader = Stuck(MemoryBroker(), TOPIC)
    follower = RegistryFollower(view, reader, TOPIC)

    with pytest.raises(TransportError, match="not read to its end"):
        await follower.catch_up(timeout_s=0.1)
    assert not reader.running


def test_outbound_keys_the_record_by_participant(view: RegistryView) -> None:
    view.take(value(MINHEALTH_1), "t:0:0")
    record = view.registry.get("minhealth")
    assert record is not None

    out = outbound(TOPIC, record)

    assert (out.topic, out.key) == (TOPIC, b"minhealth")
    assert json.loads(out.value) == record.bundle()


# -- a changed trust anchor ----------------------------------------------------------------


def test_a_new_anchor_drops_the_records_that_no_longer_chain_to_it(
    tmp_path: Path, view: RegistryView, events: Events
) -> None:
    view.take(value(ACME_1, MINHEALTH_1), "t:0:0")
    successor = SignKey.generate(Suite.ED25519)

    anchor_file(tmp_path, successor)
    assert view.refresh()

    assert not view.admitted("minhealth")
    assert not view.admitted("acme-analytics")
    changed = events.named("registry.anchor_changed")[0]
    assert changed["kids"] == [successor.kid]
    assert changed["dropped"] == ["minhealth", "acme-analytics"]
    # ... and what the new key signs is taken.
    assert view.take(value(by_authority(MINHEALTH.doc, serial=2, key=successor)), "t:0:1")
    assert view.admitted("minhealth")


def test_an_anchor_that_keeps_the_old_key_keeps_its_records(
    tmp_path: Path, view: RegistryView, events: Events
) -> None:
    view.take(value(MINHEALTH_1), "t:0:0")

    anchor_file(tmp_path, AUTHORITY_KEY, SignKey.generate(Suite.ED25519))
    view.refresh()

    assert view.admitted("minhealth")
    assert events.named("registry.anchor_changed")[0]["dropped"] == []


def test_an_unreadable_anchor_keeps_the_old_one_and_is_audited(
    tmp_path: Path, view: RegistryView, events: Events
) -> None:
    view.take(value(MINHEALTH_1), "t:0:0")

    (tmp_path / ANCHOR_FILE).write_text('{"keys": [')  # caught half-copied
    assert not view.refresh()

    assert view.admitted("minhealth")
    assert events.named("registry.refused")[0]["file"] == ANCHOR_FILE
    anchor_file(tmp_path, AUTHORITY_KEY)  # the copy completes: nothing changes
    view.refresh()
    assert view.admitted("minhealth")
    assert events.named("registry.anchor_changed") == []


# -- entitlements --------------------------------------------------------------------------


def test_a_record_entitles_what_it_asks_for_and_no_more(view: RegistryView) -> None:
    view.take(
        value(
            MINHEALTH_1,
        ),
        "t:0:0",
    )  # asks to publish ^1.0.0
    view.take(value(ACME_1, MINHEALTH_1), "t:0:1")  # asks to subscribe ^1.0.0
    v1 = CATALOG.resolve(f"{REFERRAL}@1.0.0")

    assert view.entitled("minhealth", v1, Role.PUBLISH)
    assert not view.entitled("minhealth", v1, Role.SUBSCRIBE)
    assert view.entitled("acme-analytics", v1, Role.SUBSCRIBE)
    assert not view.entitled("acme-analytics", v1, Role.PUBLISH)
    assert not view.entitled("socialtreasury", v1, Role.SUBSCRIBE)  # no record


def test_a_version_outside_the_requested_range_is_not_entitled(view: RegistryView) -> None:
    narrow = ACME.changed(
        contracts=[{"contract": REFERRAL, "role": "subscribe", "versions": "~1.0.0"}]
    )
    view.take(value(MINHEALTH_1), "t:0:0")
    view.take(value(by_sponsor(narrow, MINHEALTH), MINHEALTH_1), "t:0:1")

    assert view.entitled("acme-analytics", CATALOG.resolve(f"{REFERRAL}@1.0.0"), Role.SUBSCRIBE)
    assert not view.entitled("acme-analytics", CATALOG.resolve(f"{REFERRAL}@1.1.0"), Role.SUBSCRIBE)


def test_a_suspended_participant_is_entitled_to_nothing(view: RegistryView) -> None:
    view.take(value(by_authority(MINHEALTH.doc, status=Status.SUSPENDED)), "t:0:0")

    assert not view.entitled("minhealth", CATALOG.resolve(f"{REFERRAL}@1.0.0"), Role.PUBLISH)


# -- what the review found -----------------------------------------------------------------


class Fragile(RegistryView):
    """A view whose intake breaks on one participant's record (say, a full disk)."""

    def take(self, value: bytes, origin: str, key: bytes | None = None) -> bool:
        if key == b"socialtreasury":
            raise OSError(28, "No space left on device")
        return super().take(value, origin, key)


async def test_a_record_that_breaks_its_intake_does_not_stop_the_follower(
    tmp_path: Path, events: Events
) -> None:
    anchor_file(tmp_path, AUTHORITY_KEY)
    audit = AuditLog(node_id="node-1", directory=tmp_path / "audit", signer=AUDIT_KEY)
    audit.subscribe(events)
    view = Fragile.open(tmp_path, audit=audit, files=False)
    broker = MemoryBroker()
    broker.topics[TOPIC] = [
        OutboundRecord(TOPIC, b"socialtreasury", value(by_authority(SOCIAL.doc)), ()),
        OutboundRecord(TOPIC, b"minhealth", value(MINHEALTH_1), ()),
    ]
    follower = RegistryFollower(view, MemoryReader(broker, TOPIC), TOPIC)

    assert await follower.catch_up(timeout_s=5) == 2

    assert view.admitted("minhealth")  # the record after it was still taken
    [refusal] = events.named("registry.refused")
    assert (refusal["file"], refusal["reason"]) == (f"{TOPIC}:0:0", "internal")
    await follower.stop()
    audit.close()


def test_a_record_stored_under_another_participants_key_is_refused(
    view: RegistryView, events: Events
) -> None:
    assert not view.take(value(MINHEALTH_1), "t:0:0", b"socialtreasury")

    assert not view.admitted("minhealth")
    assert events.named("registry.refused")[0]["reason"] == "wrong-key"


def test_a_revocation_added_to_an_anchor_key_drops_what_it_signed_since(
    tmp_path: Path, view: RegistryView, events: Events
) -> None:
    view.take(value(by_authority(MINHEALTH.doc, issued_at=2_000)), "t:0:0")
    view.take(value(by_authority(SOCIAL.doc, issued_at=1_000)), "t:0:1")
    jwk = AUTHORITY_KEY.verify_key().to_jwk() | {"revoked_at": 1_500}

    (tmp_path / ANCHOR_FILE).write_text(json.dumps({"keys": [jwk]}))
    assert view.refresh()

    assert view.admitted("socialtreasury")  # signed before the revocation
    assert not view.admitted("minhealth")  # signed after it
    assert events.named("registry.anchor_changed")[0]["dropped"] == ["minhealth"]


def test_a_contractor_signed_after_its_sponsor_revoked_the_key_is_not_admitted(
    view: RegistryView,
) -> None:
    """The chain carries the sponsor's older record, from before the revocation: the
    sponsor's newest record decides."""
    view.take(value(MINHEALTH_1), "t:0:0")
    revoked = copy.deepcopy(MINHEALTH.doc)
    revoked["keys"]["keys"][0]["revoked_at"] = 1_795_000_500  # its signing key
    view.take(value(by_authority(revoked, serial=2)), "t:0:1")
    late = by_sponsor(ACME.doc, MINHEALTH, issued_at=1_795_000_600)

    assert not view.take(value(late, MINHEALTH_1), "t:0:2")
    assert not view.admitted("acme-analytics")


def test_what_a_node_held_is_its_floor_after_a_restart(tmp_path: Path, events: Events) -> None:
    anchor_file(tmp_path, AUTHORITY_KEY)
    state = tmp_path / "state" / "registry.json"
    state.parent.mkdir()
    suspended = by_authority(MINHEALTH.doc, serial=2, status=Status.SUSPENDED)
    audit = AuditLog(node_id="node-1", directory=tmp_path / "audit", signer=AUDIT_KEY)
    audit.subscribe(events)
    first = RegistryView.open(tmp_path, audit=audit, files=False, state=state)
    first.take(value(MINHEALTH_1), "t:0:0")
    first.take(value(suspended), "t:0:1")

    # Restarted: the topic now holds only the old active record (compacted, or forged).
    again = RegistryView.open(tmp_path, audit=audit, files=False, state=state)
    assert again.status("minhealth") is Status.SUSPENDED
    assert not again.take(value(MINHEALTH_1), "t:0:0")
    assert not again.admitted("minhealth")
    assert events.named("registry.refused")[-1]["reason"] == "older-serial"
    audit.close()


def test_a_state_file_that_does_not_hold_is_reported_and_the_start_goes_on(
    tmp_path: Path, events: Events
) -> None:
    anchor_file(tmp_path, AUTHORITY_KEY)
    state = tmp_path / "registry.json"
    forged = by_authority(MINHEALTH.doc, key=STRANGER_KEY)
    state.write_text(json.dumps({"records": [bundle(forged)]}))
    audit = AuditLog(node_id="node-1", directory=tmp_path / "audit", signer=AUDIT_KEY)
    audit.subscribe(events)

    view = RegistryView.open(tmp_path, audit=audit, files=False, state=state)

    assert not view.admitted("minhealth")
    assert events.named("registry.refused")[0]["reason"] == "unknown-signer"
    audit.close()
