"""Prove it: the cost-delta statement, the promotion gate, the HTML report, MLflow export.

Quality intervals come from ``measure.bootstrap`` (paired bootstrap; the search checks its
choice with it too).

- ``statement``: ``Side`` (one model's figures) and ``build_statement`` → ``Statement``.
- ``gate``: ``gate(statement, max_cost_ratio=..., max_quality_drop=...)`` → ``Verdict``.
- ``sources``: a side from a ledger run or an optimize folder; per-row outputs; paired CI.
- ``fresh``: sides evaluated now (models alternating in one process), recorded as eval runs.
- ``html`` + ``svg``: ``ReportData`` → one self-contained HTML file (inline SVG, no network).
- ``collect``: ``ReportData`` from an optimize folder or run (and the optimize hook).
- ``mlflow_export``: log ledger runs to an MLflow tracking store (mlflow-skinny, lazy).
"""
