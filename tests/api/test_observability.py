"""Metrics and trace context on one node (in-memory transport): what moves the counters
and histograms, and the trace id from the publish to the delivery and the audit trail."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from structlog.testing import capture_logs

from gateway.api.keys import PUBLISHER
from gateway.config import Limits
from gateway.node import running_node
from gateway.otel import OtelTracer
from gateway.tracing import parse
from gateway.transport import OutboundRecord
from tests.api.conftest import Gateway
from tests.api.test_inbox_flow import read_events
from tests.fakes import MemoryTransport
from tests.support import REFERRAL, Federation, moved, parse_metrics, referral

ME = "socialtreasury"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
C = f'contract="{REFERRAL}"'


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    fed = Federation.create(tmp_path)
    transport = MemoryTransport()
    async with running_node(
        fed.config(("minhealth", ME), bootstrap="memory"), transport=transport
    ) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            yield Gateway(node, http, fed, transport)


def exporting(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Nodes started from now on export their spans; the exporter that keeps them."""
    exporter = InMemorySpanExporter()
    tracer = OtelTracer.processing(SimpleSpanProcessor(exporter), service_name="node-1")
    monkeypatch.setattr("gateway.api.app.tracer_for", lambda _config: tracer)
    return exporter


async def scrape(gw: Gateway, **headers: str) -> dict[str, float]:
    async with gw.http.get("/metrics", headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return parse_metrics(await response.text())


async def publish(gw: Gateway, body: Any, **headers: str) -> tuple[int, dict[str, Any]]:
    async with gw.http.post(
        f"/v1/contracts/{REFERRAL}/messages?to={ME}",
        json=body,
        headers={**gw.fed.auth("minhealth"), **headers},
    ) as response:
        return response.status, await response.json()


async def pull(gw: Gateway, expect: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while len(got) < expect:
            async with gw.http.get("/v1/inbox?wait=1&max=50", headers=gw.fed.auth(ME)) as response:
                got += (await response.json())["messages"]
    return got


async def ack(gw: Gateway, tags: list[str]) -> None:
    async with gw.http.post("/v1/inbox/ack", json={"tags": tags}, headers=gw.fed.auth(ME)) as r:
        assert (await r.json())["acknowledged"] == tags


def _timed(sample: str) -> bool:
    """A histogram's sum or finite bucket: how much it moves depends on the time taken."""
    latency = sample.startswith(("gateway_publish_ack_seconds_", "gateway_end_to_end_seconds_"))
    return latency and ("_sum" in sample or ("_bucket" in sample and "+Inf" not in sample))


def invalid_referral() -> dict[str, Any]:
    body = {**referral(), "urgency": "whenever", "Jane Doe": "a made-up member"}
    body["patient"] = {**body["patient"], "sex": "x"}
    return body


async def test_counters_and_histograms_move_as_messages_flow(gw: Gateway) -> None:
    before = await scrape(gw)

    for number in range(3):
        status, _ = await publish(gw, referral(number))
        assert status == 202
    status, _ = await publish(gw, invalid_referral())
    assert status == 422
    delivered = await pull(gw, 3)
    await ack(gw, [m["tag"] for m in delivered])
    after = await scrape(gw)

    changes = moved(before, after)
    timed = {sample: value for sample, value in changes.items() if _timed(sample)}
    assert {s: v for s, v in changes.items() if s not in timed} == {
        f'gateway_publishes_total{{{C},outcome="accepted"}}': 3,
        f'gateway_publishes_total{{{C},outcome="rejected"}}': 1,
        f'gateway_validation_failures_total{{{C},pointer_class="(undeclared)"}}': 1,
        f'gateway_validation_failures_total{{{C},pointer_class="/patient/sex"}}': 1,
        f'gateway_validation_failures_total{{{C},pointer_class="/urgency"}}': 1,
        f'gateway_deliveries_total{{{C},outcome="delivered"}}': 3,
        f'gateway_deliveries_total{{{C},outcome="acknowledged"}}': 3,
        'gateway_crypto_operations_total{operation="sign"}': 3,
        'gateway_crypto_operations_total{operation="encrypt"}': 3,
        'gateway_crypto_operations_total{operation="decrypt"}': 3,
        'gateway_crypto_operations_total{operation="verify"}': 3,
        'gateway_publish_ack_seconds_bucket{le="+Inf"}': 3,
        "gateway_publish_ack_seconds_count": 3,
        f'gateway_end_to_end_seconds_bucket{{{C},le="+Inf"}}': 3,
        f"gateway_end_to_end_seconds_count{{{C}}}": 3,
    }
    # The finite buckets and the sums move with the time taken: by at most the count.
    assert all(0 < value <= 3 for sample, value in timed.items() if "_bucket" in sample)
    assert 0 < after["gateway_publish_ack_seconds_sum"] < 60
    assert 0 <= after[f"gateway_end_to_end_seconds_sum{{{C}}}"] < 60
    assert after[f'gateway_end_to_end_seconds_bucket{{{C},le="60"}}'] == 3
    assert after[f'gateway_inbox_lag{{participant="{ME}"}}'] == 0
    assert after['gateway_inbox_lag{participant="minhealth"}'] == 0
    assert after[f'gateway_inbox_ready{{participant="{ME}"}}'] == 0  # the older gauges stay


async def test_the_publishers_trace_id_reaches_the_delivery_and_the_audit_trail(
    gw: Gateway,
) -> None:
    with capture_logs():
        status, accepted = await publish(gw, referral(), traceparent=PARENT)
        assert status == 202
        [message] = await pull(gw, 1)
    await ack(gw, [message["tag"]])

    delivery = parse(message["traceparent"])
    assert delivery is not None
    assert delivery.trace_id == TRACE
    assert delivery.span_id != "00f067aa0ba902b7"  # a span of its own, under the publish
    records = {r["event"]: r for r in gw.fed.audit("node-1")}
    for event in ("message.accepted", "message.delivered", "message.acknowledged"):
        assert records[event]["trace_id"] == TRACE, event
    # The record in Kafka carries the publish span: same trace, another parent id.
    [record] = gw.transport.broker.records(f"{gw.fed.prefix}inbox.{ME}")
    sent = parse(dict(record.headers)["traceparent"].decode())
    assert sent is not None
    assert sent.trace_id == TRACE
    assert len({sent.span_id, delivery.span_id, "00f067aa0ba902b7"}) == 3
    assert records["message.accepted"]["message_id"] == accepted["message_id"]


async def test_log_lines_while_publishing_name_the_trace(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the Kafka producer logs (a broker that does not answer) carries trace_id:
    the structured log merges context variables, bound for the publish."""
    bound: list[dict[str, Any]] = []
    publisher = gw.node.app[PUBLISHER]
    real = publisher.publish

    async def publish_seeing_context(records: Sequence[OutboundRecord]) -> None:
        bound.append(structlog.contextvars.get_contextvars())
        await real(records)

    monkeypatch.setattr(publisher, "publish", publish_seeing_context)
    status, _ = await publish(gw, referral(), traceparent=PARENT)
    assert status == 202
    other = "0af7651916cd43dd8448eb211c80319c"
    status, _ = await publish(gw, referral(2), traceparent=f"00-{other}-b7ad6b7169203331-01")
    assert status == 202

    assert bound == [{"trace_id": TRACE}, {"trace_id": other}]  # each publish its own


async def test_a_publish_without_traceparent_starts_a_trace(gw: Gateway) -> None:
    status, _ = await publish(gw, referral())
    assert status == 202
    [message] = await pull(gw, 1)

    delivery = parse(message["traceparent"])
    assert delivery is not None
    records = {r["event"]: r for r in gw.fed.audit("node-1")}
    assert records["message.accepted"]["trace_id"] == delivery.trace_id
    assert records["message.delivered"]["trace_id"] == delivery.trace_id


@pytest.mark.parametrize("header", [b"zz", f"00-{'0' * 32}-00f067aa0ba902b7-01".encode(), None])
async def test_a_record_without_a_valid_traceparent_is_delivered_under_a_new_trace(
    gw: Gateway, header: bytes | None
) -> None:
    """The header is unsigned routing metadata: not a reason to refuse a verified message."""
    _, value, headers = gw.fed.envelope(
        sealed_for=ME, encrypted_to=ME, payload=json.dumps(referral()).encode()
    )
    topic = f"{gw.fed.prefix}inbox.{ME}"
    sent = (*headers, ("traceparent", header)) if header is not None else tuple(headers)
    gw.transport.broker.topics.setdefault(topic, []).append(
        OutboundRecord(topic, b"k", value, sent)
    )

    [message] = await pull(gw, 1)

    delivery = parse(message["traceparent"])
    assert delivery is not None
    assert delivery.trace_id != "0" * 32
    [delivered] = [r for r in gw.fed.audit("node-1") if r["event"] == "message.delivered"]
    assert delivered["trace_id"] == delivery.trace_id


async def test_a_rejected_publish_is_audited_with_its_trace_id(gw: Gateway) -> None:
    status, _ = await publish(gw, invalid_referral(), traceparent=PARENT)
    assert status == 422
    [rejected] = [r for r in gw.fed.audit("node-1") if r["event"] == "message.rejected"]
    assert rejected["trace_id"] == TRACE
    assert "Jane Doe" not in json.dumps(rejected)


async def test_the_stream_carries_the_trace_context(gw: Gateway) -> None:
    await publish(gw, referral(), traceparent=PARENT)
    async with gw.http.get("/v1/inbox/stream", headers=gw.fed.auth(ME)) as response:
        [event] = await read_events(response, 1)
    streamed = parse(json.loads("\n".join(event["data"]))["traceparent"])
    assert streamed is not None
    assert streamed.trace_id == TRACE


async def test_refusals_count_by_outcome_and_unknown_contracts_collapse(gw: Gateway) -> None:
    before = await scrape(gw)
    async with gw.http.post(
        "/v1/contracts/made.up-contract/messages", json={}, headers=gw.fed.auth("minhealth")
    ) as response:
        assert response.status == 404
    async with gw.http.post(
        f"/v1/contracts/{REFERRAL}/messages?to=metro-medical",
        json=referral(),
        headers=gw.fed.auth("minhealth"),
    ) as response:
        assert response.status == 422  # not a consumer of the contract
    async with gw.http.post(
        f"/v1/contracts/{REFERRAL}/messages", json=referral(), headers=gw.fed.auth(ME)
    ) as response:
        assert response.status == 403  # not a producer of it
    gw.transport.broker.down = True
    status, _ = await publish(gw, referral())
    assert status == 503
    gw.transport.broker.down = False
    # Refused before the router: the body's type, a header.
    async with gw.http.post(
        f"/v1/contracts/{REFERRAL}/messages",
        data=b"<referral/>",
        headers={**gw.fed.auth("minhealth"), "Content-Type": "application/xml"},
    ) as response:
        assert response.status == 415
    status, _ = await publish(gw, referral(), traceparent="00-not-a-trace")
    assert status == 400
    after = await scrape(gw)

    assert moved(before, after) == {
        'gateway_publishes_total{contract="unknown",outcome="refused"}': 1,
        f'gateway_publishes_total{{{C},outcome="refused"}}': 2,
        f'gateway_publishes_total{{{C},outcome="unavailable"}}': 1,
        f'gateway_publishes_total{{{C},outcome="rejected"}}': 2,
        'gateway_crypto_operations_total{operation="sign"}': 1,
        'gateway_crypto_operations_total{operation="encrypt"}': 1,
    }


async def test_throttled_and_deduplicated_publishes_count_as_such(tmp_path: Path) -> None:
    fed = Federation.create(tmp_path)
    config = dataclasses.replace(
        fed.config(("minhealth", ME), bootstrap="memory"),
        default_limits=Limits(messages_per_s=0.001, burst=2),
    )
    async with running_node(config, transport=MemoryTransport()) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            gw = Gateway(node, http, fed, MemoryTransport())
            key = {"Idempotency-Key": '"7f1c1c8e-3a5b-4c61-9d51-0f0d6d1f2a11"'}
            assert (await publish(gw, referral(), **key))[0] == 202
            assert (await publish(gw, referral(), **key))[0] == 202  # answered from the store
            assert (await publish(gw, referral(2)))[0] == 429
            # A batch's items over the rate are throttled one by one, and counted so.
            batch = {"messages": [{"payload": referral(n)} for n in (3, 4)]}
            async with http.post(
                f"/v1/contracts/{REFERRAL}/messages:batch",
                json=batch,
                headers=fed.auth("minhealth"),
            ) as answered:
                assert [r["status"] for r in (await answered.json())["results"]] == [429, 429]
            after = await scrape(gw)

    assert after[f'gateway_publishes_total{{{C},outcome="accepted"}}'] == 1
    assert after[f'gateway_publishes_total{{{C},outcome="deduplicated"}}'] == 1
    assert after[f'gateway_publishes_total{{{C},outcome="throttled"}}'] == 3


async def test_a_release_and_a_duplicate_count_as_such(gw: Gateway) -> None:
    status, _ = await publish(gw, referral())
    assert status == 202
    [message] = await pull(gw, 1)
    before = await scrape(gw)
    async with gw.http.post(
        "/v1/inbox/nack", json={"tags": [message["tag"]]}, headers=gw.fed.auth(ME)
    ) as response:
        assert (await response.json())["released"] == [message["tag"]]
    [again] = await pull(gw, 1)  # handed out a second time: not delivered twice in the count
    # The same record read again while it is held: suppressed as a duplicate.
    topic = f"{gw.fed.prefix}inbox.{ME}"
    [record] = gw.transport.broker.records(topic)
    gw.transport.broker.topics[topic].append(record)
    async with asyncio.timeout(10):
        while not [r for r in gw.fed.audit("node-1") if r["event"] == "message.duplicate"]:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    after = await scrape(gw)

    assert again["message_id"] == message["message_id"]
    assert moved(before, after) == {
        f'gateway_deliveries_total{{{C},outcome="released"}}': 1,
        f'gateway_deliveries_total{{{C},outcome="duplicate"}}': 1,
        # Opened and verified before it could be recognised by its signed message id.
        'gateway_crypto_operations_total{operation="decrypt"}': 1,
        'gateway_crypto_operations_total{operation="verify"}': 1,
    }


async def test_dead_letters_count_by_participant_and_reason(gw: Gateway) -> None:
    before = await scrape(gw)
    topic = f"{gw.fed.prefix}inbox.{ME}"
    body = json.dumps(referral()).encode()
    # Signed for acme-analytics, encrypted to socialtreasury: its signature binds another.
    _, forged, headers = gw.fed.envelope(sealed_for="acme-analytics", encrypted_to=ME, payload=body)
    # Its authentication tag changed: it does not decrypt.
    _, sealed, tampered_headers = gw.fed.envelope(sealed_for=ME, encrypted_to=ME, payload=body)
    tag = sealed.rsplit(b".", 1)[1]
    tampered = sealed[: -len(tag)] + (b"A" if tag[:1] != b"A" else b"B") + tag[1:]
    for value, sent in ((forged, headers), (tampered, tampered_headers)):
        traced = (*sent, ("traceparent", PARENT.encode()))
        gw.transport.broker.topics.setdefault(topic, []).append(
            OutboundRecord(topic, b"k", value, traced)
        )
    async with asyncio.timeout(10):
        # The inbox works in the background; the fake broker has no event to wait on.
        while len(gw.transport.broker.records(f"{gw.fed.prefix}dlq.{ME}")) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    after = await scrape(gw)

    assert moved(before, after) == {
        f'gateway_dead_letters_total{{participant="{ME}",reason="recipient-mismatch"}}': 1,
        f'gateway_dead_letters_total{{participant="{ME}",reason="decryption-failed"}}': 1,
        f'gateway_deliveries_total{{{C},outcome="dead_lettered"}}': 2,
        'gateway_crypto_operations_total{operation="decrypt"}': 1,
        'gateway_crypto_operations_total{operation="verify_failed"}': 1,
        'gateway_crypto_operations_total{operation="decrypt_failed"}': 1,
    }
    dead = [r for r in gw.fed.audit("node-1") if r["event"] == "message.dead_lettered"]
    assert [r["trace_id"] for r in dead] == [TRACE, TRACE]


async def test_with_export_on_the_spans_that_travel_are_the_exported_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = exporting(monkeypatch)
    fed = Federation.create(tmp_path)
    transport = MemoryTransport()
    async with running_node(
        fed.config(("minhealth", ME), bootstrap="memory"), transport=transport
    ) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            gw = Gateway(node, http, fed, transport)
            assert (await publish(gw, referral(), traceparent=PARENT))[0] == 202
            [message] = await pull(gw, 1)
            assert (await publish(gw, invalid_referral()))[0] == 422

    spans = exporter.get_finished_spans()
    [sent, refused] = [s for s in spans if s.name == "publish"]
    [deliver] = [s for s in spans if s.name == "deliver"]
    assert sent.parent is not None
    assert f"{sent.parent.span_id:016x}" == "00f067aa0ba902b7"
    [record] = transport.broker.records(f"{fed.prefix}inbox.{ME}")
    assert dict(record.headers)["traceparent"].decode() == (
        f"00-{TRACE}-{sent.context.span_id:016x}-01"
    )
    assert deliver.parent is not None
    assert deliver.parent.span_id == sent.context.span_id
    assert message["traceparent"] == f"00-{TRACE}-{deliver.context.span_id:016x}-01"
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.status.description == "contract-violation"


async def test_the_scrape_token_guards_metrics_when_configured(tmp_path: Path) -> None:
    fed = Federation.create(tmp_path)
    token = "scrape-token-0123456789abcdef"
    (tmp_path / "metrics.token").write_text(token + "\n")
    config = fed.config(("minhealth", ME), bootstrap="memory")
    config = dataclasses.replace(
        config, http=dataclasses.replace(config.http, metrics_token_file=tmp_path / "metrics.token")
    )
    async with running_node(config, transport=MemoryTransport()) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}, fed.auth("minhealth")):
                async with http.get("/metrics", headers=headers) as response:
                    assert response.status == 401
                    assert response.content_type == "application/problem+json"
            async with http.get("/metrics", headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200
                assert "gateway_publishes_total" in await r.text()
            async with http.get("/openapi.json") as response:
                document = await response.json()
    assert document["paths"]["/metrics"]["get"]["security"] == [{"bearer": []}]


async def test_metrics_stay_open_without_a_token(gw: Gateway) -> None:
    async with gw.http.get("/metrics") as response:
        assert response.status == 200
    async with gw.http.get("/openapi.json") as response:
        assert (await response.json())["paths"]["/metrics"]["get"]["security"] == []


async def test_a_scrape_token_that_is_not_utf8_is_refused_not_an_error(tmp_path: Path) -> None:
    token = tmp_path / "scrape.token"
    token.write_text("s3cret-scrape-token-0123456789\n")
    fed = Federation.create(tmp_path / "fed")
    config = fed.config(("minhealth",), bootstrap="memory")
    config = dataclasses.replace(
        config, http=dataclasses.replace(config.http, metrics_token_file=token)
    )
    async with running_node(config, transport=MemoryTransport()) as node:
        await node.wait_ready(5)
        host, port = node.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
            b"Connection: close\r\n\r\n"
        )
        await writer.drain()
        answer = await reader.read()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]


async def test_a_publish_that_fails_unexpectedly_still_ends_its_span(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = exporting(monkeypatch)
    fed = Federation.create(tmp_path)
    async with running_node(
        fed.config(("minhealth", ME), bootstrap="memory"), transport=MemoryTransport()
    ) as node:
        await node.wait_ready(5)

        async def broken(records: Sequence[OutboundRecord]) -> None:
            raise RuntimeError("a fault no one planned for")

        monkeypatch.setattr(node.app[PUBLISHER], "publish", broken)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            gw = Gateway(node, http, fed, MemoryTransport())
            with capture_logs():
                assert (await publish(gw, referral(), traceparent=PARENT))[0] == 500

    [failed] = [s for s in exporter.get_finished_spans() if s.name == "publish"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "internal"
