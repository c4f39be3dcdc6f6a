"""Faults: a scorer killed mid-write, two scorers at once, an unreachable or locked MLflow
store, an unwritable output folder, a champion needing features the data cannot produce.

After every failure the output folder, the score history and the registry are unchanged.
The kill and the concurrent scorer are real processes (``python -m ka_ml score``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import isolated, registry_state, write_config
from typer.testing import CliRunner

from ka_ml.cli import app
from ka_ml.config import Config, MlflowConfig
from ka_ml.errors import KaMlError
from ka_ml.jobs.score import run_scoring
from ka_ml.scoring import score_history
from ka_ml.scoring.score_history import history_path

# A scorer whose spreadsheet writer stalls after writing half a file: the test kills it
# there (SIGKILL: no cleanup runs), which is a kill in the middle of writing the outputs.
STALLING_SCORER = """
import os, sys, time
from pathlib import Path

import ka_ml.reporting.excel as excel

marker, hold = Path(sys.argv[1]), float(sys.argv[2])
real = excel.write_excel


def stalled(scores, record, path, **kw):
    Path(path).write_bytes(b"half a spreadsheet")
    marker.write_text(str(os.getpid()))
    time.sleep(hold)
    return real(scores, record, path, **kw)


excel.write_excel = stalled
from ka_ml.cli import main

sys.argv = ["ka-ml", *sys.argv[3:]]
main()
"""

# A second scorer, started at the same time (imports in parallel), that begins its run
# once the first one is inside its writing step.
WAITING_SCORER = """
import sys, time
from pathlib import Path

import ka_ml.jobs.score  # the heavy imports, before waiting
from ka_ml.cli import main

marker = Path(sys.argv[1])
while not marker.exists():
    time.sleep(0.1)
sys.argv = ["ka-ml", *sys.argv[2:]]
main()
"""


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes); {} when it does not exist."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def staging_left(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if ".staging." in p.name or p.name.endswith(".old"))


def history_rows(cfg: Config) -> pd.DataFrame:
    return score_history.read(history_path(cfg))


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return out | {"OMP_WAIT_POLICY": "PASSIVE", "KA_ML_THREADS": "1"}


def spawn(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        env=env(),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# -- a killed scorer and a concurrent one (real processes) ---------------------------------


@dataclass(frozen=True)
class Killed:
    out: Path
    before: dict[str, bytes]
    after_kill: dict[str, bytes]
    staging_after_kill: list[dict[str, bytes]]
    history_before: pd.DataFrame
    history_after_kill: pd.DataFrame
    registry_before: dict[str, Any]
    registry_after_kill: dict[str, Any]
    second: subprocess.CompletedProcess[str]
    second_seconds: float
    rerun_files: dict[str, bytes]
    staging_after_rerun: list[Path]


@pytest.fixture(scope="module")
def killed(trained: Any, demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Killed:
    root = tmp_path_factory.mktemp("faults")
    cfg = isolated(trained.cfg, root, owner_reports=False)
    config = write_config(cfg, root / "ka_ml.yaml")
    out = root / "runs" / "week"
    as_of = trained.history.default_as_of
    run_scoring(trained.history, cfg, as_of, out)  # last week's good outputs
    before, history_before, registry_before = files(out), history_rows(cfg), registry_state(cfg)

    stalling, waiting, marker = root / "stalling.py", root / "waiting.py", root / "writing.pid"
    stalling.write_text(STALLING_SCORER)
    waiting.write_text(WAITING_SCORER)
    args = ["score", "--config", str(config), "--data", str(demo_dir), "--out", str(out)]
    first = spawn([str(stalling), str(marker), "600", *args], root)
    second = spawn([str(waiting), str(marker), *args], root)
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            if first.poll() is not None:
                pytest.fail(f"the stalling scorer exited early: {first.communicate()}")
            if time.monotonic() > deadline:
                pytest.fail("the stalling scorer never reached the spreadsheet")
            time.sleep(0.1)
        t0 = time.monotonic()
        second_out, second_err = second.communicate(timeout=300)
        second_seconds = time.monotonic() - t0
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.communicate()
        if second.poll() is None:
            second.kill()
            second.communicate()
    stages = [files(p) for p in staging_left(out.parent)]
    after_kill, history_after_kill = files(out), history_rows(cfg)
    registry_after_kill = registry_state(cfg)

    run_scoring(trained.history, cfg, as_of, out)  # the next run recovers
    return Killed(
        out,
        before,
        after_kill,
        stages,
        history_before,
        history_after_kill,
        registry_before,
        registry_after_kill,
        subprocess.CompletedProcess(second.args, second.returncode, second_out, second_err),
        second_seconds,
        files(out),
        staging_left(out.parent),
    )


def test_a_scorer_killed_mid_write_leaves_the_previous_outputs_intact(killed: Killed) -> None:
    assert killed.after_kill == killed.before
    # it really was killed while writing: its half-written staging folder is still there
    assert [s.get("scores.xlsx") for s in killed.staging_after_kill] == [b"half a spreadsheet"]
    pd.testing.assert_frame_equal(killed.history_after_kill, killed.history_before)
    assert killed.registry_after_kill == killed.registry_before


def test_a_second_scorer_for_the_same_as_of_is_refused_while_the_first_writes(
    killed: Killed,
) -> None:
    assert killed.second.returncode == 2, killed.second.stderr
    text = " ".join(killed.second.stderr.split())
    assert f"Another ka-ml score run is writing '{killed.out.parent}' right now" in text
    assert "wait for it to finish" in text and "Traceback" not in text
    assert killed.second_seconds < 120  # refused at once, not queued behind the first


def test_the_next_run_after_a_kill_recovers_and_writes_whole_outputs(killed: Killed) -> None:
    assert killed.staging_after_rerun == []
    assert set(killed.rerun_files) == set(killed.before)
    assert killed.rerun_files["scores.parquet"] == killed.before["scores.parquet"]
    assert killed.rerun_files["scores.xlsx"].startswith(b"PK")  # a whole xlsx (zip) file


# -- the MLflow store ---------------------------------------------------------------------


def test_an_unreachable_mlflow_server_fails_fast_with_the_remedy(
    trained: Any, demo_dir: Path, tmp_path: Path, mlflow_state: None
) -> None:
    cfg = isolated(trained.cfg, tmp_path, owner_reports=False)
    config = write_config(cfg, tmp_path / "ka_ml.yaml")
    out = tmp_path / "runs" / "week"
    t0 = time.monotonic()
    res = CliRunner().invoke(
        app,
        ["score", "--config", str(config), "--data", str(demo_dir), "--out", str(out)],
        env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
    )
    seconds = time.monotonic() - t0
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "The MLflow store at 'http://127.0.0.1:9' cannot be used" in text
    assert "Fix: check MLFLOW_TRACKING_URI" in text and "is the server up" in text
    assert seconds < 45  # MLflow's own retries would take minutes (measured: 258 s)
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # the check cleaned up
    assert not out.exists() and not history_path(cfg).exists()


def test_a_locked_mlflow_store_fails_clearly_instead_of_hanging(
    trained: Any, tmp_path: Path, mlflow_state: None
) -> None:
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(Path(trained.cfg.paths.models) / "mlflow.db", db)
    cfg = isolated(trained.cfg, tmp_path, owner_reports=False).model_copy(
        update={"mlflow": MlflowConfig(tracking_uri=f"sqlite:///{db}")}
    )
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    out = tmp_path / "runs" / "week"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of writing
    try:
        t0 = time.monotonic()
        with pytest.raises(KaMlError) as err:
            run_scoring(trained.history, cfg, trained.history.default_as_of, out)
        seconds = time.monotonic() - t0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert f"The MLflow store at 'sqlite:///{db}' is locked by another process" in err.value.message
    assert "wait for the other" in err.value.remedy
    assert seconds < 30
    assert not out.exists() and not history_path(cfg).exists()
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


# -- the output folder --------------------------------------------------------------------


def test_an_unwritable_output_folder_fails_before_reading_data_or_models(
    trained: Any, demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ka_ml.jobs.data
    import ka_ml.jobs.score

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work was done for an unwritable output folder")

    cfg = isolated(trained.cfg, tmp_path, owner_reports=False)
    config = write_config(cfg, tmp_path / "ka_ml.yaml")
    registry_before = registry_state(cfg)
    monkeypatch.setattr(ka_ml.jobs.data, "load_history", no_work)
    monkeypatch.setattr(ka_ml.jobs.score, "load_models", no_work)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    res = CliRunner().invoke(
        app,
        ["score", "--config", str(config), "--data", str(demo_dir), "--out", str(blocker / "wk")],
    )
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert f"The output folder '{blocker}' is not writable" in text and "--out" in text
    assert blocker.read_text() == "not a folder"
    assert not history_path(cfg).exists()
    assert registry_state(cfg) == registry_before


# -- a champion that needs features the data cannot produce -----------------------------


def test_a_champion_needing_usage_features_fails_on_data_without_usage_naming_them(
    trained: Any, demo_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "no_usage"
    data.mkdir()
    for p in demo_dir.iterdir():
        if p.is_file() and p.name != "usage.csv":
            shutil.copy(p, data / p.name)
    cfg = isolated(trained.cfg, tmp_path, owner_reports=False)
    score_history.write_run(history_path(cfg), pd.DataFrame(columns=list(score_history.COLUMNS)))
    config = write_config(cfg, tmp_path / "ka_ml.yaml")
    registry_before = registry_state(cfg)
    out = tmp_path / "runs" / "week"
    res = CliRunner().invoke(
        app, ["score", "--config", str(config), "--data", str(data), "--out", str(out)]
    )
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "The model was trained with the 'usage' table, which the current data does not" in text
    for name in ("usage_recency_days", "usage_weekly_90d", "usage_trend_90d"):
        assert name in text
    assert "survey" not in text.split("does not have")[1].split("Fix:")[0]  # only the missing
    assert "restore 'usage' in the source (renamed? map it with data.tables: {usage:" in text
    assert "or retrain on this data (ka-ml train) to score without it" in text
    assert not out.exists()
    assert history_rows(cfg).empty
    assert registry_state(cfg) == registry_before


# -- the outputs of one run are published together ----------------------------------------


def test_a_failed_history_write_publishes_neither_files_nor_write_back(
    trained: Any, demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import NoSuchTableError

    from ka_ml.delivery.writeback import read_back

    def locked(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    cfg = isolated(trained.cfg, tmp_path, owner_reports=False)
    config = write_config(cfg, tmp_path / "ka_ml.yaml")
    crm = f"sqlite:///{tmp_path / 'crm.db'}"
    monkeypatch.setenv("KA_ML_WRITEBACK_URL", crm)
    monkeypatch.setattr(score_history, "write_run", locked)
    out = tmp_path / "runs" / "week"
    args = ["score", "--config", str(config), "--data", str(demo_dir), "--writeback"]
    res = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "The score history could not be written (database is locked)" in text
    assert "nothing was published" in text and "rerun" in text
    assert not out.exists() and not list(out.parent.glob(".week.staging.*"))
    assert history_rows(cfg).empty
    with pytest.raises(NoSuchTableError):  # the CRM was not told either
        read_back(crm)
