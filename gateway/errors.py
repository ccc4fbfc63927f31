"""The gateway's one error tree, grouped by trust boundary.

Every error carries a stable ``code``: it names the problem ``type`` over HTTP,
the ``reason`` in audit records and the exit message in the CLI, so callers
can branch on it without parsing prose. Mapping to HTTP status lives in one
place, :mod:`gateway.api.problems`.

    >>> try:
    ...     raise UnknownContract("no contract 'x.y'")
    ... except ContractError as exc:
    ...     exc.code
    'unknown-contract'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    code: ClassVar[str] = "gateway-error"
    title: ClassVar[str] = "Gateway error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.audited = False
        """Set by whoever recorded this refusal in the audit log, so it is recorded once."""

    def extensions(self) -> dict[str, Any]:
        """Extra members for the problem document (never secrets or payload data)."""
        return {}


# -- bad partner input -------------------------------------------------------


class InputError(GatewayError):
    """The request itself is unusable: syntax, size or parameters."""

    code = "bad-request"
    title = "Bad request"


class MalformedJSON(InputError):
    code = "malformed-json"
    title = "Body is not acceptable JSON"


class PayloadTooLarge(InputError):
    code = "payload-too-large"
    title = "Body too large"


class UnsupportedMediaType(InputError):
    code = "unsupported-media-type"
    title = "Unsupported content type"


class BodyTimeout(InputError):
    """The body did not arrive within ``http.body_read_timeout_s`` (a slow or stalled
    sender: one byte a second must not hold a connection and a handler for hours)."""

    code = "body-timeout"
    title = "Body not received in time"


class IncompleteBody(InputError):
    """The connection ended, or the framing broke, before the whole body arrived."""

    code = "incomplete-body"
    title = "Body incomplete"


class InvalidParameter(InputError):
    code = "invalid-parameter"
    title = "Invalid parameter"

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(detail)
        self.parameter = parameter

    def extensions(self) -> dict[str, Any]:
        return {"parameter": self.parameter}


class IdempotencyKeyReused(InputError):
    """The sender already used this ``Idempotency-Key`` for a different request."""

    code = "idempotency-key-reused"
    title = "Idempotency key already used for a different request"


class ContractError(GatewayError):
    """The payload or the contract it names does not fit the rules."""

    code = "contract-error"
    title = "Contract error"


class UnknownContract(ContractError):
    code = "unknown-contract"
    title = "Unknown contract or version"


@dataclass(frozen=True, slots=True)
class ContractProblem:
    """One defect of a contract document, located by JSON pointer into the document."""

    pointer: str
    message: str


class InvalidContract(ContractError):
    """A contract file is itself malformed (bad YAML, bad schema, wrong path)."""

    code = "invalid-contract"
    title = "Invalid contract file"

    def __init__(self, detail: str, problems: Sequence[ContractProblem] | None = None) -> None:
        super().__init__(detail)
        self.problems = list(problems) if problems else [ContractProblem("", detail)]

    def extensions(self) -> dict[str, Any]:
        return {"problems": [{"pointer": p.pointer, "message": p.message} for p in self.problems]}


class PushDelivery(GatewayError):
    """The participant takes delivery by webhook: there is nothing to pull."""

    code = "push-delivery"
    title = "Delivered by webhook"


class VersionExists(ContractError):
    code = "version-exists"
    title = "Contract version already registered"


class IncompatibleContract(ContractError):
    """A new version breaks the compatibility mode of its contract's history."""

    code = "incompatible-contract"
    title = "Contract version breaks compatibility"

    def __init__(self, ref: str, mode: StrEnum, failing: Sequence[tuple[str, Any]]) -> None:
        versions = ", ".join(version for version, _ in failing)
        super().__init__(f"{ref} is not {mode.value} compatible with {versions}")
        self.mode = mode
        self.failing = list(failing)

    def extensions(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "against": [
                {"version": version, "changes": [c.as_dict() for c in report.breaking(self.mode)]}
                for version, report in self.failing
            ],
        }


@dataclass(frozen=True, slots=True)
class Violation:
    """One way a payload breaks its contract, located by JSON pointer (RFC 6901)."""

    pointer: str
    keyword: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "keyword": self.keyword, "message": self.message}


class ContractViolation(ContractError):
    code = "contract-violation"
    title = "Payload violates the contract"

    def __init__(self, detail: str, violations: list[Violation]) -> None:
        super().__init__(detail)
        self.violations = violations

    def extensions(self) -> dict[str, Any]:
        return {"errors": [v.as_dict() for v in self.violations]}


class NoResponseContract(ContractError):
    """A request under a contract that declares no response contract."""

    code = "no-response-contract"
    title = "The contract declares no response"


class UnknownRequest(GatewayError):
    """A reply to a message the caller did not receive (lately) on this node."""

    code = "unknown-request"
    title = "No such request to reply to"


class RecipientNotAllowed(ContractError):
    code = "recipient-not-allowed"
    title = "Recipient is not a consumer of the contract"


class UnknownRecipient(ContractError):
    code = "unknown-recipient"
    title = "Recipient is not known to this node"


class AuthError(GatewayError):
    code = "auth-error"
    title = "Authentication or authorisation failed"


class Unauthenticated(AuthError):
    code = "unauthenticated"
    title = "Missing or invalid credentials"


class Forbidden(AuthError):
    code = "forbidden"
    title = "Not allowed"


class Throttled(GatewayError):
    """The participant is over a publish limit; the same request may succeed later."""

    code = "throttled"
    title = "Too many requests"
    reason: ClassVar[str] = "limit"
    """The ``reason`` of the ``message.throttled`` audit record."""

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s
        """Whole seconds until the request may succeed (the ``Retry-After`` header)."""


class RateLimited(Throttled):
    code = "rate-limited"
    title = "Publish rate exceeded"
    reason = "rate"


class QuotaExceeded(Throttled):
    code = "quota-exceeded"
    title = "Daily quota exceeded"
    reason = "quota"


class IdempotencyKeyInUse(GatewayError):
    """A request with the same ``Idempotency-Key`` is still in progress; retry shortly."""

    code = "idempotency-key-in-use"
    title = "A request with this idempotency key is in progress"

    retry_after_s: int = 1


class UnknownDeadLetter(InputError):
    """No entry at that partition and offset of the caller's dead-letter topic."""

    code = "unknown-dead-letter"
    title = "No such dead letter"


class NoAuditLog(GatewayError):
    """The node keeps audit events in its structured log only: nothing to search."""

    code = "no-audit-log"
    title = "This node keeps no audit log"


# -- failed verification -----------------------------------------------------


class RejectReason(StrEnum):
    """Why a received envelope was refused; each is a distinct audit reason."""

    MALFORMED = "malformed"
    FORBIDDEN_HEADER = "forbidden-header"
    UNKNOWN_KEY = "unknown-key"
    REVOKED_KEY = "revoked-key"
    RETIRED_KEY = "retired-key"
    ISSUED_IN_FUTURE = "issued-in-future"
    EXPIRED = "expired"
    REPLAYED = "replayed"
    DECRYPTION_FAILED = "decryption-failed"
    SIGNATURE_INVALID = "signature-invalid"
    RECIPIENT_MISMATCH = "recipient-mismatch"
    HEADER_MISMATCH = "header-mismatch"
    UNKNOWN_CONTRACT = "unknown-contract"
    SENDER_NOT_PRODUCER = "sender-not-producer"
    RECIPIENT_NOT_CONSUMER = "recipient-not-consumer"
    SENDER_NOT_ENTITLED = "sender-not-entitled"
    RECIPIENT_NOT_ENTITLED = "recipient-not-entitled"
    CONTRACT_VIOLATION = "contract-violation"
    MIGRATION_FAILED = "migration-failed"


class VerificationError(GatewayError):
    """An envelope failed a check; it is never delivered."""

    code = "verification-failed"
    title = "Envelope verification failed"

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason

    def extensions(self) -> dict[str, Any]:
        return {"reason": self.reason.value}


# -- retriable infrastructure ------------------------------------------------


class TransportError(GatewayError):
    """The broker could not be reached or did not acknowledge in time."""

    code = "broker-unavailable"
    title = "Message broker unavailable"

    retry_after_s: int = 5


class NodeError(GatewayError):
    """A command-line client could not reach a node, or the node refused the request
    (the detail carries the problem's title and detail)."""

    code = "node-error"
    title = "The node did not serve the request"


# -- misconfiguration --------------------------------------------------------


class ConfigError(GatewayError):
    code = "invalid-config"
    title = "Invalid configuration"


class KeyStoreError(ConfigError):
    code = "invalid-key"
    title = "Invalid or missing key"
