"""Prove it: the cost-delta statement, the promotion gate, the HTML report, MLflow export.

- ``bootstrap``: paired bootstrap confidence interval of a quality difference (pure, numpy).
- ``statement``: ``Side`` (one model's figures) and ``build_statement`` → ``Statement``.
- ``gate``: ``gate(statement, max_cost_ratio=..., max_quality_drop=...)`` → ``Verdict``.
- ``html``: ``ReportData`` → one self-contained HTML file (inline SVG, no network).
- ``sources``: turn a run id, an optimize folder or a model into a ``Side`` or ``ReportData``.
- ``mlflow_export``: log ledger runs to an MLflow tracking store (mlflow-skinny, lazy).
"""
