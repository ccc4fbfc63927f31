"""deploy/k8s/: valid against the Kubernetes schemas, and wired the way the node needs.

kubernetes-validate ships the Kubernetes JSON schemas in its wheel, so this runs
offline. The Strimzi resources in deploy/k8s/strimzi/ need the operator's CRDs,
which no core schema describes: they are parsed and checked here by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.config import load_config
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES = "1.33.0"
CORE = sorted([*K8S.glob("*.yaml"), *(K8S / "secrets").glob("*.yaml")])


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def resources() -> dict[str, dict[str, Any]]:
    """kind/name -> the resource, over every core manifest."""
    found = {}
    for path in CORE:
        for doc in documents(path):
            found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def pod(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = resources["Deployment/gateway"]["spec"]["template"]["spec"]
    return spec


def container(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (found,) = pod(resources)["containers"]
    return dict(found)


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(K8S)))
def test_every_core_manifest_is_valid_against_the_kubernetes_schemas(path: Path) -> None:
    for doc in documents(path):
        assert kubernetes_validate.validate(doc, KUBERNETES, strict=True) == "1.33"


def test_the_validator_finds_a_misspelt_field_and_a_wrong_type() -> None:
    deployment = resources()["Deployment/gateway"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"][
        "pathh"
    ] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError, match="'pathh' was unexpected"):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)
    hpa = resources()["HorizontalPodAutoscaler/gateway"]
    hpa["spec"]["minReplicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError, match="'two' is not of type"):
        kubernetes_validate.validate(hpa, KUBERNETES, strict=True)


def test_the_expected_resources_are_all_there_in_one_namespace() -> None:
    found = resources()
    assert set(found) == {
        "Namespace/gateway",
        "ServiceAccount/gateway",
        "Service/gateway-console",
        "ConfigMap/gateway-config",
        "Deployment/gateway",
        "Service/gateway",
        "PodDisruptionBudget/gateway",
        "HorizontalPodAutoscaler/gateway",
        "Secret/gateway-keys",
        "Secret/gateway-kafka-user",
        "Secret/gateway-kafka-ca",
    }
    namespaced = [r for r in found.values() if r["kind"] != "Namespace"]
    assert {r["metadata"]["namespace"] for r in namespaced} == {"gateway"}


def test_probes_ask_the_container_port_for_readiness_and_liveness() -> None:
    found = container(resources())
    ports = {p["name"]: p["containerPort"] for p in found["ports"]}
    assert ports == {"http": 8080}
    assert found["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert found["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert found["startupProbe"]["httpGet"]["path"] == "/healthz"
    config = yaml.safe_load(resources()["ConfigMap/gateway-config"]["data"]["gateway.yaml"])
    assert config["http"]["port"] == ports["http"]
    assert config["http"]["host"] == "0.0.0.0"


def test_the_pod_runs_non_root_read_only_without_privileges() -> None:
    found = resources()
    security = pod(found)["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 10001  # the USER of deploy/Dockerfile
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    for each in [*pod(found)["initContainers"], *pod(found)["containers"]]:
        assert each["securityContext"]["allowPrivilegeEscalation"] is False, each["name"]
        assert each["securityContext"]["readOnlyRootFilesystem"] is True, each["name"]
        assert each["securityContext"]["capabilities"]["drop"] == ["ALL"], each["name"]
        assert each["resources"]["requests"], each["name"]
        assert each["resources"]["limits"], each["name"]
    assert pod(found)["automountServiceAccountToken"] is False


def test_pdb_hpa_and_service_select_the_deployment_pods() -> None:
    found = resources()
    deployment = found["Deployment/gateway"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert (
        found["PodDisruptionBudget/gateway"]["spec"]["selector"]["matchLabels"]
        == (deployment["spec"]["selector"]["matchLabels"])
    )
    assert found["Service/gateway"]["spec"]["selector"].items() <= labels.items()
    assert found["Service/gateway"]["spec"]["ports"][0]["targetPort"] == "http"
    console = found["Service/gateway-console"]["spec"]
    assert console["selector"].items() <= labels.items()
    assert console["sessionAffinity"] == "ClientIP"  # console sessions live in one pod
    config = yaml.safe_load(found["ConfigMap/gateway-config"]["data"]["gateway.yaml"])
    session_max_s = config.get("console", {}).get("session_max_s", 28_800)
    assert console["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] >= session_max_s
    target = found["HorizontalPodAutoscaler/gateway"]["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    hpa = found["HorizontalPodAutoscaler/gateway"]["spec"]
    assert found["PodDisruptionBudget/gateway"]["spec"]["minAvailable"] < hpa["minReplicas"]


def test_every_volume_is_declared_and_every_secret_and_configmap_exists() -> None:
    found = resources()
    spec = pod(found)
    volumes = {v["name"]: v for v in spec["volumes"]}
    for each in [*spec["initContainers"], *spec["containers"]]:
        assert {m["name"] for m in each["volumeMounts"]} <= set(volumes), each["name"]
    for volume in volumes.values():
        if "secret" in volume:
            assert f"Secret/{volume['secret']['secretName']}" in found
        if "configMap" in volume:
            assert f"ConfigMap/{volume['configMap']['name']}" in found


def test_the_init_container_installs_what_the_node_config_reads() -> None:
    found = resources()
    (init,) = pod(found)["initContainers"]
    script = init["command"][-1]
    config = yaml.safe_load(found["ConfigMap/gateway-config"]["data"]["gateway.yaml"])
    assert f"{config['key_passphrase_file']}" in script
    assert f"{config['kafka']['sasl_password_file']}" in script
    assert f"{config['keys_dir']}/" in script
    assert "chmod 0600" in script  # the node refuses private keys readable by others
    assert f"cp -R /opt/gateway/contracts/. {config['contracts_dir']}/" in script
    mounts = {m["mountPath"] for m in init["volumeMounts"]}
    assert {"/var/lib/gateway/keys", "/run/gateway", "/var/lib/gateway/data"} <= mounts
    keys = found["Secret/gateway-keys"]["stringData"]
    assert "key-passphrase" in keys
    assert {"minhealth.sig.pem", "minhealth.enc.pem"} <= set(keys)


def test_the_node_config_loads_with_the_files_the_pod_mounts(tmp_path: Path) -> None:
    text = resources()["ConfigMap/gateway-config"]["data"]["gateway.yaml"]
    (tmp_path / "ca.crt").write_text("placeholder\n")
    (tmp_path / "kafka-password").write_text("placeholder\n")
    text = text.replace("/run/kafka-ca/ca.crt", str(tmp_path / "ca.crt"))
    text = text.replace("/run/gateway/", f"{tmp_path}/")
    (tmp_path / "gateway.yaml").write_text(text)
    # Everything but the CA file, which here is no certificate, is accepted as written.
    with pytest.raises(ConfigError, match=r"^kafka.ssl_ca_file / ssl_cert_file / ssl_key_file"):
        load_config(tmp_path / "gateway.yaml", environ={})
    text = text.replace("  ssl_ca_file: ", "  # ssl_ca_file: ")
    (tmp_path / "gateway.yaml").write_text(text)
    config = load_config(tmp_path / "gateway.yaml", environ={"GATEWAY_NODE_ID": "gateway-abc"})
    assert config.node_id == "gateway-abc"
    assert config.kafka.security_protocol == "SASL_SSL"
    assert config.kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert config.kafka.enable_idempotence is True
    assert config.kafka.create_topics is False


def test_every_placeholder_secret_says_replace() -> None:
    for name, resource in resources().items():
        if resource["kind"] == "Secret":
            assert resource["stringData"], name
            for key, value in resource["stringData"].items():
                assert value.startswith("REPLACE: "), f"{name} {key}"
            assert "data" not in resource, name


def test_the_secrets_are_kept_out_of_a_plain_apply_of_the_folder() -> None:
    top_level = [d["kind"] for path in K8S.glob("*.yaml") for d in documents(path)]
    assert "Secret" not in top_level


def test_the_strimzi_resources_grant_the_node_only_its_participants_inbox() -> None:
    (user,) = documents(K8S / "strimzi" / "kafka-user.yaml")
    assert user["kind"] == "KafkaUser"
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    config = yaml.safe_load(resources()["ConfigMap/gateway-config"]["data"]["gateway.yaml"])
    assert user["metadata"]["name"] == config["kafka"]["sasl_username"]
    hosted = {p["id"] for p in config["participants"]}
    reads = {
        acl["resource"]["name"]
        for acl in user["spec"]["authorization"]["acls"]
        if "Read" in acl["operations"] and acl["resource"]["type"] == "topic"
    }
    assert reads == {f"gw.inbox.{p}" for p in hosted} | {f"gw.dlq.{p}" for p in hosted} | {
        "gw.registry"
    }
    read_acls = [a for a in user["spec"]["authorization"]["acls"] if "Read" in a["operations"]]
    assert {a["resource"]["patternType"] for a in read_acls} == {"literal"}
    topics = documents(K8S / "strimzi" / "kafka-topics.yaml")
    assert {t["spec"]["topicName"] for t in topics} == {
        *(f"gw.{kind}.{p}" for p in hosted for kind in ("inbox", "dlq")),
        "gw.audit",
        "gw.registry",
    }
    for topic in topics:
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["min.insync.replicas"] == 2
