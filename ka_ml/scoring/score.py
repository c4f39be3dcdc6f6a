"""Scoring, pure: champion models -> features as of the date -> scores, reasons, lights.

``score_and_explain`` takes the history, config, models and last week's stored run and
returns the scores frame (every contract column, the report's extras) with each account's
churn contributions; the job :mod:`ka_ml.jobs.score` adds the edges (registry, score
history, outputs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.errors import ModelError
from ka_ml.features.build import build_features
from ka_ml.features.catalog import ABC_CATEGORIES, n_days
from ka_ml.features.portfolio import sticky_tiers, tier_position
from ka_ml.modeling.timing import forecast_day
from ka_ml.scoring.explain import (
    changes_since,
    lead_flagged_with_what_raised,
    name_survey_kinds,
    probability_contributions,
    top_reasons,
)
from ka_ml.scoring.health import (
    assign_lights,
    overdue_multiple,
    recommended_actions,
    renewal_due,
    rhythm_quiet,
    rhythm_quiet_why,
    seen_before_why,
)
from ka_ml.scoring.lifecycle import (
    beyond_learnt,
    churn_definitions,
    expected_revenue,
    float_column,
    has_rhythm,
    lifecycle_states,
    pause_season,
    peer_season,
    quiet_as_before,
    silence_in_gaps,
    silent_as_expected,
    stopped_ordering,
    typical_gap,
    win_back_chance,
)
from ka_ml.scoring.light_change import (
    NEW_ON_LIST,
    light_moved_alone,
    no_light_last_week,
    ordered_yet_riskier,
    tier_moved,
)
from ka_ml.scoring.score_history import COLUMNS as HISTORY_COLUMNS
from ka_ml.scoring.score_history import dated_changes, open_forecast_p90, previous_week
from ka_ml.scoring.scorecard import scorecard

log = logging.getLogger("ka_ml.score")

ACCOUNT_COLUMNS = ("name", "owner", "industry", "region")
OPTIONAL_ACCOUNT_COLUMNS = ("owner_email",)  # carried to the scores only when given


@dataclass(frozen=True)
class Previous:
    """What the previous run reported: each account's churn contributions (index
    ``account_id``, columns the churn model's features; empty when none are stored any
    more) and its churn probability, its date and the churn model version that scored it."""

    contributions: pd.DataFrame
    probability: pd.Series
    as_of: pd.Timestamp | None = None
    model_version: str = ""  # "" when unknown: taken to be this run's

    def comparable(self, version: str) -> bool:
        """Its stored contributions can be compared with this run's: there are some, and
        the same churn model version made them."""
        return not self.contributions.empty and self.model_version in ("", version)


@dataclass(frozen=True)
class Change:
    """How "since last week" is told when last week is explained again (``before``): its
    move is measured against what last week's run reported (``reported_p``; None: against
    the probabilities explained again), and ``new_model`` ("v1 to v2") names a churn model
    change, whose part of the move is then told apart."""

    reported_p: np.ndarray | None = None
    new_model: str = ""

    def rows(self, start: int, stop: int) -> Change:
        p = None if self.reported_p is None else self.reported_p[start:stop]
        return Change(p, self.new_model)


@dataclass(frozen=True)
class Models:
    churn: Any
    timing: Any  # None: no purchase-timing champion; its columns are left empty
    churn_version: str
    timing_version: str  # "" without a timing model
    churn_trained_as_of: pd.Timestamp | None = None  # its training run's as-of, when known
    notes: tuple[str, ...] = ()  # how a model came to be in use, when not the plain story


_QUANTILES = ("q10", "q50", "q90")  # the timing model's interval and median, in days


def _days_to_dates(as_of: pd.Timestamp, days: pd.Series) -> pd.Index:
    """The date of each forecast's day (:func:`ka_ml.modeling.timing.forecast_day`)."""
    d = pd.to_timedelta(forecast_day(days.to_numpy(float)), unit="D")
    return (as_of + d).astype("datetime64[us]")


def score_accounts(
    history: History,
    cfg: Config,
    as_of: pd.Timestamp,
    models: Models,
    score_history: pd.DataFrame | None = None,
    *,
    features: pd.DataFrame | None = None,
    previous: Previous | None = None,
) -> pd.DataFrame:
    """One row per eligible account with every contract column (and the report's extras).

    ``features``: the feature table as of ``as_of`` when the caller built it already (the
    scorer does, to check it for drift); built here otherwise. The Spark engine builds the
    same frame in :mod:`ka_ml.spark.score`.
    ``previous``: the previous run's stored contributions (see :func:`score_and_explain`).
    """
    return score_and_explain(
        history, cfg, as_of, models, score_history, features=features, previous=previous
    )[0]


def score_and_explain(
    history: History,
    cfg: Config,
    as_of: pd.Timestamp,
    models: Models,
    score_history: pd.DataFrame | None = None,
    *,
    features: pd.DataFrame | None = None,
    previous: Previous | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """(the scores frame, each account's churn contributions in the churn model's feature
    order): the contributions are what the next run compares with.

    "Since last week": with ``previous`` (what the last run reported), the change is
    measured against its probabilities, so it agrees with ``churn_probability_prev``. Its
    stored contributions name the mover when the same churn model made them; after a
    retrain, or once they are pruned, that run's date is explained again with this model,
    and the part of the move the new model made is told apart from the data's. With a last
    run in ``score_history`` but no ``previous`` (an older history file), the features of
    ``scoring.change_lookback_days`` earlier are explained again; on a first run there is
    no change to report.
    """
    as_of = pd.Timestamp(as_of)
    feats = build_features(history, as_of, cfg) if features is None else features
    if feats.empty:
        raise ModelError(
            f"No account is eligible for scoring as of {as_of.date()}.",
            "check --as-of against the data's dates (features.eligibility_days).",
        )
    X = feats.reset_index(drop=True)
    before, prev_c, prev_p = None, None, None
    change = Change()
    if previous is not None:
        ids = X["account_id"].astype(str)
        prev_p = ids.map(previous.probability).to_numpy(float)
        if previous.comparable(models.churn_version):
            cols = list(models.churn.features_)
            prev_c = previous.contributions.reindex(index=ids, columns=cols).to_numpy(float)
        else:  # explain that date again with this model; the move is still against prev_p
            day = previous.as_of or as_of - pd.Timedelta(days=cfg.scoring.change_lookback_days)
            before = features_on(history, day, cfg, X)
            new_model = previous.model_version not in ("", models.churn_version)
            change = Change(
                prev_p, f"v{previous.model_version} to v{models.churn_version}" if new_model else ""
            )
            prev_p = None
    elif has_previous_run(score_history, as_of, cfg):
        before = features_week_before(history, as_of, cfg, X)
    out, contrib = score_in_chunks(
        models,
        X,
        before,
        cfg.labels.purchase_windows,
        as_of,
        cfg.scoring.chunk_rows,
        prev_c,
        prev_p,
        recent_lapse_days=cfg.labels.horizon_days,
        change=change,
        currency=cfg.report.currency,
    )
    p = out["churn_probability"].to_numpy()
    card = getattr(models.churn, "card_", None) or {}
    silence = card.get("longest_silence_days")
    out = portfolio_columns(out, X, p, history, cfg, as_of, longest_silence=silence)
    lapses = card.get("contract_lapses")
    out = light_columns(out, X, history, cfg, as_of, score_history, contract_lapses=lapses)
    out = lead_flagged_with_what_raised(out)
    out["churn_model_version"] = models.churn_version
    out["timing_model_version"] = models.timing_version
    acc = history.accounts.set_index("account_id")
    for c in ACCOUNT_COLUMNS:
        out[c] = out["account_id"].map(acc[c]) if c in acc else pd.NA
    for c in OPTIONAL_ACCOUNT_COLUMNS:
        if c in acc:
            out[c] = out["account_id"].map(acc[c])
    out.attrs.update(run_facts(score_history, as_of, cfg))
    return out, contrib


def run_facts(score_history: pd.DataFrame | None, as_of: pd.Timestamp, cfg: Config) -> dict:
    """What the report and the digests say about the whole run, carried on the scores
    frame (``DataFrame.attrs``; :func:`ka_ml.reporting.summary.portfolio_summary` copies
    them into the run record's summary): the dependency alert level, and the latest
    earlier run whatever its age, so a run whose last one is older than
    ``scoring.previous_run_max_days`` says so instead of "first run"."""
    earlier = (
        pd.to_datetime(score_history["as_of"])
        if score_history is not None and not score_history.empty
        else pd.Series(dtype="datetime64[us]")
    )
    earlier = earlier[earlier < as_of]
    pf = cfg.portfolio
    return {
        "dependency_alert_level": float(pf.dependency_alert),
        # the pareto cut and when a wide tier A is noted (None: not the pareto rule, or off)
        "tier_a_rule": (
            {"pareto_a": float(pf.pareto_a), "note_share": float(pf.tier_a_note_share)}
            if pf.abc_method == "pareto" and pf.tier_a_note_share is not None
            else None
        ),
        "last_run_as_of": str(earlier.max().date()) if len(earlier) else None,
        "previous_run_max_days": int(cfg.scoring.previous_run_max_days),
    }


def has_previous_run(score_history: pd.DataFrame | None, as_of: pd.Timestamp, cfg: Config) -> bool:

    if score_history is None or score_history.empty:
        return False
    prev = previous_week(score_history, as_of, cfg.scoring.previous_run_max_days)
    return not prev.empty


def score_in_chunks(
    models: Models,
    X: pd.DataFrame,
    before: pd.DataFrame | None,
    windows: list[int],
    as_of: pd.Timestamp,
    chunk_rows: int,
    prev_contributions: np.ndarray | None = None,
    prev_p: np.ndarray | None = None,
    *,
    recent_lapse_days: float = 0.0,
    change: Change | None = None,
    currency: str = "",
) -> tuple[pd.DataFrame, np.ndarray]:
    """:func:`score_chunk` over ``chunk_rows`` accounts at a time, concatenated."""
    change = change or Change()
    parts = [
        score_chunk(
            models,
            X.iloc[i : i + chunk_rows],
            None if before is None else before.iloc[i : i + chunk_rows],
            windows,
            as_of,
            None if prev_contributions is None else prev_contributions[i : i + chunk_rows],
            None if prev_p is None else prev_p[i : i + chunk_rows],
            recent_lapse_days=recent_lapse_days,
            change=change.rows(i, i + chunk_rows),
            currency=currency,
        )
        for i in range(0, len(X), chunk_rows)
    ]
    frame = pd.concat([f for f, _ in parts], ignore_index=True)
    return frame, np.concatenate([c for _, c in parts]) if parts else np.empty((0, 0))


def score_chunk(
    models: Models,
    X: pd.DataFrame,
    before: pd.DataFrame | None,
    windows: list[int],
    as_of: pd.Timestamp,
    prev_contributions: np.ndarray | None = None,
    prev_p: np.ndarray | None = None,
    *,
    recent_lapse_days: float = 0.0,
    change: Change | None = None,
    currency: str = "",
) -> tuple[pd.DataFrame, np.ndarray]:
    """Probabilities, timing forecast, reasons and weekly change for one chunk of accounts,
    and the chunk's churn contributions (``change``: see :class:`Change`).

    Chunks bound the memory of the wide intermediates (the timing model's person-period
    rows, the SHAP matrices, the reason texts) whatever the portfolio size.
    ``recent_lapse_days``: see :func:`ka_ml.scoring.explain.top_reasons` (the scorer passes
    ``labels.horizon_days``); ``currency`` (``report.currency``) is said with money in
    the reasons and changes.
    """
    contrib, p, _ = probability_contributions(models.churn, X)  # one TreeSHAP pass
    timing = (
        models.timing.predict_frame(X, windows, churn_probability=p)
        if models.timing is not None
        else pd.DataFrame(
            np.nan, index=X.index, columns=[*(f"p_purchase_{k}d" for k in windows), *_QUANTILES]
        )
    )
    out = pd.DataFrame(
        {"account_id": X["account_id"].astype(str), "as_of": X["as_of"], "churn_probability": p},
        index=X.index,
    )
    for k in windows:
        out[f"p_purchase_{k}d"] = timing[f"p_purchase_{k}d"].to_numpy()
    out["expected_next_purchase_date"] = _days_to_dates(as_of, timing["q50"])
    out["next_purchase_p10_date"] = _days_to_dates(as_of, timing["q10"])
    out["next_purchase_p90_date"] = _days_to_dates(as_of, timing["q90"])
    reasons = top_reasons(
        models.churn,
        X,
        contributions=contrib,
        recent_lapse_days=recent_lapse_days,
        currency=currency,
    )
    out = pd.concat([out, reasons], axis=1)
    out["changes"] = ""
    if prev_contributions is not None and prev_p is not None:
        changes = changes_since(
            models.churn,
            X,
            None,
            p,
            contrib,
            before_contributions=prev_contributions,
            before_p=prev_p,
            recent_lapse_days=recent_lapse_days,
            currency=currency,
        ).to_numpy()
        new = ~np.isfinite(prev_p) | np.isnan(prev_contributions).all(axis=1)
        out["changes"] = np.where(new, NEW_ON_LIST, changes)
    elif before is not None:
        change = change or Change()
        changes = changes_since(
            models.churn,
            X,
            before,
            p,
            contrib,
            recent_lapse_days=recent_lapse_days,
            reported_p=change.reported_p,
            new_model=change.new_model,
            currency=currency,
        ).to_numpy()
        new = before["as_of"].isna().to_numpy()
        if change.reported_p is not None:
            new = new | ~np.isfinite(change.reported_p)
        out["changes"] = np.where(new, NEW_ON_LIST, changes)
    return out, contrib


def portfolio_columns(
    out: pd.DataFrame,
    X: pd.DataFrame,
    p: np.ndarray,
    history: History,
    cfg: Config,
    as_of: pd.Timestamp,
    *,
    longest_silence: float | None = None,
) -> pd.DataFrame:
    """Lifecycle, portfolio position, dependency alert, revenue at risk and win-back value.

    Revenue at risk looks forward: the next 12 months' expected revenue (running contract
    value, else the recent run rate) times the churn probability, for active and new
    accounts; a lapsed account's revenue is already gone, so it carries none. Win-back
    value = P(order within the largest purchase window) x what the account used to buy in a
    year (its lifetime spend per month x 12), for lapsed accounts only; without a timing
    forecast, P(order within the churn horizon) = 1 - ``p``.
    """

    p_now = out["churn_probability"].to_numpy(float)
    states = lifecycle_states(X, cfg, p_now, longest_silence=longest_silence)
    lapsed = (states["lifecycle"] == "lapsed").to_numpy()
    out["lifecycle"] = states["lifecycle"].to_numpy()
    out["low_confidence"] = states["low_confidence"].to_numpy(bool)
    out["lifecycle_reason"] = states["lifecycle_reason"].to_numpy()
    out["churn_definition"] = churn_definitions(X, cfg)
    tier = X["abc_tier"].astype("object") if "abc_tier" in X else pd.Series("C", index=X.index)
    out["abc_tier"] = pd.Categorical(tier, categories=list(ABC_CATEGORIES))
    out["revenue_share"] = float_column(X, "revenue_share")
    dep = float_column(X, "dependency_index")
    out["dependency_index"] = dep
    out["dependency_alert"] = np.nan_to_num(dep, nan=-np.inf) > cfg.portfolio.dependency_alert
    revenue = float_column(X, "spend_365d")
    out["revenue_365d"] = revenue
    expected = expected_revenue(X, history, as_of, cfg)
    out["expected_revenue_12m"] = np.where(lapsed, 0.0, expected)
    out["revenue_at_risk"] = np.where(lapsed, 0.0, expected * p)
    windows = cfg.labels.purchase_windows
    back = (
        out[f"p_purchase_{max(windows)}d"].to_numpy(float) if windows else np.full(len(X), np.nan)
    )
    back = win_back_chance(back, p)
    if "spend_per_month" in X:
        yearly = np.clip(X["spend_per_month"].to_numpy(float), 0, None) * 12
    else:
        yearly = np.clip(np.nan_to_num(revenue), 0, None)
    out["win_back_value"] = np.where(lapsed, np.nan_to_num(back * yearly), np.nan)
    # silent longer than any snapshot the model learnt from: its chance of an order is the
    # one it learnt for the longest silence it knew (73% for biotechs closed 277-319 days
    # earlier), so none is claimed
    beyond = lapsed & beyond_learnt(X, longest_silence)
    if beyond.any():
        assert longest_silence is not None
        out.loc[beyond, "win_back_value"] = np.nan
        reason = out["lifecycle_reason"].to_numpy(dtype=object)
        reason[beyond] = [
            f"{r}; longer than any silence the model learnt from ({n_days(longest_silence)}): "
            "its chance of ordering again is not known"
            for r in reason[beyond]
        ]
        out["lifecycle_reason"] = reason
    out = name_survey_kinds(out, history.surveys, as_of)
    out["days_since_last_order"] = X["recency_days"].to_numpy(float)
    out["last_order_date"] = out["as_of"] - pd.to_timedelta(out["days_since_last_order"], unit="D")
    card = scorecard(
        X.reset_index(drop=True), history.surveys, as_of, cfg.scorecard, history.contracts
    )
    for c in card.columns:
        out[c] = card[c].to_numpy()
    return out


def unlearnt_renewals(
    X: pd.DataFrame, by_orders: np.ndarray, cfg: Config, contract_lapses: float | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(accounts whose renewal the churn model cannot judge, why in words), or (None, None).

    While the model has seen fewer than ``health.renewal_unlearnt_min_lapses`` accounts
    lapse under a running contract (``contract_lapses``, from its card; None for a model
    trained before the rule: judged as before), an account judged by its running contract
    that ends within ``health.renewal_due_days`` with no renewal on record (a signed one
    moves the end) is due for a renewal nothing has taught it to judge."""
    floor, due = cfg.health.renewal_unlearnt_min_lapses, cfg.health.renewal_due_days
    if floor is None or due is None or contract_lapses is None or contract_lapses >= floor:
        return None, None
    to_end = float_column(X, "contract_days_to_end")
    running = np.nan_to_num(float_column(X, "has_active_contract")) > 0
    flag = running & ~by_orders & np.isfinite(to_end) & (to_end >= 0) & (to_end <= due)
    k = int(contract_lapses)
    seen = f"{k} account{'s' if k != 1 else ''}" if k else "no account"
    why = np.full(len(X), "", dtype=object)
    why[flag] = [
        f"contract ends in {n_days(int(d))}, no renewal on record, and the model has seen "
        f"{seen} lapse under a contract: too few to judge renewals"
        for d in to_end[flag]
    ]
    return flag, why


def light_columns(
    out: pd.DataFrame,
    X: pd.DataFrame,
    history: History,
    cfg: Config,
    as_of: pd.Timestamp,
    score_history: pd.DataFrame | None,
    *,
    contract_lapses: float | None = None,
) -> pd.DataFrame:

    hist = (
        score_history if score_history is not None else pd.DataFrame(columns=list(HISTORY_COLUMNS))
    )
    prev = previous_week(hist, as_of, cfg.scoring.previous_run_max_days)
    ids = out["account_id"]
    prev_light = ids.map(prev["health"]) if not prev.empty else None
    out["health_prev"] = prev_light if prev_light is not None else pd.NA
    out["churn_probability_prev"] = ids.map(prev["churn_probability"]) if not prev.empty else np.nan
    last_order = pd.Series(out["last_order_date"].to_numpy(), index=ids)
    # overdue: past the p90 of the forecast made from the last order; without one (a first
    # run, or silent since before the history began) past the run's typical p90 in gaps.
    # Either way not an account that came back from a silence this long before (school
    # canteens after the holidays went yellow only where a forecast had been recorded), nor
    # one too young to have a season of its own in its peers' quiet season (first-season
    # landscapers in December: health.season_peers)
    p90 = open_forecast_p90(hist, last_order, cfg.scoring.previous_run_max_days).to_numpy()
    has_forecast = ~pd.isna(p90)
    peer = peer_season(X, cfg)
    seen = silent_as_expected(X, cfg, peer)
    overdue_hist = has_forecast & (pd.to_datetime(p90) < as_of) & ~seen
    recency, gap = float_column(X, "recency_days"), float_column(X, "gap_median_days")
    # the typical gap by time: a burst of orders (a budget year-end) does not shorten it
    typical, ratio = typical_gap(X), silence_in_gaps(X)
    now_p90 = (out["next_purchase_p90_date"] - out["last_order_date"]).dt.days.to_numpy(float)
    multiple = overdue_multiple(
        recency, typical, now_p90, cfg.health, cfg.scoring.change_lookback_days
    )
    overdue_first = ~has_forecast & has_rhythm(X, cfg) & (np.nan_to_num(ratio) > multiple) & ~seen
    why = _overdue_why(
        pd.to_datetime(p90), overdue_hist, overdue_first, recency, typical, ratio, multiple
    )
    critical = (
        X["open_critical_complaints"].to_numpy(float) > 0
        if "open_critical_complaints" in X
        else None
    )
    lapsed = (out["lifecycle"].astype(object) == "lapsed").to_numpy()
    rank = "revenue_at_risk" if cfg.health.rank_by == "revenue_at_risk" else "churn_probability"
    chance = float_column(X, "rhythm_quiet_chance")
    by_orders = out["churn_definition"].to_numpy(dtype=object) == "no_order"
    # an account judged by its running contract is not overdue on its orders: they bill, the
    # contract's lapse is the risk (health.overdue_under_contract)
    overdue = (overdue_hist | overdue_first) & (by_orders | cfg.health.overdue_under_contract)
    p = out["churn_probability"].to_numpy(float)
    # an account with too few seasons of its own reads its peers' (health.season_peers)
    season = float_column(X, "season_quiet_chance")
    pause = pause_season(X, cfg)  # a yearly pause (a plant's August shutdown)
    quiet = rhythm_quiet(
        chance,
        by_orders,
        cfg.health,
        p,
        float_column(X, "gaps_longer_than_silence"),
        peer.season(X),
        pause.chance,
    )
    # baskets shrinking: the order-value scorecard yellow or red (health.basket_drop_raises;
    # its words only for those accounts, and only when the rule is on)
    basket, basket_why = None, None
    if cfg.health.basket_drop_raises and "scorecard_order_value" in out:
        basket = out["scorecard_order_value"].astype(object).isin(["red", "yellow"]).to_numpy()
        basket_why = np.full(len(out), "", dtype=object)
        basket_why[basket] = [
            f"spend per order day {r - 1:+.0%} vs the 9 months before"
            for r in float_column(X, "basket_ratio_90d")[basket]
        ]
    renewal, renewal_why = unlearnt_renewals(X, by_orders, cfg, contract_lapses)
    lights, reasons = assign_lights(
        p,
        prev_light,
        cfg.health,
        overdue=overdue,
        renewal=renewal,
        renewal_why=renewal_why,
        critical_complaint=critical,
        basket_drop=basket,
        basket_why=basket_why,
        eligible=~lapsed,
        rank_metric=out[rank].to_numpy(float),
        overdue_why=why,
        quiet=quiet,
        quiet_why=rhythm_quiet_why(
            p,
            chance,
            recency,
            cfg.labels.horizon_days,
            season=season,
            season_years=float_column(X, "season_quiet_years"),
            cfg=cfg.health,
            gaps=float_column(X, "gaps_longer_than_silence"),
            peer=peer,
            pause=pause,
        ),
        **(
            {
                "seen_before": quiet_as_before(X, cfg) & by_orders,
                "seen_before_why": seen_before_why(
                    recency, gap, float_column(X, "gaps_longer_than_silence")
                ),
            }
            if cfg.health.seen_before_max_light is not None
            else {}
        ),
    )
    health = np.asarray(lights, dtype=object)
    health[lapsed] = None  # no light: lost already
    out["health"] = health
    reasons[lapsed] = [f"lapsed: {r}" for r in out["lifecycle_reason"].to_numpy()[lapsed]]
    out["light_reason"] = reasons
    position = _tier_position(out, cfg)
    if not prev.empty and "abc_tier" in prev:  # an account on a tier's cut keeps its tier
        kept = sticky_tiers(out["abc_tier"], ids.map(prev["abc_tier"]), position, cfg.portfolio)
        out["abc_tier"] = pd.Categorical(kept.to_numpy(), categories=list(ABC_CATEGORIES))
    actions = recommended_actions(lights, out["abc_tier"].astype("object"), cfg.health)
    running = np.nan_to_num(float_column(X, "has_active_contract")) > 0
    actions = renewal_due(
        actions,
        float_column(X, "contract_days_to_end"),
        running,
        cfg.health,
        cfg.lifecycle.contract_grace_days,
        np.where(stopped_ordering(X, cfg), recency, np.nan),
    )
    if cfg.health.complaint_action and critical is not None:
        # a tier-A account with an open critical complaint was told "raise at the next
        # quarterly strategic meeting" and left 7 days later (user test)
        actions[critical] = cfg.health.complaint_action
    actions[lapsed] = cfg.health.win_back_action
    out["recommended_action"] = actions
    return _said_since_last_week(out, X, prev, as_of, rank, position, cfg)


def _said_since_last_week(
    out: pd.DataFrame,
    X: pd.DataFrame,
    prev: pd.DataFrame,
    as_of: pd.Timestamp,
    rank: str,
    position: pd.Series,
    cfg: Config,
) -> pd.DataFrame:
    """``lifecycle_prev`` (last week's lifecycle; empty: not scored last week), and the
    weekly change's text where the scores alone misread: why an account had no light last
    week (back from lapsed, not scored, first order), and why a light changed while the
    risk did not (:mod:`ka_ml.scoring.light_change`)."""
    known = "lifecycle" in prev
    ids = out["account_id"]
    out["lifecycle_prev"] = ids.map(prev["lifecycle"]).astype(object) if known else None
    # last week's dependency alert (empty: not scored last week), so a new one is told apart
    alert_prev = (
        ids.map(prev["dependency_alert"])
        if "dependency_alert" in prev
        else pd.Series(pd.NA, index=ids.index)
    )
    out["dependency_alert_prev"] = pd.array(
        [None if pd.isna(v) else bool(v) for v in alert_prev], dtype="boolean"
    )
    if "changes" not in out or prev.empty:
        return out
    days_between = float((as_of - pd.Timestamp(prev["as_of"].max())).days)
    since_first = float_column(X, "recency_days") + float_column(X, "active_span_days")
    changes = no_light_last_week(
        out["changes"].to_numpy(object),
        out["lifecycle_prev"],
        since_first,
        days_between,
        known=known,
        lifecycle=out["lifecycle"].astype(object).to_numpy(),
        silence=float_column(X, "gap_last_days"),  # the silence the latest order ended
        ordered_since=np.nan_to_num(float_column(X, "recency_days"), nan=np.inf) <= days_between,
        contract_running=np.nan_to_num(float_column(X, "has_active_contract")) > 0,
    )
    moved = light_moved_alone(out, prev, rank, cfg.health, changes)
    changes = np.where(moved != "", moved, changes)
    changes = ordered_yet_riskier(changes, out, X, days_between)
    if "abc_tier" in prev and "abc_tier" in out:
        share = (
            out["revenue_share"] if "revenue_share" in out else pd.Series(np.nan, index=ids.index)
        )
        tier = tier_moved(
            out["abc_tier"],
            ids.map(prev["abc_tier"]),
            share,
            position,
            cfg.portfolio,
        )
        said = np.flatnonzero(tier != "")  # a few accounts: worded one by one
        changes = changes.astype(object)
        changes[said] = [f"{changes[i]} {tier[i]}".strip() for i in said]
    out["changes"] = dated_changes(changes, pd.Timestamp(prev["as_of"].max()), int(days_between))
    return out


def _tier_position(out: pd.DataFrame, cfg: Config) -> pd.Series:
    """Each scored account's standing for its ABC tier (:func:`tier_position`), in row order."""
    share = float_column(out, "revenue_share")
    by_id = pd.Series(np.nan_to_num(share), index=out["account_id"].astype(str).to_numpy())
    return pd.Series(tier_position(by_id, cfg.portfolio).to_numpy(), index=out.index)


def _overdue_why(
    p90: pd.DatetimeIndex,
    by_forecast: np.ndarray,
    by_gap: np.ndarray,
    recency: np.ndarray,
    gap: np.ndarray,
    ratio: np.ndarray,
    multiple: float,
) -> np.ndarray:
    """What made each overdue account overdue, in a manager's words ('' elsewhere)."""
    why = np.full(len(recency), "", dtype=object)
    for i in np.flatnonzero(by_forecast):
        d = pd.Timestamp(p90[int(i)])
        why[i] = (
            f"no order for {n_days(recency[i])}; the forecast made after the last order "
            f"expected one by {d.day} {d:%b %Y} (9 chances in 10)"
        )
    for i in np.flatnonzero(by_gap):
        why[i] = (
            f"no order for {n_days(recency[i])}, {ratio[i]:.1f}x its usual silence between "
            f"orders of {n_days(gap[i])} (overdue beyond {multiple:.1f}x)"
        )
    return why


def features_week_before(
    history: History, as_of: pd.Timestamp, cfg: Config, X: pd.DataFrame
) -> pd.DataFrame | None:
    """The same accounts' features 7 days earlier (NaN rows where not eligible then)."""
    return features_on(history, as_of - pd.Timedelta(days=cfg.scoring.change_lookback_days), cfg, X)


def features_on(
    history: History, day: pd.Timestamp, cfg: Config, X: pd.DataFrame
) -> pd.DataFrame | None:
    """The same accounts' features as of ``day`` (NaN rows where not eligible then); None
    when the history starts later."""
    if day <= history.first_date:
        return None
    return align_to(build_features(history, day, cfg), X)


def align_to(before: pd.DataFrame, X: pd.DataFrame) -> pd.DataFrame:
    """``before``'s rows in ``X``'s account order (all-NaN rows for accounts it lacks),
    categoricals on ``X``'s categories."""
    aligned = before.set_index("account_id").reindex(X["account_id"]).reset_index()
    for c in X.columns:
        if isinstance(X[c].dtype, pd.CategoricalDtype):
            aligned[c] = pd.Categorical(aligned[c].astype("object"), categories=X[c].cat.categories)
    return aligned
