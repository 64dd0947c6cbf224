"""The proxy process's heap, through glibc's malloc (ctypes; on another libc these are no-ops).

Relayed bytes come and go in buffers of up to 256 KiB, which are kept on the heap for speed
(``keep_stream_buffers_on_the_heap``). Held request bodies are freed there too, but glibc only
gives heap memory back to the system when its top is free: bodies freed under a burst of
connections left the process at ~800 MB after the burst ended. ``MemoryReturn`` calls
``malloc_trim(0)`` (which also releases free pages inside the heap) a moment after enough
has been freed.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

__all__ = ["MemoryReturn", "keep_stream_buffers_on_the_heap"]

M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
#: Freed bytes worth a trim, and how long to wait for more to be freed before trimming
#: (a burst of closing connections gives memory back in one trim, not in one each).
TRIM_AFTER = 4 * 1024 * 1024
TRIM_DELAY = 0.5


def _libc_function(name: str) -> Callable[..., int] | None:
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):  # not glibc
        return None
    return function


def keep_stream_buffers_on_the_heap() -> None:
    """Every socket read allocates a fresh bytes object of up to 256 KiB, which glibc serves
    with mmap and gives back with munmap (a page fault per 4 KiB, twice per relayed byte).
    Raising the mmap and trim thresholds keeps those buffers on the heap and reuses them;
    measured with bench/proxy.py, RSS stays well under the 64 MiB goal."""
    mallopt = _libc_function("mallopt")
    if mallopt is not None:  # otherwise only slower
        mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024)
        mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024)


class MemoryReturn:
    """Told how many bytes were freed (``freed``); trims the heap ``TRIM_DELAY`` after at
    least ``TRIM_AFTER`` were."""

    def __init__(self) -> None:
        self.freed = 0
        self.trims = 0
        self._trim = _libc_function("malloc_trim")
        self._pending: asyncio.TimerHandle | None = None

    def freed_bytes(self, size: int) -> None:
        self.freed += size
        if self.freed >= TRIM_AFTER and self._pending is None and self._trim is not None:
            self._pending = asyncio.get_running_loop().call_later(TRIM_DELAY, self._run)

    def _run(self) -> None:
        self._pending = None
        self.freed = 0
        self.trims += 1
        if self._trim is not None:
            self._trim(0)
