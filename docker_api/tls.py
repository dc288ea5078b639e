"""TLS client certificates for an engine that listens on TCP with ``--tlsverify``."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TLSConfig"]


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """The CA that signed the engine's certificate, and the client's own certificate and key.

    Usage::

        tls = TLSConfig.from_cert_path("/etc/docker-client")  # ca.pem, cert.pem, key.pem
        async with DockerClient("tcp://10.0.0.5:2376", tls=tls) as docker:
            ...

    The engine's certificate must be signed by ``ca_cert`` and, unless ``check_hostname`` is
    false, name the host the client connects to (as the docker CLI requires).
    """

    ca_cert: Path
    client_cert: Path
    client_key: Path
    check_hostname: bool = True

    @classmethod
    def from_cert_path(cls, folder: str | os.PathLike[str]) -> TLSConfig:
        """The docker CLI's layout (``DOCKER_CERT_PATH``): ``ca.pem``, ``cert.pem``, ``key.pem``."""
        base = Path(folder)
        return cls(base / "ca.pem", base / "cert.pem", base / "key.pem")

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the engine and presents our certificate.

        Raises ValueError naming the file when a certificate or key cannot be loaded.
        """
        try:
            context = ssl.create_default_context(cafile=str(self.ca_cert))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load the CA certificate {self.ca_cert}: {exc}") from exc
        context.check_hostname = self.check_hostname
        try:
            context.load_cert_chain(str(self.client_cert), str(self.client_key))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"cannot load the client certificate {self.client_cert} "
                f"with the key {self.client_key}: {exc}"
            ) from exc
        return context
