"""deploy/grafana/gateway-dashboard.json: parses, and queries only the gateway's metrics.

The metric names are the ones the node serves at /metrics; a dashboard that
names anything else shows an empty panel without complaint, so every PromQL
expression is taken apart here and each identifier checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "gateway-dashboard.json"
COUNTERS = {
    "gateway_publishes_total",
    "gateway_deliveries_total",
    "gateway_validation_failures_total",
    "gateway_dead_letters_total",
    "gateway_crypto_operations_total",
}
HISTOGRAMS = {"gateway_publish_ack_seconds", "gateway_end_to_end_seconds"}
GAUGES = {"gateway_inbox_lag"}
METRICS = (
    COUNTERS
    | GAUGES
    | {f"{h}{suffix}" for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
)
PROMQL = {
    # functions, aggregations and keywords the dashboard may use
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "irate",
    "histogram_quantile", "label_values", "and", "or", "unless", "on", "ignoring",
}  # fmt: skip


def expressions(node: Any) -> Iterator[str]:
    """Every PromQL text in the dashboard: panel targets and template variable queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"expr", "definition"} and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, dict) and "query" in value:
                yield value["query"]
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


def identifiers(expr: str) -> set[str]:
    """Metric and function names: label matchers, groupings, ranges and strings removed."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    bare = re.sub(r"\{[^}]*\}", "", bare)  # label matchers
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # range selectors
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", r"\1", bare)  # label lists
    bare = re.sub(r"\$\w+", "", bare)  # Grafana variables ($__rate_interval, $instance)
    bare = re.sub(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*\w+\s*\)", r"label_values(\1)", bare)
    return set(re.findall(r"[a-zA-Z_:][\w:]*", bare))


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def test_the_identifier_extraction_sees_through_matchers_and_groupings() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, contract) (rate(gateway_end_to_end_seconds_bucket"
        '{instance=~"$instance", contract="a{b}"}[$__rate_interval])))'
    )
    assert identifiers(expr) == {"histogram_quantile", "sum", "by", "rate",
                                 "gateway_end_to_end_seconds_bucket"}  # fmt: skip
    assert identifiers("label_values(gateway_publishes_total, instance)") == {
        "label_values",
        "gateway_publishes_total",
    }
    assert identifiers("sum(up) / gateway_inbox_ready") == {"sum", "up", "gateway_inbox_ready"}


def test_the_dashboard_is_grafana_json_with_panels_and_targets(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "gateway-overview"
    assert dashboard["panels"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["title"], panel["id"]
        assert panel["targets"], panel["id"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_every_expression_names_only_the_gateway_metrics(dashboard: dict[str, Any]) -> None:
    found = list(expressions(dashboard))
    assert len(found) >= len(dashboard["panels"])
    for expr in found:
        unknown = identifiers(expr) - METRICS - PROMQL
        assert not unknown, f"{expr!r} names {sorted(unknown)}"
        assert identifiers(expr) & METRICS, f"{expr!r} names no gateway metric"


def test_every_gateway_metric_is_on_the_dashboard(dashboard: dict[str, Any]) -> None:
    named = set().union(*(identifiers(e) for e in expressions(dashboard)))
    for metric in COUNTERS | GAUGES:
        assert metric in named, metric
    for histogram in HISTOGRAMS:
        assert f"{histogram}_bucket" in named, histogram


def test_counters_are_read_as_rates_and_histograms_as_quantiles(
    dashboard: dict[str, Any],
) -> None:
    for expr in expressions(dashboard):
        if "label_values" in expr:
            continue
        for counter in COUNTERS & identifiers(expr):
            assert re.search(rf"(rate|increase)\({counter}\b", expr), expr
        if "_bucket" in expr:
            assert expr.startswith("histogram_quantile("), expr
            assert "by (le" in expr, expr
