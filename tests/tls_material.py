"""A throwaway CA, server and client certificate for TLS tests (python `cryptography`)."""
from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: str, key, cert) -> None:
    with open(path + ".key", "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    with open(path + ".pem", "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))


def make_pki(directory: str) -> dict[str, str]:
    """Writes ca.pem, server.pem/.key (for 127.0.0.1 and localhost), client.pem/.key, rogue-ca.pem."""
    now = datetime.datetime.now(datetime.timezone.utc)
    valid = dict(not_valid_before=now - datetime.timedelta(minutes=5), not_valid_after=now + datetime.timedelta(days=2))

    def authority(name):
        key = _key()
        cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(valid["not_valid_before"]).not_valid_after(valid["not_valid_after"])
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        return key, cert

    ca_key, ca_cert = authority("statecast test CA")
    _write(os.path.join(directory, "ca"), ca_key, ca_cert)
    rogue_key, rogue_cert = authority("someone else's CA")
    _write(os.path.join(directory, "rogue-ca"), rogue_key, rogue_cert)

    def leaf(name, usage, san=None):
        key = _key()
        builder = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca_cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(valid["not_valid_before"]).not_valid_after(valid["not_valid_after"])
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        _write(os.path.join(directory, name), key, builder.sign(ca_key, hashes.SHA256()))

    leaf("server", ExtendedKeyUsageOID.SERVER_AUTH,
         [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH)
    return {name: os.path.join(directory, name) for name in ("ca", "rogue-ca", "server", "client")}
