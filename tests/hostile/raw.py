"""A small HTTP/1.1 client over a bare asyncio socket, for bytes aiohttp's client
refuses to send: invalid UTF-8, truncated bodies, CR/LF in header values, slow bodies.

    answer = await exchange(port, request("POST", "/v1/x", body=b"{"))
    answer.status, answer.headers["content-type"], answer.json()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Answer:
    """What the server sent back; ``status`` None when it closed without a response."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    elapsed_s: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    method: str,
    path: str | bytes,
    *,
    headers: Iterable[tuple[str | bytes, str | bytes]] = (),
    body: bytes = b"",
    content_length: int | None = None,
    close: bool = True,
) -> bytes:
    """One request's bytes, exactly as given: nothing is checked or escaped.

    ``content_length`` defaults to ``len(body)``; pass -1 to send no Content-Length."""
    lines = [method.encode() + b" " + _bytes(path) + b" HTTP/1.1", b"Host: " + HOST.encode()]
    lines += [_bytes(name) + b": " + _bytes(value) for name, value in headers]
    length = len(body) if content_length is None else content_length
    if length >= 0:
        lines.append(b"Content-Length: " + str(length).encode())
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(body: bytes, size: int = 65536) -> bytes:
    """``body`` in Transfer-Encoding: chunked framing."""
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


async def exchange(port: int, data: bytes, *, timeout_s: float = 10.0) -> Answer:
    """Send ``data`` and read one response (or the server closing the connection)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):  # it may answer before taking it all
            await writer.drain()
        async with asyncio.timeout(timeout_s):
            return await _read_answer(reader, started)
    finally:
        writer.close()


async def trickle(
    port: int, head: bytes, body: bytes, *, interval_s: float, timeout_s: float
) -> Answer:
    """Send ``head`` at once, then ``body`` one byte per ``interval_s`` until the server
    answers or closes; raises TimeoutError if it does neither within ``timeout_s``."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(head)
        async with asyncio.timeout(timeout_s):
            answer = asyncio.create_task(_read_answer(reader, started))
            for byte in body:
                if answer.done():
                    break
                try:
                    writer.write(bytes([byte]))
                    await writer.drain()
                except ConnectionError:
                    break
                await asyncio.wait([answer], timeout=interval_s)
            return await answer
    finally:
        writer.close()


async def _read_answer(reader: asyncio.StreamReader, started: float) -> Answer:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return Answer(None, elapsed_s=time.monotonic() - started)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in filter(None, header_lines):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    try:
        # Without a length the body runs to the close (every request here says
        # Connection: close); a chunked answer is not expected and stays framed.
        body = await (reader.read() if length is None else reader.readexactly(int(length)))
    except (asyncio.IncompleteReadError, ConnectionError):
        body = b""
    return Answer(int(status_line.split()[1]), headers, body, time.monotonic() - started)


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value
