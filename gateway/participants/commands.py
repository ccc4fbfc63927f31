"""``gateway participants submit FILE``: is a participant file ready for its sponsor?

Prints every problem with its JSON pointer (exit 1), or a summary of what the
sponsor will be asked to approve (exit 0). With a contracts directory it also
checks that each requested contract lists the participant in that role.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from gateway.contracts import load_catalog
from gateway.contracts.catalog import ContractCatalog
from gateway.participants.document import ParticipantFile, check, read_participant_file

Say = Callable[[str], None]


def submit_command(path: Path, *, contracts: Path | None, as_json: bool, say: Say) -> int:
    catalog, checked_against = _catalog(contracts)
    participant, problems = check(read_participant_file(path), catalog)
    if as_json:
        say(
            json.dumps(
                {
                    "file": str(path),
                    "ready": participant is not None,
                    "contracts_checked": checked_against,
                    "problems": [{"pointer": p.pointer, "message": p.message} for p in problems],
                },
                indent=2,
            )
        )
        return 0 if participant is not None else 1
    if participant is None:
        noun = "problem" if len(problems) == 1 else "problems"
        say(f"{path}: {len(problems)} {noun} to fix before it can be approved")
        width = min(max(len(p.pointer or "/") for p in problems), 32)
        for problem in problems:
            say(f"  {problem.pointer or '/':<{width}}  {problem.message}")
        return 1
    _summary(path, participant, checked_against, say)
    return 0


def _catalog(contracts: Path | None) -> tuple[ContractCatalog | None, str | None]:
    directory = contracts or Path("contracts")
    if contracts is None and not directory.is_dir():
        return None, None
    return load_catalog(directory), str(directory)


def _summary(
    path: Path, participant: ParticipantFile, checked_against: str | None, say: Say
) -> None:
    approver = participant.sponsor or "the authority"
    say(f"{path}: ready for approval by {approver}")
    say(f"  {participant.kind.value} {participant.id}: {participant.legal_name}")
    for key in participant.keys.signing[:1]:
        say(f"  signing key     {key.kid} ({key.alg})")
    for enc in participant.keys.encryption[:1]:
        say(f"  encryption key  {enc.kid}")
    for request in participant.contracts:
        say(f"  {request.role.value:<9} {request.contract} {request.versions}")
    delivery = participant.delivery
    say(
        f"  delivery        {delivery['mode']}"
        + (f" {delivery['url']}" if "url" in delivery else "")
    )
    contact = participant.security_contact
    say(f"  security contact {contact['name']} <{contact['email']}>")
    if checked_against is None:
        say("  contracts not checked: pass --contracts DIR to check the entitlements")
