"""RFC 8037 Appendix A test vectors, run through the gateway's own key and envelope code.

The values are copied from RFC 8037 ("CFRG Elliptic Curve Diffie-Hellman (ECDH)
and Signatures in JSON Object Signing and Encryption (JOSE)", January 2017),
Appendix A: A.1 the Ed25519 private key, A.2 its public key, A.3 its JWK
thumbprint, A.4 the Ed25519 signing example, A.5 its validation, A.6 ECDH-ES
with X25519 (whose keys are those of RFC 7748 section 6.1). Hex strings are
the RFC's space-separated octets with the spaces removed.
"""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.crypto.encoding import b64u_decode, b64u_encode, compact_json
from gateway.crypto.envelope import agree, sign_compact, verify_signature
from gateway.crypto.jwk import (
    EncryptKey,
    SignKey,
    VerifyKey,
    kid_of,
    public_from_jwk,
    public_members,
)
from gateway.errors import KeyStoreError

# A.1. Ed25519 Private Key
A1_PRIVATE_JWK = {
    "kty": "OKP",
    "crv": "Ed25519",
    "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}
# A.2. Ed25519 Public Key
A2_PUBLIC_JWK = {
    "kty": "OKP",
    "crv": "Ed25519",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}
# A.3. JWK Thumbprint Canonicalization
A3_CANONICAL = b'{"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}'
A3_THUMBPRINT_HEX = "90facafea9b1556698540f70c0117a22ea37bd5cf3ed3c47093c1707282b4b89"
A3_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
# A.4. Ed25519 Signing
A4_HEADER = {"alg": "EdDSA"}
A4_PAYLOAD = b"Example of Ed25519 signing"
A4_JWS = (
    b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    b".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)
# A.6. ECDH-ES with X25519
A6_BOB_JWK = {
    "kty": "OKP",
    "crv": "X25519",
    "kid": "Bob",
    "x": "3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08",
}
A6_EPHEMERAL_SECRET_HEX = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
A6_EPHEMERAL_PUBLIC_HEX = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
A6_EPK_X = "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"
A6_Z_HEX = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"


def a1_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(b64u_decode(A1_PRIVATE_JWK["d"]))


def raw(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


# -- A.1 / A.2: keys ------------------------------------------------------------


def test_a1_private_key_yields_its_public_key() -> None:
    public = a1_private_key().public_key()

    assert public_members(public) == {k: A1_PRIVATE_JWK[k] for k in ("kty", "crv", "x")}


def test_a2_public_key_decodes() -> None:
    public = public_from_jwk(A2_PUBLIC_JWK)

    assert isinstance(public, Ed25519PublicKey)
    assert raw(public) == raw(a1_private_key().public_key())
    assert public_members(public) == A2_PUBLIC_JWK


# -- A.3: thumbprint ------------------------------------------------------------


def test_a3_canonical_form_is_what_the_project_hashes() -> None:
    assert compact_json(public_members(a1_private_key().public_key())) == A3_CANONICAL


def test_a3_thumbprint_is_the_kid() -> None:
    public = public_from_jwk(A2_PUBLIC_JWK)

    assert b64u_decode(A3_THUMBPRINT).hex() == A3_THUMBPRINT_HEX
    assert kid_of(public) == A3_THUMBPRINT
    assert SignKey.of(a1_private_key()).kid == A3_THUMBPRINT


def test_a3_thumbprint_is_the_kid_a_published_key_must_carry() -> None:
    key = VerifyKey.from_jwk({**A2_PUBLIC_JWK, "kid": A3_THUMBPRINT, "use": "sig"})

    assert key.kid == A3_THUMBPRINT
    assert key.alg == "EdDSA"
    with pytest.raises(KeyStoreError):
        VerifyKey.from_jwk({**A2_PUBLIC_JWK, "kid": "Bob"})


# -- A.4 / A.5: Ed25519 signing and validation ------------------------------------


def test_a4_signing_gives_the_rfc_jws_exactly() -> None:
    assert sign_compact(A4_HEADER, A4_PAYLOAD, SignKey.of(a1_private_key())) == A4_JWS


def test_a5_validation_with_the_public_key() -> None:
    key = VerifyKey.from_jwk(A2_PUBLIC_JWK)
    header, payload, signature = A4_JWS.split(b".")

    verify_signature(key, b64u_decode(signature), header + b"." + payload)

    assert b64u_decode(payload) == A4_PAYLOAD
    assert b64u_decode(header) == compact_json(A4_HEADER)


@pytest.mark.parametrize("part", [0, 1, 2], ids=["header", "payload", "signature"])
def test_a5_validation_fails_for_any_changed_part(part: int) -> None:
    key = VerifyKey.from_jwk(A2_PUBLIC_JWK)
    parts = A4_JWS.split(b".")
    changed = bytearray(b64u_decode(parts[part]))
    changed[0] ^= 1
    parts[part] = b64u_encode(bytes(changed))

    with pytest.raises(InvalidSignature):
        verify_signature(key, b64u_decode(parts[2]), parts[0] + b"." + parts[1])


# -- A.6: ECDH-ES with X25519 ------------------------------------------------------


def test_a6_ephemeral_public_key() -> None:
    ephemeral = X25519PrivateKey.from_private_bytes(bytes.fromhex(A6_EPHEMERAL_SECRET_HEX))

    assert raw(ephemeral.public_key()).hex() == A6_EPHEMERAL_PUBLIC_HEX
    assert public_members(ephemeral.public_key()) == {
        "crv": "X25519",
        "kty": "OKP",
        "x": A6_EPK_X,
    }


def test_a6_agreement_gives_the_rfc_z() -> None:
    ephemeral = X25519PrivateKey.from_private_bytes(bytes.fromhex(A6_EPHEMERAL_SECRET_HEX))
    bob = EncryptKey.from_jwk({k: v for k, v in A6_BOB_JWK.items() if k != "kid"})

    assert isinstance(bob.key, X25519PublicKey)
    assert agree(ephemeral, bob.key).hex() == A6_Z_HEX


def test_a6_bob_kid_is_not_a_thumbprint_so_the_project_refuses_it() -> None:
    """RFC 8037 names Bob's key "Bob"; the gateway's kids are RFC 7638 thumbprints."""
    with pytest.raises(KeyStoreError):
        EncryptKey.from_jwk(A6_BOB_JWK)
