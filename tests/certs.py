"""Test certificates made with the openssl command: a CA, an engine and a client, plus a rogue.

Laid out as the docker CLI expects (``ca.pem``, ``cert.pem``, ``key.pem`` in a client folder),
and as ``dockerd --tlsverify`` takes them (``--tlscacert``, ``--tlscert``, ``--tlskey``).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PKI", "make_pki"]


@dataclass(frozen=True)
class PKI:
    root: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    #: ca.pem, cert.pem, key.pem: a client the CA signed
    client_dir: Path
    #: the same layout, but the client certificate is signed by another CA
    rogue_client_dir: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _key(cwd: Path, name: str) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name, cwd=cwd)


def _ca(cwd: Path, name: str) -> None:
    _key(cwd, f"{name}-key.pem")
    _openssl(
        "req", "-x509", "-new", "-key", f"{name}-key.pem", "-sha256", "-days", "2",
        "-subj", f"/CN={name}", "-out", f"{name}.pem", cwd=cwd,
    )  # fmt: skip


def _signed(cwd: Path, name: str, ca: str, extensions: str) -> None:
    _key(cwd, f"{name}-key.pem")
    _openssl(
        "req", "-new", "-key", f"{name}-key.pem", "-subj", f"/CN={name}",
        "-out", f"{name}.csr", cwd=cwd,
    )  # fmt: skip
    (cwd / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
        "-CAcreateserial", "-days", "2", "-sha256", "-extfile", f"{name}.ext",
        "-out", f"{name}.pem", cwd=cwd,
    )  # fmt: skip


def _client_dir(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "ca.pem").write_bytes((root / "ca.pem").read_bytes())
    (folder / "cert.pem").write_bytes((root / f"{name}.pem").read_bytes())
    (folder / "key.pem").write_bytes((root / f"{name}-key.pem").read_bytes())
    (folder / "key.pem").chmod(0o600)
    return folder


def make_pki(root: Path) -> PKI:
    """Everything under ``root``: the engine's server files and two client folders."""
    root.mkdir(parents=True, exist_ok=True)
    _ca(root, "ca")
    _ca(root, "rogue-ca")
    _signed(
        root,
        "server",
        "ca",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    _signed(root, "client", "ca", "extendedKeyUsage=clientAuth\n")
    _signed(root, "rogue-client", "rogue-ca", "extendedKeyUsage=clientAuth\n")
    return PKI(
        root=root,
        ca_cert=root / "ca.pem",
        server_cert=root / "server.pem",
        server_key=root / "server-key.pem",
        client_dir=_client_dir(root, "client"),
        rogue_client_dir=_client_dir(root, "rogue-client"),
    )
