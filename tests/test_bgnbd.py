"""BG/NBD: the likelihood by hand, closed forms against simulation, and the CDNOW benchmark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from ka_ml.errors import ModelError
from ka_ml.modeling.bgnbd import (
    BGNBD,
    _mean_ll_and_grad,
    bgnbd_log_likelihood,
    rfm_summary,
)

PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # Fader et al. 2005, Table 1
CDNOW = Path("/work/shared/datasets/cdnow/CDNOW_master.txt.gz")


def simulate_bgnbd(
    n: int,
    *,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T_range: tuple[float, float],
    holdout: float = 0.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Customers from the BG/NBD story, vectorised over customers (loop over purchases).

    Time 0 is each customer's first purchase. While alive they buy at rate lambda; after
    each repeat purchase they drop out with probability p. Returns the calibration summary
    (x, t_x, T) and the number of purchases in the holdout (T, T + holdout].
    """
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    T = rng.uniform(*T_range, n)
    end = T + holdout
    x = np.zeros(n)
    t_x = np.zeros(n)
    x_holdout = np.zeros(n)
    now = np.zeros(n)
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        now[idx] += rng.exponential(1.0 / lam[idx])
        bought = now[idx] <= end[idx]
        active[idx[~bought]] = False
        buyers = idx[bought]
        in_calibration = now[buyers] <= T[buyers]
        cal = buyers[in_calibration]
        x[cal] += 1
        t_x[cal] = now[cal]
        x_holdout[buyers[~in_calibration]] += 1
        active[buyers[rng.random(len(buyers)) < p[buyers]]] = False
    return {"x": x, "t_x": t_x, "T": T, "x_holdout": x_holdout}


TRUE = {"r": 1.0, "alpha": 5.0, "a": 1.5, "b": 6.0}


@pytest.fixture(scope="module")
def simulated() -> dict[str, np.ndarray]:
    return simulate_bgnbd(5000, **TRUE, T_range=(30.0, 104.0), holdout=26.0, seed=7)


@pytest.fixture(scope="module")
def fitted_on_simulated(simulated: dict[str, np.ndarray]) -> BGNBD:
    return BGNBD().fit(simulated["x"], simulated["t_x"], simulated["T"])


def fitted_with(params: dict[str, float]) -> BGNBD:
    """A model carrying given parameters, to test the closed forms without fitting noise."""
    model = BGNBD()
    model.params_ = dict(params)
    return model


# -- the likelihood ---------------------------------------------------------------------
def test_log_likelihood_without_repeat_purchase_is_r_log_alpha_over_alpha_plus_T() -> None:
    # x = 0: only the "alive" term, B(a,b)/B(a,b) = Gamma(r)/Gamma(r) = 1.
    T = np.array([10.0, 38.86])
    ll = bgnbd_log_likelihood([0, 0], [0, 0], T, **PUBLISHED)
    expected = PUBLISHED["r"] * np.log(PUBLISHED["alpha"] / (PUBLISHED["alpha"] + T))
    np.testing.assert_allclose(ll, expected, rtol=1e-12)


def test_log_likelihood_with_one_repeat_purchase_matches_the_hand_formula() -> None:
    # x = 1: Gamma(r+1)/Gamma(r) = r, B(a,b+1)/B(a,b) = b/(a+b), B(a+1,b)/B(a,b) = a/(a+b).
    r, alpha, a, b = PUBLISHED.values()
    t_x, T = 12.0, 30.0
    by_hand = (
        r
        * alpha**r
        * (b / (a + b) * (alpha + T) ** -(r + 1) + a / (a + b) * (alpha + t_x) ** -(r + 1))
    )
    ll = bgnbd_log_likelihood([1], [t_x], [T], **PUBLISHED)
    np.testing.assert_allclose(ll, [np.log(by_hand)], rtol=1e-12)


def test_log_likelihood_stays_finite_for_very_frequent_buyers() -> None:
    ll = bgnbd_log_likelihood([5000], [99.0], [100.0], **PUBLISHED)
    assert np.isfinite(ll).all()


def test_analytic_gradient_matches_finite_differences(simulated: dict[str, np.ndarray]) -> None:
    x, t_x, T = simulated["x"][:500], simulated["t_x"][:500] / 10, simulated["T"][:500] / 10
    w = np.full(len(x), 1 / len(x))
    for theta in (np.zeros(4), np.log([0.3, 2.0, 0.8, 2.5]), np.array([1.0, -1.0, 2.0, 0.5])):
        err = check_grad(
            lambda th: _mean_ll_and_grad(th, x, t_x, T, w)[0],
            lambda th: _mean_ll_and_grad(th, x, t_x, T, w)[1],
            theta,
        )
        assert err < 1e-5


# -- closed forms -----------------------------------------------------------------------
def test_prob_alive_is_one_without_repeat_purchase_and_matches_the_formula_otherwise() -> None:
    model = fitted_with(PUBLISHED)
    r, alpha, a, b = PUBLISHED.values()
    p = model.prob_alive([0, 2], [0.0, 10.0], [30.0, 30.0])
    by_hand = 1 / (1 + a / (b + 2 - 1) * ((alpha + 30) / (alpha + 10)) ** (r + 2))
    np.testing.assert_allclose(p, [1.0, by_hand], rtol=1e-12)


def test_a_long_silence_after_frequent_buying_lowers_prob_alive() -> None:
    model = fitted_with(PUBLISHED)
    p = model.prob_alive([5, 5, 5], [35.0, 20.0, 5.0], [36.0, 36.0, 36.0])
    assert p[0] > p[1] > p[2]
    assert p[2] < 0.2 < 0.8 < p[0]


def test_prob_no_purchase_is_one_at_zero_and_decreases_towards_prob_dead() -> None:
    model = fitted_with(PUBLISHED)
    hist = ([0, 3], [0.0, 20.0], [30.0, 30.0])
    np.testing.assert_allclose(model.prob_no_purchase(0.0, *hist), [1.0, 1.0])
    curve = np.array([model.prob_no_purchase(t, *hist) for t in (1.0, 5.0, 20.0, 100.0)])
    assert (np.diff(curve, axis=0) < 0).all()
    far = model.prob_no_purchase(1e40, *hist)  # r is small: the gamma term decays slowly
    np.testing.assert_allclose(far, 1 - model.prob_alive(*hist), atol=1e-6)


def test_prob_no_purchase_of_a_one_time_buyer_is_the_gamma_posterior_term() -> None:
    model = fitted_with(PUBLISHED)
    r, alpha = PUBLISHED["r"], PUBLISHED["alpha"]
    p0 = model.prob_no_purchase(13.0, [0], [0.0], [20.0])
    np.testing.assert_allclose(p0, [((alpha + 20) / (alpha + 20 + 13)) ** r], rtol=1e-12)


def test_prob_purchase_within_is_the_complement_and_non_decreasing_in_the_window() -> None:
    model = fitted_with(PUBLISHED)
    hist = ([0, 1, 7], [0.0, 3.0, 25.0], [30.0, 30.0, 30.0])
    within = np.array([model.prob_purchase_within(t, *hist) for t in (4.0, 8.0, 13.0)])
    assert (np.diff(within, axis=0) >= 0).all()
    np.testing.assert_allclose(within[0], 1 - model.prob_no_purchase(4.0, *hist))


def test_expected_purchases_of_heavy_buyers_stay_finite_and_grow_with_frequency() -> None:
    model = fitted_with(PUBLISHED)
    x = np.array([0, 1, 5, 20, 100, 500, 2000])
    expected = model.expected_purchases(39.0, x, np.where(x > 0, 39.0, 0.0), np.full(7, 39.0))
    assert np.isfinite(expected).all()
    assert (np.diff(expected) > 0).all()
    # 2000 purchases in 39 weeks, the last just now: the posterior pace (r+x)/(alpha+T)
    # would give ~1782 more; drop-out after each of them can only lower that.
    pace = (PUBLISHED["r"] + 2000) / (PUBLISHED["alpha"] + 39.0) * 39.0
    assert 0.5 * pace < expected[-1] < pace


def test_closed_forms_match_what_simulated_customers_do_in_the_holdout(
    simulated: dict[str, np.ndarray],
) -> None:
    # True parameters, so only the formulas are under test. 5000 customers: the standard
    # error of a mean share is <= 0.007, of a mean count ~0.05 purchases.
    model = fitted_with(TRUE)
    hist = (simulated["x"], simulated["t_x"], simulated["T"])
    silent = simulated["x_holdout"] == 0
    for group in (simulated["x"] == 0, simulated["x"] > 0, np.ones_like(silent)):
        group = group.astype(bool)
        p0 = model.prob_no_purchase(26.0, *(h[group] for h in hist))
        assert p0.mean() == pytest.approx(silent[group].mean(), abs=0.025)
    expected = model.expected_purchases(26.0, *hist)
    assert expected.mean() == pytest.approx(simulated["x_holdout"].mean(), rel=0.05)


# -- fitting ----------------------------------------------------------------------------
def test_fit_recovers_the_parameters_of_simulated_customers(fitted_on_simulated: BGNBD) -> None:
    # Tolerances are ~3.5 standard deviations of the estimates over 30 simulated samples
    # of this size (r 3%, alpha 4%, a 10%, b 11%, mean drop-out a/(a+b) 2%): a and b are
    # individually weakly identified, their ratio well.
    est = fitted_on_simulated.params_
    assert est["r"] == pytest.approx(TRUE["r"], rel=0.12)
    assert est["alpha"] == pytest.approx(TRUE["alpha"], rel=0.15)
    assert est["a"] == pytest.approx(TRUE["a"], rel=0.35)
    assert est["b"] == pytest.approx(TRUE["b"], rel=0.40)
    dropout = est["a"] / (est["a"] + est["b"])
    assert dropout == pytest.approx(TRUE["a"] / (TRUE["a"] + TRUE["b"]), rel=0.08)
    assert fitted_on_simulated.converged_


def test_fit_beats_the_true_parameters_only_by_a_likelihood_ratio_chance_allows(
    fitted_on_simulated: BGNBD, simulated: dict[str, np.ndarray]
) -> None:
    ll_true = bgnbd_log_likelihood(simulated["x"], simulated["t_x"], simulated["T"], **TRUE).sum()
    lr = 2 * (fitted_on_simulated.log_likelihood_ - ll_true)
    assert 0 <= lr < 18.47  # chi-square, 4 df, 99.9%


def test_fit_does_not_depend_on_the_time_unit(simulated: dict[str, np.ndarray]) -> None:
    weeks = BGNBD().fit(simulated["x"], simulated["t_x"], simulated["T"]).params_
    days = BGNBD().fit(simulated["x"], simulated["t_x"] * 7, simulated["T"] * 7).params_
    assert days["alpha"] == pytest.approx(7 * weeks["alpha"], rel=1e-5)
    for name in ("r", "a", "b"):
        assert days[name] == pytest.approx(weeks[name], rel=1e-5)


def test_penalizer_shrinks_the_log_parameters(simulated: dict[str, np.ndarray]) -> None:
    hist = (simulated["x"][:800], simulated["t_x"][:800], simulated["T"][:800])
    plain = BGNBD().fit(*hist)
    shrunk = BGNBD(penalizer=0.1).fit(*hist)
    # The penalty acts on the time-rescaled axis (longest T -> 10), hence the rescaling here.
    scale = hist[2].max() / 10

    def norm(m: BGNBD) -> float:
        p = dict(m.params_, alpha=m.params_["alpha"] / scale)
        return float(np.sum(np.log(list(p.values())) ** 2))

    assert norm(shrunk) < norm(plain)
    assert shrunk.log_likelihood_ < plain.log_likelihood_


# -- errors -----------------------------------------------------------------------------
def test_predicting_before_fit_raises_not_fitted() -> None:
    with pytest.raises(NotFittedError, match="call fit"):
        BGNBD().prob_alive([1], [1.0], [2.0])


@pytest.mark.parametrize(
    ("frequency", "recency", "T", "message"),
    [
        ([1, -1], [1.0, 0.0], [5.0, 5.0], r"frequency must be >= 0; got -1\.0"),
        ([1.5], [1.0], [5.0], r"whole numbers\); got 1\.5"),
        ([2], [6.0], [5.0], r"recency must not exceed T.*6\.0"),
        ([0], [2.0], [5.0], r"recency must be 0 when frequency is 0.*2\.0"),
        ([1], [1.0], [np.nan], r"T must be finite"),
        ([1, 2], [1.0], [5.0, 5.0], r"same length"),
    ],
)
def test_invalid_customer_summaries_are_rejected_naming_the_value(
    frequency: list[float], recency: list[float], T: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BGNBD().fit(frequency, recency, T)


def test_fit_without_any_repeat_purchase_explains_why_it_cannot_work() -> None:
    with pytest.raises(ModelError, match="no customer has a repeat purchase"):
        BGNBD().fit([0, 0], [0.0, 0.0], [3.0, 4.0])


def test_negative_prediction_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="prediction window"):
        fitted_with(PUBLISHED).prob_no_purchase(-1.0, [1], [1.0], [2.0])


# -- rfm_summary ------------------------------------------------------------------------
@pytest.fixture
def orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["A", "A", "A", "A", "B", "C", "C", "D"],
            "order_date": pd.to_datetime(
                [
                    "2024-01-01",
                    "2024-01-01",  # same day: one purchase occasion
                    "2024-01-15",
                    "2024-02-05",  # on as_of: excluded (half-open time)
                    "2024-01-29",
                    "2024-01-08",
                    "2024-01-22",  # a credit: not a purchase
                    "2024-01-10",  # only a credit: D has no purchase history
                ]
            ),
            "amount": [100.0, 50.0, 80.0, 999.0, 40.0, 60.0, -60.0, -10.0],
            "order_id": ["o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8"],
        }
    )


def test_rfm_summary_counts_purchase_days_before_as_of(orders: pd.DataFrame) -> None:
    s = rfm_summary(orders, pd.Timestamp("2024-02-05"), unit_days=1.0)
    assert list(s.index) == ["A", "B", "C"]
    assert s.loc["A", "frequency"] == 1
    assert s.loc["A", "recency"] == 14.0
    assert s.loc["A", "T"] == 35.0
    assert s.loc["A", "monetary"] == 80.0
    assert s.loc["A", "n_orders"] == 3
    assert s.loc["A", "last_date"] == pd.Timestamp("2024-01-15")
    assert s.loc["B", "frequency"] == 0
    assert (s.loc["B", "recency"], s.loc["B", "T"]) == (0.0, 7.0)
    assert s["monetary"].isna()["B"]
    assert s.loc["C", "frequency"] == 0  # the credit neither counts nor extends recency


def test_rfm_summary_in_weeks_divides_by_seven(orders: pd.DataFrame) -> None:
    days = rfm_summary(orders, pd.Timestamp("2024-02-05"), unit_days=1.0)
    weeks = rfm_summary(orders, pd.Timestamp("2024-02-05"))
    np.testing.assert_allclose(weeks["T"], days["T"] / 7)
    np.testing.assert_allclose(weeks["recency"], days["recency"] / 7)


def test_rfm_summary_counts_lines_when_there_is_no_order_id(orders: pd.DataFrame) -> None:
    s = rfm_summary(orders.drop(columns="order_id"), pd.Timestamp("2024-02-05"))
    assert s.loc["A", "n_orders"] == 3


def test_rfm_summary_rejects_missing_columns_and_string_dates(orders: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"missing required column\(s\) \['amount'\]"):
        rfm_summary(orders.drop(columns="amount"), pd.Timestamp("2024-02-05"))
    with pytest.raises(ValueError, match="datetime64"):
        rfm_summary(orders.astype({"order_date": str}), pd.Timestamp("2024-02-05"))


# -- CDNOW: the paper's benchmark -------------------------------------------------------
@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    if not CDNOW.exists():
        pytest.skip(f"CDNOW data not available at {CDNOW}")
    raw = pd.read_csv(CDNOW, sep=r"\s+", dtype={"customer_id": str, "date": str})
    return pd.DataFrame(
        {
            "account_id": raw["customer_id"],
            "order_date": pd.to_datetime(raw["date"], format="%Y%m%d"),
            "amount": raw["dollar_value"],
        }
    )


@pytest.fixture(scope="module")
def cdnow_calibration(cdnow: pd.DataFrame) -> pd.DataFrame:
    summary = rfm_summary(cdnow, pd.Timestamp("1997-10-01"))
    # Hardie's data measure T to 1997-09-30 itself (a 1997-01-01 buyer has T = 38.86
    # weeks); our half-open as_of counts to the next midnight, one day (1/7 week) more.
    return summary.assign(T=summary["T"] - 1 / 7)


@pytest.fixture(scope="module")
def cdnow_model(cdnow_calibration: pd.DataFrame) -> BGNBD:
    s = cdnow_calibration
    return BGNBD().fit(s["frequency"], s["recency"], s["T"])


def test_cdnow_calibration_summary_has_the_papers_cohort(cdnow_calibration: pd.DataFrame) -> None:
    s = cdnow_calibration
    assert len(s) == 23_570  # every customer first bought in Q1 1997
    assert s["T"].max() == pytest.approx(272 / 7)
    assert s["first_date"].max() < pd.Timestamp("1997-04-01")
    assert (s["recency"] <= s["T"] + 1e-9).all()  # last purchase on 09-30: equal up to rounding


def test_cdnow_fit_is_the_full_data_maximum_likelihood(cdnow_model: BGNBD) -> None:
    # Golden numbers: the same likelihood maximised independently with Nelder-Mead
    # (xatol 1e-8) from three starting points, all agreeing to 1e-7.
    est = cdnow_model.params_
    assert est["r"] == pytest.approx(0.251624, rel=1e-4)
    assert est["alpha"] == pytest.approx(4.788943, rel=1e-4)
    assert est["a"] == pytest.approx(0.723433, rel=1e-4)
    assert est["b"] == pytest.approx(2.161088, rel=1e-4)
    assert cdnow_model.log_likelihood_ == pytest.approx(-95368.444, abs=0.01)


def test_cdnow_fit_is_close_to_the_published_one_tenth_sample_estimates(
    cdnow_model: BGNBD, cdnow_calibration: pd.DataFrame
) -> None:
    # The paper fits the 2,357-customer 1/10 sample; the full data give r +3.5%,
    # alpha +8.5%, a -8.8%, b -10.9%: sampling differences, not a different model. The
    # published parameters fit the full data almost as well (0.00024 nats per customer).
    est = cdnow_model.params_
    for name in ("r", "alpha", "a"):
        assert est[name] == pytest.approx(PUBLISHED[name], rel=0.10)
    assert est["b"] == pytest.approx(PUBLISHED["b"], rel=0.12)
    s = cdnow_calibration
    ll_published = bgnbd_log_likelihood(s["frequency"], s["recency"], s["T"], **PUBLISHED).sum()
    gap_per_customer = (cdnow_model.log_likelihood_ - ll_published) / len(s)
    assert 0 <= gap_per_customer < 0.001


def test_cdnow_holdout_is_forecast_with_the_known_bg_nbd_shortfall(
    cdnow_model: BGNBD, cdnow: pd.DataFrame, cdnow_calibration: pd.DataFrame
) -> None:
    # Weeks 40-78 (39 weeks). Measured: 16,874 repeat purchases forecast vs 19,684 actual
    # (-14%, mostly customers with 1-2 calibration repeats who come back: BG/NBD deaths
    # are permanent); mean P(no purchase) 0.734 vs 0.701 observed; AUC 0.747. The bands
    # below guard those numbers, they do not claim the model is unbiased on CDNOW.
    s = cdnow_calibration
    hist = (s["frequency"], s["recency"], s["T"])
    holdout = cdnow[cdnow["order_date"] >= pd.Timestamp("1997-10-01")]
    actual = holdout.groupby("account_id")["order_date"].nunique().reindex(s.index, fill_value=0)
    forecast = cdnow_model.expected_purchases(39.0, *hist)
    assert forecast.sum() / actual.sum() == pytest.approx(0.857, abs=0.02)
    p_silent = cdnow_model.prob_no_purchase(39.0, *hist)
    silent = (actual == 0).to_numpy()
    assert p_silent.mean() == pytest.approx(silent.mean(), abs=0.05)
    auc = roc_auc_score(silent, p_silent)
    assert auc > 0.72
