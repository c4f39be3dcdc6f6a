"""The discrete-time hazard model of the next order: censoring, expansion, curves, quantiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.exceptions import NotFittedError

from ka_ml.errors import ModelError
from ka_ml.modeling.timing import (
    TimingModel,
    anchor_cdf,
    expand_person_period,
    interval_edges,
    learnt_days,
    open_beyond,
    quantiles_from_cdf,
    within_from_cdf,
)
from ka_ml.training.timing import learnt_range_note

WINDOWS = [30, 60, 90]
EDGES = interval_edges(WINDOWS)  # 0, 7, 14, 21, 30, 45, 60, ...
FAST = {"num_leaves": 7, "min_child_samples": 100, "learning_rate": 0.1}
RATE = 1 / 40  # orders per day: a constant hazard, so P(within k) = 1 - exp(-k * RATE)


def exponential_world(
    n: int, rate: np.ndarray | float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Event times ~ Exp(rate) independently censored by Uniform(0, 120) days."""
    rng = np.random.default_rng(seed)
    t = rng.exponential(1 / np.asarray(rate, dtype=float), n)
    c = rng.uniform(0, 120, n)
    return np.minimum(t, c), t < c, rng.normal(size=n)


# -- person-period expansion ------------------------------------------------------------
def test_person_period_rows_labels_and_weights_on_a_hand_example() -> None:
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0], "recency_days": [5.0, 6.0, 7.0]}, index=[10, 11, 12])
    X["gap_median_days"] = [10.0, np.nan, 0.0]
    duration = np.array([10.0, 10.0, 0.0])
    event = np.array([True, False, True])
    pp, y, w = expand_person_period(X, duration, event, np.array([0.0, 7.0, 14.0, 21.0]))

    expected = pd.DataFrame(
        {
            "x": [1.0, 1.0, 2.0, 2.0, 3.0],
            "recency_days": [5.0, 5.0, 6.0, 6.0, 7.0],
            "gap_median_days": [10.0, 10.0, np.nan, np.nan, 0.0],
            "t_start": [0.0, 7.0, 0.0, 7.0, 0.0],
            "t_width": [7.0, 7.0, 7.0, 7.0, 7.0],
            "recency_at_t": [5.0, 12.0, 6.0, 13.0, 7.0],
            # recency relative to the typical gap; undefined without a positive gap
            "overdue_at_t": [0.5, 1.2, np.nan, np.nan, np.nan],
        }
    )
    pd.testing.assert_frame_equal(pp, expected)
    # event at day 10: not yet in [0,7), ordered in [7,14)
    # censored at day 10: survived [0,7), watched 3 of the 7 days of [7,14), no order seen
    # event at day 0: ordered in the very first interval
    np.testing.assert_array_equal(y, [0.0, 1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(w, [1.0, 1.0, 1.0, 3 / 7, 1.0])


def test_censoring_on_an_edge_or_at_day_zero_adds_no_zero_weight_rows() -> None:
    X = pd.DataFrame({"x": [1.0, 2.0]})
    pp, y, w = expand_person_period(
        X, np.array([7.0, 0.0]), np.array([False, False]), np.array([0.0, 7.0, 14.0])
    )
    assert list(pp["x"]) == [1.0] and list(pp["t_start"]) == [0.0]
    assert list(y) == [0.0] and list(w) == [1.0]


def test_an_order_beyond_the_last_edge_counts_as_surviving_every_interval() -> None:
    X = pd.DataFrame({"x": [1.0]})
    pp, y, w = expand_person_period(
        X, np.array([400.0]), np.array([True]), np.array([0.0, 7.0, 14.0])
    )
    assert list(pp["t_start"]) == [0.0, 7.0]
    assert list(y) == [0.0, 0.0] and list(w) == [1.0, 1.0]


# -- censoring handled correctly: a constructed case with a known answer -----------------
def test_constant_hazard_with_censoring_recovers_the_exponential_answer() -> None:
    """Why censoring matters: every shortcut misses 1 - exp(-30 rate), the model does not.

    Dropping censored rows keeps only the orders that came before the censoring time (too
    early on average); treating the censoring time as an order invents orders; treating a
    censored account as "no order within 30 days" ignores that it was not watched that long.
    """
    duration, event, noise = exponential_world(4000, RATE, seed=0)
    X = pd.DataFrame({"noise": noise})
    model = TimingModel(edges=EDGES, params=FAST, random_state=0).fit(
        X, duration, event, num_boost_round=100
    )
    within = model.predict_within(X, WINDOWS).mean()

    for k in WINDOWS:
        assert within[f"p_purchase_{k}d"] == pytest.approx(1 - np.exp(-k * RATE), abs=0.03)

    truth = 1 - np.exp(-30 * RATE)  # 0.528
    drop_censored = np.mean(duration[event] < 30)
    censoring_as_order = np.mean(duration < 30)
    censored_as_never = np.mean(event & (duration < 30))
    assert drop_censored - truth > 0.1
    assert censoring_as_order - truth > 0.08
    assert truth - censored_as_never > 0.05


def test_a_covariate_that_doubles_the_hazard_raises_p_within_k() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, 4000)
    duration, event, _ = exponential_world(4000, RATE * 2.0**x, seed=1)
    X = pd.DataFrame({"x": x.astype(float)})
    model = TimingModel(edges=EDGES, params=FAST, random_state=0).fit(
        X, duration, event, num_boost_round=100
    )
    within = model.predict_within(X, WINDOWS)
    doubled, base = within[x == 1], within[x == 0]
    assert (doubled.min() > base.max()).all()
    for k in WINDOWS:
        col = f"p_purchase_{k}d"
        assert doubled[col].mean() == pytest.approx(1 - np.exp(-2 * k * RATE), abs=0.03)
        assert base[col].mean() == pytest.approx(1 - np.exp(-k * RATE), abs=0.03)


def test_fit_refuses_data_without_a_single_observed_order() -> None:
    X = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(ModelError, match="No next order is observed"):
        TimingModel(edges=EDGES, params=FAST).fit(
            X, np.array([10.0, 20.0]), np.array([False, False])
        )


def test_an_unfitted_model_says_to_fit_first() -> None:
    with pytest.raises(NotFittedError, match="Call 'fit'"):
        TimingModel(edges=EDGES, params=FAST).cdf(pd.DataFrame({"x": [1.0]}))


# -- curves and quantiles of a fitted model ---------------------------------------------
@pytest.fixture(scope="module")
def fitted() -> TimingModel:
    """A small model using the time-varying covariates (recency, typical gap) too."""
    rng = np.random.default_rng(2)
    n = 1500
    gap = rng.uniform(10, 90, n)
    recency = rng.uniform(0, 120, n)
    duration, event, noise = exponential_world(n, 1 / gap, seed=2)
    X = pd.DataFrame({"noise": noise, "recency_days": recency, "gap_median_days": gap})
    X["segment"] = pd.Series(rng.choice(["a", "b"], n), dtype="str")
    return TimingModel(edges=EDGES, params=FAST, random_state=0).fit(
        X, duration, event, num_boost_round=40
    )


row_values = st.one_of(st.none(), st.floats(-1e4, 1e4, allow_nan=False))


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(row_values, row_values, row_values, st.sampled_from(["a", "b", "new"])),
        min_size=1,
        max_size=20,
    )
)
def test_p_within_k_is_non_decreasing_in_k_for_every_row_of_a_fitted_model(
    fitted: TimingModel, rows: list[tuple]
) -> None:
    X = pd.DataFrame(rows, columns=["noise", "recency_days", "gap_median_days", "segment"])
    X[["noise", "recency_days", "gap_median_days"]] = X[
        ["noise", "recency_days", "gap_median_days"]
    ].astype(float)
    within = fitted.predict_within(X, WINDOWS).to_numpy()
    assert np.all((within >= 0) & (within <= 1))
    assert np.all(np.diff(within, axis=1) >= 0)
    q = fitted.predict_quantiles(X).to_numpy()
    finite = np.isfinite(q)
    # an open quantile stays open for every higher q; finite ones are ordered
    assert np.all(finite[:, 1:] <= finite[:, :-1])
    both = finite[:, 1:] & finite[:, :-1]
    assert np.all(np.diff(q, axis=1)[both] >= 0)


def test_scores_do_not_depend_on_the_index_even_when_it_repeats(fitted: TimingModel) -> None:
    X = pd.DataFrame(
        {"noise": [0.1, -0.3, 2.0], "recency_days": [5.0, 50.0, 100.0]}
        | {"gap_median_days": [30.0, 30.0, 20.0], "segment": ["a", "b", "a"]}
    )
    plain = fitted.cdf(X)
    X.index = [7, 7, 3]
    np.testing.assert_array_equal(fitted.cdf(X), plain)
    assert list(fitted.predict_within(X, WINDOWS).index) == [7, 7, 3]


hazards = arrays(
    float, st.tuples(st.integers(1, 8), st.just(len(EDGES) - 1)), elements=st.floats(0, 1)
)


@settings(max_examples=100, deadline=None)
@given(h=hazards)
def test_within_from_cdf_reads_the_curve_at_each_window_edge(h: np.ndarray) -> None:
    F = 1 - np.cumprod(1 - h, axis=1)
    within = within_from_cdf(F, EDGES, WINDOWS).to_numpy()
    assert np.all(np.diff(within, axis=1) >= 0)
    for i, k in enumerate(WINDOWS):
        np.testing.assert_array_equal(within[:, i], F[:, list(EDGES).index(k) - 1])


def test_within_from_cdf_rejects_a_window_that_is_not_an_edge() -> None:
    with pytest.raises(ModelError, match="Window 31 is not an interval edge"):
        within_from_cdf(np.zeros((1, len(EDGES) - 1)), EDGES, [31])


@settings(max_examples=100, deadline=None)
@given(h=hazards)
def test_quantiles_are_ordered_q10_q50_q90(h: np.ndarray) -> None:
    F = 1 - np.cumprod(1 - h, axis=1)
    q = quantiles_from_cdf(F, EDGES, (0.1, 0.5, 0.9))
    for lo, hi in (("q10", "q50"), ("q50", "q90")):
        both = q[lo].notna() & q[hi].notna()
        assert (q.loc[both, lo] <= q.loc[both, hi]).all()
        assert not (q[lo].isna() & q[hi].notna()).any()
    reached = F[:, -1] >= 0.9
    assert (q["q90"].notna().to_numpy() == reached).all()


def test_quantiles_interpolate_linearly_inside_intervals_by_hand() -> None:
    edges = np.array([0.0, 7.0, 14.0, 21.0, 30.0])
    F = np.array([[0.1, 0.3, 0.5, 0.8], [0.0, 0.0, 0.0, 0.05]])
    q = quantiles_from_cdf(F, edges, (0.05, 0.1, 0.4, 0.65, 0.9), index=pd.Index(["a", "b"]))
    # row a: 0.05 halfway to F(7)=0.1 -> 3.5; 0.4 halfway 0.3..0.5 over [14, 21) -> 17.5;
    # 0.65 halfway 0.5..0.8 over [21, 30) -> 25.5; 0.9 never reached -> open (NaN)
    np.testing.assert_array_equal(q.iloc[0].to_numpy(), [3.5, 7.0, 17.5, 25.5, np.nan])
    # row b: only 0.05 is reached, exactly at the last edge
    assert q.loc["b", "q05"] == 30.0
    assert q.loc["b", ["q10", "q40", "q65", "q90"]].isna().all()


# -- the learnt range -------------------------------------------------------------------
def test_the_learnt_range_is_the_last_edge_the_training_rows_were_watched_to() -> None:
    assert learnt_days(EDGES, np.array([3.0, 217.0, 50.0])) == 180
    assert learnt_days(EDGES, np.array([365.0])) == 365
    assert learnt_days(EDGES, np.array([400.0, 2.0])) == 365
    assert learnt_days(EDGES, np.array([90.0, np.nan])) == 90
    assert learnt_days(EDGES, np.array([5.0])) == 7  # no interval reached whole: the first


def test_open_beyond_takes_one_limit_or_one_per_row() -> None:
    q = pd.DataFrame({"q10": [5.0, 50.0, np.nan], "q90": [100.0, 200.0, np.nan]})
    one = open_beyond(q, 90)
    assert one["q10"].tolist()[:2] == [5.0, 50.0] and one["q90"].isna().all()
    rows = open_beyond(q, np.array([120.0, 40.0, 365.0]))
    assert rows.loc[0].tolist() == [5.0, 100.0]
    assert rows.loc[1].isna().all() and rows.loc[2].isna().all()


def test_dates_past_the_learnt_range_are_open_and_the_others_unchanged() -> None:
    """Watched at most 120 days, the model has no interval past 90 learnt: a median the
    trees extrapolate past it is open; watched 400 days, the same accounts get dates."""
    rng = np.random.default_rng(5)
    n = 3000
    t = rng.exponential(150.0, n)  # median 104 days: many medians past 90
    X = pd.DataFrame({"noise": rng.normal(size=n)})
    for watched, learnt in ((120.0, 90.0), (400.0, 365.0)):
        c = rng.uniform(0, watched, n)
        model = TimingModel(edges=EDGES, params=FAST, random_state=0).fit(
            X, np.minimum(t, c), t < c, num_boost_round=30
        )
        assert model.learnt_days_ == learnt
        full = quantiles_from_cdf(model.cdf(X), EDGES, (0.1, 0.5, 0.9), index=X.index)
        cut = model.predict_quantiles(X)
        frame = model.predict_frame(X, WINDOWS)
        past = full.to_numpy() > learnt
        assert cut.to_numpy()[past].size == 0 or np.isnan(cut.to_numpy()[past]).all()
        np.testing.assert_array_equal(cut.to_numpy()[~past], full.to_numpy()[~past])
        np.testing.assert_array_equal(frame[["q10", "q50", "q90"]].to_numpy(), cut.to_numpy())
        if learnt == 90.0:
            assert (full["q50"] > 90).mean() > 0.3  # the cut had medians to open
            assert "up to 90 days ahead, not 365" in str(learnt_range_note(model))
        else:
            assert learnt_range_note(model) is None
            assert np.isfinite(cut["q50"]).all()


# -- anchoring the curve to the churn model ---------------------------------------------
def test_anchoring_a_constant_hazard_by_hand() -> None:
    """S(t) = exp(-t/40) anchored to S(90) = 0.5 is S(t) = 0.5 ** (t / 90) up to 90 days
    (the rate becomes log(2)/90: proportional in the cumulative hazard), and after it the
    model's own rate again: S(t) = 0.5 * exp(-(t - 90) / 40)."""
    F = 1 - np.exp(-EDGES[1:] * RATE)[None, :]
    out = anchor_cdf(np.vstack([F, F]), EDGES, np.array([0.5, 0.25]), 90)
    t = EDGES[1:]
    for row, p in ((0, 0.5), (1, 0.25)):
        want = np.where(t <= 90, p ** (t / 90), p * np.exp(-(t - 90) * RATE))
        np.testing.assert_allclose(1 - out[row], want, rtol=1e-12)
    assert (t > 90).sum() >= 3  # the grid goes on after the horizon
    within = within_from_cdf(out, EDGES, WINDOWS)
    np.testing.assert_allclose(within["p_purchase_90d"], [0.5, 0.75])


@settings(max_examples=100, deadline=None)
@given(h=hazards, p=st.floats(0, 1))
def test_an_anchored_curve_is_a_cdf_that_hits_the_churn_probability(
    h: np.ndarray, p: float
) -> None:
    F = 1 - np.cumprod(1 - h, axis=1)
    out = anchor_cdf(F, EDGES, np.full(len(F), p), 90)
    assert np.all((out >= 0) & (out <= 1))
    assert np.all(np.diff(out, axis=1) >= -1e-12)
    k = list(EDGES).index(90) - 1
    np.testing.assert_allclose(out[:, k], 1 - np.clip(p, 1e-9, 1 - 1e-9), atol=1e-6)
    # after the horizon the hazard model's own conditional chances of an order
    s_own, s_new = np.clip(1 - F, 1e-9, 1.0), 1 - out  # the survivals anchoring reads
    # (rows certain of an order before 90 days keep the scaled curve; ratios of survivals
    # near 0 are left out, where 1 - F has lost its digits)
    ok = (s_own[:, k] > 1e-6) & (s_new[:, k] > 1e-6)
    np.testing.assert_allclose(
        (s_new[:, k + 1 :] / np.maximum(s_new[:, [k]], 1e-300))[ok],
        (s_own[:, k + 1 :] / np.maximum(s_own[:, [k]], 1e-300))[ok],
        rtol=1e-6,
        atol=1e-6,
    )


def test_anchoring_refuses_a_horizon_that_is_not_an_edge() -> None:
    with pytest.raises(ModelError, match="not an interval edge"):
        anchor_cdf(np.full((1, len(EDGES) - 1), 0.5), EDGES, np.array([0.5]), 91)


def test_predict_frame_anchors_only_a_model_trained_for_it(fitted: TimingModel) -> None:
    X = pd.DataFrame(
        {"noise": [0.1, -0.3], "recency_days": [5.0, 100.0]}
        | {"gap_median_days": [30.0, 20.0], "segment": ["a", "b"]}
    )
    p_churn = np.array([0.2, 0.9])
    own = fitted.predict_frame(X, WINDOWS)
    assert fitted.anchor_days_ is None
    pd.testing.assert_frame_equal(fitted.predict_frame(X, WINDOWS, p_churn), own)
    fitted.attach(anchor_days=90)
    try:
        anchored = fitted.predict_frame(X, WINDOWS, p_churn)
        np.testing.assert_allclose(anchored["p_purchase_90d"], 1 - p_churn)
        assert np.all(np.diff(anchored[[f"p_purchase_{k}d" for k in WINDOWS]], axis=1) >= 0)
        # without churn probabilities (e.g. the timing model served alone): its own curve
        pd.testing.assert_frame_equal(fitted.predict_frame(X, WINDOWS), own)
    finally:
        fitted.anchor_days_ = None


def test_the_frame_from_curves_already_computed_is_the_predicted_frame(
    fitted: TimingModel,
) -> None:
    X = pd.DataFrame(
        {"noise": [0.1, -0.3, 1.0], "recency_days": [5.0, 100.0, 40.0]}
        | {"gap_median_days": [30.0, 20.0, 60.0], "segment": ["a", "b", "new"]},
        index=[4, 4, 9],
    )
    levels = fitted.interval_levels_
    fitted.attach(interval_levels=(0.05, 0.95))  # the levels come from the model, as there
    try:
        frame = fitted.frame_from_cdf(fitted.cdf(X), WINDOWS, index=X.index)
        pd.testing.assert_frame_equal(frame, fitted.predict_frame(X, WINDOWS), check_exact=True)
    finally:
        fitted.interval_levels_ = levels


def test_the_anchor_is_the_horizon_where_churn_means_no_order() -> None:
    """Seen on a user's portfolio with contracts: one contract anywhere switched the anchor
    off for every account, and silent accounts without a contract read 'P(order within 90
    days) 96-98%' (the hazard's own curve) beside a churn risk of 74%."""
    from ka_ml.config import Config
    from ka_ml.training.timing import timing_anchor

    cfg = Config()
    h = cfg.labels.horizon_days
    ts = pd.DataFrame({"churn_definition": ["no_order", "no_order", None]})
    assert timing_anchor(ts, cfg, EDGES) == (h, False)
    mixed = pd.DataFrame({"churn_definition": ["no_order", "contract"]})
    assert timing_anchor(mixed, cfg, EDGES) == (h, True)  # anchored, contract rows apart
    only = pd.DataFrame({"churn_definition": ["contract", "revenue_drop"]})
    assert timing_anchor(only, cfg, EDGES) == (None, False)
    assert timing_anchor(ts, cfg, np.array([0.0, 30.0, 60.0])) == (None, False)  # not an edge


def test_rows_judged_by_their_contract_keep_the_hazards_own_curve(fitted: TimingModel) -> None:
    from ka_ml.modeling.timing import anchor_cdf

    X = pd.DataFrame(
        {
            "noise": np.zeros(6),
            "recency_days": [5.0, 20.0, 40.0, 60.0, 80.0, 100.0],
            "gap_median_days": np.full(6, 30.0),
            "segment": pd.Series(["a"] * 6, dtype="str"),
        }
    )
    X["has_active_contract"] = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    X["contract_days_to_end"] = [200.0, 10.0, -30.0, np.nan, np.nan, np.nan]
    p = np.full(6, 0.8)
    own = fitted.cdf(X)
    anchored = anchor_cdf(own, fitted.edges_, p, 90)
    k = int(np.searchsorted(fitted.edges_, 90)) - 1
    np.testing.assert_allclose(anchored[:, k], 0.2)  # S(90) = P(no order) = 0.8
    np.testing.assert_array_equal(anchor_cdf(own, fitted.edges_, np.full(6, np.nan), 90), own)
    days, skips = fitted.anchor_days_, fitted.anchor_skips_contracts_
    try:
        fitted.attach(anchor_days=90, anchor_skips_contracts=True)
        F = fitted.anchored_cdf(X, p)
        np.testing.assert_array_equal(F[:2], own[:2])  # running, or ending after the as-of
        np.testing.assert_allclose(F[2:], anchored[2:])  # lapsed contract, none: anchored
        fitted.attach(anchor_skips_contracts=False)
        np.testing.assert_allclose(fitted.anchored_cdf(X, p), anchored)
    finally:
        fitted.anchor_days_, fitted.anchor_skips_contracts_ = days, skips


# -- interval coverage under a short follow-up -------------------------------------------
def test_completed_coverage_recovers_the_true_share_that_determinable_rows_miss() -> None:
    """Orders ~ Exp(1/40) (a quarter never reorder), every row followed for 30 days only.
    The true share of orders within 365 days that fall in [q10, q90] of the exact curve is
    known; counting only the determinable rows (orders seen by day 30) selects early orders
    and is far off, the completed estimate recovers it."""
    from ka_ml.modeling.evaluate import completed_interval_coverage, interval_coverage
    from ka_ml.modeling.timing import cdf_at

    rng = np.random.default_rng(0)
    n = 40_000
    t = np.where(rng.random(n) < 0.75, rng.exponential(40.0, n), np.inf)
    d, e = np.minimum(t, 30.0), t < 30.0
    F = np.tile(0.75 * (1 - np.exp(-EDGES[1:] / 40.0)), (n, 1))
    q = quantiles_from_cdf(F, EDGES, (0.1, 0.9))
    lo, hi = q.iloc[:, 0].to_numpy(), q.iloc[:, 1].to_numpy()
    assert np.isnan(hi).all()  # F tops out at 0.75: the interval is open
    f = cdf_at(F[:1], EDGES, np.floor(lo[:1]))[0]  # from the start of the p10 date's day
    truth = (0.75 * (1 - np.exp(-365 / 40)) - f) / (0.75 * (1 - np.exp(-365 / 40)))
    done = completed_interval_coverage(F, EDGES, d, e, lo, hi)
    seen, _ = interval_coverage(d, e, lo, hi)
    assert done == pytest.approx(truth, abs=0.01)
    assert seen < truth - 0.08  # early orders fall before p10 more often


def test_completed_coverage_equals_the_plain_share_when_every_row_is_determinable() -> None:
    from ka_ml.modeling.evaluate import completed_interval_coverage, interval_coverage

    F = np.tile(1 - np.exp(-EDGES[1:] / 20.0), (4, 1))
    d = np.array([3.0, 10.0, 50.0, 400.0])
    e = np.array([True, True, True, False])
    lo, hi = np.full(4, 5.0), np.full(4, 40.0)
    seen, n = interval_coverage(d, e, lo, hi)
    assert n == 4 and seen == pytest.approx(0.25)
    assert completed_interval_coverage(F, EDGES, d, e, lo, hi) == pytest.approx(0.25)


def test_the_share_ordered_by_the_date_counts_only_rows_whose_answer_is_known() -> None:
    from ka_ml.modeling.evaluate import by_day_share

    q = np.array([10.6, 10.6, 10.6, 10.6, 10.6, np.nan])  # day 10
    d = np.array([4.0, 10.0, 11.0, 30.0, 6.0, 1.0])
    e = np.array([True, True, True, False, False, True])
    # ordered by day 10: yes, yes (on it), no; followed past it: no; watched only to day
    # 6 (unknown) and no date: left out
    assert by_day_share(d, e, q) == (pytest.approx(0.5), 4)
    assert np.isnan(by_day_share(d[4:], e[4:], q[4:])[0])


def test_forecast_dates_name_the_day_a_quantile_falls_on() -> None:
    """A weekly buyer certain to order within the week, any day alike (days 0-6 after the
    as-of, 0 the as-of day): its median day is 3 (an order by it 4 times in 7, before it 3),
    its p10 day 0 and its p90 day 6. The dates were ceil(t): day 4, and a p10 of day 1 that
    never covered an order on the as-of day (a user's weekly buyers ordered before the p10
    date 39% of the time). Coverage is judged on the same days, ends included."""
    from ka_ml.modeling.evaluate import interval_coverage
    from ka_ml.modeling.timing import forecast_day

    edges = np.array([0.0, 7.0, 14.0])
    F = np.array([[1.0, 1.0]])
    q = quantiles_from_cdf(F, edges, (0.1, 0.5, 0.9))
    assert q.to_numpy().tolist() == [[pytest.approx(0.7), 3.5, pytest.approx(6.3)]]
    assert forecast_day(q.to_numpy()[0]).tolist() == [0.0, 3.0, 6.0]
    days = np.arange(7.0)
    lo, hi = np.full(7, q.iloc[0, 0]), np.full(7, q.iloc[0, 2])
    assert interval_coverage(days, np.ones(7, bool), lo, hi) == (1.0, 7)
    assert np.isnan(forecast_day(np.array([np.nan]))).all()  # open stays open


def test_next_order_dates_are_judged_beside_the_own_cycle_rule() -> None:
    """The rule: last order + median gap (0 once passed), NaN without a gap. Judged on the
    rows both date a week before their follow-up ends, whether the order came or not (a row
    with no order: an error of at least the days seen past the date); the model's day is
    floor(q50)."""
    from ka_ml.modeling.evaluate import cycle_rule_days, date_errors

    test = pd.DataFrame(
        {
            "gap_median_days": [7.0, 30.0, np.nan, 10.0, 20.0, 5.0, 9.0],
            "recency_days": [3.0, 40.0, 5, 2, 1, 1, 1],
        }
    )
    rule = cycle_rule_days(test)
    np.testing.assert_array_equal(rule[[0, 1, 3, 4, 5, 6]], [4.0, 0.0, 8.0, 19.0, 4.0, 8.0])
    assert np.isnan(rule[2])
    model_q50 = np.array([4.9, 2.2, 6.0, np.nan, 30.0, 10.0, 3.0])
    d = np.array([4.0, 12.0, 6.0, 8.0, 95.0, 20.0, 95.0])
    e = np.array([True, True, True, True, False, True, False])
    f = np.array([95.0, 95.0, 95.0, 95.0, 95.0, 16.0, 95.0])
    out = date_errors(model_q50, rule, d, e, f)
    # rows 0, 1, 4 and 6: row 2 has no rule date, row 3 no model date, row 5's model date
    # (day 10) is not a week inside its 16-day follow-up (it ordered on day 20: it counts
    # only because it came, so it is left out whatever happened)
    assert out["date_rows"] == 4 and out["date_ordered_share"] == 0.5
    # errors: model 0, 10, >= 65, >= 92; rule 0, 12, >= 76, >= 87
    assert out["date_median_error_days"] == np.median([0.0, 10.0, 65.0, 92.0])
    assert out["date_median_error_days_cycle_rule"] == np.median([0.0, 12.0, 76.0, 87.0])
    assert out["date_close_share"] == 0.25 and out["date_close_share_cycle_rule"] == 0.25
    # the rows whose order came alone would have said 0.5 and 5 days: the outcome chose them
    assert date_errors(model_q50, rule, d, e, np.full(7, 5.0)) == {}


def test_the_console_says_when_the_rule_dates_better() -> None:
    from ka_ml.reporting.console import date_line

    t = {
        "date_rows": 1234.0,
        "date_ordered_share": 0.77,
        "date_median_error_days": 3.0,
        "date_median_error_days_cycle_rule": 4.0,
        "date_close_share": 0.86,
        "date_close_share_cycle_rule": 0.81,
    }
    line = date_line(t)
    assert line is not None and "1,234 test rows" in line and "rule 4" in line
    assert "77% of them ordered within it" in line and "at least" in line
    assert "dates these accounts better" not in line
    worse = date_line({**t, "date_close_share": 0.7})
    assert worse is not None and "dates these accounts better: it comes within a week" in worse
    both = date_line({**t, "date_close_share": 0.7, "date_median_error_days": 5.0})
    assert both is not None and "its median error is smaller and it comes within" in both
    assert date_line({}) is None


def test_the_console_says_what_the_coverage_figure_counts() -> None:
    """The table's coverage counts only the rows the follow-up decided; the line beside it
    gives the completed figure the levels were set on, says it is a fit, and explains a
    large gap (CDNOW before 1997-09-30: 0.567 decided, 0.790 completed, >99% open)."""
    from ka_ml.reporting.console import coverage_line

    t = {
        "p10_p90_coverage": 0.5667,
        "coverage_n": 13768.0,
        "p10_p90_coverage_completed": 0.7902,
        "open_interval_share": 0.99979,
    }
    line = coverage_line(t)
    assert line is not None
    assert "0.567 on the 13,768 test rows" in line and "0.790 with the rows" in line
    assert "a fit, not a test" in line and "bring to 0.80" in line
    assert "decides early orders first" in line  # 0.22 apart: explained
    assert ">99% of the intervals open-ended" in line  # not a rounded "100%"
    close = coverage_line({**t, "p10_p90_coverage": 0.78, "open_interval_share": 0.0})
    assert close is not None and "early orders" not in close and "open-ended" not in close
    alone = coverage_line({"p10_p90_coverage": 0.8, "coverage_n": 10.0})
    assert alone == (
        "p10-p90 coverage 0.800 on the 10 test rows whose next order the follow-up decided "
        "(an order seen, or none by the p90 date)"
    )
    assert coverage_line({}) is None
