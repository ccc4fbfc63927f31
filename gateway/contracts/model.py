"""Contract versions: one immutable JSON Schema plus who may send and receive it.

>>> v = Version.parse("1.2.0")
>>> v > Version.parse("1.10.0"), str(v)
(False, '1.2.0')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from gateway.contracts.compat import Mode, Policy
from gateway.contracts.migration import Migration
from gateway.contracts.validation import PayloadValidator
from gateway.errors import ContractViolation, InvalidContract

CONTRACT_ID = re.compile(r"^[a-z0-9]+(?:[.-][a-z0-9]+)*$")
_SEMVER = re.compile(r"^(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})$")
MAX_CONTRACT_ID = 128


def shown(text: str) -> str:
    """As much of a caller-supplied name as an error message should repeat."""
    return text if len(text) <= 80 else text[:77] + "..."


class Version(NamedTuple):
    """A release version ``MAJOR.MINOR.PATCH``; ordered numerically."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _SEMVER.fullmatch(text)
        if match is None:
            raise InvalidContract(f"'{text[:40]}' is not a release version like 1.2.0")
        return cls(*(int(part) for part in match.groups()))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


class Classification(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    PERSONAL = "personal"


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractVersion:
    id: str
    version: Version
    title: str
    description: str = ""
    owner: str
    producers: frozenset[str]
    consumers: frozenset[str]
    consumer_fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per consumer, the JSON pointers it may receive (absent: the whole payload)."""
    classification: Classification
    retention: str | None = None
    """ISO 8601 duration recipients may keep the data for."""
    response: str | None = None
    """Request/response: the contract id a recipient answers messages of this one with."""
    compatibility: Mode = Mode.BACKWARD
    compatibility_policy: Policy = Policy.STRICT
    schema: Mapping[str, Any] | bool
    valid_examples: tuple[Any, ...] = ()
    invalid_examples: tuple[Any, ...] = ()
    migration: Migration | None = None
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The contract file as written, kept to persist and compare registrations."""
    validator: PayloadValidator = field(compare=False, repr=False)

    @property
    def ref(self) -> str:
        """``id@version``, the name used in headers, audit records and URLs."""
        return f"{self.id}@{self.version}"

    @property
    def dataschema(self) -> str:
        """The CloudEvents ``dataschema`` URI naming this exact version."""
        return f"urn:gateway:contract:{self.ref}"

    def validate(self, payload: Any) -> None:
        """Raise :class:`ContractViolation` listing every violation, or return."""
        violations = self.validator.violations(payload)
        if violations:
            raise ContractViolation(
                f"payload violates {self.ref} in {len(violations)} place(s)", violations
            )
