"""Idempotent publish against a real broker: the key outlives the node that took it."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import read_topic
from tests.integration.helpers import audit, node
from tests.support import REFERRAL, Federation, referral

pytestmark = pytest.mark.integration

KEY = '"0b3c1d2e-7f00-4a6b-9c8d-112233445566"'


async def publish_once(
    http: aiohttp.ClientSession, url: str, fed: Federation
) -> tuple[int, dict[str, Any], str | None]:
    """Publish referral 1 under KEY: status, body and the Idempotent-Replayed header."""
    headers = {**fed.auth("minhealth"), "Idempotency-Key": KEY}
    async with http.post(
        f"{url}/v1/contracts/{REFERRAL}/messages", json=referral(1), headers=headers
    ) as response:
        body = await response.json()
        return response.status, body, response.headers.get("Idempotent-Replayed")


async def test_a_retry_after_a_restart_gets_the_original_message_id(
    fed: Federation, bootstrap: str, http: aiohttp.ClientSession
) -> None:
    async with node(fed, bootstrap, ("minhealth",), "node-a") as first:
        status, sent, replayed = await publish_once(http, first.url, fed)
    assert (status, replayed) == (202, None)
    assert (fed.root / "node-a.state" / "idempotency.sqlite3").is_file()

    # A new node process on the same state_dir; the client retries, say after a timeout.
    async with node(fed, bootstrap, ("minhealth",), "node-a") as second:
        status, again, replayed = await publish_once(http, second.url, fed)

    assert (status, replayed) == (202, "true")
    assert again == sent
    for recipient in sent["recipients"]:
        records = await read_topic(bootstrap, f"{fed.prefix}inbox.{recipient}")
        assert [headers["ce_id"] for _, headers in records] == [sent["message_id"].encode()]
    events = [e["event"] for e in audit(fed, "node-a")]
    assert events.count("message.accepted") == 1
    assert events.count("message.deduplicated") == 1
