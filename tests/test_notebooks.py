"""The notebooks run end to end on the small demo world and produce their plots.

Each ``notebooks/*.py`` (jupytext percent format, the committed source) is converted to a
notebook and executed with nbclient in a fresh kernel, with its inputs given through the
same environment variables a user sets. The kernel is ipykernel's own ``python3`` spec,
built from this interpreter, so the test neither depends on nor installs any kernelspec.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import ClassVar

import jupytext
import nbformat
import pandas as pd
import pytest
from conftest import small_config, write_config
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

from ka_ml.analysis.notebook import (
    find_project_root,
    load_truth,
    notebook_inputs,
    review_config,
    show_figure,
)
from ka_ml.errors import KaMlError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXPLORE_FIGURES = (
    "monthly_activity",
    "cohort_retention",
    "purchase_gaps",
    "churn_by_segment",
    "signals_before_churn",
)
REVIEW_FIGURES = ("reliability", "lift", "shap_summary", "slice_metrics", "example_accounts")


def execute(notebook: Path, cwd: Path) -> nbformat.NotebookNode:
    """Run every cell in a new kernel started in ``cwd``; raises on the first cell error."""
    nb = jupytext.read(notebook)
    # No kernel folders: jupyter_client falls back to ipykernel's native python3 spec,
    # which runs sys.executable, whatever kernels this machine or user has installed.
    km = AsyncKernelManager(
        kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[])
    )
    client = NotebookClient(nb, km=km, timeout=240, resources={"metadata": {"path": str(cwd)}})
    client.execute(cleanup_kc=True)  # a kernel manager passed in is not shut down by default
    return nb


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG header; fails when the file is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def assert_figures(folder: Path, names: tuple[str, ...]) -> None:
    for name in names:
        path = folder / f"{name}.png"
        assert path.is_file(), f"{name}.png was not written"
        width, height = png_size(path)
        assert width >= 400 and height >= 300, f"{name}.png is only {width}x{height}"
        assert path.stat().st_size > 15_000, f"{name}.png looks empty ({path.stat().st_size} B)"


def inline_images(nb: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )


# -- the notebooks ----------------------------------------------------------------------
def test_the_exploration_notebook_runs_on_the_demo_data_and_draws_every_plot(
    demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = tmp_path / "figures"
    monkeypatch.setenv(
        "KA_ML_CONFIG", str(write_config(small_config(tmp_path), tmp_path / "c.yaml"))
    )
    monkeypatch.setenv("KA_ML_DATA", str(demo_dir))
    monkeypatch.setenv("KA_ML_FIGURES", str(figures))
    monkeypatch.delenv("KA_ML_AS_OF", raising=False)

    nb = execute(NOTEBOOKS / "01_explore_account_history.py", tmp_path)

    assert_figures(figures, EXPLORE_FIGURES)
    assert inline_images(nb) == len(EXPLORE_FIGURES)
    assert not (tmp_path / "demo").exists()  # the given data was used, none generated


def test_the_review_notebook_explains_the_champion_from_the_registry(
    trained, demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    figures = tmp_path / "figures"
    monkeypatch.setenv("KA_ML_CONFIG", str(write_config(trained.cfg, tmp_path / "c.yaml")))
    monkeypatch.setenv("KA_ML_DATA", str(demo_dir))
    monkeypatch.setenv("KA_ML_FIGURES", str(figures))
    monkeypatch.delenv("KA_ML_AS_OF", raising=False)

    nb = execute(NOTEBOOKS / "02_model_review.py", tmp_path)

    assert_figures(figures, REVIEW_FIGURES)
    assert inline_images(nb) == len(REVIEW_FIGURES)
    text = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    assert "not the data the champion was trained on" not in text
    assert "test snapshot(s)" in text


def test_the_notebooks_are_committed_as_percent_scripts_with_a_python3_kernel() -> None:
    for name in ("01_explore_account_history.py", "02_model_review.py"):
        nb = jupytext.read(NOTEBOOKS / name)
        assert nb.metadata["kernelspec"]["name"] == "python3"
        assert nb.metadata["jupytext"]["text_representation"]["format_name"] == "percent"
        kinds = {c.cell_type for c in nb.cells}
        assert kinds == {"markdown", "code"}


def test_every_table_is_shown_explicitly_so_running_as_a_script_shows_it_too() -> None:
    """Run as a script (`python notebooks/0X.py`, as the README says), a cell's bare last
    expression is evaluated and dropped: notebook 01's Summary and notebook 02's light
    precision/recall and lift tables never appeared. Each cell ends in an explicit call."""
    import ast

    shows = {"display", "print", "show_figure", "show_png"}
    for name in ("01_explore_account_history.py", "02_model_review.py"):
        for cell in jupytext.read(NOTEBOOKS / name).cells:
            if cell.cell_type != "code":
                continue
            last = ast.parse(cell.source).body[-1]
            if not isinstance(last, ast.Expr):
                continue
            call = last.value
            called = (
                call.func.id
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                else ""
            )
            assert called in shows, (
                f"{name}: a cell ends in a bare expression:\n{ast.unparse(last)[:120]}"
            )


# -- the notebooks' edge ----------------------------------------------------------------
def test_the_project_root_is_found_from_the_notebooks_folder(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    repo = tmp_path_factory.mktemp("repo")
    (repo / "configs").mkdir()
    (repo / "configs" / "ka_ml.yaml").write_text("seed: 1\n")
    (repo / "notebooks").mkdir()
    assert find_project_root(repo / "notebooks") == repo.resolve()
    assert find_project_root(repo) == repo.resolve()
    assert find_project_root(tmp_path_factory.mktemp("elsewhere")) is None


def test_inputs_come_from_the_environment_with_the_figures_folder_created(
    demo_dir: Path, tmp_path: Path
) -> None:
    cfg_path = write_config(small_config(tmp_path), tmp_path / "c.yaml")
    env = {
        "KA_ML_CONFIG": str(cfg_path),
        "KA_ML_DATA": str(demo_dir),
        "KA_ML_AS_OF": "2026-06-01",
        "KA_ML_FIGURES": str(tmp_path / "figs"),
    }
    inp = notebook_inputs(env)
    assert inp.config_path == cfg_path
    assert inp.cfg.data.demo_accounts == 400
    assert inp.source == str(demo_dir)
    assert inp.as_of == pd.Timestamp("2026-06-01")
    assert (tmp_path / "figs").is_dir()
    from ka_ml.errors import KaMlError  # the form --as-of takes, not pandas' month-first guess

    with pytest.raises(KaMlError, match=r"KA_ML_AS_OF '01\.06\.2026' is not a date of the form"):
        notebook_inputs({**env, "KA_ML_AS_OF": "01.06.2026"})


def test_without_data_the_inputs_fall_back_to_the_demo_world_generated_once(
    tmp_path: Path,
) -> None:
    cfg = small_config(tmp_path, data={"demo_dir": str(tmp_path / "demo"), "demo_accounts": 12})
    env = {"KA_ML_CONFIG": str(write_config(cfg, tmp_path / "c.yaml"))}
    env["KA_ML_FIGURES"] = str(tmp_path / "figs")
    inp = notebook_inputs(env)
    assert inp.source == str(tmp_path / "demo")
    assert (tmp_path / "demo" / "orders.csv").is_file()
    assert inp.as_of is None
    truth = load_truth(inp.source)
    assert truth is not None and len(truth) == 12
    assert truth["churned"].dtype == bool
    assert load_truth(tmp_path) is None  # not a demo folder: no ground truth


def test_outside_a_notebook_show_figure_only_saves_the_png(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4))
    fig.add_subplot().plot([0, 1], [1, 0])
    show_figure(fig, tmp_path / "figs", "line")
    assert png_size(tmp_path / "figs" / "line.png") == (550, 440)  # 5 x 4 inches at 110 dpi


def test_a_bad_as_of_in_the_environment_is_a_clear_error(tmp_path: Path, demo_dir: Path) -> None:
    env = {"KA_ML_DATA": str(demo_dir), "KA_ML_AS_OF": "soon", "KA_ML_FIGURES": str(tmp_path)}
    with pytest.raises(KaMlError, match="KA_ML_AS_OF 'soon' is not a date"):
        notebook_inputs(env)


def test_the_review_uses_the_modelling_settings_the_champion_was_trained_with(
    trained, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from ka_ml.analysis.notebook import champion_run
    from ka_ml.modeling import registry

    client = registry.connect(trained.cfg)
    _, version = registry.load_champion(client, trained.cfg.mlflow.churn_model_name, "churn")
    run = champion_run(client, trained.cfg.mlflow.churn_model_name, version)
    assert run.as_of == trained.history.default_as_of
    assert run.metrics["test_churn_roc_auc"] > 0.5
    assert run.test_dates and max(run.test_dates) < run.as_of
    today = trained.cfg.model_copy(
        update={"labels": trained.cfg.labels.model_copy(update={"horizon_days": 30})}
    )
    cfg = review_config(today, run.run_id)
    assert cfg.labels.horizon_days == trained.cfg.labels.horizon_days
    assert cfg.paths == today.paths
    assert review_config(today, "no-such-run") is today


# -- which rows the review judges the champion on ---------------------------------------
class _Scorer:
    """A stand-in champion: P(churn) = the feature ``x``."""

    features_: ClassVar[list[str]] = ["x"]

    def predict_proba(self, X: pd.DataFrame) -> object:
        import numpy as np

        p = X["x"].to_numpy(float)
        return np.column_stack([1 - p, p])


def _labelled() -> pd.DataFrame:
    dates = pd.to_datetime(["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01"])
    return pd.DataFrame(
        {
            "account_id": ["a", "b"] * 4,
            "as_of": dates.repeat(2),
            "x": [0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.4, 0.6],
            "churn": [0.0, 1.0] * 4,
        }
    )


def _run(as_of: str, tests: tuple[str, ...]) -> object:
    from ka_ml.analysis.notebook import ChampionRun

    return ChampionRun(
        "1", "r1", pd.Timestamp(as_of), "", {}, tuple(pd.Timestamp(d) for d in tests)
    )


def test_a_later_as_of_reviews_the_champion_on_newer_rows_it_scores_itself() -> None:
    """KA_ML_AS_OF after the champion's training date: the notebook printed a table of NaN
    with n 0 and crashed in the lift cell; it reviews the newer labelled rows instead."""
    from ka_ml.analysis.notebook import review_rows

    labelled = _labelled()
    run = _run("2026-03-01", ("2026-01-01",))

    def no_logged() -> pd.DataFrame:
        raise AssertionError("the logged predictions describe other rows")

    got = review_rows(
        labelled, labelled.iloc[:2], run, pd.Timestamp("2026-07-01"), _Scorer(), no_logged, 30
    )
    assert got.newer
    assert list(got.rows["as_of"].dt.strftime("%Y-%m-%d").unique()) == ["2026-03-01", "2026-04-01"]
    assert list(got.probability) == [0.3, 0.7, 0.4, 0.6]
    assert "never saw" in got.note


def test_a_later_as_of_without_newer_outcomes_stops_with_what_to_set() -> None:
    from ka_ml.analysis.notebook import review_rows

    labelled = _labelled()
    run = _run("2026-05-01", ())
    with pytest.raises(KaMlError, match="No snapshot dated on or after") as e:
        review_rows(
            labelled, labelled, run, pd.Timestamp("2026-06-01"), _Scorer(), pd.DataFrame, 90
        )
    assert "2026-07-30" in e.value.remedy


def test_the_champions_own_as_of_reviews_the_logged_out_of_time_predictions() -> None:
    from ka_ml.analysis.notebook import review_rows

    labelled = _labelled()
    test = labelled[labelled["as_of"] == "2026-02-01"].reset_index(drop=True)
    run = _run("2026-05-01", ("2026-02-01",))
    logged = test[["account_id", "as_of"]].assign(churn_probability=[0.25, 0.75])
    got = review_rows(
        labelled, test, run, pd.Timestamp("2026-05-01"), _Scorer(), lambda: logged, 30
    )
    assert not got.newer and got.note == ""
    assert list(got.probability) == [0.25, 0.75]
    # an earlier as-of whose origins the run never tested: a clear stop, not an empty table
    with pytest.raises(KaMlError, match="has an out-of-time prediction"):
        review_rows(
            labelled,
            labelled[labelled["as_of"] == "2026-01-01"],
            run,
            pd.Timestamp("2026-04-01"),
            _Scorer(),
            lambda: logged,
            30,
        )


def test_the_label_settings_are_said_as_the_config_has_them(tmp_path: Path) -> None:
    """Notebook 01 said labels were counted only for accounts still active
    (labels.at_risk_only, false by default) and snapshots came every
    features.snapshot_every_days (null by default)."""
    from ka_ml.analysis.notebook import label_settings

    dates = pd.to_datetime(["2026-01-01", "2026-01-22", "2026-02-12"]).repeat(2)
    text = label_settings(small_config(tmp_path), dates)
    assert text.startswith("3 snapshots, every 21 days (chosen from the history")
    assert "every scored account is labelled" in text and "at_risk_only = false" in text
    assert "labels.horizon_days = 90" in text
    cfg = small_config(
        tmp_path, labels={"at_risk_only": True}, features={"snapshot_every_days": 21}
    )
    text = label_settings(cfg, dates)
    assert "features.snapshot_every_days = 21" in text
    assert "only accounts still active at a snapshot are labelled" in text
