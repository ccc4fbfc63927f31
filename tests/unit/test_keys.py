"""Participant keys: thumbprints, JWK Sets and the on-disk key store."""

from __future__ import annotations

import copy
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jwcrypto import jwk

from gateway.crypto.encoding import b64u_decode, b64u_encode
from gateway.crypto.keys import (
    PRIVATE_FILE,
    PUBLIC_FILE,
    KeyStore,
    PrivateKeys,
    PublicKeys,
    thumbprint,
    write_participant_keys,
)
from gateway.errors import KeyStoreError

Mutation = Callable[[dict[str, Any]], None]

# RFC 8037 appendix A.2 / A.3: an Ed25519 public key and its RFC 7638 thumbprint.
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


@pytest.fixture(scope="module")
def keys() -> PrivateKeys:
    return PrivateKeys.generate()


def kids(public: PublicKeys) -> tuple[list[str], list[str]]:
    return [k.kid for k in public.signing], [k.kid for k in public.encryption]


def raw_private(private: PrivateKeys) -> tuple[bytes, list[bytes]]:
    return private.signing.key.private_bytes_raw(), [
        k.key.private_bytes_raw() for k in private.decryption
    ]


def mutated(jwks: dict[str, Any], mutation: Mutation) -> dict[str, Any]:
    copied = copy.deepcopy(jwks)
    mutation(copied)
    return copied


def on_key(curve: str, /, **changes: Any) -> Mutation:
    """A mutation that changes (or, for None, removes) members of the ``curve`` key."""

    def mutate(jwks: dict[str, Any]) -> None:
        for key in jwks["keys"]:
            if key["crv"] == curve:
                key.update(changes)
                for name in [n for n, v in changes.items() if v is None]:
                    del key[name]

    return mutate


def only(crv: str) -> Mutation:
    def mutate(jwks: dict[str, Any]) -> None:
        jwks["keys"] = [k for k in jwks["keys"] if k["crv"] == crv]

    return mutate


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def load_error(directory: Path, hosted: set[str]) -> str:
    with pytest.raises(KeyStoreError) as info:
        KeyStore.load(directory, hosted=hosted)
    return info.value.detail


# -- thumbprints ---------------------------------------------------------------


def test_thumbprint_matches_rfc_8037_example() -> None:
    assert thumbprint("Ed25519", b64u_decode(RFC8037_X)) == RFC8037_THUMBPRINT
    reference = jwk.JWK(kty="OKP", crv="Ed25519", x=RFC8037_X)
    assert reference.thumbprint() == RFC8037_THUMBPRINT


def test_kids_are_rfc_7638_thumbprints(keys: PrivateKeys) -> None:
    for key in keys.public().to_jwks()["keys"]:
        expected = jwk.JWK(**key).thumbprint()
        assert key["kid"] == expected
        assert thumbprint(key["crv"], b64u_decode(key["x"])) == expected


def test_generated_keys_are_distinct() -> None:
    first, second = PrivateKeys.generate(), PrivateKeys.generate()

    assert first.signing.kid != second.signing.kid
    assert first.decryption[0].kid != second.decryption[0].kid


# -- JWK Sets ------------------------------------------------------------------


def test_public_jwks_shape(keys: PrivateKeys) -> None:
    jwks = keys.public().to_jwks()

    assert [(k["kty"], k["crv"], k["use"], k["alg"]) for k in jwks["keys"]] == [
        ("OKP", "Ed25519", "sig", "EdDSA"),
        ("OKP", "X25519", "enc", "ECDH-ES+A256KW"),
    ]
    assert all("d" not in k for k in jwks["keys"])


def test_private_jwks_holds_private_members(keys: PrivateKeys) -> None:
    jwks = keys.to_jwks()

    assert [k["crv"] for k in jwks["keys"]] == ["Ed25519", "X25519"]
    assert all(len(b64u_decode(k["d"])) == 32 for k in jwks["keys"])
    assert [k["x"] for k in jwks["keys"]] == [k["x"] for k in keys.public().to_jwks()["keys"]]


def test_public_jwks_round_trip(keys: PrivateKeys) -> None:
    text = json.dumps(keys.public().to_jwks())

    public = PublicKeys.from_jwks(json.loads(text))

    assert kids(public) == kids(keys.public())
    assert public.to_jwks() == keys.public().to_jwks()


def test_private_jwks_round_trip(keys: PrivateKeys) -> None:
    private = PrivateKeys.from_jwks(json.loads(json.dumps(keys.to_jwks())))

    assert raw_private(private) == raw_private(keys)
    assert private.signing.kid == keys.signing.kid
    assert kids(private.public()) == kids(keys.public())
    assert private.to_jwks() == keys.to_jwks()


def test_public_key_without_kid_gets_its_thumbprint(keys: PrivateKeys) -> None:
    jwks = mutated(keys.public().to_jwks(), on_key("Ed25519", kid=None))

    assert PublicKeys.from_jwks(jwks).signing[0].kid == keys.signing.kid


def test_lookups_by_kid(keys: PrivateKeys) -> None:
    public = keys.public()

    assert public.verify_key(keys.signing.kid) == public.signing[0]
    assert public.verify_key(keys.decryption[0].kid) is None
    assert keys.decrypt_key(keys.decryption[0].kid) == keys.decryption[0]
    assert keys.decrypt_key(keys.signing.kid) is None


REFUSALS = [
    pytest.param(lambda j: j.clear(), "expected a JWK Set", id="no-keys-list"),
    pytest.param(lambda j: j.update(keys={}), "expected a JWK Set", id="keys-not-a-list"),
    pytest.param(lambda j: j["keys"].append("k"), "must be a JWK object", id="entry-not-object"),
    pytest.param(on_key("Ed25519", kty="EC"), "only OKP keys", id="kty-ec"),
    pytest.param(on_key("X25519", kty="RSA"), "only OKP keys", id="kty-rsa"),
    pytest.param(on_key("Ed25519", kty=None), "only OKP keys", id="no-kty"),
    pytest.param(on_key("Ed25519", crv="Ed448"), "only OKP keys", id="crv-ed448"),
    pytest.param(on_key("X25519", crv="P-256"), "only OKP keys", id="crv-p256"),
    pytest.param(on_key("Ed25519", x=None), "JWK member 'x' is missing", id="no-x"),
    pytest.param(on_key("X25519", x=12), "JWK member 'x' is missing", id="x-not-text"),
    pytest.param(on_key("Ed25519", x="not+base64/"), "'x' is not base64url", id="x-alphabet"),
    pytest.param(on_key("X25519", x="AAAA="), "'x' is not base64url", id="x-padded"),
    pytest.param(on_key("X25519", x="A"), "'x' is not base64url", id="x-bad-length"),
    pytest.param(
        on_key("Ed25519", x=b64u_encode(bytes(31)).decode()),
        "Ed25519 public key must be 32 bytes",
        id="x-31-bytes",
    ),
    pytest.param(only("Ed25519"), "needs an Ed25519 and an X25519 key", id="only-ed25519"),
    pytest.param(only("X25519"), "needs an Ed25519 and an X25519 key", id="only-x25519"),
    pytest.param(only("none"), "needs an Ed25519 and an X25519 key", id="empty"),
]


@pytest.mark.parametrize(("mutation", "message"), REFUSALS)
def test_public_from_jwks_refuses(keys: PrivateKeys, mutation: Mutation, message: str) -> None:
    with pytest.raises(KeyStoreError) as info:
        PublicKeys.from_jwks(mutated(keys.public().to_jwks(), mutation))

    assert message in info.value.detail


@pytest.mark.parametrize(
    "bad_kid",
    ["not-the-thumbprint", "", 42],
    ids=["other-text", "empty", "number"],
)
def test_public_from_jwks_refuses_kid_that_is_not_the_thumbprint(
    keys: PrivateKeys, bad_kid: object
) -> None:
    jwks = mutated(keys.public().to_jwks(), on_key("Ed25519", kid=bad_kid))

    with pytest.raises(KeyStoreError) as info:
        PublicKeys.from_jwks(jwks)

    assert info.value.detail == f"kid '{bad_kid}' is not the key's thumbprint"


def test_public_from_jwks_refuses_swapped_kids(keys: PrivateKeys) -> None:
    jwks = keys.public().to_jwks()
    first, second = jwks["keys"]
    first["kid"], second["kid"] = second["kid"], first["kid"]

    with pytest.raises(KeyStoreError, match="is not the key's thumbprint"):
        PublicKeys.from_jwks(jwks)


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        *REFUSALS,
        pytest.param(on_key("Ed25519", d=None), "JWK member 'd' is missing", id="no-d"),
        pytest.param(on_key("X25519", d="!!"), "'d' is not base64url", id="d-alphabet"),
    ],
)
def test_private_from_jwks_refuses(keys: PrivateKeys, mutation: Mutation, message: str) -> None:
    with pytest.raises(KeyStoreError) as info:
        PrivateKeys.from_jwks(mutated(keys.to_jwks(), mutation))

    assert message in info.value.detail


@pytest.mark.parametrize("crv", ["Ed25519", "X25519"])
def test_private_from_jwks_refuses_d_of_wrong_length(keys: PrivateKeys, crv: str) -> None:
    jwks = mutated(keys.to_jwks(), on_key(crv, d=b64u_encode(bytes(16)).decode()))

    with pytest.raises(KeyStoreError):
        PrivateKeys.from_jwks(jwks)


# -- the key store -------------------------------------------------------------


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    """alice and bob with both files; carol with her public file only."""
    directory = tmp_path / "keys"
    for name in ("alice", "bob", "carol"):
        write_participant_keys(directory, name, PrivateKeys.generate())
    (directory / "carol" / PRIVATE_FILE).unlink()
    return directory


def test_write_participant_keys_layout(tmp_path: Path, keys: PrivateKeys) -> None:
    folder = write_participant_keys(tmp_path / "keys", "alice", keys)

    assert folder == tmp_path / "keys" / "alice"
    assert sorted(p.name for p in folder.iterdir()) == [PRIVATE_FILE, PUBLIC_FILE]
    assert json.loads((folder / PUBLIC_FILE).read_text()) == keys.public().to_jwks()
    assert json.loads((folder / PRIVATE_FILE).read_text()) == keys.to_jwks()


def test_private_file_is_created_0600(tmp_path: Path, keys: PrivateKeys) -> None:
    folder = write_participant_keys(tmp_path, "alice", keys)

    assert mode_of(folder / PRIVATE_FILE) == 0o600


def test_rewritten_private_file_is_0600(tmp_path: Path, keys: PrivateKeys) -> None:
    existing = tmp_path / "alice" / PRIVATE_FILE
    existing.parent.mkdir()
    existing.write_text("{}")
    existing.chmod(0o644)

    write_participant_keys(tmp_path, "alice", keys)

    assert mode_of(existing) == 0o600


def test_load_reads_public_and_hosted_private_keys(keys_dir: Path) -> None:
    store = KeyStore.load(keys_dir, hosted={"alice"})

    assert store.known() == {"alice", "bob", "carol"}
    for name in ("alice", "bob", "carol"):
        stored = store.public(name)
        assert stored is not None
        written = json.loads((keys_dir / name / PUBLIC_FILE).read_text())
        assert stored.to_jwks() == written
    assert store.private("alice").to_jwks() == json.loads(
        (keys_dir / "alice" / PRIVATE_FILE).read_text()
    )
    assert store.public("dave") is None


@pytest.mark.parametrize("name", ["bob", "carol", "dave"])
def test_private_keys_of_a_participant_not_hosted(keys_dir: Path, name: str) -> None:
    store = KeyStore.load(keys_dir, hosted={"alice"})

    with pytest.raises(KeyStoreError) as info:
        store.private(name)

    assert info.value.detail == f"no private keys for '{name}' on this node"


def test_hosted_participant_without_public_file_is_known(keys_dir: Path) -> None:
    (keys_dir / "alice" / PUBLIC_FILE).unlink()

    store = KeyStore.load(keys_dir, hosted={"alice"})

    assert "alice" in store.known()
    public = store.public("alice")
    assert public is not None
    assert kids(public) == kids(store.private("alice").public())


@pytest.mark.parametrize("name", ["carol", "dave"], ids=["public-only", "no-folder"])
def test_hosted_participant_without_private_keys(keys_dir: Path, name: str) -> None:
    path = keys_dir / name / PRIVATE_FILE

    assert load_error(keys_dir, {name}) == f"cannot read {path}: No such file or directory"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o610])
def test_private_file_readable_by_others_is_refused(keys_dir: Path, mode: int) -> None:
    path = keys_dir / "alice" / PRIVATE_FILE
    path.chmod(mode)

    message = load_error(keys_dir, {"alice"})

    assert message == f"{path} is readable by other users; run: chmod 600 {path}"


def test_owner_only_read_only_private_file_is_accepted(keys_dir: Path) -> None:
    (keys_dir / "alice" / PRIVATE_FILE).chmod(0o400)

    assert "alice" in KeyStore.load(keys_dir, hosted={"alice"}).known()


def test_private_and_public_files_must_match(keys_dir: Path) -> None:
    other = PrivateKeys.generate().public().to_jwks()
    (keys_dir / "alice" / PUBLIC_FILE).write_text(json.dumps(other))

    message = load_error(keys_dir, {"alice"})

    assert message == f"alice: {PRIVATE_FILE} does not match {PUBLIC_FILE}"


def test_private_file_that_is_not_json(keys_dir: Path) -> None:
    path = keys_dir / "alice" / PRIVATE_FILE
    path.write_text("{not json")

    assert f"cannot read {path}: Expecting property name" in load_error(keys_dir, {"alice"})


def test_private_file_with_bad_keys_names_the_file(keys_dir: Path) -> None:
    path = keys_dir / "alice" / PRIVATE_FILE
    path.write_text(json.dumps({"keys": []}))

    assert load_error(keys_dir, {"alice"}) == (
        f"{path}: a private key set needs an Ed25519 and an X25519 key"
    )


def test_public_file_that_is_not_json(keys_dir: Path) -> None:
    path = keys_dir / "bob" / PUBLIC_FILE
    path.write_text("")

    assert load_error(keys_dir, set()).startswith(f"cannot read {path}:")


def test_public_file_with_bad_keys_names_the_file(keys_dir: Path) -> None:
    path = keys_dir / "bob" / PUBLIC_FILE
    path.write_text(json.dumps({"keys": []}))

    assert str(path) in load_error(keys_dir, set())


def test_public_file_may_keep_retired_keys(keys_dir: Path) -> None:
    current = PrivateKeys.from_jwks(json.loads((keys_dir / "alice" / PRIVATE_FILE).read_text()))
    retired = PrivateKeys.generate().public()
    public = current.public()
    rotated = PublicKeys(public.signing + retired.signing, public.encryption + retired.encryption)
    (keys_dir / "alice" / PUBLIC_FILE).write_text(json.dumps(rotated.to_jwks()))

    store = KeyStore.load(keys_dir, hosted={"alice"})

    stored = store.public("alice")
    assert stored is not None
    assert stored.verify_key(retired.signing[0].kid) is not None


def test_missing_keys_directory(tmp_path: Path) -> None:
    missing = tmp_path / "absent"

    assert load_error(missing, set()) == f"keys directory {missing} does not exist"


def test_folders_without_public_file_are_skipped(keys_dir: Path) -> None:
    (keys_dir / "notes").mkdir()
    (keys_dir / "README.md").write_text("key layout")

    assert KeyStore.load(keys_dir, hosted=set()).known() == {"alice", "bob", "carol"}


def test_umask_does_not_widen_private_file(tmp_path: Path, keys: PrivateKeys) -> None:
    previous = os.umask(0)
    try:
        folder = write_participant_keys(tmp_path, "alice", keys)
    finally:
        os.umask(previous)

    assert mode_of(folder / PRIVATE_FILE) == 0o600
