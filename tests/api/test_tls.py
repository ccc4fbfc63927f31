"""HTTPS for the node's API, and mutual TLS: a client certificate names its participant."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import ipaddress
import ssl
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.config import GatewayConfig, load_config
from gateway.errors import ConfigError
from gateway.node import running_node
from tests.fakes import MemoryTransport
from tests.support import REFERRAL, Federation, referral

PUBLISH = f"/v1/contracts/{REFERRAL}/messages"
NOW = datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path
    der: bytes

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.der).hexdigest()


class Authority:
    """A throwaway CA that issues the server's and the clients' certificates."""

    def __init__(self, root: Path, name: str = "test CA") -> None:
        self.root = root
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(minutes=5))
            .not_valid_after(NOW + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = root / f"{name.replace(' ', '-')}.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, server: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(minutes=5))
            .not_valid_after(NOW + datetime.timedelta(days=1))
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path, key_path = self.root / f"{name}.crt", self.root / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Issued(cert_path, key_path, cert.public_bytes(serialization.Encoding.DER))


@dataclass
class Setup:
    fed: Federation
    ca: Authority
    server: Issued
    minhealth: Issued
    stranger: Issued

    def config(self, *, require: bool = False) -> GatewayConfig:
        base = self.fed.config(
            ("minhealth", "socialtreasury", "acme-analytics"), bootstrap="memory"
        )
        participants = tuple(
            dataclasses.replace(p, client_cert_sha256=(self.minhealth.fingerprint,))
            if p.id == "minhealth"
            else p
            for p in base.participants
        )
        http = dataclasses.replace(
            base.http,
            tls_cert=self.server.cert,
            tls_key=self.server.key,
            tls_client_ca=self.ca.path,
            tls_require_client_cert=require,
        )
        return dataclasses.replace(base, http=http, participants=participants)

    def client(self, certificate: Issued | None = None, **options: object) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.path))
        with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            for name, value in options.items():
                setattr(context, name, value)
        if certificate is not None:
            context.load_cert_chain(certificate.cert, certificate.key)
        return context


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    ca = Authority(tmp_path)
    return Setup(
        Federation.create(tmp_path),
        ca,
        ca.issue("server", server=True),
        ca.issue("minhealth"),
        ca.issue("stranger"),
    )


@asynccontextmanager
async def node_url(config: GatewayConfig) -> AsyncIterator[str]:
    async with running_node(config, transport=MemoryTransport()) as node:
        await node.wait_ready(5)
        yield node.url


async def publish(
    url: str, context: ssl.SSLContext, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http,
        http.post(url + PUBLISH, json=referral(), headers=headers or {}) as response,
    ):
        return response.status, await response.json()


async def test_a_client_certificate_alone_names_its_participant(setup: Setup) -> None:
    async with node_url(setup.config()) as url:
        assert url.startswith("https://")
        status, body = await publish(url, setup.client(setup.minhealth))

    assert status == 202
    records = [r for r in setup.fed.audit("node-1") if r["event"] == "message.accepted"]
    assert [r["sender"] for r in records] == ["minhealth"]
    assert body["recipients"] == ["acme-analytics", "socialtreasury"]


async def test_a_certificate_the_ca_issued_but_no_participant_holds_is_refused(
    setup: Setup,
) -> None:
    async with node_url(setup.config()) as url:
        status, body = await publish(url, setup.client(setup.stranger))

    assert (status, body["detail"]) == (
        401,
        "the client certificate is not one a participant holds",
    )
    [failed] = [r for r in setup.fed.audit("node-1") if r["event"] == "auth.failed"]
    assert failed["reason"] == "unknown-token"


async def test_a_token_and_a_certificate_of_different_participants_are_refused(
    setup: Setup,
) -> None:
    async with node_url(setup.config()) as url:
        status, body = await publish(
            url, setup.client(setup.minhealth), setup.fed.auth("socialtreasury")
        )

    assert status == 401
    assert body["detail"] == "the token and the client certificate belong to different principals"


async def test_tokens_still_work_over_https_without_a_certificate(setup: Setup) -> None:
    async with node_url(setup.config()) as url:
        status, _ = await publish(url, setup.client(), setup.fed.auth("minhealth"))

    assert status == 202


@pytest.mark.parametrize(
    ("require", "client"),
    [
        (True, lambda s: s.client()),  # no certificate where one is required
        (False, lambda s: s.client(s.minhealth, maximum_version=ssl.TLSVersion.TLSv1_1)),
        (False, lambda s: ssl.create_default_context()),  # does not trust the node's CA
    ],
    ids=["certificate-required", "tls-1.1", "untrusted-server"],
)
async def test_handshakes_the_node_refuses(
    setup: Setup, require: bool, client: Callable[[Setup], ssl.SSLContext]
) -> None:
    async with node_url(setup.config(require=require)) as url:
        with pytest.raises(aiohttp.ClientError):
            await publish(url, client(setup), setup.fed.auth("minhealth"))


def test_tls_settings_that_do_not_fit_together_are_refused(tmp_path: Path) -> None:
    cases = {
        "http:\n  tls_cert: a.crt\n": "give both, or neither",
        "http:\n  tls_cert: a.crt\n  tls_key: a.key\n  tls_require_client_cert: true\n": (
            "needs http.tls_client_ca"
        ),
        "http:\n  tls_client_ca: ca.pem\n": "mutual TLS needs http.tls_cert",
        (
            "participants:\n  - id: minhealth\n    client_cert_sha256: [abc]\n"
        ): "expected 64 hex digits",
    }
    for text, message in cases.items():
        path = tmp_path / "gateway.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_config(path, environ={})


async def test_unreadable_tls_files_stop_the_node_with_a_clear_error(setup: Setup) -> None:
    config = setup.config()
    broken = dataclasses.replace(
        config, http=dataclasses.replace(config.http, tls_key=setup.fed.root / "missing.key")
    )
    with pytest.raises(ConfigError, match="http TLS files"):
        async with node_url(broken):
            pass
