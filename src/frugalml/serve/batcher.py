"""Dynamic batching by a token budget: ``pack`` (a pure function) and ``Batcher`` (asyncio).

Requests put their texts in a queue; the batcher waits at most ``max_wait_s`` after the oldest
queued text arrived (or less, once the queue holds a full budget), then ``pack`` picks the next
batch: the oldest text (so nothing starves) plus the queued texts closest to it in length, as
long as the *padded* batch (texts x longest text, in tokens) fits ``max_batch_tokens``. Padding
is what the model pays for, so the budget counts it. A text longer than the whole budget runs
alone. The batch runs on one worker thread that owns the model, so the event loop never
blocks on it; while it runs, new texts queue up and form the next batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np


class Sized(Protocol):
    tokens: int


T = TypeVar("T", bound=Sized)


def padded_tokens(items: Sequence[Sized]) -> int:
    """Tokens a batch costs once padded to its longest text: ``len(items) x max(tokens)``."""
    return len(items) * max((it.tokens for it in items), default=0)


def pack(queue: Sequence[T], max_batch_tokens: int) -> tuple[list[T], list[T]]:
    """``(batch, rest)``: the next batch from ``queue`` (oldest first) and what stays queued.

    The batch always holds ``queue[0]``; the others are added by closeness in length to it
    (ties: oldest first) while ``padded_tokens(batch) <= max_batch_tokens``. The batch comes
    back sorted by length, longest first; ``rest`` keeps the queue's order.
    """
    if not queue:
        return [], []
    oldest = queue[0]
    chosen = {0}
    longest = oldest.tokens
    others = sorted(range(1, len(queue)), key=lambda i: (abs(queue[i].tokens - oldest.tokens), i))
    for i in others:
        new_longest = max(longest, queue[i].tokens)
        if (len(chosen) + 1) * new_longest <= max_batch_tokens:
            chosen.add(i)
            longest = new_longest
    batch = sorted((queue[i] for i in chosen), key=lambda it: -it.tokens)
    rest = [it for i, it in enumerate(queue) if i not in chosen]
    return batch, rest


@dataclass(eq=False)
class Item:
    """One text waiting for its embedding. ``arrived_s`` is ``time.perf_counter()``."""

    text: str
    tokens: int
    arrived_s: float
    future: asyncio.Future[np.ndarray] = field(repr=False)


@dataclass(frozen=True)
class BatchDone:
    """What one batch did, for metrics: sizes, padded tokens, seconds queued and busy."""

    size: int
    tokens: int
    padded_tokens: int
    queue_wait_s: tuple[float, ...]
    busy_s: float


class Batcher:
    """Collects texts from many requests and runs them in token-budget batches.

    ``run_batch(texts) -> (len(texts), dim) array`` is called on a single worker thread (the
    model's owner). ``start()`` inside a running event loop; ``submit`` from request handlers;
    ``stop()`` after the server stopped taking requests (what is queued still runs).
    """

    def __init__(
        self,
        run_batch: Callable[[list[str]], np.ndarray],
        *,
        max_batch_tokens: int,
        max_wait_s: float,
        on_batch: Callable[[BatchDone], None] | None = None,
    ) -> None:
        if max_batch_tokens < 1:
            raise ValueError("max_batch_tokens must be at least 1")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")
        self._run_batch = run_batch
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._queue: list[Item] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frugal-model")
        self._stopping = False
        self._draining = False

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="frugal-batcher")

    def drain(self) -> None:
        """Stop waiting for company: run what is queued (and what still comes) at once.

        Called when the server starts shutting down, so in-flight requests finish without
        waiting out ``max_wait_s``.
        """
        self._draining = True
        if self._wake:
            self._wake.set()

    async def stop(self) -> None:
        """Run what is queued, then end the loop and the worker thread."""
        self._stopping = True
        if self._wake:
            self._wake.set()
        if self._task:
            await self._task
        self._executor.shutdown(wait=True)

    async def submit(self, texts: Sequence[str], tokens: Sequence[int]) -> list[np.ndarray]:
        """Queue ``texts`` (with their token counts); their output rows, in order."""
        if self._wake is None or self._stopping:
            raise RuntimeError("the batcher is not running")
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        items = [
            Item(t, max(1, int(n)), now, loop.create_future())
            for t, n in zip(texts, tokens, strict=True)
        ]
        self._queue.extend(items)
        self._wake.set()
        return list(await asyncio.gather(*(it.future for it in items)))

    def _work(self, texts: list[str]) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        rows = self._run_batch(texts)
        return rows, time.perf_counter() - t0

    async def _next_batch(self) -> list[Item]:
        assert self._wake is not None
        while not self._queue:
            if self._stopping:
                return []
            self._wake.clear()
            await self._wake.wait()
        deadline = self._queue[0].arrived_s + self.max_wait_s
        while (
            not (self._stopping or self._draining)
            and sum(it.tokens for it in self._queue) < self.max_batch_tokens
        ):
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                break
        batch, self._queue = pack(self._queue, self.max_batch_tokens)
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                return
            started = time.perf_counter()
            try:
                rows, busy_s = await loop.run_in_executor(
                    self._executor, self._work, [it.text for it in batch]
                )
            except Exception as e:  # the model failed: every request in the batch gets it
                for it in batch:
                    if not it.future.done():
                        it.future.set_exception(e)
                continue
            for it, row in zip(batch, rows, strict=True):
                if not it.future.done():  # a client that went away cancelled its future
                    it.future.set_result(row)
            if self._on_batch:
                self._on_batch(
                    BatchDone(
                        size=len(batch),
                        tokens=sum(it.tokens for it in batch),
                        padded_tokens=padded_tokens(batch),
                        queue_wait_s=tuple(started - it.arrived_s for it in batch),
                        busy_s=busy_s,
                    )
                )


__all__: list[str] = ["BatchDone", "Batcher", "Item", "pack", "padded_tokens"]
