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
from gateway.contracts.views import ConsumerViews
from gateway.errors import ContractViolation, InvalidContract


def upgrade(
    catalog: ContractCatalog,
    contract_id: str,
    source: str,
    target: str,
    payload: Any,
    *,
    views: ConsumerViews | None = None,
    recipient: str | None = None,
) -> Any:
    """``payload`` of ``contract_id@source`` turned into a valid ``@target`` payload.

    With ``views`` and ``recipient``, the result is projected to what the recipient
    may receive under the target version and checked against that consumer view.
    """
    start, end = Version.parse(source), Version.parse(target)
    document = payload
    for contract in catalog.versions(contract_id):
        if start < contract.version <= end and contract.migration is not None:
            document = contract.migration.apply(document)
    pinned = catalog.resolve(f"{contract_id}@{end}")
    if views is not None and recipient is not None:
        projected = views.project(pinned, recipient, document)
        document = document if projected is None else projected
    try:
        if views is not None and recipient is not None:
            views.validator(pinned, recipient).validate(document, pinned.ref)
        else:
            pinned.validate(document)
    except ContractViolation as exc:
        raise InvalidContract(
            f"a {source} payload does not upgrade to {pinned.ref}: {exc.detail}"
        ) from exc
    return document
