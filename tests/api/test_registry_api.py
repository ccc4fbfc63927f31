"""A node following the signed registry: approval, suspension and forgery, without restarts."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from gateway.config import RegistryConfig
from gateway.crypto.encoding import b64u_decode
from gateway.crypto.jwk import SignKey, Suite
from gateway.crypto.keys import PrivateKeys, write_public
from gateway.errors import ConfigError
from gateway.node import RunningNode, running_node
from gateway.participants.registry import (
    ANCHOR_FILE,
    AUTHORITY,
    RECORD_SUFFIX,
    Status,
    open_record,
    sign_record,
)
from tests.fakes import MemoryTransport
from tests.support import REFERRAL, Federation, referral

AUTHORITY_KEY = SignKey.generate(Suite.ED25519)
ANCHOR = {AUTHORITY_KEY.kid: AUTHORITY_KEY.verify_key()}
PUBLISH = f"/v1/contracts/{REFERRAL}/messages"
POLL_S = 0.02


def participant_file(fed: Federation, participant: str, **fields: Any) -> dict[str, Any]:
    return {
        "participant": participant,
        "kind": "agency",
        "legal_name": participant.title(),
        "keys": fed.keys[participant].public().to_jwks(participant),
        "contracts": [{"contract": REFERRAL, "role": "subscribe"}],
        "delivery": {"mode": "pull"},
        "security_contact": {"name": "Desk", "email": f"security@{participant}.example"},
        **fields,
    }


@dataclass
class World:
    fed: Federation
    registry: Path
    node: RunningNode
    http: aiohttp.ClientSession
    transport: MemoryTransport | None = None

    def put(
        self,
        participant: str,
        serial: int,
        status: Status = Status.ACTIVE,
        document: dict[str, Any] | None = None,
    ) -> None:
        """Write the participant's record as its signer would (authority or sponsor)."""
        document = document or self.document(participant)
        if document["kind"] == "agency":
            jws = self.sign(document, serial, status, AUTHORITY_KEY, AUTHORITY)
            chain: list[str] = []
        else:
            sponsor = document["sponsor"]
            jws = self.sign(document, serial, status, self.fed.keys[sponsor].signing, sponsor)
            chain = [self.bundle(sponsor)["record"]]
        bundle = {"record": jws, "chain": chain}
        open_record(bundle, ANCHOR)  # what the test writes is a record that holds
        self.write(participant, bundle)

    def document(self, participant: str) -> dict[str, Any]:
        if participant == "acme-analytics":
            return participant_file(self.fed, participant, kind="contractor", sponsor="minhealth")
        if participant == "minhealth":
            return participant_file(
                self.fed, participant, contracts=[{"contract": REFERRAL, "role": "publish"}]
            )
        return participant_file(self.fed, participant)

    @staticmethod
    def sign(
        document: dict[str, Any], serial: int, status: Status, key: SignKey, issuer: str
    ) -> str:
        return sign_record(
            document, serial=serial, status=status, issued_at=1_795_000_000, key=key, issuer=issuer
        )

    def bundle(self, participant: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            (self.registry / f"{participant}{RECORD_SUFFIX}").read_text()
        )
        return data

    def write(self, participant: str, bundle: Any) -> None:
        path = self.registry / f"{participant}{RECORD_SUFFIX}"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(bundle))
        temporary.replace(path)

    async def publish(self, sender: str = "minhealth") -> tuple[int, dict[str, Any]]:
        async with self.http.post(
            PUBLISH, json=referral(), headers=self.fed.auth(sender)
        ) as response:
            return response.status, await response.json()

    async def pull_status(self, participant: str) -> int:
        async with self.http.get("/v1/inbox", headers=self.fed.auth(participant)) as response:
            return response.status

    async def until(self, check: Any) -> None:
        """Wait for the node to take in a change (within a few poll intervals)."""
        async with asyncio.timeout(5):
            while not await check():  # noqa: ASYNC110 - the node polls a directory
                await asyncio.sleep(POLL_S)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.fed.audit("node-1") if r["event"] == name]


@contextlib.asynccontextmanager
async def make_world(
    tmp_path: Path,
    before_start: Callable[[Federation], None] | None = None,
    hosted: tuple[str, ...] = ("minhealth", "socialtreasury", "acme-analytics", "metro-medical"),
) -> AsyncIterator[World]:
    fed = Federation.create(tmp_path)
    registry = tmp_path / "registry"
    registry.mkdir()
    (registry / ANCHOR_FILE).write_text(json.dumps({"keys": [AUTHORITY_KEY.verify_key().to_jwk()]}))
    placeholder = World(fed, registry, None, None)  # type: ignore[arg-type]
    for participant in ("minhealth", "socialtreasury", "acme-analytics"):
        placeholder.put(participant, serial=1)
    if before_start is not None:
        before_start(fed)
    config = dataclasses.replace(
        fed.config(hosted, bootstrap="memory"),
        registry=RegistryConfig(dir=registry, poll_s=POLL_S),
    )
    transport = MemoryTransport()
    async with running_node(config, transport=transport) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            yield World(fed, registry, node, http, transport)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with make_world(tmp_path) as made:
        yield made


async def test_an_approved_contractor_receives_and_a_suspended_one_stops_at_once(
    world: World,
) -> None:
    status, body = await world.publish()
    assert status == 202
    assert body["recipients"] == ["acme-analytics", "socialtreasury"]

    world.put("acme-analytics", serial=2, status=Status.SUSPENDED)

    async def suspended() -> bool:
        return await world.pull_status("acme-analytics") == 403

    await world.until(suspended)
    status, body = await world.publish()
    assert (status, body["recipients"]) == (202, ["socialtreasury"])  # nothing more for it
    [event] = world.events("participant.suspended")
    assert (event["participant"], event["by"], event["serial"]) == (
        "acme-analytics",
        "minhealth",
        2,
    )

    world.put("acme-analytics", serial=3)

    async def reinstated() -> bool:
        return await world.pull_status("acme-analytics") == 200

    await world.until(reinstated)
    status, body = await world.publish()
    assert body["recipients"] == ["acme-analytics", "socialtreasury"]
    assert [e["serial"] for e in world.events("participant.reinstated")] == [3]


async def test_messages_held_for_a_suspended_participant_are_delivered_on_reinstatement(
    world: World,
) -> None:
    """Accepted before the suspension took effect, a message waits (it is not dead-lettered)
    and is delivered once the participant is reinstated; nothing published meanwhile is."""
    _, before = await world.publish()
    world.put("acme-analytics", serial=2, status=Status.SUSPENDED)

    async def suspended() -> bool:  # no pull before the suspension: it would take the message
        return bool(world.events("participant.suspended"))

    await world.until(suspended)
    assert await world.pull_status("acme-analytics") == 403
    _, during = await world.publish()
    world.put("acme-analytics", serial=3)

    async def reinstated() -> bool:  # not a pull: that would take the message
        return bool(world.events("participant.reinstated"))

    await world.until(reinstated)
    async with world.http.get(
        "/v1/inbox?wait=2", headers=world.fed.auth("acme-analytics")
    ) as response:
        pulled = [m["message_id"] for m in (await response.json())["messages"]]
    assert pulled == [before["message_id"]]
    assert during["recipients"] == ["socialtreasury"]
    assert not any(
        e["recipient"] == "acme-analytics" for e in world.events("message.dead_lettered")
    )


async def test_a_sender_whose_record_does_not_ask_to_publish_gets_403(world: World) -> None:
    subscriber_only = world.document("socialtreasury") | {
        "participant": "minhealth",
        "keys": world.fed.keys["minhealth"].public().to_jwks("minhealth"),
        "legal_name": "Minhealth",
    }
    world.put("minhealth", serial=2, document=subscriber_only)

    async def refused() -> bool:
        return (await world.publish())[0] == 403

    await world.until(refused)
    status, body = await world.publish()
    assert (status, body["detail"]) == (
        403,
        f"'minhealth' has no registry record entitling it to publish {REFERRAL}@1.1.0",
    )
    assert world.events("access.denied")[-1]["principal"] == "minhealth"


async def test_a_consumer_outside_its_requested_versions_is_left_out(world: World) -> None:
    narrow = world.document("acme-analytics") | {
        "contracts": [{"contract": REFERRAL, "role": "subscribe", "versions": "~1.0.0"}]
    }
    world.put("acme-analytics", serial=2, document=narrow)

    async def left_out() -> bool:
        recipients: list[str] = (await world.publish())[1]["recipients"]
        return recipients == ["socialtreasury"]

    await world.until(left_out)  # the latest version, 1.1.0, is outside ~1.0.0
    async with world.http.post(
        f"{PUBLISH}?to=acme-analytics", json=referral(), headers=world.fed.auth("minhealth")
    ) as response:
        body = await response.json()
    assert response.status == 422
    assert body["detail"] == (
        f"'acme-analytics' has no registry record entitling it to receive {REFERRAL}@1.1.0"
    )
    async with world.http.post(
        f"/v1/contracts/{REFERRAL}@1.0.0/messages",
        json=referral(),
        headers=world.fed.auth("minhealth"),
    ) as response:
        assert (await response.json())["recipients"] == ["acme-analytics", "socialtreasury"]


async def test_a_suspended_sender_gets_403_and_an_audit_record(world: World) -> None:
    world.put("minhealth", serial=2, status=Status.SUSPENDED)

    async def refused() -> bool:
        return (await world.publish())[0] == 403

    await world.until(refused)
    status, body = await world.publish()
    assert status == 403
    assert body["detail"] == "'minhealth' is not an active participant in the registry"
    assert world.events("access.denied")
    # What minhealth sponsored goes quiet with it: acme-analytics receives nothing more.
    assert await world.pull_status("acme-analytics") == 403


@pytest.mark.parametrize("forgery", ["bad-signature", "older-serial", "unknown-signer"])
async def test_a_forged_record_is_refused_audited_and_the_last_good_one_stays(
    world: World, forgery: str
) -> None:
    world.put("acme-analytics", serial=2)  # serial 2, active

    async def taken() -> bool:
        return any(e["serial"] == 2 for e in world.events("participant.approved"))

    await world.until(taken)
    document = world.document("acme-analytics")
    if forgery == "bad-signature":
        bundle = world.bundle("acme-analytics")
        good = bundle["record"]
        at = len(good) - 10  # inside the signature, clear of base64url's last character
        bundle["record"] = good[:at] + ("A" if good[at] != "A" else "B") + good[at + 1 :]
    elif forgery == "older-serial":
        jws = world.sign(
            document, 1, Status.SUSPENDED, world.fed.keys["minhealth"].signing, "minhealth"
        )
        bundle = {"record": jws, "chain": world.bundle("acme-analytics")["chain"]}
    else:
        stranger = SignKey.generate(Suite.ED25519)
        bundle = {
            "record": world.sign(document, 9, Status.SUSPENDED, stranger, AUTHORITY),
            "chain": [],
        }
    world.write("acme-analytics", bundle)

    async def refused() -> bool:
        return bool(world.events("registry.refused"))

    await world.until(refused)
    [event] = world.events("registry.refused")
    assert event["file"] == f"acme-analytics{RECORD_SUFFIX}"
    assert event["reason"] == forgery
    assert await world.pull_status("acme-analytics") == 200  # still the last good record
    assert (await world.publish())[1]["recipients"] == ["acme-analytics", "socialtreasury"]
    await asyncio.sleep(POLL_S * 5)
    assert len(world.events("registry.refused")) == 1  # audited once, not on every look


async def test_a_participant_without_a_record_takes_no_part(world: World) -> None:
    (world.registry / f"socialtreasury{RECORD_SUFFIX}").unlink()  # gone from the directory
    await asyncio.sleep(POLL_S * 5)
    # A file that disappears changes nothing: the node keeps the last good record.
    assert await world.pull_status("socialtreasury") == 200
    # metro-medical has keys here but no record at all.
    status, body = await world.publish("metro-medical")
    assert (status, body["detail"]) == (
        403,
        "'metro-medical' is not an active participant in the registry",
    )


async def test_a_registry_without_its_trust_anchor_stops_the_node(tmp_path: Path) -> None:
    fed = Federation.create(tmp_path)
    (tmp_path / "registry").mkdir()
    config = dataclasses.replace(
        fed.config(("minhealth",), bootstrap="memory"),
        registry=RegistryConfig(dir=tmp_path / "registry"),
    )
    with pytest.raises(ConfigError, match=r"has no authority\.jwks\.json"):
        async with running_node(config, transport=MemoryTransport()):
            pass


async def test_public_keys_come_from_the_registry_not_from_the_key_files(tmp_path: Path) -> None:
    """Someone swaps acme-analytics's public key file on the node: the node still
    encrypts to the key the registry vouches for."""
    rogue = PrivateKeys.generate()

    def swap(fed: Federation) -> None:
        write_public(
            fed.root / "keys" / "acme-analytics.public.jwks.json", rogue.public(), "acme-analytics"
        )

    async with make_world(tmp_path, before_start=swap, hosted=("minhealth",)) as world:
        status, _ = await world.publish()
        assert status == 202
        assert world.transport is not None
        [record] = world.transport.broker.records(
            world.fed.config(()).inbox_topic("acme-analytics")
        )
    protected = json.loads(b64u_decode(record.value.split(b".")[0]))
    assert protected["kid"] == world.fed.keys["acme-analytics"].public().encryption[0].kid
    assert protected["kid"] != rogue.public().encryption[0].kid


async def test_a_hosted_participant_whose_record_lists_other_keys_is_warned_of(
    tmp_path: Path,
) -> None:
    rogue = PrivateKeys.generate()

    def relist(fed: Federation) -> None:
        document = participant_file(fed, "socialtreasury")
        document["keys"] = rogue.public().to_jwks("socialtreasury")
        jws = World.sign(document, 2, Status.ACTIVE, AUTHORITY_KEY, AUTHORITY)
        path = tmp_path / "registry" / f"socialtreasury{RECORD_SUFFIX}"
        path.write_text(json.dumps({"record": jws, "chain": []}))

    with capture_logs() as logs:
        async with make_world(tmp_path, before_start=relist):
            pass

    warned = [e for e in logs if e["event"] == "registry_keys_differ"]
    assert [e["participant"] for e in warned] == ["socialtreasury"]
