"""Logging set up in one place: plain text or JSON lines, and the access log on or off.

Request lines go to the ``soap_server.dataplane`` logger (``ACCESS_LOGGER``) with their fields
as ``extra`` attributes (``request_id``, ``operation``, ``model``, ``version``, ``duration_ms``,
``outcome``, ``peer``, ``user``), so JSON lines carry them as keys and text lines as ``key=value``.
Only the CLI calls ``configure_logging``; the library only logs.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from ..settings import Settings

ACCESS_LOGGER = "soap_server.dataplane"
#: the request fields a JSON line carries when the record has them
FIELDS = ("request_id", "operation", "model", "version", "duration_ms", "outcome", "peer",
          "user")


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``; the time's text is made once per second (``strftime``
    on every record was a third of an access-log line's cost)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._cached = (-1, "")  # (second, its text): one attribute, replaced whole

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        cached_second, text = self._cached
        if second != cached_second:
            text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created))
            self._cached = (second, text)
        return f"{text},{int(record.msecs):03d}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record to ``stream`` (standard error) at ``settings.log_level`` in
    ``settings.log_format``; returns the handler (tests remove it)."""
    # Neither format shows where a call was made from or which thread or process made it:
    # logging's documented switches to not collect those (the caller's frame is looked up on
    # the stack for every record) take a third off an access-log line.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream or sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    return handler
