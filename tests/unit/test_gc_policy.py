"""The garbage-collection policy of ``passerelle run``: long-lived objects out of full
collections, and frozen cycles that became garbage collected at the next thaw."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway.gc_policy import GcPolicy


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_freeze_moves_survivors_out_of_full_collections() -> None:
    kept, _ = cycle()
    frozen = GcPolicy().freeze()
    assert frozen > 0
    assert not any(obj is kept for obj in gc.get_objects())  # a full collection skips it now
    gc.unfreeze()
    assert any(obj is kept for obj in gc.get_objects())


def test_a_frozen_cycle_that_became_garbage_is_collected_at_the_thaw() -> None:
    policy = GcPolicy()
    node, ref = cycle()
    policy.freeze()
    del node
    gc.collect()
    assert ref() is not None  # frozen: a full collection does not see it
    assert policy.thaw() >= 2
    assert ref() is None
    assert gc.get_freeze_count() > 0  # the survivors are frozen again


def test_fresh_garbage_is_not_frozen() -> None:
    node, ref = cycle()
    del node  # garbage already, not yet collected
    GcPolicy().freeze()
    assert ref() is None


async def test_run_freezes_on_schedule_thaws_and_puts_everything_back_when_cancelled() -> None:
    policy = GcPolicy(freeze_every_s=0.01, thaw_every_s=0.03)
    node, ref = cycle()
    task = asyncio.ensure_future(policy.run())
    async with asyncio.timeout(5):  # a loaded machine may take longer than the schedule
        while gc.get_freeze_count() == 0:
            await asyncio.sleep(0.005)
    del node
    gc.collect()
    async with asyncio.timeout(5):  # frozen, so only a thaw collects it
        while ref() is not None:
            await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gc.get_freeze_count() == 0
