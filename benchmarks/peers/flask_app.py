"""A peer for the benchmark: the frozen CNN behind Flask, TF Serving's REST JSON in and out.

What a team would write first to put a frozen graph on HTTP: ``POST
/v1/models/<name>:predict`` with ``{"instances": [...]}`` (one nested list per example), the
graph run by a ``tf.compat.v1.Session``, ``{"predictions": [...]}`` back. The benchmark runs it
with gunicorn, 2 sync worker processes, in a virtual environment of its own
(``benchmarks/peer_servers.py``), never as part of tfsoap.

Configured by the environment: ``PEER_GRAPH`` (the frozen ``model.pb``), ``PEER_INPUT`` and
``PEER_OUTPUTS`` (tensor names), ``PEER_INTRA`` / ``PEER_INTER`` (TensorFlow threads). The
session is made when a worker imports this module (gunicorn without ``--preload`` imports it
in each worker after the fork: TensorFlow does not survive a fork), so a worker that answers
is warm.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np
from flask import Flask, jsonify, request

app = Flask(__name__)
_lock = threading.Lock()
_state: dict[str, Any] = {}


def _session() -> tuple[Any, Any, list[Any]]:
    with _lock:
        if not _state:
            import tensorflow as tf

            graph_def = tf.compat.v1.GraphDef()
            with open(os.environ["PEER_GRAPH"], "rb") as f:
                graph_def.ParseFromString(f.read())
            graph = tf.Graph()
            with graph.as_default():
                tf.compat.v1.import_graph_def(graph_def, name="")
            config = tf.compat.v1.ConfigProto(
                intra_op_parallelism_threads=int(os.environ.get("PEER_INTRA", "2")),
                inter_op_parallelism_threads=int(os.environ.get("PEER_INTER", "2")))
            _state["session"] = tf.compat.v1.Session(graph=graph, config=config)
            _state["input"] = graph.get_tensor_by_name(os.environ.get("PEER_INPUT", "images:0"))
            _state["outputs"] = [graph.get_tensor_by_name(n) for n in os.environ.get(
                "PEER_OUTPUTS", "probabilities:0,classes:0").split(",")]
    return _state["session"], _state["input"], _state["outputs"]


@app.get("/v1/models/<name>")
def status(name: str) -> Any:
    _session()
    return jsonify({"model_version_status": [{"state": "AVAILABLE"}]})


@app.post("/v1/models/<name>:predict")
def predict(name: str) -> Any:
    payload = request.get_json(force=True)
    x = np.asarray(payload["instances"], dtype=np.float32)
    session, feed, fetches = _session()
    probabilities, classes = session.run(fetches, feed_dict={feed: x})
    return jsonify({"predictions": [
        {"probabilities": p.tolist(), "classes": int(c)}
        for p, c in zip(probabilities, classes)]})


if "PEER_GRAPH" in os.environ:
    _session()
