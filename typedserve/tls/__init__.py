"""TLS: its configuration as data, the :class:`ssl.SSLContext` built from it, and what a
handshake negotiated.

- :mod:`typedserve.tls.config` (layer 1, values only, no :mod:`ssl`): :class:`TLSConfig`, the
  ``tls`` table of :class:`~typedserve.config.ServerConfig`, and :class:`CertKeyPair`.
- :mod:`typedserve.tls.info` (layer 1): :class:`TLSInfo`, what a handler reads as
  ``request.tls``.
- :mod:`typedserve.tls.context` (layer 2): :func:`build_context` turns a ``TLSConfig`` into a
  server-side ``SSLContext``, reading the files; :class:`TLSContextSource` holds the current
  context and rebuilds it on :meth:`~TLSContextSource.reload`.

The transport is :class:`typedserve.transports.tls.TLSTransport`. This package imports nothing
itself, so that ``typedserve.config`` (which needs ``typedserve.tls.config``) does not import
:mod:`ssl`.
"""
