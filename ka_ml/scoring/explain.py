"""Plain-language reasons behind each churn score, from exact TreeSHAP values.

LightGBM's ``pred_contrib`` gives exact TreeSHAP values in log-odds; they add up to the
booster's margin (checked in the tests). They are measured from the model's reason
reference, the typical account that gets a light in training (each feature's mean
contribution over those accounts is subtracted; :func:`reason_reference`), so "raises risk"
means riskier than that account. Managers read probabilities, so each account's
contributions are rescaled by the secant slope of its calibrated probability between the
reference and its own margin: contributions in probability points then add up exactly to
(its churn probability - the reference probability).

Related features are grouped before ranking (the 30/90/180/365-day order counts are one
"order volume" reason, the time since the last order and the gap statistics one "purchase
rhythm" reason, the whole-history totals and rates one "buying history" reason), so the top
three reasons are three different things; the sentence comes from the group's strongest feature through the
feature catalog, with the account's own values. Static facts (industry, region, a table
with no rows for the account such as "No contract on record", a contract that ended more
than the horizon before the account's last order) never lead while a behavioural reason
moving the risk the same way carries at least one probability point: "Region: Portugal" is
true to the model and useless to a manager. An account whose risk rose from the reference
leads with what raised it; once the lights are set a red or yellow account never leads with
what lowers its risk while a shown reason raises it (:func:`lead_flagged_with_what_raised`).
A contract date still to come ("Contract ends in 42 days") is when, not why: under a contract
churn label it is most of every renewal's risk and the action already says it, so it gives
the lead to behaviour moving the risk the same way by a point, as a static fact does.

A reason never says the opposite of its own words: a group is said through the member that
pushes hardest the way the group moves the risk, preferring one whose sentence agrees with
that way (the catalog's ``risk_rises_when``: not "Survey score up 3 points (raises risk)" nor
"Usage ... fell 6% (lowers risk)", which the model can mean against its reference account
but a manager reads as an error); a group with no such member goes after every other group,
and a clause that would read against the direction is left out of the sentence.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import survey_kinds
from ka_ml.features import catalog
from ka_ml.modeling.churn import ChurnModel
from ka_ml.scoring.lifecycle import bought_since_contract_end, float_column, lifecycle_states

GROUPS: tuple[tuple[str, str], ...] = (
    (r"^orders_\d+d$|^orders_trend", "order volume"),
    (r"^spend_\d+d$|^spend_trend|^spend_slope", "spend"),
    # one reason: the silence is said against the typical gap ("No order for 95 days (typical
    # gap 56 days)"), and apart, "Typical time between orders: 56 days" followed it as a
    # third reason on 152 of the demo's 500 red and yellow accounts
    (r"^gap_|^recency_days$|^overdue_ratio$|^recency_tenure_ratio$", "purchase rhythm"),
    (r"^(orders|spend)_(lifetime|per_month)$|^repeat_orders$|^active_span_days$", "buying history"),
    (r"^next_order_days_years_before$", "season"),
    (r"^products_", "product breadth"),
    (r"^aov_|^first_order_amount$", "order value"),
    (r"^usage_", "product usage"),
    (r"^tickets_|^open_tickets$|^resolve_days|^severe_ticket", "support tickets"),
    (r"^complaints_|^open_critical", "complaints"),
    (r"^survey_", "survey"),
    (r"^contract_|^has_active_contract$", "contract"),
    (r"^revenue_share$|^abc_tier$|^dependency_index$", "portfolio position"),
    (r"^tenure_days$", "time as a customer"),
    (r"^credit_share_", "returns and credits"),
    (r"^industry$", "industry"),
    (r"^region$", "region"),
)
# Every catalog feature matches one pattern (a test walks the catalog): a feature outside
# every group would reach a manager as its code ("biggest mover: tenure_days").
# Who the account is, not what it does: true to the model, but little a manager can act
# on, so never the first reason while a behavioural reason moves the risk the same way by
# at least BEHAVIOURAL_POINTS (1 probability point); it may still be the second or third.
# Reasons whose leading value is missing ("No contract on record") count as static too.
STATIC_FEATURES: frozenset[str] = frozenset(catalog.CATEGORICAL_FROM_ACCOUNTS)
BEHAVIOURAL_POINTS = 0.01
# a group's move since last week smaller than this (half a point) is no change to report
MATERIAL_POINTS = 0.005


def reason_group(feature: str) -> str:
    """The reason group of ``feature`` in a manager's words ("order volume"); a feature no
    pattern matches stands alone under its own name."""
    for pattern, group in GROUPS:
        if re.search(pattern, feature):
            return group
    return feature


def probability_contributions(
    model: ChurnModel, X: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, float]:
    """(contributions in probability points (n x f), calibrated p (n), base probability).

    The base is the model's reason reference when training attached one
    (``reason_reference_``: the typical account that gets a light), else TreeSHAP's
    expected value over every training row. Measured from the reference, each feature's
    log-odds contribution is TreeSHAP's minus its mean over those accounts, which still adds
    up to the margin minus the reference's. Each row's log-odds contributions are scaled by
    one positive factor, so their order and signs are kept. The factor is the secant slope
    of the calibrated probability between the base value and the row's margin, so the
    contributions add up to (p - base p). Where calibration is flat there (isotonic steps,
    |p - base p| < 0.5 points) the raw booster probability's secant is used instead, which
    never vanishes.
    """
    contrib = model.contributions(X)
    phi = contrib[:, :-1]
    base = float(contrib[0, -1]) if len(contrib) else 0.0
    ref = getattr(model, "reason_reference_", None)
    if ref is not None and len(ref) == phi.shape[1]:
        phi = phi - np.asarray(ref, float)[None, :]
        base += float(np.sum(ref))
    total = phi.sum(axis=1)
    p = model.predict_proba(X)[:, 1]
    cal = model.calibrator_
    p_base = float(cal.transform(np.array([base]))[0]) if cal else float(_sig(np.array([base]))[0])
    raw_gap = _sig(base + total) - _sig(np.array([base]))[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        slope_cal = (p - p_base) / total
        slope_raw = np.where(np.abs(total) > 1e-9, raw_gap / total, _dsig(base + total))
    use_cal = (np.abs(p - p_base) >= 0.005) & (slope_cal > 0) & np.isfinite(slope_cal)
    slope = np.where(use_cal, slope_cal, slope_raw)
    return phi * slope[:, None], p, p_base


# accounts sampled to measure the reasons' reference: the mean's standard error is then a
# seventieth of the contributions' spread
REFERENCE_ROWS = 5000


def reason_accounts(rows: pd.DataFrame, cfg: Config) -> pd.DataFrame:
    """The accounts the reasons are measured from: those that would get a light (not
    lapsed) on the latest snapshot of ``rows``, a seeded sample of at most REFERENCE_ROWS
    (empty when there are none). Training draws them once for :func:`reason_reference`
    and :func:`reason_typical`."""
    if rows.empty:
        return rows
    latest = rows[rows["as_of"] == rows["as_of"].max()]
    lit = latest[(lifecycle_states(latest, cfg)["lifecycle"] != "lapsed").to_numpy()]
    return lit.sample(min(len(lit), REFERENCE_ROWS), random_state=cfg.seed)


def reason_reference(model: ChurnModel, lit: pd.DataFrame) -> np.ndarray | None:
    """The point the reasons are measured from: each feature's mean log-odds contribution
    over the accounts that would get a light (``lit``: :func:`reason_accounts`). None when
    there are none.

    TreeSHAP measures from the average of every training row; where most of those are lost
    customers (CDNOW: 72% lapsed, base near 0.8) a yellow account at 59% reads three reasons
    that "lower" its risk. Measured from the typical lit account, "raises risk" means
    riskier than that account, which is what the lights compare.
    """
    if lit.empty:
        return None
    return np.asarray(model.contributions(lit)[:, :-1].mean(axis=0), float)


def reason_typical(model: ChurnModel, lit: pd.DataFrame) -> dict[str, float]:
    """The typical account the reasons are measured from, in values a manager can compare
    with: the median of each model feature whose sentences say ``{typical}`` (window counts
    and spends, the silence, gaps, tenure, order values, complaint rates, ...:
    :func:`ka_ml.features.catalog.with_typical`) over the same accounts as
    :func:`reason_reference` (``lit``). Empty when there are none.

    "Orders in the last 90 days: 1 (raises risk)" was said without the account's average
    where that average reads against the risk (1.1): 100 of the demo's ~1,500 red and
    yellow reasons, 37 of them a first reason. Steady for the account, it raises the risk
    against the accounts the lights compare it with, and 67 of them now say so ("2 at a
    typical account"); the other 33 sit at the typical value. Levels said with no yardstick
    at all ("Average time between orders: 96 days", "Customer for 10.4 years", "No order
    for 52 days (typical gap 78 days)", each "(raises risk)") now say the typical
    account's value too."""
    out: dict[str, float] = {}
    for f in model.features_:
        if f not in lit or not _says_typical(f):
            continue
        values = pd.to_numeric(lit[f], errors="coerce").dropna()
        if len(values):
            out[f] = float(values.median())
    return out


def _says_typical(feature: str) -> bool:
    """Whether a catalog template of ``feature`` says ``{typical}``."""
    try:
        spec = catalog.get(feature)
    except KeyError:
        return False
    return any("{typical}" in t for t in spec.templates)


def _sig(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, float)))


def _dsig(x: np.ndarray) -> np.ndarray:
    s = _sig(x)
    return s * (1 - s)


def _group_index(feats: list[str]) -> tuple[list[str], np.ndarray]:
    """(sorted reason-group names, the group index of each feature)."""
    groups = [reason_group(f) for f in feats]
    names = sorted(set(groups))
    return names, np.array([names.index(g) for g in groups], dtype=int)


def _group_sums(values: np.ndarray, gidx: np.ndarray, n_groups: int) -> np.ndarray:
    """Per-row sums of ``values`` (n x f) over each group's features (n x groups)."""
    out = np.zeros((len(values), n_groups))
    for j in range(values.shape[1]):
        out[:, gidx[j]] += values[:, j]
    return out


def _group_leads(strength: np.ndarray, gidx: np.ndarray, n_groups: int) -> np.ndarray:
    """For each row and group, the member feature with the largest ``strength`` (n x groups).

    Ties go to the first member in model-feature order (``np.argmax``).
    """
    out = np.zeros((len(strength), n_groups), dtype=int)
    for g in range(n_groups):
        members = np.flatnonzero(gidx == g)
        out[:, g] = members[np.argmax(strength[:, members], axis=1)]
    return out


def _template_fields(spec: catalog.FeatureSpec) -> list[str]:
    """The other features a spec's templates (and its ``measured_from``, ``absent_with``, and
    the ``reads_as`` of its ``clause_when_late``) mention (``{value}`` is the spec's own)."""
    templates = (*spec.zero_templates, *spec.templates)
    fields = {f for t in templates for _, f, _, _ in string.Formatter().parse(t) if f}
    if spec.measured_from is not None:
        fields.add(spec.measured_from[0])
    if spec.absent_with:
        fields.add(spec.absent_with)
    if spec.clause_when_late and spec.reads_as:
        fields.add(spec.reads_as)
    if "usual" in fields:
        fields |= {spec.per_month, "tenure_days"}
    return sorted(fields - {"value", "usual", "typical"})


def _describe_rows(
    X: pd.DataFrame,
    rows: np.ndarray,
    lead: np.ndarray,
    feats: list[str],
    currency: str = "",
    raises: np.ndarray | None = None,
    typical: Mapping[str, float] | None = None,
) -> list[str]:
    """``catalog.get(feats[lead[i]]).describe(...)`` for row ``rows[i]`` of ``X``, for every i.

    The same sentences as describing each row from its full record, built per lead feature
    from just the columns its templates read, and once per distinct set of those values.
    ``raises`` (per i: the sentence is followed by "(raises risk)", else "(lowers risk)"):
    a clause of another feature that would read against it is left out, so the template
    without it is used ("Latest survey score 6/10 (raises risk)", not "Latest survey score 6/10,
    up 3 points (raises risk)"). ``typical`` (:func:`reason_typical`): the value at the
    typical account, said where the sentence's own comparison (a window's average, the
    silence against the own cycle) does not show why the value moves the risk the way it
    does (against it, or none) and the typical account's does
    (:meth:`ka_ml.features.catalog.FeatureSpec.agrees_with`).
    """
    out: list[str] = [""] * len(rows)
    for j in np.unique(lead):
        where = np.flatnonzero(lead == j)
        spec = catalog.get(feats[j])
        others = [f for f in _template_fields(spec) if f in X.columns]
        sub = X.iloc[rows[where]]
        columns = [sub[feats[j]].tolist(), *(sub[f].tolist() for f in others)]
        if raises is not None:
            for k, f in enumerate(others, start=1):
                against = _reads_backwards(sub[[f]], [f], raises[where][:, None])[:, 0]
                columns[k] = [np.nan if a else v for a, v in zip(against, columns[k], strict=True)]
        # the typical account's value where it shows why the value moves the risk the way
        # it does ("Average time between orders: 96 days (31 days at a typical account)")
        ref = np.full(len(where), np.nan)
        if raises is not None and typical and feats[j] in typical:
            at = np.full(len(where), typical[feats[j]])
            ref = np.where(spec.agrees_with(columns[0], at, raises[where]), at, np.nan)
            if spec.reads_as and spec.reads_as in sub:
                # "No order for 124 days (typical gap 13 days)" says it by the own cycle;
                # "No order for 52 days (typical gap 78 days)" does not
                ratio = pd.to_numeric(sub[spec.reads_as], errors="coerce").to_numpy(float)
                ref[catalog.get(spec.reads_as).shows(ratio, raises[where])] = np.nan
        if {spec.per_month, "tenure_days"} <= set(others):
            # "1 (5.4 in an average 90 days)": the average for every row at once, left out
            # where it reads against the risk's way, and passed as its words, so rows that
            # say the same share one sentence (raw rates and tenures never repeat)
            k, t = others.index(spec.per_month) + 1, others.index("tenure_days") + 1
            usual = spec.usual(columns[k], columns[t])
            if raises is not None:
                against = spec.usual_reads_against(columns[0], usual, raises[where])
                # "1 (1.1 in an average 90 days; 3 at a typical account) (raises risk)": the
                # typical account only where the own average does not say why
                ref[~(against | ~np.isfinite(usual))] = np.nan
                usual[against & ~np.isfinite(ref)] = np.nan
            columns = [c for i, c in enumerate(columns) if i not in (k, t)]
            others = [f for f in others if f not in (spec.per_month, "tenure_days")]
        else:
            usual = np.full(len(where), np.nan)
        if np.isfinite(usual).any() or np.isfinite(ref).any():
            words = {u: spec.say_usual(u, currency) for u in np.unique(usual[np.isfinite(usual)])}
            said_ref: list[object] = [np.nan] * len(where)
            shown = np.flatnonzero(np.isfinite(ref))
            if len(shown):  # one typical value per feature
                at_words = spec.say_typical(float(ref[shown[0]]), currency)
                said = {v: spec.format(v, currency) for v in {columns[0][i] for i in shown}}
                for i in shown:
                    # apart by more than 5% but the same in words ("0.00 (0.00 at a typical
                    # account)") shows nothing
                    if said[columns[0][i]] != at_words:
                        said_ref[i] = at_words
            columns += [[words.get(u, np.nan) for u in usual.tolist()], said_ref]
            others += ["usual", "typical"]
        memo: dict[tuple[str, ...], str] = {}
        for i, values in zip(where, zip(*columns, strict=True), strict=True):
            key = tuple(map(repr, values))  # exact: tells -0.0 from 0.0, 1 from 1.0
            text = memo.get(key)
            if text is None:
                text = spec.describe(
                    values[0], other=dict(zip(others, values[1:], strict=True)), currency=currency
                )
                memo[key] = text
            out[i] = text
    return out


def _preferred(
    size: np.ndarray, along: np.ndarray, static: np.ndarray, threshold: float
) -> np.ndarray:
    """Per row, the group to name first (n x groups in, n out): the largest ``size`` among
    the behavioural groups of at least ``threshold`` pointing ``along`` the way the risk
    moved; else the largest such static fact; else the largest behavioural group of at
    least ``threshold``; else the largest of all. The reasons' lead and the weekly change's
    mover are both chosen so."""
    counts = size >= threshold
    rank = np.select(
        [counts & ~static & along, counts & along, counts & ~static], [0, 1, 2], default=3
    )
    return np.argmin(rank * 2.0 - size, axis=1)  # sizes are probability points (< 1): rank first


def _static_groups(
    raw: pd.DataFrame,
    feats: list[str],
    names: list[str],
    leads: np.ndarray,
    recent_lapse_days: float,
) -> np.ndarray:
    """Which reason groups state who each account is rather than what it does (n x groups).

    An account attribute (industry, region); a group whose leading feature (``leads``) has
    no value on the row ("No contract on record"), or is said as its table's absence
    (``absent_with``: "No product usage on record"); a contract that ended more than
    ``recent_lapse_days`` before the account's last order (it buys without one: "Contract
    lapsed 775 days ago" is who it is now, not why it is at risk this week).
    """
    missing = (
        np.column_stack(
            [raw[f].isna().to_numpy() if f in raw else np.zeros(len(raw), bool) for f in feats]
        )
        if len(feats)
        else np.zeros((len(raw), 0), bool)
    )
    past = bought_since_contract_end(raw) & ~(
        float_column(raw, "contract_days_to_end") >= -recent_lapse_days
    )
    for j, f in enumerate(feats):
        if reason_group(f) == "contract":
            missing[:, j] |= past
        absent = _absent_with(f)
        if absent and absent in raw:  # said as its table's absence: "No product usage on record"
            missing[:, j] |= raw[absent].isna().to_numpy()
    every = np.arange(len(raw))
    return np.array([n in STATIC_FEATURES for n in names])[None, :] | missing[every[:, None], leads]


# added to a group's sort key to put it after every group that can be said (sizes are
# probability points, below 1)
_UNSAID = 10.0


def _reads_backwards(raw: pd.DataFrame, feats: list[str], raises: np.ndarray) -> np.ndarray:
    """Per row and feature (n x f), whether the feature's sentence followed by "(raises
    risk)" (``raises``) or "(lowers risk)" contradicts itself
    (:meth:`ka_ml.features.catalog.FeatureSpec.reads_backwards`). A value said as its table's
    absence ("No product usage on record") is a fact, never backwards."""
    out = np.zeros(raises.shape, bool)
    for j, f in enumerate(feats):
        try:
            spec = catalog.get(f)
        except KeyError:
            continue
        if spec.reads_as and spec.reads_as in raw:  # "No order for 1 day" by its cycle
            judge = catalog.get(spec.reads_as)
            values = pd.to_numeric(raw[spec.reads_as], errors="coerce").to_numpy(float)
            out[:, j] = judge.reads_backwards(values, raises[:, j])
            continue
        if not spec.risk_rises_when or f not in raw:
            continue
        values = pd.to_numeric(raw[f], errors="coerce").to_numpy(float)
        out[:, j] = spec.reads_backwards(values, raises[:, j])
        if spec.absent_with and spec.absent_with in raw:
            out[:, j] &= raw[spec.absent_with].notna().to_numpy()
    return out


def _calendar_groups(
    raw: pd.DataFrame, feats: list[str], names: list[str], leads: np.ndarray
) -> np.ndarray:
    """Which reason groups say when rather than why (n x groups): the contract group said
    through a contract that has not ended ("Contract ends in 12 days"). Under a contract
    churn label that date is the largest part of every renewal's risk, and the action says
    it already ("Renewal due in 12 days: ..."); what makes this renewal risky (usage, a
    survey, complaints) then leads. A lapsed contract is news and stays a reason like any
    other."""
    out = np.zeros((len(raw), len(names)), bool)
    if "contract" not in names or "contract_days_to_end" not in feats:
        return out
    g = names.index("contract")
    said = np.asarray(feats, dtype=object)[leads[:, g]] == "contract_days_to_end"
    out[:, g] = said & (float_column(raw, "contract_days_to_end") >= 0)
    return out


def _absent_with(feature: str) -> str:
    """The catalog's ``absent_with`` of ``feature`` ('' for a feature outside the catalog)."""
    try:
        return catalog.get(feature).absent_with
    except KeyError:
        return ""


_WINDOW_COUNT = re.compile(r"^(orders|spend)_(\d+)d$")
_WINDOW_TREND = re.compile(r"^(orders|spend)_trend_(\d+)d$")


# what the one order of an account with a single order day says again: its counts, spend,
# order value and totals, and its rhythm but for the days since that order ("Fewer than two
# order days: no purchase rhythm yet", "100% of the time since the first order")
_ONE_ORDER_GROUPS = frozenset(
    {"order volume", "spend", "order value", "buying history", "purchase rhythm"}
)


def fold_implied(contrib: np.ndarray, raw: pd.DataFrame, feats: list[str]) -> np.ndarray:
    """Contributions (n x f) with what the silence already says moved onto
    ``recency_days``: a window count or spend of 0 ("Orders in the last 90 days: 0"), and
    its trend against the window before ("Orders in the last 90 days -100% versus the 90
    days before"), are "No order for 124 days" said again. On the demo 95 of 167 red
    accounts read both as two of their three reasons, beside "No contract on record": one
    fact twice and room for one real reason. Each row's sum is unchanged (the folded
    points join the time since the last order); rows without a last order keep theirs.

    Then, for an account with a single order day (``repeat_orders`` 0), what is left of its
    order counts, spends, order value, whole-history totals and purchase rhythm (the days
    since that order apart) moves onto ``repeat_orders``: they are that one order said
    again. A distributor's new account, red
    the week of its first order, read "Average order value in the last 365 days: 9,777
    (raises risk)", "Orders in the last 90 days: 1 (raises risk)", "Spend in the last 30
    days: 9,777 (raises risk)"; it now reads "One order day so far (9,777 spent), no repeat order
    yet (raises risk)": what the model weighs, a first order not yet followed by another."""
    if not len(raw):
        return contrib
    out = np.array(contrib, dtype=float, copy=True)
    if "recency_days" in feats:
        _fold_silence(out, raw, feats)
    if "repeat_orders" in feats:
        target = feats.index("repeat_orders")
        one = float_column(raw, "repeat_orders") == 0
        for j, f in enumerate(feats):
            if j != target and f != "recency_days" and reason_group(f) in _ONE_ORDER_GROUPS:
                out[one, target] += out[one, j]
                out[one, j] = 0.0
    return out


def _fold_silence(out: np.ndarray, raw: pd.DataFrame, feats: list[str]) -> None:
    """:func:`fold_implied`'s first step, in place on ``out``."""
    target = feats.index("recency_days")
    recency = float_column(raw, "recency_days")  # NaN: no order on record, nothing folded
    for j, f in enumerate(feats):
        match = _WINDOW_COUNT.match(f) or _WINDOW_TREND.match(f)
        if not match:
            continue
        # silent through the whole window, and nothing in it (credits would say more)
        window = f"{match[1]}_{match[2]}d"
        fold = (recency >= int(match[2])) & (float_column(raw, window) == 0)
        out[fold, target] += out[fold, j]
        out[fold, j] = 0.0


def top_reasons(
    model: ChurnModel,
    X: pd.DataFrame,
    n_reasons: int = 3,
    contributions: np.ndarray | None = None,
    *,
    recent_lapse_days: float = 0.0,
    currency: str = "",
) -> pd.DataFrame:
    """reason_k, reason_k_feature, reason_k_shap, reason_k_direction for k = 1..n.

    ``contributions``: ``probability_contributions(model, X)[0]`` when the caller has it
    already (the scorer does: one TreeSHAP pass serves the reasons and the weekly change).
    ``recent_lapse_days``: a contract that ended at most this many days ago is news even
    when the account has ordered since (the scorer passes the churn horizon: the renewal
    that has not happened yet); an older one is who the account is now (static).
    ``currency``: ``report.currency``, said with money values ("25,706 EUR").
    """
    contrib = probability_contributions(model, X)[0] if contributions is None else contributions
    feats = model.features_
    raw = X.reset_index(drop=True)
    contrib = fold_implied(contrib, raw, feats)
    names, gidx = _group_index(feats)
    gsum = _group_sums(contrib, gidx, len(names))
    every = np.arange(len(X))
    # Each group is said through the member pushing hardest the way the group moves the
    # risk, one whose sentence does not contradict that way if it has one; a group whose
    # every member would ("Survey score up 3 points (raises risk)") goes after the others.
    raises = gsum[:, gidx] > 0
    backwards = _reads_backwards(raw, feats, raises)
    push = np.where(raises, contrib, -contrib) - backwards * _UNSAID
    leads = _group_leads(push, gidx, len(names))
    # a group with no contribution at all (its points folded into the silence) says nothing
    unsaid = backwards[every[:, None], leads] | (gsum == 0)
    static = _static_groups(raw, feats, names, leads, recent_lapse_days)
    calendar = _calendar_groups(raw, feats, names, leads)
    strength = np.abs(gsum)
    order = np.argsort(unsaid * _UNSAID - strength, axis=1, kind="stable")
    # The lead, in this order of preference: the strongest behavioural reason that moves
    # the risk by a point the way the account's risk moved from the reference (the
    # contributions' sum); else the strongest fact moving it that way by a point ("No
    # contract on record (raises risk)" for a yellow account, not "No order for 26 days,
    # typical gap 34 (lowers risk)"); else the strongest behavioural reason carrying a
    # point; else the model's strongest. An account whose risk rose never leads with what
    # lowers it while something raising it counts. Where the risk fell, only a static lead
    # is reconsidered: "Contract ends in 7 days (raises risk)" still leads a green account.
    # The others keep their order.
    total = gsum.sum(axis=1)
    moved = np.sign(gsum) == np.sign(total)[:, None]
    if len(names):
        aside = static | calendar  # what never leads while behaviour carries a point
        # Where the risk fell: only a static lead is reconsidered, the others keep their order.
        fell = ~(total > 0)
        best = _preferred(np.where(unsaid, -1.0, strength), moved, aside, BEHAVIOURAL_POINTS)
        lead = np.where(aside[every, order[:, 0]], best, order[:, 0])
        for i in np.flatnonzero(fell & (lead != order[:, 0])):
            row = order[i]
            j = int(np.flatnonzero(row == lead[i])[0])
            order[i] = np.r_[row[j], row[:j], row[j + 1 :]]
        # An account riskier than the reference reads every reason in the same order, the
        # lead included: what it does that raises the risk, then who it is ("No contract on
        # record", on every red of the demo, second of three after the lead), then what
        # lowers it; each by size.
        risen = np.flatnonzero(~fell)
        if len(risen):
            counts = (strength[risen] >= BEHAVIOURAL_POINTS) & ~unsaid[risen]
            up, side = moved[risen], aside[risen]
            rank = np.select([counts & ~side & up, counts & up, counts & ~side], [0, 1, 2], 3)
            key = unsaid[risen] * _UNSAID + rank * 2.0 - strength[risen]
            order[risen] = np.argsort(key, axis=1, kind="stable")
    order = order[:, :n_reasons]
    out: dict[str, list[object]] = {}
    for k in range(n_reasons):
        if k >= len(names):
            out[f"reason_{k + 1}"] = [""] * len(X)
            out[f"reason_{k + 1}_feature"] = [""] * len(X)
            out[f"reason_{k + 1}_shap"] = [np.nan] * len(X)
            out[f"reason_{k + 1}_direction"] = [""] * len(X)
            continue
        g = order[:, k]
        lead = leads[every, g]
        value = gsum[every, g]
        blank = value == 0  # fewer groups with points than reasons
        direction = np.where(value > 0, "raises risk", "lowers risk").astype(object)
        direction[blank] = ""
        sentences = _describe_rows(
            raw,
            every,
            lead,
            feats,
            currency,
            raises=value > 0,
            typical=getattr(model, "reason_typical_", None),
        )
        out[f"reason_{k + 1}"] = [
            f"{s} ({d})" if d else "" for s, d in zip(sentences, direction, strict=True)
        ]
        out[f"reason_{k + 1}_feature"] = [
            "" if b else feats[j] for j, b in zip(lead, blank, strict=True)
        ]
        out[f"reason_{k + 1}_shap"] = np.where(blank, np.nan, value).tolist()
        out[f"reason_{k + 1}_direction"] = direction.tolist()
    return pd.DataFrame(out, index=X.index)


def changes_since(
    model: ChurnModel,
    now: pd.DataFrame,
    before: pd.DataFrame | None,
    now_p: np.ndarray,
    now_contributions: np.ndarray | None = None,
    *,
    before_contributions: np.ndarray | None = None,
    before_p: np.ndarray | None = None,
    recent_lapse_days: float = 0.0,
    currency: str = "",
    reported_p: np.ndarray | None = None,
    new_model: str = "",
) -> pd.Series:
    """What moved each account's risk most since the previous scoring date.

    The mover named is the group whose contribution moved most the way the risk moved, by
    at least half a point, preferring what the account does over who it is (the static
    groups of :func:`top_reasons`, with the same ``recent_lapse_days``): "No contract on
    record" or "Contract lapsed 592 days ago" said nothing new this week, their points
    moved with the other features they interact with.

    Either ``before_contributions`` and ``before_p``: what the previous run reported (its
    stored contributions, in this model's feature order, and its probabilities; NaN rows
    for accounts it did not score), so the change agrees with ``churn_probability_prev``
    and needs no second TreeSHAP pass; or ``before``: the same accounts' features one week
    earlier (same row order; all-NaN rows for accounts not eligible then), explained now.
    ``now_contributions``: ``probability_contributions(model, now)[0]`` when the caller
    has it already.

    ``reported_p`` (with ``before``): the probabilities the previous run reported, when
    ``before`` is explained again; the move told is then against them (as
    ``churn_probability_prev`` shows it), and with ``new_model`` (a churn model change,
    "v1 to v2") the part the new model made (its probability on last week's features minus
    the reported one) is said apart from the data's, whose mover is named as usual. A
    move of a point or more with no behavioural group moving half a point is said to be
    "from several small changes together", not "no material change", and no static fact
    is named.
    ``currency``: as in :func:`top_reasons`.
    """
    c_now = (
        probability_contributions(model, now)[0] if now_contributions is None else now_contributions
    )
    if before_contributions is not None and before_p is not None:
        c_before, p_before = before_contributions, np.asarray(before_p, float)
    elif before is not None:
        c_before, p_before, _ = probability_contributions(model, before)
    else:
        raise ValueError("changes_since needs the previous run's contributions or features")
    feats = model.features_
    names, gidx = _group_index(feats)
    moved = c_now - c_before
    delta = _group_sums(moved, gidx, len(names))
    every = np.arange(len(now))
    dp = (np.asarray(now_p, float) - p_before) * 100  # the data's move, under this model
    by_model = np.zeros(len(now))
    if reported_p is not None:  # the move shown is against what was reported
        by_model = (p_before - np.asarray(reported_p, float)) * 100 if new_model else by_model
        total = (np.asarray(now_p, float) - np.asarray(reported_p, float)) * 100
    else:
        total = dp
    leads = _group_leads(np.abs(moved), gidx, len(names))
    static = _static_groups(now.reset_index(drop=True), feats, names, leads, recent_lapse_days)
    along = np.sign(delta) == np.sign(dp)[:, None]
    best = _preferred(np.abs(np.nan_to_num(delta)), along, static, MATERIAL_POINTS)
    best_delta = delta[every, best]
    finite = np.isfinite(total) & np.isfinite(dp)
    texts = np.where(finite, "No material change since last week.", "").astype(object)
    shown = dp if new_model else total  # a new model's part is told apart, below
    # a fact about who the account is ("No contract on record") changed nothing this week:
    # its points moved with what it interacts with, so it is never named the mover
    named = ~(np.abs(best_delta) < MATERIAL_POINTS) & ~static[every, best]
    spread = finite & ~named & (np.round(np.abs(shown)) >= 1)
    texts[spread] = [
        f"{_risk_moved(d)} since last week, from several small changes together."
        for d in shown[spread].tolist()
    ]
    told = np.flatnonzero(finite & named)
    if len(told):
        lead = leads[told, best[told]]
        sentences = _describe_rows(now.reset_index(drop=True), told, lead, feats, currency)
        texts[told] = [
            f"{_risk_moved(d)} since last week; biggest mover: {names[g]} ({_points(v * 100)}"
            f"{', offset by the rest' if round(abs(d)) == 0 else ''}): {s}."
            for d, g, v, s in zip(
                shown[told].tolist(), best[told], best_delta[told].tolist(), sentences, strict=True
            )
        ]
    if new_model:
        texts = _with_model_change(texts, finite, total, by_model, new_model)
    return pd.Series(texts.tolist(), index=now.index)


def _with_model_change(
    texts: np.ndarray, finite: np.ndarray, total: np.ndarray, by_model: np.ndarray, new: str
) -> np.ndarray:
    """Each move told as the new churn model's part and the data's (``texts``: the data's
    move under the new model, as :func:`changes_since` words it)."""
    out = texts.copy()
    for i in np.flatnonzero(finite):
        data = str(texts[i]).removesuffix(".").replace(" since last week", "", 1)
        data = data[0].lower() + data[1:] if data else data
        moved = (
            f"which moved it {_points(by_model[i])}"
            if round(abs(by_model[i]))
            else "which moved it less than a point"
        )
        out[i] = (
            f"{_risk_moved(total[i])} since last week: the churn model was retrained ({new}), "
            f"{moved}; on the data, {data}."
        )
    return out


def _risk_moved(points: float) -> str:
    """ "Risk up 4 pts", "Risk down 1 pt"; "Risk unchanged" under half a point (never
    "Risk up 0 pts" above a mover of +3)."""
    if round(abs(points)) == 0:
        return "Risk unchanged"
    return f"Risk {'up' if points > 0 else 'down'} {_points(abs(points)).lstrip('+')}"


def _points(points: float) -> str:
    """Signed whole points with their unit: '+4 pts', '-1 pt' ('pt' for one)."""
    text = f"{points:+.0f}"
    return f"{text} {catalog.points_unit(float(text))}"


# the light a rule set ("raised to yellow: overdue: ... (churn probability 0%: ...)"): the
# rule's own words, without the ranking's reason in the last parenthesis
_RAISED_BY_RULE = re.compile(r"^raised to \w+: (?P<rule>.+?)(?: \([^()]*\))?$")
# the features a rule's reason is filed under (the digest's "Top reasons" group it so)
_RULE_FEATURES = (
    ("overdue", "overdue_ratio"),
    ("critical complaint", "open_critical_complaints"),
    ("shrinking baskets", "aov_change_365d"),
    ("renewal due", "contract_days_to_end"),
)


def lead_flagged_with_what_raised(scores: pd.DataFrame, n_reasons: int = 3) -> pd.DataFrame:
    """A red or yellow account never leads with a reason that lowers its risk.

    When its first reason lowers the risk, it leads with the strongest shown reason raising
    it: by at least MATERIAL_POINTS (half a point) for an account the ranking lit; by any
    amount for one a rule lit (``light_reason`` "raised to yellow: overdue ..." or "... an
    open critical complaint"), whose churn probability may be 0.05%, so its raising reasons
    are tiny: its light is the rule's, not the model's. A rule-lit account with no shown
    reason raising its risk leads with the rule itself ("Overdue: no order for 188 days,
    4.6x the typical gap of 41 days (raises risk)", no SHAP value), the model's reasons
    after it. The others keep their order.

    :func:`top_reasons` orients each account by the model's reference (TreeSHAP's base,
    the average of every training row, for a model trained without a reason reference);
    where that sits above the accounts that get a light (CDNOW: 72% of customers lapsed),
    a red account at 81% read "No order for 145 days, 46% of the time since the first
    order (lowers risk)" first: true against that base, but a manager asks why the account
    is red. Runs on the scores once the lights are set (both engines), so it reorders the
    columns it finds.
    """
    keys = [f"reason_{k}" for k in range(1, n_reasons + 1)]
    if not all(f"{k}_shap" in scores for k in keys) or "health" not in scores:
        return scores
    shap = np.nan_to_num(np.column_stack([scores[f"{k}_shap"].to_numpy(float) for k in keys]))
    flagged = scores["health"].astype(object).isin(["red", "yellow"]).to_numpy()
    rule = (
        scores["light_reason"]
        .astype(object)
        .fillna("")
        .astype(str)
        .str.extract(_RAISED_BY_RULE)["rule"]
        .fillna("")
        .to_numpy(object)
        if "light_reason" in scores
        else np.full(len(scores), "", dtype=object)
    )
    by_rule = rule != ""
    # who the account is (its industry, a missing table) never leads a rule-lit account: a
    # lab distributor's "raised to yellow: overdue (was green)" read "Industry: Pharma F&E"
    static = np.column_stack(
        [scores[f"{k}_feature"].astype(object).isin(STATIC_FEATURES).to_numpy() for k in keys]
    )
    raises = np.where(by_rule[:, None], (shap > 0) & ~static, shap >= MATERIAL_POINTS)
    leads_lower = flagged & ((shap[:, 0] < 0) | (by_rule & static[:, 0]))
    fix = leads_lower & raises[:, 1:].any(axis=1)
    told = leads_lower & by_rule & ~raises.any(axis=1)  # nothing shown raises it
    if not (fix.any() or told.any()):
        return scores
    out = scores.copy()
    fields = ("", "_feature", "_shap", "_direction")
    cols = {f: np.column_stack([out[f"{k}{f}"].to_numpy(object) for k in keys]) for f in fields}
    for i in np.flatnonzero(fix):
        j = int(np.argmax(np.where(raises[i], shap[i], -np.inf)))  # the strongest raising
        order = [j, *(k for k in range(n_reasons) if k != j)]
        for f in fields:
            cols[f][i] = cols[f][i, order]
    for i in np.flatnonzero(told):
        text = str(rule[i])
        feature = next((f for key, f in _RULE_FEATURES if key in text), "")
        first = (f"{text[:1].upper()}{text[1:]} (raises risk)", feature, np.nan, "raises risk")
        for f, value in zip(fields, first, strict=True):
            cols[f][i] = np.r_[np.array([value], dtype=object), cols[f][i, :-1]]
    for f in fields:
        for k, key in enumerate(keys):
            col = f"{key}{f}"
            out[col] = pd.Series(cols[f][:, k], index=out.index).astype(scores[col].dtype)
    return out


SURVEY_WORDS = ("Latest survey score", "Survey score")


def survey_kind_label(kind: str) -> str:
    """A survey kind as a manager reads it: 'nps' -> 'NPS', 'renewal_intent' -> 'renewal
    intent'."""
    k = str(kind).strip()
    return k.upper() if len(k) <= 4 and k.isalpha() else k.replace("_", " ").lower()


def latest_survey_kinds(surveys: pd.DataFrame | None, as_of: pd.Timestamp) -> pd.Series:
    """Per account the kind of its latest answer before ``as_of`` (where kinds met on that
    day, the last by name, as ``survey_score_change`` takes it); empty without kinds."""
    if surveys is None or surveys.empty or "kind" not in surveys:
        return pd.Series(dtype=object)
    day = pd.to_datetime(surveys["date"])
    kind = survey_kinds(surveys["kind"])
    s = pd.DataFrame({"account_id": surveys["account_id"].astype(str), "day": day, "kind": kind})[
        (day < as_of) & kind.notna() & surveys["score"].notna()
    ]
    if s.empty:
        return pd.Series(dtype=object)
    return s.sort_values(["account_id", "day", "kind"]).groupby("account_id")["kind"].last()


def name_survey_kinds(
    out: pd.DataFrame, surveys: pd.DataFrame | None, as_of: pd.Timestamp
) -> pd.DataFrame:
    """The reasons and the weekly change say which survey a score came from: "Latest NPS
    score 5/10", "Latest renewal intent score 2.5/10, down 2.5 points" (a software vendor's
    managers read "Latest survey score 2.5" with NPS and renewal intent in one table, and
    could not tell which). Unchanged where the table has no kinds."""
    kinds = latest_survey_kinds(surveys, as_of)
    if kinds.empty:
        return out
    label = out["account_id"].astype(str).map(kinds).map(survey_kind_label, na_action="ignore")
    has = label.notna().to_numpy()
    if not has.any():
        return out
    cols = [c for c in out.columns if re.fullmatch(r"reason_\d+", c)] + (
        ["changes"] if "changes" in out else []
    )
    for col in cols:  # one pass per kind (a handful), not per account
        text = out[col].astype("string")
        said = text.str.contains("urvey score", regex=False).fillna(False).to_numpy()
        for name in label[has].unique():
            rows = said & label.eq(name).fillna(False).to_numpy(dtype=bool)
            if not rows.any():
                continue
            upper = f"{name[:1].upper()}{name[1:]}"
            text[rows] = (
                text[rows]
                .str.replace(SURVEY_WORDS[0], f"Latest {name} score", regex=False)
                .str.replace(SURVEY_WORDS[1], f"{upper} score", regex=False)
            )
        out[col] = text.astype(out[col].dtype)
    return out
