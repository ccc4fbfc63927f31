"""The end-to-end benchmark's processes: the broker, the nodes and the child scripts.

    async with system(federation, scratch / "run-1", wrapper=lambda home, node: []) as live:
        child = await Child.start([sys.executable, "benchmarks/e2e_load.py"], ...)
        await child.event("window_start")
        cpu_of(live.pids)

Children report on stdout, one JSON object a line with an ``event`` name; their
stderr goes to a log file in the scratch directory, shown when they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from e2e_state import Federation, Nodes, node_configs
from procstats import children_named

from gateway.transport.broker import EmbeddedBroker

ROOT = Path(__file__).resolve().parents[1]
NODE = Path(__file__).resolve().parent / "e2e_node.py"
_READY_TIMEOUT_S = 90.0
_STOP_TIMEOUT_S = 20.0


@contextlib.contextmanager
def broker(scratch: Path) -> Iterator[tuple[str, int | None]]:
    """``KAFKA_BOOTSTRAP`` (no pid: not ours to measure), else the embedded broker."""
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        yield external, None
        return
    with EmbeddedBroker.start(log_path=scratch / "broker.log") as embedded:
        pids = list(children_named(os.getpid(), "tansu"))
        yield embedded.bootstrap, pids[0] if len(pids) == 1 else None


class Child:
    """A child process that reports JSON lines on stdout."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(cls, argv: Sequence[str], *, log: Path, stdin: bytes = b"") -> Child:
        with log.open("ab") as errors:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=errors,
                limit=1 << 20,
            )
        assert process.stdin is not None  # asked for above
        process.stdin.write(stdin)
        await process.stdin.drain()
        process.stdin.close()
        return cls(process, log)

    async def event(self, name: str, timeout_s: float = 600.0) -> dict[str, Any]:
        """The next line reporting ``name`` (other lines are skipped)."""
        assert self.process.stdout is not None  # asked for in start()
        async with asyncio.timeout(timeout_s):
            while line := await self.process.stdout.readline():
                with contextlib.suppress(ValueError):
                    report: dict[str, Any] = json.loads(line)
                    if report.get("event") == name:
                        return report
        await self.process.wait()
        raise SystemExit(f"{self.log.stem} exited ({self.process.returncode}): {tail(self.log)}")

    async def wait(self) -> None:
        if await self.process.wait() != 0:
            raise SystemExit(f"{self.log.stem} failed: {tail(self.log)}")


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


@dataclass(frozen=True)
class System:
    """A fresh broker (unless ``KAFKA_BOOTSTRAP``) and both nodes, ready."""

    bootstrap: str
    urls: dict[str, str]
    pids: dict[str, int]
    """The broker (when it is ours), node-a and node-b."""


Wrapper = Callable[[Path, str], list[str]]
"""(the run's directory, node id) -> ``e2e_node.py`` options; none: ``gateway serve``."""


@contextlib.asynccontextmanager
async def system(fed: Federation, home: Path, *, wrapper: Wrapper) -> AsyncIterator[System]:
    """Start the broker and both nodes under ``home`` (their state, audit logs and logs)."""
    await asyncio.to_thread(home.mkdir, parents=True)
    with broker(home) as (bootstrap, broker_pid):
        nodes = node_configs(fed, home, bootstrap=bootstrap)
        async with node_processes(nodes, home, wrapper) as pids:
            if broker_pid is not None:
                pids["broker"] = broker_pid
            yield System(bootstrap, nodes.urls, pids)


@contextlib.asynccontextmanager
async def node_processes(
    nodes: Nodes, home: Path, wrapper: Wrapper
) -> AsyncIterator[dict[str, int]]:
    """Each node as its own process, all ready before the pids are yielded."""
    started: dict[str, asyncio.subprocess.Process] = {}
    try:
        for node_id, config in nodes.configs.items():
            options = wrapper(home, node_id)
            started[node_id] = await spawn_node(config, home / f"{node_id}.log", options)
        await asyncio.gather(
            *(wait_ready(nodes.urls[n], p, home / f"{n}.log") for n, p in started.items())
        )
        yield {n: p.pid for n, p in started.items()}
    finally:
        await asyncio.gather(*(stop_process(p) for p in started.values()))


async def spawn_node(
    config: Path, log_path: Path, options: Sequence[str]
) -> asyncio.subprocess.Process:
    """``gateway serve --config CONFIG``, or ``e2e_node.py --config CONFIG *options``."""
    if options:
        argv = [sys.executable, str(NODE), "--config", str(config), *options]
    else:
        argv = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)]
    with log_path.open("ab") as log:
        return await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )


async def wait_ready(url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise SystemExit(f"the node exited: {tail(log)}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise SystemExit(f"the node did not become ready: {tail(log)}")


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), _STOP_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
