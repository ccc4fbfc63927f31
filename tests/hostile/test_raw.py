"""The raw client the hostile suite relies on: its bytes are exactly what was asked for,
and it reads answers the way the suite assumes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.hostile.raw import HOST, chunked, exchange, request

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Reply], Awaitable[int]]]:
    servers: list[asyncio.Server] = []

    async def start(reply: Reply) -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reply(reader, writer)
            writer.close()

        server = await asyncio.start_server(handle, HOST, 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def test_a_request_is_sent_as_given() -> None:
    data = request("POST", b"/a\x00b", headers=[("X", b"1\r\n2")], body=b"{")
    assert data == (
        b"POST /a\x00b HTTP/1.1\r\nHost: 127.0.0.1\r\nX: 1\r\n2\r\n"
        b"Content-Length: 1\r\nConnection: close\r\n\r\n{"
    )
    assert b"Content-Length" not in request("GET", "/", content_length=-1)
    assert b"Connection" not in request("GET", "/", close=False)


def test_chunked_framing() -> None:
    assert chunked(b"abc", size=2) == b"2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"
    assert chunked(b"") == b"0\r\n\r\n"


async def test_an_answer_with_a_length(serve: Callable[[Reply], Awaitable[int]]) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 413 Too Large\r\nContent-Type: x/y\r\nContent-Length: 4\r\n\r\n")
        writer.write(b"{}  trailing bytes past the length are not the body")

    answer = await exchange(await serve(reply), request("GET", "/"))
    assert (answer.status, answer.headers["content-type"], answer.body) == (413, "x/y", b"{}  ")


async def test_an_answer_that_runs_to_the_close(
    serve: Callable[[Reply], Awaitable[int]],
) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 400 Bad Request\r\n\r\n{"status": 400}')

    answer = await exchange(await serve(reply), request("GET", "/"))
    assert answer.status == 400
    assert answer.json() == {"status": 400}


async def test_a_close_without_an_answer(serve: Callable[[Reply], Awaitable[int]]) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)

    answer = await exchange(await serve(reply), request("GET", "/"))
    assert answer.status is None
    assert answer.body == b""
