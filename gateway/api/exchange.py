"""Request/response over HTTP (see :mod:`gateway.replies`).

``POST /v1/contracts/{contract}/requests?to=RECIPIENT&wait=S`` sends a request
to one recipient and waits up to ``wait`` seconds for the reply: 200 with the
request and the reply (acknowledged), or 202 with the request's message id,
which is the reply's correlation id, when none came in time (the reply then
arrives in the requester's inbox). ``POST /v1/messages/{id}/reply`` answers a
request the caller received, under the response contract its contract names.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from gateway.api.handlers import (
    delivery_json,
    number_param,
    participant_of,
    publish_request,
    publish_within_limits,
)
from gateway.api.keys import CATALOG, CONFIG, INBOXES, REPLIES
from gateway.errors import InvalidParameter, NoResponseContract, UnknownRequest
from gateway.ids import new_message_id
from gateway.routing import Accepted


def _accepted(accepted: Accepted) -> dict[str, Any]:
    return {
        "message_id": accepted.message_id,
        "contract": accepted.contract,
        "recipients": list(accepted.recipients),
    }


async def send_request(request: web.Request) -> web.Response:
    sender = participant_of(request)
    contract = request.app[CATALOG].resolve(request.match_info["contract"])
    if contract.response is None:
        raise NoResponseContract(f"{contract.ref} declares no response contract to answer with")
    config = request.app[CONFIG]
    longest = config.http.max_request_wait_s
    wait_s = number_param(request, "wait", min(10, longest), 0, longest)
    message_id = new_message_id()
    replies = request.app[REPLIES]
    to = [n.strip() for v in request.query.getall("to", []) for n in v.split(",") if n.strip()]
    if len(to) != 1:
        raise InvalidParameter("to", "a request goes to exactly one recipient: ?to=ID")
    waiting = replies.expect(sender, message_id, responder=to[0], contract=contract.response)
    try:

        def build(body: bytes) -> Any:
            return publish_request(request, sender, body, message_id=message_id)

        accepted = await publish_within_limits(request, sender, build)
        try:
            reply = await asyncio.wait_for(asyncio.shield(waiting), wait_s)
        except TimeoutError:
            if not waiting.done():
                return web.json_response(
                    {**_accepted(accepted), "correlation_id": message_id, "reply": None},
                    status=202,
                )
            reply = waiting.result()
    finally:
        replies.forget(sender, message_id)
    inbox = request.app[INBOXES][sender]
    body = json.dumps({**_accepted(accepted), "correlation_id": message_id}).encode()
    response = web.Response(
        body=body[:-1] + b',"reply":' + delivery_json(reply) + b"}",
        content_type="application/json",
    )
    # Acknowledged once the answer is written; a caller gone meanwhile (a client timeout
    # shorter than the wait) finds the reply in its inbox instead.
    transport = request.transport
    if transport is None or transport.is_closing():
        await inbox.nack([reply.tag], delay_s=0)
        return response
    try:
        await response.prepare(request)
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        await inbox.nack([reply.tag], delay_s=0)
        raise
    await inbox.ack([reply.tag])
    return response


async def send_reply(request: web.Request) -> web.Response:
    replier = participant_of(request)
    inbox = request.app[INBOXES].get(replier)
    asked = inbox.received(request.match_info["message_id"]) if inbox is not None else None
    if asked is None:
        raise UnknownRequest(
            f"'{replier}' received no message {request.match_info['message_id'][:64]!r} lately"
        )
    contract = request.app[CATALOG].resolve(f"{asked.contract}@{asked.version}")
    if contract.response is None:
        raise NoResponseContract(f"{contract.ref} declares no response contract to answer with")

    def build(body: bytes) -> Any:
        return publish_request(
            request,
            replier,
            body,
            contract=contract.response,
            to=(asked.sender,),
            correlation_id=asked.message_id,
        )

    accepted = await publish_within_limits(request, replier, build, contract=contract.response)
    return web.json_response(
        {**_accepted(accepted), "correlation_id": asked.message_id}, status=202
    )
