"""Push delivery to a participant's webhook, on the in-memory transport: signed callbacks,
retries with backoff, order per key, and the dead-letter topic when the budget is spent."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from gateway.api.keys import METRICS
from gateway.config import GatewayConfig, WebhookConfig, load_config
from gateway.errors import ConfigError, TransportError
from gateway.node import RunningNode, running_node
from gateway.push import read_secrets, signature
from gateway.tracing import parse
from gateway.transport import InboundRecord
from tests.fakes import MemorySource, MemoryTransport
from tests.support import REFERRAL, Federation, referral

ME = "socialtreasury"
SECRET = b"s" * 32
PUBLISH = f"/v1/contracts/{REFERRAL}/messages"


@dataclass
class Endpoint:
    """A participant's system: answers each callback with the next planned status."""

    url: str = ""
    plan: list[int] = field(default_factory=list)
    """Statuses to answer, in order; 204 once it runs out."""
    calls: list[dict[str, Any]] = field(default_factory=list)
    taken: dict[str, bytes] = field(default_factory=dict)
    """What it acted on, by webhook-id (it honours the idempotency key)."""
    stalls: int = 0
    """Calls (the first ones) that hang for a second before answering."""
    refuse: dict[bytes, int] = field(default_factory=dict)
    """A marker in the body -> how many more calls carrying it get a 500."""

    async def handle(self, request: web.Request) -> web.Response:
        if self.stalls:
            self.stalls -= 1
            await asyncio.sleep(1.0)
        body = await request.read()
        call = {"headers": request.headers.copy(), "body": body}  # names without case
        self.calls.append(call)
        status = self.plan.pop(0) if self.plan else 204
        for marker, left in self.refuse.items():
            if marker in body and left > 0:
                self.refuse[marker] = left - 1
                status = 500
        if 200 <= status < 300:
            self.taken.setdefault(request.headers["webhook-id"], body)
        if status == 307:
            return web.Response(status=307, headers={"Location": "http://127.0.0.1:1/"})
        return web.Response(status=status)


@dataclass
class Push:
    fed: Federation
    node: RunningNode
    http: aiohttp.ClientSession
    transport: MemoryTransport
    endpoint: Endpoint

    async def publish(
        self, ordering_key: str | None = None, correlation: str | None = None, number: int = 1
    ) -> str:
        headers = self.fed.auth("minhealth")
        if ordering_key:
            headers["X-Ordering-Key"] = ordering_key
        if correlation:
            headers["X-Correlation-Id"] = correlation
        async with self.http.post(
            f"{PUBLISH}?to={ME}", json=referral(number), headers=headers
        ) as response:
            assert response.status == 202, await response.text()
            message_id: str = (await response.json())["message_id"]
            return message_id

    async def until(self, check: Any, timeout_s: float = 10) -> None:
        async with asyncio.timeout(timeout_s):
            while not check():  # noqa: ASYNC110 - the pusher works in the background
                await asyncio.sleep(0.01)

    def dead_letters(self) -> list[dict[str, bytes]]:
        topic = f"{self.fed.prefix}dlq.{ME}"
        return [dict(r.headers) for r in self.transport.broker.records(topic)]

    def audit(self, event: str) -> list[dict[str, Any]]:
        return [r for r in self.fed.audit("node-1") if r["event"] == event]


def webhook_config(fed: Federation, url: str, **options: Any) -> GatewayConfig:
    secret_file = fed.root / "webhook.secret"
    secret_file.write_text("whsec_" + base64.b64encode(SECRET).decode() + "\n")
    settings: dict[str, Any] = {
        "backoff_s": 0.01,
        "max_backoff_s": 0.05,
        "timeout_s": 2.0,
        **options,
    }
    hook = WebhookConfig(url=url, secret_file=secret_file, **settings)
    config = fed.config(("minhealth", ME), bootstrap="memory")
    participants = tuple(
        dataclasses.replace(p, webhook=hook) if p.id == ME else p for p in config.participants
    )
    return dataclasses.replace(config, participants=participants)


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    target = Endpoint()
    app = web.Application()
    app.router.add_post("/hook", target.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    target.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield target
    await runner.cleanup()


@contextlib.asynccontextmanager
async def start(tmp_path: Path, endpoint: Endpoint, **options: Any) -> AsyncIterator[Push]:
    fed = Federation.create(tmp_path)
    transport = MemoryTransport()
    config = webhook_config(fed, endpoint.url, **options)
    async with running_node(config, transport=transport) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            yield Push(fed, node, http, transport, endpoint)


@pytest.fixture
async def push(tmp_path: Path, endpoint: Endpoint) -> AsyncIterator[Push]:
    async with start(tmp_path, endpoint) as made:
        yield made


async def test_a_message_is_posted_signed_with_its_metadata(push: Push) -> None:
    message_id = await push.publish(correlation="c-1")

    await push.until(lambda: push.endpoint.taken)
    [call] = push.endpoint.calls
    headers, body = call["headers"], call["body"]
    assert json.loads(body)["patient"] == referral()["patient"]
    assert headers["webhook-id"] == headers["Idempotency-Key"] == message_id
    assert headers["X-Gateway-Sender"] == "minhealth"
    assert headers["X-Gateway-Contract"] == REFERRAL
    assert headers["X-Gateway-Version"] == "1.1.0"
    assert headers["X-Gateway-Correlation-Id"] == "c-1"
    signed = f"{message_id}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(SECRET, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"
    await push.until(lambda: push.audit("message.acknowledged"))
    [delivered] = push.audit("message.delivered")
    assert (delivered["mode"], delivered["attempts"], delivered["message_id"]) == (
        "push",
        1,
        message_id,
    )


async def test_the_callback_carries_the_trace_context_of_the_publish(push: Push) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with push.http.post(
        f"{PUBLISH}?to={ME}",
        json=referral(),
        headers={**push.fed.auth("minhealth"), "traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
    ) as response:
        assert response.status == 202

    await push.until(lambda: push.audit("message.acknowledged"))
    [call] = push.endpoint.calls
    delivered = parse(call["headers"]["traceparent"])
    assert delivered is not None
    assert delivered.trace_id == trace
    assert delivered.span_id != "00f067aa0ba902b7"
    assert push.audit("message.delivered")[0]["trace_id"] == trace
    metrics = push.node.app[METRICS]
    assert metrics.deliveries.value(REFERRAL, "delivered") == 1
    assert metrics.end_to_end.count(REFERRAL) == 1


async def test_a_participant_with_a_webhook_is_not_pulled(push: Push) -> None:
    async with push.http.get("/v1/inbox", headers=push.fed.auth(ME)) as response:
        assert response.status == 409
        assert (await response.json())["type"] == "urn:gateway:problem:push-delivery"


async def test_an_endpoint_down_for_a_while_gets_everything_in_key_order(push: Push) -> None:
    push.endpoint.plan = [503, 500, 502, 404]  # down, then up
    sent = [await push.publish(ordering_key="case-7") for _ in range(5)]

    await push.until(lambda: len(push.endpoint.taken) == 5)

    assert list(push.endpoint.taken) == sent  # in order, each once
    order = [c["headers"]["webhook-id"] for c in push.endpoint.calls]
    assert order[:5] == [sent[0]] * 5  # the first is retried; the others wait behind it
    assert push.dead_letters() == []


async def test_other_keys_are_not_held_up_by_a_failing_one(push: Push) -> None:
    push.endpoint.refuse = {b"REF-2026-000007": 3}  # the 'slow' key's message, 3 times
    stuck = await push.publish(ordering_key="slow", number=7)
    free = await push.publish(ordering_key="fast", number=8)

    await push.until(lambda: len(push.endpoint.taken) == 2)

    ids = [c["headers"]["webhook-id"] for c in push.endpoint.calls]
    assert ids.index(free) < len(ids) - 1  # 'fast' went through while 'slow' retried
    assert ids[-1] == stuck


@pytest.fixture
async def failing(tmp_path: Path, endpoint: Endpoint) -> AsyncIterator[Push]:
    endpoint.plan = [500] * 1000
    async with start(tmp_path, endpoint, max_attempts=3) as made:
        yield made


async def test_an_endpoint_always_failing_sends_messages_to_the_dead_letter_topic(
    failing: Push,
) -> None:
    with capture_logs() as logs:
        message_id = await failing.publish()
        await failing.until(failing.dead_letters)

    [dead] = failing.dead_letters()
    assert dead["gw_reason"] == b"webhook-failed"
    assert dead["gw_attempts"] == b"3"
    assert dead["gw_detail"] == b"HTTP 500"
    assert dead["ce_id"] == message_id.encode()
    assert len(failing.endpoint.calls) == 3
    [event] = failing.audit("message.dead_lettered")
    assert (event["reason"], event["attempts"]) == ("webhook-failed", 3)
    [gave_up] = [e for e in logs if e["event"] == "webhook_gave_up"]
    assert gave_up["trace_id"] == event["trace_id"]
    metrics = failing.node.app[METRICS]
    assert metrics.dead_letters.value(ME, "webhook-failed") == 1
    assert metrics.deliveries.value(REFERRAL, "dead_lettered") == 1
    assert metrics.deliveries.value(REFERRAL, "delivered") == 0
    # The inbox went past it: the next message is pushed (and fails) on its own.
    failing.endpoint.plan = []
    later = await failing.publish()
    await failing.until(lambda: later in failing.endpoint.taken)


async def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    endpoint.plan = [307] * 10
    async with start(tmp_path, endpoint, max_attempts=2) as push:
        await push.publish()
        await push.until(push.dead_letters)
        assert push.dead_letters()[0]["gw_detail"] == b"HTTP 307"
        assert len(push.endpoint.calls) == 2


async def test_an_endpoint_that_does_not_answer_in_time_is_retried(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    endpoint.stalls = 1
    async with start(tmp_path, endpoint, timeout_s=0.2) as push:
        message_id = await push.publish()
        await push.until(lambda: push.audit("message.delivered"))  # after the endpoint's 2xx
        [delivered] = push.audit("message.delivered")
        assert (delivered["message_id"], delivered["attempts"]) == (message_id, 2)


# -- configuration and secrets -------------------------------------------------------------


def test_two_secrets_sign_twice_while_one_is_rotated() -> None:
    value = signature([b"a" * 32, b"b" * 32], "m-1", 1_700_000_000, b"{}")
    first, second = value.split(" ")
    assert first.startswith("v1,")
    assert second.startswith("v1,")
    assert first != second


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no secret"),
        ("not-a-secret\n", "each secret starts with whsec_"),
        ("whsec_***\n", "is not base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "shorter than 24 bytes"),
    ],
)
def test_a_bad_secret_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "secret"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_secrets(WebhookConfig(url="https://x.example/", secret_file=path))


@pytest.mark.parametrize(
    ("webhook", "message"),
    [
        ("{url: 'http://agency.example/hook', secret_file: s}", "https:// URL"),
        ("{url: 'ftp://127.0.0.1/hook', secret_file: s}", "https:// URL"),
        ("{url: 'https://agency.example/hook'}", "name the secret file"),
        ("{url: 'https://agency.example/hook', secret_file: s, max_attempts: 0}", "max_attempts"),
    ],
)
def test_webhook_configuration_is_checked(tmp_path: Path, webhook: str, message: str) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(f"participants:\n  - id: socialtreasury\n    webhook: {webhook}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_plain_http_to_a_loopback_endpoint_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "participants:\n  - id: socialtreasury\n"
        "    webhook: {url: 'http://127.0.0.1:9000/hook', secret_file: s}\n"
    )
    hook = load_config(path).participants[0].webhook
    assert hook is not None
    assert hook.url == "http://127.0.0.1:9000/hook"


class FlakyTransport(MemoryTransport):
    """Its inbox sources fail one fetch (once ``trip`` is set): the inbox restarts."""

    def __init__(self) -> None:
        super().__init__()
        self.trip = False

    def source(self, *, topic: str, group_id: str) -> MemorySource:
        transport = self

        class Flaky(MemorySource):
            async def fetch(self, max_records: int, timeout_s: float) -> list[InboundRecord]:
                if transport.trip:
                    transport.trip = False
                    raise TransportError("the broker went away")
                return await super().fetch(max_records, timeout_s)

        return Flaky(self.broker, topic, group_id)


async def test_an_inbox_restart_while_a_key_is_retrying_loses_nothing(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    fed = Federation.create(tmp_path)
    transport = FlakyTransport()
    config = webhook_config(fed, endpoint.url, backoff_s=0.2, max_backoff_s=0.3)
    endpoint.refuse = {b"REF-2026-000007": 2}
    async with running_node(config, transport=transport) as node:
        await node.wait_ready(5)
        async with aiohttp.ClientSession(base_url=node.url) as http:
            push = Push(fed, node, http, transport, endpoint)
            first = await push.publish(ordering_key="case-7", number=7)
            await push.until(lambda: len(endpoint.calls) >= 1)
            transport.trip = True  # the inbox restarts while case-7 waits for its retry
            second = await push.publish(ordering_key="case-7", number=8)
            await push.until(lambda: {first, second} <= set(endpoint.taken), timeout_s=20)
    assert list(endpoint.taken).index(first) < list(endpoint.taken).index(second)
