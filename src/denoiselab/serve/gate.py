"""Admission for heavy requests: at most ``slots`` compute at once, a few more wait briefly,
the rest are told at once to come back (503 with Retry-After).

A request waits for its slot on the event loop, not in a worker thread, at most ``wait_s`` and
behind at most ``max_waiting`` others: a burst of heavy requests then holds no thread while it
waits, so light requests (``/api/health``) are still answered at once.  Once admitted, a request
computes and builds its reply in a worker thread while holding the slot, so the memory of reply
building is bounded by the slots too.  BENCHMARKS.md ("The playground server under load")
measures the server under such a burst.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sys
import threading
import time
from contextlib import asynccontextmanager

from fastapi import HTTPException

POLL_S = 0.01  # how often a waiting request looks for a free slot


def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, say): nothing to trim
        return None


_TRIM = _malloc_trim()


def give_memory_back() -> None:
    """Return the freed heap of finished requests to the system (glibc's malloc_trim).

    A heavy reply leaves thousands of small freed blocks in the worker threads' malloc arenas,
    and glibc keeps them until trimmed: without this the server's memory stays well above idle
    after a burst (BENCHMARKS.md, "The playground server under load").
    A no-op where malloc_trim does not exist.
    """
    if _TRIM is not None:
        _TRIM(0)


class Gate:
    def __init__(self, slots: int, max_waiting: int, wait_s: float, retry_after_s: int = 1):
        self.slots, self.max_waiting, self.wait_s, self.retry_after_s = slots, max_waiting, wait_s, retry_after_s
        self._busy = 0
        self._waiting = 0
        self._lock = threading.Lock()  # the gate is shared by the event loop and test threads

    def _try_take(self) -> bool:
        with self._lock:
            if self._busy < self.slots:
                self._busy += 1
                return True
            return False

    def _release(self) -> None:
        with self._lock:
            self._busy -= 1

    def _busy_error(self) -> HTTPException:
        return HTTPException(
            503,
            f"busy: {self.slots} sampling requests are computing and {self.max_waiting} more are waiting; try again in {self.retry_after_s} s",
            headers={"Retry-After": str(self.retry_after_s)},
        )

    @property
    def in_use(self) -> int:
        return self._busy

    @asynccontextmanager
    async def slot(self):
        """Hold one slot for the body of the ``async with``; 503 when none frees up in time."""
        if not self._try_take():
            with self._lock:
                if self._waiting >= self.max_waiting:
                    raise self._busy_error()
                self._waiting += 1
            try:
                deadline = time.monotonic() + self.wait_s
                while not self._try_take():
                    if time.monotonic() >= deadline:
                        raise self._busy_error()
                    await asyncio.sleep(POLL_S)
            finally:
                with self._lock:
                    self._waiting -= 1
        try:
            yield
        finally:
            self._release()
