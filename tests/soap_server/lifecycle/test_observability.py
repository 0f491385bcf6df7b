"""``/metrics`` checked with prometheus_client's own parser, logs, readiness and admin access."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from model_store import ModelRepository
from soap_server.app import start_server
from soap_server.cli import main
from soap_server.observability import ACCESS_LOGGER, configure_logging
from soap_server.observability.logs import LogHandler, access_line
from soap_server.settings import Settings
from tests.models import affine_model
from tests.soap_server.raw import parse_fault, post, predict_xml


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[object]:
    repo = ModelRepository(tmp_path / "store")
    repo.root.mkdir()
    for v in (1, 2):
        g, sig = affine_model(float(v))
        repo.write_version("affine", g, sig, version=v)
    server = start_server(Settings(model_store=str(repo.root), port=0, poll_interval_s=0.2))
    assert server.wait_ready(60)
    yield server
    server.stop()


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = post(url.rstrip("/") + "/metrics", b"", method="GET")
    assert answer.status == 200 and answer.content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(answer.body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_the_requests_made(srv) -> None:
    for _ in range(5):
        assert post(srv.url, predict_xml("affine")).status == 200
    for _ in range(3):
        parse_fault(post(srv.url, predict_xml("no_such_model_" + str(time.time_ns()))))
    m = samples(srv.url)
    ok = (("model", "affine"), ("operation", "Predict"), ("outcome", "ok"), ("version", "2"))
    assert m[("tfsoap_requests_total", ok)] == 5
    unknown = (("model", "_unknown"), ("operation", "Predict"),
               ("outcome", "Client.ModelNotFound"), ("version", ""))
    assert m[("tfsoap_requests_total", unknown)] == 3  # one label value, whatever the names
    assert m[("tfsoap_request_duration_seconds_count",
              (("model", "affine"), ("operation", "Predict")))] == 5
    assert m[("tfsoap_model_run_duration_seconds_count",
              (("model", "affine"), ("version", "2")))] >= 5  # + the warm-up run
    assert m[("tfsoap_model_version_state",
              (("model", "affine"), ("state", "AVAILABLE"), ("version", "1")))] == 1
    assert m[("tfsoap_runs_in_flight", (("model", "affine"), ("version", "2")))] == 0
    assert m[("tfsoap_model_load_seconds", (("model", "affine"), ("version", "1")))] > 0
    # each loaded version's measured memory: the figure GetServerStatus reports
    measured = {(e.stored.name, str(e.stored.version)): e.memory_bytes
                for e in srv.app.registry.entries()}
    assert measured[("affine", "1")] >= 0
    for (name, version), memory in measured.items():
        assert m[("tfsoap_model_memory_bytes", (("model", name), ("version", version)))] == memory
    assert m[("tfsoap_reloads_total", (("outcome", "ok"),))] >= 1
    assert any(name == "process_resident_memory_bytes" for name, _ in m)


def test_client_deadline_drops_queued_work_with_unavailable(srv) -> None:
    # a deadline already passed: the request would wait for a slot, so it is refused
    gate = srv.app.registry.get("affine").gate
    with gate.slot(), gate.slot():  # both run slots taken: the next request must queue
        answer = post(srv.url, predict_xml("affine"), headers={"X-Request-Timeout-Ms": "50"})
    fault = parse_fault(answer)
    assert fault.code == "Server.Unavailable" and "deadline" in fault.message


def test_admin_reload_is_loopback_only_by_default(srv) -> None:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/admin/reload",
               "REMOTE_ADDR": "10.1.2.3", "wsgi.input": io.BytesIO(b"")}
    status: list[str] = []
    body = b"".join(srv.app.wsgi(environ, lambda s, h, e=None: status.append(s)))
    assert status == ["403 Forbidden"] and b"loopback" in body
    assert post(srv.url.rstrip("/") + "/admin/reload", b"").status == 200


def test_json_log_lines_carry_the_request_fields(srv) -> None:
    stream = io.StringIO()
    handler = configure_logging(Settings(log_format="json"), stream)
    try:
        post(srv.url, predict_xml("affine"), headers={"X-Request-ID": "rid-json-1"})
    finally:
        handler.wait_written()  # access lines are written by the handler's own thread
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(x) for x in stream.getvalue().splitlines() if "rid-json-1" in x]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "rid-json-1" and line["operation"] == "Predict"
    assert line["model"] == "affine" and line["version"] == 2 and line["outcome"] == "ok"
    assert line["peer"] == "127.0.0.1" and line["duration_ms"] >= 0 and line["time"]


def test_a_missing_store_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--model-store", str(tmp_path / "nope"), "--port", "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tfsoap: error: model store")


def test_an_empty_store_is_not_ready_until_a_model_appears(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="model_store.serving.registry"):
        server = start_server(Settings(model_store=str(tmp_path), port=0, poll_interval_s=0.1))
        try:
            server.app.registry.wait_ready(2)
            assert post(server.url.rstrip("/") + "/readyz", b"", method="GET").status == 503
            assert "holds no model version" in caplog.text
            g, sig = affine_model(1.0)
            ModelRepository(tmp_path).write_version("affine", g, sig, version=1)
            assert server.wait_ready(30)
            assert post(server.url.rstrip("/") + "/readyz", b"", method="GET").status == 200
        finally:
            server.stop()


def test_models_url_shows_each_versions_state_hash_and_failure(srv, capsys) -> None:
    repo = ModelRepository(srv.app.registry.repository.root)
    _, sig = affine_model(3.0)
    repo.write_version("affine", b"broken", sig, version=3)
    srv.app.registry.reload()
    assert main(["models", "--url", srv.url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    states = {v["version"]: v for v in rows[0]["version_states"]}
    assert states[2]["state"] == "AVAILABLE" and len(states[2]["content_hash"]) == 64
    assert states[2]["loaded_at"] and states[2]["load_seconds"] > 0
    assert states[3]["state"] == "FAILED" and states[3]["error"]
    assert str(repo.root) not in states[3]["error"]
    assert main(["models", "--url", srv.url]) == 0
    assert "v3 FAILED" in capsys.readouterr().out


def test_access_lines_are_written_in_order_by_the_handlers_thread() -> None:
    stream = io.StringIO()
    handler = LogHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    access = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 0, "line %d", (0,), None)
    for i in range(2000):
        access.args = (i,)
        handler.handle(logging.makeLogRecord(access.__dict__))
    handler.handle(logging.LogRecord("other", logging.WARNING, __file__, 0, "direct", (), None))
    handler.wait_written()
    lines = stream.getvalue().splitlines()
    assert [x for x in lines if x.startswith(ACCESS_LOGGER)] == \
        [f"{ACCESS_LOGGER} line {i}" for i in range(2000)]
    assert "other direct" in lines


def test_a_stream_that_blocks_drops_access_lines_and_says_so() -> None:
    release = threading.Event()

    class Blocking(io.StringIO):
        def write(self, text: str) -> int:
            release.wait(10)
            return super().write(text)

    stream = Blocking()
    handler = LogHandler(stream, max_queued=10)
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 0, "line", (), None)
    started = time.monotonic()
    for _ in range(200):
        handler.handle(logging.makeLogRecord(record.__dict__))
    assert time.monotonic() - started < 1  # no request waits for the stream
    release.set()
    handler.wait_written()
    handler.handle(logging.makeLogRecord(record.__dict__))  # the next batch reports the drops
    handler.wait_written()
    lines = stream.getvalue().splitlines()
    written = lines.count("line") - 1
    dropped = [x for x in lines if "lines dropped so far" in x]
    assert len(dropped) == 1 and written >= 10
    assert dropped[0] == f"access log: {200 - written} lines dropped so far (the log stream " \
        "does not keep up)"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_access_lines_handed_over_as_fields_read_as_records_do(fmt: str) -> None:
    """With the CLI's handler alone on the root logger, a request hands over its fields and the
    writer makes the line; with another handler beside it (pytest's ``caplog``, a library
    user's), the line is an ordinary record. Both give the same line, escaping included."""
    fields = ("rid 7", "Predict", "dig\nits=\"x\"", 3, 0.00125, "Client.InvalidInput",
              "127.0.0.1", "alice")
    fast, slow = io.StringIO(), io.StringIO()
    handler = configure_logging(Settings(log_format=fmt), fast)
    try:
        access_line(*fields)
        handler.wait_written()
        other = logging.StreamHandler(slow)
        other.setFormatter(handler.formatter)
        logging.getLogger().addHandler(other)  # two handlers: records, not fields
        access_line(*fields)
        handler.wait_written()
        logging.getLogger().removeHandler(other)
    finally:
        logging.getLogger().removeHandler(handler)
    fast_lines, slow_lines = fast.getvalue().splitlines(), slow.getvalue().splitlines()
    assert len(fast_lines) == 2 and len(slow_lines) == 1

    def without_time(line: str) -> object:
        if fmt == "json":
            data = json.loads(line)
            assert data.pop("time").endswith("Z")
            return data
        assert line[:4].isdigit()
        return line.split(" ", 2)[2]

    assert without_time(fast_lines[0]) == without_time(fast_lines[1]) == \
        without_time(slow_lines[0])
    if fmt == "text":
        assert without_time(fast_lines[0]) == (
            "INFO soap_server.dataplane: request_id=rid\\x207 op=Predict "
            "model=dig\\x0aits\\x3d\\x22x\\x22 version=3 duration_ms=1.25 "
            "outcome=Client.InvalidInput peer=127.0.0.1 user=alice")
    else:
        assert without_time(fast_lines[0])["model"] == "dig\nits=\"x\""  # type: ignore[index]


def test_a_filter_on_the_access_logger_holds_for_handed_over_lines() -> None:
    stream = io.StringIO()
    handler = configure_logging(Settings(), stream)
    access = logging.getLogger(ACCESS_LOGGER)
    only_errors = logging.Filter()
    only_errors.filter = lambda record: "outcome=ok" not in record.getMessage()  # type: ignore
    access.addFilter(only_errors)
    try:
        access_line("rid-a", "Predict", "m", 1, 0.001, "ok", "127.0.0.1", "-")
        access_line("rid-b", "Predict", "m", 1, 0.001, "Client.InvalidInput", "127.0.0.1", "-")
        handler.wait_written()
    finally:
        access.removeFilter(only_errors)
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "rid-b" in text and "rid-a" not in text
