"""One thread that handles, as one batch, everything queued while it was busy.

Used on the hot paths: storing messages and opening sessions at login (social's
writer.py and sessions.py) and checking resume tokens (auth's resume.py). Callers on
the event loop submit an item and await its future; the batch size grows with the load
by itself (with no load a batch is one item and nothing waits), and no worker thread is
held while an item waits.

A batcher may also be given a delay (`delay_s`, the message writer's group commit
delay): while items stream in with company (the last batch held more than one item and
this one's first item came within `delay_s` of it, or two are queued already), the
first item of a batch waits for others to join it: up to `delay_s` from its arrival,
but no longer than a quarter of that after the latest arrival (QUIET), and not at all
once ENOUGH are queued. The idea of MySQL's binlog_group_commit_sync_delay and
PostgreSQL's commit_delay: a batch's fixed cost (round trips, a transaction, the
driver's parsing of each statement's result) is shared by more items. Why the limits:
a message after a pause, or one whose batch's first item has waited the delay already
(the writer was busy), goes at once; a few senders each waiting for their answer all
come back within a moment, and then nobody else is coming (QUIET); past ENOUGH the
fixed cost is shared well enough, and more waiting only adds latency (with 64 direct
messages in flight, a delay that waited regardless cost 11 % of their rate and saved no
CPU). At 1,000 messages/s into a 100-member room the delay cut the server CPU per
message by 5-17 % at 2-6 ms, in social and the database, and at 8 ms in the edge and the
bus too, as bigger batches make bigger bursts of events (docs/benchmarks.md, "Server
CPU per delivery against ngIRCd, at the same load").

The futures are the event loop's own, settled from the loop: the thread hands a whole
batch's outcomes over with one `call_soon_threadsafe`. (A concurrent future per item,
wrapped for the loop, cost a lock, a chained callback and a wake-up write per item:
at 4,000 messages/s that was a tenth of the social service's time.)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from loguru import logger

from chatroom import metrics

# Items in the queue that end the wait for company (see above): a batch's fixed cost is
# then an eighth or less of each item's share.
ENOUGH = 8
# How long after the latest item (as a share of the delay) the wait for company ends.
QUIET = 0.25

Item = TypeVar("Item", bound="Queued")


class Queued:
    """Base of a batched item: carries the future its submitter awaits (set by
    Batcher.submit, on the submitting event loop)."""

    result: asyncio.Future


class Batcher(Generic[Item]):
    def __init__(
        self,
        name: str,
        handle: Callable[[list[Item]], list[Any]],
        max_batch: int,
        warm_up: Callable[[], None] | None = None,
        done: Any = None,
        delay_s: float = 0.0,
    ) -> None:
        """`handle` returns an outcome per item, in order: an exception instance
        becomes that item's error, anything else its result; if `handle` raises, every
        item of the batch gets that exception. `warm_up`
        runs first in the thread (e.g. opening its database connection), so the first
        item after start does not wait for it. `done`, a metric (e.g. messages stored),
        counts the items that did not fail. `delay_s`: how long a batch's first item may
        wait for company (above)."""
        self.name = name
        self._handle = handle
        self._warm_up = warm_up
        self._max_batch = max_batch
        self._enough = min(ENOUGH, max_batch)  # queued items that end a wait for company
        self._queue: deque[Item] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._sizes = metrics.get().write_batch_size.labels(name)
        self._done = done
        self._delay_s = delay_s
        self._first_at = 0.0  # when the queue's first item came (0: it has waited)
        self._last_at = 0.0  # when the latest item came
        self._taken_at = 0.0  # when the thread took the last batch
        self._company = False  # the last batch held more than one item

    def start(self) -> None:
        with self._ready:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def submit(self, item: Item) -> asyncio.Future:
        """Queue the item; call from a running event loop, and await the future there."""
        return self.submit_many([item])[0]

    def submit_many(self, items: Sequence[Item]) -> list[asyncio.Future]:
        """Queue the items at once (the thread takes them in one batch, up to
        max_batch); their futures, in order."""
        self.start()
        loop = asyncio.get_running_loop()
        for item in items:
            item.result = loop.create_future()
        with self._ready:
            was_empty = not self._queue
            self._last_at = time.monotonic()
            if was_empty:
                self._first_at = self._last_at
            self._queue.extend(items)
            # The thread waits for the first item, or for ENOUGH of them (a wake-up per
            # item would cost the thread a switch each).
            if was_empty or len(self._queue) >= self._enough:
                self._ready.notify()
        return [item.result for item in items]

    def _run(self) -> None:
        if self._warm_up is not None:
            try:
                self._warm_up()
            except Exception as exc:  # noqa: BLE001 - the first batch will try again
                logger.warning("{} could not warm up: {}", self.name, exc)
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                until = self._company_until()
                while len(self._queue) < self._enough:
                    # Submitters queue meanwhile, joining this batch; the thread is not
                    # woken for each, so it looks again when the quiet time would end.
                    quiet_end = self._last_at + self._delay_s * QUIET
                    left = min(until, quiet_end) - time.monotonic()
                    if left <= 0:
                        break
                    self._ready.wait(left)
                take = min(len(self._queue), self._max_batch)
                batch = [self._queue.popleft() for _ in range(take)]
                self._company = take > 1
                self._taken_at = time.monotonic()
                self._first_at = 0.0  # what is left has waited for this batch already
            try:
                outcomes = self._handle(batch)
            except Exception as exc:  # noqa: BLE001 - every submitter must hear back
                outcomes = [exc] * len(batch)
            self._sizes.observe(take)
            if self._done is not None:
                self._done.inc(sum(not isinstance(o, BaseException) for o in outcomes))
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Item, Any]]] = {}
            for item, outcome in zip(batch, outcomes, strict=True):
                by_loop.setdefault(item.result.get_loop(), []).append((item, outcome))
            for loop, settled in by_loop.items():
                # A closed loop (RuntimeError) has nobody waiting any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, settled)

    def _company_until(self) -> float:
        """Until when (time.monotonic) the queue's first item waits for others to join
        its batch; 0: it does not (called with the lock held)."""
        if not self._delay_s or not self._first_at:
            return 0.0
        streaming = self._company and self._first_at - self._taken_at < self._delay_s
        if not streaming and len(self._queue) < 2:
            return 0.0
        return self._first_at + self._delay_s


def _settle(settled: Sequence[tuple[Queued, Any]]) -> None:
    for item, outcome in settled:
        if item.result.done():  # the submitter gave up (cancelled)
            continue
        if isinstance(outcome, BaseException):
            item.result.set_exception(outcome)
        else:
            item.result.set_result(outcome)
