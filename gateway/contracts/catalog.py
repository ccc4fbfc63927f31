"""The contract registry: every version of every contract, immutable once registered.

Registering a version checks it against earlier versions under the mode the
latest registered version declares (``compatibility``), so a contract cannot
loosen its own rule in the same step that breaks it. Loading a directory
(:func:`gateway.contracts.files.load_catalog`) registers its files in version
order, so the files on disk must form a compatible history.

    >>> catalog = ContractCatalog()
    >>> catalog.register(parse_contract(document)).new       # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from gateway.contracts.compat import Mode, Report, compare
from gateway.contracts.compat.model import canonical
from gateway.contracts.model import ContractVersion, Version, shown
from gateway.errors import (
    ContractProblem,
    IncompatibleContract,
    InvalidContract,
    UnknownContract,
    VersionExists,
)


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

    def knows(self, contract_id: str) -> bool:
        """Whether a contract of this id has a version here."""
        return contract_id in self._by_id

    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def versions(self, contract_id: str) -> list[ContractVersion]:
        known = self._by_id.get(contract_id)
        if not known:
            raise UnknownContract(f"no contract named '{shown(contract_id)}'")
        return [known[v] for v in sorted(known)]

    def resolve(self, name: str) -> ContractVersion:
        """Look up ``id`` (latest version) or ``id@version``."""
        contract_id, at, version_text = name.partition("@")
        versions = self._by_id.get(contract_id)
        if not versions:
            raise UnknownContract(f"no contract named '{shown(contract_id)}'")
        if not at:
            return versions[max(versions)]
        try:
            version = Version.parse(version_text)
        except InvalidContract as exc:
            raise UnknownContract(exc.detail) from exc
        if version not in versions:
            raise UnknownContract(f"contract '{contract_id}' has no version {version}")
        return versions[version]

    def check(self, contract: ContractVersion) -> tuple[tuple[str, Report], ...] | None:
        """What :meth:`register` would check, without registering: the reports for a new
        version, None when the identical version is registered already; raises as it."""
        known = self._by_id.get(contract.id, {})
        existing = known.get(contract.version)
        if existing is not None:
            if canonical(existing.document) != canonical(contract.document):
                raise VersionExists(
                    f"{contract.ref} is registered with other content; "
                    "versions are immutable: publish a new version"
                )
            return None
        return _check_history(contract, [known[v] for v in sorted(known)])

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
        reports = self.check(contract)
        if reports is None:
            return Registered(self.resolve(contract.ref), (), new=False)
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
