"""``gateway contracts lint``: every defect of a contracts directory, by file and pointer.

Checks, per file: YAML syntax, the contract-file schema (contracts/README.md),
JSON Schema 2020-12 validity, examples passing or failing as labelled, id and
version matching the path; then, per contract, that the versions form a
compatible history under their declared modes, migrations included.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from gateway.contracts.catalog import ContractCatalog
from gateway.contracts.document import parse_contract
from gateway.contracts.files import contract_files, read_error, read_yaml
from gateway.contracts.model import ContractVersion
from gateway.errors import IncompatibleContract, InvalidContract, VersionExists


@dataclass(frozen=True, slots=True)
class Finding:
    file: str
    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.pointer or '/'}: {self.message}"


def lint_directory(directory: Path) -> tuple[list[ContractVersion], list[Finding]]:
    """The contracts that passed every check, and every finding."""
    findings: list[Finding] = []
    parsed: list[tuple[Path, ContractVersion]] = []
    for path in contract_files(directory):
        contract = _lint_file(path, findings)
        if contract is not None:
            parsed.append((path, contract))
    catalog = ContractCatalog()
    good = []
    for path, contract in sorted(parsed, key=lambda item: (item[1].id, item[1].version)):
        try:
            catalog.register(contract)
            good.append(contract)
        except IncompatibleContract as exc:
            findings += [
                Finding(
                    str(path),
                    "/schema" + c["pointer"],
                    f"{c['code']} breaks "
                    f"{exc.mode.value} compatibility with {a['version']}: "
                    f"{c['detail']}",
                )
                for a in exc.extensions()["against"]
                for c in a["changes"]
            ]
        except InvalidContract as exc:
            findings += [Finding(str(path), p.pointer, p.message) for p in exc.problems]
        except VersionExists as exc:
            findings.append(Finding(str(path), "", exc.detail))
    return good, findings


def _lint_file(path: Path, findings: list[Finding]) -> ContractVersion | None:
    try:
        data = read_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        findings.append(Finding(str(path), "", f"cannot read: {read_error(exc)}"))
        return None
    try:
        contract = parse_contract(data)
    except InvalidContract as exc:
        findings += [Finding(str(path), p.pointer, p.message) for p in exc.problems]
        return None
    expected = (path.parent.name, path.stem)
    if (contract.id, str(contract.version)) != expected:
        findings.append(
            Finding(
                str(path),
                "/id" if contract.id != expected[0] else "/version",
                f"declares {contract.ref} but the path says {expected[0]}@{expected[1]}",
            )
        )
        return None
    return contract
