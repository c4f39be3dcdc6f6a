"""Training sets: point-in-time snapshots of features with their churn and timing labels.

``train --as-of D`` must train on what was known at D: the history is cut to rows dated
before D first, and every snapshot ``s <= D`` builds its features from rows before ``s``
and its labels from ``[s, s + horizon)`` within what D knows. A churn window that is not
fully observed by D (``s + horizon > D``) gets ``churn = NaN``; those rows stay because
the timing labels (censored at D) still use them.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.features.build import feature_frames
from ka_ml.features.encode import known_before
from ka_ml.features.labels import churn_labels, timing_labels

log = logging.getLogger("ka_ml.features")


def snapshot_every(span_days: int, cfg: Config) -> int:
    """The configured cadence, or one chosen from the history: whole weeks (7 to 28 days)
    giving about ``features.target_snapshots`` snapshots over ``span_days``."""
    if cfg.features.snapshot_every_days is not None:
        return cfg.features.snapshot_every_days
    weeks = int(np.ceil(max(span_days, 1) / (cfg.features.target_snapshots * 7)))
    return 7 * min(max(weeks, 1), 4)


def _first_order_before(history: History, as_of: pd.Timestamp) -> pd.Timestamp | None:
    """The first order date before ``as_of`` (None without one): where snapshots may start."""
    known = history.orders["order_date"]
    known = known[known < as_of]
    return None if known.empty else pd.Timestamp(known.min())


def snapshot_dates(history: History, cfg: Config, as_of: pd.Timestamp) -> list[pd.Timestamp]:
    """s_k = as_of - k x cadence (k < max_snapshots), none before the first order plus
    ``features.min_history_days``."""
    as_of = pd.Timestamp(as_of).normalize()
    first = _first_order_before(history, as_of)
    if first is None:
        return []
    earliest = first + pd.Timedelta(days=cfg.features.min_history_days)
    every = snapshot_every((as_of - earliest).days, cfg)
    count = (as_of - earliest).days // every + 1
    if cfg.features.max_snapshots is not None:
        count = min(count, cfg.features.max_snapshots)
    dates = [as_of - k * pd.Timedelta(days=every) for k in range(max(count, 0))]
    return sorted(d for d in dates if d >= earliest)


def no_snapshot_reason(history: History, cfg: Config, as_of: pd.Timestamp) -> str:
    """Why :func:`snapshot_dates` gives none: no order before ``as_of``, or too short a
    history behind the first one."""
    first = _first_order_before(history, as_of)
    if first is None:
        return f"no order history before {as_of.date()}"
    return (
        f"the order history before {as_of.date()} starts on {first.date()}: "
        f"{(as_of - first).days} days, fewer than features.min_history_days "
        f"({cfg.features.min_history_days})"
    )


def build_training_set(history: History, cfg: Config, as_of: pd.Timestamp) -> pd.DataFrame:
    """Features + ``churn`` (float, NaN if unobserved), ``churn_definition``, ``days_to_next``,
    ``next_order_observed`` for every snapshot; sorted by (as_of, account_id)."""
    as_of = pd.Timestamp(as_of).normalize()
    known = known_before(history, as_of)  # everything at or after as_of is unknown
    dates = snapshot_dates(known, cfg, as_of)
    if not dates:
        log.warning("no snapshot date: %s", no_snapshot_reason(known, cfg, as_of))
    horizon = pd.Timedelta(days=cfg.labels.horizon_days)
    frames = feature_frames(known, dates, cfg)
    out = []
    for s in dates:
        feats = frames[s]
        ids = pd.Index(feats["account_id"].astype(object))
        churn = churn_labels(known, s, cfg, ids)
        timing = timing_labels(known, s, as_of, ids)
        observed = s + horizon <= as_of
        label = churn["churn"].to_numpy(dtype=np.float64) if observed else np.full(len(ids), np.nan)
        if cfg.labels.at_risk_only:
            label = np.where(at_risk(feats, churn, cfg), label, np.nan)
        df = feats.assign(
            churn=label,
            churn_definition=churn["churn_definition"].to_numpy(),
            days_to_next=timing["days_to_next"].to_numpy(),
            next_order_observed=timing["next_order_observed"].to_numpy(),
        )
        rate = (
            f"{np.nanmean(label):.1%}" if observed and np.isfinite(label).any() else "not observed"
        )
        log.info("snapshot %s: %d accounts, churn %s", s.date(), len(df), rate)
        out.append(df)
    if not out:
        return _empty(known, cfg, as_of)
    return pd.concat(out, ignore_index=True)


def at_risk(feats: pd.DataFrame, churn: pd.DataFrame, cfg: Config) -> np.ndarray:
    """Accounts that can still churn at the snapshot: a running contract under the contract
    rule, else an order within the horizon before the snapshot."""
    by_contract = churn["churn_definition"].to_numpy() == "contract"
    recent = feats["recency_days"].to_numpy(dtype=np.float64) <= cfg.labels.horizon_days
    return by_contract | recent


def _empty(history: History, cfg: Config, as_of: pd.Timestamp) -> pd.DataFrame:
    feats = feature_frames(history, [as_of], cfg)[as_of].iloc[0:0]
    return feats.assign(
        churn=pd.Series(dtype="float64"),
        churn_definition=pd.Series(dtype="str"),
        days_to_next=pd.Series(dtype="float64"),
        next_order_observed=pd.Series(dtype=bool),
    )
