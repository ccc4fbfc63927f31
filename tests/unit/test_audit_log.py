"""AuditLog: what it refuses, how it survives a crash and a restart, what it never writes."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway.audit.log import FORBIDDEN_FIELDS, RESERVED_FIELDS, AuditLog
from gateway.audit.merkle import leaf_hash
from gateway.audit.store import HEADS, ZERO, AuditError, records, segment_name
from gateway.audit.verify import verify
from gateway.config import AuditConfig
from gateway.crypto.jwk import SignKey, Suite, VerifyKey

SMALL = AuditConfig(segment_max_bytes=1500, head_every_records=1000, head_interval_s=3600.0)
"""About four records to a segment; heads only when asked, on a seal and on close."""

Open = Callable[..., AuditLog]


@pytest.fixture(scope="module")
def signer() -> SignKey:
    return SignKey.generate(Suite.ED25519)


@pytest.fixture(scope="module")
def keys(signer: SignKey) -> dict[str, VerifyKey]:
    return {signer.kid: signer.verify_key()}


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "audit"


@pytest.fixture
def open_log(directory: Path, signer: SignKey) -> Iterator[Open]:
    """Open AuditLogs on ``directory``; any left open are closed after the test."""
    opened: list[AuditLog] = []

    def make(settings: AuditConfig = SMALL, where: Path = directory) -> AuditLog:
        log = AuditLog(node_id="node-a", directory=where, signer=signer, settings=settings)
        opened.append(log)
        return log

    yield make
    for log in opened:
        log.close()


def accepted(log: AuditLog, i: int) -> None:
    log.record(
        "message.accepted",
        message_id=f"msg-{i:04d}",
        contract="health.patient-referral@1.0.0",
        sender="minhealth",
        payload_sha256=hashlib.sha256(f"payload {i}".encode()).hexdigest(),
        payload_size=9,
    )


def stored(directory: Path) -> list[dict[str, Any]]:
    return [record for _, record in records(directory)]


def assert_chained(directory: Path) -> None:
    """seq counts from 0 and each prev is the leaf hash of the line before."""
    prev = ZERO
    for seq, (line, record) in enumerate(records(directory)):
        assert (record["seq"], record["prev"]) == (seq, prev), line.where
        prev = leaf_hash(line.raw).hex()


def last_segment(directory: Path) -> Path:
    return sorted(directory.glob("segment-*.jsonl"))[-1]


# -- what record() refuses -----------------------------------------------------------


def test_an_event_outside_the_catalogue_is_refused(open_log: Open, directory: Path) -> None:
    log = open_log()
    with pytest.raises(ValueError, match="not in the audit event catalogue"):
        log.record("message.teleported", message_id="m-1")
    assert log.size == 0
    assert stored(directory) == []


@pytest.mark.parametrize("name", sorted(FORBIDDEN_FIELDS))
def test_secret_fields_are_refused(open_log: Open, directory: Path, name: str) -> None:
    log = open_log()
    with pytest.raises(ValueError, match="never carry"):
        log.record("message.accepted", message_id="m-1", **{name: "secret value"})
    assert log.size == 0
    assert b"secret value" not in last_segment(directory).read_bytes()


def test_the_forbidden_fields_cover_payloads_tokens_and_keys() -> None:
    assert {"payload", "token", "private_key", "passphrase", "secret"} <= FORBIDDEN_FIELDS


@pytest.mark.parametrize("name", sorted(RESERVED_FIELDS - {"event"}))
def test_fields_the_log_sets_itself_are_refused(open_log: Open, name: str) -> None:
    log = open_log()
    with pytest.raises(ValueError, match="set by the audit log itself"):
        log.record("message.accepted", message_id="m-1", **{name: 7})
    assert log.size == 0


def test_an_event_field_cannot_override_the_event_name(open_log: Open) -> None:
    """``event`` is positional-only in record(), so a field of that name reaches the check."""
    log = open_log()
    fields: dict[str, Any] = {"event": "message.rejected"}
    with pytest.raises(ValueError, match="set by the audit log itself"):
        log.record("message.accepted", **fields)
    assert log.size == 0


def test_records_carry_the_payload_digest_never_the_payload(
    open_log: Open, directory: Path, keys: dict[str, VerifyKey]
) -> None:
    plaintext = b'{"patient": "Jane Doe", "diagnosis": "confidential"}'
    log = open_log()
    log.record(
        "message.accepted",
        message_id="m-1",
        payload_sha256=hashlib.sha256(plaintext).hexdigest(),
        payload_size=len(plaintext),
    )
    with pytest.raises(ValueError, match="never carry"):
        log.record("message.accepted", message_id="m-2", payload=plaintext.decode())
    log.close()
    (record,) = stored(directory)
    assert record["payload_sha256"] == hashlib.sha256(plaintext).hexdigest()
    assert (record["event"], record["outcome"], record["node"]) == (
        "message.accepted",
        "accepted",
        "node-a",
    )
    for path in directory.iterdir():
        assert b"Jane Doe" not in path.read_bytes(), path.name
    assert verify(directory, keys).ok


# -- one writer ----------------------------------------------------------------------


def test_a_second_writer_on_the_same_directory_is_refused(open_log: Open) -> None:
    first = open_log()
    with pytest.raises(AuditError, match="in use by another process"):
        open_log()
    accepted(first, 0)  # the first writer is unharmed
    first.close()
    open_log().close()  # and once it is gone, the directory can be opened again


def test_an_audit_log_on_disk_needs_a_signing_key(directory: Path) -> None:
    with pytest.raises(AuditError, match="audit key"):
        AuditLog(node_id="node-a", directory=directory)


def test_a_closed_log_refuses_records(open_log: Open) -> None:
    log = open_log()
    log.close()
    with pytest.raises(AuditError, match="closed"):
        accepted(log, 0)
    assert log.sign_head() is None


# -- heads ----------------------------------------------------------------------------


def test_sign_head_signs_only_when_something_was_appended(open_log: Open, directory: Path) -> None:
    log = open_log()
    assert log.sign_head() is None  # an empty log
    accepted(log, 0)
    accepted(log, 1)
    head = log.sign_head()
    assert head is not None
    assert (head.head.head, head.head.size) == (0, 2)
    assert log.sign_head() is None  # nothing new since
    accepted(log, 2)
    again = log.sign_head()
    assert again is not None
    assert (again.head.head, again.head.size) == (1, 3)
    log.close()  # nothing new: close signs no further head
    assert len((directory / HEADS).read_bytes().splitlines()) == 2


def test_sign_head_if_due_waits_for_the_interval(open_log: Open) -> None:
    log = open_log()
    accepted(log, 0)
    assert log.sign_head_if_due() is None  # an hour has not passed


def test_sign_head_if_due_signs_once_the_interval_passed(directory: Path, signer: SignKey) -> None:
    settings = AuditConfig(segment_max_bytes=1500, head_every_records=1000, head_interval_s=0.0)
    log = AuditLog(node_id="node-a", directory=directory, signer=signer, settings=settings)
    try:
        assert log.sign_head_if_due() is None  # nothing to sign
        accepted(log, 0)
        head = log.sign_head_if_due()
        assert head is not None
        assert head.head.size == 1
        assert log.sign_head_if_due() is None
    finally:
        log.close()


def test_every_listener_sees_the_exact_lines_written(open_log: Open, directory: Path) -> None:
    seen: list[tuple[str, int, bytes]] = []
    log = open_log()
    log.subscribe(lambda kind, number, line: seen.append((kind, number, line)))
    accepted(log, 0)
    accepted(log, 1)
    log.close()
    records = last_segment(directory).read_bytes().splitlines()
    head_line = (directory / HEADS).read_bytes().splitlines()[0]
    assert seen == [("record", 0, records[0]), ("record", 1, records[1]), ("head", 0, head_line)]


# -- restarts -------------------------------------------------------------------------


def test_reopening_after_rotation_continues_seq_and_prev(
    open_log: Open, directory: Path, keys: dict[str, VerifyKey]
) -> None:
    log = open_log()
    for i in range(10):
        accepted(log, i)
    log.close()
    assert len(list(directory.glob("segment-*.jsonl"))) >= 3
    reopened = open_log()
    assert reopened.size == 10
    for i in range(10, 13):
        accepted(reopened, i)
    reopened.close()
    assert [r["seq"] for r in stored(directory)] == list(range(13))
    assert_chained(directory)
    report = verify(directory, keys)
    assert report.ok, report.problems
    assert (report.size, report.signed_size) == (13, 13)


def test_reopening_an_unsigned_tail_continues_it(
    open_log: Open, directory: Path, tmp_path: Path, keys: dict[str, VerifyKey]
) -> None:
    """A node that died before signing: the records are there, the next head covers them."""
    log = open_log()
    accepted(log, 0)
    accepted(log, 1)
    log.sign_head()
    accepted(log, 2)
    # The node dies here: what is on disk is what the next start finds.
    crashed = tmp_path / "crashed"
    shutil.copytree(directory, crashed, ignore=shutil.ignore_patterns(".lock"))
    reopened = open_log(where=crashed)
    assert reopened.size == 3
    accepted(reopened, 3)
    reopened.close()
    assert_chained(crashed)
    report = verify(crashed, keys)
    assert report.ok, report.problems
    assert report.signed_size == 4


def test_a_partial_last_line_is_dropped_and_recorded(
    open_log: Open, directory: Path, keys: dict[str, VerifyKey]
) -> None:
    log = open_log()
    for i in range(6):
        accepted(log, i)
    log.close()
    segment = last_segment(directory)
    partial = b'{"contract": "health.patient-ref'
    kept = segment.read_bytes()
    segment.write_bytes(kept + partial)
    assert not verify(directory, keys).ok  # as found after the crash

    open_log().close()
    *_, recovered = stored(directory)
    assert recovered["event"] == "audit.recovered"
    assert recovered["seq"] == 6
    assert (recovered["segment"], recovered["dropped_bytes"], recovered["dropped_sha256"]) == (
        segment.name,
        len(partial),
        hashlib.sha256(partial).hexdigest(),
    )
    after = segment.read_bytes()
    assert after.endswith(b"\n")
    assert after.splitlines()[:-1] == kept.splitlines()  # the partial line is gone
    assert_chained(directory)
    report = verify(directory, keys)
    assert report.ok, report.problems


def test_a_partial_head_is_dropped_on_reopen(
    open_log: Open, directory: Path, keys: dict[str, VerifyKey]
) -> None:
    log = open_log()
    accepted(log, 0)
    log.close()
    heads = directory / HEADS
    heads.write_bytes(heads.read_bytes() + b'{"signature":"eyJhbGci')
    reopened = open_log()
    accepted(reopened, 1)
    reopened.close()
    numbers = [json.loads(line)["tree_head"]["head"] for line in heads.read_bytes().splitlines()]
    assert numbers == [0, 1]
    assert verify(directory, keys).ok
    [recovered] = [r for r in stored(directory) if r["event"] == "audit.recovered"]
    assert recovered["segment"] == HEADS
    assert recovered["dropped_bytes"] == len(b'{"signature":"eyJhbGci')


def test_a_damaged_log_is_not_resumed(open_log: Open, directory: Path) -> None:
    log = open_log()
    accepted(log, 0)
    accepted(log, 1)
    log.close()
    segment = last_segment(directory)
    lines = segment.read_bytes().splitlines()
    segment.write_bytes(lines[1] + b"\n")  # record 0 is gone
    with pytest.raises(AuditError, match="damaged near record 0"):
        open_log()
    with pytest.raises(AuditError, match="damaged near record 0"):  # not "in use"
        open_log()


# -- no directory ---------------------------------------------------------------------


def test_without_a_directory_events_go_to_the_structured_log_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    log = AuditLog(node_id="node-a")
    with capture_logs() as logs:
        log.record("message.accepted", message_id="m-1", payload_sha256="ab" * 32)
    assert log.sign_head() is None
    assert log.sign_head_if_due() is None
    log.close()
    assert (log.directory, log.size) == (None, 0)
    assert list(tmp_path.iterdir()) == []
    (entry,) = logs
    assert entry["event"] == "message.accepted"
    assert (entry["audit"], entry["message_id"], entry["node"]) == (True, "m-1", "node-a")
    assert "seq" not in entry
    with pytest.raises(ValueError, match="never carry"):
        log.record("message.accepted", token="t")


def test_a_new_segment_is_named_for_its_first_record(open_log: Open, directory: Path) -> None:
    log = open_log()
    for i in range(10):
        accepted(log, i)
    log.close()
    names = sorted(p.name for p in directory.glob("segment-*.jsonl"))
    firsts = [r["seq"] for line, r in records(directory) if line.number == 1]
    assert len(names) > 1
    assert names[: len(firsts)] == [segment_name(seq) for seq in firsts]


def test_secret_fields_are_refused_inside_nested_fields(open_log: Open, directory: Path) -> None:
    log = open_log()
    with pytest.raises(ValueError, match="token"):
        log.record("audit.searched", principal="soc", filters={"token": "gw_x"}, count=0)
    assert log.size == 0


def test_an_interrupted_retention_is_finished_on_reopen(
    open_log: Open, directory: Path, keys: dict[str, VerifyKey]
) -> None:
    """Retention prunes heads first, then segments: a crash in between leaves segments
    no head covers any more. Reopening deletes them, and the log verifies."""
    settings = AuditConfig(segment_max_bytes=1500, retain_segments=1, head_interval_s=3600.0)
    log = open_log(settings)
    for i in range(6):
        accepted(log, i)
    log.close()
    before = sorted(p.name for p in directory.glob("segment-*"))
    spare = directory / "spare"
    spare.mkdir()
    for name in before:
        shutil.copy(directory / name, spare / name)
    log = open_log(settings)
    for i in range(6, 14):  # more rotations: retention prunes the first segments
        accepted(log, i)
    log.close()
    pruned = sorted(p.name for p in directory.glob("segment-*"))
    assert before[0] not in pruned
    # The crash: the heads were pruned, but the old segments came back.
    for name in before:
        if name not in pruned:
            shutil.copy(spare / name, directory / name)
    assert not verify(directory, keys).ok

    open_log(settings).close()

    assert sorted(p.name for p in directory.glob("segment-*")) == pruned
    assert verify(directory, keys).ok


def test_a_failed_write_leaves_no_partial_line(
    open_log: Open, directory: Path, keys: dict[str, VerifyKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log()
    accepted(log, 0)
    segment = directory / segment_name(0)
    size = segment.stat().st_size
    handle = log._segment
    assert handle is not None
    real_write = handle.write
    calls = []

    def half_then_full(data: Any) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(handle, "write", half_then_full)
    with pytest.raises(AuditError, match="No space left on device"):
        accepted(log, 1)
    monkeypatch.undo()

    assert segment.stat().st_size == size
    accepted(log, 1)  # once there is room again, the chain carries on whole
    log.close()
    assert [r["message_id"] for r in stored(directory)] == ["msg-0000", "msg-0001"]
    assert verify(directory, keys).ok


def test_secret_fields_are_refused_inside_lists_of_mappings(open_log: Open) -> None:
    log = open_log()
    with pytest.raises(ValueError, match="private_key"):
        log.record("config.loaded", participants=[{"id": "a", "private_key": "x"}])
    assert log.size == 0


def test_an_oversized_record_is_refused_before_it_is_written(
    open_log: Open, directory: Path
) -> None:
    log = open_log()
    with pytest.raises(ValueError, match="bytes: callers bound their fields"):
        log.record("node.started", participants=["p" * 70_000], url="x")
    accepted(log, 0)
    log.close()
    assert [r["seq"] for r in stored(directory)] == [0]
