"""The command line as a user meets it: exit codes, messages, files."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import isolated, registry_state, small_config, write_config
from typer.testing import CliRunner

from ka_ml.cli import app
from ka_ml.config import Config

runner = CliRunner()


@pytest.fixture(scope="module")
def demo500(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "d"
    res = runner.invoke(app, ["demo-data", "--out", str(out), "--accounts", "500"])
    assert res.exit_code == 0, res.output
    return out


def test_demo_data_writes_the_six_tables_and_the_truth_apart(demo500: Path) -> None:
    names = sorted(p.name for p in demo500.glob("*.csv"))
    assert names == [
        f"{t}.csv"
        for t in sorted(["orders", "accounts", "usage", "tickets", "surveys", "contracts"])
    ]
    assert (demo500 / "_truth" / "ground_truth.csv").exists()


def test_the_demo_data_passes_validate_with_a_summary(demo500: Path) -> None:
    res = runner.invoke(app, ["validate", "--data", str(demo500)])
    assert res.exit_code == 0, res.output
    assert "valid" in res.output and "orders" in res.output and "accounts" in res.output


def test_the_same_seed_gives_byte_identical_files(demo500: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert (
        runner.invoke(app, ["demo-data", "--out", str(again), "--accounts", "500"]).exit_code == 0
    )
    for f in demo500.glob("*.csv"):
        assert (again / f.name).read_bytes() == f.read_bytes(), f.name


def test_a_removed_required_column_fails_validate_naming_it(demo500: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(demo500, bad)
    orders = pd.read_csv(bad / "orders.csv", dtype=str)
    orders.drop(columns=["amount"]).to_csv(bad / "orders.csv", index=False)
    res = runner.invoke(app, ["validate", "--data", str(bad)])
    assert res.exit_code == 2
    assert "orders" in res.output and "amount" in res.output and "Fix:" in res.output
    assert "Traceback" not in res.output


def test_a_garbled_date_fails_validate_naming_table_column_and_row(
    demo500: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(demo500, bad)
    orders = pd.read_csv(bad / "orders.csv", dtype=str)
    orders.loc[3, "order_date"] = "2024-13-45"
    orders.to_csv(bad / "orders.csv", index=False)
    res = runner.invoke(app, ["validate", "--data", str(bad)])
    assert res.exit_code == 2
    assert "order_date" in res.output and "2024-13-45" in res.output


def test_features_writes_the_point_in_time_table(demo500: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.parquet"
    res = runner.invoke(
        app, ["features", "--data", str(demo500), "--as-of", "2026-06-01", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(out)
    assert (df["as_of"] == pd.Timestamp("2026-06-01")).all()
    assert df["account_id"].is_unique and len(df) > 100


def test_a_bad_as_of_is_a_clear_error_not_a_traceback(demo500: Path) -> None:
    res = runner.invoke(app, ["validate", "--data", str(demo500), "--as-of", "yesterday-ish"])
    assert res.exit_code == 2
    assert "--as-of" in res.output and "YYYY-MM-DD" in res.output


@pytest.mark.parametrize(
    "value", ["01.10.2026", "10/01/2026", "2026-1-5", "20261001", "1 Oct 2026"]
)
def test_an_as_of_not_written_yyyy_mm_dd_is_refused_naming_the_value(
    tmp_path: Path, value: str
) -> None:
    """01.10.2026 would silently read as 2026-01-10: only YYYY-MM-DD is accepted."""
    (tmp_path / "orders.csv").write_text("account_id,order_date,amount\nA1,2026-01-05,1\n")
    given = ["--data", str(tmp_path), "--as-of", value]
    for args in (["validate", *given], ["features", *given, "--out", str(tmp_path / "F")]):
        res = runner.invoke(app, args)
        out = " ".join(res.output.split())
        assert res.exit_code == 2, out
        assert f"--as-of '{value}' is not a date of the form YYYY-MM-DD" in out
        assert "Fix: use the form YYYY-MM-DD" in out
    assert not (tmp_path / "F").exists()


def test_an_as_of_in_the_form_yyyy_mm_dd_is_read_as_that_day(tmp_path: Path) -> None:
    orders = "account_id,order_date,amount\nA1,2026-09-30,1\nA1,2026-10-01,2\n"
    (tmp_path / "orders.csv").write_text(orders)
    res = runner.invoke(app, ["validate", "--data", str(tmp_path), "--as-of", "2026-10-01"])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "as-of date 2026-10-01 were dropped (1 rows)" in out


def test_an_unknown_config_key_is_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("labels:\n  horizon_dayz: 30\n")
    res = runner.invoke(app, ["validate", "--config", str(cfg)])
    assert res.exit_code == 2
    assert "horizon_dayz" in res.output


# -- the registry by hand: `ka-ml models`, `ka-ml promote` -------------------------------

WIDE = {"COLUMNS": "220"}  # rich tables wrap to the terminal width


def flat(text: str) -> str:
    return " ".join(text.split())


def table_rows(output: str, name: str) -> list[list[str]]:
    """The cells of the rows of the `ka-ml models` table that belong to model ``name``."""
    rows = [[c.strip() for c in line.strip().strip("│").split("│")] for line in output.splitlines()]
    return [r for r in rows if r[0] == name]


@pytest.fixture
def store_copy(trained: Any, tmp_path: Path, mlflow_state: None) -> Config:
    """A copy of the session's trained store, so promoting here leaves its champions alone.

    The churn model gets a non-champion version when the copy has only the champion
    (registered from the champion's own artifacts, as a retrain's `challenger` would be).
    """
    from ka_ml.modeling import promotion, registry

    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(Path(trained.cfg.paths.models) / "mlflow.db", db)
    mlflow = trained.cfg.mlflow.model_copy(update={"tracking_uri": f"sqlite:///{db}"})
    cfg = isolated(trained.cfg, tmp_path).model_copy(update={"mlflow": mlflow})
    client = registry.connect(cfg)
    name = cfg.mlflow.churn_model_name
    versions = client.search_model_versions(f"name='{name}'")
    if len(versions) == 1:
        one = versions[0]
        two = client.create_model_version(name, one.source, run_id=one.run_id)
        client.set_registered_model_alias(name, promotion.CHALLENGER, two.version)
    return cfg


def aliases(cfg: Config, name: str) -> dict[str, str]:
    from ka_ml.modeling import registry

    found = registry.connect(cfg).get_registered_model(name).aliases
    return {alias: str(version) for alias, version in found.items()}


def test_models_lists_every_version_with_aliases_run_and_test_metrics(
    trained: Any, tmp_path: Path, mlflow_state: None
) -> None:
    cfg = isolated(trained.cfg, tmp_path)
    res = runner.invoke(
        app, ["models", "--config", str(write_config(cfg, tmp_path / "c.yaml"))], env=WIDE
    )
    assert res.exit_code == 0, res.output
    ev, run_id = trained.report.evaluation, trained.report.run_id
    for name, shown in (
        (cfg.mlflow.churn_model_name, [
            f"roc_auc {ev.churn['roc_auc']:.3f}", f"brier {ev.churn['brier']:.3f}",
            f"ece {ev.churn['ece']:.3f}",
        ]),
        (cfg.mlflow.timing_model_name, [
            f"concordance {ev.timing['concordance']:.3f}",
            f"p10_p90_coverage {ev.timing['p10_p90_coverage']:.3f}",
        ]),
    ):  # fmt: skip
        row = next(r for r in table_rows(res.output, name) if r[1] == "1")
        assert row[2] == "champion" and row[5] == run_id  # version 1: the session's training
        assert pd.Timestamp(row[3]).date() <= pd.Timestamp.now(tz="UTC").date()
        # what it was trained as of: a user read v1 0.968 beside v2 0.973 as a comparison
        assert row[4] == str(trained.report.as_of.date())
        assert row[6] == "  ".join(shown)
    assert "ka-ml promote NAME VERSION" in flat(res.output)


def test_models_on_an_empty_registry_says_so_and_how_to_train(
    tmp_path: Path, mlflow_state: None
) -> None:
    config = write_config(small_config(tmp_path), tmp_path / "c.yaml")
    res = runner.invoke(app, ["models", "--config", str(config)], env=WIDE)
    assert res.exit_code == 0, res.output
    text = flat(res.output)
    assert "No models are registered yet ('ka_ml_churn' and 'ka_ml_timing'" in text
    assert "`ka-ml train`" in text


def test_promote_moves_the_champion_by_hand_and_records_it_in_mlflow(
    store_copy: Config, tmp_path: Path
) -> None:
    from ka_ml.modeling import registry

    cfg, name = store_copy, store_copy.mlflow.churn_model_name
    timing_before = aliases(cfg, cfg.mlflow.timing_model_name)
    before = aliases(cfg, name)
    old, new = before["champion"], before["challenger"]
    config = str(write_config(cfg, tmp_path / "c.yaml"))
    res = runner.invoke(
        app, ["promote", name, f"v{new}", "--reason", "reviewed by hand", "--config", config]
    )
    assert res.exit_code == 0, res.output
    assert f"{name} v{new} is now the champion" in flat(res.output)
    assert f"v{old} is now challenger" in flat(res.output)

    assert aliases(cfg, name) == {"champion": new, "challenger": old}
    assert aliases(cfg, cfg.mlflow.timing_model_name) == timing_before
    client = registry.connect(cfg)
    tags = client.get_model_version(name, new).tags
    assert tags["promoted_by_hand"] == "true"
    assert tags["previous_champion"] == old
    assert tags["promotion_reason"] == "reviewed by hand"
    assert pd.Timestamp(tags["promoted_at"]).tzinfo is not None
    exp = client.get_experiment_by_name(cfg.mlflow.experiment)
    [run] = client.search_runs(
        [exp.experiment_id], f"tags.`mlflow.runName` = 'promote-{name}-v{new}'"
    )
    assert run.info.status == "FINISHED"
    assert run.data.tags["previous_champion"] == old and run.data.tags["version"] == new
    assert run.data.tags["reason"] == "reviewed by hand" and run.data.tags["promoted_by"]
    # what the scorer loads now
    _, loaded = registry.load_champion(client, name, "churn")
    assert loaded == new

    shown = runner.invoke(app, ["models", "--config", config], env=WIDE)
    rows = {r[1]: r[2] for r in table_rows(shown.output, name)}
    assert rows[new] == "champion" and rows[old] == "challenger", rows


def test_a_hand_promotion_leaves_no_stale_tag_and_says_where_every_alias_went(
    store_copy: Config, tmp_path: Path
) -> None:
    """Promoting without --reason kept an earlier promotion's reason (the report paired it
    with the new date), a demoted version kept promoted_by_hand=true, and promoting v2 while
    v3 was challenger took the alias from v3 with no word of it."""
    from ka_ml.modeling import promotion, registry

    cfg, name = store_copy, store_copy.mlflow.churn_model_name
    client = registry.connect(cfg)
    old, new = aliases(cfg, name)["champion"], aliases(cfg, name)["challenger"]
    config = str(write_config(cfg, tmp_path / "c.yaml"))

    def promote(version: str, *reason: str) -> str:
        res = runner.invoke(app, ["promote", name, version, *reason, "--config", config])
        assert res.exit_code == 0, res.output
        return flat(res.output)

    promote(new, "--reason", "first look")
    promote(old)
    tags = client.get_model_version(name, new).tags
    assert "promoted_by_hand" not in tags and "promotion_reason" not in tags  # demoted
    text = promote(new)  # again, with no reason this time
    tags = client.get_model_version(name, new).tags
    assert tags["promoted_by_hand"] == "true" and "promotion_reason" not in tags
    assert "first look" not in registry.champion_note(client, name, new, "churn", "churn")
    assert f"the previous champion v{old} is now challenger" in text

    one = client.get_model_version(name, new)
    third = client.create_model_version(name, one.source, run_id=one.run_id).version
    client.set_registered_model_alias(name, promotion.CHALLENGER, third)
    text = promote(old)
    assert f"v{third} was challenger and now carries no alias" in text, text
    assert aliases(cfg, name) == {"champion": old, "challenger": new}


def test_promoting_the_champion_again_changes_nothing(store_copy: Config, tmp_path: Path) -> None:
    name = store_copy.mlflow.churn_model_name
    champion = aliases(store_copy, name)["champion"]
    before = registry_state(store_copy)
    config = str(write_config(store_copy, tmp_path / "c.yaml"))
    res = runner.invoke(app, ["promote", name, champion, "--config", config])
    assert res.exit_code == 0, res.output
    assert "already the champion; nothing changed" in flat(res.output)
    assert registry_state(store_copy) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ka_ml_chrun", "1"], ["'ka_ml_chrun' is not a registered model",
                                 "registered models: ka_ml_churn, ka_ml_timing",
                                 "Fix:", "`ka-ml models`"]),
        (["ka_ml_churn", "99"], ["Model 'ka_ml_churn' has no version '99' (its versions: 1, 2",
                                 "Fix:", "`ka-ml models` lists the versions"]),
        (["ka_ml_churn", "latest"], ["has no version 'latest'"]),
    ],
    ids=["unknown-name", "unknown-version", "not-a-number"],
)  # fmt: skip
def test_promote_refuses_an_unknown_name_or_version_and_changes_nothing(
    store_copy: Config, tmp_path: Path, args: list[str], expected: list[str]
) -> None:
    before = registry_state(store_copy)
    config = str(write_config(store_copy, tmp_path / "c.yaml"))
    res = runner.invoke(app, ["promote", *args, "--config", config])
    assert res.exit_code == 2, res.output
    text = flat(res.output)
    assert all(e in text for e in expected), text
    assert "Traceback" not in res.output
    assert registry_state(store_copy) == before


def test_without_a_champion_the_error_names_promote_and_promoting_by_hand_fixes_it(
    store_copy: Config, tmp_path: Path
) -> None:
    from ka_ml.errors import NoChampionError
    from ka_ml.modeling import promotion, registry

    name = store_copy.mlflow.churn_model_name
    client = registry.connect(store_copy)
    client.delete_registered_model_alias(name, promotion.CHAMPION)
    with pytest.raises(NoChampionError) as err:
        registry.load_champion(client, name, "churn")
    assert f"`ka-ml promote {name} VERSION`" in err.value.remedy
    assert "`ka-ml models`" in err.value.remedy and "`ka-ml train`" in err.value.remedy

    new = aliases(store_copy, name)["challenger"]
    config = str(write_config(store_copy, tmp_path / "c.yaml"))
    res = runner.invoke(app, ["promote", name, new, "--config", config])
    assert res.exit_code == 0, res.output
    assert f"(there was no champion before; v{new} no longer carries challenger)" in flat(
        res.output
    )
    assert aliases(store_copy, name) == {"champion": new}  # not champion and challenger at once
    assert client.get_model_version(name, new).tags["previous_champion"] == "none"
    assert registry.load_champion(client, name, "churn")[1] == new
    # and the reports say the model in use was put there by hand (read: a 25-account
    # portfolio's hand-promoted model showed 49% risks with no word of the gate's refusal)
    note = registry.champion_note(client, name, new, "churn", "churn")
    assert note.startswith(f"The churn model in use (v{new}) was made champion by hand (")


def test_without_a_timing_champion_score_goes_on_without_timing_forecasts(
    store_copy: Config, trained: Any, tmp_path: Path
) -> None:
    """A first purchase-timing model that a baseline beat stays challenger (small
    portfolios); the week is still scored with the churn champion: the same probabilities
    and lights, the timing columns empty, and a note naming `ka-ml promote` in the record
    and the report."""
    from ka_ml.jobs.score import run_scoring
    from ka_ml.modeling import promotion, registry

    client = registry.connect(store_copy)
    name = store_copy.mlflow.timing_model_name
    champion = str(client.get_model_version_by_alias(name, promotion.CHAMPION).version)
    as_of = trained.history.default_as_of
    owners = store_copy.delivery.model_copy(update={"owner_reports": False})
    cfg = store_copy.model_copy(update={"delivery": owners})
    client.delete_registered_model_alias(name, promotion.CHAMPION)
    without = run_scoring(trained.history, cfg, as_of, tmp_path / "without")
    client.set_registered_model_alias(name, promotion.CHAMPION, champion)
    with_timing = run_scoring(trained.history, cfg, as_of, tmp_path / "with")

    a, b = without.scores, with_timing.scores
    assert a["account_id"].tolist() == b["account_id"].tolist()
    assert a["churn_probability"].tolist() == b["churn_probability"].tolist()
    # the lights rest on the churn model; only the overdue rule reads the forecast's p90,
    # and without it counts typical gaps (`health.overdue_ratio_fallback`)
    moved = (a["health"].fillna("-") != b["health"].fillna("-")).to_numpy()
    by_gap = a["light_reason"].str.contains("typical gap", na=False).to_numpy()
    assert moved.mean() < 0.1 and not (moved & ~by_gap).any()
    assert a[[c for c in a if c.startswith("p_purchase_")]].isna().all().all()
    assert b["p_purchase_90d"].notna().all()
    dates = ["expected_next_purchase_date", "next_purchase_p10_date", "next_purchase_p90_date"]
    assert a[dates].isna().all().all()
    assert (a["timing_model_version"] == "").all()
    lapsed = (a["lifecycle"] == "lapsed").to_numpy()
    assert lapsed.any()  # win-back value falls back to P(order within the horizon)
    assert (a.loc[lapsed, "win_back_value"] > 0).any()
    assert a.loc[lapsed, "win_back_value"].notna().all()

    note = [n for n in without.record["model_notes"] if "purchase-timing" in n]
    assert len(note) == 1 and "ka-ml" not in note[0], note  # the report has no command line
    assert "3x its typical gap" in note[0]
    assert not [k for k in without.record["model_card"] if k.startswith("timing_")]
    assert "timing_coverage" in with_timing.record["model_card"]
    assert without.record["models"]["timing"] == f"{name}: none (no champion yet)"
    report = (without.out_dir / "report.html").read_text()
    assert "No purchase-timing model is champion yet" in report
    assert (
        "Order within" not in report
        and "Order within" in (with_timing.out_dir / "report.html").read_text()
    )
    assert (
        "Chance of an order within 90 days" in report
    )  # the win-back list: 1 - P(churn in the horizon)
    assert not [n for n in with_timing.record.get("model_notes", []) if "No purchase" in n]


def test_the_missing_timing_champion_note_quotes_the_gate_and_names_the_version(
    store_copy: Config,
) -> None:
    from ka_ml.modeling import registry

    client = registry.connect(store_copy)
    name = store_copy.mlflow.timing_model_name
    newest = max(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
    verdict = "a baseline does better out of time beyond chance (BG/NBD P30 AUC 0.71 vs 0.69)"
    client.set_tag(newest.run_id, "decision_timing", f"v{newest.version} -> challenger: {verdict}")
    note = registry.no_champion_note(client, name, "purchase-timing", "timing", "dates left out")
    assert note == (
        f"No purchase-timing model is champion yet (training kept v{newest.version} challenger: "
        f"{verdict}): dates left out. `ka-ml promote {name} {newest.version}` makes it champion "
        "by hand (`ka-ml models` lists the versions)."
    )
    assert registry.no_champion_note(
        client, name, "purchase-timing", "timing", "dates left out", for_manager=True
    ) == (
        f"No purchase-timing model is champion yet (training kept v{newest.version} challenger: "
        f"{verdict}): dates left out."
    )
    assert registry.no_champion_note(client, "nothing_here", "purchase-timing", "timing", "x") == (
        "No purchase-timing model is registered as 'nothing_here' yet: x. `ka-ml train` trains one."
    )


def test_the_week_after_a_retrain_says_so_and_reruns_identically(
    store_copy: Config, trained: Any, tmp_path: Path
) -> None:
    """Seen over a quarter: the week after a retrain named data movers for what the new
    model did, and nothing said the model had changed; rerunning that week once last week's
    contributions were pruned changed 1,304 of 1,814 texts."""
    from ka_ml.jobs.score import run_scoring
    from ka_ml.modeling import promotion, registry

    client = registry.connect(store_copy)
    name = store_copy.mlflow.churn_model_name
    old = str(client.get_model_version_by_alias(name, promotion.CHAMPION).version)
    new = aliases(store_copy, name)["challenger"]
    cfg = store_copy.model_copy(
        update={"delivery": store_copy.delivery.model_copy(update={"owner_reports": False})}
    )
    as_of = trained.history.default_as_of
    run_scoring(trained.history, cfg, as_of - pd.Timedelta(days=7), tmp_path / "w1")
    client.set_registered_model_alias(name, promotion.CHAMPION, new)
    first = run_scoring(trained.history, cfg, as_of, tmp_path / "w2").scores
    texts = first["changes"]  # "Risk unchanged at 1%, yet now green": the light's own story
    told = texts[texts.str.startswith("Risk") & ~texts.str.startswith("Risk unchanged at")]
    assert len(told) > 10
    assert told.str.contains(
        f"since last week: the churn model was retrained (v{old} to v{new})", regex=False
    ).all()
    again = run_scoring(trained.history, cfg, as_of, tmp_path / "w2").scores
    assert again["changes"].tolist() == first["changes"].tolist()


@pytest.mark.parametrize("module", ["ka_ml.cli", "ka_ml.jobs.data"])
def test_reading_data_and_the_cli_load_no_model_library(module: str) -> None:
    """`ka-ml --help`, `validate` and `features` on the local engine never import LightGBM,
    scikit-learn, SHAP, MLflow or Spark (seconds per command); the jobs that need them do."""
    import subprocess
    import sys

    heavy = ("lightgbm", "sklearn", "shap", "mlflow", "pyspark")
    code = f"import sys, {module}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    if module == "ka_ml.cli":  # the check can fail: the training job does load them
        code = "import sys, ka_ml.jobs.train; print('lightgbm' in sys.modules)"
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "True"


def test_models_in_a_narrow_terminal_never_wraps_a_model_name_or_a_run_id(
    trained: Any, tmp_path: Path, mlflow_state: None
) -> None:
    """The run id is the handle to MLflow and the name what `ka-ml promote` takes: at 80
    columns the run id was cut to 'bfb6fd341d7…', then folded, and the name wrapped as
    'ka_ml_timin' / 'g'. Each now stands whole on one line."""
    cfg = isolated(trained.cfg, tmp_path)
    res = runner.invoke(
        app,
        ["models", "--config", str(write_config(cfg, tmp_path / "c.yaml"))],
        env={"COLUMNS": "80"},
    )
    assert res.exit_code == 0, res.output
    assert "…" not in res.output
    lines = res.output.splitlines()
    assert any(trained.report.run_id in line for line in lines), res.output
    for name in (cfg.mlflow.churn_model_name, cfg.mlflow.timing_model_name):
        assert any(line.startswith(f"{name} v") for line in lines), res.output
    assert not any(line.strip() in ("g", "n") for line in lines)


@pytest.mark.parametrize("command", ["features", "train", "score"])
def test_the_engine_help_names_the_extra_to_install(command: str) -> None:
    """Rich read '[spark]' in 'ka_ml[spark]' as markup and dropped it from --help."""
    res = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
    assert res.exit_code == 0
    assert "needs ka_ml[spark] and Java" in " ".join(res.output.split())


def test_an_error_message_keeps_its_square_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    """The remedy "pip install 'ka_ml[spark]'" was printed as "pip install 'ka_ml'": Rich read
    '[spark]' as markup."""
    import typer

    from ka_ml.cli import _run
    from ka_ml.errors import KaMlError

    def fails() -> None:
        raise KaMlError("The Spark engine needs pyspark.", "pip install '<the clone>[spark]'.")

    with pytest.raises(typer.Exit):
        _run(False, fails)
    assert "pip install '<the clone>[spark]'" in " ".join(capsys.readouterr().err.split())


def test_a_terminated_score_run_says_so_in_one_line_and_exits_130(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ka_ml.jobs.score

    def terminated(*args: object) -> None:
        raise KeyboardInterrupt("terminated by signal 15")

    monkeypatch.setattr(ka_ml.jobs.score, "check_output", terminated)
    res = CliRunner().invoke(app, ["score"])
    assert res.exit_code == 130, res.output
    text = " ".join(res.output.split())
    assert "interrupted (terminated by signal 15): the score run stopped; nothing of it was" in text
    assert "previous outputs and score history are untouched" in text


@pytest.mark.parametrize("command", ["score", "train", "notify", "validate"])
def test_help_shows_flags_without_a_value_and_no_markup(command: str) -> None:
    """Flags take no value: typer's rich help labelled each `<bool>` (and `--help` too)."""
    res = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "--debug " in res.output and "--config <path>" in res.output
    assert "<bool>" not in res.output and "\\[" not in res.output


@pytest.fixture
def tz_kolkata(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local zone is Asia/Kolkata (+05:30) for the test."""
    import time

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_off_a_terminal_lines_are_not_wrapped_and_log_times_carry_date_and_zone(
    tz_kolkata: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cron's mail had Rich's 80 columns: the success summary split mid-path, lines padded
    with spaces, and log times as '[10:00:56]' (no date, no zone)."""
    import re

    from ka_ml.cli import _console, _run, log

    long_path = "/srv/ka_ml/outputs/" + "/".join(["a-rather-long-folder-name"] * 6)

    def body() -> None:
        log.warning("the newest order in the data is from 2026-09-30: %s", long_path)
        _console().print(f"scored 1,803 accounts as of 2026-10-01 -> {long_path}/ (report.html)")

    _run(False, body)
    out, err = capsys.readouterr()
    assert out == f"scored 1,803 accounts as of 2026-10-01 -> {long_path}/ (report.html)\n"
    (line,) = err.splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+05:30 WARNING the newest order in the data is "
        rf"from 2026-09-30: {re.escape(long_path)}",
        line,
    ), line


def test_a_look_back_is_warned_about_once(trained: Any, demo_dir: Path, tmp_path: Path) -> None:
    cfg = isolated(trained.cfg, tmp_path, owner_reports=False)
    config = write_config(cfg, tmp_path / "ka_ml.yaml")
    earlier = (trained.history.default_as_of - pd.Timedelta(days=28)).date()
    args = ["score", "--config", str(config), "--data", str(demo_dir), "--as-of", str(earlier)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert res.output.count("These scores look back") == 1, res.output


def test_a_score_run_stopped_by_sigterm_exits_143_and_ctrl_c_130(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGTERM exited 130, Ctrl-C's code: a scheduler could not tell its own timeout."""
    import os
    import signal

    import ka_ml.jobs.score

    def sigterm(*args: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    def ctrl_c(*args: object) -> None:
        raise KeyboardInterrupt

    for stop, code, why in ((sigterm, 143, "terminated by signal 15"), (ctrl_c, 130, "Ctrl-C")):
        monkeypatch.setattr(ka_ml.jobs.score, "check_output", stop)
        res = CliRunner().invoke(app, ["score"])
        assert res.exit_code == code, res.output
        assert f"interrupted ({why}): the score run stopped; nothing of it" in res.output


@pytest.mark.parametrize(
    ("zone", "instant", "today"),
    [
        ("Asia/Tokyo", "2026-12-05T21:30:00+00:00", "2026-12-06"),  # 06:30 local, next day
        ("America/Los_Angeles", "2026-12-06T05:00:00+00:00", "2026-12-06"),  # 21:00 the 5th
        ("UTC", "2026-12-05T21:30:00+00:00", "2026-12-05"),
    ],
)
def test_today_is_the_later_of_the_utc_and_the_local_date(
    zone: str, instant: str, today: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run at 06:30 in Tokyo (21:30 UTC the day before) refused orders dated that local
    day as "dated after today"."""
    import time

    from ka_ml.cli import _today

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        assert _today(pd.Timestamp(instant)) == pd.Timestamp(today)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_an_early_morning_run_east_of_utc_takes_orders_dated_local_today(
    demo500: Path, tz_kolkata: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate (and score, train: the same clock) read orders dated the local day of an
    early-morning run in Kolkata as dated after today."""
    import ka_ml.cli

    folder = demo500
    orders = pd.read_csv(folder / "orders.csv", parse_dates=["order_date"])
    newest = orders["order_date"].max()
    at = pd.Timestamp(newest.date(), tz="Asia/Kolkata") + pd.Timedelta(hours=4)  # 04:00 local
    real = ka_ml.cli._today
    monkeypatch.setattr(ka_ml.cli, "_today", lambda now=None: real(at))
    assert at.tz_convert("UTC").date() < newest.date()  # in UTC still the day before
    res = CliRunner().invoke(app, ["validate", "--data", str(folder)])
    assert res.exit_code == 0, res.output
    assert "dated after today" not in res.output, res.output


def test_validate_refuses_an_as_of_after_tomorrow_as_score_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen: `ka-ml validate --as-of 2027-06-01` said valid (exit 0, not a word) while `ka-ml
    score --as-of 2027-06-01` refused it: "--as-of 2027-06-01 is after tomorrow (2026-12-07)
    ... Fix: pass a date up to 2026-12-07", exit 2."""
    import yaml

    import ka_ml.cli

    monkeypatch.setattr(ka_ml.cli, "_today", lambda now=None: pd.Timestamp("2026-12-06"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "orders.csv").write_text(
        "account_id,order_date,amount\n"
        + "".join(f"A{i % 5},2026-{1 + i % 11:02d}-{1 + i % 27:02d},{10 + i}\n" for i in range(60))
    )
    config = tmp_path / "my.yaml"
    paths = {"outputs": str(tmp_path / "out"), "models": str(tmp_path / "models")}
    config.write_text(yaml.safe_dump({"data": {"source": str(data)}, "paths": paths}))
    fix = (
        "Fix: pass a date up to 2026-12-07 (or leave --as-of out: the day after the newest order)."
    )

    def run(*args: str) -> tuple[int, str]:
        res = runner.invoke(app, [*args, "--config", str(config)])
        return res.exit_code, " ".join(res.output.split())

    code, out = run("validate", "--as-of", "2027-06-01")
    assert code == 2, out
    assert (
        "error: --as-of 2027-06-01 is after tomorrow (2026-12-07): ka-ml score, train and "
        "features refuse it" in out
    )
    assert fix in out and "valid:" not in out
    code, said = run("score", "--as-of", "2027-06-01")  # the refusal validate announces
    assert code == 2 and "--as-of 2027-06-01 is after tomorrow (2026-12-07)" in said
    assert fix in said
    # said before the data is read: the same answer for a source that is not there
    code, out = run("validate", "--as-of", "2027-06-01", "--data", str(tmp_path / "nowhere"))
    assert code == 2 and fix in out
    code, out = run("validate", "--as-of", "2026-12-07")  # tomorrow is still a date
    assert code == 0 and out.startswith("valid:"), out
    assert not (tmp_path / "out").exists()


def test_the_score_summary_line_names_the_accounts_without_a_light() -> None:
    """An operator read 'scored 1,803 accounts as of 2026-10-01: 157 red, 390 yellow, 1016
    green' (1,563: the 240 lapsed unnamed, no thousands separator)."""
    from ka_ml.cli import _unlit

    lights = {"red": 1, "yellow": 1, "green": 1}
    record = {"lights": lights, "n_accounts": 6, "lifecycle": {"active": 3, "lapsed": 2, "new": 1}}
    assert _unlit(record) == ", 2 lapsed (no light), 1 without a light"
    assert _unlit({**record, "n_accounts": 3, "lifecycle": {"active": 3}}) == ""


def test_tables_off_a_terminal_are_wide_enough_not_to_squeeze_columns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Train's per-origin table, written to a file, showed its churn column as "0.0…" (80
    columns); off a terminal the console is PLAIN_WIDTH wide, or COLUMNS when set."""
    from ka_ml import cli

    monkeypatch.delenv("COLUMNS", raising=False)
    c = cli._console()
    assert not c.is_terminal and c.width == cli.PLAIN_WIDTH
    monkeypatch.setenv("COLUMNS", "100")
    assert cli._console().width == 100


@pytest.mark.parametrize(
    ("signum", "code", "why"), [(15, 143, "terminated by signal 15"), (2, 130, "Ctrl-C")]
)
def test_a_library_error_caused_by_an_interruption_is_reported_as_the_interruption(
    signum: int, code: int, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user's SIGTERM and Ctrl-C during a Spark job came back as "unexpected error:
    Py4JJavaError ... Broken pipe", exit 1: Spark cancels its jobs and py4j fails. With a
    signal received during the command, such an error is the interruption (130 / 143)."""
    import typer

    from ka_ml import cli
    from ka_ml.errors import note_signal

    def body() -> None:
        note_signal(signum)
        raise RuntimeError("An error occurred while calling o3359.getResult: Broken pipe")

    with pytest.raises(typer.Exit) as exc:
        cli._run(False, body)
    assert exc.value.exit_code == code
    err = capsys.readouterr().err
    assert f"interrupted ({why}): what it was writing was not published." in err
    assert "unexpected error" not in err

    def plain() -> None:  # no signal this time: still an unexpected error
        raise RuntimeError("boom")

    with pytest.raises(typer.Exit) as exc:
        cli._run(False, plain)
    assert exc.value.exit_code == 1


def test_without_a_config_file_the_defaults_are_said_and_printed_commands_repeat_the_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator followed a printed `ka-ml score --as-of D --writeback` from the job's
    folder: without the run's --config it loaded the defaults (the demo data) and wrote its
    scores over the production table, exit 0."""
    import logging

    from ka_ml.cli import _config, _options

    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, "ka_ml"):
        _config(None)
    assert "no --config given and no configs/ka_ml.yaml" in caplog.text
    (tmp_path / "prod.yaml").write_text("report: {currency: EUR}\n")
    got = _options(Path("prod.yaml"), "postgresql+psycopg://reader@db/crm", "spark")
    assert got == (
        f" --config {tmp_path / 'prod.yaml'} --data postgresql+psycopg://reader@db/crm"
        " --engine spark"
    )
    assert _options(None) == ""  # nothing to repeat: no config file was read


def test_models_says_versions_trained_as_of_different_dates_are_not_compared() -> None:
    """User test: `ka-ml models` listed churn v1 (roc_auc 0.968) beside v2 (0.973), trained
    as of dates three months apart and measured on different test origins, with nothing to
    say that the two figures do not compare the versions."""
    import io

    from rich.console import Console

    from ka_ml.config import Config
    from ka_ml.modeling.registry import VersionInfo
    from ka_ml.reporting.console import print_models

    def shown(*dates: str) -> str:
        buf = io.StringIO()
        versions = [
            VersionInfo("ka_ml_churn", "churn", str(i + 1), (), None, f"r{i}", {}, d)
            for i, d in enumerate(dates)
        ]
        print_models(versions, Config(), Console(file=buf, width=200))
        return " ".join(buf.getvalue().split())

    assert "not a comparison" in shown("2026-09-01", "2026-12-01")
    assert "not a comparison" not in shown("2026-09-01", "2026-09-01")
    assert "2026-12-01" in shown("2026-09-01", "2026-12-01")
