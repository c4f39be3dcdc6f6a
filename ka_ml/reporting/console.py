"""What the CLI prints: the training console, the model registry listing, promotions."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from ka_ml.config import Config
from ka_ml.features.catalog import plural
from ka_ml.modeling import promotion, registry
from ka_ml.modeling.churn import (
    CALIBRATION_MAX_AUC_LOSS,
    CALIBRATION_MIN_GAIN,
    calibration_passed_over,
)
from ka_ml.modeling.registry import ManualPromotion, VersionInfo
from ka_ml.modeling.split import describe_line
from ka_ml.modeling.timing import INTERVAL_TARGET
from ka_ml.reporting.formatting import fmt_pct


def _f(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def churn_table(
    df: pd.DataFrame, title: str = "Churn within the horizon (out-of-time test)"
) -> Table:
    t = Table(title=title, title_justify="left")
    for c in ("predictor", "AUC", "PR AUC", "Brier", "ECE", "lift@10%", "model ΔAUC [95% CI]"):
        t.add_column(c, justify="left" if c == "predictor" else "right")
    for _, r in df.iterrows():
        delta = (
            ""
            if pd.isna(r.get("model_minus_this_roc_auc", float("nan")))
            else (
                f"{r['model_minus_this_roc_auc']:+.3f} [{r['model_minus_this_roc_auc_lo']:+.3f}, "
                f"{r['model_minus_this_roc_auc_hi']:+.3f}]"
            )
        )
        t.add_row(
            str(r["predictor"]),
            _f(r["roc_auc"]),
            _f(r["pr_auc"]),
            _f(r["brier"]),
            _f(r["ece"]),
            _f(r["top_decile_lift"], 2),
            delta,
        )
    return t


def timing_table(
    df: pd.DataFrame,
    windows: list[int],
    held_out: bool = False,
    overall: dict[str, float] | None = None,
) -> Table:
    """One row per figure, one column per predictor: fits 80 columns whatever the windows
    (a column per window and metric was cut to 'predi…', 'C-in…' in a terminal).

    The window figures are paired with BG/NBD's on the rows both can score; a figure no
    baseline has (C-index, coverage) is the model's on every test row, from ``overall``
    (the evaluation's, what MLflow and the promotion gate read), so one figure is printed
    with one value."""
    test = "test on held-out accounts, in time" if held_out else "out-of-time test"
    t = Table(title=f"Next purchase ({test})", title_justify="left")
    t.add_column("figure", justify="left")
    names = [str(p) for p in df["predictor"]]
    for name in names:
        t.add_column("ka_ml" if name == "ka_ml timing model" else name, justify="right")
    figures = [
        *((f"P(order within {k} d) ROC AUC", f"p{k}_auc") for k in windows),
        *((f"P(order within {k} d) Brier", f"p{k}_brier") for k in windows),
        ("C-index (time to next order)", "concordance"),
        ("p10-p90 interval coverage", "p10_p90_coverage"),
    ]
    rows = [r for _, r in df.iterrows()]
    # the paired bootstrap interval of model - baseline, where the evaluation measured one
    other = rows[-1] if len(rows) == 2 else None
    paired = other is not None and any(f"model_minus_this_{k}_lo" in other for _, k in figures)
    if paired:
        t.add_column(f"Δ vs {names[-1]} [95% CI]", justify="right", no_wrap=True)
    for label, key in figures:
        cells = [_f(r.get(key)) for r in rows]
        alone = not any(np.isfinite(float(r.get(key, np.nan))) for r in rows[1:])
        if overall is not None and alone and key in overall:
            cells[0] = _f(overall[key])
        if paired:
            cells.append(_delta(other, key))
        t.add_row(label, *cells)
    return t


def _delta(row: Any, key: str) -> str:
    """'+0.012 [+0.004, +0.020]' from a comparison row's ``model_minus_this_<key>``
    columns; '-' where there is no interval."""
    d, lo, hi = (row.get(f"model_minus_this_{key}{x}") for x in ("", "_lo", "_hi"))
    if not all(isinstance(v, float | int) and np.isfinite(v) for v in (d, lo, hi)):
        return "-"
    return f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"


# the completed coverage this far above the decided rows' is worth explaining
COVERAGE_GAP = 0.05

SHORT = {"recency only": "recency", "RFM logistic regression": "RFM LR", "BG/NBD": "BG/NBD"}


def origin_table(per_origin: pd.DataFrame, held_out_accounts: bool = False) -> Table:
    """Per test origin: the model's ROC AUC and Brier beside the best baseline's, and the
    mean predicted probability beside the observed churn rate (calibration in the large)."""
    t = Table(
        title="Per test origin ("
        + (
            "each tests accounts its training left out, trained up to its date"
            if held_out_accounts
            else "each trained only on what was known before it"
        )
        + ")",
        title_justify="left",
    )
    # the best baseline by AUC is named; the lowest baseline Brier may be another baseline's
    for c in (
        "origin",
        "rows",
        "model\nAUC",
        "best\nbaseline\nAUC",
        "model\nBrier",
        "lowest\nbaseline\nBrier",
        "mean\nP",
        "churn",
    ):
        t.add_column(c, justify="left" if c == "origin" else "right", no_wrap=True)
    for origin, g in per_origin.groupby("origin", sort=False):
        model = g[g["predictor"] == "ka_ml churn model"].iloc[0]
        base = g[g["predictor"] != "ka_ml churn model"]
        top = base.iloc[int(base["roc_auc"].to_numpy().argmax())]
        name = SHORT.get(str(top["predictor"]), str(top["predictor"]))
        t.add_row(
            str(origin),
            f"{int(model['rows']):,}",
            _f(model["roc_auc"]),
            f"{_f(top['roc_auc'])} {name}",
            _f(model["brier"]),
            _f(float(base["brier"].min())),
            _f(model["mean_p"]),
            _f(model["churn_rate"]),
        )
    return t


def expected_line(x: dict[str, float], as_of: pd.Timestamp) -> str:
    """The estimate for the population being scored, and how well it did on the origins."""
    return (
        f"expected on the {int(x['accounts']):,} accounts as of {as_of.date()} "
        f"(from the model's own probabilities, if its calibration holds): ROC AUC "
        f"[bold]{_f(x['roc_auc'])}[/], Brier {_f(x['brier'], 4)}; on the origins this "
        f"estimate erred by {x['origin_error']:+.3f} on average "
        f"(at most {x['origin_abs_error']:.3f})"
    )


def _why_none(cal: dict[str, Any], names: dict[str, str]) -> str:
    """Why "none" stayed where a method's cross-fitted Brier is lower (``Calibrator.choose``'s
    rule): "calibration: none (... none 0.1090, Platt 0.1085, isotonic 0.1082)" left a data
    scientist asking why isotonic lost."""
    none = cal.get("none")
    if not isinstance(none, float) or none <= 0:
        return ""
    said = []
    for k in ("sigmoid", "isotonic"):
        brier = cal.get(k)
        if not isinstance(brier, float) or brier >= none:
            continue
        gain = 1 - brier / none
        auc, auc_none = cal.get(f"auc_{k}", math.nan), cal.get("auc_none", math.nan)
        why_not = calibration_passed_over(k, brier, none, auc, auc_none)
        if why_not == "gain":
            said.append(
                f"{names[k]} {gain:.2%} lower, under the {CALIBRATION_MIN_GAIN:.1%} that counts"
            )
        elif why_not == "ties" and np.isfinite(auc) and np.isfinite(auc_none):
            said.append(
                f"isotonic {gain:.2%} lower, but its steps tie accounts: ROC AUC "
                f"{auc:.4f} against {auc_none:.4f} (at most {CALIBRATION_MAX_AUC_LOSS:g} "
                "may be lost)"
            )
    return "; " + "; ".join(said) + ": so none" if said else ""


def _choices(ev: Any) -> list[str]:
    fam = ", ".join(f"{k} {v:.4f}" for k, v in ev.family_scores.items())
    test = "held-out accounts" if getattr(ev, "held_out_accounts", False) else "out-of-time"
    cal = ev.calibration
    names = {"none": "none", "sigmoid": "Platt", "isotonic": "isotonic"}
    briers = ", ".join(f"{names[k]} {cal[k]:.4f}" for k in names if k in cal)
    veto = ""
    if (other := cal.get("in_period_method")) is not None:  # the second check disagreed
        best = min((k for k in names if k in cal), key=lambda k: float(cal[k]))
        there = (
            "no calibration did as well"
            if other == "none"
            else f"{names.get(str(other), other)} did better"
        )
        held = ", ".join(
            f"{names[k]} {cal[f'in_period_{k}']:.5f}" for k in names if f"in_period_{k}" in cal
        )
        veto = (
            f"; {names.get(best, best)} was best across origins, but on held-out accounts of "
            f"the same period {there}{f' (Brier: {held})' if held else ''}: no method holds "
            "in both, so none"
        )
    elif cal.get("method", "none") == "none":
        veto = _why_none(cal, names)
    return [
        f"model family: [bold]{ev.family}[/] (pooled {test} ROC AUC: {fam})",
        f"calibration: [bold]{names.get(cal.get('method', 'none'), cal.get('method'))}[/]"
        + (f" (cross-fitted Brier: {briers}{veto})" if briers else ""),
    ]


def _churn_rows(ev: Any) -> tuple[int, int]:
    """(rows of the comparison table, every pooled test row): the table keeps the rows
    every baseline can score (BG/NBD has no prediction without purchase history), the
    model's own figures (``ev.churn``, what the promotion gate reads) use them all. 0 where
    the evaluation did not count them."""
    comp = ev.comparison
    table = comp["n"].iloc[0] if "n" in comp and len(comp) else None
    every = ev.churn.get("n")

    def count(v: Any) -> int:
        return int(v) if isinstance(v, int | float) and np.isfinite(v) else 0

    return count(table), count(every)


def _all_rows_note(table_rows: int, all_rows: int) -> str:
    """Where the model's pooled figure below the table rests on more rows than the table,
    say so: otherwise the same model shows two AUCs one line apart (0.838 and 0.839)."""
    if not table_rows or not all_rows or table_rows == all_rows:
        return ""
    left = all_rows - table_rows
    return (
        f" on all {all_rows:,} pooled test rows (the promotion gate's figure; the table "
        f"leaves out {left:,} {'row' if left == 1 else 'rows'} a baseline cannot score)"
    )


_DEFINITION_WORDS = {
    "contract": "a running contract's end without renewal",
    "no_order": "no order within the horizon",
}


def churn_words(definition: str) -> str:
    """The run's churn definitions ("contract,no_order", the snapshot rows' rules) in words:
    read as a code in a user's train console."""
    rules = [r for r in str(definition).split(",") if r]
    words = [_DEFINITION_WORDS.get(r, r) for r in rules]
    if rules == ["contract", "no_order"]:
        return f"{words[0]} where one runs, else {words[1]}"
    return " / ".join(words) or "-"


def coverage_line(timing: dict[str, float]) -> str | None:
    """What the table's one coverage figure leaves out (None without it): how many rows it
    counts (those whose next order the follow-up decided), the figure the interval's
    levels were set to reach on the same origins (the rows cut short completed from their
    own forecast: a fit, not a test), and the share of intervals left open. On CDNOW
    before 1997-09-30 the table said 0.567 where the completed figure was 0.790 and all
    but 2 in 10,000 intervals were open: read alone, 0.567 said the interval is far too
    narrow (at the cutoff it held 0.81)."""
    cov = timing.get("p10_p90_coverage", float("nan"))
    if not np.isfinite(cov):
        return None
    n = timing.get("coverage_n", float("nan"))
    rows = f"the {n:,.0f} " if np.isfinite(n) else "the "
    parts = [
        f"p10-p90 coverage {cov:.3f} on {rows}test rows whose next order the follow-up "
        "decided (an order seen, or none by the p90 date)"
    ]
    done = timing.get("p10_p90_coverage_completed", float("nan"))
    if np.isfinite(done):
        why = (
            " (a short follow-up decides early orders first, and they fall before p10 more often)"
            if done - cov > COVERAGE_GAP
            else ""
        )
        parts.append(
            f"{done:.3f} with the rows it cut short completed from their own forecast{why}, "
            f"the figure the interval's levels were set to bring to {INTERVAL_TARGET:.2f} on "
            "these origins: a fit, not a test"
        )
    opened = timing.get("open_interval_share", float("nan"))
    if np.isfinite(opened) and opened > 0:
        parts.append(
            f"{fmt_pct(opened)} of the intervals open-ended (no p90 date within the range the "
            "origins' models learnt)"
        )
    return "; ".join(parts)


def date_line(timing: dict[str, float]) -> str | None:
    """The next-order date against the spreadsheet rule (last order + median gap), on the
    test rows both date a week before their follow-up ends, whether the order came or not
    (None when there are none)."""
    n = timing.get("date_rows", float("nan"))
    if not np.isfinite(n):
        return None
    close = timing["date_close_share"]
    rule_close = timing["date_close_share_cycle_rule"]
    err = timing["date_median_error_days"]
    rule_err = timing["date_median_error_days_cycle_rule"]
    worse = [
        said
        for lost, said in (
            (err > rule_err, "its median error is smaller"),
            (close < rule_close, "it comes within a week more often"),
        )
        if lost
    ]
    verdict = (
        f" [yellow](the rule dates these accounts better: {' and '.join(worse)}; read the "
        "expected dates of regular buyers with care)[/]"
        if worse
        else ""
    )
    ordered = timing.get("date_ordered_share", float("nan"))
    came = f", {fmt_pct(ordered)} of them ordered within it" if np.isfinite(ordered) else ""
    return (
        f"next-order date against the own-cycle rule (last order + the account's median gap) "
        f"on the {n:,.0f} test rows both date a week before their follow-up ends{came}: "
        f"within a week {close:.0%} (rule {rule_close:.0%}); median error {err:.0f} days "
        f"(rule {rule_err:.0f}; a row with no order counts the days seen past the date, so "
        f"both are at least that){verdict}"
    )


def print_train_report(report: Any, out: Console) -> None:
    ev = report.evaluation
    windows = sorted(
        int(c[1:-4])
        for c in ev.timing_comparison.columns
        if c.startswith("p") and c.endswith("_auc")
    )
    out.print(
        f"\n[bold]ka_ml train[/] as of {report.as_of.date()}  "
        f"(churn: {churn_words(report.churn_definition)}; {report.seconds:.0f} s)"
    )
    out.print(describe_line(report.split))
    for note in ev.notes:
        out.print(f"[yellow]note:[/] {note}")
    n = ev.per_origin["origin"].nunique() if not ev.per_origin.empty else 0
    held_out = bool(getattr(ev, "held_out_accounts", False))
    how = "on held-out accounts, in time," if held_out else "out of time,"
    table_rows, all_rows = _churn_rows(ev)
    days = getattr(report, "horizon_days", None)
    horizon = f"{days} days" if days else "the horizon"
    on = f", on the {table_rows:,} rows every predictor can score" if table_rows else ""
    out.print(
        churn_table(
            ev.comparison,
            f"Churn within {horizon}: the training procedure {how} pooled over {n} "
            f"test {plural(n, 'origin')}{on} (what the scores should achieve)",
        )
    )
    c = ev.churn
    if np.isfinite(c.get("roc_auc_lo", np.nan)):
        out.print(
            f"ka_ml churn ROC AUC {c['roc_auc']:.3f}, 95% interval [{c['roc_auc_lo']:.3f}, "
            f"{c['roc_auc_hi']:.3f}] over {int(c['accounts']):,} accounts (whole accounts "
            "resampled)"
        )
    cal = getattr(ev, "calendar_rule", {})
    if cal:
        out.print(
            f"churn ROC AUC{_all_rows_note(table_rows, all_rows)}: model "
            f"{ev.churn['roc_auc']:.3f}, calendar-only rule {cal['roc_auc']:.3f} (days to "
            "contract end as the only score; same rows)"
        )
    if not ev.per_origin.empty:
        out.print(origin_table(ev.per_origin, held_out))
    if getattr(ev, "expected", None):
        out.print(expected_line(ev.expected, report.as_of))
    said = dict(getattr(ev, "cautions", {}))
    # told after the lights they are about
    about_lights = [c for k in ("red_floor", "few_caught") if (c := said.pop(k, None))]
    for caution in said.values():
        out.print(f"[yellow]caution:[/] {caution}")
    for line in _choices(ev):
        out.print(line)
    out.print(timing_table(ev.timing_comparison, windows, held_out, ev.timing))
    t = ev.timing
    acc = "; ".join(
        f"{k}d {t[f'p{k}_accuracy']:.2f} (majority {t[f'p{k}_majority_accuracy']:.2f})"
        for k in windows
    )
    out.print(f"purchase-window accuracy: {acc}")
    if (cover := coverage_line(t)) is not None:
        out.print(cover)
    if (dates := date_line(t)) is not None:
        out.print(dates)
    li = ev.lights
    counted = (
        f" ({li['red_count']:,.0f} rows, {li['red_churned']:,.0f} churned)"
        if "red_count" in li and "red_churned" in li
        else ""
    )
    out.print(
        f"health lights on the origins ({li.get('lit_share', float('nan')):.0%} of accounts "
        f"active or new, the rest lapsed): red {li['red_share']:.0%} of them{counted}, precision "
        f"{_share2(li['red_precision'])} recall {_share2(li['red_recall'])}; red+yellow "
        f"precision {_share2(li['red_yellow_precision'])} recall "
        f"{_share2(li['red_yellow_recall'])} (base rate {li['base_rate']:.2f}); churn ROC AUC "
        f"on them {li.get('lit_roc_auc', float('nan')):.3f} (the ranking's lights: the scorer "
        "also raises overdue accounts and open critical complaints: see the run's light rule)"
    )
    if "no_order_red_precision" in li and "contract_red_precision" in li:
        out.print(
            "  by churn definition: "
            + "; ".join(
                f"{name.replace('_', ' ')}: red precision {_share2(li[f'{name}_red_precision'])} "
                f"({li[f'{name}_red_count']:,.0f} rows)"
                for name in ("contract", "no_order")
            )
            + " (one red list, two populations: read each on its own)"
        )
    if np.isfinite(li.get("early_roc_auc", float("nan"))):
        out.print(
            f"early warning: on the accounts still within their typical gap ("
            f"{li['early_share']:.0%} of those lit, churn rate {li['early_churn_rate']:.2f}) "
            f"churn ROC AUC {li['early_roc_auc']:.3f}: the ranking before a silence shows it"
            + (
                f"; red precision among them {_share2(li.get('early_red_precision'))} "
                f"({li['early_red_count']:,.0f} "
                f"{'row' if li['early_red_count'] == 1 else 'rows'}; the red precision above "
                "also counts "
                "silences already under way)"
                if li.get("early_red_count")
                else ""
            )
        )
    for caution in about_lights:
        out.print(f"[yellow]caution:[/] {caution}")
    for kind, d in report.decisions.items():
        out.print(f"[bold]{kind}[/]: {d}")
    out.print(
        f"MLflow: run {report.run_id} in {report.tracking_uri} ({browse(report.tracking_uri)})"
    )


def _share2(x: float | None) -> str:
    """A precision or recall to two decimals; n/a where nothing was there to measure (NaN,
    or None once written to JSON)."""
    return f"{x:.2f}" if x is not None and np.isfinite(x) else "n/a"


def lights_split_line(split: dict[str, dict[str, Any]]) -> str:
    """The lights per churn definition in one line (the backtest's
    ``lights_by_churn_definition``): two populations in one red list, each with its own
    precision."""
    return "lights by churn definition: " + "; ".join(
        f"{name}: red precision {_share2(m.get('red_precision'))} "
        f"({float(m.get('red_per_week') or 0):.1f} red a week), red recall "
        f"{_share2(m.get('red_recall'))}"
        for name, m in split.items()
    )


def reds_silence_line(split: dict[str, Any]) -> str:
    """The backtest's ``reds_by_silence`` in one line ('' without it): how many correct reds
    were silences already under way, and the precision of the reds still within their
    rhythm, the list's early warnings."""
    if not split:
        return ""
    n, days = int(split.get("red_count") or 0), int(split.get("horizon_days") or 0)
    parts = []
    if silent := int(split.get("silent_count") or 0):
        parts.append(
            f"{silent:,} silent {days} days or more with no contract running (precision "
            f"{_share2(split.get('silent_precision'))})"
        )
    if late := int(split.get("late_count") or 0):
        parts.append(
            f"{late:,} past their typical gap between orders, judged by 'no order' (precision "
            f"{_share2(split.get('late_precision'))})"
        )
    early = int(split.get("early_count") or 0)
    rest = (
        f"; red precision of the {early:,} still within their rhythm, the list's early "
        f"warnings: {_share2(split.get('early_precision'))}"
        if early
        else "; none was still within its rhythm: the list foresaw nothing not already under way"
    )
    return (
        f"of the {n:,} red account-weeks, {' and '.join(parts)}: their silence was under way "
        f"when lit, and a red there counts as correct when it simply went on{rest}"
    )


def versions_lines(split: dict[str, dict[str, Any]]) -> list[str]:
    """The backtest's figures per churn model version (``by_churn_model_version``), a line
    each: how every version did on the weeks it scored, the comparison the training gate
    cannot make when a model is retrained within the horizon of its champion."""
    if not split:
        return []

    def auc(x: float | None) -> str:
        return f"{x:.3f}" if x is not None and np.isfinite(x) else "n/a"

    lines = ["by churn model version, each on the weeks it scored (the weeks differ):"]
    for version, m in split.items():
        weeks = int(m.get("weeks") or 0)
        span = m["first_week"] if weeks == 1 else f"{m['first_week']}..{m['last_week']}"
        rate = m.get("base_rate")
        lines.append(
            f"  v{version}: {weeks} {'week' if weeks == 1 else 'weeks'} ({span}), "
            f"{int(m.get('n') or 0):,} account-weeks, churn rate {_share2(rate)}; ROC AUC "
            f"{auc(m.get('roc_auc'))}, with a light {auc(m.get('lit_roc_auc'))}; red "
            f"precision {_share2(m.get('red_precision'))}, red recall "
            f"{_share2(m.get('red_recall'))}"
        )
    return lines


def browse(uri: str) -> str:
    """How to look at a tracking store: a server is opened in a browser; a file store with
    the MLflow UI over that very store (``make ui CONFIG=...`` does the same), from this
    environment's ``bin`` when ``mlflow`` is not on the PATH (a virtualenv not activated)."""
    if uri.startswith(("http://", "https://", "databricks")):
        return f"browse: {uri}"
    here = Path(sys.executable).parent / "mlflow"
    exe = "mlflow" if shutil.which("mlflow") or not here.exists() else str(here)
    return f"browse: {exe} ui --backend-store-uri '{uri}'"


def print_models(versions: list[VersionInfo], cfg: Config, out: Console) -> None:
    """`ka-ml models`: a table of the registered versions, or what to do when there are none."""
    names = " and ".join(f"'{n}'" for n in registry.model_kinds(cfg))
    where = registry.tracking_uri(cfg)
    if not versions:
        out.print(
            f"No models are registered yet ({names} in {where}). Train them with "
            "`ka-ml train` (or `make train`); `ka-ml models` then lists their versions.",
            soft_wrap=True,
        )
        return
    rows = [
        (
            v.name,
            v.version,
            ", ".join(f"[bold green]{a}[/]" if a == promotion.CHAMPION else a for a in v.aliases)
            or "-",
            v.created.strftime("%Y-%m-%d %H:%M") if v.created else "-",
            v.as_of[:10] or "-",
            v.run_id or "-",
            "  ".join(
                f"{k} {val:.3f}" for k, val in registry.key_metrics(v.kind, v.metrics).items()
            )
            or "-",
        )
        for v in versions
    ]
    # the name is what `ka-ml promote` takes and the run id the handle to MLflow: copied
    # from the terminal, so never wrapped nor cut. A table whose name and run id columns
    # leave the metrics too little room becomes one block per version.
    fixed = max(len(r[0]) for r in rows) + max(len(r[5]) for r in rows) + 3 * 8 + 8 + 10 + 16 + 10
    if out.width >= fixed + 24:
        table = Table()
        for header in ("model", "version"):
            table.add_column(header, no_wrap=True)
        table.add_column("aliases")
        table.add_column("created (UTC)")
        table.add_column("trained as of", no_wrap=True)
        table.add_column("run id", no_wrap=True)
        table.add_column("test metrics", overflow="fold")
        for row in rows:
            table.add_row(*row)
        out.print(table)
    else:
        for name, version, aliases, created, trained, run_id, metrics in rows:
            out.print(
                f"[bold]{name}[/] v{version}  {aliases}  created {created} UTC, trained as of "
                f"{trained}"
            )
            out.print(f"  run id {run_id}", no_wrap=True, overflow="ignore", crop=False)
            out.print(f"  test metrics: {metrics}")
    for name in registry.model_kinds(cfg):
        if not any(v.name == name for v in versions):
            out.print(f"no versions of '{name}' yet: train with `ka-ml train`", soft_wrap=True)
    if len({v.as_of for v in versions if v.as_of}) > 1:  # read as a comparison by a user
        out.print(
            "Test metrics of versions trained as of different dates come from different test "
            "origins: they are each version's own out-of-time estimate, not a comparison.",
            soft_wrap=True,
        )
    out.print(
        "`ka-ml score` uses the champions; promote another version by hand with "
        "`ka-ml promote NAME VERSION`.",
        soft_wrap=True,
    )


def print_promotion(done: ManualPromotion, cfg: Config, out: Console) -> None:
    """`ka-ml promote`: what changed, where it was recorded, and a config mismatch."""
    if not done.changed:
        out.print(f"{done.name} v{done.version} is already the champion; nothing changed.")
        return
    first, *rest = done.moves()
    out.print(
        f"{done.name} {first} ({'; '.join(rest)}). "
        f"Recorded in MLflow as run promote-{done.name}-v{done.version} ({done.run_id}).",
        soft_wrap=True,
    )
    if done.pair_note:
        out.print(f"  [yellow]note[/]: {done.pair_note}.", soft_wrap=True)
    if done.name not in registry.model_kinds(cfg):
        out.print(
            f"  [yellow]warning[/]: the config scores "
            f"{' and '.join(registry.model_kinds(cfg))}, not '{done.name}'.",
            soft_wrap=True,
        )
