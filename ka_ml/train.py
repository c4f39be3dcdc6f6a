"""`ka-ml train`: snapshots -> time split -> tuned, calibrated models -> evaluation -> MLflow.

Pure steps (``make_folds``, ``fit_churn``, ``fit_timing``, ``evaluate``) take frames and
config; ``run_training`` wires them together and is the only place that talks to MLflow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.errors import ModelError
from ka_ml.modeling import metrics as M
from ka_ml.modeling.churn import ChurnModel
from ka_ml.modeling.evaluate import compare, light_scores, tenure_band, timing_scores
from ka_ml.modeling.split import TimeSplit, cv_folds, time_split
from ka_ml.modeling.timing import TimingModel, interval_edges
from ka_ml.modeling.tuning import TuningResult, tune

log = logging.getLogger("ka_ml.train")

KEY_COLUMNS = ("account_id", "as_of")
LABEL_COLUMNS = ("churn", "churn_definition", "days_to_next", "next_order_observed")
Progress = Callable[[str], None]


def feature_columns(ts: pd.DataFrame) -> list[str]:
    return [c for c in ts.columns if c not in (*KEY_COLUMNS, *LABEL_COLUMNS)]


@dataclass(frozen=True)
class Folds:
    split: TimeSplit
    train: pd.DataFrame
    cal: pd.DataFrame
    test: pd.DataFrame


def make_folds(ts: pd.DataFrame, cfg: Config) -> Folds:
    """Purged time split of the snapshots whose churn label is fully observed."""
    labelled = ts[ts["churn"].notna()]
    split = time_split(
        labelled["as_of"].unique(),
        horizon_days=cfg.labels.horizon_days,
        test_snapshots=cfg.tuning.test_snapshots,
        calibration_snapshots=cfg.tuning.calibration_snapshots,
        purge_days=cfg.tuning.purge_days,
    )

    def pick(dates: tuple[pd.Timestamp, ...]) -> pd.DataFrame:
        return labelled[labelled["as_of"].isin(list(dates))].reset_index(drop=True)

    return Folds(
        split, pick(split.train_dates), pick(split.calibration_dates), pick(split.test_dates)
    )


def check_labels(folds: Folds) -> None:
    """Refuse a split whose training, calibration or test rows hold a single churn class:
    nothing could be learned, calibrated or measured."""
    for where, df in (("training", folds.train), ("calibration", folds.cal), ("test", folds.test)):
        y = df["churn"].to_numpy(float)
        n_pos = int(np.sum(y == 1))
        if n_pos == 0 or n_pos == len(y):
            kind = "no churners" if n_pos == 0 else "only churners"
            dates = sorted({str(pd.Timestamp(d).date()) for d in df["as_of"]})
            raise ModelError(
                f"The {where} snapshots ({', '.join(dates) or 'none'}) contain {kind} "
                f"({len(y)} rows): a churn model cannot be trained, calibrated and tested.",
                "use a longer history or more accounts, check labels.churn_definition and "
                "labels.horizon_days against the data, or set a different --as-of.",
            )


def censor_at(df: pd.DataFrame, boundary: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Timing labels as they were known at ``boundary`` (re-censored, nothing later seen)."""
    limit = (pd.Timestamp(boundary) - df["as_of"]).dt.days.to_numpy(float)
    d = df["days_to_next"].to_numpy(float)
    e = df["next_order_observed"].to_numpy(bool)
    return np.minimum(d, limit), e & (d < limit)


def _purge(cfg: Config) -> int:
    return cfg.labels.horizon_days if cfg.tuning.purge_days is None else cfg.tuning.purge_days


def _rows(df: pd.DataFrame, dates: list[pd.Timestamp]) -> pd.DataFrame:
    return df[df["as_of"].isin(dates)]


def fit_churn(
    folds: Folds, feats: list[str], cfg: Config, on_trial: Any = None
) -> tuple[ChurnModel, TuningResult]:
    """Tune on purged expanding folds of the training snapshots; fit; calibrate on cal."""
    cv = cv_folds(folds.split.train_dates, n_folds=cfg.tuning.n_folds, horizon_days=_purge(cfg))

    def fit_and_score(params: dict[str, Any], k: int) -> tuple[float, int]:
        tr, va = _rows(folds.train, cv[k][0]), _rows(folds.train, cv[k][1])
        m = ChurnModel(params, seed=cfg.seed).fit(
            tr[feats], tr["churn"].to_numpy(), X_valid=va[feats], y_valid=va["churn"].to_numpy()
        )
        return M.roc_auc(
            va["churn"].to_numpy(), m.predict_uncalibrated(va[feats])
        ), m.best_iteration_

    res = tune(
        "churn",
        fit_and_score,
        len(cv),
        n_trials=cfg.tuning.n_trials,
        timeout=cfg.tuning.timeout_seconds,
        seed=cfg.seed,
        on_trial=on_trial,
    )
    model = ChurnModel(res.best_params, seed=cfg.seed).fit(
        folds.train[feats],
        folds.train["churn"].to_numpy(),
        num_boost_round=max(20, int(res.best_rounds * 1.1)),
    )
    model.calibrate(folds.cal[feats], folds.cal["churn"].to_numpy())
    return model, res


def fit_timing(
    folds: Folds, feats: list[str], cfg: Config, on_trial: Any = None
) -> tuple[TimingModel, TuningResult]:
    """Tune the hazard model on purged folds; final fit on train + calibration snapshots.

    Every fold's labels are re-censored at the start of the block it is judged on, so no
    order after that date is seen. The timing model has no calibration step, so the
    calibration snapshots join its training data (censored at the test start).
    """
    edges = interval_edges(cfg.labels.purchase_windows)
    dates = (*folds.split.train_dates, *folds.split.calibration_dates)
    pool = pd.concat([folds.train, folds.cal], ignore_index=True)
    cv = cv_folds(dates, n_folds=cfg.tuning.n_folds, horizon_days=_purge(cfg))

    def fit_and_score(params: dict[str, Any], k: int) -> tuple[float, int]:
        tr, va = _rows(pool, cv[k][0]), _rows(pool, cv[k][1])
        d, e = censor_at(tr, min(cv[k][1]))
        dv, ev = censor_at(va, folds.split.test_start)
        m = TimingModel(params, edges, seed=cfg.seed).fit(
            tr[feats], d, e, X_valid=va[feats], duration_valid=dv, event_valid=ev
        )
        return m.log_likelihood(va[feats], dv, ev), m.best_iteration_

    n_trials = max(2, cfg.tuning.n_trials // 3)
    res = tune(
        "timing",
        fit_and_score,
        len(cv),
        n_trials=n_trials,
        timeout=cfg.tuning.timeout_seconds / 2,
        seed=cfg.seed,
        on_trial=on_trial,
    )
    d, e = censor_at(pool, folds.split.test_start)
    model = TimingModel(res.best_params, edges, seed=cfg.seed).fit(
        pool[feats], d, e, num_boost_round=max(20, int(res.best_rounds * 1.1))
    )
    return model, res


@dataclass
class Evaluation:
    churn: dict[str, float]
    churn_uncalibrated: dict[str, float]
    lights: dict[str, float]
    timing: dict[str, float]
    comparison: pd.DataFrame
    timing_comparison: pd.DataFrame
    slices: pd.DataFrame
    test_predictions: pd.DataFrame = field(repr=False)


def baseline_predictions(
    history: History, folds: Folds, feats: list[str], cfg: Config
) -> tuple[dict[str, np.ndarray], dict[str, pd.DataFrame]]:
    """Recency, RFM logistic regression and BG/NBD on exactly the test rows."""
    from ka_ml.modeling.baselines import BGNBDChurn, RecencyBaseline, RFMLogistic

    test, train = folds.test, folds.train
    y_tr = train["churn"].to_numpy()
    churn: dict[str, np.ndarray] = {
        "recency only": RecencyBaseline().fit(train, y_tr).predict_proba(test),
        "RFM logistic regression": RFMLogistic().fit(train, y_tr).predict_proba(test),
    }
    bg_no = np.full(len(test), np.nan)
    bg_within = {k: np.full(len(test), np.nan) for k in cfg.labels.purchase_windows}
    for date in folds.split.test_dates:
        idx = np.flatnonzero(test["as_of"].to_numpy() == np.datetime64(date))
        ids = test["account_id"].to_numpy()[idx]
        bg = BGNBDChurn().fit(history.orders, date)
        bg_no[idx] = bg.predict_no_order(history.orders, date, cfg.labels.horizon_days, ids)
        for k in cfg.labels.purchase_windows:
            bg_within[k][idx] = bg.predict_purchase_within(history.orders, date, k, ids)
    churn["BG/NBD"] = bg_no
    timing = {
        "BG/NBD": pd.DataFrame({f"p_purchase_{k}d": v for k, v in bg_within.items()}),
    }
    return churn, timing


def evaluate(
    history: History,
    folds: Folds,
    feats: list[str],
    churn: ChurnModel,
    timing: TimingModel,
    cfg: Config,
) -> Evaluation:
    """Models and baselines on the same out-of-time test rows."""
    test = folds.test
    y = test["churn"].to_numpy(float)
    p = churn.predict_proba(test[feats])
    windows = cfg.labels.purchase_windows
    from ka_ml.modeling.predict import predict_frame

    tpred = predict_frame(timing, "timing", test[feats].reset_index(drop=True), windows)
    d = test["days_to_next"].to_numpy(float)
    e = test["next_order_observed"].to_numpy(bool)
    base_churn, base_timing = baseline_predictions(history, folds, feats, cfg)
    groups = test["account_id"].to_numpy()
    comparison = compare(y, p, base_churn, groups, seed=cfg.seed)
    model_timing = timing_scores(tpred, d, e, windows)
    # Every timing predictor is compared on the rows all of them can score.
    common = np.ones(len(test), bool)
    for bp in base_timing.values():
        common &= np.isfinite(bp.to_numpy(float)).all(axis=1)
    trows = [
        {
            "predictor": "ka_ml timing model",
            **timing_scores(tpred[common].reset_index(drop=True), d[common], e[common], windows),
        }
    ]
    for name, bp in base_timing.items():
        trows.append(
            {
                "predictor": name,
                **timing_scores(bp[common].reset_index(drop=True), d[common], e[common], windows),
            }
        )
    preds = (
        test[["account_id", "as_of", "churn"]].assign(churn_probability=p).reset_index(drop=True)
    )
    preds = pd.concat([preds, tpred.reset_index(drop=True)], axis=1)
    return Evaluation(
        churn=M.churn_metrics(y, p),
        churn_uncalibrated=M.churn_metrics(y, churn.predict_uncalibrated(test[feats])),
        lights=light_scores(y, p, cfg.health.red_threshold, cfg.health.yellow_threshold),
        timing=model_timing,
        comparison=comparison,
        timing_comparison=pd.DataFrame(trows),
        slices=_slices(test, y, p),
        test_predictions=preds,
    )


def _slices(test: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame({"y": y, "p": p})
    cols = []
    for c in ("abc_tier", "industry"):
        if c in test:
            df[c] = test[c].astype("object").fillna("unknown").to_numpy()
            cols.append(c)
    if "tenure_days" in test:
        df["tenure_band"] = tenure_band(test["tenure_days"]).to_numpy()
        cols.append("tenure_band")
    return M.slice_metrics(df, "y", "p", cols) if cols else pd.DataFrame()


def log_reference(churn: ChurnModel, ts: pd.DataFrame, feats: list[str], cfg: Config) -> None:
    """Attach the drift reference to the churn model (it travels to the scorer with the
    champion) and log it, with the package versions, to the active MLflow run."""
    import mlflow

    from ka_ml.monitoring.drift import training_reference
    from ka_ml.scoring.run import package_versions

    churn.reference_profile_ = training_reference(ts, feats, cfg.monitoring.psi_bins)
    mlflow.log_dict(churn.reference_profile_, "monitoring/reference_profile.json")
    mlflow.log_dict(package_versions(), "environment/package_versions.json")


@dataclass
class TrainReport:
    as_of: pd.Timestamp
    churn_definition: str
    split: dict[str, str]
    evaluation: Evaluation
    versions: dict[str, str]
    decisions: dict[str, str]
    run_id: str
    tracking_uri: str
    seconds: float


def run_training(
    history: History,
    cfg: Config,
    as_of: pd.Timestamp,
    progress: Progress = log.info,
    engine: str = "local",
) -> TrainReport:
    """The whole job; MLflow logging and registry decisions happen here only.

    ``engine="spark"`` builds the snapshots on Spark; training stays on this machine.
    """
    import mlflow

    from ka_ml.features.snapshots import build_training_set
    from ka_ml.modeling import registry
    from ka_ml.modeling.tracking import log_evaluation, log_inputs, promote

    t0 = time.perf_counter()
    client = registry.connect(cfg)
    known = history.before(as_of)
    progress(f"building training snapshots as of {as_of.date()} ...")
    if engine == "spark":
        from ka_ml.spark.features import build_training_set as build_on_spark

        ts = build_on_spark(known, cfg, as_of)
    else:
        ts = build_training_set(known, cfg, as_of)
    feats = feature_columns(ts)
    folds = make_folds(ts, cfg)
    definition = ",".join(sorted(ts["churn_definition"].dropna().unique()))
    progress(f"{len(ts)} snapshot rows, {len(feats)} features; split {folds.split.describe()}")
    check_labels(folds)  # before any MLflow run: a refused training leaves no trace

    def on_trial(name: str) -> Callable[[int, float | None, str], None]:
        return lambda n, v, s: progress(
            f"  {name} trial {n}: {s.lower()} score={v if v is None else round(v, 4)}"
        )

    with mlflow.start_run(run_name=f"train-{as_of.date()}") as run:
        log_inputs(known, cfg, as_of, feats, folds, definition)
        progress("tuning the churn model (Optuna, time-based CV) ...")
        churn, churn_tuning = fit_churn(folds, feats, cfg, on_trial("churn"))
        log_reference(churn, ts, feats, cfg)
        progress("tuning the purchase-timing model ...")
        timing, timing_tuning = fit_timing(folds, feats, cfg, on_trial("timing"))
        progress("evaluating out of time against the baselines ...")
        ev = evaluate(known, folds, feats, churn, timing, cfg)
        log_evaluation(ev, churn, timing, churn_tuning, timing_tuning, folds, feats)
        versions, decisions = promote(client, cfg, churn, timing, folds, feats, ev)
    return TrainReport(
        as_of,
        definition,
        folds.split.describe(),
        ev,
        versions,
        decisions,
        run.info.run_id,
        registry.tracking_uri(cfg),
        time.perf_counter() - t0,
    )
