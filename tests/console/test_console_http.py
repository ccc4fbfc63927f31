"""The console over plain HTTP: sign-in, cookies, CSRF, roles, headers, and each page.

The browser tests (test_browser.py) walk the same pages in Chromium; these pin
the security properties exactly, and the failure paths, without a browser.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from yarl import URL

from gateway.api.keys import AUDIT, CONFIG
from gateway.config import ConsoleConfig
from gateway.console.app import CSP
from gateway.crypto.jwk import SignKey, Suite
from gateway.node import running_node
from gateway.participants.registry import Status
from tests.api.conftest import Gateway
from tests.api.dead_letters import refused, settle
from tests.api.test_registry_api import World, make_world
from tests.console.conftest import AUDITOR, COOKIE, HOSTED, Console, with_auditor
from tests.fakes import MemoryTransport
from tests.support import Federation, referral

REFERRAL = "health.patient-referral"
PUBLISH = f"/v1/contracts/{REFERRAL}/messages"


def events(console: Console, name: str) -> list[dict[str, object]]:
    return [r for r in console.fed.audit("node-1") if r["event"] == name]


async def test_the_console_answers_at_its_bare_name_and_in_html_for_unknown_pages(
    console: Console,
) -> None:
    async with console.client() as http:
        async with http.get("/console", allow_redirects=False) as bare:
            assert bare.status == 303
            assert bare.headers["Location"] == "/console/"
        async with http.get("/console/no-such-page") as missing:
            assert missing.status == 404
            assert missing.content_type == "text/html"
            assert missing.headers["Content-Security-Policy"] == CSP


async def test_pages_send_the_unauthenticated_to_sign_in(console: Console) -> None:
    async with (
        console.client() as http,
        http.get("/console/audit?event=message.accepted", allow_redirects=False) as page,
    ):
        assert page.status == 303
        where = URL(page.headers["Location"])
        assert where.path == "/console/login"
        assert where.query["next"] == "/console/audit?event=message.accepted"
        assert page.headers["Content-Security-Policy"] == CSP


async def test_signing_in_sets_a_strict_cookie_that_is_not_the_token(console: Console) -> None:
    token = console.fed.tokens[AUDITOR]
    async with (
        console.client() as http,
        http.post(
            "/console/login",
            data={"token": token, "next": "/console/audit"},
            headers=console.origin,
            allow_redirects=False,
        ) as answer,
    ):
        assert answer.status == 303
        assert answer.headers["Location"] == "/console/audit"
        [set_cookie] = answer.headers.getall("Set-Cookie")
        attributes = [a.strip().lower() for a in set_cookie.split(";")]
        assert attributes[0].startswith(COOKIE.lower() + "=")
        assert {"httponly", "secure", "samesite=strict", "path=/"} <= set(attributes)
        assert not any(a.startswith("domain") for a in attributes)
        assert token not in set_cookie
        assert token[3:20] not in json.dumps(console.fed.audit("node-1"))
    [signed_in] = events(console, "console.signed_in")
    assert (signed_in["principal"], signed_in["role"]) == (AUDITOR, "auditor")


async def test_a_wrong_token_gets_the_form_again_and_an_audit_record(console: Console) -> None:
    async with (
        console.client() as http,
        http.post(
            "/console/login",
            data={"token": "gw_not-a-real-token", "next": "/console/audit"},
            headers=console.origin,
            allow_redirects=False,
        ) as answer,
    ):
        assert answer.status == 401
        assert "Set-Cookie" not in answer.headers
        page = await answer.text()
        assert "the token is not valid" in page
        assert 'name="next" value="/console/audit"' in page
        assert "gw_not-a-real-token" not in page
    [failed] = events(console, "auth.failed")
    assert failed["reason"] == "unknown-token"
    assert failed["path"] == "/console/login"
    assert not events(console, "console.signed_in")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ],
    ids=["no-origin", "other-origin", "opaque-origin"],
)
async def test_a_form_from_elsewhere_is_refused(console: Console, headers: dict[str, str]) -> None:
    async with (
        console.client() as http,
        http.post(
            "/console/login",
            data={"token": console.fed.tokens[AUDITOR]},
            headers=headers,
            allow_redirects=False,
        ) as answer,
    ):
        assert answer.status == 403
        assert "Set-Cookie" not in answer.headers
        assert "not sent from this console" in await answer.text()


async def test_a_cross_site_fetch_is_refused_even_with_a_matching_origin(console: Console) -> None:
    async with (
        console.client() as http,
        http.post(
            "/console/login",
            data={"token": console.fed.tokens[AUDITOR]},
            headers={**console.origin, "Sec-Fetch-Site": "cross-site"},
            allow_redirects=False,
        ) as answer,
    ):
        assert answer.status == 403


async def test_signing_out_needs_the_csrf_token_and_ends_the_session(console: Console) -> None:
    async with console.client() as http:
        csrf = await console.sign_in(http, AUDITOR)
        async with http.post(
            "/console/logout", data={"csrf": "wrong"}, headers=console.origin
        ) as refused:
            assert refused.status == 403
        async with http.get("/console/audit", allow_redirects=False) as still:
            assert still.status == 200  # the forged sign-out did nothing
        async with http.post(
            "/console/logout", data={"csrf": csrf}, headers=console.origin, allow_redirects=False
        ) as answer:
            assert answer.status == 303
            assert answer.headers["Location"] == "/console/login"
        async with http.get("/console/audit", allow_redirects=False) as after:
            assert after.status == 303
    [out] = events(console, "console.signed_out")
    assert out["why"] == "signed-out"


async def test_an_old_cookie_is_dead_after_sign_out(console: Console) -> None:
    async def status_with(cookie: str) -> int:
        async with (
            aiohttp.ClientSession(base_url=console.node.url) as replayer,
            replayer.get(
                "/console/audit", headers={"Cookie": f"{COOKIE}={cookie}"}, allow_redirects=False
            ) as page,
        ):
            return page.status

    async with console.client() as http:
        csrf = await console.sign_in(http, AUDITOR)
        cookie = next(c.value for c in http.cookie_jar if c.key == COOKIE)
        assert await status_with(cookie) == 200  # the cookie alone opens the session
        async with http.post(
            "/console/logout", data={"csrf": csrf}, headers=console.origin, allow_redirects=False
        ) as out:
            assert out.status == 303
    assert await status_with(cookie) == 303


async def test_a_withdrawn_token_ends_its_sessions(console: Console) -> None:
    async with console.client() as http:
        await console.sign_in(http, AUDITOR)
        config = console.node.app[CONFIG]
        console.node.reload_credentials(dataclasses.replace(config, auditors=()))
        async with http.get("/console/audit", allow_redirects=False) as page:
            assert page.status == 303
    [out] = events(console, "console.signed_out")
    assert out["why"] == "token-withdrawn"


async def test_every_page_carries_the_security_headers(console: Console) -> None:
    async with console.client() as http:
        await console.sign_in(http, AUDITOR)
        for path in (
            "/console/login",
            "/console/audit",
            "/console/audit/integrity",
            "/console/contracts",
            f"/console/contracts/{REFERRAL}",
            f"/console/contracts/{REFERRAL}/diff",
            "/console/quality",
            "/console/delivery",
            "/console/participants",
            "/console/contracts/no.such",
        ):
            async with http.get(path, allow_redirects=False) as page:
                assert page.status in (200, 303, 404), path
                assert page.headers["Content-Security-Policy"] == CSP, path
                assert page.headers["X-Content-Type-Options"] == "nosniff"
                assert page.headers["X-Frame-Options"] == "DENY"
                assert page.headers["Referrer-Policy"] == "same-origin"
                assert page.headers["Cache-Control"] == "no-store"
                html = await page.text()
                assert "<script>" not in html, path  # the CSP allows no inline script
                assert " onclick=" not in html, path
                assert " style=" not in html, path  # the CSP allows no inline style


async def test_a_participant_is_refused_the_audit_pages(console: Console) -> None:
    async with console.client() as http:
        await console.sign_in(http, "socialtreasury")
        for path in ("/console/audit", "/console/audit/integrity", "/console/messages/x"):
            async with http.get(path) as page:
                assert page.status == 403, path
                assert "only auditors may do this" in await page.text()
        async with http.get("/console/contracts") as page:
            html = await page.text()
            assert 'href="/console/audit"' not in html  # not offered in the navigation
    denied = events(console, "access.denied")
    assert [d["principal"] for d in denied] == ["socialtreasury"] * 3
    assert {d["reason"] for d in denied} == {"requires-auditor"}


async def test_audit_search_filters_and_records_the_search(console: Console) -> None:
    async with console.client() as http:
        async with http.post(
            PUBLISH, json=referral(), headers=console.fed.auth("minhealth")
        ) as published:
            message_id = (await published.json())["message_id"]
        await console.sign_in(http, AUDITOR)
        params = {"message_id": message_id, "participant": "", "event": "message.accepted"}
        async with http.get("/console/audit", params=params) as page:
            assert page.status == 200
            html = await page.text()
        assert html.count(f'href="/console/messages/{message_id}"') == 1
        assert "1 record, oldest first" in html
        async with http.get("/console/audit", params={"colour": "blue"}) as bad:
            assert bad.status == 400
            assert "unknown parameter" in await bad.text()
        async with http.get("/console/audit", params={"since": "yesterday"}) as bad:
            assert bad.status == 400
    searched = events(console, "audit.searched")
    assert searched[0]["filters"] == {"message_id": message_id, "event": "message.accepted"}
    assert searched[0]["count"] == 1


async def test_a_message_page_shows_each_recipients_life(console: Console) -> None:
    async with console.client() as http:
        async with http.post(
            PUBLISH,
            params={"to": "socialtreasury"},
            json=referral(),
            headers=console.fed.auth("minhealth"),
        ) as published:
            message_id = (await published.json())["message_id"]
        auth = console.fed.auth("socialtreasury")
        async with http.get("/v1/inbox", params={"wait": "5"}, headers=auth) as pulled:
            [message] = (await pulled.json())["messages"]
        await console.sign_in(http, AUDITOR)
        async with http.get(f"/console/messages/{message_id}") as page:
            html = await page.text()
        assert 'data-stage="delivered"' in html
        assert html.count('class="stage reached"') == 2  # accepted, delivered
        assert html.count('class="stage pending"') == 1  # not acknowledged yet
        async with http.post(
            "/v1/inbox/ack", json={"tags": [message["tag"]]}, headers=auth
        ) as acked:
            assert acked.status == 200
        async with http.get(f"/console/messages/{message_id}") as page:
            html = await page.text()
        assert html.count('class="stage reached"') == 3
        async with http.get(f"/console/messages/{message_id}") as page:
            assert "in the audit log of the node hosting" not in await page.text()
        async with http.get("/console/messages/no-such-message") as page:
            assert page.status == 200
            assert "holds no record of that message" in await page.text()


async def test_integrity_page_verifies_the_log_and_shows_the_newest_head(console: Console) -> None:
    console.node.app[AUDIT].sign_head()
    async with console.client() as http:
        await console.sign_in(http, AUDITOR)
        async with http.get("/console/audit/integrity") as page:
            html = await page.text()
    assert "Verified: every record is chained" in html
    assert "Latest signed tree head" in html
    assert "Merkle root" in html


async def test_integrity_page_names_a_tampered_record(console: Console) -> None:
    async with console.client() as http:
        await console.sign_in(http, AUDITOR)
        console.node.app[AUDIT].sign_head()
        directory = console.fed.root / "node-1.audit"
        [segment] = sorted(directory.glob("segment-*.jsonl"))[:1]
        text = segment.read_text()
        assert '"outcome": "signed-in"' in text
        segment.write_text(text.replace('"outcome": "signed-in"', '"outcome": "signed-on"', 1))
        async with http.get("/console/audit/integrity") as page:
            html = await page.text()
    assert "TAMPERED" in html


async def test_quality_counts_accepted_and_rejected_publishes(console: Console) -> None:
    async with console.client() as http:
        auth = console.fed.auth("minhealth")
        for number in (1, 2):
            async with http.post(PUBLISH, json=referral(number), headers=auth) as answer:
                assert answer.status == 202
        bad = {**referral(3), "urgency": "whenever"}
        async with http.post(PUBLISH, json=bad, headers=auth) as answer:
            assert answer.status == 422
        await console.sign_in(http, AUDITOR)
        async with http.get("/console/quality", params={"contract": REFERRAL}) as page:
            html = await page.text()
        assert 'class="accepted-count" data-count="2"' in html
        assert 'class="rejected-count" data-count="1"' in html
        assert "<code>/urgency</code>" in html
        assert "<svg" in html
        assert 'class="rejected"' in html
        async with http.get("/console/quality", params={"span": "1y"}) as page:
            assert page.status == 400
        async with http.get("/console/quality", params={"contract": "no.such"}) as page:
            assert page.status == 404


async def test_a_participant_sees_the_quality_of_what_it_published_only(console: Console) -> None:
    async with console.client() as http:
        async with http.post(
            PUBLISH, json=referral(), headers=console.fed.auth("minhealth")
        ) as answer:
            assert answer.status == 202
        await console.sign_in(http, "socialtreasury")
        async with http.get("/console/quality") as page:
            html = await page.text()
        assert 'class="accepted-count" data-count="0"' in html
        assert "what you published" in html


async def test_delivery_shows_a_participant_its_own_inbox_and_an_auditor_all(
    console: Console,
) -> None:
    async with console.client() as http:
        await console.sign_in(http, "socialtreasury")
        async with http.get("/console/delivery") as page:
            html = await page.text()
        assert html.count('<section class="inbox"') == 1
        assert ">socialtreasury</h2>" in html
    async with console.client() as http:
        await console.sign_in(http, AUDITOR)
        async with http.get("/console/delivery") as page:
            html = await page.text()
        assert html.count('<section class="inbox"') == len(HOSTED)
        assert "/console/delivery/replay" not in html  # auditors read, they never replay


async def test_replay_is_refused_to_auditors_without_csrf_and_for_bad_positions(
    console: Console,
) -> None:
    async with console.client() as http:
        csrf = await console.sign_in(http, AUDITOR)
        async with http.post(
            "/console/delivery/replay",
            data={"csrf": csrf, "position": "0:0"},
            headers=console.origin,
        ) as answer:
            assert answer.status == 403
            assert "only participants may do this" in await answer.text()
    async with console.client() as http:
        csrf = await console.sign_in(http, "socialtreasury")
        async with http.post(
            "/console/delivery/replay", data={"position": "0:0"}, headers=console.origin
        ) as answer:
            assert answer.status == 403
            assert "reload the page" in await answer.text()
        async with http.post(
            "/console/delivery/replay",
            data={"csrf": csrf, "position": "zero"},
            headers=console.origin,
        ) as answer:
            assert answer.status == 400
        async with http.post(
            "/console/delivery/replay",
            data=b'{"csrf": "x"}',
            headers={**console.origin, "Content-Type": "application/json"},
        ) as answer:
            assert answer.status == 400
    assert not events(console, "message.replayed")


async def test_contract_pages_and_the_version_diff(console: Console) -> None:
    async with console.client() as http:
        await console.sign_in(http, "minhealth")
        async with http.get("/console/contracts") as page:
            html = await page.text()
        assert f'href="/console/contracts/{REFERRAL}"' in html
        async with http.get(f"/console/contracts/{REFERRAL}") as page:
            html = await page.text()
        assert "1.0.0 → 1.1.0" in html
        assert "compatible (backward)" in html
        async with http.get(
            f"/console/contracts/{REFERRAL}/diff", params={"from": "1.0.0", "to": "1.1.0"}
        ) as page:
            html = await page.text()
        assert "Compatible under backward" in html
        assert '<span class="add">+' in html
        async with http.get(
            f"/console/contracts/{REFERRAL}/diff", params={"from": "9.9.9"}
        ) as page:
            assert page.status == 400
            assert "has no version 9.9.9" in await page.text()
        async with http.get("/console/contracts/no.such/diff") as page:
            assert page.status == 404


async def test_participants_lists_keys_with_their_state(console: Console) -> None:
    async with console.client() as http:
        await console.sign_in(http, AUDITOR)
        async with http.get("/console/participants") as page:
            html = await page.text()
    for participant in HOSTED:
        assert f'{participant} <span class="tag">hosted here</span>' in html
    kid = console.fed.keys["minhealth"].public().signing[0].kid
    assert f"<code>{kid}</code> sign" in html
    assert "without a signed registry" in html


async def test_static_files_are_served_with_etags_and_nothing_else_is(console: Console) -> None:
    async with console.client() as http:
        async with http.get("/console/static/console.css") as css:
            assert css.status == 200
            assert css.content_type == "text/css"
            etag = css.headers["ETag"]
        async with http.get(
            "/console/static/console.css", headers={"If-None-Match": etag}
        ) as again:
            assert again.status == 304
        for name in ("nothing.css", "..%2Fapp.py", "%2E%2E/templates/base.html"):
            async with http.get(f"/console/static/{name}") as missing:
                assert missing.status == 404, name


async def test_a_node_can_run_without_the_console(tmp_path: Path) -> None:
    fed = Federation.create(tmp_path)
    config = with_auditor(
        fed, fed.config(HOSTED, bootstrap="memory"), console=ConsoleConfig(enabled=False)
    )
    async with running_node(config, transport=MemoryTransport()) as node:
        await node.wait_ready(5)
        async with (
            aiohttp.ClientSession(base_url=node.url) as http,
            http.get("/console/login") as page,
        ):
            assert page.status == 404


async def suspend(world: World, participant: str) -> None:
    """Suspend ``participant`` in the registry and wait until the node enforces it."""
    world.put(participant, serial=2, status=Status.SUSPENDED)

    async def suspended() -> bool:
        return await world.pull_status(participant) == 403

    await world.until(suspended)


async def test_participants_from_the_registry_show_status_sponsor_and_key_expiry(
    tmp_path: Path,
) -> None:
    async with make_world(tmp_path) as world:
        retired = dataclasses.replace(
            SignKey.generate(Suite.ED25519).verify_key(), valid_until=1_700_000_000
        )
        document = world.document("minhealth")
        document["keys"]["keys"].append(retired.to_jwk())
        world.put("minhealth", serial=2, document=document)
        await suspend(world, "acme-analytics")
        console = Console(world.node, world.fed, MemoryTransport())
        async with console.client() as http:
            await console.sign_in(http, "socialtreasury")
            async with http.get("/console/participants") as page:
                html = await page.text()
    rows = dict(re.findall(r'<tr data-participant="([^"]+)">(.*?)</tr>', html, re.DOTALL))
    assert "status-suspended" in rows["acme-analytics"]
    assert "<td>contractor</td><td>minhealth</td>" in rows["acme-analytics"]
    assert "status-active" in rows["minhealth"]
    assert (
        f"<code>{retired.kid}</code> sign EdDSA — expired, until 2023-11-14 22:13 UTC"
        in (rows["minhealth"])
    )
    assert "without a signed registry" not in html


async def test_a_suspended_participant_may_look_but_not_replay(tmp_path: Path) -> None:
    async with make_world(tmp_path) as world:
        await suspend(world, "acme-analytics")
        console = Console(world.node, world.fed, MemoryTransport())
        async with console.client() as http:
            csrf = await console.sign_in(http, "acme-analytics")
            async with http.post(
                "/console/delivery/replay", data={"csrf": csrf, "all": "1"}, headers=console.origin
            ) as answer:
                assert answer.status == 403
                assert "not an active participant" in await answer.text()
        assert not world.events("message.replayed")


async def test_what_callers_put_in_audit_records_is_shown_escaped(console: Console) -> None:
    hostile = "<script>alert(1)</script>"
    async with console.client() as http:
        async with http.post(
            f"/v1/contracts/{quote(hostile, safe='')}/messages",
            json=referral(),
            headers=console.fed.auth("minhealth"),
        ) as refused:
            assert refused.status == 404
        assert any(hostile in json.dumps(r) for r in console.fed.audit("node-1"))
        await console.sign_in(http, AUDITOR)
        async with http.get("/console/audit", params={"participant": "minhealth"}) as page:
            html = await page.text()
    assert hostile not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_a_recipient_on_another_node_is_said_to_be_recorded_there(tmp_path: Path) -> None:
    fed = Federation.create(tmp_path)
    config = with_auditor(fed, fed.config(("minhealth",), bootstrap="memory"))
    async with running_node(config, transport=MemoryTransport()) as node:
        await node.wait_ready(5)
        console = Console(node, fed, MemoryTransport())
        async with console.client() as http:
            async with http.post(
                PUBLISH,
                params={"to": "socialtreasury"},
                json=referral(),
                headers=fed.auth("minhealth"),
            ) as published:
                message_id = (await published.json())["message_id"]
            await console.sign_in(http, AUDITOR)
            async with http.get(f"/console/messages/{message_id}") as page:
                html = await page.text()
    assert html.count('class="stage reached"') == 1  # accepted, here
    assert html.count("in the audit log of the node hosting socialtreasury") == 2


async def test_dead_letters_are_paged_per_inbox(console: Console) -> None:
    async with console.client() as http:
        gw = Gateway(console.node, http, console.fed, console.transport)
        for number in range(55):
            refused(gw, number=number)
        await settle(gw, 55)
        await console.sign_in(http, "socialtreasury")
        async with http.get("/console/delivery") as page:
            html = await page.text()
        assert "50 shown of 55, oldest first" in html
        [following] = re.findall(r'href="(/console/delivery\?participant=[^"]+)" rel="next"', html)
        async with http.get(following.replace("&amp;", "&")) as page:
            html = await page.text()
        assert "5 shown of 55, oldest first" in html
        assert 'rel="next"' not in html
        assert '<a href="/console/delivery">First dead letters</a>' in html
        for params, status in (
            ({"participant": "socialtreasury", "after": "zero"}, 400),
            ({"participant": "acme-analytics"}, 400),  # not this participant's to see
            ({"page": "2"}, 400),
        ):
            async with http.get("/console/delivery", params=params) as page:
                assert page.status == status, params


async def test_an_oversized_or_foreign_form_is_refused(console: Console) -> None:
    async with console.client() as http:
        async with http.post(
            "/console/login",
            data={"token": "x" * 5000},
            headers=console.origin,
            allow_redirects=False,
        ) as answer:
            assert answer.status == 400
            assert "larger than a console form can be" in await answer.text()
        async with http.post(
            "/console/login",
            data={"token": console.fed.tokens[AUDITOR]},
            headers={**console.origin, "Content-Type": "text/plain"},
            allow_redirects=False,
        ) as answer:
            assert answer.status == 400
            assert "expected an HTML form" in await answer.text()
    assert not events(console, "console.signed_in")


async def test_a_node_without_an_audit_directory_says_so(tmp_path: Path) -> None:
    fed = Federation.create(tmp_path)
    config = with_auditor(fed, fed.config(HOSTED, bootstrap="memory"))
    config = dataclasses.replace(config, audit=dataclasses.replace(config.audit, dir=None))
    async with running_node(config, transport=MemoryTransport()) as node:
        await node.wait_ready(5)
        console = Console(node, fed, MemoryTransport())
        async with console.client() as http:
            await console.sign_in(http, AUDITOR)
            for path in ("/console/audit", "/console/audit/integrity", "/console/quality"):
                async with http.get(path) as page:
                    assert page.status == 404, path
                    assert "audit.dir" in await page.text(), path
