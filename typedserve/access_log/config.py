"""``AccessLogConfig``: the ``access_log`` table of a server's config.

In TOML::

    [access_log]
    enabled = true
    format = "json"          # or "text" (default)
    template = "{peer} {outcome} {duration_ms:.1f}ms"   # text only; default: the built-in line

From the environment: ``TYPEDSERVE_ACCESS_LOG__ENABLED=true``,
``TYPEDSERVE_ACCESS_LOG__FORMAT=json``; on the command line ``typedserve serve --access-log``.
What each record holds is in :mod:`typedserve.access_log`.
"""

from __future__ import annotations

import string
from typing import Annotated, Literal

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from typedserve._config_model import _NONE_FROM_TEXT, _Model

__all__ = ["FIELDS", "AccessLogConfig", "check_template"]

FIELDS: tuple[str, ...] = (
    "peer",
    "local",
    "upstream",
    "outcome",
    "duration_ms",
    "bytes_in",
    "bytes_out",
    "tls_version",
    "tls_cipher",
    "tls_sni",
    "tls_client",
)
"""The fields of an access record: the ``extra`` attributes of the log record, the keys of a
JSON line, and the names a text ``template`` may use (see :mod:`typedserve.access_log`)."""

_SAMPLES: tuple[dict[str, object], ...] = (
    {
        "peer": "127.0.0.1:40000",
        "local": "127.0.0.1:8000",
        "upstream": "127.0.0.1:5000",
        "outcome": "completed",
        "duration_ms": 1.5,
        "bytes_in": 10,
        "bytes_out": 20,
        "tls_version": "TLSv1.3",
        "tls_cipher": "TLS_AES_256_GCM_SHA384",
        "tls_sni": "example.com",
        "tls_client": "CN=client",
    },
    dict.fromkeys(FIELDS, "-") | {"outcome": "error", "duration_ms": 0.0},
)
"""Values a template must render: a full record, and one whose optional fields are absent
(text shows them as ``-``)."""


def check_template(template: str | None) -> str | None:
    """A text template is ``str.format`` syntax over :data:`FIELDS` (``{peer}``,
    ``{duration_ms:.1f}``); it must render a record whose optional fields are ``-`` too."""
    if template is None:
        return None
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise PydanticCustomError("access_template", f"not a format template: {exc}") from None
    unknown = sorted(name for name in names if name not in FIELDS)
    if "" in names or unknown:
        what = ", ".join(repr(name) for name in unknown) or "a positional field '{}'"
        raise PydanticCustomError(
            "access_template",
            f"unknown field {what}: a template names fields, from {', '.join(FIELDS)}",
        )
    for sample in _SAMPLES:
        try:
            template.format_map(sample)
        except (ValueError, TypeError, IndexError, AttributeError, KeyError) as exc:
            raise PydanticCustomError(
                "access_template",
                f"cannot render a record ({type(exc).__name__}: {exc}); bytes_in, bytes_out "
                "and the tls_ fields may be '-', so give them no numeric format",
            ) from None
    return template


class AccessLogConfig(_Model, frozen=True):
    """The access log: one INFO record per admitted request on the ``typedserve.access``
    logger (see :mod:`typedserve.access_log` for the fields).

    - ``enabled``: whether the server logs access at all (off: no per-request cost).
    - ``format``: the record's message: ``"text"``, one line from ``template``; ``"json"``, one
      JSON object with every field. Either way the fields are also the record's attributes
      (``extra``), which ``typedserve.logformat.JsonFormatter`` renders.
    - ``template``: the text line, ``str.format`` syntax over the fields
      (``"{peer} {outcome} {duration_ms:.1f}ms"``); ``None`` (text: ``none``): the built-in
      line. Checked when the config is loaded.
    """

    enabled: bool = False
    format: Literal["text", "json"] = "text"
    template: Annotated[str | None, _NONE_FROM_TEXT, AfterValidator(check_template)] = None
