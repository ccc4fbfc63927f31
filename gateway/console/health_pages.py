"""Console pages on how the exchange runs: data quality and delivery health.

An auditor sees every participant hosted here and replays nothing; a participant
sees what it published, its own inbox, and replays its own dead letters.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.api.auth import Principal, Role
from gateway.api.dlq import own_dead_letters
from gateway.api.keys import CATALOG, DEAD_LETTERS, INBOXES
from gateway.console.app import QUALITY, check_csrf, read_form, render, see_other, signed_in
from gateway.console.charts import horizontal_bars, stacked_bars
from gateway.console.quality import SPANS, View
from gateway.dlq import DeadLetter, Position, Selection
from gateway.errors import InvalidParameter, NoAuditLog

_DLQ_PAGE = 50


async def quality(request: web.Request) -> web.Response:
    session = signed_in(request)
    tally = request.app[QUALITY]
    if tally is None:
        raise NoAuditLog("quality is counted from the audit log: set audit.dir on this node")
    params = request.query
    span = params.get("span", "24h")
    if span not in SPANS:
        raise InvalidParameter("span", f"span is one of {', '.join(SPANS)}")
    chosen = params.get("contract") or None
    if chosen is not None:
        request.app[CATALOG].versions(chosen)  # an unknown contract is a 404, not an empty page
    span_s, step_s = SPANS[span]
    principal = session.principal
    # A participant sees what it published; a security team, everything this node took in.
    sender = principal.id if principal.role is Role.PARTICIPANT else None

    def counted() -> View:
        # Both in a thread: a view waits for the lock while another request's first,
        # whole-log refresh holds it, and must not stall the event loop meanwhile.
        tally.refresh()
        return tally.view(
            contract=chosen, sender=sender, span_s=span_s, step_s=step_s, now=time.time()
        )

    view = await asyncio.to_thread(counted)
    label = _label_for(step_s)
    return render(
        request,
        "quality.html",
        title="Data quality",
        view=view,
        span=span,
        spans=list(SPANS),
        chosen=chosen,
        contracts=request.app[CATALOG].ids(),
        rates=stacked_bars(view.series, label=label, title="Publishes accepted and rejected"),
        pointers=horizontal_bars(view.top_pointers, title="Most frequent failing JSON pointers"),
        label=label,
        mine=sender is not None,
    )


def _label_for(step_s: int) -> Any:
    shape = "%H:%M" if step_s < 6 * 3600 else "%d %b %H:%M"

    def label(start: float) -> str:
        return datetime.fromtimestamp(start, UTC).strftime(shape)

    return label


@dataclass(frozen=True, slots=True)
class InboxHealth:
    participant: str
    stats: dict[str, int] | None
    """None while the inbox is starting."""
    dead_letters: list[DeadLetter]
    dead_letter_total: int
    next_after: str | None
    """``PARTITION:OFFSET`` the next page of dead letters starts after; None: no more."""
    paged: bool
    """This page does not start at the first dead letter."""


async def delivery(request: web.Request) -> web.Response:
    session = signed_in(request)
    hosted = _visible_inboxes(request.app, session.principal)
    paged, after = _dead_letter_page(request, hosted)
    inboxes = []
    for participant in hosted:
        inbox = request.app[INBOXES].get(participant)
        letters = request.app[DEAD_LETTERS].get(participant)
        stats = await inbox.stats() if inbox is not None else None
        start = after if participant == paged else None
        page = await letters.page(after=start, limit=_DLQ_PAGE) if letters is not None else None
        inboxes.append(
            InboxHealth(
                participant,
                stats,
                page.entries if page is not None else [],
                page.total if page is not None else 0,
                str(page.next_after) if page is not None and page.next_after else None,
                start is not None,
            )
        )
    lag = horizontal_bars(
        [(i.participant, i.stats["lag"]) for i in inboxes if i.stats is not None],
        title="Records waiting to be read, per inbox",
    )
    return render(
        request,
        "delivery.html",
        title="Delivery health",
        inboxes=inboxes,
        lag=lag,
        lagging=any(i.stats is not None and i.stats["lag"] for i in inboxes),
        may_replay=session.principal.role is Role.PARTICIPANT,
    )


async def replay(request: web.Request) -> web.Response:
    session = signed_in(request)
    form = await read_form(request)
    check_csrf(request, session, form)
    session.principal.require(Role.PARTICIPANT)  # auditors read, they never replay
    letters = own_dead_letters(request, session.principal.id)
    if form.get("all") == "1":
        selection = Selection(everything=True)
    else:
        try:
            selection = Selection(positions=(Position.parse(form.get("position", "")),))
        except ValueError as exc:
            raise InvalidParameter("position", str(exc)) from None
    result = await letters.replay(selection, by=session.principal.id)
    done = len(result.replayed)
    session.flash.append(
        f"Replayed {done} dead letter{'s' * (done != 1)} into the inbox of "
        f"{session.principal.id}; each is checked again as it arrives."
        + (f" {len(result.not_found)} not found." if result.not_found else "")
    )
    return see_other("/console/delivery")


def _dead_letter_page(
    request: web.Request, visible: list[str]
) -> tuple[str | None, Position | None]:
    """Whose dead letters to page on (``?participant=``) and after which (``?after=P:O``)."""
    params = request.query
    for name in params:
        if name not in ("participant", "after"):
            raise InvalidParameter(name[:64], f"unknown parameter '{name[:64]}'")
    participant = params.get("participant")
    if participant is None:
        return None, None
    if participant not in visible:
        raise InvalidParameter("participant", f"no inbox of '{participant[:64]}' is shown here")
    try:
        after = Position.parse(params["after"]) if "after" in params else None
    except ValueError as exc:
        raise InvalidParameter("after", str(exc)) from None
    return participant, after


def _visible_inboxes(app: web.Application, principal: Principal) -> list[str]:
    hosted = sorted(app[INBOXES].keys())
    if principal.role is Role.AUDITOR:
        return hosted
    return [p for p in hosted if p == principal.id]
