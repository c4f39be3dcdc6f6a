"""Support features: ticket and complaint counts and rates, severity, open issues, speed."""

from __future__ import annotations

import numpy as np

from ka_ml.features import per_account
from ka_ml.features.catalog import MONTH_DAYS, TREND_DAYS, YEAR_DAYS
from ka_ml.features.encode import Arrays


def ticket_features(
    tk: Arrays, n: int, t: int, orders_365d: np.ndarray, tenure_days: np.ndarray
) -> dict[str, np.ndarray]:
    """Ticket features at as-of day ``t`` (``tk`` holds tickets opened before ``t``).

    A ticket is open at the as-of when it was opened before it and not resolved before it
    (resolved on/after the as-of, or never): what a manager saw that day.
    """
    code, opened = tk["code"], tk["day"]
    age = t - opened
    recent, year = age <= TREND_DAYS, age <= YEAR_DAYS
    tickets_year = per_account.count(code[year], n)
    out = {"tickets_90d": per_account.count(code[recent], n), "tickets_365d": tickets_year}
    if "complaint" in tk:
        comp = tk["complaint"]
        complaints_year = per_account.count(code[year & comp], n)
        out["complaints_90d"] = per_account.count(code[recent & comp], n)
        out["complaints_365d"] = complaints_year
        out["complaints_per_order_365d"] = per_account.ratio(complaints_year, orders_365d)
        # months observed in the last year: the tenure when shorter, at least one month
        days = np.where(np.isnan(tenure_days), YEAR_DAYS, tenure_days)
        months = np.clip(days, MONTH_DAYS, YEAR_DAYS) / MONTH_DAYS
        out["complaints_per_month_365d"] = complaints_year / months
    if "severe" in tk:
        out["severe_ticket_share_365d"] = per_account.ratio(
            per_account.count(code[year & tk["severe"]], n), tickets_year
        )
    if "resolved" in tk:
        resolved = tk["resolved"]
        is_open = resolved >= t
        out["open_tickets"] = per_account.count(code[is_open], n)
        if "severe" in tk and "complaint" in tk:
            crit = is_open & tk["complaint"] & tk["critical"]
            out["open_critical_complaints"] = per_account.count(code[crit], n)
        done = (resolved < t) & (resolved >= t - YEAR_DAYS)
        took = (resolved[done] - opened[done]).astype(np.float64)
        out["resolve_days_mean_365d"] = per_account.ratio(
            per_account.count(code[done], n, took), per_account.count(code[done], n)
        )
    return out
