"""The load generator of the end-to-end benchmark: publishes to one node, consumes from the other.

    python benchmarks/e2e_load.py < spec.json

Run by ``benchmarks/e2e.py``, one process per scenario; the spec (on stdin, since it
holds tokens) names the sender node, the receiver node, the tokens, the payload and
the :class:`~e2e_scenarios.Scenario`. Publishers and consumers share this process
and its ``time.perf_counter`` clock, so latency is measured on one clock: from when
a publish request was due (open loop) or sent (closed loop) to when a pull response
carrying the message arrived. Each message carries ``<run>-<seq>`` as its
correlation id, which the receiving node hands back with it.

Publishes go over a minimal keep-alive HTTP/1.1 client (``benchmarks/e2e_http.py``),
cheaper than aiohttp's on the two cores this process shares with the nodes. The
consumers use aiohttp: they long-poll ``GET /v1/inbox?max=100&wait=1`` on the
receiving node (two pollers per recipient) and acknowledge every batch by tag
before pulling again.

Phases, each announced by one JSON line on stdout so that the caller can read the
other processes' counters at the same moments: a warm-up (published, then waited
for until delivered), ``window_start``, the measured load, the drain (until every
accepted message was delivered to and acknowledged by every recipient, or
``drain_s``), ``window_end``, then the result.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from e2e_http import Http1
from e2e_scenarios import Loop, Mode, Scenario

POLLERS = 2
PULL = {"max": "100", "wait": "1"}


class Book:
    """Every message of the run: when it was due, its answer, and its deliveries."""

    def __init__(self, recipients: int) -> None:
        self.run = secrets.token_hex(3)
        self.recipients = recipients
        self.due: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.arrivals: dict[int, list[float]] = {}
        self.accepted: set[int] = set()
        self.counts: Counter[tuple[bool, str]] = Counter()
        """(measured?, "accepted" | "complete") -> messages; complete: at every recipient."""
        self.acked = 0
        self.last_ack = 0.0
        self.measured_from = sys.maxsize
        """Messages numbered from here on are measured; before, the warm-up's."""

    def issue(self, count: int, due: float) -> list[int]:
        first = len(self.due)
        self.due += [due] * count
        return list(range(first, first + count))

    def answer(self, seq: int, status: int) -> None:
        measured = seq >= self.measured_from
        if measured:
            self.statuses[status] += 1
        if status == 202:
            self.accepted.add(seq)
            self.counts[measured, "accepted"] += 1
            if len(self.arrivals.get(seq, ())) >= self.recipients:
                self.counts[measured, "complete"] += 1

    def seq_of(self, correlation_id: str | None) -> int | None:
        run, _, number = (correlation_id or "").partition("-")
        return int(number) if run == self.run and number.isdigit() else None

    def arrived(self, seqs: list[int], now: float) -> None:
        for seq in seqs:
            copies = self.arrivals.setdefault(seq, [])
            copies.append(now)
            if len(copies) == self.recipients and seq in self.accepted:
                self.counts[seq >= self.measured_from, "complete"] += 1

    def acknowledged(self, seqs: list[int], now: float) -> None:
        measured = sum(1 for s in seqs if s >= self.measured_from)
        self.acked += measured
        if measured:
            self.last_ack = now

    def settled(self, *, measured: bool) -> bool:
        """Every accepted message (of the warm-up, or measured) reached every recipient."""
        return self.counts[measured, "complete"] >= self.counts[measured, "accepted"]


class Client:
    """The HTTP side: publishing to the sender's node, pulling from the receiver's."""

    def __init__(self, spec: dict[str, Any], book: Book, scenario: Scenario) -> None:
        self.spec, self.book, self.scenario = spec, book, scenario
        self.payload = spec["payload"].encode()
        self.to = spec["to"]
        self.headers = {"Authorization": f"Bearer {spec['sender_token']}"}
        contract = spec["contract"]
        query = "?" + urlencode({"to": ",".join(self.to)}) if self.to else ""
        self.path = f"/v1/contracts/{contract}/messages{query}"
        self.batch_path = f"/v1/contracts/{contract}/messages:batch"

    async def send(self, http: Http1, due: float) -> None:
        """One request: a single publish, or a batch of ``scenario.batch``."""
        seqs = self.book.issue(self.scenario.batch, due)
        try:
            if self.scenario.mode is Mode.SINGLE:
                statuses = [await self._single(http, seqs[0])]
            else:
                statuses = await self._batch(http, seqs)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            statuses = [0] * len(seqs)
        for seq, status in zip(seqs, statuses, strict=True):
            self.book.answer(seq, status)

    async def _single(self, http: Http1, seq: int) -> int:
        headers = {**self.headers, "X-Correlation-Id": f"{self.book.run}-{seq}"}
        status, _ = await http.post(self.path, self.payload, headers)
        return status

    async def _batch(self, http: Http1, seqs: list[int]) -> list[int]:
        to = b',"to":' + json.dumps(self.to).encode() if self.to else b""
        tail = b',"correlation_id":"%s-%d"}'
        run = self.book.run.encode()
        items = [b'{"payload":' + self.payload + to + tail % (run, seq) for seq in seqs]
        body = b'{"messages":[' + b",".join(items) + b"]}"
        status, answer = await http.post(self.batch_path, body, self.headers)
        if status != 200:
            return [status] * len(seqs)
        return [int(item["status"]) for item in json.loads(answer)["results"]]

    async def consume(self, http: aiohttp.ClientSession, token: str, stop: asyncio.Event) -> None:
        """Pull, note the arrivals, acknowledge; until ``stop`` (finishing the batch in hand)."""
        headers = {"Authorization": f"Bearer {token}"}
        while not stop.is_set():
            async with http.get("/v1/inbox", params=PULL, headers=headers) as r:
                body = await r.read()
                r.raise_for_status()
            now = time.perf_counter()
            messages = json.loads(body)["messages"]
            if not messages:
                continue
            seqs = [s for m in messages if (s := self.book.seq_of(m["correlation_id"])) is not None]
            self.book.arrived(seqs, now)
            tags = {"tags": [m["tag"] for m in messages]}
            async with http.post("/v1/inbox/ack", json=tags, headers=headers) as r:
                r.raise_for_status()
            self.book.acknowledged(seqs, time.perf_counter())


# -- offering load ------------------------------------------------------------------


async def closed_loop(
    send: Callable[[float], Coroutine[Any, Any, None]], concurrency: int, more: Callable[[], bool]
) -> None:
    async def worker() -> None:
        while more():
            await send(time.perf_counter())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def open_loop(
    send: Callable[[float], Coroutine[Any, Any, None]], per_s: float, seconds: float
) -> None:
    """``per_s`` requests a second, each due at its slot whether earlier ones answered or not."""
    start, total, sent = time.perf_counter(), int(per_s * seconds), 0
    running: set[asyncio.Task[None]] = set()
    while sent < total:
        due_now = min(total, int((time.perf_counter() - start) * per_s) + 1)
        for n in range(sent, due_now):
            task = asyncio.create_task(send(start + n / per_s))
            running.add(task)
            task.add_done_callback(running.discard)
        sent = due_now
        await asyncio.sleep(max(0.0, start + sent / per_s - time.perf_counter()))
    await asyncio.gather(*running)


async def settle(book: Book, *, measured: bool, timeout_s: float) -> bool:
    deadline = time.perf_counter() + timeout_s
    while not book.settled(measured=measured):
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# -- one scenario ---------------------------------------------------------------------


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    scenario = Scenario.from_json(spec["scenario"])
    book = Book(scenario.recipients)
    client = Client(spec, book, scenario)
    stop = asyncio.Event()
    sender = Http1(spec["sender_url"], max_connections=512)
    receiver = aiohttp.ClientSession(
        base_url=spec["receiver_url"], timeout=aiohttp.ClientTimeout(total=60)
    )
    async with sender, receiver:
        consumers = [
            asyncio.create_task(client.consume(receiver, token, stop))
            for token in spec["recipient_tokens"]
            for _ in range(POLLERS)
        ]
        await _warm_up(client, sender, spec)
        outcome = await _measure(client, sender, spec)
        stop.set()
        await asyncio.gather(*consumers)
    return outcome


async def _warm_up(client: Client, http: Http1, spec: dict[str, Any]) -> None:
    book, wanted = client.book, spec["warmup"]
    concurrency = client.scenario.concurrency or 8
    await closed_loop(
        lambda due: client.send(http, due), concurrency, lambda: len(book.due) < wanted
    )
    if not await settle(book, measured=False, timeout_s=spec["drain_s"]):
        raise SystemExit("the warm-up messages were not all delivered")
    book.measured_from = len(book.due)


async def _measure(client: Client, http: Http1, spec: dict[str, Any]) -> dict[str, Any]:
    scenario, book = client.scenario, client.book
    say("window_start")
    start = time.perf_counter()

    def send(due: float) -> Coroutine[Any, Any, None]:
        return client.send(http, due)

    if scenario.loop is Loop.OPEN:
        await open_loop(send, scenario.rate / scenario.batch, scenario.seconds)
    else:
        deadline = start + scenario.seconds
        await closed_loop(send, scenario.concurrency, lambda: time.perf_counter() < deadline)
    published = time.perf_counter()
    drained = await settle(book, measured=True, timeout_s=spec["drain_s"])
    say("window_end")
    return summary(book, start=start, published=published, drained=drained)


def summary(book: Book, *, start: float, published: float, drained: bool) -> dict[str, Any]:
    measured = range(book.measured_from, len(book.due))
    accepted = [s for s in measured if s in book.accepted]
    latencies = [
        (arrival - book.due[s]) * 1000 for s in accepted for arrival in book.arrivals.get(s, ())
    ]
    copies = Counter(len(book.arrivals.get(s, ())) for s in accepted)
    delivered_s = book.last_ack - start if book.acked else None
    return {
        "offered": len(measured),
        "accepted": len(accepted),
        "statuses": {str(k): v for k, v in sorted(book.statuses.items())},
        "publish_s": published - start,
        "delivered_s": delivered_s,
        "accepted_per_s": len(accepted) / (published - start),
        "delivered_per_s": book.acked / book.recipients / delivered_s if delivered_s else 0.0,
        "deliveries": book.acked,
        "missing": sum(max(0, book.recipients - n) * c for n, c in copies.items()),
        "duplicates": sum(max(0, n - book.recipients) * c for n, c in copies.items()),
        "drained": drained,
        "latency_ms": percentiles(latencies),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": cuts[49],
        "p95": cuts[94],
        "p99": cuts[98],
        "max": max(values),
        "samples": len(values),
    }


def main() -> int:
    spec = json.loads(sys.stdin.read())
    say("result", **asyncio.run(run(spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
