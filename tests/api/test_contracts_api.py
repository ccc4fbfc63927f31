"""The contract catalog over HTTP: browsing, registration by owners, 409 on breaks."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
import yaml

from tests.api.conftest import Gateway
from tests.support import REFERRAL

VERSIONS = f"/v1/contracts/{REFERRAL}/versions"


def current_document(gw: Gateway) -> dict[str, Any]:
    path = gw.fed.root / "contracts" / REFERRAL / "1.1.0.yaml"
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def next_version(gw: Gateway, version: str = "1.2.0") -> dict[str, Any]:
    document = copy.deepcopy(current_document(gw))
    document["version"] = version
    document.pop("migration")
    return document


async def post(gw: Gateway, document: Any, who: str = "minhealth") -> tuple[int, Any]:
    async with gw.http.post(VERSIONS, json=document, headers=gw.fed.auth(who)) as response:
        return response.status, await response.json(content_type=None)


async def test_catalog_lists_contracts_with_their_versions(gateway: Gateway) -> None:
    auth = gateway.fed.auth("acme-analytics")
    async with gateway.http.get("/v1/contracts", headers=auth) as response:
        contracts = {c["id"]: c for c in (await response.json())["contracts"]}
    assert contracts[REFERRAL]["versions"] == ["1.0.0", "1.1.0"]
    assert contracts[REFERRAL]["version"] == "1.1.0"
    assert contracts[REFERRAL]["classification"] == "personal"
    async with gateway.http.get(f"/v1/contracts/{REFERRAL}", headers=auth) as response:
        contract = await response.json()
    assert [v["version"] for v in contract["versions"]] == ["1.0.0", "1.1.0"]


@pytest.mark.parametrize("version", ["1.0.0", "latest"])
async def test_one_version_carries_schema_examples_and_migration(
    gateway: Gateway, version: str
) -> None:
    async with gateway.http.get(
        f"{VERSIONS}/{version}", headers=gateway.fed.auth("minhealth")
    ) as response:
        contract = await response.json()
    assert contract["schema"]["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert contract["examples"]["valid"]
    expected = None if version == "1.0.0" else "1.0.0"
    assert (contract["migration"] or {}).get("from") == expected


@pytest.mark.parametrize(
    "path", [f"{VERSIONS}/9.9.9", "/v1/contracts/no.such/versions/latest", "/v1/contracts/no.such"]
)
async def test_unknown_contracts_and_versions_are_404(gateway: Gateway, path: str) -> None:
    async with gateway.http.get(path, headers=gateway.fed.auth("minhealth")) as response:
        problem = await response.json(content_type="application/problem+json")
    assert response.status == 404
    assert problem["type"] == "urn:gateway:problem:unknown-contract"


async def test_the_owner_registers_a_compatible_version(gateway: Gateway) -> None:
    document = next_version(gateway)
    document["schema"]["properties"]["urgency"]["enum"].append("planned")  # widens: backward ok
    status, body = await post(gateway, document)
    assert status == 201
    assert body["registered"] is True
    [against] = body["checked_against"]
    assert against["version"] == "1.1.0"
    assert (against["backward"], against["forward"]) == (True, False)
    assert [c["code"] for c in against["changes"]] == ["enum-extended"]
    stored = gateway.fed.root / "contracts" / REFERRAL / "1.2.0.yaml"
    assert yaml.safe_load(stored.read_text())["version"] == "1.2.0"
    # Publishing now resolves to the new latest version.
    async with gateway.http.post(
        f"/v1/contracts/{REFERRAL}/messages",
        json={**document["examples"]["valid"][0], "urgency": "planned"},
        headers=gateway.fed.auth("minhealth"),
    ) as response:
        assert (await response.json())["contract"] == f"{REFERRAL}@1.2.0"
    # Registering the identical document again is harmless.
    status, body = await post(gateway, document)
    assert (status, body["registered"]) == (200, False)
    events = [record["event"] for record in gateway.fed.audit("node-1")]
    assert events.count("contract.registered") == 1


async def test_a_breaking_version_gets_409_with_the_change_report(gateway: Gateway) -> None:
    document = next_version(gateway)
    # Old data may hold notes up to 500 characters: a tighter bound breaks backward.
    document["schema"]["properties"]["diagnosis"]["properties"]["note"]["maxLength"] = 400
    status, problem = await post(gateway, document)
    assert status == 409
    assert problem["type"] == "urn:gateway:problem:incompatible-contract"
    assert problem["mode"] == "backward"
    [against] = problem["against"]
    assert against["version"] == "1.1.0"
    assert [(c["code"], c["pointer"]) for c in against["changes"]] == [
        ("bound-tightened", "/properties/diagnosis/properties/note/maxLength")
    ]
    assert not (gateway.fed.root / "contracts" / REFERRAL / "1.2.0.yaml").exists()


async def test_versions_are_immutable(gateway: Gateway) -> None:
    document = current_document(gateway)
    document["title"] = "Patient referral, renamed"
    status, problem = await post(gateway, document)
    assert status == 409
    assert problem["type"] == "urn:gateway:problem:version-exists"


@pytest.mark.parametrize(
    ("who", "change", "status", "code"),
    [
        ("socialtreasury", {}, 403, "forbidden"),
        ("minhealth", {"owner": "socialtreasury"}, 422, "invalid-contract"),
        ("minhealth", {"id": "health.other"}, 422, "invalid-contract"),
        ("minhealth", {"classification": "secret"}, 422, "invalid-contract"),
        ("minhealth", {"version": "1.0.5"}, 422, "invalid-contract"),
        ("minhealth", {"schema": {"type": 7}}, 422, "invalid-contract"),
    ],
)
async def test_registration_refusals(
    gateway: Gateway, who: str, change: dict[str, Any], status: int, code: str
) -> None:
    document = {**next_version(gateway), **change}
    got, problem = await post(gateway, document, who)
    assert (got, problem["type"]) == (status, f"urn:gateway:problem:{code}")
    assert not (gateway.fed.root / "contracts" / REFERRAL / "1.2.0.yaml").exists()


async def test_invalid_documents_name_the_pointer(gateway: Gateway) -> None:
    document = next_version(gateway)
    del document["classification"]
    status, problem = await post(gateway, document)
    assert status == 422
    assert problem["problems"][0]["pointer"] == "/classification"
    assert "classification" in problem["problems"][0]["message"]


async def test_registration_needs_json(gateway: Gateway) -> None:
    headers = {**gateway.fed.auth("minhealth"), "Content-Type": "application/yaml"}
    async with gateway.http.post(VERSIONS, data=io.BytesIO(b"id: x"), headers=headers) as resp:
        assert resp.status == 415
