"""``gateway token new``: a token to hand over, and the digest the config keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.api.auth import hash_token
from gateway.cli import _reload_credentials, main
from gateway.errors import ConfigError


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


class StubNode:
    def __init__(self, outcome: list[str] | Exception) -> None:
        self.outcome = outcome
        self.configs: list[object] = []

    def reload_credentials(self, config: object) -> list[str]:
        self.configs.append(config)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@pytest.mark.parametrize(
    ("outcome", "said"),
    [
        ([], "gateway: credentials reloaded\n"),
        (["http"], "gateway: credentials reloaded\ngateway: restart to apply the other "
         "changes: http\n"),
        (ConfigError("the hosted participants changed"), "gateway: credentials not reloaded: "
         "the hosted participants changed\n"),
    ],
)  # fmt: skip
def test_sighup_reloads_the_config_file_and_says_what_happened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], outcome: Any, said: str
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("node_id: node-a\n")
    node = StubNode(outcome)

    _reload_credentials(node, config)  # type: ignore[arg-type]

    assert capsys.readouterr().err == said
    assert [c.node_id for c in node.configs] == ["node-a"]  # type: ignore[attr-defined]


def test_sighup_with_a_broken_config_file_keeps_the_node_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("node_id: [\n")
    node = StubNode([])

    _reload_credentials(node, config)  # type: ignore[arg-type]

    assert capsys.readouterr().err.startswith("gateway: credentials not reloaded: ")
    assert node.configs == []
