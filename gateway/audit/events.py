"""The audit event catalogue: every event name the gateway writes, and what it means.

Names and fields are a public interface (SIEM rules match on them), so they
live in one table: :class:`~gateway.audit.log.AuditLog` refuses a name that is
not here, and ``gateway audit events`` prints the table. Every record also
carries ``seq``, ``prev``, ``event``, ``node`` and ``time``; message events
carry ``message_id``, ``contract`` (``id@version``), ``sender``, ``recipient``
or ``recipients``, ``payload_sha256`` and ``payload_size``, and those of a
message's publish and delivery its W3C ``trace_id``; ``outcome`` is added
from this table. Records never carry payload plaintext, tokens or keys.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    outcome: str
    meaning: str
    fields: tuple[str, ...] = ()


_MESSAGE = ("message_id", "contract", "sender", "payload_sha256", "payload_size")
_RECEIVED = (*_MESSAGE, "recipient")
_PARTICIPANT = ("participant", "by", "serial", "sponsor")

EVENTS: dict[str, Event] = {
    "message.accepted": Event(
        "accepted",
        "a publish was validated, sealed and is durable in Kafka",
        (*_MESSAGE, "recipients", "trace_id"),
    ),
    "message.rejected": Event(
        "rejected",
        "a publish was refused and nothing was sent (reason; JSON pointers of violations)",
        (*_MESSAGE, "reason", "pointers", "pointers_total", "trace_id"),
    ),
    "message.throttled": Event(
        "throttled",
        "a publish was refused over the sender's rate or daily quota (reason rate or quota); "
        "nothing was sent",
        ("sender", "contract", "reason", "retry_after_s", "payload_size"),
    ),
    "message.deduplicated": Event(
        "deduplicated",
        "a publish retried with the same Idempotency-Key was answered with the original "
        "message id; nothing was sent again",
        (*_MESSAGE, "recipients"),
    ),
    "message.delivered": Event(
        "delivered",
        "a verified message was handed to its recipient",
        (*_RECEIVED, "mode", "trace_id"),
    ),
    "message.acknowledged": Event(
        "acknowledged", "the recipient acknowledged a message", (*_RECEIVED, "trace_id")
    ),
    "message.retried": Event(
        "retried", "a delivery attempt failed; it will be tried again", (*_RECEIVED, "attempt")
    ),
    "message.dead_lettered": Event(
        "dead-lettered",
        "an envelope was written to the dead-letter topic with its reason",
        ("message_id", "recipient", "reason", "topic", "attempts", "trace_id"),
    ),
    "message.replayed": Event(
        "replayed",
        "a dead letter was put back into its recipient's inbox, to be checked again (by: who "
        "asked; replayed_from: its place in the dead-letter topic; origin, reason: its refusal)",
        (
            "message_id",
            "recipient",
            "replayed_from",
            "origin",
            "reason",
            "envelope_sha256",
            "by",
        ),
    ),
    "message.released": Event(
        "released",
        "a handed-out message will be handed out again (nack, or the visibility timeout)",
        ("message_id", "recipient", "reason", "handed"),
    ),
    "message.duplicate": Event(
        "suppressed",
        "a message read again (after a crash, a retry or a replay) was settled, not delivered",
        ("message_id", "recipient", "detail", "origin", "envelope_sha256"),
    ),
    "envelope.rejected": Event(
        "rejected",
        "a received envelope failed a check (key, signature, freshness, replay, contract)",
        ("message_id", "recipient", "reason", "detail", "origin", "envelope_sha256"),
    ),
    "auth.failed": Event(
        "denied", "a request carried no valid credential", ("reason", "method", "path", "remote")
    ),
    "access.denied": Event(
        "denied",
        "an authenticated caller asked for what its role does not allow",
        ("principal", "role", "reason", "method", "path"),
    ),
    "request.refused": Event(
        "rejected",
        "an authenticated caller's request was refused as bad input (4xx) before any "
        "other record named it (status, reason: the problem type's code)",
        ("principal", "role", "status", "reason", "method", "path"),
    ),
    "audit.searched": Event(
        "read",
        "an auditor read the audit trail over HTTP (the filters, never the results)",
        ("principal", "filters", "count"),
    ),
    "console.signed_in": Event(
        "signed-in",
        "a token was exchanged for a web console session (the token is never stored)",
        ("principal", "role", "remote"),
    ),
    "console.signed_out": Event(
        "signed-out",
        "a web console session ended: signed out, or its token was removed from the config (why)",
        ("principal", "role", "why"),
    ),
    "contract.registered": Event(
        "registered",
        "a new contract version was registered (over HTTP, or from the registry topic: by)",
        ("contract", "owner", "checked_against", "by"),
    ),
    "participant.approved": Event(
        "approved",
        "a node took a record admitting a participant (its approval)",
        ("participant", "by", "serial", "sponsor"),
    ),
    "participant.suspended": Event("suspended", "a participant was suspended", _PARTICIPANT),
    "participant.reinstated": Event("reinstated", "a participant was reinstated", _PARTICIPANT),
    "participant.revoked": Event("revoked", "a participant was removed for good", _PARTICIPANT),
    "registry.anchor_changed": Event(
        "changed",
        "the trust anchor file changed; every held record was opened again against it",
        ("kids", "dropped"),
    ),
    "registry.refused": Event(
        "refused",
        "a registry record did not hold (signature, signer, serial); the last good one stays",
        ("file", "reason", "detail"),
    ),
    "key.generated": Event(
        "generated", "new keys were created", ("owner", "purpose", "kids", "by")
    ),
    "key.rotated": Event(
        "rotated",
        "keys were replaced; the old ones verify within the overlap",
        ("owner", "kids", "retired", "overlap_s", "by"),
    ),
    "key.revoked": Event(
        "revoked",
        "a signing key was revoked from a time on",
        ("owner", "kid", "revoked_at", "by"),
    ),
    "config.loaded": Event(
        "loaded",
        "the node read its configuration",
        ("config_sha256", "participants", "auditors", "audit_dir", "kafka"),
    ),
    "credentials.reloaded": Event(
        "reloaded",
        "the node took new token digests and client certificate fingerprints (SIGHUP)",
        ("config_sha256", "participants", "auditors", "needs_restart"),
    ),
    "node.started": Event("started", "the node is serving", ("participants", "url")),
    "node.stopped": Event("stopped", "the node shut down"),
    "audit.recovered": Event(
        "recovered",
        "on start, the log dropped an unfinished last line that a crash left",
        ("segment", "dropped_bytes", "dropped_sha256"),
    ),
}
