"""A soak with a ledger: publish and consume for N minutes, then account for every message.

    python benchmarks/soak.py                       # 3 minutes, a table
    python benchmarks/soak.py --minutes 10 --kill-consumer-every 30 --json

Starts the embedded broker (or uses ``KAFKA_BOOTSTRAP``) and two nodes as their own
processes, on loopback only (``benchmarks/e2e_state.py``: node-a hosts the sender,
node-b the recipients). A publisher sends 1 KiB referrals to one recipient at a steady
rate, single publishes and every ``--batch-every``-th a batch; a consumer pulls them
from node-b and acknowledges them. With ``--kill-consumer-every S`` node-b is
SIGKILLed every S seconds and started again.

The ledger records every message id answered 2xx (single or in a batch) and every
delivery. At the end (after a drain of up to ``--drain-s``) it checks message by
message: each accepted message delivered, a confirmed acknowledgement never followed
by the same message again, nothing delivered twice after it was settled. It exits 1
when a message is lost or a duplicate got through, 0 otherwise. Bounded: the
publisher stops at ``--minutes`` or ``--max-messages``, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from e2e_procs import broker, spawn_node, stop_process, wait_ready
from e2e_state import BENCH_CONTRACT, Federation, build, node_configs, referral

from gateway.audit.store import records
from gateway.demo import PRODUCER
from gateway.logs import configure_logging

RECIPIENT = "socialtreasury"
PAYLOAD_BYTES = 1024
_PULL_MAX = 50


@dataclass
class Ledger:
    """Every publish answer and every delivery, by message id."""

    published: int = 0
    """Messages the publisher tried to publish (each item of a batch counts)."""
    accepted: dict[str, str] = field(default_factory=dict)
    """Message id -> how it went ("single" or "batch"), for every 2xx."""
    refused: Counter[int] = field(default_factory=Counter)
    """Statuses of refused publishes (a batch item's own status)."""
    pulled: Counter[str] = field(default_factory=Counter)
    acked: Counter[str] = field(default_factory=Counter)
    """Acknowledgements the node confirmed."""
    in_doubt: set[str] = field(default_factory=set)
    """Acknowledged when node-b died: the answer never came."""
    after_ack: int = 0
    """Deliveries of a message whose acknowledgement had been confirmed: duplicates let
    through (the node must suppress them)."""
    kills: int = 0
    suppressed: int = 0
    """Copies node-b read again and settled without a delivery (its audit's
    ``message.duplicate`` records): after a kill, what was acknowledged but not yet
    committed."""

    def settled(self) -> set[str]:
        return set(self.acked) | self.in_doubt

    def report(self) -> dict[str, int]:
        accepted = set(self.accepted)
        delivered = accepted & set(self.pulled)
        return {
            "published": self.published,
            "accepted": len(accepted),
            "accepted_batch": sum(1 for how in self.accepted.values() if how == "batch"),
            "refused": sum(self.refused.values()),
            "delivered": len(delivered),
            "redelivered": sum(n - 1 for n in self.pulled.values()),
            "duplicates_after_ack": self.after_ack,
            "acked_twice": sum(1 for n in self.acked.values() if n > 1),
            "delivered_not_accepted": len(set(self.pulled) - accepted),
            "lost": len(accepted - delivered),
            "suppressed_by_node": self.suppressed,
            "consumer_kills": self.kills,
        }

    def verdict(self) -> dict[str, Any]:
        """The report, with ``ok``: nothing lost, no duplicate let through."""
        report: dict[str, Any] = self.report()
        report["ok"] = not (
            report["lost"] or report["duplicates_after_ack"] or report["acked_twice"]
        )
        return report


@dataclass(frozen=True)
class Settings:
    minutes: float
    rate: float
    batch_every: int
    batch_size: int
    max_messages: int
    kill_every_s: float
    drain_s: float


class Publisher:
    def __init__(self, ledger: Ledger, url: str, token: str) -> None:
        self._ledger = ledger
        self._url = f"{url}/v1/contracts/{BENCH_CONTRACT}"
        self._auth = {"Authorization": f"Bearer {token}"}
        self._body = referral(PAYLOAD_BYTES)

    async def run(self, http: aiohttp.ClientSession, settings: Settings) -> None:
        """Publish at ``rate`` messages/s until the time or the count runs out."""
        deadline = time.monotonic() + settings.minutes * 60
        step = 0
        while time.monotonic() < deadline and self._ledger.published < settings.max_messages:
            step += 1
            started = time.monotonic()
            batch = settings.batch_every > 0 and step % settings.batch_every == 0
            count = settings.batch_size if batch else 1
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                await (self._batch(http, count) if batch else self._single(http))
            await asyncio.sleep(max(0.0, count / settings.rate - (time.monotonic() - started)))

    async def _single(self, http: aiohttp.ClientSession) -> None:
        self._ledger.published += 1
        async with http.post(
            f"{self._url}/messages?to={RECIPIENT}",
            data=self._body,
            headers={**self._auth, "Content-Type": "application/json"},
        ) as response:
            body = await response.json(content_type=None)
            if 200 <= response.status < 300:
                self._ledger.accepted[body["message_id"]] = "single"
            else:
                self._ledger.refused[response.status] += 1

    async def _batch(self, http: aiohttp.ClientSession, count: int) -> None:
        self._ledger.published += count
        item = {"payload": json.loads(self._body), "to": [RECIPIENT]}
        async with http.post(
            f"{self._url}/messages:batch", json={"messages": [item] * count}, headers=self._auth
        ) as response:
            body = await response.json(content_type=None)
            if response.status != 200:
                self._ledger.refused[response.status] += count
                return
            for result in body["results"]:
                if 200 <= result["status"] < 300:
                    self._ledger.accepted[result["message_id"]] = "batch"
                else:
                    self._ledger.refused[result["status"]] += 1


class Consumer:
    """The recipient's system: pulls, records, acknowledges; a node down is retried."""

    def __init__(self, ledger: Ledger, url: str, token: str) -> None:
        self._ledger = ledger
        self._url = url
        self._auth = {"Authorization": f"Bearer {token}"}

    async def run(self, http: aiohttp.ClientSession) -> None:
        while True:
            try:
                await self._cycle(http)
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.2)

    async def _cycle(self, http: aiohttp.ClientSession) -> None:
        params = {"wait": "1", "max": str(_PULL_MAX)}
        async with http.get(f"{self._url}/v1/inbox", params=params, headers=self._auth) as got:
            if got.status != 200:
                await asyncio.sleep(0.2)  # starting up
                return
            tags = {m["tag"]: m["message_id"] for m in (await got.json())["messages"]}
        for message_id in tags.values():
            self._ledger.after_ack += message_id in self._ledger.acked
            self._ledger.pulled[message_id] += 1
        if tags:
            await self._ack(http, tags)

    async def _ack(self, http: aiohttp.ClientSession, tags: dict[str, str]) -> None:
        try:
            async with http.post(
                f"{self._url}/v1/inbox/ack", json={"tags": list(tags)}, headers=self._auth
            ) as response:
                done = (await response.json())["acknowledged"] if response.status == 200 else []
        except (aiohttp.ClientError, TimeoutError):
            self._ledger.in_doubt |= set(tags.values())
            raise
        self._ledger.acked.update(tags[t] for t in done)


class Receiving:
    """node-b, which the soak may kill (SIGKILL) and start again."""

    def __init__(self, config: Path, url: str, log: Path) -> None:
        self._config, self.url, self._log = config, url, log
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> asyncio.subprocess.Process:
        self._process = await spawn_node(self._config, self._log, [])
        await wait_ready(self.url, self._process, self._log)
        return self._process

    async def kill_every(self, every_s: float, ledger: Ledger, done: asyncio.Event) -> None:
        """Kill and restart every ``every_s`` until ``done`` (a restart is finished first)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), every_s)
                return
            assert self._process is not None  # started before the soak runs
            self._process.send_signal(signal.SIGKILL)
            await self._process.wait()
            ledger.kills += 1
            await self.start()

    async def stop(self) -> None:
        if self._process is not None:
            await stop_process(self._process)


async def soak(settings: Settings, scratch: Path) -> Ledger:
    fed = build(scratch / "federation")
    home = scratch / "run"
    home.mkdir()
    ledger = Ledger()
    with broker(home) as (bootstrap, _):
        nodes = node_configs(fed, home, bootstrap=bootstrap)
        sending = await spawn_node(nodes.configs["node-a"], home / "node-a.log", [])
        receiving = Receiving(nodes.configs["node-b"], nodes.urls["node-b"], home / "node-b.log")
        try:
            await wait_ready(nodes.urls["node-a"], sending, home / "node-a.log")
            await receiving.start()
            await _exchange(settings, fed, nodes.urls["node-a"], receiving, ledger)
        finally:
            await asyncio.gather(stop_process(sending), receiving.stop())
    ledger.suppressed = sum(
        1 for _, r in records(home / "node-b" / "audit") if r["event"] == "message.duplicate"
    )
    return ledger


async def _exchange(
    settings: Settings, fed: Federation, sender_url: str, receiving: Receiving, ledger: Ledger
) -> None:
    publisher = Publisher(ledger, sender_url, fed.tokens[PRODUCER])
    consumer = Consumer(ledger, receiving.url, fed.tokens[RECIPIENT])
    timeout = aiohttp.ClientTimeout(total=30)
    published = asyncio.Event()
    async with aiohttp.ClientSession(timeout=timeout) as http:
        background = [asyncio.create_task(consumer.run(http))]
        if settings.kill_every_s > 0:
            kills = receiving.kill_every(settings.kill_every_s, ledger, published)
            background.append(asyncio.create_task(kills))
        try:
            await publisher.run(http, settings)
            published.set()  # no kill while draining
            await asyncio.gather(*background[1:])
            await _drain(ledger, settings.drain_s)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)


async def _drain(ledger: Ledger, drain_s: float) -> None:
    """Until every accepted message is settled, or ``drain_s`` passed."""
    deadline = time.monotonic() + drain_s
    # Polled: the ledger is plain counters, checked five times a second while draining.
    while time.monotonic() < deadline and not set(ledger.accepted) <= ledger.settled():  # noqa: ASYNC110
        await asyncio.sleep(0.2)


LABELS = {
    "published": "published (tried)",
    "accepted": "accepted (2xx)",
    "accepted_batch": "  of which in batches",
    "refused": "refused (non-2xx)",
    "delivered": "delivered (accepted and pulled)",
    "redelivered": "redelivered (pulled again before an ack)",
    "duplicates_after_ack": "duplicates after a confirmed ack",
    "acked_twice": "acknowledged twice",
    "delivered_not_accepted": "delivered, not accepted (refused yet in Kafka)",
    "lost": "lost (accepted, never delivered)",
    "suppressed_by_node": "copies suppressed by node-b (replay window)",
    "consumer_kills": "consumer node kills",
}


def table(report: dict[str, Any]) -> str:
    width = max(len(label) for label in LABELS.values())
    lines = [f"{'count':<{width}}  value", f"{'-' * width}  -----"]
    lines += [f"{LABELS[key]:<{width}}  {report[key]}" for key in LABELS]
    lines.append(f"{'verdict':<{width}}  {'ok' if report['ok'] else 'FAILED'}")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> tuple[Settings, bool, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=40.0, help="messages/s offered")
    parser.add_argument("--batch-every", type=int, default=5, help="every Nth publish a batch")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--max-messages", type=int, default=50_000)
    parser.add_argument("--kill-consumer-every", type=float, default=0.0, metavar="S")
    parser.add_argument("--drain-s", type=float, default=90.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep logs and state in this directory")
    args = parser.parse_args(argv)
    settings = Settings(
        minutes=args.minutes,
        rate=args.rate,
        batch_every=args.batch_every,
        batch_size=args.batch_size,
        max_messages=args.max_messages,
        kill_every_s=args.kill_consumer_every,
        drain_s=args.drain_s,
    )
    return settings, args.json, args.keep


def main(argv: list[str] | None = None) -> int:
    settings, as_json, keep = parse(argv)
    configure_logging(sys.stderr, level=logging.WARNING)  # stdout is the report's
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        scratch = keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="soak-")))
        scratch.mkdir(parents=True, exist_ok=True)
        ledger = asyncio.run(soak(settings, scratch))
    report = ledger.verdict()
    report["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(report) if as_json else table(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
