"""The calendar-only rule: days to the contract's end as the only churn score."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from ka_ml.reporting.console import print_train_report
from ka_ml.training.evaluation import calendar_rule_metrics, calendar_rule_scores


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            # ends in 10 days, in 200, no contract, lapsed 30 days ago, in 50, in 400
            "contract_days_to_end": [10.0, 200.0, np.nan, -30.0, 50.0, 400.0],
            "churn": [1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
        }
    )


def test_the_rule_ranks_lapsed_and_soon_ending_contracts_riskiest() -> None:
    score = calendar_rule_scores(_rows())
    assert score is not None
    # no contract counts as a contract ending today (0 days)
    assert score.tolist() == [-10.0, -200.0, 0.0, 30.0, -50.0, -400.0]


def test_the_rule_auc_on_a_built_example() -> None:
    # positive -10 beats -200, -50, -400 and loses to the no-contract 0: 3 of 4;
    # positive +30 (lapsed) beats all four negatives: 7 of 8 pairs
    assert calendar_rule_metrics(_rows()) == {"roc_auc": pytest.approx(7 / 8)}


def test_no_contracts_table_no_rule() -> None:
    rows = _rows().drop(columns="contract_days_to_end")
    assert calendar_rule_scores(rows) is None
    assert calendar_rule_metrics(rows) == {}


def _report(calendar_rule: dict[str, float]) -> SimpleNamespace:
    ev = SimpleNamespace(
        notes=[],
        per_origin=pd.DataFrame(),
        comparison=pd.DataFrame(
            [
                {
                    "predictor": "ka_ml churn model",
                    "roc_auc": 0.87,
                    "pr_auc": 0.6,
                    "brier": 0.1,
                    "ece": 0.01,
                    "top_decile_lift": 3.0,
                }
            ]
        ),
        churn={"roc_auc": 0.87},
        calendar_rule=calendar_rule,
        family="lightgbm",
        family_scores={"lightgbm": 0.87},
        calibration={"method": "none"},
        timing_comparison=pd.DataFrame(
            [{"predictor": "ka_ml timing model", "p30_auc": 0.8, "p30_brier": 0.2}]
        ),
        timing={"p30_accuracy": 0.7, "p30_majority_accuracy": 0.5},
        lights={
            "red_precision": 0.5,
            "red_recall": 0.4,
            "red_yellow_precision": 0.4,
            "red_yellow_recall": 0.7,
            "red_share": 0.1,
            "base_rate": 0.2,
            "lit_share": 0.8,
            "lit_roc_auc": 0.75,
        },
    )
    return SimpleNamespace(
        evaluation=ev,
        as_of=pd.Timestamp("2026-10-01"),
        churn_definition="contract,no_order",
        seconds=1.0,
        split={},
        decisions={},
        run_id="r",
        tracking_uri="sqlite://",
    )


@pytest.mark.parametrize("rule", [{"roc_auc": 0.718}, {}])
def test_the_train_console_prints_the_rule_beside_the_model_only_with_contracts(
    rule: dict[str, float],
) -> None:
    buf = io.StringIO()
    print_train_report(_report(rule), Console(file=buf, width=200))
    text = buf.getvalue()
    if rule:
        assert "churn ROC AUC: model 0.870, calendar-only rule 0.718" in text
    else:
        assert "calendar" not in text


def test_the_train_console_shows_how_many_rows_the_red_precision_rests_on() -> None:
    """Read on a 40-account portfolio: 'red 7% of them, precision 0.00 recall 0.00' alarms a
    data scientist until they learn it was 8 rows."""
    report = _report({})
    buf = io.StringIO()
    print_train_report(report, Console(file=buf, width=300))
    assert "red 10% of them, precision 0.50" in buf.getvalue()  # older runs: no counts
    report.evaluation.lights.update(red_count=8.0, red_churned=0.0, red_precision=0.0)
    buf = io.StringIO()
    print_train_report(report, Console(file=buf, width=300))
    assert "red 10% of them (8 rows, 0 churned), precision 0.00" in buf.getvalue()


def test_the_models_two_pooled_aucs_say_which_rows_each_rests_on() -> None:
    """Read in a train log: the table said 0.838 and the line below "churn ROC AUC: model
    0.839 ... same rows". The table keeps the rows every baseline scores, the line (and the
    promotion gate) every pooled row: each now says which."""
    report = _report({"roc_auc": 0.718})
    ev = report.evaluation
    ev.comparison = ev.comparison.assign(n=312.0)
    ev.churn = {"roc_auc": 0.871, "n": 330.0}
    buf = io.StringIO()
    print_train_report(report, Console(file=buf, width=400))
    text = " ".join(buf.getvalue().split())
    assert "pooled over 0 test origins, on the 312 rows every predictor can score" in text
    assert (
        "churn ROC AUC on all 330 pooled test rows (the promotion gate's figure; the table "
        "leaves out 18 rows a baseline cannot score): model 0.871, calendar-only rule 0.718"
    ) in text
    ev.churn = {"roc_auc": 0.87, "n": 312.0}  # the same rows: nothing to explain
    buf = io.StringIO()
    print_train_report(report, Console(file=buf, width=400))
    assert "churn ROC AUC: model 0.870, calendar-only rule 0.718" in buf.getvalue()


def test_train_cautions_when_few_accounts_or_accounts_unlike_the_origins() -> None:
    """Seen on 300 CDNOW customers as of 1998-03-31: pooled ROC AUC 0.830, the scores then
    0.750 (recency 0.790), with 'expected 0.754 on the 247 accounts' printed but nothing
    saying which to trust; 30 customers: 0.981 claimed, 0.718 achieved, no warning."""
    from ka_ml.config import Config
    from ka_ml.training.evaluation import cautions, population_gap

    cfg = Config()
    pooled = {"roc_auc": 0.830, "roc_auc_lo": 0.785, "roc_auc_hi": 0.866, "accounts": 300.0}
    pooled |= {"churned_rows": 480.0, "kept_rows": 420.0}
    expected = {"roc_auc": 0.754, "accounts": 247.0, "origin_abs_error": 0.046}
    gap = population_gap(pooled, expected)
    assert gap["pooled_minus_expected"] == pytest.approx(0.076)
    assert gap["population_differs"] == 1.0
    (said,) = cautions(pooled, expected | gap, {}, cfg).values()
    assert "the 247 accounts scored now are unlike the test origins'" in said
    assert "0.076 below the pooled 0.830" in said and "may overstate" in said
    # within what the estimate erred on the origins, or inside the interval: nothing said
    close = {**expected, "roc_auc": 0.80}
    assert population_gap(pooled, close)["population_differs"] == 0.0
    assert cautions(pooled, close | population_gap(pooled, close), {}, cfg) == {}
    # few accounts
    few = {**pooled, "accounts": 30.0, "churned_rows": 76.0, "kept_rows": 14.0}
    (small,) = cautions(few, {}, {}, cfg).values()
    assert small.startswith("only 30 accounts on the test origins (14 rows of the rarer")
    assert "mlflow.few_test_accounts = 200" in small
    assert cautions(few, {}, {}, cfg.model_copy(update={"mlflow": cfg.mlflow.model_copy(
        update={"few_test_accounts": 0})})) == {}  # fmt: skip
    # the console says the interval and the cautions
    report = _report({})
    report.evaluation.churn = pooled
    report.evaluation.cautions = {"few_accounts": small}
    buf = io.StringIO()
    print_train_report(report, Console(file=buf, width=400))
    text = buf.getvalue()
    assert "ka_ml churn ROC AUC 0.830, 95% interval [0.785, 0.866] over 300 accounts" in text
    assert "caution: only 30 accounts on the test origins" in text


def test_an_empty_red_light_is_told_as_the_floor_not_as_a_precision_of_zero() -> None:
    """Seen on a user's 140 accounts (2-3% churn): 'red 0% of them (0 rows, 0 churned),
    precision 0.00 recall 0.00', and then no red account all autumn, with nothing saying
    that the 25% floor, not the ranking, emptied the list."""
    from ka_ml.config import Config
    from ka_ml.modeling.evaluate import light_scores
    from ka_ml.training.evaluation import cautions

    y = np.array([1, 0, 0, 0, 0, 0, 0, 0], bool)
    li = light_scores(y, np.zeros(8, bool), np.zeros(8, bool))
    assert np.isnan(li["red_precision"]) and li["red_recall"] == 0.0
    assert np.isnan(light_scores(~y & False, y, y)["red_recall"])  # no churner: no recall
    li |= {"red_share": 0.0, "lit_share": 1.0, "lit_roc_auc": 0.8, "lit_max_probability": 0.12}
    cfg = Config()
    said = cautions({"accounts": 500.0}, {}, li, cfg)
    assert said["red_floor"].startswith(
        "no account on the test origins was red: the riskiest 10% would be, but red needs a "
        "churn probability of at least 25% (health.red_min_probability) and the highest was 12%"
    )
    threshold = cfg.model_copy(
        update={"health": cfg.health.model_copy(update={"mode": "threshold"})}
    )
    assert "red_floor" not in cautions({"accounts": 500.0}, {}, li, threshold)
    report = _report({})
    report.evaluation.lights = li
    report.evaluation.cautions = said
    buf = io.StringIO()
    print_train_report(report, Console(file=buf, width=400))
    text = buf.getvalue()
    assert "red 0% of them (0 rows, 0 churned), precision n/a recall 0.00" in text
    assert text.index("caution: no account on the test origins was red") > text.index("red 0%")


def test_lights_that_would_have_caught_few_churners_on_the_origins_are_a_caution() -> None:
    """A lab distributor's train: ROC AUC 0.79, every baseline beaten, and on the same
    origins lights catching 6% of the churners red or yellow, with no word; the weekly lists
    then found none of its losses."""
    import pandas as pd

    from ka_ml.config import Config
    from ka_ml.training.evaluation import cautions, origin_lights

    n = 100
    test = pd.DataFrame({"as_of": [pd.Timestamp("2026-04-27")] * n, "recency_days": 10.0})
    y = np.zeros(n)
    y[:10] = 1  # 10 churners, ranked low: the model's probabilities stay under yellow's 10%
    p = np.r_[np.full(10, 0.02), np.linspace(0.3, 0.01, 90)]
    li = origin_lights(test, y, p, Config())
    assert li["red_yellow_recall"] == 0.0 and li["red_yellow_recall_ceiling"] == 1.0
    said = cautions({"accounts": 500.0}, {}, li, Config())
    assert said["few_caught"].startswith(
        "on the test origins the lights would have caught 0% of the churners red or yellow, "
        "under the 0.50 `ka-ml backtest` asks of the weekly lists"
    )
    assert "yellow needs a churn probability of at least 10%" in said["few_caught"]
    caught = li | {"red_yellow_recall": 0.6, "red_yellow_churned": 6.0}
    assert "few_caught" not in cautions({"accounts": 500.0}, {}, caught, Config())
    # a budget that cannot reach the floor: asked 0.6 of what it allows
    capped = li | {"red_yellow_recall": 0.25, "red_yellow_churned": 5.0,
                   "red_yellow_recall_ceiling": 0.4}  # fmt: skip
    assert "few_caught" not in cautions({"accounts": 500.0}, {}, capped, Config())
    said = cautions({"accounts": 500.0}, {}, capped | {"red_yellow_recall": 0.2}, Config())
    assert said["few_caught"].startswith(
        "on the test origins the lights would have caught 20% of the churners red or yellow "
        "(5 of 25), under the 0.24"
    )


def test_train_says_how_the_ranking_warns_before_a_silence_shows() -> None:
    """A food wholesaler's `train` printed ROC AUC 0.98 against "no order in 90 days", which
    accounts silent for weeks meet trivially; among the accounts still ordering the churn
    probability ranked the customers really lost at 0.73. The origins' lights now carry the
    ranking on the lit accounts still within their typical gap, and the console says it."""
    import pandas as pd

    from ka_ml.training.evaluation import early_warning

    test = pd.DataFrame(
        {
            "recency_days": [3.0, 5.0, 6.0, 40.0, 50.0, 2.0, np.nan],
            "gap_median_days": [7.0, 7.0, 7.0, 7.0, 7.0, 7.0, np.nan],
        }
    )
    y = np.array([0, 1, 0, 1, 1, 0, 1], float)
    p = np.array([0.1, 0.3, 0.2, 0.9, 0.8, 0.05, 0.5])
    lit = np.array([True] * 6 + [False])
    # red: one within its gap (5 days, churned) and the two silent for weeks
    red = np.array([False, True, False, True, True, False, False])
    got = early_warning(test, y, p, lit, red)
    assert got["early_share"] == pytest.approx(4 / 6)  # 3, 5, 6, 2 days: within 7
    assert got["early_churn_rate"] == pytest.approx(0.25)
    assert got["early_roc_auc"] == pytest.approx(1.0)
    assert (got["early_red_count"], got["early_red_precision"]) == (1.0, 1.0)
    assert early_warning(test.drop(columns="gap_median_days"), y, p, lit) == {}
    # the typical gap by time, where the frame has it, is the one read (as the overdue rule)
    by_time = early_warning(test.assign(gap_typical_days=45.0), y, p, lit)
    assert by_time["early_share"] == pytest.approx(5 / 6)  # 40 days: within 45
    report = _report({})
    report.evaluation.lights = {
        **light_scores_zero(),
        "lit_share": 1.0,
        "lit_roc_auc": 0.98,
        **got,
    }
    buf = io.StringIO()
    print_train_report(report, Console(file=buf, width=400))
    assert (
        "early warning: on the accounts still within their typical gap (67% of those lit, "
        "churn rate 0.25) churn ROC AUC 1.000: the ranking before a silence shows it; red "
        "precision among them 1.00 (1 row; the red precision above also counts silences "
        "already under way)"
    ) in buf.getvalue()


def light_scores_zero() -> dict[str, float]:
    from ka_ml.modeling.evaluate import light_scores

    y = np.array([1, 0], bool)
    return {**light_scores(y, y, y), "red_share": 0.5}


def test_the_console_says_how_to_browse_the_store_the_run_went_to() -> None:
    """Seen: 'browse: make ui' under a custom tracking URI (make ui opens models/mlflow.db)."""
    from ka_ml.reporting.console import browse

    assert browse("sqlite:////srv/ka/models/mlflow.db").endswith(  # mlflow, or its full path
        "mlflow ui --backend-store-uri 'sqlite:////srv/ka/models/mlflow.db'"
    )
    assert browse("https://mlflow.example.com") == "browse: https://mlflow.example.com"


def test_the_train_header_says_the_churn_definitions_in_words() -> None:
    """Read as a code by a user ("churn definition: contract,no_order")."""
    from ka_ml.reporting.console import churn_words

    assert churn_words("contract,no_order") == (
        "a running contract's end without renewal where one runs, else no order within the horizon"
    )
    assert churn_words("no_order") == "no order within the horizon"


def test_train_cautions_when_the_churn_label_mostly_marks_pauses() -> None:
    """A user's annual payers were 'churn' (no order in 90 days) every year: train reported
    ROC AUC 0.996 and red precision 1.00 while none of its red accounts was lost."""
    from ka_ml.config import Config
    from ka_ml.training.evaluation import cautions, label_returns

    cfg = Config()
    day = pd.Timestamp("2026-10-01")
    old, recent = day - pd.Timedelta(days=500), day - pd.Timedelta(days=200)
    n = 100
    # old snapshot: 100 churn rows, 60 ordered again 300 days after it, 10 after 480 days
    # (beyond the horizon + 365), 30 never (censored at the as-of, 500 days on); a recent
    # snapshot is not followed long enough to count
    d = np.r_[np.full(60, 300.0), np.full(10, 480.0), np.full(30, 500.0), np.full(n, 200.0)]
    labelled = pd.DataFrame(
        {
            "as_of": [old] * n + [recent] * n,
            "churn": 1.0,
            "churn_definition": "no_order",
            "days_to_next": d,
            "next_order_observed": np.r_[np.ones(70, bool), np.zeros(30 + n, bool)],
        }
    )
    got = label_returns(labelled, cfg)
    assert got == {"share": 0.6, "rows": 100.0, "days": 365.0, "horizon": 90.0}
    said = cautions({"accounts": 500.0}, {}, {}, cfg, got)["pauses"]
    assert said.startswith(
        "60% of the 100 account-snapshots labelled churn for no order within 90 days (on "
        "snapshots the data follows long enough) ordered again within 365 days after their "
        "window: on this data the label marks pauses more often than losses"
    )
    assert "pauses" not in cautions({"accounts": 500.0}, {}, {}, cfg, {"share": 0.4, "rows": 1e3})
    quiet = cfg.model_copy(
        update={"mlflow": cfg.mlflow.model_copy(update={"max_label_return_share": None})}
    )
    assert cautions({"accounts": 500.0}, {}, {}, quiet, got) == {}
    # rows judged by a contract, or too few followed that long: nothing to say
    by_contract = labelled.assign(churn_definition="contract")
    assert label_returns(by_contract, cfg) == {}
    assert label_returns(labelled.iloc[60:], cfg) == {}  # 40 old rows left


def test_no_row_judged_by_its_contract_no_rule() -> None:
    """User test: under churn_definition no_order the console still printed the calendar
    rule's ROC AUC beside the model's, read as a baseline of a label it does not predict."""
    rows = _rows().assign(churn_definition="no_order")
    assert calendar_rule_metrics(rows) == {}
    mixed = rows.assign(churn_definition=["contract", *["no_order"] * 5])
    assert calendar_rule_metrics(mixed) == {"roc_auc": pytest.approx(7 / 8)}


def test_two_figures_said_apart_never_print_equal() -> None:
    from ka_ml.training.evaluation import _apart

    assert _apart(0.0081, 0.0079) == "0.0081" and _apart(0.0079, 0.0081) == "0.0079"
    assert _apart(0.012, 0.008) == "0.012"
