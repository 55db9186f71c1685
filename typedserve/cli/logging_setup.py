"""How the ``typedserve`` command configures logging: once, at start, one handler on the root
logger writing to stderr, in text or JSON. The library itself never configures a handler
(its records, the access log's included, go wherever the application sends them).

``--log-level LEVEL`` sets the root level (default INFO; ``-v`` alone means DEBUG);
``--log-format text`` writes :data:`~typedserve.logformat.TEXT_FORMAT` lines, ``json`` one JSON
object per record (:class:`~typedserve.logformat.JsonFormatter`: the access log's fields are
keys of its lines). ``--access-log`` (``serve`` and ``demo``) enables ``access_log`` in the
config, whose records are INFO lines on ``typedserve.access``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from typedserve.logformat import TEXT_FORMAT, JsonFormatter

__all__ = ["LEVELS", "LOG_FORMATS", "add_logging_flags", "configure_logging"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""The names ``--log-level`` accepts (in any case)."""

LOG_FORMATS = ("text", "json")
"""The names ``--log-format`` accepts."""


def add_logging_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--log-level``, ``--log-format`` and ``--access-log`` to a subcommand that serves."""
    group = parser.add_argument_group("logging (to stderr)")
    group.add_argument(
        "--log-level",
        type=str.upper,
        choices=LEVELS,
        metavar="LEVEL",
        help=f"the lowest level logged: {', '.join(LEVELS)} (default INFO; -v: DEBUG)",
    )
    group.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text lines (default), or one JSON object per record",
    )
    group.add_argument(
        "--access-log",
        action="store_true",
        help="log one INFO line per request on typedserve.access (access_log.enabled)",
    )


def configure_logging(args: argparse.Namespace) -> None:
    """Configure the root logger from the parsed flags (once; a root logger that already has
    handlers, set up by an embedding program, is left as it is)."""
    level = getattr(args, "log_level", None) or ("DEBUG" if args.verbose else "INFO")
    handler = logging.StreamHandler(sys.stderr)
    if getattr(args, "log_format", "text") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
