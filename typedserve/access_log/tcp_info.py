"""The bytes a TCP connection carried, read from the kernel (``TCP_INFO``) in one system call.

Linux's ``struct tcp_info`` (``linux/tcp.h``) keeps per-connection totals, so the access log
counts nothing while a request runs: it asks once, when the request ends (before the server
closes the connection). The offsets below are the struct's (stable: fields are only ever
appended; a kernel returns as many bytes as it knows, and a field past that is absent):

- ``tcpi_state`` (byte 0): the TCP state (``CLOSE_WAIT`` and later: the peer's FIN arrived).
- ``tcpi_bytes_received`` (u64 at 128, Linux 4.1): bytes received in sequence, *the peer's
  FIN counted as one* (it takes a sequence number), so one is taken off once the FIN is in.
  The kernel reads the state before it locks the socket for the counters, so a FIN arriving
  in between would be counted under a state that does not show it: when the first answer
  shows no FIN, a second one tells (if it still shows none, the first counters had none).
- ``tcpi_notsent_bytes`` (u32 at 144, Linux 4.6): bytes written and not yet sent.
- ``tcpi_bytes_sent`` / ``tcpi_bytes_retrans`` (u64 at 200 / 208, Linux 4.19): payload bytes
  sent, retransmissions included / the retransmitted ones.

Bytes out are what the server wrote to the connection: sent once (``bytes_sent -
bytes_retrans``) plus still queued (``notsent_bytes``). On a kernel older than 4.19 they are
``tcpi_bytes_acked`` (u64 at 120), what the peer acknowledged so far. Bytes in are
``bytes_received`` less the FIN. After a reset (state ``CLOSE`` without a FIN) bytes in may be
one short. Both count the wire: TLS records (the handshake included) and a PROXY header.
"""

from __future__ import annotations

import socket
import struct

__all__ = ["TCP_INFO_SIZE", "parse_tcp_info", "stream_bytes"]

TCP_INFO_SIZE = 216
"""How much of ``struct tcp_info`` is asked for: up to ``tcpi_bytes_retrans``."""

_TCP_INFO = getattr(socket, "TCP_INFO", 11)
_STATE_TIME_WAIT, _STATE_CLOSE, _STATE_CLOSE_WAIT, _STATE_LAST_ACK, _STATE_CLOSING = 6, 7, 8, 9, 11
_FIN_RECEIVED = frozenset(
    {_STATE_TIME_WAIT, _STATE_CLOSE, _STATE_CLOSE_WAIT, _STATE_LAST_ACK, _STATE_CLOSING}
)
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")
_SENT = struct.Struct("=QQ")  # tcpi_bytes_sent, tcpi_bytes_retrans
_ACKED_OFFSET, _RECEIVED_OFFSET, _NOTSENT_OFFSET, _SENT_OFFSET = 120, 128, 144, 200


def stream_bytes(sock: socket.socket) -> tuple[int | None, int | None]:
    """``(bytes_in, bytes_out)`` of the TCP connection ``sock`` so far (see the module
    docstring); ``(None, None)`` for a socket that is not TCP, is closed, or on a kernel
    without the fields."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, TCP_INFO_SIZE)
        if info and info[0] not in _FIN_RECEIVED:  # did a FIN come with the counters?
            again = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, TCP_INFO_SIZE)
            if again[0] in _FIN_RECEIVED:
                info = again
    except (OSError, ValueError):  # not TCP (EOPNOTSUPP), closed (EBADF), or not Linux
        return None, None
    return parse_tcp_info(info)


def parse_tcp_info(info: bytes) -> tuple[int | None, int | None]:
    """``(bytes_in, bytes_out)`` from the bytes of a ``struct tcp_info`` (as many as the
    kernel returned; the state byte says whether the peer's FIN is in the count)."""
    size = len(info)
    if size < _RECEIVED_OFFSET + 8:
        return None, None
    received = _U64.unpack_from(info, _RECEIVED_OFFSET)[0]
    if received and info[0] in _FIN_RECEIVED:
        received -= 1
    if size >= _SENT_OFFSET + 16:
        sent, retransmitted = _SENT.unpack_from(info, _SENT_OFFSET)
        sent = sent - retransmitted + _U32.unpack_from(info, _NOTSENT_OFFSET)[0]
    else:
        sent = _U64.unpack_from(info, _ACKED_OFFSET)[0]
    return received, sent
