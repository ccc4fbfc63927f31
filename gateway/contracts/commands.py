"""The ``gateway contracts`` subcommands: lint, check, export.

    gateway contracts lint contracts/
    gateway contracts check old.yaml new.yaml --mode full --json
    gateway contracts export --asyncapi --out asyncapi.json

``check`` exits 0 when compatible, 1 when not, 2 when an input is invalid.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from gateway.contracts.compat import Mode, Policy, Report, compare
from gateway.contracts.document import parse_contract
from gateway.contracts.files import load_catalog, read_error, read_yaml
from gateway.contracts.lint import lint_directory
from gateway.errors import InvalidContract

Say = Callable[[str], None]
_ARROW = {(True, False): "narrows", (False, True): "widens", (True, True): "breaks both"}


def lint_command(directory: Path, *, as_json: bool, say: Say) -> int:
    if not directory.is_dir():
        raise InvalidContract(f"contracts directory {directory} does not exist")
    good, findings = lint_directory(directory)
    if as_json:
        say(
            json.dumps(
                {
                    "ok": not findings,
                    "contracts": [c.ref for c in good],
                    "findings": [dataclasses.asdict(f) for f in findings],
                },
                indent=2,
            )
        )
        return 1 if findings else 0
    for contract in good:
        say(f"ok     {contract.ref}")
    for finding in findings:
        say(f"error  {finding}")
    say(f"{len(good)} contract version(s) fine, {len(findings)} problem(s) in {directory}")
    return 1 if findings else 0


_CONTRACT_ONLY = frozenset({"schema", "owner", "producers", "consumers", "classification"})
"""Members of a contract file that no JSON Schema 2020-12 vocabulary defines."""
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _load_schema(path: Path) -> tuple[Any, str, Mode | None, Policy | None]:
    """A contract file or a bare JSON Schema file: (schema, label, the file's mode and policy).

    A mapping with any member only contract files have is read as a contract
    file, so a contract that lacks ``id`` or ``schema`` is refused rather than
    compared as a schema that allows everything.
    """
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else read_yaml(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise InvalidContract(f"{path}: cannot read: {read_error(exc)}") from exc
    if isinstance(data, dict) and _CONTRACT_ONLY & data.keys():
        try:
            contract = parse_contract(data)
        except InvalidContract as exc:
            raise InvalidContract(f"{path}: {exc.detail}", exc.problems) from exc
        return contract.schema, contract.ref, contract.compatibility, contract.compatibility_policy
    try:
        Draft202012Validator.check_schema(data)
    except SchemaError as exc:
        raise InvalidContract(
            f"{path}: not a JSON Schema 2020-12 nor a contract file: {exc.message[:200]}"
        ) from exc
    if isinstance(data, dict) and data.get("$schema", _DIALECT) != _DIALECT:
        raise InvalidContract(f"{path}: $schema must be {_DIALECT} (JSON Schema 2020-12)")
    return data, str(path), None, None


def check_command(
    old_path: Path,
    new_path: Path,
    *,
    mode: Mode | None,
    policy: Policy | None,
    as_json: bool,
    say: Say,
) -> int:
    """``mode`` and ``policy`` default to what the old contract declares (as registering does)."""
    old, old_label, declared_mode, declared_policy = _load_schema(old_path)
    new, new_label, _, _ = _load_schema(new_path)
    chosen = mode or declared_mode or Mode.BACKWARD
    policy = policy or declared_policy or Policy.STRICT
    report = compare(old, new, policy=policy)
    ok = report.compatible(chosen)
    if as_json:
        say(
            json.dumps(
                {
                    "old": old_label,
                    "new": new_label,
                    "mode": chosen.value,
                    "policy": policy.value,
                    "compatible": ok,
                    "backward": report.backward,
                    "forward": report.forward,
                    "changes": [c.as_dict() for c in report.changes],
                },
                indent=2,
            )
        )
    else:
        _print_report(report, old_label, new_label, mode=chosen, policy=policy, say=say)
    return 0 if ok else 1


def _print_report(
    report: Report, old: str, new: str, *, mode: Mode, policy: Policy, say: Say
) -> None:
    say(f"{old} -> {new}  (mode {mode.value}, {policy.value} policy)")
    if not report.changes:
        say("  no changes that affect which payloads are valid")
    for c in report.changes:
        effect = _ARROW.get((c.breaks_backward, c.breaks_forward), "harmless")
        say(f"  {effect:<11} {c.pointer or '/':<40} {c.code}: {c.detail}")
    verdict = "compatible" if report.compatible(mode) else "INCOMPATIBLE"
    say(
        f"{verdict} under {mode.value} (backward: {_yes(report.backward)}, "
        f"forward: {_yes(report.forward)})"
    )


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def export_command(
    directory: Path, *, prefix: str, bootstrap: str | None, out: Path | None, say: Say
) -> int:
    from gateway.contracts.asyncapi import asyncapi_document  # noqa: PLC0415 - optional export

    document = asyncapi_document(load_catalog(directory), prefix=prefix, bootstrap=bootstrap)
    text = json.dumps(document, indent=2)
    if out is None:
        say(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        say(
            f"wrote {out}: AsyncAPI {document['asyncapi']}, "
            f"{len(document.get('channels', {}))} channel(s)"
        )
    return 0
