"""The audit trail over HTTP, for auditors only: ``GET /v1/audit``.

An auditor's bearer token is required: a participant's token gets 403, no
or an unknown token 401, and both refusals are themselves audited. Filters
match as in :class:`gateway.audit.search.Query`; pages run oldest first and
``next`` (also a ``Link: rel="next"`` header) names the next page until
nothing more matches. Unknown or repeated parameters are refused (400): a
misspelt filter would otherwise widen the search silently.

    GET /v1/audit?participant=minhealth&since=2026-11-26&limit=50
    -> {"records": [...], "count": 50, "next": "/v1/audit?...&after=1234"}
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path

from aiohttp import web
from multidict import MultiMapping

from gateway.api.auth import Role
from gateway.api.handlers import principal_of
from gateway.api.keys import AUDIT
from gateway.audit.search import Query, parse_time, search
from gateway.errors import InvalidParameter, NoAuditLog

FILTERS = ("message_id", "participant", "contract", "outcome", "event")
PARAMETERS = (*FILTERS, "since", "until", "after", "limit")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

_MAX_FILTER = 256
_DIGITS = re.compile(r"[0-9]{1,18}")


async def search_audit(request: web.Request) -> web.Response:
    auditor = principal_of(request, Role.AUDITOR)
    directory = log_directory(request)
    params = request.query
    query, after, limit = parse_search(params)
    page = await asyncio.to_thread(
        search,
        directory,
        query,
        after=after,
        limit=DEFAULT_LIMIT if limit is None else limit,
    )
    # Reading the trail is itself on the trail: who looked for what.
    request.app[AUDIT].record(
        "audit.searched",
        principal=auditor.id,
        filters={name: params[name] for name in PARAMETERS if name in params},
        count=len(page.records),
    )
    following = None
    if page.next_after is not None:
        following = str(request.rel_url.update_query(after=str(page.next_after)))
    response = web.json_response(
        {"records": page.records, "count": len(page.records), "next": following}
    )
    response.headers["Cache-Control"] = "no-store"
    if following is not None:
        response.headers["Link"] = f'<{following}>; rel="next"'
    return response


def log_directory(request: web.Request) -> Path:
    """The node's audit log directory; 404 ``NoAuditLog`` when it logs to stdout only."""
    directory = request.app[AUDIT].directory
    if directory is None:
        raise NoAuditLog(
            "this node writes audit events to its structured log only; "
            "set audit.dir in its config to search them here"
        )
    return directory


def parse_search(params: MultiMapping[str]) -> tuple[Query, int | None, int | None]:
    """The query, ``after`` and ``limit`` a search asks for; :class:`InvalidParameter`
    for an unknown, repeated or malformed parameter."""
    _check_names(params)
    after = _count(params, "after", low=0)
    limit = _count(params, "limit", low=1, high=MAX_LIMIT)
    return _query(params), after, limit


def _check_names(params: MultiMapping[str]) -> None:
    """Refuse unknown and repeated parameters: a misspelt filter would widen the search."""
    for name in params:
        if name not in PARAMETERS:
            raise InvalidParameter(
                name[:64], f"unknown parameter '{name[:64]}'; use {', '.join(PARAMETERS)}"
            )
        if len(params.getall(name)) > 1:
            raise InvalidParameter(name, f"give '{name}' at most once")


def _query(params: MultiMapping[str]) -> Query:
    since, until = _time(params, "since"), _time(params, "until")
    if since is not None and until is not None and until <= since:
        raise InvalidParameter("until", "'until' must be later than 'since'")
    return Query(
        message_id=_text(params, "message_id"),
        participant=_text(params, "participant"),
        contract=_text(params, "contract"),
        outcome=_text(params, "outcome"),
        event=_text(params, "event"),
        since=since,
        until=until,
    )


def _text(params: MultiMapping[str], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not 0 < len(value) <= _MAX_FILTER:
        raise InvalidParameter(name, f"'{name}' must be 1-{_MAX_FILTER} characters")
    return value


def _time(params: MultiMapping[str], name: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise InvalidParameter(name, f"'{name}': {exc}") from None


def _count(
    params: MultiMapping[str], name: str, *, low: int, high: int | None = None
) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not _DIGITS.fullmatch(value) or int(value) < low or (high is not None and int(value) > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidParameter(name, f"'{name}' must be a whole number {bounds}")
    return int(value)
