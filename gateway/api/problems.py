"""RFC 9457 problem details: the one place errors become HTTP responses.

Handlers raise domain errors; this middleware walks the error's class
hierarchy to find its status, so a new error subclass needs no new handler
code. Unexpected exceptions become a bare 500 with no detail, logged here.
Every refusal is audited here too: a 401 as ``auth.failed``, a 403 as
``access.denied`` (never with the token). A 429 is audited where it is raised,
as ``message.throttled``: the publish handler knows the sender and the size;
a refused publish as ``message.rejected`` by the router. Any other 4xx of an
authenticated caller becomes ``request.refused``; before authentication it is
logged (``request_refused``), and requests the HTTP parser refuses are answered
and logged by :mod:`gateway.api.protocol`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from gateway import errors
from gateway.api.auth import BadCredentials, WrongRole
from gateway.api.keys import AUDIT, CALLER

log = structlog.get_logger("gateway.api")

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:gateway:problem:"

_STATUS: dict[type[errors.GatewayError], int] = {
    errors.InputError: 400,
    errors.IdempotencyKeyReused: 422,
    errors.IdempotencyKeyInUse: 409,
    errors.PayloadTooLarge: 413,
    errors.BodyTimeout: 408,
    errors.UnsupportedMediaType: 415,
    errors.ContractError: 422,
    errors.UnknownContract: 404,
    errors.UnknownRequest: 404,
    errors.NoAuditLog: 404,
    errors.UnknownDeadLetter: 404,
    errors.VersionExists: 409,
    errors.PushDelivery: 409,
    errors.IncompatibleContract: 409,
    errors.Throttled: 429,
    errors.Unauthenticated: 401,
    errors.AuthError: 403,
    errors.VerificationError: 422,
    errors.TransportError: 503,
    errors.GatewayError: 500,
}

_RETRIABLE = errors.TransportError | errors.Throttled | errors.IdempotencyKeyInUse
"""Errors whose answer carries ``Retry-After`` (their ``retry_after_s``)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_MAX_AUDITED_PATH = 512


def status_of(exc: errors.GatewayError) -> int:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> web.Response:
    body = {"type": TYPE_PREFIX + code, "title": title, "status": status, "detail": detail}
    return web.Response(
        status=status,
        text=json.dumps({**body, **extra}),
        content_type=PROBLEM_JSON,
    )


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    caller = CALLER.set(None)
    try:
        return await _problems_of(request, handler)
    finally:
        CALLER.reset(caller)


async def _problems_of(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.GatewayError as exc:
        return _answer(exc, account_for(request, exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "-")
        refused(request, code, exc.status)
        return problem(exc.status, code, exc.reason, exc.text or exc.reason)
    except Exception:
        log.exception("unhandled_error", path=request.path)
        return problem(500, "internal-error", "Internal error", "the request could not be served")


def account_for(request: web.Request, exc: errors.GatewayError) -> int:
    """The status ``exc`` answers with, after logging (5xx) or auditing (4xx) it."""
    status = status_of(exc)
    if status >= 500:
        log.error("request_failed", code=exc.code, path=request.path)
    elif status in (401, 403):
        audit_refusal(request, exc, status)
    elif not exc.audited:
        refused(request, exc.code, status)
    return status


def _answer(exc: errors.GatewayError, status: int) -> web.Response:
    response = problem(status, exc.code, exc.title, exc.detail, **exc.extensions())
    if isinstance(exc, _RETRIABLE):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, errors.BodyTimeout | errors.IncompleteBody):
        # The rest of the body is not worth waiting for: answer and hang up.
        response.force_close()
    if isinstance(exc, errors.Unauthenticated):
        response.headers["WWW-Authenticate"] = 'Bearer realm="gateway"'
    return response


def refused(request: web.Request, code: str, status: int) -> None:
    """Any other 4xx: ``request.refused`` in the audit log once the caller is known;
    before authentication (an unknown route, a refusal before the credentials were
    read) a ``request_refused`` log line instead, as nobody is there to hold to it."""
    principal = CALLER.get()
    where = {"method": request.method[:16], "path": request.path[:_MAX_AUDITED_PATH]}
    if principal is None:
        log.info("request_refused", status=status, reason=code, **where)
        return
    try:
        request.app[AUDIT].record(
            "request.refused",
            principal=principal.id,
            role=principal.role.value,
            status=status,
            reason=code,
            **where,
        )
    except Exception:
        log.exception("refusal_not_audited", status=status, path=request.path)


def audit_refusal(request: web.Request, exc: errors.GatewayError, status: int) -> None:
    """Record a 401 as ``auth.failed`` and a 403 as ``access.denied``; never the token."""
    audit = request.app.get(AUDIT)
    if audit is None:
        return
    reason = exc.reason if isinstance(exc, BadCredentials | WrongRole) else exc.code
    where = {"method": request.method, "path": request.path[:_MAX_AUDITED_PATH]}
    try:
        if status == 401:
            audit.record("auth.failed", reason=reason, remote=request.remote, **where)
        else:
            principal = CALLER.get()
            who = principal.id if principal is not None else None
            role = principal.role.value if principal is not None else None
            audit.record("access.denied", principal=who, role=role, reason=reason, **where)
    except Exception:
        # The refusal stands either way; a log that cannot record it is an alarm.
        log.exception("refusal_not_audited", status=status, path=request.path)
