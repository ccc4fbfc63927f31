"""The contract registry: history rules for new versions, persistence, migrations."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.contracts import ContractCatalog, ContractVersion, load_catalog, parse_contract
from gateway.contracts.compat import Mode, Report
from gateway.contracts.files import load_contract_file, write_contract_file
from gateway.errors import (
    ContractProblem,
    IncompatibleContract,
    InvalidContract,
    UnknownContract,
    VersionExists,
)
from tests.support import CONTRACTS

TEXT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["text"],
    "properties": {"text": {"type": "string"}},
}
"""1.0.0 of the demo contract: a closed object with one required member."""
WITH_NOTE: dict[str, Any] = {
    **TEXT,
    "properties": {"text": {"type": "string"}, "note": {"type": "string"}},
}
"""Adds an optional member to the closed object: backward compatible, not forward."""
NOTE_REQUIRED: dict[str, Any] = {**WITH_NOTE, "required": ["text", "note"]}
"""Requires the new member: forward compatible with WITH_NOTE, not backward."""


def doc(version: str, schema: Any = None, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": "demo.note",
        "version": version,
        "title": "Demo note",
        "owner": "minhealth",
        "producers": ["minhealth"],
        "consumers": ["socialtreasury"],
        "classification": "internal",
        "schema": copy.deepcopy(TEXT if schema is None else schema),
    }
    document.update(changes)
    return document


def version(number: str, schema: Any = None, **changes: Any) -> ContractVersion:
    return parse_contract(doc(number, schema, **changes))


def catalog_of(*versions: ContractVersion) -> ContractCatalog:
    catalog = ContractCatalog()
    for contract in versions:
        catalog.register(contract)
    return catalog


def refs(catalog: ContractCatalog) -> list[str]:
    return [c.ref for c in catalog]


# -- first and repeated registrations ----------------------------------------


def test_first_version_registers_without_checks() -> None:
    catalog = ContractCatalog()
    contract = version("1.0.0")

    registered = catalog.register(contract)

    assert registered.new is True
    assert registered.contract is contract
    assert registered.reports == ()
    assert catalog.resolve("demo.note") is contract
    assert catalog.ids() == ["demo.note"]


def test_a_compatible_version_registers_with_its_report() -> None:
    catalog = catalog_of(version("1.0.0"))

    registered = catalog.register(version("1.1.0", WITH_NOTE))

    assert registered.new is True
    [(against, report)] = registered.reports
    assert against == "1.0.0"
    assert (report.backward, report.forward) == (True, False)
    assert [c.code for c in report.changes] == ["property-added-closed-model"]
    assert refs(catalog) == ["demo.note@1.0.0", "demo.note@1.1.0"]
    assert catalog.resolve("demo.note").ref == "demo.note@1.1.0"


def test_registering_identical_content_again_is_idempotent() -> None:
    catalog = catalog_of(version("1.0.0"), version("1.1.0", WITH_NOTE))
    stored = catalog.resolve("demo.note@1.0.0")
    persisted: list[ContractVersion] = []

    registered = catalog.register(version("1.0.0"), persist=persisted.append)

    assert registered.new is False
    assert registered.contract is stored
    assert registered.reports == ()
    assert persisted == []
    assert len(catalog) == 2


def test_identical_means_equal_json_so_1_and_1_0_are_the_same_number() -> None:
    catalog = catalog_of(version("1.0.0", {**TEXT, "maxProperties": 1}))

    registered = catalog.register(version("1.0.0", {**TEXT, "maxProperties": 1.0}))

    assert registered.new is False


def test_same_version_with_other_content_is_refused() -> None:
    catalog = catalog_of(version("1.0.0"))
    stored = catalog.resolve("demo.note@1.0.0")

    with pytest.raises(VersionExists) as info:
        catalog.register(version("1.0.0", description="Quietly edited."))

    assert info.value.detail == (
        "demo.note@1.0.0 is registered with other content; "
        "versions are immutable: publish a new version"
    )
    assert catalog.resolve("demo.note@1.0.0") is stored


def test_same_version_of_another_contract_is_a_new_contract() -> None:
    catalog = catalog_of(version("1.0.0"))

    registered = catalog.register(version("1.0.0", id="demo.other"))

    assert registered.new is True
    assert catalog.ids() == ["demo.note", "demo.other"]


# -- history rules -----------------------------------------------------------


@pytest.mark.parametrize("lower", ["0.0.1", "1.0.1", "1.0.10"])
def test_a_version_lower_than_the_latest_is_refused(lower: str) -> None:
    catalog = catalog_of(version("1.0.0"), version("1.1.0"))

    with pytest.raises(InvalidContract) as info:
        catalog.register(version(lower))

    message = "a new version must be greater than the latest, 1.1.0"
    assert info.value.detail == f"demo.note@{lower}: {message}"
    assert info.value.problems == [ContractProblem("/version", message)]
    assert len(catalog) == 2


def test_the_owner_cannot_change() -> None:
    catalog = catalog_of(version("1.0.0"))

    with pytest.raises(InvalidContract) as info:
        catalog.register(version("1.1.0", owner="socialtreasury"))

    message = "the owner is 'minhealth' (demo.note@1.0.0); a new version cannot change it"
    assert info.value.detail == f"demo.note@1.1.0: {message}"
    assert info.value.problems == [ContractProblem("/owner", message)]
    assert refs(catalog) == ["demo.note@1.0.0"]


def test_an_incompatible_version_is_refused_with_the_breaking_changes() -> None:
    catalog = catalog_of(version("1.0.0"), version("1.1.0", WITH_NOTE))
    breaking = {**NOTE_REQUIRED, "properties": {**NOTE_REQUIRED["properties"], "x": {}}}

    with pytest.raises(IncompatibleContract) as info:
        catalog.register(version("1.2.0", breaking))

    error = info.value
    assert error.detail == "demo.note@1.2.0 is not backward compatible with 1.1.0"
    assert error.mode is Mode.BACKWARD
    assert [v for v, _ in error.failing] == ["1.1.0"]
    # Only what breaks the mode is listed: the added optional 'x' widens, which
    # backward allows.
    assert error.extensions() == {
        "mode": "backward",
        "against": [
            {
                "version": "1.1.0",
                "changes": [
                    {
                        "code": "required-added",
                        "pointer": "/required",
                        "breaks_backward": True,
                        "breaks_forward": False,
                        "detail": "'note' is now required",
                    }
                ],
            }
        ],
    }
    assert catalog.resolve("demo.note").ref == "demo.note@1.1.0"


@pytest.mark.parametrize(
    ("mode", "new_schema", "accepted"),
    [
        ("backward", WITH_NOTE, True),
        ("backward", NOTE_REQUIRED, False),
        ("forward", WITH_NOTE, False),
        ("forward", {**TEXT, "properties": {"text": {"type": "string", "maxLength": 9}}}, True),
        ("full", WITH_NOTE, False),
        ("full", {**TEXT, "description": "documented"}, True),
        ("none", {"type": "array"}, True),
    ],
    ids=[
        "backward-widen",
        "backward-narrow",
        "forward-widen",
        "forward-narrow",
        "full-widen",
        "full-annotation",
        "none-anything",
    ],
)
def test_each_mode_decides_what_the_next_version_may_change(
    mode: str, new_schema: dict[str, Any], accepted: bool
) -> None:
    catalog = catalog_of(version("1.0.0", compatibility=mode))

    if accepted:
        assert catalog.register(version("2.0.0", new_schema)).new is True
    else:
        with pytest.raises(IncompatibleContract) as info:
            catalog.register(version("2.0.0", new_schema))
        assert info.value.detail == f"demo.note@2.0.0 is not {mode} compatible with 1.0.0"


def test_mode_none_allows_anything_and_still_reports() -> None:
    catalog = catalog_of(version("1.0.0", compatibility="none"))

    registered = catalog.register(version("2.0.0", {"type": "string"}))

    [(against, report)] = registered.reports
    assert against == "1.0.0"
    assert (report.backward, report.forward) == (False, False)


def test_the_latest_version_declares_the_mode_not_the_new_one() -> None:
    # A version cannot loosen the rule in the same step that breaks it.
    catalog = catalog_of(version("1.0.0"))

    with pytest.raises(IncompatibleContract) as info:
        catalog.register(version("2.0.0", {"type": "string"}, compatibility="none"))
    assert info.value.detail == "demo.note@2.0.0 is not backward compatible with 1.0.0"

    catalog.register(version("1.1.0", WITH_NOTE, compatibility="none"))
    assert catalog.register(version("2.0.0", {"type": "string"})).new is True


# Under the lenient policy, dropping a member of an open model and adding one
# are both compatible, so each step passes while the first and last differ.
LENIENT_V1: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "string"}}}
LENIENT_V2: dict[str, Any] = {"type": "object"}
LENIENT_V3: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "integer"}}}


def lenient_history(mode: str) -> ContractCatalog:
    return catalog_of(
        version("1.0.0", LENIENT_V1, compatibility=mode, compatibility_policy="lenient"),
        version("1.1.0", LENIENT_V2, compatibility=mode, compatibility_policy="lenient"),
    )


def test_non_transitive_mode_checks_only_the_latest_version() -> None:
    catalog = lenient_history("backward")

    registered = catalog.register(version("1.2.0", LENIENT_V3))

    assert [v for v, _ in registered.reports] == ["1.1.0"]
    assert refs(catalog)[-1] == "demo.note@1.2.0"


def test_transitive_mode_checks_every_earlier_version() -> None:
    catalog = lenient_history("backward_transitive")

    with pytest.raises(IncompatibleContract) as info:
        catalog.register(version("1.2.0", LENIENT_V3))

    assert info.value.detail == "demo.note@1.2.0 is not backward_transitive compatible with 1.0.0"
    assert [v for v, _ in info.value.failing] == ["1.0.0"]
    [against] = info.value.extensions()["against"]
    assert against["version"] == "1.0.0"
    assert [c["code"] for c in against["changes"]] == ["type-changed"]
    assert [c["pointer"] for c in against["changes"]] == ["/properties/a/type"]
    assert len(catalog) == 2


def test_transitive_mode_reports_every_version_checked() -> None:
    catalog = lenient_history("backward_transitive")

    registered = catalog.register(version("1.2.0", LENIENT_V2, description="same schema"))

    assert [v for v, _ in registered.reports] == ["1.0.0", "1.1.0"]
    assert all(isinstance(r, Report) and r.backward for _, r in registered.reports)


@pytest.mark.parametrize(
    ("first_mode", "latest_mode", "accepted"),
    [("backward_transitive", "backward", True), ("backward", "backward_transitive", False)],
)
def test_whether_checks_are_transitive_is_up_to_the_latest_version(
    first_mode: str, latest_mode: str, accepted: bool
) -> None:
    catalog = catalog_of(
        version("1.0.0", LENIENT_V1, compatibility=first_mode, compatibility_policy="lenient"),
        version("1.1.0", LENIENT_V2, compatibility=latest_mode, compatibility_policy="lenient"),
    )

    if accepted:
        assert catalog.register(version("1.2.0", LENIENT_V3)).new is True
    else:
        with pytest.raises(IncompatibleContract) as info:
            catalog.register(version("1.2.0", LENIENT_V3))
        assert info.value.detail == (
            "demo.note@1.2.0 is not backward_transitive compatible with 1.0.0"
        )


def test_the_latest_version_declares_the_policy() -> None:
    # Strict (the default) reads adding a member to an open model as narrowing.
    strict = catalog_of(version("1.0.0", LENIENT_V2))
    lenient = catalog_of(version("1.0.0", LENIENT_V2, compatibility_policy="lenient"))
    new = version("1.1.0", LENIENT_V1, compatibility_policy="lenient")

    with pytest.raises(IncompatibleContract) as info:
        strict.register(new)
    assert lenient.register(new).new is True
    [against] = info.value.extensions()["against"]
    assert [(c["code"], c["pointer"]) for c in against["changes"]] == [
        ("property-added-open-model", "/properties/a")
    ]


# -- persistence -------------------------------------------------------------


def test_persist_runs_once_after_the_checks_before_the_version_is_visible() -> None:
    catalog = catalog_of(version("1.0.0"))
    seen: list[str] = []

    def persist(contract: ContractVersion) -> None:
        seen.append(contract.ref)
        seen.append(catalog.resolve("demo.note").ref)  # not yet visible

    catalog.register(version("1.1.0", WITH_NOTE), persist=persist)

    assert seen == ["demo.note@1.1.0", "demo.note@1.0.0"]
    assert catalog.resolve("demo.note").ref == "demo.note@1.1.0"


@pytest.mark.parametrize(
    ("candidate", "error"),
    [
        (version("1.1.0", NOTE_REQUIRED), IncompatibleContract),
        (version("1.1.0", owner="socialtreasury"), InvalidContract),
        (version("0.9.0"), InvalidContract),
        (version("1.0.0", title="Changed"), VersionExists),
        (
            version("1.1.0", migration={"from": "0.9.0", "steps": [{"drop": "/x"}]}),
            InvalidContract,
        ),
    ],
    ids=["incompatible", "owner", "lower", "exists", "migration"],
)
def test_persist_never_runs_for_a_refused_version(
    candidate: ContractVersion, error: type[Exception]
) -> None:
    catalog = catalog_of(version("1.0.0"))
    persisted: list[ContractVersion] = []

    with pytest.raises(error):
        catalog.register(candidate, persist=persisted.append)

    assert persisted == []


def test_a_failing_persist_leaves_the_version_unregistered() -> None:
    catalog = catalog_of(version("1.0.0"))

    def persist(contract: ContractVersion) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        catalog.register(version("1.1.0", WITH_NOTE), persist=persist)

    assert refs(catalog) == ["demo.note@1.0.0"]
    with pytest.raises(UnknownContract):
        catalog.resolve("demo.note@1.1.0")
    assert catalog.register(version("1.1.0", WITH_NOTE)).new is True


def test_a_failing_persist_of_a_first_version_leaves_no_contract() -> None:
    catalog = ContractCatalog()

    def persist(contract: ContractVersion) -> None:
        raise OSError("read-only file system")

    with pytest.raises(OSError, match="read-only"):
        catalog.register(version("1.0.0"), persist=persist)

    assert len(catalog) == 0
    assert catalog.ids() == []


# -- migrations --------------------------------------------------------------


def test_a_migration_must_start_at_the_previous_version() -> None:
    catalog = catalog_of(version("1.0.0"), version("1.1.0", WITH_NOTE))
    migrating = version(
        "1.2.0", WITH_NOTE, migration={"from": "1.0.0", "steps": [{"drop": "/note"}]}
    )

    with pytest.raises(InvalidContract) as info:
        catalog.register(migrating)

    message = "migrates from 1.0.0, but the previous version is 1.1.0"
    assert info.value.detail == f"demo.note@1.2.0: {message}"
    assert info.value.problems == [ContractProblem("/migration/from", message)]
    assert len(catalog) == 2


def test_a_migration_must_turn_previous_valid_examples_into_valid_payloads() -> None:
    catalog = catalog_of(version("1.0.0", examples={"valid": [{"text": "a"}, {"text": "b"}]}))
    migrating = version(
        "1.1.0",
        WITH_NOTE,
        migration={"from": "1.0.0", "steps": [{"map": {"pointer": "/text", "values": {"b": 2}}}]},
    )

    with pytest.raises(InvalidContract) as info:
        catalog.register(migrating)

    message = (
        "migrating demo.note@1.0.0 examples.valid[1] gives an invalid payload "
        "at /text: expected type string"
    )
    assert info.value.detail == f"demo.note@1.1.0: {message}"
    assert info.value.problems == [ContractProblem("/migration", message)]
    assert refs(catalog) == ["demo.note@1.0.0"]


def test_a_migration_that_keeps_examples_valid_registers() -> None:
    catalog = catalog_of(version("1.0.0", examples={"valid": [{"text": "a"}]}))
    migrating = version(
        "1.1.0",
        WITH_NOTE,
        migration={"from": "1.0.0", "steps": [{"default": {"pointer": "/note", "value": ""}}]},
    )

    assert catalog.register(migrating).new is True
    assert migrating.migration is not None
    assert migrating.migration.apply({"text": "a"}) == {"text": "a", "note": ""}


def test_the_shipped_referral_migration_upgrades_1_0_0_examples() -> None:
    catalog = load_catalog(CONTRACTS)
    old = catalog.resolve("health.patient-referral@1.0.0")
    new = catalog.resolve("health.patient-referral@1.1.0")
    assert new.migration is not None
    assert old.valid_examples

    for example in old.valid_examples:
        before = copy.deepcopy(example)
        upgraded = new.migration.apply(example)

        assert new.validator.violations(upgraded) == []
        assert upgraded == {**example, "referralChannel": "electronic"}
        assert example == before


def test_the_shipped_referral_history_registers_backward_compatibly() -> None:
    shipped = load_catalog(CONTRACTS)
    old, new = shipped.versions("health.patient-referral")
    catalog = catalog_of(old)

    registered = catalog.register(new)

    [(against, report)] = registered.reports
    assert against == "1.0.0"
    assert report.backward is True
    assert [(c.code, c.pointer) for c in report.changes] == [
        ("property-added-closed-model", "/properties/referralChannel")
    ]


# -- contract files ----------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "health.patient-referral@1.0.0",
        "health.patient-referral@1.1.0",
        "social.support-measure@1.0.0",
        "transport.staff-medical-check@1.0.0",
    ],
)
def test_write_contract_file_round_trips(tmp_path: Path, ref: str) -> None:
    contract = load_catalog(CONTRACTS).resolve(ref)

    path = write_contract_file(tmp_path, contract)

    assert path == tmp_path / contract.id / f"{contract.version}.yaml"
    loaded = load_contract_file(path)
    assert loaded == contract
    assert loaded.document == contract.document
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left


def test_write_contract_file_keeps_date_like_strings_strings(tmp_path: Path) -> None:
    contract = parse_contract(
        doc(
            "1.0.0",
            {"type": "object", "properties": {"day": {"type": "string", "format": "date"}}},
            examples={"valid": [{"day": "2026-01-02"}], "invalid": [{"day": "2026-13-01"}]},
        )
    )

    loaded = load_contract_file(write_contract_file(tmp_path, contract))

    assert loaded.valid_examples == ({"day": "2026-01-02"},)
    assert loaded.invalid_examples == ({"day": "2026-13-01"},)


def test_write_contract_file_replaces_atomically_and_cleans_up_on_failure(
    tmp_path: Path,
) -> None:
    contract = version("1.0.0")
    path = write_contract_file(tmp_path, contract)
    written = path.read_bytes()
    unwritable = dataclasses.replace(contract, document={**contract.document, "x": object()})

    with pytest.raises(yaml.YAMLError, match="cannot represent"):
        write_contract_file(tmp_path, unwritable)

    assert path.read_bytes() == written
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_load_catalog_skips_hidden_leftovers(tmp_path: Path) -> None:
    write_contract_file(tmp_path, version("1.0.0"))
    (tmp_path / "demo.note" / ".tmpx1y2.yaml").write_text("id: [half-written")
    (tmp_path / ".staging").mkdir()
    (tmp_path / ".staging" / "1.0.0.yaml").write_text("not: a contract")

    assert refs(load_catalog(tmp_path)) == ["demo.note@1.0.0"]


def test_load_catalog_registers_in_version_order(tmp_path: Path) -> None:
    # "1.10.0" sorts before "1.9.0" as text; registered in that order, 1.9.0
    # would be refused as lower than the latest.
    for number, schema in [("1.9.0", WITH_NOTE), ("1.10.0", WITH_NOTE), ("1.2.0", TEXT)]:
        write_contract_file(tmp_path, version(number, schema))

    catalog = load_catalog(tmp_path)

    assert refs(catalog) == ["demo.note@1.2.0", "demo.note@1.9.0", "demo.note@1.10.0"]


def test_load_catalog_refuses_an_incompatible_history(tmp_path: Path) -> None:
    write_contract_file(tmp_path, version("1.0.0", WITH_NOTE))
    write_contract_file(tmp_path, version("1.1.0", NOTE_REQUIRED))

    with pytest.raises(IncompatibleContract) as info:
        load_catalog(tmp_path)
    assert info.value.detail == "demo.note@1.1.0 is not backward compatible with 1.0.0"
