"""Out-of-time evaluation: the models and the baselines on the same test rows.

Churn: ROC AUC, PR AUC, Brier, log loss, top-decile lift, expected calibration error,
plus precision/recall of the red and red+yellow lights. Timing: per purchase window AUC,
Brier and accuracy beside the majority-class accuracy, Harrell's concordance of the
median forecast, MAE in days on observed next orders, and p10-p90 coverage. Deltas
against each baseline come with paired (account-clustered) bootstrap intervals.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ka_ml.modeling import metrics as M
from ka_ml.modeling.timing import cdf_at, forecast_day


def churn_scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return M.churn_metrics(np.asarray(y, float), np.asarray(p, float))


def light_scores(y: np.ndarray, red: np.ndarray, red_yellow: np.ndarray) -> dict[str, float]:
    """Precision and recall of red, and of red+yellow, against the churn labels, with the
    counts behind them (``red_count``, ``red_churned``: how many rows were red and how many
    of those churned; a precision of 0.00 on 8 rows reads differently from one on 800). A
    figure without a denominator (no red row, no churner) is NaN, not 0: nothing was
    measured, which a 0.00 would misreport as a light that caught nobody."""
    y = np.asarray(y, bool)
    out: dict[str, float] = {}
    for name, flag in (
        ("red", np.asarray(red, bool)),
        ("red_yellow", np.asarray(red_yellow, bool)),
    ):
        tp = float(np.sum(flag & y))
        out[f"{name}_precision"] = tp / float(flag.sum()) if flag.any() else float("nan")
        out[f"{name}_recall"] = tp / float(y.sum()) if y.any() else float("nan")
        out[f"{name}_share"] = float(flag.mean()) if len(flag) else float("nan")
        out[f"{name}_count"] = float(flag.sum())
        out[f"{name}_churned"] = tp
    out["base_rate"] = float(y.mean()) if len(y) else float("nan")
    return out


def follow_up_days(dates: Any, duration: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Each row's follow-up in days: how long after its snapshot orders were watched for.

    Every row of one snapshot date is watched up to the same end, and a row without an
    order is censored exactly there, so a date's follow-up is its order-free rows'
    duration; inf when every row of the date ordered (then each window's outcome is known).
    """
    d = np.asarray(duration, float)
    e = np.asarray(event, bool)
    codes, _ = pd.factorize(pd.Series(np.asarray(dates)), use_na_sentinel=False)
    censored = pd.Series(np.where(e, -np.inf, d)).groupby(codes).transform("max")
    out = censored.to_numpy(float)
    return np.where(np.isneginf(out), np.inf, out)


def window_outcomes(
    duration: np.ndarray, event: np.ndarray, k: int, follow_up: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(determinable mask, ordered-within-k label) for one purchase window.

    ``follow_up`` (:func:`follow_up_days`): only rows followed for the whole window count,
    those that ordered and those that did not alike. Keeping the early orderers of a row
    followed for less than ``k`` days while its order-free rows (outcome unknown) drop out
    would judge the window on rows biased towards ordering. None: every row was followed
    for at least ``k`` days (an order-free row is then known not to have ordered).
    """
    duration = np.asarray(duration, float)
    event = np.asarray(event, bool)
    known = event | (duration >= k)
    if follow_up is not None:
        known &= np.asarray(follow_up, float) >= k
    return known, event & (duration < k)


def short_window_notes(dates: Any, follow_up: np.ndarray, windows: list[int]) -> list[str]:
    """Per purchase window longer than some rows' follow-up: on how many test origins and
    rows it is judged (:func:`window_outcomes`), in words."""
    dates = pd.Series(np.asarray(dates))
    f = np.asarray(follow_up, float)
    notes = []
    for k in windows:
        ok = f >= k
        if ok.all():
            continue
        lo, hi = int(f[~ok].min()), int(f[~ok].max())
        notes.append(
            f"P(order within {k} d) is judged on {dates[ok].nunique()} of {dates.nunique()} "
            f"test origins ({int(ok.sum()):,} of {len(ok):,} rows): the others were followed "
            f"for only {lo if lo == hi else f'{lo}-{hi}'} days, too short to know whether "
            f"each account ordered within {k} days"
        )
    return notes


def _interval_days(q10: Any, q90: Any) -> tuple[np.ndarray, np.ndarray]:
    """The first and last day of the [p10, p90] dates (an open end: day 0, no last day)."""
    lo = np.nan_to_num(forecast_day(q10), nan=0.0)
    hi = forecast_day(q90)
    return lo, np.where(np.isnan(hi), np.inf, hi)


def interval_coverage(
    duration: np.ndarray, event: np.ndarray, q10: np.ndarray, q90: np.ndarray
) -> tuple[float, int]:
    """Share of determinable rows whose next order falls inside [p10, p90]: on the days the
    dates name (:func:`~ka_ml.modeling.timing.forecast_day`), ends included.

    Determinable: the order was observed (covered iff inside), or the row was censored
    after p90 (then certainly not covered). Rows censored before p90 are undetermined.
    """
    d = np.asarray(duration, float)
    e = np.asarray(event, bool)
    lo, hi = _interval_days(q10, q90)
    covered = e & (d >= lo) & (d <= hi)
    known = e | (d > hi)
    n = int(known.sum())
    return (float(covered[known].mean()) if n else float("nan")), n


def completed_interval_coverage(
    F: np.ndarray,
    edges: np.ndarray,
    duration: np.ndarray,
    event: np.ndarray,
    q10: np.ndarray,
    q90: np.ndarray,
) -> float:
    """Share of the next orders placed within the model's range (its last edge) that fall
    inside [p10, p90], with the rows censored earlier completed by their forecast.

    :func:`interval_coverage` counts only determinable rows, and with a short follow-up
    (the rolling origins see 3-4 months) those are mostly early orders, which fall before
    p10 more often than later ones: the interval looks too narrow and gets widened, then
    covers too much once a longer follow-up is seen. Here a row censored at ``c`` before
    the range's end ``R`` counts with its conditional chances, from its own curve ``F``:
    P(c <= T < R | T >= c) as determinable (1 when p90 < R: a later order is a miss) and
    P(max(p10, c) <= T <= min(p90, R) | T >= c) as covered. Observed orders and rows
    censored after p90 count as in :func:`interval_coverage`.
    """
    d = np.asarray(duration, float)
    e = np.asarray(event, bool)
    R = float(edges[-1])
    lo, hi = _interval_days(q10, q90)
    covered = (e & (d >= lo) & (d <= hi)).astype(float)
    known = (e | (d > hi)).astype(float)
    open_ = ~e & (d <= hi) & (d < R)
    surv = np.clip(1.0 - cdf_at(F, edges, d), 1e-12, 1.0)
    f_end = cdf_at(F, edges, np.full(len(d), R))
    end = hi + 1.0  # the curve's time where the p90 date's day ends
    a, b = np.maximum(lo, d), np.minimum(end, R)
    inside = np.clip(cdf_at(F, edges, b) - cdf_at(F, edges, np.minimum(a, R)), 0.0, None)
    p_cov = np.where(b > a, inside / surv, 0.0)
    p_det = np.where(end < R, 1.0, np.clip(f_end - (1.0 - surv), 0.0, None) / surv)
    covered = np.where(open_, p_cov, covered)
    known = np.where(open_, p_det, known)
    total = float(known.sum())
    return float(covered.sum() / total) if total > 0 else float("nan")


def by_day_share(duration: np.ndarray, event: np.ndarray, q: np.ndarray) -> tuple[float, int]:
    """Share of the dated rows (``q`` finite, curve time) whose next order came by the day
    the date names, among those whose answer is known (ordered, or followed past the day),
    and how many those are. A long follow-up's figure: with a short one the known rows
    are mostly early orders."""
    day = forecast_day(q)
    d = np.asarray(duration, float)
    e = np.asarray(event, bool)
    known = np.isfinite(day) & (e | (d > day))
    by = e[known] & (d[known] <= day[known])
    return (float(by.mean()) if known.any() else float("nan")), int(known.sum())


def ranking_time(pred: pd.DataFrame, windows: list[int]) -> np.ndarray:
    """The median forecast in days, for ranking: a forecast beyond the model's range (NaN)
    ranks after every dated one, and among those by the chance of an order within the
    largest window (less likely = later). Without that tie-break every open forecast would
    tie, and the concordance would judge only the dated minority."""
    q50 = pred["q50"].to_numpy(float)
    cap = 2.0 * (np.nanmax(q50) if np.isfinite(q50).any() else 1e4)
    col = f"p_purchase_{max(windows)}d" if windows else ""
    p_last = pred[col].to_numpy(float) if col in pred else np.zeros(len(pred))
    later = cap * (2.0 - np.nan_to_num(p_last, nan=0.0))
    return np.where(np.isnan(q50), later, q50)


CLOSE_DAYS = 7  # a next-order date "close" when the order came within a week of it


def cycle_rule_days(test: pd.DataFrame) -> np.ndarray:
    """The naive next-order forecast a sales team keeps in a spreadsheet: the last order plus
    the account's median gap, in days after the as-of (0 when that day has passed); NaN
    without a gap (fewer than two order days)."""
    gap = test["gap_median_days"].to_numpy(float) if "gap_median_days" in test else None
    rec = test["recency_days"].to_numpy(float) if "recency_days" in test else None
    if gap is None or rec is None:
        return np.full(len(test), np.nan)
    return np.maximum(gap - rec, 0.0)


def date_errors(
    model_days: np.ndarray,
    rule_days: np.ndarray,
    duration: np.ndarray,
    event: np.ndarray,
    follow_up: np.ndarray,
) -> dict[str, float]:
    """The model's next-order day (:func:`~ka_ml.modeling.timing.forecast_day` of its
    median) against :func:`cycle_rule_days`, on the rows both date at least
    :data:`CLOSE_DAYS` before their follow-up ends (``follow_up``, days), whether the order
    came or not: whether it came within :data:`CLOSE_DAYS` of each date is then known on
    every such row. The share within a week of it (``date_close_share``), the median absolute
    error in days (a row with no order counts the days the follow-up saw past the date: a
    lower bound, so the median is one too), for each; the rows (``date_rows``) and the share
    of them whose order came (``date_ordered_share``). Empty without such rows.

    Counting only the rows whose order came (as before) judged the dates on an outcome: on
    CDNOW before 1997-09-30 it set the model's median error at 35 days against the rule's 14
    on 2,030 rows; on the 2,181 rows both date a week inside the follow-up (77% ordered) it is
    at least 30 against 23, and within a week 9% against 27%."""
    m = forecast_day(model_days)
    r = np.floor(np.asarray(rule_days, float))
    d = np.asarray(duration, float)
    e = np.asarray(event, bool)
    f = np.asarray(follow_up, float)
    with np.errstate(invalid="ignore"):
        rows = np.isfinite(m) & np.isfinite(r) & (np.maximum(m, r) + CLOSE_DAYS <= f)
    if not rows.any():
        return {}
    out = {"date_rows": float(rows.sum()), "date_ordered_share": float(e[rows].mean())}
    for suffix, day in (("", m), ("_cycle_rule", r)):
        err = np.where(e, np.abs(day - d), f - day)[rows]
        out[f"date_median_error_days{suffix}"] = float(np.median(err))
        out[f"date_close_share{suffix}"] = float(np.mean(e[rows] & (err <= CLOSE_DAYS)))
    return out


def timing_scores(
    pred: pd.DataFrame,
    duration: np.ndarray,
    event: np.ndarray,
    windows: list[int],
    follow_up: np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics of a timing forecast (``p_purchase_{k}d`` and, if present, q10/q50/q90);
    each window on the rows followed for all of it (``follow_up``, :func:`window_outcomes`)."""
    out: dict[str, float] = {}
    for k in windows:
        known, y = window_outcomes(duration, event, k, follow_up)
        known &= np.isfinite(pred[f"p_purchase_{k}d"].to_numpy(float))
        p = pred[f"p_purchase_{k}d"].to_numpy(float)[known]
        yk = y[known].astype(float)
        out[f"p{k}_auc"] = M.roc_auc(yk, p) if 0 < yk.sum() < len(yk) else float("nan")
        out[f"p{k}_brier"] = M.brier(yk, p)
        out[f"p{k}_accuracy"] = M.accuracy_at(yk, p, 0.5)
        out[f"p{k}_majority_accuracy"] = M.majority_accuracy(yk)
        out[f"p{k}_n"] = float(len(yk))
    if "q50" in pred:
        q50c = ranking_time(pred, windows)
        e = np.asarray(event, bool)
        d = np.asarray(duration, float)
        out["concordance"] = M.concordance_index(d, e, q50c)
        out["mae_days_observed"] = (
            float(np.mean(np.abs(q50c[e] - d[e]))) if e.any() else float("nan")
        )
        cov, n = interval_coverage(d, e, pred["q10"].to_numpy(float), pred["q90"].to_numpy(float))
        out["p10_p90_coverage"] = cov
        out["coverage_n"] = float(n)
        out["open_interval_share"] = float(np.isnan(pred["q90"].to_numpy(float)).mean())
    return out


def window_deltas(
    model: pd.DataFrame,
    other: pd.DataFrame,
    duration: np.ndarray,
    event: np.ndarray,
    windows: list[int],
    groups: np.ndarray | None,
    *,
    seed: int,
    n_boot: int = 200,
    follow_up: np.ndarray | None = None,
) -> dict[str, float]:
    """Model minus ``other`` on each purchase window's ROC AUC and Brier, with paired
    (account-clustered) bootstrap intervals: ``model_minus_this_p{k}_{auc,brier}`` and its
    ``_lo`` / ``_hi``, on the rows whose window outcome is known (:func:`window_outcomes`)
    and both forecast."""
    out: dict[str, float] = {}
    for k in windows:
        col = f"p_purchase_{k}d"
        a, b = model[col].to_numpy(float), other[col].to_numpy(float)
        known, y = window_outcomes(duration, event, k, follow_up)
        known &= np.isfinite(a) & np.isfinite(b)
        if not known.any():  # no outcome known yet for this window: nothing to compare
            for metric in ("auc", "brier"):
                key = f"model_minus_this_p{k}_{metric}"
                out |= dict.fromkeys((key, f"{key}_lo", f"{key}_hi"), float("nan"))
            continue
        draws = M.bootstrap_resamples(
            int(known.sum()), n_boot, seed, None if groups is None else groups[known]
        )
        for metric, fn in (("auc", M.roc_auc), ("brier", M.brier)):
            d = M.bootstrap_delta(y[known].astype(float), a[known], b[known], fn, resamples=draws)
            key = f"model_minus_this_p{k}_{metric}"
            out |= {key: d["delta"], f"{key}_lo": d["lo"], f"{key}_hi": d["hi"]}
    return out


def compare(
    y: np.ndarray,
    model_p: np.ndarray,
    baselines: dict[str, np.ndarray],
    groups: np.ndarray | None,
    *,
    seed: int,
    n_boot: int = 200,
) -> pd.DataFrame:
    """One row per predictor with churn metrics; deltas vs the model with bootstrap CIs.

    Every row is measured on the same test rows: those every predictor can score (BG/NBD
    has no prediction for an account without purchase history). Otherwise the table would
    set metrics over different account sets side by side.
    """
    ok = np.ones(len(y), dtype=bool)
    for p in baselines.values():
        ok &= ~np.isnan(p)
    rows: list[dict[str, Any]] = [
        {"predictor": "ka_ml churn model", **churn_scores(y[ok], model_p[ok])}
    ]
    # one set of resamples for every baseline and metric: the same draws as separate calls
    # with this seed, drawn once
    draws = M.bootstrap_resamples(
        int(ok.sum()), n_boot, seed, groups[ok] if groups is not None else None
    )
    for name, p in baselines.items():
        row: dict[str, Any] = {"predictor": name, **churn_scores(y[ok], p[ok])}
        for metric, fn in (("roc_auc", M.roc_auc), ("brier", M.brier)):
            d = M.bootstrap_delta(y[ok], model_p[ok], p[ok], fn, resamples=draws)
            row[f"model_minus_this_{metric}"] = d["delta"]
            row[f"model_minus_this_{metric}_lo"] = d["lo"]
            row[f"model_minus_this_{metric}_hi"] = d["hi"]
        rows.append(row)
    return pd.DataFrame(rows)


def cycle_band(cycle_days: pd.Series | np.ndarray) -> pd.Series:
    """The account's purchase cycle in bands: a user's seasonal portfolio labelled 62% of its
    annual buyers' rows "churn" on every test origin, and nothing in the slices showed it.
    ``cycle_days``: the buying cycle (``scoring.lifecycle.buying_cycle_days``, long gaps
    counted by their length, so a season ordered in call-offs a few days apart is a yearly
    cycle, not a 5-day one); NaN = a single order day."""
    bands = pd.cut(
        pd.Series(cycle_days, dtype=float),
        [-np.inf, 30, 90, 180, np.inf],
        labels=["cycle <= 30 days", "cycle 31-90 days", "cycle 91-180 days", "cycle > 180 days"],
    )
    return bands.astype("object").fillna("one order day")


def tenure_band(tenure_days: pd.Series) -> pd.Series:
    bands = pd.cut(
        tenure_days, [-np.inf, 365, 730, np.inf], labels=["< 1 year", "1-2 years", "2+ years"]
    )
    return bands.astype("object").fillna("unknown")
