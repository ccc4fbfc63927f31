"""Pull delivery beyond pull-and-ack: giving messages back (nack), the visibility timeout,
and the server-sent event stream."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import DeliveryConfig
from gateway.node import running_node
from gateway.transport import InboundRecord
from tests.api.conftest import Gateway
from tests.fakes import MemorySource, MemoryTransport
from tests.support import REFERRAL, Federation, referral

ME = "socialtreasury"
VISIBILITY_S = 0.4


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    fed = Federation.create(tmp_path)
    transport = MemoryTransport()
    config = fed.config(("minhealth", ME), bootstrap="memory")
    config = dataclasses.replace(
        config,
        delivery=DeliveryConfig(visibility_timeout_s=VISIBILITY_S, max_nack_delay_s=60),
    )
    async with running_node(config, transport=transport) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            yield Gateway(node, http, fed, transport)


async def publish(gw: Gateway, body: bytes | None = None) -> str:
    async with gw.http.post(
        f"/v1/contracts/{REFERRAL}/messages?to={ME}",
        data=body if body is not None else json.dumps(referral()).encode(),
        headers={**gw.fed.auth("minhealth"), "Content-Type": "application/json"},
    ) as response:
        assert response.status == 202
        message_id: str = (await response.json())["message_id"]
        return message_id


async def pull(gw: Gateway, wait: float = 2) -> list[dict[str, Any]]:
    async with gw.http.get(f"/v1/inbox?wait={wait}", headers=gw.fed.auth(ME)) as response:
        assert response.status == 200
        messages: list[dict[str, Any]] = (await response.json())["messages"]
        return messages


async def post(gw: Gateway, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with gw.http.post(path, json=body, headers=gw.fed.auth(ME)) as response:
        return response.status, await response.json()


def released(gw: Gateway) -> list[dict[str, Any]]:
    return [r for r in gw.fed.audit("node-1") if r["event"] == "message.released"]


async def test_a_message_given_back_is_handed_out_again(gw: Gateway) -> None:
    message_id = await publish(gw)
    [first] = await pull(gw)

    status, body = await post(gw, "/v1/inbox/nack", {"tags": [first["tag"], "nope"]})

    assert (status, body) == (200, {"released": [first["tag"]], "unknown": ["nope"]})
    [again] = await pull(gw)
    assert (again["message_id"], again["tag"]) == (message_id, first["tag"])
    [event] = released(gw)
    assert (event["reason"], event["handed"]) == ("nack", 1)


async def test_a_message_given_back_with_a_delay_waits_for_it(gw: Gateway) -> None:
    await publish(gw)
    [first] = await pull(gw)

    await post(gw, "/v1/inbox/nack", {"tags": [first["tag"]], "delay_s": 1.5})

    assert await pull(gw, wait=0.2) == []
    [again] = await pull(gw, wait=3)
    assert again["message_id"] == first["message_id"]


async def test_an_unacknowledged_message_comes_back_after_the_visibility_timeout(
    gw: Gateway,
) -> None:
    message_id = await publish(gw)
    [_first] = await pull(gw)  # ... and the consumer crashes

    [again] = await pull(gw, wait=5)

    assert again["message_id"] == message_id
    [event] = released(gw)
    assert event["reason"] == "visibility-timeout"
    _status, body = await post(gw, "/v1/inbox/ack", {"tags": [again["tag"]]})
    assert body["acknowledged"] == [again["tag"]]
    assert await pull(gw, wait=VISIBILITY_S * 3) == []  # acknowledged: gone for good


async def test_a_late_acknowledgement_still_settles_the_message(gw: Gateway) -> None:
    await publish(gw)
    [first] = await pull(gw)
    await asyncio.sleep(VISIBILITY_S * 3)  # released meanwhile, not yet pulled again

    status, body = await post(gw, "/v1/inbox/ack", {"tags": [first["tag"]]})

    assert (status, body["acknowledged"]) == (200, [first["tag"]])
    assert await pull(gw, wait=VISIBILITY_S * 2) == []


@pytest.mark.parametrize(
    "body",
    [
        {"tags": ["x"], "delay_s": -1},
        {"tags": ["x"], "delay_s": 61},
        {"tags": ["x"], "delay_s": "soon"},
        {"tags": ["x"], "delay_s": True},
        {"tags": "x"},
    ],
)
async def test_a_bad_nack_is_a_400_problem(gw: Gateway, body: Any) -> None:
    status, problem = await post(gw, "/v1/inbox/nack", body)
    assert status == 400
    assert problem["type"].startswith("urn:gateway:problem:")


async def read_events(response: aiohttp.ClientResponse, count: int) -> list[dict[str, Any]]:
    """The first ``count`` events of a server-sent event stream (comments skipped)."""
    events: list[dict[str, Any]] = []
    event: dict[str, Any] = {"data": []}
    async with asyncio.timeout(10):
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if not line:
                if event["data"]:
                    events.append(event)
                    if len(events) == count:
                        return events
                event = {"data": []}
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(": ")
                if name == "data":
                    event["data"].append(value)
                else:
                    event[name] = value
    return events


async def test_the_stream_sends_each_message_as_an_event_to_acknowledge(gw: Gateway) -> None:
    pretty = json.dumps(referral(), indent=2).encode()  # line breaks in the signed bytes
    sent = [await publish(gw), await publish(gw, pretty)]

    async with gw.http.get("/v1/inbox/stream", headers=gw.fed.auth(ME)) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        events = await read_events(response, 2)

    messages = [json.loads("\n".join(e["data"])) for e in events]
    assert [m["message_id"] for m in messages] == sent
    assert [e["event"] for e in events] == ["message", "message"]
    assert [e["id"] for e in events] == [m["tag"] for m in messages]
    assert messages[1]["payload"] == referral()
    assert len(events[1]["data"]) > 1  # the pretty payload spans several data lines
    _status, body = await post(gw, "/v1/inbox/ack", {"tags": [e["id"] for e in events]})
    assert body["acknowledged"] == [e["id"] for e in events]


async def test_what_a_closed_stream_did_not_acknowledge_comes_back(gw: Gateway) -> None:
    message_id = await publish(gw)
    async with gw.http.get("/v1/inbox/stream", headers=gw.fed.auth(ME)) as response:
        [event] = await read_events(response, 1)
    assert json.loads(event["data"][0])["message_id"] == message_id

    [again] = await pull(gw, wait=5)

    assert again["message_id"] == message_id


async def test_the_stream_needs_a_participant(gw: Gateway) -> None:
    async with gw.http.get("/v1/inbox/stream") as response:
        assert response.status == 401


async def test_a_consumer_falling_behind_shows_its_lag_and_others_publish_on(
    tmp_path: Path,
) -> None:
    """Bounded work per participant: the inbox stops fetching at max_in_flight, the rest
    waits in Kafka as lag (status and metrics), and other publishing goes on."""
    fed = Federation.create(tmp_path)
    config = dataclasses.replace(
        fed.config(("minhealth", ME, "acme-analytics"), bootstrap="memory"),
        delivery=DeliveryConfig(max_in_flight=5),
    )
    async with running_node(config, transport=MemoryTransport()) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            gw = Gateway(node, http, fed, MemoryTransport())
            for _ in range(20):
                await publish(gw)
            async with asyncio.timeout(10):
                while True:  # the inbox fetches up to its bound, then stops
                    async with http.get("/v1/inbox/status", headers=fed.auth(ME)) as response:
                        status = await response.json()
                    if status["ready"] == 5:
                        break
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # and takes no more
            async with http.get("/v1/inbox/status", headers=fed.auth(ME)) as response:
                status = await response.json()
            assert (status["ready"], status["lag"]) == (5, 15)
            async with http.get("/metrics") as response:
                text = await response.text()
            assert f'gateway_inbox_lag{{participant="{ME}"}} 15' in text
            assert 'gateway_inbox_ready{participant="acme-analytics"} 0' in text
            # Publishing to someone else is not held up by the consumer behind.
            async with http.post(
                f"/v1/contracts/{REFERRAL}/messages?to=acme-analytics",
                json=referral(),
                headers=fed.auth("minhealth"),
            ) as response:
                assert response.status == 202


class PatientSource(MemorySource):
    """Once it has served a record, waits longer than the test when there is nothing: so
    only the commit made as the node stops can commit what was acknowledged."""

    served = False

    async def fetch(self, max_records: int, timeout_s: float) -> list[InboundRecord]:
        records = await super().fetch(max_records, timeout_s)
        if records:
            self.served = True
        elif self.served:
            await asyncio.sleep(60)
        return records


class PatientTransport(MemoryTransport):
    def source(self, *, topic: str, group_id: str) -> MemorySource:
        return PatientSource(self.broker, topic, group_id)


async def test_what_was_acknowledged_is_committed_when_the_node_stops(tmp_path: Path) -> None:
    fed = Federation.create(tmp_path)
    transport = PatientTransport()
    config = fed.config(("minhealth", ME), bootstrap="memory")
    async with running_node(config, transport=transport) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            gw = Gateway(node, http, fed, transport)
            await publish(gw)
            [message] = await pull(gw)
            await post(gw, "/v1/inbox/ack", {"tags": [message["tag"]]})
        # Stopped at once, before the inbox's next cycle would have committed it.
    group = (f"{fed.prefix}inbox.{ME}", f"{fed.prefix}inbox.{ME}")
    assert transport.broker.committed[group] == 1


async def test_a_payload_with_bare_carriage_returns_keeps_its_events_whole(gw: Gateway) -> None:
    """CR alone ends a line in server-sent events: each one starts a new data line."""
    body = json.dumps(referral(), separators=(",\r", ":")).encode()  # CR is JSON whitespace
    message_id = await publish(gw, body)

    async with gw.http.get("/v1/inbox/stream", headers=gw.fed.auth(ME)) as response:
        raw = b""
        async with asyncio.timeout(10):
            while b"\n\n" not in raw.replace(b": connected\n\n", b""):
                raw += await response.content.read(1)

    event = raw.replace(b": connected\n\n", b"").split(b"\n\n")[0]
    assert b"\r" not in event
    data = [line[len(b"data: ") :] for line in event.split(b"\n") if line.startswith(b"data: ")]
    assert json.loads(b"\n".join(data))["message_id"] == message_id
