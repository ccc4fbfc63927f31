"""``gateway contracts lint | check | export``, through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import main
from gateway.contracts.commands import check_command
from gateway.contracts.compat import Policy
from tests.support import ROOT

CONTRACTS = ROOT / "contracts"
BROKEN = ROOT / "tests" / "fixtures" / "broken-contracts"
REFERRAL_1_0 = CONTRACTS / "health.patient-referral" / "1.0.0.yaml"
REFERRAL_1_1 = CONTRACTS / "health.patient-referral" / "1.1.0.yaml"
NO_CLASSIFICATION = BROKEN / "broken.no-classification" / "1.0.0.yaml"

BROKEN_FINDINGS = {
    ("broken.bad-yaml/1.0.0.yaml", ""),
    ("broken.no-classification/1.0.0.yaml", "/classification"),
    ("broken.bad-schema/1.0.0.yaml", "/schema/properties/text/minLength"),
    ("broken.failing-example/1.0.0.yaml", "/examples/valid/0/text"),
    ("broken.wrong-path/1.0.0.yaml", "/id"),
    ("broken.incompatible/1.1.0.yaml", "/schema/required"),
    ("broken.wrong-migration/1.1.0.yaml", "/migration/from"),
}
"""(file under BROKEN, document pointer) of every problem in the broken fixtures."""

OPEN: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "string"}}}
OPEN_PLUS_B: dict[str, Any] = {
    "type": "object",
    "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
}


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, Any]:
    code, out, err = run(capsys, *argv, "--json")
    assert err == ""
    return code, json.loads(out)


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def contract_file(path: Path, schema: Any, **changes: Any) -> Path:
    document: dict[str, Any] = {
        "id": "demo.note",
        "version": "1.0.0",
        "title": "Demo note",
        "owner": "minhealth",
        "producers": ["minhealth"],
        "consumers": ["socialtreasury"],
        "classification": "internal",
        "schema": schema,
        **changes,
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


# -- lint --------------------------------------------------------------------


def test_lint_passes_the_shipped_contracts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "contracts", "lint", CONTRACTS)

    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "ok     health.patient-referral@1.0.0",
        "ok     health.patient-referral@1.1.0",
        "ok     social.support-measure@1.0.0",
        "ok     transport.staff-medical-check@1.0.0",
        f"4 contract version(s) fine, 0 problem(s) in {CONTRACTS}",
    ]


def test_lint_json_passes_the_shipped_contracts(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(capsys, "contracts", "lint", CONTRACTS)

    assert code == 0
    assert report == {
        "ok": True,
        "contracts": [
            "health.patient-referral@1.0.0",
            "health.patient-referral@1.1.0",
            "social.support-measure@1.0.0",
            "transport.staff-medical-check@1.0.0",
        ],
        "findings": [],
    }


def test_lint_names_each_broken_file_and_pointer(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "contracts", "lint", BROKEN)

    assert (code, err) == (1, "")
    lines = out.splitlines()
    errors = [line for line in lines if line.startswith("error  ")]
    assert len(errors) == len(BROKEN_FINDINGS)
    for file, where in BROKEN_FINDINGS:
        prefix = f"error  {BROKEN / file}: {where or '/'}: "
        assert [line for line in errors if line.startswith(prefix)], prefix
    assert sorted(line for line in lines if line.startswith("ok ")) == [
        "ok     broken.incompatible@1.0.0",
        "ok     broken.wrong-migration@1.0.0",
    ]
    assert lines[-1] == f"2 contract version(s) fine, 7 problem(s) in {BROKEN}"


def test_lint_json_lists_every_finding(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(capsys, "contracts", "lint", BROKEN)

    assert code == 1
    assert report["ok"] is False
    assert report["contracts"] == ["broken.incompatible@1.0.0", "broken.wrong-migration@1.0.0"]
    assert {(f["file"], f["pointer"]) for f in report["findings"]} == {
        (str(BROKEN / file), where) for file, where in BROKEN_FINDINGS
    }
    assert all(set(f) == {"file", "pointer", "message"} for f in report["findings"])


@pytest.mark.parametrize(
    ("file", "message"),
    [
        ("broken.bad-yaml/1.0.0.yaml", "cannot read: expected ',' or ']'"),
        ("broken.no-classification/1.0.0.yaml", "required member 'classification' is missing"),
        ("broken.bad-schema/1.0.0.yaml", "-1 is less than the minimum of 0"),
        ("broken.failing-example/1.0.0.yaml", "expected type string"),
        (
            "broken.wrong-path/1.0.0.yaml",
            "declares broken.other-name@1.0.0 but the path says broken.wrong-path@1.0.0",
        ),
        (
            "broken.incompatible/1.1.0.yaml",
            "required-added breaks backward compatibility with 1.0.0: 'note' is now required",
        ),
        (
            "broken.wrong-migration/1.1.0.yaml",
            "migrates from 0.9.0, but the previous version is 1.0.0",
        ),
    ],
)
def test_lint_messages_say_what_is_wrong(
    capsys: pytest.CaptureFixture[str], file: str, message: str
) -> None:
    _, report = run_json(capsys, "contracts", "lint", BROKEN)

    [finding] = [f for f in report["findings"] if f["file"] == str(BROKEN / file)]
    assert message in finding["message"]
    assert "\n" not in finding["message"]


def test_lint_of_a_version_path_mismatch_points_at_the_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "demo.note").mkdir()
    contract_file(tmp_path / "demo.note" / "2.0.0.yaml", {"type": "object"})

    code, report = run_json(capsys, "contracts", "lint", tmp_path)

    assert code == 1
    assert [(f["pointer"], f["message"]) for f in report["findings"]] == [
        ("/version", "declares demo.note@1.0.0 but the path says demo.note@2.0.0")
    ]


def test_lint_of_an_empty_directory_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "contracts", "lint", tmp_path)

    assert code == 0
    assert out.splitlines() == [f"0 contract version(s) fine, 0 problem(s) in {tmp_path}"]


def test_lint_of_a_missing_directory_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "contracts", "lint", tmp_path / "absent")

    assert (code, out) == (1, "")
    assert err == f"gateway: error: contracts directory {tmp_path / 'absent'} does not exist\n"


# -- check: contract files ---------------------------------------------------


def test_check_compatible_contract_files(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "contracts", "check", REFERRAL_1_0, REFERRAL_1_1)

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == (
        "health.patient-referral@1.0.0 -> health.patient-referral@1.1.0  "
        "(mode backward, strict policy)"
    )
    assert "widens" in lines[1]
    assert "/properties/referralChannel" in lines[1]
    assert "property-added-closed-model" in lines[1]
    assert lines[-1] == "compatible under backward (backward: yes, forward: no)"


def test_check_json_fields(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(capsys, "contracts", "check", REFERRAL_1_0, REFERRAL_1_1)

    assert code == 0
    assert report == {
        "old": "health.patient-referral@1.0.0",
        "new": "health.patient-referral@1.1.0",
        "mode": "backward",
        "policy": "strict",
        "compatible": True,
        "backward": True,
        "forward": False,
        "changes": [
            {
                "code": "property-added-closed-model",
                "pointer": "/properties/referralChannel",
                "breaks_backward": False,
                "breaks_forward": True,
                "detail": "property added to a closed content model",
            }
        ],
    }


def test_check_incompatible_contract_files(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "contracts", "check", REFERRAL_1_1, REFERRAL_1_0)

    assert code == 1
    assert out.splitlines()[-1] == "INCOMPATIBLE under backward (backward: no, forward: yes)"
    code, report = run_json(capsys, "contracts", "check", REFERRAL_1_1, REFERRAL_1_0)
    assert code == 1
    assert (report["compatible"], report["backward"], report["forward"]) == (False, False, True)
    assert [(c["code"], c["pointer"]) for c in report["changes"]] == [
        ("property-removed-closed-model", "/properties/referralChannel")
    ]


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("backward", 0),
        ("backward_transitive", 0),
        ("forward", 1),
        ("forward_transitive", 1),
        ("full", 1),
        ("full_transitive", 1),
        ("none", 0),
    ],
)
def test_check_honours_mode(capsys: pytest.CaptureFixture[str], mode: str, code: int) -> None:
    found, report = run_json(
        capsys, "contracts", "check", REFERRAL_1_0, REFERRAL_1_1, "--mode", mode
    )

    assert (found, report["mode"], report["compatible"]) == (code, mode, code == 0)


def test_check_defaults_to_the_old_contracts_declared_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = contract_file(tmp_path / "old.yaml", OPEN, compatibility="forward")
    new = contract_file(tmp_path / "new.yaml", OPEN_PLUS_B, version="1.1.0")

    code, report = run_json(capsys, "contracts", "check", old, new)

    # Strict: adding 'b' to an open model narrows, which forward allows.
    assert (code, report["mode"], report["backward"]) == (0, "forward", False)
    code, report = run_json(capsys, "contracts", "check", old, new, "--mode", "backward")
    assert (code, report["mode"]) == (1, "backward")


# -- check: bare JSON Schema files -------------------------------------------


def test_check_bare_schema_files_by_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write_json(tmp_path / "old.json", OPEN)
    new = write_json(tmp_path / "new.json", OPEN_PLUS_B)

    strict, report = run_json(capsys, "contracts", "check", old, new)
    assert strict == 1
    assert (report["old"], report["new"]) == (str(old), str(new))
    assert (report["mode"], report["policy"], report["compatible"]) == ("backward", "strict", False)
    assert [(c["code"], c["pointer"]) for c in report["changes"]] == [
        ("property-added-open-model", "/properties/b")
    ]

    lenient, report = run_json(capsys, "contracts", "check", old, new, "--policy", "lenient")
    assert lenient == 0
    assert (report["policy"], report["compatible"], report["changes"]) == ("lenient", True, [])


def test_check_bare_schema_files_by_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write_json(tmp_path / "old.json", {"type": "string"})
    new = write_json(tmp_path / "new.json", {"type": ["string", "null"]})

    assert run(capsys, "contracts", "check", old, new)[0] == 0
    assert run(capsys, "contracts", "check", old, new, "--mode", "forward")[0] == 1
    assert run(capsys, "contracts", "check", new, old, "--mode", "forward")[0] == 0
    assert run(capsys, "contracts", "check", new, old)[0] == 1


def test_check_a_bare_schema_against_a_contract_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    referral = yaml.safe_load(REFERRAL_1_0.read_text("utf-8"))["schema"]
    bare = write_json(tmp_path / "referral.json", referral)

    code, report = run_json(capsys, "contracts", "check", bare, REFERRAL_1_0)

    assert (code, report["compatible"], report["changes"]) == (0, True, [])
    assert report["new"] == "health.patient-referral@1.0.0"


def test_check_without_a_mode_uses_the_declared_policy(tmp_path: Path) -> None:
    # The CLI always passes a policy (--policy defaults to strict); check_command
    # itself falls back to what the old contract declares, as registering does.
    old = contract_file(tmp_path / "old.yaml", OPEN, compatibility_policy="lenient")
    new = contract_file(tmp_path / "new.yaml", OPEN_PLUS_B, version="1.1.0")
    said: list[str] = []

    code = check_command(old, new, mode=None, policy=None, as_json=True, say=said.append)

    assert code == 0
    assert json.loads(said[0])["policy"] == "lenient"
    said.clear()
    code = check_command(old, new, mode=None, policy=Policy.STRICT, as_json=True, say=said.append)
    assert code == 1


# -- check: invalid input ----------------------------------------------------


def test_check_an_invalid_contract_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "contracts", "check", NO_CLASSIFICATION, REFERRAL_1_0)

    assert (code, out) == (2, "")
    assert err == (
        f"gateway: invalid input: {NO_CLASSIFICATION}: "
        "/classification: required member 'classification' is missing\n"
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", '{"type": ', "cannot read: Expecting value"),
        ("bad.yaml", "type: [object", "cannot read: expected ',' or ']'"),
        ("bytes.json", b"\xff\xfe{}", "cannot read:"),
        ("not-a-schema.json", '{"type": 12}', "not a JSON Schema 2020-12 nor a contract file"),
        ("list.json", "[1, 2]", "not a JSON Schema 2020-12 nor a contract file"),
        (
            "draft-07.json",
            '{"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"}',
            "$schema must be https://json-schema.org/draft/2020-12/schema",
        ),
        (
            "no-schema.yaml",
            "id: demo.note\nversion: 1.0.0\ntitle: T\nowner: minhealth\n"
            "producers: [minhealth]\nconsumers: [socialtreasury]\nclassification: internal\n",
            "/schema: required member 'schema' is missing",
        ),
        (
            "no-id.yaml",
            "version: 1.0.0\ntitle: T\nowner: minhealth\nproducers: [minhealth]\n"
            "consumers: [socialtreasury]\nclassification: internal\nschema: {type: object}\n",
            "/id: required member 'id' is missing",
        ),
    ],
)
def test_check_invalid_inputs_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: str | bytes,
    message: str,
) -> None:
    bad = tmp_path / name
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content, encoding="utf-8")
    good = write_json(tmp_path / "good.json", OPEN)

    for old, new in [(bad, good), (good, bad)]:
        code, out, err = run(capsys, "contracts", "check", old, new)

        assert (code, out) == (2, "")
        assert err.startswith(f"gateway: invalid input: {bad}: ")
        assert message in err
        assert err.count("\n") == 1  # one line


def test_check_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "contracts", "check", tmp_path / "absent.json", REFERRAL_1_0)

    assert code == 2
    assert err.startswith(f"gateway: invalid input: {tmp_path / 'absent.json'}: cannot read:")


def test_check_refuses_an_unknown_mode(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["contracts", "check", str(REFERRAL_1_0), str(REFERRAL_1_1), "--mode", "sideways"])

    assert info.value.code == 2
    assert "invalid choice: 'sideways'" in capsys.readouterr().err


# -- export ------------------------------------------------------------------


def test_export_asyncapi_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "asyncapi.json"

    code, out, err = run(
        capsys, "contracts", "export", "--asyncapi", "--contracts", CONTRACTS, "--out", out_file
    )

    assert (code, err) == (0, "")
    document = json.loads(out_file.read_text("utf-8"))
    assert document["asyncapi"] == "3.0.0"
    assert "inbox.socialtreasury" in document["channels"]
    assert document["channels"]["inbox.socialtreasury"]["address"] == "gw.inbox.socialtreasury"
    channels = len(document["channels"])
    assert out == f"wrote {out_file}: AsyncAPI 3.0.0, {channels} channel(s)\n"


def test_export_asyncapi_to_standard_output_with_a_prefix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        capsys, "contracts", "export", "--asyncapi", "--contracts", CONTRACTS, "--prefix", "t-1."
    )

    assert code == 0
    document = json.loads(out)
    assert document["asyncapi"] == "3.0.0"
    assert document["channels"]["inbox.socialtreasury"]["address"] == "t-1.inbox.socialtreasury"


def test_export_of_broken_contracts_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "asyncapi.json"

    code, out, err = run(
        capsys, "contracts", "export", "--asyncapi", "--contracts", BROKEN, "--out", out_file
    )

    assert (code, out) == (1, "")
    assert err.startswith("gateway: error: ")
    assert not out_file.exists()


def test_export_needs_asyncapi(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["contracts", "export", "--contracts", str(CONTRACTS)])

    assert info.value.code == 2
    assert "--asyncapi" in capsys.readouterr().err
