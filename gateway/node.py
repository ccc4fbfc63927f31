"""Running a node: load contracts and keys, connect to Kafka, serve HTTP.

async with running_node(config) as node:
    print(node.url)
    await node.wait_ready(30)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import structlog
from aiohttp import web

from gateway.api.app import NodeParts, create_app
from gateway.api.auth import Authenticator
from gateway.api.keys import AUDIT, AUTH, CONFIG, READINESS
from gateway.api.protocol import ProblemRunner
from gateway.audit import AuditLog
from gateway.audit.keys import open_node_log, operator
from gateway.audit.store import AuditError
from gateway.config import GatewayConfig
from gateway.contracts import ContractCatalog, load_catalog
from gateway.crypto.keys import KeyStore, passphrase
from gateway.errors import ConfigError, GatewayError
from gateway.idempotency import IdempotencyStore
from gateway.limits import Clock
from gateway.participants.admission import OPEN
from gateway.participants.contract_records import ContractIntake
from gateway.participants.follow import RegistryView
from gateway.participants.registry import ANCHOR_FILE
from gateway.participants.topic import RegistryFollower
from gateway.push import read_secrets
from gateway.replay import SeenStore
from gateway.transport import Transport
from gateway.transport.broker import EmbeddedBroker
from gateway.transport.kafka import KafkaTransport

log = structlog.get_logger("gateway.node")

_CATCH_UP_S = 30.0
"""Longest a starting node waits to read the registry topic to its end."""


@dataclass(frozen=True, slots=True)
class RunningNode:
    url: str
    app: web.Application

    def reload_credentials(self, config: GatewayConfig) -> list[str]:
        """Take new bearer token digests and client certificate fingerprints from
        ``config`` without a restart (``gateway serve`` does this on SIGHUP); returns the
        settings that differ otherwise, which only a restart applies.

        Raises :class:`ConfigError`, leaving the current credentials in force, when the
        hosted participants differ or the new credentials do not hold."""
        current = self.app[CONFIG]
        hosted = sorted(p.id for p in config.participants)
        if hosted != sorted(p.id for p in current.participants):
            raise ConfigError("the hosted participants changed: restart the node to apply that")
        if not config.kafka.bootstrap:  # the embedded broker this node started
            kafka = dataclasses.replace(config.kafka, bootstrap=current.kafka.bootstrap)
            config = dataclasses.replace(config, kafka=kafka)
        fresh = Authenticator.from_config(config)  # all checked before anything changes
        ignored = sorted(
            name
            for name, value in _without_credentials(config).items()
            if _without_credentials(current)[name] != value
        )
        self.app[AUDIT].record(
            "credentials.reloaded",
            config_sha256=config_digest(config),
            participants=hosted,
            auditors=sorted(a.id for a in config.auditors),
            needs_restart=ignored,
        )
        self.app[AUTH].replace(fresh)
        return ignored

    async def wait_ready(self, timeout_s: float) -> None:
        """Return once the producer and every inbox consumer are up."""
        readiness = self.app[READINESS]
        async with asyncio.timeout(timeout_s):
            # Polled: a handful of flags, checked only while a node starts.
            while not all(readiness.checks().values()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)


@contextlib.contextmanager
def kafka_for(config: GatewayConfig) -> Iterator[GatewayConfig]:
    """The config itself when it names a cluster; else start the embedded broker."""
    if config.kafka.bootstrap:
        yield config
        return
    with EmbeddedBroker.start(binary=config.broker_bin) as broker:
        kafka = dataclasses.replace(config.kafka, bootstrap=broker.bootstrap)
        yield dataclasses.replace(config, kafka=kafka)


@contextlib.asynccontextmanager
async def running_node(
    config: GatewayConfig,
    *,
    transport: Transport | None = None,
    clock: Clock | None = None,
    wall_clock: Callable[[], float] = time.time,
) -> AsyncIterator[RunningNode]:
    """Serve one node until the block exits, then shut down gracefully.

    ``clock`` drives the publish limits (default: the system's); ``wall_clock`` is the
    Unix time messages are issued at and checked for freshness against (tests skew it
    to play a node whose clock is off; there is no setting for it)."""
    hosted = frozenset(p.id for p in config.participants)
    if config.state_dir is not None:
        config.state_dir.mkdir(parents=True, exist_ok=True)
    needs_secret = bool(hosted) or config.audit.dir is not None
    secret = passphrase(os.environ, config.key_passphrase_file) if needs_secret else None
    keys = KeyStore.load(config.keys_dir, hosted=hosted, secret=secret)
    audit = open_audit(config, secret)
    stopped = False

    def stop() -> None:
        """Record node.stopped, once, and sign a head over it."""
        nonlocal stopped
        if not stopped:
            stopped = True
            audit.record("node.stopped")
            audit.sign_head()

    try:
        async with _serving(
            config, keys, audit, transport, stop, clock=clock, wall_clock=wall_clock
        ) as node:
            yield node
    finally:
        stop()
        audit.close()


def open_audit(config: GatewayConfig, secret: bytes | None) -> AuditLog:
    """The node's audit log, its key created on first start; records config.loaded."""
    if config.audit.dir is None:
        audit = AuditLog(node_id=config.node_id)
        created = None
    else:
        assert secret is not None
        audit, created = open_node_log(config, secret)
    if created is not None:
        audit.record(
            "key.generated", owner=config.node_id, purpose="audit", kids=[created], by=operator()
        )
    audit.record(
        "config.loaded",
        config_sha256=config_digest(config),
        participants=sorted(p.id for p in config.participants),
        auditors=sorted(a.id for a in config.auditors),
        audit_dir=str(config.audit.dir) if config.audit.dir else None,
        kafka=config.kafka.bootstrap or "embedded",
    )
    return audit


def _without_credentials(config: GatewayConfig) -> dict[str, object]:
    """The config's top-level settings, tokens and certificate fingerprints left out."""
    participants = [
        dataclasses.replace(p, token_sha256=(), client_cert_sha256=()) for p in config.participants
    ]
    settings = dataclasses.replace(config, participants=tuple(participants), auditors=())
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}


def config_digest(config: GatewayConfig) -> str:
    """SHA-256 of the effective configuration (token digests included, no secrets)."""
    text = json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@contextlib.asynccontextmanager
async def _serving(
    config: GatewayConfig,
    keys: KeyStore,
    audit: AuditLog,
    transport: Transport | None,
    on_stop: Callable[[], None],
    *,
    clock: Clock | None,
    wall_clock: Callable[[], float],
) -> AsyncIterator[RunningNode]:
    hosted = frozenset(p.id for p in config.participants)
    transport = transport or KafkaTransport(config.kafka)
    catalog = load_catalog(config.contracts_dir)
    view = _registry(config, audit, catalog)
    async with contextlib.AsyncExitStack() as stack:
        follower = await _follow_topic(config, view, transport) if view is not None else None
        if follower is not None:
            stack.push_async_callback(follower.stop)
        if view is not None:
            keys.follow(view.public_keys)
            _check_hosted_keys(view, keys, hosted)
        seen = SeenStore(
            config.state_dir / "replay.sqlite3" if config.state_dir else None,
            window_s=config.delivery.max_age_s + config.delivery.max_clock_skew_s,
            max_entries=config.delivery.replay_max_entries,
        )
        stack.callback(seen.close)
        idempotency = IdempotencyStore(
            config.state_dir / "idempotency.sqlite3" if config.state_dir else None,
            window_s=config.http.idempotency_window_s,
            max_entries=config.http.idempotency_max_entries,
        )
        stack.callback(idempotency.close)
        parts = NodeParts(
            config=config,
            catalog=catalog,
            keys=keys,
            audit=audit,
            transport=transport,
            seen=seen,
            idempotency=idempotency,
            clock=clock,
            wall_clock=wall_clock,
            admission=view if view is not None else OPEN,
            registry=view,
            webhook_secrets={
                p.id: read_secrets(p.webhook) for p in config.participants if p.webhook
            },
        )
        runner = ProblemRunner(
            create_app(parts), handle_signals=False, access_log=None, shutdown_timeout=5.0
        )
        stack.push_async_callback(runner.cleanup)
        await runner.setup()
        node = await _listen(runner, config)
        audit.record("node.started", participants=sorted(hosted), url=node.url)
        background = [asyncio.create_task(_sign_heads(audit, config), name="audit:heads")]
        if view is not None:
            polling = _poll(view, config.registry.poll_s)
            background.append(asyncio.create_task(polling, name="registry:poll"))
        if follower is not None:
            background.append(asyncio.create_task(follower.run(), name="registry:topic"))
        try:
            yield node
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            # Recorded and signed while the producer still runs, so that the audit
            # topic receives the last head of this run now, not at the next start.
            on_stop()


async def _listen(runner: web.AppRunner, config: GatewayConfig) -> RunningNode:
    site = web.TCPSite(runner, config.http.host, config.http.port, ssl_context=tls_context(config))
    try:
        await site.start()
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {config.http.host}:{config.http.port}: {exc.strerror}"
        ) from exc
    port = runner.addresses[0][1]
    scheme = "https" if config.http.tls_cert is not None else "http"
    return RunningNode(f"{scheme}://{config.http.host}:{port}", runner.app)


def tls_context(config: GatewayConfig) -> ssl.SSLContext | None:
    """HTTPS with modern defaults (TLS 1.2+, the ssl module's default ciphers), and
    client certificates from ``tls_client_ca`` when mutual TLS is on."""
    http = config.http
    if http.tls_cert is None or http.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(http.tls_cert, http.tls_key)
        if http.tls_client_ca is not None:
            context.load_verify_locations(http.tls_client_ca)
            context.verify_mode = (
                ssl.CERT_REQUIRED if http.tls_require_client_cert else ssl.CERT_OPTIONAL
            )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"http TLS files: {exc}") from exc
    return context


def _registry(
    config: GatewayConfig, audit: AuditLog, catalog: ContractCatalog
) -> RegistryView | None:
    directory = config.registry.dir
    if directory is None:
        return None
    if not (directory / ANCHOR_FILE).is_file():
        raise ConfigError(f"registry.dir {directory} has no {ANCHOR_FILE} (the trust anchor)")
    try:
        topic = config.registry.topic
        return RegistryView.open(
            directory,
            audit=audit,
            files=not topic,
            contracts=ContractIntake(catalog, config.contracts_dir, audit) if topic else None,
            state=config.state_dir / "registry.json" if config.state_dir else None,
        )
    except GatewayError as exc:
        raise ConfigError(f"registry.dir {directory}: {exc.detail}") from exc


async def _follow_topic(
    config: GatewayConfig, view: RegistryView, transport: Transport
) -> RegistryFollower | None:
    """With ``registry.topic``, the whole topic is read before the node serves."""
    if not config.registry.topic:
        return None
    topic = config.registry_topic
    await transport.ensure_topics([], compacted=[topic])
    follower = RegistryFollower(view, transport.reader(topic), topic)
    await follower.catch_up(timeout_s=_CATCH_UP_S)
    return follower


def _check_hosted_keys(view: RegistryView, keys: KeyStore, hosted: frozenset[str]) -> None:
    """Warn when a hosted participant's private keys are not the ones its record lists:
    senders would encrypt to keys this node cannot open."""
    for participant in sorted(hosted):
        listed = view.public_keys(participant)
        current = keys.private(participant).public()
        if listed is not None and (
            listed.signing[0].kid != current.signing[0].kid
            or listed.encryption[0].kid != current.encryption[0].kid
        ):
            log.warning(
                "registry_keys_differ",
                participant=participant,
                note="the registry record lists other keys; approve the new keys",
            )


async def _poll(view: RegistryView, poll_s: float) -> None:
    """Take in new registry files and a changed anchor while the node runs (no restart)."""
    while True:
        await asyncio.sleep(poll_s)
        try:
            view.refresh()
        except (OSError, GatewayError) as exc:  # the last good registry stays in force
            log.error("registry_refresh_failed", error=str(exc))


async def _sign_heads(audit: AuditLog, config: GatewayConfig) -> None:
    """Sign a tree head whenever records wait longer than the head interval."""
    tick = min(config.audit.head_interval_s, 1.0)
    while True:
        await asyncio.sleep(tick)
        try:
            audit.sign_head_if_due()
        except (OSError, AuditError) as exc:  # a full disk must not stop the node's work
            log.error("audit_head_failed", error=str(exc))
