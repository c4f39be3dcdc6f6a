"""Optuna tuning with time-based CV, pruning, and every trial as a nested MLflow run.

Each trial fits one booster per expanding-window fold (purged, see ``split``), reports the
running mean after every fold so the median pruner can stop hopeless trials early, and
records params, fold scores and its state in a nested MLflow run. The budget (trials and
seconds) comes from config so ``make train`` stays quick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import optuna
import pandas as pd

from ka_ml.modeling.lightgbm_params import default_params, suggest_params

log = logging.getLogger("ka_ml.tuning")

# fit_and_score(params, fold_index) -> (score to maximise, best iteration)
FoldFn = Callable[[dict[str, Any], int], tuple[float, int]]


def params_key(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A hashable key of a parameter set (what a trial fitted, looked up by later steps)."""
    return tuple(sorted(params.items()))


@dataclass(frozen=True)
class TuningResult:
    best_params: dict[str, Any]
    best_score: float
    best_rounds: int
    trials: pd.DataFrame


def tune(
    name: str,
    fit_and_score: FoldFn,
    n_folds: int,
    *,
    n_trials: int,
    timeout: float,
    seed: int,
    on_trial: Callable[[int, float | None, str], None] | None = None,
) -> TuningResult:
    """Maximise the mean fold score of ``fit_and_score`` over the shared search space.

    The first trial is always the default parameters, so tuning can only match or improve
    on them within the budget.
    """
    rounds: dict[int, int] = {}

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial)
        with mlflow.start_run(run_name=f"{name}-trial-{trial.number}", nested=True):
            mlflow.log_params({f"{k}": v for k, v in params.items()})
            scores, iters = [], []
            for k in range(n_folds):
                score, it = fit_and_score(params, k)
                scores.append(score)
                iters.append(it)
                mlflow.log_metric("fold_score", score, step=k)
                trial.report(float(np.mean(scores)), k)
                if trial.should_prune():
                    mlflow.end_run(status="KILLED")
                    raise optuna.TrialPruned()
            mean = float(np.mean(scores))
            rounds[trial.number] = int(np.mean(iters))
            mlflow.log_metric("cv_score", mean)
            mlflow.log_metric("best_rounds", rounds[trial.number])
            return mean

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if not on_trial:
            return
        if trial.state == optuna.trial.TrialState.PRUNED:  # its value: a part of the folds
            # 'pruned score=0.9924' beside a best complete trial of 0.9507 read as a
            # better trial thrown away: the mean so far covers the folds it reached only
            steps = len(trial.intermediate_values)
            so_far = "" if trial.value is None else f", mean so far {trial.value:.4f}"
            on_trial(trial.number, None, f"pruned after {steps} of {n_folds} origins{so_far}")
            return
        on_trial(trial.number, trial.value, trial.state.name)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
        study_name=name,
    )
    defaults = default_params()
    study.enqueue_trial({k: v for k, v in defaults.items() if k != "bagging_freq"})
    study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=[callback])
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return TuningResult({**defaults}, float("nan"), 200, study.trials_dataframe())
    best = study.best_trial
    params = {**suggest_params(optuna.trial.FixedTrial(best.params))}
    score = float(best.value) if best.value is not None else float("nan")
    return TuningResult(params, score, rounds[best.number], study.trials_dataframe())


def trials_run(res: TuningResult) -> dict[str, int]:
    """How many trials ran, completed and were pruned (all 0 when tuning did not run)."""
    t = res.trials
    states = t["state"].value_counts() if "state" in t else pd.Series(dtype=int)
    return {
        "run": len(t),
        "complete": int(states.get("COMPLETE", 0)),
        "pruned": int(states.get("PRUNED", 0)),
    }


def winner_note(res: TuningResult, what: str) -> str:
    """Which parameters tuning chose, for the console, where the best trial wins (no
    minimum gain; ``what`` names the score): '; the default parameters kept (no other
    trial beat their mean log-likelihood on the latest origin -0.3899)', or '; trial 2's
    parameters (mean log-likelihood on the latest origin -0.3880 against the defaults'
    -0.3899)'. '' when no trial completed or the defaults (trial 0) did not."""
    t = res.trials
    if t.empty or not {"number", "value", "state"} <= set(t) or not np.isfinite(res.best_score):
        return ""
    done = t[t["state"] == "COMPLETE"]
    first = done.loc[done["number"] == 0, "value"]
    if first.empty:
        return ""
    default = float(first.iloc[0])
    values = done["value"].to_numpy(float)
    k = int(np.argmax(values))
    if values[k] <= default:
        return f"; the default parameters kept (no other trial beat their {what} {default:.4f})"
    number = int(done["number"].to_numpy()[k])
    return f"; trial {number}'s parameters ({what} {values[k]:.4f} against the defaults' {default:.4f})"


def budget_note(res: TuningResult, n_trials: int, timeout: float) -> str:
    """What tuning did within its budget, for the console: '12 of 12 trials (10 complete,
    2 pruned)'; when the time budget stopped it early, say so (the number of trials, and so
    the parameters, then depend on how busy the machine was)."""
    n = trials_run(res)
    if n["run"] == 0:
        return "not run (the default parameters)"
    note = f"{n['run']} of {n_trials} trials ({n['complete']} complete, {n['pruned']} pruned)"
    if n["run"] < n_trials:
        note += (
            f"; stopped by its time budget ({timeout:g} s, from tuning.timeout_seconds): a "
            "busier machine runs fewer trials, so raise it for a repeatable run"
        )
    return note
