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
        self._waiting: dict[tuple[str, str], asyncio.Future[Delivery]] = {}

    def expect(self, requester: str, message_id: str) -> asyncio.Future[Delivery]:
        future: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        self._waiting[(requester, message_id)] = future
        return future

    def forget(self, requester: str, message_id: str) -> None:
        self._waiting.pop((requester, message_id), None)

    def claim(self, delivery: Delivery) -> bool:
        """Hand ``delivery`` to the call waiting for it, if one is; True when taken."""
        message = delivery.message
        if message.correlation_id is None:
            return False
        future = self._waiting.pop((message.recipient, message.correlation_id), None)
        if future is None or future.done():
            return False
        future.set_result(delivery)
        return True

    def __len__(self) -> int:
        return len(self._waiting)
