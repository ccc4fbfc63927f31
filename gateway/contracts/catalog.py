"""The contract registry: every version of every contract, immutable once registered.

Registering a version checks it against earlier versions under the mode the
latest registered version declares (``compatibility``), so a contract cannot
loosen its own rule in the same step that breaks it. Files live at
``<dir>/<contract-id>/<version>.yaml``; loading a directory registers them in
version order, so the files on disk must form a compatible history.

    >>> catalog = load_catalog(Path("contracts"))           # doctest: +SKIP
    >>> catalog.resolve("health.patient-referral").ref      # doctest: +SKIP
    'health.patient-referral@1.1.0'
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import ValidationError
from jsonschema.exceptions import best_match

from gateway.contracts.compat import Mode, Policy, Report, compare
from gateway.contracts.compat.model import canonical
from gateway.contracts.keywords import ContractValidator
from gateway.contracts.migration import Migration
from gateway.contracts.model import Classification, ContractVersion, Version
from gateway.contracts.validation import PayloadValidator, pointer
from gateway.errors import (
    ContractProblem,
    IncompatibleContract,
    InvalidContract,
    UnknownContract,
    VersionExists,
)

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_FILE_SCHEMA = json.loads(
    resources.files("gateway.contracts").joinpath("contract-file.schema.json").read_text()
)
# Structure messages may quote the offending value: it is the contract author's own text.
_FILE_VALIDATOR = ContractValidator(_FILE_SCHEMA)


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


def file_schema() -> dict[str, Any]:
    """The JSON Schema every contract file must satisfy (contracts/README.md)."""
    return copy.deepcopy(_FILE_SCHEMA)  # a copy: the validator shares the original


@dataclass(frozen=True, slots=True)
class Registered:
    contract: ContractVersion
    reports: tuple[tuple[str, Report], ...]
    """Each earlier version checked, with its report."""
    new: bool
    """False when the identical version was already registered."""


class ContractCatalog:
    """All versions of all contracts; new versions only through :meth:`register`."""

    def __init__(self, versions: Iterable[ContractVersion] = ()) -> None:
        self._by_id: dict[str, dict[Version, ContractVersion]] = {}
        for contract in sorted(versions, key=lambda c: (c.id, c.version)):
            self.register(contract)

    def __iter__(self) -> Iterator[ContractVersion]:
        for contract_id in sorted(self._by_id):
            yield from self.versions(contract_id)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_id.values())

    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def versions(self, contract_id: str) -> list[ContractVersion]:
        known = self._by_id.get(contract_id)
        if not known:
            raise UnknownContract(f"no contract named '{_shown(contract_id)}'")
        return [known[v] for v in sorted(known)]

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

    def register(
        self,
        contract: ContractVersion,
        *,
        persist: Callable[[ContractVersion], object] | None = None,
    ) -> Registered:
        """Add a version after checking it against the history; raise if it breaks it.

        ``persist`` runs after every check passed and before the version becomes
        visible, so a version that could not be stored is never served.
        """
        known = self._by_id.get(contract.id, {})
        existing = known.get(contract.version)
        if existing is not None:
            if canonical(existing.document) != canonical(contract.document):
                raise VersionExists(
                    f"{contract.ref} is registered with other content; "
                    "versions are immutable: publish a new version"
                )
            return Registered(existing, (), new=False)
        reports = _check_history(contract, [known[v] for v in sorted(known)])
        if persist is not None:
            persist(contract)
        self._by_id.setdefault(contract.id, {})[contract.version] = contract
        return Registered(contract, reports, new=True)


def _check_history(
    contract: ContractVersion, history: list[ContractVersion]
) -> tuple[tuple[str, Report], ...]:
    if not history:
        if contract.migration is not None:
            raise InvalidContract(
                f"{contract.ref}: the first version has nothing to migrate from",
                [ContractProblem("/migration", "the first version has nothing to migrate from")],
            )
        return ()
    latest = history[-1]
    if contract.version < latest.version:
        message = f"a new version must be greater than the latest, {latest.version}"
        raise InvalidContract(f"{contract.ref}: {message}", [ContractProblem("/version", message)])
    if contract.owner != latest.owner:
        message = f"the owner is '{latest.owner}' ({latest.ref}); a new version cannot change it"
        raise InvalidContract(f"{contract.ref}: {message}", [ContractProblem("/owner", message)])
    _check_migration(contract, latest)
    mode, policy = latest.compatibility, latest.compatibility_policy
    against = history if mode.transitive else [latest]
    reports = tuple(
        (str(old.version), compare(old.schema, contract.schema, policy=policy)) for old in against
    )
    if mode is not Mode.NONE:
        failing = [(v, r) for v, r in reports if not r.compatible(mode)]
        if failing:
            raise IncompatibleContract(contract.ref, mode, failing)
    return reports


def _check_migration(contract: ContractVersion, previous: ContractVersion) -> None:
    """A migration must start at the previous version and turn its examples into valid ones."""
    migration = contract.migration
    if migration is None:
        return
    if migration.source != str(previous.version):
        message = (
            f"migrates from {migration.source}, but the previous version is {previous.version}"
        )
        raise InvalidContract(
            f"{contract.ref}: {message}", [ContractProblem("/migration/from", message)]
        )
    for index, example in enumerate(previous.valid_examples):
        violations = contract.validator.violations(migration.apply(example))
        if violations:
            first = violations[0]
            message = (
                f"migrating {previous.ref} examples.valid[{index}] gives an invalid payload "
                f"at {first.pointer or '/'}: {first.message}"
            )
            raise InvalidContract(
                f"{contract.ref}: {message}", [ContractProblem("/migration", message)]
            )


def _shown(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


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


def structure_problems(data: Any) -> list[ContractProblem]:
    """Every way ``data`` breaks the contract-file schema, by JSON pointer.

    A missing or unexpected member is reported at its own pointer
    (``/classification``), and a value that matches no branch of a ``oneOf``
    at the pointer of its most relevant error.
    """
    problems = {
        (p.pointer, p.message): p
        for error in _FILE_VALIDATOR.iter_errors(data)
        for p in _problems(error)
    }
    return sorted(problems.values(), key=lambda p: (p.pointer.split("/"), p.message))


def _problems(error: ValidationError) -> Iterator[ContractProblem]:
    if error.validator in ("oneOf", "anyOf"):
        branch = _fitting_branch(error)
        if branch:
            for e in branch:
                yield from _problems(e)
            return
    path = list(error.absolute_path)
    instance: Any = error.instance
    expected: Any = error.validator_value
    if error.validator == "required" and isinstance(instance, dict):
        for name in expected:
            if name not in instance:
                yield ContractProblem(
                    pointer([*path, name]), f"required member '{name}' is missing"
                )
        return
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        declared = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        for name in instance:
            if name not in declared:
                yield ContractProblem(
                    pointer([*path, name]), f"'{_shown(name)}' is not a member of a contract file"
                )
        return
    yield ContractProblem(pointer(path), error.message[:300])


def _fitting_branch(error: ValidationError) -> list[ValidationError]:
    """The errors of the ``oneOf`` branch meant for this kind of value (it passed ``type``)."""
    fitting = [
        e for e in error.context or () if not (e.validator == "type" and not e.relative_path)
    ]
    relevant = best_match(fitting)
    if relevant is None:
        return []
    branch = relevant.relative_schema_path[0]
    return [e for e in fitting if e.relative_schema_path[0] == branch]


def parse_contract(data: Any) -> ContractVersion:
    """Build a contract version from its decoded YAML (or JSON) document."""
    problems = structure_problems(data)
    if problems:
        raise InvalidContract(f"{problems[0].pointer or '/'}: {problems[0].message}", problems)
    schema = data["schema"]
    if isinstance(schema, dict) and schema.get("$schema", _DIALECT) != _DIALECT:
        message = f"must be {_DIALECT} (JSON Schema 2020-12) or absent"
        raise InvalidContract(
            f"/schema/$schema: {message}", [ContractProblem("/schema/$schema", message)]
        )
    consumers, fields = _consumers(data["consumers"])
    examples = data.get("examples", {})
    contract = ContractVersion(
        id=data["id"],
        version=Version.parse(data["version"]),
        title=data["title"],
        description=data.get("description", ""),
        owner=data["owner"],
        producers=frozenset(data["producers"]),
        consumers=consumers,
        consumer_fields=fields,
        classification=Classification(data["classification"]),
        retention=data.get("retention"),
        compatibility=Mode(data.get("compatibility", "backward")),
        compatibility_policy=Policy(data.get("compatibility_policy", "strict")),
        schema=schema,
        valid_examples=tuple(examples.get("valid", [])),
        invalid_examples=tuple(examples.get("invalid", [])),
        migration=Migration.parse(data["migration"]) if "migration" in data else None,
        document=data,
        validator=PayloadValidator(schema),
    )
    _check_examples(contract)
    return contract


def _consumers(entries: list[Any]) -> tuple[frozenset[str], dict[str, tuple[str, ...]]]:
    names = [e if isinstance(e, str) else e["id"] for e in entries]
    if len(set(names)) != len(names):
        raise InvalidContract(
            "/consumers: a consumer is listed twice",
            [ContractProblem("/consumers", "a consumer is listed twice")],
        )
    fields = {e["id"]: tuple(e["fields"]) for e in entries if isinstance(e, dict) and "fields" in e}
    return frozenset(names), fields


def _check_examples(contract: ContractVersion) -> None:
    """A contract whose own examples disagree with its schema is not loaded."""
    for index, example in enumerate(contract.valid_examples):
        violations = contract.validator.violations(example)
        if violations:
            first = violations[0]
            where = f"/examples/valid/{index}"
            raise InvalidContract(
                f"{where} fails its own schema at {first.pointer or '/'}: {first.message}",
                [ContractProblem(where + first.pointer, first.message)],
            )
    for index, example in enumerate(contract.invalid_examples):
        if not contract.validator.violations(example):
            where = f"/examples/invalid/{index}"
            raise InvalidContract(
                f"{where} passes the schema", [ContractProblem(where, "passes the schema")]
            )


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
