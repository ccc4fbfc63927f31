"""schemathesis against the served /openapi.json: the document describes the API as it is.

A node (the in-memory transport, as in conftest.py) serves its own document; for every
operation in it schemathesis generates requests, schema-valid ("positive") and
schema-breaking ("negative"), sends them with a participant's bearer token (an
auditor's for the audit search) and checks each answer: no 5xx; a status code, content
type, headers and body the document declares; a schema-breaking request refused with a
4xx; a schema-valid one not refused with 400. 422 is allowed for schema-valid requests:
a payload's rules live in its contract, not in this document.

schemathesis' pytest plugin wants the schema at collection time and runs its own loop,
so the generated requests are sent from a worker thread (``asyncio.to_thread``) by
plain hypothesis ``@given`` runs while the node keeps serving on the test's event loop.
The suite's derandomized profile (tests/conftest.py) makes the requests the same on
every run.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Err

from gateway.api.auth import new_token
from gateway.audit.search import parse_time
from gateway.config import Auditor
from gateway.contracts.files import load_contract_file
from gateway.node import running_node
from tests.api.conftest import AUDITOR, HOSTED, Gateway
from tests.fakes import MemoryTransport
from tests.support import CONTRACTS, Federation

EXAMPLES_PER_MODE = 8
SUPPORT_MEASURE = CONTRACTS / "social.support-measure" / "1.0.0.yaml"
ACCEPTED_FOR_VALID = ["2xx", "401", "403", "404", "409", "422", "429"]
"""Answers to a schema-valid request that are not a description error (no 400, no 5xx)."""
REFUSALS_OF_INVALID = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422"]
"""Answers to a schema-breaking request: 4xx refusals, among them 413 (such a body may
also be too large, and size is checked first); never 5xx, never 2xx."""


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Gateway]:
    """Short waits (long polls and requests answer in 0.2 s) and an auditor."""
    fed = Federation.create(tmp_path)
    fed.tokens[AUDITOR], digest = new_token()
    config = fed.config(HOSTED, bootstrap="memory")
    config = dataclasses.replace(
        config,
        http=dataclasses.replace(config.http, max_inbox_wait_s=0.2, max_request_wait_s=0.2),
        auditors=(Auditor(id=AUDITOR, token_sha256=(digest,)),),
    )
    transport = MemoryTransport()
    async with running_node(config, transport=transport) as running:
        await running.wait_ready(5)
        async with aiohttp.ClientSession(base_url=running.url) as http:
            yield Gateway(running, http, fed, transport)


@dataclass
class Run:
    url: str
    tokens: dict[str, str]
    requests: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def token_for(self, operation: Any) -> str:
        return self.tokens["auditor" if operation.path == "/v1/audit" else "participant"]


def takes_input(operation: Any) -> bool:
    return bool(operation.body) or any(True for _ in operation.iter_parameters())


def exercise(run: Run) -> None:
    """Every operation of the served document, in both generation modes."""
    config = schemathesis.Config.from_dict(
        {
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ACCEPTED_FOR_VALID},
                "negative_data_rejection": {"expected-statuses": REFUSALS_OF_INVALID},
            }
        }
    )
    schema = schemathesis.openapi.from_url(f"{run.url}/openapi.json", config=config)
    session = requests.Session()
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation schemathesis cannot read: a failure
            run.failures.append(f"unreadable operation: {result.err()}")
            continue
        operation = result.ok()
        for mode in schemathesis.GenerationMode:
            if mode is schemathesis.GenerationMode.NEGATIVE and not takes_input(operation):
                continue  # nothing to break
            try:
                send_generated(run, session, operation, mode)
            except (Exception, BaseExceptionGroup) as failure:
                run.failures.append(f"{operation.label} ({mode.value}): {failure}")


def send_generated(run: Run, session: requests.Session, operation: Any, mode: Any) -> None:
    headers = {"Authorization": f"Bearer {run.token_for(operation)}"}

    @settings(
        max_examples=EXAMPLES_PER_MODE,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=operation.as_strategy(generation_mode=mode).filter(documented_rules_hold))
    def send(case: Any) -> None:
        run.requests[operation.label] += 1
        # The event stream never ends: it is read until its timeout, then cut.
        timeout = 0.5 if operation.path == "/v1/inbox/stream" else 10
        case.call_and_validate(base_url=run.url, session=session, headers=headers, timeout=timeout)

    send()


def documented_rules_hold(case: Any) -> bool:
    """What the document says in words, not in a schema: a search's `until` is later than
    its `since` (schema-breaking requests may break it too)."""
    query = case.query or {}
    if not {"since", "until"} <= set(query):
        return True
    try:
        return bool(parse_time(query["until"]) > parse_time(query["since"]))
    except (TypeError, ValueError, AttributeError):
        return True


async def seed_inbox(gateway: Gateway, count: int) -> None:
    """Messages in minhealth's inbox, so pulls answer with messages to check."""
    contract = load_contract_file(SUPPORT_MEASURE)
    for _ in range(count):
        async with gateway.http.post(
            "/v1/contracts/social.support-measure/messages?to=minhealth",
            json=contract.valid_examples[0],
            headers=gateway.fed.auth("socialtreasury"),
        ) as response:
            assert response.status == 202, await response.text()


async def test_every_operation_answers_as_the_served_document_says(node: Gateway) -> None:
    await seed_inbox(node, 3)
    run = Run(
        node.node.url,
        {"participant": node.fed.tokens["minhealth"], "auditor": node.fed.tokens[AUDITOR]},
    )
    await asyncio.to_thread(exercise, run)

    assert not run.failures, "\n\n".join(run.failures)
    async with node.http.get("/openapi.json") as response:
        document = await response.json()
    operations = {
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    }
    # Every operation was exercised, but the document itself: schemathesis loaded it.
    assert set(run.requests) == operations - {"GET /openapi.json"}
    assert min(run.requests.values()) >= 1
    print(f"schemathesis: {len(operations)} operations, {sum(run.requests.values())} requests")
