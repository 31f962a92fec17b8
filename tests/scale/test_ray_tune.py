"""``tune --engine ray``: Ray Tune with OptunaSearch (TPE) and ASHA on a real single-node Ray
cluster; the study in PostgreSQL (read back by another process with ``optuna.load_study``),
every trial a ledger run exactly once, and PostgreSQL connections back to their baseline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from frugalml.data import load_data
from frugalml.ledger import Ledger
from frugalml.train import FinetuneConfig, TuneConfig, tune

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def hf_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tinymodels import tiny_bert

    return tiny_bert(tmp_path_factory.mktemp("hf") / "m", layers=2)


@pytest.fixture(scope="module")
def sst2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """An easy labelled set (the label is a keyword in the text): a trial with a working
    learning rate leaves chance within a few steps, one at a tiny rate does not."""
    import random

    from frugalml.data import stdlib_sentences

    folder = tmp_path_factory.mktemp("easy")
    rng = random.Random(3)
    out = []
    for name, n, seed in (("train.txt", 160, 1), ("dev.txt", 60, 2)):
        rows = []
        for i, text in enumerate(stdlib_sentences(n, seed=seed)):
            label = i % 2
            word = rng.choice(["wonderful", "excellent"] if label else ["terrible", "awful"])
            rows.append(f"{label} {word} {' '.join(text.split()[:8])}")
        (folder / name).write_text("\n".join(rows) + "\n")
        out.append(load_data(folder / name))
    return out[0], out[1]


@pytest.fixture
def optuna_db(postgres_url: str) -> Iterator[str]:
    """A second database on the same server, for the study (never the ledger's own)."""
    import sqlalchemy as sa

    name = f"frugal_ray_optuna_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _connections(admin_url: str, databases: list[str]) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(admin_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(:d)"),
                {"d": databases},
            ).scalar() or 0)  # fmt: skip
    finally:
        engine.dispose()


def test_tune_on_ray_with_asha_and_a_postgres_study(
    ray_local: Any, sst2: tuple[Any, Any], postgres_url: str, optuna_db: str, tmp_path: Path
) -> None:
    import sqlalchemy as sa

    admin = os.environ["FRUGAL_TEST_POSTGRES_URL"]
    dbs = [sa.engine.make_url(u).database for u in (postgres_url, optuna_db)]
    before = _connections(admin, dbs)
    train, dev = sst2
    import optuna

    # the study's first trials, enqueued before it starts (Optuna's own mechanism; TPE takes
    # them first): one at a working learning rate, three at the range's bottom, so ASHA has a
    # trial that is clearly behind at the first rung after a better one reported there
    storage = optuna.storages.RDBStorage(optuna_db)
    pre = optuna.create_study(study_name="ray-study", storage=storage, direction="maximize")
    pre.enqueue_trial({"lr_full": 2e-4, "batch_size": 16, "warmup_ratio": 0.0})
    for _ in range(3):
        pre.enqueue_trial({"lr_full": 1e-5, "batch_size": 16, "warmup_ratio": 0.0})
    del pre
    storage.engine.dispose()  # the test's own pool: not counted against frugal's connections
    cfg = TuneConfig(
        trials=4, sampler="tpe", pruner="hyperband", reduction_factor=2, min_resource=1,
        recipes=("full",), batch_sizes=(16,), storage=optuna_db, study_name="ray-study",
        base=FinetuneConfig(eval_mode="sync", evals_per_run=3, max_length=32, epochs=2.0),
    )  # fmt: skip
    # the bundled MiniLM, not the tiny model: its trials learn at different speeds with their
    # learning rates, so their accuracies differ (the tiny model's all sit at chance: a tie
    # at every rung, and ASHA stops nothing)
    out = tmp_path / "out"
    result = tune(
        "minilm", train, dev, cfg, ledger=postgres_url, engine="ray", max_parallel=2, out=out
    )

    study = result.study
    assert len(study.trials) == 4
    early = [t for t in study.trials if t.state == "pruned"]
    assert early, [(t.state, t.curve) for t in study.trials]  # ASHA stopped one early
    assert all(len(t.curve) < 3 and t.steps < t.planned_steps for t in early)
    assert result.saved_basis == "estimate" and 0 < (result.saved_fraction or 0) < 1
    # --out as with the local engine: the completed trials' models, none of the pruned ones
    kept = {f"trial-{t.number:03d}" for t in study.trials if t.state == "complete"}
    assert kept and {p.name for p in out.iterdir()} == kept

    with Ledger(postgres_url) as book:
        trials = book.runs(kind="trial")
        tunes = book.runs(kind="tune")
    assert len(tunes) == 1 and tunes[0].id == study.run_id
    assert len(trials) == 4 and all(n == 1 for n in Counter(t.id for t in trials).values())
    assert {t.parent_id for t in trials} == {study.run_id}
    assert {t.id for t in trials} == {t.run_id for t in study.trials}
    for run in trials:  # measured, in a Ray worker process on the cluster's node
        assert run.status == "finished" and run.usage is not None and run.usage.cpu_s > 0
        assert run.environment["node"]["pid"] != os.getpid()
        assert run.environment["node"]["node_id"] == ray_local.get_runtime_context().get_node_id()

    code = (
        "import json, sys, optuna\n"
        "s = optuna.load_study(study_name='ray-study', storage=sys.argv[1])\n"
        "print(json.dumps([t.state.name for t in s.trials]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, optuna_db], capture_output=True,
                          text=True, timeout=120, check=True)  # fmt: skip
    states = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(states) == 4 and "RUNNING" not in states

    deadline = time.monotonic() + 60  # a closed connection's backend exits just after
    while _connections(admin, dbs) > before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _connections(admin, dbs) == before


def test_tune_engine_options_are_checked(hf_tiny: Path, sst2: tuple[Any, Any]) -> None:
    from frugalml.errors import BadInput

    train, dev = sst2
    with pytest.raises(BadInput, match="need --engine ray"):
        tune(hf_tiny, train, dev, TuneConfig(trials=1), max_parallel=2)
    with pytest.raises(BadInput, match="unknown engine"):
        tune(hf_tiny, train, dev, TuneConfig(trials=1), engine="dask")
