"""Freed heap goes back to the operating system (operator/heap.py); its effect on RSS is measured by the benchmark."""

from __future__ import annotations

import asyncio

import pytest
from plinth.operator import heap


def test_glibc_trim_is_found_and_callable() -> None:
    """These machines (and the operator's image) run glibc: the trim must be there, not silently missing."""
    trim = heap.malloc_trim()
    assert trim is not None
    assert trim() in (0, 1)  # 1: memory was released, 0: there was none to release


def test_arenas_are_capped_unless_the_environment_already_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert heap.limit_arenas()  # glibc's mallopt accepted it
    monkeypatch.setattr(heap, "_libc", lambda: None)  # another C library: nothing to call
    assert not heap.limit_arenas()
    assert heap.malloc_trim() is None
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert heap.limit_arenas()  # the operator's environment decides


def test_the_heap_is_trimmed_until_cancelled() -> None:
    calls: list[int] = []

    async def main() -> None:
        trimmed = asyncio.Event()

        def trim() -> int:
            calls.append(1)
            if len(calls) == 3:
                trimmed.set()
            return 1

        task = asyncio.create_task(heap.trim_periodically(trim, seconds=0.001))
        await asyncio.wait_for(trimmed.wait(), timeout=30)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()

    asyncio.run(main())
    assert len(calls) >= 3
