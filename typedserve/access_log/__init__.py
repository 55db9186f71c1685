"""The access log: one record per admitted request on the ``typedserve.access`` logger.

- :mod:`typedserve.access_log.config` (layer 1, values only): :class:`AccessLogConfig`, the
  ``access_log`` table of :class:`~typedserve.config.ServerConfig`, and the record's
  :data:`~typedserve.access_log.config.FIELDS`.
- :mod:`typedserve.access_log.observer` (layer 2): :class:`AccessLog`, the request observer
  (:mod:`typedserve.observe`) that writes the records, and the fields it reads.
- :mod:`typedserve.access_log.tcp_info` (layer 2): a TCP connection's bytes in and out, read
  from the kernel (``TCP_INFO``) once, when the request ends.

:mod:`typedserve.logformat` has :class:`~typedserve.logformat.JsonFormatter`, which renders any
record (access or not) as one JSON object, the structured fields included. This package imports
nothing itself, so that ``typedserve.config`` (which needs the config table) stays light.
"""
