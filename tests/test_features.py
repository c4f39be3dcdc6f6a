"""Point-in-time features: hand-computed values for every feature, eligibility, dtypes, scale."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fixtures import config, make_history

from ka_ml.config import PortfolioConfig
from ka_ml.data.history import History
from ka_ml.features import (
    account_features,
    add_portfolio_features,
    build_features,
    feature_categories,
    feature_frames,
    features_for,
)
from ka_ml.features.portfolio import (
    abc_tiers,
    dependency_alert,
    dependency_index,
    portfolio_revenue,
    revenue_shares,
)

AS_OF = pd.Timestamp("2024-07-01")
NAN = math.nan
MONTH = 365 / 12  # the catalog's month, in days


def d(age: int) -> pd.Timestamp:
    """The date ``age`` days before AS_OF (negative: after it)."""
    return AS_OF - pd.Timedelta(days=age)


def hand_history() -> History:
    """Four accounts with orders, plus one account-table-only account (A5).

    A1: everything. A2: one order. A3: only a running contract. A4: only an order 400 days
    ago (and one after the as-of): not eligible. Ages are days before AS_OF.
    """
    o = [
        # account, age, amount, product, order_id
        ("A1", 500, 100.0, "p1", "o1"),
        ("A1", 400, 300.0, "p2", "o2"),
        ("A1", 200, 200.0, "p1", "o3"),
        ("A1", 100, 100.0, "p3", "o4"),
        ("A1", 100, 50.0, "p1", "o4"),  # second line of order o4
        ("A1", 60, 250.0, "p1", "o5"),
        ("A1", 20, -50.0, "p1", "o6"),  # credit note
        ("A1", 20, 150.0, "p2", "o7"),  # another order the same day
        ("A1", -3, 999.0, "p4", "o8"),  # after the as-of: invisible
        ("A2", 45, 80.0, "p9", "o20"),
        ("A4", 400, 1000.0, "p1", "o40"),
        ("A4", -10, 500.0, "p1", "o41"),  # after the as-of: invisible
    ]
    orders = [
        {"account_id": a, "order_date": d(age), "amount": amt, "product": p, "order_id": oid}
        for a, age, amt, p, oid in o
    ]
    accounts: list[dict[str, Any]] = [
        {"account_id": "A1", "industry": "Retail", "region": "North", "created_at": d(1000)},
        {"account_id": "A2", "industry": "Manufacturing", "region": "South", "created_at": d(-10)},
        {"account_id": "A3", "industry": None, "region": "North", "created_at": None},
        {"account_id": "A4", "industry": "Retail", "region": "South", "created_at": d(2000)},
        {"account_id": "A5", "industry": "Energy", "region": "West", "created_at": d(10)},
    ]
    usage = [
        {"account_id": "A1", "date": d(age), "count": c}
        for age, c in [(5, 10.0), (12, 0.0), (40, 20.0), (100, 30.0), (170, 5.0), (200, 7.0)]
    ]
    tk = [
        # age opened, severity, complaint, age resolved (None: still open)
        (10, "critical", True, None),
        (50, "high", False, 45),
        (200, "low", True, 190),
        (400, "medium", True, 380),
        (30, "medium", False, -5),  # resolved after the as-of: open at the as-of
        (-2, "critical", True, None),  # opened after the as-of: invisible
    ]
    tickets = [
        {
            "account_id": "A1",
            "opened_at": d(a),
            "severity": s,
            "is_complaint": c,
            "resolved_at": None if r is None else d(r),
        }
        for a, s, c, r in tk
    ]
    surveys = [
        {"account_id": "A1", "date": d(age), "score": s}
        for age, s in [(300, 8.0), (100, 9.0), (100, 7.0), (10, 4.0), (-1, 0.0)]
    ]
    contracts = [
        {"account_id": "A1", "start_date": d(800), "end_date": d(435), "value": 1000.0},
        {"account_id": "A1", "start_date": d(434), "end_date": d(-30), "value": 1200.0},
        {"account_id": "A3", "start_date": d(100), "end_date": d(-200), "value": 500.0},
        {"account_id": "A4", "start_date": d(-5), "end_date": d(-400), "value": 9.0},  # future
    ]
    return make_history(orders, accounts, usage, tickets, surveys, contracts)


# Hand-computed expectations (ages = days before AS_OF).
# A1 order days (ages): 500, 400, 200, 100, 60, 20 -> gaps 100, 200, 100, 40, 40.
#   sorted 40, 40, 100, 100, 200: median 100; mean 480/5 = 96;
#   population variance (16 + 10816 + 16 + 3136 + 3136) / 5 = 3424, std = sqrt(3424).
# Orders (distinct order_id): o1@500 o2@400 o3@200 o4@100 (2 lines) o5@60 o7@20; o6@20 is a
#   credit note: it subtracts from spend but is no order.
# Monthly buckets (age-1)*12//365: age 20 -> 0 (x=11), 60 -> 1 (x=10), 100 -> 3 (x=8),
#   200 -> 6 (x=5); spend 100, 250, 150, 200. slope = (5.5*100 + 4.5*250 + 2.5*150
#   - 0.5*200) / 143 = 1950/143; mean month 700/12 -> 1950*12 / (143*700).
# Portfolio revenue (365 d): A1 700, A2 80, A3 0, A4 0 -> total 780.
EXPECTED: dict[str, dict[str, float | str | None]] = {
    "A1": {
        "recency_days": 20,
        "orders_30d": 1,  # o7 (o6 is a credit note)
        "orders_90d": 2,  # + o5
        "orders_180d": 3,  # + o4
        "orders_365d": 4,  # + o3
        "spend_30d": 100.0,  # -50 + 150
        "spend_90d": 350.0,  # + 250
        "spend_180d": 500.0,  # + 100 + 50
        "spend_365d": 700.0,  # + 200
        "gap_mean_days": 96.0,
        "gap_median_days": 100.0,
        # by time: 40 + 40 + 100 = 180 < 240 (half of 480), + 100 = 280: the second 100
        "gap_typical_days": 100.0,
        "gap_std_days": math.sqrt(3424),
        "gap_cv": math.sqrt(3424) / 96,
        "gap_last_days": 40.0,  # 60 - 20
        "overdue_ratio": 0.2,  # 20 / 100
        # gaps 100, 200, 100, 40, 40: all 5 longer than the 20-day silence, 1 (200) longer
        # than 20 + 90 days: (1 + 0.5) / (5 + 1)
        "rhythm_quiet_chance": 0.25,
        "gaps_longer_than_silence": 5.0,
        # a customer a year before (first order 500 days ago), no order in the days 365..276
        # before, back after (200 days ago); two years before it was no customer yet
        "season_quiet_chance": 1.5 / 2,
        "season_quiet_years": 1.0,
        "next_order_days_years_before": 365 - 200,  # its first order day after age 365
        # the gap around the date a year before: 400 -> 200 (200 days, at least the silence
        # of 20 less a week), but it ended 165 days after the date, past the 90: no pause
        "season_pause_chance": 0.5 / 2,
        "season_pause_years": 0.0,
        "orders_trend_90d": 1.0,  # (2 - 1) / 1
        "spend_trend_90d": (350 - 150) / 150,
        "spend_slope_12m": 1950 * 12 / (143 * 700),
        "products_365d": 3,  # p1, p2, p3
        "products_change_365d": 1,  # prior year p1, p2
        "aov_365d": 175.0,  # 700 / 4
        "aov_change_365d": -0.125,  # (175 - 200) / 200; prior year 400 / 2
        "basket_ratio_90d": 1.0,  # 350 over 2 order days, against days 91..365's 350 over 2
        "basket_days_90d": 2.0,
        "tenure_days": 1000,  # created 1000 days ago, before the first order (500)
        "orders_lifetime": 6,  # o1..o7 but the credit o6 (o4's two lines once, o8 after the as-of)
        "spend_lifetime": 1100.0,  # 700 + 100 (age 500) + 300 (age 400)
        "orders_per_month": 6 / (500 / MONTH),  # since the first order day (500), not created_at
        "spend_per_month": 1100 / (500 / MONTH),
        "repeat_orders": 5,  # 6 order days
        "active_span_days": 480,  # 500 - 20
        "recency_tenure_ratio": 20 / 500,
        "first_order_amount": 100.0,
        "credit_share_365d": 50 / 750,  # gross 200+100+50+250+150
        "usage_weekly_90d": 30 / (90 / 7),  # 10 + 0 + 20
        "usage_trend_90d": (30 - 35) / 35,  # prior 90 d: 30 + 5
        "usage_recency_days": 5,
        "usage_active_weeks_26w": 4 / 26,  # weeks 0, 5, 14, 24 (age 12 had count 0)
        "usage_yoy_90d": NAN,  # usage reaches back 200 days: no year to compare with
        "tickets_90d": 3,  # opened 10, 50, 30
        "tickets_365d": 4,  # + 200
        "complaints_90d": 1,
        "complaints_365d": 2,
        "complaints_per_order_365d": 0.5,  # 2 / 4
        "complaints_per_month_365d": 2 / 12,
        "severe_ticket_share_365d": 0.5,  # critical + high of 4
        "open_tickets": 2,  # the unresolved one and the one resolved after the as-of
        "open_critical_complaints": 1,
        "resolve_days_mean_365d": 7.5,  # (5 + 10) / 2; resolved at age 380: outside
        "survey_score_last": 4.0,
        "survey_score_change": -4.0,  # previous day averages 9 and 7
        "survey_recency_days": 10,
        "contract_days_to_end": 30,
        "contract_value": 1200.0,
        "contract_renewals": 1,
        "has_active_contract": 1.0,
        "industry": "Retail",
        "region": "North",
        "revenue_share": 700 / 780,
        "abc_tier": "A",  # cumulative share before it: 0 < 0.8
        "dependency_index": (700 / 780) ** 2,  # share x Retail share (A4 has no revenue)
    },
    "A2": {
        "recency_days": 45,
        "orders_30d": 0,
        "orders_90d": 1,
        "orders_180d": 1,
        "orders_365d": 1,
        "spend_30d": 0.0,
        "spend_90d": 80.0,
        "spend_180d": 80.0,
        "spend_365d": 80.0,
        "gap_mean_days": NAN,
        "gap_median_days": NAN,
        "gap_typical_days": NAN,
        "gap_std_days": NAN,
        "gap_cv": NAN,
        "gap_last_days": NAN,
        "overdue_ratio": NAN,
        "rhythm_quiet_chance": NAN,
        "gaps_longer_than_silence": NAN,
        "season_quiet_chance": NAN,  # no customer a year before
        "season_quiet_years": NAN,
        "next_order_days_years_before": NAN,
        "season_pause_chance": NAN,
        "season_pause_years": NAN,
        "orders_trend_90d": 1.0,  # (1 - 0) / max(0, 1)
        "spend_trend_90d": 5.0,  # 80 / 1 clipped to 5
        "spend_slope_12m": 4.5 * 80 / 143 / (80 / 12),  # age 45 -> bucket 1 (x=10)
        "products_365d": 1,
        "products_change_365d": 1,
        "aov_365d": 80.0,
        "aov_change_365d": NAN,  # no order the year before
        "basket_ratio_90d": NAN,  # no order in the days 91..365
        "basket_days_90d": 0.0,
        "tenure_days": 45,  # created_at after the as-of is ignored
        "orders_lifetime": 1,
        "spend_lifetime": 80.0,
        "orders_per_month": 1 / (45 / MONTH),  # 45 days: more than the one-month floor
        "spend_per_month": 80 / (45 / MONTH),
        "repeat_orders": 0,
        "active_span_days": 0,
        "recency_tenure_ratio": 1.0,  # no order after the first order day
        "first_order_amount": 80.0,
        "credit_share_365d": 0.0,
        "usage_weekly_90d": 0.0,
        "usage_trend_90d": 0.0,
        "usage_recency_days": NAN,
        "usage_active_weeks_26w": 0.0,
        "usage_yoy_90d": NAN,
        "tickets_90d": 0,
        "tickets_365d": 0,
        "complaints_90d": 0,
        "complaints_365d": 0,
        "complaints_per_order_365d": 0.0,
        "complaints_per_month_365d": 0.0,
        "severe_ticket_share_365d": NAN,
        "open_tickets": 0,
        "open_critical_complaints": 0,
        "resolve_days_mean_365d": NAN,
        "survey_score_last": NAN,
        "survey_score_change": NAN,
        "survey_recency_days": NAN,
        "contract_days_to_end": NAN,
        "contract_value": 0.0,
        "contract_renewals": 0,
        "has_active_contract": 0.0,
        "industry": "Manufacturing",
        "region": "South",
        "revenue_share": 80 / 780,
        "abc_tier": "B",  # cumulative before it 700/780 = 0.897: >= 0.8, < 0.95
        "dependency_index": (80 / 780) ** 2,
    },
    "A3": {
        "recency_days": NAN,
        "orders_30d": 0,
        "orders_90d": 0,
        "orders_180d": 0,
        "orders_365d": 0,
        "spend_30d": 0.0,
        "spend_90d": 0.0,
        "spend_180d": 0.0,
        "spend_365d": 0.0,
        "gap_mean_days": NAN,
        "gap_median_days": NAN,
        "gap_typical_days": NAN,
        "gap_std_days": NAN,
        "gap_cv": NAN,
        "gap_last_days": NAN,
        "overdue_ratio": NAN,
        "rhythm_quiet_chance": NAN,
        "gaps_longer_than_silence": NAN,
        "season_quiet_chance": NAN,  # no customer a year before
        "season_quiet_years": NAN,
        "next_order_days_years_before": NAN,
        "season_pause_chance": NAN,
        "season_pause_years": NAN,
        "orders_trend_90d": 0.0,
        "spend_trend_90d": 0.0,
        "spend_slope_12m": NAN,  # no spend
        "products_365d": 0,
        "products_change_365d": 0,
        "aov_365d": NAN,
        "aov_change_365d": NAN,
        "tenure_days": NAN,  # no order, no created_at
        "orders_lifetime": 0,
        "spend_lifetime": 0.0,
        "orders_per_month": NAN,  # no first order: no rate
        "spend_per_month": NAN,
        "repeat_orders": NAN,
        "active_span_days": NAN,
        "recency_tenure_ratio": NAN,
        "first_order_amount": NAN,
        "credit_share_365d": NAN,
        "usage_weekly_90d": 0.0,
        "usage_trend_90d": 0.0,
        "usage_recency_days": NAN,
        "usage_active_weeks_26w": 0.0,
        "usage_yoy_90d": NAN,
        "tickets_90d": 0,
        "tickets_365d": 0,
        "complaints_90d": 0,
        "complaints_365d": 0,
        "complaints_per_order_365d": NAN,  # no order
        "complaints_per_month_365d": 0.0,
        "severe_ticket_share_365d": NAN,
        "open_tickets": 0,
        "open_critical_complaints": 0,
        "resolve_days_mean_365d": NAN,
        "survey_score_last": NAN,
        "survey_score_change": NAN,
        "survey_recency_days": NAN,
        "contract_days_to_end": 200,
        "contract_value": 500.0,
        "contract_renewals": 0,
        "has_active_contract": 1.0,
        "industry": None,
        "region": "North",
        "revenue_share": 0.0,
        "abc_tier": "C",
        "dependency_index": 0.0,
    },
}


@pytest.fixture(scope="module")
def hand_features() -> pd.DataFrame:
    return build_features(hand_history(), AS_OF, config())


def test_every_feature_matches_its_hand_computed_value(hand_features: pd.DataFrame) -> None:
    df = hand_features.set_index("account_id")
    assert set(EXPECTED["A1"]) == set(df.columns) - {"as_of"}  # every feature is covered
    for account, expected in EXPECTED.items():
        for name, value in expected.items():
            got: Any = df.loc[account, name]
            if isinstance(value, str) or value is None:
                assert (None if pd.isna(got) else got) == value, (account, name)
            else:
                assert got == pytest.approx(value, rel=1e-12, nan_ok=True), (account, name, got)


def test_only_eligible_accounts_get_a_row_sorted_by_id(hand_features: pd.DataFrame) -> None:
    # A4 ordered 400 days ago only (its future order and future contract do not count),
    # A5 never ordered: neither is eligible; A3 is, through its running contract.
    assert hand_features["account_id"].tolist() == ["A1", "A2", "A3"]
    assert (hand_features["as_of"] == AS_OF).all()


def test_eligibility_window_follows_config() -> None:
    h = hand_history()
    wide = build_features(h, AS_OF, config(features={"eligibility_days": 400}))
    narrow = build_features(h, AS_OF, config(features={"eligibility_days": 30}))
    assert wide["account_id"].tolist() == ["A1", "A2", "A3", "A4"]
    assert narrow["account_id"].tolist() == ["A1", "A3"]  # A2's order is 45 days old


def test_an_order_on_the_as_of_day_is_not_seen() -> None:
    h = make_history([{"account_id": "X", "order_date": AS_OF, "amount": 5.0}])
    assert build_features(h, AS_OF, config()).empty
    after = build_features(h, AS_OF + pd.Timedelta(days=1), config())
    assert after["recency_days"].tolist() == [1.0]


def test_dtypes_follow_the_contract(hand_features: pd.DataFrame) -> None:
    df = hand_features
    assert df["account_id"].dtype == "str"
    assert df["as_of"].dtype == "datetime64[us]"
    cats = {"industry", "region", "abc_tier"}
    for col in df.columns[2:]:
        expected = "category" if col in cats else "float64"
        assert str(df[col].dtype) == expected, col


def test_categories_are_fixed_from_the_whole_accounts_table(hand_features: pd.DataFrame) -> None:
    # A4 and A5 have no row, yet their industries and regions are categories
    df = hand_features
    assert list(df["industry"].cat.categories) == ["Energy", "Manufacturing", "Retail"]
    assert list(df["region"].cat.categories) == ["North", "South", "West"]
    assert list(df["abc_tier"].cat.categories) == ["A", "B", "C"]
    one = build_features(hand_history(), AS_OF, config(features={"eligibility_days": 30}))
    assert list(one["industry"].cat.categories) == ["Energy", "Manufacturing", "Retail"]
    assert feature_categories(hand_history()) == {
        "industry": ["Energy", "Manufacturing", "Retail"],
        "region": ["North", "South", "West"],
    }


def test_chunked_build_equals_single_chunk() -> None:
    h = hand_history()
    cfg = config()
    tiny = cfg.model_copy(
        update={"features": cfg.features.model_copy(update={"chunk_accounts": 1})}
    )
    pd.testing.assert_frame_equal(build_features(h, AS_OF, tiny), build_features(h, AS_OF, cfg))


def test_account_features_of_one_account_do_not_depend_on_the_others() -> None:
    h = hand_history()
    cats = feature_categories(h)
    only_a2 = make_history(
        h.orders[h.orders["account_id"] == "A2"], h.accounts, usage=[], tickets=[], surveys=[]
    )
    only_a2 = History(
        orders=only_a2.orders,
        accounts=h.accounts,
        usage=h.usage.iloc[0:0],  # type: ignore[union-attr]
        tickets=h.tickets.iloc[0:0],  # type: ignore[union-attr]
        surveys=h.surveys.iloc[0:0],  # type: ignore[union-attr]
        contracts=h.contracts.iloc[0:0],  # type: ignore[union-attr]
    )
    alone = account_features(only_a2, AS_OF, config(), cats)
    together = account_features(h, AS_OF, config(), cats)
    a2 = together[together["account_id"] == "A2"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, a2)
    assert not set(alone.columns) & {"revenue_share", "abc_tier", "dependency_index"}


def test_portfolio_step_without_revenue_recomputes_it_from_history() -> None:
    h = hand_history()
    per_account = account_features(h, AS_OF, config(), feature_categories(h))
    df = add_portfolio_features(per_account, h, AS_OF, config())
    assert df["revenue_share"].tolist() == pytest.approx([700 / 780, 80 / 780, 0.0])
    assert df["abc_tier"].astype(str).tolist() == ["A", "B", "C"]


def test_feature_frames_at_several_dates_equal_single_builds() -> None:
    h = hand_history()
    dates = [AS_OF - pd.Timedelta(days=k) for k in (0, 45, 150)]
    frames = feature_frames(h, dates, config())
    for date in dates:
        pd.testing.assert_frame_equal(frames[date], build_features(h, date, config()))


@pytest.mark.parametrize(
    "drop",
    ["usage", "tickets", "surveys", "contracts", "tickets.resolved_at", "tickets.severity",
     "tickets.is_complaint", "orders.product", "orders.order_id", "contracts.value",
     "accounts.industry", "accounts.region", "accounts.created_at"],
)  # fmt: skip
def test_columns_are_exactly_the_catalog_features_the_data_allows(drop: str) -> None:
    h = hand_history()
    table, _, column = drop.partition(".")
    if column:
        kw: dict[str, Any] = {**h.tables(), table: h.tables()[table].drop(columns=[column])}
    else:
        kw = {k: v for k, v in h.tables().items() if k != table}
    h = History(**kw)
    df = build_features(h, AS_OF, config())
    names = [s.name for s in features_for(h, config().features.windows_days)]
    assert list(df.columns) == ["account_id", "as_of", *names]
    # order_id and created_at refine values (orders counted once, tenure) but add no feature
    value_only = drop in ("orders.order_id", "accounts.created_at")
    assert (len(names) == len(features_for(hand_history()))) == value_only


def test_orders_only_history_builds_order_and_portfolio_features() -> None:
    h = make_history([{"account_id": "7", "order_date": d(10), "amount": 1.0}])
    df = build_features(h, AS_OF, config())
    assert df.shape == (1, 2 + len(features_for(h)))
    assert {s.family for s in features_for(h)} == {"orders", "portfolio"}


def test_window_features_follow_the_configured_windows() -> None:
    df = build_features(hand_history(), AS_OF, config(features={"windows_days": [7, 60]}))
    windowed = [c for c in df.columns if re.fullmatch(r"(orders|spend)_\d+d", c)]
    assert windowed == ["orders_7d", "orders_60d", "spend_7d", "spend_60d"]
    a1 = df.set_index("account_id").loc["A1"]
    # ages 20 (o7; the credit o6 is no order) and 60 (o5)
    assert (a1["orders_7d"], a1["orders_60d"], a1["spend_60d"]) == (0.0, 2.0, 350.0)


# -- whole-history features ----------------------------------------------------------------
def lifetime_history() -> History:
    """Orders for the whole-history features; ages are days before AS_OF.

    L1: nearly three years, beyond the two the windows reach; two orders on its first day
    (one of them two lines) and a credit note. L2: a single order. L3: a credit on its first
    order day. L4: two orders inside its first month. Rows on/after the as-of never count.
    """
    o = [
        # account, age, amount, order_id
        ("L1", 1000, 120.0, "a"),
        ("L1", 1000, 80.0, "a"),  # second line of order a
        ("L1", 1000, 40.0, "b"),  # another order the same day
        ("L1", 800, 300.0, "c"),
        ("L1", 300, 500.0, "d"),
        ("L1", 30, -100.0, "e"),  # credit note: subtracts from spend, no order
        ("L1", 30, 200.0, "f"),
        ("L1", 0, 999.0, "g"),  # on the as-of day: invisible
        ("L1", -5, 999.0, "h"),  # after the as-of: invisible
        ("L2", 10, 500.0, "x"),
        ("L2", 0, 7.0, "y"),  # on the as-of day: invisible
        ("L3", 200, -60.0, "r"),  # credit on the first order day
        ("L3", 200, 260.0, "s"),
        ("L3", 50, 100.0, "t"),
        ("L4", 20, 100.0, "n1"),
        ("L4", 5, 50.0, "n2"),
    ]
    rows = [
        {"account_id": a, "order_date": d(age), "amount": amt, "order_id": oid}
        for a, age, amt, oid in o
    ]
    return make_history(rows)


LIFETIME: dict[str, dict[str, float]] = {
    "L1": {
        "orders_365d": 2,  # d, f: the window stops where the lifetime does not
        "orders_lifetime": 5,  # a (two lines once), b, c, d, f (e is a credit note)
        "spend_lifetime": 1140.0,  # 120 + 80 + 40 + 300 + 500 - 100 + 200
        "orders_per_month": 5 / (1000 / MONTH),
        "spend_per_month": 1140 / (1000 / MONTH),
        "repeat_orders": 3,  # order days 1000, 800, 300, 30
        "active_span_days": 970,  # 1000 - 30
        "recency_tenure_ratio": 30 / 1000,
        "first_order_amount": 240.0,  # every row of the first day: 120 + 80 + 40
    },
    "L2": {
        "orders_lifetime": 1,
        "spend_lifetime": 500.0,
        "orders_per_month": 1.0,  # 10 days since the first order: counted as one month
        "spend_per_month": 500.0,
        "repeat_orders": 0,
        "active_span_days": 0,
        "recency_tenure_ratio": 1.0,
        "first_order_amount": 500.0,
    },
    "L3": {
        "orders_lifetime": 2,  # s, t (r is a credit)
        "spend_lifetime": 300.0,
        "orders_per_month": 2 / (200 / MONTH),
        "spend_per_month": 300 / (200 / MONTH),
        "repeat_orders": 1,
        "active_span_days": 150,
        "recency_tenure_ratio": 50 / 200,
        "first_order_amount": 200.0,  # 260 - 60
    },
    "L4": {
        "orders_lifetime": 2,
        "spend_lifetime": 150.0,
        "orders_per_month": 2.0,  # 20 days: one month
        "spend_per_month": 150.0,
        "repeat_orders": 1,
        "active_span_days": 15,
        "recency_tenure_ratio": 5 / 20,
        "first_order_amount": 100.0,
    },
}


@pytest.mark.parametrize("windows", [[30, 90, 180, 365], [7]])
def test_whole_history_features_count_every_order_before_the_as_of(windows: list[int]) -> None:
    df = build_features(lifetime_history(), AS_OF, config(features={"windows_days": windows}))
    df = df.set_index("account_id")
    assert df.index.tolist() == list(LIFETIME)
    for account, expected in LIFETIME.items():
        for name, value in expected.items():
            if name == "orders_365d" and 365 not in windows:
                continue
            got = df.loc[account, name]
            assert got == pytest.approx(value, rel=1e-12), (account, name, got)


# -- portfolio rules -----------------------------------------------------------------------
def test_share_rule_tiers_follow_the_article_thresholds() -> None:
    rev = pd.Series({"a": 35.0, "b": 30.0, "c": 10.0, "d": 9.0, "e": 16.0})
    cfg = PortfolioConfig(abc_method="share")
    # shares 0.35, 0.30, 0.10, 0.09, 0.16: A > 30%, B >= 10%
    assert abc_tiers(rev, cfg).to_dict() == {"a": "A", "b": "B", "c": "B", "d": "C", "e": "B"}


def test_pareto_rule_gives_a_to_the_account_crossing_the_line() -> None:
    rev = pd.Series({"a": 50.0, "b": 25.0, "c": 15.0, "d": 6.0, "e": 4.0, "f": -3.0})
    # cumulative share before each (sorted desc): a 0, b .5, c .75 (< .8: A), d .9 (B), e .96
    tiers = abc_tiers(rev, PortfolioConfig(abc_method="pareto", pareto_a=0.8, pareto_b=0.95))
    assert tiers.to_dict() == {"a": "A", "b": "A", "c": "A", "d": "B", "e": "C", "f": "C"}


def test_no_revenue_at_all_puts_everyone_in_c() -> None:
    rev = pd.Series({"a": 0.0, "b": -1.0})
    assert revenue_shares(rev).tolist() == [0.0, 0.0]
    assert abc_tiers(rev, PortfolioConfig()).tolist() == ["C", "C"]


def test_dependency_index_with_industry_share_and_hhi() -> None:
    rev = pd.Series({"a": 60.0, "b": 20.0, "c": 10.0, "d": 10.0})
    industry = pd.Series({"a": "X", "b": "X", "c": "Y"})  # d: unknown group alone
    by_share = dependency_index(rev, industry, PortfolioConfig(concentration="industry_share"))
    # shares .6 .2 .1 .1; industry X share .8, Y .1, unknown .1
    assert by_share.to_dict() == pytest.approx({"a": 0.48, "b": 0.16, "c": 0.01, "d": 0.01})
    by_hhi = dependency_index(rev, industry, PortfolioConfig(concentration="industry_hhi"))
    # HHI inside X: .75^2 + .25^2 = .625; Y and unknown: one account each -> 1
    assert by_hhi.to_dict() == pytest.approx({"a": 0.375, "b": 0.125, "c": 0.1, "d": 0.1})
    alert = dependency_alert(by_share, PortfolioConfig(dependency_alert=0.4))
    assert alert.to_dict() == {"a": True, "b": False, "c": False, "d": False}


def test_portfolio_revenue_uses_the_configured_window() -> None:
    h = hand_history()
    rev = portfolio_revenue(h, AS_OF, PortfolioConfig(revenue_days=450))
    # A1: 700 + 300 (age 400); A2: 80; A4: 1000 (age 400); future orders excluded
    assert rev.to_dict() == {"A1": 1000.0, "A2": 80.0, "A4": 1000.0}


# -- scale -----------------------------------------------------------------------------------
def test_benchmark_runs_in_subprocesses_and_writes_markdown(tmp_path: Path) -> None:
    from ka_ml.bench.features import run, write_results

    records = run(sizes=(40, 80), snapshots=(2,), orders_per_account=15)
    assert [(r["engine"], r["accounts"], r["snapshots"]) for r in records] == [
        ("pandas", 40, 2), ("duckdb", 40, 1), ("pandas", 80, 2), ("duckdb", 80, 1),
    ]  # fmt: skip
    assert all(r["seconds"] > 0 and r["peak_rss_mb"] > 0 for r in records)
    # two snapshots of (nearly) every account vs one row per account from SQL
    assert records[0]["output_rows"] > records[1]["output_rows"] > 30
    out = tmp_path / "bench.md"
    write_results(records, out)
    write_results(records, out)
    text = out.read_text()
    assert text.count("## Feature build benchmark") == 2 and "| duckdb | 80 |" in text


def test_growth_exponent_is_the_log_log_slope() -> None:
    from ka_ml.bench.features import growth_exponents

    records = [
        {"engine": "pandas", "snapshots": 1, "orders": n, "seconds": 0.001 * n**1.5}
        for n in (100, 1000, 10000)
    ] + [{"engine": "duckdb", "snapshots": 1, "orders": 100, "seconds": 1.0}]
    assert growth_exponents(records) == {"pandas, 1 snapshot": 1.5}  # one size: no fit


def test_synthetic_orders_are_reproducible() -> None:
    from ka_ml.bench.features import synthetic_orders

    a, b = synthetic_orders(20, seed=3), synthetic_orders(20, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert np.isclose(len(a) / 20, 100, rtol=0.2)


def test_a_credit_note_after_the_last_order_is_no_order() -> None:
    """A return booked 11 days ago on an account whose last order is 121 days old: the
    credit subtracts from spend, but recency, order counts and eligibility read purchases."""
    rows = [
        {"account_id": "R", "order_date": d(121), "amount": 500.0, "order_id": "o1"},
        {"account_id": "R", "order_date": d(11), "amount": -250.0, "order_id": "cn1"},
        {"account_id": "Q", "order_date": d(400), "amount": 500.0, "order_id": "o2"},
        {"account_id": "Q", "order_date": d(11), "amount": -250.0, "order_id": "cn2"},
    ]
    df = build_features(make_history(rows), AS_OF, config()).set_index("account_id")
    assert df.index.tolist() == ["R"]  # Q's only row in the last 365 days is a credit
    r = df.loc["R"]
    assert (r["recency_days"], r["orders_30d"], r["orders_365d"], r["spend_30d"]) == (
        121.0, 0.0, 1.0, -250.0,
    )  # fmt: skip
    assert (r["orders_lifetime"], r["repeat_orders"], r["spend_lifetime"]) == (1.0, 0.0, 250.0)


def test_the_rhythm_quiet_chance_reads_the_accounts_own_gaps_against_its_silence() -> None:
    """(j + 0.5) / (k + 1): k = past gaps longer than the silence, j = those also longer than
    the silence plus the 90-day horizon. An annual buyer 60 days after its order, with four
    yearly gaps: 4.5 / 5; the same buyer 300 days after its order (only two of its gaps
    reached 390 days): 2.5 / 5; a monthly buyer silent 60 days (no gap that long): 0.5; one
    order day: no rhythm (NaN). Orders after the as-of are invisible."""
    annual = [60, 425, 790, 1160, 1520]  # gaps 365, 365, 370, 360
    late = [300, 700, 1100, 1465, 1835]  # gaps 400, 400, 365, 370
    rows = [
        *({"account_id": "A", "order_date": d(a), "amount": 10.0} for a in annual),
        *({"account_id": "L", "order_date": d(a), "amount": 10.0} for a in late),
        *({"account_id": "M", "order_date": d(60 + 30 * i), "amount": 10.0} for i in range(12)),
        {"account_id": "O", "order_date": d(20), "amount": 10.0},
        {"account_id": "A", "order_date": d(-5), "amount": 10.0},  # after the as-of
    ]
    df = build_features(make_history(rows), AS_OF, config()).set_index("account_id")
    q = df["rhythm_quiet_chance"]
    assert q["A"] == 4.5 / 5
    assert q["L"] == 2.5 / 5
    assert q["M"] == 0.5
    assert np.isnan(q["O"])
    k = df["gaps_longer_than_silence"]  # the k of each: silences this long it came back from
    assert (k["A"], k["L"], k["M"]) == (4.0, 4.0, 0.0) and np.isnan(k["O"])


def test_the_season_quiet_chance_reads_the_same_days_of_past_years() -> None:
    """A beer garden (May to September, two past seasons) scored in October; the same beer
    garden in late September, still in season; a weekly restaurant; a customer of one
    season only."""
    as_of = pd.Timestamp("2026-10-06")

    def season(start: str, end: str, years: tuple[int, ...], every: int = 3) -> list[pd.Timestamp]:
        return [
            day
            for y in years
            for day in pd.date_range(f"{y}-{start}", f"{y}-{end}", freq=f"{every}D")
        ]

    rows = [
        *(("G", t) for t in season("05-02", "09-28", (2024, 2025, 2026))),
        *(("R", t) for t in pd.date_range("2024-01-03", "2026-10-01", freq="7D")),
        *(("N", t) for t in season("05-02", "09-28", (2025, 2026))),
    ]
    h = make_history([{"account_id": a, "order_date": t, "amount": 10.0} for a, t in rows])
    df = build_features(h, as_of, config()).set_index("account_id")
    q, n = df["season_quiet_chance"], df["season_quiet_years"]
    assert q["G"] == pytest.approx(2.5 / 3) and n["G"] == 2  # 2025 and 2024: quiet, back
    assert q["R"] == pytest.approx(0.5 / 3) and n["R"] == 0  # ordered in those days both years
    assert q["N"] == pytest.approx(1.5 / 2) and n["N"] == 1  # one year: 0.75, below 0.8
    in_season = build_features(h, pd.Timestamp("2026-09-20"), config()).set_index("account_id")
    assert in_season.loc["G", "season_quiet_years"] == 0  # it ordered up to 28 Sep those years


def test_the_basket_ratio_is_spend_per_order_day_whatever_the_order_ids() -> None:
    """A food wholesaler's export numbered each line of an order apart: a healthy
    restaurant delivering the same spend a day read "average order -21%" because summer
    deliveries held more lines. Spend per order day is the same whichever way the lines are
    numbered; a basket halved reads 0.5."""
    as_of = pd.Timestamp("2026-10-06")
    days = pd.date_range("2025-10-10", "2026-10-05", freq="7D")
    rows = []
    for i, day in enumerate(days):
        recent = (as_of - day).days <= 90
        lines = 3 if recent else 2  # more lines a delivery lately, same spend a day
        for k in range(lines):
            rows.append(
                {
                    "account_id": "S",
                    "order_date": day,
                    "amount": 300.0 / lines,
                    "order_id": f"S{i}-{k}",
                }
            )
        rows.append(
            {
                "account_id": "H",
                "order_date": day,
                "amount": 150.0 if recent else 300.0,
                "order_id": f"H{i}",
            }
        )
    df = build_features(make_history(rows), as_of, config()).set_index("account_id")
    assert df.loc["S", "basket_ratio_90d"] == pytest.approx(1.0)
    assert df.loc["H", "basket_ratio_90d"] == pytest.approx(0.5)
    assert df.loc["S", "basket_days_90d"] == 13  # weekly: 13 order days in the last 90


def test_the_rhythm_quiet_chance_is_no_model_input_and_not_in_the_feature_file(
    tmp_path: Path,
) -> None:
    """Built with the features (every engine and snapshot has it) for the lights' rule only:
    the training columns and `ka-ml features` leave it out, so models and the benchmarks'
    plain LightGBM read what they read before."""
    from ka_ml.features.catalog import scorer_only
    from ka_ml.jobs.data import write_features
    from ka_ml.training.folds import feature_columns

    assert scorer_only() == {
        "gap_typical_days",
        "rhythm_quiet_chance",
        "gaps_longer_than_silence",
        "season_quiet_chance",
        "season_quiet_years",
        "season_pause_chance",
        "season_pause_years",
        "basket_ratio_90d",
        "basket_days_90d",
        "usage_yoy_90d",
    }
    rows = [{"account_id": "A", "order_date": d(a), "amount": 10.0} for a in (10, 40, 70)]
    h = make_history(rows)
    df = build_features(h, AS_OF, config())
    assert "rhythm_quiet_chance" in df
    assert "rhythm_quiet_chance" not in feature_columns(df)
    src = tmp_path / "data"
    src.mkdir()
    h.orders.to_csv(src / "orders.csv", index=False)
    h.accounts.to_csv(src / "accounts.csv", index=False)
    out = tmp_path / "f.parquet"
    written, _, _ = write_features(config(), str(src), AS_OF, out, "local", AS_OF)
    assert not scorer_only() & set(pd.read_parquet(out).columns)
    assert not scorer_only() & set(written.columns)


# -- contracts signed ahead -------------------------------------------------------------------
def test_a_renewal_signed_before_the_as_of_counts_from_its_signing_date() -> None:
    """A subscription user's 34 renewals signed ahead were dropped as 'rows dated on or after
    the as-of' and their accounts read 'Renewal due in N days: agree the renewal with the
    buyer now'; a term starting on the scoring day read 'Contract lapsed 1 day ago'."""
    orders = [
        {"account_id": a, "order_date": d(40), "amount": 100.0} for a in ("R1", "R2", "R3", "R4")
    ]
    contracts = [
        # R1: runs 20 more days; its renewal, signed 10 days ago, starts after the as-of
        {"account_id": "R1", "start_date": d(345), "end_date": d(-20), "signed_date": d(360)},
        {"account_id": "R1", "start_date": d(-21), "end_date": d(-385), "signed_date": d(10)},
        # R2: ended yesterday; the next term starts on the as-of, signed a month ago
        {"account_id": "R2", "start_date": d(365), "end_date": d(1), "signed_date": None},
        {"account_id": "R2", "start_date": d(0), "end_date": d(-364), "signed_date": d(30)},
        # R3: its renewal is signed only after the as-of: unknown
        {"account_id": "R3", "start_date": d(345), "end_date": d(-20), "signed_date": None},
        {"account_id": "R3", "start_date": d(-21), "end_date": d(-385), "signed_date": d(-5)},
        # R4: no signing date: known from its start, as before
        {"account_id": "R4", "start_date": d(345), "end_date": d(-20), "signed_date": None},
        {"account_id": "R4", "start_date": d(-21), "end_date": d(-385), "signed_date": None},
    ]
    history = make_history(orders, contracts=contracts)
    got = build_features(history, AS_OF, config()).set_index("account_id")
    assert got["contract_days_to_end"].to_dict() == {"R1": 385, "R2": 364, "R3": 20, "R4": 20}
    assert got["has_active_contract"].to_dict() == {"R1": 1.0, "R2": 1.0, "R3": 1.0, "R4": 1.0}
    assert got["contract_renewals"].to_dict() == {"R1": 1, "R2": 1, "R3": 0, "R4": 0}
    # the same cut as History.before (the scorer's and the labels' view of the as-of)
    before = history.before(AS_OF).contracts
    assert before is not None and sorted(before["account_id"]) == [
        "R1",
        "R1",
        "R2",
        "R2",
        "R3",
        "R4",
    ]


def test_usage_is_compared_with_the_same_days_a_year_before_once_it_reaches_back_that_far() -> None:
    """A seasonal dip judged against last year's season, not the busier months before it."""
    orders = [{"account_id": a, "order_date": d(30), "amount": 10.0} for a in ("U1", "U2")]
    usage = [
        # U1: 10 a week in the last 90 days, 20 in the 90 before, 12 a year earlier
        *({"account_id": "U1", "date": d(a), "count": 10.0} for a in range(3, 90, 7)),
        *({"account_id": "U1", "date": d(a), "count": 20.0} for a in range(94, 180, 7)),
        *({"account_id": "U1", "date": d(a), "count": 12.0} for a in range(368, 455, 7)),
        {"account_id": "U1", "date": d(460), "count": 0.0},  # the feed reaches back 460 days
        # U2: the same, but its usage starts 400 days ago: the year before is not covered
        *({"account_id": "U2", "date": d(a), "count": 10.0} for a in range(3, 90, 7)),
        {"account_id": "U2", "date": d(400), "count": 5.0},
    ]
    got = build_features(make_history(orders, usage=usage), AS_OF, config())
    got = got.set_index("account_id")
    assert got.loc["U1", "usage_yoy_90d"] == pytest.approx((130 - 156) / 156)  # 13 weeks each
    assert got.loc["U1", "usage_trend_90d"] == pytest.approx((130 - 260) / 260)
    assert np.isnan(got.loc["U2", "usage_yoy_90d"])


def test_the_survey_change_compares_an_answer_with_the_previous_one_of_its_kind() -> None:
    """Seen on a software vendor's accounts: "Latest survey score 2.5, down 2.5 points" where
    a renewal-intent answer of 2.5 followed an NPS of 5. The change now stays within a kind
    (case-blind); without a kind column, or with one kind, every answer is one survey."""
    orders = [{"account_id": a, "order_date": d(5), "amount": 10.0} for a in ("K", "L", "M", "N")]
    surveys = [
        # K: renewal intent 6 then NPS 5 then renewal intent 2.5 -> -3.5, not -2.5
        {"account_id": "K", "date": d(200), "score": 6.0, "kind": "renewal_intent"},
        {"account_id": "K", "date": d(30), "score": 5.0, "kind": "NPS"},
        {"account_id": "K", "date": d(10), "score": 2.5, "kind": "Renewal_Intent"},
        # L: the latest kind answered once: no change, though another kind came before
        {"account_id": "L", "date": d(40), "score": 9.0, "kind": "nps"},
        {"account_id": "L", "date": d(20), "score": 3.0, "kind": "renewal_intent"},
        # M: no kind given: one survey, as before
        {"account_id": "M", "date": d(40), "score": 9.0, "kind": None},
        {"account_id": "M", "date": d(20), "score": 3.0, "kind": None},
        # N: two kinds on the latest day (the larger kind name's change), scores averaged
        {"account_id": "N", "date": d(60), "score": 8.0, "kind": "nps"},
        {"account_id": "N", "date": d(50), "score": 7.0, "kind": "renewal_intent"},
        {"account_id": "N", "date": d(10), "score": 4.0, "kind": "nps"},
        {"account_id": "N", "date": d(10), "score": 6.0, "kind": "renewal_intent"},
    ]
    h = make_history(orders, surveys=surveys)
    got = build_features(h, AS_OF, config()).set_index("account_id")
    assert got.loc["K", "survey_score_last"] == 2.5
    assert got.loc["K", "survey_score_change"] == -3.5
    assert math.isnan(got.loc["L", "survey_score_change"])
    assert got.loc["M", "survey_score_change"] == -6.0
    assert got.loc["N", "survey_score_last"] == 5.0
    assert got.loc["N", "survey_score_change"] == -1.0  # renewal intent 7 -> 6
    # row order never matters
    shuffled = make_history(orders, surveys=surveys[::-1])
    again = build_features(shuffled, AS_OF, config()).set_index("account_id")
    pd.testing.assert_series_equal(got["survey_score_change"], again["survey_score_change"])


def _weekly_with_august_shutdowns(years: int, as_of: pd.Timestamp) -> list[dict[str, Any]]:
    """A weekly buyer for ``years`` years before ``as_of`` (and a year after it), closed
    from 1 to 21 August every year."""
    rows = []
    day = as_of - pd.DateOffset(years=years)
    while day < as_of + pd.DateOffset(years=1):
        if not (day.month == 8 and day.day <= 21):
            rows.append({"account_id": "F", "order_date": day, "amount": 100.0})
        day += pd.Timedelta(days=7)
    return rows


def test_the_days_to_the_next_order_after_the_same_date_of_past_years() -> None:
    """A weekly buyer scored on 1 August, the first day of its yearly three-week shutdown:
    in each past year its next order came ~21 days after 1 August (its gaps say a week);
    orders after the as-of change nothing; with no past year as a customer it is NaN."""
    as_of = pd.Timestamp("2026-08-01")
    rows = _weekly_with_august_shutdowns(3, as_of)
    X = build_features(make_history(rows), as_of, config()).set_index("account_id")
    v = X.loc["F", "next_order_days_years_before"]
    assert 21 <= v <= 27
    assert X.loc["F", "gap_median_days"] == 7
    before = [r for r in rows if r["order_date"] < as_of]
    X_cut = build_features(make_history(before), as_of, config()).set_index("account_id")
    assert X_cut.loc["F", "next_order_days_years_before"] == v
    young = [r for r in before if r["order_date"] >= as_of - pd.Timedelta(days=300)]
    X_young = build_features(make_history(young), as_of, config()).set_index("account_id")
    assert math.isnan(X_young.loc["F", "next_order_days_years_before"])


def test_a_yearly_shutdown_reads_as_a_pause_on_the_same_date_of_past_years() -> None:
    """Nineteen days into its August shutdown (last order 31 July, scored 19 August) the
    weekly buyer had been about as long without an order on 19 August of each of the three
    past years, and ordered again within days of it: 3 of 3 years, (3 + 0.5) / 4. A buyer
    that simply stopped in May was never that quiet on 19 August before."""
    as_of = pd.Timestamp("2026-08-19")
    rows = [r for r in _weekly_with_august_shutdowns(4, as_of) if r["order_date"] < as_of]
    stopped = [
        {"account_id": "G", "order_date": r["order_date"], "amount": 100.0}
        for r in rows
        if r["order_date"] < pd.Timestamp("2026-05-01")
    ]
    X = build_features(make_history(rows + stopped), as_of, config()).set_index("account_id")
    assert X.loc["F", "recency_days"] == 19  # inside the shutdown
    assert X.loc["F", "season_pause_years"] == 3
    assert X.loc["F", "season_pause_chance"] == pytest.approx(3.5 / 4)
    assert X.loc["F", "next_order_days_years_before"] <= 7  # back within days of the date
    # stopped in May: as silent as never before on 19 August, nor back soon after it then
    assert X.loc["G", "season_pause_years"] == 0
    assert X.loc["G", "season_pause_chance"] == pytest.approx(0.5 / 4)
    # no past year as a customer: NaN, like the other season features
    young = [r for r in rows if r["order_date"] >= as_of - pd.Timedelta(days=300)]
    X_young = build_features(make_history(young), as_of, config()).set_index("account_id")
    assert math.isnan(X_young.loc["F", "season_pause_chance"])
    assert math.isnan(X_young.loc["F", "season_pause_years"])


def test_a_past_year_without_an_order_after_the_date_counts_365_and_years_give_a_median() -> None:
    """Three past years as a customer: next orders 10 and 30 days after the date in two of
    them, none in the year after it in the third (365): the median, 30."""
    as_of = pd.Timestamp("2026-06-01")
    y = [as_of - pd.Timedelta(days=365 * k) for k in (1, 2, 3)]
    dates = [
        y[0] + pd.Timedelta(days=10),  # a year ago: 10 days after the date
        y[1] + pd.Timedelta(days=30),  # two years ago: 30 days after it
        y[2] - pd.Timedelta(days=400),  # first order, before every date; then none for years
    ]
    rows = [{"account_id": "S", "order_date": t, "amount": 50.0} for t in dates]
    X = build_features(make_history(rows), as_of, config()).set_index("account_id")
    # three years back: the next order came 3 * 365 - 2 * 365 + 30 = 395 days later: 365
    assert X.loc["S", "next_order_days_years_before"] == 30


def test_a_past_year_feature_no_snapshot_has_is_no_model_input() -> None:
    """On a history under a year the year-ago feature is empty: left out of the model inputs
    (an empty column still moves LightGBM's column sampling, so a short history would get
    other trees for a column it cannot have); other empty columns stay as they were."""
    from ka_ml.features.catalog import past_years
    from ka_ml.training.folds import feature_columns

    assert past_years() == {"next_order_days_years_before"}
    rows = [{"account_id": "A", "order_date": d(a), "amount": 10.0} for a in (10, 40, 70)]
    df = build_features(make_history(rows), AS_OF, config())
    assert df["next_order_days_years_before"].isna().all()
    assert df["aov_change_365d"].isna().all()
    cols = feature_columns(df)
    assert "next_order_days_years_before" not in cols
    assert "aov_change_365d" in cols and "recency_days" in cols
    df.loc[0, "next_order_days_years_before"] = 12.0
    assert "next_order_days_years_before" in feature_columns(df)
