"""The console's routes, and signing in and out. The pages are in ``audit_pages``,
``catalog_pages`` and ``health_pages``: each reads what the HTTP API would, and
renders it for people.

Who sees what follows the API's roles. An auditor (a security team) sees
the audit trail, the log's integrity, quality and delivery health of every
participant hosted here, and may replay nothing; a participant sees the
contracts, its own quality and inbox, and replays its own dead letters. Both
see the contract catalog and the participants.
"""

from __future__ import annotations

from aiohttp import web

from gateway.api.auth import BadCredentials, Role
from gateway.api.keys import AUDIT, AUTH
from gateway.api.problems import audit_refusal
from gateway.console import audit_pages, catalog_pages, health_pages
from gateway.console.app import (
    SESSIONS,
    check_csrf,
    read_form,
    render,
    safe_next,
    see_other,
    session_of,
    signed_in,
    static,
)
from gateway.console.sessions import COOKIE


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/audit", audit_pages.search_page)
    app.router.add_get("/audit/integrity", audit_pages.integrity)
    app.router.add_get("/messages/{message_id}", audit_pages.message_life)
    app.router.add_get("/contracts", catalog_pages.contracts)
    app.router.add_get("/contracts/{contract}", catalog_pages.contract)
    app.router.add_get("/contracts/{contract}/diff", catalog_pages.diff)
    app.router.add_get("/quality", health_pages.quality)
    app.router.add_get("/delivery", health_pages.delivery)
    app.router.add_post("/delivery/replay", health_pages.replay)
    app.router.add_get("/participants", catalog_pages.participants)
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
    form = await read_form(request)
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
    check_csrf(request, session, await read_form(request))
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
