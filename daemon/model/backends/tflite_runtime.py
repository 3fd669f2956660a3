"""Backend: tflite_runtime 2.14, the last release (Python <= 3.11, needs numpy < 2)."""
from . import Backend


def load() -> Backend:
    # Under numpy 2 this import fails with "compiled using NumPy 1.x"; that surfaces as the
    # ImportError (or its cause) select_backend reports.
    try:
        from tflite_runtime.interpreter import Interpreter, load_delegate
    except (ImportError, AttributeError) as error:
        raise ImportError(str(error)) from error
    return Backend("tflite_runtime", Interpreter, load_delegate)
