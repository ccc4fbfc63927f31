"""The AsyncAPI 3.0.0 export of the contract catalog."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from jsonschema import Draft7Validator

from gateway import __version__
from gateway.cloudevents import event_headers
from gateway.contracts import ContractCatalog, ContractVersion, Version, load_catalog
from gateway.contracts.asyncapi import (
    JSON_SCHEMA_2020_12,
    asyncapi_document,
    channel_id,
    message_id,
    receive_id,
)
from tests.support import CONTRACTS, ROOT

SCHEMA = json.loads((ROOT / "tests/fixtures/asyncapi-3.0.0.schema.json").read_text("utf-8"))
ASYNCAPI = Draft7Validator(SCHEMA, format_checker=Draft7Validator.FORMAT_CHECKER)
CATALOG = load_catalog(CONTRACTS)
DOC = asyncapi_document(CATALOG, prefix="test-7.", bootstrap="kafka-1:9092")
COMPONENT_KEY = re.compile(r"^[a-zA-Z0-9\.\-_]+$")
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def errors(document: Any) -> list[str]:
    return [f"{e.json_path}: {e.message}" for e in ASYNCAPI.iter_errors(document)]


def resolve(document: dict[str, Any], node: dict[str, Any]) -> Any:
    """Follow one local ``$ref`` (JSON pointer) inside the document."""
    ref = node["$ref"]
    assert ref.startswith("#/")
    target: Any = document
    for part in ref[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target


def refs(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "$ref" in node:
            yield node
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def inbox_owner(channel_ref: dict[str, Any]) -> str:
    owner: str = channel_ref["$ref"].removeprefix("#/channels/inbox.")
    assert channel_ref == {"$ref": f"#/channels/{channel_id(owner)}"}
    return owner


def contract_of(document: dict[str, Any], message_ref: dict[str, Any]) -> ContractVersion:
    message = resolve(document, resolve(document, message_ref))
    return next(c for c in CATALOG if message_id(c) == message["name"])


def consumers() -> set[str]:
    return {name for contract in CATALOG for name in contract.consumers}


# -- the document is valid AsyncAPI 3.0.0 -----------------------------------------------


@pytest.mark.parametrize(
    "document",
    [DOC, asyncapi_document(CATALOG)],
    ids=["custom-prefix-and-bootstrap", "defaults"],
)
def test_document_validates_against_the_asyncapi_3_schema(document: dict[str, Any]) -> None:
    assert errors(document) == []
    assert document["asyncapi"] == "3.0.0"


def broken(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """DOC with the member at ``path`` replaced by ``value`` (or removed, for ...)."""
    document = copy.deepcopy(DOC)
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    if value is ...:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("asyncapi",), ...),
        (("asyncapi",), "2.6.0"),
        (("info", "version"), ...),
        (("channels", "inbox.minhealth", "address"), 9092),
        (("operations", "receive_minhealth", "action"), "subscribe"),
        (("operations", "receive_minhealth", "channel"), "inbox.minhealth"),
        (("servers", "kafka", "protocol"), ...),
        (("channels", "inbox.minhealth", "messages"), ["social.support-measure_1.0.0"]),
        (("components", "messages", "health.patient-referral_1.0.0", "payload", "type"), 7),
    ],
)
def test_the_schema_check_rejects_broken_documents(path: tuple[str, ...], value: Any) -> None:
    assert errors(broken(path, value)) != []


def test_info_and_server() -> None:
    assert DOC["info"]["version"] == __version__
    assert DOC["info"]["title"]
    assert "JWE" in DOC["info"]["description"]
    assert DOC["defaultContentType"] == "application/jose"
    assert list(DOC["servers"]) == ["kafka"]
    assert DOC["servers"]["kafka"]["host"] == "kafka-1:9092"
    assert DOC["servers"]["kafka"]["protocol"] == "kafka"
    assert asyncapi_document(CATALOG)["servers"]["kafka"]["host"] == "localhost:9092"


def test_every_key_is_a_valid_component_key() -> None:
    # The official schema does not enforce this: its key patterns are patternProperties
    # without additionalProperties: false, so a key like "a@b" passes unchecked.
    keys = [
        *DOC["channels"],
        *DOC["operations"],
        *DOC["components"]["messages"],
        *(key for channel in DOC["channels"].values() for key in channel["messages"]),
    ]
    assert keys
    assert [key for key in keys if not COMPONENT_KEY.fullmatch(key)] == []


def test_every_reference_resolves() -> None:
    found = list(refs(DOC))
    assert len(found) > 10
    for ref in found:
        assert resolve(DOC, ref) is not None


# -- channels: one inbox per consumer ---------------------------------------------------


def test_every_consumer_has_an_inbox_channel_at_its_prefixed_topic() -> None:
    assert set(DOC["channels"]) == {channel_id(name) for name in consumers()}
    for name in consumers():
        assert DOC["channels"][channel_id(name)]["address"] == f"test-7.inbox.{name}"
    default = asyncapi_document(CATALOG)
    assert default["channels"]["inbox.minhealth"]["address"] == "gw.inbox.minhealth"


def test_an_inbox_lists_exactly_the_contract_versions_its_owner_consumes() -> None:
    for name in consumers():
        listed = DOC["channels"][channel_id(name)]["messages"]
        received = {c.ref for c in CATALOG if name in c.consumers}
        assert {contract_ref(listed[key]) for key in listed} == received


def contract_ref(message_ref: dict[str, Any]) -> str:
    name = resolve(DOC, message_ref)["name"]
    return next(c.ref for c in CATALOG if message_id(c) == name)


def test_each_consumer_receives_every_message_of_its_inbox() -> None:
    for name in consumers():
        operation = DOC["operations"][receive_id(name)]
        assert operation["action"] == "receive"
        assert inbox_owner(operation["channel"]) == name
        channel_messages = DOC["channels"][channel_id(name)]["messages"]
        assert [resolve(DOC, m) for m in operation["messages"]] == list(channel_messages.values())
        group = operation["bindings"]["kafka"]["groupId"]
        assert group["enum"] == [f"test-7.inbox.{name}"]


# -- messages: payload is the contract schema, headers are CloudEvents -------------------


def test_each_contract_version_schema_is_its_message_payload() -> None:
    messages = DOC["components"]["messages"]
    assert len(messages) == len(CATALOG)
    for contract in CATALOG:
        message = messages[message_id(contract)]
        assert message["payload"] == contract.schema
        assert message["contentType"] == "application/jose"
        assert contract.ref in message["title"]
        assert "JWE" in message["description"]
        assert "JWS" in message["description"]
        for name in contract.consumers:
            channel_messages = DOC["channels"][channel_id(name)]["messages"]
            assert resolve(DOC, channel_messages[message_id(contract)]) is message


def sample_headers(contract: ContractVersion, **optional: str) -> dict[str, str]:
    headers = event_headers(
        message_id="0190f5d2-8a0e-7c3e-9b1a-2f3e4d5c6b7a",
        sender=min(contract.producers),
        recipient=min(contract.consumers),
        contract=contract.id,
        dataschema=contract.dataschema,
        time="2026-11-20T05:42:10Z",
        **optional,
    )
    return {name: value.decode() for name, value in headers}


def test_changing_the_document_leaves_the_catalog_alone() -> None:
    document = asyncapi_document(CATALOG)
    referral = CATALOG.resolve("health.patient-referral@1.0.0")
    payload = document["components"]["messages"][message_id(referral)]["payload"]
    payload["properties"]["patient"]["required"].append("x")
    schema = referral.schema
    assert isinstance(schema, dict)
    assert "x" not in schema["properties"]["patient"]["required"]


def test_messages_carry_the_cloudevents_headers_schema() -> None:
    for contract in CATALOG:
        schema = DOC["components"]["messages"][message_id(contract)]["headers"]
        full = sample_headers(
            contract, correlation_id="case-42", traceparent=f"00-{'a' * 32}-{'b' * 16}-01"
        )
        assert set(schema["required"]) == set(sample_headers(contract))
        assert set(schema["properties"]) == set(full)
        assert schema["properties"]["ce_type"]["const"] == contract.id
        assert schema["properties"]["ce_dataschema"]["const"] == contract.dataschema
        assert schema["properties"]["content-type"]["const"] == "application/jose"
        headers = Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)
        assert list(headers.iter_errors(full)) == []
        assert list(headers.iter_errors(sample_headers(contract))) == []


def test_the_headers_schema_rejects_headers_of_another_contract_or_sender() -> None:
    referral = CATALOG.resolve("health.patient-referral@1.0.0")
    support = CATALOG.resolve("social.support-measure@1.0.0")
    schema = DOC["components"]["messages"][message_id(referral)]["headers"]
    headers = Draft7Validator(schema)
    assert list(headers.iter_errors(sample_headers(support))) != []
    missing = sample_headers(referral)
    del missing["ce_recipient"]
    assert list(headers.iter_errors(missing)) != []


def test_the_correlation_id_lives_in_a_header() -> None:
    for message in DOC["components"]["messages"].values():
        assert message["correlationId"]["location"] == "$message.header#/ce_correlationid"
        assert message["bindings"]["kafka"]["key"]["type"] == "string"


# -- send operations ---------------------------------------------------------------------


def test_producers_send_only_to_inboxes_of_the_contracts_consumers() -> None:
    sends = {k: op for k, op in DOC["operations"].items() if op["action"] == "send"}
    assert sends
    for key, operation in sends.items():
        recipient = inbox_owner(operation["channel"])
        sender = key.removeprefix("send_").removesuffix(f"_to_{recipient}")
        assert key == f"send_{sender}_to_{recipient}"
        assert operation["messages"]
        for message_ref in operation["messages"]:
            assert message_ref["$ref"].startswith(f"#/channels/{channel_id(recipient)}/messages/")
            contract = contract_of(DOC, message_ref)
            assert sender in contract.producers
            assert recipient in contract.consumers


def test_every_entitled_sender_recipient_pair_has_a_send_operation() -> None:
    expected = {
        (p, contract.ref, c)
        for contract in CATALOG
        for p in contract.producers
        for c in contract.consumers
    }
    described = {
        (
            key.removeprefix("send_").split("_to_")[0],
            contract_of(DOC, m).ref,
            inbox_owner(op["channel"]),
        )
        for key, op in DOC["operations"].items()
        if op["action"] == "send"
        for m in op["messages"]
    }
    assert described == expected


# -- schemas a draft-07 reader would misread --------------------------------------------


def contract(schema: dict[str, Any] | bool, version: str = "1.0.0") -> ContractVersion:
    """A catalog contract renamed, with another schema (independent of the file format)."""
    base = CATALOG.resolve("health.patient-referral@1.0.0")
    if isinstance(schema, dict):
        schema = {"$schema": DIALECT, **schema}
    return replace(base, id="demo.pair", version=Version.parse(version), schema=schema)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
        {"type": "object", "properties": {"a": {"type": "object", "unevaluatedProperties": False}}},
        {"type": "object", "dependentRequired": {"a": ["b"]}},
        {"$defs": {"n": {"type": "integer"}}, "allOf": [{"$ref": "#/$defs/n", "minimum": 1}]},
    ],
    ids=["prefixItems", "nested-unevaluatedProperties", "dependentRequired", "ref-with-siblings"],
)
def test_a_schema_relying_on_2020_12_is_labelled_as_2020_12(schema: dict[str, Any]) -> None:
    version = contract(schema)
    document = asyncapi_document(ContractCatalog([version]))
    payload = document["components"]["messages"][message_id(version)]["payload"]
    assert payload == {"schemaFormat": JSON_SCHEMA_2020_12, "schema": version.schema}
    assert errors(document) == []


def test_a_schema_that_reads_the_same_in_draft_07_is_inlined() -> None:
    version = contract({"type": "object", "properties": {"n": {"const": 1}}, "if": {}, "then": {}})
    document = asyncapi_document(ContractCatalog([version]))
    assert document["components"]["messages"][message_id(version)]["payload"] == version.schema
    assert errors(document) == []


@pytest.mark.parametrize(("schema", "payload"), [(True, {}), (False, {"not": {}})])
def test_a_boolean_schema_becomes_its_object_equivalent(schema: bool, payload: Any) -> None:
    version = contract(schema)
    document = asyncapi_document(ContractCatalog([version]))
    assert document["components"]["messages"][message_id(version)]["payload"] == payload
    assert errors(document) == []
    assert errors(broken_payload(document, version, schema)) != []


def broken_payload(document: dict[str, Any], version: ContractVersion, payload: Any) -> Any:
    """The same document with the raw boolean payload the official schema refuses."""
    document = copy.deepcopy(document)
    document["components"]["messages"][message_id(version)]["payload"] = payload
    return document


def test_several_versions_of_one_contract_are_separate_messages() -> None:
    old, new = contract({"type": "object"}), contract({"type": "object"}, version="1.1.0")
    document = asyncapi_document(ContractCatalog([old, new]))
    assert set(document["components"]["messages"]) == {"demo.pair_1.0.0", "demo.pair_1.1.0"}
    for operation in document["operations"].values():
        assert len(operation["messages"]) == 2
    assert errors(document) == []
