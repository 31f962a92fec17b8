"""tune: every trial a ledger run under a tune run; pruning stops trials; saving is measured.

Pruning is made deterministic with Optuna's real ``ThresholdPruner`` (prune below 101 points:
every trial at its first report), given as the study's pruner (``TuneConfig.pruner`` takes any
Optuna pruner); the tiny model's accuracy would otherwise decide which trials are pruned.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from frugalml.data import load_data
from frugalml.ledger import Ledger
from frugalml.train import FinetuneConfig, TuneConfig, tune


def test_tune_prunes_and_measures_the_saving(tiny_model, sst2_small, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    import optuna

    train, dev = load_data(sst2_small[0]), load_data(sst2_small[1])
    base = FinetuneConfig(eval_mode="sync", evals_per_run=3, max_length=32)
    cfg = TuneConfig(
        trials=3,
        sampler="random",
        pruner=optuna.pruners.ThresholdPruner(lower=101.0),
        recipes=("lora",),
        batch_sizes=(16,),
        compare_unpruned=True,
        base=base,
    )
    result = tune(tiny_model, train, dev, cfg, ledger=sqlite_url)

    study, unpruned = result.study, result.unpruned
    assert unpruned is not None
    assert [t.state for t in study.trials] == ["pruned"] * 3 and study.pruned == 3
    assert all(t.steps == 5 and t.planned_steps == 15 for t in study.trials)  # 1 of 3 evals
    assert [t.state for t in unpruned.trials] == ["complete"] * 3
    assert all(t.steps == t.planned_steps == 15 for t in unpruned.trials)
    # same space, sampler seed and data seed: the same trials, run to the end
    assert [t.params for t in study.trials] == [t.params for t in unpruned.trials]
    assert study.best_accuracy is None and unpruned.best_accuracy is not None
    assert result.saved_basis == "measured"
    assert result.saved_fraction == pytest.approx(
        1 - study.compute["cpu_s"] / unpruned.compute["cpu_s"]
    )
    assert 0 < result.saved_fraction < 1
    with Ledger(sqlite_url) as book:
        tunes = book.runs(kind="tune")
        trials = book.runs(kind="trial")
        assert len(tunes) == 2 and len(trials) == 6
        assert {t.parent_id for t in trials} == {study.run_id, unpruned.run_id}
        mine = [t for t in trials if t.parent_id == study.run_id]
        assert study.compute["cpu_s"] == pytest.approx(sum(t.usage.cpu_s for t in mine))
        assert all(t.status == "finished" and t.usage.cost_usd > 0 for t in trials)
        assert book.get(unpruned.run_id).quality["accuracy"] == unpruned.best_accuracy


def test_a_prune_request_at_the_last_checkpoint_completes_the_trial(
    tiny_model, sst2_small, sqlite_url
) -> None:  # type: ignore[no-untyped-def]
    """Hyperband's top rung sits at the last checkpoint: a "prune" there saves nothing and
    must not throw the finished trial's result away."""
    import optuna

    class LastRungPruner(optuna.pruners.BasePruner):
        def prune(self, study, trial):  # type: ignore[no-untyped-def]
            return trial.last_step is not None and trial.last_step >= 3

    train, dev = load_data(sst2_small[0]), load_data(sst2_small[1])
    base = FinetuneConfig(eval_mode="sync", evals_per_run=3, max_length=32)
    cfg = TuneConfig(
        trials=2,
        sampler="random",
        pruner=LastRungPruner(),
        recipes=("lora",),
        batch_sizes=(16,),
        base=base,
    )
    study = tune(tiny_model, train, dev, cfg, ledger=sqlite_url).study

    assert [t.state for t in study.trials] == ["complete"] * 2 and study.pruned == 0
    assert all(t.steps == t.planned_steps == 15 for t in study.trials)
    assert study.best_accuracy == max(t.accuracy for t in study.trials if t.accuracy is not None)


def test_tune_rejects_bad_config(tiny_model, sst2_small) -> None:  # type: ignore[no-untyped-def]
    from frugalml.errors import BadInput

    train, dev = load_data(sst2_small[0]), load_data(sst2_small[1])
    for cfg in (
        TuneConfig(sampler="grid"),
        TuneConfig(pruner="asha"),
        TuneConfig(trials=0),
        TuneConfig(base=FinetuneConfig(target_accuracy=80.0)),
        TuneConfig(reduction_factor=1),
        TuneConfig(min_resource=9, base=FinetuneConfig(evals_per_run=9)),
    ):
        with pytest.raises(BadInput):
            tune(Path(tiny_model), train, dev, cfg)


@pytest.mark.parametrize("min_resource", [1, 2])
def test_hyperband_first_decision_waits_for_min_resource(min_resource: int) -> None:
    """The study's Hyperband pruner (Optuna's) takes its first decision at ``min_resource``
    checkpoints: with 2, a trial at chance after one checkpoint is never stopped there."""
    import optuna

    from frugalml.train.tuning import make_pruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = TuneConfig(min_resource=min_resource, base=FinetuneConfig(evals_per_run=9))
    study = optuna.create_study(
        direction="maximize", pruner=make_pruner("hyperband", cfg), study_name="rungs"
    )
    stopped_at = []
    for n in range(30):
        trial = study.ask()
        value = 50.0 + (n % 7)  # every checkpoint of trial n reads the same accuracy
        for step in range(1, 10):
            trial.report(value, step)
            if step < 9 and trial.should_prune():
                stopped_at.append(step)
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, value)
    assert stopped_at  # Hyperband stops some of the 30 trials
    assert min(stopped_at) == min_resource
