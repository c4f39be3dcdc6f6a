"""Drift and outcome monitoring end to end, on the demo world whose outcomes are known.

One module fixture scores two past weeks whose 90-day horizon has passed by the data's
end, backtests them, then scores the last week (which then carries that backtest and
its drift check). The tests read those results; a second scoring run on data with a unit
change in order amounts shows the drift banner.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import isolated, small_config, write_config
from sklearn.metrics import brier_score_loss, roc_auc_score
from typer.testing import CliRunner

from ka_ml.cli import app
from ka_ml.config import Config
from ka_ml.features.labels import churn_labels
from ka_ml.jobs.backtest import BacktestResult, run_backtest
from ka_ml.jobs.score import ScoreResult, run_scoring
from ka_ml.jobs.train import run_training
from ka_ml.modeling import metrics as M
from ka_ml.modeling import registry
from ka_ml.monitoring.backtest import backtest_dir
from ka_ml.scoring import score_history
from ka_ml.scoring.score_history import history_path

PAST = (98, 91)  # days before the data's as-of: both horizons have passed


@dataclass(frozen=True)
class Monitored:
    cfg: Config
    root: Path
    end: pd.Timestamp
    past: list[ScoreResult]
    backtest: BacktestResult
    now: ScoreResult


@pytest.fixture(scope="module")
def monitored(trained: Any, tmp_path_factory: pytest.TempPathFactory) -> Monitored:
    """The weekly runs of a champion trained as of the first of them, in a store of its own:
    its scores of the past weeks are forecasts (the shared champion, trained at the data's
    end, has seen how those weeks turned out)."""
    root = tmp_path_factory.mktemp("monitoring")
    end = trained.history.default_as_of
    first = end - pd.Timedelta(days=max(PAST))
    cfg = small_config(root)
    run_training(trained.history.before(first), cfg, first, progress=lambda s: None)
    cfg = isolated(cfg, root, owner_reports=False)
    past = [
        run_scoring(trained.history, cfg, end - pd.Timedelta(days=k), root / "runs" / f"m{k}")
        for k in PAST
    ]
    bt = run_backtest(trained.history, cfg, end)
    now = run_scoring(trained.history, cfg, end, root / "runs" / "now")
    return Monitored(cfg, root, end, past, bt, now)


# -- the training reference -----------------------------------------------------------


def test_the_champion_carries_its_training_reference_and_mlflow_logged_it(trained: Any) -> None:
    client = registry.connect(trained.cfg)
    name = trained.cfg.mlflow.churn_model_name
    champion = registry.champion_version(client, name)
    assert champion is not None
    model = registry.load_version(name, str(champion.version))
    profile = model.reference_profile_
    assert set(profile["features"]) == set(model.features_)
    assert profile["snapshots"] >= 5 and profile["n_rows"] > 1000
    horizon = pd.Timedelta(days=trained.cfg.labels.horizon_days)  # labelled snapshots only
    assert pd.Timestamp(profile["last_snapshot"]) + horizon <= trained.report.as_of
    assert all(e["natural_psi"] >= 0 for e in profile["features"].values())
    paths = {a.path for a in client.list_artifacts(trained.report.run_id, "monitoring")}
    assert paths == {"monitoring/reference_profile.json"}
    logged = client.list_artifacts(trained.report.run_id, "environment")
    assert [a.path for a in logged] == ["environment/package_versions.json"]


# -- drift ------------------------------------------------------------------------------


def test_scoring_data_like_the_training_data_shows_no_drift_banner(monitored: Monitored) -> None:
    for res in (*monitored.past, monitored.now):
        drift = res.record["drift"]
        assert drift["available"] and not drift["banner"], drift["features"]
        assert len(drift["psi"]) > 30
    record = json.loads((monitored.now.out_dir / "run_record.json").read_text())
    assert record["drift"]["banner"] is False
    assert 'id="drift"' not in (monitored.now.out_dir / "report.html").read_text()


def test_a_unit_change_in_order_amounts_shows_the_drift_banner_naming_spend(
    monitored: Monitored, trained: Any
) -> None:
    h = trained.history
    cents = replace(h, orders=h.orders.assign(amount=h.orders["amount"] * 100))  # cents export
    res = run_scoring(cents, monitored.cfg, monitored.end, monitored.root / "runs" / "cents")
    drift = json.loads((res.out_dir / "run_record.json").read_text())["drift"]
    assert drift["banner"] is True
    named = {f["feature"] for f in drift["features"] if f["level"] == "alert"}
    assert {"spend_365d", "aov_365d"} <= named
    assert not any(f.startswith(("recency", "tickets", "usage")) for f in named)
    html = (res.out_dir / "report.html").read_text()
    assert 'id="drift"' in html and "(spend_365d)" in html and "PSI" in html


# -- outcome monitoring ---------------------------------------------------------------


def _direct(monitored: Monitored, history: Any) -> dict[str, float]:
    """The backtest's headline figures computed here, from the scoring runs' own frames."""
    cfg, end = monitored.cfg, monitored.end
    rows = []
    for res in monitored.past:
        s = res.scores
        d = pd.Timestamp(s["as_of"].iloc[0])
        labels = churn_labels(history, d, cfg, pd.Index(s["account_id"].astype(object)))
        at_risk = (labels["churn_definition"].to_numpy() == "contract") | (
            s["days_since_last_order"].to_numpy() <= cfg.labels.horizon_days
        )
        if not cfg.labels.at_risk_only:  # the default: every scored account
            at_risk = np.ones(len(s), dtype=bool)
        rows.append(s.assign(churn=labels["churn"].to_numpy())[at_risk])
    df = pd.concat(rows, ignore_index=True)
    y, p = df["churn"].to_numpy(), df["churn_probability"].to_numpy()
    red = (df["health"] == "red").to_numpy()
    warm = df["health"].isin(["red", "yellow"]).to_numpy()
    lit = df["health"].notna().to_numpy()  # lapsed accounts have no light: not judged

    # interval: first order on/after the scoring date, within [p10, p90]
    o = history.orders  # purchases: a credit note is no next order
    seen = o[(o["order_date"] < end) & (o["amount"] >= 0)]
    all_rows = pd.concat([r.scores for r in monitored.past], ignore_index=True)
    keys = all_rows[["account_id", "as_of"]]
    later = keys.merge(seen[["account_id", "order_date"]], on="account_id")
    later = later[later["order_date"] >= later["as_of"]]
    nxt = later.groupby(["account_id", "as_of"], as_index=False)["order_date"].min()
    first = keys.merge(nxt, on=["account_id", "as_of"], how="left")["order_date"].to_numpy()
    lo = all_rows["next_purchase_p10_date"].to_numpy()
    dated = all_rows["next_purchase_p90_date"].notna().to_numpy()  # open-ended: counted apart
    hi = all_rows["next_purchase_p90_date"].fillna(pd.Timestamp.max).to_numpy()
    observed = ~pd.isna(first)
    inside = observed & (first >= lo) & (first <= hi)
    known = (observed | (hi < end)) & dated
    return {
        "red_precision": red[y == 1].sum() / red.sum(),
        "red_recall": red[y == 1].sum() / ((y == 1) & lit).sum(),
        "red_yellow_precision": warm[y == 1].sum() / warm.sum(),
        "red_yellow_recall": warm[y == 1].sum() / ((y == 1) & lit).sum(),
        "roc_auc": roc_auc_score(y, p),
        "lit_roc_auc": roc_auc_score(y[lit], p[lit]),
        "brier": brier_score_loss(y, p),
        "ece": M.expected_calibration_error(y, p),
        "n": float(len(y)),
        "interval_hit_rate": inside[known].mean(),
        "p30_brier": brier_score_loss(
            (observed & (first < all_rows["as_of"].to_numpy() + np.timedelta64(30, "D"))),
            all_rows["p_purchase_30d"],
        ),
    }


def test_backtest_figures_match_a_direct_computation(monitored: Monitored, trained: Any) -> None:
    got = monitored.backtest.details["metrics"]
    want = _direct(monitored, trained.history)
    assert got["weeks"] == 2 and monitored.backtest.details["weeks"] == [
        str((monitored.end - pd.Timedelta(days=k)).date()) for k in PAST
    ]
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert 0 < got["red_recall"] < 1 and got["n"] > 400


def test_the_reliability_table_covers_every_labelled_account_week(monitored: Monitored) -> None:
    table = pd.DataFrame(monitored.backtest.details["reliability"])
    assert table["n"].sum() == monitored.backtest.details["metrics"]["n"]
    assert (table["mean_p"].between(0, 1)).all() and table["observed_rate"].between(0, 1).all()


def test_a_healthy_model_gets_no_retrain_recommendation(monitored: Monitored) -> None:
    rec = monitored.backtest.details["recommendation"]
    assert rec == {"retrain": False, "reasons": [], "message": rec["message"], "lights": False}
    assert "No retraining needed" in monitored.backtest.summary["recommendation"]


def test_the_backtest_is_written_beside_the_outputs_and_logged_to_mlflow(
    monitored: Monitored,
) -> None:
    bt = monitored.backtest
    assert bt.path == backtest_dir(monitored.cfg) / f"backtest-{monitored.end.date()}.json"
    saved = json.loads(bt.path.read_text())
    assert saved["summary"] == bt.summary and saved["mlflow_run_id"] == bt.run_id
    assert saved["data"]["fingerprint"] == monitored.now.record["data"]["fingerprint"]
    assert saved["config_hash"] == monitored.cfg.hash() and saved["generated_by"]["pandas"]
    client = registry.connect(monitored.cfg)
    run = client.get_run(bt.run_id)
    assert run.info.run_name == f"backtest-{monitored.end.date()}"
    assert run.data.tags["kind"] == "backtest"
    assert run.data.metrics["backtest_red_recall"] == pytest.approx(
        bt.details["metrics"]["red_recall"]
    )


def test_the_next_scoring_run_carries_the_backtest_into_record_and_report(
    monitored: Monitored,
) -> None:
    assert monitored.now.record["backtest"] == monitored.backtest.summary
    html = (monitored.now.out_dir / "report.html").read_text()
    assert 'id="backtest"' in html and "red or yellow caught" in html
    recall = monitored.backtest.summary["red_recall"]
    assert f"caught {round(recall * 100)}%" in html


def test_the_score_history_keeps_the_purchase_window_probabilities(
    monitored: Monitored,
) -> None:
    stored = score_history.read(history_path(monitored.cfg), windows=True)
    week = monitored.past[0].scores
    got = stored[stored["as_of"] == week["as_of"].iloc[0]].set_index("account_id")
    for k in monitored.cfg.labels.purchase_windows:
        np.testing.assert_allclose(
            got.loc[week["account_id"], f"p_purchase_{k}d"], week[f"p_purchase_{k}d"], atol=1e-9
        )  # stored as JSON with 10 decimals


def test_shuffled_probabilities_in_the_history_trigger_the_retrain_recommendation(
    monitored: Monitored, trained: Any, tmp_path: Path
) -> None:
    cfg = isolated(monitored.cfg, tmp_path, owner_reports=False)
    rng = np.random.default_rng(0)
    for res in monitored.past:  # the same weeks, their (probability, light) pairs shuffled
        s = res.scores
        order = rng.permutation(len(s))
        shuffled = s.assign(
            churn_probability=s["churn_probability"].to_numpy()[order],
            health=s["health"].to_numpy()[order],
        )
        score_history.write_run(history_path(cfg), shuffled)
    bt = run_backtest(trained.history, cfg, monitored.end)
    rec = bt.details["recommendation"]
    assert rec["retrain"] is True
    assert any(r.startswith("ROC AUC") for r in rec["reasons"])
    assert any(r.startswith("red recall") for r in rec["reasons"])
    assert bt.summary["recommendation"].startswith("retrain: ")
    assert bt.details["metrics"]["roc_auc"] < 0.65


def test_the_cli_backtest_prints_the_figures_and_the_verdict(
    monitored: Monitored, demo_dir: Path, tmp_path: Path
) -> None:
    config = write_config(monitored.cfg, tmp_path / "ka_ml.yaml")
    out = tmp_path / "bt.json"
    res = CliRunner().invoke(
        app, ["backtest", "--config", str(config), "--data", str(demo_dir), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert f"backtest as of {monitored.end.date()}: 2 weekly scores" in res.output
    assert "red recall" in res.output and "No retraining needed" in res.output
    assert json.loads(out.read_text())["metrics"] == monitored.backtest.details["metrics"]


def test_the_cli_backtest_without_old_enough_scores_exits_2_with_the_date_it_can_run(
    monitored: Monitored, trained: Any, demo_dir: Path, tmp_path: Path
) -> None:
    cfg = isolated(monitored.cfg, tmp_path, owner_reports=False)
    score_history.write_run(history_path(cfg), monitored.now.scores)  # scored today only
    config = write_config(cfg, tmp_path / "ka_ml.yaml")
    res = CliRunner().invoke(app, ["backtest", "--config", str(config), "--data", str(demo_dir)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "No weekly score in the score history is old enough" in text
    ready = (monitored.end + pd.Timedelta(days=90)).date()
    assert f"can be backtested from {ready}" in text
    assert not backtest_dir(cfg).exists()


# -- provenance ---------------------------------------------------------------------------


def test_every_output_records_the_data_config_models_and_packages_behind_it(
    monitored: Monitored, trained: Any
) -> None:
    import platform
    from importlib.metadata import version

    from openpyxl import load_workbook

    out, cfg = monitored.now.out_dir, monitored.cfg
    rec = json.loads((out / "run_record.json").read_text())
    fingerprint = trained.history.fingerprint()
    assert rec["data"]["fingerprint"] == fingerprint and rec["config_hash"] == cfg.hash()
    client = registry.connect(cfg)
    scores = pd.read_parquet(out / "scores.parquet")
    for kind in ("churn", "timing"):
        name = getattr(cfg.mlflow, f"{kind}_model_name")
        mv = registry.champion_version(client, name)
        assert mv is not None
        champion = str(mv.version)
        assert rec["models"][kind] == f"{name} v{champion}"
        assert set(scores[f"{kind}_model_version"]) == {champion}
    generated = rec["generated_by"]
    assert generated["python"] == platform.python_version()
    for pkg in ("pandas", "numpy", "lightgbm", "scikit-learn", "mlflow", "shap"):
        assert generated[pkg] == version(pkg), pkg
    html = (out / "report.html").read_text()
    assert f"Data fingerprint {fingerprint}" in html and f"lightgbm {version('lightgbm')}" in html
    cells = {
        str(c.value)
        for ws in load_workbook(out / "scores.xlsx", read_only=True).worksheets
        for row in ws.iter_rows()
        for c in row
        if c.value is not None
    }
    assert fingerprint in cells


def test_the_calibration_ceiling_counts_only_an_error_beyond_chance() -> None:
    """60 account-weeks: a perfectly calibrated model shows an ECE near 0.15 by chance, so
    0.12 against a 0.10 ceiling is no reason to retrain; 0.20 is."""
    from ka_ml.config import MonitoringConfig
    from ka_ml.monitoring.backtest import recommendation

    cfg = MonitoringConfig()
    base = {"n": 60.0, "roc_auc": 0.8, "ece_chance": 0.15}
    assert recommendation({**base, "ece": 0.12}, cfg) == (False, [])
    assert recommendation({**base, "ece": 0.20}, cfg) == (
        True,
        ["calibration error 0.200 above the ceiling 0.100 and beyond chance (0.150 on these rows)"],
    )
    no_chance = {k: v for k, v in base.items() if k != "ece_chance"}
    assert recommendation({**no_chance, "ece": 0.12}, cfg)[0]  # older records: as before


def test_the_lights_figures_carry_their_counts_and_leave_empty_denominators_unjudged() -> None:
    """Lapsed accounts (no light) are not judged; a week with no red account or no churner
    has no red precision or recall (NaN, which the retrain verdict skips), not a 0 that
    would read as a collapse."""
    from ka_ml.config import MonitoringConfig
    from ka_ml.monitoring.backtest import light_metrics, recommendation

    health = pd.Series(["red", "red", "yellow", "green", "green", None], dtype="string")
    m = light_metrics(health, np.array([1, 0, 1, 0, 0, 1]))
    assert (m["red_count"], m["red_churned"], m["red_precision"]) == (2.0, 1.0, 0.5)
    assert m["red_recall"] == 0.5 and m["red_yellow_recall"] == 1.0  # the lapsed churner: no light
    assert m["red_share"] == 0.4 and m["red_yellow_count"] == 3.0

    quiet = light_metrics(pd.Series(["green", "yellow"], dtype="string"), np.array([0, 0]))
    assert quiet["red_count"] == 0.0
    assert np.isnan(quiet["red_precision"]) and np.isnan(quiet["red_recall"])
    assert quiet["red_yellow_precision"] == 0.0  # one yellow, no churner: a real 0
    assert recommendation({"n": 1e6, **quiet}, MonitoringConfig()) == (False, [])


def test_scores_of_a_week_before_the_champion_was_trained_say_they_look_back_and_the_backtest_leaves_them_out(
    monitored: Monitored, trained: Any, tmp_path: Path
) -> None:
    """The shared champion was trained at the data's end: its scores of a week 98 days
    earlier are in-sample. The run says so (record, report banner); the backtest refuses to
    judge forecasts on them. The monitoring champion's own weeks are forecasts."""
    from ka_ml.errors import KaMlError

    assert not any(r.record.get("in_sample") for r in (*monitored.past, monitored.now))
    cfg = isolated(trained.cfg, tmp_path, owner_reports=False)
    week = monitored.end - pd.Timedelta(days=max(PAST))
    res = run_scoring(trained.history, cfg, week, tmp_path / "look-back")
    note = res.record["in_sample"]
    assert note["churn_trained_as_of"] == str(monitored.end.date())
    assert note["message"].startswith("These scores look back, they do not forecast")
    assert (
        f"trained on data up to {monitored.end.date()}, after this date ({week.date()})"
        in (note["message"])
    )
    html = (res.out_dir / "report.html").read_text()
    assert 'id="in-sample"' in html and "Not a forecast." in html
    with pytest.raises(KaMlError, match="look back, they do not forecast") as err:
        run_backtest(trained.history, cfg, monitored.end)
    assert str(week.date()) in str(err.value)
    assert not backtest_dir(cfg).exists()


def test_a_backtest_past_the_end_of_the_data_judges_only_weeks_the_data_covers(
    monitored: Monitored, trained: Any, tmp_path: Path
) -> None:
    """A stale export: the data ends at `end`, the backtest runs 100 days later. The week
    scored at `end` is due by the as-of but its horizon lies wholly past the data: left
    out and listed, not read as 100% churn; the two covered weeks give the same figures
    as the backtest at the data's end."""
    cfg = isolated(monitored.cfg, tmp_path, owner_reports=False)
    for res in (*monitored.past, monitored.now):
        score_history.write_run(history_path(cfg), res.scores)
    late = monitored.end + pd.Timedelta(days=100)
    bt = run_backtest(trained.history, cfg, late)
    assert bt.details["weeks"] == monitored.backtest.details["weeks"]
    assert bt.details["left_out_beyond_data_weeks"] == [str(monitored.end.date())]
    last = (monitored.end - pd.Timedelta(days=1)).date()
    assert (
        f"last order is on {last} (100 days before the as-of"
        in (bt.details["left_out_beyond_data_reason"])
    )
    assert bt.details["data_end"] == str(monitored.end.date())
    assert bt.details["metrics"] == monitored.backtest.details["metrics"]
    assert bt.summary["weeks_beyond_data"] == 1


def test_a_backtest_with_no_week_inside_the_data_refuses_naming_the_last_data_date(
    monitored: Monitored, demo_dir: Path, tmp_path: Path
) -> None:
    cfg = isolated(monitored.cfg, tmp_path, owner_reports=False)
    score_history.write_run(history_path(cfg), monitored.now.scores)  # scored at the data's end
    config = write_config(cfg, tmp_path / "ka_ml.yaml")
    late = monitored.end + pd.Timedelta(days=100)
    res = CliRunner().invoke(
        app,
        ["backtest", "--config", str(config), "--data", str(demo_dir), "--as-of", str(late.date())],
    )
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    last = (monitored.end - pd.Timedelta(days=1)).date()
    assert f"No stored week can be judged as of {late.date()}" in text
    assert f"the data's last order is on {last}" in text and "would count as churn" in text
    ready = (monitored.end + pd.Timedelta(days=89)).date()
    assert f"orders up to {ready} let the week of {monitored.end.date()} be judged" in text
    assert not backtest_dir(cfg).exists()


def test_the_recall_ceiling_of_budget_lights_is_counted_week_by_week() -> None:
    """Week 1: 1 red, 3 churners (at most 1 caught); week 2: 2 red, 1 churner (1)."""
    from ka_ml.monitoring.backtest import light_metrics

    health = pd.Series(["red", "green", "green", "red", "red", "yellow"], dtype="string")
    churn = np.array([1, 1, 1, 0, 1, 0])
    weeks = np.array(["w1"] * 3 + ["w2"] * 3)
    m = light_metrics(health, churn, weeks)
    assert m["churners"] == 4.0 and m["red_recall"] == 0.5
    assert m["red_recall_ceiling"] == 0.5  # (1 + 1) / 4
    assert m["red_yellow_recall_ceiling"] == 0.5  # yellow adds no churner-week: (1 + 1) / 4
    assert "red_recall_ceiling" not in light_metrics(health, churn)  # threshold lights


def test_a_red_budget_smaller_than_the_churners_is_no_reason_to_retrain() -> None:
    """u3's key300 backtest: 16 red accounts among 55 churners cap red recall at 0.291, so
    the 0.30 floor could not be met by a perfect ranking; 13 of 16 red churned (0.236)."""
    from ka_ml.config import MonitoringConfig
    from ka_ml.monitoring.backtest import ceiling_notes, recommendation

    cfg = MonitoringConfig()
    good = {
        "n": 300.0,
        "roc_auc": 0.834,
        "churners": 55.0,
        "red_count": 16.0,
        "red_recall": 13 / 55,
        "red_recall_ceiling": 16 / 55,
        "red_yellow_count": 69.0,
        "red_yellow_recall": 34 / 55,
        "red_yellow_recall_ceiling": 1.0,
    }
    assert recommendation(good, cfg) == (False, [])
    poor = {**good, "red_recall": 5 / 55}  # 5 of the 16 red churned: worse than the budget allows
    assert recommendation(poor, cfg) == (
        True,
        [
            "red recall 0.091 below the floor 0.175 (0.6 of the ceiling 0.291: "
            "16 red accounts for 55 churners)"
        ],
    )
    assert ceiling_notes(good, cfg) == [
        "Red recall 0.236; the light budget caps it at 0.291 (16 red accounts for 55 "
        "churners: even a perfect ranking would miss the rest)."
    ]
    no_ceiling = {k: v for k, v in good.items() if not k.endswith("_ceiling")}
    assert recommendation(no_ceiling, cfg)[1] == ["red recall 0.236 below the floor 0.300"]


def test_the_ranking_alone_with_the_lights_counts_tells_the_rules_from_the_model() -> None:
    """A distributor's backtest: "Retrain" for a red recall of 0.214 beside a ROC AUC of
    0.903; by probability alone, as many reds a week would have caught 0.309: the light
    rules, not the model, lost the recall."""
    from ka_ml.config import MonitoringConfig
    from ka_ml.monitoring.backtest import lights_not_model, recall_by_rank, recommendation

    # two weeks; the highest probability of each week churned, but a rule lit another red
    health = pd.Series(["green", "red", "yellow", "green", "red", "green", pd.NA], dtype="string")
    y = np.array([1, 0, 1, 1, 1, 0, 1])
    p = np.array([0.9, 0.2, 0.5, 0.8, 0.7, 0.1, 0.99])  # the last row is lapsed: no light
    weeks = np.array(["w1"] * 3 + ["w2"] * 4)
    got = recall_by_rank(health, y, p, weeks)
    # w1: 1 red -> top 1 = 0.9 (churned); w2: 1 red -> top 1 = 0.8 (churned): 2 of 4
    assert got["red_recall_by_rank"] == 0.5
    # red or yellow: w1 2 -> 0.9, 0.5 (both churned); w2 1 -> 0.8: 3 of 4
    assert got["red_yellow_recall_by_rank"] == 0.75
    assert recall_by_rank(health, np.zeros(7), p, weeks) == {}

    cfg = MonitoringConfig()
    seen = {
        "n": 14_755.0, "roc_auc": 0.903, "churners": 2726.0, "red_count": 1262.0,
        "red_recall": 0.214, "red_recall_ceiling": 0.463, "red_yellow_recall": 0.329,
        "red_recall_by_rank": 0.309, "red_yellow_recall_by_rank": 0.606,
    }  # fmt: skip
    retrain, reasons = recommendation(seen, cfg)
    assert retrain and len(reasons) == 2
    said = lights_not_model(seen, reasons, cfg)
    assert said.startswith("Check the lights before retraining: red recall 0.214 below")
    assert "would have reached red recall 0.309 and red+yellow recall 0.606" in said
    assert "health.quiet_spells_min" in said and said.endswith("a retrain would not raise them.")
    # the ranking's own head misses too: the model's doing
    weak = {**seen, "red_recall_by_rank": 0.22}
    assert lights_not_model(weak, recommendation(weak, cfg)[1], cfg) == ""
    # a failed ROC AUC beside the recalls: retrain
    shuffled = {**seen, "roc_auc": 0.55}
    assert lights_not_model(shuffled, recommendation(shuffled, cfg)[1], cfg) == ""


def test_a_handful_of_churners_is_no_reason_to_retrain() -> None:
    """A user's 140 accounts: 'Retrain: red+yellow recall 0.000 below the floor 0.500' on 3
    churners, while the same backtest measured ROC AUC 0.896."""
    from ka_ml.config import MonitoringConfig
    from ka_ml.monitoring.backtest import recommendation, too_few_churners

    cfg = MonitoringConfig()
    three = {"n": 400.0, "churners": 3.0, "red_recall": 0.0, "red_yellow_recall": 0.0}
    assert recommendation({**three, "roc_auc": 0.52}, cfg) == (False, [])
    assert too_few_churners(three, cfg) == (
        "Only 3 churners (fewer than monitoring.min_backtest_churners 10): the recalls and the "
        "ROC AUC are not judged yet."
    )
    # what does not rest on churners is still judged
    assert recommendation({**three, "interval_hit_rate": 0.2}, cfg)[0]
    ten = {**three, "churners": 10.0}
    assert too_few_churners(ten, cfg) == ""
    assert recommendation(ten, cfg) == (
        True,
        ["red recall 0.000 below the floor 0.300", "red+yellow recall 0.000 below the floor 0.500"],
    )


def test_an_open_ended_window_is_no_interval_hit_and_is_counted_apart() -> None:
    """u3: 286 of 300 windows had no p90 date; counting an order after p10 in them as a hit
    made the hit rate (0.948) a rate of accounts that ordered."""
    from ka_ml.monitoring.backtest import summary, timing_metrics

    d0 = pd.Timestamp("2026-01-05")
    days = pd.to_timedelta
    frame = pd.DataFrame(
        {
            "as_of": [d0] * 5,
            # dated: inside, late (a miss) | open-ended: after p10, before p10, no order yet
            "days_to_next": [20.0, 80.0, 200.0, 3.0, 90.0],
            "next_order_observed": [True, True, True, True, False],
            "next_purchase_p10_date": d0 + days([10, 10, 30, 30, 30], unit="D"),
            "next_purchase_p90_date": [d0 + days(40, unit="D"), d0 + days(40, unit="D")]
            + [pd.NaT] * 3,
        }
    )
    m = timing_metrics(frame, windows=[])
    assert (m["interval_hit_rate"], m["interval_n"]) == (0.5, 2.0)
    assert (m["interval_windows"], m["interval_open"], m["interval_open_ordered"]) == (5, 3, 2)
    assert m["interval_open_not_early"] == 0.5
    flat = summary(
        {
            "as_of": "2026-05-01",
            "metrics": {**m, "n": 5.0, "weeks": 1.0},
            "recommendation": {"retrain": False, "reasons": [], "message": "ok"},
        }
    )
    assert (flat["interval_n"], flat["interval_windows"], flat["interval_open"]) == (2, 5, 3)


def test_weeks_still_waiting_for_their_horizon_are_listed_with_the_day_they_can_be_judged() -> None:
    """User test: `ka-ml backtest` said "1 weekly scores" after twelve weekly runs, without a
    word on the eleven whose 90-day horizon had not passed."""
    from ka_ml.monitoring.backtest import waiting_weeks

    dates = pd.Series(pd.to_datetime(["2026-09-01", "2026-09-08", "2026-09-08", "2026-09-15"]))
    got = waiting_weeks(dates, pd.Timestamp("2026-12-01"), 90)
    assert got == [["2026-09-08", "2026-12-07"], ["2026-09-15", "2026-12-14"]]
    assert waiting_weeks(dates, pd.Timestamp("2027-01-01"), 90) == []


def test_the_backtest_repeats_trains_pauses_caution_for_the_models_that_scored() -> None:
    """A user's backtest printed red precision 0.643 and "No retraining needed" where 4 of
    that week's 28 reds were really lost: train had said 76% of its churn labels were
    pauses, the backtest did not."""
    from types import SimpleNamespace

    from mlflow.exceptions import MlflowException

    from ka_ml.jobs.backtest import pauses_caution

    shares = {"1": 0.76, "2": 0.30}

    class Client:
        def get_model_version(self, name: str, version: str) -> Any:
            if version == "9":
                raise MlflowException("gone")
            return SimpleNamespace(run_id=f"run{version}")

        def get_run(self, run_id: str) -> Any:
            share = shares[run_id.removeprefix("run")]
            metrics = {"label_return_share": share, "label_return_days": 365.0}
            return SimpleNamespace(data=SimpleNamespace(metrics=metrics))

    cfg = Config()
    weeks = pd.DataFrame({"churn_model_version": ["2", "1", "1", "9"]})
    said = pauses_caution(weeks, Client(), cfg)
    assert said.startswith(
        "the churn model that scored these weeks (version 1) was trained where 76% of the "
        "account-snapshots labelled churn (no order within 90 days) ordered again within 365 "
        "days: these figures say how well a 90-day silence was foreseen"
    )
    # under the limit (mlflow.max_label_return_share 0.5), a version gone, or no limit: none
    assert pauses_caution(weeks.iloc[[0, 3]], Client(), cfg) == ""
    off = cfg.model_copy(
        update={"mlflow": cfg.mlflow.model_copy(update={"max_label_return_share": None})}
    )
    assert pauses_caution(weeks, Client(), off) == ""


def test_the_lights_are_also_judged_per_churn_definition_when_a_red_list_mixes_two() -> None:
    """Seen on a software vendor's weeks: reds judged by their contract 93% right, reds
    judged by 'no order' (services buyers between projects) 59% by the label; the pooled
    red precision 0.717 read as one healthy figure and 'No retraining needed'."""
    from ka_ml.monitoring.backtest import lights_by_definition
    from ka_ml.reporting.console import lights_split_line

    weeks = pd.to_datetime(["2026-08-03"] * 6 + ["2026-08-10"] * 6)
    frame = pd.DataFrame(
        {
            "as_of": weeks,
            "health": pd.Series(
                ["red", "red", "green", "red", "red", "yellow"] * 2, dtype="string"
            ),
            "churn": [1, 1, 0, 1, 0, 0] * 2,
            "churn_definition": ["contract"] * 3
            + ["no_order"] * 3
            + ["contract"] * 3
            + ["no_order"] * 3,
        }
    )
    split = lights_by_definition(frame)
    assert split["contract"]["red_precision"] == 1.0
    assert split["no_order"]["red_precision"] == 0.5
    assert split["contract"]["red_per_week"] == 2.0 and split["no_order"]["account_weeks"] == 6
    assert lights_split_line(split) == (
        "lights by churn definition: contract: red precision 1.00 (2.0 red a week), red recall "
        "1.00; no_order: red precision 0.50 (2.0 red a week), red recall 1.00"
    )
    assert lights_by_definition(frame[frame["churn_definition"] == "contract"]) == {}
    # written to JSON a missing precision is None: said n/a
    assert "red precision n/a" in lights_split_line(
        {"no_order": {"red_precision": None, "red_per_week": 0.0, "red_recall": None}}
    )


def test_the_backtest_says_which_correct_reds_were_lost_before_they_were_lit() -> None:
    """A lab distributor's backtest: red precision 0.633 where all 19 hits had been silent
    for months when lit, and none of the reds was lost in the next 90 days."""
    from ka_ml.monitoring.backtest import reds_already_silent

    frame = pd.DataFrame(
        {
            "health": pd.Series(["red"] * 5 + ["green"] * 3, dtype="string"),
            "churn": [1, 1, 1, 0, 1, 1, 0, 0],
            # the first three reds silent past the horizon, no contract: lost already
            "at_risk": [False, False, False, True, True, False, True, True],
        }
    )
    got = reds_already_silent(frame, 90)
    assert got == {
        "red_count": 5.0,
        "silent_count": 3.0,
        "horizon_days": 90.0,
        "red_precision_others": 0.5,
        "others": 2.0,
    }
    assert reds_already_silent(frame.assign(at_risk=True), 90) == {}


def test_the_backtest_counts_apart_reds_whose_silence_was_under_way_when_lit() -> None:
    """A software vendor: red precision 0.87 where 99 of 131 reds were monthly subscribers
    silent 30-89 days after cancelling (the silent-only caution named 20): the reds still
    within their rhythm are the list's early warnings, and their precision is said."""
    from ka_ml.monitoring.backtest import reds_by_silence
    from ka_ml.reporting.console import reds_silence_line

    frame = pd.DataFrame(
        {
            "health": pd.Series(["red"] * 7 + ["green"] * 2, dtype="string"),
            "churn": [1, 1, 1, 1, 0, 1, 0, 1, 0],
            # silent 120 days, no contract: lost already
            "at_risk": [False] + [True] * 8,
            "silence_days": [120.0, 60, 45, 20, 10, 70, np.nan, 80, 5],
            "typical_gap_days": [30.0, 30, 30, 30, 30, 30, np.nan, 10, 30],
            # the 70-day silence under a running contract is not the label coming true
            "churn_definition": ["no_order"] * 5 + ["contract"] + ["no_order"] * 3,
        }
    )
    got = reds_by_silence(frame, 90)
    assert got["red_count"] == 7 and got["horizon_days"] == 90
    assert (got["silent_count"], got["silent_precision"]) == (1, 1.0)
    # 60 and 45 days past a 30-day gap, judged by 'no order'
    assert (got["late_count"], got["late_precision"]) == (2, 1.0)
    # within the gap (20, 10), under a contract, and no gap yet (one order day)
    assert (got["early_count"], got["early_precision"]) == (4, 0.5)
    assert reds_silence_line(got) == (
        "of the 7 red account-weeks, 1 silent 90 days or more with no contract running "
        "(precision 1.00) and 2 past their typical gap between orders, judged by 'no order' "
        "(precision 1.00): their silence was under way when lit, and a red there counts as "
        "correct when it simply went on; red precision of the 4 still within their rhythm, "
        "the list's early warnings: 0.50"
    )
    # every red within its rhythm: nothing to say
    calm = frame.assign(at_risk=True, silence_days=1.0)
    assert reds_by_silence(calm, 90) == {} and reds_silence_line({}) == ""
    # an older frame without the gaps: nothing claimed
    assert reds_by_silence(frame.drop(columns="typical_gap_days"), 90) == {}
    # every red under way: the line says the list foresaw nothing
    late = reds_by_silence(frame.iloc[:3], 90)
    assert late["early_count"] == 0
    assert reds_silence_line(late).endswith(
        "none was still within its rhythm: the list foresaw nothing not already under way"
    )


def test_the_backtests_silences_are_the_scorers_own_at_each_week(
    monitored: Monitored, trained: Any
) -> None:
    """The gap the backtest splits the reds by is the one the scorer's overdue rule read
    that week (the feature table as of the week), and the report says the split."""
    from ka_ml.features.build import build_features
    from ka_ml.monitoring.backtest import outcomes

    cfg, end = monitored.cfg, monitored.end
    stored = score_history.read(history_path(cfg))
    week = pd.Timestamp(monitored.backtest.details["weeks"][0])
    frame = outcomes(trained.history, stored[stored["as_of"] == week], cfg, end)
    feats = build_features(trained.history, week, cfg).set_index("account_id")
    ids = frame["account_id"].astype(object)
    np.testing.assert_allclose(
        frame["typical_gap_days"], feats.loc[ids, "gap_typical_days"].to_numpy(float)
    )
    np.testing.assert_allclose(
        frame["silence_days"], feats.loc[ids, "recency_days"].to_numpy(float)
    )
    split = monitored.backtest.details["reds_by_silence"]
    summary = monitored.backtest.summary
    if split:
        assert summary["red_early_count"] + summary["red_late_count"] + summary[
            "red_silent_count"
        ] == int(split["red_count"])


def test_the_backtest_gives_each_churn_model_version_its_own_figures_on_its_own_weeks() -> None:
    """A software vendor retraining monthly: every retrain was promoted without a comparison
    (its champion had learnt the test origins' outcomes), so whether v5 did better than v4
    could only be known afterwards, from the weeks each scored."""
    from sklearn.metrics import roc_auc_score

    from ka_ml.monitoring.backtest import by_model_version
    from ka_ml.reporting.console import versions_lines

    rng = np.random.default_rng(3)
    n = 60
    weeks = pd.to_datetime(["2026-08-03"] * n + ["2026-08-10"] * n + ["2026-09-07"] * n)
    churn = rng.integers(0, 2, 3 * n)
    p = np.clip(churn * 0.3 + rng.uniform(0, 0.7, 3 * n), 0, 1)
    frame = pd.DataFrame(
        {
            "as_of": weeks,
            "churn_model_version": ["9"] * (2 * n) + ["10"] * n,
            "churn_probability": p,
            "churn": churn,
            "health": pd.Series(np.where(p > 0.6, "red", "green"), dtype="string"),
        }
    )
    split = by_model_version(frame)
    assert list(split) == ["9", "10"]  # by version number, not as text
    nine = split["9"]
    assert (nine["first_week"], nine["last_week"], nine["weeks"], nine["n"]) == (
        "2026-08-03",
        "2026-08-10",
        2.0,
        2.0 * n,
    )
    assert nine["roc_auc"] == pytest.approx(roc_auc_score(churn[: 2 * n], p[: 2 * n]))
    ten = split["10"]
    red = p[2 * n :] > 0.6
    assert ten["red_precision"] == pytest.approx(churn[2 * n :][red].mean())
    assert ten["base_rate"] == pytest.approx(churn[2 * n :].mean())
    lines = versions_lines(split)
    assert lines[1].startswith("  v9: 2 weeks (2026-08-03..2026-08-10), 120 account-weeks")
    assert lines[2].startswith("  v10: 1 week (2026-09-07), 60 account-weeks")
    assert f"ROC AUC {ten['roc_auc']:.3f}" in lines[2]
    # one version scored every week: nothing to split
    assert by_model_version(frame[frame["churn_model_version"] == "9"]) == {}
    assert versions_lines({}) == []


def test_train_reports_the_origins_red_precision_per_churn_definition() -> None:
    from ka_ml.training.evaluation import origin_lights

    n = 40
    test = pd.DataFrame(
        {
            "as_of": pd.Timestamp("2026-05-01"),
            "churn_definition": ["contract"] * 20 + ["no_order"] * 20,
        }
    )
    p = np.r_[np.linspace(0.9, 0.01, 20), np.linspace(0.95, 0.02, 20)]
    y = np.r_[[1, 1, 1] + [0] * 17, [1] + [0] * 19]  # the no-order reds mostly pause
    got = origin_lights(test, y, p, Config(), lifecycle=np.array(["active"] * n))
    assert got["red_count"] == got["contract_red_count"] + got["no_order_red_count"] > 0
    assert got["contract_red_precision"] > got["no_order_red_precision"]
    one = origin_lights(
        test.iloc[:20], y[:20], p[:20], Config(), lifecycle=np.array(["active"] * 20)
    )
    assert "no_order_red_precision" not in one and "contract_red_precision" not in one


def test_the_backtests_gaps_are_each_weeks_own_across_several_passes() -> None:
    """Six weeks are read four feature tables at a time: every week's typical gap is the
    one a feature table as of that week holds."""
    from ka_ml.config import Config
    from ka_ml.data.history import History
    from ka_ml.features.build import build_features
    from ka_ml.monitoring.backtest import GAP_WEEKS_PER_PASS, typical_gaps

    days = pd.to_datetime(
        ["2025-01-02", "2025-01-20", "2025-02-03", "2025-03-01", "2025-03-05", "2025-04-10"]
    )
    orders = pd.DataFrame(
        {
            "account_id": ["A"] * 6 + ["B"] * 3,
            "order_date": [*days, *days[[0, 2, 5]]],
            "amount": 10.0,
        }
    )
    history = History(orders=orders, accounts=pd.DataFrame({"account_id": ["A", "B"]}))
    cfg = Config()
    weeks = list(pd.date_range("2025-02-10", periods=GAP_WEEKS_PER_PASS + 2, freq="14D"))
    got = typical_gaps(history, weeks, cfg)
    assert list(got) == weeks
    for d in weeks:
        want = build_features(history, d, cfg).set_index("account_id")["gap_typical_days"]
        assert got[d].sort_index().to_dict() == pytest.approx(
            want.astype(float).sort_index().to_dict(), nan_ok=True
        )
    assert got[weeks[-1]]["A"] != got[weeks[0]]["A"]  # the gaps move with the weeks
