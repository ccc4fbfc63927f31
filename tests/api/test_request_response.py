"""Request/response: a request waits for its correlated reply, or answers 202 and the reply
arrives in the requester's inbox."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from gateway.config import Limits
from gateway.node import running_node
from tests.api.conftest import Gateway
from tests.fakes import MemoryTransport
from tests.support import REFERRAL, Federation, referral

LOOKUP = "demo.eligibility-lookup"
RESULT = "demo.eligibility-result"


def contract(contract_id: str, producer: str, consumer: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": contract_id,
        "version": "1.0.0",
        "title": contract_id,
        "owner": producer,
        "classification": "internal",
        "producers": [producer],
        "consumers": [consumer],
        "schema": {
            "type": "object",
            "required": ["citizen"],
            "properties": {"citizen": {"type": "string"}, "eligible": {"type": "boolean"}},
            "additionalProperties": False,
        },
        **extra,
    }


@contextlib.asynccontextmanager
async def exchanging(
    tmp_path: Path, limits: dict[str, Limits] | None = None
) -> AsyncIterator[Gateway]:
    """A node hosting minhealth (asks) and socialtreasury (answers), with ``limits``."""
    fed = Federation.create(tmp_path)
    for document in (
        contract(LOOKUP, "minhealth", "socialtreasury", response=RESULT),
        contract(RESULT, "socialtreasury", "minhealth"),
    ):
        folder = tmp_path / "contracts" / document["id"]
        folder.mkdir()
        (folder / "1.0.0.yaml").write_text(yaml.safe_dump(document))
    transport = MemoryTransport()
    config = fed.config(("minhealth", "socialtreasury"), bootstrap="memory")
    config = dataclasses.replace(
        config,
        participants=tuple(
            dataclasses.replace(p, limits=(limits or {}).get(p.id)) for p in config.participants
        ),
    )
    async with running_node(config, transport=transport) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            yield Gateway(node, http, fed, transport)


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with exchanging(tmp_path) as made:
        yield made


async def ask(gw: Gateway, wait: float, to: str = "socialtreasury") -> tuple[int, Any]:
    async with gw.http.post(
        f"/v1/contracts/{LOOKUP}/requests?to={to}&wait={wait}",
        json={"citizen": "P0000012345"},
        headers=gw.fed.auth("minhealth"),
    ) as response:
        return response.status, await response.json()


async def pull(gw: Gateway, who: str, wait: float = 5) -> list[dict[str, Any]]:
    async with gw.http.get(f"/v1/inbox?wait={wait}", headers=gw.fed.auth(who)) as response:
        assert response.status == 200
        messages: list[dict[str, Any]] = (await response.json())["messages"]
        return messages


async def reply(
    gw: Gateway, message_id: str, body: Any, who: str = "socialtreasury"
) -> tuple[int, Any]:
    async with gw.http.post(
        f"/v1/messages/{message_id}/reply", json=body, headers=gw.fed.auth(who)
    ) as response:
        return response.status, await response.json()


async def test_a_request_gets_its_reply_within_the_wait(gw: Gateway) -> None:
    asking = asyncio.create_task(ask(gw, wait=5))
    [request] = await pull(gw, "socialtreasury")
    assert request["contract"] == LOOKUP

    status, sent = await reply(gw, request["message_id"], {"citizen": "P1", "eligible": True})

    assert status == 202
    assert sent["correlation_id"] == request["message_id"]
    status, answer = await asking
    assert status == 200
    assert answer["message_id"] == answer["correlation_id"] == request["message_id"]
    assert answer["reply"]["payload"] == {"citizen": "P1", "eligible": True}
    assert answer["reply"]["sender"] == "socialtreasury"
    assert answer["reply"]["correlation_id"] == request["message_id"]
    assert await pull(gw, "minhealth", wait=0.5) == []  # handed to the call, acknowledged
    modes = [r["mode"] for r in gw.fed.audit("node-1") if r["event"] == "message.delivered"]
    assert "reply" in modes


async def test_a_request_not_answered_in_time_is_202_and_the_reply_comes_to_the_inbox(
    gw: Gateway,
) -> None:
    status, answer = await ask(gw, wait=0.2)

    assert status == 202
    assert answer["reply"] is None
    [request] = await pull(gw, "socialtreasury")
    assert request["message_id"] == answer["correlation_id"]
    await reply(gw, request["message_id"], {"citizen": "P1", "eligible": False})
    [late] = await pull(gw, "minhealth")
    assert (late["contract"], late["correlation_id"]) == (RESULT, answer["correlation_id"])


async def test_a_contract_without_a_response_takes_no_requests(gw: Gateway) -> None:
    async with gw.http.post(
        f"/v1/contracts/{REFERRAL}/requests?to=socialtreasury",
        json=referral(),
        headers=gw.fed.auth("minhealth"),
    ) as response:
        problem = await response.json()
    assert response.status == 422
    assert problem["type"] == "urn:gateway:problem:no-response-contract"


@pytest.mark.parametrize("to", ["", "socialtreasury,acme-analytics"])
async def test_a_request_goes_to_exactly_one_recipient(gw: Gateway, to: str) -> None:
    status, problem = await ask(gw, wait=0, to=to)
    assert status == 400
    assert "exactly one recipient" in problem["detail"]


async def test_a_wait_out_of_bounds_is_a_400(gw: Gateway) -> None:
    status, problem = await ask(gw, wait=31)
    assert status == 400
    assert problem["type"] == "urn:gateway:problem:invalid-parameter"


async def test_only_the_recipient_of_a_request_replies_to_it(gw: Gateway) -> None:
    await ask(gw, wait=0)
    [request] = await pull(gw, "socialtreasury")

    status, problem = await reply(gw, request["message_id"], {"citizen": "x"}, who="minhealth")

    assert status == 404
    assert problem["type"] == "urn:gateway:problem:unknown-request"
    status, _ = await reply(gw, "01a2186b-0000-7000-8000-000000000000", {"citizen": "x"})
    assert status == 404


async def test_a_reply_must_satisfy_the_response_contract(gw: Gateway) -> None:
    await ask(gw, wait=0)
    [request] = await pull(gw, "socialtreasury")

    status, problem = await reply(gw, request["message_id"], {"eligible": "maybe"})

    assert status == 422
    assert problem["type"] == "urn:gateway:problem:contract-violation"


async def test_a_reply_to_a_message_whose_contract_has_no_response_is_refused(
    gw: Gateway,
) -> None:
    async with gw.http.post(
        f"/v1/contracts/{REFERRAL}/messages?to=socialtreasury",
        json=referral(),
        headers=gw.fed.auth("minhealth"),
    ) as response:
        assert response.status == 202
    [message] = await pull(gw, "socialtreasury")

    status, problem = await reply(gw, message["message_id"], {"citizen": "x"})

    assert status == 422
    assert problem["type"] == "urn:gateway:problem:no-response-contract"


def test_only_the_awaited_responder_under_the_response_contract_is_taken_as_the_reply() -> None:
    """Anyone may put a correlation id on a message; the waiting call takes only the
    request's recipient answering under the response contract."""
    from gateway.delivery import Delivery
    from gateway.receiving import ReceivedMessage
    from gateway.replies import Replies
    from gateway.tracing import IdSpan, start
    from gateway.transport import InboundRecord, Partition

    def delivery(sender: str, contract: str) -> Delivery:
        message = ReceivedMessage("m-2", sender, "minhealth", contract, "1.0.0", 0, b"{}", "m-1")
        record = InboundRecord("t", 0, 0, None, b"", ())
        return Delivery("tag", message, Partition("t", 0), 0, record, IdSpan(start()))

    async def check() -> None:
        replies = Replies()
        waiting = replies.expect("minhealth", "m-1", responder="socialtreasury", contract=RESULT)
        assert not replies.claim(delivery("acme-analytics", RESULT))  # another sender
        assert not replies.claim(delivery("socialtreasury", LOOKUP))  # another contract
        assert not waiting.done()
        assert replies.claim(delivery("socialtreasury", RESULT))
        assert waiting.result().message.sender == "socialtreasury"
        assert len(replies) == 0

    asyncio.run(check())


async def test_a_throttled_reply_is_429_and_audited_under_the_response_contract(
    tmp_path: Path,
) -> None:
    async with exchanging(
        tmp_path, {"socialtreasury": Limits(messages_per_s=0.001, burst=1)}
    ) as gw:
        for _ in range(2):
            status, _ = await ask(gw, wait=0)
            assert status == 202
        first, second = await pull(gw, "socialtreasury")
        status, _ = await reply(gw, first["message_id"], {"citizen": "P1", "eligible": True})
        assert status == 202
        status, problem = await reply(gw, second["message_id"], {"citizen": "P2"})
        assert status == 429
        assert problem["type"] == "urn:gateway:problem:rate-limited"
        [throttled] = [e for e in gw.fed.audit("node-1") if e["event"] == "message.throttled"]
        assert (throttled["sender"], throttled["contract"]) == ("socialtreasury", RESULT)
