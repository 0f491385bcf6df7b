"""The model tools: get what training left behind into the store.

Restore a checkpoint (``restore``, ``checkpoint``, ``graph_builder``, ``user_modules``), freeze it
(``freeze``), convert Keras files and SavedModels (``convert``), optimize the frozen graph for
inference (``optimize``, ``affine_folding``), read graphs and checkpoints (``inspect``,
``graph_reading``), and write a store version atomically with its signature (``endpoints``,
``publish``), after ``preflight`` checked the arguments without TensorFlow; ``determinism``
catches random ops on the output path; ``export`` writes a store version as a SavedModel for TF
Serving. ``tf_failures`` turns TensorFlow's exceptions into one-line ``ConversionError``\\s.

The functions below are the documented API; they import TensorFlow when called.
"""

from .convert import convert_keras, convert_savedmodel
from .endpoints import Renames
from .export import ExportReport, export_savedmodel
from .freeze import freeze_checkpoint, freeze_restored
from .inspect import detect_kind, inspect_model
from .preflight import check_arguments
from .publish import read_labels
from .restore import restore_scoped
from .tf_failures import one_line, quiet_tensorflow_logs

__all__ = [
    "ExportReport", "Renames", "check_arguments", "convert_keras", "convert_savedmodel",
    "detect_kind", "export_savedmodel", "freeze_checkpoint", "freeze_restored", "inspect_model",
    "one_line", "quiet_tensorflow_logs", "read_labels", "restore_scoped",
]
