"""The export's gate (export/gate.py): its burst is there from the start, and then it paces.

No clock is read here: `move_on_after(0)` cancels at the first await, so an acquire that returns
without waiting passes and one that has to wait for its token is cut off.
"""

from __future__ import annotations

import anyio
import pytest

from stripe_identity_mcp.export.gate import PriorityGate

pytestmark = pytest.mark.anyio


async def test_a_new_gate_lets_its_burst_through_at_once_and_then_waits() -> None:
    gate = PriorityGate(rate=2.0, burst=3.0)  # a token every 0.5 s: the fourth cannot be due yet
    with anyio.move_on_after(0) as scope:
        for _ in range(3):
            await gate.acquire()
    assert not scope.cancelled_caught, "a fresh gate made one of its first `burst` requests wait"
    with anyio.move_on_after(0) as scope:
        await gate.acquire()
    assert scope.cancelled_caught, "the request after the burst left without waiting for its token"
    assert gate.waiting == 0  # the cancelled request left the queue


async def test_the_most_urgent_waiting_request_leaves_first() -> None:
    gate = PriorityGate(rate=50.0, burst=1.0)
    await gate.acquire()  # the burst is spent: the next ones queue
    order: list[str] = []

    async def one(name: str, priority: float) -> None:
        await gate.acquire(priority)
        order.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "low", 0.0)
            tg.start_soon(one, "also low", 0.0)
            tg.start_soon(one, "import", 2.0)
    assert order == ["import", "low", "also low"]
