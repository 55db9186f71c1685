"""TEMPORARY stand-in, replaced by the tlscfg branch's context builder."""

from __future__ import annotations

import ssl
from typing import Any

__all__ = ["TLSContextSource"]


class TLSContextSource:
    """Holds the context built from a TLS config."""

    def __init__(self, tls: Any) -> None:
        self.tls = tls
        self.context = self._build()

    def _build(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tls.certfile, self.tls.keyfile)
        return context

    def reload(self) -> bool:
        """Rebuild."""
        try:
            self.context = self._build()
        except (OSError, ValueError):
            return False
        return True
