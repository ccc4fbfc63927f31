"""Key lifecycle on disk (generate, rotate, revoke), and rotation at the envelope level."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.crypto.envelope import Binding, Opened, Opener, Sealer, open_envelope, seal
from gateway.crypto.jwk import SignKey, Suite, VerifyKey
from gateway.crypto.keys import KeyStore, PrivateKeys, PublicKeys, read_keys, read_public
from gateway.crypto.lifecycle import generate, revoke, rotate
from gateway.errors import KeyStoreError, RejectReason, VerificationError
from gateway.receiving import Receiver

SECRET = b"lifecycle test passphrase"
T0 = 1_700_000_000
OVERLAP = 3_600
PAYLOAD = b'{"referralId": "REF-2026-000001"}'

SUITES = pytest.mark.parametrize("suite", list(Suite), ids=[s.value for s in Suite])


def public_of(directory: Path, participant: str = "alice") -> PublicKeys:
    return read_public(directory / f"{participant}.public.jwks.json")


def jwks_of(directory: Path, participant: str = "alice") -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (directory / f"{participant}.public.jwks.json").read_text()
    )
    return document


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def error_of(action: Callable[[], object]) -> str:
    with pytest.raises(KeyStoreError) as info:
        action()
    return info.value.detail


def binding(sender: str, recipient: str, issued_at: int, mid: str = "m-1") -> Binding:
    return Binding(mid, sender, recipient, "health.patient-referral", "1.0.0", issued_at)


def roundtrip(sender: PrivateKeys, recipient: PrivateKeys, *, issued_at: int = T0) -> bytes:
    """Seal with the sender's current key to the recipient's current key; open; payload."""
    token = seal(
        PAYLOAD,
        binding("alice", "bob", issued_at),
        signer=sender.signing,
        recipient_key=recipient.public().encryption[0],
    )
    opened = open_envelope(
        token,
        recipient="bob",
        keys=recipient,
        verify_key=lambda _, kid: sender.public().verify_key(kid),
    )
    return opened.payload


# -- generate ------------------------------------------------------------------


@SUITES
def test_generate_writes_readable_keys(tmp_path: Path, suite: Suite) -> None:
    keys = generate(tmp_path, "alice", suite, SECRET)

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "alice.enc.pem",
        "alice.public.jwks.json",
        "alice.sig.pem",
    ]
    read = read_keys(tmp_path, "alice", SECRET)
    assert read.suite is suite
    assert read.public() == keys.public() == public_of(tmp_path)
    assert mode_of(tmp_path / "alice.sig.pem") == mode_of(tmp_path / "alice.enc.pem") == 0o600
    assert roundtrip(read, read) == PAYLOAD


def test_generate_creates_the_directory(tmp_path: Path) -> None:
    generate(tmp_path / "a" / "b", "alice", Suite.ED25519, SECRET)

    assert (tmp_path / "a" / "b" / "alice.sig.pem").is_file()


@pytest.mark.parametrize("existing", ["alice.sig.pem", "alice.enc.pem", "alice.public.jwks.json"])
def test_generate_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    generate(tmp_path, "alice", Suite.ED25519, SECRET)
    for name in {"alice.sig.pem", "alice.enc.pem", "alice.public.jwks.json"} - {existing}:
        (tmp_path / name).unlink()
    before = snapshot(tmp_path)

    detail = error_of(lambda: generate(tmp_path, "alice", Suite.ED25519, SECRET))

    assert detail == f"{tmp_path / existing} exists; use 'gateway keys rotate' to replace keys"
    assert snapshot(tmp_path) == before


def test_generate_for_another_participant_in_the_same_directory(tmp_path: Path) -> None:
    generate(tmp_path, "alice", Suite.ED25519, SECRET)
    generate(tmp_path, "bob", Suite.P256, SECRET)

    assert read_keys(tmp_path, "alice", SECRET).suite is Suite.ED25519
    assert read_keys(tmp_path, "bob", SECRET).suite is Suite.P256


# -- rotate --------------------------------------------------------------------


@SUITES
def test_rotate(tmp_path: Path, suite: Suite) -> None:
    old = generate(tmp_path, "alice", suite, SECRET)

    new = rotate(tmp_path, "alice", SECRET, overlap_s=OVERLAP, now=T0)

    # New kids for both keys, same suite.
    assert new.suite is suite
    assert new.signing.kid != old.signing.kid
    assert new.decryption[0].kid != old.decryption[0].kid
    # The public set lists the new keys first, then the old ones.
    public = public_of(tmp_path)
    assert [k.kid for k in public.signing] == [new.signing.kid, old.signing.kid]
    assert [k.kid for k in public.encryption] == [new.decryption[0].kid, old.decryption[0].kid]
    # The old signing key verifies until now + overlap; the new one has no end.
    assert [(k.valid_until, k.revoked_at) for k in public.signing] == [
        (None, None),
        (T0 + OVERLAP, None),
    ]
    # The old encryption key is kept, 0600, under its kid.
    retired = tmp_path / f"alice.enc.{old.decryption[0].kid}.pem"
    assert mode_of(retired) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["alice.sig.pem", "alice.enc.pem", retired.name, "alice.public.jwks.json"]
    )
    # What is on disk is what rotate returned.
    read = read_keys(tmp_path, "alice", SECRET)
    assert read.public() == new.public() == public
    assert [k.kid for k in read.decryption] == [k.kid for k in new.decryption]


@SUITES
def test_retired_encryption_key_still_decrypts(tmp_path: Path, suite: Suite) -> None:
    old = generate(tmp_path, "alice", suite, SECRET)
    in_flight = seal(
        PAYLOAD,
        binding("alice", "bob", T0),
        signer=old.signing,
        recipient_key=old.public().encryption[0],
    )

    rotate(tmp_path, "alice", SECRET, overlap_s=OVERLAP, now=T0)

    after = read_keys(tmp_path, "alice", SECRET)
    opened = open_envelope(
        in_flight,
        recipient="bob",
        keys=after,
        verify_key=lambda _, kid: after.public().verify_key(kid),
    )
    assert opened.payload == PAYLOAD
    assert after.decrypt_key(old.decryption[0].kid) is not None


def test_rotate_with_no_overlap(tmp_path: Path) -> None:
    old = generate(tmp_path, "alice", Suite.ED25519, SECRET)

    rotate(tmp_path, "alice", SECRET, overlap_s=0, now=T0)

    key = public_of(tmp_path).verify_key(old.signing.kid)
    assert key is not None
    assert key.valid_until == T0


def test_rotate_refuses_a_negative_overlap(tmp_path: Path) -> None:
    generate(tmp_path, "alice", Suite.ED25519, SECRET)
    before = snapshot(tmp_path)

    detail = error_of(lambda: rotate(tmp_path, "alice", SECRET, overlap_s=-1, now=T0))

    assert detail == "the overlap window cannot be negative"
    assert snapshot(tmp_path) == before


def test_rotate_with_the_wrong_passphrase_changes_nothing(tmp_path: Path) -> None:
    generate(tmp_path, "alice", Suite.ED25519, SECRET)
    before = snapshot(tmp_path)

    detail = error_of(lambda: rotate(tmp_path, "alice", b"wrong", overlap_s=OVERLAP, now=T0))

    assert "cannot decrypt the private key" in detail
    assert snapshot(tmp_path) == before


def test_rotate_unknown_participant(tmp_path: Path) -> None:
    detail = error_of(lambda: rotate(tmp_path, "nobody", SECRET, overlap_s=OVERLAP, now=T0))

    assert detail.startswith(f"cannot read {tmp_path / 'nobody.public.jwks.json'}")


@SUITES
def test_multiple_rotations_keep_every_retired_key(tmp_path: Path, suite: Suite) -> None:
    generations = [generate(tmp_path, "alice", suite, SECRET)]
    for step in range(1, 4):
        generations.append(
            rotate(tmp_path, "alice", SECRET, overlap_s=OVERLAP, now=T0 + step * 1000)
        )

    public = public_of(tmp_path)
    newest_first = list(reversed(generations))
    assert [k.kid for k in public.signing] == [g.signing.kid for g in newest_first]
    assert [k.kid for k in public.encryption] == [g.decryption[0].kid for g in newest_first]
    assert [k.valid_until for k in public.signing] == [
        None,
        T0 + 3000 + OVERLAP,
        T0 + 2000 + OVERLAP,
        T0 + 1000 + OVERLAP,
    ]
    retired = sorted(p.name for p in tmp_path.glob("alice.enc.*.pem"))
    assert retired == sorted(f"alice.enc.{g.decryption[0].kid}.pem" for g in generations[:-1])
    # Every generation's encryption key still opens what was sealed to it.
    current = read_keys(tmp_path, "alice", SECRET)
    for generation in generations:
        token = seal(
            PAYLOAD,
            binding("alice", "alice", T0),
            signer=generation.signing,
            recipient_key=generation.public().encryption[0],
        )
        opened = open_envelope(
            token,
            recipient="alice",
            keys=current,
            verify_key=lambda _, kid: public.verify_key(kid),
        )
        assert opened.signing_kid == generation.signing.kid


# -- revoke --------------------------------------------------------------------


@pytest.fixture
def rotated_twice(tmp_path: Path) -> tuple[Path, list[PrivateKeys]]:
    first = generate(tmp_path, "alice", Suite.ED25519, SECRET)
    second = rotate(tmp_path, "alice", SECRET, overlap_s=OVERLAP, now=T0)
    third = rotate(tmp_path, "alice", SECRET, overlap_s=OVERLAP, now=T0 + 100)
    return tmp_path, [first, second, third]


def test_revoke_marks_the_named_kid_only(rotated_twice: tuple[Path, list[PrivateKeys]]) -> None:
    directory, (first, second, third) = rotated_twice
    private_files = {n: b for n, b in snapshot(directory).items() if n.endswith(".pem")}
    before = public_of(directory)

    revoke(directory, "alice", first.signing.kid, at=T0 + 50)

    after = public_of(directory)
    assert [(k.kid, k.valid_until, k.revoked_at) for k in after.signing] == [
        (third.signing.kid, None, None),
        (second.signing.kid, T0 + 100 + OVERLAP, None),
        (first.signing.kid, T0 + OVERLAP, T0 + 50),
    ]
    assert after.encryption == before.encryption
    # Only the public key set changes; no passphrase needed, no private file touched.
    assert {n: b for n, b in snapshot(directory).items() if n.endswith(".pem")} == private_files
    expected = {**first.signing.verify_key().to_jwk(), "valid_until": T0 + OVERLAP}
    marked = [k for k in jwks_of(directory)["keys"] if "revoked_at" in k]
    assert marked == [{**expected, "revoked_at": T0 + 50}]
    assert jwks_of(directory)["participant"] == "alice"


def test_revoke_refuses_the_current_kid(rotated_twice: tuple[Path, list[PrivateKeys]]) -> None:
    directory, (_, _, current) = rotated_twice
    before = snapshot(directory)

    detail = error_of(lambda: revoke(directory, "alice", current.signing.kid, at=T0))

    assert detail == f"{current.signing.kid} is alice's current signing key: rotate first"
    assert snapshot(directory) == before


@pytest.mark.parametrize("kind", ["unknown", "encryption", "empty"])
def test_revoke_refuses_kids_it_does_not_know(
    rotated_twice: tuple[Path, list[PrivateKeys]], kind: str
) -> None:
    directory, (first, _, _) = rotated_twice
    kid = {
        "unknown": PrivateKeys.generate().signing.kid,
        "encryption": first.decryption[0].kid,
        "empty": "",
    }[kind]
    before = snapshot(directory)

    detail = error_of(lambda: revoke(directory, "alice", kid, at=T0))

    assert detail == f"alice has no signing key {kid}"
    assert snapshot(directory) == before


def test_revoke_refuses_a_negative_time(rotated_twice: tuple[Path, list[PrivateKeys]]) -> None:
    directory, (first, _, _) = rotated_twice

    detail = error_of(lambda: revoke(directory, "alice", first.signing.kid, at=-1))

    assert "Unix time" in detail
    assert public_of(directory).verify_key(first.signing.kid) == VerifyKey(
        first.signing.kid, first.signing.key.public_key(), T0 + OVERLAP
    )


def test_revoking_again_never_narrows_the_revocation(
    rotated_twice: tuple[Path, list[PrivateKeys]],
) -> None:
    directory, (first, _, _) = rotated_twice

    revoke(directory, "alice", first.signing.kid, at=T0 + 50)
    revoke(directory, "alice", first.signing.kid, at=T0 + 500)
    later = public_of(directory).verify_key(first.signing.kid)
    revoke(directory, "alice", first.signing.kid, at=T0 + 10)
    earlier = public_of(directory).verify_key(first.signing.kid)

    assert later is not None
    assert later.revoked_at == T0 + 50
    assert earlier is not None
    assert earlier.revoked_at == T0 + 10


def test_revoke_unknown_participant(tmp_path: Path) -> None:
    assert error_of(lambda: revoke(tmp_path, "nobody", "kid", at=T0)).startswith("cannot read")


def test_a_revocation_survives_the_next_rotation(
    rotated_twice: tuple[Path, list[PrivateKeys]],
) -> None:
    directory, (first, _, _) = rotated_twice
    revoke(directory, "alice", first.signing.kid, at=T0 + 50)

    rotate(directory, "alice", SECRET, overlap_s=OVERLAP, now=T0 + 200)

    key = public_of(directory).verify_key(first.signing.kid)
    assert key is not None
    assert (key.valid_until, key.revoked_at) == (T0 + OVERLAP, T0 + 50)
    assert len(public_of(directory).signing) == 4


# -- rotation acceptance: envelopes sealed before, during and after ------------


@dataclass
class Node:
    """What a receiving node holds: its own private keys and everyone's public keys."""

    directory: Path

    def store(self) -> KeyStore:
        return KeyStore.load(self.directory, hosted={"bob"}, secret=SECRET)

    def opener(self) -> Opener:
        return Opener(self.store().private("bob").decryption)

    def lookup(self, sender: str, kid: str) -> VerifyKey | None:
        public = self.store().public(sender)
        return public.verify_key(kid) if public is not None else None

    def accept(self, token: bytes) -> Opened:
        """Open, verify, and check the signing key's lifetime as the receiver does."""
        opened = self.opener().open(token, recipient="bob", verify_key=self.lookup)
        Receiver._check_key(opened)
        return opened

    def refusal(self, token: bytes) -> RejectReason:
        with pytest.raises(VerificationError) as info:
            self.accept(token)
        return info.value.reason


@dataclass
class Timeline:
    node: Node
    old_alice: PrivateKeys
    new_alice: PrivateKeys
    old_bob: PrivateKeys
    new_bob: PrivateKeys
    sealer: Sealer
    before: list[bytes]
    """Sealed by alice's old key to bob's old key before both rotated."""

    def seal(self, signer: SignKey, to: PrivateKeys, issued_at: int, mid: str) -> bytes:
        return self.sealer.seal(
            PAYLOAD,
            binding("alice", "bob", issued_at, mid),
            signer=signer,
            recipient_key=to.public().encryption[0],
        )


ROTATED_AT = T0 + 100
VALID_UNTIL = ROTATED_AT + OVERLAP


@pytest.fixture(params=list(Suite), ids=[s.value for s in Suite])
def timeline(tmp_path: Path, request: pytest.FixtureRequest) -> Timeline:
    """alice (sender) and bob (recipient) both rotate at ROTATED_AT."""
    suite: Suite = request.param
    old_alice = generate(tmp_path, "alice", suite, SECRET)
    old_bob = generate(tmp_path, "bob", suite, SECRET)
    # One sealer across the rotation, reusing CEKs as a busy sender does.
    line = Timeline(
        node=Node(tmp_path),
        old_alice=old_alice,
        new_alice=old_alice,  # until the rotation below
        old_bob=old_bob,
        new_bob=old_bob,
        sealer=Sealer(reuse_messages=100, reuse_s=3600.0),
        before=[],
    )
    line.before = [line.seal(old_alice.signing, old_bob, T0 + n, f"b{n}") for n in range(3)]
    line.new_alice = rotate(tmp_path, "alice", SECRET, overlap_s=OVERLAP, now=ROTATED_AT)
    line.new_bob = rotate(tmp_path, "bob", SECRET, overlap_s=OVERLAP, now=ROTATED_AT)
    return line


def test_rotation_acceptance(timeline: Timeline) -> None:
    t = timeline
    old_sig, new_sig = t.old_alice.signing, t.new_alice.signing
    messages = {
        # Sealed before the rotation, opened after it (in flight over Kafka).
        **{f"before-{n}": token for n, token in enumerate(t.before)},
        # During the overlap: a sender that has not switched yet, to bob's old or new key ...
        "old-signer-old-recipient": t.seal(old_sig, t.old_bob, ROTATED_AT + 10, "d1"),
        "old-signer-new-recipient": t.seal(old_sig, t.new_bob, ROTATED_AT + 20, "d2"),
        # ... the last second of the overlap ...
        "old-signer-at-valid-until": t.seal(old_sig, t.new_bob, VALID_UNTIL, "d3"),
        # ... and a sender that has switched.
        "new-signer-during-overlap": t.seal(new_sig, t.new_bob, ROTATED_AT + 30, "d4"),
        "new-signer-to-old-recipient-key": t.seal(new_sig, t.old_bob, ROTATED_AT + 40, "d5"),
        # After the overlap: only the new key.
        "new-signer-after-overlap": t.seal(new_sig, t.new_bob, VALID_UNTIL + 10_000, "a1"),
    }

    for name, token in messages.items():
        opened = t.node.accept(token)
        assert opened.payload == PAYLOAD, name
        expected = new_sig.kid if name.startswith("new-signer") else old_sig.kid
        assert opened.signing_kid == expected, name


def test_rotation_acceptance_old_key_after_the_overlap(timeline: Timeline) -> None:
    t = timeline
    late = t.seal(t.old_alice.signing, t.new_bob, VALID_UNTIL + 1, "late")

    # It decrypts and its signature is good: only the key's lifetime refuses it.
    opened = t.node.opener().open(late, recipient="bob", verify_key=t.node.lookup)
    assert opened.verify_key.valid_until == VALID_UNTIL
    assert t.node.refusal(late) is RejectReason.RETIRED_KEY


def test_rotation_acceptance_revoked_old_key(timeline: Timeline) -> None:
    t = timeline
    revoked_at = ROTATED_AT + 50
    revoke(t.node.directory, "alice", t.old_alice.signing.kid, at=revoked_at)
    old_sig = t.old_alice.signing

    for token in t.before:
        assert t.node.accept(token).payload == PAYLOAD
    assert t.node.accept(t.seal(old_sig, t.new_bob, revoked_at - 1, "ok")).payload == PAYLOAD
    assert t.node.refusal(t.seal(old_sig, t.new_bob, revoked_at, "at")) is RejectReason.REVOKED_KEY
    assert t.node.refusal(t.seal(old_sig, t.old_bob, revoked_at + 1, "after")) is (
        RejectReason.REVOKED_KEY
    )
    # Revoked and past the overlap: revocation is the reason given.
    late = t.seal(old_sig, t.new_bob, VALID_UNTIL + 1, "late")
    assert t.node.refusal(late) is RejectReason.REVOKED_KEY
    # The new key is untouched.
    assert t.node.accept(t.seal(t.new_alice.signing, t.new_bob, revoked_at, "new")).payload == (
        PAYLOAD
    )


def test_rotation_acceptance_without_the_retired_key_file(timeline: Timeline) -> None:
    """The retired encryption key file is what opens in-flight messages: without it
    they fail as encrypted to a key the recipient lacks."""
    t = timeline
    (t.node.directory / f"bob.enc.{t.old_bob.decryption[0].kid}.pem").unlink()

    assert t.node.refusal(t.before[0]) is RejectReason.UNKNOWN_KEY


def test_unknown_kid_after_rotation_is_refused(timeline: Timeline) -> None:
    stranger = PrivateKeys.generate(timeline.old_alice.suite)
    token = timeline.seal(stranger.signing, timeline.new_bob, ROTATED_AT + 1, "x")

    assert timeline.node.refusal(token) is RejectReason.UNKNOWN_KEY


@pytest.mark.parametrize(
    ("valid_until", "revoked_at", "issued_at", "reason"),
    [
        (None, None, T0, None),
        (T0, None, T0, None),
        (T0, None, T0 + 1, RejectReason.RETIRED_KEY),
        (None, T0, T0 - 1, None),
        (None, T0, T0, RejectReason.REVOKED_KEY),
        (None, T0, T0 + 1, RejectReason.REVOKED_KEY),
        (T0 + 10, T0, T0 + 5, RejectReason.REVOKED_KEY),
        (T0, T0 + 10, T0 + 5, RejectReason.RETIRED_KEY),
        (T0, T0 + 10, T0 + 10, RejectReason.REVOKED_KEY),
    ],
)
def test_receiver_key_lifetime_semantics(
    valid_until: int | None, revoked_at: int | None, issued_at: int, reason: RejectReason | None
) -> None:
    """An issue time after valid_until, or at or after revoked_at, is refused."""
    alice, bob = PrivateKeys.generate(), PrivateKeys.generate()
    key = VerifyKey(alice.signing.kid, alice.signing.key.public_key(), valid_until, revoked_at)
    token = seal(
        PAYLOAD,
        binding("alice", "bob", issued_at),
        signer=alice.signing,
        recipient_key=bob.public().encryption[0],
    )
    opened = open_envelope(token, recipient="bob", keys=bob, verify_key=lambda _, __: key)

    if reason is None:
        Receiver._check_key(opened)
    else:
        with pytest.raises(VerificationError) as info:
            Receiver._check_key(opened)
        assert info.value.reason is reason
