"""The byte encodings JOSE uses: strict base64url and compact JSON headers.

>>> b64u_decode(b64u_encode(b"\\x00\\xff"))
b'\\x00\\xff'
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

_B64U = re.compile(rb"^[A-Za-z0-9_-]*$")


def b64u_encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b64u_decode(data: bytes | str) -> bytes:
    """Decode unpadded base64url, refusing padding, other alphabets and bad lengths."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    if not _B64U.fullmatch(raw) or len(raw) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        decoded = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except binascii.Error as exc:
        raise ValueError("not unpadded base64url") from exc
    # One value, one encoding: refuse non-zero trailing bits (no malleable tokens).
    if b64u_encode(decoded) != raw:
        raise ValueError("not canonical base64url")
    return decoded


def compact_json(value: Any) -> bytes:
    """Deterministic, compact JSON (sorted keys) for headers and thumbprints."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
