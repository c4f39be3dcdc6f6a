"""The notebooks' edge: inputs from environment variables, data, the champion's run, figures.

A notebook must run as is (from the repo root or from ``notebooks/``) and also under the
tests with other inputs, so every input comes from one variable with the CLI's default:

- ``KA_ML_CONFIG``: YAML config (default ``configs/ka_ml.yaml``, else built-in defaults);
- ``KA_ML_DATA``: folder or database (default: ``data.source``, else the demo data,
  generated on first use exactly as ``ka-ml`` does);
- ``KA_ML_AS_OF``: analysis date (default: the notebook's own, see each notebook);
- ``KA_ML_FIGURES``: folder where every figure is also saved (default ``outputs/figures``).

The MLflow store follows the config and ``MLFLOW_TRACKING_URI``, as everywhere else.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from ka_ml.analysis.plots import save_figure
from ka_ml.config import DEFAULT_CONFIG_PATH, Config, load_config
from ka_ml.data.coerce import parse_day
from ka_ml.demo.world import TRUTH_PATH
from ka_ml.errors import KaMlError
from ka_ml.jobs.data import choose_source

log = logging.getLogger("ka_ml.notebooks")

DEFAULT_FIGURES = Path("outputs") / "figures"


def find_project_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding the default config, else None.

    Jupyter starts a notebook's kernel in the notebook's folder; the defaults (config,
    demo data, MLflow store) are relative to the repo root, where ``make`` runs.
    """
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / DEFAULT_CONFIG_PATH).is_file():
            return folder
    return None


def data_source(cfg: Config, explicit: str | None = None) -> str:
    """The same rule as the ``--data`` default of the CLI (see ``ka_ml.data.source``)."""

    return choose_source(cfg, explicit)


def _parse_as_of(value: str | None) -> pd.Timestamp | None:
    return parse_day(value, "KA_ML_AS_OF")  # YYYY-MM-DD only, as --as-of


@dataclass(frozen=True)
class NotebookInputs:
    cfg: Config
    config_path: Path | None
    source: str
    as_of: pd.Timestamp | None
    figures: Path


def notebook_inputs(environ: Mapping[str, str] | None = None) -> NotebookInputs:
    """Resolve every input of a notebook from the environment (see the module doc)."""
    env = os.environ if environ is None else environ
    config_path = Path(env["KA_ML_CONFIG"]) if env.get("KA_ML_CONFIG") else None
    cfg = load_config(config_path)
    figures = Path(env.get("KA_ML_FIGURES") or DEFAULT_FIGURES)
    figures.mkdir(parents=True, exist_ok=True)
    return NotebookInputs(
        cfg=cfg,
        config_path=config_path
        if config_path
        else (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None),
        source=data_source(cfg, env.get("KA_ML_DATA") or None),
        as_of=_parse_as_of(env.get("KA_ML_AS_OF")),
        figures=figures,
    )


def load_truth(source: str | Path) -> pd.DataFrame | None:
    """The demo world's ground truth beside a demo data folder, or None (real data).

    Columns used by the notebooks: account_id (str), churned (bool), churn_date.
    """

    path = Path(source) / TRUTH_PATH
    if not path.is_file():
        return None
    truth = pd.read_csv(path, dtype={"account_id": "str"}, parse_dates=["churn_date"])
    truth["churn_date"] = truth["churn_date"].astype("datetime64[us]")
    truth["churned"] = truth["churned"].astype(bool)
    return truth


def show_png(path: str | Path, width: int | None = None) -> None:
    """Display a saved PNG inline when running under IPython (else the file is the output).

    Returns nothing, so a notebook cell ending with it shows the image and no repr.
    """
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(Image(filename=str(path), width=width))


def show_figure(fig: Any, folder: Path, name: str) -> None:
    """Save ``fig`` as ``folder/name.png`` and display it inline."""

    show_png(save_figure(fig, folder / f"{name}.png"))


@dataclass(frozen=True)
class ChampionRun:
    """What the champion's training run recorded: enough to rebuild its test rows."""

    version: str
    run_id: str
    as_of: pd.Timestamp | None
    data_fingerprint: str
    metrics: dict[str, float]
    test_dates: tuple[pd.Timestamp, ...] = ()


def champion_run(client: Any, name: str, version: str) -> ChampionRun:
    """Tags, test metrics and test snapshot dates of the run behind ``name`` ``version``."""

    mv = client.get_model_version(name, version)
    run = client.get_run(mv.run_id)
    tags = run.data.tags
    as_of = tags.get("as_of")
    try:
        split = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/split/snapshot_dates.json")
        dates = split.get("origins") or split.get("test", [])  # rolling origins, or older runs
        test_dates = tuple(sorted(pd.Timestamp(d) for d in dates))
    except Exception:  # an older run without the split record
        test_dates = ()
    return ChampionRun(
        version=str(version),
        run_id=str(mv.run_id),
        as_of=pd.Timestamp(as_of) if as_of else None,
        data_fingerprint=tags.get("data_fingerprint", ""),
        metrics=dict(run.data.metrics),
        test_dates=test_dates,
    )


def out_of_time_predictions(run_id: str) -> pd.DataFrame:
    """The training run's pooled out-of-time predictions (``evaluation/test_predictions.csv``):
    each test origin scored by the procedure fitted only on what was known before it."""

    path = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/evaluation/test_predictions.csv")
    df = pd.read_csv(path, dtype={"account_id": "str"})
    return df.assign(as_of=pd.to_datetime(df["as_of"]))


def label_settings(cfg: Config, snapshot_dates: Any) -> str:
    """The labelling settings in force, in words: the snapshot cadence (set, or chosen from
    the history when ``features.snapshot_every_days`` is null), the horizon and who is
    labelled (``labels.at_risk_only``)."""
    dates = sorted(pd.to_datetime(pd.Series(snapshot_dates).unique()))
    steps = sorted({(b - a).days for a, b in pairwise(dates)})
    every = (
        f"every {steps[0]} days"
        if len(steps) == 1
        else (f"every {steps[0]}-{steps[-1]} days" if steps else "a single date")
    )
    cadence = (
        f"features.snapshot_every_days = {cfg.features.snapshot_every_days}"
        if cfg.features.snapshot_every_days
        else "chosen from the history: features.snapshot_every_days is null"
    )
    who = (
        "only accounts still active at a snapshot are labelled (labels.at_risk_only = true)"
        if cfg.labels.at_risk_only
        else "every scored account is labelled, lapsed ones included (labels.at_risk_only = false)"
    )
    return (
        f"{len(dates)} snapshots, {every} ({cadence}); churn = {cfg.labels.churn_definition} "
        f"definition within labels.horizon_days = {cfg.labels.horizon_days}; {who}"
    )


MODELLING_SECTIONS = ("seed", "labels", "features", "portfolio", "tuning")


def review_config(current: Config, run_id: str) -> Config:
    """``current`` with the modelling sections the run was trained with.

    Rebuilding the champion's test rows needs its labels, features, portfolio rules and
    split settings, whatever the config in hand says today; data and paths stay current
    (they describe this machine). Falls back to ``current`` when the run has no readable
    resolved config (an older run, another schema), with a warning.
    """

    try:
        raw = mlflow.artifacts.load_dict(f"runs:/{run_id}/config/resolved_config.json")
        trained = Config.model_validate(raw)
    except Exception as e:  # missing artifact, unreachable store, older config schema
        log.warning("run %s: no usable resolved config (%s); using the current one", run_id, e)
        return current
    return current.model_copy(update={k: getattr(trained, k) for k in MODELLING_SECTIONS})


@dataclass(frozen=True)
class ReviewRows:
    """The rows a review judges the champion on, with a probability it never fitted.

    ``newer``: the labelled snapshots dated on or after the champion's training date,
    scored by the champion itself (it never saw their outcomes); else the run's own test
    origins with the out-of-time predictions logged at training. ``note``: what a reader
    should know about these rows ("" when nothing)."""

    rows: pd.DataFrame
    probability: np.ndarray
    newer: bool
    note: str = ""


def _days(dates: Any) -> list[str]:
    return sorted({str(pd.Timestamp(d).date()) for d in dates})


def review_rows(
    labelled: pd.DataFrame,
    test: pd.DataFrame,
    run: ChampionRun,
    as_of: pd.Timestamp,
    model: Any,
    logged: Callable[[], pd.DataFrame],
    horizon_days: int,
) -> ReviewRows:
    """Which rows to review the champion on, and their churn probabilities.

    ``as_of`` later than the champion's training date: the snapshots in ``labelled`` (churn
    outcome known before ``as_of``) dated on or after it, scored by ``model``: rows whose
    outcome the champion never saw. Otherwise ``test`` (the rebuilt test origins) with the
    run's logged out-of-time predictions (``logged()``), rows without one left out.
    Raises :class:`KaMlError` when no row is left to review.
    """
    if run.as_of is not None and as_of > run.as_of:
        rows = labelled[labelled["as_of"] >= run.as_of].reset_index(drop=True)
        if rows.empty:
            raise KaMlError(
                f"No snapshot dated on or after the champion's training date "
                f"({run.as_of.date()}) has a churn outcome known before KA_ML_AS_OF "
                f"{as_of.date()}: each needs its {horizon_days}-day horizon to have passed.",
                f"set KA_ML_AS_OF later than {(run.as_of + pd.Timedelta(days=horizon_days)).date()} "
                "by at least one snapshot interval (and within the data), or leave it unset to "
                "review the champion on its own test origins.",
            )
        p = np.asarray(model.predict_proba(rows[model.features_])[:, 1], dtype=float)
        note = (
            f"newer rows: the {rows['as_of'].nunique()} snapshot(s) {_days(rows['as_of'])}, "
            f"dated on or after the champion's training date {run.as_of.date()}, scored by "
            "the champion itself (it never saw these outcomes); the metrics logged at "
            "training describe other rows."
        )
        return ReviewRows(rows, p, True, note)
    oot = logged()
    p = (
        test[["account_id", "as_of"]]
        .merge(oot, on=["account_id", "as_of"], how="left")["churn_probability"]
        .to_numpy(dtype=float)
    )
    keep = np.isfinite(p)
    note = ""
    origins = _days(test["as_of"])
    if run.test_dates and _days(run.test_dates) != origins:
        note = (
            f"CAUTION: these test origins {origins} differ from the champion's own "
            f"({_days(run.test_dates)}): {int((~keep).sum()):,} of {len(p):,} rows without a "
            "logged out-of-time prediction are left out. Use the run's own as-of "
            f"({run.as_of and run.as_of.date()}) to review the rows the gate judged."
        )
    if not keep.any():
        raise KaMlError(
            f"None of the {len(p):,} test rows rebuilt as of {as_of.date()} ({origins}) has an "
            f"out-of-time prediction logged by the champion's training run {run.run_id} "
            f"(its test origins: {_days(run.test_dates) or 'not recorded'}).",
            "leave KA_ML_AS_OF unset (the champion's own training date), or set it later "
            "than that date to review the champion on newer rows it never saw.",
        )
    return ReviewRows(test[keep].reset_index(drop=True), p[keep], False, note)
