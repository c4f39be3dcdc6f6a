"""`ka-ml backtest`: how did past weekly scores turn out, once their horizon has passed?

Every weekly score is kept in the score history. A week ``d`` is *due* when its whole
churn window has been observed by the data: ``d + horizon <= data end``, the day after the
data's last order (or the as-of when earlier). A week due by the as-of but not by the
data's end is left out and listed: a stale export would otherwise count the days without
data as churn. For the due
weeks this module joins what happened, by the same definitions the models were trained
on (:func:`ka_ml.features.labels.churn_labels`, :func:`~ka_ml.features.labels.timing_labels`),
and measures:

- the lights: precision and recall of red, and of red + yellow, against churn;
- the churn probabilities: ROC AUC, Brier score, expected calibration error and the
  reliability table (quantile bins);
- the purchase timing: Brier score and ROC AUC of each stored ``P(order within k days)``,
  and the interval hit rate: the share of account-weeks with a dated window (both p10 and
  p90) whose next order fell inside it, among those where that is already known (the
  order was seen, or p90 passed without one: a miss). 80% is the nominal rate. An
  open-ended window (p90 beyond the model's range) can only fail on its lower end, so it
  is no hit: it is counted apart (how many, how many of those accounts ordered, and how
  often not before p10).

Churn is measured on the population the churn model is trained and calibrated on: with
every scored account by default; with ``labels.at_risk_only`` only accounts that could
still churn at ``d`` (a running contract under the contract rule, or an order within the
horizon before ``d``).

When a figure falls below its ``monitoring`` threshold, the result recommends retraining.
Pure parts (:func:`outcomes`, :func:`backtest_metrics`, :func:`recommendation`) take frames
and config; :func:`ka_ml.jobs.backtest.run_backtest` adds the edges (score history, MLflow,
the JSON file).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ka_ml.config import Config, MonitoringConfig
from ka_ml.data.history import History
from ka_ml.errors import KaMlError
from ka_ml.features.build import feature_frames
from ka_ml.features.labels import churn_labels, timing_labels
from ka_ml.modeling import metrics as M
from ka_ml.modeling.evaluate import (
    follow_up_days,
    interval_coverage,
    light_scores,
    window_outcomes,
)
from ka_ml.versions import package_versions

log = logging.getLogger("ka_ml.backtest")

SUMMARY_KEYS = (
    "red_precision",
    "red_recall",
    "red_recall_ceiling",
    "red_yellow_precision",
    "red_yellow_recall",
    "roc_auc",
    "lit_roc_auc",
    "ece",
    "brier",
    "interval_hit_rate",
)


def backtest_dir(cfg: Config) -> Path:
    """Backtest results live beside the score history, one JSON file per data as-of."""
    return Path(cfg.paths.outputs) / "backtests"


# -- reading the score history ----------------------------------------------------------
def due_weeks(
    score_dates: pd.Series | pd.DatetimeIndex, data_as_of: pd.Timestamp, horizon_days: int
) -> list[pd.Timestamp]:
    """Scoring dates whose churn window ``[d, d + horizon)`` the data has fully seen."""
    distinct = pd.to_datetime(pd.Series(score_dates)).dropna().unique()  # a few dates
    horizon = pd.Timedelta(days=horizon_days)
    return sorted(pd.Timestamp(d) for d in distinct if d + horizon <= pd.Timestamp(data_as_of))


# -- pure: outcomes and metrics ---------------------------------------------------------
def outcomes(
    history: History,
    scores: pd.DataFrame,
    cfg: Config,
    data_as_of: pd.Timestamp,
) -> pd.DataFrame:
    """The due weeks' scores joined with what happened.

    Adds ``churn`` (0/1), ``churn_definition``, ``at_risk``, ``days_to_next`` (days from
    the scoring date to the next order, or the censoring time), ``next_order_observed``,
    and ``silence_days`` / ``typical_gap_days``: how long the account had been without an
    order at the scoring date, and its typical gap between orders then (the one the
    overdue rule reads, NaN before a second order day; :func:`reds_by_silence`).
    The loop runs over weeks (a handful), each week vectorised over its accounts.
    """
    weeks = due_weeks(scores["as_of"], data_as_of, cfg.labels.horizon_days)
    gaps = typical_gaps(history, weeks, cfg)
    parts = []
    for d in weeks:
        week = scores[scores["as_of"] == d].reset_index(drop=True)
        ids = pd.Index(week["account_id"].astype(object))
        churn = churn_labels(history, d, cfg, ids)
        timing = timing_labels(history, d, data_as_of, ids)
        recency = (d - pd.to_datetime(week["last_order_date"])).dt.days.to_numpy(float)
        by_contract = churn["churn_definition"].to_numpy() == "contract"
        parts.append(
            week.assign(
                churn=churn["churn"].to_numpy(),
                churn_definition=churn["churn_definition"].to_numpy(),
                at_risk=by_contract
                | (np.nan_to_num(recency, nan=np.inf) <= cfg.labels.horizon_days),
                days_to_next=timing["days_to_next"].to_numpy(),
                next_order_observed=timing["next_order_observed"].to_numpy(),
                silence_days=recency,
                typical_gap_days=gaps[d].reindex(ids).to_numpy(float),
            )
        )
    if not parts:
        return scores.iloc[0:0].assign(
            churn=pd.Series(dtype="int64"),
            churn_definition=pd.Series(dtype="str"),
            at_risk=pd.Series(dtype=bool),
            days_to_next=pd.Series(dtype="float64"),
            next_order_observed=pd.Series(dtype=bool),
            silence_days=pd.Series(dtype="float64"),
            typical_gap_days=pd.Series(dtype="float64"),
        )
    return pd.concat(parts, ignore_index=True)


GAP_WEEKS_PER_PASS = 4  # weeks whose whole feature tables are held at once (memory)


def typical_gaps(
    history: History, weeks: list[pd.Timestamp], cfg: Config
) -> dict[pd.Timestamp, pd.Series]:
    """Each week's typical gap between order days per account (``gap_typical_days``, as the
    scorer's overdue rule read it that week; NaN before a second order day), from the
    history known before the week."""
    out = {}
    for lo in range(0, len(weeks), GAP_WEEKS_PER_PASS):  # a few whole feature tables at once
        batch = weeks[lo : lo + GAP_WEEKS_PER_PASS]
        frames = feature_frames(history, batch, cfg)
        for d in batch:
            f = frames.pop(pd.Timestamp(d).normalize())
            gap = f["gap_typical_days"] if "gap_typical_days" in f else f["gap_median_days"]
            ids = pd.Index(f["account_id"].astype(object))
            out[d] = pd.Series(gap.to_numpy(float), index=ids)
    return out


def had_light(health: pd.Series) -> np.ndarray:
    """Rows that had a light (lapsed accounts have none)."""
    return health.astype("string").fillna("").to_numpy() != ""


def light_metrics(
    health: pd.Series, churn: np.ndarray, weeks: np.ndarray | None = None
) -> dict[str, float]:
    """Precision and recall of the red and of the red + yellow lights against churn, with
    the counts behind them (:func:`~ka_ml.modeling.evaluate.light_scores`), among the
    accounts that had a light (lapsed accounts have none: they were lost already). A figure
    without a denominator (no red account, no churner, no lit account) is NaN, not 0: the
    retrain verdict skips it instead of reading it as a collapse.

    With ``weeks`` (each row's scoring date), also each light's ``recall_ceiling``: the
    recall a perfect ranking reaches with that many lit accounts, week by week
    (sum of min(lit, churners) over the sum of churners). Budget lights cap it: 16 red
    accounts among 55 churners catch at most 16."""
    h = health.astype("string").fillna("").to_numpy()
    lit = had_light(health)
    y = np.asarray(churn, bool)[lit]
    h = h[lit]
    out = light_scores(y, h == "red", np.isin(h, ["red", "yellow"]))
    del out["base_rate"]  # the caller's, over every row with a probability
    out["churners"] = float(y.sum())
    if weeks is not None:
        frame = pd.DataFrame(
            {"week": np.asarray(weeks)[lit], "y": y, "red": h == "red", "warm": h != "green"}
        )
        per_week = frame.groupby("week", sort=False)[["y", "red", "warm"]].sum()
        for name, col in (("red", "red"), ("red_yellow", "warm")):
            reachable = np.minimum(per_week[col], per_week["y"]).sum()
            out[f"{name}_recall_ceiling"] = (
                float(reachable / out["churners"]) if out["churners"] else float("nan")
            )
    return out


def lights_by_definition(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The lights' precision and recall per churn definition, where the weeks mixed two
    ({} otherwise). One red list can hold two populations: on a software vendor's weeks the
    reds judged by their contract were 93% right and those judged by 'no order' (services
    buyers between projects) 59% by the label and none really lost, while the pooled 0.717
    read as one healthy figure; split, the gap shows."""
    if "churn_definition" not in frame or frame["churn_definition"].nunique() < 2:
        return {}
    weeks = max(frame["as_of"].nunique(), 1)
    out: dict[str, dict[str, float]] = {}
    for name, part in frame.groupby("churn_definition", sort=True):
        m = light_metrics(part["health"], part["churn"].to_numpy())
        out[str(name)] = {
            "account_weeks": float(len(part)),
            "red_per_week": m["red_count"] / weeks,
            **{k: m[k] for k in ("red_precision", "red_recall", "red_yellow_precision")},
        }
    return out


def reds_already_silent(frame: pd.DataFrame, horizon_days: int) -> dict[str, float]:
    """The red account-weeks whose account had already gone the whole horizon without an
    order, no contract running, when it was lit ({} when there is none): each counts as a
    correct red (no order in the next 90 days either) but was a loss already, not a
    forecast. A lab distributor's backtest read red precision 0.633 where every one of the
    19 hits had been silent for months and none of the reds was lost in those 90 days; the
    precision of the other reds says what the list foresaw."""
    if frame.empty or "at_risk" not in frame:
        return {}
    red = frame["health"].astype("string").fillna("").to_numpy() == "red"
    silent = red & ~frame["at_risk"].to_numpy(bool)
    if not silent.any():
        return {}
    fresh = red & ~silent
    y = frame["churn"].to_numpy(float)
    return {
        "red_count": float(red.sum()),
        "silent_count": float(silent.sum()),
        "horizon_days": float(horizon_days),
        "red_precision_others": float(y[fresh].mean()) if fresh.any() else float("nan"),
        "others": float(fresh.sum()),
    }


def reds_by_silence(frame: pd.DataFrame, horizon_days: int) -> dict[str, float]:
    """The red account-weeks by how far the account's silence had gone when it was lit, each
    group with its red precision ({} when every red was still within its rhythm):

    - ``silent``: no order for the whole horizon and no contract running (lost already,
      :func:`reds_already_silent`);
    - ``late``: judged by 'no order', silent past its typical gap between orders but not yet
      the horizon: the label was already coming true, often a customer gone already;
    - ``early``: the rest, still within its rhythm (or with none yet, or judged by a running
      contract): what the list foresaw.

    A software vendor's backtest read red precision 0.87 where 99 of 131 red account-weeks
    were monthly subscribers silent 30-89 days after cancelling: the silent-only caution
    named 20 of them. Its early warnings are the figure to read."""
    if frame.empty or "at_risk" not in frame or "typical_gap_days" not in frame:
        return {}
    red = frame["health"].astype("string").fillna("").to_numpy() == "red"
    silent = red & ~frame["at_risk"].to_numpy(bool)
    gap = frame["typical_gap_days"].to_numpy(float)
    silence = frame["silence_days"].to_numpy(float)
    by_orders = frame["churn_definition"].astype("string").fillna("").to_numpy() == "no_order"
    past_gap = np.nan_to_num(silence, nan=-np.inf) > np.nan_to_num(gap, nan=np.inf)
    late = red & ~silent & by_orders & past_gap
    if not (silent.any() or late.any()):
        return {}
    early = red & ~silent & ~late
    y = frame["churn"].to_numpy(float)
    out = {"red_count": float(red.sum()), "horizon_days": float(horizon_days)}
    for name, part in (("silent", silent), ("late", late), ("early", early)):
        out[f"{name}_count"] = float(part.sum())
        out[f"{name}_precision"] = float(y[part].mean()) if part.any() else float("nan")
    return out


def by_model_version(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each churn model version's figures on the weeks it scored, where the weeks were
    scored by more than one ({} otherwise). At a monthly retraining cadence the training
    gate cannot compare a new model with a champion trained within the horizon (its test
    rows are in the champion's past), so whether v5 did better than v4 is only known
    afterwards, from the weeks each scored. The weeks differ, so do their churn rates: the
    base rate is given beside the figures."""
    if "churn_model_version" not in frame:
        return {}
    versions = frame["churn_model_version"].astype("string").fillna("")
    if versions.nunique() < 2:
        return {}
    out: dict[str, dict[str, Any]] = {}
    order = sorted(versions.unique(), key=lambda v: (len(v), v))  # "10" after "9"
    for version in order:
        part = frame[(versions == version).to_numpy()]
        m, _ = churn_metrics(part)
        days = pd.to_datetime(part["as_of"])
        out[str(version)] = {
            "first_week": str(days.min().date()),
            "last_week": str(days.max().date()),
            "weeks": float(days.nunique()),
            **{
                k: m[k]
                for k in (
                    "n",
                    "base_rate",
                    "roc_auc",
                    "lit_roc_auc",
                    "brier",
                    "red_precision",
                    "red_recall",
                )
            },
        }
    return out


def churn_metrics(
    frame: pd.DataFrame, n_bins: int = 10, *, chance: bool = False, budget: bool = False
) -> tuple[dict[str, float], pd.DataFrame]:
    """Lights, ranking and calibration of the churn scores on ``frame``'s rows; with
    ``chance``, also ``ece_chance`` (what the retrain verdict judges the ECE against: the
    pooled figures only, not each week's); with ``budget`` (lights by budget), the recall
    ceilings the budget allows (:func:`light_metrics`)."""
    y = frame["churn"].to_numpy(float)
    p = frame["churn_probability"].to_numpy(float)
    ok = np.isfinite(p)
    y, p = y[ok], p[ok]
    weeks = frame["as_of"].to_numpy()[ok] if budget else None
    out = light_metrics(frame["health"][ok], y, weeks)
    lit = had_light(frame["health"][ok])
    out.update(
        {
            "roc_auc": M.roc_auc(y, p),
            # the accounts that had a light: lapsed ones, already lost, rank easily
            "lit_roc_auc": M.roc_auc(y[lit], p[lit]),
            "brier": M.brier(y, p),
            "ece": M.expected_calibration_error(y, p, n_bins) if len(y) else float("nan"),
            "base_rate": float(y.mean()) if len(y) else float("nan"),
            "mean_probability": float(p.mean()) if len(p) else float("nan"),
            "n": float(len(y)),
        }
    )
    if chance:
        out["ece_chance"] = M.chance_calibration_error(p, n_bins) if len(y) else float("nan")
    if weeks is not None:
        out.update(recall_by_rank(frame["health"][ok], y, p, weeks))
    table = M.reliability_table(y, p, n_bins) if len(y) else pd.DataFrame()
    return out, table


def recall_by_rank(
    health: pd.Series, y: np.ndarray, p: np.ndarray, weeks: np.ndarray
) -> dict[str, float]:
    """The recalls of the churn probability alone with the lights' own counts: each week,
    among the accounts that had a light, the as many highest probabilities as there were
    red (``red_recall_by_rank``) and red or yellow (``red_yellow_recall_by_rank``) accounts.
    Beside the lights' recalls it tells the ranking from the light rules (hysteresis, the
    overdue and complaint rules, the quiet rules): a recall the ranking reaches and the
    lights do not is the rules' doing, not the model's."""
    lit = had_light(health)
    h = health.astype("string").fillna("").to_numpy()[lit]
    frame = pd.DataFrame(
        {"week": np.asarray(weeks)[lit], "y": np.asarray(y, bool)[lit], "p": p[lit]}
    )
    churners = float(frame["y"].sum())
    if not churners:
        return {}
    rank = frame.groupby("week", sort=False)["p"].rank(method="first", ascending=False)
    out: dict[str, float] = {}
    for name, lit_as in (("red", h == "red"), ("red_yellow", np.isin(h, ["red", "yellow"]))):
        count = pd.Series(lit_as).groupby(frame["week"].to_numpy(), sort=False).transform("sum")
        top = rank.to_numpy() <= count.to_numpy()
        out[f"{name}_recall_by_rank"] = float((top & frame["y"].to_numpy()).sum() / churners)
    return out


def _days_until(frame: pd.DataFrame, col: str) -> np.ndarray:
    return (pd.to_datetime(frame[col]) - frame["as_of"]).dt.days.to_numpy(float, na_value=np.nan)


def timing_metrics(frame: pd.DataFrame, windows: list[int]) -> dict[str, float]:
    """Purchase-window Brier/AUC and the p10-p90 interval hit rate."""
    d = frame["days_to_next"].to_numpy(float)
    e = frame["next_order_observed"].to_numpy(bool)
    follow_up = follow_up_days(frame["as_of"], d, e)
    out: dict[str, float] = {}
    for k in windows:
        col = f"p_purchase_{k}d"
        if col not in frame:
            continue
        p = frame[col].to_numpy(float)
        known, y = window_outcomes(d, e, k, follow_up)
        known &= np.isfinite(p)
        yk, pk = y[known].astype(float), p[known]
        out[f"p{k}_brier"] = M.brier(yk, pk) if len(yk) else float("nan")
        out[f"p{k}_auc"] = M.roc_auc(yk, pk) if len(yk) else float("nan")
        out[f"p{k}_observed_rate"] = float(yk.mean()) if len(yk) else float("nan")
        out[f"p{k}_accuracy"] = M.accuracy_at(yk, pk) if len(yk) else float("nan")
        out[f"p{k}_majority_accuracy"] = M.majority_accuracy(yk) if len(yk) else float("nan")
        out[f"p{k}_n"] = float(len(yk))
    lo = _days_until(frame, "next_purchase_p10_date")
    hi = _days_until(frame, "next_purchase_p90_date")
    dated = np.isfinite(lo) & np.isfinite(hi)
    rate, n = (
        interval_coverage(d[dated], e[dated], lo[dated], hi[dated])
        if dated.any()
        else (
            float("nan"),
            0,
        )
    )
    out["interval_hit_rate"] = rate
    out["interval_n"] = float(n)
    # open-ended windows (p90 beyond the model's range) can only fail on their lower end:
    # counted as hits they made a rate of orderers alone (0.948 with 1 window in 10 dated)
    opened = np.isfinite(lo) & ~np.isfinite(hi)
    ordered = opened & e
    out["interval_windows"] = float(np.isfinite(lo).sum())
    out["interval_open"] = float(opened.sum())
    out["interval_open_ordered"] = float(ordered.sum())
    out["interval_open_not_early"] = (
        float((d[ordered] >= lo[ordered]).mean()) if ordered.any() else float("nan")
    )
    return out


def churn_population(frame: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """The rows churn is judged on: every scored account, or with ``labels.at_risk_only``
    those that could still churn (the population the model is trained on)."""
    return frame[frame["at_risk"]] if cfg.labels.at_risk_only else frame


def backtest_metrics(
    frame: pd.DataFrame, cfg: Config
) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    """(pooled metrics, reliability table, per-week table) of the joined outcomes."""
    population = churn_population(frame, cfg)
    budget = cfg.health.mode == "budget"  # threshold lights: their count is the model's say
    churn, reliability = churn_metrics(population, chance=True, budget=budget)
    timing = timing_metrics(frame, cfg.labels.purchase_windows)
    metrics = {**churn, **timing, "account_weeks": float(len(frame))}
    metrics["weeks"] = float(frame["as_of"].nunique())
    rows = []
    for d, week in population.groupby("as_of", sort=True):  # a handful of weeks
        m, _ = churn_metrics(week)
        rows.append({"as_of": str(pd.Timestamp(d).date()), **m})  # type: ignore[arg-type]
    return metrics, reliability, pd.DataFrame(rows)


RECALLS = {"red_recall": "red recall", "red_yellow_recall": "red+yellow recall"}


def recall_floor(
    metrics: dict[str, float], key: str, floor: float, cfg: MonitoringConfig
) -> tuple[float, str]:
    """(the recall floor in force, what capped it): with budget lights, no more than
    ``min_recall_of_ceiling`` of the recall the budget allows; the text names the ceiling
    when it binds."""
    ceiling = metrics.get(f"{key}_ceiling", float("nan"))
    if not np.isfinite(ceiling) or ceiling * cfg.min_recall_of_ceiling >= floor:
        return floor, ""
    return ceiling * cfg.min_recall_of_ceiling, (
        f" ({cfg.min_recall_of_ceiling:g} of the ceiling {ceiling:.3f}: "
        f"{_ceiling_counts(metrics, key)})"
    )


def _ceiling_counts(metrics: dict[str, float], key: str) -> str:
    light = key.removesuffix("_recall")
    count, churners = metrics.get(f"{light}_count", 0.0), metrics.get("churners", 0.0)
    return f"{int(count)} {light.replace('_', '+')} accounts for {int(churners)} churners"


def ceiling_notes(metrics: dict[str, float], cfg: MonitoringConfig) -> list[str]:
    """The recall ceilings that bind (below 1), in words, for the verdict."""
    notes = []
    for key, label in RECALLS.items():
        value, ceiling = metrics.get(key, float("nan")), metrics.get(f"{key}_ceiling", np.nan)
        if np.isfinite(value) and np.isfinite(ceiling) and ceiling < 1:
            # the limit is the ceiling, not the recall: "0.419 of at most 0.749: the budget
            # allows no more" read as if 0.419 were the limit
            notes.append(
                f"{label[0].upper()}{label[1:]} {value:.3f}; the light budget caps it at "
                f"{ceiling:.3f} ({_ceiling_counts(metrics, key)}: even a perfect ranking "
                "would miss the rest)."
            )
    return notes


def too_few_churners(metrics: dict[str, float], cfg: MonitoringConfig) -> str:
    """Why the recalls and the ROC AUC are left out of the verdict ('' when they count):
    a user's 140 accounts were told to retrain for a red+yellow recall of 0 on 3 churners,
    on a run whose ROC AUC was 0.896."""
    churners = metrics.get("churners", float("nan"))
    if not np.isfinite(churners) or churners >= cfg.min_backtest_churners:
        return ""
    return (
        f"Only {int(churners)} churners (fewer than monitoring.min_backtest_churners "
        f"{cfg.min_backtest_churners}): the recalls and the ROC AUC are not judged yet."
    )


def recommendation(metrics: dict[str, float], cfg: MonitoringConfig) -> tuple[bool, list[str]]:
    """(retrain?, reasons): each figure measured and past its threshold is a reason."""
    n = metrics.get("n", 0.0)
    if not np.isfinite(n) or n < cfg.min_backtest_rows:
        return False, []
    reasons = []
    floors = {"red_recall": cfg.min_red_recall, "red_yellow_recall": cfg.min_red_yellow_recall}
    ranked = not too_few_churners(metrics, cfg)  # else recalls and ROC AUC are noise
    for key, label in RECALLS.items() if ranked else ():
        floor = floors[key]
        value = metrics.get(key, float("nan"))
        limit, capped = recall_floor(metrics, key, floor, cfg)
        if np.isfinite(value) and value < limit:
            reasons.append(f"{label} {value:.3f} below the floor {limit:.3f}{capped}")
    for key, label, limit in (
        *((("roc_auc", "ROC AUC", cfg.min_roc_auc),) if ranked else ()),
        ("interval_hit_rate", "p10-p90 interval hit rate", cfg.min_interval_hit_rate),
    ):
        value = metrics.get(key, float("nan"))
        if np.isfinite(value) and value < limit:
            reasons.append(f"{label} {value:.3f} below the floor {limit:.3f}")
    # a perfectly calibrated model's ECE on a few hundred account-weeks is 0.05-0.15 by
    # chance alone: the ceiling counts only beyond that, judged as the promotion gate does
    ece = metrics.get("ece", float("nan"))
    if np.isfinite(ece):
        failed, _ = M.calibration_verdict(ece, cfg.max_ece, metrics.get("ece_chance"))
        if failed:
            reasons.append(failed)
    return bool(reasons), reasons


# the light settings that move the recalls away from the ranking's
LIGHT_SETTINGS = (
    "the rules that raise accounts into the lights or hold them out (health.hysteresis, "
    "health.overdue_raises, health.critical_complaint_light, health.rhythm_quiet_min, "
    "health.quiet_spells_min, health.seen_before_max_light)"
)


def lights_not_model(metrics: dict[str, float], reasons: list[str], cfg: MonitoringConfig) -> str:
    """The verdict on the lights ('' otherwise) when only the recalls failed, and the churn
    probability alone, with as many red (and red or yellow) accounts a week, would have met
    each failed floor (:func:`recall_by_rank`): the light rules lost the recall, and a
    retrain would not bring it back. A distributor's backtest said "Retrain" for a red
    recall of 0.214 beside a ROC AUC of 0.903."""
    floors = {"red_recall": cfg.min_red_recall, "red_yellow_recall": cfg.min_red_yellow_recall}
    failed = [k for k, label in RECALLS.items() if any(r.startswith(f"{label} ") for r in reasons)]
    if not failed or len(failed) != len(reasons):
        return ""
    reached = []
    for key in failed:
        by_rank = metrics.get(f"{key}_by_rank", float("nan"))
        limit, _ = recall_floor(metrics, key, floors[key], cfg)
        if not (np.isfinite(by_rank) and by_rank >= limit):
            return ""
        reached.append(f"{RECALLS[key]} {by_rank:.3f}")
    return (
        f"Check the lights before retraining: {'; '.join(reasons)}. Ranked by churn "
        f"probability alone, as many lit accounts each week would have reached "
        f"{' and '.join(reached)}: the light rules (hysteresis, the overdue, complaint and "
        f"quiet rules) put other accounts where the churners would have been. The recalls "
        f"follow {LIGHT_SETTINGS}; a retrain would not raise them."
    )


def summary(details: dict[str, Any]) -> dict[str, Any]:
    """The flat figures the run record and the report show (see SUMMARY_KEYS)."""
    m = details["metrics"]
    out: dict[str, Any] = {
        "backtest_as_of": details["as_of"],
        "weeks": int(m.get("weeks", 0)),
        "account_weeks": int(m.get("n", 0)),
    }
    if beyond := details.get("left_out_beyond_data_weeks"):
        out["weeks_beyond_data"] = len(beyond)  # due by the as-of, not by the data's end
    for key in SUMMARY_KEYS:
        value = m.get(key)
        if isinstance(value, float) and np.isfinite(value):
            out[key] = round(value, 4)
    windows = sorted(
        int(k[1:-9])
        for k in m
        if k.startswith("p") and k.endswith("_accuracy") and k[1:-9].isdigit()
    )
    if windows and np.isfinite(m.get(f"p{windows[0]}_accuracy", np.nan)):
        k = windows[0]
        out["window_days"] = k
        out["window_accuracy"] = round(float(m[f"p{k}_accuracy"]), 4)
        out["window_majority_accuracy"] = round(float(m[f"p{k}_majority_accuracy"]), 4)
    if split := details.get("reds_by_silence"):
        # the reds whose silence was under way when lit, and the early warnings' precision
        out["red_count"] = int(split.get("red_count") or 0)
        for key in ("silent", "late", "early"):
            out[f"red_{key}_count"] = int(split.get(f"{key}_count") or 0)
        early = split.get("early_precision")
        if isinstance(early, float) and np.isfinite(early):
            out["red_precision_early"] = round(early, 4)
    rec = details["recommendation"]
    for key in ("interval_n", "interval_windows", "interval_open", "interval_open_ordered"):
        if np.isfinite(m.get(key, np.nan)):
            out[key] = int(m[key])
    if np.isfinite(m.get("interval_open_not_early", np.nan)):
        out["interval_open_not_early"] = round(float(m["interval_open_not_early"]), 4)
    out["recommendation"] = (
        "retrain: " + "; ".join(rec["reasons"]) if rec["retrain"] else rec["message"]
    )  # the lights' verdict (rec["lights"]) is its message
    return out


# -- the job ----------------------------------------------------------------------------


def _native(obj: Any) -> Any:
    """JSON-ready: NaN -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _native(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_native(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def in_sample_weeks(scores: pd.DataFrame, trained: dict[str, pd.Timestamp | None]) -> np.ndarray:
    """Rows of the score history scored by a churn model trained after their week
    (``trained``: version -> its training as-of): look-backs, not forecasts, so they say
    nothing about how the forecasts turn out."""
    versions = scores["churn_model_version"].astype(str)
    when = pd.to_datetime(versions.map(trained))
    return (when.notna() & (pd.to_datetime(scores["as_of"]) < when)).to_numpy()


def data_end(history: History, as_of: pd.Timestamp) -> pd.Timestamp:
    """The day up to which the data has seen what happened: the day after its last order,
    or the as-of when that is earlier. Past it, a missing order is missing data, not churn."""
    return min(pd.Timestamp(as_of), history.default_as_of)


def beyond_data(
    weeks: list[pd.Timestamp], end: pd.Timestamp, as_of: pd.Timestamp, horizon: int
) -> tuple[list[pd.Timestamp], list[pd.Timestamp], str]:
    """(weeks to judge, weeks left out, why): a week is judged only when its whole horizon
    lies inside the data (``d + horizon <= end``); the others would count the days without
    data as churn (a stale export read as a collapse)."""
    limit = pd.Timedelta(days=horizon)
    judged = [d for d in weeks if d + limit <= end]
    left_out = [d for d in weeks if d + limit > end]
    why = (
        f"their {horizon}-day horizon runs past the data, whose last order is on "
        f"{(end - pd.Timedelta(days=1)).date()} ({(as_of - end).days} days before the as-of "
        f"{as_of.date()})"
        if left_out
        else ""
    )
    return judged, left_out, why


def waiting_weeks(
    score_dates: pd.Series, as_of: pd.Timestamp, horizon_days: int
) -> list[list[str]]:
    """The stored scoring dates whose churn window has not closed by ``as_of``, each with
    the first backtest date that can judge it ([date, from], oldest first): a user read "1
    weekly scores" and wondered where the other eleven were."""
    horizon = pd.Timedelta(days=horizon_days)
    dates = sorted({pd.Timestamp(d) for d in pd.to_datetime(score_dates)})
    return [
        [str(d.date()), str((d + horizon).date())]
        for d in dates
        if d + horizon > pd.Timestamp(as_of)
    ]


def compute_backtest(
    history: History, scores: pd.DataFrame, cfg: Config, as_of: pd.Timestamp
) -> dict[str, Any]:
    """Everything the backtest JSON holds (pure: frames and config in, a dict out)."""
    as_of = pd.Timestamp(as_of)
    horizon = cfg.labels.horizon_days
    end = data_end(history, as_of)
    weeks, past_data, why = beyond_data(
        due_weeks(scores["as_of"], as_of, horizon), end, as_of, horizon
    )
    if past_data and not weeks:
        dates = ", ".join(str(d.date()) for d in past_data)
        raise KaMlError(
            f"No stored week can be judged as of {as_of.date()}: the data's last order is on "
            f"{(end - pd.Timedelta(days=1)).date()}, and the {horizon}-day horizon of every "
            f"week old enough ({dates}) runs past it; the days without data would count as "
            "churn.",
            f"load data that covers the horizon (is the export up to date?): orders up to "
            f"{(past_data[0] + pd.Timedelta(days=horizon - 1)).date()} let the week of "
            f"{past_data[0].date()} be judged.",
        )
    if past_data:
        log.warning("left out %d week(s): %s", len(past_data), why)
    if not weeks:
        earliest = pd.to_datetime(scores["as_of"]).min() if len(scores) else None
        when = (
            f" The earliest stored score ({earliest.date()}) can be backtested from "
            f"{(earliest + pd.Timedelta(days=horizon)).date()}."
            if earliest is not None and not pd.isna(earliest)
            else ""
        )
        raise KaMlError(
            f"No weekly score in the score history is old enough to backtest as of "
            f"{as_of.date()}: the {horizon}-day horizon has not passed for any.{when}",
            "run ka-ml score every week; backtest once the horizon has passed (or pass a "
            "later --as-of with data that covers it).",
        )
    frame = outcomes(history, scores[scores["as_of"].isin(weeks)], cfg, end)
    metrics, reliability, per_week = backtest_metrics(frame, cfg)
    by_definition = lights_by_definition(frame)
    by_version = by_model_version(churn_population(frame, cfg))
    retrain, reasons = recommendation(metrics, cfg.monitoring)
    n = int(metrics.get("n", 0))
    lights = lights_not_model(metrics, reasons, cfg.monitoring) if retrain else ""
    if lights:
        retrain, message = False, lights
    elif retrain:
        message = "Retrain (ka-ml train): " + "; ".join(reasons) + "."
    elif n < cfg.monitoring.min_backtest_rows:
        message = (
            f"Too few labelled account-weeks ({n} < monitoring.min_backtest_rows "
            f"{cfg.monitoring.min_backtest_rows}) for a verdict."
        )
    else:
        message = "No retraining needed: every figure is within its threshold."
        if few := too_few_churners(metrics, cfg.monitoring):
            message = f"No retraining needed on what can be judged. {few}"
        elif notes := ceiling_notes(metrics, cfg.monitoring):
            message = " ".join([message, *notes])
    versions = sorted(
        set(scores.loc[scores["as_of"].isin(weeks), "churn_model_version"].astype(str))
    )
    return _native(
        {
            "as_of": str(as_of.date()),
            "horizon_days": horizon,
            "data_end": str(end.date()),
            "weeks": [str(d.date()) for d in weeks],
            "left_out_beyond_data_weeks": [str(d.date()) for d in past_data],
            "left_out_beyond_data_reason": why,
            # stored weeks whose horizon has not passed: (date, first day it can be judged)
            "waiting_weeks": waiting_weeks(scores["as_of"], as_of, horizon),
            "population": "at-risk accounts" if cfg.labels.at_risk_only else "all scored accounts",
            "metrics": metrics,
            "lights_by_churn_definition": by_definition,
            "by_churn_model_version": by_version,
            "reds_already_silent": reds_already_silent(frame, horizon),
            "reds_by_silence": reds_by_silence(frame, horizon),
            "reliability": reliability.to_dict("records"),
            "per_week": per_week.to_dict("records"),
            "recommendation": {
                "retrain": retrain,
                "reasons": reasons,
                "message": message,
                "lights": bool(lights),  # the recalls failed, the ranking held
            },
            "thresholds": cfg.monitoring.model_dump(),
            "data": {"source": history.source, "fingerprint": history.fingerprint()},
            "config_hash": cfg.hash(),
            "churn_model_versions": versions,
            "generated_by": package_versions(),
        }
    )
