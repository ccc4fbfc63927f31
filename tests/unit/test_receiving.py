"""The receive pipeline's checks beyond the envelope: headers, contract, pins."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.contracts import ContractVersion, load_catalog
from gateway.crypto.keys import KeyStore
from gateway.errors import ConfigError, RejectReason, UnknownContract, VerificationError
from gateway.participants.document import Role
from gateway.receiving import Receiver
from gateway.transport import InboundRecord
from tests.support import REFERRAL, SECRET, Federation, referral

ME = "socialtreasury"


def note_version(version: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "demo.note",
        "version": version,
        "title": "Note",
        "owner": "minhealth",
        "classification": "internal",
        "compatibility": "none",
        "producers": ["minhealth"],
        "consumers": [ME],
        "schema": {"type": "object", **schema},
        **extra,
    }


@pytest.fixture
def fed(tmp_path: Path) -> Federation:
    fed = Federation.create(tmp_path)
    folder = tmp_path / "contracts" / "demo.note"
    folder.mkdir()
    versions = [
        note_version("1.0.0", {"properties": {"text": {"type": "string"}}}),
        # A breaking change (mode none) with no migration: 1.0.0 payloads cannot upgrade.
        note_version("2.0.0", {"required": ["text", "author"]}),
    ]
    for document in versions:
        (folder / f"{document['version']}.yaml").write_text(yaml.safe_dump(document))
    return fed


def receiver(fed: Federation, pins: dict[str, str]) -> Receiver:
    config = fed.config((ME,), pinned={ME: pins})
    keys = KeyStore.load(config.keys_dir, hosted={ME}, secret=SECRET)
    return Receiver(
        participant=ME, config=config, catalog=load_catalog(config.contracts_dir), keys=keys
    )


def record(
    fed: Federation, value: bytes, headers: list[tuple[str, bytes]], topic: str | None = None
) -> InboundRecord:
    return InboundRecord(topic or f"{fed.prefix}inbox.{ME}", 0, 0, b"k", value, tuple(headers))


def test_a_payload_that_cannot_upgrade_to_the_pin_is_refused(fed: Federation) -> None:
    _, value, headers = fed.envelope(
        sealed_for=ME, encrypted_to=ME, payload=b'{"text":"hi"}', contract="demo.note"
    )
    with pytest.raises(VerificationError) as info:
        receiver(fed, {"demo.note": "2.0.0"}).receive(record(fed, value, headers))
    assert info.value.reason is RejectReason.MIGRATION_FAILED
    assert "does not upgrade to demo.note@2.0.0" in info.value.detail


def test_an_unpinned_consumer_gets_the_sender_version_and_exact_bytes(fed: Federation) -> None:
    raw = json.dumps(referral(), indent=1).encode()
    _, value, headers = fed.envelope(sealed_for=ME, encrypted_to=ME, payload=raw)
    message = receiver(fed, {}).receive(record(fed, value, headers))
    assert (message.version, message.migrated_from, message.payload) == ("1.0.0", None, raw)


def test_a_pin_to_an_unknown_version_stops_the_receiver(fed: Federation) -> None:
    with pytest.raises(UnknownContract):
        receiver(fed, {REFERRAL: "7.0.0"})


def test_a_record_from_a_foreign_inbox_is_refused(fed: Federation) -> None:
    _, value, headers = fed.envelope(
        sealed_for=ME, encrypted_to=ME, payload=json.dumps(referral()).encode()
    )
    with pytest.raises(VerificationError) as info:
        receiver(fed, {}).receive(record(fed, value, headers, topic="elsewhere"))
    assert info.value.reason is RejectReason.RECIPIENT_MISMATCH


@pytest.mark.parametrize("header", ["ce_id", "ce_source", "ce_type", "ce_recipient"])
def test_headers_must_agree_with_the_signed_envelope(fed: Federation, header: str) -> None:
    _, value, headers = fed.envelope(
        sealed_for=ME, encrypted_to=ME, payload=json.dumps(referral()).encode()
    )
    headers = [(k, b"forged" if k == header else v) for k, v in headers]
    with pytest.raises(VerificationError) as info:
        receiver(fed, {}).receive(record(fed, value, headers))
    assert info.value.reason is RejectReason.HEADER_MISMATCH


def test_a_payload_the_receiver_contract_refuses_is_a_contract_violation(
    fed: Federation,
) -> None:
    bad = {**referral(), "urgency": "whenever"}
    _, value, headers = fed.envelope(
        sealed_for=ME, encrypted_to=ME, payload=json.dumps(bad).encode()
    )
    with pytest.raises(VerificationError) as info:
        receiver(fed, {}).receive(record(fed, value, headers))
    assert info.value.reason is RejectReason.CONTRACT_VIOLATION


def test_pins_in_the_config_must_be_strings(tmp_path: Path) -> None:
    from gateway.config import load_config

    path = tmp_path / "gateway.yaml"
    path.write_text("participants:\n  - id: minhealth\n    pinned_versions: {a.b: 1.0}\n")
    with pytest.raises(ConfigError, match="quoted string"):
        load_config(path, environ={})
    path.write_text("participants:\n  - id: minhealth\n    pinned_versions: {a.b: '1.0.0'}\n")
    config = load_config(path, environ={})
    assert dataclasses.asdict(config.participants[0])["pinned_versions"] == {"a.b": "1.0.0"}


class Admits:
    """An admission: records asking for exactly the (participant, role) pairs given, of
    which only those in ``suspended`` are not admitted."""

    def __init__(self, *asked: tuple[str, Role], suspended: tuple[str, ...] = ()) -> None:
        self._asked = set(asked)
        self._admitted = {p for p, _ in asked} - set(suspended)

    def admitted(self, participant: str) -> bool:
        return participant in self._admitted

    def entitled(self, participant: str, contract: ContractVersion, role: Role) -> bool:
        return self.admitted(participant) and self.asks(participant, contract, role)

    def asks(self, participant: str, contract: ContractVersion, role: Role) -> bool:
        return (participant, role) in self._asked


def entitled_receiver(fed: Federation, admission: Admits) -> Receiver:
    config = fed.config((ME,))
    keys = KeyStore.load(config.keys_dir, hosted={ME}, secret=SECRET)
    return Receiver(
        participant=ME,
        config=config,
        catalog=load_catalog(config.contracts_dir),
        keys=keys,
        admission=admission,
    )


@pytest.mark.parametrize(
    ("admission", "reason"),
    [
        (Admits((ME, Role.SUBSCRIBE)), RejectReason.SENDER_NOT_ENTITLED),
        (Admits(("minhealth", Role.SUBSCRIBE), (ME, Role.SUBSCRIBE)), "sender-not-entitled"),
        (
            Admits(("minhealth", Role.PUBLISH), (ME, Role.SUBSCRIBE), suspended=("minhealth",)),
            "sender-not-entitled",
        ),
        (Admits(("minhealth", Role.PUBLISH), (ME, Role.PUBLISH)), "recipient-not-entitled"),
        (  # suspended, and not asking for it either: nothing to hold it for
            Admits(("minhealth", Role.PUBLISH), (ME, Role.PUBLISH), suspended=(ME,)),
            "recipient-not-entitled",
        ),
    ],
)
def test_the_registry_as_the_receiver_sees_it_must_entitle_both_ends(
    fed: Federation, admission: Admits, reason: str
) -> None:
    """A sending node with an older view of the registry (or a rogue one) cannot route
    past what the receiving node's registry allows."""
    _, value, headers = fed.envelope(
        sealed_for=ME, encrypted_to=ME, payload=json.dumps(referral()).encode()
    )
    with pytest.raises(VerificationError) as info:
        entitled_receiver(fed, admission).receive(record(fed, value, headers))
    assert info.value.reason == reason


def test_a_suspended_recipient_is_not_judged_its_message_waits(fed: Federation) -> None:
    """Not admitted right now (suspended), but its record asks for the contract: the
    message is kept for after reinstatement."""
    _, value, headers = fed.envelope(
        sealed_for=ME, encrypted_to=ME, payload=json.dumps(referral()).encode()
    )
    admission = Admits(("minhealth", Role.PUBLISH), (ME, Role.SUBSCRIBE), suspended=(ME,))
    message = entitled_receiver(fed, admission).receive(record(fed, value, headers))
    assert message.recipient == ME


def test_entitled_ends_are_received(fed: Federation) -> None:
    _, value, headers = fed.envelope(
        sealed_for=ME, encrypted_to=ME, payload=json.dumps(referral()).encode()
    )
    admission = Admits(("minhealth", Role.PUBLISH), (ME, Role.SUBSCRIBE))
    assert entitled_receiver(fed, admission).receive(record(fed, value, headers)).sender == (
        "minhealth"
    )


def test_a_correlation_header_not_in_the_form_a_publish_accepts_is_refused(
    fed: Federation,
) -> None:
    """It is unsigned routing metadata that ends up in webhook headers: no line breaks."""
    _, value, headers = fed.envelope(
        sealed_for=ME, encrypted_to=ME, payload=json.dumps(referral()).encode()
    )
    headers = [*headers, ("ce_correlationid", b"x\r\nX-Injected: 1")]
    with pytest.raises(VerificationError) as info:
        receiver(fed, {}).receive(record(fed, value, headers))
    assert info.value.reason is RejectReason.FORBIDDEN_HEADER
