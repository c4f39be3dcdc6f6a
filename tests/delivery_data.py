"""Small scores frames for the delivery tests, typed like the scorer's output (no models).

Owners: ``alice.meyer`` (A1-A4), ``bruno.rossi`` (B1-B3) and two accounts without an
owner (U1 missing, U2 blank). A1 turned red this week, A2 is still red, A3 left red,
B1's risk rose 20 points, B2 turned red from nothing (new), the rest are quiet.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

AS_OF = pd.Timestamp("2026-06-01")
OWNER_OF = {
    "A1": "alice.meyer",
    "A2": "alice.meyer",
    "A3": "alice.meyer",
    "A4": "alice.meyer",
    "B1": "bruno.rossi",
    "B2": "bruno.rossi",
    "B3": "bruno.rossi",
    "U1": None,
    "U2": "  ",
}
#              health,  prev,     p,    p_prev
_STATE = {
    "A1": ("red", "yellow", 0.62, 0.30),
    "A2": ("red", "red", 0.71, 0.69),
    "A3": ("green", "red", 0.12, 0.55),
    "A4": ("green", "green", 0.05, 0.06),
    "B1": ("yellow", "green", 0.40, 0.20),
    "B2": ("red", None, 0.80, np.nan),
    "B3": ("green", "green", 0.08, 0.07),
    "U1": ("yellow", "yellow", 0.30, 0.29),
    "U2": ("green", "green", 0.10, 0.11),
}


def scores_frame(as_of: pd.Timestamp = AS_OF, ids: list[str] | None = None) -> pd.DataFrame:
    """The scores of ``ids`` (default all nine) as of ``as_of``."""
    ids = list(OWNER_OF) if ids is None else ids
    n = len(ids)
    health, prev, p, p_prev = (list(col) for col in zip(*(_STATE[i] for i in ids), strict=True))
    p_arr = np.asarray(p, dtype=float)
    revenue = np.linspace(100_000, 20_000, n)
    day = pd.Series([as_of] * n, dtype="datetime64[us]")
    return pd.DataFrame(
        {
            "account_id": pd.Series(ids, dtype="str"),
            "as_of": day,
            "churn_probability": p_arr,
            "p_purchase_30d": np.clip(0.9 - p_arr, 0, 1) / 2,
            "p_purchase_60d": np.clip(0.9 - p_arr, 0, 1) / 1.5,
            "p_purchase_90d": np.clip(0.9 - p_arr, 0, 1),
            "expected_next_purchase_date": day + pd.Timedelta(days=20),
            "next_purchase_p10_date": day + pd.Timedelta(days=5),
            "next_purchase_p90_date": pd.Series(
                [as_of + pd.Timedelta(days=60)] * (n - 1) + [pd.NaT], dtype="datetime64[us]"
            ),
            "reason_1": pd.Series([f"No order for {40 + k} days (raises risk)" for k in range(n)]),
            "reason_2": pd.Series(["Logins fell 50% (raises risk)"] * n, dtype="str"),
            "reason_3": pd.Series(["Renewal intent 8/10 (lowers risk)"] * n, dtype="str"),
            "reason_1_feature": "recency_days",
            "reason_2_feature": "usage_trend",
            "reason_3_feature": "survey_last",
            "reason_1_shap": 0.8,
            "reason_2_shap": 0.3,
            "reason_3_shap": -0.2,
            "abc_tier": pd.Categorical(
                ["A", "B", "C"] * (n // 3) + ["C"] * (n % 3), categories=["A", "B", "C"]
            ),
            "revenue_share": revenue / revenue.sum(),
            "dependency_index": revenue / revenue.sum() * 0.5,
            "churn_model_version": "3",
            "timing_model_version": "2",
            "name": pd.Series([f"{i} Holdings <b>&</b>" for i in ids], dtype="str"),
            "owner": pd.Series([OWNER_OF[i] for i in ids], dtype="str"),
            "industry": "Machinery",
            "region": "North",
            "revenue_365d": revenue,
            "revenue_at_risk": revenue * p_arr,
            "days_since_last_order": 40.0 + np.arange(n),
            "last_order_date": day - pd.Timedelta(days=40),
            "health_prev": pd.Series(prev, dtype="str"),
            "churn_probability_prev": np.asarray(p_arr * 0 + np.asarray(p_prev, dtype=float)),
            "health": pd.Series(health, dtype="str"),
            "light_reason": "churn probability above the red threshold",
            "recommended_action": "Call the buyer this week.",
            "changes": pd.Series(
                ["Risk up: fewer logins." if h == "red" else "" for h in health], dtype="str"
            ),
        }
    )


def owned_ids(owner: str | None) -> set[str]:
    """The account ids of one owner (None = without an owner, blank included)."""
    if owner is None:
        return {i for i, o in OWNER_OF.items() if o is None or not o.strip()}
    return {i for i, o in OWNER_OF.items() if o == owner}
