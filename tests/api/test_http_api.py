"""The HTTP API over loopback, with the in-memory transport standing in for Kafka."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import pytest

from gateway.api.keys import CONFIG
from gateway.api.openapi import openapi_document
from tests.api.conftest import Gateway
from tests.support import REFERRAL, referral

PUBLISH = f"/v1/contracts/{REFERRAL}/messages"


def inbox_records(gw: Gateway, participant: str) -> int:
    return len(gw.transport.broker.records(gw.fed.config(()).inbox_topic(participant)))


def audit_events(gw: Gateway) -> list[dict[str, Any]]:
    return gw.fed.audit("node-1")


async def test_publish_answers_202_and_writes_one_record_per_consumer(gateway: Gateway) -> None:
    async with gateway.http.post(
        PUBLISH,
        json=referral(),
        headers=gateway.fed.auth("minhealth"),
    ) as response:
        body = await response.json()
    assert response.status == 202
    assert body["contract"] == f"{REFERRAL}@1.1.0"  # the latest version
    assert body["recipients"] == ["acme-analytics", "socialtreasury"]
    assert inbox_records(gateway, "socialtreasury") == 1
    assert inbox_records(gateway, "acme-analytics") == 1
    accepted = [e for e in audit_events(gateway) if e["event"] == "message.accepted"]
    assert accepted[0]["message_id"] == body["message_id"]
    assert "payload" not in accepted[0]
    assert len(accepted[0]["payload_sha256"]) == 64


async def test_explicit_recipient_limits_the_fan_out(gateway: Gateway) -> None:
    async with gateway.http.post(
        PUBLISH,
        params={"to": "socialtreasury"},
        json=referral(),
        headers=gateway.fed.auth("minhealth"),
    ) as response:
        assert response.status == 202
        assert (await response.json())["recipients"] == ["socialtreasury"]
    assert inbox_records(gateway, "acme-analytics") == 0


async def test_pull_returns_exact_payload_and_ack_settles_it(gateway: Gateway) -> None:
    raw = (
        b'{"referralId":"REF-2026-000001", "issuedOn":"2026-11-02",\n"patient":{"patientId":'
        b'"P0000012345","birthDate":"1961-03-14","sex":"female"},"diagnosis":{"icd10":"I25"},'
        b'"urgency":"routine","referredTo":{"organisationId":"abc","specialty":"xy"}}'
    )
    headers = {
        **gateway.fed.auth("minhealth"),
        "Content-Type": "application/json",
        "X-Correlation-Id": "case-42",
    }
    async with gateway.http.post(PUBLISH, data=raw, headers=headers) as response:
        message_id = (await response.json())["message_id"]
    auth = gateway.fed.auth("socialtreasury")
    async with gateway.http.get("/v1/inbox", params={"wait": "5"}, headers=auth) as response:
        text = await response.text()
    [message] = json.loads(text)["messages"]
    assert message["message_id"] == message_id
    assert message["sender"] == "minhealth"
    assert message["correlation_id"] == "case-42"
    assert message["payload"] == json.loads(raw)
    assert raw.decode() in text  # the signed bytes, not a re-encoding
    async with gateway.http.post(
        "/v1/inbox/ack", json={"tags": [message["tag"], "nope"]}, headers=auth
    ) as response:
        assert await response.json() == {"acknowledged": [message["tag"]], "unknown": ["nope"]}
    async with gateway.http.get("/v1/inbox", headers=auth) as response:
        assert (await response.json())["messages"] == []


BIG = b'"' + b"x" * 1_100_000 + b'"'


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({"Authorization": ""}, b"{}", 401, "unauthenticated"),
        ({"Authorization": "Bearer wrong"}, b"{}", 401, "unauthenticated"),
        ({"Authorization": "Basic abc"}, b"{}", 401, "unauthenticated"),
        ({"Content-Type": "text/plain"}, b"{}", 415, "unsupported-media-type"),
        ({}, b'{"a": 1,', 400, "malformed-json"),
        ({}, b'{"a": 1, "a": 2}', 400, "malformed-json"),
        ({}, b"\xff\xfe", 400, "malformed-json"),
        ({}, b"[" * 5000, 400, "malformed-json"),
        ({}, BIG, 413, "payload-too-large"),
        ({"X-Correlation-Id": "bad value"}, b"{}", 400, "invalid-parameter"),
        ({"traceparent": "nope"}, b"{}", 400, "invalid-parameter"),
    ],
)
async def test_bad_requests_get_problem_details_and_write_nothing(
    gateway: Gateway, headers: dict[str, str], body: bytes, status: int, code: str
) -> None:
    sent = {"Content-Type": "application/json", **gateway.fed.auth("minhealth"), **headers}
    sent = {name: value for name, value in sent.items() if value}
    async with gateway.http.post(PUBLISH, data=io.BytesIO(body), headers=sent) as response:
        problem = await response.json(content_type="application/problem+json")
    assert response.status == status
    assert problem["type"] == f"urn:gateway:problem:{code}"
    assert problem["status"] == status
    assert inbox_records(gateway, "socialtreasury") == 0


async def test_contract_violation_lists_every_pointer(gateway: Gateway) -> None:
    payload = referral()
    del payload["diagnosis"]
    payload["patient"]["birthDate"] = "14/03/1961"
    payload["urgency"] = "tomorrow"
    async with gateway.http.post(
        PUBLISH, json=payload, headers=gateway.fed.auth("minhealth")
    ) as response:
        problem = await response.json(content_type="application/problem+json")
    assert response.status == 422
    assert [(e["pointer"], e["keyword"]) for e in problem["errors"]] == [
        ("/diagnosis", "required"),
        ("/patient/birthDate", "format"),
        ("/urgency", "enum"),
    ]
    assert "14/03/1961" not in json.dumps(problem)
    assert inbox_records(gateway, "socialtreasury") == 0
    rejected = [e for e in audit_events(gateway) if e["event"] == "message.rejected"]
    assert rejected[-1]["reason"] == "contract-violation"
    assert rejected[-1]["pointers"] == ["/diagnosis", "/patient/birthDate", "/urgency"]


@pytest.mark.parametrize(
    ("path", "sender", "params", "status", "code"),
    [
        (f"/v1/contracts/{REFERRAL}/messages", "acme-analytics", {}, 403, "forbidden"),
        ("/v1/contracts/no.such-contract/messages", "minhealth", {}, 404, "unknown-contract"),
        (f"/v1/contracts/{REFERRAL}@9.0.0/messages", "minhealth", {}, 404, "unknown-contract"),
        (f"/v1/contracts/{REFERRAL}@x/messages", "minhealth", {}, 404, "unknown-contract"),
        (PUBLISH, "minhealth", {"to": "minhealth"}, 422, "recipient-not-allowed"),
        (PUBLISH, "minhealth", {"to": "../../etc"}, 422, "recipient-not-allowed"),
    ],
)
async def test_refusals(
    gateway: Gateway, path: str, sender: str, params: dict[str, str], status: int, code: str
) -> None:
    async with gateway.http.post(
        path, json=referral(), params=params, headers=gateway.fed.auth(sender)
    ) as response:
        problem = await response.json(content_type="application/problem+json")
    assert (response.status, problem["type"]) == (status, f"urn:gateway:problem:{code}")
    assert inbox_records(gateway, "socialtreasury") == 0
    assert audit_events(gateway)[-1]["reason"] == code


async def test_broker_down_answers_503_with_retry_after(gateway: Gateway) -> None:
    gateway.transport.broker.down = True
    async with gateway.http.post(
        PUBLISH, json=referral(), headers=gateway.fed.auth("minhealth")
    ) as response:
        problem = await response.json(content_type="application/problem+json")
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert problem["type"] == "urn:gateway:problem:broker-unavailable"


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"max": "0"}, "max"),
        ({"max": "abc"}, "max"),
        ({"wait": "-1"}, "wait"),
        ({"wait": "999"}, "wait"),
    ],
)
async def test_inbox_parameters_are_bounded(
    gateway: Gateway, query: dict[str, str], parameter: str
) -> None:
    async with gateway.http.get(
        "/v1/inbox", params=query, headers=gateway.fed.auth("socialtreasury")
    ) as response:
        problem = await response.json(content_type="application/problem+json")
    assert response.status == 400
    assert problem["parameter"] == parameter


async def test_inbox_of_a_participant_hosted_elsewhere_is_forbidden(gateway: Gateway) -> None:
    gateway.fed.tokens["metro-medical"] = "gw_unknown"
    async with gateway.http.get("/v1/inbox", headers=gateway.fed.auth("metro-medical")) as response:
        assert response.status == 401


@pytest.mark.parametrize("body", [b"{}", b'{"tags": "x"}', b'{"tags": [1]}', b"[]"])
async def test_ack_needs_a_list_of_tags(gateway: Gateway, body: bytes) -> None:
    headers = {**gateway.fed.auth("socialtreasury"), "Content-Type": "application/json"}
    async with gateway.http.post("/v1/inbox/ack", data=body, headers=headers) as response:
        assert response.status == 400


async def test_unknown_route_and_method_are_problems(gateway: Gateway) -> None:
    async with gateway.http.get("/v2/nothing") as response:
        assert response.status == 404
        assert response.content_type == "application/problem+json"
    async with gateway.http.delete(PUBLISH) as response:
        assert response.status == 405
        assert response.content_type == "application/problem+json"


async def test_health_and_readiness(gateway: Gateway) -> None:
    async with gateway.http.get("/healthz") as response:
        assert response.status == 200
    async with gateway.http.get("/readyz") as response:
        body = await response.json()
    assert response.status == 200
    assert body["checks"]["inbox:socialtreasury"] is True


async def test_openapi_describes_exactly_the_served_routes(gateway: Gateway) -> None:
    async with gateway.http.get("/openapi.json") as response:
        document = await response.json()
    assert document == json.loads(json.dumps(openapi_document(gateway.node.app[CONFIG])))
    described = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    served = {
        (route.method, route.resource.canonical)
        for route in gateway.node.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    # The web console (HTML pages for people, README "Web console") is no part of the API.
    assert {(m, p) for m, p in served if p.startswith("/console")} != set()
    assert described == {(m, p) for m, p in served if not p.startswith("/console")}


async def test_the_document_states_the_limits_of_the_node_it_describes(gateway: Gateway) -> None:
    config = gateway.node.app[CONFIG]
    config = dataclasses.replace(
        config,
        http=dataclasses.replace(config.http, max_inbox_batch=7, max_inbox_wait_s=1.5),
        delivery=dataclasses.replace(config.delivery, max_nack_delay_s=60.0),
    )
    paths = openapi_document(config)["paths"]
    pull = {p["name"]: p["schema"] for p in paths["/v1/inbox"]["get"]["parameters"]}
    nack = paths["/v1/inbox/nack"]["post"]["requestBody"]["content"]["application/json"]
    assert (pull["max"]["maximum"], pull["wait"]["maximum"]) == (7, 1.5)
    assert nack["schema"]["properties"]["delay_s"]["maximum"] == 60.0
    assert nack["schema"]["properties"]["tags"]["maxItems"] == 70
    default = openapi_document()["paths"]["/v1/inbox"]["get"]["parameters"]
    assert [p["schema"].get("maximum") for p in default] == [100, 30.0]


async def test_a_rejection_names_at_most_fifty_pointers_in_its_audit_record(
    gateway: Gateway,
) -> None:
    body = referral()
    body |= {f"extra-{n:03d}": 1 for n in range(70)}
    async with gateway.http.post(
        PUBLISH, json=body, headers=gateway.fed.auth("minhealth")
    ) as response:
        assert response.status == 422
        assert len((await response.json())["errors"]) == 70  # the caller hears of every one

    [rejected] = [e for e in audit_events(gateway) if e["event"] == "message.rejected"]
    assert len(rejected["pointers"]) == 50
    assert rejected["pointers_total"] == 70
    # Names the contract does not declare are the sender's payload: never in the audit log.
    assert rejected["pointers"] == ["/*"] * 50
