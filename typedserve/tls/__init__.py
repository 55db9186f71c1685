"""TLS: its configuration (:mod:`.config`), the ``SSLContext`` built from it (:mod:`.context`)
and what a handshake negotiated (:mod:`.info`). The transport is
:class:`typedserve.transports.tls.TLSTransport`."""
