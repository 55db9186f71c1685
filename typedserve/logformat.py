"""Log formatters for applications (``typedserve serve`` uses them): the library itself never
configures a handler.

- :data:`TEXT_FORMAT`: the ``%``-style line ``typedserve serve --log-format text`` writes.
- :class:`JsonFormatter`: one JSON object per record, with the record's structured fields (what
  was passed as ``extra``, such as an access record's ``peer`` and ``bytes_in``) as keys.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

__all__ = ["TEXT_FORMAT", "JsonFormatter"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The text line: time, level, logger, message."""

_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
"""The attributes every ``LogRecord`` has: anything else on a record came from ``extra``."""


class JsonFormatter(logging.Formatter):
    """Render each record as one JSON object on one line.

    Keys: ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``, ``message`` (the
    formatted message), then every structured field of the record (its ``extra``; values JSON
    cannot hold are written as their ``str``), then ``exception`` (the traceback) and
    ``stack`` when the record has them. A field named like one of the first four keys is
    written as ``extra_<name>``. Example::

        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logging.getLogger().addHandler(handler)
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (see the class docstring)."""
        created = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        data: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_"):
                continue
            data[f"extra_{key}" if key in data else key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str, separators=(",", ":"))
