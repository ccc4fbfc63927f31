"""Helpers for integration tests: nodes on the real broker, and their HTTP API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from gateway.audit.store import records
from gateway.config import GatewayConfig
from gateway.node import RunningNode, running_node
from tests.support import REFERRAL, Federation


@asynccontextmanager
async def node(
    fed: Federation,
    bootstrap: str,
    hosted: tuple[str, ...],
    name: str,
    *,
    config: GatewayConfig | None = None,
) -> AsyncIterator[RunningNode]:
    """A node hosting ``hosted``, ready (every inbox consuming) before it is yielded."""
    chosen = config or fed.config(hosted, node_id=name, bootstrap=bootstrap)
    async with running_node(chosen) as running:
        await running.wait_ready(30)
        yield running


async def publish(
    http: aiohttp.ClientSession, url: str, fed: Federation, payload: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        f"{url}/v1/contracts/{REFERRAL}/messages", json=payload, headers=fed.auth("minhealth")
    ) as response:
        return response.status, await response.json(content_type=None)


async def pull(
    http: aiohttp.ClientSession,
    url: str,
    fed: Federation,
    who: str,
    *,
    expect: int,
    wait_s: float = 15.0,
) -> list[dict[str, Any]]:
    """Pull until ``expect`` messages arrived or ``wait_s`` passed."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait_s
    while len(got) < expect and time.monotonic() < deadline:
        async with http.get(
            f"{url}/v1/inbox", params={"wait": "1", "max": "50"}, headers=fed.auth(who)
        ) as response:
            assert response.status == 200
            got += (await response.json())["messages"]
    return got


async def ack(
    http: aiohttp.ClientSession, url: str, fed: Federation, who: str, tags: list[str]
) -> dict[str, list[str]]:
    async with http.post(
        f"{url}/v1/inbox/ack", json={"tags": tags}, headers=fed.auth(who)
    ) as response:
        assert response.status == 200
        result: dict[str, list[str]] = await response.json()
        return result


def audit(fed: Federation, node_id: str) -> list[dict[str, Any]]:
    return [record for _, record in records(fed.root / f"{node_id}.audit")]
