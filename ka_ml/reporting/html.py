"""The managers' report: one self-contained HTML file a manager understands in a minute.

The scorer hands over its scores frame (one row per account) and the run record; this
module turns them into ``report.html``: what the numbers mean, the portfolio at a glance,
the accounts that need attention this week, a sortable/filterable table and one card per
account with its reasons. It holds the report's context (the per-account display rows,
the run record told in sentences) and its rendering; the figures come from
:mod:`ka_ml.reporting.summary`, the formatting for people from
:mod:`ka_ml.reporting.formatting` (the template's filters).

Why it is built this way:

- One file, no network: inline CSS and a few lines of inline JS, no CDN, no web fonts, so
  it can be mailed around and opened from ``file://`` offline.
- Safe with any data: account names, owners and reasons come from CRM exports, so every
  value is escaped (Jinja2 autoescaping; the per-account rows and cards, built in Python
  by :mod:`ka_ml.reporting.account_html` for speed, use the same ``markupsafe.escape``),
  and no data is embedded in JavaScript at all; the table sorts and filters DOM rows by
  their ``data-*`` attributes.
- Computation stays here (pure, vectorised pandas), presentation in the template; the
  template only loops over rows and formats numbers for people.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from ka_ml.features import catalog
from ka_ml.io import atomic_write_text
from ka_ml.reporting import account_html
from ka_ml.reporting.columns import (
    N_REASONS,
    SCORECARD,
    date_col,
    flag_col,
    num_col,
    purchase_windows,
    text_col,
)
from ka_ml.reporting.formatting import (
    fmt_count,
    fmt_date,
    fmt_index,
    fmt_money,
    fmt_num,
    fmt_pct,
    fmt_points,
    fmt_range,
    is_missing,
    sort_date,
    sort_num,
)
from ka_ml.reporting.summary import (
    DEPENDENCY_RESPONSE,
    LIGHTS,
    RISE_POINTS,
    TIERS,
    attention_flags,
    is_first_run,
    lapsed_from_red,
    needs_attention_rows,
    no_change_note,
    order_by_risk,
    portfolio_summary,
    raised_by,
)
from ka_ml.scoring.lifecycle import win_back_chance
from ka_ml.scoring.light_change import UNCHANGED

ATTENTION_SHOWN = 25  # default of report.attention_rows
TOP_DRIFT_FEATURES = 5
BAR_HALF = 80.0  # SVG reason chart: longest bar in px (bars grow left/right from the axis)
BAR_CENTER = BAR_HALF + 16.0  # the zero axis; 16 px on the left hold the reason numbers
SVG_WIDTH = f"{BAR_CENTER + BAR_HALF + 4:g}"  # the reason chart's width, as the SVG says it
_DIRECTION_SUFFIX = r"\s*\((?:raises|lowers) risk\)\s*$"


# ------------------------------------------------------------------------- the view model


def _account_view(scores: pd.DataFrame, rise: float = RISE_POINTS) -> pd.DataFrame:
    """One display row per account, ordered by revenue at risk (the table and card order).

    Computes everything the template shows (deltas, flags, reason texts without the
    trailing '(raises risk)', the SVG bar geometry) column-wise; the template only formats.
    """
    s = scores.loc[order_by_risk(scores)]
    v = _account_columns(s)
    for key, _label in SCORECARD:
        v[f"sc_{key}"] = text_col(s, f"scorecard_{key}")
        v[f"sc_{key}_d"] = text_col(s, f"scorecard_{key}_detail")
    v["sc_red"] = pd.concat([v[f"sc_{k}"].eq("red") for k, _ in SCORECARD], axis=1).any(axis=1)
    v = pd.concat([v, attention_flags(s, rise=rise)], axis=1)
    v["raised_by"] = raised_by(text_col(s, "light_reason")).to_numpy()
    v["has_prev"] = v["risk_change"].notna()
    v["risk_unchanged"] = v["has_prev"] & (v["risk_change"].abs() < UNCHANGED)
    v["rank"] = v["health"].map({light: i for i, light in enumerate(LIGHTS)}).fillna(len(LIGHTS))
    windows = purchase_windows(s)
    for k in windows:
        v[f"pw{k}"] = num_col(s, f"p_purchase_{k}d")
    back = num_col(s, f"p_purchase_{max(windows)}d") if windows else pd.Series(np.nan, v.index)
    v["p_back"] = win_back_chance(back.to_numpy(float), v["p"].to_numpy(float))
    # a lapsed account without a win-back value: silent beyond what the model learnt, its
    # chance is not known (:func:`ka_ml.scoring.score.portfolio_columns`)
    unknown = (text_col(s, "lifecycle") == "lapsed") & num_col(s, "win_back_value").isna()
    v.loc[unknown.to_numpy(), "p_back"] = np.nan
    _add_reasons(v, s)
    return v.reset_index(drop=True)


def forecast_windows(scores: pd.DataFrame) -> list[int]:
    """The purchase windows that carry a forecast: none when the run had no timing model
    (its columns are empty), so the cards leave out "Order within"."""
    return [k for k in purchase_windows(scores) if scores[f"p_purchase_{k}d"].notna().any()]


def _account_columns(s: pd.DataFrame) -> pd.DataFrame:
    """The account's own columns under the template's names, missing values made uniform."""
    ids = text_col(s, "account_id")
    name = text_col(s, "name")
    return pd.DataFrame(
        {
            "cid": "a" + pd.Series(np.arange(len(s)), index=s.index).astype("string"),
            "account_id": ids,
            "name": name.where(name.ne(""), ids),
            "named": name.ne(""),
            "owner": text_col(s, "owner"),
            "tier": text_col(s, "abc_tier"),
            "industry": text_col(s, "industry"),
            "region": text_col(s, "region"),
            "health": text_col(s, "health"),
            "health_prev": text_col(s, "health_prev"),
            "lifecycle_prev": text_col(s, "lifecycle_prev"),
            "has_lifecycle_prev": pd.Series("lifecycle_prev" in s, index=s.index),
            "p": num_col(s, "churn_probability"),
            "p_prev": num_col(s, "churn_probability_prev"),
            "revenue": num_col(s, "revenue_365d"),
            "at_risk": num_col(s, "revenue_at_risk"),
            "share": num_col(s, "revenue_share"),
            "dep": num_col(s, "dependency_index"),
            "dep_alert": flag_col(s, "dependency_alert"),
            "days_since": num_col(s, "days_since_last_order"),
            "next": date_col(s, "expected_next_purchase_date"),
            "p10": date_col(s, "next_purchase_p10_date"),
            "p90": date_col(s, "next_purchase_p90_date"),
            "light_reason": text_col(s, "light_reason"),
            "action": text_col(s, "recommended_action"),
            "changes": text_col(s, "changes"),
            "lifecycle": text_col(s, "lifecycle"),
            "lifecycle_reason": text_col(s, "lifecycle_reason"),
            "low_conf": flag_col(s, "low_confidence"),
            # its churn is its contract ending unrenewed, not a missing order: the card says
            # so beside "Order within 90 days", which then need not add up with it
            "by_contract": text_col(s, "churn_definition").eq("contract"),
            "expected_rev": num_col(s, "expected_revenue_12m"),
            "win_back": num_col(s, "win_back_value"),
        }
    )


def _add_reasons(v: pd.DataFrame, s: pd.DataFrame) -> None:
    """The reasons' texts, directions and SVG bars (scaled to each account's largest)."""
    shap = pd.DataFrame({k: num_col(s, f"reason_{k}_shap") for k in range(1, N_REASONS + 1)})
    scale = shap.abs().max(axis=1).fillna(0.0)
    scale = scale.where(scale > 0, 1.0)
    for k in range(1, N_REASONS + 1):
        text = text_col(s, f"reason_{k}").str.replace(_DIRECTION_SUFFIX, "", regex=True)
        direction = text_col(s, f"reason_{k}_direction")
        derived = pd.Series(
            np.where(shap[k] > 0, "raises risk", np.where(shap[k] < 0, "lowers risk", "")),
            index=s.index,
        )
        width = (shap[k].abs() / scale * BAR_HALF).fillna(0.0).round(1)
        x = pd.Series(np.where(shap[k] > 0, BAR_CENTER, BAR_CENTER - width), index=s.index)
        v[f"r{k}"] = text
        v[f"r{k}_feature"] = text_col(s, f"reason_{k}_feature")
        v[f"r{k}_shap"] = shap[k]
        v[f"r{k}_dir"] = direction.where(direction.ne(""), derived)
        v[f"r{k}_up"] = shap[k].gt(0)
        v[f"r{k}_w"] = _svg_number(width)
        v[f"r{k}_x"] = _svg_number(x)


# ------------------------------------------------------------- the run record in sentences


def _svg_number(values: pd.Series) -> pd.Series:
    """Coordinates as short text: 80.0 -> '80', 54.94 -> '54.9' (keeps the file small)."""
    return values.round(1).astype("string").str.removesuffix(".0")


def _model_versions(scores: pd.DataFrame, run: dict[str, Any]) -> dict[str, str]:
    """Model versions from the run record (``models``), else from the scores' columns."""
    models = run.get("models") or run.get("model_versions")
    if isinstance(models, dict) and models:
        out = {str(k): str(val) for k, val in models.items()}
        if "churn" in out:
            out["churn"] += _card_text(run.get("model_card"))
        return out
    out = {}
    for key, col in (("churn", "churn_model_version"), ("timing", "timing_model_version")):
        found = run.get(col)
        if found is None and col in scores and len(scores):
            found = ", ".join(sorted(text_col(scores, col).unique().tolist()))
        if found:
            out[key] = str(found)
    return out


def _card_text(card: Any) -> str:
    """' (blend, +0.0021 ROC AUC over lightgbm; out-of-time ROC AUC 0.741 vs RFM logistic
    regression 0.742, 3 test origins)': the family chosen on the origins and by how much (the
    blend is kept when another family ranks higher by less than training's noise threshold:
    ', lightgbm ranked 0.0004 higher: within noise'). Cards written before the runner-up was
    recorded name the family only."""
    if not isinstance(card, dict) or "family" not in card:
        return ""
    margin, runner_up = card.get("family_margin"), card.get("family_runner_up")
    won_by = ""
    if runner_up and isinstance(margin, (int, float)) and math.isfinite(margin):
        won_by = (
            f", {margin:+.4f} ROC AUC over {runner_up}"
            if margin >= 0
            else f", {runner_up} ranked {-margin:.4f} higher: within noise"
        )
    test = "ROC AUC on held-out accounts" if card.get("test") else "out-of-time ROC AUC"
    rough = ""
    if card.get("few_test_accounts"):
        rough += f", only {card['few_test_accounts']} accounts: rough"
    if isinstance(card.get("expected_roc_auc"), (int, float)):
        rough += (
            f"; the accounts scored at training looked unlike those on the test origins: about "
            f"{card['expected_roc_auc']:.3f} expected on them"
        )
    # beside the trust sentence's figure on the accounts that get a light: this one pools
    # every test row
    pooled = ", lapsed accounts included" if _share(card.get("lit_roc_auc")) is not None else ""
    return (
        f" ({card['family']}{won_by}; {test} {card['oot_roc_auc']:.3f} vs "
        f"{card['best_baseline']} {card['best_baseline_roc_auc']:.3f}, "
        f"{card['origins']} test {catalog.plural(card['origins'], 'origin')}{pooled}{rough})"
    )


def _fingerprint(run: dict[str, Any]) -> str:
    data = run.get("data")
    nested = data.get("fingerprint") if isinstance(data, dict) else None
    return str(run.get("data_fingerprint") or run.get("fingerprint") or nested or "")


def _feature_label(name: str) -> str:
    """The catalog's plain meaning of a feature code, or the code itself when unknown."""
    try:
        return catalog.get(name).meaning
    except KeyError:
        return name


def _drift(run: dict[str, Any]) -> dict[str, Any] | None:
    drift = run.get("drift")
    if not isinstance(drift, dict) or not drift.get("banner"):
        return None
    feats = [f for f in drift.get("features") or [] if isinstance(f, dict) and "feature" in f]
    feats = sorted(feats, key=lambda f: -float(f.get("psi") or 0.0))[:TOP_DRIFT_FEATURES]
    return {
        "message": str(
            drift.get("message") or "The input data has drifted from the training data."
        ),
        "features": [
            {
                "feature": str(f["feature"]),
                "label": _feature_label(str(f["feature"])),
                "psi": f.get("psi"),
            }
            for f in feats
        ],
    }


def _backtest(run: dict[str, Any]) -> dict[str, Any] | None:
    """The backtest of past weekly scores (``ka-ml backtest``, not training's out-of-time
    test) in a few plain sentences: how the red and yellow lights turned out, how well the
    probabilities rank and are calibrated (ROC AUC and Brier score as decimals, as a data
    scientist reads them), and the verdict. The purchase-cycle figures are said in the
    purchase-cycle sentence (:func:`_cycle_accuracy`), never twice; no record key is shown
    by its name."""
    bt = run.get("backtest")
    if not isinstance(bt, dict) or not bt:
        return None
    sentences = []
    weeks, rows = _count(bt.get("weeks")), _count(bt.get("account_weeks"))
    scope = ", ".join(
        part
        for part in (
            f"{weeks} {'week' if weeks == 1 else 'weeks'}" if weeks else "",
            f"{rows:,} account-weeks" if rows else "",
        )
        if part
    )
    where = f"In the backtest of past weekly scores{f' ({scope})' if scope else ''}"
    precision, recall = _share(bt.get("red_precision")), _share(bt.get("red_recall"))
    if precision is not None and recall is not None:
        ceiling = _share(bt.get("red_recall_ceiling"))
        capped = (
            f" (with that many red accounts, at most {fmt_pct(ceiling)} could be)"
            if ceiling is not None and ceiling < 1
            else ""
        )
        both = _share(bt.get("red_yellow_recall"))
        wider = f"; red or yellow caught {fmt_pct(both)}" if both is not None else ""
        sentences.append(
            f"{where}, {fmt_pct(precision)} of the accounts lit red did churn (as defined "
            f"above) within the horizon, and red caught {fmt_pct(recall)} of the accounts "
            "that churned"
            f"{capped}{wider}."
        )
        under_way = (_count(bt.get("red_silent_count")) or 0) + (
            _count(bt.get("red_late_count")) or 0
        )
        if under_way:
            early = _share(bt.get("red_precision_early"))
            k = _count(bt.get("red_early_count")) or 0
            foresaw = (
                f"; of the {k:,} still within their rhythm, {fmt_pct(early)} churned"
                if early is not None and k
                else ""
            )
            of = f"the {n:,}" if (n := _count(bt.get("red_count"))) else "those"
            sentences.append(
                f"{under_way:,} of {of} red account-weeks were silences already under way "
                "when lit (past the account's usual gap between orders, or silent the whole "
                "horizon), counted as correct when the silence went on"
                + (f"{foresaw}: the list's early warnings." if foresaw else ".")
            )
        where = "In the same backtest"
    quality = []
    if (auc := _share(bt.get("roc_auc"))) is not None:
        lit = _share(bt.get("lit_roc_auc"))
        among = (
            f" over every scored account and {lit:.3f} over those that had a light (lapsed "
            "ones, already lost, left out)"
            if lit is not None and round(lit, 3) != round(auc, 3)
            else ""
        )
        quality.append(f"ROC AUC {auc:.3f}{among} (0.5 is chance, 1 a perfect ranking)")
    if (brier := _share(bt.get("brier"))) is not None:
        quality.append(f"Brier score {brier:.3f} (lower is better)")
    if quality:
        sentences.append(f"{where}, the churn probabilities scored {' and '.join(quality)}.")
    verdict = bt.get("recommendation")
    if isinstance(verdict, str) and verdict.strip():
        text = verdict.strip()
        sentences.append(f"Verdict: {text[:1].lower()}{text[1:]}")
    return {"sentences": sentences} if sentences else None


def _share(value: Any) -> float | None:
    """A figure from the record, when it is one (not a flag, not NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and value == value else None


# the p10-p90 interval, as a manager reads it
WINDOW_WORDS = "the predicted window (the dates meant to hold 8 in 10 next orders)"


def _backtest_cycle(bt: dict[str, Any]) -> str:
    """The interval record of past weekly runs, with its denominators: dated windows judged,
    open-ended ones apart (they can only fail on their lower end)."""
    hit, n = bt.get("interval_hit_rate"), _count(bt.get("interval_n"))
    total, opened = _count(bt.get("interval_windows")), _count(bt.get("interval_open"))
    if n is None or total is None or opened is None:  # a backtest written before the counts
        if not isinstance(hit, int | float):
            return ""
        return (
            f"the next order fell inside {WINDOW_WORDS} for "
            f"{fmt_pct(hit)} of the account-weeks whose outcome was known"
        )
    parts = []
    if isinstance(hit, int | float) and n:
        parts.append(
            f"of the {n:,} account-weeks with a dated window (the dates meant to hold 8 in 10 "
            f"next orders) whose outcome is known, the next order fell inside it for "
            f"{fmt_pct(hit)}"
        )
    if opened:
        text = (
            f"{opened:,} of {total:,} windows were open-ended (no end date: "
            "later than the model looks ahead), which only the early side can prove wrong"
        )
        ordered, held = _count(bt.get("interval_open_ordered")), bt.get("interval_open_not_early")
        if ordered and isinstance(held, int | float):
            text += (
                f": of the {ordered:,} of those accounts that ordered, {fmt_pct(held)} not "
                "before the window's start"
            )
        parts.append(text)
    return "; ".join(parts)


def _card_cycle(card: dict[str, Any]) -> str:
    """The interval record of training's test: on the rows whose outcome is known and, when
    recorded, completed for the rows the follow-up cut short (what training judges)."""
    hit = card.get("timing_coverage")
    if not isinstance(hit, int | float):
        return ""
    n, done = _count(card.get("timing_coverage_n")), card.get("timing_coverage_completed")
    opened, ahead = card.get("timing_open_share"), card.get("timing_learnt_days")
    # how far the timing model dates (its learnt range), when the card records it
    looks = (
        f"the {ahead:,.0f} days the model looks ahead"
        if isinstance(ahead, int | float) and ahead > 0
        else "the time the model looks ahead"
    )
    if isinstance(done, int | float):
        text = (
            f"the next order fell inside {WINDOW_WORDS} for "
            f"{fmt_pct(done)} of next orders within {looks} (orders the "
            f"follow-up did not reach estimated from the forecast; {fmt_pct(hit)} of the "
            f"{f'{n:,} ' if n else ''}account-weeks whose next order was seen or is overdue)"
        )
    else:
        text = (
            f"the next order fell inside {WINDOW_WORDS} for "
            f"{fmt_pct(hit)} of the {f'{n:,} ' if n else ''}account-weeks whose next order was "
            "seen or is overdue"
        )
    if isinstance(opened, int | float) and opened > 0:
        text += f"; {fmt_pct(opened)} of windows were open-ended (no end date: later than {looks})"
    return text


def ranking_record(card: Any) -> str:
    """The churn ranking's out-of-time ROC AUC in a manager's words: the chance that a
    customer who then churned was ranked above one who did not ("ka_ml_churn v1 (lightgbm,
    +0.0073 ROC AUC over blend; out-of-time ROC AUC 0.883 ...)" in the header meant nothing
    to a key-account manager; "who then left" overstated it where churn is 90 days without
    an order, which an annual buyer does every year). On the accounts that get a light when
    the card has that figure (a subscription portfolio read "99 times in 100" pooled over its
    lapsed accounts, where the lit ones ranked at 0.96). '' without a model card."""
    if not isinstance(card, dict):
        return ""
    lit = _share(card.get("lit_roc_auc")) is not None
    key = "lit_" if lit else ""  # cards from before the lit figures: the pooled ones
    auc = _share(card.get("lit_roc_auc" if lit else "oot_roc_auc"))
    base = _share(card.get(f"{key}best_baseline_roc_auc"))
    if auc is None or math.isinf(auc):
        return ""
    where = (
        "on accounts held out from training"
        if card.get("test")
        else f"on {card.get('origins') or 'several'} past dates it had not learnt from"
    )
    among = ", among the accounts that get a light (lapsed ones left out)" if lit else ""
    ranked = (
        f"tested {where}{among}, the churn model ranked a customer who then churned (as "
        f"defined above) above one who did not {round(100 * auc)} times in 100"
    )
    if base is not None and math.isfinite(base) and card.get(f"{key}best_baseline"):
        ranked += f" (the best simple rule, {card[f'{key}best_baseline']}: {round(100 * base)})"
    ranked += "; 50 would be a coin toss."
    back, days = _share(card.get("label_return_share")), _count(card.get("label_return_days"))
    horizon = _count(card.get("label_horizon_days"))
    if back is None or not days or not horizon:
        return f"How far to trust the ranking: {ranked}"
    returned = (
        f"{fmt_pct(back)} of the accounts that went {horizon} days without an order ordered "
        f"again within the {days} days after"
    )
    if back > 0.5:
        # most "churn" came back: what red means comes before how well it is foreseen (a
        # distributor's managers read "91 times in 100" first, then called pauses)
        return (
            f"How far to trust the ranking: in the training data {returned}, so a red light "
            f"here more often marks a pause than a lost customer. The ranking: {ranked}"
        )
    return (
        f"How far to trust the ranking: {ranked} In the training data, {returned}: a red "
        "light often marks a pause, not a lost customer."
    )


def _cycle_accuracy(run: dict[str, Any]) -> str:
    """The purchase-cycle forecast's record in one sentence: from the backtest of past runs
    when there is one, else from the training run's out-of-time test (the model card). Each
    figure says its denominator: the interval is judged where the outcome is known, and an
    open-ended window (p90 beyond the model's range) is no hit."""
    bt: dict[str, Any] = run.get("backtest") or {}
    card: dict[str, Any] = run.get("model_card") or {}
    bt = bt if isinstance(bt, dict) else {}
    card = card if isinstance(card, dict) else {}
    for src, where, interval in (
        (bt, "in the backtest of past weekly runs", _backtest_cycle(bt)),
        (
            card,
            "in training's out-of-time test"
            if not card.get("test")
            else "in training's test on held-out accounts",
            _card_cycle(card),
        ),
    ):
        if not interval:
            continue
        acc, maj = src.get("window_accuracy"), src.get("window_majority_accuracy")
        k = int(src.get("window_days") or 30)
        text = f"Purchase cycle, {where}: {interval}"
        if isinstance(acc, int | float) and isinstance(maj, int | float):
            text += (
                f'; "order within {k} days or not" was right for {fmt_pct(acc)} '
                f"(always giving the most common answer: {fmt_pct(maj)})"
            )
        return text + "."
    return ""


def _generated_by(run: dict[str, Any]) -> str:
    gen = run.get("generated_by")
    if isinstance(gen, dict):
        return " · ".join(f"{k} {val}" for k, val in gen.items())
    return str(gen or "")


def _as_of(scores: pd.DataFrame, run: dict[str, Any]) -> str:
    raw = run.get("as_of")
    if raw is None and "as_of" in scores and len(scores):
        raw = pd.to_datetime(scores["as_of"]).max()
    if raw is None or is_missing(raw):
        return "unknown date"
    try:
        return fmt_date(pd.Timestamp(raw))
    except (ValueError, TypeError):
        return str(raw)


# ------------------------------------------------------------------------- the context


def _layout(shown: pd.DataFrame, run: dict[str, Any]) -> account_html.Layout:
    return account_html.Layout(
        rise=float(run.get("risk_rise_points") or RISE_POINTS),
        currency=str(run.get("currency") or ""),
        windows=tuple(forecast_windows(shown)),
        svg_w=SVG_WIDTH,
        bar_center=f"{BAR_CENTER:g}",
        dependency_response=DEPENDENCY_RESPONSE,
        owner_column=not run.get("owner"),  # an owner's own report: their name on every row
    )


def _context(
    scores: pd.DataFrame,
    run: dict[str, Any],
    title: str,
    max_accounts: int | None = None,
) -> dict[str, Any]:
    """Everything the template shows: the run, the portfolio (every account) and the
    accounts listed (at most ``max_accounts``, most revenue at risk first): only those get
    a table row and a card built."""
    shown = scores
    if max_accounts is not None and len(scores) > max_accounts:
        # the table and cards show the accounts with the most revenue at risk; the portfolio
        # figures above them still cover every account
        shown = scores.loc[order_by_risk(scores)[:max_accounts]]
    rise = float(run.get("risk_rise_points") or RISE_POINTS)
    summary = portfolio_summary(scores, rise=rise)
    first_run = bool(len(scores)) and is_first_run(scores)
    view = _account_view(shown, rise)
    layout = _layout(shown, run)
    rows, cards = account_html.build(view, layout).render(
        view["account_id"].tolist(), view["cid"].tolist()
    )
    return {
        "title": title,
        "as_of": _as_of(shown, run),
        "models": _model_versions(shown, run),
        **_run_context(run),
        **_portfolio_context(summary, len(scores)),
        **_lists_context(view, run, first_run),
        "accounts_shown": len(view),
        "any_prev": bool(view["has_prev"].any()),
        "account_rows": Markup(rows),
        "account_cards": Markup(cards),
        "rise": rise,
        "first_run": first_run,
        "no_change": no_change_note(summary["last_run"]),
        "windows": list(layout.windows),
        "back_days": max(layout.windows, default=run.get("horizon_days")),
        **_layout_context(),
    }


def _run_context(run: dict[str, Any]) -> dict[str, Any]:
    """What the run record tells: owner, rules, thresholds, models' provenance, warnings."""
    thresholds = run.get("thresholds") or {}
    return {
        "run_owner": str(run.get("owner") or ""),
        "horizon": int(run.get("horizon_days") or 90),
        "churn_definition": str(run.get("churn_definition") or ""),
        "red_at": thresholds.get("red"),
        "yellow_at": thresholds.get("yellow"),
        "fingerprint": _fingerprint(run),
        "generated_by": _generated_by(run),
        "drift": _drift(run),
        "in_sample": str((run.get("in_sample") or {}).get("message") or ""),
        "model_notes": [str(n) for n in run.get("model_notes") or []],
        "warnings": [str(w) for w in run.get("warnings") or []],
        # folded to one line unless the data is stale (which is news to a manager): a
        # backtest's weeks opened with six long notes that pushed the summary down
        "warnings_open": bool(run.get("freshness")),
        "backtest": _backtest(run),
        "cur": str(run.get("currency") or ""),
        # accounts without an owner, as the digests and e-mails call them
        "unassigned": str(run.get("unassigned_label") or "(no owner)"),
        "light_rule": str(run.get("light_rule") or ""),
        "risk_rule": str(run.get("revenue_at_risk_rule") or ""),
        "cycle": _cycle_accuracy(run),
        "trust": ranking_record(run.get("model_card")),
    }


def _portfolio_context(summary: dict[str, Any], accounts_total: int) -> dict[str, Any]:
    """The portfolio figures and the lights, tiers and lifecycle states they show."""
    return {
        "s": summary,
        # unknown lights/tiers ('' = missing) get a column and a filter option only when used
        "lights": [k for k, v in summary["lights"].items() if k in LIGHTS or v["accounts"]],
        "tiers": [k for k, v in summary["tiers"].items() if k in TIERS or v["accounts"]],
        "lifecycles": [k for k in ("active", "new", "lapsed") if k in summary["lifecycle"]],
        "accounts_total": accounts_total,
        "dependency_response": DEPENDENCY_RESPONSE,
    }


def _lists_context(view: pd.DataFrame, run: dict[str, Any], first_run: bool) -> dict[str, Any]:
    """The attention and win-back lists (capped, with how many more), the accounts red last
    week that have lapsed since (named above the win-back list, which ranks by value), and
    every account."""
    shown = int(run.get("attention_rows") or ATTENTION_SHOWN)
    win_back_shown = int(run.get("win_back_rows") or shown)
    # a first run has no changes to report: its red accounts are this week's list
    attention = view[view["health"].eq("red")] if first_run else view[needs_attention_rows(view)]
    lapsed = view[view["lifecycle"].eq("lapsed")]
    win_back = lapsed.sort_values(["win_back", "p_back"], ascending=False, kind="stable")
    lapsed_red = win_back[lapsed_from_red(win_back).to_numpy()]
    return {
        "attention": attention.head(shown).to_dict("records"),
        "attention_more": max(len(attention) - shown, 0),
        "win_back": win_back.head(win_back_shown).to_dict("records"),
        "win_back_more": max(len(win_back) - win_back_shown, 0),
        "lapsed_red": lapsed_red.head(win_back_shown).to_dict("records"),
        "owners": sorted(set(view["owner"]) - {""}),
        "no_owner": bool(view["owner"].eq("").any()),
    }


def _layout_context() -> dict[str, Any]:
    """The template's fixed layout: scorecard labels, reason count, SVG chart geometry."""
    return {
        "scorecard": SCORECARD,
        "n_reasons": N_REASONS,
        "bar_center": f"{BAR_CENTER:g}",
        "svg_w": SVG_WIDTH,
    }


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ka_ml", "reporting/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        money=fmt_money,
        pct=fmt_pct,
        pts=fmt_points,
        num=fmt_num,
        index=fmt_index,
        count=fmt_count,
        date=fmt_date,
        daterange=fmt_range,
        sn=sort_num,
        sd=sort_date,
    )
    return env


def render_report(
    scores: pd.DataFrame,
    run: dict[str, Any],
    *,
    title: str = "Key-account health",
    max_accounts: int | None = None,
) -> str:
    """The report as one self-contained HTML document (see the module docstring).

    ``max_accounts`` caps the account table and cards (most revenue at risk first) so the
    file stays readable for very large portfolios; the summary covers every account.
    """
    ctx = _context(scores, run, title, max_accounts)
    return _environment().get_template("report.html.j2").render(**ctx)


def write_report(
    scores: pd.DataFrame,
    run: dict[str, Any],
    path: Path,
    *,
    title: str = "Key-account health",
    max_accounts: int | None = None,
) -> Path:
    """Render and write ``report.html`` atomically (whole or not at all)."""
    html = render_report(scores, run, title=title, max_accounts=max_accounts)
    return atomic_write_text(Path(path), html)


__all__ = ["render_report", "write_report"]
