"""load_config: defaults, YAML values, environment overrides and clear errors."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path

import pytest

from gateway.config import GatewayConfig, Limits, LocalParticipant, load_config
from gateway.errors import ConfigError

DIGEST = "ab" * 32
Getter = Callable[[GatewayConfig], object]


def write_config(folder: Path, text: str | bytes, name: str = "gateway.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def case(text: str, message: str) -> object:
    """A parametrize case identified by the message it must produce."""
    return pytest.param(text, message, id=message)


def config_error(path: Path | None, environ: dict[str, str] | None = None) -> str:
    """The message of the ConfigError that loading must raise."""
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ or {})
    assert str(info.value) == info.value.detail
    return info.value.detail


# -- defaults and file values ------------------------------------------------


def test_defaults_without_file_or_environment() -> None:
    config = load_config(None, environ={})

    assert config == GatewayConfig()
    assert config.node_id == "node-1"
    assert config.prefix == "gw."
    assert config.http.port == 8080
    assert config.http.max_json_depth == 32
    assert config.kafka.bootstrap == ""
    assert config.kafka.create_topics is True
    assert config.participants == ()
    assert config.audit.dir is None


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path, ""), environ={}) == GatewayConfig()


def test_yaml_values_are_read(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        f"""
node_id: node-a
prefix: test.
http: {{host: 0.0.0.0, port: 8443, max_inbox_wait_s: 2}}
kafka: {{bootstrap: "k1:9092,k2:9092", create_topics: false, linger_ms: 0}}
delivery: {{max_in_flight: 7}}
participants:
  - id: minhealth
    token_sha256: [{DIGEST}]
  - id: socialtreasury
""",
    )

    config = load_config(path, environ={})

    assert config.node_id == "node-a"
    assert config.prefix == "test."
    assert (config.http.host, config.http.port) == ("0.0.0.0", 8443)
    assert config.http.max_inbox_wait_s == 2.0
    assert isinstance(config.http.max_inbox_wait_s, float)
    assert config.kafka.bootstrap == "k1:9092,k2:9092"
    assert config.kafka.create_topics is False
    assert config.kafka.linger_ms == 0
    assert config.delivery.max_in_flight == 7
    assert config.participants == (
        LocalParticipant(id="minhealth", token_sha256=(DIGEST,)),
        LocalParticipant(id="socialtreasury"),
    )
    assert config.local("minhealth") == config.participants[0]
    assert config.local("nobody") is None
    assert config.inbox_topic("minhealth") == "test.inbox.minhealth"
    assert config.dlq_topic("minhealth") == "test.dlq.minhealth"


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "etc" / "gateway"
    absolute = tmp_path / "bin" / "tansu"
    path = write_config(
        folder,
        f"""
contracts_dir: contracts
keys_dir: ../keys
audit:
  dir: audit
broker_bin: {absolute}
""",
    )

    config = load_config(path, environ={})

    assert config.contracts_dir == folder / "contracts"
    assert config.keys_dir == folder / "../keys"
    assert config.audit.dir == folder / "audit"
    assert config.broker_bin == absolute


def test_relative_path_from_environment_also_resolves_against_the_config_folder(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path / "conf", "")

    config = load_config(path, environ={"GATEWAY_KEYS_DIR": "secrets/keys"})

    assert config.keys_dir == tmp_path / "conf" / "secrets" / "keys"


def test_relative_path_without_file_resolves_against_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    config = load_config(None, environ={"GATEWAY_CONTRACTS_DIR": "my-contracts"})

    assert config.contracts_dir == tmp_path / "my-contracts"


def test_null_optional_path_stays_none(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "audit:\n  dir: null\n"), environ={})

    assert config.audit.dir is None


# -- environment -------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "getter", "expected"),
    [
        ({"GATEWAY_HTTP__PORT": "9000"}, attrgetter("http.port"), 9000),
        ({"GATEWAY_NODE_ID": "node-b"}, attrgetter("node_id"), "node-b"),
        ({"GATEWAY_NODE_ID": "123"}, attrgetter("node_id"), "123"),
        ({"KAFKA_BOOTSTRAP": "k1:9092,k2:9092"}, attrgetter("kafka.bootstrap"), "k1:9092,k2:9092"),
        (
            {"KAFKA_BOOTSTRAP": "plain:9092", "GATEWAY_KAFKA__BOOTSTRAP": "prefixed:9092"},
            attrgetter("kafka.bootstrap"),
            "prefixed:9092",
        ),
        ({"GATEWAY_KAFKA__CREATE_TOPICS": "false"}, attrgetter("kafka.create_topics"), False),
        ({"GATEWAY_HTTP__MAX_INBOX_WAIT_S": "2.5"}, attrgetter("http.max_inbox_wait_s"), 2.5),
        ({"HOME": "/root", "GATEWAYX": "1", "PATH": "/bin"}, attrgetter("http.port"), 8080),
    ],
    ids=[
        "http-port",
        "node-id",
        "node-id-stays-text",
        "kafka-bootstrap",
        "gateway-variable-wins",
        "bool",
        "float",
        "unrelated-variables-ignored",
    ],
)
def test_environment_overrides(environ: dict[str, str], getter: Getter, expected: object) -> None:
    value = getter(load_config(None, environ=environ))

    assert value == expected
    assert type(value) is type(expected)


def test_environment_overrides_file_but_keeps_other_keys(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, "http: {host: 10.0.0.1, port: 8000}\nkafka: {bootstrap: 'file:9092'}\n"
    )

    config = load_config(path, environ={"GATEWAY_HTTP__PORT": "9000", "KAFKA_BOOTSTRAP": "env:1"})

    assert (config.http.host, config.http.port) == ("10.0.0.1", 9000)
    assert config.kafka.bootstrap == "env:1"


def test_empty_kafka_bootstrap_variable_is_ignored(tmp_path: Path) -> None:
    path = write_config(tmp_path, "kafka: {bootstrap: 'file:9092'}\n")

    assert load_config(path, environ={"KAFKA_BOOTSTRAP": ""}).kafka.bootstrap == "file:9092"


def test_real_environment_is_used_when_environ_is_omitted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith("GATEWAY_") or name == "KAFKA_BOOTSTRAP":
            monkeypatch.delenv(name)
    monkeypatch.setenv("GATEWAY_HTTP__PORT", "9123")

    assert load_config(None).http.port == 9123


# -- errors from the file ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        case("kafka:\n  bootstrapp: x\n", "unknown config key 'kafka.bootstrapp'"),
        case("nodeid: a\n", "unknown config key 'nodeid'"),
        case("http:\n  port: abc\n", "http.port: expected an integer, got 'abc'"),
        case("http:\n  port: true\n", "http.port: expected an integer, got True"),
        case("http:\n  port: 80.5\n", "http.port: expected an integer, got 80.5"),
        case("kafka:\n  create_topics: 'yes'\n", "kafka.create_topics: expected true or false"),
        case("kafka:\n  publish_timeout_s: soon\n", "kafka.publish_timeout_s: expected a number"),
        case("node_id: 12\n", "node_id: expected a string, got 12"),
        case("keys_dir: ''\n", "keys_dir: expected a path, got ''"),
        case("http: 5\n", "http: expected a mapping"),
        case("participants: minhealth\n", "participants: expected a list"),
        case("participants:\n  - minhealth\n", "participants[0]: expected a mapping"),
        case(
            "participants:\n  - {id: minhealth, tokens: []}\n",
            "unknown config key 'participants[0].tokens'",
        ),
        case(
            "participants:\n  - {id: minhealth, token_sha256: [12]}\n",
            "participants[0].token_sha256[0]: expected a string",
        ),
        case("participants:\n  - id: Min_Health\n", "participants: 'Min_Health' is not a valid"),
        case("participants:\n  - id: a\n", "participants: 'a' is not a valid participant id"),
        case(
            "participants:\n  - id: minhealth\n  - id: minhealth\n",
            "participants: 'minhealth' is listed twice",
        ),
        case("prefix: 'gw/'\n", "prefix: only letters, digits"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    assert message in config_error(write_config(tmp_path, text))


@pytest.mark.parametrize(
    "digest",
    ["AB" * 32, "ab" * 31, "ab" * 33, "zz" * 32, "ab" * 32 + "\n"],
    ids=["upper-case", "short", "long", "not-hex", "trailing-newline"],
)
def test_malformed_token_digest(tmp_path: Path, digest: str) -> None:
    text = f"participants:\n  - id: minhealth\n    token_sha256: [{json.dumps(digest)}]\n"

    message = config_error(write_config(tmp_path, text))

    assert message == "participants.minhealth.token_sha256: expected 64 hex digits"


@pytest.mark.parametrize(
    "key",
    [
        "http.max_body_bytes",
        "http.max_json_depth",
        "http.max_inbox_batch",
        "http.idempotency_window_s",
        "http.idempotency_max_entries",
        "http.body_read_timeout_s",
        "kafka.publish_timeout_s",
        "kafka.topic_partitions",
        "kafka.producer_batch_bytes",
        "kafka.fetch_max_wait_ms",
        "delivery.max_in_flight",
        "delivery.max_age_s",
        "delivery.replay_max_entries",
        "crypto.cek_reuse_messages",
    ],
)
@pytest.mark.parametrize("number", [0, -1])
def test_non_positive_limits(tmp_path: Path, key: str, number: int) -> None:
    section, name = key.split(".")
    path = write_config(tmp_path, f"{section}:\n  {name}: {number}\n")

    assert config_error(path) == f"{key}: must be greater than zero"


@pytest.mark.parametrize(
    "key", ["delivery.max_clock_skew_s", "crypto.cek_reuse_s", "crypto.cek_cache_size"]
)
def test_negative_bounds_are_refused_and_zero_is_allowed(tmp_path: Path, key: str) -> None:
    section, name = key.split(".")
    path = write_config(tmp_path, f"{section}:\n  {name}: -1\n")
    assert config_error(path) == f"{key}: must not be negative"
    zero = write_config(tmp_path, f"{section}:\n  {name}: 0\n")
    loaded = load_config(zero, environ={})
    assert getattr(getattr(loaded, section), name) == 0


def test_the_idempotency_window_must_be_finite(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http:\n  idempotency_window_s: .inf\n")
    assert config_error(path) == "http.idempotency_window_s: must be a finite number of seconds"


def test_the_idempotency_bounds_default_to_a_day_and_a_million_keys() -> None:
    http = load_config(None, environ={}).http
    assert (http.idempotency_window_s, http.idempotency_max_entries) == (86_400.0, 1_000_000)


def test_nan_limit_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, "kafka:\n  publish_timeout_s: .nan\n")

    assert "kafka.publish_timeout_s" in config_error(path)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http: [1, 2\n")

    message = config_error(path)

    assert message.startswith(f"config file {path} is not valid YAML")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = write_config(tmp_path, text)

    assert config_error(path) == f"config file {path} must hold a mapping at the top level"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    assert config_error(path) == f"cannot read config file {path}: No such file or directory"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert config_error(tmp_path).startswith(f"cannot read config file {tmp_path}:")


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = write_config(tmp_path, b"node_id: \xff\xfe\n")

    assert str(path) in config_error(path)


def test_non_string_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, "1: one\nfoo: bar\n")

    assert "unknown config key" in config_error(path)


# -- errors from the environment ---------------------------------------------


def test_wrong_type_from_environment_names_the_variable() -> None:
    message = config_error(None, {"GATEWAY_HTTP__PORT": "abc"})

    assert message == "GATEWAY_HTTP__PORT: http.port: expected an integer, got 'abc'"


def test_unreadable_value_from_environment_names_the_variable() -> None:
    message = config_error(None, {"GATEWAY_HTTP__PORT": "[1"})

    assert message == "GATEWAY_HTTP__PORT: cannot read value '[1'"


def test_unknown_key_from_environment() -> None:
    message = config_error(None, {"GATEWAY_HTTP__PORTT": "1"})

    assert message == "unknown config key 'http.portt'"


def test_environment_cannot_descend_into_a_non_section(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http: 5\n")

    message = config_error(path, {"GATEWAY_HTTP__PORT": "1"})

    assert message == "GATEWAY_HTTP__PORT: 'http' is not a section"


def test_a_producer_batch_past_one_request_is_refused(tmp_path: Path) -> None:
    too_big = write_config(tmp_path, "kafka:\n  producer_batch_bytes: 1048577\n")
    assert config_error(too_big) == (
        "kafka.producer_batch_bytes: at most 1048576 (one produce request, and Apache "
        "Kafka's default message.max.bytes)"
    )
    largest = write_config(tmp_path, "kafka:\n  producer_batch_bytes: 1048576\n")
    assert load_config(largest, environ={}).kafka.producer_batch_bytes == 1_048_576


def test_non_positive_limit_from_environment() -> None:
    message = config_error(None, {"GATEWAY_HTTP__MAX_BODY_BYTES": "0"})

    assert re.fullmatch(r"http\.max_body_bytes: must be greater than zero", message)


@pytest.mark.parametrize("section", ["kafka: x\n", "kafka:\n"], ids=["string", "null"])
def test_kafka_bootstrap_into_a_non_mapping_section(tmp_path: Path, section: str) -> None:
    path = write_config(tmp_path, section)

    assert "kafka" in config_error(path, {"KAFKA_BOOTSTRAP": "k:9092"})


# -- publish limits ----------------------------------------------------------


def test_limits_are_read_per_participant_with_a_node_default(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """
default_limits: {messages_per_s: 10}
participants:
  - id: minhealth
    limits: {messages_per_s: 50, burst: 100, bytes_per_day: 1073741824}
  - id: socialtreasury
""",
    )

    config = load_config(path, environ={})

    own = Limits(messages_per_s=50.0, burst=100, bytes_per_day=1_073_741_824)
    assert config.participants[0].limits == own
    assert isinstance(own.messages_per_s, float)
    assert config.participants[1].limits is None
    assert config.default_limits == Limits(messages_per_s=10.0)
    assert config.limits_of("minhealth") == own
    assert config.limits_of("socialtreasury") == Limits(messages_per_s=10.0)
    assert config.limits_of("not-hosted") == Limits(messages_per_s=10.0)


def test_no_limits_by_default() -> None:
    config = load_config(None, environ={})

    assert config.default_limits is None
    assert config.limits_of("minhealth") is None


def test_own_limits_replace_the_default_whole(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """
default_limits: {messages_per_s: 10, bytes_per_day: 1000}
participants:
  - {id: minhealth, limits: {bytes_per_day: 5000}}
  - {id: socialtreasury, limits: {}}
""",
    )

    config = load_config(path, environ={})

    assert config.limits_of("minhealth") == Limits(bytes_per_day=5000)  # no rate: not merged
    assert config.limits_of("socialtreasury") == Limits()  # explicitly unlimited


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"GATEWAY_DEFAULT_LIMITS__MESSAGES_PER_S": "50"}, Limits(messages_per_s=50.0)),
        (
            {
                "GATEWAY_DEFAULT_LIMITS__MESSAGES_PER_S": "2.5",
                "GATEWAY_DEFAULT_LIMITS__BURST": "5",
                "GATEWAY_DEFAULT_LIMITS__BYTES_PER_DAY": "1073741824",
            },
            Limits(messages_per_s=2.5, burst=5, bytes_per_day=1_073_741_824),
        ),
        ({"GATEWAY_DEFAULT_LIMITS": "{bytes_per_day: 10}"}, Limits(bytes_per_day=10)),
        ({"GATEWAY_DEFAULT_LIMITS__BYTES_PER_DAY": "null"}, Limits()),
    ],
    ids=["rate", "every-key", "whole-section", "null-is-unlimited"],
)
def test_default_limits_from_environment(environ: dict[str, str], expected: Limits) -> None:
    limits = load_config(None, environ=environ).default_limits

    assert limits == expected
    assert limits is not None
    assert type(limits.burst) is type(expected.burst)
    assert type(limits.bytes_per_day) is type(expected.bytes_per_day)


def test_environment_overrides_one_default_limit_and_keeps_the_others(tmp_path: Path) -> None:
    path = write_config(tmp_path, "default_limits: {messages_per_s: 10, burst: 20}\n")

    config = load_config(path, environ={"GATEWAY_DEFAULT_LIMITS__BURST": "40"})

    assert config.default_limits == Limits(messages_per_s=10.0, burst=40)


def test_optional_path_from_environment_stays_a_path() -> None:
    config = load_config(None, environ={"GATEWAY_AUDIT__DIR": "/var/lib/gateway/audit"})

    assert config.audit.dir == Path("/var/lib/gateway/audit")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        case(
            "default_limits: {messages_per_s: 0}\n",
            "default_limits.messages_per_s: must be a finite number greater than zero",
        ),
        case(
            "default_limits: {messages_per_s: -1.5}\n",
            "default_limits.messages_per_s: must be a finite number greater than zero",
        ),
        case(
            "default_limits: {messages_per_s: .nan}\n",
            "default_limits.messages_per_s: must be a finite number greater than zero",
        ),
        case(
            "default_limits: {messages_per_s: .inf}\n",
            "default_limits.messages_per_s: must be a finite number greater than zero",
        ),
        case(
            "default_limits: {messages_per_s: 5, burst: 0}\n",
            "default_limits.burst: must be at least 1",
        ),
        case(
            "default_limits: {burst: 10}\n",
            "default_limits.burst: needs messages_per_s (the rate it refills at)",
        ),
        case(
            "default_limits: {bytes_per_day: 0}\n",
            "default_limits.bytes_per_day: must be greater than zero",
        ),
        case(
            "participants:\n  - {id: minhealth, limits: {bytes_per_day: -1}}\n",
            "participants.minhealth.limits.bytes_per_day: must be greater than zero",
        ),
        case(
            "participants:\n  - {id: minhealth, limits: {messages_per_s: 1, burst: -3}}\n",
            "participants.minhealth.limits.burst: must be at least 1",
        ),
        case(
            "participants:\n  - {id: minhealth, limits: {messages_per_s: 1, burst: 1.5}}\n",
            "participants[0].limits.burst: expected an integer, got 1.5",
        ),
        case(
            "participants:\n  - {id: minhealth, limits: {rate: 5}}\n",
            "unknown config key 'participants[0].limits.rate'",
        ),
        case(
            "default_limits: {bytes_per_day: 1GB}\n",
            "default_limits.bytes_per_day: expected an integer, got '1GB'",
        ),
        case("default_limits: 50\n", "default_limits: expected a mapping"),
    ],
)
def test_bad_limits_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    assert config_error(write_config(tmp_path, text)) == message


def test_bad_limit_from_environment_names_the_variable() -> None:
    message = config_error(None, {"GATEWAY_DEFAULT_LIMITS__BURST": "many"})

    assert (
        message
        == "GATEWAY_DEFAULT_LIMITS__BURST: default_limits.burst: expected an integer, got 'many'"
    )


def test_out_of_range_limit_from_environment_names_the_key() -> None:
    message = config_error(None, {"GATEWAY_DEFAULT_LIMITS__MESSAGES_PER_S": "0"})

    assert message == "default_limits.messages_per_s: must be a finite number greater than zero"
