"""The web console: audit trail, contracts, quality, delivery health and participants.

Served by the node itself under ``/console/``, rendered on the server, behind
the API's own credentials (a token is exchanged for a session cookie).

    from gateway.console import serve_console
    serve_console(app)      # on the node's aiohttp app, before it starts
"""

from __future__ import annotations

from aiohttp import web

from gateway.console.app import mount
from gateway.console.pages import add_routes


def serve_console(app: web.Application) -> None:
    mount(app, add_routes)


__all__ = ["serve_console"]
