"""Tuning's budget: what `train` says about the trials that ran within it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from ka_ml.modeling.tuning import TuningResult, budget_note, trials_run, tune


def result(states: list[str]) -> TuningResult:
    trials = pd.DataFrame({"number": range(len(states)), "state": states})
    return TuningResult({}, 0.8, 100, trials)


def test_the_note_counts_trials_by_state_and_is_plain_when_the_budget_held() -> None:
    res = result(["COMPLETE", "PRUNED", "COMPLETE", "COMPLETE"])
    assert trials_run(res) == {"run": 4, "complete": 3, "pruned": 1}
    assert budget_note(res, 4, 90) == "4 of 4 trials (3 complete, 1 pruned)"
    assert budget_note(TuningResult({}, float("nan"), 0, pd.DataFrame()), 3, 90) == (
        "not run (the default parameters)"
    )


def test_a_run_stopped_by_the_time_budget_says_so_and_how_to_make_it_repeatable(
    tmp_path: Path, mlflow_state: None
) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("tuning-budget")

    def slow(params: dict[str, Any], k: int) -> tuple[float, int]:
        time.sleep(0.3)
        return 0.5, 10

    with mlflow.start_run():
        res = tune("churn", slow, 1, n_trials=12, timeout=0.1, seed=0)
    n = trials_run(res)
    assert 1 <= n["run"] < 12  # optuna checks the clock between trials
    note = budget_note(res, 12, 0.1)
    assert note.startswith(f"{n['run']} of 12 trials")
    assert "stopped by its time budget (0.1 s, from tuning.timeout_seconds)" in note
    assert "raise it for a repeatable run" in note


def test_the_console_says_why_the_default_parameters_were_kept() -> None:
    from ka_ml.modeling.lightgbm_params import default_params
    from ka_ml.training.churn import TUNING_MIN_GAIN, defaults_note

    def res(values: list[float], params: dict[str, Any]) -> TuningResult:
        trials = pd.DataFrame({"number": range(len(values)), "state": "COMPLETE", "value": values})
        return TuningResult(params, values[0], 100, trials)

    close = defaults_note(res([0.8806, 0.8826, 0.87], default_params()))
    assert close == (
        "; the default parameters kept (best other trial 0.8826 vs their 0.8806: a gain "
        f"under {TUNING_MIN_GAIN} is noise)"
    )
    assert defaults_note(res([0.88, 0.87], default_params())) == (
        "; the default parameters kept (no other trial beat their 0.8800)"
    )
    assert defaults_note(res([0.85, 0.88], {**default_params(), "num_leaves": 63})) == ""


def test_the_console_says_which_timing_parameters_won() -> None:
    """Read in the demo's train console: "timing tuning: 3 of 3 trials (3 complete, 0
    pruned)" said nothing of what was chosen (the defaults, trial 0, had the best score)."""
    from ka_ml.modeling.tuning import winner_note

    def res(values: list[float], states: list[str] | None = None) -> TuningResult:
        trials = pd.DataFrame(
            {
                "number": range(len(values)),
                "state": states or ["COMPLETE"] * len(values),
                "value": values,
            }
        )
        return TuningResult({}, max(v for v in values if v == v), 100, trials)

    what = "mean log-likelihood"
    assert winner_note(res([-0.3899, -0.3901, -0.3909]), what) == (
        "; the default parameters kept (no other trial beat their mean log-likelihood -0.3899)"
    )
    assert winner_note(res([-0.3899, -0.3901, -0.3880]), what) == (
        "; trial 2's parameters (mean log-likelihood -0.3880 against the defaults' -0.3899)"
    )
    # a pruned trial's partial score is not a result; a tie keeps the defaults
    pruned = res([-0.3899, -0.1, -0.3899], ["COMPLETE", "PRUNED", "COMPLETE"])
    assert winner_note(pruned, what).startswith("; the default parameters kept")
    assert winner_note(TuningResult({}, float("nan"), 0, pd.DataFrame()), what) == ""


def test_the_timing_model_is_tuned_on_a_quarter_of_the_trials_or_not_at_all() -> None:
    from ka_ml.config import Config
    from ka_ml.training.timing import timing_budget

    def budget(n: int) -> tuple[int, float]:
        return timing_budget(
            Config.model_validate({"tuning": {"n_trials": n, "timeout_seconds": 90}})
        )

    assert budget(12) == (3, 45.0) and budget(8) == (2, 45.0)
    assert budget(7) == (0, 45.0) and budget(3) == (0, 45.0)  # one trial = the defaults again


def test_a_pruned_trial_is_printed_with_how_far_it_got_not_as_a_score(
    tmp_path: Path, mlflow_state: None
) -> None:
    """Read in a user's train console: 'pruned score=0.9924' beside a best complete trial
    of 0.9507, as if a better trial had been thrown away; the 0.9924 was its first
    origin only."""
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("tuning-pruned")
    calls: list[int] = []

    def scores(params: dict[str, Any], k: int) -> tuple[float, int]:
        calls.append(k)
        trial = sum(1 for c in calls if c == 0) - 1
        return (0.1 if trial >= 3 else (0.8 if k == 0 else 0.9)), 10  # later: worse at once

    said: list[tuple[int, float | None, str]] = []
    with mlflow.start_run():
        tune(
            "churn", scores, 3, n_trials=5, timeout=None, seed=0, on_trial=lambda *a: said.append(a)
        )
    states = [s for _, _, s in said]
    assert states[:3] == ["COMPLETE"] * 3
    pruned = [(v, s) for _, v, s in said if s.startswith("pruned")]
    assert pruned and all(v is None for v, _ in pruned)
    assert all(
        s.startswith("pruned after ") and " of 3 origins, mean so far " in s for _, s in pruned
    )
