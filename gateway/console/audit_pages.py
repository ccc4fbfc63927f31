"""Console pages for security teams: the audit trail, a message's life, the log's integrity.

Auditors only; each search is itself on the trail (``audit.searched``).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web
from multidict import MultiDict, MultiMapping

from gateway.api import audit as audit_api
from gateway.api.auth import Principal, Role
from gateway.api.keys import AUDIT, CONFIG
from gateway.audit.events import EVENTS
from gateway.audit.search import Query, matching, search
from gateway.audit.store import KEY_FILE, open_head, read_heads, read_verify_keys
from gateway.audit.verify import verify
from gateway.console.app import render, signed_in
from gateway.errors import InvalidParameter

STAGES = ("accepted", "delivered", "acknowledged")
"""A message's life as its sender and recipients see it, in order."""
_AUDIT_PAGE = 50


async def search_page(request: web.Request) -> web.Response:
    auditor = _auditor(request)
    directory = audit_api.log_directory(request)
    params = _filled(request.query)
    query, after, _ = audit_api.parse_search(params)
    page = await asyncio.to_thread(search, directory, query, after=after, limit=_AUDIT_PAGE)
    filters = {n: params[n] for n in audit_api.PARAMETERS if n in params}
    request.app[AUDIT].record(
        "audit.searched", principal=auditor.id, filters=filters, count=len(page.records)
    )
    following = None
    if page.next_after is not None:
        following = str(request.rel_url.update_query(after=str(page.next_after)))
    return render(
        request,
        "audit.html",
        title="Audit trail",
        records=[_row(r) for r in page.records],
        filters=filters,
        searched=bool(filters),
        next_page=following,
        events=sorted(EVENTS),
        outcomes=sorted({e.outcome for e in EVENTS.values()}),
    )


async def message_life(request: web.Request) -> web.Response:
    auditor = _auditor(request)
    directory = audit_api.log_directory(request)
    message_id = request.match_info["message_id"]
    if not 0 < len(message_id) <= 256 or not message_id.isprintable():
        raise InvalidParameter("message_id", "a message id is 1-256 printable characters")
    query = Query(message_id=message_id)
    records = await asyncio.to_thread(lambda: list(matching(directory, query)))
    request.app[AUDIT].record(
        "audit.searched",
        principal=auditor.id,
        filters={"message_id": message_id},
        count=len(records),
    )
    return render(
        request,
        "message.html",
        title=f"Message {message_id}",
        message_id=message_id,
        records=[_row(r) for r in records],
        lanes=_lanes(records),
        stages=STAGES,
        hosted={p.id for p in request.app[CONFIG].participants},
    )


def _lanes(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per recipient, when its message reached each stage (``None``: not yet), and
    anything that went wrong on the way (rejected, dead-lettered, retried, ...)."""
    accepted = next((r for r in records if r.get("event") == "message.accepted"), None)
    recipients: list[str] = []
    if accepted is not None and isinstance(accepted.get("recipients"), list):
        recipients = [str(r) for r in accepted["recipients"]]
    for record in records:
        recipient = record.get("recipient")
        if isinstance(recipient, str) and recipient not in recipients:
            recipients.append(recipient)
    lanes = []
    for recipient in recipients:
        mine = [r for r in records if r.get("recipient") == recipient]
        reached = {"accepted": accepted.get("time") if accepted else None}
        for stage in STAGES[1:]:
            found = next((r for r in mine if r.get("event") == f"message.{stage}"), None)
            reached[stage] = found.get("time") if found else None
        other = [
            r.get("outcome", "")
            for r in mine
            if r.get("event") not in ("message.delivered", "message.acknowledged")
        ]
        lanes.append({"recipient": recipient, "reached": reached, "other": other})
    return lanes


async def integrity(request: web.Request) -> web.Response:
    _auditor(request)
    directory = audit_api.log_directory(request)

    def check() -> dict[str, Any]:
        keys = read_verify_keys(directory / KEY_FILE)
        report = verify(directory, keys)
        newest = None
        for _, raw, complete in read_heads(directory):
            if complete:
                newest = raw
        head = open_head(json.loads(newest), keys) if newest else None
        return {"report": report, "head": head}

    started = time.perf_counter()
    found = await asyncio.to_thread(check)
    return render(
        request,
        "integrity.html",
        title="Audit log integrity",
        elapsed_ms=round((time.perf_counter() - started) * 1000),
        **found,
    )


def _auditor(request: web.Request) -> Principal:
    principal = signed_in(request).principal
    principal.require(Role.AUDITOR)
    return principal


def _filled(params: MultiMapping[str]) -> MultiDict[str]:
    """The query without the empty fields a form sends for filters left blank."""
    return MultiDict((k, v) for k, v in params.items() if v != "")


def _row(record: dict[str, Any]) -> dict[str, Any]:
    """An audit record as a table row: the usual columns, and the rest as text."""
    usual = ("seq", "time", "event", "outcome", "message_id", "contract", "node")
    rest = {k: v for k, v in record.items() if k not in (*usual, "prev")}
    return {**{k: record.get(k) for k in usual}, "rest": _brief(rest)}


def _brief(fields: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in sorted(fields.items())]
