"""Audit the locked dependencies (requirements.lock) for known vulnerabilities.

    python scripts/audit_deps.py [--lock requirements.lock] [--require]

Runs pip-audit over the exact versions in the lock (``--no-deps --disable-pip``:
nothing is installed, every version is already pinned) and judges its report:

- a known vulnerability in any locked package: exit 1, with the advisories;
- every package audited and clean: exit 0;
- packages pip-audit could not look up: pip-audit asks PyPI's per-release JSON
  API, and a network that lets pip install but blocks that API makes it skip
  every package while still printing "No known vulnerabilities found". For each
  skipped package the script then reads PyPI's project record, whose
  ``vulnerabilities`` are those of the latest release: a locked version that is
  the latest release is audited that way; an older one stays unaudited;
- packages left unaudited: named in a loud notice, exit 0; exit 2 with
  ``--require`` (or ``GATEWAY_REQUIRE_DEP_AUDIT=1``), for a release pipeline that
  must have every package audited (refresh the lock, or run where the API is).

Regenerate the lock after changing pyproject.toml's dependencies:

    pip-compile --extra test --strip-extras --allow-unsafe --no-emit-index-url \\
        --no-emit-find-links -o requirements.lock pyproject.toml
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Verdict:
    code: int
    text: str


def judge(report: dict[str, Any], *, require: bool) -> Verdict:
    """The exit code and summary for a pip-audit JSON report."""
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if "skip_reason" in d]
    audited = [d for d in deps if "skip_reason" not in d]
    vulnerable = [d for d in audited if d.get("vulns")]
    if vulnerable:
        lines = [f"dependency audit: known vulnerabilities in {len(vulnerable)} package(s)"]
        for dep in vulnerable:
            for vuln in dep["vulns"]:
                fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed release"
                lines.append(f"  {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixed})")
        return Verdict(1, "\n".join(lines))
    if not deps:
        return Verdict(1, "dependency audit: the lock lists no packages")
    clean = (
        f"dependency audit: {len(audited)} of {len(deps)} locked packages audited, none vulnerable"
    )
    if skipped:
        lines = [f"{clean}; NOT AUDITED: {len(skipped)}"]
        lines += [f"  {d['name']}: {d['skip_reason']}" for d in skipped]
        return Verdict(2 if require else 0, "\n".join(lines))
    return Verdict(0, clean)


def fill_in(report: dict[str, Any], lookup: Callable[[str], dict[str, Any] | None]) -> None:
    """Audit each package pip-audit skipped from its PyPI project record, when the locked
    version is the latest release (the record's advisories are that release's)."""
    for dep in report.get("dependencies", []):
        if "skip_reason" not in dep:
            continue
        name = dep["name"]
        version = dep.get("version") or _version_in(dep["skip_reason"])
        record = lookup(name)
        if record is None or version is None:
            continue
        latest = record.get("info", {}).get("version")
        if latest != version:
            dep["skip_reason"] = (
                f"locked {version}; only the latest release ({latest}) is reachable"
            )
            continue
        vulns = [v for v in record.get("vulnerabilities", []) if not v.get("withdrawn")]
        del dep["skip_reason"]
        dep["version"] = version
        dep["vulns"] = [
            {"id": v.get("id", "?"), "fix_versions": v.get("fixed_in", [])} for v in vulns
        ]


def _version_in(reason: str) -> str | None:
    match = re.search(r"\(([^()\s]+)\)$", reason)
    return match.group(1) if match else None


def pypi_record(name: str) -> dict[str, Any] | None:
    url = f"https://pypi.org/pypi/{urllib.parse.quote(name)}/json"
    try:
        with urllib.request.urlopen(url, timeout=20) as answer:
            record: dict[str, Any] = json.load(answer)
            return record
    except (OSError, ValueError):
        return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--require", action="store_true", help="fail when the audit cannot run")
    args = parser.parse_args(argv)
    require = args.require or os.environ.get("GATEWAY_REQUIRE_DEP_AUDIT") == "1"
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "audit.json"
        command = [
            sys.executable,
            "-m",
            "pip_audit",
            "--requirement",
            str(args.lock),
            "--no-deps",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--format",
            "json",
            "--output",
            str(out),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our own argv
        if not out.exists():
            print(f"dependency audit: pip-audit failed ({done.returncode}): {done.stderr[-2000:]}")
            return 1
        report = json.loads(out.read_text())
    fill_in(report, pypi_record)
    verdict = judge(report, require=require)
    print(verdict.text)
    return verdict.code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
