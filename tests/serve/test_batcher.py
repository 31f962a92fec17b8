"""The token-budget batcher: ``pack`` (pure) and ``Batcher`` (asyncio + a worker thread)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import numpy as np
import pytest

from frugalml.serve.batcher import BatchDone, Batcher, pack, padded_tokens


@dataclass(eq=False)
class It:
    name: str
    tokens: int


def q(*tokens: int) -> list[It]:
    return [It(f"t{i}", n) for i, n in enumerate(tokens)]


# (queue token counts, budget, names expected in the batch (longest first), names left in order)
PACK_CASES = [
    ((10, 10, 10), 30, ["t0", "t1", "t2"], []),
    ((10, 10, 10), 20, ["t0", "t1"], ["t2"]),
    # padding counts: 3 x 50 = 150 > 100, so the 50-token text waits; the 9 joins instead
    ((10, 50, 9), 100, ["t0", "t2"], ["t1"]),
    # the oldest is always in, even alone over the budget
    ((500, 5, 5), 100, ["t0"], ["t1", "t2"]),
    # budget 1 = batch size 1
    ((3, 3, 3), 1, ["t0"], ["t1", "t2"]),
    # closest in length to the oldest first: 12 and 8 before 30
    ((10, 30, 12, 8), 40, ["t2", "t0", "t3"], ["t1"]),
    ((), 10, [], []),
]


@pytest.mark.parametrize(("tokens", "budget", "batch", "rest"), PACK_CASES)
def test_pack_by_padded_token_budget(
    tokens: tuple[int, ...], budget: int, batch: list[str], rest: list[str]
) -> None:
    items = q(*tokens)
    got, left = pack(items, budget)
    assert [it.name for it in got] == batch
    assert [it.name for it in left] == rest
    assert sorted(it.name for it in got + left) == sorted(it.name for it in items)
    if len(got) > 1:
        assert padded_tokens(got) <= budget
    assert [it.tokens for it in got] == sorted((it.tokens for it in got), reverse=True)


def test_padded_tokens_is_count_times_longest() -> None:
    assert padded_tokens(q(3, 7, 5)) == 21
    assert padded_tokens([]) == 0


def _rows(texts: list[str]) -> np.ndarray:
    """A stand-in model: row = (length of the text, its number), so mix-ups show."""
    return np.array([[len(t), float(t.split("-")[1])] for t in texts], dtype=np.float32)


def test_batcher_returns_each_request_its_own_rows_and_packs_them() -> None:
    batches: list[list[str]] = []
    threads: set[str] = set()
    done: list[BatchDone] = []

    def run_batch(texts: list[str]) -> np.ndarray:
        batches.append(list(texts))
        threads.add(threading.current_thread().name)
        return _rows(texts)

    async def main() -> list[list[np.ndarray]]:
        # a long window and a budget the 6 texts fill (6 x 8 padded <= 48): one batch
        b = Batcher(run_batch, max_batch_tokens=48, max_wait_s=60.0, on_batch=done.append)
        b.start()
        reqs = [([f"a-{i}", f"bbbb-{i + 100}"], [8, 8]) for i in range(3)]
        out = await asyncio.wait_for(asyncio.gather(*(b.submit(t, n) for t, n in reqs)), timeout=60)
        await b.stop()
        return out

    results = asyncio.run(main())
    for i, rows in enumerate(results):
        assert [r.tolist() for r in rows] == [[3.0, float(i)], [8.0, float(i + 100)]]
    assert len(batches) == 1 and len(batches[0]) == 6
    assert threads == {t for t in threads if t.startswith("frugal-model")}
    assert threading.current_thread().name not in threads  # the model ran off the loop
    assert done[0].size == 6 and done[0].padded_tokens == 48 and len(done[0].queue_wait_s) == 6


def test_batcher_splits_by_budget_and_runs_a_lone_text_after_the_wait() -> None:
    batches: list[list[str]] = []

    def run_batch(texts: list[str]) -> np.ndarray:
        batches.append(list(texts))
        return _rows(texts)

    async def main() -> None:
        b = Batcher(run_batch, max_batch_tokens=20, max_wait_s=0.05)
        b.start()
        # 4 texts of 10 tokens, budget 20: two batches of two
        await asyncio.wait_for(
            asyncio.gather(*(b.submit([f"x-{i}"], [10]) for i in range(4))), timeout=60
        )
        # one text, budget never reached: it runs once the oldest has waited max_wait_s
        await asyncio.wait_for(b.submit(["y-9"], [1]), timeout=60)
        await b.stop()

    asyncio.run(main())
    assert [len(x) for x in batches] == [2, 2, 1]
    assert batches[-1] == ["y-9"]


def test_batcher_passes_a_model_error_to_every_request_and_keeps_running() -> None:
    calls = {"n": 0}

    def run_batch(texts: list[str]) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return _rows(texts)

    async def main() -> list[np.ndarray]:
        b = Batcher(run_batch, max_batch_tokens=100, max_wait_s=0.0)
        b.start()
        with pytest.raises(RuntimeError, match="boom"):
            await asyncio.wait_for(b.submit(["a-1"], [2]), timeout=60)
        rows = await asyncio.wait_for(b.submit(["a-2"], [2]), timeout=60)
        await b.stop()
        return rows

    assert [r.tolist() for r in asyncio.run(main())] == [[3.0, 2.0]]


def test_batcher_refuses_bad_settings() -> None:
    with pytest.raises(ValueError):
        Batcher(_rows, max_batch_tokens=0, max_wait_s=0.0)
    with pytest.raises(ValueError):
        Batcher(_rows, max_batch_tokens=8, max_wait_s=-1.0)


def test_drain_runs_what_is_queued_without_waiting_out_the_window() -> None:
    batches: list[list[str]] = []

    def run_batch(texts: list[str]) -> np.ndarray:
        batches.append(list(texts))
        return _rows(texts)

    async def main() -> list[np.ndarray]:
        # an hour's window and a budget never reached: only drain() lets the batch run
        b = Batcher(run_batch, max_batch_tokens=10_000, max_wait_s=3600.0)
        b.start()
        pending = asyncio.ensure_future(b.submit(["q-1", "q-2"], [2, 2]))
        while b.queued < 2:
            await asyncio.sleep(0.01)
        b.drain()
        rows = await asyncio.wait_for(pending, timeout=60)
        await b.stop()
        return rows

    assert [r.tolist() for r in asyncio.run(main())] == [[3.0, 1.0], [3.0, 2.0]]
    assert batches == [["q-1", "q-2"]]


def test_the_default_budget_keeps_short_texts_out_of_a_long_texts_padding() -> None:
    """Serving traffic of short sentences (~10 tokens) with an occasional long one: with the
    default budget a batch is padded to at most twice its real tokens, so the model does not
    pay for 10x padding (a 4096 budget packed them all together, padded to the longest)."""
    from frugalml.serve.app import ServeConfig

    queue = q(*([10] * 12 + [120] + [11] * 12))
    batch, rest = pack(queue, ServeConfig().max_batch_tokens)
    real = sum(it.tokens for it in batch)
    assert padded_tokens(batch) <= 2 * real
    assert "t12" not in {it.name for it in batch} and any(it.name == "t12" for it in rest)
    assert len(batch) >= 8  # still a batch, not batch size 1
