"""Contract catalog over HTTP: browse every version, and let owners register new ones.

Registration runs the same checks as ``gateway contracts lint``: the contract
file schema, schema validity, examples, migration, and compatibility with the
history under the contract's mode; a breaking version gets 409 with the
change report. Accepted versions are written to the node's contracts
directory before they are served.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway.api.handlers import participant_of, read_body, require_json
from gateway.api.keys import AUDIT, CATALOG, CONFIG, KEYS, PUBLISHER, REGISTRY
from gateway.contracts import ContractCatalog
from gateway.contracts.compat import Report
from gateway.contracts.document import parse_contract
from gateway.contracts.files import write_contract_file
from gateway.contracts.model import ContractVersion
from gateway.errors import Forbidden, InvalidContract, UnknownContract
from gateway.jsonparse import parse_json
from gateway.participants.contract_records import sign_contract
from gateway.participants.registry import AUTHORITY
from gateway.participants.topic import outbound


def summary(contract: ContractVersion) -> dict[str, Any]:
    return {
        "id": contract.id,
        "version": str(contract.version),
        "title": contract.title,
        "owner": contract.owner,
        "classification": contract.classification.value,
        "compatibility": contract.compatibility.value,
        "producers": sorted(contract.producers),
        "consumers": sorted(contract.consumers),
    }


def detail(contract: ContractVersion) -> dict[str, Any]:
    return {
        **summary(contract),
        "description": contract.description,
        "retention": contract.retention,
        "compatibility_policy": contract.compatibility_policy.value,
        "consumer_fields": {k: list(v) for k, v in contract.consumer_fields.items()},
        "schema": contract.schema,
        "examples": {
            "valid": list(contract.valid_examples),
            "invalid": list(contract.invalid_examples),
        },
        "migration": contract.document.get("migration"),
    }


def catalog_summary(catalog: ContractCatalog) -> list[dict[str, Any]]:
    """Every contract: its latest version's summary, and the versions there are."""
    contracts = []
    for contract_id in catalog.ids():
        versions = catalog.versions(contract_id)
        contracts.append({**summary(versions[-1]), "versions": [str(v.version) for v in versions]})
    return contracts


async def list_contracts(request: web.Request) -> web.Response:
    participant_of(request)
    return web.json_response({"contracts": catalog_summary(request.app[CATALOG])})


async def get_contract(request: web.Request) -> web.Response:
    participant_of(request)
    versions = request.app[CATALOG].versions(request.match_info["contract"])
    return web.json_response({**summary(versions[-1]), "versions": [summary(v) for v in versions]})


async def get_version(request: web.Request) -> web.Response:
    participant_of(request)
    contract_id, version = request.match_info["contract"], request.match_info["version"]
    name = contract_id if version == "latest" else f"{contract_id}@{version}"
    return web.json_response(detail(request.app[CATALOG].resolve(name)))


async def register_version(request: web.Request) -> web.Response:
    caller = participant_of(request)
    require_json(request)
    config = request.app[CONFIG]
    body = await read_body(request, config.http.max_body_bytes)
    contract = parse_contract(
        parse_json(body, max_bytes=config.http.max_body_bytes, max_depth=config.http.max_json_depth)
    )
    catalog = request.app[CATALOG]
    if contract.id != request.match_info["contract"]:
        raise InvalidContract(
            f"the document declares '{contract.id}', the path "
            f"'{request.match_info['contract'][:80]}'"
        )
    _check_owner(
        caller, contract, catalog.versions(contract.id) if contract.id in catalog.ids() else []
    )
    sent = await _distribute(request, caller, contract)
    registered = catalog.register(
        contract, persist=lambda c: write_contract_file(config.contracts_dir, c)
    )
    published = sent is not None
    # The node's own follower may have taken the version in from the topic first.
    reports = sent if sent is not None else registered.reports
    if registered.new:  # else the node's own registry follower took it in first
        request.app[AUDIT].record(
            "contract.registered",
            contract=contract.ref,
            owner=caller,
            checked_against=[v for v, _ in reports],
            by=caller,
        )
    return web.json_response(
        {
            "contract": contract.ref,
            "registered": registered.new or published,
            "checked_against": [
                {
                    "version": version,
                    "backward": report.backward,
                    "forward": report.forward,
                    "changes": [c.as_dict() for c in report.changes],
                }
                for version, report in reports
            ],
        },
        status=201 if registered.new or published else 200,
    )


async def _distribute(
    request: web.Request, owner: str, contract: ContractVersion
) -> tuple[tuple[str, Report], ...] | None:
    """In a cluster (``registry.topic``), a new version goes to the registry topic first,
    signed with the owner's key and carrying the owner's registry record, so that every
    node registers it; the checks' reports when it was sent, None when not.

    Checked before it is sent, so that nothing the catalog refuses reaches the topic;
    sent before it is registered here, so that a version this node serves is one the
    other nodes receive (a broker that does not acknowledge it is a 503, and nothing
    is registered)."""
    config, view = request.app[CONFIG], request.app[REGISTRY]
    if not config.registry.topic or view is None:
        return None
    reports = request.app[CATALOG].check(contract)
    if reports is None:
        return None  # the identical version: nothing to send
    signer = request.app[KEYS].private(owner).signing
    record = view.registry.get(owner)
    if (
        record is None
        or record.issuer != AUTHORITY
        or not view.admitted(owner)
        or record.participant.keys.verify_key(signer.kid) is None
    ):
        raise Forbidden(
            f"'{owner}' signs no contract versions for the cluster: its registry record is "
            "not an active agency record listing this node's signing key for it"
        )
    signed = sign_contract(
        contract, key=signer, issuer=owner, issued_at=int(time.time()), owner_record=record.jws
    )
    await request.app[PUBLISHER].publish([outbound(config.registry_topic, signed)])
    return reports


def _check_owner(caller: str, contract: ContractVersion, history: list[ContractVersion]) -> None:
    owner = history[-1].owner if history else contract.owner
    if caller != owner:
        raise Forbidden(f"only the owner '{owner}' may register versions of '{contract.id}'")


__all__ = ["UnknownContract", "get_contract", "get_version", "list_contracts", "register_version"]
