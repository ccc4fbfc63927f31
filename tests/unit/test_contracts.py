"""Contracts: the catalog, contract files and payload validation."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from gateway.contracts import (
    ContractCatalog,
    ContractVersion,
    PayloadValidator,
    Version,
    load_catalog,
    parse_contract,
    pointer,
)
from gateway.contracts.compat import Mode, Policy
from gateway.contracts.document import file_schema
from gateway.contracts.files import load_contract_file, read_yaml
from gateway.contracts.model import Classification
from gateway.errors import (
    ContractProblem,
    ContractViolation,
    InvalidContract,
    UnknownContract,
    VersionExists,
)

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
CATALOG = load_catalog(CONTRACTS_DIR)
REFERRAL = "health.patient-referral@1.0.0"
REFERRAL_1_1 = "health.patient-referral@1.1.0"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def pairs(contract: ContractVersion, payload: Any) -> list[tuple[str, str]]:
    return [(v.pointer, v.keyword) for v in contract.validator.violations(payload)]


def contract_doc(**changes: Any) -> dict[str, Any]:
    """A small valid contract document, with top-level members replaced."""
    doc: dict[str, Any] = {
        "id": "demo.note",
        "version": "1.0.0",
        "title": "Demo note",
        "classification": "internal",
        "owner": "minhealth",
        "producers": ["minhealth"],
        "consumers": ["socialtreasury"],
        "schema": {
            "$schema": DIALECT,
            "type": "object",
            "additionalProperties": False,
            "required": ["text"],
            "properties": {"text": {"type": "string"}},
        },
        "examples": {"valid": [{"text": "hi"}], "invalid": [{}]},
    }
    doc.update(changes)
    return doc


def without(key: str) -> dict[str, Any]:
    doc = contract_doc()
    del doc[key]
    return doc


def write_contract(directory: Path, doc: dict[str, Any], *, where: str | None = None) -> Path:
    """Write ``doc`` to ``<directory>/<id>/<version>.yaml`` (or to ``where``)."""
    path = directory / (where or f"{doc['id']}/{doc['version']}.yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def refused(doc: Any) -> InvalidContract:
    with pytest.raises(InvalidContract) as info:
        parse_contract(doc)
    return info.value


def invalid_contract(doc: Any) -> str:
    return refused(doc).detail


# -- the sample catalog ------------------------------------------------------


def test_sample_catalog_loads_four_versions_of_three_contracts() -> None:
    assert len(CATALOG) == 4
    assert CATALOG.ids() == [
        "health.patient-referral",
        "social.support-measure",
        "transport.staff-medical-check",
    ]
    assert [c.ref for c in CATALOG] == [
        "health.patient-referral@1.0.0",
        "health.patient-referral@1.1.0",
        "social.support-measure@1.0.0",
        "transport.staff-medical-check@1.0.0",
    ]


def test_sample_contract_metadata() -> None:
    referral = CATALOG.resolve(REFERRAL)

    assert referral.title == "Patient referral"
    assert referral.description.startswith("A referral of a patient")
    assert referral.owner == "minhealth"
    assert referral.producers == frozenset({"minhealth"})
    assert referral.consumers == frozenset({"socialtreasury", "acme-analytics"})
    assert referral.consumer_fields == {}
    assert referral.classification is Classification.PERSONAL
    assert referral.retention == "P5Y"
    assert referral.compatibility is Mode.BACKWARD
    assert referral.compatibility_policy is Policy.STRICT
    assert referral.migration is None
    assert referral.dataschema == "urn:gateway:contract:health.patient-referral@1.0.0"


def test_sample_referral_1_1_0_adds_an_optional_channel_with_a_migration() -> None:
    old, new = CATALOG.versions("health.patient-referral")

    assert (old.ref, new.ref) == (REFERRAL, REFERRAL_1_1)
    assert isinstance(old.schema, dict)
    assert isinstance(new.schema, dict)
    assert "referralChannel" not in old.schema["properties"]
    assert new.schema["properties"]["referralChannel"] == {
        "description": "How the referral reached the specialist service (added in 1.1.0).",
        "enum": ["electronic", "paper", "phone"],
    }
    assert "referralChannel" not in new.schema["required"]
    assert new.migration is not None
    assert new.migration.source == "1.0.0"


def test_every_sample_file_satisfies_the_contract_file_schema() -> None:
    validator = Draft202012Validator(file_schema())
    paths = sorted(CONTRACTS_DIR.glob("*/*.yaml"))

    assert len(paths) == 4
    for path in paths:
        assert list(validator.iter_errors(read_yaml(path.read_text("utf-8")))) == [], path


def test_the_contract_file_schema_is_valid_2020_12() -> None:
    schema = file_schema()

    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == DIALECT
    assert schema["required"] == [
        "id",
        "version",
        "title",
        "owner",
        "producers",
        "consumers",
        "classification",
        "schema",
    ]


def test_file_schema_returns_a_copy() -> None:
    file_schema()["properties"]["id"]["maxLength"] = 1

    assert file_schema()["properties"]["id"]["maxLength"] == 128
    assert parse_contract(contract_doc()).id == "demo.note"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("health.patient-referral", REFERRAL_1_1), (REFERRAL, REFERRAL), (REFERRAL_1_1, REFERRAL_1_1)],
    ids=["latest", "1.0.0", "1.1.0"],
)
def test_resolve_by_id_and_by_id_at_version(name: str, expected: str) -> None:
    contract = CATALOG.resolve(name)

    assert contract.ref == expected
    assert contract is CATALOG.resolve(expected)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("health.unknown", "no contract named 'health.unknown'"),
        ("health.unknown@1.0.0", "no contract named 'health.unknown'"),
        ("", "no contract named ''"),
        ("@1.0.0", "no contract named ''"),
        ("x" * 500, "no contract named '" + "x" * 77 + "...'"),
        (f"{REFERRAL[:-6]}@2.0.0", "contract 'health.patient-referral' has no version 2.0.0"),
        (f"{REFERRAL[:-6]}@1.0.1", "has no version 1.0.1"),
        (f"{REFERRAL[:-6]}@1.0", "'1.0' is not a release version"),
        (f"{REFERRAL[:-6]}@v1.0.0", "'v1.0.0' is not a release version"),
        (f"{REFERRAL[:-6]}@01.0.0", "'01.0.0' is not a release version"),
        (f"{REFERRAL[:-6]}@1.0.0 ", "'1.0.0 ' is not a release version"),
        (f"{REFERRAL}@1.0.0", "'1.0.0@1.0.0' is not a release version"),
        (f"{REFERRAL[:-6]}@", "'' is not a release version"),
    ],
    ids=[
        "unknown-id",
        "unknown-id-with-version",
        "empty",
        "empty-id",
        "long-id-is-shortened",
        "unknown-major",
        "unknown-patch",
        "two-parts",
        "v-prefix",
        "leading-zero",
        "trailing-space",
        "two-at-signs",
        "empty-version",
    ],
)
def test_resolve_refuses_unknown_names(name: str, message: str) -> None:
    with pytest.raises(UnknownContract) as info:
        CATALOG.resolve(name)

    assert message in info.value.detail


@pytest.mark.parametrize(
    ("contract", "example"),
    [
        pytest.param(c, example, id=f"{c.ref}-valid[{i}]")
        for c in CATALOG
        for i, example in enumerate(c.valid_examples)
    ],
)
def test_sample_valid_examples_pass(contract: ContractVersion, example: Any) -> None:
    assert contract.validator.violations(example) == []
    contract.validate(example)  # and validate() agrees: it raises nothing


@pytest.mark.parametrize(
    ("contract", "example"),
    [
        pytest.param(c, example, id=f"{c.ref}-invalid[{i}]")
        for c in CATALOG
        for i, example in enumerate(c.invalid_examples)
    ],
)
def test_sample_invalid_examples_fail(contract: ContractVersion, example: Any) -> None:
    violations = contract.validator.violations(example)

    with pytest.raises(ContractViolation) as info:
        contract.validate(example)

    assert violations
    assert info.value.violations == violations
    assert info.value.detail == f"payload violates {contract.ref} in {len(violations)} place(s)"
    assert info.value.extensions() == {"errors": [v.as_dict() for v in violations]}


def test_every_sample_contract_has_examples_of_both_kinds() -> None:
    for contract in CATALOG:
        assert len(contract.valid_examples) >= 1, contract.ref
        assert len(contract.invalid_examples) >= 1, contract.ref


@pytest.mark.parametrize(
    ("ref", "index", "expected"),
    [
        (
            REFERRAL,
            0,
            [
                ("/diagnosis", "required"),
                ("/patient/birthDate", "format"),
                ("/urgency", "enum"),
            ],
        ),
        (REFERRAL, 1, [("/patient/fullName", "additionalProperties")]),
        (
            "social.support-measure@1.0.0",
            0,
            [
                ("/amount/currency", "pattern"),
                ("/amount/value", "exclusiveMinimum"),
                ("/basis", "uniqueItems"),
            ],
        ),
        (
            "social.support-measure@1.0.0",
            1,
            [("/measureCode", "required"), ("/period/from", "format")],
        ),
        (
            "transport.staff-medical-check@1.0.0",
            0,
            [
                ("/checkedAt", "format"),
                ("/measurements/pulse", "maximum"),
                ("/reasons", "required"),
            ],
        ),
        (
            "transport.staff-medical-check@1.0.0",
            1,
            [
                ("/checkId", "format"),
                ("/employeeId", "pattern"),
                ("/measurements/systolic", "type"),
            ],
        ),
    ],
)
def test_invalid_examples_report_exact_pointers_and_keywords(
    ref: str, index: int, expected: list[tuple[str, str]]
) -> None:
    contract = CATALOG.resolve(ref)

    assert pairs(contract, contract.invalid_examples[index]) == expected


def test_referral_1_1_0_invalid_examples_report_exact_pointers_and_keywords() -> None:
    contract = CATALOG.resolve(REFERRAL_1_1)

    found = sorted(pairs(contract, example) for example in contract.invalid_examples)

    assert found == [
        [("/diagnosis", "required"), ("/patient/birthDate", "format"), ("/urgency", "enum")],
        [("/patient/fullName", "additionalProperties")],
        [("/referralChannel", "enum")],
    ]


def test_violation_messages_come_from_the_schema() -> None:
    contract = CATALOG.resolve(REFERRAL)

    messages = {
        v.pointer: v.message for v in contract.validator.violations(contract.invalid_examples[0])
    }

    assert messages == {
        "/diagnosis": "required member is missing",
        "/patient/birthDate": "not a valid 'date'",
        "/urgency": "expected one of ['routine', 'urgent', 'emergency']",
    }


def test_violation_messages_never_contain_payload_values() -> None:
    secret = "SECRET-Ivanova-1961"
    contract = CATALOG.resolve(REFERRAL)
    payload = copy.deepcopy(contract.valid_examples[0])
    payload["referralId"] = secret  # pattern
    payload["issuedOn"] = secret  # format: date
    payload["contactEmail"] = secret  # format: email
    payload["urgency"] = secret  # enum
    payload["patient"]["sex"] = secret  # enum
    payload["diagnosis"]["note"] = secret * 50  # maxLength
    payload["referredTo"]["specialty"] = [secret]  # type

    with pytest.raises(ContractViolation) as info:
        contract.validate(payload)

    assert len(info.value.violations) == 7
    texts = [info.value.detail, *(v.message for v in info.value.violations)]
    assert all(secret not in text for text in texts)
    assert secret not in repr(info.value.extensions())


def test_long_schema_values_are_shortened_in_messages() -> None:
    validator = PayloadValidator({"enum": [f"value-{n}" for n in range(100)]})

    [violation] = validator.violations("other")

    assert violation.message.startswith("expected one of ['value-0', 'value-1'")
    assert violation.message.endswith("...")
    assert len(violation.message) <= len("expected one of ") + 120


# -- pointers and validation details -----------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ([], ""),
        (["a"], "/a"),
        (["a", 0, "b"], "/a/0/b"),
        ([""], "/"),
        (["a/b"], "/a~1b"),
        (["m~n"], "/m~0n"),
        (["~1"], "/~01"),
        (["/~"], "/~1~0"),
    ],
)
def test_pointer_escapes_per_rfc_6901(path: list[str | int], expected: str) -> None:
    assert pointer(path) == expected


def test_additional_properties_names_each_unexpected_member() -> None:
    validator = PayloadValidator(
        {
            "type": "object",
            "properties": {"a": {}, "list": {"items": {"additionalProperties": False}}},
            "patternProperties": {"^x-": {}},
            "additionalProperties": False,
        }
    )

    violations = validator.violations(
        {"a": 1, "x-ok": 2, "b": 3, "c/d~e": 4, "list": [{}, {"z": 1}]}
    )

    assert [(v.pointer, v.keyword) for v in violations] == [
        ("/b", "additionalProperties"),
        ("/c~1d~0e", "additionalProperties"),
        ("/list/1/z", "additionalProperties"),
    ]
    assert {v.message for v in violations} == {"member is not allowed by the contract"}


def test_unevaluated_properties_names_each_unexpected_member() -> None:
    validator = PayloadValidator({"properties": {"a": {}}, "unevaluatedProperties": False})

    assert [(v.pointer, v.keyword) for v in validator.violations({"a": 1, "b": 2, "c": 3})] == [
        ("/b", "unevaluatedProperties"),
        ("/c", "unevaluatedProperties"),
    ]


def test_unevaluated_properties_never_blames_a_member_a_subschema_declared() -> None:
    validator = PayloadValidator(
        {"allOf": [{"properties": {"a": {}}}], "unevaluatedProperties": False}
    )

    violations = validator.violations({"a": 1, "b": 2})

    assert {v.keyword for v in violations} == {"unevaluatedProperties"}
    assert "/a" not in {v.pointer for v in violations}


def test_unevaluated_properties_after_subschemas_points_at_the_object() -> None:
    # Which members a subschema evaluated is jsonschema-internal; the gateway
    # points at the object rather than risk naming an allowed member.
    validator = PayloadValidator(
        {"allOf": [{"properties": {"a": {}}}], "unevaluatedProperties": False}
    )

    assert [(v.pointer, v.keyword) for v in validator.violations({"a": 1, "b": 2})] == [
        ("", "unevaluatedProperties")
    ]


def test_unevaluated_properties_without_subschemas_names_each_member() -> None:
    validator = PayloadValidator({"properties": {"a": {}}, "unevaluatedProperties": False})

    assert [(v.pointer, v.keyword) for v in validator.violations({"a": 1, "b": 2})] == [
        ("/b", "unevaluatedProperties")
    ]


def test_required_names_each_missing_member() -> None:
    validator = PayloadValidator({"type": "object", "required": ["b", "a", "c"]})

    assert [(v.pointer, v.keyword) for v in validator.violations({"c": 1})] == [
        ("/a", "required"),
        ("/b", "required"),
    ]


def test_root_violation_has_empty_pointer() -> None:
    [violation] = PayloadValidator({"type": "object"}).violations([1])

    assert (violation.pointer, violation.keyword, violation.message) == (
        "",
        "type",
        "expected type object",
    )


def test_keyword_without_template_gets_a_generic_message() -> None:
    [violation] = PayloadValidator({"anyOf": [{"type": "string"}, {"type": "integer"}]}).violations(
        1.5
    )

    assert (violation.keyword, violation.message) == ("anyOf", "fails the 'anyOf' rule")


@pytest.mark.parametrize(
    ("format_name", "good", "bad"),
    [
        ("date", "2026-02-28", "2026-02-30"),
        ("date", "2026-01-02", "02.01.2026"),
        ("date-time", "2026-11-20T05:42:10+03:00", "2026-11-20 05:42"),
        ("date-time", "2026-11-20T05:42:10Z", "2026-11-20T05:42:10"),
        ("email", "referrals@clinic-12.example", "no-at-sign"),
        ("uuid", "2f1c7b9e-6a43-4f6e-9d7e-3b8f0c1a2d45", "not-a-uuid"),
        ("uuid", "2f1c7b9e-6a43-4f6e-9d7e-3b8f0c1a2d45", "2f1c7b9e6a434f6e9d7e3b8f0c1a2d45"),
    ],
)
def test_format_checking_is_on(format_name: str, good: str, bad: str) -> None:
    validator = PayloadValidator({"properties": {"v": {"type": "string", "format": format_name}}})

    assert validator.violations({"v": good}) == []
    assert [(v.pointer, v.keyword, v.message) for v in validator.violations({"v": bad})] == [
        ("/v", "format", f"not a valid '{format_name}'")
    ]


def test_invalid_schema_is_refused() -> None:
    with pytest.raises(InvalidContract) as info:
        PayloadValidator({"type": 12})

    assert info.value.detail.startswith("/schema/type: not valid JSON Schema 2020-12: ")
    assert [p.pointer for p in info.value.problems] == ["/schema/type"]


def test_remote_refs_are_never_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[object] = []

    def urlopen(request: object, *args: object, **kwargs: object) -> None:
        fetched.append(request)
        raise OSError("network is not allowed in unit tests")

    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    schema = {"$schema": DIALECT, "$ref": "https://schemas.example/referral.json"}

    with pytest.raises(InvalidContract) as info:
        parse_contract(contract_doc(schema=schema, examples={"valid": [], "invalid": [1]}))

    assert fetched == []
    assert info.value.problems == [
        ContractProblem(
            "/schema",
            "refers to 'https://schemas.example/referral.json': "
            "only local references ('#/...') are allowed",
        )
    ]


# -- versions ------------------------------------------------------------------


def test_versions_order_numerically() -> None:
    versions = [Version.parse(t) for t in ("1.10.0", "1.2.0", "0.9.9", "1.2.10", "1.2.9")]

    assert [str(v) for v in sorted(versions)] == ["0.9.9", "1.2.0", "1.2.9", "1.2.10", "1.10.0"]
    assert Version.parse("1.0.0") == Version(1, 0, 0)


@pytest.mark.parametrize(
    "text",
    [
        "1.0",
        "1.0.0.0",
        "v1.0.0",
        "01.0.0",
        "1.0.0-rc.1",
        "1.0.0+build",
        " 1.0.0",
        "1.0.0\n",
        "1234567.0.0",
        "",
        "1.1\u0660.0",
    ],
)
def test_malformed_versions(text: str) -> None:
    with pytest.raises(InvalidContract) as info:
        Version.parse(text)

    assert info.value.detail.endswith("is not a release version like 1.2.0")


# -- parsing contract documents ----------------------------------------------


def test_minimal_contract_parses() -> None:
    contract = parse_contract(contract_doc())

    assert contract.ref == "demo.note@1.0.0"
    assert contract.version == Version(1, 0, 0)
    assert contract.title == "Demo note"
    assert contract.description == ""
    assert contract.producers == frozenset({"minhealth"})
    assert contract.consumers == frozenset({"socialtreasury"})
    assert contract.classification is Classification.INTERNAL
    assert contract.retention is None
    assert contract.compatibility is Mode.BACKWARD  # the default
    assert contract.compatibility_policy is Policy.STRICT  # the default
    assert contract.migration is None
    assert contract.valid_examples == ({"text": "hi"},)
    assert contract.invalid_examples == ({},)
    assert contract.document == contract_doc()


def test_optional_members_parse() -> None:
    contract = parse_contract(
        contract_doc(
            description="For tests.",
            retention="P1Y6M",
            compatibility="full_transitive",
            compatibility_policy="lenient",
            consumers=[
                "socialtreasury",
                {"id": "acme-analytics", "fields": ["/text"]},
                {"id": "metro-medical"},
            ],
            migration={"from": "0.9.0", "steps": [{"drop": "/legacy"}]},
        )
    )

    assert contract.description == "For tests."
    assert contract.retention == "P1Y6M"
    assert contract.compatibility is Mode.FULL_TRANSITIVE
    assert contract.compatibility_policy is Policy.LENIENT
    assert contract.consumers == frozenset({"socialtreasury", "acme-analytics", "metro-medical"})
    assert contract.consumer_fields == {"acme-analytics": ("/text",)}
    assert contract.migration is not None
    assert contract.migration.source == "0.9.0"


def test_a_boolean_schema_is_a_schema() -> None:
    refuse_all = parse_contract(contract_doc(schema=False, examples={"invalid": [{}, 1]}))
    accept_all = parse_contract(contract_doc(schema=True, examples={"valid": [{}, 1]}))

    assert refuse_all.schema is False
    assert [v.pointer for v in refuse_all.validator.violations("anything")] == [""]
    assert accept_all.validator.violations("anything") == []


def test_a_false_subschema_names_the_member_and_the_false_keyword() -> None:
    validator = PayloadValidator({"properties": {"x": False}})

    assert [(v.pointer, v.keyword, v.message) for v in validator.violations({"x": 1})] == [
        ("/x", "false", "no value is allowed here")
    ]


def test_schema_without_dialect_is_read_as_2020_12() -> None:
    # prefixItems only exists in 2020-12; an older dialect would ignore it and
    # the invalid example would then pass, which parse_contract refuses.
    schema = {"type": "array", "prefixItems": [{"type": "string"}]}
    examples = {"valid": [["a", 1]], "invalid": [[1]]}

    contract = parse_contract(contract_doc(schema=schema, examples=examples))

    assert pairs(contract, [1, "a"]) == [("/0", "type")]


def problem(where: str, message: str) -> tuple[str, str]:
    return where, message


@pytest.mark.parametrize(
    ("doc", "where", "message"),
    [
        pytest.param(["id"], "", "is not of type 'object'", id="not-a-mapping"),
        pytest.param(None, "", "None is not of type 'object'", id="empty-file"),
        pytest.param(without("id"), "/id", "required member 'id' is missing", id="missing-id"),
        pytest.param(
            without("version"), "/version", "member 'version' is missing", id="no-version"
        ),
        pytest.param(without("title"), "/title", "member 'title' is missing", id="missing-title"),
        pytest.param(without("owner"), "/owner", "member 'owner' is missing", id="missing-owner"),
        pytest.param(
            without("producers"), "/producers", "'producers' is missing", id="no-producers"
        ),
        pytest.param(
            without("consumers"), "/consumers", "'consumers' is missing", id="no-consumers"
        ),
        pytest.param(
            without("classification"),
            "/classification",
            "required member 'classification' is missing",
            id="missing-classification",
        ),
        pytest.param(without("schema"), "/schema", "member 'schema' is missing", id="no-schema"),
        pytest.param(
            contract_doc(owners=["x"]),
            "/owners",
            "'owners' is not a member of a contract file",
            id="unknown",
        ),
        pytest.param(contract_doc(id="Demo Note"), "/id", "does not match", id="bad-id"),
        pytest.param(contract_doc(id="demo..note"), "/id", "does not match", id="double-dot"),
        pytest.param(contract_doc(id="demo.note\n"), "/id", "does not match", id="id-newline"),
        pytest.param(contract_doc(id="a" * 129), "/id", "is too long", id="long-id"),
        pytest.param(contract_doc(id=12), "/id", "12 is not of type 'string'", id="numeric-id"),
        pytest.param(contract_doc(id=""), "/id", "does not match", id="empty-id"),
        pytest.param(contract_doc(version="1.0"), "/version", "does not match", id="bad-version"),
        pytest.param(contract_doc(version="01.0.0"), "/version", "does not match", id="zero"),
        pytest.param(contract_doc(version="1.0.0\n"), "/version", "does not match", id="v-newline"),
        pytest.param(
            contract_doc(version=1.0), "/version", "is not of type 'string'", id="float-version"
        ),
        pytest.param(contract_doc(title=""), "/title", "should be non-empty", id="empty-title"),
        pytest.param(contract_doc(owner="Min Health"), "/owner", "does not match", id="bad-owner"),
        pytest.param(
            contract_doc(owner="minhealth\n"), "/owner", "does not match", id="owner-newline"
        ),
        pytest.param(contract_doc(producers=[]), "/producers", "should be non-empty", id="none"),
        pytest.param(
            contract_doc(producers=["minhealth", "minhealth"]),
            "/producers",
            "has non-unique elements",
            id="producer-twice",
        ),
        pytest.param(
            contract_doc(producers=["minhealth", "Bad Id"]),
            "/producers/1",
            "does not match",
            id="bad-producer",
        ),
        pytest.param(
            contract_doc(consumers="minhealth"),
            "/consumers",
            "is not of type 'array'",
            id="consumers-not-a-list",
        ),
        pytest.param(
            contract_doc(consumers=["socialtreasury", "Bad Id"]),
            "/consumers/1",
            "does not match",
            id="bad-consumer",
        ),
        pytest.param(
            contract_doc(consumers=[{"id": "socialtreasury", "fields": ["text"]}]),
            "/consumers/0/fields/0",
            "does not match",
            id="consumer-field-not-a-pointer",
        ),
        pytest.param(
            contract_doc(consumers=[{"id": "socialtreasury", "see": []}]),
            "/consumers/0/see",
            "'see' is not a member of a contract file",
            id="consumer-unknown-key",
        ),
        pytest.param(
            contract_doc(consumers=["socialtreasury", {"id": "socialtreasury"}]),
            "/consumers",
            "a consumer is listed twice",
            id="consumer-twice",
        ),
        pytest.param(
            contract_doc(classification="secret"),
            "/classification",
            "is not one of",
            id="bad-classification",
        ),
        pytest.param(contract_doc(retention="5 years"), "/retention", "does not match", id="ret"),
        pytest.param(contract_doc(retention="P"), "/retention", "does not match", id="empty-p"),
        pytest.param(
            contract_doc(compatibility="sideways"), "/compatibility", "is not one of", id="mode"
        ),
        pytest.param(
            contract_doc(compatibility_policy="loose"),
            "/compatibility_policy",
            "is not one of",
            id="policy",
        ),
        pytest.param(
            contract_doc(schema=[]), "/schema", "is not of type 'object', 'boolean'", id="list"
        ),
        pytest.param(
            contract_doc(schema={"$schema": "http://json-schema.org/draft-07/schema#"}),
            "/schema/$schema",
            f"must be {DIALECT} (JSON Schema 2020-12) or absent",
            id="draft-07",
        ),
        pytest.param(
            contract_doc(schema={"type": 12}),
            "/schema/type",
            "is not valid under any of the given schemas",
            id="invalid-schema",
        ),
        pytest.param(
            contract_doc(schema={"properties": {"a": {"minLength": -1}}}),
            "/schema/properties/a/minLength",
            "-1 is less than the minimum of 0",
            id="invalid-nested-schema",
        ),
        pytest.param(
            contract_doc(examples={"valid": [{"text": 5}], "invalid": []}),
            "/examples/valid/0/text",
            "expected type string",
            id="valid-example-fails",
        ),
        pytest.param(
            contract_doc(examples={"valid": [{"text": "a"}, "x"], "invalid": []}),
            "/examples/valid/1",
            "expected type object",
            id="valid-example-fails-at-root",
        ),
        pytest.param(
            contract_doc(examples={"valid": [], "invalid": [{}, {"text": "ok"}]}),
            "/examples/invalid/1",
            "passes the schema",
            id="invalid-example-passes",
        ),
        pytest.param(
            contract_doc(examples={"good": []}),
            "/examples/good",
            "'good' is not a member of a contract file",
            id="examples-unknown-key",
        ),
        pytest.param(
            contract_doc(examples={"valid": {"text": "hi"}}),
            "/examples/valid",
            "is not of type 'array'",
            id="examples-not-lists",
        ),
        pytest.param(
            contract_doc(migration={"steps": [{"drop": "/a"}]}),
            "/migration/from",
            "required member 'from' is missing",
            id="migration-without-from",
        ),
    ],
)
def test_invalid_contract_documents(doc: Any, where: str, message: str) -> None:
    error = refused(doc)

    [found] = error.problems
    assert found.pointer == where
    assert message in found.message
    assert message in error.detail
    assert error.extensions() == {"problems": [{"pointer": where, "message": found.message}]}


def test_a_long_unknown_member_name_is_shortened() -> None:
    [found] = refused(contract_doc(**{"x" * 500: 1})).problems

    assert found.pointer == "/" + "x" * 500
    assert found.message == "'" + "x" * 77 + "...' is not a member of a contract file"


def test_structure_problems_are_all_reported_in_document_order() -> None:
    doc = contract_doc(id="Bad Id", producers=[], extra=1)
    del doc["classification"]

    error = refused(doc)

    assert [p.pointer for p in error.problems] == [
        "/classification",
        "/extra",
        "/id",
        "/producers",
    ]
    assert error.detail == "/classification: required member 'classification' is missing"


@pytest.mark.parametrize(
    ("doc", "detail"),
    [
        pytest.param(
            contract_doc(examples={"valid": [{"text": 5}], "invalid": []}),
            "/examples/valid/0 fails its own schema at /text: expected type string",
            id="valid-example-fails",
        ),
        pytest.param(
            contract_doc(examples={"valid": [{"text": "a"}, "x"], "invalid": []}),
            "/examples/valid/1 fails its own schema at /: expected type object",
            id="valid-example-fails-at-root",
        ),
        pytest.param(
            contract_doc(examples={"valid": [], "invalid": [{}, {"text": "ok"}]}),
            "/examples/invalid/1 passes the schema",
            id="invalid-example-passes",
        ),
    ],
)
def test_example_problems_say_where_in_the_example(doc: Any, detail: str) -> None:
    assert invalid_contract(doc) == detail


def test_example_failure_message_does_not_echo_the_example() -> None:
    doc = contract_doc(examples={"valid": [{"text": "SECRET-VALUE", "extra": 1}], "invalid": []})

    error = refused(doc)

    assert "SECRET-VALUE" not in repr(error.extensions())
    assert error.detail == (
        "/examples/valid/0 fails its own schema at /extra: member is not allowed by the contract"
    )
    assert error.problems == [
        ContractProblem("/examples/valid/0/extra", "member is not allowed by the contract")
    ]


# -- contract files and the catalog ------------------------------------------


def test_load_contract_file(tmp_path: Path) -> None:
    path = write_contract(tmp_path, contract_doc())

    assert load_contract_file(path).ref == "demo.note@1.0.0"


@pytest.mark.parametrize(
    ("where", "says", "member"),
    [
        ("other.note/1.0.0.yaml", "other.note@1.0.0", "/id"),
        ("demo.note/1.0.1.yaml", "demo.note@1.0.1", "/version"),
        ("other.note/2.0.0.yaml", "other.note@2.0.0", "/id"),
    ],
    ids=["wrong-id", "wrong-version", "wrong-both"],
)
def test_file_path_must_match_id_and_version(
    tmp_path: Path, where: str, says: str, member: str
) -> None:
    path = write_contract(tmp_path, contract_doc(), where=where)

    with pytest.raises(InvalidContract) as info:
        load_contract_file(path)

    message = f"declares demo.note@1.0.0 but its path says {says}"
    assert info.value.detail == f"{path}: {message}"
    assert info.value.problems == [ContractProblem(member, message)]


def test_document_errors_name_the_file(tmp_path: Path) -> None:
    path = write_contract(tmp_path, contract_doc(owners=["x"]))

    with pytest.raises(InvalidContract) as info:
        load_contract_file(path)

    message = "'owners' is not a member of a contract file"
    assert info.value.detail == f"{path}: /owners: {message}"
    assert info.value.problems == [ContractProblem("/owners", message)]


@pytest.mark.parametrize(
    "content", [b"id: [unclosed\n", b"id: \xff\xfe\n"], ids=["invalid-yaml", "invalid-utf8"]
)
def test_unreadable_contract_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "demo.note" / "1.0.0.yaml"
    path.parent.mkdir()
    path.write_bytes(content)

    with pytest.raises(InvalidContract) as info:
        load_contract_file(path)

    assert info.value.detail.startswith(f"{path}: cannot read contract:")
    assert "\n" not in info.value.detail  # one line, for logs and the CLI


def test_missing_contract_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidContract, match="cannot read contract"):
        load_contract_file(tmp_path / "demo.note" / "1.0.0.yaml")


def test_yaml_dates_and_times_stay_strings(tmp_path: Path) -> None:
    path = tmp_path / "demo.dated" / "1.0.0.yaml"
    path.parent.mkdir()
    path.write_text(
        f"""
id: demo.dated
version: 1.0.0
title: Dated
classification: public
owner: minhealth
producers: [minhealth]
consumers: [socialtreasury]
schema:
  $schema: {DIALECT}
  type: object
  properties:
    day: {{type: string, format: date}}
    at: {{type: string, format: date-time}}
examples:
  valid:
    - day: 2026-01-02
      at: 2026-01-02T10:00:00Z
  invalid:
    - day: 2026-13-02
""",
        encoding="utf-8",
    )

    contract = load_contract_file(path)

    assert contract.valid_examples == ({"day": "2026-01-02", "at": "2026-01-02T10:00:00Z"},)
    assert pairs(contract, contract.invalid_examples[0]) == [("/day", "format")]


def test_load_catalog_resolves_the_numerically_latest_version(tmp_path: Path) -> None:
    for version in ("1.2.0", "1.10.0", "1.9.3"):
        write_contract(tmp_path, contract_doc(version=version))
    write_contract(tmp_path, contract_doc(id="demo.other"))
    (tmp_path / "README.md").write_text("not a contract")

    catalog = load_catalog(tmp_path)

    assert len(catalog) == 4
    assert catalog.resolve("demo.note").ref == "demo.note@1.10.0"
    assert catalog.resolve("demo.note@1.9.3").ref == "demo.note@1.9.3"
    assert [c.ref for c in catalog if c.id == "demo.note"] == [
        "demo.note@1.2.0",
        "demo.note@1.9.3",
        "demo.note@1.10.0",
    ]


def test_load_catalog_refuses_a_bad_file(tmp_path: Path) -> None:
    write_contract(tmp_path, contract_doc())
    write_contract(tmp_path, contract_doc(version="1.0.1"), where="demo.note/2.0.0.yaml")

    with pytest.raises(InvalidContract, match=re.escape("but its path says demo.note@2.0.0")):
        load_catalog(tmp_path)


def test_load_catalog_of_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "absent"

    with pytest.raises(InvalidContract) as info:
        load_catalog(missing)

    assert info.value.detail == f"contracts directory {missing} does not exist"


def test_empty_catalog_resolves_nothing(tmp_path: Path) -> None:
    catalog = load_catalog(tmp_path)

    assert len(catalog) == 0
    with pytest.raises(UnknownContract):
        catalog.resolve("demo.note")


def test_catalog_refuses_a_version_defined_twice_with_other_content() -> None:
    first = parse_contract(contract_doc())
    second = parse_contract(contract_doc(title="Same version again"))

    with pytest.raises(VersionExists) as info:
        ContractCatalog([first, second])

    assert info.value.detail == (
        "demo.note@1.0.0 is registered with other content; "
        "versions are immutable: publish a new version"
    )


def test_catalog_keeps_one_copy_of_a_version_given_twice_unchanged() -> None:
    first = parse_contract(contract_doc())

    catalog = ContractCatalog([first, parse_contract(contract_doc())])

    assert [c.ref for c in catalog] == ["demo.note@1.0.0"]
    assert catalog.resolve("demo.note") is first


def test_catalog_accepts_same_version_of_different_contracts() -> None:
    catalog = ContractCatalog(
        [parse_contract(contract_doc()), parse_contract(contract_doc(id="demo.other"))]
    )

    assert {c.ref for c in catalog} == {"demo.note@1.0.0", "demo.other@1.0.0"}
