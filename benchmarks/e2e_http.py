"""A minimal HTTP/1.1 client for the load generator: keep-alive, one request per connection.

    async with Http1("http://127.0.0.1:8080", max_connections=512) as http:
        status, body = await http.post("/v1/...", body, {"Authorization": "Bearer ..."})

The load generator shares two cores with the nodes it measures, so its own CPU
per request matters: aiohttp's client costs about 0.4 ms of CPU a publish here,
this about a quarter of that. It knows only what the gateway answers: a status
line, headers and a ``Content-Length`` body (no chunked encoding, no redirects,
no TLS).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import TracebackType
from urllib.parse import urlsplit

_Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Http1:
    def __init__(self, url: str, *, max_connections: int) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._idle: list[_Stream] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """The status and body of one POST (application/json)."""
        head = [f"POST {path} HTTP/1.1", f"Host: {self._host}:{self._port}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}", "", ""]
        request = "\r\n".join(head).encode() + body
        async with self._slots:
            reader, writer = self._idle.pop() if self._idle else await self._connect()
            try:
                writer.write(request)
                answer = await _response(reader)
            except BaseException:
                writer.close()
                raise
            self._idle.append((reader, writer))
            return answer

    async def _connect(self) -> _Stream:
        return await asyncio.open_connection(self._host, self._port)

    async def __aenter__(self) -> Http1:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)
