"""Helpers for dead-letter tests: records refused on arrival, put straight into an inbox
topic as anyone with write access to the broker could, and the dead-letter topic."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import yaml

from gateway.crypto.jwk import SignKey
from gateway.crypto.keys import PrivateKeys
from gateway.transport import OutboundRecord
from tests.api.conftest import Gateway
from tests.support import REFERRAL, referral

ME = "socialtreasury"
UNREGISTERED = "1.2.0"
"""A version of the referral contract the node does not know until a test registers it."""


def put(gw: Gateway, value: bytes, headers: list[tuple[str, bytes]], to: str = ME) -> None:
    topic = gw.fed.config(()).inbox_topic(to)
    gw.transport.broker.topics.setdefault(topic, []).append(
        OutboundRecord(topic, b"key", value, tuple(headers))
    )


def refused(
    gw: Gateway,
    *,
    version: str = UNREGISTERED,
    forged: bool = False,
    issued_at: int | None = None,
    number: int = 1,
    to: str = ME,
) -> tuple[str, bytes]:
    """Put a referral into ``to``'s inbox that its node refuses: under a version it does
    not know (unknown-contract) or, ``forged``, signed with a key that is not the
    sender's (signature-invalid). Returns the message id and the envelope."""
    fed = gw.fed
    signer = None
    if forged:
        signer = SignKey(fed.keys["minhealth"].signing.kid, PrivateKeys.generate().signing.key)
    message_id, value, headers = fed.envelope(
        sealed_for=to,
        encrypted_to=to,
        payload=json.dumps(referral(number)).encode(),
        version=version,
        signer=signer,
        issued_at=issued_at,
    )
    schema = f"urn:gateway:contract:{REFERRAL}@{version}".encode()
    headers = [(k, schema if k == "ce_dataschema" else v) for k, v in headers]
    put(gw, value, headers, to)
    return message_id, value


def dlq_records(gw: Gateway, participant: str = ME) -> list[OutboundRecord]:
    return gw.transport.broker.records(gw.fed.config(()).dlq_topic(participant))


def inbox_records(gw: Gateway, participant: str = ME) -> list[OutboundRecord]:
    return gw.transport.broker.records(gw.fed.config(()).inbox_topic(participant))


def reasons(gw: Gateway, participant: str = ME) -> list[str]:
    """The reason of every entry in the dead-letter topic (markers left out)."""
    return [
        dict(r.headers)["gw_reason"].decode()
        for r in dlq_records(gw, participant)
        if "gw_reason" in dict(r.headers)
    ]


async def settle(gw: Gateway, entries: int, participant: str = ME) -> None:
    """Wait until the dead-letter topic holds ``entries`` entries."""
    deadline = time.monotonic() + 5
    while len(reasons(gw, participant)) < entries:
        assert time.monotonic() < deadline, f"dead letters: {reasons(gw, participant)}"
        await asyncio.sleep(0.01)


def next_version(gw: Gateway, version: str = UNREGISTERED) -> dict[str, Any]:
    """The current referral contract as a new, compatible version."""
    path = gw.fed.root / "contracts" / REFERRAL / "1.1.0.yaml"
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    document["version"] = version
    document.pop("migration")
    return document


async def register(gw: Gateway, version: str = UNREGISTERED) -> None:
    async with gw.http.post(
        f"/v1/contracts/{REFERRAL}/versions",
        json=next_version(gw, version),
        headers=gw.fed.auth("minhealth"),
    ) as response:
        assert response.status == 201, await response.text()


async def pull(gw: Gateway, who: str = ME, wait: float = 3) -> list[dict[str, Any]]:
    async with gw.http.get(
        "/v1/inbox", params={"wait": str(wait)}, headers=gw.fed.auth(who)
    ) as response:
        assert response.status == 200
        messages: list[dict[str, Any]] = (await response.json())["messages"]
    return messages
