"""The in-process baselines: the same frozen graph, the same session settings, no server.

Two plain loops at a fixed batch, measured in the benchmark process:

- ``loaded_model_run``: ``model_store.serving.loader.LoadedModel.run``, what the server calls
  per (merged) batch; it runs the graph through a ``Session::MakeCallable`` handle;
- ``session_run``: the naive ``Session.run(fetches, feed_dict=...)`` on the frozen GraphDef
  imported as it is into a graph of its own, with the same ``ConfigProto``, as a TensorFlow user
  would first write it.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
from bench_models import BenchModel
from loadgen import machine_busy_s
from soap_bodies import sample_input

KINDS = ("loaded_model_run", "session_run")
Runner = Callable[[np.ndarray], object]


def load_runners(store: Path, models: list[BenchModel], intra: int,
                 inter: int) -> dict[str, dict[str, Runner]]:
    """For each model, a runner of each kind taking the input array."""
    import tensorflow as tf

    from model_store import ModelRepository
    from model_store.serving.loader import LoadedModel, session_config

    repo = ModelRepository(store)
    out: dict[str, dict[str, Runner]] = {}
    for m in models:
        loaded = LoadedModel(repo.versions(m.name)[-1], intra_op_threads=intra,
                             inter_op_threads=inter)
        sig = loaded.signature
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(repo.versions(m.name)[-1].graph_path.read_bytes())
        graph = tf.Graph()
        with graph.as_default():
            tf.import_graph_def(graph_def, name="")
        session = tf.compat.v1.Session(graph=graph, config=session_config(intra, inter))
        feed = graph.get_tensor_by_name(sig.inputs[0].name)
        fetches = [graph.get_tensor_by_name(t.name) for t in sig.outputs]
        out[m.name] = {
            "loaded_model_run": lambda x, lm=loaded, a=m.alias: lm.run({a: x}),
            "session_run": lambda x, s=session, f=fetches, i=feed: s.run(f, feed_dict={i: x}),
        }
    return out


def measure(run: Runner, model: BenchModel, batch: int, seconds: float) -> dict[str, float]:
    """Runs/s, images/s, p50 latency and CPU per run of a plain loop of ``run``."""
    x = sample_input((batch, *model.example_shape), seed=batch)
    for _ in range(20):
        run(x)
    lat = []
    cpu0, busy0 = time.process_time(), machine_busy_s()
    start = time.perf_counter()
    end = start + seconds
    t0 = start
    while t0 < end:
        run(x)
        t1 = time.perf_counter()
        lat.append(t1 - t0)
        t0 = t1
    elapsed = t0 - start
    cpu, busy = time.process_time() - cpu0, machine_busy_s() - busy0
    return {"runs_per_s": len(lat) / elapsed, "images_per_s": len(lat) * batch / elapsed,
            "p50_ms": statistics.median(lat) * 1000.0, "cpu_ms_per_run": cpu * 1000 / len(lat),
            "other_cpu": max(0.0, busy - cpu) / elapsed}


def measure_quietly(run: Runner, model: BenchModel, batch: int, seconds: float,
                    retries: int, max_other_cpu: float,
                    wait_quiet: Callable[[], object]) -> dict[str, float]:
    """``measure`` on a quiet machine, rerun (up to ``retries``) when something else took more
    than ``max_other_cpu`` cores meanwhile; the least disturbed run is kept."""
    best: dict[str, float] | None = None
    for _ in range(1 + retries):
        wait_quiet()
        res = measure(run, model, batch, seconds)
        if best is None or res["other_cpu"] < best["other_cpu"]:
            best = res
        if res["other_cpu"] <= max_other_cpu:
            break
    assert best is not None
    return best
