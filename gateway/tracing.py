"""W3C trace context: every message carries a ``traceparent`` from publish to delivery.

The publisher's ``traceparent`` (if it sent one) is the parent of the node's
*publish* span; that span's ``traceparent`` travels in the Kafka record's
headers; the receiving node's *deliver* span is its child and its
``traceparent`` reaches the participant (pull, server-sent events, webhook).
The trace id stays the same all the way; each span has its own parent id.
Without a ``traceparent`` from the publisher, the publish span starts a trace.

Spans are exported only when ``tracing.otlp_endpoint`` is set (the ``otel``
extra, :mod:`gateway.otel`); otherwise a :class:`Tracer` makes ids and nothing else.

    tracer = Tracer()
    span = tracer.start("publish", parent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    str(span.context)  # '00-4bf92f3577b34da6a3ce929d0e0e4736-<new span id>-01'
    span.end()
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Protocol

from gateway.cloudevents import TRACEPARENT
from gateway.config import TracingConfig

_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    """32 lowercase hex digits, never all zero."""
    span_id: str
    """16 lowercase hex digits, never all zero: the parent id of the next hop."""
    flags: str = "01"

    def __str__(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> TraceContext:
        """A span in the same trace, under this one."""
        return TraceContext(self.trace_id, _span_id(), self.flags)


def parse(value: str | None) -> TraceContext | None:
    """The context a ``traceparent`` value names; None if absent or not a valid one
    (version ``ff``, an all-zero trace id or parent id are invalid, per W3C)."""
    if value is None or not TRACEPARENT.fullmatch(value):
        return None
    version, trace_id, span_id, flags = value.split("-")
    if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceContext(trace_id, span_id, flags)


def valid(value: str) -> bool:
    return parse(value) is not None


def start() -> TraceContext:
    """A new trace (sampled: a collector, when there is one, keeps it)."""
    trace_id = _ZERO_TRACE
    while trace_id == _ZERO_TRACE:
        trace_id = secrets.token_hex(16)
    return TraceContext(trace_id, _span_id())


def _span_id() -> str:
    span_id = _ZERO_SPAN
    while span_id == _ZERO_SPAN:
        span_id = secrets.token_hex(8)
    return span_id


class Span(Protocol):
    @property
    def context(self) -> TraceContext: ...

    def end(self, *, error: str | None = None) -> None:
        """Finish the span; ``error`` names what failed (the span's status is then error)."""


@dataclass(slots=True)
class IdSpan:
    """A span that is only its ids: what every span is when nothing is exported."""

    context: TraceContext

    def end(self, *, error: str | None = None) -> None:
        return None


class Tracer:
    """Makes spans that are only ids; :class:`gateway.otel.OtelTracer` also exports them."""

    def start(self, name: str, *, parent: str | None, **attributes: str) -> Span:
        """A span named ``name`` under ``parent`` (a ``traceparent``), or a new trace's
        first span when ``parent`` is absent or invalid."""
        context = parse(parent)
        return IdSpan(context.child() if context is not None else start())

    def close(self) -> None:
        """Send what is not yet exported (nothing, here); may block on a collector."""
        return None


def tracer_for(config: TracingConfig) -> Tracer:
    """Ids only, unless ``tracing.otlp_endpoint`` names a collector to export spans to
    (OpenTelemetry is imported only then: it is an optional extra)."""
    if config.otlp_endpoint is None:
        return Tracer()
    from gateway.otel import OtelTracer  # noqa: PLC0415 - optional dependency

    return OtelTracer.exporting(config.otlp_endpoint, service_name=config.service_name)
