"""Envelope throughput: sealing and opening, per key suite, with and without amortisation.

    python benchmarks/envelope.py [--seconds N] [--repeat R] [--json]

For each suite (``ed25519``: EdDSA + ECDH-ES+A256KW over X25519; ``p256``:
ES256 + ECDH-ES+A256KW over P-256), payload size (1 KiB, 64 KiB), number of
recipients (1, 3) and mode, the script times on one core:

- ``seal``: one message sealed for every recipient, that is signing and
  encrypting one envelope per recipient (3 recipients = 3 envelopes);
- ``open``: each recipient opening its own envelope of one message (the sum
  over the recipients; in production they open on their own nodes).

Modes: ``single`` is ``seal()`` (a fresh ephemeral key and CEK for every
envelope) and ``open_envelope()`` (no CEK cache); ``amortised`` is one
``Sealer(reuse_messages=1000, reuse_s=60)`` for all messages and one
``Opener`` (default cache) per recipient. The opening runs cycle through a
pool of 64 pre-sealed messages; in amortised mode they share one CEK per
recipient, so the opener's cache always hits (in production it misses once
per 1000 messages or 60 s, which adds about a thousandth of an unwrap).

Every configuration is checked to round-trip before it is timed. Each
figure is the median over ``--repeat`` timed runs of a ``time.perf_counter``
loop, after a warm-up that also calibrates the loop count; ``--seconds`` is
the total measuring budget, shared evenly by all 32 measurements (warm-up,
calibration and sealing the pools add a few seconds).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import harness  # benchmarks/ is sys.path[0] when run as a script
from harness import Timing, pin_one_core

from gateway.crypto.envelope import Binding, Opener, Sealer, open_envelope, seal
from gateway.crypto.jwk import Suite, VerifyKey
from gateway.crypto.keys import PrivateKeys

PACKAGES = ("cryptography",)
CALIBRATION_SECONDS = 0.02
SIZES = (1024, 64 * 1024)
RECIPIENTS = (1, 3)
MODES = ("single", "amortised")
REUSE_MESSAGES = 1000
REUSE_S = 60.0
POOL = 64
NAMES = ("bob", "carol", "dave")


@dataclass
class Row:
    suite: str
    payload_bytes: int
    recipients: int
    mode: str
    envelope_bytes: int
    seal: Timing | None = None
    open: Timing | None = None


@dataclass(frozen=True)
class Party:
    name: str
    keys: PrivateKeys


def payload_of(size: int) -> bytes:
    """A JSON document of exactly ``size`` bytes."""
    head, tail = b'{"data":"', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def _run(fn: Callable[[], object], loops: int, *, clean: bool) -> float:
    if clean:
        gc.collect()
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return time.perf_counter() - start


def measure(fn: Callable[[], object], seconds: float, repeat: int) -> Timing:
    """Median microseconds per call of ``fn``."""
    loops = 1
    while (elapsed := _run(fn, loops, clean=False)) < CALIBRATION_SECONDS:  # warm-up
        loops *= 2
    per_call = elapsed / loops
    loops = max(1, round(seconds / repeat / per_call))
    runs = [_run(fn, loops, clean=True) / loops * 1e6 for _ in range(repeat)]
    median = statistics.median(runs)
    return Timing(
        median_us=round(median, 1),
        min_us=round(min(runs), 1),
        max_us=round(max(runs), 1),
        per_second=round(1e6 / median),
        loops=loops,
    )


class Case:
    """One configuration: a sender, its recipients, and the seal and open operations."""

    def __init__(self, suite: Suite, size: int, recipients: int, mode: str) -> None:
        self.suite, self.size, self.mode = suite, size, mode
        self.payload = payload_of(size)
        self.sender = PrivateKeys.generate(suite)
        self.recipients = [Party(n, PrivateKeys.generate(suite)) for n in NAMES[:recipients]]
        self.bindings = [
            Binding("m-bench", "alice", r.name, "bench.note", "1.0.0", 1_700_000_000)
            for r in self.recipients
        ]
        self.targets = [r.keys.public().encryption[0] for r in self.recipients]
        self.sealer = Sealer(reuse_messages=REUSE_MESSAGES, reuse_s=REUSE_S)
        self.openers = [Opener(r.keys.decryption) for r in self.recipients]
        self.verify = self.sender.public().verify_key

    def lookup(self, sender: str, kid: str) -> VerifyKey | None:
        return self.verify(kid) if sender == "alice" else None

    def seal_message(self) -> list[bytes]:
        signer = self.sender.signing
        if self.mode == "single":
            return [
                seal(self.payload, b, signer=signer, recipient_key=k)
                for b, k in zip(self.bindings, self.targets, strict=True)
            ]
        return [
            self.sealer.seal(self.payload, b, signer=signer, recipient_key=k)
            for b, k in zip(self.bindings, self.targets, strict=True)
        ]

    def open_message(self, tokens: Sequence[bytes]) -> list[bytes]:
        if self.mode == "single":
            return [
                open_envelope(t, recipient=r.name, keys=r.keys, verify_key=self.lookup).payload
                for t, r in zip(tokens, self.recipients, strict=True)
            ]
        return [
            o.open(t, recipient=r.name, verify_key=self.lookup).payload
            for t, o, r in zip(tokens, self.openers, self.recipients, strict=True)
        ]

    def opener_loop(self) -> Callable[[], object]:
        pool = itertools.cycle([self.seal_message() for _ in range(POOL)])
        return lambda: self.open_message(next(pool))

    def check(self) -> int:
        """Round-trip once (refusing to time a broken path); the envelope size in bytes."""
        tokens = self.seal_message()
        if self.open_message(tokens) != [self.payload] * len(tokens):
            raise SystemExit(f"{self.suite}/{self.size}/{self.mode}: round trip failed")
        return len(tokens[0])


def bench(config: tuple[Suite, int, int, str], *, seconds: float, repeat: int) -> Row:
    suite, size, recipients, mode = config
    case = Case(suite, size, recipients, mode)
    row = Row(suite.value, size, recipients, mode, envelope_bytes=case.check())
    row.seal = measure(case.seal_message, seconds, repeat)
    row.open = measure(case.opener_loop(), seconds, repeat)
    return row


def machine() -> dict[str, Any]:
    from cryptography.hazmat.backends.openssl.backend import backend  # noqa: PLC0415

    return {**harness.machine(PACKAGES), "openssl": backend.openssl_version_text()}


def _cell(timing: Timing | None) -> str:
    if timing is None:
        return "-"
    return f"{timing.median_us:,.1f} ({timing.per_second:,.0f}/s)"


def _speedup(rows: list[Row], row: Row, attr: str) -> str:
    if row.mode != "amortised":
        return ""
    base = next(
        r
        for r in rows
        if (r.suite, r.payload_bytes, r.recipients, r.mode)
        == (row.suite, row.payload_bytes, row.recipients, "single")
    )
    ours, theirs = getattr(row, attr), getattr(base, attr)
    return f", {theirs.median_us / ours.median_us:.1f}x" if ours and theirs else ""


def render(rows: list[Row]) -> str:
    lines = [
        "Median microseconds per message (messages per second); a message to 3 recipients",
        "is 3 envelopes; open is the sum of the recipients' opens; Nx: speedup over single",
        "",
        "| suite | payload | recipients | mode | envelope bytes | seal µs/msg (msg/s) "
        "| open µs/msg (msg/s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        size = f"{row.payload_bytes // 1024} KiB"
        lines.append(
            f"| {row.suite} | {size} | {row.recipients} | {row.mode} | {row.envelope_bytes:,} "
            f"| {_cell(row.seal)}{_speedup(rows, row, 'seal')} "
            f"| {_cell(row.open)}{_speedup(rows, row, 'open')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=25.0, help="total measuring budget")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.repeat < 1:
        parser.error("--seconds must be positive and --repeat at least 1")

    pinned = pin_one_core()
    configs = list(itertools.product(Suite, SIZES, RECIPIENTS, MODES))
    per_measurement = args.seconds / (2 * len(configs))
    started = time.perf_counter()
    rows = [bench(c, seconds=per_measurement, repeat=args.repeat) for c in configs]
    wall = time.perf_counter() - started

    info = machine()
    if args.json:
        report = {
            "machine": info | {"affinity": pinned},
            "command": " ".join(["python", *sys.argv]),
            "seconds": args.seconds,
            "repeat": args.repeat,
            "reuse": {"messages": REUSE_MESSAGES, "seconds": REUSE_S},
            "wall_seconds": round(wall, 2),
            "results": [asdict(row) for row in rows],
        }
        print(json.dumps(report, indent=2))
    else:
        print(
            f"Python {info['python']} on {info['platform']}, {info['cpu']}, {info['cpus']} CPUs, "
            f"{pinned}; cryptography {info['packages']['cryptography']}, {info['openssl']}"
        )
        print(f"{args.repeat} runs per measurement, {per_measurement:.2f}s each; {wall:.1f}s\n")
        print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
