"""End-to-end benchmark: demo data -> features -> training -> scoring with explanations.

Every (size, stage) runs in its own subprocess, so its peak RSS (VmHWM) is its own and no
import or cache of an earlier stage helps a later one; wall and CPU seconds are measured
inside the child. The stages read the same demo world written as Parquet:

- ``world``: ``generate_world`` + ``write_world`` (context: the size of the data);
- ``features``: ``load_history`` (parse, type, validate) and one ``build_features``;
- ``train``: ``run_training`` into a temporary MLflow store, split into phases by the
  times of its progress messages (snapshots, churn tuning, timing tuning, evaluation);
- ``score``: a weekly ``run_scoring`` (last week's run first, untimed) as a whole, its
  parts timed by wrapping the functions
  ``score_accounts`` calls (features, reasons, weekly changes, lights) and the output
  writer; then, after the peak is recorded, the SHAP throughput of the path ka_ml uses
  (LightGBM's TreeSHAP per split pattern, :mod:`ka_ml.modeling.treeshap`) against one plain
  ``pred_contrib`` pass and ``shap.TreeExplainer`` on the same rows.

``make train`` itself is timed as ``ka-ml demo-data`` + ``ka-ml train`` subprocesses in a
scratch folder holding a copy of ``configs/``. Growth exponents are the slope of
log(seconds) on log(accounts). Results are rendered by :mod:`ka_ml.bench.__main__`.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ka_ml.bench.features import call_in_subprocess, peak_mb

SIZES = (10_000, 100_000)
QUICK_SIZES = (300,)
SEED = 42
YEARS = 3.0
SCORE_TARGET_S = 60.0  # issue 5.7: 100k accounts scored and explained in under 60 s
CASE_TIMEOUT_S = 3600
# Compiled bytecode of the children, kept outside the repository and the virtualenv.
PYCACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ka_ml" / "pycache"


@dataclass(frozen=True)
class Budget:
    """The training budget of the benchmark (the same at every size, so ratios compare)."""

    n_trials: int = 2
    max_snapshots: int = 15  # about the fewest that leave purged CV folds (30-day cadence)
    timeout_seconds: float = 3600.0  # large: the trial count, not the clock, is the budget
    # issue 17's budget ("2 trials, 1 fold, 15 snapshots"): tuning's folds are the test
    # origins since issue 13, so its one fold is one origin (the default config has 3)
    backtest_origins: int = 1

    def overrides(self, root: Path) -> dict[str, Any]:
        return {
            "paths": {"outputs": str(root / "outputs"), "models": str(root / "models")},
            "tuning": {
                "n_trials": self.n_trials,
                "timeout_seconds": self.timeout_seconds,
                "backtest_origins": self.backtest_origins,
            },
            "features": {"max_snapshots": self.max_snapshots},
        }


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass
class _Clock:
    """Wall/CPU seconds since the start of a case and named accumulated parts."""

    wall0: float = field(default_factory=time.perf_counter)
    cpu0: float = field(default_factory=_cpu_s)
    parts: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def wall(self) -> float:
        return time.perf_counter() - self.wall0

    def cpu(self) -> float:
        return _cpu_s() - self.cpu0

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.parts[name] = self.parts.get(name, 0.0) + time.perf_counter() - t
                self.calls[name] = self.calls.get(name, 0) + 1

        return timed


def _load(data_dir: str) -> Any:
    from ka_ml.config import Config
    from ka_ml.data.loader import load_history

    return load_history(data_dir, Config().data)


# --- the cases (each runs inside its own subprocess) -----------------------------------------
def case_world(n_accounts: int, data_dir: str) -> dict[str, Any]:
    """Generate the demo world and write it as Parquet."""
    from ka_ml.demo.world import generate_world, write_world

    clock = _Clock()
    world = generate_world(n_accounts, YEARS, SEED)
    gen = clock.wall()
    write_world(world, Path(data_dir), fmt="parquet")
    return {
        "generate_s": round(gen, 3),
        "write_s": round(clock.wall() - gen, 3),
        "rows": {k: len(v) for k, v in world.tables.items()},
        "peak_rss_mb": round(peak_mb(), 1),
    }


def case_features(data_dir: str) -> dict[str, Any]:
    """Load (read, type, validate) the history, then one point-in-time feature build."""
    from ka_ml.config import Config
    from ka_ml.features.build import build_features

    clock = _Clock()
    history = _load(data_dir)
    load_s = clock.wall()
    feats = build_features(history, history.default_as_of, Config())
    return {
        "load_s": round(load_s, 3),
        "features_s": round(clock.wall() - load_s, 3),
        "cpu_s": round(clock.cpu(), 2),
        "eligible": len(feats),
        "feature_columns": feats.shape[1] - 2,
        "peak_rss_mb": round(peak_mb(), 1),
    }


# (phase name, the progress message that starts it); the last phase ends with the run
TRAIN_PHASES = (
    ("MLflow store + setup", None),
    ("snapshots", "building training snapshots"),
    ("logging inputs", re.compile(r"^\d+ snapshot rows")),
    ("churn: tune + fit + calibrate", "tuning the churn model"),
    ("timing: tune + fit", "tuning the purchase-timing model"),
    ("evaluate + log + register", "evaluating out of time"),
)


def train_phases(marks: Sequence[tuple[float, str]], total: float) -> dict[str, float]:
    """Seconds per phase of ``run_training`` from its (time, progress message) marks."""
    starts: list[tuple[str, float]] = [(TRAIN_PHASES[0][0], 0.0)]
    for name, key in TRAIN_PHASES[1:]:
        for t, msg in marks:
            hit = key.search(msg) if isinstance(key, re.Pattern) else msg.startswith(str(key))
            if hit:
                starts.append((name, t))
                break
    ends = [t for _, t in starts[1:]] + [total]
    return {name: round(end - t, 3) for (name, t), end in zip(starts, ends, strict=True)}


_TRIAL = re.compile(r"^\s*\w+ trial \d+: (\w+)")


def trial_states(messages: Iterable[str]) -> list[str]:
    """The state of each tuning trial from `train`'s progress lines ('  churn trial 3:
    complete score=0.88' -> 'complete'); other lines, the tuning summary included, are not
    trials."""
    return [m[1] for m in map(_TRIAL.match, messages) if m]


def case_train(data_dir: str, root: str, budget: dict[str, Any]) -> dict[str, Any]:
    """``run_training`` into a fresh MLflow store under ``root``."""
    from ka_ml.config import Config
    from ka_ml.jobs.train import run_training

    history = _load(data_dir)
    cfg = Config.model_validate(Budget(**budget).overrides(Path(root)))
    marks: list[tuple[float, str]] = []
    clock = _Clock()
    report = run_training(
        history, cfg, history.default_as_of, progress=lambda s: marks.append((clock.wall(), s))
    )
    total = clock.wall()
    rows = next((m for _, m in marks if re.match(r"^\d+ snapshot rows", m)), "")
    states = trial_states(m for _, m in marks)
    return {
        "seconds": round(total, 3),
        "cpu_s": round(clock.cpu(), 2),
        "phases": train_phases(marks, total),
        "snapshot_rows": int(rows.split()[0]) if rows else None,
        "trials": {s: states.count(s) for s in sorted(set(states))},
        "split": report.split,
        "churn_roc_auc": round(float(report.evaluation.churn.get("roc_auc", np.nan)), 4),
        "peak_rss_mb": round(peak_mb(), 1),
    }


SCORE_PARTS = {  # function in ka_ml.scoring.score -> part name
    "build_features": "features (as-of and week before)",
    "probability_contributions": "SHAP this week (shared by reasons and changes)",
    "top_reasons": "reasons (texts)",
    "changes_since": "weekly changes (vs the stored run, or SHAP a week before; texts)",
    "assign_lights": "lights + actions",
    "recommended_actions": "lights + actions",
}
TIMING_PART = "timing forecast"  # TimingModel.predict_frame, a method: wrapped on the class


def _instrument_scoring(clock: _Clock, keep: dict[str, Any]) -> None:
    """Wrap what ``run_scoring`` calls so one run yields its own breakdown."""
    from ka_ml.jobs import score as R
    from ka_ml.modeling.timing import TimingModel
    from ka_ml.scoring import score as S
    from ka_ml.scoring import score_history

    for fn, part in SCORE_PARTS.items():
        if hasattr(S, fn):
            setattr(S, fn, clock.wrap(part, getattr(S, fn)))
    TimingModel.predict_frame = clock.wrap(TIMING_PART, TimingModel.predict_frame)  # type: ignore[method-assign]
    load_models = clock.wrap("load models", R.load_models)

    def load_and_keep(cfg: Any, *args: Any, **kwargs: Any) -> Any:
        keep["models"] = load_models(cfg, *args, **kwargs)
        return keep["models"]

    R.load_models = load_and_keep  # type: ignore[assignment]
    R.score_and_explain = clock.wrap("score_accounts", R.score_and_explain)  # type: ignore[assignment]
    R._write_outputs = clock.wrap("write outputs", R._write_outputs)  # type: ignore[assignment]
    score_history.write_run = clock.wrap("score history", score_history.write_run)  # type: ignore[assignment]


def shap_throughput(churn: Any, X: Any) -> dict[str, Any]:
    """rows/s of ``ChurnModel.contributions`` (the path ka_ml uses: LightGBM's TreeSHAP per
    distinct split pattern), of one plain ``pred_contrib`` pass and of shap.TreeExplainer.

    Same model, same rows; the explainer is built inside the timing (it is part of using
    it), ``import shap`` is not. Also the max |difference| of shap's and of ka_ml's trees'
    values from the plain pass.
    """
    import warnings

    import shap

    from ka_ml.modeling.treeshap import tree_contributions

    Xa = churn.aligned(X)
    t = time.perf_counter()
    churn.contributions(X)  # timed: the path ka_ml uses
    ours_s = time.perf_counter() - t
    t = time.perf_counter()
    trees = np.asarray(
        churn.booster_.predict(Xa, pred_contrib=True, num_iteration=churn.best_iteration_)
    )
    plain_s = time.perf_counter() - t
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap 0.51: "changed to a list of ndarray"
        values = np.asarray(shap.TreeExplainer(churn.booster_).shap_values(Xa))
    shap_s = time.perf_counter() - t
    if values.ndim == 3:  # a per-class stack: keep the positive class
        values = values[-1]
    dump = churn.booster_.dump_model()
    # the comparisons are of the trees' TreeSHAP: a blend or logistic champion adds linear
    # terms to ``contributions`` that shap's explainer of the booster does not see
    ours = tree_contributions(churn.booster_, Xa, churn.best_iteration_)
    return {
        "rows": len(X),
        "ours_s": round(ours_s, 3),
        "ours_rows_s": round(len(X) / ours_s, 1),
        "pred_contrib_s": round(plain_s, 3),
        "pred_contrib_rows_s": round(len(X) / plain_s, 1),
        "shap_s": round(shap_s, 3),
        "shap_rows_s": round(len(X) / shap_s, 1),
        "max_abs_diff": float(np.abs(values - trees[:, :-1]).max()),
        "ours_max_abs_diff": float(np.abs(ours - trees).max()),
        "trees": len(dump["tree_info"]),
        "mean_leaves": round(float(np.mean([t["num_leaves"] for t in dump["tree_info"]])), 1),
        "max_depth": max(_depth(t["tree_structure"]) for t in dump["tree_info"]),
        "features": len(churn.features_),
    }


def _depth(node: dict[str, Any]) -> int:
    if "leaf_index" in node or "left_child" not in node:
        return 0
    return 1 + max(_depth(node["left_child"]), _depth(node["right_child"]))


def case_score(data_dir: str, root: str, budget: dict[str, Any], shap_rows: int) -> dict[str, Any]:
    """A weekly ``run_scoring`` with the champions of ``case_train`` (after last week's run,
    untimed, so "since last week" reads the stored contributions as it does every week);
    then the SHAP comparison."""
    import pandas as pd

    from ka_ml.config import Config
    from ka_ml.features.build import build_features
    from ka_ml.jobs.score import run_scoring

    history = _load(data_dir)
    cfg = Config.model_validate(Budget(**budget).overrides(Path(root)))
    last_week = history.default_as_of - pd.Timedelta(days=7)
    run_scoring(history, cfg, last_week, Path(root) / "outputs" / "bench-last-week")
    clock = _Clock()
    keep: dict[str, Any] = {}
    _instrument_scoring(clock, keep)
    clock.wall0, clock.cpu0 = time.perf_counter(), _cpu_s()
    res = run_scoring(history, cfg, history.default_as_of, Path(root) / "outputs" / "bench")
    total, cpu, peak = clock.wall(), clock.cpu(), peak_mb()
    parts = {k: round(v, 3) for k, v in clock.parts.items()}
    accounted = sum(v for k, v in parts.items() if k in {*SCORE_PARTS.values(), TIMING_PART})
    parts["churn prediction + assembly"] = round(parts["score_accounts"] - accounted, 3)
    X = build_features(history, history.default_as_of, cfg).reset_index(drop=True)
    X = X.iloc[: min(len(X), shap_rows)]
    return {
        "seconds": round(total, 3),
        "cpu_s": round(cpu, 2),
        "accounts_scored": len(res.scores),
        "parts": parts,
        "peak_rss_mb": round(peak, 1),
        "shap": shap_throughput(keep["models"].churn, X),
    }


# --- running cases in subprocesses ------------------------------------------------------------
def bench_env(pycache: Path | None = None) -> dict[str, str]:
    """The children's environment: PASSIVE OpenMP, no inherited MLflow store.

    ``pycache`` (PYTHONPYCACHEPREFIX) lets the children reuse compiled bytecode kept
    outside the repository and the virtualenv: where PYTHONDONTWRITEBYTECODE is set and
    site-packages hold no .pyc, every import would otherwise be compiled again (seconds
    per process for mlflow alone), which is not what an installed ka_ml pays.
    """
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_REGISTRY_URI", None)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def run_case(name: str, env: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    """Run ``case_<name>(**kwargs)`` in a fresh interpreter; return its JSON result.

    The result also holds the 1-minute load average when the case started (``load1``): on
    a shared machine it says how far wall seconds can be trusted.
    """
    load1 = load_average()
    r = call_in_subprocess("ka_ml.bench.e2e", f"case_{name}", kwargs, env, CASE_TIMEOUT_S)
    return {**r, "load1": load1}


def load_average() -> float:
    """The 1-minute load average (NaN where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 1)
    except OSError:
        return float("nan")


def warm_up(env: dict[str, str]) -> float:
    """Import what the cases import once, so compiled bytecode is cached for all of them."""
    mods = "ka_ml.jobs.train, ka_ml.jobs.score, ka_ml.reporting.html, ka_ml.reporting.excel, shap"
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", f"import {mods}, ka_ml.cli, mlflow.pyfunc"],
        check=True,
        env=env,
        capture_output=True,
        timeout=CASE_TIMEOUT_S,
    )
    return round(time.perf_counter() - t, 1)


def make_train(
    env: dict[str, str], repo: Path, config_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Wall time of ``make train`` on the default demo: ``ka-ml demo-data`` then ``ka-ml train``.

    Runs in a scratch folder holding a copy of ``configs/`` (so data/, models/, outputs/ are
    its own). ``config_overrides`` (quick mode only) are merged into the copied config.
    """
    import yaml

    script = Path(sys.executable).with_name("ka-ml")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "ka_ml"]
    with tempfile.TemporaryDirectory(prefix="ka_ml_bench_train_") as tmp:
        work = Path(tmp)
        shutil.copytree(repo / "configs", work / "configs")
        cfg_path = work / "configs" / "ka_ml.yaml"
        raw = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
        for section, values in (config_overrides or {}).items():
            raw.setdefault(section, {}).update(values)
        if config_overrides:
            cfg_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        out: dict[str, Any] = {
            "accounts": raw.get("data", {}).get("demo_accounts", 2000),
            "n_trials": raw.get("tuning", {}).get("n_trials"),
            "timeout_seconds": raw.get("tuning", {}).get("timeout_seconds"),
            "max_snapshots": raw.get("features", {}).get("max_snapshots"),
            "overridden": bool(config_overrides),
        }
        for step, args in (("demo_data", ["demo-data"]), ("train", ["train"])):
            out[f"{step}_load1"] = load_average()
            wall, cpu, peak = _run_measured([*cli, *args, "--config", str(cfg_path)], work, env)
            out[f"{step}_s"], out[f"{step}_cpu_s"], out[f"{step}_peak_rss_mb"] = (
                round(wall, 2),
                round(cpu, 2),
                round(peak, 1),
            )
    return out


def _run_measured(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one command, from ``wait4`` on that very child."""
    with tempfile.TemporaryFile(mode="w+") as log:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{log.read()[-3000:]}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


# --- the whole end-to-end run ---------------------------------------------------------------
def run(
    sizes: Sequence[int] = SIZES,
    budget: Budget = Budget(),
    shap_rows: int = 10_000,
    env: dict[str, str] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> list[dict[str, Any]]:
    """One record per size: world, features, train and score results (see the cases)."""
    env = env or bench_env()
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ka_ml_bench_e2e_") as tmp:
        for n in sizes:
            root = Path(tmp) / f"n{n}"
            data = str(root / "data")
            rec: dict[str, Any] = {"accounts": n}
            for stage, kwargs in (
                ("world", {"n_accounts": n, "data_dir": data}),
                ("features", {"data_dir": data}),
                ("train", {"data_dir": data, "root": str(root), "budget": vars(budget)}),
                (
                    "score",
                    {
                        "data_dir": data,
                        "root": str(root),
                        "budget": vars(budget),
                        "shap_rows": shap_rows,
                    },
                ),
            ):
                log(f"{n:,} accounts: {stage} ...")
                rec[stage] = run_case(stage, env, **kwargs)
            records.append(rec)
            shutil.rmtree(root, ignore_errors=True)
    return records


def exponent(sizes: Sequence[float], values: Sequence[float]) -> float:
    """Slope of log(value) on log(size): 1 = linear growth (NaN if undefined)."""
    x, y = np.asarray(sizes, float), np.asarray(values, float)
    ok = (x > 0) & (y > 0) & np.isfinite(y)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])
