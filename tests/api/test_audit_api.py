"""The audit trail over HTTP: auditors only, filters, pages, and audited refusals."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import structlog
import yaml
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.api.auth import BadCredentials, new_token
from gateway.api.keys import AUDIT
from gateway.api.problems import problem_middleware
from gateway.audit import AuditLog
from gateway.audit.search import parse_time
from gateway.config import AuditConfig, Auditor
from gateway.node import running_node
from tests.api.conftest import AUDITOR, HOSTED, Gateway
from tests.fakes import MemoryTransport
from tests.support import CONTRACTS, REFERRAL, Federation, referral

MEASURE = "social.support-measure"
PROBLEM = "application/problem+json"


def stored(gw: Gateway) -> list[dict[str, Any]]:
    return gw.fed.audit("node-1")


async def search(
    gw: Gateway, params: dict[str, str] | None = None, who: str = AUDITOR
) -> dict[str, Any]:
    async with gw.http.get("/v1/audit", params=params, headers=gw.fed.auth(who)) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Cache-Control"] == "no-store"
        body: dict[str, Any] = await response.json()
    assert body["count"] == len(body["records"])
    return body


async def refused(
    gw: Gateway, url: str, headers: dict[str, str], status: int, method: str = "GET"
) -> dict[str, Any]:
    async with gw.http.request(method, url, headers=headers) as response:
        assert response.status == status
        problem: dict[str, Any] = await response.json(content_type=PROBLEM)
    return problem


async def publish(gw: Gateway, sender: str, contract: str, body: Any) -> str:
    async with gw.http.post(
        f"/v1/contracts/{contract}/messages", json=body, headers=gw.fed.auth(sender)
    ) as response:
        assert response.status == 202, await response.text()
        message_id: str = (await response.json())["message_id"]
    return message_id


def measure() -> dict[str, Any]:
    document = yaml.safe_load((CONTRACTS / MEASURE / "1.0.0.yaml").read_text())
    example: dict[str, Any] = document["examples"]["valid"][0]
    return example


# -- reading -------------------------------------------------------------------------


async def test_auditor_finds_the_accepted_record_of_a_published_message(
    audited: Gateway,
) -> None:
    message_id = await publish(audited, "minhealth", REFERRAL, referral())

    body = await search(audited, {"message_id": message_id})

    [accepted] = body["records"]
    assert accepted["event"] == "message.accepted"
    assert accepted["outcome"] == "accepted"
    assert accepted["message_id"] == message_id
    assert accepted["sender"] == "minhealth"
    assert accepted["contract"] == f"{REFERRAL}@1.1.0"
    assert accepted["recipients"] == ["acme-analytics", "socialtreasury"]
    assert accepted == next(r for r in stored(audited) if r.get("message_id") == message_id)
    assert body["next"] is None


async def test_filters_by_participant_contract_and_outcome(audited: Gateway) -> None:
    referral_id = await publish(audited, "minhealth", REFERRAL, referral())
    measure_id = await publish(audited, "socialtreasury", MEASURE, measure())
    async with audited.http.post(
        f"/v1/contracts/{REFERRAL}@1.0.0/messages",
        json={"not": "a referral"},
        headers=audited.fed.auth("minhealth"),
    ) as response:
        assert response.status == 422

    async def ids(params: dict[str, str]) -> list[str | None]:
        return [r.get("message_id") for r in (await search(audited, params))["records"]]

    assert await ids({"participant": "socialtreasury"}) == [referral_id, measure_id]
    assert await ids({"participant": "minhealth", "event": "message.accepted"}) == [
        referral_id,
        measure_id,  # minhealth consumes the measure
    ]
    assert await ids({"participant": "metro-medical"}) == []
    assert len(await ids({"contract": REFERRAL})) == 2  # 1.1.0 accepted, 1.0.0 rejected
    assert await ids({"contract": f"{REFERRAL}@1.1.0"}) == [referral_id]
    assert await ids({"contract": MEASURE}) == [measure_id]
    [rejected] = (await search(audited, {"outcome": "rejected"}))["records"]
    assert rejected["event"] == "message.rejected"
    assert rejected["contract"] == f"{REFERRAL}@1.0.0"
    assert rejected["reason"] == "contract-violation"


async def test_filters_by_time_range(audited: Gateway) -> None:
    first = await publish(audited, "minhealth", REFERRAL, referral(1))
    second = await publish(audited, "minhealth", REFERRAL, referral(2))
    times = {r.get("message_id"): r["time"] for r in stored(audited)}
    accepted = {"event": "message.accepted"}

    async def ids(params: dict[str, str]) -> list[str]:
        body = await search(audited, {**accepted, **params})
        return [r["message_id"] for r in body["records"]]

    assert await ids({"since": times[first]}) == [first, second]
    assert await ids({"since": times[second]}) == [second]
    assert await ids({"until": times[second]}) == [first]  # exclusive
    assert await ids({"since": times[first], "until": times[second]}) == [first]
    day = parse_time(times[first]).date().isoformat()
    assert await ids({"since": day}) == [first, second]  # a date: midnight UTC
    assert await ids({"until": day}) == []
    assert await ids({"since": "2000-01-01T01:00:00+01:00"}) == [first, second]


async def test_pages_return_every_record_exactly_once(audited: Gateway) -> None:
    for n in range(7):
        await publish(audited, "minhealth", REFERRAL, referral(n))
    seen: list[int] = []
    # Reading is audited too (audit.searched): page over the records that came before.
    url: str | None = "/v1/audit?limit=3&event=message.accepted"
    expected = [r["seq"] for r in stored(audited) if r["event"] == "message.accepted"]
    pages = 0
    while url is not None:
        async with audited.http.get(url, headers=audited.fed.auth(AUDITOR)) as response:
            assert response.status == 200
            body = await response.json()
            link = response.headers.get("Link")
        assert len(body["records"]) <= 3
        seen += [r["seq"] for r in body["records"]]
        url = body["next"]
        assert link == (None if url is None else f'<{url}>; rel="next"')
        pages += 1
    assert seen == expected
    assert pages == -(-len(expected) // 3)


async def test_next_keeps_the_filters(audited: Gateway) -> None:
    sent = [await publish(audited, "minhealth", REFERRAL, referral(n)) for n in range(3)]

    first = await search(audited, {"event": "message.accepted", "limit": "2"})

    assert [r["message_id"] for r in first["records"]] == sent[:2]
    async with audited.http.get(first["next"], headers=audited.fed.auth(AUDITOR)) as response:
        second = await response.json()
    assert [r["message_id"] for r in second["records"]] == sent[2:]
    assert second["next"] is None
    assert "event=message.accepted" in first["next"]


async def test_after_starts_past_a_seq(audited: Gateway) -> None:
    every = [r["seq"] for r in stored(audited)]

    body = await search(audited, {"after": str(every[0])})

    assert [r["seq"] for r in body["records"]] == every[1:]


# -- who may read -----------------------------------------------------------------------


async def test_a_participant_token_gets_403_and_is_audited(audited: Gateway) -> None:
    problem = await refused(audited, "/v1/audit", audited.fed.auth("minhealth"), 403)

    assert problem["type"] == "urn:gateway:problem:forbidden"
    [denied] = [r for r in stored(audited) if r["event"] == "access.denied"]
    assert denied == {
        **denied,
        "principal": "minhealth",
        "reason": "requires-auditor",
        "method": "GET",
        "path": "/v1/audit",
        "outcome": "denied",
    }


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/v1/inbox"),
        ("GET", "/v1/contracts"),
        ("POST", f"/v1/contracts/{REFERRAL}/messages"),
        ("POST", "/v1/inbox/ack"),
    ],
)
async def test_an_auditor_token_may_do_nothing_else(
    audited: Gateway, method: str, url: str
) -> None:
    await refused(audited, url, audited.fed.auth(AUDITOR), 403, method)

    [denied] = [r for r in stored(audited) if r["event"] == "access.denied"]
    assert (denied["principal"], denied["reason"]) == (AUDITOR, "requires-participant")
    assert (denied["method"], denied["path"]) == (method, url)
    assert not [r for r in stored(audited) if r["event"] == "message.accepted"]


async def test_a_403_from_the_domain_names_the_caller(audited: Gateway) -> None:
    url = f"/v1/contracts/{REFERRAL}/messages"
    async with audited.http.post(
        url, json=referral(), headers=audited.fed.auth("acme-analytics")
    ) as response:
        assert response.status == 403  # a consumer, not a producer

    [denied] = [r for r in stored(audited) if r["event"] == "access.denied"]
    assert (denied["principal"], denied["reason"]) == ("acme-analytics", "forbidden")
    assert (denied["method"], denied["path"]) == ("POST", url)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing-credentials"),
        ({"Authorization": "Basic c29jOnNlY3JldA=="}, "malformed-credentials"),
        ({"Authorization": "Bearer gw_not-a-real-token-but-long-enough-to-look-one"}, None),
    ],
    ids=["none", "basic", "unknown"],
)
async def test_no_or_bad_token_gets_401_and_auth_failed(
    audited: Gateway, headers: dict[str, str], reason: str | None
) -> None:
    problem = await refused(audited, "/v1/audit?participant=minhealth", headers, 401)

    assert problem["type"] == "urn:gateway:problem:unauthenticated"
    [failed] = [r for r in stored(audited) if r["event"] == "auth.failed"]
    assert failed["reason"] == (reason or "unknown-token")
    assert (failed["method"], failed["path"]) == ("GET", "/v1/audit")
    assert failed["remote"] == "127.0.0.1"
    assert failed["outcome"] == "denied"


async def test_no_token_ever_reaches_the_audit_log(audited: Gateway) -> None:
    fed = audited.fed
    wrong = "gw_" + "x" * 43
    near_miss = fed.tokens[AUDITOR][:-1] + ("A" if fed.tokens[AUDITOR][-1] != "A" else "B")
    for token in (wrong, near_miss):
        await refused(audited, "/v1/audit", {"Authorization": f"Bearer {token}"}, 401)
    await refused(audited, "/v1/audit", fed.auth("minhealth"), 403)
    await refused(audited, "/v1/inbox", fed.auth(AUDITOR), 403)
    await search(audited)

    written = b"".join(path.read_bytes() for path in (fed.root / "node-1.audit").iterdir())
    for secret in (wrong, near_miss, *fed.tokens.values()):
        assert secret.encode() not in written
    events = [r["event"] for r in stored(audited)]
    assert (events.count("auth.failed"), events.count("access.denied")) == (2, 2)


async def test_a_refusal_stands_when_the_audit_log_cannot_record_it() -> None:
    class Broken(AuditLog):
        def record(self, event: str, /, **fields: Any) -> None:
            raise OSError("disk full")

    async def handler(request: web.Request) -> web.StreamResponse:
        raise BadCredentials(BadCredentials.MISSING, "send a token")

    app = web.Application()
    app[AUDIT] = Broken(node_id="node-1")
    with structlog.testing.capture_logs() as logs:
        response = await problem_middleware(
            make_mocked_request("GET", "/v1/audit", app=app), handler
        )

    assert response.status == 401
    assert [e["event"] for e in logs] == ["refusal_not_audited"]


# -- bad requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"after": "-1"}, "after"),
        ({"after": "x"}, "after"),
        ({"after": "9" * 40}, "after"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-11-26T12:00:00"}, "since"),
        ({"until": "2026-02-30"}, "until"),
        ({"since": "2026-11-27", "until": "2026-11-26"}, "until"),
        ({"since": "2026-11-26", "until": "2026-11-26"}, "until"),
        ({"participant": ""}, "participant"),
        ({"contract": "x" * 257}, "contract"),
        ({"participants": "minhealth"}, "participants"),
    ],
)
async def test_bad_parameters_get_400_naming_the_parameter(
    audited: Gateway, params: dict[str, str], parameter: str
) -> None:
    async with audited.http.get(
        "/v1/audit", params=params, headers=audited.fed.auth(AUDITOR)
    ) as response:
        problem = await response.json(content_type=PROBLEM)
    assert response.status == 400
    assert problem["type"] == "urn:gateway:problem:invalid-parameter"
    assert problem["parameter"] == parameter
    assert parameter in problem["detail"]


async def test_a_repeated_parameter_is_refused(audited: Gateway) -> None:
    async with audited.http.get(
        "/v1/audit?participant=minhealth&participant=acme-analytics",
        headers=audited.fed.auth(AUDITOR),
    ) as response:
        problem = await response.json(content_type=PROBLEM)
    assert (response.status, problem["parameter"]) == (400, "participant")


async def test_a_naive_time_says_how_to_fix_it(audited: Gateway) -> None:
    async with audited.http.get(
        "/v1/audit", params={"since": "2026-11-26T12:00"}, headers=audited.fed.auth(AUDITOR)
    ) as response:
        problem = await response.json(content_type=PROBLEM)
    assert "add Z (UTC) or an offset" in problem["detail"]


async def test_a_node_without_an_audit_log_says_so(tmp_path: Path) -> None:
    fed = Federation.create(tmp_path)
    token, digest = new_token()
    config = dataclasses.replace(
        fed.config(HOSTED, bootstrap="memory"),
        audit=AuditConfig(dir=None, topic=False),
        auditors=(Auditor(id=AUDITOR, token_sha256=(digest,)),),
    )
    async with (
        running_node(config, transport=MemoryTransport()) as node,
        aiohttp.ClientSession(base_url=node.url) as http,
    ):
        async with http.get("/v1/audit", headers={"Authorization": f"Bearer {token}"}) as response:
            problem = await response.json(content_type=PROBLEM)
        assert response.status == 404
        assert problem["type"] == "urn:gateway:problem:no-audit-log"
        async with http.get("/v1/audit", headers=fed.auth("minhealth")) as response:
            assert response.status == 403  # who may ask comes before what there is


async def test_openapi_documents_the_audit_endpoint(audited: Gateway) -> None:
    async with audited.http.get("/openapi.json") as response:
        document = await response.json()
    operation = document["paths"]["/v1/audit"]["get"]
    names = [p["name"] for p in operation["parameters"]]
    assert names == [
        "message_id",
        "participant",
        "contract",
        "outcome",
        "event",
        "since",
        "until",
        "after",
        "limit",
    ]
    assert set(operation["responses"]) == {"200", "400", "401", "403", "404"}
    await publish(audited, "minhealth", REFERRAL, referral())
    page_schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    for params in ({"limit": "2"}, {"limit": "1000"}):
        jsonschema.Draft202012Validator(page_schema).validate(await search(audited, params))


async def test_reading_the_trail_is_itself_audited(audited: Gateway) -> None:
    async with audited.http.get(
        "/v1/audit?outcome=rejected&limit=5", headers=audited.fed.auth(AUDITOR)
    ) as response:
        assert response.status == 200
        count = (await response.json())["count"]

    [searched] = [r for r in stored(audited) if r["event"] == "audit.searched"]
    assert searched["principal"] == AUDITOR
    assert searched["filters"] == {"outcome": "rejected", "limit": "5"}
    assert searched["count"] == count
