"""Versions on the wire: the envelope names the exact version, pinned consumers get upgrades."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from gateway.audit.store import records
from gateway.contracts import load_catalog
from tests.integration.conftest import read_topic
from tests.integration.helpers import ack, node, pull
from tests.support import REFERRAL, Federation, referral

pytestmark = pytest.mark.integration


async def publish_v1(http: aiohttp.ClientSession, url: str, fed: Federation) -> dict[str, Any]:
    async with http.post(
        f"{url}/v1/contracts/{REFERRAL}@1.0.0/messages",
        json=referral(),
        headers=fed.auth("minhealth"),
    ) as response:
        assert response.status == 202
        body: dict[str, Any] = await response.json()
        return body


async def test_a_pinned_consumer_gets_older_messages_upgraded(
    fed: Federation, bootstrap: str, http: aiohttp.ClientSession
) -> None:
    pinned = {"socialtreasury": {REFERRAL: "1.1.0"}}
    async with node(fed, bootstrap, ("minhealth",), "node-a") as a:
        sent = await publish_v1(http, a.url, fed)
    assert sent["contract"] == f"{REFERRAL}@1.0.0"
    config = fed.config(
        ("socialtreasury", "acme-analytics"), node_id="node-b", bootstrap=bootstrap, pinned=pinned
    )
    async with node(
        fed, bootstrap, ("socialtreasury", "acme-analytics"), "node-b", config=config
    ) as b:
        [upgraded] = await pull(http, b.url, fed, "socialtreasury", expect=1)
        [original] = await pull(http, b.url, fed, "acme-analytics", expect=1)
        await ack(http, b.url, fed, "socialtreasury", [upgraded["tag"]])
    assert (upgraded["version"], upgraded["migrated_from"]) == ("1.1.0", "1.0.0")
    assert upgraded["payload"]["referralChannel"] == "electronic"
    load_catalog(fed.root / "contracts").resolve(f"{REFERRAL}@1.1.0").validate(upgraded["payload"])
    assert (original["version"], original["migrated_from"]) == ("1.0.0", None)
    assert "referralChannel" not in original["payload"]
    assert {k: v for k, v in upgraded["payload"].items() if k != "referralChannel"} == original[
        "payload"
    ]
    # The record itself names the exact version it was published under.
    [(_, headers)] = await read_topic(bootstrap, f"{fed.prefix}inbox.socialtreasury")
    assert headers["ce_dataschema"] == f"urn:gateway:contract:{REFERRAL}@1.0.0".encode()
    audit = [record for _, record in records(fed.root / "node-b.audit")]
    delivered = [
        e for e in audit if e["event"] == "message.delivered" and e["recipient"] == "socialtreasury"
    ]
    assert delivered[0]["migrated_from"] == "1.0.0"
