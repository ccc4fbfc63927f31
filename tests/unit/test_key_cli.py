"""``gateway keys`` and ``gateway envelope``, end to end through the CLI entry point."""

from __future__ import annotations

import io
import json
import re
import shutil
import stat
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jwcrypto import jwk as jose

from gateway.cli import main
from gateway.contracts.files import load_catalog
from gateway.crypto import commands
from gateway.crypto.envelope import Opener
from gateway.crypto.keys import PASSPHRASE_ENV, KeyStore
from gateway.receiving import Receiver
from tests.support import CONTRACTS, REFERRAL, referral

PASSPHRASE = "cli test passphrase, not a secret"
SENDER, RECIPIENT, OTHER = "minhealth", "acme-analytics", "socialtreasury"
LATEST = str(load_catalog(CONTRACTS).resolve(REFERRAL).version)
KID = re.compile(r"[A-Za-z0-9_-]{43}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*argv: str | Path, stdin: bytes | None = None) -> Result:
        if stdin is not None:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
                code = main([str(a) for a in argv])
        else:
            code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    monkeypatch.delenv("GATEWAY_KEY_PASSPHRASE_FILE", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./contracts: only --contracts validates


@pytest.fixture
def keys(tmp_path: Path, run: Run) -> Path:
    directory = tmp_path / "keys"
    for participant in (SENDER, RECIPIENT):
        assert run("keys", "generate", "--participant", participant, "--out", directory).code == 0
    return directory


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "referral.json"
    path.write_bytes(json.dumps(referral(7), indent=1).encode() + b"\n")
    return path


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Sets the time the key and envelope commands see (and only they)."""
    now = [int(time.time())]
    fake = types.SimpleNamespace(time=lambda: now[0], strftime=time.strftime, gmtime=time.gmtime)
    monkeypatch.setattr(commands, "time", fake)

    def set_now(value: int) -> None:
        now[0] = value

    return set_now


def jwks(directory: Path, participant: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (directory / f"{participant}.public.jwks.json").read_text()
    )
    return document


def kids(directory: Path, participant: str, use: str) -> list[str]:
    return [k["kid"] for k in jwks(directory, participant)["keys"] if k["use"] == use]


def seal_args(keys: Path, payload: Path | str, *extra: str | Path) -> list[str | Path]:
    return [
        "envelope",
        "seal",
        "--key",
        keys / f"{SENDER}.sig.pem",
        "--to",
        keys / f"{RECIPIENT}.public.jwks.json",
        "--contract",
        REFERRAL,
        "--contracts",
        CONTRACTS,
        *extra,
        payload,
    ]


def open_args(
    keys: Path, envelope: Path | str, *extra: str | Path, key: str | None = None
) -> list[str | Path]:
    return [
        "envelope",
        "open",
        "--key",
        keys / (key or f"{RECIPIENT}.enc.pem"),
        "--from",
        keys / f"{SENDER}.public.jwks.json",
        *extra,
        envelope,
    ]


def sealed(run: Run, keys: Path, payload: Path, *extra: str | Path) -> bytes:
    result = run(*seal_args(keys, payload, *extra))
    assert (result.code, result.err) == (0, "")
    return result.out.encode()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def header_and_payload(out: str) -> tuple[dict[str, Any], str]:
    """``envelope open`` prints the header (indented JSON), a newline, the payload."""
    header, end = json.JSONDecoder().raw_decode(out)
    assert out[end] == "\n"
    assert out.endswith("\n")
    return header, out[end + 1 : -1]


# -- keys generate -------------------------------------------------------------


@pytest.mark.parametrize(
    ("suite", "shapes"),
    [
        (None, [("OKP", "Ed25519", "sig", "EdDSA"), ("OKP", "X25519", "enc", "ECDH-ES+A256KW")]),
        (
            "ed25519",
            [("OKP", "Ed25519", "sig", "EdDSA"), ("OKP", "X25519", "enc", "ECDH-ES+A256KW")],
        ),
        ("p256", [("EC", "P-256", "sig", "ES256"), ("EC", "P-256", "enc", "ECDH-ES+A256KW")]),
    ],
)
def test_generate(
    tmp_path: Path, run: Run, suite: str | None, shapes: list[tuple[str, ...]]
) -> None:
    out = tmp_path / "out"
    extra = ["--suite", suite] if suite else []

    result = run("keys", "generate", "--participant", RECIPIENT, "--out", out, *extra)

    assert (result.code, result.err) == (0, "")
    assert sorted(p.name for p in out.iterdir()) == [
        f"{RECIPIENT}.enc.pem",
        f"{RECIPIENT}.public.jwks.json",
        f"{RECIPIENT}.sig.pem",
    ]
    for name in (f"{RECIPIENT}.sig.pem", f"{RECIPIENT}.enc.pem"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
        pem = (out / name).read_bytes()
        assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
        assert PASSPHRASE.encode() not in pem
    document = jwks(out, RECIPIENT)
    assert document["participant"] == RECIPIENT
    assert [(k["kty"], k["crv"], k["use"], k["alg"]) for k in document["keys"]] == shapes
    for key in document["keys"]:
        assert "d" not in key
        assert key["kid"] == jose.JWK(**key).thumbprint()
    sig_kid, enc_kid = (k["kid"] for k in document["keys"])
    lines = result.out.splitlines()
    assert lines[0].startswith(f"wrote {out}/{RECIPIENT}.sig.pem, {RECIPIENT}.enc.pem")
    assert f"signing kid    {sig_kid} ({shapes[0][3]})" in lines[1]
    assert f"encryption kid {enc_kid}" in lines[2]
    assert PASSPHRASE not in result.out


def test_generate_refuses_to_overwrite(keys: Path, run: Run) -> None:
    before = (keys / f"{SENDER}.sig.pem").read_bytes()

    result = run("keys", "generate", "--participant", SENDER, "--out", keys)

    assert result.code == 1
    assert result.err == (
        f"gateway: error: {keys / SENDER}.sig.pem exists; "
        "use 'gateway keys rotate' to replace keys\n"
    )
    assert (keys / f"{SENDER}.sig.pem").read_bytes() == before


@pytest.mark.parametrize("participant", ["Upper", "x", "../escape", "a b"])
def test_generate_refuses_a_bad_participant_id(tmp_path: Path, run: Run, participant: str) -> None:
    result = run("keys", "generate", "--participant", participant, "--out", tmp_path / "k")

    assert result.code == 1
    assert result.err == f"gateway: error: '{participant}' is not a valid participant id\n"
    assert not (tmp_path / "k").exists()


def test_generate_refuses_an_unknown_suite(tmp_path: Path, run: Run) -> None:
    with pytest.raises(SystemExit) as info:
        run("keys", "generate", "--participant", SENDER, "--out", tmp_path, "--suite", "rsa")

    assert info.value.code == 2


def test_generate_with_a_passphrase_file(
    tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV)
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    out = tmp_path / "out"

    result = run(
        "keys", "generate", "--participant", SENDER, "--out", out, "--passphrase-file", secret
    )

    assert result.code == 0
    store = KeyStore.load(out, hosted={SENDER}, secret=PASSPHRASE.encode())
    assert store.private(SENDER).signing.kid == kids(out, SENDER, "sig")[0]


# -- envelope seal / open ------------------------------------------------------


def test_seal_prints_exactly_the_envelope(keys: Path, run: Run, payload: Path) -> None:
    result = run(*seal_args(keys, payload))

    assert (result.code, result.err) == (0, "")
    assert result.out.count("\n") == 1
    assert result.out.endswith("\n")
    token = result.out[:-1]
    assert re.fullmatch(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){4}", token)


def test_seal_then_open(keys: Path, run: Run, payload: Path, tmp_path: Path) -> None:
    before = int(time.time())
    envelope = write(tmp_path / "envelope.jwe", sealed(run, keys, payload))

    result = run(*open_args(keys, envelope))

    assert (result.code, result.err) == (0, "")
    header, shown = header_and_payload(result.out)
    assert header["iss"] == SENDER
    assert header["aud"] == RECIPIENT
    assert header["ctr"] == REFERRAL
    assert header["ver"] == LATEST
    assert UUID.fullmatch(header["mid"])
    assert header["alg"] == "EdDSA"
    assert header["kid"] == kids(keys, SENDER, "sig")[0]
    assert before <= header["iat"] <= int(time.time())
    assert (header["typ"], header["cty"]) == ("gw-message+jws", "json")
    assert set(header) == {"alg", "kid", "typ", "cty", "mid", "iss", "aud", "ctr", "ver", "iat"}
    assert shown.encode() == payload.read_bytes()


def test_open_json(keys: Path, run: Run, payload: Path, tmp_path: Path) -> None:
    envelope = write(tmp_path / "envelope.jwe", sealed(run, keys, payload))
    plain = run(*open_args(keys, envelope))

    result = run(*open_args(keys, envelope, "--json"))

    assert (result.code, result.err) == (0, "")
    document = json.loads(result.out)
    assert set(document) == {"header", "payload"}
    assert document["header"] == header_and_payload(plain.out)[0]
    assert document["payload"].encode() == payload.read_bytes()
    assert json.loads(document["payload"]) == referral(7)


def test_seal_output_pipes_into_open(keys: Path, run: Run, payload: Path) -> None:
    token = run(*seal_args(keys, "-"), stdin=payload.read_bytes()).out.encode()

    result = run(*open_args(keys, "-"), stdin=token)

    assert (result.code, result.err) == (0, "")
    assert header_and_payload(result.out)[1].encode() == payload.read_bytes()


def test_sealed_envelope_is_what_a_node_accepts(keys: Path, run: Run, payload: Path) -> None:
    """The printed envelope is the Kafka record value: a receiving node opens it."""
    token = sealed(run, keys, payload).strip()
    store = KeyStore.load(keys, hosted={RECIPIENT}, secret=PASSPHRASE.encode())

    def lookup(sender: str, kid: str) -> Any:
        public = store.public(sender)
        return public.verify_key(kid) if public else None

    opened = Opener(store.private(RECIPIENT).decryption).open(
        token, recipient=RECIPIENT, verify_key=lookup
    )
    Receiver._check_key(opened)
    assert opened.payload == payload.read_bytes()
    assert (opened.binding.sender, opened.binding.contract) == (SENDER, REFERRAL)


@pytest.mark.parametrize("named", ["--version", "@"])
def test_seal_a_named_version(
    keys: Path, run: Run, payload: Path, tmp_path: Path, named: str
) -> None:
    args = seal_args(keys, payload, "--version", "1.0.0")
    if named == "@":
        args = seal_args(keys, payload)
        args[args.index(REFERRAL)] = f"{REFERRAL}@1.0.0"
    result = run(*args)
    envelope = write(tmp_path / "envelope.jwe", result.out.encode())

    header = header_and_payload(run(*open_args(keys, envelope)).out)[0]

    assert (header["ctr"], header["ver"]) == (REFERRAL, "1.0.0")


def test_seal_without_contracts_needs_a_version(keys: Path, run: Run, payload: Path) -> None:
    args = seal_args(keys, payload)
    del args[args.index("--contracts") : args.index("--contracts") + 2]

    refused = run(*args)
    args.insert(-1, "--version")
    args.insert(-1, "1.0.0")
    unchecked = run(*args)

    assert refused.code == 1
    assert refused.err == "gateway: error: without a contracts directory, --version is required\n"
    assert refused.out == ""
    assert unchecked.code == 0
    assert unchecked.err == "gateway: no contracts directory: the payload was not validated\n"
    assert unchecked.out.count("\n") == 1


def test_seal_an_invalid_payload(keys: Path, run: Run, tmp_path: Path) -> None:
    document = referral(1)
    document["patient"]["patientId"] = "12345"
    del document["urgency"]
    bad = write(tmp_path / "bad.json", json.dumps(document).encode())

    result = run(*seal_args(keys, bad))

    assert result.code == 1
    assert result.out == ""
    lines = result.err.splitlines()
    assert lines[0] == f"gateway: error: payload violates {REFERRAL}@{LATEST} in 2 place(s)"
    assert sorted(lines[1:]) == [
        "  /patient/patientId: does not match the pattern ^P[0-9]{10}$ (pattern)",
        "  /urgency: required member is missing (required)",
    ]


def test_seal_malformed_json(keys: Path, run: Run, tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.json", b'{"referralId": ')

    result = run(*seal_args(keys, bad))

    assert (result.code, result.out) == (1, "")
    assert result.err.startswith("gateway: error: ")


def test_seal_an_unknown_contract(keys: Path, run: Run, payload: Path) -> None:
    args = seal_args(keys, payload)
    args[args.index(REFERRAL)] = "health.nothing"

    result = run(*args)

    assert (result.code, result.out) == (1, "")
    assert result.err == "gateway: error: no contract named 'health.nothing'\n"


def test_open_with_the_wrong_recipient_key(
    keys: Path, run: Run, payload: Path, tmp_path: Path
) -> None:
    run("keys", "generate", "--participant", OTHER, "--out", keys)
    envelope = write(tmp_path / "envelope.jwe", sealed(run, keys, payload))

    result = run(*open_args(keys, envelope, key=f"{OTHER}.enc.pem"))

    assert (result.code, result.out) == (1, "")
    assert result.err == (
        "gateway: rejected: unknown-key: encrypted to a key this recipient lacks\n"
    )


def test_open_with_the_wrong_sender_keys(
    keys: Path, run: Run, payload: Path, tmp_path: Path
) -> None:
    run("keys", "generate", "--participant", OTHER, "--out", keys)
    envelope = write(tmp_path / "envelope.jwe", sealed(run, keys, payload))
    args = open_args(keys, envelope)
    args[args.index("--from") + 1] = keys / f"{OTHER}.public.jwks.json"

    result = run(*args)

    assert (result.code, result.out) == (1, "")
    assert result.err == (
        "gateway: rejected: unknown-key: signed with a key the sender does not hold\n"
    )


def flip(token: bytes, part: int, at: int = 10) -> bytes:
    parts = token.strip().split(b".")
    chars = bytearray(parts[part])
    chars[at] = ord("A") if chars[at] != ord("A") else ord("B")
    parts[part] = bytes(chars)
    return b".".join(parts)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        pytest.param(lambda t: flip(t, 3), "decryption-failed", id="ciphertext"),
        pytest.param(lambda t: flip(t, 4, 5), "decryption-failed", id="tag"),
        pytest.param(lambda t: flip(t, 1, 20), "decryption-failed", id="wrapped-key"),
        pytest.param(lambda t: flip(t, 2, 5), "decryption-failed", id="iv"),
        pytest.param(lambda t: t.strip().rsplit(b".", 1)[0], "malformed", id="truncated"),
        pytest.param(lambda t: b"not an envelope", "malformed", id="garbage"),
    ],
)
def test_open_a_tampered_envelope(
    keys: Path,
    run: Run,
    payload: Path,
    tmp_path: Path,
    tamper: Callable[[bytes], bytes],
    reason: str,
) -> None:
    envelope = write(tmp_path / "envelope.jwe", tamper(sealed(run, keys, payload)))

    result = run(*open_args(keys, envelope))

    assert (result.code, result.out) == (1, "")
    assert result.err.startswith(f"gateway: rejected: {reason}: ")
    assert result.err.count("\n") == 1


@pytest.mark.parametrize("command", ["seal", "open", "generate", "rotate"])
def test_missing_passphrase(
    keys: Path,
    run: Run,
    payload: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    envelope = write(tmp_path / "envelope.jwe", sealed(run, keys, payload))
    monkeypatch.delenv(PASSPHRASE_ENV)
    args: dict[str, list[str | Path]] = {
        "seal": seal_args(keys, payload),
        "open": open_args(keys, envelope),
        "generate": ["keys", "generate", "--participant", OTHER, "--out", keys],
        "rotate": ["keys", "rotate", "--participant", SENDER, "--dir", keys],
    }

    result = run(*args[command])

    assert (result.code, result.out) == (1, "")
    assert result.err == (
        "gateway: error: no key passphrase: set GATEWAY_KEY_PASSPHRASE or "
        "key_passphrase_file (GATEWAY_KEY_PASSPHRASE_FILE)\n"
    )


@pytest.mark.parametrize("command", ["seal", "open", "rotate"])
def test_wrong_passphrase(
    keys: Path,
    run: Run,
    payload: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    envelope = write(tmp_path / "envelope.jwe", sealed(run, keys, payload))
    wrong = "the wrong passphrase 4491"
    monkeypatch.setenv(PASSPHRASE_ENV, wrong)
    args: dict[str, list[str | Path]] = {
        "seal": seal_args(keys, payload),
        "open": open_args(keys, envelope),
        "rotate": ["keys", "rotate", "--participant", SENDER, "--dir", keys],
    }

    result = run(*args[command])

    assert (result.code, result.out) == (1, "")
    assert "cannot decrypt the private key (wrong passphrase" in result.err
    assert wrong not in result.err
    assert PASSPHRASE not in result.err


def test_p256_round_trip(tmp_path: Path, run: Run, payload: Path) -> None:
    keys = tmp_path / "p256"
    for participant in (SENDER, RECIPIENT):
        generated = run(
            "keys", "generate", "--participant", participant, "--out", keys, "--suite", "p256"
        )
        assert generated.code == 0
    envelope = write(tmp_path / "envelope.jwe", sealed(run, keys, payload))

    result = run(*open_args(keys, envelope, "--json"))

    assert (result.code, result.err) == (0, "")
    document = json.loads(result.out)
    assert document["header"]["alg"] == "ES256"
    assert document["header"]["kid"] == kids(keys, SENDER, "sig")[0]
    assert document["payload"].encode() == payload.read_bytes()
    epk = json.loads(jose.base64url_decode(envelope.read_text().split(".")[0]))["epk"]
    assert (epk["kty"], epk["crv"]) == ("EC", "P-256")


def test_suites_do_not_mix(tmp_path: Path, keys: Path, run: Run, payload: Path) -> None:
    """An ed25519 sender seals to a p256 recipient: each side uses its own key's suite."""
    run("keys", "generate", "--participant", OTHER, "--out", keys, "--suite", "p256")
    args = seal_args(keys, payload)
    args[args.index("--to") + 1] = keys / f"{OTHER}.public.jwks.json"
    envelope = write(tmp_path / "envelope.jwe", run(*args).out.encode())

    result = run(*open_args(keys, envelope, key=f"{OTHER}.enc.pem"))

    assert result.code == 0, result.err
    assert header_and_payload(result.out)[0]["alg"] == "EdDSA"


# -- keys rotate / revoke ------------------------------------------------------


T = 1_800_000_000


def revoke_args(keys: Path, kid: str, *extra: str) -> list[str | Path]:
    # "--kid=KID": a kid is base64url and may begin with "-", which argparse would
    # otherwise take for an option.
    return ["keys", "revoke", "--participant", SENDER, "--dir", keys, f"--kid={kid}", *extra]


def test_rotate(keys: Path, run: Run, clock: Callable[[int], None]) -> None:
    old_sig, old_enc = kids(keys, SENDER, "sig")[0], kids(keys, SENDER, "enc")[0]
    clock(T)

    result = run("keys", "rotate", "--participant", SENDER, "--dir", keys, "--overlap", "3600")

    assert (result.code, result.err) == (0, "")
    new_sig, new_enc = kids(keys, SENDER, "sig")[0], kids(keys, SENDER, "enc")[0]
    assert kids(keys, SENDER, "sig") == [new_sig, old_sig]
    assert kids(keys, SENDER, "enc") == [new_enc, old_enc]
    assert result.out.splitlines() == [
        f"{SENDER}: new signing kid {new_sig}, encryption kid {new_enc}",
        f"  old signing kid {old_sig} verifies messages issued until 2027-01-15T09:00:00Z",
        "  distribute the new public key set to every node (nodes read it at start)",
    ]
    old = next(k for k in jwks(keys, SENDER)["keys"] if k["kid"] == old_sig)
    assert old["valid_until"] == T + 3600
    assert (keys / f"{SENDER}.enc.{old_enc}.pem").is_file()


def test_rotate_default_overlap_is_seven_days(
    keys: Path, run: Run, clock: Callable[[int], None]
) -> None:
    clock(T)

    assert run("keys", "rotate", "--participant", SENDER, "--dir", keys).code == 0

    assert jwks(keys, SENDER)["keys"][1]["valid_until"] == T + 7 * 86400


def test_rotate_refuses_a_negative_overlap(keys: Path, run: Run) -> None:
    result = run("keys", "rotate", "--participant", SENDER, "--dir", keys, "--overlap", "-1")

    assert result == Result(1, "", "gateway: error: the overlap window cannot be negative\n")


def test_rotate_unknown_participant(keys: Path, run: Run) -> None:
    result = run("keys", "rotate", "--participant", "nobody", "--dir", keys)

    assert result.code == 1
    assert result.err.startswith(f"gateway: error: cannot read {keys / 'nobody.public.jwks.json'}")


def test_envelopes_across_a_rotation(
    keys: Path, run: Run, payload: Path, tmp_path: Path, clock: Callable[[int], None]
) -> None:
    """Sender and recipient rotate; what was sealed before still opens and verifies,
    with the recipient's retired key file; the sender's old key signs until the
    overlap ends, and no longer."""
    old_sender = tmp_path / "old"
    old_sender.mkdir()
    shutil.copy2(keys / f"{SENDER}.sig.pem", old_sender / f"{SENDER}.sig.pem")
    old_enc = kids(keys, RECIPIENT, "enc")[0]
    clock(T)
    before = write(tmp_path / "before.jwe", sealed(run, keys, payload))
    for participant in (SENDER, RECIPIENT):
        rotated = run(
            "keys", "rotate", "--participant", participant, "--dir", keys, "--overlap", "60"
        )
        assert rotated.code == 0

    retired_key = f"{RECIPIENT}.enc.{old_enc}.pem"
    assert run(*open_args(keys, before, key=retired_key)).code == 0
    assert run(*open_args(keys, before)).err.startswith("gateway: rejected: unknown-key: ")

    def seal_with_old_key(at: int) -> Path:
        clock(at)
        args = seal_args(keys, payload)
        args[args.index("--key") + 1] = old_sender / f"{SENDER}.sig.pem"
        return write(tmp_path / f"at-{at}.jwe", run(*args).out.encode())

    last = seal_with_old_key(T + 60)
    late = seal_with_old_key(T + 61)
    current = write(tmp_path / "current.jwe", sealed(run, keys, payload))

    assert run(*open_args(keys, last)).code == 0
    refused = run(*open_args(keys, late))
    assert (refused.code, refused.out) == (1, "")
    assert refused.err.startswith("gateway: rejected: retired-key: ")
    opened = run(*open_args(keys, current, "--json"))
    assert json.loads(opened.out)["header"]["kid"] == kids(keys, SENDER, "sig")[0]


def test_revoke(
    keys: Path, run: Run, payload: Path, tmp_path: Path, clock: Callable[[int], None]
) -> None:
    old_sig = kids(keys, SENDER, "sig")[0]
    clock(T)
    early = write(tmp_path / "early.jwe", sealed(run, keys, payload))
    clock(T + 100)
    late = write(tmp_path / "late.jwe", sealed(run, keys, payload))
    assert run("keys", "rotate", "--participant", SENDER, "--dir", keys).code == 0

    result = run(*revoke_args(keys, old_sig, "--at", str(T + 50)))

    assert (result.code, result.err) == (0, "")
    assert result.out == (
        f"{SENDER}: {old_sig} revoked; messages it signed at or after {T + 50} are refused\n"
    )
    marked = {k["kid"]: k.get("revoked_at") for k in jwks(keys, SENDER)["keys"]}
    assert marked[old_sig] == T + 50
    assert [kid for kid, at in marked.items() if at is not None] == [old_sig]
    assert run(*open_args(keys, early)).code == 0
    refused = run(*open_args(keys, late))
    assert (refused.code, refused.out) == (1, "")
    assert refused.err == (
        f"gateway: rejected: revoked-key: signed with {old_sig}, revoked at {T + 50}\n"
    )


def test_revoke_defaults_to_now(keys: Path, run: Run, clock: Callable[[int], None]) -> None:
    old_sig = kids(keys, SENDER, "sig")[0]
    assert run("keys", "rotate", "--participant", SENDER, "--dir", keys).code == 0
    clock(T)

    result = run(*revoke_args(keys, old_sig))

    assert result.code == 0
    assert jwks(keys, SENDER)["keys"][1]["revoked_at"] == T


def test_revoke_refuses_the_current_kid(keys: Path, run: Run) -> None:
    current = kids(keys, SENDER, "sig")[0]
    before = (keys / f"{SENDER}.public.jwks.json").read_bytes()

    result = run(*revoke_args(keys, current))

    assert result == Result(
        1, "", f"gateway: error: {current} is {SENDER}'s current signing key: rotate first\n"
    )
    assert (keys / f"{SENDER}.public.jwks.json").read_bytes() == before


def test_revoke_refuses_an_unknown_kid(keys: Path, run: Run) -> None:
    unknown = kids(keys, RECIPIENT, "sig")[0]

    result = run(*revoke_args(keys, unknown))

    assert result == Result(1, "", f"gateway: error: {SENDER} has no signing key {unknown}\n")


def test_revoke_needs_no_passphrase(keys: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    old_sig = kids(keys, SENDER, "sig")[0]
    assert run("keys", "rotate", "--participant", SENDER, "--dir", keys).code == 0
    monkeypatch.delenv(PASSPHRASE_ENV)

    result = run(*revoke_args(keys, old_sig, "--at", "1"))

    assert result.code == 0
    assert jwks(keys, SENDER)["keys"][1]["revoked_at"] == 1


def test_revoke_refuses_a_negative_time(keys: Path, run: Run) -> None:
    old_sig = kids(keys, SENDER, "sig")[0]
    assert run("keys", "rotate", "--participant", SENDER, "--dir", keys).code == 0
    before = (keys / f"{SENDER}.public.jwks.json").read_bytes()

    result = run(*revoke_args(keys, old_sig, "--at", "-5"))

    assert result == Result(
        1, "", "gateway: error: the revocation time must be a Unix time in seconds (>= 0)\n"
    )
    assert (keys / f"{SENDER}.public.jwks.json").read_bytes() == before


def test_revoke_then_the_key_set_still_loads(keys: Path, run: Run) -> None:
    old_sig = kids(keys, SENDER, "sig")[0]
    assert run("keys", "rotate", "--participant", SENDER, "--dir", keys).code == 0
    assert run(*revoke_args(keys, old_sig, "--at", "0")).code == 0

    store = KeyStore.load(keys, hosted={SENDER, RECIPIENT}, secret=PASSPHRASE.encode())

    public = store.public(SENDER)
    assert public is not None
    key = public.verify_key(old_sig)
    assert key is not None
    assert key.revoked_at == 0
    assert KID.fullmatch(old_sig)
