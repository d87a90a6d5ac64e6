"""TLS terminated by rustls in the core, configured with uvicorn's --ssl-* options."""

from __future__ import annotations

import asyncio
import ssl
import subprocess

import httpx
import pytest
import trustme
import websockets
from cryptography.hazmat.primitives import serialization

from tests.serverproc import sandman


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    d = tmp_path_factory.mktemp("pki")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(d / "combined.pem"))
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    (d / "encrypted.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    client = ca.issue_cert("client@example.com")
    client.private_key_and_cert_chain_pem.write_to_path(str(d / "client.pem"))
    return ca, d


def _client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.mark.parametrize(
    "flags",
    [
        ["--ssl-certfile", "cert.pem", "--ssl-keyfile", "key.pem"],
        ["--ssl-certfile", "combined.pem"],
        [
            "--ssl-certfile",
            "cert.pem",
            "--ssl-keyfile",
            "encrypted.pem",
            "--ssl-keyfile-password",
            "s3cret",
        ],
    ],
    ids=["key-and-cert", "combined-pem", "encrypted-key"],
)
def test_https(pki, flags):
    ca, d = pki
    flags = [str(d / f) if f.endswith(".pem") else f for f in flags]
    with sandman("tests.apps:scope_echo", *flags) as server:
        server.wait_for(r"Sandman running on https://127\.0\.0\.1:\d+")
        r = httpx.get(f"https://127.0.0.1:{server.port}/x", verify=_client_ctx(ca))
        assert r.status_code == 200
        assert r.json()["scope"]["scheme"] == "https"
        assert r.http_version == "HTTP/1.1"


def test_wss(pki):
    ca, d = pki
    with sandman("tests.ws_apps:echo", "--ssl-certfile", str(d / "combined.pem")) as server:

        async def go():
            async with websockets.connect(
                f"wss://127.0.0.1:{server.port}/", ssl=_client_ctx(ca)
            ) as ws:
                await ws.send("secure")
                return await ws.recv()

        assert asyncio.run(asyncio.wait_for(go(), 10)) == "secure"
        server.wait_for("scheme=wss")


def test_client_certificates_required(pki):
    ca, d = pki
    with sandman(
        "tests.apps:hello",
        "--ssl-certfile",
        str(d / "combined.pem"),
        "--ssl-cert-reqs",
        "2",
        "--ssl-ca-certs",
        str(d / "ca.pem"),
    ) as server:
        url = f"https://127.0.0.1:{server.port}/"
        with pytest.raises(httpx.HTTPError):
            httpx.get(url, verify=_client_ctx(ca))
        ctx = _client_ctx(ca)
        ctx.load_cert_chain(str(d / "client.pem"))
        assert httpx.get(url, verify=ctx).text == "Hello, world!"


def test_tls12_only_and_cipher_choice(pki):
    ca, d = pki
    with sandman(
        "tests.apps:hello",
        "--ssl-certfile",
        str(d / "combined.pem"),
        "--ssl-version",
        "5",
        "--ssl-ciphers",
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384",
    ) as server:
        with httpx.Client(verify=_client_ctx(ca)) as client:
            r = client.get(f"https://127.0.0.1:{server.port}/")
            assert r.text == "Hello, world!"
        out = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-brief"],
            input=b"",
            capture_output=True,
            timeout=10,
        )
        text = (out.stdout + out.stderr).decode()
        assert "TLSv1.2" in text and "AES256-GCM-SHA384" in text


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ssl-certfile", "/nonexistent.pem"], "cannot read certificate file"),
        (["--ssl-certfile", "cert.pem", "--ssl-keyfile", "encrypted.pem"], "is encrypted"),
        (
            [
                "--ssl-certfile",
                "cert.pem",
                "--ssl-keyfile",
                "encrypted.pem",
                "--ssl-keyfile-password",
                "wrong",
            ],
            "wrong password",
        ),
        (
            ["--ssl-certfile", "combined.pem", "--ssl-version", "3"],
            "TLS 1.0 and 1.1 are not supported",
        ),
    ],
    ids=["missing-file", "no-password", "wrong-password", "tls10"],
)
def test_bad_tls_settings_exit_3_with_one_line(pki, flags, message):
    _, d = pki
    flags = [str(d / f) if f.endswith(".pem") and not f.startswith("/") else f for f in flags]
    with sandman("tests.apps:hello", *flags, ready=False) as server:
        rc = server.wait(timeout=15)
    assert rc == 3
    errors = [line for line in server.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], server.stderr
    assert "Traceback" not in server.stderr
