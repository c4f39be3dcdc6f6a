"""The business's health scorecard: six measures, each its own red / yellow / green.

The model's light is the headline; the scorecard says which of the business's own
measures stands behind it (domain.md: usage frequency, complaint rate, renewal intent,
plus the purchase rhythm). Every measure is a transparent rule on one number (the rules
and their cut-offs live in ``scorecard:`` of the config), with the value, its trend and
the rule in one sentence. A measure is empty ('') where the table behind it is missing,
or where the account has nothing to measure (no usage ever, no renewal-intent answer, fewer
than two orders for a rhythm, too few order days for a basket size, no renewal in the last
year whose value and the replaced term's are known).

Pure: the feature table as of the date, the surveys and contracts known before it, the
config.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ka_ml.config import ScorecardConfig
from ka_ml.data.history import known_dates, survey_kinds
from ka_ml.data.schema import SURVEY_SCALE
from ka_ml.features.catalog import n_days
from ka_ml.scoring.lifecycle import float_column

MEASURES: tuple[str, ...] = (
    "usage",
    "complaints",
    "renewal_intent",
    "purchase_rhythm",
    "order_value",
    "contract_value",
)
LEVELS = np.array(["green", "yellow", "red"], dtype=object)
# a term replaced by a renewal ends at most this many days before the new term starts (a
# lapse the renewal closed) or after it (an overlap while both were signed); an earlier
# contract running on beyond that is an add-on beside the renewal, not the term it replaced
RENEWAL_LAPSE_DAYS, RENEWAL_OVERLAP_DAYS = 60, 30


def _lights(red: np.ndarray, yellow: np.ndarray, known: np.ndarray) -> np.ndarray:
    level = np.where(red, 2, np.where(yellow, 1, 0))
    return np.where(known, LEVELS[level], "").astype(object)


def usage(X: pd.DataFrame, cfg: ScorecardConfig) -> tuple[np.ndarray, np.ndarray]:
    """Usage of the last 90 days against the 90 days before, or (``usage_compare:
    year_before``) against the same days a year before where the account's usage reaches
    back that far: a SaaS user's August dip made 30% of its healthy accounts yellow from
    late August to October, and once August was the earlier window a real decline read
    "+36%"."""
    weekly, trend = float_column(X, "usage_weekly_90d"), float_column(X, "usage_trend_90d")
    yoy = float_column(X, "usage_yoy_90d")
    by_year = np.isfinite(yoy) & (cfg.usage_compare == "year_before")
    change = np.where(by_year, yoy, np.nan_to_num(trend))
    idle = float_column(X, "usage_recency_days")
    known = np.isfinite(idle)  # some usage on record
    ratio = 1.0 + change
    red = (idle > 90) | (ratio < cfg.usage_red_ratio)
    yellow = ratio < cfg.usage_yellow_ratio
    text = [
        (
            f"no usage for {n_days(idle_d)}"
            if idle_d > 90
            else f"{w:.1f} uses a week, {t:+.0%} vs "
            + ("the same 90 days a year before" if y else "the 90 days before")
        )
        + f" (red below {cfg.usage_red_ratio - 1:+.0%}, yellow below {cfg.usage_yellow_ratio - 1:+.0%})"
        if k
        else ""
        for w, t, y, idle_d, k in zip(weekly, change, by_year, idle, known, strict=True)
    ]
    return _lights(red, yellow, known), np.asarray(text, dtype=object)


def complaints(X: pd.DataFrame, cfg: ScorecardConfig) -> tuple[np.ndarray, np.ndarray]:
    n90, n365 = float_column(X, "complaints_90d"), float_column(X, "complaints_365d")
    known = np.isfinite(n90)
    red, yellow = n90 >= cfg.complaints_red, n90 >= cfg.complaints_yellow
    text = [
        f"{a:.0f} complaint{'s' if a != 1 else ''} in 90 days ({b:.0f} in the year; red from "
        f"{cfg.complaints_red}, yellow from {cfg.complaints_yellow})"
        if k
        else ""
        for a, b, k in zip(n90, np.nan_to_num(n365), known, strict=True)
    ]
    return _lights(red, yellow, known), np.asarray(text, dtype=object)


def purchase_rhythm(X: pd.DataFrame, cfg: ScorecardConfig) -> tuple[np.ndarray, np.ndarray]:
    rec, gap = float_column(X, "recency_days"), float_column(X, "gap_median_days")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(gap > 0, rec / gap, np.nan)
    known = np.isfinite(ratio)
    red, yellow = ratio >= cfg.rhythm_red, ratio >= cfg.rhythm_yellow
    text = [
        f"{n_days(r)} since the last order, {q:.1f}x the typical gap of {n_days(g)} "
        f"(red from {cfg.rhythm_red:g}x, yellow from {cfg.rhythm_yellow:g}x)"
        if k
        else ""
        for r, g, q, k in zip(rec, gap, ratio, known, strict=True)
    ]
    return _lights(red, yellow, known), np.asarray(text, dtype=object)


def order_value(X: pd.DataFrame, cfg: ScorecardConfig) -> tuple[np.ndarray, np.ndarray]:
    """Spend per order day of the last 90 days against that of the 9 months before
    (``basket_ratio_90d``), measured on ``order_value_min_orders`` order days or more in each
    (``basket_days_90d``): a food wholesaler's customers drifting to a competitor kept
    ordering twice a week while their baskets halved, green all the while."""
    ratio = float_column(X, "basket_ratio_90d")
    known = np.isfinite(ratio) & (float_column(X, "basket_days_90d") >= cfg.order_value_min_orders)
    red, yellow = ratio < cfg.order_value_red_ratio, ratio < cfg.order_value_yellow_ratio
    text = [
        f"spend per order day {r - 1:+.0%} vs the 9 months before (red below "
        f"{cfg.order_value_red_ratio - 1:+.0%}, yellow below {cfg.order_value_yellow_ratio - 1:+.0%})"
        if k
        else ""
        for r, k in zip(ratio, known, strict=True)
    ]
    return _lights(red, yellow, known), np.asarray(text, dtype=object)


def _per_account(ids: pd.Series, table: pd.DataFrame, col: str) -> np.ndarray:
    """``table[col]`` (indexed by account id) for each of ``ids``, NaN where absent."""
    return ids.map(table[col]).to_numpy(float) if len(table) else np.full(len(ids), np.nan)


def renewals(
    contracts: pd.DataFrame | None, as_of: pd.Timestamp, max_age_days: int
) -> pd.DataFrame:
    """Per account, its latest renewal known at ``as_of`` (started, or signed, before it;
    started within ``max_age_days``): the value of the contracts starting on the latest
    start day (``new``) against that of the earlier contracts ending within
    ``RENEWAL_LAPSE_DAYS`` before to ``RENEWAL_OVERLAP_DAYS`` after it (``old``: the terms it
    replaced; an add-on running on is no term replaced), and that ``start``. Columns ``new``, ``old``, ``start``; no row where either
    value is unknown or not positive."""
    empty = pd.DataFrame(columns=["new", "old", "start"])
    if contracts is None or contracts.empty or "value" not in contracts:
        return empty
    c = contracts.assign(
        account_id=contracts["account_id"].astype(str),
        _start=pd.to_datetime(contracts["start_date"]),
        _end=pd.to_datetime(contracts["end_date"]),
        _known=pd.to_datetime(known_dates("contracts", contracts)),
        _value=pd.to_numeric(contracts["value"], errors="coerce"),
    )
    c = c[c["_known"] < as_of]
    if c.empty:
        return empty
    latest = c.groupby("account_id")["_start"].max()
    c = c.assign(_latest=c["account_id"].map(latest))
    recent = as_of - c["_latest"] <= pd.Timedelta(days=max_age_days)
    new = c[recent & (c["_start"] == c["_latest"])].groupby("account_id")["_value"].sum(min_count=1)
    lag = (c["_end"] - c["_latest"]).dt.days
    replaced = recent & (c["_start"] < c["_latest"])
    replaced &= lag.between(-RENEWAL_LAPSE_DAYS, RENEWAL_OVERLAP_DAYS)
    old = c[replaced].groupby("account_id")["_value"].sum(min_count=1)
    out = pd.DataFrame({"new": new, "old": old, "start": latest.reindex(new.index)}).dropna()
    return out[(out["new"] > 0) & (out["old"] > 0)]


def contract_value(
    X: pd.DataFrame,
    contracts: pd.DataFrame | None,
    as_of: pd.Timestamp,
    cfg: ScorecardConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The latest renewal's value against the terms it replaced (:func:`renewals`): a
    software vendor's customers who renewed at 40-60% of their value were green in 86 of
    86 account-weeks after it, the order-value measure blind to one invoice a year."""
    ren = renewals(contracts, as_of, cfg.contract_value_max_age_days)
    ids = X["account_id"].astype(str)
    new, old = _per_account(ids, ren, "new"), _per_account(ids, ren, "old")
    start = pd.to_datetime(ids.map(ren["start"])) if len(ren) else pd.Series(pd.NaT, index=X.index)
    ratio = np.round(new / old, 2)  # as said: "at 60%" is not below 60%
    known = np.isfinite(ratio)
    red, yellow = ratio < cfg.contract_value_red_ratio, ratio < cfg.contract_value_yellow_ratio
    text = [
        f"renewed {'on' if d <= as_of else 'from'} {d:%d %b %Y} at {r:.0%} of the value of the "
        f"term before ({n:,.0f} vs {o:,.0f}; red below {cfg.contract_value_red_ratio:.0%}, "
        f"yellow below {cfg.contract_value_yellow_ratio:.0%})"
        if k
        else ""
        for r, n, o, d, k in zip(ratio, new, old, start, known, strict=True)
    ]
    return _lights(red, yellow, known), np.asarray(text, dtype=object)


def latest_answers(
    surveys: pd.DataFrame | None,
    kinds: list[str],
    as_of: pd.Timestamp,
    max_age_days: int,
) -> pd.DataFrame:
    """Per account: the latest answer of the given survey kinds before ``as_of`` (within
    ``max_age_days``) and the one before it. Columns ``last``, ``previous``, ``age_days``."""
    empty = pd.DataFrame(columns=["last", "previous", "age_days"], dtype=float)
    if surveys is None or surveys.empty or "kind" not in surveys:
        return empty
    wanted = {k.strip().lower() for k in kinds}
    s = surveys[survey_kinds(surveys["kind"]).isin(wanted).fillna(False)]
    day = pd.to_datetime(s["date"])
    s = s[(day < as_of) & (day >= as_of - pd.Timedelta(days=max_age_days))]
    if s.empty:
        return empty
    s = s.assign(_day=pd.to_datetime(s["date"]), account_id=s["account_id"].astype(str))
    daily = s.groupby(["account_id", "_day"])["score"].mean().reset_index()  # order-free
    daily = daily.sort_values(["account_id", "_day"])
    daily["previous"] = daily.groupby("account_id")["score"].shift(1)
    last = daily.groupby("account_id").tail(1).set_index("account_id")
    out = pd.DataFrame(
        {
            "last": last["score"].astype(float),
            "previous": last["previous"].astype(float),
            "age_days": (as_of - last["_day"]).dt.days.astype(float),
        }
    )
    return out


def renewal_intent(
    X: pd.DataFrame,
    surveys: pd.DataFrame | None,
    as_of: pd.Timestamp,
    cfg: ScorecardConfig,
) -> tuple[np.ndarray, np.ndarray]:
    ans = latest_answers(surveys, cfg.renewal_intent_kinds, as_of, cfg.intent_max_age_days)
    ids = X["account_id"].astype(str)
    last, prev = _per_account(ids, ans, "last"), _per_account(ids, ans, "previous")
    age = _per_account(ids, ans, "age_days")
    known = np.isfinite(last)
    top = SURVEY_SCALE[1]
    red, yellow = last <= cfg.intent_red, last <= cfg.intent_yellow
    text = [
        f"renewal intent {v + 0.0:g}/{top:g}, {n_days(d)} ago"  # + 0.0: -0.0 read "-0/10"
        + (f", {v - p + 0.0:+g} vs the answer before" if np.isfinite(p) else "")
        + f" (red at {cfg.intent_red:g} or below, yellow at {cfg.intent_yellow:g} or below)"
        if k
        else ""
        for v, p, d, k in zip(last, prev, age, known, strict=True)
    ]
    return _lights(red, yellow, known), np.asarray(text, dtype=object)


def scorecard(
    X: pd.DataFrame,
    surveys: pd.DataFrame | None,
    as_of: pd.Timestamp,
    cfg: ScorecardConfig,
    contracts: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``scorecard_<measure>`` (light or '') and ``scorecard_<measure>_detail`` (the value,
    its trend and the rule in words) for every measure, one row per row of ``X``."""
    parts = {
        "usage": usage(X, cfg),
        "complaints": complaints(X, cfg),
        "renewal_intent": renewal_intent(X, surveys, as_of, cfg),
        "purchase_rhythm": purchase_rhythm(X, cfg),
        "order_value": order_value(X, cfg),
        "contract_value": contract_value(X, contracts, as_of, cfg),
    }
    out = {}
    for name, (light, text) in parts.items():
        out[f"scorecard_{name}"] = light
        out[f"scorecard_{name}_detail"] = text
    return pd.DataFrame(out, index=X.index)
