"""Process-wide memory allocator settings for long streaming runs."""

from __future__ import annotations

import ctypes
import ctypes.util

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_block_buffers() -> bool:
    """Let glibc keep freed block-sized buffers instead of returning them to the kernel.

    A replay allocates and frees the same few block-sized arrays thousands of times; by default
    glibc hands that memory back and the kernel must fault it in again, which costs about a
    quarter of the run time. Peak memory does not change. Returns False where this is not glibc.
    """
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, 64 * 1024 * 1024)
    ok_trim = mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)
    return bool(ok_mmap and ok_trim)
