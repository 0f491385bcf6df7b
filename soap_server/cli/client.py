"""The client-side commands: ``tfsoap predict`` and ``tfsoap models`` (through the Python
client, ``tfsoap_client``, or straight from a store folder)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="call Predict on a running server and print the outputs")
    p.add_argument("--url", default="http://127.0.0.1:8080/", help="server endpoint")
    p.add_argument("--model", required=True, help="model name")
    p.add_argument("--version", type=int, default=None, help="model version (default: latest)")
    p.add_argument("--input", action="append", required=True, metavar="NAME=FILE.npy",
                   help="an input tensor from a .npy file (repeat for several inputs)")
    p.add_argument("--output", action="append", default=None, metavar="NAME",
                   help="only these outputs (repeatable)")
    p.add_argument("--encoding", choices=("tensor_content", "typed"), default="tensor_content")
    p.add_argument("--json", action="store_true", help="print the outputs as JSON")
    p.add_argument("--save", metavar="DIR", help="also save each output as DIR/NAME.npy")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_predict)


def _load_inputs(specs: Sequence[str]) -> dict[str, np.ndarray]:
    inputs = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"tfsoap: error: --input must be NAME=FILE.npy, got {spec!r}")
        try:
            inputs[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"tfsoap: error: cannot read {path}: {exc}") from None
    return inputs


def _client_module() -> Any:
    try:
        import tfsoap_client
    except ImportError:
        raise SystemExit("tfsoap: error: this command needs the Python client: "
                         "pip install ./clients/python") from None
    return tfsoap_client


def cmd_predict(args: argparse.Namespace) -> int:
    tc = _client_module()
    ClientError, PredictClient = tc.ClientError, tc.PredictClient

    inputs = _load_inputs(args.input)
    try:
        client = PredictClient(args.url, timeout=args.timeout, encoding=args.encoding)
        result = client.predict_result(args.model, inputs, version=args.version,
                                       outputs=args.output)
    except ClientError as exc:
        print(f"tfsoap: error: {exc}", file=sys.stderr)
        return 1
    if args.save:
        Path(args.save).mkdir(parents=True, exist_ok=True)
        for name, arr in result.outputs.items():
            np.save(Path(args.save) / f"{name}.npy", arr)
    if args.json:
        print(json.dumps({"model": result.model_name, "version": result.version,
                          "outputs": {k: _jsonable(v) for k, v in result.outputs.items()}}))
    else:
        print(f"model {result.model_name} version {result.version}")
        with np.printoptions(precision=6, suppress=True, threshold=200):
            for name, arr in result.outputs.items():
                print(f"{name} {arr.dtype} {list(arr.shape)}:\n{arr}")
    return 0


def _jsonable(arr: np.ndarray) -> Any:
    if arr.dtype == object:
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                for v in arr.reshape(-1).tolist()]
    return arr.tolist()


def add_models(sub: Any) -> None:
    p = sub.add_parser("models", help="list the models in a store (or on a server)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--model-store", help="store folder (default: the bundled demo store)")
    where.add_argument("--url", help="list what a running server serves instead")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)


TensorRow = tuple[str, str, "tuple[int, ...] | None"]


def _model_row(name: str, versions: list[int], state: str, inputs: list[TensorRow],
               outputs: list[TensorRow], description: str) -> dict[str, Any]:
    """One model as ``tfsoap models`` shows it, from a store or from a server."""
    def show(ts: list[TensorRow]) -> list[str]:
        return [f"{n} {dt} {list(shape or [])}" for n, dt, shape in ts]

    return {"name": name, "versions": versions, "latest": max(versions), "state": state,
            "inputs": show(inputs), "outputs": show(outputs), "description": description}


def cmd_models(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    if args.url:
        tc = _client_module()
        ClientError, PredictClient = tc.ClientError, tc.PredictClient

        try:
            client = PredictClient(args.url)
            loaded = {m["model_name"]: m for m in client.status().models
                      if m.get("memory_bytes") is not None}  # the latest loaded version last
            for m in client.list_models():
                md = client.metadata(m.name)
                rows.append(_model_row(m.name, list(m.versions), m.state,
                                       [(t.name, t.dtype, t.shape) for t in md.inputs],
                                       [(t.name, t.dtype, t.shape) for t in md.outputs],
                                       m.description))
                if m.name in loaded:
                    rows[-1]["memory_bytes"] = int(loaded[m.name]["memory_bytes"])
                    rows[-1]["load_seconds"] = float(loaded[m.name]["load_seconds"] or 0.0)
                    rows[-1]["loaded_version"] = int(loaded[m.name]["version"])
        except ClientError as exc:
            print(f"tfsoap: error: {exc}", file=sys.stderr)
            return 1
    else:
        from model_store import ModelRepository, ModelStoreError, bundled_store_path

        repo = ModelRepository(args.model_store or bundled_store_path())
        try:
            for name in repo.model_names():
                versions = repo.versions(name)
                sig = versions[-1].read_signature()
                rows.append(_model_row(name, [v.version for v in versions], "STORED",
                                       [(t.alias, t.dtype, t.shape) for t in sig.inputs],
                                       [(t.alias, t.dtype, t.shape) for t in sig.outputs],
                                       sig.description))
        except ModelStoreError as exc:
            print(f"tfsoap: error: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no models")
    for r in rows:
        print(f"{r['name']}  versions {r['versions']} (latest {r['latest']})  {r['state']}")
        print(f"    inputs:  {'; '.join(r['inputs'])}")
        print(f"    outputs: {'; '.join(r['outputs'])}")
        if r["description"]:
            print(f"    {r['description']}")
        if "memory_bytes" in r:
            print(f"    memory: {r['memory_bytes'] / 2**20:.1f} MiB resident (measured at load, "
                  f"version {r['loaded_version']}), loaded in {r['load_seconds']:.2f}s")
    return 0
