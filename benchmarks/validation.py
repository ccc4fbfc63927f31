"""Payload validation throughput: the gateway's jsonschema path against jsonschema_rs.

    python benchmarks/validation.py [--seconds N] [--repeat R] [--json]

For every shipped contract version (``contracts/<id>/<version>.yaml``) the
script times, on one core, validating the contract's own examples:

- ``ref violations()``: ``PayloadValidator.violations`` as the gateway runs it
  (jsonschema ``Draft202012Validator``, format checker on, compiled once);
- ``jsonschema is_valid``: the same jsonschema validator's ``is_valid``, to
  show what the gateway's violation bookkeeping costs on top;
- ``rs is_valid``: ``jsonschema_rs.validator_for(schema, validate_formats=True,
  offline=True).is_valid``;
- ``rs+ref formats``: the same, with every format checked by jsonschema's own
  format functions (``formats=``), the variant whose formats agree with the
  gateway by construction;
- on invalid examples also ``rs iter_errors`` (every error, as a list) and the
  cost of a fast path that fails ``rs is_valid`` first and then explains with
  ``ref violations()``.

Each figure is the median over ``--repeat`` timed runs of a
``time.perf_counter`` loop over the examples, after a warm-up that also
calibrates the loop count; ``--seconds`` is the total measuring budget,
shared evenly by all measurements (warm-up and calibration add about 0.6 s
per contract version). Payload sizes are the examples' compact JSON in UTF-8.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import harness  # benchmarks/ is sys.path[0] when run as a script
import yaml
from harness import Timing, pin_one_core
from jsonschema import Draft202012Validator

from gateway.contracts.validation import PayloadValidator

try:
    import jsonschema_rs
except ImportError:  # pragma: no cover - the harness is useless without it
    sys.exit("jsonschema_rs is not installed: pip install jsonschema-rs")

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / "contracts"
PACKAGES = ("jsonschema", "jsonschema_rs", "referencing", "rpds-py", "rfc3339-validator", "rfc3987")
CALIBRATION_SECONDS = 0.02


class _JsonLikeLoader(yaml.SafeLoader):
    """YAML read as the catalog reads it: ``2024-05-01`` stays a string."""


_JsonLikeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class Contract:
    ref: str
    schema: Any
    valid: tuple[Any, ...]
    invalid: tuple[Any, ...]


@dataclass
class Row:
    contract: str
    valid_bytes: list[int]
    invalid_bytes: list[int]
    valid: dict[str, Timing] = field(default_factory=dict)
    invalid: dict[str, Timing] = field(default_factory=dict)
    rs_agrees: bool = True


def load_contracts(directory: Path) -> list[Contract]:
    contracts = []
    for path in sorted(directory.glob("*/*.yaml")):
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_JsonLikeLoader)
        examples = doc.get("examples") or {}
        contracts.append(
            Contract(
                ref=f"{doc['id']}@{doc['version']}",
                schema=doc["schema"],
                valid=tuple(examples.get("valid", ())),
                invalid=tuple(examples.get("invalid", ())),
            )
        )
    return contracts


def compact_size(payload: Any) -> int:
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


def reference_formats() -> dict[str, Callable[[str], bool]]:
    """jsonschema's own format functions, in the shape jsonschema_rs takes."""
    checker = Draft202012Validator.FORMAT_CHECKER

    def make(name: str) -> Callable[[str], bool]:
        return lambda value: checker.conforms(value, name)

    return {name: make(name) for name in checker.checkers}


def _run(fn: Callable[[Any], object], payloads: Sequence[Any], loops: int, *, clean: bool) -> float:
    if clean:
        gc.collect()
    start = time.perf_counter()
    for _ in range(loops):
        for payload in payloads:
            fn(payload)
    return time.perf_counter() - start


def measure(
    fn: Callable[[Any], object], payloads: Sequence[Any], seconds: float, repeat: int
) -> Timing:
    """Median microseconds per call of ``fn`` over ``payloads``."""
    loops = 1
    while (elapsed := _run(fn, payloads, loops, clean=False)) < CALIBRATION_SECONDS:  # warm-up
        loops *= 2
    per_call = elapsed / (loops * len(payloads))
    loops = max(1, round(seconds / repeat / (per_call * len(payloads))))
    runs = [
        _run(fn, payloads, loops, clean=True) / (loops * len(payloads)) * 1e6 for _ in range(repeat)
    ]
    median = statistics.median(runs)
    return Timing(
        median_us=round(median, 4),
        min_us=round(min(runs), 4),
        max_us=round(max(runs), 4),
        per_second=round(1e6 / median),
        loops=loops,
    )


def _fast_path(rs: Any, reference: PayloadValidator) -> Callable[[Any], object]:
    def check(payload: Any) -> object:
        return rs.is_valid(payload) or reference.violations(payload)

    return check


def bench_contract(contract: Contract, seconds: float, repeat: int) -> Row:
    reference = PayloadValidator(contract.schema)
    plain = Draft202012Validator(
        contract.schema, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    rs = jsonschema_rs.validator_for(contract.schema, validate_formats=True, offline=True)
    rs_ref = jsonschema_rs.validator_for(
        contract.schema, validate_formats=True, offline=True, formats=reference_formats()
    )
    row = Row(
        contract=contract.ref,
        valid_bytes=[compact_size(p) for p in contract.valid],
        invalid_bytes=[compact_size(p) for p in contract.invalid],
    )
    row.rs_agrees = all(rs.is_valid(p) for p in contract.valid) and not any(
        rs.is_valid(p) for p in contract.invalid
    )

    def rs_errors(payload: Any) -> object:
        return list(rs.iter_errors(payload))

    if contract.valid:
        cases: dict[str, Callable[[Any], object]] = {
            "ref violations()": reference.violations,
            "jsonschema is_valid": plain.is_valid,
            "rs is_valid": rs.is_valid,
            "rs+ref formats": rs_ref.is_valid,
        }
        for name, fn in cases.items():
            row.valid[name] = measure(fn, contract.valid, seconds, repeat)
    if contract.invalid:
        cases = {
            "ref violations()": reference.violations,
            "rs is_valid": rs.is_valid,
            "rs iter_errors": rs_errors,
            "fast path": _fast_path(rs, reference),
        }
        for name, fn in cases.items():
            row.invalid[name] = measure(fn, contract.invalid, seconds, repeat)
    return row


def machine() -> dict[str, Any]:
    return harness.machine(PACKAGES)


def _speedup(row: dict[str, Timing], base: str, other: str) -> str:
    if base not in row or other not in row:
        return "-"
    return f"{row[base].median_us / row[other].median_us:.1f}x"


def _cell(timing: Timing | None) -> str:
    if timing is None:
        return "-"
    return f"{timing.median_us:.1f} ({timing.per_second:,.0f}/s)"


def render(rows: list[Row], overhead_us: float) -> str:
    valid_cols = ["ref violations()", "jsonschema is_valid", "rs is_valid", "rs+ref formats"]
    invalid_cols = ["ref violations()", "rs is_valid", "rs iter_errors", "fast path"]
    lines = [
        "Valid examples: median microseconds per validation (validations per second)",
        "",
        "| contract | bytes | " + " | ".join(valid_cols) + " | rs speedup |",
        "|---|---|" + "---|" * (len(valid_cols) + 1),
    ]
    for row in rows:
        cells = [_cell(row.valid.get(c)) for c in valid_cols]
        sizes = "/".join(map(str, row.valid_bytes)) or "-"
        speed = _speedup(row.valid, "ref violations()", "rs is_valid")
        lines.append(f"| {row.contract} | {sizes} | " + " | ".join(cells) + f" | {speed} |")
    lines += [
        "",
        "Invalid examples (error path): median microseconds per validation",
        "",
        "| contract | bytes | " + " | ".join(invalid_cols) + " | rs speedup |",
        "|---|---|" + "---|" * (len(invalid_cols) + 1),
    ]
    for row in rows:
        cells = [_cell(row.invalid.get(c)) for c in invalid_cols]
        sizes = "/".join(map(str, row.invalid_bytes)) or "-"
        speed = _speedup(row.invalid, "ref violations()", "rs is_valid")
        lines.append(f"| {row.contract} | {sizes} | " + " | ".join(cells) + f" | {speed} |")
    lines += [
        "",
        f"Loop and call overhead (a no-op builtin): {overhead_us * 1000:.0f} ns per call.",
    ]
    disagreeing = [row.contract for row in rows if not row.rs_agrees]
    if disagreeing:
        lines.append("jsonschema_rs DISAGREES with the examples of: " + ", ".join(disagreeing))
    else:
        lines.append("jsonschema_rs agrees with the reference on every example benchmarked.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="total measuring budget")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--contracts", type=Path, default=CONTRACTS)
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.repeat < 1:
        parser.error("--seconds must be positive and --repeat at least 1")

    pinned = pin_one_core()
    contracts = load_contracts(args.contracts)
    if not contracts:
        parser.error(f"no contracts under {args.contracts}")
    count = sum(4 * bool(c.valid) + 4 * bool(c.invalid) for c in contracts)
    per_measurement = args.seconds / count
    started = time.perf_counter()
    overhead = measure(id, [None] * 8, per_measurement, args.repeat).median_us
    rows = [bench_contract(c, per_measurement, args.repeat) for c in contracts]
    wall = time.perf_counter() - started

    if args.json:
        report = {
            "machine": machine() | {"affinity": pinned},
            "command": " ".join(["python", *sys.argv]),
            "seconds": args.seconds,
            "repeat": args.repeat,
            "wall_seconds": round(wall, 2),
            "overhead_us": round(overhead, 4),
            "results": [asdict(row) for row in rows],
        }
        print(json.dumps(report, indent=2))
    else:
        info = machine()
        print(
            f"Python {info['python']} on {info['platform']}, {info['cpus']} CPUs, {pinned}; "
            + ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v)
        )
        print(f"{args.repeat} runs per measurement, {per_measurement:.2f}s each; {wall:.1f}s\n")
        print(render(rows, overhead))
    return 0


if __name__ == "__main__":
    sys.exit(main())
