"""Console pages everyone signed in may read: the contract catalog with its version
diffs, and the participants with their keys.
"""

from __future__ import annotations

import difflib
import itertools
import json
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.api.contracts import catalog_summary
from gateway.api.keys import CATALOG, CONFIG, KEYS, REGISTRY
from gateway.console.app import render, signed_in
from gateway.contracts.compat import compare
from gateway.contracts.model import ContractVersion
from gateway.errors import InvalidParameter, UnknownContract


async def contracts(request: web.Request) -> web.Response:
    signed_in(request)
    rows = catalog_summary(request.app[CATALOG])
    return render(request, "contracts.html", title="Contracts", contracts=rows)


async def contract(request: web.Request) -> web.Response:
    signed_in(request)
    versions = request.app[CATALOG].versions(request.match_info["contract"])
    steps = []
    for old, new in itertools.pairwise(versions):
        report = compare(old.schema, new.schema, policy=new.compatibility_policy)
        steps.append(
            {"old": old, "new": new, "report": report, "ok": report.compatible(new.compatibility)}
        )
    return render(
        request,
        "contract.html",
        title=versions[-1].id,
        versions=list(reversed(versions)),
        latest=versions[-1],
        steps=list(reversed(steps)),
    )


async def diff(request: web.Request) -> web.Response:
    signed_in(request)
    catalog = request.app[CATALOG]
    contract_id = request.match_info["contract"]
    versions = catalog.versions(contract_id)
    old = _version(catalog.resolve, contract_id, request.query.get("from"), versions[-2:][0])
    new = _version(catalog.resolve, contract_id, request.query.get("to"), versions[-1])
    report = compare(old.schema, new.schema, policy=new.compatibility_policy)
    return render(
        request,
        "diff.html",
        title=f"{contract_id}: {old.version} → {new.version}",
        old=old,
        new=new,
        versions=[str(v.version) for v in versions],
        report=report,
        ok=report.compatible(new.compatibility),
        breaking={c.pointer + c.code for c in report.breaking(new.compatibility)},
        lines=_schema_diff(old, new),
    )


def _version(
    resolve: Any, contract_id: str, text: str | None, default: ContractVersion
) -> ContractVersion:
    if text is None:
        return default
    try:
        found: ContractVersion = resolve(f"{contract_id}@{text}")
    except UnknownContract as exc:
        raise InvalidParameter("version", exc.detail) from None
    return found


def _schema_diff(old: ContractVersion, new: ContractVersion) -> list[tuple[str, str]]:
    """The schemas' pretty JSON, line by line: (kind, text), kind one of add, del, same, hunk."""

    def text(version: ContractVersion) -> list[str]:
        return json.dumps(version.schema, indent=2, sort_keys=True).splitlines()

    lines = []
    diff = difflib.unified_diff(
        text(old), text(new), str(old.version), str(new.version), n=3, lineterm=""
    )
    for line in list(diff)[2:]:
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        lines.append((kind, line))
    return lines


async def participants(request: web.Request) -> web.Response:
    signed_in(request)
    now = time.time()
    registry = request.app[REGISTRY]
    hosted = {p.id for p in request.app[CONFIG].participants}
    rows = []
    if registry is not None:
        for record in sorted(registry.registry.records(), key=lambda r: r.id):
            file = record.participant
            rows.append(
                {
                    "id": record.id,
                    "status": record.status.value,
                    "kind": file.kind.value,
                    "legal_name": file.legal_name,
                    "sponsor": file.sponsor,
                    "serial": record.serial,
                    "hosted": record.id in hosted,
                    "held_keys": _keys(file.keys, now),
                    "contracts": [
                        f"{c.role.value} {c.contract} {c.versions}" for c in file.contracts
                    ],
                }
            )
    else:
        store = request.app[KEYS]
        for participant in sorted(store.known()):
            public = store.public(participant)
            rows.append(
                {
                    "id": participant,
                    "status": "no registry",
                    "kind": "",
                    "legal_name": "",
                    "sponsor": None,
                    "serial": None,
                    "hosted": participant in hosted,
                    "held_keys": _keys(public, now) if public is not None else [],
                    "contracts": [],
                }
            )
    return render(
        request, "participants.html", title="Participants", rows=rows, registry=registry is not None
    )


def _keys(public: Any, now: float) -> list[dict[str, Any]]:
    keys = []
    for use, entries in (("sign", public.signing), ("encrypt", public.encryption)):
        for key in entries:
            until = getattr(key, "valid_until", None)
            revoked = getattr(key, "revoked_at", None)
            state = (
                "revoked"
                if revoked
                else "expired"
                if until is not None and until < now
                else "valid"
            )
            keys.append(
                {
                    "kid": key.kid,
                    "use": use,
                    "alg": getattr(key, "alg", ""),
                    "until": _when(until),
                    "days_left": None if until is None else int((until - now) // 86_400),
                    "state": state,
                }
            )
    return keys


def _when(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")
