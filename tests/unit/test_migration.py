"""Contract migrations: the four steps on JSON pointers, and how they are parsed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.contracts import parse_contract
from gateway.contracts.migration import Migration, tokens
from gateway.errors import InvalidContract


def migration(*steps: dict[str, Any]) -> Migration:
    return Migration.parse({"from": "1.0.0", "steps": list(steps)})


def migrate(payload: Any, *steps: dict[str, Any]) -> Any:
    """Apply ``steps`` and check that ``payload`` itself was left untouched."""
    before = copy.deepcopy(payload)
    result = migration(*steps).apply(payload)
    assert payload == before
    return result


def contract_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "demo.note",
        "version": "1.1.0",
        "title": "Demo note",
        "classification": "internal",
        "owner": "minhealth",
        "producers": ["minhealth"],
        "consumers": ["socialtreasury"],
        "schema": {"type": "object"},
    }
    doc.update(changes)
    return doc


# -- rename ------------------------------------------------------------------


def test_rename_moves_a_member() -> None:
    assert migrate({"a": 1, "b": 2}, {"rename": {"from": "/a", "to": "/c"}}) == {"b": 2, "c": 1}


def test_rename_moves_a_nested_member() -> None:
    payload = {"patient": {"sex": "female", "id": "P1"}}

    result = migrate(payload, {"rename": {"from": "/patient/sex", "to": "/patient/gender"}})

    assert result == {"patient": {"id": "P1", "gender": "female"}}


def test_rename_moves_a_member_between_objects() -> None:
    payload = {"old": {"code": "X", "keep": 1}, "new": {}}

    result = migrate(payload, {"rename": {"from": "/old/code", "to": "/new/code"}})

    assert result == {"old": {"keep": 1}, "new": {"code": "X"}}


def test_rename_creates_missing_parent_objects() -> None:
    result = migrate({"a": [1, 2], "b": 2}, {"rename": {"from": "/a", "to": "/x/y/z"}})

    assert result == {"b": 2, "x": {"y": {"z": [1, 2]}}}


def test_rename_moves_a_whole_subtree() -> None:
    payload = {"contact": {"email": "a@b.example", "phone": {"home": "1"}}}

    result = migrate(payload, {"rename": {"from": "/contact", "to": "/person/contact"}})

    assert result == {"person": {"contact": {"email": "a@b.example", "phone": {"home": "1"}}}}


def test_rename_can_nest_a_member_under_its_own_name() -> None:
    result = migrate({"a": {"k": 1}}, {"rename": {"from": "/a", "to": "/a/b"}})

    assert result == {"a": {"b": {"k": 1}}}


def test_rename_replaces_an_existing_target() -> None:
    assert migrate({"a": 1, "b": 2}, {"rename": {"from": "/a", "to": "/b"}}) == {"b": 1}


def test_rename_of_an_absent_member_does_nothing() -> None:
    payload = {"b": 2}

    assert migrate(payload, {"rename": {"from": "/a", "to": "/x/y"}}) == payload


@pytest.mark.parametrize(
    ("payload", "target"),
    [
        ({"a": 1, "b": "text", "c": 3}, "/b/c"),
        ({"a": 1, "b": {"c": 5}, "d": 4}, "/b/c/d"),
        ({"a": 1, "items": [1, 2]}, "/items/0"),
        ({"a": 1, "items": [1, 2]}, "/items/5/x"),
    ],
    ids=["parent-is-a-string", "parent-is-a-number", "into-an-array", "past-an-array's-end"],
)
def test_rename_that_cannot_place_the_member_leaves_the_payload_as_it_was(
    payload: dict[str, Any], target: str
) -> None:
    result = migrate(payload, {"rename": {"from": "/a", "to": target}})

    assert result == payload
    assert list(result) == list(payload)  # not even the member order changes


def test_rename_out_of_an_array_that_cannot_place_the_item_keeps_it_in_place() -> None:
    payload = {"items": ["a", "b", "c"], "s": "text"}

    result = migrate(payload, {"rename": {"from": "/items/1", "to": "/s/x"}})

    assert result == payload


# -- default -----------------------------------------------------------------


def test_default_sets_an_absent_member() -> None:
    result = migrate({"a": 1}, {"default": {"pointer": "/channel", "value": "electronic"}})

    assert result == {"a": 1, "channel": "electronic"}


@pytest.mark.parametrize("present", ["paper", "", None, 0, False, [], {}])
def test_default_never_replaces_a_present_member(present: Any) -> None:
    payload = {"channel": present}

    result = migrate(payload, {"default": {"pointer": "/channel", "value": "electronic"}})

    assert result == payload


def test_default_sets_a_nested_member_creating_parents() -> None:
    step = {"default": {"pointer": "/meta/source/system", "value": "legacy"}}

    assert migrate({"a": 1}, step) == {"a": 1, "meta": {"source": {"system": "legacy"}}}
    assert migrate({"meta": {"x": 1}}, step) == {"meta": {"x": 1, "source": {"system": "legacy"}}}


def test_default_where_the_parent_is_not_an_object_does_nothing() -> None:
    payload = {"meta": "text", "items": [1]}

    assert migrate(payload, {"default": {"pointer": "/meta/source", "value": 1}}) == payload
    assert migrate(payload, {"default": {"pointer": "/items/0", "value": 1}}) == payload


def test_default_values_are_copied_for_each_payload() -> None:
    step = migration({"default": {"pointer": "/tags", "value": ["a"]}})

    first = step.apply({})
    first["tags"].append("mutated")

    assert step.apply({}) == {"tags": ["a"]}


# -- drop --------------------------------------------------------------------


def test_drop_removes_a_member() -> None:
    assert migrate({"a": 1, "legacy": {"x": 1}}, {"drop": "/legacy"}) == {"a": 1}


def test_drop_removes_a_nested_member() -> None:
    payload = {"patient": {"id": "P1", "fullName": "x"}}

    assert migrate(payload, {"drop": "/patient/fullName"}) == {"patient": {"id": "P1"}}


@pytest.mark.parametrize("where", ["/absent", "/a/b", "/a/b/c", "/list/3", "/list/x"])
def test_drop_of_an_absent_member_does_nothing(where: str) -> None:
    payload = {"a": 1, "list": [1, 2]}

    assert migrate(payload, {"drop": where}) == payload


# -- map ---------------------------------------------------------------------


def test_map_replaces_string_values() -> None:
    step = {"map": {"pointer": "/urgency", "values": {"emergency": "urgent", "later": "routine"}}}

    assert migrate({"urgency": "emergency"}, step) == {"urgency": "urgent"}
    assert migrate({"urgency": "later"}, step) == {"urgency": "routine"}


def test_map_keeps_a_string_it_does_not_list() -> None:
    step = {"map": {"pointer": "/urgency", "values": {"emergency": "urgent"}}}

    assert migrate({"urgency": "routine"}, step) == {"urgency": "routine"}


@pytest.mark.parametrize("value", [1, 1.0, True, None, ["1"], {"1": "1"}])
def test_map_only_replaces_strings(value: Any) -> None:
    # Every key is the text some non-string value would print as.
    values = {
        "1": "one",
        "1.0": "one",
        "True": "yes",
        "None": "no",
        "['1']": "l",
        "{'1': '1'}": "d",
    }
    step = {"map": {"pointer": "/v", "values": values}}

    assert migrate({"v": value}, step) == {"v": value}


def test_map_of_an_absent_member_does_nothing() -> None:
    step = {"map": {"pointer": "/a/b", "values": {"x": "y"}}}

    assert migrate({"c": "x"}, step) == {"c": "x"}
    assert migrate({"a": "x"}, step) == {"a": "x"}


def test_map_may_give_any_json_value_and_copies_it() -> None:
    step = migration({"map": {"pointer": "/v", "values": {"both": ["a", "b"]}}})

    first = step.apply({"v": "both"})
    first["v"].append("mutated")

    assert step.apply({"v": "both"}) == {"v": ["a", "b"]}


# -- arrays, escapes and order -----------------------------------------------


def test_pointers_reach_into_arrays_by_index() -> None:
    payload = {"items": [{"kind": "old", "name": "a"}, {"kind": "old", "name": "b"}]}

    result = migrate(
        payload,
        {"rename": {"from": "/items/1/name", "to": "/items/1/label"}},
        {"map": {"pointer": "/items/0/kind", "values": {"old": "new"}}},
        {"default": {"pointer": "/items/0/size", "value": 1}},
        {"drop": "/items/1/kind"},
    )

    assert result == {"items": [{"kind": "new", "name": "a", "size": 1}, {"label": "b"}]}


def test_drop_and_map_act_on_array_items() -> None:
    payload = {"codes": ["a", "b", "c"]}

    assert migrate(payload, {"drop": "/codes/0"}) == {"codes": ["b", "c"]}
    assert migrate(payload, {"map": {"pointer": "/codes/2", "values": {"c": "z"}}}) == {
        "codes": ["a", "b", "z"]
    }


def test_rename_takes_an_item_out_of_an_array() -> None:
    result = migrate({"items": ["first", "second"]}, {"rename": {"from": "/items/0", "to": "/x"}})

    assert result == {"items": ["second"], "x": "first"}


@pytest.mark.parametrize("index", ["01", "-", "+1", " 1", "1 ", "\u0661", "2"])
def test_only_plain_indexes_of_existing_items_name_array_items(index: str) -> None:
    # RFC 6901: an index is ASCII digits without a leading zero; "-" names no item.
    payload = {"codes": ["a", "b"]}

    assert migrate(payload, {"drop": f"/codes/{index}"}) == payload


def test_escaped_pointer_tokens_name_members_with_slash_and_tilde() -> None:
    payload = {"a/b": 1, "m~n": "x", "": 3}

    result = migrate(
        payload,
        {"rename": {"from": "/a~1b", "to": "/c~0d"}},
        {"map": {"pointer": "/m~0n", "values": {"x": "y"}}},
        {"drop": "/"},
    )

    assert result == {"m~n": "y", "c~d": 1}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", []), ("/", [""]), ("/a/0", ["a", "0"]), ("/a~1b/m~0n", ["a/b", "m~n"]), ("/~01", ["~1"])],
)
def test_tokens(text: str, expected: list[str]) -> None:
    assert tokens(text) == expected


def test_steps_run_in_order() -> None:
    result = migrate(
        {"sex": "f"},
        {"rename": {"from": "/sex", "to": "/gender"}},
        {"map": {"pointer": "/gender", "values": {"f": "female"}}},
        {"default": {"pointer": "/gender", "value": "unknown"}},
        {"default": {"pointer": "/sex", "value": "unknown"}},
    )

    assert result == {"gender": "female", "sex": "unknown"}


def test_apply_never_mutates_its_input() -> None:
    payload = {"a": {"b": [1, {"c": "x"}]}, "d": "old", "e": 1}
    frozen = copy.deepcopy(payload)
    every_step = migration(
        {"rename": {"from": "/a/b/1/c", "to": "/moved/c"}},
        {"default": {"pointer": "/a/new", "value": {"k": []}}},
        {"drop": "/e"},
        {"map": {"pointer": "/d", "values": {"old": "new"}}},
        {"drop": "/a/b/0"},
    )

    result = every_step.apply(payload)

    assert payload == frozen
    assert result == {"a": {"b": [{}], "new": {"k": []}}, "d": "new", "moved": {"c": "x"}}
    result["a"]["b"].append("more")
    assert payload == frozen


@pytest.mark.parametrize("payload", ["text", 1, None, [1, 2]])
def test_steps_that_need_an_object_leave_other_payloads_unchanged(payload: Any) -> None:
    steps = (
        {"default": {"pointer": "/x", "value": 1}},
        {"rename": {"from": "/0", "to": "/x"}},
        {"map": {"pointer": "/x", "values": {"a": "b"}}},
    )

    assert migrate(payload, *steps) == payload


def test_drop_acts_on_a_top_level_array() -> None:
    assert migrate([1, 2], {"drop": "/0"}) == [2]


# -- parsing -----------------------------------------------------------------


def test_parse_keeps_the_source_version_and_the_steps() -> None:
    parsed = Migration.parse(
        {"from": "1.2.3", "steps": [{"drop": "/a"}, {"rename": {"from": "/b", "to": "/c"}}]}
    )

    assert parsed.source == "1.2.3"
    assert [(s.operation, s.arguments) for s in parsed.steps] == [
        ("drop", "/a"),
        ("rename", {"from": "/b", "to": "/c"}),
    ]


@pytest.mark.parametrize(
    "step",
    [
        {"drop": "a"},
        {"drop": "/a~2"},
        {"drop": "/a~"},
        {"rename": {"from": "a", "to": "/b"}},
        {"rename": {"from": "/a", "to": "b/"}},
        {"default": {"pointer": "#/a", "value": 1}},
        {"map": {"pointer": "a", "values": {"x": "y"}}},
    ],
)
def test_parse_refuses_an_invalid_pointer(step: dict[str, Any]) -> None:
    with pytest.raises(InvalidContract, match="is not a JSON pointer"):
        migration(step)


@pytest.mark.parametrize(
    "step",
    [
        {"drop": ""},
        {"rename": {"from": "", "to": "/b"}},
        {"rename": {"from": "/a", "to": ""}},
        {"default": {"pointer": "", "value": {}}},
        {"map": {"pointer": "", "values": {"x": "y"}}},
    ],
)
def test_parse_refuses_a_step_on_the_whole_document(step: dict[str, Any]) -> None:
    with pytest.raises(InvalidContract) as info:
        migration(step)

    assert info.value.detail == "a migration step cannot act on the whole document"


@pytest.mark.parametrize(
    ("steps", "where", "message"),
    [
        pytest.param([{"drop": "a"}], "/migration/steps/0/drop", "does not match", id="drop"),
        pytest.param(
            [{"drop": "/ok"}, {"rename": {"from": "/a~2", "to": "/b"}}],
            "/migration/steps/1/rename/from",
            "does not match",
            id="bad-escape",
        ),
        pytest.param(
            [{"rename": {"from": "/a", "to": "b"}}],
            "/migration/steps/0/rename/to",
            "does not match",
            id="rename-to",
        ),
        pytest.param(
            [{"default": {"pointer": "", "value": 1}}],
            "/migration/steps/0/default/pointer",
            "does not match",
            id="whole-document",
        ),
        pytest.param(
            [{"map": {"pointer": "/a", "values": {}}}],
            "/migration/steps/0/map/values",
            "should be non-empty",
            id="map-nothing",
        ),
        pytest.param(
            [{"default": {"pointer": "/a"}}],
            "/migration/steps/0/default/value",
            "required member 'value' is missing",
            id="default-without-value",
        ),
        pytest.param(
            [{"drop": "/a", "rename": {"from": "/a", "to": "/b"}}],
            "/migration/steps/0",
            "has too many properties",
            id="two-operations",
        ),
        pytest.param(
            [{"move": {"from": "/a", "to": "/b"}}],
            "/migration/steps/0/move",
            "'move' is not a member of a contract file",
            id="unknown-operation",
        ),
        pytest.param([], "/migration/steps", "should be non-empty", id="no-steps"),
    ],
)
def test_parse_contract_refuses_bad_steps_with_their_pointer(
    steps: list[Any], where: str, message: str
) -> None:
    with pytest.raises(InvalidContract) as info:
        parse_contract(contract_doc(migration={"from": "1.0.0", "steps": steps}))

    assert [p.pointer for p in info.value.problems] == [where]
    assert message in info.value.problems[0].message


def test_parse_contract_refuses_a_bad_source_version() -> None:
    with pytest.raises(InvalidContract) as info:
        parse_contract(contract_doc(migration={"from": "1.0", "steps": [{"drop": "/a"}]}))

    assert [p.pointer for p in info.value.problems] == ["/migration/from"]
