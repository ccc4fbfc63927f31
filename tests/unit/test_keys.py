"""Participant keys: JWKs of both suites, thumbprints, key sets and the files on disk."""

from __future__ import annotations

import copy
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from jwcrypto import jwk as jose

from gateway.crypto.encoding import b64u_decode, b64u_encode
from gateway.crypto.jwk import (
    KEY_ALG,
    DecryptKey,
    EncryptKey,
    SignKey,
    Suite,
    VerifyKey,
    kid_of,
    public_from_jwk,
)
from gateway.crypto.keys import (
    PASSPHRASE_ENV,
    KeyStore,
    PrivateKeys,
    PublicKeys,
    passphrase,
    read_keys,
    read_public,
    write_keys,
)
from gateway.errors import KeyStoreError

SECRET = b"Tr0ub4dor&3 -- the test passphrase"
WRONG = b"not-the-passphrase-either-7731"
P256_FIELD = 2**256 - 2**224 + 2**192 + 2**96 - 1

# RFC 8037 appendix A.2 / A.3: an Ed25519 public key and its RFC 7638 thumbprint.
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

Jwk = dict[str, Any]
Mutation = Callable[[Jwk], None]

SHAPES = {
    Suite.ED25519: [
        ("OKP", "Ed25519", "sig", "EdDSA"),
        ("OKP", "X25519", "enc", KEY_ALG),
    ],
    Suite.P256: [
        ("EC", "P-256", "sig", "ES256"),
        ("EC", "P-256", "enc", KEY_ALG),
    ],
}


@pytest.fixture(scope="module", params=list(Suite), ids=[s.value for s in Suite])
def keys(request: pytest.FixtureRequest) -> PrivateKeys:
    suite: Suite = request.param
    return PrivateKeys.generate(suite)


@pytest.fixture(scope="module")
def ed() -> PrivateKeys:
    return PrivateKeys.generate(Suite.ED25519)


@pytest.fixture(scope="module")
def p256() -> PrivateKeys:
    return PrivateKeys.generate(Suite.P256)


def sig_jwk(keys: PrivateKeys) -> Jwk:
    return keys.signing.verify_key().to_jwk()


def enc_jwk(keys: PrivateKeys) -> Jwk:
    return keys.decryption[0].encrypt_key().to_jwk()


def raw_private(key: Any) -> bytes:
    """The private key's bytes, for comparing keys read back from disk."""
    return bytes(key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()))


def kids_of(keys: Iterable[DecryptKey]) -> list[str]:
    return [k.kid for k in keys]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def error_of(action: Callable[[], object]) -> KeyStoreError:
    with pytest.raises(KeyStoreError) as info:
        action()
    return info.value


def texts_of(exc: BaseException) -> Iterator[str]:
    """str and repr of an error and of everything it was raised from."""
    seen: BaseException | None = exc
    while seen is not None:
        yield str(seen)
        yield repr(seen)
        yield from (str(arg) for arg in seen.args)
        seen = seen.__cause__ or seen.__context__


def assert_no_secret(exc: BaseException, *secrets: bytes) -> None:
    for text in texts_of(exc):
        for secret in secrets:
            assert secret.decode() not in text
            assert repr(secret) not in text


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    previous = os.umask(0o022)
    os.umask(previous)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(previous)


# -- JWK encode / decode -------------------------------------------------------


@pytest.mark.parametrize("suite", list(Suite), ids=[s.value for s in Suite])
def test_public_jwk_shapes(suite: Suite) -> None:
    keys = PrivateKeys.generate(suite)

    jwks = keys.public().to_jwks()["keys"]

    assert [(k["kty"], k["crv"], k["use"], k["alg"]) for k in jwks] == SHAPES[suite]
    assert all("d" not in k for k in jwks)
    assert [k["kid"] for k in jwks] == [keys.signing.kid, keys.decryption[0].kid]
    for k in jwks:
        coordinates = ["x"] if k["kty"] == "OKP" else ["x", "y"]
        assert [len(b64u_decode(k[c])) for c in coordinates] == [32] * len(coordinates)


def test_verify_key_round_trip(keys: PrivateKeys) -> None:
    key = keys.signing.verify_key()

    decoded = VerifyKey.from_jwk(json.loads(json.dumps(key.to_jwk())))

    assert decoded == key
    assert decoded.alg == keys.signing.alg == keys.suite.sign_alg
    assert (decoded.valid_until, decoded.revoked_at) == (None, None)
    assert "valid_until" not in key.to_jwk()
    assert "revoked_at" not in key.to_jwk()


def test_encrypt_key_round_trip(keys: PrivateKeys) -> None:
    key = keys.decryption[0].encrypt_key()

    assert EncryptKey.from_jwk(json.loads(json.dumps(key.to_jwk()))) == key


def test_lifetime_members_round_trip(keys: PrivateKeys) -> None:
    key = VerifyKey(keys.signing.kid, keys.signing.key.public_key(), 1_700_000_000, 1_700_000_100)

    jwk = key.to_jwk()

    assert (jwk["valid_until"], jwk["revoked_at"]) == (1_700_000_000, 1_700_000_100)
    assert VerifyKey.from_jwk(jwk) == key


def test_zero_is_a_valid_time(ed: PrivateKeys) -> None:
    jwk = {**sig_jwk(ed), "valid_until": 0, "revoked_at": 0}

    decoded = VerifyKey.from_jwk(jwk)

    assert (decoded.valid_until, decoded.revoked_at) == (0, 0)


def test_jwk_without_kid_gets_its_thumbprint(keys: PrivateKeys) -> None:
    jwk = sig_jwk(keys)
    del jwk["kid"]

    assert VerifyKey.from_jwk(jwk).kid == keys.signing.kid


def test_rfc_8037_thumbprint_example() -> None:
    key = Ed25519PublicKey.from_public_bytes(b64u_decode(RFC8037_X))

    assert kid_of(key) == RFC8037_THUMBPRINT
    assert VerifyKey.from_jwk({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}).kid == (
        RFC8037_THUMBPRINT
    )
    assert jose.JWK(kty="OKP", crv="Ed25519", x=RFC8037_X).thumbprint() == RFC8037_THUMBPRINT


@pytest.mark.parametrize(
    "private",
    [
        pytest.param(Ed25519PrivateKey.generate, id="Ed25519"),
        pytest.param(X25519PrivateKey.generate, id="X25519"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), id="P-256-sig"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), id="P-256-enc"),
    ],
)
def test_thumbprints_equal_jwcrypto(private: Callable[[], Any]) -> None:
    key = private()
    public = key.public_key()

    expected = jose.JWK.from_pyca(public).thumbprint()

    assert kid_of(public) == expected
    # ... and from the JWK the gateway writes (what another party recomputes).
    ours = (
        SignKey.of(key).verify_key().to_jwk()
        if isinstance(key, Ed25519PrivateKey)
        else DecryptKey.of(key).encrypt_key().to_jwk()
    )
    assert ours["kid"] == expected
    assert jose.JWK(**ours).thumbprint() == expected


def test_every_published_kid_equals_jwcrypto_thumbprint(ed: PrivateKeys, p256: PrivateKeys) -> None:
    for keys in (ed, p256, ed.rotated(now=1, overlap_s=1)):
        for entry in keys.public().to_jwks()["keys"]:
            members = {k: v for k, v in entry.items() if k not in ("valid_until", "revoked_at")}
            assert entry["kid"] == jose.JWK(**members).thumbprint()


def test_generated_keys_are_distinct(keys: PrivateKeys) -> None:
    other = PrivateKeys.generate(keys.suite)

    assert other.signing.kid != keys.signing.kid
    assert other.decryption[0].kid != keys.decryption[0].kid
    assert keys.signing.kid != keys.decryption[0].kid


def on(mutation: dict[str, Any]) -> Mutation:
    """Update members (None removes one)."""

    def mutate(jwk: Jwk) -> None:
        for name, value in mutation.items():
            if value is None:
                jwk.pop(name, None)
            else:
                jwk[name] = value

    return mutate


def b64(data: bytes) -> str:
    return b64u_encode(data).decode()


def off_curve(jwk: Jwk) -> None:
    y = int.from_bytes(b64u_decode(jwk["y"]), "big")
    jwk["y"] = b64(((y + 1) % P256_FIELD).to_bytes(32, "big"))


def non_canonical_x(jwk: Jwk) -> None:
    """x + p for a point whose x is small: the same point, spelled differently."""
    x = 5  # x = 5 is on P-256 (y below); x + p still fits in 32 bytes
    rhs = (x**3 - 3 * x + 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B) % (
        P256_FIELD
    )
    y = pow(rhs, (P256_FIELD + 1) // 4, P256_FIELD)
    assert y * y % P256_FIELD == rhs
    jwk.update(x=b64((x + P256_FIELD).to_bytes(32, "big")), y=b64(y.to_bytes(32, "big")))
    jwk.pop("kid")


def non_canonical_b64(jwk: Jwk) -> None:
    """The last character of 32 bytes in base64url carries 2 unused bits: set them."""
    x: str = jwk["x"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    jwk["x"] = x[:-1] + alphabet[alphabet.index(x[-1]) | 1]


ANY_KEY_REFUSALS = [
    pytest.param(on({"kty": "RSA"}), "only OKP Ed25519/X25519 and EC P-256", id="kty-rsa"),
    pytest.param(on({"kty": "oct"}), "only OKP Ed25519/X25519 and EC P-256", id="kty-oct"),
    pytest.param(on({"kty": None}), "only OKP Ed25519/X25519 and EC P-256", id="no-kty"),
    pytest.param(on({"crv": None}), "only OKP Ed25519/X25519 and EC P-256", id="no-crv"),
    pytest.param(on({"crv": "P-384"}), "only OKP Ed25519/X25519 and EC P-256", id="crv-p384"),
    pytest.param(on({"crv": "Ed448"}), "only OKP Ed25519/X25519 and EC P-256", id="crv-ed448"),
    pytest.param(on({"crv": "X448"}), "only OKP Ed25519/X25519 and EC P-256", id="crv-x448"),
    pytest.param(on({"crv": "secp256k1"}), "only OKP Ed25519/X25519 and EC P-256", id="k1"),
    pytest.param(on({"x": None}), "JWK member 'x' is missing", id="no-x"),
    pytest.param(on({"x": 12}), "JWK member 'x' is missing", id="x-not-text"),
    pytest.param(on({"x": "not+base64/url"}), "'x' is not base64url", id="x-alphabet"),
    pytest.param(on({"x": "AAAA="}), "'x' is not base64url", id="x-padded"),
    pytest.param(on({"x": "A"}), "'x' is not base64url", id="x-bad-length"),
    pytest.param(non_canonical_b64, "'x' is not base64url", id="x-trailing-bits"),
    pytest.param(on({"x": b64(bytes(31))}), "'x' must be 32 bytes", id="x-31-bytes"),
    pytest.param(on({"x": b64(bytes(33))}), "'x' must be 32 bytes", id="x-33-bytes"),
    pytest.param(on({"x": ""}), "'x' must be 32 bytes", id="x-empty"),
    pytest.param(on({"kid": "not-the-thumbprint"}), "is not the key's thumbprint", id="kid"),
    pytest.param(on({"kid": ""}), "is not the key's thumbprint", id="kid-empty"),
    pytest.param(on({"kid": 42}), "is not the key's thumbprint", id="kid-number"),
    pytest.param(on({"kid": RFC8037_THUMBPRINT}), "is not the key's thumbprint", id="other-kid"),
]

EC_REFUSALS = [
    pytest.param(on({"y": None}), "JWK member 'y' is missing", id="no-y"),
    pytest.param(on({"y": "***"}), "'y' is not base64url", id="y-alphabet"),
    pytest.param(on({"y": b64(bytes(31))}), "'y' must be 32 bytes", id="y-31-bytes"),
    pytest.param(off_curve, "not a point on P-256", id="off-curve"),
    pytest.param(on({"x": b64(bytes(32)), "y": b64(bytes(32))}), "not a point", id="origin"),
    pytest.param(non_canonical_x, "not a point on P-256", id="x-not-reduced"),
    pytest.param(on({"x": b64(b"\xff" * 32)}), "not a point on P-256", id="x-above-field"),
    pytest.param(on({"kty": "OKP"}), "only OKP Ed25519/X25519 and EC P-256", id="okp-p256"),
]

OKP_REFUSALS = [
    pytest.param(on({"kty": "EC"}), "only OKP Ed25519/X25519 and EC P-256", id="ec-ed25519"),
]


def decode_error(decode: Callable[[Jwk], object], jwk: Jwk, mutation: Mutation) -> str:
    changed = copy.deepcopy(jwk)
    mutation(changed)
    return error_of(lambda: decode(changed)).detail


@pytest.mark.parametrize(("mutation", "message"), ANY_KEY_REFUSALS + OKP_REFUSALS)
@pytest.mark.parametrize("kind", ["sig", "enc"])
def test_okp_jwk_refusals(ed: PrivateKeys, kind: str, mutation: Mutation, message: str) -> None:
    decode = VerifyKey.from_jwk if kind == "sig" else EncryptKey.from_jwk
    jwk = sig_jwk(ed) if kind == "sig" else enc_jwk(ed)

    assert message in decode_error(decode, jwk, mutation)


@pytest.mark.parametrize(("mutation", "message"), ANY_KEY_REFUSALS + EC_REFUSALS)
@pytest.mark.parametrize("kind", ["sig", "enc"])
def test_ec_jwk_refusals(p256: PrivateKeys, kind: str, mutation: Mutation, message: str) -> None:
    decode = VerifyKey.from_jwk if kind == "sig" else EncryptKey.from_jwk
    jwk = sig_jwk(p256) if kind == "sig" else enc_jwk(p256)

    assert message in decode_error(decode, jwk, mutation)


def test_kid_error_does_not_echo_a_long_kid(ed: PrivateKeys) -> None:
    detail = decode_error(VerifyKey.from_jwk, sig_jwk(ed), on({"kid": "k" * 5000}))

    assert len(detail) < 200


def test_public_from_jwk_decodes_each_curve(ed: PrivateKeys, p256: PrivateKeys) -> None:
    for keys in (ed, p256):
        assert kid_of(public_from_jwk(sig_jwk(keys))) == keys.signing.kid
        assert kid_of(public_from_jwk(enc_jwk(keys))) == keys.decryption[0].kid


def test_key_of_the_wrong_kind_is_refused(ed: PrivateKeys) -> None:
    assert "a 'sig' key must be Ed25519 or P-256" in decode_error(
        VerifyKey.from_jwk, enc_jwk(ed), on({})
    )
    assert "an 'enc' key must be X25519 or P-256" in decode_error(
        EncryptKey.from_jwk, sig_jwk(ed), on({})
    )


@pytest.mark.parametrize("name", ["valid_until", "revoked_at"])
@pytest.mark.parametrize(
    "value",
    ["1700000000", -1, 1.5, 1e9, True, False, [1], {"t": 1}],
    ids=["text", "negative", "fraction", "float", "true", "false", "list", "object"],
)
def test_bad_lifetime_members_are_refused(ed: PrivateKeys, name: str, value: object) -> None:
    detail = decode_error(VerifyKey.from_jwk, sig_jwk(ed), on({name: value}))

    assert detail == f"JWK member '{name}' must be a Unix time in seconds"


# -- key sets ------------------------------------------------------------------


def jwks_error(jwks: Any) -> str:
    return error_of(lambda: PublicKeys.from_jwks(jwks)).detail


def test_public_keys_round_trip(keys: PrivateKeys) -> None:
    public = keys.public()

    text = json.dumps(public.to_jwks("alice"))
    decoded = PublicKeys.from_jwks(json.loads(text))

    assert decoded == public
    assert json.loads(text)["participant"] == "alice"
    assert "participant" not in public.to_jwks()


def test_rotated_public_keys_round_trip(keys: PrivateKeys) -> None:
    rotated = keys.rotated(now=1_700_000_000, overlap_s=600).rotated(
        now=1_700_000_500, overlap_s=600
    )
    public = rotated.public()

    decoded = PublicKeys.from_jwks(json.loads(json.dumps(public.to_jwks("alice"))))

    assert decoded == public
    assert [k.valid_until for k in decoded.signing] == [None, 1_700_001_100, 1_700_000_600]
    assert len(decoded.encryption) == 3


def test_lookups_by_kid(keys: PrivateKeys) -> None:
    public = keys.public()

    assert public.verify_key(keys.signing.kid) == public.signing[0]
    assert public.verify_key(keys.decryption[0].kid) is None
    assert public.verify_key("") is None
    assert keys.decrypt_key(keys.decryption[0].kid) == keys.decryption[0]
    assert keys.decrypt_key(keys.signing.kid) is None


def test_private_keys_know_their_suite(keys: PrivateKeys) -> None:
    assert PrivateKeys.generate(keys.suite).suite is keys.suite
    assert keys.public().signing[0].alg == keys.suite.sign_alg


def test_p256_use_tells_the_kinds_apart(p256: PrivateKeys) -> None:
    """Both P-256 keys look alike: only 'use' says which signs and which encrypts."""
    jwks = p256.public().to_jwks()
    jwks["keys"].reverse()

    public = PublicKeys.from_jwks(jwks)

    assert public.signing[0].kid == p256.signing.kid
    assert public.encryption[0].kid == p256.decryption[0].kid


def test_okp_keys_without_use_are_told_apart_by_curve(ed: PrivateKeys) -> None:
    jwks = ed.public().to_jwks()
    for key in jwks["keys"]:
        del key["use"]

    assert PublicKeys.from_jwks(jwks) == ed.public()


def set_on(index: int, mutation: Mutation) -> Callable[[Jwk], None]:
    def mutate(jwks: Jwk) -> None:
        mutation(jwks["keys"][index])

    return mutate


def keep(index: int) -> Callable[[Jwk], None]:
    def mutate(jwks: Jwk) -> None:
        jwks["keys"] = [jwks["keys"][index]]

    return mutate


SET_REFUSALS = [
    pytest.param(lambda j: j.clear(), "expected a JWK Set", id="no-keys"),
    pytest.param(lambda j: j.update(keys={}), "expected a JWK Set", id="keys-not-a-list"),
    pytest.param(lambda j: j["keys"].append("k"), "every entry of 'keys'", id="entry-text"),
    pytest.param(keep(0), "needs a signing ('sig') and an encryption ('enc') key", id="sig-only"),
    pytest.param(keep(1), "needs a signing ('sig') and an encryption ('enc') key", id="enc-only"),
    pytest.param(lambda j: j.update(keys=[]), "needs a signing ('sig')", id="empty"),
    pytest.param(set_on(0, on({"use": None})), "must say its 'use'", id="p256-no-use"),
    pytest.param(set_on(1, on({"use": None})), "must say its 'use'", id="p256-enc-no-use"),
    pytest.param(set_on(0, on({"use": "wrap"})), "'use' must be 'sig' or 'enc'", id="use-wrap"),
    pytest.param(set_on(1, on({"use": 1})), "'use' must be 'sig' or 'enc'", id="use-number"),
    pytest.param(set_on(0, on({"use": "enc"})), "needs a signing ('sig')", id="use-both-enc"),
    pytest.param(set_on(1, on({"kid": "x"})), "is not the key's thumbprint", id="bad-kid"),
]


@pytest.mark.parametrize(("mutation", "message"), SET_REFUSALS)
def test_public_keys_refusals(p256: PrivateKeys, mutation: Mutation, message: str) -> None:
    jwks = p256.public().to_jwks()
    mutation(jwks)

    assert message in jwks_error(jwks)


@pytest.mark.parametrize("document", [[], "keys", None, 3], ids=["list", "text", "null", "int"])
def test_public_keys_must_be_a_jwk_set(document: object) -> None:
    assert jwks_error(document) == "expected a JWK Set: an object with a 'keys' list"


def test_okp_key_with_the_wrong_use_is_refused(ed: PrivateKeys) -> None:
    jwks = ed.public().to_jwks()
    jwks["keys"][1]["use"] = "sig"

    assert "a 'sig' key must be Ed25519 or P-256" in jwks_error(jwks)


def test_rotated_keys(keys: PrivateKeys) -> None:
    rotated = keys.rotated(now=1_000, overlap_s=60)

    assert rotated.suite is keys.suite
    assert rotated.signing.kid != keys.signing.kid
    assert [k.kid for k in rotated.decryption][1:] == [keys.decryption[0].kid]
    assert rotated.decryption[0].kid != keys.decryption[0].kid
    assert rotated.retired == (replace_valid_until(keys.signing.verify_key(), 1_060),)
    public = rotated.public()
    assert [k.kid for k in public.signing] == [rotated.signing.kid, keys.signing.kid]
    assert [k.kid for k in public.encryption] == [k.kid for k in rotated.decryption]


def replace_valid_until(key: VerifyKey, valid_until: int) -> VerifyKey:
    return VerifyKey(key.kid, key.key, valid_until, key.revoked_at)


def test_repr_shows_kids_never_key_material(keys: PrivateKeys) -> None:
    texts = [repr(keys), str(keys), repr(keys.signing), repr(keys.decryption[0])]
    secrets = [raw_private(keys.signing.key), raw_private(keys.decryption[0].key)]

    for text in texts:
        assert keys.signing.kid in text or keys.decryption[0].kid in text
        assert "key=" not in text
        for secret in secrets:
            assert b64(secret) not in text
            assert secret.hex() not in text


# -- files ---------------------------------------------------------------------


PUBLIC = "alice.public.jwks.json"
SIG = "alice.sig.pem"
ENC = "alice.enc.pem"


@pytest.fixture
def written(tmp_path: Path, keys: PrivateKeys) -> Path:
    directory = tmp_path / "keys"
    write_keys(directory, "alice", keys, SECRET)
    return directory


def test_write_keys_layout(written: Path, keys: PrivateKeys) -> None:
    assert sorted(p.name for p in written.iterdir()) == sorted([PUBLIC, ENC, SIG])
    document = json.loads((written / PUBLIC).read_text())
    assert document == keys.public().to_jwks("alice")
    assert document["participant"] == "alice"
    assert [k["kid"] for k in document["keys"]] == [keys.signing.kid, keys.decryption[0].kid]


def test_private_files_are_encrypted_pkcs8(written: Path, keys: PrivateKeys) -> None:
    for name, key in ((SIG, keys.signing.key), (ENC, keys.decryption[0].key)):
        pem = (written / name).read_bytes()
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
        assert raw_private(load_pem_private_key(pem, SECRET)) == raw_private(key)
        with pytest.raises(TypeError):
            load_pem_private_key(pem, None)
        # A wrong passphrase is caught by the CBC padding check, except about once in
        # 256 keys, when the garbage happens to end in valid padding and fails as ASN.1.
        with pytest.raises(ValueError, match=r"Incorrect password|Could not deserialize"):
            load_pem_private_key(pem, WRONG)


def test_private_files_are_0600(written: Path) -> None:
    assert mode_of(written / SIG) == 0o600
    assert mode_of(written / ENC) == 0o600


@pytest.mark.parametrize("mask", [0o000, 0o002, 0o022, 0o077])
def test_private_files_are_0600_whatever_the_umask(
    tmp_path: Path, keys: PrivateKeys, umask: Callable[[int], None], mask: int
) -> None:
    umask(mask)
    write_keys(tmp_path, "alice", keys.rotated(now=1, overlap_s=1), SECRET)

    for path in tmp_path.glob("*.pem"):
        assert mode_of(path) == 0o600, path.name
    assert len(list(tmp_path.glob("*.pem"))) == 3
    assert mode_of(tmp_path / PUBLIC) == 0o644


@pytest.mark.parametrize("mode", [0o644, 0o666, 0o640, 0o604])
def test_private_files_that_existed_become_0600(
    tmp_path: Path, keys: PrivateKeys, mode: int
) -> None:
    rotated = keys.rotated(now=1, overlap_s=1)
    retired = f"alice.enc.{keys.decryption[0].kid}.pem"
    for name in (SIG, ENC, retired):
        (tmp_path / name).write_text("old")
        (tmp_path / name).chmod(mode)

    write_keys(tmp_path, "alice", rotated, SECRET)

    for name in (SIG, ENC, retired):
        assert mode_of(tmp_path / name) == 0o600, name
    assert kids_of(read_keys(tmp_path, "alice", SECRET).decryption) == kids_of(rotated.decryption)


def test_write_keys_leaves_no_temporary_files(tmp_path: Path, keys: PrivateKeys) -> None:
    write_keys(tmp_path, "alice", keys, SECRET)
    write_keys(tmp_path, "alice", keys.rotated(now=1, overlap_s=1), SECRET)

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [PUBLIC, SIG, ENC, f"alice.enc.{keys.decryption[0].kid}.pem"]
    )


def test_read_keys_round_trip(written: Path, keys: PrivateKeys) -> None:
    read = read_keys(written, "alice", SECRET)

    assert read.signing.kid == keys.signing.kid
    assert raw_private(read.signing.key) == raw_private(keys.signing.key)
    assert [raw_private(k.key) for k in read.decryption] == [
        raw_private(k.key) for k in keys.decryption
    ]
    assert read.public() == keys.public()
    assert read.suite is keys.suite


def test_read_keys_round_trip_after_rotations(tmp_path: Path, keys: PrivateKeys) -> None:
    rotated = keys.rotated(now=100, overlap_s=10).rotated(now=200, overlap_s=10)
    write_keys(tmp_path, "alice", rotated, SECRET)

    read = read_keys(tmp_path, "alice", SECRET)

    assert read.signing.kid == rotated.signing.kid
    assert read.retired == rotated.retired
    assert read.decryption[0].kid == rotated.decryption[0].kid
    assert kids_of(read.decryption) == kids_of(rotated.decryption)  # newest first
    assert read_public(tmp_path / PUBLIC) == rotated.public()


def test_read_public(written: Path, keys: PrivateKeys) -> None:
    assert read_public(written / PUBLIC) == keys.public()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("", "cannot read", id="empty"),
        pytest.param("{not json", "cannot read", id="not-json"),
        pytest.param('{"keys": []}', "needs a signing ('sig')", id="no-keys"),
    ],
)
def test_read_public_names_the_file(written: Path, content: str, message: str) -> None:
    path = written / PUBLIC
    path.write_text(content)

    detail = error_of(lambda: read_public(path)).detail

    assert str(path) in detail
    assert message in detail


def test_read_public_of_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / PUBLIC

    assert error_of(lambda: read_public(path)).detail.startswith(f"cannot read {path}:")


def test_wrong_passphrase(written: Path) -> None:
    error = error_of(lambda: read_keys(written, "alice", WRONG))

    assert error.detail == (
        f"{written / SIG}: cannot decrypt the private key "
        "(wrong passphrase, or not an encrypted PKCS#8 PEM)"
    )
    assert_no_secret(error, WRONG, SECRET)


def test_unencrypted_private_file_is_refused(written: Path, keys: PrivateKeys) -> None:
    pem = keys.signing.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (written / SIG).write_bytes(pem)

    error = error_of(lambda: read_keys(written, "alice", SECRET))

    assert "cannot decrypt the private key" in error.detail
    assert_no_secret(error, SECRET)


def test_private_file_that_is_not_pem(written: Path) -> None:
    (written / ENC).write_text("garbage")

    assert (
        f"{written / ENC}: cannot decrypt"
        in error_of(lambda: read_keys(written, "alice", SECRET)).detail
    )


@pytest.mark.parametrize("name", [SIG, ENC])
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o610, 0o601, 0o620])
def test_private_file_readable_by_others_is_refused(written: Path, name: str, mode: int) -> None:
    path = written / name
    path.chmod(mode)

    detail = error_of(lambda: read_keys(written, "alice", SECRET)).detail

    assert detail == f"{path} is readable by other users; run: chmod 600 {path}"
    assert "chmod 600" in detail


def test_owner_read_only_private_file_is_accepted(written: Path, keys: PrivateKeys) -> None:
    (written / SIG).chmod(0o400)

    assert read_keys(written, "alice", SECRET).signing.kid == keys.signing.kid


@pytest.mark.parametrize("name", [SIG, ENC])
def test_missing_private_file(written: Path, name: str) -> None:
    path = written / name
    path.unlink()

    detail = error_of(lambda: read_keys(written, "alice", SECRET)).detail

    assert detail == f"cannot read {path}: No such file or directory"


@pytest.mark.parametrize("foreign", [SIG, ENC, PUBLIC])
def test_read_keys_refuses_keys_that_are_not_the_current_ones(
    tmp_path: Path, written: Path, keys: PrivateKeys, foreign: str
) -> None:
    other = tmp_path / "other"
    write_keys(other, "alice", PrivateKeys.generate(keys.suite), SECRET)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in (SIG, ENC, PUBLIC):
        source = other if name == foreign else written
        (mixed / name).write_bytes((source / name).read_bytes())
        (mixed / name).chmod(0o600)

    assert error_of(lambda: read_keys(mixed, "alice", SECRET)).detail == (
        "alice: the private keys are not the current keys of alice.public.jwks.json"
    )


def test_read_keys_refuses_a_public_set_listing_an_old_key_first(
    tmp_path: Path, keys: PrivateKeys
) -> None:
    rotated = keys.rotated(now=1, overlap_s=1)
    write_keys(tmp_path, "alice", rotated, SECRET)
    public = rotated.public()
    stale = PublicKeys(tuple(reversed(public.signing)), public.encryption)
    (tmp_path / PUBLIC).write_text(json.dumps(stale.to_jwks("alice")))

    assert "not the current keys" in error_of(lambda: read_keys(tmp_path, "alice", SECRET)).detail


def test_signing_file_holding_an_encryption_key(tmp_path: Path, ed: PrivateKeys) -> None:
    write_keys(tmp_path, "alice", ed, SECRET)
    (tmp_path / SIG).write_bytes((tmp_path / ENC).read_bytes())

    assert error_of(lambda: read_keys(tmp_path, "alice", SECRET)).detail == (
        "alice.sig.pem is not an Ed25519 or P-256 key"
    )


def test_encryption_file_holding_a_signing_key(tmp_path: Path, ed: PrivateKeys) -> None:
    write_keys(tmp_path, "alice", ed, SECRET)
    (tmp_path / ENC).write_bytes((tmp_path / SIG).read_bytes())

    assert error_of(lambda: read_keys(tmp_path, "alice", SECRET)).detail == (
        "alice.enc.pem is not an X25519 or P-256 key"
    )


def test_retired_key_file_must_hold_the_key_it_names(tmp_path: Path, keys: PrivateKeys) -> None:
    rotated = keys.rotated(now=1, overlap_s=1)
    write_keys(tmp_path, "alice", rotated, SECRET)
    retired = tmp_path / f"alice.enc.{keys.decryption[0].kid}.pem"
    retired.write_bytes((tmp_path / ENC).read_bytes())

    detail = error_of(lambda: read_keys(tmp_path, "alice", SECRET)).detail

    assert detail.startswith(f"{retired.name} holds the key {rotated.decryption[0].kid}")


def test_files_of_a_participant_whose_id_extends_another_are_not_taken(
    tmp_path: Path, ed: PrivateKeys
) -> None:
    """Participant ids may contain dots: 'alice.enc.x.*.pem' belongs to 'alice.enc.x'."""
    write_keys(tmp_path, "alice", ed, SECRET)
    write_keys(tmp_path, "alice.enc.x", PrivateKeys.generate(), SECRET)

    assert kids_of(read_keys(tmp_path, "alice", SECRET).decryption) == kids_of(ed.decryption)


# -- the key store -------------------------------------------------------------


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    write_keys(directory, "alice", PrivateKeys.generate(), SECRET)
    write_keys(directory, "bob", PrivateKeys.generate(Suite.P256), SECRET)
    write_keys(directory, "carol", PrivateKeys.generate(), SECRET)
    for name in ("carol.sig.pem", "carol.enc.pem"):
        (directory / name).unlink()
    return directory


def test_key_store_load(store_dir: Path) -> None:
    store = KeyStore.load(store_dir, hosted={"alice", "bob"}, secret=SECRET)

    assert store.known() == {"alice", "bob", "carol"}
    for name in ("alice", "bob", "carol"):
        assert store.public(name) == read_public(store_dir / f"{name}.public.jwks.json")
    assert store.private("alice").public() == store.public("alice")
    assert store.private("bob").suite is Suite.P256
    assert store.public("dave") is None


@pytest.mark.parametrize("name", ["carol", "dave"])
def test_key_store_private_keys_of_a_participant_not_hosted(store_dir: Path, name: str) -> None:
    store = KeyStore.load(store_dir, hosted={"alice"}, secret=SECRET)

    assert error_of(lambda: store.private(name)).detail == (
        f"no private keys for '{name}' on this node"
    )


def test_key_store_without_hosted_participants_needs_no_secret(store_dir: Path) -> None:
    store = KeyStore.load(store_dir, hosted=set(), secret=None)

    assert store.known() == {"alice", "bob", "carol"}


def test_key_store_hosted_without_secret(store_dir: Path) -> None:
    detail = error_of(lambda: KeyStore.load(store_dir, hosted={"alice"}, secret=None)).detail

    assert detail.startswith("no key passphrase:")
    assert PASSPHRASE_ENV in detail


def test_key_store_hosted_without_private_files(store_dir: Path) -> None:
    detail = error_of(lambda: KeyStore.load(store_dir, hosted={"carol"}, secret=SECRET)).detail

    assert detail == f"cannot read {store_dir / 'carol.sig.pem'}: No such file or directory"


def test_key_store_wrong_secret(store_dir: Path) -> None:
    error = error_of(lambda: KeyStore.load(store_dir, hosted={"alice"}, secret=WRONG))

    assert "cannot decrypt the private key" in error.detail
    assert_no_secret(error, WRONG, SECRET)


def test_key_store_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "absent"

    assert error_of(lambda: KeyStore.load(missing, hosted=set(), secret=None)).detail == (
        f"keys directory {missing} does not exist"
    )


def test_key_store_names_a_bad_public_file(store_dir: Path) -> None:
    path = store_dir / "bob.public.jwks.json"
    path.write_text(json.dumps({"keys": []}))

    assert str(path) in error_of(lambda: KeyStore.load(store_dir, hosted=set(), secret=None)).detail


def test_key_store_ignores_other_files(store_dir: Path) -> None:
    (store_dir / "README.md").write_text("layout")
    (store_dir / "notes").mkdir()

    assert KeyStore.load(store_dir, hosted=set(), secret=None).known() == {"alice", "bob", "carol"}


# -- the passphrase ------------------------------------------------------------


def test_passphrase_from_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "passphrase"
    file.write_text("from the file")

    assert passphrase({PASSPHRASE_ENV: SECRET.decode()}, None) == SECRET
    assert passphrase({PASSPHRASE_ENV: SECRET.decode()}, file) == SECRET


def test_passphrase_from_a_file(tmp_path: Path) -> None:
    file = tmp_path / "passphrase"
    file.write_text(SECRET.decode() + "\n")

    assert passphrase({}, file) == SECRET
    assert passphrase({PASSPHRASE_ENV: ""}, file) == SECRET


@pytest.mark.parametrize(
    ("environ", "content"),
    [({}, None), ({PASSPHRASE_ENV: ""}, None), ({}, ""), ({}, " \n")],
    ids=["nothing", "empty-variable", "empty-file", "blank-file"],
)
def test_missing_passphrase(tmp_path: Path, environ: dict[str, str], content: str | None) -> None:
    file = None
    if content is not None:
        file = tmp_path / "passphrase"
        file.write_text(content)

    detail = error_of(lambda: passphrase(environ, file)).detail

    assert detail == (
        "no key passphrase: set GATEWAY_KEY_PASSPHRASE or key_passphrase_file "
        "(GATEWAY_KEY_PASSPHRASE_FILE)"
    )


def test_unreadable_passphrase_file(tmp_path: Path) -> None:
    file = tmp_path / "absent"

    detail = error_of(lambda: passphrase({}, file)).detail

    assert detail == f"cannot read the key passphrase file {file}: No such file or directory"


def exposed(path: Path) -> PrivateKeys:
    path.chmod(0o644)
    return read_keys(path.parent, "alice", SECRET)


def test_the_passphrase_never_appears_in_errors_or_reprs(tmp_path: Path) -> None:
    """Every way key handling can fail, grepped for the passphrase."""
    keys = PrivateKeys.generate()
    write_keys(tmp_path, "alice", keys, SECRET)
    loaded = KeyStore.load(tmp_path, hosted={"alice"}, secret=SECRET)
    for value in (loaded, loaded.private("alice"), loaded.public("alice"), keys):
        assert SECRET.decode() not in repr(value)
        assert SECRET.decode() not in str(value)

    failures: list[Callable[[], object]] = [
        lambda: read_keys(tmp_path, "alice", WRONG),
        lambda: KeyStore.load(tmp_path, hosted={"alice"}, secret=WRONG),
        lambda: KeyStore.load(tmp_path, hosted={"alice", "bob"}, secret=SECRET),
        lambda: passphrase({}, tmp_path / "absent"),
        lambda: loaded.private("bob"),
        lambda: exposed(tmp_path / SIG),
    ]
    for failure in failures:
        with pytest.raises(KeyStoreError) as info:
            failure()
        assert_no_secret(info.value, SECRET, WRONG)
