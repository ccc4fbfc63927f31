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

It holds when the authority signed it (a key of the anchor), or when the
issuer is admitted in the node's registry right now, its record lists the
signing key, and the issuer owns the contract (the owner the history names;
for a first version, the owner the document names). Versions are immutable,
so there is no serial: the same version again is nothing new, and the same
version with other content is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
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
from gateway.participants.registry import (
    AUTHORITY,
    TYP,
    RecordRefused,
    check_signature,
    read_jws,
)

KEY_PREFIX = "contract:"
"""Kafka record keys of contract records: ``contract:<id>@<version>`` (one per version,
so compaction keeps every version)."""

SigningKeyOf = Callable[[str, str], VerifyKey | None]
"""(participant, kid) -> the key, when that participant is admitted and its record lists it."""


@dataclass(frozen=True, slots=True)
class ContractRecord:
    contract: ContractVersion
    issuer: str
    issued_at: int
    jws: str

    def bundle(self) -> dict[str, Any]:
        return {"record": self.jws, "chain": []}


def sign_contract(
    contract: ContractVersion, *, key: SignKey, issuer: str, issued_at: int
) -> ContractRecord:
    payload = {
        "kind": "contract",
        "id": contract.ref,
        "issued_at": issued_at,
        "contract": contract.document,
    }
    header = {"alg": key.alg, "kid": key.kid, "typ": TYP, "iss": issuer}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    jws = sign_compact(header, text.encode(), key).decode()
    return ContractRecord(contract, issuer, issued_at, jws)


def open_contract(
    bundle: Any, anchor: Mapping[str, VerifyKey], signing_key_of: SigningKeyOf
) -> ContractRecord:
    """The contract record, if its signer is the authority or an admitted participant
    listing the key; :class:`RecordRefused` otherwise (ownership is checked on intake)."""
    if (
        not isinstance(bundle, dict)
        or bundle.get("chain") != []
        or set(bundle)
        != {
            "record",
            "chain",
        }
    ):
        raise RecordRefused("malformed", "a contract bundle has 'record' and an empty 'chain'")
    jws = bundle["record"]
    if not isinstance(jws, str):
        raise RecordRefused("malformed", "'record' is a compact JWS")
    header, payload, signing_input, signature = read_jws(jws)
    issuer, kid = header["iss"], header["kid"]
    key = anchor.get(kid) if issuer == AUTHORITY else signing_key_of(issuer, kid)
    if key is None:
        raise RecordRefused(
            "unknown-signer", f"{issuer[:64]!r} is not admitted with a key {kid[:60]!r}"
        )
    check_signature(key, header, signing_input, signature)
    if (
        set(payload) != {"kind", "id", "issued_at", "contract"}
        or type(payload["issued_at"]) is not int
    ):
        raise RecordRefused("malformed", "a contract record holds kind, id, issued_at, contract")
    try:
        key.check_issued_at(payload["issued_at"])
        contract = parse_contract(payload["contract"])
    except VerificationError as exc:
        raise RecordRefused("revoked-key", exc.detail) from None
    except GatewayError as exc:
        raise RecordRefused("malformed", f"the contract: {exc.detail[:200]}") from None
    if contract.ref != payload["id"]:
        raise RecordRefused("malformed", "the record's id is not its contract's")
    return ContractRecord(contract, issuer, payload["issued_at"], jws)


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
