"""Lifecycle states, the churn rule per account, and forward-looking revenue at risk.

Pure functions of the feature table as of a date (and, for contract values, the history
before it). The states decide what a manager is shown, not what is scored:

- ``lapsed``: already lost. The last contract ended more than ``contract_grace_days`` ago,
  none is running and no order came after its end; or (no contract running) no order for
  longer than the horizon and longer than ``lapsed_cycle_multiple`` times the account's own
  typical gap. A running contract, or one ended within ``contract_grace_days`` (its renewal
  is the question), keeps an account out of ``lapsed`` however quiet it is:
  it is still a customer, and its silence is a risk to act on, not a loss to win back;
  except under ``labels.churn_definition: no_order``, where the orders are the relationship
  (frame contracts that do not bind orders) and a silent account lapses as one without a
  contract would. An
  account that has come back from silences this long before (``silence_seen_before``) is
  not lapsed either: its typical gap may be a season's call-offs a few days apart. An
  account still ordering after its contract ended is a customer buying without one: judged
  by its orders, as its churn label judges it (``auto``: ``no_order`` once the contract is
  gone), not sent to Win-back while it orders every week.
  Nor is an account whose churn probability is below ``lapsed_min_churn_probability``:
  the model, which knows more than the silence, expects it back (a quarter of weekly runs
  wrote off 2,294 account-weeks as lapsed; the 900 the model gave under 50% ordered again
  within 90 days 56-74% of the time, and led the Win-back list).
- ``new``: not lapsed, but too little history to judge (fewer than ``new_min_orders``
  orders or a tenure shorter than the horizon). Scored and lit, flagged low confidence.
- ``active``: everything else.

Lapsed accounts get no light and no revenue at risk (their revenue is gone, not at risk);
the report lists them under Win-back, ranked by their chance of ordering again times
their value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.features.catalog import YEAR_DAYS, n_days
from ka_ml.features.labels import ContractEnds, contract_rule_rows

STATES: tuple[str, ...] = ("new", "active", "lapsed")


def float_column(X: pd.DataFrame, name: str) -> np.ndarray:
    """Column ``name`` of a feature table as floats, all-NaN when the table lacks it (its
    source table is missing)."""
    return X[name].to_numpy(float) if name in X else np.full(len(X), np.nan)


def bought_since_contract_end(X: pd.DataFrame) -> np.ndarray:
    """Rows whose latest contract ended before their last order (both known): customers
    buying without a contract."""
    to_end = float_column(X, "contract_days_to_end")
    recency = float_column(X, "recency_days")
    return np.isfinite(recency) & np.isfinite(to_end) & (recency < -to_end)


def silence_seen_before(X: pd.DataFrame, cfg: Config) -> np.ndarray:
    """Rows that have come back from a silence as long as their current one at least
    ``lifecycle.silence_seen_before`` times (``gaps_longer_than_silence``): an annual buyer
    whose season's call-offs a few days apart make its typical gap 3 days, a project buyer
    between projects. Neither lapsed nor overdue by the typical-gap rule. None when off."""
    need = cfg.lifecycle.silence_seen_before
    k = float_column(X, "gaps_longer_than_silence")
    if need is None:
        return np.zeros(len(X), bool)
    return np.isfinite(k) & (k >= need)


def has_rhythm(X: pd.DataFrame, cfg: Config) -> np.ndarray:
    """Rows with an order rhythm to be silent against: at least ``health.overdue_min_gaps``
    gaps between order days (one gap is no rhythm; NaN, an older feature table without the
    count, is judged as before)."""
    return ~(float_column(X, "repeat_orders") < cfg.health.overdue_min_gaps)


def quiet_as_before(X: pd.DataFrame, cfg: Config) -> np.ndarray:
    """Rows silent for longer than their typical gap (``gap_median_days``) that have come
    back from a silence this long before (:func:`silence_seen_before`): a project buyer
    between projects, a seasonal buyer off season. Their churn probability says, rightly,
    that no order may come within the horizon; red says "slipping", which their history
    does not (``health.seen_before_max_light``). A short silence is no part of such a red
    (an account that ordered last week and is red for its complaints): not these rows."""
    recency, gap = float_column(X, "recency_days"), float_column(X, "gap_median_days")
    return silence_seen_before(X, cfg) & np.isfinite(gap) & (recency > gap)


def typical_gap(X: pd.DataFrame) -> np.ndarray:
    """Each row's typical gap between order days by time (``gap_typical_days``: bursts of
    orders do not shorten it), or its median gap in a frame without it (an older feature
    table). The overdue rule and :func:`stopped_ordering` read it."""
    name = "gap_typical_days" if "gap_typical_days" in X else "gap_median_days"
    return float_column(X, name)


def silence_in_gaps(X: pd.DataFrame) -> np.ndarray:
    """Days since the last order over :func:`typical_gap` (NaN without a gap); in a frame
    without the typical gap by time, the ``overdue_ratio`` feature (over the median gap)."""
    if "gap_typical_days" not in X:
        return float_column(X, "overdue_ratio")
    typical = typical_gap(X)
    recency = float_column(X, "recency_days")
    return np.divide(recency, typical, out=np.full(len(X), np.nan), where=typical > 0)


OWN_SEASON_YEARS = 2  # past years of its own from which an account's season is its own


@dataclass(frozen=True)
class PeerSeason:
    """The season an account borrows from its peers (:func:`peer_season`), per row:
    ``chance`` (the peers' pooled chance of no order in the horizon, NaN where the account
    does not borrow it), ``peers`` (established peers in its group), ``quiet_years`` of
    ``years`` (their pooled past years), ``group`` (the group's name) and ``column``."""

    chance: np.ndarray
    peers: np.ndarray
    quiet_years: np.ndarray
    years: np.ndarray
    group: np.ndarray
    column: str

    def quiet(self, cfg: Config) -> np.ndarray:
        """Rows in their peers' quiet season (the chance at least ``rhythm_quiet_min``)."""
        floor = cfg.health.rhythm_quiet_min
        if floor is None:
            return np.zeros(len(self.chance), bool)
        return self.chance >= floor  # NaN compares False

    def season(self, X: pd.DataFrame) -> np.ndarray:
        """Each row's season chance as the rhythm rule reads it: its own
        (``season_quiet_chance``), or its peers' where it borrows theirs."""
        return np.fmax(float_column(X, "season_quiet_chance"), self.chance)


def season_years_measured(chance: np.ndarray, quiet: np.ndarray) -> np.ndarray:
    """The past years a season chance was measured on (0 without one): (q + 0.5) /
    (years + 1) solved for years."""
    c, q = np.asarray(chance, float), np.nan_to_num(np.asarray(quiet, float))
    with np.errstate(invalid="ignore", divide="ignore"):
        years = np.round((q + 0.5) / c - 1.0)
    return np.where(np.isfinite(years) & (c > 0), years, 0.0)


@dataclass(frozen=True)
class Pause:
    """A silence the same date of past years makes a pause the account takes every year
    (:func:`pause_season`), per row: ``chance`` (``season_pause_chance``, NaN where the
    account is silent for fewer than ``health.pause_min_gaps`` typical gaps), ``years`` of
    ``measured`` (the past years with a gap this long around that date, then back, of those
    it was a customer in) and ``wait`` (days from the date to its next order then, the
    median: ``next_order_days_years_before``)."""

    chance: np.ndarray
    years: np.ndarray
    measured: np.ndarray
    wait: np.ndarray


def pause_season(X: pd.DataFrame, cfg: Config) -> Pause:
    """Each row's yearly pause: a plant closed three weeks every August is, three weeks into
    it, as long without an order as it was on the same date of the last three years, and
    ordered again a week or two after it each time; its churn probability (a weekly buyer
    silent three weeks) says "slipping", its past Augusts do not. Only rows silent for at
    least ``health.pause_min_gaps`` typical gaps (:func:`silence_in_gaps`; None: none): just
    past its typical gap any account's past gaps around a date look as long, which says
    nothing of a pause."""
    chance = float_column(X, "season_pause_chance")
    years = float_column(X, "season_pause_years")
    floor = cfg.health.pause_min_gaps
    beyond = np.nan_to_num(silence_in_gaps(X)) >= (np.inf if floor is None else floor)
    return Pause(
        np.where(beyond, chance, np.nan),
        np.nan_to_num(years),
        season_years_measured(chance, years),
        float_column(X, "next_order_days_years_before"),
    )


def own_season_years(X: pd.DataFrame) -> np.ndarray:
    """The past years each row's own season chance was measured on (0 without one)."""
    return season_years_measured(
        float_column(X, "season_quiet_chance"), float_column(X, "season_quiet_years")
    )


def peer_season(X: pd.DataFrame, cfg: Config) -> PeerSeason:
    """The quiet season an account with too few past years of its own borrows from its
    peers (``health.season_peers``: the accounts of its industry or region with at least
    two past years each, ``health.season_peers_min`` of them or more; grouped per as-of
    date when ``X`` stacks several). Their quiet years and years are pooled into one chance,
    (q + 0.5) / (years + 1) as the own season's. A row borrows it when its own past years
    number fewer than two and were all quiet (none, or one quiet), and its silence is
    shorter than a year minus the horizon (longer, it missed its season). A first-season
    landscaper in December, silent 40 days, whose usage fell off with the season: red at
    93% while those with two seasons behind them were green by their own."""
    n, h = len(X), cfg.health
    none = PeerSeason(
        np.full(n, np.nan), np.zeros(n), np.zeros(n), np.zeros(n), np.full(n, "", object), ""
    )
    col = h.season_peers
    if col is None or col not in X or not h.season_quiet or "season_quiet_chance" not in X:
        return none
    years = own_season_years(X)
    quiet = np.nan_to_num(float_column(X, "season_quiet_years"))
    established = years >= OWN_SEASON_YEARS
    group = X[col].astype("string").fillna("").to_numpy(dtype=object)
    keys = [pd.Series(group)]
    if "as_of" in X:  # training's origins: peers of the same date only
        keys.append(pd.Series(pd.to_datetime(X["as_of"]).to_numpy()))
    pooled = (
        pd.DataFrame(
            {"q": np.where(established, quiet, 0.0), "y": np.where(established, years, 0.0)}
        )
        .assign(e=established.astype(float))
        .groupby(keys, sort=False)
        .transform("sum")
    )
    q_sum, y_sum, peers = (pooled[c].to_numpy(float) for c in ("q", "y", "e"))
    recency = float_column(X, "recency_days")
    borrows = (
        ~established
        & (quiet >= years)  # its own past year, if any, was quiet too
        & (peers >= h.season_peers_min)
        & (group != "")
        & (np.nan_to_num(recency, nan=np.inf) < YEAR_DAYS - cfg.labels.horizon_days)
    )
    chance = np.where(borrows, (q_sum + 0.5) / (y_sum + 1.0), np.nan)
    return PeerSeason(chance, peers, q_sum, y_sum, group, col)


def silent_as_expected(X: pd.DataFrame, cfg: Config, peer: PeerSeason | None = None) -> np.ndarray:
    """Rows whose silence says nothing of a loss: they came back from one this long before
    (:func:`silence_seen_before`), or are in their peers' quiet season (``peer``, else
    :func:`peer_season`). Neither lapsed nor overdue."""
    peer = peer_season(X, cfg) if peer is None else peer
    return silence_seen_before(X, cfg) | peer.quiet(cfg)


def beyond_learnt(X: pd.DataFrame, longest_silence: float | None) -> np.ndarray:
    """Rows silent longer than any snapshot the model learnt from (``longest_silence``,
    days, from its card; None or NaN: unknown, none)."""
    if longest_silence is None or not np.isfinite(longest_silence):
        return np.zeros(len(X), bool)
    return np.nan_to_num(float_column(X, "recency_days"), nan=-np.inf) > longest_silence


def stopped_ordering(X: pd.DataFrame, cfg: Config) -> np.ndarray:
    """Rows silent longer than the horizon and over ``scorecard.rhythm_red`` typical gaps:
    accounts that have stopped ordering, whatever their contract says. The typical gap is
    the one by time (``gap_typical_days``, as the overdue rule reads it) where the frame
    has it: a utility paying one annual invoice beside hardware and services orders was
    told "Renewal due in 89 days, but no order for 275 days: ask what they still need",
    its median gap shortened by the smaller orders."""
    recency = np.nan_to_num(float_column(X, "recency_days"))
    ratio = np.nan_to_num(silence_in_gaps(X))
    return (recency > cfg.labels.horizon_days) & (ratio > cfg.scorecard.rhythm_red)


def silent_under_contract(
    rows: pd.DataFrame, cfg: Config, ends: ContractEnds | None = None
) -> str | None:
    """A note on feature rows of one date (with their ``churn_definition``): how many
    accounts judged by a running contract have stopped ordering (silent longer than the
    horizon and over ``scorecard.rhythm_red`` typical gaps), and, from the contracts that
    ended before (``ends``, :func:`ka_ml.features.labels.contract_end_silences`), whether
    orders stop before contracts do. Those accounts' churn is the contract's end, so they
    score low however long they are silent: right where the contract is the relationship
    (the demo's), wrong where it does not bind orders (a user's frame contracts renewed
    every January while customers stopped ordering: 280 such rows, 3 red). Only the user
    knows which; ``train`` says so once, with the evidence: a distributor read "10 of the
    370 accounts ... had stopped ordering" as rare and kept ``auto``, while 87 of its 104
    ended contracts had run on a median 204 days past the last order. None when no account
    is judged by a contract, or there is nothing to say."""
    need = {"churn_definition", "recency_days", "overdue_ratio"}
    if not need <= set(rows.columns) or rows.empty:
        return None
    contract = rows["churn_definition"].astype(object).to_numpy() == "contract"
    n, of = int((contract & stopped_ordering(rows, cfg)).sum()), int(contract.sum())
    horizon = cfg.labels.horizon_days
    said = []
    if of and ends is not None and ends.stopped_first:
        most = 2 * ends.stopped_first > ends.ended
        said.append(
            f"{ends.stopped_first:,} of the {ends.ended:,} accounts whose last contract ended "
            f"with no order since had stopped ordering over {horizon} days before it ended "
            f"(median silence at the end {ends.median_silence:.0f} days)"
            + (
                ": on this data orders stop first, and a loss shows in them months before "
                "the contract ends"
                if most
                else ""
            )
        )
    if n:
        said.append(
            f"{n:,} of the {of:,} accounts judged by a running contract on the latest test "
            f"origin have stopped ordering (silent over {horizon} days and "
            f"{cfg.scorecard.rhythm_red:g}x their typical gap)"
        )
    if not said:
        return None
    return (
        "; ".join(said) + ". An account with a running contract is judged by the contract's end "
        "(labels.churn_definition auto), so it scores low however long its silence. Right "
        "where the contract is the relationship (a licence, a service contract or a "
        "subscription billed once a term: under no_order such payers would read as churning "
        "between invoices, red for most of the year); where contracts do not bind orders "
        "(frame contracts), set labels.churn_definition: no_order"
    )


def win_back_chance(p_window: np.ndarray, p: np.ndarray) -> np.ndarray:
    """A lapsed account's chance of ordering again: P(order within the largest purchase
    window) where a timing forecast exists, else P(order within the churn horizon) = 1 - ``p``
    (a run without a timing champion leaves the windows empty). The scorer values win-back
    with it and the report ranks by it: one rule for both."""
    p_window = np.asarray(p_window, dtype=float)
    return np.where(np.isfinite(p_window), p_window, 1.0 - np.asarray(p, dtype=float))


def lifecycle_states(
    X: pd.DataFrame,
    cfg: Config,
    p: np.ndarray | None = None,
    *,
    longest_silence: float | None = None,
) -> pd.DataFrame:
    """``lifecycle``, ``low_confidence`` and ``lifecycle_reason`` per row of ``X``; ``p``
    (each row's churn probability, when known) keeps an account the model expects back out
    of ``lapsed`` (``lifecycle.lapsed_min_churn_probability``), unless it has been silent
    longer than any snapshot the model learnt from (``longest_silence``, days: from the
    model's card; None: unknown): there its probability only repeats what it learnt for
    the longest silence it knew."""
    lc = cfg.lifecycle
    horizon = cfg.labels.horizon_days
    recency = float_column(X, "recency_days")
    gap = float_column(X, "gap_median_days")
    to_end = float_column(X, "contract_days_to_end")
    running = np.nan_to_num(float_column(X, "has_active_contract")) > 0
    orders = float_column(X, "orders_lifetime")
    if "orders_lifetime" not in X:  # older feature tables: the 365-day count
        orders = float_column(X, "orders_365d")
    tenure = float_column(X, "tenure_days")

    ended = ~running & np.isfinite(to_end) & (to_end < -lc.contract_grace_days)
    contract_lapsed = ended & ~bought_since_contract_end(X)
    quiet_days = lc.lapsed_after_days or horizon
    own_cycle = np.where(np.isfinite(gap), lc.lapsed_cycle_multiple * gap, 0.0)
    # no order at all (recency NaN) with no running contract: nothing left to lose
    silent = np.where(
        np.isfinite(recency), (recency > quiet_days) & (recency > own_cycle), ~running
    )
    # a contract ended within the grace days: its renewal is the question, not a win-back
    # (a tier-A account went to Win-back on its renewal day, silent 107 days under contract)
    in_grace = ~running & np.isfinite(to_end) & (to_end >= -lc.contract_grace_days)
    # under churn_definition no_order the orders are the relationship: a frame contract
    # still running does not keep a silent account from lapsing (a user's accounts silent
    # 150-226 days sat red at 99.5% week after week, 228 of 275 red weeks of the long lost),
    # once it has an order rhythm to be silent against (health.overdue_min_gaps gaps: an
    # annual subscriber with an onboarding invoice and one renewal has none)
    by_orders = (cfg.labels.churn_definition == "no_order") & has_rhythm(X, cfg)
    held = (running | in_grace) & ~by_orders
    # nor one back from as long before, or a first-season buyer off its peers' season
    order_lapsed = ~held & silent & ~silent_as_expected(X, cfg)
    floor = lc.lapsed_min_churn_probability
    if p is not None and floor is not None:  # the model expects it back: judged, not lost
        expected_back = np.asarray(p, float) < floor
        expected_back &= ~beyond_learnt(X, longest_silence)
        contract_lapsed &= ~expected_back
        order_lapsed &= ~expected_back
    lapsed = contract_lapsed | order_lapsed
    min_tenure = lc.new_min_tenure_days if lc.new_min_tenure_days is not None else horizon
    new = ~lapsed & (
        (np.nan_to_num(orders) < lc.new_min_orders) | (np.nan_to_num(tenure) < min_tenure)
    )
    state = np.where(lapsed, "lapsed", np.where(new, "new", "active"))
    reason = np.full(len(X), "", dtype=object)
    reason[contract_lapsed] = [
        f"contract ended {n_days(int(-d))} ago, none running" for d in to_end[contract_lapsed]
    ]
    only_orders = order_lapsed & ~contract_lapsed
    reason[only_orders] = [
        f"no order for {n_days(int(r))}" + (f" (typical gap {n_days(g)})" if np.isfinite(g) else "")
        if np.isfinite(r)
        else "no order on record"
        for r, g in zip(recency[only_orders], gap[only_orders], strict=True)
    ]
    reason[new] = [
        f"{int(o)} order{'s' if o != 1 else ''} in {n_days(int(t))}: too little history to judge"
        for o, t in zip(np.nan_to_num(orders[new]), np.nan_to_num(tenure[new]), strict=True)
    ]
    return pd.DataFrame(
        {
            "lifecycle": pd.Categorical(state, categories=list(STATES)),
            "low_confidence": new,
            "lifecycle_reason": reason,
        },
        index=X.index,
    )


def churn_definitions(X: pd.DataFrame, cfg: Config) -> np.ndarray:
    """The churn rule that applies to each account: under the ``auto`` definition
    ``contract`` where a contract is running (its end not before the as-of), else
    ``no_order``, as the churn label decides (:mod:`ka_ml.features.labels`: a contract
    already gone cannot lapse again); or the configured rule."""
    rule = cfg.labels.churn_definition
    if rule != "auto":
        return np.full(len(X), rule, dtype=object)
    return np.where(contract_rule_rows(X), "contract", "no_order").astype(object)


def _run_rate_window(cfg: Config) -> int:
    want = cfg.report.run_rate_days
    return min(cfg.features.windows_days, key=lambda w: (abs(w - want), -w))


def annual_contract_value(history: History, as_of: pd.Timestamp, ids: pd.Series) -> np.ndarray:
    """Each account's running contracts' value per year (a contract's ``value`` is taken
    as its total over its term, so a 2-year contract counts half per year). NaN where no
    contract with a value is running."""
    c = history.contracts
    out = pd.Series(np.nan, index=pd.Index(ids.astype(str)))
    if c is None or c.empty or "value" not in c:
        return out.to_numpy()
    start, end = pd.to_datetime(c["start_date"]), pd.to_datetime(c["end_date"])
    run = (start < as_of) & (end >= as_of) & c["value"].notna()
    if not run.any():
        return out.to_numpy()
    years = ((end - start).dt.days[run].clip(lower=1) + 1) / 365.0
    per_year = (
        (c.loc[run, "value"].astype(float) / years.clip(lower=1.0))
        .groupby(c.loc[run, "account_id"].astype(str))
        .sum()
    )
    return per_year.reindex(out.index).to_numpy(float)


def expected_revenue(
    X: pd.DataFrame, history: History, as_of: pd.Timestamp, cfg: Config
) -> np.ndarray:
    """Expected revenue of the next 12 months: the running contract's yearly value where
    there is one, else the recent run rate: spend of the ``report.run_rate_days`` window,
    annualised; for an account whose buying cycle (:func:`buying_cycle_days`) is longer
    than that window, of the shortest feature window holding one cycle (else the longest);
    for an account silent through that window, of the shortest one holding its last order.
    A buyer who orders every 269 days has spent nothing in the last 180 days between two
    orders; its year is not worth 0. A yearly buyer that calls its season off in a few
    orders days apart (typical gap 2 days) had its year taken from 180 days: 141,498 in two
    November call-offs became 286,926 a year, and between seasons 0. A project buyer silent
    for 335 days, 37,345 bought in the year, was red with 0 revenue at risk: "a red worth
    nothing by the tool's own figure" (its gaps between projects are counted by length, but
    its in-project call-offs kept its cycle under 180 days)."""
    w = _run_rate_window(cfg)
    run_rate = np.clip(float_column(X, f"spend_{w}d"), 0, None) * 365.0 / w
    gap = buying_cycle_days(X)
    recency = float_column(X, "recency_days")
    for longer in sorted(v for v in cfg.features.windows_days if v > w):
        cycle = np.isfinite(gap) & (gap > w)  # the windows so far cannot hold one gap
        silent = np.isfinite(recency) & (recency >= w)  # nor the last order
        spend = np.clip(float_column(X, f"spend_{longer}d"), 0, None) * 365.0 / longer
        run_rate = np.where(cycle | silent, spend, run_rate)
        w = longer
    contract = annual_contract_value(history, as_of, X["account_id"])
    return np.where(np.isfinite(contract), contract, np.nan_to_num(run_rate))


def buying_cycle_days(X: pd.DataFrame) -> np.ndarray:
    """The gap between orders that a day of the account's history typically sits in: the
    mean of its gaps weighted by their length, E[g^2] / E[g] = mean + std^2 / mean. A
    monthly buyer's is about 30 days; a yearly buyer whose season comes as call-offs a few
    days apart (gaps 2, 5, 360, 3, 358) has a median gap of 5 days and a cycle of 354. NaN
    without a gap."""
    mean = float_column(X, "gap_mean_days")
    std = np.nan_to_num(float_column(X, "gap_std_days"), nan=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mean > 0, mean + std**2 / mean, np.nan)


def run_rate_text(cfg: Config) -> str:
    """The legend's wording of the run rate, e.g. 'the last 180 days' revenue x 365/180'
    (and the longer window for accounts whose typical gap is longer)."""
    w = _run_rate_window(cfg)
    text = f"the last {w} days' revenue × 365/{w}"
    longer = [v for v in cfg.features.windows_days if v > w]
    if longer:
        text += (
            f"; over {'/'.join(str(v) for v in sorted(longer))} days for accounts whose "
            "buying cycle (long gaps counted by their length) is longer or that bought "
            "nothing in it"
        )
    return text
