"""The contract catalog: every version of every contract, loaded from files.

Files live at ``<dir>/<contract-id>/<version>.yaml``; the id and version in a
file must match its path, so a file cannot claim to be something else.

    >>> catalog = load_catalog(Path("contracts"))           # doctest: +SKIP
    >>> catalog.resolve("health.patient-referral").ref      # doctest: +SKIP
    'health.patient-referral@1.0.0'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from gateway.config import PARTICIPANT_ID
from gateway.contracts.model import CONTRACT_ID, MAX_CONTRACT_ID, ContractVersion, Version
from gateway.contracts.validation import PayloadValidator
from gateway.errors import InvalidContract, UnknownContract

_REQUIRED = ("id", "version", "owner", "producers", "consumers", "schema")
_ALLOWED = {*_REQUIRED, "title", "description", "examples"}
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _JsonLikeLoader(yaml.SafeLoader):
    """YAML read as JSON would read it: ``2024-05-01`` stays a string, not a date."""


_JsonLikeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class ContractCatalog:
    """Immutable lookup of contract versions by id and version."""

    def __init__(self, versions: Iterator[ContractVersion] | list[ContractVersion]) -> None:
        self._by_id: dict[str, dict[Version, ContractVersion]] = {}
        for contract in versions:
            known = self._by_id.setdefault(contract.id, {})
            if contract.version in known:
                raise InvalidContract(f"{contract.ref} is defined twice")
            known[contract.version] = contract

    def __iter__(self) -> Iterator[ContractVersion]:
        for versions in self._by_id.values():
            yield from sorted(versions.values(), key=lambda c: c.version)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_id.values())

    def resolve(self, name: str) -> ContractVersion:
        """Look up ``id`` (latest version) or ``id@version``."""
        contract_id, at, version_text = name.partition("@")
        versions = self._by_id.get(contract_id)
        if not versions:
            raise UnknownContract(f"no contract named '{_shown(contract_id)}'")
        if not at:
            return versions[max(versions)]
        try:
            version = Version.parse(version_text)
        except InvalidContract as exc:
            raise UnknownContract(exc.detail) from exc
        if version not in versions:
            raise UnknownContract(f"contract '{contract_id}' has no version {version}")
        return versions[version]


def _shown(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


def load_catalog(directory: Path) -> ContractCatalog:
    """Load and check every ``<id>/<version>.yaml`` under ``directory``."""
    if not directory.is_dir():
        raise InvalidContract(f"contracts directory {directory} does not exist")
    files = sorted(directory.glob("*/*.yaml"))
    return ContractCatalog([load_contract_file(path) for path in files])


def load_contract_file(path: Path) -> ContractVersion:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_JsonLikeLoader)  # noqa: S506
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidContract(f"{path}: cannot read contract: {exc}") from exc
    try:
        contract = parse_contract(data)
    except InvalidContract as exc:
        raise InvalidContract(f"{path}: {exc.detail}") from exc
    expected = (path.parent.name, path.stem)
    if (contract.id, str(contract.version)) != expected:
        raise InvalidContract(
            f"{path}: declares {contract.ref} but its path says {expected[0]}@{expected[1]}"
        )
    return contract


def parse_contract(data: Any) -> ContractVersion:
    """Build a contract version from its decoded YAML document."""
    if not isinstance(data, dict):
        raise InvalidContract("a contract file must hold a mapping")
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise InvalidContract(f"missing key '{missing[0]}'")
    unknown = sorted(set(data) - _ALLOWED)
    if unknown:
        raise InvalidContract(f"unknown key '{unknown[0]}'")
    contract_id = _text(data, "id")
    if len(contract_id) > MAX_CONTRACT_ID or not CONTRACT_ID.fullmatch(contract_id):
        raise InvalidContract(f"'{_shown(contract_id)}' is not a valid contract id")
    schema = _schema(data["schema"])
    valid, invalid = _examples(data.get("examples", {}))
    contract = ContractVersion(
        id=contract_id,
        version=Version.parse(str(data["version"])),
        title=str(data.get("title", contract_id)),
        owner=_participant(data, "owner"),
        producers=_participants(data, "producers"),
        consumers=_participants(data, "consumers"),
        schema=schema,
        valid_examples=valid,
        invalid_examples=invalid,
        validator=PayloadValidator(schema),
    )
    _check_examples(contract)
    return contract


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise InvalidContract(f"'{key}' must be a non-empty string")
    return value


def _participant(data: Mapping[str, Any], key: str) -> str:
    value = _text(data, key)
    if not PARTICIPANT_ID.fullmatch(value):
        raise InvalidContract(f"'{key}': '{_shown(value)}' is not a valid participant id")
    return value


def _participants(data: Mapping[str, Any], key: str) -> frozenset[str]:
    value = data[key]
    if not isinstance(value, list) or not value:
        raise InvalidContract(f"'{key}' must be a non-empty list of participant ids")
    return frozenset(_participant({key: item}, key) for item in value)


def _schema(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidContract("'schema' must be a JSON Schema object")
    dialect = value.get("$schema", _DIALECT)
    if dialect != _DIALECT:
        raise InvalidContract(f"'schema' must use JSON Schema 2020-12 ($schema: {_DIALECT})")
    return value


def _examples(value: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    if not isinstance(value, dict) or set(value) - {"valid", "invalid"}:
        raise InvalidContract("'examples' must be a mapping with 'valid' and 'invalid' lists")
    valid, invalid = value.get("valid", []), value.get("invalid", [])
    if not isinstance(valid, list) or not isinstance(invalid, list):
        raise InvalidContract("'examples.valid' and 'examples.invalid' must be lists")
    return tuple(valid), tuple(invalid)


def _check_examples(contract: ContractVersion) -> None:
    """A contract whose own examples disagree with its schema is not loaded."""
    for index, example in enumerate(contract.valid_examples):
        violations = contract.validator.violations(example)
        if violations:
            first = violations[0]
            raise InvalidContract(
                f"examples.valid[{index}] fails its own schema at {first.pointer or '/'}: "
                f"{first.message}"
            )
    for index, example in enumerate(contract.invalid_examples):
        if not contract.validator.violations(example):
            raise InvalidContract(f"examples.invalid[{index}] passes the schema")
