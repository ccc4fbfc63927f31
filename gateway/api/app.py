"""The aiohttp application of one node, with its Kafka resources' lifetimes.

app = create_app(NodeParts(config=config, catalog=catalog, keys=keys,
                           audit=audit, transport=KafkaTransport(config.kafka)))
web.run_app(app)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from gateway.api import audit, batch, contracts, dlq, exchange, handlers
from gateway.api.auth import Authenticator
from gateway.api.keys import (
    ADMISSION,
    AUDIT,
    AUTH,
    CATALOG,
    CONFIG,
    DEAD_LETTERS,
    IDEMPOTENCY,
    INBOXES,
    KEYS,
    LIMITER,
    METRICS,
    PUBLISHER,
    READINESS,
    REGISTRY,
    REPLIES,
    ROUTER,
    SCRAPE_TOKEN,
    TRACER,
    Readiness,
)
from gateway.api.openapi import openapi_document
from gateway.api.problems import problem_middleware
from gateway.audit import AuditLog
from gateway.audit.shipper import AuditShipper
from gateway.config import GatewayConfig
from gateway.console import serve_console
from gateway.contracts import ContractCatalog
from gateway.crypto.keys import KeyStore
from gateway.delivery import Inbox
from gateway.dlq import DeadLetters
from gateway.idempotency import IdempotencyStore
from gateway.instruments import NodeMetrics, scrape_token
from gateway.limits import Clock, Limiter
from gateway.participants.admission import OPEN, Admission
from gateway.participants.follow import RegistryView
from gateway.push import Pusher
from gateway.receiving import Receiver
from gateway.replay import SeenStore
from gateway.replies import Replies
from gateway.routing import Router
from gateway.tracing import tracer_for
from gateway.transport import Publisher, Transport

log = structlog.get_logger("gateway.node")

_RESTART_BACKOFF_S = (1.0, 2.0, 5.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeParts:
    """What a node is built from; everything else is derived at start-up."""

    config: GatewayConfig
    catalog: ContractCatalog
    keys: KeyStore
    audit: AuditLog
    transport: Transport
    seen: SeenStore
    """Message ids each hosted participant acknowledged (replay defence)."""
    idempotency: IdempotencyStore
    """Publish results by sender and Idempotency-Key (a retry gets the original answer)."""
    clock: Clock | None = None
    """The clocks publish limits run on; None: the system's (tests pass a fake)."""
    wall_clock: Callable[[], float] = time.time
    """Unix seconds messages are issued at and checked for freshness against."""
    admission: Admission = OPEN
    """Whom the registry lets take part now, and in what; OPEN: no registry."""
    registry: RegistryView | None = None
    """The signed registry itself (the records), when there is one."""
    webhook_secrets: Mapping[str, list[bytes]] = field(default_factory=dict)
    """Participant -> its webhook signing keys (push delivery), read at start."""


def create_app(parts: NodeParts) -> web.Application:
    config = parts.config
    app = web.Application(
        middlewares=[problem_middleware],
        client_max_size=config.http.max_body_bytes + 1,
        handler_args={"max_field_size": 8190, "max_line_size": 8190},
    )
    app[CONFIG] = config
    app[CATALOG] = parts.catalog
    app[AUTH] = Authenticator.from_config(config)
    app[KEYS] = parts.keys
    app[REPLIES] = Replies()
    app[REGISTRY] = parts.registry
    app[READINESS] = Readiness()
    app[INBOXES] = {}
    app[DEAD_LETTERS] = {}
    app[AUDIT] = parts.audit
    app[ADMISSION] = parts.admission
    app[LIMITER] = Limiter.for_config(config, clock=parts.clock)
    app[IDEMPOTENCY] = parts.idempotency
    app[METRICS] = NodeMetrics(known=parts.catalog.knows)
    app[SCRAPE_TOKEN] = scrape_token(config.http.metrics_token_file)
    app[TRACER] = tracer_for(config.tracing)
    app.cleanup_ctx.append(_broker_lifetime(parts))
    _routes(app)
    if config.console.enabled:
        serve_console(app)
    return app


def _routes(app: web.Application) -> None:
    document = openapi_document(app[CONFIG])

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_post("/v1/contracts/{contract}/messages", handlers.publish)
    app.router.add_get("/v1/contracts", contracts.list_contracts)
    app.router.add_get("/v1/contracts/{contract}", contracts.get_contract)
    app.router.add_get("/v1/contracts/{contract}/versions/{version}", contracts.get_version)
    app.router.add_post("/v1/contracts/{contract}/versions", contracts.register_version)
    app.router.add_get("/v1/inbox", handlers.pull_inbox)
    app.router.add_post("/v1/inbox/ack", handlers.ack_inbox)
    app.router.add_post("/v1/inbox/nack", handlers.nack_inbox)
    app.router.add_post("/v1/contracts/{contract}/messages:batch", batch.publish_batch)
    app.router.add_post("/v1/contracts/{contract}/requests", exchange.send_request)
    app.router.add_post("/v1/messages/{message_id}/reply", exchange.send_reply)
    app.router.add_get("/v1/inbox/stream", handlers.stream_inbox)
    app.router.add_get("/v1/dlq", dlq.list_dead_letters)
    app.router.add_get("/v1/dlq/{partition}/{offset}", dlq.get_dead_letter)
    app.router.add_post("/v1/dlq/replay", dlq.replay_dead_letters)
    app.router.add_get("/v1/audit", audit.search_audit)
    app.router.add_get("/v1/inbox/status", handlers.inbox_status)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/openapi.json", openapi)


def _broker_lifetime(
    parts: NodeParts,
) -> Callable[[web.Application], AsyncIterator[None]]:
    config = parts.config

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        hosted = [p.id for p in config.participants]
        topics = [t for p in hosted for t in (config.inbox_topic(p), config.dlq_topic(p))]
        ships = config.audit.topic and parts.audit.directory is not None
        await parts.transport.ensure_topics([*topics, config.audit_topic] if ships else topics)
        publisher = parts.transport.publisher()
        await publisher.start()
        app[READINESS].publisher = True
        app[PUBLISHER] = publisher
        shipper = (
            AuditShipper(
                parts.audit,
                publisher,
                topic=config.audit_topic,
                node=config.node_id,
                retry_backoff_s=config.delivery.retry_backoff_s,
            )
            if ships
            else None
        )
        shipping = asyncio.create_task(shipper.run(), name="audit:ship") if shipper else None
        app[ROUTER] = Router(
            config=config,
            catalog=parts.catalog,
            keys=parts.keys,
            publisher=publisher,
            audit=parts.audit,
            clock=parts.wall_clock,
            admission=parts.admission,
            metrics=app[METRICS],
            tracer=app[TRACER],
        )
        for participant in hosted:
            app[DEAD_LETTERS][participant] = DeadLetters(
                participant=participant,
                config=config,
                transport=parts.transport,
                publisher=publisher,
                audit=parts.audit,
            )
        tasks = [_start_inbox(app, parts, p, publisher) for p in hosted]
        try:
            yield
        finally:
            # Stop taking work first, then close the producer the inboxes use.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            shipped = (
                await shipper.close(shipping, config.kafka.publish_timeout_s)
                if shipper is not None and shipping is not None
                else True
            )
            if not shipped:
                log.warning("audit_not_shipped", note="sent from the files on next start")
            app[READINESS].publisher = False
            await publisher.stop()
            # Flushing spans to a collector blocks (bounded): not on the event loop.
            await asyncio.to_thread(app[TRACER].close)

    return lifetime


def _start_inbox(
    app: web.Application, parts: NodeParts, participant: str, publisher: Publisher
) -> asyncio.Task[None]:
    config = parts.config
    inboxes = app[INBOXES]

    def already_settled(message_id: str) -> bool:
        """Replay defence: acknowledged within the window, or held right now."""
        return parts.seen.seen(participant, message_id) or inboxes[participant].holds(message_id)

    local = config.local(participant)
    pushed = local is not None and local.webhook is not None
    inbox = Inbox(
        participant=participant,
        config=config,
        source=parts.transport.source(
            topic=config.inbox_topic(participant), group_id=f"{config.prefix}inbox.{participant}"
        ),
        receiver=Receiver(
            participant=participant,
            config=config,
            catalog=parts.catalog,
            keys=parts.keys,
            already_settled=already_settled,
            clock=parts.wall_clock,
            admission=parts.admission,
            metrics=app[METRICS],
        ),
        publisher=publisher,
        audit=parts.audit,
        seen=parts.seen,
        visibility_timeout_s=None if pushed else config.delivery.visibility_timeout_s,
        replies=app[REPLIES],
        metrics=app[METRICS],
        tracer=app[TRACER],
    )
    app[INBOXES][participant] = inbox
    readiness = app[READINESS]
    readiness.inboxes[participant] = False
    pusher: Callable[[], Pusher] | None = None
    if local is not None and local.webhook is not None:
        webhook, secrets = local.webhook, parts.webhook_secrets[participant]

        def pusher() -> Pusher:
            return Pusher(
                inbox,
                webhook,
                secrets=secrets,
                admitted=lambda: parts.admission.admitted(participant),
            )

        return asyncio.create_task(
            _supervise(inbox, readiness, pusher), name=f"inbox+push:{participant}"
        )
    return asyncio.create_task(_supervise(inbox, readiness), name=f"inbox:{participant}")


async def _supervise(
    inbox: Inbox, readiness: Readiness, pusher: Callable[[], Pusher] | None = None
) -> None:
    """Keep an inbox consuming (and a pusher pushing); after a failure, restart both
    with a backoff: what was handed out and not acknowledged comes again, to a new
    pusher (nothing of the old one's lanes is kept)."""
    failures = 0
    while True:
        watcher = asyncio.create_task(_mark_ready(inbox, readiness))
        try:
            if pusher is None:
                await inbox.run()
            else:
                async with asyncio.TaskGroup() as group:
                    group.create_task(inbox.run())
                    group.create_task(pusher().run())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = _RESTART_BACKOFF_S[min(failures, len(_RESTART_BACKOFF_S) - 1)]
            failures += 1
            log.warning(
                "inbox_restarting",
                participant=inbox.participant,
                error=type(exc).__name__,
                delay_s=delay,
            )
            await asyncio.sleep(delay)
        finally:
            watcher.cancel()
            readiness.inboxes[inbox.participant] = False


async def _mark_ready(inbox: Inbox, readiness: Readiness) -> None:
    await inbox.started.wait()
    readiness.inboxes[inbox.participant] = True
