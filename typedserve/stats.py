"""``ServerStats``: a snapshot of a server's counters (``Server.stats()``)."""

from __future__ import annotations

from dataclasses import dataclass

from typedserve.counters import DurationTotals, Totals

__all__ = ["DurationTotals", "ServerStats"]


@dataclass(frozen=True, slots=True)
class ServerStats:
    """A snapshot of a server's counters."""

    accepted: int
    """Requests received from the transport."""
    refused: int
    """Requests the access policy refused."""
    rejected: int
    """Requests turned away by the overload policy (``limits.overload="reject"``) or refused
    from the backlog during a drain."""
    errors: int
    """Requests whose handler raised (reported to the error policy), or lost with a worker."""
    disconnects: int
    """Requests ended by the network, not by a bug: the peer reset the connection, or a write
    found it closed (``ConnectionResetError``, ``BrokenPipeError``, ``ConnectionAbortedError``;
    also a write after a drain cut the request). Logged as one INFO line, not as errors."""
    slow_clients: int
    """Connections closed because they sent nothing within ``timeouts.first_byte``."""
    handshake_failures: int
    """TLS connections whose handshake failed or timed out (``timeouts.handshake``): a client
    that does not trust the certificate, sent no or a wrong client certificate, speaks no TLS,
    or stalled. Logged as one INFO line each; no handler ran."""
    in_flight: int
    """Requests accepted and not finished: running, or queued in the strategy."""
    truncated: int
    """Oversized datagrams (see ``limits.truncated``), seen by this process's transport."""
    proxy_refused: int = 0  # last, with a default: positional construction still works
    """Connections refused at their PROXY protocol header (``ProxyProtocolTransport``): no
    header where one is required, a malformed one, one from an upstream outside
    ``proxy_protocol.trusted``, or one not complete within ``proxy_protocol.timeout``. Logged
    as one INFO line each (the upstream and the reason); no handler ran."""
    request_durations: DurationTotals | None = None
    """How long the requests served took (a histogram: bucket bounds, counts, sum), with
    ``metrics.duration_histogram`` on; ``None`` when it is off."""

    @classmethod
    def of(cls, totals: Totals, *, truncated: int) -> ServerStats:
        """The stats for counter ``totals`` and a transport's ``truncated`` count."""
        return cls(
            accepted=totals.accepted,
            refused=totals.refused,
            rejected=totals.rejected,
            errors=totals.errors,
            disconnects=totals.disconnects,
            slow_clients=totals.slow_clients,
            handshake_failures=totals.handshake_failures,
            proxy_refused=totals.proxy_refused,
            in_flight=totals.in_flight,
            truncated=truncated,
            request_durations=totals.durations,
        )
