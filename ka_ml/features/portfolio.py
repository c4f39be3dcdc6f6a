"""Portfolio position: revenue share, ABC tiers and the customer dependency index.

These are the article's portfolio rules, as pure vectorised functions over one revenue
figure per account. They need the whole portfolio (a share is relative to everyone), so
they run as a small second step after the per-account features (see ``build.py``).

Definitions (all thresholds in ``PortfolioConfig``):

- revenue: order amounts summed over the ``revenue_days`` before the as-of date; an account
  whose credits exceed its sales counts as 0 (a share is never negative).
- share rule: A when share > ``abc_share_a``, B when share >= ``abc_share_b``, else C.
- pareto rule: accounts sorted by revenue (largest first, ties by account id); A while the
  cumulative share *before* the account is below ``pareto_a`` (so the account that crosses
  the line is A), B while it is below ``pareto_b``, else C. Accounts without revenue: C.
- dependency index = revenue share x industry concentration coefficient, where the
  coefficient is either ``industry_share`` (the share of portfolio revenue coming from the
  account's industry) or ``industry_hhi`` (the Herfindahl index of revenue shares inside
  the account's industry: 1 when the account is its industry's only revenue). Accounts
  without an industry form one "unknown" group.
- alert when the index exceeds ``dependency_alert`` (the article's 0.4).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ka_ml.config import PortfolioConfig
from ka_ml.data.history import History

UNKNOWN_INDUSTRY = "unknown"


def portfolio_revenue(history: History, as_of: pd.Timestamp, cfg: PortfolioConfig) -> pd.Series:
    """Revenue per account over ``[as_of - revenue_days, as_of)``, for every account with orders.

    Indexed by account_id (sorted); accounts with orders only outside the window get 0.
    """
    as_of = pd.Timestamp(as_of)
    o = history.orders
    start = as_of - pd.Timedelta(days=cfg.revenue_days)
    in_window = (o["order_date"] >= start) & (o["order_date"] < as_of)
    amount = o["amount"].where(in_window, 0.0)
    rev = amount.groupby(o["account_id"], sort=True).sum()
    rev.index.name = "account_id"
    return rev.astype("float64").rename("revenue")


def revenue_shares(revenue: pd.Series) -> pd.Series:
    """Each account's share of the total (negative revenue counts as 0; all 0 if no revenue)."""
    r = revenue.astype("float64").clip(lower=0.0).fillna(0.0)
    total = float(r.sum())
    if total <= 0:
        return pd.Series(0.0, index=revenue.index, name="revenue_share")
    return (r / total).rename("revenue_share")


def abc_tiers(revenue: pd.Series, cfg: PortfolioConfig) -> pd.Series:
    """ABC tier per account ("A"/"B"/"C", same index as ``revenue``) by the configured rule."""
    share = revenue_shares(revenue)
    tiers = np.full(len(share), "C", dtype=object)
    s = share.to_numpy()
    if cfg.abc_method == "share":
        tiers[s >= cfg.abc_share_b] = "B"
        tiers[s > cfg.abc_share_a] = "A"
    else:
        before = share_before(share).to_numpy()
        positive = s > 0
        tiers[positive & (before < cfg.pareto_b)] = "B"
        tiers[positive & (before < cfg.pareto_a)] = "A"
    return pd.Series(tiers, index=revenue.index, name="abc_tier", dtype=object)


def share_before(share: pd.Series) -> pd.Series:
    """The pareto rule's position: the revenue share of the accounts ranked above each one
    (largest first; ties broken by account id, so row order does not matter)."""
    s = share.to_numpy(float)
    ids = np.asarray(share.index.astype(str))
    order = np.lexsort((ids, -s))
    before = np.empty(len(s))
    before[order] = np.cumsum(s[order]) - s[order]
    return pd.Series(before, index=share.index, name="share_before")


def tier_position(share: pd.Series, cfg: PortfolioConfig) -> pd.Series:
    """Where each account stands for its tier, in the rule's own unit: the share of the
    accounts above it (pareto) or its own share (share rule)."""
    return share_before(share) if cfg.abc_method == "pareto" else share.astype(float)


def tier_cut(lower: str, upper: str, cfg: PortfolioConfig) -> float:
    """The cut between two adjacent tiers in :func:`tier_position`'s unit."""
    pareto = cfg.abc_method == "pareto"
    if {lower, upper} == {"A", "B"}:
        return cfg.pareto_a if pareto else cfg.abc_share_a
    return cfg.pareto_b if pareto else cfg.abc_share_b


def sticky_tiers(
    tier: pd.Series, tier_prev: pd.Series, position: pd.Series, cfg: PortfolioConfig
) -> pd.Series:
    """This week's tiers, keeping last week's where the account moved to the next tier but
    stays within ``tier_hysteresis`` of the cut between them: an account on the line
    otherwise flips A, B, A, B week after week, and its recommended action with it (read:
    23 accounts changed tier 3 or more times in 14 weeks). A jump over a whole tier (A to C)
    is never held back."""
    now = tier.astype(object).to_numpy()
    was = tier_prev.astype(object).to_numpy()
    pos = position.to_numpy(float)
    out = now.copy()
    band = cfg.tier_hysteresis
    if band <= 0:
        return pd.Series(out, index=tier.index, dtype=object)
    for pair in (("A", "B"), ("B", "C")):
        cut = tier_cut(*pair, cfg)
        moved = ((now == pair[0]) & (was == pair[1])) | ((now == pair[1]) & (was == pair[0]))
        keep = moved & (np.abs(pos - cut) <= band)
        out[keep] = was[keep]
    return pd.Series(out, index=tier.index, dtype=object)


def industry_groups(industry: pd.Series) -> pd.Series:
    """Industry labels with missing ones mapped to their own "unknown" group."""
    return industry.astype(object).where(industry.notna(), UNKNOWN_INDUSTRY).astype(str)


def concentration(revenue: pd.Series, industry: pd.Series, cfg: PortfolioConfig) -> pd.Series:
    """The industry concentration coefficient of each account's industry (see module doc)."""
    share = revenue_shares(revenue)
    group = industry_groups(industry.reindex(revenue.index))
    ind_total = share.groupby(group, sort=False).transform("sum")
    if cfg.concentration == "industry_share":
        return ind_total.rename("concentration")
    inside = (share / ind_total.where(ind_total > 0)).fillna(0.0)
    hhi = (inside**2).groupby(group, sort=False).transform("sum")
    return hhi.rename("concentration")


def dependency_index(revenue: pd.Series, industry: pd.Series, cfg: PortfolioConfig) -> pd.Series:
    """Revenue share x industry concentration coefficient, per account (index of ``revenue``).

    ``industry`` is indexed by account_id (missing accounts or values: "unknown" group).
    """
    idx = revenue_shares(revenue) * concentration(revenue, industry, cfg)
    return idx.rename("dependency_index")


def dependency_alert(index: pd.Series, cfg: PortfolioConfig) -> pd.Series:
    """True where the business depends too much on the account (index above the alert)."""
    return (index > cfg.dependency_alert).rename("dependency_alert")
