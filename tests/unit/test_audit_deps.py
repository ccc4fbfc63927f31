"""scripts/audit_deps.py: an audit that cannot look a package up must say so, never pass."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "audit_deps.py"


@pytest.fixture(scope="module")
def audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_deps", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["audit_deps"] = module
    spec.loader.exec_module(module)
    return module


def skipped(name: str, version: str) -> dict[str, Any]:
    reason = f"Dependency not found on PyPI and could not be audited: {name} ({version})"
    return {"name": name, "skip_reason": reason}


def test_a_clean_audit_passes(audit: ModuleType) -> None:
    report = {"dependencies": [{"name": "a", "version": "1", "vulns": []}]}
    verdict = audit.judge(report, require=True)
    assert verdict.code == 0
    assert "1 of 1 locked packages audited, none vulnerable" in verdict.text


def test_a_known_vulnerability_fails_and_is_named(audit: ModuleType) -> None:
    vuln = {"id": "PYSEC-1", "fix_versions": ["2"]}
    report = {"dependencies": [{"name": "a", "version": "1", "vulns": [vuln]}]}
    verdict = audit.judge(report, require=False)
    assert verdict.code == 1
    assert "a 1: PYSEC-1 (fixed in 2)" in verdict.text


def test_skipped_packages_are_reported_and_fail_when_required(audit: ModuleType) -> None:
    report = {"dependencies": [skipped("a", "1"), {"name": "b", "version": "2", "vulns": []}]}
    assert audit.judge(report, require=False).code == 0
    required = audit.judge(report, require=True)
    assert required.code == 2
    assert "NOT AUDITED: 1" in required.text
    assert "  a: Dependency not found" in required.text


def test_an_empty_lock_fails(audit: ModuleType) -> None:
    assert audit.judge({"dependencies": []}, require=False).code == 1


def test_the_project_record_audits_the_latest_release(audit: ModuleType) -> None:
    records = {
        "a": {"info": {"version": "1"}, "vulnerabilities": [{"id": "GHSA-x", "fixed_in": ["1.1"]}]},
        "b": {"info": {"version": "3"}, "vulnerabilities": []},
        "c": {"info": {"version": "5"}, "vulnerabilities": [{"id": "old", "withdrawn": "2026"}]},
    }
    report = {"dependencies": [skipped("a", "1"), skipped("b", "2"), skipped("c", "5")]}

    audit.fill_in(report, records.get)

    a, b, c = report["dependencies"]
    assert a["vulns"] == [{"id": "GHSA-x", "fix_versions": ["1.1"]}]
    assert b["skip_reason"] == "locked 2; only the latest release (3) is reachable"
    assert c["vulns"] == []  # a withdrawn advisory is no advisory
    verdict = audit.judge(report, require=False)
    assert verdict.code == 1
    assert "GHSA-x" in verdict.text


def test_an_unreachable_record_leaves_the_package_unaudited(audit: ModuleType) -> None:
    report = {"dependencies": [skipped("a", "1")]}
    audit.fill_in(report, lambda name: None)
    assert "skip_reason" in report["dependencies"][0]
    assert audit.judge(report, require=True).code == 2


def test_the_lock_pins_every_declared_dependency_within_its_range() -> None:
    # The audit is only worth something if the lock is what pyproject.toml asks for.
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    root = SCRIPT.parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    pins: dict[str, str] = {}
    for line in (root / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    for text in declared:
        requirement = Requirement(text)
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None, f"{requirement.name} is not in requirements.lock"
        assert requirement.specifier.contains(pinned, prereleases=True), (
            f"requirements.lock pins {requirement.name}=={pinned}, outside {requirement.specifier}"
        )
