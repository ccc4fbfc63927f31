"""Prometheus metrics: counters, gauges and histograms, and their text exposition.

A small registry of its own rather than ``prometheus-client``: each node (and
each node a test starts in one process) owns its registry, with no global
state to reset; the node runs on one event loop thread, so an increment is a
dict update without a lock (a fraction of a microsecond on the publish path);
and the exposition is a hundred lines that the tests pin to the text format
0.0.4 (HELP and TYPE lines, escaped label values, cumulative ``le`` buckets).

    registry = Registry()
    sent = registry.counter("demo_sent_total", "Messages sent.", ("contract",))
    sent.inc("health.patient-referral")
    print(registry.render())
"""

from __future__ import annotations

import bisect
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import TypeVar

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Seconds: from a millisecond (a publish acknowledged by a near broker) to a minute."""

Labels = tuple[str, ...]


def escape_label(value: str) -> str:
    """A label value as the text format quotes it: backslash, double quote, line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def number(value: float) -> str:
    """A sample value: integers without a fraction, ``+Inf``/``-Inf``/``NaN`` spelled so."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


class Metric(ABC):
    """One metric family: a name, a help text, its label names and its samples."""

    kind = "untyped"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)

    def _selector(self, labels: Labels, extra: str = "") -> str:
        pairs = [f'{n}="{escape_label(v)}"' for n, v in zip(self.labelnames, labels, strict=True)]
        if extra:
            pairs.append(extra)
        return "{" + ",".join(pairs) + "}" if pairs else ""

    def _check(self, labels: Labels) -> None:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, not {labels!r}")

    @abstractmethod
    def samples(self) -> Iterator[str]:
        """The family's sample lines, without the HELP and TYPE lines."""

    def render(self) -> str:
        head = f"# HELP {self.name} {escape_help(self.help)}\n# TYPE {self.name} {self.kind}\n"
        return head + "".join(line + "\n" for line in self.samples())


class Counter(Metric):
    """Only goes up (until the node restarts, which Prometheus' ``rate`` allows for)."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self._values: dict[Labels, float] = {}

    def inc(self, *labels: str, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter does not go down")
        values = self._values
        if labels not in values:
            self._check(labels)
            values[labels] = amount
            return
        values[labels] += amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0)

    def samples(self) -> Iterator[str]:
        for labels, value in sorted(self._values.items()):
            yield f"{self.name}{self._selector(labels)} {number(value)}"


class Gauge(Metric):
    """A value that goes up and down; set when it is measured (at each scrape)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self._values: dict[Labels, float] = {}

    def set(self, value: float, *labels: str) -> None:
        self._check(labels)
        self._values[labels] = value

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0)

    def samples(self) -> Iterator[str]:
        for labels, value in sorted(self._values.items()):
            yield f"{self.name}{self._selector(labels)} {number(value)}"


class Histogram(Metric):
    """Observations counted in buckets (``le``: less than or equal), with their sum."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] = LATENCY_BUCKETS_S,
    ) -> None:
        super().__init__(name, help_text, labelnames)
        bounds = tuple(float(b) for b in buckets)
        if not bounds or list(bounds) != sorted(set(bounds)) or math.isinf(bounds[-1]):
            raise ValueError(f"{name}: buckets must be finite, distinct and increasing")
        self.bounds = bounds
        self._series: dict[Labels, list[float]] = {}
        """Per label set: a count per bucket (not cumulative; the last one past every
        bound), then the sum of the observations."""

    def observe(self, value: float, *labels: str) -> None:
        series = self._series.get(labels)
        if series is None:
            self._check(labels)
            series = self._series[labels] = [0.0] * (len(self.bounds) + 2)
        series[bisect.bisect_left(self.bounds, value)] += 1
        series[-1] += value

    def count(self, *labels: str) -> int:
        series = self._series.get(labels)
        return int(sum(series[:-1])) if series is not None else 0

    def samples(self) -> Iterator[str]:
        for labels, series in sorted(self._series.items()):
            cumulative = 0.0
            for bound, count in zip((*self.bounds, math.inf), series, strict=False):
                cumulative += count
                le = f'le="{number(bound)}"'
                yield f"{self.name}_bucket{self._selector(labels, le)} {number(cumulative)}"
            yield f"{self.name}_sum{self._selector(labels)} {number(series[-1])}"
            yield f"{self.name}_count{self._selector(labels)} {number(cumulative)}"


_M = TypeVar("_M", bound=Metric)


class Registry:
    """The metric families of one node, rendered in the order they were made."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}

    def _add(self, metric: _M) -> _M:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} is registered twice")
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> Counter:
        return self._add(Counter(name, help_text, labelnames))

    def gauge(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> Gauge:
        return self._add(Gauge(name, help_text, labelnames))

    def histogram(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] = LATENCY_BUCKETS_S,
    ) -> Histogram:
        return self._add(Histogram(name, help_text, labelnames, buckets=buckets))

    def render(self) -> str:
        return "".join(metric.render() for metric in self._metrics.values())
