"""``gateway audit ...``: what a security team runs over a node's audit log.

    gateway audit verify PATH [--key AUDIT.jwks.json] [--allow-unsigned]
        [--expect-head HEAD.json] [--json]
    gateway audit prove --id MESSAGE_ID [--dir DIR] [--out FILE]
    gateway audit prove --from-head N [--to-head M] [--dir DIR] [--out FILE]
    gateway audit check-proof PROOF.json --key AUDIT.jwks.json [--json]
    gateway audit search [--dir DIR] [--id ID] [--participant P] [--contract C]
        [--outcome O] [--event E] [--since T] [--until T] [--limit N] [--json]
    gateway audit export [--dir DIR] [filters as for search] [--out FILE]
    gateway audit events [--json]

Exit codes: 0 when everything holds, 1 when the log or proof does not (or on
an error), 2 for unusable input.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from gateway.audit.events import EVENTS
from gateway.audit.proofs import InvalidProof, check_proof, prove_consistency, prove_message
from gateway.audit.search import Query, matching, search
from gateway.audit.store import KEY_FILE, AuditError, SignedHead, open_head, read_verify_keys
from gateway.audit.verify import verify
from gateway.crypto.jwk import VerifyKey

Say = Callable[[str], None]


def verify_command(
    path: Path,
    *,
    key: Path | None,
    allow_unsigned: bool,
    expect: Sequence[Path] = (),
    as_json: bool,
    say: Say,
) -> int:
    """Exit 0 only when every record is chained, every head holds, and every record is
    covered by a signed head (a stopped node signs one last head; for a running node's
    log, ``allow_unsigned`` accepts the records written since its newest head)."""
    if not path.is_dir():
        raise AuditError(f"no audit log at {path}: not a directory")
    key_path = key or path / KEY_FILE
    keys = read_verify_keys(key_path)
    report = verify(path, keys, anchors=[_expected_head(p, keys) for p in expect])
    unsigned = report.ok and not report.whole and not allow_unsigned
    if as_json:
        say(json.dumps({**report.to_json(), "key_from_log": key is None}, indent=2))
        return 0 if report.ok and not unsigned else 1
    say(f"audit log {path}" + (f" (node {report.node})" if report.node else ""))
    if report.size:
        say(f"  records {report.first_seq}..{report.size - 1}: {report.records} checked")
    else:
        say("  no records")
    if report.signed_time:
        say(
            f"  {report.heads} signed heads; the newest covers {report.signed_size} records "
            f"({report.signed_time})"
        )
    if report.unsigned and report.ok:
        say(f"  {report.unsigned} newest records not yet covered by a signed head")
    if key is None:
        say(f"  key: {key_path} (from the log itself; pin the node's key with --key)")
    if unsigned:
        say(
            f"UNSIGNED: records {report.signed_size}..{report.size - 1} are covered by no "
            "signed head, so nothing proves they are the node's (a stopped node signs a last "
            "head; records rewritten after the last head was deleted look like this too). "
            "For a running node's log, pass --allow-unsigned"
        )
        return 1
    if report.ok:
        say("verified: every record and signed head holds")
        return 0
    first, *rest = report.problems
    say(f"TAMPERED: {first.message}")
    for problem in rest[:9]:
        say(f"  also: {problem.message}")
    return 1


def _expected_head(path: Path, keys: dict[str, VerifyKey]) -> SignedHead:
    """A head kept outside the log: one stored head line (as in heads.jsonl or the topic)."""
    try:
        text = _read(path).strip().splitlines()
        return open_head(json.loads(text[-1] if text else ""), keys)
    except (ValueError, RecursionError) as exc:
        raise AuditError(f"{path}: not a signed tree head the key verifies ({exc})") from exc


def prove_command(
    directory: Path,
    *,
    message_id: str | None,
    from_head: int | None,
    to_head: int | None,
    out: Path | None,
    say: Say,
) -> int:
    if message_id is not None:
        proof = prove_message(directory, message_id)
        summary = f"{len(proof['inclusions'])} records of message {message_id}"
    else:
        assert from_head is not None
        proof = prove_consistency(directory, from_head, to_head)
        summary = f"the log at head {from_head} is a prefix of head {proof['tree_head']['head']}"
    text = json.dumps(proof, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        head = proof["tree_head"]
        say(f"wrote {out}: {summary}, against head {head['head']} ({head['size']} records)")
        say(f"check it anywhere with: gateway audit check-proof {out} --key AUDIT.jwks.json")
    return 0


def check_proof_command(proof_path: Path, *, key: Path, as_json: bool, say: Say) -> int:
    keys = read_verify_keys(key)
    try:
        document = json.loads(_read(proof_path))
    except (ValueError, RecursionError):
        say(f"invalid: {proof_path} is not JSON")
        return 1
    try:
        checked = check_proof(document, keys)
    except InvalidProof as exc:
        if as_json:
            say(json.dumps({"valid": False, "reason": exc.detail}))
        else:
            say(f"invalid: {exc.detail}")
        return 1
    if as_json:
        say(json.dumps(checked.to_json(), indent=2))
        return 0
    say(
        f"valid: signed by node {checked.node} (key {checked.kid}) at {checked.time}, "
        f"{checked.size} records"
    )
    for record in checked.records:
        say(f"  record {record.get('seq')}: {record.get('event')} {_brief(record)}")
    if checked.consistent_from is not None:
        say(
            f"  the log of {checked.consistent_from} records is a prefix of this one: "
            "nothing in it was changed or removed"
        )
    return 0


def search_command(directory: Path, query: Query, *, limit: int, as_json: bool, say: Say) -> int:
    page = search(directory, query, limit=limit)
    if as_json:
        say(json.dumps({"records": page.records, "more": page.next_after is not None}, indent=2))
        return 0
    for record in page.records:
        stamp, seq, event = record.get("time", "?"), record.get("seq"), record.get("event", "?")
        say(f"{stamp}  #{seq}  {event:<22} {_brief(record)}")
    more = " (more: raise --limit or narrow the search)" if page.next_after is not None else ""
    say(f"{len(page.records)} records{more}")
    return 0


def export_command(directory: Path, query: Query, *, out: Path | None, say: Say) -> int:
    count = 0
    target: IO[str]
    with out.open("w", encoding="utf-8") if out else _stdout() as target:
        for record in matching(directory, query):
            target.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
            count += 1
    if out is not None:
        say(f"exported {count} records to {out}")
    return 0


def events_command(*, as_json: bool, say: Say) -> int:
    if as_json:
        table = {
            name: {"outcome": e.outcome, "meaning": e.meaning, "fields": list(e.fields)}
            for name, e in EVENTS.items()
        }
        say(json.dumps(table, indent=2))
        return 0
    for name, event in EVENTS.items():
        say(f"{name:<24} {event.outcome:<14} {event.meaning}")
        if event.fields:
            say(f"{'':<24} fields: {', '.join(event.fields)}")
    return 0


_BRIEF = (
    "message_id",
    "contract",
    "sender",
    "recipient",
    "recipients",
    "participant",
    "principal",
    "owner",
    "kid",
    "kids",
    "by",
    "reason",
    "path",
)


def _brief(record: dict[str, Any]) -> str:
    parts = []
    for name in _BRIEF:
        value = record.get(name)
        if value not in (None, "", []):
            shown = ",".join(value) if isinstance(value, list) else str(value)
            parts.append(f"{name}={shown}")
    return " ".join(parts)


def _read(path: Path) -> str:
    return sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")


class _stdout:
    """Standard output as a context manager that does not close it."""

    def __enter__(self) -> IO[str]:
        return sys.stdout

    def __exit__(self, *_: object) -> None:
        sys.stdout.flush()
