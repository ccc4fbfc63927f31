"""What the end-to-end benchmark runs: one :class:`Scenario` per table row.

A scenario is a payload size, a number of recipients, single or batch
publishes, and how load is offered: ``closed`` (a fixed number of requests in
flight, each sent as soon as the previous one was answered: the most the
system takes) or ``open`` (requests sent at a fixed rate whatever the answers,
the rate a latency figure needs; latency counts from when a request was due,
so a generator that falls behind does not hide it).

    for scenario in default_scenarios(seconds=10, batch=100):
        print(scenario.name)      # "closed single 1 KiB x1 (16 in flight)", ...
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

KIB = 1024
MAX_BATCH_BYTES = 15 * KIB * KIB
"""A batch's payloads stay under this, below the node's 16 MiB ``http.max_batch_bytes``."""


class Mode(StrEnum):
    SINGLE = "single"
    """``POST /v1/contracts/{contract}/messages``, one message per request."""
    BATCH = "batch"
    """``POST /v1/contracts/{contract}/messages:batch``, several per request."""


class Loop(StrEnum):
    CLOSED = "closed"
    OPEN = "open"


@dataclass(frozen=True)
class Scenario:
    mode: Mode
    loop: Loop
    size: int
    """Payload bytes (compact JSON)."""
    recipients: int
    seconds: float
    """How long load is offered in the measured window."""
    rate: float = 0.0
    """Open loop: messages offered per second."""
    concurrency: int = 0
    """Closed loop: requests in flight."""
    batch: int = 1
    """Messages per request."""

    @property
    def name(self) -> str:
        how = f"{self.rate:g} msg/s" if self.loop is Loop.OPEN else f"{self.concurrency} in flight"
        batch = f" of {self.batch}" if self.mode is Mode.BATCH else ""
        return f"{self.loop} {self.mode}{batch} {self.size // KIB} KiB x{self.recipients} ({how})"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scenario:
        return cls(**{**data, "mode": Mode(data["mode"]), "loop": Loop(data["loop"])})


def batch_of(size: int, wanted: int) -> int:
    """``wanted`` messages per batch, fewer when their payloads would pass the body limit."""
    return max(1, min(wanted, MAX_BATCH_BYTES // size))


def default_scenarios(
    *, seconds: float, batch: int, single_inflight: int, batch_inflight: int, rates: list[float]
) -> list[Scenario]:
    """Closed loops over the whole matrix, then the open-loop latency rows."""
    rows = []
    for mode in (Mode.SINGLE, Mode.BATCH):
        for size in (KIB, 16 * KIB):
            for recipients in (1, 3):
                rows.append(
                    Scenario(
                        mode,
                        Loop.CLOSED,
                        size,
                        recipients,
                        seconds,
                        concurrency=single_inflight if mode is Mode.SINGLE else batch_inflight,
                        batch=1 if mode is Mode.SINGLE else batch_of(size, batch),
                    )
                )
    rows += [Scenario(Mode.SINGLE, Loop.OPEN, KIB, 1, seconds, rate=rate) for rate in rates]
    rows.append(Scenario(Mode.SINGLE, Loop.OPEN, KIB, 3, seconds, rate=min(rates)))
    rows.append(Scenario(Mode.SINGLE, Loop.OPEN, 16 * KIB, 1, seconds, rate=min(rates)))
    return rows


def quick_scenarios(
    *, seconds: float, batch: int, single_inflight: int, batch_inflight: int, rate: float
) -> list[Scenario]:
    """A smoke run: one row of each kind, 1 KiB to one recipient."""
    return [
        Scenario(Mode.SINGLE, Loop.CLOSED, KIB, 1, seconds, concurrency=single_inflight),
        Scenario(Mode.BATCH, Loop.CLOSED, KIB, 1, seconds, concurrency=batch_inflight, batch=batch),
        Scenario(Mode.SINGLE, Loop.OPEN, KIB, 1, seconds, rate=rate),
    ]
