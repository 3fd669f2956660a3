"""Keep TensorFlow's and the converter's own chatter off the terminal unless --verbose.

TensorFlow logs through Python logging (`Assets written to ...`), warns through `warnings`
(tf.lite.Interpreter's deprecation) and its C++ side writes straight to file descriptor 2
(`fully_quantize: 0, inference_type: 6 ...`, the XNNPACK delegate line, oneDNN notices), which
only a descriptor-level redirect reaches. What was held back is shown if the conversion fails
with anything but a ConversionError (a one-line reason of our own), so a crash keeps its clues.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from contextlib import contextmanager

from .errors import ConversionError

NOISY_LOGGERS = ("tensorflow", "absl", "h5py", "keras")


def hush_before_import() -> None:
    """Before TensorFlow is imported: its C++ INFO lines, oneDNN notice included (WARNING and up stay)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


@contextmanager
def quiet(verbose: bool):
    if verbose:
        yield
        return
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as held, warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"tensorflow|keras|absl")
        os.dup2(held.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        except ConversionError:
            failed = False
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                held.seek(0)
                sys.stderr.write(held.read().decode("utf-8", "replace"))
