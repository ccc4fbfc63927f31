"""HTTP handlers: parse the request, call the domain, shape the answer.

Handlers raise domain errors only; :mod:`gateway.api.problems` turns them
into problem details.
"""

from __future__ import annotations

import json

from aiohttp import web

from gateway.api.auth import Principal, Role
from gateway.api.keys import (
    ADMISSION,
    AUDIT,
    AUTH,
    CALLER,
    CONFIG,
    INBOXES,
    LIMITER,
    READINESS,
    ROUTER,
)
from gateway.cloudevents import SAFE_TOKEN, TRACEPARENT
from gateway.delivery import Delivery, Inbox
from gateway.errors import (
    Forbidden,
    InvalidParameter,
    PayloadTooLarge,
    Throttled,
    UnsupportedMediaType,
)
from gateway.jsonparse import parse_json
from gateway.routing import PublishRequest

_MAX_RECIPIENTS = 64
_MAX_AUDITED_CONTRACT = 200


def client_certificate(request: web.Request) -> bytes | None:
    """The DER of the client certificate the TLS handshake verified, if any."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der


def caller_of(request: web.Request) -> Principal:
    """The caller, in whatever role; remembered so that a refusal's audit names them."""
    principal = request.app[AUTH].principal(
        request.headers.get("Authorization"), client_certificate(request)
    )
    CALLER.set(principal)
    return principal


def principal_of(request: web.Request, role: Role) -> Principal:
    """The caller, who must hold ``role``."""
    principal = caller_of(request)
    principal.require(role)
    return principal


def participant_of(request: web.Request) -> str:
    return principal_of(request, Role.PARTICIPANT).id


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes before reading them all."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body is {request.content_length} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def require_json(request: web.Request) -> None:
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"send Content-Type: application/json, not '{ctype[:60]}'")


def _token_header(request: web.Request, name: str) -> str | None:
    value = request.headers.get(name)
    if value is not None and not SAFE_TOKEN.fullmatch(value):
        raise InvalidParameter(name, f"{name} must be 1-128 of A-Z a-z 0-9 . _ : / @ + = -")
    return value


def _recipients(request: web.Request) -> list[str]:
    names = [n.strip() for v in request.query.getall("to", []) for n in v.split(",")]
    names = [n for n in names if n]
    if len(names) > _MAX_RECIPIENTS:
        raise InvalidParameter("to", f"at most {_MAX_RECIPIENTS} recipients")
    return names


async def publish(request: web.Request) -> web.Response:
    sender = participant_of(request)
    limiter = request.app[LIMITER]
    size = request.content_length
    try:
        # 1. The rate, before any work on the request (every attempt counts).
        limiter.admit(sender)
        body = await _publish_body(request)
        size = len(body)
        # 2. The daily quota: checked before the work, counted only once accepted.
        with limiter.quota(sender, size):
            accepted = await request.app[ROUTER].publish(_publish_request(request, sender, body))
    except Throttled as exc:
        _audit_throttled(request, exc, sender=sender, payload_size=size)
        raise
    return web.json_response(
        {
            "message_id": accepted.message_id,
            "contract": accepted.contract,
            "recipients": list(accepted.recipients),
        },
        status=202,
    )


async def _publish_body(request: web.Request) -> bytes:
    require_json(request)
    return await read_body(request, request.app[CONFIG].http.max_body_bytes)


def _publish_request(request: web.Request, sender: str, body: bytes) -> PublishRequest:
    traceparent = request.headers.get("traceparent")
    if traceparent is not None and not TRACEPARENT.fullmatch(traceparent):
        raise InvalidParameter("traceparent", "traceparent is not a W3C trace context")
    return PublishRequest(
        sender=sender,
        contract=request.match_info["contract"],
        body=body,
        to=_recipients(request),
        ordering_key=_token_header(request, "X-Ordering-Key"),
        correlation_id=_token_header(request, "X-Correlation-Id"),
        traceparent=traceparent,
    )


def _audit_throttled(
    request: web.Request, exc: Throttled, *, sender: str, payload_size: int | None
) -> None:
    """Record a refused publish as ``message.throttled``: who, what, why; never the payload."""
    request.app[AUDIT].record(
        "message.throttled",
        sender=sender,
        contract=request.match_info["contract"][:_MAX_AUDITED_CONTRACT],
        reason=exc.reason,
        retry_after_s=exc.retry_after_s,
        payload_size=payload_size,
    )


def _inbox(request: web.Request) -> Inbox:
    participant = participant_of(request)
    if not request.app[ADMISSION].admitted(participant):
        # Suspended: nothing more is delivered until the registry reinstates it.
        raise Forbidden(f"'{participant}' is not an active participant in the registry")
    inbox = request.app[INBOXES].get(participant)
    if inbox is None:
        raise Forbidden(f"'{participant}' has no inbox on this node")
    return inbox


def _number(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise InvalidParameter(name, f"'{name}' must be a number") from None
    if not low <= value <= high:
        raise InvalidParameter(name, f"'{name}' must be between {low:g} and {high:g}")
    return value


async def pull_inbox(request: web.Request) -> web.Response:
    inbox = _inbox(request)
    http = request.app[CONFIG].http
    max_messages = int(_number(request, "max", 10, 1, http.max_inbox_batch))
    wait_s = _number(request, "wait", 0, 0, http.max_inbox_wait_s)
    deliveries = await inbox.pull(max_messages=max_messages, wait_s=wait_s)
    # Payloads are spliced in as the exact bytes that were signed, not re-encoded.
    items = b",".join(_delivery_json(d) for d in deliveries)
    return web.Response(body=b'{"messages":[' + items + b"]}", content_type="application/json")


def _delivery_json(delivery: Delivery) -> bytes:
    m = delivery.message
    meta = {
        "tag": delivery.tag,
        "message_id": m.message_id,
        "sender": m.sender,
        "contract": m.contract,
        "version": m.version,
        "issued_at": m.issued_at,
        "correlation_id": m.correlation_id,
        "migrated_from": m.migrated_from,
    }
    return json.dumps(meta).encode()[:-1] + b',"payload":' + m.payload.strip() + b"}"


async def ack_inbox(request: web.Request) -> web.Response:
    inbox = _inbox(request)
    require_json(request)
    http = request.app[CONFIG].http
    body = parse_json(await read_body(request, 65536), max_bytes=65536, max_depth=4)
    tags = body.get("tags") if isinstance(body, dict) else None
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidParameter("tags", 'send {"tags": ["<delivery tag>", ...]}')
    if len(tags) > http.max_inbox_batch * 10:
        raise InvalidParameter("tags", f"at most {http.max_inbox_batch * 10} tags per request")
    result = await inbox.ack(tags)
    return web.json_response({"acknowledged": result.acknowledged, "unknown": result.unknown})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = request.app[READINESS].checks()
    ready = all(checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not-ready", "checks": checks},
        status=200 if ready else 503,
    )
