"""W3C trace context: parsing, child spans, new traces, and the optional OTLP export."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway.config import TracingConfig, load_config
from gateway.errors import ConfigError
from gateway.otel import OtelTracer
from gateway.tracing import TraceContext, Tracer, parse, start, tracer_for

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def test_a_valid_traceparent_parses() -> None:
    assert parse(PARENT) == TraceContext(TRACE, "00f067aa0ba902b7", "01")
    assert str(parse(PARENT)) == PARENT


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "nope",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-00f067aa0ba902b7-01",  # the forbidden version
        PARENT.upper(),
        PARENT + "-extra",
    ],
)
def test_an_invalid_traceparent_is_none(value: str | None) -> None:
    assert parse(value) is None


def test_a_child_keeps_the_trace_and_flags_with_a_new_parent_id() -> None:
    parent = TraceContext(TRACE, "00f067aa0ba902b7", "00")
    child = parent.child()
    assert (child.trace_id, child.flags) == (TRACE, "00")
    assert child.span_id != parent.span_id
    assert parse(str(child)) == child


def test_new_traces_are_valid_and_distinct() -> None:
    traces = {start().trace_id for _ in range(100)}
    assert len(traces) == 100
    assert all(parse(str(TraceContext(t, "1" * 16))) is not None for t in traces)


def test_the_id_tracer_continues_a_trace_or_starts_one() -> None:
    tracer = Tracer()
    continued = tracer.start("publish", parent=PARENT).context
    assert continued.trace_id == TRACE
    assert continued.span_id != "00f067aa0ba902b7"
    fresh = tracer.start("publish", parent=None).context
    assert fresh.trace_id != TRACE
    restarted = tracer.start("publish", parent=f"00-{'0' * 32}-00f067aa0ba902b7-01").context
    assert restarted.trace_id != "0" * 32
    assert isinstance(tracer_for(TracingConfig()), Tracer)
    assert not isinstance(tracer_for(TracingConfig()), OtelTracer)


def otel() -> tuple[OtelTracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return OtelTracer.processing(SimpleSpanProcessor(exporter), service_name="gw-test"), exporter


def test_exported_spans_carry_the_ids_that_travel() -> None:
    tracer, exporter = otel()
    publish = tracer.start("publish", parent=PARENT, sender="minhealth")
    deliver = tracer.start("deliver", parent=str(publish.context), recipient="socialtreasury")
    deliver.end()
    publish.end()

    done = {span.name: span for span in exporter.get_finished_spans()}
    sent, got = done["publish"], done["deliver"]
    assert f"{sent.context.trace_id:032x}" == TRACE == f"{got.context.trace_id:032x}"
    assert sent.parent is not None
    assert f"{sent.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert f"{sent.context.span_id:016x}" == publish.context.span_id
    assert got.parent is not None
    assert got.parent.span_id == sent.context.span_id
    assert (sent.kind, got.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert sent.attributes == {"sender": "minhealth"}
    assert sent.resource.attributes["service.name"] == "gw-test"
    tracer.close()


def test_a_failed_span_is_exported_with_an_error_status() -> None:
    tracer, exporter = otel()
    tracer.start("publish", parent=None).end(error="contract-violation")
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "contract-violation"
    assert span.parent is None  # a new trace


def config_with(tmp_path: Path, tracing: dict[str, Any]) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"tracing": tracing}))
    return path


def test_tracing_is_off_unless_an_endpoint_is_configured(tmp_path: Path) -> None:
    assert load_config(config_with(tmp_path, {}), environ={}).tracing.otlp_endpoint is None


@pytest.mark.parametrize("endpoint", ["collector:4318", "ftp://collector/", "http://"])
def test_a_bad_otlp_endpoint_is_refused(tmp_path: Path, endpoint: str) -> None:
    with pytest.raises(ConfigError, match=r"tracing\.otlp_endpoint: an http:// or https:// URL"):
        load_config(config_with(tmp_path, {"otlp_endpoint": endpoint}), environ={})


def test_an_endpoint_without_opentelemetry_installed_is_refused_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def without_otel(name: str, package: str | None = None) -> Any:
        if name.startswith("opentelemetry"):
            raise ModuleNotFoundError(name)
        return real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", without_otel)
    path = config_with(tmp_path, {"otlp_endpoint": "http://collector:4318/v1/traces"})
    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})
    assert "pip install 'gateway[otel]'" in str(refused.value)
    assert "opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http missing" in str(refused.value)
