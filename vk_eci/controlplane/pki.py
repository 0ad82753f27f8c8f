"""Certificates and keys for the local control plane (CA, serving, client, service accounts)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _name(cn: str, org: str | tuple[str, ...] | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    # Several O attributes: several groups, as Kubernetes reads a client certificate.
    for o in (org,) if isinstance(org, str) else org or ():
        if o:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    return x509.Name(attrs)


def make_ca(directory: Path, name: str = "ca") -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("vk-eci-local-ca"))
        .issuer_name(_name("vk-eci-local-ca"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(_write(directory / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
                   _write(directory / f"{name}.key", _pem_key(key)))


def issue(ca: KeyPair, directory: Path, name: str, *, cn: str,
          org: str | tuple[str, ...] | None = None,
          hosts: tuple[str, ...] = (), server: bool = False) -> KeyPair:
    """Issue a leaf certificate signed by ``ca`` (client, or serving when ``server``)."""
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if hosts:
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    cert = builder.sign(ca_key, hashes.SHA256())
    return KeyPair(_write(directory / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM)),
                   _write(directory / f"{name}.key", _pem_key(key)))


def make_service_account_key(directory: Path) -> KeyPair:
    """RSA pair that signs and verifies service-account tokens (``cert`` is the public key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return KeyPair(_write(directory / "sa.pub", public),
                   _write(directory / "sa.key", _pem_key(key)))
