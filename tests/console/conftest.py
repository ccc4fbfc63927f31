"""Console fixtures: a node with an auditor, and HTTP clients that keep cookies.

``console`` runs on the in-memory transport (the security properties of the
pages need no broker); the browser tests in test_browser.py use the real one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from gateway.api.auth import new_token
from gateway.config import Auditor, GatewayConfig
from gateway.node import RunningNode, running_node
from tests.fakes import MemoryTransport
from tests.support import Federation

AUDITOR = "soc"
HOSTED = ("minhealth", "socialtreasury", "acme-analytics")
COOKIE = "__Host-gw_console"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Console:
    node: RunningNode
    fed: Federation
    transport: MemoryTransport

    def client(self) -> aiohttp.ClientSession:
        """A client with its own cookie jar; it treats the node as a secure origin, as
        browsers treat loopback, so the Secure cookie comes back."""
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[URL(self.node.url)])
        return aiohttp.ClientSession(base_url=self.node.url, cookie_jar=jar)

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": self.node.url.rstrip("/")}

    async def sign_in(self, http: aiohttp.ClientSession, who: str) -> str:
        """Sign ``who`` in; the CSRF token of the session."""
        async with http.post(
            "/console/login",
            data={"token": self.fed.tokens[who], "next": "/console/contracts"},
            headers=self.origin,
            allow_redirects=False,
        ) as answer:
            assert answer.status == 303, await answer.text()
        async with http.get("/console/contracts") as page:
            assert page.status == 200
            return csrf_of(await page.text())


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


def with_auditor(fed: Federation, config: GatewayConfig, **changes: Any) -> GatewayConfig:
    fed.tokens[AUDITOR], digest = new_token()
    return dataclasses.replace(
        config, auditors=(Auditor(id=AUDITOR, token_sha256=(digest,)),), **changes
    )


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    fed = Federation.create(tmp_path)
    config = with_auditor(fed, fed.config(HOSTED, bootstrap="memory"))
    transport = MemoryTransport()
    async with running_node(config, transport=transport) as node:
        await node.wait_ready(5)
        yield Console(node, fed, transport)
