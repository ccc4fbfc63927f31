"""The two baselines that give the end-to-end figures meaning.

- :func:`crypto_floor`: what signing, encrypting, decrypting and verifying alone
  cost per message, on one core, with the gateway's primitives and settings
  (``Sealer`` with a content-encryption key reused for up to 1,000 messages or
  60 s, one caching ``Opener`` per recipient; Ed25519/X25519, the suite the
  demo keys use). The measurement is ``benchmarks/envelope.py``'s amortised case.
- :func:`raw_kafka`: aiokafka alone producing and consuming records of a
  sealed envelope's size through the same broker, in two processes
  (``benchmarks/e2e_raw.py``): the transport ceiling.

    floor = crypto_floor(1024, 1, seconds=1.0)     # {"seal_us": ..., "per_s": ...}
    ceiling = await raw_kafka(bootstrap, prefix, floor["envelope_bytes"], ...)
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from e2e_procs import Child
from envelope import Case, measure
from procstats import RssSampler, cpu_of

from gateway.config import KafkaConfig
from gateway.crypto.jwk import Suite
from gateway.transport.kafka import ensure_topics

RAW = Path(__file__).resolve().parent / "e2e_raw.py"
_REPEAT = 3


def crypto_floor(size: int, recipients: int, *, seconds: float) -> dict[str, Any]:
    """Seal one message for ``recipients`` and open every copy: microseconds and msg/s."""
    case = Case(Suite.ED25519, size, recipients, "amortised")
    envelope_bytes = case.check()
    sealing = measure(case.seal_message, seconds / 2, _REPEAT)
    opening = measure(case.opener_loop(), seconds / 2, _REPEAT)
    total_us = sealing.median_us + opening.median_us
    return {
        "size": size,
        "recipients": recipients,
        "envelope_bytes": envelope_bytes,
        "seal_us": sealing.median_us,
        "open_us": opening.median_us,
        "per_s": 1e6 / total_us,
    }


async def raw_kafka(
    *,
    bootstrap: str,
    topic: str,
    record_bytes: int,
    seconds: float,
    in_flight: int,
    scratch: Path,
    broker_pid: int | None,
    fetch_wait_ms: int,
    producer_batch_bytes: int,
) -> dict[str, Any]:
    """Records of ``record_bytes`` produced for ``seconds``, and consumed: records/s."""
    await ensure_topics(KafkaConfig(bootstrap=bootstrap), [topic])
    python = sys.executable
    consumer = await Child.start(
        [python, str(RAW), "consume", bootstrap, topic, str(fetch_wait_ms)],
        log=scratch / "raw-consume.log",
    )
    await consumer.event("ready", timeout_s=120)
    warmup = max(in_flight, 500)
    argv = [str(record_bytes), str(seconds), str(in_flight), str(warmup), str(producer_batch_bytes)]
    producer = await Child.start(
        [python, str(RAW), "produce", bootstrap, topic, *argv], log=scratch / "raw-produce.log"
    )
    pids = {"producer": producer.pid, "consumer": consumer.pid}
    if broker_pid is not None:
        pids["broker"] = broker_pid
    sampler = RssSampler(pids)
    sampling = asyncio.create_task(sampler.run())
    try:
        await producer.event("window_start")
        before = cpu_of(pids)
        # Each process's counters when its own window ends (it exits soon after).
        await producer.event("window_end")
        after = cpu_of({"producer": producer.pid})
        await consumer.event("window_end")
        after |= cpu_of({k: v for k, v in pids.items() if k != "producer"})
        produced, consumed = await producer.event("result"), await consumer.event("result")
        await asyncio.gather(producer.wait(), consumer.wait())
    finally:
        sampling.cancel()
    return {
        "record_bytes": record_bytes,
        "in_flight": in_flight,
        "produced_per_s": produced["per_s"],
        "consumed_per_s": consumed["per_s"],
        "records": consumed["records"],
        "latency_ms": consumed["latency_ms"],
        "cpu_s": {k: after[k] - before[k] for k in pids},
        "peak_rss": sampler.peak,
    }
