"""How the churn model is chosen and fitted: every step judged on the rolling origins.

Each origin gets the whole procedure fitted on its own past (trees, the logistic part and the
baselines). Parameters (Optuna, defaults first), the model family (LightGBM, LightGBM +
logistic blend, logistic) and the calibration (none, Platt, isotonic; cross-fitted) are chosen
on those origins; the champion candidate is then refitted on every labelled snapshot.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GroupKFold

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.features.catalog import plural
from ka_ml.modeling import metrics as M
from ka_ml.modeling.baselines import BGNBDChurn, RecencyBaseline, RFMLogistic
from ka_ml.modeling.churn import Calibrator, ChurnModel, ProbeData
from ka_ml.modeling.lightgbm_params import default_params
from ka_ml.modeling.tuning import TuningResult, budget_note, params_key, tune
from ka_ml.training.folds import Folds, Progress, account_groups, capped

log = logging.getLogger(__name__)

# -- churn ------------------------------------------------------------------------------
FAMILIES = ("lightgbm", "blend", "logistic")


# tuned parameters replace the defaults only when they gain this much validation ROC AUC
TUNING_MIN_GAIN = 0.002


# (origin index, parameters) -> trees chosen by early stopping on that origin's rows
Rounds = dict[tuple[int, tuple[tuple[str, Any], ...]], int]


def fit_churn_model(
    rows: pd.DataFrame,
    feats: list[str],
    params: dict[str, Any],
    cfg: Config,
    rounds: int | None = None,
) -> ChurnModel:
    """The churn procedure on ``rows`` (at most ``tuning.max_churn_rows`` of them, see
    :func:`capped`): trees (early stopping on held-out accounts, then a refit on every row)
    and the logistic part, both on the same rows. ``rounds``: the trees early stopping
    already chose on these rows with these parameters (a tuning trial fitted the same
    probe), so only the refit is fitted; the model is the same."""
    rows = capped(rows, cfg.tuning.max_churn_rows, cfg.seed)
    y = rows["churn"].to_numpy()
    model = ChurnModel(params=params, random_state=cfg.seed)
    if rounds is None:
        model.fit(rows[feats], y, account_groups(rows))
    else:
        model.fit(rows[feats], y, num_boost_round=max(rounds, 10))
    return model.fit_linear(rows[feats], y)


def tune_churn(
    folds: Folds,
    feats: list[str],
    cfg: Config,
    on_trial: Any = None,
    rounds: Rounds | None = None,
) -> TuningResult:
    """Optuna over the rolling origins (trees only): mean out-of-time ROC AUC.

    The defaults are trial 0; other parameters replace them only when they gain
    ``TUNING_MIN_GAIN``: a small gain on a few origins is noise, and tuned parameters that
    won on short-gap folds lost on real data before. ``rounds`` (filled when given): the
    trees each trial's early stopping chose per origin, which the backtest reuses.
    """
    origins = folds.split.origins
    # per origin: its training rows binned once for every trial, and its test rows
    shared: dict[int, tuple[ProbeData, pd.DataFrame, np.ndarray]] = {}

    def fit_and_score(params: dict[str, Any], k: int) -> tuple[float, int]:
        if k not in shared:
            tr, te = folds.train_rows(origins[k]), folds.test_rows(origins[k])
            tr = capped(tr, cfg.tuning.max_churn_rows, cfg.seed)
            probe = ChurnModel(params=params, random_state=cfg.seed).probe_data(
                tr[feats], tr["churn"].to_numpy(), account_groups(tr)
            )
            shared[k] = (probe, te[feats], te["churn"].to_numpy())
        probe, X_test, y_test = shared[k]
        m = ChurnModel(params=params, random_state=cfg.seed, refit=False).fit_probe(probe)
        if rounds is not None:
            rounds[(k, params_key(params))] = m.best_iteration_
        return M.roc_auc(y_test, m.tree_margin(X_test)), m.best_iteration_

    res = tune(
        "churn",
        fit_and_score,
        len(origins),
        n_trials=cfg.tuning.n_trials,
        timeout=cfg.tuning.timeout_seconds,
        seed=cfg.seed,
        on_trial=on_trial,
    )
    return keep_defaults_unless_better(res)


def keep_defaults_unless_better(res: TuningResult) -> TuningResult:
    trials = res.trials
    if trials.empty or "value" not in trials or not np.isfinite(res.best_score):
        return res
    first = trials[trials["number"] == 0]["value"]
    default_score = float(first.iloc[0]) if len(first) else float("nan")
    if np.isfinite(default_score) and res.best_score < default_score + TUNING_MIN_GAIN:
        return TuningResult(default_params(), default_score, res.best_rounds, trials)
    return res


def defaults_note(res: TuningResult) -> str:
    """'; the default parameters kept (best other trial 0.8826 vs their 0.8806: a gain
    under 0.002 is noise)', or '' when tuned parameters won."""
    if res.best_params != default_params():
        return ""
    t = res.trials
    if t.empty or "value" not in t:
        return "; the default parameters kept"
    others = t.loc[(t["number"] != 0) & (t["state"] == "COMPLETE"), "value"]
    if others.empty or not np.isfinite(res.best_score):
        return "; the default parameters kept"
    if others.max() <= res.best_score:
        return f"; the default parameters kept (no other trial beat their {res.best_score:.4f})"
    return (
        f"; the default parameters kept (best other trial {others.max():.4f} vs their "
        f"{res.best_score:.4f}: a gain under {TUNING_MIN_GAIN} is noise)"
    )


def backtest_churn(
    history: History,
    folds: Folds,
    feats: list[str],
    params: dict[str, Any],
    cfg: Config,
    rounds: Rounds | None = None,
) -> pd.DataFrame:
    """Every origin: the procedure fitted on its past, margins of each family and the
    baselines' probabilities on its test rows (one frame, rows in ``folds.test`` order).
    ``rounds``: what tuning's early stopping chose (:func:`tune_churn`); an origin whose
    probe with ``params`` was fitted there is only refitted."""
    out = []
    for k, o in enumerate(folds.split.origins):
        tr, te = folds.train_rows(o), folds.test_rows(o)
        known = (rounds or {}).get((k, params_key(params)))
        m = fit_churn_model(tr, feats, params, cfg, known)
        frame = te[["account_id", "as_of", "churn"]].reset_index(drop=True)
        for family in FAMILIES:
            frame[f"margin_{family}"] = m.set_family(family).margin(te[feats])
        for name, p in origin_baselines(history, tr, te, o.date, cfg).items():
            frame[name] = p
        out.append(frame)
    pooled = pd.concat(out, ignore_index=True)
    order = folds.test[["account_id", "as_of"]]
    return order.merge(pooled, on=["account_id", "as_of"], how="left", validate="1:1")


def bgnbd_within_column(k: int) -> str:
    """The backtest frame's column of BG/NBD's P(order within ``k`` days)."""
    return f"bgnbd_p_purchase_{k}d"


def fit_baseline_bgnbd(
    bg: BGNBDChurn, orders: pd.DataFrame, date: pd.Timestamp, summary: pd.DataFrame
) -> None:
    """Fit the BG/NBD baseline; a fit that stops before converging is said once, in words,
    in the log (a user's train console showed it as a Python warning with a source path and
    advice about settings they cannot reach): the baseline is judged as fitted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        bg.fit(orders, date, summary)
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        log.warning(
            "the BG/NBD baseline's fit at the %s origin stopped before converging (%s "
            "customers); it is judged as fitted",
            pd.Timestamp(date).date(),
            f"{len(summary):,}",
        )


def origin_baselines(
    history: History, tr: pd.DataFrame, te: pd.DataFrame, date: pd.Timestamp, cfg: Config
) -> dict[str, np.ndarray]:
    """Recency and RFM logistic regression fitted on the origin's training rows, BG/NBD on
    the orders before it: P(churn) on the origin's test rows; and BG/NBD's P(order within
    k days) for each purchase window (:func:`bgnbd_within_column`: the timing baseline, from
    the same fit, read by the evaluation)."""

    y = tr["churn"].to_numpy()
    ids = te["account_id"].to_numpy()
    bg = BGNBDChurn()
    summary = bg.summary(history.orders, date)  # once, for the fit and the predictions
    fit_baseline_bgnbd(bg, history.orders, date, summary)
    windows = cfg.labels.purchase_windows
    silent = bg.predict_no_order_table(
        history.orders, date, [cfg.labels.horizon_days, *windows], ids, summary=summary
    )
    return {
        "recency only": RecencyBaseline().fit(tr, y).predict_proba(te)[:, 1],
        "RFM logistic regression": RFMLogistic().fit(tr, y).predict_proba(te)[:, 1],
        "BG/NBD": silent[:, 0],
        **{bgnbd_within_column(k): 1.0 - silent[:, j + 1] for j, k in enumerate(windows)},
    }


# a family replaces the blend only when it ranks this much better on the origins: closer
# than that is noise (CDNOW origins: the three families within 0.001-0.004 of each other)
FAMILY_MIN_GAIN = 0.001


def choose_family(oot: pd.DataFrame) -> tuple[str, dict[str, float]]:
    """The family with the best pooled out-of-time ROC AUC; within ``FAMILY_MIN_GAIN`` of
    the blend, the blend (an average of two models rarely loses to either)."""
    y = oot["churn"].to_numpy(float)
    aucs = {f: M.roc_auc(y, oot[f"margin_{f}"].to_numpy()) for f in FAMILIES}
    best = max(FAMILIES, key=aucs.__getitem__)
    return (best if aucs[best] > aucs["blend"] + FAMILY_MIN_GAIN else "blend"), aucs


def final_churn(
    folds: Folds,
    feats: list[str],
    params: dict[str, Any],
    family: str,
    oot: pd.DataFrame,
    cfg: Config,
) -> tuple[ChurnModel, np.ndarray]:
    """The champion candidate: the procedure on every labelled snapshot, the chosen family,
    and a calibration only where two checks agree. Returns the model and the out-of-time
    probabilities that are reported (the chosen map judged forward across origins).

    1. Forward across origins: a map fitted on older origin models' margins is judged on a
       later model's. This sees drift, but the origin models had less history than the
       final model (on CDNOW 1997-09-30 they over-predicted churn by 0.05-0.06, the final
       model by 0.015), so a map that corrects them can mis-correct it.
    2. In the training period, on accounts held out from procedures like the final one
       (three account folds over every labelled snapshot): the map must also fit the
       final model's kind of margins.
    """
    model = fit_churn_model(folds.labelled, feats, params, cfg).set_family(family)
    cal = choose_calibration(folds, feats, params, family, oot, cfg)
    margin = oot[f"margin_{family}"].to_numpy()
    p_oot = cal.crossfit_ if cal.crossfit_ is not None else cal.transform(margin)
    cal.crossfit_ = None
    return model.attach(calibrator=cal), np.asarray(p_oot, float)


def choose_calibration(
    folds: Folds,
    feats: list[str],
    params: dict[str, Any],
    family: str,
    oot: pd.DataFrame,
    cfg: Config,
) -> Calibrator:
    """The two checks of :func:`final_churn`: forward across origins, then in period."""
    y = oot["churn"].to_numpy(float)
    origin = oot["as_of"].astype("int64").to_numpy()
    cal = Calibrator.choose(oot[f"margin_{family}"].to_numpy(), y, cfg.seed, origin)
    if cal.method == "none":
        return cal
    held_out, y_held = held_out_margins(folds.labelled, feats, params, family, cfg)
    in_period = Calibrator.choose(held_out, y_held, cfg.seed)
    if in_period.method == cal.method:
        return cal
    held = {f"in_period_{k}": v for k, v in in_period.cv_brier_.items() if isinstance(v, float)}
    scores = {**cal.cv_brier_, **held, "in_period_method": in_period.method}
    return Calibrator(method="none", model_="none", cv_brier_=scores)  # type: ignore[arg-type]


def held_out_margins(
    rows: pd.DataFrame, feats: list[str], params: dict[str, Any], family: str, cfg: Config
) -> tuple[np.ndarray, np.ndarray]:
    """Margins of the procedure on accounts it did not see (3 account folds, all dates)."""

    margin = np.empty(len(rows))
    for tr, va in GroupKFold(n_splits=3).split(rows, groups=account_groups(rows)):
        m = fit_churn_model(rows.iloc[tr], feats, params, cfg).set_family(family)
        margin[va] = m.margin(rows.iloc[va][feats])
    return margin, rows["churn"].to_numpy(float)


def train_churn(
    history: History,
    folds: Folds,
    feats: list[str],
    cfg: Config,
    progress: Progress,
    on_trial: Callable[[str], Any],
) -> tuple[ChurnModel, TuningResult, tuple[np.ndarray, pd.DataFrame, dict[str, float]]]:
    """Tune, backtest every family on the origins, choose, calibrate, refit on everything."""
    n = len(folds.split.origins)
    progress(f"tuning the churn model on {n} rolling {plural(n, 'origin')} ...")
    rounds: Rounds = {}
    tuning = tune_churn(folds, feats, cfg, on_trial("churn"), rounds)
    progress(
        "churn tuning: "
        + budget_note(tuning, cfg.tuning.n_trials, cfg.tuning.timeout_seconds)
        + defaults_note(tuning)
    )
    progress("backtesting the churn procedure and the baselines on every origin ...")
    oot = backtest_churn(history, folds, feats, tuning.best_params, cfg, rounds)
    family, scores = choose_family(oot)
    progress(
        "model family on the origins (pooled ROC AUC): "
        + ", ".join(f"{f} {v:.4f}" for f, v in scores.items())
        + f" -> {family}"
    )
    progress(f"refitting on all {len(folds.split.final_dates)} labelled snapshots ...")
    churn, p = final_churn(folds, feats, tuning.best_params, family, oot, cfg)
    return churn, tuning, (p, oot, scores)
