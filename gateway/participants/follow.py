"""A node's view of the registry, followed while it runs.

Records come from one of two places:

- the registry directory (the embedded default): the node loads every record
  file at start and looks again every ``registry.poll_s``;
- the compacted ``<prefix>registry`` topic (``registry.topic: true``, for
  clusters): :mod:`gateway.participants.topic` reads it from the beginning
  before the node serves, then follows it and hands each record to
  :meth:`RegistryView.take`.

Either way a new record (an approval, a suspension, a reinstatement, a
revocation) takes effect without a restart. What does not hold (a bad
signature, an unknown signer, an older serial) is refused and audited, and the
node keeps serving with the last good registry: nothing is ever dropped
because a file went bad or away. The trust anchor (``authority.jwks.json``)
is looked at on every poll too: when it changes, every held record is opened
again against it, and those that no longer chain to it are dropped.

    view = RegistryView.open(directory, audit=audit)
    view.admitted("acme-analytics")     # an active record, right now
    view.refresh()                      # from the node's poll task
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from gateway.audit.log import AuditLog
from gateway.audit.store import read_verify_keys
from gateway.contracts.model import ContractVersion
from gateway.crypto.jwk import VerifyKey
from gateway.crypto.keys import PublicKeys, write_atomically
from gateway.errors import InputError, KeyStoreError
from gateway.jsonparse import parse_json
from gateway.participants.contract_records import KEY_PREFIX as CONTRACT_KEY_PREFIX
from gateway.participants.contract_records import ContractIntake, open_contract
from gateway.participants.document import Role
from gateway.participants.registry import (
    ANCHOR_FILE,
    AUTHORITY,
    MAX_DEPTH,
    RECORD_SUFFIX,
    Record,
    RecordRefused,
    Registry,
    Status,
    load_registry,
    open_record,
    record_kind,
)

_EVENTS = {
    Status.ACTIVE: "participant.approved",
    Status.SUSPENDED: "participant.suspended",
    Status.REVOKED: "participant.revoked",
}

log = structlog.get_logger("gateway.registry")

_MAX_BUNDLE = 2 * 1024 * 1024
_MAX_REPORTED = 10_000
_Version = tuple[str, int, int]
"""A file's name, modification time and size: what tells one version from the next."""


@dataclass(slots=True)
class RegistryView:
    directory: Path
    anchor: dict[str, VerifyKey]
    audit: AuditLog
    files: bool = True
    """Read record files from the directory (False: they come from the topic)."""
    contracts: ContractIntake | None = None
    """Where contract records from the topic are registered (the node's catalog)."""
    state: Path | None = None
    """Where the records held are kept across restarts (``<state_dir>/registry.json``):
    the serials a node has seen stay its floor, whatever a topic or directory says
    after a restart, so a rollback cannot wait for one."""
    registry: Registry = field(default_factory=Registry)
    _seen: tuple[_Version, ...] = ()
    _anchor_seen: _Version | None = None
    _reported: set[_Version] = field(default_factory=set)
    _held_back: dict[str, tuple[Record, Record | None]] | None = None

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        audit: AuditLog,
        files: bool = True,
        contracts: ContractIntake | None = None,
        state: Path | None = None,
    ) -> RegistryView:
        anchor = read_verify_keys(directory / ANCHOR_FILE)
        view = cls(directory, anchor, audit, files, contracts, state)
        view._anchor_seen = _version(directory / ANCHOR_FILE)
        with view.catching_up():
            view._restore()
            view.refresh()
        return view

    # -- what the rest of the node asks ----------------------------------------------

    def admitted(self, participant: str) -> bool:
        """An active record, signed by the authority or by a sponsor that is itself
        admitted now and still lists the signing key (a sponsor's suspension reaches
        what it signed at once)."""
        record = self.registry.get(participant)
        if record is None or record.status is not Status.ACTIVE:
            return False
        if record.issuer == AUTHORITY:
            return True
        sponsor = self.registry.get(record.issuer)
        if sponsor is None or sponsor.issuer != AUTHORITY or sponsor.status is not Status.ACTIVE:
            return False
        key = sponsor.participant.keys.verify_key(record.kid)
        return key is not None and key.signed_in_time(record.issued_at)

    def entitled(self, participant: str, contract: ContractVersion, role: Role) -> bool:
        """Admitted, and its record asks for ``contract`` in ``role`` over a version range
        that admits this version: what a sponsor approved, not more."""
        return self.admitted(participant) and self.asks(participant, contract, role)

    def asks(self, participant: str, contract: ContractVersion, role: Role) -> bool:
        """Its record (whatever its status) asks for this contract version in this role."""
        record = self.registry.get(participant)
        return record is not None and any(
            request.contract == contract.id
            and request.role is role
            and request.versions.admits(contract.version)
            for request in record.participant.contracts
        )

    def public_keys(self, participant: str) -> PublicKeys | None:
        """The keys an admitted participant's record lists; None for anyone else."""
        record = self.registry.get(participant)
        if record is None or not self.admitted(participant):
            return None
        return record.participant.keys

    def status(self, participant: str) -> Status | None:
        record = self.registry.get(participant)
        return record.status if record is not None else None

    # -- taking records in -------------------------------------------------------------

    def refresh(self) -> bool:
        """Take in what changed on disk (the anchor, and record files unless they come
        from the topic); True when anything was taken or dropped."""
        changed = self._check_anchor()
        if not self.files:
            return changed
        seen = self._signature()
        if seen == self._seen:
            return changed
        self._seen = seen
        fresh, refused = load_registry(self.directory, self.anchor)
        # Sponsors (authority-signed) first, so that their contractors find them.
        for record in sorted(fresh.records(), key=lambda r: (r.issuer != AUTHORITY, r.id)):
            changed = self._accept(record, f"{record.id}{RECORD_SUFFIX}") or changed
        for name, reason in refused:
            self._refused(name, reason)
        return changed

    def take(self, value: bytes, origin: str, key: bytes | None = None) -> bool:
        """One record bundle as it came from the registry topic; ``origin`` (topic,
        partition and offset) names it in a ``registry.refused`` audit record, and
        ``key`` (the Kafka record key) must be the record's own: a record stored under
        another participant's key could push that participant's newest record out of
        the compacted topic.

        A contractor's record may arrive before its sponsor's: the sponsor's record in
        its chain (the authority signed it) is taken first, and any newer record of the
        sponsor still wins by its serial."""
        try:
            bundle = parse_json(value, max_bytes=_MAX_BUNDLE, max_depth=MAX_DEPTH)
        except InputError as exc:
            self._refused(
                origin, RecordRefused("malformed", f"not a registry record: {exc.detail}")
            )
            return False
        if record_kind(bundle) == "contract":
            return self._take_contract(bundle, origin, key)
        try:
            record = open_record(bundle, self.anchor)
            _check_key(key, record.id.encode())
        except RecordRefused as exc:
            self._refused(origin, exc)
            return False
        if record.issuer != AUTHORITY and self.registry.get(record.issuer) is None:
            sponsor = open_record({"record": record.chain[0], "chain": []}, self.anchor)
            self._accept(sponsor, f"{origin} (chain)")
        return self._accept(record, origin)

    def _take_contract(self, bundle: object, origin: str, key: bytes | None) -> bool:
        if self.contracts is None:
            return False  # a view without a catalog to feed (tools, tests)
        try:
            record = open_contract(bundle, self.anchor, self.registry)
            _check_key(key, f"{CONTRACT_KEY_PREFIX}{record.contract.ref}".encode())
            return self.contracts.take(record)
        except RecordRefused as exc:
            self._refused(origin, exc)
            return False

    @contextlib.contextmanager
    def catching_up(self) -> Iterator[None]:
        """Read a backlog (a topic from its start) without auditing every historical
        step: each participant's change over the whole backlog is audited once, at the
        end, as the node then holds it. Refusals are still audited as they come."""
        outer = self._held_back is None
        if outer:
            self._held_back = {}
        try:
            yield
        finally:
            if outer:
                held, self._held_back = self._held_back or {}, None
                for record, previous in held.values():
                    if previous is None or previous.jws != record.jws:
                        self._changed(record, previous)
                if held:
                    self._save()

    def _accept(self, record: Record, name: str) -> bool:
        previous = self.registry.get(record.id)
        try:
            taken = self.registry.accept(record)
        except RecordRefused as exc:
            self._refused(name, exc)
            return False
        if taken:
            if self._held_back is not None:
                first = self._held_back.get(record.id, (record, previous))[1]
                self._held_back[record.id] = (record, first)
            else:
                self._changed(record, previous)
                self._save()
        return taken

    def _restore(self) -> None:
        """Take the records held before the last stop (each opened again, against the
        anchor of today); a missing or unreadable file is a node's first start."""
        if self.state is None or not self.state.is_file():
            return
        try:
            saved = parse_json(
                self.state.read_bytes(), max_bytes=64 * 1024 * 1024, max_depth=MAX_DEPTH + 2
            )
        except (OSError, InputError) as exc:
            self._refused(self.state.name, RecordRefused("malformed", str(exc)[:200]))
            return
        bundles = saved.get("records", []) if isinstance(saved, dict) else []
        opened = []
        for bundle in bundles:
            try:
                opened.append(open_record(bundle, self.anchor))
            except RecordRefused as exc:
                self._refused(f"{self.state.name} (held)", exc)
        for record in sorted(opened, key=lambda r: r.issuer != AUTHORITY):
            self._accept(record, f"{self.state.name} ({record.id})")

    def _save(self) -> None:
        if self.state is None:
            return
        records = [r.bundle() for r in self.registry.records()]
        data = json.dumps({"records": records}, separators=(",", ":")).encode()
        try:
            write_atomically(self.state, data)
        except OSError as exc:  # the floor is lost for the next start, not the registry now
            log.error("registry_state_not_saved", path=str(self.state), error=exc.strerror)

    def _check_anchor(self) -> bool:
        """A changed trust anchor: open every held record again against the new one."""
        path = self.directory / ANCHOR_FILE
        version = _version(path)
        if version == self._anchor_seen:
            return False
        self._anchor_seen = version
        try:
            anchor = read_verify_keys(path)
        except KeyStoreError as exc:  # a half-copied or removed file: keep the old anchor
            self._refused(ANCHOR_FILE, RecordRefused("malformed", exc.detail), version)
            return False
        if _jwks(anchor) == _jwks(self.anchor):  # a revocation keeps the kid: compare all
            return False
        self.anchor = anchor
        kept, dropped = Registry(), []
        for record in sorted(self.registry.records(), key=lambda r: r.issuer != AUTHORITY):
            try:
                kept.accept(open_record(record.bundle(), anchor))
            except RecordRefused as exc:
                dropped.append(record.id)
                self._refused(f"{record.id} (serial {record.serial}, held)", exc)
        self.registry = kept
        self._save()
        self._seen = ()  # files once refused may hold under the new anchor
        self.audit.record("registry.anchor_changed", kids=sorted(anchor), dropped=dropped)
        return True

    def _signature(self) -> tuple[_Version, ...]:
        files = []
        for path in sorted(self.directory.glob(f"*{RECORD_SUFFIX}")):
            version = _version(path)
            if version is not None:  # else gone between the listing and the look
                files.append(version)
        return tuple(files)

    def _changed(self, record: Record, previous: Record | None) -> None:
        event = _EVENTS[record.status]
        if (
            previous is not None
            and previous.status is Status.SUSPENDED
            and event.endswith("approved")
        ):
            event = "participant.reinstated"
        self.audit.record(
            event,
            participant=record.id,
            by=record.issuer,
            serial=record.serial,
            sponsor=record.participant.sponsor,
        )

    def _refused(self, name: str, exc: RecordRefused, version: _Version | None = None) -> None:
        """Audit a refused file once per version of it, not on every look."""
        version = version or next((v for v in self._seen if v[0] == name), (name, 0, 0))
        if version in self._reported:
            return
        if len(self._reported) >= _MAX_REPORTED:  # a flood of bad records: bounded memory
            self._reported.clear()
        self._reported.add(version)
        self.audit.record("registry.refused", file=name, reason=exc.reason, detail=exc.detail[:300])


def _check_key(key: bytes | None, expected: bytes) -> None:
    if key is not None and key != expected:
        raise RecordRefused(
            "wrong-key", f"stored under key {key[:80]!r}, not {expected.decode()!r}"
        )


def _jwks(anchor: dict[str, VerifyKey]) -> list[dict[str, object]]:
    return [anchor[kid].to_jwk() for kid in sorted(anchor)]


def _version(path: Path) -> _Version | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (path.name, stat.st_mtime_ns, stat.st_size)
