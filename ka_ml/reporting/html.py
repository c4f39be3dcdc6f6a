"""The managers' report: one self-contained HTML file a manager understands in a minute.

The scorer hands over its scores frame (one row per account) and the run record; this
module turns them into ``report.html``: what the numbers mean, the portfolio at a glance,
the accounts that need attention this week, a sortable/filterable table and one card per
account with its reasons.

Why it is built this way:

- One file, no network: inline CSS and a few lines of inline JS, no CDN, no web fonts, so
  it can be mailed around and opened from ``file://`` offline.
- Safe with any data: account names, owners and reasons come from CRM exports, so every
  value goes through Jinja2 autoescaping, and no data is embedded in JavaScript at all;
  the table sorts and filters DOM rows by their ``data-*`` attributes.
- Computation stays here (pure, vectorised pandas), presentation in the template; the
  template only loops over rows and formats numbers for people.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from ka_ml.io import atomic_write_text

LIGHTS: tuple[str, ...] = ("red", "yellow", "green")
TIERS: tuple[str, ...] = ("A", "B", "C")
RISE_POINTS = 0.10  # default of report.risk_rise_points (the run record carries the config's)
ATTENTION_SHOWN = 25  # default of report.attention_rows
SCORECARD: tuple[tuple[str, str], ...] = (
    ("usage", "Usage"),
    ("complaints", "Complaints"),
    ("renewal_intent", "Renewal intent"),
    ("purchase_rhythm", "Purchase rhythm"),
)
DEPENDENCY_RESPONSE = "start a new-customer development plan"
TOP_DRIFT_FEATURES = 5
N_REASONS = 3
BAR_HALF = 80.0  # SVG reason chart: longest bar in px (bars grow left/right from the axis)
BAR_CENTER = BAR_HALF + 16.0  # the zero axis; 16 px on the left hold the reason numbers
_DIRECTION_SUFFIX = r"\s*\((?:raises|lowers) risk\)\s*$"
_WINDOW_COL = re.compile(r"^p_purchase_(\d+)d$")


# --------------------------------------------------------------------------- pure helpers


def _text(scores: pd.DataFrame, col: str) -> pd.Series:
    """A text column with missing values (NaN, None, pd.NA, absent column) as ''."""
    if col not in scores:
        return pd.Series("", index=scores.index, dtype="string")
    return scores[col].astype("string").fillna("")


def _num(scores: pd.DataFrame, col: str) -> pd.Series:
    """A float column, NaN where missing or absent."""
    if col not in scores:
        return pd.Series(np.nan, index=scores.index, dtype="float64")
    return pd.to_numeric(scores[col], errors="coerce").astype("float64")


def _dates(scores: pd.DataFrame, col: str) -> pd.Series:
    if col not in scores:
        return pd.Series(pd.NaT, index=scores.index, dtype="datetime64[us]")
    return pd.to_datetime(scores[col], errors="coerce")


def _flag(scores: pd.DataFrame, col: str) -> pd.Series:
    if col not in scores:
        return pd.Series(False, index=scores.index)
    return scores[col].astype("boolean").fillna(False).astype(bool)


def purchase_windows(scores: pd.DataFrame) -> list[int]:
    """The ``p_purchase_{k}d`` windows present in the frame, ascending (30/60/90 by default)."""
    found = (_WINDOW_COL.match(str(c)) for c in scores.columns)
    return sorted(int(m.group(1)) for m in found if m)


def is_first_run(scores: pd.DataFrame) -> bool:
    """No previous run to compare with: nobody has last week's light or probability."""
    return bool(
        _text(scores, "health_prev").eq("").all()
        and _num(scores, "churn_probability_prev").isna().all()
    )


def attention_flags(scores: pd.DataFrame, *, rise: float = RISE_POINTS) -> pd.DataFrame:
    """Why each account needs attention this week: it turned red, or its risk jumped.

    ``turned_red``: red now and not red last week (an account new to the list counts: it
    was not red before). ``rising``: churn probability up by at least ``rise`` (0.10 = 10
    points) since last week; unknown when there is no previous probability. Lapsed
    accounts (already lost) are never flagged, and a first run (no previous run at all)
    reports no changes.
    """
    health = _text(scores, "health")
    prev = _text(scores, "health_prev")
    change = _num(scores, "churn_probability") - _num(scores, "churn_probability_prev")
    first_run = is_first_run(scores)
    lit = _text(scores, "lifecycle").ne("lapsed") & ~pd.Series(first_run, index=scores.index)
    turned_red = health.eq("red") & prev.ne("red") & lit
    rising = change.ge(rise - 1e-9).fillna(False) & lit
    return pd.DataFrame(
        {
            "turned_red": turned_red.astype(bool),
            "rising": rising.astype(bool),
            "risk_change": change,
        },
        index=scores.index,
    )


def order_by_risk(scores: pd.DataFrame) -> pd.Index:
    """Row order used everywhere: revenue at risk desc, then probability desc, then id."""
    key = pd.DataFrame(
        {
            "risk": _num(scores, "revenue_at_risk").fillna(-1.0),
            "p": _num(scores, "churn_probability").fillna(-1.0),
            "id": _text(scores, "account_id"),
        }
    )
    return key.sort_values(["risk", "p", "id"], ascending=[False, False, True], kind="stable").index


def needs_attention(scores: pd.DataFrame, *, rise: float = RISE_POINTS) -> pd.DataFrame:
    """Accounts that turned red this week or whose risk rose ``rise`` or more, by revenue at risk.

    Returns the matching rows of ``scores`` plus ``turned_red``, ``rising`` and
    ``risk_change`` (probability points as a fraction; NaN without last week's score).
    """
    flags = attention_flags(scores, rise=rise)
    out = pd.concat([scores, flags], axis=1)
    out = out.loc[order_by_risk(scores)]
    return out[out["turned_red"] | out["rising"]]


def portfolio_summary(scores: pd.DataFrame, *, rise: float = RISE_POINTS) -> dict[str, Any]:
    """Accounts, revenue and revenue at risk per light and per ABC tier, plus alerts.

    Lights, tiers and revenue at risk cover the accounts still to keep (``active`` and
    ``new``); ``lifecycle`` counts every state and ``win_back`` sums the lapsed ones.
    ``concentration``: the top five accounts' share of revenue and the Herfindahl index
    (sum of squared revenue shares: 1 = one customer, 1/n = n equal ones).

    Pure and JSON-ready (plain ints/floats/str), so the same figures appear in the report
    and in the run record. Missing revenue counts as 0 in the sums.
    """
    frame = pd.DataFrame(
        {
            "light": _text(scores, "health"),
            "tier": _text(scores, "abc_tier"),
            "revenue": _num(scores, "revenue_365d").fillna(0.0),
            "at_risk": _num(scores, "revenue_at_risk").fillna(0.0),
            "expected": _num(scores, "expected_revenue_12m").fillna(0.0),
        }
    )
    total_revenue = float(frame["revenue"].sum())  # every account's last 365 days
    stage = _text(scores, "lifecycle")
    lapsed = stage.eq("lapsed")
    lifecycle = {str(k): int(v) for k, v in stage[stage.ne("")].value_counts().sort_index().items()}
    share = _num(scores, "revenue_share").fillna(0.0)
    top5 = float(share.nlargest(5).sum())
    hhi = float((share**2).sum())
    win_back = {
        "accounts": int(lapsed.sum()),
        "revenue_365d": float(frame.loc[lapsed.to_numpy(), "revenue"].sum()),
        "value": float(_num(scores, "win_back_value")[lapsed].fillna(0.0).sum()),
    }
    frame = frame[~lapsed.to_numpy()]  # lights and revenue at risk: accounts still to keep
    lights = [*LIGHTS, *sorted(set(frame["light"]) - set(LIGHTS))]
    tiers = [*TIERS, *sorted(set(frame["tier"]) - set(TIERS))]

    def totals(keys: list[str]) -> pd.DataFrame:
        agg = frame.groupby(keys, observed=True).agg(
            accounts=("revenue", "size"),
            revenue=("revenue", "sum"),
            revenue_at_risk=("at_risk", "sum"),
        )
        return agg

    def records(agg: pd.DataFrame) -> dict[str, dict[str, float | int]]:
        out = agg.astype({"accounts": "int64"}).to_dict("index")
        return {str(k): {str(c): _native(v) for c, v in row.items()} for k, row in out.items()}

    by_light = totals(["light"]).reindex(lights, fill_value=0)
    by_tier = totals(["tier"]).reindex(tiers, fill_value=0)
    cross = totals(["light", "tier"]).reindex(
        pd.MultiIndex.from_product([lights, tiers], names=["light", "tier"]), fill_value=0
    )
    # a 3 x 3 cross table: this loop runs over its cells, not over accounts
    cross_dict: dict[str, dict[str, dict[str, float | int]]] = {light: {} for light in lights}
    for row in cross.reset_index().to_dict("records"):
        cross_dict[str(row["light"])][str(row["tier"])] = {
            "accounts": int(row["accounts"]),
            "revenue": float(row["revenue"]),
            "revenue_at_risk": float(row["revenue_at_risk"]),
        }

    alert = _flag(scores, "dependency_alert")
    dep = pd.DataFrame(
        {
            "account_id": _text(scores, "account_id"),
            "name": _text(scores, "name"),
            "dependency_index": _num(scores, "dependency_index"),
            "revenue_share": _num(scores, "revenue_share"),
        }
    )[alert.to_numpy()].sort_values("dependency_index", ascending=False, kind="stable")
    dep_records = [
        {**{k: _native(v) for k, v in row.items()}, "response": DEPENDENCY_RESPONSE}
        for row in dep.to_dict("records")
    ]

    flags = attention_flags(scores, rise=rise)
    at_risk = float(frame["at_risk"].sum())
    expected = float(frame["expected"].sum())
    kept = float(frame["revenue"].sum())
    return {
        "n_accounts": len(scores),
        "n_lit": len(frame),
        "lifecycle": lifecycle,
        "win_back": win_back,
        "concentration": {"top5_revenue_share": top5, "hhi": hhi},
        "total_revenue": total_revenue,
        "revenue_at_risk": at_risk,
        "expected_revenue_12m": expected,
        # share of what is expected (forward revenue at risk), or of the last 365 days'
        # revenue for scores written before expected revenue existed
        "revenue_at_risk_share": at_risk / base if (base := expected or kept) > 0 else 0.0,
        "lights": records(by_light),
        "tiers": records(by_tier),
        "light_by_tier": cross_dict,
        "dependency_alerts": dep_records,
        "turned_red": int(flags["turned_red"].sum()),
        "rising": int(flags["rising"].sum()),
        "needs_attention": int((flags["turned_red"] | flags["rising"]).sum()),
    }


def _native(v: Any) -> Any:
    """numpy/pandas scalars to plain Python, missing to None (JSON-ready)."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


# ------------------------------------------------------------------- formatting for people


def _missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


def fmt_money(v: Any, unit: str = "") -> str:
    """1234567.8 -> '1,234,568' (no decimals); a one-character unit is a prefix ('€1,234')."""
    if _missing(v):
        return "–"
    amount = f"{float(v):,.0f}"
    if amount == "-0":
        amount = "0"
    if not unit:
        return amount
    return f"{unit}{amount}" if len(unit) == 1 else f"{amount} {unit}"


def fmt_pct(v: Any, decimals: int = 0) -> str:
    """0.623 -> '62%'; tiny but non-zero values say '<1%' rather than a misleading '0%'."""
    if _missing(v):
        return "–"
    x = float(v) * 100
    if decimals == 0 and 0 < x < 0.5:
        return "<1%"
    if decimals == 0 and 99.5 <= x < 100:
        return ">99%"
    return f"{x:,.{decimals}f}%"


def fmt_points(v: Any) -> str:
    """A probability change 0.124 -> '+12 pts' (empty when unknown)."""
    if _missing(v):
        return ""
    pts = round(float(v) * 100)
    return f"{pts:+d} pts" if pts else "±0 pts"


def fmt_count(v: Any) -> str:
    """12345 -> '12,345'."""
    return "–" if _missing(v) else f"{int(v):,}"


def fmt_num(v: Any, decimals: int = 2) -> str:
    return "–" if _missing(v) else f"{float(v):,.{decimals}f}"


def fmt_date(v: Any, missing: str = "open-ended") -> str:
    """A date as '14 Aug 2026'; NaT (beyond the model's range) as 'open-ended'."""
    if _missing(v):
        return missing
    d = pd.Timestamp(v)
    return f"{d.day} {d:%b %Y}"


def fmt_range(lo: Any, hi: Any) -> str:
    """The p10-p90 window: '1 Aug – 20 Sep 2026'; an open end says 'open-ended'."""
    if _missing(lo) and _missing(hi):
        return "open-ended"
    if _missing(hi):
        return f"{fmt_date(lo)} – open-ended"
    if _missing(lo):
        return f"until {fmt_date(hi)}"
    a, b = pd.Timestamp(lo), pd.Timestamp(hi)
    if a.year == b.year:
        return f"{a.day} {a:%b} – {fmt_date(b)}"
    return f"{fmt_date(a)} – {fmt_date(b)}"


def sort_num(v: Any) -> str:
    """A data-s sort key for numbers ('' = unknown, sorted last)."""
    return "" if _missing(v) else f"{float(v):.6g}"


def sort_date(v: Any) -> str:
    """A data-s sort key for dates; open-ended sorts after every real date."""
    return "9999-12-31" if _missing(v) else f"{pd.Timestamp(v):%Y-%m-%d}"


# ------------------------------------------------------------------------- the view model


def _account_view(scores: pd.DataFrame, rise: float = RISE_POINTS) -> pd.DataFrame:
    """One display row per account, ordered by revenue at risk (the table and card order).

    Computes everything the template shows (deltas, flags, reason texts without the
    trailing '(raises risk)', the SVG bar geometry) column-wise; the template only formats.
    """
    s = scores.loc[order_by_risk(scores)]
    flags = attention_flags(s, rise=rise)
    ids = _text(s, "account_id")
    name = _text(s, "name")
    v = pd.DataFrame(
        {
            "cid": "a" + pd.Series(np.arange(len(s)), index=s.index).astype("string"),
            "account_id": ids,
            "name": name.where(name.ne(""), ids),
            "named": name.ne(""),
            "owner": _text(s, "owner"),
            "tier": _text(s, "abc_tier"),
            "industry": _text(s, "industry"),
            "region": _text(s, "region"),
            "health": _text(s, "health"),
            "health_prev": _text(s, "health_prev"),
            "p": _num(s, "churn_probability"),
            "p_prev": _num(s, "churn_probability_prev"),
            "revenue": _num(s, "revenue_365d"),
            "at_risk": _num(s, "revenue_at_risk"),
            "share": _num(s, "revenue_share"),
            "dep": _num(s, "dependency_index"),
            "dep_alert": _flag(s, "dependency_alert"),
            "days_since": _num(s, "days_since_last_order"),
            "next": _dates(s, "expected_next_purchase_date"),
            "p10": _dates(s, "next_purchase_p10_date"),
            "p90": _dates(s, "next_purchase_p90_date"),
            "light_reason": _text(s, "light_reason"),
            "action": _text(s, "recommended_action"),
            "changes": _text(s, "changes"),
            "lifecycle": _text(s, "lifecycle"),
            "lifecycle_reason": _text(s, "lifecycle_reason"),
            "low_conf": _flag(s, "low_confidence"),
            "expected_rev": _num(s, "expected_revenue_12m"),
            "win_back": _num(s, "win_back_value"),
        }
    )
    for key, _label in SCORECARD:
        v[f"sc_{key}"] = _text(s, f"scorecard_{key}")
        v[f"sc_{key}_d"] = _text(s, f"scorecard_{key}_detail")
    v["sc_red"] = pd.concat([v[f"sc_{k}"].eq("red") for k, _ in SCORECARD], axis=1).any(axis=1)
    v = pd.concat([v, flags], axis=1)
    v["has_prev"] = v["risk_change"].notna()
    v["rank"] = v["health"].map({light: i for i, light in enumerate(LIGHTS)}).fillna(len(LIGHTS))
    for k in purchase_windows(s):
        v[f"pw{k}"] = _num(s, f"p_purchase_{k}d")
    windows = purchase_windows(s)
    v["p_back"] = _num(s, f"p_purchase_{max(windows)}d") if windows else np.nan

    shap = pd.DataFrame({k: _num(s, f"reason_{k}_shap") for k in range(1, N_REASONS + 1)})
    scale = shap.abs().max(axis=1).fillna(0.0)
    scale = scale.where(scale > 0, 1.0)
    for k in range(1, N_REASONS + 1):
        text = _text(s, f"reason_{k}").str.replace(_DIRECTION_SUFFIX, "", regex=True)
        direction = _text(s, f"reason_{k}_direction")
        derived = pd.Series(
            np.where(shap[k] > 0, "raises risk", np.where(shap[k] < 0, "lowers risk", "")),
            index=s.index,
        )
        width = (shap[k].abs() / scale * BAR_HALF).fillna(0.0).round(1)
        x = pd.Series(np.where(shap[k] > 0, BAR_CENTER, BAR_CENTER - width), index=s.index)
        v[f"r{k}"] = text
        v[f"r{k}_feature"] = _text(s, f"reason_{k}_feature")
        v[f"r{k}_shap"] = shap[k]
        v[f"r{k}_dir"] = direction.where(direction.ne(""), derived)
        v[f"r{k}_up"] = shap[k].gt(0)
        v[f"r{k}_w"] = _svg_number(width)
        v[f"r{k}_x"] = _svg_number(x)
    return v.reset_index(drop=True)


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
            found = ", ".join(sorted(_text(scores, col).unique().tolist()))
        if found:
            out[key] = str(found)
    return out


def _card_text(card: Any) -> str:
    """' (blend; out-of-time ROC AUC 0.741 vs RFM logistic regression 0.742, 3 origins)'."""
    if not isinstance(card, dict) or "family" not in card:
        return ""
    return (
        f" ({card['family']}; out-of-time ROC AUC {card['oot_roc_auc']:.3f} vs "
        f"{card['best_baseline']} {card['best_baseline_roc_auc']:.3f}, "
        f"{card['origins']} test origins)"
    )


def _fingerprint(run: dict[str, Any]) -> str:
    data = run.get("data")
    nested = data.get("fingerprint") if isinstance(data, dict) else None
    return str(run.get("data_fingerprint") or run.get("fingerprint") or nested or "")


def _feature_label(name: str) -> str:
    """The catalog's plain meaning of a feature code, or the code itself when unknown."""
    from ka_ml.features import catalog

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
    """Back-test figures as plain sentences (when the run has them)."""
    bt = run.get("backtest")
    if not isinstance(bt, dict) or not bt:
        return None
    sentences = []
    told: set[str] = set()
    precision, recall = bt.get("red_precision"), bt.get("red_recall")
    if isinstance(precision, int | float) and isinstance(recall, int | float):
        sentences.append(
            f"In the last out-of-time test, {fmt_pct(precision)} of the accounts flagged red "
            f"did churn, and the red flags caught {fmt_pct(recall)} of the accounts that churned."
        )
        told = {"red_precision", "red_recall"}
    items = []
    for key, val in bt.items():
        if key in told or isinstance(val, bool) or not isinstance(val, int | float | str):
            continue
        label = str(key).replace("red_yellow", "red+yellow").replace("_", " ")
        shown = fmt_pct(val, 0) if isinstance(val, float) and 0 <= val <= 1 else str(val)
        items.append({"label": label, "value": shown})
    return {"sentences": sentences, "figures": items}


def _cycle_accuracy(run: dict[str, Any]) -> str:
    """The purchase-cycle forecast's record in one sentence: from the backtest of past runs
    when there is one, else from the training run's out-of-time test (the model card)."""
    bt: dict[str, Any] = run.get("backtest") or {}
    card: dict[str, Any] = run.get("model_card") or {}
    for src, where in (
        (bt if isinstance(bt, dict) else {}, "in the backtest of past weekly runs"),
        (card if isinstance(card, dict) else {}, "in training's out-of-time test"),
    ):
        hit = src.get("interval_hit_rate", src.get("timing_coverage"))
        acc, maj = src.get("window_accuracy"), src.get("window_majority_accuracy")
        k = int(src.get("window_days") or 30)
        if not isinstance(hit, int | float):
            continue
        text = (
            f"Purchase cycle, {where}: the next order fell inside the predicted window "
            f"(p10–p90, 80% nominal) for {fmt_pct(hit)} of accounts"
        )
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
    if raw is None or _missing(raw):
        return "unknown date"
    try:
        return fmt_date(pd.Timestamp(raw))
    except (ValueError, TypeError):
        return str(raw)


def _context(
    scores: pd.DataFrame, run: dict[str, Any], title: str, max_accounts: int | None = None
) -> dict[str, Any]:
    summary_scores = scores
    if max_accounts is not None and len(scores) > max_accounts:
        # the table and cards show the accounts with the most revenue at risk; the portfolio
        # figures above them still cover every account
        scores = scores.loc[order_by_risk(scores)[:max_accounts]]
    rise = float(run.get("risk_rise_points") or RISE_POINTS)
    shown = int(run.get("attention_rows") or ATTENTION_SHOWN)
    view = _account_view(scores, rise)
    summary = portfolio_summary(summary_scores, rise=rise)
    first_run = bool(len(summary_scores)) and is_first_run(summary_scores)
    # a first run has no changes to report: its red accounts are this week's list
    attention = (
        view[view["health"].eq("red")] if first_run else view[view["turned_red"] | view["rising"]]
    )
    lapsed = view[view["lifecycle"].eq("lapsed")]
    win_back = lapsed.sort_values(["win_back", "p_back"], ascending=False, kind="stable")
    owners = sorted(set(view["owner"]) - {""})
    thresholds = run.get("thresholds") or {}
    return {
        "title": title,
        "as_of": _as_of(scores, run),
        "run_owner": str(run.get("owner") or ""),
        "horizon": int(run.get("horizon_days") or 90),
        "churn_definition": str(run.get("churn_definition") or ""),
        "red_at": thresholds.get("red"),
        "yellow_at": thresholds.get("yellow"),
        "models": _model_versions(scores, run),
        "fingerprint": _fingerprint(run),
        "generated_by": _generated_by(run),
        "drift": _drift(run),
        "warnings": [str(w) for w in run.get("warnings") or []],
        "backtest": _backtest(run),
        "cur": str(run.get("currency") or ""),
        "s": summary,
        # unknown lights/tiers ('' = missing) get a column and a filter option only when used
        "lights": [k for k, v in summary["lights"].items() if k in LIGHTS or v["accounts"]],
        "tiers": [k for k, v in summary["tiers"].items() if k in TIERS or v["accounts"]],
        "attention": attention.head(shown).to_dict("records"),
        "attention_more": max(len(attention) - shown, 0),
        "rise": rise,
        "first_run": first_run,
        "dependency_response": DEPENDENCY_RESPONSE,
        "win_back": win_back.head(int(run.get("win_back_rows") or shown)).to_dict("records"),
        "win_back_more": max(len(win_back) - int(run.get("win_back_rows") or shown), 0),
        "light_rule": str(run.get("light_rule") or ""),
        "risk_rule": str(run.get("revenue_at_risk_rule") or ""),
        "cycle": _cycle_accuracy(run),
        "scorecard": SCORECARD,
        "lifecycles": [k for k in ("active", "new", "lapsed") if k in summary["lifecycle"]],
        "accounts": view.to_dict("records"),
        "accounts_total": len(summary_scores),
        "windows": purchase_windows(scores),
        "owners": owners,
        "no_owner": bool(view["owner"].eq("").any()),
        "n_reasons": N_REASONS,
        "bar_center": f"{BAR_CENTER:g}",
        "svg_w": f"{BAR_CENTER + BAR_HALF + 4:g}",
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


__all__ = [
    "attention_flags",
    "needs_attention",
    "order_by_risk",
    "portfolio_summary",
    "purchase_windows",
    "render_report",
    "write_report",
]
