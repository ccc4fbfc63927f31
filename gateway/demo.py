"""``gateway demo``: the whole exchange path, over real HTTP and a real broker.

Three demo participants get fresh keys and tokens: ``minhealth`` (agency,
producer), ``socialtreasury`` (agency, consumer) and ``acme-analytics``
(contractor, consumer). minhealth publishes referrals, one of them invalid;
both consumers pull, verify and acknowledge what they are sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from gateway.api.auth import new_token
from gateway.audit.search import Query, search
from gateway.audit.store import KEY_FILE, read_verify_keys
from gateway.audit.verify import verify
from gateway.config import GatewayConfig, load_config
from gateway.contracts import load_catalog
from gateway.crypto.keys import PrivateKeys, write_keys
from gateway.errors import ConfigError
from gateway.node import RunningNode, kafka_for, running_node

PRODUCER = "minhealth"
CONSUMERS = ("socialtreasury", "acme-analytics")
CONTRACT = "health.patient-referral"
AUDITOR = "security-team"
_RECEIVE_TIMEOUT_S = 30.0


@dataclass
class Outcome:
    published: list[dict[str, Any]] = field(default_factory=list)
    received: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    audit: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def default_contracts_dir() -> Path:
    for candidate in (Path.cwd() / "contracts", Path(__file__).resolve().parents[1] / "contracts"):
        if (candidate / CONTRACT).is_dir():
            return candidate
    raise ConfigError("cannot find the sample contracts; pass --contracts DIR")


def prepare_state(state_dir: Path, contracts_dir: Path, port: int) -> tuple[Path, dict[str, str]]:
    """Write demo keys, tokens and a node config; return the config path and tokens."""
    state_dir.mkdir(parents=True, exist_ok=True)
    # A random passphrase for the demo keys, in a 0600 file the node is pointed at; a
    # second run keeps it, so the node's audit key (and audit log) carry on.
    secret_file = state_dir / "key-passphrase"
    secret = secret_file.read_text().strip() if secret_file.exists() else ""
    if not secret:
        secret = secrets.token_urlsafe(32)
        _write_secret(secret_file, secret)
    tokens: dict[str, str] = {}
    participants = []
    for participant in (PRODUCER, *CONSUMERS):
        write_keys(state_dir / "keys", participant, PrivateKeys.generate(), secret.encode())
        token, digest = new_token()
        tokens[participant] = token
        participants.append({"id": participant, "token_sha256": [digest]})
    token, digest = new_token()
    tokens[AUDITOR] = token
    config = {
        "node_id": "demo-node",
        "contracts_dir": str(contracts_dir.resolve()),
        "keys_dir": str((state_dir / "keys").resolve()),
        "audit": {"dir": str((state_dir / "audit").resolve())},
        "key_passphrase_file": str((state_dir / "key-passphrase").resolve()),
        "state_dir": str(state_dir.resolve()),
        "participants": participants,
        "auditors": [{"id": AUDITOR, "token_sha256": [digest]}],
        "http": {"host": "127.0.0.1", "port": port},
        # Short group timings: the embedded broker waits them out on every join.
        "kafka": {"session_timeout_s": 6, "heartbeat_interval_s": 1, "rebalance_timeout_s": 2},
    }
    path = state_dir / "gateway.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    _write_secret(state_dir / "tokens.json", json.dumps(tokens, indent=2))
    return path, tokens


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")


async def run_scenario(
    node: RunningNode, contracts_dir: Path, tokens: dict[str, str], say: Callable[[str], None]
) -> Outcome:
    contract = load_catalog(contracts_dir).resolve(CONTRACT)
    outcome = Outcome()
    async with aiohttp.ClientSession(base_url=node.url) as http:
        for payload in [*contract.valid_examples, _third_referral(), contract.invalid_examples[0]]:
            outcome.published.append(await _publish(http, tokens[PRODUCER], payload, say))
        accepted = {p["message_id"] for p in outcome.published if p["status"] == 202}
        for consumer in CONSUMERS:
            got = await _receive(http, tokens[consumer], len(accepted))
            outcome.received[consumer] = got
            say(
                f"  {consumer:<16} received {len(got)} message(s): decrypted, signature "
                "verified, re-validated, acknowledged"
            )
            if set(got) != accepted:
                outcome.problems.append(f"{consumer} received {len(got)} of {len(accepted)}")
    if len(accepted) != len(outcome.published) - 1:
        outcome.problems.append("not every valid referral was accepted")
    return outcome


def _third_referral() -> dict[str, Any]:
    return {
        "referralId": "REF-2026-000199",
        "issuedOn": time.strftime("%Y-%m-%d"),
        "patient": {"patientId": "P0000099999", "birthDate": "2001-09-30", "sex": "unknown"},
        "diagnosis": {"icd10": "E11.9"},
        "urgency": "routine",
        "referredTo": {"organisationId": "endo-clinic-2", "specialty": "endocrinology"},
    }


async def _publish(
    http: aiohttp.ClientSession, token: str, payload: Any, say: Callable[[str], None]
) -> dict[str, Any]:
    async with http.post(
        f"/v1/contracts/{CONTRACT}/messages",
        json=payload,
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        body = await response.json(content_type=None)
    if response.status == 202:
        say(f"  accepted  {body['message_id']}  -> {', '.join(body['recipients'])}")
        return {"status": 202, **body}
    pointers = "; ".join(f"{e['pointer']} {e['message']}" for e in body.get("errors", []))
    say(f"  rejected  HTTP {response.status} {body['title']}: {pointers or body['detail']}")
    return {"status": response.status, "problem": body}


async def _receive(http: aiohttp.ClientSession, token: str, expected: int) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    received: list[str] = []
    deadline = time.monotonic() + _RECEIVE_TIMEOUT_S
    while len(received) < expected and time.monotonic() < deadline:
        async with http.get(
            "/v1/inbox", params={"max": "10", "wait": "2"}, headers=headers
        ) as response:
            messages = (await response.json())["messages"]
        if messages:
            async with http.post(
                "/v1/inbox/ack", headers=headers, json={"tags": [m["tag"] for m in messages]}
            ) as response:
                response.raise_for_status()
        received += [m["message_id"] for m in messages]
    return received


async def demo(
    *,
    state_dir: Path | None,
    contracts_dir: Path | None,
    serve: bool,
    port: int,
    as_json: bool,
    say: Callable[[str], None],
) -> int:
    contracts = contracts_dir or default_contracts_dir()
    with tempfile.TemporaryDirectory(prefix="gateway-demo-") as scratch:
        state = state_dir or Path(scratch)
        config_path, tokens = prepare_state(state, contracts, port)
        config = load_config(config_path)
        quiet = say if not as_json else (lambda _: None)
        with kafka_for(config) as live:
            outcome = await _run(live, contracts, tokens, quiet, serve=serve, state=state)
        _check_audit(outcome, config)
        _summary(outcome, config, quiet, kept=bool(state_dir))
    if as_json:
        say(json.dumps({"ok": outcome.ok, **asdict(outcome)}, indent=2))
    return 0 if outcome.ok else 1


async def _run(
    config: GatewayConfig,
    contracts: Path,
    tokens: dict[str, str],
    say: Callable[[str], None],
    *,
    serve: bool,
    state: Path,
) -> Outcome:
    broker = config.kafka.bootstrap
    async with running_node(config) as node:
        say(f"Gateway demo: node {node.url}, Kafka {broker}")
        await node.wait_ready(60)
        say(f"\nminhealth publishes {CONTRACT} referrals over HTTP:")
        say("")
        outcome = await run_scenario(node, contracts, tokens, say)
        if serve and outcome.ok:
            await _serve_forever(node, tokens, state, say)
    return outcome


def _check_audit(outcome: Outcome, config: GatewayConfig) -> None:
    """Verify the audit log the node left (after it stopped and signed its last head)."""
    directory = config.audit.dir
    assert directory is not None
    report = verify(directory, read_verify_keys(directory / KEY_FILE))
    first = next((p["message_id"] for p in outcome.published if p["status"] == 202), None)
    life = [r["event"] for r in search(directory, Query(message_id=first)).records] if first else []
    outcome.audit = {
        "dir": str(directory),
        "records": report.records,
        "signed_heads": report.heads,
        "verified": report.whole,
        "first_message_life": life,
    }
    if not report.ok:
        outcome.problems.append(f"audit log does not verify: {report.problems[0].message}")
    elif report.unsigned:
        outcome.problems.append(f"{report.unsigned} audit records are covered by no signed head")


def _summary(
    outcome: Outcome, config: GatewayConfig, say: Callable[[str], None], *, kept: bool
) -> None:
    accepted = sum(1 for p in outcome.published if p["status"] == 202)
    rejected = len(outcome.published) - accepted
    delivered = sum(len(v) for v in outcome.received.values())
    audit = outcome.audit
    where = f"in {audit['dir']}" if kept else "temporary; keep it with --state-dir DIR"
    verdict_audit = "verified" if audit["verified"] else "DOES NOT VERIFY"
    say(
        f"\nAudit trail: {audit['records']} records, {audit['signed_heads']} signed tree "
        f"head{'s' if audit['signed_heads'] != 1 else ''}, "
        f"{verdict_audit}; digests only ({where})"
    )
    if audit["first_message_life"]:
        say(f"  first message: {' -> '.join(audit['first_message_life'])}")
    first = next((p["message_id"] for p in outcome.published if p["status"] == 202), None)
    if kept and first:
        say(f"  gateway audit verify {audit['dir']}")
        say(f"  gateway audit search --dir {audit['dir']} --id {first}")
    verdict = "OK" if outcome.ok else "FAILED: " + "; ".join(outcome.problems)
    say(
        f"Result: {verdict} - {accepted} accepted, {rejected} rejected, "
        f"{delivered} delivered and acknowledged"
    )


async def _serve_forever(
    node: RunningNode, tokens: dict[str, str], state: Path, say: Callable[[str], None]
) -> None:
    say(f"\nServing at {node.url} (Ctrl-C stops). Tokens, also in {state / 'tokens.json'}:")
    for participant, token in tokens.items():
        say(f"  {participant:<16} {token}")
    say(
        f"\nTry:\n  curl -s -H 'Authorization: Bearer {tokens[CONSUMERS[0]]}' "
        f"'{node.url}/v1/inbox?wait=5'"
    )
    say(
        f"  curl -s -H 'Authorization: Bearer {tokens[AUDITOR]}' "
        f"'{node.url}/v1/audit?outcome=rejected'"
    )
    say(f"  open {node.url}/console/ and sign in with the {AUDITOR} token (the web console)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    say("\nStopping.")
