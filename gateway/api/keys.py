"""Typed application keys for the resources the HTTP app shares."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from aiohttp import web

from gateway.api.auth import Authenticator, Principal
from gateway.audit import AuditLog
from gateway.config import GatewayConfig
from gateway.contracts import ContractCatalog
from gateway.crypto.keys import KeyStore
from gateway.delivery import Inbox
from gateway.dlq import DeadLetters
from gateway.idempotency import IdempotencyStore
from gateway.instruments import NodeMetrics
from gateway.limits import Limiter
from gateway.participants.admission import Admission
from gateway.participants.follow import RegistryView
from gateway.replies import Replies
from gateway.routing import Router
from gateway.tracing import Tracer
from gateway.transport import Publisher


@dataclass(slots=True)
class Readiness:
    """What must be up before the node takes traffic."""

    publisher: bool = False
    inboxes: dict[str, bool] = field(default_factory=dict)

    def checks(self) -> dict[str, bool]:
        return {"publisher": self.publisher, **{f"inbox:{k}": v for k, v in self.inboxes.items()}}


CONFIG = web.AppKey("config", GatewayConfig)
CATALOG = web.AppKey("catalog", ContractCatalog)
AUTH = web.AppKey("auth", Authenticator)
ROUTER = web.AppKey("router", Router)
REGISTRY: web.AppKey[RegistryView | None] = web.AppKey("registry")
"""The node's view of the signed registry; None without one."""
KEYS = web.AppKey("keys", KeyStore)
"""Every key the node holds: hosted participants' private keys, everyone's public ones."""
REPLIES = web.AppKey("replies", Replies)
"""Requests waiting on this node for their reply."""
PUBLISHER: web.AppKey[Publisher] = web.AppKey("publisher")
"""The node's producer (acks=all), for what is not a message: registry records."""
INBOXES = web.AppKey("inboxes", dict[str, Inbox])
DEAD_LETTERS = web.AppKey("dead_letters", dict[str, DeadLetters])
"""Each hosted participant's dead-letter topic, once the producer is up."""
READINESS = web.AppKey("readiness", Readiness)
AUDIT = web.AppKey("audit", AuditLog)
LIMITER = web.AppKey("limiter", Limiter)
METRICS = web.AppKey("metrics", NodeMetrics)
TRACER = web.AppKey("tracer", Tracer)
SCRAPE_TOKEN: web.AppKey[str | None] = web.AppKey("scrape_token")
"""The bearer token ``/metrics`` asks for (``http.metrics_token_file``); None: none."""
IDEMPOTENCY = web.AppKey("idempotency", IdempotencyStore)
"""Publish results by sender and Idempotency-Key, within the window."""

CALLER: ContextVar[Principal | None] = ContextVar("gateway_caller", default=None)
"""The request's authenticated caller, for the audit record of a refusal.

Set where a handler authenticates; the problem middleware resets it around
each request (a context variable rather than request storage: ``web.RequestKey``
needs aiohttp 3.14)."""
ADMISSION: web.AppKey[Admission] = web.AppKey("admission")
"""Whom the registry lets take part now, and in what (everyone, without a registry)."""
