"""The managers' report (HTML) and the spreadsheet: content, numbers, escaping, edge cases."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from ka_ml.reporting.columns import SCORECARD
from ka_ml.reporting.excel import LIGHT_FILLS, write_excel
from ka_ml.reporting.formatting import fmt_money, fmt_pct, fmt_points, fmt_range
from ka_ml.reporting.html import render_report, write_report
from ka_ml.reporting.summary import (
    attention_flags,
    lowest_lit,
    needs_attention,
    portfolio_summary,
)

AS_OF = pd.Timestamp("2026-11-23")
XSS = "<script>alert(1)</script>"

REASONS = (
    ("Orders in the last 90 days fell 64% versus the 90 days before", "orders_trend_90d", 0.14),
    ("No order for 143 days (typical gap 31 days)", "recency_days", 0.11),
    ("3 complaints in the last 90 days", "complaints_90d", 0.07),
    ("Renewal intent score 9 of 10 in the last survey", "survey_last_score", -0.06),
    ("Product usage active in 25 of the last 26 weeks", "usage_active_weeks", -0.09),
    ("Contract runs until 2027-06-30", "contract_days_left", -0.04),
)
NAMES = ("Acme Corp", "Borealis AG", "Cobalt Mining", "Delta Foods", "Epsilon Labs", "Fjord Tech")
OWNERS = ("Ana Silva", "Ben Okafor", "Chen Wei")


def _light(p: np.ndarray) -> np.ndarray:
    return np.select([p >= 0.5, p >= 0.25], ["red", "yellow"], "green")


def make_scores(n: int = 30, seed: int = 7) -> pd.DataFrame:
    """A realistic scores frame typed like the scorer's output (str, Categorical tier, us dates).

    Fixed rows for the edge cases: 0 is turned red, 1 rose >= 10 pts but stayed yellow,
    2 is new (no last week), 3 has open-ended dates (NaT) and no name or owner.
    """
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    p = rng.beta(1.6, 3.5, n)
    p_prev = np.clip(p - rng.normal(0.0, 0.04, n), 0.0, 1.0)
    p[:2], p_prev[:2] = [0.62, 0.41], [0.31, 0.28]
    p_prev[2] = np.nan
    health = _light(p)
    health_prev = pd.Series(_light(np.nan_to_num(p_prev)), dtype=object).where(~np.isnan(p_prev))
    revenue = np.round(rng.lognormal(11.5, 1.0, n), 2)
    share = revenue / revenue.sum()
    order = np.argsort(-revenue)
    cum = np.empty(n)
    cum[order] = np.cumsum(revenue[order]) / revenue.sum()
    tier = np.select([cum <= 0.5, cum <= 0.8], ["A", "B"], "C")
    dependency = share * rng.uniform(1.0, 6.0, n)
    next_days = rng.integers(5, 120, n)
    next_date = AS_OF + pd.to_timedelta(next_days, unit="D")
    p30 = rng.uniform(0.0, 0.6, n)
    p60 = p30 + rng.uniform(0.0, 0.2, n)
    p90 = np.minimum(p60 + rng.uniform(0.0, 0.2, n), 1.0)
    r = np.stack([(idx + k) % len(REASONS) for k in range(3)], axis=1)
    names = pd.Series(
        [NAMES[i % len(NAMES)] + f" {i}" if i != 3 else None for i in idx], dtype="str"
    )
    owners = pd.Series([OWNERS[i % len(OWNERS)] if i != 3 else None for i in idx], dtype="str")
    df = pd.DataFrame(
        {
            "account_id": pd.Series([f"KA-{i:04d}" for i in idx], dtype="str"),
            "name": names,
            "owner": owners,
            "industry": pd.Series(np.where(idx % 2, "Manufacturing", "Retail"), dtype="str"),
            "region": pd.Series(np.where(idx % 3, "North", "South"), dtype="str"),
            "as_of": pd.Series(AS_OF, index=idx).astype("datetime64[us]"),
            "churn_probability": p,
            "health": pd.Series(health, dtype="str"),
            "health_prev": health_prev.astype("str"),
            "churn_probability_prev": p_prev,
            "light_reason": pd.Series(
                [f"churn probability {x:.0%} vs thresholds 50%/25%" for x in p], dtype="str"
            ),
            "recommended_action": pd.Series(
                np.where(health == "red", "Call the account this week", "Keep the usual rhythm"),
                dtype="str",
            ),
            "p_purchase_30d": p30,
            "p_purchase_60d": p60,
            "p_purchase_90d": p90,
            "expected_next_purchase_date": pd.Series(next_date).astype("datetime64[us]"),
            "next_purchase_p10_date": pd.Series(next_date - pd.Timedelta(days=9)).astype(
                "datetime64[us]"
            ),
            "next_purchase_p90_date": pd.Series(next_date + pd.Timedelta(days=35)).astype(
                "datetime64[us]"
            ),
        }
    )
    for k in range(3):
        text = np.array([REASONS[j][0] for j in r[:, k]], dtype=object)
        shap = np.array([REASONS[j][2] for j in r[:, k]]) * (1.0 - 0.2 * k)
        direction = np.where(shap > 0, "raises risk", "lowers risk")
        df[f"reason_{k + 1}"] = pd.Series(text + " (" + direction + ")", dtype="str")
        df[f"reason_{k + 1}_feature"] = pd.Series([REASONS[j][1] for j in r[:, k]], dtype="str")
        df[f"reason_{k + 1}_shap"] = shap
        df[f"reason_{k + 1}_direction"] = pd.Series(direction, dtype="str")
    df["changes"] = pd.Series(
        np.where(idx % 4 == 0, "", "Risk up 3 pts since last week; biggest mover: order volume"),
        dtype="str",
    )
    df["abc_tier"] = pd.Categorical(tier, categories=["A", "B", "C"])
    df["revenue_share"] = share
    df["revenue_365d"] = revenue
    df["revenue_at_risk"] = revenue * p
    df["dependency_index"] = dependency
    df["dependency_alert"] = dependency > 0.4
    df["days_since_last_order"] = rng.integers(1, 200, n).astype(float)
    df["churn_model_version"] = "7"
    df["timing_model_version"] = "4"
    for col in ("expected_next_purchase_date", "next_purchase_p10_date", "next_purchase_p90_date"):
        df.loc[3, col] = pd.NaT
    return df


def make_run(**extra: Any) -> dict[str, Any]:
    run: dict[str, Any] = {
        "as_of": "2026-11-23",
        "churn_definition": "contract lapse (contracted accounts) / no order (others)",
        "horizon_days": 90,
        "thresholds": {"red": 0.5, "yellow": 0.25},
        "models": {"churn": "ka_churn v7", "timing": "ka_timing v4"},
        "data": {"fingerprint": "3f9a1c0d77e2b4a1"},
        "n_accounts": 30,
        "warnings": [],
        "generated_by": {"ka_ml": "0.1.0", "python": "3.11"},
    }
    run.update(extra)
    return run


def six_accounts() -> pd.DataFrame:
    """Six accounts whose summary is checked by hand below."""
    return pd.DataFrame(
        {
            "account_id": pd.Series(["A1", "A2", "A3", "A4", "A5", "A6"], dtype="str"),
            "name": pd.Series(["Acme", "Bolt", None, "Dune", "Echo", "Flux"], dtype="str"),
            "health": pd.Series(["red", "red", "yellow", "green", "green", "yellow"], dtype="str"),
            "health_prev": pd.Series(["red", "green", "yellow", "green", None, "green"]),
            "churn_probability": [0.70, 0.55, 0.30, 0.05, 0.10, 0.40],
            "churn_probability_prev": [0.65, 0.20, 0.29, 0.04, np.nan, 0.30],
            "abc_tier": pd.Categorical(["A", "B", "B", "C", "C", "A"], categories=["A", "B", "C"]),
            "revenue_365d": [1000.0, 500.0, 200.0, 100.0, np.nan, 2000.0],
            "revenue_at_risk": [700.0, 275.0, 60.0, 5.0, np.nan, 800.0],
            "dependency_index": [0.45, 0.1, 0.05, 0.01, 0.0, 0.62],
            "dependency_alert": [True, False, False, False, False, True],
        }
    )


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    return make_scores()


@pytest.fixture(scope="module")
def report(scores: pd.DataFrame) -> str:
    return render_report(scores, make_run())


def _strip_own_script(text: str) -> str:
    """The report without its single inline <script> block (which holds no data)."""
    return re.sub(r"<script>.*?</script>", "", text, count=1, flags=re.S)


# ------------------------------------------------------------------------- summary figures


def test_portfolio_summary_matches_hand_computed_figures_on_six_accounts() -> None:
    s = portfolio_summary(six_accounts())
    assert s["n_accounts"] == 6
    assert s["total_revenue"] == pytest.approx(3800.0)  # the missing revenue counts as 0
    assert s["revenue_at_risk"] == pytest.approx(1840.0)
    assert s["revenue_at_risk_share"] == pytest.approx(1840.0 / 3800.0)
    assert s["lights"]["red"] == {"accounts": 2, "revenue": 1500.0, "revenue_at_risk": 975.0}
    assert s["lights"]["yellow"] == {"accounts": 2, "revenue": 2200.0, "revenue_at_risk": 860.0}
    assert s["lights"]["green"] == {"accounts": 2, "revenue": 100.0, "revenue_at_risk": 5.0}
    assert s["tiers"]["A"] == {"accounts": 2, "revenue": 3000.0, "revenue_at_risk": 1500.0}
    assert s["tiers"]["C"]["accounts"] == 2
    assert s["light_by_tier"]["red"]["B"] == {
        "accounts": 1,
        "revenue": 500.0,
        "revenue_at_risk": 275.0,
    }
    assert s["light_by_tier"]["green"]["A"] == {
        "accounts": 0,
        "revenue": 0.0,
        "revenue_at_risk": 0.0,
    }
    assert [d["account_id"] for d in s["dependency_alerts"]] == ["A6", "A1"]  # highest index first
    assert s["dependency_alerts"][0]["dependency_index"] == pytest.approx(0.62)
    # A2 turned red (was green); A2 (+35 pts) and A6 (+10 pts) rose by 10 points or more
    assert (s["turned_red"], s["rising"], s["needs_attention"]) == (1, 2, 2)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_portfolio_summary_is_the_same_to_the_last_digit_in_any_row_order(seed: int) -> None:
    """The Spark engine writes the same run record as the local one: its rows come in
    another order, and a plain float sum over them differed in the last digits."""
    scores = make_scores()
    shuffled = scores.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    assert portfolio_summary(shuffled) == portfolio_summary(scores)


def test_portfolio_summary_is_plain_python_ready_for_the_run_record() -> None:
    import json

    s = portfolio_summary(six_accounts())
    assert json.loads(json.dumps(s)) == s  # no numpy scalars, no NaN
    assert type(s["lights"]["red"]["accounts"]) is int


def test_an_account_turns_red_only_when_it_was_not_red_last_week() -> None:
    df = six_accounts()
    flags = attention_flags(df)
    assert flags["turned_red"].tolist() == [False, True, False, False, False, False]
    assert flags["rising"].tolist() == [False, True, False, False, False, True]
    new_red = df.assign(health_prev=pd.Series([None] * 6, dtype=object))
    assert attention_flags(new_red)["turned_red"].tolist() == [
        True,
        True,
        False,
        False,
        False,
        False,
    ]


def test_needs_attention_lists_turned_red_and_rising_accounts_by_revenue_at_risk() -> None:
    att = needs_attention(six_accounts())
    assert att["account_id"].tolist() == ["A6", "A2"]  # 800 then 275 at risk
    assert att["risk_change"].round(2).tolist() == [0.10, 0.35]


def test_an_account_a_rhythm_or_season_rule_holds_unlit_does_not_need_attention() -> None:
    """A food wholesaler's "Needs attention this week" listed 44 green beer gardens closing
    for the winter, each "churn probability 91%, but this is its quiet season": their rise
    is the season the rule already read. An account an override raised stays listed."""
    from ka_ml.scoring.health import QUIET_WORDS

    df = six_accounts()
    df.loc[df["account_id"] == "A2", "health"] = "green"  # risen 35 points, held unlit
    assert needs_attention(df)["account_id"].tolist() == ["A6", "A2"]
    reasons = [""] * len(df)
    reasons[1] = f"churn probability 55%, but {QUIET_WORDS[3]}: ..."
    reasons[5] = "raised to yellow: overdue: ..."
    att = needs_attention(df.assign(light_reason=reasons))
    assert att["account_id"].tolist() == ["A6"]


def test_an_owner_report_states_the_owners_share_not_the_company_concentration() -> None:
    """Read on an owner's page with 2 accounts: "the top 5 accounts make 36.0% of revenue;
    Herfindahl index 0.000": company figures computed over two rows. An owner's page says
    what their accounts make of the company's revenue; the full report keeps the
    company-wide line."""
    df = six_accounts().assign(revenue_share=[0.25, 0.05, 0.02, 0.01, 0.0, 0.11])
    mine = df.iloc[[0, 1]]
    owner = render_report(mine, make_run(owner="maria.meyer"))
    assert "The 2 accounts in this report make 30.0% of the company's revenue" in owner
    assert "Herfindahl" not in owner and "top 5 accounts" not in owner
    whole = render_report(df, make_run())
    first = df.iloc[0]
    named = f"{first['name']} ({first['account_id']})" if first.get("name") else first["account_id"]
    assert (
        f"Concentration: the largest account, {named}, makes 25.0% of revenue; the top 5 "
        "accounts make 44.0% of revenue"
    ) in whole
    one = render_report(df.iloc[[5]], make_run(owner="x"))
    assert "report make 11" not in one  # the verb agrees in number
    assert "The 1 account in this report makes 11.0%" in one


def test_the_full_report_compares_the_account_managers_and_an_owners_report_does_not() -> None:
    """A sales director over eleven managers had to open eleven owner reports to compare
    them: the full report now has one row per manager, most revenue at risk first."""
    df = make_scores(30)
    df["lifecycle"] = np.where(np.arange(30) % 7 == 6, "lapsed", "active")
    df.loc[df["lifecycle"].eq("lapsed"), ["health", "revenue_at_risk"]] = [None, 0.0]
    s = portfolio_summary(df)
    rows = {r["owner"]: r for r in s["by_owner"]}
    lapsed = df["lifecycle"].eq("lapsed")
    for owner, r in rows.items():
        mine = df["owner"].fillna("").eq(owner)
        kept = mine & ~lapsed
        assert r["accounts"] == int(kept.sum()) and r["lapsed"] == int((mine & lapsed).sum())
        assert r["red"] == int((kept & df["health"].eq("red")).sum())
        assert r["revenue_at_risk"] == pytest.approx(df.loc[kept, "revenue_at_risk"].sum())
    assert sum(r["accounts"] + r["lapsed"] for r in rows.values()) == len(df)
    at_risk = [r["revenue_at_risk"] for r in s["by_owner"]]
    assert at_risk == sorted(at_risk, reverse=True)
    assert "" in rows  # the account without an owner
    full = render_report(df, make_run())
    table = full.split('id="by-owner"')[1].split("</table>")[0]
    assert "(no owner)" in table and all(o in table for o in OWNERS)
    # named as the digests name them when the run says so (read: "(no owner)" in the
    # report, "unassigned" in the digest)
    named = render_report(df, make_run(unassigned_label="unassigned"))
    assert "<td>unassigned</td>" in named.split('id="by-owner"')[1].split("</table>")[0]
    assert 'id="by-owner"' not in render_report(df, make_run(owner=OWNERS[0]))
    single = df.assign(owner="maria.meyer")
    assert portfolio_summary(single)["by_owner"] == []


def test_the_capped_attention_list_points_where_the_rest_can_be_found(scores: pd.DataFrame) -> None:
    """'... and 6 more: filter the table below by light' under accounts that turned red or
    rose: no light filter isolates them (a second manager test). Since last week, the
    pointer is the spreadsheet's change column; on a first run (reds only) the filter."""
    text = html.unescape(render_report(scores, make_run(attention_rows=1)))
    assert re.search(
        r"… and \d+ more: each with its change since last week in scores.xlsx \(column "
        r'"Changes since last week"\)\.',
        text,
    )
    first = scores.drop(columns=["health_prev", "churn_probability_prev"])
    text = html.unescape(render_report(first, make_run(attention_rows=1)))
    assert re.search(r"… and \d+ more: filter the table below by light\.", text)


def test_the_attention_list_says_why_an_account_without_a_light_last_week_turned_red() -> None:
    """Read: "Brightstone Ltd ... turned red (new)" for a customer back from lapsed; and an
    account that turned red with its risk unchanged showed nothing to explain it."""
    df = six_accounts().assign(
        lifecycle_prev=["active", "active", "active", "active", "lapsed", "active"],
        changes=["", "Risk unchanged at 55%, yet now red: because.", "", "", "", ""],
    )
    df.loc[4, ["health", "churn_probability", "revenue_at_risk"]] = ["red", 0.61, 900.0]
    df.loc[1, "churn_probability_prev"] = 0.551
    text = render_report(df, make_run())
    attention = text.split('id="attention"')[1].split("</table>")[0]
    assert "back from lapsed, still red" in attention and "turned red (back" not in attention
    assert "(new)" not in attention
    assert "turned red (was green)<small>Risk unchanged at 55%, yet now red: because.</small>" in (
        attention
    )
    df["lifecycle_prev"] = ["active", "active", "active", "active", None, "active"]
    assert "turned red (not scored last week)" in render_report(df, make_run())
    old = render_report(df.drop(columns="lifecycle_prev"), make_run())  # scores from before
    assert "turned red (no light last week)" in old


def test_an_account_a_rule_raised_to_yellow_this_week_needs_attention() -> None:
    """A lab distributor's lost tenders turned yellow 85 days ahead as "renewal due" and
    reached no attention list: "No account turned red or rose by 10 pts". Green last week
    and raised to yellow by a rule now, an account is listed, the rule named."""
    df = six_accounts()
    # A4: green last week, yellow now by the renewal rule, its risk unchanged
    df.loc[3, "health"] = "yellow"
    reasons = [""] * len(df)
    reasons[3] = (
        "raised to yellow: renewal due: contract ends in 13 days, no renewal on record, and "
        "the model has seen no account lapse under a contract: too few to judge renewals "
        "(churn probability 5%: not among the 30% highest churn probability)"
    )
    reasons[2] = "raised to yellow: overdue: ..."  # A3 was yellow already: not new
    df = df.assign(light_reason=reasons)
    assert needs_attention(df)["account_id"].tolist() == ["A6", "A2", "A4"]
    flags = attention_flags(df)
    assert flags["raised"].tolist() == [False, False, False, True, False, False]
    s = portfolio_summary(df)
    assert (s["raised"], s["needs_attention"]) == (1, 3)
    text = render_report(df, make_run())
    attention = text.split('id="attention"')[1].split("</table>")[0]
    assert "raised to yellow: renewal due (was green)" in attention
    assert "1 raised to yellow by a rule" in text


def test_numbers_are_formatted_for_people() -> None:
    assert fmt_money(1234567.8) == "1,234,568"
    assert fmt_money(1234.4, "€") == "€1,234"
    assert fmt_money(np.nan) == "–"
    assert fmt_pct(0.623) == "62%"
    assert fmt_pct(0.001) == "<1%"
    assert fmt_pct(0.1234, 1) == "12.3%"
    # "Risk up 1 pts" read in a digest: one point is singular
    assert [fmt_points(v) for v in (0.124, 0.01, -0.011, 0.004)] == [
        "+12 pts", "+1 pt", "-1 pt", "±0 pts"
    ]  # fmt: skip
    assert fmt_range(pd.Timestamp("2026-08-01"), pd.NaT) == "1 Aug 2026 – open-ended"
    assert (
        fmt_range(pd.Timestamp("2026-08-01"), pd.Timestamp("2026-09-20")) == "1 Aug – 20 Sep 2026"
    )


# ----------------------------------------------------------------------------- the report


def test_the_report_has_every_section_and_is_self_contained(report: str) -> None:
    for anchor in ('id="summary"', 'id="attention"', 'id="accounts"', 'id="cards"', 'id="acct"'):
        assert anchor in report
    assert "probability that the account churns within the next 90 days" in report
    assert "contract lapse (contracted accounts) / no order (others)" in report
    assert "ka_churn v7" in report and "ka_timing v4" in report
    assert "23 Nov 2026" in report
    assert report.count('<article class="card') == 30
    assert report.count("<tr data-c=") == 30
    assert report.count("<svg") == 30
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", report)  # nothing remote
    assert "@import" not in report and "url(" not in report


def test_the_total_revenue_at_risk_is_shown_correct_and_formatted(
    scores: pd.DataFrame, report: str
) -> None:
    total = scores["revenue_at_risk"].sum()
    m = re.search(r'<b id="total-at-risk">([^<]*)</b>', report)
    assert m is not None
    assert m.group(1) == f"{total:,.0f}"
    assert "," in m.group(1)


def test_cards_and_rows_are_ordered_by_revenue_at_risk(scores: pd.DataFrame, report: str) -> None:
    expected = scores.sort_values("revenue_at_risk", ascending=False)["account_id"].tolist()
    in_cards = re.findall(r'<article class="card[^"]*" id="a\d+">.*?<small>(KA-\d+)', report, re.S)
    assert in_cards == expected


def test_needs_attention_shows_the_turned_red_and_rising_accounts(report: str) -> None:
    section = report.split('id="attention"')[1].split("</section>")[0]
    assert "Acme Corp 0" in section and "turned red (was yellow)" in section
    assert "Borealis AG 1" in section and "risk up +13 pts" in section
    assert "was 31%" in section


def test_a_rising_account_says_what_moved_its_risk(scores: pd.DataFrame) -> None:
    """A second manager test: 'Why now: risk up +21 pts' for an account whose contract end
    had just come within the 90-day horizon read as a new signal; the change text's mover
    (what the since-last-week sentence names) now follows it."""
    df = scores.copy()
    df.loc[1, "changes"] = (
        "Risk up 13 pts since last week; biggest mover: contract (+10 pts): Contract ends in "
        "84 days."
    )
    section = render_report(df, make_run()).split('id="attention"')[1].split("</section>")[0]
    row = section.split("Borealis AG 1")[1].split("</tr>")[0]
    assert "risk up +13 pts<small>biggest mover: contract (+10 pts): Contract ends in 84 days." in (
        html.unescape(row)
    )


def test_a_card_says_when_its_churn_is_the_contract_ending_not_a_missing_order(
    scores: pd.DataFrame,
) -> None:
    """Read in a subscription portfolio: a card showed "89% churn probability" beside "Order
    within 90 days 76%" and did not say the two measure different things (its churn is the
    contract lapsing unrenewed, however often the account orders)."""
    df = scores.copy()
    df["churn_definition"] = "no_order"
    df.loc[1, "churn_definition"] = "contract"
    page = html.unescape(render_report(df, make_run()))
    cards = re.findall(r'<article class="card.*?</article>', page, flags=re.S)
    said = [c for c in cards if "churn probability (the contract ending unrenewed)" in c]
    assert len(said) == 1 and "Borealis AG 1" in said[0]


def test_open_ended_dates_render_as_open_ended(report: str) -> None:
    card = report.split("<h3>KA-0003</h3>")[1].split("</article>")[0]
    assert "<b>open-ended</b>" in card
    assert "next order expected · open-ended" in card
    row = re.search(r"<tr[^>]*>(?:(?!</tr>).)*KA-0003(?:(?!</tr>).)*</tr>", report, re.S)
    assert row is not None and 'data-s="9999-12-31">open-ended' in row.group(0)


def test_reason_bars_are_red_when_raising_risk_and_green_when_lowering(report: str) -> None:
    card = report.split("<h3>Acme Corp 0</h3>")[1].split("</article>")[0]
    # Acme's reasons: orders trend (+), recency (+), complaints (+)
    assert card.count('class="u"') == 3 and 'class="d"' not in card
    card = (
        report.split("<h3>Delta Foods 3</h3>")[1].split("</article>")[0]
        if ("<h3>Delta Foods 3</h3>" in report)
        else report.split("<h3>KA-0003</h3>")[1].split("</article>")[0]
    )
    # row 3: survey (-), usage (-), contract (-)
    assert card.count('class="d"') == 3 and 'class="u"' not in card
    assert "lowers risk -6 pts" in card
    assert "(lowers risk)" not in card  # the suffix is shown as a coloured tag instead


def test_the_longest_reason_bar_fills_the_half_width(report: str) -> None:
    card = report.split("<h3>Acme Corp 0</h3>")[1].split("</article>")[0]
    widths = [
        float(w)
        for w in re.findall(r'<rect class="[ud]" x="[\d.]+" y="\d+" width="([\d.]+)"', card)
    ]
    assert max(widths) == 80.0 and all(0 < w <= 80 for w in widths)


def test_names_owners_and_reasons_are_escaped() -> None:
    df = make_scores()
    df.loc[5, "name"] = XSS
    df.loc[6, "owner"] = XSS
    df.loc[7, "reason_1"] = XSS
    df.loc[8, "changes"] = '"><img src=x onerror=alert(2)>'
    text = render_report(df, make_run(warnings=[XSS], title_note=XSS), title="Health <b>")
    assert XSS not in text
    assert "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "Health &lt;b&gt;" in text
    assert text.count("<script") == 1  # the report's own script only
    assert "alert" not in re.search(r"<script>(.*?)</script>", text, re.S).group(1)  # type: ignore[union-attr]
    assert html.unescape(_strip_own_script(text)).count(XSS) >= 4  # visible as text


def test_the_drift_banner_shows_only_when_flagged(scores: pd.DataFrame) -> None:
    drift = {
        "banner": True,
        "message": "Inputs moved away from the training data.",
        "features": [{"feature": "recency_days", "psi": 0.41}, {"feature": "x_custom", "psi": 0.9}],
    }
    flagged = render_report(scores, make_run(drift=drift))
    assert 'id="drift"' in flagged and "Inputs moved away from the training data." in flagged
    assert "PSI 0.90" in flagged and "PSI 0.41" in flagged
    assert flagged.index("x_custom") < flagged.index("PSI 0.41")  # strongest drift first
    calm = render_report(scores, make_run(drift={**drift, "banner": False}))
    assert 'id="drift"' not in calm and "Inputs moved away" not in calm
    assert 'id="drift"' not in render_report(scores, make_run())


def test_how_the_models_came_to_be_in_use_is_said_when_it_is_not_the_plain_story(
    scores: pd.DataFrame,
) -> None:
    note = "The churn model in use (v1) was made champion by hand (2026-12-05, ana)."
    shown = render_report(scores, make_run(model_notes=[note]))
    assert 'id="model-notes"' in shown and note in shown
    assert 'id="model-notes"' not in render_report(scores, make_run())


def test_the_report_says_how_far_to_trust_the_ranking_in_a_managers_words(
    scores: pd.DataFrame,
) -> None:
    """A key-account manager read 'out-of-time ROC AUC 0.883 vs BG/NBD 0.761' in the header
    and could not tell whether to trust the list."""
    from ka_ml.reporting.html import ranking_record

    card = {"oot_roc_auc": 0.883, "best_baseline": "BG/NBD", "best_baseline_roc_auc": 0.761}
    said = ranking_record({**card, "origins": 3})
    assert said == (
        "How far to trust the ranking: tested on 3 past dates it had not learnt from, the "
        "churn model ranked a customer who then churned (as defined above) above one who did "
        "not 88 times in 100 (the best simple rule, BG/NBD: 76); 50 would be a coin toss."
    )
    assert "held out from training" in ranking_record({**card, "test": "held-out accounts"})
    assert ranking_record(None) == "" and ranking_record({"oot_roc_auc": float("nan")}) == ""
    text = render_report(scores, make_run(model_card={**card, "origins": 3}))
    assert f'<p class="def" id="trust">{said}</p>' in text
    assert 'id="trust"' not in render_report(scores, make_run())
    # a card with the ranking on the accounts that get a light: managers read that one
    lit = {**card, "lit_roc_auc": 0.812, "lit_best_baseline": "recency only"}
    lit |= {"lit_best_baseline_roc_auc": 0.701, "origins": 3}
    # train cautioned that the label mostly marks pauses: managers are told what red means
    paused = {**lit, "label_return_share": 0.42, "label_return_days": 365.0}
    assert ranking_record(paused | {"label_horizon_days": 90.0}).endswith(
        "; 50 would be a coin toss. In the training data, 42% of the accounts that went 90 "
        "days without an order ordered again within the 365 days after: a red light often "
        "marks a pause, not a lost customer."
    )
    # most of them came back (a distributor's managers read "91 times in 100" first, then
    # called pauses): what red means comes first
    mostly = ranking_record(paused | {"label_return_share": 0.72, "label_horizon_days": 90.0})
    assert mostly.startswith(
        "How far to trust the ranking: in the training data 72% of the accounts that went 90 "
        "days without an order ordered again within the 365 days after, so a red light here "
        "more often marks a pause than a lost customer. The ranking: tested on 3 past dates"
    )
    assert mostly.endswith("(the best simple rule, recency only: 70); 50 would be a coin toss.")
    # the header's pooled figure says it is not the same population
    page = render_report(scores, make_run(model_card={**lit, "family": "lightgbm"}))
    assert (
        "(lightgbm; out-of-time ROC AUC 0.883 vs BG/NBD 0.761, 3 test origins, lapsed "
        "accounts included)"
    ) in " ".join(html.unescape(page).split())
    assert ranking_record(lit) == (
        "How far to trust the ranking: tested on 3 past dates it had not learnt from, among "
        "the accounts that get a light (lapsed ones left out), the churn model ranked a "
        "customer who then churned (as defined above) above one who did not 81 times in 100 "
        "(the best simple rule, recency only: 70); 50 would be a coin toss."
    )


def test_the_header_says_which_model_family_won_and_by_how_much(scores: pd.DataFrame) -> None:
    card = {
        "family": "blend",
        "family_margin": -0.0004,  # kept within FAMILY_MIN_GAIN of a better-ranking family
        "family_runner_up": "lightgbm",
        "oot_roc_auc": 0.7412,
        "best_baseline": "RFM logistic regression",
        "best_baseline_roc_auc": 0.7423,
        "origins": 3,
    }
    text = render_report(scores, make_run(model_card=card))
    assert (
        "ka_churn v7 (blend, lightgbm ranked 0.0004 higher: within noise; out-of-time ROC AUC "
        "0.741 vs RFM logistic regression 0.742, 3 test origins)"
    ) in text
    won = render_report(scores, make_run(model_card={**card, "family_margin": 0.0021}))
    assert "ka_churn v7 (blend, +0.0021 ROC AUC over lightgbm; out-of-time" in won
    old = {k: v for k, v in card.items() if k not in ("family_margin", "family_runner_up")}
    assert "ka_churn v7 (blend; out-of-time ROC AUC 0.741" in render_report(
        scores, make_run(model_card=old)
    )  # a champion trained before the runner-up was recorded
    nan = render_report(scores, make_run(model_card={**card, "family_margin": float("nan")}))
    assert "ka_churn v7 (blend; out-of-time" in nan and "within noise" not in nan
    # train cautioned: few accounts, and accounts scored unlike the origins'
    rough = render_report(
        scores, make_run(model_card={**card, "few_test_accounts": 30, "expected_roc_auc": 0.754})
    )
    assert (
        "3 test origins, only 30 accounts: rough; the accounts scored at training looked "
        "unlike those on the test origins: about 0.754 expected on them)"
    ) in rough
    # a history shorter than the purge: the origins held accounts out, in time
    held = {**card, "test": "held-out accounts", "timing_coverage": 0.8}
    text = render_report(scores, make_run(model_card=held))
    assert "within noise; ROC AUC on held-out accounts 0.741 vs RFM" in text
    assert "out-of-time" not in text
    assert "s test on held-out accounts: the next order fell inside" in text


def test_data_warnings_and_backtest_are_listed_when_present(scores: pd.DataFrame) -> None:
    run = make_run(
        warnings=["orders: 12 rows with negative amounts"],
        backtest={"red_precision": 0.62, "red_recall": 0.48},
    )
    text = render_report(scores, run)
    assert 'id="warnings"' in text and "orders: 12 rows with negative amounts" in text
    assert "62% of the accounts lit red did churn" in text
    assert 'id="warnings"' not in render_report(scores, make_run())
    # folded to one line (a backtest's weeks opened with six long notes), open when stale
    assert '<details class="warn" id="warnings"><summary><strong>Data warnings (1)' in text
    stale = render_report(scores, {**run, "freshness": ["the newest order is 40 days old"]})
    assert '<details class="warn" id="warnings" open>' in stale


USER_BACKTEST = {  # ux-ds: the backtest summary of a run record, as written
    "account_weeks": 32311,
    "backtest_as_of": "2026-10-01",
    "brier": 0.1059,
    "ece": 0.0211,
    "interval_hit_rate": 0.8316,
    "interval_n": 23449,
    "interval_open": 6664,
    "interval_open_not_early": 0.8704,
    "interval_open_ordered": 3558,
    "interval_windows": 32311,
    "recommendation": "No retraining needed: every figure is within its threshold.",
    "red_precision": 0.5589,
    "red_recall": 0.4186,
    "red_recall_ceiling": 0.749,
    "red_yellow_precision": 0.328,
    "red_yellow_recall": 0.8192,
    "roc_auc": 0.8838,
    "weeks": 18,
    "window_accuracy": 0.7352,
    "window_days": 30,
    "window_majority_accuracy": 0.5159,
}


def test_the_backtest_paragraph_is_labelled_as_the_backtest_and_reads_as_sentences(
    scores: pd.DataFrame,
) -> None:
    """Read: "In the last out-of-time test, 56% of the accounts flagged red ..." (it is the
    backtest of past weekly scores, not training's test), then "account weeks: 32311 ·
    brier: 11% · ece: 2% · ... roc auc: 88% · window days: 30": record keys, every 0-1
    figure as a percent, the purchase-cycle figures said twice."""
    text = " ".join(html.unescape(render_report(scores, make_run(backtest=USER_BACKTEST))).split())
    para = text.split('id="backtest">')[1].split("</p>")[0]
    assert para.startswith(
        "In the backtest of past weekly scores (18 weeks, 32,311 account-weeks), 56% of the "
        "accounts lit red did churn (as defined above) within the horizon, and red caught 42% "
        "of the accounts "
        "that churned (with that many red accounts, at most 75% could be); red or yellow "
        "caught 82%."
    )
    assert "ROC AUC 0.884" in para and "Brier score 0.106" in para
    assert "Verdict: no retraining needed" in para
    for raw in ("out-of-time", "account weeks:", "brier:", "roc auc", "window days", "88%"):
        assert raw not in para
    assert "interval" not in para and "83%" not in para  # the purchase cycle: said once
    assert text.count("of the 23,449 account-weeks") == 1
    assert "silences already under way" not in para  # the record has no split
    # a software vendor's reds, mostly subscribers already silent past their monthly gap
    split = {
        **USER_BACKTEST,
        "red_count": 131,
        "red_silent_count": 20,
        "red_late_count": 83,
        "red_early_count": 28,
        "red_precision_early": 0.6429,
    }
    text = " ".join(html.unescape(render_report(scores, make_run(backtest=split))).split())
    assert (
        "caught 82%. 103 of the 131 red account-weeks were silences already under way when "
        "lit (past the account's usual gap between orders, or silent the whole horizon), "
        "counted as correct when the silence went on; of the 28 still within their rhythm, "
        "64% churned: the list's early warnings. In the same backtest"
    ) in text
    # with the ranking of the accounts that had a light beside it
    lit = {**USER_BACKTEST, "lit_roc_auc": 0.8412}
    text = " ".join(html.unescape(render_report(scores, make_run(backtest=lit))).split())
    assert (
        "ROC AUC 0.884 over every scored account and 0.841 over those that had a light "
        "(lapsed ones, already lost, left out) (0.5 is chance"
    ) in text


def test_filters_offer_every_owner_and_the_missing_owner(report: str) -> None:
    select = report.split('data-f="o"')[1].split("</select>")[0]
    for owner in OWNERS:
        assert f'<option value="{owner}">{owner}</option>' in select
    assert "(no owner)" in select


def test_one_owners_report_says_whose_it_is(scores: pd.DataFrame) -> None:
    text = render_report(scores, make_run(owner="Ana Silva"))
    assert "<h1>Key-account health · Ana Silva</h1>" in text


def test_an_empty_frame_still_renders(scores: pd.DataFrame) -> None:
    text = render_report(scores.iloc[:0], make_run())
    assert "0 accounts" in text and "No account turned red" in text


def test_a_first_run_without_last_week_or_optional_columns_still_renders(
    scores: pd.DataFrame, tmp_path: Path
) -> None:
    bare = scores.drop(
        columns=["changes", "dependency_alert", "light_reason", "recommended_action", "owner"]
    ).assign(
        health_prev=pd.Series([pd.NA] * len(scores), dtype=object),
        churn_probability_prev=np.nan,
        abc_tier=pd.Categorical([None] * len(scores), categories=["A", "B", "C"]),
    )
    text = render_report(bare, {})
    assert text.count("<tr data-c=") == len(bare)
    assert "Since last week" not in text and "No account is above the dependency" in text
    assert "Tier ?" in text  # the unknown tier gets its own column
    red = int((bare["health"] == "red").sum())
    assert red and text.count("turned red (new)") == 0  # a first run reports no changes
    assert "First run: changes are reported from next week on" in text
    summary = portfolio_summary(bare)
    assert summary["rising"] == 0 and summary["turned_red"] == 0
    assert summary["tiers"][""]["accounts"] == len(bare)  # unknown tier is kept, not dropped
    book = load_workbook(write_excel(bare, {}, tmp_path / "bare.xlsx"))
    assert book["Accounts"].max_row == len(bare) + 1


def test_the_report_for_2000_accounts_stays_small(tmp_path: Path) -> None:
    path = write_report(make_scores(2000, seed=3), make_run(), tmp_path / "report.html")
    size = path.stat().st_size
    assert size < 5_000_000, f"{size:,} bytes"
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file


# ---------------------------------------------------------------------------- spreadsheet


def test_the_spreadsheet_has_three_sheets_rows_and_light_fills(
    scores: pd.DataFrame, tmp_path: Path
) -> None:
    path = write_excel(scores, make_run(), tmp_path / "scores.xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames == ["Summary", "Accounts", "Reasons"]
    acc = wb["Accounts"]
    assert acc.max_row == len(scores) + 1
    assert acc.freeze_panes == "A2"
    assert acc.auto_filter.ref == f"A1:{acc.cell(1, acc.max_column).column_letter}{len(scores) + 1}"
    headers = [c.value for c in acc[1]]
    light_col = headers.index("Light") + 1
    prob_col = headers.index("Churn probability") + 1
    next_col = headers.index("Next expected order") + 1
    for row in range(2, acc.max_row + 1):
        light = acc.cell(row, light_col).value
        assert acc.cell(row, light_col).fill.fgColor.rgb.endswith(LIGHT_FILLS[light])
    assert acc.cell(2, prob_col).number_format == "0%"
    assert 0 <= acc.cell(2, prob_col).value <= 1
    assert acc.cell(2, next_col).is_date
    assert acc.column_dimensions["B"].width > 8
    reasons = wb["Reasons"]
    assert reasons.max_row == 3 * len(scores) + 1
    assert [c.value for c in reasons[1]] == [
        "Account ID",
        "Account",
        "Rank",
        "Reason",
        "Contribution (pts)",
        "Direction",
        "Feature code",  # the model's name for it, for analysts: last
    ]
    summary = {r[0]: r[1] for r in wb["Summary"].iter_rows(values_only=True) if r[0]}
    assert summary["Accounts"] == len(scores)
    assert summary["Revenue at risk"] == pytest.approx(scores["revenue_at_risk"].sum())


def test_the_summary_sheet_shows_its_numbers_formatted_and_the_date_as_a_date(
    scores: pd.DataFrame, tmp_path: Path
) -> None:
    """Read in the Summary sheet: 'As of' stored as text, the light table's counts in the
    General format. Every number there has its format (shares as percentages, money and
    counts with thousands separators), the date is a date cell; the Reasons sheet keeps the
    model's feature name, as its last column ('Feature code')."""
    budget = {"red_share": 0.1, "yellow_share": 0.2, "red_min_probability": 0.25,
              "yellow_min_probability": 0.1, **lowest_lit(scores)}  # fmt: skip
    path = write_excel(scores, make_run(thresholds=budget), tmp_path / "scores.xlsx")
    ws = load_workbook(path)["Summary"]
    cells = {r[0].value: r[1] for r in ws.iter_rows(max_col=2) if r[0].value}
    as_of = cells["As of"]
    assert as_of.is_date and as_of.value == pd.Timestamp(AS_OF).to_pydatetime()
    assert as_of.number_format == "yyyy-mm-dd"
    formats = {
        "Lowest red probability ranked this run": "0%",
        "Revenue at risk share": "0.0%",
        "Top 5 accounts' revenue share": "0.0%",
        "Revenue 365 days": "#,##0",
        "Revenue at risk": "#,##0",
        "Accounts": "#,##0",
        "Need attention": "#,##0",
        "Dependency alerts": "#,##0",
    }
    for label, fmt in formats.items():
        assert cells[label].number_format == fmt, label
    numbers = [c for row in ws.iter_rows() for c in row if isinstance(c.value, int | float)]
    assert len(numbers) > 20
    assert all(c.number_format != "General" for c in numbers), [
        (c.coordinate, c.value) for c in numbers if c.number_format == "General"
    ]
    # a record without a date leaves the cell empty; one that is no date stays its text
    for raw, want in ((None, None), ("next week", "next week")):
        path = write_excel(scores, make_run(as_of=raw), tmp_path / "other.xlsx")
        rows = {r[0]: r[1] for r in load_workbook(path)["Summary"].iter_rows(values_only=True)}
        assert rows["As of"] == want


def test_the_spreadsheet_says_what_decided_the_lights_in_budget_mode(
    scores: pd.DataFrame, tmp_path: Path
) -> None:
    """Read in the default (budget) mode: 'Red from' and 'Yellow from' were empty, the
    run record held thresholds only in threshold mode."""
    budget = {
        "hysteresis": 0.05, "red_share": 0.1, "yellow_share": 0.2,
        "red_min_probability": 0.25, "yellow_min_probability": 0.1,
        **lowest_lit(scores),
    }  # fmt: skip
    path = write_excel(scores, make_run(thresholds=budget), tmp_path / "scores.xlsx")
    rows = {r[0]: r[1] for r in load_workbook(path)["Summary"].iter_rows(values_only=True)}
    assert rows["Red from"] == "the riskiest 10% (never below a 25% churn probability)"
    assert rows["Yellow from"] == "the next 20% (never below a 10% churn probability)"
    p = scores["churn_probability"]
    by_rule = scores["light_reason"].fillna("").str.startswith(("raised to yellow", "stays "))
    red_low = p[scores["health"].eq("red") & ~by_rule].min()
    assert rows["Lowest red probability ranked this run"] == pytest.approx(red_low)
    assert rows["Lowest yellow probability ranked this run"] == pytest.approx(
        p[scores["health"].eq("yellow") & ~by_rule].min()
    )
    n_red, n_yellow = ((scores["health"].eq(c) & by_rule).sum() for c in ("red", "yellow"))
    assert rows["Lit by a rule, below the ranking's cut"].startswith(
        f"{n_red} red, {n_yellow} yellow (raised by a rule: overdue, an open critical complaint, "
        "shrinking baskets; hysteresis"
    )
    # threshold mode keeps its two numbers
    path = write_excel(scores, make_run(), tmp_path / "t.xlsx")
    rows = {r[0]: r[1] for r in load_workbook(path)["Summary"].iter_rows(values_only=True)}
    assert (rows["Red from"], rows["Yellow from"]) == (0.5, 0.25)
    assert "Lowest red probability ranked this run" not in rows


def test_the_spreadsheet_counts_who_to_call_as_the_report_does(
    scores: pd.DataFrame, tmp_path: Path
) -> None:
    """Read on a first run: the report said '24 to call this week', the spreadsheet's
    summary 'Need attention 0' (turned red or rising: nothing can have, with no last week)."""
    first = scores.assign(health_prev=pd.NA, churn_probability_prev=np.nan)
    rows = {
        r[0]: r[1]
        for r in load_workbook(write_excel(first, make_run(), tmp_path / "first.xlsx"))[
            "Summary"
        ].iter_rows(values_only=True)
    }
    assert rows["To call this week"] == int(first["health"].eq("red").sum()) > 0
    assert rows["Changes"].startswith("First run: changes are reported from next week on")
    assert "Need attention" not in rows
    named = write_excel(first, make_run(currency="EUR"), tmp_path / "eur.xlsx")
    assert ("Currency", "EUR") in [
        r[:2] for r in load_workbook(named)["Summary"].iter_rows(values_only=True)
    ]
    rows = {
        r[0]: r[1]
        for r in load_workbook(write_excel(scores, make_run(), tmp_path / "later.xlsx"))[
            "Summary"
        ].iter_rows(values_only=True)
    }
    assert rows["Need attention"] >= 1 and "To call this week" not in rows


def test_lowest_lit_is_none_for_a_light_nobody_got() -> None:
    df = pd.DataFrame(
        {"health": ["red", "green", "red", None], "churn_probability": [0.6, 0.1, 0.47, 0.9]}
    )
    assert lowest_lit(df) == {
        "lowest_red_probability": 0.47,
        "red_by_rule": 0,
        "lowest_yellow_probability": None,
        "yellow_by_rule": 0,
    }


def test_lowest_lit_is_where_the_ranking_cut_not_where_a_rule_lit() -> None:
    df = pd.DataFrame(
        {
            "health": ["red", "yellow", "yellow", "red"],
            "churn_probability": [0.6, 0.3, 0.02, 0.3],
            "light_reason": [
                "churn probability 60%: among the riskiest 10%",
                "churn probability 30%: among the next 20%",
                "raised to yellow: overdue: no order for 40 days (churn probability 2%)",
                "stays red: churn probability 30%, within the 5% hysteresis of its cut",
            ],
        }
    )
    assert lowest_lit(df) == {
        "lowest_red_probability": 0.6,
        "red_by_rule": 1,
        "lowest_yellow_probability": 0.3,
        "yellow_by_rule": 1,
    }


def test_spreadsheet_text_that_looks_like_a_formula_stays_text(
    scores: pd.DataFrame, tmp_path: Path
) -> None:
    df = scores.copy()
    df.loc[0, "name"] = '=HYPERLINK("http://x","click")'
    df.loc[1, "owner"] = "@SUM(1+1)\x07"  # a control character openpyxl would refuse
    # XML and SpreadsheetML look-alikes must come back as the same text
    tricky = ["<r><t>rich?</t></r>", "  padded  ", "a & b < c > \"d\" 'e'"]
    for i, text in enumerate(tricky, start=2):
        df.loc[i, "name"] = text
    path = write_excel(df, make_run(), tmp_path / "scores.xlsx")
    acc = load_workbook(path)["Accounts"]
    headers = [c.value for c in acc[1]]
    cells = [c for row in acc.iter_rows(min_row=2) for c in row]
    assert all(c.data_type != "f" for c in cells)
    names = [acc.cell(r, headers.index("Account") + 1).value for r in range(2, acc.max_row + 1)]
    assert df.loc[0, "name"] in names
    assert set(tricky) <= set(names)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=st.lists(st.text(max_size=30), min_size=6, max_size=6),
    probs=st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=6, max_size=6),
)
def test_any_text_and_numbers_round_trip_through_the_spreadsheet(
    tmp_path_factory: pytest.TempPathFactory, names: list[str], probs: list[float]
) -> None:
    """Whatever a CRM export holds (formula-like text, control characters, blanks, NaN),
    the Accounts sheet holds the same values: text as text (control characters removed,
    line breaks as \\n),
    numbers as numbers, missing values as empty cells; never a formula."""
    df = make_scores(6, seed=1)
    df["name"] = pd.Series(names, dtype="str")
    df["churn_probability_prev"] = probs
    path = write_excel(df, make_run(), tmp_path_factory.mktemp("xlsx") / "s.xlsx")
    acc = load_workbook(path)["Accounts"]
    headers = [c.value for c in acc[1]]
    ids = [c.value for c in acc["B"][1:]]
    got = {
        row[headers.index("Account ID")]: row for row in acc.iter_rows(min_row=2, values_only=True)
    }
    assert sorted(ids) == sorted(df["account_id"])
    control = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
    for _, want in df.iterrows():
        row = got[want["account_id"]]
        text = control.sub("", want["name"]).replace("\r\n", "\n").replace("\r", "\n")
        assert (row[headers.index("Account")] or "") == text  # "" and blank both read empty
        prev = want["churn_probability_prev"]
        cell = row[headers.index("Last week")]
        assert cell is None if np.isnan(prev) else cell == pytest.approx(prev)
    assert all(c.data_type != "f" for r in acc.iter_rows(min_row=2) for c in r)


def test_a_capped_report_numbers_its_anchors_and_every_row_finds_its_card(
    scores: pd.DataFrame,
) -> None:
    run = make_run()
    capped = render_report(scores, run, max_accounts=7)
    ids = re.findall(r'<article class="card [a-z]*" id="(a\d+)">', capped)
    assert ids == [f"a{i}" for i in range(7)]
    assert set(re.findall(r'<a href="#(a\d+)">', capped)) >= set(ids)
    # the shown accounts are the ones with the most revenue at risk, in the full report's
    # order, with the same row HTML apart from the anchor
    full = render_report(scores, run)
    rows = re.compile(r'<tr data-c="a\d+"(.*?)</tr>', re.S)
    assert rows.findall(capped) == rows.findall(full)[:7]


def test_the_light_sort_key_is_an_integer_even_when_an_account_has_no_light(
    scores: pd.DataFrame,
) -> None:
    s = scores.copy()
    s.loc[s.index[0], "health"] = None
    keys = set(
        re.findall(r'<tr data-c="a\d+"[^>]*><td data-s="([^"]*)"', render_report(s, make_run()))
    )
    assert keys <= {"0", "1", "2", "3"} and "3" in keys


def test_the_purchase_cycle_figure_says_its_denominator_and_the_open_ended_windows(
    scores: pd.DataFrame,
) -> None:
    """u3: '72% of accounts' counted the 93 of 450 that ordered, and most windows had no p90
    date. The sentence now says whom it counts and how many windows were open-ended."""
    bt = {
        "interval_hit_rate": 0.5,
        "interval_n": 14,
        "interval_windows": 300,
        "interval_open": 286,
        "interval_open_ordered": 120,
        "interval_open_not_early": 0.94,
        "window_days": 30,
        "window_accuracy": 0.82,
        "window_majority_accuracy": 0.73,
    }
    text = " ".join(html.unescape(render_report(scores, make_run(backtest=bt))).split())
    assert (
        "Purchase cycle, in the backtest of past weekly runs: of the 14 account-weeks with a "
        "dated window (the dates meant to hold 8 in 10 next orders) whose outcome is known, "
        "the next order fell inside it for 50%; 286 of 300 windows were open-ended (no end "
        "date: later than the model looks ahead), which only the early side can prove wrong: "
        "of the 120 of those accounts that ordered, 94% not before the window's start;"
    ) in text
    assert "interval open:" not in text  # said once, in the sentence
    card = {
        "timing_coverage": 0.72,
        "timing_coverage_n": 93,
        "timing_coverage_completed": 0.79,
        "timing_open_share": 0.87,
    }
    text = " ".join(html.unescape(render_report(scores, make_run(model_card=card))).split())
    assert (
        "in training's out-of-time test: the next order fell inside the predicted window "
        "(the dates meant to hold 8 in 10 next orders) for 79% of next orders within the time "
        "the model looks ahead (orders the follow-up did not reach estimated from the "
        "forecast; 72% of the 93 account-weeks whose next order was seen or is overdue); 87% "
        "of windows were open-ended"
    ) in text
    assert "72% of accounts" not in text
    # the timing model's learnt range, when the card has it, says how far it looks ahead
    card["timing_learnt_days"] = 180.0
    text = " ".join(html.unescape(render_report(scores, make_run(model_card=card))).split())
    assert "for 79% of next orders within the 180 days the model looks ahead" in text
    assert "87% of windows were open-ended (no end date: later than the 180 days the" in text


# ------------------------------------------------------------------- a phone, colour-blind


def with_win_back(scores: pd.DataFrame) -> pd.DataFrame:
    """The test frame with stages: two lapsed accounts (a Win-back list), the rest active."""
    df = scores.copy()
    lapsed = df.index.isin([9, 12])
    df["lifecycle"] = pd.Series(np.where(lapsed, "lapsed", "active"), index=df.index, dtype="str")
    df["lifecycle_reason"] = pd.Series(
        np.where(lapsed, "no order for 121 days (typical gap 14 days)", ""), dtype="str"
    )
    df["win_back_value"] = np.where(lapsed, df["revenue_365d"] * 0.3, 0.0)
    df.loc[lapsed, ["health", "revenue_at_risk"]] = [None, 0.0]
    return df


def with_scorecard(scores: pd.DataFrame) -> pd.DataFrame:
    df = scores.copy()
    levels = np.array(["red", "yellow", "green", ""], dtype=object)
    for k, (key, _) in enumerate(SCORECARD):
        df[f"scorecard_{key}"] = pd.Series(levels[(np.arange(len(df)) + k) % 4], dtype="str")
        df[f"scorecard_{key}_detail"] = pd.Series(f"{key} detail", index=df.index, dtype="str")
    return df


def test_every_wide_table_scrolls_in_its_own_box_and_the_lists_stack_on_a_phone() -> None:
    """Read on a 390 px phone: the call list showed Light, Account and Owner only, the rest
    off-screen with no way to scroll; the Win-back list squeezed its reasons to one word per
    line. Each summary table scrolls inside its own box, and the two lists are one block
    per account on a narrow screen, each value named (data-h) since the header row is gone."""
    text = render_report(with_win_back(make_scores()), make_run())
    tables = re.findall(r'(.{0,20})<table class="x', text)
    assert len(tables) >= 3 and all(t.endswith('<div class="sx">') for t in tables)
    for section, names in (
        ("attention", ["Churn probability", "Revenue at risk", "Why now", "Top reason"]),
        ("winback", ["Lapsed because", "Chance of an order within 90 days", "Win-back value"]),
    ):
        part = text.split(f'id="{section}"')[1].split("</section>")[0]
        assert '<table class="x st">' in part
        for row in re.findall(r"<tr><td.*?</tr>", part):
            assert re.findall(r'data-h="([^"]+)"', row) == ["Owner", *names]
    css = text.split("<style>")[1].split("</style>")[0]
    phone = css.split("@media (max-width:640px){")[1].split("\n}\n")[0]
    assert ".st thead{display:none}" in phone and "attr(data-h)" in phone
    # cards shrink with the screen instead of keeping 440 px, figures wrap to two columns
    assert "minmax(min(440px,100%),1fr)" in css and "minmax(440px,1fr)" not in css
    assert ".fig{grid-template-columns:repeat(2,minmax(0,1fr))}" in phone
    # the definitions and the model text come after the lists on a phone
    assert ".meta,#about,#model-notes{order:1}#accounts,#cards,footer{order:2}" in phone
    about = text.split('<details id="about">')[1].split("</details>")[0]
    assert "<strong>Churn probability</strong>" in about


def test_the_definitions_fold_away_under_one_line_and_open_for_print() -> None:
    """Read as a manager on Monday morning: three paragraphs of definitions (churn, the
    lights' rule, revenue at risk, lapsed, how far to trust the ranking and the dates) stood
    between the title and the call list. They fold under one line that says what is there,
    closed, before the summary; printing opens them."""
    text = render_report(with_win_back(make_scores()), make_run())
    about = text.split('<details id="about">')[1].split("</details>")[0]
    summary = about.split("<summary>")[1].split("</summary>")[0]
    assert summary.startswith("<strong>How to read this report</strong>: what the churn")
    assert "revenue at risk" in summary and "lapsed and new accounts" in summary
    assert '<details id="about" open' not in text  # closed on screen
    for p in ("<strong>Churn probability</strong>", "<strong>Revenue at risk</strong>"):
        assert p in about.split("</summary>")[1]
    assert text.index('<details id="about">') < text.index('id="summary"')
    assert text.index('id="summary"') < text.index('id="attention"')
    script = text.split("<script>")[1]
    assert 'addEventListener("beforeprint"' in script and "d.open = true" in script


def test_an_owners_own_report_has_no_owner_column() -> None:
    """Read in hugo.keller's report: an Owner column saying hugo.keller on every row, which
    on a phone took the place of the figures. An owner's report leaves it out (and the owner
    filter); the portfolio report keeps it."""
    df = with_win_back(make_scores())
    mine = df[df["owner"].eq("Ana Silva")]
    assert {0, 9, 12} <= set(mine.index)  # 0 turned red, 9 and 12 lapsed: both lists
    text = render_report(mine, make_run(owner="Ana Silva"))
    for section in ("attention", "winback", "accounts"):
        part = text.split(f'id="{section}"')[1].split("</section>")[0]
        assert "<tbody>" in part
        assert ">Owner</th>" not in part and 'data-h="Owner"' not in part
        heads = part.split("<thead>")[1].split("</thead>")[0].count("<th")
        for row in re.findall(r"<tr[^>]*><td.*?</tr>", part.split("<tbody>")[1], re.S):
            assert row.count("<td") == heads
        assert "Ana Silva" not in re.sub(r"<[^>]*>", " ", part.split("<tbody>")[1])  # shown
    assert 'data-f="o"' not in text and "Search account, reason" in text
    whole = render_report(df, make_run())
    for section in ("attention", "winback", "accounts"):
        part = whole.split(f'id="{section}"')[1].split("</section>")[0]
        assert ">Owner</th>" in part and "Ana Silva" in part


def test_the_scorecard_light_is_written_not_only_coloured() -> None:
    """A colour-blind manager could not tell the scorecard's red dot from its green one: the
    table's dots said their light only on hover (no hover on a phone), the card's only by
    colour. Each table dot holds its light's initial, explained below the table; each card
    measure carries its light as a badge with the word."""
    df = with_scorecard(make_scores())
    text = render_report(df, make_run())
    rows = re.findall(r'<tr data-c="a\d+".*?</tr>', text, re.S)
    assert len(rows) == len(df)
    dots = re.findall(r'<span class="dot ?([a-z]*)"[^>]*>([^<]*)</span>', "".join(rows))
    assert len(dots) == len(SCORECARD) * len(df)
    assert {(light, mark) for light, mark in dots} == {
        ("red", "R"),
        ("yellow", "Y"),
        ("green", "G"),
        ("", "–"),
    }
    legend = text.split('id="acct"')[1].split("</section>")[0]
    assert (
        "Scorecard: usage, complaints, renewal intent, purchase rhythm, order value, contract "
        "value, in this order" in (legend)
    )
    assert '<span class="dot red">R</span>red' in legend
    cards = re.findall(r'<ul class="sc">(.*?)</ul>', text)
    assert len(cards) == len(df)
    items = re.findall(r"<li>(.*?)</li>", "".join(cards))
    assert items and all(
        re.match(r'<span class="b (red|yellow|green)">\1</span><b>[A-Za-z ]+</b>: ', i)
        for i in items
    )
    assert '<span class="b red">red</span><b>Usage</b>: usage detail' in text


def test_the_largest_account_is_named_whatever_its_dependency_index() -> None:
    """A software vendor's 19% customer sat at dependency index 0.055 (its share times its
    industry's): 'No account is above the dependency alert level' and the one real
    concentration risk named nowhere."""
    df = six_accounts().assign(revenue_share=[0.02, 0.188, 0.05, 0.188, 0.0, 0.01])
    s = portfolio_summary(df)
    assert s["largest_account"]["account_id"] == min(df["account_id"].iloc[[1, 3]])  # ties: id
    assert s["largest_account"]["revenue_share"] == pytest.approx(0.188)
    assert portfolio_summary(df.assign(revenue_share=0.0))["largest_account"] is None
    assert "makes 18.8% of revenue" in render_report(df, make_run())


def test_a_tier_a_holding_most_accounts_is_noted_with_what_a_lower_cut_would_keep() -> None:
    """A food wholesaler's flat revenue put 545 of 1,116 accounts in tier A, a software
    vendor's 213 of 541 for five managers: every red one read 'Dedicated team: escalate
    now'. The report says so, and how many a cut at half the revenue would keep."""
    n = 10
    df = pd.DataFrame(
        {
            "account_id": pd.Series([f"K{i}" for i in range(n)], dtype="str"),
            "health": pd.Series(["green"] * n, dtype="str"),
            "abc_tier": pd.Categorical(["A"] * 7 + ["B", "B", "C"], categories=["A", "B", "C"]),
            "revenue_365d": [100.0] * n,
            "revenue_share": [0.1] * n,  # flat: each a tenth
            "lifecycle": "active",
        }
    )
    df.attrs["tier_a_rule"] = {"pareto_a": 0.8, "note_share": 0.3}
    note = portfolio_summary(df)["tier_a_note"]
    assert note == {"accounts": 7, "of": 10, "pareto_a": 0.8, "at": 0.5, "at_accounts": 5}
    html = render_report(df, make_run())
    assert (
        "Tier A holds 7 of these 10 accounts (70%): revenue is spread evenly, so it takes many "
        "accounts to make the first 80% of it; a cut at 50%"
    ) in html
    assert "would keep 5 in A" in html
    few = df.assign(abc_tier=pd.Categorical(["A"] * 3 + ["B"] * 7, categories=["A", "B", "C"]))
    few.attrs["tier_a_rule"] = df.attrs["tier_a_rule"]
    assert portfolio_summary(few)["tier_a_note"] is None
    df.attrs["tier_a_rule"] = None  # the share rule, or the note off
    assert portfolio_summary(df)["tier_a_note"] is None
