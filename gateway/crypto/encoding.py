"""The byte encodings JOSE uses: strict base64url and compact JSON headers.

>>> b64u_decode(b64u_encode(b"\\x00\\xff"))
b'\\x00\\xff'
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def b64u_encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_UNUSED_BITS = {2: 0x0F, 3: 0x03}
"""Length mod 4 -> bits of the last character that carry no data (must be zero)."""


def b64u_decode(data: bytes | str) -> bytes:
    """Decode unpadded base64url, refusing padding, other alphabets, bad lengths and
    non-canonical spellings (non-zero unused bits: one value, one encoding)."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    remainder = len(raw) % 4
    if remainder == 1:
        raise ValueError("not unpadded base64url")
    try:
        # validate=True refuses every byte outside the alphabet, in C.
        decoded = base64.b64decode(raw + b"=" * (-len(raw) % 4), altchars=b"-_", validate=True)
    except binascii.Error as exc:
        raise ValueError("not unpadded base64url") from exc
    # The standard alphabet's characters, and padding already in place (a length that is a
    # multiple of 4 gets none added, and b64decode accepts it), are let through above.
    if b"+" in raw or b"/" in raw or b"=" in raw:
        raise ValueError("not unpadded base64url")
    if remainder and _ALPHABET.index(raw[-1:]) & _UNUSED_BITS[remainder]:
        raise ValueError("not canonical base64url")
    return decoded


def compact_json(value: Any) -> bytes:
    """Deterministic, compact JSON (sorted keys) for headers and thumbprints."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
