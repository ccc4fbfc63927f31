"""``gateway token new``: a token to hand over, and the digest the config keeps."""

from __future__ import annotations

import pytest

from gateway.api.auth import hash_token
from gateway.cli import main


@pytest.mark.parametrize(
    ("flag", "section"), [("--participant", "participants"), ("--auditor", "auditors")]
)
def test_a_new_token_comes_with_the_digest_for_its_config_section(
    capsys: pytest.CaptureFixture[str], flag: str, section: str
) -> None:
    assert main(["token", "new", flag, "security-team"]) == 0

    lines = capsys.readouterr().out.splitlines()
    token, digest = lines[1].strip(), lines[3].strip()
    assert token.startswith("gw_")
    assert hash_token(token) == digest
    assert f"under {section} -> security-team -> token_sha256" in lines[2]


def test_an_invalid_id_gets_no_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "new", "--auditor", "Not Valid"]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "gateway: error: 'Not Valid' is not a valid auditor id\n"


def test_a_token_is_for_a_participant_or_an_auditor_not_both(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["token", "new", "--participant", "a-b", "--auditor", "c-d"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
