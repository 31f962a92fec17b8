"""Many processes writing at once lose nothing: 8 processes x 50 tracked runs = 400 rows."""

from __future__ import annotations

import multiprocessing as mp

from frugalml.ledger import Ledger

WRITERS, RUNS_EACH = 8, 50


def _writer(url: str, worker: int, start: mp.synchronize.Event) -> None:
    import frugalml

    start.wait()  # all writers begin together, to collide as much as possible
    book = Ledger(url)
    for i in range(RUNS_EACH):
        with frugalml.track(f"w{worker}-r{i}", ledger=book, instance="local") as run:
            run.log_quality(step=float(i))
    book.close()


def test_eight_writers_fifty_runs_each_keep_all_rows(ledger_url: str) -> None:
    with Ledger(ledger_url) as book:  # schema created up front (concurrently: the next test)
        book.create_schema()
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(ledger_url, w, start)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * WRITERS
    with Ledger(ledger_url) as book:
        runs = book.runs()
    assert len(runs) == WRITERS * RUNS_EACH
    assert len({r.name for r in runs}) == WRITERS * RUNS_EACH
    assert {r.status for r in runs} == {"finished"}
    assert all(r.usage is not None and r.quality.get("step") is not None for r in runs)


def _opener(url: str, start: mp.synchronize.Event) -> None:
    start.wait()
    with Ledger(url) as book:
        book.record("opened", kind="job", status="finished")


def test_concurrent_first_open_migrates_once(ledger_url: str) -> None:
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_opener, args=(ledger_url, start)) for _ in range(6)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * 6
    with Ledger(ledger_url) as book:
        assert book.count() == 6
