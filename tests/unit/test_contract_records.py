"""Contract versions through the registry topic: signed by their owner, registered by
every node following it with the catalog's own checks."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import AuditLog
from gateway.contracts import ContractCatalog, load_catalog
from gateway.contracts.document import parse_contract
from gateway.crypto.envelope import sign_compact
from gateway.crypto.jwk import SignKey
from gateway.participants.contract_records import (
    ContractIntake,
    open_contract,
    sign_contract,
)
from gateway.participants.follow import RegistryView
from gateway.participants.registry import AUTHORITY, RecordRefused, Registry, Status
from gateway.participants.topic import outbound
from tests.unit.test_participant_registry import (
    ACME,
    ANCHOR,
    AUTHORITY_KEY,
    MINHEALTH,
    SOCIAL,
    STRANGER_KEY,
    by_authority,
    by_sponsor,
)
from tests.unit.test_registry_follow import AUDIT_KEY, Events, anchor_file, value

NOW = 1_795_000_000


def note(version: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "demo.note",
        "version": version,
        "title": "Note",
        "owner": "minhealth",
        "classification": "internal",
        "compatibility": "backward",
        "producers": ["minhealth"],
        "consumers": ["socialtreasury"],
        "schema": {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
            **extra,
        },
    }


V1 = note("1.0.0", {"text": {"type": "string"}})
V1_1 = note("1.1.0", {"text": {"type": "string"}, "tag": {"type": "string"}})
BREAKING = note("2.0.0", {"text": {"type": "integer"}})


class Node:
    """A node's view of the registry with a catalog to feed, and its audit records."""

    def __init__(self, root: Path) -> None:
        self.events = Events()
        self.contracts = root / "contracts"
        self.contracts.mkdir()
        anchor_file(root, AUTHORITY_KEY)
        self.audit = AuditLog(node_id="node-b", directory=root / "audit", signer=AUDIT_KEY)
        self.audit.subscribe(self.events)
        self.catalog = ContractCatalog()
        intake = ContractIntake(self.catalog, self.contracts, self.audit)
        self.view = RegistryView.open(root, audit=self.audit, files=False, contracts=intake)
        self.view.take(value(by_authority(MINHEALTH.doc)), "t:0:0")
        self.view.take(value(by_authority(SOCIAL.doc)), "t:0:1")

    def take(self, document: dict[str, Any], *, key: SignKey | None = None, **kw: Any) -> bool:
        """Sign as the owner's node does (its own record as the chain) and take it in."""
        issuer = kw.pop("issuer", "minhealth")
        held = self.view.registry.get(issuer)
        record = sign_contract(
            parse_contract(document),
            key=key or MINHEALTH.key,
            issuer=issuer,
            issued_at=kw.pop("issued_at", NOW),
            owner_record=kw.pop("owner_record", held.jws if held else None),
        )
        key_bytes = kw.pop("kafka_key", f"contract:{record.contract.ref}".encode())
        return self.view.take(json.dumps(record.bundle()).encode(), "t:0:9", key_bytes)

    def refusals(self) -> list[str]:
        return [r["reason"] for r in self.events.named("registry.refused")]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    made = Node(tmp_path)
    yield made
    made.audit.close()


def test_a_version_signed_by_its_owner_is_registered_and_written(node: Node) -> None:
    assert node.take(V1)

    assert str(node.catalog.resolve("demo.note").version) == "1.0.0"
    assert load_catalog(node.contracts).resolve("demo.note@1.0.0").document == V1
    [event] = node.events.named("contract.registered")
    assert (event["contract"], event["owner"], event["by"]) == (
        "demo.note@1.0.0",
        "minhealth",
        "minhealth",
    )


def test_a_compatible_next_version_is_registered_with_its_checks(node: Node) -> None:
    node.take(V1)

    assert node.take(V1_1)

    assert node.events.named("contract.registered")[-1]["checked_against"] == ["1.0.0"]


def test_the_same_version_again_is_nothing_new(node: Node) -> None:
    node.take(V1)

    assert not node.take(V1)
    assert len(node.events.named("contract.registered")) == 1
    assert node.refusals() == []


def test_a_breaking_version_is_refused_and_audited(node: Node) -> None:
    node.take(V1)

    assert not node.take(BREAKING)

    assert node.refusals() == ["contract-refused"]
    assert [str(v.version) for v in node.catalog.versions("demo.note")] == ["1.0.0"]
    assert not (node.contracts / "demo.note" / "2.0.0.yaml").exists()


def test_the_same_version_with_other_content_is_refused(node: Node) -> None:
    node.take(V1)

    assert not node.take(note("1.0.0", {"other": {"type": "string"}}))

    assert node.refusals() == ["contract-refused"]


def test_a_version_signed_by_a_participant_that_does_not_own_it_is_refused(node: Node) -> None:
    node.take(V1)

    assert not node.take(V1_1, key=SOCIAL.key, issuer="socialtreasury")

    assert node.refusals() == ["not-owner"]


def test_a_first_version_naming_another_owner_is_refused(node: Node) -> None:
    assert not node.take(V1, key=SOCIAL.key, issuer="socialtreasury")
    assert node.refusals() == ["not-owner"]
    assert "demo.note" not in node.catalog.ids()


def test_a_key_the_issuers_record_does_not_list_is_an_unknown_signer(node: Node) -> None:
    assert not node.take(V1, key=STRANGER_KEY)
    assert node.refusals() == ["unknown-signer"]


def test_what_an_owner_signs_after_its_suspension_is_refused(node: Node) -> None:
    active = node.view.registry.get("minhealth")
    assert active is not None
    suspended = by_authority(MINHEALTH.doc, serial=2, status=Status.SUSPENDED, issued_at=NOW)
    node.view.take(value(suspended), "t:0:5")

    assert not node.take(V1, owner_record=active.jws, issued_at=NOW + 10)
    assert node.refusals() == ["owner-inactive"]


def test_a_chain_showing_a_suspended_owner_is_refused(node: Node) -> None:
    suspended = by_authority(MINHEALTH.doc, serial=2, status=Status.SUSPENDED)
    node.view.take(value(suspended), "t:0:5")

    assert not node.take(V1)  # the owner's node could only carry its suspended record
    assert node.refusals() == ["owner-inactive"]


def test_what_was_signed_before_a_later_suspension_still_opens(node: Node) -> None:
    """A compacted topic puts the owner's suspension before its older contract records:
    versions signed while it was active still register on a new node."""
    active = node.view.registry.get("minhealth")
    assert active is not None
    later = by_authority(MINHEALTH.doc, serial=2, status=Status.SUSPENDED, issued_at=NOW + 100)
    node.view.take(value(later), "t:0:5")

    assert node.take(V1, owner_record=active.jws, issued_at=NOW)


def test_a_record_read_before_its_owners_record_opens_by_its_chain(tmp_path: Path) -> None:
    anchor_file(tmp_path, AUTHORITY_KEY)
    audit = AuditLog(node_id="n")
    catalog = ContractCatalog()
    (tmp_path / "contracts").mkdir()
    intake = ContractIntake(catalog, tmp_path / "contracts", audit)
    view = RegistryView.open(tmp_path, audit=audit, files=False, contracts=intake)
    record = sign_contract(
        parse_contract(V1),
        key=MINHEALTH.key,
        issuer="minhealth",
        issued_at=NOW,
        owner_record=by_authority(MINHEALTH.doc),
    )

    assert view.take(json.dumps(record.bundle()).encode(), "t:0:0")
    assert "demo.note" in catalog.ids()


def test_a_contractor_signs_no_contract_versions(node: Node) -> None:
    contractor_record = by_sponsor(ACME.doc, MINHEALTH)
    assert not node.take(
        note("1.0.0", {}, owner="acme-analytics"),
        key=ACME.key,
        issuer="acme-analytics",
        owner_record=contractor_record,
    )
    assert node.refusals() == ["unknown-signer"]


def test_a_version_signed_with_a_key_revoked_before_is_refused(node: Node) -> None:
    revoked = copy.deepcopy(MINHEALTH.doc)
    revoked["keys"]["keys"][0]["revoked_at"] = NOW - 1  # the signing key
    record = by_authority(revoked, serial=2, issued_at=NOW - 1)
    assert node.view.take(value(record), "t:0:5")

    assert not node.take(V1, owner_record=record, issued_at=NOW)
    assert node.refusals() == ["revoked-key"]


def test_a_contract_record_under_another_key_is_refused(node: Node) -> None:
    assert not node.take(V1, kafka_key=b"minhealth")
    assert node.refusals() == ["wrong-key"]


def test_the_authority_may_register_any_contract(node: Node) -> None:
    assert node.take(V1, key=AUTHORITY_KEY, issuer=AUTHORITY)
    assert node.events.named("contract.registered")[0]["by"] == AUTHORITY


def test_a_changed_byte_is_a_bad_signature(node: Node) -> None:
    held = node.view.registry.get("minhealth")
    assert held is not None
    record = sign_contract(
        parse_contract(V1), key=MINHEALTH.key, issuer="minhealth", issued_at=NOW,
        owner_record=held.jws,
    )  # fmt: skip
    protected, body, signature = record.jws.split(".")
    forged = f"{protected}.{body}.{signature[:-6]}AAAAAA"

    bundle = {"record": forged, "chain": [held.jws]}
    assert not node.view.take(json.dumps(bundle).encode(), "t:0:7")
    assert node.refusals() == ["bad-signature"]


@pytest.mark.parametrize(
    "bundle",
    [
        {"record": "x.y.z", "chain": []},
        {"record": 5, "chain": []},
        {"chain": []},
    ],
)
def test_a_malformed_bundle_is_refused(node: Node, bundle: Any) -> None:
    assert not node.view.take(json.dumps(bundle).encode(), "t:0:8")
    assert node.refusals() == ["malformed"]


def test_an_authority_contract_record_carrying_a_chain_is_malformed() -> None:
    record = sign_contract(parse_contract(V1), key=AUTHORITY_KEY, issuer=AUTHORITY, issued_at=NOW)

    with pytest.raises(RecordRefused, match="carries no chain"):
        open_contract({"record": record.jws, "chain": ["x"]}, ANCHOR, Registry())


def test_an_owner_record_without_its_chain_is_an_unknown_signer() -> None:
    record = sign_contract(parse_contract(V1), key=MINHEALTH.key, issuer="minhealth", issued_at=NOW)

    with pytest.raises(RecordRefused) as info:
        open_contract(record.bundle(), ANCHOR, Registry())
    assert info.value.reason == "unknown-signer"


def test_a_deeply_nested_contract_is_refused_not_a_crash(node: Node) -> None:
    deep: dict[str, Any] = {"type": "object"}
    for _ in range(200):
        deep = {"type": "object", "properties": {"x": deep}}
    held = node.view.registry.get("minhealth")
    assert held is not None
    payload = {"kind": "contract", "id": "demo.note@1.0.0", "issued_at": NOW,
               "contract": {**V1, "schema": deep}}  # fmt: skip
    header = {
        "alg": "EdDSA",
        "kid": MINHEALTH.key.kid,
        "typ": "gw-registry+jws",
        "iss": "minhealth",
    }
    jws = sign_compact(header, json.dumps(payload).encode(), MINHEALTH.key).decode()
    bundle = {"record": jws, "chain": [held.jws]}

    assert not node.view.take(json.dumps(bundle).encode(), "t:0:3", b"contract:demo.note@1.0.0")
    assert node.refusals() == ["malformed"]


def test_a_view_without_a_catalog_ignores_contract_records(tmp_path: Path) -> None:
    anchor_file(tmp_path, AUTHORITY_KEY)
    events = Events()
    audit = AuditLog(node_id="n", directory=tmp_path / "audit", signer=AUDIT_KEY)
    audit.subscribe(events)
    view = RegistryView.open(tmp_path, audit=audit, files=False)
    record = sign_contract(parse_contract(V1), key=AUTHORITY_KEY, issuer=AUTHORITY, issued_at=NOW)

    assert not view.take(json.dumps(record.bundle()).encode(), "t:0:0")
    assert events.named("registry.refused") == []
    assert events.named("contract.registered") == []
    audit.close()


def test_contract_records_are_keyed_by_version_so_compaction_keeps_each() -> None:
    record = sign_contract(parse_contract(V1), key=MINHEALTH.key, issuer="minhealth", issued_at=NOW)

    out = outbound("gw.registry", record)

    assert out.key == b"contract:demo.note@1.0.0"
    assert dict(out.headers) == {"gw_kind": b"contract"}
