"""Exploratory and model-review tables behind the notebooks, as small pure functions.

The notebooks in ``notebooks/`` only wire these together and comment on the results, so
every number they show has one tested definition here. Conventions shared by all of them:

- a *purchase* is an order line with a positive amount (credit notes are not activity); a
  *purchase day* is one account's purchases on one date, however many lines;
- time is half-open: only rows dated strictly before ``as_of`` count;
- loops run over tables or slice columns, never over accounts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ka_ml.data.history import History
from ka_ml.data.schema import EVENT_DATE


# -- data profile -----------------------------------------------------------------------
def data_profile(history: History) -> pd.DataFrame:
    """One row per present table: rows, accounts, date range, and where values are missing.

    ``missing`` lists the columns with missing values and their share of rows, so a glance
    tells whether an optional signal (resolution dates, survey kind...) is usable.
    """
    rows = []
    for name, df in history.tables().items():
        date_col = EVENT_DATE.get(name)
        dates = df[date_col] if date_col in df.columns else pd.Series(dtype="datetime64[us]")
        share = df.isna().mean()
        share = share[share > 0].sort_values(ascending=False)
        rows.append(
            {
                "table": name,
                "rows": len(df),
                "accounts": int(df["account_id"].nunique()),
                "first_date": dates.min(),
                "last_date": dates.max(),
                "missing": ", ".join(f"{c} {s:.0%}" for c, s in share.items()) or "-",
            }
        )
    return pd.DataFrame(rows).set_index("table")


def purchase_days(orders: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """account_id, order_date, amount: one row per account and day with a purchase before
    ``as_of`` (positive lines summed), sorted by account then date."""
    o = orders[(orders["order_date"] < pd.Timestamp(as_of)) & (orders["amount"] > 0)]
    return o.groupby(["account_id", "order_date"], sort=True)["amount"].sum().reset_index()


def first_purchase(orders: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    """Each account's first purchase date before ``as_of`` (index account_id)."""
    days = purchase_days(orders, as_of)
    return days.groupby("account_id", sort=True)["order_date"].min().rename("first_purchase")


def monthly_activity(orders: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per complete calendar month before ``as_of``: purchase days, net revenue (credit
    notes included) and the number of accounts that bought.

    Partial months at either end are left out (the month of the first order unless the
    data starts on its 1st, the month of ``as_of`` unless ``as_of`` is its 1st): a partial
    month would look like a sudden drop.
    """
    as_of = pd.Timestamp(as_of)
    o = orders[orders["order_date"] < as_of]
    month = o["order_date"].dt.to_period("M").dt.start_time
    revenue = o["amount"].groupby(month).sum()
    days = purchase_days(o, as_of)
    dmonth = days["order_date"].dt.to_period("M").dt.start_time
    out = pd.DataFrame(
        {
            "purchase_days": days.groupby(dmonth).size(),
            "revenue": revenue,
            "buying_accounts": days["account_id"].groupby(dmonth).nunique(),
        }
    ).fillna(0.0)
    out.index = pd.DatetimeIndex(out.index, name="month")
    complete = (out.index + pd.offsets.MonthBegin(1) <= as_of) & (
        out.index >= o["order_date"].min()
    )
    return out[complete].astype({"purchase_days": "int64", "buying_accounts": "int64"})


# -- cohorts ----------------------------------------------------------------------------
def _period_index(dates: pd.Series, months: int) -> np.ndarray:
    """Integer period number of each date for periods of ``months`` months (1, 3, 6, 12)."""
    return (dates.dt.year.to_numpy() * 12 + dates.dt.month.to_numpy() - 1) // months


def _period_start(index: np.ndarray, months: int) -> pd.DatetimeIndex:
    m = index * months
    return pd.DatetimeIndex(
        pd.to_datetime({"year": m // 12, "month": m % 12 + 1, "day": 1}).astype("datetime64[us]")
    )


def cohort_retention(
    orders: pd.DataFrame, as_of: pd.Timestamp, months_per_period: int = 3
) -> pd.DataFrame:
    """Share of each acquisition cohort that purchased in each later period.

    Cohort = the period of an account's first purchase; column ``k`` = the share of the
    cohort with a purchase in its k-th period after that (``0`` is 1.0 by construction).
    Index: (cohort start date, accounts in the cohort). Only complete periods count: the
    partial periods at both ends of the data are dropped, and a cell the data cannot show
    yet is NaN, not 0. The first cohort is therefore mostly the *existing book*: accounts
    that were customers before the data starts, not accounts won in that period.
    """
    if months_per_period not in (1, 2, 3, 4, 6, 12):
        raise ValueError(f"months_per_period must divide 12; got {months_per_period}.")
    as_of = pd.Timestamp(as_of)
    days = purchase_days(orders, as_of)
    if days.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_arrays([[], []], names=["cohort", "accounts"]))
    ends = pd.Series([days["order_date"].min(), as_of - pd.Timedelta(days=1)])
    first, current = (int(i) for i in _period_index(ends, months_per_period))
    starts = _period_start(np.array([first, current + 1]), months_per_period)
    if ends[0] > starts[0]:
        first += 1  # the data starts mid-period: that period is incomplete
    if as_of == starts[1]:
        current += 1  # as_of opens a new period: the one before it is complete
    period = _period_index(days["order_date"], months_per_period)
    keep = (period >= first) & (period < current)
    days, period = days[keep], period[keep]
    ids = days["account_id"].to_numpy()
    cohort = pd.Series(period, index=ids).groupby(level=0).min()
    start = cohort.reindex(ids).to_numpy()
    cells = pd.DataFrame({"account_id": ids, "cohort": start, "age": period - start})
    cells = cells.drop_duplicates()
    active = cells.groupby(["cohort", "age"]).size().unstack("age", fill_value=0)
    if active.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_arrays([[], []], names=["cohort", "accounts"]))
    sizes = cohort.value_counts().reindex(active.index)
    ages = np.arange(int(active.columns.max()) + 1)
    share = active.reindex(columns=ages, fill_value=0).div(sizes, axis=0).astype("float64")
    observable = active.index.to_numpy()[:, None] + ages[None, :] < current
    share = share.where(observable)
    share.index = pd.MultiIndex.from_arrays(
        [_period_start(active.index.to_numpy(), months_per_period), sizes.to_numpy()],
        names=["cohort", "accounts"],
    )
    share.columns = pd.Index(ages, name="periods_since_first_purchase")
    return share


def pooled_retention(table: pd.DataFrame) -> pd.Series:
    """Account-weighted mean retention per period across the cohorts that can show it."""
    sizes = table.index.get_level_values("accounts").to_numpy(dtype=np.float64)
    values = table.to_numpy(dtype=np.float64)
    weights = np.where(np.isnan(values), 0.0, sizes[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.nansum(values * weights, axis=0) / weights.sum(axis=0)
    return pd.Series(pooled, index=table.columns, name="pooled_retention")


# -- purchase cycles --------------------------------------------------------------------
def purchase_gaps(orders: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """account_id, order_date, gap_days: days since the account's previous purchase day,
    one row per purchase day after its first."""
    days = purchase_days(orders, as_of)
    gap = days.groupby("account_id", sort=False)["order_date"].diff().dt.days
    out = days[["account_id", "order_date"]].assign(gap_days=gap.astype("float64"))
    return out[out["gap_days"].notna()].reset_index(drop=True)


def gap_stats(gaps: pd.DataFrame) -> pd.DataFrame:
    """Per account: n_gaps, median/mean gap in days and the coefficient of variation.

    CV (sample std / mean, NaN with fewer than two gaps) measures regularity: about 1 for
    random (Poisson) buying, well below 1 for accounts that order in a cycle, which is
    what makes "overdue against its own cycle" a meaningful signal.
    """
    g = gaps.groupby("account_id", sort=True)["gap_days"]
    out = pd.DataFrame(
        {
            "n_gaps": g.size(),
            "median_gap_days": g.median(),
            "mean_gap_days": g.mean(),
            "std_gap_days": g.std(ddof=1),
        }
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        out["cv"] = out["std_gap_days"] / out["mean_gap_days"]
    return out.drop(columns="std_gap_days")


# -- churn rates ------------------------------------------------------------------------
def wilson_interval(
    successes: ArrayLike, trials: ArrayLike, z: float = 1.96
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a proportion: honest for small groups and rates near 0,
    where the normal approximation gives negative lower bounds. NaN where trials = 0."""
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        center = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return np.clip(center - half, 0.0, 1.0), np.clip(center + half, 0.0, 1.0)


def churn_rate_by(frame: pd.DataFrame, by: str, label: str = "churn") -> pd.DataFrame:
    """Churn rate per value of ``by`` with a 95% Wilson interval.

    Rows whose label is missing (window not observed, or not at risk) are left out; a
    missing group value becomes "unknown". Columns: ``by``, n, churners, rate, lo, hi.
    On snapshot rows an account counts once per snapshot, so intervals are optimistic.
    """
    missing = [c for c in (by, label) if c not in frame.columns]
    if missing:
        raise ValueError(f"churn_rate_by: column(s) {missing} not in the frame.")
    df = frame[frame[label].notna()]
    key = df[by]
    if not pd.api.types.is_datetime64_any_dtype(key):
        key = key.astype(object).where(key.notna(), "unknown").astype(str)
    y = df[label].astype("float64")
    g = y.groupby(key.to_numpy(), sort=True)
    out = pd.DataFrame({"n": g.size(), "churners": g.sum().astype("int64")})
    out["rate"] = out["churners"] / out["n"]
    out["lo"], out["hi"] = wilson_interval(out["churners"], out["n"])
    out.index.name = by
    return out.reset_index()


# -- signals before churn ---------------------------------------------------------------
def churn_anchors_from_orders(
    orders: pd.DataFrame, as_of: pd.Timestamp, horizon_days: int
) -> pd.Series:
    """Churn dates seen in orders alone: for accounts with no purchase in the last
    ``horizon_days`` before ``as_of``, the day after their last purchase.

    The observable stand-in for a churn date when no ground truth exists (the ``no_order``
    churn definition). Index account_id, sorted.
    """
    days = purchase_days(orders, as_of)
    last = days.groupby("account_id", sort=True)["order_date"].max()
    lapsed = last < pd.Timestamp(as_of) - pd.Timedelta(days=horizon_days)
    return (last[lapsed] + pd.Timedelta(days=1)).rename("anchor")


def control_anchors(
    account_ids: Sequence[str] | pd.Index, anchor_dates: pd.Series, seed: int = 0
) -> pd.Series:
    """Pseudo churn dates for a comparison group, drawn from the churners' own dates.

    Aligning retained accounts on the same calendar dates as the churners keeps season
    and data-coverage effects identical in both groups, so a difference between the
    curves is about churn, not about the calendar. Deterministic in ``seed``.
    """
    pool = pd.Series(anchor_dates).dropna().to_numpy()
    ids = pd.Index(account_ids, name="account_id")
    if len(pool) == 0:
        return pd.Series(pd.NaT, index=ids, name="anchor", dtype="datetime64[us]")
    draws = np.random.default_rng(seed).choice(pool, size=len(ids), replace=True)
    return pd.Series(draws, index=ids, name="anchor").astype("datetime64[us]")


def align_on_anchor(
    events: pd.DataFrame,
    anchors: pd.Series,
    *,
    date_col: str,
    value_col: str | None = None,
    weeks_before: int = 52,
    weeks_per_bin: int = 1,
    observed_from: pd.Series | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Each account's activity in the weeks before its anchor (churn) date.

    Rows: the accounts of ``anchors`` (index account_id, NaT anchors dropped). Columns: the
    week offset where each bin starts, from ``-weeks_before`` up to ``-weeks_per_bin``; bin
    ``w`` covers ``[anchor + 7w days, anchor + 7(w + weeks_per_bin) days)``. Values: the sum
    of ``value_col`` (or the number of rows when None) in the bin; 0 when nothing happened,
    NaN when the bin starts before ``observed_from`` (a date, or one per account: e.g. the
    later of the table's first date and the account's first purchase), because "no data
    yet" must not read as "no activity".
    """
    if weeks_before <= 0 or weeks_per_bin <= 0 or weeks_before % weeks_per_bin:
        raise ValueError(
            f"weeks_before ({weeks_before}) must be a positive multiple of weeks_per_bin "
            f"({weeks_per_bin})."
        )
    anchors = anchors.dropna().astype("datetime64[us]")
    starts = np.arange(-weeks_before, 0, weeks_per_bin)
    anchor = events["account_id"].map(anchors)
    days = (events[date_col] - anchor).dt.days
    keep = days.notna() & (days < 0) & (days >= -7 * weeks_before)
    ev = events[keep]
    offset = (np.floor_divide(days[keep].to_numpy(dtype=np.int64), 7 * weeks_per_bin)) * (
        weeks_per_bin
    )
    values = ev[value_col].astype("float64") if value_col else pd.Series(1.0, index=ev.index)
    sums = values.groupby([ev["account_id"].to_numpy(), offset]).sum()
    wide = sums.unstack(fill_value=0) if len(sums) else pd.DataFrame()
    wide = wide.reindex(index=anchors.index, columns=starts, fill_value=0.0).astype("float64")
    if observed_from is not None:
        bin_start = anchors.to_numpy()[:, None] + starts[None, :] * np.timedelta64(7, "D")
        if isinstance(observed_from, pd.Series):
            first = observed_from.reindex(anchors.index).astype("datetime64[us]").to_numpy()
        else:
            first = np.full(len(anchors), np.datetime64(pd.Timestamp(observed_from), "us"))
        unobserved = np.isnat(first)[:, None] | (bin_start < first[:, None])
        wide = wide.mask(unobserved)
    wide.index.name = "account_id"
    wide.columns = pd.Index(starts, name="week")
    return wide


def relative_to_baseline(wide: pd.DataFrame, baseline_bins: int) -> pd.DataFrame:
    """Each row divided by its mean over the first ``baseline_bins`` columns.

    Puts large and small accounts on one scale (1.0 = the account's usual level). Rows
    with no positive, observed baseline become NaN: they say nothing about a change.
    """
    base = wide.iloc[:, :baseline_bins].mean(axis=1, skipna=True)
    base = base.where(base > 0)
    return wide.div(base, axis=0)


def mean_curve(wide: pd.DataFrame) -> pd.DataFrame:
    """Per column: mean over accounts, its standard error and the accounts behind it."""
    n = wide.count()
    with np.errstate(invalid="ignore", divide="ignore"):
        se: pd.Series = wide.std(ddof=1) / np.sqrt(n)
    return pd.DataFrame({"mean": wide.mean(), "se": se, "n": n})


def aligned_curves(
    events: pd.DataFrame,
    groups: Mapping[str, pd.Series],
    *,
    date_col: str,
    value_col: str | None = None,
    weeks_before: int = 52,
    weeks_per_bin: int = 1,
    observed_from: pd.Series | pd.Timestamp | None = None,
    baseline_bins: int | None = None,
) -> dict[str, pd.DataFrame]:
    """``mean_curve`` of each group's activity aligned on its anchors (e.g. churned vs
    retained), optionally relative to each account's own baseline (``baseline_bins``)."""
    out = {}
    for name, anchors in groups.items():
        wide = align_on_anchor(
            events,
            anchors,
            date_col=date_col,
            value_col=value_col,
            weeks_before=weeks_before,
            weeks_per_bin=weeks_per_bin,
            observed_from=observed_from,
        )
        if baseline_bins is not None:
            wide = relative_to_baseline(wide, baseline_bins)
        out[name] = mean_curve(wide)
    return out


# -- model review -----------------------------------------------------------------------
def slice_calibration(
    df: pd.DataFrame, y_col: str, p_col: str, slice_cols: Sequence[str]
) -> pd.DataFrame:
    """Calibration in the large per slice: mean predicted vs observed churn rate.

    One row per (slice, value) with n, mean_p, observed_rate and gap (observed - mean_p):
    a model can rank well overall yet under-warn a whole tier or industry. Values are
    strings, missing -> "<NA>", as in :func:`ka_ml.modeling.metrics.slice_metrics`.
    """
    missing = [c for c in (y_col, p_col, *slice_cols) if c not in df.columns]
    if missing:
        raise ValueError(f"slice_calibration: column(s) {missing} not in the frame.")
    parts = []
    for col in slice_cols:
        key = df[col].astype(object).where(df[col].notna(), "<NA>").astype(str)
        g = df.groupby(key.to_numpy(), sort=True)
        part = pd.DataFrame(
            {
                "n": g.size(),
                "mean_p": g[p_col].mean(),
                "observed_rate": g[y_col].mean(),
            }
        )
        parts.append(part.rename_axis("value").reset_index().assign(slice=col))
    if not parts:
        return pd.DataFrame(columns=["slice", "value", "n", "mean_p", "observed_rate", "gap"])
    out = pd.concat(parts, ignore_index=True)
    out["gap"] = out["observed_rate"] - out["mean_p"]
    return out[["slice", "value", "n", "mean_p", "observed_rate", "gap"]]


EXAMPLE_KINDS = ("caught churner", "false alarm", "missed churner")


def pick_examples(y: ArrayLike, p: ArrayLike) -> dict[str, int]:
    """Positions of three instructive accounts: the highest-scored churner (a catch), the
    highest-scored non-churner (a false alarm) and the lowest-scored churner (a miss).

    A kind is left out when the data has no such account (no churner, or the only churner
    is already the catch); ties go to the first position.
    """
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"y and p must have the same length; got {len(y_arr)} and {len(p_arr)}.")
    pos, neg = np.flatnonzero(y_arr == 1), np.flatnonzero(y_arr == 0)
    out: dict[str, int] = {}
    if len(pos):
        out["caught churner"] = int(pos[np.argmax(p_arr[pos])])
    if len(neg):
        out["false alarm"] = int(neg[np.argmax(p_arr[neg])])
    if len(pos) > 1:
        out["missed churner"] = int(pos[np.argmin(p_arr[pos])])
    return out


def example_accounts(
    picks: Mapping[str, int],
    rows: pd.DataFrame,
    y: ArrayLike,
    p: ArrayLike,
    p_model: ArrayLike,
) -> pd.DataFrame:
    """The picked accounts (:func:`pick_examples` on ``y``, ``p``) as a table: account, the
    snapshot's as-of, the probability they were picked by (``p``, out of time), the model's
    own score of the same row (``p_model``, in the picked order: what its reasons explain)
    and whether the account churned."""
    at = list(picks.values())
    y_arr = np.asarray(y, dtype=np.float64)
    p_arr = np.asarray(p, dtype=np.float64)
    return pd.DataFrame(
        {
            "example": list(picks),
            "account_id": rows["account_id"].iloc[at].astype(str).to_numpy(),
            "as_of": pd.to_datetime(rows["as_of"].iloc[at]).dt.strftime("%Y-%m-%d").to_numpy(),
            "p_out_of_time": p_arr[at],
            "p_champion": np.asarray(p_model, dtype=np.float64),
            "churned": y_arr[at].astype(bool),
        }
    )


def mean_abs_contributions(contrib: ArrayLike, features: Sequence[str]) -> pd.Series:
    """Mean |SHAP value| per feature (global importance in the model's own units),
    largest first. ``contrib`` is n x f, or n x (f + 1) with the base value last."""
    c = np.asarray(contrib, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] not in (len(features), len(features) + 1):
        raise ValueError(f"contributions of shape {c.shape} do not match {len(features)} features.")
    imp = np.abs(c[:, : len(features)]).mean(axis=0)
    return pd.Series(
        imp, index=pd.Index(features, name="feature"), name="mean_abs_shap"
    ).sort_values(ascending=False, kind="stable")


OTHER_FEATURES = "all other features"


def top_contributions(
    contrib: ArrayLike, features: Sequence[str], values: pd.Series, top: int = 8
) -> pd.DataFrame:
    """One account's ``top`` features by absolute contribution, strongest first, plus a
    row for all the other features together, so the rows add up to the account's total.

    Columns: feature, value (the account's own value, from ``values``), contribution.
    """
    c = np.asarray(contrib, dtype=np.float64).ravel()
    if len(c) != len(features):
        raise ValueError(f"{len(c)} contributions for {len(features)} features.")
    order = np.argsort(-np.abs(c), kind="stable")
    head, rest = order[:top], order[top:]
    names = [features[i] for i in head]
    out = pd.DataFrame(
        {
            "feature": names,
            "value": pd.Series([values.get(f) for f in names], dtype=object),
            "contribution": c[head],
        }
    )
    if len(rest):
        other = pd.DataFrame(
            {"feature": [OTHER_FEATURES], "value": [None], "contribution": [c[rest].sum()]}
        )
        out = pd.concat([out, other.astype({"value": object})], ignore_index=True)
    return out
