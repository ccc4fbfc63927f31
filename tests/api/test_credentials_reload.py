"""Token rotation without a restart: the node takes new credentials from its config."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.api.auth import new_token
from gateway.config import Auditor, GatewayConfig, HttpConfig
from gateway.errors import ConfigError
from gateway.node import RunningNode
from tests.api.conftest import Gateway


def config_of(node: RunningNode) -> GatewayConfig:
    from gateway.api.keys import CONFIG

    return node.app[CONFIG]


def with_tokens(config: GatewayConfig, participant: str, *digests: str) -> GatewayConfig:
    participants = tuple(
        dataclasses.replace(p, token_sha256=digests) if p.id == participant else p
        for p in config.participants
    )
    return dataclasses.replace(config, participants=participants)


async def status(gateway: Gateway, token: str) -> int:
    async with gateway.http.get(
        "/v1/inbox", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        return response.status


async def test_a_token_is_rotated_without_a_restart(gateway: Gateway) -> None:
    old_token, old_digest = gateway.fed.tokens["minhealth"], gateway.fed.digests["minhealth"]
    new, new_digest = new_token()
    config = config_of(gateway.node)

    # 1. The new digest beside the old one: both work.
    assert (
        gateway.node.reload_credentials(with_tokens(config, "minhealth", old_digest, new_digest))
        == []
    )
    assert await status(gateway, old_token) == 200
    assert await status(gateway, new) == 200

    # 2. The old digest removed: the old token is refused.
    gateway.node.reload_credentials(with_tokens(config, "minhealth", new_digest))
    assert await status(gateway, old_token) == 401
    assert await status(gateway, new) == 200

    reloads = [r for r in gateway.fed.audit("node-1") if r["event"] == "credentials.reloaded"]
    assert len(reloads) == 2
    assert reloads[-1]["participants"] == ["acme-analytics", "minhealth", "socialtreasury"]
    assert not any(new in str(r) or new_digest in str(r) for r in reloads)  # digests stay out


async def test_an_auditor_can_be_added_by_a_reload(gateway: Gateway) -> None:
    token, digest = new_token()
    config = config_of(gateway.node)
    assert await status(gateway, token) == 401

    gateway.node.reload_credentials(
        dataclasses.replace(config, auditors=(Auditor(id="security-team", token_sha256=(digest,)),))
    )

    async with gateway.http.get(
        "/v1/audit", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        assert response.status == 200


async def test_other_changes_are_named_for_a_restart_and_not_applied(gateway: Gateway) -> None:
    config = config_of(gateway.node)
    changed = dataclasses.replace(
        config, prefix="other.", http=HttpConfig(host="127.0.0.1", port=1)
    )

    assert gateway.node.reload_credentials(changed) == ["http", "prefix"]
    assert config_of(gateway.node).prefix == config.prefix


async def test_a_changed_set_of_hosted_participants_is_refused(gateway: Gateway) -> None:
    config = config_of(gateway.node)
    fewer = dataclasses.replace(config, participants=config.participants[:1])

    with pytest.raises(ConfigError, match="restart the node"):
        gateway.node.reload_credentials(fewer)
    assert await status(gateway, gateway.fed.tokens["socialtreasury"]) == 200


async def test_a_token_shared_by_two_principals_is_refused_and_the_old_ones_stay(
    gateway: Gateway,
) -> None:
    config = config_of(gateway.node)
    digest = gateway.fed.digests["minhealth"]
    clash = dataclasses.replace(config, auditors=(Auditor(id="sec", token_sha256=(digest,)),))

    with pytest.raises(ConfigError, match="give each principal its own tokens"):
        gateway.node.reload_credentials(clash)
    assert await status(gateway, gateway.fed.tokens["minhealth"]) == 200
