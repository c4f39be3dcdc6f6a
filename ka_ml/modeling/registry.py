"""MLflow at the edge: where the store is, logging and loading models, aliases, hand promotion.

The embedded default needs no server: a SQLite backend at ``<paths.models>/mlflow.db`` with
artifacts under ``<paths.models>/artifacts``. ``MLFLOW_TRACKING_URI`` wins when set.
Models are registered as pyfunc models wrapping our own classes (a logged
``LGBMClassifier`` would predict 0/1 labels through pyfunc, see stack notes); the
``champion`` alias moves only through :func:`~ka_ml.modeling.promotion.promotion_decision`.
The gate's rules themselves touch no MLflow and live in :mod:`ka_ml.modeling.promotion`.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import logging
import os
import sqlite3
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from ka_ml.modeling.promotion import CHALLENGER, CHAMPION, manager_words

log = logging.getLogger("ka_ml.registry")

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
