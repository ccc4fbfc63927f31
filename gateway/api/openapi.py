"""The OpenAPI 3.1 description of the HTTP API, served at ``/openapi.json``.

A test checks that every route the app serves is described here and that
every operation described here is served.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway import __version__
from gateway.cloudevents import SAFE_TOKEN, TRACEPARENT
from gateway.config import DeliveryConfig, GatewayConfig, HttpConfig

_PROBLEM = {"$ref": "#/components/responses/Problem"}


def _problems(*statuses: int) -> dict[str, Any]:
    return {str(status): _PROBLEM for status in statuses}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


_MESSAGE = {
    "type": "object",
    "required": ["tag", "message_id", "sender", "contract", "version", "issued_at", "payload"],
    "properties": {
        "tag": {"type": "string", "description": "Delivery tag to acknowledge."},
        "message_id": {"type": "string"},
        "sender": {"type": "string"},
        "contract": {"type": "string"},
        "version": {"type": "string"},
        "issued_at": {"type": "integer", "description": "Unix time the sender signed it."},
        "correlation_id": {"type": ["string", "null"]},
        "migrated_from": {
            "type": ["string", "null"],
            "description": "The sender's version, when the payload was upgraded to the "
            "version this participant is pinned to.",
        },
        "traceparent": {
            "type": "string",
            "pattern": TRACEPARENT.pattern,
            "description": "W3C trace context of this delivery: the publish's trace id (the "
            "publisher's, when it sent a `traceparent`), a parent id of its own.",
        },
        "payload": {"description": "The exact JSON the sender published."},
    },
}

_EXCHANGE = {
    "type": "object",
    "required": ["message_id", "contract", "recipients", "correlation_id", "reply"],
    "properties": {
        "message_id": {"type": "string"},
        "contract": {"type": "string"},
        "recipients": {"type": "array", "items": {"type": "string"}},
        "correlation_id": {"type": "string", "description": "The request's message id."},
        "reply": {"oneOf": [_MESSAGE, {"type": "null"}]},
    },
}

_STRINGS = {"type": "array", "items": {"type": "string"}}
_SAFE_TOKEN = {"type": "string", "pattern": SAFE_TOKEN.pattern}

_SUMMARY: dict[str, Any] = {
    "type": "object",
    "required": [
        "id",
        "version",
        "title",
        "owner",
        "classification",
        "compatibility",
        "producers",
        "consumers",
    ],
    "properties": {
        "id": {"type": "string"},
        "version": {"type": "string"},
        "title": {"type": "string"},
        "owner": {"type": "string"},
        "classification": {"enum": ["public", "internal", "confidential", "personal"]},
        "compatibility": {"type": "string"},
        "producers": _STRINGS,
        "consumers": _STRINGS,
    },
}

_DETAIL = {
    **_SUMMARY,
    "required": [*_SUMMARY["required"], "schema", "examples"],
    "properties": {
        **_SUMMARY["properties"],
        "description": {"type": "string"},
        "retention": {"type": ["string", "null"]},
        "compatibility_policy": {"enum": ["strict", "lenient"]},
        "consumer_fields": {"type": "object", "additionalProperties": _STRINGS},
        "schema": {
            "type": ["object", "boolean"],
            "description": "JSON Schema 2020-12 of the payload.",
        },
        "examples": {"type": "object"},
        "migration": {"type": ["object", "null"]},
    },
}

_CHANGE = {
    "type": "object",
    "required": ["code", "pointer", "breaks_backward", "breaks_forward", "detail"],
    "properties": {
        "code": {"type": "string"},
        "pointer": {"type": "string"},
        "breaks_backward": {"type": "boolean"},
        "breaks_forward": {"type": "boolean"},
        "detail": {"type": "string"},
    },
}

_REGISTERED = {
    "type": "object",
    "required": ["contract", "registered", "checked_against"],
    "properties": {
        "contract": {"type": "string"},
        "registered": {"type": "boolean"},
        "checked_against": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["version", "backward", "forward", "changes"],
                "properties": {
                    "version": {"type": "string"},
                    "backward": {"type": "boolean"},
                    "forward": {"type": "boolean"},
                    "changes": {"type": "array", "items": _CHANGE},
                },
            },
        },
    },
}

_CONTRACT_ID_PARAM = {
    "name": "contract",
    "in": "path",
    "required": True,
    "description": "Contract id, e.g. health.patient-referral",
    "schema": {"type": "string"},
}

_CONTRACT_PARAM = {
    "name": "contract",
    "in": "path",
    "required": True,
    "description": "Contract id (latest version) or id@version, e.g. health.patient-referral@1.0.0",
    "schema": {"type": "string"},
}

_AUDIT_FILTERS = (
    ("message_id", "Records of this message."),
    (
        "participant",
        "Records naming this principal as sender, recipient, one of recipients, "
        "participant, owner or principal.",
    ),
    ("contract", "A contract id (any version) or id@version (exactly)."),
    ("outcome", "e.g. accepted, rejected, throttled, delivered, acknowledged, denied."),
    ("event", "e.g. message.accepted, auth.failed; see `gateway audit events`."),
)

_TIME = {
    "type": "string",
    "maxLength": 64,
    "anyOf": [{"format": "date-time"}, {"format": "date"}],
    "pattern": "^(?!0000)",
    "description": "RFC 3339, years 0001-9999 (a date alone: midnight UTC).",
    "examples": ["2026-11-26T12:00:00Z", "2026-11-26"],
}

_AUDIT_RECORD = {
    "type": "object",
    "required": ["seq", "prev", "event", "node", "outcome", "time"],
    "properties": {
        "seq": {"type": "integer", "minimum": 0, "description": "Leaf index in the log."},
        "prev": {"type": "string", "description": "Leaf hash of the record before it."},
        "event": {"type": "string"},
        "node": {"type": "string"},
        "outcome": {"type": "string"},
        "time": {"type": "string", "format": "date-time"},
    },
    "additionalProperties": True,
    "description": "The event's own fields as well (message_id, contract, sender, ...).",
}

_AUDIT_PAGE = {
    "type": "object",
    "required": ["records", "count", "next"],
    "properties": {
        "records": {"type": "array", "items": _AUDIT_RECORD},
        "count": {"type": "integer", "minimum": 0},
        "next": {
            "type": ["string", "null"],
            "format": "uri-reference",
            "description": "The next page (this query with `after` set); null when no more.",
        },
    },
}


_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "1-255 visible ASCII characters, unique per publish (e.g. a UUID), as an "
    'RFC 8941 string (`"..."`, as the draft specifies) or bare; a quoted key and the same key '
    "bare are one key. One field per request.",
    "schema": {
        "type": "string",
        "pattern": r'^(?:[!#-~][!-~]{0,254}|"(?:[!#-\[\]-~]|\\["\\]){1,255}")$',
    },
}

_TEXT_OR_NULL = {"type": ["string", "null"]}

_DEAD_LETTER: dict[str, Any] = {
    "type": "object",
    "description": "One entry of a dead-letter topic. The text fields are record headers: "
    "routing metadata anyone with write access to the topic could set. Never the envelope.",
    "required": [
        "partition",
        "offset",
        "message_id",
        "sender",
        "contract",
        "version",
        "reason",
        "detail",
        "node",
        "origin",
        "attempts",
        "replayed_from",
        "time",
        "envelope_size",
        "envelope_sha256",
        "replays",
        "last_replayed",
    ],
    "additionalProperties": False,
    "properties": {
        "partition": {"type": "integer", "minimum": 0},
        "offset": {"type": "integer", "minimum": 0},
        "message_id": {**_TEXT_OR_NULL, "description": "The ce_id header."},
        "sender": {**_TEXT_OR_NULL, "description": "The ce_source header."},
        "contract": {**_TEXT_OR_NULL, "description": "The ce_type header (contract id)."},
        "version": {**_TEXT_OR_NULL, "description": "The version ce_dataschema names."},
        "reason": {
            **_TEXT_OR_NULL,
            "description": "Why it was refused, e.g. unknown-contract, signature-invalid, "
            "expired (the reasons of envelope.rejected in `gateway audit events`).",
        },
        "detail": _TEXT_OR_NULL,
        "node": {**_TEXT_OR_NULL, "description": "The node that refused it."},
        "origin": {
            **_TEXT_OR_NULL,
            "description": "Where it was refused: <inbox topic>/<partition>/<offset>.",
        },
        "attempts": {
            "type": ["integer", "null"],
            "minimum": 0,
            "description": "Delivery attempts before it was given up, where counted.",
        },
        "replayed_from": {
            **_TEXT_OR_NULL,
            "description": "Set on a replayed copy refused again: the entry it was made from.",
        },
        "time": {**_TEXT_OR_NULL, "description": "The ce_time header: when it was published."},
        "envelope_size": {"type": "integer", "minimum": 0},
        "envelope_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "replays": {"type": "integer", "minimum": 0, "description": "Times it was replayed."},
        "last_replayed": {**_TEXT_OR_NULL, "description": "When it was last replayed."},
    },
}

_DLQ_PAGE = {
    "type": "object",
    "required": ["participant", "topic", "entries", "count", "total", "next"],
    "properties": {
        "participant": {"type": "string"},
        "topic": {"type": "string"},
        "entries": {"type": "array", "items": _DEAD_LETTER},
        "count": {"type": "integer", "minimum": 0},
        "total": {
            "type": "integer",
            "minimum": 0,
            "description": "Entries in the topic when it was read.",
        },
        "next": {
            "type": ["string", "null"],
            "format": "uri-reference",
            "description": "The next page (this query with `after` set); null when no more.",
        },
    },
}

_POSITION = {
    "type": "object",
    "required": ["partition", "offset"],
    "additionalProperties": False,
    "properties": {
        "partition": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "offset": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
    },
}

_REPLAY_REQUEST = {
    "oneOf": [
        {
            "type": "object",
            "required": ["offsets"],
            "additionalProperties": False,
            "properties": {
                "offsets": {"type": "array", "minItems": 1, "maxItems": 100, "items": _POSITION}
            },
        },
        {
            "type": "object",
            "required": ["message_ids"],
            "additionalProperties": False,
            "properties": {
                "message_ids": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 100,
                    "items": {"type": "string", "pattern": SAFE_TOKEN.pattern},
                }
            },
        },
        {
            "type": "object",
            "required": ["all"],
            "additionalProperties": False,
            "properties": {"all": {"const": True}},
        },
    ]
}

_REPLAY_RESULT = {
    "type": "object",
    "required": ["replayed", "not_found", "remaining"],
    "properties": {
        "replayed": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["partition", "offset", "message_id", "reason", "replayed_from"],
                "properties": {
                    "partition": {"type": "integer", "minimum": 0},
                    "offset": {"type": "integer", "minimum": 0},
                    "message_id": _TEXT_OR_NULL,
                    "reason": _TEXT_OR_NULL,
                    "replayed_from": {
                        "type": "string",
                        "description": "<dlq topic>/<partition>/<offset>, as the copy's "
                        "gw_replayed_from header says.",
                    },
                },
            },
        },
        "not_found": {
            "type": "array",
            "description": "Offsets and message ids asked for that the topic does not hold.",
            "items": {"oneOf": [_POSITION, {"type": "string"}]},
        },
        "remaining": {
            "type": "integer",
            "minimum": 0,
            "description": "Chosen entries left for another replay (at most 100, and 32 MiB "
            "of envelopes, are taken at once).",
        },
    },
}

_DLQ_PARTICIPANT = {
    "name": "participant",
    "in": "query",
    "required": False,
    "description": "Auditors: whose dead letters to read (required). Participants may "
    "name only themselves.",
    "schema": {"type": "string"},
}

_DLQ_PATHS: dict[str, Any] = {
    "/v1/dlq": {
        "get": {
            "operationId": "listDeadLetters",
            "summary": "A page of the caller's dead letters (auditors: any participant's)",
            "description": (
                "Entries in (partition, offset) order past `after`. A participant reads its "
                "own dead-letter topic; an auditor names a participant hosted on this node. "
                "Follow `next` until it is null. Unknown or repeated parameters are refused. "
                "503 when the topic cannot be read to its end within the Kafka request timeout."
            ),
            "parameters": [
                _DLQ_PARTICIPANT,
                {
                    "name": "after",
                    "in": "query",
                    "required": False,
                    "description": "Cursor PARTITION:OFFSET: only entries past it; from `next`.",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,18}:[0-9]{1,18}$"},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "description": "Most entries in one page.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                },
            ],
            "responses": {
                "200": {"description": "One page of entries.", **_json(_DLQ_PAGE)},
                **_problems(400, 401, 403, 503),
            },
        }
    },
    "/v1/dlq/{partition}/{offset}": {
        "get": {
            "operationId": "getDeadLetter",
            "summary": "One dead letter of the caller (auditors: of any participant)",
            "parameters": [
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "description": "At most 18 digits.",
                    "schema": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
                }
                for name in ("partition", "offset")
            ]
            + [_DLQ_PARTICIPANT],
            "responses": {
                "200": {"description": "The entry.", **_json(_DEAD_LETTER)},
                **_problems(400, 401, 403, 503),
                "404": {
                    **_PROBLEM,
                    "description": "No entry there (type urn:gateway:problem:unknown-dead-letter).",
                },
            },
        }
    },
    "/v1/dlq/replay": {
        "post": {
            "operationId": "replayDeadLetters",
            "summary": "Put dead letters back into the caller's inbox (participants only)",
            "description": (
                "Each chosen entry goes back to the caller's inbox with its original value and "
                "headers (without the gw_* diagnostics) and a gw_replayed_from header, to be "
                "verified and validated again like a new record: delivered if the cause is "
                "gone, dead-lettered again with the new reason if not (a message older than "
                "the node's delivery.max_age_s comes back as expired). `message_ids` takes the "
                "newest entry of each id; `all` every entry not replayed yet. Answered after "
                "the broker acknowledged every copy; each is audited as message.replayed."
            ),
            "requestBody": {"required": True, **_json(_REPLAY_REQUEST)},
            "responses": {
                "200": {"description": "What was replayed.", **_json(_REPLAY_RESULT)},
                **_problems(400, 401, 403, 413, 415, 503),
            },
        }
    },
}


def _query_param(
    name: str, description: str, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string", "minLength": 1, "maxLength": 256},
    }


_PATHS: dict[str, Any] = {
    "/v1/contracts/{contract}/messages": {
        "post": {
            "operationId": "publishMessage",
            "summary": "Publish one message under a contract",
            "description": (
                "Validates the body against the contract, signs it as the caller, encrypts it "
                "to each recipient and answers 202 only after the broker acknowledged every "
                "recipient's record. A caller over its publish rate or daily quota of payload "
                "bytes (`limits` in the node's config) is answered 429 with Retry-After.\n\n"
                "With an `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header), a retry "
                "of a publish that succeeded gets the original 202 answer, with the same "
                "message id and `Idempotent-Replayed: true`, and sends nothing, for "
                "`http.idempotency_window_s` (a day by default) after the success, across node "
                "restarts. The key belongs to the caller; it stands for the contract as given in "
                "the path, the body's bytes, `to`, `X-Ordering-Key` and `X-Correlation-Id` "
                "(not `traceparent`). A refused publish stores nothing: fix it and retry with "
                "the same key. A 503 is no proof that nothing was sent, and a retry that reaches "
                "another node is not recognised."
            ),
            "parameters": [
                _CONTRACT_PARAM,
                {
                    "name": "to",
                    "in": "query",
                    "required": False,
                    "style": "form",
                    "explode": True,
                    "schema": {"type": "array", "items": {"type": "string"}},
                    "description": "Recipients (default: every consumer of the contract).",
                },
                {
                    "name": "X-Ordering-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "pattern": SAFE_TOKEN.pattern},
                },
                {
                    "name": "X-Correlation-Id",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "pattern": SAFE_TOKEN.pattern},
                },
                {
                    "name": "traceparent",
                    "in": "header",
                    "required": False,
                    "description": "W3C trace context, carried to the recipients.",
                    "schema": {"type": "string", "pattern": TRACEPARENT.pattern},
                },
                _IDEMPOTENCY_KEY,
            ],
            "requestBody": {"required": True, **_json({"description": "The payload."})},
            "responses": {
                "202": {
                    "description": "Durable in Kafka for every recipient.",
                    "headers": {
                        "Idempotent-Replayed": {
                            "description": "`true` when this is the stored answer to an "
                            "earlier request with the same Idempotency-Key; nothing was sent.",
                            "schema": {"type": "string", "enum": ["true"]},
                        }
                    },
                    **_json(
                        {
                            "type": "object",
                            "required": ["message_id", "contract", "recipients"],
                            "properties": {
                                "message_id": {"type": "string"},
                                "contract": {"type": "string"},
                                "recipients": {"type": "array", "items": {"type": "string"}},
                            },
                        }
                    ),
                },
                **_problems(400, 401, 403, 404, 413, 415, 503),
                "409": {"$ref": "#/components/responses/IdempotencyKeyInUse"},
                "422": {
                    **_PROBLEM,
                    "description": "The payload breaks the contract (contract-violation), a "
                    "recipient is not allowed (recipient-not-allowed, unknown-recipient), or the "
                    "Idempotency-Key stands for a different request of the caller "
                    "(idempotency-key-reused: send a new key). Nothing was sent.",
                },
                "429": {"$ref": "#/components/responses/Throttled"},
            },
        }
    },
    "/v1/contracts/{contract}/messages:batch": {
        "post": {
            "operationId": "publishBatch",
            "summary": "Publish many messages under one contract, one wait for the broker",
            "description": (
                "Each item is checked, signed, sealed, rate-limited, counted against the quota "
                "and audited as a single publish is; the accepted items are durable in Kafka "
                "when the answer comes. The answer is 200 with one result per item, in order: "
                "`status` 202 with the message id, or the item's problem. An item's payload is "
                "signed as compact JSON. `idempotency_key` makes an item's message id a "
                "function of sender, key and payload, so a retried batch's second copy is "
                "suppressed by receivers."
            ),
            "parameters": [_CONTRACT_PARAM],
            "requestBody": {
                "required": True,
                **_json(
                    {
                        "type": "object",
                        "required": ["messages"],
                        "additionalProperties": False,
                        "properties": {
                            "messages": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "required": ["payload"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "payload": {},
                                        "to": {"type": "array", "items": {"type": "string"}},
                                        "ordering_key": _SAFE_TOKEN,
                                        "correlation_id": _SAFE_TOKEN,
                                        "idempotency_key": _SAFE_TOKEN,
                                    },
                                },
                            }
                        },
                    }
                ),
            },
            "responses": {
                "200": {
                    "description": "One result per item, in order.",
                    **_json(
                        {
                            "type": "object",
                            "required": ["results"],
                            "properties": {
                                "results": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["status"],
                                        "properties": {
                                            "status": {"type": "integer"},
                                            "message_id": {"type": "string"},
                                            "contract": {"type": "string"},
                                            "recipients": {
                                                "type": "array",
                                                "items": {"type": "string"},
                                            },
                                            "problem": {"type": "object"},
                                        },
                                    },
                                }
                            },
                        }
                    ),
                },
                **_problems(400, 401, 403, 404, 413, 415),
            },
        }
    },
    "/v1/contracts/{contract}/requests": {
        "post": {
            "operationId": "sendRequest",
            "summary": "Send a request to one recipient and wait for its reply",
            "description": (
                "For a contract that declares a `response` contract. The request is published "
                "like a message (same checks, limits and 202 guarantee) to the one recipient in "
                "`to`, then the call waits up to `wait` seconds (default 10, at most "
                "`http.max_request_wait_s`) for the reply: 200 with the reply, acknowledged; "
                "or 202 with `reply: null`, and the reply arrives in the caller's inbox later, "
                "its `correlation_id` being the request's message id."
            ),
            "parameters": [
                _CONTRACT_PARAM,
                {
                    "name": "to",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "The one recipient.",
                },
                {
                    "name": "wait",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "number", "minimum": 0},
                },
            ],
            "requestBody": {"required": True, **_json({"description": "The request payload."})},
            "responses": {
                "200": {"description": "The reply came in time.", **_json(_EXCHANGE)},
                "202": {
                    "description": "Sent; no reply within the wait (it will reach the inbox).",
                    **_json(_EXCHANGE),
                },
                **_problems(400, 401, 403, 404, 413, 415, 422, 503),
                "429": {"$ref": "#/components/responses/Throttled"},
            },
        }
    },
    "/v1/messages/{message_id}/reply": {
        "post": {
            "operationId": "sendReply",
            "summary": "Reply to a request the caller received",
            "description": (
                "The body is the reply payload under the response contract the request's "
                "contract declares; it goes to the request's sender with the request's message "
                "id as correlation id. 404 when the caller received no such message lately."
            ),
            "parameters": [
                {"name": "message_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "requestBody": {"required": True, **_json({"description": "The reply payload."})},
            "responses": {
                "202": {
                    "description": "The reply is durable in Kafka.",
                    **_json(
                        {
                            "type": "object",
                            "required": ["message_id", "contract", "recipients", "correlation_id"],
                            "properties": {
                                "message_id": {"type": "string"},
                                "contract": {"type": "string"},
                                "recipients": {"type": "array", "items": {"type": "string"}},
                                "correlation_id": {"type": "string"},
                            },
                        }
                    ),
                },
                **_problems(400, 401, 403, 404, 413, 415, 422, 503),
                "429": {"$ref": "#/components/responses/Throttled"},
            },
        }
    },
    "/v1/contracts": {
        "get": {
            "operationId": "listContracts",
            "summary": "Every contract, its latest version and its version numbers",
            "responses": {
                "200": {
                    "description": "The catalog.",
                    **_json(
                        {
                            "type": "object",
                            "required": ["contracts"],
                            "properties": {
                                "contracts": {
                                    "type": "array",
                                    "items": {
                                        **_SUMMARY,
                                        "required": [*_SUMMARY["required"], "versions"],
                                        "properties": {
                                            **_SUMMARY["properties"],
                                            "versions": _STRINGS,
                                        },
                                    },
                                }
                            },
                        }
                    ),
                },
                **_problems(401),
            },
        }
    },
    "/v1/contracts/{contract}": {
        "get": {
            "operationId": "getContract",
            "summary": "One contract: its latest version and a summary of every version",
            "parameters": [_CONTRACT_ID_PARAM],
            "responses": {
                "200": {
                    "description": "The contract.",
                    **_json(
                        {
                            **_SUMMARY,
                            "required": [*_SUMMARY["required"], "versions"],
                            "properties": {
                                **_SUMMARY["properties"],
                                "versions": {"type": "array", "items": _SUMMARY},
                            },
                        }
                    ),
                },
                **_problems(401, 404),
            },
        }
    },
    "/v1/contracts/{contract}/versions/{version}": {
        "get": {
            "operationId": "getContractVersion",
            "summary": "One contract version with its schema, examples and migration",
            "parameters": [
                _CONTRACT_ID_PARAM,
                {
                    "name": "version",
                    "in": "path",
                    "required": True,
                    "description": "MAJOR.MINOR.PATCH or 'latest'",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": {"description": "The contract version.", **_json(_DETAIL)},
                **_problems(401, 404),
            },
        }
    },
    "/v1/contracts/{contract}/versions": {
        "post": {
            "operationId": "registerContractVersion",
            "summary": "Register a new version (the contract's owner only)",
            "description": (
                "The body is the contract document as JSON (the YAML file format of "
                "contracts/README.md, in JSON). It is checked like `gateway contracts lint` and "
                "against earlier versions under the contract's compatibility mode. In a "
                "cluster (`registry.topic`) the version is first sent to the registry topic, "
                "signed with the owner's key, so that every node registers it; 503 when the "
                "broker did not take it (nothing is registered then)."
            ),
            "parameters": [_CONTRACT_ID_PARAM],
            "requestBody": {"required": True, **_json({"type": "object"})},
            "responses": {
                "201": {"description": "Registered.", **_json(_REGISTERED)},
                "200": {
                    "description": "This exact version was already registered.",
                    **_json(_REGISTERED),
                },
                **_problems(400, 401, 403, 409, 413, 415, 422, 503),
            },
        }
    },
    "/v1/inbox": {
        "get": {
            "operationId": "pullInbox",
            "summary": "Long-poll the caller's inbox for verified messages",
            "parameters": [
                {
                    "name": "max",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1},
                },
                {
                    "name": "wait",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "number", "minimum": 0},
                    "description": "Seconds to wait for a first message.",
                },
            ],
            "responses": {
                "200": {
                    "description": "Messages; acknowledge them by tag.",
                    **_json(
                        {
                            "type": "object",
                            "required": ["messages"],
                            "properties": {"messages": {"type": "array", "items": _MESSAGE}},
                        }
                    ),
                },
                **_problems(400, 401, 403, 409),
            },
        }
    },
    "/v1/inbox/ack": {
        "post": {
            "operationId": "ackInbox",
            "summary": "Acknowledge delivered messages",
            "requestBody": {
                "required": True,
                **_json(
                    {
                        "type": "object",
                        "required": ["tags"],
                        "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
                    }
                ),
            },
            "responses": {
                "200": {
                    "description": "Which tags were acknowledged.",
                    **_json(
                        {
                            "type": "object",
                            "required": ["acknowledged", "unknown"],
                            "properties": {
                                "acknowledged": {"type": "array", "items": {"type": "string"}},
                                "unknown": {"type": "array", "items": {"type": "string"}},
                            },
                        }
                    ),
                },
                **_problems(400, 401, 403, 409, 413, 415),
            },
        }
    },
    "/v1/inbox/nack": {
        "post": {
            "operationId": "nackInbox",
            "summary": "Give messages back, to be handed out again after a delay",
            "description": (
                "For messages the consumer cannot handle now. They are handed out again "
                "after `delay_s` (default 0, at most `delivery.max_nack_delay_s`) with the same "
                "tags. A message neither acknowledged nor given back is handed out again after "
                "`delivery.visibility_timeout_s` (300 s by default)."
            ),
            "requestBody": {
                "required": True,
                **_json(
                    {
                        "type": "object",
                        "required": ["tags"],
                        "properties": {
                            "tags": {"type": "array", "items": {"type": "string"}},
                            "delay_s": {"type": "number", "minimum": 0},
                        },
                    }
                ),
            },
            "responses": {
                "200": {
                    "description": "Which tags were given back.",
                    **_json(
                        {
                            "type": "object",
                            "required": ["released", "unknown"],
                            "properties": {
                                "released": {"type": "array", "items": {"type": "string"}},
                                "unknown": {"type": "array", "items": {"type": "string"}},
                            },
                        }
                    ),
                },
                **_problems(400, 401, 403, 409, 413, 415),
            },
        }
    },
    "/v1/inbox/stream": {
        "get": {
            "operationId": "streamInbox",
            "summary": "The caller's verified messages as server-sent events",
            "description": (
                "`text/event-stream`: each message is an `event: message` whose `id` is its "
                "delivery tag and whose `data` is the message as a pull returns it (a payload "
                "sent with line breaks spans several `data:` lines). A comment line comes every "
                "15 s when nothing does. Acknowledge with POST /v1/inbox/ack; what is not "
                "acknowledged is handed out again after the visibility timeout."
            ),
            "responses": {
                "200": {
                    "description": "The stream, until the client closes it.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                **_problems(401, 403, 409),
            },
        }
    },
    "/v1/audit": {
        "get": {
            "operationId": "searchAudit",
            "summary": "Search the node's audit trail (auditors only)",
            "description": (
                "Requires an auditor's bearer token; a participant's token is refused with 403. "
                "Records come back oldest first; every filter given must match. Follow `next` "
                '(or the `Link: rel="next"` header) until it is null. Unknown or repeated '
                "parameters are refused. The records are as stored: run `gateway audit verify` "
                "on the log before relying on them."
            ),
            "parameters": [
                *(_query_param(name, description) for name, description in _AUDIT_FILTERS),
                _query_param(
                    "since",
                    "Records at or after this RFC 3339 time (Z or an offset required); "
                    "a date alone means midnight UTC.",
                    _TIME,
                ),
                _query_param(
                    "until",
                    "Records before this time (exclusive); as `since`, and later than it "
                    "when both are given (400 otherwise).",
                    _TIME,
                ),
                _query_param(
                    "after",
                    "Cursor: only records with a larger seq; take it from `next`.",
                    {"type": "integer", "minimum": 0},
                ),
                _query_param(
                    "limit",
                    "Most records in one page.",
                    {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                ),
            ],
            "responses": {
                "200": {
                    "description": "One page of matching records.",
                    "headers": {
                        "Link": {
                            "description": 'The next page, rel="next", when there may be one.',
                            "schema": {"type": "string"},
                        }
                    },
                    **_json(_AUDIT_PAGE),
                },
                **_problems(400, 401, 403),
                "404": {
                    **_PROBLEM,
                    "description": "The node keeps no audit log on disk "
                    "(type urn:gateway:problem:no-audit-log).",
                },
            },
        }
    },
    "/v1/inbox/status": {
        "get": {
            "operationId": "inboxStatus",
            "summary": "The caller's inbox now: backlog and lag",
            "responses": {
                "200": {
                    "description": "Counts; `lag` is the records in its topic not yet read.",
                    **_json(
                        {
                            "type": "object",
                            "required": ["participant", "ready", "handed_out", "delayed", "lag"],
                            "properties": {
                                "participant": {"type": "string"},
                                "ready": {"type": "integer"},
                                "handed_out": {"type": "integer"},
                                "delayed": {"type": "integer"},
                                "lag": {"type": "integer"},
                            },
                        }
                    ),
                },
                **_problems(401, 403),
            },
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics: publishes, deliveries, latencies, inbox lag",
            "description": (
                "Prometheus text exposition format 0.0.4. Families: "
                "`gateway_publishes_total{contract,outcome}` (accepted, rejected, refused, "
                "throttled, deduplicated, unavailable), "
                "`gateway_deliveries_total{contract,outcome}` (delivered, acknowledged, "
                "released, dead_lettered, duplicate), "
                "`gateway_validation_failures_total{contract,pointer_class}` (array indices "
                "as `*`; members the contract does not declare as `(undeclared)`), "
                "`gateway_publish_ack_seconds` and `gateway_end_to_end_seconds{contract}` "
                "(histograms), `gateway_inbox_lag{participant}`, "
                "`gateway_dead_letters_total{participant,reason}`, "
                "`gateway_crypto_operations_total{operation}`, and each hosted inbox's "
                "`gateway_inbox_ready`, `_handed_out`, `_delayed` and `_lag`. A contract the "
                "catalog does not know is labelled `unknown`; no label carries payload. "
                "Unauthenticated unless `http.metrics_token_file` is set: then the scraper "
                "sends that token as a bearer token (401 without it). Metrics name the "
                "hosted participants and contracts: without a token, expose the port only "
                "to the monitoring network."
            ),
            "security": [],
            "responses": {
                "200": {
                    "description": "Prometheus text exposition format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **_problems(401),
            },
        }
    },
    "/healthz": {
        "get": {
            "operationId": "health",
            "summary": "Liveness",
            "security": [],
            "responses": {"200": {"description": "The process serves requests."}},
        }
    },
    "/readyz": {
        "get": {
            "operationId": "ready",
            "summary": "Readiness: producer connected and every inbox consuming",
            "security": [],
            "responses": {"200": {"description": "Ready."}, "503": {"description": "Not ready."}},
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1 document."}},
        }
    },
}


_PROBLEM_CONTENT = {
    "application/problem+json": {
        "schema": {
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string", "format": "uri"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "parameter": {
                    "type": "string",
                    "description": "The request parameter at fault.",
                },
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["pointer", "keyword", "message"],
                        "properties": {
                            "pointer": {"type": "string"},
                            "keyword": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        }
    }
}


def openapi_document(config: GatewayConfig | None = None) -> dict[str, Any]:
    """The document, with the limits ``config`` sets (the defaults' without one)."""
    http, delivery = (config.http, config.delivery) if config else (HttpConfig(), DeliveryConfig())
    paths = copy.deepcopy({**_PATHS, **_DLQ_PATHS})
    _apply_limits(paths, http, delivery)
    if http.metrics_token_file is not None:  # the scrape token is a bearer token
        paths["/metrics"]["get"]["security"] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Interagency data-exchange gateway",
            "version": __version__,
            "description": "Contract-checked, signed and encrypted message exchange over Kafka.",
        },
        "security": [{"bearer": []}, {"mutualTLS": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "mutualTLS": {
                    "type": "mutualTLS",
                    "description": "A participant's TLS client certificate, recognised by the "
                    "fingerprint in its node's config (when the node serves HTTPS with "
                    "http.tls_client_ca).",
                },
            },
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem details.",
                    "content": _PROBLEM_CONTENT,
                },
                "IdempotencyKeyInUse": {
                    "description": "A request with the same Idempotency-Key is still in "
                    "progress (type urn:gateway:problem:idempotency-key-in-use); retry after "
                    "Retry-After to get its answer.",
                    "headers": {
                        "Retry-After": {
                            "description": "Whole seconds until a retry may succeed.",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 1},
                        }
                    },
                    "content": _PROBLEM_CONTENT,
                },
                "Throttled": {
                    "description": "The caller is over its publish rate "
                    "(type urn:gateway:problem:rate-limited) or its daily quota of payload bytes "
                    "(type urn:gateway:problem:quota-exceeded, until the next UTC midnight). "
                    "Nothing was sent.",
                    "headers": {
                        "Retry-After": {
                            "description": "Whole seconds, at least 1, until a retry may succeed.",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 1},
                        }
                    },
                    "content": _PROBLEM_CONTENT,
                },
            },
        },
    }


def _apply_limits(paths: dict[str, Any], http: HttpConfig, delivery: DeliveryConfig) -> None:
    """The node's configured bounds, which it refuses with 400 beyond."""

    def query(path: str, name: str) -> dict[str, Any]:
        operation = next(iter(paths[path].values()))
        schema: dict[str, Any] = next(
            p["schema"] for p in operation["parameters"] if p["name"] == name
        )
        return schema

    def body(path: str) -> dict[str, Any]:
        content = paths[path]["post"]["requestBody"]["content"]
        properties: dict[str, Any] = content["application/json"]["schema"]["properties"]
        return properties

    query("/v1/inbox", "max")["maximum"] = http.max_inbox_batch
    query("/v1/inbox", "wait")["maximum"] = http.max_inbox_wait_s
    query("/v1/contracts/{contract}/requests", "wait")["maximum"] = http.max_request_wait_s
    for path in ("/v1/inbox/ack", "/v1/inbox/nack"):
        body(path)["tags"]["maxItems"] = http.max_inbox_batch * 10
    body("/v1/inbox/nack")["delay_s"]["maximum"] = delivery.max_nack_delay_s
