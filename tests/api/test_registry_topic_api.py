"""A node whose registry is the topic (``registry.topic``), on the in-memory transport:
it reads the topic before it serves, follows it, and sends contract versions to it."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.config import RegistryConfig
from gateway.node import RunningNode, running_node
from gateway.participants.registry import ANCHOR_FILE, RECORD_SUFFIX, Status
from gateway.transport import OutboundRecord
from tests.api.test_registry_api import ANCHOR, AUTHORITY_KEY, World
from tests.fakes import MemoryTransport
from tests.support import REFERRAL, Federation, referral

VERSIONS = f"/v1/contracts/{REFERRAL}/versions"


@dataclass
class TopicWorld:
    fed: Federation
    node: RunningNode
    http: aiohttp.ClientSession
    transport: MemoryTransport
    signer: World
    """Signs records as the authority and sponsors do (the directory world's helpers)."""

    @property
    def topic(self) -> str:
        return f"{self.fed.prefix}registry"

    def produce(self, participant: str, serial: int, status: Status = Status.ACTIVE) -> None:
        """Sign a record and append it to the registry topic, as the CLI's --publish does."""
        self.signer.put(participant, serial, status)
        bundle = self.signer.bundle(participant)
        record = OutboundRecord(self.topic, participant.encode(), json.dumps(bundle).encode(), ())
        self.transport.broker.topics.setdefault(self.topic, []).append(record)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.fed.audit("node-1") if r["event"] == name]


@pytest.fixture
async def topic_world(tmp_path: Path) -> AsyncIterator[TopicWorld]:
    fed = Federation.create(tmp_path)
    anchor_only = tmp_path / "registry"
    anchor_only.mkdir()
    (anchor_only / ANCHOR_FILE).write_text(
        json.dumps({"keys": [AUTHORITY_KEY.verify_key().to_jwk()]})
    )
    signing_dir = tmp_path / "signing"  # where the signer keeps its record files
    signing_dir.mkdir()
    signer = World(fed, signing_dir, None, None)  # type: ignore[arg-type]
    transport = MemoryTransport()
    placeholder = TopicWorld(fed, None, None, transport, signer)  # type: ignore[arg-type]
    for participant in ("minhealth", "socialtreasury", "acme-analytics"):
        placeholder.produce(participant, serial=1)
    config = dataclasses.replace(
        fed.config(("minhealth", "socialtreasury", "acme-analytics"), bootstrap="memory"),
        registry=RegistryConfig(dir=anchor_only, poll_s=0.02, topic=True),
    )
    async with running_node(config, transport=transport) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            yield TopicWorld(fed, node, http, transport, signer)


async def until(check: Any) -> None:
    async with asyncio.timeout(5):
        while not await check():  # noqa: ASYNC110 - the node follows a topic
            await asyncio.sleep(0.02)


async def publish(world: TopicWorld, sender: str = "minhealth") -> tuple[int, dict[str, Any]]:
    async with world.http.post(
        f"/v1/contracts/{REFERRAL}/messages", json=referral(), headers=world.fed.auth(sender)
    ) as response:
        return response.status, await response.json()


def next_version(world: TopicWorld) -> dict[str, Any]:
    path = world.fed.root / "contracts" / REFERRAL / "1.1.0.yaml"
    document: dict[str, Any] = copy.deepcopy(yaml.safe_load(path.read_text()))
    document["version"] = "1.2.0"
    document.pop("migration")
    return document


async def test_the_node_reads_the_topic_before_it_serves(topic_world: TopicWorld) -> None:
    status, body = await publish(topic_world)
    assert (status, body["recipients"]) == (202, ["acme-analytics", "socialtreasury"])
    approved = topic_world.events("participant.approved")
    assert sorted(e["participant"] for e in approved) == [
        "acme-analytics",
        "minhealth",
        "socialtreasury",
    ]
    # The records came from the topic alone: the node's directory holds only the anchor.
    assert not list((topic_world.fed.root / "registry").glob(f"*{RECORD_SUFFIX}"))


async def test_a_suspension_on_the_topic_takes_effect_while_serving(
    topic_world: TopicWorld,
) -> None:
    topic_world.produce("acme-analytics", serial=2, status=Status.SUSPENDED)

    async def left_out() -> bool:
        recipients: list[str] = (await publish(topic_world))[1]["recipients"]
        return recipients == ["socialtreasury"]

    await until(left_out)
    [event] = topic_world.events("participant.suspended")
    assert (event["participant"], event["serial"]) == ("acme-analytics", 2)


async def test_a_new_contract_version_goes_to_the_topic_signed_by_its_owner(
    topic_world: TopicWorld,
) -> None:
    async with topic_world.http.post(
        VERSIONS, json=next_version(topic_world), headers=topic_world.fed.auth("minhealth")
    ) as response:
        assert response.status == 201
        assert (await response.json())["registered"] is True

    [record] = [
        r
        for r in topic_world.transport.broker.records(topic_world.topic)
        if r.key.startswith(b"contract:")
    ]
    assert record.key == f"contract:{REFERRAL}@1.2.0".encode()
    header = json.loads(_b64(json.loads(record.value)["record"].split(".")[0]))
    assert (header["iss"], header["kid"]) == (
        "minhealth",
        topic_world.fed.keys["minhealth"].signing.kid,
    )
    await asyncio.sleep(0.1)  # the node's own follower reads it back: nothing new
    assert len(topic_world.events("contract.registered")) == 1
    assert topic_world.events("contract.registered")[0]["checked_against"] == ["1.1.0"]
    assert topic_world.events("registry.refused") == []


async def test_a_version_the_broker_does_not_take_is_not_registered(
    topic_world: TopicWorld,
) -> None:
    topic_world.transport.broker.down = True
    async with topic_world.http.post(
        VERSIONS, json=next_version(topic_world), headers=topic_world.fed.auth("minhealth")
    ) as response:
        assert response.status == 503
    topic_world.transport.broker.down = False

    async with topic_world.http.get(
        f"/v1/contracts/{REFERRAL}", headers=topic_world.fed.auth("minhealth")
    ) as response:
        versions = [v["version"] for v in (await response.json())["versions"]]
    assert versions == ["1.0.0", "1.1.0"]
    assert not (topic_world.fed.root / "contracts" / REFERRAL / "1.2.0.yaml").exists()


async def test_a_suspended_owner_sends_no_contract_version_to_the_cluster(
    topic_world: TopicWorld,
) -> None:
    topic_world.produce("minhealth", serial=2, status=Status.SUSPENDED)

    async def suspended() -> bool:
        return bool(topic_world.events("participant.suspended"))

    await until(suspended)
    async with topic_world.http.post(
        VERSIONS, json=next_version(topic_world), headers=topic_world.fed.auth("minhealth")
    ) as response:
        assert response.status == 403
        assert "signs no contract versions for the cluster" in (await response.json())["detail"]
    assert not any(
        r.key.startswith(b"contract:")
        for r in topic_world.transport.broker.records(topic_world.topic)
    )
    assert not (topic_world.fed.root / "contracts" / REFERRAL / "1.2.0.yaml").exists()


async def test_a_refused_version_never_reaches_the_topic(topic_world: TopicWorld) -> None:
    breaking = next_version(topic_world)
    breaking["schema"]["required"] = [*breaking["schema"].get("required", []), "brandNew"]
    async with topic_world.http.post(
        VERSIONS, json=breaking, headers=topic_world.fed.auth("minhealth")
    ) as response:
        assert response.status == 422  # its own examples lack the new required member
    assert not any(
        r.key.startswith(b"contract:")
        for r in topic_world.transport.broker.records(topic_world.topic)
    )


async def test_a_node_that_cannot_read_the_topic_does_not_start(tmp_path: Path) -> None:
    fed = Federation.create(tmp_path)
    (tmp_path / ANCHOR_FILE).write_text(
        json.dumps({"keys": [next(iter(ANCHOR.values())).to_jwk()]})
    )
    transport = MemoryTransport()
    transport.broker.down = True
    config = dataclasses.replace(
        fed.config(("minhealth",), bootstrap="memory"),
        registry=RegistryConfig(dir=tmp_path, topic=True),
    )
    with pytest.raises(Exception, match="broker is down"):
        async with running_node(config, transport=transport):
            pass


def _b64(text: str) -> bytes:
    from gateway.crypto.encoding import b64u_decode

    return b64u_decode(text)
