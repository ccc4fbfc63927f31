"""Kafka headers in CloudEvents 1.0 binary mode: routing metadata, never trusted.

The receiving side compares these headers with the signed envelope and
rejects a record whose headers disagree with it.

    >>> h = dict(event_headers(message_id="m-1", sender="a", recipient="b",
    ...     contract="c.d", dataschema="urn:x", time="2026-01-01T00:00:00Z"))
    >>> h["ce_type"], h["content-type"]
    (b'c.d', b'application/jose')
"""

from __future__ import annotations

import re

CONTENT_TYPE = "application/jose"
SAFE_TOKEN = re.compile(r"^[A-Za-z0-9._:/@+=-]{1,128}$")
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def event_headers(
    *,
    message_id: str,
    sender: str,
    recipient: str,
    contract: str,
    dataschema: str,
    time: str,
    correlation_id: str | None = None,
    traceparent: str | None = None,
) -> tuple[tuple[str, bytes], ...]:
    headers = [
        ("ce_specversion", "1.0"),
        ("ce_id", message_id),
        ("ce_source", sender),
        ("ce_type", contract),
        ("ce_dataschema", dataschema),
        ("ce_time", time),
        ("ce_recipient", recipient),
        ("content-type", CONTENT_TYPE),
    ]
    if correlation_id:
        headers.append(("ce_correlationid", correlation_id))
    if traceparent:
        headers.append(("traceparent", traceparent))
    return tuple((name, value.encode()) for name, value in headers)
