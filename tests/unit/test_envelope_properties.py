"""Properties of the envelope and its base64url, over inputs hypothesis generates.

test_envelope.py names each refusal; these state what holds for every input:

- a sealed envelope opens to the same payload and binding, whatever the payload, the
  binding, the key suite and the sealer's CEK reuse;
- ANY change to an envelope (a bit flip anywhere, a truncation, parts reordered, a part
  re-encoded, a protected-header member changed, dots added, or an inner JWS changed
  and sealed again in a well-formed JWE for the same recipient) is refused with
  VerificationError: no payload comes back, and no other exception escapes;
- arbitrary bytes, and JWE-shaped tokens with generated headers that reach the key
  agreement, raise only VerificationError;
- base64url: one value, one encoding; every other spelling is refused.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.crypto.encoding import b64u_decode, b64u_encode, compact_json
from gateway.crypto.envelope import Binding, Opener, Sealer, open_envelope
from gateway.crypto.jwk import Suite
from gateway.errors import VerificationError
from tests.unit.test_envelope import Parties, build_jwe, jws_header, make_parties, sign_jws

PARTIES = {suite: make_parties(suite) for suite in Suite}
SUITES = st.sampled_from(list(Suite))
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
NAMES = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1)
BINDINGS = st.builds(
    Binding,
    message_id=NAMES,
    sender=st.just("alice"),
    recipient=st.just("bob"),
    contract=NAMES,
    version=NAMES,
    issued_at=st.integers(min_value=-(2**63), max_value=2**63),
)
PAYLOADS = st.binary(max_size=512)
# Suite-wide sealing is deterministic only up to random IVs and keys: a mutated token is
# compared with the original, never with a stored example.
SETTINGS = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])


def open_as_bob(p: Parties, token: bytes, opener: Opener | None = None) -> Any:
    if opener is not None:
        return opener.open(token, recipient="bob", verify_key=p.lookup)
    return open_envelope(token, recipient="bob", keys=p.bob, verify_key=p.lookup)


def refused(p: Parties, token: bytes, opener: Opener | None = None) -> VerificationError:
    """The opener raises VerificationError, and only that, for ``token``."""
    with pytest.raises(VerificationError) as info:
        open_as_bob(p, token, opener)
    return info.value


@SETTINGS
@given(
    suite=SUITES, payload=PAYLOADS, binding=BINDINGS, reuse=st.integers(1, 4), n=st.integers(1, 4)
)
def test_a_sealed_envelope_opens_to_its_payload_and_binding(
    suite: Suite, payload: bytes, binding: Binding, reuse: int, n: int
) -> None:
    p = PARTIES[suite]
    sealer = Sealer(reuse_messages=reuse, reuse_s=60.0)
    opener = Opener(p.bob.decryption, cache_size=4)
    for _ in range(n):  # a reused CEK and a warm opener change nothing
        token = sealer.seal(payload, binding, signer=p.alice.signing, recipient_key=p.to_bob)
        for opened in (open_as_bob(p, token), open_as_bob(p, token, opener)):
            assert opened.payload == payload
            assert opened.binding == binding
            assert opened.signing_kid == p.alice.signing.kid


# -- mutations ------------------------------------------------------------------


def reencoded(part: bytes, how: str) -> bytes:
    raw = b64u_decode(part)
    if how == "padded":
        return base64.urlsafe_b64encode(raw)
    if how == "standard alphabet":
        return base64.b64encode(raw).rstrip(b"=")
    if how == "unused bits":  # the last character's spare bits set: same bytes decoded
        if len(part) % 4 == 0:
            return part + b"A"  # a dangling character instead
        last = ALPHABET.index(part[-1:].decode())
        spare = {2: 0x0F, 3: 0x03}[len(part) % 4]
        return part[:-1] + ALPHABET[last | spare].encode()
    return part + b"=" * 2  # extra padding


@st.composite
def mutated(draw: st.DrawFn, token: bytes) -> tuple[str, bytes]:
    """One change to ``token``, labelled."""
    parts = token.split(b".")
    kind = draw(
        st.sampled_from(
            ["bit flip", "truncation", "reorder", "re-encoding", "header member", "extra dots"]
        )
    )
    if kind == "bit flip":
        at = draw(st.integers(0, len(token) - 1))
        bit = draw(st.integers(0, 7))
        changed = bytearray(token)
        changed[at] ^= 1 << bit
        return kind, bytes(changed)
    if kind == "truncation":
        return kind, token[: draw(st.integers(0, len(token) - 1))]
    if kind == "reorder":
        order = draw(st.permutations(range(5)).filter(lambda o: list(o) != list(range(5))))
        return kind, b".".join(parts[i] for i in order)
    if kind == "re-encoding":
        number = draw(st.integers(0, 4))
        how = draw(st.sampled_from(["padded", "standard alphabet", "unused bits", "extra ="]))
        parts[number] = reencoded(parts[number], how)
        return f"{kind} ({how})", b".".join(parts)
    if kind == "header member":
        header = json.loads(b64u_decode(parts[0]))
        name = draw(st.sampled_from([*sorted(header), "zip", "crit", "jku", "x"]))
        value = draw(st.none() | st.integers() | st.text(max_size=8) | st.just(header.get(name)))
        if name in header and draw(st.booleans()):
            del header[name]
        else:
            header[name] = value
        spacing = draw(st.sampled_from([(",", ":"), (", ", ": ")]))
        parts[0] = b64u_encode(json.dumps(header, separators=spacing).encode())
        return kind, b".".join(parts)
    at = draw(st.integers(0, len(token)))
    dots = b"." * draw(st.integers(1, 3))
    return kind, token[:at] + dots + token[at:]


@SETTINGS
@given(suite=SUITES, payload=PAYLOADS, warm=st.booleans(), data=st.data())
def test_any_mutation_of_an_envelope_is_refused(
    suite: Suite, payload: bytes, warm: bool, data: st.DataObject
) -> None:
    p = PARTIES[suite]
    token = Sealer().seal(
        payload,
        Binding("m-1", "alice", "bob", "demo.note", "1.0.0", 1_700_000_000),
        signer=p.alice.signing,
        recipient_key=p.to_bob,
    )
    opener = Opener(p.bob.decryption, cache_size=8)
    if warm:  # the CEK of the original is cached: the cache must not help a mutation
        assert open_as_bob(p, token, opener).payload == payload
    kind, changed = data.draw(mutated(token), label="mutation")
    if changed == token:  # a header rewritten to what it was: not a mutation
        return
    assert kind
    refused(p, changed, opener if warm else None)


JWS_CHANGES: dict[str, Any] = {
    "alg": st.sampled_from(["none", "HS256", "RS256", "EdDSA", "ES256", "ES512"]),
    "kid": st.text(max_size=12),
    "mid": st.text(max_size=6) | st.integers(),
    "iss": st.sampled_from(["alice", "bob", "carol", "mallory", ""]),
    "aud": st.sampled_from(["bob", "alice", "carol", ""]),
    "ctr": st.text(max_size=6) | st.none(),
    "ver": st.text(max_size=6) | st.lists(st.integers(), max_size=2),
    "iat": st.integers() | st.floats(allow_nan=False) | st.booleans() | st.text(max_size=3),
    "typ": st.text(max_size=6),
    "jwk": st.just({"kty": "OKP"}),
    "crit": st.just(["exp"]),
}


@SETTINGS
@given(suite=SUITES, payload=PAYLOADS, data=st.data())
def test_a_changed_inner_jws_in_a_well_formed_jwe_is_refused(
    suite: Suite, payload: bytes, data: st.DataObject
) -> None:
    """Anyone may encrypt to bob: the JWE layer proves nothing about the sender, so every
    change to the signed JWS must be caught by the signature and header checks."""
    p = PARTIES[suite]
    header = jws_header(p.alice.signing)
    signed = sign_jws(header, payload, p.alice.signing)
    assert open_as_bob(p, build_jwe(signed, p.to_bob)).payload == payload
    header_b64, payload_b64, signature = signed.split(b".")
    change = data.draw(st.sampled_from(["header", "payload", "signature", "resign"]))
    if change == "header":
        name = data.draw(st.sampled_from(sorted(JWS_CHANGES)))
        value = data.draw(JWS_CHANGES[name])
        new = {**header, name: value}
        if new == header:
            return
        changed = b64u_encode(compact_json(new)) + b"." + payload_b64 + b"." + signature
    elif change == "payload":
        other = data.draw(PAYLOADS.filter(lambda b: b != payload))
        changed = header_b64 + b"." + b64u_encode(other) + b"." + signature
    elif change == "signature":
        raw = bytearray(b64u_decode(signature))
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
        changed = header_b64 + b"." + payload_b64 + b"." + b64u_encode(bytes(raw))
    else:  # signed properly, but by carol's key while claiming to be alice
        changed = sign_jws(header, payload, p.carol.signing)
    refused(p, build_jwe(changed, p.to_bob))


# -- arbitrary input --------------------------------------------------------------

B64 = st.text(alphabet=ALPHABET, max_size=60).map(str.encode)


@st.composite
def jwe_shaped(draw: st.DrawFn, p: Parties) -> bytes:
    """Five parts whose header has the required members with generated values, often the
    right ones, so generated input reaches the key agreement and the unwrap."""
    real_epk = json.loads(b64u_decode(build_jwe(b"x", p.to_bob).split(b".")[0]))["epk"]
    epk_member = st.sampled_from(["OKP", "EC", "X25519", "P-256", "Ed25519"]) | B64.map(
        bytes.decode
    )
    epk = st.just(real_epk) | st.fixed_dictionaries(
        {},
        optional={
            name: epk_member | st.integers() | st.none() for name in ("kty", "crv", "x", "y", "d")
        },
    )
    header = {
        "alg": draw(st.sampled_from(["ECDH-ES+A256KW", "ECDH-ES", "dir"])),
        "enc": draw(st.sampled_from(["A256GCM", "A128GCM"])),
        "kid": draw(st.just(p.to_bob.kid) | st.text(max_size=8)),
        "epk": draw(epk | st.text(max_size=4) | st.lists(st.integers(), max_size=2)),
    }
    parts = [b64u_encode(compact_json(header))]
    lengths = (40, 12, draw(st.integers(0, 80)), 16)
    for length in lengths:
        size = draw(st.sampled_from([length, length - 1, length + 1]))
        parts.append(b64u_encode(draw(st.binary(min_size=max(size, 0), max_size=max(size, 0)))))
    return b".".join(parts)


@settings(max_examples=300)
@given(
    suite=SUITES,
    token=st.binary(max_size=300) | B64 | st.sampled_from([b"", b"....", b"a.b.c.d.e"]),
    data=st.data(),
)
def test_arbitrary_bytes_raise_only_verification_error(
    suite: Suite, token: bytes, data: st.DataObject
) -> None:
    p = PARTIES[suite]
    if data.draw(st.booleans(), label="jwe-shaped"):
        token = data.draw(jwe_shaped(p), label="token")
    refused(p, token)
    refused(p, token, Opener(p.bob.decryption))


# -- base64url --------------------------------------------------------------------


@settings(max_examples=300)
@given(raw=st.binary(max_size=100))
def test_base64url_round_trips_without_padding(raw: bytes) -> None:
    encoded = b64u_encode(raw)
    assert b64u_decode(encoded) == raw
    assert b64u_decode(encoded.decode()) == raw
    assert set(encoded.decode()) <= set(ALPHABET)
    assert len(encoded) % 4 != 1


@settings(max_examples=500)
@given(text=st.text(alphabet=ALPHABET + "=+/ .\n", max_size=24) | st.text(max_size=12))
def test_one_value_one_encoding(text: str) -> None:
    """Whatever decodes is the canonical encoding of what it decodes to."""
    try:
        raw = b64u_decode(text)
    except ValueError:
        return
    assert b64u_encode(raw) == text.encode()


@settings(max_examples=300)
@given(
    raw=st.binary(min_size=1, max_size=60),
    how=st.sampled_from(["padded", "standard alphabet", "unused bits", "extra ="]),
)
@example(raw=b"\xd3M", how="padded")  # "000=": its length is a multiple of 4, was accepted
def test_other_spellings_of_the_same_bytes_are_refused(raw: bytes, how: str) -> None:
    encoded = b64u_encode(raw)
    other = reencoded(encoded, how)
    if other == encoded:  # no '-' or '_' to swap for the standard alphabet
        return
    with pytest.raises(ValueError, match="base64url"):
        b64u_decode(other)


@pytest.mark.parametrize("suite", list(Suite), ids=lambda suite: suite.value)
def test_an_envelope_with_a_padded_wrapped_key_is_refused(suite: Suite) -> None:
    """The 40-byte wrapped key is 54 characters; padded to 56 it used to open."""
    p = PARTIES[suite]
    token = Sealer().seal(
        b"{}",
        Binding("m-1", "alice", "bob", "c", "1.0.0", 0),
        signer=p.alice.signing,
        recipient_key=p.to_bob,
    )
    parts = token.split(b".")
    parts[1] += b"=="
    assert refused(p, b".".join(parts)).reason.value == "malformed"
