"""Dead letters over HTTP: list, show and replay a participant's own, auditors read only."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jsonschema
import pytest
from structlog.testing import capture_logs

from gateway.api.openapi import openapi_document
from gateway.transport import OutboundRecord
from tests.api.conftest import AUDITOR, Gateway
from tests.api.dead_letters import (
    ME,
    UNREGISTERED,
    dlq_records,
    inbox_records,
    pull,
    reasons,
    refused,
    register,
    settle,
)
from tests.support import REFERRAL

PROBLEM = "application/problem+json"
OTHER = "acme-analytics"


async def get(gw: Gateway, url: str, who: str = ME, status: int = 200, **params: str) -> Any:
    async with gw.http.get(url, params=params, headers=gw.fed.auth(who)) as response:
        assert response.status == status, await response.text()
        ctype = "application/json" if status == 200 else PROBLEM
        body = await response.json(content_type=ctype)
    if status == 200:
        assert response.headers["Cache-Control"] == "no-store"
    return body


async def replay(gw: Gateway, body: Any, who: str = ME, status: int = 200) -> Any:
    async with gw.http.post("/v1/dlq/replay", json=body, headers=gw.fed.auth(who)) as response:
        assert response.status == status, await response.text()
        return await response.json(content_type=None)


def audit(gw: Gateway, event: str) -> list[dict[str, Any]]:
    return [r for r in gw.fed.audit("node-1") if r["event"] == event]


def operation(path: str, method: str) -> Any:
    return openapi_document()["paths"][path][method]


def response_schema(path: str, method: str) -> jsonschema.Draft202012Validator:
    schema = operation(path, method)["responses"]["200"]["content"]["application/json"]["schema"]
    return jsonschema.Draft202012Validator(schema)


# -- reading ---------------------------------------------------------------------------


async def test_a_refused_envelope_is_listed_with_its_reason_and_digest(audited: Gateway) -> None:
    message_id, envelope = refused(audited)
    await settle(audited, 1)

    page = await get(audited, "/v1/dlq")

    response_schema("/v1/dlq", "get").validate(page)
    assert (page["participant"], page["topic"]) == (ME, f"{audited.fed.prefix}dlq.{ME}")
    assert (page["count"], page["total"], page["next"]) == (1, 1, None)
    [entry] = page["entries"]
    assert entry == {
        **entry,
        "partition": 0,
        "offset": 0,
        "message_id": message_id,
        "sender": "minhealth",
        "contract": REFERRAL,
        "version": UNREGISTERED,
        "reason": "unknown-contract",
        "node": "node-1",
        "origin": f"{audited.fed.prefix}inbox.{ME}/0/0",
        "attempts": None,
        "replayed_from": None,
        "time": "2026-01-01T00:00:00Z",
        "envelope_size": len(envelope),
        "replays": 0,
        "last_replayed": None,
    }
    assert UNREGISTERED in entry["detail"]
    assert len(entry["envelope_sha256"]) == 64
    shown = await get(audited, "/v1/dlq/0/0")
    response_schema("/v1/dlq/{partition}/{offset}", "get").validate(shown)
    assert shown == entry


async def test_the_envelope_itself_is_never_shown_or_logged(audited: Gateway) -> None:
    _, envelope = refused(audited)
    await settle(audited, 1)
    with capture_logs() as logs:
        async with audited.http.get("/v1/dlq", headers=audited.fed.auth(ME)) as response:
            text = await response.text()
        await replay(audited, {"all": True})
    pieces = [envelope[i : i + 24].decode() for i in range(0, len(envelope) - 24, 24)]
    assert not [p for p in pieces if p in text]
    logged = json.dumps(logs, default=str)
    assert not [p for p in pieces if p in logged]
    assert not [p for p in pieces if p in json.dumps(audit(audited, "message.replayed"))]


async def test_pages_follow_next_through_every_entry(audited: Gateway) -> None:
    ids = [refused(audited, number=n)[0] for n in range(1, 6)]
    await settle(audited, 5)

    seen: list[str] = []
    url: str | None = "/v1/dlq?limit=2"
    counts = []
    while url is not None:
        page = await get(audited, url)
        response_schema("/v1/dlq", "get").validate(page)
        assert page["total"] == 5
        counts.append(page["count"])
        seen += [e["message_id"] for e in page["entries"]]
        url = page["next"]
    assert counts == [2, 2, 1]
    assert seen == ids
    assert [e["message_id"] for e in (await get(audited, "/v1/dlq", after="0:3"))["entries"]] == [
        ids[4]
    ]


async def test_delivery_attempts_are_shown_when_the_record_counts_them(audited: Gateway) -> None:
    topic = audited.fed.config(()).dlq_topic(ME)
    for attempts in (b"5", b"many"):
        audited.transport.broker.topics.setdefault(topic, []).append(
            OutboundRecord(
                topic,
                b"k",
                b"x",
                (("ce_id", b"m-1"), ("gw_reason", b"webhook-failed"), ("gw_attempts", attempts)),
            )
        )
    page = await get(audited, "/v1/dlq")
    response_schema("/v1/dlq", "get").validate(page)
    assert [(e["reason"], e["attempts"]) for e in page["entries"]] == [
        ("webhook-failed", 5),
        ("webhook-failed", None),  # not a count: not shown as one
    ]


async def test_an_unknown_position_is_404(audited: Gateway) -> None:
    refused(audited)
    await settle(audited, 1)
    problem = await get(audited, "/v1/dlq/0/99", status=404)
    assert problem["type"] == "urn:gateway:problem:unknown-dead-letter"
    assert "0:99" in problem["detail"]
    problem = await get(audited, "/v1/dlq/7/0", status=404)
    assert problem["type"] == "urn:gateway:problem:unknown-dead-letter"


# -- replay ----------------------------------------------------------------------------


async def test_a_replay_after_the_cause_is_fixed_is_delivered(audited: Gateway) -> None:
    message_id, envelope = refused(audited)
    await settle(audited, 1)
    assert await pull(audited, wait=0.2) == []

    await register(audited)  # the owner registers the version the message was sent under
    result = await replay(audited, {"offsets": [{"partition": 0, "offset": 0}]})

    response_schema("/v1/dlq/replay", "post").validate(result)
    dlq = f"{audited.fed.prefix}dlq.{ME}"
    assert result == {
        "replayed": [
            {
                "partition": 0,
                "offset": 0,
                "message_id": message_id,
                "reason": "unknown-contract",
                "replayed_from": f"{dlq}/0/0",
            }
        ],
        "not_found": [],
        "remaining": 0,
    }
    [message] = await pull(audited)
    assert (message["message_id"], message["version"]) == (message_id, UNREGISTERED)
    # The copy is the original record, without the diagnostics, naming its source.
    copy = inbox_records(audited)[-1]
    headers = dict(copy.headers)
    assert copy.value == envelope
    assert headers["gw_replayed_from"] == f"{dlq}/0/0".encode()
    assert not {"gw_reason", "gw_detail", "gw_node", "gw_origin"} & set(headers)
    assert headers["ce_id"] == message_id.encode()
    [replayed] = audit(audited, "message.replayed")
    assert replayed == {
        **replayed,
        "message_id": message_id,
        "recipient": ME,
        "replayed_from": f"{dlq}/0/0",
        "origin": f"{audited.fed.prefix}inbox.{ME}/0/0",
        "reason": "unknown-contract",
        "by": ME,
        "outcome": "replayed",
    }
    [entry] = (await get(audited, "/v1/dlq"))["entries"]
    assert entry["replays"] == 1
    assert entry["last_replayed"] is not None
    assert reasons(audited) == ["unknown-contract"]  # nothing refused again


async def test_a_replay_that_still_fails_comes_back_with_its_reason(audited: Gateway) -> None:
    message_id, _ = refused(audited, forged=True)
    await settle(audited, 1)

    await replay(audited, {"message_ids": [message_id]})
    await settle(audited, 2)

    assert await pull(audited, wait=0.2) == []
    entries = (await get(audited, "/v1/dlq"))["entries"]
    first, again = entries
    assert (first["replays"], first["reason"]) == (1, "signature-invalid")
    assert again["message_id"] == message_id
    assert again["reason"] == "signature-invalid"
    assert again["replayed_from"] == f"{audited.fed.prefix}dlq.{ME}/0/0"
    assert again["replays"] == 0
    # By message id, the newest entry is the one replayed.
    result = await replay(audited, {"message_ids": [message_id]})
    assert [r["offset"] for r in result["replayed"]] == [again["offset"]]


async def test_all_replays_only_what_was_not_replayed_yet(audited: Gateway) -> None:
    first, _ = refused(audited, number=1)
    second, _ = refused(audited, number=2, forged=True)
    await settle(audited, 2)

    result = await replay(audited, {"all": True})
    assert [r["message_id"] for r in result["replayed"]] == [first, second]
    await settle(audited, 4)  # both refused again: unknown-contract, signature-invalid

    result = await replay(audited, {"all": True})
    assert sorted(r["message_id"] for r in result["replayed"]) == sorted([first, second])
    assert all(r["offset"] > 1 for r in result["replayed"])  # the new entries, not the old


async def test_a_replay_cannot_make_an_old_message_fresh(audited: Gateway) -> None:
    max_age = audited.fed.config(()).delivery.max_age_s
    message_id, _ = refused(audited, issued_at=int(time.time() - max_age + 2.5))
    await settle(audited, 1)
    await register(audited)
    await asyncio.sleep(3)

    await replay(audited, {"message_ids": [message_id]})
    await settle(audited, 2)

    assert reasons(audited) == ["unknown-contract", "expired"]
    assert await pull(audited, wait=0.2) == []


async def test_unknown_offsets_and_ids_are_reported_not_found(audited: Gateway) -> None:
    message_id, _ = refused(audited)
    await settle(audited, 1)
    await register(audited)

    result = await replay(
        audited,
        # 42.0 is the number 42 in JSON (and to the OpenAPI schema's "integer").
        {"offsets": [{"partition": 0, "offset": 0}, {"partition": 0.0, "offset": 42.0}]},
    )
    assert [r["message_id"] for r in result["replayed"]] == [message_id]
    assert result["not_found"] == [{"partition": 0, "offset": 42}]
    result = await replay(audited, {"message_ids": ["no-such-message"]})
    response_schema("/v1/dlq/replay", "post").validate(result)
    assert result == {"replayed": [], "not_found": ["no-such-message"], "remaining": 0}
    assert len(audit(audited, "message.replayed")) == 1


async def test_a_broker_that_cannot_be_read_is_503(audited: Gateway) -> None:
    audited.transport.broker.down = True
    problem = await get(audited, "/v1/dlq", status=503)
    assert problem["type"] == "urn:gateway:problem:broker-unavailable"
    problem = await replay(audited, {"all": True}, status=503)
    assert problem["type"] == "urn:gateway:problem:broker-unavailable"
    assert audit(audited, "message.replayed") == []


# -- who may do what -------------------------------------------------------------------


async def test_another_participant_neither_sees_nor_replays_it(audited: Gateway) -> None:
    refused(audited)
    await settle(audited, 1)
    await register(audited)

    assert (await get(audited, "/v1/dlq", who=OTHER))["entries"] == []
    problem = await get(audited, "/v1/dlq", who=OTHER, status=403, participant=ME)
    assert problem["type"] == "urn:gateway:problem:forbidden"
    await get(audited, "/v1/dlq/0/0", who=OTHER, status=404)
    await get(audited, "/v1/dlq/0/0", who=OTHER, status=403, participant=ME)
    result = await replay(audited, {"offsets": [{"partition": 0, "offset": 0}]}, who=OTHER)
    assert result["not_found"] == [{"partition": 0, "offset": 0}]
    assert await replay(audited, {"all": True}, who=OTHER) == {
        "replayed": [],
        "not_found": [],
        "remaining": 0,
    }

    assert len(inbox_records(audited)) == 1  # nothing went back to the owner's inbox
    assert len(dlq_records(audited)) == 1  # and no marker was written
    [denied, _] = audit(audited, "access.denied")
    assert (denied["principal"], denied["path"]) == (OTHER, "/v1/dlq")


async def test_an_auditor_reads_any_participants_dead_letters_but_replays_none(
    audited: Gateway,
) -> None:
    message_id, _ = refused(audited)
    await settle(audited, 1)

    page = await get(audited, "/v1/dlq", who=AUDITOR, participant=ME)
    assert [e["message_id"] for e in page["entries"]] == [message_id]
    entry = await get(audited, "/v1/dlq/0/0", who=AUDITOR, participant=ME)
    assert entry["message_id"] == message_id
    assert (await get(audited, "/v1/dlq", who=AUDITOR, participant=OTHER))["entries"] == []

    problem = await replay(audited, {"all": True}, who=AUDITOR, status=403)
    assert problem["type"] == "urn:gateway:problem:forbidden"
    [denied] = audit(audited, "access.denied")
    assert (denied["principal"], denied["reason"]) == (AUDITOR, "requires-participant")
    assert audit(audited, "message.replayed") == []
    assert len(dlq_records(audited)) == 1


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({}, "participant"), ({"participant": "metro-medical"}, "participant")],
    ids=["unnamed", "not-hosted"],
)
async def test_an_auditor_names_a_hosted_participant(
    audited: Gateway, params: dict[str, str], parameter: str
) -> None:
    problem = await get(audited, "/v1/dlq", who=AUDITOR, status=400, **params)
    assert (problem["type"], problem["parameter"]) == (
        "urn:gateway:problem:invalid-parameter",
        parameter,
    )


@pytest.mark.parametrize("url", ["/v1/dlq", "/v1/dlq/0/0"])
async def test_no_token_is_401(audited: Gateway, url: str) -> None:
    async with audited.http.get(url) as response:
        assert response.status == 401
    async with audited.http.post("/v1/dlq/replay", json={"all": True}) as response:
        assert response.status == 401
    assert len(audit(audited, "auth.failed")) == 2


# -- bad requests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("after=7", "after"),
        ("after=a:b", "after"),
        ("after=-1:0", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=1&limit=2", "limit"),
        ("offset=3", "offset"),
    ],
)
async def test_bad_parameters_are_400(audited: Gateway, query: str, parameter: str) -> None:
    problem = await get(audited, f"/v1/dlq?{query}", status=400)
    assert (problem["type"], problem["parameter"]) == (
        "urn:gateway:problem:invalid-parameter",
        parameter,
    )


@pytest.mark.parametrize(
    ("path", "parameter"),
    [("/v1/dlq/x/0", "partition"), ("/v1/dlq/0/-1", "offset"), ("/v1/dlq/0/0?all=1", "all")],
)
async def test_bad_positions_are_400(audited: Gateway, path: str, parameter: str) -> None:
    problem = await get(audited, path, status=400)
    assert problem["parameter"] == parameter


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({}, "body"),
        ([], "body"),
        ({"offsets": [], "all": True}, "body"),
        ({"all": True, "extra": 1}, "body"),
        ({"all": False}, "all"),
        ({"all": "yes"}, "all"),
        ({"offsets": []}, "offsets"),
        ({"offsets": {"partition": 0, "offset": 0}}, "offsets"),
        ({"offsets": [{"partition": 0}]}, "offsets"),
        ({"offsets": [{"partition": -1, "offset": 0}]}, "offsets"),
        ({"offsets": [{"partition": True, "offset": 0}]}, "offsets"),
        ({"offsets": [{"partition": 0, "offset": 1.5}]}, "offsets"),
        ({"offsets": [{"partition": 0, "offset": 2**63}]}, "offsets"),
        ({"offsets": [{"partition": 0, "offset": 1e19}]}, "offsets"),
        ({"offsets": [{"partition": -0.0 - 1, "offset": 0}]}, "offsets"),
        ({"offsets": [{"partition": 0, "offset": 0, "x": 1}]}, "offsets"),
        ({"offsets": [{"partition": 0, "offset": n} for n in range(101)]}, "offsets"),
        ({"message_ids": ["has spaces"]}, "message_ids"),
        ({"message_ids": [7]}, "message_ids"),
        ({"message_ids": ["x" * 129]}, "message_ids"),
    ],
)
async def test_bad_replay_bodies_are_400(audited: Gateway, body: Any, parameter: str) -> None:
    problem = await replay(audited, body, status=400)
    assert (problem["type"], problem["parameter"]) == (
        "urn:gateway:problem:invalid-parameter",
        parameter,
    )
    assert audit(audited, "message.replayed") == []


@pytest.mark.parametrize(
    ("data", "ctype", "status", "code"),
    [
        (b'{"all": true, "all": true}', "application/json", 400, "malformed-json"),
        (b"all", "application/json", 400, "malformed-json"),
        (b'{"all": true}', "text/plain", 415, "unsupported-media-type"),
        (
            b'{"message_ids": ["' + b"x" * 70000 + b'"]}',
            "application/json",
            413,
            "payload-too-large",
        ),
    ],
)
async def test_unusable_bodies_are_problems(
    audited: Gateway, data: bytes, ctype: str, status: int, code: str
) -> None:
    headers = {**audited.fed.auth(ME), "Content-Type": ctype}
    async with audited.http.post("/v1/dlq/replay", data=data, headers=headers) as response:
        assert response.status == status
        problem = await response.json(content_type=PROBLEM)
    assert problem["type"] == f"urn:gateway:problem:{code}"


async def test_openapi_describes_the_dead_letter_endpoints(audited: Gateway) -> None:
    listing = operation("/v1/dlq", "get")
    assert [p["name"] for p in listing["parameters"]] == ["participant", "after", "limit"]
    assert set(listing["responses"]) == {"200", "400", "401", "403", "503"}
    assert set(operation("/v1/dlq/{partition}/{offset}", "get")["responses"]) == {
        "200",
        "400",
        "401",
        "403",
        "404",
        "503",
    }
    request = operation("/v1/dlq/replay", "post")["requestBody"]["content"]["application/json"]
    validator = jsonschema.Draft202012Validator(request["schema"])
    assert validator.is_valid({"offsets": [{"partition": 0, "offset": 3}]})
    assert validator.is_valid({"message_ids": ["m-1"]})
    assert validator.is_valid({"all": True})
    assert not validator.is_valid({"all": False})
    assert not validator.is_valid({"all": True, "message_ids": ["m-1"]})
