"""TensorFlow failures made into one-line ``ConversionError`` messages, and its noise muted.

TensorFlow reports problems with long, multi-line messages (op tracebacks, hints about V1/V2
checkpoints). The tools that restore, freeze, convert and inspect models show one clear line
instead, and keep the original exception as ``__cause__`` for the log.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar, cast

from ..errors import ConversionError, ModelStoreError

F = TypeVar("F", bound=Callable[..., Any])

#: The longest message kept from a TensorFlow or Keras error.
MAX_DETAIL = 300


def one_line(exc: BaseException) -> str:
    """The first meaningful line of an exception's message, shortened to ``MAX_DETAIL``."""
    text = getattr(exc, "message", None)
    if not isinstance(text, str) or not text.strip():
        text = str(exc)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    line = lines[0] if lines else type(exc).__name__
    if len(line) > MAX_DETAIL:
        line = line[:MAX_DETAIL - 3] + "..."
    return line


@contextmanager
def converting(what: str) -> Iterator[None]:
    """Turn any failure but a ``ModelStoreError`` inside the block into ``ConversionError``.

    ``what`` says what was being done (``"cannot restore /ckpt/model"``); the message is
    ``"<what>: <first line of the cause>"``.
    """
    try:
        yield
    except ModelStoreError:
        raise
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as exc:
        raise ConversionError(f"{what}: {one_line(exc)}") from exc


@contextmanager
def quiet_deprecations() -> Iterator[None]:
    """Mute TensorFlow's deprecation warnings for TF1 tools used on purpose (freezing, pruning)."""
    from tensorflow.python.util import deprecation

    with deprecation.silence():
        yield


def quietly(fn: F) -> F:
    """Decorate a public entry point to run under ``quiet_deprecations``."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with quiet_deprecations():
            return fn(*args, **kwargs)
    return cast(F, wrapper)


@contextmanager
def _stderr_muted() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the block (C++ code writes there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def quiet_tensorflow_logs(verbose: bool = False) -> None:
    """Import TensorFlow and keep its C++ and Python chatter off the terminal, unless
    ``verbose``.

    ``TF_CPP_MIN_LOG_LEVEL`` must be set before the import, and even then TensorFlow 2.21 writes
    its oneDNN notice (twice) before its logging is set up, so the import itself runs with
    standard error muted. Python errors raised by the import still propagate.
    """
    if verbose:
        import tensorflow  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules:
        with _stderr_muted():
            import tensorflow  # noqa: F401
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
