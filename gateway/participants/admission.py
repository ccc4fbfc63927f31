"""Who may take part right now, and in what: the seam between routing and the registry.

Without a registry every participant a node knows takes part in whatever its
contracts list (:data:`OPEN`). With one, :class:`gateway.participants.follow.RegistryView`
answers from the signed records: a participant must hold an active record
*and* that record must ask for the contract, in that role, over a version
range that admits the version at hand. The contract's own producer and
consumer lists still apply on top: both the owner and the registry must agree.
"""

from __future__ import annotations

from typing import Protocol

from gateway.contracts.model import ContractVersion
from gateway.participants.document import Role


class Admission(Protocol):
    def admitted(self, participant: str) -> bool:
        """An active participant (suspended and revoked ones are not)."""
        ...

    def entitled(self, participant: str, contract: ContractVersion, role: Role) -> bool:
        """Admitted, and its record asks for this contract version in this role."""
        ...

    def asks(self, participant: str, contract: ContractVersion, role: Role) -> bool:
        """Its record asks for this contract version in this role, whatever its status
        (a suspended recipient's messages wait only if it may receive them at all)."""
        ...


class _Open:
    """No registry: the contracts' producer and consumer lists decide alone."""

    def admitted(self, participant: str) -> bool:
        return True

    def entitled(self, participant: str, contract: ContractVersion, role: Role) -> bool:
        return True

    def asks(self, participant: str, contract: ContractVersion, role: Role) -> bool:
        return True


OPEN: Admission = _Open()
