"""Where avatars are decoded: at most N at once per media process, one at a time per user.

Decoding is what costs the media service memory: a picture at the pixel limit holds up
to ~16 bytes per pixel while it is decoded (WebP, the worst; ~260 MB at 4096 x 4096), so
the number of decodes at once is what bounds the process: about its idle size plus
N x that. They run on a thread pool of their own; a request waiting for one holds none
of the runtime's worker threads, so avatar.get and everything else go on meanwhile.

One user gets one decode at a time, in progress or queued: another upload from them
meanwhile is refused at once with rate_limited (only the last picture would count
anyway), so a pipelined flood from one user never fills the queue ahead of other users.
When `queue_max` other users already wait, a new upload gets service_unavailable.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from loguru import logger

from chatroom import metrics
from chatroom.errors import ServiceError, rate_limited
from chatroom.protocol import ErrorCode
from chatroom.service import DeadlinePassed

T = TypeVar("T")

# When to try again after "your previous upload is still being processed": about one
# worst-case decode.
RETRY_AFTER_MS = 1000
# Uploads of other users waiting for a decode slot, per slot: a worst-case decode takes
# ~0.3 s, so those at the back of the queue still finish within the request timeout.
QUEUE_PER_WORKER = 8
# chatroom_avatar_decodes_total{outcome}: decoded; refused by the decoder (not an image,
# over the pixel limit); failed (a bug); expired in the queue; turned away because the
# user already had one in progress, or the queue was full.
DECODE_OUTCOMES = ("ok", "refused", "failed", "expired", "user_busy", "pool_busy")


class DecodePool:
    def __init__(self, workers: int, queue_max: int | None = None) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="decode")
        self._users: set[int] = set()  # with a decode in progress or queued
        self._max_users = workers + (QUEUE_PER_WORKER * workers if queue_max is None else queue_max)
        decodes = metrics.get().avatar_decodes
        self._outcomes = {outcome: decodes.labels(outcome) for outcome in DECODE_OUTCOMES}

    async def run(self, user_id: int, deadline_ms: int | None, decode: Callable[[], T]) -> T:
        if user_id in self._users:
            self._outcomes["user_busy"].inc()
            raise rate_limited(
                "your previous avatar upload is still being processed", RETRY_AFTER_MS
            )
        if len(self._users) >= self._max_users:
            self._outcomes["pool_busy"].inc()
            raise ServiceError(
                ErrorCode.SERVICE_UNAVAILABLE, "the media service is busy; try again shortly"
            )
        self._users.add(user_id)
        outcome = "failed"
        try:
            # copy_context carries the request's log context into the decode thread.
            call = functools.partial(
                contextvars.copy_context().run, _unless_expired, deadline_ms, decode
            )
            result = await asyncio.get_running_loop().run_in_executor(self._pool, call)
            outcome = "ok"
            return result
        except DeadlinePassed:
            outcome = "expired"
            raise
        except ServiceError:
            outcome = "refused"  # not a picture, too many pixels, ...
            raise
        finally:
            self._users.discard(user_id)
            self._outcomes[outcome].inc()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _unless_expired(deadline_ms: int | None, decode: Callable[[], T]) -> T:
    # A queued upload whose edge has stopped waiting (and answered service_unavailable)
    # is not decoded: the user was told it failed.
    if deadline_ms is not None and deadline_ms < time.time() * 1000:
        raise DeadlinePassed
    return decode()


# glibc's mallopt parameter: allocations at least this large get their own mmap.
M_MMAP_THRESHOLD = -3


def return_large_blocks_promptly(threshold_bytes: int = 1024 * 1024) -> None:
    """Make glibc give decoded pictures back to the system as soon as they are freed.

    By default glibc raises its mmap threshold (up to 32 MiB) after the first large free,
    so later pictures come from the heaps of the threads that decoded them, and those are
    not shrunk while anything above the freed space is still alive: after bursts of
    worst-case uploads media stayed 55-65 MB above idle with one decode thread (1.7 GB
    with eight; docs/security.md, Media memory). A fixed threshold keeps every block of
    1 MiB or more (Pillow's image blocks, the bytes of a decoded frame) in its own
    mapping, unmapped on free. The cost is an mmap/munmap pair and fresh zeroed pages per
    large block, too little to measure next to decoding the pixels. Not glibc (musl,
    macOS): nothing to do."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError, TypeError):
        return
    if not mallopt(M_MMAP_THRESHOLD, threshold_bytes):
        logger.warning("mallopt(M_MMAP_THRESHOLD) refused; freed pictures may stay resident")
