"""``tfsoap`` subcommands that bring models into the store: freeze, convert-keras,
convert-savedmodel, inspect; and export-savedmodel, which takes one out to TF Serving.

``register(subparsers)`` adds them to the ``tfsoap`` parser; each sets ``func`` to a handler
``handler(args) -> int``. Reports go to stdout, progress lines to stderr, and a failure is one
``tfsoap: error: ...`` line on stderr with exit code 2 (no traceback). Everything that can be
checked without TensorFlow (names, versions, files) is checked before it is imported, and its
start-up noise is kept off the terminal unless ``--verbose``. The work itself is
``model_store.tools``; this module only parses and reports.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Callable

from model_store import BatchingConfig
from model_store.errors import ConversionError, ModelStoreError
from model_store.tools import (
    Renames,
    check_arguments,
    detect_kind,
    one_line,
    quiet_tensorflow_logs,
    read_labels,
)

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED = 0, 2


def _progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    if getattr(args, "quiet", False):
        return None
    return lambda message: print(f"tfsoap: {message}", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace, work: Callable[[], Any],
         precheck: Callable[[], Any] | None = None) -> int:
    """Check the arguments (``precheck``, without TensorFlow), import TensorFlow quietly, run
    ``work`` and print its report; failures become one line and an exit code."""
    try:
        if precheck is not None:
            precheck()
        quiet_tensorflow_logs(verbose=getattr(args, "verbose", False))
        result = work()
    except ModelStoreError as exc:
        print(f"tfsoap: error: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("tfsoap: error: interrupted", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # a bug, not a bad model: still one line, details in the log
        log.debug("unexpected failure", exc_info=True)
        print(f"tfsoap: error: unexpected {type(exc).__name__}: {one_line(exc)}",
              file=sys.stderr)
        return EXIT_FAILED
    if getattr(args, "json", False):
        print(json.dumps(result.to_json(), indent=2))
    else:
        print("\n".join(result if isinstance(result, list) else result.lines()))
    return EXIT_OK


def _labels(args: argparse.Namespace) -> tuple[str, ...]:
    return read_labels(args.labels) if args.labels else ()


def _batching(args: argparse.Namespace) -> BatchingConfig | None:
    """The batching section from ``--max-batch-size`` and friends (None: not asked)."""
    if args.max_batch_size is None:
        if args.batch_timeout_ms is not None or args.max_enqueued_batches is not None:
            raise ConversionError("--batch-timeout-ms and --max-enqueued-batches need "
                                  "--max-batch-size")
        return None
    given: dict[str, Any] = {"max_batch_size": args.max_batch_size}
    if args.batch_timeout_ms is not None:
        given["batch_timeout_ms"] = args.batch_timeout_ms
    if args.max_enqueued_batches is not None:
        given["max_enqueued_batches"] = args.max_enqueued_batches
    try:
        return BatchingConfig.from_json(given)
    except ModelStoreError:
        raise ConversionError("batching needs --max-batch-size >= 0, --batch-timeout-ms >= 0 "
                              "and --max-enqueued-batches >= 1") from None


def _common(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments every freeze or conversion takes from ``_store_options``."""
    return {"version": args.version, "labels": _labels(args), "description": args.description,
            "optimize": args.optimize, "progress": _progress(args),
            "allow_random_ops": args.allow_random_ops, "batching": _batching(args),
            "renames": Renames.parse(args.input_alias or (), args.output_alias or ())}


def _prechecked(args: argparse.Namespace, **sources: Any) -> Callable[[], Any]:
    def precheck() -> None:
        check_arguments(args.model_store, args.name, args.version, labels_file=args.labels,
                        **sources)
        _common(args)  # aliases and batching flags are checked too
    return precheck


def freeze_command(args: argparse.Namespace) -> int:
    """``tfsoap freeze``: checkpoint -> frozen graph in the store."""
    def work() -> Any:
        from model_store.tools import freeze_checkpoint

        return freeze_checkpoint(
            args.checkpoint, args.model_store, args.name, outputs=args.output or (),
            output_collection=args.output_collection, inputs=args.input or (),
            builder=args.builder, scope=args.scope, **_common(args))
    return _run(args, work, _prechecked(args, checkpoint=args.checkpoint))


def convert_keras_command(args: argparse.Namespace) -> int:
    """``tfsoap convert-keras``: .keras / .h5 file -> frozen graph in the store."""
    def work() -> Any:
        from model_store.tools import convert_keras

        return convert_keras(args.file, args.model_store, args.name,
                             custom_objects=args.custom_objects, **_common(args))
    return _run(args, work, _prechecked(args, keras_file=args.file))


def convert_savedmodel_command(args: argparse.Namespace) -> int:
    """``tfsoap convert-savedmodel``: one SavedModel signature -> frozen graph in the store."""
    def work() -> Any:
        from model_store.tools import convert_savedmodel

        return convert_savedmodel(args.dir, args.model_store, args.name,
                                  signature=args.signature, **_common(args))
    return _run(args, work, _prechecked(args, saved_model=args.dir))


def export_savedmodel_command(args: argparse.Namespace) -> int:
    """``tfsoap export-savedmodel``: a store version -> ``<output>/<version>`` SavedModel."""
    def work() -> Any:
        from model_store.tools import export_savedmodel

        return export_savedmodel(args.model_store, args.name, args.output,
                                 version=args.version, progress=_progress(args))
    return _run(args, work)


def inspect_command(args: argparse.Namespace) -> int:
    """``tfsoap inspect``: show a checkpoint, frozen graph, store entry or SavedModel."""
    def work() -> Any:
        from model_store.tools import inspect_model

        report = inspect_model(args.path, variables=args.variables, trainable=args.trainable,
                               values=args.values, tensor=args.tensor)
        if args.pbtxt:
            report.write_pbtxt(args.pbtxt)
        return report.lines(ops=args.ops, training_ops=not args.no_training_ops)
    return _run(args, work, lambda: detect_kind(args.path))


def _store_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-store", required=True, metavar="DIR",
                   help="the model store folder to add the new version to")
    p.add_argument("--name", required=True, help="model name in the store")
    p.add_argument("--version", type=int, help="version number (default: the next free one)")
    p.add_argument("--labels", metavar="FILE", help="class labels, one per line")
    p.add_argument("--description", default="", help="a line describing the model")
    p.add_argument("--optimize", action="store_true",
                   help="fold constants and batch norms, strip unused nodes (outputs checked "
                        "against the unoptimized graph)")
    p.add_argument("--allow-random-ops", action="store_true",
                   help="store the model even when random ops (dropout, noise, sampling) make "
                        "its outputs differ between identical requests (refused otherwise)")
    p.add_argument("--input-alias", action="append", metavar="OLD=NEW[,...]",
                   help="rename an input the tool named (repeatable)")
    p.add_argument("--output-alias", action="append", metavar="OLD=NEW[,...]",
                   help="rename an output the tool named (repeatable)")
    batching = p.add_argument_group(
        "batching", "write a batching section into model.json: the server merges concurrent "
                    "requests into batches of up to N rows (every input and output needs a "
                    "leading batch dimension)")
    batching.add_argument("--max-batch-size", type=int, metavar="N",
                          help="largest merged batch (0 or 1: batching off)")
    batching.add_argument("--batch-timeout-ms", type=float, metavar="MS",
                          help="how long a batch waits to fill (default 2)")
    batching.add_argument("--max-enqueued-batches", type=int, metavar="N",
                          help="batches allowed to wait before requests are refused "
                               "(default 64)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="let TensorFlow's start-up and C++ log lines through")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``freeze``, ``convert-keras``, ``convert-savedmodel`` and ``inspect``."""
    p = subparsers.add_parser(
        "freeze", help="freeze a TF1-style checkpoint into the store",
        description="Restore a checkpoint (meta graph, or a --builder's inference graph), "
                    "turn variables into constants and keep only what the outputs need.")
    p.add_argument("--checkpoint", required=True, metavar="PREFIX",
                   help="checkpoint prefix (PREFIX.index, PREFIX.data-*, PREFIX.meta)")
    p.add_argument("--output", action="append", metavar="NODE[,NODE...]",
                   help="output node(s): NODE, NODE:INDEX or ALIAS=NODE")
    p.add_argument("--output-collection", metavar="NAME",
                   help="take the outputs from this graph collection")
    p.add_argument("--input", action="append", metavar="NODE[,NODE...]",
                   help="input node(s) (default: the placeholders the outputs need)")
    p.add_argument("--builder", metavar="MODULE:CALLABLE",
                   help="build the inference graph with this callable; only weights are "
                        "restored")
    p.add_argument("--scope", help="restore and freeze only this variable scope")
    _store_options(p)
    p.set_defaults(func=freeze_command)

    p = subparsers.add_parser("convert-keras", help="freeze a Keras .keras or .h5 model")
    p.add_argument("file", help="the .keras or .h5 file")
    p.add_argument("--custom-objects", metavar="MODULE",
                   help="module whose CUSTOM_OBJECTS dict, or public classes and functions, "
                        "are the Keras custom objects")
    _store_options(p)
    p.set_defaults(func=convert_keras_command)

    p = subparsers.add_parser("convert-savedmodel", help="freeze a SavedModel signature")
    p.add_argument("dir", help="the SavedModel folder")
    p.add_argument("--signature", default="serving_default", help="signature key")
    _store_options(p)
    p.set_defaults(func=convert_savedmodel_command)

    p = subparsers.add_parser(
        "export-savedmodel", help="write a store version as a SavedModel for TF Serving",
        description="Write <output>/<version>/saved_model.pb with a serving_default signature "
                    "(the store entry's aliases, dtypes and shapes), the layout "
                    "tensorflow_model_server --model_base_path=<output> loads.")
    p.add_argument("--model-store", required=True, metavar="DIR", help="the model store folder")
    p.add_argument("--name", required=True, help="model name in the store")
    p.add_argument("--version", type=int, help="store version (default: the latest)")
    p.add_argument("--output", required=True, metavar="DIR",
                   help="TF Serving's model base path; the version goes in DIR/<version>")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=export_savedmodel_command)

    p = subparsers.add_parser(
        "inspect", help="show a checkpoint, frozen .pb, store entry or SavedModel")
    p.add_argument("path", help="checkpoint prefix, .pb file, <store>/<name>[/<version>] or "
                                "SavedModel folder")
    p.add_argument("--ops", action="store_true", help="list every op with its type")
    p.add_argument("--no-training-ops", action="store_true",
                   help="with --ops: leave out gradients, optimizer slots and steps, savers")
    p.add_argument("--variables", action="store_true", help="list all variables")
    p.add_argument("--trainable", action="store_true", help="list trainable variables")
    p.add_argument("--values", action="store_true", help="print tensor values too")
    p.add_argument("--tensor", metavar="NAME", help="print one tensor's value")
    p.add_argument("--pbtxt", metavar="FILE", help="write the whole graph as text")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="let TensorFlow's start-up and C++ log lines through")
    p.set_defaults(func=inspect_command)
