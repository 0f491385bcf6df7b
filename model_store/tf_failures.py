"""TensorFlow failures made into one-line ``ConversionError`` messages.

TensorFlow reports problems with long, multi-line messages (op tracebacks, hints about V1/V2
checkpoints). The tools that restore, freeze, convert and inspect models show one clear line
instead, and keep the original exception as ``__cause__`` for the log.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from .errors import ConversionError, ModelStoreError

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
