"""vk_eci.kubelet.tls: self-signed serving certificates and the SSL context."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from vk_eci.kubelet.tls import TlsError, self_signed, server_context


def test_self_signed_certificate_names_the_node_address() -> None:
    cert_pem, key_pem = self_signed("vk", ["10.1.2.3", "vk", "10.1.2.3"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3")]
    assert san.get_values_for_type(x509.DNSName) == ["vk"]
    assert b"PRIVATE KEY" in key_pem


async def test_context_from_files_and_client_ca(tmp_path: Path) -> None:
    cert, key = self_signed("vk", ["127.0.0.1"])
    (tmp_path / "c.crt").write_bytes(cert)
    (tmp_path / "c.key").write_bytes(key)
    ctx = await server_context(cert_file=tmp_path / "c.crt", key_file=tmp_path / "c.key",
                               client_ca=tmp_path / "c.crt", node_name="vk", hosts=[])
    assert ctx.verify_mode == ssl.CERT_OPTIONAL  # tokens still accepted without a cert
    ctx = await server_context(cert_file=None, key_file=None, client_ca=None, node_name="vk",
                               hosts=["127.0.0.1"])
    assert ctx.verify_mode == ssl.CERT_NONE


async def test_bad_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(TlsError, match="go together"):
        await server_context(cert_file=tmp_path / "x", key_file=None, client_ca=None,
                             node_name="vk", hosts=[])
    with pytest.raises(TlsError, match=r"missing\.crt"):
        await server_context(cert_file=tmp_path / "missing.crt", key_file=tmp_path / "k",
                             client_ca=None, node_name="vk", hosts=[])
    with pytest.raises(TlsError, match="client CA"):
        await server_context(cert_file=None, key_file=None, client_ca=tmp_path / "nope.crt",
                             node_name="vk", hosts=["127.0.0.1"])


async def test_the_running_server_serves_a_rotated_certificate(tmp_path: Path) -> None:
    """A real KubeletServer on loopback: rewrite its certificate files (as cert-manager does)
    and the next handshake presents the new certificate; a broken pair keeps the old one."""
    import asyncio

    from kubernetes_asyncio import client

    from vk_eci.kubelet.server import KubeletConfig, KubeletServer

    def write(name: str) -> bytes:
        cert, key = self_signed(name, ["127.0.0.1"])
        (tmp_path / "tls.crt").write_bytes(cert)
        (tmp_path / "tls.key").write_bytes(key)
        return x509.load_pem_x509_certificate(cert).fingerprint(hashes.SHA256())

    async def served(port: int) -> bytes:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        return x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256())

    first = write("old")
    config = KubeletConfig(node_name="vk", host="127.0.0.1", port=0,
                           tls_cert_file=tmp_path / "tls.crt", tls_key_file=tmp_path / "tls.key",
                           tls_reload_interval=0.05)
    async with client.ApiClient() as api:
        server = KubeletServer(config, api, pod_io=None)  # type: ignore[arg-type]
        await server.start()
        try:
            assert await served(server.port) == first
            second = write("new")
            for _ in range(100):
                if await served(server.port) == second:
                    break
                await asyncio.sleep(0.05)
            assert await served(server.port) == second
            # Half a rotation (a certificate without its key) is not loaded.
            (tmp_path / "tls.crt").write_bytes(self_signed("other", ["127.0.0.1"])[0])
            await asyncio.sleep(0.3)
            assert await served(server.port) == second
        finally:
            await server.stop()
