"""Logging set up in one place: plain text or JSON lines, and the access log on or off.

Request lines go to the ``soap_server.dataplane`` logger (``ACCESS_LOGGER``) with their fields
as ``extra`` attributes (``request_id``, ``operation``, ``model``, ``version``, ``duration_ms``,
``outcome``, ``peer``, ``user``), so JSON lines carry them as keys and text lines as ``key=value``.
Only the CLI calls ``configure_logging``; the library only logs.

A request's line is handed over by ``access_line``: with the CLI's handler in place, that
appends the request's fields to a list and the handler's thread formats and writes them in
batches, so a request spends about a microsecond on its line; otherwise (a library user's own
logging, pytest's ``caplog``) the line is an ordinary record of ``ACCESS_LOGGER``.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import sys
import threading
import time
from typing import Any, TextIO

from ..settings import Settings

ACCESS_LOGGER = "soap_server.dataplane"
#: the request fields a JSON line carries when the record has them
FIELDS = ("request_id", "operation", "model", "version", "duration_ms", "outcome", "peer",
          "user")
#: the text of an access line: its fields as ``key=value``, values escaped by ``log_field``
ACCESS_TEMPLATE = ("request_id=%s op=%s model=%s version=%s duration_ms=%.2f outcome=%s "
                   "peer=%s user=%s")
_UNSAFE = re.compile("[\x00-\x20\x7f-\x9f\u2028\u2029\\\\=\"]")
_access = logging.getLogger(ACCESS_LOGGER)
#: the CLI's handler while it is the root logger's only one (``configure_logging``)
_sink: LogHandler | None = None


def log_field(value: object, limit: int = 200) -> str:
    """``value`` as one token of a ``key=value`` log line: whitespace, control characters,
    ``\\``, ``=`` and ``"`` escaped as ``\\xNN`` (a model name with a newline cannot forge a
    line), and cut at ``limit`` characters."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return _UNSAFE.sub(lambda m: "\\x%02x" % ord(m.group()) if ord(m.group()) < 256
                       else "\\u%04x" % ord(m.group()), text) or "-"


def access_record(created: float, request_id: str, op: str, model: str,
                  version: object, seconds: float, outcome: str, peer: object,
                  user: str) -> logging.LogRecord:
    """The ``ACCESS_LOGGER`` record of one request: the message text, and the fields as
    attributes (``extra``) for JSON lines."""
    record = _access.makeRecord(
        ACCESS_LOGGER, logging.INFO, "(access)", 0, ACCESS_TEMPLATE,
        (log_field(request_id), op, log_field(model), version or "-", seconds * 1000,
         outcome, log_field(peer), log_field(user)), None,
        extra={"request_id": request_id, "operation": op, "model": model,
               "version": version or None, "duration_ms": round(seconds * 1000, 3),
               "outcome": outcome, "peer": peer, "user": user})
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


def access_line(request_id: str, op: str, model: str, version: object, seconds: float,
                outcome: str, peer: object, user: str) -> None:
    """Log one request's access line (logger ``ACCESS_LOGGER``, level INFO)."""
    if not _access.isEnabledFor(logging.INFO):
        return
    sink = _sink
    if sink is not None and logging.root.handlers == [sink] and not _access.handlers \
            and not _access.filters and _access.propagate:
        sink.add_access((time.time(), request_id, op, model, version, seconds, outcome,
                         peer, user))
        return
    _access.handle(access_record(time.time(), request_id, op, model, version, seconds,
                                 outcome, peer, user))


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


class LogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The server's one log handler: every record as a line on ``stream``, the access log's
    written in batches by a thread of its own, as nginx buffers its access log. A request only
    appends its fields (``access_line``) or its record to a deque: it neither formats it, nor
    takes the handler's lock, nor wakes a thread. The writer looks every ``interval_s`` (50 ms)
    and writes what has gathered in one call. (A queue that woke the writer for every record
    cost a request more than the line itself: each wake-up is a GIL hand-off between the
    request thread and the writer.)
    ``wait_written()`` (and ``close()``, at exit) wakes it and waits for those gathered. At most
    ``max_queued`` records wait: past that, access lines are dropped and counted (a WARNING says
    how many, at most once a minute), so a blocked standard error cannot grow the memory."""

    def __init__(self, stream: TextIO, max_queued: int = 10_000,
                 interval_s: float = 0.05) -> None:
        super().__init__(stream)
        self.max_queued = max_queued
        self.interval_s = interval_s
        # deque's append and popleft are atomic: the request threads and the writer share it
        # without a lock
        self._pending: collections.deque[logging.LogRecord | tuple[Any, ...]] = \
            collections.deque()
        self._busy = False  # the writer holds records it took and has not written yet
        self._wake = threading.Event()
        self._writer: threading.Thread | None = None
        self._pid = 0
        self._start_lock = threading.Lock()
        self._dropped = 0
        self._dropped_logged = 0.0

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        if record.name != ACCESS_LOGGER:
            return bool(super().handle(record))
        if not self.filter(record):
            return False
        self.add_access(record)
        return True

    def add_access(self, entry: logging.LogRecord | tuple[Any, ...]) -> None:
        """Hand over one access line: its record, or its fields (``access_line``), which the
        writer makes a record of."""
        if self._pid != os.getpid():  # the first line in this process (workers are forked)
            self._start()
        if len(self._pending) >= self.max_queued:
            self._dropped += 1  # the writer reports it (a request never waits for the stream)
        else:
            self._pending.append(entry)

    def _start(self) -> None:
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._pending = collections.deque()  # not the parent's, after a fork
            self._busy = False
            self._wake = threading.Event()
            self._writer = threading.Thread(target=self._write_pending, daemon=True,
                                            name="tfsoap-access-log")
            self._writer.start()
            self._pid = os.getpid()

    def _write_pending(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self._busy = True
            try:
                while self._pending or self._dropped_due():
                    self._write_batch()
            finally:
                self._busy = False

    def _write_batch(self) -> None:
        lines = self._dropped_line()
        record = None
        for _ in range(min(len(self._pending), 4096)):
            entry = self._pending.popleft()
            record = entry if isinstance(entry, logging.LogRecord) else access_record(*entry)
            try:
                lines.append(self.format(record) + self.terminator)
            except Exception:
                self.handleError(record)
        if lines:
            with self.lock:  # type: ignore[union-attr]
                try:
                    self.stream.write("".join(lines))
                    self.stream.flush()
                except Exception:
                    if record is not None:
                        self.handleError(record)

    def _dropped_due(self) -> bool:
        return bool(self._dropped) and time.monotonic() - self._dropped_logged >= 60

    def _dropped_line(self) -> list[str]:
        """A WARNING line saying how many access lines were dropped, at most once a minute."""
        if not self._dropped_due():
            return []
        self._dropped_logged = time.monotonic()
        record = logging.LogRecord("soap_server.observability", logging.WARNING, __file__, 0,
                                   "access log: %d lines dropped so far (the log stream does "
                                   "not keep up)", (self._dropped,), None)
        return [self.format(record) + self.terminator]

    def wait_written(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout``) until the gathered access lines are written. Not
        ``flush()``: ``StreamHandler.emit`` calls that with the handler's lock held, which the
        writer needs."""
        if self._writer is not None and self._pid == os.getpid():
            deadline = time.monotonic() + timeout
            self._wake.set()
            while (self._pending or self._busy) and time.monotonic() < deadline:
                self._wake.set()
                time.sleep(0.001)

    def close(self) -> None:
        self.wait_written()  # logging.shutdown() at exit: the last access lines are not lost
        super().close()


def wait_logs_written(timeout: float = 5.0) -> None:
    """Wait (up to ``timeout``) until the access lines gathered so far are written: a worker
    process calls it as it stops, since a forked process exits without ``logging.shutdown()``
    and would otherwise lose the lines of its last 50 ms."""
    for handler in logging.root.handlers:
        if isinstance(handler, LogHandler):
            handler.wait_written(timeout)


def configure_logging(settings: Settings, stream: TextIO | None = None) -> LogHandler:
    """Send every log record to ``stream`` (standard error) at ``settings.log_level`` in
    ``settings.log_format``; returns the handler (tests remove it)."""
    # Neither format shows where a call was made from or which thread or process made it:
    # logging's documented switches to not collect those (the caller's frame is looked up on
    # the stack for every record) take a third off an access-log line.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = LogHandler(stream or sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    global _sink
    _sink = handler
    return handler
