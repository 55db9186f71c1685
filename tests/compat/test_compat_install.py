"""``typedserve.compat.install()``, each case in a fresh interpreter."""

from __future__ import annotations

import textwrap

import pytest

from .support import run_python

pytestmark = pytest.mark.timeout(60)


def run(code: str) -> None:
    assert run_python(textwrap.dedent(code) + "\nprint('OK')\n").strip().endswith("OK")


def test_install_before_imports() -> None:
    run(
        """
        import sys
        import typedserve.compat as compat
        assert compat.install() == ()
        assert sys.modules["socketserver"] is compat
        import socketserver, http.server, xmlrpc.server, wsgiref.simple_server
        assert socketserver is compat
        assert http.server.socketserver is compat
        assert issubclass(http.server.HTTPServer, compat.TCPServer)
        assert issubclass(xmlrpc.server.SimpleXMLRPCServer, compat.TCPServer)
        assert issubclass(wsgiref.simple_server.WSGIServer, compat.TCPServer)
        assert compat.install() == ()  # idempotent
        """
    )


def test_install_after_imports_rebinds_and_warns() -> None:
    run(
        """
        import warnings
        import socketserver
        import http.server
        import logging.config
        import typedserve.compat as compat
        kept = {"std": socketserver}  # install() rebinds module globals, not containers
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stale = compat.install()
        assert stale == ("http.server",), stale
        assert [w.category for w in caught] == [RuntimeWarning]
        assert "http.server" in str(caught[0].message)
        # References to the module and its classes are rebound ...
        assert http.server.socketserver is compat
        assert logging.config.ThreadingTCPServer is compat.ThreadingTCPServer
        assert logging.config.StreamRequestHandler is compat.StreamRequestHandler
        # ... but classes already derived from the stdlib's cannot be.
        assert issubclass(http.server.HTTPServer, kept["std"].TCPServer)
        assert socketserver is compat  # this module's own global, too
        """
    )


def test_install_with_reload_dependents() -> None:
    run(
        """
        import threading, urllib.request
        import wsgiref.simple_server
        import xmlrpc.server
        import typedserve.compat as compat
        assert compat.install(reload_dependents=True) == ()
        import http.server
        assert issubclass(http.server.HTTPServer, compat.TCPServer)
        assert issubclass(wsgiref.simple_server.WSGIServer, compat.TCPServer)
        assert issubclass(wsgiref.simple_server.WSGIServer, http.server.HTTPServer)
        assert issubclass(xmlrpc.server.SimpleXMLRPCServer, compat.TCPServer)
        assert wsgiref.simple_server.HTTPServer is http.server.HTTPServer
        httpd = wsgiref.simple_server.make_server("127.0.0.1", 0, wsgiref.simple_server.demo_app)
        assert isinstance(httpd, compat.TCPServer)
        thread = threading.Thread(target=httpd.serve_forever)
        thread.start()
        try:
            url = f"http://127.0.0.1:{httpd.server_port}/"
            with urllib.request.urlopen(url, timeout=10) as reply:
                assert reply.read().startswith(b"Hello world!")
        finally:
            httpd.shutdown()
            thread.join()
            httpd.server_close()
        """
    )


def test_uninstall_restores_the_stdlib() -> None:
    run(
        """
        import sys
        import socketserver
        import typedserve.compat as compat
        std = sys.modules["socketserver"]
        kept = {"std": std}
        compat.install()
        assert sys.modules["socketserver"] is compat
        compat.uninstall()
        assert sys.modules["socketserver"] is kept["std"]
        compat.uninstall()  # harmless
        compat.install()
        compat.uninstall()
        assert sys.modules["socketserver"] is kept["std"]
        """
    )


def test_uninstall_when_nothing_was_imported() -> None:
    run(
        """
        import sys
        import typedserve.compat as compat
        assert "socketserver" not in sys.modules
        compat.install()
        compat.uninstall()
        assert "socketserver" not in sys.modules
        import socketserver
        assert socketserver is not compat
        """
    )
