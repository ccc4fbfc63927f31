"""Dead letters over HTTP: read the caller's dead-letter topic, replay entries into its inbox.

A participant reads and replays its own dead letters only. An auditor reads those of
any participant hosted here (``?participant=ID``) and replays nothing. A replay is
answered once the broker acknowledged every copy, and each copy is audited as
``message.replayed`` naming who asked. Entries carry metadata and the envelope's
SHA-256, never the envelope. Unknown or repeated query parameters are refused (400).

    GET  /v1/dlq?after=0:17&limit=50   -> {"entries": [...], "count": 50, "total": 73,
                                           "next": "/v1/dlq?after=0:67&limit=50", ...}
    GET  /v1/dlq/0/17                  -> one entry (404 unknown-dead-letter)
    POST /v1/dlq/replay {"offsets": [{"partition": 0, "offset": 17}]}
                     or {"message_ids": ["..."]} or {"all": true}
      -> {"replayed": [...], "not_found": [...], "remaining": 0}
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from gateway.api.auth import Role
from gateway.api.handlers import caller_of, participant_of, read_body, require_json
from gateway.api.keys import ADMISSION, DEAD_LETTERS
from gateway.cloudevents import SAFE_TOKEN
from gateway.dlq import MAX_REPLAY, DeadLetter, DeadLetters, Position, Selection
from gateway.errors import Forbidden, InvalidParameter
from gateway.jsonparse import parse_json

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_MAX_BODY = 65536
_DIGITS = re.compile(r"[0-9]{1,18}")
_SELECTORS = ("offsets", "message_ids", "all")


async def list_dead_letters(request: web.Request) -> web.Response:
    letters = _readable(request)  # who may ask comes before what they asked
    params = request.query
    _check_names(params, ("participant", "after", "limit"))
    after = _position(params.get("after"), "after")
    limit = _limit(params.get("limit"))
    page = await letters.page(after=after, limit=limit)
    following = None
    if page.next_after is not None:
        following = str(request.rel_url.update_query(after=str(page.next_after)))
    return _no_store(
        {
            "participant": letters.participant,
            "topic": letters.topic,
            "entries": [e.as_dict() for e in page.entries],
            "count": len(page.entries),
            "total": page.total,
            "next": following,
        }
    )


async def get_dead_letter(request: web.Request) -> web.Response:
    letters = _readable(request)
    _check_names(request.query, ("participant",))
    where = Position(
        _number(request.match_info["partition"], "partition"),
        _number(request.match_info["offset"], "offset"),
    )
    return _no_store((await letters.entry(where)).as_dict())


async def replay_dead_letters(request: web.Request) -> web.Response:
    participant = participant_of(request)  # auditors read, they never replay
    letters = own_dead_letters(request, participant)
    if request.query:
        raise InvalidParameter(next(iter(request.query))[:64], "replay takes no query parameters")
    require_json(request)
    body = parse_json(await read_body(request, _MAX_BODY), max_bytes=_MAX_BODY, max_depth=4)
    result = await letters.replay(_selection(body), by=participant)
    return _no_store(
        {
            "replayed": [_replayed(letters, e) for e in result.replayed],
            "not_found": [
                w if isinstance(w, str) else {"partition": w.partition, "offset": w.offset}
                for w in result.not_found
            ],
            "remaining": result.remaining,
        }
    )


def _readable(request: web.Request) -> DeadLetters:
    """The dead letters the caller asks to read: a participant its own, an auditor any
    hosted participant's."""
    caller = caller_of(request)
    named = request.query.get("participant")
    if caller.role is Role.AUDITOR:
        if named is None:
            raise InvalidParameter("participant", "auditors name one: ?participant=ID")
        letters = request.app[DEAD_LETTERS].get(named)
        if letters is None:
            raise InvalidParameter("participant", f"'{named[:64]}' is not hosted on this node")
        return letters
    caller.require(Role.PARTICIPANT)
    if named is not None and named != caller.id:
        raise Forbidden(f"'{caller.id}' may read its own dead letters only")
    return own_dead_letters(request, caller.id)


def own_dead_letters(request: web.Request, participant: str) -> DeadLetters:
    """The participant's own dead letters, if it is active and hosted here (403 otherwise)."""
    if not request.app[ADMISSION].admitted(participant):
        raise Forbidden(f"'{participant}' is not an active participant in the registry")
    letters = request.app[DEAD_LETTERS].get(participant)
    if letters is None:
        raise Forbidden(f"'{participant}' has no dead-letter topic on this node")
    return letters


def _selection(body: Any) -> Selection:
    """Exactly one of offsets, message_ids or all, each bounded."""
    given = [k for k in _SELECTORS if isinstance(body, dict) and k in body]
    if not isinstance(body, dict) or len(given) != 1 or len(body) != 1:
        raise InvalidParameter(
            "body",
            'send one of {"offsets": [{"partition": P, "offset": O}, ...]}, '
            '{"message_ids": ["...", ...]} or {"all": true}',
        )
    value = body[given[0]]
    if given[0] == "all":
        if value is not True:
            raise InvalidParameter("all", '"all" must be true')
        return Selection(everything=True)
    if not isinstance(value, list) or not 0 < len(value) <= MAX_REPLAY:
        raise InvalidParameter(given[0], f"'{given[0]}' must list 1 to {MAX_REPLAY} items")
    if given[0] == "offsets":
        return Selection(positions=tuple(dict.fromkeys(_offset(item) for item in value)))
    return Selection(message_ids=tuple(dict.fromkeys(_message_id(item) for item in value)))


def _offset(item: Any) -> Position:
    fields = ("partition", "offset")
    if isinstance(item, dict) and set(item) == set(fields):
        partition, offset = (_whole(item[k]) for k in fields)
        if partition is not None and offset is not None:
            return Position(partition, offset)
    raise InvalidParameter(
        "offsets", 'each offset is {"partition": P, "offset": O}, whole numbers from 0'
    )


def _whole(value: Any) -> int | None:
    """A whole JSON number from 0 below 2**63 (``17`` or ``17.0``: one number in JSON)."""
    if type(value) is float and value.is_integer():
        value = int(value)
    return value if type(value) is int and 0 <= value < 2**63 else None


def _message_id(item: Any) -> str:
    if not isinstance(item, str) or not SAFE_TOKEN.fullmatch(item):
        raise InvalidParameter(
            "message_ids", "a message id is 1-128 of A-Z a-z 0-9 . _ : / @ + = -"
        )
    return item


def _replayed(letters: DeadLetters, entry: DeadLetter) -> dict[str, Any]:
    return {
        "partition": entry.partition,
        "offset": entry.offset,
        "message_id": entry.message_id,
        "reason": entry.reason,
        "replayed_from": letters.where(entry.position),
    }


def _check_names(params: MultiMapping[str], allowed: tuple[str, ...]) -> None:
    """Refuse unknown and repeated parameters: a misspelt one would be ignored silently."""
    for name in params:
        if name not in allowed:
            raise InvalidParameter(
                name[:64], f"unknown parameter '{name[:64]}'; use {', '.join(allowed)}"
            )
        if len(params.getall(name)) > 1:
            raise InvalidParameter(name, f"give '{name}' at most once")


def _position(text: str | None, name: str) -> Position | None:
    if text is None:
        return None
    try:
        return Position.parse(text)
    except ValueError as exc:
        raise InvalidParameter(name, f"'{name}': {exc}") from None


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidParameter("limit", f"'limit' must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def _number(text: str, name: str) -> int:
    if not _DIGITS.fullmatch(text):
        raise InvalidParameter(name, f"'{name}' must be a whole number from 0")
    return int(text)


def _no_store(body: dict[str, Any]) -> web.Response:
    response = web.json_response(body)
    response.headers["Cache-Control"] = "no-store"
    return response
