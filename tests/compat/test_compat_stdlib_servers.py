"""The stdlib's own servers run unchanged on typedserve.compat installed as ``socketserver``.

Each test runs in a fresh interpreter: with ``compat`` it calls ``typedserve.compat.install()``
before importing the server module, then drives the server with a real stdlib client.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from .support import run_python

pytestmark = pytest.mark.timeout(60)

PRELUDE = textwrap.dedent(
    """
    import sys
    import threading
    if sys.argv[1] == "compat":
        import typedserve.compat
        assert typedserve.compat.install() == ()
    import socketserver
    assert (socketserver.__name__ == "typedserve.compat") == (sys.argv[1] == "compat")

    def serve(server):
        thread = threading.Thread(target=server.serve_forever, args=(0.05,))
        thread.start()
        return thread

    def stop(server, thread):
        server.shutdown()
        thread.join()
        server.server_close()
    """
)

IMPLS = ["stdlib", "compat"]


def run(body: str, impl: str, *args: str) -> None:
    out = run_python(PRELUDE + textwrap.dedent(body) + "\nprint('OK')\n", impl, *args)
    assert out.strip().endswith("OK")


@pytest.mark.parametrize("impl", IMPLS)
def test_http_server_and_threading_http_server(impl: str, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_bytes(b"hello")
    body = """
        import functools, http.client, http.server, urllib.request
        assert issubclass(http.server.ThreadingHTTPServer, socketserver.ThreadingMixIn)
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
        for cls in (http.server.HTTPServer, http.server.ThreadingHTTPServer):
            httpd = cls(("127.0.0.1", 0), handler)
            assert isinstance(httpd, socketserver.TCPServer)
            thread = serve(httpd)
            try:
                port = httpd.server_port
                url = f"http://127.0.0.1:{port}/hello.txt"
                with urllib.request.urlopen(url, timeout=10) as reply:
                    assert reply.read() == b"hello"
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/missing")
                assert conn.getresponse().status == 404
                conn.close()
            finally:
                stop(httpd, thread)
    """
    run(body, impl, str(tmp_path))


@pytest.mark.parametrize("impl", IMPLS)
def test_xmlrpc_server(impl: str) -> None:
    body = """
        import xmlrpc.client
        from xmlrpc.server import SimpleXMLRPCServer
        server = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False)
        assert isinstance(server, socketserver.TCPServer)
        server.register_function(pow)
        server.register_introspection_functions()
        thread = serve(server)
        try:
            port = server.server_address[1]
            with xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/") as proxy:
                assert proxy.pow(2, 10) == 1024
                assert "pow" in proxy.system.listMethods()
                try:
                    proxy.missing()
                except xmlrpc.client.Fault as fault:
                    assert "missing" in fault.faultString
                else:
                    raise AssertionError("no fault")
        finally:
            stop(server, thread)
    """
    run(body, impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_wsgiref_simple_server(impl: str) -> None:
    body = """
        import urllib.request
        from wsgiref.simple_server import demo_app, make_server
        httpd = make_server("127.0.0.1", 0, demo_app)
        assert isinstance(httpd, socketserver.TCPServer)
        thread = serve(httpd)
        try:
            url = f"http://127.0.0.1:{httpd.server_port}/"
            with urllib.request.urlopen(url, timeout=10) as reply:
                assert reply.read().startswith(b"Hello world!")
        finally:
            stop(httpd, thread)
    """
    run(body, impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_logging_config_listen(impl: str) -> None:
    body = """
        import json, logging, logging.config, socket, struct
        listener = logging.config.listen(0)
        listener.start()
        assert listener.ready.wait(10)
        try:
            config = {"version": 1, "incremental": True,
                      "loggers": {"compat.listen": {"level": "DEBUG"}}}
            data = json.dumps(config).encode()
            with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as c:
                c.sendall(struct.pack(">L", len(data)) + data)
                c.shutdown(socket.SHUT_WR)
                assert c.recv(10) == b""  # the handler has applied it and closed
            assert logging.getLogger("compat.listen").level == logging.DEBUG
        finally:
            logging.config.stopListening()
            listener.join()
    """
    run(body, impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_socket_handler_to_a_log_record_receiver(impl: str) -> None:
    """The logging cookbook's receiver (a ThreadingTCPServer) fed by logging's SocketHandler."""
    body = """
        import logging, logging.handlers, pickle, struct
        received, got = [], threading.Event()

        class RecordHandler(socketserver.StreamRequestHandler):
            def handle(self):
                while True:
                    head = self.rfile.read(4)
                    if len(head) < 4:
                        break
                    (size,) = struct.unpack(">L", head)
                    record = logging.makeLogRecord(pickle.loads(self.rfile.read(size)))
                    received.append(record.getMessage())
                    got.set()

        class Receiver(socketserver.ThreadingTCPServer):
            allow_reuse_address = True

        server = Receiver(("127.0.0.1", 0), RecordHandler)
        thread = serve(server)
        try:
            handler = logging.handlers.SocketHandler("127.0.0.1", server.server_address[1])
            log = logging.getLogger("compat.sockethandler")
            log.propagate = False
            log.addHandler(handler)
            log.warning("hello %s", "there")
            assert got.wait(10)
            handler.close()
        finally:
            stop(server, thread)
        assert received == ["hello there"]
    """
    run(body, impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_https_by_wrapping_the_listening_socket_in_server_activate(
    impl: str, tmp_path: Path
) -> None:
    """The stdlib's TLS pattern (``http.server.HTTPSServer`` in 3.14 does the same): wrap the
    listening socket in ``server_activate``; ``accept`` then handshakes. It works on compat as
    on the stdlib, for ``https`` clients with the certificate checked."""
    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    leaf = ca.issue_cert("127.0.0.1")
    leaf.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    (tmp_path / "hello.txt").write_bytes(b"hello over https")
    body = """
        import functools, http.server, ssl, urllib.request

        class HTTPSServer(http.server.ThreadingHTTPServer):
            def server_activate(self):
                super().server_activate()
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(sys.argv[2] + "/server.pem")
                self.socket = context.wrap_socket(self.socket, server_side=True)

        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
        httpd = HTTPSServer(("127.0.0.1", 0), handler)
        thread = serve(httpd)
        try:
            client = ssl.create_default_context(cafile=sys.argv[2] + "/ca.pem")
            url = f"https://127.0.0.1:{httpd.server_port}/hello.txt"
            with urllib.request.urlopen(url, context=client, timeout=10) as reply:
                assert reply.read() == b"hello over https"
        finally:
            stop(httpd, thread)
    """
    run(body, impl, str(tmp_path))
