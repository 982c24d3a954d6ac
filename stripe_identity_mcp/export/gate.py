"""A rate gate that lets the most urgent request go first (the export's own pacing).

The client's buckets are first come, first served, which is right for independent tool calls. An
export is one job whose length is set by its longest chain: a bulk import puts thousands of
customers into one `created` second, which only one cursor can page, one page per round trip. If
that chain's requests queue behind every other window's, each of its pages waits for the queue on
top of the round trip and the export ends long after the rest. Here, at the same rate, waiting
requests leave in priority order (then arrival order), so a chain never waits behind splittable work.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time

import anyio


class PriorityGate:
    """`rate` requests/s, up to `burst` at once after idling; `acquire(priority)`: highest first."""

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        self.interval = 1.0 / rate
        self.burst = max(1.0, burst)
        # Full at the start, as after idling: the first `burst` requests leave at once, as the client's
        # buckets (which start full) let them. Started empty, the scan began a burst behind its pace
        # and never caught up: each request left that much later (0.16 s of an 8 s export at 25/s).
        self._next_at = -math.inf
        self._heap: list[tuple[float, int]] = []
        self._order = itertools.count()
        self._changed = anyio.Event()

    @property
    def waiting(self) -> int:
        """Requests queued for their turn (0: the next one would leave at once or soon)."""
        return len(self._heap)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def acquire(self, priority: float = 0.0) -> None:
        entry = (-priority, next(self._order))
        heapq.heappush(self._heap, entry)
        try:
            while True:
                now = time.monotonic()
                # Token-bucket semantics: after idling, up to `burst` may leave at once.
                ready_at = max(self._next_at, now - (self.burst - 1) * self.interval)
                if self._heap[0] == entry and now >= ready_at:
                    heapq.heappop(self._heap)
                    self._next_at = ready_at + self.interval
                    self._notify()
                    return
                changed = self._changed
                # The head waits for its time; the others for the head to leave (or a cancellation).
                wait = ready_at - now if self._heap[0] == entry else 3600.0
                with anyio.move_on_after(wait):
                    await changed.wait()
        except BaseException:
            if entry in self._heap:  # cancelled while waiting: leave the queue
                self._heap.remove(entry)
                heapq.heapify(self._heap)
                self._notify()
            raise
