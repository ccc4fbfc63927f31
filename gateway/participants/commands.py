"""``gateway participants submit FILE``: is a participant file ready for its sponsor?

Prints every problem with its JSON pointer (exit 1), or a summary of what the
sponsor will be asked to approve (exit 0). With a contracts directory it also
checks that each requested contract lists the participant in that role.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.store import read_verify_keys
from gateway.contracts import load_catalog
from gateway.contracts.catalog import ContractCatalog
from gateway.crypto.jwk import SignKey, Suite, VerifyKey
from gateway.crypto.keys import read_private, write_private
from gateway.errors import ConfigError, KeyStoreError
from gateway.participants.document import Kind, ParticipantFile, check, read_participant_file
from gateway.participants.registry import (
    ANCHOR_FILE,
    AUTHORITY,
    RECORD_SUFFIX,
    Record,
    Registry,
    Status,
    load_registry,
    open_record,
    sign_record,
    write_record,
)

Say = Callable[[str], None]
Publish = Callable[[Sequence[Record]], None]
"""Hands new records to the registry topic (``--publish CONFIG``)."""


def no_topic(_records: Sequence[Record]) -> None:
    return None


def submit_command(path: Path, *, contracts: Path | None, as_json: bool, say: Say) -> int:
    catalog, checked_against = _catalog(contracts)
    participant, problems = check(read_participant_file(path), catalog)
    if as_json:
        say(
            json.dumps(
                {
                    "file": str(path),
                    "ready": participant is not None,
                    "contracts_checked": checked_against,
                    "problems": [{"pointer": p.pointer, "message": p.message} for p in problems],
                },
                indent=2,
            )
        )
        return 0 if participant is not None else 1
    if participant is None:
        noun = "problem" if len(problems) == 1 else "problems"
        say(f"{path}: {len(problems)} {noun} to fix before it can be approved")
        width = min(max(len(p.pointer or "/") for p in problems), 32)
        for problem in problems:
            say(f"  {problem.pointer or '/':<{width}}  {problem.message}")
        return 1
    _summary(path, participant, checked_against, say)
    return 0


def _catalog(contracts: Path | None) -> tuple[ContractCatalog | None, str | None]:
    directory = contracts or Path("contracts")
    if contracts is None and not directory.is_dir():
        return None, None
    return load_catalog(directory), str(directory)


def _summary(
    path: Path, participant: ParticipantFile, checked_against: str | None, say: Say
) -> None:
    approver = participant.sponsor or "the authority"
    say(f"{path}: ready for approval by {approver}")
    say(f"  {participant.kind.value} {participant.id}: {participant.legal_name}")
    for key in participant.keys.signing[:1]:
        say(f"  signing key     {key.kid} ({key.alg})")
    for enc in participant.keys.encryption[:1]:
        say(f"  encryption key  {enc.kid}")
    for request in participant.contracts:
        say(f"  {request.role.value:<9} {request.contract} {request.versions}")
    delivery = participant.delivery
    say(
        f"  delivery        {delivery['mode']}"
        + (f" {delivery['url']}" if "url" in delivery else "")
    )
    contact = participant.security_contact
    say(f"  security contact {contact['name']} <{contact['email']}>")
    if checked_against is None:
        say("  contracts not checked: pass --contracts DIR to check the entitlements")


# -- approval and status changes ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signs: the authority, or a sponsor with its own signing key."""

    key: SignKey
    authority: bool


def load_signer(path: Path, *, authority: bool, secret: bytes) -> Signer:
    key = read_private(path, secret)
    if not isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyStoreError(f"{path} is not an Ed25519 or P-256 signing key")
    return Signer(SignKey.of(key), authority)


def authority_init_command(out: Path, *, secret: bytes, say: Say) -> int:
    private = out / "authority.pem"
    for existing in (private, out / ANCHOR_FILE):
        if existing.exists():
            raise ConfigError(f"{existing} exists: an authority key is made once")
    out.mkdir(parents=True, exist_ok=True)
    key = SignKey.generate(Suite.ED25519)
    write_private(private, key.key, secret)
    jwks = {"purpose": "registry authority", "keys": [key.verify_key().to_jwk()]}
    anchor = out / ANCHOR_FILE
    anchor.write_text(json.dumps(jwks, indent=2) + "\n")
    say(f"wrote {private} (keep it offline) and {anchor} (the trust anchor), kid {key.kid}")
    say(f"  copy {ANCHOR_FILE} into every node's registry directory")
    return 0


def approve_command(
    path: Path,
    *,
    registry_dir: Path,
    signer: Signer,
    contracts: Path | None,
    now: int,
    say: Say,
    publish: Publish = no_topic,
) -> int:
    catalog, _ = _catalog(contracts)
    participant, problems = check(read_participant_file(path), catalog)
    if participant is None:
        say(f"{path}: not approved: {len(problems)} problem(s)")
        for problem in problems:
            say(f"  {problem.pointer or '/'}  {problem.message}")
        return 1
    anchor = read_verify_keys(registry_dir / ANCHOR_FILE)
    # The registry as it stands, without today's catalog: a record that no longer fits
    # it (a revocation, say) must still count.
    registry = _current(registry_dir, anchor, participant.id)
    refusal = _approval_refusal(participant, registry, signer)
    if refusal:
        say(f"{path}: not approved: {refusal}")
        return 1
    current = registry.get(participant.id)
    record = _issue(
        participant.document,
        serial=current.serial + 1 if current else 1,
        status=Status.ACTIVE,
        signer=signer,
        issuer=AUTHORITY if signer.authority else str(participant.sponsor),
        registry=registry,
        anchor=anchor,
        catalog=catalog,
        now=now,
    )
    written = write_record(registry_dir, record)
    say(f"approved {participant.id} (serial {record.serial}, signed by {record.issuer}): {written}")
    publish([record])
    return 0


def _current(registry_dir: Path, anchor: dict[str, VerifyKey], participant: str) -> Registry:
    """The registry; refuses to go on when the participant's own record does not open
    (acting on it would start its serials again)."""
    registry, refused = load_registry(registry_dir, anchor)
    for name, exc in refused:
        if name == f"{participant}{RECORD_SUFFIX}" and registry.get(participant) is None:
            raise ConfigError(f"{name} does not hold ({exc.detail}); repair or remove it first")
    return registry


def _approval_refusal(participant: ParticipantFile, registry: Registry, signer: Signer) -> str:
    if not signer.authority:
        refusal = _sponsor_refusal(participant, registry, signer)
        if refusal:
            return refusal
    keys = participant.keys
    for kid in [k.kid for k in keys.signing] + [k.kid for k in keys.encryption]:
        owner = registry.key_owner(kid)
        if owner is not None and owner != participant.id:
            return f"key {kid} is already {owner}'s: every participant has keys of its own"
    current = registry.get(participant.id)
    if current is not None and current.status is Status.SUSPENDED:
        return f"{participant.id} is suspended: reinstate it instead"
    if current is not None and current.status is Status.REVOKED:
        return f"{participant.id} was revoked for good"
    return ""


def _sponsor_refusal(participant: ParticipantFile, registry: Registry, signer: Signer) -> str:
    if participant.kind is Kind.AGENCY:
        return "an agency is approved by the authority (--authority-key)"
    sponsor = registry.get(str(participant.sponsor))
    if sponsor is None:
        return f"the sponsor {participant.sponsor} has no record in the registry"
    if sponsor.participant.kind is not Kind.AGENCY:
        return f"the sponsor {participant.sponsor} is not an agency"
    if sponsor.participant.keys.verify_key(signer.key.kid) is None:
        return f"the key given is not one of {participant.sponsor}'s signing keys"
    return ""


_MOVES = {
    "suspend": ({Status.ACTIVE}, Status.SUSPENDED),
    "reinstate": ({Status.SUSPENDED}, Status.ACTIVE),
    "revoke": ({Status.ACTIVE, Status.SUSPENDED}, Status.REVOKED),
}


def status_command(
    action: str,
    participant_id: str,
    *,
    registry_dir: Path,
    signer: Signer,
    now: int,
    say: Say,
    publish: Publish = no_topic,
) -> int:
    anchor = read_verify_keys(registry_dir / ANCHOR_FILE)
    registry = _current(registry_dir, anchor, participant_id)
    current = registry.get(participant_id)
    if current is None:
        raise ConfigError(f"{participant_id} has no record in {registry_dir}")
    allowed, status = _MOVES[action]
    if current.status not in allowed:
        say(f"cannot {action} {participant_id}: it is {current.status.value}")
        return 1
    issuer = AUTHORITY if signer.authority else current.issuer
    if not signer.authority and current.issuer == AUTHORITY:
        say(f"cannot {action} {participant_id}: the authority signed its record")
        return 1
    record = _issue(
        current.participant.document,
        serial=current.serial + 1,
        status=status,
        signer=signer,
        issuer=issuer,
        registry=registry,
        anchor=anchor,
        catalog=None,
        now=now,
    )
    write_record(registry_dir, record)
    say(f"{participant_id} is {status.value} (serial {record.serial}, signed by {issuer})")
    publish([record])
    return 0


def list_command(registry_dir: Path, *, as_json: bool, say: Say) -> int:
    """Every participant the registry holds, with status, serial and signer; and every
    record file that does not hold (exit 1 when there is one)."""
    anchor = read_verify_keys(registry_dir / ANCHOR_FILE)
    registry, refused = load_registry(registry_dir, anchor)
    rows = [
        {
            "participant": r.id,
            "kind": r.participant.kind.value,
            "status": r.status.value,
            "serial": r.serial,
            "signed_by": r.issuer,
            "sponsor": r.participant.sponsor,
            "legal_name": r.participant.legal_name,
        }
        for r in registry.records()
    ]
    problems = [{"file": name, "reason": e.reason, "detail": e.detail} for name, e in refused]
    if as_json:
        say(json.dumps({"participants": rows, "refused": problems}, indent=2))
        return 1 if problems else 0
    say(f"{registry_dir}: {len(rows)} participant(s)")
    for row in rows:
        say(
            f"  {row['participant']:<24} {row['kind']:<10} {row['status']:<9} "
            f"serial {row['serial']:<4} signed by {row['signed_by']}"
        )
    for problem in problems:
        say(f"  REFUSED {problem['file']}: {problem['reason']}: {problem['detail']}")
    return 1 if problems else 0


def records_in(registry_dir: Path) -> list[Record]:
    """The records that hold in ``registry_dir``, sponsors first (for the topic)."""
    anchor = read_verify_keys(registry_dir / ANCHOR_FILE)
    registry, refused = load_registry(registry_dir, anchor)
    if refused:
        name, exc = refused[0]
        raise ConfigError(f"{name} does not hold ({exc.detail}); repair or remove it first")
    return sorted(registry.records(), key=lambda r: (r.issuer != AUTHORITY, r.id))


def _issue(
    document: dict[str, Any],
    *,
    serial: int,
    status: Status,
    signer: Signer,
    issuer: str,
    registry: Registry,
    anchor: dict[str, VerifyKey],
    catalog: ContractCatalog | None,
    now: int,
) -> Record:
    """Sign, then open the result as any node will: what cannot be opened is not written."""
    jws = sign_record(
        document, serial=serial, status=status, issued_at=now, key=signer.key, issuer=issuer
    )
    sponsor = registry.get(issuer) if issuer != AUTHORITY else None
    chain = [sponsor.jws] if sponsor is not None else []
    record = open_record({"record": jws, "chain": chain}, anchor, catalog)
    registry.accept(record)
    return record
