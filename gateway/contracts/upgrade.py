"""Upgrading a payload along a contract's history to a consumer's pinned version.

Each step from one version to the next applies that version's migration, or,
where a version declares none, keeps the payload as it is; the result must
validate against the pinned version, or the upgrade fails.

    payload, version = upgrade(catalog, "health.patient-referral", "1.0.0", "1.1.0", payload)
"""

from __future__ import annotations

from typing import Any

from gateway.contracts.catalog import ContractCatalog
from gateway.contracts.model import Version
from gateway.errors import ContractViolation, InvalidContract


def upgrade(
    catalog: ContractCatalog, contract_id: str, source: str, target: str, payload: Any
) -> Any:
    """``payload`` of ``contract_id@source`` turned into a valid ``@target`` payload."""
    start, end = Version.parse(source), Version.parse(target)
    document = payload
    for contract in catalog.versions(contract_id):
        if start < contract.version <= end and contract.migration is not None:
            document = contract.migration.apply(document)
    pinned = catalog.resolve(f"{contract_id}@{end}")
    try:
        pinned.validate(document)
    except ContractViolation as exc:
        raise InvalidContract(
            f"a {source} payload does not upgrade to {pinned.ref}: {exc.detail}"
        ) from exc
    return document
