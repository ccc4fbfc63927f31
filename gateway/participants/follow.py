"""A node's view of the registry directory, followed while it runs.

The node loads every record at start and then looks again every
``registry.poll_s``: a new record (an approval, a suspension, a
reinstatement, a revocation) takes effect without a restart. What does not
hold (a bad signature, an unknown signer, an older serial) is refused and
audited, and the node keeps serving with the last good registry: nothing is
ever dropped because a file went bad or away.

    view = RegistryView.open(directory, audit=audit)
    view.admitted("acme-analytics")     # an active record, right now
    view.refresh()                      # from the node's poll task
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway.audit.log import AuditLog
from gateway.audit.store import read_verify_keys
from gateway.crypto.jwk import VerifyKey
from gateway.crypto.keys import PublicKeys
from gateway.participants.registry import (
    ANCHOR_FILE,
    AUTHORITY,
    RECORD_SUFFIX,
    Record,
    RecordRefused,
    Registry,
    Status,
    load_registry,
)

_EVENTS = {
    Status.ACTIVE: "participant.approved",
    Status.SUSPENDED: "participant.suspended",
    Status.REVOKED: "participant.revoked",
}


@dataclass(slots=True)
class RegistryView:
    directory: Path
    anchor: dict[str, VerifyKey]
    audit: AuditLog
    registry: Registry = field(default_factory=Registry)
    _seen: tuple[tuple[str, int, int], ...] = ()
    _reported: set[tuple[str, int, int]] = field(default_factory=set)

    @classmethod
    def open(cls, directory: Path, *, audit: AuditLog) -> RegistryView:
        view = cls(directory, read_verify_keys(directory / ANCHOR_FILE), audit)
        view.refresh()
        return view

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
        return (
            sponsor is not None
            and sponsor.issuer == AUTHORITY
            and sponsor.status is Status.ACTIVE
            and sponsor.participant.keys.verify_key(record.kid) is not None
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

    def refresh(self) -> bool:
        """Take in what changed on disk; True when any record was taken."""
        seen = self._signature()
        if seen == self._seen:
            return False
        self._seen = seen
        fresh, refused = load_registry(self.directory, self.anchor)
        changed = False
        # Sponsors (authority-signed) first, so that their contractors find them.
        for record in sorted(fresh.records(), key=lambda r: (r.issuer != AUTHORITY, r.id)):
            previous = self.registry.get(record.id)
            try:
                taken = self.registry.accept(record)
            except RecordRefused as rollback:
                self._refused(f"{record.id}{RECORD_SUFFIX}", rollback)
                continue
            if taken:
                self._changed(record, previous)
                changed = True
        for name, reason in refused:
            self._refused(name, reason)
        return changed

    def _signature(self) -> tuple[tuple[str, int, int], ...]:
        files = []
        for path in sorted(self.directory.glob(f"*{RECORD_SUFFIX}")):
            try:
                stat = path.stat()
            except OSError:
                continue  # gone between the listing and the look
            files.append((path.name, stat.st_mtime_ns, stat.st_size))
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

    def _refused(self, name: str, exc: RecordRefused) -> None:
        """Audit a refused file once per version of it, not on every look."""
        version = next((v for v in self._seen if v[0] == name), (name, 0, 0))
        if version in self._reported:
            return
        self._reported.add(version)
        self.audit.record("registry.refused", file=name, reason=exc.reason, detail=exc.detail[:300])
