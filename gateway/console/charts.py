"""Charts as geometry: the console draws them as inline SVG, with no script and no service.

A chart is a list of shapes with their text (each bar carries a ``<title>``
tooltip and the chart an accessible name); the template turns it into SVG.
Every chart also goes out as a table, for screen readers and for copying.

    chart = stacked_bars(points, label=hour_label, title="Publishes per hour")
    chart = horizontal_bars([("/patient/birthDate", 12), ("/reason", 3)], title="...")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.console.quality import Point

WIDTH = 720
HEIGHT = 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 12, 28
_ROW = 26
_LABEL_W = 260


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    kind: str
    """The CSS class: ``accepted``, ``rejected`` or ``bar``."""
    title: str


@dataclass(frozen=True, slots=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass(frozen=True, slots=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    width: int
    height: int
    rects: list[Rect]
    texts: list[Text]
    lines: list[Line]

    @property
    def empty(self) -> bool:
        return not self.rects


def stacked_bars(points: Sequence[Point], *, label: Callable[[float], str], title: str) -> Chart:
    """One bar per point: accepted at the bottom, rejected stacked on top."""
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    peak = _nice(max((p.accepted + p.rejected for p in points), default=0))
    slot = plot_w / max(len(points), 1)
    bar_w = max(slot * 0.7, 1.0)
    rects: list[Rect] = []
    texts = [
        Text(_LEFT - 6, _TOP + 4, str(peak), "end"),
        Text(_LEFT - 6, _TOP + plot_h, "0", "end"),
    ]
    lines = [
        Line(_LEFT, _TOP + plot_h, _LEFT + plot_w, _TOP + plot_h),
        Line(_LEFT, _TOP, _LEFT + plot_w, _TOP),
    ]
    every = max(1, len(points) // 6)
    for i, point in enumerate(points):
        x = _LEFT + i * slot + (slot - bar_w) / 2
        when = label(point.start)
        base = float(_TOP + plot_h)
        for count, kind in ((point.accepted, "accepted"), (point.rejected, "rejected")):
            if count:
                height = plot_h * count / peak
                base -= height
                rects.append(Rect(x, base, bar_w, height, kind, f"{when}: {count} {kind}"))
        if i % every == 0:
            texts.append(Text(x + bar_w / 2, HEIGHT - 8, when))
    return Chart(title, WIDTH, HEIGHT, rects, texts, lines)


def horizontal_bars(items: Sequence[tuple[str, int]], *, title: str) -> Chart:
    """One row per item, longest first as given: the label left, the bar and count right."""
    height = _TOP + _ROW * len(items) + 4
    peak = max((count for _, count in items), default=0) or 1
    room = WIDTH - _LABEL_W - 60
    rects, texts = [], []
    for i, (name, count) in enumerate(items):
        y = _TOP + i * _ROW
        shown = name if len(name) <= 40 else name[:39] + "…"
        texts.append(Text(_LABEL_W - 8, y + 15, shown, "end"))
        width = max(room * count / peak, 2.0)
        rects.append(Rect(_LABEL_W, y + 3, width, _ROW - 8, "bar", f"{name}: {count}"))
        texts.append(Text(_LABEL_W + width + 6, y + 15, str(count), "start"))
    return Chart(title, WIDTH, max(height, 40), rects, texts, [])


def _nice(value: int) -> int:
    """The axis top: ``value`` rounded up to 1, 2 or 5 times a power of ten (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10
