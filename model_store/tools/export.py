"""Export a store version as a SavedModel, so the model can leave for TensorFlow Serving.

TF Serving cannot load a bare frozen GraphDef; it loads ``<base>/<version>/saved_model.pb``.
``export_savedmodel`` imports the frozen graph into a fresh ``tf.Graph`` and writes it with
TF1's ``SavedModelBuilder`` under the ``serve`` tag, with one ``serving_default`` predict
signature whose inputs and outputs are the store entry's aliases, graph tensors, dtypes and
shapes (from ``model.json``). The graph holds no variables, so the SavedModel has no variable
files to restore. It is written into a hidden temporary folder inside the output folder and
renamed to ``<output>/<version>`` in one step, so ``tensorflow_model_server
--model_base_path=<output>``, which polls that folder, never sees a half-written version.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConversionError, ModelStoreError
from ..store import ModelRepository, ModelSignature, StoredVersion
from .publish import Progress, human_size, say
from .tf_failures import converting, quietly

SIGNATURE_KEY = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"


@dataclass(frozen=True)
class ExportReport:
    """What ``export_savedmodel`` wrote, and how TF Serving finds it."""

    stored: StoredVersion
    signature: ModelSignature
    path: Path
    base_path: Path
    saved_model_bytes: int
    frozen_bytes: int
    seconds: float

    def lines(self) -> list[str]:
        """The short report the CLI prints."""
        out = [f"exported {self.stored.name} version {self.stored.version} to {self.path}",
               f"  source   store entry {self.stored.path} (model.pb "
               f"{human_size(self.frozen_bytes)})",
               f"  written  SavedModel, tag 'serve', signature {SIGNATURE_KEY!r} "
               f"({human_size(self.saved_model_bytes)})"]
        for label, group in (("input ", self.signature.inputs), ("output", self.signature.outputs)):
            for t in group:
                shape = "unknown rank" if t.shape is None else list(t.shape)
                out.append(f"  {label}   {t.alias:<16} {t.name:<28} {t.dtype} {shape}")
        out += [f"  serve    tensorflow_model_server --model_name={self.stored.name} "
                f"--model_base_path={self.base_path}",
                f"  took     {self.seconds:.2f} s"]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"name": self.stored.name, "version": self.stored.version,
                "path": str(self.path), "model_base_path": str(self.base_path),
                "signature_key": SIGNATURE_KEY, "saved_model_bytes": self.saved_model_bytes,
                "frozen_bytes": self.frozen_bytes, "signature": self.signature.to_json(),
                "seconds": self.seconds}


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _tensor_info(tf: Any, graph: Any, spec: Any) -> Any:
    """TensorInfo of ``spec``'s tensor, its shape taken from ``model.json``."""
    try:
        tensor = graph.get_tensor_by_name(spec.name)
    except (KeyError, ValueError) as exc:
        raise ConversionError(f"tensor {spec.name} of {spec.alias!r} is not in the frozen "
                              f"graph: {exc}") from None
    info = tf.compat.v1.saved_model.build_tensor_info(tensor)
    info.tensor_shape.Clear()
    if spec.shape is None:
        info.tensor_shape.unknown_rank = True
    else:
        for size in spec.shape:
            info.tensor_shape.dim.add(size=size)
    return info


def _write(tf: Any, stored: StoredVersion, signature: ModelSignature, target: Path) -> None:
    graph_def = tf.compat.v1.GraphDef()
    with converting(f"cannot read the frozen graph of {stored.name} v{stored.version}"):
        graph_def.ParseFromString(stored.read_graph_bytes())
    graph = tf.Graph()
    with graph.as_default():
        with converting("cannot import the frozen graph"):
            tf.compat.v1.import_graph_def(graph_def, name="")
        sig_def = tf.compat.v1.saved_model.build_signature_def(
            inputs={t.alias: _tensor_info(tf, graph, t) for t in signature.inputs},
            outputs={t.alias: _tensor_info(tf, graph, t) for t in signature.outputs},
            method_name=PREDICT_METHOD)
        with tf.compat.v1.Session(graph=graph) as sess, \
                converting("cannot write the SavedModel"):
            builder = tf.compat.v1.saved_model.Builder(str(target))
            builder.add_meta_graph_and_variables(
                sess, [tf.compat.v1.saved_model.tag_constants.SERVING],
                signature_def_map={SIGNATURE_KEY: sig_def}, strip_default_attrs=True)
            builder.save()


@quietly
def export_savedmodel(store: str | os.PathLike[str] | ModelRepository, name: str,
                      output: str | os.PathLike[str], *, version: int | None = None,
                      progress: Progress | None = None) -> ExportReport:
    """Write ``name`` (latest version unless ``version``) of ``store`` as the SavedModel
    ``<output>/<version>``. Raises ``ConversionError``; ``output`` is untouched on failure."""
    import tensorflow as tf

    started = time.monotonic()
    repo = store if isinstance(store, ModelRepository) else ModelRepository(store)
    try:
        stored = repo.get(name, version)
        signature = stored.read_signature()
    except ModelStoreError as exc:
        raise ConversionError(exc.message) from None
    base = Path(output)
    target = base / str(stored.version)
    if target.exists():
        raise ConversionError(f"{target} already exists; TF Serving versions are immutable: "
                              "remove it or choose another --output")
    try:
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=base))
    except OSError as exc:
        raise ConversionError(f"cannot write into {base}: {exc.strerror}") from None
    try:
        say(progress, f"exporting {name} version {stored.version} as a SavedModel")
        _write(tf, stored, signature, tmp / "export")
        os.chmod(tmp / "export", 0o755)
        try:
            os.rename(tmp / "export", target)
        except OSError as exc:
            raise ConversionError(f"cannot move the SavedModel into {target}: "
                                  f"{exc.strerror}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExportReport(stored, signature, target, base, _folder_size(target),
                        stored.graph_path.stat().st_size, time.monotonic() - started)
