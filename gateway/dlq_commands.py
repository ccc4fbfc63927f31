"""``gateway dlq list|show|replay``: a participant's dead letters, through a running node.

A thin client of the node's ``/v1/dlq`` endpoints, so that the node checks who asks
and audits every replay as it would for any other caller. The token comes from
``--token-file`` or the ``GATEWAY_TOKEN`` variable; it is sent in the Authorization
header only and never printed. A refusal prints the problem's title and detail.

    gateway dlq list --node https://node-a.example:8080 --token-file socialtreasury.token
    gateway dlq show 0:17 --token-file socialtreasury.token
    gateway dlq replay --offset 0:17 --offset 2:4 --token-file socialtreasury.token
    gateway dlq list --participant socialtreasury --token-file auditor.token --json
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from gateway.dlq import Position
from gateway.errors import ConfigError, NodeError

Say = Callable[[str], None]

DEFAULT_NODE = "http://127.0.0.1:8080"
_TIMEOUT_S = 60.0
_PROBLEM_JSON = "application/problem+json"
_MAX_CELL = 48


def _contract(entry: Mapping[str, Any]) -> str | None:
    contract, version = entry["contract"], entry["version"]
    return f"{contract}@{version}" if contract and version else contract


_COLUMNS = (
    ("POSITION", lambda e: f"{e['partition']}:{e['offset']}"),
    ("TIME", lambda e: e["time"]),
    ("MESSAGE ID", lambda e: e["message_id"]),
    ("SENDER", lambda e: e["sender"]),
    ("CONTRACT", _contract),
    ("REASON", lambda e: e["reason"]),
    ("REPLAYS", lambda e: e["replays"] or ""),
)


@dataclass(frozen=True, slots=True)
class Node:
    """A running node and the bearer token to present to it."""

    url: str
    token: str

    def __repr__(self) -> str:  # never the token, not even in a traceback
        return f"Node(url={self.url!r})"


def node_of(url: str, token_file: Path | None, environ: Mapping[str, str]) -> Node:
    """The node at ``url``, with the token from ``token_file`` or ``GATEWAY_TOKEN``."""
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the token file {token_file}: {_why(exc)}") from None
        source = f"the token file {token_file}"
    else:
        token = environ.get("GATEWAY_TOKEN", "").strip()
        source = "GATEWAY_TOKEN"
        if not token:
            raise ConfigError("give --token-file FILE or set GATEWAY_TOKEN")
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        raise ConfigError(f"{source} does not hold a bearer token")
    _warn_if_plain(url)
    return Node(url.rstrip("/"), token)


def list_command(
    node: Node, *, participant: str | None, after: str | None, limit: int, as_json: bool, say: Say
) -> int:
    params = {"limit": str(limit)}
    params |= {"participant": participant} if participant else {}
    params |= {"after": after} if after else {}
    page = _call(node, "GET", "/v1/dlq", params=params)
    if as_json:
        say(json.dumps(page, indent=2))
        return 0
    entries = page["entries"]
    if not entries:
        say(f"no dead letters in {page['topic']}" + (f" after {after}" if after else ""))
        return 0
    for line in _table(entries):
        say(line)
    say(f"{len(entries)} of {page['total']} dead letters in {page['topic']}")
    if page["next"]:
        cursor = parse_qs(urlsplit(page["next"]).query).get("after", ["?"])[0]
        say(f"more: gateway dlq list --after {_clean(cursor)}")
    return 0


def show_command(
    node: Node, position: Position, *, participant: str | None, as_json: bool, say: Say
) -> int:
    params = {"participant": participant} if participant else {}
    path = f"/v1/dlq/{position.partition}/{position.offset}"
    entry = _call(node, "GET", path, params=params)
    if as_json:
        say(json.dumps(entry, indent=2))
        return 0
    width = max(map(len, entry))
    for name, value in entry.items():
        say(f"{name + ':':<{width + 1}} {_clean(value)}")
    return 0


def replay_command(
    node: Node,
    *,
    positions: Sequence[Position],
    message_ids: Sequence[str],
    everything: bool,
    as_json: bool,
    say: Say,
) -> int:
    if everything:
        body: dict[str, Any] = {"all": True}
    elif positions:
        body = {"offsets": [{"partition": p.partition, "offset": p.offset} for p in positions]}
    else:
        body = {"message_ids": list(message_ids)}
    result = _call(node, "POST", "/v1/dlq/replay", body=body)
    if as_json:
        say(json.dumps(result, indent=2))
    else:
        _summary(result, say)
    missing = result["not_found"]
    if missing:
        print(f"gateway: error: {len(missing)} not found in the dead letters", file=sys.stderr)
        return 1
    return 0


def _summary(result: Mapping[str, Any], say: Say) -> None:
    for r in result["replayed"]:
        say(
            f"replayed {r['partition']}:{r['offset']}  {_clean(r['message_id'])}"
            f"  (was {_clean(r['reason'])})"
        )
    for missing in result["not_found"]:
        where = (
            missing if isinstance(missing, str) else f"{missing['partition']}:{missing['offset']}"
        )
        say(f"not found {_clean(where)}")
    count = len(result["replayed"])
    say(
        f"{count} replayed into the inbox, each checked again like a new arrival: "
        "'gateway dlq list' shows any refused again"
        if count
        else "nothing replayed"
    )
    if result["remaining"]:
        say(f"{result['remaining']} more chosen: run the replay again for them")


def _call(
    node: Node,
    method: str,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    body: Any = None,
) -> Any:
    return asyncio.run(_request(node, method, path, params=params, body=body))


async def _request(
    node: Node, method: str, path: str, *, params: Mapping[str, str] | None, body: Any
) -> Any:
    headers = {"Authorization": f"Bearer {node.token}", "Accept": "application/json"}
    timeout = aiohttp.ClientTimeout(total=_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(
                method, node.url + path, params=params, json=body, headers=headers
            ) as response,
        ):
            return await _answer(response)
    except aiohttp.InvalidURL:
        raise NodeError(f"'{_clean(node.url)}' is not a node URL, e.g. {DEFAULT_NODE}") from None
    except TimeoutError:  # an OSError too: caught first
        raise NodeError(f"the node at {node.url} did not answer in {_TIMEOUT_S:g} s") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise NodeError(f"cannot reach the node at {_clean(node.url)}: {_why(exc)}") from None


async def _answer(response: aiohttp.ClientResponse) -> Any:
    try:
        document = await response.json(content_type=None)
    except ValueError:
        document = None
    if response.status >= 400:
        if response.content_type == _PROBLEM_JSON and isinstance(document, dict):
            title, detail = document.get("title", ""), document.get("detail", "")
            raise NodeError(f"{_clean(title)}: {_clean(detail)} ({response.status})")
        raise NodeError(f"the node answered {response.status} {_clean(response.reason or '')}")
    if not isinstance(document, dict):
        raise NodeError(f"the node answered {response.status} without a JSON document")
    return document


def _table(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = [[name for name, _ in _COLUMNS]]
    rows += [[_clean(cell(e))[:_MAX_CELL] for _, cell in _COLUMNS] for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _clean(value: Any) -> str:
    """Text fit for a terminal: header values come from whoever wrote the record, and a
    control character could rewrite the screen."""
    text = "-" if value is None or value == "" else str(value)
    return "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in text)


def _why(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or type(exc.os_error).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return _clean(str(exc)) if str(exc) else type(exc).__name__


def _warn_if_plain(url: str) -> None:
    """The token would cross the network in clear text over plain HTTP to another host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme == "http" and not loopback:
        print(f"gateway: warning: the token goes to {host} unencrypted (http)", file=sys.stderr)
