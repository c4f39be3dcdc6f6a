"""`ka-ml train`: snapshots -> rolling origins -> tuned, chosen, calibrated models -> MLflow.

The procedure is judged as it is deployed. Each test origin ``T`` (the latest labelled
snapshots, ``tuning.backtest_origins`` of them) gets the whole procedure fitted only on
snapshots whose label window closed by ``T`` (the purge is the horizon): trees, the
logistic part, and the baselines. Parameters (Optuna, defaults first), the model family
(LightGBM, LightGBM + logistic blend, logistic) and the calibration (none, Platt,
isotonic; cross-fitted) are chosen on those origins; what is reported and gated is the
pooled out-of-time result. The champion candidate is then refitted on every labelled
snapshot (churn) and on the latest snapshots censored at the as-of date (timing).

Pure steps take frames and config; ``run_training`` wires them together and is the only
place that talks to MLflow.
"""

from __future__ import annotations

import logging
import re
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
from ka_ml.modeling.churn import Calibrator, ChurnModel
from ka_ml.modeling.evaluate import (
    compare,
    completed_interval_coverage,
    light_scores,
    tenure_band,
    timing_scores,
)
from ka_ml.modeling.lgb_utils import default_params, sigmoid
from ka_ml.modeling.predict import predict_frame
from ka_ml.modeling.split import Backtest, Origin, rolling_origins
from ka_ml.modeling.timing import (
    TimingModel,
    anchor_cdf,
    interval_edges,
    quantiles_from_cdf,
    within_from_cdf,
)
from ka_ml.modeling.tuning import TuningResult, tune

log = logging.getLogger("ka_ml.train")

KEY_COLUMNS = ("account_id", "as_of")
LABEL_COLUMNS = ("churn", "churn_definition", "days_to_next", "next_order_observed")
Progress = Callable[[str], None]


def feature_columns(ts: pd.DataFrame) -> list[str]:
    return [c for c in ts.columns if c not in (*KEY_COLUMNS, *LABEL_COLUMNS)]


@dataclass(frozen=True)
class Folds:
    """The labelled snapshots, the rolling test origins, and the pooled test rows."""

    split: Backtest
    labelled: pd.DataFrame
    test: pd.DataFrame  # every origin's snapshot rows (the out-of-time test rows, pooled)

    def train_rows(self, origin: Origin) -> pd.DataFrame:
        return self.labelled[self.labelled["as_of"].isin(list(origin.train_dates))]

    def test_rows(self, origin: Origin) -> pd.DataFrame:
        return self.labelled[self.labelled["as_of"] == origin.date]


def _purge(cfg: Config) -> int:
    return cfg.labels.horizon_days if cfg.tuning.purge_days is None else cfg.tuning.purge_days


def make_folds(ts: pd.DataFrame, cfg: Config) -> Folds:
    """Rolling origins over the snapshots whose churn label is fully observed."""
    labelled = ts[ts["churn"].notna()].reset_index(drop=True)
    bt = rolling_origins(
        labelled["as_of"].unique(), purge_days=_purge(cfg), n_origins=cfg.tuning.backtest_origins
    )
    dates = [o.date for o in bt.origins]
    test = labelled[labelled["as_of"].isin(dates)].reset_index(drop=True)
    return Folds(bt, labelled, test)


def check_labels(folds: Folds) -> None:
    """Refuse origins whose training or test rows hold a single churn class: nothing could
    be learned or measured."""
    for o in folds.split.origins:
        for where, df in (("training", folds.train_rows(o)), ("test", folds.test_rows(o))):
            y = df["churn"].to_numpy(float)
            n_pos = int(np.sum(y == 1))
            if n_pos == 0 or n_pos == len(y):
                kind = "no churners" if n_pos == 0 else "only churners"
                dates = sorted({str(pd.Timestamp(d).date()) for d in df["as_of"]})
                raise ModelError(
                    f"The {where} snapshots of the test origin {o.date.date()} "
                    f"({', '.join(dates) or 'none'}) contain {kind} ({len(y)} rows): a churn "
                    "model cannot be trained and tested.",
                    "use a longer history or more accounts, check labels.churn_definition and "
                    "labels.horizon_days against the data, or set a different --as-of.",
                )


def censor_at(df: pd.DataFrame, boundary: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Timing labels as they were known at ``boundary`` (re-censored, nothing later seen)."""
    limit = (pd.Timestamp(boundary) - df["as_of"]).dt.days.to_numpy(float)
    d = df["days_to_next"].to_numpy(float)
    e = df["next_order_observed"].to_numpy(bool)
    return np.minimum(d, limit), e & (d < limit)


# -- churn ------------------------------------------------------------------------------
FAMILIES = ("lightgbm", "blend", "logistic")
# tuned parameters replace the defaults only when they gain this much validation ROC AUC
TUNING_MIN_GAIN = 0.002


def _groups(df: pd.DataFrame) -> np.ndarray:
    return df["account_id"].astype("str").to_numpy()


def fit_churn_model(
    rows: pd.DataFrame, feats: list[str], params: dict[str, Any], cfg: Config
) -> ChurnModel:
    """The churn procedure on ``rows``: trees (early stopping on held-out accounts, then a
    refit on every row) and the logistic part, both on the same rows."""
    y = rows["churn"].to_numpy()
    model = ChurnModel(params, seed=cfg.seed).fit_grouped(rows[feats], y, _groups(rows))
    return model.fit_linear(rows[feats], y)


def tune_churn(folds: Folds, feats: list[str], cfg: Config, on_trial: Any = None) -> TuningResult:
    """Optuna over the rolling origins (trees only): mean out-of-time ROC AUC.

    The defaults are trial 0; other parameters replace them only when they gain
    ``TUNING_MIN_GAIN``: a small gain on a few origins is noise, and tuned parameters that
    won on short-gap folds lost on real data before.
    """
    origins = folds.split.origins

    def fit_and_score(params: dict[str, Any], k: int) -> tuple[float, int]:
        tr, te = folds.train_rows(origins[k]), folds.test_rows(origins[k])
        m = ChurnModel(params, seed=cfg.seed).fit_grouped(
            tr[feats], tr["churn"].to_numpy(), _groups(tr), refit=False
        )
        return M.roc_auc(te["churn"].to_numpy(), m.tree_margin(te[feats])), m.best_iteration_

    res = tune(
        "churn",
        fit_and_score,
        len(origins),
        n_trials=cfg.tuning.n_trials,
        timeout=cfg.tuning.timeout_seconds,
        seed=cfg.seed,
        on_trial=on_trial,
    )
    return keep_defaults_unless_better(res)


def keep_defaults_unless_better(res: TuningResult) -> TuningResult:
    trials = res.trials
    if trials.empty or "value" not in trials or not np.isfinite(res.best_score):
        return res
    first = trials[trials["number"] == 0]["value"]
    default_score = float(first.iloc[0]) if len(first) else float("nan")
    if np.isfinite(default_score) and res.best_score < default_score + TUNING_MIN_GAIN:
        return TuningResult(default_params(), default_score, res.best_rounds, trials)
    return res


def backtest_churn(
    history: History, folds: Folds, feats: list[str], params: dict[str, Any], cfg: Config
) -> pd.DataFrame:
    """Every origin: the procedure fitted on its past, margins of each family and the
    baselines' probabilities on its test rows (one frame, rows in ``folds.test`` order)."""
    out = []
    for o in folds.split.origins:
        tr, te = folds.train_rows(o), folds.test_rows(o)
        m = fit_churn_model(tr, feats, params, cfg)
        frame = te[["account_id", "as_of", "churn"]].reset_index(drop=True)
        for family in FAMILIES:
            frame[f"margin_{family}"] = m.set_family(family).margin(te[feats])
        for name, p in origin_baselines(history, tr, te, o.date, cfg).items():
            frame[name] = p
        out.append(frame)
    pooled = pd.concat(out, ignore_index=True)
    order = folds.test[["account_id", "as_of"]]
    return order.merge(pooled, on=["account_id", "as_of"], how="left", validate="1:1")


def origin_baselines(
    history: History, tr: pd.DataFrame, te: pd.DataFrame, date: pd.Timestamp, cfg: Config
) -> dict[str, np.ndarray]:
    """Recency and RFM logistic regression fitted on the origin's training rows, BG/NBD on
    the orders before it: P(churn) on the origin's test rows."""
    from ka_ml.modeling.baselines import BGNBDChurn, RecencyBaseline, RFMLogistic

    y = tr["churn"].to_numpy()
    ids = te["account_id"].to_numpy()
    bg = BGNBDChurn().fit(history.orders, date)
    return {
        "recency only": RecencyBaseline().fit(tr, y).predict_proba(te),
        "RFM logistic regression": RFMLogistic().fit(tr, y).predict_proba(te),
        "BG/NBD": bg.predict_no_order(history.orders, date, cfg.labels.horizon_days, ids),
    }


# a family replaces the blend only when it ranks this much better on the origins: closer
# than that is noise (CDNOW origins: the three families within 0.001-0.004 of each other)
FAMILY_MIN_GAIN = 0.001


def choose_family(oot: pd.DataFrame) -> tuple[str, dict[str, float]]:
    """The family with the best pooled out-of-time ROC AUC; within ``FAMILY_MIN_GAIN`` of
    the blend, the blend (an average of two models rarely loses to either)."""
    y = oot["churn"].to_numpy(float)
    aucs = {f: M.roc_auc(y, oot[f"margin_{f}"].to_numpy()) for f in FAMILIES}
    best = max(FAMILIES, key=aucs.__getitem__)
    return (best if aucs[best] > aucs["blend"] + FAMILY_MIN_GAIN else "blend"), aucs


def final_churn(
    folds: Folds,
    feats: list[str],
    params: dict[str, Any],
    family: str,
    oot: pd.DataFrame,
    cfg: Config,
) -> tuple[ChurnModel, np.ndarray]:
    """The champion candidate: the procedure on every labelled snapshot, the chosen family,
    and a calibration only where two checks agree. Returns the model and the out-of-time
    probabilities that are reported (the chosen map judged forward across origins).

    1. Forward across origins: a map fitted on older origin models' margins is judged on a
       later model's. This sees drift, but the origin models had less history than the
       final model (on CDNOW 1997-09-30 they over-predicted churn by 0.05-0.06, the final
       model by 0.015), so a map that corrects them can mis-correct it.
    2. In the training period, on accounts held out from procedures like the final one
       (three account folds over every labelled snapshot): the map must also fit the
       final model's kind of margins.
    """
    model = fit_churn_model(folds.labelled, feats, params, cfg).set_family(family)
    cal = choose_calibration(folds, feats, params, family, oot, cfg)
    margin = oot[f"margin_{family}"].to_numpy()
    p_oot = cal.crossfit_ if cal.crossfit_ is not None else cal.transform(margin)
    cal.crossfit_ = None
    model.calibrator_ = cal
    return model, np.asarray(p_oot, float)


def choose_calibration(
    folds: Folds,
    feats: list[str],
    params: dict[str, Any],
    family: str,
    oot: pd.DataFrame,
    cfg: Config,
) -> Calibrator:
    """The two checks of :func:`final_churn`: forward across origins, then in period."""
    y = oot["churn"].to_numpy(float)
    origin = oot["as_of"].astype("int64").to_numpy()
    cal = Calibrator.choose(oot[f"margin_{family}"].to_numpy(), y, cfg.seed, origin)
    if cal.method == "none":
        return cal
    held_out, y_held = held_out_margins(folds.labelled, feats, params, family, cfg)
    in_period = Calibrator.choose(held_out, y_held, cfg.seed)
    if in_period.method == cal.method:
        return cal
    scores = {**cal.cv_brier_, "in_period_method": in_period.method}
    return Calibrator(method="none", model_="none", cv_brier_=scores)  # type: ignore[arg-type]


def held_out_margins(
    rows: pd.DataFrame, feats: list[str], params: dict[str, Any], family: str, cfg: Config
) -> tuple[np.ndarray, np.ndarray]:
    """Margins of the procedure on accounts it did not see (3 account folds, all dates)."""
    from sklearn.model_selection import GroupKFold

    margin = np.empty(len(rows))
    for tr, va in GroupKFold(n_splits=3).split(rows, groups=_groups(rows)):
        m = fit_churn_model(rows.iloc[tr], feats, params, cfg).set_family(family)
        margin[va] = m.margin(rows.iloc[va][feats])
    return margin, rows["churn"].to_numpy(float)


# -- timing -----------------------------------------------------------------------------
TIMING_MAX_SNAPSHOTS = 6  # person-period rows grow with snapshots x intervals


def _latest(dates: list[pd.Timestamp], k: int) -> list[pd.Timestamp]:
    """At most ``k`` dates, evenly thinned from the latest backwards."""
    dates = sorted(dates)
    step = int(np.ceil(len(dates) / k)) if len(dates) > k else 1
    return dates[::-1][::step][::-1]


def fit_timing_model(
    rows: pd.DataFrame,
    boundary: pd.Timestamp,
    feats: list[str],
    params: dict[str, Any],
    cfg: Config,
    *,
    refit: bool = True,
) -> TimingModel:
    """The hazard model on ``rows`` censored at ``boundary``: early stopping on held-out
    accounts, then a refit on every row (``refit=False``: the early-stopped model, which
    the backtest and tuning use: person-period fits dominate training time)."""
    from sklearn.model_selection import GroupShuffleSplit

    edges = interval_edges(cfg.labels.purchase_windows)
    d, e = censor_at(rows, boundary)
    g = _groups(rows)
    tr, va = next(GroupShuffleSplit(1, test_size=0.2, random_state=cfg.seed).split(rows, d, g))
    X = rows[feats].reset_index(drop=True)
    probe = TimingModel(params, edges, seed=cfg.seed).fit(
        X.iloc[tr], d[tr], e[tr], X_valid=X.iloc[va], duration_valid=d[va], event_valid=e[va]
    )
    if not refit:
        return probe
    rounds = max(probe.best_iteration_, 10)
    return TimingModel(params, edges, seed=cfg.seed).fit(X, d, e, num_boost_round=rounds)


def timing_rows(ts: pd.DataFrame, before: pd.Timestamp) -> pd.DataFrame:
    dates = _latest([d for d in ts["as_of"].unique() if d < before], TIMING_MAX_SNAPSHOTS)
    return ts[ts["as_of"].isin(dates)].reset_index(drop=True)


def backtest_timing(
    ts: pd.DataFrame, folds: Folds, feats: list[str], params: dict[str, Any], cfg: Config
) -> pd.DataFrame:
    """Every origin: the hazard model fitted on the snapshots before it (labels censored at
    the origin), predicting the origin's rows; CDFs kept for the interval adjustment."""
    out = []
    for o in folds.split.origins:
        m = fit_timing_model(timing_rows(ts, o.date), o.date, feats, params, cfg, refit=False)
        te = folds.test_rows(o).reset_index(drop=True)
        pred = predict_frame(m, "timing", te[feats], cfg.labels.purchase_windows)
        frame = pd.concat([te[["account_id", "as_of"]], pred], axis=1)
        frame["cdf"] = list(m.cdf(te[feats]))
        out.append(frame)
    pooled = pd.concat(out, ignore_index=True)
    order = folds.test[["account_id", "as_of"]]
    return order.merge(pooled, on=["account_id", "as_of"], how="left", validate="1:1")


def interval_levels(
    toot: pd.DataFrame, test: pd.DataFrame, edges: np.ndarray, target: float = 0.8
) -> tuple[float, float]:
    """Symmetric CDF levels whose interval held ``target`` of next orders out of time.

    A split-conformal adjustment: on the origins' predictions, the levels (a, 1 - a) are
    chosen from a grid so the p10-p90 dates cover the next orders placed within the
    model's range closest to 80%, rows censored by the short follow-up after an origin
    completed by their forecast (:func:`completed_interval_coverage`; counting only the
    determinable rows selects early orders and widened the interval on CDNOW). The nominal
    (0.1, 0.9) stays when the origins cannot tell.
    """
    F = np.stack(list(toot["cdf"]))
    d = test["days_to_next"].to_numpy(float)
    e = test["next_order_observed"].to_numpy(bool)
    best, best_err = (0.1, 0.9), np.inf
    for a in np.round(np.arange(0.02, 0.26, 0.01), 2):
        q = quantiles_from_cdf(F, edges, (float(a), float(1 - a)))
        cov = completed_interval_coverage(
            F, edges, d, e, q.iloc[:, 0].to_numpy(), q.iloc[:, 1].to_numpy()
        )
        if np.isfinite(cov) and abs(cov - target) < best_err - 1e-9:
            best, best_err = (float(a), float(1 - a)), abs(cov - target)
    return best


def timing_anchor(ts: pd.DataFrame, cfg: Config, edges: np.ndarray) -> int | None:
    """The horizon, when every labelled row's churn means "no order within it" and it is an
    interval edge: the timing curve is then anchored there to the churn model."""
    used = ts["churn_definition"].dropna()
    h = cfg.labels.horizon_days
    if len(used) and bool((used == "no_order").all()) and h in set(edges.tolist()):
        return int(h)
    return None


def anchor_backtest(
    toot: pd.DataFrame, p_no_order: np.ndarray, edges: np.ndarray, days: int, cfg: Config
) -> pd.DataFrame:
    """The origins' timing forecasts anchored to the churn procedure's out-of-time
    probabilities on the same rows (as the scorer anchors the final model's)."""
    F = anchor_cdf(np.stack(list(toot["cdf"])), edges, p_no_order, days)
    toot = toot.copy()
    toot["cdf"] = list(F)
    within = within_from_cdf(F, edges, cfg.labels.purchase_windows)
    toot[list(within.columns)] = within.to_numpy()
    return toot


def fit_timing(
    ts: pd.DataFrame,
    folds: Folds,
    feats: list[str],
    as_of: pd.Timestamp,
    cfg: Config,
    on_trial: Any = None,
    p_no_order: np.ndarray | None = None,
) -> tuple[TimingModel, TuningResult, pd.DataFrame]:
    """Tune the hazard model on the latest origin (a quarter of ``tuning.n_trials``; none
    below two), backtest it on every origin, adjust its interval on those predictions, and
    fit it on the latest snapshots censored at as_of.

    ``p_no_order``: the churn procedure's out-of-time probabilities on ``folds.test``; when
    churn is "no order within the horizon" the curves are anchored to them (on the origins
    here, at scoring time to the champion churn model's), before the interval is adjusted.
    """
    latest = folds.split.origins[0]
    tr = timing_rows(ts, latest.date)
    te = folds.test_rows(latest).reset_index(drop=True)
    edges = interval_edges(cfg.labels.purchase_windows)

    def fit_and_score(params: dict[str, Any], k: int) -> tuple[float, int]:
        m = fit_timing_model(tr, latest.date, feats, params, cfg, refit=False)
        d, e = censor_at(te, as_of)
        return m.log_likelihood(te[feats], d, e), m.best_iteration_

    n_trials = cfg.tuning.n_trials // 4
    res = (
        tune(
            "timing",
            fit_and_score,
            1,
            n_trials=n_trials,
            timeout=cfg.tuning.timeout_seconds / 2,
            seed=cfg.seed,
            on_trial=on_trial,
        )
        if n_trials >= 2  # one trial would only be the defaults again
        else TuningResult(default_params(), float("nan"), 0, pd.DataFrame())
    )
    toot = backtest_timing(ts, folds, feats, res.best_params, cfg)
    model = fit_timing_model(timing_rows(ts, as_of), as_of, feats, res.best_params, cfg)
    anchor = timing_anchor(ts, cfg, edges) if p_no_order is not None else None
    if anchor is not None and p_no_order is not None:
        toot = anchor_backtest(toot, p_no_order, edges, anchor, cfg)
        model.anchor_days_ = anchor
    model.interval_levels_ = interval_levels(toot, folds.test, edges)
    lo, hi = model.interval_levels_
    q = quantiles_from_cdf(np.stack(list(toot["cdf"])), edges, (lo, 0.5, hi))
    toot[["q10", "q50", "q90"]] = q.to_numpy()
    return model, res, toot


# -- evaluation -------------------------------------------------------------------------
@dataclass
class Evaluation:
    """The out-of-time performance of the training procedure, pooled over the origins."""

    churn: dict[str, float]
    churn_uncalibrated: dict[str, float]
    lights: dict[str, float]
    timing: dict[str, float]
    comparison: pd.DataFrame
    timing_comparison: pd.DataFrame
    slices: pd.DataFrame
    test_predictions: pd.DataFrame = field(repr=False)
    per_origin: pd.DataFrame = field(default_factory=pd.DataFrame)
    family: str = "lightgbm"
    family_scores: dict[str, float] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    expected: dict[str, float] = field(default_factory=dict)
    calendar_rule: dict[str, float] = field(default_factory=dict)  # empty: no contracts


BASELINES = ("recency only", "RFM logistic regression", "BG/NBD")
CALENDAR_FEATURE = "contract_days_to_end"


def calendar_rule_scores(test: pd.DataFrame) -> np.ndarray | None:
    """The contract calendar as the only churn score: minus the days to the end of the
    account's latest contract, so contracts ending soonest, and contracts already past
    their end, rank as the riskiest. An account without any contract scores as if its
    contract ended today (0 days): nothing binds it, so the calendar calls it as risky as
    a contract expiring now (of the simple choices, the one the calendar ranks best with
    on the demo). ``None`` when the data has no contracts table (no such feature)."""
    if CALENDAR_FEATURE not in test:
        return None
    days = test[CALENDAR_FEATURE].to_numpy(float)
    return -np.where(np.isnan(days), 0.0, days)


def calendar_rule_metrics(test: pd.DataFrame) -> dict[str, float]:
    """ROC AUC of :func:`calendar_rule_scores` on the pooled out-of-time rows; empty
    when there is no contract calendar."""
    score = calendar_rule_scores(test)
    if score is None:
        return {}
    return {"roc_auc": M.roc_auc(test["churn"].to_numpy(float), score)}


def per_origin_table(oot: pd.DataFrame, p: np.ndarray) -> pd.DataFrame:
    """ROC AUC, Brier and calibration in the large per origin, model beside baselines."""
    rows = []
    for date, idx in oot.groupby("as_of").indices.items():
        y = oot["churn"].to_numpy(float)[idx]
        for name, q in (
            ("ka_ml churn model", p[idx]),
            *((b, oot[b].to_numpy()[idx]) for b in BASELINES),
        ):
            ok = np.isfinite(q)
            rows.append(
                {
                    "origin": str(pd.Timestamp(str(date)).date()),
                    "predictor": name,
                    "rows": int(ok.sum()),
                    "roc_auc": M.roc_auc(y[ok], q[ok]),
                    "brier": M.brier(y[ok], q[ok]),
                    "mean_p": float(np.mean(q[ok])),
                    "churn_rate": float(np.mean(y[ok])),
                    "expected_roc_auc": M.expected_roc_auc(q[ok])
                    if name == "ka_ml churn model"
                    else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def expected_at(p_now: np.ndarray, per_origin: pd.DataFrame) -> dict[str, float]:
    """What the scores should achieve on the population being scored, from the model's own
    probabilities (assuming its calibration holds there), with the error that estimate made
    on the origins, where the outcomes are known.

    The origins lie at least a horizon before the as-of; when the population moves (a
    cohort ages, a portfolio grows) the AUC on them is a biased estimate of the AUC at
    the as-of, in either direction. The expected AUC sees the as-of population.
    """
    model = per_origin[per_origin["predictor"] == "ka_ml churn model"]
    err = (model["expected_roc_auc"] - model["roc_auc"]).to_numpy(float)
    p = np.asarray(p_now, dtype=float)
    return {
        "roc_auc": M.expected_roc_auc(p),
        "brier": float(np.mean(p * (1 - p))) if len(p) else float("nan"),
        "mean_p": float(np.mean(p)) if len(p) else float("nan"),
        "accounts": float(len(p)),
        "origin_error": float(np.mean(err)) if len(err) else float("nan"),
        "origin_abs_error": float(np.max(np.abs(err))) if len(err) else float("nan"),
    }


def evaluate(
    folds: Folds,
    churn: ChurnModel,
    p: np.ndarray,
    oot: pd.DataFrame,
    toot: pd.DataFrame,
    history: History,
    cfg: Config,
    family_scores: dict[str, float],
    p_now: np.ndarray | None = None,
) -> Evaluation:
    """The procedure's pooled out-of-time metrics beside the baselines on the same rows."""
    test = folds.test
    y = test["churn"].to_numpy(float)
    windows = cfg.labels.purchase_windows
    d = test["days_to_next"].to_numpy(float)
    e = test["next_order_observed"].to_numpy(bool)
    base_churn = {b: oot[b].to_numpy(float) for b in BASELINES}
    comparison = compare(y, p, base_churn, _groups(test), seed=cfg.seed)
    tpred = toot.drop(columns=["account_id", "as_of", "cdf"], errors="ignore")
    bg_timing = bgnbd_within(history, folds, cfg)
    common = np.isfinite(bg_timing.to_numpy(float)).all(axis=1)
    trows = [
        {
            "predictor": name,
            **timing_scores(pr[common].reset_index(drop=True), d[common], e[common], windows),
        }
        for name, pr in (("ka_ml timing model", tpred), ("BG/NBD", bg_timing))
    ]
    preds = (
        test[["account_id", "as_of", "churn"]].assign(churn_probability=p).reset_index(drop=True)
    )
    preds = pd.concat([preds, tpred.reset_index(drop=True)], axis=1)
    cal = churn.calibrator_
    per_origin = per_origin_table(oot, p)
    return Evaluation(
        churn=M.churn_metrics(y, p),
        churn_uncalibrated=M.churn_metrics(y, sigmoid(oot[f"margin_{churn.family_}"].to_numpy())),
        lights=origin_lights(test, y, p, cfg),
        timing=timing_scores(tpred, d, e, windows) | completed_coverage(toot, d, e, windows),
        comparison=comparison,
        timing_comparison=pd.DataFrame(trows),
        slices=_slices(test, y, p),
        test_predictions=preds,
        per_origin=per_origin,
        family=churn.family_,
        family_scores=family_scores,
        calibration={"method": cal.method if cal else "none", **(cal.cv_brier_ if cal else {})},
        notes=[n for n in (folds.split.note,) if n],
        expected={} if p_now is None else expected_at(p_now, per_origin),
        calendar_rule=calendar_rule_metrics(test),
    )


def origin_lights(
    test: pd.DataFrame, y: np.ndarray, p: np.ndarray, cfg: Config
) -> dict[str, float]:
    """The lights the scorer would have shown on each origin (its lifecycle states and light
    rule, no previous week), judged against what happened: precision and recall of red and
    of red + yellow among the accounts that get a light, the share of them that was red,
    and the churn ROC AUC on them (lapsed accounts, the easy part of any ranking, left out).
    """
    from ka_ml.scoring.health import assign_lights
    from ka_ml.scoring.lifecycle import lifecycle_states

    lit = (lifecycle_states(test, cfg)["lifecycle"] != "lapsed").to_numpy()
    light = np.full(len(test), "", dtype=object)
    for idx in test.groupby("as_of").indices.values():
        light[idx], _ = assign_lights(p[idx], None, cfg.health, eligible=lit[idx])
    out = light_scores(y[lit], light[lit] == "red", np.isin(light[lit], ["red", "yellow"]))
    out["lit_share"] = float(lit.mean()) if len(lit) else float("nan")
    out["lit_roc_auc"] = M.roc_auc(y[lit], p[lit]) if lit.any() else float("nan")
    return out


def completed_coverage(
    toot: pd.DataFrame, d: np.ndarray, e: np.ndarray, windows: list[int]
) -> dict[str, float]:
    """The interval's coverage of next orders within the model's range, rows censored by the
    origins' short follow-up completed by their forecast (what the levels were chosen on)."""
    if "cdf" not in toot:
        return {}
    edges = interval_edges(windows)
    F = np.stack(list(toot["cdf"]))
    cov = completed_interval_coverage(
        F, edges, d, e, toot["q10"].to_numpy(float), toot["q90"].to_numpy(float)
    )
    return {"p10_p90_coverage_completed": cov}


def model_card(ev: Evaluation) -> dict[str, Any]:
    """The churn model's card: the family that won on the origins and by how much, and the
    pooled out-of-time figures beside the best baseline's."""
    base = ev.comparison[ev.comparison["predictor"] != "ka_ml churn model"]
    top = base.iloc[int(base["roc_auc"].to_numpy().argmax())]
    others = {k: v for k, v in ev.family_scores.items() if k != ev.family}
    return {
        "family": ev.family,
        "family_roc_auc": ev.family_scores.get(ev.family, float("nan")),
        "family_margin": ev.family_scores.get(ev.family, float("nan"))
        - max(others.values(), default=float("nan")),
        "calibration": str(ev.calibration.get("method", "none")),
        "oot_roc_auc": float(ev.churn["roc_auc"]),
        "oot_brier": float(ev.churn["brier"]),
        "best_baseline": str(top["predictor"]),
        "best_baseline_roc_auc": float(top["roc_auc"]),
        "origins": int(ev.per_origin["origin"].nunique()) if not ev.per_origin.empty else 0,
        **cycle_figures(ev.timing),
    }


def cycle_figures(timing: dict[str, float]) -> dict[str, float]:
    """The purchase-cycle record managers see: p10-p90 coverage and the shortest window's
    accuracy beside the always-majority answer (empty when not measured)."""
    windows = sorted(int(k[1:-9]) for k in timing if re.fullmatch(r"p\d+_accuracy", k))
    out: dict[str, float] = {}
    cov = timing.get("p10_p90_coverage", float("nan"))
    if np.isfinite(cov):
        out["timing_coverage"] = float(cov)
    if windows:
        k = windows[0]
        out |= {
            "window_days": float(k),
            "window_accuracy": float(timing[f"p{k}_accuracy"]),
            "window_majority_accuracy": float(timing.get(f"p{k}_majority_accuracy", np.nan)),
        }
    return out


def bgnbd_within(history: History, folds: Folds, cfg: Config) -> pd.DataFrame:
    """BG/NBD's P(order within k days) on every origin's rows (fitted on orders before it)."""
    from ka_ml.modeling.baselines import BGNBDChurn

    test = folds.test
    windows = cfg.labels.purchase_windows
    out = {k: np.full(len(test), np.nan) for k in windows}
    for o in folds.split.origins:
        idx = np.flatnonzero(test["as_of"].to_numpy() == np.datetime64(o.date))
        ids = test["account_id"].to_numpy()[idx]
        bg = BGNBDChurn().fit(history.orders, o.date)
        for k in windows:
            out[k][idx] = bg.predict_purchase_within(history.orders, o.date, k, ids)
    return pd.DataFrame({f"p_purchase_{k}d": v for k, v in out.items()})


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


def train_churn(
    history: History,
    folds: Folds,
    feats: list[str],
    cfg: Config,
    progress: Progress,
    on_trial: Callable[[str], Any],
) -> tuple[ChurnModel, TuningResult, tuple[np.ndarray, pd.DataFrame, dict[str, float]]]:
    """Tune, backtest every family on the origins, choose, calibrate, refit on everything."""
    progress(f"tuning the churn model on {len(folds.split.origins)} rolling origins ...")
    tuning = tune_churn(folds, feats, cfg, on_trial("churn"))
    progress("backtesting the churn procedure and the baselines on every origin ...")
    oot = backtest_churn(history, folds, feats, tuning.best_params, cfg)
    family, scores = choose_family(oot)
    progress(
        "model family on the origins (pooled ROC AUC): "
        + ", ".join(f"{f} {v:.4f}" for f, v in scores.items())
        + f" -> {family}"
    )
    progress(f"refitting on all {len(folds.split.final_dates)} labelled snapshots ...")
    churn, p = final_churn(folds, feats, tuning.best_params, family, oot, cfg)
    return churn, tuning, (p, oot, scores)


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

    from ka_ml.features.build import feature_frames
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
    if folds.split.note:
        progress(f"note: {folds.split.note}")
    check_labels(folds)  # before any MLflow run: a refused training leaves no trace

    def on_trial(name: str) -> Callable[[int, float | None, str], None]:
        return lambda n, v, s: progress(
            f"  {name} trial {n}: {s.lower()} score={v if v is None else round(v, 4)}"
        )

    with mlflow.start_run(run_name=f"train-{as_of.date()}") as run:
        log_inputs(known, cfg, as_of, feats, folds, definition)
        churn, churn_tuning, ev_parts = train_churn(known, folds, feats, cfg, progress, on_trial)
        log_reference(churn, ts, feats, cfg)
        progress("tuning, backtesting and fitting the purchase-timing model ...")
        timing, timing_tuning, toot = fit_timing(
            ts, folds, feats, as_of, cfg, on_trial("timing"), p_no_order=ev_parts[0]
        )
        p_now = churn.predict_proba(feature_frames(known, [as_of], cfg)[as_of])
        ev = evaluate(folds, churn, ev_parts[0], ev_parts[1], toot, known, cfg, ev_parts[2], p_now)
        churn.card_ = model_card(ev)
        mlflow.log_dict(churn.card_, "model_card.json")
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
