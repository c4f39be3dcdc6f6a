"""What a light change means when the account's own score does not say it.

Three cases a manager misread in the weekly texts:

* An account with no light last week was announced as "New on the list this week" (and
  "turned red (new)"), which collides with the lifecycle state ``new`` (too little
  history). Last week's lifecycle says why it had no light: it was lapsed and ordered
  again ("back from lapsed"), or it was not scored (no recent order or running contract
  then), or its first order came since.
* In budget mode an account whose risk did not move can change light because other
  accounts moved in the ranking: "turned red ... No material change since last week"
  contradicts itself. The text says the risk is unchanged and why the light moved.
* A tier change (which changes the recommended action) went unsaid.

Pure: arrays and frames in, one text per account out ('' where nothing is to be said).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ka_ml.config import HealthConfig, PortfolioConfig
from ka_ml.features.catalog import n_days
from ka_ml.features.portfolio import tier_cut
from ka_ml.scoring.explain import MATERIAL_POINTS
from ka_ml.scoring.health import set_by_rule
from ka_ml.scoring.lifecycle import float_column

NEW_ON_LIST = "New on the list this week."  # score_chunk's marker: no score last week
BACK_FROM_LAPSED = "Back from lapsed: no light last week (lapsed), and it has ordered since."
# lapsed last week, not now, and no order since: a contract now runs (a renewal read)
BACK_UNDER_CONTRACT = (
    "No longer lapsed: no light last week (lapsed); no order since, but a contract runs now."
)
BACK_NO_ORDER = "No longer lapsed: no light last week (lapsed); no order since."
FIRST_ORDER = "First scored this week: its first order on record came since last week."
NOT_SCORED = "Not scored last week (no recent order or running contract then)."
NO_LIGHT = "No light last week."  # last week's state unknown (an older score history)
ORDER = {"green": 0, "yellow": 1, "red": 2}
# a risk move smaller than this (half a point) is no move: "Risk unchanged", the weekly
# change's own threshold (explain.MATERIAL_POINTS)
UNCHANGED = MATERIAL_POINTS


def no_light_last_week(
    changes: np.ndarray,
    lifecycle_prev: pd.Series,
    since_first_days: np.ndarray,
    days_between: float,
    *,
    known: bool,
    lifecycle: np.ndarray | None = None,
    silence: np.ndarray | None = None,
    ordered_since: np.ndarray | None = None,
    contract_running: np.ndarray | None = None,
) -> np.ndarray:
    """``changes`` with the marker of an account that had no score last week replaced by
    why: lapsed last week (``lifecycle_prev``), first order since last week (its first
    order is at most ``days_between`` days old: ``since_first_days``), else not scored.
    ``known``: the history holds last week's lifecycles (older files do not).
    ``lifecycle``: this week's; an account lapsed last week and not now that was scored
    then (its risk change is said) gets "Back from lapsed" before that change.
    ``silence``: the days without an order the return ended (the last gap between order
    days), said where known ("Back from lapsed after 138 days without an order: ...").
    ``ordered_since``: whether each account ordered since last week (unknown: assumed);
    one lapsed last week that did not is no longer lapsed for another reason, said as
    such (``contract_running``: a contract runs now). A tier-A account lapsed on its
    contract's renewal day was told "back from lapsed after 19 days without an order, it
    has ordered since" while silent for 114 days."""
    if lifecycle is None:
        lifecycle = np.full(len(changes), "", dtype=object)
    out = np.asarray(changes, dtype=object).copy()
    marked = out == NEW_ON_LIST
    was = lifecycle_prev.astype(object).to_numpy()
    # scored but lapsed last week (its risk change is known): say it came back, then that
    back = ~marked & (was == "lapsed") & (np.asarray(lifecycle, dtype=object) != "lapsed")
    lapsed = marked & (was == "lapsed")
    quiet = np.full(len(out), np.nan) if silence is None else np.asarray(silence, float)
    came_back = back | lapsed  # worded only for these few rows, not for the whole portfolio
    ordered = np.ones(len(out), bool) if ordered_since is None else np.asarray(ordered_since, bool)
    running = (
        np.zeros(len(out), bool) if contract_running is None else np.asarray(contract_running, bool)
    )
    said = {
        i: _back(quiet[i]) if ordered[i] else (BACK_UNDER_CONTRACT if running[i] else BACK_NO_ORDER)
        for i in np.flatnonzero(came_back)
    }
    for i in np.flatnonzero(back):
        out[i] = f"{said[i]} {out[i]}".strip()
    fresh = marked & ~lapsed & (np.nan_to_num(since_first_days, nan=np.inf) <= days_between)
    out[marked] = NOT_SCORED if known else NO_LIGHT
    out[fresh] = FIRST_ORDER
    for i in np.flatnonzero(lapsed):
        out[i] = said[i]
    return out


def tier_moved(
    tier: pd.Series,
    tier_prev: pd.Series,
    revenue_share: pd.Series,
    position: pd.Series | None = None,
    portfolio: PortfolioConfig | None = None,
) -> np.ndarray:
    """Per account, the sentence when its ABC tier changed since last week ('' elsewhere):
    the tier sets the recommended action, so a manager asks why the action changed. The
    share says where the account now stands; the tier moves when its own 12-month revenue
    or the rest of the portfolio's does. With ``position`` (:func:`tier_position`) and the
    ``portfolio`` rule, the sentence says which cut it crossed ("its own share" alone read
    the same, 0.01%, for a move up and a move down)."""
    now = tier.astype(object).to_numpy()
    was = tier_prev.astype(object).to_numpy()
    share = revenue_share.to_numpy(float)
    pos = position.to_numpy(float) if position is not None else np.full(len(now), np.nan)
    texts = np.full(len(now), "", dtype=object)
    known = pd.notna(now) & pd.notna(was)
    for i in np.flatnonzero(known & (now.astype(str) != was.astype(str))):
        if portfolio is not None and np.isfinite(pos[i]) and {now[i], was[i]} in _ADJACENT:
            texts[i] = f"Now tier {now[i]} (tier {was[i]} last week): " + _crossed(
                str(now[i]), str(was[i]), pos[i], share[i], portfolio
            )
            continue
        part = f"; its 12-month revenue is {_share(share[i])} of the portfolio's"
        texts[i] = (
            f"Now tier {now[i]} (tier {was[i]} last week{part if np.isfinite(share[i]) else ''})."
        )
    return texts


_ADJACENT = ({"A", "B"}, {"B", "C"})


def _crossed(now: str, was: str, pos: float, share: float, cfg: PortfolioConfig) -> str:
    """Which cut a tier move crossed, in the rule's own terms."""
    upper = min(now, was)  # "A" above "B" above "C"
    cut = tier_cut(upper, max(now, was), cfg)
    side = "within" if now == upper else "past"
    if cfg.abc_method == "pareto":
        own = f"; its own share is {_share(share)}" if np.isfinite(share) else ""
        return (
            f"the accounts ahead of it make {_share(pos)} of the portfolio's 12-month revenue, "
            f"{side} the {upper} cut at {_share(cut)}{own}."
        )
    where = "above" if now == upper else "below"
    return (
        f"its 12-month revenue is {_share(pos)} of the portfolio's, {where} the {upper} cut "
        f"at {_share(cut)}."
    )


def _share(share: float) -> str:
    """A revenue share readable at any portfolio size: 12.3%, 0.42%, 0.05%, under 0.01%
    (one account of 1,800 holds about 0.06%: '0.0%' said nothing)."""
    pct = share * 100
    if pct >= 1:
        return f"{pct:.1f}%"
    return f"{pct:.2f}%" if pct >= 0.01 else "under 0.01%"


def _back(silent_days: float) -> str:
    """BACK_FROM_LAPSED, with how long the account was silent when that is known."""
    if not np.isfinite(silent_days):
        return BACK_FROM_LAPSED
    return BACK_FROM_LAPSED.replace(
        "Back from lapsed:", f"Back from lapsed after {silent_days:,.0f} days without an order:"
    )


def light_moved_alone(
    out: pd.DataFrame,
    prev: pd.DataFrame,
    rank: str,
    cfg: HealthConfig,
    changes: np.ndarray | None = None,
) -> np.ndarray:
    """Per account of ``out`` (this week: ``health``, ``lifecycle``, ``churn_probability``,
    ``rank``, and ``light_reason`` when set), the reason in words when its light changed while its risk moved under half a
    point, else ''. ``prev``: last week's scores by account (``health``,
    ``churn_probability``, ``rank``, and ``lifecycle`` when stored).

    In budget mode the light follows the account's place in the ranking, so it moves when
    accounts ranked above it last week leave the lit list (lapsed, or not scored) or fall
    below it, or the other way round. The counts are of those accounts. A light set by
    an override (overdue, critical complaint) or kept by hysteresis says its light reason.

    A light that moved against the risk (up while the risk fell, down while it rose) is
    said the same way, before its weekly change (``changes``, the texts so far): "turned red
    ... Risk down 1 pt" had left a manager guessing (the red cut had fallen past it).
    """
    texts = np.full(len(out), "", dtype=object)
    if prev.empty or "health" not in prev:
        return texts
    ids = out["account_id"].astype(str)
    now = out["health"].astype(object).map(ORDER).to_numpy(float)
    before = ids.map(prev["health"].astype(object)).map(ORDER).to_numpy(float)
    p = out["churn_probability"].to_numpy(float)
    p_prev = ids.map(prev["churn_probability"]).to_numpy(float)
    moved = np.isfinite(now) & np.isfinite(before) & (now != before)
    still = moved & (np.abs(p - p_prev) < UNCHANGED)
    against = moved & ~still & ((now > before) == (p < p_prev))
    if not (still | against).any():
        return texts
    lit_prev = prev[prev["health"].notna() & prev["health"].astype(object).ne("")]
    m_prev = lit_prev[rank].astype(float)
    now_lit = pd.Series(out[rank].to_numpy(float), index=ids.to_numpy())[
        (out["health"].notna() & out["lifecycle"].astype(object).ne("lapsed")).to_numpy()
    ]
    left = ~m_prev.index.isin(now_lit.index)  # lit last week, lapsed or unscored now
    stayed = m_prev[~left]
    m_now = now_lit.reindex(stayed.index)
    rule = (
        out["light_reason"].astype(object).fillna("").astype(str).to_numpy()
        if ("light_reason" in out)
        else np.full(len(out), "", dtype=object)
    )
    held = _held_down(ids, prev, rank, before, cfg)
    # per account below, so computed once: an O(accounts) lookup per moved light made a
    # 100k-account week quadratic (1,423 moved lights: 134 s)
    rank_prev = ids.map(prev[rank]).to_numpy(float)
    new_lit = now_lit[~now_lit.index.isin(m_prev.index)]
    for i in np.flatnonzero(still | against):
        light, up = str(out["health"].iloc[i]), bool(now[i] > before[i])
        if still[i]:
            head, risk = (
                f"Risk unchanged at {p[i]:.0%}, yet now {light}",
                f"Risk unchanged at {p[i]:.0%}",
            )
        else:
            pts = f"{abs(p[i] - p_prev[i]) * 100:.0f} pt{'s' if abs(p[i] - p_prev[i]) >= 0.015 else ''}"
            head = f"Now {light} although its risk {'fell' if up else 'rose'} {pts} to {p[i]:.0%}"
            risk = head
        # an override, the hysteresis band or a rhythm rule, not the ranking: a healthy
        # project buyer read "Now green although its risk rose 34 pts to 90%: below the red
        # and yellow shares, because 2 accounts ranked below it last week are now riskier"
        if set_by_rule(rule[i]):
            texts[i] = f"{risk}; the light changed by the light rule, not the risk: {rule[i]}."
        elif up and held[i]:  # not the ranking: last week a rule kept it below its place
            texts[i] = (
                f"{head}: last week the light rule held it down (a quiet spell of its usual "
                "rhythm, or its quiet season); that no longer holds, so its churn probability "
                "lights it again."
            )
        else:
            me_prev, me_now = float(rank_prev[i]), float(out[rank].iloc[i])
            texts[i] = _said(
                head=head,
                light=light,
                up=up,
                rule=rule[i],
                gone=int((m_prev[left] > me_prev).sum()),
                passed=int(((stayed > me_prev) & (m_now < me_now)).sum()),
                joined=int(((stayed < me_prev) & (m_now > me_now)).sum()),
                newcomers=int((new_lit > me_now).sum()),
                cfg=cfg,
            )
        if against[i] and changes is not None and str(changes[i]):
            texts[i] = f"{texts[i]} {changes[i]}"
    return texts


def _held_down(
    ids: pd.Series, prev: pd.DataFrame, rank: str, before: np.ndarray, cfg: HealthConfig
) -> np.ndarray:
    """Per account, whether last week's light sat below the one its place in last week's
    ranking gave it (the budget's shares over last week's lit accounts, with the probability
    floors; thresholds in threshold mode): a rule held it down (the rhythm or season rule,
    the seen-before cap). A ski hut unlit by its rhythm read "Now red although its risk
    fell 2 pts: ... because 1 account ranked above it last week has lapsed" the week its
    silence outgrew the rule."""
    p = ids.map(prev["churn_probability"]).to_numpy(float)
    if cfg.mode == "threshold":
        ranked = np.where(p >= cfg.red_threshold, 2, np.where(p >= cfg.yellow_threshold, 1, 0))
        return np.isfinite(before) & (before < ranked)
    lit = prev["health"].notna() & prev["health"].astype(object).ne("")
    metric = np.sort(pd.to_numeric(prev.loc[lit, rank], errors="coerce").dropna().to_numpy())
    if not len(metric):
        return np.zeros(len(ids), bool)

    def cut(share: float) -> float:  # the metric of the last account inside the share
        k = round(share * len(metric))
        return float(metric[-k]) if k > 0 else np.inf

    m = ids.map(pd.to_numeric(prev[rank], errors="coerce")).to_numpy(float)
    red = (m >= cut(cfg.red_share)) & (p >= cfg.red_min_probability)
    yellow = (m >= cut(cfg.red_share + cfg.yellow_share)) & (p >= cfg.yellow_min_probability)
    ranked = np.where(red, 2, np.where(yellow, 1, 0))
    return np.isfinite(before) & (before < ranked)


def _said(
    *,
    head: str,
    up: bool,
    light: str,
    gone: int,
    passed: int,
    joined: int,
    newcomers: int,
    cfg: HealthConfig,
    rule: str = "",
) -> str:
    """One account's sentence (see :func:`light_moved_alone`)."""
    if cfg.mode != "budget":
        return f"{head}: the light rule or an override changed, not the risk."
    where = {
        "red": f"among the riskiest {cfg.red_share:.0%} of active and new accounts",
        "yellow": f"in the next {cfg.yellow_share:.0%} by risk",
        "green": "below the red and yellow shares",
    }[light]
    if up:
        why = [
            _n(gone, "account ranked above it last week has", "lapsed or left the list"),
            _n(passed, "account ranked above it last week is", "now less risky"),
        ]
    else:
        why = [
            _n(joined, "account ranked below it last week is", "now riskier"),
            _n(newcomers, "account not on the list last week ranks", "above it"),
        ]
    because = " and ".join(w for w in why if w)
    if because:
        return f"{head}: {where}, because {because}."
    return f"{head}: {rule}." if rule else f"{head}: {where}."


def _n(count: int, one: str, rest: str) -> str:
    """'2 accounts ranked above it last week have lapsed ...' ('' for none)."""
    if not count:
        return ""
    if count == 1:
        return f"1 {one} {rest}"
    many = one.replace("account", "accounts", 1).replace(" has", " have").replace(" is", " are")
    many = many.replace(" ranks", " rank")
    return f"{count} {many} {rest}"


def ordered_yet_riskier(
    changes: np.ndarray, out: pd.DataFrame, X: pd.DataFrame, days_between: float
) -> np.ndarray:
    """The weekly change of an account lit last week whose risk rose by half a point or more
    (:data:`MATERIAL_POINTS`, what the change text reports) the week it ordered, said with
    that order and its typical gap: a quarterly buyer went from 5% to red at 47% the day
    after a 33,472 EUR order, and "Risk up 43 pts since last week; biggest mover: buying
    history" never named the order (user test: 27 of 54 "turned red"
    came within 7 days of an order). An order starts a new gap; for a buyer whose gaps run
    past the horizon, the next one is then unlikely within it."""
    recency = np.nan_to_num(float_column(X, "recency_days"), nan=np.inf)
    rose = (
        float_column(out, "churn_probability") - float_column(out, "churn_probability_prev")
    ) >= MATERIAL_POINTS
    lit_before = (
        out["health_prev"].notna().to_numpy() if "health_prev" in out else np.zeros(len(out), bool)
    )
    pick = np.flatnonzero((recency <= days_between) & rose & lit_before)
    if not len(pick):
        return changes
    gap = float_column(X, "gap_median_days")
    last = pd.to_datetime(out["last_order_date"]).to_numpy()
    changes = np.asarray(changes, dtype=object).copy()
    for i in pick:
        d = pd.Timestamp(last[i])
        typical = f" (typical gap {n_days(gap[i])})" if np.isfinite(gap[i]) else ""
        changes[i] = f"Ordered on {d.day} {d:%b %Y}{typical}. {changes[i]}".strip()
    return changes
