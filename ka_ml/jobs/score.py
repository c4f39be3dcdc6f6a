"""`ka-ml score` as a job: the weekly run from the champion models to every output.

Loads the champions from the registry, reads the score history (last week's lights and
contributions), scores and explains every account (here or on Spark), adds monitoring
(drift now, the latest backtest), and writes the outputs under a lock. Everything it calls
is pure or owns one edge. The lock is taken once the champions are found, and a run that
publishes nothing leaves no folder or lock file behind (:func:`exclusive_lock`).

The order of the writes, so that no single failure leaves the outputs disagreeing (the
files and the CRM saying one week, the API another):

1. the files (scores, report, spreadsheet, owners' digests, run record) are staged in a
   hidden sibling folder; a failure removes the stage, nothing is published;
2. the score history (what the API serves) is written in one transaction, still before
   the files are published; a failure (e.g. the history is locked) removes the stage;
3. the staged folder is swapped in (two renames in one folder, under the lock; the only
   step after the history's commit that could fail, and :func:`recover_staged` repairs a
   swap cut between its renames at the next run);
4. only then the database write-back (one transaction): its failure leaves the files and
   the history published and whole, says so, and exits non-zero; rerunning the date
   rewrites the same files and history rows and retries the write-back (idempotent).
   It was checked before scoring (:func:`check_writeback`), so it rarely fails here.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import shlex
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.delivery.run_delivery import stage_delivery, write_back_scores
from ka_ml.delivery.writeback import check_target, fallback_note, resolve_url
from ka_ml.errors import KaMlError, NoChampionError, stop_if_signalled
from ka_ml.features.build import build_features
from ka_ml.features.labels import ORDERS_FIRST, judged_by_orders
from ka_ml.io import (
    atomic_write_json,
    ensure_writable_dir,
    missing_dirs,
    recover_staged,
    remove_made_dirs,
    staged_dir,
)
from ka_ml.jobs.backtest import latest_summary
from ka_ml.jobs.data import align_feed_lags
from ka_ml.modeling import registry
from ka_ml.monitoring.drift import drift_report
from ka_ml.reporting.excel import write_excel
from ka_ml.reporting.html import write_report
from ka_ml.reporting.summary import lowest_lit, portfolio_summary
from ka_ml.scoring import score_history
from ka_ml.scoring.health import light_rule
from ka_ml.scoring.lifecycle import run_rate_text
from ka_ml.scoring.score import Models, Previous, score_and_explain
from ka_ml.spark.data import SparkHistory
from ka_ml.spark.score import score_with_features
from ka_ml.versions import package_versions

log = logging.getLogger("ka_ml.score")


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """One scorer per output folder at a time; a second one fails fast with the remedy.

    The lock file is removed when the run ends (a user found a 0-byte ``.2026-12-01.lock``
    beside every week's outputs), and the guarantee holds: the holder removes it while it
    still holds the lock, and a run that locked a file no longer at ``path`` (removed by
    the run before it, between this one's open and its lock) opens ``path`` anew, so two
    runs never each hold a lock file of their own."""
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fh = open(path, "a")  # noqa: SIM115 - closed below, after the lock is let go
        except FileNotFoundError:  # the folder was removed meanwhile (remove_made_dirs)
            continue
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            fh.close()
            raise KaMlError(
                f"Another ka-ml score run is writing '{path.parent}' right now (lock {path.name}).",
                "wait for it to finish, then rerun if needed; reruns are idempotent.",
            ) from e
        if _same_file(fh, path):
            break
        fh.close()  # a removed lock file: its lock guards nothing
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # still held: see above
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def _same_file(fh: IO[str], path: Path) -> bool:
    """Whether the open file ``fh`` is still the file at ``path``."""
    try:
        there = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fh.fileno())
    return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)


def timing_left_out(cfg: Config) -> str:
    """What a run without a purchase-timing model leaves out, and what still holds."""
    return (
        "the next-order dates and the chances of an order within each window are left empty "
        "this run; the churn scores and reasons do not need them, and an account counts as "
        f"overdue after {cfg.health.overdue_ratio_fallback:g}x its typical gap between orders "
        "(`health.overdue_ratio_fallback`) instead of after its forecast's p90"
    )


def load_models(cfg: Config, progress: Progress | None = None) -> Models:
    """The champions. The churn champion is required (without it the error's fix names the
    commands with the run's own options, ``progress``: :meth:`Progress.train_command`);
    without a purchase-timing champion
    (a first model a baseline beat, on a small portfolio) the run goes on without timing
    forecasts and a note, shown in the console and the report, says why and how to
    promote one: the lights rest on the churn model (the overdue rule then counts typical
    gaps instead of the forecast's p90)."""
    progress = progress or Progress()
    train = progress.train_command()
    if (path := registry.missing_store(cfg)) is not None:  # nothing trained there: create none
        raise NoChampionError(
            f"No churn model carries the 'champion' alias: the MLflow store {path} does not "
            "exist yet.",
            f"train one first with {train}, or point MLFLOW_TRACKING_URI (or "
            "mlflow.tracking_uri) at the registry that holds it.",
        )
    client = registry.connect(cfg)
    name, option = cfg.mlflow.churn_model_name, progress.config_option
    churn, cv = registry.load_champion(client, name, "churn", train, option)
    timing_name = cfg.mlflow.timing_model_name
    timing: Any = None
    tv = ""
    if registry.champion_version(client, timing_name) is not None:
        timing, tv = registry.load_champion(client, timing_name, "purchase-timing")
    trained = registry.trained_as_of(client, cfg.mlflow.churn_model_name, cv)
    notes = tuple(
        note
        for name, version, what, kind in (
            (cfg.mlflow.churn_model_name, cv, "churn", "churn"),
            (timing_name, tv, "purchase-timing", "timing"),
        )
        if version and (note := registry.champion_note(client, name, version, what, kind))
    )
    if timing is None:  # the console names the command; the report does not
        args = (client, timing_name, "purchase-timing", "timing", timing_left_out(cfg))
        log.warning(registry.no_champion_note(*args))
        notes += (registry.no_champion_note(*args, for_manager=True),)
    return Models(churn, timing, cv, tv, trained, notes)


def in_sample_note(models: Models, as_of: pd.Timestamp) -> str:
    """Why these scores are a look back, not a forecast: the churn champion was trained on
    data after ``as_of`` (it has seen what happened next). Empty when they are a forecast."""
    trained = models.churn_trained_as_of
    if trained is None or as_of >= trained:
        return ""
    return (
        f"These scores look back, they do not forecast: the churn model in use (v"
        f"{models.churn_version}) was trained on data up to {trained.date()}, after this "
        f"date ({as_of.date()}), so it has seen what happened next. ka-ml backtest leaves "
        "such weeks out; to judge a model on this date, train one as of it "
        f"(ka-ml train --as-of {as_of.date()}, with its own paths.models)."
    )


def check_forecast_kept(
    path: Path, as_of: pd.Timestamp, models: Models, cfg: Config, *, replace: bool
) -> None:
    """Refuse to replace the forecast a date holds with a look back (:func:`in_sample_note`).

    The score history's rows of ``as_of``, scored by another churn model version trained
    before it, are what was forecast then: ``ka-ml backtest`` judges them and the overdue
    rule reads their p90 dates. A look back (a champion trained after the date) would
    replace them, and the only record of that week's forecast would be gone. ``replace``
    (``--replace-forecast``) allows it."""
    if replace or not in_sample_note(models, as_of) or not path.exists():
        return
    rows = score_history.read(path, before=as_of + pd.Timedelta(days=1))
    there = rows.loc[rows["as_of"] == as_of, "churn_model_version"].dropna().astype(str)
    others = sorted(set(there) - {models.churn_version})
    if not others:
        return
    client = registry.connect(cfg)
    name = cfg.mlflow.churn_model_name
    forecasts = [
        v
        for v in others
        if (trained := registry.trained_as_of(client, name, v)) is None or trained <= as_of
    ]
    if not forecasts:  # those were look backs too: nothing of that week's forecast is lost
        return
    then = forecasts[0]
    raise KaMlError(
        f"{as_of.date()} holds the forecast made then by {name} v{then}; these scores would "
        f"look back (v{models.churn_version} was trained on data up to "
        f"{models.churn_trained_as_of.date() if models.churn_trained_as_of else '?'}, after "
        "that date) and replace it in the score history, which `ka-ml backtest` judges and "
        "the overdue rule reads.",
        f"leave that week as it is; to redo its forecast, make the model of then champion "
        f"(`ka-ml promote {name} {then}`, and back afterwards); to replace it with the look "
        "back anyway, rerun with --replace-forecast.",
    )


@dataclass
class Progress:
    """How far a score run got, filled in by :func:`run_scoring` as it goes, so that an
    interruption (Ctrl-C, SIGTERM) can say what was published and what was not
    (:func:`interrupted_text`): a SIGTERM after the files were published had said that
    nothing of the run was."""

    as_of: str = ""
    out_dir: Path | None = None
    default_dir: bool = True  # out_dir is paths.outputs/<as-of> (no --out)
    published: bool = False  # files and score history
    written_back: bool = False
    notified: bool = False
    # the run's own --config / --data / --engine, repeated in the commands below: a user
    # who ran a printed `ka-ml score --as-of D --writeback` without them wrote the demo's
    # scores over the production table
    options: str = ""
    config_option: str = ""  # the --config alone (notify reads the outputs, not the data)
    # the run reads what `make train` trains: configs/ka_ml.yaml, no --data, the local engine
    default_config: bool = False

    def train_command(self) -> str:
        """The command that trains the champions this run needs, quoted, with the run's own
        options: a user scoring with --config my.yaml was told to run `make train`, which
        trains the demo's configs/ka_ml.yaml."""
        if self.default_config:
            return "`make train` (or `ka-ml train`)"
        return f"`ka-ml train{self.options}`"

    def score_command(self) -> str:
        """The command that redoes this date (reruns are idempotent)."""
        out = "" if self.default_dir else f" --out {shlex.quote(str(self.out_dir))}"
        return f"ka-ml score{self.options} --as-of {self.as_of}{out}"

    def notify_command(self) -> str:
        """The command that sends this run's digests."""
        if self.default_dir:
            return f"ka-ml notify{self.config_option} --as-of {self.as_of}"
        return f"ka-ml notify{self.config_option} --scores {shlex.quote(str(self.out_dir))}"


def interrupted_text(progress: Progress, *, writeback: bool, notify: bool) -> str:
    """What an interrupted ``ka-ml score`` left: nothing published, or the outputs and
    score history of the date published and the write-back and/or digests not done,
    each with the command that does it."""
    if not progress.published:
        return (
            "the score run stopped; nothing of it was published (the previous outputs and "
            "score history are untouched); rerun it, reruns are idempotent"
        )
    done = f"the outputs and score history of {progress.as_of} are published ({progress.out_dir}/)"
    todo = []
    if writeback and progress.written_back:
        done += " and written back to the database"
    elif writeback:
        todo.append(
            f"the write-back was not done: rerun `{progress.score_command()} --writeback` "
            "(idempotent)"
        )
    if notify and not progress.notified:
        todo.append(
            f"the digests were not sent, or not all of them: `{progress.notify_command()}` "
            "sends them (with --owner NAME, only those missing)"
        )
    return "; ".join([done, *todo])


@dataclass(frozen=True)
class ScoreResult:
    out_dir: Path
    scores: pd.DataFrame
    record: dict[str, Any]


def check_output(out_dir: Path | None) -> None:
    """Fail before any work when an explicit output folder cannot be written, or holds
    files that are not a run's outputs: the run replaces the folder as a whole (so it
    appears whole or not at all), which would delete them."""
    if out_dir is None:
        return
    out = Path(out_dir)
    ensure_writable_dir(out.parent, "output", keep=False)  # created when the run writes
    if out.is_dir() and not (out / "run_record.json").exists():
        found = sorted(p.name for p in out.iterdir())
        if found:
            shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
            raise KaMlError(
                f"The output folder '{out}' holds files that are not ka_ml outputs ({shown}): "
                "score replaces the whole folder, which would delete them.",
                "pass a new or empty folder with --out (or one an earlier score wrote).",
            )


def writeback_url(cfg: Config, env: Mapping[str, str]) -> str:
    """The database the scores are upserted into (``$KA_ML_WRITEBACK_URL``, else config)."""
    return resolve_url(cfg, env)


def writeback_fallback(cfg: Config, env: Mapping[str, str]) -> str:
    """The warning that the write-back goes to the local SQLite default because the
    environment variable is not set; '' when it does not."""
    return fallback_note(cfg, env)


def check_writeback(cfg: Config, url: str | None, fallback: str = "") -> None:
    """Fail before any work when the write-back target cannot take the scores (it cannot be
    reached, the table cannot be created or written, or it has another layout); the error
    then says too when that target is only the SQLite default (``fallback``). That default
    is refused outright under ``delivery.writeback_fallback: false``: an operator's job
    whose environment file went missing wrote a week's scores to the local file, exit 0."""
    if url is None:
        return
    if fallback and not cfg.delivery.writeback_fallback:  # an operator's env file went missing
        raise KaMlError(
            f"{fallback[0].upper()}{fallback[1:]}; delivery.writeback_fallback is false, so "
            "the run stops here: nothing was scored or written.",
            f"set {cfg.delivery.writeback_url_env} in the job's environment (or "
            "delivery.writeback_url); or set delivery.writeback_fallback: true to write to "
            "the local file.",
        )
    try:
        check_target(
            url, table=cfg.delivery.writeback_table, lock_timeout_s=cfg.data.lock_timeout_seconds
        )
    except KaMlError as e:
        if not fallback:
            raise
        raise KaMlError(f"{fallback[0].upper()}{fallback[1:]}. {e.message}", e.remedy) from e


def run_scoring(
    history: History | SparkHistory,
    cfg: Config,
    as_of: pd.Timestamp,
    out_dir: Path | None = None,
    *,
    writeback_url: str | None = None,
    writeback_warning: str = "",
    engine: str = "local",
    replace_forecast: bool = False,
    freshness: tuple[str, ...] = (),
    progress: Progress | None = None,
) -> ScoreResult:
    """Score, explain, light, write outputs atomically, append to the score history.

    The outputs include one report + digest per owner (``owners/``) when accounts have
    owners; ``writeback_url`` also upserts the scores into that database (one transaction),
    and the run record keeps ``writeback_warning`` with it (:func:`writeback_fallback`).
    A look back does not replace a date's forecast unless ``replace_forecast``
    (:func:`check_forecast_kept`). ``freshness``: what :func:`ka_ml.jobs.data.
    scoring_data_check` said of stale data, recorded apart so the digests lead with it.
    ``progress`` is filled in as the run goes (:class:`Progress`).
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    default_dir = Path(cfg.paths.outputs) / str(as_of.date())
    out_dir = Path(out_dir) if out_dir else default_dir
    progress = progress or Progress()
    progress.as_of, progress.out_dir = str(as_of.date()), out_dir
    progress.default_dir = out_dir == default_dir
    ensure_writable_dir(out_dir.parent, "output", keep=False)  # before any work
    # the models before anything is created: a run before any `train` leaves no folder
    models = load_models(cfg, progress)
    if (getattr(models.churn, "card_", None) or {}).get(ORDERS_FIRST):
        cfg = judged_by_orders(cfg)  # auto, where the champion learnt that orders stop first
    hist_path = score_history.history_path(cfg)
    with (
        _nothing_left_unless_published(out_dir.parent, progress),
        exclusive_lock(out_dir.parent / f".{out_dir.name}.lock"),
    ):
        recover_staged(out_dir)
        check_forecast_kept(hist_path, as_of, models, cfg, replace=replace_forecast)
        timings["load_models"] = round(time.perf_counter() - t0, 3)
        past = score_history.read(hist_path, before=as_of)
        t1 = time.perf_counter()
        if engine == "spark" or not isinstance(history, History):  # features + models on Spark
            scores, feats = score_with_features(history, cfg, as_of, models, past)
            contrib = None
        else:
            lags = (getattr(models.churn, "card_", None) or {}).get("feed_lag_days") or {}
            history, aligned = align_feed_lags(history, as_of, lags)
            for text in aligned:
                log.warning(text)
            freshness = (*freshness, *aligned)
            feats = build_features(history, as_of, cfg)
            previous = previous_run(hist_path, past, as_of, cfg, models)
            scores, contrib = score_and_explain(
                history, cfg, as_of, models, past, features=feats, previous=previous
            )
        timings["score_and_explain"] = round(time.perf_counter() - t1, 3)
        spark = engine == "spark" or not isinstance(history, History)
        record = _run_record(history, cfg, as_of, models, scores, timings) | {
            "engine": "spark" if spark else "local"  # a Spark run says no late feed is re-read
        }
        if models.notes:
            record["model_notes"] = list(models.notes)
        if freshness:
            record["freshness"] = list(freshness)
        if note := in_sample_note(models, as_of):  # the CLI prints it with the summary, once
            trained = models.churn_trained_as_of
            assert trained is not None
            record["in_sample"] = {"message": note, "churn_trained_as_of": str(trained.date())}
        record.update(monitoring_record(models.churn, feats, cfg, as_of))  # drift, backtest
        # the outputs need only the scores: a History no caller holds (the CLI hands it over)
        # is freed before they are written (~1.4 GB of the 100k-account run's peak)
        del history
        reported = (  # what the next run's "since last week" compares with
            None
            if contrib is None
            else score_history.Contributions(
                as_of, scores["account_id"], list(models.churn.features_), contrib
            )
        )
        stop_if_signalled()  # nothing is published after a signal (one whose exception was lost)
        # steps 1-3 of the module docstring: stage, write the history, swap the files in
        _write_outputs(
            out_dir,
            scores,
            record,
            cfg,
            lambda: score_history.write_run(hist_path, scores, reported),
        )
        progress.published = True
        if writeback_url:  # step 4, after everything else is published
            stop_if_signalled()
            _write_back(progress, scores, record, cfg, writeback_url, writeback_warning)
            progress.written_back = True
        record["timings"]["total"] = round(time.perf_counter() - t0, 3)
    return ScoreResult(out_dir, scores, record)


@contextmanager
def _nothing_left_unless_published(folder: Path, progress: Progress) -> Iterator[None]:
    """Remove the folders ``folder`` did not have yet (those the run creates: the outputs
    folder, its parents) when the run ends without publishing, if nothing else was written
    into them (:func:`~ka_ml.io.remove_made_dirs`)."""
    made = missing_dirs(folder)
    try:
        yield
    except BaseException:
        if not progress.published:
            remove_made_dirs(made)
        raise


def _write_back(
    progress: Progress,
    scores: pd.DataFrame,
    record: dict[str, Any],
    cfg: Config,
    url: str,
    warning: str = "",
) -> None:
    """Upsert the published scores into ``url``; the run record then says so. A failure
    says that the files and the history are published and how to retry (that date: a
    plain rerun after new orders arrived would score another)."""
    out_dir = progress.out_dir
    assert out_dir is not None
    try:
        done = write_back_scores(scores, url, cfg)
    except KaMlError as e:
        raise KaMlError(
            f"The scores as of {record['as_of']} are published (files in {out_dir}/, score "
            f"history updated), but the database write-back failed: {e.message}",
            f"{e.remedy} The scores are in {out_dir}/; rerun "
            f"`{progress.score_command()} --writeback` to retry; reruns are idempotent.",
        ) from e
    if warning:
        done["warning"] = warning
    record.setdefault("delivery", {})["writeback"] = done
    atomic_write_json(out_dir / "run_record.json", record)


def monitoring_record(
    churn_model: Any, features: pd.DataFrame, cfg: Config, as_of: pd.Timestamp
) -> dict[str, Any]:
    """``drift`` (PSI of this week's features against the champion's training reference)
    and, when one exists, ``backtest`` (the newest backtest summary dated by ``as_of``)."""
    profile = getattr(churn_model, "reference_profile_", None)
    record: dict[str, Any] = {"drift": drift_report(profile, features, cfg.monitoring)}
    backtest = latest_summary(cfg, as_of)
    if backtest is not None:
        record["backtest"] = backtest
    return record


def previous_run(
    path: Path, past: pd.DataFrame, as_of: pd.Timestamp, cfg: Config, models: Models
) -> Previous | None:
    """The previous run's probabilities, date and churn model version, with its stored
    contributions when the same churn model made them (None when there is no previous run
    within ``scoring.previous_run_max_days``)."""
    prev = score_history.previous_week(past, as_of, cfg.scoring.previous_run_max_days)
    if prev.empty:
        return None
    day = pd.Timestamp(prev["as_of"].max())
    versions = prev.get("churn_model_version", pd.Series(dtype=str)).dropna().astype(str).unique()
    version = str(versions[0]) if len(versions) == 1 else ""
    stored = (
        score_history.read_contributions(path, day, list(models.churn.features_))
        if version in ("", models.churn_version)
        else pd.DataFrame()
    )
    return Previous(stored, prev["churn_probability"].astype(float), day, version)


def churn_definition_text(definition: str, has_contracts: bool) -> str:
    """The churn definition that applied, in words: ``auto`` without a contracts table is
    no order for every account (:func:`ka_ml.features.labels.churn_labels`), as the
    console says, not the contract rule that could not apply."""
    if definition == "auto" and not has_contracts:
        return "no order (no contracts table)"
    return {
        "auto": "contract lapse (contracted accounts) / no order (others)",
        "contract": "contract lapse",
        "no_order": "no order",
        "revenue_drop": "revenue drop",
    }[definition]


def _run_record(
    history: History | SparkHistory,
    cfg: Config,
    as_of: pd.Timestamp,
    models: Models,
    scores: pd.DataFrame,
    timings: dict[str, float],
) -> dict[str, Any]:
    return {
        "as_of": str(as_of.date()),
        "churn_definition": churn_definition_text(
            cfg.labels.churn_definition, history.has("contracts")
        ),
        "horizon_days": cfg.labels.horizon_days,
        "thresholds": {
            "red": cfg.health.red_threshold,
            "yellow": cfg.health.yellow_threshold,
            "hysteresis": cfg.health.hysteresis,
        }
        if cfg.health.mode == "threshold"
        else {
            "hysteresis": cfg.health.hysteresis,
            # budget mode: the shares and floors that decided the lights, and where they
            # fell this run (the spreadsheet's "Red from" / "Yellow from")
            "red_share": cfg.health.red_share,
            "yellow_share": cfg.health.yellow_share,
            "red_min_probability": cfg.health.red_min_probability,
            "yellow_min_probability": cfg.health.yellow_min_probability,
            **lowest_lit(scores),
        },
        "light_mode": cfg.health.mode,
        "light_rule": light_rule(cfg.health),
        "revenue_at_risk_rule": (
            "expected revenue of the next 12 months (the running contract's yearly value, "
            f"else {run_rate_text(cfg)}) × churn probability; lapsed accounts carry none"
        ),
        "currency": cfg.report.currency,
        "unassigned_label": cfg.delivery.unassigned_label,  # the report says what digests say
        "risk_rise_points": cfg.report.risk_rise_points,
        "attention_rows": cfg.report.attention_rows,
        "win_back_rows": cfg.report.win_back_rows,
        "models": {
            "churn": f"{cfg.mlflow.churn_model_name} v{models.churn_version}",
            "timing": f"{cfg.mlflow.timing_model_name} v{models.timing_version}"
            if models.timing_version
            else f"{cfg.mlflow.timing_model_name}: none (no champion yet)",
        },
        "model_card": _model_card(models),
        "data": {
            "source": history.source,
            "fingerprint": history.fingerprint(),
            "rows": history.row_counts(),
            # money converted by data.currency_rates, for the audit of a run's sums
            **({"conversions": list(c)} if (c := getattr(history, "conversions", ())) else {}),
        },
        "config_hash": cfg.hash(),
        "n_accounts": len(scores),
        "lights": scores["health"].value_counts().to_dict(),
        "lifecycle": scores["lifecycle"].astype(str).value_counts().to_dict(),
        "summary": portfolio_summary(scores, rise=cfg.report.risk_rise_points),
        "warnings": list(history.warnings),
        "timings": timings,
        "generated_by": package_versions(),
    }


def _model_card(models: Models) -> dict[str, Any]:
    """The churn champion's card with the purchase-cycle figures of the timing champion in
    use, when it has them; none without a timing model (the churn run's are of a model not
    in use)."""
    card = dict(getattr(models.churn, "card_", None) or {})
    if models.timing is None:
        return {k: v for k, v in card.items() if not k.startswith(("timing_", "window_"))}
    return card | (getattr(models.timing, "card_", None) or {})


PARALLEL_FROM_ACCOUNTS = 20_000  # below, starting a process costs more than it saves


@contextmanager
def _beside(parallel: bool) -> Iterator[Callable[..., Future[Any]]]:
    """``run(fn, *args)``: in one other process when ``parallel`` (spawned: nothing of this
    process's threads or locks is inherited), else right here; either way a Future."""
    if not parallel:

        def here(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
            done: Future[Any] = Future()
            done.set_result(fn(*args, **kwargs))
            return done

        yield here
        return
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool.submit


def _write_outputs(
    out_dir: Path,
    scores: pd.DataFrame,
    record: dict[str, Any],
    cfg: Config,
    before_publish: Callable[[], object] = lambda: None,
) -> None:
    """Stage every file, call ``before_publish`` (the score history's write), and only when
    both succeeded swap the staged folder in; any failure publishes nothing."""

    with staged_dir(out_dir) as stage, _beside(len(scores) >= PARALLEL_FROM_ACCOUNTS) as run:
        # the spreadsheet is written beside the rest (another process) for big portfolios
        xlsx = run(
            write_excel, scores, record, stage / "scores.xlsx", max_rows=cfg.report.max_excel_rows
        )
        scores.to_parquet(stage / "scores.parquet", index=False)
        scores.to_csv(stage / "scores.csv", index=False, date_format="%Y-%m-%d")
        # the report and each owner's (stage_delivery) build HTML only for the accounts they
        # show, report.max_accounts at most (1M accounts: ~5 GB of HTML strings otherwise)
        write_report(scores, record, stage / "report.html", max_accounts=cfg.report.max_accounts)
        stage_delivery(stage, scores, record, cfg)  # owners/
        xlsx.result()  # its error, if any, fails the run before anything is published
        atomic_write_json(stage / "run_record.json", record)
        try:
            before_publish()  # the history: its failure discards the stage too
        except sqlite3.Error as e:
            raise KaMlError(
                f"The score history could not be written ({e}); nothing was published: "
                f"'{out_dir}' and the database write-back are as before this run.",
                "if another process holds the history (outputs/score_history.sqlite) open "
                "for writing, let it finish, then rerun; reruns are idempotent.",
            ) from e
