"""The publish pipeline: check, sign, encrypt per recipient, and hand to Kafka.

A publish returns only after the broker acknowledged the record of every
recipient (``acks=all``); anything refused before that leaves nothing in Kafka,
only an audit record.

    router = Router(config=..., catalog=..., keys=..., publisher=..., audit=...)
    accepted = await router.publish(PublishRequest(sender="minhealth",
        contract="health.patient-referral", body=b'{...}'))
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from gateway.audit import AuditLog, digest
from gateway.cloudevents import event_headers
from gateway.config import GatewayConfig
from gateway.contracts import ContractCatalog, ContractVersion
from gateway.contracts.views import ConsumerViews
from gateway.crypto.envelope import Binding, Sealer
from gateway.crypto.keys import KeyStore
from gateway.errors import (
    ContractViolation,
    Forbidden,
    GatewayError,
    PayloadTooLarge,
    RecipientNotAllowed,
    UnknownRecipient,
)
from gateway.ids import new_message_id
from gateway.instruments import (
    CryptoOperation,
    NodeMetrics,
    PublishOutcome,
    pointer_class,
    publish_outcome,
)
from gateway.jsonparse import parse_json
from gateway.participants.admission import OPEN, Admission
from gateway.participants.document import Role
from gateway.tracing import Span, Tracer
from gateway.transport import OutboundRecord, Publisher

_MAX_POINTERS = 50
_MAX_POINTER = 200
"""Violations named in a ``message.rejected`` record at most, and characters of each."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishRequest:
    sender: str
    contract: str
    """``id`` (latest version) or ``id@version``."""
    body: bytes
    to: Sequence[str] = ()
    """Explicit recipients; empty means every consumer of the contract."""
    ordering_key: str | None = None
    correlation_id: str | None = None
    traceparent: str | None = None
    """The caller's W3C trace context: the parent of this publish's span."""
    message_id: str | None = None
    """Chosen by the caller (a request waits for replies to it); default: a new one."""
    parsed: tuple[Any] | None = None
    """``(payload,)`` when the caller already parsed ``body``'s value with
    :func:`~gateway.jsonparse.parse_json` under the node's limits (a batch item: the
    batch document was parsed once); ``body`` must be its compact serialisation."""


@dataclass(frozen=True, slots=True)
class Accepted:
    message_id: str
    contract: str
    recipients: tuple[str, ...]


class Router:
    def __init__(
        self,
        *,
        config: GatewayConfig,
        catalog: ContractCatalog,
        keys: KeyStore,
        publisher: Publisher,
        audit: AuditLog,
        clock: Callable[[], float] = time.time,
        admission: Admission = OPEN,
        metrics: NodeMetrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        """``admission`` says whom the registry lets take part now, and in what."""
        self._admission = admission
        self._metrics = metrics or NodeMetrics()
        self._tracer = tracer or Tracer()
        self._config = config
        self._catalog = catalog
        self._keys = keys
        self._publisher = publisher
        self._audit = audit
        self._clock = clock
        crypto = config.crypto
        self._sealer = Sealer(reuse_messages=crypto.cek_reuse_messages, reuse_s=crypto.cek_reuse_s)
        self._views = ConsumerViews()
        self._names: dict[str, frozenset[str]] = {}

    async def publish(self, request: PublishRequest) -> Accepted:
        message_id = request.message_id or new_message_id()
        span = self._tracer.start("publish", parent=request.traceparent, sender=request.sender)
        # Log lines while publishing (a broker that does not answer) name the trace.
        with structlog.contextvars.bound_contextvars(trace_id=span.context.trace_id):
            try:
                contract, payload, recipients = self._admit(request)
                records = self._envelopes(
                    message_id, request, contract, payload, recipients, span=span
                )
                await self._acknowledged(records)
            except GatewayError as exc:
                self._refused(message_id, request, exc, span)
                raise
            except BaseException:
                # Cancelled (the client went away mid-publish) or a fault: the span
                # still ends, so an exporter shows what became of the publish.
                span.end(error="internal")
                raise
            self._accepted(message_id, request, contract, recipients, span)
        return Accepted(message_id, contract.ref, recipients)

    async def _acknowledged(self, records: list[OutboundRecord]) -> None:
        """Hand ``records`` to Kafka and wait for the broker's acknowledgement (timed)."""
        started = time.perf_counter()
        await self._publisher.publish(records)
        self._metrics.publish_ack.observe(time.perf_counter() - started)

    def _accepted(
        self,
        message_id: str,
        request: PublishRequest,
        contract: ContractVersion,
        recipients: tuple[str, ...],
        span: Span,
    ) -> None:
        self._audit.record(
            "message.accepted",
            message_id=message_id,
            contract=contract.ref,
            sender=request.sender,
            recipients=list(recipients),
            payload_sha256=digest(request.body),
            payload_size=len(request.body),
            trace_id=span.context.trace_id,
        )
        self._metrics.published(contract.id, PublishOutcome.ACCEPTED)
        span.end()

    async def publish_batch(
        self, requests: Sequence[PublishRequest]
    ) -> list[Accepted | GatewayError]:
        """Publish several messages with one wait for the broker: each is checked, signed
        and sealed on its own (a refusal is that item's result, audited as usual), then
        every accepted item's records go to Kafka together and are acknowledged
        together. If the broker does not acknowledge them, every accepted item fails
        with that error (some of its records may have reached Kafka: retry them with an
        Idempotency-Key, whose derived id makes a second copy a duplicate)."""
        results: list[Accepted | GatewayError] = []
        pending: list[tuple[int, str, PublishRequest, ContractVersion, tuple[str, ...], Span]] = []
        records: list[OutboundRecord] = []
        for request in requests:
            message_id = request.message_id or new_message_id()
            span = self._tracer.start("publish", parent=request.traceparent, sender=request.sender)
            try:
                contract, payload, recipients = self._admit(request)
                records += self._envelopes(
                    message_id, request, contract, payload, recipients, span=span
                )
            except GatewayError as exc:
                self._refused(message_id, request, exc, span)
                results.append(exc)
                continue
            pending.append((len(results), message_id, request, contract, recipients, span))
            results.append(Accepted(message_id, contract.ref, recipients))
        if not records:
            return results
        try:
            await self._acknowledged(records)
        except GatewayError as exc:
            for index, message_id, request, _, _, span in pending:
                self._refused(message_id, request, exc, span)
                results[index] = exc
            return results
        for _, message_id, request, contract, recipients, span in pending:
            self._accepted(message_id, request, contract, recipients, span)
        return results

    def _admit(self, request: PublishRequest) -> tuple[ContractVersion, Any, tuple[str, ...]]:
        # 1. The contract exists and the sender is one of its producers.
        contract = self._catalog.resolve(request.contract)
        if not self._admission.admitted(request.sender):
            raise Forbidden(f"'{request.sender}' is not an active participant in the registry")
        if request.sender not in contract.producers:
            raise Forbidden(f"'{request.sender}' is not a producer of {contract.ref}")
        if not self._admission.entitled(request.sender, contract, Role.PUBLISH):
            raise Forbidden(
                f"'{request.sender}' has no registry record entitling it to publish {contract.ref}"
            )
        # 2. The body is bounded, well-formed JSON that satisfies the contract.
        http = self._config.http
        if request.parsed is None:
            payload = parse_json(
                request.body, max_bytes=http.max_body_bytes, max_depth=http.max_json_depth
            )
        elif len(request.body) > http.max_body_bytes:
            raise PayloadTooLarge(
                f"payload is {len(request.body)} bytes; the limit is {http.max_body_bytes}"
            )
        else:
            (payload,) = request.parsed
        contract.validate(payload)
        # 3. Every recipient is an entitled consumer whose keys this node knows.
        return contract, payload, self._recipients(contract, request.to)

    def _recipients(self, contract: ContractVersion, to: Sequence[str]) -> tuple[str, ...]:
        admission = self._admission
        active = tuple(
            c for c in sorted(contract.consumers) if admission.entitled(c, contract, Role.SUBSCRIBE)
        )
        wanted = tuple(dict.fromkeys(to)) or active
        if not wanted:
            raise RecipientNotAllowed(
                f"no consumer of {contract.ref} is active in the registry and entitled to it"
            )
        for recipient in wanted:
            if recipient not in contract.consumers:
                raise RecipientNotAllowed(f"'{recipient[:64]}' is not a consumer of {contract.ref}")
            if not admission.admitted(recipient):
                raise RecipientNotAllowed(f"'{recipient}' is not an active participant")
            if recipient not in active:
                raise RecipientNotAllowed(
                    f"'{recipient}' has no registry record entitling it to receive {contract.ref}"
                )
            if self._keys.public(recipient) is None:
                raise UnknownRecipient(f"no keys are known for recipient '{recipient}'")
        return wanted

    def _envelopes(
        self,
        message_id: str,
        request: PublishRequest,
        contract: ContractVersion,
        payload: Any,
        recipients: tuple[str, ...],
        *,
        span: Span,
    ) -> list[OutboundRecord]:
        now = self._clock()
        signer = self._keys.private(request.sender).signing
        key = (request.ordering_key or message_id).encode()
        records = []
        for recipient in recipients:
            public = self._keys.public(recipient)
            if public is None:  # checked in _recipients; keys cannot vanish in between
                raise UnknownRecipient(f"no keys are known for recipient '{recipient}'")
            binding = Binding(
                message_id, request.sender, recipient, contract.id, str(contract.version), int(now)
            )
            body = self._body_for(contract, recipient, payload, request.body)
            value = self._sealer.seal(
                body, binding, signer=signer, recipient_key=public.encryption[0]
            )
            headers = event_headers(
                message_id=message_id,
                sender=request.sender,
                recipient=recipient,
                contract=contract.id,
                dataschema=contract.dataschema,
                time=datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
                correlation_id=request.correlation_id,
                traceparent=str(span.context),
            )
            records.append(OutboundRecord(self._config.inbox_topic(recipient), key, value, headers))
        # One JWS and one JWE per recipient.
        self._metrics.crypto_done(CryptoOperation.SIGN, len(records))
        self._metrics.crypto_done(CryptoOperation.ENCRYPT, len(records))
        return records

    def _body_for(
        self, contract: ContractVersion, recipient: str, payload: Any, body: bytes
    ) -> bytes:
        """The exact published bytes, or the projection this recipient may receive.

        A projection is checked against the recipient's consumer view before it is
        signed: the sender never signs what the recipient would refuse."""
        projected = self._views.project(contract, recipient, payload)
        if projected is None:
            return body
        self._views.validator(contract, recipient).validate(projected, contract.ref)
        return json.dumps(projected, ensure_ascii=False, separators=(",", ":")).encode()

    def _declared(self, name: str) -> frozenset[str]:
        """The member names the contract's schema declares, as pointer tokens."""
        try:
            contract = self._catalog.resolve(name)
        except GatewayError:
            return frozenset()
        names = self._names.get(contract.ref)
        if names is None:
            names = self._names[contract.ref] = frozenset(_schema_names(contract.schema))
        return names

    def _refused(
        self, message_id: str, request: PublishRequest, exc: GatewayError, span: Span
    ) -> None:
        fields: dict[str, object] = {}
        if isinstance(exc, ContractViolation):
            # Bounded: a body crafted to fail everywhere must not make a huge record.
            declared = self._declared(request.contract)
            pointers = [_audited(v.pointer, declared)[:_MAX_POINTER] for v in exc.violations]
            fields["pointers"] = pointers[:_MAX_POINTERS]
            if len(pointers) > _MAX_POINTERS:
                fields["pointers_total"] = len(pointers)
            classes = (pointer_class(v.pointer, declared) for v in exc.violations)
            self._metrics.validation_failed(
                request.contract, itertools.islice(classes, _MAX_POINTERS)
            )
        self._metrics.published(request.contract, publish_outcome(exc))
        span.end(error=exc.code)
        self._audit.record(
            "message.rejected",
            message_id=message_id,
            contract=request.contract[:200],
            sender=request.sender,
            reason=exc.code,
            payload_sha256=digest(request.body),
            payload_size=len(request.body),
            trace_id=span.context.trace_id,
            **fields,
        )
        exc.audited = True


def _audited(pointer: str, declared: frozenset[str]) -> str:
    """``pointer`` with each member name the contract does not declare as ``*``: a name
    the sender made up (an extra member, a map key) is payload, never audit material."""
    tokens = pointer.split("/")[1:]
    kept = (t if t in declared or (t.isascii() and t.isdigit()) else "*" for t in tokens)
    return "".join("/" + t for t in kept)


def _schema_names(schema: Any) -> set[str]:
    """Every name under ``properties`` or in ``required`` anywhere in ``schema``, escaped
    as JSON pointer tokens (RFC 6901)."""
    names: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        properties = node.get("properties")
        if isinstance(properties, dict):
            names.update(properties)
        required = node.get("required")
        if isinstance(required, list):
            names.update(n for n in required if isinstance(n, str))
        stack.extend(node.values())
    return {n.replace("~", "~0").replace("/", "~1") for n in names}
