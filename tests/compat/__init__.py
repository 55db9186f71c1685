"""Conformance suite: the same tests against the stdlib socketserver and typedserve.compat."""
