"""What keeps the embedded S3 server (SeaweedFS) closed to everyone but talix-ray.

* **S3 identities.** One generated access/secret key pair, kept in ``DATA/credentials.json``
  (mode 0600) and reused on every restart; the S3 gateway knows only that identity
  (``-s3.config``), so anonymous requests and wrong keys get 403.
* **Admin HTTP APIs.** The master's and the filer's HTTP APIs are switched off
  (``-disableHttp``: ``/dir/assign``, ``/vol/grow``, ``/col/delete``, filer reads and writes no
  longer exist); the volume server accepts reads and writes only with a JWT signed by keys in
  ``security.toml`` (``[jwt.signing]``, ``[jwt.signing.read]``, and the filer's for good
  measure), so only the master and filer, which hold the keys, can hand one out.
* **gRPC.** Master, volume, filer and S3 gRPC ports require mutual TLS (``[grpc.*]``): a
  certificate authority made at each start signs one certificate the components share, the
  CA's private key is never written, and a client without that certificate is refused.

Everything is regenerated at each start except the S3 key pair. The files live in the data
directory (0700) with mode 0600: ``credentials.json``, ``s3.json``, ``security.toml`` (read
by ``weed`` from its working directory) and ``tls/``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from .model.errors import ConfigurationError
from .privatefiles import check_private, private_text, write_private

CREDENTIALS_FILE = "credentials.json"
_KEY_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class S3Credentials:
    """The S3 key pair of the embedded server (the secret masked in reprs)."""

    access_key: str
    secret_key: SecretStr

    @classmethod
    def generate(cls) -> S3Credentials:
        """A new pair: a 20-character access key id and a 40-character secret (AWS's shapes,
        240 bits of entropy in the secret)."""
        access = "TLX" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(17))
        return cls(access, SecretStr(secrets.token_urlsafe(30)))

    @classmethod
    def load_or_create(cls, path: Path) -> S3Credentials:
        """The pair stored at ``path``, generated (mode 0600) if there is none."""
        def new() -> str:
            creds = cls.generate()
            return json.dumps({"access_key": creds.access_key,
                               "secret_key": creds.secret_key.get_secret_value()})

        try:
            data = json.loads(private_text(path, new))
            creds = cls(str(data["access_key"]), SecretStr(str(data["secret_key"])))
        except (ValueError, KeyError, TypeError):
            raise ConfigurationError(f"{path} is not an S3 key pair written by talix-ray; "
                                     "delete it to generate a new one") from None
        if not creds.access_key or not creds.secret_key.get_secret_value():
            raise ConfigurationError(f"{path} holds an empty key; delete it") from None
        return creds


def s3_identities(creds: S3Credentials) -> str:
    """``-s3.config``: the one identity the gateway accepts (no anonymous identity)."""
    return json.dumps({"identities": [{
        "name": "talix",
        "credentials": [{"accessKey": creds.access_key,
                         "secretKey": creds.secret_key.get_secret_value()}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]})


@dataclass(frozen=True)
class TlsFiles:
    """The gRPC mutual-TLS material: the CA certificate, and one certificate and key."""

    ca: Path
    cert: Path
    key: Path


def make_tls(folder: Path) -> TlsFiles:
    """A fresh CA (its key stays in memory) and a certificate for 127.0.0.1/localhost, good
    for server and client authentication, written to ``folder`` (0700, files 0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(days=3650)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "talix-ray embedded S3 CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "talix-ray embedded S3")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = TlsFiles(folder / "ca.crt", folder / "weed.crt", folder / "weed.key")
    write_private(files.ca, ca.public_bytes(serialization.Encoding.PEM).decode())
    write_private(files.cert, cert.public_bytes(serialization.Encoding.PEM).decode())
    write_private(files.key, key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()).decode())
    return files


def security_toml(tls: TlsFiles) -> str:
    """``security.toml`` for master, volume, filer and S3: fresh JWT signing keys, gRPC mTLS,
    no volume UI and no filer directory listings."""
    def key() -> str:
        return json.dumps(secrets.token_urlsafe(32))

    lines = [
        "[jwt.signing]", f"key = {key()}", "expires_after_seconds = 10",
        "[jwt.signing.read]", f"key = {key()}", "expires_after_seconds = 10",
        "[jwt.filer_signing]", f"key = {key()}", "expires_after_seconds = 10",
        "[jwt.filer_signing.read]", f"key = {key()}", "expires_after_seconds = 60",
        "[access]", "ui = false",
        "[filer.expose_directory_metadata]", "enabled = false",
        "[grpc]", f"ca = {json.dumps(str(tls.ca))}",
    ]
    for part in ("master", "volume", "filer", "s3", "client"):
        lines += [f"[grpc.{part}]", f"cert = {json.dumps(str(tls.cert))}",
                  f"key = {json.dumps(str(tls.key))}"]
    return "\n".join(lines) + "\n"


__all__ = ["S3Credentials", "TlsFiles", "check_private", "make_tls", "s3_identities",
           "security_toml", "write_private"]
