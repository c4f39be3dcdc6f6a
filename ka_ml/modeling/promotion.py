"""The promotion gate's rules: when a new version becomes champion or stays challenger.

Pure decisions on figures already measured (the candidate's, the champion's, the baselines'
comparison tables, the calibration verdict) and how the reason is worded, for the CLI and
for a manager's report. Nothing here touches MLflow: :mod:`ka_ml.modeling.registry` reads
the figures from the store and moves the aliases these rules name.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from ka_ml.modeling.metrics import calibration_verdict

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class Decision:
    promote: bool
    alias: str
    reason: str
    warning: str = ""  # set when promoted although a secondary gate failed


def promotion_decision(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    *,
    metric: str,
    margin: float,
    higher_is_better: bool = True,
    ece: float | None = None,
    ece_ceiling: float | None = None,
    ece_chance: float | None = None,
    beats_baselines: bool | None = None,
    champion_warning: str = "",
    trails: str = "",
    ahead: str = "",
    by_hand: str = "`ka-ml promote` makes it champion by hand",
) -> Decision:
    """Promote only a candidate that is calibrated and beats the champion by the margin.

    Both are measured on the same, current out-of-time test rows. One exception keeps a
    user from being left without any model: when there is no comparable champion yet and
    the candidate beats every baseline (``beats_baselines``), a failed calibration ceiling
    (a secondary gate) does not hold it back; it becomes champion and the decision carries
    a ``warning`` saying so. With a champion in place the ceiling refuses, unless that
    champion was itself promoted above it (``champion_warning``): then a candidate that
    beats it and every baseline replaces it, with the same warning.
    ``ece_chance``: the calibration error chance alone gives on the test rows
    (:func:`calibration_verdict`).

    A first model that a baseline beats out of time beyond chance (``ahead``, in words:
    :func:`baseline_ahead` with ``within_chance``) is not promoted: managers would get
    lights worse than the baseline's. One that trails a baseline only within chance
    (``trails``: the strict :func:`baseline_ahead`; on a small portfolio a coin toss) is,
    with a warning naming the baseline. ``by_hand``: the command that promotes it anyway.
    """
    new = candidate.get(metric, float("nan"))
    old = champion.get(metric, float("nan")) if champion is not None else float("nan")
    first = not math.isfinite(old)  # no comparable champion yet
    refusal, note = calibration_verdict(ece, ece_ceiling, ece_chance)
    note = f"; {note}" if note else ""
    excused = bool(beats_baselines) and (first or "calibration error" in champion_warning)
    if refusal and not (excused and math.isfinite(new)):
        if first and beats_baselines is False:  # say why the first-model exception failed
            behind = f" ({trails})" if trails else ""
            refusal += (
                "; a first model failing the calibration gate is promoted only when it beats "
                f"every baseline out of time, and this one does not{behind}; {by_hand}"
            )
        return Decision(False, CHALLENGER, refusal)
    calibration = _is_above(refusal)  # what failed the ceiling, when it is overridden
    if not math.isfinite(new):
        return Decision(False, CHALLENGER, f"{metric} could not be measured on the test rows")
    if first and ahead:
        return Decision(
            False,
            CHALLENGER,
            f"no comparable champion yet, but a baseline does better out of time beyond "
            f"chance ({ahead}): a model that loses to a baseline is not promoted; {by_hand}",
        )
    if first:
        if calibration:
            return Decision(
                True,
                CHAMPION,
                f"no comparable champion yet and it beats every baseline ({metric} {new:.4f}): "
                f"promoted although its {calibration} (warning)",
                warning=f"promoted although its {calibration}: no comparable champion yet and "
                "it beats every baseline",
            )
        if trails:
            caveat = f"a baseline does better out of time, within chance ({trails})"
            return Decision(
                True,
                CHAMPION,
                f"no comparable champion yet ({metric} {new:.4f}){note}; {caveat} (warning)",
                warning=f"promoted although {caveat}: no comparable champion yet",
            )
        return Decision(True, CHAMPION, f"no comparable champion yet ({metric} {new:.4f}){note}")
    gain = (new - old) if higher_is_better else (old - new)
    # A tolerance keeps float noise (0.77 - 0.75 = 0.0200000001) from deciding.
    if gain > margin + 1e-9 or (margin == 0 and gain > 1e-12):
        better = f"{metric} {new:.4f} beats the champion's {old:.4f} (margin {margin})"
        if calibration:
            return Decision(
                True,
                CHAMPION,
                f"{better} and every baseline: promoted although its {calibration}, as the "
                "champion was (warning)",
                warning=f"promoted although its {calibration}: the champion was promoted "
                "above the ceiling too, and this model beats it and every baseline",
            )
        return Decision(True, CHAMPION, f"{better}{note}")
    return Decision(
        False,
        CHALLENGER,
        f"{metric} {new:.4f} does not beat the champion's {old:.4f} by the margin {margin}",
    )


def same_backtest(decision: Decision) -> Decision:
    """``decision`` (:func:`promotion_decision` of the new model's out-of-time figures
    against those the champion's own training run measured) said as what it is: a champion
    retrained on the same data and as-of (another config, new code) saw every test row's
    outcome, so it cannot be re-scored there, but its run tested its procedure on the very
    same rows (the same ``test_rows_fingerprint``), as this run tested its own."""
    said = (
        "compared with the out-of-time figures the champion's own training run measured on "
        f"these same test rows: {decision.reason}"
    )
    return replace(decision, reason=said)


def _is_above(refusal: str) -> str:
    """'calibration error 0.054 above ...' -> 'calibration error 0.054 is above ...'."""
    return re.sub(r"^(calibration error [0-9.]+) above", r"\1 is above", refusal)


# what replaces the comparison the gate cannot make (a champion retrained within the horizon)
AFTERWARDS = (
    "`ka-ml backtest` tells how each version did on the weeks it scored, once their horizon "
    "has passed"
)


def fresher_decision(
    champion: str,
    champion_as_of: pd.Timestamp | None,
    as_of: pd.Timestamp | None,
    *,
    ece: float | None = None,
    ece_ceiling: float | None = None,
    ece_chance: float | None = None,
    holds_baselines: bool | None = None,
    beats_baselines: bool | None = None,
    champion_warning: str = "",
    by_hand: str = "`ka-ml promote` by hand",
) -> Decision:
    """The gate when the champion was trained on the outcomes of every test row (a retrain
    within the horizon of it): its scores there would be in-sample, so the two are not
    compared. A candidate trained on newer data replaces it only when no baseline does
    better out of time beyond chance (``holds_baselines``: :func:`baselines_beaten` with
    ``within_chance``; on a small portfolio a strict win on every figure is a coin toss)
    and its calibration passes (:func:`calibration_verdict`); otherwise it stays challenger
    and the reason names the way to compare by hand (``by_hand``: the command that
    promotes it, ``ka-ml promote NAME VERSION``).

    A champion that was itself promoted above the calibration ceiling (``champion_warning``,
    the first-model rule of :func:`promotion_decision`) does not hold its successor to the
    ceiling: one that beats every baseline replaces it, with the same warning. Otherwise a
    small portfolio whose first model missed the ceiling would keep that model for ever."""
    seen = (
        f"the champion {champion} (trained as of {champion_as_of.date()}) learnt outcomes up "
        "to that date, after every test origin, which overlap each test row's window (its "
        "scores there are not out of time), so they cannot be compared there"
        if champion_as_of is not None
        else f"the champion {champion} learnt outcomes that overlap every test row's window"
    )
    newer = as_of is not None and champion_as_of is not None and as_of > champion_as_of
    if not newer:
        return Decision(
            False,
            CHALLENGER,
            f"{seen}, and this model is not trained on newer data: compare the two runs in "
            f"MLflow and {by_hand}",
        )
    if not holds_baselines:
        return Decision(
            False, CHALLENGER, f"{seen}; a baseline does better than this model out of time"
        )
    refusal, note = calibration_verdict(ece, ece_ceiling, ece_chance)
    assert as_of is not None
    newer_note = f"this model is trained on newer data (as of {as_of.date()})"
    if refusal and beats_baselines and "calibration error" in champion_warning:
        calibration = _is_above(refusal)
        return Decision(
            True,
            CHAMPION,
            f"{seen}; {newer_note} and beats every baseline out of time: promoted although "
            f"its {calibration}, as the champion was (warning)",
            warning=f"promoted although its {calibration}: the champion {champion} was "
            "promoted above the ceiling too, and this model is on newer data and beats every "
            "baseline",
        )
    if refusal:
        return Decision(False, CHALLENGER, f"{seen}; {refusal}")
    return Decision(
        True,
        CHAMPION,
        f"{seen}; {newer_note} and no baseline does better out of time beyond chance"
        + (f"; {note}" if note else "")
        + f"; {AFTERWARDS}",
    )


def _trailing(
    table: pd.DataFrame, model: str, metrics: dict[str, bool], within_chance: bool
) -> tuple[list[tuple[str, str, float, float]], bool] | None:
    """((predictor, metric, theirs, ours) for every figure where ``model`` does not beat a
    row, whether anything was compared); None without exactly one ``model`` row."""
    if "predictor" not in table.columns:
        return None
    rows = table.to_dict("records")
    mine = [r for r in rows if r["predictor"] == model]
    if len(mine) != 1:
        return None
    compared, losses = False, []
    for row in rows:
        if row["predictor"] == model:
            continue
        for metric, higher in metrics.items():
            theirs = float(row.get(metric, float("nan")))
            if not math.isfinite(theirs):
                continue
            ours = float(mine[0].get(metric, float("nan")))
            beaten = ours > theirs if higher else ours < theirs  # NaN ours: not beaten
            if not beaten and not (within_chance and _within_chance(row, metric, higher)):
                losses.append((str(row["predictor"]), metric, theirs, ours))
            compared = True
    return losses, compared


def beats_every_baseline(
    table: pd.DataFrame, model: str, metrics: dict[str, bool], *, within_chance: bool = False
) -> bool | None:
    """Whether the ``model`` row of a comparison table (one row per ``predictor``, all on the
    same test rows) strictly beats every other row on each of ``metrics`` (name -> higher is
    better) that the other row measured. None when nothing could be compared.

    ``within_chance``: trailing a row is forgiven where the paired bootstrap interval of the
    difference (``model_minus_this_<metric>_lo`` / ``_hi`` on that row) includes zero, i.e.
    no baseline does better beyond chance; without an interval the strict rule holds."""
    found = _trailing(table, model, metrics, within_chance)
    if found is None:
        return None
    losses, compared = found
    if losses:
        return False
    return True if compared else None


def _metric_words(metric: str) -> str:
    """'roc_auc' -> 'ROC AUC', 'p30_brier' -> 'P(order within 30 d) Brier score'."""
    window, _, rest = (
        metric.partition("_") if metric[:1] == "p" and metric[1:2].isdigit() else ("", "", metric)
    )
    words = {"roc_auc": "ROC AUC", "auc": "ROC AUC", "brier": "Brier score"}.get(rest, rest)
    return f"P(order within {window[1:]} d) {words}" if window else words


def baseline_ahead(
    table: pd.DataFrame, model: str, metrics: dict[str, bool], *, within_chance: bool = False
) -> str:
    """The baseline figure furthest ahead of ``model``, in words ("recency only: ROC AUC
    0.954 against the model's 0.630"); "" when the model beats every baseline (with
    ``within_chance``: when none does better beyond chance, :func:`beats_every_baseline`)."""
    found = _trailing(table, model, metrics, within_chance)
    if not found or not found[0]:
        return ""
    who, metric, theirs, ours = max(found[0], key=lambda x: abs(x[2] - x[3]))
    a, b = distinct_figures(theirs, ours)
    return f"{who}: {_metric_words(metric)} {a} against the model's {b}"


def distinct_figures(a: float, b: float, digits: int = 3, most: int = 6) -> tuple[str, str]:
    """Two figures with ``digits`` decimals, or as many more (up to ``most``) as it takes to
    tell them apart: "0.056 against 0.056" reads as a tie the verdict says it is not."""
    for d in range(digits, most + 1):
        shown = f"{a:.{d}f}", f"{b:.{d}f}"
        if shown[0] != shown[1]:
            return shown
    return shown


def _within_chance(row: dict[Any, Any], metric: str, higher: bool) -> bool:
    """Whether the paired interval of (model - this row) on ``metric`` includes zero."""
    lo = float(row.get(f"model_minus_this_{metric}_lo", float("nan")))
    hi = float(row.get(f"model_minus_this_{metric}_hi", float("nan")))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return False
    return hi >= 0 if higher else lo <= 0


def _baseline_metrics(windows: list[int]) -> dict[str, tuple[str, dict[str, bool]]]:
    """kind -> (the model's row in its comparison table, metric -> higher is better)."""
    timing = {f"p{k}_auc": True for k in windows} | {f"p{k}_brier": False for k in windows}
    return {
        "churn": ("ka_ml churn model", {"roc_auc": True, "brier": False}),
        "timing": ("ka_ml timing model", timing),
    }


def baselines_beaten(
    churn_comparison: pd.DataFrame,
    timing_comparison: pd.DataFrame,
    windows: list[int],
    *,
    within_chance: bool = False,
) -> dict[str, bool]:
    """For each model: does it beat every baseline on the out-of-time test rows?

    Churn: ROC AUC and Brier score against recency, RFM logistic regression and BG/NBD.
    Timing: AUC and Brier score of P(order within k days), every window, against BG/NBD.
    Nothing to compare counts as not beating them. ``within_chance``: or trail one only
    within its bootstrap interval (:func:`beats_every_baseline`).
    """
    tables = {"churn": churn_comparison, "timing": timing_comparison}
    return {
        kind: bool(beats_every_baseline(tables[kind], row, metrics, within_chance=within_chance))
        for kind, (row, metrics) in _baseline_metrics(windows).items()
    }


def baselines_ahead(
    churn_comparison: pd.DataFrame,
    timing_comparison: pd.DataFrame,
    windows: list[int],
    *,
    within_chance: bool = False,
) -> dict[str, str]:
    """For each model, :func:`baseline_ahead`: the baseline figure furthest ahead of it, in
    words ("" when it beats them all; with ``within_chance``, when none is ahead beyond
    chance)."""
    tables = {"churn": churn_comparison, "timing": timing_comparison}
    return {
        kind: baseline_ahead(tables[kind], row, metrics, within_chance=within_chance)
        for kind, (row, metrics) in _baseline_metrics(windows).items()
    }


def manager_words(verdict: str) -> str:
    """A gate verdict without its instructions to whoever runs the CLI ("...: compare the
    two runs in MLflow and `ka-ml promote NAME VERSION` by hand", "...; `ka-ml promote ...`
    makes it champion by hand"): a manager's report has no command line."""
    return re.sub(r"[;:] [^;:]*`ka-ml [^;]*", "", verdict).strip()
