"""Request/response: requests waiting on this node for their reply.

A request (``POST /v1/contracts/{id}/requests``) is a message like any other,
to one recipient, under a contract that declares its ``response`` contract.
The recipient answers with ``POST /v1/messages/{id}/reply``: a message under
the response contract, back to the requester, whose correlation id is the
request's message id. While the requester's HTTP call waits, its inbox hands
that reply to the call instead of queueing it; after the wait it is an
ordinary message in the requester's inbox.

    waiting = replies.expect("minhealth", message_id)    # before the request is sent
    delivery = await asyncio.wait_for(asyncio.shield(waiting), 10)
    replies.forget("minhealth", message_id)               # done, or gave up waiting
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.delivery import Delivery


class Replies:
    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str], tuple[str, str, asyncio.Future[Delivery]]] = {}

    def expect(
        self, requester: str, message_id: str, *, responder: str, contract: str
    ) -> asyncio.Future[Delivery]:
        """Wait for the reply to ``message_id``: from ``responder`` (the request's one
        recipient), under ``contract`` (the response contract). Anything else carrying
        the same correlation id is an ordinary message."""
        future: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        self._waiting[(requester, message_id)] = (responder, contract, future)
        return future

    def forget(self, requester: str, message_id: str) -> None:
        self._waiting.pop((requester, message_id), None)

    def claim(self, delivery: Delivery) -> bool:
        """Hand ``delivery`` to the call waiting for it, if one is; True when taken."""
        message = delivery.message
        if message.correlation_id is None:
            return False
        key = (message.recipient, message.correlation_id)
        waiting = self._waiting.get(key)
        if waiting is None:
            return False
        responder, contract, future = waiting
        if message.sender != responder or message.contract != contract or future.done():
            return False
        del self._waiting[key]
        future.set_result(delivery)
        return True

    def __len__(self) -> int:
        return len(self._waiting)
