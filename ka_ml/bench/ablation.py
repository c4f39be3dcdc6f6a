"""`make ablation`: where does the churn procedure lose on CDNOW? One change at a time,
judged on pre-cutoff data only (issue 13, deliverable 1).

For each CDNOW cutoff C (1997-09-30, 1997-12-31) and each config, everything here uses the
orders dated before C and the rolling test origins ``train --as-of C`` itself builds inside
that history (each origin's 90-day label window closes by C): the 90 days after C are never
read. The chosen procedure is what ``train`` does on those origins (parameters: defaults
unless Optuna gains ``TUNING_MIN_GAIN``; family by pooled ROC AUC; calibration by
cross-fitted Brier across origins). Each block changes one thing against it:

1. model family: LightGBM, blend, logistic (sigmoid of their margins) beside the baselines
   recency only, RFM logistic regression and BG/NBD on the same rows;
2. parameters: the defaults (Optuna's trial 0) against the best of a fixed number of trials
   (selected on the same origins: its figure is optimistic);
3. calibration: none, Platt, isotonic judged forward across origins, and the old way (a map
   fitted on the earliest origin, applied to the latest);
4. final fit: the old train/calibration/test split's training window against every labelled
   snapshot whose window closed by the origin (trees);
5. snapshot cadence: 7, 14, 28 days on the origin dates every cadence shares;
6. feature sets: all, without the whole-history order features, without tenure-like ones,
   and with BG/NBD features added (issue 13 point 5's "LightGBM with BG/NBD features": P(alive),
   expected orders and P(no order) within the horizon, the model fitted per snapshot date on
   that date's accounts only, so each row still sees nothing after its date);
7. shape constraints: the trees made monotone where the direction is the textbook one
   (risk rises with the days since the last order, falls with the order counts; then also
   with spend), LightGBM's ``monotone_constraints``: a model that cannot bend the wrong way
   where the scored population lies beyond the training rows (an older cohort) might rank it
   better.

Deltas are against the chosen procedure measured the same way on the same rows (the row
marked "ref" in each block).

    python -m ka_ml.bench.ablation [--config PATH ...] [--sample N] [--out PATH] [--trials N]
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ka_ml.bench.cdnow import (
    CUTOFFS,
    _f,
    _machine,
    _table,
    bench_inputs,
    bench_parser,
    cutoff_config,
    load_history,
    private_mlflow,
    write_results,
)

if TYPE_CHECKING:
    from ka_ml.config import Config
    from ka_ml.data.history import History
    from ka_ml.modeling.churn import Calibrator
    from ka_ml.modeling.split import Origin
    from ka_ml.modeling.tuning import TuningResult
    from ka_ml.training.folds import Folds

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "ablation.md"
N_TRIALS = 6  # a fixed budget: the result must not depend on machine load
TUNING_TIMEOUT = 3600.0  # a safety cap only
CADENCES = (7, 14, 28)
OLD_CALIBRATION_SNAPSHOTS = 2  # what the old split held back between training and test
ORDER_HISTORY = (
    "orders_lifetime",
    "spend_lifetime",
    "orders_per_month",
    "spend_per_month",
    "repeat_orders",
    "active_span_days",
    "recency_tenure_ratio",
    "first_order_amount",
)
TENURE_LIKE = ("tenure_days", "active_span_days")
BGNBD_FEATURES = ("bgnbd_p_alive", "bgnbd_expected_orders", "bgnbd_p_no_order")
# monotone directions of the churn risk (+1 rises with the feature, -1 falls with it)
RISK_RISES = ("recency_days",)
RISK_FALLS_ORDERS = (
    "orders_30d",
    "orders_90d",
    "orders_180d",
    "orders_365d",
    "orders_lifetime",
    "repeat_orders",
    "orders_per_month",
)
RISK_FALLS_SPEND = (
    "spend_30d",
    "spend_90d",
    "spend_180d",
    "spend_365d",
    "spend_lifetime",
    "spend_per_month",
)
KEYS = ["account_id", "as_of"]

Progress = Callable[[str], None]


# -- measuring --------------------------------------------------------------------------
@dataclass(frozen=True)
class Score:
    """Pooled ROC AUC and Brier over the origins' rows, and ROC AUC per origin (latest first)."""

    rows: int
    roc_auc: float
    brier: float
    per_origin: tuple[tuple[pd.Timestamp, float], ...]

    @property
    def latest_origin(self) -> pd.Timestamp:
        return max(d for d, _ in self.per_origin)


def score(frame: pd.DataFrame, p: np.ndarray) -> Score:
    """``p`` = P(churn) for the rows of ``frame`` (``as_of``, ``churn``); NaN rows are left out."""
    from ka_ml.modeling import metrics as M

    p = np.asarray(p, float)
    ok = np.isfinite(p)
    y, dates, q = frame["churn"].to_numpy(float)[ok], frame["as_of"].to_numpy()[ok], p[ok]
    per = tuple(
        (pd.Timestamp(d), M.roc_auc(y[dates == d], q[dates == d]))
        for d in sorted(np.unique(dates), reverse=True)
    )
    return Score(int(ok.sum()), M.roc_auc(y, q), M.brier(y, q), per)


def delta(frame: pd.DataFrame, p: np.ndarray, p_ref: np.ndarray) -> tuple[float, float]:
    """(ROC AUC, Brier) of ``p`` minus those of ``p_ref`` on the rows where both exist."""
    ok = np.isfinite(p) & np.isfinite(p_ref)
    a, b = score(frame[ok], p[ok]), score(frame[ok], p_ref[ok])
    return a.roc_auc - b.roc_auc, a.brier - b.brier


@dataclass(frozen=True)
class Row:
    """One line of the table; ``score`` None when the change cannot be measured here."""

    ablation: str
    change: str
    scored_with: str
    score: Score | None
    delta: tuple[float, float] | None  # None: this is the reference of its block
    decision: str


def measured(
    ablation: str,
    change: str,
    scored_with: str,
    frame: pd.DataFrame,
    p: np.ndarray,
    p_ref: np.ndarray | None,
    decision: str,
) -> Row:
    d = None if p_ref is None else delta(frame, np.asarray(p, float), np.asarray(p_ref, float))
    return Row(ablation, change, scored_with, score(frame, p), d, decision)


def aligned(frame: pd.DataFrame, source: pd.DataFrame, column: str) -> np.ndarray:
    """``source[column]`` in the row order of ``frame`` (matched on account and date)."""
    merged = frame[KEYS].merge(source[[*KEYS, column]], on=KEYS, how="left", validate="1:1")
    return merged[column].to_numpy(float)


def verdict(
    frame: pd.DataFrame, p: np.ndarray, p_ref: np.ndarray, kept: str, alternative: str
) -> str:
    """What a measured alternative leads to: a candidate only when it gains the tuning
    threshold of pooled ROC AUC, does not lower the mean ROC AUC per origin (pooled AUC also
    rewards levels that track the churn rate across origins) and has no worse Brier score."""
    from ka_ml.training.churn import TUNING_MIN_GAIN

    d_auc, d_brier = delta(frame, p, p_ref)
    mean_gain = _mean_auc(score(frame, p)) - _mean_auc(score(frame, p_ref))
    if d_auc >= TUNING_MIN_GAIN and mean_gain >= 0 and d_brier <= 0:
        return f"candidate: {alternative} (better here; confirm at the other cutoff)"
    if d_auc <= -TUNING_MIN_GAIN:
        return f"kept: {kept} ({alternative} loses pooled ROC AUC)"
    if d_auc >= TUNING_MIN_GAIN:  # a gain the rule does not take: say what held it back
        cost = "a worse Brier score" if d_brier > 0 else "a lower mean ROC AUC per origin"
        return f"kept: {kept} ({alternative} gains pooled ROC AUC at {cost})"
    if mean_gain >= TUNING_MIN_GAIN and d_brier <= 0:
        return f"kept: {kept} ({alternative} ranks better within origins only)"
    return f"kept: {kept} (pooled ROC AUC within ±{TUNING_MIN_GAIN})"


def _mean_auc(s: Score) -> float:
    return float(np.nanmean([v for _, v in s.per_origin]))


# -- origins ----------------------------------------------------------------------------
def purged_train(dates: Sequence[pd.Timestamp], origin: pd.Timestamp, purge: int) -> tuple:
    """The dates ``train`` uses for ``origin``: label window closed by it."""
    gap = pd.Timedelta(days=purge)
    return tuple(d for d in sorted(dates) if d + gap <= origin)


def old_train_dates(
    dates: Sequence[pd.Timestamp],
    origin: pd.Timestamp,
    purge: int,
    n_calibration: int = OLD_CALIBRATION_SNAPSHOTS,
) -> tuple:
    """The old split's training window with ``origin`` as its test snapshot: the
    ``n_calibration`` latest dates purged before the origin calibrated, and training
    took only the dates purged before the first of those (empty when none is left)."""
    cal = [d for d in purged_train(dates, origin, purge) if d < origin][-n_calibration:]
    if len(cal) < n_calibration:
        return ()
    return tuple(d for d in purged_train(dates, cal[0], purge) if d < cal[0])


def shared_origin_dates(
    labelled: Mapping[int, Sequence[pd.Timestamp]], purge: int, n: int
) -> list[pd.Timestamp]:
    """The latest ``n`` labelled dates every cadence has, each with training dates in all."""
    common = set.intersection(*(set(v) for v in labelled.values()))
    fit = [t for t in common if all(purged_train(v, t, purge) for v in labelled.values())]
    return sorted(fit, reverse=True)[:n]


def folds_at(labelled: pd.DataFrame, origins: Sequence[Origin], purge: int) -> Folds:
    """``Folds`` over ``labelled`` with the given origins (each with its own training dates)."""
    from ka_ml.modeling.split import Backtest
    from ka_ml.training.folds import Folds

    dates = [o.date for o in origins]
    test = labelled[labelled["as_of"].isin(dates)].reset_index(drop=True)
    final = tuple(sorted(pd.Timestamp(d) for d in labelled["as_of"].unique()))
    return Folds(Backtest(tuple(origins), final, purge, len(origins)), labelled, test)


def fitted_margins(
    tr: pd.DataFrame,
    te: pd.DataFrame,
    feats: list[str],
    params: dict[str, Any],
    cfg: Config,
    family: str,
) -> np.ndarray:
    """The churn procedure fitted on ``tr`` (only the parts ``family`` needs: trees, the
    logistic part, or both for the blend), its margins on ``te``."""
    from ka_ml.modeling.churn import ChurnModel
    from ka_ml.modeling.linear import LinearChurn
    from ka_ml.training.churn import fit_churn_model

    y = tr["churn"].to_numpy()
    if family == "logistic":  # what ChurnModel.fit_linear fits, without the trees
        return LinearChurn().fit(tr[feats], y.astype(int)).margin(te[feats])
    if family == "blend":
        return fit_churn_model(tr, feats, params, cfg).set_family(family).margin(te[feats])
    groups = tr["account_id"].astype("str").to_numpy()
    m = ChurnModel(params=params, random_state=cfg.seed).fit(tr[feats], y, groups)
    return m.margin(te[feats])


def origin_margins(
    folds: Folds, feats: list[str], params: dict[str, Any], cfg: Config, family: str
) -> pd.DataFrame:
    """Every origin: ``family`` fitted on the origin's training rows, its margins
    (``margin_<family>``) on the origin's test rows."""
    out = []
    for o in folds.split.origins:
        tr, te = folds.train_rows(o), folds.test_rows(o)
        frame = te[[*KEYS, "churn"]].reset_index(drop=True)
        frame[f"margin_{family}"] = fitted_margins(tr, te, feats, params, cfg, family)
        out.append(frame)
    return pd.concat(out, ignore_index=True)


# -- the chosen procedure ---------------------------------------------------------------
@dataclass(frozen=True)
class Setup:
    """One cutoff's training history (rows before the cutoff only), snapshots and origins."""

    history: History
    cfg: Config
    cutoff: pd.Timestamp
    ts: pd.DataFrame
    folds: Folds
    feats: list[str]

    @property
    def cadence(self) -> int:
        dates = np.sort(self.ts["as_of"].unique())
        return int(pd.Timedelta(np.diff(dates).min()).days) if len(dates) > 1 else 0

    @property
    def purge(self) -> int:
        return self.folds.split.purge_days


def prepare(history: History, cfg: Config, cutoff: pd.Timestamp) -> Setup:
    """What ``train --as-of cutoff`` builds: snapshots from rows before the cutoff, origins."""
    from ka_ml.features.snapshots import build_training_set
    from ka_ml.training.folds import check_labels, feature_columns, make_folds

    known = history.before(cutoff)
    ts = build_training_set(known, cfg, cutoff)
    folds = make_folds(ts, cfg)
    check_labels(folds)
    return Setup(known, cfg, pd.Timestamp(cutoff), ts, folds, feature_columns(ts))


def same_procedure(a: Setup, b: Setup) -> bool:
    """Identical snapshots, origins and seed: every measurement here would be identical."""
    origins = [(o.date, o.train_dates) for o in a.folds.split.origins]
    return (
        a.ts.equals(b.ts)
        and origins == [(o.date, o.train_dates) for o in b.folds.split.origins]
        and a.cfg.seed == b.cfg.seed
    )


@dataclass(frozen=True)
class Chosen:
    """The procedure ``train`` chooses on the origins, and what it measured there."""

    setup: Setup
    tuning: TuningResult
    oot: pd.DataFrame  # backtest_churn: margins of every family and the baselines
    family: str
    calibrator: Calibrator
    splits: list[tuple[Any, Any]] = field(repr=False)

    @property
    def params(self) -> dict[str, Any]:
        return self.tuning.best_params

    @property
    def p(self) -> np.ndarray:
        """The family's margins through the chosen calibration, cross-fitted across origins."""
        return np.asarray(self.calibrator.crossfit_, float)


def crossfit_splits(
    margin: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int
) -> list[tuple[Any, Any]]:
    """The splits ``Calibrator.choose`` judges on: forward across the origins."""
    from ka_ml.modeling.churn import Calibrator

    return Calibrator.splits(margin, y, seed, groups)


def choose(setup: Setup, n_trials: int, progress: Progress) -> Chosen:
    """Tune (fixed budget), backtest every family and the baselines, choose the family and
    the calibration: ``train``'s own steps on this cutoff's origins."""
    from ka_ml.training.churn import backtest_churn, choose_calibration, choose_family, tune_churn

    cfg = setup.cfg.model_copy(
        update={
            "tuning": setup.cfg.tuning.model_copy(
                update={"n_trials": n_trials, "timeout_seconds": TUNING_TIMEOUT}
            )
        }
    )

    def on_trial(n: int, v: float | None, state: str) -> None:
        progress(f"  trial {n}: {state.lower()} {'' if v is None else round(v, 4)}")

    tuning = tune_churn(setup.folds, setup.feats, cfg, on_trial)
    progress("backtesting every family and the baselines on the origins ...")
    oot = backtest_churn(setup.history, setup.folds, setup.feats, tuning.best_params, cfg)
    family, _ = choose_family(oot)
    y = oot["churn"].to_numpy(float)
    groups = oot["as_of"].astype("int64").to_numpy()
    margin = oot[f"margin_{family}"].to_numpy()
    cal = choose_calibration(setup.folds, setup.feats, tuning.best_params, family, oot, cfg)
    if cal.crossfit_ is None:  # "none" (or too little to judge): the model's own p
        cal.crossfit_ = cal.transform(margin)
    return Chosen(setup, tuning, oot, family, cal, crossfit_splits(margin, y, groups, cfg.seed))


def _sigmoid(x: Any) -> np.ndarray:
    from ka_ml.modeling.churn import sigmoid

    return sigmoid(np.asarray(x, float))


CALIBRATION_NAMES = {"none": "none", "sigmoid": "Platt", "isotonic": "isotonic"}


def chosen_row(ch: Chosen) -> Row:
    params = "default" if ch.params == _defaults() else "tuned"
    method = CALIBRATION_NAMES[ch.calibrator.method]
    change = f"the chosen procedure: {params} parameters, {ch.family}, calibration {method}"
    return measured(
        "0 chosen",
        change,
        f"{ch.family}, calibrated (cross-fitted)",
        ch.oot,
        ch.p,
        None,
        "what `train` reports",
    )


def _defaults() -> dict[str, Any]:
    from ka_ml.modeling.lightgbm_params import default_params

    return default_params()


# -- 1. family --------------------------------------------------------------------------
def family_rows(ch: Chosen) -> list[Row]:
    from ka_ml.training.churn import FAMILIES
    from ka_ml.training.evaluation import BASELINES

    oot, name = ch.oot, "1 family"
    ref = _sigmoid(oot[f"margin_{ch.family}"])
    ref_auc = score(oot, ref).roc_auc
    rows = []
    for f in FAMILIES:
        p = _sigmoid(oot[f"margin_{f}"])
        chosen = f == ch.family
        decision = f"chosen: {f}" if chosen else "not chosen"
        rows.append(measured(name, f, "sigmoid(margin)", oot, p, None if chosen else ref, decision))
    for b in BASELINES:
        p = oot[b].to_numpy(float)
        gap = score(oot, p).roc_auc - ref_auc
        decision = f"baseline: ranks better than {ch.family}" if gap > 0 else "baseline"
        rows.append(measured(name, b, "its own probability", oot, p, ref, decision))
    return rows


# -- 2. parameters ----------------------------------------------------------------------
def trial_params(trials: pd.DataFrame, number: int) -> dict[str, Any]:
    """The LightGBM parameters of Optuna trial ``number`` (from the trials table)."""
    import optuna

    from ka_ml.modeling.lightgbm_params import suggest_params

    row = trials[trials["number"] == number].iloc[0]
    ints = {k for k, v in _defaults().items() if isinstance(v, int)}
    values = {c.removeprefix("params_"): row[c] for c in trials.columns if c.startswith("params_")}
    values = {k: int(v) if k in ints else float(v) for k, v in values.items()}
    return suggest_params(optuna.trial.FixedTrial(values))


def best_trial(trials: pd.DataFrame) -> tuple[int, float, float]:
    """(best trial's number, its mean origin ROC AUC, trial 0's), completed trials only."""
    done = trials[(trials["state"] == "COMPLETE") & trials["value"].notna()]
    best = done.sort_values("value", ascending=False, kind="stable").iloc[0]
    first = done.loc[done["number"] == 0, "value"]
    return int(best["number"]), float(best["value"]), float(first.iloc[0])


def params_rows(ch: Chosen, progress: Progress) -> list[Row]:
    """Trees with the defaults (trial 0) and with the best trial's parameters."""
    from ka_ml.training.churn import TUNING_MIN_GAIN

    s, name = ch.setup, "2 parameters"
    trials = ch.tuning.trials
    number, best, first = best_trial(trials)
    done = int((trials["state"] == "COMPLETE").sum())
    tuned = ch.params != _defaults()
    oot_trees = ch.oot[[*KEYS, "churn", "margin_lightgbm"]]
    if number == 0:
        other = oot_trees
    else:
        progress(f"trees with trial {number}'s parameters on every origin ...")
        other_params = _defaults() if tuned else trial_params(trials, number)
        other = origin_margins(s.folds, s.feats, other_params, s.cfg, "lightgbm")
    by_default = other if tuned else oot_trees
    by_best = oot_trees if tuned else other
    p_def = _sigmoid(aligned(ch.oot, by_default, "margin_lightgbm"))
    p_best = _sigmoid(aligned(ch.oot, by_best, "margin_lightgbm"))
    gain = best - first
    best_decision = (
        f"chosen: tuned parameters (gain {gain:+.4f})"
        if tuned
        else f"rejected: gain {gain:+.4f} < {TUNING_MIN_GAIN}"
    )
    return [
        measured(
            name,
            f"defaults = trial 0: mean origin ROC AUC {first:.4f}",
            "trees, sigmoid(margin)",
            ch.oot,
            p_def,
            p_best if tuned else None,
            "replaced by tuned parameters" if tuned else "kept: default parameters",
        ),
        measured(
            name,
            f"Optuna best of {done} completed trials (trial {number}): mean origin ROC AUC "
            f"{best:.4f}, optimistic (selected on these origins)",
            "trees, sigmoid(margin)",
            ch.oot,
            p_best,
            None if tuned else p_def,
            best_decision if number else "trial 0 was the best: kept default parameters",
        ),
    ]


# -- 3. calibration ---------------------------------------------------------------------
def calibration_rows(ch: Chosen) -> list[Row]:
    """Cross-fitted none / Platt / isotonic, and the old single-origin map for contrast."""
    from ka_ml.modeling.churn import Calibrator

    oot, name = ch.oot, "3 calibration"
    margin = oot[f"margin_{ch.family}"].to_numpy(float)
    y = oot["churn"].to_numpy(float)
    if not ch.splits:
        return [Row(name, "a single origin: nothing to cross-fit", "", None, None, "kept: none")]
    chosen = ch.calibrator.method
    judged = np.sort(np.concatenate([va for _, va in ch.splits]))
    frame = oot.iloc[judged].reset_index(drop=True)
    ref = Calibrator.cross_fit(chosen, margin, y, ch.splits)[judged]
    vetoed = ch.calibrator.cv_brier_.get("in_period_method")
    rows = []
    for method, label in CALIBRATION_NAMES.items():
        p = Calibrator.cross_fit(method, margin, y, ch.splits)[judged]
        is_chosen = method == chosen
        decision = f"chosen: {label}" if is_chosen else "not chosen"
        if vetoed is not None and method != "none" and not is_chosen:
            decision += f" (held-out accounts in the training period preferred {vetoed})"
        rows.append(
            measured(
                name,
                f"{label}, judged forward (map from the earlier origins)",
                f"{ch.family}, later origins only",
                frame,
                p,
                None if is_chosen else ref,
                decision,
            )
        )
    return rows + old_calibration_rows(ch, margin, y)


def old_calibration_rows(ch: Chosen, margin: np.ndarray, y: np.ndarray) -> list[Row]:
    """A map fitted on the earliest origin's margins, applied to the latest origin."""
    from ka_ml.modeling.churn import Calibrator

    dates = ch.oot["as_of"].to_numpy()
    early, late = np.flatnonzero(dates == dates.min()), np.flatnonzero(dates == dates.max())
    frame = ch.oot.iloc[late].reset_index(drop=True)
    rows = []
    for method in ("sigmoid", "isotonic"):
        p = Calibrator.cross_fit(method, margin, y, [(early, late)])[late]
        change = (
            f"old way: {CALIBRATION_NAMES[method]} fitted on the earliest origin "
            f"({pd.Timestamp(dates.min()).date()}), applied to the latest only"
        )
        rows.append(
            measured(
                "3 calibration",
                change,
                f"{ch.family}, map from one earlier origin",
                frame,
                p,
                ch.p[late],
                "dropped: old procedure",
            )
        )
    return rows


# -- 4. final fit window ----------------------------------------------------------------
def window_rows(ch: Chosen, progress: Progress) -> list[Row]:
    """Trees on the old split's training window against every labelled snapshot."""
    from ka_ml.modeling.split import Origin

    s, name = ch.setup, "4 final fit"
    dates = [pd.Timestamp(d) for d in s.folds.split.final_dates]
    old = [Origin(o.date, old_train_dates(dates, o.date, s.purge)) for o in s.folds.split.origins]
    old = [o for o in old if o.train_dates and _two_classes(s.folds, o)]
    counts = ", ".join(
        f"{o.date.strftime('%m-%d')}: {len(o.train_dates)}" for o in s.folds.split.origins
    )
    ref = Row(
        name,
        f"every labelled snapshot whose window closed by the origin ({counts} snapshots)",
        "trees, sigmoid(margin)",
        score(ch.oot, _sigmoid(ch.oot["margin_lightgbm"])),
        None,
        "kept: every labelled snapshot",
    )
    if not old:
        change = "old split's window: no snapshot left at any origin (2 x horizon + calibration)"
        return [ref, Row(name, change, "trees", None, None, "dropped: old procedure")]
    progress(f"trees on the old training window at {len(old)} origin(s) ...")
    m = origin_margins(
        folds_at(s.folds.labelled, old, s.purge), s.feats, ch.params, s.cfg, "lightgbm"
    )
    used = ", ".join(f"{o.date.strftime('%m-%d')}: {len(o.train_dates)}" for o in old)
    p_ref = _sigmoid(aligned(m, ch.oot, "margin_lightgbm"))
    change = f"old split's window: only snapshots before its calibration snapshots ({used})"
    return [
        ref,
        measured(
            name,
            change,
            "trees, sigmoid(margin)",
            m,
            _sigmoid(m["margin_lightgbm"]),
            p_ref,
            "dropped: old procedure",
        ),
    ]


def _two_classes(folds: Folds, origin: Origin) -> bool:
    y = folds.labelled.loc[folds.labelled["as_of"].isin(origin.train_dates), "churn"]
    return y.nunique() == 2


# -- 5. snapshot cadence ----------------------------------------------------------------
def cadence_sets(s: Setup, progress: Progress) -> dict[int, pd.DataFrame]:
    """The labelled snapshots at every cadence (the history's own one reused)."""
    from ka_ml.features.snapshots import build_training_set

    out: dict[int, pd.DataFrame] = {}
    for c in sorted({*CADENCES, s.cadence}):
        if c == s.cadence:
            out[c] = s.folds.labelled
            continue
        progress(f"snapshots every {c} days ...")
        features = s.cfg.features.model_copy(update={"snapshot_every_days": c})
        ts = build_training_set(
            s.history, s.cfg.model_copy(update={"features": features}), s.cutoff
        )
        out[c] = ts[ts["churn"].notna()].reset_index(drop=True)
    return out


def _dates(df: pd.DataFrame) -> list[pd.Timestamp]:
    return sorted(pd.Timestamp(d) for d in df["as_of"].unique())


def cadence_rows(ch: Chosen, progress: Progress) -> list[Row]:
    """The chosen family refitted at each cadence, judged on the origin dates all share."""
    from ka_ml.modeling.split import Origin

    s, name, col = ch.setup, "5 cadence", f"margin_{ch.family}"
    sets = cadence_sets(s, progress)
    labelled = {c: _dates(df) for c, df in sets.items()}
    dates = shared_origin_dates(labelled, s.purge, s.cfg.tuning.backtest_origins)
    if not dates:
        change = "no origin date shared by every cadence (with training snapshots)"
        return [Row(name, change, "", None, None, f"kept: {s.cadence} days")]
    margins = {}
    for c, df in sets.items():
        progress(f"{ch.family} at a {c}-day cadence on {len(dates)} shared origin(s) ...")
        origins = [Origin(t, purged_train(labelled[c], t, s.purge)) for t in dates]
        folds = folds_at(df, origins, s.purge)
        margins[c] = origin_margins(folds, s.feats, ch.params, s.cfg, ch.family)
    frame = margins[s.cadence]
    p_ref = _sigmoid(frame[col])
    rows = []
    for c, m in margins.items():
        p = _sigmoid(aligned(frame, m, col))
        change = f"every {c} days ({len(labelled[c])} labelled snapshots)"
        if c == s.cadence:
            change += ", the history's cadence"
            rows.append(Row(name, change, ch.family, score(frame, p), None, f"kept: {c} days"))
            continue
        decision = verdict(frame, p, p_ref, f"{s.cadence} days", f"{c} days")
        rows.append(measured(name, change, ch.family, frame, p, p_ref, decision))
    return rows


# -- 6. feature sets --------------------------------------------------------------------
def feature_rows(ch: Chosen, progress: Progress) -> list[Row]:
    """The chosen family refitted without whole-history order features, without tenure."""
    s, name, col = ch.setup, "6 features", f"margin_{ch.family}"
    p_ref = _sigmoid(ch.oot[col])
    all_feats = f"all {len(s.feats)} features"
    rows = [Row(name, all_feats, ch.family, score(ch.oot, p_ref), None, "kept: all features")]
    for label, drop in (
        ("without the whole-history order features", ORDER_HISTORY),
        ("without tenure-like features", TENURE_LIKE),
    ):
        gone = [f for f in s.feats if f in drop]
        progress(f"{ch.family} {label} ...")
        feats = [f for f in s.feats if f not in drop]
        m = origin_margins(s.folds, feats, ch.params, s.cfg, ch.family)
        p = _sigmoid(aligned(ch.oot, m, col))
        decision = verdict(ch.oot, p, p_ref, "all features", "without them")
        change = f"{label} ({', '.join(gone)})"
        rows.append(measured(name, change, ch.family, ch.oot, p, p_ref, decision))
    progress(f"{ch.family} with BG/NBD features ...")
    labelled = with_bgnbd_features(s.folds.labelled, s.cfg.labels.horizon_days)
    folds = folds_at(labelled, s.folds.split.origins, s.purge)
    m = origin_margins(folds, [*s.feats, *BGNBD_FEATURES], ch.params, s.cfg, ch.family)
    p = _sigmoid(aligned(ch.oot, m, col))
    decision = verdict(ch.oot, p, p_ref, "all features", "with BG/NBD features")
    change = f"with BG/NBD features ({', '.join(BGNBD_FEATURES)}; fitted per snapshot date)"
    rows.append(measured(name, change, ch.family, ch.oot, p, p_ref, decision))
    return rows


def with_bgnbd_features(ts: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """``ts`` with :data:`BGNBD_FEATURES`: per snapshot date, BG/NBD fitted on that date's
    rows (x = ``repeat_orders``, t_x = ``active_span_days``, T = ``tenure_days``, in weeks) and
    its P(alive), expected orders and P(no order) within the horizon; NaN for rows without
    an order on record, and for every row of a date with fewer than 10 repeat buyers."""
    from ka_ml.modeling.bgnbd import BGNBD

    out = {c: np.full(len(ts), np.nan) for c in BGNBD_FEATURES}
    t = horizon_days / 7.0
    for idx in ts.groupby("as_of").indices.values():
        rows = ts.iloc[idx]
        x = rows["repeat_orders"].to_numpy(float)
        t_x = rows["active_span_days"].to_numpy(float) / 7.0
        T = rows["tenure_days"].to_numpy(float) / 7.0
        ok = np.isfinite(x) & np.isfinite(t_x) & np.isfinite(T) & (T > 0) & (t_x <= T)
        if int((x[ok] > 0).sum()) < 10:
            continue
        x, t_x, T, at = x[ok], t_x[ok], T[ok], idx[ok]
        bg = BGNBD().fit(x, t_x, T)
        out["bgnbd_p_alive"][at] = bg.prob_alive(x, t_x, T)
        out["bgnbd_expected_orders"][at] = bg.expected_purchases(t, x, t_x, T)
        out["bgnbd_p_no_order"][at] = bg.prob_no_purchase(t, x, t_x, T)
    return ts.assign(**out)


# -- 7. shape constraints ---------------------------------------------------------------
def monotone(feats: Sequence[str], rises: Sequence[str], falls: Sequence[str]) -> list[int]:
    """LightGBM's ``monotone_constraints`` for ``feats`` in order: +1 where the risk may only
    rise with the feature, -1 where it may only fall, 0 elsewhere."""
    return [1 if f in rises else -1 if f in falls else 0 for f in feats]


def constraint_rows(ch: Chosen, progress: Progress) -> list[Row]:
    """The chosen family refitted with monotone trees (recency and order counts; then spend)."""
    s, name, col = ch.setup, "7 constraints", f"margin_{ch.family}"
    p_ref = _sigmoid(ch.oot[col])
    rows = [
        Row(
            name,
            "unconstrained trees",
            ch.family,
            score(ch.oot, p_ref),
            None,
            "kept: unconstrained",
        )
    ]
    for label, falls in (
        ("recency and order counts", RISK_FALLS_ORDERS),
        ("recency, order counts and spend", RISK_FALLS_ORDERS + RISK_FALLS_SPEND),
    ):
        progress(f"{ch.family} with monotone trees ({label}) ...")
        cons = monotone(s.feats, RISK_RISES, falls)
        params = {**ch.params, "monotone_constraints": cons}
        m = origin_margins(s.folds, s.feats, params, s.cfg, ch.family)
        p = _sigmoid(aligned(ch.oot, m, col))
        decision = verdict(ch.oot, p, p_ref, "unconstrained trees", "monotone trees")
        n = sum(c != 0 for c in cons)
        change = f"monotone trees: {label} ({n} features constrained)"
        rows.append(measured(name, change, ch.family, ch.oot, p, p_ref, decision))
    return rows


# -- one cutoff -------------------------------------------------------------------------
@dataclass
class CutoffRun:
    """The table rows of one cutoff for the configs that share its training set."""

    cutoff: pd.Timestamp
    configs: tuple[str, ...]
    rows: list[Row]
    facts: list[str]
    seconds: float
    last_order: pd.Timestamp  # the latest order the run could read (< cutoff)
    last_label_end: pd.Timestamp  # the end of the latest label window any row used (<= cutoff)


@contextlib.contextmanager
def scratch_store(cfg: Config) -> Iterator[None]:
    """Tuning logs its trials to MLflow: a private throw-away store, never a real one."""
    from ka_ml.modeling import registry

    with private_mlflow(), tempfile.TemporaryDirectory(prefix="ka_ml_ablation_") as tmp:
        registry.connect(cutoff_config(cfg, Path(tmp)))
        yield


def facts(ch: Chosen) -> list[str]:
    s = ch.setup
    sp = s.folds.split
    origins = ", ".join(
        f"{o.date.date()} ({len(o.train_dates)} training snapshots)" for o in sp.origins
    )
    return [
        f"snapshots every {s.cadence} days from rows before {s.cutoff.date()}: "
        f"{s.ts['as_of'].nunique()} dates, {len(sp.final_dates)} labelled "
        f"({min(sp.final_dates).date()}..{max(sp.final_dates).date()}), "
        f"{len(s.feats)} features; purge {s.purge} days",
        f"origins: {origins}; {len(s.folds.test):,} pooled test rows",
        f"chosen: {'default' if ch.params == _defaults() else 'tuned'} parameters, family "
        f"{ch.family}, calibration {CALIBRATION_NAMES[ch.calibrator.method]}",
    ]


def ablate(setup: Setup, n_trials: int, progress: Progress) -> tuple[list[Row], list[str]]:
    """Every block on one cutoff's origins."""
    progress(f"{setup.cutoff.date()}: tuning ({n_trials} trials) on the origins ...")
    ch = choose(setup, n_trials, progress)
    rows = [
        chosen_row(ch),
        *family_rows(ch),
        *params_rows(ch, progress),
        *calibration_rows(ch),
        *window_rows(ch, progress),
        *cadence_rows(ch, progress),
        *feature_rows(ch, progress),
        *constraint_rows(ch, progress),
    ]
    return rows, facts(ch)


def group_setups(
    names: Sequence[str], setups: Sequence[Setup]
) -> list[tuple[tuple[str, ...], Setup]]:
    """Configs whose procedure would be identical at this cutoff share one run."""
    groups: list[tuple[tuple[str, ...], Setup]] = []
    for name, s in zip(names, setups, strict=True):
        for i, (members, first) in enumerate(groups):
            if same_procedure(first, s):
                groups[i] = ((*members, name), first)
                break
        else:
            groups.append(((name,), s))
    return groups


def run_cutoff(
    histories: Sequence[History],
    names: Sequence[str],
    cfgs: Sequence[Config],
    cutoff: pd.Timestamp,
    n_trials: int,
    progress: Progress,
) -> list[CutoffRun]:
    setups = [prepare(h, c, cutoff) for h, c in zip(histories, cfgs, strict=True)]
    runs = []
    for members, s in group_setups(names, setups):
        t0 = time.perf_counter()
        with scratch_store(s.cfg):
            rows, notes = ablate(s, n_trials, progress)
        last_label = max(r.score.latest_origin for r in rows if r.score is not None)
        runs.append(
            CutoffRun(
                s.cutoff,
                members,
                rows,
                notes,
                time.perf_counter() - t0,
                pd.Timestamp(s.history.orders["order_date"].max()),
                last_label + pd.Timedelta(days=s.cfg.labels.horizon_days),
            )
        )
    return runs


def run_ablation(
    raw: pd.DataFrame,
    names: Sequence[str],
    cfgs: Sequence[Config],
    cutoffs: Sequence[pd.Timestamp] = CUTOFFS,
    *,
    n_trials: int = N_TRIALS,
    progress: Progress = lambda s: None,
) -> list[CutoffRun]:
    """Every cutoff, every config (configs with identical procedures run once)."""
    with tempfile.TemporaryDirectory(prefix="ka_ml_ablation_data_") as tmp:
        histories = [load_history(raw, Path(tmp) / f"data{i}", cfg) for i, cfg in enumerate(cfgs)]
        runs = []
        for cutoff in cutoffs:
            runs += run_cutoff(histories, names, cfgs, pd.Timestamp(cutoff), n_trials, progress)
    return runs


# -- the results file -------------------------------------------------------------------
def _per_origin(s: Score) -> str:
    return "; ".join(f"{d.strftime('%m-%d')} {_f(v)}" for d, v in s.per_origin)


def _signed(x: float) -> str:
    return "—" if not np.isfinite(x) else f"{round(x, 4) + 0.0:+.4f}"  # no "-0.0000"


def _cells(run: CutoffRun, r: Row) -> list[str]:
    s, d = r.score, r.delta
    configs = ", ".join(f"`{Path(c).name}`" for c in run.configs)
    head = [str(run.cutoff.date()), configs, r.ablation, r.change, r.scored_with]
    if s is None:
        return [*head, "—", "—", "—", "—", "—", "—", r.decision]
    dd = ["ref", "ref"] if d is None else [_signed(d[0]), _signed(d[1])]
    return [*head, f"{s.rows:,}", _f(s.roc_auc, 4), _f(s.brier, 4), _per_origin(s), *dd, r.decision]


HEADER = [
    "cutoff",
    "config",
    "ablation",
    "what changed",
    "scored with",
    "rows",
    "pooled ROC AUC",
    "pooled Brier",
    "ROC AUC per origin",
    "Δ AUC",
    "Δ Brier",
    "decision",
]

READING = [
    "## How to read it",
    "",
    "- Every figure comes from the rolling origins inside the history before the cutoff; the "
    "90 days after the cutoff are never read (`ka_ml/bench/results/cdnow.md` judges those).",
    "- Δ = this row minus the block's `ref` row (the chosen procedure measured the same way) "
    "on the same rows; for Brier, negative is better. Pooled figures of rows measured on "
    "fewer origins (old window, cadence) are over those origins only.",
    "- Probabilities are sigmoid(margin) except in rows 0 and 3 (calibrated, cross-fitted "
    "across origins) and for the baselines (their own probabilities).",
    "- A variant is a *candidate* when it gains at least the tuning threshold of ROC AUC "
    "(0.002) without a worse Brier score; the decision to change the product is taken "
    "across both cutoffs, never on one.",
    "- The tuned row's mean origin ROC AUC is the best of several trials on the very origins "
    "it is reported on: optimistic by construction.",
]


def _identical(runs: Sequence[CutoffRun]) -> list[str]:
    shared = [r for r in runs if len(r.configs) > 1]
    return [
        f"- {r.cutoff.date()}: {' and '.join(f'`{c}`' for c in r.configs)} build identical "
        "training sets (same snapshots, labels, origins and seed): the ablation ran once."
        for r in shared
    ]


def header(runs: Sequence[CutoffRun], minutes: float, data: str, n_trials: int) -> list[str]:
    from ka_ml.versions import package_versions

    versions = ", ".join(f"{k} {v}" for k, v in package_versions().items())
    configs = list(dict.fromkeys(c for r in runs for c in r.configs))
    return [
        "# Ablation on CDNOW, pre-cutoff data only (`make ablation`)",
        "",
        f"- run: {pd.Timestamp.now().strftime('%Y-%m-%d %H:%M')}, wall time {minutes:.1f} min; "
        f"machine: {_machine()}",
        f"- versions: {versions}",
        f"- data: {data}",
        f"- configs: {', '.join(f'`{c}`' for c in configs)}; tuning budget here: {n_trials} "
        "Optuna trials (trial 0 = the defaults) for every config, whatever its own.",
        *_identical(runs),
        "- protocol: per cutoff C, `train --as-of C`'s own steps on rows before C: "
        "snapshots, rolling origins (each trained only on snapshots whose label window "
        "closed by it), tuning, backtest of every family and the baselines, choice of family "
        "and calibration; then one change at a time against that choice (see the module "
        "docstring of `ka_ml/bench/ablation.py`).",
    ]


def to_markdown(
    runs: Sequence[CutoffRun], minutes: float, data: str, n_trials: int = N_TRIALS
) -> str:
    setup = ["## Setup per cutoff", ""]
    for run in runs:
        configs = ", ".join(f"`{Path(c).name}`" for c in run.configs)
        setup.append(f"- {run.cutoff.date()} ({configs}; {run.seconds / 60:.1f} min)")
        setup += [f"  - {f}" for f in run.facts]
        setup.append(
            f"  - latest order read: {run.last_order.date()}; latest label window used ends "
            f"{run.last_label_end.date()} (the cutoff: {run.cutoff.date()})"
        )
    rows = [_cells(run, r) for run in runs for r in run.rows]
    sections = [
        header(runs, minutes, data, n_trials),
        setup,
        ["## Results", "", *_table(HEADER, rows, left=5)],
        READING,
    ]
    return "\n\n".join("\n".join(s) for s in sections) + "\n"


def main(argv: Sequence[str] | None = None) -> Path:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm is imported

    parser = bench_parser(__doc__, RESULTS_FILE)
    parser.add_argument("--trials", type=int, default=N_TRIALS, help="Optuna trials per cutoff")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    paths, cfgs, raw, progress = bench_inputs(args)
    names = [str(p) for p in paths]
    runs = run_ablation(raw, names, cfgs, n_trials=args.trials, progress=progress)
    data = (
        "`ka_ml/bench/data/cdnow/CDNOW_master.txt.gz`: "
        f"{len(raw):,} rows, {raw['customer_id'].nunique():,} customers"
        + (f" (a random sample of {args.sample:,})" if args.sample else "")
    )
    text = to_markdown(runs, (time.perf_counter() - t0) / 60, data, args.trials)
    path = write_results(text, args.out)
    print(text)
    progress(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
