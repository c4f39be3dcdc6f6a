"""Lifecycle states, forward revenue, budget lights and the business's scorecard (pure)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ka_ml.config import Config, HealthConfig, ScorecardConfig
from ka_ml.data.history import History
from ka_ml.scoring.health import assign_lights, light_rule
from ka_ml.scoring.lifecycle import (
    annual_contract_value,
    buying_cycle_days,
    churn_definitions,
    expected_revenue,
    lifecycle_states,
    run_rate_text,
    win_back_chance,
)
from ka_ml.scoring.scorecard import scorecard

CFG = Config()
AS_OF = pd.Timestamp("2026-06-01")


def features(**cols: list[float]) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    base = {"account_id": [f"X{i}" for i in range(n)], "as_of": [AS_OF] * n}
    return pd.DataFrame({**base, **cols})


# -- lifecycle ---------------------------------------------------------------------------


def test_each_lifecycle_rule_on_accounts_built_for_it() -> None:
    X = features(
        #            active  quiet-ok  lapsed(order)  contract-lapsed  grace  running-contract  new(orders)  new(tenure)  never-ordered  buying-without-contract  bought-then-silent
        recency_days=[10, 80, 200, 50, 20, 400, 15, 5, np.nan, 7, 200],
        gap_median_days=[30, 60, 30, 30, 30, 30, np.nan, 10, np.nan, 7, 30],
        contract_days_to_end=[np.nan, np.nan, np.nan, -45, -20, 100, np.nan, np.nan, -300, -1035, -400],
        has_active_contract=[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
        orders_lifetime=[12, 6, 8, 10, 10, 5, 2, 4, 0, 150, 20],
        tenure_days=[700, 600, 500, 800, 800, 900, 300, 40, 0, 1500, 900],
    )  # fmt: skip
    got = lifecycle_states(X, CFG)
    assert got["lifecycle"].tolist() == [
        "active",
        "active",  # 80 days silent: within the horizon
        "lapsed",  # 200 days > 90 and > 3 x 30
        "lapsed",  # contract ended 45 days ago (> 30 days' grace), none running, no order since
        "active",  # ended 20 days ago: may still be renewed
        "active",  # a running contract is never lapsed, however quiet
        "new",  # 2 orders
        "new",  # 40 days of tenure < the 90-day horizon
        "lapsed",  # contract long gone, no order ever
        "active",  # contract gone 1,035 days, ordered 7 days ago: a customer without one
        "lapsed",  # ordered after its contract ended, then silent 200 days: lost by orders
    ]
    assert got.loc[10, "lifecycle_reason"] == "no order for 200 days (typical gap 30 days)"
    assert got["low_confidence"].tolist() == [s == "new" for s in got["lifecycle"]]
    assert got.loc[2, "lifecycle_reason"] == "no order for 200 days (typical gap 30 days)"
    assert got.loc[3, "lifecycle_reason"] == "contract ended 45 days ago, none running"


def test_an_account_silent_past_its_cycle_is_not_lapsed_while_its_contract_is_in_grace() -> None:
    """A tier-A account went to Win-back on its contract's renewal day (silent 107 days,
    typical gap 7): the order-silence rule did not wait for the contract's grace days, in
    which the report asks for the renewal. Past the grace, lapsed by the contract."""
    X = features(
        recency_days=[107.0, 107.0, 107.0],
        gap_median_days=[7.0, 7.0, 7.0],
        contract_days_to_end=[-1.0, -30.0, -31.0],
        has_active_contract=[0, 0, 0],
        orders_lifetime=[40.0, 40.0, 40.0],
        tenure_days=[900.0, 900.0, 900.0],
    )
    got = lifecycle_states(X, CFG)
    assert got["lifecycle"].tolist() == ["active", "active", "lapsed"]
    assert got.loc[2, "lifecycle_reason"] == "contract ended 31 days ago, none running"


def test_under_the_no_order_label_a_running_frame_contract_does_not_hold_a_silent_account() -> None:
    """User test (distributor, churn_definition: no_order): accounts silent 150-226 days
    under running frame contracts sat 'active' and red at 99.5% week after week, 228 of 275
    red account-weeks of customers long lost. Where the orders are the relationship, the
    silence decides; under auto (and contract) a running contract still holds."""
    X = features(
        recency_days=[200.0, 200.0, 40.0, 191.0],
        gap_median_days=[20.0, 20.0, 20.0, 30.0],
        contract_days_to_end=[150.0, -10.0, 150.0, 170.0],
        has_active_contract=[1, 0, 1, 1],
        orders_lifetime=[30.0, 30.0, 30.0, 3.0],
        repeat_orders=[29.0, 29.0, 29.0, 1.0],
        tenure_days=[900.0, 900.0, 900.0, 400.0],
    )
    by_orders = Config(labels={"churn_definition": "no_order"})
    got = lifecycle_states(X, by_orders)
    # running contract; in its grace days; not silent long enough; one gap is no rhythm to
    # be silent against (an annual subscriber: onboarding invoice, then its year)
    assert got["lifecycle"].tolist() == ["lapsed", "lapsed", "active", "active"]
    assert got.loc[0, "lifecycle_reason"] == "no order for 200 days (typical gap 20 days)"
    assert lifecycle_states(X, CFG)["lifecycle"].tolist() == ["active"] * 4


def test_an_account_the_model_expects_back_is_judged_not_written_off() -> None:
    """A quarter of weekly runs wrote off 2,294 account-weeks as lapsed; the 900 the model
    gave a churn probability under 50% ordered again within 90 days 56-74% of the time and
    led the Win-back list. Silent past its cycle, an account is lapsed only from
    lifecycle.lapsed_min_churn_probability; off (null), the silence alone decides."""
    X = features(
        recency_days=[200.0, 200.0, 200.0, 50.0],
        gap_median_days=[30.0, 30.0, 30.0, 30.0],
        contract_days_to_end=[np.nan, np.nan, np.nan, -45.0],
        orders_lifetime=[12.0, 12.0, 12.0, 10.0],
        tenure_days=[700.0, 700.0, 700.0, 800.0],
    )
    p = np.array([0.49, 0.5, np.nan, 0.2])
    got = lifecycle_states(X, CFG, p)["lifecycle"].tolist()
    assert got == ["active", "lapsed", "lapsed", "active"]  # NaN: no judgement, the silence
    off = Config(lifecycle={"lapsed_min_churn_probability": None})
    assert lifecycle_states(X, off, p)["lifecycle"].tolist()[:4] == ["lapsed"] * 4
    assert lifecycle_states(X, CFG)["lifecycle"].tolist() == ["lapsed"] * 4
    # ... within the silences the model learnt from: a lab distributor's model, trained on
    # 8 months of labels (silences up to 225 days), gave a biotech closed 311 days earlier
    # 27%, its answer for the longest silence it knew, and kept it red for weeks
    learnt = lifecycle_states(X, CFG, p, longest_silence=225.0)["lifecycle"].tolist()
    assert learnt[0] == "active"
    beyond = lifecycle_states(X, CFG, p, longest_silence=150.0)["lifecycle"].tolist()
    assert beyond == ["lapsed", "lapsed", "lapsed", "active"]  # 50 days: within, judged
    assert lifecycle_states(X, CFG, p, longest_silence=float("nan"))["lifecycle"][0] == "active"


def test_a_lapsed_account_beyond_the_silences_learnt_claims_no_win_back_chance() -> None:
    """The lab distributor's Win-back list gave biotechs closed 277-319 days earlier a 73%
    chance of an order within 90 days: the model's answer for the longest silence it knew
    (225 days). Beyond it no chance, and so no win-back value, is claimed; the reason says
    why, and the report shows the chance as unknown."""
    from ka_ml.data.history import History
    from ka_ml.scoring.score import portfolio_columns

    as_of = pd.Timestamp("2026-11-16")
    X = pd.DataFrame(
        {
            "account_id": ["b1", "b2", "a1"],
            "recency_days": [311.0, 200.0, 5.0],
            "gap_median_days": [8.0, 8.0, 7.0],
            "orders_lifetime": [20.0, 20.0, 30.0],
            "tenure_days": [700.0, 700.0, 700.0],
            "spend_per_month": [200.0, 100.0, 500.0],
            "spend_365d": [1000.0, 900.0, 6000.0],
        }
    )
    out = pd.DataFrame(
        {
            "account_id": X["account_id"],
            "as_of": as_of,
            "churn_probability": [0.27, 0.6, 0.02],
            "p_purchase_90d": [0.73, 0.4, 0.98],
        }
    )
    h = History(
        orders=pd.DataFrame({"account_id": [], "order_date": [], "amount": []}),
        accounts=pd.DataFrame({"account_id": ["b1", "b2", "a1"]}),
    )
    p = out["churn_probability"].to_numpy()
    got = portfolio_columns(out.copy(), X, p, h, CFG, as_of, longest_silence=225.0)
    assert got["lifecycle"].tolist() == ["lapsed", "lapsed", "active"]
    assert np.isnan(got.loc[0, "win_back_value"]) and got.loc[1, "win_back_value"] == 480.0
    assert got.loc[0, "lifecycle_reason"].endswith(
        "; longer than any silence the model learnt from (225 days): its chance of ordering "
        "again is not known"
    )
    before = portfolio_columns(out.copy(), X, p, h, CFG, as_of)  # a model without the figure
    assert before["lifecycle"].tolist() == ["active", "lapsed", "active"]  # 27%: expected back


def test_train_keeps_the_longest_silence_it_learnt_from() -> None:
    from ka_ml.training.evaluation import longest_silence

    labelled = pd.DataFrame({"recency_days": [3.0, np.nan, 225.0, 40.0]})
    assert longest_silence(labelled) == 225.0
    assert np.isnan(longest_silence(labelled.iloc[1:2]))
    assert np.isnan(longest_silence(pd.DataFrame({"churn": [1]})))


def test_an_account_silent_well_past_the_horizon_but_within_its_own_cycle_stays_active() -> None:
    X = features(
        recency_days=[150.0], gap_median_days=[120.0], orders_lifetime=[5.0], tenure_days=[900.0]
    )
    assert lifecycle_states(X, CFG)["lifecycle"].tolist() == ["active"]  # 150 < 3 x 120


def test_an_account_back_from_silences_this_long_before_is_not_lapsed() -> None:
    """An annual buyer whose season's call-offs a few days apart make its typical gap 3 days,
    silent 298 days: it has come back from longer silences four times (its yearly gaps), so
    it is not written off; once only, or never (a real stop), the typical-gap rule holds; the
    setting follows the config (null: off)."""
    X = features(
        recency_days=[298.0, 298.0, 298.0],
        gap_median_days=[3.0, 3.0, 3.0],
        gaps_longer_than_silence=[4.0, 1.0, 0.0],
        orders_lifetime=[20.0, 20.0, 20.0],
        tenure_days=[1800.0, 1800.0, 1800.0],
    )
    assert lifecycle_states(X, CFG)["lifecycle"].tolist() == ["active", "lapsed", "lapsed"]
    off = Config.model_validate({"lifecycle": {"silence_seen_before": None}})
    assert lifecycle_states(X, off)["lifecycle"].tolist() == ["lapsed"] * 3
    once = Config.model_validate({"lifecycle": {"silence_seen_before": 1}})
    assert lifecycle_states(X, once)["lifecycle"].tolist() == ["active", "active", "lapsed"]


def test_win_back_chance_is_the_largest_window_else_one_minus_churn() -> None:
    # the scorer values win-back with it and the report ranks by it: one rule for both
    got = win_back_chance(np.array([0.3, np.nan, 0.0]), np.array([0.9, 0.8, 0.1]))
    np.testing.assert_allclose(got, [0.3, 0.2, 0.0])


def test_lifecycle_rules_follow_the_config() -> None:
    X = features(
        recency_days=[100.0], gap_median_days=[20.0], orders_lifetime=[5.0], tenure_days=[900.0]
    )
    assert lifecycle_states(X, CFG)["lifecycle"].tolist() == ["lapsed"]
    later = CFG.model_copy(
        update={"lifecycle": CFG.lifecycle.model_copy(update={"lapsed_after_days": 180})}
    )
    assert lifecycle_states(X, later)["lifecycle"].tolist() == ["active"]


def test_churn_definition_per_account_under_auto() -> None:
    """As the label decides: a running contract can lapse; one already gone cannot, so the
    account is judged by its orders."""
    X = features(contract_days_to_end=[30.0, np.nan, -1035.0, 0.0])
    assert churn_definitions(X, CFG).tolist() == ["contract", "no_order", "no_order", "contract"]
    fixed = CFG.model_copy(
        update={"labels": CFG.labels.model_copy(update={"churn_definition": "no_order"})}
    )
    assert churn_definitions(X, fixed).tolist() == ["no_order"] * 4


# -- forward revenue ---------------------------------------------------------------------


def test_expected_revenue_is_the_running_contracts_yearly_value_else_the_run_rate() -> None:
    contracts = pd.DataFrame(
        {
            "account_id": ["X0", "X0", "X1"],
            "start_date": pd.to_datetime(["2025-09-01", "2024-01-01", "2025-01-01"]),
            "end_date": pd.to_datetime(["2027-08-31", "2024-12-31", "2025-12-31"]),
            "value": [200_000.0, 99_999.0, 50_000.0],  # X0: 2 years running; X1: ended
        }
    )
    h = History(orders=pd.DataFrame(), accounts=pd.DataFrame(), contracts=contracts)
    X = features(spend_180d=[10_000.0, 9_000.0, 0.0])
    assert annual_contract_value(h, AS_OF, X["account_id"])[0] == pytest.approx(100_000, rel=1e-3)
    got = expected_revenue(X, h, AS_OF, CFG)
    assert got[0] == pytest.approx(100_000, rel=1e-3)  # the contract, per year
    assert got[1] == pytest.approx(9_000 * 365 / 180)  # contract over: the run rate
    assert got[2] == 0.0


def test_a_buyer_with_a_long_cycle_is_judged_on_a_window_that_holds_one_cycle() -> None:
    """Seen: a red, active account that bought 4,952 in the last 365 days, every 269 days,
    showed '0 revenue at risk of 0 expected in 12 months': nothing in the last 180 days."""
    h = History(orders=pd.DataFrame(), accounts=pd.DataFrame())
    gaps = [[269.0, 269.0], [30.0] * 12, [], [500.0], [2.0, 5.0, 360.0, 3.0, 358.0]]
    X = features(
        spend_180d=[0.0, 9_000.0, 0.0, 1_000.0, 141_498.0],
        spend_365d=[4_952.5, 20_000.0, 0.0, 1_000.0, 141_498.0],
        gap_mean_days=[np.mean(g) if g else np.nan for g in gaps],
        gap_std_days=[np.std(g) if g else np.nan for g in gaps],
    )
    got = expected_revenue(X, h, AS_OF, CFG)
    assert got[0] == pytest.approx(4_952.5)  # one 269-day cycle fits in 365 days only
    assert got[1] == pytest.approx(9_000 * 365 / 180)  # a monthly buyer: the run rate
    assert got[2] == 0.0  # no gap known: the run rate
    assert got[3] == pytest.approx(1_000.0)  # longer than any window: the longest
    # a yearly season called off days apart (median gap 3 days): its year, not 2x it
    assert got[4] == pytest.approx(141_498.0)
    assert buying_cycle_days(X)[4] == pytest.approx(np.mean(np.square(gaps[4])) / np.mean(gaps[4]))
    assert "for accounts whose buying cycle (long gaps counted by their length) is longer" in (
        run_rate_text(CFG)
    )


def test_an_account_silent_through_the_run_rate_window_is_valued_by_its_last_order() -> None:
    """A project buyer silent for 335 days (call-offs a few days apart inside a project, so
    a cycle under 180 days), 37,345 bought in the year, was red with 0 revenue at risk."""
    h = History(orders=pd.DataFrame(), accounts=pd.DataFrame())
    X = features(
        recency_days=[335.0, 200.0, 400.0, 20.0],
        spend_180d=[0.0, 0.0, 0.0, 9_000.0],
        spend_365d=[37_345.0, 12_000.0, 0.0, 20_000.0],
        gap_mean_days=[30.0, 30.0, 30.0, 30.0],
        gap_std_days=[30.0, 0.0, 0.0, 0.0],
    )
    got = expected_revenue(X, h, AS_OF, CFG)
    assert got.tolist() == pytest.approx([37_345.0, 12_000.0, 0.0, 9_000 * 365 / 180])
    assert "or that bought nothing in it" in run_rate_text(CFG)


# -- budget lights -----------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=400),
    st.floats(0.01, 0.3),
    st.floats(0.0, 0.4),
)
def test_budget_red_is_the_top_share_of_eligible_accounts_above_the_floor(
    p: list[float], red_share: float, yellow_share: float
) -> None:
    cfg = HealthConfig(red_share=red_share, yellow_share=min(yellow_share, 0.98 - red_share))
    arr = np.asarray(p)
    eligible = np.arange(len(arr)) % 3 != 0  # every third account lapsed
    lights, reasons = assign_lights(arr, None, cfg, eligible=eligible)
    assert (lights[~eligible] == "").all() and (reasons[~eligible] == "").all()
    red = lights == "red"
    assert red.sum() <= np.ceil(red_share * eligible.sum() - 1e-9)  # the top share, rounded up
    assert (arr[red] >= cfg.red_min_probability).all()
    if red.any():  # nobody eligible and outside red is riskier than a red account
        others = eligible & ~red & (arr >= cfg.red_min_probability)
        assert not (arr[others] > arr[red].min()).any() or red.sum() == 0


def test_budget_mode_can_rank_by_revenue_at_risk_and_keeps_red_within_hysteresis() -> None:
    p = np.linspace(0.3, 0.9, 100)
    at_risk = p * np.r_[np.full(50, 1e6), np.full(50, 1.0)]  # the big accounts are the less risky
    cfg = HealthConfig(rank_by="revenue_at_risk")
    lights, _ = assign_lights(p, None, cfg, rank_metric=at_risk)
    assert (lights[40:50] == "red").all() and (lights == "red").sum() == 10
    # last week's red accounts stay red while within 5% of the ranking below the cut
    prev = np.where(np.arange(100) >= 85, "red", "green").astype(object)
    kept, why = assign_lights(p, prev, HealthConfig(), eligible=None)
    assert (kept[85:] == "red").all() and (kept == "red").sum() == 15
    assert why[85].startswith("stays red")
    assert "10% of active and new accounts" in light_rule(HealthConfig())
    # the rule says the band, so 15% red under "red = 10%" is explained where it is read
    assert (
        "kept while the account stays within 5% of the ranking past its cut, so red can "
        "run a little over 10%" in light_rule(HealthConfig())
    )
    assert "kept while" not in light_rule(HealthConfig(hysteresis=0.0))


def test_a_light_held_down_by_a_probability_floor_says_so_not_that_it_ranked_low() -> None:
    # a low-churn portfolio: the riskiest accounts rank red but are below the floors (a user's
    # 5th riskiest of 133 read "not among the 30% highest")
    p = np.r_[0.20, 0.08, np.linspace(0.05, 0.0, 18)]
    lights, why = assign_lights(p, None, HealthConfig())  # red >= 25%, yellow >= 10%
    assert lights[:2].tolist() == ["yellow", "green"]
    assert why[0] == (
        "churn probability 20%: among the 10% highest churn probability, but red needs at least 25%"
    )
    assert why[1] == (
        "churn probability 8%: among the 10% highest churn probability, but red needs at "
        "least 25% and yellow 10%"
    )
    assert why[2] == (
        "churn probability 5%: among the 30% highest churn probability, but yellow needs at "
        "least 10%"
    )
    assert why[6] == "churn probability 4%: not among the 30% highest churn probability"
    # rounding never makes a probability read as its floor ("30%: ..., but yellow needs at
    # least 30%" for 0.2974)
    floors = HealthConfig(red_min_probability=0.5, yellow_min_probability=0.3)
    _, near = assign_lights(np.r_[0.2974, 0.5457, np.zeros(18)], None, floors)
    assert near[0].startswith("churn probability 29.7%: among the 10% highest")
    floors = HealthConfig(red_min_probability=0.55, yellow_min_probability=0.3)
    _, near = assign_lights(np.r_[0.2974, 0.5457, np.zeros(18)], None, floors)
    assert near[1].startswith("churn probability 54.6%: among the 10% highest")


def test_a_renewal_falling_due_replaces_the_tier_and_light_action() -> None:
    """Seen: tier A, contract ending the next day -> 'raise at the next quarterly strategic
    meeting'; green, ending in 9 days -> 'keep the quarterly strategic meeting'."""
    from ka_ml.scoring.health import recommended_actions, renewal_due

    cfg = HealthConfig()
    lights = np.array(["yellow", "green", "red", "green", "green"], dtype=object)
    actions = recommended_actions(lights, np.array(["A"] * 5, dtype=object), cfg)
    days = np.array([1.0, 9.0, 91.0, -3.0, np.nan])  # due, due, later, ended, no contract
    running = np.array([True, True, True, False, False])
    got = renewal_due(actions, days, running, cfg)
    assert got[0] == "Renewal due in 1 day: agree the renewal with the buyer now."
    assert got[1] == "Renewal due in 9 days: agree the renewal with the buyer now."
    today = renewal_due(actions[:1], np.array([0.0]), running[:1], cfg)  # read "in 0 days"
    assert today[0] == "Renewal due today: agree the renewal with the buyer now."
    assert got[2:].tolist() == actions[2:].tolist()
    never = renewal_due(actions, days, running, HealthConfig(renewal_due_days=None))
    assert never.tolist() == actions.tolist()
    # ended, none running, within the grace: it may still be renewed (a tier-A account
    # turned green the week its contract ended, told to "keep the quarterly meeting")
    ended = renewal_due(actions, days, running, cfg, grace_days=30)
    assert ended[3] == (
        "Contract ended 3 days ago without a renewal: agree the renewal with the buyer now."
    )
    assert renewal_due(actions, np.array([-31.0] * 5), ~running, cfg, 30).tolist() == (
        actions.tolist()
    )  # past the grace: lapsed, the win-back action takes over
    # stopped ordering under the running contract: not "agree the renewal" first (a monthly
    # payer silent 231 days, contract ending in 12)
    silence = np.array([231.0, np.nan, 200.0, np.nan, np.nan])
    quiet = renewal_due(actions, days, running, cfg, 30, silence)
    assert quiet[0] == (
        "Renewal due in 1 day, but no order for 231 days: ask what they still need before "
        "agreeing the renewal."
    )
    assert quiet[1] == got[1] and quiet[2] == actions[2]  # ordering; not due yet
    assert quiet[3] == ended[3]  # ended: the renewal question as before


# -- the scorecard -----------------------------------------------------------------------


def test_usage_is_judged_against_last_years_season_where_the_usage_reaches_back() -> None:
    """A SaaS user's August dip made 30% of its healthy accounts yellow in the autumn; once
    August was the earlier window, a real decline read "+36% vs the 90 days before"."""
    X = features(
        #          dip, as last year   decline hidden by the dip   no year on record
        usage_weekly_90d=[7.0, 8.0, 7.0],
        usage_trend_90d=[-0.3, 0.36, -0.3],
        usage_yoy_90d=[0.02, -0.35, np.nan],
        usage_recency_days=[1.0, 1.0, 1.0],
    )
    got = scorecard(X, None, AS_OF, ScorecardConfig(usage_compare="year_before"))
    assert got["scorecard_usage"].tolist() == ["green", "yellow", "yellow"]
    assert got["scorecard_usage_detail"].tolist() == [
        "7.0 uses a week, +2% vs the same 90 days a year before (red below -50%, yellow "
        "below -20%)",
        "8.0 uses a week, -35% vs the same 90 days a year before (red below -50%, yellow "
        "below -20%)",
        "7.0 uses a week, -30% vs the 90 days before (red below -50%, yellow below -20%)",
    ]
    before = scorecard(X, None, AS_OF, ScorecardConfig())  # the default: the 90 days before
    assert before["scorecard_usage"].tolist() == ["yellow", "green", "yellow"]


def test_the_order_value_measure_reads_the_basket_against_the_nine_months_before() -> None:
    """User test (a food wholesaler): customers drifting to a competitor kept ordering twice a
    week while their baskets halved, green in 112 of 120 account-weeks 60 days or more into
    the drift. The measure: spend per order day of the last 90 days over that of the 9
    months before; not measured on fewer than scorecard.order_value_min_orders order days in either
    (a caterer's few lumpy events are no basket size). With health.basket_drop_raises a
    yellow or red measure raises the light to yellow, in the rule's words."""
    from ka_ml.scoring.scorecard import order_value

    X = pd.DataFrame(
        {
            "account_id": list("ABCDE"),
            "basket_ratio_90d": [0.45, 0.7, 0.95, 0.3, np.nan],
            "basket_days_90d": [12.0, 12.0, 12.0, 4.0, 0.0],
        }
    )
    light, text = order_value(X, ScorecardConfig())
    assert list(light) == ["red", "yellow", "green", "", ""]
    assert (
        text[0]
        == "spend per order day -55% vs the 9 months before (red below -50%, yellow below -20%)"
    )
    assert text[3] == "" and text[4] == ""
    assert list(order_value(X, ScorecardConfig(order_value_min_orders=3))[0])[3] == "red"
    with pytest.raises(ValueError, match="order_value_red_ratio must be below"):
        ScorecardConfig(order_value_red_ratio=0.9)
    drop = light != "green"
    drop &= light != ""
    why = np.array(["spend per order day -55% vs the 9 months before"] * 5, dtype=object)
    p = np.array([0.01, 0.02, 0.03, 0.01, 0.01])
    off, _ = assign_lights(p, None, HealthConfig(mode="threshold"), basket_drop=drop)
    assert list(off) == ["green"] * 5  # off by default
    on = HealthConfig(mode="threshold", basket_drop_raises=True)
    got, reason = assign_lights(p, None, on, basket_drop=drop, basket_why=why)
    assert list(got) == ["yellow", "yellow", "green", "green", "green"]
    assert reason[0].startswith(
        "raised to yellow: shrinking baskets: spend per order day -55% vs the 9 months before ("
    )
    assert light_rule(on).endswith("; an account whose baskets shrank is at least yellow")
    assert "baskets" not in light_rule(HealthConfig())


def test_each_scorecard_measure_is_red_yellow_and_green_on_accounts_built_for_it() -> None:
    X = features(
        #                  red    yellow  green  idle   nothing
        usage_weekly_90d=[2.0, 7.0, 10.0, 0.0, np.nan],
        usage_trend_90d=[-0.6, -0.3, 0.1, -1.0, np.nan],
        usage_recency_days=[3.0, 2.0, 1.0, 120.0, np.nan],
        complaints_90d=[4.0, 1.0, 0.0, 0.0, np.nan],
        complaints_365d=[6.0, 2.0, 0.0, 0.0, np.nan],
        recency_days=[90.0, 40.0, 10.0, 20.0, 5.0],
        gap_median_days=[30.0, 30.0, 30.0, 30.0, np.nan],
    )
    surveys = pd.DataFrame(
        {
            "account_id": ["X0", "X1", "X2", "X2", "X3", "X4"],
            "date": pd.to_datetime(
                [
                    "2026-03-01",
                    "2026-04-01",
                    "2026-01-01",
                    "2026-05-01",
                    "2026-05-01",
                    "2025-01-01",
                ]
            ),
            "score": [3.0, 6.0, 7.0, 9.0, 10.0, 2.0],
            "kind": [
                "renewal_intent",
                "renewal_intent",
                "renewal_intent",
                "renewal_intent",
                "nps",
                "renewal_intent",
            ],
        }
    )
    got = scorecard(X, surveys, AS_OF, ScorecardConfig())
    assert got["scorecard_usage"].tolist() == ["red", "yellow", "green", "red", ""]
    assert got["scorecard_complaints"].tolist() == ["red", "yellow", "green", "green", ""]
    # X3 answered NPS only (kept apart); X4's answer is older than a year
    assert got["scorecard_renewal_intent"].tolist() == ["red", "yellow", "green", "", ""]
    assert got["scorecard_purchase_rhythm"].tolist() == ["red", "yellow", "green", "green", ""]
    assert got.loc[2, "scorecard_renewal_intent_detail"].startswith(
        "renewal intent 9/10, 31 days ago, +2 vs the answer before"
    )
    assert got.loc[3, "scorecard_usage_detail"].startswith("no usage for 120 days")
    assert "3.0x the typical gap" in got.loc[0, "scorecard_purchase_rhythm_detail"]


def two_answers(scores: list[float], kinds: list[str]) -> pd.DataFrame:
    """Survey answers of X0 (a day before AS_OF) and X1 (two days before)."""
    return pd.DataFrame(
        {
            "account_id": ["X0", "X1"],
            "date": pd.to_datetime(["2026-05-31", "2026-05-30"]),
            "score": scores,
            "kind": kinds,
        }
    )


def test_one_day_is_said_as_one_day_not_one_days() -> None:
    """Read on an account card: "Purchase rhythm: 1 days since the last order"."""
    X = features(
        usage_weekly_90d=[5.0, 5.0],
        usage_trend_90d=[0.0, 0.0],
        usage_recency_days=[1.0, 2.0],
        recency_days=[1.0, 3.0],
        gap_median_days=[1.0, 2.0],
    )
    surveys = two_answers([8.0, 8.0], ["renewal_intent", "renewal_intent"])
    got = scorecard(X, surveys, AS_OF, ScorecardConfig())
    rhythm = got["scorecard_purchase_rhythm_detail"].tolist()
    assert rhythm[0].startswith("1 day since the last order, 1.0x the typical gap of 1 day (")
    assert rhythm[1].startswith("3 days since the last order, 1.5x the typical gap of 2 days (")
    intent = got["scorecard_renewal_intent_detail"].tolist()
    assert intent[0].startswith("renewal intent 8/10, 1 day ago (")
    assert intent[1].startswith("renewal intent 8/10, 2 days ago (")
    assert not any("1 days" in text for text in [*rhythm, *intent])
    # the lifecycle's reasons say it the same way
    states = lifecycle_states(
        features(
            recency_days=[400.0, 10.0, 5.0],
            gap_median_days=[1.0, 30.0, 5.0],
            contract_days_to_end=[np.nan, -1.0, np.nan],
            has_active_contract=[0, 0, 0],
            orders_lifetime=[50, 10, 1],
            tenure_days=[900, 900, 1],
        ),
        CFG,
    )
    assert states.loc[0, "lifecycle_reason"] == "no order for 400 days (typical gap 1 day)"
    assert states.loc[2, "lifecycle_reason"] == "1 order in 1 day: too little history to judge"


def test_a_missing_table_leaves_its_measure_empty() -> None:
    X = features(recency_days=[10.0], gap_median_days=[20.0])
    got = scorecard(X, None, AS_OF, ScorecardConfig())
    assert got.loc[0, "scorecard_usage"] == "" and got.loc[0, "scorecard_complaints"] == ""
    assert got.loc[0, "scorecard_renewal_intent"] == ""
    assert got.loc[0, "scorecard_purchase_rhythm"] == "green"


def test_accounts_that_stopped_ordering_under_a_running_contract_are_counted() -> None:
    """Frame contracts renewed every January while the customer stopped ordering: the churn
    probability (the contract's end) stays near 0; train says how many such accounts its
    latest origin holds, once, where the churn definition is chosen."""
    from ka_ml.scoring.lifecycle import silent_under_contract

    rows = features(
        recency_days=[326.0, 152.0, 400.0, 100.0, 95.0],
        overdue_ratio=[3.6, 2.1, 5.0, 1.0, 2.5],
    ).assign(churn_definition=["contract", "contract", "no_order", "contract", "contract"])
    got = silent_under_contract(rows, CFG)
    assert got is not None and got.startswith(
        "3 of the 4 accounts judged by a running contract on the latest test origin have "
        "stopped ordering (silent over 90 days and 2x their typical gap). An account with a "
        "running contract is judged by the contract's end"
    )
    assert got.endswith("set labels.churn_definition: no_order")
    assert silent_under_contract(rows.iloc[2:3], CFG) is None


def test_the_contract_note_says_whether_orders_stopped_before_the_contracts_ended() -> None:
    """A distributor read "10 of the 370 accounts ... had stopped ordering" as rare and kept
    churn_definition auto, while 87 of its 104 ended contracts had run on a median 204
    days past the account's last order: the losses its red list could not see."""
    from ka_ml.features.labels import ContractEnds
    from ka_ml.scoring.lifecycle import silent_under_contract

    rows = features(recency_days=[326.0, 20.0], overdue_ratio=[3.6, 1.0]).assign(
        churn_definition=["contract", "contract"]
    )
    frame = silent_under_contract(rows, CFG, ContractEnds(104, 87, 203.5))
    assert frame is not None and frame.startswith(
        "87 of the 104 accounts whose last contract ended with no order since had stopped "
        "ordering over 90 days before it ended (median silence at the end 204 days): on this "
        "data orders stop first, and a loss shows in them months before the contract ends; "
        "1 of the 2 accounts judged by a running contract"
    )
    demo = silent_under_contract(rows.iloc[1:], CFG, ContractEnds(97, 32, 42.0))
    assert demo is not None and demo.startswith(
        "32 of the 97 accounts whose last contract ended with no order since had stopped "
        "ordering over 90 days before it ended (median silence at the end 42 days). An "
    )
    assert silent_under_contract(rows.iloc[1:], CFG, ContractEnds(97, 0, 12.0)) is None
    # nobody judged by a contract (churn_definition no_order): nothing to say
    judged_by_orders = rows.assign(churn_definition="no_order")
    assert silent_under_contract(judged_by_orders, CFG, ContractEnds(104, 87, 203.5)) is None


def test_a_zero_renewal_intent_stored_as_minus_zero_reads_zero() -> None:
    """A survey export's -0.0 read "renewal intent -0/10" on a card (the Spark engine: 0)."""
    X = features(recency_days=[1.0], gap_median_days=[1.0])
    surveys = pd.DataFrame(
        {
            "account_id": ["X0"],
            "date": pd.to_datetime(["2026-05-31"]),
            "score": [-0.0],
            "kind": ["renewal_intent"],
        }
    )
    got = scorecard(X, surveys, AS_OF, ScorecardConfig())
    assert got["scorecard_renewal_intent_detail"].iloc[0].startswith("renewal intent 0/10,")


def test_the_scorecard_reads_survey_kinds_as_the_features_and_reasons_do() -> None:
    """A padded " Renewal_Intent" cell is the features' and the reasons' kind
    "renewal_intent"; the scorecard lowercased it without trimming and left it out."""
    from ka_ml.data.history import survey_kinds

    X = features(recency_days=[1.0, 1.0], gap_median_days=[1.0, 1.0])
    surveys = two_answers([2.0, 9.0], [" Renewal_Intent ", "renewal_intent"])
    got = scorecard(X, surveys, AS_OF, ScorecardConfig())
    assert got["scorecard_renewal_intent"].tolist() == ["red", "green"]
    assert survey_kinds(pd.Series([" NPS", None, "nps "])).tolist() == ["nps", pd.NA, "nps"]


def test_the_accounts_that_stopped_ordering_are_silent_past_the_horizon_and_their_rhythm() -> None:
    from ka_ml.config import Config
    from ka_ml.scoring.lifecycle import stopped_ordering

    X = features(recency_days=[231.0, 95.0, 60.0, np.nan], overdue_ratio=[7.5, 1.5, 6.0, np.nan])
    assert stopped_ordering(X, Config()).tolist() == [True, False, False, False]
    # by the typical gap by time where the features have it: an annual invoice beside small
    # orders (median gap 30, by time 300) is not 'stopped' 275 days on
    by_time = features(
        recency_days=[275.0, 231.0], overdue_ratio=[9.2, 7.5], gap_typical_days=[300.0, 30.0]
    )
    assert stopped_ordering(by_time, Config()).tolist() == [False, True]


def test_a_renewal_at_a_fraction_of_its_value_shows_on_the_scorecard() -> None:
    """Seen on a software vendor's customers who renewed at 40-60% of the value: green in 86
    of 86 account-weeks after it, the order-value measure blind to one invoice a year.
    The latest renewal is compared with the terms it replaced; an add-on running on is no
    term replaced; a renewal older than a year is not read."""
    from ka_ml.config import ScorecardConfig
    from ka_ml.scoring.scorecard import contract_value

    as_of = pd.Timestamp("2026-10-01")
    c = pd.DataFrame(
        [
            # A: downsell to 45% on 1 Mar
            ("A", "2025-03-01", "2026-02-28", 20000.0),
            ("A", "2026-03-01", "2027-02-28", 9000.0),
            # B: renewed at 85% two terms, licence + maintenance, summed
            ("B", "2025-06-01", "2026-05-31", 6000.0),
            ("B", "2025-06-01", "2026-05-31", 4000.0),
            ("B", "2026-06-01", "2027-05-31", 8500.0),
            # C: a small add-on beside a running term: nothing replaced, not measured
            ("C", "2025-01-01", "2027-12-31", 50000.0),
            ("C", "2026-07-01", "2027-06-30", 1000.0),
            # D: a downsell two years ago: too old to read
            ("D", "2023-08-01", "2024-07-31", 10000.0),
            ("D", "2024-08-01", "2027-07-31", 3000.0),
            # E: renewed at 110%, signed ahead but starting after the as-of: unknown without
            # a signing date
            ("E", "2025-10-15", "2026-10-14", 1000.0),
            ("E", "2026-10-15", "2027-10-14", 1100.0),
        ],
        columns=["account_id", "start_date", "end_date", "value"],
    )
    for col in ("start_date", "end_date"):
        c[col] = pd.to_datetime(c[col])
    X = pd.DataFrame({"account_id": list("ABCDEF")})
    light, text = contract_value(X, c, as_of, ScorecardConfig())
    assert list(light) == ["red", "yellow", "", "", "", ""]
    assert text[0] == (
        "renewed on 01 Mar 2026 at 45% of the value of the term before (9,000 vs 20,000; red "
        "below 60%, yellow below 90%)"
    )
    assert text[1].startswith("renewed on 01 Jun 2026 at 85% of the value")
    signed = c.assign(signed_date=c["start_date"] - pd.Timedelta(days=30))
    light, text = contract_value(X, signed, as_of, ScorecardConfig())
    assert light[4] == "green" and text[4].startswith("renewed from 15 Oct 2026 at 110%")
    assert list(contract_value(X, None, as_of, ScorecardConfig())[0]) == [""] * 6
