"""Push delivery: each verified message POSTed to the participant's own endpoint.

A hosted participant with ``webhook`` configured is not pulled from: its inbox
hands each verified message to a :class:`Pusher`, which POSTs the exact
payload bytes the sender signed, with metadata headers, and signs the
callback per Standard Webhooks (so the endpoint can tell the gateway from
anyone else)::

    POST <url>
    content-type: application/json
    webhook-id: <message id>            (the same on every attempt)
    webhook-timestamp: <Unix seconds of this attempt>
    webhook-signature: v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")> [...]
    idempotency-key: <message id>
    x-gateway-message-id, x-gateway-contract, x-gateway-version, x-gateway-sender,
    x-gateway-issued-at, x-gateway-correlation-id (when set), x-gateway-migrated-from
    traceparent: <W3C trace context of the delivery: the publish's trace id>

A 2xx acknowledges the message. Anything else (a status, a timeout, a refused
connection, a redirect, which is never followed) is retried with exponential
backoff and full jitter, honouring ``Retry-After``, until ``max_attempts`` or
``max_elapsed_s``; then the message goes to the participant's dead-letter
topic (reason ``webhook-failed``, with the attempt count and the last
error) and the inbox moves past it. Messages with the same record key (the
publisher's ordering key, else the message id) go one after another, in
order; up to ``concurrency`` keys go at once, so one failing key does not hold
up the others. Delivery is at least once: after a crash, what was not yet
committed comes again with the same ``webhook-id``, for the endpoint to
recognise; the node itself suppresses what it knows was acknowledged.

    pusher = Pusher(inbox, config.webhook, secrets=read_secrets(config.webhook), audit=audit)
    task = asyncio.create_task(pusher.run())
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import structlog

from gateway.config import WebhookConfig
from gateway.delivery import Delivery, Inbox
from gateway.errors import ConfigError

log = structlog.get_logger("gateway.push")

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
_BATCH = 100
_SUSPENDED_POLL_S = 1.0
_MAX_DETAIL = 300


def read_secrets(webhook: WebhookConfig) -> list[bytes]:
    """The signing keys from ``secret_file``: one ``whsec_<base64>`` per line."""
    path = webhook.secret_file
    if path is None:
        raise ConfigError("webhook.secret_file: callbacks are signed; name the secret file")
    try:
        lines = path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"webhook.secret_file {path}: cannot read it") from exc
    keys = []
    for line in lines:
        if not line.startswith(SECRET_PREFIX):
            raise ConfigError(f"webhook.secret_file {path}: each secret starts with whsec_")
        try:
            key = base64.b64decode(line[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"webhook.secret_file {path}: a secret is not base64") from None
        if len(key) < 24:
            raise ConfigError(f"webhook.secret_file {path}: a secret shorter than 24 bytes")
        keys.append(key)
    if not keys:
        raise ConfigError(f"webhook.secret_file {path}: holds no secret")
    return keys


def signature(keys: list[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per key, space-separated."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in keys
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    detail: str
    """What the endpoint answered, for the dead-letter record: a status, or an error."""
    retry_after_s: float | None = None


Sleep = Callable[[float], Awaitable[None]]


class Pusher:
    def __init__(
        self,
        inbox: Inbox,
        webhook: WebhookConfig,
        *,
        secrets: list[bytes],
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        admitted: Callable[[], bool] = lambda: True,
    ) -> None:
        """``admitted``: whether the registry lets the participant take delivery now (a
        suspended one's messages wait, as its inbox does)."""
        self._admitted = admitted
        self._inbox = inbox
        self._hook = webhook
        self._secrets = secrets
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._lanes: dict[bytes, asyncio.Queue[Delivery]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(webhook.concurrency)
        self._session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        """Take verified messages from the inbox and push them until cancelled."""
        connector = aiohttp.TCPConnector(ssl=self._tls(), limit=self._hook.concurrency)
        timeout = aiohttp.ClientTimeout(total=self._hook.timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self._session = session
            try:
                while True:
                    if not self._admitted():
                        await self._sleep(_SUSPENDED_POLL_S)
                        continue
                    for delivery in await self._inbox.hand_out(max_messages=_BATCH, wait_s=1.0):
                        self._lane(delivery)
            finally:
                for worker in self._workers:
                    worker.cancel()
                await asyncio.gather(*self._workers, return_exceptions=True)
                self._session = None

    def _tls(self) -> ssl.SSLContext | bool:
        if self._hook.ca_file is None:
            return True
        context = ssl.create_default_context(cafile=str(self._hook.ca_file))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def _lane(self, delivery: Delivery) -> None:
        """Queue behind earlier messages of the same record key (their order holds)."""
        key = delivery.record.key or delivery.message.message_id.encode()
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = asyncio.Queue()
            worker = asyncio.create_task(self._drain(key, lane), name="push:lane")
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)
        lane.put_nowait(delivery)

    async def _drain(self, key: bytes, lane: asyncio.Queue[Delivery]) -> None:
        try:
            while not lane.empty():
                delivery = lane.get_nowait()
                try:
                    await self._deliver(delivery)
                except Exception as exc:
                    log.error(
                        "webhook_lane_failed",
                        participant=self._inbox.participant,
                        message_id=delivery.message.message_id,
                        trace_id=delivery.span.context.trace_id,
                        error=type(exc).__name__,
                    )
                    await self._inbox.give_up(
                        delivery, detail=f"internal: {type(exc).__name__}", attempts=0
                    )
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    async def _deliver(self, delivery: Delivery) -> None:
        started, attempts = time.monotonic(), 0
        while True:
            if not self._inbox.current(delivery):
                return  # its partition went elsewhere, or the inbox restarted
            attempts += 1
            async with self._slots:
                attempt = await self._post(delivery)
            if attempt.ok:
                await self._inbox.pushed(delivery, attempts=attempts)
                return
            delay = self._backoff(attempts, attempt.retry_after_s)
            spent = time.monotonic() - started
            if attempts >= self._hook.max_attempts or spent + delay > self._hook.max_elapsed_s:
                log.warning(
                    "webhook_gave_up",
                    participant=self._inbox.participant,
                    message_id=delivery.message.message_id,
                    trace_id=delivery.span.context.trace_id,
                    attempts=attempts,
                    last=attempt.detail,
                )
                await self._inbox.give_up(delivery, detail=attempt.detail, attempts=attempts)
                return
            await self._sleep(delay)

    def _backoff(self, attempts: int, retry_after_s: float | None) -> float:
        """Full jitter over an exponential ceiling; at least what Retry-After asks."""
        ceiling = min(self._hook.max_backoff_s, self._hook.backoff_s * 2 ** (attempts - 1))
        delay = self._rng.uniform(0, ceiling)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self._hook.max_backoff_s))
        return delay

    async def _post(self, delivery: Delivery) -> Attempt:
        session = self._session
        assert session is not None
        m = delivery.message
        timestamp = int(self._clock())
        headers = {
            "content-type": "application/json",
            "webhook-id": m.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(self._secrets, m.message_id, timestamp, m.payload),
            "idempotency-key": m.message_id,
            "x-gateway-message-id": m.message_id,
            "x-gateway-contract": m.contract,
            "x-gateway-version": m.version,
            "x-gateway-sender": m.sender,
            "x-gateway-issued-at": str(m.issued_at),
            "traceparent": str(delivery.span.context),
        }
        if m.correlation_id:
            headers["x-gateway-correlation-id"] = m.correlation_id
        if m.migrated_from:
            headers["x-gateway-migrated-from"] = m.migrated_from
        try:
            async with session.post(
                self._hook.url, data=m.payload, headers=headers, allow_redirects=False
            ) as response:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    await response.read()  # the connection is then reusable
                if 200 <= response.status < 300:
                    return Attempt(ok=True, detail=f"HTTP {response.status}")
                return Attempt(
                    ok=False,
                    detail=f"HTTP {response.status}",
                    retry_after_s=_retry_after(response.headers.get("Retry-After")),
                )
        except TimeoutError:
            return Attempt(ok=False, detail=f"no answer within {self._hook.timeout_s:g} s")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return Attempt(ok=False, detail=f"{type(exc).__name__}: {exc}"[:_MAX_DETAIL])


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` of seconds (an HTTP date is not honoured)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None
