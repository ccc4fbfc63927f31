"""Dead letters on a real broker: refused on arrival, listed and replayed with the CLI,
delivered once the cause is fixed, refused again when it is not."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from structlog.testing import capture_logs

from gateway.cli import main
from gateway.crypto.jwk import SignKey
from gateway.crypto.keys import PrivateKeys
from tests.integration.conftest import read_topic
from tests.integration.helpers import audit, node, pull
from tests.support import REFERRAL, Federation, referral

pytestmark = pytest.mark.integration

ME = "socialtreasury"
VERSION = "1.2.0"


async def refuse(fed: Federation, producer: AIOKafkaProducer, number: int, *, forged: bool) -> str:
    """Put a referral under the unregistered VERSION (or a forged one) into the inbox."""
    signer = None
    if forged:
        signer = SignKey(fed.keys["minhealth"].signing.kid, PrivateKeys.generate().signing.key)
    message_id, value, headers = fed.envelope(
        sealed_for=ME,
        encrypted_to=ME,
        payload=json.dumps(referral(number)).encode(),
        version=VERSION,
        signer=signer,
    )
    await producer.send_and_wait(
        f"{fed.prefix}inbox.{ME}", value, key=message_id.encode(), headers=headers
    )
    return message_id


async def listed(url: str, token: Path, capsys: pytest.CaptureFixture[str], total: int) -> Any:
    """The CLI's listing, once it holds ``total`` entries."""
    deadline = time.monotonic() + 20
    while True:
        capsys.readouterr()
        with capture_logs():
            args = ["dlq", "list", "--node", url, "--token-file", str(token), "--json"]
            assert await asyncio.to_thread(main, args) == 0
        page = json.loads(capsys.readouterr().out)
        if page["total"] >= total or time.monotonic() > deadline:
            return page
        await asyncio.sleep(0.5)


async def test_list_and_replay_end_to_end(
    fed: Federation,
    bootstrap: str,
    http: aiohttp.ClientSession,
    producer: AIOKafkaProducer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = tmp_path / "token"
    token.write_text(fed.tokens[ME])
    async with node(fed, bootstrap, ("minhealth", ME), "node-b") as b:
        fixable = await refuse(fed, producer, 1, forged=False)
        forged = await refuse(fed, producer, 2, forged=True)

        page = await listed(b.url, token, capsys, total=2)
        reasons = {e["message_id"]: e["reason"] for e in page["entries"]}
        assert reasons == {fixable: "unknown-contract", forged: "signature-invalid"}

        await register(http, b.url, fed)
        capsys.readouterr()
        with capture_logs():
            args = ["dlq", "replay", "--all", "--node", b.url, "--token-file", str(token)]
            assert await asyncio.to_thread(main, args) == 0
        summary = capsys.readouterr().out.splitlines()
        assert len([line for line in summary if line.startswith("replayed ")]) == 2

        delivered = await pull(http, b.url, fed, ME, expect=1)
        assert [(m["message_id"], m["version"]) for m in delivered] == [(fixable, VERSION)]
        page = await listed(b.url, token, capsys, total=3)

    entries = page["entries"]
    assert sorted((e["message_id"], e["replays"]) for e in entries) == sorted(
        [(fixable, 1), (forged, 1), (forged, 0)]
    )
    [again] = [e for e in entries if e["replayed_from"]]
    first = next(e for e in entries if e["message_id"] == forged and not e["replayed_from"])
    dlq = f"{fed.prefix}dlq.{ME}"
    assert again["replayed_from"] == f"{dlq}/{first['partition']}/{first['offset']}"
    assert again["reason"] == "signature-invalid"
    # The copies in the inbox carry the original record and where it came from.
    copies = [h for _, h in await read_topic(bootstrap, f"{fed.prefix}inbox.{ME}")]
    assert sorted(h["ce_id"].decode() for h in copies if "gw_replayed_from" in h) == sorted(
        [fixable, forged]
    )
    assert not any("gw_reason" in h for h in copies)
    replayed = [e for e in audit(fed, "node-b") if e["event"] == "message.replayed"]
    assert sorted((e["message_id"], e["by"]) for e in replayed) == sorted(
        [(fixable, ME), (forged, ME)]
    )


async def register(http: aiohttp.ClientSession, url: str, fed: Federation) -> None:
    document = yaml.safe_load((fed.root / "contracts" / REFERRAL / "1.1.0.yaml").read_text())
    document["version"] = VERSION
    document.pop("migration")
    async with http.post(
        f"{url}/v1/contracts/{REFERRAL}/versions", json=document, headers=fed.auth("minhealth")
    ) as response:
        assert response.status == 201, await response.text()
