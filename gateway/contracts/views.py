"""Consumer views: what one consumer of a contract version may receive.

A contract may list, per consumer, the JSON pointers it may receive
(``consumers: [{id: acme-analytics, fields: [...]}]``). The sender projects
each payload to those members before signing and encrypting for that
recipient, so the recipient never holds the rest, not even as ciphertext;
both ends validate the projection against the consumer view of the schema
(:func:`gateway.contracts.projection.consumer_view`), compiled once here.

    views = ConsumerViews()
    projected = views.project(contract, "acme-analytics", payload)
    views.validator(contract, "acme-analytics").validate(projected, contract.ref)
"""

from __future__ import annotations

from typing import Any

from gateway.contracts.model import ContractVersion
from gateway.contracts.projection import consumer_view, project
from gateway.contracts.validation import PayloadValidator
from gateway.errors import ContractViolation


class ViewValidator:
    def __init__(self, validator: PayloadValidator) -> None:
        self._validator = validator

    def validate(self, document: Any, ref: str) -> None:
        violations = self._validator.violations(document)
        if violations:
            raise ContractViolation(
                f"payload violates {ref} in {len(violations)} place(s)", violations
            )


class ConsumerViews:
    """Compiled consumer views, by contract version and recipient."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, str], ViewValidator] = {}

    def validator(self, contract: ContractVersion, recipient: str) -> ViewValidator:
        key = (contract.ref, recipient)
        if key not in self._compiled:
            fields = contract.consumer_fields.get(recipient)
            schema = contract.schema if fields is None else consumer_view(contract.schema, fields)
            validator = contract.validator if fields is None else PayloadValidator(schema)
            self._compiled[key] = ViewValidator(validator)
        return self._compiled[key]

    @staticmethod
    def project(contract: ContractVersion, recipient: str, document: Any) -> Any | None:
        """The projection for ``recipient``, or None when it may receive everything."""
        fields = contract.consumer_fields.get(recipient)
        return None if fields is None else project(document, fields)
