"""Red / yellow / green health lights from the calibrated churn probability.

The rule, in order:

1. **Budget (default) or thresholds.** Only ``active`` and ``new`` accounts get a light
   (``lapsed`` ones are already lost: see :mod:`ka_ml.scoring.lifecycle`). Budget mode:
   red = the ``red_share`` of them with the highest churn probability (or revenue at risk,
   ``rank_by``), never below ``red_min_probability``; yellow = the next ``yellow_share``,
   never below ``yellow_min_probability``; so red stays a list a team can work through
   whatever the portfolio's base rate. Threshold mode: red when p >= ``red_threshold``,
   yellow when p >= ``yellow_threshold``, else green.
2. **Hysteresis.** An account keeps last week's worse light until its probability (budget
   mode: its place in the ranking) falls below that light's cut by more than ``hysteresis``: a red account stays red while
   p >= red - h, a yellow (or red) one stays at least yellow while p >= yellow - h. Moving
   *up* is immediate. So an account hovering around a threshold does not flip every week,
   yet a real improvement shows within a week.
3. **Overrides** (each only raises, never lowers): an overdue account (past the p90 date of
   the purchase forecast made from its last order, with no order since; where the score
   history holds no such forecast, a first run or an account silent since before the
   history began, silent for longer than :func:`overdue_multiple` times its typical gap,
   given ``health.overdue_min_gaps`` gaps or more) is
   at least yellow; an open critical complaint makes it at least
   ``critical_complaint_light`` (yellow by default).

Every light carries its reason in words, and a recommended action per light and ABC tier.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ka_ml.config import HealthConfig
from ka_ml.features.catalog import n_days
from ka_ml.scoring.lifecycle import Pause, PeerSeason, season_years_measured

ORDER = {"green": 0, "yellow": 1, "red": 2}
NAMES = np.array(["green", "yellow", "red"])
# how a light reason set by a rule, not the ranking, begins: an override, the hysteresis
# band, the cap of an account quiet as before ("yellow, not red: ...")
RULE_PREFIXES = (
    "raised to yellow",
    "raised to red",
    "stays ",
    *(f"{NAMES[top]}, not {NAMES[lv]}" for top in range(3) for lv in range(top + 1, 3)),
)
# what the rhythm rule's reasons say (a quiet account is not lit by its probability)
QUIET_WORDS = (
    "a quiet spell is this account's usual rhythm",
    "long quiet spells are its usual rhythm",
    "no higher than its own rhythm says",
    "this is its quiet season",
    "this is the quiet season of its",
    "this is its yearly pause",
)
# fewer accounts than this that just ordered: their median p90 is too noisy to replace the
# configured multiple (its standard error is then about a quarter of the spread)
MIN_MEASURED_ACCOUNTS = 30


def overdue_multiple(
    recency_days: np.ndarray,
    gap_days: np.ndarray,
    p90_days: np.ndarray,
    cfg: HealthConfig,
    window_days: int,
) -> float:
    """How many typical gaps of silence make an account overdue when no forecast was made
    from its last order.

    ``health.overdue_ratio_measured``: the run's own answer for the accounts that ordered
    within ``window_days`` (their forecast starts at that order): the median of their p90
    time to the next order (``p90_days``, counted from the last order; NaN = open, beyond
    the model's range) over their typical gap, so the accounts judged by the rule are held
    to the same p90 as those judged by their forecast. Otherwise, with fewer than
    ``MIN_MEASURED_ACCOUNTS`` such accounts, or when most of their forecasts are open,
    ``health.overdue_ratio_fallback``.
    """
    fixed = float(cfg.overdue_ratio_fallback)
    if not cfg.overdue_ratio_measured:
        return fixed
    recency, gap = np.asarray(recency_days, float), np.asarray(gap_days, float)
    fresh = (recency <= window_days) & np.isfinite(gap) & (gap > 0)
    if fresh.sum() < MIN_MEASURED_ACCOUNTS:
        return fixed
    p90 = np.asarray(p90_days, float)[fresh]
    ratio = np.where(np.isfinite(p90), p90, np.inf) / gap[fresh]  # open: beyond every gap
    median = float(np.median(ratio))
    return max(median, 1.0) if np.isfinite(median) else fixed  # mostly open: nothing usable


def budget_rank(metric: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Each eligible account's place in the ranking: the share of eligible accounts at or
    below it (the riskiest gets 1.0; ties broken by row order, so a budget of k accounts
    holds k even when many probabilities are equal); NaN elsewhere."""
    from scipy.stats import rankdata

    out = np.full(len(metric), np.nan)
    m = np.nan_to_num(np.asarray(metric, float)[eligible], nan=-np.inf)
    if len(m):
        out[eligible] = rankdata(m, method="ordinal") / len(m)
    return out


def _overrides_said(cfg: HealthConfig) -> str:
    """The overrides that are on, in words, for :func:`light_rule`."""
    overdue = "an account overdue against its own purchase cycle" + (
        "" if cfg.overdue_under_contract else " (not one a running contract judges)"
    )
    complaint = "an account with an open critical complaint"
    if not cfg.critical_complaint_raises:
        return f"; {overdue} is at least yellow" if cfg.overdue_raises else ""
    if cfg.critical_complaint_light == "red":
        return (f"; {overdue} is at least yellow" if cfg.overdue_raises else "") + (
            f"; {complaint} is red"
        )
    if cfg.overdue_raises:
        return f"; {overdue}, or with an open critical complaint, is at least yellow"
    return f"; {complaint} is at least yellow"


def _basket_said(cfg: HealthConfig) -> str:
    """The shrinking-basket override in words when it is on, for :func:`light_rule`."""
    return "; an account whose baskets shrank is at least yellow" if cfg.basket_drop_raises else ""


def light_rule(cfg: HealthConfig, scope: str = "active and new accounts") -> str:
    """The lights' rule in one line, for the report's legend and the run record: the
    ranking or thresholds, the hysteresis, the rhythm rules and the overrides."""
    quiet = (
        (
            "; an account whose own past gaps"
            + (
                (
                    ", or the same season"
                    + (" or date" if cfg.pause_min_gaps is not None else "")
                    + " of past years,"
                )
                if cfg.season_quiet
                else ""
            )
            + " make a quiet spell its usual rhythm is not lit by its churn probability"
            if cfg.rhythm_quiet_min is not None
            else ""
        )
        + (
            f"; one silent for longer than its typical gap that has come back from a silence "
            f"this long before is at most {cfg.seen_before_max_light}"
            if cfg.seen_before_max_light is not None
            else ""
        )
        + _overrides_said(cfg)
        + _basket_said(cfg)
    )
    if cfg.mode == "threshold":
        return (
            f"red from a churn probability of {cfg.red_threshold:.0%}, yellow from "
            f"{cfg.yellow_threshold:.0%}, green below{quiet}"
        )
    by = "churn probability" if cfg.rank_by == "churn_probability" else "revenue at risk"
    # a user counted 12.9% red under "red = 10%": last week's lights held within the band
    held = (
        f"; a light is kept while the account stays within {cfg.hysteresis:.0%} of the "
        f"ranking past its cut, so red can run a little over {cfg.red_share:.0%}"
        if cfg.hysteresis > 0
        else ""
    )
    return (
        f"red = the {cfg.red_share:.0%} of {scope} with the highest {by} (never below a "
        f"{cfg.red_min_probability:.0%} churn probability), yellow = the next "
        f"{cfg.yellow_share:.0%} (never below {cfg.yellow_min_probability:.0%}), green = the "
        f"rest{held}{quiet}"
    )


def assign_lights(
    p: np.ndarray,
    prev: pd.Series | np.ndarray | None,
    cfg: HealthConfig,
    *,
    overdue: np.ndarray | None = None,
    critical_complaint: np.ndarray | None = None,
    eligible: np.ndarray | None = None,
    rank_metric: np.ndarray | None = None,
    overdue_why: np.ndarray | None = None,
    quiet: np.ndarray | None = None,
    quiet_why: np.ndarray | None = None,
    seen_before: np.ndarray | None = None,
    seen_before_why: np.ndarray | None = None,
    basket_drop: np.ndarray | None = None,
    basket_why: np.ndarray | None = None,
    renewal: np.ndarray | None = None,
    renewal_why: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(lights, reasons) for probabilities ``p`` given last week's lights ``prev``.

    ``eligible``: accounts that get a light (default all; the others get '' and no
    reason). Budget mode ranks the eligible accounts by ``rank_metric`` (default ``p``).
    ``overdue_why``: per account, what made it overdue in words (the scorer's dates and
    gaps); where empty, the generic "the expected next order has not come".
    ``quiet``: accounts whose own rhythm makes the horizon without an order the expected
    course (:func:`rhythm_quiet`): their probability lights nothing (they rank last, keep no
    light by hysteresis, and stay green unless an override raises them), ``quiet_why`` says
    so in words.
    ``seen_before``: accounts quiet as they have been before (:func:`ka_ml.scoring.lifecycle.
    quiet_as_before`, judged by their orders): their ranking and hysteresis light them at
    most ``health.seen_before_max_light``; the slots they leave in red are not refilled (red
    is the riskiest accounts, up to its share). ``seen_before_why``: per account, the
    silence and its precedents in words, added to the reason.
    ``basket_drop``: accounts whose baskets shrank (the order-value scorecard yellow or red),
    raised to at least yellow with ``health.basket_drop_raises``; ``basket_why``: how much,
    in words.
    ``renewal``: accounts whose contract is due for a renewal the model cannot judge (it
    learnt too few lapses: ``health.renewal_unlearnt_min_lapses``), raised to at least
    yellow; ``renewal_why``: the contract's end and the lapses learnt, in words.
    """
    p = np.asarray(p, float)
    n = len(p)
    ok = np.ones(n, bool) if eligible is None else np.asarray(eligible, bool)
    calm = np.zeros(n, bool) if quiet is None else np.asarray(quiet, bool) & ok
    h = cfg.hysteresis
    # distance past each light's cut: <= 0 inside it, <= h inside its hysteresis band
    if cfg.mode == "threshold":
        d_red, d_yellow = cfg.red_threshold - p, cfg.yellow_threshold - p
        floor_red = floor_yellow = np.ones(n, bool)
    else:
        metric = p if rank_metric is None else np.asarray(rank_metric, float)
        metric = np.where(calm, -np.inf, metric)  # still counted in the budget's base
        above = 1.0 - budget_rank(metric, ok)  # share of eligible accounts ranked higher
        d_red = above - cfg.red_share + 1e-9
        d_yellow = above - cfg.red_share - cfg.yellow_share + 1e-9
        floor_red, floor_yellow = p >= cfg.red_min_probability, p >= cfg.yellow_min_probability
    d_red, d_yellow = np.nan_to_num(d_red, nan=np.inf), np.nan_to_num(d_yellow, nan=np.inf)
    level = np.where(
        ok & floor_red & (d_red <= 0), 2, np.where(ok & floor_yellow & (d_yellow <= 0), 1, 0)
    )
    level[calm] = 0
    # how far the ranking alone would have lit it: a floor, not the rank, may have kept it lower
    ranked = np.where(d_red <= 0, 2, np.where(d_yellow <= 0, 1, 0))
    reason = np.array(
        [_why(x, lv, rk, cfg) for x, lv, rk in zip(p, level, ranked, strict=True)], dtype=object
    )
    if prev is not None:
        prev_level = pd.Series(np.asarray(prev, dtype=object)).map(ORDER).fillna(-1).to_numpy(int)
        keep_red = ok & ~calm & (prev_level == 2) & (level < 2) & (d_red <= h + 1e-12) & floor_red
        keep_yellow = (
            ok & ~calm & (prev_level >= 1) & (level < 1) & (d_yellow <= h + 1e-12) & floor_yellow
        )
        level = np.where(keep_red, 2, np.where(keep_yellow, 1, level))
        # in words, not "the 5% hysteresis band" (read as jargon by a manager)
        band = (
            f"within {h:.0%} of the ranking"
            if cfg.mode == "budget"
            else f"within {h * 100:.0f} points below the threshold"
        )
        for mask, light in ((keep_red, "red"), (keep_yellow, "yellow")):
            reason[mask] = [
                f"stays {light}: churn probability {x:.0%}, just past the cut ({band}): a "
                "light does not flip back and forth on a small change"
                for x in p[mask]
            ]
    if seen_before is not None and cfg.seen_before_max_light is not None:
        top = ORDER[cfg.seen_before_max_light]
        cut = np.asarray(seen_before, bool) & ok & ~calm & (level > top)
        why = (
            np.full(n, "it has come back from a silence this long before", dtype=object)
            if seen_before_why is None
            else np.asarray(seen_before_why, dtype=object)
        )
        reason[cut] = [
            f"{NAMES[top]}, not {NAMES[lv]}: {r}; but {w}"
            for lv, r, w in zip(level[cut], reason[cut], why[cut], strict=True)
        ]
        level[cut] = top
    if calm.any():
        reason[calm] = (
            [f"churn probability {x:.0%}, but {QUIET_WORDS[0]}: not lit by it" for x in p[calm]]
            if quiet_why is None
            else np.asarray(quiet_why, dtype=object)[calm]
        )
    # each override: (accounts, on, its name, what it says without details, the details in
    # words per account or None, the light it raises to)
    for flag, enabled, name, plain, details, to in (
        (
            overdue,
            cfg.overdue_raises,
            "overdue",
            "the expected next order has not come",
            overdue_why,
            1,
        ),
        (
            critical_complaint,
            cfg.critical_complaint_raises,
            "an open critical complaint",
            "",
            None,
            ORDER[cfg.critical_complaint_light],
        ),
        (basket_drop, cfg.basket_drop_raises, "shrinking baskets", "", basket_why, 1),
        (renewal, True, "renewal due", "", renewal_why, 1),  # the caller decides when
    ):
        if flag is None or not enabled:
            continue
        raise_ = np.asarray(flag, bool) & (level < to) & ok
        level = np.where(raise_, to, level)
        texts = np.full(n, f"{name}: {plain}" if plain else name, dtype=object)
        if details is not None:
            why = np.asarray(details, dtype=object)
            texts = np.where(pd.notna(why) & (why != ""), f"{name}: " + why.astype(str), texts)
        reason[raise_] = [
            f"raised to {NAMES[to]}: {t} ({r})"
            for t, r in zip(texts[raise_], reason[raise_], strict=True)
        ]
    lights = np.where(ok, NAMES[level], "").astype(object)
    reason[~ok] = ""
    return lights, reason


RHYTHM_EXCESS_MIN_GAPS = 3  # gaps longer than the silence for a rhythm chance to compare with


def rhythm_quiet(
    chance: np.ndarray,
    judged_by_orders: np.ndarray,
    cfg: HealthConfig,
    p: np.ndarray | None = None,
    gaps: np.ndarray | None = None,
    season: np.ndarray | None = None,
    pause: np.ndarray | None = None,
) -> np.ndarray:
    """Accounts whose churn probability only restates their rhythm: judged by their orders
    (churn definition ``no_order``: a contract's end is a risk whatever the rhythm) and
    whose own gaps make the horizon without an order at least ``rhythm_quiet_min`` likely
    (the feature ``rhythm_quiet_chance``), or (``season``: ``season_quiet_chance``, with
    ``season_quiet``) the same days of past years do; or, whatever its churn definition
    (``pause``: ``season_pause_chance`` where the silence is long enough,
    :func:`~ka_ml.scoring.lifecycle.pause_season`), the same date of past years makes its
    silence a pause it takes every year: a silence kept every August says nothing of a
    contract's renewal either (on a user test's August, 12 of 28 such reds were accounts
    judged by their contracts; holding them too, no red on a real loss went); with
    ``rhythm_excess_min`` (and
    ``p``, ``gaps``: the churn probabilities and ``gaps_longer_than_silence``), also those
    with at least three past gaps longer than their silence whose churn probability exceeds
    that chance by less than it (a quarterly buyer the day after an order: 47% against 50%
    by its own gaps). None of them when the rules are off."""
    c = np.asarray(chance, float)
    by_orders = np.asarray(judged_by_orders, bool)
    judged = by_orders & np.isfinite(c)
    out = np.zeros(len(c), bool)
    if cfg.rhythm_quiet_min is not None:
        out |= judged & (c >= cfg.rhythm_quiet_min)
        out |= by_orders & season_quiet(season, cfg)
        out |= season_quiet(pause, cfg)  # by orders or not: see above
    if cfg.quiet_spells_min is not None and gaps is not None:
        out |= judged & (quiet_spells(c, gaps) >= cfg.quiet_spells_min)
    if cfg.rhythm_excess_min is not None and p is not None and gaps is not None:
        k = np.nan_to_num(np.asarray(gaps, float))
        excess = np.asarray(p, float) - c  # NaN (no probability) compares False
        out |= judged & (k >= RHYTHM_EXCESS_MIN_GAPS) & (excess < cfg.rhythm_excess_min)
    return out


def quiet_spells(chance: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """How many past gaps were longer than the current silence plus the horizon: the j of
    ``rhythm_quiet_chance`` = (j + 0.5) / (k + 1), k = ``gaps_longer_than_silence``
    (0 where either is unknown)."""
    c, k = np.asarray(chance, float), np.asarray(gaps, float)
    with np.errstate(invalid="ignore"):
        j = np.round(c * (k + 1.0) - 0.5)
    return np.where(np.isfinite(j), j, 0.0)


def season_quiet(season: np.ndarray | None, cfg: HealthConfig) -> np.ndarray | bool:
    """Where the same days of past years make the horizon without an order at least
    ``rhythm_quiet_min`` likely (``season_quiet_chance``; ``health.season_quiet``)."""
    if season is None or not cfg.season_quiet or cfg.rhythm_quiet_min is None:
        return False
    return np.asarray(season, float) >= cfg.rhythm_quiet_min  # NaN compares False


def seen_before_why(silence: np.ndarray, gap: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Why an account quiet as before is not red, in a manager's words: "it has come back
    from a silence this long 3 times before (no order for 113 days; typical gap 9 days)"."""
    return np.array(
        [
            f"it has come back from a silence this long {k:.0f} "
            f"{'time' if k == 1 else 'times'} before (no order for {n_days(r)}; typical gap "
            f"{n_days(g)})"
            for r, g, k in zip(silence, gap, times, strict=True)
        ],
        dtype=object,
    )


def rhythm_quiet_why(
    p: np.ndarray,
    chance: np.ndarray,
    recency: np.ndarray,
    horizon: int,
    *,
    season: np.ndarray | None = None,
    season_years: np.ndarray | None = None,
    cfg: HealthConfig | None = None,
    gaps: np.ndarray | None = None,
    peer: PeerSeason | None = None,
    pause: Pause | None = None,
) -> np.ndarray:
    """Why a quiet account (:func:`rhythm_quiet`) has no light from its probability, in a
    manager's words: its probability "no higher than its own rhythm says" where it does not
    exceed the rhythm's chance (``rhythm_excess_min``), else "but long quiet spells are its
    usual rhythm"; or, where its gaps do not say it but the same days of past years do
    (``season``, ``season_years``: ``season_quiet_chance`` and ``season_quiet_years``, with
    ``cfg``), "but this is its quiet season: no order in the same 90 days in each of the
    last 2 years, and back after each time"; or, where the same date of past years makes its
    silence a yearly pause (``pause``), "but this is its yearly pause: it went as long
    without an order around this date in each of the last 3 years, and ordered again 12
    days after it (the median)"; or, where none of these says it but the account has
    gone longer than its silence plus the horizon without an order at least
    ``quiet_spells_min`` times (``gaps``: ``gaps_longer_than_silence``, with ``cfg``), "but
    long quiet spells are its usual rhythm: 3 times before it went more than 114 days
    without an order and came back"; or, where it borrows its peers' season (``peer``,
    :func:`~ka_ml.scoring.lifecycle.peer_season`), "but this is the quiet season of its
    industry (Landscaping): 17 of the 19 past years of its 9 peers with two years or more
    had no order in the same 90 days, and back after"."""
    rhythm = np.asarray(chance, float)
    seasonal = np.zeros(len(rhythm), bool)
    by_gaps = ~(rhythm >= cfg.rhythm_quiet_min) if cfg and cfg.rhythm_quiet_min else True
    if cfg is not None and cfg.rhythm_quiet_min is not None:  # the season, not the gaps
        seasonal = np.asarray(season_quiet(season, cfg), bool) & by_gaps
    years = np.full(len(rhythm), np.nan) if season_years is None else np.asarray(season_years)
    seasonal &= np.isfinite(years)  # the years to say it with
    measured = np.zeros(len(rhythm)) if season is None else season_years_measured(season, years)
    paused = np.zeros(len(rhythm), bool)
    if pause is not None and cfg is not None and cfg.rhythm_quiet_min is not None:
        # before the gaps' words: it holds accounts judged by their contracts too, which
        # the gaps do not (and is the more telling reason where both hold)
        paused = np.asarray(season_quiet(pause.chance, cfg), bool) & ~seasonal
    borrowed = np.zeros(len(rhythm), bool)
    if peer is not None and cfg is not None and cfg.rhythm_quiet_min is not None:
        borrowed = (peer.chance >= cfg.rhythm_quiet_min) & by_gaps & ~seasonal & ~paused
    spells = np.zeros(len(rhythm)) if gaps is None else quiet_spells(rhythm, gaps)
    spelled = np.zeros(len(rhythm), bool)
    if cfg is not None and cfg.quiet_spells_min is not None:
        spelled = (spells >= cfg.quiet_spells_min) & by_gaps & ~seasonal & ~borrowed & ~paused
    silence = np.asarray(recency, float)
    tail = [f" (last order {n_days(r)} ago)" if np.isfinite(r) else "" for r in silence]
    out = []
    for i, (x, c) in enumerate(zip(p, rhythm, strict=True)):
        if spelled[i]:
            out.append(
                f"churn probability {x:.0%}, but {QUIET_WORDS[1]}: {spells[i]:.0f} times before "
                f"it went more than {n_days(silence[i] + horizon)} without an order and came "
                f"back{tail[i]}; judged again when its silence outgrows them"
            )
        elif borrowed[i] and peer is not None:
            out.append(
                f"churn probability {x:.0%}, but {QUIET_WORDS[4]} {peer.column} "
                f"({peer.group[i]}): {peer.quiet_years[i]:.0f} of the {peer.years[i]:.0f} past "
                f"years of its {peer.peers[i]:.0f} peers with two years or more had no order "
                f"in the same {n_days(horizon)}, and back after; too little history of its "
                f"own to say{tail[i]}; judged again as its season comes"
            )
        elif paused[i] and pause is not None:
            q, k = float(pause.years[i]), float(pause.measured[i])
            when = (
                f"in each of the last {q:.0f} years"
                if q == k
                else f"in {q:.0f} of the last {k:.0f} years"
            )
            out.append(
                f"churn probability {x:.0%}, but {QUIET_WORDS[5]}: it went as long without an "
                f"order around this date {when}, and ordered again {n_days(pause.wait[i])} "
                f"after it (the median){tail[i]}; judged again as the pause ends"
            )
        elif seasonal[i]:
            q, k = float(years[i]), float(measured[i])
            when = (
                f"in each of the last {q:.0f} years"
                if q == k
                else f"in {q:.0f} of the last {k:.0f} years"
            )
            out.append(
                f"churn probability {x:.0%}, but {QUIET_WORDS[3]}: no order in the same "
                f"{n_days(horizon)} {when}, and back after each time{tail[i]}; judged again as "
                "its season comes"
            )
        else:
            out.append(
                f"churn probability {x:.0%}, "
                + (QUIET_WORDS[2] if x <= c else f"but {QUIET_WORDS[1]}")
                + f": by its own past gaps, no order in the next {n_days(horizon)} is {c:.0%} "
                f"likely{tail[i]}; judged again as its next order comes due"
            )
    return np.array(out, dtype=object)


def set_by_rule(reason: str) -> bool:
    """Whether a light reason of :func:`assign_lights` is a rule's (an override, the
    hysteresis band, a rhythm rule, the quiet-as-before cap), not the ranking's."""
    return reason.startswith(RULE_PREFIXES) or any(q in reason for q in QUIET_WORDS)


def _why(x: float, level: int, ranked: int, cfg: HealthConfig) -> str:
    """The light's reason; ``ranked``: the level the budget's ranking alone gives (above
    ``level`` where a probability floor kept the account lower)."""
    if cfg.mode == "threshold":
        red, yellow = cfg.red_threshold, cfg.yellow_threshold
        if level == 2:
            return f"churn probability {x:.0%} ≥ red threshold {red:.0%}"
        if level == 1:
            return f"churn probability {x:.0%} ≥ yellow threshold {yellow:.0%}"
        return f"churn probability {x:.0%} below {yellow:.0%}"
    by = "churn probability" if cfg.rank_by == "churn_probability" else "revenue at risk"
    top = cfg.red_share + cfg.yellow_share
    if level == 2:
        return f"churn probability {x:.0%}: among the {cfg.red_share:.0%} highest {by}"
    if ranked == 2:  # ranked red, kept below it by the red floor
        return (
            f"churn probability "
            f"{_below(x, cfg.yellow_min_probability if level == 0 else cfg.red_min_probability)}"
            ": among the "
            f"{cfg.red_share:.0%} highest {by}, but "
            f"red needs at least {cfg.red_min_probability:.0%}"
            + (f" and yellow {cfg.yellow_min_probability:.0%}" if level == 0 else "")
        )
    if level == 1:
        return f"churn probability {x:.0%}: among the {top:.0%} highest {by}"
    if ranked == 1:  # ranked yellow, kept green by the yellow floor
        return (
            f"churn probability {_below(x, cfg.yellow_min_probability)}: among the {top:.0%} "
            f"highest {by}, but yellow needs "
            f"at least {cfg.yellow_min_probability:.0%}"
        )
    return f"churn probability {x:.0%}: not among the {top:.0%} highest {by}"


def _below(x: float, floor: float) -> str:
    """``x`` as a percentage that reads below ``floor`` (29.7%, where whole percents would
    print "30%: ..., but yellow needs at least 30%")."""
    for digits in range(0, 4):
        text = f"{x:.{digits}%}"
        if float(text.rstrip("%")) / 100 < floor:
            return text
    return f"{x:.3%}"


def renewal_due(
    actions: np.ndarray,
    days_to_end: np.ndarray,
    running: np.ndarray,
    cfg: HealthConfig,
    grace_days: int = 0,
    silence_days: np.ndarray | None = None,
) -> np.ndarray:
    """``actions`` with :attr:`HealthConfig.renewal_action` where a running contract ends
    within ``renewal_due_days``: a tier-A account whose contract ended the next day was told
    to "raise at the next quarterly strategic meeting", and a green one ending in 9 days to
    "keep the quarterly strategic meeting". Once the contract has ended with none running,
    for ``grace_days`` (``lifecycle.contract_grace_days``: it may still be renewed),
    :attr:`HealthConfig.renewal_overdue_action`: a tier-A account turned green the week its
    759,200 contract ended, told to "keep the quarterly strategic meeting".

    ``silence_days``: days since the last order of the accounts that have stopped ordering
    under the running contract (NaN for the others): their renewal action is
    :attr:`HealthConfig.renewal_silent_action` (a monthly payer silent 231 days was told to
    "agree the renewal with the buyer now")."""
    if cfg.renewal_due_days is None:
        return actions
    d = np.asarray(days_to_end, float)
    run = np.asarray(running, bool)
    due = run & np.isfinite(d) & (d >= 0) & (d <= cfg.renewal_due_days)
    ended = ~run & np.isfinite(d) & (d < 0) & (d >= -grace_days)
    quiet = np.full(len(d), np.nan) if silence_days is None else np.asarray(silence_days, float)
    silent = due & np.isfinite(quiet)
    out = np.asarray(actions, dtype=object).copy()
    for mask, text in (
        (due & ~silent, cfg.renewal_action),
        (silent, cfg.renewal_silent_action),
        (ended, cfg.renewal_overdue_action),
    ):
        out[mask] = [
            _with_days(text, x).replace("{silence}", n_days(q) if np.isfinite(q) else "")
            for x, q in zip(d[mask], quiet[mask], strict=True)
        ]
    return out


def _with_days(text: str, days: float) -> str:
    """``{days}`` said: 'in {days}' as 'today' on the day itself."""
    if round(days) == 0:
        return text.replace("in {days}", "today").replace("{days}", "0 days")
    return text.replace("{days}", n_days(abs(days)))


def recommended_actions(
    lights: np.ndarray, tiers: pd.Series | np.ndarray, cfg: HealthConfig
) -> np.ndarray:
    """The configured action for each (ABC tier, light); tier C's when the tier is unknown."""
    tiers_arr = pd.Series(np.asarray(tiers, dtype=object)).fillna("C").astype(str).to_numpy()
    out = []
    for light, tier in zip(lights, tiers_arr, strict=True):
        table = cfg.actions.get(tier) or cfg.actions.get("C") or {}
        out.append(table.get(str(light), ""))
    return np.asarray(out, dtype=object)
