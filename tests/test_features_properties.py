"""Leakage properties: features never see the as-of day or later; labels only their window.

Hypothesis draws tiny histories (3 accounts, every table) as rows dated relative to the
as-of, then swaps the rows that must not matter for other random ones and checks that the
result does not move by a single bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from fixtures import config, make_history
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ka_ml.data.history import History
from ka_ml.features import build_features, churn_labels, timing_labels
from ka_ml.features.encode import _codes
from ka_ml.features.orders import PAUSE_SLACK_DAYS

AS_OF = pd.Timestamp("2024-07-01")
H = 90
ACCOUNTS = ("a1", "a2", "a3")
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def d(age: int) -> pd.Timestamp:
    """``age`` days before AS_OF (negative: after it)."""
    return AS_OF - pd.Timedelta(days=age)


account = st.sampled_from(ACCOUNTS)
past = st.integers(1, 800)  # ages of rows before the as-of
future = st.integers(-300, 0)  # on or after the as-of
amount = st.integers(-100, 1000).map(float)


def orders(ages: st.SearchStrategy[int]) -> st.SearchStrategy[list[dict[str, Any]]]:
    row = st.builds(
        lambda a, age, amt, p, oid: {
            "account_id": a, "order_date": d(age), "amount": amt, "product": p, "order_id": oid,
        },
        account, ages, amount, st.sampled_from(["p1", "p2", "p3"]),
        st.sampled_from(["o1", "o2", "o3", "o4", "o5", "o6"]),
    )  # fmt: skip
    return st.lists(row, max_size=10)


def usage(ages: st.SearchStrategy[int]) -> st.SearchStrategy[list[dict[str, Any]]]:
    row = st.builds(
        lambda a, age, c: {"account_id": a, "date": d(age), "count": c},
        account, ages, st.integers(0, 20).map(float),
    )  # fmt: skip
    return st.lists(row, max_size=6)


def tickets(
    ages: st.SearchStrategy[int], resolved: st.SearchStrategy[int | None]
) -> st.SearchStrategy[list[dict[str, Any]]]:
    row = st.builds(
        lambda a, age, sev, comp, res: {
            "account_id": a, "opened_at": d(age), "severity": sev, "is_complaint": comp,
            "resolved_at": None if res is None else d(res),
        },
        account, ages, st.sampled_from(["low", "medium", "high", "critical"]), st.booleans(),
        resolved,
    )  # fmt: skip
    return st.lists(row, max_size=6)


def surveys(ages: st.SearchStrategy[int]) -> st.SearchStrategy[list[dict[str, Any]]]:
    row = st.builds(
        lambda a, age, s: {"account_id": a, "date": d(age), "score": s},
        account, ages, st.integers(0, 10).map(float),
    )  # fmt: skip
    return st.lists(row, max_size=5)


def contracts(
    starts: st.SearchStrategy[int], lengths: st.SearchStrategy[int]
) -> st.SearchStrategy[list[dict[str, Any]]]:
    row = st.builds(
        lambda a, start, length, v: {
            "account_id": a, "start_date": d(start), "end_date": d(start - length), "value": v,
        },
        account, starts, lengths, amount,
    )  # fmt: skip
    return st.lists(row, max_size=4)


def created_at(ages: st.SearchStrategy[int]) -> st.SearchStrategy[list[int]]:
    return st.lists(ages, min_size=len(ACCOUNTS), max_size=len(ACCOUNTS))


def history(parts: dict[str, list[dict[str, Any]]], created: list[int]) -> History:
    accounts = [
        {"account_id": a, "industry": ind, "created_at": d(age)}
        for a, ind, age in zip(ACCOUNTS, ["x", "y", None], created, strict=True)
    ]
    return make_history(
        parts["orders"],
        accounts,
        usage=parts["usage"],
        tickets=parts["tickets"],
        surveys=parts["surveys"],
        contracts=parts["contracts"],
    )


# Rows before the as-of; tickets may be resolved before or after it (or never).
PAST = st.fixed_dictionaries(
    {
        "orders": orders(past),
        "usage": usage(past),
        "tickets": tickets(past, st.none() | st.integers(1, 800)),
        "surveys": surveys(past),
        "contracts": contracts(past, st.integers(0, 900)),
    }
)
FUTURE = st.fixed_dictionaries(
    {
        "orders": orders(future),
        "usage": usage(future),
        "tickets": tickets(future, st.none() | future),
        "surveys": surveys(future),
        "contracts": contracts(future, st.integers(0, 400)),
    }
)


def merged(a: dict[str, list[dict[str, Any]]], b: dict[str, list[dict[str, Any]]]) -> dict:
    return {k: a[k] + b[k] for k in a}


def unresolved_after_as_of(parts: dict, resolved: list[int | None]) -> dict:
    """The past tickets with every resolution that is not before the as-of redrawn."""
    out = []
    for row, new in zip(parts["tickets"], resolved, strict=False):
        r = row["resolved_at"]
        if r is None or r >= AS_OF:
            row = {**row, "resolved_at": None if new is None else d(new)}
        out.append(row)
    return {**parts, "tickets": out + parts["tickets"][len(out) :]}


@SETTINGS
@given(
    before=PAST,
    future_a=FUTURE,
    future_b=FUTURE,
    created=created_at(st.integers(-100, 900)),
    created_future=created_at(future),
    redrawn=st.lists(st.none() | future, min_size=6, max_size=6),
)
def test_rows_dated_on_or_after_the_as_of_never_change_the_features(
    before: dict, future_a: dict, future_b: dict, created: list[int], created_future: list[int],
    redrawn: list[int | None],
) -> None:  # fmt: skip
    cfg = config()
    one = build_features(history(merged(before, future_a), created), AS_OF, cfg)
    # other future rows, other future resolutions and creation dates on/after the as-of
    other_created = [c if c > 0 else f for c, f in zip(created, created_future, strict=True)]
    swapped = unresolved_after_as_of(merged(before, future_b), redrawn)
    two = build_features(history(swapped, other_created), AS_OF, cfg)
    none = build_features(history(before, other_created), AS_OF, cfg)
    pd.testing.assert_frame_equal(one, two)
    pd.testing.assert_frame_equal(one, none)


def lifetime_oracle(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The whole-history features straight from the rows before AS_OF, with pandas: every
    row counts for spend, only purchase rows (amount >= 0, not credit notes) for orders."""
    o = pd.DataFrame(rows)
    o = o[o["order_date"] < AS_OF]
    g = o.groupby("account_id")
    bought = o[o["amount"] >= 0].groupby("account_id")
    first, last = bought["order_date"].min(), bought["order_date"].max()
    on_first = o[o["order_date"] == o["account_id"].map(first)]
    since_first = (AS_OF - first).dt.days
    months = since_first.clip(lower=365 / 12) / (365 / 12)
    return pd.DataFrame(
        {
            "orders_lifetime": bought["order_id"].nunique(),
            "spend_lifetime": g["amount"].sum(),
            "orders_per_month": bought["order_id"].nunique() / months,
            "spend_per_month": g["amount"].sum() / months,
            "repeat_orders": bought["order_date"].nunique() - 1,
            "active_span_days": (last - first).dt.days,
            "recency_tenure_ratio": (AS_OF - last).dt.days / since_first,
            "first_order_amount": on_first.groupby("account_id")["amount"].sum(),
        }
    ).astype("float64")


@SETTINGS
@given(before=orders(past), after=orders(future))
def test_whole_history_features_are_the_plain_totals_of_every_row_before_the_as_of(
    before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> None:
    # ages up to 800 days: beyond the two years the windows' bands reach
    df = build_features(make_history(before + after), AS_OF, config()).set_index("account_id")
    if df.empty:
        return
    want = lifetime_oracle(before).reindex(df.index.astype(object))
    got = df[list(want.columns)]
    pd.testing.assert_frame_equal(got, want, check_names=False, check_index_type=False, rtol=1e-9)
    ratio = got["recency_tenure_ratio"]
    assert ((ratio > 0) & (ratio <= 1)).all()  # every row here has an order before the as-of
    assert (got["orders_lifetime"] >= df["orders_365d"]).all()


@SETTINGS
@given(before=orders(past))
def test_the_typical_gap_is_the_gap_half_the_time_between_orders_was_spent_in(
    before: list[dict[str, Any]],
) -> None:
    """gap_typical_days (the overdue rule's typical gap): over the account's gaps between
    purchase days, sorted, the first whose running total reaches half of all of them."""
    df = build_features(make_history(before), AS_OF, config()).set_index("account_id")
    for acc, got in df["gap_typical_days"].items():
        days = sorted(
            {r["order_date"] for r in before if r["account_id"] == acc and r["amount"] >= 0}
        )
        gaps = np.sort(np.diff(np.array(days, dtype="datetime64[D]")).astype(float))
        if len(gaps) == 0:
            assert np.isnan(got)
            continue
        run = np.cumsum(gaps)
        assert got == gaps[np.argmax(2 * run >= run[-1])]
        assert gaps[0] <= got <= gaps[-1]


# -- labels ----------------------------------------------------------------------------------
inside = st.integers(-(H - 1), 0)  # ages of days in [AS_OF, AS_OF + H)
outside = st.integers(-400, -H) | st.integers(1, 400)  # before the as-of or from its end on
prior = st.integers(1, H)  # [AS_OF - H, AS_OF): revenue_drop's comparison period
far = st.integers(-400, -H) | st.integers(H + 1, 400)  # outside both for revenue_drop


def label_history(o: list[dict], c: list[dict]) -> History:
    return make_history(o, [{"account_id": a} for a in ACCOUNTS], contracts=c)


# contracts that cannot matter: starting from the window's end on, or ending more than a
# horizon before the as-of
late_contracts = contracts(st.integers(-400, -H), st.integers(0, 400))
old_contracts = st.lists(
    st.builds(
        lambda a, end, length: {
            "account_id": a,
            "start_date": d(end + length),
            "end_date": d(end),
            "value": 1.0,
        },
        account,
        st.integers(H + 1, 600),
        st.integers(0, 400),
    ),
    max_size=3,
)
window_contracts = contracts(st.integers(-(H - 1), 400), st.integers(0, 600))


@SETTINGS
@given(
    in_window=orders(inside),
    noise_a=orders(outside),
    noise_b=orders(outside),
    kept=window_contracts,
    late_a=late_contracts,
    late_b=late_contracts,
    old_a=old_contracts,
    old_b=old_contracts,
    definition=st.sampled_from(["no_order", "contract", "auto"]),
)
def test_churn_labels_never_read_rows_outside_their_window(
    in_window: list, noise_a: list, noise_b: list, kept: list, late_a: list, late_b: list,
    old_a: list, old_b: list, definition: str,
) -> None:  # fmt: skip
    cfg = config(labels={"churn_definition": definition})
    ids = pd.Index(ACCOUNTS)
    one = churn_labels(label_history(in_window + noise_a, kept + late_a + old_a), AS_OF, cfg, ids)
    two = churn_labels(label_history(in_window + noise_b, kept + late_b + old_b), AS_OF, cfg, ids)
    pd.testing.assert_frame_equal(one, two)


@SETTINGS
@given(
    window=orders(st.integers(-(H - 1), H)),
    noise_a=orders(far),
    noise_b=orders(far),
)
def test_revenue_drop_reads_only_the_window_and_the_horizon_before(
    window: list, noise_a: list, noise_b: list
) -> None:
    cfg = config(labels={"churn_definition": "revenue_drop"})
    ids = pd.Index(ACCOUNTS)
    one = churn_labels(label_history(window + noise_a, []), AS_OF, cfg, ids)
    two = churn_labels(label_history(window + noise_b, []), AS_OF, cfg, ids)
    pd.testing.assert_frame_equal(one, two)


@SETTINGS
@given(
    seen=orders(st.integers(-199, 0)),
    noise_a=orders(st.integers(1, 400) | st.integers(-500, -200)),
    noise_b=orders(st.integers(1, 400) | st.integers(-500, -200)),
)
def test_timing_labels_read_only_orders_between_as_of_and_data_end(
    seen: list, noise_a: list, noise_b: list
) -> None:
    data_end = d(-200)
    ids = pd.Index(ACCOUNTS)
    one = timing_labels(label_history(seen + noise_a, []), AS_OF, data_end, ids)
    two = timing_labels(label_history(seen + noise_b, []), AS_OF, data_end, ids)
    pd.testing.assert_frame_equal(one, two)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["A1", "A2", "B", "é9", "", None, "X-unknown"]), max_size=40),
    st.sampled_from(["str", "object"]),
)
def test_account_codes_are_positions_in_the_universe_whatever_the_row_order(
    values: list[str | None], dtype: str
) -> None:
    """Run-wise lookup (sorted tables) gives the same codes as a lookup per row, in any
    order, with missing and unknown ids coded -1."""
    ids = np.array(sorted({"A1", "A2", "B", "é9", ""}), dtype=object)
    col = pd.Series(values, dtype=dtype)
    where = {v: i for i, v in enumerate(ids)}
    expected = [where.get(v, -1) if v is not None else -1 for v in values]
    assert _codes(col, ids).tolist() == expected


@SETTINGS
@given(before=orders(st.integers(1, 1300)))
def test_the_next_order_after_the_same_date_of_past_years_by_brute_force(
    before: list[dict[str, Any]],
) -> None:
    """next_order_days_years_before: for each of the last three years in which the account
    had ordered before the date 365 y days back, the days from that date to its first
    order day on or after it (at most 365); the median of those years; NaN without one."""
    df = build_features(make_history(before), AS_OF, config()).set_index("account_id")
    for acc, got in df["next_order_days_years_before"].items():
        ages = sorted(
            {
                (AS_OF - r["order_date"]).days
                for r in before
                if r["account_id"] == acc and r["amount"] >= 0
            }
        )
        waits = []
        for y in (1, 2, 3):
            since = 365 * y  # the date's age
            if not ages or ages[-1] <= since:  # no order day before that date
                continue
            later = [since - a for a in ages if a <= since]
            waits.append(min(min(later), 365) if later else 365)
        if waits:
            assert got == np.median(waits)
        else:
            assert np.isnan(got)


@SETTINGS
@given(before=orders(st.integers(1, 1300)))
def test_the_yearly_pause_on_the_same_date_of_past_years_by_brute_force(
    before: list[dict[str, Any]],
) -> None:
    """season_pause_years: of the last three years in which the account had ordered before
    the date 365 y days back, those in which the gap around that date (last order day
    before it to the next on or after it, at most 365 days after) was at least its silence
    now less PAUSE_SLACK_DAYS and ended within the horizon after the date;
    season_pause_chance = (q + 0.5) / (years + 1); NaN without such a year."""
    cfg = config()
    df = build_features(make_history(before), AS_OF, cfg).set_index("account_id")
    for acc in df.index:
        ages = sorted(
            {
                (AS_OF - r["order_date"]).days
                for r in before
                if r["account_id"] == acc and r["amount"] >= 0
            }
        )
        now = min(ages) if ages else np.nan
        years = paused = 0
        for y in (1, 2, 3):
            since = 365 * y
            if not ages or ages[-1] <= since:
                continue
            years += 1
            then = min(a for a in ages if a > since) - since
            later = [since - a for a in ages if a <= since]
            wait = min(min(later), 365) if later else 365
            paused += then + wait >= now - PAUSE_SLACK_DAYS and wait <= cfg.labels.horizon_days
        q, c = df.loc[acc, "season_pause_years"], df.loc[acc, "season_pause_chance"]
        if years:
            assert q == paused
            assert c == pytest.approx((paused + 0.5) / (years + 1))
        else:
            assert np.isnan(q) and np.isnan(c)
