"""Data tools: don't pay to train on duplicated, mislabelled or uninformative rows.

- ``audit(ds, AuditConfig(...))``: exact and near duplicates (MinHash LSH or embeddings),
  duplicates with conflicting labels, label issues (cleanlab on out-of-fold probabilities of
  a cheap probe), class balance; and the rows ``clean`` would remove, each with its reason.
- ``select_rows(ds, SelectConfig(fraction, strategy))``: a class-balanced subset chosen at
  random, by the probe's uncertainty, or for diversity (k-center greedy on embeddings).
- ``write_rows(ds, indices, out)``: write a subset in the input's own format, checked by
  reading it back.
- ``embed(texts, "minilm" | "tfidf")``: the shared sentence features.

The CLI is ``frugal data audit | clean | select`` (``frugalml.cli.data_cmds``); docs/data.md.
"""

from frugalml.train.data.audit import TASKS, AuditConfig, AuditReport, audit, resolve_task
from frugalml.train.data.dedup import NEAR_METHODS, Removal
from frugalml.train.data.embed import EMBEDDERS, Features, embed
from frugalml.train.data.label_issues import LabelIssue
from frugalml.train.data.select import STRATEGIES, SelectConfig, Selection, select_rows
from frugalml.train.data.write import write_rows

__all__ = [
    "EMBEDDERS",
    "NEAR_METHODS",
    "STRATEGIES",
    "TASKS",
    "AuditConfig",
    "AuditReport",
    "Features",
    "LabelIssue",
    "Removal",
    "SelectConfig",
    "Selection",
    "audit",
    "embed",
    "resolve_task",
    "select_rows",
    "write_rows",
]
