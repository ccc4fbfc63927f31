"""Contract versions in the registry topic: signed by their owner, taken in by every node.

When an owner registers a contract version on one node of a cluster (``POST
/v1/contracts/{id}/versions``), that node signs a *contract record* with the
owner's signing key and produces it to ``<prefix>registry``; every node
following the topic opens it and registers the version in its own catalog,
with the same checks (schema, examples, migration, compatibility with the
history) and writes it to its contracts directory. No restart anywhere.

A contract record is a compact JWS (``typ: gw-registry+jws``, ``iss``: the
owner's participant id or ``authority``) over::

    {"kind": "contract", "id": "health.patient-referral@1.2.0",
     "issued_at": 1795000000, "contract": {...the contract document...}}

It travels with the owner's own registry record as its chain (authority-
signed), so that it opens on its own, wherever compaction left the owner's
newer records. It holds when the authority signed it (a key of the anchor),
or when the chain shows an active agency listing the signing key, nothing
newer the node holds says otherwise (a suspension or a key revocation before
it was signed), and the issuer owns the contract (the owner the history
names; for a first version, the owner the document names). Versions are
immutable, so there is no serial: the same version again is nothing new,
and the same version with other content is refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.audit.log import AuditLog
from gateway.contracts.catalog import ContractCatalog
from gateway.contracts.document import parse_contract
from gateway.contracts.files import write_contract_file
from gateway.contracts.model import ContractVersion
from gateway.crypto.envelope import sign_compact
from gateway.crypto.jwk import SignKey, VerifyKey
from gateway.errors import GatewayError, VerificationError
from gateway.participants.document import Kind
from gateway.participants.registry import (
    AUTHORITY,
    TYP,
    RecordRefused,
    Registry,
    Status,
    check_signature,
    open_record,
    read_jws,
)

KEY_PREFIX = "contract:"
"""Kafka record keys of contract records: ``contract:<id>@<version>`` (one per version,
so compaction keeps every version)."""


@dataclass(frozen=True, slots=True)
class ContractRecord:
    contract: ContractVersion
    issuer: str
    issued_at: int
    jws: str
    chain: tuple[str, ...] = ()
    """The owner's own record (authority-signed); empty when the authority signed."""

    def bundle(self) -> dict[str, Any]:
        return {"record": self.jws, "chain": list(self.chain)}


def sign_contract(
    contract: ContractVersion,
    *,
    key: SignKey,
    issuer: str,
    issued_at: int,
    owner_record: str | None = None,
) -> ContractRecord:
    """``owner_record``: the owner's registry record (JWS), carried as the chain."""
    payload = {
        "kind": "contract",
        "id": contract.ref,
        "issued_at": issued_at,
        "contract": contract.document,
    }
    header = {"alg": key.alg, "kid": key.kid, "typ": TYP, "iss": issuer}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    jws = sign_compact(header, text.encode(), key).decode()
    chain = (owner_record,) if owner_record is not None else ()
    return ContractRecord(contract, issuer, issued_at, jws, chain)


def open_contract(
    bundle: Any, anchor: Mapping[str, VerifyKey], registry: Registry
) -> ContractRecord:
    """The contract record, if the authority signed it, or its owner did with a key its
    own record (in the chain, authority-signed) lists; :class:`RecordRefused` if not.

    The chain makes a record stand on its own: a node reading a compacted topic, where
    the owner's newer records come after it, still opens it. The newest record the node
    holds for the owner also counts: what was signed after a suspension, or with a key
    revoked since, is refused. (Ownership of the contract is checked on intake.)"""
    if not isinstance(bundle, dict) or set(bundle) != {"record", "chain"}:
        raise RecordRefused("malformed", "a contract bundle has 'record' and 'chain'")
    jws, chain = bundle["record"], bundle["chain"]
    if not isinstance(jws, str) or not isinstance(chain, list) or len(chain) > 1:
        raise RecordRefused("malformed", "'record' is a compact JWS and 'chain' at most one more")
    header, payload, signing_input, signature = read_jws(jws)
    issuer, kid = header["iss"], header["kid"]
    issued_at = payload.get("issued_at")
    if set(payload) != {"kind", "id", "issued_at", "contract"} or type(issued_at) is not int:
        raise RecordRefused("malformed", "a contract record holds kind, id, issued_at, contract")
    if issuer == AUTHORITY:
        if chain:
            raise RecordRefused("malformed", "an authority record carries no chain")
        key = anchor.get(kid)
        if key is None:
            raise RecordRefused("unknown-signer", f"no authority key {kid[:60]!r}")
    else:
        key = _owner_key(chain, anchor, registry, issuer, kid, issued_at)
    check_signature(key, header, signing_input, signature)
    try:
        key.check_issued_at(issued_at)
    except VerificationError as exc:
        raise RecordRefused("revoked-key", exc.detail) from None
    try:
        contract = parse_contract(payload["contract"])
    except GatewayError as exc:
        raise RecordRefused("malformed", f"the contract: {exc.detail[:200]}") from None
    if contract.ref != payload["id"]:
        raise RecordRefused("malformed", "the record's id is not its contract's")
    return ContractRecord(contract, issuer, issued_at, jws, tuple(chain))


def _owner_key(  # noqa: PLR0917 - one private call site
    chain: list[Any],
    anchor: Mapping[str, VerifyKey],
    registry: Registry,
    issuer: str,
    kid: str,
    issued_at: int,
) -> VerifyKey:
    if len(chain) != 1 or not isinstance(chain[0], str):
        raise RecordRefused("unknown-signer", f"signed by {issuer[:64]!r} without its own record")
    owner = open_record({"record": chain[0], "chain": []}, anchor)  # the authority signed it
    if owner.id != issuer or owner.participant.kind is not Kind.AGENCY:
        raise RecordRefused("unknown-signer", f"the chain is not agency {issuer[:64]}'s record")
    if owner.status is not Status.ACTIVE:
        raise RecordRefused("owner-inactive", f"{issuer} is {owner.status.value}")
    key = owner.participant.keys.verify_key(kid)
    if key is None:
        raise RecordRefused("unknown-signer", f"{issuer}'s record lists no key {kid[:60]!r}")
    newest = registry.get(issuer)
    if newest is not None and newest.serial > owner.serial:
        if newest.status is not Status.ACTIVE and issued_at >= newest.issued_at:
            raise RecordRefused("owner-inactive", f"signed after {issuer} was {newest.status}")
        listed = newest.participant.keys.verify_key(kid)
        if listed is None and issued_at >= newest.issued_at:
            raise RecordRefused("unknown-signer", f"signed after {issuer}'s record dropped {kid}")
        key = listed or key  # its revocation time, when the newer record revoked it
    return key


class ContractIntake:
    """Registers contract records from the topic in a node's catalog and directory."""

    def __init__(self, catalog: ContractCatalog, directory: Path, audit: AuditLog) -> None:
        self._catalog = catalog
        self._directory = directory
        self._audit = audit

    def take(self, record: ContractRecord) -> bool:
        """True when the version is new here; :class:`RecordRefused` when it may not be."""
        contract = self._catalog_owner_check(record)
        try:
            registered = self._catalog.register(
                contract, persist=lambda c: write_contract_file(self._directory, c)
            )
        except GatewayError as exc:
            raise RecordRefused("contract-refused", exc.detail[:300]) from None
        if registered.new:
            self._audit.record(
                "contract.registered",
                contract=contract.ref,
                owner=contract.owner,
                checked_against=[v for v, _ in registered.reports],
                by=record.issuer,
            )
        return registered.new

    def _catalog_owner_check(self, record: ContractRecord) -> ContractVersion:
        contract = record.contract
        if record.issuer == AUTHORITY:
            return contract
        history = self._catalog.versions(contract.id) if contract.id in self._catalog.ids() else []
        owner = history[-1].owner if history else contract.owner
        if record.issuer != owner:
            raise RecordRefused(
                "not-owner", f"{record.issuer} signed {contract.ref}, whose owner is {owner}"
            )
        return contract
