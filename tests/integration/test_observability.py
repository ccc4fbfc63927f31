"""Two nodes on the real broker: /metrics on both moves by what flowed, and the trace id
a publisher sent to node-a comes out with the delivery on node-b (pull and webhook).

node-a hosts the publisher, minhealth; node-b hosts socialtreasury (pulls its inbox)
and acme-analytics (takes delivery by webhook).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.config import WebhookConfig
from gateway.tracing import parse
from tests.integration.helpers import ack, node, pull
from tests.support import REFERRAL, Federation, moved, parse_metrics, referral

PULLER, PUSHED = "socialtreasury", "acme-analytics"
MESSAGES = 5
TRACE = "0af7651916cd43dd8448eb211c80319c"
PUSH_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
C = f'contract="{REFERRAL}"'


@pytest.fixture
async def hook() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A participant's webhook endpoint: its URL, and the headers of every call."""
    calls: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        calls.append({name.lower(): value for name, value in request.headers.items()})
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", calls
    await runner.cleanup()


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(f"{url}/metrics") as response:
        assert response.status == 200
        return parse_metrics(await response.text())


async def send(
    http: aiohttp.ClientSession, url: str, fed: Federation, body: Any, to: str, trace: str
) -> int:
    async with http.post(
        f"{url}/v1/contracts/{REFERRAL}/messages?to={to}",
        json=body,
        headers={**fed.auth("minhealth"), "traceparent": f"00-{trace}-b7ad6b7169203331-01"},
    ) as response:
        return response.status


def counted(samples: dict[str, float]) -> dict[str, float]:
    """Counter and histogram samples whose change does not depend on the time taken (the
    inbox gauges, histogram sums and finite buckets do)."""
    return {
        s: v
        for s, v in samples.items()
        if not s.startswith("gateway_inbox_")
        and "_sum" not in s
        and not ("_bucket" in s and "+Inf" not in s)
    }


async def test_metrics_on_two_nodes_move_and_the_trace_id_reaches_the_delivery(
    bootstrap: str, fed: Federation, hook: tuple[str, list[dict[str, str]]]
) -> None:
    url, calls = hook
    secret = fed.root / "webhook.secret"
    secret.write_text("whsec_" + base64.b64encode(b"k" * 32).decode() + "\n")
    config_b = fed.config((PULLER, PUSHED), node_id="node-b", bootstrap=bootstrap)
    webhook = WebhookConfig(url=url, secret_file=secret, backoff_s=0.1, max_backoff_s=0.5)
    config_b = dataclasses.replace(
        config_b,
        participants=tuple(
            dataclasses.replace(p, webhook=webhook) if p.id == PUSHED else p
            for p in config_b.participants
        ),
    )
    async with (
        node(fed, bootstrap, ("minhealth",), "node-a") as a,
        node(fed, bootstrap, (PULLER, PUSHED), "node-b", config=config_b) as b,
        aiohttp.ClientSession() as http,
    ):
        before_a, before_b = await scrape(http, a.url), await scrape(http, b.url)
        for number in range(MESSAGES):
            assert await send(http, a.url, fed, referral(number), PULLER, TRACE) == 202
        rejected = {**referral(), "urgency": "whenever"}
        assert await send(http, a.url, fed, rejected, PULLER, TRACE) == 422
        assert await send(http, a.url, fed, referral(99), PUSHED, PUSH_TRACE) == 202
        messages = await pull(http, b.url, fed, PULLER, expect=MESSAGES)
        await ack(http, b.url, fed, PULLER, [m["tag"] for m in messages])
        deadline = time.monotonic() + 15
        while len([r for r in fed.audit("node-b") if r["event"] == "message.acknowledged"]) < 6:
            assert time.monotonic() < deadline, "the webhook delivery was not acknowledged"
            await asyncio.sleep(0.05)
        after_a, after_b = await scrape(http, a.url), await scrape(http, b.url)

    # node-a: six accepted (five to pull, one pushed), one rejected, each acknowledged by
    # the broker once and sealed (signed and encrypted) once; nothing delivered there.
    assert counted(moved(before_a, after_a)) == {
        f'gateway_publishes_total{{{C},outcome="accepted"}}': MESSAGES + 1,
        f'gateway_publishes_total{{{C},outcome="rejected"}}': 1,
        f'gateway_validation_failures_total{{{C},pointer_class="/urgency"}}': 1,
        'gateway_crypto_operations_total{operation="sign"}': MESSAGES + 1,
        'gateway_crypto_operations_total{operation="encrypt"}': MESSAGES + 1,
        'gateway_publish_ack_seconds_bucket{le="+Inf"}': MESSAGES + 1,
        "gateway_publish_ack_seconds_count": MESSAGES + 1,
    }
    assert after_a["gateway_publish_ack_seconds_sum"] > before_a.get(
        "gateway_publish_ack_seconds_sum", 0
    )
    # node-b: six opened, delivered (pulled or pushed) and acknowledged, timed end to end.
    assert counted(moved(before_b, after_b)) == {
        f'gateway_deliveries_total{{{C},outcome="delivered"}}': MESSAGES + 1,
        f'gateway_deliveries_total{{{C},outcome="acknowledged"}}': MESSAGES + 1,
        'gateway_crypto_operations_total{operation="decrypt"}': MESSAGES + 1,
        'gateway_crypto_operations_total{operation="verify"}': MESSAGES + 1,
        f'gateway_end_to_end_seconds_bucket{{{C},le="+Inf"}}': MESSAGES + 1,
        f"gateway_end_to_end_seconds_count{{{C}}}": MESSAGES + 1,
    }
    assert 0 < after_b[f"gateway_end_to_end_seconds_sum{{{C}}}"] < 60 * (MESSAGES + 1)
    for participant in (PULLER, PUSHED):
        assert f'gateway_inbox_lag{{participant="{participant}"}}' in after_b

    # The trace: the publisher's trace id, a parent id of each hop's own.
    pulled = [parse(m["traceparent"]) for m in messages]
    assert {p.trace_id for p in pulled if p is not None} == {TRACE}
    assert len({p.span_id for p in pulled if p is not None}) == MESSAGES
    [call] = calls
    pushed = parse(call["traceparent"])
    assert pushed is not None
    assert (pushed.trace_id, pushed.span_id != "b7ad6b7169203331") == (PUSH_TRACE, True)
    accepted = {
        r["message_id"]: r["trace_id"]
        for r in fed.audit("node-a")
        if r["event"] == "message.accepted"
    }
    delivered = {
        r["message_id"]: r["trace_id"]
        for r in fed.audit("node-b")
        if r["event"] == "message.delivered"
    }
    assert delivered == accepted
    assert sorted(accepted.values()) == sorted([TRACE] * MESSAGES + [PUSH_TRACE])
