"""``gateway dlq list|show|replay`` against a node running in-process.

The command runs its own event loop, so it runs in a thread while the node serves
on the test's loop."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway.cli import main
from gateway.dlq_commands import node_of
from gateway.transport import OutboundRecord
from tests.api.conftest import AUDITOR, Gateway
from tests.api.dead_letters import ME, UNREGISTERED, pull, refused, register, settle
from tests.support import REFERRAL


@pytest.fixture
def token_files(tmp_path: Path, audited: Gateway) -> dict[str, Path]:
    files = {}
    for who in (ME, AUDITOR):
        files[who] = tmp_path / f"{who}.token"
        files[who].write_text(audited.fed.tokens[who] + "\n")
    return files


async def gateway_dlq(
    gw: Gateway,
    capsys: pytest.CaptureFixture[str],
    *args: str,
    token: Path | None = None,
    node: str | None = None,
) -> tuple[int, str, str]:
    """Run ``gateway dlq ARGS`` against the node; its exit status, stdout and stderr."""
    argv = ["dlq", *args, "--node", node or gw.node.url]
    if token is not None:
        argv += ["--token-file", str(token)]
    capsys.readouterr()  # what the node logged so far
    with capture_logs():  # and what it logs meanwhile: not the command's output
        status = await asyncio.to_thread(main, argv)
    out, err = capsys.readouterr()
    for secret in gw.fed.tokens.values():
        assert secret not in out + err
    assert "Traceback" not in err
    return status, out, err


async def test_list_prints_a_table_of_dead_letters(
    audited: Gateway, token_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    message_id, _ = refused(audited)
    await settle(audited, 1)

    status, out, err = await gateway_dlq(audited, capsys, "list", token=token_files[ME])

    assert (status, err) == (0, "")
    header, row, summary = out.splitlines()
    assert header.split() == [
        "POSITION",
        "TIME",
        "MESSAGE",
        "ID",
        "SENDER",
        "CONTRACT",
        "REASON",
        "REPLAYS",
    ]
    assert row.split() == [
        "0:0",
        "2026-01-01T00:00:00Z",
        message_id,
        "minhealth",
        f"{REFERRAL}@{UNREGISTERED}",
        "unknown-contract",
        "-",
    ]
    assert summary == f"1 of 1 dead letters in {audited.fed.prefix}dlq.{ME}"


async def test_list_pages_and_prints_json(
    audited: Gateway, token_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [refused(audited, number=n)[0] for n in (1, 2, 3)]
    await settle(audited, 3)

    status, out, _ = await gateway_dlq(
        audited, capsys, "list", "--limit", "2", token=token_files[ME]
    )
    assert status == 0
    assert out.splitlines()[-1] == "more: gateway dlq list --after 0:1"
    status, out, _ = await gateway_dlq(
        audited, capsys, "list", "--after", "0:1", "--json", token=token_files[ME]
    )
    page = json.loads(out)
    assert [e["message_id"] for e in page["entries"]] == ids[2:]
    assert page["next"] is None


async def test_show_prints_every_field(
    audited: Gateway, token_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    message_id, _ = refused(audited)
    await settle(audited, 1)

    status, out, _ = await gateway_dlq(audited, capsys, "show", "0:0", token=token_files[ME])

    assert status == 0
    fields = dict(line.split(":", 1) for line in out.splitlines())
    assert fields["message_id"].strip() == message_id
    assert fields["reason"].strip() == "unknown-contract"
    assert fields["attempts"].strip() == "-"
    assert len(fields["envelope_sha256"].strip()) == 64


async def test_replay_after_the_fix_delivers_and_is_audited_by_the_node(
    audited: Gateway, token_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    message_id, _ = refused(audited)
    await settle(audited, 1)
    await register(audited)

    status, out, err = await gateway_dlq(
        audited, capsys, "replay", "--offset", "0:0", token=token_files[ME]
    )

    assert (status, err) == (0, "")
    assert out.splitlines()[0] == f"replayed 0:0  {message_id}  (was unknown-contract)"
    assert [m["message_id"] for m in await pull(audited)] == [message_id]
    [replayed] = [r for r in audited.fed.audit("node-1") if r["event"] == "message.replayed"]
    assert (replayed["by"], replayed["message_id"]) == (ME, message_id)


async def test_replay_by_id_and_all_from_the_environment_token(
    audited: Gateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    message_id, _ = refused(audited)
    await settle(audited, 1)
    monkeypatch.setenv("GATEWAY_TOKEN", audited.fed.tokens[ME])

    status, out, _ = await gateway_dlq(audited, capsys, "replay", "--id", message_id, "--json")
    assert status == 0
    assert [r["message_id"] for r in json.loads(out)["replayed"]] == [message_id]
    await settle(audited, 2)  # refused again: the version is still unknown
    status, out, _ = await gateway_dlq(audited, capsys, "replay", "--all")
    assert status == 0
    assert out.splitlines()[0].startswith("replayed 0:2  ")  # 0:1 is the first replay's marker


async def test_an_unknown_offset_fails_the_command(
    audited: Gateway, token_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    refused(audited)
    await settle(audited, 1)

    status, out, err = await gateway_dlq(
        audited, capsys, "replay", "--offset", "0:0", "--offset", "0:9", token=token_files[ME]
    )
    assert status == 1
    assert out.splitlines()[0].startswith("replayed 0:0  ")
    assert out.splitlines()[1] == "not found 0:9"
    assert err == "gateway: error: 1 not found in the dead letters\n"

    status, out, err = await gateway_dlq(audited, capsys, "show", "0:9", token=token_files[ME])
    assert (status, out) == (1, "")
    assert err == (
        f"gateway: error: No such dead letter: no dead letter at 0:9 in "
        f"{audited.fed.prefix}dlq.{ME} (404)\n"
    )


async def test_an_auditor_lists_but_cannot_replay(
    audited: Gateway, token_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    message_id, _ = refused(audited)
    await settle(audited, 1)

    status, out, _ = await gateway_dlq(
        audited, capsys, "list", "--participant", ME, "--json", token=token_files[AUDITOR]
    )
    assert status == 0
    assert [e["message_id"] for e in json.loads(out)["entries"]] == [message_id]
    status, out, err = await gateway_dlq(
        audited, capsys, "replay", "--all", token=token_files[AUDITOR]
    )
    assert (status, out) == (1, "")
    assert err == (
        "gateway: error: Not allowed: only participants may do this; 'soc' is not one (403)\n"
    )


async def test_a_bad_token_prints_the_problem(
    audited: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "wrong.token"
    wrong.write_text("gw_" + "x" * 43)

    status, out, err = await gateway_dlq(audited, capsys, "list", token=wrong)

    assert (status, out) == (1, "")
    assert err == "gateway: error: Missing or invalid credentials: the token is not valid (401)\n"
    assert "x" * 43 not in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "gateway: error: cannot read the token file {path}: No such file or directory\n"),
        ("", "gateway: error: the token file {path} does not hold a bearer token\n"),
        ("two words", "gateway: error: the token file {path} does not hold a bearer token\n"),
    ],
    ids=["missing", "empty", "not-a-token"],
)
async def test_an_unusable_token_file_is_one_line(
    audited: Gateway,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    expected: str,
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    status, out, err = await gateway_dlq(audited, capsys, "list", token=path)
    assert (status, out, err) == (1, "", expected.format(path=path))


async def test_no_token_at_all_says_where_to_put_one(
    audited: Gateway, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_TOKEN", raising=False)
    status, _, err = await gateway_dlq(audited, capsys, "list")
    assert (status, err) == (1, "gateway: error: give --token-file FILE or set GATEWAY_TOKEN\n")


async def test_an_unreachable_node_is_one_line(
    audited: Gateway, token_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status, out, err = await gateway_dlq(
        audited, capsys, "list", token=token_files[ME], node=f"http://127.0.0.1:{port}"
    )

    assert (status, out) == (1, "")
    assert err.startswith(f"gateway: error: cannot reach the node at http://127.0.0.1:{port}: ")
    assert err.count("\n") == 1


async def test_header_text_cannot_drive_the_terminal(
    audited: Gateway, token_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    topic = audited.fed.config(()).dlq_topic(ME)
    headers = (("ce_source", b"evil\x1b[2J\x07"), ("gw_reason", b"x\rforged"))
    audited.transport.broker.topics.setdefault(topic, []).append(
        OutboundRecord(topic, b"k", b"v", headers)
    )
    for command in (["list"], ["show", "0:0"]):
        status, out, _ = await gateway_dlq(audited, capsys, *command, token=token_files[ME])
        assert status == 0
        assert "\x1b" not in out
        assert "\x07" not in out
        assert "\r" not in out
        assert "evil\N{REPLACEMENT CHARACTER}[2J" in out


def test_a_bad_position_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["dlq", "show", "zero"])
    assert exit_.value.code == 2
    assert "'zero' is not PARTITION:OFFSET" in capsys.readouterr().err


def test_replay_needs_one_kind_of_choice(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["dlq", "replay", "--all", "--id", "m-1"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_plain_http_to_another_host_warns_that_the_token_travels_in_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = tmp_path / "token"
    token.write_text("gw_secret")
    for url in ("http://127.0.0.1:8080", "http://localhost:8080", "https://node-a.example"):
        assert node_of(url, token, {}).url == url
        assert capsys.readouterr().err == ""
    node = node_of("http://node-a.example:8080/", token, {})
    assert node.url == "http://node-a.example:8080"
    assert "gw_secret" not in repr(node)
    assert capsys.readouterr().err == (
        "gateway: warning: the token goes to node-a.example unencrypted (http)\n"
    )
