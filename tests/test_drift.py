"""Input drift: PSI with hand-checked values, the reference profile, and the banner rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from ka_ml.config import MonitoringConfig
from ka_ml.monitoring.drift import (
    bin_counts,
    drift_report,
    feature_profile,
    judged_psi,
    psi,
    reference_profile,
    training_reference,
)

# -- PSI, by hand ---------------------------------------------------------------------


def test_psi_of_a_two_bin_shift_matches_the_hand_computed_value() -> None:
    # (0.8 - 0.5) ln(0.8 / 0.5) + (0.2 - 0.5) ln(0.2 / 0.5) = 0.3 ln 1.6 + 0.3 ln 2.5
    assert psi([0.5, 0.5], [0.8, 0.2], eps=0) == pytest.approx(0.41588830833596724, rel=1e-12)


def test_psi_takes_counts_or_proportions_alike() -> None:
    assert psi([50, 50], [400, 100], eps=0) == pytest.approx(psi([0.5, 0.5], [0.8, 0.2], eps=0))


def test_identical_distributions_have_zero_psi() -> None:
    assert psi([0.1, 0.2, 0.3, 0.4], [10, 20, 30, 40]) == pytest.approx(0.0, abs=1e-15)


def test_an_empty_bin_is_smoothed_to_a_large_finite_psi() -> None:
    # eps = 0.01: expected (1 + .01, 0 + .01) / 1.02, actual (.5, .5):
    # (.5 - .990196) ln(.5 / .990196) + (.5 - .009804) ln(.5 / .009804) = 2.26231...
    value = psi([1.0, 0.0], [0.5, 0.5], eps=0.01)
    assert value == pytest.approx(2.2623139788437543, rel=1e-12)
    assert math.isfinite(psi([1.0, 0.0], [0.0, 1.0]))


def test_psi_is_nan_without_mass_and_refuses_mismatched_bins() -> None:
    assert math.isnan(psi([0, 0], [1, 1]))
    with pytest.raises(ValueError, match="same bins"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])


# -- bins -----------------------------------------------------------------------------


def test_numeric_bins_are_reference_quantiles_with_missing_values_last() -> None:
    entry = feature_profile(pd.Series(np.arange(1.0, 11.0)), bins=5)
    assert entry["kind"] == "numeric"
    np.testing.assert_allclose(entry["edges"], [2.8, 4.6, 6.4, 8.2])
    np.testing.assert_allclose(entry["proportions"], [0.2, 0.2, 0.2, 0.2, 0.2, 0.0])
    counts = bin_counts(entry, pd.Series([1.0, 1.0, 5.0, np.nan, np.inf]))
    assert counts.tolist() == [2, 0, 1, 0, 0, 2]  # inf counts as missing (not a number)


def test_a_feature_that_is_mostly_zero_keeps_its_zeros_in_one_bin() -> None:
    entry = feature_profile(pd.Series([0.0] * 8 + [1.0, 2.0]), bins=10)
    assert len(entry["edges"]) <= 3 and entry["edges"][0] == 0.0
    assert entry["proportions"][0] == pytest.approx(0.8)


def test_categorical_bins_have_an_other_bin_for_unseen_values_and_a_missing_bin() -> None:
    ref = pd.Series(pd.Categorical(["A", "A", "B", None]))
    entry = feature_profile(ref, bins=10)
    assert entry["kind"] == "categorical" and entry["categories"] == ["A", "B"]
    np.testing.assert_allclose(entry["proportions"], [0.5, 0.25, 0.0, 0.25])
    assert bin_counts(entry, pd.Series(["A", "C", None, "B"], dtype="str")).tolist() == [1, 1, 1, 1]


def test_the_reference_profile_is_plain_json() -> None:
    X = pd.DataFrame(
        {
            "spend_365d": [1.0, 2.0, np.nan],
            "abc_tier": pd.Categorical(["A", "B", "C"]),
            "ignored": [0, 0, 0],
        }
    )
    profile = reference_profile(X, ["spend_365d", "abc_tier", "not_there"], bins=4)
    assert set(profile["features"]) == {"spend_365d", "abc_tier"}
    assert json.loads(json.dumps(profile)) == profile


# -- the banner -----------------------------------------------------------------------


def _world(n: int, seed: int, spend_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "spend_365d": rng.lognormal(10, 1, n) * (1 + spend_shift),
            "recency_days": rng.integers(1, 200, n).astype(float),
            "abc_tier": pd.Categorical(rng.choice(["A", "B", "C"], n, p=[0.1, 0.2, 0.7])),
        }
    )


FEATURES = ["spend_365d", "recency_days", "abc_tier"]


@pytest.fixture(scope="module")
def reference() -> dict:
    """Four training snapshots of the same distribution."""
    snaps = pd.concat(
        [
            _world(500, seed).assign(as_of=pd.Timestamp("2026-01-01") + pd.Timedelta(days=30 * k))
            for k, seed in enumerate(range(4))
        ],
        ignore_index=True,
    )
    return training_reference(snaps, FEATURES, bins=10)


def test_each_feature_records_its_natural_snapshot_to_snapshot_psi(reference: dict) -> None:
    assert reference["snapshots"] == 4 and reference["n_rows"] == 2000
    for entry in reference["features"].values():
        assert 0 < entry["natural_psi"] < 0.1  # sampling noise between equal snapshots


def test_data_like_the_training_data_raises_no_banner(reference: dict) -> None:
    rep = drift_report(reference, _world(400, 99), MonitoringConfig())
    assert rep["available"] and not rep["banner"] and rep["features"] == []
    assert set(rep["psi"]) == set(FEATURES)
    assert max(rep["psi"].values()) < 0.1


def test_a_shifted_feature_raises_the_banner_and_is_named(reference: dict) -> None:
    rep = drift_report(reference, _world(400, 99, spend_shift=3.0), MonitoringConfig())
    assert rep["banner"]
    assert [f["feature"] for f in rep["features"]] == ["spend_365d"]
    assert rep["features"][0]["level"] == "alert" and rep["features"][0]["psi"] > 0.25
    assert "1 input feature differs" in rep["message"]
    assert "Order amount summed over the 365 days" in rep["message"]  # the catalog's words


def test_the_banner_waits_for_the_configured_number_of_drifted_features(reference: dict) -> None:
    cfg = MonitoringConfig(min_features_alerting=2)
    rep = drift_report(reference, _world(400, 99, spend_shift=3.0), cfg)
    assert not rep["banner"]
    assert [f["level"] for f in rep["features"]] == ["alert"]


def test_a_feature_is_judged_against_its_own_natural_movement(reference: dict) -> None:
    current = _world(400, 99, spend_shift=3.0)
    value = drift_report(reference, current, MonitoringConfig())["psi"]["spend_365d"]
    calendar_driven = json.loads(json.dumps(reference))
    calendar_driven["features"]["spend_365d"]["natural_psi"] = value  # moves this much anyway
    rep = drift_report(calendar_driven, current, MonitoringConfig())
    assert not rep["banner"] and rep["features"] == []
    assert drift_report(calendar_driven, current, MonitoringConfig(psi_natural_margin=1.0))[
        "banner"
    ]


def test_without_a_reference_profile_drift_is_not_checked_and_says_how_to_fix_it() -> None:
    rep = drift_report(None, _world(10, 1), MonitoringConfig())
    assert not rep["available"] and not rep["banner"]
    assert "retrain" in rep["message"]


def test_psi_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="psi_warn"):
        MonitoringConfig(psi_warn=0.3, psi_alert=0.2)


def test_a_shift_on_the_training_date_fires_since_unlabelled_snapshots_are_no_reference() -> None:
    """Scoring on the training as-of: that snapshot is in the training set (unlabelled, for
    the timing model). Were it pooled into the reference, it would also set the natural
    PSI and could never drift from itself; the reference is the labelled dates only."""
    labelled = [
        _world(500, seed).assign(
            as_of=pd.Timestamp("2026-01-01") + pd.Timedelta(days=30 * k), churn=float(k % 2)
        )
        for k, seed in enumerate(range(4))
    ]
    as_of = pd.Timestamp("2026-06-01")
    current = _world(500, 99, spend_shift=3.0).assign(as_of=as_of, churn=np.nan)
    ts = pd.concat([*labelled, current], ignore_index=True)
    profile = training_reference(ts, FEATURES, bins=10)
    assert profile["snapshots"] == 4 and profile["n_rows"] == 2000
    assert profile["last_snapshot"] == "2026-04-01"
    assert profile["features"]["spend_365d"]["natural_psi"] < 0.1
    rep = drift_report(profile, current, MonitoringConfig())
    assert rep["banner"] and [f["feature"] for f in rep["features"]] == ["spend_365d"]


def test_a_tiny_early_snapshot_does_not_set_the_natural_movement() -> None:
    """A portfolio whose first snapshots held 12-86 accounts (before its subscriptions
    began) had natural PSIs of 9-13, so a PSI of 7.8 after a three-week usage outage
    raised no banner."""
    snaps = [
        _world(500, seed).assign(as_of=pd.Timestamp("2026-01-01") + pd.Timedelta(days=30 * k))
        for k, seed in enumerate(range(4))
    ]
    early = _world(12, 7).assign(as_of=pd.Timestamp("2025-06-01"))
    early["spend_365d"] *= 50  # nothing like the later book
    reference = training_reference(pd.concat([early, *snaps]), FEATURES, bins=10)
    assert reference["natural_frames_left_out"] == 1
    assert reference["features"]["spend_365d"]["natural_psi"] < 0.1
    shifted = _world(500, 99).assign(as_of=pd.Timestamp("2026-06-01"))
    shifted["spend_365d"] *= 4
    assert drift_report(reference, shifted, MonitoringConfig())["banner"]


def test_a_week_scored_on_another_weekday_is_not_drift() -> None:
    """Seen: usage exported weekly (dated Sundays), snapshots 28 days apart (all Mondays),
    and a week scored on a Thursday raised 'Model drift warning' (days since usage: PSI 6.8);
    the same week scored on the Monday did not."""

    def day(as_of: pd.Timestamp, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        w = _world(500, seed)
        since_sunday = (as_of.dayofweek + 1) % 7  # days since the last weekly export
        w["usage_recency_days"] = since_sunday + 7.0 * rng.integers(0, 3, len(w))
        return w.assign(as_of=as_of)

    mondays = [pd.Timestamp("2026-01-05") + pd.Timedelta(days=28 * k) for k in range(4)]
    snaps = pd.concat([day(d, k) for k, d in enumerate(mondays)], ignore_index=True)
    feats = [*FEATURES, "usage_recency_days"]
    thursday = day(pd.Timestamp("2026-04-30"), 99)
    same_weekday_only = training_reference(snaps, feats, bins=10)
    assert drift_report(same_weekday_only, thursday, MonitoringConfig())["banner"]
    week = [day(mondays[-1] + pd.Timedelta(days=k), 50 + k) for k in range(1, 7)]
    reference = training_reference(snaps, feats, bins=10, between=week)
    assert reference["snapshots"] == 4 and reference["n_rows"] == 2000  # the pool is unchanged
    assert not drift_report(reference, thursday, MonitoringConfig())["banner"]
    shifted = thursday.assign(spend_365d=thursday["spend_365d"] * 4)  # a real change still shows
    assert [
        f["feature"] for f in drift_report(reference, shifted, MonitoringConfig())["features"]
    ] == ["spend_365d"]


# -- features filling in as history accrues -----------------------------------------


def test_a_feature_filling_in_is_judged_on_its_values_and_one_emptying_out_on_every_bin() -> None:
    # bins: two value bins, then missing; the values keep their 50/50 split
    training = [0.02, 0.02, 0.96]
    filled = [0.15, 0.15, 0.70]
    assert psi(training, filled) > 0.5  # over every bin: far beyond the alert
    assert judged_psi(training, filled) == pytest.approx(0.0, abs=1e-12)
    emptied = [0.01, 0.01, 0.98]  # a feed going missing: the missing bin counts
    assert judged_psi([0.3, 0.3, 0.4], emptied) == pytest.approx(psi([0.3, 0.3, 0.4], emptied))
    # filled in with other values than training saw: still drift
    assert judged_psi(training, [0.29, 0.01, 0.70]) > 0.25
    assert math.isnan(judged_psi([0.0, 0.0, 1.0], [0.1, 0.1, 0.8]))  # never a value in training


def _yearly_survey(n: int, seed: int, answered_twice: float) -> pd.DataFrame:
    """'latest minus the previous answer' exists only for accounts with two campaigns."""
    w = _world(n, seed)
    rng = np.random.default_rng(seed + 1000)
    change = rng.normal(0, 1.5, n).round()
    w["survey_score_change"] = np.where(rng.random(n) < answered_twice, change, np.nan)
    return w


def test_a_yearly_survey_filling_in_raises_no_banner_but_is_recorded() -> None:
    """Seen: a food wholesaler's third September campaign took the survey change from 4% of
    the training rows to 30% of the accounts (PSI 0.59 over every bin): a banner in 8 of 12
    weeks, atop every manager's digest, that no retrain could clear."""
    snaps = pd.concat(
        [
            _yearly_survey(800, k, share).assign(
                as_of=pd.Timestamp("2025-06-01") + pd.Timedelta(days=28 * k)
            )
            for k, share in enumerate([0.0, 0.0, 0.0, 0.05, 0.06, 0.07])
        ],
        ignore_index=True,
    )
    feats = [*FEATURES, "survey_score_change"]
    profile = training_reference(snaps, feats, bins=10)
    autumn = _yearly_survey(800, 99, 0.30)
    rep = drift_report(profile, autumn, MonitoringConfig())
    assert not rep["banner"] and rep["features"] == []
    [entry] = rep["filled_in"]
    assert entry["feature"] == "survey_score_change" and entry["psi_all_bins"] > 0.25
    assert entry["with_value_training"] == pytest.approx(0.03, abs=0.01)
    assert entry["with_value_now"] == pytest.approx(0.30, abs=0.04)
    assert "now has a value for more accounts than in training" in rep["message"]
    assert "Latest survey score minus the previous answer of the same kind" in rep["message"]
    # a broken export filling the gaps with zeros is a change of values: still the banner
    zeros = autumn.assign(survey_score_change=autumn["survey_score_change"].fillna(0.0))
    broken = drift_report(profile, zeros, MonitoringConfig())
    assert broken["banner"] and broken["features"][0]["feature"] == "survey_score_change"
    # and a feed gone half missing empties its feature out: the banner
    gone = autumn.assign(spend_365d=autumn["spend_365d"].where(autumn.index % 2 == 0))
    emptied = drift_report(profile, gone, MonitoringConfig())
    assert emptied["banner"] and [f["feature"] for f in emptied["features"]] == ["spend_365d"]


def test_a_champion_trained_before_the_rule_is_judged_as_it_was() -> None:
    """A version-1 profile measured its natural movement over every bin: judging its
    features on their values alone would compare two different statistics."""
    snaps = pd.concat(
        [
            _yearly_survey(800, k, share).assign(
                as_of=pd.Timestamp("2025-06-01") + pd.Timedelta(days=28 * k)
            )
            for k, share in enumerate([0.0, 0.0, 0.0, 0.05, 0.06, 0.07])
        ],
        ignore_index=True,
    )
    profile = training_reference(snaps, [*FEATURES, "survey_score_change"], bins=10)
    old = {**profile, "version": 1}
    rep = drift_report(old, _yearly_survey(800, 99, 0.30), MonitoringConfig())
    assert rep["banner"] and rep["filled_in"] == []
    assert rep["features"][0]["feature"] == "survey_score_change"
