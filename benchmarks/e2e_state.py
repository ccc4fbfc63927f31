"""The end-to-end benchmark's federation: a contract, keys, tokens and two node configs.

Built from ``gateway.demo.prepare_state`` (keys, tokens, passphrase and a node
config for minhealth, socialtreasury and acme-analytics), plus what the demo
does not have:

- a third consumer, ``metro-medical``, with keys of its own, so that a message
  can go to three recipients;
- ``bench.patient-referral``, a benchmark-local contract in a copy of
  ``contracts/``: the shipped referral schema (latest version) with that third
  consumer and ``diagnosis.note`` allowed up to 64 KiB, so that a valid
  referral can be padded to 1 KiB and 16 KiB (the shipped one caps the note at
  500 characters and allows no other member);
- a config per node for each start (:func:`node_configs`): ``node-a`` hosts
  the sender, ``node-b`` the recipients, each with its own audit log (on disk
  and shipped to the audit topic, as in production), state directory and port.

    federation = build(Path("/tmp/bench"))
    nodes = node_configs(federation, Path("/tmp/bench/run-1"), bootstrap="127.0.0.1:9092")
    nodes.configs["node-b"], nodes.urls["node-a"], federation.tokens["socialtreasury"]
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.api.auth import new_token
from gateway.crypto.keys import PrivateKeys, write_keys
from gateway.demo import CONSUMERS, CONTRACT, PRODUCER, prepare_state

ROOT = Path(__file__).resolve().parents[1]
BENCH_CONTRACT = "bench.patient-referral"
THIRD = "metro-medical"
RECIPIENTS = (*CONSUMERS, THIRD)
"""Every consumer of the bench contract; a one-recipient message goes to the first."""
NOTE_MAX = 65536


HOSTED = {"node-a": (PRODUCER,), "node-b": RECIPIENTS}
"""Node id -> the participants it hosts."""


@dataclass(frozen=True)
class Federation:
    """What every run of the nodes shares: keys, tokens and contracts."""

    root: Path
    tokens: dict[str, str]
    base: dict[str, Any]
    """The demo's node config, the starting point of each node's."""
    third_digest: str


@dataclass(frozen=True)
class Nodes:
    """One start of the two nodes: their configs and URLs."""

    configs: dict[str, Path]
    urls: dict[str, str]


def build(root: Path) -> Federation:
    """Write keys, tokens and the contracts under ``root``."""
    contracts = root / "contracts"
    shutil.copytree(ROOT / "contracts", contracts)
    _write_bench_contract(contracts)
    demo_config, tokens = prepare_state(root / "state", contracts, 0)
    base = yaml.safe_load(demo_config.read_text())
    secret = (root / "state" / "key-passphrase").read_text().strip().encode()
    write_keys(Path(base["keys_dir"]), THIRD, PrivateKeys.generate(), secret)
    token, digest = new_token()
    tokens[THIRD] = token
    return Federation(root, tokens, base, digest)


def node_configs(fed: Federation, home: Path, *, bootstrap: str) -> Nodes:
    """Configs for a fresh start of both nodes: state, audit logs and logs under ``home``."""
    # A fresh topic prefix too: a real cluster (KAFKA_BOOTSTRAP) keeps earlier topics.
    prefix = f"bench{secrets.token_hex(3)}."
    configs, urls = {}, {}
    for node_id, participants in HOSTED.items():
        port = free_port()
        settings = _node_settings(
            fed.base, home / node_id, node_id, port=port, bootstrap=bootstrap, prefix=prefix
        )
        settings["participants"] = [
            _participant(fed.base, p, fed.third_digest if p == THIRD else None)
            for p in participants
        ]
        configs[node_id] = home / f"{node_id}.yaml"
        configs[node_id].write_text(yaml.safe_dump(settings, sort_keys=False))
        urls[node_id] = f"http://127.0.0.1:{port}"
    return Nodes(configs, urls)


def _node_settings(
    base: dict[str, Any], home: Path, node_id: str, *, port: int, bootstrap: str, prefix: str
) -> dict[str, Any]:
    return {
        **base,
        "node_id": node_id,
        "prefix": prefix,
        "audit": {"dir": str(home / "audit")},
        "state_dir": str(home / "state"),
        "http": {"host": "127.0.0.1", "port": port},
        "kafka": {**base["kafka"], "bootstrap": bootstrap},
    }


def _participant(base: dict[str, Any], participant: str, digest: str | None) -> dict[str, Any]:
    if digest is not None:
        return {"id": participant, "token_sha256": [digest]}
    listed: dict[str, Any] = next(p for p in base["participants"] if p["id"] == participant)
    return listed


def _write_bench_contract(contracts: Path) -> None:
    shipped = sorted((contracts / CONTRACT).glob("*.yaml"), key=_version_key)[-1]
    document = yaml.safe_load(shipped.read_text())
    document.pop("migration", None)  # the first and only version of the bench contract
    document.update(
        id=BENCH_CONTRACT,
        version="1.0.0",
        title="Patient referral (benchmark copy)",
        description=f"{CONTRACT}@{document['version']} with a third consumer and a long note.",
        consumers=[*document["consumers"], THIRD],
    )
    document["schema"]["properties"]["diagnosis"]["properties"]["note"]["maxLength"] = NOTE_MAX
    (contracts / BENCH_CONTRACT).mkdir()
    (contracts / BENCH_CONTRACT / "1.0.0.yaml").write_text(yaml.safe_dump(document))


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in path.stem.split("."))


def referral(size: int) -> bytes:
    """A valid bench referral of exactly ``size`` bytes of compact JSON (the note padded)."""
    document = yaml.safe_load(_shipped_latest().read_text())
    example: dict[str, Any] = dict(document["examples"]["valid"][0])
    example["diagnosis"] = {**example["diagnosis"], "note": ""}
    empty = len(_compact(example))
    if size < empty:
        raise ValueError(f"a referral takes at least {empty} bytes")
    filler = "Stable angina, outpatient follow-up; exercise test booked. "
    note = (filler * (size // len(filler) + 1))[: size - empty]
    example["diagnosis"]["note"] = note
    body = _compact(example)
    if len(body) != size or len(note) > NOTE_MAX:
        raise ValueError(f"cannot pad a referral to {size} bytes")
    return body


def _shipped_latest() -> Path:
    return sorted((ROOT / "contracts" / CONTRACT).glob("*.yaml"), key=_version_key)[-1]


def _compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
