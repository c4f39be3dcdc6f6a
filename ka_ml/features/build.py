"""Point-in-time feature tables: one row per eligible account as of a date.

Two steps, so the heavy part scales out:

1. :func:`account_features` - per-account features. An account's row depends only on its
   own rows, so any chunk of accounts can be computed alone (today: chunks of
   ``features.chunk_accounts`` in one process; later: one account partition per Spark task).
2. :func:`add_portfolio_features` - revenue share, ABC tier and dependency index: a small
   step over one revenue figure per account of the whole portfolio.

Time is half-open: features as of ``D`` use only rows dated before ``D``. The history is
cut with ``history.before`` first, and every family again masks ``day < D`` on the encoded
arrays (:meth:`Encoded.upto`), so several snapshot dates can share one encoding.

Eligible accounts: at least one order in the ``features.eligibility_days`` before the
as-of, or a contract running at the as-of (started before it, ending on or after it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.features import per_account
from ka_ml.features.catalog import ABC_CATEGORIES, YEAR_DAYS, FeatureSpec, features_for
from ka_ml.features.contracts import contract_features, running
from ka_ml.features.encode import Encoded, encode, feature_categories, known_before, to_day
from ka_ml.features.orders import Bands, order_bounds, order_features
from ka_ml.features.portfolio import abc_tiers, dependency_index, portfolio_revenue, revenue_shares
from ka_ml.features.surveys import survey_features
from ka_ml.features.tickets import ticket_features
from ka_ml.features.usage import usage_features

log = logging.getLogger("ka_ml.features")

KEYS = ("account_id", "as_of")


def build_features(history: History, as_of: pd.Timestamp, cfg: Config) -> pd.DataFrame:
    """The feature table as of ``as_of``: eligible accounts (sorted), catalog columns in order."""
    as_of = pd.Timestamp(as_of).normalize()
    return feature_frames(history, [as_of], cfg)[as_of]


def feature_frames(
    history: History, dates: Iterable[pd.Timestamp], cfg: Config
) -> dict[pd.Timestamp, pd.DataFrame]:
    """Feature tables at several dates from one encoding (each date sees only rows before it)."""
    days = sorted({pd.Timestamp(d).normalize() for d in dates})
    if not days:
        return {}
    hist = known_before(history, days[-1])
    specs = features_for(hist, cfg.features.windows_days)
    enc = encode(hist, feature_categories(history))
    step = cfg.features.chunk_accounts
    parts: dict[pd.Timestamp, list[pd.DataFrame]] = {d: [] for d in days}
    revenue: dict[pd.Timestamp, list[pd.Series]] = {d: [] for d in days}
    for lo in range(0, max(enc.n, 1), step):
        chunk = enc if enc.n <= step else enc.slice(lo, min(lo + step, enc.n))
        for d in days:
            df, rev = account_block(chunk, d, cfg)
            parts[d].append(df)
            revenue[d].append(rev)
    out = {}
    for d in days:
        df = pd.concat(parts[d], ignore_index=True) if len(parts[d]) > 1 else parts[d][0]
        rev = pd.concat(revenue[d]) if len(revenue[d]) > 1 else revenue[d][0]
        df = add_portfolio_features(df, history, d, cfg, revenue=rev)
        out[d] = _in_catalog_order(df, specs)
    return out


def account_features(
    history_chunk: History,
    as_of: pd.Timestamp,
    cfg: Config,
    categories: Mapping[str, Sequence[str]],
) -> pd.DataFrame:
    """Per-account features of the eligible accounts in ``history_chunk`` (no portfolio step).

    ``categories`` are the fixed attribute categories (:func:`feature_categories` of the
    whole data), so every chunk gets identical category dtypes.
    """
    as_of = pd.Timestamp(as_of).normalize()
    df, _ = account_block(encode(known_before(history_chunk, as_of), categories), as_of, cfg)
    return df


def add_portfolio_features(
    df: pd.DataFrame,
    history: History,
    as_of: pd.Timestamp,
    cfg: Config,
    *,
    revenue: pd.Series | None = None,
) -> pd.DataFrame:
    """Add revenue_share, abc_tier and dependency_index to the per-account rows of ``df``.

    Shares and tiers are relative to the whole portfolio: ``revenue`` (indexed by
    account_id, every account, from the per-account step) or, when not given, computed from
    ``history`` over ``portfolio.revenue_days`` before ``as_of``.
    """
    p = cfg.portfolio
    rev = portfolio_revenue(history, as_of, p) if revenue is None else revenue
    accounts = history.accounts.drop_duplicates("account_id", keep="last").set_index("account_id")
    if "industry" in accounts.columns:
        industry = accounts["industry"].reindex(rev.index)
    else:
        industry = pd.Series(np.nan, index=rev.index, dtype=object)
    ids = pd.Index(df["account_id"].astype(object))
    tiers = abc_tiers(rev, p).reindex(ids).fillna("C").to_numpy()
    return df.assign(
        revenue_share=revenue_shares(rev).reindex(ids).fillna(0.0).to_numpy(),
        abc_tier=pd.Categorical(tiers, categories=list(ABC_CATEGORIES)),
        dependency_index=dependency_index(rev, industry, p).reindex(ids).fillna(0.0).to_numpy(),
    )


def with_portfolio_of(frame: pd.DataFrame, history: History, cfg: Config) -> pd.DataFrame:
    """``frame`` (rows of some accounts at one or more ``as_of`` dates) with its portfolio
    features recomputed against ``history``'s whole portfolio at each date: features built
    on a sample of the accounts (``tuning.max_accounts``) would read each account's share
    of the sample's revenue, four times its share of the company's in a sample of a
    quarter, and the scorer reads the company's."""
    if frame.empty:
        return frame
    dates = pd.DatetimeIndex(pd.to_datetime(frame["as_of"]))
    parts = [add_portfolio_features(frame[dates == d], history, d, cfg) for d in dates.unique()]
    out = pd.concat(parts)
    return out.loc[frame.index, frame.columns]


def account_block(enc: Encoded, as_of: pd.Timestamp, cfg: Config) -> tuple[pd.DataFrame, pd.Series]:
    """(eligible accounts' per-account features, portfolio revenue of every account)."""
    t = to_day(as_of)
    n = enc.n
    o = enc.upto("orders", t)
    assert o is not None
    days, gaps = enc.upto("order_days", t), enc.upto("gaps", t)
    assert days is not None and gaps is not None
    windows = cfg.features.windows_days
    elig_days, rev_days = cfg.features.eligibility_days, cfg.portfolio.revenue_days
    bands = Bands(o["code"], t - o["day"], n, order_bounds(windows, (elig_days, rev_days)))
    cols = order_features(
        o, days, gaps, n, t, windows, bands, enc.created, horizon=cfg.labels.horizon_days
    )
    eligible = bands.window(bands.sums(o["purchase"], "purchases"), 1, elig_days) > 0
    for table, fn in (("usage", usage_features), ("surveys", survey_features)):
        at = enc.read_day(table, t)  # a late feed: as of its end, its missing days not silence
        arrays = enc.upto(table, at)
        if arrays is not None:
            cols.update(fn(arrays, n, at))
    at = enc.read_day("tickets", t)
    tk = enc.upto("tickets", at)
    if tk is not None:
        orders_year = bands.window(bands.sums(o["new_order"], "orders"), 1, YEAR_DAYS)
        cols.update(ticket_features(tk, n, at, orders_year, cols["tenure_days"]))
    c = enc.upto("contracts", t)
    if c is not None:
        cols.update(contract_features(c, n, t))
        eligible |= per_account.count(c["code"][running(c, t)], n) > 0
    revenue = pd.Series(
        bands.window(bands.sums(o["amount"], "spend"), 1, rev_days),
        index=pd.Index(enc.ids, dtype=object, name="account_id"),
        name="revenue",
    )
    rows = np.flatnonzero(eligible)
    data: dict[str, object] = {
        "account_id": pd.array(enc.ids[rows], dtype="str"),
        "as_of": np.full(len(rows), np.datetime64(as_of.normalize(), "us")),
    }
    for name, values in cols.items():
        data[name] = values[rows].astype(np.float64, copy=False)
    for name, cat in enc.attributes.items():
        data[name] = cat[rows]
    return pd.DataFrame(data), revenue


def _in_catalog_order(df: pd.DataFrame, specs: list[FeatureSpec]) -> pd.DataFrame:
    names = [s.name for s in specs]
    extra = sorted(set(df.columns) - set(KEYS) - set(names))
    missing = [x for x in names if x not in df.columns]
    if extra or missing:  # a programming error: the catalog and the code disagree
        raise RuntimeError(
            f"features outside the catalog {extra} / catalog features not built {missing}"
        )
    return df[[*KEYS, *names]].reset_index(drop=True)
