"""``gateway audit ...`` and the audit records of ``gateway keys ... --config``, end to end
through the CLI entry point."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.audit.events import EVENTS
from gateway.audit.keys import copy_to_log, load_or_create, publish
from gateway.audit.log import AuditLog, digest
from gateway.audit.merkle import leaf_hash
from gateway.audit.store import (
    HEADS,
    KEY_FILE,
    ZERO,
    audit_key_paths,
    read_verify_keys,
    records,
    segments,
)
from gateway.audit.verify import verify
from gateway.cli import main
from gateway.crypto.jwk import SignKey, Suite
from gateway.crypto.keys import PASSPHRASE_ENV

PASSPHRASE = "audit cli test passphrase, not a secret"
NODE = "node-a"
PARTICIPANT = "minhealth"
REFERRAL = "health.patient-referral@1.0.0"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*argv: str | Path) -> Result:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    monkeypatch.delenv("GATEWAY_KEY_PASSPHRASE_FILE", raising=False)
    monkeypatch.chdir(tmp_path)


# -- a node's audit log ----------------------------------------------------------------


def message(log: AuditLog, event: str, message_id: str, **party: Any) -> None:
    log.record(
        event,
        message_id=message_id,
        contract=REFERRAL,
        sender=PARTICIPANT,
        payload_sha256=digest(message_id.encode()),
        payload_size=len(message_id),
        **party,
    )


@pytest.fixture
def key() -> SignKey:
    return SignKey.generate(Suite.ED25519)


@pytest.fixture
def pinned(tmp_path: Path, key: SignKey) -> Path:
    """The node's audit public key as a security team received it, outside the log."""
    path = tmp_path / f"{NODE}.audit.jwks.json"
    publish(path, NODE, key)
    return path


@pytest.fixture
def audit(tmp_path: Path, key: SignKey) -> Path:
    """Records 0..6 under two signed heads, the key beside them as a node leaves it.

    msg-1 has records 1 (accepted), 3 (delivered) and 5 (acknowledged)."""
    directory = tmp_path / "audit"
    copy_to_log(directory, NODE, key)
    log = AuditLog(node_id=NODE, directory=directory, signer=key)
    to = {"recipient": "socialtreasury"}
    message(log, "message.accepted", "msg-0", recipients=["socialtreasury"])
    message(log, "message.accepted", "msg-1", recipients=["socialtreasury"])
    message(log, "message.delivered", "msg-0", mode="pull", **to)
    message(log, "message.delivered", "msg-1", mode="pull", **to)
    log.sign_head()
    message(log, "message.accepted", "msg-2", recipients=["acme-analytics"])
    message(log, "message.acknowledged", "msg-1", **to)
    message(log, "message.rejected", "msg-3", reason="contract", pointers=["/age"])
    log.close()
    return directory


def segment_of(directory: Path) -> Path:
    return segments(directory)[0][1]


def tamper_record(directory: Path, old: bytes, new: bytes) -> None:
    segment = segment_of(directory)
    data = segment.read_bytes()
    assert data.count(old) == 1, "the test must change exactly one record"
    segment.write_bytes(data.replace(old, new))


# -- audit verify --------------------------------------------------------------------------


def test_verify_a_good_log(run: Run, audit: Path) -> None:
    result = run("audit", "verify", audit)

    assert (result.code, result.err) == (0, "")
    lines = result.out.splitlines()
    assert lines[0] == f"audit log {audit} (node {NODE})"
    assert lines[1] == "  records 0..6: 7 checked"
    assert lines[2].startswith("  2 signed heads; the newest covers 7 records (")
    assert lines[3] == (
        f"  key: {audit / KEY_FILE} (from the log itself; pin the node's key with --key)"
    )
    assert lines[-1] == "verified: every record and signed head holds"
    assert "TAMPERED" not in result.out


def test_verify_with_a_pinned_key(run: Run, audit: Path, pinned: Path) -> None:
    result = run("audit", "verify", audit, "--key", pinned)

    assert (result.code, result.err) == (0, "")
    assert "from the log itself" not in result.out
    assert result.out.splitlines()[-1] == "verified: every record and signed head holds"


def test_verify_names_the_changed_record(run: Run, audit: Path) -> None:
    tamper_record(audit, b'"msg-2"', b'"msg-9"')  # record 4, line 5

    result = run("audit", "verify", audit)

    assert (result.code, result.err) == (1, "")
    tampered = [line for line in result.out.splitlines() if line.startswith("TAMPERED: ")]
    segment = segment_of(audit).name
    assert tampered == [
        f"TAMPERED: record 4 ({segment}:5) was changed: its hash is not the one "
        f"record 5 ({segment}:6) links to"
    ]
    assert "verified" not in result.out


def test_verify_json(run: Run, audit: Path) -> None:
    result = run("audit", "verify", audit, "--json")

    assert (result.code, result.err) == (0, "")
    report = json.loads(result.out)
    assert report["ok"] is True
    assert report["problems"] == []
    assert (report["node"], report["size"], report["heads"]) == (NODE, 7, 2)
    assert report["signed_size"] == 7


def test_verify_json_of_a_tampered_log(run: Run, audit: Path) -> None:
    tamper_record(audit, b'"msg-2"', b'"msg-9"')

    result = run("audit", "verify", audit, "--json")

    assert (result.code, result.err) == (1, "")
    report = json.loads(result.out)
    assert report["ok"] is False
    first = report["problems"][0]
    assert (first["kind"], first["record"]) == ("record-changed", 4)
    assert first["where"] == f"{segment_of(audit).name}:5"


def test_verify_with_another_nodes_key(run: Run, audit: Path, key: SignKey, tmp_path: Path) -> None:
    other = tmp_path / "other.audit.jwks.json"
    publish(other, NODE, SignKey.generate(Suite.ED25519))

    result = run("audit", "verify", audit, "--key", other)

    assert (result.code, result.err) == (1, "")
    assert f"TAMPERED: heads.jsonl:1: signed with kid '{key.kid}', not an audit key given" in (
        result.out.splitlines()
    )
    assert "verified" not in result.out


@pytest.mark.parametrize("pin", [True, False], ids=["with-key", "key-from-the-log"])
def test_verify_a_missing_directory(run: Run, tmp_path: Path, pinned: Path, pin: bool) -> None:
    missing = tmp_path / "no-such-audit"
    key: list[str | Path] = ["--key", pinned] if pin else []

    result = run("audit", "verify", missing, *key)

    assert (result.code, result.out) == (1, "")
    assert result.err.count("\n") == 1
    assert "Traceback" not in result.err
    assert result.err == f"gateway: error: no audit log at {missing}: not a directory\n"


# -- audit prove / check-proof -------------------------------------------------------------------


@pytest.fixture
def proof(run: Run, audit: Path, tmp_path: Path) -> Path:
    path = tmp_path / "msg-1.proof.json"
    result = run("audit", "prove", "--id", "msg-1", "--dir", audit, "--out", path)
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines()[0] == (
        f"wrote {path}: 3 records of message msg-1, against head 1 (7 records)"
    )
    return path


def test_prove_then_check_proof(run: Run, proof: Path, pinned: Path, key: SignKey) -> None:
    result = run("audit", "check-proof", proof, "--key", pinned)

    assert (result.code, result.err) == (0, "")
    lines = result.out.splitlines()
    assert lines[0].startswith(f"valid: signed by node {NODE} (key {key.kid}) at ")
    assert lines[0].endswith(", 7 records")
    assert lines[1:] == [
        f"  record 1: message.accepted message_id=msg-1 contract={REFERRAL} "
        f"sender={PARTICIPANT} recipients=socialtreasury",
        f"  record 3: message.delivered message_id=msg-1 contract={REFERRAL} "
        f"sender={PARTICIPANT} recipient=socialtreasury",
        f"  record 5: message.acknowledged message_id=msg-1 contract={REFERRAL} "
        f"sender={PARTICIPANT} recipient=socialtreasury",
    ]


def test_check_proof_json(run: Run, proof: Path, pinned: Path) -> None:
    result = run("audit", "check-proof", proof, "--key", pinned, "--json")

    assert (result.code, result.err) == (0, "")
    checked = json.loads(result.out)
    assert (checked["valid"], checked["node"], checked["tree_size"]) == (True, NODE, 7)
    assert [r["seq"] for r in checked["records"]] == [1, 3, 5]


def test_prove_to_standard_output(run: Run, audit: Path, pinned: Path, tmp_path: Path) -> None:
    result = run("audit", "prove", "--id", "msg-0", "--dir", audit)

    assert (result.code, result.err) == (0, "")
    document = json.loads(result.out)
    assert [i["leaf_index"] for i in document["inclusions"]] == [0, 2]
    saved = tmp_path / "saved.json"
    saved.write_text(result.out)
    assert run("audit", "check-proof", saved, "--key", pinned).code == 0


def test_prove_consistency_then_check(run: Run, audit: Path, pinned: Path, tmp_path: Path) -> None:
    path = tmp_path / "consistency.json"
    proved = run("audit", "prove", "--from-head", "0", "--dir", audit, "--out", path)
    assert (proved.code, proved.err) == (0, "")
    assert proved.out.splitlines()[0] == (
        f"wrote {path}: the log at head 0 is a prefix of head 1, against head 1 (7 records)"
    )

    result = run("audit", "check-proof", path, "--key", pinned)

    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines()[-1] == (
        "  the log of 4 records is a prefix of this one: nothing in it was changed or removed"
    )


def test_prove_an_unknown_message(run: Run, audit: Path, tmp_path: Path) -> None:
    out = tmp_path / "nothing.json"

    result = run("audit", "prove", "--id", "msg-9", "--dir", audit, "--out", out)

    assert result == Result(1, "", "gateway: error: no audit record names message msg-9\n")
    assert not out.exists()


def test_prove_a_head_that_is_not_there(run: Run, audit: Path) -> None:
    result = run("audit", "prove", "--from-head", "5", "--dir", audit)

    assert result == Result(
        1, "", "gateway: error: there is no head 5 in the log (it holds heads 0 to 1)\n"
    )


def test_check_a_tampered_proof(run: Run, proof: Path, pinned: Path) -> None:
    document = json.loads(proof.read_text())
    document["inclusions"][1]["record"] = document["inclusions"][1]["record"].replace(
        '"pull"', '"push"'
    )
    proof.write_text(json.dumps(document))

    result = run("audit", "check-proof", proof, "--key", pinned)

    assert result == Result(1, "invalid: inclusions[1]: record 3 is not in the signed tree\n", "")


def test_check_a_tampered_proof_json(run: Run, proof: Path, pinned: Path) -> None:
    document = json.loads(proof.read_text())
    document["tree_head"]["size"] = 8
    proof.write_text(json.dumps(document))

    result = run("audit", "check-proof", proof, "--key", pinned, "--json")

    assert (result.code, result.err) == (1, "")
    assert json.loads(result.out) == {
        "valid": False,
        "reason": "the tree head: the tree head differs from what the signature covers",
    }


def test_check_proof_with_another_key(run: Run, proof: Path, tmp_path: Path, key: SignKey) -> None:
    other = tmp_path / "other.audit.jwks.json"
    publish(other, NODE, SignKey.generate(Suite.ED25519))

    result = run("audit", "check-proof", proof, "--key", other)

    assert (result.code, result.err) == (1, "")
    assert result.out == (
        f"invalid: the tree head: signed with kid '{key.kid}', not an audit key given\n"
    )


def test_check_proof_of_a_file_that_is_not_json(run: Run, tmp_path: Path, pinned: Path) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")

    result = run("audit", "check-proof", garbage, "--key", pinned)

    assert result == Result(1, f"invalid: {garbage} is not JSON\n", "")


# -- audit search ------------------------------------------------------------------------------


def test_search_by_message_lists_its_records_in_order(run: Run, audit: Path) -> None:
    result = run("audit", "search", "--dir", audit, "--id", "msg-1")

    assert (result.code, result.err) == (0, "")
    lines = result.out.splitlines()
    assert [line.split()[1:3] for line in lines[:-1]] == [
        ["#1", "message.accepted"],
        ["#3", "message.delivered"],
        ["#5", "message.acknowledged"],
    ]
    assert all("message_id=msg-1" in line for line in lines[:-1])
    assert lines[-1] == "3 records"


def test_search_json(run: Run, audit: Path) -> None:
    result = run("audit", "search", "--dir", audit, "--id", "msg-1", "--json")

    assert (result.code, result.err) == (0, "")
    page = json.loads(result.out)
    assert [r["seq"] for r in page["records"]] == [1, 3, 5]
    assert page["more"] is False
    stored = {record["seq"]: record for _, record in records(audit)}
    assert page["records"] == [stored[1], stored[3], stored[5]]


def test_search_says_when_there_is_more(run: Run, audit: Path) -> None:
    listed = run("audit", "search", "--dir", audit, "--limit", "2")
    paged = run("audit", "search", "--dir", audit, "--limit", "2", "--json")

    assert listed.code == 0
    assert listed.out.splitlines()[-1] == "2 records (more: raise --limit or narrow the search)"
    page = json.loads(paged.out)
    assert ([r["seq"] for r in page["records"]], page["more"]) == ([0, 1], True)


def test_search_by_participant_and_outcome(run: Run, audit: Path) -> None:
    result = run("audit", "search", "--dir", audit, "--participant", "acme-analytics", "--json")
    rejected = run("audit", "search", "--dir", audit, "--outcome", "rejected", "--json")

    assert [r["seq"] for r in json.loads(result.out)["records"]] == [4]
    assert [r["message_id"] for r in json.loads(rejected.out)["records"]] == ["msg-3"]


def test_search_by_time(run: Run, audit: Path) -> None:
    future = run("audit", "search", "--dir", audit, "--since", "2999-01-01")
    past = run("audit", "search", "--dir", audit, "--until", "2000-01-01T00:00:00Z")
    always = run("audit", "search", "--dir", audit, "--since", "2000-01-01", "--json")

    assert (future.code, future.out) == (0, "0 records\n")
    assert (past.code, past.out) == (0, "0 records\n")
    assert len(json.loads(always.out)["records"]) == 7


@pytest.mark.parametrize("action", ["search", "export"])
@pytest.mark.parametrize("option", ["--since", "--until"])
@pytest.mark.parametrize("text", ["yesterday", "2026-11-26T12:00:00", "2026-13-01"])
def test_an_unusable_time_is_refused(
    run: Run, audit: Path, tmp_path: Path, action: str, option: str, text: str
) -> None:
    out = tmp_path / "export.jsonl"
    extra: list[str | Path] = ["--out", out] if action == "export" else []

    result = run("audit", action, "--dir", audit, option, text, *extra)

    assert (result.code, result.out) == (2, "")
    assert result.err.startswith(f"gateway: invalid input: {option}: ")
    assert result.err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("limit", ["0", "-1", "10001"])
def test_an_unusable_limit_is_refused(run: Run, audit: Path, limit: str) -> None:
    result = run("audit", "search", "--dir", audit, "--limit", limit)

    assert result == Result(2, "", "gateway: invalid input: --limit must be between 1 and 10000\n")


def test_search_a_missing_directory(run: Run, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    result = run("audit", "search", "--dir", missing)

    assert result == Result(1, "", f"gateway: error: no audit log at {missing}: not a directory\n")


# -- audit export ------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_export_everything(run: Run, audit: Path, tmp_path: Path) -> None:
    out = tmp_path / "export.jsonl"

    result = run("audit", "export", "--dir", audit, "--out", out)

    assert result == Result(0, f"exported 7 records to {out}\n", "")
    exported = read_jsonl(out)
    assert exported == [record for _, record in records(audit)]
    assert [r["seq"] for r in exported] == list(range(7))


def test_export_only_what_matches(run: Run, audit: Path, tmp_path: Path) -> None:
    out = tmp_path / "export.jsonl"

    result = run("audit", "export", "--dir", audit, "--id", "msg-1", "--out", out)

    assert result == Result(0, f"exported 3 records to {out}\n", "")
    exported = read_jsonl(out)
    assert [(r["seq"], r["message_id"]) for r in exported] == [
        (1, "msg-1"),
        (3, "msg-1"),
        (5, "msg-1"),
    ]


def test_export_nothing_matches(run: Run, audit: Path, tmp_path: Path) -> None:
    out = tmp_path / "export.jsonl"

    result = run("audit", "export", "--dir", audit, "--event", "auth.failed", "--out", out)

    assert result == Result(0, f"exported 0 records to {out}\n", "")
    assert out.read_text() == ""


def test_export_to_standard_output(run: Run, audit: Path) -> None:
    result = run("audit", "export", "--dir", audit, "--contract", "health.patient-referral")

    assert (result.code, result.err) == (0, "")
    assert [json.loads(line)["seq"] for line in result.out.splitlines()] == list(range(7))


# -- audit events ------------------------------------------------------------------------------


def test_events_lists_the_catalogue(run: Run) -> None:
    result = run("audit", "events")

    assert (result.code, result.err) == (0, "")
    names = [line.split()[0] for line in result.out.splitlines() if not line.startswith(" ")]
    assert names == list(EVENTS)
    accepted = next(line for line in result.out.splitlines() if line.startswith("message.accepted"))
    assert accepted.split()[1] == "accepted"


def test_events_json(run: Run) -> None:
    result = run("audit", "events", "--json")

    assert (result.code, result.err) == (0, "")
    table = json.loads(result.out)
    assert list(table) == list(EVENTS)
    assert table["message.accepted"]["outcome"] == "accepted"
    assert "payload_sha256" in table["message.accepted"]["fields"]
    assert table["key.rotated"]["fields"] == list(EVENTS["key.rotated"].fields)


# -- keys ... --config: the node's audit log records key changes ---------------------------------


@dataclass(frozen=True)
class Node:
    config: Path
    keys: Path
    audit: Path

    def command(self, action: str, *extra: str, participant: str = PARTICIPANT) -> list[str]:
        """``gateway keys ACTION`` for a participant, recorded in this node's audit log."""
        where = "--out" if action == "generate" else "--dir"
        return [
            "keys", action, "--participant", participant, where, str(self.keys), *extra,
            "--config", str(self.config),
        ]  # fmt: skip

    def key_events(self) -> list[dict[str, Any]]:
        return [r for _, r in records(self.audit) if r["event"].startswith("key.")]

    def public(self) -> Path:
        return self.keys / f"{PARTICIPANT}.public.jwks.json"

    def kids(self, use: str) -> list[str]:
        jwks = json.loads(self.public().read_text())
        return [k["kid"] for k in jwks["keys"] if k["use"] == use]

    def verifies(self) -> bool:
        _, public = audit_key_paths(self.keys, NODE)
        return verify(self.audit, read_verify_keys(public)).ok


@pytest.fixture
def node(tmp_path: Path) -> Node:
    """A stopped node's config; paths in it are relative to the file."""
    config = tmp_path / "gateway.yaml"
    config.write_text(f"node_id: {NODE}\nkeys_dir: keys\naudit:\n  dir: audit\n")
    return Node(config, tmp_path / "keys", tmp_path / "audit")


@pytest.fixture
def keyed(run: Run, node: Node) -> Node:
    """The participant's keys generated through the node, so its audit key exists."""
    result = run(*node.command("generate"))
    assert result.code == 0, result.err
    return node


def test_the_first_key_command_also_records_the_audit_key(run: Run, node: Node) -> None:
    result = run(*node.command("generate"))

    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines()[-1] == f"recorded key.generated in the audit log {node.audit}"
    audit_kid = next(iter(read_verify_keys(audit_key_paths(node.keys, NODE)[1])))
    events = node.key_events()
    assert [(e["event"], e["owner"], e["purpose"]) for e in events] == [
        ("key.generated", NODE, "audit"),
        ("key.generated", PARTICIPANT, "participant"),
    ]
    assert events[0]["kids"] == [audit_kid]
    assert events[1]["kids"] == [node.kids("sig")[0], node.kids("enc")[0]]
    assert isinstance(events[1]["by"], str)
    assert events[1]["by"]
    assert node.verifies()


def test_generate_records_one_event(run: Run, keyed: Node) -> None:
    before = keyed.key_events()
    other = "socialtreasury"

    result = run(*keyed.command("generate", participant=other))

    assert result.code == 0, result.err
    new = keyed.key_events()[len(before) :]
    jwks = json.loads((keyed.keys / f"{other}.public.jwks.json").read_text())
    assert [(e["event"], e["owner"], e["purpose"]) for e in new] == [
        ("key.generated", other, "participant")
    ]
    assert new[0]["kids"] == [k["kid"] for k in jwks["keys"]]
    assert keyed.verifies()


def test_rotate_records_one_event(run: Run, keyed: Node) -> None:
    before = keyed.key_events()
    old = [keyed.kids("sig")[0], keyed.kids("enc")[0]]

    result = run(*keyed.command("rotate", "--overlap", "3600"))

    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines()[-1] == f"recorded key.rotated in the audit log {keyed.audit}"
    new = keyed.key_events()[len(before) :]
    assert [(e["event"], e["owner"]) for e in new] == [("key.rotated", PARTICIPANT)]
    assert new[0]["kids"] == [keyed.kids("sig")[0], keyed.kids("enc")[0]]
    assert set(new[0]["kids"]).isdisjoint(old)
    assert new[0]["retired"] == sorted(old)
    assert new[0]["overlap_s"] == 3600
    assert keyed.verifies()


def test_revoke_records_one_event(run: Run, keyed: Node) -> None:
    old_sig = keyed.kids("sig")[0]
    assert run("keys", "rotate", "--participant", PARTICIPANT, "--dir", keyed.keys).code == 0
    before = keyed.key_events()

    result = run(*keyed.command("revoke", f"--kid={old_sig}", "--at", "1000"))

    assert (result.code, result.err) == (0, "")
    new = keyed.key_events()[len(before) :]
    assert [(e["event"], e["owner"], e["kid"]) for e in new] == [
        ("key.revoked", PARTICIPANT, old_sig)
    ]
    assert new[0]["revoked_at"] == 1000
    assert keyed.verifies()


def test_a_refused_key_change_records_nothing(run: Run, keyed: Node) -> None:
    current = keyed.kids("sig")[0]
    before = keyed.key_events()
    jwks = keyed.public().read_bytes()

    result = run(*keyed.command("revoke", f"--kid={current}"))

    assert (result.code, result.out) == (1, "")
    assert "current signing key" in result.err
    assert keyed.key_events() == before
    assert keyed.public().read_bytes() == jwks
    assert keyed.verifies()


@pytest.fixture
def running(keyed: Node) -> Iterator[AuditLog]:
    """The node, started: it holds its audit log, opened as the node opens it."""
    signer, _ = load_or_create(keyed.keys, NODE, PASSPHRASE.encode())
    log = AuditLog(node_id=NODE, directory=keyed.audit, signer=signer)
    yield log
    log.close()


def snapshot(*directories: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for d in directories for p in sorted(d.iterdir()) if p.is_file()}


IN_USE = "is in use by another process (a running node?)"


@pytest.mark.parametrize("action", ["rotate", "revoke"])
def test_a_running_node_stops_a_key_change(
    run: Run, keyed: Node, running: AuditLog, action: str
) -> None:
    old_sig = keyed.kids("sig")[0]
    jwks = keyed.public().read_bytes()
    events = keyed.key_events()
    files = snapshot(keyed.keys, keyed.audit)
    extra = ["--overlap", "60"] if action == "rotate" else [f"--kid={old_sig}"]

    result = run(*keyed.command(action, *extra))

    assert (result.code, result.out) == (1, "")
    assert result.err == f"gateway: error: the audit log {keyed.audit} {IN_USE}\n"
    assert keyed.public().read_bytes() == jwks
    assert snapshot(keyed.keys, keyed.audit) == files
    running.close()
    assert keyed.key_events() == events
    assert keyed.verifies()


def test_a_running_node_stops_a_key_generation(run: Run, keyed: Node, running: AuditLog) -> None:
    result = run(*keyed.command("generate", participant="socialtreasury"))

    assert (result.code, result.out) == (1, "")
    assert IN_USE in result.err
    assert not (keyed.keys / "socialtreasury.public.jwks.json").exists()
    assert not (keyed.keys / "socialtreasury.sig.pem").exists()


def test_a_running_node_with_another_audit_key_is_left_alone(
    run: Run, node: Node, key: SignKey
) -> None:
    """The node runs with an audit key the command's keys_dir does not hold (another
    keys_dir, e.g. set by GATEWAY_KEYS_DIR when it started): the refused command must not
    create an audit key nor publish it into the node's log directory."""
    assert run("keys", "generate", "--participant", PARTICIPANT, "--out", node.keys).code == 0
    copy_to_log(node.audit, NODE, key)
    log = AuditLog(node_id=NODE, directory=node.audit, signer=key)
    try:
        files = snapshot(node.keys, node.audit)

        result = run(*node.command("rotate"))

        assert result.code == 1
        assert IN_USE in result.err
        assert snapshot(node.keys, node.audit) == files
    finally:
        log.close()


# -- records no head covers ------------------------------------------------------------------


def rewrite_after_last_head(directory: Path) -> None:
    """What an attacker with write access can do: drop the newest head, then rewrite the
    records it covered and recompute their chain (the chain needs no key)."""
    heads = directory / HEADS
    kept = heads.read_bytes().splitlines()[:-1]
    heads.write_bytes(b"".join(line + b"\n" for line in kept))
    segment = segment_of(directory)
    out, prev = [], ZERO
    for raw in segment.read_bytes().splitlines():
        record = json.loads(raw)
        if record["seq"] >= 4:
            record["prev"] = prev
            if record.get("sender"):
                record["sender"] = "mallory"
        line = json.dumps(record, sort_keys=True).encode()
        out.append(line if record["seq"] >= 4 else raw)
        prev = leaf_hash(out[-1]).hex()
    segment.write_bytes(b"".join(line + b"\n" for line in out))


def test_records_no_signed_head_covers_fail_verification(
    run: Run, audit: Path, pinned: Path
) -> None:
    rewrite_after_last_head(audit)

    result = run("audit", "verify", audit, "--key", pinned)

    assert result.code == 1
    assert result.out.splitlines()[-1].startswith(
        "UNSIGNED: records 4..6 are covered by no signed head"
    )
    assert "verified" not in result.out


def test_a_running_nodes_log_verifies_with_allow_unsigned(
    run: Run, audit: Path, pinned: Path, key: SignKey
) -> None:
    log = AuditLog(node_id=NODE, directory=audit, signer=key)
    message(log, "message.accepted", "msg-9", recipients=["socialtreasury"])  # not signed yet

    strict = run("audit", "verify", audit, "--key", pinned)
    allowed = run("audit", "verify", audit, "--key", pinned, "--allow-unsigned")
    as_json = run("audit", "verify", audit, "--key", pinned, "--json")
    log.close()

    assert strict.code == 1
    assert "UNSIGNED: records 7..7" in strict.out
    assert allowed.code == 0
    assert "1 newest records not yet covered by a signed head" in allowed.out
    report = json.loads(as_json.out)
    assert (as_json.code, report["ok"], report["unsigned"]) == (1, True, 1)
    assert report["key_from_log"] is False


def test_a_log_whose_heads_file_was_deleted_does_not_verify(
    run: Run, audit: Path, pinned: Path
) -> None:
    (audit / HEADS).unlink()

    result = run("audit", "verify", audit, "--key", pinned)

    assert result.code == 1
    assert "UNSIGNED: records 0..6" in result.out


def test_check_proof_refuses_a_deeply_nested_file(run: Run, tmp_path: Path, pinned: Path) -> None:
    proof = tmp_path / "deep.json"
    proof.write_text("[" * 100_000 + "]" * 100_000)

    result = run("audit", "check-proof", proof, "--key", pinned)

    assert (result.code, result.out) == (1, f"invalid: {proof} is not JSON\n")
    assert "Traceback" not in result.err


def test_a_time_before_year_one_is_refused_not_crashed(run: Run, audit: Path) -> None:
    result = run("audit", "search", "--dir", audit, "--since", "0001-01-01T00:00:00+01:00")

    assert result.code == 2
    assert "outside the years a time can have" in result.err


def test_a_head_kept_elsewhere_exposes_a_log_cut_back_to_an_older_head(
    run: Run, audit: Path, pinned: Path, tmp_path: Path
) -> None:
    """Deleting the newest head together with the records after the one before it
    leaves a log that verifies on its own; the head the security team kept does not."""
    heads = (audit / HEADS).read_bytes().splitlines()
    kept = tmp_path / "newest-head.json"
    kept.write_bytes(heads[-1] + b"\n")
    assert run("audit", "verify", audit, "--key", pinned, "--expect-head", kept).code == 0
    (audit / HEADS).write_bytes(heads[0] + b"\n")  # head 0 covers records 0..3
    segment = segment_of(audit)
    segment.write_bytes(b"".join(line + b"\n" for line in segment.read_bytes().splitlines()[:4]))
    assert run("audit", "verify", audit, "--key", pinned).code == 0  # alone, it looks fine

    result = run("audit", "verify", audit, "--key", pinned, "--expect-head", kept)

    assert result.code == 1
    assert "TAMPERED: head 1 signs 7 records but the log ends at record 3" in result.out


def test_an_expected_head_must_verify_with_the_key(
    run: Run, audit: Path, pinned: Path, tmp_path: Path
) -> None:
    line = json.loads((audit / HEADS).read_bytes().splitlines()[-1])
    line["tree_head"]["size"] = 99
    forged = tmp_path / "forged-head.json"
    forged.write_text(json.dumps(line))

    result = run("audit", "verify", audit, "--key", pinned, "--expect-head", forged)

    assert result.code == 1
    assert result.err.startswith(f"gateway: error: {forged}: not a signed tree head the key")
