"""`ka-ml score` end to end on the champion models: the contract, atomic reruns, failures, CLI.

Scoring runs take a second or two each, so one module fixture scores the week before and
the as-of date (twice: the idempotent rerun) and the tests read its results.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import isolated, small_config, write_config
from typer.testing import CliRunner

from ka_ml.cli import app
from ka_ml.config import Config
from ka_ml.errors import KaMlError, NoChampionError
from ka_ml.io import atomic_write, recover_staged, staged_dir
from ka_ml.jobs.score import ScoreResult, exclusive_lock, run_scoring
from ka_ml.modeling import registry
from ka_ml.scoring import score_history
from ka_ml.scoring.score_history import history_path

OUTPUT_FILES = {
    "scores.parquet",
    "scores.csv",
    "report.html",
    "scores.xlsx",
    "run_record.json",
    "owners",
}
WINDOWS = (30, 60, 90)
REASON_COLUMNS = [f"reason_{k}{s}" for k in (1, 2, 3) for s in ("", "_feature", "_shap")]
CONTRACT_COLUMNS = [
    "account_id", "as_of", "churn_probability", "health",
    *[f"p_purchase_{k}d" for k in WINDOWS],
    "expected_next_purchase_date", "next_purchase_p10_date", "next_purchase_p90_date",
    *REASON_COLUMNS,
    "abc_tier", "revenue_share", "dependency_index", "churn_model_version", "timing_model_version",
    "lifecycle", "low_confidence", "churn_definition", "dependency_alert",
    "scorecard_usage", "scorecard_complaints", "scorecard_renewal_intent",
    "scorecard_purchase_rhythm",
]  # fmt: skip


@dataclass(frozen=True)
class Weekly:
    cfg: Config
    root: Path
    as_of: pd.Timestamp
    prev: ScoreResult
    now: ScoreResult
    rerun: ScoreResult
    history_after_first: pd.DataFrame
    history_after_rerun: pd.DataFrame


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def leftovers(parent: Path) -> list[str]:
    return sorted(
        p.name for p in parent.iterdir() if ".staging." in p.name or p.name.endswith(".old")
    )


@pytest.fixture(scope="module")
def weekly(trained, tmp_path_factory: pytest.TempPathFactory) -> Weekly:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("score")
    cfg = isolated(trained.cfg, root)
    as_of = trained.history.default_as_of
    prev = run_scoring(trained.history, cfg, as_of - pd.Timedelta(days=7), root / "runs" / "prev")
    now = run_scoring(trained.history, cfg, as_of, root / "runs" / "now")
    first = score_history.read(history_path(cfg))
    rerun = run_scoring(trained.history, cfg, as_of, root / "runs" / "now")
    again = score_history.read(history_path(cfg))
    return Weekly(cfg, root, as_of, prev, now, rerun, first, again)


@pytest.fixture(scope="module")
def empty_cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """A config whose MLflow store holds no model at all."""
    return small_config(tmp_path_factory.mktemp("empty_store"))


# -- outputs and the contract ----------------------------------------------------------


def test_scoring_writes_every_output_file_and_nothing_else(weekly: Weekly) -> None:
    """Seen besides: a 0-byte `.2026-12-01.lock` beside every week's outputs folder."""
    assert {p.name for p in weekly.now.out_dir.iterdir()} == OUTPUT_FILES
    assert leftovers(weekly.now.out_dir.parent) == []
    assert sorted(p.name for p in weekly.now.out_dir.parent.iterdir()) == ["now", "prev"]


def test_the_scores_table_has_every_contract_column_with_its_type(weekly: Weekly) -> None:
    s = pd.read_parquet(weekly.now.out_dir / "scores.parquet")
    assert set(CONTRACT_COLUMNS) <= set(s.columns)
    assert len(s) == weekly.now.record["n_accounts"] > 100
    assert pd.api.types.is_string_dtype(s["account_id"]) and s["account_id"].is_unique
    assert pd.api.types.is_datetime64_any_dtype(s["as_of"]) and (s["as_of"] == weekly.as_of).all()
    p = s["churn_probability"]
    assert pd.api.types.is_float_dtype(p) and p.between(0, 1).all()
    lapsed = s["lifecycle"].eq("lapsed")
    assert set(s["lifecycle"]) <= {"new", "active", "lapsed"} and lapsed.any()
    assert set(s.loc[~lapsed, "health"]) <= {"red", "yellow", "green"}
    assert s.loc[lapsed, "health"].isna().all()  # lost already: no light
    assert (s.loc[lapsed, "revenue_at_risk"] == 0).all()
    assert s["low_confidence"].dtype == bool
    assert (s["low_confidence"] == s["lifecycle"].eq("new")).all()
    assert set(s["churn_definition"]) <= {"contract", "no_order"}
    assert s["dependency_alert"].dtype == bool
    assert (s["dependency_alert"] == (s["dependency_index"] > 0.4)).all()
    for m in ("usage", "complaints", "renewal_intent", "purchase_rhythm"):
        assert set(s[f"scorecard_{m}"].fillna("")) <= {"red", "yellow", "green", ""}
    assert set(s["abc_tier"].astype(str)) <= {"A", "B", "C"}
    assert s["revenue_share"].between(0, 1).all() and 0 < s["revenue_share"].sum() <= 1 + 1e-9
    assert (
        pd.api.types.is_float_dtype(s["dependency_index"])
        and (s["dependency_index"].dropna() >= 0).all()
    )


def test_purchase_probabilities_are_probabilities_non_decreasing_in_the_window(
    weekly: Weekly,
) -> None:
    s = weekly.now.scores
    pp = s[[f"p_purchase_{k}d" for k in WINDOWS]].to_numpy(float)
    assert np.isfinite(pp).all() and (pp >= 0).all() and (pp <= 1).all()
    assert (np.diff(pp, axis=1) >= -1e-12).all()


def test_next_purchase_dates_are_ordered_and_after_the_as_of(weekly: Weekly) -> None:
    s = weekly.now.scores
    cols = ["next_purchase_p10_date", "expected_next_purchase_date", "next_purchase_p90_date"]
    for c in cols:
        assert pd.api.types.is_datetime64_any_dtype(s[c])
        assert (s[c].dropna() >= weekly.as_of).all()
    assert s["expected_next_purchase_date"].notna().mean() > 0.5
    lo, mid, hi = (s[c] for c in cols)
    assert (
        not (lo > mid).any() and not (mid > hi).any() and not (lo > hi).any()
    )  # NaT compares False


def test_each_account_has_three_reasons_with_feature_and_shap(weekly: Weekly) -> None:
    s = weekly.now.scores
    for k in (1, 2, 3):
        assert pd.api.types.is_string_dtype(s[f"reason_{k}"])
        assert (s[f"reason_{k}"].str.len() > 0).all()
        assert (s[f"reason_{k}_feature"].str.len() > 0).all()
        shap_k = s[f"reason_{k}_shap"]
        assert pd.api.types.is_float_dtype(shap_k) and np.isfinite(shap_k).all()


def test_model_versions_are_the_champions(weekly: Weekly) -> None:
    client = registry.connect(weekly.cfg)
    churn = registry.champion_version(client, weekly.cfg.mlflow.churn_model_name)
    timing = registry.champion_version(client, weekly.cfg.mlflow.timing_model_name)
    assert churn is not None and timing is not None
    s = weekly.now.scores
    assert set(s["churn_model_version"]) == {str(churn.version)}
    assert set(s["timing_model_version"]) == {str(timing.version)}


def test_the_csv_holds_the_same_scores_with_plain_dates(weekly: Weekly) -> None:
    csv = pd.read_csv(weekly.now.out_dir / "scores.csv", dtype={"account_id": str})
    s = weekly.now.scores
    assert list(csv.columns) == list(s.columns)
    assert list(csv["account_id"]) == list(s["account_id"])
    assert set(csv["as_of"]) == {str(weekly.as_of.date())}
    np.testing.assert_allclose(csv["churn_probability"], s["churn_probability"], rtol=1e-12)


def test_the_run_record_says_what_was_scored_with_which_models(weekly: Weekly) -> None:
    rec = json.loads((weekly.now.out_dir / "run_record.json").read_text())
    s = weekly.now.scores
    assert rec["as_of"] == str(weekly.as_of.date())
    assert rec["engine"] == "local"  # which engine ran: Spark does not re-read late feeds
    assert rec["n_accounts"] == len(s)
    assert rec["lights"] == s["health"].value_counts().to_dict()
    assert rec["models"]["churn"].endswith(f"v{s['churn_model_version'].iloc[0]}")
    card = rec["model_card"]  # what training measured travels with the champion
    assert card["family"] in {"lightgbm", "blend", "logistic"} and card["origins"] >= 1
    assert 0.5 < card["oot_roc_auc"] <= 1 and card["best_baseline"] in {
        "recency only", "RFM logistic regression", "BG/NBD",
    }  # fmt: skip
    html = (weekly.now.out_dir / "report.html").read_text()
    assert card["family_runner_up"] in {"lightgbm", "blend", "logistic"} - {card["family"]}
    margin, runner_up = card["family_margin"], card["family_runner_up"]
    won_by = (
        f"{margin:+.4f} ROC AUC over {runner_up}"
        if margin >= 0
        else f"{runner_up} ranked {-margin:.4f} higher: within noise"
    )
    assert f"{card['family']}, {won_by}; out-of-time ROC AUC {card['oot_roc_auc']:.3f}" in html
    assert rec["data"]["rows"]["orders"] > 0 and rec["data"]["fingerprint"]
    assert rec["light_mode"] == "budget" and rec["light_rule"].startswith("red = the 10%")
    h, p = weekly.cfg.health, s["churn_probability"]
    by_rule = s["light_reason"].fillna("").str.startswith(("raised to yellow", "stays "))
    assert rec["thresholds"] == {  # budget mode: what decided the lights, and where they fell
        "hysteresis": h.hysteresis,
        "red_share": h.red_share,
        "yellow_share": h.yellow_share,
        "red_min_probability": h.red_min_probability,
        "yellow_min_probability": h.yellow_min_probability,
        "lowest_red_probability": pytest.approx(p[s["health"].eq("red") & ~by_rule].min()),
        "lowest_yellow_probability": pytest.approx(p[s["health"].eq("yellow") & ~by_rule].min()),
        "red_by_rule": int((s["health"].eq("red") & by_rule).sum()),
        "yellow_by_rule": int((s["health"].eq("yellow") & by_rule).sum()),
    }
    ranked_yellow = s["health"].eq("yellow") & ~by_rule
    assert (p[ranked_yellow] >= h.yellow_min_probability).all()  # the floor holds for the cut
    assert rec["lifecycle"] == s["lifecycle"].astype(str).value_counts().to_dict()


def test_the_parquet_file_holds_exactly_the_returned_frame(weekly: Weekly) -> None:
    got = pd.read_parquet(weekly.now.out_dir / "scores.parquet")
    pd.testing.assert_frame_equal(
        got, weekly.rerun.scores, check_dtype=False, check_categorical=False
    )


# -- week over week -------------------------------------------------------------------


def test_last_weeks_light_and_probability_come_from_the_previous_run(weekly: Weekly) -> None:
    prev = weekly.prev.scores.set_index("account_id")
    now = weekly.now.scores.set_index("account_id")
    both = now.index.intersection(prev.index)
    assert len(both) > 0.8 * len(now)
    assert (now.loc[both, "health_prev"].fillna("") == prev.loc[both, "health"].fillna("")).all()
    np.testing.assert_allclose(
        now.loc[both, "churn_probability_prev"],
        prev.loc[both, "churn_probability"],
        rtol=0,
        atol=1e-12,
    )
    new = now.index.difference(prev.index)
    assert (
        now.loc[new, "health_prev"].isna().all()
        and now.loc[new, "churn_probability_prev"].isna().all()
    )
    assert weekly.prev.scores["health_prev"].isna().all()  # nothing scored before the first week


def test_changes_are_described_for_accounts_scored_both_weeks(weekly: Weekly) -> None:
    now = weekly.now.scores.set_index("account_id")
    both = now.index.intersection(pd.Index(weekly.prev.scores["account_id"]))
    changes = now.loc[both, "changes"]
    assert (changes.str.len() > 0).all()
    assert changes.str.startswith("Risk").any()


def test_the_real_run_keeps_red_a_short_list_with_hysteresis(weekly: Weekly) -> None:
    from ka_ml.scoring.health import QUIET_WORDS, budget_rank

    s = weekly.now.scores
    h = weekly.cfg.health
    lit = s["lifecycle"].ne("lapsed").to_numpy()
    above = 1 - budget_rank(s["churn_probability"].to_numpy(), lit)
    p = s["churn_probability"]
    # quiet as it has been before: at most yellow, said so, and only judged by its orders
    capped = s["light_reason"].fillna("").str.startswith("yellow, not red:").to_numpy()
    assert (s.loc[capped, "health"] == "yellow").all()
    assert (s.loc[capped, "churn_definition"] == "no_order").all()
    assert s.loc[capped, "light_reason"].str.contains("come back from a silence this long").all()
    # quiet by its own rhythm or season: not lit by its probability (ranks last), green, said so
    said = s["light_reason"].fillna("")
    quiet = np.logical_or.reduce([said.str.contains(w).to_numpy() for w in QUIET_WORDS[1:]])
    assert (s.loc[quiet, "health"] == "green").all()
    assert (s.loc[quiet, "churn_definition"] == "no_order").all()
    ruled = capped | quiet
    top = lit & (above < h.red_share - 1e-9) & (p >= h.red_min_probability) & ~ruled
    assert (s.loc[top, "health"] == "red").all()
    held = lit & (s["health_prev"] == "red") & (above < h.red_share + h.hysteresis - 1e-9)
    assert (s.loc[held & (p >= h.red_min_probability) & ~ruled, "health"] == "red").all()
    red_share = (s.loc[lit, "health"] == "red").mean()
    assert red_share <= h.red_share + h.hysteresis + 1e-9


# -- idempotent, atomic, fail-safe ------------------------------------------------------


def test_a_staged_folder_replaces_the_target_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "week"
    with staged_dir(target) as stage:
        (stage / "a.txt").write_text("first")
    with pytest.raises(ValueError), staged_dir(target) as stage:
        (stage / "a.txt").write_text("half")
        raise ValueError("killed mid-write")
    assert snapshot(target) == {"a.txt": b"first"}
    with staged_dir(target) as stage:
        (stage / "b.txt").write_text("second")
    assert snapshot(target) == {"b.txt": b"second"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["week"]


def test_recovery_restores_an_interrupted_swap_and_removes_a_killed_runs_staging(
    tmp_path: Path,
) -> None:
    target = tmp_path / "week"
    old = tmp_path / ".week.old"  # killed between the two renames of staged_dir
    old.mkdir()
    (old / "scores.csv").write_text("last good")
    stale = tmp_path / ".week.staging.x1y2"  # killed (SIGKILL) while writing
    stale.mkdir()
    (stale / "scores.csv").write_text("half")
    other = tmp_path / ".other.staging.z3"  # another target's: not ours to touch
    other.mkdir()
    recover_staged(target)
    assert snapshot(target) == {"scores.csv": b"last good"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.staging.z3", "week"]


def test_a_rerun_for_the_same_date_gives_identical_scores(weekly: Weekly) -> None:
    pd.testing.assert_frame_equal(weekly.now.scores, weekly.rerun.scores)
    assert {p.name for p in weekly.rerun.out_dir.iterdir()} == OUTPUT_FILES
    assert leftovers(weekly.rerun.out_dir.parent) == []


def test_a_rerun_replaces_its_rows_in_the_score_history(weekly: Weekly) -> None:
    def canon(df: pd.DataFrame) -> pd.DataFrame:
        return df.sort_values(["as_of", "account_id"]).reset_index(drop=True)

    after = weekly.history_after_rerun
    pd.testing.assert_frame_equal(canon(weekly.history_after_first), canon(after))
    assert not after.duplicated(["account_id", "as_of"]).any()
    counts = after.groupby("as_of").size()
    assert counts[weekly.as_of] == len(weekly.now.scores)
    assert counts[weekly.as_of - pd.Timedelta(days=7)] == len(weekly.prev.scores)


def test_a_run_failing_mid_write_leaves_the_previous_outputs_untouched(
    weekly: Weekly,
    trained,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    import ka_ml.jobs.score

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full while writing the spreadsheet")

    out = weekly.now.out_dir
    before = snapshot(out)
    history_before = score_history.read(history_path(weekly.cfg))
    monkeypatch.setattr(ka_ml.jobs.score, "write_excel", broken)  # the job's writer
    with pytest.raises(RuntimeError, match="disk full"):
        run_scoring(trained.history, weekly.cfg, weekly.as_of, out)
    assert snapshot(out) == before
    assert leftovers(out.parent) == []
    pd.testing.assert_frame_equal(score_history.read(history_path(weekly.cfg)), history_before)


def test_a_second_scorer_on_the_same_folder_is_refused(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = isolated(trained.cfg, tmp_path)
    out = tmp_path / "runs" / "week"
    with (
        exclusive_lock(out.parent / f".{out.name}.lock"),
        pytest.raises(KaMlError, match="Another ka-ml score run"),
    ):
        run_scoring(trained.history, cfg, trained.history.default_as_of, out)
    assert not out.exists()


@pytest.mark.parametrize("how", ["read-only folder", "path under a file"])
def test_an_unwritable_output_folder_fails_before_any_work(
    how: str,
    trained,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    import ka_ml.jobs.score

    def no_work(cfg: Config) -> None:
        raise AssertionError("models were loaded for an unwritable output folder")

    monkeypatch.setattr(ka_ml.jobs.score, "load_models", no_work)
    if how == "read-only folder":
        if os.geteuid() == 0:
            pytest.skip("root ignores folder permissions")
        parent = tmp_path / "locked"
        parent.mkdir()
        parent.chmod(0o500)
        out = parent / "week"
    else:
        blocker = tmp_path / "a_file"
        blocker.write_text("not a folder")
        out = blocker / "week"
    try:
        with pytest.raises(KaMlError, match="not writable") as err:
            run_scoring(
                trained.history, isolated(trained.cfg, tmp_path), trained.history.default_as_of, out
            )
        assert "--out" in err.value.remedy
    finally:
        if how == "read-only folder":
            out.parent.chmod(0o700)


def test_without_a_champion_scoring_says_so_and_writes_nothing(
    trained,
    empty_cfg: Config,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    out = tmp_path / "runs" / "week"
    with pytest.raises(NoChampionError) as err:
        run_scoring(trained.history, empty_cfg, trained.history.default_as_of, out)
    assert "champion" in err.value.message
    assert "train one first with `ka-ml train`" in err.value.remedy
    assert not out.parent.exists()  # nor the folder it would have been written in
    assert not history_path(empty_cfg).exists()
    # and where nothing was ever trained, no empty store is left behind (read: mlflow.db)
    paths = empty_cfg.paths.model_copy(update={"models": tmp_path / "never_trained"})
    mlflow_cfg = empty_cfg.mlflow.model_copy(update={"tracking_uri": None})
    nowhere = empty_cfg.model_copy(update={"paths": paths, "mlflow": mlflow_cfg})
    with pytest.raises(NoChampionError) as err:
        run_scoring(trained.history, nowhere, trained.history.default_as_of, out)
    assert "does not exist yet" in err.value.message and "`ka-ml train`" in err.value.remedy
    assert not (tmp_path / "never_trained").exists() and not out.parent.exists()


def test_the_lock_file_goes_with_its_run_and_a_removed_one_guards_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen: a 0-byte `.2026-12-01.lock` stayed beside the outputs after every run. Removing
    it must keep the one-scorer guarantee: a run that locked the file just as the run before
    removed it, while a third run locked the new one, must not run beside that third."""
    import fcntl

    import ka_ml.jobs.score

    lock = tmp_path / "outputs" / ".2026-12-01.lock"
    with exclusive_lock(lock):
        assert lock.exists()
        with (
            pytest.raises(KaMlError, match="Another ka-ml score run is writing"),
            exclusive_lock(lock),
        ):
            pass
    assert not lock.exists() and list(lock.parent.iterdir()) == []
    # the race: between this run's open and its lock, the run before removes the file and
    # a third run locks a new one at the same path
    real = fcntl.flock
    third: list[object] = []

    def flock(fh: Any, op: int) -> None:
        if not third and op & fcntl.LOCK_EX:
            lock.unlink()  # the run before, done
            third.append(open(lock, "a"))  # noqa: SIM115 - the third run, still running
            real(third[0], fcntl.LOCK_EX | fcntl.LOCK_NB)
        real(fh, op)  # succeeds: the removed file's lock is free

    monkeypatch.setattr(ka_ml.jobs.score.fcntl, "flock", flock)
    try:
        with (
            pytest.raises(KaMlError, match="Another ka-ml score run is writing"),
            exclusive_lock(lock),
        ):
            raise AssertionError("ran beside the run holding the lock file")
    finally:
        third[0].close()  # type: ignore[attr-defined]


def test_score_before_any_train_leaves_nothing_and_names_train_with_the_users_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen: `ka-ml score --config my.yaml` with a fresh models folder said "the MLflow
    store .../models_future/mlflow.db does not exist yet. Fix: train one first with `make
    train` (or `ka-ml train`)", but `make train` trains the default config, not theirs; and
    it left out_future/ behind, holding a 0-byte .2026-12-01.lock."""
    import yaml

    data = tmp_path / "erp"
    data.mkdir()
    (data / "orders.csv").write_text(
        "account_id,order_date,amount\n"
        + "".join(f"A{i % 5},2024-{1 + i % 11:02d}-{1 + i % 27:02d},{10 + i}\n" for i in range(60))
    )
    settings = {
        "data": {"source": str(data)},
        "paths": {"outputs": "out_future", "models": "models_future"},
    }
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(settings))

    def score(*args: str) -> str:
        res = CliRunner().invoke(app, ["score", *args])
        assert res.exit_code == 2, res.output
        return " ".join(res.output.split())

    said = score("--config", "my.yaml")
    assert "the MLflow store" in said and "models_future/mlflow.db does not exist yet" in said
    assert f"Fix: train one first with `ka-ml train --config {tmp_path / 'my.yaml'}`, or" in said
    assert "make train" not in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["erp", "my.yaml"]  # nothing created
    said = score("--config", "my.yaml", "--writeback", "--out", "runs/week")
    assert f"`ka-ml train --config {tmp_path / 'my.yaml'}`" in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["erp", "my.yaml"]
    # the default config in use: `make train` trains exactly what this run scores
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "ka_ml.yaml").write_text(yaml.safe_dump(settings))
    said = score()
    assert "Fix: train one first with `make train` (or `ka-ml train`), or" in said
    said = score("--data", str(data))  # not with data of its own: make passes no --data
    assert "make train" not in said
    assert f"`ka-ml train --config {tmp_path / 'configs' / 'ka_ml.yaml'} --data {data}`" in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["configs", "erp", "my.yaml"]


def test_a_look_back_does_not_replace_the_forecast_a_date_holds(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Seen: backfilling 2026-06-22 with the champion trained on 2026-08-10 replaced that
    week's forecast (by v1) in the score history; the backtest then dropped the week and the
    overdue rule read the new model's p90 dates."""
    import sqlite3

    cfg = isolated(trained.cfg, tmp_path, owner_reports=False)
    day = trained.history.default_as_of - pd.Timedelta(days=28)  # before the champion's data
    run_scoring(trained.history, cfg, day, tmp_path / "runs" / "first")
    path = history_path(cfg)
    with sqlite3.connect(path) as con:  # as if a model of then had forecast that week
        con.execute(
            "UPDATE scores SET churn_model_version = '0' WHERE as_of LIKE ?", (f"{day.date()}%",)
        )
    before = path.read_bytes()
    with pytest.raises(KaMlError) as err:
        run_scoring(trained.history, cfg, day, tmp_path / "runs" / "again")
    assert f"{day.date()} holds the forecast made then by" in err.value.message
    assert "v0" in err.value.message and "--replace-forecast" in err.value.remedy
    assert path.read_bytes() == before and not (tmp_path / "runs" / "again").exists()
    done = run_scoring(
        trained.history, cfg, day, tmp_path / "runs" / "again", replace_forecast=True
    )
    assert done.record["in_sample"]
    assert set(score_history.read(path)["churn_model_version"].astype(str)) != {"0"}


# -- the command line -----------------------------------------------------------------


def test_the_cli_scores_and_prints_the_lights_summary(
    weekly: Weekly, demo_dir: Path, tmp_path: Path
) -> None:
    """Same data, models, date and score history as the weekly run: the same lights."""
    config = write_config(weekly.cfg, tmp_path / "ka_ml.yaml")
    out = tmp_path / "cli_out"
    res = CliRunner().invoke(
        app, ["score", "--config", str(config), "--data", str(demo_dir), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    m = re.search(
        r"scored (\d+) accounts as of (\S+): (\d+) red,\s+(\d+) yellow,\s+(\d+) green", res.output
    )
    assert m, res.output
    lights = weekly.now.scores["health"].value_counts()
    assert int(m[1]) == len(weekly.now.scores) and m[2] == str(weekly.as_of.date())
    assert (int(m[3]), int(m[4]), int(m[5])) == (
        lights.get("red", 0),
        lights.get("yellow", 0),
        lights.get("green", 0),
    )
    assert {p.name for p in out.iterdir()} == OUTPUT_FILES


def test_the_cli_exits_2_and_names_the_champion_when_there_is_none(
    empty_cfg: Config, demo_dir: Path, tmp_path: Path
) -> None:
    config = write_config(empty_cfg, tmp_path / "ka_ml.yaml")
    out = tmp_path / "cli_out"
    res = CliRunner().invoke(
        app, ["score", "--config", str(config), "--data", str(demo_dir), "--out", str(out)]
    )
    assert res.exit_code == 2, res.output
    said = " ".join(res.output.split())
    assert "champion" in said and "make train" not in said
    assert f"train one first with `ka-ml train --config {config} --data {demo_dir}`" in said
    name = empty_cfg.mlflow.churn_model_name  # the same registry: the user's --config
    assert f"(`ka-ml models --config {config}` lists them)" in said
    assert f"`ka-ml promote --config {config} {name} VERSION`" in said
    assert not out.exists()


def test_the_cli_refuses_an_output_folder_holding_other_files_and_keeps_them(
    empty_cfg: Config, demo_dir: Path, tmp_path: Path
) -> None:
    """Seen: `score --out ~/userdir` replaced the folder whole and deleted notes.txt."""
    config = write_config(empty_cfg, tmp_path / "ka_ml.yaml")
    out = tmp_path / "userdir"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    res = CliRunner().invoke(
        app, ["score", "--config", str(config), "--data", str(demo_dir), "--out", str(out)]
    )
    assert res.exit_code != 0
    text = " ".join(res.output.split())
    assert "holds files that are not ka_ml outputs (notes.txt)" in text
    assert "pass a new or empty folder with --out" in text
    assert (out / "notes.txt").read_text() == "mine"


def test_outputs_written_beside_in_another_process_fail_the_run_on_error() -> None:
    # big portfolios write the spreadsheet in a spawned process: its result comes back,
    # and its exception is raised where the run waits for it (nothing is published)
    from ka_ml.jobs.score import _beside

    with _beside(True) as run:
        assert run(int, "42").result() == 42
        failing = run(int, "not a number")
    with pytest.raises(ValueError):
        failing.result()
    with _beside(False) as run, pytest.raises(ValueError):
        run(int, "not a number")


def test_the_spreadsheet_written_in_another_process_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openpyxl import load_workbook
    from test_report import make_run, make_scores

    from ka_ml.config import Config
    from ka_ml.jobs import score as job

    scores, run = make_scores(40), make_run()
    job._write_outputs(tmp_path / "here", scores, dict(run), Config())
    monkeypatch.setattr(job, "PARALLEL_FROM_ACCOUNTS", 0)
    job._write_outputs(tmp_path / "beside", scores, dict(run), Config())
    sheets = [load_workbook(tmp_path / d / "scores.xlsx") for d in ("here", "beside")]
    for name in sheets[0].sheetnames:
        rows = [list(wb[name].iter_rows(values_only=True)) for wb in sheets]
        assert rows[0] == rows[1] and len(rows[0]) > 1
    assert (tmp_path / "beside" / "report.html").read_text() == (
        tmp_path / "here" / "report.html"
    ).read_text()


def test_reports_build_html_only_for_the_accounts_they_show_one_owner_at_a_time(
    weekly: Weekly, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """report.html and every owner's report are capped at report.max_accounts and build rows
    and cards only for what they show (at 1M accounts with 50 owners, HTML for every account
    held at once peaked at 11.3 GB); the owner digests still count every account."""
    from ka_ml.delivery.digest import owner_of
    from ka_ml.jobs import score as score_job
    from ka_ml.reporting import account_html

    built: list[int] = []
    real_build = account_html.build

    def counting_build(view: pd.DataFrame, layout: Any) -> Any:
        built.append(len(view))
        return real_build(view, layout)

    monkeypatch.setattr(account_html, "build", counting_build)
    scores = weekly.now.scores
    record = json.loads((weekly.now.out_dir / "run_record.json").read_text())
    cap = 5
    cfg = weekly.cfg.model_copy(
        update={"report": weekly.cfg.report.model_copy(update={"max_accounts": cap})}
    )
    per_owner = owner_of(scores).value_counts(dropna=False).sort_index(na_position="last")
    assert len(scores) > cap and scores["owner"].notna().any() and (per_owner > cap).any()
    score_job._write_outputs(tmp_path / "owners", scores, dict(record), cfg)
    assert built == [cap, *(min(int(n), cap) for n in per_owner)]
    owners = tmp_path / "owners" / "owners"
    index = json.loads((owners / "index.json").read_text())
    assert sum(e["accounts"] for e in index) == len(scores)  # counts cover every account
    for e in index:
        html = (owners / f"{e['slug']}.html").read_text()
        assert html.count('<article class="card ') == min(e["accounts"], cap)
    built.clear()
    no_owner = scores.assign(owner=pd.Series(pd.NA, index=scores.index, dtype="string"))
    score_job._write_outputs(tmp_path / "alone", no_owner, dict(record), cfg)
    assert built == [cap] and not (tmp_path / "alone" / "owners").exists()
    html = (tmp_path / "alone" / "report.html").read_text()
    assert html.count('<article class="card ') == cap  # the shown accounts keep their cards


def test_the_run_record_states_the_churn_definition_that_applied() -> None:
    """'auto' on data without a contracts table is no order for every account (the console
    said so); the run record and report said 'contract lapse (contracted accounts) / ...'."""
    from ka_ml.jobs.score import churn_definition_text

    assert churn_definition_text("auto", has_contracts=False) == "no order (no contracts table)"
    assert churn_definition_text("auto", has_contracts=True) == (
        "contract lapse (contracted accounts) / no order (others)"
    )
    assert churn_definition_text("no_order", has_contracts=True) == "no order"


def test_a_full_disk_names_the_folder_and_publishes_nothing(tmp_path: Path) -> None:
    """A full disk was "unexpected error: OSError: No space left on device" (exit 1), no path."""
    import errno

    from ka_ml.io import atomic_write_text

    target = tmp_path / "2026-10-01"
    with staged_dir(target) as stage:
        (stage / "scores.csv").write_text("before")
    with pytest.raises(KaMlError) as err, staged_dir(target) as stage:
        raise OSError(errno.ENOSPC, "No space left on device", str(stage / "scores.csv"))
    assert err.value.exit_code == 2
    assert f"No space left on the disk holding '{target}'" in err.value.message
    assert "scores.csv" in err.value.message and "free space" in err.value.remedy
    assert (target / "scores.csv").read_text() == "before"  # the previous outputs stand
    assert [p.name for p in tmp_path.iterdir()] == ["2026-10-01"]  # no staging left

    def full(path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(KaMlError, match=f"disk holding '{tmp_path / 'run_record.json'}'"):
        atomic_write(tmp_path / "run_record.json", full)
    assert atomic_write_text(tmp_path / "ok.txt", "fine").read_text() == "fine"


def test_a_champion_that_learnt_orders_stop_first_is_scored_by_the_orders(  # type: ignore[no-untyped-def]
    trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auto resolved to no_order in train (frame contracts that do not bind orders): the
    weekly scores, lights and run record judge every account by its orders as the model
    learnt, not a running contract by its end."""
    import copy

    import ka_ml.jobs.score as job
    from ka_ml.features.labels import ORDERS_FIRST

    cfg = isolated(trained.cfg, tmp_path)
    as_of = trained.history.default_as_of
    plain = run_scoring(trained.history, cfg, as_of, tmp_path / "runs" / "plain")
    assert "contract" in set(plain.scores["churn_definition"].astype(str))  # the demo: auto
    load = job.load_models

    def orders_first(*args: Any, **kwargs: Any) -> Any:
        models = load(*args, **kwargs)
        churn = copy.copy(models.churn)
        churn.card_ = {**(models.churn.card_ or {}), ORDERS_FIRST: True}
        return type(models)(**{**models.__dict__, "churn": churn})

    monkeypatch.setattr(job, "load_models", orders_first)
    got = run_scoring(trained.history, cfg, as_of, tmp_path / "runs" / "by_orders")
    assert set(got.scores["churn_definition"].astype(str)) == {"no_order"}
    assert got.record["churn_definition"] == job.churn_definition_text("no_order", True)
    assert got.record["churn_definition"] != plain.record["churn_definition"]
    pd.testing.assert_series_equal(  # the same model: only the judging moved
        got.scores["churn_probability"], plain.scores["churn_probability"]
    )
