from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from gateway.api.auth import new_token
from gateway.config import Auditor
from gateway.node import RunningNode, running_node
from tests.fakes import MemoryTransport
from tests.support import Federation

AUDITOR = "soc"
HOSTED = ("minhealth", "socialtreasury", "acme-analytics")


@dataclass
class Gateway:
    node: RunningNode
    http: aiohttp.ClientSession
    fed: Federation
    transport: MemoryTransport


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    """One node hosting every participant, on the in-memory transport."""
    fed = Federation.create(tmp_path)
    transport = MemoryTransport()
    config = fed.config(HOSTED, bootstrap="memory")
    async with running_node(config, transport=transport) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            yield Gateway(node, http, fed, transport)


@pytest.fixture
async def audited(tmp_path: Path) -> AsyncIterator[Gateway]:
    """The usual one-node gateway, with an auditor whose token is ``fed.tokens["soc"]``."""
    fed = Federation.create(tmp_path)
    fed.tokens[AUDITOR], digest = new_token()
    config = dataclasses.replace(
        fed.config(HOSTED, bootstrap="memory"),
        auditors=(Auditor(id=AUDITOR, token_sha256=(digest,)),),
    )
    transport = MemoryTransport()
    async with running_node(config, transport=transport) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            yield Gateway(node, http, fed, transport)
