"""Clock skew between nodes on the real broker: a sender whose clock runs ahead within
``delivery.max_clock_skew_s`` is delivered; beyond it, or so far behind that its
messages look older than ``max_age_s``, the receiving node refuses them to the
dead-letter topic with the reason, and never delivers them.

The sending node's clock is skewed through ``running_node(wall_clock=...)``, a
test-only seam: no setting moves a node's clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import aiohttp
import pytest

from gateway.config import DeliveryConfig
from gateway.node import running_node
from tests.integration.conftest import read_topic
from tests.integration.helpers import audit, node, pull
from tests.support import REFERRAL, Federation, referral

pytestmark = pytest.mark.integration

ME = "socialtreasury"
SKEW_S = 30.0
MAX_AGE_S = 600.0


async def dead_letters(bootstrap: str, topic: str, expect: int) -> dict[str, dict[str, str]]:
    """message id -> the gw_ headers of its dead letter, once ``expect`` are there."""
    deadline = time.monotonic() + 20
    while True:
        found = {
            headers["ce_id"].decode(): {
                k: v.decode() for k, v in headers.items() if k.startswith("gw_")
            }
            for _, headers in await read_topic(bootstrap, topic)
        }
        if len(found) >= expect or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_a_skewed_sender_is_delivered_within_the_bound_and_dead_lettered_beyond(
    fed: Federation, bootstrap: str, http: aiohttp.ClientSession
) -> None:
    offset = {"s": 0.0}
    sender = fed.config(("minhealth",), node_id="node-a", bootstrap=bootstrap)
    receiver = fed.config((ME,), node_id="node-b", bootstrap=bootstrap)
    receiver = dataclasses.replace(
        receiver, delivery=DeliveryConfig(max_clock_skew_s=SKEW_S, max_age_s=MAX_AGE_S)
    )
    sent: dict[float, str] = {}
    async with (
        running_node(sender, wall_clock=lambda: time.time() + offset["s"]) as a,
        node(fed, bootstrap, (ME,), "node-b", config=receiver) as b,
    ):
        await a.wait_ready(30)
        for number, skew in enumerate((SKEW_S - 10, 0.0, SKEW_S + 60, -(MAX_AGE_S + 60))):
            offset["s"] = skew
            async with http.post(
                f"{a.url}/v1/contracts/{REFERRAL}/messages?to={ME}",
                json=referral(number),
                headers=fed.auth("minhealth"),
            ) as response:
                assert response.status == 202  # the sender cannot know: it is its clock
                sent[skew] = (await response.json())["message_id"]
        delivered = await pull(http, b.url, fed, ME, expect=2)
        refused = await dead_letters(bootstrap, receiver.dlq_topic(ME), expect=2)
        # Nothing more arrives: the refused ones are never handed out.
        delivered += await pull(http, b.url, fed, ME, expect=1, wait_s=2)

    assert sorted(m["message_id"] for m in delivered) == sorted([sent[SKEW_S - 10], sent[0.0]])
    ahead, behind = sent[SKEW_S + 60], sent[-(MAX_AGE_S + 60)]
    assert set(refused) == {ahead, behind}
    assert refused[ahead]["gw_reason"] == "issued-in-future"
    assert refused[ahead]["gw_detail"].startswith("issued ")
    assert refused[behind]["gw_reason"] == "expired"
    assert refused[behind]["gw_node"] == "node-b"
    rejected = {
        r["message_id"]: r["reason"]
        for r in audit(fed, "node-b")
        if r["event"] == "envelope.rejected"
    }
    assert rejected == {ahead: "issued-in-future", behind: "expired"}
