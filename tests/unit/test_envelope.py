"""The envelope: sign-then-encrypt, every refusal reason, and JOSE interoperability."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwcrypto import jwe, jwk, jws
from jwcrypto.common import JWException

from gateway.crypto.encoding import b64u_decode, b64u_encode, compact_json
from gateway.crypto.envelope import (
    MAX_ENVELOPE_BYTES,
    Binding,
    Opened,
    VerifyKeyLookup,
    _derive_kek,
    _encrypt,
    open_envelope,
    seal,
)
from gateway.crypto.keys import EncryptKey, PrivateKeys, VerifyKey
from gateway.errors import RejectReason, VerificationError

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
BINDING = Binding("m-1", "alice", "bob", "demo.note", "1.0.0", 1_700_000_000)
PAYLOAD = b'{ "text" :  "hello",\n\t"n": 1.50 }\n'
REMOVE = object()
"""A header update that deletes the member."""

Reason = RejectReason


@dataclass(frozen=True)
class Parties:
    alice: PrivateKeys
    bob: PrivateKeys
    carol: PrivateKeys

    def lookup(self, sender: str, kid: str) -> VerifyKey | None:
        """Each participant holds exactly its own signing key."""
        keys = {"alice": self.alice, "bob": self.bob, "carol": self.carol}.get(sender)
        return keys.public().verify_key(kid) if keys else None

    @property
    def to_bob(self) -> EncryptKey:
        return self.bob.public().encryption[0]


@pytest.fixture(scope="module")
def parties() -> Parties:
    return Parties(PrivateKeys.generate(), PrivateKeys.generate(), PrivateKeys.generate())


# -- helpers -------------------------------------------------------------------


def seal_for_bob(p: Parties, payload: bytes = PAYLOAD, binding: Binding = BINDING) -> bytes:
    return seal(payload, binding, signer=p.alice.signing, recipient_key=p.to_bob)


def open_as_bob(
    p: Parties, token: bytes, *, recipient: str = "bob", verify_key: VerifyKeyLookup | None = None
) -> Opened:
    return open_envelope(token, recipient=recipient, keys=p.bob, verify_key=verify_key or p.lookup)


def rejection(
    p: Parties, token: bytes, *, recipient: str = "bob", verify_key: VerifyKeyLookup | None = None
) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        open_as_bob(p, token, recipient=recipient, verify_key=verify_key)
    assert info.value.extensions() == {"reason": info.value.reason.value}
    return info.value


def updated(header: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    result = {**header, **updates}
    return {k: v for k, v in result.items() if v is not REMOVE}


def decode_header(encoded: bytes) -> dict[str, Any]:
    header: dict[str, Any] = json.loads(b64u_decode(encoded))
    return header


def replace_jwe_header(token: bytes, updates: dict[str, Any]) -> bytes:
    """Re-encode the protected header of a real envelope with ``updates``."""
    parts = token.split(b".")
    parts[0] = b64u_encode(compact_json(updated(decode_header(parts[0]), updates)))
    return b".".join(parts)


def replace_char(part: bytes, index: int, change: Callable[[int], int]) -> bytes:
    """Swap one base64url character for another (``change`` maps alphabet indexes)."""
    chars = bytearray(part)
    chars[index] = ALPHABET[change(ALPHABET.index(chars[index])) % 64]
    return bytes(chars)


def replace_part(token: bytes, number: int, new: bytes) -> bytes:
    parts = token.split(b".")
    parts[number] = new
    return b".".join(parts)


def jws_header(p: Parties, **updates: Any) -> dict[str, Any]:
    """The inner JWS header ``seal`` writes for BINDING, with ``updates``."""
    header = {
        "alg": "EdDSA",
        "kid": p.alice.signing.kid,
        "typ": "gw-message+jws",
        "cty": "json",
        "mid": BINDING.message_id,
        "iss": BINDING.sender,
        "aud": BINDING.recipient,
        "ctr": BINDING.contract,
        "ver": BINDING.version,
        "iat": BINDING.issued_at,
    }
    return updated(header, updates)


def sign_jws(header: dict[str, Any], payload: bytes, key: Ed25519PrivateKey | None) -> bytes:
    """A compact JWS; with no key, the signature is empty (as for alg 'none')."""
    signing_input = b64u_encode(compact_json(header)) + b"." + b64u_encode(payload)
    signature = key.sign(signing_input) if key is not None else b""
    return signing_input + b"." + b64u_encode(signature)


def build_jwe(
    plaintext: bytes,
    recipient: EncryptKey,
    *,
    epk: dict[str, str] | None = None,
    shared: bytes | None = None,
) -> bytes:
    """An independent ECDH-ES+A256KW / A256GCM encryption whose AAD matches its header.

    ``epk`` and ``shared`` override the ephemeral key and the agreed secret, so a
    crafted envelope is refused only by the check under test, never by the AAD.
    """
    ephemeral = X25519PrivateKey.generate()
    x = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    header = {
        "alg": "ECDH-ES+A256KW",
        "enc": "A256GCM",
        "kid": recipient.kid,
        "epk": epk or {"kty": "OKP", "crv": "X25519", "x": b64u_encode(x).decode()},
    }
    secret = shared if shared is not None else ephemeral.exchange(recipient.key)
    protected = b64u_encode(compact_json(header))
    cek, iv = os.urandom(32), os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected)
    parts = (aes_key_wrap(_derive_kek(secret), cek), iv, sealed[:-16], sealed[-16:])
    return b".".join([protected, *(b64u_encode(part) for part in parts)])


def jwk_for(jwks: dict[str, Any], crv: str) -> jwk.JWK:
    [key] = [k for k in jwks["keys"] if k["crv"] == crv]
    return jwk.JWK(**key)


# -- round trip ----------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [PAYLOAD, b"", b"\x00\xff\xfe binary", "élève €".encode(), b"[" * 64, b"x" * 200_000],
    ids=["json-with-whitespace", "empty", "binary", "utf8", "not-json", "200kB"],
)
def test_round_trip_returns_the_exact_bytes(parties: Parties, payload: bytes) -> None:
    opened = open_as_bob(parties, seal_for_bob(parties, payload))

    assert opened.payload == payload
    assert opened.binding == BINDING
    assert opened.signing_kid == parties.alice.signing.kid


def test_binding_survives_the_round_trip(parties: Parties) -> None:
    binding = Binding("0193-ab", "alice", "bob", "health.patient-referral", "2.10.3", 0)

    assert open_as_bob(parties, seal_for_bob(parties, binding=binding)).binding == binding


def test_sealing_is_randomised(parties: Parties) -> None:
    first, second = seal_for_bob(parties), seal_for_bob(parties)

    assert first != second
    assert open_as_bob(parties, first).payload == open_as_bob(parties, second).payload


def test_envelope_is_a_compact_jwe_that_hides_the_payload(parties: Parties) -> None:
    token = seal_for_bob(parties, b'{"name": "Ivanova"}')

    assert token.count(b".") == 4
    assert b"Ivanova" not in token
    assert b"Ivanova" not in b"".join(b64u_decode(part) for part in token.split(b"."))


def test_lookup_is_asked_for_the_sender_and_the_signing_kid(parties: Parties) -> None:
    asked: list[tuple[str, str]] = []

    def lookup(sender: str, kid: str) -> VerifyKey | None:
        asked.append((sender, kid))
        return parties.lookup(sender, kid)

    open_as_bob(parties, seal_for_bob(parties), verify_key=lookup)

    assert asked == [("alice", parties.alice.signing.kid)]


# -- tampering and misdirection ------------------------------------------------


@pytest.mark.parametrize("number", range(5), ids=["header", "key", "iv", "ciphertext", "tag"])
@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_any_flipped_character_is_refused(parties: Parties, number: int, position: str) -> None:
    token = seal_for_bob(parties)
    part = token.split(b".")[number]
    index = {"first": 0, "middle": len(part) // 2, "last": len(part) - 1}[position]
    # +32 changes the top bit of the 6-bit group, which every character uses.
    tampered = replace_part(token, number, replace_char(part, index, lambda i: i + 32))

    assert rejection(parties, tampered).reason in {Reason.MALFORMED, Reason.DECRYPTION_FAILED}


@pytest.mark.parametrize("number", [1, 4], ids=["key", "tag"])
def test_non_canonical_base64url_is_refused(parties: Parties, number: int) -> None:
    token = seal_for_bob(parties)
    part = token.split(b".")[number]
    # 40- and 16-byte values leave 4 unused bits in the last character.
    tampered = replace_part(token, number, replace_char(part, -1, lambda i: i ^ 1))

    assert tampered != token
    assert rejection(parties, tampered).reason is Reason.MALFORMED


def test_envelope_for_another_key_is_refused(parties: Parties) -> None:
    token = seal(
        PAYLOAD,
        BINDING,
        signer=parties.alice.signing,
        recipient_key=parties.carol.public().encryption[0],
    )

    assert rejection(parties, token).reason is Reason.UNKNOWN_KEY


def test_re_addressed_envelope_is_refused(parties: Parties) -> None:
    error = rejection(parties, seal_for_bob(parties), recipient="other")

    assert error.reason is Reason.RECIPIENT_MISMATCH


def test_editing_the_signed_recipient_breaks_the_signature(parties: Parties) -> None:
    signed = sign_jws(jws_header(parties, aud="other"), PAYLOAD, parties.alice.signing.key)
    _header, payload, signature = signed.split(b".")
    edited = b64u_encode(compact_json(jws_header(parties))) + b"." + payload + b"." + signature

    error = rejection(parties, _encrypt(edited, parties.to_bob))

    assert error.reason is Reason.SIGNATURE_INVALID


LOOKUPS: dict[str, Callable[[Parties], VerifyKeyLookup]] = {
    "finds-nothing": lambda p: lambda sender, kid: None,
    "returns-carols-key": lambda p: lambda sender, kid: p.carol.public().signing[0],
    "returns-alices-key-for-any-kid": lambda p: lambda sender, kid: p.alice.public().signing[0],
    "by-sender-and-kid": lambda p: p.lookup,
}


@pytest.mark.parametrize(
    ("signer", "lookup", "reason"),
    [
        ("alice", "finds-nothing", Reason.UNKNOWN_KEY),
        ("alice", "returns-carols-key", Reason.SIGNATURE_INVALID),
        ("carol", "returns-alices-key-for-any-kid", Reason.SIGNATURE_INVALID),
        ("carol", "by-sender-and-kid", Reason.UNKNOWN_KEY),
    ],
)
def test_signature_by_a_key_the_sender_does_not_hold(
    parties: Parties, signer: str, lookup: str, reason: RejectReason
) -> None:
    # The binding always names Alice as the sender; "carol" signs as an impostor.
    keys = parties.alice if signer == "alice" else parties.carol
    token = seal(PAYLOAD, BINDING, signer=keys.signing, recipient_key=parties.to_bob)

    assert rejection(parties, token, verify_key=LOOKUPS[lookup](parties)).reason is reason


# -- the outer JWE -------------------------------------------------------------


@pytest.mark.parametrize(
    "updates",
    [
        {"zip": "DEF"},
        {"jku": "https://keys.example/jwks.json"},
        {"jwk": {"kty": "OKP", "crv": "X25519", "x": "AAAA"}},
        {"x5u": "https://keys.example/cert.pem"},
        {"x5c": ["MIIB"]},
        {"crit": ["exp"], "exp": 1},
        {"alg": "dir"},
        {"alg": "ECDH-ES"},
        {"alg": "PBES2-HS256+A128KW", "p2s": "c2FsdA", "p2c": 1000},
        {"alg": "PBES2-HS256+A128KW"},
        {"alg": "RSA-OAEP-256"},
        {"alg": "none"},
        {"alg": "ecdh-es+a256kw"},
        {"enc": "A128GCM"},
        {"enc": "A256CBC-HS512"},
    ],
    ids=lambda updates: "-".join(f"{k}={v}" for k, v in updates.items())[:40],
)
def test_jwe_header_outside_the_allow_list(parties: Parties, updates: dict[str, Any]) -> None:
    token = replace_jwe_header(seal_for_bob(parties), updates)

    assert rejection(parties, token).reason is Reason.FORBIDDEN_HEADER


@pytest.mark.parametrize(
    "updates",
    [{"kid": REMOVE}, {"epk": REMOVE}, {"enc": REMOVE}, {"alg": REMOVE}],
    ids=["no-kid", "no-epk", "no-enc", "no-alg"],
)
def test_jwe_header_missing_a_member(parties: Parties, updates: dict[str, Any]) -> None:
    token = replace_jwe_header(seal_for_bob(parties), updates)

    assert rejection(parties, token).reason is Reason.MALFORMED


@pytest.mark.parametrize(
    "header",
    [
        b"[]",
        b'"alg"',
        b"not json",
        b'{"alg":"ECDH-ES+A256KW","alg":"ECDH-ES+A256KW"}',
        json.dumps({"typ": "x" * 5000}).encode(),
    ],
    ids=["array", "string", "not-json", "duplicate-member", "over-4kB"],
)
def test_jwe_header_that_is_not_a_small_json_object(parties: Parties, header: bytes) -> None:
    token = replace_part(seal_for_bob(parties), 0, b64u_encode(header))

    assert rejection(parties, token).reason is Reason.MALFORMED


def test_independently_built_jwe_opens(parties: Parties) -> None:
    """Checks the crafting helper, so the refusals below are due to the check under test."""
    signed = sign_jws(jws_header(parties), PAYLOAD, parties.alice.signing.key)

    assert open_as_bob(parties, build_jwe(signed, parties.to_bob)).payload == PAYLOAD


@pytest.mark.parametrize("x", [bytes(32), b"\x01" + bytes(31)], ids=["all-zero", "order-4-point"])
def test_low_order_ephemeral_key_is_refused(parties: Parties, x: bytes) -> None:
    signed = sign_jws(jws_header(parties), PAYLOAD, parties.alice.signing.key)
    epk = {"kty": "OKP", "crv": "X25519", "x": b64u_encode(x).decode()}
    # Whoever crafts this knows the agreed secret: all zeros.
    token = build_jwe(signed, parties.to_bob, epk=epk, shared=bytes(32))

    assert rejection(parties, token).reason is Reason.DECRYPTION_FAILED


@pytest.mark.parametrize(
    "change",
    [
        {"d": "AAAA"},
        {"crv": "X448"},
        {"kty": "EC"},
        {"x": b64u_encode(bytes(31)).decode()},
        {"x": 7},
    ],
    ids=["extra-member", "wrong-curve", "wrong-kty", "short-x", "x-not-text"],
)
def test_malformed_ephemeral_key_is_refused(parties: Parties, change: dict[str, Any]) -> None:
    ephemeral = X25519PrivateKey.generate()
    x = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    epk = {"kty": "OKP", "crv": "X25519", "x": b64u_encode(x).decode(), **change}
    signed = sign_jws(jws_header(parties), PAYLOAD, parties.alice.signing.key)
    token = build_jwe(
        signed, parties.to_bob, epk=epk, shared=ephemeral.exchange(parties.to_bob.key)
    )

    assert rejection(parties, token).reason is Reason.DECRYPTION_FAILED


@pytest.mark.parametrize(
    "token",
    [b"", b"a.b.c.d", b"a.b.c.d.e.f", b"....", b"......"],
    ids=["empty", "four-parts", "six-parts", "five-empty", "seven-empty"],
)
def test_wrong_number_of_parts(parties: Parties, token: bytes) -> None:
    assert rejection(parties, token).reason is Reason.MALFORMED


@pytest.mark.parametrize(
    "tokens",
    [
        lambda t: t + b".extra",
        lambda t: t.rsplit(b".", 1)[0],
        lambda t: t.split(b".", 1)[1],
    ],
    ids=["six", "four", "no-header"],
)
def test_real_envelope_with_parts_added_or_removed(
    parties: Parties, tokens: Callable[[bytes], bytes]
) -> None:
    assert rejection(parties, tokens(seal_for_bob(parties))).reason is Reason.MALFORMED


@pytest.mark.parametrize(
    ("number", "new"),
    [
        (2, b"AAAAAAAAAAAAAAAA=="),
        (2, b"AAAAAAAAAAAAAAA+"),
        (2, b64u_encode(bytes(16))),
        (4, b64u_encode(bytes(12))),
        (1, b64u_encode(bytes(32))),
    ],
    ids=["padded", "standard-alphabet", "long-iv", "short-tag", "short-key"],
)
def test_parts_that_are_not_base64url_or_have_wrong_lengths(
    parties: Parties, number: int, new: bytes
) -> None:
    token = replace_part(seal_for_bob(parties), number, new)

    assert rejection(parties, token).reason is Reason.MALFORMED


def test_oversize_envelope_is_refused_before_parsing(parties: Parties) -> None:
    token = seal_for_bob(parties)
    oversize = token + b"A" * (MAX_ENVELOPE_BYTES + 1 - len(token))

    error = rejection(parties, oversize)

    assert error.reason is Reason.MALFORMED
    assert error.detail == "envelope is larger than the limit"


# -- the inner JWS -------------------------------------------------------------


def test_crafted_inner_jws_opens(parties: Parties) -> None:
    """Checks the crafting helpers, so the refusals below are due to the check under test."""
    signed = sign_jws(jws_header(parties), PAYLOAD, parties.alice.signing.key)

    assert open_as_bob(parties, _encrypt(signed, parties.to_bob)).payload == PAYLOAD


@pytest.mark.parametrize(
    ("updates", "signed"),
    [
        ({"alg": "none"}, False),
        ({"alg": "none"}, True),
        ({"alg": "HS256"}, True),
        ({"alg": "ES256"}, True),
        ({"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}}, True),
        ({"jku": "https://keys.example/jwks.json"}, True),
        ({"crit": ["b64"], "b64": False}, True),
        ({"x5c": ["MIIB"]}, True),
    ],
    ids=["none", "none-signed", "hs256", "es256", "jwk", "jku", "b64-false", "x5c"],
)
def test_inner_jws_header_outside_the_profile(
    parties: Parties, updates: dict[str, Any], signed: bool
) -> None:
    key = parties.alice.signing.key if signed else None
    jws_token = sign_jws(jws_header(parties, **updates), PAYLOAD, key)

    error = rejection(parties, _encrypt(jws_token, parties.to_bob))

    assert error.reason is Reason.FORBIDDEN_HEADER


@pytest.mark.parametrize(
    "updates",
    [
        {"aud": REMOVE},
        {"mid": REMOVE},
        {"iss": REMOVE},
        {"ctr": REMOVE},
        {"ver": REMOVE},
        {"iat": REMOVE},
        {"kid": REMOVE},
        {"alg": REMOVE},
        {"aud": ""},
        {"iss": 5},
        {"ver": ["1.0.0"]},
        {"iat": "1700000000"},
        {"iat": 1_700_000_000.5},
        {"iat": True},
        {"iat": None},
    ],
    ids=lambda updates: "-".join(f"{k}={v!r}" for k, v in updates.items())[:40],
)
def test_inner_jws_header_missing_or_mistyped(parties: Parties, updates: dict[str, Any]) -> None:
    jws_token = sign_jws(jws_header(parties, **updates), PAYLOAD, parties.alice.signing.key)

    assert rejection(parties, _encrypt(jws_token, parties.to_bob)).reason is Reason.MALFORMED


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (lambda signed: signed.rsplit(b".", 1)[0], Reason.MALFORMED),
        (lambda signed: signed + b".x", Reason.MALFORMED),
        (lambda signed: b"not a jws", Reason.MALFORMED),
        (lambda signed: b"e30." + signed.split(b".", 1)[1], Reason.MALFORMED),
        (lambda signed: signed + b"A", Reason.SIGNATURE_INVALID),
        (lambda signed: signed[:-2] + b"+/", Reason.SIGNATURE_INVALID),
    ],
    ids=["two-parts", "four-parts", "not-a-jws", "empty-header", "long-signature", "bad-b64"],
)
def test_inner_content_that_is_not_a_good_jws(
    parties: Parties, content: Callable[[bytes], bytes], reason: RejectReason
) -> None:
    signed = sign_jws(jws_header(parties), PAYLOAD, parties.alice.signing.key)

    assert rejection(parties, _encrypt(content(signed), parties.to_bob)).reason is reason


# -- interoperability with jwcrypto --------------------------------------------


def test_sealed_envelope_opens_and_verifies_with_jwcrypto(parties: Parties) -> None:
    token = seal_for_bob(parties)

    outer = jwe.JWE()
    outer.deserialize(token.decode(), key=jwk_for(parties.bob.to_jwks(), "X25519"))
    inner = jws.JWS()
    inner.deserialize(outer.payload.decode())
    inner.verify(jwk_for(parties.alice.public().to_jwks(), "Ed25519"))

    assert inner.payload == PAYLOAD
    outer_header = outer.jose_header
    assert {k: outer_header[k] for k in ("alg", "enc", "kid", "typ", "cty")} == {
        "alg": "ECDH-ES+A256KW",
        "enc": "A256GCM",
        "kid": parties.to_bob.kid,
        "typ": "gw-message+jwe",
        "cty": "gw-message+jws",
    }
    assert set(outer_header["epk"]) == {"kty", "crv", "x"}
    assert inner.jose_header == {
        "alg": "EdDSA",
        "kid": parties.alice.signing.kid,
        "typ": "gw-message+jws",
        "cty": "json",
        "mid": "m-1",
        "iss": "alice",
        "aud": "bob",
        "ctr": "demo.note",
        "ver": "1.0.0",
        "iat": 1_700_000_000,
    }


def test_jwcrypto_refuses_a_signature_from_another_key(parties: Parties) -> None:
    outer = jwe.JWE()
    outer.deserialize(seal_for_bob(parties).decode(), key=jwk_for(parties.bob.to_jwks(), "X25519"))
    inner = jws.JWS()
    inner.deserialize(outer.payload.decode())

    with pytest.raises(JWException):
        inner.verify(jwk_for(parties.carol.public().to_jwks(), "Ed25519"))


def test_envelope_built_by_jwcrypto_opens(parties: Parties) -> None:
    header = jws_header(parties, mid="m-2", iat=1_700_000_001)
    signer = jws.JWS(PAYLOAD)
    signer.add_signature(
        jwk_for(parties.alice.to_jwks(), "Ed25519"), None, protected=json.dumps(header)
    )
    encrypter = jwe.JWE(
        signer.serialize(compact=True).encode(),
        protected=json.dumps(
            {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "kid": parties.to_bob.kid}
        ),
    )
    encrypter.add_recipient(jwk_for(parties.bob.public().to_jwks(), "X25519"))
    token = encrypter.serialize(compact=True).encode()

    opened = open_as_bob(parties, token)

    assert opened.payload == PAYLOAD
    assert opened.binding == Binding("m-2", "alice", "bob", "demo.note", "1.0.0", 1_700_000_001)
    assert opened.signing_kid == parties.alice.signing.kid
