"""Shared test helpers: a small federation of participants with keys and tokens."""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.api.auth import new_token
from gateway.audit.store import records
from gateway.cloudevents import event_headers
from gateway.config import (
    AuditConfig,
    GatewayConfig,
    HttpConfig,
    KafkaConfig,
    LocalParticipant,
)
from gateway.crypto.envelope import Binding, seal
from gateway.crypto.jwk import SignKey
from gateway.crypto.keys import PrivateKeys, write_keys
from gateway.ids import new_message_id

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / "contracts"
PARTICIPANTS = ("minhealth", "socialtreasury", "acme-analytics", "metro-medical")
REFERRAL = "health.patient-referral"
SECRET = b"test passphrase, not a secret"


@dataclass
class Federation:
    """Keys for every participant in one directory, a token each, one topic prefix."""

    root: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}.")
    keys: dict[str, PrivateKeys] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path) -> Federation:
        fed = cls(root)
        # A copy: registering a contract version over HTTP writes into the directory.
        shutil.copytree(CONTRACTS, root / "contracts")
        (root / "passphrase").write_text(SECRET.decode())
        (root / "passphrase").chmod(0o600)
        for participant in PARTICIPANTS:
            fed.keys[participant] = PrivateKeys.generate()
            write_keys(root / "keys", participant, fed.keys[participant], SECRET)
            fed.tokens[participant], fed.digests[participant] = new_token()
        return fed

    def config(
        self,
        hosted: tuple[str, ...],
        *,
        node_id: str = "node-1",
        bootstrap: str = "",
        pinned: dict[str, dict[str, str]] | None = None,
        **kafka: Any,
    ) -> GatewayConfig:
        timings = {
            "session_timeout_s": 6.0,
            "heartbeat_interval_s": 1.0,
            "rebalance_timeout_s": 2.0,
            "publish_timeout_s": 5.0,
            "request_timeout_s": 5.0,
            **kafka,
        }
        return GatewayConfig(
            node_id=node_id,
            prefix=self.prefix,
            contracts_dir=self.root / "contracts",
            keys_dir=self.root / "keys",
            audit=AuditConfig(dir=self.root / f"{node_id}.audit", topic=False),
            key_passphrase_file=self.root / "passphrase",
            state_dir=self.root / f"{node_id}.state",
            participants=tuple(
                LocalParticipant(
                    id=p,
                    token_sha256=(self.digests[p],),
                    pinned_versions=(pinned or {}).get(p, {}),
                )
                for p in hosted
            ),
            kafka=KafkaConfig(bootstrap=bootstrap, **timings),
            http=HttpConfig(host="127.0.0.1", port=0, max_inbox_wait_s=10.0),
        )

    def audit(self, node_id: str) -> list[dict[str, Any]]:
        """The records of a node's audit log, oldest first."""
        return self.audit_at(self.root / f"{node_id}.audit")

    @staticmethod
    def audit_at(directory: Path) -> list[dict[str, Any]]:
        return [record for _, record in records(directory)]

    def envelope(
        self,
        *,
        sealed_for: str,
        encrypted_to: str,
        payload: bytes,
        contract: str = REFERRAL,
        version: str = "1.0.0",
        sender: str = "minhealth",
        signer: SignKey | None = None,
        issued_at: int | None = None,
        message_id: str | None = None,
    ) -> tuple[str, bytes, list[tuple[str, bytes]]]:
        """An envelope (a minhealth referral unless told) as the gateway would produce it.

        ``sealed_for`` is the recipient the signature binds; ``encrypted_to``
        whose key it is encrypted to (they differ only in forgery tests).
        """
        message_id = message_id or new_message_id()
        issued = int(time.time()) if issued_at is None else issued_at
        binding = Binding(message_id, sender, sealed_for, contract, version, issued)
        value = seal(
            payload,
            binding,
            signer=signer or self.keys[sender].signing,
            recipient_key=self.keys[encrypted_to].public().encryption[0],
        )
        headers = event_headers(
            message_id=message_id,
            sender=sender,
            recipient=sealed_for,
            contract=contract,
            dataschema="urn:x",
            time="2026-01-01T00:00:00Z",
        )
        return message_id, value, list(headers)

    def auth(self, participant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[participant]}"}


def referral(number: int = 1) -> dict[str, Any]:
    return {
        "referralId": f"REF-2026-{number:06d}",
        "issuedOn": "2026-11-02",
        "patient": {"patientId": "P0000012345", "birthDate": "1961-03-14", "sex": "female"},
        "diagnosis": {"icd10": "I25.1"},
        "urgency": "routine",
        "referredTo": {"organisationId": "cardio-center-3", "specialty": "cardiology"},
    }


def parse_metrics(text: str) -> dict[str, float]:
    """A scrape of ``/metrics`` as sample -> value, the sample as rendered (name and
    labels: ``gateway_publishes_total{contract="c",outcome="accepted"}``)."""
    samples: dict[str, float] = {}
    described: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            described.append((line[2:6], line.split(" ")[2]))
        elif line and not line.startswith("#"):
            sample, _, value = line.rpartition(" ")
            assert sample not in samples, f"{sample} appears twice in one scrape"
            samples[sample] = float(value)
    # Text format 0.0.4: one HELP and one TYPE per metric family (strict parsers refuse more).
    assert len(described) == len(set(described)), "a metric family is described twice"
    return samples


def moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What changed between two scrapes (a sample new in ``after`` moved from 0)."""
    return {
        sample: after[sample] - before.get(sample, 0)
        for sample in after
        if after[sample] != before.get(sample, 0)
    }
