"""A consuming node SIGKILLed again and again while its participant pulls and acks:
every message the publishing node answered 2xx for is pulled and acknowledged across
the restarts, and a message acknowledged once is never handed out again (the replay
window in the node's state directory suppresses the copy read again after a crash
before the offset commit). What was pulled and not yet acknowledged at a kill comes
again: those redeliveries are counted, not forbidden.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
import yaml

from tests.integration.helpers import audit, node, node_b_config, node_process
from tests.integration.test_delivery_semantics import publish, until
from tests.support import Federation

pytestmark = pytest.mark.integration

ME = "socialtreasury"
WAVE = 40
KILLS = 3


@dataclass
class Consumer:
    """A participant's system pulling from its node and acknowledging what it took."""

    url: str
    fed: Federation
    pulled: Counter[str] = field(default_factory=Counter)
    acked: Counter[str] = field(default_factory=Counter)
    """Acknowledgements the node confirmed, by message id."""
    in_doubt: set[str] = field(default_factory=set)
    """Acknowledged when the node died: the answer never came."""
    refusals: Counter[int] = field(default_factory=Counter)
    """Statuses other than 200, by status (a node starting up may answer 503)."""
    after_ack: int = 0
    """Handed out again after a confirmed acknowledgement: a duplicate let through."""

    _kill_at: int | None = None
    _kill: Callable[[], None] | None = None
    _before_ack: bool = False

    def kill_after(self, acks: int, kill: Callable[[], None], *, before_ack: bool) -> None:
        """Call ``kill`` as soon as ``acks`` acknowledgements were confirmed: at once, or
        ``before_ack`` of the next messages pulled (which then come again)."""
        self._kill_at, self._kill, self._before_ack = acks, kill, before_ack

    def _due(self, *, before_ack: bool) -> Callable[[], None] | None:
        kill, at = self._kill, self._kill_at
        if kill is None or at is None or before_ack != self._before_ack or len(self.acked) < at:
            return None
        self._kill = None
        return kill

    def settled(self) -> set[str]:
        return set(self.acked) | self.in_doubt

    async def run(self, http: aiohttp.ClientSession) -> None:
        while True:
            try:
                await self._cycle(http)
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.1)  # the node is down: try again

    async def _cycle(self, http: aiohttp.ClientSession) -> None:
        auth = self.fed.auth(ME)
        async with http.get(
            f"{self.url}/v1/inbox", params={"wait": "1", "max": "10"}, headers=auth
        ) as response:
            if response.status != 200:
                self.refusals[response.status] += 1
                await asyncio.sleep(0.1)
                return
            messages = (await response.json())["messages"]
        tags = {m["tag"]: m["message_id"] for m in messages}
        for message_id in tags.values():
            self.after_ack += message_id in self.acked
            self.pulled[message_id] += 1
        if not tags:
            return
        if kill := self._due(before_ack=True):
            kill()
            return
        try:
            async with http.post(
                f"{self.url}/v1/inbox/ack", json={"tags": list(tags)}, headers=auth
            ) as response:
                if response.status != 200:
                    self.refusals[response.status] += 1
                    return
                done = (await response.json())["acknowledged"]
        except aiohttp.ClientError:
            self.in_doubt |= set(tags.values())
            raise
        self.acked.update(tags[t] for t in done)
        if kill := self._due(before_ack=False):
            kill()


async def test_a_consuming_node_killed_repeatedly_loses_nothing_and_repeats_no_ack(
    bootstrap: str, fed: Federation
) -> None:
    config = node_b_config(fed, bootstrap, {"id": ME, "token_sha256": [fed.digests[ME]]})
    port = yaml.safe_load(config.read_text())["http"]["port"]
    consumer = Consumer(f"http://127.0.0.1:{port}", fed)
    accepted: list[str] = []
    pending_at_kills: list[int] = []
    async with (
        node(fed, bootstrap, ("minhealth",), "node-a") as publisher,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
    ):

        async def wave(first: int) -> None:
            for number in range(first, first + WAVE):
                message_id = await publish(http, publisher.url, fed, number, f"k{number % 7}")
                if message_id is not None:
                    accepted.append(message_id)
                await asyncio.sleep(0.02)

        consuming = asyncio.create_task(consumer.run(http))
        try:
            for round_ in range(KILLS):
                async with node_process(fed, config) as b:
                    publishing = asyncio.create_task(wave(round_ * WAVE))
                    killed = asyncio.Event()

                    def kill(
                        process: asyncio.subprocess.Process = b.process,
                        killed: asyncio.Event = killed,
                    ) -> None:
                        process.send_signal(signal.SIGKILL)
                        pending_at_kills.append(len(set(accepted) - consumer.settled()))
                        killed.set()

                    consumer.kill_after(len(consumer.acked) + 10, kill, before_ack=round_ == 1)
                    await asyncio.wait_for(killed.wait(), 60)
                    await b.process.wait()
                    await publishing  # while the node is down, messages wait in Kafka
            async with node_process(fed, config):
                await wave(KILLS * WAVE)
                await until(lambda: set(accepted) <= consumer.settled(), 60, "all settled")
        finally:
            consuming.cancel()
            await asyncio.gather(consuming, return_exceptions=True)

    total = (KILLS + 1) * WAVE
    assert len(accepted) == total
    assert all(pending > 0 for pending in pending_at_kills)  # killed mid-delivery
    assert set(consumer.pulled) == set(accepted)  # every one delivered, nothing else
    assert consumer.after_ack == 0  # a confirmed ack is final, across kills
    assert max(consumer.acked.values()) == 1
    assert set(accepted) <= consumer.settled()
    redelivered = sum(n - 1 for n in consumer.pulled.values())
    assert redelivered > 0  # what was pulled and not acked at the second kill came again
    suppressed = [r for r in audit(fed, "node-b") if r["event"] == "message.duplicate"]
    print(
        f"\n{KILLS} kills with {pending_at_kills} messages pending; {total} accepted,"
        f" {len(consumer.pulled)} delivered, {redelivered} redelivered (pulled, unacked at"
        f" a kill), {len(consumer.in_doubt)} acks in doubt, {len(suppressed)} copies"
        f" suppressed by the replay window, 0 lost"
    )
