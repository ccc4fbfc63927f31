"""Participant files: the schema, the checks beyond it, and ``gateway participants submit``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import main
from gateway.contracts import load_catalog
from gateway.contracts.model import Version
from gateway.crypto.keys import PrivateKeys
from gateway.participants.document import (
    InvalidParticipantFile,
    Kind,
    Role,
    check,
    read_participant_file,
)
from gateway.participants.ranges import VersionRange

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(ROOT / "contracts")
EXAMPLE = ROOT / "participants" / "example.yaml"


def document(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "participant": "acme-analytics",
        "kind": "contractor",
        "legal_name": "Acme Analytics Ltd",
        "sponsor": "minhealth",
        "keys": PrivateKeys.generate().public().to_jwks("acme-analytics"),
        "contracts": [
            {"contract": "health.patient-referral", "role": "subscribe", "versions": "^1.0.0"}
        ],
        "delivery": {"mode": "pull"},
        "security_contact": {"name": "Desk", "email": "security@acme.example"},
    }
    for name, value in changes.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def problems(data: Any, catalog: Any = CATALOG) -> list[tuple[str, str]]:
    parsed, found = check(data, catalog)
    assert (parsed is None) == bool(found)
    return [(p.pointer, p.message) for p in found]


# -- the happy path ------------------------------------------------------------------------


def test_a_complete_file_parses() -> None:
    parsed, found = check(document(), CATALOG)

    assert found == []
    assert parsed is not None
    assert (parsed.id, parsed.kind, parsed.sponsor) == (
        "acme-analytics",
        Kind.CONTRACTOR,
        "minhealth",
    )
    [request] = parsed.contracts
    assert (request.contract, request.role, str(request.versions)) == (
        "health.patient-referral",
        Role.SUBSCRIBE,
        "^1.0.0",
    )
    assert parsed.keys.signing[0].alg == "EdDSA"


def test_the_committed_example_is_ready_for_approval() -> None:
    parsed, found = check(read_participant_file(EXAMPLE), CATALOG)
    assert found == []
    assert parsed is not None


def test_an_agency_needs_no_sponsor() -> None:
    data = document(participant="minhealth", kind="agency", sponsor=None)
    data["keys"]["participant"] = "minhealth"
    data["contracts"] = [{"contract": "health.patient-referral", "role": "publish"}]
    assert problems(data) == []


# -- what the schema refuses ---------------------------------------------------------------


def test_every_missing_member_is_named_at_once() -> None:
    found = problems({"participant": "acme-analytics", "kind": "contractor"})
    assert [pointer for pointer, _ in found] == [
        "/contracts",
        "/delivery",
        "/keys",
        "/legal_name",
        "/security_contact",
        "/sponsor",
    ]
    assert all("is missing" in message for _, message in found)


@pytest.mark.parametrize(
    ("changes", "pointer"),
    [
        ({"participant": "Acme"}, "/participant"),
        ({"kind": "company"}, "/kind"),
        ({"legal_name": ""}, "/legal_name"),
        ({"delivery": {"mode": "webhook"}}, "/delivery/url"),
        ({"delivery": {"mode": "webhook", "url": "http://acme.example/in"}}, "/delivery/url"),
        ({"delivery": {"mode": "carrier-pigeon"}}, "/delivery/mode"),
        (
            {"security_contact": {"name": "Desk", "email": "not-an-address"}},
            "/security_contact/email",
        ),
        ({"contracts": []}, "/contracts"),
        (
            {"contracts": [{"contract": "health.patient-referral", "role": "read"}]},
            "/contracts/0/role",
        ),
        ({"extra": 1}, "/extra"),
    ],
)
def test_the_schema_names_the_member_at_fault(changes: dict[str, Any], pointer: str) -> None:
    assert pointer in [p for p, _ in problems(document(**changes))]


def test_a_file_that_is_not_a_mapping_is_refused() -> None:
    assert problems(["participant"]) == [("", "['participant'] is not of type 'object'")]


# -- the checks beyond the schema ---------------------------------------------------------


def test_an_agency_with_a_sponsor_is_refused() -> None:
    data = document(kind="agency")
    assert ("/sponsor", "an agency has no sponsor: the authority approves it") in problems(data)


def test_a_participant_cannot_sponsor_itself() -> None:
    data = document(sponsor="acme-analytics")
    assert ("/sponsor", "a participant cannot sponsor itself") in problems(data)


def test_malformed_keys_are_refused() -> None:
    data = document()
    data["keys"]["keys"] = [k for k in data["keys"]["keys"] if k["use"] == "sig"] * 2
    found = problems(data)
    assert found == [("/keys", "a key set needs a signing ('sig') and an encryption ('enc') key")]


def test_a_key_whose_kid_is_not_its_thumbprint_is_refused() -> None:
    data = document()
    data["keys"]["keys"][0]["kid"] = "made-up"
    [(pointer, message)] = problems(data)
    assert pointer == "/keys"
    assert "is not the key's thumbprint" in message


def test_someone_elses_keys_are_refused() -> None:
    data = document()
    data["keys"]["participant"] = "minhealth"
    assert ("/keys/participant", "the keys are minhealth's, not acme-analytics's") in problems(data)


def test_the_same_key_twice_is_refused() -> None:
    data = document()
    data["keys"]["keys"].append(copy.deepcopy(data["keys"]["keys"][0]))
    assert ("/keys", "the same key is listed twice") in problems(data)


def test_a_bad_version_range_names_its_part() -> None:
    data = document(
        contracts=[
            {"contract": "health.patient-referral", "role": "subscribe", "versions": ">=1.x"}
        ]
    )
    [(pointer, message)] = problems(data)
    assert pointer == "/contracts/0/versions"
    assert message.startswith("'>=1.x' is not a version comparator")


def test_asking_for_the_same_thing_twice_is_refused() -> None:
    entry = {"contract": "health.patient-referral", "role": "subscribe"}
    found = problems(document(contracts=[entry, entry]))
    assert ("/contracts/1", "health.patient-referral is asked to subscribe twice") in found


def test_an_unknown_contract_is_named() -> None:
    data = document(contracts=[{"contract": "health.no-such-thing", "role": "subscribe"}])
    assert problems(data) == [("/contracts/0", "there is no contract health.no-such-thing")]


def test_a_range_no_version_falls_in_is_named() -> None:
    data = document(
        contracts=[
            {"contract": "health.patient-referral", "role": "subscribe", "versions": ">=9.0.0"}
        ]
    )
    assert problems(data) == [
        ("/contracts/0", "no version of health.patient-referral is in the range '>=9.0.0'")
    ]


def test_a_contract_that_does_not_list_the_participant_says_whom_to_ask() -> None:
    data = document(contracts=[{"contract": "health.patient-referral", "role": "publish"}])
    [(pointer, message)] = problems(data)
    assert pointer == "/contracts/0"
    assert message.endswith(
        "does not list acme-analytics as a producer: ask its owner (minhealth) to add it"
    )


def test_without_a_catalog_the_entitlements_are_not_checked() -> None:
    data = document(contracts=[{"contract": "health.no-such-thing", "role": "publish"}])
    assert problems(data, catalog=None) == []


def test_schema_and_semantic_problems_are_reported_together() -> None:
    data = document(extra=1, contracts=[{"contract": "health.patient-referral", "role": "publish"}])
    assert [p for p, _ in problems(data)] == ["/contracts/0", "/extra"]


# -- version ranges ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "admitted", "refused"),
    [
        ("*", ["0.0.1", "9.9.9"], []),
        ("1.2.0", ["1.2.0"], ["1.2.1", "1.1.9"]),
        (">=1.1.0 <2.0.0", ["1.1.0", "1.9.9"], ["1.0.9", "2.0.0"]),
        ("^1.2.0", ["1.2.0", "1.9.0"], ["1.1.9", "2.0.0"]),
        ("^0.3.1", ["0.3.1", "0.3.9"], ["0.4.0", "0.3.0"]),
        ("~1.2.0", ["1.2.0", "1.2.7"], ["1.3.0", "1.1.9"]),
        (">1.0.0 <=1.2.0", ["1.0.1", "1.2.0"], ["1.0.0", "1.2.1"]),
    ],
)
def test_ranges_admit_what_they_say(text: str, admitted: list[str], refused: list[str]) -> None:
    versions = VersionRange.parse(text)
    assert all(versions.admits(Version.parse(v)) for v in admitted)
    assert not any(versions.admits(Version.parse(v)) for v in refused)


@pytest.mark.parametrize("text", ["1.2", "v1.2.0", ">= 1.2.0", "1.2.0 || 2.0.0", "01.2.0", "^"])
def test_ranges_refuse_what_they_do_not_define(text: str) -> None:
    with pytest.raises(ValueError, match="is not a version comparator"):
        VersionRange.parse(text)


# -- reading files and the CLI ----------------------------------------------------------


def write(tmp_path: Path, data: Any, name: str = "acme.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_file_that_is_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("participant: [unclosed\n")
    with pytest.raises(InvalidParticipantFile, match="is not valid YAML"):
        read_participant_file(path)


def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"#" * (257 * 1024))
    with pytest.raises(InvalidParticipantFile, match="larger than 256 KiB"):
        read_participant_file(path)


def test_submit_prints_what_the_sponsor_will_approve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, document())

    assert main(["participants", "submit", str(path), "--contracts", str(ROOT / "contracts")]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}: ready for approval by minhealth"
    assert out[1] == "  contractor acme-analytics: Acme Analytics Ltd"
    assert "  subscribe health.patient-referral ^1.0.0" in out
    assert not any("not checked" in line for line in out)


def test_submit_lists_every_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, document(kind="agency", extra=1))

    assert main(["participants", "submit", str(path), "--contracts", str(ROOT / "contracts")]) == 1

    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}: 2 problems to fix before it can be approved"
    assert out[1].split()[0] == "/extra"
    assert out[2].split()[0] == "/sponsor"


def test_submit_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, document(sponsor="acme-analytics"))

    assert (
        main(
            ["participants", "submit", str(path), "--json", "--contracts", str(ROOT / "contracts")]
        )
        == 1
    )

    report = json.loads(capsys.readouterr().out)
    assert report["ready"] is False
    assert report["problems"] == [
        {"pointer": "/sponsor", "message": "a participant cannot sponsor itself"}
    ]


def test_submit_without_contracts_says_it_did_not_check_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./contracts here
    path = write(tmp_path, document(contracts=[{"contract": "x.y", "role": "publish"}]))

    assert main(["participants", "submit", str(path)]) == 0

    assert "contracts not checked: pass --contracts DIR" in capsys.readouterr().out


def test_submit_of_a_missing_file_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["participants", "submit", str(tmp_path / "nope.yaml")]) == 1

    err = capsys.readouterr().err
    assert err.startswith("gateway: error: cannot read ")
    assert "Traceback" not in err
