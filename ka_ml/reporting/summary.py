"""The portfolio's numbers: which accounts need attention this week, in which order, and
the portfolio at a glance (per light, per ABC tier, lifecycle, concentration, alerts).

Pure pandas in, plain dicts or frames out, with nothing about how they are shown: the
report, the spreadsheet, the digests, the run record and the read API's ``/portfolio``
all take their figures from here, so every output counts the same accounts the same way.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ka_ml.reporting.columns import flag_col, num_col, text_col
from ka_ml.reporting.formatting import fmt_date, to_native
from ka_ml.scoring.health import QUIET_WORDS, RULE_PREFIXES
from ka_ml.scoring.score_history import A_WEEK_DAYS

LIGHTS: tuple[str, ...] = ("red", "yellow", "green")
TIERS: tuple[str, ...] = ("A", "B", "C")
RISE_POINTS = 0.10  # default of report.risk_rise_points (the run record carries the config's)
DEPENDENCY_RESPONSE = "start a new-customer development plan"

Totals = dict[str, dict[str, float | int]]


# --------------------------------------------------------------------------- attention


def is_first_run(scores: pd.DataFrame) -> bool:
    """No previous run to compare with: nobody has last week's light or probability."""
    return bool(
        text_col(scores, "health_prev").eq("").all()
        and num_col(scores, "churn_probability_prev").isna().all()
    )


def attention_flags(scores: pd.DataFrame, *, rise: float = RISE_POINTS) -> pd.DataFrame:
    """Why each account needs attention this week: it turned red, or its risk jumped.

    ``turned_red``: red now and not red last week (an account new to the list counts: it
    was not red before). ``back_red``: red now and lapsed last week: it ordered again, so
    its risk usually fell (82% to 41%), and it is no new red but a customer back and still
    at risk; listed apart, never in ``turned_red``. ``rising``: churn probability up by at
    least ``rise`` (0.10 = 10 points) since last week; unknown when there is no previous
    probability; not for an account the rhythm or season rule holds unlit (its rise is its
    usual quiet spell: a food wholesaler's "Needs attention" listed 44 green beer gardens
    closing for the winter, "churn probability 91%, but this is its quiet season").
    ``raised``: green last week and raised to yellow by a rule this week (renewal due,
    overdue, an open critical complaint). Lapsed accounts (already lost) are never flagged,
    and a first run (no previous run at all) reports no changes.
    """
    health = text_col(scores, "health")
    prev = text_col(scores, "health_prev")
    change = num_col(scores, "churn_probability") - num_col(scores, "churn_probability_prev")
    first_run = is_first_run(scores)
    lit = text_col(scores, "lifecycle").ne("lapsed") & ~pd.Series(first_run, index=scores.index)
    new_red = health.eq("red") & prev.ne("red") & lit
    back_red = new_red & text_col(scores, "lifecycle_prev").eq("lapsed")
    reason = text_col(scores, "light_reason")
    quiet = pd.Series(False, index=scores.index)
    for words in QUIET_WORDS:
        quiet |= reason.str.contains(words, regex=False)
    rising = change.ge(rise - 1e-9).fillna(False) & lit & ~quiet
    # green last week, yellow now by a rule (renewal due, overdue, a complaint): the early
    # warning a rule exists for; a lab distributor's lost tenders turned yellow 85 days
    # ahead as "renewal due" and reached no attention list
    raised = health.eq("yellow") & prev.eq("green") & reason.str.startswith(RAISED_YELLOW) & lit
    return pd.DataFrame(
        {
            "turned_red": (new_red & ~back_red).astype(bool),
            "back_red": back_red.astype(bool),
            "rising": rising.astype(bool),
            "raised": raised.astype(bool),
            "risk_change": change,
        },
        index=scores.index,
    )


RAISED_YELLOW = "raised to yellow: "


def needs_attention_rows(flags: pd.DataFrame) -> pd.Series:
    """The rows of :func:`attention_flags` that need attention this week: turned red, back
    from lapsed still red, risk up, or raised to yellow by a rule."""
    return flags["turned_red"] | flags["back_red"] | flags["rising"] | flags["raised"]


def raised_by(reason: pd.Series) -> pd.Series:
    """The rule that raised a light, from its reason: "raised to yellow: renewal due:
    contract ends in 13 days ..." -> "renewal due" ('' where no rule raised it)."""
    text = reason.astype("string").fillna("")
    rest = text.str.removeprefix(RAISED_YELLOW)
    name = rest.str.split(r"[:(]", n=1, regex=True).str[0].str.strip()
    return name.where(text.str.startswith(RAISED_YELLOW), "")


def lapsed_from_red(scores: pd.DataFrame) -> pd.Series:
    """Lapsed this week and red last week: a loss the red light had warned of. Lapsed
    accounts carry no light, so no attention flag, "no longer red" list or light count
    catches them; told apart from the win-back list, which ranks every lapsed account by
    its value (a hugo.keller digest: Alpbridge B.V., red on 1 Oct and lapsed on 8 Oct, was
    named nowhere, its win-back value too small for the list's first ten)."""
    return (
        text_col(scores, "lifecycle").eq("lapsed") & text_col(scores, "health_prev").eq("red")
    ).astype(bool)


def lowest_lit(scores: pd.DataFrame) -> dict[str, float | int | None]:
    """This run's realised cuts: the lowest churn probability the ranking made red, and
    yellow (None where it made none). In budget mode these, not a fixed threshold, say
    where the lights fell this week. Lights set by a rule instead (raised to yellow when
    overdue or on an open critical complaint, kept by hysteresis: ``light_reason``) sit
    below the cut by design; they are counted (``red_by_rule``, ``yellow_by_rule``), not
    taken for the cut (a "lowest yellow" of 2% beside a 10% floor read as a broken floor)."""
    health = text_col(scores, "health")
    p = num_col(scores, "churn_probability")
    by_rule = text_col(scores, "light_reason").str.startswith(RULE_PREFIXES)
    out: dict[str, float | int | None] = {}
    for light in ("red", "yellow"):
        ranked = p[health.eq(light) & ~by_rule].dropna()
        out[f"lowest_{light}_probability"] = float(ranked.min()) if len(ranked) else None
        out[f"{light}_by_rule"] = int((health.eq(light) & by_rule).sum())
    return out


RISK_ORDER = ("revenue_at_risk", "churn_probability", "account_id")  # what orders by risk


def order_by_risk(scores: pd.DataFrame) -> pd.Index:
    """Row order used everywhere: revenue at risk desc, then probability desc, then id."""
    risk, p, account = RISK_ORDER
    key = pd.DataFrame(
        {
            "risk": num_col(scores, risk).fillna(-1.0),
            "p": num_col(scores, p).fillna(-1.0),
            "id": text_col(scores, account),
        }
    )
    return key.sort_values(["risk", "p", "id"], ascending=[False, False, True], kind="stable").index


def needs_attention(scores: pd.DataFrame, *, rise: float = RISE_POINTS) -> pd.DataFrame:
    """Accounts that turned red this week, came back from lapsed still red, or whose risk
    rose ``rise`` or more, by revenue at risk.

    Returns the matching rows of ``scores`` plus ``turned_red``, ``back_red``, ``rising``
    and ``risk_change`` (probability points as a fraction; NaN without last week's score).
    """
    flags = attention_flags(scores, rise=rise)
    out = pd.concat([scores, flags], axis=1)
    out = out.loc[order_by_risk(scores)]
    return out[needs_attention_rows(out)]


# --------------------------------------------------------------------------- the portfolio


def portfolio_summary(scores: pd.DataFrame, *, rise: float = RISE_POINTS) -> dict[str, Any]:
    """Accounts, revenue and revenue at risk per light and per ABC tier, plus alerts.

    Lights, tiers and revenue at risk cover the accounts still to keep (``active`` and
    ``new``); ``lifecycle`` counts every state, ``win_back`` sums the lapsed ones and
    ``lapsed_red`` counts those of them that were red last week (:func:`lapsed_from_red`).
    ``concentration``: the top five accounts' share of revenue and the Herfindahl index
    (sum of squared revenue shares: 1 = one customer, 1/n = n equal ones), and these
    accounts' total share of the company's revenue (below 1 for one owner's accounts).

    Pure and JSON-ready (plain ints/floats/str), so the same figures appear in the report
    and in the run record. Missing revenue counts as 0 in the sums.
    """
    frame = _money(scores)
    lapsed = text_col(scores, "lifecycle").eq("lapsed")
    kept = frame[~lapsed.to_numpy()]  # lights and revenue at risk: accounts still to keep
    lights = _known_first(LIGHTS, kept["light"])
    tiers = _known_first(TIERS, kept["tier"])
    flags = attention_flags(scores, rise=rise)
    return {
        "n_accounts": len(scores),
        "n_lit": len(kept),
        "lifecycle": _lifecycle_counts(scores),
        "win_back": _win_back(scores, frame, lapsed),
        "lapsed_red": int(lapsed_from_red(scores).sum()),  # of them, red last week
        "concentration": _concentration(scores),
        "largest_account": _largest(scores),
        "total_revenue": fsum(frame["revenue"]),  # every account's last 365 days
        "lit_revenue": fsum(kept["revenue"]),  # the active and new accounts' only
        **_at_risk(kept),
        "lights": _records(_totals(kept, ["light"]).reindex(lights, fill_value=0)),
        "tiers": _records(_totals(kept, ["tier"]).reindex(tiers, fill_value=0)),
        "light_by_tier": _light_by_tier(kept, lights, tiers),
        "dependency_alerts": _dependency_alerts(scores),
        "tier_a_note": _tier_a_note(scores, kept, scores.attrs.get("tier_a_rule")),
        # run facts the scorer attaches to its frame (absent on frames made otherwise)
        "dependency_alert_level": to_native(scores.attrs.get("dependency_alert_level")),
        "last_run": last_run(scores),
        "compared": compared_note(scores),
        "turned_red": int(flags["turned_red"].sum()),
        "back_red": int(flags["back_red"].sum()),
        "rising": int(flags["rising"].sum()),
        # risen as much but neither turned red nor back: turned_red + back_red + rising_more
        # + raised = needs_attention; the digests' "Risk rising" section (read: "79 need attention:
        # 8 turned red, 79 risk up" beside a digest's "RISK RISING (71)")
        "rising_more": int((flags["rising"] & ~flags["turned_red"] & ~flags["back_red"]).sum()),
        # raised to yellow by a rule, and not risen as much: the rest of needs_attention
        "raised": int((flags["raised"] & ~flags["rising"]).sum()),
        "needs_attention": int(needs_attention_rows(flags).sum()),
        "by_owner": _by_owner(scores, frame, lapsed, flags),
    }


def _by_owner(
    scores: pd.DataFrame, frame: pd.DataFrame, lapsed: pd.Series, flags: pd.DataFrame
) -> list[dict[str, Any]]:
    """Per account manager (the ``owner`` column; empty with fewer than two owners): their
    accounts still to keep, red and yellow among them, the revenue at risk, how many need
    attention, and the lapsed ones; most revenue at risk first. A sales director over
    eleven managers had to open eleven owner reports to compare them."""
    owner = text_col(scores, "owner")
    if owner[owner.ne("")].nunique() < 2:
        return []
    kept = ~lapsed.to_numpy()
    attention = needs_attention_rows(flags).to_numpy()
    per = pd.DataFrame(
        {
            "owner": owner.to_numpy(),
            "accounts": kept.astype(int),
            "red": (kept & frame["light"].eq("red").to_numpy()).astype(int),
            "yellow": (kept & frame["light"].eq("yellow").to_numpy()).astype(int),
            "revenue_at_risk": np.where(kept, frame["at_risk"].to_numpy(), 0.0),
            "needs_attention": attention.astype(int),
            "lapsed": (~kept).astype(int),
        }
    )
    agg = per.groupby("owner", sort=False).agg(
        accounts=("accounts", "sum"),
        red=("red", "sum"),
        yellow=("yellow", "sum"),
        revenue_at_risk=("revenue_at_risk", fsum),
        needs_attention=("needs_attention", "sum"),
        lapsed=("lapsed", "sum"),
    )
    agg = agg.sort_values(["revenue_at_risk", "red"], ascending=False, kind="stable")
    return [
        {"owner": str(k), **{str(c): to_native(v) for c, v in row.items()}}
        for k, row in agg.to_dict("index").items()
    ]


def _money(scores: pd.DataFrame) -> pd.DataFrame:
    """Light, tier and the money columns of every account (missing money as 0)."""
    return pd.DataFrame(
        {
            "light": text_col(scores, "health"),
            "tier": text_col(scores, "abc_tier"),
            "revenue": num_col(scores, "revenue_365d").fillna(0.0),
            "at_risk": num_col(scores, "revenue_at_risk").fillna(0.0),
            "expected": num_col(scores, "expected_revenue_12m").fillna(0.0),
        }
    )


def _known_first(known: tuple[str, ...], seen: pd.Series) -> list[str]:
    """The known categories in their order, then any other value seen ('' = missing)."""
    return [*known, *sorted(set(seen) - set(known))]


def _lifecycle_counts(scores: pd.DataFrame) -> dict[str, int]:
    stage = text_col(scores, "lifecycle")
    return {str(k): int(v) for k, v in stage[stage.ne("")].value_counts().sort_index().items()}


def _win_back(scores: pd.DataFrame, frame: pd.DataFrame, lapsed: pd.Series) -> dict[str, Any]:
    """The lapsed accounts: how many, their last 365 days' revenue, their win-back value."""
    return {
        "accounts": int(lapsed.sum()),
        "revenue_365d": fsum(frame.loc[lapsed.to_numpy(), "revenue"]),
        "value": fsum(num_col(scores, "win_back_value")[lapsed].fillna(0.0)),
    }


def _concentration(scores: pd.DataFrame) -> dict[str, float]:
    share = num_col(scores, "revenue_share").fillna(0.0)
    return {
        "top5_revenue_share": fsum(share.nlargest(5)),
        "hhi": fsum(share**2),
        # these accounts' share of the company's revenue (1 for the whole portfolio): what
        # an owner's report says instead of the company-wide figures
        "revenue_share_total": fsum(share),
    }


def _largest(scores: pd.DataFrame) -> dict[str, Any] | None:
    """The account with the largest revenue share (ties: the smaller id), whatever its
    dependency index: a software vendor's 19% customer sat at index 0.055 (its share times
    its industry's), so the report said no account was above the alert level and named the
    one real concentration risk nowhere. None without revenue."""
    share = num_col(scores, "revenue_share").fillna(0.0)
    if share.empty or not (share > 0).any():
        return None
    ids = text_col(scores, "account_id")
    order = np.lexsort((ids.to_numpy(), -share.to_numpy(float)))
    i = int(order[0])
    name = text_col(scores, "name").iloc[i] if "name" in scores else ""
    return {
        "account_id": str(ids.iloc[i]),
        "name": "" if pd.isna(name) else str(name),
        "revenue_share": float(share.iloc[i]),
    }


def _tier_a_note(
    scores: pd.DataFrame, kept: pd.DataFrame, rule: dict[str, float] | None
) -> dict[str, Any] | None:
    """Where the pareto rule puts more than ``note_share`` of the active and new accounts in
    tier A: how many, and how many a cut at half the revenue would keep (the company's
    accounts by revenue share, as the rule ranks them). A food wholesaler's flat revenue put
    545 of 1,116 accounts in A, a software vendor's 213 of 541 for five managers, each red
    one told "Dedicated team: escalate now". None otherwise."""
    if not rule or kept.empty:
        return None
    in_a = int((kept["tier"] == "A").sum())
    if in_a <= rule["note_share"] * len(kept):
        return None
    share = num_col(scores, "revenue_share").fillna(0.0).clip(lower=0.0)
    ranked = np.sort(share.to_numpy(float))[::-1]
    before = np.cumsum(ranked) - ranked
    half = 0.5 if rule["pareto_a"] > 0.5 else rule["pareto_a"] / 2
    return {
        "accounts": in_a,
        "of": len(kept),
        "pareto_a": rule["pareto_a"],
        "at": half,
        "at_accounts": int(((before < half) & (ranked > 0)).sum()),
    }


def _at_risk(kept: pd.DataFrame) -> dict[str, float]:
    """Revenue at risk of the accounts still to keep, and its share of what is expected."""
    at_risk = fsum(kept["at_risk"])
    expected = fsum(kept["expected"])
    revenue = fsum(kept["revenue"])
    # share of what is expected (forward revenue at risk), or of the last 365 days'
    # revenue for scores written before expected revenue existed
    base = expected or revenue
    return {
        "revenue_at_risk": at_risk,
        "expected_revenue_12m": expected,
        "revenue_at_risk_share": at_risk / base if base > 0 else 0.0,
    }


def fsum(values: pd.Series) -> float:
    """The correctly rounded sum (``math.fsum``): the same to the last digit whatever the
    rows' order, so the local and the Spark engine (and a rerun) write the same figures."""
    return math.fsum(values.to_numpy(float).tolist())


def _totals(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.groupby(keys, observed=True).agg(
        accounts=("revenue", "size"),
        revenue=("revenue", fsum),
        revenue_at_risk=("at_risk", fsum),
    )


def _records(agg: pd.DataFrame) -> Totals:
    out = agg.astype({"accounts": "int64"}).to_dict("index")
    return {str(k): {str(c): to_native(v) for c, v in row.items()} for k, row in out.items()}


def _light_by_tier(kept: pd.DataFrame, lights: list[str], tiers: list[str]) -> dict[str, Totals]:
    """The light x tier cross table (every combination, zeros included)."""
    cross = _totals(kept, ["light", "tier"]).reindex(
        pd.MultiIndex.from_product([lights, tiers], names=["light", "tier"]), fill_value=0
    )
    out: dict[str, Totals] = {light: {} for light in lights}
    for row in cross.reset_index().to_dict("records"):  # the cells, not the accounts
        out[str(row["light"])][str(row["tier"])] = {
            "accounts": int(row["accounts"]),
            "revenue": float(row["revenue"]),
            "revenue_at_risk": float(row["revenue_at_risk"]),
        }
    return out


def last_run(scores: pd.DataFrame) -> dict[str, Any] | None:
    """The latest earlier run when it is too old to compare with (older than
    ``scoring.previous_run_max_days``, so nothing has last week's figures): its date and the
    limit. None when there was none, or when this run compares with it."""
    day, limit = scores.attrs.get("last_run_as_of"), scores.attrs.get("previous_run_max_days")
    if not day or not is_first_run(scores):
        return None
    return {"as_of": str(day), "max_days": to_native(limit)}


def compared_note(scores: pd.DataFrame) -> str:
    """When this run compares with a run that was not about a week ago (a skipped week), the
    sentence naming it ("Changes are since the run of 2 Jul 2026, 14 days earlier ..."); ''
    otherwise. A user's skipped week read "since last week" and "turned red this week"
    against a run two weeks old, its date named nowhere."""
    day = scores.attrs.get("last_run_as_of")
    if not day or not len(scores) or is_first_run(scores) or "as_of" not in scores:
        return ""
    days = int((pd.Timestamp(scores["as_of"].max()) - pd.Timestamp(day)).days)
    if days in A_WEEK_DAYS:
        return ""
    return (
        f"Changes are since the run of {fmt_date(day)}, {days} days earlier (not a week): "
        f"what turned red or rose did so over those {days} days."
    )


def no_change_note(last: dict[str, Any] | None) -> str:
    """Why a run reports no changes, as a sentence: a first run, or one whose last run is
    too old to compare with (read: "first run" while four earlier runs existed)."""
    if not last:
        return "First run: changes are reported from next week on"
    limit = last.get("max_days")
    older = f"more than {limit} days old" if limit else "too old"
    return (
        f"No comparison this week: the last run ({fmt_date(last['as_of'])}) is {older}, too "
        "long ago to compare with; changes are reported from next week on"
    )


def newly_alerted(scores: pd.DataFrame) -> pd.Series:
    """Above the dependency alert this week and scored below it last week."""
    prev = (
        scores["dependency_alert_prev"].astype("boolean")
        if "dependency_alert_prev" in scores
        else pd.Series(pd.NA, index=scores.index, dtype="boolean")
    )
    return flag_col(scores, "dependency_alert") & prev.eq(False).fillna(False).astype(bool)


def _dependency_alerts(scores: pd.DataFrame) -> list[dict[str, Any]]:
    """The accounts above the dependency alert, most dependent first, with the response and
    whether the alert is new this week."""
    alert = flag_col(scores, "dependency_alert")
    dep = pd.DataFrame(
        {
            "account_id": text_col(scores, "account_id"),
            "name": text_col(scores, "name"),
            "dependency_index": num_col(scores, "dependency_index"),
            "revenue_share": num_col(scores, "revenue_share"),
            "new": newly_alerted(scores),
        }
    )[alert.to_numpy()].sort_values("dependency_index", ascending=False, kind="stable")
    return [
        {**{str(k): to_native(v) for k, v in row.items()}, "response": DEPENDENCY_RESPONSE}
        for row in dep.to_dict("records")
    ]


__all__ = [
    "DEPENDENCY_RESPONSE",
    "LIGHTS",
    "RISE_POINTS",
    "TIERS",
    "attention_flags",
    "compared_note",
    "is_first_run",
    "lapsed_from_red",
    "last_run",
    "lowest_lit",
    "needs_attention",
    "newly_alerted",
    "no_change_note",
    "order_by_risk",
    "portfolio_summary",
]
