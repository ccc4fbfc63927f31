"""The node's metrics, by the names the dashboards use, with bounded labels.

Every label value comes from a small set the node controls: contract ids from
the catalog (anything else is ``unknown``), hosted participants, outcome and
reason enums, and pointer classes of validation failures (array indices as
``*``, members the contract does not declare as one ``(undeclared)`` class, at
most :data:`MAX_POINTER_CLASSES` per contract). Never a payload value.

    metrics = NodeMetrics(known=lambda contract_id: contract_id in catalog_ids)
    metrics.published("health.patient-referral", "accepted")
    text = metrics.registry.render()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path

from gateway.errors import (
    ConfigError,
    ContractViolation,
    GatewayError,
    InputError,
    Throttled,
    TransportError,
)
from gateway.metrics import Registry

UNKNOWN = "unknown"
ROOT_CLASS = "(root)"
UNDECLARED_CLASS = "(undeclared)"
OTHER_CLASS = "(other)"
MAX_POINTER_CLASSES = 64
"""Distinct pointer classes counted per contract; later ones count as ``(other)``."""
_MAX_DEPTH = 8
_MAX_CLASS_CHARS = 200


class PublishOutcome(StrEnum):
    ACCEPTED = "accepted"
    """The broker acknowledged every recipient's record."""
    REJECTED = "rejected"
    """The body: not JSON, too large, or not what the contract says."""
    REFUSED = "refused"
    """The sender, the contract or the recipients: not allowed, unknown, suspended."""
    THROTTLED = "throttled"
    DEDUPLICATED = "deduplicated"
    """A retry with an Idempotency-Key answered from the store: nothing sent again."""
    UNAVAILABLE = "unavailable"
    """The broker did not acknowledge in time."""


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    """Handed to the participant (pulled, streamed, pushed, or a reply) for the first time."""
    ACKNOWLEDGED = "acknowledged"
    RELEASED = "released"
    """Given back (nack, visibility timeout): it will be handed out again."""
    DEAD_LETTERED = "dead_lettered"
    DUPLICATE = "duplicate"
    """Read again after it was settled: suppressed, not delivered twice."""


class CryptoOperation(StrEnum):
    SIGN = "sign"
    ENCRYPT = "encrypt"
    DECRYPT = "decrypt"
    VERIFY = "verify"
    DECRYPT_FAILED = "decrypt_failed"
    VERIFY_FAILED = "verify_failed"


def publish_outcome(exc: GatewayError) -> PublishOutcome:
    """The outcome a publish refused with ``exc`` counts as."""
    if isinstance(exc, Throttled):
        return PublishOutcome.THROTTLED
    if isinstance(exc, TransportError):
        return PublishOutcome.UNAVAILABLE
    if isinstance(exc, InputError | ContractViolation):
        return PublishOutcome.REJECTED
    return PublishOutcome.REFUSED


def pointer_class(pointer: str, declared: frozenset[str]) -> str:
    """The class of a violation's JSON pointer: array indices as ``*``; a member name the
    contract does not declare (made up by the sender: payload) makes it ``(undeclared)``.

    >>> pointer_class("/patient/contacts/3/phone", frozenset({"patient", "contacts", "phone"}))
    '/patient/contacts/*/phone'
    """
    if not pointer:
        return ROOT_CLASS
    tokens = pointer.split("/")[1:]
    kept = []
    for token in tokens[:_MAX_DEPTH]:
        if token.isascii() and token.isdigit():
            kept.append("*")
        elif token in declared:
            kept.append(token)
        else:
            return UNDECLARED_CLASS
    if len(tokens) > _MAX_DEPTH:
        kept.append("...")
    return ("/" + "/".join(kept))[:_MAX_CLASS_CHARS]


class NodeMetrics:
    """The gateway's metric families in one node's registry, and what moves them."""

    def __init__(self, *, known: Callable[[str], bool] = lambda _: False) -> None:
        """``known``: whether a contract id is in the catalog (else it counts as unknown)."""
        self._known = known
        self._classes: dict[str, set[str]] = {}
        r = self.registry = Registry()
        self.publishes = r.counter(
            "gateway_publishes_total",
            "Publish requests by contract and outcome.",
            ("contract", "outcome"),
        )
        self.deliveries = r.counter(
            "gateway_deliveries_total",
            "Messages on the receiving side by contract and outcome.",
            ("contract", "outcome"),
        )
        self.validation_failures = r.counter(
            "gateway_validation_failures_total",
            "Contract violations in refused publishes, by contract and JSON pointer class.",
            ("contract", "pointer_class"),
        )
        self.publish_ack = r.histogram(
            "gateway_publish_ack_seconds",
            "Seconds from handing a publish's records to Kafka to the broker's acknowledgement.",
        )
        self.end_to_end = r.histogram(
            "gateway_end_to_end_seconds",
            "Seconds from a message's publish (its issue time) to its delivery on this node.",
            ("contract",),
        )
        self.inbox_lag = r.gauge(
            "gateway_inbox_lag",
            "Records in a hosted participant's inbox topic not yet read by this node.",
            ("participant",),
        )
        self.dead_letters = r.counter(
            "gateway_dead_letters_total",
            "Envelopes sent to a participant's dead-letter topic, by reason.",
            ("participant", "reason"),
        )
        self.crypto = r.counter(
            "gateway_crypto_operations_total",
            "Envelope signatures, encryptions, decryptions and verifications (and failures).",
            ("operation",),
        )

    def contract(self, name: str) -> str:
        """The label of a contract named by a caller or a header: its id, if the catalog
        knows it (``id@version`` counts as ``id``); otherwise ``unknown``."""
        contract_id = name.partition("@")[0]
        return contract_id if self._known(contract_id) else UNKNOWN

    def published(self, contract: str, outcome: PublishOutcome, count: int = 1) -> None:
        self.publishes.inc(self.contract(contract), outcome.value, amount=count)

    def delivered(self, contract: str, outcome: DeliveryOutcome) -> None:
        self.deliveries.inc(self.contract(contract), outcome.value)

    def validation_failed(self, contract: str, classes: Iterable[str]) -> None:
        label = self.contract(contract)
        seen = self._classes.setdefault(label, set())
        for found in classes:
            name = OTHER_CLASS if found not in seen and len(seen) >= MAX_POINTER_CLASSES else found
            seen.add(name)
            self.validation_failures.inc(label, name)

    def crypto_done(self, operation: CryptoOperation, count: int = 1) -> None:
        self.crypto.inc(operation.value, amount=count)


def scrape_token(path: Path | None) -> str | None:
    """The bearer token ``/metrics`` asks for, from ``http.metrics_token_file``: one line
    of 16 to 512 visible ASCII characters."""
    if path is None:
        return None
    try:
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"http.metrics_token_file {path}: cannot read it as ASCII") from exc
    if not 16 <= len(token) <= 512 or not all("!" <= c <= "~" for c in token):
        raise ConfigError(
            f"http.metrics_token_file {path}: one line of 16 to 512 visible ASCII characters"
        )
    return token
