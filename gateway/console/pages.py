"""The console's pages: each reads what the HTTP API would, and renders it for people.

Who sees what follows the API's roles. An auditor (a security team) sees
the audit trail, the log's integrity, quality and delivery health of every
participant hosted here, and may replay nothing; a participant sees the
contracts, its own quality and inbox, and replays its own dead letters. Both
see the contract catalog and the participants.
"""

from __future__ import annotations

import asyncio
import difflib
import itertools
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from multidict import MultiDict, MultiMapping

from gateway.api import audit as audit_api
from gateway.api.auth import BadCredentials, Principal, Role
from gateway.api.contracts import catalog_summary
from gateway.api.keys import (
    ADMISSION,
    AUDIT,
    AUTH,
    CATALOG,
    CONFIG,
    DEAD_LETTERS,
    INBOXES,
    KEYS,
    REGISTRY,
)
from gateway.api.problems import audit_refusal
from gateway.audit.events import EVENTS
from gateway.audit.search import Query, matching, search
from gateway.audit.store import KEY_FILE, open_head, read_heads, read_verify_keys
from gateway.audit.verify import verify
from gateway.console.app import (
    QUALITY,
    SESSIONS,
    check_csrf,
    render,
    safe_next,
    see_other,
    session_of,
    signed_in,
    static,
)
from gateway.console.charts import horizontal_bars, stacked_bars
from gateway.console.quality import SPANS, View
from gateway.console.sessions import COOKIE
from gateway.contracts.compat import compare
from gateway.contracts.model import ContractVersion
from gateway.dlq import DeadLetter, DeadLetters, Position, Selection
from gateway.errors import Forbidden, InvalidParameter, NoAuditLog, UnknownContract

STAGES = ("accepted", "delivered", "acknowledged")
"""A message's life as its sender and recipients see it, in order."""
_MAX_FORM = 4096
_AUDIT_PAGE = 50
_DLQ_PAGE = 50


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/audit", audit_search)
    app.router.add_get("/audit/integrity", integrity)
    app.router.add_get("/messages/{message_id}", message_life)
    app.router.add_get("/contracts", contracts)
    app.router.add_get("/contracts/{contract}", contract)
    app.router.add_get("/contracts/{contract}/diff", contract_diff)
    app.router.add_get("/quality", quality)
    app.router.add_get("/delivery", delivery)
    app.router.add_post("/delivery/replay", replay)
    app.router.add_get("/participants", participants)
    app.router.add_get("/static/{name}", static)


# -- signing in and out -------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    session = signed_in(request)
    first = "audit" if session.principal.role is Role.AUDITOR else "contracts"
    return see_other(f"/console/{first}")


async def login_form(request: web.Request) -> web.Response:
    if session_of(request) is not None:
        return see_other(safe_next(request.query.get("next")))
    return render(
        request, "login.html", title="Sign in", next=safe_next(request.query.get("next")), error=""
    )


async def login(request: web.Request) -> web.Response:
    form = await _form(request)
    try:
        principal, digest = request.app[AUTH].sign_in(form.get("token", ""))
    except BadCredentials as exc:
        audit_refusal(request, exc, 401)
        return render(
            request,
            "login.html",
            status=401,
            title="Sign in",
            error=exc.detail,
            next=safe_next(form.get("next")),
        )
    old = request.cookies.get(COOKIE)
    request.app[SESSIONS].close(old)  # a fresh id on every sign-in (no session fixation)
    cookie, _ = request.app[SESSIONS].open(principal, digest)
    request.app[AUDIT].record(
        "console.signed_in",
        principal=principal.id,
        role=principal.role.value,
        remote=request.remote,
    )
    response = see_other(safe_next(form.get("next")))
    response.set_cookie(COOKIE, cookie, path="/", secure=True, httponly=True, samesite="Strict")
    return response


async def logout(request: web.Request) -> web.Response:
    session = signed_in(request)
    check_csrf(request, session, await _form(request))
    request.app[SESSIONS].close(request.cookies.get(COOKIE))
    request.app[AUDIT].record(
        "console.signed_out",
        principal=session.principal.id,
        role=session.principal.role.value,
        why="signed-out",
    )
    response = see_other("/console/login")
    response.del_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    return response


# -- the audit trail ----------------------------------------------------------------


async def audit_search(request: web.Request) -> web.Response:
    auditor = _auditor(request)
    directory = _audit_dir(request)
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
    directory = _audit_dir(request)
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
    directory = _audit_dir(request)

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


# -- contracts ----------------------------------------------------------------------


async def contracts(request: web.Request) -> web.Response:
    signed_in(request)
    rows = catalog_summary(request.app[CATALOG])
    return render(request, "contracts.html", title="Contracts", contracts=rows)


async def contract(request: web.Request) -> web.Response:
    signed_in(request)
    versions = request.app[CATALOG].versions(request.match_info["contract"])
    steps = []
    for old, new in itertools.pairwise(versions):
        report = compare(old.schema, new.schema, policy=new.compatibility_policy)
        steps.append(
            {"old": old, "new": new, "report": report, "ok": report.compatible(new.compatibility)}
        )
    return render(
        request,
        "contract.html",
        title=versions[-1].id,
        versions=list(reversed(versions)),
        latest=versions[-1],
        steps=list(reversed(steps)),
    )


async def contract_diff(request: web.Request) -> web.Response:
    signed_in(request)
    catalog = request.app[CATALOG]
    contract_id = request.match_info["contract"]
    versions = catalog.versions(contract_id)
    old = _version(catalog.resolve, contract_id, request.query.get("from"), versions[-2:][0])
    new = _version(catalog.resolve, contract_id, request.query.get("to"), versions[-1])
    report = compare(old.schema, new.schema, policy=new.compatibility_policy)
    return render(
        request,
        "diff.html",
        title=f"{contract_id}: {old.version} → {new.version}",
        old=old,
        new=new,
        versions=[str(v.version) for v in versions],
        report=report,
        ok=report.compatible(new.compatibility),
        breaking={c.pointer + c.code for c in report.breaking(new.compatibility)},
        lines=_schema_diff(old, new),
    )


def _version(
    resolve: Any, contract_id: str, text: str | None, default: ContractVersion
) -> ContractVersion:
    if text is None:
        return default
    try:
        found: ContractVersion = resolve(f"{contract_id}@{text}")
    except UnknownContract as exc:
        raise InvalidParameter("version", exc.detail) from None
    return found


def _schema_diff(old: ContractVersion, new: ContractVersion) -> list[tuple[str, str]]:
    """The schemas' pretty JSON, line by line: (kind, text), kind one of add, del, same, hunk."""

    def text(version: ContractVersion) -> list[str]:
        return json.dumps(version.schema, indent=2, sort_keys=True).splitlines()

    lines = []
    diff = difflib.unified_diff(
        text(old), text(new), str(old.version), str(new.version), n=3, lineterm=""
    )
    for line in list(diff)[2:]:
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        lines.append((kind, line))
    return lines


# -- quality ------------------------------------------------------------------------


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


# -- delivery health ----------------------------------------------------------------


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
    form = await _form(request)
    check_csrf(request, session, form)
    session.principal.require(Role.PARTICIPANT)  # auditors read, they never replay
    letters = _own_letters(request, session.principal.id)
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


def _own_letters(request: web.Request, participant: str) -> DeadLetters:
    if not request.app[ADMISSION].admitted(participant):
        raise Forbidden(f"'{participant}' is not an active participant in the registry")
    letters = request.app[DEAD_LETTERS].get(participant)
    if letters is None:
        raise Forbidden(f"'{participant}' has no dead-letter topic on this node")
    return letters


# -- participants -------------------------------------------------------------------


async def participants(request: web.Request) -> web.Response:
    signed_in(request)
    now = time.time()
    registry = request.app[REGISTRY]
    hosted = {p.id for p in request.app[CONFIG].participants}
    rows = []
    if registry is not None:
        for record in sorted(registry.registry.records(), key=lambda r: r.id):
            file = record.participant
            rows.append(
                {
                    "id": record.id,
                    "status": record.status.value,
                    "kind": file.kind.value,
                    "legal_name": file.legal_name,
                    "sponsor": file.sponsor,
                    "serial": record.serial,
                    "hosted": record.id in hosted,
                    "held_keys": _keys(file.keys, now),
                    "contracts": [
                        f"{c.role.value} {c.contract} {c.versions}" for c in file.contracts
                    ],
                }
            )
    else:
        store = request.app[KEYS]
        for participant in sorted(store.known()):
            public = store.public(participant)
            rows.append(
                {
                    "id": participant,
                    "status": "no registry",
                    "kind": "",
                    "legal_name": "",
                    "sponsor": None,
                    "serial": None,
                    "hosted": participant in hosted,
                    "held_keys": _keys(public, now) if public is not None else [],
                    "contracts": [],
                }
            )
    return render(
        request, "participants.html", title="Participants", rows=rows, registry=registry is not None
    )


def _keys(public: Any, now: float) -> list[dict[str, Any]]:
    keys = []
    for use, entries in (("sign", public.signing), ("encrypt", public.encryption)):
        for key in entries:
            until = getattr(key, "valid_until", None)
            revoked = getattr(key, "revoked_at", None)
            state = (
                "revoked"
                if revoked
                else "expired"
                if until is not None and until < now
                else "valid"
            )
            keys.append(
                {
                    "kid": key.kid,
                    "use": use,
                    "alg": getattr(key, "alg", ""),
                    "until": _when(until),
                    "days_left": None if until is None else int((until - now) // 86_400),
                    "state": state,
                }
            )
    return keys


# -- helpers ------------------------------------------------------------------------


def _auditor(request: web.Request) -> Principal:
    principal = signed_in(request).principal
    principal.require(Role.AUDITOR)
    return principal


def _audit_dir(request: web.Request) -> Any:
    directory = request.app[AUDIT].directory
    if directory is None:
        raise NoAuditLog("this node writes audit events to its structured log only; set audit.dir")
    return directory


def _filled(params: MultiMapping[str]) -> MultiDict[str]:
    """The query without the empty fields a form sends for filters left blank."""
    return MultiDict((k, v) for k, v in params.items() if v != "")


async def _form(request: web.Request) -> MultiMapping[str]:
    if request.content_length is not None and request.content_length > _MAX_FORM:
        raise InvalidParameter("form", "the form is larger than a console form can be")
    if request.content_type != "application/x-www-form-urlencoded":
        raise InvalidParameter("form", "expected an HTML form (application/x-www-form-urlencoded)")
    form = await request.post()
    return MultiDict((k, v) for k, v in form.items() if isinstance(v, str))


def _row(record: dict[str, Any]) -> dict[str, Any]:
    """An audit record as a table row: the usual columns, and the rest as text."""
    usual = ("seq", "time", "event", "outcome", "message_id", "contract", "node")
    rest = {k: v for k, v in record.items() if k not in (*usual, "prev")}
    return {**{k: record.get(k) for k in usual}, "rest": _brief(rest)}


def _brief(fields: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in sorted(fields.items())]


def _when(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")
