"""Explanations: exact TreeSHAP, probability-point contributions, readable reasons, behaviour."""

from __future__ import annotations

import copy
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

from ka_ml.features import catalog
from ka_ml.features.build import build_features
from ka_ml.jobs.score import load_models
from ka_ml.modeling.churn import Calibrator, ChurnModel
from ka_ml.scoring.explain import (
    GROUPS,
    changes_since,
    fold_implied,
    probability_contributions,
    reason_group,
    top_reasons,
)


def _sig(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture(scope="module")
def churn(trained) -> ChurnModel:  # type: ignore[no-untyped-def]
    return load_models(trained.cfg).churn


@pytest.fixture(scope="module")
def X(trained) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    h = trained.history
    return build_features(h, h.default_as_of, trained.cfg).reset_index(drop=True)


@pytest.fixture(scope="module")
def isotonic_churn(churn: ChurnModel, X: pd.DataFrame) -> ChurnModel:
    """The same booster behind an isotonic calibrator (flat steps exercise the raw-slope path)."""
    m = churn.margin(X)
    y = (np.random.default_rng(0).uniform(size=len(m)) < _sig(m)).astype(float)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(m, y)
    model = copy.copy(churn)
    return model.attach(calibrator=Calibrator(method="isotonic", model_=iso))


def test_treeshap_log_odds_contributions_add_up_to_the_margin(
    churn: ChurnModel, X: pd.DataFrame
) -> None:
    c = churn.contributions(X)
    assert c.shape == (len(X), len(churn.features_) + 1)
    assert np.allclose(c[:, -1], c[0, -1])  # one base value for the portfolio
    np.testing.assert_allclose(c.sum(axis=1), churn.margin(X), rtol=0, atol=1e-9)


def referenced(model: ChurnModel, X: pd.DataFrame) -> tuple[np.ndarray, float]:
    """TreeSHAP's log-odds contributions and base, measured from the model's reason
    reference (the typical lit account in training), as the reasons are."""
    c = model.contributions(X)
    ref = model.reason_reference_
    assert ref is not None and ref.shape == (c.shape[1] - 1,)  # training attached it
    return c[:, :-1] - ref[None, :], float(c[0, -1] + ref.sum())


def test_the_reasons_reference_is_the_typical_lit_account_and_keeps_the_sum(
    trained, churn: ChurnModel, X: pd.DataFrame
) -> None:  # type: ignore[no-untyped-def]
    from ka_ml.scoring.lifecycle import lifecycle_states

    phi, base = referenced(churn, X)
    np.testing.assert_allclose(phi.sum(axis=1) + base, churn.margin(X), rtol=0, atol=1e-9)
    # measured from the typical lit account (training's latest snapshot), today's lit
    # accounts average nearer the reference than TreeSHAP's base over every training row
    lit = (lifecycle_states(X, trained.cfg)["lifecycle"] != "lapsed").to_numpy()
    raw = churn.contributions(X)[:, :-1]
    assert abs(phi[lit].sum(axis=1).mean()) < abs(raw[lit].sum(axis=1).mean())


@pytest.mark.parametrize("which", ["champion", "isotonic"])
def test_probability_contributions_add_up_to_p_minus_base_p(
    which: str, churn: ChurnModel, isotonic_churn: ChurnModel, X: pd.DataFrame
) -> None:
    model = churn if which == "champion" else isotonic_churn
    pc, p, p_base = probability_contributions(model, X)
    np.testing.assert_allclose(p, model.predict_proba(X)[:, 1], rtol=0, atol=1e-12)
    phi, base = referenced(model, X)
    total = phi.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        calibrated = (np.abs(p - p_base) >= 0.005) & ((p - p_base) / total > 0)
    # both paths must be exercised for the test to mean something
    assert calibrated.sum() >= len(X) // 5
    np.testing.assert_allclose(
        pc[calibrated].sum(axis=1), (p - p_base)[calibrated], rtol=0, atol=1e-9
    )
    # elsewhere (flat calibration) they add up to the raw booster probability's gap
    raw_gap = _sig(base + total) - _sig(np.array(base))
    np.testing.assert_allclose(pc[~calibrated].sum(axis=1), raw_gap[~calibrated], rtol=0, atol=1e-9)
    if which == "isotonic":
        assert (~calibrated).any(), "the isotonic steps should send some rows down the raw path"


@pytest.mark.parametrize("which", ["champion", "isotonic"])
def test_probability_contributions_keep_treeshap_signs_and_order_on_every_row(
    which: str, churn: ChurnModel, isotonic_churn: ChurnModel, X: pd.DataFrame
) -> None:
    model = churn if which == "champion" else isotonic_churn
    pc, _, _ = probability_contributions(model, X)
    phi, _ = referenced(model, X)
    assert np.isfinite(pc).all()
    np.testing.assert_array_equal(np.sign(pc), np.sign(phi))
    by_log_odds = np.argsort(-np.abs(phi), axis=1, kind="stable")
    ranked = np.take_along_axis(np.abs(pc), by_log_odds, axis=1)
    assert (np.diff(ranked, axis=1) <= 1e-15).all()


def test_the_shap_package_agrees_with_lightgbm_pred_contrib(
    churn: ChurnModel, X: pd.DataFrame
) -> None:
    import shap

    sample = X.sample(60, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap 0.51: "output has changed to a list of ndarray"
        explainer = shap.TreeExplainer(churn.booster_)
        values = np.asarray(explainer.shap_values(churn.aligned(sample)))
    if values.ndim == 3:  # a per-class list: keep the positive class
        values = values[-1]
    trees = copy.deepcopy(churn).set_family("lightgbm")  # the blend's tree part
    ours = trees.contributions(sample)
    assert values.shape == ours[:, :-1].shape
    assert np.abs(values - ours[:, :-1]).max() < 1e-6
    assert abs(float(np.ravel(explainer.expected_value)[-1]) - ours[0, -1]) < 1e-6


@pytest.fixture(scope="module")
def reasons(churn: ChurnModel, X: pd.DataFrame) -> pd.DataFrame:
    return top_reasons(churn, X)


def test_reasons_are_readable_sentences_with_a_direction(
    reasons: pd.DataFrame, churn: ChurnModel
) -> None:
    codes = re.compile("|".join(re.escape(f) for f in churn.features_))
    for k in (1, 2, 3):
        texts = reasons[f"reason_{k}"].astype(str)
        assert (texts.str.len() > len(" (raises risk)") + 5).all()
        assert texts.str.match(r".*\((raises|lowers) risk\)$").all()
        body = texts.str.replace(r" \((raises|lowers) risk\)$", "", regex=True)
        assert body.str.contains(r"\d|[A-Za-z]{3,}").all()
        assert not body.str.contains("_").any(), body[body.str.contains("_")].head().tolist()
        assert not body.str.contains(codes).any()
        shap_k = reasons[f"reason_{k}_shap"].to_numpy(float)
        raises = texts.str.endswith("(raises risk)").to_numpy()
        np.testing.assert_array_equal(raises, shap_k > 0)


def test_no_shown_reason_on_the_demo_contradicts_its_own_sentence(
    reasons: pd.DataFrame, X: pd.DataFrame
) -> None:
    raw = X.reset_index(drop=True)
    for k in (1, 2, 3):
        feats = reasons[f"reason_{k}_feature"].to_numpy(object)
        raises = reasons[f"reason_{k}_direction"].eq("raises risk").to_numpy()
        for f in set(feats):
            rows = feats == f
            backwards = catalog.get(f).reads_backwards(raw[f].to_numpy(float)[rows], raises[rows])
            assert not backwards.any(), reasons.loc[rows, f"reason_{k}"][backwards].head().tolist()


def test_a_level_is_said_against_the_typical_account_only_where_it_shows_why(
    reasons: pd.DataFrame, churn: ChurnModel, X: pd.DataFrame
) -> None:
    """ "Orders in the last 90 days: 1 (raises risk)", "Average time between orders: 96 days
    (raises risk)", "No order for 52 days (typical gap 78 days) (raises risk)": levels said
    with no yardstick, or one that reads against the risk. The typical lit account the risk
    is measured from ("34 days at a typical account") is said there, in its own words, and
    only where the value is on the side of it the direction says (either side for a feature
    with no good or bad side); never where the sentence's own comparison already says why."""
    typical = churn.reason_typical_
    assert typical is not None
    # training attached every feature whose sentences can say it, from its lit accounts
    assert {"orders_90d", "spend_90d", "recency_days", "gap_mean_days", "tenure_days"} <= set(
        typical
    )
    assert all(any("{typical}" in t for t in catalog.get(f).templates) for f in typical)
    raw = X.reset_index(drop=True)
    ratio = raw["overdue_ratio"].to_numpy(float)
    said: dict[str, int] = {}
    for k in (1, 2, 3):
        feats = reasons[f"reason_{k}_feature"].to_numpy(object)
        texts = reasons[f"reason_{k}"].astype(str).to_numpy(object)
        raises = reasons[f"reason_{k}_direction"].eq("raises risk").to_numpy()
        for f in set(feats) & set(typical):
            rows = np.flatnonzero(feats == f)
            spec = catalog.get(f)
            values = raw.loc[rows, f].to_numpy(float)
            agrees = spec.agrees_with(values, typical[f], raises[rows])
            words = spec.say_typical(typical[f])
            clause = re.compile(rf"[(;] {{0,1}}{re.escape(words)} at a typical account\)")
            with_typical = np.array(["at a typical account" in t for t in texts[rows]])
            assert all(clause.search(t) for t in texts[rows][with_typical]), texts[rows][:3]
            assert not (with_typical & ~agrees).any(), texts[rows][with_typical & ~agrees][:3]
            # left out where the own comparison says why: the account's own average, or
            # the silence past its own cycle
            own = np.array(["in an average" in t for t in texts[rows]])
            if f == "recency_days":
                own |= catalog.get("overdue_ratio").shows(ratio[rows], raises[rows])
                assert not (with_typical & own).any(), texts[rows][with_typical & own][:3]
            bare = {
                t.format(value=spec.format(v)) + d
                for t in spec.templates
                if re.fullmatch(r"[^{}]*\{value\}[^{}]*", t)
                for v in values
                for d in (" (raises risk)", " (lowers risk)")
            }
            if f == "recency_days":  # "No order for 52 days (typical gap 78 days)"
                bare |= {
                    f"No order for {spec.format(v)} (typical gap "
                    f"{catalog.get('gap_median_days').format(g)}){d}"
                    for v, g in zip(values, raw.loc[rows, "gap_median_days"], strict=True)
                    for d in (" (raises risk)", " (lowers risk)")
                }
            same_words = np.array([spec.format(v) == words for v in values])
            missed = np.array([t in bare for t in texts[rows]]) & agrees & ~own & ~same_words
            assert not missed.any(), texts[rows][missed][:3]
            said[f] = said.get(f, 0) + int(with_typical.sum())
    # the demo has such accounts for several kinds of level: the checks are not vacuous
    assert {f for f, n in said.items() if n} >= {"orders_90d", "recency_days", "gap_mean_days"}


def test_reasons_name_model_features_from_three_different_groups_strongest_first(
    reasons: pd.DataFrame, churn: ChurnModel, X: pd.DataFrame
) -> None:
    feats = reasons[[f"reason_{k}_feature" for k in (1, 2, 3)]]
    assert feats.isin(churn.features_).all().all()
    groups = feats.map(reason_group)
    assert (groups.nunique(axis=1) == 3).all()
    shap = reasons[[f"reason_{k}_shap" for k in (1, 2, 3)]].to_numpy()
    strength = np.abs(shap)
    raw = X.reset_index(drop=True)  # the reasons' rows, in order
    ended = raw["contract_days_to_end"].to_numpy(float)
    buys_without = (ended < 0) & (raw["recency_days"].to_numpy(float) < -ended)

    def is_static(k: int) -> np.ndarray:
        named = feats[f"reason_{k}_feature"].to_numpy()
        missing = np.array([pd.isna(raw.iloc[i][f]) for i, f in enumerate(named)])
        past = buys_without & pd.Series(named).map(reason_group).eq("contract").to_numpy()
        absent = [catalog.get(f).absent_with for f in named]  # "No product usage on record"
        unrecorded = np.array([bool(a) and pd.isna(raw.iloc[i][a]) for i, a in enumerate(absent)])
        return np.isin(named, ["industry", "region"]) | missing | past | unrecorded

    static = np.column_stack([is_static(k) for k in (1, 2, 3)])
    up = probability_contributions(churn, X)[0].sum(axis=1) > 0
    # an account riskier than the reference: what it does that raises the risk by a point,
    # then who it is, then what lowers it; by size within each
    counts = strength >= 0.01
    raising = shap > 0
    rank = np.select([counts & ~static & raising, counts & raising, counts & ~static], [0, 1, 2], 3)
    key = rank * 2.0 - strength
    assert (np.diff(key[up], axis=1) >= -1e-12).all()
    assert (rank[up][:, 1:] > rank[up][:, :1]).any()  # the demo has such accounts
    assert (static[up][:, 2] & ~static[up][:, 1]).any()  # a static fact moved after behaviour
    # the others keep their order after the lead; a weaker lead is there because it points
    # the way the account's risk moved or the stronger one is a static fact
    assert (np.diff(strength[~up][:, 1:], axis=1) <= 1e-12).all()
    weaker = strength[:, 0] < strength[:, 1] - 1e-12
    along = raising[:, 0] == up
    assert (along | static[:, 1])[weaker & ~up].all()


def test_a_static_attribute_never_leads_while_behaviour_carries_a_point() -> None:
    from types import SimpleNamespace

    feats = ["region", "recency_days", "orders_90d"]
    X = pd.DataFrame(
        {"region": ["Portugal", "Cyprus"], "recency_days": [80.0, 20.0], "orders_90d": [1.0, 3.0]}
    )
    contrib = np.array([[0.20, 0.05, 0.001], [0.20, 0.005, 0.001]])
    got = top_reasons(SimpleNamespace(features_=feats), X, contributions=contrib)  # type: ignore[arg-type]
    assert got.loc[0, ["reason_1_feature", "reason_2_feature", "reason_3_feature"]].tolist() == [
        "recency_days", "region", "orders_90d"
    ]  # fmt: skip
    assert got.loc[0, "reason_2_shap"] == pytest.approx(0.20)  # still shown, second
    # no behavioural reason carries a point: the model's strongest reason leads
    assert got.loc[1, "reason_1_feature"] == "region"


def test_a_reason_on_the_gaps_spread_reads_the_rows_order_count() -> None:
    """The reasons pass the row's repeat orders to the gap spread's wording: with two
    order days (one gap) the spread is not measurable, with three it is said."""
    from types import SimpleNamespace

    feats = ["gap_std_days", "recency_days"]
    X = pd.DataFrame(
        {"gap_std_days": [0.0, 0.0], "recency_days": [30.0, 30.0], "repeat_orders": [1.0, 2.0]}
    )
    contrib = np.array([[0.12, 0.01], [0.12, 0.01]])
    got = top_reasons(SimpleNamespace(features_=feats), X, contributions=contrib)  # type: ignore[arg-type]
    assert got["reason_1"].tolist() == [
        "Only one gap between orders so far: too few orders to tell how regular they are"
        " (raises risk)",
        "Time between orders varies by 0 days (standard deviation) (raises risk)",
    ]


def test_a_contract_that_ended_before_the_last_order_does_not_lead() -> None:
    """An account buying without a contract: the old lapse is who it is, not why now."""
    from types import SimpleNamespace

    feats = ["contract_days_to_end", "recency_days"]
    X = pd.DataFrame(
        {"contract_days_to_end": [-775.0, -45.0, -45.0], "recency_days": [11.0, 60.0, 20.0]}
    )
    contrib = np.array([[0.30, 0.04], [0.30, 0.04], [0.30, 0.04]])
    got = top_reasons(SimpleNamespace(features_=feats), X, contributions=contrib)  # type: ignore[arg-type]
    assert got["reason_1_feature"].tolist() == [
        "recency_days",  # lapsed 775 days ago, ordered 11 days ago
        "contract_days_to_end",  # lapsed 45 days ago, no order since: the news
        "recency_days",  # ordered 20 days ago, after the lapse
    ]
    assert got.loc[0, "reason_2"].startswith("Contract lapsed 2.1 years ago")  # still shown


def test_a_contract_that_ended_within_the_horizon_is_news_even_when_the_account_ordered_since() -> (
    None
):
    """Read on a 40-account portfolio: Junipervale Inc (red, 26%) led with 'High or critical
    severity: 0% of tickets' while its contract had ended 34 days earlier, unrenewed."""
    from types import SimpleNamespace

    feats = ["contract_days_to_end", "recency_days"]
    X = pd.DataFrame(
        {"contract_days_to_end": [-34.0, -90.0, -91.0], "recency_days": [4.0, 4.0, 4.0]}
    )
    contrib = np.array([[0.09, 0.04]] * 3)
    model = SimpleNamespace(features_=feats)
    got = top_reasons(model, X, contributions=contrib, recent_lapse_days=90)  # type: ignore[arg-type]
    assert got["reason_1_feature"].tolist() == [
        "contract_days_to_end",  # the renewal that has not come
        "contract_days_to_end",  # the horizon's last day still counts
        "recency_days",  # older: who the account is now
    ]
    assert got.loc[0, "reason_1"].startswith("Contract lapsed 34 days ago")
    # without the window every lapse before the last order is a fact (the default)
    plain = top_reasons(model, X, contributions=contrib)  # type: ignore[arg-type]
    assert plain["reason_1_feature"].eq("recency_days").all()


def test_a_static_lead_gives_way_to_a_reason_pointing_the_way_the_risk_moved() -> None:
    """Read on the demo's red list: Juniperfield SE (red, 43%) led with 'Average weekly usage
    in the last 90 days: 123.8 (lowers risk)' once its old contract lapse stepped down: the
    strongest behavioural reason, but pointing against the account's risk."""
    from types import SimpleNamespace

    feats = ["region", "usage_weekly_90d", "gap_mean_days"]
    X = pd.DataFrame(
        {"region": ["EMEA"] * 4, "usage_weekly_90d": [123.8] * 4, "gap_mean_days": [120.0] * 4}
    )
    contrib = np.array(
        [
            [0.20, -0.08, 0.03],  # risk up: the reason raising it leads
            [0.20, -0.08, 0.005],  # nothing behavioural raises it by a point: the fact stays
            [-0.20, 0.08, -0.03],  # risk down: the reason lowering it leads
            [0.20, -0.15, -0.10],  # the fact raises it, behaviour lowers it more
        ]
    )
    got = top_reasons(SimpleNamespace(features_=feats), X, contributions=contrib)  # type: ignore[arg-type]
    assert got.loc[0, ["reason_1_feature", "reason_2_feature", "reason_3_feature"]].tolist() == [
        "gap_mean_days", "region", "usage_weekly_90d"
    ]  # fmt: skip
    assert got.loc[0, "reason_1_direction"] == "raises risk"
    # what raised the risk leads, not "usage 123.8 (lowers risk)" on a flagged account
    assert got.loc[1, "reason_1_feature"] == "region"
    assert got.loc[1, "reason_1_direction"] == "raises risk"
    assert got.loc[2, "reason_1_feature"] == "gap_mean_days"
    assert got.loc[2, "reason_1_direction"] == "lowers risk"
    # a fact against the way the risk moved gives way to behaviour along it
    assert got.loc[3, "reason_1_feature"] == "usage_weekly_90d"
    assert got.loc[3, "reason_1_direction"] == "lowers risk"


def test_a_missing_value_reason_no_contract_on_record_does_not_lead_either() -> None:
    from types import SimpleNamespace

    feats = ["contract_days_to_end", "recency_days"]
    X = pd.DataFrame({"contract_days_to_end": [np.nan, 40.0], "recency_days": [70.0, 70.0]})
    contrib = np.array([[0.30, 0.04], [0.30, 0.04]])
    got = top_reasons(SimpleNamespace(features_=feats), X, contributions=contrib)  # type: ignore[arg-type]
    assert got["reason_1_feature"].tolist() == ["recency_days", "recency_days"]
    assert got.loc[0, "reason_2"].startswith("No contract on record")
    # a real date is when, not why: second while behaviour carries a point (next test)
    assert got.loc[1, "reason_2"].startswith("Contract ends in 40 days")


def test_a_contract_date_to_come_gives_the_lead_to_what_makes_the_renewal_risky() -> None:
    """Read in a subscription portfolio (contract churn label): reason 1 was "Contract ends
    in N days" on all 140 red account-weeks of seven weekly runs, beside an action that already
    said "Renewal due in N days", while "Latest survey score 2, down 6 points" or "No
    product usage for 190 days" came second. The date stays a reason; behaviour moving the
    risk the same way by a point leads. Alone, or against a lapse, the date still leads."""
    from types import SimpleNamespace

    feats = ["contract_days_to_end", "survey_score_last", "usage_recency_days"]
    X = pd.DataFrame(
        {
            "contract_days_to_end": [42.0, 42.0, -20.0, 0.0],
            "survey_score_last": [2.0, 8.0, 2.0, 2.0],
            "survey_score_change": [-6.0, 0.0, -6.0, -6.0],
            "usage_recency_days": [1.0, 1.0, 1.0, 1.0],
        }
    )
    contrib = np.array(
        [
            [0.40, 0.06, -0.02],  # a risky renewal: the survey says why
            [0.40, 0.004, -0.02],  # nothing behavioural carries a point: the date leads
            [0.40, 0.06, -0.02],  # lapsed 20 days ago, unrenewed: news, it leads
            [0.40, 0.06, -0.02],  # ends today: still a date
        ]
    )
    got = top_reasons(SimpleNamespace(features_=feats), X, contributions=contrib)  # type: ignore[arg-type]
    assert got["reason_1_feature"].tolist() == [
        "survey_score_last", "contract_days_to_end", "contract_days_to_end", "survey_score_last"
    ]  # fmt: skip
    assert got.loc[0, "reason_1"] == "Latest survey score 2/10, down 6 points (raises risk)"
    assert got.loc[0, "reason_2"] == "Contract ends in 42 days (raises risk)"
    assert got.loc[0, "reason_3"] == "Product not used for 1 day (lowers risk)"
    assert got.loc[2, "reason_1"] == "Contract lapsed 20 days ago (raises risk)"
    assert got.loc[3, "reason_2"] == "Contract ends today (raises risk)"


def test_a_reason_whose_sentence_contradicts_its_direction_is_not_said() -> None:
    """Read in a subscription portfolio: "Survey score up 3 points since the previous survey
    (raises risk)", and on green accounts "Usage in the last 90 days fell 6% versus the 90
    days before (lowers risk)" (against a reference account whose usage fell more). True to
    the model, read by a manager as a mistake. A group is said through a member that reads
    the way the group moves the risk; one with none goes after every other group."""
    from types import SimpleNamespace

    feats = ["survey_score_change", "survey_score_last", "usage_trend_90d", "recency_days"]
    X = pd.DataFrame(
        {
            "survey_score_change": [3.0, 3.0, -2.0],
            "survey_score_last": [6.0, 6.0, 9.0],
            "usage_trend_90d": [-0.06, 0.25, 0.0],
            "usage_recency_days": [2.0, 2.0, 2.0],
            "recency_days": [40.0, 40.0, 5.0],
        }
    )
    contrib = np.array(
        [
            # the survey group raises risk through the change (up 3): said by the level
            [0.06, 0.04, -0.08, 0.02],
            # the same; usage rose 25% and lowers risk: said as it is, after what raises it
            [0.06, 0.04, -0.08, 0.02],
            # survey down 2 "lowers" risk and the level 9 lowers it: the level says it;
            # usage "did not change" reads neither way
            [-0.07, -0.01, 0.03, -0.02],
        ]
    )
    got = top_reasons(SimpleNamespace(features_=feats), X, contributions=contrib)  # type: ignore[arg-type]
    said = got[["reason_1", "reason_2", "reason_3"]]
    assert not said.map(lambda t: "Survey score up" in t).any().any()
    # the level says it, without the clause that would read against it
    assert got.loc[0, "reason_1"] == "Latest survey score 6/10 (raises risk)"
    # usage fell 6% yet "lowers risk": after every other group, here third of three
    assert got.loc[0, "reason_3_feature"] == "usage_trend_90d"
    assert got.loc[0, "reason_2_feature"] == "recency_days"
    assert got.loc[1, "reason_2"] == "No order for 40 days (raises risk)"
    assert got.loc[1, "reason_3"] == (
        "Usage in the last 90 days rose 25% versus the 90 days before (lowers risk)"
    )
    assert got.loc[2, "reason_1"] == "Latest survey score 9/10 (lowers risk)"
    assert got.loc[2, "reason_2"].startswith("Usage in the last 90 days did not change")


def test_an_account_that_never_used_the_product_reads_so_and_it_does_not_lead() -> None:
    """Read over a quarter: accounts with no usage rows at all led with "Average weekly
    usage in the last 90 days: 0 (raises risk)" (18 first reasons): they never used the
    product. The value stays 0 for the model; the sentence says there is no usage, and
    like "No contract on record" it is who the account is, not what it did."""
    from types import SimpleNamespace

    feats = ["usage_weekly_90d", "recency_days"]
    X = pd.DataFrame(
        {
            "usage_weekly_90d": [0.0, 0.0],
            "usage_recency_days": [np.nan, 120.0],
            "recency_days": [70.0, 70.0],
        }
    )
    contrib = np.array([[0.30, 0.04], [0.30, 0.04]])
    got = top_reasons(SimpleNamespace(features_=feats), X, contributions=contrib)  # type: ignore[arg-type]
    assert got["reason_1_feature"].tolist() == ["recency_days", "usage_weekly_90d"]
    assert got.loc[0, "reason_2"].startswith("No product usage on record")
    assert got.loc[1, "reason_1"].startswith("Average weekly usage in the last 90 days: 0")


def test_reasons_keep_the_frame_index(churn: ChurnModel, X: pd.DataFrame) -> None:
    sub = X.iloc[[5, 2, 9]]
    got = top_reasons(churn, sub)
    assert list(got.index) == [5, 2, 9]
    pd.testing.assert_frame_equal(got, top_reasons(churn, X).loc[[5, 2, 9]])


def test_related_features_share_a_reason_group() -> None:
    assert {reason_group(f) for f in ("orders_30d", "orders_365d", "orders_trend_90d")} == {
        "order volume"
    }
    rhythm = ("recency_days", "overdue_ratio", "recency_tenure_ratio", "gap_median_days",
              "gap_mean_days", "gap_last_days")  # fmt: skip
    assert {reason_group(f) for f in rhythm} == {"purchase rhythm"}
    lifetime = ("orders_lifetime", "spend_lifetime", "orders_per_month", "spend_per_month",
                "repeat_orders", "active_span_days")  # fmt: skip
    assert {reason_group(f) for f in lifetime} == {"buying history"}
    assert reason_group("first_order_amount") == reason_group("aov_365d") == "order value"
    assert reason_group("complaints_per_month_365d") == "complaints"
    assert reason_group("tenure_days") == "time as a customer"
    assert reason_group("credit_share_365d") == "returns and credits"


@pytest.mark.parametrize("windows", [catalog.DEFAULT_WINDOWS, (7, 45, 730)])
def test_every_catalog_feature_has_a_named_reason_group(windows: tuple[int, ...]) -> None:
    """Read in a digest: "biggest mover: tenure_days (+1 pts)". A feature that matches no
    group reached managers as its code; every model feature the catalog can build has a
    group (the scorer-only ones are never a reason)."""
    named = {name for _, name in GROUPS}
    specs = [f for f in catalog.catalog(windows) if f.model]
    ungrouped = [f.name for f in specs if reason_group(f.name) not in named]
    assert ungrouped == []


def test_no_change_in_features_reads_as_no_material_change(
    churn: ChurnModel, X: pd.DataFrame
) -> None:
    now = X.head(20)
    got = changes_since(churn, now, now.copy(), churn.predict_proba(now)[:, 1])
    assert (got == "No material change since last week.").all()


def test_changes_name_the_biggest_mover_in_points(churn: ChurnModel, X: pd.DataFrame) -> None:
    now = X.head(40)
    before = now.copy()
    before["recency_days"] = np.maximum(before["recency_days"] - 120, 0)
    got = changes_since(churn, now, before, churn.predict_proba(now)[:, 1])
    moved = got[got.str.startswith("Risk") & ~got.str.contains("from several small changes")]
    assert len(moved) > 0
    assert moved.str.match(
        r"^Risk ((up|down) (1 pt|[2-9] pts|[1-9]\d+ pts)|unchanged) since last week; "
        r"biggest mover: .+ \(([+-]1 pt|[+-]\d+ pts)(, offset by the rest)?\): .+\.$"
    ).all()
    assert not moved.str.contains("_").any()


def test_making_accounts_more_overdue_does_not_lower_churn_risk_on_average(
    churn: ChurnModel, X: pd.DataFrame
) -> None:
    """Behavioural: 60 more days without an order should not look safer across the portfolio."""
    later = X.copy()
    later["recency_days"] = later["recency_days"] + 60
    before, after = churn.predict_proba(X)[:, 1], churn.predict_proba(later)[:, 1]
    assert after.mean() >= before.mean()
    assert (after > before + 1e-9).sum() >= (after < before - 1e-9).sum()


def count_shap_passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The row counts of every TreeSHAP pass (``ChurnModel.contributions``) from now on."""
    calls: list[int] = []
    original = ChurnModel.contributions

    def counted(self: ChurnModel, frame: pd.DataFrame) -> np.ndarray:
        calls.append(len(frame))
        return original(self, frame)

    monkeypatch.setattr(ChurnModel, "contributions", counted)
    return calls


def test_the_scorer_explains_a_chunk_with_two_shap_passes_and_the_same_texts(
    trained, X: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """This week's TreeSHAP serves both the reasons and the weekly change (issue 5.7)."""
    from ka_ml.scoring.score import score_chunk

    models = load_models(trained.cfg)
    now = X.head(60)
    before = now.copy()
    before["recency_days"] = np.maximum(before["recency_days"] - 60, 0)
    windows = trained.cfg.labels.purchase_windows
    as_of = pd.Timestamp(now["as_of"].iloc[0])
    want_reasons = top_reasons(models.churn, now)
    want_changes = changes_since(models.churn, now, before, models.churn.predict_proba(now)[:, 1])

    calls = count_shap_passes(monkeypatch)
    got, _ = score_chunk(models, now, before, windows, as_of)
    assert calls == [60, 60]  # this week once, the week before once
    pd.testing.assert_frame_equal(got[list(want_reasons.columns)], want_reasons)
    assert got["changes"].tolist() == want_changes.tolist()
    assert got["churn_probability"].to_numpy() == pytest.approx(
        models.churn.predict_proba(now)[:, 1]
    )


def test_with_last_weeks_stored_contributions_one_shap_pass_and_the_reported_change(
    trained, X: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Issue 14.5: 'since last week' compares with what was reported then, not with last
    week's features explained again by today's model on today's (possibly corrected) data."""
    from ka_ml.scoring.explain import probability_contributions
    from ka_ml.scoring.score import score_chunk

    models = load_models(trained.cfg)
    now = X.head(40).reset_index(drop=True)
    windows = trained.cfg.labels.purchase_windows
    as_of = pd.Timestamp(now["as_of"].iloc[0])
    reported = now.copy()
    reported["recency_days"] = reported["recency_days"] + 90  # what last week's run saw
    c_rep, p_rep, _ = probability_contributions(models.churn, reported)
    # a data correction since: last week's features, recomputed today, look different
    corrected = now.copy()
    p_rep[-1] = np.nan  # the last account was not scored last week

    calls = count_shap_passes(monkeypatch)
    got, contrib = score_chunk(models, now, corrected, windows, as_of, c_rep, p_rep)
    assert calls == [40]  # this week only: last week's contributions were stored
    p_now = got["churn_probability"].to_numpy()
    assert contrib.shape == (40, len(models.churn.features_))
    for text, d in zip(got["changes"][:-1], (p_now[:-1] - p_rep[:-1]) * 100, strict=True):
        if text.startswith("Risk"):  # the stated change is now minus what was reported
            n = f"{abs(d):.0f}"
            said = f"Risk {'up' if d >= 0 else 'down'} {n} pt{'' if n == '1' else 's'}"
            assert text.startswith(said if round(abs(d)) else "Risk unchanged since last week")
    assert got["changes"].str.startswith("Risk").sum() >= 5
    assert got["changes"].iloc[-1] == "New on the list this week."
    recomputed, _ = score_chunk(models, now, corrected, windows, as_of)
    assert not recomputed["changes"].str.startswith("Risk").any()  # same features: no move


@pytest.mark.parametrize("new_model", ["v1 to v2", ""])
def test_last_week_explained_again_tells_the_move_against_what_was_reported(
    trained, X: pd.DataFrame, new_model: str
) -> None:  # type: ignore[no-untyped-def]
    """Seen over a quarter of weekly runs: the week after a retrain, 'since last week'
    compared the new model's contributions with the old one's and named a mover for what
    the retrain did ('Risk down 14 pts; biggest mover: order value', 15 of them the new
    model's); a rerun once last week's contributions were pruned said 'No material change'
    beside 'was 57%, -14 pts'. The move told is now always against what was reported, and a
    new model's part is said apart from the data's."""
    from ka_ml.scoring.score import Change, score_chunk

    models = load_models(trained.cfg)
    now = X.head(40).reset_index(drop=True)
    before = now.copy()
    before["recency_days"] = np.maximum(before["recency_days"] - 30, 0)  # last week's data
    windows = trained.cfg.labels.purchase_windows
    as_of = pd.Timestamp(now["as_of"].iloc[0])
    p_before = models.churn.predict_proba(before)[:, 1]
    reported = np.where(p_before < 0.85, p_before + 0.10, p_before - 0.10)  # the old model's
    got, _ = score_chunk(models, now, before, windows, as_of, change=Change(reported, new_model))
    p_now = got["churn_probability"].to_numpy()
    for text, total, model in zip(
        got["changes"], (p_now - reported) * 100, (p_before - reported) * 100, strict=True
    ):
        n = f"{abs(total):.0f}"
        head = (
            f"Risk {'up' if total >= 0 else 'down'} {n} pt{'' if n == '1' else 's'}"
            if round(abs(total))
            else "Risk unchanged"
        )
        if new_model:  # every reported probability is 10 points off the new model's
            assert text.startswith(
                f"{head} since last week: the churn model was retrained (v1 to v2), which "
                f"moved it {model:+.0f} pts; on the data, "
            ), text
        else:
            assert "retrained" not in text
            assert text.startswith(head) or text == "No material change since last week."
    if not new_model:  # the data moved most accounts' risk, against what was reported
        assert got["changes"].str.startswith("Risk").sum() >= 20


def test_a_move_spread_over_several_factors_is_not_called_no_change() -> None:
    """Seen: a yellow account turned red at +0.9 pts, and the text said 'No material change
    since last week.' (no single group moved half a point)."""
    from types import SimpleNamespace

    feats = ["contract_days_to_end", "recency_days", "orders_90d"]
    now = pd.DataFrame(
        {
            "contract_days_to_end": [100.0, 100.0],
            "recency_days": [40.0, 10.0],
            "orders_90d": [1.0, 3.0],
        }
    )
    c_now = np.array([[0.004, 0.004, 0.004], [0.001, 0.001, 0.0]])
    got = changes_since(  # type: ignore[arg-type]
        SimpleNamespace(features_=feats), now, None, c_now.sum(axis=1), c_now,
        before_contributions=np.zeros((2, 3)), before_p=np.zeros(2),
    )  # fmt: skip
    assert got[0] == ("Risk up 1 pt since last week, from several small changes together.")
    assert got[1] == "No material change since last week."


def test_the_scorer_reads_contract_lapses_within_the_churn_horizon_as_news(
    trained, X: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The weekly scorer words its reasons with the config's horizon as the news window."""
    from ka_ml.scoring import score as scoring

    seen: list[object] = []
    real = scoring.top_reasons

    def spy(*args: object, **kwargs: object) -> pd.DataFrame:
        seen.append(kwargs.get("recent_lapse_days"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scoring, "top_reasons", spy)
    as_of = pd.Timestamp(X["as_of"].iloc[0])
    out, _ = scoring.score_and_explain(
        trained.history, trained.cfg, as_of, load_models(trained.cfg), features=X
    )
    assert seen and set(seen) == {trained.cfg.labels.horizon_days}
    from ka_ml.scoring.explain import lead_flagged_with_what_raised

    want = real(
        load_models(trained.cfg).churn, X, recent_lapse_days=trained.cfg.labels.horizon_days
    )
    want = lead_flagged_with_what_raised(
        want.assign(health=out["health"].to_numpy(), light_reason=out["light_reason"].to_numpy())
    )
    assert out["reason_1"].tolist() == want["reason_1"].tolist()


def test_one_point_is_singular_in_the_weekly_change() -> None:
    """Read in a digest: "Risk up 1 pts"."""
    from types import SimpleNamespace

    feats = ["recency_days", "orders_90d"]
    now = pd.DataFrame({"recency_days": [40.0, 10.0], "orders_90d": [1.0, 3.0]})
    c_now = np.array([[0.011, 0.0], [-0.012, 0.0]])
    got = changes_since(  # type: ignore[arg-type]
        SimpleNamespace(features_=feats), now, None, c_now.sum(axis=1), c_now,
        before_contributions=np.zeros((2, 2)), before_p=np.zeros(2),
    )  # fmt: skip
    assert got[0].startswith("Risk up 1 pt since last week; biggest mover: purchase rhythm")
    assert "(+1 pt): No order for 40 days." in got[0]
    assert got[1].startswith("Risk down 1 pt since last week")
    assert "(-1 pt)" in got[1]


def test_the_mover_named_is_what_the_account_did_the_way_its_risk_moved() -> None:
    """Read on the demo's weekly runs: 'Risk up 4 pts; biggest mover: contract (+2 pts): No
    contract on record.' (nothing changed in the contract; its points moved with what they
    interact with) and 'Risk up 0 pts since last week; biggest mover: ... (+3 pts)'."""
    from types import SimpleNamespace

    feats = ["contract_days_to_end", "recency_days", "orders_90d"]
    now = pd.DataFrame(
        {"contract_days_to_end": [np.nan] * 4, "recency_days": [40.0] * 4, "orders_90d": [1.0] * 4}
    )
    before = np.zeros((4, 3))
    c_now = np.array(
        [
            [0.02, 0.012, 0.008],  # up 4: the missing contract moved most, recency next
            [0.03, -0.002, 0.002],  # up 3: only the contract moved by half a point
            [0.0, 0.03, -0.03],  # unchanged: recency up 3, orders down 3
            [0.0, -0.01, 0.03],  # up 2: orders up 3 leads, not recency down 1
        ]
    )
    model = SimpleNamespace(features_=feats)
    got = changes_since(  # type: ignore[arg-type]
        model, now, None, c_now.sum(axis=1), c_now, before_contributions=before,
        before_p=np.zeros(4),
    )  # fmt: skip
    assert got[0].startswith("Risk up 4 pts since last week; biggest mover: purchase rhythm")
    assert "(+1 pt)" in got[0]  # one point is singular
    # only the missing contract's points moved: a fact, not this week's news (read over a
    # quarter: "biggest mover: contract (+1 pt): No contract on record", 80-123 a week)
    assert got[1] == "Risk up 3 pts since last week, from several small changes together."
    assert got[2].startswith("Risk unchanged since last week; biggest mover: ")
    assert "offset by the rest" in got[2]
    assert "order volume (+3 pts)" in got[3]


def test_a_red_or_yellow_account_leads_with_a_shown_reason_raising_its_risk() -> None:
    """Read on CDNOW (orders only, 72% of customers lapsed, so the model's base sits near
    0.8): a red account at 81% led with 'No order for 145 days, 46% of the time since the
    first order (lowers risk)' above 'Orders in the last 90 days: 0 (raises risk)'."""
    from ka_ml.scoring.explain import lead_flagged_with_what_raised

    frame = pd.DataFrame(
        {
            "health": ["red", "yellow", "green", "red", "red"],
            "reason_1": ["A (lowers risk)", "A (lowers risk)", "A (lowers risk)", "A", "A"],
            "reason_1_feature": ["a"] * 5,
            "reason_1_shap": [-0.04, -0.04, -0.04, 0.02, -0.04],
            "reason_1_direction": ["lowers risk"] * 3 + ["raises risk", "lowers risk"],
            "reason_2": ["B", "B", "B", "B", "B"],
            "reason_2_feature": ["b"] * 5,
            "reason_2_shap": [0.0097, 0.006, 0.0097, -0.01, 0.004],
            "reason_2_direction": ["raises risk"] * 3 + ["lowers risk", "raises risk"],
            "reason_3": ["C", "C", "C", "C", "C"],
            "reason_3_feature": ["c"] * 5,
            "reason_3_shap": [0.002, 0.008, 0.02, 0.005, -0.001],
            "reason_3_direction": ["raises risk"] * 3 + ["raises risk", "lowers risk"],
        }
    )
    got = lead_flagged_with_what_raised(frame)
    firsts = got["reason_1_feature"].tolist()
    assert firsts == ["b", "c", "a", "a", "a"]  # red: B; yellow: the stronger raising C
    assert got.loc[0, ["reason_2_feature", "reason_3_feature"]].tolist() == ["a", "c"]
    assert got.loc[0, "reason_1_shap"] == 0.0097 and got.loc[0, "reason_2"] == "A (lowers risk)"
    # green, a red already led by what raised it, or nothing raising by half a point: as is
    pd.testing.assert_frame_equal(got.iloc[2:], frame.iloc[2:])
    assert got["reason_1_shap"].dtype == float and got["reason_1"].dtype == frame["reason_1"].dtype


def test_stored_contributions_are_compared_only_under_the_model_that_made_them() -> None:
    from ka_ml.scoring.score import Previous

    stored = pd.DataFrame({"recency_days": [0.01]}, index=["A"])
    p = pd.Series([0.2], index=["A"])
    assert Previous(stored, p, pd.Timestamp("2026-08-03"), "1").comparable("1")
    assert Previous(stored, p, None, "").comparable("2")  # version unknown: taken as this one
    assert not Previous(stored, p, pd.Timestamp("2026-08-03"), "1").comparable("2")
    assert not Previous(pd.DataFrame(), p, pd.Timestamp("2026-08-03"), "2").comparable("2")


def test_an_account_a_rule_lit_never_leads_with_what_lowers_its_risk() -> None:
    """u-quarter: 75 yellow accounts raised by the overdue rule (churn probability ~0.05%)
    led with "Contract ends in 194 days (lowers risk)": their raising reasons were worth
    less than half a point, so they were not moved up. A rule-lit account leads with what
    raised its risk whatever the size, else with the rule's own reason."""
    from ka_ml.scoring.explain import lead_flagged_with_what_raised

    overdue = (
        "raised to yellow: overdue: no order for 188 days, 4.6x the typical gap of 41 days "
        "(overdue beyond 3.7x) (churn probability 0%: not among the 30% highest churn probability)"
    )
    frame = pd.DataFrame(
        {
            "health": ["yellow", "yellow", "yellow", "red"],
            "light_reason": [
                overdue,
                overdue,
                "raised to yellow: an open critical complaint (churn probability 1%: not among "
                "the 30% highest churn probability)",
                "churn probability 62%: among the 10% highest churn probability",
            ],
            "reason_1": ["Contract ends in 194 days (lowers risk)"] * 4,
            "reason_1_feature": ["contract_days_to_end"] * 4,
            "reason_1_shap": [-0.036, -0.036, -0.02, -0.04],
            "reason_1_direction": ["lowers risk"] * 4,
            "reason_2": ["B (raises risk)", "B (lowers risk)", "B (lowers risk)", "B"],
            "reason_2_feature": ["b"] * 4,
            "reason_2_shap": [0.0022, -0.001, -0.001, 0.004],
            "reason_2_direction": ["raises risk"] + ["lowers risk"] * 2 + ["raises risk"],
            "reason_3": ["C (raises risk)", "C (lowers risk)", "C (lowers risk)", "C"],
            "reason_3_feature": ["c"] * 4,
            "reason_3_shap": [0.002, -0.0005, -0.0005, -0.001],
            "reason_3_direction": ["raises risk"] + ["lowers risk"] * 3,
        }
    )
    got = lead_flagged_with_what_raised(frame)
    # a raising reason of 0.2 points leads a rule-lit account
    assert got.loc[0, ["reason_1_feature", "reason_2_feature", "reason_3_feature"]].tolist() == [
        "b",
        "contract_days_to_end",
        "c",
    ]
    # nothing shown raises it: the rule's own reason leads, the model's follow
    assert got.loc[1, "reason_1"] == (
        "Overdue: no order for 188 days, 4.6x the typical gap of 41 days (overdue beyond "
        "3.7x) (raises risk)"
    )
    assert got.loc[1, "reason_1_feature"] == "overdue_ratio"
    assert np.isnan(got.loc[1, "reason_1_shap"]) and got.loc[1, "reason_1_direction"] == (
        "raises risk"
    )
    assert got.loc[1, ["reason_2_feature", "reason_3_feature"]].tolist() == [
        "contract_days_to_end",
        "b",
    ]
    assert got.loc[2, "reason_1"] == "An open critical complaint (raises risk)"
    assert got.loc[2, "reason_1_feature"] == "open_critical_complaints"
    # the ranking lit it: half a point still counts (0.4 points: as is)
    pd.testing.assert_frame_equal(got.iloc[3:], frame.iloc[3:])
    assert got["reason_1_direction"].iloc[:3].eq("raises risk").all()
    # who the account is never leads a rule-lit account (a lab distributor's overdue pharma
    # account read "Industry: Pharma F&E" under "raised to yellow: overdue (was green)")
    industry = frame.iloc[[0, 1, 3]].reset_index(drop=True)
    industry[["reason_1", "reason_1_feature", "reason_1_shap", "reason_1_direction"]] = [
        "Industry: Pharma F&E (raises risk)", "industry", 0.001, "raises risk"
    ]  # fmt: skip
    led = lead_flagged_with_what_raised(industry)
    assert led.loc[0, "reason_1_feature"] == "b"  # behaviour raising it leads
    assert led.loc[1, "reason_1"].startswith("Overdue: no order for 188 days")
    assert led.loc[1, "reason_2_feature"] == "industry"
    assert led.loc[2, "reason_1_feature"] == "industry"  # the ranking lit it: as it was


def test_what_the_silence_already_says_is_not_a_second_reason() -> None:
    """Seen on the demo: 95 of 167 red accounts read "Orders in the last 90 days: 0" and "No
    order for 124 days" as two of their three reasons. A window that the silence covers,
    with nothing in it, joins the time since the last order; the row's sum is kept."""
    from types import SimpleNamespace

    feats = [
        "recency_days",
        "orders_90d",
        "orders_trend_90d",
        "spend_90d",
        "orders_30d",
        "usage_trend_90d",
    ]
    X = pd.DataFrame(
        {
            "recency_days": [124.0, 60.0, 124.0, np.nan],
            "orders_90d": [0.0, 1.0, 0.0, 0.0],
            "orders_trend_90d": [-1.0, -0.5, -1.0, 0.0],
            "spend_90d": [0.0, 800.0, -250.0, 0.0],  # row 2: a credit note in the window
            "orders_30d": [0.0, 0.0, 0.0, 0.0],
            "usage_trend_90d": [-0.4, -0.4, -0.4, -0.4],
            "usage_recency_days": [3.0, 3.0, 3.0, 3.0],
        }
    )
    contrib = np.array(
        [
            [0.05, 0.07, 0.02, 0.01, 0.004, 0.03],
            [0.02, 0.04, 0.03, -0.01, 0.01, 0.03],
            [0.05, 0.07, 0.02, 0.01, 0.004, 0.03],
            [0.05, 0.07, 0.02, 0.01, 0.004, 0.03],
        ]
    )
    folded = fold_implied(contrib, X, feats)
    np.testing.assert_allclose(folded.sum(axis=1), contrib.sum(axis=1))
    np.testing.assert_allclose(folded[0], [0.154, 0, 0, 0, 0, 0.03])
    # still ordering within 90 days: its last-30-days silence (60 days) is said by recency,
    # the 90-day count of 1 is its own fact
    np.testing.assert_allclose(folded[1], [0.03, 0.04, 0.03, -0.01, 0, 0.03])
    np.testing.assert_allclose(folded[2], [0.144, 0, 0, 0.01, 0, 0.03])  # the credit stays
    np.testing.assert_allclose(folded[3], contrib[3])  # no order on record: nothing to fold
    got = top_reasons(SimpleNamespace(features_=feats), X, contributions=contrib)  # type: ignore[arg-type]
    said = got.loc[0, ["reason_1", "reason_2", "reason_3"]].tolist()
    assert said[0] == "No order for 124 days (raises risk)"
    assert got.loc[0, "reason_1_shap"] == pytest.approx(0.154)
    assert not any("Orders in the last" in t for t in said)
    assert said[1].startswith("Usage in the last 90 days fell 40%")
    # the order volume and spend groups kept no points: said as nothing, not "(lowers risk)"
    assert said[2] == "" and got.loc[0, "reason_3_feature"] == ""
    assert np.isnan(got.loc[0, "reason_3_shap"])


def test_a_window_level_names_the_accounts_average_only_when_it_reads_the_way_of_the_risk() -> None:
    """ "Orders in the last 90 days: 1 (5.3 in an average 90 days) (raises risk)" says why;
    beside "(lowers risk)" the same comparison would read as a mistake, so it is left out,
    as is an average above the count said with "(raises risk)"."""
    from types import SimpleNamespace

    feats = ["orders_90d", "survey_score_last"]
    X = pd.DataFrame(
        {
            "orders_90d": [1.0, 1.0, 9.0, 1.0],
            "survey_score_last": [5.0, 5.0, 5.0, 5.0],
            "orders_per_month": [1.8, 1.8, 1.8, 1.8],
            "tenure_days": [900.0, 900.0, 900.0, 120.0],  # the last one: too young
        }
    )
    contrib = np.array([[0.08, 0.01], [-0.08, 0.01], [0.08, 0.01], [0.08, 0.01]])
    got = top_reasons(SimpleNamespace(features_=feats), X, contributions=contrib)  # type: ignore[arg-type]
    assert got["reason_1"].tolist() == [
        "Orders in the last 90 days: 1 (5.3 in an average 90 days) (raises risk)",
        "Orders in the last 90 days: 1 (lowers risk)",
        "Orders in the last 90 days: 9 (raises risk)",
        "Orders in the last 90 days: 1 (raises risk)",
    ]


def test_a_single_order_day_is_one_reason_not_three() -> None:
    """A distributor's new account, red the week of its first order, read "Average order
    value in the last 365 days: 9,777 (raises risk)", "Orders in the last 90 days: 1 (raises
    risk)", "Spend in the last 30 days: 9,777 (raises risk)": one order said three times."""
    from types import SimpleNamespace

    feats = ["recency_days", "orders_90d", "spend_30d", "aov_365d", "repeat_orders",
             "first_order_amount", "products_365d", "survey_score_last", "gap_median_days"]  # fmt: skip
    X = pd.DataFrame(
        {
            "recency_days": [3.0, 3.0, 120.0],
            "orders_90d": [1.0, 2.0, 0.0],
            "spend_30d": [9777.0, 9777.0, 0.0],
            "aov_365d": [9777.0, 4888.5, 9777.0],
            "repeat_orders": [0.0, 1.0, 0.0],
            "first_order_amount": [9777.0, 4888.5, 9777.0],
            "products_365d": [4.0, 4.0, 4.0],
            "survey_score_last": [5.0, 5.0, 5.0],
            "gap_median_days": [np.nan, 3.0, np.nan],  # "no purchase rhythm yet": the same
        }
    )
    row = [-0.02, 0.06, 0.05, 0.04, 0.01, 0.005, 0.015, 0.03, 0.02]
    contrib = np.array([row, row, row])
    folded = fold_implied(contrib, X, feats)
    np.testing.assert_allclose(folded.sum(axis=1), contrib.sum(axis=1))
    # one order day: counts, spend, order value and first-order totals join repeat_orders;
    # the products bought and the recency are facts of their own
    np.testing.assert_allclose(folded[0], [-0.02, 0, 0, 0, 0.185, 0, 0.015, 0.03, 0])
    np.testing.assert_allclose(folded[1], contrib[1])  # a repeat order: nothing folded
    # silent past the windows: their empty count and spend join the silence first, the
    # rest the one order
    np.testing.assert_allclose(folded[2], [0.09, 0, 0, 0, 0.075, 0, 0.015, 0.03, 0])
    got = top_reasons(SimpleNamespace(features_=feats), X, contributions=contrib)  # type: ignore[arg-type]
    said = got.loc[0, ["reason_1", "reason_2", "reason_3"]].tolist()
    assert said[0] == "One order day so far (9,777 spent), no repeat order yet (raises risk)"
    assert not any(
        t.startswith(("Orders in the last", "Spend in the last", "Average order", "Fewer than two"))
        for t in said
    )


def test_a_silence_within_the_accounts_own_cycle_never_reads_as_raising_the_risk() -> None:
    """Seen on a software vendor's project buyer, red the day after an invoice: "No order for
    1 day, 0.0 times the typical gap of 63 days (raises risk)" as its first reason. True to
    the model (a project invoice is often followed by a quiet quarter), read by a manager as
    an error: the silence is said by its side of the account's own cycle."""
    from types import SimpleNamespace

    feats = ["recency_days", "overdue_ratio", "usage_trend_90d", "orders_90d", "tickets_90d"]
    X = pd.DataFrame(
        {
            "recency_days": [1.0, 190.0],
            "overdue_ratio": [1 / 63, 190 / 63],
            "gap_median_days": [63.0, 63.0],
            "usage_trend_90d": [-0.3, -0.3],
            "usage_recency_days": [2.0, 2.0],
            "orders_90d": [2.0, 0.0],
            "tickets_90d": [1.0, 1.0],
        }
    )
    contrib = np.array(
        [
            [0.09, 0.03, 0.02, 0.015, 0.012],  # the silence "raises" a 1-day-old order's risk
            [-0.05, -0.02, 0.03, 0.01, 0.012],  # 3x overdue "lowers" it (against the reference)
        ]
    )
    got = top_reasons(SimpleNamespace(features_=feats), X, contributions=contrib)  # type: ignore[arg-type]
    said = got[["reason_1", "reason_2", "reason_3"]]
    assert not said.map(lambda t: t.startswith("No order for 1 day")).any().any()
    assert got.loc[0, "reason_1"].startswith("Usage in the last 90 days fell 30%")
    # said against its words, the silence goes after every group that can be said
    assert got.loc[1, "reason_1"].startswith("Usage in the last 90 days fell 30%")
    assert got.loc[1, "reason_3"].startswith("No order for 190 days")
    # within the cycle and lowering the risk, or overdue and raising it: said as before
    turned = np.array([[-0.09, -0.03, 0.02, 0.015, 0.012], [0.05, 0.02, 0.03, 0.01, 0.012]])
    fine = top_reasons(SimpleNamespace(features_=feats), X, contributions=turned)  # type: ignore[arg-type]
    assert fine.loc[0, "reason_1"].startswith("No order for 1 day")
    assert fine.loc[1, "reason_1"].startswith("No order for 190 days")


def test_a_late_silence_says_when_the_account_went_longer_before_and_came_back() -> None:
    """A distributor's project buyer, red: "No order for 124 days, 17.7 times the typical gap of
    7 days" (its 7 days are between call-offs within a project) read as an emergency; it had
    gone longer without an order twice before. The reasons carry it from the scorer's own
    count (``gaps_longer_than_silence``, not a model input); never quieter before, the plain
    sentence."""
    from types import SimpleNamespace

    feats = ["overdue_ratio", "usage_trend_90d", "tickets_90d"]
    X = pd.DataFrame(
        {
            "recency_days": [124.0, 124.0, 30.0],
            "overdue_ratio": [124 / 7, 124 / 7, 30 / 7],
            "gap_median_days": [7.0, 7.0, 7.0],
            "gaps_longer_than_silence": [2.0, 2.0, 0.0],
            "usage_trend_90d": [-0.3, -0.3, -0.3],
            "usage_recency_days": [2.0, 2.0, 2.0],
            "tickets_90d": [1.0, 1.0, 1.0],
        }
    )
    contrib = np.array([[0.09, 0.03, 0.01], [-0.09, 0.03, 0.01], [0.09, 0.03, 0.01]])
    got = top_reasons(SimpleNamespace(features_=feats), X, contributions=contrib)  # type: ignore[arg-type]
    assert got.loc[0, "reason_1"] == (
        "No order for 124 days, 17.7 times the typical gap of 7 days; it went longer without "
        "an order twice before and came back (raises risk)"
    )
    # said against the model's direction the silence goes last, and the clause is why
    assert got.loc[1, "reason_3"] == (
        "No order for 124 days, 17.7 times the typical gap of 7 days; it went longer without "
        "an order twice before and came back (lowers risk)"
    )
    assert got.loc[2, "reason_1"] == (
        "No order for 30 days, 4.3 times the typical gap of 7 days (raises risk)"
    )


def test_the_reasons_say_which_survey_a_score_came_from() -> None:
    """A software vendor's managers read "Latest survey score 2.5, down 2.5 points" with
    NPS and renewal intent in one table: which survey? Now "Latest renewal intent score
    2.5, down 2.5 points"; a table without kinds keeps "survey"."""
    from ka_ml.scoring.explain import name_survey_kinds, survey_kind_label

    assert survey_kind_label("nps") == "NPS" and survey_kind_label("CSAT") == "CSAT"
    assert survey_kind_label("Renewal_Intent") == "renewal intent"
    as_of = pd.Timestamp("2026-09-14")
    surveys = pd.DataFrame(
        {
            "account_id": ["A", "A", "B", "C"],
            "date": pd.to_datetime(["2026-03-04", "2026-08-15", "2026-09-09", "2026-09-20"]),
            "score": [6.0, 2.5, 5.0, 1.0],
            "kind": ["nps", "renewal_intent", "nps", "nps"],  # C's answer is after the as-of
        }
    )
    out = pd.DataFrame(
        {
            "account_id": ["A", "B", "C"],
            "reason_1": [
                "Latest survey score 2.5/10, down 2.5 points (raises risk)",
                "Survey score down 2 points since the previous answer to the same survey (raises risk)",
                "Latest survey score 1/10 (raises risk)",
            ],
            "reason_2": ["No order for 40 days (raises risk)", "", ""],
            "changes": [
                "Risk up 3 pts since last week; biggest mover: survey (+3 pts): Latest survey score 2.5/10.",
                "",
                "",
            ],
        }
    )
    got = name_survey_kinds(out.copy(), surveys, as_of)
    assert (
        got.loc[0, "reason_1"]
        == "Latest renewal intent score 2.5/10, down 2.5 points (raises risk)"
    )
    assert got.loc[0, "changes"].endswith("survey (+3 pts): Latest renewal intent score 2.5/10.")
    assert got.loc[1, "reason_1"].startswith("NPS score down 2 points since the previous answer")
    assert got.loc[2, "reason_1"] == "Latest survey score 1/10 (raises risk)"  # none known yet
    assert got.loc[0, "reason_2"] == "No order for 40 days (raises risk)"
    plain = name_survey_kinds(out.copy(), surveys.drop(columns="kind"), as_of)
    pd.testing.assert_frame_equal(plain, out)
