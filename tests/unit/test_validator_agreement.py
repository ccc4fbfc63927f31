"""jsonschema_rs against the reference validator (jsonschema, as PayloadValidator runs it).

Before jsonschema_rs can answer "is this payload valid?" for the gateway, it
must give the reference's answer. These tests pin down where it does and where
it does not:

- on every example of every shipped contract the two agree, and on payloads hypothesis
  builds from each shipped schema (and the same with one change somewhere), where
  ``ContractVersion.validate`` also raises nothing but a ContractViolation whose
  pointers name places in the payload;
- on a table of tricky values for the formats contracts use (and a few
  keywords) each case records *both* validators' answers, so every known
  disagreement is written down with its reason, and a change in either library
  fails here instead of silently changing what the gateway accepts;
- jsonschema_rs fetches ``$ref`` targets (files, HTTP) and even a nested
  ``$schema`` by default; ``offline=True`` is what stops it.

The jsonschema_rs validator is built as a fast path would build it:
``validator_for(schema, validate_formats=True, offline=True)``.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from gateway.contracts.files import load_contract_file
from gateway.contracts.model import ContractVersion
from gateway.contracts.validation import PayloadValidator
from gateway.errors import ContractViolation

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _JsonLikeLoader(yaml.SafeLoader):
    """YAML read as the catalog reads it: ``2024-05-01`` stays a string."""


_JsonLikeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def rs_validator(schema: Any, **options: Any) -> jsonschema_rs.Validator:
    """The plain fast validator (the gateway's adds the reference's format functions)."""
    return jsonschema_rs.validator_for(schema, validate_formats=True, offline=True, **options)


def gateway_valid(schema: Any, instance: Any) -> bool:
    return not PayloadValidator(schema).violations(instance)


# -- every example of every shipped contract ---------------------------------


@dataclass(frozen=True)
class Example:
    contract: str
    schema: Any
    payload: Any
    valid: bool
    """The bucket the contract file puts the example in."""


def shipped_examples() -> Iterator[Any]:
    for path in sorted(CONTRACTS_DIR.glob("*/*.yaml")):
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_JsonLikeLoader)
        ref = f"{doc['id']}@{doc['version']}"
        examples = doc.get("examples") or {}
        for bucket in ("valid", "invalid"):
            for index, payload in enumerate(examples.get(bucket, [])):
                example = Example(ref, doc["schema"], payload, bucket == "valid")
                yield pytest.param(example, id=f"{ref}:{bucket}[{index}]")


EXAMPLES = list(shipped_examples())


def test_every_contract_ships_examples_of_both_kinds() -> None:
    contracts = {p.values[0].contract for p in EXAMPLES}
    assert len(contracts) == len(list(CONTRACTS_DIR.glob("*/*.yaml"))) >= 3
    for contract in contracts:
        buckets = {p.values[0].valid for p in EXAMPLES if p.values[0].contract == contract}
        assert buckets == {True, False}, contract


@pytest.mark.parametrize("example", EXAMPLES)
def test_rs_agrees_with_reference_on_contract_example(example: Example) -> None:
    assert gateway_valid(example.schema, example.payload) is example.valid
    assert rs_validator(example.schema).is_valid(example.payload) is example.valid


@pytest.mark.parametrize("example", EXAMPLES)
def test_rs_finds_errors_exactly_when_it_says_invalid(example: Example) -> None:
    validator = rs_validator(example.schema)
    errors = list(validator.iter_errors(example.payload))
    assert bool(errors) is not validator.is_valid(example.payload)


# -- the fast path against the reference, on generated payloads -------------


def mutations(payload: Any) -> Iterator[Any]:
    """Payloads near a valid one: each member dropped, retyped, emptied or padded, an
    unknown member added, and the same for members of nested objects."""
    yield payload
    if isinstance(payload, dict):
        yield {**payload, "unexpectedMember": 1}
        for name, value in payload.items():
            yield {k: v for k, v in payload.items() if k != name}
            others: tuple[Any, ...] = (None, 0, 1.5, -1, "", "x" * 300, [], {}, True, "2001-02-30")
            for other in others:
                yield {**payload, name: other}
            for inner in mutations(value) if isinstance(value, dict) else ():
                yield {**payload, name: inner}
            if isinstance(value, str):
                yield {**payload, name: value + "\n"}
                yield {**payload, name: value.upper()}
    elif isinstance(payload, list):
        yield []
        yield [*payload, *payload]


@pytest.mark.parametrize("example", [p for p in EXAMPLES if p.values[0].valid])
def test_the_fast_path_agrees_with_the_reference_on_payloads_near_each_example(
    example: Example,
) -> None:
    """The gateway trusts the fast validator's "valid": on thousands of payloads near the
    shipped examples it must never say valid where the reference says invalid, and the
    other way round the reference has the last word anyway."""
    validator = PayloadValidator(example.schema)
    fast = validator._fast
    assert fast is not None
    checked = 0
    for payload in mutations(example.payload):
        reference = not any(True for _ in validator._validator.iter_errors(payload))
        assert fast.is_valid(payload) is reference, payload
        checked += 1
    assert checked > 50


# -- tricky values, each with both validators' answers ------------------------


@dataclass(frozen=True)
class Case:
    schema: dict[str, Any]
    value: Any
    reference: bool
    """Plain jsonschema with FORMAT_CHECKER."""
    rs: bool
    """jsonschema_rs with validate_formats=True."""
    why: str = ""
    """Required exactly when the two differ: which one is right, and why."""
    gateway_follows_rs: bool = False
    """The gateway fixed the reference's reading of this keyword (keywords.py)."""

    @property
    def gateway(self) -> bool:
        return self.rs if self.gateway_follows_rs else self.reference

    @property
    def label(self) -> str:
        rule = self.schema.get("format") or ",".join(k for k in self.schema if k != "type")
        tag = "agree" if self.reference is self.rs else "DISAGREE"
        return f"{tag}:{rule}:{self.value!r}"


def fmt(name: str, value: str, reference: bool, rs: bool | None = None, why: str = "") -> Case:
    schema = {"$schema": DIALECT, "type": "string", "format": name}
    return Case(schema, value, reference, reference if rs is None else rs, why)


def kw(
    schema: dict[str, Any], value: Any, reference: bool, rs: bool | None = None, why: str = ""
) -> Case:
    # gateway/contracts/keywords.py reads pattern and multipleOf as the specification does.
    fixed = bool(why) and ("multipleOf" in schema or "pattern" in schema)
    return Case(
        {"$schema": DIALECT, **schema},
        value,
        reference,
        reference if rs is None else rs,
        why,
        gateway_follows_rs=fixed,
    )


YEAR_ZERO = "RFC 3339 allows year 0000; Python's datetime.date starts at year 1 (rs is right)"
LEAP_SECOND = (
    "RFC 3339 allows second 60 at 23:59 UTC (JSON-Schema-Test-Suite: valid); "
    "rfc3339-validator rejects every :60 (rs is right)"
)
TRAILING_NEWLINE = "the reference's regex ends in '$', which also matches before a final \\n"
LAX_EMAIL = "the reference's 'email' only checks that the value contains '@'"

FORMAT_CASES = [
    # date: contracts use it for issuedOn, birthDate, period.from/to
    fmt("date", "2026-02-28", True),
    fmt("date", "2024-02-29", True),
    fmt("date", "2000-02-29", True),
    fmt("date", "9999-12-31", True),
    fmt("date", "2026-02-30", False),
    fmt("date", "2026-02-29", False),
    fmt("date", "1900-02-29", False),
    fmt("date", "2026-04-31", False),
    fmt("date", "2026-13-01", False),
    fmt("date", "2026-00-10", False),
    fmt("date", "2026-01-00", False),
    fmt("date", "2026-1-05", False),
    fmt("date", "20260105", False),
    fmt("date", "14/03/1961", False),
    fmt("date", "2026-01-05T00:00:00Z", False),
    fmt("date", "2026-01-05\n", False),
    fmt("date", "\uff12\uff10\uff12\uff16-01-05", False),  # full-width digits
    fmt("date", "10000-01-01", False),
    fmt("date", "0000-01-01", False, True, YEAR_ZERO),
    # date-time: checkedAt
    fmt("date-time", "2026-11-20T05:42:10+03:00", True),
    fmt("date-time", "2026-11-20T05:42:10Z", True),
    fmt("date-time", "2026-11-20t05:42:10z", True),
    fmt("date-time", "2026-11-20T05:42:10-00:00", True),
    fmt("date-time", "2026-11-20T05:42:10.123456789Z", True),
    fmt("date-time", "2026-11-20T05:42:10+23:59", True),
    fmt("date-time", "2026-11-20T05:42:10", False),  # no zone
    fmt("date-time", "2026-11-20T05:42:10.5", False),  # no zone
    fmt("date-time", "2026-11-20 05:42", False),
    fmt("date-time", "2026-11-20 05:42:10Z", False),
    fmt("date-time", "2026-11-20T05:42Z", False),
    fmt("date-time", "2026-11-20T05:42:10+0300", False),
    fmt("date-time", "2026-11-20T05:42:10+03:60", False),
    fmt("date-time", "2026-11-20T05:42:10+24:00", False),
    fmt("date-time", "2026-11-20T24:00:00Z", False),
    fmt("date-time", "2026-11-20T05:60:10Z", False),
    fmt("date-time", "2026-02-30T05:42:10Z", False),
    fmt("date-time", "2026-11-20T05:42:10,5Z", False),
    fmt("date-time", "1998-12-31T22:59:60Z", False),  # a leap second, but not at 23:59 UTC
    fmt("date-time", "1998-12-31T23:59:60Z", False, True, LEAP_SECOND),
    fmt("date-time", "2026-11-20T02:59:60+03:00", False, True, LEAP_SECOND),
    fmt("date-time", "0000-01-01T00:00:00Z", False, True, YEAR_ZERO),
    fmt("date-time", "2026-11-20T05:42:10Z\n", True, False, TRAILING_NEWLINE + " (rs is right)"),
    fmt("time", "05:42:10Z", True),
    fmt("time", "05:42:10", False),
    fmt("time", "23:59:60Z", False, True, LEAP_SECOND),
    # email: contactEmail
    fmt("email", "referrals@clinic-12.example", True),
    fmt("email", "a@localhost", True),
    fmt("email", "user@[127.0.0.1]", True),
    fmt("email", '"quoted user"@example.com', True),
    fmt("email", "Name <user@example.com>", True),  # rs: EmailOptions(allow_display_text=True)
    fmt("email", "plainaddress", False),
    fmt("email", "@example.com", True, False, LAX_EMAIL),
    fmt("email", "user@", True, False, LAX_EMAIL),
    fmt("email", "a b@example.com", True, False, LAX_EMAIL),
    fmt("email", "user@@example.com", True, False, LAX_EMAIL),
    fmt("email", ".user@example.com", True, False, LAX_EMAIL),
    fmt("email", "user..dots@example.com", True, False, LAX_EMAIL),
    fmt("email", "user@example..com", True, False, LAX_EMAIL),
    fmt("email", "user@-example.com", True, False, LAX_EMAIL),
    fmt("email", "user@example.com\n", True, False, LAX_EMAIL),
    fmt(
        "email",
        "\u043f\u043e\u0447\u0442\u0430@\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444",
        True,
        False,
        LAX_EMAIL + "; a non-ASCII address is 'idn-email', so rs is right",
    ),
    # uuid: checkId
    fmt("uuid", "2f1c7b9e-6a43-4f6e-9d7e-3b8f0c1a2d45", True),
    fmt("uuid", "2F1C7B9E-6A43-4F6E-9D7E-3B8F0C1A2D45", True),
    fmt("uuid", "00000000-0000-0000-0000-000000000000", True),
    fmt("uuid", "2f1c7b9e-6a43-0f6e-cd7e-3b8f0c1a2d45", True),  # neither checks version/variant
    fmt("uuid", "2f1c7b9e6a434f6e9d7e3b8f0c1a2d45", False),
    fmt("uuid", "{2f1c7b9e-6a43-4f6e-9d7e-3b8f0c1a2d45}", False),
    fmt("uuid", "urn:uuid:2f1c7b9e-6a43-4f6e-9d7e-3b8f0c1a2d45", False),
    fmt("uuid", "2f1c7b9e-6a43-4f6e-9d7e-3b8f0c1a2d4", False),
    fmt("uuid", "2f1c7b9e-6a43-4f6e-9d7e-3b8f0c1a2d4g", False),
    fmt("uuid", "2f1c7b9e6-a43-4f6e-9d7e-3b8f0c1a2d45", False),
    fmt("uuid", "2f1c7b9e-6a43-4f6e-9d7e-3b8f0c1a2d45\n", False),
    fmt("uuid", "not-a-uuid", False),
    # ipv4
    fmt("ipv4", "192.168.0.1", True),
    fmt("ipv4", "0.0.0.0", True),
    fmt("ipv4", "255.255.255.255", True),
    fmt("ipv4", "256.1.1.1", False),
    fmt("ipv4", "192.168.0", False),
    fmt("ipv4", "192.168.0.01", False),  # leading zero
    fmt("ipv4", "1.2.3.4.5", False),
    fmt("ipv4", "192.168.0.1/24", False),
    fmt("ipv4", " 192.168.0.1", False),
    fmt("ipv4", "127.0.0.1\n", False),
    fmt("ipv4", "\u0661\u0662\u0663.1.1.1", False),  # Arabic-Indic digits
    # uri
    fmt("uri", "https://example.com/a?b=c#d", True),
    fmt("uri", "urn:isbn:0451450523", True),
    fmt("uri", "mailto:a@b.example", True),
    fmt("uri", "http://[::1]:80/", True),
    fmt("uri", "a:b", True),
    fmt("uri", "//example.com/path", False),
    fmt("uri", "/relative/path", False),
    fmt("uri", "example.com", False),
    fmt("uri", "http://exa mple.com", False),
    fmt("uri", "http://example.com/\u00e4", False),  # an IRI, not a URI
    fmt("uri", "https://example.com/%zz", False),
    fmt("uri", "https://example.com/\n", True, False, TRAILING_NEWLINE + " (rs is right)"),
    # hostname
    fmt("hostname", "example.com", True),
    fmt("hostname", "exa_mple.com", False),
    fmt("hostname", "-bad.example", False),
    fmt(
        "hostname",
        "example.com.",
        True,
        False,
        "a trailing dot (the DNS root) is accepted by the reference, not by rs",
    ),
]

KEYWORD_CASES = [
    # multipleOf 0.01 is the rule on social.support-measure amount.value
    kw({"type": "number", "multipleOf": 0.01}, 2450.5, True),
    kw({"type": "number", "multipleOf": 0.01}, 980, True),
    kw({"type": "number", "multipleOf": 0.01}, 0.001, False),
    kw({"type": "number", "multipleOf": 0.01}, 1.005, False),
    kw(
        {"type": "number", "multipleOf": 0.01},
        19.99,
        False,
        True,
        "reference divides floats: 19.99 / 0.01 == 1998.9999999999998 (rs is right)",
    ),
    kw(
        {"type": "number", "multipleOf": 0.01},
        0.07,
        False,
        True,
        "reference divides floats: 0.07 / 0.01 == 7.000000000000001 (rs is right)",
    ),
    # anchored patterns: every identifier in the shipped contracts
    kw({"type": "string", "pattern": "^P[0-9]{10}$"}, "P0000012345", True),
    kw(
        {"type": "string", "pattern": "^P[0-9]{10}$"},
        "P0000012345\n",
        True,
        False,
        "Python's re '$' matches before a final \\n, ECMA-262's does not (rs is right)",
    ),
    kw({"type": "string", "pattern": "^[0-9]{2}$"}, "\u0667\u0667", False),
    kw(
        {"type": "string", "pattern": "^\\d{2}$"},
        "\u0667\u0667",
        True,
        False,
        "Python's re '\\d' matches any Unicode digit, ECMA-262's only 0-9 (rs is right)",
    ),
    # types and equality
    kw({"type": "integer"}, True, False),
    kw({"type": "integer"}, 60.0, True),
    kw({"type": "integer"}, 10**30, True),
    kw({"enum": [1]}, True, False),
    kw({"uniqueItems": True}, [1, 1.0], False),
    kw({"uniqueItems": True}, [1, True], True),
    kw({"maxLength": 2}, "\U0001f600\U0001f600", True),  # code points, not UTF-16 units
]

CASES = [pytest.param(case, id=case.label) for case in FORMAT_CASES + KEYWORD_CASES]


@pytest.mark.parametrize("case", CASES)
def test_each_validator_gives_the_documented_answer(case: Case) -> None:
    reference = Draft202012Validator(
        case.schema, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    assert (reference.is_valid(case.value), rs_validator(case.schema).is_valid(case.value)) == (
        case.reference,
        case.rs,
    )


@pytest.mark.parametrize("case", CASES)
def test_the_gateway_validator_gives_its_documented_answer(case: Case) -> None:
    assert gateway_valid(case.schema, case.value) is case.gateway


def test_a_disagreement_is_documented_exactly_when_there_is_one() -> None:
    for case in FORMAT_CASES + KEYWORD_CASES:
        assert bool(case.why) is (case.reference is not case.rs), case.label


def test_known_disagreements_are_the_ones_listed_in_the_report() -> None:
    differing = {
        (case.schema.get("format") or "keyword", case.reference, case.rs)
        for case in FORMAT_CASES + KEYWORD_CASES
        if case.reference is not case.rs
    }
    assert differing == {
        ("date", False, True),  # year 0000
        ("date-time", False, True),  # leap second, year 0000
        ("date-time", True, False),  # trailing newline
        ("time", False, True),  # leap second
        ("email", True, False),  # reference only looks for '@'
        ("uri", True, False),  # trailing newline
        ("hostname", True, False),  # trailing dot
        ("keyword", False, True),  # multipleOf on floats
        ("keyword", True, False),  # pattern '$' and '\d'
    }


def reference_formats() -> dict[str, Callable[[str], bool]]:
    """jsonschema's own format functions, handed to jsonschema_rs through ``formats=``."""
    checker = Draft202012Validator.FORMAT_CHECKER

    def make(name: str) -> Callable[[str], bool]:
        return lambda value: checker.conforms(value, name)

    return {name: make(name) for name in checker.checkers}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.label) for c in FORMAT_CASES])
def test_reference_format_functions_make_rs_agree_on_formats(case: Case) -> None:
    validator = rs_validator(case.schema, formats=reference_formats())
    assert validator.is_valid(case.value) is case.reference


# -- references: jsonschema_rs fetches unless told not to ---------------------


def test_rs_reads_a_file_ref_by_default(tmp_path: Path) -> None:
    target = tmp_path / "integer.json"
    target.write_text('{"type": "integer"}', encoding="utf-8")
    validator = jsonschema_rs.validator_for({"$ref": target.as_uri()}, validate_formats=True)
    assert validator.is_valid(1)
    assert not validator.is_valid("one")  # the file's rule applies: it was read


def test_offline_refuses_a_file_ref(tmp_path: Path) -> None:
    target = tmp_path / "integer.json"
    target.write_text('{"type": "integer"}', encoding="utf-8")
    with pytest.raises(jsonschema_rs.ValidationError, match="Retrieval is disabled"):
        rs_validator({"$ref": target.as_uri()})


def test_offline_refuses_an_http_ref() -> None:
    with pytest.raises(jsonschema_rs.ValidationError, match="Retrieval is disabled"):
        rs_validator({"$ref": "https://example.invalid/schema.json"})


def test_offline_cannot_be_combined_with_a_retriever() -> None:
    with pytest.raises(ValueError, match="cannot be used together"):
        rs_validator({"type": "string"}, retriever=lambda uri: {})


def test_rs_retrieves_a_nested_schema_keyword_the_gateway_precheck_lets_through() -> None:
    meta = "https://example.invalid/meta.json"
    schema = {
        "$schema": DIALECT,
        "properties": {"a": {"$id": "https://example.invalid/a", "$schema": meta}},
    }
    PayloadValidator(schema)  # the gateway looks only at $ref / $dynamicRef: accepted
    asked: list[str] = []

    def retrieve(uri: str) -> Any:
        asked.append(uri)
        raise LookupError(uri)

    jsonschema_rs.validator_for(schema, validate_formats=True, retriever=retrieve)
    assert asked == [meta]  # tried to fetch it (and swallowed the failure)
    assert rs_validator(schema).is_valid({"a": 1})  # offline: nothing to fetch with


# -- generated payloads from and around the shipped schemas (hypothesis) ------

CONTRACT_FILES = sorted(CONTRACTS_DIR.glob("*/*.yaml"))
FORMAT_SAMPLES = {
    (name, valid): [
        case.value
        for case in FORMAT_CASES
        if case.schema["format"] == name and case.gateway is valid
    ]
    for name in {case.schema["format"] for case in FORMAT_CASES}
    for valid in (True, False)
}
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def near(schema: Any) -> st.SearchStrategy[Any]:
    """Payloads a schema allows (mostly: a pattern may end in a newline, a condition may
    fail) and the same with one change somewhere: a value replaced, a member dropped or
    added."""
    valid = conforming(schema)
    return valid | valid.flatmap(changed_once)


@st.composite
def changed_once(draw: st.DrawFn, value: Any) -> Any:
    paths = list(locations(value, ()))
    path = draw(st.sampled_from(paths))
    action = draw(st.sampled_from(["replace", "drop", "add"]))
    if not path:
        return draw(ANY_JSON)
    changed = copy.deepcopy(value)
    parent = functools.reduce(lambda node, key: node[key], path[:-1], changed)
    if action == "drop":
        del parent[path[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(ANY_JSON)
    else:
        parent[path[-1]] = draw(ANY_JSON | st.sampled_from([None, "", 0, -1, 1.5, "x" * 300]))
    return changed


def locations(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from locations(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from locations(inner, (*path, index))


def conforming(schema: Any) -> st.SearchStrategy[Any]:  # noqa: PLR0911
    """Values built from the keywords the shipped contracts use."""
    if not isinstance(schema, dict):
        return ANY_JSON
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        return objects(schema)
    if kind == "string":
        return strings(schema)
    if kind in ("integer", "number"):
        return numbers(schema, integral=kind == "integer")
    if kind == "array" and schema.get("minItems", 0) <= schema.get("maxItems", 3):
        return st.lists(
            conforming(schema.get("items", {})),
            min_size=schema.get("minItems", 0),
            max_size=schema.get("maxItems", 3),
            unique_by=(lambda item: json.dumps(item, sort_keys=True))
            if schema.get("uniqueItems")
            else None,
        )
    if kind == "boolean":
        return st.booleans()
    return ANY_JSON


def objects(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    members = schema.get("properties", {})
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {name: conforming(sub) for name, sub in members.items() if name in required},
        optional={name: conforming(sub) for name, sub in members.items() if name not in required},
    )


def strings(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "format" in schema:
        # Both answers: the format cases hold valid and invalid values.
        name = schema["format"]
        return st.integers(0, 7).flatmap(
            lambda n: st.sampled_from(FORMAT_SAMPLES[name, n < 7])  # one in eight invalid
        )
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True)
    low, high = schema.get("minLength", 0), schema.get("maxLength", 40)
    return st.text(min_size=low, max_size=high) if low <= high else ANY_JSON  # none valid


def numbers(schema: dict[str, Any], *, integral: bool) -> st.SearchStrategy[Any]:
    low = schema.get("minimum", schema.get("exclusiveMinimum", -1000))
    high = schema.get("maximum", 1000)
    if low > high:  # no number is valid
        return ANY_JSON
    whole = st.integers(min_value=math.ceil(low), max_value=max(math.floor(high), math.ceil(low)))
    if integral:
        return whole | whole.map(float)
    cents = st.integers(min_value=int(low * 100), max_value=int(high * 100)).map(lambda c: c / 100)
    return whole | cents | st.floats(min_value=low, max_value=high)


@functools.cache
def shipped_contract(path: Path) -> ContractVersion:
    return load_contract_file(path)


@functools.cache
def payloads_near(path: Path) -> st.SearchStrategy[Any]:
    return near(shipped_contract(path).schema)


@pytest.mark.parametrize("path", CONTRACT_FILES, ids=lambda p: f"{p.parent.name}@{p.stem}")
@settings(max_examples=150)
@given(data=st.data())
def test_fast_and_reference_validators_agree_on_generated_payloads(
    path: Path, data: st.DataObject
) -> None:
    contract = shipped_contract(path)
    validator = contract.validator
    fast = validator._fast
    assert fast is not None
    payload = data.draw(payloads_near(path), label="payload")
    reference = not any(True for _ in validator._validator.iter_errors(payload))
    assert fast.is_valid(payload) is reference


@pytest.mark.parametrize("path", CONTRACT_FILES, ids=lambda p: f"{p.parent.name}@{p.stem}")
@settings(max_examples=150)
@given(data=st.data())
def test_validate_raises_only_a_violation_naming_places_in_the_payload(
    path: Path, data: st.DataObject
) -> None:
    contract = shipped_contract(path)
    payload = data.draw(payloads_near(path) | ANY_JSON, label="payload")
    if contract.validator._validator.is_valid(payload):
        contract.validate(payload)
        return
    with pytest.raises(ContractViolation) as info:
        contract.validate(payload)
    assert info.value.violations
    for violation in info.value.violations:
        # A missing member is named by its pointer; its parent is in the payload.
        parent = violation.pointer.rsplit("/", 1)[0]
        assert resolves(payload, parent), violation
        assert violation.message
        assert violation.keyword


def resolves(document: Any, pointer: str) -> bool:
    node = document
    for escaped in pointer.split("/")[1:]:
        token = escaped.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False
    return True
