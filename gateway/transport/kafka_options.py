"""The Kafka client's production settings: refused at config load, handed to aiokafka.

:func:`check_kafka` runs inside :func:`gateway.config.load_config`, so a node with a
codec it cannot use, TLS files that are not there or SASL without a password never
starts. :func:`client_options` turns the checked settings into aiokafka keyword
arguments (TLS context, SASL credentials), the same for producer, consumers and admin::

    options = client_options(config.kafka)   # {"security_protocol": "SASL_SSL", ...}
    AIOKafkaProducer(bootstrap_servers=..., **options)

The SASL password is read here, when a client is built (from ``kafka.sasl_password_file``
or ``GATEWAY_KAFKA_SASL_PASSWORD``): it never sits in the config object and is never
logged. A rotated password file takes effect at the node's next start.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka import codec
from aiokafka.helpers import create_ssl_context

from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.config import KafkaConfig

SASL_PASSWORD_VARIABLE = "GATEWAY_KAFKA_SASL_PASSWORD"  # noqa: S105 - a variable name
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
CODECS: Mapping[str, Callable[[], bool]] = {
    "none": lambda: True,
    "gzip": codec.has_gzip,
    "lz4": codec.has_lz4,
    "zstd": codec.has_zstd,
}
"""Each codec ``kafka.compression`` may name, with whether its library is installed."""


def available_codecs() -> list[str]:
    return [name for name, installed in CODECS.items() if installed()]


def check_kafka(kafka: KafkaConfig, environ: Mapping[str, str]) -> None:
    """Raise :class:`ConfigError` naming the first ``kafka.*`` setting that cannot work."""
    _check_timeouts(kafka)
    _check_compression(kafka.compression)
    _check_tls(kafka)
    _check_sasl(kafka, environ)


MAX_TIMEOUT_S = 3600
"""Kafka's clients take timeouts as 32-bit milliseconds; an hour is far beyond any use."""


def _check_timeouts(kafka: KafkaConfig) -> None:
    for key in ("request_timeout_s", "session_timeout_s", "rebalance_timeout_s"):
        value = getattr(kafka, key)
        if not 0 < value <= MAX_TIMEOUT_S:  # also refuses NaN and infinity
            raise ConfigError(
                f"kafka.{key}: must be greater than zero and at most {MAX_TIMEOUT_S} s"
            )
    if not 0 < kafka.heartbeat_interval_s < kafka.session_timeout_s:
        raise ConfigError(
            "kafka.heartbeat_interval_s: must be greater than zero and shorter than "
            f"kafka.session_timeout_s ({kafka.session_timeout_s:g} s)"
        )
    # The group coordinator holds a JoinGroup request up to the rebalance timeout while
    # the other members rejoin; aiokafka waits for it only request_timeout_s, so a
    # shorter request timeout gives up on every slow rebalance and never joins.
    if kafka.request_timeout_s < kafka.rebalance_timeout_s:
        raise ConfigError(
            f"kafka.request_timeout_s: {kafka.request_timeout_s:g} s is shorter than "
            f"kafka.rebalance_timeout_s ({kafka.rebalance_timeout_s:g} s): an inbox "
            "consumer's group join would time out during a rebalance"
        )
    if kafka.fetch_max_wait_ms >= kafka.request_timeout_s * 1000:
        raise ConfigError(
            f"kafka.fetch_max_wait_ms: {kafka.fetch_max_wait_ms} ms must be shorter than "
            f"kafka.request_timeout_s ({kafka.request_timeout_s:g} s)"
        )
    if kafka.linger_ms < 0:
        raise ConfigError("kafka.linger_ms: must not be negative")
    if kafka.replication_factor < 1:
        raise ConfigError("kafka.replication_factor: must be at least 1")


def _check_compression(name: str) -> None:
    if name not in CODECS:
        raise ConfigError(f"kafka.compression: {name!r} is not one of {', '.join(CODECS)}")
    if not CODECS[name]():
        raise ConfigError(
            f"kafka.compression: {name!r} needs the cramjam package "
            f"(pip install 'aiokafka[{name}]'), which is not installed; "
            f"available here: {', '.join(available_codecs())}"
        )


def _check_tls(kafka: KafkaConfig) -> None:
    if kafka.security_protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(
            f"kafka.security_protocol: {kafka.security_protocol!r} is not one of "
            f"{', '.join(SECURITY_PROTOCOLS)}"
        )
    files = {
        "ssl_ca_file": kafka.ssl_ca_file,
        "ssl_cert_file": kafka.ssl_cert_file,
        "ssl_key_file": kafka.ssl_key_file,
    }
    given = [key for key, path in files.items() if path is not None]
    if given and not kafka.security_protocol.endswith("SSL"):
        raise ConfigError(
            f"kafka.{given[0]}: only used with kafka.security_protocol SSL or SASL_SSL "
            f"(it is {kafka.security_protocol})"
        )
    if (kafka.ssl_cert_file is None) != (kafka.ssl_key_file is None):
        raise ConfigError("kafka.ssl_cert_file and kafka.ssl_key_file: give both, or neither")
    for key, path in files.items():
        if path is not None:
            _readable(f"kafka.{key}", path)
    if kafka.security_protocol.endswith("SSL"):
        tls_context(kafka)  # a certificate or key that does not load is refused now


def _check_sasl(kafka: KafkaConfig, environ: Mapping[str, str]) -> None:
    if not kafka.security_protocol.startswith("SASL_"):
        stray = "sasl_mechanism" if kafka.sasl_mechanism else None
        stray = stray or ("sasl_username" if kafka.sasl_username else None)
        stray = stray or ("sasl_password_file" if kafka.sasl_password_file else None)
        if stray is not None:
            raise ConfigError(
                f"kafka.{stray}: only used with kafka.security_protocol SASL_PLAINTEXT or "
                f"SASL_SSL (it is {kafka.security_protocol})"
            )
        return
    if kafka.sasl_mechanism not in SASL_MECHANISMS:
        raise ConfigError(
            f"kafka.sasl_mechanism: {kafka.sasl_mechanism!r} is not one of "
            f"{', '.join(SASL_MECHANISMS)}"
        )
    if not kafka.sasl_username:
        raise ConfigError(f"kafka.sasl_username: {kafka.security_protocol} needs a user name")
    from_env = bool(environ.get(SASL_PASSWORD_VARIABLE))
    if kafka.sasl_password_file is not None and from_env:
        raise ConfigError(
            f"kafka.sasl_password_file: {SASL_PASSWORD_VARIABLE} is also set; give one"
        )
    if kafka.sasl_password_file is None and not from_env:
        raise ConfigError(
            f"kafka.sasl_password_file: {kafka.security_protocol} needs a password "
            f"(this file, or the {SASL_PASSWORD_VARIABLE} variable)"
        )
    if kafka.sasl_password_file is not None:
        _read_password(kafka.sasl_password_file)


def _readable(key: str, path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"{key}: {path} is not a readable file")


def _read_password(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"kafka.sasl_password_file: cannot read {path}") from exc
    if not text:
        raise ConfigError(f"kafka.sasl_password_file: {path} is empty")
    return text


def client_options(
    kafka: KafkaConfig, *, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """aiokafka keyword arguments common to every client: connection, TLS and SASL."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        "client_id": kafka.client_id,
        "request_timeout_ms": int(kafka.request_timeout_s * 1000),
        "security_protocol": kafka.security_protocol,
    }
    if kafka.security_protocol.endswith("SSL"):
        options["ssl_context"] = tls_context(kafka)
    if kafka.security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = sasl_password(kafka, environ=environ)
    return options


def tls_context(kafka: KafkaConfig) -> ssl.SSLContext:
    """Verify the brokers against ``ssl_ca_file`` (else the system's CAs), with host names
    checked; present ``ssl_cert_file`` when given (mutual TLS)."""
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=kafka.ssl_ca_file,
            certfile=kafka.ssl_cert_file,
            keyfile=kafka.ssl_key_file,
            password=_no_passphrase,  # an encrypted key fails here instead of prompting
        )
    except OSError as exc:  # ssl.SSLError included
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise ConfigError(
            f"kafka.ssl_ca_file / ssl_cert_file / ssl_key_file: cannot be loaded ({reason})"
        ) from exc
    return context


def _no_passphrase() -> str:
    return ""


def sasl_password(kafka: KafkaConfig, *, environ: Mapping[str, str] | None = None) -> str:
    if kafka.sasl_password_file is not None:
        return _read_password(kafka.sasl_password_file)
    password = (os.environ if environ is None else environ).get(SASL_PASSWORD_VARIABLE, "")
    if not password:
        raise ConfigError(
            f"kafka.sasl_password_file: no password (file, or {SASL_PASSWORD_VARIABLE})"
        )
    return password
