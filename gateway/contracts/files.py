"""Contract files on disk: ``<dir>/<contract-id>/<version>.yaml``.

>>> catalog = load_catalog(Path("contracts"))           # doctest: +SKIP
>>> catalog.resolve("health.patient-referral").ref      # doctest: +SKIP
'health.patient-referral@1.1.0'
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from gateway.contracts.catalog import ContractCatalog
from gateway.contracts.document import parse_contract
from gateway.contracts.model import ContractVersion
from gateway.errors import (
    ContractProblem,
    InvalidContract,
)


class _JsonLikeLoader(yaml.SafeLoader):
    """YAML read as JSON would read it: ``2024-05-01`` stays a string, not a date."""


_JsonLikeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_JsonLikeLoader)  # noqa: S506 - a SafeLoader subclass


def read_error(exc: Exception) -> str:
    """One line saying why a file could not be read (YAML errors span several)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())[:200]


def contract_files(directory: Path) -> list[Path]:
    """Every ``<id>/<version>.yaml`` under ``directory``, sorted.

    Hidden names are skipped: :func:`write_contract_file` stages its temporary
    files as ``.<random>.yaml`` next to the real ones, and a crash can leave one.
    """
    return sorted(
        path
        for path in directory.glob("*/*.yaml")
        if not path.name.startswith(".") and not path.parent.name.startswith(".")
    )


def load_catalog(directory: Path) -> ContractCatalog:
    """Load, check and register every ``<id>/<version>.yaml`` under ``directory``."""
    if not directory.is_dir():
        raise InvalidContract(f"contracts directory {directory} does not exist")
    return ContractCatalog(load_contract_file(path) for path in contract_files(directory))


def load_contract_file(path: Path) -> ContractVersion:
    try:
        data = read_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidContract(f"{path}: cannot read contract: {read_error(exc)}") from exc
    try:
        contract = parse_contract(data)
    except InvalidContract as exc:
        raise InvalidContract(f"{path}: {exc.detail}", exc.problems) from exc
    expected = (path.parent.name, path.stem)
    if (contract.id, str(contract.version)) != expected:
        message = f"declares {contract.ref} but its path says {expected[0]}@{expected[1]}"
        where = "/id" if contract.id != expected[0] else "/version"
        raise InvalidContract(f"{path}: {message}", [ContractProblem(where, message)])
    return contract


def write_contract_file(directory: Path, contract: ContractVersion) -> Path:
    """Persist a registered version as YAML, atomically (never a half-written file)."""
    folder = directory / contract.id
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{contract.version}.yaml"
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=".yaml")
    try:
        os.fchmod(fd, 0o644)  # contracts are public documents; mkstemp made it 0600
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(dict(contract.document), handle, sort_keys=False, allow_unicode=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
