"""Run a coroutine on uvloop where it is installed (not on Windows), else on asyncio's
own loop: the edge, the services and the load generator all start this way.

Why uvloop: a message crosses each process's loop several times (its receive, the
group commit's hand-back, the reply, the event), and the standard loop's Python-level
work per crossing was ~4 % of social's CPU per message at 1,000 messages/s
(docs/benchmarks.md, "Server CPU per delivery against ngIRCd, at the same load").
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
