"""The notebooks' analysis tables on tiny frames with hand-checked numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from ka_ml.analysis import plots as P
from ka_ml.analysis import tables as A
from ka_ml.data.history import History

D = pd.Timestamp


def orders(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["account_id", "order_date", "amount"])
    df["account_id"] = df["account_id"].astype("str")
    df["order_date"] = pd.to_datetime(df["order_date"]).astype("datetime64[us]")
    return df


# -- purchases and activity -------------------------------------------------------------
def test_purchase_days_merge_same_day_lines_and_ignore_credits_and_the_future() -> None:
    o = orders(
        [
            ("a", "2024-01-05", 100.0),
            ("a", "2024-01-05", 50.0),
            ("a", "2024-01-09", -30.0),
            ("a", "2024-02-01", 10.0),
            ("b", "2024-01-07", 20.0),
        ]
    )
    days = A.purchase_days(o, D("2024-02-01"))
    assert days.to_dict("list") == {
        "account_id": ["a", "b"],
        "order_date": [D("2024-01-05"), D("2024-01-07")],
        "amount": [150.0, 20.0],
    }


def test_monthly_activity_counts_complete_months_only() -> None:
    o = orders(
        [
            ("a", "2024-01-15", 100.0),  # January is partial: the data starts mid-month
            ("a", "2024-02-01", 100.0),
            ("a", "2024-02-01", 20.0),
            ("b", "2024-02-10", 50.0),
            ("b", "2024-02-20", -10.0),
            ("a", "2024-03-03", 40.0),
            ("a", "2024-04-02", 40.0),  # April is partial: as_of is mid-month
        ]
    )
    m = A.monthly_activity(o, D("2024-04-10"))
    assert list(m.index) == [D("2024-02-01"), D("2024-03-01")]
    assert m["purchase_days"].tolist() == [2, 1]
    assert m["revenue"].tolist() == [160.0, 40.0]
    assert m["buying_accounts"].tolist() == [2, 1]


def test_data_profile_reports_rows_accounts_dates_and_missing_columns() -> None:
    o = orders([("a", "2024-01-05", 1.0), ("b", "2024-03-01", 2.0), ("b", "2024-03-02", 3.0)])
    accounts = pd.DataFrame({"account_id": ["a", "b"], "industry": ["Retail", None]})
    profile = A.data_profile(History(orders=o, accounts=accounts))
    assert profile.loc["orders", "rows"] == 3
    assert profile.loc["orders", "accounts"] == 2
    assert profile.loc["orders", "first_date"] == D("2024-01-05")
    assert profile.loc["orders", "last_date"] == D("2024-03-02")
    assert profile.loc["orders", "missing"] == "-"
    assert profile.loc["accounts", "missing"] == "industry 50%"


# -- cohorts ----------------------------------------------------------------------------
COHORT_ORDERS = [
    ("a", "2024-01-01", 10.0),
    ("a", "2024-02-10", 10.0),
    ("a", "2024-04-20", 10.0),
    ("b", "2024-01-15", 10.0),
    ("b", "2024-03-01", 10.0),
    ("c", "2024-02-03", 10.0),
    ("c", "2024-02-20", 10.0),
    ("c", "2024-04-01", 10.0),
    ("d", "2024-03-10", -50.0),
    ("d", "2024-03-12", 10.0),
    ("e", "2024-05-03", 10.0),  # after as_of
]


def test_cohort_retention_by_month_matches_the_hand_count() -> None:
    t = A.cohort_retention(orders(COHORT_ORDERS), D("2024-05-01"), months_per_period=1)
    assert list(t.index) == [(D("2024-01-01"), 2), (D("2024-02-01"), 1), (D("2024-03-01"), 1)]
    expected = np.array(
        [
            [1.0, 0.5, 0.5, 0.5],  # a: Jan Feb Apr; b: Jan Mar
            [1.0, 0.0, 1.0, np.nan],  # c: Feb Apr; May not complete
            [1.0, 0.0, np.nan, np.nan],  # d: Mar (the credit note is no purchase)
        ]
    )
    np.testing.assert_allclose(t.to_numpy(), expected)


def test_pooled_retention_weights_cohorts_by_size_over_the_cells_they_can_show() -> None:
    t = A.cohort_retention(orders(COHORT_ORDERS), D("2024-05-01"), months_per_period=1)
    pooled = A.pooled_retention(t)
    np.testing.assert_allclose(pooled.to_numpy(), [1.0, 1 / 4, 2 / 3, 0.5])


def test_partial_periods_at_both_ends_are_left_out_of_the_cohorts() -> None:
    o = orders(
        [
            ("a", "2024-01-20", 10.0),  # Q1 starts mid-period: dropped
            ("a", "2024-04-05", 10.0),
            ("b", "2024-05-05", 10.0),
            ("b", "2024-07-05", 10.0),
            ("a", "2024-08-01", 10.0),  # Q3 is still running at as_of: dropped
        ]
    )
    t = A.cohort_retention(o, D("2024-08-15"), months_per_period=3)
    assert list(t.index) == [(D("2024-04-01"), 2)]
    assert t.to_numpy().tolist() == [[1.0]]


def test_cohort_retention_rejects_a_period_that_does_not_divide_the_year() -> None:
    with pytest.raises(ValueError, match="divide 12"):
        A.cohort_retention(orders(COHORT_ORDERS), D("2024-05-01"), months_per_period=5)


# -- purchase gaps ----------------------------------------------------------------------
def test_gaps_are_days_between_purchase_days_and_stats_describe_each_account() -> None:
    o = orders(
        [
            ("x", "2024-01-01", 1.0),
            ("x", "2024-01-11", 1.0),
            ("x", "2024-01-11", 1.0),
            ("x", "2024-01-31", 1.0),
            ("y", "2024-01-05", 1.0),
            ("z", "2024-01-01", 1.0),
            ("z", "2024-01-08", 1.0),
            ("z", "2024-01-15", 1.0),
            ("z", "2024-01-22", 1.0),
        ]
    )
    gaps = A.purchase_gaps(o, D("2024-02-01"))
    assert gaps[gaps["account_id"] == "x"]["gap_days"].tolist() == [10.0, 20.0]
    assert "y" not in set(gaps["account_id"])
    s = A.gap_stats(gaps)
    assert s.loc["x", "n_gaps"] == 2
    assert s.loc["x", "median_gap_days"] == 15.0
    assert s.loc["x", "cv"] == pytest.approx(np.sqrt(50) / 15)
    assert s.loc["z", "cv"] == 0.0  # a perfect weekly rhythm


# -- churn rates ------------------------------------------------------------------------
def test_wilson_interval_matches_the_textbook_values() -> None:
    lo, hi = A.wilson_interval([0, 5, 0], [10, 10, 0])
    assert lo[0] == 0.0
    assert hi[0] == pytest.approx(0.2775, abs=1e-4)
    assert (lo[1], hi[1]) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert np.isnan(lo[2]) and np.isnan(hi[2])


def test_churn_rate_by_skips_unlabelled_rows_and_names_missing_groups() -> None:
    frame = pd.DataFrame(
        {
            "abc_tier": ["A", "A", "A", "A", "B", "B", "B", None],
            "churn": [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, np.nan, 0.0],
        }
    )
    r = A.churn_rate_by(frame, "abc_tier").set_index("abc_tier")
    assert r["n"].to_dict() == {"A": 4, "B": 2, "unknown": 1}
    assert r["churners"].to_dict() == {"A": 1, "B": 2, "unknown": 0}
    assert r.loc["A", "rate"] == 0.25
    assert (r["lo"] <= r["rate"]).all() and (r["rate"] <= r["hi"]).all()


def test_churn_rate_by_names_a_missing_column() -> None:
    with pytest.raises(ValueError, match="region"):
        A.churn_rate_by(pd.DataFrame({"churn": [1.0]}), "region")


# -- signals before churn ---------------------------------------------------------------
def test_churn_anchor_is_the_day_after_the_last_purchase_of_lapsed_accounts() -> None:
    o = orders(
        [
            ("gone", "2024-02-01", 10.0),
            ("active", "2024-05-01", 10.0),
            ("credited", "2024-01-10", 10.0),
            ("credited", "2024-05-01", -10.0),  # a credit note is not a purchase
        ]
    )
    anchors = A.churn_anchors_from_orders(o, D("2024-06-01"), horizon_days=90)
    assert anchors.to_dict() == {"credited": D("2024-01-11"), "gone": D("2024-02-02")}


def test_control_anchors_are_drawn_from_the_churn_dates_reproducibly() -> None:
    pool = pd.Series([D("2024-01-01"), D("2024-06-01")])
    first = A.control_anchors(["r1", "r2", "r3", "r4"], pool, seed=3)
    assert list(first.index) == ["r1", "r2", "r3", "r4"]
    assert set(first) <= set(pool)
    pd.testing.assert_series_equal(first, A.control_anchors(["r1", "r2", "r3", "r4"], pool, 3))
    assert A.control_anchors(["r1"], pd.Series([], dtype="datetime64[us]")).isna().all()


def events(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["account_id", "date", "count"])
    df["date"] = pd.to_datetime(df["date"]).astype("datetime64[us]")
    return df


ANCHORS = pd.Series({"a": D("2024-03-01"), "b": D("2024-03-01"), "c": pd.NaT}).astype(
    "datetime64[us]"
)
EVENTS = events(
    [
        ("a", "2024-02-29", 1.0),  # day -1: week -1
        ("a", "2024-02-23", 2.0),  # day -7: still week -1
        ("a", "2024-02-22", 4.0),  # day -8: week -2
        ("a", "2024-03-01", 8.0),  # the anchor day itself: after, not before
        ("a", "2024-01-01", 16.0),  # before the window
        ("c", "2024-02-29", 5.0),  # no anchor
    ]
)


def test_align_on_anchor_sums_each_week_before_the_anchor() -> None:
    w = A.align_on_anchor(EVENTS, ANCHORS, date_col="date", value_col="count", weeks_before=4)
    assert list(w.columns) == [-4, -3, -2, -1]
    assert w.loc["a"].to_numpy().tolist() == [0.0, 0.0, 4.0, 3.0]
    assert w.loc["b"].to_numpy().tolist() == [0.0, 0.0, 0.0, 0.0]  # no events: no activity
    assert "c" not in w.index


def test_align_on_anchor_counts_rows_in_multi_week_bins() -> None:
    w = A.align_on_anchor(EVENTS, ANCHORS, date_col="date", weeks_before=4, weeks_per_bin=2)
    assert list(w.columns) == [-4, -2]
    assert w.loc["a"].to_numpy().tolist() == [0.0, 3.0]


def test_weeks_before_the_data_starts_are_missing_not_zero() -> None:
    per_account = pd.Series({"a": D("2024-02-10"), "b": D("2024-02-20")})
    w = A.align_on_anchor(
        EVENTS,
        ANCHORS,
        date_col="date",
        value_col="count",
        weeks_before=4,
        observed_from=per_account,
    )
    # week starts: -4 -> 02-02, -3 -> 02-09, -2 -> 02-16, -1 -> 02-23
    assert w.loc["a"].isna().to_numpy().tolist() == [True, True, False, False]
    assert w.loc["b"].isna().to_numpy().tolist() == [True, True, True, False]
    one_date = A.align_on_anchor(
        EVENTS, ANCHORS, date_col="date", weeks_before=4, observed_from=D("2024-02-16")
    )
    assert one_date.loc["a"].isna().to_numpy().tolist() == [True, True, False, False]


def test_align_on_anchor_rejects_bins_that_do_not_tile_the_window() -> None:
    with pytest.raises(ValueError, match="multiple"):
        A.align_on_anchor(EVENTS, ANCHORS, date_col="date", weeks_before=5, weeks_per_bin=2)


def test_relative_to_baseline_divides_by_the_own_level_and_drops_empty_baselines() -> None:
    wide = pd.DataFrame([[2.0, 2.0, 4.0, 1.0], [0.0, 0.0, 3.0, 3.0], [np.nan, 4.0, 2.0, 8.0]])
    r = A.relative_to_baseline(wide, baseline_bins=2)
    assert r.iloc[0].to_numpy().tolist() == [1.0, 1.0, 2.0, 0.5]
    assert r.iloc[1].isna().all()
    assert r.iloc[2].to_numpy().tolist()[1:] == [1.0, 0.5, 2.0]


def test_mean_curve_gives_mean_standard_error_and_count_per_column() -> None:
    c = A.mean_curve(pd.DataFrame({-1: [1.0, 3.0, np.nan]}))
    assert c.loc[-1].to_numpy().tolist() == [2.0, pytest.approx(1.0), 2.0]


# -- model review -----------------------------------------------------------------------
def test_slice_calibration_compares_mean_prediction_and_observed_rate() -> None:
    df = pd.DataFrame(
        {
            "y": [1.0, 0.0, 0.0, 1.0],
            "p": [0.5, 0.1, 0.3, 0.7],
            "tier": ["A", "A", "B", None],
        }
    )
    t = A.slice_calibration(df, "y", "p", ["tier"]).set_index("value")
    assert t["n"].to_dict() == {"<NA>": 1, "A": 2, "B": 1}
    assert t.loc["A", "mean_p"] == pytest.approx(0.3)
    assert t.loc["A", "observed_rate"] == 0.5
    assert t.loc["A", "gap"] == pytest.approx(0.2)
    assert t.loc["B", "gap"] == pytest.approx(-0.3)
    with pytest.raises(ValueError, match="region"):
        A.slice_calibration(df, "y", "p", ["region"])


def test_pick_examples_finds_the_catch_the_false_alarm_and_the_miss() -> None:
    y = [0, 1, 0, 1, 1]
    p = [0.9, 0.8, 0.1, 0.2, 0.5]
    assert A.pick_examples(y, p) == {"caught churner": 1, "false alarm": 0, "missed churner": 3}


def test_pick_examples_leaves_out_kinds_the_data_does_not_have() -> None:
    assert A.pick_examples([0, 1, 0], [0.3, 0.6, 0.9]) == {"caught churner": 1, "false alarm": 2}
    assert A.pick_examples([0, 0], [0.3, 0.6]) == {"false alarm": 1}
    with pytest.raises(ValueError, match="same length"):
        A.pick_examples([0, 1], [0.3])


def test_top_contributions_keep_the_strongest_and_sum_the_rest() -> None:
    values = pd.Series({"f1": 1.0, "f2": "x", "f3": 3.0, "f4": np.nan})
    t = A.top_contributions([0.1, -0.3, 0.05, 0.2], ["f1", "f2", "f3", "f4"], values, top=2)
    assert t["feature"].tolist() == ["f2", "f4", A.OTHER_FEATURES]
    assert t["value"].iloc[0] == "x"
    assert t["contribution"].tolist() == pytest.approx([-0.3, 0.2, 0.15])
    assert t["contribution"].sum() == pytest.approx(0.05)
    with pytest.raises(ValueError, match="3 contributions for 4"):
        A.top_contributions([0.1, 0.2, 0.3], ["f1", "f2", "f3", "f4"], values)


def test_mean_abs_contributions_rank_features_and_ignore_the_base_column() -> None:
    contrib = np.array([[0.5, -1.0, 9.0], [-0.5, 0.0, 9.0]])  # last column: base value
    imp = A.mean_abs_contributions(contrib, ["f1", "f2"])
    assert imp.to_dict() == {"f1": 0.5, "f2": 0.5}
    assert list(A.mean_abs_contributions(contrib[:, :2] * [1, 3], ["f1", "f2"]).index) == [
        "f2",
        "f1",
    ]


# -- plots ------------------------------------------------------------------------------
def test_every_plot_helper_draws_a_figure_that_saves_as_a_png(tmp_path: Path) -> None:
    o = orders(COHORT_ORDERS)
    as_of = D("2024-05-01")
    gaps = A.purchase_gaps(o, as_of)
    stats = A.gap_stats(gaps)
    rates = pd.DataFrame({"tier": ["A", "B"], "churn": [1.0, 0.0]})
    dated = pd.DataFrame({"as_of": [D("2024-01-01"), D("2024-02-01")], "churn": [1.0, 0.0]})
    curve = A.mean_curve(A.align_on_anchor(EVENTS, ANCHORS, date_col="date", weeks_before=4))
    frame = pd.DataFrame({"y": [1.0, 0.0, 1.0, 0.0], "p": [0.8, 0.2, 0.6, 0.4], "t": list("AABB")})
    from ka_ml.modeling.metrics import slice_metrics

    figures = {
        "activity": P.plot_monthly_activity(A.monthly_activity(o, as_of)),
        "cohorts": P.plot_cohort_retention(A.cohort_retention(o, as_of, 1), 1),
        "gaps": P.plot_purchase_gaps(gaps, stats, pd.Series({"a": "A", "c": "B"})),
        "gaps_no_groups": P.plot_purchase_gaps(gaps, stats),
        "rates": P.plot_churn_rates(
            {"tier": A.churn_rate_by(rates, "tier"), "date": A.churn_rate_by(dated, "as_of")}, 0.5
        ),
        "signals": P.plot_aligned_signals([P.SignalPanel("t", "y", {"churned": curve}, 1.0)]),
        "slices": P.plot_slice_review(
            slice_metrics(frame, "y", "p", ["t"]), A.slice_calibration(frame, "y", "p", ["t"])
        ),
        "accounts": P.plot_account_explanations(
            [
                P.AccountExplanation(
                    "x", A.top_contributions([0.1, -0.2], ["f1", "f2"], pd.Series(), 1)
                )
            ]
        ),
    }
    expected_axes = {"activity": 3, "rates": 2, "slices": 2, "accounts": 1, "signals": 1}
    for name, fig in figures.items():
        assert isinstance(fig, Figure)
        if name in expected_axes:
            assert len(fig.axes) == expected_axes[name], name
        path = P.save_figure(fig, tmp_path / "sub" / f"{name}.png", dpi=30)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_aligned_curves_average_each_group_on_its_own_anchors() -> None:
    groups = {"churned": ANCHORS[["a"]], "retained": ANCHORS[["b"]]}
    curves = A.aligned_curves(EVENTS, groups, date_col="date", value_col="count", weeks_before=4)
    assert curves["churned"]["mean"].to_numpy().tolist() == [0.0, 0.0, 4.0, 3.0]
    assert curves["retained"]["mean"].to_numpy().tolist() == [0.0, 0.0, 0.0, 0.0]
    relative = A.aligned_curves(
        EVENTS, groups, date_col="date", value_col="count", weeks_before=4, baseline_bins=3
    )
    # a's baseline is (0 + 0 + 4) / 3; b has no activity, hence no baseline
    assert relative["churned"]["mean"].to_numpy().tolist() == pytest.approx([0, 0, 3, 2.25])
    assert relative["retained"]["n"].to_numpy().tolist() == [0, 0, 0, 0]


def test_the_example_accounts_show_the_probability_they_were_picked_by_and_its_as_of() -> None:
    """Notebook 02 picked KA00896 as the false alarm by its out-of-time 0.892 but showed the
    champion's in-sample 0.755 and no date (the same account can be picked twice)."""
    rows = pd.DataFrame(
        {
            "account_id": ["a", "b", "a", "c"],
            "as_of": pd.to_datetime(["2026-01-01", "2026-01-01", "2026-02-01", "2026-02-01"]),
        }
    )
    y, p = np.array([1, 0, 0, 1]), np.array([0.7, 0.1, 0.892, 0.2])
    picks = A.pick_examples(y, p)
    out = A.example_accounts(picks, rows, y, p, p_model=[0.6, 0.755, 0.3])
    assert list(out["example"]) == ["caught churner", "false alarm", "missed churner"]
    assert list(out["account_id"]) == ["a", "a", "c"]
    assert list(out["as_of"]) == ["2026-01-01", "2026-02-01", "2026-02-01"]
    assert list(out["p_out_of_time"]) == [0.7, 0.892, 0.2]
    assert list(out["p_champion"]) == [0.6, 0.755, 0.3]
    assert list(out["churned"]) == [True, False, True]
