"""What every benchmark here shares: timings, pinning to one core, the machine.

Run the benchmarks from the repository root (``python benchmarks/NAME.py``);
the scripts put this folder on the import path themselves.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any


@dataclass
class Timing:
    """Microseconds per operation: the median and the spread of the timed runs."""

    median_us: float
    min_us: float
    max_us: float
    per_second: float
    loops: int


def pin_one_core() -> str:
    """Run on the core the process is on now; report which, or why not."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpu = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return None
    return next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")),
        None,
    )


def machine(packages: Sequence[str]) -> dict[str, Any]:
    """Python, platform, CPU and the versions of ``packages`` (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "packages": versions,
    }
