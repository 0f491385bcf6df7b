"""A peer for the benchmark: MLServer with a small custom runtime for the frozen CNN.

MLServer's way to serve a model it has no runtime for: an ``MLModel`` subclass whose ``load``
builds a ``tf.compat.v1.Session`` over the frozen graph named by the model settings' ``uri``
and whose ``predict`` decodes the V2 request with ``NumpyCodec``, runs the graph and encodes the
outputs. ``benchmarks/peer_servers.py`` writes ``settings.json`` and ``model-settings.json``
into a temporary folder beside a copy of this file and runs ``mlserver start`` there, in a
virtual environment of its own. TensorFlow threads: ``PEER_INTRA`` / ``PEER_INTER``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class FrozenGraphRuntime(MLModel):
    """Runs a frozen GraphDef (input ``images:0``; outputs ``probabilities:0``, ``classes:0``)."""

    async def load(self) -> bool:
        import tensorflow as tf

        uri = self.settings.parameters.uri if self.settings.parameters else None
        graph_def = tf.compat.v1.GraphDef()
        with open(str(uri), "rb") as f:
            graph_def.ParseFromString(f.read())
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=int(os.environ.get("PEER_INTRA", "2")),
            inter_op_parallelism_threads=int(os.environ.get("PEER_INTER", "2")))
        self._session: Any = tf.compat.v1.Session(graph=graph, config=config)
        self._input = graph.get_tensor_by_name("images:0")
        self._outputs = [graph.get_tensor_by_name(n)
                         for n in ("probabilities:0", "classes:0")]
        self.ready = True
        return self.ready

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        probabilities, classes = self._session.run(self._outputs, feed_dict={self._input: x})
        return InferenceResponse(model_name=self.name, outputs=[
            NumpyCodec.encode_output("probabilities", probabilities),
            NumpyCodec.encode_output("classes", classes)])
