"""Delivery semantics on the real broker: a webhook that is down and comes back, and a
consuming node killed (SIGKILL, its own process) in the middle of a stream."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from gateway.config import WebhookConfig
from tests.api.test_request_response import LOOKUP, RESULT
from tests.api.test_request_response import contract as lookup_contract
from tests.integration.helpers import free_port, node, node_b_config, node_process
from tests.support import REFERRAL, Federation, referral

ME = "socialtreasury"
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


@dataclass
class Endpoint:
    """A participant's system that honours the idempotency key: it acts once per id."""

    port: int = field(default_factory=free_port)
    calls: int = 0
    taken: dict[str, int] = field(default_factory=dict)
    """webhook-id -> position at which it was first taken."""
    runner: web.AppRunner | None = None
    refusing: bool = False
    """Answer every call with a 500 (a broken endpoint)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.calls += 1
        if self.refusing:
            return web.Response(status=500)
        self.taken.setdefault(request.headers["webhook-id"], len(self.taken))
        return web.Response(status=204)

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    target = Endpoint()
    yield target
    await target.down()


def secret_file(fed: Federation) -> Path:
    path = fed.root / "webhook.secret"
    path.write_text(SECRET + "\n")
    return path


async def publish(
    http: aiohttp.ClientSession, url: str, fed: Federation, number: int, key: str
) -> str | None:
    """One referral to socialtreasury; its message id when the node answered 202."""
    async with http.post(
        f"{url}/v1/contracts/{REFERRAL}/messages?to={ME}",
        json=referral(number),
        headers={**fed.auth("minhealth"), "X-Ordering-Key": key},
    ) as response:
        if response.status != 202:
            return None
        message_id: str = (await response.json())["message_id"]
        return message_id


async def until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.05)


async def test_a_webhook_down_for_a_while_then_up_gets_every_message_in_key_order(
    bootstrap: str, fed: Federation, endpoint: Endpoint
) -> None:
    config = fed.config(("minhealth", ME), bootstrap=bootstrap)
    hook = WebhookConfig(
        url=endpoint.url, secret_file=secret_file(fed), backoff_s=0.1, max_backoff_s=0.5
    )
    participants = tuple(
        dataclasses.replace(p, webhook=hook) if p.id == ME else p for p in config.participants
    )
    config = dataclasses.replace(config, participants=participants)
    async with (
        node(fed, bootstrap, ("minhealth", ME), "node-1", config=config) as running,
        aiohttp.ClientSession() as http,
    ):
        sent: dict[str, list[str]] = {"case-a": [], "case-b": []}
        for number in range(20):  # the endpoint is down meanwhile: nothing listens
            key = "case-a" if number % 2 else "case-b"
            message_id = await publish(http, running.url, fed, number, key)
            assert message_id is not None
            sent[key].append(message_id)
        await asyncio.sleep(1.0)
        assert endpoint.calls == 0
        await endpoint.up()
        await until(lambda: len(endpoint.taken) == 20, 30, "every message delivered")
    for messages in sent.values():  # per key, in the order published
        positions = [endpoint.taken[m] for m in messages]
        assert positions == sorted(positions)
    dead = [r for r in fed.audit("node-1") if r["event"] == "message.dead_lettered"]
    assert dead == []


async def test_a_consuming_node_killed_mid_stream_loses_nothing(
    bootstrap: str, fed: Federation, endpoint: Endpoint
) -> None:
    """Publishing runs on one node; the consuming node is its own process, killed with
    SIGKILL while messages flow, and started again: every message the publishing node
    answered 202 for reaches the endpoint."""
    await endpoint.up()
    consumer = node_b_config(
        fed,
        bootstrap,
        {
            "id": ME,
            "token_sha256": [fed.digests[ME]],
            "webhook": {
                "url": endpoint.url,
                "secret_file": str(secret_file(fed)),
                "backoff_s": 0.1,
                "max_backoff_s": 0.5,
            },
        },
    )
    total = 150
    accepted: list[str] = []
    async with (
        node(fed, bootstrap, ("minhealth",), "node-a") as publisher,
        aiohttp.ClientSession() as http,
    ):
        killed = asyncio.Event()

        async def stream() -> None:
            for number in range(total):
                if number == total // 2:
                    # The second half goes out after the kill: however fast the first
                    # half was taken, the node dies with messages still to come.
                    await killed.wait()
                message_id = await publish(http, publisher.url, fed, number, f"k{number % 7}")
                if message_id is not None:
                    accepted.append(message_id)
                await asyncio.sleep(0.01)

        async with node_process(fed, consumer) as first:
            flowing = asyncio.create_task(stream())
            await until(lambda: len(endpoint.taken) >= 30, 60, "messages flowing")
            first.process.send_signal(signal.SIGKILL)
            await first.process.wait()
            killed.set()
        killed_at = len(endpoint.taken)
        async with node_process(fed, consumer):
            await flowing
            await until(lambda: set(accepted) <= set(endpoint.taken), 90, "every accepted message")
    assert len(accepted) == total
    assert set(endpoint.taken) == set(accepted)  # none lost, nothing else
    print(f"\nkilled after {killed_at} taken; {endpoint.calls} calls for {total} messages")


async def test_a_request_across_two_nodes_gets_its_reply_or_times_out(
    bootstrap: str, fed: Federation
) -> None:
    """minhealth asks on node-a; socialtreasury answers on node-b, over the broker."""
    for document in (
        lookup_contract(LOOKUP, "minhealth", ME, response=RESULT),
        lookup_contract(RESULT, ME, "minhealth"),
    ):
        folder = fed.root / "contracts" / document["id"]
        folder.mkdir()
        (folder / "1.0.0.yaml").write_text(yaml.safe_dump(document))
    async with (
        node(fed, bootstrap, ("minhealth",), "node-a") as a,
        node(fed, bootstrap, (ME,), "node-b") as b,
        aiohttp.ClientSession() as http,
    ):

        async def ask(wait: float) -> tuple[int, dict[str, Any]]:
            async with http.post(
                f"{a.url}/v1/contracts/{LOOKUP}/requests?to={ME}&wait={wait}",
                json={"citizen": "P0000012345"},
                headers=fed.auth("minhealth"),
            ) as response:
                return response.status, await response.json()

        async def answer(eligible: bool) -> str:
            async with http.get(f"{b.url}/v1/inbox?wait=10", headers=fed.auth(ME)) as response:
                [request] = (await response.json())["messages"]
            async with http.post(
                f"{b.url}/v1/messages/{request['message_id']}/reply",
                json={"citizen": "P0000012345", "eligible": eligible},
                headers=fed.auth(ME),
            ) as response:
                assert response.status == 202
            message_id: str = request["message_id"]
            return message_id

        # Within the wait: 200 with the reply.
        asking = asyncio.create_task(ask(wait=20))
        answered = await answer(eligible=True)
        status, body = await asking
        assert status == 200
        assert body["correlation_id"] == answered
        assert body["reply"]["payload"]["eligible"] is True

        # Not within the wait: 202, and the reply reaches the inbox afterwards.
        status, body = await ask(wait=0.5)
        assert (status, body["reply"]) == (202, None)
        await answer(eligible=False)
        async with http.get(f"{a.url}/v1/inbox?wait=10", headers=fed.auth("minhealth")) as got:
            [late] = (await got.json())["messages"]
        assert (late["contract"], late["correlation_id"]) == (RESULT, body["correlation_id"])
