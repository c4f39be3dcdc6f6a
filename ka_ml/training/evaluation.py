"""What a training run reports: the procedure's pooled out-of-time performance.

Churn and timing metrics on the origins beside the baselines (recency, RFM logistic
regression, BG/NBD, the contract calendar), per origin, per slice, the lights the scorer would
have shown, the AUC expected on the population being scored, and the model card.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ka_ml.config import Config
from ka_ml.features.labels import ContractEnds
from ka_ml.modeling import metrics as M
from ka_ml.modeling.churn import ChurnModel, sigmoid
from ka_ml.modeling.evaluate import (
    compare,
    completed_interval_coverage,
    cycle_band,
    cycle_rule_days,
    date_errors,
    follow_up_days,
    light_scores,
    short_window_notes,
    tenure_band,
    timing_scores,
    window_deltas,
)
from ka_ml.modeling.timing import (
    interval_edges,
)
from ka_ml.scoring.health import assign_lights, rhythm_quiet
from ka_ml.scoring.lifecycle import (
    buying_cycle_days,
    float_column,
    lifecycle_states,
    pause_season,
    peer_season,
    quiet_as_before,
    silent_under_contract,
    typical_gap,
)
from ka_ml.training.churn import bgnbd_within_column
from ka_ml.training.folds import Folds, account_groups


# -- evaluation -------------------------------------------------------------------------
@dataclass
class Evaluation:
    """The out-of-time performance of the training procedure, pooled over the origins."""

    churn: dict[str, float]
    churn_uncalibrated: dict[str, float]
    lights: dict[str, float]
    timing: dict[str, float]
    comparison: pd.DataFrame
    timing_comparison: pd.DataFrame
    slices: pd.DataFrame
    test_predictions: pd.DataFrame = field(repr=False)
    per_origin: pd.DataFrame = field(default_factory=pd.DataFrame)
    family: str = "lightgbm"
    family_scores: dict[str, float] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    expected: dict[str, float] = field(default_factory=dict)
    calendar_rule: dict[str, float] = field(default_factory=dict)  # empty: no contracts
    # the origins held accounts out, in time (a history shorter than the purge), not time
    held_out_accounts: bool = False
    # what a data scientist should weigh before trusting the pooled figures, by kind
    # ("few_accounts", "population"): said by train, tagged on the run
    cautions: dict[str, str] = field(default_factory=dict)
    # label_returns(): how often accounts labelled churn for no order ordered again
    label_returns: dict[str, float] = field(default_factory=dict)
    # contract_lapses(): how many contracts the labels saw lapse (empty: none judged by one)
    contract_labels: dict[str, float] = field(default_factory=dict)
    # the longest silence (days since the last order) among the labelled snapshots: beyond
    # it the model's probability is an extrapolation (NaN: unknown)
    longest_silence: float = float("nan")


BASELINES = ("recency only", "RFM logistic regression", "BG/NBD")


CALENDAR_FEATURE = "contract_days_to_end"


def calendar_rule_scores(test: pd.DataFrame) -> np.ndarray | None:
    """The contract calendar as the only churn score: minus the days to the end of the
    account's latest contract, so contracts ending soonest, and contracts already past
    their end, rank as the riskiest. An account without any contract scores as if its
    contract ended today (0 days): nothing binds it, so the calendar calls it as risky as
    a contract expiring now (of the simple choices, the one the calendar ranks best with
    on the demo). ``None`` when the data has no contracts table (no such feature)."""
    if CALENDAR_FEATURE not in test:
        return None
    days = test[CALENDAR_FEATURE].to_numpy(float)
    return -np.where(np.isnan(days), 0.0, days)


def calendar_rule_metrics(test: pd.DataFrame) -> dict[str, float]:
    """ROC AUC of :func:`calendar_rule_scores` on the pooled out-of-time rows; empty
    when there is no contract calendar, or when no row's churn is its contract's lapse
    (``labels.churn_definition: no_order``: a user read the calendar rule's line as a
    baseline of a label that has none)."""
    score = calendar_rule_scores(test)
    by_contract = (
        test["churn_definition"].astype(object).eq("contract").any()
        if "churn_definition" in test
        else True
    )
    if score is None or not by_contract:
        return {}
    return {"roc_auc": M.roc_auc(test["churn"].to_numpy(float), score)}


def per_origin_table(oot: pd.DataFrame, p: np.ndarray) -> pd.DataFrame:
    """ROC AUC, Brier and calibration in the large per origin, model beside baselines."""
    rows = []
    for date, idx in oot.groupby("as_of").indices.items():
        y = oot["churn"].to_numpy(float)[idx]
        for name, q in (
            ("ka_ml churn model", p[idx]),
            *((b, oot[b].to_numpy()[idx]) for b in BASELINES),
        ):
            ok = np.isfinite(q)
            rows.append(
                {
                    "origin": str(pd.Timestamp(str(date)).date()),
                    "predictor": name,
                    "rows": int(ok.sum()),
                    "roc_auc": M.roc_auc(y[ok], q[ok]),
                    "brier": M.brier(y[ok], q[ok]),
                    "mean_p": float(np.mean(q[ok])),
                    "churn_rate": float(np.mean(y[ok])),
                    "expected_roc_auc": M.expected_roc_auc(q[ok])
                    if name == "ka_ml churn model"
                    else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def expected_at(p_now: np.ndarray, per_origin: pd.DataFrame) -> dict[str, float]:
    """What the scores should achieve on the population being scored, from the model's own
    probabilities (assuming its calibration holds there), with the error that estimate made
    on the origins, where the outcomes are known.

    The origins lie at least a horizon before the as-of; when the population moves (a
    cohort ages, a portfolio grows) the AUC on them is a biased estimate of the AUC at
    the as-of, in either direction. The expected AUC sees the as-of population.
    """
    model = per_origin[per_origin["predictor"] == "ka_ml churn model"]
    err = (model["expected_roc_auc"] - model["roc_auc"]).to_numpy(float)
    p = np.asarray(p_now, dtype=float)
    return {
        "roc_auc": M.expected_roc_auc(p),
        "brier": float(np.mean(p * (1 - p))) if len(p) else float("nan"),
        "mean_p": float(np.mean(p)) if len(p) else float("nan"),
        "accounts": float(len(p)),
        "origin_error": float(np.mean(err)) if len(err) else float("nan"),
        "origin_abs_error": float(np.max(np.abs(err))) if len(err) else float("nan"),
    }


def sample_figures(y: np.ndarray, p: np.ndarray, groups: np.ndarray, seed: int) -> dict[str, float]:
    """How much the pooled ROC AUC rests on: its 95% interval with whole accounts
    resampled (an account's snapshots at several origins are one piece of evidence), the
    distinct accounts, and the rows of each outcome."""
    draws = M.bootstrap_resamples(len(y), 200, seed, groups)
    lo, hi = M.bootstrap_interval(y, p, M.roc_auc, draws)
    return {
        "roc_auc_lo": lo,
        "roc_auc_hi": hi,
        "accounts": float(len(pd.unique(groups))),
        "churned_rows": float(np.sum(y == 1)),
        "kept_rows": float(np.sum(y == 0)),
    }


def population_gap(pooled: dict[str, float], expected: dict[str, float]) -> dict[str, float]:
    """Whether the accounts being scored look unlike the test origins: the label-free
    expected ROC AUC on them (:func:`expected_at`) differs from the pooled figure by more
    than that estimate ever erred on the origins and more than the pooled figure's own
    interval. Then the pooled figure (and a promotion resting on it) may not hold for them:
    on a young cohort, accounts silent for most of a year are still scored on the origins
    and easy to rank, but no longer at the as-of."""
    if not expected or not np.isfinite(expected.get("roc_auc", np.nan)):
        return {}
    gap = float(pooled["roc_auc"] - expected["roc_auc"])
    half = (pooled.get("roc_auc_hi", np.nan) - pooled.get("roc_auc_lo", np.nan)) / 2
    allowed = float(np.nanmax([expected.get("origin_abs_error", np.nan), half, 0.0]))
    return {"pooled_minus_expected": gap, "population_differs": float(abs(gap) > allowed)}


def few_caught(lights: dict[str, float], cfg: Config) -> str | None:
    """The caution when the lights on the test origins would have caught fewer churners red
    or yellow than ``ka-ml backtest`` asks of the weekly lists (``monitoring.
    min_red_yellow_recall``; with budget lights at most ``min_recall_of_ceiling`` of what
    the budget allows). A lab distributor's train reported ROC AUC 0.79, a model beating
    every baseline, and on the same origins lights that caught 6% of the churners; it said
    nothing and promoted the model, and the weekly lists found none of the losses."""
    rec = lights.get("red_yellow_recall", float("nan"))
    if not np.isfinite(rec) or lights.get("red_count") == 0:  # red_floor says it already
        return None
    m = cfg.monitoring
    floor = m.min_red_yellow_recall
    ceiling = lights.get("red_yellow_recall_ceiling", float("nan"))
    if cfg.health.mode == "budget" and np.isfinite(ceiling):
        floor = min(floor, m.min_recall_of_ceiling * ceiling)
    if rec >= floor:
        return None
    tp = float(lights.get("red_yellow_churned", 0.0))
    churners = round(tp / rec) if rec > 0 else None
    of = f" ({int(tp)} of {churners})" if churners else ""
    h = cfg.health
    low = (
        f"; yellow needs a churn probability of at least {h.yellow_min_probability:.0%} "
        f"(health.yellow_min_probability) and {lights.get('red_yellow_share', 0.0):.0%} of "
        "the accounts reached it"
        if h.mode == "budget"
        else ""
    )
    return (
        f"on the test origins the lights would have caught {rec:.0%} of the churners red or "
        f"yellow{of}, under the {floor:.2f} `ka-ml backtest` asks of the weekly lists "
        "(monitoring.min_red_yellow_recall): the ROC AUC says how the model orders accounts, "
        f"not that the lists find the churners{low}"
    )


def cautions(
    pooled: dict[str, float],
    expected: dict[str, float],
    lights: dict[str, float],
    cfg: Config,
    returns: dict[str, float] | None = None,
) -> dict[str, str]:
    """The pooled figures' limits in words, by kind: too few accounts to judge
    (``few_accounts``), accounts being scored unlike those on the origins (``population``:
    :func:`population_gap`), a red light the probability floor kept empty on every origin
    (``red_floor``), and a churn label that mostly marks pauses (``pauses``:
    :func:`label_returns`)."""
    out = {}
    returns = returns or {}
    share, limit = returns.get("share", float("nan")), cfg.mlflow.max_label_return_share
    if limit is not None and np.isfinite(share) and share > limit:
        out["pauses"] = (
            f"{share:.0%} of the {int(returns['rows']):,} account-snapshots labelled churn for "
            f"no order within {cfg.labels.horizon_days} days (on snapshots the data follows "
            f"long enough) ordered again within {cfg.mlflow.label_return_days} days after "
            "their window: on this data the label marks pauses more often than losses "
            "(annual, seasonal or project buyers), and the figures here say how well a "
            f"{cfg.labels.horizon_days}-day silence is foreseen, not a loss. If those "
            "customers are not lost, judge churn by contracts "
            "(labels.churn_definition), over a longer horizon (labels.horizon_days), or keep "
            "buyers quiet by their own rhythm out of red (health.rhythm_quiet_min; "
            "health.quiet_spells_min for those that went this long without an order and came "
            "back twice or more; health.seen_before_max_light for those that came back from "
            "such silences before; mlflow.max_label_return_share)"
        )
    h = cfg.health
    top = lights.get("lit_max_probability", float("nan"))
    if h.mode == "budget" and lights.get("red_count") == 0 and np.isfinite(top):
        out["red_floor"] = (
            f"no account on the test origins was red: the riskiest {h.red_share:.0%} would "
            f"be, but red needs a churn probability of at least {h.red_min_probability:.0%} "
            f"(health.red_min_probability) and the highest was {top:.0%}. On data like this "
            "the weekly red list stays empty; lower the floor if the riskiest accounts should "
            "be red whatever their probability"
        )
    if caught := few_caught(lights, cfg):
        out["few_caught"] = caught
    accounts = int(pooled.get("accounts", 0))
    if accounts < cfg.mlflow.few_test_accounts:
        rare = int(min(pooled.get("churned_rows", 0), pooled.get("kept_rows", 0)))
        out["few_accounts"] = (
            f"only {accounts:,} accounts on the test origins ({rare:,} rows of the rarer "
            f"outcome): figures this small are rough; the accounts scored next can do far "
            f"worse or better than the interval shows. Read the ranking beside recency, and "
            f"judge it again with `ka-ml backtest` once the horizon has passed (fewer than "
            f"mlflow.few_test_accounts = {cfg.mlflow.few_test_accounts})"
        )
    if expected.get("population_differs"):
        gap = float(expected["pooled_minus_expected"])
        err = float(expected.get("origin_abs_error", float("nan")))
        out["population"] = (
            f"the {int(expected['accounts']):,} accounts scored now are unlike the test "
            f"origins': on them the model expects ROC AUC {expected['roc_auc']:.3f}, "
            f"{_apart(abs(gap), err)} {'below' if gap > 0 else 'above'} the pooled "
            f"{pooled['roc_auc']:.3f}, more than that estimate erred on the origins "
            f"({_apart(err, abs(gap))}) and than the pooled "
            f"figure's interval: the pooled figures, and the promotion resting on them, may "
            f"{'overstate' if gap > 0 else 'understate'} what the scores achieve"
        )
    return out


def _apart(x: float, other: float) -> str:
    """``x`` with 3 decimals, or 4 where 3 would print it equal to ``other`` ("0.008
    below ..., more than that estimate erred (0.008)" was read as a contradiction)."""
    return f"{x:.4f}" if f"{x:.3f}" == f"{other:.3f}" else f"{x:.3f}"


MIN_RETURN_ROWS = 50  # fewer churn-labelled rows followed that long: no share worth saying


def label_returns(labelled: pd.DataFrame, cfg: Config) -> dict[str, float]:
    """Of the snapshot rows labelled churn by the ``no_order`` rule whose orders the data
    follows for the horizon plus ``mlflow.label_return_days``, the share that ordered again
    within that time (``share``, over ``rows``). A user's annual payers, labelled churn by
    'no order in 90 days' every year, made train report ROC AUC 0.996 and red precision
    1.00 while none of its 45-61 red accounts a week was lost: 56% of its churn-labelled
    rows ordered again within a year. Empty when fewer than ``MIN_RETURN_ROWS`` rows are
    followed that long."""
    need = {"churn", "days_to_next", "next_order_observed", "as_of"}
    if not need <= set(labelled.columns) or labelled.empty:
        return {}
    d = labelled["days_to_next"].to_numpy(float)
    e = labelled["next_order_observed"].to_numpy(bool)
    span = cfg.labels.horizon_days + cfg.mlflow.label_return_days
    by_orders = (
        labelled["churn_definition"].astype(object).to_numpy() == "no_order"
        if "churn_definition" in labelled
        else np.ones(len(labelled), bool)
    )
    rows = (
        (labelled["churn"].to_numpy(float) == 1)
        & by_orders
        & (follow_up_days(labelled["as_of"], d, e) >= span)
    )
    if rows.sum() < MIN_RETURN_ROWS:
        return {}
    back = e[rows] & (d[rows] < span)
    return {
        "share": float(back.mean()),
        "rows": float(rows.sum()),
        "days": float(cfg.mlflow.label_return_days),
        "horizon": float(cfg.labels.horizon_days),
    }


def contract_lapses(labelled: pd.DataFrame) -> dict[str, float]:
    """How much the labelled snapshots say about renewals: the accounts whose running
    contract lapsed within the horizon of a snapshot (``accounts``), among the accounts
    judged by one (``judged``). Empty when no row is judged by a contract. A lab distributor
    with 15 months of history and 2-year tenders had none lapse: its model read "contract
    ends in 13 days" as lowering the risk (every contract that had ended was renewed), and
    each lost tender stayed green."""
    if labelled.empty or "churn_definition" not in labelled:
        return {}
    judged = labelled["churn_definition"].astype(object).to_numpy() == "contract"
    if not judged.any():
        return {}
    ids = labelled["account_id"].astype(str).to_numpy()
    lapsed = judged & (labelled["churn"].to_numpy(float) == 1)
    return {
        "accounts": float(len(set(ids[lapsed]))),
        "judged": float(len(set(ids[judged]))),
    }


def evaluate(
    folds: Folds,
    churn: ChurnModel,
    p: np.ndarray,
    oot: pd.DataFrame,
    toot: pd.DataFrame,
    cfg: Config,
    family_scores: dict[str, float],
    p_now: np.ndarray | None = None,
    contract_ends: ContractEnds | None = None,
) -> Evaluation:
    """The procedure's pooled out-of-time metrics beside the baselines on the same rows.
    ``contract_ends``: how the history's ended contracts relate to their accounts' last
    orders (:func:`ka_ml.features.labels.contract_end_silences`), for the notes."""
    test = folds.test
    y = test["churn"].to_numpy(float)
    windows = cfg.labels.purchase_windows
    d = test["days_to_next"].to_numpy(float)
    e = test["next_order_observed"].to_numpy(bool)
    f = follow_up_days(test["as_of"], d, e)
    base_churn = {b: oot[b].to_numpy(float) for b in BASELINES}
    comparison = compare(y, p, base_churn, account_groups(test), seed=cfg.seed)
    tpred = toot.drop(columns=["account_id", "as_of", "cdf", "learnt_days"], errors="ignore")
    bg_timing = bgnbd_within(oot, cfg)
    common = np.isfinite(bg_timing.to_numpy(float)).all(axis=1)
    trows = [
        {
            "predictor": name,
            **timing_scores(
                pr[common].reset_index(drop=True), d[common], e[common], windows, f[common]
            ),
        }
        for name, pr in (("ka_ml timing model", tpred), ("BG/NBD", bg_timing))
    ]
    trows[1] |= window_deltas(
        tpred[common].reset_index(drop=True),
        bg_timing[common].reset_index(drop=True),
        d[common],
        e[common],
        windows,
        account_groups(test)[common],
        seed=cfg.seed,
        follow_up=f[common],
    )
    preds = (
        test[["account_id", "as_of", "churn"]].assign(churn_probability=p).reset_index(drop=True)
    )
    preds = pd.concat([preds, tpred.reset_index(drop=True)], axis=1)
    cal = churn.calibrator_
    per_origin = per_origin_table(oot, p)
    pooled = M.churn_metrics(y, p) | sample_figures(y, p, account_groups(test), cfg.seed)
    expected = {} if p_now is None else expected_at(p_now, per_origin)
    expected |= population_gap(pooled, expected)
    lifecycle = lifecycle_states(test, cfg, p)["lifecycle"].astype("object").to_numpy()
    lights = origin_lights(test, y, p, cfg, lifecycle)
    lights |= lit_baselines(y, base_churn, lifecycle != "lapsed")
    returns = label_returns(folds.labelled, cfg)
    lapses = contract_lapses(folds.labelled)
    return Evaluation(
        churn=pooled | {"ece_chance": M.chance_calibration_error(p, seed=cfg.seed)},
        churn_uncalibrated=M.churn_metrics(y, sigmoid(oot[f"margin_{churn.family_}"].to_numpy())),
        lights=lights,
        timing=timing_scores(tpred, d, e, windows, f)
        | completed_coverage(toot, d, e, windows)
        | date_errors(tpred["q50"].to_numpy(float), cycle_rule_days(test), d, e, f),
        comparison=comparison,
        timing_comparison=pd.DataFrame(trows),
        slices=_slices(test, y, p, cfg, lifecycle),
        test_predictions=preds,
        per_origin=per_origin,
        family=churn.family_,
        family_scores=family_scores,
        calibration={"method": cal.method if cal else "none", **(cal.cv_brier_ if cal else {})},
        notes=[
            n
            for n in (
                folds.split.note,
                _contract_silence(test, cfg, contract_ends),
                few_lapses(lapses, cfg),
            )
            if n
        ]
        + short_window_notes(test["as_of"], f, windows),
        expected=expected,
        cautions=cautions(pooled, expected, lights, cfg, returns),
        label_returns=returns,
        contract_labels=lapses,
        longest_silence=longest_silence(folds.labelled),
        calendar_rule=calendar_rule_metrics(test),
        held_out_accounts=folds.split.grouped,
    )


def longest_silence(labelled: pd.DataFrame) -> float:
    """The most days since the last order of any labelled snapshot (NaN without any): the
    longest silence the model has learnt an outcome for. A lab distributor's model, trained
    on 8 months of labels, had seen silences up to about 240 days; at 311 days (10 times its
    typical gap) a closed biotech still read 27% churn, the model's answer for the longest
    silence it knew, and was kept out of lapsed as 'expected back'."""
    if "recency_days" not in labelled or labelled.empty:
        return float("nan")
    days = labelled["recency_days"].to_numpy(float)
    return float(np.nanmax(days)) if np.isfinite(days).any() else float("nan")


def few_lapses(lapses: dict[str, float], cfg: Config) -> str | None:
    """The note when the labels saw too few contracts lapse to learn renewals from
    (``health.renewal_unlearnt_min_lapses``), and what the scorer does instead."""
    floor = cfg.health.renewal_unlearnt_min_lapses
    if not lapses or floor is None or lapses["accounts"] >= floor:
        return None
    k, n = int(lapses["accounts"]), int(lapses["judged"])
    due = cfg.health.renewal_due_days
    return (
        f"the labelled snapshots saw {k} of the {n} accounts judged by a running contract "
        f"lapse (fewer than health.renewal_unlearnt_min_lapses, {floor}): too few to learn "
        "which renewals fail, so the churn probability cannot tell a renewal from a loss; "
        + (
            f"the scorer raises an account whose contract ends within {due} days with no "
            "renewal on record to at least yellow until the model has learnt more"
            if due is not None
            else "health.renewal_due_days is off, so nothing stands in for it"
        )
    )


def _contract_silence(
    test: pd.DataFrame, cfg: Config, ends: ContractEnds | None = None
) -> str | None:
    """:func:`silent_under_contract` on the latest origin's rows."""
    if test.empty:
        return None
    return silent_under_contract(test[test["as_of"] == test["as_of"].max()], cfg, ends)


def origin_lights(
    test: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    cfg: Config,
    lifecycle: np.ndarray | None = None,
) -> dict[str, float]:
    """The lights the scorer would have shown on each origin (its lifecycle states and light
    rule, no previous week), judged against what happened: precision and recall of red and
    of red + yellow among the accounts that get a light, the share of them that was red,
    and the churn ROC AUC on them (lapsed accounts, the easy part of any ranking, left out).
    ``lifecycle``: the rows' states when the caller has them (else computed here).
    """
    if lifecycle is None:
        lifecycle = lifecycle_states(test, cfg, p)["lifecycle"].astype("object").to_numpy()
    lit = np.asarray(lifecycle) != "lapsed"
    by_orders = (
        test["churn_definition"].astype(object).to_numpy() == "no_order"
        if "churn_definition" in test
        else np.ones(len(test), bool)
    )
    quiet = rhythm_quiet(
        float_column(test, "rhythm_quiet_chance"),
        by_orders,
        cfg.health,
        p,
        float_column(test, "gaps_longer_than_silence"),
        peer_season(test, cfg).season(test),
        pause_season(test, cfg).chance,
    )
    seen = quiet_as_before(test, cfg) & by_orders
    light = np.full(len(test), "", dtype=object)
    for idx in test.groupby("as_of").indices.values():
        light[idx], _ = assign_lights(
            p[idx], None, cfg.health, eligible=lit[idx], quiet=quiet[idx], seen_before=seen[idx]
        )
    warm = np.isin(light, ["red", "yellow"])
    out = light_scores(y[lit], light[lit] == "red", warm[lit])
    # the recall a perfect ranking reaches with as many red and yellow accounts as the
    # budget allows, origin by origin (budget lights cap it; their floors do not count:
    # the caution names them)
    if cfg.health.mode == "budget":
        per = pd.DataFrame({"o": test["as_of"].to_numpy()[lit], "y": y[lit]})
        sums = per.groupby("o")["y"].agg(["sum", "size"])
        budget = np.floor((cfg.health.red_share + cfg.health.yellow_share) * sums["size"])
        churners = float(sums["sum"].sum())
        out["red_yellow_recall_ceiling"] = (
            float(np.minimum(sums["sum"], budget).sum() / churners) if churners else float("nan")
        )
    if (lit & by_orders).any() and (lit & ~by_orders).any():  # two populations in one list
        for name, part in (("contract", lit & ~by_orders), ("no_order", lit & by_orders)):
            one = light_scores(
                y[part], light[part] == "red", np.isin(light[part], ["red", "yellow"])
            )
            out[f"{name}_red_precision"] = one["red_precision"]
            out[f"{name}_red_count"] = one["red_count"]
    out["lit_share"] = float(lit.mean()) if len(lit) else float("nan")
    out["lit_roc_auc"] = M.roc_auc(y[lit], p[lit]) if lit.any() else float("nan")
    out |= early_warning(test, y, p, lit, light == "red")
    out["lit_max_probability"] = float(np.max(p[lit])) if lit.any() else float("nan")
    return out


def early_warning(
    test: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    lit: np.ndarray,
    red: np.ndarray | None = None,
) -> dict[str, float]:
    """The ranking where it warns early: among the lit accounts still within their typical
    gap (days since the last order at most the typical gap between order days, the one the
    overdue rule and the backtest read), the share of the lit they are, their churn rate,
    the churn ROC AUC on them and, with ``red``, how many were red and the red precision
    among them. A food wholesaler's `train` printed 0.98 against "no order in 90 days",
    which accounts silent for weeks meet trivially; on the accounts still ordering it
    ranked the customers really lost at 0.73. Empty without the gap features."""
    if "recency_days" not in test or "gap_median_days" not in test or not lit.any():
        return {}
    rec, gap = float_column(test, "recency_days"), typical_gap(test)
    early = lit & (rec <= gap)  # NaN (no gap yet) compares False
    out = {
        "early_share": float(early.sum() / lit.sum()),
        "early_churn_rate": float(y[early].mean()) if early.any() else float("nan"),
        "early_roc_auc": M.roc_auc(y[early], p[early]) if early.any() else float("nan"),
    }
    if red is not None:
        hit = early & red
        out["early_red_count"] = float(hit.sum())
        out["early_red_precision"] = float(y[hit].mean()) if hit.any() else float("nan")
    return out


def completed_coverage(
    toot: pd.DataFrame, d: np.ndarray, e: np.ndarray, windows: list[int]
) -> dict[str, float]:
    """The interval's coverage of next orders within the model's range, rows censored by the
    origins' short follow-up completed by their forecast (what the levels were chosen on)."""
    if "cdf" not in toot:
        return {}
    edges = interval_edges(windows)
    F = np.stack(list(toot["cdf"]))
    cov = completed_interval_coverage(
        F, edges, d, e, toot["q10"].to_numpy(float), toot["q90"].to_numpy(float)
    )
    return {"p10_p90_coverage_completed": cov}


def model_card(ev: Evaluation) -> dict[str, Any]:
    """The churn model's card: the family that won on the origins and by how much, and the
    pooled out-of-time figures beside the best baseline's."""
    base = ev.comparison[ev.comparison["predictor"] != "ka_ml churn model"]
    top = base.iloc[int(base["roc_auc"].to_numpy().argmax())]
    others = {k: v for k, v in ev.family_scores.items() if k != ev.family}
    runner_up = max(others, key=others.__getitem__) if others else None
    return {
        "family": ev.family,
        "family_roc_auc": ev.family_scores.get(ev.family, float("nan")),
        "family_margin": ev.family_scores.get(ev.family, float("nan"))
        - (others[runner_up] if runner_up else float("nan")),
        "family_runner_up": runner_up,
        "calibration": str(ev.calibration.get("method", "none")),
        "oot_roc_auc": float(ev.churn["roc_auc"]),
        "oot_brier": float(ev.churn["brier"]),
        "best_baseline": str(top["predictor"]),
        "best_baseline_roc_auc": float(top["roc_auc"]),
        "origins": int(ev.per_origin["origin"].nunique()) if not ev.per_origin.empty else 0,
        **lit_figures(ev.lights),
        **cycle_figures(ev.timing),
        # only when the origins held accounts out: the figures are then not out of time
        **({"test": "held-out accounts"} if ev.held_out_accounts else {}),
        # the scorer's lapsed rule reads it (lifecycle.lapsed_min_churn_probability)
        **({"longest_silence_days": ev.longest_silence} if np.isfinite(ev.longest_silence) else {}),
        # the scorer's renewal rule reads it (health.renewal_unlearnt_min_lapses)
        **({"contract_lapses": ev.contract_labels["accounts"]} if ev.contract_labels else {}),
        **_card_cautions(ev),
    }


def lit_baselines(
    y: np.ndarray, base_churn: dict[str, np.ndarray], lit: np.ndarray
) -> dict[str, float]:
    """Each baseline's ROC AUC on the rows that get a light and that every baseline scores
    (as :func:`~ka_ml.modeling.evaluate.compare` judges them: BG/NBD has no score for an
    account without purchase history)."""
    ok = lit & np.all([np.isfinite(v) for v in base_churn.values()], axis=0)
    return {
        f"lit_roc_auc:{name}": M.roc_auc(y[ok], v[ok]) if ok.any() else float("nan")
        for name, v in base_churn.items()
    }


def lit_figures(lights: dict[str, float]) -> dict[str, Any]:
    """The ranking on the accounts that get a light (lapsed ones, already lost and the easy
    part of any ranking, left out) beside the best baseline's on the same rows: what the
    report tells managers. A user's subscription portfolio read "99 times in 100" pooled
    over its lapsed accounts where the lit ones ranked at 0.96. Empty when not measured."""
    auc = lights.get("lit_roc_auc", float("nan"))
    base = {
        k.split(":", 1)[1]: v
        for k, v in lights.items()
        if k.startswith("lit_roc_auc:") and np.isfinite(v)
    }
    if not np.isfinite(auc):
        return {}
    out: dict[str, Any] = {"lit_roc_auc": float(auc)}
    if base:
        top = max(base, key=base.__getitem__)
        out |= {"lit_best_baseline": top, "lit_best_baseline_roc_auc": float(base[top])}
    return out


def _card_cautions(ev: Evaluation) -> dict[str, Any]:
    """What the report says beside the card's figures when train cautioned about them:
    the test origins' accounts when they were few, the AUC expected on the accounts scored
    at training when they looked unlike the origins'."""
    out: dict[str, Any] = {}
    if "few_accounts" in ev.cautions:
        out["few_test_accounts"] = int(ev.churn.get("accounts", 0))
    if "population" in ev.cautions:
        out["expected_roc_auc"] = float(ev.expected["roc_auc"])
    if "pauses" in ev.cautions:
        out["label_return_share"] = float(ev.label_returns["share"])
        out["label_return_days"] = float(ev.label_returns["days"])
        out["label_horizon_days"] = float(ev.label_returns["horizon"])
    return out


CYCLE_CARD_KEYS = (
    "timing_coverage",
    "timing_coverage_n",
    "timing_coverage_completed",
    "timing_open_share",
    "timing_learnt_days",
    "window_days",
    "window_accuracy",
    "window_majority_accuracy",
    "test",
)
"""The model card's purchase-cycle keys (:func:`cycle_figures` and the kind of test)."""


def cycle_figures(timing: dict[str, float]) -> dict[str, float]:
    """The purchase-cycle record managers see: p10-p90 coverage (on the rows whose outcome
    is known, how many, and completed by the forecast for the rows the follow-up cut short),
    the share of open-ended windows, and the shortest window's accuracy beside the
    always-majority answer (empty when not measured)."""
    windows = sorted(int(k[1:-9]) for k in timing if re.fullmatch(r"p\d+_accuracy", k))
    out: dict[str, float] = {}
    cov = timing.get("p10_p90_coverage", float("nan"))
    if np.isfinite(cov):
        out["timing_coverage"] = float(cov)
        out["timing_coverage_n"] = float(timing.get("coverage_n", np.nan))
    for key, name in (
        ("p10_p90_coverage_completed", "timing_coverage_completed"),
        ("open_interval_share", "timing_open_share"),
    ):
        if np.isfinite(timing.get(key, np.nan)):
            out[name] = float(timing[key])
    if windows:
        k = windows[0]
        out |= {
            "window_days": float(k),
            "window_accuracy": float(timing[f"p{k}_accuracy"]),
            "window_majority_accuracy": float(timing.get(f"p{k}_majority_accuracy", np.nan)),
        }
    return out


def bgnbd_within(oot: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """BG/NBD's P(order within k days) on every origin's rows, as the backtest computed
    them from the BG/NBD it fitted on the orders before each origin
    (:func:`ka_ml.training.churn.origin_baselines`)."""
    return pd.DataFrame(
        {
            f"p_purchase_{k}d": oot[bgnbd_within_column(k)].to_numpy(float)
            for k in cfg.labels.purchase_windows
        }
    )


def _slices(
    test: pd.DataFrame, y: np.ndarray, p: np.ndarray, cfg: Config, lifecycle: np.ndarray
) -> pd.DataFrame:
    """Churn metrics per tier, industry, tenure band, purchase cycle and lifecycle state
    (lapsed accounts' probabilities rank the Win-back list: their calibration is checked
    here too)."""
    df = pd.DataFrame({"y": y, "p": p})
    df["lifecycle"] = lifecycle
    cols = ["lifecycle"]
    for c in ("abc_tier", "industry"):
        if c in test:
            df[c] = test[c].astype("object").fillna("unknown").to_numpy()
            cols.append(c)
    if "tenure_days" in test:
        df["tenure_band"] = tenure_band(test["tenure_days"]).to_numpy()
        cols.append("tenure_band")
    if "gap_mean_days" in test:
        df["purchase_cycle"] = cycle_band(buying_cycle_days(test)).to_numpy()
        cols.append("purchase_cycle")
    return M.slice_metrics(df, "y", "p", cols) if cols else pd.DataFrame()
