"""The console in a real browser: Debian's Chromium, driven by Playwright, against a node
on the real broker.

The walk a security team and a data steward take: sign in, find a message in the
audit trail and see it accepted, delivered and acknowledged; check the log; open a
contract's version diff; see a rejected publish counted on the quality page; and, as
the recipient, replay a dead letter once its cause is fixed. Every page is
screenshotted to ``artifacts/screenshots/`` (git-ignored), and any error in the
browser's console (a CSP violation, a script error, a failed request) fails the test.

Chromium is ``/usr/bin/chromium`` (``apt-get install chromium``) or ``$CHROMIUM``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Page,
    Request,
    ViewportSize,
    async_playwright,
    expect,
)

from gateway.api.keys import AUDIT
from gateway.node import RunningNode, running_node
from tests.console.conftest import AUDITOR, HOSTED, with_auditor
from tests.integration.helpers import ack, pull
from tests.support import REFERRAL, Federation, referral

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
INSTALLED = CHROMIUM.exists()
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
AXE = Axe()
WCAG = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}
LAPTOP: ViewportSize = {"width": 1366, "height": 768}
ME = "socialtreasury"
NEW_VERSION = "1.2.0"


@dataclass
class Exchange:
    node: RunningNode
    fed: Federation
    delivered: str
    """A message minhealth sent to socialtreasury, delivered and acknowledged."""
    stranded: str
    """A message under a version this node does not know yet: dead-lettered."""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not INSTALLED:
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium, or set CHROMIUM")
    async with async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def exchange(tmp_path: Path, bootstrap: str) -> AsyncIterator[Exchange]:
    """A node hosting everyone, after a day's work in miniature: one referral delivered
    and acknowledged, one refused as invalid, one dead-lettered as unknown-contract."""
    fed = Federation.create(tmp_path)
    config = with_auditor(fed, fed.config(HOSTED, bootstrap=bootstrap))
    async with running_node(config) as node, aiohttp.ClientSession() as http:
        await node.wait_ready(30)
        publish = f"{node.url}/v1/contracts/{REFERRAL}/messages"
        auth = fed.auth("minhealth")
        async with http.post(publish, params={"to": ME}, json=referral(1), headers=auth) as sent:
            assert sent.status == 202, await sent.text()
            delivered = (await sent.json())["message_id"]
        invalid = {**referral(2), "urgency": "whenever"}
        async with http.post(publish, json=invalid, headers=auth) as refused:
            assert refused.status == 422
        [message] = await pull(http, node.url, fed, ME, expect=1)
        await ack(http, node.url, fed, ME, [message["tag"]])
        stranded = await _strand(fed, bootstrap)
        await _until_dead_lettered(http, node.url, fed)
        node.app[AUDIT].sign_head()  # as the node does every audit.head_interval_s
        yield Exchange(node, fed, delivered, stranded)


async def _strand(fed: Federation, bootstrap: str) -> str:
    message_id, value, headers = fed.envelope(
        sealed_for=ME,
        encrypted_to=ME,
        payload=json.dumps(referral(3)).encode(),
        version=NEW_VERSION,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            f"{fed.prefix}inbox.{ME}", value, key=message_id.encode(), headers=headers
        )
    finally:
        await producer.stop()
    return message_id


async def _until_dead_lettered(http: aiohttp.ClientSession, url: str, fed: Federation) -> None:
    for _ in range(60):
        async with http.get(f"{url}/v1/dlq", headers=fed.auth(ME)) as listed:
            if (await listed.json())["total"]:
                return
        await asyncio.sleep(0.5)
    pytest.fail("the stranded message never reached the dead-letter topic")


@dataclass
class Tab:
    page: Page
    problems: list[str]

    async def shot(self, name: str) -> None:
        """Save a screenshot of the page, and check it with axe-core (WCAG 2.1 A and AA)."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=SHOTS / f"{name}.png", full_page=True)
        results = await AXE.run(self.page, options=WCAG)
        self.problems += [
            f"{name}: {v['id']} ({v['impact']}): {v['help']} at "
            + ", ".join(str(n["target"]) for n in v["nodes"][:3])
            for v in results.response["violations"]
        ]

    async def sign_in(self, token: str) -> None:
        await self.page.goto("/console/")
        await expect(self.page).to_have_url(_ending("/console/login?next=/console/"))
        await self.page.get_by_label("Token").fill(token)
        await self.page.get_by_role("button", name="Sign in").click()


def _ending(suffix: str) -> re.Pattern[str]:
    return re.compile(re.escape(suffix) + "$")


@pytest.fixture
async def tab(browser: Browser, exchange: Exchange) -> AsyncIterator[Tab]:
    context = await browser.new_context(viewport=LAPTOP, base_url=exchange.node.url)
    page = await context.new_page()
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def failed(request: Request) -> None:
        # A load the next navigation cut short (the icon, say) is aborted, not broken.
        if request.failure != "net::ERR_ABORTED":
            problems.append(f"request failed: {request.url} ({request.failure})")

    page.on("requestfailed", failed)
    yield Tab(page, problems)
    await context.close()
    assert problems == []


async def test_a_security_team_follows_a_message_and_checks_the_log(
    tab: Tab, exchange: Exchange
) -> None:
    page = tab.page
    await page.goto("/console/audit")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await tab.shot("01-sign-in")
    await page.get_by_label("Token").fill(exchange.fed.tokens[AUDITOR])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
    cookies = await page.context.cookies()
    assert [(c["name"], c["httpOnly"], c["secure"], c["sameSite"]) for c in cookies] == [
        ("__Host-gw_console", True, True, "Strict")
    ]
    assert exchange.fed.tokens[AUDITOR] not in cookies[0]["value"]
    assert await page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read it

    await page.get_by_label("Message id").fill(exchange.delivered)
    await page.get_by_role("button", name="Search").click()
    rows = page.locator("table.records tbody tr")
    await expect(rows).to_have_count(3)  # accepted, delivered, acknowledged
    await expect(rows.locator("td:nth-child(3)")).to_have_text(
        ["message.accepted", "message.delivered", "message.acknowledged"]
    )
    await tab.shot("02-audit-search")

    await rows.first.get_by_role("link", name=exchange.delivered).click()
    lane = page.get_by_role("row", name=ME)
    for stage in ("accepted", "delivered", "acknowledged"):
        await expect(lane.locator(f'td[data-stage="{stage}"]')).to_contain_text("✔")
    await tab.shot("03-message-life")

    await page.goto("/console/audit/integrity")
    await expect(page.get_by_role("status")).to_contain_text("Verified")
    await expect(page.locator("code.hash")).to_have_text(re.compile("^[0-9a-f]{64}$"))
    await tab.shot("04-integrity")

    await page.get_by_role("link", name="Contracts").click()
    await tab.shot("05-contracts")
    await page.get_by_role("link", name=REFERRAL).click()
    await tab.shot("06-contract")
    await page.get_by_role("link", name="View diff 1.0.0 → 1.1.0").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"{REFERRAL}: 1.0.0 → 1.1.0")
    await expect(page.get_by_role("status")).to_contain_text("Compatible under backward")
    await expect(page.locator("table.changes tbody tr").first).to_be_visible()
    await tab.shot("07-contract-diff")

    await page.get_by_role("link", name="Quality").click()
    await page.get_by_label("Contract").select_option(REFERRAL)  # the page reloads on choice
    await expect(page).to_have_url(_ending(f"contract={REFERRAL}&span=24h"))
    await expect(page.locator(".rejected-count")).to_have_text("1 rejected")
    await expect(page.locator(".accepted-count")).to_have_text("1 accepted")
    await expect(page.locator("table.pointers")).to_contain_text("/urgency")
    await tab.shot("08-quality")

    await page.get_by_role("link", name="Delivery").click()
    inbox = page.locator("section.inbox", has=page.get_by_role("heading", name=ME, exact=True))
    await expect(inbox.locator('[data-metric="dead-letters"]')).to_have_text("1")
    await expect(page.get_by_role("button", name="Replay")).to_have_count(0)  # auditors read
    await tab.shot("09-delivery-auditor")

    await page.get_by_role("link", name="Participants").click()
    await expect(page.get_by_role("row", name="minhealth")).to_contain_text("hosted here")
    await tab.shot("10-participants")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.goto("/console/audit")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


async def test_a_recipient_replays_a_dead_letter_once_its_cause_is_fixed(
    tab: Tab, exchange: Exchange
) -> None:
    page = tab.page
    await tab.sign_in(exchange.fed.tokens[ME])
    await expect(page.get_by_role("heading", name="Contracts")).to_be_visible()
    await expect(page.get_by_role("link", name="Audit trail")).to_have_count(0)

    await page.get_by_role("link", name="Delivery").click()
    letter = page.locator("table.dead-letters tbody tr")
    await expect(letter).to_have_count(1)
    await expect(letter).to_contain_text("unknown-contract")
    await expect(letter).to_contain_text(exchange.stranded)
    await tab.shot("11-delivery-dead-letter")

    await _register_new_version(exchange)  # the cause: the version was not registered yet
    asked: list[str] = []

    async def confirm(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.on("dialog", confirm)
    await letter.get_by_role("button", name=re.compile(r"^Replay \d+:\d+$")).click()
    await expect(page.get_by_role("status")).to_contain_text("Replayed 1 dead letter")
    assert asked == [f"Replay dead letter {await _position(exchange)}?"]
    await tab.shot("12-delivery-replayed")

    async with aiohttp.ClientSession() as http:
        [message] = await pull(http, exchange.node.url, exchange.fed, ME, expect=1)
    assert (message["message_id"], message["version"]) == (exchange.stranded, NEW_VERSION)
    replayed = [r for r in exchange.fed.audit("node-1") if r["event"] == "message.replayed"]
    assert [(r["message_id"], r["by"]) for r in replayed] == [(exchange.stranded, ME)]


async def test_a_participant_is_shown_a_refusal_not_the_audit_trail(
    tab: Tab, exchange: Exchange
) -> None:
    page = tab.page
    await tab.sign_in(exchange.fed.tokens["minhealth"])
    await expect(page.get_by_role("heading", name="Contracts")).to_be_visible()
    async with page.expect_console_message() as logged:
        answer = await page.goto("/console/audit")
    assert answer is not None
    assert answer.status == 403
    await expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    await expect(page.locator("main")).to_contain_text("only auditors may do this")
    # The browser logs the 403 load itself: expected here, and the only message.
    assert "status of 403" in (await logged.value).text
    assert len(tab.problems) == 1
    tab.problems.clear()
    await tab.shot("13-refused")


async def _register_new_version(exchange: Exchange) -> None:
    source = exchange.fed.root / "contracts" / REFERRAL / "1.1.0.yaml"
    document = yaml.safe_load(source.read_text())
    document = {**document, "version": NEW_VERSION}
    document.pop("migration", None)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{exchange.node.url}/v1/contracts/{REFERRAL}/versions",
            json=document,
            headers=exchange.fed.auth("minhealth"),
        ) as answer,
    ):
        assert answer.status == 201, await answer.text()


async def _position(exchange: Exchange) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{exchange.node.url}/v1/dlq", headers=exchange.fed.auth(ME)) as listed,
    ):
        first = (await listed.json())["entries"][0]
        return f"{first['partition']}:{first['offset']}"
