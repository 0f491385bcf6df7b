"""A small ``Predict`` is answered on the HTTP front's event loop: it waits for its batch
without holding a pool thread, its deadline still refuses it, and its answer is the one the
thread path gives, byte for byte."""

from __future__ import annotations

import base64
import dataclasses
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from lxml import etree

import tfsoap_client as tc
from model_store import ModelRepository
from model_store.store.signature import BatchingConfig
from soap_server.app import RunningServer, start_server
from soap_server.settings import Settings
from soap_server.soap.protocol import PredictCall
from tests.models import affine_expected, affine_model, slow_model
from tests.soap_server.raw import parse_fault, post, predict_xml

SIZE = 400


@pytest.fixture(scope="module")
def one_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server with ONE pool thread and one run at a time, over batched models."""
    root: Path = tmp_path_factory.mktemp("loop_store")
    repo = ModelRepository(root)
    graph, sig = slow_model(size=SIZE, steps=256)
    batching = BatchingConfig(max_batch_size=8, batch_timeout_ms=2, max_enqueued_batches=16)
    repo.write_version("slow", graph, dataclasses.replace(sig, batching=batching), version=1)
    graph, sig = affine_model(3.0, batching)
    repo.write_version("affine", graph, sig, version=1)
    srv = start_server(Settings(model_store=str(root), port=0, threads=1,
                                max_concurrent_runs=1, request_timeout_s=60.0))
    assert srv.wait_ready(60)
    yield srv
    srv.stop()


def test_batched_requests_wait_for_their_batch_without_a_pool_thread(one_thread) -> None:
    # A request too big to batch runs in the server's ONE pool thread and holds the one run
    # slot. Eight small requests sent meanwhile all reach the batcher: a request waiting for
    # its batch holds no thread (on a pool thread they would wait for A, then run one by one,
    # eight batches).
    served = one_thread.app.registry.get("slow")
    batcher = served.batcher
    assert batcher is not None
    runs_before, accepted_before = batcher.batches_run, batcher.accepted
    callers = 8
    results: dict[int, object] = {}

    def call(i: int, x: np.ndarray) -> None:
        try:  # raw posts: zeep would first GET the WSDL, an answer of the busy pool thread
            answer = post(one_thread.url, predict_body(x), timeout=120)
            results[i] = answer.status == 200 and bool(np.allclose(output(answer.body), x,
                                                                   rtol=1e-3))
        except Exception as exc:  # reported by the assertion below
            results[i] = exc

    big = threading.Thread(target=call, args=(callers, np.ones((2048, SIZE), np.float32)))
    big.start()
    wait_for(lambda: served.gate.running == 1)
    threads = [threading.Thread(target=call, args=(i, np.full((1, SIZE), i, np.float32)))
               for i in range(callers)]
    for t in threads:
        t.start()
    # the first small request was gathered and waits for the run slot; the other seven queue
    # all eight reach the batcher (the first batch waits for the run slot, the rest queue)
    wait_for(lambda: batcher.accepted - accepted_before == callers)
    assert served.gate.running == 1 and big.is_alive() and batcher.running == 1
    for t in [big, *threads]:
        t.join(timeout=180)
    assert results == {i: True for i in range(callers + 1)}
    # the first batch (those queued when the worker woke), then all the others merged
    assert batcher.batches_run - runs_before == 2


def test_a_queued_request_past_its_deadline_is_refused_and_withdrawn(one_thread) -> None:
    served = one_thread.app.registry.get("slow")
    batcher = served.batcher
    assert batcher is not None
    client = tc.PredictClient(one_thread.url, timeout=120)
    done: list[object] = []

    def run(x: np.ndarray) -> None:
        try:
            done.append(client.predict("slow", {"x": x})["y"].shape)
        except Exception as exc:  # reported by the assertion below
            done.append(exc)

    # A: a request too big to batch holds the one run slot; B: gathered, waits for the slot;
    # C: stays queued behind B, and its 200 ms deadline passes there
    big = threading.Thread(target=run, args=(np.ones((2048, SIZE), np.float32),))
    big.start()
    wait_for(lambda: served.gate.running == 1)
    gathered = threading.Thread(target=run, args=(np.ones((1, SIZE), np.float32),))
    gathered.start()
    wait_for(lambda: batcher.running == 1 and batcher.waiting == 0)
    started = time.monotonic()
    answer = post(one_thread.url, predict_body(np.ones((2, SIZE), np.float32)),
                  headers={"X-Request-Timeout-Ms": "200"})
    took = time.monotonic() - started
    fault = parse_fault(answer)
    assert answer.status == 500 and fault.code == "Server.Unavailable", answer.body[:300]
    assert "deadline" in fault.message and took < 5, (fault.message, took)
    assert served.gate.running == 1  # A still ran when C was refused
    assert batcher.waiting == 0  # C left the queue
    big.join(120)
    gathered.join(120)
    assert done and all(isinstance(d, tuple) for d in done), done
    y = client.predict("slow", {"x": np.ones((1, SIZE), np.float32)})["y"]
    assert y.shape == (1, SIZE)


def test_the_loop_answers_what_the_thread_path_answers_byte_for_byte(one_thread) -> None:
    # a big request holds the one pool thread: what is answered meanwhile was answered on the
    # loop (a request alone in the worker would take the pool thread)
    served = one_thread.app.registry.get("slow")
    big = threading.Thread(target=post, args=(one_thread.url,
                                              predict_body(np.ones((4096, SIZE), np.float32))),
                           kwargs={"timeout": 120})
    big.start()
    wait_for(lambda: served.gate.running == 1)
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    fast = one_thread.app.wsgi.fast_predict
    answers = []
    for encoding in ("tensor_content", "float_val"):
        body = predict_body(x, "affine", "x", encoding)
        answers.append((body, "same-id", post(one_thread.url, body,
                                               headers={"X-Request-ID": "same-id"})))
    bad = predict_body(x, "affine", "nope")  # an input the signature does not have
    answers.append((bad, "bad-id", post(one_thread.url, bad, headers={"X-Request-ID": "bad-id"})))
    assert big.is_alive() and served.gate.running == 1, "the big request ended too soon"
    big.join(120)
    for body, rid, answer in answers:
        call = fast.decode(body, "text/xml; charset=utf-8", rid)
        assert isinstance(call, PredictCall)
        ok, expected = fast.respond(call, rid)
        assert answer.body == expected and answer.status == (200 if ok else 500)
    assert [a.status for _, _, a in answers] == [200, 200, 500]
    assert parse_fault(answers[2][2]).code == "Client.InvalidInput"
    y = tc.PredictClient(one_thread.url).predict("affine", {"x": x})["y"]
    np.testing.assert_allclose(y, affine_expected(x, 3.0), rtol=1e-6)


def predict_body(x: np.ndarray, model: str = "slow", name: str = "x",
                 encoding: str = "tensor_content") -> bytes:
    shape = "".join(f"<t:long>{d}</t:long>" for d in x.shape)
    if encoding == "tensor_content":
        values = f"<t:tensor_content>{base64.b64encode(x.tobytes()).decode()}</t:tensor_content>"
    else:
        values = "<t:float_val>" + "".join(f"<t:float>{v!r}</t:float>"
                                           for v in x.ravel().tolist()) + "</t:float_val>"
    return predict_xml(model, f"<t:Tensor><t:name>{name}</t:name><t:dtype>DT_FLOAT</t:dtype>"
                              f"<t:shape>{shape}</t:shape>{values}</t:Tensor>")


def output(body: bytes) -> np.ndarray:
    """The one output tensor of a ``PredictResponse`` (``tensor_content``, float32)."""
    root = etree.fromstring(body)
    tns = "{urn:tfsoap:predict:v1}"
    tensor = root.find(f".//{tns}outputs/{tns}Tensor")
    assert tensor is not None, body[:300]
    shape = [int(d.text or "") for d in tensor.iterfind(f"{tns}shape/{tns}long")]
    content = tensor.findtext(f"{tns}tensor_content") or ""
    return np.frombuffer(base64.b64decode(content), np.float32).reshape(shape)


def wait_for(condition, timeout: float = 30.0,  # type: ignore[no-untyped-def]
             message=lambda: "condition not reached") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message()
        time.sleep(0.005)
