"""Wrong wiring of the core API: each line marked ``# E: <code>`` (optionally followed by
``: <message fragment>``) must get exactly that error; every other line must get none."""

from __future__ import annotations

from typedserve import (
    Datagram,
    DatagramHandler,
    InetAddress,
    Limits,
    Server,
    ServerConfig,
    StreamHandler,
    StreamRequest,
    TCPTransport,
    UDPTransport,
    UnixAddress,
    UnixStreamTransport,
)
from typedserve.testing import serve_in_thread


class Echo(StreamHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline())


class Upper(DatagramHandler):
    def handle(self) -> None:
        self.wfile.write(self.request.payload.upper())


class NeedsInt(StreamHandler[int]):
    def handle(self) -> None:
        self.wfile.write(b"%d" % self.state)


config = ServerConfig()

# A handler for another request type than the transport produces.
Server(config=config, transport=TCPTransport(), handler=Upper)  # E: arg-type: "type[Upper]"; expected "Callable[[StreamRequest[tuple[str, int] | tuple[str, int, int, int]], ServerContext[None]], HandlerLike]"
Server(config=config, transport=UDPTransport(), handler=Echo)  # E: arg-type: "type[Echo]"; expected "Callable[[Datagram[tuple[str, int] | tuple[str, int, int, int]], ServerContext[None]], HandlerLike]"
Server(config=config, transport=UnixStreamTransport(), handler=Upper)  # E: arg-type: "type[Upper]"; expected "Callable[[StreamRequest[str | bytes], ServerContext[None]], HandlerLike]"


# Handler code that uses the wrong request type.
class ReadsPayloadOfAStream(StreamHandler):
    def handle(self) -> None:
        self.request.payload  # E: attr-defined: "StreamRequest[tuple[str, int] | tuple[str, int, int, int] | str | bytes | None]" has no attribute "payload"


class RepliesOnAStream(StreamHandler):
    def handle(self) -> None:
        self.request.reply(b"x")  # E: attr-defined: "StreamRequest[tuple[str, int] | tuple[str, int, int, int] | str | bytes | None]" has no attribute "reply"


class UsesTheSocketFileOfADatagram(DatagramHandler):
    def handle(self) -> None:
        self.request.frame  # E: attr-defined: "Datagram[tuple[str, int] | tuple[str, int, int, int] | str | bytes | None]" has no attribute "frame"


# Shared state of the wrong type, or missing.
Server(config=config, transport=TCPTransport(), handler=NeedsInt, state="forty-two")  # E: arg-type: expected "Callable[[StreamRequest[tuple[str, int] | tuple[str, int, int, int]], ServerContext[str]], HandlerLike]"
Server(config=config, transport=TCPTransport(), handler=NeedsInt)  # E: arg-type: expected "Callable[[StreamRequest[tuple[str, int] | tuple[str, int, int, int]], ServerContext[None]], HandlerLike]"


class MisusesItsState(StreamHandler[int]):
    def handle(self) -> None:
        self.state.upper()  # E: attr-defined: "int" has no attribute "upper"


# An access policy for the other request type.
def only_datagrams(request: Datagram) -> bool:
    return bool(request.payload)


def only_streams(request: StreamRequest) -> bool:
    return request.deadline is None


Server(config=config, transport=TCPTransport(), handler=Echo, verify_request=only_datagrams)  # E: arg-type: "Callable[[Datagram[tuple[str, int] | tuple[str, int, int, int] | str | bytes | None]], bool]"
Server(config=config, transport=UDPTransport(), handler=Upper, verify_request=only_streams)  # E: arg-type: "Callable[[StreamRequest[tuple[str, int] | tuple[str, int, int, int] | str | bytes | None]], bool]"

# Config fields are typed (pydantic plugin, init_typed) and closed (init_forbid_extra).
InetAddress(port="x")  # E: arg-type: "port" to "InetAddress" has incompatible type "str"
InetAddress(host="::", prot=80)  # E: call-arg: Unexpected keyword argument "prot"
UnixAddress(path="/tmp/s.sock", stale="remove")  # E: arg-type: expected "Literal['probe', 'error']"
Limits(truncated="clip")  # E: arg-type: expected "Literal['drop', 'flag']"
ServerConfig(backlog="many")  # E: arg-type: "backlog" to "ServerConfig" has incompatible type "str"
ServerConfig(address="127.0.0.1:80")  # E: arg-type: expected "InetAddress | UnixAddress | FDAddress"

# Config is frozen.
config.backlog = 5  # E: misc: read-only

# The testing kit wants a server.
with serve_in_thread(TCPTransport()):  # E: type-var: cannot be "TCPTransport"
    pass
