"""End-to-end publish throughput with and without the audit log: HTTP in, Kafka out.

    python benchmarks/audit_e2e.py [--messages N] [--concurrency C] [--rounds R] [--json]

A node hosting the sender runs in this process against a real broker (the
embedded Tansu, or ``KAFKA_BOOTSTRAP``); a load generator in a second process
posts valid 1 KiB referrals over HTTP with ``C`` requests in flight and times
``N`` of them, each answered 202 only once Kafka acknowledged every
recipient's envelope (``acks=all``). The node's audit log is switched between
rounds: ``disk`` (the real log: every record written to its segment, heads
signed, every record also produced to the ``<prefix>audit`` topic) and
``off`` (nothing recorded). The two alternate round by round so both see the
same machine; the cost of the audit is ``1 - disk msg/s / off msg/s`` per
pair of rounds, and the figure reported is the median over the pairs. As a
steadier second view the node process's CPU time per message is measured too
(``time.process_time``, which excludes the broker and the load generator): the
share of it the audit takes is ``1 - off / disk``.

The node hosts only the sender, so no inbox consumer competes for the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from harness import machine

import gateway.node
from gateway.audit.log import AuditLog
from gateway.audit.store import SignedHead
from gateway.config import GatewayConfig, load_config
from gateway.demo import CONSUMERS, CONTRACT, PRODUCER, prepare_state
from gateway.logs import configure_logging
from gateway.transport.kafka import ensure_topics

ROOT = Path(__file__).resolve().parents[1]
PUBLISH = f"/v1/contracts/{CONTRACT}/messages"


class Switch(AuditLog):
    """The node's real audit log, which a benchmark round can turn off."""

    def __init__(self, inner: AuditLog) -> None:
        super().__init__(node_id="switch")
        self.inner = inner
        self.on = True

    @property
    def directory(self) -> Path | None:
        return self.inner.directory

    @property
    def size(self) -> int:
        return self.inner.size

    def subscribe(self, listener: Callable[[str, int, bytes], None]) -> None:
        self.inner.subscribe(listener)

    def hold_from(self, floor: Callable[[], int]) -> None:
        self.inner.hold_from(floor)

    def record(self, event: str, /, **fields: Any) -> None:
        if self.on:
            self.inner.record(event, **fields)

    def sign_head_if_due(self) -> SignedHead | None:
        return self.inner.sign_head_if_due()

    def close(self) -> None:
        self.inner.close()


def referral(n: int) -> dict[str, Any]:
    """A valid referral of about 1 KiB (the sample contract's first valid example, padded)."""
    from gateway.contracts import load_catalog  # noqa: PLC0415

    example = dict(load_catalog(ROOT / "contracts").resolve(CONTRACT).valid_examples[0])
    example["referralId"] = f"REF-2026-{n:06d}"
    return example


# -- the load generator (a second process) ------------------------------------------


async def load(url: str, token: str, messages: int, concurrency: int) -> dict[str, Any]:
    body = json.dumps(referral(0)).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    failures = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url=url, connector=connector) as http:

        async def worker(count: int) -> None:
            nonlocal failures
            for _ in range(count):
                async with http.post(PUBLISH, data=body, headers=headers) as response:
                    await response.read()
                    failures += response.status != 202

        await asyncio.gather(*(worker(5) for _ in range(concurrency)))  # warm up
        share = [messages // concurrency + (i < messages % concurrency) for i in range(concurrency)]
        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in share))
        elapsed = time.perf_counter() - started
    return {"elapsed_s": elapsed, "messages": messages, "failures": failures}


def client_main(argv: list[str]) -> int:
    url, token, messages, concurrency = argv[0], argv[1], int(argv[2]), int(argv[3])
    print(json.dumps(asyncio.run(load(url, token, messages, concurrency))))
    return 0


# -- the node and the rounds ---------------------------------------------------------


@contextlib.contextmanager
def patched_audit() -> Iterator[list[Switch]]:
    """Make the node wrap its audit log in a :class:`Switch` the rounds can flip."""
    made: list[Switch] = []
    real = gateway.node.open_audit

    def open_audit(config: GatewayConfig, secret: bytes | None) -> AuditLog:
        switch = Switch(real(config, secret))
        made.append(switch)
        return switch

    gateway.node.open_audit = open_audit
    try:
        yield made
    finally:
        gateway.node.open_audit = real


def run_round(url: str, token: str, messages: int, concurrency: int) -> float:
    result = subprocess.run(
        [sys.executable, __file__, "--client", url, token, str(messages), str(concurrency)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    outcome = json.loads(result.stdout)
    if outcome["failures"]:
        raise SystemExit(f"{outcome['failures']} publishes were not answered 202")
    return float(outcome["messages"] / outcome["elapsed_s"])


async def bench(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    config_path, tokens = prepare_state(state, ROOT / "contracts", 0)
    config = load_config(config_path)
    config = GatewayConfig(
        **{
            **{f: getattr(config, f) for f in config.__dataclass_fields__},
            "participants": tuple(p for p in config.participants if p.id == PRODUCER),
        }
    )
    rates: dict[str, list[float]] = {"off": [], "disk": []}
    cpu: dict[str, list[float]] = {"off": [], "disk": []}
    with gateway.node.kafka_for(config) as live, patched_audit() as switches:
        await ensure_topics(live.kafka, [live.inbox_topic(c) for c in CONSUMERS])
        async with gateway.node.running_node(live) as node:
            await node.wait_ready(60)
            [switch] = switches
            loop = asyncio.get_running_loop()
            for n in range(args.rounds):
                order = ("off", "disk") if n % 2 == 0 else ("disk", "off")
                for kind in order:
                    switch.on = kind == "disk"
                    used = time.process_time()
                    rate = await loop.run_in_executor(
                        None, run_round, node.url, tokens[PRODUCER], args.messages, args.concurrency
                    )
                    # The node's CPU per message (its warm-up requests included in both).
                    cpu[kind].append((time.process_time() - used) / args.messages * 1e6)
                    rates[kind].append(rate)
            audited = switch.size
        shipped = _shipped(config)
    costs = [1 - d / o for d, o in zip(rates["disk"], rates["off"], strict=True)]
    cpu_costs = [1 - o / d for d, o in zip(cpu["disk"], cpu["off"], strict=True)]
    return {
        "machine": machine(["aiohttp", "aiokafka", "cryptography", "structlog"]),
        "broker": "KAFKA_BOOTSTRAP" if os.environ.get("KAFKA_BOOTSTRAP") else "embedded Tansu",
        "messages_per_round": args.messages,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "msg_per_s": {k: round(statistics.median(v), 1) for k, v in rates.items()},
        "cost_median": round(statistics.median(costs), 4),
        "cost_quartiles": [round(q, 4) for q in statistics.quantiles(costs, n=4)]
        if len(costs) > 1
        else [round(costs[0], 4)] * 3,
        "node_cpu_us_per_msg": {k: round(statistics.median(v), 1) for k, v in cpu.items()},
        "cpu_share_median": round(statistics.median(cpu_costs), 4),
        "audit_records": audited,
        "shipped_to_topic": shipped,
    }


def _shipped(config: GatewayConfig) -> int:
    assert config.audit.dir is not None
    cursor = config.audit.dir / "shipped.json"
    return int(json.loads(cursor.read_text())["records"]) if cursor.exists() else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--client":
        return client_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="timed publishes per round")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per audit setting")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    with tempfile.TemporaryDirectory(prefix="audit-e2e-") as scratch:
        results = asyncio.run(bench(args, Path(scratch)))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    m = results["machine"]
    print(f"{m.get('cpu')}, Python {m.get('python')}; broker: {results['broker']}")
    print(
        f"{results['rounds']} rounds x {results['messages_per_round']} publishes per audit "
        f"setting, {results['concurrency']} in flight, HTTP -> node -> Kafka (acks=all)"
    )
    rates = results["msg_per_s"]
    print(f"  audit off : {rates['off']:8.1f} msg/s (median)")
    print(f"  audit disk: {rates['disk']:8.1f} msg/s (median)")
    q = results["cost_quartiles"]
    print(
        f"  throughput lost to the audit log: {results['cost_median']:.1%} "
        f"(quartiles {q[0]:.1%} to {q[2]:.1%})"
    )
    us = results["node_cpu_us_per_msg"]
    print(
        f"  node CPU per message: {us['off']:.0f} µs off, {us['disk']:.0f} µs with the audit log "
        f"({results['cpu_share_median']:.1%} of the node's CPU goes to auditing, median)"
    )
    print(
        f"  {results['audit_records']} audit records written, "
        f"{results['shipped_to_topic']} produced to the audit topic"
    )
    verdict = "holds" if results["cost_median"] <= 0.10 else "does NOT hold"
    print(f"Target (at most 10% of end-to-end throughput): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
