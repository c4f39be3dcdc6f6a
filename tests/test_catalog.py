"""The feature catalog: complete declarations, manager sentences, availability, docs table."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from fixtures import make_history
from hypothesis import given, settings
from hypothesis import strategies as st

from ka_ml.features.catalog import (
    DEFAULT_WINDOWS,
    FEATURES,
    catalog,
    catalog_table_markdown,
    features_for,
    format_value,
    get,
    with_typical,
)


def test_every_feature_is_fully_declared_once() -> None:
    names = [f.name for f in FEATURES]
    assert len(names) == len(set(names))
    for f in FEATURES:
        assert f.name == f.name.lower() and " " not in f.name
        assert f.meaning and f.templates, f.name
        assert f.kind in ("num", "cat")
        assert (f.kind == "cat") == (f.unit == "category"), f.name
        if f.kind == "num":
            assert f.high_means and f.low_means, f.name


def test_every_feature_describes_a_typical_value_without_error() -> None:
    for f in FEATURES:
        value = "A" if f.kind == "cat" else 3.0
        sentence = f.describe(value)
        assert sentence and "{" not in sentence, f.name


@pytest.mark.parametrize(
    ("name", "value", "other", "sentence"),
    [
        ("orders_trend_90d", -0.64, None, "Orders in the last 90 days fell 64% versus the 90 days before"),
        ("spend_trend_90d", 5.0, None, "Spend in the last 90 days rose 500% or more versus the 90 days before"),
        ("spend_trend_90d", 0.0, None, "Spend in the last 90 days did not change versus the 90 days before"),
        ("spend_trend_90d", -1.0, None, "Spend in the last 90 days fell to zero versus the 90 days before"),
        ("orders_trend_90d", -0.996, None, "Orders in the last 90 days fell 100% versus the 90 days before"),
        ("recency_days", 143.0, {"gap_median_days": 31.0}, "No order for 143 days (typical gap 31 days)"),
        ("recency_days", 1.0, {"gap_median_days": math.nan}, "No order for 1 day"),
        ("recency_days", math.nan, None, "No order on record"),
        ("open_critical_complaints", 1.0, None, "Open critical complaints: 1"),
        ("survey_score_last", 3.0, {"survey_score_change": -4.0}, "Latest survey score 3/10, down 4 points"),
        ("survey_score_last", 8.0, {}, "Latest survey score 8/10"),
        ("overdue_ratio", 2.5, {"recency_days": 50.0, "gap_median_days": 20.0},
         "No order for 50 days, 2.5 times the typical gap of 20 days"),
        ("contract_days_to_end", -30.0, None, "Contract lapsed 30 days ago"),
        ("contract_days_to_end", 45.0, None, "Contract ends in 45 days"),
        ("spend_90d", 12345.4, None, "Spend in the last 90 days: 12,345"),
        ("usage_active_weeks_26w", 0.5, None, "Active in 50% of the last 26 weeks"),
        ("revenue_share", 0.034, None, "Share of company revenue: 3.4%"),
        ("products_change_365d", -2.0, {"products_365d": 3.0},
         "Distinct products bought in the last 365 days: 3 (down 2 versus the year before)"),
        ("has_active_contract", 1.0, None, "Active contract: yes"),
        ("abc_tier", "A", None, "ABC tier A"),
        ("orders_45d", 2.0, None, "Orders in the last 45 days: 2"),
        ("orders_per_month", 1.3, None, "Buys 1.3 times a month on average since the first order"),
        ("orders_per_month", 0.083, None, "Buys 0.083 times a month on average since the first order"),
        ("orders_per_month", math.nan, None, "No order on record"),
        ("spend_per_month", 1234.4, None, "Spends 1,234 a month on average since the first order"),
        ("recency_tenure_ratio", 0.2, {"recency_days": 80.0},
         "No order for 80 days, 20% of the time since the first order"),
        ("recency_tenure_ratio", 1.0, {},
         "Time since the last order: 100% of the time since the first order"),
        ("active_span_days", 412.0, None, "412 days between the first and the latest order"),
        ("repeat_orders", 3.0, None, "Days with a repeat order after the first order day: 3"),
        ("first_order_amount", 2500.0, None, "Spent 2,500 on the first order day"),
        ("orders_lifetime", 14.0, None, "Orders over the whole relationship: 14"),
        ("spend_lifetime", 98765.0, None, "Spend over the whole relationship: 98,765"),
    ],
)  # fmt: skip
def test_describe_says_the_accounts_own_value_in_plain_words(
    name: str, value: object, other: dict[str, float] | None, sentence: str
) -> None:
    assert get(name).describe(value, other=other) == sentence


@pytest.mark.parametrize("name", ["gap_std_days", "gap_cv"])
def test_the_spread_of_a_single_gap_reads_as_not_measurable_not_as_zero(name: str) -> None:
    """Read on a red account with two orders: "Time between orders varies by 0 days
    (standard deviation) raises risk" - a manager reads a perfectly regular buyer. One gap
    has no spread; the value stays (the models read it), the sentence says so."""
    one_gap = get(name).describe(0.0, other={"repeat_orders": 1.0})
    assert (
        one_gap == "Only one gap between orders so far: too few orders to tell how regular they are"
    )
    two_gaps = get(name).describe(0.0, other={"repeat_orders": 2.0})
    assert "0" in two_gaps and "Only one gap" not in two_gaps
    assert get(name).describe(4.0) == get(name).describe(4.0, other={"repeat_orders": math.nan})


def test_a_window_level_is_said_beside_the_accounts_own_average_for_the_window() -> None:
    """Read on an A account's red list: "Spend in the last 180 days: 180,970 (raises
    risk)" - high or low against what? The account's own average over the window since its
    first order says it; an account younger than two windows has no average to speak of."""
    spec = get("orders_90d")
    old = {"orders_per_month": 1.8, "tenure_days": 900.0}
    assert (
        spec.describe(1.0, other=old) == "Orders in the last 90 days: 1 (5.3 in an average 90 days)"
    )
    assert spec.usual(1.8, 900.0) == pytest.approx(1.8 * 90 / (365 / 12))
    young = {"orders_per_month": 1.8, "tenure_days": 179.0}
    assert spec.describe(1.0, other=young) == "Orders in the last 90 days: 1"
    assert np.isnan(spec.usual(1.8, 179.0))
    assert spec.describe(1.0) == "Orders in the last 90 days: 1"
    spend = get("spend_180d").describe(
        180970.0, other={"spend_per_month": 40000.0, "tenure_days": 3000.0}, currency="EUR"
    )
    assert spend == "Spend in the last 180 days: 180,970 EUR (236,712 EUR in an average 180 days)"
    # below the average reads as bad news; at it (within 5%) or above it, not
    usual = spec.usual(1.8, 900.0)  # 5.3 orders in 90 days
    assert spec.usual_reads_against(1.0, usual, raises=False)
    assert not spec.usual_reads_against(1.0, usual, raises=True)
    assert spec.usual_reads_against(9.0, usual, raises=True)
    assert not spec.usual_reads_against(9.0, usual, raises=False)
    assert spec.usual_reads_against(5.2, usual, raises=True)  # 5.3 as usual: steady
    assert not spec.usual_reads_against(5.2, usual, raises=False)
    # orders come whole: 1 against an average of 1.1 (or 1.4) is as usual
    assert spec.usual_reads_against([1.0, 1.0], [1.1, 1.4], raises=True).all()
    assert not spec.usual_reads_against(1.0, 1.78, raises=True)
    # no average (too young): nothing is said, so nothing reads against
    assert not spec.usual_reads_against(1.0, spec.usual(1.8, 179.0), raises=False)
    # the words passed by a caller that computed them for many rows are used as they are
    assert spec.describe(1.0, other={"usual": "5.3"}) == (
        "Orders in the last 90 days: 1 (5.3 in an average 90 days)"
    )


def test_a_window_level_as_usual_says_the_typical_account_the_risk_is_measured_against() -> None:
    """Read on the demo's yellow list: "Orders in the last 90 days: 1 (raises risk)" led 34
    yellow accounts with no comparison at all, since their own average (1.1) would read
    against the risk. The risk is measured against the typical lit account; where that
    account's count shows the direction, it is said beside the account's own average."""
    spec = get("orders_90d")
    both = {"usual": "1.1", "typical": "3"}
    assert spec.describe(1.0, other=both) == (
        "Orders in the last 90 days: 1 (1.1 in an average 90 days; 3 at a typical account)"
    )
    assert spec.describe(1.0, other={"typical": "3"}) == (
        "Orders in the last 90 days: 1 (3 at a typical account)"
    )
    assert spec.describe(1.0, other={"usual": "5.3", "typical": math.nan}) == (
        "Orders in the last 90 days: 1 (5.3 in an average 90 days)"
    )
    # the typical account shows why only where the value is on the direction's side of it
    assert spec.agrees_with(1.0, 3.0, raises=True)
    assert not spec.agrees_with(1.0, 3.0, raises=False)
    assert spec.agrees_with(4.0, 3.0, raises=False)
    assert not spec.agrees_with(4.0, 3.0, raises=True)
    # as good as the typical account (orders come whole: 2.5 is 3) says neither way
    assert not spec.agrees_with([3.0, 3.0], [2.5, 3.0], raises=True).any()
    assert not spec.agrees_with([3.0, 3.0], [2.5, 3.0], raises=False).any()
    assert not spec.agrees_with(math.nan, 3.0, raises=True)
    spend = get("spend_365d").describe(5000.0, other={"typical": "12,000 EUR"}, currency="EUR")
    assert spend == "Spend in the last 365 days: 5,000 EUR (12,000 EUR at a typical account)"


def test_a_level_with_no_yardstick_gets_a_variant_saying_the_typical_account() -> None:
    """Read on the demo's red list: "Average time between orders: 96 days (raises risk)",
    "Customer for 10.4 years (raises risk)", "Complaints per order in the last 365 days: 0.14
    (raises risk)": a level with nothing to read it against. Every model feature said as a
    level gets a variant with the typical account's value, tried before the plain sentence."""
    gap = get("gap_mean_days")
    assert gap.templates == (
        "Average time between orders: {value} ({typical} at a typical account)",
        "Average time between orders: {value}",
    )
    assert gap.describe(96.0, other={"typical": "34 days"}) == (
        "Average time between orders: 96 days (34 days at a typical account)"
    )
    assert gap.describe(96.0, other={"typical": math.nan}) == "Average time between orders: 96 days"
    # a richer sentence keeps its place; the variant goes before the plain one
    usage = get("usage_recency_days").templates
    assert usage[0].endswith("(in use {usage_active_weeks_26w} of the last 26 weeks)")
    assert usage[1:] == (
        "Product not used for {value} ({typical} at a typical account)",
        "Product not used for {value}",
    )
    # signed changes, dates to come, flags, categories and scorer-only features: none
    for name in ("orders_trend_90d", "contract_days_to_end", "has_active_contract", "industry"):
        assert not any("{typical}" in t for t in get(name).templates), name
    assert not any("{typical}" in t for s in FEATURES if not s.model for t in s.templates)
    # a window's templates already say it where they should: not twice
    assert sum("{typical}" in t for t in get("orders_90d").templates) == 2
    assert with_typical(get("orders_90d")) == get("orders_90d")


def test_the_typical_account_is_said_on_the_side_the_direction_says() -> None:
    """With a good and a bad side (orders, a silence) the typical account is said only where
    the value is on the direction's side of it; a feature with neither (a tenure, an order
    value) says it on either side, beyond 5% of it, the way the risk moved being the model's."""
    tenure = get("tenure_days")
    assert tenure.agrees_with([1000.0, 4000.0], 2000.0, raises=[True, True]).all()
    assert tenure.agrees_with([1000.0, 4000.0], 2000.0, raises=[False, False]).all()
    assert not tenure.agrees_with([1950.0, 2050.0], 2000.0, raises=True).any()  # within 5%
    assert not tenure.agrees_with(math.nan, 2000.0, raises=True)
    silence = get("recency_days")
    assert silence.agrees_with(52.0, 22.0, raises=True)
    assert not silence.agrees_with(12.0, 22.0, raises=True)
    assert silence.agrees_with(12.0, 22.0, raises=False)
    # "none", not "0.00", for a typical account with nothing; days stay days
    assert get("complaints_per_order_365d").say_typical(0.0) == "none"
    assert get("tickets_90d").say_typical(0.0) == "none"
    assert get("complaints_per_order_365d").say_typical(0.25) == "0.25"
    assert silence.say_typical(22.0) == "22 days"


def test_a_silence_past_or_well_within_the_own_cycle_shows_the_news_itself() -> None:
    """ "No order for 124 days (typical gap 13 days) (raises risk)" needs no other yardstick;
    "No order for 52 days (typical gap 78 days) (raises risk)" does. ``shows`` is the mirror
    of ``reads_backwards``: the ratio as said, past 1 (bad news) or under 0.5 (good news)."""
    ratio = get("overdue_ratio")
    values = np.array([124 / 13, 52 / 78, 0.2, 1.04])
    assert ratio.shows(values, raises=True).tolist() == [True, False, False, False]
    assert ratio.shows(values, raises=False).tolist() == [False, False, True, False]
    assert ratio.reads_backwards(values, np.ones(4, bool)).tolist() == [False, False, True, False]
    assert not ratio.shows(math.nan, raises=True)
    assert not get("tenure_days").shows(4000.0, raises=True)  # no good or bad side


def test_a_usage_silence_says_how_often_the_product_was_in_use() -> None:
    """Read on a red account: "Product last used 11 days ago (raises risk)" - 11 days is
    nothing to a manager unless the product was in use every week. A clause whose value is
    0 says the silence again and is left out. Said as a silence, as the orders' "No order for
    124 days" is: "Product last used 11 days ago (in use 96% of the last 26 weeks)" led the
    demo's red list and read as good news."""
    spec = get("usage_recency_days")
    weekly = spec.describe(11.0, other={"usage_active_weeks_26w": 25 / 26})
    assert weekly == "Product not used for 11 days (in use 96% of the last 26 weeks)"
    assert spec.describe(522.0, other={"usage_active_weeks_26w": 0.0}) == (
        "Product not used for 522 days"
    )
    assert spec.describe(11.0) == spec.describe(11.0, other={"usage_active_weeks_26w": math.nan})
    assert spec.describe(1.0) == "Product not used for 1 day"


def test_a_survey_change_without_a_survey_says_no_survey_was_answered() -> None:
    """On the demo 21 of the 32 reasons "No earlier answer to the same survey: no change" were
    of accounts that never answered a survey: the table's absence is said as such, and one
    answer without an earlier one of its kind as what it is."""
    spec = get("survey_score_change")
    assert spec.describe(math.nan, other={"survey_recency_days": math.nan}) == "No survey answered"
    assert spec.describe(math.nan, other={"survey_recency_days": 40.0}) == (
        "Only one answer to this survey so far: no trend yet"
    )
    assert spec.describe(-2.0, other={"survey_recency_days": 40.0}) == (
        "Survey score down 2 points since the previous answer to the same survey"
    )
    # usage keeps its own sentence: the absent feature's is the same
    assert get("usage_weekly_90d").describe(0.0, other={"usage_recency_days": math.nan}) == (
        "No product usage on record"
    )


def test_a_single_order_day_reads_as_no_repeat_order_yet() -> None:
    """ "Days with a repeat order after the first order day: 0" is what a new account's
    reasons mean; said plainly, with the one order's amount where the row has it."""
    spec = get("repeat_orders")
    assert spec.describe(0.0, other={"first_order_amount": 9777.0}, currency="EUR") == (
        "One order day so far (9,777 EUR spent), no repeat order yet"
    )
    assert spec.describe(0.0) == "One order day so far, no repeat order yet"
    assert spec.describe(2.0, other={"first_order_amount": 9777.0}) == (
        "Days with a repeat order after the first order day: 2"
    )
    # "no repeat order yet (lowers risk)" contradicts itself; a repeat order never does
    assert spec.reads_backwards(np.array([0.0, 0.0, 2.0]), np.array([False, True, False])).tolist() == [
        True, False, False,
    ]  # fmt: skip


def test_a_silence_past_the_typical_gap_says_when_the_account_was_quieter_before() -> None:
    """Read on a distributor's red list: "No order for 124 days, 17.7 times the typical gap of
    7 days" for a project buyer whose 7 days are between call-offs within a project; it had
    gone longer without an order twice before and come back. The clause is said only of a
    silence past the typical gap, and only when there was such a silence."""
    ratio, recency = get("overdue_ratio"), get("recency_days")
    row = {"recency_days": 124.0, "gap_median_days": 7.0, "overdue_ratio": 124 / 7}
    assert ratio.describe(124 / 7, other={**row, "gaps_longer_than_silence": 2.0}) == (
        "No order for 124 days, 17.7 times the typical gap of 7 days; it went longer without "
        "an order twice before and came back"
    )
    assert recency.describe(124.0, other={**row, "gaps_longer_than_silence": 1.0}) == (
        "No order for 124 days (typical gap 7 days; it went longer without an order once "
        "before and came back)"
    )
    # never quieter before, or no count (an older feature table): the sentence as it was
    for k in (0.0, math.nan):
        other = {**row, "gaps_longer_than_silence": k}
        assert ratio.describe(124 / 7, other=other) == (
            "No order for 124 days, 17.7 times the typical gap of 7 days"
        )
        assert recency.describe(124.0, other=other) == "No order for 124 days (typical gap 7 days)"
    # within its rhythm (said "1.0 times" or less) most past gaps are longer: nothing to say
    within = {"recency_days": 15.6, "gap_median_days": 15.0, "gaps_longer_than_silence": 40.0}
    assert "went longer" not in ratio.describe(1.04, other=within)
    assert "went longer" not in recency.describe(15.6, other={**within, "overdue_ratio": 1.04})
    # the recency sentence is late by its overdue ratio: without one it cannot say so
    assert recency.describe(
        124.0, other={**row, "overdue_ratio": math.nan, "gaps_longer_than_silence": 2.0}
    ) == ("No order for 124 days (typical gap 7 days)")


@pytest.mark.parametrize(
    ("n", "said"), [(1.0, "once"), (2.0, "twice"), (3.0, "3 times"), (1200.0, "1,200 times")]
)
def test_how_often_is_said_in_words(n: float, said: str) -> None:
    assert format_value("times", n) == said


def test_no_sales_reads_as_an_unmeasurable_credit_share_not_as_no_sales() -> None:
    """Read as "No sales in the last 365 days (lowers risk)": no sales is bad news to a
    manager; the reason is about the share of returns, which needs sales to exist."""
    text = get("credit_share_365d").describe(math.nan)
    assert text.startswith("Share of returns and credits not measurable")
    assert not text.startswith("No sales")


def test_money_in_a_reason_carries_the_reports_currency() -> None:
    """Read in a RevOps user's report: "Average order value ... 25,706" beside figures in
    EUR everywhere else."""
    assert format_value("currency", 25706.4, "EUR") == "25,706 EUR"
    assert format_value("currency", 25706.4, "€") == "€25,706"
    assert format_value("currency", -0.3) == "0" and format_value("currency", 25706.4) == "25,706"
    assert get("first_order_amount").describe(2500.0, currency="EUR") == (
        "Spent 2,500 EUR on the first order day"
    )
    assert get("recency_days").describe(12.0, currency="EUR") == get("recency_days").describe(12.0)


def test_units_format_as_a_manager_reads_them() -> None:
    assert format_value("days", 1) == "1 day"
    assert format_value("days", 2.4) == "2 days"
    assert format_value("points", 1) == "up 1 point"
    assert format_value("points", 0) == "unchanged"
    assert format_value("count_change", 0) == "unchanged"
    assert format_value("share", 0.25) == "25%"
    # one account of 2,000 holds about 0.05% of revenue: "0.0%" said nothing
    assert [format_value("share", v) for v in (0, 0.00004, 0.0005, 0.0042, 0.034, 0.05)] == [
        "0%", "under 0.01%", "0.05%", "0.42%", "3.4%", "5%",
    ]  # fmt: skip
    assert format_value("slope", -0.05) == "-5%"
    assert format_value("ratio", 1.04) == "1.0 times"
    assert [format_value("rate", v) for v in (0, 0.083, 0.5, 0.998, 1.34, 12.4)] == [
        "0", "0.083", "0.5", "1.0", "1.3", "12",
    ]  # fmt: skip
    assert format_value("flag", 0.0) == "no"
    with pytest.raises(ValueError, match="unknown unit"):
        format_value("furlongs", 1)  # type: ignore[arg-type]


def test_get_resolves_any_window_and_rejects_unknown_names() -> None:
    assert get("spend_365d").unit == "currency"
    assert get("spend_7d").meaning.startswith("Order amount summed over the 7 days")
    with pytest.raises(KeyError, match="unknown feature"):
        get("churn")


def test_catalog_windows_follow_the_argument_in_sorted_order() -> None:
    names = [f.name for f in catalog([90, 7])]
    assert [n for n in names if n.startswith(("orders_", "spend_"))][:4] == [
        "orders_7d", "orders_90d", "spend_7d", "spend_90d",
    ]  # fmt: skip
    assert [f.name for f in catalog(DEFAULT_WINDOWS)] == [f.name for f in FEATURES]


def test_features_for_keeps_only_families_whose_table_exists() -> None:
    orders_only = make_history([{"account_id": "a", "order_date": "2024-01-01", "amount": 1.0}])
    families = {f.family for f in features_for(orders_only)}
    assert families == {"orders", "portfolio"}
    with_usage = make_history(
        [{"account_id": "a", "order_date": "2024-01-01", "amount": 1.0, "product": "p"}],
        accounts=[{"account_id": "a", "industry": "x"}],
        usage=[{"account_id": "a", "date": "2024-01-01", "count": 1.0}],
    )
    names = {f.name for f in features_for(with_usage)}
    assert {"usage_weekly_90d", "products_365d", "industry"} <= names
    assert "region" not in names and "tickets_90d" not in names


def test_markdown_table_lists_every_feature_with_its_source() -> None:
    md = catalog_table_markdown()
    lines = md.strip().splitlines()
    assert lines[0].startswith("| feature | family | source | unit | meaning |")
    assert len(lines) == 2 + len(FEATURES)
    for f in FEATURES:
        assert f"| `{f.name}` |" in md
    assert "| tickets (resolved_at, severity, is_complaint) |" in md


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from([s.name for s in FEATURES if s.risk_rises_when]),
    value=st.floats(-3.0, 50.0, allow_nan=False),
    raises=st.booleans(),
)
def test_a_sentence_reads_backwards_exactly_when_its_words_contradict_the_direction(
    name: str, value: float, raises: bool
) -> None:
    """What :meth:`FeatureSpec.reads_backwards` decides from numbers agrees with what the
    manager reads: a rise or fall said against the direction, or a count at zero said as
    the wrong extreme."""
    spec = get(name)
    if spec.unit not in ("change", "slope", "points", "count_change"):
        value = abs(value)  # counts, money and shares of these features are never negative
    text = spec.format(value)
    got = bool(spec.reads_backwards(np.array([value]), np.array([raises]))[0])
    good_if_up = spec.risk_rises_when == "lower"
    if spec.unit in ("change", "slope", "points", "count_change"):
        up = text.startswith(("rose", "up", "+")) and not re.fullmatch(r"[+-]0%", text)
        down = text.startswith(("fell", "down", "-")) and not re.fullmatch(r"[+-]0%", text)
        good, bad = (up, down) if good_if_up else (down, up)
        assert got == ((good and raises) or (bad and not raises)), (text, raises)
    elif spec.unit == "ratio":  # "2.0 times" the usual: bad past 1, good below a half
        said = float(text.split()[0])
        past, within = said > 1, said < 0.5
        good, bad = (past, within) if good_if_up else (within, past)
        assert got == ((good and raises) or (bad and not raises)), (text, raises)
    else:
        # "under 0.01%" reads as next to nothing, as "0%" does
        zero = re.fullmatch(r"0(\.0)?%?|under 0\.01%", text) is not None or text == "0"
        if not zero:
            assert not got, (text, raises)
        elif round(value, 6) == 0:
            assert got == (raises != good_if_up), (text, raises)


def test_only_signed_changes_and_counts_at_zero_read_backwards() -> None:
    survey = get("survey_score_change")
    assert survey.reads_backwards(np.array([3.0, 3.0, -2.0, 0.04]), np.array([1, 0, 0, 1], bool)).tolist() == [
        True, False, True, False
    ]  # fmt: skip
    complaints = get("complaints_90d")
    assert complaints.reads_backwards(np.array([0.0, 0.0, 2.0]), np.array([1, 0, 0], bool)).tolist() == [
        True, False, False
    ]  # fmt: skip
    tickets = get("tickets_90d")  # no one way: an account that never asks may be gone
    assert not tickets.reads_backwards(np.array([0.0]), np.array([True])).any()
    assert not get("survey_score_last").reads_backwards(np.array([10.0]), np.array([True])).any()


def test_long_durations_are_said_in_years() -> None:
    """Read on a demo report: "Customer for 3,981 days", "2 orders in 3981 days: too little
    history to judge". From two years on a duration is said in years."""
    from ka_ml.features.catalog import n_days

    assert n_days(1) == "1 day" and n_days(729) == "729 days"
    assert n_days(730) == "2.0 years" and n_days(3981) == "10.9 years"
    assert get("tenure_days").describe(3981.0) == "Customer for 10.9 years"
    assert get("contract_days_to_end").format(-775.0) == "lapsed 2.1 years ago"
    assert get("contract_days_to_end").format(1095.0) == "ends in 3.0 years"
    assert get("recency_days").format(45.0) == "45 days"
