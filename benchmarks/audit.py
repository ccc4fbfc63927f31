"""Audit log cost: appending, end-to-end publish throughput, signing heads, verifying.

    python benchmarks/audit.py [--seconds N] [--repeat R] [--records N]
                               [--verify-runs N] [--dir PATH] [--json] [--profile]

The issue's acceptance line: appending to the audit log does not cut
end-to-end message throughput by more than 10%. On one core the script times:

- ``append``: ``AuditLog.record("message.accepted", ...)`` with the fields the
  router writes (a UUIDv7 message id, ``health.patient-referral@1.1.0``, the
  sender, two recipients, the payload's SHA-256 and size), to the on-disk log
  (``AuditConfig()`` defaults: each record written and flushed to the
  operating system, a signed head with two fsyncs every 10,000 records, 64 MiB
  segments) and with ``directory=None`` (the structured log only);
- ``publish``: ``Router.publish`` of one valid 1 KiB referral from
  ``minhealth`` (parsing, contract validation, one sealed envelope per
  recipient with the default CEK amortisation, CloudEvents headers, the
  publisher, then the ``message.accepted`` record) with an in-memory publisher
  that acknowledges at once and keeps nothing, to one recipient and to both
  consumers of the contract, once per audit: ``null`` (an ``AuditLog`` whose
  ``record`` does nothing; the router still hashes the payload for it),
  ``stream`` (``directory=None``) and ``disk``. What an audit costs is the
  throughput it takes off ``null``: ``1 - null µs/msg / audit µs/msg``;
- ``head``: ``SignedHead.sign`` alone (Ed25519 compact JWS over the head's
  JSON) and ``AuditLog.sign_head()`` after one appended record (the signature,
  the write and the two fsyncs, wall-clock);
- ``verify``: ``gateway.audit.verify.verify`` over a log of ``--records``
  message records (written with the defaults, so one head every 10,000).

Cases that are compared (disk and stream appends; the three audits of a
publish) alternate call by call: one call of each in turn, each timed with
``time.perf_counter``, the order rotated every round. The VM this was written
on changes speed by up to 2x for tens to hundreds of milliseconds at a time
(its other vCPU is shared with other work), and alternating exposes every
case to the same speeds. A round is ``--seconds / --repeat`` of calls of
every case after a warm-up that calibrates the count; each figure is the
median over the ``--repeat`` rounds, and each cost the median of the
per-round costs (with quartiles). Verification runs ``--verify-runs`` times.

Structlog is configured as the node configures it (``configure_logging``),
writing to ``os.devnull``: records are rendered as in production, not
printed. The on-disk logs live in a temporary directory under ``--dir``
(default: the system's temporary directory), removed at the end.
``--profile`` prints cProfile tables of the disk append and of a publish with
the disk audit instead of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import itertools
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import harness  # benchmarks/ is sys.path[0] when run as a script
from harness import Timing, pin_one_core

from gateway.audit import AuditLog, digest
from gateway.audit.log import now_iso
from gateway.audit.store import SignedHead, TreeHead, segments
from gateway.audit.verify import verify
from gateway.config import AuditConfig, GatewayConfig
from gateway.contracts import load_catalog
from gateway.crypto.jwk import SignKey, Suite
from gateway.crypto.keys import KeyStore, PrivateKeys
from gateway.ids import new_message_id
from gateway.logs import configure_logging
from gateway.routing import PublishRequest, Router
from gateway.transport import OutboundRecord

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("structlog", "cryptography", "jsonschema")
CALIBRATION_SECONDS = 0.1
NODE = "node-bench"
SENDER = "minhealth"
CONTRACT = "health.patient-referral"
CONSUMERS = ("acme-analytics", "socialtreasury")
AUDITS = ("null", "stream", "disk")
TARGET = 0.10
POOL = 1024

Step = Callable[[], object]
AsyncStep = Callable[[], Awaitable[object]]
Samples = dict[str, list[float]]
Round = Callable[[list[str], int], dict[str, float]]
"""Runs ``loops`` calls of every named case, alternating in the given order;
returns the seconds each case took in all."""


@dataclass
class Cost:
    """Throughput an audit takes off the null audit: ``1 - null µs / audit µs``."""

    median: float
    q1: float
    q3: float


@dataclass
class Publish:
    recipients: int
    audit: str
    timing: Timing
    cost: Cost | None = None


@dataclass
class Results:
    record_bytes: int = 0
    payload_bytes: int = 0
    append: dict[str, Timing] = field(default_factory=dict)
    file_part_us: float = 0.0
    """Median over rounds of disk minus stream-only: what the file adds to a record."""
    publish: list[Publish] = field(default_factory=list)
    head: dict[str, Timing] = field(default_factory=dict)
    verify_records: int = 0
    verify_bytes: int = 0
    verify: Timing | None = None


class NullAudit(AuditLog):
    """An audit log that records nothing: the baseline."""

    def record(self, event: str, /, **fields: Any) -> None:
        return None


class DiscardingPublisher:
    """Acknowledges at once and keeps only counts: the node's work, not a broker's."""

    def __init__(self) -> None:
        self.records = 0
        self.bytes = 0

    async def publish(self, records: Sequence[OutboundRecord]) -> None:
        self.records += len(records)
        self.bytes += sum(len(r.value) for r in records)


# -- timing ---------------------------------------------------------------------


def alternating(steps: dict[str, Step]) -> Round:
    def run(order: list[str], loops: int) -> dict[str, float]:
        clock = time.perf_counter
        cycle = [(name, steps[name]) for name in order]
        total = dict.fromkeys(order, 0.0)
        gc.collect()
        for _ in range(loops):
            for name, step in cycle:
                start = clock()
                step()
                total[name] += clock() - start
        return total

    return run


def alternating_async(loop: asyncio.AbstractEventLoop, steps: dict[str, AsyncStep]) -> Round:
    async def calls(order: list[str], loops: int) -> dict[str, float]:
        clock = time.perf_counter
        cycle = [(name, steps[name]) for name in order]
        total = dict.fromkeys(order, 0.0)
        for _ in range(loops):
            for name, step in cycle:
                start = clock()
                await step()
                total[name] += clock() - start
        return total

    def run(order: list[str], loops: int) -> dict[str, float]:
        gc.collect()
        return loop.run_until_complete(calls(order, loops))

    return run


def rounds(run: Round, names: list[str], seconds: float, repeat: int) -> tuple[Samples, int]:
    """Microseconds per call of every case in each of ``repeat`` rounds; the loop count."""
    loops = 1
    while sum((elapsed := run(names, loops)).values()) < CALIBRATION_SECONDS:  # warm-up
        loops *= 2
    loops = max(1, round(seconds / repeat / (sum(elapsed.values()) / loops)))
    samples: Samples = {name: [] for name in names}
    for i in range(repeat):
        shift = i % len(names)
        for name, seconds_taken in run(names[shift:] + names[:shift], loops).items():
            samples[name].append(seconds_taken / loops * 1e6)
    return samples, loops


def summarise(runs_us: list[float], loops: int) -> Timing:
    median = statistics.median(runs_us)
    return Timing(
        median_us=round(median, 2),
        min_us=round(min(runs_us), 2),
        max_us=round(max(runs_us), 2),
        per_second=round(1e6 / median),
        loops=loops,
    )


def measure(step: Step, seconds: float, repeat: int) -> Timing:
    samples, loops = rounds(alternating({"step": step}), ["step"], seconds, repeat)
    return summarise(samples["step"], loops)


def cost(null: list[float], audit: list[float]) -> Cost:
    paired = [1 - n / a for n, a in zip(null, audit, strict=True)]
    if len(paired) == 1:
        return Cost(paired[0], paired[0], paired[0])
    q1, median, q3 = statistics.quantiles(paired, n=4)
    return Cost(median, q1, q3)


# -- what is measured -----------------------------------------------------------


def referral_body() -> bytes:
    """A valid health.patient-referral@1.1.0 payload of about 1 KiB.

    Serialised as ``json.dumps`` does by default (``", "`` and ``": "``), as a
    Python client posting ``json=`` would send it."""
    note = (
        "Stable angina, CCS class II, on a beta blocker and a statin since March 2024. "
        "Exercise ECG positive at 6 METs; echocardiography shows a preserved ejection "
        "fraction and no regional wall motion abnormality. Referred for coronary CT "
        "angiography and a cardiology opinion on revascularisation. Allergies: none "
        "known. Interpreter not needed. The patient prefers morning appointments and "
        "can be reached through the referring practice; transport allowance requested "
        "with the social-support treasury. Thank you."
    )[:500]
    document = {
        "referralId": "REF-2026-000101",
        "issuedOn": "2026-11-02",
        "patient": {
            "patientId": "P0000012345",
            "birthDate": "1961-03-14",
            "sex": "female",
            "regionCode": "77",
        },
        "diagnosis": {"icd10": "I25.1", "note": note},
        "urgency": "routine",
        "referredTo": {
            "organisationId": "regional-cardiology-centre-3-outpatient-clinic-north-district-07",
            "specialty": "interventional cardiology, cardiac imaging, heart failure care",
        },
        "contactEmail": "referrals.cardiology@clinic-12.example",
        "referralChannel": "electronic",
    }
    return json.dumps(document).encode()


def accepted_fields(body: bytes, recipients: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The fields of ``message.accepted`` as the router passes them, distinct ids."""
    pool = [
        {
            "message_id": new_message_id(),
            "contract": f"{CONTRACT}@1.1.0",
            "sender": SENDER,
            "recipients": list(recipients),
            "payload_sha256": digest(body),
            "payload_size": len(body),
        }
        for _ in range(POOL)
    ]
    return itertools.cycle(pool)


def disk_audit(directory: Path, signer: SignKey) -> AuditLog:
    return AuditLog(node_id=NODE, directory=directory, signer=signer, settings=AuditConfig())


def appending(audit: AuditLog, body: bytes) -> Step:
    fields = accepted_fields(body, CONSUMERS)
    return lambda: audit.record("message.accepted", **next(fields))


def bench_append(
    tmp: Path, signer: SignKey, body: bytes, *, seconds: float, repeat: int, results: Results
) -> None:
    disk = disk_audit(tmp / "append", signer)
    stream = AuditLog(node_id=NODE)
    steps = {"disk": appending(disk, body), "stream": appending(stream, body)}
    samples, loops = rounds(alternating(steps), list(steps), seconds, repeat)
    disk.close()
    results.append = {name: summarise(samples[name], loops) for name in steps}
    file_part = [d - s for d, s in zip(samples["disk"], samples["stream"], strict=True)]
    results.file_part_us = round(statistics.median(file_part), 2)
    with segments(tmp / "append")[0][1].open("rb") as first:
        results.record_bytes = len(first.readline())


class Node:
    """What a node's router is built from, with an audit of the caller's choice."""

    def __init__(self, tmp: Path, signer: SignKey) -> None:
        self.tmp, self.signer = tmp, signer
        self.config = GatewayConfig(node_id=NODE, contracts_dir=ROOT / "contracts")
        self.catalog = load_catalog(self.config.contracts_dir)
        keys = {p: PrivateKeys.generate() for p in (SENDER, *CONSUMERS)}
        self.keys = KeyStore({p: k.public() for p, k in keys.items()}, {SENDER: keys[SENDER]})
        self.audits: list[AuditLog] = []

    def audit(self, kind: str, name: str) -> AuditLog:
        if kind == "null":
            audit: AuditLog = NullAudit(node_id=NODE)
        elif kind == "stream":
            audit = AuditLog(node_id=NODE)
        else:
            audit = disk_audit(self.tmp / name, self.signer)
        self.audits.append(audit)
        return audit

    def router(self, audit: AuditLog) -> tuple[Router, DiscardingPublisher]:
        publisher = DiscardingPublisher()
        router = Router(
            config=self.config,
            catalog=self.catalog,
            keys=self.keys,
            publisher=publisher,
            audit=audit,
        )
        return router, publisher

    def close(self) -> None:
        for audit in self.audits:
            audit.close()


def publishing(
    loop: asyncio.AbstractEventLoop, node: Node, kind: str, request: PublishRequest
) -> AsyncStep:
    """One publish with this kind of audit; checked once before it is timed."""
    audit = node.audit(kind, f"publish-{len(request.to)}")
    router, publisher = node.router(audit)
    loop.run_until_complete(router.publish(request))
    if publisher.records != len(request.to) or (kind == "disk" and audit.size != 1):
        raise SystemExit(f"publish to {len(request.to)} with the {kind} audit did not go through")
    return lambda: router.publish(request)


def bench_publish(
    node: Node, body: bytes, *, seconds: float, repeat: int, results: Results
) -> None:
    loop = asyncio.new_event_loop()
    try:
        for count in (1, len(CONSUMERS)):
            request = PublishRequest(
                sender=SENDER, contract=CONTRACT, body=body, to=CONSUMERS[:count]
            )
            steps = {kind: publishing(loop, node, kind, request) for kind in AUDITS}
            samples, loops = rounds(alternating_async(loop, steps), list(AUDITS), seconds, repeat)
            results.publish.extend(
                Publish(
                    count,
                    kind,
                    summarise(samples[kind], loops),
                    None if kind == "null" else cost(samples["null"], samples[kind]),
                )
                for kind in AUDITS
            )
    finally:
        loop.close()


def bench_head(
    tmp: Path, signer: SignKey, body: bytes, *, seconds: float, repeat: int, results: Results
) -> None:
    head = TreeHead(0, NODE, 1, "00" * 32, "00" * 32, now_iso())
    results.head["sign"] = measure(lambda: SignedHead.sign(head, signer), seconds, repeat)
    audit = disk_audit(tmp / "head", signer)
    append = appending(audit, body)

    def append_then_sign() -> None:
        append()
        audit.sign_head()

    steps = {"append": append, "append_then_sign": append_then_sign}
    samples, loops = rounds(alternating(steps), list(steps), seconds, repeat)
    audit.close()
    sign_head = [s - a for a, s in zip(samples["append"], samples["append_then_sign"], strict=True)]
    results.head["sign_head"] = summarise(sign_head, loops)


def bench_verify(
    tmp: Path, signer: SignKey, body: bytes, *, records: int, repeat: int, results: Results
) -> None:
    directory = tmp / "verify"
    audit = disk_audit(directory, signer)
    append = appending(audit, body)
    for _ in range(records):
        append()
    audit.close()
    keys = {signer.kid: signer.verify_key()}
    runs = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        report = verify(directory, keys)
        runs.append(time.perf_counter() - start)
        if not report.ok or report.records != records or report.signed_size != records:
            raise SystemExit(f"verify did not accept the log: {report.to_json()}")
    results.verify_records = records
    results.verify_bytes = sum(p.stat().st_size for p in directory.iterdir())
    results.verify = summarise([r / records * 1e6 for r in runs], records)


def profile(tmp: Path, signer: SignKey, body: bytes, calls: int) -> str:
    """cProfile tables: ``calls`` disk appends, then ``calls`` publishes with the disk audit."""
    out = io.StringIO()
    append = appending(disk_audit(tmp / "profile-append", signer), body)
    for _ in range(1000):
        append()
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [append() for _ in range(calls)])
    out.write(f"== {calls:,} x AuditLog.record('message.accepted', ...) to disk\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
    node = Node(tmp, signer)
    loop = asyncio.new_event_loop()
    request = PublishRequest(sender=SENDER, contract=CONTRACT, body=body, to=CONSUMERS)
    publish = publishing(loop, node, "disk", request)

    async def publishes(n: int) -> None:
        for _ in range(n):
            await publish()

    loop.run_until_complete(publishes(200))
    profiler = cProfile.Profile()
    profiler.runcall(loop.run_until_complete, publishes(calls // 10))
    loop.close()
    node.close()
    out.write(f"== {calls // 10:,} x Router.publish to 2 recipients, disk audit\n")
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
    return out.getvalue()


# -- the report -----------------------------------------------------------------


def filesystem(path: Path) -> str:
    """The type and mount point of the file system holding ``path``."""
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return "unknown"
    target = str(path.resolve())
    best = ("", "unknown")
    for entry in mounts:
        parts = entry.split()
        if len(parts) > 2 and (target == parts[1] or target.startswith(parts[1].rstrip("/") + "/")):
            best = max(best, (parts[1], parts[2]), key=lambda m: len(m[0]))
    return f"{best[1]} at {best[0]}"


def _rate(t: Timing) -> str:
    return f"{t.median_us:,.1f} ({t.min_us:,.1f} to {t.max_us:,.1f}) | {t.per_second:,}"


def _cost(c: Cost | None) -> str:
    return "-" if c is None else f"{c.median:.1%} ({c.q1:.1%} to {c.q3:.1%})"


def worst_disk_cost(results: Results) -> float:
    return max(r.cost.median for r in results.publish if r.audit == "disk" and r.cost)


def render(results: Results) -> list[str]:
    lines = [
        f"Append: AuditLog.record('message.accepted', ...), {results.record_bytes}-byte record;",
        "median µs per record over the rounds (fastest to slowest round), records/s at the median",
        "",
        "| log | µs/record (range) | records/s |",
        "|---|---|---|",
        f"| disk (flush each, head every 10,000, 64 MiB segments) "
        f"| {_rate(results.append['disk'])} |",
        f"| stream only (directory=None) | {_rate(results.append['stream'])} |",
        "",
        f"The file adds {results.file_part_us:,.1f} µs a record to the stream-only path "
        "(median of the per-round differences).",
        "",
        f"Publish: Router.publish, {CONTRACT}@1.1.0, {results.payload_bytes}-byte payload, "
        "in-memory publisher;",
        "throughput lost vs null: median of the per-round figures (quartiles)",
        "",
        "| recipients | audit | µs/msg (range) | msg/s | throughput lost vs null |",
        "|---|---|---|---|---|",
    ]
    for row in results.publish:
        lines.append(
            f"| {row.recipients} | {row.audit} | {_rate(row.timing)} | {_cost(row.cost)} |"
        )
    sign, sign_head = results.head["sign"], results.head["sign_head"]
    lines += [
        "",
        f"Head: SignedHead.sign {sign.median_us:,.1f} µs; AuditLog.sign_head() (sign, write, "
        f"2 fsyncs) {sign_head.median_us:,.1f} µs, {sign_head.median_us / 10_000:.2f} µs a "
        "record at one head every 10,000",
    ]
    if results.verify is not None:
        v = results.verify
        lines.append(
            f"Verify: {results.verify_records:,} records ({results.verify_bytes / 1e6:.1f} MB) in "
            f"{v.median_us * results.verify_records / 1e6:.2f} s, {v.median_us:.2f} µs/record, "
            f"{v.per_second:,} records/s"
        )
    worst = worst_disk_cost(results)
    verdict = "holds" if worst <= TARGET else "does NOT hold"
    lines += [
        "",
        f"Router alone (the strictest view: no HTTP, no Kafka client), the disk audit takes "
        f"at most {TARGET:.0%}: {verdict}; worst median {worst:.1%}",
        "The acceptance line is end to end: python benchmarks/audit_e2e.py",
    ]
    return lines


def run_all(args: argparse.Namespace, tmp: Path, signer: SignKey, body: bytes) -> Results:
    results = Results(payload_bytes=len(body))
    seconds, repeat = args.seconds, args.repeat
    bench_append(tmp, signer, body, seconds=seconds, repeat=repeat, results=results)
    node = Node(tmp, signer)
    try:
        bench_publish(node, body, seconds=seconds, repeat=repeat, results=results)
    finally:
        node.close()
    bench_head(tmp, signer, body, seconds=seconds, repeat=repeat, results=results)
    bench_verify(tmp, signer, body, records=args.records, repeat=args.verify_runs, results=results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="budget per comparison")
    parser.add_argument("--repeat", type=int, default=20, help="rounds per comparison")
    parser.add_argument("--records", type=int, default=100_000, help="records in the verified log")
    parser.add_argument("--verify-runs", type=int, default=3, help="timed verifications")
    parser.add_argument("--dir", type=Path, default=None, help="where the on-disk logs go")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--profile", action="store_true", help="print cProfile tables instead")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or min(args.repeat, args.records, args.verify_runs) < 1:
        parser.error("--seconds must be positive, --repeat, --records, --verify-runs at least 1")

    pinned = pin_one_core()
    sink = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - open for the whole run
    configure_logging(sink)
    signer = SignKey.generate(Suite.ED25519)
    body = referral_body()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="audit-bench-", dir=args.dir) as name:
        tmp = Path(name)
        where = filesystem(tmp)
        if args.profile:
            print(profile(tmp, signer, body, calls=20_000))
            return 0
        results = run_all(args, tmp, signer, body)
    wall = time.perf_counter() - started
    sink.close()

    info = harness.machine(PACKAGES)
    if args.json:
        report = {
            "machine": info | {"affinity": pinned, "audit_filesystem": where},
            "command": " ".join(["python", *sys.argv]),
            "seconds": args.seconds,
            "repeat": args.repeat,
            "verify_runs": args.verify_runs,
            "wall_seconds": round(wall, 2),
            "results": asdict(results),
        }
        print(json.dumps(report, indent=2))
    else:
        versions = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
        print(
            f"Python {info['python']} on {info['platform']}, {info['cpu']}, {info['cpus']} CPUs, "
            f"{pinned}; {versions}; audit logs on {where}"
        )
        print(f"{args.repeat} rounds per comparison, {args.seconds:.1f}s each; {wall:.1f}s\n")
        print("\n".join(render(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
