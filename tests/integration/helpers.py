"""Helpers for integration tests: nodes on the real broker, and their HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.audit.store import records
from gateway.config import GatewayConfig
from gateway.node import RunningNode, running_node
from tests.support import REFERRAL, Federation

ROOT = Path(__file__).resolve().parents[2]


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def node_b_config(fed: Federation, bootstrap: str, participant: dict[str, Any]) -> Path:
    """``node-b.yaml`` for a node process hosting ``participant`` (its config entry), with
    consumer-group timeouts short enough that a restarted node rejoins in seconds."""
    path = fed.root / "node-b.yaml"
    settings = {
        "node_id": "node-b",
        "prefix": fed.prefix,
        "contracts_dir": str(fed.root / "contracts"),
        "keys_dir": str(fed.root / "keys"),
        "key_passphrase_file": str(fed.root / "passphrase"),
        "state_dir": str(fed.root / "node-b.state"),
        "audit": {"dir": str(fed.root / "node-b.audit"), "topic": False},
        "participants": [participant],
        "kafka": {
            "bootstrap": bootstrap,
            "session_timeout_s": 6.0,
            "heartbeat_interval_s": 1.0,
            "rebalance_timeout_s": 2.0,
        },
        "http": {"host": "127.0.0.1", "port": free_port()},
    }
    path.write_text(yaml.safe_dump(settings))
    return path


@dataclass
class Node:
    node_id: str
    url: str
    config: Path
    process: asyncio.subprocess.Process


@contextlib.asynccontextmanager
async def node_process(fed: Federation, config: Path) -> AsyncIterator[Node]:
    """``gateway serve --config CONFIG`` as its own process, ready before it is yielded;
    its output goes to ``<node_id>.log`` (appended: a restarted node adds to it)."""
    settings = yaml.safe_load(await asyncio.to_thread(config.read_text))
    log = await asyncio.to_thread((fed.root / f"{settings['node_id']}.log").open, "ab")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "serve",
        "--config",
        str(config),
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{settings['http']['port']}"
    try:
        await _ready(url, process, fed.root / f"{settings['node_id']}.log")
        yield Node(settings["node_id"], url, config, process)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


def _tail(log: Path) -> str:
    return log.read_text()[-3000:]


async def _ready(url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.returncode is not None:
                pytest.fail(f"the node exited: {_tail(log)}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    pytest.fail(f"the node did not become ready: {_tail(log)}")


def audit(fed: Federation, node_id: str) -> list[dict[str, Any]]:
    return [record for _, record in records(fed.root / f"{node_id}.audit")]
