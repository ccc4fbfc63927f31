"""Kafka client settings: what the config accepts, what it refuses, what aiokafka is given."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.config import KafkaConfig, load_config
from gateway.errors import ConfigError
from gateway.transport import kafka_options
from gateway.transport.kafka import inbox_consumer_options, producer_options
from gateway.transport.kafka_options import SASL_PASSWORD_VARIABLE, client_options

PASSWORD = "correct horse battery staple"


def load(tmp_path: Path, kafka: str, environ: dict[str, str] | None = None) -> KafkaConfig:
    path = tmp_path / "gateway.yaml"
    path.write_text(f"kafka:\n{kafka}", encoding="utf-8")
    return load_config(path, environ=environ or {}).kafka


def refused(tmp_path: Path, kafka: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, kafka, environ)
    return info.value.detail


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A CA, a client certificate it issued with its key, and the same key encrypted."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = {
        "ca": cert.public_bytes(serialization.Encoding.PEM),
        "cert": cert.public_bytes(serialization.Encoding.PEM),
        "key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "encrypted": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ),
        "garbage": b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n",
        "password": f"{PASSWORD}\n".encode(),
        "empty": b"\n",
    }
    paths = {}
    for label, data in files.items():
        paths[label] = tmp_path / f"{label}.pem"
        paths[label].write_bytes(data)
    return paths


# -- defaults and what the producer and consumers are given ---------------------------------


def test_defaults_keep_plaintext_no_idempotence_and_no_compression() -> None:
    options = producer_options(KafkaConfig(bootstrap="kafka-1:9092"))
    assert options == {
        "bootstrap_servers": "kafka-1:9092",
        "client_id": "gateway",
        "request_timeout_ms": 10_000,
        "security_protocol": "PLAINTEXT",
        "acks": "all",
        "enable_idempotence": False,
        "compression_type": None,
        "linger_ms": 5,
        "max_batch_size": 512 * 1024,
    }


def test_production_producer_settings_reach_aiokafka(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "  bootstrap: kafka-1:9092,kafka-2:9092\n"
        "  enable_idempotence: true\n"
        "  compression: gzip\n"
        "  linger_ms: 20\n"
        "  producer_batch_bytes: 262144\n",
    )
    options = producer_options(config)
    assert options["acks"] == "all"
    assert options["enable_idempotence"] is True
    assert options["compression_type"] == "gzip"
    assert options["linger_ms"] == 20
    assert options["max_batch_size"] == 262_144
    assert options["bootstrap_servers"] == "kafka-1:9092,kafka-2:9092"


def test_inbox_consumers_get_group_timings_and_never_auto_commit(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "  session_timeout_s: 45\n  heartbeat_interval_s: 3\n"
        "  rebalance_timeout_s: 60\n  request_timeout_s: 65\n  fetch_max_wait_ms: 200\n",
    )
    options = inbox_consumer_options(config, "gw.minhealth")
    assert options["group_id"] == "gw.minhealth"
    assert options["enable_auto_commit"] is False
    assert options["auto_offset_reset"] == "earliest"
    assert options["session_timeout_ms"] == 45_000
    assert options["heartbeat_interval_ms"] == 3_000
    assert options["rebalance_timeout_ms"] == 60_000
    assert options["request_timeout_ms"] == 65_000
    assert options["fetch_max_wait_ms"] == 200


async def test_aiokafka_accepts_the_sasl_ssl_options_of_every_client(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    config = load(
        tmp_path,
        "  bootstrap: kafka-1:9093\n  security_protocol: SASL_SSL\n"
        f"  ssl_ca_file: {pki['ca']}\n  sasl_mechanism: SCRAM-SHA-512\n"
        f"  sasl_username: node-a\n  sasl_password_file: {pki['password']}\n"
        "  enable_idempotence: true\n  compression: gzip\n",
    )
    producer = AIOKafkaProducer(**producer_options(config))
    consumer = AIOKafkaConsumer(**inbox_consumer_options(config, "gw.minhealth"))
    admin = AIOKafkaAdminClient(**client_options(config))
    # Nothing was started: constructing them is aiokafka's own check of these arguments.
    assert producer.client._security_protocol == "SASL_SSL"
    assert producer.client._sasl_mechanism == "SCRAM-SHA-512"
    assert consumer._client._sasl_plain_password == PASSWORD
    assert isinstance(admin._client._ssl_context, ssl.SSLContext)
    await producer.stop()
    await consumer.stop()
    await admin.close()


# -- compression --------------------------------------------------------------------------


def test_gzip_is_always_available(tmp_path: Path) -> None:
    assert load(tmp_path, "  compression: gzip\n").compression == "gzip"
    assert kafka_options.available_codecs()[:2] == ["none", "gzip"]


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_a_codec_whose_library_is_missing_is_refused_with_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: str
) -> None:
    monkeypatch.setitem(kafka_options.CODECS, "lz4", lambda: False)
    monkeypatch.setitem(kafka_options.CODECS, "zstd", lambda: False)
    assert refused(tmp_path, f"  compression: {codec}\n") == (
        f"kafka.compression: '{codec}' needs the cramjam package (pip install "
        f"'aiokafka[{codec}]'), which is not installed; available here: none, gzip"
    )


def test_a_codec_whose_library_is_installed_is_passed_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(kafka_options.CODECS, "zstd", lambda: True)
    config = load(tmp_path, "  compression: zstd\n")
    assert producer_options(config)["compression_type"] == "zstd"


@pytest.mark.parametrize("codec", ["snappy", "GZIP", "brotli", ""])
def test_unknown_codecs_are_refused(tmp_path: Path, codec: str) -> None:
    message = refused(tmp_path, f"  compression: '{codec}'\n")
    assert message == f"kafka.compression: '{codec}' is not one of none, gzip, lz4, zstd"


# -- timeouts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        pytest.param(
            "  request_timeout_s: 5\n  rebalance_timeout_s: 30\n",
            "kafka.request_timeout_s: 5 s is shorter than kafka.rebalance_timeout_s (30 s): "
            "an inbox consumer's group join would time out during a rebalance",
            id="request-shorter-than-rebalance",
        ),
        pytest.param(
            "  heartbeat_interval_s: 10\n  session_timeout_s: 10\n",
            "kafka.heartbeat_interval_s: must be greater than zero and shorter than "
            "kafka.session_timeout_s (10 s)",
            id="heartbeat-not-shorter-than-session",
        ),
        pytest.param(
            "  heartbeat_interval_s: 0\n",
            "kafka.heartbeat_interval_s: must be greater than zero and shorter than "
            "kafka.session_timeout_s (10 s)",
            id="heartbeat-zero",
        ),
        pytest.param(
            "  fetch_max_wait_ms: 10000\n",
            "kafka.fetch_max_wait_ms: 10000 ms must be shorter than kafka.request_timeout_s (10 s)",
            id="fetch-wait-as-long-as-request",
        ),
        pytest.param(
            "  session_timeout_s: .nan\n",
            "kafka.session_timeout_s: must be greater than zero and at most 3600 s",
            id="session-nan",
        ),
        pytest.param(
            "  request_timeout_s: 0\n",
            "kafka.request_timeout_s: must be greater than zero and at most 3600 s",
            id="request-zero",
        ),
        pytest.param(
            "  request_timeout_s: .inf\n  rebalance_timeout_s: .inf\n",
            "kafka.request_timeout_s: must be greater than zero and at most 3600 s",
            id="request-infinite",
        ),
        pytest.param(
            "  session_timeout_s: 2592000\n",
            "kafka.session_timeout_s: must be greater than zero and at most 3600 s",
            id="session-beyond-milliseconds",
        ),
        pytest.param("  linger_ms: -1\n", "kafka.linger_ms: must not be negative", id="linger"),
        pytest.param(
            "  replication_factor: 0\n",
            "kafka.replication_factor: must be at least 1",
            id="replication-factor",
        ),
    ],
)
def test_timeouts_that_cannot_work_are_refused(tmp_path: Path, kafka: str, message: str) -> None:
    assert refused(tmp_path, kafka) == message


def test_a_request_timeout_equal_to_the_rebalance_timeout_is_enough(tmp_path: Path) -> None:
    config = load(tmp_path, "  request_timeout_s: 30\n  rebalance_timeout_s: 30\n")
    assert config.request_timeout_s == config.rebalance_timeout_s == 30


def test_the_timeout_rule_also_names_values_from_the_environment() -> None:
    with pytest.raises(ConfigError, match=r"^kafka.request_timeout_s: 2 s is shorter"):
        load_config(None, environ={"GATEWAY_KAFKA__REQUEST_TIMEOUT_S": "2"})


# -- TLS ----------------------------------------------------------------------------------


def test_ssl_verifies_the_brokers_against_the_ca_file(tmp_path: Path, pki: dict[str, Path]) -> None:
    config = load(tmp_path, f"  security_protocol: SSL\n  ssl_ca_file: {pki['ca']}\n")
    options = client_options(config)
    context = options["ssl_context"]
    assert options["security_protocol"] == "SSL"
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "gateway-test"),),)]
    assert "sasl_mechanism" not in options


def test_ssl_with_a_client_certificate(tmp_path: Path, pki: dict[str, Path]) -> None:
    config = load(
        tmp_path,
        f"  security_protocol: SSL\n  ssl_ca_file: {pki['ca']}\n"
        f"  ssl_cert_file: {pki['cert']}\n  ssl_key_file: {pki['key']}\n",
    )
    assert config.ssl_cert_file == pki["cert"]
    assert isinstance(client_options(config)["ssl_context"], ssl.SSLContext)


def test_relative_tls_paths_resolve_against_the_config_folder(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    config = load(tmp_path, "  security_protocol: SSL\n  ssl_ca_file: ca.pem\n")
    assert config.ssl_ca_file == pki["ca"]


@pytest.mark.parametrize(
    ("kafka", "message"),
    [
        pytest.param(
            "  security_protocol: ssl\n",
            "kafka.security_protocol: 'ssl' is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
            id="lower-case-protocol",
        ),
        pytest.param(
            "  ssl_ca_file: {ca}\n",
            "kafka.ssl_ca_file: only used with kafka.security_protocol SSL or SASL_SSL "
            "(it is PLAINTEXT)",
            id="ca-without-ssl",
        ),
        pytest.param(
            "  security_protocol: SSL\n  ssl_cert_file: {cert}\n",
            "kafka.ssl_cert_file and kafka.ssl_key_file: give both, or neither",
            id="cert-without-key",
        ),
        pytest.param(
            "  security_protocol: SSL\n  ssl_ca_file: {missing}\n",
            "kafka.ssl_ca_file: {missing} is not a readable file",
            id="missing-ca",
        ),
        pytest.param(
            "  security_protocol: SSL\n  ssl_ca_file: {garbage}\n",
            "kafka.ssl_ca_file / ssl_cert_file / ssl_key_file: cannot be loaded",
            id="garbage-ca",
        ),
        pytest.param(
            "  security_protocol: SSL\n  ssl_cert_file: {cert}\n  ssl_key_file: {encrypted}\n",
            "kafka.ssl_ca_file / ssl_cert_file / ssl_key_file: cannot be loaded",
            id="encrypted-key-is-refused-not-prompted-for",
        ),
    ],
)
def test_tls_settings_that_cannot_work_are_refused(
    tmp_path: Path, pki: dict[str, Path], kafka: str, message: str
) -> None:
    paths = {**{k: str(v) for k, v in pki.items()}, "missing": str(tmp_path / "nope.pem")}
    assert refused(tmp_path, kafka.format(**paths)).startswith(message.format(**paths))


# -- SASL/SCRAM ---------------------------------------------------------------------------

SASL = "  security_protocol: SASL_PLAINTEXT\n  sasl_mechanism: SCRAM-SHA-256\n"


def test_scram_password_from_a_file(tmp_path: Path, pki: dict[str, Path]) -> None:
    config = load(
        tmp_path, f"{SASL}  sasl_username: node-a\n  sasl_password_file: {pki['password']}\n"
    )
    options = client_options(config, environ={})
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert options["sasl_plain_username"] == "node-a"
    assert options["sasl_plain_password"] == PASSWORD  # the file's line, newline stripped
    assert "ssl_context" not in options


def test_scram_password_from_the_environment_is_not_a_config_key(tmp_path: Path) -> None:
    environ = {SASL_PASSWORD_VARIABLE: PASSWORD}
    config = load(tmp_path, f"{SASL}  sasl_username: node-a\n", environ)
    assert client_options(config, environ=environ)["sasl_plain_password"] == PASSWORD


def test_the_password_is_never_in_the_config_object_or_the_log(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    environ = {SASL_PASSWORD_VARIABLE: PASSWORD}
    with structlog.testing.capture_logs() as logs:
        from_env = load(tmp_path, f"{SASL}  sasl_username: node-a\n", environ)
        client_options(from_env, environ=environ)
        from_file = load(
            tmp_path,
            f"{SASL}  sasl_username: node-a\n  sasl_password_file: {pki['password']}\n",
        )
        client_options(from_file, environ={})
    assert PASSWORD not in repr(from_env) + repr(from_file)
    assert PASSWORD not in repr(logs)


@pytest.mark.parametrize(
    ("kafka", "environ", "message"),
    [
        pytest.param(
            "  security_protocol: SASL_SSL\n  sasl_mechanism: PLAIN\n",
            {},
            "kafka.sasl_mechanism: 'PLAIN' is not one of SCRAM-SHA-256, SCRAM-SHA-512",
            id="plain-mechanism",
        ),
        pytest.param(
            "  security_protocol: SASL_SSL\n",
            {},
            "kafka.sasl_mechanism: '' is not one of SCRAM-SHA-256, SCRAM-SHA-512",
            id="no-mechanism",
        ),
        pytest.param(
            SASL,
            {SASL_PASSWORD_VARIABLE: PASSWORD},
            "kafka.sasl_username: SASL_PLAINTEXT needs a user name",
            id="no-username",
        ),
        pytest.param(
            f"{SASL}  sasl_username: node-a\n",
            {},
            "kafka.sasl_password_file: SASL_PLAINTEXT needs a password (this file, or the "
            "GATEWAY_KAFKA_SASL_PASSWORD variable)",
            id="no-password",
        ),
        pytest.param(
            f"{SASL}  sasl_username: node-a\n  sasl_password_file: {{password}}\n",
            {SASL_PASSWORD_VARIABLE: PASSWORD},
            "kafka.sasl_password_file: GATEWAY_KAFKA_SASL_PASSWORD is also set; give one",
            id="two-passwords",
        ),
        pytest.param(
            f"{SASL}  sasl_username: node-a\n  sasl_password_file: {{empty}}\n",
            {},
            "kafka.sasl_password_file: {empty} is empty",
            id="empty-password-file",
        ),
        pytest.param(
            f"{SASL}  sasl_username: node-a\n  sasl_password_file: {{missing}}\n",
            {},
            "kafka.sasl_password_file: cannot read {missing}",
            id="missing-password-file",
        ),
        pytest.param(
            "  sasl_username: node-a\n",
            {},
            "kafka.sasl_username: only used with kafka.security_protocol SASL_PLAINTEXT or "
            "SASL_SSL (it is PLAINTEXT)",
            id="sasl-without-sasl-protocol",
        ),
        pytest.param(
            "  security_protocol: SSL\n  sasl_mechanism: SCRAM-SHA-512\n",
            {},
            "kafka.sasl_mechanism: only used with kafka.security_protocol SASL_PLAINTEXT or "
            "SASL_SSL (it is SSL)",
            id="mechanism-with-ssl-only",
        ),
    ],
)
def test_sasl_settings_that_cannot_work_are_refused(
    tmp_path: Path, pki: dict[str, Path], kafka: str, environ: dict[str, str], message: str
) -> None:
    paths = {**{k: str(v) for k, v in pki.items()}, "missing": str(tmp_path / "nope")}
    assert refused(tmp_path, kafka.format(**paths), environ) == message.format(**paths)


def test_a_password_file_gone_after_loading_is_a_clear_error(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    config = load(
        tmp_path, f"{SASL}  sasl_username: node-a\n  sasl_password_file: {pki['password']}\n"
    )
    pki["password"].unlink()
    with pytest.raises(ConfigError, match=r"^kafka.sasl_password_file: cannot read "):
        client_options(config, environ={})


def test_a_password_variable_gone_after_loading_is_a_clear_error(tmp_path: Path) -> None:
    config = load(tmp_path, f"{SASL}  sasl_username: node-a\n", {SASL_PASSWORD_VARIABLE: "x"})
    with pytest.raises(ConfigError) as info:
        client_options(config, environ={})
    assert info.value.detail == (
        "kafka.sasl_password_file: no password (file, or GATEWAY_KAFKA_SASL_PASSWORD)"
    )
