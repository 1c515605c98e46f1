"""The secured local broker: TLS on every listener, SCRAM-SHA-512 users, ACLs enforced.

``streamkit broker start --secure`` runs the local broker the way a production cluster is
secured, so that an app can be tried against it before it meets one:

- a CA made for this broker, and a broker certificate for ``127.0.0.1`` and ``localhost``;
- clients on a ``SASL_SSL`` listener, authenticated with SCRAM-SHA-512;
- the KRaft controller on an ``SSL`` listener that requires the broker's certificate;
- KRaft's ``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false``: whoever has
  no ACL may do nothing, except the super users (``admin``, and the broker itself);
- the ``admin`` user created when the storage is formatted, with a random password that is
  written to a file (mode 0600) and never printed.

Everything lives in ``<data dir>/secure``: ``ca.pem`` (what clients trust), ``broker.pem``
(the broker's key and certificate), ``admin.password`` and ``client.env`` (the
``STREAMKIT_*`` settings of an admin client, the password by file).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ADMIN", "BROKER_PRINCIPAL", "SecureFiles", "secure_files"]

ADMIN = "admin"
"""The super user created with the storage."""
BROKER_PRINCIPAL = "streamkit-broker"
"""The broker's own principal (its certificate's CN), a super user on the controller."""
MECHANISM = "SCRAM-SHA-512"
_VALID_DAYS = 825
_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True)
class SecureFiles:
    """The secured broker's files in one directory."""

    directory: Path

    @property
    def ca(self) -> Path:
        """The CA certificate clients trust."""
        return self.directory / "ca.pem"

    @property
    def broker_pem(self) -> Path:
        """The broker's private key (PKCS#8) and certificate chain."""
        return self.directory / "broker.pem"

    @property
    def admin_password(self) -> Path:
        """The admin user's password."""
        return self.directory / "admin.password"

    @property
    def client_env(self) -> Path:
        """``export`` lines that point streamkit at this broker as the admin user."""
        return self.directory / "client.env"

    def password(self) -> str:
        """The admin password (read from its file; never log it)."""
        return self.admin_password.read_text().strip()

    def broker_properties(self, host: str, port: int, controller_port: int) -> dict[str, str]:
        """The ``server.properties`` entries that secure the broker."""
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN}" password="{self.password()}";'
        )
        return {
            "listeners": f"SASL_SSL://{host}:{port},CONTROLLER://{host}:{controller_port}",
            "advertised.listeners": f"SASL_SSL://{host}:{port}",
            "listener.security.protocol.map": "CONTROLLER:SSL,SASL_SSL:SASL_SSL",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.broker_pem),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca),
            "listener.name.controller.ssl.client.auth": "required",
            "ssl.principal.mapping.rules": "RULE:^CN=([a-zA-Z0-9.-]+).*$/$1/,DEFAULT",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{ADMIN};User:{BROKER_PRINCIPAL}",
        }

    def format_arguments(self) -> list[str]:
        """The storage tool's arguments that create the admin user with the metadata."""
        return ["--add-scram", f"{MECHANISM}=[name={ADMIN},password={self.password()}]"]

    def client_config(self, user: str = ADMIN, password: str | None = None) -> dict[str, Any]:
        """librdkafka settings of a client of this broker as ``user``."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": user,
            "sasl.password": self.password() if password is None else password,
            "ssl.ca.location": str(self.ca),
        }

    def environment(self, bootstrap: str) -> dict[str, str]:
        """The ``STREAMKIT_*`` variables of an admin client (the password by file)."""
        return {
            "STREAMKIT_BOOTSTRAP_SERVERS": bootstrap,
            "STREAMKIT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "STREAMKIT_KAFKA_SASL_MECHANISM": MECHANISM,
            "STREAMKIT_KAFKA_SASL_USERNAME": ADMIN,
            "STREAMKIT_KAFKA_SASL_PASSWORD_FILE": str(self.admin_password),
            "STREAMKIT_KAFKA_SSL_CA_LOCATION": str(self.ca),
        }

    def write_client_env(self, bootstrap: str) -> Path:
        """Write :attr:`client_env` for ``bootstrap``; return its path."""
        lines = [f"export {k}={v}" for k, v in self.environment(bootstrap).items()]
        self.client_env.write_text("\n".join(lines) + "\n")
        return self.client_env


def secure_files(directory: Path, *, valid_until: dt.datetime | None = None) -> SecureFiles:
    """The files in ``directory``, made the first time (a CA, the broker's certificate, the
    admin password); kept afterwards, since the formatted storage holds the password.
    ``valid_until``: when the broker's certificate expires (default: in 825 days; a past
    time makes an expired one, to see what clients say)."""
    files = SecureFiles(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    if not files.admin_password.exists():
        _private(files.admin_password, secrets.token_urlsafe(24))
    if not (files.ca.exists() and files.broker_pem.exists()):
        ca_key, ca_cert = _authority()
        key, cert = _certificate(ca_key, ca_cert, valid_until)
        files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        _private(files.broker_pem, (_pkcs8(key) + _pem(cert) + _pem(ca_cert)).decode())
    return files


def _private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common: str) -> x509.Name:
    """A subject of its CN alone: the principal mapping rule takes the CN of ``CN=...``."""
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _authority() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name("streamkit local CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _certificate(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, until: dt.datetime | None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(BROKER_PRINCIPAL))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now, until or now) - dt.timedelta(days=1))
        .not_valid_after(until or now + dt.timedelta(days=_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert
