"""`ka-ml train`: snapshots -> rolling origins -> tuned, chosen, calibrated models -> MLflow.

The procedure is judged as it is deployed. Each test origin ``T`` (the latest labelled
snapshots, ``tuning.backtest_origins`` of them) gets the whole procedure fitted only on
snapshots whose label window closed by ``T`` (the purge is the horizon): trees, the
logistic part, and the baselines. Parameters (Optuna, defaults first), the model family
(LightGBM, LightGBM + logistic blend, logistic) and the calibration (none, Platt,
isotonic; cross-fitted) are chosen on those origins; what is reported and gated is the
pooled out-of-time result. The champion candidate is then refitted on every labelled
snapshot (churn) and on the latest snapshots censored at the as-of date (timing).

The steps are pure functions in :mod:`ka_ml.training`; this job wires them together with the
snapshots, MLflow and the model registry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import mlflow
import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.features.build import feature_frames, with_portfolio_of
from ka_ml.features.labels import (
    ORDERS_FIRST,
    contract_end_silences,
    judged_by_orders,
    orders_first_note,
    orders_stop_first,
)
from ka_ml.features.snapshots import build_training_set
from ka_ml.jobs.data import feed_lags
from ka_ml.modeling import registry
from ka_ml.modeling.churn import ChurnModel
from ka_ml.modeling.split import describe_line
from ka_ml.modeling.tuning import budget_note, winner_note
from ka_ml.monitoring.drift import learned_snapshots, training_reference
from ka_ml.scoring.explain import reason_accounts, reason_reference, reason_typical
from ka_ml.spark.features import build_training_set as build_on_spark
from ka_ml.training.churn import train_churn
from ka_ml.training.evaluation import CYCLE_CARD_KEYS, Evaluation, evaluate, model_card
from ka_ml.training.folds import (
    AccountSample,
    Folds,
    Progress,
    check_labels,
    feature_columns,
    make_folds,
    sample_accounts,
    sampling_note,
)
from ka_ml.training.timing import (
    count_timing_rows,
    fit_timing,
    learnt_range_note,
    timing_budget,
    untuned_reason,
)
from ka_ml.training.tracking import log_evaluation, log_inputs, promote
from ka_ml.versions import package_versions

log = logging.getLogger("ka_ml.train")


@dataclass
class TrainReport:
    as_of: pd.Timestamp
    churn_definition: str
    split: dict[str, str]
    evaluation: Evaluation
    versions: dict[str, str]
    decisions: dict[str, str]
    run_id: str
    tracking_uri: str
    seconds: float
    horizon_days: int | None = None  # labels.horizon_days


WEEKDAYS = 7


def log_reference(
    churn: ChurnModel, ts: pd.DataFrame, feats: list[str], cfg: Config, pre: Prepared
) -> None:
    """Attach the drift reference to the churn model (it travels to the scorer with the
    champion) and log it, with the package versions, to the active MLflow run. The week
    after the last learned snapshot, one frame a day, shows each feature's weekday
    movement (:func:`training_reference`'s ``between``), on the accounts training learns
    from (their portfolio features against every account's, as the snapshots')."""
    learned = pd.to_datetime(learned_snapshots(ts)["as_of"])
    last = learned.max() if len(learned) else None
    days = [last + pd.Timedelta(days=k) for k in range(1, WEEKDAYS)] if last is not None else []
    between = [
        pre.portfolio(f, cfg) for f in feature_frames(pre.sample.history, days, cfg).values()
    ]
    profile = training_reference(ts, feats, cfg.monitoring.psi_bins, between)
    churn.attach(reference_profile=profile)
    mlflow.log_dict(profile, "monitoring/reference_profile.json")
    mlflow.log_dict(package_versions(), "environment/package_versions.json")


def training_snapshots(
    known: History, cfg: Config, as_of: pd.Timestamp, engine: str
) -> pd.DataFrame:
    """The labelled snapshots, built here or on Spark (``engine="spark"``; pyspark is an
    optional dependency, imported only then)."""
    if engine == "spark":
        return build_on_spark(known, cfg, as_of)
    return build_training_set(known, cfg, as_of)


def trial_printer(progress: Progress) -> Callable[[str], Callable[[int, float | None, str], None]]:
    """Per model, a callback that prints each tuning trial on the progress line."""

    def on_trial(name: str) -> Callable[[int, float | None, str], None]:
        return lambda n, v, s: progress(
            f"  {name} trial {n}: {s.lower()}" + ("" if v is None else f" score={round(v, 4)}")
        )

    return on_trial


@dataclass(frozen=True)
class Prepared:
    """What training starts from: the known history, its snapshots and their split."""

    known: History  # every account's history before the as-of
    sample: AccountSample  # what training learns from: ``known`` or a sample of its accounts
    ts: pd.DataFrame
    feats: list[str]
    folds: Folds
    definition: str
    sampling: str  # what the caps do to the fits ('' = every fit uses every row)

    def portfolio(self, frame: pd.DataFrame, cfg: Config) -> pd.DataFrame:
        """``frame``, built on the sample, with the whole portfolio's shares and tiers."""
        if self.sample.history is self.known:
            return frame
        return with_portfolio_of(frame, self.known, cfg)


def prepare(
    history: History, cfg: Config, as_of: pd.Timestamp, progress: Progress, engine: str
) -> Prepared:
    """Snapshots as of ``as_of`` and their rolling origins, checked before any MLflow run
    starts (a refused training leaves no trace)."""
    known = history.before(as_of)
    sample = sample_accounts(known, cfg.tuning.max_accounts, cfg.seed)
    progress(f"building training snapshots as of {as_of.date()} ...")
    ts = training_snapshots(sample.history, cfg, as_of, engine)
    if sample.history is not known:  # shares of the company's revenue, not the sample's
        ts = with_portfolio_of(ts, known, cfg)
    feats = feature_columns(ts)
    folds = make_folds(ts, cfg)
    definition = ",".join(sorted(ts["churn_definition"].dropna().unique()))
    progress(
        f"{len(ts)} snapshot rows, {len(feats)} features; {describe_line(folds.split.describe())}"
    )
    if folds.split.note:
        progress(f"note: {folds.split.note}")
    sampling = sampling_note(folds, count_timing_rows(ts, as_of), cfg, sample)
    if sampling:
        progress(f"note: {sampling}")
    check_labels(folds)
    return Prepared(known, sample, ts, feats, folds, definition, sampling)


def run_training(
    history: History,
    cfg: Config,
    as_of: pd.Timestamp,
    progress: Progress = log.info,
    engine: str = "local",
) -> TrainReport:
    """The whole job; MLflow logging and registry decisions happen here only.

    ``engine="spark"`` builds the snapshots on Spark; training stays on this machine.
    """
    t0 = time.perf_counter()
    client = registry.connect(cfg)
    registry.check_writes_here(client, cfg)
    ends = contract_end_silences(history, as_of, cfg.labels.horizon_days)  # reads before as_of
    orders_first = orders_stop_first(cfg.labels, ends)
    if orders_first:  # auto on data whose contracts do not bind orders: by the orders
        assert ends is not None
        progress("labels.churn_definition auto: every account judged by its orders (see the note)")
        cfg = judged_by_orders(cfg)
    pre = prepare(history, cfg, as_of, progress, engine)
    known, ts, feats, folds = pre.known, pre.ts, pre.feats, pre.folds
    on_trial = trial_printer(progress)
    with mlflow.start_run(run_name=f"train-{as_of.date()}") as run:
        log_inputs(known, cfg, as_of, feats, folds, pre.definition)
        mlflow.log_params(
            {
                "chosen.accounts_with_orders_or_contracts": pre.sample.customers,
                "chosen.training_accounts": pre.sample.kept,
            }
        )
        if pre.sampling:
            mlflow.set_tag("sampling_note", pre.sampling)
        churn, churn_tuning, ev_parts = train_churn(
            pre.sample.history, folds, feats, cfg, progress, on_trial
        )
        log_reference(churn, ts, feats, cfg, pre)
        lit = reason_accounts(ts, cfg)
        churn.attach(
            reason_reference=reason_reference(churn, lit),
            reason_typical=reason_typical(churn, lit),
        )
        progress("tuning, backtesting and fitting the purchase-timing model ...")
        timing, timing_tuning, toot = fit_timing(
            ts, folds, feats, as_of, cfg, on_trial("timing"), p_no_order=ev_parts[0]
        )
        budget = budget_note(timing_tuning, *timing_budget(cfg))
        chosen = winner_note(timing_tuning, "mean log-likelihood on the latest origin")
        progress("timing tuning: " + budget + chosen + untuned_reason(cfg))
        progress("evaluating on the origins and logging to MLflow ...")
        p_now = churn.predict_proba(feature_frames(known, [as_of], cfg)[as_of])[:, 1]
        ev = evaluate(folds, churn, ev_parts[0], ev_parts[1], toot, cfg, ev_parts[2], p_now, ends)
        if orders_first:
            assert ends is not None
            ev.notes.insert(0, orders_first_note(ends, cfg.labels.horizon_days))
        if pre.sampling:  # what the figures above were estimated on
            ev.notes.append(pre.sampling)
        if note := learnt_range_note(timing):
            ev.notes.append(note)
        card = model_card(ev) | {"timing_learnt_days": timing.learnt_days_}
        if orders_first:  # the scorer and the backtest judge as this model learnt
            card[ORDERS_FIRST] = True
            mlflow.log_metric(ORDERS_FIRST, 1.0)
        # how long after each feed's newest row the model saw it (the scorer reads a feed
        # further behind as the model saw it: jobs.data.align_feed_lags)
        dates = pd.to_datetime(folds.labelled["as_of"]).unique()
        if lags := feed_lags(known, sorted(dates)):
            card["feed_lag_days"] = lags
        churn.attach(card=card)
        # the report quotes the purchase-cycle record of the timing champion in use, which
        # may come from another run than the churn champion's
        timing.attach(card={k: v for k, v in card.items() if k in CYCLE_CARD_KEYS})
        mlflow.log_dict(card, "model_card.json")
        log_evaluation(ev, churn, timing, churn_tuning, timing_tuning, folds, feats)
        progress("registering the models and judging them against the champion ...")
        versions, decisions = promote(client, cfg, churn, timing, folds, feats, ev, as_of=as_of)
    return TrainReport(
        as_of,
        pre.definition,
        folds.split.describe(),
        ev,
        versions,
        decisions,
        run.info.run_id,
        registry.tracking_uri(cfg),
        time.perf_counter() - t0,
        cfg.labels.horizon_days,
    )
