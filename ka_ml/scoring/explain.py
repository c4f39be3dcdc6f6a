"""Plain-language reasons behind each churn score, from exact TreeSHAP values.

LightGBM's ``pred_contrib`` gives exact TreeSHAP values in log-odds; they add up to the
booster's margin (checked in the tests). Managers read probabilities, so each account's
contributions are rescaled by the secant slope of its calibrated probability between the
base value and its own margin: contributions in probability points then add up exactly to
(its churn probability - the portfolio base probability).

Related features are grouped before ranking (the 30/90/180/365-day order counts are one
"order volume" reason, the gap statistics one "purchase cycle" reason), so the top three
reasons are three different things; the sentence comes from the group's strongest feature
through the feature catalog, with the account's own values.
"""

from __future__ import annotations

import re
from typing import cast

import numpy as np
import pandas as pd

from ka_ml.features import catalog
from ka_ml.modeling.churn import ChurnModel

GROUPS: tuple[tuple[str, str], ...] = (
    (r"^orders_\d+d$|^orders_trend", "order volume"),
    (r"^spend_\d+d$|^spend_trend|^spend_slope", "spend"),
    (r"^gap_", "purchase cycle"),
    (r"^recency_days$|^overdue_ratio$", "time since last order"),
    (r"^products_", "product breadth"),
    (r"^aov_", "order value"),
    (r"^usage_", "product usage"),
    (r"^tickets_|^open_tickets$|^resolve_days|^severe_ticket", "support tickets"),
    (r"^complaints_|^open_critical", "complaints"),
    (r"^survey_", "survey"),
    (r"^contract_|^has_active_contract$", "contract"),
    (r"^revenue_share$|^abc_tier$|^dependency_index$", "portfolio position"),
)


def reason_group(feature: str) -> str:
    for pattern, group in GROUPS:
        if re.search(pattern, feature):
            return group
    return feature


def probability_contributions(
    model: ChurnModel, X: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, float]:
    """(contributions in probability points (n x f), calibrated p (n), base probability).

    Each row's log-odds contributions are scaled by one positive factor, so their order and
    signs are exactly TreeSHAP's. The factor is the secant slope of the calibrated
    probability between the base value and the row's margin, so the contributions add up
    to (p - base p). Where calibration is flat there (isotonic steps, |p - base p| < 0.5
    points) the raw booster probability's secant is used instead, which never vanishes.
    """
    contrib = model.contributions(X)
    phi = contrib[:, :-1]
    base = float(contrib[0, -1]) if len(contrib) else 0.0
    total = phi.sum(axis=1)
    p = model.predict_proba(X)
    cal = model.calibrator_
    p_base = float(cal.transform(np.array([base]))[0]) if cal else float(_sig(np.array([base]))[0])
    raw_gap = _sig(base + total) - _sig(np.array([base]))[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope_cal = (p - p_base) / total
        slope_raw = np.where(np.abs(total) > 1e-9, raw_gap / total, _dsig(base + total))
    use_cal = (np.abs(p - p_base) >= 0.005) & (slope_cal > 0) & np.isfinite(slope_cal)
    slope = np.where(use_cal, slope_cal, slope_raw)
    return phi * slope[:, None], p, p_base


def _sig(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, float)))


def _dsig(x: np.ndarray) -> np.ndarray:
    s = _sig(x)
    return s * (1 - s)


def top_reasons(model: ChurnModel, X: pd.DataFrame, n_reasons: int = 3) -> pd.DataFrame:
    """reason_k, reason_k_feature, reason_k_shap, reason_k_direction for k = 1..n."""
    contrib, _, _ = probability_contributions(model, X)
    feats = model.features_
    groups = [reason_group(f) for f in feats]
    names = sorted(set(groups))
    gidx = np.array([names.index(g) for g in groups])
    gsum = np.zeros((len(X), len(names)))
    for j in range(len(feats)):
        gsum[:, gidx[j]] += contrib[:, j]
    order = np.argsort(-np.abs(gsum), axis=1)[:, :n_reasons]
    raw = X.reset_index(drop=True)
    records = cast("list[dict[str, object]]", raw.to_dict("records"))
    out: dict[str, list[object]] = {}
    for k in range(n_reasons):
        out[f"reason_{k + 1}"], out[f"reason_{k + 1}_feature"] = [], []
        out[f"reason_{k + 1}_shap"], out[f"reason_{k + 1}_direction"] = [], []
    for i, row in enumerate(records):
        for k in range(n_reasons):
            g = order[i, k] if k < len(names) else None
            if g is None:
                for key, val in (("", ""), ("_feature", ""), ("_shap", np.nan), ("_direction", "")):
                    out[f"reason_{k + 1}{key}"].append(val)
                continue
            members = np.flatnonzero(gidx == g)
            lead = members[np.argmax(np.abs(contrib[i, members]))]
            feat = feats[lead]
            value = float(gsum[i, g])
            direction = "raises risk" if value > 0 else "lowers risk"
            sentence = catalog.get(feat).describe(row.get(feat), other=row)
            out[f"reason_{k + 1}"].append(f"{sentence} ({direction})")
            out[f"reason_{k + 1}_feature"].append(feat)
            out[f"reason_{k + 1}_shap"].append(value)
            out[f"reason_{k + 1}_direction"].append(direction)
    return pd.DataFrame(out, index=X.index)


def changes_since(
    model: ChurnModel, now: pd.DataFrame, before: pd.DataFrame, now_p: np.ndarray
) -> pd.Series:
    """What moved each account's risk most since the previous scoring date.

    ``before`` holds the same accounts' features one week earlier (same row order; rows of
    accounts not eligible then are all-NaN and get an empty text).
    """
    c_now, _, _ = probability_contributions(model, now)
    c_before, p_before, _ = probability_contributions(model, before)
    feats = model.features_
    groups = [reason_group(f) for f in feats]
    names = sorted(set(groups))
    gidx = np.array([names.index(g) for g in groups])
    delta = np.zeros((len(now), len(names)))
    for j in range(len(feats)):
        delta[:, gidx[j]] += c_now[:, j] - c_before[:, j]
    best = np.argmax(np.abs(delta), axis=1)
    rows_now = cast("list[dict[str, object]]", now.reset_index(drop=True).to_dict("records"))
    texts: list[str] = []
    for i, row in enumerate(rows_now):
        dp = (now_p[i] - p_before[i]) * 100
        g = best[i]
        if not np.isfinite(dp) or abs(delta[i, g]) < 0.005:
            texts.append("No material change since last week." if np.isfinite(dp) else "")
            continue
        members = np.flatnonzero(gidx == g)
        lead = members[np.argmax(np.abs(c_now[i, members] - c_before[i, members]))]
        sentence = catalog.get(feats[lead]).describe(row.get(feats[lead]), other=row)
        texts.append(
            f"Risk {'up' if dp >= 0 else 'down'} {abs(dp):.0f} pts since last week; "
            f"biggest mover: {names[g]} ({delta[i, g] * 100:+.0f} pts): {sentence}."
        )
    return pd.Series(texts, index=now.index)
