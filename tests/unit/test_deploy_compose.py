"""deploy/compose.yaml: valid Compose, a durable Kafka cluster, and scripts that do what it says.

The compose file is checked against the Compose Specification's JSON schema
(tests/fixtures/compose-spec.json, origin in tests/fixtures/README.md). Its init
and provisioning scripts are run here, the Kafka tools replaced by a recorder, so
the ACLs and secrets they produce are checked, not just their text.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
SCHEMA = ROOT / "tests" / "fixtures" / "compose-spec.json"
HOSTS = {"node-a": ("minhealth",), "node-b": ("socialtreasury", "acme-analytics")}
LONG_RUNNING = {"kafka-1", "kafka-2", "kafka-3", "node-a", "node-b", "prometheus"}
ONE_SHOT = {"init", "provision"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def broker_properties() -> dict[str, str]:
    """The server.properties start-broker.sh writes (its heredoc), unexpanded."""
    script = (DEPLOY / "compose" / "kafka" / "start-broker.sh").read_text(encoding="utf-8")
    body = script.split('cat > "$config" <<PROPERTIES\n', 1)[1].split("\nPROPERTIES\n", 1)[0]
    pairs = (line.split("=", 1) for line in body.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


# -- the Compose Specification ------------------------------------------------------------


def test_the_compose_file_is_valid_against_the_compose_specification(
    compose: dict[str, Any],
) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_check_catches_a_broken_compose_file(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    broken = json.loads(json.dumps(compose))
    broken["services"]["node-a"]["restart"] = ["always"]
    broken["services"]["kafka-1"]["healthcheck"]["interval"] = [15]
    broken["services"]["prometheus"]["dependson"] = ["node-a"]
    errors = {tuple(e.absolute_path): e.message for e in validator.iter_errors(broken)}
    assert errors["services", "node-a", "restart"] == "['always'] is not of type 'string'"
    assert errors["services", "kafka-1", "healthcheck", "interval"] == (
        "[15] is not of type 'string'"
    )
    assert "'dependson' was unexpected" in errors["services", "prometheus"]
    assert {path[1] for path in errors} == {"node-a", "kafka-1", "prometheus"}


# -- the Kafka cluster -------------------------------------------------------------------


def test_three_kraft_brokers_each_with_its_own_id_and_storage(compose: dict[str, Any]) -> None:
    brokers = {n: s for n, s in services(compose).items() if n.startswith("kafka-")}
    assert sorted(brokers) == ["kafka-1", "kafka-2", "kafka-3"]
    ids = {s["environment"]["KAFKA_NODE_ID"] for s in brokers.values()}
    assert ids == {"1", "2", "3"}
    data = {v for s in brokers.values() for v in s["volumes"] if v.endswith(":/var/lib/kafka/data")}
    assert len(data) == 3
    voters = broker_properties()["controller.quorum.voters"]
    assert voters == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    assert broker_properties()["process.roles"] == "broker,controller"


def test_the_brokers_replicate_three_ways_and_acknowledge_two_and_never_create_topics() -> None:
    properties = broker_properties()
    assert properties["default.replication.factor"] == "3"
    assert properties["min.insync.replicas"] == "2"
    assert properties["auto.create.topics.enable"] == "false"
    assert properties["offsets.topic.replication.factor"] == "3"
    assert properties["unclean.leader.election.enable"] == "false"


def test_the_brokers_authenticate_every_listener_and_deny_without_an_acl() -> None:
    properties = broker_properties()
    protocols = dict(p.split(":") for p in properties["listener.security.protocol.map"].split(","))
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}
    assert properties["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert properties["allow.everyone.if.no.acl.found"] == "false"
    assert properties["authorizer.class.name"].endswith("StandardAuthorizer")
    assert properties["super.users"] == "User:admin;User:controller"


def test_every_image_is_pinned_to_a_version(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        image = service["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned"


def test_long_running_services_have_healthchecks_and_one_shots_do_not_restart(
    compose: dict[str, Any],
) -> None:
    found = services(compose)
    assert set(found) == LONG_RUNNING | ONE_SHOT
    for name in LONG_RUNNING:
        check = found[name]["healthcheck"]
        assert check["test"][0] == "CMD", name
        assert check["interval"], name
        assert check["timeout"], name
        assert check["retries"] >= 3, name
    for name in ONE_SHOT:
        assert found[name]["restart"] == "no"


def test_the_nodes_healthchecks_ask_for_readiness_on_their_http_port(
    compose: dict[str, Any],
) -> None:
    for node in HOSTS:
        test = " ".join(services(compose)[node]["healthcheck"]["test"])
        assert "http://127.0.0.1:8080/readyz" in test


def test_every_dependency_exists_and_the_start_order_is_sound(compose: dict[str, Any]) -> None:
    found = services(compose)
    for name, service in found.items():
        for other, rule in service.get("depends_on", {}).items():
            assert other in found, f"{name} depends on unknown {other}"
            if rule["condition"] == "service_completed_successfully":
                assert other in ONE_SHOT, f"{name} waits for {other} to exit"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in found[other], f"{other} has no healthcheck"
    assert set(found["provision"]["depends_on"]) == {"kafka-1", "kafka-2", "kafka-3"}
    for node in HOSTS:
        assert set(found[node]["depends_on"]) == {"init", "provision"}


def test_named_volumes_networks_and_bind_mounts_exist(compose: dict[str, Any]) -> None:
    volumes, networks = set(compose["volumes"]), set(compose["networks"])
    for name, service in services(compose).items():
        assert set(service.get("networks", [])) <= networks, name
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
            else:
                assert source in volumes, f"{name}: volume {source} is not declared"


def test_prometheus_scrapes_both_nodes_on_their_http_port(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["node-a:8080", "node-b:8080"]
    shared = set(services(compose)["prometheus"]["networks"])
    for node in HOSTS:
        assert shared & set(services(compose)[node]["networks"])


# -- no committed secrets ----------------------------------------------------------------

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PASSPHRASE|KEY", re.IGNORECASE)


def test_no_secret_is_committed_under_deploy(compose: dict[str, Any]) -> None:
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8")
        assert "PRIVATE KEY-----" not in text, path
        assert not re.search(r"\bgw_[A-Za-z0-9_-]{20,}", text), f"{path}: a bearer token"
        assert not re.search(r"(?i)password\s*[:=]\s*['\"]?[A-Za-z0-9+/_-]{8,}", text), path
    for name, service in services(compose).items():
        environment = service.get("environment", {})
        assert not [k for k in environment if SECRET_NAME.search(k)], name


def test_the_node_configs_carry_only_placeholders_for_token_digests() -> None:
    for node, hosted in HOSTS.items():
        config = yaml.safe_load((DEPLOY / "compose" / f"{node}.yaml").read_text("utf-8"))
        digests = {p["id"]: p["token_sha256"] for p in config["participants"]}
        marker = {p: [f"@{p.upper().replace('-', '_')}_TOKEN_SHA256@"] for p in hosted}
        assert digests == marker


# -- the init script, run ----------------------------------------------------------------


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/compose/init.sh run on a temporary folder, as the init service runs it."""
    out = tmp_path_factory.mktemp("out")
    for broker in ("1", "2", "3"):
        (out / "kafka-data" / broker).mkdir(parents=True)
    run_init(out)
    return out


def run_init(out: Path) -> subprocess.CompletedProcess[str]:
    environ = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OUT": str(out),
        "TEMPLATES": str(DEPLOY / "compose"),
        "CONTRACTS": str(ROOT / "contracts"),
        "KAFKA_UID": str(os.getuid()),
        "GATEWAY_UID": str(os.getuid()),
    }
    result = subprocess.run(
        ["/bin/sh", str(DEPLOY / "compose" / "init.sh")],
        env=environ,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


def private_files(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.pem")}


def test_init_gives_each_node_only_its_own_participants_private_keys(initialised: Path) -> None:
    everyone = {p for hosted in HOSTS.values() for p in hosted}
    for node, hosted in HOSTS.items():
        keys = initialised / node / "keys"
        assert private_files(keys) == {f"{p}.{use}.pem" for p in hosted for use in ("sig", "enc")}
        assert {p.name for p in keys.glob("*.public.jwks.json")} == {
            f"{p}.public.jwks.json" for p in everyone
        }
        for path in keys.glob("*.pem"):
            assert path.stat().st_mode & 0o077 == 0, path


def test_init_renders_configs_that_load_and_whose_digests_match_the_tokens(
    initialised: Path, tmp_path: Path
) -> None:
    for node, hosted in HOSTS.items():
        text = (initialised / node / "config" / "gateway.yaml").read_text(encoding="utf-8")
        # The container paths, mapped onto the folders init wrote.
        text = text.replace("/run/gateway/", f"{initialised / node / 'secrets'}/")
        text = text.replace("/var/lib/gateway/keys", str(initialised / node / "keys"))
        text = text.replace("/var/lib/gateway/data", str(initialised / node / "data"))
        (tmp_path / f"{node}.yaml").write_text(text, encoding="utf-8")
        config = load_config(tmp_path / f"{node}.yaml", environ={})
        assert config.node_id == node
        assert config.kafka.sasl_username == node
        assert config.kafka.enable_idempotence is True
        assert config.kafka.replication_factor == 3
        assert config.kafka.create_topics is False
        assert (config.contracts_dir / "health.patient-referral" / "1.0.0.yaml").is_file()
        for participant in hosted:
            token = (initialised / node / "secrets" / "tokens" / f"{participant}.token").read_text()
            digest = hashlib.sha256(token.strip().encode()).hexdigest()
            local = config.local(participant)
            assert local is not None
            assert local.token_sha256 == (digest,)


def test_init_generates_distinct_secrets_and_a_kafka_cluster_id(initialised: Path) -> None:
    kafka = initialised / "kafka"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}\n", (kafka / "cluster-id").read_text())
    secrets = [
        (kafka / "admin.password").read_text(),
        (kafka / "controller.password").read_text(),
        *[(initialised / n / "secrets" / "key-passphrase").read_text() for n in HOSTS],
        *[(initialised / n / "secrets" / "kafka-password").read_text() for n in HOSTS],
    ]
    assert len(set(secrets)) == len(secrets)
    for node in HOSTS:
        assert (kafka / "users" / f"{node}.password").read_text() == (
            initialised / node / "secrets" / "kafka-password"
        ).read_text()
        assert (initialised / node / "secrets" / "key-passphrase").stat().st_mode & 0o077 == 0


def test_a_second_init_run_changes_nothing(initialised: Path) -> None:
    before = {p: p.read_bytes() for p in initialised.rglob("*") if p.is_file()}
    result = run_init(initialised)
    assert "nothing to do" in result.stdout
    assert {p: p.read_bytes() for p in initialised.rglob("*") if p.is_file()} == before


def test_init_refuses_a_template_naming_a_participant_it_does_not_host(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(DEPLOY / "compose", templates)
    node_a = templates / "node-a.yaml"
    node_a.write_text(
        node_a.read_text().replace(
            "participants:                     # the participants this node hosts\n",
            "participants:\n  - id: stranger\n    token_sha256: ['@STRANGER_TOKEN_SHA256@']\n",
        )
    )
    out = tmp_path / "out"
    (out / "kafka-data").mkdir(parents=True)
    environ = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OUT": str(out),
        "TEMPLATES": str(templates),
        "CONTRACTS": str(ROOT / "contracts"),
        "KAFKA_UID": str(os.getuid()),
        "GATEWAY_UID": str(os.getuid()),
    }
    result = subprocess.run(
        ["/bin/sh", str(templates / "init.sh")],
        env=environ,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    assert "node-a.yaml names a participant that node-a does not host" in result.stderr
    assert not (out / "kafka" / "cluster-id").exists()


# -- the provisioning script, run --------------------------------------------------------


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> list[list[str]]:
    """Every Kafka tool call provision.sh makes, recorded instead of run."""
    folder = tmp_path_factory.mktemp("provision")
    calls = folder / "calls.jsonl"
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    recorder = (
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(calls)!r}, 'a') as log:\n"
        "    log.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + '\\n')\n"
    )
    for tool in ("kafka-topics.sh", "kafka-acls.sh", "kafka-configs.sh"):
        (bin_dir / tool).write_text(recorder)
        (bin_dir / tool).chmod(0o755)
    secrets = folder / "secrets"
    (secrets / "users").mkdir(parents=True)
    (secrets / "admin.password").write_text("admin-pw\n")
    for node in HOSTS:
        (secrets / "users" / f"{node}.password").write_text(f"{node}-pw\n")
    subprocess.run(
        ["/bin/bash", str(DEPLOY / "compose" / "kafka" / "provision.sh")],
        env={"PATH": os.environ["PATH"], "KAFKA_BIN": str(bin_dir), "KAFKA_SECRETS": str(secrets)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [json.loads(line) for line in calls.read_text().splitlines()]


def option(call: list[str], name: str) -> list[str]:
    return [call[i + 1] for i, arg in enumerate(call) if arg == name]


def test_provision_creates_every_topic_replicated_three_ways_with_two_in_sync(
    provisioned: list[list[str]],
) -> None:
    creates = [c for c in provisioned if c[0] == "kafka-topics.sh"]
    topics = {option(c, "--topic")[0]: c for c in creates}
    hosted = [p for names in HOSTS.values() for p in names]
    expected = {"gw.audit", "gw.registry"}
    expected |= {f"gw.{kind}.{p}" for p in hosted for kind in ("inbox", "dlq")}
    assert set(topics) == expected
    for name, call in topics.items():
        assert "--if-not-exists" in call, name
        assert option(call, "--replication-factor") == ["3"], name
        assert "min.insync.replicas=2" in option(call, "--config"), name
    assert "cleanup.policy=compact" in option(topics["gw.registry"], "--config")


def test_provision_creates_a_scram_user_per_node_with_its_generated_password(
    provisioned: list[list[str]],
) -> None:
    users = {
        option(c, "--entity-name")[0]: option(c, "--add-config")[0]
        for c in provisioned
        if c[0] == "kafka-configs.sh"
    }
    assert users == {node: f"SCRAM-SHA-512=[password={node}-pw]" for node in HOSTS}


def grants(provisioned: list[list[str]]) -> set[tuple[str, str, str, str, str]]:
    """(principal, operation, resource type, name, pattern) for every ACL added."""
    found = set()
    for call in (c for c in provisioned if c[0] == "kafka-acls.sh" and "--add" in c):
        (principal,) = option(call, "--allow-principal")
        kind = "topic" if "--topic" in call else "group"
        (name,) = option(call, f"--{kind}")
        pattern = (option(call, "--resource-pattern-type") or ["literal"])[0]
        for operation in option(call, "--operation"):
            found.add((principal, operation, kind, name, pattern))
    return found


def test_each_inbox_is_read_only_by_the_principal_of_the_node_hosting_it(
    provisioned: list[list[str]],
) -> None:
    acl = grants(provisioned)
    reads = {
        (principal, name)
        for principal, operation, kind, name, pattern in acl
        if operation == "Read" and kind == "topic" and name.startswith("gw.inbox.")
    }
    assert reads == {(f"User:{n}", f"gw.inbox.{p}") for n, hosted in HOSTS.items() for p in hosted}
    assert not [g for g in acl if g[1] == "Read" and g[4] != "literal"]
    groups = {(g[0], g[3]) for g in acl if g[2] == "group"}
    assert groups == {(f"User:{n}", f"gw.inbox.{p}") for n, hosted in HOSTS.items() for p in hosted}


def test_every_node_may_publish_to_any_inbox_and_write_the_audit_topic(
    provisioned: list[list[str]],
) -> None:
    acl = grants(provisioned)
    for node, hosted in HOSTS.items():
        assert (f"User:{node}", "Write", "topic", "gw.inbox.", "prefixed") in acl
        assert (f"User:{node}", "Write", "topic", "gw.audit", "literal") in acl
        dlq = {g[3] for g in acl if g[0] == f"User:{node}" and g[3].startswith("gw.dlq.")}
        assert dlq == {f"gw.dlq.{p}" for p in hosted}
    assert not [g for g in acl if g[1] in {"All", "Alter", "Create", "Delete"}]


def test_provision_keeps_the_admin_password_off_the_command_line(
    provisioned: list[list[str]],
) -> None:
    assert not [c for c in provisioned if "admin-pw" in shlex.join(c)]
