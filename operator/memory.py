"""Freed memory handed back to the operating system: glibc set up at start, trimmed after sweeps."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable

# glibc's mallopt parameter: requests this large or larger are mapped on their own.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value


def _libc() -> ctypes.CDLL | None:
    # find_library runs ldconfig: once per process is enough.
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except OSError:
        return None


def _glibc(libc: ctypes.CDLL | None, name: str) -> Callable[..., int] | None:
    """A glibc function, or None where the C library has none (musl, macOS)."""
    function: Callable[..., int] | None = getattr(libc, name, None)
    return function


_LIBC = _libc()
_TRIM = _glibc(_LIBC, "malloc_trim")
_MALLOPT = _glibc(_LIBC, "mallopt")


def fix_mmap_threshold() -> None:
    """Keep every large buffer (a page of a list, a watch's read buffer) in a mapping of its
    own, given back whole when freed. glibc raises the threshold to the largest mapped block
    freed so far, after which such buffers come from the heap and fragment it: a heap that
    only grows, in steps, with each burst of large responses."""
    if _MALLOPT is not None:
        _MALLOPT(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def give_back() -> None:
    """Collect cycles, then let glibc return free pages of its heap.

    A sweep reads every Service and claim in pages: glibc keeps the pages it freed, and each
    sweep's high-water mark lands a little higher than the last, which an hour-long soak
    showed as RSS climbing in steps at every sweep (bench/README.md § Soak).
    """
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)
