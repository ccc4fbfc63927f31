"""The metrics registry and its Prometheus text exposition (format 0.0.4)."""

from __future__ import annotations

import math
import re

import pytest

from gateway.metrics import Registry, escape_label, number

# One line of the text format: a comment (HELP/TYPE) or a sample with escaped labels.
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(
    rf"^[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{{{_LABEL}(?:,{_LABEL})*\}})? "
    r"(?:[+-]?Inf|NaN|-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)$"
)
_COMMENT = re.compile(
    r"^# (?:HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* "
    r"(?:counter|gauge|histogram))$"
)


def well_formed(text: str) -> bool:
    lines = text.split("\n")
    return lines[-1] == "" and all(_SAMPLE.match(x) or _COMMENT.match(x) for x in lines[:-1])


def test_a_counter_renders_help_type_and_one_sample_per_label_set_in_order() -> None:
    registry = Registry()
    sent = registry.counter("sent_total", "Messages sent.", ("contract", "outcome"))
    sent.inc("b", "accepted")
    sent.inc("a", "accepted", amount=2)
    sent.inc("b", "accepted")

    assert registry.render() == (
        "# HELP sent_total Messages sent.\n"
        "# TYPE sent_total counter\n"
        'sent_total{contract="a",outcome="accepted"} 2\n'
        'sent_total{contract="b",outcome="accepted"} 2\n'
    )
    assert sent.value("b", "accepted") == 2
    assert sent.value("c", "accepted") == 0


def test_label_values_and_help_are_escaped() -> None:
    registry = Registry()
    odd = registry.counter("odd_total", "Back\\slash and\nnewline.", ("v",))
    odd.inc('a"b\\c\nd')

    text = registry.render()

    assert "# HELP odd_total Back\\\\slash and\\nnewline.\n" in text
    assert 'odd_total{v="a\\"b\\\\c\\nd"} 1\n' in text
    assert well_formed(text)
    assert escape_label("plain") == "plain"


def test_a_metric_without_labels_has_no_braces() -> None:
    registry = Registry()
    registry.counter("up_total", "Up.").inc()
    assert registry.render().endswith("\nup_total 1\n")


def test_a_histogram_counts_cumulatively_with_le_inclusive_and_inf() -> None:
    registry = Registry()
    latency = registry.histogram("lat_seconds", "Latency.", ("contract",), buckets=(0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        latency.observe(value, "c")

    text = registry.render()

    assert text == (
        "# HELP lat_seconds Latency.\n"
        "# TYPE lat_seconds histogram\n"
        'lat_seconds_bucket{contract="c",le="0.1"} 2\n'
        'lat_seconds_bucket{contract="c",le="1"} 4\n'
        'lat_seconds_bucket{contract="c",le="+Inf"} 5\n'
        'lat_seconds_sum{contract="c"} 8.65\n'
        'lat_seconds_count{contract="c"} 5\n'
    )
    assert latency.count("c") == 5
    assert latency.count("other") == 0
    assert well_formed(text)


def test_a_gauge_is_set_not_added() -> None:
    registry = Registry()
    lag = registry.gauge("lag", "Lag.", ("participant",))
    lag.set(7, "p")
    lag.set(3, "p")
    assert registry.render().endswith('lag{participant="p"} 3\n')
    assert lag.value("p") == 3


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (3.0, "3"),
        (0.25, "0.25"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        (2.0**60, "1.152921504606847e+18"),
    ],
)
def test_numbers_are_spelled_as_the_format_wants(value: float, text: str) -> None:
    assert number(value) == text


def test_misuse_is_refused() -> None:
    registry = Registry()
    sent = registry.counter("sent_total", "Sent.", ("contract",))
    with pytest.raises(ValueError, match="takes labels"):
        sent.inc("a", "b")
    with pytest.raises(ValueError, match="does not go down"):
        sent.inc("a", amount=-1)
    sent.inc("b", amount=2)
    with pytest.raises(ValueError, match="does not go down"):
        sent.inc("b", amount=-1)  # not on a series that exists either
    assert sent.value("b") == 2
    with pytest.raises(ValueError, match="registered twice"):
        registry.counter("sent_total", "Again.")
    with pytest.raises(ValueError, match="increasing"):
        registry.histogram("h", "H.", buckets=(1.0, 0.5))
    with pytest.raises(ValueError, match="finite"):
        registry.histogram("h2", "H.", buckets=(1.0, math.inf))
    with pytest.raises(ValueError, match="takes labels"):
        registry.gauge("g", "G.", ("p",)).set(1)
    assert sent.value("a") == 0  # nothing half-recorded
