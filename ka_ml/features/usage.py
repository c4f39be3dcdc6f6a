"""Usage features: level, trend, recency and regularity of product activity."""

from __future__ import annotations

import numpy as np

from ka_ml.features import per_account
from ka_ml.features.catalog import ACTIVE_WEEKS, TREND_DAYS, YEAR_DAYS
from ka_ml.features.encode import Arrays


def usage_features(u: Arrays, n: int, t: int) -> dict[str, np.ndarray]:
    """Usage features at as-of day ``t`` (``u`` holds rows before ``t``, sorted by code, day)."""
    code, day, cnt = u["code"], u["day"], u["count"]
    age = t - day
    recent = age <= TREND_DAYS
    prior = (age > TREND_DAYS) & (age <= 2 * TREND_DAYS)
    level = per_account.count(code[recent], n, cnt[recent])
    # the same 90 days a year before, for accounts whose usage reaches back that far
    year_before = (age > YEAR_DAYS) & (age <= YEAR_DAYS + TREND_DAYS)
    covered = per_account.count(code[age >= YEAR_DAYS + TREND_DAYS], n) > 0
    active = cnt > 0
    acode, aday = code[active], day[active]
    nact, ends = per_account.last_index(acode, n)
    weeks = active & (age <= 7 * ACTIVE_WEEKS)
    week = (age[weeks] - 1) // 7  # 0 = the 7 days before the as-of
    return {
        "usage_weekly_90d": level / (TREND_DAYS / 7),
        "usage_trend_90d": per_account.rel_change(
            level, per_account.count(code[prior], n, cnt[prior])
        ),
        "usage_recency_days": t - per_account.pick(aday, ends, nact > 0),
        "usage_active_weeks_26w": per_account.distinct_per_account(code[weeks], week, n)
        / ACTIVE_WEEKS,
        "usage_yoy_90d": np.where(
            covered,
            per_account.rel_change(
                level, per_account.count(code[year_before], n, cnt[year_before])
            ),
            np.nan,
        ),
    }
