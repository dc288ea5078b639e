"""A stand-in for certbot, for the nginx hook's tests: no ACME server is reachable from CI.

``install(bin_dir)`` puts a ``certbot`` executable in ``bin_dir`` (put it first on PATH). It
appends each call's arguments, as one JSON list, to ``$FAKE_CERTBOT_LOG``, and:

- ``certonly --webroot -w ROOT -d HOST --cert-name NAME --config-dir DIR ...``: as the ACME
  server would, it checks that the HTTP-01 challenge is served: it writes a token under
  ``ROOT/.well-known/acme-challenge/`` and, when ``$FAKE_CERTBOT_HTTP`` names nginx's plain HTTP
  address (``127.0.0.1:PORT``), fetches it there for ``HOST`` and fails if nginx does not serve
  it. Then it writes a self-signed certificate for HOST (openssl) to
  ``DIR/live/NAME/{fullchain,privkey}.pem``, where certbot puts them;
- ``delete --cert-name NAME --config-dir DIR``: removes ``DIR/live/NAME``;
- with ``$FAKE_CERTBOT_FAIL`` set, it prints that message and exits 1.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path


def install(bin_dir: Path) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "certbot"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" "$@"\n')
    script.chmod(0o755)
    return script


def calls(log: Path) -> list[list[str]]:
    """Every call's arguments, in order."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def _option(args: list[str], *names: str) -> str:
    for index, arg in enumerate(args):
        if arg in names and index + 1 < len(args):
            return args[index + 1]
    raise SystemExit(f"fake certbot: missing {names[0]}")


def _check_challenge(webroot: Path, host: str, address: str) -> None:
    token = secrets.token_hex(8)
    folder = webroot / ".well-known" / "acme-challenge"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / token).write_text(token)
    try:
        hostname, port = address.rsplit(":", 1)
        connection = http.client.HTTPConnection(hostname, int(port), timeout=10)
        connection.request("GET", f"/.well-known/acme-challenge/{token}", headers={"Host": host})
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
    finally:
        (folder / token).unlink()
    if response.status != 200 or body != token:
        raise SystemExit(
            f"fake certbot: the challenge for {host} was not served: "
            f"{response.status} {body[:80]!r}"
        )


def main(args: list[str]) -> None:
    log = os.environ.get("FAKE_CERTBOT_LOG")
    if log:
        with open(log, "a") as file:
            file.write(json.dumps(args) + "\n")
    failure = os.environ.get("FAKE_CERTBOT_FAIL")
    if failure:
        raise SystemExit(failure)
    live = Path(_option(args, "--config-dir")) / "live" / _option(args, "--cert-name")
    if args[0] == "delete":
        shutil.rmtree(live, ignore_errors=True)
        return
    if args[0] != "certonly" or "--webroot" not in args:
        raise SystemExit(f"fake certbot: unexpected call {args}")
    host = _option(args, "-d", "--domains")
    address = os.environ.get("FAKE_CERTBOT_HTTP")
    if address:
        _check_challenge(Path(_option(args, "-w", "--webroot-path")), host, address)
    live.mkdir(parents=True, exist_ok=True)
    command = [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-days", "2", "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}",
        "-keyout", str(live / "privkey.pem"), "-out", str(live / "fullchain.pem"),
    ]  # fmt: skip
    subprocess.run(
        command,
        check=True,
        capture_output=True,
        timeout=60,
    )
    print(f"fake certbot: certificate for {host} in {live}")


if __name__ == "__main__":
    main(sys.argv[1:])
