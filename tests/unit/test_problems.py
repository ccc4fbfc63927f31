"""RFC 9457 problem details and the mapping of errors to HTTP status."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway import errors
from gateway.api.problems import PROBLEM_JSON, problem, problem_middleware, status_of

MISSING = "required member is missing"


class NewContractProblem(errors.ContractError):
    code = "new-contract-problem"


class NewUnknownContract(errors.UnknownContract):
    code = "new-unknown-contract"


class NewInputProblem(errors.MalformedJSON):
    code = "new-input-problem"


class NewAuthProblem(errors.AuthError):
    code = "new-auth-problem"


def body_of(response: web.Response) -> dict[str, Any]:
    assert response.text is not None
    body: dict[str, Any] = json.loads(response.text)
    return body


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.InputError("x"), 400),
        (errors.MalformedJSON("x"), 400),
        (errors.InvalidParameter("limit", "x"), 400),
        (errors.IdempotencyKeyReused("x"), 422),
        (errors.IdempotencyKeyInUse("x"), 409),
        (errors.PayloadTooLarge("x"), 413),
        (errors.UnsupportedMediaType("x"), 415),
        (errors.ContractError("x"), 422),
        (errors.UnknownContract("x"), 404),
        (errors.InvalidContract("x"), 422),
        (errors.ContractViolation("x", []), 422),
        (errors.RecipientNotAllowed("x"), 422),
        (errors.UnknownRecipient("x"), 422),
        (errors.AuthError("x"), 403),
        (errors.Unauthenticated("x"), 401),
        (errors.Forbidden("x"), 403),
        (errors.VerificationError(errors.RejectReason.MALFORMED, "x"), 422),
        (errors.TransportError("x"), 503),
        (errors.ConfigError("x"), 500),
        (errors.KeyStoreError("x"), 500),
        (errors.GatewayError("x"), 500),
        (NewContractProblem("x"), 422),
        (NewUnknownContract("x"), 404),
        (NewInputProblem("x"), 400),
        (NewAuthProblem("x"), 403),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_status_of_walks_the_class_hierarchy(error: errors.GatewayError, status: int) -> None:
    assert status_of(error) == status


def test_problem_document() -> None:
    response = problem(422, "contract-violation", "Payload violates", "in 1 place", errors=[])

    assert response.status == 422
    assert response.content_type == PROBLEM_JSON == "application/problem+json"
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert body_of(response) == {
        "type": "urn:gateway:problem:contract-violation",
        "title": "Payload violates",
        "status": 422,
        "detail": "in 1 place",
        "errors": [],
    }


async def respond(handler_error: BaseException | None) -> web.Response:
    """Run the middleware around a handler that raises ``handler_error`` (or answers 200)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if handler_error is not None:
            raise handler_error
        return web.Response(text="ok")

    response = await problem_middleware(make_mocked_request("POST", "/v1/messages"), handler)
    assert isinstance(response, web.Response)
    return response


async def test_successful_response_passes_through() -> None:
    response = await respond(None)

    assert (response.status, response.text) == (200, "ok")


@pytest.mark.parametrize(
    ("error", "status", "extensions"),
    [
        (errors.MalformedJSON("bad body"), 400, {}),
        (errors.InvalidParameter("limit", "bad limit"), 400, {"parameter": "limit"}),
        (
            errors.ContractViolation("violates", [errors.Violation("/a", "required", MISSING)]),
            422,
            {"errors": [{"pointer": "/a", "keyword": "required", "message": MISSING}]},
        ),
        (
            errors.VerificationError(errors.RejectReason.UNKNOWN_KEY, "no key"),
            422,
            {"reason": "unknown-key"},
        ),
        (NewContractProblem("new"), 422, {}),
    ],
    ids=["malformed-json", "invalid-parameter", "contract-violation", "verification", "new"],
)
async def test_gateway_errors_become_problems(
    error: errors.GatewayError, status: int, extensions: dict[str, Any]
) -> None:
    response = await respond(error)

    assert response.status == status
    assert response.content_type == PROBLEM_JSON
    assert body_of(response) == {
        "type": f"urn:gateway:problem:{error.code}",
        "title": error.title,
        "status": status,
        "detail": error.detail,
        **extensions,
    }


async def test_transport_error_asks_to_retry() -> None:
    response = await respond(errors.TransportError("broker down"))

    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    assert body_of(response)["type"] == "urn:gateway:problem:broker-unavailable"


async def test_an_idempotency_key_in_use_asks_to_retry_in_a_second() -> None:
    response = await respond(errors.IdempotencyKeyInUse("in progress"))

    assert response.status == 409
    assert response.headers["Retry-After"] == "1"
    assert body_of(response)["type"] == "urn:gateway:problem:idempotency-key-in-use"


async def test_a_reused_idempotency_key_is_not_retriable() -> None:
    response = await respond(errors.IdempotencyKeyReused("another request"))

    assert response.status == 422
    assert "Retry-After" not in response.headers
    assert body_of(response)["type"] == "urn:gateway:problem:idempotency-key-reused"


async def test_unauthenticated_names_the_scheme() -> None:
    response = await respond(errors.Unauthenticated("no token"))

    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="gateway"'


async def test_forbidden_has_no_authenticate_challenge() -> None:
    response = await respond(errors.Forbidden("not yours"))

    assert response.status == 403
    assert "WWW-Authenticate" not in response.headers


async def test_unexpected_exception_is_a_bare_500() -> None:
    response = await respond(RuntimeError("secret internal detail"))

    assert response.status == 500
    assert response.content_type == PROBLEM_JSON
    assert body_of(response) == {
        "type": "urn:gateway:problem:internal-error",
        "title": "Internal error",
        "status": 500,
        "detail": "the request could not be served",
    }


async def test_http_errors_from_aiohttp_become_problems() -> None:
    response = await respond(web.HTTPMethodNotAllowed("POST", ["GET"]))

    assert response.status == 405
    assert response.content_type == PROBLEM_JSON
    assert body_of(response)["type"] == "urn:gateway:problem:method-not-allowed"


async def test_redirects_are_not_turned_into_problems() -> None:
    with pytest.raises(web.HTTPFound):
        await respond(web.HTTPFound("/elsewhere"))
