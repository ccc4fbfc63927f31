"""Batch publish: per-item results, one wait for the broker, the same checks as one by one."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import Limits
from gateway.node import running_node
from tests.api.conftest import Gateway
from tests.fakes import MemoryTransport
from tests.support import REFERRAL, Federation, referral

BATCH = f"/v1/contracts/{REFERRAL}/messages:batch"
ME = "socialtreasury"


async def send(gw: Gateway, body: Any, sender: str = "minhealth") -> tuple[int, Any]:
    async with gw.http.post(BATCH, json=body, headers=gw.fed.auth(sender)) as response:
        return response.status, await response.json()


def items(count: int, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"payload": referral(n), "to": [ME], **extra} for n in range(count)]}


def inbox_records(gw: Gateway) -> int:
    return len(gw.transport.broker.records(f"{gw.fed.prefix}inbox.{ME}"))


async def test_each_item_is_published_and_reported_in_order(gateway: Gateway) -> None:
    status, body = await send(gateway, items(3))

    assert status == 200
    results = body["results"]
    assert [r["status"] for r in results] == [202, 202, 202]
    assert len({r["message_id"] for r in results}) == 3
    assert all(r["recipients"] == [ME] for r in results)
    assert inbox_records(gateway) == 3
    accepted = [e for e in gateway.fed.audit("node-1") if e["event"] == "message.accepted"]
    assert [e["message_id"] for e in accepted] == [r["message_id"] for r in results]


async def test_a_refused_item_is_its_own_result_and_the_others_go(gateway: Gateway) -> None:
    body = items(3)
    body["messages"][1]["payload"] = {"referralId": "broken"}

    status, answer = await send(gateway, body)

    assert status == 200
    results = answer["results"]
    assert [r["status"] for r in results] == [202, 422, 202]
    assert results[1]["problem"]["type"] == "urn:gateway:problem:contract-violation"
    assert inbox_records(gateway) == 2
    rejected = [e for e in gateway.fed.audit("node-1") if e["event"] == "message.rejected"]
    assert len(rejected) == 1


async def test_when_the_broker_does_not_acknowledge_every_item_fails(gateway: Gateway) -> None:
    gateway.transport.broker.down = True
    status, answer = await send(gateway, items(2))
    gateway.transport.broker.down = False

    assert status == 200
    assert [r["status"] for r in answer["results"]] == [503, 503]
    assert inbox_records(gateway) == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"messages": []},
        {"messages": "x"},
        {"messages": [{"to": [ME]}]},
        {"messages": [{"payload": {}, "extra": 1}]},
        {"messages": [{"payload": {}, "to": "socialtreasury"}]},
        {"messages": [{"payload": {}}], "more": 1},
        {"messages": [{"payload": {}, "correlation_id": "a\r\nb"}]},
        {"messages": [{"payload": {}, "ordering_key": ""}]},
        {"messages": [{"payload": {}, "idempotency_key": 7}]},
    ],
)
async def test_a_malformed_batch_is_a_400_and_sends_nothing(gateway: Gateway, body: Any) -> None:
    status, problem = await send(gateway, body)

    assert status == 400
    assert problem["type"] == "urn:gateway:problem:invalid-parameter"
    assert inbox_records(gateway) == 0


async def test_a_batch_over_the_item_bound_is_refused(gateway: Gateway) -> None:
    status, problem = await send(gateway, items(501))
    assert status == 400
    assert "at most 500 messages" in problem["detail"]


async def test_a_retried_item_with_its_key_keeps_its_message_id(gateway: Gateway) -> None:
    body = items(1, idempotency_key="item-1")
    _, first = await send(gateway, body)
    _, again = await send(gateway, body)
    assert first["results"][0]["message_id"] == again["results"][0]["message_id"]


async def test_a_payload_nested_past_the_limit_refuses_the_batch(gateway: Gateway) -> None:
    # The batch is parsed once, three levels deeper than a payload may go: a payload
    # at the node's max_json_depth (32) passes that parse and is then the contract's
    # to judge; one level more and the whole batch is malformed.
    def nested(depth: int) -> Any:
        value: Any = 1
        for _ in range(depth - 1):
            value = [value]
        return {"referralId": value}

    status, answer = await send(gateway, {"messages": [{"payload": nested(32), "to": [ME]}]})
    assert status == 200
    assert answer["results"][0]["status"] == 422  # at the limit: parsed, fails the contract

    status, problem = await send(gateway, {"messages": [{"payload": nested(33), "to": [ME]}]})
    assert status == 400
    assert problem["type"] == "urn:gateway:problem:malformed-json"
    assert inbox_records(gateway) == 0


@contextlib.asynccontextmanager
async def node_with(
    tmp_path: Path, http: dict[str, Any] | None = None, **changes: Any
) -> AsyncIterator[Gateway]:
    fed = Federation.create(tmp_path)
    transport = MemoryTransport()
    config = fed.config(("minhealth", ME), bootstrap="memory")
    config = dataclasses.replace(
        config, http=dataclasses.replace(config.http, **(http or {})), **changes
    )
    async with running_node(config, transport=transport) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as session:
            yield Gateway(node, session, fed, transport)


async def test_an_item_over_the_body_limit_is_refused_alone(tmp_path: Path) -> None:
    body = items(2)
    body["messages"][1]["payload"]["referredTo"]["specialty"] = "c" * 100
    async with node_with(tmp_path, {"max_body_bytes": len(_compact(referral(0))) + 10}) as gw:
        status, answer = await send(gw, body)

        assert status == 200
        assert [r["status"] for r in answer["results"]] == [202, 413]
        assert answer["results"][1]["problem"]["type"] == "urn:gateway:problem:payload-too-large"
        assert inbox_records(gw) == 1


async def test_items_count_against_the_daily_quota(tmp_path: Path) -> None:
    size = len(_compact(referral(0)))
    limits = Limits(messages_per_s=100, burst=10, bytes_per_day=2 * size)
    async with node_with(tmp_path, default_limits=limits) as gw:
        status, answer = await send(gw, items(3))
        assert status == 200
        assert [r["status"] for r in answer["results"]] == [202, 202, 429]
        assert answer["results"][2]["problem"]["type"] == "urn:gateway:problem:quota-exceeded"

        # A refused item does not use the quota: nothing is left for another batch.
        _, again = await send(gw, items(1))
        assert [r["status"] for r in again["results"]] == [429]
        assert inbox_records(gw) == 2


def _compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Gateway]:
    limits = Limits(messages_per_s=0.001, burst=2)
    async with node_with(tmp_path, default_limits=limits) as gw:
        yield gw


async def test_each_item_counts_against_the_rate(limited: Gateway) -> None:
    status, answer = await send(limited, items(3))

    assert status == 200
    assert [r["status"] for r in answer["results"]] == [202, 202, 429]
    assert answer["results"][2]["problem"]["type"] == "urn:gateway:problem:rate-limited"
    assert inbox_records(limited) == 2
