"""Inclusion and consistency proofs over a node's audit log, and their offline check.

A proof must convince someone who holds nothing but the file and the node's
audit public key, so most tests here take a good proof, change one thing, and
expect :func:`check_proof` to refuse it and say why.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.audit.log import AuditLog, digest
from gateway.audit.proofs import (
    FORMAT,
    InvalidProof,
    check_proof,
    prove_consistency,
    prove_message,
)
from gateway.audit.store import HEAD_TYP, AuditError, SignedHead, TreeHead, records, segments
from gateway.config import AuditConfig
from gateway.crypto.envelope import sign_compact
from gateway.crypto.jwk import SignKey, Suite, VerifyKey

NODE = "node-a"
REFERRAL = "health.patient-referral@1.0.0"
HEAD_SIZES = (1, 2, 3, 4, 5, 8, 11)
"""Where the ``heads`` fixture signs: powers of two and not, which RFC 9162 treats apart."""

Proof = dict[str, Any]
Tamper = Callable[[Proof], None]


# -- building logs -----------------------------------------------------------------


def accepted(log: AuditLog, message_id: str) -> None:
    log.record(
        "message.accepted",
        message_id=message_id,
        contract=REFERRAL,
        sender="minhealth",
        recipients=["socialtreasury"],
        payload_sha256=digest(message_id.encode()),
        payload_size=len(message_id),
    )


def received(log: AuditLog, event: str, message_id: str) -> None:
    log.record(
        event,
        message_id=message_id,
        contract=REFERRAL,
        sender="minhealth",
        recipient="socialtreasury",
        payload_sha256=digest(message_id.encode()),
        payload_size=len(message_id),
    )


@pytest.fixture
def key() -> SignKey:
    return SignKey.generate(Suite.ED25519)


@pytest.fixture
def keys(key: SignKey) -> dict[str, VerifyKey]:
    return {key.kid: key.verify_key()}


@pytest.fixture
def open_log(tmp_path: Path, key: SignKey) -> Iterator[AuditLog]:
    log = AuditLog(node_id=NODE, directory=tmp_path / "audit", signer=key)
    yield log
    log.close()


@pytest.fixture
def directory(open_log: AuditLog) -> Path:
    """Records 0..7 under heads 0 (5 records) and 1 (8 records, signed on close).

    msg-1 has records 1 (accepted), 3 (delivered) and 5 (acknowledged)."""
    accepted(open_log, "msg-0")
    accepted(open_log, "msg-1")
    received(open_log, "message.delivered", "msg-0")
    received(open_log, "message.delivered", "msg-1")
    accepted(open_log, "msg-2")
    assert open_log.sign_head() is not None
    received(open_log, "message.acknowledged", "msg-1")
    accepted(open_log, "msg-3")
    accepted(open_log, "msg-4")
    open_log.close()
    assert open_log.directory is not None
    return open_log.directory


@pytest.fixture
def heads(tmp_path: Path, key: SignKey) -> Path:
    """A log with a signed head at each of HEAD_SIZES (head n covers HEAD_SIZES[n] records)."""
    log = AuditLog(node_id=NODE, directory=tmp_path / "heads", signer=key)
    for seq in range(HEAD_SIZES[-1]):
        accepted(log, f"msg-{seq}")
        if seq + 1 in HEAD_SIZES:
            assert log.sign_head() is not None
    log.close()
    return tmp_path / "heads"


def stored_lines(directory: Path) -> dict[int, str]:
    return {record["seq"]: line.raw.decode() for line, record in records(directory)}


def resign(container: dict[str, Any], key: SignKey, **changes: Any) -> None:
    """Replace a tree head with a changed one, signed by ``key``: what a lying node can do."""
    head = TreeHead.from_json({**container["tree_head"], **changes})
    signed = SignedHead.sign(head, key)
    container["tree_head"], container["signature"] = head.to_json(), signed.signature


# -- inclusion: the good case ------------------------------------------------------------


def test_prove_message_includes_every_record_of_the_message(
    directory: Path, keys: dict[str, VerifyKey], key: SignKey
) -> None:
    proof = prove_message(directory, "msg-1")

    assert proof["format"] == FORMAT
    assert proof["tree_head"]["head"] == 1
    assert proof["tree_head"]["size"] == 8
    assert [i["leaf_index"] for i in proof["inclusions"]] == [1, 3, 5]
    lines = stored_lines(directory)
    assert [i["record"] for i in proof["inclusions"]] == [lines[1], lines[3], lines[5]]
    checked = check_proof(json.loads(json.dumps(proof)), keys)
    assert (checked.node, checked.size, checked.kid) == (NODE, 8, key.kid)
    assert checked.time == proof["tree_head"]["time"]
    assert [(r["seq"], r["event"]) for r in checked.records] == [
        (1, "message.accepted"),
        (3, "message.delivered"),
        (5, "message.acknowledged"),
    ]
    assert {r["message_id"] for r in checked.records} == {"msg-1"}
    assert checked.consistent_from is None


@pytest.mark.parametrize("suite", list(Suite))
def test_a_proof_checks_with_either_key_suite(tmp_path: Path, suite: Suite) -> None:
    signer = SignKey.generate(suite)
    log = AuditLog(node_id=NODE, directory=tmp_path / "audit", signer=signer)
    for n in range(5):
        accepted(log, f"msg-{n}")
    log.close()

    checked = check_proof(
        prove_message(tmp_path / "audit", "msg-3"), {signer.kid: signer.verify_key()}
    )

    assert [r["seq"] for r in checked.records] == [3]


def test_every_record_of_every_size_checks(heads: Path, keys: dict[str, VerifyKey]) -> None:
    """Each leaf of an 11-leaf tree (odd sizes exercise the unbalanced right edge)."""
    for seq in range(HEAD_SIZES[-1]):
        checked = check_proof(prove_message(heads, f"msg-{seq}"), keys)
        assert [r["seq"] for r in checked.records] == [seq]


# -- inclusion: what check_proof refuses ---------------------------------------------------


def first_record(proof: Proof) -> dict[str, Any]:
    inclusion: dict[str, Any] = proof["inclusions"][0]
    return inclusion


def replace_once(old: str, new: str) -> Tamper:
    def tamper(proof: Proof) -> None:
        record = first_record(proof)["record"]
        assert record.count(old) == 1, "the test must change exactly one place"
        first_record(proof)["record"] = record.replace(old, new)

    return tamper


def flip_hex(text: str) -> str:
    return ("1" if text[0] == "0" else "0") + text[1:]


def set_path(change: Callable[[list[str]], None]) -> Tamper:
    def tamper(proof: Proof) -> None:
        change(first_record(proof)["path"])

    return tamper


def set_head(**changes: Any) -> Tamper:
    def tamper(proof: Proof) -> None:
        proof["tree_head"].update(changes)

    return tamper


def reserialise(proof: Proof) -> None:
    # The same JSON value in other bytes: the leaf is the stored line, not its meaning.
    record = json.loads(first_record(proof)["record"])
    first_record(proof)["record"] = json.dumps(record, separators=(",", ":"))


def other_record_line(proof: Proof) -> None:
    first_record(proof)["record"] = proof["inclusions"][1]["record"]


def other_record_moved_here(proof: Proof) -> None:
    # Record 3 with its own index, but the audit path of record 1.
    first_record(proof)["record"] = proof["inclusions"][1]["record"]
    first_record(proof)["leaf_index"] = proof["inclusions"][1]["leaf_index"]


def change_path_element(path: list[str]) -> None:
    path[1] = flip_hex(path[1])


def remove_path_element(path: list[str]) -> None:
    path.pop()


def add_path_element(path: list[str]) -> None:
    path.append(path[0])


NOT_IN_TREE = r"^inclusions\[0\]: record 1 is not in the signed tree$"
HEAD_CHANGED = r"^the tree head: the tree head differs from what the signature covers$"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        pytest.param(replace_once('"msg-1"', '"msg-7"'), NOT_IN_TREE, id="record-message-id"),
        pytest.param(replace_once('"accepted"', '"acceptee"'), NOT_IN_TREE, id="record-outcome"),
        pytest.param(
            replace_once('"seq": 1', '"seq": 2'),
            r"^inclusions\[0\]: the record's seq is not its leaf index 1$",
            id="record-seq",
        ),
        pytest.param(reserialise, NOT_IN_TREE, id="record-reserialised"),
        pytest.param(
            other_record_line,
            r"^inclusions\[0\]: the record's seq is not its leaf index 1$",
            id="record-swapped",
        ),
        pytest.param(
            other_record_moved_here,
            r"^inclusions\[0\]: record 3 is not in the signed tree$",
            id="record-swapped-with-its-index",
        ),
        pytest.param(
            lambda p: first_record(p).update(leaf_index=2),
            r"^inclusions\[0\]: the record's seq is not its leaf index 2$",
            id="leaf-index",
        ),
        pytest.param(
            lambda p: first_record(p).update(leaf_index="1"),
            r"^inclusions\[0\]: leaf_index is an integer and record a string$",
            id="leaf-index-text",
        ),
        pytest.param(
            lambda p: first_record(p).update(leaf_index=True),
            r"^inclusions\[0\]: leaf_index is an integer and record a string$",
            id="leaf-index-bool",
        ),
        pytest.param(set_path(change_path_element), NOT_IN_TREE, id="path-changed"),
        pytest.param(set_path(remove_path_element), NOT_IN_TREE, id="path-removed"),
        pytest.param(set_path(add_path_element), NOT_IN_TREE, id="path-added"),
        pytest.param(set_path(lambda p: p.clear()), NOT_IN_TREE, id="path-emptied"),
        pytest.param(
            set_path(lambda p: p.__setitem__(0, p[0].upper())),
            r"^inclusions\[0\]\.path: expected at most 64 lowercase hex SHA-256 hashes$",
            id="path-uppercase",
        ),
        pytest.param(
            set_path(lambda p: p.__setitem__(0, "zz" * 32)),
            r"^inclusions\[0\]\.path: not hex$",
            id="path-not-hex",
        ),
        pytest.param(
            set_path(lambda p: p.extend([p[0]] * 65)),
            r"^inclusions\[0\]\.path: expected at most 64 lowercase hex SHA-256 hashes$",
            id="path-too-long",
        ),
        pytest.param(
            lambda p: first_record(p).update(path="abc"),
            r"^inclusions\[0\]\.path must be a list$",
            id="path-not-a-list",
        ),
        pytest.param(
            lambda p: first_record(p).pop("path"),
            r"^inclusions\[0\]: expected leaf_index, record and path$",
            id="inclusion-without-path",
        ),
        pytest.param(
            lambda p: first_record(p).update(note="trust me"),
            r"^inclusions\[0\]: expected leaf_index, record and path$",
            id="inclusion-extra-field",
        ),
        pytest.param(
            lambda p: p.update(inclusions={"0": p["inclusions"][0]}),
            r"^inclusions must be a list$",
            id="inclusions-not-a-list",
        ),
        pytest.param(set_head(size=9), HEAD_CHANGED, id="head-size"),
        pytest.param(set_head(size=7), HEAD_CHANGED, id="head-size-smaller"),
        pytest.param(set_head(root="ab" * 32), HEAD_CHANGED, id="head-root"),
        pytest.param(set_head(node="node-b"), HEAD_CHANGED, id="head-node"),
        pytest.param(set_head(time="2020-01-01T00:00:00Z"), HEAD_CHANGED, id="head-time"),
        pytest.param(
            lambda p: p.pop("signature"),
            r"^the tree head: the signature is not a compact JWS$",
            id="signature-missing",
        ),
        pytest.param(
            lambda p: p.update(signature=p["signature"][:-4] + "AAAA"),
            r"^the tree head: the signature does not verify$",
            id="signature-bytes",
        ),
        pytest.param(
            lambda p: p.update(format="gateway-audit-proof/2"),
            r"^not a gateway-audit-proof/1 document$",
            id="format-tag",
        ),
        pytest.param(
            lambda p: p.pop("format"),
            r"^not a gateway-audit-proof/1 document$",
            id="format-missing",
        ),
        pytest.param(
            lambda p: p.pop("inclusions"),
            r"^the proof holds neither inclusions nor a consistency proof$",
            id="no-claims",
        ),
    ],
)
def test_check_proof_refuses_a_changed_inclusion_proof(
    directory: Path, keys: dict[str, VerifyKey], tamper: Tamper, reason: str
) -> None:
    proof = prove_message(directory, "msg-1")
    check_proof(copy.deepcopy(proof), keys)  # the untouched proof holds
    tamper(proof)

    with pytest.raises(InvalidProof, match=reason) as caught:
        check_proof(proof, keys)

    assert caught.value.code == "invalid-proof"


def test_check_proof_refuses_a_head_changed_and_resigned_with_another_key(
    directory: Path, keys: dict[str, VerifyKey]
) -> None:
    intruder = SignKey.generate(Suite.ED25519)
    proof = prove_message(directory, "msg-1")
    resign(proof, intruder)

    with pytest.raises(InvalidProof, match=r"^the tree head: signed with kid") as caught:
        check_proof(proof, keys)

    assert f"'{intruder.kid}', not an audit key given" in caught.value.detail


def test_check_proof_refuses_another_key_claiming_the_nodes_kid(
    directory: Path, key: SignKey, keys: dict[str, VerifyKey]
) -> None:
    intruder = SignKey.generate(Suite.ED25519)
    proof = prove_message(directory, "msg-1")
    payload = json.dumps(proof["tree_head"], sort_keys=True, separators=(",", ":")).encode()
    header = {"alg": intruder.alg, "kid": key.kid, "typ": HEAD_TYP}
    proof["signature"] = sign_compact(header, payload, intruder).decode()

    with pytest.raises(InvalidProof, match=r"^the tree head: the signature does not verify$"):
        check_proof(proof, keys)


def test_check_proof_refuses_a_signature_made_for_something_else(
    directory: Path, key: SignKey, keys: dict[str, VerifyKey]
) -> None:
    """The node's key signed the same bytes, but not as a tree head (another ``typ``)."""
    proof = prove_message(directory, "msg-1")
    payload = json.dumps(proof["tree_head"], sort_keys=True, separators=(",", ":")).encode()
    header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
    proof["signature"] = sign_compact(header, payload, key).decode()

    with pytest.raises(InvalidProof, match=r"^the tree head: the JWS is not a gateway tree head$"):
        check_proof(proof, keys)


def test_check_proof_refuses_a_good_proof_without_the_nodes_key(directory: Path) -> None:
    stranger = SignKey.generate(Suite.ED25519)
    proof = prove_message(directory, "msg-1")

    with pytest.raises(InvalidProof, match="not an audit key given"):
        check_proof(proof, {stranger.kid: stranger.verify_key()})
    with pytest.raises(InvalidProof, match="not an audit key given"):
        check_proof(proof, {})


def test_check_proof_refuses_records_against_an_older_signed_head(
    directory: Path, keys: dict[str, VerifyKey]
) -> None:
    """Head 0 is genuine, but it covers 5 records: record 5 cannot be in it."""
    older = prove_consistency(directory, 0, 1)["consistency"]
    proof = prove_message(directory, "msg-1")
    proof["tree_head"], proof["signature"] = older["tree_head"], older["signature"]

    with pytest.raises(
        InvalidProof, match=r"^inclusions\[0\]: record 1 is not in the signed tree$"
    ):
        check_proof(proof, keys)


@pytest.mark.parametrize(
    "document",
    [None, [], "gateway-audit-proof/1", 1, [{"format": FORMAT}]],
    ids=["null", "list", "string", "number", "list-of-proof"],
)
def test_check_proof_refuses_what_is_not_a_document(
    document: Any, keys: dict[str, VerifyKey]
) -> None:
    with pytest.raises(InvalidProof, match=f"^not a {FORMAT} document$"):
        check_proof(document, keys)


# -- consistency ---------------------------------------------------------------------------


PAIRS = [(o, n) for n in range(len(HEAD_SIZES)) for o in range(n + 1)]


@pytest.mark.parametrize(("old", "new"), PAIRS, ids=[f"head{o}-head{n}" for o, n in PAIRS])
def test_consistency_between_any_two_heads_checks(
    heads: Path, keys: dict[str, VerifyKey], old: int, new: int
) -> None:
    proof = prove_consistency(heads, old, new)

    assert proof["tree_head"]["head"] == new
    assert proof["consistency"]["tree_head"]["head"] == old
    checked = check_proof(proof, keys)
    assert (checked.size, checked.consistent_from) == (HEAD_SIZES[new], HEAD_SIZES[old])
    assert checked.records == []


def test_consistency_defaults_to_the_newest_head(heads: Path, keys: dict[str, VerifyKey]) -> None:
    proof = prove_consistency(heads, 2)

    assert proof["tree_head"]["head"] == len(HEAD_SIZES) - 1
    assert check_proof(proof, keys).consistent_from == HEAD_SIZES[2]


def older(proof: Proof) -> dict[str, Any]:
    consistency: dict[str, Any] = proof["consistency"]
    return consistency


DOES_NOT_EXTEND = r"^the log at head 6 does not extend the log at head 2$"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        pytest.param(
            lambda p: older(p)["tree_head"].update(root="ab" * 32),
            r"^the older tree head: the tree head differs from what the signature covers$",
            id="old-root",
        ),
        pytest.param(
            lambda p: older(p)["tree_head"].update(size=2),
            r"^the older tree head: the tree head differs from what the signature covers$",
            id="old-size",
        ),
        pytest.param(lambda p: p["tree_head"].update(root="ab" * 32), HEAD_CHANGED, id="new-root"),
        pytest.param(
            lambda p: older(p)["path"].__setitem__(0, flip_hex(older(p)["path"][0])),
            DOES_NOT_EXTEND,
            id="path-changed",
        ),
        pytest.param(lambda p: older(p)["path"].pop(), DOES_NOT_EXTEND, id="path-removed"),
        pytest.param(
            lambda p: older(p)["path"].append(older(p)["path"][0]),
            DOES_NOT_EXTEND,
            id="path-added",
        ),
        pytest.param(lambda p: older(p)["path"].clear(), DOES_NOT_EXTEND, id="path-emptied"),
        pytest.param(
            lambda p: older(p).pop("path"),
            r"^consistency: expected tree_head, signature and path$",
            id="path-missing",
        ),
        pytest.param(
            lambda p: p.update(consistency=[older(p)]),
            r"^consistency: expected tree_head, signature and path$",
            id="not-an-object",
        ),
        pytest.param(
            lambda p: older(p).update(signature=p["signature"]),
            r"^the older tree head: the tree head differs from what the signature covers$",
            id="old-head-with-the-new-signature",
        ),
    ],
)
def test_check_proof_refuses_a_changed_consistency_proof(
    heads: Path, keys: dict[str, VerifyKey], tamper: Tamper, reason: str
) -> None:
    proof = prove_consistency(heads, 2, 6)
    check_proof(copy.deepcopy(proof), keys)
    tamper(proof)

    with pytest.raises(InvalidProof, match=reason):
        check_proof(proof, keys)


@pytest.mark.parametrize("old", [2, 3], ids=["3-records", "4-records-a-power-of-two"])
def test_check_proof_refuses_an_older_head_the_node_signed_for_another_log(
    heads: Path, key: SignKey, keys: dict[str, VerifyKey], old: int
) -> None:
    """The node's own key signs a different root for the old size: a forked log is caught by
    the Merkle check, not by the signature."""
    proof = prove_consistency(heads, old, 6)
    resign(older(proof), key, root="ab" * 32)

    with pytest.raises(
        InvalidProof, match=rf"^the log at head 6 does not extend the log at head {old}$"
    ):
        check_proof(proof, keys)


def test_check_proof_refuses_an_older_head_of_another_node(
    heads: Path, key: SignKey, keys: dict[str, VerifyKey]
) -> None:
    proof = prove_consistency(heads, 2, 6)
    resign(older(proof), key, node="node-b")

    with pytest.raises(InvalidProof, match=r"^the two tree heads are from different nodes$"):
        check_proof(proof, keys)


def test_check_proof_refuses_an_older_head_signed_by_another_key(
    heads: Path, keys: dict[str, VerifyKey]
) -> None:
    intruder = SignKey.generate(Suite.ED25519)
    proof = prove_consistency(heads, 2, 6)
    resign(older(proof), intruder)

    with pytest.raises(InvalidProof, match=r"^the older tree head: signed with kid"):
        check_proof(proof, keys)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (9, None, r"^there is no head 9 in the log \(it holds heads 0 to 6\)$"),
        (0, 9, r"^there is no head 9 in the log \(it holds heads 0 to 6\)$"),
        (-1, None, r"^there is no head -1 in the log"),
        (5, 2, r"^head 5 is not an earlier, non-empty state than head 2$"),
    ],
)
def test_prove_consistency_refuses_heads_it_cannot_relate(
    heads: Path, old: int, new: int | None, reason: str
) -> None:
    with pytest.raises(AuditError, match=reason):
        prove_consistency(heads, old, new)


def test_prove_consistency_needs_a_signed_head(open_log: AuditLog) -> None:
    accepted(open_log, "msg-0")
    assert open_log.directory is not None

    with pytest.raises(AuditError, match=r"^the log has no signed tree head yet$"):
        prove_consistency(open_log.directory, 0)


# -- proving: what prove_message refuses -------------------------------------------------------


def test_prove_message_for_an_unknown_id(directory: Path) -> None:
    with pytest.raises(AuditError, match=r"^no audit record names message msg-9$"):
        prove_message(directory, "msg-9")


def test_prove_message_waits_for_a_signed_head(
    open_log: AuditLog, keys: dict[str, VerifyKey]
) -> None:
    directory = open_log.directory
    assert directory is not None
    accepted(open_log, "msg-0")
    assert open_log.sign_head() is not None
    received(open_log, "message.delivered", "msg-0")  # after the head
    accepted(open_log, "msg-1")

    for message in ("msg-0", "msg-1"):
        with pytest.raises(AuditError, match="not covered by a signed tree head yet"):
            prove_message(directory, message)

    open_log.close()  # signs a head over everything
    assert [r["seq"] for r in check_proof(prove_message(directory, "msg-0"), keys).records] == [
        0,
        1,
    ]


def test_prove_message_uses_the_newest_head_while_newer_records_wait(
    open_log: AuditLog, keys: dict[str, VerifyKey]
) -> None:
    """Records appended after the newest head do not stop proving what that head covers."""
    directory = open_log.directory
    assert directory is not None
    accepted(open_log, "msg-0")
    accepted(open_log, "msg-1")
    assert open_log.sign_head() is not None
    accepted(open_log, "msg-2")

    checked = check_proof(prove_message(directory, "msg-1"), keys)

    assert (checked.size, [r["seq"] for r in checked.records]) == (2, [1])


def test_prove_message_refuses_a_log_that_does_not_match_its_head(directory: Path) -> None:
    segment = segments(directory)[0][1]
    data = segment.read_bytes()
    assert data.count(b'"msg-2"') == 1
    segment.write_bytes(data.replace(b'"msg-2"', b'"msg-8"'))

    with pytest.raises(
        AuditError, match=r"^the log does not match head 1: run gateway audit verify"
    ):
        prove_message(directory, "msg-1")


def test_prove_message_on_a_directory_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="not a directory"):
        prove_message(tmp_path / "nowhere", "msg-1")


@pytest.mark.parametrize("message_id", ['say "hi"', "r\u00e9f\u00e9rence", "back\\slash"])
def test_prove_message_finds_ids_the_json_line_escapes(
    open_log: AuditLog, keys: dict[str, VerifyKey], message_id: str
) -> None:
    """``envelope.rejected`` records carry the ``ce_id`` header of whatever arrived,
    so a message id is not always a UUID."""
    directory = open_log.directory
    assert directory is not None
    open_log.record(
        "envelope.rejected",
        message_id=message_id,
        recipient="socialtreasury",
        reason="malformed",
        detail="not a JWE",
        origin="gw.inbox.socialtreasury/0/7",
        envelope_sha256=digest(b"junk"),
    )
    open_log.close()

    checked = check_proof(prove_message(directory, message_id), keys)

    assert [r["message_id"] for r in checked.records] == [message_id]


# -- after retention ---------------------------------------------------------------------------


RECORDS_AFTER_RETENTION = 30


@pytest.fixture
def pruned(tmp_path: Path, key: SignKey) -> Path:
    """A log that sealed segments of about five records and kept only the newest sealed one."""
    settings = AuditConfig(segment_max_bytes=1500, retain_segments=1)
    log = AuditLog(node_id=NODE, directory=tmp_path / "pruned", signer=key, settings=settings)
    for n in range(RECORDS_AFTER_RETENTION):
        accepted(log, f"msg-{n}")
    log.close()
    return tmp_path / "pruned"


def retained_seqs(directory: Path) -> list[int]:
    return [record["seq"] for _, record in records(directory)]


def stored_heads(directory: Path) -> list[dict[str, Any]]:
    lines = (directory / "heads.jsonl").read_text().splitlines()
    return [json.loads(line)["tree_head"] for line in lines]


def test_retention_really_pruned(pruned: Path) -> None:
    """The premise of the tests below: early records and heads are gone."""
    seqs = retained_seqs(pruned)
    assert seqs == list(range(seqs[0], RECORDS_AFTER_RETENTION))
    assert seqs[0] > 0
    assert stored_heads(pruned)[0]["head"] > 0
    assert stored_heads(pruned)[0]["size"] == seqs[0]
    assert "frontier" in stored_heads(pruned)[0]


def test_retained_records_still_prove(pruned: Path, keys: dict[str, VerifyKey]) -> None:
    for seq in retained_seqs(pruned):
        checked = check_proof(prove_message(pruned, f"msg-{seq}"), keys)
        assert ([r["seq"] for r in checked.records], checked.size) == (
            [seq],
            RECORDS_AFTER_RETENTION,
        )


def test_a_pruned_record_cannot_be_proved(pruned: Path) -> None:
    first = retained_seqs(pruned)[0]

    for seq in (0, first - 1):
        with pytest.raises(
            AuditError,
            match=f"^no audit record names message msg-{seq} "
            rf"\(records before {first} were removed by retention\)$",
        ):
            prove_message(pruned, f"msg-{seq}")


def test_consistency_from_a_retained_head_after_pruning(
    pruned: Path, keys: dict[str, VerifyKey]
) -> None:
    kept = stored_heads(pruned)
    for head in kept[:-1]:
        checked = check_proof(prove_consistency(pruned, head["head"]), keys)
        assert (checked.consistent_from, checked.size) == (head["size"], kept[-1]["size"])


def test_consistency_from_a_pruned_head_fails(pruned: Path) -> None:
    first_kept = stored_heads(pruned)[0]["head"]

    for number in (0, first_kept - 1):
        with pytest.raises(AuditError, match=f"^there is no head {number} in the log"):
            prove_consistency(pruned, number)


def one_record_proof(tmp_path: Path, key: SignKey) -> dict[str, Any]:
    """The proof of the one record of a one-record log."""
    directory = tmp_path / "audit"
    log = AuditLog(node_id="node-a", directory=directory, signer=key)
    log.record("node.started", participants=[], url="x", message_id="m")
    log.close()
    return prove_message(directory, "m")


def test_a_record_that_is_not_valid_text_is_refused(
    tmp_path: Path, keys: dict[str, VerifyKey], key: SignKey
) -> None:
    proof = one_record_proof(tmp_path, key)
    proof["inclusions"][0]["record"] = "\ud800"

    with pytest.raises(InvalidProof, match="not valid text"):
        check_proof(proof, keys)


def test_a_stored_head_that_differs_only_in_json_type_is_refused(
    tmp_path: Path, keys: dict[str, VerifyKey], key: SignKey
) -> None:
    proof = one_record_proof(tmp_path, key)
    proof["tree_head"]["size"] = float(proof["tree_head"]["size"])  # 1.0 == 1 in Python

    with pytest.raises(InvalidProof, match="differs from what the signature covers"):
        check_proof(proof, keys)
