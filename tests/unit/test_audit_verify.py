"""verify() on a real log: every kind of tampering is found, and named exactly.

The log has 45 records in segments of 13 (sealed with a checkpoint head at
13, 26 and 39) and a head every 7 records in between; close() signs the
last. Each test damages a copy on disk the way an attacker or a crash would
and checks the *first* problem: its kind and the record or head it names.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.audit.log import AuditLog
from gateway.audit.merkle import leaf_hash
from gateway.audit.store import HEADS, SignedHead, TreeHead, segment_name
from gateway.audit.verify import Problem, verify
from gateway.config import AuditConfig
from gateway.crypto.jwk import SignKey, Suite, VerifyKey

RECORDS = 45
SEGMENT_RECORDS = 13
SEGMENT_BYTES = 5000
"""A record here is a 396-byte line: a segment is sealed after its 13th."""
LAYOUT = AuditConfig(segment_max_bytes=SEGMENT_BYTES, head_every_records=7)

Build = Callable[..., Path]


@pytest.fixture(scope="module")
def signer() -> SignKey:
    return SignKey.generate(Suite.ED25519)


@pytest.fixture(scope="module")
def keys(signer: SignKey) -> dict[str, VerifyKey]:
    return {signer.kid: signer.verify_key()}


@pytest.fixture
def build(tmp_path: Path, signer: SignKey) -> Build:
    """Write a log of ``records`` message.accepted records and close it."""

    def make(records: int = RECORDS, settings: AuditConfig = LAYOUT) -> Path:
        directory = tmp_path / "audit"
        log = AuditLog(node_id="node-a", directory=directory, signer=signer, settings=settings)
        for i in range(records):
            log.record(
                "message.accepted",
                message_id=f"msg-{i:04d}",
                contract="health.patient-referral@1.0.0",
                sender="minhealth",
                payload_sha256=f"{i:064x}",
                payload_size=100 + i,
            )
        log.close()
        return directory

    return make


@pytest.fixture
def log(build: Build) -> Path:
    return build()


# -- reading and damaging the files --------------------------------------------------


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("segment-*.jsonl"))


def read(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def locate(directory: Path, seq: int) -> tuple[Path, int]:
    """The segment holding record ``seq`` and its 0-based line index."""
    path = segment_files(directory)[seq // SEGMENT_RECORDS]
    index = seq % SEGMENT_RECORDS
    assert json.loads(read(path)[index])["seq"] == seq
    return path, index


def where(directory: Path, seq: int, shift: int = 0) -> str:
    path, index = locate(directory, seq)
    return f"{path.name}:{index + 1 + shift}"


def edit(directory: Path, seq: int, change: Callable[[list[bytes], int], None]) -> None:
    path, index = locate(directory, seq)
    lines = read(path)
    change(lines, index)
    write(path, lines)


def remove(lines: list[bytes], i: int) -> None:
    del lines[i]


def render(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True).encode()


def forged(line: bytes) -> bytes:
    """The same record (seq, prev and all) about another message."""
    record = json.loads(line)
    record["message_id"] = "msg-forged"
    return render(record)


def heads(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read(directory / HEADS)]


def first_head_covering(directory: Path, seq: int) -> int:
    return next(
        int(h["tree_head"]["head"]) for h in heads(directory) if h["tree_head"]["size"] > seq
    )


def first_problem(directory: Path, keys: dict[str, VerifyKey]) -> Problem:
    report = verify(directory, keys)
    assert not report.ok, "the tampering went unnoticed"
    return report.problems[0]


def assert_names_record(problem: Problem, kind: str, record: int, place: str) -> None:
    assert (problem.kind, problem.record, problem.where) == (kind, record, place), problem
    assert place in problem.message


# -- the untouched log ---------------------------------------------------------------


def test_the_log_has_the_layout_these_tests_assume(log: Path, keys: dict[str, VerifyKey]) -> None:
    assert [p.name for p in segment_files(log)] == [segment_name(s) for s in (0, 13, 26, 39)]
    signed = [(h["tree_head"]["size"], "frontier" in h["tree_head"]) for h in heads(log)]
    assert signed == [
        (7, False),
        (13, True),
        (20, False),
        (26, True),
        (33, False),
        (39, True),
        (45, False),
    ]
    report = verify(log, keys)
    assert report.ok, report.problems
    assert (report.node, report.records, report.heads) == ("node-a", RECORDS, 7)
    assert (report.signed_size, report.unsigned) == (RECORDS, 0)


def test_unsigned_records_after_the_last_head_are_reported_not_failed(
    tmp_path: Path, signer: SignKey, keys: dict[str, VerifyKey]
) -> None:
    directory = tmp_path / "audit"
    log = AuditLog(node_id="node-a", directory=directory, signer=signer, settings=LAYOUT)
    for i in range(3):
        log.record("message.accepted", message_id=f"msg-{i}")
    report = verify(directory, keys)  # the node still runs: no head yet
    assert report.ok, report.problems
    assert (report.size, report.signed_size, report.unsigned) == (3, 0, 3)
    log.close()
    assert verify(directory, keys).unsigned == 0


def test_a_log_checked_with_another_key_fails_at_the_first_head(log: Path) -> None:
    stranger = SignKey.generate(Suite.ED25519)
    problem = first_problem(log, {stranger.kid: stranger.verify_key()})
    assert (problem.kind, problem.head, problem.where) == ("head-invalid", 0, f"{HEADS}:1")


# -- (a, b) a changed byte -----------------------------------------------------------


@pytest.mark.parametrize(
    "seq",
    [
        pytest.param(17, id="middle"),
        pytest.param(0, id="first-of-log"),
        pytest.param(13, id="first-of-segment"),
        pytest.param(12, id="last-of-sealed-segment"),
        pytest.param(19, id="last-before-a-head"),
        pytest.param(RECORDS - 1, id="last-of-log"),
    ],
)
def test_a_changed_byte_names_the_record(log: Path, keys: dict[str, VerifyKey], seq: int) -> None:
    place = where(log, seq)

    def change(lines: list[bytes], i: int) -> None:
        lines[i] = lines[i].replace(f"msg-{seq:04d}".encode(), f"msg-{seq:04d}".upper().encode())

    edit(log, seq, change)
    assert_names_record(first_problem(log, keys), "record-changed", seq, place)


def test_a_line_that_is_no_longer_json_names_the_record(
    log: Path, keys: dict[str, VerifyKey]
) -> None:
    place = where(log, 17)

    def change(lines: list[bytes], i: int) -> None:
        lines[i] = lines[i][:-1]

    edit(log, 17, change)
    assert_names_record(first_problem(log, keys), "record-changed", 17, place)


# -- (c) a record removed ------------------------------------------------------------


@pytest.mark.parametrize("seq", [pytest.param(17, id="middle"), pytest.param(13, id="first")])
def test_a_removed_record_is_named_where_it_is_missing(
    log: Path, keys: dict[str, VerifyKey], seq: int
) -> None:
    place = where(log, seq)
    edit(log, seq, remove)
    assert_names_record(first_problem(log, keys), "record-missing", seq, place)


def test_a_removed_last_record_of_a_sealed_segment(log: Path, keys: dict[str, VerifyKey]) -> None:
    edit(log, 12, remove)
    problem = first_problem(log, keys)
    assert_names_record(problem, "record-missing", 12, segment_name(13))


def test_a_removed_last_record_of_the_log_is_beyond_the_signed_head(
    log: Path, keys: dict[str, VerifyKey]
) -> None:
    edit(log, RECORDS - 1, remove)
    problem = first_problem(log, keys)
    assert (problem.kind, problem.record, problem.head) == ("head-beyond-log", RECORDS - 1, 6)


# -- (d) a record inserted -----------------------------------------------------------


@pytest.mark.parametrize(
    ("seq", "named", "shift"),
    [
        pytest.param(17, 17, 0, id="middle"),
        pytest.param(25, 25, 0, id="last-of-sealed-segment"),
        # Nothing follows the last line: the second copy is the one out of place.
        pytest.param(RECORDS - 1, RECORDS, 1, id="last-of-log"),
    ],
)
def test_a_duplicated_line_is_named_as_inserted(
    log: Path, keys: dict[str, VerifyKey], seq: int, named: int, shift: int
) -> None:
    place = where(log, seq, shift)
    edit(log, seq, lambda lines, i: lines.insert(i, lines[i]))
    assert_names_record(first_problem(log, keys), "record-inserted", named, place)


@pytest.mark.parametrize(
    "seq",
    [
        pytest.param(17, id="middle"),
        pytest.param(13, id="first-of-segment"),
        pytest.param(19, id="before-a-head"),
        pytest.param(25, id="before-a-seal"),
        pytest.param(RECORDS - 1, id="before-the-last"),
    ],
)
def test_a_forged_record_with_the_right_seq_and_prev_is_named(
    log: Path, keys: dict[str, VerifyKey], seq: int
) -> None:
    """The forgery takes the genuine record's place in the chain; the genuine one
    (or the head that signed it) still links to the genuine line after it."""
    place = where(log, seq)
    edit(log, seq, lambda lines, i: lines.insert(i, forged(lines[i])))
    assert_names_record(first_problem(log, keys), "record-inserted", seq, place)


# -- (e) records reordered ------------------------------------------------------------


@pytest.mark.parametrize(
    "seq",
    [
        pytest.param(17, id="middle"),
        pytest.param(13, id="first-of-segment"),
        pytest.param(24, id="end-of-sealed-segment"),
        pytest.param(RECORDS - 2, id="end-of-log"),
    ],
)
def test_two_swapped_records_are_named_as_moved(
    log: Path, keys: dict[str, VerifyKey], seq: int
) -> None:
    place = where(log, seq)

    def swap(lines: list[bytes], i: int) -> None:
        lines[i], lines[i + 1] = lines[i + 1], lines[i]

    edit(log, seq, swap)
    assert_names_record(first_problem(log, keys), "record-moved", seq, place)


# -- (f) truncation ------------------------------------------------------------------


def test_a_sealed_segment_cut_mid_line(log: Path, keys: dict[str, VerifyKey]) -> None:
    path, index = locate(log, 8)
    lines = read(path)
    path.write_bytes(b"".join(line + b"\n" for line in lines[:index]) + lines[index][:40])
    assert_names_record(first_problem(log, keys), "record-truncated", 8, where(log, 7, 1))


def test_a_sealed_segment_cut_at_a_line_boundary(log: Path, keys: dict[str, VerifyKey]) -> None:
    path, index = locate(log, 9)
    write(path, read(path)[:index])
    problem = first_problem(log, keys)
    assert_names_record(problem, "record-missing", 9, segment_name(13))
    assert "truncated" in problem.message


def test_the_last_segment_cut_at_a_line_boundary_leaves_a_head_beyond_the_log(
    log: Path, keys: dict[str, VerifyKey]
) -> None:
    path, index = locate(log, 42)
    write(path, read(path)[:index])
    problem = first_problem(log, keys)
    assert (problem.kind, problem.record, problem.head) == ("head-beyond-log", 42, 6)
    assert "record 42 and after are missing" in problem.message


def test_the_last_segment_cut_mid_line(log: Path, keys: dict[str, VerifyKey]) -> None:
    path, index = locate(log, 42)
    lines = read(path)
    path.write_bytes(b"".join(line + b"\n" for line in lines[:index]) + lines[index][:40])
    assert_names_record(first_problem(log, keys), "record-truncated", 42, where(log, 41, 1))


# -- (g) tree heads ------------------------------------------------------------------


def edit_head(directory: Path, number: int, change: Callable[[dict[str, Any]], None]) -> None:
    path = directory / HEADS
    lines = read(path)
    entry = json.loads(lines[number])
    assert entry["tree_head"]["head"] == number
    change(entry)
    lines[number] = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    write(path, lines)


def flip_hex(value: str) -> str:
    return ("1" if value[0] != "1" else "2") + value[1:]


def test_a_changed_signed_field_names_the_head(log: Path, keys: dict[str, VerifyKey]) -> None:
    def change(entry: dict[str, Any]) -> None:
        entry["tree_head"]["root"] = flip_hex(entry["tree_head"]["root"])

    edit_head(log, 2, change)
    problem = first_problem(log, keys)
    assert (problem.kind, problem.head, problem.where) == ("head-invalid", 2, f"{HEADS}:3")
    assert "differs from what the signature covers" in problem.message


def test_a_changed_signature_names_the_head(log: Path, keys: dict[str, VerifyKey]) -> None:
    def change(entry: dict[str, Any]) -> None:
        jws = entry["signature"]
        at = len(jws) - 20  # inside the signature, clear of base64url padding bits
        entry["signature"] = jws[:at] + ("A" if jws[at] != "A" else "B") + jws[at + 1 :]

    edit_head(log, 2, change)
    problem = first_problem(log, keys)
    assert (problem.kind, problem.head, problem.where) == ("head-invalid", 2, f"{HEADS}:3")
    assert "does not verify" in problem.message


@pytest.mark.parametrize("number", [2, 0])
def test_a_removed_head_is_named_as_missing(
    log: Path, keys: dict[str, VerifyKey], number: int
) -> None:
    path = log / HEADS
    lines = read(path)
    del lines[number]
    write(path, lines)
    problem = first_problem(log, keys)
    assert (problem.kind, problem.head, problem.where) == (
        "head-missing",
        number,
        f"{HEADS}:{number + 1}",
    )
    assert f"head {number} is missing" in problem.message


def test_a_head_signed_by_another_key_names_the_head(log: Path, keys: dict[str, VerifyKey]) -> None:
    stranger = SignKey.generate(Suite.ED25519)
    path = log / HEADS
    lines = read(path)
    head = TreeHead.from_json(json.loads(lines[2])["tree_head"])
    lines[2] = SignedHead.sign(head, stranger).to_line()
    write(path, lines)
    problem = first_problem(log, keys)
    assert (problem.kind, problem.head, problem.where) == ("head-invalid", 2, f"{HEADS}:3")
    assert stranger.kid in problem.message


# -- (h) a segment file removed ------------------------------------------------------


def test_a_removed_middle_segment(log: Path, keys: dict[str, VerifyKey]) -> None:
    (log / segment_name(13)).unlink()
    problem = first_problem(log, keys)
    assert (problem.kind, problem.record, problem.where) == (
        "segment-missing",
        13,
        segment_name(13),
    )
    assert "records 13..25 are missing" in problem.message


def test_a_removed_first_segment_is_not_mistaken_for_retention(
    log: Path, keys: dict[str, VerifyKey]
) -> None:
    """The checkpoint at 13 would let the rest verify, but heads 0 and 1 are still there:
    retention removes those first."""
    (log / segment_name(0)).unlink()
    problem = first_problem(log, keys)
    assert (problem.kind, problem.record, problem.where) == ("segment-missing", 0, segment_name(0))


def test_a_removed_last_segment(log: Path, keys: dict[str, VerifyKey]) -> None:
    (log / segment_name(39)).unlink()
    problem = first_problem(log, keys)
    assert (problem.kind, problem.record, problem.head) == ("head-beyond-log", 39, 6)


# -- (i) a consistent rewrite of the tail --------------------------------------------


def rewrite_from(directory: Path, k: int) -> None:
    """Change record k and rebuild seq/prev for everything after, as an attacker would."""
    prev = None
    for path in segment_files(directory):
        out = []
        for line in read(path):
            record = json.loads(line)
            if record["seq"] >= k:
                if record["seq"] == k:
                    record["message_id"] = "msg-rewritten"
                record["prev"] = prev
            stored = render(record) if record["seq"] >= k else line
            prev = leaf_hash(stored).hex()
            out.append(stored)
        write(path, out)


@pytest.mark.parametrize("k", [17, 20, 40, 1])
def test_a_rewritten_tail_names_the_first_head_covering_it(
    log: Path, keys: dict[str, VerifyKey], k: int
) -> None:
    expected = first_head_covering(log, k)
    rewrite_from(log, k)
    problem = first_problem(log, keys)
    assert (problem.kind, problem.head, problem.record) == ("head-mismatch", expected, None)
    assert f"head {expected}:" in problem.message


def test_a_rewritten_tail_starting_at_a_heads_last_record_names_that_record(
    log: Path, keys: dict[str, VerifyKey]
) -> None:
    """Only record 19 differs from what head 2 signed: that record is named."""
    place = where(log, 19)
    rewrite_from(log, 19)
    assert_names_record(first_problem(log, keys), "record-changed", 19, place)


# -- retention -----------------------------------------------------------------------


RETAINED = AuditConfig(segment_max_bytes=SEGMENT_BYTES, head_every_records=7, retain_segments=1)


def test_a_log_pruned_by_retention_verifies(build: Build, keys: dict[str, VerifyKey]) -> None:
    log = build(60, RETAINED)
    assert [p.name for p in segment_files(log)] == [segment_name(39), segment_name(52)]
    report = verify(log, keys)
    assert report.ok, report.problems
    assert (report.first_seq, report.size, report.signed_size) == (39, 60, 60)


def test_a_changed_checkpoint_frontier_is_found(build: Build, keys: dict[str, VerifyKey]) -> None:
    """The frontier is signed with the rest of the checkpoint head."""
    log = build(60, RETAINED)
    lines = read(log / HEADS)
    entry = json.loads(lines[0])
    number, frontier = entry["tree_head"]["head"], entry["tree_head"]["frontier"]
    frontier[0] = flip_hex(frontier[0])
    lines[0] = json.dumps(entry).encode()
    write(log / HEADS, lines)
    problem = first_problem(log, keys)
    assert (problem.kind, problem.head, problem.where) == ("head-invalid", number, f"{HEADS}:1")


def test_a_signed_checkpoint_whose_frontier_is_wrong_is_found(
    build: Build, signer: SignKey, keys: dict[str, VerifyKey]
) -> None:
    """A frontier that does not give the head's root (a faulty writer, or a stolen key)."""
    log = build(60, RETAINED)
    lines = read(log / HEADS)
    body = json.loads(lines[0])["tree_head"]
    body["frontier"] = [body["frontier"][-1]] * len(body["frontier"])
    lines[0] = SignedHead.sign(TreeHead.from_json(body), signer).to_line()
    write(log / HEADS, lines)
    problem = first_problem(log, keys)
    assert (problem.kind, problem.head) == ("head-mismatch", body["head"])


def test_a_changed_first_retained_record(build: Build, keys: dict[str, VerifyKey]) -> None:
    log = build(60, RETAINED)
    path = segment_files(log)[0]
    lines = read(path)
    lines[0] = lines[0].replace(b"msg-0039", b"MSG-0039")
    write(path, lines)
    assert_names_record(first_problem(log, keys), "record-changed", 39, f"{path.name}:1")


def test_a_segment_removed_after_retention(build: Build, keys: dict[str, VerifyKey]) -> None:
    log = build(
        60, AuditConfig(segment_max_bytes=SEGMENT_BYTES, head_every_records=7, retain_segments=2)
    )
    assert segment_files(log)[0].name == segment_name(26)
    (log / segment_name(26)).unlink()
    problem = first_problem(log, keys)
    assert (problem.kind, problem.record) == ("segment-missing", 26)
