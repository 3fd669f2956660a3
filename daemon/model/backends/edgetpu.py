"""Edge TPU (Coral) delegate: libedgetpu.so.1, device "usb", "pci" or a specific ":N"."""
from __future__ import annotations

from . import Backend, BackendError

EDGETPU_LIBRARY = "libedgetpu.so.1"


def load_edgetpu_delegate(backend: Backend, device: str | None = None, library: str = EDGETPU_LIBRARY):
    if backend.load_delegate is None:
        raise BackendError(f"runtime {backend.name} cannot load delegates")
    options = {"device": device} if device else {}
    try:
        return backend.load_delegate(library, options)
    except (ValueError, OSError, RuntimeError) as error:
        raise BackendError(f"cannot load Edge TPU delegate {library} (device {device or 'any'}): "
                           f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
