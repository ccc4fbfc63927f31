"""The soak script (benchmarks/soak.py): its ledger's accounting, and a short run of it
with the consuming node killed once, as the one command runs it."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from soak import Ledger  # the benchmark scripts import their siblings by name

ROOT = Path(__file__).resolve().parents[2]


def test_the_ledger_counts_a_message_never_delivered_as_lost() -> None:
    ledger = Ledger(published=3, accepted={"a": "single", "b": "batch", "c": "batch"})
    ledger.pulled.update(["a", "b", "b"])
    ledger.acked.update(["a", "b"])
    report = ledger.verdict()
    assert (report["delivered"], report["redelivered"], report["lost"]) == (2, 1, 1)
    assert report["ok"] is False


def test_the_ledger_fails_a_duplicate_after_a_confirmed_ack() -> None:
    ledger = Ledger(published=1, accepted={"a": "single"}, after_ack=1)
    ledger.pulled.update(["a", "a"])
    ledger.acked.update(["a"])
    report = ledger.verdict()
    assert (report["lost"], report["duplicates_after_ack"], report["ok"]) == (0, 1, False)


def test_the_ledger_passes_every_message_delivered_once_in_effect() -> None:
    ledger = Ledger(published=2, accepted={"a": "single", "b": "batch"}, kills=1)
    ledger.pulled.update(["a", "b", "b"])  # b pulled again: unacked when the node died
    ledger.acked.update(["a", "b"])
    report = ledger.verdict()
    assert (report["lost"], report["redelivered"], report["ok"]) == (0, 1, True)


@pytest.mark.integration
async def test_a_short_soak_with_a_consumer_kill_loses_nothing() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "benchmarks/soak.py",
        "--minutes",
        "0.1",
        "--kill-consumer-every",
        "3",
        "--json",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-3000:]
    report = json.loads(out)  # stdout holds the report alone
    assert report["ok"] is True
    assert report["accepted"] > 0
    assert report["accepted_batch"] > 0
    assert report["delivered"] == report["accepted"]
    assert report["lost"] == 0
    assert report["consumer_kills"] >= 1
