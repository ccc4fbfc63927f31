"""``gateway serve`` under cProfile, or with Kafka client settings forced on it.

    python benchmarks/e2e_node.py --config node-a.yaml [--profile OUT]
        [--fetch-wait-ms N] [--producer-batch-bytes N] [--uvloop]

``benchmarks/e2e.py`` starts its nodes with ``python -m gateway.cli serve``; it
starts them with this script only when asked to profile them or to try a what-if:

- ``--profile OUT``: run the node under cProfile and write the statistics to
  ``OUT`` when it stops (``python -m pstats OUT``, then ``sort tottime`` and
  ``stats 30``). cProfile counts every call, so the node runs slower under it
  (four to five times the CPU per message); read the shares, not the microseconds.
  The clock is the process's CPU time (user and system), so waiting, for work
  or for a core, counts for nothing.
- ``--fetch-wait-ms N``: every aiokafka consumer the node creates gets
  ``fetch_max_wait_ms=N``, whatever ``kafka.fetch_max_wait_ms`` (inboxes, 50 by
  default) and the topic reader's 100 say. The embedded Tansu broker holds a
  fetch that long even when records arrive meanwhile, so this bounds the time a
  record waits in the broker for a node to read it.
- ``--producer-batch-bytes N``: the node's producer gets ``max_batch_size=N``
  whatever ``kafka.producer_batch_bytes`` says (the gateway's default is 512 KiB,
  aiokafka's 16 KiB). A record that does not fit the open batch of its
  partition waits for that batch to be sent, and aiokafka sends one request
  per broker at a time: with 16 KiB, six 2.7 KB envelopes fit a batch.
- ``--tracemalloc OUT``: trace the node's allocations (12 frames; the node runs
  two to three times slower); a snapshot after ``--settle-s`` (120) seconds and
  one when it stops, and the 30 call sites whose memory grew most in between
  written to ``OUT``: what a soak's RSS creep is made of.
- ``--uvloop``: run the node on uvloop's event loop instead of asyncio's (not
  a dependency of the gateway: ``pip install uvloop``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiokafka

import gateway.transport.kafka
from gateway.cli import main as gateway_main


def patch(name: str, *, force: bool = False, **settings: int) -> None:
    """Give the aiokafka clients ``gateway.transport.kafka`` creates these settings;
    a keyword the gateway passes itself wins unless ``force`` (the topic reader keeps
    its 100 ms fetch wait; the producer's batch size is the what-if's)."""
    original = getattr(aiokafka, name)

    def create(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **({**kwargs, **settings} if force else {**settings, **kwargs}))

    vars(gateway.transport.kafka)[name] = create


def profiled(argv: list[str], out: Path) -> int:
    # CPU time, not wall time: on a shared machine a process descheduled inside a call
    # would otherwise have that call charged with the wait.
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    try:
        return gateway_main(argv)
    finally:
        profiler.disable()
        profiler.dump_stats(out)


def traced(argv: list[str], out: Path, settle_s: float) -> int:
    """Run the node under tracemalloc: a snapshot once ``settle_s`` passed, another when
    it stops, and the 30 allocation sites that grew most in between written to ``out``."""
    tracemalloc.start(12)
    first: list[tracemalloc.Snapshot] = []
    timer = threading.Timer(settle_s, lambda: first.append(tracemalloc.take_snapshot()))
    timer.daemon = True
    timer.start()
    try:
        return gateway_main(argv)
    finally:
        timer.cancel()
        last = tracemalloc.take_snapshot()
        lines = [f"traced memory now: {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MiB"]
        if first:
            for stat in last.compare_to(first[0], "traceback")[:30]:
                lines.append(f"{stat.size_diff / 2**20:+.2f} MiB, {stat.count_diff:+} blocks")
                lines += [f"    {line}" for line in stat.traceback.format(limit=6)]
        out.write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--profile", type=Path, help="write cProfile statistics to OUT")
    parser.add_argument("--fetch-wait-ms", type=int, help="aiokafka fetch_max_wait_ms")
    parser.add_argument("--producer-batch-bytes", type=int, help="aiokafka max_batch_size")
    parser.add_argument("--uvloop", action="store_true", help="uvloop's event loop")
    parser.add_argument("--tracemalloc", type=Path, help="write allocation growth to OUT")
    parser.add_argument("--settle-s", type=float, default=120.0, help="first snapshot after")
    args = parser.parse_args(argv)
    if args.uvloop:
        uvloop = importlib.import_module("uvloop")  # looked up: not installed everywhere
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if args.fetch_wait_ms is not None:
        patch("AIOKafkaConsumer", force=True, fetch_max_wait_ms=args.fetch_wait_ms)
    if args.producer_batch_bytes is not None:
        patch("AIOKafkaProducer", force=True, max_batch_size=args.producer_batch_bytes)
    serve = ["serve", "--config", str(args.config)]
    if args.tracemalloc:
        return traced(serve, args.tracemalloc, args.settle_s)
    return profiled(serve, args.profile) if args.profile else gateway_main(serve)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
