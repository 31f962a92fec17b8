"""Audit a data set and plan its cleaning: duplicates, conflicting labels, label issues.

``audit(ds, AuditConfig(...))`` runs the detectors in order and returns an ``AuditReport``
with what each found and one ``Removal`` per row that ``clean`` would drop, first reason
wins: exact duplicates and conflicting labels, then near duplicates (among the rows left),
then label issues (the probe is trained on the deduplicated rows, so a row's copy cannot
vouch for it).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from frugalml.data import Dataset
from frugalml.errors import BadInput
from frugalml.train.data import dedup
from frugalml.train.data.embed import Features, Progress, check_embedder, embed, row_texts
from frugalml.train.data.label_issues import (
    LabelIssue,
    Unavailable,
    find_label_issues,
    out_of_fold_probs,
)

TASKS: tuple[str, ...] = ("auto", "classification", "similarity", "text")
REASONS: tuple[str, ...] = (
    "exact-duplicate",
    "conflicting-labels",
    "near-duplicate",
    "label-issue",
)


@dataclass(frozen=True)
class AuditConfig:
    """What to look for.

    ``near_method``: ``minhash`` (word-shingle Jaccard, ``threshold`` default 0.8, ``ngram``
    words per shingle) or ``embedding`` (cosine of ``embedder`` vectors, default 0.95).
    ``label_issues`` runs the out-of-fold probe (``folds``-fold, on ``embedder`` features).
    """

    task: str = "auto"
    near: bool = True
    near_method: str = "minhash"
    threshold: float | None = None
    ngram: int = 1
    label_issues: bool = True
    embedder: str = "minilm"
    folds: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise BadInput(f"unknown task '{self.task}'", hint=f"use one of {', '.join(TASKS)}")
        check_embedder(self.embedder)
        dedup.check_near(self.near_method, self.threshold)
        if self.ngram < 1:
            raise BadInput(f"--ngram must be at least 1, got {self.ngram}")
        if self.folds < 2:
            raise BadInput(f"--folds must be at least 2, got {self.folds}")

    @property
    def near_threshold(self) -> float:
        return dedup.check_near(self.near_method, self.threshold)


def resolve_task(ds: Dataset, task: str) -> str:
    """The task the data is for; ``BadInput`` when the data lacks what the task needs."""
    if task == "auto":
        if ds.labels is not None:
            return "classification"
        return "similarity" if ds.texts2 is not None else "text"
    if task == "classification" and ds.labels is None:
        raise BadInput(
            f"{ds.source or 'the data'} has no label column, and --task classification needs one",
            hint="name it with --label-col (CSV/TSV/JSONL), or use --task text",
        )
    if task == "similarity" and ds.texts2 is None:
        raise BadInput(
            f"{ds.source or 'the data'} has no second text column, and --task "
            "similarity needs sentence pairs",
            hint="name it with --text2-col",
        )
    return task


@dataclass
class AuditReport:
    """What the audit found. ``removals``: one per row ``clean`` drops, in row order."""

    rows: int
    task: str
    config: AuditConfig
    class_balance: dict[str, int]
    exact: list[dedup.Removal]
    conflicting_groups: int
    near: list[dedup.Removal]
    label_issues: list[LabelIssue]
    label_issues_skipped: str | None
    probe_accuracy: float | None
    removals: list[dedup.Removal]
    seconds: dict[str, float] = field(default_factory=dict)
    features: Features | None = None

    def kept(self) -> list[int]:
        gone = {r.index for r in self.removals}
        return [i for i in range(self.rows) if i not in gone]

    def counts(self) -> dict[str, int]:
        """Figures for the ledger and the summary table."""
        by_reason = Counter(r.reason for r in self.removals)
        return {
            "rows": self.rows,
            "exact_duplicates": sum(r.reason == "exact-duplicate" for r in self.exact),
            "conflicting_label_groups": self.conflicting_groups,
            "conflicting_label_rows": sum(r.reason == "conflicting-labels" for r in self.exact),
            "near_duplicates": len(self.near),
            "near_duplicates_with_other_label": sum("labelled" in r.detail for r in self.near),
            "label_issues": len(self.label_issues),
            **{f"remove_{k.replace('-', '_')}": by_reason.get(k, 0) for k in REASONS},
            "removed": len(self.removals),
            "kept": self.rows - len(self.removals),
        }

    def to_dict(self, ds: Dataset | None = None) -> dict[str, Any]:
        """JSON-ready; with ``ds``, every removal and issue carries its text and label."""

        def row(i: int) -> dict[str, Any]:
            if ds is None:
                return {}
            out: dict[str, Any] = {"text": ds.texts[i]}
            if ds.texts2 is not None:
                out["text2"] = ds.texts2[i]
            if ds.labels is not None:
                out["label"] = ds.labels[i]
            return out

        c = self.config
        return {
            "rows": self.rows,
            "task": self.task,
            "settings": {
                "near": c.near,
                "near_method": c.near_method,
                "threshold": c.near_threshold,
                "ngram": c.ngram,
                "label_issues": c.label_issues,
                "embedder": c.embedder,
                "folds": c.folds,
                "seed": c.seed,
            },
            "counts": self.counts(),
            "class_balance": self.class_balance,
            "label_issues_skipped": self.label_issues_skipped,
            "probe_accuracy": self.probe_accuracy,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "removals": [{**r.to_dict(), **row(r.index)} for r in self.removals],
            "label_issues": [{**x.to_dict(), **row(x.index)} for x in self.label_issues],
        }


def audit(
    ds: Dataset,
    config: AuditConfig,
    *,
    progress: Progress | None = None,
    features: Features | None = None,
) -> AuditReport:
    """Run the detectors ``config`` asks for on ``ds``; see the module docstring."""
    task = resolve_task(ds, config.task)
    texts = row_texts(ds)
    labels = ds.labels if task == "classification" else None
    seconds: dict[str, float] = {}
    with _timed(seconds, "exact_duplicates"):
        exact, conflicts = dedup.exact_duplicates(texts, labels)
    exact_rows = {r.index for r in exact}
    rows = [i for i in range(len(ds)) if i not in exact_rows]
    skipped = _why_no_probe(config, task, labels)
    want_probe = config.label_issues and skipped is None
    need_vectors = config.near and config.near_method == "embedding"
    if features is None and (want_probe or need_vectors):
        # TF-IDF near duplicates use the sparse matrix itself: no SVD needed
        features = embed(texts, config.embedder, dense=False, progress=progress, seed=config.seed)
        seconds["embedding"] = features.seconds
    near: list[dedup.Removal] = []
    if config.near:
        with _timed(seconds, "near_duplicates"):
            near = _near_duplicates(texts, rows, labels, features, config)
        near_rows = {r.index for r in near}
        rows = [i for i in rows if i not in near_rows]
    issues: list[LabelIssue] = []
    accuracy: float | None = None
    if want_probe:
        with _timed(seconds, "label_issues"):
            issues, accuracy, skipped = _label_issues(features, labels, rows, config, progress)
    counts = Counter(ds.labels or ())
    return AuditReport(
        rows=len(ds),
        task=task,
        config=config,
        class_balance={name: counts[name] for name in ds.label_names()},
        exact=exact,
        conflicting_groups=conflicts,
        near=near,
        label_issues=issues,
        label_issues_skipped=skipped,
        probe_accuracy=accuracy,
        removals=_removals(exact, near, issues),
        seconds=seconds,
        features=features,
    )


@contextlib.contextmanager
def _timed(seconds: dict[str, float], step: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        seconds[step] = time.perf_counter() - t0


def _why_no_probe(config: AuditConfig, task: str, labels: Sequence[str] | None) -> str | None:
    """Why label issues cannot be looked for (None: they can, or were not asked for)."""
    if config.label_issues and task != "classification":
        return "the data has no labels" if labels is None else f"task is {task}"
    return None


def _near_duplicates(
    texts: Sequence[str],
    rows: list[int],
    labels: Sequence[str] | None,
    features: Features | None,
    config: AuditConfig,
) -> list[dedup.Removal]:
    if config.near_method == "minhash":
        return dedup.near_duplicates_minhash(
            texts,
            rows,
            threshold=config.near_threshold,
            ngram=config.ngram,
            labels=labels,
            seed=config.seed + 1,
        )
    assert features is not None  # embedded by ``audit`` for the embedding method
    return dedup.near_duplicates_embedding(
        features.unit_rows(), rows, threshold=config.near_threshold, labels=labels
    )


def _label_issues(
    features: Features | None,
    labels: Sequence[str] | None,
    rows: list[int],
    config: AuditConfig,
    progress: Progress | None,
) -> tuple[list[LabelIssue], float | None, str | None]:
    """(issues, the probe's accuracy, why detection was skipped) over the remaining ``rows``."""
    assert features is not None and labels is not None  # ``audit`` embedded the labelled data
    sub_labels = [labels[i] for i in rows]
    try:
        probe = out_of_fold_probs(
            features.probe_input()[rows],
            sub_labels,
            sorted(set(sub_labels)),
            folds=config.folds,
            seed=config.seed,
            progress=progress,
        )
    except Unavailable as e:
        return [], None, str(e)
    issues = [
        LabelIssue(rows[x.index], x.given, x.suggested, x.given_prob, x.suggested_prob)
        for x in find_label_issues(probe)
    ]
    return issues, probe.accuracy, None


def _removals(
    exact: Sequence[dedup.Removal], near: list[dedup.Removal], issues: list[LabelIssue]
) -> list[dedup.Removal]:
    """Every row ``clean`` removes, in row order, with its reason."""
    removals = [
        *exact,
        *near,
        *(
            dedup.Removal(
                x.index,
                "label-issue",
                f"labelled {x.given!r}; the probe says {x.suggested!r} "
                f"(p={x.suggested_prob:.2f}, given label p={x.given_prob:.2f})",
                None,
                round(x.given_prob, 4),
            )
            for x in issues
        ),
    ]
    return sorted(removals, key=lambda r: r.index)
