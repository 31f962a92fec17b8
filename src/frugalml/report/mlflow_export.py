"""Log ledger runs to an MLflow tracking store (``frugal runs --export mlflow``).

Each frugal run becomes one MLflow run in one experiment (default ``frugal``):

- **params**: the run's params, nested dicts flattened to dotted keys (values cut to 500
  characters, MLflow's portable limit), except the numbers under ``eval`` (metrics only);
- **metrics**: usage (``wall_s``, ``cpu_s``, ``energy_j``, ``cost_usd``, ``co2_g``, peak memory
  in bytes...) and quality (``quality.<metric>``), plus any number under ``params.eval``;
- **tags**: ``frugal.run_id``, ``frugal.kind``, ``frugal.status``, ``frugal.energy_source``,
  ``frugal.instance``, ``frugal.region``, ``frugal.artifact.<name>`` (paths, not uploaded),
  ``mlflow.runName``, and ``mlflow.parentRunId`` for a child of an exported parent.

Export is idempotent: runs are matched by the ``frugal.run_id`` tag, so exporting again creates
nothing twice; a run whose status changed since (running → finished) is updated in place.
mlflow-skinny is imported only here (``pip install 'frugalml[mlflow]'``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from frugalml.errors import BadInput
from frugalml.records import RunRecord

TAG = "frugal.run_id"
PARAM_VALUE_MAX = 500
_STATUS = {"finished": "FINISHED", "failed": "FAILED", "crashed": "KILLED", "running": "RUNNING"}
_USAGE_METRICS = (
    "wall_s",
    "cpu_s",
    "device_s",
    "peak_host_bytes",
    "peak_device_bytes",
    "energy_j",
    "instance_cost_usd",
    "energy_cost_usd",
    "cost_usd",
    "co2_g",
)
_BAD_KEY = re.compile(r"[^\w./\- :]")
HTTP_DEFAULTS = {  # at most 2 tries of 15 s each per request to an MLflow server
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}


@dataclass
class ExportSummary:
    tracking_uri: str
    experiment: str
    experiment_id: str
    created: list[str] = field(default_factory=list)  # frugal run ids
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    mlflow_ids: dict[str, str] = field(default_factory=dict)  # frugal id -> MLflow run id

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _key(name: str) -> str:
    return _BAD_KEY.sub("_", name)[:250] or "_"


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay whole (as their text)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def run_metrics(record: RunRecord) -> dict[str, float]:
    """The numbers MLflow gets as metrics for one run."""
    metrics: dict[str, float] = {}
    if record.usage is not None:
        usage = record.usage.to_dict()
        for name in _USAGE_METRICS:
            if (v := _number(usage.get(name))) is not None:
                metrics[name] = v
    for name, value in record.quality.items():
        if (v := _number(value)) is not None:
            metrics[f"quality.{_key(name)}"] = v
    evaluation = record.params.get("eval")
    if isinstance(evaluation, Mapping):
        for name, value in flatten(evaluation).items():
            if (v := _number(value)) is not None:
                metrics[f"eval.{_key(name)}"] = v
    return metrics


def run_params(record: RunRecord) -> dict[str, str]:
    """Params as MLflow strings; the numbers under ``eval`` are metrics (``run_metrics``) and
    are not repeated here (an MLflow param cannot be compared or plotted)."""
    return {
        _key(k): str(v)[:PARAM_VALUE_MAX]
        for k, v in flatten(record.params).items()
        if not (k.startswith("eval.") and _number(v) is not None)
    }


def run_tags(record: RunRecord) -> dict[str, str]:
    tags = {
        TAG: record.id,
        "frugal.kind": record.kind,
        "frugal.status": record.status,
        "mlflow.runName": record.name[:250],
        "frugal.host": record.host,
    }
    if record.usage is not None:
        tags.update(
            {
                "frugal.energy_source": record.usage.energy_source,
                "frugal.instance": record.usage.instance,
                "frugal.region": record.usage.region,
            }
        )
    if record.parent_id:
        tags["frugal.parent_id"] = record.parent_id
    if record.error:
        tags["frugal.error"] = record.error[:5000]
    if commit := record.environment.get("git_commit"):
        tags["mlflow.source.git.commit"] = str(commit)
    for name, path in record.artifacts.items():
        tags[f"frugal.artifact.{_key(name)}"] = str(path)[:5000]
    return tags


def _client(tracking_uri: str) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as e:
        raise BadInput(
            "exporting to MLflow needs mlflow-skinny", hint="pip install 'frugalml[mlflow]'"
        ) from e
    if tracking_uri.startswith("file:") or "://" not in tracking_uri:
        # MLflow 3 keeps its file store in maintenance mode behind this switch; the user
        # asked for a file store by giving its URI, so it is what they get.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    if tracking_uri.startswith(("http:", "https:")):
        # MLflow's defaults (7 retries with backoff, 120 s per request) make an unreachable
        # server look like a hang of many minutes; the user's own settings still win.
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
    try:
        return MlflowClient(tracking_uri=tracking_uri)
    except Exception as e:  # MLflow raises many kinds for a bad URI
        raise BadInput(
            f"cannot open the MLflow tracking store {tracking_uri}: {e}",
            hint="use sqlite:///mlflow.db, http://host:5000 or file:///path/to/mlruns",
        ) from e


def _first_line(text: str, limit: int = 300) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _order(records: Iterable[RunRecord]) -> list[RunRecord]:
    """Oldest first, and every parent before its children (MLflow links child -> parent)."""
    pending = sorted(records, key=lambda r: (r.started_at, r.id))
    ids = {r.id for r in pending}
    done: set[str] = set()
    ordered: list[RunRecord] = []
    while pending:
        rest = []
        for r in pending:
            if r.parent_id in ids and r.parent_id not in done:
                rest.append(r)
            else:
                ordered.append(r)
                done.add(r.id)
        if len(rest) == len(pending):  # a cycle cannot happen, but never loop forever
            ordered.extend(rest)
            break
        pending = rest
    return ordered


def _ms(record: RunRecord, end: bool = False) -> int | None:
    when = record.ended_at if end else record.started_at
    return int(when.timestamp() * 1000) if when else None


def export_runs(
    records: Iterable[RunRecord], tracking_uri: str, *, experiment: str = "frugal"
) -> ExportSummary:
    """Log ``records`` to the MLflow store at ``tracking_uri``; what was created or updated."""
    try:
        from mlflow.exceptions import MlflowException
    except ImportError as e:
        raise BadInput(
            "exporting to MLflow needs mlflow-skinny", hint="pip install 'frugalml[mlflow]'"
        ) from e
    client = _client(tracking_uri)
    try:
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
        existing = _existing(client, exp_id)
        summary = ExportSummary(tracking_uri, experiment, exp_id)
        for record in _order(records):
            _export_one(client, exp_id, record, existing, summary)
    except MlflowException as e:
        raise BadInput(
            f"cannot use the MLflow tracking store {tracking_uri}: {_first_line(e.message)}",
            hint="check the URI, that the server is up, and that the store is writable",
        ) from e
    return summary


def _export_one(
    client: Any,
    exp_id: str,
    record: RunRecord,
    existing: dict[str, tuple[str, Any]],
    summary: ExportSummary,
) -> None:
    """Create or update one run; ``existing`` and ``summary`` are updated."""
    from mlflow.entities import Metric, Param, RunTag

    tags = run_tags(record)
    parent = existing.get(record.parent_id or "", (None, None))[0]
    if parent:
        tags["mlflow.parentRunId"] = parent
    params = run_params(record)
    end_ms = _ms(record, end=True)
    stamp = end_ms or _ms(record) or 0
    found = existing.get(record.id)
    if found is None:
        run = client.create_run(
            exp_id, start_time=_ms(record), tags=tags, run_name=record.name[:250]
        )
        mlflow_id = run.info.run_id
        summary.created.append(record.id)
        new_params = params
    else:
        mlflow_id, old = found
        summary.mlflow_ids[record.id] = mlflow_id
        if old.data.tags.get("frugal.status") == record.status and old.data.tags.get(
            "mlflow.parentRunId"
        ) == tags.get("mlflow.parentRunId"):
            summary.unchanged.append(record.id)
            return
        summary.updated.append(record.id)
        new_params = {k: v for k, v in params.items() if k not in old.data.params}
    client.log_batch(
        mlflow_id,
        metrics=[Metric(k, v, stamp, 0) for k, v in run_metrics(record).items()],
        params=[Param(k, v) for k, v in new_params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()] if found else [],
    )
    if record.status != "running":
        client.set_terminated(mlflow_id, status=_STATUS[record.status], end_time=end_ms)
    existing[record.id] = (mlflow_id, None)
    summary.mlflow_ids[record.id] = mlflow_id


def _existing(client: Any, exp_id: str) -> dict[str, tuple[str, Any]]:
    """frugal run id -> (MLflow run id, MLflow run) for runs already exported."""
    out: dict[str, tuple[str, Any]] = {}
    token = None
    while True:
        page = client.search_runs(
            [exp_id], filter_string=f"tags.`{TAG}` != ''", max_results=1000, page_token=token
        )
        for run in page:
            out[run.data.tags[TAG]] = (run.info.run_id, run)
        token = page.token
        if not token:
            return out
