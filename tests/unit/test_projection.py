"""Field minimisation: projections of payloads, consumers' views of schemas, field checks.

The heart is one invariant, checked on every valid example of every shipped
contract, for hand-picked and for random field lists: the projection is valid
under the consumer's view, holds no member outside the fields, and holds every
allowed member the payload has.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from gateway.contracts import ContractVersion, PayloadValidator, load_catalog
from gateway.contracts.migration import tokens
from gateway.contracts.projection import check_fields, consumer_view, project
from tests.support import CONTRACTS, referral

CATALOG = list(load_catalog(CONTRACTS))
REFERRAL = next(c for c in CATALOG if c.ref == "health.patient-referral@1.0.0")
TRANSPORT = next(c for c in CATALOG if c.id == "transport.staff-medical-check")
SOCIAL = next(c for c in CATALOG if c.id == "social.support-measure")

FIELD_LISTS: dict[str, list[list[str]]] = {
    "health.patient-referral": [
        ["/patient/birthDate"],
        ["/diagnosis"],
        ["/urgency"],
        ["/diagnosis/icd10", "/urgency"],
        ["/patient/birthDate", "/patient/regionCode", "/referredTo/specialty"],
        ["/patient/regionCode"],  # optional: absent from the second example
        ["/contactEmail", "/diagnosis/note"],  # optional members only
        ["/patient", "/patient/sex"],  # overlapping
        ["/referralId", "/issuedOn", "/patient", "/diagnosis", "/urgency", "/referredTo"],
    ],
    "social.support-measure": [
        ["/amount/value"],
        ["/period/to", "/measureCode"],
        ["/basis"],  # a whole array
        ["/period", "/amount/currency", "/basis"],
    ],
    "transport.staff-medical-check": [
        ["/result"],  # the root's if/then (unfit requires reasons) is dropped
        ["/reasons"],
        ["/result", "/reasons"],
        ["/measurements/pulse", "/measurements/temperatureC", "/checkedAt"],
    ],
}
EVERYONE: list[list[str]] = [[], [""], ["", "/patient"]]


def object_schema(properties: dict[str, Any], **rest: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **rest}


STRING = {"type": "string"}


# -- helpers -----------------------------------------------------------------


def declared_pointers(schema: Any, path: str = "") -> Iterator[str]:
    """Every declared property below plain object schemas, parents first."""
    if isinstance(schema, Mapping) and schema.get("type") == "object":
        for name, sub in schema.get("properties", {}).items():
            here = f"{path}/{name.replace('~', '~0').replace('/', '~1')}"
            yield here
            yield from declared_pointers(sub, here)


def members(document: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every object member at any depth, with its path (arrays are atomic)."""
    if isinstance(document, dict):
        for name, value in document.items():
            yield (*path, name), value
            yield from members(value, (*path, name))


def lookup(document: Any, path: Sequence[str]) -> tuple[bool, Any]:
    for token in path:
        if not (isinstance(document, dict) and token in document):
            return False, None
        document = document[token]
    return True, document


def assert_minimised(payload: Any, fields: list[str], schema: Any) -> None:
    before = copy.deepcopy(payload)
    projected = project(payload, fields)
    assert payload == before, "project changed its input"

    view = consumer_view(schema, fields)
    assert PayloadValidator(view).violations(projected) == [], (fields, projected)

    allowed = [tuple(tokens(f)) for f in fields]
    for path, value in members(projected):
        inside = any(path[: len(a)] == a for a in allowed)
        on_the_way = any(len(a) > len(path) and a[: len(path)] == path for a in allowed)
        assert inside or (on_the_way and isinstance(value, dict)), (fields, path)
    for a in allowed:
        found, value = lookup(payload, a)
        if found:
            assert lookup(projected, a) == (True, value), (fields, a)


def thinned(example: Any, schema: Any, rng: random.Random) -> Any:
    """A copy of ``example`` with some optional members (at any depth) removed."""
    if not (isinstance(example, dict) and isinstance(schema, Mapping)):
        return copy.deepcopy(example)
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    out = {}
    for name, value in example.items():
        if name in required or rng.random() < 0.6:
            out[name] = thinned(value, properties.get(name, {}), rng)
    return out


def cases() -> Iterator[Any]:
    for contract in CATALOG:
        for fields in FIELD_LISTS[contract.id] + EVERYONE[:2]:
            yield pytest.param(contract, fields, id=f"{contract.ref}:{','.join(fields) or '[]'}")
        if contract.ref == "health.patient-referral@1.1.0":
            yield pytest.param(contract, ["/referralChannel"], id=f"{contract.ref}:channel")


# -- the invariant on the shipped contracts ---------------------------------


@pytest.mark.parametrize(("contract", "fields"), list(cases()))
def test_projections_of_valid_examples_fit_the_view_and_the_fields(
    contract: ContractVersion, fields: list[str]
) -> None:
    assert check_fields(contract.schema, fields) == []
    assert contract.valid_examples
    for example in contract.valid_examples:
        assert_minimised(example, fields, contract.schema)


@pytest.mark.parametrize("contract", CATALOG, ids=lambda c: c.ref)
def test_every_single_declared_member_is_a_valid_field_list(contract: ContractVersion) -> None:
    for field in declared_pointers(contract.schema):
        assert check_fields(contract.schema, [field]) == []
        for example in contract.valid_examples:
            assert_minimised(example, [field], contract.schema)


@pytest.mark.parametrize("contract", CATALOG, ids=lambda c: c.ref)
def test_random_field_lists_over_thinned_examples(contract: ContractVersion) -> None:
    pointers = list(declared_pointers(contract.schema))
    top_level = [p for p in pointers if p.count("/") == 1]
    rng = random.Random(f"projection:{contract.ref}")
    thinned_used = 0
    for _ in range(150):
        pool = pointers if rng.random() < 0.7 else top_level
        fields = rng.sample(pool, rng.randint(0, len(pool)))
        for example in contract.valid_examples:
            payload = thinned(example, contract.schema, rng)
            if contract.validator.violations(payload):
                payload = example  # thinning broke a conditional rule
            thinned_used += payload != example
            assert_minimised(payload, fields, contract.schema)
    assert thinned_used > 50


@pytest.mark.parametrize("contract", CATALOG, ids=lambda c: c.ref)
def test_shipped_consumer_field_lists_are_accepted(contract: ContractVersion) -> None:
    for fields in contract.consumer_fields.values():
        assert check_fields(contract.schema, fields) == []


# -- project -----------------------------------------------------------------


def test_a_nested_pointer_keeps_the_objects_on_its_path() -> None:
    assert project(referral(), ["/patient/birthDate"]) == {"patient": {"birthDate": "1961-03-14"}}


def test_a_pointer_to_an_object_keeps_its_whole_subtree() -> None:
    assert project(referral(), ["/referredTo", "/urgency"]) == {
        "urgency": "routine",
        "referredTo": {"organisationId": "cardio-center-3", "specialty": "cardiology"},
    }


def test_member_order_follows_the_payload_not_the_field_list() -> None:
    assert list(project(referral(), ["/urgency", "/referralId"])) == ["referralId", "urgency"]


def test_overlapping_pointers_keep_the_wider_one() -> None:
    whole = project(referral(), ["/patient"])
    assert project(referral(), ["/patient/sex", "/patient"]) == whole
    assert project(referral(), ["/patient", "/patient/sex"]) == whole


def test_the_empty_pointer_keeps_the_whole_document() -> None:
    assert project(referral(), [""]) == referral()
    assert project(referral(), ["/urgency", ""]) == referral()
    assert project("text", [""]) == "text"


def test_an_empty_field_list_keeps_no_member() -> None:
    assert project(referral(), []) == {}


def test_a_missing_member_contributes_nothing_but_the_objects_that_exist() -> None:
    assert project(referral(), ["/contactEmail"]) == {}
    assert project(referral(), ["/patient/regionCode"]) == {"patient": {}}
    assert project({"a": {}}, ["/a/b/c"]) == {"a": {}}


def test_a_pointer_into_a_non_object_contributes_nothing() -> None:
    payload = {"id": "x", "list": [{"b": 1}], "none": None}

    assert project(payload, ["/id/length", "/list/0/b", "/list/0", "/none/x"]) == {}
    assert project("text", ["/a"]) == {}
    assert project([1, 2], ["/0"]) == {}


def test_an_array_named_by_a_pointer_is_kept_whole() -> None:
    payload = {"basis": [{"a": 1}, {"a": 2}], "other": 1}

    assert project(payload, ["/basis"]) == {"basis": [{"a": 1}, {"a": 2}]}


def test_tokens_are_member_names_and_escapes_are_decoded() -> None:
    payload = {"0": {"a/b": 1, "c~d": 2, "e": 3}}

    assert project(payload, ["/0/a~1b", "/0/c~0d"]) == {"0": {"a/b": 1, "c~d": 2}}


def test_the_projection_shares_nothing_with_the_payload() -> None:
    payload = referral()
    projected = project(payload, ["/patient", "/diagnosis/icd10"])
    projected["patient"]["sex"] = "changed"
    projected["diagnosis"]["extra"] = 1

    assert payload == referral()


@pytest.mark.parametrize("bad", ["patient", "/a~2", "#/patient"])
def test_project_refuses_a_malformed_pointer(bad: str) -> None:
    with pytest.raises(ValueError, match="not a JSON pointer"):
        project(referral(), ["/urgency", bad])


def test_a_single_string_is_not_a_field_list() -> None:
    with pytest.raises(TypeError, match="not one string"):
        project(referral(), "/urgency")


# -- consumer_view -------------------------------------------------------------


def test_the_view_prunes_properties_and_required_and_stays_closed() -> None:
    view = consumer_view(REFERRAL.schema, ["/patient/birthDate", "/urgency"])

    assert isinstance(view, dict)
    assert list(view["properties"]) == ["patient", "urgency"]
    assert view["required"] == ["patient", "urgency"]
    assert view["additionalProperties"] is False
    patient = view["properties"]["patient"]
    assert patient["properties"] == {"birthDate": {"type": "string", "format": "date"}}
    assert patient["required"] == ["birthDate"]
    assert patient["additionalProperties"] is False


def test_the_view_refuses_what_the_consumer_is_not_entitled_to() -> None:
    fields = ["/patient/birthDate"]
    validator = PayloadValidator(consumer_view(REFERRAL.schema, fields))
    good = project(referral(), fields)

    assert validator.violations(good) == []
    assert validator.violations({}) != []  # patient is still required
    assert validator.violations({**good, "urgency": "routine"}) != []
    assert validator.violations({"patient": {"birthDate": "1961-03-14", "sex": "male"}}) != []
    assert validator.violations({"patient": {"birthDate": "not a date"}}) != []


def test_a_member_kept_whole_keeps_its_whole_subschema() -> None:
    view = consumer_view(REFERRAL.schema, ["/diagnosis"])

    assert isinstance(view, dict)
    assert isinstance(REFERRAL.schema, Mapping)
    assert view["properties"]["diagnosis"] == REFERRAL.schema["properties"]["diagnosis"]
    assert PayloadValidator(view).violations({"diagnosis": {"icd10": "nope"}}) != []


def test_an_empty_field_list_leaves_an_object_with_nothing_required() -> None:
    closed = PayloadValidator(consumer_view(REFERRAL.schema, []))
    open_ = PayloadValidator(consumer_view(object_schema({"a": STRING}, required=["a"]), []))

    assert closed.violations({}) == []
    assert closed.violations({"urgency": "routine"}) != []
    assert open_.violations({}) == []
    assert open_.violations({"a": 1}) == []  # an open model accepts a removed name


def test_the_view_requires_what_remains_required() -> None:
    schema = object_schema({"a": STRING, "b": STRING}, required=["a"])

    assert PayloadValidator(consumer_view(schema, ["/a"])).violations({}) != []
    assert PayloadValidator(consumer_view(schema, ["/b"])).violations({}) == []


def test_the_whole_document_view_is_the_contract_schema() -> None:
    assert consumer_view(REFERRAL.schema, [""]) == REFERRAL.schema
    assert consumer_view(REFERRAL.schema, ["/urgency", ""]) == REFERRAL.schema
    assert consumer_view(True, [""]) is True


def test_the_view_does_not_change_the_contract_schema() -> None:
    before = copy.deepcopy(REFERRAL.schema)
    view = consumer_view(REFERRAL.schema, ["/patient/sex"])
    assert isinstance(view, dict)
    view["properties"]["patient"]["properties"]["sex"]["enum"].append("other")

    assert before == REFERRAL.schema


def test_conditionals_of_a_pruned_object_are_dropped() -> None:
    # Kept, 'if result is unfit then reasons is required' would refuse the
    # projection {"result": "unfit"} of a valid payload.
    view = consumer_view(TRANSPORT.schema, ["/result"])

    assert isinstance(view, dict)
    assert not {"if", "then", "else"} & set(view)
    assert PayloadValidator(view).violations({"result": "unfit"}) == []


def test_rules_a_subset_of_members_can_break_are_dropped_or_narrowed() -> None:
    schema = object_schema(
        {"a": STRING, "b": STRING, "c": STRING},
        minProperties=3,
        dependentRequired={"a": ["b", "c"], "c": ["a"]},
        dependentSchemas={"a": {"required": ["c"]}},
        const={"a": "x", "b": "y", "c": "z"},
        maxProperties=3,
        propertyNames={"maxLength": 1},
    )

    view = consumer_view(schema, ["/a", "/b"])

    assert isinstance(view, dict)
    assert view["dependentRequired"] == {"a": ["b"]}
    assert not {"minProperties", "dependentSchemas", "const"} & set(view)
    assert view["maxProperties"] == 3
    assert view["propertyNames"] == {"maxLength": 1}
    validator = PayloadValidator(view)
    assert validator.violations({"a": "x", "b": "y"}) == []
    assert validator.violations({"a": "x"}) != []


def test_references_inside_kept_members_keep_their_definitions() -> None:
    schema = object_schema(
        {"home": {"$ref": "#/$defs/address"}, "work": {"$ref": "#/$defs/address"}},
        **{"$defs": {"address": object_schema({"city": STRING}, required=["city"])}},
    )
    payload = {"home": {"city": "A"}, "work": {"city": "B"}}

    assert check_fields(schema, ["/home"]) == []
    assert_minimised(payload, ["/home"], schema)
    assert PayloadValidator(consumer_view(schema, ["/home"])).violations({"home": {}}) != []


# -- check_fields and refusals -------------------------------------------------


def test_an_undeclared_member_is_named_with_where_it_was_looked_for() -> None:
    assert check_fields(REFERRAL.schema, ["/patient/fullName", "/nope/deeper"]) == [
        "/patient/fullName: no property 'fullName' is declared at /patient",
        "/nope: no property 'nope' is declared at the root",
    ]


def test_a_pointer_cannot_reach_inside_a_non_object() -> None:
    assert check_fields(REFERRAL.schema, ["/referralId/x", "/urgency/0"]) == [
        "/referralId: is not declared as an object (type: object), "
        "so a field list cannot name members inside it",
        "/urgency: is not declared as an object (type: object), "
        "so a field list cannot name members inside it",
    ]


def test_a_pointer_cannot_reach_inside_an_array() -> None:
    assert check_fields(SOCIAL.schema, ["/basis/0"]) == [
        "/basis: is an array; arrays are received whole, so list /basis itself"
    ]


def test_malformed_pointers_are_reported_with_the_rest() -> None:
    problems = check_fields(REFERRAL.schema, ["urgency", "/nope"])

    assert problems == [
        "urgency: 'urgency' is not a JSON pointer",
        "/nope: no property 'nope' is declared at the root",
    ]


def test_a_parent_must_say_type_object() -> None:
    nullable = object_schema({"p": {"type": ["object", "null"], "properties": {"a": STRING}}})
    untyped = object_schema({"p": {"properties": {"a": STRING}}})

    assert check_fields(nullable, ["/p/a"]) == [
        "/p: is not declared as an object (type: object), "
        "so a field list cannot name members inside it"
    ]
    assert len(check_fields(untyped, ["/p/a"])) == 1
    assert check_fields(nullable, ["/p"]) == []  # named whole, it is not pruned


@pytest.mark.parametrize("schema", [True, False, {"properties": {"a": STRING}}])
def test_a_root_that_is_not_an_object_schema_can_only_be_kept_whole(schema: Any) -> None:
    for fields in (["/a"], []):
        assert check_fields(schema, fields) == [
            "the root: is not declared as an object (type: object), "
            "so a field list cannot name members inside it"
        ]
    assert check_fields(schema, [""]) == []


@pytest.mark.parametrize("keyword", ["allOf", "anyOf", "oneOf"])
def test_combinators_on_the_path_are_refused(keyword: str) -> None:
    schema = object_schema(
        {"p": object_schema({"a": STRING, "b": STRING}, **{keyword: [{"required": ["b"]}]})}
    )

    assert check_fields(schema, ["/p/a"]) == [
        f"/p: uses '{keyword}', so its members cannot be derived structurally; "
        "declare them in 'properties', or list /p whole"
    ]
    assert check_fields(schema, ["/p"]) == []
    with pytest.raises(
        ValueError, match=f"cannot derive the consumer's view: /p: uses '{keyword}'"
    ):
        consumer_view(schema, ["/p/a"])


def test_a_reference_on_the_path_is_refused() -> None:
    schema = {
        "$ref": "#/$defs/root",
        "$defs": {"root": object_schema({"a": STRING})},
    }

    assert check_fields(schema, ["/a"]) == [
        "the root: is not declared as an object (type: object), "
        "so a field list cannot name members inside it"
    ]
    typed = {**schema, "type": "object", "properties": {"a": STRING}}
    assert check_fields(typed, ["/a"]) == [
        "the root: uses '$ref', so its members cannot be derived structurally; "
        "declare them in 'properties', or list \"\" whole"
    ]


def test_a_reference_into_a_pruned_part_is_refused() -> None:
    schema = object_schema(
        {
            "a": object_schema({"x": STRING}),
            "b": object_schema({"same": {"$ref": "#/properties/a"}, "tree": {"$ref": "#"}}),
        }
    )

    assert check_fields(schema, ["/b/same"]) == [
        "/properties/b/properties/same/$ref: '#/properties/a' refers to a part of the "
        "schema the consumer's view does not keep"
    ]
    assert check_fields(schema, ["/b/same", "/a"]) == []
    assert len(check_fields(schema, ["/b/tree", "/a"])) == 1  # the root is pruned
    assert check_fields(schema, ["/b/tree", "/a", "/b"]) == []  # nothing is


def test_an_anchor_reference_must_still_find_its_anchor() -> None:
    schema = object_schema(
        {"a": {"$anchor": "code", "type": "string"}, "b": {"$ref": "#code"}},
    )

    assert len(check_fields(schema, ["/b"])) == 1
    assert check_fields(schema, ["/b", "/a"]) == []


def test_a_member_also_governed_by_a_pattern_cannot_be_pruned() -> None:
    inner = object_schema({"x": STRING, "y": STRING})
    schema = object_schema({"p1": inner}, patternProperties={"^p[0-9]$": {"required": ["y"]}})

    assert check_fields(schema, ["/p1/x"]) == [
        "/p1: is also governed by patternProperties '^p[0-9]$'"
    ]
    assert check_fields(schema, ["/p1"]) == []
    unrelated = object_schema({"p1": inner}, patternProperties={"^q": STRING})
    assert check_fields(unrelated, ["/p1/x"]) == []


def test_unevaluated_properties_beside_a_conditional_is_refused() -> None:
    schema = object_schema(
        {"a": STRING},
        unevaluatedProperties=False,
        **{"if": {"required": ["a"]}, "then": {"properties": {"b": STRING}}},
    )

    assert check_fields(schema, ["/a"]) == [
        "the root: has 'unevaluatedProperties' beside a conditional, which cannot be pruned"
    ]
    assert check_fields(schema, [""]) == []


def test_unevaluated_properties_alone_is_kept() -> None:
    schema = object_schema({"a": STRING, "b": STRING}, unevaluatedProperties=False)
    view = consumer_view(schema, ["/a"])

    assert isinstance(view, dict)
    assert view["unevaluatedProperties"] is False
    assert_minimised({"a": "1", "b": "2"}, ["/a"], schema)


def test_the_view_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError, match=r"/nope.*; /urgency: is not declared"):
        consumer_view(REFERRAL.schema, ["/nope", "/urgency/x"])
