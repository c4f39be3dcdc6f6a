"""MLflow at the edge: where the store is, logging models, and the promotion gate.

The embedded default needs no server: a SQLite backend at ``<paths.models>/mlflow.db`` with
artifacts under ``<paths.models>/artifacts``. ``MLFLOW_TRACKING_URI`` wins when set.
Models are registered as pyfunc models wrapping our own classes (a logged
``LGBMClassifier`` would predict 0/1 labels through pyfunc, see stack notes); the
``champion`` alias moves only through :func:`promotion_decision`.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import logging
import math
import os
import re
import sqlite3
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from ka_ml.config import Config
from ka_ml.errors import KaMlError, ModelError, NoChampionError
from ka_ml.modeling.metrics import calibration_verdict

log = logging.getLogger("ka_ml.registry")

CHAMPION = "champion"
CHALLENGER = "challenger"
_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def _embedded_uri(cfg: Config) -> str:
    """The embedded store: the SQLite file in ``paths.models``."""
    return f"sqlite:///{(Path(cfg.paths.models) / 'mlflow.db').resolve()}"


def tracking_uri(cfg: Config) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else config, else the embedded SQLite store."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if cfg.mlflow.tracking_uri:
        return cfg.mlflow.tracking_uri
    return _embedded_uri(cfg)


def main(argv: list[str] | None = None) -> None:
    """``python -m ka_ml.modeling.registry [--config PATH]``: print the tracking URI that
    config resolves to (:func:`tracking_uri`), for ``make ui CONFIG=...``."""
    import argparse

    from ka_ml.config import load_config

    parser = argparse.ArgumentParser(prog="python -m ka_ml.modeling.registry")
    parser.add_argument("--config", type=Path, default=None)
    args = parser.parse_args(argv)
    print(tracking_uri(load_config(args.config)))


def connect(cfg: Config) -> Any:
    """Point MLflow at the store, make sure the experiment exists; return a client.

    Fails with the remedy when the store cannot be reached or is locked.
    """
    uri = tracking_uri(cfg)
    if uri.startswith("sqlite:///"):
        _check_sqlite_store(uri)
    # mlflow.set_*_uri also export the URI to os.environ; undo that so that a later
    # tracking_uri(cfg) in this process sees only what the user set, not the last store used.
    saved = {k: os.environ.get(k) for k in _URI_VARIABLES}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        with warnings.catch_warnings(), _fail_fast_http(uri):
            warnings.simplefilter("ignore")
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            exp = client.get_experiment_by_name(cfg.mlflow.experiment)
            if exp is None:
                artifacts = None
                if uri.startswith("sqlite:///"):
                    artifacts = (Path(cfg.paths.models) / "artifacts").resolve().as_uri()
                client.create_experiment(cfg.mlflow.experiment, artifact_location=artifacts)
    except Exception as e:  # mlflow raises many types for an unusable store
        raise KaMlError(
            f"The MLflow store at '{uri}' cannot be used: {str(e).splitlines()[0][:300]}",
            "check MLFLOW_TRACKING_URI / mlflow.tracking_uri (is the server up, the file "
            "readable and not locked by another process?).",
        ) from e
    with _fail_fast_http(uri):
        mlflow.set_experiment(cfg.mlflow.experiment)
    return client


def check_writes_here(client: Any, cfg: Config) -> None:
    """Refuse a training run whose model files would land outside ``paths.models``.

    MLflow keeps each experiment's artifact folder as an absolute path in the store. A
    models folder copied elsewhere (a sandbox retrain beside production) keeps the
    original's path: a user's retrain into the copy wrote its model files into the
    original folder, and once those were moved aside neither store could load them. Only
    the embedded store (the SQLite file in ``paths.models``) is checked: a configured
    server or ``MLFLOW_TRACKING_URI`` keeps its artifacts where its owner put them.
    """
    if tracking_uri(cfg) != _embedded_uri(cfg):
        return
    exp = client.get_experiment_by_name(cfg.mlflow.experiment)
    location = str(getattr(exp, "artifact_location", "") or "")
    if not location.startswith("file:"):
        return
    folder = Path(cfg.paths.models).resolve()
    kept = Path(location.removeprefix("file://").removeprefix("file:")).resolve()
    if kept.is_relative_to(folder):
        return
    raise KaMlError(
        f"The MLflow store in {folder} keeps the model files of its experiment "
        f"'{cfg.mlflow.experiment}' in {kept}, outside that folder: the models folder was "
        "copied or moved from there (MLflow records absolute paths). Training here would "
        f"write the new models into {kept}; nothing was written.",
        f"to train beside the original, point paths.models at a new, empty folder (a store "
        f"of its own), or keep this copy and set mlflow.experiment to a new name (its "
        f"model files then go to {folder / 'artifacts'}); to add to the original store, "
        f"point paths.models at {kept.parent}.",
    )


# A server store is checked with one try and a short timeout: MLflow's own defaults (7
# retries with exponential backoff, 120 s timeout) make a wrong or down server hang for
# minutes (measured: 258 s for a refused connection) before saying anything.
_HTTP_CHECK = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


@contextlib.contextmanager
def _fail_fast_http(uri: str) -> Iterator[None]:
    """During the store check only, make MLflow's HTTP client try once, for 10 s at most."""
    if not uri.lower().startswith(("http://", "https://")):
        yield
        return
    saved = {k: os.environ.get(k) for k in _HTTP_CHECK}
    os.environ.update(_HTTP_CHECK)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def missing_store(cfg: Config) -> Path | None:
    """The local SQLite store's file when the configured store is one and does not exist
    yet (nothing was ever trained there); None otherwise. A reader checks this before
    :func:`connect`, which would create an empty store."""
    uri = tracking_uri(cfg)
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
    return None if path.exists() else path


def _check_sqlite_store(uri: str) -> None:
    """Open a local SQLite store once, directly.

    MLflow retries an unopenable SQLite file for about 100 s before failing; opening it with
    sqlite3 first turns a bad path (inside a file, a directory, not a database) into an
    immediate, explained error.
    """
    path = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path)
        try:
            con.execute("PRAGMA schema_version")
        finally:
            con.close()
    except sqlite3.OperationalError as e:
        if "locked" not in str(e).lower():
            raise _unusable(uri, path, e) from e
        raise KaMlError(
            f"The MLflow store at '{uri}' is locked by another process ({e}; {path}).",
            "wait for the other ka-ml train/score run (or a tool holding the file open) to "
            "finish, then rerun; nothing was written.",
        ) from e
    except (OSError, sqlite3.Error) as e:
        raise _unusable(uri, path, e) from e


def _unusable(uri: str, path: Path, e: Exception) -> KaMlError:
    return KaMlError(
        f"The MLflow store at '{uri}' cannot be used: {e} ({path}).",
        "point MLFLOW_TRACKING_URI / mlflow.tracking_uri (or paths.models) at a writable "
        "SQLite file path, or remove what is in the way.",
    )


def champion_version(client: Any, name: str) -> Any | None:
    """The model version carrying the champion alias, or None."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


@dataclass(frozen=True)
class Decision:
    promote: bool
    alias: str
    reason: str
    warning: str = ""  # set when promoted although a secondary gate failed


def promotion_decision(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    *,
    metric: str,
    margin: float,
    higher_is_better: bool = True,
    ece: float | None = None,
    ece_ceiling: float | None = None,
    ece_chance: float | None = None,
    beats_baselines: bool | None = None,
    champion_warning: str = "",
    trails: str = "",
    ahead: str = "",
    by_hand: str = "`ka-ml promote` makes it champion by hand",
) -> Decision:
    """Promote only a candidate that is calibrated and beats the champion by the margin.

    Both are measured on the same, current out-of-time test rows. One exception keeps a
    user from being left without any model: when there is no comparable champion yet and
    the candidate beats every baseline (``beats_baselines``), a failed calibration ceiling
    (a secondary gate) does not hold it back; it becomes champion and the decision carries
    a ``warning`` saying so. With a champion in place the ceiling refuses, unless that
    champion was itself promoted above it (``champion_warning``): then a candidate that
    beats it and every baseline replaces it, with the same warning.
    ``ece_chance``: the calibration error chance alone gives on the test rows
    (:func:`calibration_verdict`).

    A first model that a baseline beats out of time beyond chance (``ahead``, in words:
    :func:`baseline_ahead` with ``within_chance``) is not promoted: managers would get
    lights worse than the baseline's. One that trails a baseline only within chance
    (``trails``: the strict :func:`baseline_ahead`; on a small portfolio a coin toss) is,
    with a warning naming the baseline. ``by_hand``: the command that promotes it anyway.
    """
    new = candidate.get(metric, float("nan"))
    old = champion.get(metric, float("nan")) if champion is not None else float("nan")
    first = not math.isfinite(old)  # no comparable champion yet
    refusal, note = calibration_verdict(ece, ece_ceiling, ece_chance)
    note = f"; {note}" if note else ""
    excused = bool(beats_baselines) and (first or "calibration error" in champion_warning)
    if refusal and not (excused and math.isfinite(new)):
        if first and beats_baselines is False:  # say why the first-model exception failed
            behind = f" ({trails})" if trails else ""
            refusal += (
                "; a first model failing the calibration gate is promoted only when it beats "
                f"every baseline out of time, and this one does not{behind}; {by_hand}"
            )
        return Decision(False, CHALLENGER, refusal)
    calibration = _is_above(refusal)  # what failed the ceiling, when it is overridden
    if not math.isfinite(new):
        return Decision(False, CHALLENGER, f"{metric} could not be measured on the test rows")
    if first and ahead:
        return Decision(
            False,
            CHALLENGER,
            f"no comparable champion yet, but a baseline does better out of time beyond "
            f"chance ({ahead}): a model that loses to a baseline is not promoted; {by_hand}",
        )
    if first:
        if calibration:
            return Decision(
                True,
                CHAMPION,
                f"no comparable champion yet and it beats every baseline ({metric} {new:.4f}): "
                f"promoted although its {calibration} (warning)",
                warning=f"promoted although its {calibration}: no comparable champion yet and "
                "it beats every baseline",
            )
        if trails:
            caveat = f"a baseline does better out of time, within chance ({trails})"
            return Decision(
                True,
                CHAMPION,
                f"no comparable champion yet ({metric} {new:.4f}){note}; {caveat} (warning)",
                warning=f"promoted although {caveat}: no comparable champion yet",
            )
        return Decision(True, CHAMPION, f"no comparable champion yet ({metric} {new:.4f}){note}")
    gain = (new - old) if higher_is_better else (old - new)
    # A tolerance keeps float noise (0.77 - 0.75 = 0.0200000001) from deciding.
    if gain > margin + 1e-9 or (margin == 0 and gain > 1e-12):
        better = f"{metric} {new:.4f} beats the champion's {old:.4f} (margin {margin})"
        if calibration:
            return Decision(
                True,
                CHAMPION,
                f"{better} and every baseline: promoted although its {calibration}, as the "
                "champion was (warning)",
                warning=f"promoted although its {calibration}: the champion was promoted "
                "above the ceiling too, and this model beats it and every baseline",
            )
        return Decision(True, CHAMPION, f"{better}{note}")
    return Decision(
        False,
        CHALLENGER,
        f"{metric} {new:.4f} does not beat the champion's {old:.4f} by the margin {margin}",
    )


def same_backtest(decision: Decision) -> Decision:
    """``decision`` (:func:`promotion_decision` of the new model's out-of-time figures
    against those the champion's own training run measured) said as what it is: a champion
    retrained on the same data and as-of (another config, new code) saw every test row's
    outcome, so it cannot be re-scored there, but its run tested its procedure on the very
    same rows (the same ``test_rows_fingerprint``), as this run tested its own."""
    said = (
        "compared with the out-of-time figures the champion's own training run measured on "
        f"these same test rows: {decision.reason}"
    )
    return replace(decision, reason=said)


def _is_above(refusal: str) -> str:
    """'calibration error 0.054 above ...' -> 'calibration error 0.054 is above ...'."""
    return re.sub(r"^(calibration error [0-9.]+) above", r"\1 is above", refusal)


# what replaces the comparison the gate cannot make (a champion retrained within the horizon)
AFTERWARDS = (
    "`ka-ml backtest` tells how each version did on the weeks it scored, once their horizon "
    "has passed"
)


def fresher_decision(
    champion: str,
    champion_as_of: pd.Timestamp | None,
    as_of: pd.Timestamp | None,
    *,
    ece: float | None = None,
    ece_ceiling: float | None = None,
    ece_chance: float | None = None,
    holds_baselines: bool | None = None,
    beats_baselines: bool | None = None,
    champion_warning: str = "",
    by_hand: str = "`ka-ml promote` by hand",
) -> Decision:
    """The gate when the champion was trained on the outcomes of every test row (a retrain
    within the horizon of it): its scores there would be in-sample, so the two are not
    compared. A candidate trained on newer data replaces it only when no baseline does
    better out of time beyond chance (``holds_baselines``: :func:`baselines_beaten` with
    ``within_chance``; on a small portfolio a strict win on every figure is a coin toss)
    and its calibration passes (:func:`calibration_verdict`); otherwise it stays challenger
    and the reason names the way to compare by hand (``by_hand``: the command that
    promotes it, ``ka-ml promote NAME VERSION``).

    A champion that was itself promoted above the calibration ceiling (``champion_warning``,
    the first-model rule of :func:`promotion_decision`) does not hold its successor to the
    ceiling: one that beats every baseline replaces it, with the same warning. Otherwise a
    small portfolio whose first model missed the ceiling would keep that model for ever."""
    seen = (
        f"the champion {champion} (trained as of {champion_as_of.date()}) learnt outcomes up "
        "to that date, after every test origin, which overlap each test row's window (its "
        "scores there are not out of time), so they cannot be compared there"
        if champion_as_of is not None
        else f"the champion {champion} learnt outcomes that overlap every test row's window"
    )
    newer = as_of is not None and champion_as_of is not None and as_of > champion_as_of
    if not newer:
        return Decision(
            False,
            CHALLENGER,
            f"{seen}, and this model is not trained on newer data: compare the two runs in "
            f"MLflow and {by_hand}",
        )
    if not holds_baselines:
        return Decision(
            False, CHALLENGER, f"{seen}; a baseline does better than this model out of time"
        )
    refusal, note = calibration_verdict(ece, ece_ceiling, ece_chance)
    assert as_of is not None
    newer_note = f"this model is trained on newer data (as of {as_of.date()})"
    if refusal and beats_baselines and "calibration error" in champion_warning:
        calibration = _is_above(refusal)
        return Decision(
            True,
            CHAMPION,
            f"{seen}; {newer_note} and beats every baseline out of time: promoted although "
            f"its {calibration}, as the champion was (warning)",
            warning=f"promoted although its {calibration}: the champion {champion} was "
            "promoted above the ceiling too, and this model is on newer data and beats every "
            "baseline",
        )
    if refusal:
        return Decision(False, CHALLENGER, f"{seen}; {refusal}")
    return Decision(
        True,
        CHAMPION,
        f"{seen}; {newer_note} and no baseline does better out of time beyond chance"
        + (f"; {note}" if note else "")
        + f"; {AFTERWARDS}",
    )


def _trailing(
    table: pd.DataFrame, model: str, metrics: dict[str, bool], within_chance: bool
) -> tuple[list[tuple[str, str, float, float]], bool] | None:
    """((predictor, metric, theirs, ours) for every figure where ``model`` does not beat a
    row, whether anything was compared); None without exactly one ``model`` row."""
    if "predictor" not in table.columns:
        return None
    rows = table.to_dict("records")
    mine = [r for r in rows if r["predictor"] == model]
    if len(mine) != 1:
        return None
    compared, losses = False, []
    for row in rows:
        if row["predictor"] == model:
            continue
        for metric, higher in metrics.items():
            theirs = float(row.get(metric, float("nan")))
            if not math.isfinite(theirs):
                continue
            ours = float(mine[0].get(metric, float("nan")))
            beaten = ours > theirs if higher else ours < theirs  # NaN ours: not beaten
            if not beaten and not (within_chance and _within_chance(row, metric, higher)):
                losses.append((str(row["predictor"]), metric, theirs, ours))
            compared = True
    return losses, compared


def beats_every_baseline(
    table: pd.DataFrame, model: str, metrics: dict[str, bool], *, within_chance: bool = False
) -> bool | None:
    """Whether the ``model`` row of a comparison table (one row per ``predictor``, all on the
    same test rows) strictly beats every other row on each of ``metrics`` (name -> higher is
    better) that the other row measured. None when nothing could be compared.

    ``within_chance``: trailing a row is forgiven where the paired bootstrap interval of the
    difference (``model_minus_this_<metric>_lo`` / ``_hi`` on that row) includes zero, i.e.
    no baseline does better beyond chance; without an interval the strict rule holds."""
    found = _trailing(table, model, metrics, within_chance)
    if found is None:
        return None
    losses, compared = found
    if losses:
        return False
    return True if compared else None


def _metric_words(metric: str) -> str:
    """'roc_auc' -> 'ROC AUC', 'p30_brier' -> 'P(order within 30 d) Brier score'."""
    window, _, rest = (
        metric.partition("_") if metric[:1] == "p" and metric[1:2].isdigit() else ("", "", metric)
    )
    words = {"roc_auc": "ROC AUC", "auc": "ROC AUC", "brier": "Brier score"}.get(rest, rest)
    return f"P(order within {window[1:]} d) {words}" if window else words


def baseline_ahead(
    table: pd.DataFrame, model: str, metrics: dict[str, bool], *, within_chance: bool = False
) -> str:
    """The baseline figure furthest ahead of ``model``, in words ("recency only: ROC AUC
    0.954 against the model's 0.630"); "" when the model beats every baseline (with
    ``within_chance``: when none does better beyond chance, :func:`beats_every_baseline`)."""
    found = _trailing(table, model, metrics, within_chance)
    if not found or not found[0]:
        return ""
    who, metric, theirs, ours = max(found[0], key=lambda x: abs(x[2] - x[3]))
    a, b = distinct_figures(theirs, ours)
    return f"{who}: {_metric_words(metric)} {a} against the model's {b}"


def distinct_figures(a: float, b: float, digits: int = 3, most: int = 6) -> tuple[str, str]:
    """Two figures with ``digits`` decimals, or as many more (up to ``most``) as it takes to
    tell them apart: "0.056 against 0.056" reads as a tie the verdict says it is not."""
    for d in range(digits, most + 1):
        shown = f"{a:.{d}f}", f"{b:.{d}f}"
        if shown[0] != shown[1]:
            return shown
    return shown


def _within_chance(row: dict[Any, Any], metric: str, higher: bool) -> bool:
    """Whether the paired interval of (model - this row) on ``metric`` includes zero."""
    lo = float(row.get(f"model_minus_this_{metric}_lo", float("nan")))
    hi = float(row.get(f"model_minus_this_{metric}_hi", float("nan")))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return False
    return hi >= 0 if higher else lo <= 0


def _baseline_metrics(windows: list[int]) -> dict[str, tuple[str, dict[str, bool]]]:
    """kind -> (the model's row in its comparison table, metric -> higher is better)."""
    timing = {f"p{k}_auc": True for k in windows} | {f"p{k}_brier": False for k in windows}
    return {
        "churn": ("ka_ml churn model", {"roc_auc": True, "brier": False}),
        "timing": ("ka_ml timing model", timing),
    }


def baselines_beaten(
    churn_comparison: pd.DataFrame,
    timing_comparison: pd.DataFrame,
    windows: list[int],
    *,
    within_chance: bool = False,
) -> dict[str, bool]:
    """For each model: does it beat every baseline on the out-of-time test rows?

    Churn: ROC AUC and Brier score against recency, RFM logistic regression and BG/NBD.
    Timing: AUC and Brier score of P(order within k days), every window, against BG/NBD.
    Nothing to compare counts as not beating them. ``within_chance``: or trail one only
    within its bootstrap interval (:func:`beats_every_baseline`).
    """
    tables = {"churn": churn_comparison, "timing": timing_comparison}
    return {
        kind: bool(beats_every_baseline(tables[kind], row, metrics, within_chance=within_chance))
        for kind, (row, metrics) in _baseline_metrics(windows).items()
    }


def baselines_ahead(
    churn_comparison: pd.DataFrame,
    timing_comparison: pd.DataFrame,
    windows: list[int],
    *,
    within_chance: bool = False,
) -> dict[str, str]:
    """For each model, :func:`baseline_ahead`: the baseline figure furthest ahead of it, in
    words ("" when it beats them all; with ``within_chance``, when none is ahead beyond
    chance)."""
    tables = {"churn": churn_comparison, "timing": timing_comparison}
    return {
        kind: baseline_ahead(tables[kind], row, metrics, within_chance=within_chance)
        for kind, (row, metrics) in _baseline_metrics(windows).items()
    }


class KaMlModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """A ka_ml model (churn or timing) behind MLflow's pyfunc interface: ``predict`` is the
    model's own ``predict_frame`` (a pyfunc served alone has no churn probabilities to
    anchor the timing curve to)."""

    def __init__(self, model: Any, kind: str, windows: list[int] | None = None) -> None:
        self.model = model
        self.kind = kind
        self.windows = list(windows or [])

    # ``model_input: pd.DataFrame``: MLflow infers no schema from that hint and so neither
    # validates nor converts inputs by it (our signature is the logged one); without any
    # hint it warned "Add type hints to the `predict` method" atop every command's console
    # when this class was defined (a warning its own decorator forces on, past any filter)
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return self.model.predict_frame(model_input, self.windows)


PIP_REQUIREMENTS = ["ka_ml", "lightgbm", "pandas", "numpy", "scikit-learn", "mlflow"]


def log_and_register(
    model: Any, kind: str, registered_name: str, example: pd.DataFrame, windows: list[int]
) -> str:
    """Log the model in the active run, register it; return the new version number."""
    example = example.head(5).copy()
    signature = infer_signature(example, model.predict_frame(example, windows))
    quiet = [logging.getLogger(n) for n in ("mlflow", "mlflow.pyfunc", "mlflow.utils.environment")]
    levels = [lg.level for lg in quiet]
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        wrapped = KaMlModel(model, kind, windows)
        info = mlflow.pyfunc.log_model(
            name=f"{kind}_model",
            python_model=wrapped,
            signature=signature,
            pip_requirements=PIP_REQUIREMENTS,
            registered_model_name=registered_name,
        )
        for lg, lv in zip(quiet, levels, strict=True):
            lg.setLevel(lv)
    return str(info.registered_model_version)


def set_alias(client: Any, name: str, alias: str, version: str) -> None:
    client.set_registered_model_alias(name, alias, version)


def aliases(client: Any, name: str) -> dict[str, str]:
    """alias -> version of registered model NAME ({} when it is not registered yet)."""
    try:
        return {str(k): str(v) for k, v in client.get_registered_model(name).aliases.items()}
    except MlflowException:
        return {}


def roll_back(client: Any, run_id: str, before: dict[str, dict[str, str]]) -> None:
    """Undo a registration cut short: delete every version of the models of ``before``
    (name -> alias -> version, as they were) that run ``run_id`` registered, and put their
    aliases back. Best effort: a failing step is logged and the others still run (the
    caller re-raises what cut it short)."""
    for name, held in before.items():
        try:
            mine = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
        except MlflowException as e:
            log.warning("could not look up the versions of %s from run %s: %s", name, run_id, e)
            mine = []
        for mv in mine:
            try:
                client.delete_model_version(name, str(mv.version))
            except MlflowException as e:
                log.warning("could not remove the half-registered %s v%s: %s", name, mv.version, e)
        for alias in set(aliases(client, name)) - set(held):  # set by the run cut short
            try:
                client.delete_registered_model_alias(name, alias)
            except MlflowException as e:
                log.warning("could not remove %s@%s: %s", name, alias, e)
        for alias, version in held.items():
            try:
                client.set_registered_model_alias(name, alias, version)
            except MlflowException as e:
                log.warning("could not restore %s@%s -> v%s: %s", name, alias, version, e)


def load_version(name: str, version: str) -> Any:
    """Our model object behind a registered pyfunc version.

    A version registered before the models became scikit-learn estimators is refused with
    a :class:`ModelError` naming it and the remedy (retrain, or promote a newer version);
    the training run's champion comparison treats it as not comparable. A models folder
    moved since training (the store records absolute artifact paths) is read where it is
    now, or refused naming where the registry says the files are (:func:`_load_moved`).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pf = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
        except ModelError as e:
            raise ModelError(
                f"Registered model '{name}' version {version}: {e.message}",
                e.remedy.replace("NAME", name),
            ) from e
        except (MlflowException, OSError) as e:
            pf = _load_moved(name, version, e)
    return pf.unwrap_python_model().model


def _artifacts_root() -> Path | None:
    """The ``artifacts`` folder beside the current SQLite store (``<paths.models>/artifacts``
    for the embedded default); None for another store."""
    uri = _current_uri()
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0]).parent / "artifacts"


def _relocated(recorded: Path, root: Path) -> Path | None:
    """``recorded`` (an absolute path into some ``.../artifacts`` folder) under ``root``,
    the current store's artifacts folder, when that same relative layout exists there:
    the models folder was moved or restored elsewhere. Model and run ids are unique, so
    the same relative path is the same model."""
    parts = recorded.parts
    inside = root.resolve()
    for i, part in enumerate(parts[:-1]):
        candidate = root.joinpath(*parts[i + 1 :])
        if (
            part == "artifacts"
            and candidate.is_dir()
            and candidate.resolve().is_relative_to(inside)
        ):
            return candidate  # never a folder outside the store's own (a '..' in the record)
    return None


def _load_moved(name: str, version: str, error: Exception) -> Any:
    """The pyfunc of a version whose recorded artifact path is gone: read from the current
    store's folder when its files are there (:func:`_relocated`), else a ModelError naming
    where the registry says they are and the fix."""
    try:
        where = str(MlflowClient().get_model_version_download_uri(name, version))
    except MlflowException:
        where = ""
    recorded = Path(where.removeprefix("file://")) if where.startswith("file://") else None
    root = _artifacts_root()
    if recorded is not None and root is not None and not recorded.exists():
        moved = _relocated(recorded, root)
        if moved is not None:
            log.info(
                "%s v%s: read from %s (the registry records %s)", name, version, moved, recorded
            )
            return mlflow.pyfunc.load_model(str(moved))
    detail = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:300]}"
    if recorded is None or recorded.exists():
        raise ModelError(
            f"Registered model '{name}' version {version} cannot be loaded from the "
            f"registry at {_current_uri()} ({where or 'no location recorded'}): {detail}.",
            f"check that store's files; or retrain (`ka-ml train`), or promote another "
            f"version (`ka-ml promote {name} VERSION`).",
        ) from error
    old = next((p for p in recorded.parents if p.name == "artifacts"), recorded).parent
    raise ModelError(
        f"Registered model '{name}' version {version} cannot be loaded: the registry at "
        f"{_current_uri()} says its files are in {recorded}, which does not exist, and "
        f"they are not under {root or 'the store'} either. The models folder (paths.models) "
        f"was moved or copied since it was trained there ({old}): the registry records "
        "absolute paths.",
        f"move the models folder back to {old}; or copy it whole (mlflow.db with its "
        "artifacts/ folder beside it) and point paths.models (or MLFLOW_TRACKING_URI) at "
        "the copy; or retrain in the new place (`ka-ml train`).",
    ) from error


def load_champion(
    client: Any, name: str, what: str, train: str = "`ka-ml train`", config_option: str = ""
) -> tuple[Any, str]:
    """(model, version) of the champion, or a NoChampionError with the remedy: ``train``,
    the command that trains one, and ``ka-ml models`` / ``ka-ml promote`` with
    ``config_option`` (the run's own ``--config``, to reach the same registry)."""
    mv = champion_version(client, name)
    if mv is None:
        raise NoChampionError(
            f"No {what} model carries the 'champion' alias in the registry '{name}' at "
            f"{_current_uri()}.",
            f"train one first with {train}; or, when versions are registered (`ka-ml "
            f"models{config_option}` lists them), promote one by hand with `ka-ml promote"
            f"{config_option} {name} VERSION`; or point MLFLOW_TRACKING_URI at the registry "
            "that holds it.",
        )
    return load_version(name, str(mv.version)), str(mv.version)


def training_tags(client: Any, mv: Any) -> dict[str, str]:
    """The tags of the run a registered version was trained in (``as_of``, its promotion
    ``decision_<kind>`` and ``warning_<kind>``); empty when that run is gone or elsewhere."""
    try:
        return dict(client.get_run(mv.run_id).data.tags)
    except MlflowException:
        return {}


def tagged_as_of(tags: dict[str, str]) -> pd.Timestamp | None:
    """The as-of date a training run's tags (:func:`training_tags`) name, or None."""
    return pd.Timestamp(tags["as_of"]) if tags.get("as_of") else None


def trained_as_of(client: Any, name: str, version: str) -> pd.Timestamp | None:
    """The as-of date VERSION of NAME was trained at (its training run's ``as_of`` tag):
    its features and labels read the data before it. None when unknown (the run is gone,
    or the version was registered elsewhere)."""
    try:
        return tagged_as_of(training_tags(client, client.get_model_version(name, str(version))))
    except (MlflowException, ValueError):
        return None


def training_metrics(client: Any, name: str, version: str) -> dict[str, float]:
    """The metrics of the run VERSION of NAME was trained in (``label_return_share``, ...);
    empty when that run is gone or the version was registered elsewhere."""
    try:
        mv = client.get_model_version(name, str(version))
        return dict(client.get_run(mv.run_id).data.metrics)
    except MlflowException:
        return {}


def manager_words(verdict: str) -> str:
    """A gate verdict without its instructions to whoever runs the CLI ("...: compare the
    two runs in MLflow and `ka-ml promote NAME VERSION` by hand", "...; `ka-ml promote ...`
    makes it champion by hand"): a manager's report has no command line."""
    return re.sub(r"[;:] [^;:]*`ka-ml [^;]*", "", verdict).strip()


def champion_note(client: Any, name: str, version: str, what: str, kind: str) -> str:
    """What a manager's report should say about how VERSION became the model in use, when
    it is not the plain story (the gate promoted it, no warning): made champion by hand
    over the gate's verdict, or promoted with a warning. "" otherwise, or when unknown.
    ``what``: "churn" or "purchase-timing"; ``kind``: the decision tags' suffix."""
    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException:
        return ""
    run_tags = training_tags(client, mv)
    tags = dict(mv.tags or {})
    decision = str(run_tags.get(f"decision_{kind}", ""))
    verdict = manager_words(decision.split(": ", 1)[1]) if ": " in decision else ""
    if tags.get("promoted_by_hand") == "true":
        who = ", ".join(
            x for x in (str(tags.get("promoted_at", ""))[:10], tags.get("promoted_by", "")) if x
        )
        why = f": {tags['promotion_reason']}" if tags.get("promotion_reason") else ""
        kept = (
            f"; training's promotion gate had kept it challenger ({verdict})"
            if " -> challenger" in decision and verdict
            else ""
        )
        return f"The {what} model in use (v{version}) was made champion by hand ({who}){why}{kept}."
    if warning := run_tags.get(f"warning_{kind}"):
        return f"The {what} model in use (v{version}) was {warning}."
    return ""


def no_champion_note(
    client: Any, name: str, what: str, kind: str, left_out: str, *, for_manager: bool = False
) -> str:
    """Why a run goes on without a ``what`` model: no version of NAME is champion.

    Names the newest registered version and the verdict that kept it challenger (its
    training run's ``decision_<kind>`` tag), and the command that promotes it by hand.
    ``left_out``: what the outputs leave empty without it. ``for_manager``: the report's
    wording, without command lines (:func:`manager_words`)."""
    versions = _versions(client, name) if _registered(client, name) is not None else []
    if not versions:
        return (
            f"No {what} model is registered as '{name}' yet: {left_out}. `ka-ml train` trains one."
        )
    newest = str(versions[0].version)
    decision = str(training_tags(client, versions[0]).get(f"decision_{kind}", ""))
    verdict = decision.split(": ", 1)[1] if " -> challenger: " in decision else ""
    if for_manager:
        verdict = manager_words(verdict)
    why = f" (training kept v{newest} challenger: {verdict})" if verdict else ""
    if for_manager:
        return f"No {what} model is champion yet{why}: {left_out}."
    return (
        f"No {what} model is champion yet{why}: {left_out}. `ka-ml promote {name} {newest}` "
        "makes it champion by hand (`ka-ml models` lists the versions)."
    )


def _current_uri() -> str:
    return str(mlflow.get_tracking_uri())


# -- looking at the registry and promoting by hand (`ka-ml models`, `ka-ml promote`) -----

# The main out-of-time test metrics of each kind, as logged by the training run
# (``test_<kind>_<metric>``), in the order they are shown; the first name found wins.
MAIN_METRICS: dict[str, tuple[tuple[str, ...], ...]] = {
    "churn": (("roc_auc",), ("brier",), ("ece",)),
    "timing": (("concordance",), ("p10_p90_coverage", "coverage_p10_p90")),
}


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version and the test metrics of the run that produced it."""

    name: str
    kind: str  # "churn", "timing", or "" for a model the config does not name
    version: str
    aliases: tuple[str, ...]
    created: datetime | None
    run_id: str
    metrics: dict[str, float] = field(default_factory=dict)  # every test_* metric of the run
    as_of: str = ""  # the date it was trained as of (its run's tag); '' when unknown


def key_metrics(kind: str, metrics: dict[str, float], limit: int = 3) -> dict[str, float]:
    """The main test metrics of a run for one model kind, by short name.

    Falls back to the first ``limit`` ``test_<kind>_*`` (then any ``test_*``) metrics the
    run has when none of the usual ones were logged.
    """
    prefix = f"test_{kind}_"
    main: dict[str, float] = {}
    for spellings in MAIN_METRICS.get(kind, ()):
        found = next((m for m in spellings if prefix + m in metrics), None)
        if found is not None:
            main[found] = metrics[prefix + found]
    if main:
        return main
    for start in (prefix, "test_"):
        rest = sorted(k for k in metrics if k.startswith(start))
        if rest:
            return {k.removeprefix(start): metrics[k] for k in rest[:limit]}
    return {}


def model_kinds(cfg: Config) -> dict[str, str]:
    """Registered model name -> kind, for the two models the config names."""
    return {cfg.mlflow.churn_model_name: "churn", cfg.mlflow.timing_model_name: "timing"}


def _versions(client: Any, name: str) -> list[Any]:
    found = client.search_model_versions(f"name='{name}'")
    return sorted(found, key=lambda mv: int(mv.version), reverse=True)


def _registered(client: Any, name: str) -> Any | None:
    try:
        return client.get_registered_model(name)
    except MlflowException:
        return None


def list_versions(client: Any, cfg: Config) -> list[VersionInfo]:
    """Every registered version of both configured models, newest first per model."""
    runs: dict[str, dict[str, float]] = {}
    as_of: dict[str, str] = {}
    out: list[VersionInfo] = []
    for name, kind in model_kinds(cfg).items():
        rm = _registered(client, name)
        if rm is None:
            continue
        aliases: dict[str, list[str]] = {}
        for alias, version in (rm.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        for mv in _versions(client, name):
            run_id = str(mv.run_id or "")
            if run_id and run_id not in runs:
                try:
                    data = client.get_run(run_id).data
                    runs[run_id] = {
                        k: float(v) for k, v in data.metrics.items() if k.startswith("test_")
                    }
                    as_of[run_id] = str(data.tags.get("as_of", ""))
                except MlflowException:  # the run was deleted
                    runs[run_id] = {}
            ts = mv.creation_timestamp
            out.append(
                VersionInfo(
                    name=name,
                    kind=kind,
                    version=str(mv.version),
                    aliases=tuple(sorted(aliases.get(str(mv.version), []))),
                    created=datetime.fromtimestamp(ts / 1000, tz=UTC) if ts else None,
                    run_id=run_id,
                    metrics=runs.get(run_id, {}),
                    as_of=as_of.get(run_id, ""),
                )
            )
    return out


def find_version(client: Any, name: str, version: str) -> Any:
    """The registered version ``version`` ("3" or "v3") of model ``name``, or a KaMlError
    naming what exists and how to see it."""
    if _registered(client, name) is None:
        names = sorted(rm.name for rm in client.search_registered_models(max_results=1000))
        known = ", ".join(names) if names else "none yet"
        raise KaMlError(
            f"'{name}' is not a registered model in the registry at {_current_uri()} "
            f"(registered models: {known}).",
            "pass one of the registered names (`ka-ml models` lists every version), or train "
            "with `ka-ml train` first; check --config / MLFLOW_TRACKING_URI if the registry is "
            "the wrong one.",
        )
    versions = _versions(client, name)
    wanted = version.strip().removeprefix("v").removeprefix("V")
    for mv in versions:
        if str(mv.version) == wanted:
            return mv
    known = ", ".join(str(mv.version) for mv in reversed(versions)) or "none"
    raise KaMlError(
        f"Model '{name}' has no version '{version}' (its versions: {known}).",
        f"pass one of them, e.g. `ka-ml promote {name} {versions[0].version if versions else 1}`;"
        " `ka-ml models` lists the versions with their aliases and test metrics.",
    )


@dataclass(frozen=True)
class ManualPromotion:
    name: str
    version: str
    previous: str | None  # the champion before, now `challenger`
    run_id: str  # the MLflow run that records it ("" when nothing changed)
    changed: bool
    # the version that carried `challenger` before (None: none did): it loses the alias when
    # it is neither the previous champion nor the promoted version
    challenger_before: str | None = None
    # the other configured model's champion when it comes from another training run, in
    # words ('' otherwise): a user mixed churn v1 with timing v2 without being told
    pair_note: str = ""

    def moves(self) -> list[str]:
        """Every alias the promotion moved, in words (the champion's first)."""
        out = [f"v{self.version} is now the champion"]
        if self.previous is not None:
            out.append(f"the previous champion v{self.previous} is now challenger")
        else:
            out.append("there was no champion before")
        was = self.challenger_before
        if was == self.version:
            out.append(f"v{self.version} no longer carries challenger")
        elif was is not None and was != self.previous:
            out.append(
                f"v{was} was challenger and now carries no alias (the previous champion took it)"
                if self.previous is not None
                else f"v{was} is still challenger"
            )
        return out


# what a hand promotion writes on the version it makes champion: they describe that
# promotion, so a later one overwrites or clears them all and a demotion removes them
HAND_TAGS = ("promoted_by_hand", "promoted_at", "promoted_by", "previous_champion")
REASON_TAG = "promotion_reason"


def _clear_tags(client: Any, name: str, version: str, keys: tuple[str, ...]) -> None:
    present = dict(client.get_model_version(name, version).tags or {})
    for key in keys:
        if key in present:
            client.delete_model_version_tag(name, version, key)


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment (containers)
        return os.environ.get("USER") or "unknown"


def promote_by_hand(
    client: Any, cfg: Config, name: str, version: str, *, reason: str = ""
) -> ManualPromotion:
    """Move `champion` to a registered version by hand, and record who did it and why.

    The previous champion gets the `challenger` alias (so it stays visible in
    `ka-ml models` and a rollback is `ka-ml promote NAME <its version>`), taking it from
    the version that had it; the promoted version loses `challenger` if it had it; other
    aliases are left alone (:meth:`ManualPromotion.moves` says what moved). The promoted
    version gets the tags ``promoted_by_hand``, ``promoted_at``, ``promoted_by``,
    ``previous_champion`` and ``promotion_reason`` (removed when no reason is given: an
    earlier promotion's reason is not this one's); the demoted champion loses them (it is
    no longer a hand-made champion). The promotion is logged as a run
    ``promote-NAME-vVERSION`` in the configured experiment. Nothing changes, and no run is
    logged, when the name or version does not exist or the version is already champion.
    """
    mv = find_version(client, name, version)
    target = str(mv.version)
    before = champion_version(client, name)
    previous = str(before.version) if before is not None else None
    if previous == target:
        return ManualPromotion(name, target, previous, "", changed=False)
    challenger = aliases(client, name).get(CHALLENGER)
    set_alias(client, name, CHAMPION, target)
    if previous is not None:
        set_alias(client, name, CHALLENGER, previous)  # also takes it off the new champion
        _clear_tags(client, name, previous, (*HAND_TAGS, REASON_TAG))
    elif challenger == target:
        client.delete_registered_model_alias(name, CHALLENGER)  # not both at once
    if not reason:
        _clear_tags(client, name, target, (REASON_TAG,))
    who, now = _who(), datetime.now(UTC).isoformat(timespec="seconds")
    tags = {
        "promoted_by_hand": "true",
        "promoted_at": now,
        "promoted_by": who,
        "previous_champion": previous or "none",
    }
    if reason:
        tags[REASON_TAG] = reason
    for key, value in tags.items():
        client.set_model_version_tag(name, target, key, value)
    exp = client.get_experiment_by_name(cfg.mlflow.experiment)
    run = client.create_run(
        exp.experiment_id,
        run_name=f"promote-{name}-v{target}",
        tags={
            "mlflow.user": who,
            "ka_ml.action": "promote by hand",
            "model": name,
            "version": target,
            "previous_champion": previous or "none",
            "promoted_by": who,
            "promoted_at": now,
            **({"reason": reason} if reason else {}),
        },
    )
    client.set_terminated(run.info.run_id)
    log.info("%s v%s promoted to champion by hand (was %s)", name, target, previous or "none")
    note = _pair_note(client, cfg, name, mv)
    return ManualPromotion(name, target, previous, run.info.run_id, True, challenger, note)


def _pair_note(client: Any, cfg: Config, name: str, mv: Any) -> str:
    """Where the other configured model's champion was trained in another run than the
    version just promoted: both versions with their training dates, and how to pair them
    again. '' when they share a run, or ``name`` is not one of the configured models."""
    kinds = model_kinds(cfg)
    if name not in kinds:
        return ""
    other = next((n for n in kinds if n != name), None)
    partner = champion_version(client, other) if other else None
    if partner is None or str(partner.run_id) == str(mv.run_id):
        return ""
    mine, theirs = (
        trained_as_of(client, name, str(mv.version)),
        trained_as_of(client, str(other), str(partner.version)),
    )
    same = next(
        (str(v.version) for v in _versions(client, str(other)) if str(v.run_id) == str(mv.run_id)),
        None,
    )
    return (
        f"the {other} champion (v{partner.version}"
        + (f", trained as of {theirs.date()}" if theirs is not None else "")
        + f") comes from another training run than {name} v{mv.version}"
        + (f" (trained as of {mine.date()})" if mine is not None else "")
        + "; the scores use both as they are"
        + (f": `ka-ml promote {other} {same}` pairs them again" if same is not None else "")
    )


if __name__ == "__main__":
    main()
