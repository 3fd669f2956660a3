"""The 32-bit guard: LiteRT and tflite-runtime publish no wheels for 32-bit ARM (armv7l/armhf),
so on a 32-bit userland nothing the daemon needs can be installed. Say so in one line, early,
instead of failing later on an import."""
from __future__ import annotations

import platform
import struct

THIRTY_TWO_BIT_MACHINES = ("armv6l", "armv7l", "armv8l", "armhf", "arm")
MESSAGE = ("statecast needs a 64-bit userland (64-bit Raspberry Pi OS or another aarch64 Linux): "
           "no LiteRT or tflite-runtime wheels exist for 32-bit ARM; check with `getconf LONG_BIT` "
           "(must print 64) and `uname -m` (aarch64)")


def userland_problem(machine: str, pointer_bits: int) -> str | None:
    """None on a supported userland, else the one-line reason.

    machine: platform.machine() (uname -m; a 64-bit kernel under a 32-bit userland still reports
    aarch64, hence the pointer width too); pointer_bits: the running Python's pointer width."""
    if pointer_bits < 64 or machine.lower() in THIRTY_TWO_BIT_MACHINES:
        return f"{MESSAGE} (this is {machine}, {pointer_bits}-bit)"
    return None


def current_userland_problem() -> str | None:
    return userland_problem(platform.machine(), struct.calcsize("P") * 8)
