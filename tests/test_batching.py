"""The batcher behind the message writer, the session opener and the token resumer:
every submitter hears back exactly once, whatever its batch did."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from chatroom.batching import ENOUGH, QUIET, Batcher, Queued


class Item(Queued):
    def __init__(self, value: int) -> None:
        self.value = value


class Refused(Exception):
    pass


def test_each_item_gets_its_own_outcome_and_items_queued_meanwhile_share_a_batch():
    batches: list[list[int]] = []
    release = threading.Event()
    first_taken = threading.Event()

    def handle(batch: list[Item]) -> list[object]:
        batches.append([item.value for item in batch])
        first_taken.set()
        if len(batches) == 1:
            release.wait(5)  # hold the first batch while the rest queue up
        return [Refused(item.value) if item.value % 2 else item.value * 10 for item in batch]

    async def main() -> list[object]:
        batcher: Batcher[Item] = Batcher("test", handle, max_batch=100)
        first = batcher.submit(Item(0))
        assert await asyncio.to_thread(first_taken.wait, 5), "the first batch never ran"
        rest = [batcher.submit(Item(n)) for n in range(1, 6)]
        release.set()
        return await asyncio.wait_for(
            asyncio.gather(first, *rest, return_exceptions=True), timeout=5
        )

    outcomes = asyncio.run(main())
    assert batches == [[0], [1, 2, 3, 4, 5]]
    assert outcomes[0] == 0 and outcomes[2] == 20 and outcomes[4] == 40
    assert [type(outcomes[n]) for n in (1, 3, 5)] == [Refused] * 3
    assert outcomes[3].args == (3,)


def test_a_batch_that_raises_fails_every_item_of_it_and_the_thread_goes_on():
    calls = 0

    def handle(batch: list[Item]) -> list[object]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database gone")
        return [item.value for item in batch]

    async def main() -> None:
        batcher: Batcher[Item] = Batcher("test", handle, max_batch=10)
        with pytest.raises(RuntimeError, match="database gone"):
            await asyncio.wait_for(batcher.submit(Item(1)), timeout=5)
        assert await asyncio.wait_for(batcher.submit(Item(2)), timeout=5) == 2

    asyncio.run(main())


def test_a_submitter_that_gave_up_does_not_break_the_batch():
    release = threading.Event()

    def handle(batch: list[Item]) -> list[object]:
        release.wait(5)
        return [item.value for item in batch]

    async def main() -> None:
        batcher: Batcher[Item] = Batcher("test", handle, max_batch=10)
        impatient = batcher.submit(Item(1))
        patient = batcher.submit(Item(2))
        impatient.cancel()
        release.set()
        assert await asyncio.wait_for(patient, timeout=5) == 2
        assert impatient.cancelled()

    asyncio.run(main())


def test_batches_never_exceed_max_batch():
    sizes: list[int] = []
    release = threading.Event()

    def handle(batch: list[Item]) -> list[object]:
        sizes.append(len(batch))
        release.wait(5)
        return [None] * len(batch)

    async def main() -> None:
        batcher: Batcher[Item] = Batcher("test", handle, max_batch=4)
        futures = [batcher.submit(Item(n)) for n in range(10)]
        release.set()
        await asyncio.wait_for(asyncio.gather(*futures), timeout=5)

    asyncio.run(main())
    assert sum(sizes) == 10 and max(sizes) <= 4


def test_the_group_commit_delay_waits_for_company_only_when_there_is_some():
    """delay_s (the message writer's group commit delay): a lone item goes at once;
    items sent together wait for more to join them, until the others are quiet for a
    QUIET share of the delay; after a batch that had company a lone item waits only
    that quiet time (nobody comes), and its batch alone, the next goes at once again;
    a batch with company followed by a pause: the next goes at once."""
    delay = 0.6
    quiet = delay * QUIET
    batches: list[list[int]] = []

    def handle(batch: list[Item]) -> list[object]:
        batches.append([item.value for item in batch])
        return [item.value for item in batch]

    async def timed(*futures: asyncio.Future) -> float:
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*futures), timeout=5)
        return time.monotonic() - started

    async def main() -> dict[str, float]:
        batcher: Batcher[Item] = Batcher("test", handle, max_batch=100, delay_s=delay)
        took = {"alone": await timed(batcher.submit(Item(1)))}
        started = time.monotonic()
        pair = batcher.submit_many([Item(2), Item(3)])
        await asyncio.sleep(quiet / 2)  # a third send, a little later than the pair
        await timed(*pair, batcher.submit(Item(4)))
        took["together"] = time.monotonic() - started
        took["after_company"] = await timed(batcher.submit(Item(5)))
        took["alone_again"] = await timed(batcher.submit(Item(6)))
        await timed(*batcher.submit_many([Item(7), Item(8)]))
        await asyncio.sleep(delay * 1.5)  # a pause after a batch with company
        took["after_a_pause"] = await timed(batcher.submit(Item(9)))
        return took

    took = asyncio.run(main())
    assert batches == [[1], [2, 3, 4], [5], [6], [7, 8], [9]]
    for lone in ("alone", "alone_again", "after_a_pause"):
        assert took[lone] < quiet, took
    assert quiet * 1.5 <= took["together"] < delay, took
    assert quiet <= took["after_company"] < delay, took


def test_the_delay_ends_once_enough_items_wait():
    """Past ENOUGH items a batch's fixed cost is shared well enough: they go at once,
    however long the delay (with 64 direct messages in flight, waiting regardless cost
    11 % of their rate and saved nothing)."""
    batches: list[list[int]] = []

    def handle(batch: list[Item]) -> list[object]:
        batches.append([item.value for item in batch])
        return [None] * len(batch)

    async def main() -> float:
        started = time.monotonic()
        batcher: Batcher[Item] = Batcher("test", handle, max_batch=100, delay_s=30)
        await asyncio.wait_for(asyncio.gather(*batcher.submit_many(items(0, ENOUGH))), 5)
        # The last batch had company, so the next waits for more: until ENOUGH came.
        first = batcher.submit_many(items(ENOUGH, ENOUGH // 2))
        rest = batcher.submit_many(items(ENOUGH + ENOUGH // 2, ENOUGH - ENOUGH // 2))
        await asyncio.wait_for(asyncio.gather(*first, *rest), timeout=5)
        return time.monotonic() - started

    def items(first: int, count: int) -> list[Item]:
        return [Item(n) for n in range(first, first + count)]

    took = asyncio.run(main())
    assert batches == [list(range(ENOUGH)), list(range(ENOUGH, 2 * ENOUGH))]
    assert took < 10
