"""Field minimisation end to end: a consumer limited to some fields never receives
the others, not even as ciphertext, and what it receives is a valid consumer view."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.contracts import load_catalog
from gateway.contracts.projection import consumer_view
from gateway.contracts.validation import PayloadValidator
from gateway.crypto.envelope import open_envelope
from gateway.errors import InvalidContract
from gateway.node import running_node
from tests.api.conftest import Gateway
from tests.fakes import MemoryTransport
from tests.support import REFERRAL, Federation, referral

FIELDS = ["/issuedOn", "/patient/birthDate", "/patient/sex", "/diagnosis", "/urgency"]


def add_minimised_version(fed: Federation) -> None:
    folder = fed.root / "contracts" / REFERRAL
    document: dict[str, Any] = yaml.safe_load((folder / "1.1.0.yaml").read_text())
    document["version"] = "1.2.0"
    document.pop("migration")
    document["consumers"] = ["socialtreasury", {"id": "acme-analytics", "fields": FIELDS}]
    (folder / "1.2.0.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    fed = Federation.create(tmp_path)
    add_minimised_version(fed)
    transport = MemoryTransport()
    config = fed.config(("minhealth", "socialtreasury", "acme-analytics"), bootstrap="memory")
    async with running_node(config, transport=transport) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            yield Gateway(node, http, fed, transport)


async def pull(gw: Gateway, who: str) -> dict[str, Any]:
    async with gw.http.get("/v1/inbox", params={"wait": "5"}, headers=gw.fed.auth(who)) as r:
        [message] = (await r.json())["messages"]
        return dict(message)


async def test_a_limited_consumer_receives_only_its_fields(gateway: Gateway) -> None:
    payload = {**referral(), "contactEmail": "doctor@clinic.example"}
    async with gateway.http.post(
        f"/v1/contracts/{REFERRAL}/messages", json=payload, headers=gateway.fed.auth("minhealth")
    ) as response:
        assert response.status == 202
        assert (await response.json())["contract"] == f"{REFERRAL}@1.2.0"
    limited = await pull(gateway, "acme-analytics")
    full = await pull(gateway, "socialtreasury")
    assert full["payload"] == payload
    assert limited["payload"] == {
        "issuedOn": payload["issuedOn"],
        "patient": {"birthDate": "1961-03-14", "sex": "female"},
        "diagnosis": payload["diagnosis"],
        "urgency": payload["urgency"],
    }
    schema = load_catalog(gateway.fed.root / "contracts").resolve(f"{REFERRAL}@1.2.0").schema
    assert PayloadValidator(consumer_view(schema, FIELDS)).violations(limited["payload"]) == []


async def test_the_other_fields_are_not_even_in_the_ciphertext(gateway: Gateway) -> None:
    async with gateway.http.post(
        f"/v1/contracts/{REFERRAL}/messages", json=referral(), headers=gateway.fed.auth("minhealth")
    ) as response:
        assert response.status == 202
    topic = f"{gateway.fed.prefix}inbox.acme-analytics"
    [record] = gateway.transport.broker.records(topic)
    opened = open_envelope(
        record.value,
        recipient="acme-analytics",
        keys=gateway.fed.keys["acme-analytics"],
        verify_key=lambda _, kid: gateway.fed.keys["minhealth"].public().verify_key(kid),
    )
    signed = json.loads(opened.payload)
    assert "patientId" not in opened.payload.decode()
    assert "referralId" not in signed
    assert "referredTo" not in signed


def test_a_field_list_the_schema_cannot_cut_to_is_refused(tmp_path: Path) -> None:
    fed = Federation.create(tmp_path)
    folder = fed.root / "contracts" / REFERRAL
    document: dict[str, Any] = yaml.safe_load((folder / "1.1.0.yaml").read_text())
    document.update(
        version="1.2.0",
        consumers=["socialtreasury", {"id": "acme-analytics", "fields": ["/patient/nickname"]}],
    )
    document.pop("migration")
    (folder / "1.2.0.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(InvalidContract) as info:
        load_catalog(fed.root / "contracts")
    assert info.value.problems[0].pointer == "/consumers/1/fields"
