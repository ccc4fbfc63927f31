"""A clock the test moves by hand, for everything that takes a ``gateway.limits.Clock``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass
class FakeClock:
    """Monotonic seconds and UTC wall time that advance together, only when told."""

    seconds: float = 1_000.0
    wall: datetime = field(default_factory=lambda: datetime(2026, 11, 26, 12, 0, tzinfo=UTC))

    def monotonic(self) -> float:
        return self.seconds

    def utc_now(self) -> datetime:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        self.wall += timedelta(seconds=seconds)
