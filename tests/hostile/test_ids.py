"""Path traversal and odd characters in every id a path or body carries (contracts,
versions, message ids, dead-letter positions, inbox tags), and unknown contracts and
versions: each a 4xx problem, never a file read or a 5xx, nothing sent."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
import yaml

from gateway.cloudevents import SAFE_TOKEN
from tests.hostile.conftest import CONTRACT, Target, Trail
from tests.hostile.raw import exchange, request
from tests.support import CONTRACTS, referral

pytestmark = pytest.mark.asyncio(loop_scope="module")

GOOD = json.dumps(referral()).encode()
JSON = ("Content-Type", "application/json")

ODD_IDS = {
    "dotdot": "..",
    "dotdot-encoded": "%2e%2e",
    "traversal-encoded-slash": "..%2f..%2f..%2fetc%2fpasswd",
    "traversal-double-encoded": "%252e%252e%252fetc",
    "traversal-backslash": "..%5c..%5cwindows",
    "nul": "a%00b",
    "nul-suffix": f"{CONTRACT}%00",
    "crlf": "a%0d%0aSet-Cookie:%20x=1",
    "invalid-utf8": "%ff%fe",
    "non-ascii": "%c3%a9t%c3%a9",
    "fullwidth-lookalike": "%ef%bd%88ealth.patient-referral",
    "long-4000": "a" * 4000,
    "long-encoded-nuls-2000": "%00" * 2000,
    "space": "a%20b",
    "percent": "%25",
    "json-in-id": "%7B%22a%22%3A1%7D",
}
DIGITS = {
    "negative": "-1",
    "19-digits": "9" * 19,
    "hex": "0x10",
    "exponent": "1e3",
    "unicode-digits": "%d9%a1",  # ARABIC-INDIC DIGIT ONE
}


def routes(odd: str) -> dict[str, tuple[str, str, bytes]]:
    """Every route with an id, the odd value in the id's place: method, path, body."""
    return {
        "contract": ("GET", f"/v1/contracts/{odd}", b""),
        "contract-version": ("GET", f"/v1/contracts/{odd}/versions/1.0.0", b""),
        "version": ("GET", f"/v1/contracts/{CONTRACT}/versions/{odd}", b""),
        "publish": ("POST", f"/v1/contracts/{odd}/messages", GOOD),
        "request": ("POST", f"/v1/contracts/{odd}/requests?to=socialtreasury&wait=0", GOOD),
        "register": ("POST", f"/v1/contracts/{odd}/versions", contract_document()),
        "reply": ("POST", f"/v1/messages/{odd}/reply", GOOD),
        "dlq-partition": ("GET", f"/v1/dlq/{odd}/0", b""),
        "dlq-offset": ("GET", f"/v1/dlq/0/{odd}", b""),
    }


def contract_document() -> bytes:
    path = Path(CONTRACTS) / CONTRACT / "1.1.0.yaml"
    return json.dumps(yaml.safe_load(path.read_text())).encode()


def send(target: Target, method: str, path: str, body: bytes) -> bytes:
    headers = [target.auth(), JSON] if body else [target.auth()]
    return request(method, path, headers=headers, body=body)


@pytest.mark.parametrize("route", sorted(routes("x")))
@pytest.mark.parametrize("odd", sorted(ODD_IDS))
async def test_odd_ids_in_paths(target: Target, route: str, odd: str) -> None:
    method, path, body = routes(ODD_IDS[odd])[route]
    answer = await target.refused(
        send(target, method, path, body),
        trail=Trail.EITHER,
        statuses=frozenset({400, 403, 404, 405, 422}),
    )
    assert b"root:" not in answer.body  # nothing of a file outside the contracts


@pytest.mark.parametrize("where", ["partition", "offset"])
@pytest.mark.parametrize("value", sorted(DIGITS))
async def test_dead_letter_positions_are_whole_numbers(
    target: Target, where: str, value: str
) -> None:
    path = f"/v1/dlq/{DIGITS[value]}/0" if where == "partition" else f"/v1/dlq/0/{DIGITS[value]}"
    answer = await target.refused(send(target, "GET", path, b""), statuses=frozenset({400}))
    assert answer.json()["parameter"] == where


TAGS = {**ODD_IDS, "empty": ""}


@pytest.mark.parametrize("odd", sorted(TAGS))
@pytest.mark.parametrize("verb", ["ack", "nack"])
async def test_odd_inbox_tags_are_unknown_not_errors(target: Target, verb: str, odd: str) -> None:
    """A tag names nothing on disk or in Kafka: an odd one is reported unknown (200)."""
    tag = unquote(TAGS[odd])
    kafka = target.kafka()
    body = json.dumps({"tags": [tag, tag * 3]}).encode()
    answer = await exchange(target.port, send(target, "POST", f"/v1/inbox/{verb}", body))
    assert answer.status == 200, answer.body[:300]
    assert answer.json()["unknown"] == [tag, tag * 3]
    assert target.kafka() == kafka
    await target.still_serving()


@pytest.mark.parametrize("odd", sorted(ODD_IDS))
async def test_odd_dead_letter_message_ids(target: Target, odd: str) -> None:
    """An id of the allowed alphabet is looked up among the dead letters and not found
    (``../..`` is just an odd id there: nothing reads a path); any other is 400."""
    message_id = unquote(ODD_IDS[odd])
    data = send(
        target, "POST", "/v1/dlq/replay", json.dumps({"message_ids": [message_id]}).encode()
    )
    if SAFE_TOKEN.fullmatch(message_id):
        kafka = target.kafka()
        answer = await exchange(target.port, data)
        assert (answer.status, answer.json()["not_found"]) == (200, [message_id])
        assert target.kafka() == kafka
        return
    answer = await target.refused(data, statuses=frozenset({400}))
    assert answer.json()["parameter"] == "message_ids"


UNKNOWN = {
    "no-such-contract": "no.such-contract",
    "unknown-version": f"{CONTRACT}@9.9.9",
    "two-part-version": f"{CONTRACT}@1.0",
    "v-prefix": f"{CONTRACT}@v1.0.0",
    "leading-zero": f"{CONTRACT}@01.0.0",
    "prerelease": f"{CONTRACT}@1.0.0-rc.1",
    "build-metadata": f"{CONTRACT}@1.0.0+evil",
    "empty-version": f"{CONTRACT}@",
    "empty-id": "@1.0.0",
    "upper-case": CONTRACT.upper(),
    "two-versions": f"{CONTRACT}@1.0.0@1.0.0",
    "huge-version": f"{CONTRACT}@{'9' * 5000}.0.0",
    "not-a-producer": "social.support-measure",
}


READS = ("contract", "version", "versions-of")
"""Reading a contract needs no producer's right: social.support-measure is found."""
UNKNOWN_CASES = [
    pytest.param(route, name, id=f"{name}-{route}")
    for name in sorted(UNKNOWN)
    for route in ("publish", "batch", "request", *READS)
    if not (route in READS and name == "not-a-producer")
    and not (route == "versions-of" and UNKNOWN[name].partition("@")[0] == CONTRACT)
]


@pytest.mark.parametrize(("route", "name"), UNKNOWN_CASES)
async def test_unknown_contracts_and_versions(target: Target, route: str, name: str) -> None:
    ref = UNKNOWN[name]
    contract_id, _, version = ref.partition("@")
    if route == "batch":
        body = json.dumps({"messages": [{"payload": referral()}]}).encode()
        data = send(target, "POST", f"/v1/contracts/{quote(ref)}/messages:batch", body)
        [result] = await target.batch_refused(data)
        assert result["status"] in (403, 404)
        return
    at = quote(version) if "@" in ref else "1.0.0"
    method, path, body = {
        "publish": ("POST", f"/v1/contracts/{quote(ref)}/messages", GOOD),
        "request": ("POST", f"/v1/contracts/{quote(ref)}/requests?to=socialtreasury", GOOD),
        "contract": ("GET", f"/v1/contracts/{quote(ref)}", b""),
        "version": ("GET", f"/v1/contracts/{quote(contract_id)}/versions/{at}", b""),
        "versions-of": ("GET", f"/v1/contracts/{quote(contract_id)}/versions/latest", b""),
    }[route]
    # An empty id leaves no route to match: refused before anyone is authenticated.
    await target.refused(
        send(target, method, path, body),
        trail=Trail.LOG if "//" in path or path.endswith("/") else Trail.CALLER,
        statuses=frozenset({400, 403, 404, 405, 422}),
    )
