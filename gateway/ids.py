"""Message ids: UUIDv7 (RFC 9562), so ids sort by creation time in logs and audits.

>>> a, b = new_message_id(), new_message_id()
>>> len(a), a[14]
(36, '7')
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid


def new_message_id() -> str:
    unix_ms = time.time_ns() // 1_000_000
    value = (unix_ms & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    return str(uuid.UUID(int=value))


def derived_message_id(*parts: str) -> str:
    """A UUIDv8 (RFC 9562) that is a function of ``parts``: the same request under the
    same idempotency key gets the same message id on every node and after any crash,
    so that receivers suppress a second copy as a duplicate."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    value = int.from_bytes(digest[:16], "big")
    value = value & ~(0xF << 76) | 0x8 << 76  # version 8
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    return str(uuid.UUID(int=value))
