"""Participant files: the format's own schema, and every check a file must pass.

A participant file says who a participant is, gives its public keys, asks for
contracts (publish or subscribe, with a version range) and says how it takes
delivery (participants/README.md). :func:`check` returns the parsed file and
every problem, each located by a JSON pointer, so a contractor sees all that
is missing at once:

    participant, problems = check(read_participant_file(path), catalog)
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.contracts.catalog import ContractCatalog
from gateway.contracts.files import read_error, read_yaml
from gateway.contracts.keywords import ContractValidator
from gateway.contracts.model import ContractVersion
from gateway.crypto.keys import PublicKeys
from gateway.errors import ContractProblem, GatewayError, KeyStoreError
from gateway.participants.ranges import VersionRange
from gateway.schema_problems import schema_problems

MAX_FILE_BYTES = 256 * 1024

_SCHEMA = json.loads(
    resources.files("gateway.participants").joinpath("participant-file.schema.json").read_text()
)
_VALIDATOR = ContractValidator(_SCHEMA)


class InvalidParticipantFile(GatewayError):
    code = "invalid-participant-file"
    title = "Invalid participant file"


class Kind(StrEnum):
    AGENCY = "agency"
    CONTRACTOR = "contractor"


class Role(StrEnum):
    PUBLISH = "publish"
    SUBSCRIBE = "subscribe"


@dataclass(frozen=True, slots=True)
class ContractRequest:
    contract: str
    role: Role
    versions: VersionRange


@dataclass(frozen=True, slots=True)
class ParticipantFile:
    id: str
    kind: Kind
    legal_name: str
    sponsor: str | None
    keys: PublicKeys
    contracts: tuple[ContractRequest, ...]
    delivery: dict[str, str]
    security_contact: dict[str, str]
    document: dict[str, Any]
    """The file as decoded: what a sponsor signs (in canonical JSON)."""


def file_schema() -> dict[str, Any]:
    """The JSON Schema every participant file must satisfy."""
    return copy.deepcopy(_SCHEMA)


def read_participant_file(path: Path) -> Any:
    """The decoded YAML (or JSON) of a participant file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidParticipantFile(f"cannot read {path}: {exc.strerror}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise InvalidParticipantFile(f"{path} is larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        return read_yaml(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidParticipantFile(f"{path} is not UTF-8 text") from exc
    except Exception as exc:  # yaml errors carry several lines; keep one
        raise InvalidParticipantFile(f"{path} is not valid YAML: {read_error(exc)}") from exc


def check(
    document: Any, catalog: ContractCatalog | None
) -> tuple[ParticipantFile | None, list[ContractProblem]]:
    """The participant file and every problem with it; ``catalog`` (when given) is used
    to check that each requested contract admits the participant in that role."""
    problems = schema_problems(_VALIDATOR, document, "participant file")
    if not isinstance(document, dict):
        return None, problems
    structural = bool(problems)

    def sound(*members: str) -> bool:
        """These members are present and their part of the file has no schema problem."""
        return all(
            m in document
            and not any(p.pointer == f"/{m}" or p.pointer.startswith(f"/{m}/") for p in problems)
            for m in members
        )

    # The checks below run on every part the schema let through, so that one pass
    # names everything to fix, not the first layer only.
    keys: PublicKeys | None = None
    requests: tuple[ContractRequest, ...] = ()
    if sound("participant", "kind"):
        _sponsor(document, problems)
    if sound("participant", "keys"):
        keys = _keys(document["keys"], document["participant"], problems)
    if sound("participant", "contracts"):
        requests = _requests(document["contracts"], document["participant"], catalog, problems)
    if structural or problems or keys is None:
        return None, sorted(problems, key=lambda p: (p.pointer.split("/"), p.message))
    participant = document["participant"]
    kind = Kind(document["kind"])
    sponsor = document.get("sponsor")
    return (
        ParticipantFile(
            id=participant,
            kind=kind,
            legal_name=document["legal_name"],
            sponsor=sponsor,
            keys=keys,
            contracts=requests,
            delivery=dict(document["delivery"]),
            security_contact=dict(document["security_contact"]),
            document=document,
        ),
        [],
    )


def _sponsor(document: dict[str, Any], problems: list[ContractProblem]) -> None:
    sponsor = document.get("sponsor")
    if document["kind"] == Kind.AGENCY and sponsor is not None:
        problems.append(
            ContractProblem("/sponsor", "an agency has no sponsor: the authority approves it")
        )
    if sponsor == document["participant"]:
        problems.append(ContractProblem("/sponsor", "a participant cannot sponsor itself"))


def _keys(jwks: Any, participant: str, problems: list[ContractProblem]) -> PublicKeys | None:
    named = jwks.get("participant")
    if named is not None and named != participant:
        problems.append(
            ContractProblem("/keys/participant", f"the keys are {named}'s, not {participant}'s")
        )
    try:
        keys = PublicKeys.from_jwks(jwks)
    except KeyStoreError as exc:
        problems.append(ContractProblem("/keys", exc.detail))
        return None
    kids = [k.kid for k in keys.signing] + [k.kid for k in keys.encryption]
    if len(set(kids)) != len(kids):
        problems.append(ContractProblem("/keys", "the same key is listed twice"))
    return keys


def _requests(
    entries: list[dict[str, Any]],
    participant: str,
    catalog: ContractCatalog | None,
    problems: list[ContractProblem],
) -> tuple[ContractRequest, ...]:
    requests: list[ContractRequest] = []
    seen: set[tuple[str, str]] = set()
    for n, entry in enumerate(entries):
        where = f"/contracts/{n}"
        try:
            versions = VersionRange.parse(entry.get("versions", "*"))
        except ValueError as exc:
            problems.append(ContractProblem(f"{where}/versions", str(exc)))
            continue
        request = ContractRequest(entry["contract"], Role(entry["role"]), versions)
        if (request.contract, request.role) in seen:
            problems.append(
                ContractProblem(where, f"{request.contract} is asked to {request.role} twice")
            )
        seen.add((request.contract, request.role))
        if catalog is not None:
            problem = entitled(request, participant, catalog)
            if problem is not None:
                problems.append(ContractProblem(where, problem))
        requests.append(request)
    return tuple(requests)


def entitled(request: ContractRequest, participant: str, catalog: ContractCatalog) -> str | None:
    """Why the catalog does not admit this request, or None when it does."""
    if request.contract not in catalog.ids():
        return f"there is no contract {request.contract}"
    versions = [v for v in catalog.versions(request.contract) if request.versions.admits(v.version)]
    if not versions:
        return f"no version of {request.contract} is in the range '{request.versions}'"
    listed = [v for v in versions if participant in _members(v, request.role)]
    if listed:
        return None
    noun = "producer" if request.role is Role.PUBLISH else "consumer"
    owner = versions[-1].owner
    return (
        f"{request.contract} ({', '.join(str(v.version) for v in versions)}) does not list "
        f"{participant} as a {noun}: ask its owner ({owner}) to add it"
    )


def _members(version: ContractVersion, role: Role) -> frozenset[str]:
    return version.producers if role is Role.PUBLISH else version.consumers
