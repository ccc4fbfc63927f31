"""Requests aiohttp's HTTP parser refuses, answered as problem details.

A request line or header that is malformed, too long or one too many never
reaches the application or its middleware: aiohttp answers it itself, as
text/plain quoting the offending bytes, and logs the same bytes with a
traceback, so a bearer token on a line next to a bad one ends up in the log.
This runner's connections answer those with an RFC 9457 problem document that
names only the kind of error, log ``http_unparsable`` with the status and the
error's class (never the bytes), and close the connection.

    runner = ProblemRunner(app, handle_signals=False, access_log=None)
"""

from __future__ import annotations

import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.api.problems import problem

log = structlog.get_logger("gateway.api")


class ProblemRequestHandler(RequestHandler):
    """aiohttp's connection handler, with parser errors answered as problem details."""

    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: too late for another answer
            raise ConnectionError("a response was sent already")
        error = type(exc).__name__ if exc is not None else None
        log.warning("http_unparsable", status=status, error=error, remote=request.remote)
        if status >= 500:
            response = problem(
                500, "internal-error", "Internal error", "the request could not be served"
            )
        else:
            response = problem(status, "bad-http-request", "Bad HTTP request", _detail(exc))
        response.force_close()
        return response


def _detail(exc: BaseException | None) -> str:
    """What was wrong, in general terms: the parser's own message quotes the bytes."""
    if isinstance(exc, LineTooLong):
        return "the request line or a header is too long"
    if isinstance(exc, BadHttpMethod):
        return "the request is not HTTP"
    return "the request is not valid HTTP/1.1 (a malformed line, header or framing)"


class _ProblemServer(web.Server):
    def __call__(self) -> RequestHandler:
        # aiohttp has no setting for the connection handler's class: the one seam is here.
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class ProblemRunner(web.AppRunner):
    """An :class:`aiohttp.web.AppRunner` whose connections use :class:`ProblemRequestHandler`."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _ProblemServer  # same layout, one method more specific
        return server
