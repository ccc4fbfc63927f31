from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from gateway.node import RunningNode, running_node
from tests.fakes import MemoryTransport
from tests.support import Federation


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
    config = fed.config(("minhealth", "socialtreasury", "acme-analytics"), bootstrap="memory")
    async with running_node(config, transport=transport) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            yield Gateway(node, http, fed, transport)
