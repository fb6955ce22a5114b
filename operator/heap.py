"""The C heap under the operator: fewer malloc arenas, and freed memory given back after a burst.

Python frees what a burst or a restart allocated (LIST responses, watch events, bodies queued for handlers), but
glibc's allocator keeps most of it: freed chunks between live ones stay in the process, and RSS stays at the peak for
as long as the operator runs. Two levers (docs/performance.md, "What makes these figures"):
- ``limit_arenas``: glibc gives each thread that meets contention an arena of its own (up to 8 per core), each
  keeping its own freed memory; the executor's 20 threads reconcile in bursts. Two arenas serve them as well.
- ``malloc_trim``: returns every free page to the operating system, also from the middle of the heap. The operator
  calls it once a minute; it takes milliseconds.
Other C libraries (musl) have neither; the operator then runs without."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
from collections.abc import Callable

log = logging.getLogger("plinth.heap")
TRIM_SECONDS = 60.0
ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt() parameter number, from malloc.h


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)  # the C library this process already runs on
    except OSError:
        return None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas, unless MALLOC_ARENA_MAX already does. Must run before the threads start (arenas
    are created as threads contend). Returns whether the cap is in place."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return True
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))


def malloc_trim() -> Callable[[], int] | None:
    """glibc's malloc_trim(0) for this process (returns 1 when memory was released), or None where there is none."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: int(trim(0))


async def trim_periodically(trim: Callable[[], int], seconds: float = TRIM_SECONDS) -> None:
    """Until cancelled: give freed heap back every *seconds*."""
    while True:
        await asyncio.sleep(seconds)
        trim()
