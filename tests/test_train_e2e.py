"""The session's training run, end to end: evaluation tables and what MLflow recorded."""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pytest

from ka_ml.jobs.train import TrainReport
from ka_ml.modeling import metrics as M

PREDICTORS = {"ka_ml churn model", "recency only", "RFM logistic regression", "BG/NBD"}


@pytest.fixture(scope="module")
def report(trained: Any) -> TrainReport:
    assert isinstance(trained.report, TrainReport)
    return trained.report


@pytest.fixture(scope="module")
def client(report: TrainReport) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=report.tracking_uri, registry_uri=report.tracking_uri)


def test_churn_comparison_has_the_model_and_three_baselines_on_the_same_rows(
    report: TrainReport,
) -> None:
    cmp = report.evaluation.comparison
    assert set(cmp["predictor"]) == PREDICTORS and len(cmp) == 4
    n_test = len(report.evaluation.test_predictions)
    assert n_test > 50
    assert cmp["n"].nunique() == 1, cmp[["predictor", "n"]]
    # only rows some baseline cannot score (BG/NBD: no purchase history) are left out
    assert 0.95 * n_test <= float(cmp["n"].iloc[0]) <= n_test
    assert cmp["roc_auc"].between(0, 1).all()


def test_churn_probabilities_are_probabilities(report: TrainReport) -> None:
    p = report.evaluation.test_predictions["churn_probability"].to_numpy(float)
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    assert np.ptp(p) > 0.1, "the model separates accounts"


def test_timing_probabilities_never_decrease_with_the_window(
    report: TrainReport, trained: Any
) -> None:
    windows = trained.cfg.labels.purchase_windows
    preds = report.evaluation.test_predictions
    within = preds[[f"p_purchase_{k}d" for k in windows]].to_numpy(float)
    assert np.isfinite(within).all() and ((within >= 0) & (within <= 1)).all()
    assert (np.diff(within, axis=1) >= 0).all()


def test_train_expects_an_auc_for_the_scored_population_and_checks_it_on_the_origins(
    report: TrainReport, client: Any
) -> None:
    x = report.evaluation.expected
    assert 0.5 < x["roc_auc"] <= 1.0 and 0.0 < x["brier"] < 0.25
    assert x["accounts"] > 100
    model = report.evaluation.per_origin
    model = model[model["predictor"] == "ka_ml churn model"]
    err = model["expected_roc_auc"] - model["roc_auc"]
    assert x["origin_error"] == pytest.approx(float(err.mean()))
    assert x["origin_abs_error"] == pytest.approx(float(err.abs().max()))
    logged = client.get_run(report.run_id).data.metrics
    assert logged["expected_churn_roc_auc"] == pytest.approx(x["roc_auc"])


def test_timing_interval_coverage_is_a_share(report: TrainReport) -> None:
    timing = report.evaluation.timing
    assert 0.0 <= timing["p10_p90_coverage"] <= 1.0
    assert timing["coverage_n"] > 0
    cmp = report.evaluation.timing_comparison
    assert list(cmp["predictor"]) == ["ka_ml timing model", "BG/NBD"]
    # the dates beside the own-cycle rule, on the rows both date whose next order came
    test = report.evaluation.test_predictions
    assert 0 < timing["date_rows"] <= len(test)
    assert 0.0 <= timing["date_close_share"] <= 1.0
    assert 0.0 <= timing["date_close_share_cycle_rule"] <= 1.0
    assert timing["date_median_error_days"] >= 0


def test_the_run_is_tagged_with_data_definition_and_config(
    report: TrainReport, client: Any, trained: Any
) -> None:
    run = client.get_run(report.run_id)
    tags = run.data.tags
    assert tags["data_fingerprint"] == trained.history.before(report.as_of).fingerprint()
    assert tags["churn_definition"] == report.churn_definition
    assert tags["config_hash"] == trained.cfg.hash()
    assert "test_churn_roc_auc" in run.data.metrics
    # the demo data has contracts: the calendar-only rule is logged beside the model
    assert run.data.metrics["test_calendar_rule_roc_auc"] == pytest.approx(
        report.evaluation.calendar_rule["roc_auc"]
    )
    assert run.data.metrics["test_timing_p10_p90_coverage"] == pytest.approx(
        report.evaluation.timing["p10_p90_coverage"]
    )
    assert run.data.metrics["test_timing_date_close_share_cycle_rule"] == pytest.approx(
        report.evaluation.timing["date_close_share_cycle_rule"]
    )


def test_the_run_holds_plots_evaluation_tables_and_tuning_trials(
    report: TrainReport, client: Any
) -> None:
    def names(folder: str) -> set[str]:
        return {a.path.split("/")[-1] for a in client.list_artifacts(report.run_id, folder)}

    assert {"reliability.png", "lift.png", "shap_summary.png", "feature_importance.png"} <= names(
        "plots"
    )
    assert {
        "comparison_churn.csv",
        "comparison_timing.csv",
        "slice_metrics.csv",
        "test_predictions.csv",
        "feature_importance.csv",
        "tuning_churn_trials.csv",
        "tuning_timing_trials.csv",
    } <= names("evaluation")
    assert {"churn.json", "timing.json"} <= names("promotion")


def test_the_slices_include_the_lifecycle_states_over_every_test_row(report: TrainReport) -> None:
    """Lapsed accounts' probabilities rank Win-back: their calibration is in the slices."""
    ev = report.evaluation
    life = ev.slices[ev.slices["slice"] == "lifecycle"].set_index("value")
    assert int(life["n"].sum()) == len(ev.test_predictions)
    assert {"active", "lapsed"} <= set(life.index)
    # already lost accounts churn (no order, no contract) far more often than active ones
    assert life.loc["lapsed", "base_rate"] > 2 * life.loc["active", "base_rate"]
    weighted = (life["base_rate"] * life["n"]).sum() / life["n"].sum()
    assert weighted == pytest.approx(ev.test_predictions["churn"].mean())
    # by purchase cycle too (a seasonal portfolio's annual buyers: 62% "churn" rows)
    cycle = ev.slices[ev.slices["slice"] == "purchase_cycle"].set_index("value")
    assert int(cycle["n"].sum()) == len(ev.test_predictions)
    assert {"cycle <= 30 days", "cycle 31-90 days"} <= set(cycle.index)


def test_every_tuning_trial_is_a_nested_run_of_the_training_run(
    report: TrainReport, client: Any, trained: Any
) -> None:
    run = client.get_run(report.run_id)
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{report.run_id}'"
    )
    names = {c.info.run_name for c in children}
    n_churn = trained.cfg.tuning.n_trials
    assert {f"churn-trial-{i}" for i in range(n_churn)} <= names
    # the timing model is tuned only with at least two trials (a quarter of n_trials)
    assert ("timing-trial-0" in names) == (trained.cfg.tuning.n_trials // 4 >= 2)
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert finished and all("cv_score" in c.data.metrics for c in finished)
    # the run says how many trials ran within the budget (the session's is trials, not time)
    assert run.data.params["churn_tuning.trials_run"] == str(n_churn)
    # every account with an order learnt from (the demo is far below tuning.max_accounts)
    p = run.data.params
    assert p["chosen.training_accounts"] == p["chosen.accounts_with_orders_or_contracts"]
    known = trained.history.before(report.as_of)
    held = set(known.orders["account_id"]) | set(known.contracts["account_id"])
    assert int(p["chosen.training_accounts"]) == len(held)
    assert "sampling_note" not in run.data.tags


def test_comparison_measures_every_predictor_on_the_rows_all_of_them_can_score() -> None:
    from ka_ml.modeling.evaluate import compare

    rng = np.random.default_rng(0)
    y = (rng.uniform(size=200) < 0.3).astype(float)
    model_p = np.clip(0.3 + 0.4 * (y - 0.3) + rng.normal(0, 0.1, 200), 0.01, 0.99)
    partial = rng.uniform(size=200)
    partial[:20] = np.nan  # e.g. BG/NBD for accounts without purchase history
    cmp = compare(y, model_p, {"full": rng.uniform(size=200), "partial": partial}, None, seed=0)
    assert list(cmp["n"]) == [180.0, 180.0, 180.0]
    assert cmp.loc[0, "roc_auc"] == pytest.approx(M.roc_auc(y[20:], model_p[20:]))


def test_window_deltas_are_paired_intervals_on_each_windows_known_rows() -> None:
    import pandas as pd

    from ka_ml.modeling.evaluate import window_deltas, window_outcomes

    rng = np.random.default_rng(2)
    n = 600
    d = rng.exponential(60, n)
    e = d < 150  # censored after 150 days
    d = np.minimum(d, 150)
    good = pd.DataFrame(
        {
            "p_purchase_30d": np.clip(np.where(d < 30, 0.6, 0.3) + rng.normal(0, 0.1, n), 0, 1),
            "p_purchase_90d": np.full(n, 1 - np.exp(-90 / 60)),
        }
    )
    noise = good.assign(p_purchase_30d=rng.uniform(size=n))
    groups = np.arange(n) // 3  # three rows per account
    out = window_deltas(good, noise, d, e, [30, 90], groups, seed=0)
    known, y = window_outcomes(d, e, 30)
    assert out["model_minus_this_p30_auc"] == pytest.approx(
        M.roc_auc(y[known], good["p_purchase_30d"][known])
        - M.roc_auc(y[known], noise["p_purchase_30d"][known])
    )
    assert 0 < out["model_minus_this_p30_auc_lo"] < out["model_minus_this_p30_auc"]
    assert out["model_minus_this_p30_auc"] < out["model_minus_this_p30_auc_hi"]
    # the same forecast on the 90-day window: no difference, a zero-width interval
    for key in ("model_minus_this_p90_auc", "model_minus_this_p90_brier"):
        assert out[key] == out[f"{key}_lo"] == out[f"{key}_hi"] == 0.0
    assert window_deltas(good, noise, d, e, [30, 90], groups, seed=0) == out
    # every row censored before the window ends: no outcome known, no figure, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        none = window_deltas(good, noise, np.full(n, 5.0), np.zeros(n, bool), [30], groups, seed=0)
    assert len(none) == 6 and all(np.isnan(v) for v in none.values())


def _two_origins(n: int = 2000) -> tuple[Any, np.ndarray, np.ndarray, Any]:
    """Rows of two origins: the first followed for 120 days, the second for only 60; the
    same true timing (exponential, mean 80 days) and a forecast that knows it."""
    import pandas as pd

    rng = np.random.default_rng(5)
    dates = np.repeat(pd.to_datetime(["2026-06-01", "2026-07-31"]).to_numpy(), n // 2)
    follow = np.repeat([120.0, 60.0], n // 2)
    t = rng.exponential(80, n)
    e = t < follow
    d = np.where(e, t, follow)
    pred = pd.DataFrame({f"p_purchase_{k}d": np.full(n, 1 - np.exp(-k / 80)) for k in (30, 90)})
    return dates, d, e, pred


def test_a_window_longer_than_some_rows_follow_up_is_judged_on_the_fully_followed_rows() -> None:
    """With a 60-day horizon and a 90-day window, the late origin's early orderers were kept
    and its order-free rows dropped: P(order within 90 d) looked easier than it is."""
    from ka_ml.modeling.evaluate import (
        follow_up_days,
        short_window_notes,
        timing_scores,
        window_deltas,
    )

    dates, d, e, pred = _two_origins()
    f = follow_up_days(dates, d, e)
    assert set(f) == {120.0, 60.0}
    scores = timing_scores(pred, d, e, [30, 90], f)
    first = np.arange(len(d)) < len(d) // 2
    assert scores["p30_n"] == len(d)  # both origins followed for 30 days
    assert scores["p90_n"] == first.sum()  # only the first origin, orderers and not alike
    y90 = (e & (d < 90))[first]
    assert scores["p90_brier"] == pytest.approx(
        M.brier(y90.astype(float), np.full(len(y90), 1 - np.exp(-90 / 80)))
    )
    biased = timing_scores(pred, d, e, [90])  # the old rule: early orderers kept
    assert biased["p90_n"] > scores["p90_n"]
    # the paired deltas (BG/NBD's row, the first-champion rule) rest on the same rows
    other = pred.assign(p_purchase_90d=0.5)
    deltas = window_deltas(pred, other, d, e, [90], None, seed=0, follow_up=f)
    against = timing_scores(other, d, e, [90], f)
    assert deltas["model_minus_this_p90_brier"] == pytest.approx(
        scores["p90_brier"] - against["p90_brier"]
    )
    (note,) = short_window_notes(dates, f, [30, 90])
    assert "P(order within 90 d) is judged on 1 of 2 test origins (1,000 of 2,000 rows)" in note
    assert "followed for only 60 days" in note
    # an origin where every account ordered: every window's outcome is known
    assert np.isinf(follow_up_days(np.zeros(3), np.array([5.0, 9.0, 1.0]), np.ones(3, bool))).all()


def test_windows_within_the_follow_up_score_as_before() -> None:
    """The default config (horizon 90, windows up to 90): every test row is followed for at
    least the horizon, so no figure changes."""
    from ka_ml.modeling.evaluate import follow_up_days, short_window_notes, timing_scores

    dates, d, e, pred = _two_origins()
    keep = d >= 0
    f = follow_up_days(dates, d, e)
    assert timing_scores(pred, d, e, [30], f) == timing_scores(pred, d, e, [30])
    assert short_window_notes(dates[keep], f, [30, 60]) == []


def test_the_train_console_fits_an_80_column_terminal_without_cutting_a_figure(
    report: TrainReport,
) -> None:
    import io

    from rich.console import Console

    from ka_ml.reporting.console import print_train_report

    buf = io.StringIO()
    print_train_report(report, Console(file=buf, width=80))
    text = buf.getvalue()
    assert "…" not in text  # rich cuts a cell that does not fit with an ellipsis
    c = report.evaluation.timing["concordance"]
    assert re.search(rf"C-index \(time to next order\)\s*│\s*{c:.3f}\s*│", text)
    # readable: the horizon in days, the split in words, the origin table's columns named
    flat = " ".join(text.split())
    assert "Churn within 90 days: the training procedure" in flat
    assert "{'" not in text and "snapshots every " in flat
    assert "(the test origins included)" in flat
    assert "lowest" in text and "baseline" in text
    # the table's coverage is said with the rows it counts and the completed figure beside it
    cov = report.evaluation.timing["p10_p90_coverage"]
    assert f"p10-p90 coverage {cov:.3f} on the" in flat and "a fit, not a test" in flat


def test_the_split_and_the_origin_table_say_what_each_figure_is() -> None:
    """`snapshots:` was a Python dict whose 'train' range included the test origins, and the
    per-origin table had two columns headed "best baseline" and "best"."""
    import io

    import pandas as pd
    from rich.console import Console

    from ka_ml.modeling.split import describe_line
    from ka_ml.reporting.console import origin_table

    line = describe_line(
        {
            "every": "21 days",
            "train": "2023-10-26..2026-07-30 (49 snapshots)",
            "test": "2026-07-30, 2026-07-09 (2 origins)",
            "purge": "60 days",
        }
    )
    assert line == (
        "snapshots every 21 days; final fit on 2023-10-26..2026-07-30 (49 snapshots) (the "
        "test origins included); test origins 2026-07-30, 2026-07-09 (2 origins); purge 60 days"
    )
    per_origin = pd.DataFrame(
        {
            "origin": ["2026-06-18"] * 3,
            "predictor": ["ka_ml churn model", "BG/NBD", "recency only"],
            "rows": [1806] * 3,
            "roc_auc": [0.887, 0.736, 0.70],
            "brier": [0.119, 0.175, 0.170],
            "mean_p": [0.234] * 3,
            "churn_rate": [0.255] * 3,
        }
    )
    buf = io.StringIO()
    Console(file=buf, width=80).print(origin_table(per_origin))
    text = buf.getvalue()
    heads = [row.split("┃")[1:-1] for row in text.splitlines() if row.startswith("┃")]
    header = [" ".join(" ".join(col).split()) for col in zip(*heads, strict=True)]
    assert "best baseline AUC" in header and "lowest baseline Brier" in header, header
    assert "model AUC" in header and "model Brier" in header
    assert "0.736 BG/NBD" in text and "0.170" in text  # the lowest Brier: another baseline


def test_the_console_says_why_calibration_is_none_when_a_method_won_across_origins() -> None:
    """Seen: 'calibration: none (cross-fitted Brier: none 0.1072, Platt 0.1053)', a gain past
    the rule, with nothing saying the in-period check on held-out accounts disagreed."""
    from types import SimpleNamespace

    from ka_ml.reporting.console import _choices

    def line(cal: dict[str, Any]) -> str:
        ev = SimpleNamespace(family_scores={"lightgbm": 0.8}, family="lightgbm", calibration=cal)
        return _choices(ev)[1]

    briers = {"none": 0.1072, "sigmoid": 0.1053, "isotonic": 0.1060}
    vetoed = line({"method": "none", **briers, "in_period_method": "isotonic"})
    assert vetoed.endswith(
        "Platt 0.1053, isotonic 0.1060; Platt was best across origins, but on held-out "
        "accounts of the same period isotonic did better: no method holds in both, so none)"
    )
    assert "held-out" not in line({"method": "sigmoid", **briers})
    held = {"in_period_none": 0.1101, "in_period_sigmoid": 0.1099, "in_period_isotonic": 0.1090}
    with_figures = line({"method": "none", **briers, **held, "in_period_method": "isotonic"})
    assert with_figures.endswith(  # read: the veto printed no figures, MLflow logged none
        "of the same period isotonic did better (Brier: none 0.11010, Platt 0.10990, isotonic "
        "0.10900): no method holds in both, so none)"
    )
    # a tie at four decimals read "none did better (Brier: none 0.0966, Platt 0.0966, ...)"
    tie = {"in_period_none": 0.096612, "in_period_sigmoid": 0.096631}
    said = line({"method": "none", **briers, **tie, "in_period_method": "none"})
    assert "no calibration did as well (Brier: none 0.09661, Platt 0.09663)" in said


def test_the_console_says_which_rule_kept_none_against_a_lower_brier() -> None:
    """Seen on the demo: 'calibration: none (cross-fitted Brier: none 0.1090, Platt 0.1085,
    isotonic 0.1082)', the lowest Brier passed over with nothing saying why (Platt's gain was
    under the 0.5% that counts, isotonic's steps cost 0.0015 ROC AUC)."""
    from types import SimpleNamespace

    from ka_ml.reporting.console import _choices

    def line(cal: dict[str, Any]) -> str:
        ev = SimpleNamespace(family_scores={"lightgbm": 0.8}, family="lightgbm", calibration=cal)
        return _choices(ev)[1]

    aucs = {"auc_none": 0.87984, "auc_sigmoid": 0.87985, "auc_isotonic": 0.87838}
    said = line(
        {"method": "none", "none": 0.10897, "sigmoid": 0.10854, "isotonic": 0.10817, **aucs}
    )
    assert said.endswith(
        "isotonic 0.1082; Platt 0.39% lower, under the 0.5% that counts; isotonic 0.73% lower, "
        "but its steps tie accounts: ROC AUC 0.8784 against 0.8798 (at most 0.001 may be "
        "lost): so none)"
    )
    # nothing to explain: no method beat none, or one was chosen
    assert line(
        {"method": "none", "none": 0.1, "sigmoid": 0.11, "isotonic": 0.12, **aucs}
    ).endswith("isotonic 0.1200)")
    assert "counts" not in line(
        {"method": "isotonic", "none": 0.11, "sigmoid": 0.1099, "isotonic": 0.1}
    )


def test_the_card_ranks_the_accounts_that_get_a_light_beside_the_best_baseline_there(
    report: TrainReport,
) -> None:
    """Managers read the ranking of the accounts that get a light: lapsed ones, already lost
    and the easy part of any ranking, would flatter it ("99 times in 100")."""
    from ka_ml.training.evaluation import BASELINES, model_card

    ev = report.evaluation
    card = model_card(ev)
    assert card["lit_roc_auc"] == ev.lights["lit_roc_auc"]
    there = {b: ev.lights[f"lit_roc_auc:{b}"] for b in BASELINES}
    assert card["lit_best_baseline"] == max(there, key=there.__getitem__)
    assert card["lit_best_baseline_roc_auc"] == max(there.values())
    assert 0.5 < card["lit_roc_auc"] < 1


def test_how_often_the_churn_label_came_back_is_logged_and_cautioned_on(
    report: TrainReport, client: Any
) -> None:
    """Accounts labelled churn for no order that ordered again within a year: the run logs
    the share, and cautions above mlflow.max_label_return_share (a pause, not a loss)."""
    back = report.evaluation.label_returns
    logged = client.get_run(report.run_id).data.metrics
    if not back:  # a history too short to follow a window for a year after
        assert "label_return_share" not in logged
        return
    assert 0.0 <= back["share"] <= 1.0 and back["rows"] >= 50
    assert logged["label_return_share"] == pytest.approx(back["share"])
    assert ("pauses" in report.evaluation.cautions) == (back["share"] > 0.5)
