"""Two nodes, each its own process, one broker, one registry topic: a contractor is
onboarded, exchanges messages both ways, is suspended and reinstated.

node-a hosts the agencies (minhealth, socialtreasury); node-b hosts the contractor
acme-analytics, sponsored by minhealth. Every registry record reaches the nodes
only through the ``<prefix>registry`` topic: their own registry directories hold
nothing but the trust anchor. The propagation delay (record acknowledged by the
broker -> both nodes act on it) is measured and printed.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from gateway.cli import main
from gateway.participants.registry import ANCHOR_FILE
from tests.integration.helpers import Node, free_port, node_process
from tests.support import REFERRAL, Federation, referral

ROOT = Path(__file__).resolve().parents[2]
REPORT = "analytics.referral-report"
REPORT_BODY = {"period": "2026-11", "referrals": 3}
PROPAGATION_BOUND_S = 5.0
"""What the test holds the nodes to; the figures measured are printed (pytest -s)."""


def report_contract(version: str = "1.0.0", **properties: Any) -> dict[str, Any]:
    """A contract the contractor publishes (to minhealth), for the way back."""
    return {
        "id": REPORT,
        "version": version,
        "title": "Referral analytics report",
        "owner": "minhealth",
        "classification": "internal",
        "compatibility": "backward",
        "producers": ["acme-analytics"],
        "consumers": ["minhealth"],
        "schema": {
            "type": "object",
            "required": ["period", "referrals"],
            "properties": {
                "period": {"type": "string"},
                "referrals": {"type": "integer", "minimum": 0},
                **properties,
            },
            "additionalProperties": False,
        },
        "examples": {"valid": [{"period": "2026-11", "referrals": 3}], "invalid": [{}]},
    }


def participant_file(
    fed: Federation, participant: str, requests: list[tuple[str, str]], **extra: Any
) -> Path:
    document = {
        "participant": participant,
        "kind": "agency",
        "legal_name": participant.title(),
        "keys": fed.keys[participant].public().to_jwks(participant),
        "contracts": [{"contract": c, "role": r, "versions": "^1.0.0"} for c, r in requests],
        "delivery": {"mode": "pull"},
        "security_contact": {"name": "Desk", "email": f"security@{participant}.example"},
        **extra,
    }
    path = fed.root / f"{participant}.participant.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def node_config(fed: Federation, node_id: str, hosted: tuple[str, ...], bootstrap: str) -> Path:
    anchor_dir = fed.root / f"{node_id}.registry"
    anchor_dir.mkdir()
    contracts = fed.root / f"{node_id}.contracts"  # each its own: what a node writes shows
    shutil.copytree(fed.root / "contracts", contracts)
    shutil.copy(fed.root / "authority" / ANCHOR_FILE, anchor_dir / ANCHOR_FILE)
    config = {
        "node_id": node_id,
        "prefix": fed.prefix,
        "contracts_dir": str(contracts),
        "keys_dir": str(fed.root / "keys"),
        "key_passphrase_file": str(fed.root / "passphrase"),
        "state_dir": str(fed.root / f"{node_id}.state"),
        "participants": [{"id": p, "token_sha256": [fed.digests[p]]} for p in hosted],
        "audit": {"dir": str(fed.root / f"{node_id}.audit"), "topic": False},
        "registry": {"dir": str(anchor_dir), "topic": True, "poll_s": 0.5},
        "kafka": {
            "bootstrap": bootstrap,
            "session_timeout_s": 6.0,
            "heartbeat_interval_s": 1.0,
            "rebalance_timeout_s": 2.0,
        },
        "http": {"host": "127.0.0.1", "port": free_port(), "max_inbox_wait_s": 10.0},
    }
    path = fed.root / f"{node_id}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def cli(*args: str) -> int:
    """The gateway command, in a thread (it runs its own event loop to publish)."""
    return await asyncio.to_thread(main, list(args))


@dataclass
class Exchange:
    fed: Federation
    http: aiohttp.ClientSession
    a: Node
    b: Node

    async def publish(
        self, node: Node, sender: str, contract: str, body: Any
    ) -> tuple[int, dict[str, Any]]:
        async with self.http.post(
            f"{node.url}/v1/contracts/{contract}/messages",
            json=body,
            headers=self.fed.auth(sender),
        ) as response:
            return response.status, await response.json()

    async def pull(self, node: Node, participant: str, wait_s: float = 5) -> tuple[int, list[Any]]:
        """Pull and acknowledge; (status, messages)."""
        async with self.http.get(
            f"{node.url}/v1/inbox?wait={wait_s}", headers=self.fed.auth(participant)
        ) as response:
            body = await response.json()
            if response.status != 200:
                return response.status, []
        messages = body["messages"]
        if messages:
            async with self.http.post(
                f"{node.url}/v1/inbox/ack",
                json={"tags": [m["tag"] for m in messages]},
                headers=self.fed.auth(participant),
            ) as response:
                assert response.status == 200
        return 200, messages

    async def sponsor(self, action: str, *args: str) -> None:
        """minhealth, as acme-analytics' sponsor, signs a record and publishes it."""
        root = self.fed.root
        code = await cli(
            "participants", action, *args, "--registry", str(root / "registry"),
            "--sponsor-key", str(root / "keys" / "minhealth.sig.pem"),
            "--passphrase-file", str(root / "passphrase"), "--publish", str(self.a.config),
        )  # fmt: skip
        assert code == 0

    async def routed_to_acme(self) -> bool:
        status, body = await self.publish(self.a, "minhealth", REFERRAL, referral())
        return status == 202 and "acme-analytics" in body["recipients"]

    async def a_leaves_acme_out(self) -> bool:
        status, body = await self.publish(self.a, "minhealth", REFERRAL, referral())
        return status == 202 and body["recipients"] == ["socialtreasury"]

    async def b_refuses_acme(self) -> bool:
        status, _ = await self.publish(self.b, "acme-analytics", REPORT, REPORT_BODY)
        return status == 403

    async def b_took(self) -> bool:
        """node-b admits acme-analytics, as its audit log says (a pull would take a
        message; a publish would send one): the last change it took is an admission."""
        changes = [
            r["event"]
            for r in await asyncio.to_thread(self.fed.audit, "node-b")
            if r.get("participant") == "acme-analytics" and r["event"].startswith("participant.")
        ]
        return bool(changes) and changes[-1] in {"participant.approved", "participant.reinstated"}

    async def b_refused(self) -> bool:
        """node-b refused a registry record as older than the one it holds."""
        return any(
            r["event"] == "registry.refused" and r["reason"] == "older-serial"
            for r in await asyncio.to_thread(self.fed.audit, "node-b")
        )

    async def inbox_status(self, node: Node, participant: str) -> int:
        """The inbox's status (may hand out one message: for refusals only)."""
        async with self.http.get(
            f"{node.url}/v1/inbox?max=1", headers=self.fed.auth(participant)
        ) as response:
            return response.status


async def took(check: Callable[[], Awaitable[bool]], bound_s: float = 30) -> float:
    """Seconds until ``check`` holds (polled every 20 ms); fails past ``bound_s``."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > bound_s:
            pytest.fail(f"not within {bound_s} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture
async def exchange(bootstrap: str, fed: Federation) -> AsyncIterator[Exchange]:
    (fed.root / "contracts" / REPORT).mkdir()
    (fed.root / "contracts" / REPORT / "1.0.0.yaml").write_text(yaml.safe_dump(report_contract()))
    secret = str(fed.root / "passphrase")
    assert await cli("authority", "init", "--out", str(fed.root / "authority"),
                     "--passphrase-file", secret) == 0  # fmt: skip
    registry = fed.root / "registry"  # the authority's and sponsors' working copy
    registry.mkdir()
    shutil.copy(fed.root / "authority" / ANCHOR_FILE, registry / ANCHOR_FILE)
    config_a = node_config(fed, "node-a", ("minhealth", "socialtreasury"), bootstrap)
    config_b = node_config(fed, "node-b", ("acme-analytics",), bootstrap)
    agencies = {
        "minhealth": [(REFERRAL, "publish"), (REPORT, "subscribe")],
        "socialtreasury": [(REFERRAL, "subscribe")],
    }
    for agency, requests in agencies.items():
        path = participant_file(fed, agency, requests)
        code = await cli(
            "participants", "approve", str(path), "--registry", str(registry),
            "--authority-key", str(fed.root / "authority" / "authority.pem"),
            "--passphrase-file", secret, "--contracts", str(fed.root / "contracts"),
            "--publish", str(config_a),
        )  # fmt: skip
        assert code == 0
    async with (
        node_process(fed, config_a) as a,
        node_process(fed, config_b) as b,
        aiohttp.ClientSession() as http,
    ):
        yield Exchange(fed, http, a, b)


async def test_a_contractor_is_onboarded_exchanges_both_ways_is_suspended_and_reinstated(
    exchange: Exchange, producer: AIOKafkaProducer, capsys: pytest.CaptureFixture[str]
) -> None:
    fed, a, b = exchange.fed, exchange.a, exchange.b
    figures: dict[str, float] = {}

    # Not yet approved: node-a routes nothing to acme-analytics, node-b refuses it.
    status, body = await exchange.publish(a, "minhealth", REFERRAL, referral())
    assert (status, body["recipients"]) == (202, ["socialtreasury"])
    assert await exchange.inbox_status(b, "acme-analytics") == 403

    # Submit: the contractor checks its file; approve: its sponsor signs it.
    acme = participant_file(
        fed,
        "acme-analytics",
        [(REFERRAL, "subscribe"), (REPORT, "publish")],
        kind="contractor",
        sponsor="minhealth",
    )
    contracts = str(fed.root / "contracts")
    assert await cli("participants", "submit", str(acme), "--contracts", contracts) == 0
    await exchange.sponsor("approve", str(acme), "--contracts", contracts)
    figures |= await both(
        {"approval, node-a": exchange.routed_to_acme, "approval, node-b": exchange.b_took}
    )
    await exchange_both_ways(exchange)

    # The owner registers a new contract version on node-a: node-b serves it too.
    async with exchange.http.post(
        f"{a.url}/v1/contracts/{REPORT}/versions",
        json=report_contract("1.1.0", region={"type": "string"}),
        headers=fed.auth("minhealth"),
    ) as response:
        assert response.status == 201, await response.text()

    async def b_serves_1_1() -> bool:
        body = {**REPORT_BODY, "region": "north"}
        status, _ = await exchange.publish(b, "acme-analytics", f"{REPORT}@1.1.0", body)
        return status == 202

    figures["contract version, node-b"] = await took(b_serves_1_1)
    assert (fed.root / "node-b.contracts" / REPORT / "1.1.0.yaml").is_file()
    status, messages = await exchange.pull(a, "minhealth")
    assert [m["version"] for m in messages] == ["1.1.0"]

    # Suspend: both nodes act on it within the bound, and nothing more reaches it.
    await exchange.sponsor("suspend", "acme-analytics")
    suspension = (fed.root / "registry" / "acme-analytics.record.json").read_bytes()
    figures |= await both(
        {
            "suspension, node-a": exchange.a_leaves_acme_out,
            "suspension, node-b": exchange.b_refuses_acme,
        }
    )
    during = []
    for _ in range(3):
        status, body = await exchange.publish(a, "minhealth", REFERRAL, referral())
        assert (status, body["recipients"]) == (202, ["socialtreasury"])
        during.append(body["message_id"])
    assert await exchange.inbox_status(b, "acme-analytics") == 403
    status, body = await exchange.publish(b, "acme-analytics", REPORT, REPORT_BODY)
    assert status == 403
    assert body["detail"] == "'acme-analytics' is not an active participant in the registry"

    # Reinstate: it works again, and nothing sent meanwhile was routed to it.
    await exchange.sponsor("reinstate", "acme-analytics")
    figures |= await both(
        {
            "reinstatement, node-a": exchange.routed_to_acme,
            "reinstatement, node-b": exchange.b_took,
        }
    )
    status, messages = await exchange.pull(b, "acme-analytics", wait_s=1)
    assert status == 200
    assert messages  # the referrals that found it re-admitted ...
    assert not {m["message_id"] for m in messages} & set(during)  # ... none from meanwhile
    status, _ = await exchange.publish(b, "acme-analytics", REPORT, REPORT_BODY)
    assert status == 202

    # Replaying the (genuine, signed) suspension onto the topic undoes nothing.
    await producer.send_and_wait(fed.prefix + "registry", suspension, key=b"acme-analytics")
    refusals = await took(exchange.b_refused)
    assert await exchange.routed_to_acme()
    status, _ = await exchange.publish(b, "acme-analytics", REPORT, REPORT_BODY)
    assert status == 202
    assert refusals < PROPAGATION_BOUND_S

    with capsys.disabled():
        print("\nregistry propagation (record acknowledged by the broker -> node acts on it):")
        for step, seconds in figures.items():
            print(f"  {step:<24} {seconds * 1000:7.0f} ms")
    for step, seconds in figures.items():
        assert seconds < PROPAGATION_BOUND_S, f"{step}: {seconds:.3f} s"
    audit_b = [r["event"] for r in fed.audit("node-b")]
    for event in ("participant.approved", "participant.suspended", "participant.reinstated"):
        assert event in audit_b


async def exchange_both_ways(exchange: Exchange) -> None:
    a, b = exchange.a, exchange.b
    # minhealth (node-a) -> acme-analytics (node-b).
    status, body = await exchange.publish(a, "minhealth", REFERRAL, referral())
    assert status == 202
    sent = body["message_id"]
    received: list[dict[str, Any]] = []
    while sent not in [m["message_id"] for m in received]:
        status, messages = await exchange.pull(b, "acme-analytics")
        assert status == 200
        assert messages, "the referral did not reach node-b"
        received += messages
    assert {m["sender"] for m in received} == {"minhealth"}

    # acme-analytics (node-b) -> minhealth (node-a).
    status, body = await exchange.publish(b, "acme-analytics", REPORT, REPORT_BODY)
    assert (status, body["recipients"]) == (202, ["minhealth"])
    status, messages = await exchange.pull(a, "minhealth")
    assert [(m["message_id"], m["sender"]) for m in messages] == [
        (body["message_id"], "acme-analytics")
    ]
    assert messages[0]["payload"] == REPORT_BODY


async def both(checks: dict[str, Callable[[], Awaitable[bool]]]) -> dict[str, float]:
    """How long each check took to hold, all measured from the same moment."""
    seconds = await asyncio.gather(*(took(check) for check in checks.values()))
    return dict(zip(checks, seconds, strict=True))
