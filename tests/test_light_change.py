"""What a light change means when the account's own score does not say it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ka_ml.config import HealthConfig, PortfolioConfig
from ka_ml.reporting.summary import compared_note
from ka_ml.scoring.light_change import (
    BACK_FROM_LAPSED,
    BACK_NO_ORDER,
    BACK_UNDER_CONTRACT,
    FIRST_ORDER,
    NEW_ON_LIST,
    NO_LIGHT,
    NOT_SCORED,
    light_moved_alone,
    no_light_last_week,
)
from ka_ml.scoring.score import _said_since_last_week, _tier_position


def test_an_account_without_a_light_last_week_says_why_never_new() -> None:
    """Read in a digest: a customer back from lapsed under "TURNED RED ... Since last week:
    New on the list this week", which a manager reads as the lifecycle state 'new'."""
    changes = np.array([NEW_ON_LIST, NEW_ON_LIST, NEW_ON_LIST, "Risk up 3 pts since last week"])
    was = pd.Series(["lapsed", None, None, "active"])
    since_first = np.array([900.0, 400.0, 5.0, 700.0])  # days since the first order
    got = no_light_last_week(changes, was, since_first, 7.0, known=True)
    assert got.tolist() == [BACK_FROM_LAPSED, NOT_SCORED, FIRST_ORDER, changes[3]]
    assert not any("new" in t.lower().split() for t in got)
    assert BACK_FROM_LAPSED.startswith("Back from lapsed")
    # lapsed last week yet scored (a probability, no light): its change follows the news
    came_back = no_light_last_week(
        np.array(["Risk down 5 pts since last week; biggest mover: order volume (-6 pts)."]),
        pd.Series(["lapsed"]), np.array([900.0]), 7.0, known=True,
        lifecycle=np.array(["active"]),
    )  # fmt: skip
    assert came_back[0] == f"{BACK_FROM_LAPSED} Risk down 5 pts since last week; " + (
        "biggest mover: order volume (-6 pts)."
    )
    # with the silence the return ended, said in days
    told = no_light_last_week(
        changes[:1], was[:1], since_first[:1], 7.0, known=True, silence=np.array([138.0])
    )
    assert told[0] == (
        "Back from lapsed after 138 days without an order: no light last week (lapsed), and "
        "it has ordered since."
    )
    # no order since (a renewal's contract now runs): never "it has ordered since"
    renewed = no_light_last_week(
        np.array([NEW_ON_LIST, NEW_ON_LIST, "Risk down 9 pts since last week."]),
        pd.Series(["lapsed", "lapsed", "lapsed"]), since_first[:3], 7.0, known=True,
        lifecycle=np.array(["active"] * 3), silence=np.array([19.0, 19.0, 19.0]),
        ordered_since=np.array([False, True, False]),
        contract_running=np.array([True, False, False]),
    )  # fmt: skip
    assert renewed.tolist() == [
        BACK_UNDER_CONTRACT,
        "Back from lapsed after 19 days without an order: no light last week (lapsed), and "
        "it has ordered since.",
        f"{BACK_NO_ORDER} Risk down 9 pts since last week.",
    ]
    assert not any("ordered since" in t for t in (BACK_UNDER_CONTRACT, BACK_NO_ORDER))
    # an older history without lifecycles: nothing is claimed
    assert (
        no_light_last_week(changes[:1], pd.Series([None]), since_first[:1], 7.0, known=False)[0]
        == NO_LIGHT
    )


def _week(
    ids: list[str], health: list[str | None], p: list[float], life: list[str]
) -> pd.DataFrame:
    return pd.DataFrame(
        {"account_id": ids, "health": health, "churn_probability": p, "lifecycle": life}
    )


def _two_reds_lapse(
    before: tuple[float, float], after: tuple[float, float]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ten accounts, (last week indexed by account, this week): the two red ones lapse, and
    K2 and K3 (yellow last week) have the given probabilities; K2 turns red."""
    ids = [f"K{i}" for i in range(10)]
    rest = [0.2, 0.15, 0.1, 0.08, 0.05, 0.02]
    prev = _week(
        ids,
        ["red", "red", "yellow", "yellow", *["green"] * 6],
        [0.9, 0.8, *before, *rest],
        ["active"] * 10,
    ).set_index("account_id")
    now = _week(
        ids,
        [None, None, "red", "yellow", *["green"] * 6],
        [0.9, 0.8, *after, *rest],
        ["lapsed", "lapsed", *["active"] * 8],
    )
    return prev, now


def test_a_light_that_moved_while_the_risk_did_not_says_why() -> None:
    """Read in p120: "TURNED RED - Brightvale Oy: red, risk 47% (was 47%, ±0 pts) ...
    Since last week: No material change since last week." Two red accounts above it had
    lapsed, freeing red places in the 10% budget."""
    prev, now = _two_reds_lapse((0.47, 0.4), (0.472, 0.45))
    got = light_moved_alone(now, prev, "churn_probability", HealthConfig())
    assert got[2] == (
        "Risk unchanged at 47%, yet now red: among the riskiest 10% of active and new "
        "accounts, because 2 accounts ranked above it last week have lapsed or left the list."
    )
    assert (got[[0, 1, 3, 4]] == "").all()  # lapsed, or the risk moved, or no light change


def test_a_light_that_moved_against_the_risk_says_why_before_the_weekly_change() -> None:
    """Read in a digest: "TURNED RED THIS WEEK ... risk 37% (was 37%, -1 pt) ... Risk down 1
    pt": its risk fell, and red accounts above it lapsed, so the red cut fell past it."""
    prev, now = _two_reds_lapse((0.374, 0.36), (0.362, 0.37))
    weekly = np.array(["", "", "Risk down 1 pt since last week.", *[""] * 7], dtype=object)
    got = light_moved_alone(now, prev, "churn_probability", HealthConfig(), weekly)
    assert got[2] == (
        "Now red although its risk fell 1 pt to 36%: among the riskiest 10% of active and "
        "new accounts, because 2 accounts ranked above it last week have lapsed or left the "
        "list. Risk down 1 pt since last week."
    )
    assert got[3] == ""  # yellow both weeks


def test_a_light_that_fell_while_the_risk_did_not_names_who_passed_it() -> None:
    cfg = HealthConfig()
    ids = [f"K{i}" for i in range(10)]
    p_prev = [0.5, 0.3, 0.2, 0.19, 0.18, 0.17, 0.16, 0.15, 0.14, 0.13]
    prev = _week(ids, ["red", "yellow", "yellow", *["green"] * 7], p_prev, ["active"] * 10)
    now_p = [0.5, 0.6, 0.2, 0.19, 0.18, 0.17, 0.16, 0.15, 0.14, 0.13]
    now = _week(ids, ["yellow", "red", "yellow", *["green"] * 7], now_p, ["active"] * 10)
    got = light_moved_alone(now, prev.set_index("account_id"), "churn_probability", cfg)
    assert got[0] == (
        "Risk unchanged at 50%, yet now yellow: in the next 20% by risk, because 1 account "
        "ranked below it last week is now riskier."
    )
    assert got[1] == ""  # its risk rose: the usual weekly text says so


def test_a_light_raised_by_an_override_says_the_rule_not_the_ranking() -> None:
    """Seen on the demo: "Risk unchanged at 2%, yet now yellow: in the next 20% by risk,
    because 2 accounts ... lapsed" for an account the overdue rule made yellow."""
    cfg = HealthConfig()
    prev = _week(["A", "B"], ["green", "red"], [0.02, 0.9], ["active"] * 2)
    now = _week(["A", "B"], ["yellow", None], [0.021, 0.9], ["active", "lapsed"]).assign(
        light_reason=["raised to yellow: overdue: no order for 40 days (churn probability 2%)", ""]
    )
    got = light_moved_alone(now, prev.set_index("account_id"), "churn_probability", cfg)
    assert got[0] == (
        "Risk unchanged at 2%; the light changed by the light rule, not the risk: raised to "
        "yellow: overdue: no order for 40 days (churn probability 2%)."
    )


def test_a_light_a_rhythm_rule_set_says_that_rule_not_the_ranking() -> None:
    """Read in a distributor's digest (user test): a healthy project buyer, green by the
    rhythm rule, read "Now green although its risk rose 34 pts to 90%: below the red and
    yellow shares, because 2 accounts ranked below it last week are now riskier". The same
    holds for an account quiet as before, at most yellow."""
    from ka_ml.scoring.health import rhythm_quiet_why, seen_before_why

    cfg = HealthConfig()
    quiet = rhythm_quiet_why(np.array([0.9]), np.array([0.88]), np.array([130.0]), 90)[0]
    capped = (
        "yellow, not red: churn probability 80%: among the 10% highest churn probability; "
        "but " + seen_before_why(np.array([113.0]), np.array([9.0]), np.array([3.0]))[0]
    )
    prev = _week(["A", "B", "C"], ["yellow", "red", "green"], [0.56, 0.7, 0.1], ["active"] * 3)
    now = _week(["A", "B", "C"], ["green", "yellow", "green"], [0.9, 0.8, 0.1], ["active"] * 3)
    now = now.assign(light_reason=[quiet, capped, "churn probability 10%: not among ..."])
    got = light_moved_alone(now, prev.set_index("account_id"), "churn_probability", cfg)
    assert got[0] == (
        f"Now green although its risk rose 34 pts to 90%; the light changed by the light "
        f"rule, not the risk: {quiet}."
    )
    assert got[1].startswith("Now yellow although its risk rose 10 pts to 80%; the light ")
    assert got[1].endswith(
        "come back from a silence this long 3 times before (no order for 113 days; typical gap 9 days)."
    )
    assert "ranked below it" not in got[0] + got[1]


def test_a_light_a_rule_no_longer_holds_down_says_so_not_the_ranking() -> None:
    """User test (a food wholesaler): a ski hut green by the rhythm rule at 96% turned red
    at 94% the week its silence outgrew its past off-seasons, and read "Now red although
    its risk fell 2 pts to 94%: among the riskiest 10% ..., because 1 account ranked above
    it last week has lapsed ...": 21 of the quarter's 23 such texts. Last week its place in
    the ranking was red; a rule held it green. An account the ranking itself moves keeps
    the ranking's words."""
    cfg = HealthConfig(red_share=0.2, yellow_share=0.2)
    ids = [f"K{i}" for i in range(10)]
    p_prev = [0.96, 0.9, 0.8, 0.7, 0.5, 0.4, 0.2, 0.1, 0.05, 0.01]
    prev = _week(
        ids, ["green", "red", "red", "yellow", "yellow", *["green"] * 5], p_prev, ["active"] * 10
    ).set_index("account_id")
    p_now = [0.94, 0.9, 0.3, 0.7, 0.5, 0.41, 0.2, 0.1, 0.05, 0.01]
    now = _week(
        ids, ["red", "red", "yellow", "red", "yellow", *["green"] * 5], p_now, ["active"] * 10
    ).assign(light_reason="churn probability ...: among the 20% highest churn probability")
    got = light_moved_alone(now, prev, "churn_probability", cfg)
    assert got[0] == (
        "Now red although its risk fell 2 pts to 94%: last week the light rule held it down "
        "(a quiet spell of its usual rhythm, or its quiet season); that no longer holds, so "
        "its churn probability lights it again."
    )
    assert got[3].startswith("Risk unchanged at 70%, yet now red: among the riskiest 20%")
    assert "held it down" not in "".join(got[1:])


def test_the_scorer_keeps_last_weeks_lifecycle_and_rewrites_the_texts() -> None:
    cfg = HealthConfig()
    prev = pd.DataFrame(
        {
            "account_id": ["A", "B"],
            "as_of": pd.Timestamp("2026-09-17"),
            "health": [None, "yellow"],
            "churn_probability": [0.61, 0.3],
            "lifecycle": ["lapsed", "active"],
        }
    ).set_index("account_id")
    out = pd.DataFrame(
        {
            "account_id": ["A", "B", "C"],
            "health": ["red", "yellow", "green"],
            "churn_probability": [0.56, 0.31, 0.1],
            "lifecycle": ["active", "active", "active"],
            "changes": [NEW_ON_LIST, "No material change since last week.", NEW_ON_LIST],
        }
    )
    X = pd.DataFrame({"recency_days": [7.0, 20.0, 3.0], "active_span_days": [600.0, 300.0, 0.0]})
    no_tiers = pd.Series(np.nan, index=out.index)  # last week had no tiers to move from
    got = _said_since_last_week(
        out, X, prev, pd.Timestamp("2026-09-24"), "churn_probability", no_tiers, _Cfg(cfg)
    )
    assert got["lifecycle_prev"].tolist()[:2] == ["lapsed", "active"]
    assert pd.isna(got["lifecycle_prev"].iloc[2])
    assert got["changes"].tolist() == [
        BACK_FROM_LAPSED,
        "No material change since last week.",
        FIRST_ORDER,
    ]
    # a skipped week: the run compared with is two weeks old, and the texts say so
    skipped = _said_since_last_week(
        out, X, prev, pd.Timestamp("2026-10-01"), "churn_probability", no_tiers, _Cfg(cfg)
    )
    assert skipped["changes"].iloc[1] == "No material change since 17 Sep (14 days)."
    assert not any("last week" in t for t in skipped["changes"])


def test_a_summary_names_the_run_it_compares_with_when_it_was_not_a_week_ago() -> None:
    def run(days_back: int) -> pd.DataFrame:
        scores = pd.DataFrame(
            {"as_of": [pd.Timestamp("2026-07-16")] * 2, "health": ["red", "green"]}
            | {"health_prev": ["green", "green"], "churn_probability_prev": [0.2, 0.1]}
        )
        scores.attrs["last_run_as_of"] = str(
            (pd.Timestamp("2026-07-16") - pd.Timedelta(days=days_back)).date()
        )
        return scores

    assert compared_note(run(7)) == compared_note(run(8)) == ""
    assert compared_note(run(14)).startswith(
        "Changes are since the run of 2 Jul 2026, 14 days earlier (not a week)"
    )
    first = run(14).assign(health_prev="", churn_probability_prev=np.nan)
    assert compared_note(first) == ""  # a first run says so on its own


def test_a_tier_change_is_said_with_the_cut_it_crossed() -> None:
    """Read over a quarter: 'Now tier B (tier C last week; its 12-month revenue is 0.01% of
    the portfolio's)' and 'Now tier C (tier B last week; ... 0.01% ...)' both occurred: the
    share alone did not say why the tier moved."""
    cfg = HealthConfig()
    prev = pd.DataFrame(
        {
            "account_id": ["A", "B", "C"],
            "as_of": pd.Timestamp("2026-09-17"),
            "health": ["red", "green", "green"],
            "churn_probability": [0.6, 0.1, 0.1],
            "lifecycle": ["active"] * 3,
            "abc_tier": ["A", "A", None],
        }
    ).set_index("account_id")
    out = pd.DataFrame(
        {
            "account_id": ["A", "B", "C"],
            "health": ["red", "green", "green"],
            "churn_probability": [0.62, 0.1, 0.1],
            "lifecycle": ["active"] * 3,
            "abc_tier": pd.Categorical(["B", "A", "C"], categories=["A", "B", "C"]),
            "revenue_share": [0.15, 0.82, 0.03],
            "changes": [
                "Risk up 2 pts since last week.",
                *["No material change since last week."] * 2,
            ],
        }
    )
    X = pd.DataFrame({"recency_days": [70.0, 20.0, 3.0], "active_span_days": [600.0] * 3})
    day = pd.Timestamp("2026-09-24")
    at = _tier_position(out, _Cfg(cfg))
    got = _said_since_last_week(out, X, prev, day, "churn_probability", at, _Cfg(cfg))["changes"]
    assert got.iloc[0] == (
        "Risk up 2 pts since last week. Now tier B (tier A last week): the accounts ahead of it "
        "make 82.0% of the portfolio's 12-month revenue, past the A cut at 80.0%; its own "
        "share is 15.0%."
    )
    assert got.iloc[1:].tolist() == ["No material change since last week."] * 2
    share_rule = _Cfg(cfg, PortfolioConfig(abc_method="share"))
    up = out.assign(abc_tier=pd.Categorical(["A", "A", "C"], categories=["A", "B", "C"]))
    was_b = prev.assign(abc_tier=["B", "A", None])
    at = _tier_position(up, share_rule)
    said = _said_since_last_week(up, X, was_b, day, "churn_probability", at, share_rule)["changes"]
    assert said.iloc[0].endswith(
        "Now tier A (tier B last week): its 12-month revenue is 15.0% of the portfolio's, "
        "above the A cut at 30.0%."
    )  # (the share rule would not make 15% A: the sentence words whatever moved)


def test_an_account_on_a_tier_cut_keeps_last_weeks_tier() -> None:
    from ka_ml.features.portfolio import share_before, sticky_tiers

    cfg = PortfolioConfig()  # pareto 80 / 95, hysteresis 0.02
    tier = pd.Series(["B", "A", "C", "C", "B"])
    prev = pd.Series(["A", "B", "B", "A", None])
    position = pd.Series([0.81, 0.79, 0.96, 0.99, 0.85])
    got = sticky_tiers(tier, prev, position, cfg).tolist()
    # on the A cut both ways: kept; on the B cut: kept; A to C: never held; no last week: as is
    assert got == ["A", "B", "B", "C", "B"]
    far = pd.Series([0.83, 0.77, 0.98, 0.99, 0.85])
    assert sticky_tiers(tier, prev, far, cfg).tolist() == tier.tolist()
    off = PortfolioConfig(tier_hysteresis=0.0)
    assert sticky_tiers(tier, prev, position, off).tolist() == tier.tolist()
    share = pd.Series([0.5, 0.3, 0.2], index=["x", "y", "z"])
    assert share_before(share.iloc[::-1]).reindex(share.index).tolist() == [0.0, 0.5, 0.8]


class _Cfg:
    def __init__(self, health: HealthConfig, portfolio: PortfolioConfig | None = None) -> None:
        self.health = health
        self.portfolio = portfolio or PortfolioConfig()
