"""No token, private key or payload plaintext in any log of a run that used them all.

One node logs through the gateway's own logging set-up (:mod:`gateway.logs`, JSON
lines, stdlib records of aiohttp included) into a buffer while it accepts, refuses
and delivers messages and refuses credentials in every way the hostile suite
knows; then the buffer and every file of the audit log are searched for the
bearer tokens, each form of the federation's private keys and a payload marker.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from gateway.api.auth import new_token
from gateway.logs import configure_logging
from gateway.node import running_node
from tests.fakes import MemoryTransport
from tests.hostile.conftest import HOSTED, PUBLISH
from tests.hostile.raw import Answer, exchange, request
from tests.support import SECRET, Federation, referral

MARKER = f"PLAINTEXT-{uuid.uuid4().hex}"
"""Stands for what a payload says: it must never be written to a log."""
JSON = ("Content-Type", "application/json")


@contextmanager
def logging_into(stream: io.StringIO) -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging(stream, level=logging.DEBUG)
    try:
        yield
    finally:
        structlog.reset_defaults()
        root.handlers[:], root.level = handlers, level


def marked(**changes: Any) -> dict[str, Any]:
    document = referral()
    document["diagnosis"]["note"] = MARKER
    return {**document, **changes}


def hostile_requests(fed: Federation, stranger: str) -> dict[str, bytes]:
    token = fed.tokens["minhealth"]
    auth = ("Authorization", f"Bearer {token}")

    def publish(body: bytes, *headers: tuple[str | bytes, str | bytes]) -> bytes:
        return request("POST", PUBLISH, headers=[auth, JSON, *headers], body=body)

    return {
        "accepted": publish(json.dumps(marked()).encode()),
        "malformed": publish(json.dumps(marked()).encode()[:-1]),
        "violation-value": publish(json.dumps(marked(referralId=MARKER)).encode()),
        "violation-member-name": publish(json.dumps(marked(**{MARKER: 1})).encode()),
        "duplicate-member": publish(json.dumps(marked()).encode()[:-1] + b', "urgency": "x"}'),
        "oversized": publish(b'{"a": "' + MARKER.encode() * 40_000 + b'"}'),
        "batch-item": request(
            "POST",
            f"{PUBLISH}:batch",
            headers=[auth, JSON],
            body=json.dumps({"messages": [{"payload": marked(urgency=MARKER)}]}).encode(),
        ),
        "unknown-token": request(
            "POST", PUBLISH, headers=[("Authorization", f"Bearer {stranger}"), JSON]
        ),
        "token-with-nul": request(
            "POST", PUBLISH, headers=[("Authorization", f"Bearer {token}\x00"), JSON]
        ),
        "token-beside-bad-header": publish(b"{}", ("X-Correlation-Id", b"\x00")),
        "token-beside-long-header": publish(b"{}", ("X-Pad", "a" * 9000)),
        "token-in-overlong-authorization": request(
            "GET", "/v1/inbox", headers=[("Authorization", f"Bearer {token}" + "a" * 600)]
        ),
        "auditor-only-endpoint": request("GET", "/v1/audit", headers=[auth]),
        "unknown-route": request("POST", "/v1/nothing-here", headers=[auth, JSON], body=b"{}"),
    }


def key_material(fed: Federation) -> dict[str, str]:
    """Every form a private key could be logged in: raw (hex, base64, JWK ``d``),
    unencrypted PKCS#8 PEM, the encrypted PEM files and their passphrase."""
    found = {"passphrase": SECRET.decode()}
    for participant, keys in fed.keys.items():
        for n, key in enumerate([keys.signing.key, *(k.key for k in keys.decryption)]):
            raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            name = f"{participant}.{n}"
            found[f"{name}.hex"] = raw.hex()
            found[f"{name}.base64"] = base64.b64encode(raw).decode()
            found[f"{name}.jwk-d"] = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
            found[f"{name}.pem"] = pem.decode().splitlines()[1]
    for path in sorted((fed.root / "keys").glob("*.pem")):
        found[f"file:{path.name}"] = path.read_text().splitlines()[1]
    return found


def audit_text(fed: Federation) -> str:
    return "".join(p.read_text() for p in sorted((fed.root / "node-1.audit").iterdir()))


@pytest.fixture
async def run(tmp_path: Path) -> tuple[Federation, dict[str, Answer], str, str]:
    """A run that used every secret; yields the answers, the log and the stranger's token."""
    stream = io.StringIO()
    stranger, _ = new_token()
    with logging_into(stream):
        fed = Federation.create(tmp_path)
        config = fed.config(HOSTED, bootstrap="memory")
        async with running_node(config, transport=MemoryTransport()) as node:
            await node.wait_ready(5)
            port = int(node.url.rsplit(":", 1)[1])
            answers = {
                name: await exchange(port, data)
                for name, data in hostile_requests(fed, stranger).items()
            }
            answers["pulled"] = await exchange(port, pull(fed))
            tags = [m["tag"] for m in answers["pulled"].json()["messages"]]
            answers["acked"] = await exchange(port, ack(fed, tags))
    return fed, answers, stream.getvalue(), stranger


def pull(fed: Federation) -> bytes:
    auth = ("Authorization", f"Bearer {fed.tokens['socialtreasury']}")
    return request("GET", "/v1/inbox?wait=5", headers=[auth])


def ack(fed: Federation, tags: list[str]) -> bytes:
    auth = ("Authorization", f"Bearer {fed.tokens['socialtreasury']}")
    return request(
        "POST", "/v1/inbox/ack", headers=[auth, JSON], body=json.dumps({"tags": tags}).encode()
    )


async def test_no_secret_or_payload_in_any_log(
    run: tuple[Federation, dict[str, Answer], str, str],
) -> None:
    fed, answers, log, stranger = run
    # The run did what it should: the marker travelled, and was refused in every way.
    assert answers["accepted"].status == 202
    [message] = answers["pulled"].json()["messages"]
    assert message["payload"]["diagnosis"]["note"] == MARKER
    assert answers["acked"].json()["acknowledged"] == [message["tag"]]
    answered = ("accepted", "pulled", "acked", "batch-item")
    refused = {n: a.status for n, a in answers.items() if n not in answered}
    assert all(s is not None and 400 <= s < 500 for s in refused.values()), refused
    batch = answers["batch-item"].json()["results"]
    assert [r["status"] for r in batch] == [422]
    # ... and its logs say so: they are not empty, nor is the audit log.
    audit = audit_text(fed)
    for event in ("http_unparsable", "request_refused"):
        assert event in log, f"{event} was not logged"
    for event in ("message.accepted", "message.delivered", "message.rejected", "auth.failed"):
        assert event in audit, f"{event} was not audited"
    secrets = {
        **{f"token:{p}": t for p, t in fed.tokens.items()},
        "token:stranger": stranger,
        **key_material(fed),
        "payload-marker": MARKER,
    }
    for name, secret in secrets.items():
        assert secret not in log, f"{name} is in the structured log"
        assert secret not in audit, f"{name} is in the audit log"
