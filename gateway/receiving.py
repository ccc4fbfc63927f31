"""The receive pipeline: from an inbox record to a message fit for delivery.

Fails closed: a record becomes a :class:`ReceivedMessage` only when every
check passed; otherwise :class:`VerificationError` names the reason.

    receiver = Receiver(participant="socialtreasury", config=..., catalog=..., keys=...)
    message = receiver.receive(record)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from gateway.config import GatewayConfig
from gateway.contracts import ContractCatalog
from gateway.contracts.upgrade import upgrade
from gateway.crypto.envelope import open_envelope
from gateway.crypto.keys import KeyStore, VerifyKey
from gateway.errors import (
    ContractViolation,
    InvalidContract,
    MalformedJSON,
    PayloadTooLarge,
    RejectReason,
    UnknownContract,
    VerificationError,
)
from gateway.jsonparse import parse_json
from gateway.transport import InboundRecord


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    message_id: str
    sender: str
    recipient: str
    contract: str
    version: str
    issued_at: int
    payload: bytes
    correlation_id: str | None
    migrated_from: str | None = None
    """The version the sender used, when the payload was upgraded to a pinned one."""


class Receiver:
    def __init__(
        self, *, participant: str, config: GatewayConfig, catalog: ContractCatalog, keys: KeyStore
    ) -> None:
        self._participant = participant
        self._config = config
        self._catalog = catalog
        self._keys = keys
        self._private = keys.private(participant)
        local = config.local(participant)
        self._pins = {
            contract_id: catalog.resolve(f"{contract_id}@{version}").version
            for contract_id, version in (local.pinned_versions if local else {}).items()
        }

    def receive(self, record: InboundRecord) -> ReceivedMessage:
        # 1-6. Decrypt, verify the signature with the named sender's key, and
        #      check the signed recipient (gateway.crypto.envelope).
        opened = open_envelope(
            record.value,
            recipient=self._participant,
            keys=self._private,
            verify_key=self._verify_key,
        )
        b = opened.binding
        # 7. Headers are routing hints; they must agree with what was signed.
        expected = {
            "ce_id": b.message_id,
            "ce_source": b.sender,
            "ce_type": b.contract,
            "ce_recipient": b.recipient,
        }
        for name, value in expected.items():
            if record.header(name) != value:
                raise VerificationError(
                    RejectReason.HEADER_MISMATCH,
                    f"header {name} disagrees with the signed envelope",
                )
        if record.topic != self._config.inbox_topic(self._participant):
            raise VerificationError(RejectReason.RECIPIENT_MISMATCH, "read from a foreign inbox")
        # 8. The contract version exists and entitles both ends.
        try:
            contract = self._catalog.resolve(f"{b.contract}@{b.version}")
        except UnknownContract as exc:
            raise VerificationError(RejectReason.UNKNOWN_CONTRACT, exc.detail) from exc
        if b.sender not in contract.producers:
            raise VerificationError(
                RejectReason.SENDER_NOT_PRODUCER,
                f"'{b.sender}' is not a producer of {contract.ref}",
            )
        if b.recipient not in contract.consumers:
            raise VerificationError(
                RejectReason.RECIPIENT_NOT_CONSUMER,
                f"'{b.recipient}' is not a consumer of {contract.ref}",
            )
        # 9. Validate again: the receiver trusts its own contract copy, not the sender.
        http = self._config.http
        try:
            document = parse_json(
                opened.payload, max_bytes=http.max_body_bytes, max_depth=http.max_json_depth
            )
            contract.validate(document)
        except (MalformedJSON, PayloadTooLarge, ContractViolation) as exc:
            raise VerificationError(RejectReason.CONTRACT_VIOLATION, exc.detail) from exc
        message = ReceivedMessage(
            b.message_id,
            b.sender,
            b.recipient,
            b.contract,
            b.version,
            b.issued_at,
            opened.payload,
            record.header("ce_correlationid"),
        )
        # 10. A consumer pinned to a later version gets the payload upgraded to it.
        pinned = self._pins.get(b.contract)
        if pinned is None or pinned <= contract.version:
            return message
        return self._upgraded(message, document, str(pinned))

    def _upgraded(self, message: ReceivedMessage, document: Any, pinned: str) -> ReceivedMessage:
        try:
            upgraded = upgrade(self._catalog, message.contract, message.version, pinned, document)
        except InvalidContract as exc:
            raise VerificationError(RejectReason.MIGRATION_FAILED, exc.detail) from exc
        payload = json.dumps(upgraded, ensure_ascii=False, separators=(",", ":")).encode()
        return dataclasses.replace(
            message, version=pinned, payload=payload, migrated_from=message.version
        )

    def _verify_key(self, sender: str, kid: str) -> VerifyKey | None:
        keys = self._keys.public(sender)
        return keys.verify_key(kid) if keys is not None else None
