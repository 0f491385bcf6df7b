"""The client-side commands: ``tfsoap predict`` and ``tfsoap models`` (through the Python
client, ``tfsoap_client``, or straight from a store folder).

Like every ``tfsoap`` command, a failure is one ``tfsoap: error: ...`` line on stderr and exit
status 2 (``EXIT_FAILED``); a SOAP fault keeps its code and request id in that line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

EXIT_OK, EXIT_FAILED = 0, 2


class CommandError(Exception):
    """A failure to report as one ``tfsoap: error:`` line (exit status 2)."""


def _fail(message: str) -> int:
    print(f"tfsoap: error: {message}", file=sys.stderr)
    return EXIT_FAILED


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
            raise CommandError(f"--input must be NAME=FILE.npy, got {spec!r}")
        try:
            inputs[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
    return inputs


def _client_module() -> Any:
    try:
        import tfsoap_client
    except ImportError:
        raise CommandError("this command needs the Python client: "
                           "pip install ./clients/python") from None
    return tfsoap_client


def cmd_predict(args: argparse.Namespace) -> int:
    try:
        tc = _client_module()
        inputs = _load_inputs(args.input)
    except CommandError as exc:
        return _fail(str(exc))
    try:
        client = tc.PredictClient(args.url, timeout=args.timeout, encoding=args.encoding)
        result = client.predict_result(args.model, inputs, version=args.version,
                                       outputs=args.output)
    except tc.ClientError as exc:
        return _fail(str(exc))
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
    failures: list[str] = []
    if args.url:
        try:
            tc = _client_module()
        except CommandError as exc:
            return _fail(str(exc))
        try:
            client = tc.PredictClient(args.url)
            states: dict[str, list[dict[str, Any]]] = {}
            for v in client.status().models:
                states.setdefault(v["model_name"], []).append(_version_row(v))
            for m in client.list_models():
                md = client.metadata(m.name)
                rows.append(_model_row(m.name, list(m.versions), m.state,
                                       [(t.name, t.dtype, t.shape) for t in md.inputs],
                                       [(t.name, t.dtype, t.shape) for t in md.outputs],
                                       m.description))
                rows[-1]["version_states"] = states.get(m.name, [])
        except tc.ClientError as exc:
            return _fail(str(exc))
    else:
        from model_store import ModelRepository, ModelStoreError, bundled_store_path

        repo = ModelRepository(args.model_store or bundled_store_path())
        try:
            names = repo.model_names()
        except ModelStoreError as exc:
            return _fail(exc.message)
        for name in names:
            versions = []
            try:
                versions = repo.versions(name)
                sig = versions[-1].read_signature()
            except ModelStoreError as exc:  # one broken model.json must not hide the rest
                where = f"model {name!r}" + (
                    f" version {versions[-1].version} ({name}/{versions[-1].version}/"
                    "model.json)" if versions else "")
                failures.append(f"{where}: {exc.message}")
                continue
            rows.append(_model_row(name, [v.version for v in versions], "STORED",
                                   [(t.alias, t.dtype, t.shape) for t in sig.inputs],
                                   [(t.alias, t.dtype, t.shape) for t in sig.outputs],
                                   sig.description))
    code = EXIT_OK
    for failure in failures:
        code = _fail(failure)
    if args.json:
        print(json.dumps(rows, indent=2))
        return code
    if not rows and not failures:
        print("no models")
    for r in rows:
        print(f"{r['name']}  versions {r['versions']} (latest {r['latest']})  {r['state']}")
        print(f"    inputs:  {'; '.join(r['inputs'])}")
        print(f"    outputs: {'; '.join(r['outputs'])}")
        if r["description"]:
            print(f"    {r['description']}")
        for v in r.get("version_states", []):
            print(f"    v{v['version']} {v['state']}"
                  + (f"  sha256 {v['content_hash'][:12]}" if v["content_hash"] else "")
                  + (f"  loaded {v['loaded_at']} in {v['load_seconds']:.2f}s"
                     if v["loaded_at"] else "")
                  + (f"  memory {v['memory_bytes'] / 2**20:.1f} MiB (measured)"
                     if v["memory_bytes"] is not None else "")
                  + (f"  ({v['error']})" if v["error"] else ""))
    return code


def _version_row(v: dict[str, Any]) -> dict[str, Any]:
    """One version's live state from ``GetServerStatus``, for ``models --url``."""
    loaded = v.get("loaded_at")
    return {"version": int(v["version"]), "state": str(v["state"]),
            "content_hash": v.get("content_hash") or "",
            "loaded_at": loaded.isoformat(timespec="seconds") if loaded else "",
            "load_seconds": float(v.get("load_seconds") or 0.0), "error": v.get("error") or "",
            # resident bytes the load added (measured); None until loaded or from older servers
            "memory_bytes": None if v.get("memory_bytes") is None else int(v["memory_bytes"]),
            "weights_bytes": None if v.get("weights_bytes") is None else int(v["weights_bytes"])}
