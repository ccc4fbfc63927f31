"""Bearer-token authentication of local participants and auditors."""

from __future__ import annotations

import hashlib

import pytest

from gateway.api.auth import (
    Authenticator,
    BadCredentials,
    Principal,
    Role,
    WrongRole,
    hash_token,
    new_token,
)
from gateway.config import Auditor, GatewayConfig, LocalParticipant
from gateway.errors import ConfigError, Forbidden, Unauthenticated

TOKEN_A, TOKEN_B = "gw_token-of-minhealth", "gw_token-of-socialtreasury"
TOKEN_SOC = "gw_token-of-the-security-team"
SEND_BEARER = "send 'Authorization: Bearer <token>'"


@pytest.fixture
def authenticator() -> Authenticator:
    return Authenticator(
        {hash_token(TOKEN_A): "minhealth", hash_token(TOKEN_B): "socialtreasury"},
        {hash_token(TOKEN_SOC): "soc"},
    )


def refusal(authenticator: Authenticator, header: str | None) -> str:
    with pytest.raises(Unauthenticated) as info:
        authenticator.participant(header)
    return info.value.detail


def test_hash_token_is_hex_sha256() -> None:
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_new_token_is_fresh_and_paired_with_its_digest() -> None:
    (token, digest), (other, _) = new_token(), new_token()

    assert token.startswith("gw_")
    assert len(token) >= 40
    assert token != other
    assert digest == hash_token(token)


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {TOKEN_A}",
        f"bearer {TOKEN_A}",
        f"BEARER {TOKEN_A}",
        f"bEaReR {TOKEN_A}",
        f"Bearer   {TOKEN_A}  ",
    ],
    ids=["canonical", "lower", "upper", "mixed", "extra-spaces"],
)
def test_valid_token_names_its_participant(authenticator: Authenticator, header: str) -> None:
    assert authenticator.participant(header) == "minhealth"


def test_each_token_maps_to_its_own_participant(authenticator: Authenticator) -> None:
    assert authenticator.participant(f"Bearer {TOKEN_B}") == "socialtreasury"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, SEND_BEARER),
        ("", SEND_BEARER),
        ("Bearer", SEND_BEARER),
        ("Bearer ", SEND_BEARER),
        ("Bearer    ", SEND_BEARER),
        (TOKEN_A, SEND_BEARER),
        (f"Basic {TOKEN_A}", SEND_BEARER),
        (f"Token {TOKEN_A}", SEND_BEARER),
        (f"Bearer\t{TOKEN_A}", SEND_BEARER),
        (f"Bearer {TOKEN_A}x", "the token is not valid"),
        (f"Bearer {TOKEN_A.upper()}", "the token is not valid"),
        (f"Bearer {hash_token(TOKEN_A)}", "the token is not valid"),
        ("Bearer unknown", "the token is not valid"),
    ],
    ids=[
        "missing",
        "empty",
        "scheme-only",
        "scheme-and-space",
        "blank-token",
        "no-scheme",
        "basic",
        "other-scheme",
        "tab-separator",
        "extended-token",
        "wrong-case-token",
        "digest-as-token",
        "unknown-token",
    ],
)
def test_refused_headers(authenticator: Authenticator, header: str | None, message: str) -> None:
    detail = refusal(authenticator, header)

    assert detail == message
    assert TOKEN_A not in detail


def test_header_of_exactly_512_characters_is_accepted(authenticator: Authenticator) -> None:
    header = f"Bearer {TOKEN_A}".ljust(512)

    assert authenticator.participant(header) == "minhealth"


@pytest.mark.parametrize("length", [513, 10_000])
def test_over_long_header_is_refused_even_with_a_valid_token(
    authenticator: Authenticator, length: int
) -> None:
    header = f"Bearer {TOKEN_A}".ljust(length)

    assert refusal(authenticator, header) == SEND_BEARER


def test_header_with_undecodable_bytes_is_refused(authenticator: Authenticator) -> None:
    header = b"Bearer \xff\xfe".decode("utf-8", "surrogateescape")

    assert refusal(authenticator, header) == "the token is not valid"


def test_from_config_uses_every_digest_of_every_participant() -> None:
    config = GatewayConfig(
        participants=(
            LocalParticipant(id="minhealth", token_sha256=(hash_token("t1"), hash_token("t2"))),
            LocalParticipant(id="socialtreasury", token_sha256=(hash_token("t3"),)),
            LocalParticipant(id="no-tokens"),
        )
    )
    authenticator = Authenticator.from_config(config)

    assert [authenticator.participant(f"Bearer {t}") for t in ("t1", "t2", "t3")] == [
        "minhealth",
        "minhealth",
        "socialtreasury",
    ]
    assert refusal(authenticator, "Bearer t4") == "the token is not valid"


def test_from_config_maps_auditor_tokens_to_the_auditor_role() -> None:
    config = GatewayConfig(
        participants=(LocalParticipant(id="minhealth", token_sha256=(hash_token("t1"),)),),
        auditors=(Auditor(id="soc", token_sha256=(hash_token("a1"), hash_token("a2"))),),
    )
    authenticator = Authenticator.from_config(config)

    assert authenticator.principal("Bearer t1") == Principal("minhealth", Role.PARTICIPANT)
    assert authenticator.principal("Bearer a1") == Principal("soc", Role.AUDITOR)
    assert authenticator.principal("Bearer a2") == Principal("soc", Role.AUDITOR)


def test_an_auditor_token_is_not_a_participant(authenticator: Authenticator) -> None:
    with pytest.raises(WrongRole) as info:
        authenticator.participant(f"Bearer {TOKEN_SOC}")

    assert isinstance(info.value, Forbidden)  # 403: authenticated, but not allowed
    assert info.value.principal == Principal("soc", Role.AUDITOR)
    assert info.value.reason == "requires-participant"
    assert TOKEN_SOC not in info.value.detail


def test_require_refuses_the_other_role() -> None:
    Principal("soc", Role.AUDITOR).require(Role.AUDITOR)
    with pytest.raises(WrongRole) as info:
        Principal("minhealth", Role.PARTICIPANT).require(Role.AUDITOR)

    assert info.value.reason == "requires-auditor"
    assert info.value.detail == "only auditors may do this; 'minhealth' is not one"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing-credentials"),
        ("", "missing-credentials"),
        ("Bearer", "malformed-credentials"),
        (f"Basic {TOKEN_A}", "malformed-credentials"),
        (f"Bearer {TOKEN_A}".ljust(513), "malformed-credentials"),
        (b"Bearer \xff".decode("utf-8", "surrogateescape"), "malformed-credentials"),
        ("Bearer unknown", "unknown-token"),
    ],
    ids=["missing", "empty", "scheme-only", "basic", "too-long", "undecodable", "unknown"],
)
def test_refusals_carry_a_reason_for_the_audit_record(
    authenticator: Authenticator, header: str | None, reason: str
) -> None:
    with pytest.raises(BadCredentials) as info:
        authenticator.principal(header)

    assert info.value.reason == reason
    assert info.value.code == "unauthenticated"


def test_one_digest_for_a_participant_and_an_auditor_is_refused() -> None:
    shared = hash_token("t1")

    with pytest.raises(ConfigError, match="auditor 'soc' is also a token of participant 'mh'"):
        Authenticator({shared: "mh"}, {shared: "soc"})
