"""Every receive-side refusal: its distinct reason, a dead letter, an audit record,
and nothing delivered. Records are put straight into the inbox topic, as an
attacker with write access to the broker could."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.crypto import lifecycle
from gateway.crypto.jwk import SignKey
from gateway.crypto.keys import PrivateKeys
from gateway.node import RunningNode, running_node
from gateway.transport import OutboundRecord
from tests.fakes import MemoryTransport
from tests.support import SECRET, Federation, referral

ME = "socialtreasury"
ROTATED_AT = int(time.time()) - 4 * 3600
"""minhealth's keys were rotated four hours ago with a two-hour overlap; the old
signing key was revoked three hours after the rotation (after its overlap), so
the retired and the revoked windows can be told apart."""
VALID_UNTIL = ROTATED_AT + 2 * 3600
REVOKED_AT = ROTATED_AT + 3 * 3600


@dataclass
class Setup:
    fed: Federation
    node: RunningNode
    http: aiohttp.ClientSession
    transport: MemoryTransport
    old_minhealth: PrivateKeys

    def put(self, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        topic = f"{self.fed.prefix}inbox.{ME}"
        self.transport.broker.topics.setdefault(topic, []).append(
            OutboundRecord(topic, b"k", value, tuple(headers))
        )

    def dead_letters(self) -> list[str]:
        records = self.transport.broker.records(f"{self.fed.prefix}dlq.{ME}")
        return [dict(r.headers)["gw_reason"].decode() for r in records]

    def audit(self) -> list[dict[str, Any]]:
        return self.fed.audit("node-1")

    async def pull(self, wait: float = 0.5) -> list[dict[str, Any]]:
        async with self.http.get(
            f"{self.node.url}/v1/inbox", params={"wait": str(wait)}, headers=self.fed.auth(ME)
        ) as response:
            messages: list[dict[str, Any]] = (await response.json())["messages"]
            return messages


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    fed = Federation.create(tmp_path)
    old = fed.keys["minhealth"]
    keys_dir = tmp_path / "keys"
    fed.keys["minhealth"] = lifecycle.rotate(
        keys_dir, "minhealth", SECRET, overlap_s=VALID_UNTIL - ROTATED_AT, now=ROTATED_AT
    )
    lifecycle.revoke(keys_dir, "minhealth", old.signing.kid, at=REVOKED_AT)
    transport = MemoryTransport()
    config = fed.config((ME,), bootstrap="memory")
    async with running_node(config, transport=transport) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession() as http:
            yield Setup(fed, node, http, transport, old)


def payload() -> bytes:
    return json.dumps(referral()).encode()


def other_signer(fed: Federation) -> SignKey:
    """minhealth's kid, somebody else's key: the signature cannot verify."""
    return SignKey(fed.keys["minhealth"].signing.kid, PrivateKeys.generate().signing.key)


CASES: dict[str, dict[str, Any]] = {
    "signature-invalid": {"signer": "forged"},
    "unknown-key": {"signer": "unknown-kid"},
    "revoked-key": {"signer": "old", "issued_at": "revoked"},
    "retired-key": {"signer": "old", "issued_at": "retired"},
    "sender-not-producer": {"sender": "acme-analytics"},
    "recipient-mismatch": {"sealed_for": "acme-analytics"},
    "issued-in-future": {"issued_at": "future"},
    "expired": {"issued_at": "expired"},
}


def craft(s: Setup, case: dict[str, Any]) -> tuple[str, bytes, list[tuple[str, bytes]]]:
    now = int(time.time())
    times = {
        "future": now + 3600,
        "expired": now - 3 * 86400,
        "revoked": REVOKED_AT,
        "retired": VALID_UNTIL + 1,
    }
    signers = {
        "forged": other_signer(s.fed),
        "old": s.old_minhealth.signing,
        "unknown-kid": SignKey("no-such-kid", s.fed.keys["minhealth"].signing.key),
    }
    issued = times.get(case.get("issued_at", ""), now)
    return s.fed.envelope(
        sealed_for=case.get("sealed_for", ME),
        encrypted_to=ME,
        payload=payload(),
        sender=case.get("sender", "minhealth"),
        signer=signers.get(case.get("signer", "")),
        issued_at=issued,
    )


@pytest.mark.parametrize("reason", sorted(CASES))
async def test_each_refusal_has_its_reason_and_delivers_nothing(setup: Setup, reason: str) -> None:
    message_id, value, headers = craft(setup, CASES[reason])
    if reason == "recipient-mismatch":  # the routing header names this inbox
        headers = [(k, ME.encode() if k == "ce_recipient" else v) for k, v in headers]
    setup.put(value, headers)
    # A valid message behind it shows the inbox went past the refused one.
    good_id, good, good_headers = setup.fed.envelope(
        sealed_for=ME, encrypted_to=ME, payload=payload()
    )
    setup.put(good, good_headers)
    delivered = await setup.pull(wait=5)
    assert [m["message_id"] for m in delivered] == [good_id]
    assert setup.dead_letters() == [reason]
    [event] = [e for e in setup.audit() if e["event"] == "envelope.rejected"]
    assert (event["reason"], event["message_id"]) == (reason, message_id)


async def test_a_replay_of_an_acknowledged_message_is_suppressed(setup: Setup) -> None:
    """Read again (a crash before the offset commit, a producer retry, a replay): settled
    without a second delivery and without a dead letter, and audited."""
    _, value, headers = setup.fed.envelope(sealed_for=ME, encrypted_to=ME, payload=payload())
    setup.put(value, headers)
    [first] = await setup.pull(wait=5)
    async with setup.http.post(
        f"{setup.node.url}/v1/inbox/ack", json={"tags": [first["tag"]]}, headers=setup.fed.auth(ME)
    ) as response:
        assert response.status == 200
    setup.put(value, headers)  # the very same record, again
    assert await setup.pull(wait=1) == []
    for _ in range(50):  # the suppression is recorded by the fetch loop
        if duplicates(setup):
            break
        await asyncio.sleep(0.01)
    assert [d["message_id"] for d in duplicates(setup)] == [first["message_id"]]
    assert setup.dead_letters() == []


def duplicates(setup: Setup) -> list[dict[str, Any]]:
    return [e for e in setup.audit() if e["event"] == "message.duplicate"]


async def test_a_duplicate_while_the_first_is_held_is_suppressed(setup: Setup) -> None:
    message_id, value, headers = setup.fed.envelope(
        sealed_for=ME, encrypted_to=ME, payload=payload()
    )
    setup.put(value, headers)
    setup.put(value, headers)
    delivered = await setup.pull(wait=5)
    assert [m["message_id"] for m in delivered] == [message_id]
    assert await setup.pull(wait=1) == []
    assert [d["message_id"] for d in duplicates(setup)] == [message_id]
    assert setup.dead_letters() == []


async def test_the_old_key_verifies_within_its_overlap(setup: Setup) -> None:
    message_id, value, headers = setup.fed.envelope(
        sealed_for=ME,
        encrypted_to=ME,
        payload=payload(),
        signer=setup.old_minhealth.signing,
        issued_at=ROTATED_AT + 10,
    )
    setup.put(value, headers)
    [message] = await setup.pull(wait=5)
    assert message["message_id"] == message_id
    assert setup.dead_letters() == []
