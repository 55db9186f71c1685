"""``typedserve demo --tls``: a throwaway self-signed certificate for 127.0.0.1, ::1 and
localhost, made with the ``openssl`` command when the demo starts (no Python dependency)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from typedserve.errors import TypedServeError

__all__ = ["self_signed"]

_MAKE_TIMEOUT = 30.0


def self_signed(directory: Path) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` (ECDSA P-256, one day) into ``directory``; return them.

    Raises :class:`TypedServeError` when ``openssl`` is missing or fails, saying so."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TypedServeError(
            "typedserve demo --tls makes its certificate with the openssl command, which is not "
            "installed (apt-get install openssl), or serve your own: typedserve serve "
            "typedserve.demo:StreamEcho --certfile CERT --keyfile KEY"
        )
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = [
        *[openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        *["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        *["-addext", "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost"],
    ]
    try:
        subprocess.run(command, capture_output=True, check=True, timeout=_MAKE_TIMEOUT)
    except subprocess.CalledProcessError as exc:
        reason = exc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise TypedServeError(f"openssl could not make the demo certificate: {reason[0]}") from None
    except subprocess.TimeoutExpired:
        raise TypedServeError("openssl did not make the demo certificate within 30 s") from None
    return cert, key
