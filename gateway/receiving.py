"""The receive pipeline: from an inbox record to a message fit for delivery.

Fails closed: a record becomes a :class:`ReceivedMessage` only when every
check passed; otherwise :class:`VerificationError` names the reason, one
distinct reason per check, so the audit trail says exactly what was refused.

    receiver = Receiver(participant="socialtreasury", config=..., catalog=..., keys=...)
    message = receiver.receive(record)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.cloudevents import SAFE_TOKEN
from gateway.config import GatewayConfig
from gateway.contracts import ContractCatalog, ContractVersion
from gateway.contracts.upgrade import upgrade
from gateway.contracts.views import ConsumerViews
from gateway.crypto.envelope import Binding, Opened, Opener
from gateway.crypto.jwk import VerifyKey
from gateway.crypto.keys import KeyStore
from gateway.errors import (
    ContractViolation,
    InvalidContract,
    MalformedJSON,
    PayloadTooLarge,
    RejectReason,
    UnknownContract,
    VerificationError,
)
from gateway.instruments import CryptoOperation, NodeMetrics
from gateway.jsonparse import parse_json
from gateway.participants.admission import OPEN, Admission
from gateway.participants.document import Role
from gateway.tracing import valid
from gateway.transport import InboundRecord

_FAILED_OPENING = {
    RejectReason.DECRYPTION_FAILED: (CryptoOperation.DECRYPT_FAILED,),
    RejectReason.SIGNATURE_INVALID: (CryptoOperation.DECRYPT, CryptoOperation.VERIFY_FAILED),
    RejectReason.RECIPIENT_MISMATCH: (CryptoOperation.DECRYPT, CryptoOperation.VERIFY_FAILED),
}
"""The crypto operations a refusal while opening an envelope stands for; other refusals
(malformed, unknown key, forbidden header) are counted as dead-letter reasons only."""


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
    traceparent: str | None = None
    """The publish span's W3C trace context from the record's headers (routing metadata,
    not signed; None when absent or not a valid one): the parent of the delivery."""
    sent_at: float | None = None
    """When the sending node issued it, from ``ce_time`` (sub-second, unsigned), else
    the signed ``issued_at``: the start of the end-to-end latency."""


def _never_seen(_message_id: str) -> bool:
    return False


class Receiver:
    def __init__(
        self,
        *,
        participant: str,
        config: GatewayConfig,
        catalog: ContractCatalog,
        keys: KeyStore,
        already_settled: Callable[[str], bool] = _never_seen,
        clock: Callable[[], float] = time.time,
        admission: Admission = OPEN,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self._participant = participant
        self._metrics = metrics or NodeMetrics()
        self._admission = admission
        self._config = config
        self._catalog = catalog
        self._keys = keys
        self._opener = Opener(
            keys.private(participant).decryption, cache_size=config.crypto.cek_cache_size
        )
        self._already_settled = already_settled
        self._clock = clock
        self._views = ConsumerViews()
        local = config.local(participant)
        self._pins = {
            contract_id: catalog.resolve(f"{contract_id}@{version}").version
            for contract_id, version in (local.pinned_versions if local else {}).items()
        }

    def receive(self, record: InboundRecord) -> ReceivedMessage:
        # 1-6. Decrypt, verify the signature with the named sender's key, and
        #      check the signed recipient (gateway.crypto.envelope).
        opened = self._open(record)
        b = opened.binding
        self._check_routing(record, b)
        # 7. The signing key was valid when the message was issued.
        self._check_key(opened)
        # 8. Freshness: not from the future (beyond clock skew), not expired.
        self._check_time(b)
        # 9. Not a replay of a message this participant already settled.
        if self._already_settled(b.message_id):
            raise VerificationError(
                RejectReason.REPLAYED, f"message {b.message_id} was already delivered"
            )
        # 10. The contract version exists and entitles both ends.
        contract = self._contract(b)
        # 11. Validate again, against what this recipient may receive.
        document = self._validate(contract, opened.payload)
        message = ReceivedMessage(
            b.message_id,
            b.sender,
            b.recipient,
            b.contract,
            b.version,
            b.issued_at,
            opened.payload,
            self._correlation(record),
            traceparent=_traceparent(record),
            sent_at=_sent_at(record, b.issued_at),
        )
        # 12. A consumer pinned to a later version gets the payload upgraded to it.
        pinned = self._pins.get(b.contract)
        if pinned is None or pinned <= contract.version:
            return message
        return self._upgraded(message, document, str(pinned))

    def _open(self, record: InboundRecord) -> Opened:
        try:
            opened = self._opener.open(
                record.value, recipient=self._participant, verify_key=self._verify_key
            )
        except VerificationError as exc:
            for operation in _FAILED_OPENING.get(exc.reason, ()):
                self._metrics.crypto_done(operation)
            raise
        self._metrics.crypto_done(CryptoOperation.DECRYPT)
        self._metrics.crypto_done(CryptoOperation.VERIFY)
        return opened

    @staticmethod
    def _correlation(record: InboundRecord) -> str | None:
        """The correlation id header: routing metadata, not signed, so held to the form a
        publish accepts (it ends up in webhook headers and reply lookups)."""
        value = record.header("ce_correlationid")
        if value is not None and not SAFE_TOKEN.fullmatch(value):
            raise VerificationError(
                RejectReason.FORBIDDEN_HEADER, "ce_correlationid is not a correlation id"
            )
        return value

    def _check_routing(self, record: InboundRecord, b: Binding) -> None:
        """Headers are routing hints; they must agree with what was signed."""
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

    @staticmethod
    def _check_key(opened: Opened) -> None:
        opened.verify_key.check_issued_at(opened.binding.issued_at)

    def _check_time(self, b: Binding) -> None:
        now, delivery = self._clock(), self._config.delivery
        if b.issued_at > now + delivery.max_clock_skew_s:
            raise VerificationError(
                RejectReason.ISSUED_IN_FUTURE, f"issued {b.issued_at - now:.0f} s in the future"
            )
        if b.issued_at < now - delivery.max_age_s:
            raise VerificationError(
                RejectReason.EXPIRED,
                f"issued {now - b.issued_at:.0f} s ago, older than {delivery.max_age_s:.0f} s",
            )

    def _contract(self, b: Binding) -> ContractVersion:
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
        self._check_entitled(b, contract)
        return contract

    def _check_entitled(self, b: Binding, contract: ContractVersion) -> None:
        """The registry, as this node sees it, agrees too: a node with an older view (or a
        rogue one) cannot route past a sender's suspension or beyond what a record asks
        for. A recipient that is itself suspended but asks for this contract version is
        not refused here: its messages wait, unread (its inbox answers 403), until it is
        reinstated."""
        admission = self._admission
        if not admission.entitled(b.sender, contract, Role.PUBLISH):
            raise VerificationError(
                RejectReason.SENDER_NOT_ENTITLED,
                f"the registry does not entitle '{b.sender}' to publish {contract.ref}",
            )
        if not admission.asks(b.recipient, contract, Role.SUBSCRIBE):
            raise VerificationError(
                RejectReason.RECIPIENT_NOT_ENTITLED,
                f"the registry does not entitle '{b.recipient}' to receive {contract.ref}",
            )

    def _validate(self, contract: ContractVersion, payload: bytes) -> Any:
        """The receiver trusts its own contract copy, not the sender, and checks the
        consumer view when the contract limits the fields this recipient receives."""
        http = self._config.http
        try:
            document = parse_json(
                payload, max_bytes=http.max_body_bytes, max_depth=http.max_json_depth
            )
            self._views.validator(contract, self._participant).validate(document, contract.ref)
        except (MalformedJSON, PayloadTooLarge, ContractViolation) as exc:
            raise VerificationError(RejectReason.CONTRACT_VIOLATION, exc.detail) from exc
        return document

    def _upgraded(self, message: ReceivedMessage, document: Any, pinned: str) -> ReceivedMessage:
        try:
            upgraded = upgrade(
                self._catalog,
                message.contract,
                message.version,
                pinned,
                document,
                views=self._views,
                recipient=self._participant,
            )
        except InvalidContract as exc:
            raise VerificationError(RejectReason.MIGRATION_FAILED, exc.detail) from exc
        payload = json.dumps(upgraded, ensure_ascii=False, separators=(",", ":")).encode()
        return dataclasses.replace(
            message, version=pinned, payload=payload, migrated_from=message.version
        )

    def _verify_key(self, sender: str, kid: str) -> VerifyKey | None:
        keys = self._keys.public(sender)
        return keys.verify_key(kid) if keys is not None else None


def _traceparent(record: InboundRecord) -> str | None:
    """The trace context header if it is a valid one: an invalid one is not a reason to
    refuse a verified message, only to start a new trace at delivery (W3C: restart)."""
    value = record.header("traceparent")
    return value if value is not None and valid(value) else None


def _sent_at(record: InboundRecord, issued_at: int) -> float:
    """``ce_time`` if it is a time within a second of the signed issue time, else that."""
    text = record.header("ce_time")
    if text is not None:
        with contextlib.suppress(ValueError):
            sent = datetime.fromisoformat(text).timestamp()
            if abs(sent - issued_at) <= 1:
                return sent
    return float(issued_at)
