"""Batch publish: many messages under one contract, one wait for the broker.

``POST /v1/contracts/{contract}/messages:batch`` with::

    {"messages": [{"payload": {...}, "to": ["socialtreasury"], "ordering_key": "case-7",
                   "correlation_id": "c-1", "idempotency_key": "..."}, ...]}

answers 200 with one result per item, in order: ``{"status": 202, "message_id",
"contract", "recipients"}`` for an accepted item (durable in Kafka, like a
single publish's 202) or ``{"status": 4xx|5xx, "problem": {...}}`` (RFC 9457)
for a refused one. Each item is checked, signed, sealed, rate-limited, counted
against the quota and audited exactly as a single publish is; the accepted
items' records go to Kafka together and are acknowledged together, which is
what makes a batch cheaper than its items one by one. An item's payload is
signed as compact JSON (the batch's own bytes are not the item's).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web

from gateway.api.handlers import participant_of, publish_request, read_body, require_json
from gateway.api.keys import AUDIT, CONFIG, LIMITER, METRICS, ROUTER
from gateway.api.problems import TYPE_PREFIX, status_of
from gateway.cloudevents import SAFE_TOKEN
from gateway.errors import GatewayError, InvalidParameter, Throttled
from gateway.ids import derived_message_id
from gateway.instruments import PublishOutcome
from gateway.jsonparse import parse_json
from gateway.routing import Accepted, PublishRequest

_ITEM_KEYS = {"payload", "to", "ordering_key", "correlation_id", "idempotency_key"}


async def publish_batch(request: web.Request) -> web.Response:
    sender = participant_of(request)
    require_json(request)
    http = request.app[CONFIG].http
    body = await read_body(request, http.max_batch_bytes)
    document = parse_json(body, max_bytes=http.max_batch_bytes, max_depth=http.max_json_depth + 3)
    items = document.get("messages") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items or set(document) != {"messages"}:
        raise InvalidParameter("messages", 'send {"messages": [{"payload": ...}, ...]}')
    if len(items) > http.max_batch_messages:
        raise InvalidParameter(
            "messages", f"at most {http.max_batch_messages} messages in one batch"
        )
    requests = [_item(request, sender, i, item) for i, item in enumerate(items)]
    limiter = request.app[LIMITER]
    results: list[Accepted | GatewayError | None] = [None] * len(requests)
    accepted: set[int] = set()
    with contextlib.ExitStack() as held:
        admitted: list[tuple[int, PublishRequest]] = []
        counted = limiter.has_quota(sender)
        for index, publish in enumerate(requests):
            try:
                limiter.admit(sender)
                if not counted:
                    admitted.append((index, publish))
                    continue
                quota = limiter.quota(sender, len(publish.body))
                quota.__enter__()
            except Throttled as exc:
                _audit_throttled(request, exc, publish)
                results[index] = exc
                continue
            # Settled when the batch is done: counted only if this item was accepted
            # (also when the batch itself fails half-way).
            held.callback(_settle, quota, functools.partial(set.__contains__, accepted, index))
            admitted.append((index, publish))
        outcomes = await request.app[ROUTER].publish_batch([p for _, p in admitted])
        for (index, _), outcome in zip(admitted, outcomes, strict=True):
            results[index] = outcome
            if isinstance(outcome, Accepted):
                accepted.add(index)
    return web.json_response({"results": [_result(r) for r in _done(results)]})


def _settle(
    quota: contextlib.AbstractContextManager[None], was_accepted: Callable[[], bool]
) -> None:
    if was_accepted():
        quota.__exit__(None, None, None)
    else:
        refused = GatewayError("not accepted")
        quota.__exit__(GatewayError, refused, None)


def _done(results: list[Accepted | GatewayError | None]) -> Iterator[Accepted | GatewayError]:
    for result in results:
        assert result is not None  # every item has an outcome by now
        yield result


def _item(request: web.Request, sender: str, index: int, item: Any) -> PublishRequest:
    where = f"messages[{index}]"
    if not isinstance(item, dict) or "payload" not in item or not set(item) <= _ITEM_KEYS:
        raise InvalidParameter(
            where, f"{where}: an object with 'payload' and at most {sorted(_ITEM_KEYS)}"
        )
    to = item.get("to", [])
    if not isinstance(to, list) or not all(isinstance(t, str) for t in to):
        raise InvalidParameter(where, f"{where}.to: a list of participant ids")
    text = {k: item.get(k) for k in ("ordering_key", "correlation_id", "idempotency_key")}
    if not all(
        v is None or (isinstance(v, str) and SAFE_TOKEN.fullmatch(v)) for v in text.values()
    ):
        raise InvalidParameter(
            where,
            f"{where}: ordering_key, correlation_id and idempotency_key are 1-128 of "
            "A-Z a-z 0-9 . _ : / @ + = -",
        )
    body = json.dumps(item["payload"], ensure_ascii=False, separators=(",", ":")).encode()
    publish = publish_request(request, sender, body, to=to, correlation_id=text["correlation_id"])
    # The batch was parsed with the node's limits (nesting three levels deeper: the
    # document, its list and the item hold the payload): no second parse.
    publish = dataclasses.replace(
        publish, ordering_key=text["ordering_key"], parsed=(item["payload"],)
    )
    key = text["idempotency_key"]
    if key is not None:  # a retried batch: the same id, suppressed by receivers
        publish = dataclasses.replace(
            publish, message_id=derived_message_id("batch", sender, key, body.decode())
        )
    return publish


def _result(outcome: Accepted | GatewayError) -> dict[str, Any]:
    if isinstance(outcome, Accepted):
        return {
            "status": 202,
            "message_id": outcome.message_id,
            "contract": outcome.contract,
            "recipients": list(outcome.recipients),
        }
    status = status_of(outcome)
    problem = {
        "type": TYPE_PREFIX + outcome.code,
        "title": outcome.title,
        "status": status,
        "detail": outcome.detail,
        **outcome.extensions(),
    }
    return {"status": status, "problem": problem}


def _audit_throttled(request: web.Request, exc: Throttled, publish: PublishRequest) -> None:
    request.app[METRICS].published(publish.contract, PublishOutcome.THROTTLED)
    request.app[AUDIT].record(
        "message.throttled",
        sender=publish.sender,
        contract=publish.contract[:200],
        reason=exc.reason,
        retry_after_s=exc.retry_after_s,
        payload_size=len(publish.body),
    )
