"""What a training run writes to MLflow: inputs, metrics, tables, plots, models, decisions."""

from __future__ import annotations

import functools
import json
import logging
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import yaml

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.errors import ModelError, signals_held
from ka_ml.modeling import metrics as M
from ka_ml.modeling import promotion, registry
from ka_ml.modeling.churn import ChurnModel
from ka_ml.modeling.evaluate import follow_up_days, timing_scores
from ka_ml.modeling.timing import TimingModel
from ka_ml.modeling.tuning import TuningResult, trials_run
from ka_ml.training.evaluation import Evaluation
from ka_ml.training.folds import Folds

log = logging.getLogger("ka_ml.tracking")

# the run's pooled out-of-time test rows (Folds.test_fingerprint): a later run with the same
# one compares its backtest with this run's, figure for figure
TEST_ROWS_TAG = "test_rows_fingerprint"


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, f"{key}."))
        else:
            out[key] = v
    return out


def _finite(d: dict[str, float], prefix: str) -> dict[str, float]:
    return {
        f"{prefix}{k}": float(v)
        for k, v in d.items()
        if isinstance(v, int | float) and np.isfinite(v)
    }


def log_inputs(
    history: History,
    cfg: Config,
    as_of: pd.Timestamp,
    feats: list[str],
    folds: Folds,
    definition: str,
) -> None:

    resolved = cfg.model_dump(mode="json")
    params = {
        k: str(v)[:250] for k, v in _flat(resolved).items() if not k.startswith("health.actions")
    }
    mlflow.log_params(params)
    mlflow.set_tags(
        {
            "as_of": str(as_of.date()),
            "data_fingerprint": history.fingerprint(),
            "data_source": history.source,
            "data_first_order": str(history.first_date.date()),
            "data_last_order": str(history.last_order_date.date()),
            "churn_definition": definition,
            "config_hash": cfg.hash(),
            "n_features": str(len(feats)),
            TEST_ROWS_TAG: folds.test_fingerprint(),
        }
    )
    mlflow.log_dict(resolved, "config/resolved_config.json")
    mlflow.log_text(yaml.safe_dump(resolved, sort_keys=False), "config/resolved_config.yaml")
    mlflow.log_dict({"features": feats}, "features/feature_list.json")
    bt = folds.split
    mlflow.log_dict(
        {
            "final_fit": [str(d.date()) for d in bt.final_dates],
            "origins": {
                str(o.date.date()): [str(d.date()) for d in o.train_dates] for o in bt.origins
            },
            "purge_days": bt.purge_days,
            "held_out_account_group": {
                str(o.date.date()): o.group for o in bt.origins if o.group is not None
            },
            "note": bt.note,
        },
        "split/snapshot_dates.json",
    )
    cadence = int(np.median(np.diff(sorted(bt.final_dates))).days) if len(bt.final_dates) > 1 else 0
    mlflow.log_params(
        {
            "chosen.snapshot_every_days": cadence,
            "chosen.purge_days": bt.purge_days,
            "chosen.test_split": "accounts held out" if bt.grouped else "rolling origins",
            "chosen.backtest_origins": len(bt.origins),
            "chosen.labelled_snapshots": len(bt.final_dates),
        }
    )
    if bt.note:
        mlflow.set_tag("backtest_note", bt.note)


def log_evaluation(
    ev: Evaluation,
    churn: ChurnModel,
    timing: TimingModel,
    ct: TuningResult,
    tt: TuningResult,
    folds: Folds,
    feats: list[str],
) -> None:
    """The evaluation's metrics, the chosen settings and the tables and plots behind them."""
    log_evaluation_metrics(ev, ct, tt)
    log_chosen(ev, churn, timing, ct, tt)
    with tempfile.TemporaryDirectory() as tmp:
        log_tables(ev, churn, ct, tt, Path(tmp))
        log_plots(ev, churn, folds.test[feats], Path(tmp))


def log_evaluation_metrics(ev: Evaluation, ct: TuningResult, tt: TuningResult) -> None:
    """Every finite out-of-time figure: model, lights, timing, expected AUC, calendar rule,
    tuning, families, calibration, per origin and beside each baseline."""
    mlflow.log_metrics(_finite(ev.churn, "test_churn_"))
    mlflow.log_metrics(_finite(ev.churn_uncalibrated, "test_churn_uncalibrated_"))
    mlflow.log_metrics(_finite(ev.lights, "test_lights_"))
    mlflow.log_metrics(_finite(ev.timing, "test_timing_"))
    mlflow.log_metrics(_finite(ev.expected, "expected_churn_"))
    mlflow.log_metrics(_finite(ev.calendar_rule, "test_calendar_rule_"))
    mlflow.log_metrics(_finite(getattr(ev, "label_returns", {}), "label_return_"))
    mlflow.log_metrics(_finite(getattr(ev, "contract_labels", {}), "label_contract_"))
    mlflow.log_metrics(
        _finite({"churn_cv_auc": ct.best_score, "timing_cv_loglik": tt.best_score}, "")
    )
    mlflow.log_metrics({f"family_{k}_roc_auc": v for k, v in ev.family_scores.items()})
    mlflow.log_metrics(
        {
            f"calibration_cv_{k}": float(v)
            for k, v in ev.calibration.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
    )
    for _, r in ev.per_origin.iterrows():
        key = f"origin_{r['origin']}_{'model' if r['predictor'] == 'ka_ml churn model' else r['predictor']}"
        mlflow.log_metric(_metric_key(f"{key}_roc_auc"), float(r["roc_auc"]))
    for _, r in ev.comparison.iterrows():
        name = "model" if r["predictor"] == "ka_ml churn model" else r["predictor"]
        for metric in ("roc_auc", "brier"):
            mlflow.log_metric(_metric_key(f"test_{name}_{metric}"), float(r[metric]))


def log_chosen(
    ev: Evaluation, churn: ChurnModel, timing: TimingModel, ct: TuningResult, tt: TuningResult
) -> None:
    """What training chose, as parameters: tuned settings, rounds, calibration, family,
    the timing interval's levels and anchor."""
    mlflow.log_params(
        {f"churn_best.{k}": v for k, v in ct.best_params.items()}
        | {f"timing_best.{k}": v for k, v in tt.best_params.items()}
        | {
            "churn_best.rounds": churn.best_iteration_,
            "timing_best.rounds": timing.best_iteration_,
            "churn_calibration": churn.calibrator_.method if churn.calibrator_ else "none",
            "churn_family": ev.family,
            "timing_interval_levels": str(tuple(round(x, 2) for x in timing.interval_levels_)),
            "timing_anchor_days": str(timing.anchor_days_),
            "timing_learnt_days": str(timing.learnt_days_),
            "timing_anchor_skips_contracts": str(timing.anchor_skips_contracts_),
            "churn_tuning.trials_run": trials_run(ct)["run"],
            "timing_tuning.trials_run": trials_run(tt)["run"],
        }
    )
    mlflow.set_tag("churn_family", ev.family)
    if ev.cautions:  # what the console said before its figures can be trusted
        mlflow.set_tag("cautions", " | ".join(ev.cautions.values())[:5000])


def log_tables(
    ev: Evaluation, churn: ChurnModel, ct: TuningResult, tt: TuningResult, d: Path
) -> None:
    """The comparison, slice, tuning, prediction, per-origin and importance tables (CSV)."""
    tables = {
        "comparison_churn.csv": ev.comparison,
        "comparison_timing.csv": ev.timing_comparison,
        "slice_metrics.csv": ev.slices,
        "tuning_churn_trials.csv": ct.trials,
        "tuning_timing_trials.csv": tt.trials,
        "test_predictions.csv": ev.test_predictions,
        "per_origin_churn.csv": ev.per_origin,
        "feature_importance.csv": churn.feature_importance().rename("gain").to_frame(),
    }
    for name, df in tables.items():
        df.to_csv(d / name, index=name == "feature_importance.csv")
        mlflow.log_artifact(str(d / name), "evaluation")


def log_plots(ev: Evaluation, churn: ChurnModel, X: pd.DataFrame, d: Path) -> None:
    """Reliability, lift, feature importance and the SHAP summary on the test rows ``X``."""
    y = ev.test_predictions["churn"].to_numpy(float)
    p = ev.test_predictions["churn_probability"].to_numpy(float)
    for plot in (
        M.plot_reliability(y, p, d / "reliability.png"),
        M.plot_lift(y, p, d / "lift.png"),
        plot_importance(churn, d / "feature_importance.png"),
        plot_shap_summary(churn, X, d / "shap_summary.png"),
    ):
        mlflow.log_artifact(str(plot), "plots")


def _metric_key(name: str) -> str:
    """MLflow metric names allow letters, digits and _ - . / only."""
    return re.sub(r"[^A-Za-z0-9_\-./]+", "_", name).strip("_")


def plot_importance(model: ChurnModel, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    imp = model.feature_importance().head(20)[::-1]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh(imp.index, imp.to_numpy())
    ax.set_title("Churn model: feature importance (gain)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_shap_summary(model: ChurnModel, X: pd.DataFrame, path: Path, n: int = 2000) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    sample = X.sample(min(n, len(X)), random_state=0)
    contrib = model.contributions(sample)[:, :-1]
    aligned = model.aligned(sample)
    shown = aligned.apply(lambda s: s.cat.codes if isinstance(s.dtype, pd.CategoricalDtype) else s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shap.summary_plot(contrib, shown, show=False, max_display=15)
    plt.title("What drives churn risk (SHAP, log-odds)")
    plt.tight_layout()
    plt.savefig(path, dpi=110)
    plt.close("all")
    return path


@dataclass(frozen=True)
class ChampionCheck:
    """The current champion against today's test rows: ``version`` ("" when there is none),
    its ``scores`` on the rows it never saw (None: not comparable), which rows those are
    (``unseen``; None: every row), and the as-of it was trained at (None: unknown)."""

    version: str = ""
    scores: dict[str, float] | None = None
    unseen: np.ndarray | None = None
    trained_as_of: pd.Timestamp | None = None
    warning: str = ""  # what the champion was promoted despite (its run's warning tag)
    # its training run's own out-of-time figures (metric -> value, ``test_<kind>_`` dropped)
    # when that run tested its procedure on the very same rows as this one (same
    # TEST_ROWS_TAG), else None
    backtest: dict[str, float] | None = None

    def same_rows(self, metric: str) -> bool:
        """Its training run measured ``metric`` out of time on this run's very test rows
        (:attr:`backtest`), so the two runs' figures compare as they stand."""
        return self.backtest is not None and bool(np.isfinite(self.backtest.get(metric, np.nan)))

    def saw_every_row(self, metric: str) -> bool:
        """A champion was trained on the outcomes of every test row (a retrain within the
        horizon of it), or the rows it did not see cannot measure ``metric`` (one class):
        scores on the rest would be in-sample, so nothing is compared."""
        if not self.version or self.unseen is None:
            return False
        if not self.unseen.any() or self.scores is None:
            return True
        return not np.isfinite(self.scores.get(metric, np.nan))


def unseen_rows(test: pd.DataFrame, trained_as_of: pd.Timestamp | None) -> np.ndarray:
    """The test rows whose outcomes a model trained as of ``trained_as_of`` never saw: its
    churn labels are windows closed by that date and its timing labels are censored there,
    so a row dated on or after it is out of its time. Every row when the date is unknown."""
    if trained_as_of is None:
        return np.ones(len(test), dtype=bool)
    return (test["as_of"] >= trained_as_of).to_numpy()


def _champion_scores(
    client: Any,
    name: str,
    kind: str,
    folds: Folds,
    cfg: Config,
    churn_probability: np.ndarray | None = None,
) -> ChampionCheck:
    """Re-score the current champion on the test rows it never saw (:func:`unseen_rows`; a
    champion trained within the horizon of today saw them all and is scored on none); a
    timing champion with an anchor is anchored to the same churn probabilities as the new
    model's out-of-time forecasts."""
    mv = registry.champion_version(client, name)
    if mv is None:
        return ChampionCheck()
    tags = registry.training_tags(client, mv)
    trained = registry.tagged_as_of(tags)
    warning = tags.get(f"warning_{kind}", "")
    rows = unseen_rows(folds.test, trained)
    backtest = None
    if tags.get(TEST_ROWS_TAG) == folds.test_fingerprint():
        prefix = f"test_{kind}_"
        ran = registry.training_metrics(client, name, str(mv.version))
        backtest = {k[len(prefix) :]: v for k, v in ran.items() if k.startswith(prefix)}
    check = ChampionCheck(str(mv.version), None, rows, trained, warning, backtest)
    if not rows.any():
        return check
    try:
        model = registry.load_version(name, str(mv.version))
        X = folds.test[rows].reset_index(drop=True)
        if kind == "churn":
            pred = model.predict_frame(X, [])
        else:
            pred = model.predict_frame(
                X,
                cfg.labels.purchase_windows,
                churn_probability=None if churn_probability is None else churn_probability[rows],
            )
        scores = _scores_on(kind, X, pred, cfg)
    except ModelError as e:
        log.warning(
            "champion %s v%s cannot score the current data: %s", name, mv.version, e.message
        )
        return ChampionCheck(str(mv.version))
    return ChampionCheck(str(mv.version), scores, rows, trained, warning, backtest)


def candidate_scores(
    kind: str, ev: Evaluation, folds: Folds, rows: np.ndarray | None, cfg: Config
) -> dict[str, float]:
    """The new model's out-of-time scores on the test rows the champion is scored on (all
    of them: the evaluation's own)."""
    base = ev.churn if kind == "churn" else ev.timing
    if rows is None or rows.all():
        return base
    scores = _scores_on(
        kind, folds.test[rows], ev.test_predictions[rows].reset_index(drop=True), cfg
    )
    if kind == "churn":
        return {**scores, "ece": base.get("ece", scores.get("ece", float("nan")))}
    return scores


def _scores_on(kind: str, test: pd.DataFrame, pred: pd.DataFrame, cfg: Config) -> dict[str, float]:
    """A model's scores of ``kind`` on ``test`` rows from its prediction frame (same order):
    churn metrics of ``churn_probability``, or the timing metrics."""
    if kind == "churn":
        return M.churn_metrics(
            test["churn"].to_numpy(float), pred["churn_probability"].to_numpy(float)
        )
    d = test["days_to_next"].to_numpy(float)
    e = test["next_order_observed"].to_numpy(bool)
    return timing_scores(
        pred, d, e, cfg.labels.purchase_windows, follow_up_days(test["as_of"], d, e)
    )


def promote(
    client: Any,
    cfg: Config,
    churn: ChurnModel,
    timing: TimingModel,
    folds: Folds,
    feats: list[str],
    ev: Evaluation,
    *,
    beats_baselines: dict[str, bool] | None = None,
    as_of: pd.Timestamp | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Register both models; move `champion` only through the promotion gate.

    The champion and the new model are compared on the test rows the champion never saw
    (:func:`unseen_rows`). When it saw them all (it was trained within the horizon of
    ``as_of``), scores on them would be in-sample and beat any honest estimate, so nothing
    is compared: the new model replaces it only when trained on newer data, with no
    baseline doing better out of time beyond chance, under the calibration ceiling
    (:func:`promotion.fresher_decision`). The ceiling allows for the calibration error a
    perfectly calibrated model shows by chance on the test rows (``ece_chance``).

    ``beats_baselines`` ("churn"/"timing" -> beats every baseline) lets a first model with
    no champion to compare against become champion despite a failed calibration ceiling;
    when not given it is read from the evaluation's comparison tables.
    """

    windows = cfg.labels.purchase_windows
    if beats_baselines is None:
        beats_baselines = promotion.baselines_beaten(ev.comparison, ev.timing_comparison, windows)
    holds = promotion.baselines_beaten(
        ev.comparison, ev.timing_comparison, windows, within_chance=True
    )
    trails = promotion.baselines_ahead(ev.comparison, ev.timing_comparison, windows)
    ahead = promotion.baselines_ahead(
        ev.comparison, ev.timing_comparison, windows, within_chance=True
    )
    example = folds.test[feats].head(5).reset_index(drop=True)
    versions: dict[str, str] = {}
    decisions: dict[str, str] = {}
    plan = (
        ("churn", cfg.mlflow.churn_model_name, churn, "roc_auc", ev.churn.get("ece")),
        ("timing", cfg.mlflow.timing_model_name, timing, "concordance", None),
    )
    chance = ev.churn.get("ece_chance")
    # both models or neither: a registration cut short (an error, Ctrl-C, SIGTERM from a
    # scheduler) leaves no half-registered pair and no moved alias behind
    before = {name: registry.aliases(client, name) for _, name, *_ in plan}
    try:
        with signals_held("registering the models"):
            for kind, name, model, metric, ece in plan:
                p_churn = ev.test_predictions["churn_probability"].to_numpy(float)
                champ = _champion_scores(client, name, kind, folds, cfg, p_churn)
                version = registry.log_and_register(
                    model, kind, name, example, cfg.labels.purchase_windows
                )
                ceiling = cfg.mlflow.calibration_ceiling if ece is not None else None
                judge = functools.partial(
                    promotion.promotion_decision,
                    metric=metric,
                    margin=cfg.mlflow.promotion_margin,
                    ece=ece,
                    ece_ceiling=ceiling,
                    ece_chance=chance,
                    beats_baselines=beats_baselines.get(kind),
                    champion_warning=champ.warning,
                )
                compared = champ.scores
                if champ.saw_every_row(metric) and champ.same_rows(metric):
                    # retrained on the same rows (another config, new code): the two
                    # procedures' own out-of-time figures, measured on them, compare
                    compared = champ.backtest
                    own = ev.churn if kind == "churn" else ev.timing
                    decision = promotion.same_backtest(judge(own, compared))
                elif champ.saw_every_row(metric):
                    decision = promotion.fresher_decision(
                        f"v{champ.version}",
                        champ.trained_as_of,
                        as_of,
                        ece=ece,
                        ece_ceiling=ceiling,
                        ece_chance=chance,
                        holds_baselines=beats_baselines.get(kind) or holds.get(kind),
                        beats_baselines=beats_baselines.get(kind),
                        champion_warning=champ.warning,
                        by_hand=f"`ka-ml promote {name} {version}` by hand",
                    )
                else:
                    decision = judge(
                        candidate_scores(kind, ev, folds, champ.unseen, cfg),
                        champ.scores,
                        trails=trails.get(kind, ""),
                        ahead=ahead.get(kind, ""),
                        by_hand=f"`ka-ml promote {name} {version}` makes it champion by hand",
                    )
                registry.set_alias(client, name, decision.alias, version)
                replaced = before[name].get(promotion.CHAMPION)
                if decision.promote and replaced and replaced != version:
                    # the replaced champion stays in view for a rollback, as `ka-ml promote` does
                    registry.set_alias(client, name, promotion.CHALLENGER, replaced)
                versions[kind] = version
                decisions[kind] = record_decision(
                    kind,
                    name,
                    version,
                    decision,
                    (champ.version, compared),
                    beats_baselines.get(kind),
                )
    except BaseException:
        run = mlflow.active_run()
        if run is not None:
            registry.roll_back(client, run.info.run_id, before)
        raise
    return versions, decisions


def record_decision(
    kind: str,
    name: str,
    version: str,
    decision: promotion.Decision,
    champion: tuple[str, dict[str, float] | None],
    beats_baselines: bool | None,
) -> str:
    """Tag the run with the promotion decision (and its warning), log it in full as
    ``promotion/<kind>.json``; return its one-line text. ``champion``: the version and
    the scores of the champion it was compared with ("" and None when there was none)."""
    champ_version, champ = champion
    vs = f" (champion was v{champ_version})" if champ_version else ""
    text = f"v{version} -> {decision.alias}: {decision.reason}{vs}"
    mlflow.set_tag(f"decision_{kind}", text)
    if decision.warning:
        log.warning("%s v%s -> %s: %s", name, version, decision.alias, decision.warning)
        mlflow.set_tag(f"warning_{kind}", decision.warning)
    mlflow.log_dict(
        {
            "decision": decision.alias,
            "reason": decision.reason,
            "warning": decision.warning,
            "beats_baselines": beats_baselines,
            "version": version,
            "champion_before": champ_version,
            "champion_scores": champ,
        },
        f"promotion/{kind}.json",
    )
    return text


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
