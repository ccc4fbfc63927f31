"""The end-to-end benchmark's tables, from the results ``benchmarks/e2e.py`` collects.

    print(render(results))

Ratios: "of raw" is the gateway's delivered records per second (messages times
recipients: one envelope each) over the records per second aiokafka alone
consumed at the envelope's size; "of crypto" is delivered messages per second
over what one core does sealing and opening alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

MIB = 1024 * 1024
KIB = 1024
COMPONENTS = ("broker", "node-a", "node-b", "load")


def render(results: dict[str, Any]) -> str:
    parts = [
        _header(results),
        _crypto_table(results["baselines"]["crypto"]),
        _kafka_table(results["baselines"]["kafka"]),
        _throughput_table(results),
        _cost_table(_rows(results)),
        _targets_table(results),
    ]
    if "soak" in results:
        parts.append(_soak(results["soak"]))
    return "\n\n".join(parts) + "\n"


def _rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The scenarios' rows, and the soak's."""
    return [*results["scenarios"], *([results["soak"]] if "soak" in results else [])]


def _table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = list(head)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _header(results: dict[str, Any]) -> str:
    m = results["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    load = ", ".join(f"{x:.2f}" for x in results["load_average"])
    return "\n".join(
        [
            f"{results['date']}: {results['command']}",
            f"Python {m['python']} on {m['platform']}, {m['cpu']}, {m['cpus']} CPUs; {packages}",
            f"broker: {results['broker']}; load average at the start: {load}",
            *_variations(results),
        ]
    )


def _variations(results: dict[str, Any]) -> list[str]:
    """What differs from plain ``gateway serve``: the figures are not comparable then."""
    lines = []
    if results.get("fetch_wait_ms") is not None:
        lines.append(f"WHAT-IF: every consumer's fetch_max_wait_ms = {results['fetch_wait_ms']}")
    if results.get("producer_batch_bytes") is not None:
        lines.append(
            f"WHAT-IF: every producer's max_batch_size = {results['producer_batch_bytes']}"
        )
    if results.get("uvloop"):
        lines.append("WHAT-IF: both nodes on uvloop's event loop")
    if results.get("profiled"):
        lines.append("PROFILED: both nodes ran under cProfile (slower than without)")
    return lines


def _crypto_table(floors: list[dict[str, Any]]) -> str:
    rows = [
        (
            _size(f["size"]),
            str(f["recipients"]),
            f"{f['envelope_bytes']:,}",
            f"{f['seal_us']:,.1f}",
            f"{f['open_us']:,.1f}",
            f"{f['per_s']:,.0f}",
        )
        for f in floors
    ]
    title = (
        "Crypto floor: one core seals a message for every recipient and opens every copy "
        "(Ed25519/X25519, CEK reused for 1,000 messages or 60 s, as the nodes do)"
    )
    head = ("payload", "recipients", "envelope bytes", "seal µs", "open µs", "msg/s")
    return title + "\n\n" + _table(head, rows)


def _kafka_table(ceilings: list[dict[str, Any]]) -> str:
    rows = []
    for c in ceilings:
        per_1000 = {k: v / c["records"] * 1e6 for k, v in c["cpu_s"].items()}
        rows.append(
            (
                _size(c["size"]),
                f"{c['record_bytes']:,}",
                f"{c['produced_per_s']:,.0f}",
                f"{c['consumed_per_s']:,.0f}",
                _latency(c["latency_ms"], "p50"),
                _latency(c["latency_ms"], "p99"),
                " / ".join(
                    f"{per_1000.get(k, math.nan):,.0f}" for k in ("broker", "producer", "consumer")
                ),
            )
        )
    in_flight = ceilings[0]["in_flight"] if ceilings else 0
    title = (
        "Transport ceiling: aiokafka alone, acks=all, producer and consumer in two processes, "
        f"{in_flight} sends in flight, records of the envelope's size"
    )
    head = (
        "payload",
        "record bytes",
        "produced rec/s",
        "consumed rec/s",
        "p50 ms",
        "p99 ms",
        "CPU ms per 1,000 records: broker / producer / consumer",
    )
    return title + "\n\n" + _table(head, rows)


def _throughput_table(results: dict[str, Any]) -> str:
    floors = results["baselines"]["crypto"]
    ceilings = {c["size"]: c for c in results["baselines"]["kafka"]}
    rows = []
    for row in _rows(results):
        s = row["scenario"]
        floor = next(
            f for f in floors if (f["size"], f["recipients"]) == (s["size"], s["recipients"])
        )
        raw = ceilings[s["size"]]["consumed_per_s"]
        delivered = row["delivered_per_s"]
        rows.append(
            (
                row["name"],
                f"{row['accepted_per_s']:,.0f}",
                f"{delivered:,.0f}",
                *(_latency(row["latency_ms"], p) for p in ("p50", "p95", "p99")),
                f"{delivered * s['recipients'] / raw:.0%}",
                f"{delivered / floor['per_s']:.0%}",
                _problems(row),
            )
        )
    head = (
        "scenario",
        "accepted msg/s",
        "delivered msg/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "of raw",
        "of crypto",
        "not delivered / refused",
    )
    title = (
        "Gateway: accepted = answered 202; delivered = acknowledged by every recipient on "
        "node-b; latency = publish request due to the pull that carried it"
    )
    return title + "\n\n" + _table(head, rows)


def _problems(row: dict[str, Any]) -> str:
    refused = {k: v for k, v in row["statuses"].items() if k != "202"}
    text = ", ".join(f"{v} x {'error' if k == '0' else k}" for k, v in refused.items())
    extra = [text] if text else []
    if row["missing"]:
        extra.append(f"{row['missing']} missing")
    if row["duplicates"]:
        extra.append(f"{row['duplicates']} duplicates")
    return "; ".join(extra) or "-"


def _cost_table(rows: list[dict[str, Any]]) -> str:
    lines = []
    for row in rows:
        accepted = max(row["accepted"], 1)
        cpu = [row["cpu_s"].get(k, math.nan) / accepted * 1e6 for k in COMPONENTS]
        rss = [row["peak_rss"].get(k, 0) / MIB for k in COMPONENTS]
        lines.append(
            (
                row["name"],
                *(f"{ms:,.0f}" for ms in cpu),
                f"{sum(c for c in cpu if not math.isnan(c)):,.0f}",
                " / ".join(f"{r:,.0f}" for r in rss),
                f"{row['load_average']:.2f}",
            )
        )
    head = (
        "scenario",
        *(f"{c} ms" for c in COMPONENTS),
        "all ms",
        "peak RSS MiB: " + " / ".join(COMPONENTS),
        "load avg",
    )
    title = "CPU milliseconds per 1,000 messages accepted, per process, and peak RSS sampled"
    return title + "\n\n" + _table(head, lines)


def _targets_table(results: dict[str, Any]) -> str:
    checks = []
    batch, single = _find(results, "closed", "batch"), _find(results, "closed", "single")
    at_1000 = _find(results, "open", "single", rate=1000)
    if batch is not None:
        rate = batch["delivered_per_s"]
        checks.append(_verdict("batch e2e", ">= 5,000 msg/s", f"{rate:,.0f} msg/s", rate >= 5000))
    if single is not None:
        rate = single["delivered_per_s"]
        checks.append(_verdict("single e2e", ">= 1,500 msg/s", f"{rate:,.0f} msg/s", rate >= 1500))
    if at_1000 is not None:
        p99 = at_1000["latency_ms"].get("p99", math.inf)
        checks.append(_verdict("p99 at 1,000 msg/s offered", "< 25 ms", f"{p99:,.1f} ms", p99 < 25))
    checks += _raw_share(results, [r for r in (batch, single) if r is not None])
    checks.append(_rss(results))
    title = "Targets (1 KiB, one recipient, validation + signing + encryption + audit on)"
    return title + "\n\n" + _table(("target", "wanted", "measured", "verdict"), checks)


def _find(
    results: dict[str, Any], loop: str, mode: str, *, rate: float | None = None
) -> dict[str, Any] | None:
    """The 1 KiB, one-recipient row of that kind, if it ran."""
    for row in results["scenarios"]:
        s = row["scenario"]
        if (s["loop"], s["mode"], s["size"], s["recipients"]) == (loop, mode, KIB, 1) and (
            rate is None or s["rate"] == rate
        ):
            return dict(row)
    return None


def _verdict(name: str, wanted: str, measured: str, ok: bool) -> tuple[str, ...]:
    return (name, wanted, measured, "holds" if ok else "does NOT hold")


def _raw_share(results: dict[str, Any], rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    raw = next((c for c in results["baselines"]["kafka"] if c["size"] == KIB), None)
    if not rows or raw is None:
        return []
    best = max(rows, key=lambda r: r["delivered_per_s"])
    share = best["delivered_per_s"] / raw["consumed_per_s"]
    measured = (
        f"{share:.0%} ({best['scenario']['mode']}: {best['delivered_per_s']:,.0f} "
        f"of {raw['consumed_per_s']:,.0f}/s)"
    )
    return [_verdict("delivered vs raw aiokafka", ">= 40%", measured, share >= 0.4)]


def _rss(results: dict[str, Any]) -> tuple[str, ...]:
    nodes = ("node-a", "node-b")
    rows = _rows(results)
    # The larger of the sampled peak and VmHWM (each node is a fresh process per scenario).
    peak = max(
        (r[k].get(n, 0) for r in rows for n in nodes for k in ("peak_rss", "vm_hwm")), default=0
    )
    if "soak" not in results:
        return _verdict(
            "node peak RSS",
            "< 300 MiB, flat",
            f"{peak / MIB:,.0f} MiB; flat: needs --soak",
            peak < 300 * MIB,
        )
    growth = {n: _growth(results["soak"]["series"], n) for n in nodes}
    text = "; ".join(f"{n} {g / MIB:+,.1f} MiB after the first minute" for n, g in growth.items())
    flat = all(g < FLAT_BYTES for g in growth.values())
    return _verdict(
        "node peak RSS",
        "< 300 MiB, flat",
        f"{peak / MIB:,.0f} MiB; {text}",
        peak < 300 * MIB and flat,
    )


FLAT_BYTES = 10 * MIB
"""RSS growth from the end of the soak's first minute to its end still called flat."""


def _growth(series: list[Any], name: str) -> int:
    """RSS at the end minus RSS once the first minute (warm-up, caches filling) is over."""
    settled = next((rss for t, rss, _ in series if t >= 60), series[0][1])
    return int(series[-1][1].get(name, 0) - settled.get(name, 0))


SOAK_NAMES = ("node-a", "node-b", "broker")


def _soak(row: dict[str, Any]) -> str:
    series = row["series"]
    shown = series[:: max(1, len(series) // 20)]
    if shown[-1] is not series[-1]:
        shown.append(series[-1])
    head = (
        "minute",
        *(f"{n} RSS MiB" for n in SOAK_NAMES),
        *(f"{n} CPU %" for n in SOAK_NAMES),
    )
    rows = [
        (
            f"{t / 60:.1f}",
            *(f"{rss.get(n, 0) / MIB:,.1f}" for n in SOAK_NAMES),
            *(_busy(before, (t, cpu), n) for n in SOAK_NAMES),
        )
        for (t, rss, cpu), before in zip(
            shown, [None, *((t, c) for t, _, c in shown[:-1])], strict=True
        )
    ]
    title = (
        f"Soak: {row['name']}: accepted {row['accepted_per_s']:,.0f} msg/s, delivered "
        f"{row['delivered_per_s']:,.0f} msg/s, p99 {_latency(row['latency_ms'], 'p99')} ms; "
        "RSS and CPU (% of one core since the row before) sampled every 10 s"
    )
    return title + "\n\n" + _table(head, rows)


def _busy(
    before: tuple[float, dict[str, float]] | None, now: tuple[float, dict[str, float]], name: str
) -> str:
    if before is None or now[0] <= before[0]:
        return "-"
    used = now[1].get(name, 0.0) - before[1].get(name, 0.0)
    return f"{used / (now[0] - before[0]):.0%}"


def _size(size: int) -> str:
    return f"{size // KIB} KiB"


def _latency(latency: dict[str, float], key: str) -> str:
    return f"{latency[key]:,.1f}" if key in latency else "-"
