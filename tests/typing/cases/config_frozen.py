"""Config models are frozen for mypy, with and without the pydantic plugin: each line marked
``# E: <code>: <message fragment>`` must get exactly that error; every other line none.

Every config model is assigned to once (``test_config_typing`` checks the list is complete).
"""

from __future__ import annotations

from pathlib import Path
from typing import assert_type

from typedserve import (
    FDAddress,
    InetAddress,
    Limits,
    ServerConfig,
    ShutdownConfig,
    Timeouts,
    TLSConfig,
    UnixAddress,
)
from typedserve.access_log.config import AccessLogConfig
from typedserve.metrics.config import MetricsConfig
from typedserve.proxy.config import ProxyProtocolConfig
from typedserve.tls.config import CertKeyPair

config = ServerConfig()
assert_type(config.backlog, int)
assert_type(config.timeouts.request, float | None)
assert_type(config.limits.max_in_flight, int | None)
copied = config.model_copy(update={"backlog": 3})  # the supported way to change a field
assert_type(copied, ServerConfig)
unix = UnixAddress(path="/tmp/x.sock", mode=0o660)
assert_type(unix.mode, int | None)
tls = TLSConfig(certfile=Path("server.pem"), sni={"a.example": CertKeyPair(certfile=Path("a.pem"))})
assert_type(tls.keyfile, Path | None)
assert_type(config.tls, TLSConfig | None)
assert_type(config.timeouts.handshake, float | None)
assert_type(config.proxy_protocol, ProxyProtocolConfig | None)
assert_type(config.access_log, AccessLogConfig)
assert_type(config.access_log.template, str | None)
assert_type(config.metrics, MetricsConfig)
assert_type(config.metrics.buckets, tuple[float, ...])
assert_type(config.metrics.histogram, tuple[float, ...] | None)

config.backlog = 3  # E: misc: Property "backlog" defined in "ServerConfig" is read-only
config.timeouts.idle = 1.0  # E: misc: Property "idle" defined in "Timeouts" is read-only
config.limits.max_in_flight = 2  # E: misc: Property "max_in_flight" defined in "Limits" is read-only
config.shutdown.grace = 0.0  # E: misc: Property "grace" defined in "ShutdownConfig" is read-only
InetAddress().port = 80  # E: misc: Property "port" defined in "InetAddress" is read-only
unix.mode = 0o600  # E: misc: Property "mode" defined in "UnixAddress" is read-only
FDAddress(fd=3).fd = 4  # E: misc: Property "fd" defined in "FDAddress" is read-only
Timeouts().poll = 1.0  # E: misc: Property "poll" defined in "Timeouts" is read-only
Limits().overload = "reject"  # E: misc: Property "overload" defined in "Limits" is read-only
ShutdownConfig().grace = 1.0  # E: misc: Property "grace" defined in "ShutdownConfig" is read-only
tls.alpn = ("h2",)  # E: misc: Property "alpn" defined in "TLSConfig" is read-only
tls.sni["a.example"].keyfile = None  # E: misc: Property "keyfile" defined in "CertKeyPair" is read-only
ProxyProtocolConfig().mode = "off"  # E: misc: Property "mode" defined in "ProxyProtocolConfig" is read-only
config.access_log.enabled = True  # E: misc: Property "enabled" defined in "AccessLogConfig" is read-only
config.metrics.duration_histogram = True  # E: misc: Property "duration_histogram" defined in "MetricsConfig" is read-only
