"""The envelope: sign-then-encrypt in both key suites, every refusal reason,
CEK amortisation, and JOSE interoperability with jwcrypto in every mode."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    PublicFormat,
)
from jwcrypto import jwe, jwk, jws
from jwcrypto.common import JWException

from gateway.crypto import envelope
from gateway.crypto.encoding import b64u_decode, b64u_encode, compact_json
from gateway.crypto.envelope import (
    MAX_ENVELOPE_BYTES,
    Binding,
    Opened,
    Opener,
    Sealer,
    VerifyKeyLookup,
    derive_kek,
    open_envelope,
    seal,
    sign_compact,
)
from gateway.crypto.jwk import (
    AgreementPrivate,
    AgreementPublic,
    EncryptKey,
    SignKey,
    Suite,
    VerifyKey,
)
from gateway.crypto.keys import PrivateKeys
from gateway.errors import KeyStoreError, RejectReason, VerificationError

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
BINDING = Binding("m-1", "alice", "bob", "demo.note", "1.0.0", 1_700_000_000)
PAYLOAD = b'{ "text" :  "hello",\n\t"n": 1.50 }\n'
REFERRAL = {
    "referralId": "REF-2026-000001",
    "issuedOn": "2026-11-02",
    "patient": {"patientId": "P0000012345", "birthDate": "1961-03-14", "sex": "female"},
    "diagnosis": {"icd10": "I25.1"},
    "urgency": "routine",
}
PROJECTED = json.dumps(
    {"referralId": REFERRAL["referralId"], "patient": {"birthDate": "1961-03-14"}},
    separators=(",", ":"),
).encode()
"""A projection of REFERRAL for a consumer entitled to two members: just bytes."""
P256_FIELD = 2**256 - 2**224 + 2**192 + 2**96 - 1
REMOVE = object()
"""A header update that deletes the member."""

Reason = RejectReason


@dataclass(frozen=True)
class Parties:
    suite: Suite
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


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class AgreeCounter:
    """Counts the ECDH agreements the envelope module performs (one per CEK unwrap)."""

    def __init__(self) -> None:
        self.calls = 0


def make_parties(suite: Suite) -> Parties:
    return Parties(suite, *(PrivateKeys.generate(suite) for _ in range(3)))


@pytest.fixture(scope="module")
def by_suite() -> dict[Suite, Parties]:
    return {suite: make_parties(suite) for suite in Suite}


@pytest.fixture(scope="module", params=list(Suite), ids=lambda suite: suite.value)
def parties(request: pytest.FixtureRequest, by_suite: dict[Suite, Parties]) -> Parties:
    """Alice, Bob and Carol, all of one suite; every test using it runs for both suites."""
    result: Parties = by_suite[request.param]
    return result


@pytest.fixture
def agreements(monkeypatch: pytest.MonkeyPatch) -> AgreeCounter:
    counter = AgreeCounter()
    real = envelope.agree

    def counting(private: AgreementPrivate, public: AgreementPublic) -> bytes:
        counter.calls += 1
        return real(private, public)

    monkeypatch.setattr(envelope, "agree", counting)
    return counter


# -- helpers -------------------------------------------------------------------


def seal_for_bob(p: Parties, payload: bytes = PAYLOAD, binding: Binding = BINDING) -> bytes:
    return seal(payload, binding, signer=p.alice.signing, recipient_key=p.to_bob)


def binding_for(number: int, recipient: str = "bob") -> Binding:
    return Binding(f"m-{number}", "alice", recipient, "demo.note", "1.0.0", 1_700_000_000 + number)


def open_as_bob(
    p: Parties, token: bytes, *, recipient: str = "bob", verify_key: VerifyKeyLookup | None = None
) -> Opened:
    return open_envelope(token, recipient=recipient, keys=p.bob, verify_key=verify_key or p.lookup)


def rejection(
    p: Parties,
    token: bytes,
    *,
    recipient: str = "bob",
    verify_key: VerifyKeyLookup | None = None,
    opener: Opener | None = None,
) -> VerificationError:
    def attempt() -> Opened:
        if opener is None:
            return open_as_bob(p, token, recipient=recipient, verify_key=verify_key)
        return opener.open(token, recipient=recipient, verify_key=verify_key or p.lookup)

    with pytest.raises(VerificationError) as info:
        attempt()
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


def flip(part: bytes, index: int) -> bytes:
    # +32 changes the top bit of the 6-bit group, which every character uses.
    return replace_char(part, index, lambda i: i + 32)


def replace_part(token: bytes, number: int, new: bytes) -> bytes:
    parts = token.split(b".")
    parts[number] = new
    return b".".join(parts)


def jws_header(signer: SignKey, **updates: Any) -> dict[str, Any]:
    """The inner JWS header ``seal`` writes for BINDING and ``signer``, with ``updates``."""
    header = {
        "alg": signer.alg,
        "kid": signer.kid,
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


def sign_jws(header: dict[str, Any], payload: bytes, key: SignKey | None) -> bytes:
    """A compact JWS signed with ``key``'s own algorithm, whatever ``header`` says;
    with no key the signature is empty (as for alg 'none')."""
    if key is not None:
        return sign_compact(header, payload, key)
    return b64u_encode(compact_json(header)) + b"." + b64u_encode(payload) + b"."


def with_signature(signed: bytes, signature: bytes) -> bytes:
    return signed.rsplit(b".", 1)[0] + b"." + b64u_encode(signature)


def ephemeral_for(recipient: EncryptKey) -> X25519PrivateKey | ec.EllipticCurvePrivateKey:
    if isinstance(recipient.key, X25519PublicKey):
        return X25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def exchange(private: AgreementPrivate, public: AgreementPublic) -> bytes:
    if isinstance(private, X25519PrivateKey) and isinstance(public, X25519PublicKey):
        return private.exchange(public)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return private.exchange(ec.ECDH(), public)


def epk_of(public: AgreementPublic) -> dict[str, str]:
    if isinstance(public, X25519PublicKey):
        x = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"kty": "OKP", "crv": "X25519", "x": b64u_encode(x).decode()}
    numbers = public.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64u_encode(numbers.x.to_bytes(32, "big")).decode(),
        "y": b64u_encode(numbers.y.to_bytes(32, "big")).decode(),
    }


def build_jwe(
    plaintext: bytes,
    recipient: EncryptKey,
    *,
    epk: dict[str, Any] | None = None,
    shared: bytes | None = None,
) -> bytes:
    """An independent ECDH-ES+A256KW / A256GCM encryption whose AAD matches its header.

    ``epk`` and ``shared`` override the ephemeral key and the agreed secret, so a
    crafted envelope is refused only by the check under test, never by the AAD.
    """
    ephemeral = ephemeral_for(recipient)
    header = {
        "alg": "ECDH-ES+A256KW",
        "enc": "A256GCM",
        "kid": recipient.kid,
        "epk": epk if epk is not None else epk_of(ephemeral.public_key()),
    }
    secret = shared if shared is not None else exchange(ephemeral, recipient.key)
    protected = b64u_encode(compact_json(header))
    cek, iv = os.urandom(32), os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected)
    parts = (aes_key_wrap(derive_kek(secret), cek), iv, sealed[:-16], sealed[-16:])
    return b".".join([protected, *(b64u_encode(part) for part in parts)])


def unwrap_cek(keys: PrivateKeys, token: bytes) -> bytes:
    """The CEK of an envelope, recovered independently with the recipient's key."""
    protected, wrapped = token.split(b".")[:2]
    header = decode_header(protected)
    decrypt = keys.decrypt_key(header["kid"])
    assert decrypt is not None
    epk = header["epk"]
    public: AgreementPublic
    if epk["kty"] == "OKP":
        public = X25519PublicKey.from_public_bytes(b64u_decode(epk["x"]))
    else:
        x, y = (int.from_bytes(b64u_decode(epk[c]), "big") for c in ("x", "y"))
        public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    return aes_key_unwrap(derive_kek(exchange(decrypt.key, public)), b64u_decode(wrapped))


def other_suite(suite: Suite) -> Suite:
    return Suite.P256 if suite is Suite.ED25519 else Suite.ED25519


# -- jwcrypto keys, built from the key objects ---------------------------------

PEM_SECRET = b"interop test passphrase"


def jwcrypto_private(key: Any) -> jwk.JWK:
    """A private key as jwcrypto reads it from the encrypted PKCS#8 PEM the gateway stores."""
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(PEM_SECRET))
    return jwk.JWK.from_pem(pem, password=PEM_SECRET)


def jwcrypto_public(key: Any) -> jwk.JWK:
    return jwk.JWK.from_pyca(key)


def jwcrypto_open(token: bytes, keys: PrivateKeys) -> jwe.JWE:
    outer = jwe.JWE()
    outer.deserialize(token.decode(), key=jwcrypto_private(keys.decryption[0].key))
    return outer


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


def test_opened_carries_the_verify_key_and_the_signed_header(parties: Parties) -> None:
    opened = open_as_bob(parties, seal_for_bob(parties))

    assert opened.verify_key == parties.alice.public().signing[0]
    assert opened.verify_key.alg == parties.suite.sign_alg
    assert dict(opened.header) == jws_header(parties.alice.signing)


def test_p256_round_trip_uses_es256_and_p256_keys(by_suite: dict[Suite, Parties]) -> None:
    p = by_suite[Suite.P256]
    token = seal_for_bob(p, PAYLOAD)

    outer = decode_header(token.split(b".")[0])
    assert outer["alg"] == "ECDH-ES+A256KW"
    assert outer["enc"] == "A256GCM"
    assert outer["kid"] == p.to_bob.kid
    assert set(outer["epk"]) == {"kty", "crv", "x", "y"}
    assert (outer["epk"]["kty"], outer["epk"]["crv"]) == ("EC", "P-256")
    opened = open_as_bob(p, token)
    assert opened.payload == PAYLOAD
    assert opened.header["alg"] == "ES256"
    assert opened.verify_key.alg == "ES256"


@pytest.mark.parametrize("sender", list(Suite), ids=lambda s: f"from-{s.value}")
@pytest.mark.parametrize("recipient", list(Suite), ids=lambda s: f"to-{s.value}")
def test_sender_and_recipient_suites_are_independent(
    by_suite: dict[Suite, Parties], sender: Suite, recipient: Suite
) -> None:
    alice, bob = by_suite[sender].alice, by_suite[recipient].bob
    token = seal(PAYLOAD, BINDING, signer=alice.signing, recipient_key=bob.public().encryption[0])

    opened = open_envelope(
        token, recipient="bob", keys=bob, verify_key=lambda s, kid: alice.public().verify_key(kid)
    )

    assert opened.payload == PAYLOAD
    assert opened.header["alg"] == sender.sign_alg


def test_sealing_is_randomised(parties: Parties) -> None:
    first, second = seal_for_bob(parties), seal_for_bob(parties)

    assert first != second
    assert first.split(b".")[0] != second.split(b".")[0]  # a fresh ephemeral key each
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


def test_envelope_to_a_retired_decryption_key_still_opens(parties: Parties) -> None:
    token = seal_for_bob(parties)
    rotated = parties.bob.rotated(now=1_700_000_000, overlap_s=3600)

    assert rotated.public().encryption[0].kid != parties.to_bob.kid
    opened = open_envelope(token, recipient="bob", keys=rotated, verify_key=parties.lookup)
    assert opened.payload == PAYLOAD


def test_only_p256_ec_keys_are_accepted() -> None:
    with pytest.raises(KeyStoreError):
        SignKey.of(ec.generate_private_key(ec.SECP384R1()))


# -- tampering and misdirection ------------------------------------------------


@pytest.mark.parametrize("number", range(5), ids=["header", "key", "iv", "ciphertext", "tag"])
@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_any_flipped_character_is_refused(parties: Parties, number: int, position: str) -> None:
    token = seal_for_bob(parties)
    part = token.split(b".")[number]
    index = {"first": 0, "middle": len(part) // 2, "last": len(part) - 1}[position]
    tampered = replace_part(token, number, flip(part, index))

    assert rejection(parties, tampered).reason in {Reason.MALFORMED, Reason.DECRYPTION_FAILED}


@pytest.mark.parametrize("number", range(5), ids=["header", "key", "iv", "ciphertext", "tag"])
@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_any_flipped_character_is_refused_by_a_warm_opener(
    parties: Parties, number: int, position: str
) -> None:
    """The opener has already unwrapped this envelope's CEK: the cache must not help."""
    token = seal_for_bob(parties)
    opener = Opener(parties.bob.decryption, cache_size=8)
    opener.open(token, recipient="bob", verify_key=parties.lookup)
    part = token.split(b".")[number]
    index = {"first": 0, "middle": len(part) // 2, "last": len(part) - 1}[position]
    tampered = replace_part(token, number, flip(part, index))

    reason = rejection(parties, tampered, opener=opener).reason

    assert reason in {Reason.MALFORMED, Reason.DECRYPTION_FAILED}


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
    signer = parties.alice.signing
    signed = sign_jws(jws_header(signer, aud="other"), PAYLOAD, signer)
    _header, payload, signature = signed.split(b".")
    edited = b64u_encode(compact_json(jws_header(signer))) + b"." + payload + b"." + signature

    error = rejection(parties, build_jwe(edited, parties.to_bob))

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


# -- algorithm confusion and signature form ------------------------------------


@pytest.mark.parametrize("signed_by", ["the-named-key", "a-key-of-the-claimed-alg"])
@pytest.mark.parametrize(
    "key_suite", list(Suite), ids=["ed25519-key-header-says-es256", "p256-key-header-says-eddsa"]
)
def test_alg_must_be_the_alg_of_the_key_the_kid_names(
    by_suite: dict[Suite, Parties], parties: Parties, key_suite: Suite, signed_by: str
) -> None:
    named = by_suite[key_suite].alice
    claimed = other_suite(key_suite)
    signer = named.signing if signed_by == "the-named-key" else SignKey.generate(claimed)
    header = jws_header(named.signing, alg=claimed.sign_alg)
    token = build_jwe(sign_jws(header, PAYLOAD, signer), parties.to_bob)

    error = rejection(parties, token, verify_key=lambda s, kid: named.public().verify_key(kid))

    assert error.reason is Reason.FORBIDDEN_HEADER


def _es256_parts(p: Parties) -> tuple[bytes, bytes]:
    signed = sign_jws(jws_header(p.alice.signing), PAYLOAD, p.alice.signing)
    return signed, b64u_decode(signed.rsplit(b".", 1)[1])


ES256_FORGERIES: dict[str, Callable[[bytes, bytes], bytes]] = {
    "63-bytes": lambda sig, signing_input: sig[:-1],
    "65-bytes": lambda sig, signing_input: sig + b"\x00",
    "65-bytes-leading-zero": lambda sig, signing_input: b"\x00" + sig,
    "s-with-a-leading-zero": lambda sig, signing_input: sig[:32] + b"\x00" + sig[32:],
    "128-bytes": lambda sig, signing_input: sig + sig,
    "empty": lambda sig, signing_input: b"",
    "der-encoded": lambda sig, signing_input: encode_dss_signature(
        int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    ),
    "r-and-s-swapped": lambda sig, signing_input: sig[32:] + sig[:32],
    "all-zero": lambda sig, signing_input: bytes(64),
    "ed25519-signature": lambda sig, signing_input: Ed25519PrivateKey.generate().sign(
        signing_input
    ),
}


@pytest.mark.parametrize("forgery", list(ES256_FORGERIES))
def test_es256_signature_of_the_wrong_form(by_suite: dict[Suite, Parties], forgery: str) -> None:
    p = by_suite[Suite.P256]
    signed, signature = _es256_parts(p)
    signing_input = signed.rsplit(b".", 1)[0]
    forged = with_signature(signed, ES256_FORGERIES[forgery](signature, signing_input))

    assert open_as_bob(p, build_jwe(signed, p.to_bob)).payload == PAYLOAD
    assert rejection(p, build_jwe(forged, p.to_bob)).reason is Reason.SIGNATURE_INVALID


@pytest.mark.parametrize("length", [0, 32, 63, 65], ids=lambda n: f"{n}-bytes")
def test_signature_of_the_wrong_length(parties: Parties, length: int) -> None:
    signed = sign_jws(jws_header(parties.alice.signing), PAYLOAD, parties.alice.signing)
    signature = b64u_decode(signed.rsplit(b".", 1)[1])
    assert len(signature) == 64
    forged = with_signature(signed, (signature * 2)[:length])

    assert rejection(parties, build_jwe(forged, parties.to_bob)).reason is Reason.SIGNATURE_INVALID


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
        {"apu": "QWxpY2U", "apv": "Qm9i"},
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
        b'{"typ":' + b"[" * 2000 + b"]" * 2000 + b"}",
    ],
    ids=["array", "string", "not-json", "duplicate-member", "over-4kB", "deeply-nested"],
)
def test_jwe_header_that_is_not_a_small_json_object(parties: Parties, header: bytes) -> None:
    token = replace_part(seal_for_bob(parties), 0, b64u_encode(header))

    assert rejection(parties, token).reason is Reason.MALFORMED


def test_independently_built_jwe_opens(parties: Parties) -> None:
    """Checks the crafting helper, so the refusals below are due to the check under test."""
    signed = sign_jws(jws_header(parties.alice.signing), PAYLOAD, parties.alice.signing)

    assert open_as_bob(parties, build_jwe(signed, parties.to_bob)).payload == PAYLOAD


@pytest.mark.parametrize("x", [bytes(32), b"\x01" + bytes(31)], ids=["all-zero", "order-4-point"])
def test_low_order_x25519_ephemeral_key_is_refused(
    by_suite: dict[Suite, Parties], x: bytes
) -> None:
    p = by_suite[Suite.ED25519]
    signed = sign_jws(jws_header(p.alice.signing), PAYLOAD, p.alice.signing)
    epk = {"kty": "OKP", "crv": "X25519", "x": b64u_encode(x).decode()}
    # Whoever crafts this knows the agreed secret: all zeros.
    token = build_jwe(signed, p.to_bob, epk=epk, shared=bytes(32))

    assert rejection(p, token).reason is Reason.DECRYPTION_FAILED


def _refused_epk(p: Parties, change: Callable[[dict[str, Any]], dict[str, Any]]) -> RejectReason:
    """Build an envelope whose epk is ``change``d but whose secret is the genuine one."""
    ephemeral = ephemeral_for(p.to_bob)
    epk = change(epk_of(ephemeral.public_key()))
    signed = sign_jws(jws_header(p.alice.signing), PAYLOAD, p.alice.signing)
    token = build_jwe(signed, p.to_bob, epk=epk, shared=exchange(ephemeral, p.to_bob.key))
    return rejection(p, token).reason


def _b64_int(value: int) -> str:
    return b64u_encode(value.to_bytes(32, "big")).decode()


def _plus_one(coordinate: str) -> str:
    return _b64_int((int.from_bytes(b64u_decode(coordinate), "big") + 1) % P256_FIELD)


def _x25519_epk() -> dict[str, Any]:
    return epk_of(X25519PrivateKey.generate().public_key())


def _p256_epk() -> dict[str, Any]:
    return epk_of(ec.generate_private_key(ec.SECP256R1()).public_key())


X25519_EPK_CHANGES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "extra-member": lambda epk: {**epk, "d": "AAAA"},
    "wrong-curve": lambda epk: {**epk, "crv": "X448"},
    "wrong-kty": lambda epk: {**epk, "kty": "EC"},
    "short-x": lambda epk: {**epk, "x": b64u_encode(bytes(31)).decode()},
    "x-not-text": lambda epk: {**epk, "x": 7},
    "ed25519-key": lambda epk: {**epk, "crv": "Ed25519"},
    "p256-key": lambda epk: _p256_epk(),
}

P256_EPK_CHANGES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "extra-member": lambda epk: {**epk, "d": "AAAA"},
    "no-y": lambda epk: updated(epk, {"y": REMOVE}),
    "wrong-curve": lambda epk: {**epk, "crv": "P-384"},
    "wrong-kty": lambda epk: {**epk, "kty": "OKP"},
    "short-x": lambda epk: {**epk, "x": b64u_encode(bytes(31)).decode()},
    "y-not-text": lambda epk: {**epk, "y": 7},
    "x25519-key": lambda epk: _x25519_epk(),
    "x-out-of-field": lambda epk: {**epk, "x": _b64_int(P256_FIELD)},
    "origin": lambda epk: {**epk, "x": _b64_int(0), "y": _b64_int(0)},
}


@pytest.mark.parametrize("change", list(X25519_EPK_CHANGES))
def test_malformed_x25519_ephemeral_key_is_refused(
    by_suite: dict[Suite, Parties], change: str
) -> None:
    reason = _refused_epk(by_suite[Suite.ED25519], X25519_EPK_CHANGES[change])

    assert reason is Reason.DECRYPTION_FAILED


@pytest.mark.parametrize("change", list(P256_EPK_CHANGES))
def test_malformed_p256_ephemeral_key_is_refused(
    by_suite: dict[Suite, Parties], change: str
) -> None:
    reason = _refused_epk(by_suite[Suite.P256], P256_EPK_CHANGES[change])

    assert reason is Reason.DECRYPTION_FAILED


@pytest.mark.parametrize("coordinate", ["x", "y"])
def test_p256_ephemeral_key_off_the_curve_is_refused(
    by_suite: dict[Suite, Parties], coordinate: str
) -> None:
    """An invalid-curve point: the agreed secret is the genuine one, only the point is off."""
    reason = _refused_epk(
        by_suite[Suite.P256], lambda epk: {**epk, coordinate: _plus_one(epk[coordinate])}
    )

    assert reason is Reason.DECRYPTION_FAILED


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
    signed = sign_jws(jws_header(parties.alice.signing), PAYLOAD, parties.alice.signing)

    assert open_as_bob(parties, build_jwe(signed, parties.to_bob)).payload == PAYLOAD


@pytest.mark.parametrize(
    ("updates", "signed"),
    [
        ({"alg": "none"}, False),
        ({"alg": "none"}, True),
        ({"alg": "HS256"}, True),
        ({"alg": "RS256"}, True),
        ({"alg": "ES384"}, True),
        ({"alg": "Ed25519"}, True),
        ({"alg": "eddsa"}, True),
        ({"alg": ["EdDSA", "ES256"]}, True),
        ({"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}}, True),
        ({"jku": "https://keys.example/jwks.json"}, True),
        ({"x5u": "https://keys.example/cert.pem"}, True),
        ({"crit": ["b64"], "b64": False}, True),
        ({"x5c": ["MIIB"]}, True),
    ],
    ids=[
        "none",
        "none-signed",
        "hs256",
        "rs256",
        "es384",
        "ed25519-alias",
        "lowercase",
        "alg-list",
        "jwk",
        "jku",
        "x5u",
        "b64-false",
        "x5c",
    ],
)
def test_inner_jws_header_outside_the_profile(
    parties: Parties, updates: dict[str, Any], signed: bool
) -> None:
    key = parties.alice.signing if signed else None
    jws_token = sign_jws(jws_header(parties.alice.signing, **updates), PAYLOAD, key)

    error = rejection(parties, build_jwe(jws_token, parties.to_bob))

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
    signer = parties.alice.signing
    jws_token = sign_jws(jws_header(signer, **updates), PAYLOAD, signer)

    assert rejection(parties, build_jwe(jws_token, parties.to_bob)).reason is Reason.MALFORMED


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
    signed = sign_jws(jws_header(parties.alice.signing), PAYLOAD, parties.alice.signing)

    assert rejection(parties, build_jwe(content(signed), parties.to_bob)).reason is reason


# -- amortised sealing ---------------------------------------------------------


def seal_many(
    p: Parties, sealer: Sealer, count: int, *, start: int = 0, payload: bytes = PAYLOAD
) -> list[bytes]:
    return [
        sealer.seal(payload, binding_for(n), signer=p.alice.signing, recipient_key=p.to_bob)
        for n in range(start, start + count)
    ]


def shared_parts(tokens: list[bytes]) -> set[tuple[bytes, bytes]]:
    """The distinct (protected header, wrapped key) pairs among ``tokens``."""
    return {(parts[0], parts[1]) for parts in (t.split(b".") for t in tokens)}


def test_amortised_envelopes_share_header_and_wrapped_key_but_not_ivs(parties: Parties) -> None:
    sealer = Sealer(reuse_messages=5, reuse_s=60, clock=FakeClock())
    tokens = seal_many(parties, sealer, 5)

    assert len(shared_parts(tokens)) == 1
    assert len({t.split(b".")[2] for t in tokens}) == 5
    assert len({unwrap_cek(parties.bob, t) for t in tokens}) == 1
    opener = Opener(parties.bob.decryption, cache_size=8)
    for n, token in enumerate(tokens):
        uncached = open_as_bob(parties, token)
        cached = opener.open(token, recipient="bob", verify_key=parties.lookup)
        assert uncached == cached
        assert uncached.payload == PAYLOAD
        assert uncached.binding == binding_for(n)


@pytest.mark.parametrize("reuse", [1, 3])
def test_a_new_cek_and_ephemeral_key_after_n_messages(parties: Parties, reuse: int) -> None:
    sealer = Sealer(reuse_messages=reuse, reuse_s=60, clock=FakeClock())
    tokens = seal_many(parties, sealer, 3 * reuse)

    groups = [tokens[i : i + reuse] for i in range(0, len(tokens), reuse)]
    assert [len(shared_parts(group)) for group in groups] == [1, 1, 1]
    assert len(shared_parts(tokens)) == 3
    epks = {json.dumps(decode_header(t.split(b".")[0])["epk"]) for t in tokens}
    assert len(epks) == 3
    assert len({unwrap_cek(parties.bob, group[0]) for group in groups}) == 3
    assert all(open_as_bob(parties, t).payload == PAYLOAD for t in tokens)


def test_a_new_cek_after_t_seconds(parties: Parties) -> None:
    clock = FakeClock()
    sealer = Sealer(reuse_messages=1000, reuse_s=30, clock=clock)

    first = seal_many(parties, sealer, 1)[0]
    clock.now += 29.9
    within = seal_many(parties, sealer, 1, start=1)[0]
    clock.now += 0.2  # 30.1 s after the CEK was drawn
    after = seal_many(parties, sealer, 1, start=2)[0]
    clock.now += 29.9  # 29.9 s after the second CEK was drawn
    later = seal_many(parties, sealer, 1, start=3)[0]

    assert shared_parts([first, within]) == shared_parts([first])
    assert shared_parts([after, later]) == shared_parts([after])
    assert shared_parts([first]) != shared_parts([after])
    assert unwrap_cek(parties.bob, first) != unwrap_cek(parties.bob, after)
    for token in (first, within, after, later):
        assert open_as_bob(parties, token).payload == PAYLOAD


def test_reuse_is_per_recipient_key(parties: Parties) -> None:
    sealer = Sealer(reuse_messages=10, reuse_s=60, clock=FakeClock())
    to_carol = parties.carol.public().encryption[0]

    tokens: dict[str, list[bytes]] = {"bob": [], "carol": []}
    for n in range(3):
        for name, key in (("bob", parties.to_bob), ("carol", to_carol)):
            binding = binding_for(n, recipient=name)
            token = sealer.seal(PAYLOAD, binding, signer=parties.alice.signing, recipient_key=key)
            tokens[name].append(token)

    assert len(shared_parts(tokens["bob"])) == 1
    assert len(shared_parts(tokens["carol"])) == 1
    assert shared_parts(tokens["bob"]) != shared_parts(tokens["carol"])
    for token in tokens["carol"]:
        opened = open_envelope(
            token, recipient="carol", keys=parties.carol, verify_key=parties.lookup
        )
        assert opened.payload == PAYLOAD
        assert rejection(parties, token).reason is Reason.UNKNOWN_KEY  # not Bob's


@pytest.mark.parametrize(
    "make",
    [
        lambda clock: Sealer(clock=clock),
        lambda clock: Sealer(reuse_messages=1, reuse_s=3600, clock=clock),
        None,
    ],
    ids=["default-sealer", "reuse-messages-1", "module-seal"],
)
def test_no_reuse_without_amortisation(
    parties: Parties, make: Callable[[FakeClock], Sealer] | None
) -> None:
    if make is None:
        tokens = [
            seal(
                PAYLOAD, binding_for(n), signer=parties.alice.signing, recipient_key=parties.to_bob
            )
            for n in range(4)
        ]
    else:
        tokens = seal_many(parties, make(FakeClock()), 4)

    assert len(shared_parts(tokens)) == 4
    assert len({unwrap_cek(parties.bob, t) for t in tokens}) == 4


@pytest.mark.parametrize(
    "bounds", [{"reuse_messages": 0}, {"reuse_messages": -1}, {"reuse_s": -1.0}]
)
def test_sealer_refuses_nonsense_bounds(bounds: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="reuse"):
        Sealer(**bounds)


# -- the opener's CEK cache ----------------------------------------------------


def test_cache_unwraps_once_and_returns_the_same_result(
    parties: Parties, agreements: AgreeCounter
) -> None:
    tokens = seal_many(parties, Sealer(reuse_messages=4, reuse_s=60, clock=FakeClock()), 4)
    opener = Opener(parties.bob.decryption, cache_size=8)
    agreements.calls = 0

    cached = [opener.open(t, recipient="bob", verify_key=parties.lookup) for t in tokens]
    assert agreements.calls == 1
    uncached = [open_as_bob(parties, t) for t in tokens]
    assert agreements.calls == 1 + 4

    assert cached == uncached
    assert [o.binding for o in cached] == [binding_for(n) for n in range(4)]


@pytest.mark.parametrize(
    ("number", "index"),
    [(2, 0), (3, "middle"), (3, 0), (4, 0), (4, "middle")],
    ids=["iv", "ciphertext-middle", "ciphertext-first", "tag-first", "tag-middle"],
)
def test_cached_header_and_key_do_not_admit_a_tampered_envelope(
    parties: Parties, agreements: AgreeCounter, number: int, index: int | str
) -> None:
    first, second = seal_many(parties, Sealer(reuse_messages=2, reuse_s=60, clock=FakeClock()), 2)
    opener = Opener(parties.bob.decryption, cache_size=8)
    opener.open(first, recipient="bob", verify_key=parties.lookup)
    part = second.split(b".")[number]
    tampered = replace_part(second, number, flip(part, len(part) // 2 if index == "middle" else 0))
    agreements.calls = 0

    assert shared_parts([first, tampered]) == shared_parts([first])
    assert rejection(parties, tampered, opener=opener).reason is Reason.DECRYPTION_FAILED
    assert agreements.calls == 0  # the cache answered; the GCM tag refused
    assert opener.open(second, recipient="bob", verify_key=parties.lookup).payload == PAYLOAD


def test_cached_header_and_key_do_not_admit_content_of_another_cek(parties: Parties) -> None:
    sealer = Sealer(reuse_messages=1, reuse_s=60, clock=FakeClock())
    first, other = seal_many(parties, sealer, 2)
    opener = Opener(parties.bob.decryption, cache_size=8)
    opener.open(first, recipient="bob", verify_key=parties.lookup)
    opener.open(other, recipient="bob", verify_key=parties.lookup)
    first_parts, other_parts = first.split(b"."), other.split(b".")
    spliced = [
        b".".join(first_parts[:2] + other_parts[2:]),  # cached header+key, other content
        b".".join(first_parts[:1] + other_parts[1:]),  # other wrapped key under this epk
        b".".join(other_parts[:1] + first_parts[1:]),
    ]

    for token in spliced:
        assert rejection(parties, token, opener=opener).reason is Reason.DECRYPTION_FAILED


def test_cache_accepts_nothing_an_uncached_opener_refuses(parties: Parties) -> None:
    """A wrapped key moved under another header is not a JWE, even to one who knows its CEK."""
    first, other = (seal_for_bob(parties, binding=binding_for(n)) for n in range(2))
    protected, wrapped = other.split(b".")[0], first.split(b".")[1]
    signed = sign_jws(jws_header(parties.alice.signing), PAYLOAD, parties.alice.signing)
    iv = os.urandom(12)
    sealed = AESGCM(unwrap_cek(parties.bob, first)).encrypt(iv, signed, protected)
    parts = (wrapped, b64u_encode(iv), b64u_encode(sealed[:-16]), b64u_encode(sealed[-16:]))
    forged = b".".join([protected, *parts])
    opener = Opener(parties.bob.decryption, cache_size=8)
    for token in (first, other):
        opener.open(token, recipient="bob", verify_key=parties.lookup)

    assert rejection(parties, forged).reason is Reason.DECRYPTION_FAILED
    assert rejection(parties, forged, opener=opener).reason is Reason.DECRYPTION_FAILED


def test_cache_is_bounded_and_evicts_the_least_recently_used(
    parties: Parties, agreements: AgreeCounter
) -> None:
    a, b, c = (seal_for_bob(parties, binding=binding_for(n)) for n in range(3))
    opener = Opener(parties.bob.decryption, cache_size=2)

    def unwraps(token: bytes) -> int:
        before = agreements.calls
        assert opener.open(token, recipient="bob", verify_key=parties.lookup).payload == PAYLOAD
        return agreements.calls - before

    assert [unwraps(a), unwraps(b), unwraps(a)] == [1, 1, 0]
    assert unwraps(c) == 1  # evicts b, the least recently used (a was just used)
    assert [unwraps(a), unwraps(c)] == [0, 0]
    assert unwraps(b) == 1  # b was evicted; caching it again evicts a
    assert [unwraps(c), unwraps(b), unwraps(a)] == [0, 0, 1]


def test_cache_size_zero_caches_nothing(parties: Parties, agreements: AgreeCounter) -> None:
    token = seal_for_bob(parties)
    opener = Opener(parties.bob.decryption, cache_size=0)
    agreements.calls = 0

    for _ in range(3):
        opener.open(token, recipient="bob", verify_key=parties.lookup)

    assert agreements.calls == 3


# -- interoperability with jwcrypto --------------------------------------------


MODES = ["single", "amortised"]


def gateway_tokens(p: Parties, mode: str, payload: bytes = PAYLOAD) -> list[bytes]:
    if mode == "single":
        return [seal_for_bob(p, payload, binding_for(n)) for n in range(2)]
    sealer = Sealer(reuse_messages=1000, reuse_s=60, clock=FakeClock())
    tokens = seal_many(p, sealer, 3, payload=payload)
    assert len(shared_parts(tokens)) == 1
    return tokens


@pytest.mark.parametrize("mode", MODES)
def test_gateway_envelope_opens_and_verifies_with_jwcrypto(parties: Parties, mode: str) -> None:
    alice_public = jwk.JWK(**parties.alice.public().signing[0].to_jwk())
    assert alice_public.thumbprint() == parties.alice.signing.kid

    for n, token in enumerate(gateway_tokens(parties, mode)):
        outer = jwcrypto_open(token, parties.bob)
        inner = jws.JWS()
        inner.deserialize(outer.payload.decode())
        inner.verify(alice_public)

        assert inner.payload == PAYLOAD
        outer_header = outer.jose_header
        assert {k: outer_header[k] for k in ("alg", "enc", "kid", "typ", "cty")} == {
            "alg": "ECDH-ES+A256KW",
            "enc": "A256GCM",
            "kid": parties.to_bob.kid,
            "typ": "gw-message+jwe",
            "cty": "gw-message+jws",
        }
        expected_epk = {"kty", "crv", "x"} | ({"y"} if parties.suite is Suite.P256 else set())
        assert set(outer_header["epk"]) == expected_epk
        assert inner.jose_header == jws_header(
            parties.alice.signing, mid=f"m-{n}", iat=1_700_000_000 + n
        )


@pytest.mark.parametrize("mode", MODES)
def test_projected_payload_is_just_a_payload(parties: Parties, mode: str) -> None:
    alice_public = jwcrypto_public(parties.alice.signing.key.public_key())

    for token in gateway_tokens(parties, mode, payload=PROJECTED):
        inner = jws.JWS()
        inner.deserialize(jwcrypto_open(token, parties.bob).payload.decode())
        inner.verify(alice_public)

        assert inner.payload == PROJECTED
        assert open_as_bob(parties, token).payload == PROJECTED


def test_jwcrypto_refuses_a_signature_from_another_key(parties: Parties) -> None:
    outer = jwcrypto_open(seal_for_bob(parties), parties.bob)
    inner = jws.JWS()
    inner.deserialize(outer.payload.decode())

    with pytest.raises(JWException):
        inner.verify(jwcrypto_public(parties.carol.signing.key.public_key()))


def test_jwcrypto_refuses_a_tampered_amortised_envelope(parties: Parties) -> None:
    first, second, _ = gateway_tokens(parties, "amortised")
    ciphertext = second.split(b".")[3]
    tampered = replace_part(second, 3, flip(ciphertext, len(ciphertext) // 2))

    jwcrypto_open(first, parties.bob)
    with pytest.raises(JWException):
        jwcrypto_open(tampered, parties.bob)


def jwcrypto_envelope(p: Parties, header: dict[str, Any], payload: bytes = PAYLOAD) -> bytes:
    signer = jws.JWS(payload)
    signer.add_signature(jwcrypto_private(p.alice.signing.key), None, protected=json.dumps(header))
    encrypter = jwe.JWE(
        signer.serialize(compact=True).encode(),
        protected=json.dumps(
            {
                "alg": "ECDH-ES+A256KW",
                "enc": "A256GCM",
                "kid": p.to_bob.kid,
                "typ": "gw-message+jwe",
                "cty": "gw-message+jws",
            }
        ),
    )
    encrypter.add_recipient(jwk.JWK(**p.to_bob.to_jwk()))
    return str(encrypter.serialize(compact=True)).encode()


@pytest.mark.parametrize("payload", [PAYLOAD, PROJECTED], ids=["payload", "projected"])
def test_envelope_built_by_jwcrypto_opens(parties: Parties, payload: bytes) -> None:
    header = jws_header(parties.alice.signing, mid="m-2", iat=1_700_000_001)
    token = jwcrypto_envelope(parties, header, payload)

    opened = open_as_bob(parties, token)
    opener = Opener(parties.bob.decryption, cache_size=4)
    twice = [opener.open(token, recipient="bob", verify_key=parties.lookup) for _ in range(2)]

    assert opened.payload == payload
    assert opened.binding == Binding("m-2", "alice", "bob", "demo.note", "1.0.0", 1_700_000_001)
    assert opened.signing_kid == parties.alice.signing.kid
    assert dict(opened.header) == header
    assert twice == [opened, opened]
    epk = decode_header(token.split(b".")[0])["epk"]
    assert epk["crv"] == ("X25519" if parties.suite is Suite.ED25519 else "P-256")


def test_jwcrypto_envelope_with_the_wrong_alg_is_refused(
    by_suite: dict[Suite, Parties], parties: Parties
) -> None:
    """jwcrypto signs honestly with the named key; the header claims the other suite's alg."""
    claimed = other_suite(parties.suite).sign_alg
    header = jws_header(parties.alice.signing, alg=claimed)
    key = jwcrypto_private(by_suite[other_suite(parties.suite)].alice.signing.key)
    signer = jws.JWS(PAYLOAD)
    signer.add_signature(key, None, protected=json.dumps(header))
    token = build_jwe(signer.serialize(compact=True).encode(), parties.to_bob)

    assert rejection(parties, token).reason is Reason.FORBIDDEN_HEADER
