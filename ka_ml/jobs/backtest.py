"""`ka-ml backtest` as a job: read the score history, measure, log to MLflow, write JSON.

The measuring is pure (:mod:`ka_ml.monitoring.backtest`); this job reads the stored weekly
scores that are due, logs the result as an MLflow run and writes one JSON file per data
as-of beside the score history, which the next scoring run's record quotes
(:func:`latest_summary`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.errors import KaMlError
from ka_ml.features.labels import ORDERS_FIRST, judged_by_orders
from ka_ml.io import atomic_write_json, ensure_writable_dir
from ka_ml.modeling import registry
from ka_ml.monitoring.backtest import backtest_dir, compute_backtest, in_sample_weeks, summary
from ka_ml.scoring import score_history
from ka_ml.scoring.score_history import history_path

log = logging.getLogger("ka_ml.backtest")


@dataclass(frozen=True)
class BacktestResult:
    as_of: pd.Timestamp
    details: dict[str, Any]
    summary: dict[str, Any]
    path: Path
    run_id: str


def run_backtest(
    history: History, cfg: Config, as_of: pd.Timestamp, out: Path | None = None
) -> BacktestResult:
    """Backtest the due weeks of the score history; log to MLflow; write the JSON file."""
    as_of = pd.Timestamp(as_of).normalize()
    path = Path(out) if out else backtest_dir(cfg) / f"backtest-{as_of.date()}.json"
    hist = history_path(cfg)
    if not hist.exists():
        raise KaMlError(
            f"There is no score history at '{hist}' to backtest.",
            "run ka-ml score weekly (with the same paths.outputs) first.",
        )
    # only weeks whose horizon can have passed: as_of + horizon <= data as-of
    due_before = as_of - pd.Timedelta(days=cfg.labels.horizon_days - 1)
    scores = score_history.read(hist, before=due_before, windows=True)
    left_out: list[str] = []
    pauses = ""
    if scores.empty:
        scores = score_history.read(
            hist, windows=True
        )  # none due: the error names the earliest stored week
    else:
        client = registry.connect(cfg)
        scores, left_out = _forecasts_only(scores, client, cfg)
        pauses = pauses_caution(scores, client, cfg)
        if cfg.labels.churn_definition == "auto" and any(  # judged as the model learnt
            registry.training_metrics(client, cfg.mlflow.churn_model_name, v).get(ORDERS_FIRST)
            for v in sorted(scores["churn_model_version"].astype(str).unique())
        ):
            cfg = judged_by_orders(cfg)
    details = compute_backtest(history, scores, cfg, as_of)  # seconds, no I/O
    details["left_out_look_back_weeks"] = left_out
    if pauses:
        details["pauses_caution"] = pauses
    ensure_writable_dir(path.parent, "backtest output")  # before MLflow or any file
    flat = summary(details)
    registry.connect(cfg)
    with mlflow.start_run(run_name=f"backtest-{as_of.date()}") as run:
        mlflow.set_tags(
            {
                "kind": "backtest",
                "as_of": details["as_of"],
                "data_fingerprint": details["data"]["fingerprint"],
                "config_hash": details["config_hash"],
                "retrain_recommended": str(details["recommendation"]["retrain"]).lower(),
                "weeks": ",".join(details["weeks"])[:5000],
            }
        )
        mlflow.log_metrics(
            {
                f"backtest_{k}": float(v)
                for k, v in details["metrics"].items()
                if isinstance(v, int | float) and np.isfinite(v)
            }
        )
        mlflow.log_dict(details, "backtest/backtest.json")
    atomic_write_json(path, {**details, "summary": flat, "mlflow_run_id": run.info.run_id})
    return BacktestResult(as_of, details, flat, path, run.info.run_id)


def _forecasts_only(
    scores: pd.DataFrame, client: Any, cfg: Config
) -> tuple[pd.DataFrame, list[str]]:
    """The stored weeks scored as forecasts, and the weeks left out: those scored by a churn
    model trained on data after them (:func:`in_sample_weeks`)."""
    trained = {
        v: registry.trained_as_of(client, cfg.mlflow.churn_model_name, v)
        for v in scores["churn_model_version"].astype(str).unique()
    }
    look_back = in_sample_weeks(scores, trained)
    if not look_back.any():
        return scores, []
    left_out = sorted({str(pd.Timestamp(d).date()) for d in scores.loc[look_back, "as_of"]})
    log.warning(
        "left out %d week(s) scored by a churn model trained after them (look-backs, not "
        "forecasts): %s",
        len(left_out),
        ", ".join(left_out),
    )
    if look_back.all():
        raise KaMlError(
            f"Every stored week old enough to backtest ({', '.join(left_out)}) was scored by "
            "a churn model trained on data after it: those scores look back, they do not "
            "forecast, so they cannot tell how the forecasts turn out.",
            "score each week with the model of that week (ka-ml score every week, retraining "
            "only forward in time), then backtest once the horizon has passed.",
        )
    return scores[~look_back], left_out


def pauses_caution(scores: pd.DataFrame, client: Any, cfg: Config) -> str:
    """The caution train gave about its churn label, for the weeks a model trained under it
    scored: '' when no such model scored them. A user's backtest printed red precision 0.643
    and "No retraining needed" where 4 of that week's 28 reds were really lost: the label
    (no order within the horizon) marked pauses, and train had said so, the backtest not."""
    limit = cfg.mlflow.max_label_return_share
    if limit is None or scores.empty:
        return ""
    found = []
    for v in sorted(scores["churn_model_version"].astype(str).unique()):
        metrics = registry.training_metrics(client, cfg.mlflow.churn_model_name, v)
        share = metrics.get("label_return_share", float("nan"))
        if np.isfinite(share) and share > limit:
            found.append((v, share, metrics.get("label_return_days", float("nan"))))
    if not found:
        return ""
    v, share, days = max(found, key=lambda f: f[1])
    within = f"within {days:.0f} days" if np.isfinite(days) else "later"
    return (
        f"the churn model that scored these weeks (version {v}) was trained where {share:.0%} "
        f"of the account-snapshots labelled churn (no order within {cfg.labels.horizon_days} "
        f"days) ordered again {within}: these figures say how well a "
        f"{cfg.labels.horizon_days}-day silence was foreseen, not how many customers were "
        "lost (train's 'pauses' caution; health.rhythm_quiet_min, health.quiet_spells_min "
        "and health.seen_before_max_light keep rhythm buyers out of red)"
    )


def latest_summary(cfg: Config, as_of: pd.Timestamp) -> dict[str, Any] | None:
    """The summary of the newest backtest dated on or before ``as_of`` (None if none)."""
    folder = backtest_dir(cfg)
    if not folder.is_dir():
        return None
    dated = []
    for p in folder.glob("backtest-*.json"):  # one file per backtest run, not per account
        try:
            day = pd.Timestamp(p.stem.removeprefix("backtest-"))
        except ValueError:
            continue
        if day <= pd.Timestamp(as_of):
            dated.append((day, p))
    for _, p in sorted(dated, reverse=True):
        try:
            found = json.loads(p.read_text(encoding="utf-8")).get("summary")
        except (OSError, ValueError) as e:
            log.warning("skipping unreadable backtest file %s: %s", p, e)
            continue
        if isinstance(found, dict):
            return found
    return None
