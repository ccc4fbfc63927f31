"""Contract documents: the file format's own schema, and parsing a document.

A document is checked against ``contract-file.schema.json`` first (every
problem located by a JSON pointer into the document), then its schema,
examples and migration are checked.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

from gateway.contracts.compat import Mode, Policy
from gateway.contracts.keywords import ContractValidator
from gateway.contracts.migration import Migration
from gateway.contracts.model import Classification, ContractVersion, Version
from gateway.contracts.projection import check_fields
from gateway.contracts.validation import PayloadValidator
from gateway.errors import (
    ContractProblem,
    InvalidContract,
)
from gateway.schema_problems import schema_problems

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_FILE_SCHEMA = json.loads(
    resources.files("gateway.contracts").joinpath("contract-file.schema.json").read_text()
)
# Structure messages may quote the offending value: it is the contract author's own text.
_FILE_VALIDATOR = ContractValidator(_FILE_SCHEMA)


def file_schema() -> dict[str, Any]:
    """The JSON Schema every contract file must satisfy (contracts/README.md)."""
    return copy.deepcopy(_FILE_SCHEMA)  # a copy: the validator shares the original


def structure_problems(data: Any) -> list[ContractProblem]:
    """Every way ``data`` breaks the contract-file schema, by JSON pointer."""
    return schema_problems(_FILE_VALIDATOR, data, "contract file")


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
    _check_fields(data["schema"], data["consumers"])
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
        response=data.get("response"),
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


def _check_fields(schema: Any, entries: list[Any]) -> None:
    """Each consumer's field list must name members a consumer view can be cut to."""
    problems = [
        ContractProblem(f"/consumers/{index}/fields", problem)
        for index, entry in enumerate(entries)
        if isinstance(entry, dict) and "fields" in entry
        for problem in check_fields(schema, entry["fields"])
    ]
    if problems:
        raise InvalidContract(f"{problems[0].pointer}: {problems[0].message}", problems)


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
