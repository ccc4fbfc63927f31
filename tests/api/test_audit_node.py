"""What a running node writes to its audit log, and when it signs."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import aiohttp

from gateway.audit.store import KEY_FILE, audit_key_paths, read_verify_keys
from gateway.audit.verify import verify
from gateway.config import AuditConfig
from gateway.node import running_node
from tests.fakes import MemoryTransport
from tests.support import REFERRAL, Federation, referral


async def test_a_node_signs_heads_while_it_runs_and_audits_its_own_life(tmp_path: Path) -> None:
    fed = Federation.create(tmp_path)
    base = fed.config(("minhealth", "socialtreasury", "acme-analytics"), bootstrap="memory")
    audit_dir = tmp_path / "audit"
    config = dataclasses.replace(
        base, audit=AuditConfig(dir=audit_dir, head_interval_s=0.05, topic=False)
    )
    async with running_node(config, transport=MemoryTransport()) as node:
        await node.wait_ready(5)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{node.url}/v1/contracts/{REFERRAL}/messages",
                json=referral(),
                headers=fed.auth("minhealth"),
            ) as response,
        ):
            assert response.status == 202
        # Within the head interval, a signed head covers the accepted message.
        keys = read_verify_keys(audit_dir / KEY_FILE)
        async with asyncio.timeout(5):
            while verify(audit_dir, keys).signed_size < 4:  # noqa: ASYNC110 - a file on disk
                await asyncio.sleep(0.02)
        running = verify(audit_dir, keys)
        assert running.ok
        assert running.unsigned == 0

    events = [r["event"] for r in fed.audit_at(audit_dir)]
    assert events == [
        "key.generated",
        "config.loaded",
        "node.started",
        "message.accepted",
        "node.stopped",
    ]
    first = fed.audit_at(audit_dir)
    assert first[0]["purpose"] == "audit"
    assert first[1]["participants"] == ["acme-analytics", "minhealth", "socialtreasury"]
    stopped = verify(audit_dir, read_verify_keys(audit_key_paths(config.keys_dir, "node-1")[1]))
    assert stopped.ok
    assert stopped.unsigned == 0  # the node signed a last head as it stopped

    # A second start keeps the key and the log: no new key, the chain continues.
    async with running_node(config, transport=MemoryTransport()) as node:
        await node.wait_ready(5)
    events = [r["event"] for r in fed.audit_at(audit_dir)]
    assert events[5:] == ["config.loaded", "node.started", "node.stopped"]
    assert [r["seq"] for r in fed.audit_at(audit_dir)] == list(range(8))
    assert verify(audit_dir, keys).ok
