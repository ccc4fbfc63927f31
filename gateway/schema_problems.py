"""A file format's own JSON Schema errors, as (JSON pointer, message) problems.

Shared by the file formats that document themselves with a schema (contract
files, participant files): a missing or unexpected member is reported at its
own pointer, and a value that matches no branch of a ``oneOf`` at the pointer
of its most relevant error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jsonschema import ValidationError
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator

from gateway.contracts.model import shown
from gateway.contracts.validation import pointer
from gateway.errors import ContractProblem


def schema_problems(validator: Validator, data: Any, noun: str) -> list[ContractProblem]:
    """Every way ``data`` breaks the schema, by pointer; ``noun`` names the format
    in messages ("'x' is not a member of a <noun>")."""
    problems = {
        (p.pointer, p.message): p
        for error in validator.iter_errors(data)
        for p in _problems(error, noun)
    }
    return sorted(problems.values(), key=lambda p: (p.pointer.split("/"), p.message))


def _problems(error: ValidationError, noun: str) -> Iterator[ContractProblem]:
    if error.validator in ("oneOf", "anyOf"):
        branch = _fitting_branch(error)
        if branch:
            for e in branch:
                yield from _problems(e, noun)
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
                    pointer([*path, name]), f"'{shown(name)}' is not a member of a {noun}"
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
