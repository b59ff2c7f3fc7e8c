"""Giving freed host memory back to the operating system.

glibc keeps freed heap memory for reuse instead of returning it, so after the model is converted
(float8 base weights, dtype casts) the process's RSS stays at its loading size even though the old
tensors are gone: measured on SD 1.5 with --fp8_base, 2.19 GiB before and 1.58 GiB after
`malloc_trim`. Other platforms and C libraries: nothing to do (or nothing we can do), so no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys


def return_freed_memory_to_os() -> None:
    if not sys.platform.startswith("linux"):
        return
    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return
    trim(0)
