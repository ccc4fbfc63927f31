"""The transport ceiling: aiokafka alone, producing and consuming records of an envelope's size.

    python benchmarks/e2e_raw.py consume BOOTSTRAP TOPIC FETCH_WAIT_MS
    python benchmarks/e2e_raw.py produce BOOTSTRAP TOPIC SIZE SECONDS IN_FLIGHT WARMUP BATCH_BYTES

Run by ``benchmarks/e2e.py`` as two processes, as the gateway's two nodes are:
the consumer first (it prints ``ready`` once the group gave it the topic's
partitions), then the producer. Both use the gateway's client settings
(``gateway/transport/kafka.py``). The producer: ``acks=all``, no idempotence,
``linger_ms=5``, the gateway's ``max_batch_size`` (``BATCH_BYTES``: the
default ``kafka.producer_batch_bytes``, unless ``benchmarks/e2e.py
--producer-batch-bytes`` tries another),
``IN_FLIGHT`` sends each awaiting its acknowledgement before the next (as
concurrent publish requests do), CloudEvents headers as the gateway writes
them and a message id as the key. The consumer: a group member that never
auto-commits and commits after every fetch, with aiokafka's default
``fetch_max_wait_ms`` (``FETCH_WAIT_MS``: the gateway's default
``kafka.fetch_max_wait_ms``, unless ``--fetch-wait-ms``).
Records are ``SIZE`` random bytes: the size of a sealed envelope, not of the
payload.

The producer stamps each record with its wall-clock send time (both processes
read the same clock) and ends with a marker record on every partition; the
consumer stops at the last marker and prints what it counted. Nothing here is
encrypted, signed, validated or audited: this is what the broker and the
Kafka client take, the most the gateway could deliver over them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from e2e_load import percentiles, say

from gateway.cloudevents import event_headers

END = b"end"
PHASE = "bench_phase"
SENT = "bench_sent"


def _headers(phase: bytes) -> list[tuple[str, bytes]]:
    headers = event_headers(
        message_id=str(uuid.uuid4()),
        sender="minhealth",
        recipient="socialtreasury",
        contract="bench.patient-referral",
        dataschema="urn:gateway:contract:bench.patient-referral:1.0.0",
        time="2026-01-01T00:00:00Z",
    )
    return [*headers, (PHASE, phase), (SENT, str(time.time()).encode())]


async def produce(
    bootstrap: str,
    topic: str,
    *,
    size: int,
    seconds: float,
    in_flight: int,
    warmup: int,
    batch_bytes: int,
) -> dict[str, Any]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=batch_bytes,
    )
    await producer.start()
    value = os.urandom(size)
    sent = 0

    async def one(phase: bytes) -> None:
        nonlocal sent
        key = str(uuid.uuid4()).encode()
        await (await producer.send(topic, value, key=key, headers=_headers(phase)))
        sent += 1

    try:
        for _ in range(warmup // in_flight):
            await asyncio.gather(*(one(b"w") for _ in range(in_flight)))
        sent = 0
        say("window_start")
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await one(b"m")

        await asyncio.gather(*(worker() for _ in range(in_flight)))
        elapsed = time.perf_counter() - start
        for partition in sorted(await producer.partitions_for(topic)):
            await (await producer.send(topic, END, partition=partition, headers=[(PHASE, END)]))
        say("window_end")
    finally:
        await producer.stop()
    return {"records": sent, "seconds": elapsed, "per_s": sent / elapsed}


async def consume(bootstrap: str, topic: str, fetch_wait_ms: int) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a fresh topic: everything the producer sends
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        rebalance_timeout_ms=2000,
        fetch_max_wait_ms=fetch_wait_ms,
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        say("ready")
        counted = await _count(consumer, len(consumer.assignment()))
        say("window_end")
        return counted
    finally:
        await consumer.stop()


async def _count(consumer: AIOKafkaConsumer, partitions: int) -> dict[str, Any]:
    ended: set[int] = set()
    latencies: list[float] = []
    first_sent, last_arrival = float("inf"), 0.0
    while len(ended) < partitions:
        batches = await consumer.getmany(timeout_ms=500, max_records=500)
        now = time.time()
        for tp, records in batches.items():
            for record in records:
                headers = dict(record.headers)
                if headers.get(PHASE) == END:
                    ended.add(tp.partition)
                elif headers.get(PHASE) == b"m":
                    sent = float(headers[SENT])
                    first_sent, last_arrival = min(first_sent, sent), now
                    latencies.append((now - sent) * 1000)
        if batches:
            await consumer.commit()
    span = last_arrival - first_sent
    return {
        "records": len(latencies),
        "seconds": span,
        "per_s": len(latencies) / span if latencies else 0.0,
        "latency_ms": percentiles(latencies),
    }


def main(argv: list[str]) -> int:
    role, bootstrap, topic = argv[:3]
    if role == "consume":
        say("result", **asyncio.run(consume(bootstrap, topic, int(argv[3]))))
        return 0
    size, seconds, in_flight, warmup = int(argv[3]), float(argv[4]), int(argv[5]), int(argv[6])
    producing = produce(
        bootstrap,
        topic,
        size=size,
        seconds=seconds,
        in_flight=in_flight,
        warmup=warmup,
        batch_bytes=int(argv[7]),
    )
    say("result", **asyncio.run(producing))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
