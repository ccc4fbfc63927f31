"""``gateway demo --state-dir DIR`` end to end: its audit trail verifies and tells each story."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from gateway.cli import main
from tests.integration.conftest import read_topic

ROOT = Path(__file__).resolve().parents[2]


async def test_the_demo_leaves_an_audit_log_that_verifies_and_tells_each_message_life(
    bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "demo"
    prefix = f"demo{uuid.uuid4().hex[:8]}."
    env = {**os.environ, "KAFKA_BOOTSTRAP": bootstrap, "GATEWAY_PREFIX": prefix}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "demo",
        "--state-dir",
        str(state),
        "--json",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()[-2000:]
    summary = json.loads(stdout)
    assert summary["audit"]["verified"] is True
    accepted = [p["message_id"] for p in summary["published"] if p["status"] == 202]
    assert len(accepted) == 3

    audit_dir = state / "audit"
    assert (
        main(
            [
                "audit",
                "verify",
                str(audit_dir),
                "--key",
                str(state / "keys/demo-node.audit.jwks.json"),
            ]
        )
        == 0
    )
    assert "verified: every record and signed head holds" in capsys.readouterr().out
    for message_id in accepted:
        assert main(["audit", "search", "--dir", str(audit_dir), "--id", message_id, "--json"]) == 0
        life = json.loads(capsys.readouterr().out)["records"]
        events = [(r["event"], r.get("recipient")) for r in life]
        assert events[0] == ("message.accepted", None)
        for recipient in ("socialtreasury", "acme-analytics"):
            delivered = events.index(("message.delivered", recipient))
            assert events.index(("message.acknowledged", recipient)) > delivered
        assert len(events) == 5
        assert {r["payload_sha256"] for r in life[:1]} == {life[0]["payload_sha256"]}

    # The rejected referral left a record too, and nothing but digests.
    assert (
        main(["audit", "search", "--dir", str(audit_dir), "--outcome", "rejected", "--json"]) == 0
    )
    [rejected] = json.loads(capsys.readouterr().out)["records"]
    assert rejected["reason"] == "contract-violation"
    assert "/diagnosis" in rejected["pointers"]

    # The central copy: every record reached the audit topic, byte for byte.
    stored = [
        line
        for segment in sorted(audit_dir.glob("segment-*.jsonl"))
        for line in segment.read_bytes().splitlines()
    ]
    topic = await read_topic(bootstrap, f"{prefix}audit")
    shipped = [
        line
        for value, headers in topic
        if headers["gw_kind"] == b"record"
        for line in value.split(b"\n")
    ]
    # node.stopped and the last head are written while the producer still runs.
    assert shipped == stored
    heads = [value for value, headers in topic if headers["gw_kind"] == b"head"]
    last = json.loads(heads[-1].split(b"\n")[-1])["tree_head"]
    assert last["size"] == len(stored)
