"""How the purchase-timing model is tuned, backtested and fitted.

The hazard model (:class:`ka_ml.modeling.timing.TimingModel`) is fitted on the latest
snapshots with labels censored at each origin (and at the as-of for the final model), anchored
to the churn model at the horizon when churn means "no order", and its interval levels are
chosen so that the p10-p90 window covers ~80% of the next orders on the origins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit

from ka_ml.config import Config
from ka_ml.modeling.evaluate import (
    completed_interval_coverage,
)
from ka_ml.modeling.lightgbm_params import default_params
from ka_ml.modeling.timing import (
    INTERVAL_TARGET,
    HazardData,
    TimingModel,
    anchor_cdf,
    anchor_targets,
    interval_edges,
    open_beyond,
    quantiles_from_cdf,
    within_from_cdf,
)
from ka_ml.modeling.tuning import TuningResult, params_key, tune
from ka_ml.training.folds import Folds, account_groups, capped, censor_at

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
    """The hazard model on ``rows`` (at most ``tuning.max_timing_rows`` of them, see
    :func:`capped`) censored at ``boundary``: early stopping on held-out accounts, then a
    refit on every row (``refit=False``: the early-stopped model, which the backtest and
    tuning use: person-period fits dominate training time)."""
    X, d, e, tr, va = _probe_split(rows, boundary, feats, cfg)
    probe = _model(params, cfg).fit(X.iloc[tr], d[tr], e[tr], eval_set=(X.iloc[va], d[va], e[va]))
    if not refit:
        return probe
    rounds = max(probe.best_iteration_, 10)
    return _model(params, cfg).fit(X, d, e, num_boost_round=rounds)


def timing_probe_data(
    rows: pd.DataFrame,
    boundary: pd.Timestamp,
    feats: list[str],
    params: dict[str, Any],
    cfg: Config,
) -> HazardData:
    """The early-stopped fit of :func:`fit_timing_model` (``refit=False``) expanded and
    binned once: ``_model(p, cfg).fit_probe(data)`` is that fit for any parameters ``p``
    (tuning trials share it)."""
    X, d, e, tr, va = _probe_split(rows, boundary, feats, cfg)
    return _model(params, cfg).probe_data(
        X.iloc[tr], d[tr], e[tr], eval_set=(X.iloc[va], d[va], e[va])
    )


def _model(params: dict[str, Any], cfg: Config) -> TimingModel:
    edges = interval_edges(cfg.labels.purchase_windows)
    return TimingModel(edges=edges, params=params, random_state=cfg.seed)


def _probe_split(
    rows: pd.DataFrame, boundary: pd.Timestamp, feats: list[str], cfg: Config
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The capped rows' features, labels censored at ``boundary``, and the accounts split
    into training and early-stopping rows."""
    rows = capped(rows, cfg.tuning.max_timing_rows, cfg.seed)
    d, e = censor_at(rows, boundary)
    g = account_groups(rows)
    tr, va = next(GroupShuffleSplit(1, test_size=0.2, random_state=cfg.seed).split(rows, d, g))
    return rows[feats].reset_index(drop=True), d, e, tr, va


def _in_timing_dates(ts: pd.DataFrame, before: pd.Timestamp) -> pd.Series:
    """Which snapshot rows the timing model fitted at ``before`` learns from."""
    dates = _latest([d for d in ts["as_of"].unique() if d < before], TIMING_MAX_SNAPSHOTS)
    return ts["as_of"].isin(dates)


def timing_rows(ts: pd.DataFrame, before: pd.Timestamp) -> pd.DataFrame:
    return ts[_in_timing_dates(ts, before)].reset_index(drop=True)


def count_timing_rows(ts: pd.DataFrame, before: pd.Timestamp) -> int:
    """``len(timing_rows(ts, before))`` without copying the rows."""
    return int(_in_timing_dates(ts, before).sum())


def backtest_timing(
    ts: pd.DataFrame,
    folds: Folds,
    feats: list[str],
    params: dict[str, Any],
    cfg: Config,
    latest: TimingModel | None = None,
) -> pd.DataFrame:
    """Every origin: the hazard model fitted on the snapshots before it (labels censored at
    the origin), predicting the origin's rows; CDFs kept for the interval adjustment.
    ``latest``: that model for the latest origin when tuning already fitted it (the same
    rows, boundary and ``params``), so it is not fitted twice."""
    out = []
    for k, o in enumerate(folds.split.origins):
        m = (
            latest
            if k == 0 and latest is not None
            else fit_timing_model(timing_rows(ts, o.date), o.date, feats, params, cfg, refit=False)
        )
        te = folds.test_rows(o).reset_index(drop=True)
        F = m.cdf(te[feats])  # one pass of the hazards (the cost) for the frame and curves
        pred = m.frame_from_cdf(F, cfg.labels.purchase_windows, index=te.index)
        frame = pd.concat([te[["account_id", "as_of"]], pred], axis=1)
        frame["cdf"] = list(F)
        frame["learnt_days"] = m.learnt_days_  # its quantiles past it are open
        out.append(frame)
    pooled = pd.concat(out, ignore_index=True)
    order = folds.test[["account_id", "as_of"]]
    return order.merge(pooled, on=["account_id", "as_of"], how="left", validate="1:1")


def interval_levels(
    toot: pd.DataFrame, test: pd.DataFrame, edges: np.ndarray, target: float = INTERVAL_TARGET
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


def timing_anchor(ts: pd.DataFrame, cfg: Config, edges: np.ndarray) -> tuple[int | None, bool]:
    """(the horizon, when labelled rows' churn means "no order within it" and it is an
    interval edge: the timing curve is then anchored there to the churn model; whether rows
    whose churn is their contract's are left out of the anchor, as ``auto`` judges accounts
    under contract by it: their churn probability is not the chance of no order)."""
    used = ts["churn_definition"].dropna()
    h = cfg.labels.horizon_days
    if len(used) and bool((used == "no_order").any()) and h in set(edges.tolist()):
        return int(h), bool((used != "no_order").any())
    return None, False


def anchor_backtest(
    toot: pd.DataFrame,
    p_no_order: np.ndarray,
    edges: np.ndarray,
    days: int,
    cfg: Config,
    test: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The origins' timing forecasts anchored to the churn procedure's out-of-time
    probabilities on the same rows (as the scorer anchors the final model's); with ``test``
    (the rows' features), rows judged by their contract keep their own curve."""
    if test is not None:
        p_no_order = anchor_targets(test, p_no_order, skips_contracts=True)
    F = anchor_cdf(np.stack(list(toot["cdf"])), edges, p_no_order, days)
    toot = toot.copy()
    toot["cdf"] = list(F)
    within = within_from_cdf(F, edges, cfg.labels.purchase_windows)
    toot[list(within.columns)] = within.to_numpy()
    return toot


TIMING_SHARE = 4  # the timing model tunes with a quarter of tuning.n_trials ...
MIN_TIMING_TRIALS = 2  # ... and not at all below two: one trial is only the defaults again


def timing_budget(cfg: Config) -> tuple[int, float]:
    """The timing model's tuning budget: a quarter of ``tuning.n_trials`` (0, no tuning,
    below two: one trial would only be the defaults again) in half of
    ``tuning.timeout_seconds``."""
    n = cfg.tuning.n_trials // TIMING_SHARE
    return (n if n >= MIN_TIMING_TRIALS else 0), cfg.tuning.timeout_seconds / 2


def untuned_reason(cfg: Config) -> str:
    """Why :func:`timing_budget` allows no tuning, for the console ('' when it allows some)."""
    if timing_budget(cfg)[0]:
        return ""
    return (
        f" (its budget is a quarter of tuning.n_trials, {cfg.tuning.n_trials} // "
        f"{TIMING_SHARE}; tuning starts at {MIN_TIMING_TRIALS} trials, n_trials "
        f"{MIN_TIMING_TRIALS * TIMING_SHARE})"
    )


def learnt_range_note(model: TimingModel) -> str | None:
    """What the console says when the history is too short for the timing grid's range."""
    learnt, last = model.learnt_days_, float(model.edges_[-1])
    if learnt >= last:
        return None
    return (
        f"next-order dates are forecast up to {learnt:.0f} days ahead, not {last:.0f}: the "
        "timing model's training snapshots were watched no longer, so a date further out "
        "would be the trees' extrapolation; it is shown open-ended. A longer history lifts it."
    )


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
    edges = interval_edges(cfg.labels.purchase_windows)
    # the latest origin's person-period rows built once for every trial, its test rows,
    # and each trial's model (the backtest reuses the chosen one there)
    shared: dict[str, Any] = {}
    fitted: dict[tuple[tuple[str, Any], ...], TimingModel] = {}

    def fit_and_score(params: dict[str, Any], k: int) -> tuple[float, int]:
        if not shared:
            tr = timing_rows(ts, latest.date)
            shared["probe"] = timing_probe_data(tr, latest.date, feats, params, cfg)
            te = folds.test_rows(latest).reset_index(drop=True)
            shared["test"] = (te[feats], *censor_at(te, as_of))
        m = fitted[params_key(params)] = _model(params, cfg).fit_probe(shared["probe"])
        return m.log_likelihood(*shared["test"]), m.best_iteration_

    n_trials, timeout = timing_budget(cfg)
    res = (
        tune(
            "timing",
            fit_and_score,
            1,
            n_trials=n_trials,
            timeout=timeout,
            seed=cfg.seed,
            on_trial=on_trial,
        )
        if n_trials  # 0: the budget allows no tuning (timing_budget)
        else TuningResult(default_params(), float("nan"), 0, pd.DataFrame())
    )
    shared.clear()
    known = fitted.get(params_key(res.best_params))
    fitted.clear()
    toot = backtest_timing(ts, folds, feats, res.best_params, cfg, known)
    model = fit_timing_model(timing_rows(ts, as_of), as_of, feats, res.best_params, cfg)
    anchor, skips = timing_anchor(ts, cfg, edges) if p_no_order is not None else (None, False)
    if anchor is not None and p_no_order is not None:
        test = folds.test.reset_index(drop=True) if skips else None
        toot = anchor_backtest(toot, p_no_order, edges, anchor, cfg, test)
        model.attach(anchor_days=anchor, anchor_skips_contracts=skips)
    model.attach(interval_levels=interval_levels(toot, folds.test, edges))
    lo, hi = model.interval_levels_
    q = quantiles_from_cdf(np.stack(list(toot["cdf"])), edges, (lo, 0.5, hi))
    toot[["q10", "q50", "q90"]] = open_beyond(q, toot["learnt_days"]).to_numpy()
    return model, res, toot
