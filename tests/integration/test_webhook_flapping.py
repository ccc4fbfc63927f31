"""Push delivery to a webhook that flaps on the real broker: the endpoint cycles through
answering 500, refusing connections (down), answering too late (past the attempt's
timeout) and answering 204, while messages keep coming. Every message is taken
exactly once, none is lost or dead-lettered; a message the endpoint always refuses
goes to the dead-letter topic after exactly ``max_attempts`` attempts, spaced by a
backoff that grows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from gateway.config import WebhookConfig
from tests.integration.conftest import read_topic
from tests.integration.helpers import free_port, node
from tests.integration.test_delivery_semantics import publish, secret_file, until
from tests.support import Federation

pytestmark = pytest.mark.integration

ME = "socialtreasury"
TIMEOUT_S = 0.3
MAX_ATTEMPTS = 20
PHASE_S = 0.8
MODES = ("500", "down", "slow", "ok")
POISON = "REF-2026-999999"
"""The endpoint never takes this referral: its message must end in the dead-letter topic."""


@dataclass
class FlappingEndpoint:
    port: int = field(default_factory=free_port)
    mode: str = "ok"
    calls: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    """webhook-id -> (when, the endpoint's mode) of every call that reached it."""
    taken: Counter[str] = field(default_factory=Counter)
    """webhook-id -> times it was acted upon (answered 2xx)."""
    poison: set[str] = field(default_factory=set)
    runner: web.AppRunner | None = None
    site: web.TCPSite | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        message_id = request.headers["webhook-id"]
        if self.mode == "down" and request.transport is not None:
            request.transport.abort()  # a kept-alive connection to an endpoint gone down
            return web.Response(status=500)
        self.calls.setdefault(message_id, []).append((time.monotonic(), self.mode))
        if json.loads(body)["referralId"] == POISON:
            self.poison.add(message_id)
            return web.Response(status=500)
        if self.mode == "slow":
            await asyncio.sleep(TIMEOUT_S + 0.3)  # the node gave up on this attempt
            return web.Response(status=500)
        if self.mode != "ok":
            return web.Response(status=500)
        self.taken[message_id] += 1
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self.runner.setup()
        await self.listen()

    async def listen(self) -> None:
        assert self.runner is not None
        self.site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await self.site.start()

    async def switch(self, mode: str) -> None:
        if mode == "down" and self.site is not None:
            await self.site.stop()  # connections are refused
            self.site = None
        elif mode != "down" and self.site is None:
            await self.listen()
        self.mode = mode

    async def flap(self, cycles: int) -> None:
        for _ in range(cycles):
            for mode in MODES:
                await self.switch(mode)
                await asyncio.sleep(PHASE_S)
        await self.switch("ok")

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def test_a_flapping_webhook_takes_every_message_once_and_dead_letters_only_after_the_budget(
    bootstrap: str, fed: Federation
) -> None:
    endpoint = FlappingEndpoint()
    await endpoint.start()
    config = fed.config(("minhealth", ME), bootstrap=bootstrap)
    hook = WebhookConfig(
        url=endpoint.url,
        secret_file=secret_file(fed),
        timeout_s=TIMEOUT_S,
        backoff_s=0.05,
        max_backoff_s=0.6,
        max_attempts=MAX_ATTEMPTS,
        max_elapsed_s=120.0,
    )
    participants = tuple(
        dataclasses.replace(p, webhook=hook) if p.id == ME else p for p in config.participants
    )
    config = dataclasses.replace(config, participants=participants)
    sent: list[str] = []
    try:
        async with (
            node(fed, bootstrap, ("minhealth", ME), "node-1", config=config) as running,
            aiohttp.ClientSession() as http,
        ):
            flapping = asyncio.create_task(endpoint.flap(cycles=2))
            for number in range(30):  # spread over the flapping, each on its own key
                message_id = await publish(http, running.url, fed, number, f"key-{number}")
                assert message_id is not None
                sent.append(message_id)
                await asyncio.sleep(0.15)
            await flapping
            await until(lambda: set(endpoint.taken) == set(sent), 30, "every message taken")
            poison = await publish(http, running.url, fed, 999_999, "poison")
            assert poison is not None
            await until(lambda: dead(fed, poison), 30, "the poison message dead-lettered")
        dlq = await read_topic(bootstrap, config.dlq_topic(ME))
    finally:
        await endpoint.stop()

    assert set(endpoint.taken) == set(sent)
    assert max(endpoint.taken.values()) == 1  # taken once each, never pushed again
    delivered = {
        r["message_id"]: r["attempts"]
        for r in fed.audit("node-1")
        if r["event"] == "message.delivered"
    }
    assert set(delivered) == set(sent)
    seen = {mode for m in sent for _, mode in endpoint.calls[m]}
    assert seen == {"500", "slow", "ok"}  # each failure the endpoint can show was met
    refused = sum(delivered.values()) - sum(len(endpoint.calls[m]) for m in sent)
    assert refused > 0  # attempts that found the endpoint down (refused, cut) reached nothing
    assert max(delivered.values()) < MAX_ATTEMPTS

    # The poison message: dead-lettered once, after exactly MAX_ATTEMPTS attempts.
    [(_, headers)] = dlq
    assert headers["ce_id"].decode() == poison
    assert headers["gw_reason"] == b"webhook-failed"
    assert headers["gw_attempts"] == str(MAX_ATTEMPTS).encode()
    assert headers["gw_detail"] == b"HTTP 500"
    times = [at for at, _ in endpoint.calls[poison]]
    assert len(times) == MAX_ATTEMPTS
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert statistics.mean(gaps[:3]) < statistics.mean(gaps[-10:])  # it backs off
    assert max(gaps) < hook.max_backoff_s + 0.5  # within the configured ceiling
    print(
        f"\n{len(sent)} messages over {2 * len(MODES) * PHASE_S:.1f} s of flapping:"
        f" {sum(delivered.values())} attempts ({refused} found it down),"
        f" {len(endpoint.taken)} taken once each, 0 lost; poison dead-lettered after"
        f" {len(times)} attempts, mean gap {statistics.mean(gaps[:3]):.2f} s first,"
        f" {statistics.mean(gaps[-10:]):.2f} s last"
    )


def dead(fed: Federation, message_id: str) -> bool:
    return any(
        r["event"] == "message.dead_lettered" and r["message_id"] == message_id
        for r in fed.audit("node-1")
    )
