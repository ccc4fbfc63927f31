"""Signed registry records: opening them, the registry's serial rules, loading a registry
directory, and ``gateway authority init`` / ``gateway participants approve|suspend|...``."""

from __future__ import annotations

import copy
import json
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.contracts import load_catalog
from gateway.crypto.encoding import b64u_decode, b64u_encode
from gateway.crypto.envelope import sign_compact
from gateway.crypto.jwk import SignKey, Suite, VerifyKey
from gateway.crypto.keys import PASSPHRASE_ENV, PrivateKeys, write_keys
from gateway.participants.commands import load_signer
from gateway.participants.document import Kind
from gateway.participants.registry import (
    ANCHOR_FILE,
    AUTHORITY,
    TYP,
    Record,
    RecordRefused,
    Registry,
    Status,
    load_registry,
    open_record,
    sign_record,
    write_record,
)

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
CATALOG = load_catalog(CONTRACTS)
REFERRAL = "health.patient-referral"
NOW = 1_795_000_000
PASSPHRASE = "registry test passphrase, not a secret"

AUTHORITY_KEY = SignKey.generate(Suite.ED25519)
ANCHOR: dict[str, VerifyKey] = {AUTHORITY_KEY.kid: AUTHORITY_KEY.verify_key()}
STRANGER_KEY = SignKey.generate(Suite.ED25519)
"""Signs like the authority or a sponsor, but nobody's record lists it."""
DROP = object()
"""A change that removes the member."""


def document(
    participant: str,
    keys: PrivateKeys,
    *,
    kind: str = "contractor",
    sponsor: str | None = "minhealth",
    role: str = "subscribe",
) -> dict[str, Any]:
    """A participant file, as test_participants.document builds it (id and keys given)."""
    base: dict[str, Any] = {
        "participant": participant,
        "kind": kind,
        "legal_name": f"{participant} legal name",
        "sponsor": sponsor,
        "keys": keys.public().to_jwks(participant),
        "contracts": [{"contract": REFERRAL, "role": role, "versions": "^1.0.0"}],
        "delivery": {"mode": "pull"},
        "security_contact": {"name": "Desk", "email": f"security@{participant}.example"},
    }
    if sponsor is None:
        del base["sponsor"]
    return base


@dataclass(frozen=True)
class Party:
    id: str
    keys: PrivateKeys
    doc: dict[str, Any]

    @property
    def key(self) -> SignKey:
        return self.keys.signing

    def changed(self, **changes: Any) -> dict[str, Any]:
        """A copy of the file with members replaced (or dropped: DROP)."""
        doc = {**copy.deepcopy(self.doc), **changes}
        return {name: value for name, value in doc.items() if value is not DROP}


def _party(participant: str, **options: Any) -> Party:
    keys = PrivateKeys.generate()
    return Party(participant, keys, document(participant, keys, **options))


MINHEALTH = _party("minhealth", kind="agency", sponsor=None, role="publish")
SOCIAL = _party("socialtreasury", kind="agency", sponsor=None)
ACME = _party("acme-analytics")
SUBCO = _party("acme-subco", sponsor="acme-analytics")
"""A contractor whose 'sponsor' is itself a contractor."""


def by_authority(
    doc: dict[str, Any],
    *,
    serial: int = 1,
    status: Status = Status.ACTIVE,
    issued_at: int = NOW,
    key: SignKey = AUTHORITY_KEY,
) -> str:
    return sign_record(
        doc, serial=serial, status=status, issued_at=issued_at, key=key, issuer=AUTHORITY
    )


def by_sponsor(
    doc: dict[str, Any],
    sponsor: Party,
    *,
    serial: int = 1,
    status: Status = Status.ACTIVE,
    issued_at: int = NOW,
    key: SignKey | None = None,
) -> str:
    return sign_record(
        doc,
        serial=serial,
        status=status,
        issued_at=issued_at,
        key=key or sponsor.key,
        issuer=sponsor.id,
    )


def bundle(record: str, *chain: str) -> dict[str, Any]:
    return {"record": record, "chain": list(chain)}


def parts(jws: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    protected, body, signature = jws.split(".")
    return json.loads(b64u_decode(protected)), json.loads(b64u_decode(body)), signature


def _b64json(value: Any) -> str:
    return b64u_encode(json.dumps(value, separators=(",", ":")).encode()).decode()


def forge(header: dict[str, Any], payload: Any, key: SignKey = AUTHORITY_KEY) -> str:
    """A correctly signed JWS over whatever header and payload are given."""
    return sign_compact(header, json.dumps(payload).encode(), key).decode()


def authority_header(**changes: Any) -> dict[str, Any]:
    header: dict[str, Any] = {
        "alg": "EdDSA",
        "kid": AUTHORITY_KEY.kid,
        "typ": TYP,
        "iss": AUTHORITY,
    }
    for name, value in changes.items():
        if value is None:
            header.pop(name, None)
        else:
            header[name] = value
    return header


def payload_of(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "kind": "participant",
        "id": doc["participant"],
        "serial": 1,
        "status": "active",
        "issued_at": NOW,
        "participant": doc,
    }
    payload.update(changes)
    return payload


def refused(value: Any, anchor: dict[str, VerifyKey] = ANCHOR) -> RecordRefused:
    """Why open_record refuses ``value`` (failing the test if it opens)."""
    with pytest.raises(RecordRefused) as info:
        open_record(value, anchor)
    return info.value


def refusal(value: Any, anchor: dict[str, VerifyKey] = ANCHOR) -> str:
    return refused(value, anchor).reason


# -- open_record: what holds ---------------------------------------------------------------


def test_an_authority_signed_agency_record_opens() -> None:
    jws = by_authority(MINHEALTH.doc, serial=3, issued_at=NOW + 5)

    record = open_record(bundle(jws), ANCHOR, CATALOG)

    assert (record.id, record.serial, record.status, record.issuer, record.issued_at) == (
        "minhealth",
        3,
        Status.ACTIVE,
        AUTHORITY,
        NOW + 5,
    )
    assert record.participant.kind is Kind.AGENCY
    assert record.participant.document == MINHEALTH.doc
    assert (record.jws, record.chain) == (jws, ())
    assert record.bundle() == {"record": jws, "chain": []}


def test_a_sponsor_signed_contractor_record_with_its_chain_opens() -> None:
    sponsor = by_authority(MINHEALTH.doc)
    jws = by_sponsor(ACME.doc, MINHEALTH, serial=2, status=Status.SUSPENDED)

    record = open_record(bundle(jws, sponsor), ANCHOR, CATALOG)

    assert (record.id, record.serial, record.status, record.issuer) == (
        "acme-analytics",
        2,
        Status.SUSPENDED,
        "minhealth",
    )
    assert record.participant.sponsor == "minhealth"
    assert record.participant.keys.verify_key(ACME.key.kid) is not None
    assert record.chain == (sponsor,)
    assert record.bundle() == {"record": jws, "chain": [sponsor]}


def test_the_authority_may_sign_a_contractor_record_too() -> None:
    record = open_record(bundle(by_authority(ACME.doc)), ANCHOR)

    assert (record.id, record.issuer) == ("acme-analytics", AUTHORITY)


def test_the_forging_helpers_make_records_that_open() -> None:
    """The control for the forged-payload tests below: a well-formed forgery opens."""
    record = open_record(bundle(forge(authority_header(), payload_of(ACME.doc))), ANCHOR)

    assert (record.id, record.serial, record.status) == ("acme-analytics", 1, Status.ACTIVE)


# -- open_record: forged and wrong records ------------------------------------------------


def test_a_flipped_byte_in_the_signature_is_a_bad_signature() -> None:
    jws = by_authority(MINHEALTH.doc)
    protected, body, signature = jws.split(".")
    raw = bytearray(b64u_decode(signature))
    raw[10] ^= 0x01
    tampered = f"{protected}.{body}.{b64u_encode(bytes(raw)).decode()}"

    error = refused(bundle(tampered))

    assert error.reason == "bad-signature"
    assert error.detail == "the signature does not verify"


def test_a_payload_changed_without_re_signing_is_a_bad_signature() -> None:
    jws = by_authority(ACME.doc, status=Status.SUSPENDED)
    protected, _, signature = jws.split(".")
    _, payload, _ = parts(jws)
    payload["status"] = "active"
    tampered = f"{protected}.{_b64json(payload)}.{signature}"

    assert refusal(bundle(tampered)) == "bad-signature"


def test_a_contractor_payload_changed_without_re_signing_is_a_bad_signature() -> None:
    sponsor = by_authority(MINHEALTH.doc)
    jws = by_sponsor(ACME.doc, MINHEALTH)
    protected, _, signature = jws.split(".")
    _, payload, _ = parts(jws)
    payload["serial"] = 99
    tampered = f"{protected}.{_b64json(payload)}.{signature}"

    assert refusal(bundle(tampered, sponsor)) == "bad-signature"


def test_a_record_signed_by_a_key_not_in_the_anchor_is_an_unknown_signer() -> None:
    error = refused(bundle(by_authority(MINHEALTH.doc, key=STRANGER_KEY)))

    assert error.reason == "unknown-signer"
    assert STRANGER_KEY.kid in error.detail


def test_a_record_naming_the_anchor_kid_but_signed_by_another_key_is_a_bad_signature() -> None:
    forged = forge(authority_header(), payload_of(MINHEALTH.doc), key=STRANGER_KEY)

    assert refusal(bundle(forged)) == "bad-signature"


def test_an_alg_other_than_the_anchor_keys_is_a_bad_signature() -> None:
    forged = forge(authority_header(alg="ES256"), payload_of(MINHEALTH.doc))

    error = refused(bundle(forged))

    assert (error.reason, error.detail) == ("bad-signature", "alg does not match the signing key")


def test_a_sponsor_signed_record_without_the_chain_is_an_unknown_signer() -> None:
    error = refused(bundle(by_sponsor(ACME.doc, MINHEALTH)))

    assert error.reason == "unknown-signer"
    assert "without the sponsor's own record" in error.detail


def test_a_chain_holding_another_participants_record_is_an_unknown_signer() -> None:
    jws = by_sponsor(ACME.doc, MINHEALTH)

    error = refused(bundle(jws, by_authority(SOCIAL.doc)))

    assert error.reason == "unknown-signer"
    assert error.detail == "the chain is socialtreasury's record, not minhealth's"


def test_a_chain_record_the_authority_did_not_sign_is_refused() -> None:
    """The sponsor's record in the chain must itself end at the anchor."""
    jws = by_sponsor(ACME.doc, MINHEALTH)

    assert refusal(bundle(jws, by_authority(MINHEALTH.doc, key=STRANGER_KEY))) == "unknown-signer"
    assert refusal(bundle(jws, by_sponsor(MINHEALTH.doc, SOCIAL))) == "unknown-signer"


def test_a_tampered_chain_record_is_a_bad_signature() -> None:
    sponsor = by_authority(MINHEALTH.doc, status=Status.SUSPENDED)
    protected, _, signature = sponsor.split(".")
    _, payload, _ = parts(sponsor)
    payload["status"] = "active"
    tampered = f"{protected}.{_b64json(payload)}.{signature}"

    assert refusal(bundle(by_sponsor(ACME.doc, MINHEALTH), tampered)) == "bad-signature"


def test_a_sponsor_that_is_a_contractor_is_not_an_agency() -> None:
    sponsor = by_authority(ACME.doc)  # authority-signed, active, but a contractor
    jws = by_sponsor(SUBCO.doc, ACME)

    error = refused(bundle(jws, sponsor))

    assert error.reason == "sponsor-not-agency"
    assert "acme-analytics is not an agency" in error.detail


@pytest.mark.parametrize("status", [Status.SUSPENDED, Status.REVOKED])
def test_a_sponsor_that_is_not_active_is_inactive(status: Status) -> None:
    sponsor = by_authority(MINHEALTH.doc, serial=2, status=status)

    error = refused(bundle(by_sponsor(ACME.doc, MINHEALTH), sponsor))

    assert error.reason == "sponsor-inactive"
    assert error.detail == f"minhealth is {status.value}"


def test_a_sponsor_signing_with_a_key_its_record_does_not_list_is_an_unknown_signer() -> None:
    sponsor = by_authority(MINHEALTH.doc)

    for key in (STRANGER_KEY, SOCIAL.key, AUTHORITY_KEY):
        error = refused(bundle(by_sponsor(ACME.doc, MINHEALTH, key=key), sponsor))
        assert error.reason == "unknown-signer"
        assert error.detail == f"minhealth's record lists no key {key.kid!r}"


def test_a_contractor_of_sponsor_a_signed_by_agency_b_is_an_unknown_signer() -> None:
    jws = by_sponsor(ACME.doc, SOCIAL)  # ACME names minhealth

    error = refused(bundle(jws, by_authority(SOCIAL.doc)))

    assert error.reason == "unknown-signer"
    assert error.detail == (
        "acme-analytics names 'minhealth' as sponsor, but 'socialtreasury' signed"
    )


def test_an_agency_record_signed_by_a_sponsor_is_an_unknown_signer() -> None:
    jws = by_sponsor(SOCIAL.doc, MINHEALTH)

    error = refused(bundle(jws, by_authority(MINHEALTH.doc)))

    assert error.reason == "unknown-signer"
    assert error.detail == "only the authority signs an agency's record"


def test_an_authority_record_carrying_a_chain_is_malformed() -> None:
    jws = by_authority(ACME.doc)

    assert refusal(bundle(jws, by_authority(MINHEALTH.doc))) == "malformed"


@pytest.mark.parametrize(
    "header",
    [
        authority_header(typ="JWT"),
        authority_header(typ=None),
        authority_header(iss=None),
        authority_header(iss=7),
        authority_header(kid=None),
        authority_header(alg=None),
    ],
    ids=["typ-jwt", "no-typ", "no-iss", "iss-not-string", "no-kid", "no-alg"],
)
def test_a_header_without_the_registry_typ_or_iss_is_malformed(header: dict[str, Any]) -> None:
    assert refusal(bundle(forge(header, payload_of(MINHEALTH.doc)))) == "malformed"


@pytest.mark.parametrize(
    "value",
    [
        "not a dict",
        [by_authority(MINHEALTH.doc), []],
        None,
        {"record": by_authority(MINHEALTH.doc)},
        {"chain": []},
        {"record": by_authority(MINHEALTH.doc), "chain": [], "note": "extra"},
        {"record": by_sponsor(ACME.doc, MINHEALTH), "chain": [by_authority(MINHEALTH.doc)] * 2},
        {"record": by_sponsor(ACME.doc, MINHEALTH), "chain": [1]},
        {"record": by_sponsor(ACME.doc, MINHEALTH), "chain": [{"record": "x"}]},
        {"record": by_authority(MINHEALTH.doc), "chain": by_authority(MINHEALTH.doc)},
        {"record": by_authority(MINHEALTH.doc), "chain": None},
        {"record": 1, "chain": []},
        {"record": "not.a-jws", "chain": []},
        {"record": "a.b.c.d", "chain": []},
        {"record": "!!!.???.***", "chain": []},
        {"record": f"{_b64json([1])}.{_b64json({})}.AAAA", "chain": []},
    ],
    ids=[
        "string",
        "list",
        "null",
        "no-chain",
        "no-record",
        "extra-member",
        "chain-of-two",
        "chain-of-int",
        "chain-of-object",
        "chain-a-string",
        "chain-null",
        "record-not-string",
        "two-parts",
        "four-parts",
        "not-base64url",
        "header-not-object",
    ],
)
def test_a_malformed_bundle_is_refused(value: Any) -> None:
    assert refusal(value) == "malformed"


SERIAL = "serial is a positive integer and issued_at a Unix time"
MEMBERS = "a participant record holds exactly"
FILE = "the participant file: "


@pytest.mark.parametrize(
    ("member", "value", "detail"),
    [
        pytest.param("serial", 0, SERIAL, id="serial-0"),
        pytest.param("serial", -1, SERIAL, id="serial-negative"),
        pytest.param("serial", True, SERIAL, id="serial-bool"),
        pytest.param("serial", 1.0, SERIAL, id="serial-float"),
        pytest.param("serial", "1", SERIAL, id="serial-string"),
        pytest.param("serial", DROP, MEMBERS, id="serial-missing"),
        pytest.param("issued_at", "now", SERIAL, id="issued-at-string"),
        pytest.param("issued_at", False, SERIAL, id="issued-at-bool"),
        pytest.param("status", "paused", "status is active, suspended or revoked", id="status"),
        pytest.param("status", "Active", "status is active", id="status-case"),
        pytest.param("kind", "key", MEMBERS, id="kind-not-participant"),
        pytest.param("extra", 1, MEMBERS, id="extra-member"),
        pytest.param("id", "minhealth", "the record's id is not its participant file's", id="id"),
        pytest.param("id", ["acme-analytics"], "the record's id is not", id="id-not-a-string"),
        pytest.param("participant", ACME.changed(legal_name=DROP), FILE, id="file-no-name"),
        pytest.param("participant", ACME.changed(kind="partner"), FILE, id="file-bad-kind"),
        pytest.param("participant", ACME.changed(extra="member"), FILE, id="file-extra-member"),
        pytest.param("participant", ACME.changed(keys={"keys": []}), FILE, id="file-no-keys"),
        pytest.param("participant", "acme-analytics", FILE, id="file-not-an-object"),
    ],
)
def test_a_signed_payload_that_is_not_a_record_is_malformed(
    member: str, value: Any, detail: str
) -> None:
    payload = payload_of(ACME.changed())
    if value is DROP:
        del payload[member]
    else:
        payload[member] = value

    error = refused(bundle(forge(authority_header(), payload)))

    assert error.reason == "malformed"
    assert error.detail.startswith(detail)


def test_sign_record_with_serial_zero_or_a_bool_makes_a_record_that_does_not_open() -> None:
    for serial in (0, True):
        jws = by_authority(MINHEALTH.doc, serial=serial)
        error = refused(bundle(jws))
        assert error.reason == "malformed"
        assert "serial is a positive integer" in error.detail


def test_a_participant_file_failing_its_schema_is_malformed_with_the_pointer() -> None:
    bad = MINHEALTH.changed(delivery={"mode": "carrier-pigeon"})

    error = refused(bundle(by_authority(bad)))

    assert error.reason == "malformed"
    assert error.detail.startswith("the participant file: /delivery")


def test_an_agency_naming_a_sponsor_is_malformed() -> None:
    assert refusal(bundle(by_authority(MINHEALTH.changed(sponsor="socialtreasury")))) == "malformed"


def test_with_a_catalog_a_request_the_contract_does_not_admit_is_malformed() -> None:
    jws = by_authority(ACME.changed(contracts=[{"contract": REFERRAL, "role": "publish"}]))

    assert open_record(bundle(jws), ANCHOR).id == "acme-analytics"  # no catalog: not checked
    with pytest.raises(RecordRefused) as info:
        open_record(bundle(jws), ANCHOR, CATALOG)
    assert info.value.reason == "malformed"
    assert "does not list acme-analytics as a producer" in info.value.detail


def test_an_empty_anchor_trusts_nothing() -> None:
    assert refusal(bundle(by_authority(MINHEALTH.doc)), anchor={}) == "unknown-signer"


# -- Registry.accept ------------------------------------------------------------------------


def opened(jws: str, *chain: str) -> Record:
    return open_record(bundle(jws, *chain), ANCHOR)


def acme(serial: int, status: Status = Status.ACTIVE, **changes: Any) -> Record:
    return opened(by_authority(ACME.changed(**changes), serial=serial, status=status))


def test_a_newer_serial_replaces_the_held_record() -> None:
    registry = Registry()

    assert registry.get("acme-analytics") is None
    assert registry.accept(acme(1)) is True
    assert registry.accept(acme(2, Status.SUSPENDED)) is True
    assert registry.accept(acme(5)) is True  # serials need not be consecutive

    held = registry.get("acme-analytics")
    assert held is not None
    assert (held.serial, held.status) == (5, Status.ACTIVE)
    assert [r.id for r in registry.records()] == ["acme-analytics"]


def test_an_older_serial_is_refused_and_the_held_record_stays() -> None:
    registry = Registry()
    suspended = acme(2, Status.SUSPENDED)
    registry.accept(suspended)

    with pytest.raises(RecordRefused) as info:
        registry.accept(acme(1))

    assert info.value.reason == "older-serial"
    assert registry.get("acme-analytics") is suspended


def test_the_identical_record_again_is_not_news() -> None:
    registry = Registry()
    first = acme(1)
    registry.accept(first)

    assert registry.accept(acme(1)) is False  # Ed25519 is deterministic: the same JWS
    assert registry.get("acme-analytics") is first


@pytest.mark.parametrize(
    "other",
    [
        lambda: acme(2, legal_name="Acme Renamed Ltd"),
        lambda: acme(2, Status.SUSPENDED),
        lambda: opened(by_authority(ACME.doc, serial=2, issued_at=NOW + 1)),
    ],
    ids=["other-file", "other-status", "other-time"],
)
def test_a_reused_serial_with_other_content_is_refused(other: Callable[[], Record]) -> None:
    registry = Registry()
    held = acme(2)
    registry.accept(held)

    with pytest.raises(RecordRefused) as info:
        registry.accept(other())

    assert info.value.reason == "reused-serial"
    assert registry.get("acme-analytics") is held


def test_nothing_follows_a_revocation() -> None:
    registry = Registry()
    registry.accept(acme(1))
    revoked = acme(2, Status.REVOKED)
    assert registry.accept(revoked) is True

    for later in (acme(3), acme(3, Status.SUSPENDED), acme(4, Status.REVOKED)):
        with pytest.raises(RecordRefused) as info:
            registry.accept(later)
        assert info.value.reason == "revoked"
    assert registry.accept(revoked) is False
    assert registry.get("acme-analytics") is revoked


def test_records_of_different_participants_do_not_interfere() -> None:
    registry = Registry()
    registry.accept(acme(3))

    assert registry.accept(opened(by_authority(MINHEALTH.doc))) is True
    assert [r.id for r in registry.records()] == ["acme-analytics", "minhealth"]


def test_key_owner_names_the_participant_whose_record_lists_the_key() -> None:
    registry = Registry()
    registry.accept(acme(1))
    registry.accept(opened(by_authority(MINHEALTH.doc)))

    assert registry.key_owner(ACME.key.kid) == "acme-analytics"
    assert registry.key_owner(ACME.keys.decryption[0].kid) == "acme-analytics"
    assert registry.key_owner(MINHEALTH.key.kid) == "minhealth"
    assert registry.key_owner(SOCIAL.key.kid) is None
    assert registry.key_owner(AUTHORITY_KEY.kid) is None


# -- load_registry ---------------------------------------------------------------------------


def put(directory: Path, name: str, value: Any) -> Path:
    path = directory / name
    path.write_text(json.dumps(value) if not isinstance(value, str) else value)
    return path


def test_valid_records_load_whatever_their_file_names(tmp_path: Path) -> None:
    sponsor = by_authority(MINHEALTH.doc)
    # The contractor's file sorts first, its sponsor's last.
    put(tmp_path, "a-acme.record.json", bundle(by_sponsor(ACME.doc, MINHEALTH), sponsor))
    put(tmp_path, "z-minhealth.record.json", bundle(sponsor))
    put(tmp_path, "m-social.record.json", bundle(by_authority(SOCIAL.doc)))
    put(tmp_path, ANCHOR_FILE, {"keys": [AUTHORITY_KEY.verify_key().to_jwk()]})
    put(tmp_path, "notes.txt", "not a record")

    registry, refused_files = load_registry(tmp_path, ANCHOR, CATALOG)

    assert refused_files == []
    assert [(r.id, r.issuer) for r in registry.records()] == [
        ("acme-analytics", "minhealth"),
        ("minhealth", AUTHORITY),
        ("socialtreasury", AUTHORITY),
    ]
    assert registry.key_owner(ACME.key.kid) == "acme-analytics"


def test_write_record_writes_a_file_load_registry_reads(tmp_path: Path) -> None:
    first = opened(by_authority(MINHEALTH.doc))
    path = write_record(tmp_path, first)
    assert path == tmp_path / "minhealth.record.json"
    assert json.loads(path.read_text()) == first.bundle()

    second = opened(by_authority(MINHEALTH.doc, serial=2, status=Status.SUSPENDED))
    assert write_record(tmp_path, second) == path
    assert [p.name for p in tmp_path.iterdir()] == ["minhealth.record.json"]

    registry, refused_files = load_registry(tmp_path, ANCHOR)
    held = registry.get("minhealth")
    assert refused_files == []
    assert held is not None
    assert (held.serial, held.status, held.jws) == (2, Status.SUSPENDED, second.jws)


def test_a_forged_file_is_reported_by_name_and_the_others_still_load(tmp_path: Path) -> None:
    sponsor = by_authority(MINHEALTH.doc)
    protected, body, signature = by_authority(SOCIAL.doc).split(".")
    raw = bytearray(b64u_decode(signature))
    raw[0] ^= 0x80
    forged = f"{protected}.{body}.{b64u_encode(bytes(raw)).decode()}"
    put(tmp_path, "a-forged.record.json", bundle(forged))
    put(tmp_path, "b-stranger.record.json", bundle(by_authority(SUBCO.doc, key=STRANGER_KEY)))
    put(tmp_path, "c-junk.record.json", "{not json")
    put(tmp_path, "d-orphan.record.json", bundle(by_sponsor(ACME.changed(legal_name="X"), SOCIAL)))
    put(tmp_path, "minhealth.record.json", bundle(sponsor))
    put(tmp_path, "acme-analytics.record.json", bundle(by_sponsor(ACME.doc, MINHEALTH), sponsor))

    registry, refused_files = load_registry(tmp_path, ANCHOR)

    assert [(name, error.reason) for name, error in refused_files] == [
        ("a-forged.record.json", "bad-signature"),
        ("b-stranger.record.json", "unknown-signer"),
        ("c-junk.record.json", "malformed"),
        ("d-orphan.record.json", "unknown-signer"),
    ]
    assert all(isinstance(error, RecordRefused) for _, error in refused_files)
    assert [r.id for r in registry.records()] == ["acme-analytics", "minhealth"]
    held = registry.get("acme-analytics")
    assert held is not None
    assert held.participant.legal_name == "acme-analytics legal name"


def test_an_older_serial_file_next_to_a_newer_one_is_reported(tmp_path: Path) -> None:
    put(tmp_path, "acme-analytics.record.json", bundle(by_authority(ACME.doc, serial=2)))
    put(tmp_path, "acme-analytics.stale.record.json", bundle(by_authority(ACME.doc, serial=1)))

    registry, refused_files = load_registry(tmp_path, ANCHOR)

    assert [(name, error.reason) for name, error in refused_files] == [
        ("acme-analytics.stale.record.json", "older-serial")
    ]
    held = registry.get("acme-analytics")
    assert held is not None
    assert held.serial == 2


def test_a_newer_authority_record_wins_over_an_older_sponsor_record(tmp_path: Path) -> None:
    """The authority suspended a sponsor-signed contractor: both files are present."""
    sponsor = by_authority(MINHEALTH.doc)
    put(tmp_path, "a.record.json", bundle(by_sponsor(ACME.doc, MINHEALTH), sponsor))
    put(
        tmp_path, "b.record.json", bundle(by_authority(ACME.doc, serial=2, status=Status.SUSPENDED))
    )
    put(tmp_path, "minhealth.record.json", bundle(sponsor))

    registry, refused_files = load_registry(tmp_path, ANCHOR)

    assert [(name, error.reason) for name, error in refused_files] == [
        ("a.record.json", "older-serial")
    ]
    held = registry.get("acme-analytics")
    assert held is not None
    assert (held.serial, held.status) == (2, Status.SUSPENDED)


def test_an_older_serial_file_is_reported_whatever_its_name(tmp_path: Path) -> None:
    put(tmp_path, "acme-analytics.0.record.json", bundle(by_authority(ACME.doc, serial=1)))
    put(tmp_path, "acme-analytics.record.json", bundle(by_authority(ACME.doc, serial=2)))

    registry, refused_files = load_registry(tmp_path, ANCHOR)

    held = registry.get("acme-analytics")
    assert held is not None
    assert held.serial == 2  # holds today
    assert [(name, error.reason) for name, error in refused_files] == [
        ("acme-analytics.0.record.json", "older-serial")
    ]


def test_a_suspended_sponsor_cannot_sign_with_its_stale_active_record(tmp_path: Path) -> None:
    stale = by_authority(MINHEALTH.doc, serial=1)
    suspended = by_authority(MINHEALTH.doc, serial=2, status=Status.SUSPENDED, issued_at=NOW + 10)
    put(tmp_path, "minhealth.record.json", bundle(suspended))
    # After its suspension, minhealth approves a new contractor with its old record.
    newcomer = _party("newcomer")
    put(
        tmp_path,
        "newcomer.record.json",
        bundle(by_sponsor(newcomer.doc, MINHEALTH, issued_at=NOW + 20), stale),
    )

    registry, refused_files = load_registry(tmp_path, ANCHOR)

    minhealth = registry.get("minhealth")
    assert minhealth is not None
    assert minhealth.status is Status.SUSPENDED  # holds today
    assert registry.get("newcomer") is None
    assert [name for name, _ in refused_files] == ["newcomer.record.json"]


# -- the command line ------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@dataclass
class Cli:
    root: Path
    registry: Path
    keys: Path
    authority_key: Path
    capsys: pytest.CaptureFixture[str]

    def run(self, *argv: str | Path) -> Result:
        code = main([str(a) for a in argv])
        out, err = self.capsys.readouterr()
        return Result(code, out, err)

    def file(self, doc: dict[str, Any]) -> Path:
        path = self.root / f"{doc['participant']}.yaml"
        path.write_text(json.dumps(doc))  # JSON is YAML
        return path

    def signer(self, sponsor: str | None) -> list[str | Path]:
        if sponsor is None:
            return ["--authority-key", self.authority_key]
        return ["--sponsor-key", self.keys / f"{sponsor}.sig.pem"]

    def approve(self, doc: dict[str, Any], *, sponsor: str | None, **extra: Path) -> Result:
        options: list[str | Path] = []
        for name, value in extra.items():
            options += [f"--{name}", value]
        return self.run(
            "participants",
            "approve",
            self.file(doc),
            "--registry",
            self.registry,
            *self.signer(sponsor),
            *options,
        )

    def status(self, action: str, participant: str, *, sponsor: str | None) -> Result:
        argv: list[str | Path] = ["participants", action, participant, "--registry", self.registry]
        return self.run(*argv, *self.signer(sponsor))

    def anchor(self) -> dict[str, VerifyKey]:
        jwks = json.loads((self.registry / ANCHOR_FILE).read_text())
        return {k["kid"]: VerifyKey.from_jwk(k) for k in jwks["keys"]}

    def record(self, participant: str) -> Record:
        """The participant's record file, opened with the registry's trust anchor."""
        saved = json.loads((self.registry / f"{participant}.record.json").read_text())
        return open_record(saved, self.anchor())

    def snapshot(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.registry.iterdir())}


@pytest.fixture(scope="module")
def made_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An authority made with `gateway authority init`, and the key files of the parties
    that sign as sponsors: made once, copied for each test."""
    root = tmp_path_factory.mktemp("made-once")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PASSPHRASE_ENV, PASSPHRASE)
        assert main(["authority", "init", "--out", str(root / "authority")]) == 0
    for party in (MINHEALTH, SOCIAL, ACME):
        write_keys(root / "keys", party.id, party.keys, PASSPHRASE.encode())
    return root


@pytest.fixture
def cli(
    made_once: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    """An authority, a registry holding its anchor, and the parties' key files.

    The working directory has no ./contracts: entitlements are checked only when a
    test passes --contracts."""
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    for name in ("authority", "keys"):
        shutil.copytree(made_once / name, tmp_path / name)  # keeps the 0600 modes
    registry = tmp_path / "registry"
    registry.mkdir()
    shutil.copy(tmp_path / "authority" / ANCHOR_FILE, registry / ANCHOR_FILE)
    return Cli(
        tmp_path, registry, tmp_path / "keys", tmp_path / "authority" / "authority.pem", capsys
    )


def assert_refused(
    cli: Cli, before: dict[str, bytes], result: Result, message: str, *, stream: str = "out"
) -> None:
    """Exit 1, ``message`` on ``stream``, no traceback, the registry untouched."""
    assert result.code == 1
    assert message in (result.out if stream == "out" else result.err)
    assert "Traceback" not in result.out + result.err
    assert cli.snapshot() == before


def test_authority_init_writes_a_private_key_and_the_trust_anchor(cli: Cli) -> None:
    out = cli.root / "second"

    result = cli.run("authority", "init", "--out", out)

    assert result.code == 0
    private, anchor = out / "authority.pem", out / ANCHOR_FILE
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    jwks = json.loads(anchor.read_text())
    [jwk] = jwks["keys"]
    assert (jwk["crv"], jwk["use"], jwk["alg"]) == ("Ed25519", "sig", "EdDSA")
    assert "d" not in jwk
    assert jwk["kid"] in result.out
    assert str(private) in result.out
    # The private key signs records that open with the anchor it was written with.
    signer = load_signer(private, authority=True, secret=PASSPHRASE.encode())
    assert signer.key.kid == jwk["kid"]
    record = open_record(
        bundle(by_authority(MINHEALTH.doc, key=signer.key)),
        {jwk["kid"]: VerifyKey.from_jwk(jwk)},
    )
    assert record.issuer == AUTHORITY


def test_authority_init_refuses_to_overwrite_an_authority_key(cli: Cli) -> None:
    directory = cli.root / "authority"
    before = {p.name: p.read_bytes() for p in directory.iterdir()}

    result = cli.run("authority", "init", "--out", directory)

    assert result.code == 1
    assert result.out == ""
    assert result.err == (
        f"gateway: error: {directory / 'authority.pem'} exists: an authority key is made once\n"
    )
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before


def test_approving_an_agency_with_the_authority_key(cli: Cli) -> None:
    result = cli.approve(MINHEALTH.doc, sponsor=None)

    assert result.code == 0, result
    assert "approved minhealth (serial 1, signed by authority)" in result.out
    record = cli.record("minhealth")
    assert (record.id, record.serial, record.status, record.issuer) == (
        "minhealth",
        1,
        Status.ACTIVE,
        AUTHORITY,
    )
    assert record.participant.document == MINHEALTH.doc


def test_approving_a_contractor_with_its_sponsors_key(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0

    result = cli.approve(ACME.doc, sponsor="minhealth", contracts=CONTRACTS)

    assert result.code == 0, result
    assert "approved acme-analytics (serial 1, signed by minhealth)" in result.out
    record = cli.record("acme-analytics")
    assert (record.serial, record.status, record.issuer) == (1, Status.ACTIVE, "minhealth")
    assert record.chain == (cli.record("minhealth").jws,)
    registry, refused_files = load_registry(cli.registry, cli.anchor(), CATALOG)
    assert refused_files == []
    assert [r.id for r in registry.records()] == ["acme-analytics", "minhealth"]


def test_approving_again_issues_the_next_serial(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    assert cli.approve(ACME.doc, sponsor="minhealth").code == 0

    result = cli.approve(ACME.changed(legal_name="Acme Renamed"), sponsor="minhealth")

    assert result.code == 0, result
    record = cli.record("acme-analytics")
    assert (record.serial, record.participant.legal_name) == (2, "Acme Renamed")


def test_an_agency_is_not_approved_with_a_sponsor_key(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    before = cli.snapshot()

    result = cli.approve(SOCIAL.doc, sponsor="minhealth")

    assert_refused(cli, before, result, "an agency is approved by the authority (--authority-key)")


def test_a_contractor_whose_sponsor_has_no_record_is_not_approved(cli: Cli) -> None:
    before = cli.snapshot()

    result = cli.approve(ACME.doc, sponsor="minhealth")

    assert_refused(
        cli, before, result, "not approved: the sponsor minhealth has no record in the registry"
    )


def test_a_sponsor_that_is_not_an_agency_cannot_approve(cli: Cli) -> None:
    assert cli.approve(ACME.doc, sponsor=None).code == 0  # the authority approves a contractor
    before = cli.snapshot()

    result = cli.approve(SUBCO.doc, sponsor="acme-analytics")

    assert_refused(cli, before, result, "the sponsor acme-analytics is not an agency")


def test_a_key_that_is_not_the_sponsors_cannot_approve(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    assert cli.approve(SOCIAL.doc, sponsor=None).code == 0
    before = cli.snapshot()

    result = cli.approve(ACME.doc, sponsor="socialtreasury")  # ACME names minhealth

    assert_refused(cli, before, result, "the key given is not one of minhealth's signing keys")


def test_a_suspended_sponsor_cannot_approve(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    assert cli.status("suspend", "minhealth", sponsor=None).code == 0
    before = cli.snapshot()

    result = cli.approve(ACME.doc, sponsor="minhealth")

    assert_refused(cli, before, result, "gateway: error: minhealth is suspended", stream="err")


@pytest.mark.parametrize("reused", ["signing", "encryption"])
def test_keys_already_another_participants_are_not_approved(cli: Cli, reused: str) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    assert cli.approve(ACME.doc, sponsor="minhealth").code == 0
    before = cli.snapshot()
    own, theirs = SOCIAL.doc["keys"]["keys"], ACME.doc["keys"]["keys"]
    index = 0 if reused == "signing" else 1
    listed = [theirs[0], own[1]] if index == 0 else [own[0], theirs[1]]
    mixed = SOCIAL.changed(keys={"participant": "socialtreasury", "keys": listed})
    kid = theirs[index]["kid"]

    result = cli.approve(mixed, sponsor=None)

    assert_refused(cli, before, result, f"key {kid} is already acme-analytics's")


def test_a_contractor_reusing_its_sponsors_keys_is_not_approved(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    before = cli.snapshot()

    result = cli.approve(ACME.changed(keys=MINHEALTH.keys.public().to_jwks()), sponsor="minhealth")

    assert_refused(cli, before, result, f"key {MINHEALTH.key.kid} is already minhealth's")


def test_a_contract_not_listing_the_participant_is_refused_with_contracts(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    before = cli.snapshot()
    publishing = ACME.changed(contracts=[{"contract": REFERRAL, "role": "publish"}])

    result = cli.approve(publishing, sponsor="minhealth", contracts=CONTRACTS)

    assert_refused(
        cli,
        before,
        result,
        f"/contracts/0  {REFERRAL} (1.0.0, 1.1.0) does not list acme-analytics as a producer",
    )
    assert "not approved: 1 problem(s)" in result.out
    # Without a catalog the same file is approved: the check needs --contracts.
    assert cli.approve(publishing, sponsor="minhealth").code == 0


def test_an_invalid_participant_file_is_not_approved(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    before = cli.snapshot()

    result = cli.approve(ACME.changed(legal_name="", sponsor="acme-analytics"), sponsor="minhealth")

    assert_refused(cli, before, result, "acme-analytics.yaml: not approved: 2 problem(s)")
    assert "/legal_name" in result.out
    assert "/sponsor  a participant cannot sponsor itself" in result.out


def test_a_file_that_is_not_yaml_is_a_clean_error(cli: Cli) -> None:
    path = cli.root / "broken.yaml"
    path.write_text("participant: [unclosed\n")
    before = cli.snapshot()

    result = cli.run("participants", "approve", path, "--registry", cli.registry, *cli.signer(None))

    assert_refused(cli, before, result, "is not valid YAML", stream="err")


def test_suspend_reinstate_revoke_issue_the_next_serials(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    assert cli.approve(ACME.doc, sponsor="minhealth").code == 0

    steps = [
        ("suspend", Status.SUSPENDED),
        ("reinstate", Status.ACTIVE),
        ("revoke", Status.REVOKED),
    ]
    for serial, (action, status) in enumerate(steps, start=2):
        result = cli.status(action, "acme-analytics", sponsor="minhealth")
        assert result.code == 0, result
        assert result.out == (
            f"acme-analytics is {status.value} (serial {serial}, signed by minhealth)\n"
        )
        record = cli.record("acme-analytics")
        assert (record.serial, record.status, record.issuer) == (serial, status, "minhealth")
        assert record.participant.document == ACME.doc


def test_the_authority_changes_an_agencys_status(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0

    assert cli.status("suspend", "minhealth", sponsor=None).code == 0
    assert cli.status("revoke", "minhealth", sponsor=None).code == 0

    record = cli.record("minhealth")
    assert (record.serial, record.status, record.issuer) == (3, Status.REVOKED, AUTHORITY)


def test_suspending_a_suspended_participant_is_refused(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    assert cli.approve(ACME.doc, sponsor="minhealth").code == 0
    assert cli.status("suspend", "acme-analytics", sponsor="minhealth").code == 0
    before = cli.snapshot()

    result = cli.status("suspend", "acme-analytics", sponsor="minhealth")

    assert_refused(cli, before, result, "cannot suspend acme-analytics: it is suspended")


def test_reinstating_an_active_participant_is_refused(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    before = cli.snapshot()

    result = cli.status("reinstate", "minhealth", sponsor=None)

    assert_refused(cli, before, result, "cannot reinstate minhealth: it is active")


@pytest.mark.parametrize("action", ["reinstate", "suspend", "revoke"])
def test_nothing_follows_a_revocation_on_the_command_line(cli: Cli, action: str) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    assert cli.approve(ACME.doc, sponsor="minhealth").code == 0
    assert cli.status("revoke", "acme-analytics", sponsor="minhealth").code == 0
    before = cli.snapshot()

    result = cli.status(action, "acme-analytics", sponsor=None)

    assert_refused(cli, before, result, f"cannot {action} acme-analytics: it is revoked")


def test_a_revoked_or_suspended_participant_is_not_re_approved(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    assert cli.approve(ACME.doc, sponsor="minhealth").code == 0
    assert cli.status("suspend", "acme-analytics", sponsor="minhealth").code == 0
    before = cli.snapshot()

    result = cli.approve(ACME.doc, sponsor="minhealth")

    assert_refused(cli, before, result, "acme-analytics is suspended: reinstate it instead")
    assert cli.status("revoke", "acme-analytics", sponsor="minhealth").code == 0
    before = cli.snapshot()
    assert_refused(
        cli, before, cli.approve(ACME.doc, sponsor=None), "acme-analytics was revoked for good"
    )


def test_a_sponsor_cannot_change_an_authority_signed_record(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    assert cli.approve(ACME.doc, sponsor=None).code == 0  # the authority signed acme's record
    before = cli.snapshot()

    for participant in ("minhealth", "acme-analytics"):
        result = cli.status("suspend", participant, sponsor="minhealth")
        assert_refused(
            cli, before, result, f"cannot suspend {participant}: the authority signed its record"
        )


def test_another_agency_cannot_change_a_sponsors_contractor(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    assert cli.approve(SOCIAL.doc, sponsor=None).code == 0
    assert cli.approve(ACME.doc, sponsor="minhealth").code == 0
    before = cli.snapshot()

    result = cli.status("revoke", "acme-analytics", sponsor="socialtreasury")

    assert_refused(
        cli, before, result, f"minhealth's record lists no key {SOCIAL.key.kid!r}", stream="err"
    )


def test_the_authority_may_change_a_sponsor_signed_record(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    assert cli.approve(ACME.doc, sponsor="minhealth").code == 0

    assert cli.status("suspend", "acme-analytics", sponsor=None).code == 0

    record = cli.record("acme-analytics")
    assert (record.serial, record.status, record.issuer, record.chain) == (
        2,
        Status.SUSPENDED,
        AUTHORITY,
        (),
    )


def test_an_unknown_participant_is_a_clean_error(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    before = cli.snapshot()

    result = cli.status("suspend", "nobody", sponsor=None)

    assert_refused(
        cli, before, result, f"gateway: error: nobody has no record in {cli.registry}", stream="err"
    )
    assert result.out == ""


def test_a_revoked_record_failing_todays_catalog_is_not_overwritten(cli: Cli) -> None:
    assert cli.approve(MINHEALTH.doc, sponsor=None).code == 0
    publishing = ACME.changed(contracts=[{"contract": REFERRAL, "role": "publish"}])
    assert cli.approve(publishing, sponsor="minhealth").code == 0  # no catalog: not checked
    assert cli.status("revoke", "acme-analytics", sponsor="minhealth").code == 0
    assert cli.record("acme-analytics").status is Status.REVOKED  # holds today
    before = cli.snapshot()

    result = cli.approve(ACME.doc, sponsor="minhealth", contracts=CONTRACTS)

    assert_refused(cli, before, result, "acme-analytics was revoked for good")


def test_suspending_a_sponsor_suspends_what_it_signed_until_it_is_reinstated(
    tmp_path: Path,
) -> None:
    active = by_authority(MINHEALTH.doc, serial=1)
    put(tmp_path, "acme-analytics.record.json", bundle(by_sponsor(ACME.doc, MINHEALTH), active))
    put(tmp_path, "minhealth.record.json", bundle(active))
    assert load_registry(tmp_path, ANCHOR)[0].get("acme-analytics") is not None

    suspended = by_authority(MINHEALTH.doc, serial=2, status=Status.SUSPENDED)
    put(tmp_path, "minhealth.record.json", bundle(suspended))
    registry, refused_files = load_registry(tmp_path, ANCHOR)
    assert registry.get("acme-analytics") is None
    assert [(name, exc.reason) for name, exc in refused_files] == [
        ("acme-analytics.record.json", "sponsor-inactive")
    ]

    put(tmp_path, "minhealth.record.json", bundle(by_authority(MINHEALTH.doc, serial=3)))
    assert load_registry(tmp_path, ANCHOR)[0].get("acme-analytics") is not None


def test_a_record_signed_after_the_sponsor_revoked_that_key_is_refused() -> None:
    sponsor_doc = copy.deepcopy(MINHEALTH.doc)
    for jwk in sponsor_doc["keys"]["keys"]:
        if jwk["use"] == "sig":
            jwk["revoked_at"] = NOW - 100
    sponsor = by_authority(sponsor_doc)

    exc = refused(bundle(by_sponsor(ACME.doc, MINHEALTH, issued_at=NOW), sponsor))

    assert exc.reason == "revoked-key"


# -- participants list / publish -------------------------------------------------------------


def test_list_shows_each_participant_with_status_serial_and_signer(cli: Cli) -> None:
    cli.approve(MINHEALTH.doc, sponsor=None)
    cli.approve(ACME.doc, sponsor="minhealth")
    cli.status("suspend", "acme-analytics", sponsor="minhealth")

    result = cli.run("participants", "list", "--registry", cli.registry)

    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == f"{cli.registry}: 2 participant(s)"
    assert lines[1].split() == [
        "acme-analytics", "contractor", "suspended", "serial", "2", "signed", "by", "minhealth",
    ]  # fmt: skip
    assert lines[2].split()[:3] == ["minhealth", "agency", "active"]


def test_list_names_a_record_that_does_not_hold_and_exits_1(cli: Cli) -> None:
    cli.approve(MINHEALTH.doc, sponsor=None)
    (cli.registry / "forged.record.json").write_text(json.dumps(bundle("a.b.c")))

    result = cli.run("participants", "list", "--registry", cli.registry, "--json")

    assert result.code == 1
    listed = json.loads(result.out)
    assert [p["participant"] for p in listed["participants"]] == ["minhealth"]
    assert [(r["file"], r["reason"]) for r in listed["refused"]] == [
        ("forged.record.json", "malformed")
    ]


def test_publish_needs_a_config_naming_a_cluster(cli: Cli) -> None:
    cli.approve(MINHEALTH.doc, sponsor=None)
    config = cli.root / "node.yaml"
    config.write_text("node_id: node-a\n")  # no kafka.bootstrap: the embedded broker

    result = cli.run("participants", "publish", "--registry", cli.registry, "--config", config)

    assert result.code == 1
    assert "kafka.bootstrap names no cluster to publish to" in result.err


def test_publish_refuses_a_registry_with_a_record_that_does_not_hold(cli: Cli) -> None:
    cli.approve(MINHEALTH.doc, sponsor=None)
    (cli.registry / "forged.record.json").write_text("{}")
    config = cli.root / "node.yaml"
    config.write_text("kafka: {bootstrap: 127.0.0.1:1}\n")

    result = cli.run("participants", "publish", "--registry", cli.registry, "--config", config)

    assert result.code == 1
    assert "forged.record.json does not hold" in result.err


def test_a_suspension_the_cluster_does_not_take_is_still_written_and_says_how_to_resend(
    cli: Cli,
) -> None:
    cli.approve(MINHEALTH.doc, sponsor=None)
    cli.approve(ACME.doc, sponsor="minhealth")
    config = cli.root / "node.yaml"
    port = _closed_port()
    config.write_text(
        f"kafka: {{bootstrap: '127.0.0.1:{port}', request_timeout_s: 1.0,"
        " rebalance_timeout_s: 1.0}\n"
    )

    result = cli.run(
        "participants", "suspend", "acme-analytics", "--registry", cli.registry,
        *cli.signer("minhealth"), "--publish", config,
    )  # fmt: skip

    assert result.code == 1
    assert "acme-analytics is suspended (serial 2" in result.out  # the file is written
    assert cli.record("acme-analytics").status is Status.SUSPENDED
    assert "run 'gateway participants publish' once the cluster is back" in result.err
    assert "Traceback" not in result.err


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
