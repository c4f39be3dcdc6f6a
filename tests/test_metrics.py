"""Metrics: hand-computed cases, scikit-learn cross-checks, brute-force references."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata

from ka_ml.modeling.metrics import (
    accuracy_at,
    bootstrap_delta,
    bootstrap_interval,
    bootstrap_resamples,
    brier,
    chance_calibration_error,
    churn_metrics,
    concordance_index,
    expected_calibration_error,
    expected_roc_auc,
    log_loss,
    majority_accuracy,
    plot_lift,
    plot_reliability,
    pr_auc,
    reliability_table,
    roc_auc,
    slice_metrics,
    top_decile_lift,
)


@pytest.fixture(scope="module")
def noisy() -> tuple[np.ndarray, np.ndarray]:
    """Scores with real signal and many ties (rounded to 2 decimals)."""
    rng = np.random.default_rng(3)
    p = np.round(rng.uniform(0.01, 0.99, 3000), 2)
    y = (rng.uniform(size=3000) < p).astype(float)
    return y, p


# -- ranking ----------------------------------------------------------------------------
def test_roc_auc_of_a_four_point_example_counts_ordered_pairs() -> None:
    # Pairs (pos, neg): (0.35>0.1) yes, (0.35>0.4) no, (0.8>0.1) yes, (0.8>0.4) yes -> 3/4.
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75


def test_roc_auc_counts_tied_scores_as_half() -> None:
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)


def test_roc_auc_is_nan_with_a_single_class() -> None:
    assert np.isnan(roc_auc([1, 1, 1], [0.2, 0.3, 0.4]))


def test_pr_auc_is_the_step_wise_average_precision() -> None:
    # Thresholds 0.9 (P=1, R=1/2), 0.8 (P=1/2, R=1/2), 0.7 (P=2/3, R=1).
    assert pr_auc([1, 0, 1], [0.9, 0.8, 0.7]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def mann_whitney_auc(y: np.ndarray, p: np.ndarray) -> float:
    """The ROC AUC from average ranks (ties 1/2): the package's own before it delegated."""
    ranks = rankdata(p)
    n_pos = y.sum()
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (len(y) - n_pos)))


def step_wise_average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """Recall gain x precision over distinct thresholds (one per run of tied scores)."""
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(p_sorted) != 0), len(p_sorted) - 1]
    tp = np.cumsum(y_sorted)[last]
    return float((np.diff(np.r_[0.0, tp]) / y.sum()) @ (tp / (last + 1)))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 12), st.integers(8, 400))
def test_sklearns_auc_and_average_precision_equal_the_definitions_on_tied_scores(
    seed: int, levels: int, n: int
) -> None:
    rng = np.random.default_rng(seed)
    p = rng.integers(0, levels, n) / levels  # few distinct scores: ties everywhere
    y = (rng.uniform(size=n) < 0.2 + 0.6 * p).astype(float)
    y[:2] = [0.0, 1.0]  # both classes
    assert abs(roc_auc(y, p) - mann_whitney_auc(y, p)) <= 1e-12
    assert abs(pr_auc(y, p) - step_wise_average_precision(y, p)) <= 1e-12


def test_probability_metrics_equal_their_definitions(
    noisy: tuple[np.ndarray, np.ndarray],
) -> None:
    y, p = noisy
    assert abs(roc_auc(y, p) - mann_whitney_auc(y, p)) <= 1e-12
    assert abs(brier(y, p) - np.mean((p - y) ** 2)) <= 1e-12
    q = np.clip(p, 1e-15, 1 - 1e-15)
    assert abs(log_loss(y, p) + np.mean(y * np.log(q) + (1 - y) * np.log1p(-q))) <= 1e-12


def test_top_decile_lift_of_a_perfect_ranking_is_capped_by_the_top_decile_size() -> None:
    y = np.r_[np.ones(30), np.zeros(70)]  # base rate 0.3 > 10%: top decile all positive
    assert top_decile_lift(y, y) == pytest.approx(1 / 0.3)
    y = np.r_[np.ones(5), np.zeros(95)]  # base rate 0.05 < 10%: at most 5 of 10 slots
    assert top_decile_lift(y, y) == pytest.approx(min(1 / 0.05, 100 / 10) * 0.5 / 0.5)
    assert top_decile_lift(y, y) == pytest.approx(10.0)


def test_top_decile_lift_shares_slots_among_ties_so_row_order_does_not_matter() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0], dtype=float)
    assert top_decile_lift(y, np.full(10, 0.5)) == pytest.approx(1.0)
    # one slot, two accounts tied at the top, one a churner: half a churner per slot.
    p = np.array([0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert top_decile_lift(y, p) == pytest.approx(0.5 / 0.2)
    assert top_decile_lift(y[::-1], p[::-1]) == pytest.approx(0.5 / 0.2)


def test_top_decile_lift_is_nan_without_positives() -> None:
    assert np.isnan(top_decile_lift(np.zeros(20), np.linspace(0, 1, 20)))


# -- probabilities ----------------------------------------------------------------------
def test_brier_and_log_loss_by_hand() -> None:
    assert brier([0, 1], [0.2, 0.6]) == pytest.approx((0.04 + 0.16) / 2)
    assert log_loss([0, 1], [0.2, 0.6]) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2)


def test_log_loss_clips_certain_mistakes_to_a_large_finite_cost() -> None:
    cost = log_loss([1, 0], [0.0, 1.0])
    assert cost == pytest.approx(-np.log(1e-15), rel=1e-4)  # 1 - (1 - 1e-15) rounds


def test_probabilities_outside_zero_one_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]; got \[1\.2\]"):
        brier([1, 0], [1.2, 0.1])


def test_labels_other_than_zero_one_are_rejected_by_name() -> None:
    with pytest.raises(ValueError, match=r"y must be 0/1; got \[2\.0\]"):
        roc_auc([0, 2], [0.1, 0.2])


def test_calibration_error_of_perfectly_calibrated_bins_is_zero() -> None:
    p = np.r_[np.full(10, 0.2), np.full(10, 0.7)]
    y = np.r_[np.ones(2), np.zeros(8), np.ones(7), np.zeros(3)]
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(y, p, strategy="uniform") == pytest.approx(0.0, abs=1e-12)


def test_calibration_error_of_a_constant_overconfident_score_is_the_gap() -> None:
    assert expected_calibration_error([1, 0, 1, 0], [0.8] * 4) == pytest.approx(0.3)


def test_calibration_error_is_small_when_labels_are_drawn_from_the_probabilities() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=100_000)
    y = (rng.uniform(size=p.size) < p).astype(float)
    assert expected_calibration_error(y, p) < 0.01
    assert expected_calibration_error(y, np.clip(p + 0.1, 0, 1)) > 0.08


def test_the_chance_level_holds_a_perfect_model_about_as_often_as_its_level() -> None:
    """Outcomes drawn from the probabilities: the observed ECE stays under the 95% chance
    level in about 95% of samples, and under the median in about half."""
    rng = np.random.default_rng(7)
    p = rng.beta(1, 4, 400)
    q95 = chance_calibration_error(p, seed=1)
    q50 = chance_calibration_error(p, level=0.5, seed=1)
    eces = np.array(
        [expected_calibration_error((rng.uniform(size=p.size) < p).astype(float), p)
         for _ in range(400)]
    )  # fmt: skip
    assert 0.91 <= float(np.mean(eces <= q95)) <= 0.99
    assert 0.4 <= float(np.mean(eces <= q50)) <= 0.6


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 1000), st.floats(0.05, 0.6))
def test_the_chance_level_shrinks_as_the_rows_grow(seed: int, mean: float) -> None:
    rng = np.random.default_rng(seed)
    small = rng.beta(2 * mean / (1 - mean), 2, 300)
    large = np.tile(small, 30)  # the same probabilities, 30 times the rows
    assert chance_calibration_error(large) < chance_calibration_error(small)
    assert chance_calibration_error(small, seed=seed) == chance_calibration_error(small, seed=seed)


def test_chance_level_on_a_few_hundred_rows_exceeds_the_default_ceiling() -> None:
    """Why the promotion gate needs it: 418 rows near 0.2 (a 150-account portfolio's three
    origins) put a perfectly calibrated model's ECE about the 0.05 ceiling."""
    p = np.random.default_rng(0).beta(1, 4, 418)
    assert chance_calibration_error(p) > 0.05
    assert chance_calibration_error(np.tile(p, 100)) < 0.01


def test_chance_level_rejects_bad_arguments_and_is_nan_on_no_rows() -> None:
    with pytest.raises(ValueError, match="level must be in"):
        chance_calibration_error([0.2, 0.4], level=1.0)
    with pytest.raises(ValueError, match="draws must be"):
        chance_calibration_error([0.2, 0.4], draws=0)
    with pytest.raises(ValueError, match="probabilities must lie in"):
        chance_calibration_error([0.2, 1.4])
    assert np.isnan(chance_calibration_error([]))


def test_reliability_table_quantile_bins_hold_equal_counts() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(size=1000)
    y = (rng.uniform(size=1000) < p).astype(float)
    table = reliability_table(y, p, n_bins=10)
    assert list(table.columns) == [
        "bin",
        "p_lo",
        "p_hi",
        "n",
        "mean_p",
        "observed_rate",
        "gap",
    ]
    assert table["n"].sum() == 1000
    assert (table["n"] == 100).all()
    assert (table["mean_p"].diff().dropna() > 0).all()


def test_unknown_bin_strategy_is_rejected_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="'quantile' or 'uniform'; got 'equal'"):
        expected_calibration_error([0, 1], [0.2, 0.8], strategy="equal")  # type: ignore[arg-type]


# -- accuracy ---------------------------------------------------------------------------
def test_majority_accuracy_and_accuracy_at_a_threshold() -> None:
    assert majority_accuracy([1, 0, 0, 0]) == 0.75
    assert majority_accuracy([1, 1, 1, 0]) == 0.75
    assert accuracy_at([1, 0, 0, 1], [0.5, 0.49, 0.7, 0.9]) == 0.75  # 0.5 counts as positive


# -- concordance ------------------------------------------------------------------------
def brute_force_c_index(time: np.ndarray, event: np.ndarray, pred: np.ndarray) -> float:
    num = den = 0.0
    for i in range(len(time)):
        if not event[i]:
            continue
        for j in range(len(time)):
            if time[i] < time[j] or (time[i] == time[j] and not event[j] and i != j):
                den += 1
                num += 1.0 if pred[i] < pred[j] else 0.5 if pred[i] == pred[j] else 0.0
    return num / den if den else float("nan")


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=2, max_value=40).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 6), min_size=n, max_size=n),
            st.lists(st.booleans(), min_size=n, max_size=n),
            st.lists(st.integers(0, 4), min_size=n, max_size=n),
        )
    )
)
def test_concordance_index_matches_the_brute_force_definition(
    data: tuple[list[int], list[bool], list[int]],
) -> None:
    time, event, pred = (np.asarray(v) for v in data)
    expected = brute_force_c_index(time, event, pred)
    got = concordance_index(time, event, pred)
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected, abs=1e-12)


def test_concordance_index_is_one_for_perfect_and_zero_for_reversed_predictions() -> None:
    rng = np.random.default_rng(0)
    time = rng.exponential(50, 50_000)
    event = rng.uniform(size=time.size) < 0.7
    assert concordance_index(time, event, time) == 1.0
    assert concordance_index(time, event, -time) == 0.0
    assert concordance_index(time, event, np.zeros_like(time)) == 0.5
    assert concordance_index(time, event, rng.uniform(size=time.size)) == pytest.approx(
        0.5, abs=0.01
    )


def test_concordance_index_is_nan_when_no_pair_is_comparable() -> None:
    assert np.isnan(concordance_index([1.0, 2.0], [False, False], [1.0, 2.0]))


# -- bootstrap --------------------------------------------------------------------------
def test_bootstrap_delta_is_deterministic_for_a_seed_and_brackets_the_point_delta(
    noisy: tuple[np.ndarray, np.ndarray],
) -> None:
    y, p = noisy
    rng = np.random.default_rng(9)
    weaker = np.clip(p + rng.normal(0, 0.3, p.size), 0, 1)
    first = bootstrap_delta(y, p, weaker, roc_auc, n_boot=100, seed=5)
    again = bootstrap_delta(y, p, weaker, roc_auc, n_boot=100, seed=5)
    assert first == again
    assert first["lo"] < first["delta"] < first["hi"]
    assert first["delta"] == pytest.approx(roc_auc(y, p) - roc_auc(y, weaker))
    assert first["lo"] > 0  # the better model is better beyond resampling noise


def test_bootstrap_interval_brackets_the_auc_and_widens_when_accounts_repeat(
    noisy: tuple[np.ndarray, np.ndarray],
) -> None:
    y, p = noisy[0][:300], noisy[1][:300]
    lo, hi = bootstrap_interval(y, p, roc_auc, bootstrap_resamples(300, 200, 1))
    assert lo < roc_auc(y, p) < hi and 0.02 < hi - lo < 0.25
    rep = np.repeat(np.arange(100), 3)  # 100 accounts at 3 origins: 100 pieces of evidence
    by_row = bootstrap_interval(y[rep], p[rep], roc_auc, bootstrap_resamples(300, 200, 1))
    by_account = bootstrap_interval(
        y[rep], p[rep], roc_auc, bootstrap_resamples(300, 200, 1, groups=rep)
    )
    assert by_account[1] - by_account[0] > 1.3 * (by_row[1] - by_row[0])
    one_class = bootstrap_interval(np.ones(5), p[:5], roc_auc, bootstrap_resamples(5, 20, 1))
    assert np.isnan(one_class).all()
    with pytest.raises(ValueError, match="300 rows"):
        bootstrap_interval(y[:10], p[:10], roc_auc, bootstrap_resamples(300, 5, 1))


def test_bootstrap_delta_of_a_model_against_itself_is_exactly_zero(
    noisy: tuple[np.ndarray, np.ndarray],
) -> None:
    y, p = noisy
    assert bootstrap_delta(y, p, p, brier, n_boot=20) == {"delta": 0.0, "lo": 0.0, "hi": 0.0}


def test_cluster_bootstrap_widens_the_interval_when_rows_repeat_an_account() -> None:
    rng = np.random.default_rng(2)
    n_accounts, copies = 300, 8
    p_a = rng.uniform(size=n_accounts)
    y = (rng.uniform(size=n_accounts) < p_a).astype(float)
    p_b = rng.uniform(size=n_accounts)
    rep = np.repeat(np.arange(n_accounts), copies)  # 8 identical snapshots per account
    naive = bootstrap_delta(y[rep], p_a[rep], p_b[rep], brier, n_boot=200, seed=1)
    clustered = bootstrap_delta(y[rep], p_a[rep], p_b[rep], brier, n_boot=200, seed=1, groups=rep)
    assert clustered["delta"] == naive["delta"]
    assert (clustered["hi"] - clustered["lo"]) > 2 * (naive["hi"] - naive["lo"])


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(5, 300),
    st.integers(1, 4),
    st.booleans(),
    st.sampled_from(["roc_auc", "brier"]),
)
def test_the_bootstrap_from_row_counts_equals_the_metric_on_each_resample(
    seed: int, n: int, decimals: int, clustered: bool, name: str
) -> None:
    """The fast path (each row's count in a resample) gives what the metric gives on the
    resampled rows themselves, ties, single-class resamples and account clusters included."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < 0.3).astype(float)
    p_a = np.round(rng.uniform(size=n), decimals)  # coarse rounding makes ties
    p_b = np.round(rng.uniform(size=n), decimals)
    groups = rng.integers(0, max(n // 3, 1), n) if clustered else None
    fn = {"roc_auc": roc_auc, "brier": brier}[name]
    fast = bootstrap_delta(y, p_a, p_b, fn, n_boot=30, seed=seed, groups=groups)
    plain = bootstrap_delta(
        y, p_a, p_b, lambda t, q: fn(t, q), n_boot=30, seed=seed, groups=groups
    )  # a wrapper is not in the fast table: the metric runs on every resample
    assert fast.keys() == plain.keys()
    for k in fast:
        assert fast[k] == pytest.approx(plain[k], abs=1e-12, nan_ok=True)


def test_bootstrap_groups_must_match_the_rows() -> None:
    with pytest.raises(ValueError, match="one value per row"):
        bootstrap_delta([0, 1], [0.1, 0.9], [0.2, 0.8], brier, groups=["a"])


def test_resamples_drawn_once_give_each_comparison_what_its_own_draws_give() -> None:
    rng = np.random.default_rng(4)
    n = 400
    y = (rng.uniform(size=n) < 0.3).astype(float)
    p_a, p_b, p_c = rng.uniform(size=(3, n))
    groups = rng.integers(0, 120, n)
    draws = bootstrap_resamples(n, 50, 7, groups)
    for other in (p_b, p_c):
        for fn in (roc_auc, brier):
            shared = bootstrap_delta(y, p_a, other, fn, resamples=draws)
            own = bootstrap_delta(y, p_a, other, fn, n_boot=50, seed=7, groups=groups)
            assert shared == own
    with pytest.raises(ValueError, match="drawn for 400 rows, not 3"):
        bootstrap_delta([0, 1, 1], [0.1, 0.9, 0.5], [0.2, 0.8, 0.4], brier, resamples=draws)


# -- summaries --------------------------------------------------------------------------
def test_churn_metrics_reports_the_full_panel(noisy: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = noisy
    out = churn_metrics(y, p)
    assert set(out) == {
        "roc_auc",
        "pr_auc",
        "brier",
        "log_loss",
        "top_decile_lift",
        "ece",
        "base_rate",
        "n",
    }
    assert out["n"] == 3000
    assert out["base_rate"] == pytest.approx(y.mean())
    assert out["roc_auc"] == pytest.approx(roc_auc(y, p))


def test_slice_metrics_gives_one_row_per_value_and_nan_auc_for_single_class_slices() -> None:
    df = pd.DataFrame(
        {
            "y": [1, 0, 1, 0, 0, 0, 1],
            "p": [0.9, 0.2, 0.6, 0.4, 0.1, 0.3, 0.5],
            "tier": ["A", "A", "B", "B", "C", "C", None],
        }
    )
    out = slice_metrics(df, "y", "p", ["tier"])
    assert out["value"].tolist() == ["A", "B", "C", "<NA>"]
    assert out["n"].tolist() == [2, 2, 2, 1]
    by_value = out.set_index("value")
    assert by_value.loc["A", "roc_auc"] == 1.0
    assert by_value["roc_auc"].isna()["C"]
    assert by_value.loc["C", "base_rate"] == 0.0


def test_slice_metrics_names_a_missing_column() -> None:
    with pytest.raises(ValueError, match=r"\['region'\]"):
        slice_metrics(pd.DataFrame({"y": [1], "p": [0.5]}), "y", "p", ["region"])


# -- plots ------------------------------------------------------------------------------
def test_plots_are_written_as_png_files(
    tmp_path: Path, noisy: tuple[np.ndarray, np.ndarray]
) -> None:
    y, p = noisy
    for plot, name in ((plot_reliability, "rel.png"), (plot_lift, "sub/lift.png")):
        out = plot(y, p, tmp_path / name)
        assert out == tmp_path / name
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert out.stat().st_size > 5_000


def test_plotting_leaves_pyplot_and_the_global_backend_alone(tmp_path: Path) -> None:
    code = (
        "import sys, matplotlib\n"
        "from ka_ml.modeling.metrics import plot_lift\n"
        f"plot_lift([0, 1, 1, 0], [0.1, 0.8, 0.6, 0.3], {str(tmp_path / 'l.png')!r})\n"
        "print('matplotlib.pyplot' in sys.modules, matplotlib.rcParams._get_backend_or_none())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["False", "None"]


def _rank_auc(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of outcomes ``y`` against one score ``p``: mid-ranks (ties
    1/2), the Mann-Whitney identity, vectorised over the rows."""
    r = rankdata(p)
    n1 = y.sum(axis=1)
    return (y @ r - n1 * (n1 + 1) / 2) / (n1 * (y.shape[1] - n1))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 6))
def test_expected_roc_auc_is_the_mean_auc_of_outcomes_drawn_from_p(seed: int, levels: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.round(rng.beta(2, 3, 3_000), levels // 2)  # coarse rounding makes ties
    y = (rng.random((300, len(p))) < p).astype(float)  # 300 outcome draws, one per row
    draws = _rank_auc(y, p)
    assert draws[:3] == pytest.approx([roc_auc(d, p) for d in y[:3]], abs=1e-12)
    assert expected_roc_auc(p) == pytest.approx(float(np.mean(draws)), abs=0.004)


def test_expected_roc_auc_edges() -> None:
    assert expected_roc_auc(np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(1.0)
    # a score that reverses the probabilities is expected to rank backwards
    p = np.array([0.1, 0.2, 0.8, 0.9])
    assert expected_roc_auc(p, -p) < 0.5 < expected_roc_auc(p)
    assert expected_roc_auc(np.full(10, 0.3)) == pytest.approx(0.5)  # all tied
    assert np.isnan(expected_roc_auc(np.array([0.5])))
    assert np.isnan(expected_roc_auc(np.array([0.2, 1.5])))
    with pytest.raises(ValueError, match="one length"):
        expected_roc_auc(np.array([0.1, 0.2]), np.array([1.0]))


def test_light_scores_count_the_rows_behind_each_precision() -> None:
    from ka_ml.modeling.evaluate import light_scores

    y = np.array([1, 0, 0, 1, 0, 0], bool)
    red = np.array([1, 1, 0, 0, 0, 0], bool)
    red_yellow = np.array([1, 1, 1, 1, 0, 0], bool)
    got = light_scores(y, red, red_yellow)
    assert (got["red_count"], got["red_churned"], got["red_precision"]) == (2.0, 1.0, 0.5)
    assert (got["red_yellow_count"], got["red_yellow_churned"]) == (4.0, 2.0)
    assert got["red_yellow_recall"] == 1.0 and got["base_rate"] == pytest.approx(1 / 3)


def test_purchase_cycle_bands_cover_every_account() -> None:
    from ka_ml.modeling.evaluate import cycle_band

    got = cycle_band(pd.Series([7.0, 30.0, 31.0, 120.0, 365.0, np.nan])).tolist()
    assert got == [
        "cycle <= 30 days",
        "cycle <= 30 days",
        "cycle 31-90 days",
        "cycle 91-180 days",
        "cycle > 180 days",
        "one order day",
    ]


def test_a_season_ordered_in_call_offs_is_a_yearly_cycle_in_the_slices() -> None:
    """Gaps 2, 5, 360, 3, 358 days: the median (5) would band the account as a monthly
    buyer; the buying cycle counts the long gaps by their length, as the report's revenue
    at risk does."""
    from ka_ml.modeling.evaluate import cycle_band
    from ka_ml.scoring.lifecycle import buying_cycle_days

    gaps = np.array([2.0, 5.0, 360.0, 3.0, 358.0])
    monthly = np.array([28.0, 30.0, 29.0, 30.0])
    X = pd.DataFrame(
        {
            "gap_mean_days": [gaps.mean(), monthly.mean(), np.nan],
            "gap_std_days": [gaps.std(), monthly.std(), np.nan],
        }
    )
    got = cycle_band(buying_cycle_days(X)).tolist()
    assert got == ["cycle > 180 days", "cycle <= 30 days", "one order day"]
