"""Label issues: rows whose given label a cheap probe, trained without them, disbelieves.

The probe is scikit-learn ``LogisticRegression`` on sentence features (MiniLM embeddings or
TF-IDF). Its probabilities are *out of fold*: every row is scored by a model trained on the
other k-1 folds, so a row's own (possibly wrong) label never vouches for itself. cleanlab's
``find_label_issues`` (confident learning) then flags the rows whose given label is
implausible under those probabilities, worst first (lowest probability of the given label).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from frugalml.train.data.embed import Progress, one_blas_thread


class Unavailable(Exception):
    """Label-issue detection cannot run on this data; the message says why (for the user)."""


@dataclass(frozen=True)
class LabelIssue:
    """A row whose given label the probe disbelieves.

    ``given_prob`` is the out-of-fold probability of the given label; ``suggested`` the
    probe's most likely label and ``suggested_prob`` its probability.
    """

    index: int
    given: str
    suggested: str
    given_prob: float
    suggested_prob: float

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "given": self.given,
            "suggested": self.suggested,
            "given_prob": round(self.given_prob, 4),
            "suggested_prob": round(self.suggested_prob, 4),
        }


@dataclass(frozen=True)
class ProbeResult:
    """Out-of-fold probabilities (rows x classes, columns in ``classes`` order) and accuracy."""

    classes: tuple[str, ...]
    y: np.ndarray
    probs: np.ndarray
    folds: int
    accuracy: float


def encode_labels(labels: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    pos = {c: i for i, c in enumerate(classes)}
    return np.array([pos[lab] for lab in labels], dtype=np.int64)


def check_labels(labels: Sequence[str] | None, folds: int) -> int:
    """The number of folds usable on these labels; ``Unavailable`` says why none are."""
    if labels is None:
        raise Unavailable("the data has no labels")
    counts = Counter(labels)
    if len(counts) < 2:
        only = next(iter(counts), "")
        raise Unavailable(
            f"every row has the same label ({only!r}); a probe needs at least "
            "two classes to judge labels"
        )
    smallest = min(counts.values())
    if smallest < 2:
        rare = sorted(lab for lab, n in counts.items() if n < 2)
        raise Unavailable(
            f"label(s) {', '.join(map(repr, rare[:5]))} occur only once; "
            "out-of-fold probabilities need at least 2 rows per label"
        )
    return max(2, min(folds, smallest))


def out_of_fold_probs(
    features: Any,
    labels: Sequence[str],
    classes: Sequence[str],
    *,
    folds: int = 5,
    seed: int = 0,
    c: float | None = None,
    progress: Progress | None = None,
) -> ProbeResult:
    """Out-of-fold ``predict_proba`` of a logistic-regression probe, with a stratified k-fold.

    ``c`` is the inverse regularisation strength; default 10 for sparse TF-IDF (its many
    small weights need little shrinkage: +2-4 points out-of-fold accuracy on SST-2 and TREC
    over 1) and 1 for dense embeddings.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    k = check_labels(labels, folds)
    y = encode_labels(labels, classes)
    probs = np.zeros((len(y), len(classes)), dtype=np.float64)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    if progress:
        progress(f"label probe ({k}-fold)", 0, k)
    # saga is ~10x faster than lbfgs on sparse TF-IDF; lbfgs suits the dense 384-dim MiniLM.
    sparse = hasattr(features, "tocsr")
    solver = "saga" if sparse else "lbfgs"
    if c is None:
        c = 10.0 if sparse else 1.0
    for n, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y), 1):
        model = LogisticRegression(C=c, max_iter=1000, solver=solver, random_state=seed)
        with one_blas_thread(), warnings.catch_warnings():
            # a probe a few iterations short of convergence ranks rows just as well
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(features[train], y[train])
        # A fold's training part can lack a rare class: map its columns back by class id.
        probs[np.ix_(test, model.classes_)] = model.predict_proba(features[test])
        if progress:
            progress(f"label probe ({k}-fold)", n, k)
    accuracy = float((probs.argmax(axis=1) == y).mean())
    return ProbeResult(classes=tuple(classes), y=y, probs=probs, folds=k, accuracy=accuracy)


def find_label_issues(probe: ProbeResult) -> list[LabelIssue]:
    """cleanlab's confident-learning issues, worst first (lowest given-label probability)."""
    from cleanlab.filter import find_label_issues as cl_find

    ranked = cl_find(probe.y, probe.probs, return_indices_ranked_by="self_confidence")
    issues = []
    for i in np.asarray(ranked, dtype=np.int64):
        given, best = int(probe.y[i]), int(probe.probs[i].argmax())
        issues.append(
            LabelIssue(
                int(i),
                probe.classes[given],
                probe.classes[best],
                float(probe.probs[i, given]),
                float(probe.probs[i, best]),
            )
        )
    return issues
