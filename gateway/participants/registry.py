"""Signed registry records: who may take part, vouched for by the authority or a sponsor.

A record is a compact JWS (``typ: gw-registry+jws``) whose protected header
names its issuer (``iss``) and key (``kid``) and whose payload is::

    {"kind": "participant", "id": "acme-analytics", "serial": 3,
     "status": "active" | "suspended" | "revoked", "issued_at": 1795000000,
     "participant": {...the participant file...}}

It travels in a bundle, ``{"record": "<JWS>", "chain": ["<JWS>", ...]}``. The
trust rules, checked by :func:`open_record` against the authority's public
keys (the trust anchor):

- the authority signs agencies' records (``iss: authority``, chain empty);
- a sponsor signs its contractors' records with its own signing key, and the
  chain carries the sponsor's record, which the authority signed, which shows
  an *active agency*, which lists that key, and which the contractor's file
  names as its sponsor;
- a node never takes an older serial over a newer one (:class:`Registry`), so a
  replayed old record cannot undo a suspension.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from gateway.contracts.catalog import ContractCatalog
from gateway.crypto.encoding import b64u_decode
from gateway.crypto.envelope import sign_compact, verify_signature
from gateway.crypto.jwk import SignKey, VerifyKey
from gateway.errors import GatewayError, InputError, VerificationError
from gateway.jsonparse import parse_json
from gateway.participants.document import Kind, ParticipantFile, check

TYP = "gw-registry+jws"
AUTHORITY = "authority"
_MAX_RECORD = 512 * 1024
MAX_DEPTH = 64
"""Deepest JSON nesting in a record: records come from an untrusted topic, and a schema
nested deep enough would exhaust the recursion of whatever walks it."""


class Status(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class RecordRefused(GatewayError):
    """A registry record that does not hold; ``reason`` is stable, for audit records."""

    code = "registry-record-refused"
    title = "Registry record refused"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    serial: int
    status: Status
    issued_at: int
    issuer: str
    kid: str
    """The key that signed the record (the authority's, or one of the sponsor's)."""
    participant: ParticipantFile
    jws: str
    chain: tuple[str, ...]

    def bundle(self) -> dict[str, Any]:
        return {"record": self.jws, "chain": list(self.chain)}


def sign_record(
    document: Mapping[str, Any],
    *,
    serial: int,
    status: Status,
    issued_at: int,
    key: SignKey,
    issuer: str,
) -> str:
    """A record over a participant file, signed by ``issuer`` (the authority or a sponsor)."""
    payload = {
        "kind": "participant",
        "id": document["participant"],
        "serial": serial,
        "status": status.value,
        "issued_at": issued_at,
        "participant": dict(document),
    }
    header = {"alg": key.alg, "kid": key.kid, "typ": TYP, "iss": issuer}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return sign_compact(header, text.encode(), key).decode()


def open_record(
    bundle: Any, anchor: Mapping[str, VerifyKey], catalog: ContractCatalog | None = None
) -> Record:
    """The record, if its signature chain ends at ``anchor``; :class:`RecordRefused` if not.

    ``catalog`` (when given) is also checked: the participant's requested contracts
    must admit it."""
    if not isinstance(bundle, dict) or set(bundle) != {"record", "chain"}:
        raise RecordRefused("malformed", "a registry bundle has 'record' and 'chain'")
    jws, chain = bundle["record"], bundle["chain"]
    if not isinstance(jws, str) or not _links(chain):
        raise RecordRefused("malformed", "'record' is a compact JWS and 'chain' at most one more")
    header, payload, signing_input, signature = read_jws(jws)
    issuer = header["iss"]
    if issuer == AUTHORITY:
        if chain:
            raise RecordRefused("malformed", "an authority record carries no chain")
        key = anchor.get(header["kid"])
        if key is None:
            raise RecordRefused("unknown-signer", f"no authority key {header['kid'][:60]!r}")
    else:
        if not chain:
            raise RecordRefused(
                "unknown-signer", f"signed by {issuer!r} without the sponsor's own record"
            )
        key = _sponsor_key(open_record({"record": chain[0], "chain": []}, anchor), issuer, header)
    check_signature(key, header, signing_input, signature)
    record = _record(payload, issuer, header["kid"], jws, tuple(chain), catalog)
    _check_issuer(record)
    try:
        key.check_issued_at(record.issued_at)  # a sponsor key revoked, or past its overlap
    except VerificationError as exc:
        raise RecordRefused("revoked-key", exc.detail) from None
    return record


def _check_issuer(record: Record) -> None:
    """The authority signs anyone's record; a sponsor only its own contractors'."""
    if record.issuer == AUTHORITY:
        return
    if record.participant.kind is Kind.AGENCY:
        raise RecordRefused("unknown-signer", "only the authority signs an agency's record")
    if record.participant.sponsor != record.issuer:
        raise RecordRefused(
            "unknown-signer",
            f"{record.id} names {record.participant.sponsor!r} as sponsor, "
            f"but {record.issuer!r} signed",
        )


def _links(chain: Any) -> bool:
    return isinstance(chain, list) and len(chain) <= 1 and all(isinstance(c, str) for c in chain)


def read_jws(jws: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, payload, signing input and signature of a registry JWS: not verified."""
    if len(jws) > _MAX_RECORD or jws.count(".") != 2:
        raise RecordRefused("malformed", "not a compact JWS")
    protected, body, signature = jws.split(".")
    try:
        header = parse_json(b64u_decode(protected), max_bytes=_MAX_RECORD, max_depth=MAX_DEPTH)
        payload = parse_json(b64u_decode(body), max_bytes=_MAX_RECORD, max_depth=MAX_DEPTH)
        raw_signature = b64u_decode(signature)
    except (ValueError, InputError):
        raise RecordRefused(
            "malformed", f"not a well-formed JWS (JSON nested at most {MAX_DEPTH} deep)"
        ) from None
    if not isinstance(header, dict) or header.get("typ") != TYP:
        raise RecordRefused("malformed", f"not a registry record (typ is not {TYP})")
    if not all(isinstance(header.get(name), str) for name in ("alg", "kid", "iss")):
        raise RecordRefused("malformed", "the header names alg, kid and iss")
    if not isinstance(payload, dict):
        raise RecordRefused("malformed", "the payload is not a JSON object")
    return header, payload, f"{protected}.{body}".encode(), raw_signature


def _sponsor_key(sponsor: Record, issuer: str, header: Mapping[str, Any]) -> VerifyKey:
    if sponsor.id != issuer:
        raise RecordRefused("unknown-signer", f"the chain is {sponsor.id}'s record, not {issuer}'s")
    if sponsor.participant.kind is not Kind.AGENCY:
        raise RecordRefused("sponsor-not-agency", f"{issuer} is not an agency: it sponsors no one")
    if sponsor.status is not Status.ACTIVE:
        raise RecordRefused("sponsor-inactive", f"{issuer} is {sponsor.status.value}")
    key = sponsor.participant.keys.verify_key(header["kid"])
    if key is None:
        raise RecordRefused(
            "unknown-signer", f"{issuer}'s record lists no key {header['kid'][:60]!r}"
        )
    return key


def check_signature(
    key: VerifyKey, header: Mapping[str, Any], signing_input: bytes, signature: bytes
) -> None:
    if header["alg"] != key.alg:
        raise RecordRefused("bad-signature", "alg does not match the signing key")
    try:
        verify_signature(key, signature, signing_input)
    except InvalidSignature:
        raise RecordRefused("bad-signature", "the signature does not verify") from None


def _record(  # noqa: PLR0917 - one private call site, named by position
    payload: dict[str, Any],
    issuer: str,
    kid: str,
    jws: str,
    chain: tuple[str, ...],
    catalog: ContractCatalog | None,
) -> Record:
    expected = {"kind", "id", "serial", "status", "issued_at", "participant"}
    if set(payload) != expected or payload["kind"] != "participant":
        raise RecordRefused("malformed", f"a participant record holds exactly {sorted(expected)}")
    serial, issued_at = payload["serial"], payload["issued_at"]
    if type(serial) is not int or serial < 1 or type(issued_at) is not int:
        raise RecordRefused("malformed", "serial is a positive integer and issued_at a Unix time")
    try:
        status = Status(payload["status"])
    except ValueError:
        raise RecordRefused("malformed", "status is active, suspended or revoked") from None
    participant, problems = check(payload["participant"], catalog)
    if participant is None:
        first = problems[0]
        raise RecordRefused("malformed", f"the participant file: {first.pointer} {first.message}")
    if participant.id != payload["id"]:
        raise RecordRefused("malformed", "the record's id is not its participant file's")
    return Record(participant.id, serial, status, issued_at, issuer, kid, participant, jws, chain)


def record_kind(bundle: Any) -> str:
    """What a bundle says it carries (``participant`` or ``contract``), before any check;
    only to choose how to open it."""
    if isinstance(bundle, dict) and isinstance(bundle.get("record"), str):
        try:
            _, payload, _, _ = read_jws(bundle["record"])
        except RecordRefused:
            return "participant"  # opened as one, it is refused with the reason
        if payload.get("kind") == "contract":
            return "contract"
    return "participant"


class Registry:
    """The newest record of each participant a node has accepted."""

    def __init__(self) -> None:
        self._records: dict[str, Record] = {}

    def get(self, participant: str) -> Record | None:
        return self._records.get(participant)

    def records(self) -> list[Record]:
        return sorted(self._records.values(), key=lambda r: r.id)

    def accept(self, record: Record) -> bool:
        """Take ``record`` if it is newer; False when it is the one held already.

        Raises :class:`RecordRefused` for an older serial (a rollback), for a reused
        serial with other content, and for anything after a revocation."""
        self._check_sponsor(record)
        current = self._records.get(record.id)
        if current is not None:
            if record.serial < current.serial:
                raise RecordRefused(
                    "older-serial",
                    f"{record.id}: serial {record.serial} is older than the {current.serial} held",
                )
            if record.serial == current.serial:
                if record.jws != current.jws:
                    raise RecordRefused(
                        "reused-serial", f"{record.id}: serial {record.serial} reused"
                    )
                return False
            if current.status is Status.REVOKED:
                raise RecordRefused("revoked", f"{record.id} was revoked for good")
        self._records[record.id] = record
        return True

    def _check_sponsor(self, record: Record) -> None:
        """A sponsor-signed record holds only while the sponsor's *newest* record, not
        just the one in the chain, shows an active agency listing the signing key: an
        old record in the chain cannot undo the sponsor's suspension. Suspending a
        sponsor therefore suspends what it signed, until it is reinstated."""
        if record.issuer == AUTHORITY:
            return
        sponsor = self._records.get(record.issuer)
        if sponsor is None:
            raise RecordRefused("unknown-signer", f"the sponsor {record.issuer} is not registered")
        if sponsor.status is not Status.ACTIVE:
            raise RecordRefused("sponsor-inactive", f"{record.issuer} is {sponsor.status.value}")
        key = sponsor.participant.keys.verify_key(record.kid)
        if key is None:
            raise RecordRefused(
                "unknown-signer", f"{record.issuer}'s newest record lists no key {record.kid}"
            )
        try:  # revoked (or retired) in the sponsor's newest record, not just in the chain
            key.check_issued_at(record.issued_at)
        except VerificationError as exc:
            raise RecordRefused("revoked-key", exc.detail) from None

    def key_owner(self, kid: str) -> str | None:
        """The participant whose record lists this key, if any (keys are never shared)."""
        for record in self._records.values():
            keys = record.participant.keys
            kids = {k.kid for k in keys.signing} | {k.kid for k in keys.encryption}
            if kid in kids:
                return record.id
        return None


# -- the file-based registry ---------------------------------------------------------

ANCHOR_FILE = "authority.jwks.json"
RECORD_SUFFIX = ".record.json"


def load_registry(
    directory: Path, anchor: Mapping[str, VerifyKey], catalog: ContractCatalog | None = None
) -> tuple[Registry, list[tuple[str, RecordRefused]]]:
    """Every ``<id>.record.json`` that holds, and each refused file with the reason.

    Sponsors' records are taken first, so a contractor's record finds its sponsor."""
    registry = Registry()
    refused: list[tuple[str, RecordRefused]] = []
    opened: list[tuple[str, Record]] = []
    for path in sorted(directory.glob(f"*{RECORD_SUFFIX}")):
        try:
            opened.append((path.name, open_record(_read_bundle(path), anchor, catalog)))
        except RecordRefused as exc:
            refused.append((path.name, exc))
    # Sponsors (authority-signed) first; per participant the newest first, so that a
    # stale file is reported as such whatever its name.
    for name, record in sorted(opened, key=lambda i: (i[1].issuer != AUTHORITY, -i[1].serial)):
        try:
            registry.accept(record)
        except RecordRefused as exc:
            refused.append((name, exc))
    return registry, refused


def _read_bundle(path: Path) -> Any:
    try:
        data = path.read_bytes()
        if len(data) > 2 * _MAX_RECORD:
            raise RecordRefused("malformed", f"{path.name} is too large")
        return json.loads(data)
    except OSError as exc:
        raise RecordRefused("malformed", f"cannot read {path.name}: {exc.strerror}") from exc
    except (ValueError, RecursionError):
        raise RecordRefused("malformed", f"{path.name} is not JSON") from None


def write_record(directory: Path, record: Record) -> Path:
    """Replace the participant's record file in one step."""
    path = directory / f"{record.id}{RECORD_SUFFIX}"
    temporary = directory / f".{record.id}{RECORD_SUFFIX}.tmp"
    temporary.write_text(json.dumps(record.bundle(), indent=2) + "\n")
    os.replace(temporary, path)
    return path
