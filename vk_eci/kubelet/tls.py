"""The kubelet API's TLS: a serving certificate from files, or a self-signed one made at start.

A client CA, when given, lets callers (the API server above all, with its kubelet client
certificate) authenticate by certificate: the handshake asks for one but does not require it,
so bearer-token callers still get in and are checked by ``TokenReview``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vk_eci.log import kubelet_logger as log

SELF_SIGNED_DAYS = 365


class TlsError(Exception):
    """The serving certificate, its key or the client CA cannot be used; says which and why."""


def self_signed(node_name: str, hosts: Sequence[str]) -> tuple[bytes, bytes]:
    """A self-signed serving certificate (PEM cert, PEM key) for ``hosts`` (IPs or names)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{node_name}@vk-eci")])
    sans: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _context(cert_file: Path, key_file: Path, client_ca: Path | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as e:
        raise TlsError(f"cannot load the kubelet serving certificate {cert_file} with key "
                       f"{key_file}: {e}") from e
    if client_ca is not None:
        try:
            ctx.load_verify_locations(cafile=str(client_ca))
        except (OSError, ssl.SSLError) as e:
            raise TlsError(f"cannot load the client CA {client_ca}: {e}") from e
        ctx.verify_mode = ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _self_signed_context(node_name: str, hosts: Sequence[str],
                         client_ca: Path | None) -> ssl.SSLContext:
    cert, key = self_signed(node_name, hosts)
    # ssl loads chains only from files: write them to a private directory, load, remove.
    with tempfile.TemporaryDirectory(prefix="vk-eci-tls-") as d:
        return _context(*_private_pair(Path(d), cert, key), client_ca)


def _private_pair(directory: Path, cert: bytes, key: bytes) -> tuple[Path, Path]:
    """``cert`` and ``key`` written to ``directory`` (the key readable by us only)."""
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(cert)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return cert_file, key_file


async def server_context(*, cert_file: Path | None, key_file: Path | None,
                         client_ca: Path | None, node_name: str,
                         hosts: Sequence[str]) -> ssl.SSLContext:
    """The SSL context of the kubelet API (file I/O and key generation off the event loop)."""
    if (cert_file is None) != (key_file is None):
        raise TlsError("--tls-cert-file and --tls-key-file go together: give both or "
                       "neither (neither: a self-signed certificate is made)")
    if cert_file is not None and key_file is not None:
        return await asyncio.to_thread(_context, cert_file, key_file, client_ca)
    return await asyncio.to_thread(_self_signed_context, node_name, hosts, client_ca)


def _stamp(*files: Path) -> tuple[tuple[int, int, int], ...]:
    """What changes when a file is rewritten or (as a Secret volume does) swapped by symlink."""
    out = []
    for f in files:
        st = f.stat()
        out.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


def _reload(ctx: ssl.SSLContext, cert_file: Path, key_file: Path) -> None:
    """Load the pair into ``ctx`` only if it loads: a failed ``load_cert_chain`` can leave a
    context with a certificate and no matching key, so the pair is read once, proved on a
    scratch context, and the very same bytes then loaded into the live one."""
    cert, key = cert_file.read_bytes(), key_file.read_bytes()
    with tempfile.TemporaryDirectory(prefix="vk-eci-tls-") as d:
        c, k = _private_pair(Path(d), cert, key)
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(c), str(k))
        ctx.load_cert_chain(str(c), str(k))


async def watch_certificate(ctx: ssl.SSLContext, cert_file: Path, key_file: Path, *,
                            interval: float = 10.0) -> None:
    """Reload the serving certificate into ``ctx`` whenever its files change (cert-manager or
    a rotated Secret), until cancelled. New handshakes get the new certificate; a pair that
    does not load (half written, key not matching) is logged and the old one kept."""
    try:
        seen = await asyncio.to_thread(_stamp, cert_file, key_file)
    except OSError:
        seen = ()
    while True:
        await asyncio.sleep(interval)
        try:
            now = await asyncio.to_thread(_stamp, cert_file, key_file)
        except OSError as e:
            log.warning("serving certificate %s not readable, keeping the loaded one: %s",
                        cert_file, e)
            continue
        if now == seen:
            continue
        try:
            await asyncio.to_thread(_reload, ctx, cert_file, key_file)
        except (OSError, ssl.SSLError) as e:
            log.warning("serving certificate %s changed but does not load with key %s, "
                        "keeping the loaded one: %s", cert_file, key_file, e)
            continue  # try again on the next change (or when the pair is complete)
        seen = now
        log.info("serving certificate %s reloaded", cert_file)
