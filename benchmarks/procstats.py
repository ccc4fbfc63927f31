"""CPU time and memory of other processes, read from ``/proc`` (Linux only).

    before = cpu_seconds(pid)
    ...                                  # the work
    used = cpu_seconds(pid) - before      # user + system seconds of that process
    rss_bytes(pid), hwm_bytes(pid)       # resident now, and the peak since it started

A process's peak (``VmHWM``) cannot be reset, so a benchmark that wants the
peak of one phase samples ``VmRSS`` during it (:class:`RssSampler`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_UTIME, _STIME = 11, 12
"""Indexes of utime and stime among the fields after the ``(comm)`` of /proc/PID/stat."""


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used (its threads included)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[_UTIME]) + int(fields[_STIME])) / _TICKS_PER_S


def _status_kib(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def rss_bytes(pid: int) -> int:
    return _status_kib(pid, "VmRSS") * 1024


def hwm_bytes(pid: int) -> int:
    """The peak resident set since the process started."""
    return _status_kib(pid, "VmHWM") * 1024


def children_named(parent: int, name: str) -> Iterator[int]:
    """Pids of ``parent``'s children whose command name is ``name``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = (entry / "stat").read_text()
            comm = text[text.index("(") + 1 : text.rindex(")")]
            ppid = int(text[text.rindex(")") + 2 :].split()[1])
            if ppid == parent and comm == name:
                yield int(entry.name)


def cpu_of(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process (a process gone counts as 0)."""
    used = {}
    for name, pid in pids.items():
        try:
            used[name] = cpu_seconds(pid)
        except OSError:
            used[name] = 0.0
    return used


class RssSampler:
    """The largest ``VmRSS`` seen per named process while :meth:`run` runs."""

    def __init__(self, pids: Mapping[str, int], *, every_s: float = 0.2) -> None:
        self._pids = dict(pids)
        self._every_s = every_s
        self.peak: dict[str, int] = dict.fromkeys(self._pids, 0)
        self.samples: list[tuple[float, dict[str, int], dict[str, float]]] = []
        """(monotonic time, RSS bytes, CPU seconds so far) per process, of each kept sample."""

    def sample(self) -> dict[str, int]:
        now = {}
        for name, pid in self._pids.items():
            with contextlib.suppress(OSError):
                now[name] = rss_bytes(pid)
                self.peak[name] = max(self.peak[name], now[name])
        return now

    async def run(self, *, keep_every_s: float | None = None) -> None:
        """Sample until cancelled; keep a copy of a sample every ``keep_every_s``."""
        loop = asyncio.get_running_loop()
        kept = float("-inf")
        while True:
            now = self.sample()
            if keep_every_s is not None and loop.time() - kept >= keep_every_s:
                kept = loop.time()
                self.samples.append((kept, now, cpu_of(self._pids)))
            await asyncio.sleep(self._every_s)
