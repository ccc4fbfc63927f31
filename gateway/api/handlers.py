"""HTTP handlers: parse the request, call the domain, shape the answer.

Handlers raise domain errors only; :mod:`gateway.api.problems` turns them
into problem details.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.api.auth import Principal, Role
from gateway.api.keys import (
    ADMISSION,
    AUDIT,
    AUTH,
    CALLER,
    CONFIG,
    IDEMPOTENCY,
    INBOXES,
    LIMITER,
    METRICS,
    READINESS,
    ROUTER,
    SCRAPE_TOKEN,
)
from gateway.audit import digest
from gateway.cloudevents import SAFE_TOKEN, TRACEPARENT
from gateway.delivery import Delivery, Inbox
from gateway.errors import (
    BodyTimeout,
    Forbidden,
    GatewayError,
    IdempotencyKeyReused,
    IncompleteBody,
    InvalidParameter,
    PayloadTooLarge,
    PushDelivery,
    Throttled,
    Unauthenticated,
    UnsupportedMediaType,
)
from gateway.idempotency import HEADER, REPLAYED, fingerprint, parse_key
from gateway.ids import derived_message_id
from gateway.instruments import PublishOutcome, publish_outcome
from gateway.jsonparse import parse_json
from gateway.metrics import CONTENT_TYPE
from gateway.routing import Accepted, PublishRequest

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
    """The whole body, refusing more than ``limit`` bytes before reading them all, and
    a body that takes longer than ``http.body_read_timeout_s`` to arrive."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body is {request.content_length} bytes; the limit is {limit}")
    timeout_s = request.app[CONFIG].http.body_read_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            return await _read_chunks(request, limit)
    except TimeoutError:
        raise BodyTimeout(f"the body did not arrive within {timeout_s:g} s") from None
    except (ConnectionError, HttpProcessingError):
        # The sender went away or broke the framing (a chunk size that is not hex, fewer
        # bytes than its Content-Length): nothing to answer for but a bad request.
        raise IncompleteBody("the body ended before it was complete") from None


async def _read_chunks(request: web.Request, limit: int) -> bytes:
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
    contract = request.match_info["contract"]
    limiter = request.app[LIMITER]
    size = request.content_length
    try:
        # 1. The rate, before any work on the request (every attempt counts, a retry too).
        limiter.admit(sender)
        body = await _publish_body(request)
        size = len(body)
        message = publish_request(request, sender, body)
        key = _idempotency_key(request)
        if key is not None:
            return await _publish_once(request, message, key)
        return _accepted(await _send(request, message))
    except Throttled as exc:
        _audit_throttled(request, exc, sender=sender, contract=contract, payload_size=size)
        raise
    except GatewayError as exc:
        _count_refused(request, exc, contract)
        raise


async def _send(request: web.Request, message: PublishRequest) -> Accepted:
    # 2. The daily quota: checked before the work, counted only once accepted.
    with request.app[LIMITER].quota(message.sender, len(message.body)):
        return await request.app[ROUTER].publish(message)


async def _publish_once(request: web.Request, message: PublishRequest, key: str) -> web.Response:
    """Publish unless this sender's key already stands for this request's success
    (then answer with that, sending nothing); stored once Kafka acknowledged."""
    printed = fingerprint(message)
    # The message id follows from the sender, key and request: a retry the store cannot
    # recognise (a crash before it was written, a 503, another node) sends the same id,
    # and receivers suppress the second copy.
    message = dataclasses.replace(
        message, message_id=derived_message_id("idempotency", message.sender, key, printed)
    )
    try:
        with request.app[IDEMPOTENCY].claim(message.sender, key, printed) as claim:
            if claim.original is not None:
                _audit_deduplicated(request, message, claim.original)
                return _accepted(claim.original, replayed=True)
            accepted = await _send(request, message)
            claim.complete(accepted)
    except IdempotencyKeyReused as exc:
        _audit_reused(request, message, exc)
        raise
    return _accepted(accepted)


def _accepted(accepted: Accepted, *, replayed: bool = False) -> web.Response:
    response = web.json_response(
        {
            "message_id": accepted.message_id,
            "contract": accepted.contract,
            "recipients": list(accepted.recipients),
        },
        status=202,
    )
    if replayed:
        response.headers[REPLAYED] = "true"
    return response


async def publish_within_limits(
    request: web.Request,
    sender: str,
    build: Callable[[bytes], PublishRequest],
    *,
    contract: str | None = None,
) -> Accepted:
    """Read the body and publish what ``build`` makes of it, within the sender's rate and
    daily quota (a refusal is audited as ``message.throttled``). ``contract``: what the
    publish goes out under, for the refusal's record; default: the path's contract (a
    reply's path names none: it goes out under the request's response contract)."""
    contract = contract if contract is not None else request.match_info.get("contract", "")
    limiter = request.app[LIMITER]
    size = request.content_length
    try:
        # 1. The rate, before any work on the request (every attempt counts).
        limiter.admit(sender)
        body = await _publish_body(request)
        size = len(body)
        return await _send(request, build(body))
    except Throttled as exc:
        _audit_throttled(request, exc, sender=sender, contract=contract, payload_size=size)
        raise
    except GatewayError as exc:
        _count_refused(request, exc, contract)
        raise


async def _publish_body(request: web.Request) -> bytes:
    require_json(request)
    return await read_body(request, request.app[CONFIG].http.max_body_bytes)


def publish_request(
    request: web.Request,
    sender: str,
    body: bytes,
    *,
    message_id: str | None = None,
    contract: str | None = None,
    to: Sequence[str] | None = None,
    correlation_id: str | None = None,
) -> PublishRequest:
    """What a publish asks for: from the path, query and headers, unless given."""
    traceparent = request.headers.get("traceparent")
    if traceparent is not None and not TRACEPARENT.fullmatch(traceparent):
        raise InvalidParameter("traceparent", "traceparent is not a W3C trace context")
    return PublishRequest(
        sender=sender,
        contract=contract or request.match_info["contract"],
        body=body,
        to=tuple(to) if to is not None else tuple(_recipients(request)),
        ordering_key=_token_header(request, "X-Ordering-Key"),
        correlation_id=correlation_id or _token_header(request, "X-Correlation-Id"),
        traceparent=traceparent,
        message_id=message_id,
    )


def _idempotency_key(request: web.Request) -> str | None:
    values = request.headers.getall(HEADER, [])
    if len(values) > 1:
        raise InvalidParameter(HEADER, f"send one {HEADER} field, not {len(values)}")
    return parse_key(values[0]) if values else None


def _audit_deduplicated(request: web.Request, message: PublishRequest, original: Accepted) -> None:
    """Record a retry answered from the store: the original message; never the payload."""
    request.app[METRICS].published(original.contract, PublishOutcome.DEDUPLICATED)
    request.app[AUDIT].record(
        "message.deduplicated",
        message_id=original.message_id,
        contract=original.contract,
        sender=message.sender,
        recipients=list(original.recipients),
        payload_sha256=digest(message.body),
        payload_size=len(message.body),
    )


def _audit_reused(request: web.Request, message: PublishRequest, exc: GatewayError) -> None:
    """Record a publish refused for reusing a key like a refusal by the router."""
    request.app[METRICS].published(message.contract, publish_outcome(exc))
    request.app[AUDIT].record(
        "message.rejected",
        contract=message.contract[:_MAX_AUDITED_CONTRACT],
        sender=message.sender,
        reason=exc.code,
        payload_sha256=digest(message.body),
        payload_size=len(message.body),
    )
    exc.audited = True


def _count_refused(request: web.Request, exc: GatewayError, contract: str) -> None:
    """Count a publish refused before the router saw it (the body's type, size or
    arrival; a header): what the router refused, it counted and audited itself."""
    if not exc.audited:
        request.app[METRICS].published(contract, publish_outcome(exc))


def _audit_throttled(
    request: web.Request, exc: Throttled, *, sender: str, contract: str, payload_size: int | None
) -> None:
    """Record a refused publish as ``message.throttled``: who, what, why; never the payload."""
    request.app[METRICS].published(contract, PublishOutcome.THROTTLED)
    request.app[AUDIT].record(
        "message.throttled",
        sender=sender,
        contract=contract[:_MAX_AUDITED_CONTRACT],
        reason=exc.reason,
        retry_after_s=exc.retry_after_s,
        payload_size=payload_size,
    )
    exc.audited = True


def _inbox(request: web.Request) -> Inbox:
    participant = participant_of(request)
    if not request.app[ADMISSION].admitted(participant):
        # Suspended: nothing more is delivered until the registry reinstates it.
        raise Forbidden(f"'{participant}' is not an active participant in the registry")
    inbox = request.app[INBOXES].get(participant)
    if inbox is None:
        raise Forbidden(f"'{participant}' has no inbox on this node")
    local = request.app[CONFIG].local(participant)
    if local is not None and local.webhook is not None:
        raise PushDelivery(f"'{participant}' takes delivery by webhook: its inbox is not pulled")
    return inbox


def number_param(request: web.Request, name: str, default: float, low: float, high: float) -> float:
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
    max_messages = int(number_param(request, "max", 10, 1, http.max_inbox_batch))
    wait_s = number_param(request, "wait", 0, 0, http.max_inbox_wait_s)
    deliveries = await inbox.pull(max_messages=max_messages, wait_s=wait_s)
    # Payloads are spliced in as the exact bytes that were signed, not re-encoded.
    items = b",".join(delivery_json(d) for d in deliveries)
    return web.Response(body=b'{"messages":[' + items + b"]}", content_type="application/json")


def delivery_json(delivery: Delivery) -> bytes:
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
        "traceparent": str(delivery.span.context),
    }
    return json.dumps(meta).encode()[:-1] + b',"payload":' + m.payload.strip() + b"}"


async def _tags(request: web.Request) -> tuple[list[str], dict[str, Any]]:
    require_json(request)
    http = request.app[CONFIG].http
    body = parse_json(await read_body(request, 65536), max_bytes=65536, max_depth=4)
    tags = body.get("tags") if isinstance(body, dict) else None
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise InvalidParameter("tags", 'send {"tags": ["<delivery tag>", ...]}')
    if len(tags) > http.max_inbox_batch * 10:
        raise InvalidParameter("tags", f"at most {http.max_inbox_batch * 10} tags per request")
    return tags, body


async def ack_inbox(request: web.Request) -> web.Response:
    inbox = _inbox(request)
    tags, _ = await _tags(request)
    result = await inbox.ack(tags)
    return web.json_response({"acknowledged": result.acknowledged, "unknown": result.unknown})


async def nack_inbox(request: web.Request) -> web.Response:
    """Give messages back, to be handed out again after ``delay_s`` (default 0)."""
    inbox = _inbox(request)
    tags, body = await _tags(request)
    delay = body.get("delay_s", 0)
    longest = request.app[CONFIG].delivery.max_nack_delay_s
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= longest:
        raise InvalidParameter("delay_s", f"'delay_s' must be a number from 0 to {longest:g}")
    result = await inbox.nack(tags, delay_s=float(delay))
    return web.json_response({"released": result.acknowledged, "unknown": result.unknown})


_KEEPALIVE_S = 15.0
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


async def stream_inbox(request: web.Request) -> web.StreamResponse:
    """Server-sent events: each verified message as an ``event: message`` whose ``id`` is
    its delivery tag and whose ``data`` is what a pull returns for it; acknowledge with
    POST /v1/inbox/ack. A comment line every 15 s keeps proxies from closing it."""
    inbox = _inbox(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    await response.write(b": connected\n\n")
    batch = request.app[CONFIG].http.max_inbox_batch
    participant = inbox.participant
    # Until the consumer goes away: what it did not acknowledge is handed out again after
    # the visibility timeout; what could not be written to it is given back at once.
    while not _gone(request):
        if not request.app[ADMISSION].admitted(participant):
            break  # suspended while streaming: its messages wait, as its inbox does
        deliveries = await inbox.pull(max_messages=batch, wait_s=_KEEPALIVE_S)
        if _gone(request):
            await inbox.nack([d.tag for d in deliveries], delay_s=0)
            break
        try:
            await response.write(b"".join(_event(d) for d in deliveries) or b": keepalive\n\n")
        except (ConnectionError, RuntimeError):
            await inbox.nack([d.tag for d in deliveries], delay_s=0)
            break
    return response


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _event(delivery: Delivery) -> bytes:
    """One server-sent event; a payload sent with line breaks spans several data lines."""
    lines = _LINE_BREAK.split(delivery_json(delivery))  # CR, LF or CRLF: each ends a line
    data = b"".join(b"data: " + line + b"\n" for line in lines)
    return b"event: message\nid: " + delivery.tag.encode() + b"\n" + data + b"\n"


async def inbox_status(request: web.Request) -> web.Response:
    """The caller's inbox now: ready, handed out, given back with a delay, and the lag
    (records in its topic not yet read): what a consumer falling behind looks like."""
    participant = participant_of(request)
    inbox = request.app[INBOXES].get(participant)
    if inbox is None:
        raise Forbidden(f"'{participant}' has no inbox on this node")
    return web.json_response({"participant": participant, **(await inbox.stats())})


_INBOX_GAUGES = {
    "ready": "verified messages waiting to be handed out",
    "handed_out": "messages handed out (or being pushed) and not yet acknowledged",
    "delayed": "messages given back with a delay",
}
"""Rendered here, measured at each scrape; the lag is the registry's own gauge."""


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format 0.0.4: the node's counters and histograms, and per hosted
    participant its inbox's backlog and lag (measured now)."""
    _check_scraper(request)
    node = request.app[METRICS]
    stats = {p: await inbox.stats() for p, inbox in sorted(request.app[INBOXES].items())}
    for participant, numbers in stats.items():
        node.inbox_lag.set(numbers["lag"], participant)
    lines = []
    for name, help_text in _INBOX_GAUGES.items():
        lines += [
            f"# HELP gateway_inbox_{name} {help_text}",
            f"# TYPE gateway_inbox_{name} gauge",
        ]
        lines += [f'gateway_inbox_{name}{{participant="{p}"}} {s[name]}' for p, s in stats.items()]
    text = node.registry.render() + "\n".join(lines) + "\n"
    return web.Response(text=text, headers={"Content-Type": CONTENT_TYPE})


def _check_scraper(request: web.Request) -> None:
    """With ``http.metrics_token_file``, only a scraper sending that bearer token."""
    token = request.app[SCRAPE_TOKEN]
    if token is None:
        return
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    # Header bytes that are not UTF-8 arrive as surrogates: encode them back, never fail.
    presented = sent.encode("utf-8", "surrogateescape")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented, token.encode()):
        raise Unauthenticated("send the scrape token: Authorization: Bearer <token>")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = request.app[READINESS].checks()
    ready = all(checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not-ready", "checks": checks},
        status=200 if ready else 503,
    )
