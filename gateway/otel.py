"""OpenTelemetry export of the publish and deliver spans (the optional ``otel`` extra).

Imported only when ``tracing.otlp_endpoint`` is set (the config check refuses
that setting when the packages are missing). The spans' ids are the ones that
travel: the ``traceparent`` in the Kafka headers is the publish span's, the one
handed to the participant the deliver span's.

    tracer = OtelTracer.exporting("http://collector:4318/v1/traces", service_name="gateway")
    span = tracer.start("publish", parent=None, sender="minhealth")
    span.end()
    tracer.close()  # flushes what the batch processor holds
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode

from gateway.tracing import Span, TraceContext, Tracer, parse

_KINDS = {"publish": SpanKind.PRODUCER, "deliver": SpanKind.CONSUMER}
_EXPORT_TIMEOUT_S = 5
"""Longest one export (with its retries) may take: a collector that is down costs the
node a background thread's time, and its shutdown at most this much."""


@dataclass(slots=True)
class OtelSpan:
    span: trace.Span
    context: TraceContext

    def end(self, *, error: str | None = None) -> None:
        if error is not None:
            self.span.set_status(Status(StatusCode.ERROR, error))
        self.span.end()


class OtelTracer(Tracer):
    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("gateway")

    @classmethod
    def exporting(cls, endpoint: str, *, service_name: str) -> OtelTracer:
        """Spans batched to an OTLP/HTTP collector at ``endpoint``."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        exporter: SpanExporter = OTLPSpanExporter(endpoint=endpoint, timeout=_EXPORT_TIMEOUT_S)
        return cls.processing(BatchSpanProcessor(exporter), service_name=service_name)

    @classmethod
    def processing(cls, processor: SpanProcessor, *, service_name: str) -> OtelTracer:
        """Spans handed to ``processor`` (tests: a simple one over an in-memory exporter)."""
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(processor)
        return cls(provider)

    def start(self, name: str, *, parent: str | None, **attributes: str) -> Span:
        remote = parse(parent)
        context = None
        if remote is not None:
            span_context = SpanContext(
                trace_id=int(remote.trace_id, 16),
                span_id=int(remote.span_id, 16),
                is_remote=True,
                trace_flags=trace.TraceFlags(int(remote.flags, 16)),
            )
            context = trace.set_span_in_context(NonRecordingSpan(span_context))
        span = self._tracer.start_span(
            name, context=context, kind=_KINDS.get(name, SpanKind.INTERNAL), attributes=attributes
        )
        made = span.get_span_context()
        ids = TraceContext(
            format(made.trace_id, "032x"), format(made.span_id, "016x"), f"{made.trace_flags:02x}"
        )
        return OtelSpan(span, ids)

    def close(self) -> None:
        """Export what is batched, then stop (blocking: call it off the event loop)."""
        self._provider.shutdown()
