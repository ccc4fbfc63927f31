"""The console's aiohttp sub-application: sign-in, sessions, and the guard around every page.

Mounted at ``/console/`` on the node's app. Its own middleware, :func:`guard`:

- finds the session from the ``__Host-gw_console`` cookie (HttpOnly, Secure,
  SameSite=Strict, Path=/) and the principal it stands for, checked against
  the node's credentials on every request;
- refuses a POST from another origin, or without the session's CSRF token;
- answers errors as HTML pages with the API's status codes, audited as the
  API audits them (``auth.failed``, ``access.denied``, ``request.refused``);
- puts the security headers on every answer: a CSP allowing only this
  origin's own script and style (no inline script, no framing), nosniff,
  no referrer, no caching.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from importlib import resources
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
import structlog
from aiohttp import web
from multidict import MultiDict

from gateway import errors
from gateway.api.auth import Principal
from gateway.api.keys import (
    ADMISSION,
    AUDIT,
    AUTH,
    CALLER,
    CATALOG,
    CONFIG,
    DEAD_LETTERS,
    INBOXES,
    KEYS,
    REGISTRY,
)
from gateway.api.problems import account_for, refused
from gateway.console.quality import Quality
from gateway.console.sessions import COOKIE, Session, Sessions

log = structlog.get_logger("gateway.console")

SESSIONS = web.AppKey("console_sessions", Sessions)
TEMPLATES = web.AppKey("console_templates", jinja2.Environment)
QUALITY: web.AppKey[Quality | None] = web.AppKey("console_quality")
STATIC = web.AppKey("console_static", dict[str, tuple[bytes, str, str]])
"""File name -> (content, content type, ETag)."""

SESSION: ContextVar[Session | None] = ContextVar("console_session", default=None)
"""The request's :class:`Session` (or None), set by :func:`guard` for the request."""

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not no-referrer: with it, Chromium sends "Origin: null" on form posts, and the
    # origin check below could not tell the console's own forms from anyone's.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
_SHARED = (CONFIG, CATALOG, AUTH, KEYS, REGISTRY, AUDIT, ADMISSION, INBOXES, DEAD_LETTERS)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def mount(parent: web.Application, add_routes: Callable[[web.Application], None]) -> None:
    """Build the console on ``parent``'s resources and serve it under ``/console/``."""
    config = parent[CONFIG].console
    app = web.Application(middlewares=[guard])
    for key in _SHARED:
        app[key] = parent[key]  # type: ignore[misc]  # one AppKey at a time, types match
    app[SESSIONS] = Sessions(idle_s=config.session_idle_s, max_s=config.session_max_s)
    app[TEMPLATES] = environment()
    directory = parent[AUDIT].directory
    app[QUALITY] = Quality(directory) if directory is not None else None
    app[STATIC] = _static_files()
    add_routes(app)
    parent.router.add_get("/console", _to_console)  # before the sub-app, which takes it
    parent.add_subapp("/console/", app)


async def _to_console(_: web.Request) -> web.Response:
    """``/console`` as typed: the console is at ``/console/``."""
    response = see_other("/console/")
    response.headers.update(HEADERS)
    return response


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["moment"] = moment
    return env


def moment(text: object) -> str:
    """An audit time (``2026-11-27T03:34:49.687454Z``) to the second, for reading."""
    if not isinstance(text, str) or len(text) < 19:
        return str(text or "")
    return text[:10] + " " + text[11:19] + ("Z" if text.endswith("Z") else "")


def _static_files() -> dict[str, tuple[bytes, str, str]]:
    files = {}
    for entry in resources.files("gateway.console").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _STATIC_TYPES:
            data = entry.read_bytes()
            etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
            files[entry.name] = (data, _STATIC_TYPES[suffix], etag)
    return files


async def static(request: web.Request) -> web.Response:
    found = request.app[STATIC].get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound(text="no such file")
    data, content_type, etag = found
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    response = web.Response(body=data, content_type=content_type, charset="utf-8")
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "no-cache"
    return response


# -- the guard --------------------------------------------------------------------


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    caller, current = CALLER.set(None), SESSION.set(None)
    try:
        SESSION.set(_session(request))
        if request.method == "POST":
            _check_post(request)
        response = await handler(request)
    except errors.GatewayError as exc:
        response = _error_page(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:  # a redirect raised from deep in a page (to sign in)
            response = see_other(exc.headers["Location"])
        else:
            code = exc.reason.lower().replace(" ", "-")
            refused(request, code, exc.status)
            response = render(request, "error.html", status=exc.status, title=exc.reason)
    except Exception:
        log.exception("unhandled_error", path=request.path)
        response = render(request, "error.html", status=500, title="Internal error")
    finally:
        CALLER.reset(caller)
        SESSION.reset(current)
    response.headers.update(HEADERS)
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def _session(request: web.Request) -> Session | None:
    """The live session the cookie names, still held by a valid token."""
    cookie = request.cookies.get(COOKIE)
    sessions = request.app[SESSIONS]
    session = sessions.get(cookie)
    if session is None:
        return None
    if request.app[AUTH].holder(session.token_sha256) != session.principal:
        # The token was removed (or given to someone else): the session goes with it.
        sessions.close(cookie)
        request.app[AUDIT].record(
            "console.signed_out",
            principal=session.principal.id,
            role=session.principal.role.value,
            why="token-withdrawn",
        )
        return None
    CALLER.set(session.principal)
    return session


def _check_post(request: web.Request) -> None:
    """A POST must come from this origin (browsers send Origin on every POST)."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null" or urlsplit(origin).netloc != request.host:
        raise CrossOrigin("the form was not sent from this console's own pages")
    if request.headers.get("Sec-Fetch-Site") not in (None, "same-origin"):
        raise CrossOrigin("the form was not sent from this console's own pages")


class CrossOrigin(errors.Forbidden):
    code = "cross-origin-form"
    title = "Form refused"


class BadCsrf(errors.Forbidden):
    code = "csrf-token-mismatch"
    title = "Form refused"


def _error_page(request: web.Request, exc: errors.GatewayError) -> web.Response:
    status = account_for(request, exc)  # audited exactly as the API audits it
    return render(request, "error.html", status=status, title=exc.title, detail=exc.detail)


# -- pages ------------------------------------------------------------------------


def see_other(location: str) -> web.Response:
    """303: go (GET) there; for after a form, and for the sign-in page."""
    return web.Response(status=303, headers={"Location": location})


def session_of(request: web.Request) -> Session | None:
    return SESSION.get()


def signed_in(request: web.Request) -> Session:
    """The request's session; without one, a redirect to the sign-in page."""
    session = session_of(request)
    if session is None:
        raise web.HTTPSeeOther(f"/console/login?next={_quote_path(request)}")
    return session


def check_csrf(request: web.Request, session: Session, form: Any) -> None:
    if not session.check_csrf(form.get("csrf") if hasattr(form, "get") else None):
        raise BadCsrf("the form's token is missing or stale: reload the page and try again")


MAX_FORM_BYTES = 4096
"""A console form is a token or a few hidden fields."""


async def read_form(request: web.Request) -> MultiDict[str]:
    """The fields of an HTML form (urlencoded, small); :class:`InvalidParameter` otherwise."""
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise errors.InvalidParameter("form", "the form is larger than a console form can be")
    if request.content_type != "application/x-www-form-urlencoded":
        raise errors.InvalidParameter(
            "form", "expected an HTML form (application/x-www-form-urlencoded)"
        )
    form = await request.post()
    return MultiDict((k, v) for k, v in form.items() if isinstance(v, str))


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    session = session_of(request)
    principal: Principal | None = session.principal if session is not None else None
    flash = session.flash[:] if session is not None else []
    if session is not None:
        session.flash.clear()
    page = request.app[TEMPLATES].get_template(template)
    text = page.render(
        principal=principal,
        csrf=session.csrf if session is not None else "",
        flash=flash,
        node=request.app[CONFIG].node_id,
        path=request.path,
        **{"detail": "", **context},
    )
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a console path only (never another site)."""
    if (
        value
        and value.startswith("/console/")
        and "//" not in value
        and "\\" not in value
        and value.isprintable()
        and len(value) <= 512
    ):
        return value
    return "/console/"


def _quote_path(request: web.Request) -> str:
    return quote(str(request.rel_url), safe="")
