"""Logging set up in one place: plain text or JSON lines, and the access log on or off.

Request lines go to the ``soap_server.dataplane`` logger (``ACCESS_LOGGER``) with their fields
as ``extra`` attributes (``request_id``, ``operation``, ``model``, ``version``, ``duration_ms``,
``outcome``, ``peer``, ``user``), so JSON lines carry them as keys and text lines as ``key=value``.
Only the CLI calls ``configure_logging``; the library only logs.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
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


class LogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The server's one log handler: every record as a line on ``stream``, the access log's
    through a queue that a thread of its own formats and writes, as nginx buffers its access
    log. A request then only hands its record over; it neither formats it nor waits for the
    handler's lock while another thread writes (with eight request threads, that lock and its
    write call cost more than the line itself). Lines reach the stream within a few
    milliseconds; ``wait_written()`` (and ``close()``, at exit) waits for those queued. At most
    ``max_queued`` records wait: past that, access lines are dropped and counted (a WARNING says
    how many, at most once a minute), so a blocked standard error cannot grow the memory."""

    def __init__(self, stream: TextIO, max_queued: int = 10_000) -> None:
        super().__init__(stream)
        self.max_queued = max_queued
        self._queue: queue.Queue[logging.LogRecord | None] = queue.Queue(max_queued)
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
        if self._pid != os.getpid():  # the first record in this process (workers are forked)
            self._start()
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._dropped += 1  # the writer reports it (a request never waits for the stream)
        return True

    def _start(self) -> None:
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._queue = queue.Queue(self.max_queued)  # not the parent's, after a fork
            self._writer = threading.Thread(target=self._write_queued, daemon=True,
                                            name="tfsoap-access-log")
            self._writer.start()
            self._pid = os.getpid()

    def _write_queued(self) -> None:
        while True:
            records = [self._queue.get()]
            while len(records) < 512:  # what else is waiting goes out in the same write
                try:
                    records.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            lines = self._dropped_line()
            for record in records:
                if record is not None:
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
                        self.handleError(next(r for r in records if r is not None))
            for _ in records:
                self._queue.task_done()

    def _dropped_line(self) -> list[str]:
        """A WARNING line saying how many access lines were dropped, at most once a minute."""
        now = time.monotonic()
        if not self._dropped or now - self._dropped_logged < 60:
            return []
        self._dropped_logged = now
        record = logging.LogRecord("soap_server.observability", logging.WARNING, __file__, 0,
                                   "access log: %d lines dropped so far (the log stream does "
                                   "not keep up)", (self._dropped,), None)
        return [self.format(record) + self.terminator]

    def wait_written(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout``) until the queued access lines are written. Not ``flush()``:
        ``StreamHandler.emit`` calls that with the handler's lock held, which the writer needs."""
        if self._writer is not None and self._pid == os.getpid():
            deadline = time.monotonic() + timeout
            while self._queue.unfinished_tasks and time.monotonic() < deadline:
                time.sleep(0.001)

    def close(self) -> None:
        self.wait_written()  # logging.shutdown() at exit: the last access lines are not lost
        super().close()


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
    return handler
