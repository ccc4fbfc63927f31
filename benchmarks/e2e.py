"""End-to-end load: two gateway nodes on a real broker, driven over HTTP.

    python benchmarks/e2e.py            # every scenario and both baselines, ~5 min
    python benchmarks/e2e.py --quick    # a smoke run, ~1 min
    python benchmarks/e2e.py --soak     # 10 minutes of steady load instead: is node RSS flat?
    python benchmarks/e2e.py --json     # for machines

Processes, as in a deployment, started afresh for every scenario: the broker
(the embedded Tansu, or ``KAFKA_BOOTSTRAP``); ``node-a`` hosting the sender
(minhealth) and ``node-b`` hosting the recipients, each ``gateway serve
--config`` with its audit log on (on disk and shipped to the audit topic); and
a load generator (``benchmarks/e2e_load.py``) that publishes to node-a and
pulls and acknowledges on node-b. (The embedded broker keeps every record in
memory and slows down as it fills: in a run that reused one, its CPU per
message at 500 msg/s was three times higher late in the run than fresh.) The federation (keys,
tokens, the bench contract, each start's node configs) is built by
``benchmarks/e2e_state.py``.

For each scenario (``benchmarks/e2e_scenarios.py``: 1 KiB and 16 KiB
payloads, one and three recipients, single and batch publishes, closed loop
for throughput and open loop at fixed rates for latency) it reports messages
per second accepted (answered 202) and delivered (acknowledged by every
recipient), latency from publish request to delivery (p50/p95/p99), CPU
seconds per 1,000 messages of each process (``/proc/<pid>/stat`` read when the
measured window opens and once it is drained) and each process's peak RSS
(``VmRSS`` sampled every 0.2 s during the scenario; ``VmHWM`` at the end).

The baselines are measured in the same run (``benchmarks/e2e_baselines.py``):
the crypto floor (seal and open alone, one core) and the transport ceiling
(aiokafka alone through the same broker); the gateway is reported as a ratio
of each. The machine has two cores shared by every process here, so the
figures are for the whole system on that machine, not for one node.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import secrets
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_baselines import crypto_floor, raw_kafka
from e2e_procs import Child, System, broker, system
from e2e_report import render
from e2e_scenarios import KIB, Loop, Mode, Scenario, default_scenarios, quick_scenarios
from e2e_state import BENCH_CONTRACT, RECIPIENTS, Federation, build, referral
from harness import machine
from procstats import RssSampler, cpu_of, hwm_bytes

from gateway.config import KafkaConfig
from gateway.demo import PRODUCER
from gateway.logs import configure_logging

GATEWAY_BATCH_BYTES = KafkaConfig().producer_batch_bytes
GATEWAY_FETCH_WAIT_MS = KafkaConfig().fetch_max_wait_ms
"""The raw baseline's producer batches, and its consumer fetches, as the nodes' do."""

LOAD = Path(__file__).resolve().parent / "e2e_load.py"
PACKAGES = ["aiohttp", "aiokafka", "cryptography", "jsonschema", "jsonschema-rs", "structlog"]
SIZES = (KIB, 16 * KIB)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add = parser.add_argument
    add("--seconds", type=float, default=7.0, help="measured load per scenario")
    add("--rates", default="500,1000", help="open-loop rates, msg/s, comma-separated")
    add("--batch", type=int, default=100, help="messages per batch publish")
    add("--single-inflight", type=int, default=32, help="closed loop: single publishes in flight")
    add("--batch-inflight", type=int, default=8, help="closed loop: batch publishes in flight")
    add("--raw-inflight", type=int, default=64, help="transport ceiling: sends in flight")
    add("--warmup", type=int, default=300, help="messages published and delivered first")
    add("--only", action="append", default=[], help="run scenarios whose name has this text")
    add("--quick", action="store_true", help="a smoke run: 3 scenarios of 3 s")
    add("--soak", action="store_true", help="instead of the scenarios, --soak-minutes of load")
    add("--soak-minutes", type=float, default=10.0)
    add("--soak-rate", type=float, default=250.0, help="open-loop msg/s during the soak")
    add("--keep", type=Path, help="keep keys, configs and the processes' logs here")
    add("--profile", action="store_true", help="cProfile both nodes into --keep")
    add("--tracemalloc", action="store_true", help="both nodes' allocation growth into --keep")
    add(
        "--fetch-wait-ms",
        type=int,
        help="what-if: the nodes' and raw consumer's fetch_max_wait_ms (gateway default 50)",
    )
    add(
        "--producer-batch-bytes",
        type=int,
        help="what-if: the nodes' and raw producer's max_batch_size (gateway default 512 KiB)",
    )
    add("--uvloop", action="store_true", help="what-if: the nodes on uvloop (pip install uvloop)")
    add("--json", action="store_true")
    args = parser.parse_args(argv)
    if (args.profile or args.tracemalloc) and args.keep is None:
        parser.error("--profile and --tracemalloc write into the --keep directory")
    return args


def wrapper(args: argparse.Namespace, home: Path, node_id: str) -> list[str]:
    """``benchmarks/e2e_node.py`` options for a node; none: plain ``gateway serve``."""
    options = []
    if args.profile:
        options += ["--profile", str(home / f"{node_id}.pstats")]
    if args.fetch_wait_ms is not None:
        options += ["--fetch-wait-ms", str(args.fetch_wait_ms)]
    if args.producer_batch_bytes is not None:
        options += ["--producer-batch-bytes", str(args.producer_batch_bytes)]
    if args.uvloop:
        options.append("--uvloop")
    if args.tracemalloc:
        options += ["--tracemalloc", str(home / f"{node_id}.tracemalloc.txt")]
    return options


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    rates = [float(r) for r in args.rates.split(",")]
    shape = {
        "batch": args.batch,
        "single_inflight": args.single_inflight,
        "batch_inflight": args.batch_inflight,
    }
    if args.quick:
        chosen = quick_scenarios(seconds=min(args.seconds, 3.0), rate=min(rates), **shape)
    else:
        chosen = default_scenarios(seconds=args.seconds, rates=rates, **shape)
    return [s for s in chosen if not args.only or any(o in s.name for o in args.only)]


@contextmanager
def scratch(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=False)
        yield keep.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="e2e-") as directory:
        yield Path(directory)


async def bench(args: argparse.Namespace, note: Callable[[str], None]) -> dict[str, Any]:
    results = header(args)
    with scratch(args.keep) as root:
        fed = build(root)
        note("baselines")
        results["baselines"] = await baselines(args, root)
        results["scenarios"] = []
        if args.soak:
            note(f"soak: {args.soak_minutes:g} min at {args.soak_rate:g} msg/s")
            scenario = Scenario(
                Mode.SINGLE, Loop.OPEN, KIB, 1, args.soak_minutes * 60, rate=args.soak_rate
            )
            soak = await run_scenario(scenario, fed, args, root / "soak", keep_rss_every_s=10.0)
            results["soak"] = soak
            return results
        for n, scenario in enumerate(scenarios(args), 1):
            note(f"{scenario.name} (load average {os.getloadavg()[0]:.2f})")
            row = await run_scenario(scenario, fed, args, root / f"run-{n:02d}")
            results["scenarios"].append(row)
    return results


def header(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "command": shlex.join(["python", "benchmarks/e2e.py", *sys.argv[1:]]),
        "load_average": os.getloadavg(),
        "machine": machine(PACKAGES),
        "broker": "KAFKA_BOOTSTRAP" if os.environ.get("KAFKA_BOOTSTRAP") else "embedded Tansu",
        "fetch_wait_ms": args.fetch_wait_ms,
        "producer_batch_bytes": args.producer_batch_bytes,
        "uvloop": args.uvloop,
        "profiled": args.profile,
    }


async def baselines(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    floors = [
        crypto_floor(size, recipients, seconds=1.0 if args.quick else 2.0)
        for size in SIZES
        for recipients in (1, 3)
    ]
    ceilings = []
    for size in SIZES:
        home = root / f"raw-{size // KIB}k"
        home.mkdir()
        with broker(home) as (bootstrap, broker_pid):  # a fresh one, as for every scenario
            ceiling = await raw_kafka(
                bootstrap=bootstrap,
                topic=f"bench{secrets.token_hex(3)}.raw",
                record_bytes=next(f["envelope_bytes"] for f in floors if f["size"] == size),
                seconds=min(args.seconds, 3.0) if args.quick else args.seconds,
                in_flight=args.raw_inflight,
                scratch=home,
                broker_pid=broker_pid,
                fetch_wait_ms=args.fetch_wait_ms or GATEWAY_FETCH_WAIT_MS,
                producer_batch_bytes=args.producer_batch_bytes or GATEWAY_BATCH_BYTES,
            )
        ceilings.append({"size": size, **ceiling})
    return {"crypto": floors, "kafka": ceilings}


def load_spec(
    scenario: Scenario, fed: Federation, live: System, args: argparse.Namespace
) -> dict[str, Any]:
    recipients = RECIPIENTS[: scenario.recipients]
    return {
        "scenario": scenario.to_json(),
        "sender_url": live.urls["node-a"],
        "receiver_url": live.urls["node-b"],
        "contract": BENCH_CONTRACT,
        "sender_token": fed.tokens[PRODUCER],
        "recipient_tokens": [fed.tokens[r] for r in recipients],
        # One recipient is named; three are every consumer of the contract (no "to").
        "to": list(recipients) if len(recipients) < len(RECIPIENTS) else None,
        "payload": referral(scenario.size).decode(),
        "warmup": args.warmup,
        "drain_s": 60.0,
    }


async def run_scenario(
    scenario: Scenario,
    fed: Federation,
    args: argparse.Namespace,
    home: Path,
    *,
    keep_rss_every_s: float | None = None,
) -> dict[str, Any]:
    """One scenario on a fresh broker and fresh nodes: the embedded broker keeps every
    record in memory and slows down as it fills, which would tax later scenarios."""
    async with system(fed, home, wrapper=functools.partial(wrapper, args)) as live:
        spec = json.dumps(load_spec(scenario, fed, live, args)).encode()
        child = await Child.start([sys.executable, str(LOAD)], log=home / "load.log", stdin=spec)
        pids = {**live.pids, "load": child.pid}
        sampler = RssSampler(pids)
        sampling = asyncio.create_task(sampler.run(keep_every_s=keep_rss_every_s))
        try:
            row = await _window(child, pids, timeout_s=scenario.seconds + 300)
            await child.wait()
        finally:
            sampling.cancel()
    row.update(name=scenario.name, scenario=scenario.to_json(), peak_rss=sampler.peak)
    if sampler.samples:  # seconds from the first sample; RSS bytes, CPU seconds per process
        first = sampler.samples[0][0]
        row["series"] = [(round(t - first, 1), rss, cpu) for t, rss, cpu in sampler.samples]
    return row


async def _window(child: Child, pids: dict[str, int], *, timeout_s: float) -> dict[str, Any]:
    """The load generator's result, and every process's CPU over its measured window."""
    await child.event("window_start", timeout_s=300)
    before = cpu_of(pids)
    load_average = os.getloadavg()[0]
    await child.event("window_end", timeout_s=timeout_s)
    after = cpu_of(pids)
    hwm = {name: hwm_bytes(pids[name]) for name in ("node-a", "node-b")}
    result = await child.event("result")
    result.pop("event")
    return {
        **result,
        "load_average": load_average,
        "cpu_s": {k: after[k] - before[k] for k in pids},
        "vm_hwm": hwm,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    def note(text: str) -> None:
        print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", file=sys.stderr, flush=True)

    # The broker's start and topic creation log here; keep stdout for the tables.
    configure_logging(sys.stderr, level=logging.WARNING)
    results = asyncio.run(bench(args, note))
    print(json.dumps(results, indent=2) if args.json else render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
