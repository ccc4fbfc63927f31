"""An AsyncAPI 3.0.0 description of the contract catalog's Kafka traffic.

Contractors can feed it to their own AsyncAPI tooling (viewers, code
generators, linters). It describes the whole federation rather than one
application:

- one channel per participant that consumes any contract: its inbox topic
  ``<prefix>inbox.<participant>`` (channel key ``inbox.<participant>``);
- one message per contract version (key ``<contract-id>_<version>``, since
  ``@`` is not allowed in component keys), listed on the inbox of every
  consumer of that version;
- a ``receive`` operation per inbox (``receive_<participant>``) and a ``send``
  operation per producer and consumer inbox (``send_<producer>_to_<consumer>``)
  listing the contract versions that producer may send to that consumer.
  Participant and contract ids never contain ``_``, so every key is
  unambiguous and matches ``^[a-zA-Z0-9.\\-_]+$``.

What a message describes. On the wire the Kafka value is ``application/jose``:
a compact JWE whose plaintext is a compact JWS over the exact JSON payload.
AsyncAPI has no way to say "this schema describes the plaintext inside the
envelope", so ``contentType`` states the wire format, the description says how
to open it and ``payload`` is the contract's schema, unchanged, describing the
JSON after decryption and signature verification. The Kafka headers
(CloudEvents 1.0 binary mode) are the message ``headers`` schema; the record
key is the Kafka message binding's ``key``.

Payload schema format. Contract schemas are JSON Schema 2020-12, which is not
one of AsyncAPI's schema formats (those are the AsyncAPI Schema Object, a
superset of draft-07, and draft-07 itself). The AsyncAPI 3.0.0 JSON Schema
would accept ``{"schemaFormat": "application/schema+json;version=draft-07",
"schema": ...}`` (the draft-07 meta-schema ignores unknown keywords), but that
label would be false: the schema says ``$schema: .../2020-12/schema`` and
draft-07 tools would silently ignore 2020-12 keywords. So:

- a schema that uses only keywords meaning the same in draft-07 and 2020-12
  (every contract today) is the payload as it is: an AsyncAPI Schema Object
  (the default format, which every AsyncAPI tool understands) that keeps its
  ``$schema`` so a reader still sees the dialect;
- a schema that relies on 2019-09/2020-12 semantics (``prefixItems``,
  ``unevaluatedProperties``, ``dependentRequired``, ``$ref`` with siblings, ...)
  is wrapped as ``{"schemaFormat": "application/schema+json;version=2020-12",
  "schema": ...}``. The spec allows custom formats ("their implementation is
  OPTIONAL"); a tool that does not know it should treat the schema as opaque
  rather than misread it (older ``@asyncapi/parser`` releases report
  "Unknown schema format" instead, which is still better than a silent
  misreading).

A boolean contract schema becomes its object equivalent (``{}`` or
``{"not": {}}``): the spec allows ``true``/``false`` as a Schema Object, but
its official JSON Schema rejects a boolean ``payload``.

A ``$ref`` inside a payload is resolved by AsyncAPI tools against the AsyncAPI
document, not the contract schema; no contract uses one today.

    >>> from pathlib import Path
    >>> from gateway.contracts import load_catalog
    >>> doc = asyncapi_document(load_catalog(Path("contracts")), prefix="test.")
    >>> doc["asyncapi"], doc["channels"]["inbox.minhealth"]["address"]
    ('3.0.0', 'test.inbox.minhealth')
    >>> doc["operations"]["send_minhealth_to_socialtreasury"]["action"]
    'send'
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from gateway import __version__
from gateway.cloudevents import CONTENT_TYPE, SAFE_TOKEN, TRACEPARENT
from gateway.config import GatewayConfig
from gateway.contracts.catalog import ContractCatalog
from gateway.contracts.model import ContractVersion

ASYNCAPI_VERSION = "3.0.0"
JSON_SCHEMA_2020_12 = "application/schema+json;version=2020-12"
KAFKA_BINDING_VERSION = "0.5.0"
DEFAULT_BOOTSTRAP = "localhost:9092"

# Keywords added or redefined after draft-07: a schema using any of them means
# something else (or nothing) to a draft-07 / AsyncAPI Schema Object reader.
_NOT_IN_BOTH = frozenset(
    {
        "$anchor",
        "$dynamicAnchor",
        "$dynamicRef",
        "$recursiveAnchor",
        "$recursiveRef",
        "$vocabulary",
        "contentSchema",
        "dependencies",  # the other way round: draft-07 only, gone from 2020-12
        "dependentRequired",
        "dependentSchemas",
        "maxContains",
        "minContains",
        "prefixItems",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)

_ENVELOPE = (
    "The Kafka record value is a JWE (RFC 7516, compact serialization; ECDH-ES+A256KW over "
    "X25519, A256GCM) encrypted to the recipient. Its plaintext is a JWS (RFC 7515, compact; "
    "EdDSA over Ed25519) by the sender over the exact payload bytes; the JWS protected header "
    "binds message id, sender, recipient, contract, version and issue time. A message's `payload` "
    "schema describes that JSON payload after decryption and signature verification, "
    "not the bytes on the wire. Headers are routing metadata only: trust nothing in them until "
    "the envelope confirms it."
)

_KEY = {
    "type": "string",
    "description": "The publisher's ordering key (X-Ordering-Key), else the message id.",
}


def asyncapi_document(
    catalog: ContractCatalog, *, prefix: str = "gw.", bootstrap: str | None = None
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document (a JSON-ready dict) for every inbox the catalog feeds."""
    contracts = list(catalog)
    topics = GatewayConfig(prefix=prefix)
    consumers = sorted({name for contract in contracts for name in contract.consumers})
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": _info(),
        "defaultContentType": CONTENT_TYPE,
        "servers": {"kafka": _server(bootstrap or DEFAULT_BOOTSTRAP)},
        "channels": {
            channel_id(name): _channel(name, topics.inbox_topic(name), contracts)
            for name in consumers
        },
        "operations": {
            **{receive_id(name): _receive(name, topics, contracts) for name in consumers},
            **_sends(contracts),
        },
        "components": {"messages": {message_id(c): _message(c) for c in contracts}},
    }


def channel_id(participant: str) -> str:
    """Key of a participant's inbox channel, independent of the topic prefix."""
    return f"inbox.{participant}"


def message_id(contract: ContractVersion) -> str:
    """Key of a contract version's message: ``id_version`` (``@`` is not a valid key)."""
    return f"{contract.id}_{contract.version}"


def receive_id(participant: str) -> str:
    return f"receive_{participant}"


def send_id(producer: str, consumer: str) -> str:
    return f"send_{producer}_to_{consumer}"


def _info() -> dict[str, Any]:
    return {
        "title": "Interagency data-exchange gateway: contract messages",
        "version": __version__,
        "description": (
            "Every data contract version that participants exchange through the gateway, "
            "one Kafka inbox topic per receiving participant, with CloudEvents 1.0 headers "
            "in binary mode.\n\n" + _ENVELOPE
        ),
    }


def _server(bootstrap: str) -> dict[str, Any]:
    return {
        "host": bootstrap,
        "protocol": "kafka",
        "description": "Kafka bootstrap servers of the gateway's cluster.",
    }


def _channel(participant: str, topic: str, contracts: list[ContractVersion]) -> dict[str, Any]:
    received = [c for c in contracts if participant in c.consumers]
    return {
        "address": topic,
        "title": f"Inbox of {participant}",
        "description": (
            f"Envelopes addressed to `{participant}`, partitioned by record key. "
            "Kafka ACLs can limit read access to that participant's nodes."
        ),
        "messages": {
            message_id(c): _ref("components", "messages", message_id(c)) for c in received
        },
    }


def _receive(
    participant: str, topics: GatewayConfig, contracts: list[ContractVersion]
) -> dict[str, Any]:
    received = [c for c in contracts if participant in c.consumers]
    group = topics.inbox_topic(participant)  # the gateway's consumer group per participant
    return {
        "action": "receive",
        "title": f"{participant} receives",
        "summary": f"{participant} reads its inbox, verifies each envelope and acknowledges it.",
        "channel": _ref("channels", channel_id(participant)),
        "messages": _channel_messages(participant, received),
        "tags": [{"name": participant}],
        "bindings": {
            "kafka": {
                "groupId": {"type": "string", "enum": [group]},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _sends(contracts: list[ContractVersion]) -> dict[str, Any]:
    pairs = sorted({(p, c) for v in contracts for p in v.producers for c in v.consumers})
    return {send_id(p, c): _send(p, c, contracts) for p, c in pairs}


def _send(producer: str, consumer: str, contracts: list[ContractVersion]) -> dict[str, Any]:
    sent = [c for c in contracts if producer in c.producers and consumer in c.consumers]
    return {
        "action": "send",
        "title": f"{producer} sends to {consumer}",
        "summary": f"{producer} publishes contract messages addressed to {consumer}.",
        "channel": _ref("channels", channel_id(consumer)),
        "messages": _channel_messages(consumer, sent),
        "tags": [{"name": producer}],
    }


def _channel_messages(participant: str, contracts: Iterable[ContractVersion]) -> list[Any]:
    """Operation messages must point into the operation's channel, not at components."""
    return [_ref("channels", channel_id(participant), "messages", message_id(c)) for c in contracts]


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in path)}


def _message(contract: ContractVersion) -> dict[str, Any]:
    return {
        "name": message_id(contract),
        "title": f"{contract.title} ({contract.ref})",
        "summary": f"{contract.ref}, owned by {contract.owner}.",
        "description": _ENVELOPE,
        "contentType": CONTENT_TYPE,
        "headers": _headers(contract),
        "payload": _payload(contract.schema),
        "correlationId": {
            "description": "Set when the sender gave an X-Correlation-Id.",
            "location": "$message.header#/ce_correlationid",
        },
        "bindings": {"kafka": {"key": dict(_KEY), "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def _headers(contract: ContractVersion) -> dict[str, Any]:
    """Kafka headers of a record under ``contract``: CloudEvents 1.0 binary mode."""
    required = {
        "ce_specversion": _text("CloudEvents version.", const="1.0"),
        "ce_id": _text("Message id (UUIDv7).", format="uuid"),
        "ce_source": _text("Sending participant.", enum=sorted(contract.producers)),
        "ce_type": _text("Contract id.", const=contract.id),
        "ce_dataschema": _text("Contract version URI.", const=contract.dataschema),
        "ce_time": _text("When the gateway accepted the message.", format="date-time"),
        "ce_recipient": _text("Receiving participant.", enum=sorted(contract.consumers)),
        "content-type": _text("Media type of the record value.", const=CONTENT_TYPE),
    }
    optional = {
        "ce_correlationid": _text("The sender's correlation id.", pattern=SAFE_TOKEN.pattern),
        "traceparent": _text("W3C trace context.", pattern=TRACEPARENT.pattern),
    }
    return {
        "type": "object",
        "description": "Routing metadata only; the signed envelope is authoritative.",
        "required": list(required),
        "properties": {**required, **optional},
    }


def _text(description: str, **constraint: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **constraint}


def _payload(schema: Mapping[str, Any] | bool) -> Any:
    """The contract schema as-is; tagged as 2020-12 if a draft-07 reader would misread it."""
    if isinstance(schema, bool):  # the AsyncAPI 3.0.0 JSON Schema rejects a boolean payload
        return {} if schema else {"not": {}}
    copied = copy.deepcopy(dict(schema))  # the document is the caller's to change
    if _reads_as_draft_07(copied):
        return copied
    return {"schemaFormat": JSON_SCHEMA_2020_12, "schema": copied}


def _reads_as_draft_07(node: Any) -> bool:
    """Conservative: any key that looks like a post-draft-07 keyword counts, wherever it is."""
    if isinstance(node, list):
        return all(_reads_as_draft_07(item) for item in node)
    if not isinstance(node, Mapping):
        return True
    if node.keys() & _NOT_IN_BOTH or ("$ref" in node and len(node) > 1):
        return False
    if isinstance(node.get("items"), list):  # tuple form: prefixItems in 2020-12
        return False
    return all(_reads_as_draft_07(value) for value in node.values())
