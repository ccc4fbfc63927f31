"""The OpenAPI 3.1 description of the HTTP API, served at ``/openapi.json``.

A test checks that every route the app serves is described here and that
every operation described here is served.
"""

from __future__ import annotations

from typing import Any

from gateway import __version__

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
        "payload": {"description": "The exact JSON the sender published."},
    },
}

_CONTRACT = {
    "type": "object",
    "required": ["id", "version", "title", "owner", "producers", "consumers"],
    "properties": {
        "id": {"type": "string"},
        "version": {"type": "string"},
        "title": {"type": "string"},
        "owner": {"type": "string"},
        "producers": {"type": "array", "items": {"type": "string"}},
        "consumers": {"type": "array", "items": {"type": "string"}},
        "schema": {"type": "object", "description": "JSON Schema 2020-12 of the payload."},
    },
}

_CONTRACT_PARAM = {
    "name": "contract",
    "in": "path",
    "required": True,
    "description": "Contract id (latest version) or id@version, e.g. health.patient-referral@1.0.0",
    "schema": {"type": "string"},
}

_PATHS: dict[str, Any] = {
    "/v1/contracts/{contract}/messages": {
        "post": {
            "operationId": "publishMessage",
            "summary": "Publish one message under a contract",
            "description": (
                "Validates the body against the contract, signs it as the caller, encrypts it "
                "to each recipient and answers 202 only after the broker acknowledged every "
                "recipient's record."
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
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:/@+=-]{1,128}$"},
                },
                {
                    "name": "X-Correlation-Id",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:/@+=-]{1,128}$"},
                },
                {
                    "name": "traceparent",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                },
            ],
            "requestBody": {"required": True, **_json({"description": "The payload."})},
            "responses": {
                "202": {
                    "description": "Durable in Kafka for every recipient.",
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
                **_problems(400, 401, 403, 404, 413, 415, 422, 503),
            },
        }
    },
    "/v1/contracts": {
        "get": {
            "operationId": "listContracts",
            "summary": "Every contract version this node knows",
            "responses": {
                "200": {
                    "description": "The catalog.",
                    **_json(
                        {
                            "type": "object",
                            "required": ["contracts"],
                            "properties": {"contracts": {"type": "array", "items": _CONTRACT}},
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
            "summary": "One contract version with its schema",
            "parameters": [_CONTRACT_PARAM],
            "responses": {
                "200": {"description": "The contract.", **_json(_CONTRACT)},
                **_problems(401, 404),
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
                **_problems(400, 401, 403),
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
                **_problems(400, 401, 403, 413, 415),
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


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Interagency data-exchange gateway",
            "version": __version__,
            "description": "Contract-checked, signed and encrypted message exchange over Kafka.",
        },
        "security": [{"bearer": []}],
        "paths": _PATHS,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Problem": {
                    "description": "RFC 9457 problem details.",
                    "content": {
                        "application/problem+json": {
                            "schema": {
                                "type": "object",
                                "required": ["type", "title", "status", "detail"],
                                "properties": {
                                    "type": {"type": "string", "format": "uri"},
                                    "title": {"type": "string"},
                                    "status": {"type": "integer"},
                                    "detail": {"type": "string"},
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
                    },
                }
            },
        },
    }
