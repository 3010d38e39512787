"""CPU-bound work in a child process at a lower scheduling priority.

A serving process runs one event loop on one core: a job that computes for seconds there
(a backtest over a million referrals) makes every checkout call behind it wait. A lane
hands such jobs to a child process of its own, started on first use, whose priority
(`nice`) lets the serving processes go first when the cores are busy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _lower_priority(niceness: int) -> None:
    os.nice(niceness)


class ProcessLane:
    """`await lane.run(fn, *args)`: `fn(*args)` in the lane's child process (a module-level
    function with picklable arguments and result). `processes=0` runs it in this process,
    on a thread, for deployments that want no children."""

    def __init__(self, processes: int = 1, *, niceness: int = 10) -> None:
        self.processes = processes
        self.niceness = niceness
        self._executor: concurrent.futures.Executor | None = None

    def _ensure(self) -> concurrent.futures.Executor:
        if self._executor is None:
            if self.processes > 0:
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=self.processes,
                    # spawn, not fork: the serving process holds an event loop, sockets and
                    # a pool that a forked child must not share.
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_lower_priority,
                    initargs=(self.niceness,),
                )
            else:
                self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        return self._executor

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._ensure(), fn, *args)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
