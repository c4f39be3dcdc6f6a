"""A synthetic B2B key-account portfolio that behaves like a real one, with its ground truth.

Why it exists: the product needs data to train, test and demo on, and we need to know the
truth behind that data (who really churned, when, and how healthy each account was) to
check that the models learn what is there and nothing that is not. It is meant to be as
hard as real life: churn is partly predictable from leading signals and partly not, and
the contract calendar alone does clearly worse than the model.

The generative story (all randomness from one ``seed``; time runs on a fixed calendar that
ends at ``end_date``, never "today")
----------------------------------------------------------------------------------------
1. **Accounts.** Each account gets a latent size ``z ~ N(0, 1)`` (plus a jump for a
   handful of "giant" accounts). Basket size and seat count are lognormal in ``z``, the
   purchase cycle is shorter for bigger accounts, so yearly revenue is heavy-tailed: the
   top 20% of accounts carry most of the revenue and ABC tiers mean something.
   Industries (7, unequal sizes) shift the health level a little; regions (4) and owners
   (8-15 account managers) are labels. About 35% of accounts are created during the
   window (tenure varies); the rest existed before it, up to 8 years earlier. About 40%
   are *project buyers*: a few irregular orders a year (mean gap 35-180 days, gamma shape
   1-2), the others order in cycles of 7-90 days (shape 1-2.5).
2. **Latent health.** A weekly Ornstein-Uhlenbeck process around an account-specific
   level (mean reversion ~5%/week, so dips tend to recover), with occasional negative
   shocks (a champion leaves, a competitor wins a tender) and smaller positive ones. New
   accounts start in a honeymoon (above their level).
3. **Churn.** Two hazards, drawn week by week:
   - *health churn*: the weekly hazard rises (logistic) as the 8-week smoothed health
     drops below a threshold, so churn follows health that *stays* low;
   - *sudden churn*: a small constant hazard (acquisition, budget cut, a cheaper
     competitor) unrelated to health: about 45% of all churn, with no or a shallow fade.
   An account under contract on the decision day does not renew: it keeps buying and using
   (at a fading level) until that contract ends, and ``churn_date`` is the day after that
   end; the lapse may lie after ``end_date`` (a *planned* churn, already visible as a
   fade). 12% of them leave *mid-term* (insolvency, a merger, a breach): they stop on the
   decision day and the contract runs out unused (still not renewed). Accounts without a
   contract stop ordering on the decision day. Contracts keep their signed end date:
   nothing in the tables reveals a future churn date. Before the churn date a *fade*
   builds up over 6-26 weeks for health churn (0-4 weeks for sudden churn) with a depth of
   0-0.6 (0-0.4): effective health ``h_eff = h - depth * ramp``, so many churners show
   little warning. Every observable signal below is driven by ``h_eff``; since health is an
   OU process, many accounts dip into the same low range and recover without churning.
   After the churn date half the lost accounts keep buying spare parts or consumables for
   2-24 months (*residual orders*: a third of the rhythm, a third of the basket), and half
   of the others come back 2-13 months later (*win-back*: orders and usage resume).
4. **Orders** (order lines). Per account a gamma renewal process with the account's mean
   gap and shape, run in *operational time* whose clock speed is
   ``exp(0.5 h_eff) x season x trend``: healthy accounts order more often, a Q4 bump and an
   August dip, a per-account growth/decline trend. *Pauses* (a project ends, stock was
   built up, a budget freeze; about one every 2.5 years per account, 6-52 weeks) nearly
   stop the orders and dip usage, then both come back: an account that stops ordering has
   not necessarily left. Each order has 1-3 lines (distinct products, same ``order_id``
   and date); basket size grows with health. About 1% of lines get a credit note (a
   negative row 3-45 days later, more often for unhealthy accounts).
5. **Usage**: logged for 60% of the accounts (the others do not use the platform):
   weekly ``active_users`` (Poisson around seats x ``exp(0.45 h_eff + u)``, adoption ramp
   for new accounts, August and Christmas dips, users drift away during a fade), dated on
   the Sunday that ends the week. ``u`` is the account's own slow wander (AR(1), weekly
   correlation 0.9, s.d. 0.35: projects, reorganisations), so a usage dip is a warning, not
   a verdict. Usage does not end exactly on the churn date: a quarter of churners stop 0-3
   weeks before it, the others tail off (decaying, time constant 10 weeks) for 0-26 weeks
   after it (grace period, data export).
6. **Tickets**: Poisson per week, more when health is low; the complaint share and the
   severity (low/medium/high/critical) rise as health falls and during a fade. Resolution
   takes longer for low severities; tickets unresolved at ``end_date`` have no
   ``resolved_at``.
7. **Surveys** (``kind``): quarterly NPS waves (``nps``, mid Feb/May/Aug/Nov; about a
   quarter answer, unhealthy accounts less often; score 0-10 around ``7.3 + 1.6 h_eff``,
   noisy) and, 70-130 days before each contract ends, a renewal-intent question
   (``renewal_intent``, 0-10, about 60% answer): an account that has already decided not
   to renew answers about 2 points lower, one about to drop its contract too; with the
   noise (s.d. 2.2) some leavers answer high and some stayers low.
8. **Contracts**: about 45% of accounts (more among big ones) hold contracts of half a
   year (20%), one year (65%) or two years (15%), anchored on their own dates so renewals
   spread through the year; they renew until churn, except that at each renewal 5% (per
   year of term) of accounts *drop* the contract and go on buying without one (a
   procurement policy, a framework agreement ends). ``renewed`` says whether the next
   contract follows in the data (a contract still running at ``end_date`` is not renewed
   *yet*: ``False``).

What is learnable, and what is not
----------------------------------
Signals *lead* churn, noisily: a 90-day early-warning model can see part of the fade
(usage down, complaints and severe tickets up, NPS and renewal intent low or unanswered,
orders slowing against the account's own cycle) and the contract calendar, but not the
churn itself. It cannot see sudden churn or contract drops coming, it raises false alarms
on dips, pauses and project buyers' long gaps, and it cannot tell which lost account will
place a residual order or come back. Annual churn is about 7-9% of active accounts.

Measured on the default demo (2,000 accounts x 3 years, seed 42, ``make train``: 3
rolling origins, pooled out of time): churn
ROC AUC 0.883 (Brier 0.107); the calendar-only rule (days to contract end as the only
score) 0.728; recency 0.740, RFM logistic regression 0.749, BG/NBD 0.763, the model above
each by +0.12 to +0.14 with bootstrap intervals clear of zero. P(order within 30 days) AUC
0.810 vs BG/NBD 0.783, C-index 0.73, p10-p90 coverage 0.80. About half the positives are
accounts already lost (no order since they left), which the model finds easily (AUC
~0.96); on the others (future churners, pauses, project buyers' long gaps) it scores
~0.75-0.85. Seed 7 (default LightGBM, no tuning): 0.89.

The truth (``DemoWorld.truth``, one row per account, sorted by id): ``churned`` (within
the window) and ``churn_date`` (``NaT`` if not); ``planned_churn_date`` (also set for a
lapse already decided but after ``end_date``: the truth for scoring at the end; decisions
not yet taken by ``end_date`` are not simulated), ``churn_kind`` (health/sudden),
``decision_date``, ``warning_weeks`` and ``fade_depth`` of the fade; effective health
``h_eff`` in the last week alive (the end for survivors) and its minimum while alive;
``mean_gap_days`` and ``gap_shape`` of the purchase cycle (at neutral health);
``trend_per_year``; ``contracted``, ``contract_term_days`` (0 without a contract) and
``contract_dropped_date``; ``project_buyer``; ``paused_weeks`` (while alive);
``residual_orders_until`` and ``return_date`` after a churn; ``new_account``; ``size_z``.

Scale: vectorized over accounts (chunks of 20,000; loops only over weeks), so 100,000
accounts x 3 years (~4.8M order lines, 7.2M usage rows) take about 16 s and 1.5 GB peak on
the 2-core machine (writing the CSVs: ~30 s more).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ka_ml.data.schema import SEVERITIES

CONTRACT_TERMS = (183, 365, 730)  # days: half-year, annual and two-year contracts
SURVEY_KINDS = ("nps", "renewal_intent")
TABLES = ("orders", "accounts", "usage", "tickets", "surveys", "contracts")
TRUTH_PATH = Path("_truth") / "ground_truth.csv"
"""Where :func:`write_world` puts the ground truth, relative to the output folder: in a
subfolder, so a loader that reads ``<folder>/<table>.<ext>`` never takes it for a table."""

Arr = npt.NDArray[Any]

_CHUNK = 20_000  # accounts simulated at once: bounds memory for any portfolio size
_NEVER = 10**8  # churn day of accounts that never decide to leave

INDUSTRIES = (
    ("Manufacturing", 0.24, 0.05),
    ("Retail", 0.18, -0.10),
    ("Healthcare", 0.14, 0.10),
    ("Logistics", 0.13, -0.05),
    ("Financial Services", 0.12, 0.05),
    ("Energy", 0.10, 0.00),
    ("Public Sector", 0.09, 0.10),
)  # (name, share of accounts, shift of the health level)
REGIONS = (("EMEA", 0.45), ("North America", 0.30), ("APAC", 0.17), ("LATAM", 0.08))
PRODUCTS = (
    ("Core Platform", 480.0),
    ("Analytics Add-on", 220.0),
    ("Support Plus", 150.0),
    ("Sensor Kit", 95.0),
    ("Spare Parts", 35.0),
    ("Consumables", 12.0),
    ("Integration Service", 1200.0),
)  # 7 (a prime): line k of an order uses product (first + k * step) mod 7, all distinct
_FIRST = ("alice", "bruno", "carla", "david", "elena", "farid", "greta", "hugo", "ines",
          "jonas", "katrin", "luca", "maria", "nils", "olga")  # fmt: skip
_LAST = ("meyer", "rossi", "novak", "schmidt", "dubois", "jansen", "berg", "costa", "weber",
         "lindqvist", "moreau", "kowalski", "fischer", "santos", "keller")  # fmt: skip
_NAME_A = ("Alp", "Bright", "Cedar", "Delta", "Ever", "Fjord", "Granite", "Harbor", "Iron",
           "Juniper", "Kestrel", "Lumen", "Meridian", "North", "Orbit", "Pioneer", "Quarry",
           "River", "Summit", "Tidal", "Union", "Vertex", "Willow", "Zenith")  # fmt: skip
_NAME_B = ("tech", "works", "line", "point", "stone", "field", "gate", "wave", "forge", "core",
           "bridge", "path", "light", "mark", "port", "vale")  # fmt: skip
_LEGAL = ("GmbH", "AG", "Ltd", "Inc", "S.A.", "B.V.", "SE", "Oy")

# Month multipliers (index 0 = January): Q4 bump, August dip for orders; holiday dips for usage.
_SEASON_ORDERS = np.array([0.9, 1.0, 1.1, 1.0, 1.0, 1.0, 0.9, 0.7, 1.05, 1.1, 1.2, 1.15])
_SEASON_USAGE = np.array([0.97, 1.0, 1.0, 1.0, 1.0, 1.0, 0.95, 0.82, 1.0, 1.0, 1.0, 0.9])


@dataclass(frozen=True)
class _Story:
    """The generative story's constants (documented in the module docstring)."""

    share_new: float = 0.35
    p_giant: float = 0.003
    health_level_mean: float = 0.25
    health_level_sd: float = 0.45
    ou_reversion: float = 0.05
    ou_noise: float = 0.12
    honeymoon: float = 0.3
    p_bad_shock: float = 0.005
    p_good_shock: float = 0.004
    ewma_alpha: float = 1 / 8
    churn_threshold: float = -0.75
    churn_width: float = 0.15
    churn_max_weekly: float = 0.02
    sudden_weekly: float = 0.001
    grace_weeks: int = 12
    p_early_exit: float = 0.12
    p_contract_drop: float = 0.05
    share_project: float = 0.4
    project_gap_days: float = 75.0
    project_gap_shape: tuple[float, float] = (1.0, 2.0)
    p_intent_answer: float = 0.6
    term_shares: tuple[float, float, float] = (0.2, 0.65, 0.15)
    nps_answer_logit: float = -1.2
    nps_health: float = 1.6
    nps_noise: float = 2.0
    intent_leaving: float = 2.0
    intent_dropping: float = 2.0
    intent_noise: float = 2.2
    ticket_fade: float = 0.3
    p_return: float = 0.5
    return_days: tuple[float, float] = (60.0, 400.0)
    p_residual: float = 0.5
    residual_days: tuple[float, float] = (60.0, 730.0)
    residual_speed: float = 0.35
    residual_basket: float = 0.3
    usage_coverage: float = 0.6
    pause_weekly: float = 0.008
    pause_weeks: tuple[float, float] = (6.0, 52.0)
    pause_order_speed: float = 0.08
    pause_usage: float = 0.6
    fade_weeks: tuple[float, float] = (6.0, 26.0)
    fade_depth: tuple[float, float] = (0.0, 0.6)
    sudden_fade_weeks: tuple[float, float] = (0.0, 4.0)
    sudden_fade_depth: tuple[float, float] = (0.0, 0.4)
    gap_shape: tuple[float, float] = (1.0, 2.5)
    order_health_beta: float = 0.5
    basket_health_beta: float = 0.25
    usage_health_beta: float = 0.45
    usage_fade: float = 0.3
    usage_noise_rho: float = 0.9
    usage_noise_sd: float = 0.35
    p_usage_stops_early: float = 0.25
    usage_early_days: int = 21
    usage_tail_days: int = 182
    usage_tail_tau: float = 70.0
    p_credit_note: float = 0.012
    p_contracted_logit: float = -0.2


@dataclass(frozen=True)
class _Grid:
    """The calendar: days 0..n_days-1 from ``start`` (a Monday) to ``end``; weeks of 7 days."""

    start: pd.Timestamp
    end: pd.Timestamp
    n_days: int
    n_weeks: int
    week_month: Arr  # month index 0-11 of each week's midpoint


@dataclass(frozen=True)
class DemoWorld:
    """A generated portfolio: the six contract tables and the per-account ground truth.

    ``tables`` follow the History conventions (string ids, ``datetime64[us]`` dates, float64
    numbers, bool flags). ``start_date``/``end_date`` bound every event date.
    """

    tables: dict[str, pd.DataFrame]
    truth: pd.DataFrame
    start_date: pd.Timestamp
    end_date: pd.Timestamp


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------
def generate_world(
    n_accounts: int = 2000, years: float = 3.0, seed: int = 42, end_date: str = "2026-09-30"
) -> DemoWorld:
    """Simulate ``n_accounts`` accounts over ``years`` years ending on ``end_date``.

    Deterministic in its arguments: the same call always returns the same world.
    """
    if n_accounts < 1:
        raise ValueError(f"n_accounts must be >= 1, got {n_accounts}")
    if not 0.25 <= years <= 20:
        raise ValueError(f"years must be between 0.25 and 20, got {years}")
    grid = _make_grid(pd.Timestamp(end_date), years)
    story = _Story()
    n_chunks = -(-n_accounts // _CHUNK)
    root = np.random.SeedSequence(seed)
    portfolio_seed, *chunk_seeds = root.spawn(1 + n_chunks)
    parts: list[dict[str, dict[str, Arr]]] = []
    for c, ss in enumerate(chunk_seeds):
        lo = c * _CHUNK
        n = min(_CHUNK, n_accounts - lo)
        part = _simulate_chunk(np.random.default_rng(ss), n, grid, story)
        for table in part.values():  # make account indices global
            table["acc"] = table["acc"] + lo
        parts.append(part)
    merged: dict[str, dict[str, Arr]] = {}
    for name in list(parts[0]):  # pop as we go: each chunk's copy is freed once merged
        merged[name] = {
            col: np.concatenate([p[name].pop(col) for p in parts]) for col in list(parts[0][name])
        }
    return _assemble(merged, grid, np.random.default_rng(portfolio_seed))


def write_world(
    world: DemoWorld, out_dir: Path, fmt: Literal["csv", "parquet"] = "csv"
) -> list[Path]:
    """Write the six tables to ``out_dir/<table>.<fmt>`` and the truth to ``TRUTH_PATH``.

    Atomic per file: everything is written into a temporary folder beside ``out_dir`` and
    then moved into place, so a crash never leaves a half-written table. The bytes depend
    only on the world: rows are sorted, floats have a fixed format, dates are ISO
    ``YYYY-MM-DD``, and Parquet files carry no timestamps. Returns the written paths.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        staged: list[tuple[Path, Path]] = []
        for name in TABLES:
            rel = Path(f"{name}.{fmt}")
            df = world.tables[name]
            if fmt == "csv":
                _write_csv(_integral_as_int(df), tmp / rel)
            else:
                df.to_parquet(tmp / rel, index=False, engine="pyarrow")
            staged.append((tmp / rel, out_dir / rel))
        (tmp / TRUTH_PATH).parent.mkdir(parents=True)
        _write_csv(world.truth, tmp / TRUTH_PATH)
        staged.append((tmp / TRUTH_PATH, out_dir / TRUTH_PATH))
        (out_dir / TRUTH_PATH).parent.mkdir(parents=True, exist_ok=True)
        for src, dst in staged:
            os.replace(src, dst)
        return [dst for _, dst in staged]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------
# calendar and writing helpers
# --------------------------------------------------------------------------------------
def _make_grid(end: pd.Timestamp, years: float) -> _Grid:
    end = end.normalize()
    first = end - pd.Timedelta(days=round(years * 365.25) - 1)
    start = first - pd.Timedelta(days=first.day_of_week)  # back to Monday
    n_days = (end - start).days + 1
    n_weeks = -(-n_days // 7)
    mid = start + pd.to_timedelta(np.arange(n_weeks) * 7 + 3, unit="D")
    return _Grid(start, end, n_days, n_weeks, np.asarray(mid.month - 1))


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(
        path,
        index=False,
        float_format="%.2f",
        date_format="%Y-%m-%d",
        lineterminator="\n",
        na_rep="",
    )


def _integral_as_int(df: pd.DataFrame) -> pd.DataFrame:
    """Counts, scores and quantities are whole numbers: write them without decimals."""
    cols = [c for c in ("quantity", "count", "score") if c in df.columns]
    return df.astype(dict.fromkeys(cols, "int64")) if cols else df


def _days_to_dates(start: pd.Timestamp, days: Arr) -> Arr:
    base = np.datetime64(start.date(), "D")
    return (base + days.astype("timedelta64[D]")).astype("datetime64[us]")


def _sigmoid(x: Arr) -> Arr:
    return 1.0 / (1.0 + np.exp(-x))


# --------------------------------------------------------------------------------------
# simulation of one chunk of accounts (account index 0..n-1 within the chunk)
# --------------------------------------------------------------------------------------
def _simulate_chunk(
    rng: np.random.Generator, n: int, grid: _Grid, s: _Story
) -> dict[str, dict[str, Arr]]:
    acc = _draw_accounts(rng, n, grid, s)
    h = _simulate_health(rng, acc, grid, s)
    churn = _draw_churn(rng, acc, h, grid, s)
    ramp = _fade_ramp(churn, grid)
    h_eff = h - churn["depth"][:, None] * ramp
    acc["paused"] = _pauses(rng, n, grid, s)
    # lost accounts often keep buying spare parts or consumables for a while: residual orders
    decided = churn["kind"] > 0
    residual = decided & (rng.random(n) < s.p_residual)
    orders_to = churn["churn_day"] + np.where(
        residual, rng.uniform(*s.residual_days, n).astype(np.int64), 0
    )
    # win-back: some lost accounts come back after a few months and buy (and use) as before
    back = decided & ~residual & (rng.random(n) < s.p_return)
    churn["return_day"] = np.where(
        back, churn["churn_day"] + rng.uniform(*s.return_days, n).astype(np.int64), _NEVER
    )
    orders_to = np.where(back, _NEVER, orders_to)
    acc["gone_speed"] = np.where(residual, s.residual_speed, 0.0)  # no orders until a return
    alive_from = np.maximum(acc["created"], 0)
    alive_to = np.minimum(churn["churn_day"], grid.n_days)  # exclusive
    last_week = np.clip((alive_to - 1) // 7, 0, grid.n_weeks - 1)
    rows = np.arange(n)
    truth = {
        "acc": rows,
        "churn_day": churn["churn_day"],
        "decision_day": churn["decision_day"],
        "churn_kind": churn["kind"],
        "warning_weeks": churn["weeks"],
        "fade_depth": churn["depth"],
        "health_end": h_eff[rows, last_week],
        "health_min": _alive_min(h_eff, alive_from, alive_to),
        "mean_gap_days": acc["mean_gap"],
        "gap_shape": acc["shape"],
        "trend_per_year": acc["trend"],
        "contracted": acc["contracted"],
        "drop_day": churn["drop_day"],
        "project": acc["project"],
        "paused_weeks": (acc["paused"] & _alive_weeks(alive_from, alive_to, grid.n_weeks)).sum(1),
        "residual_to": np.where(residual, orders_to, _NEVER),
        "return_day": churn["return_day"],
        "term": np.where(acc["contracted"], acc["term"], 0),
        "new_account": acc["created"] >= 0,
        "size_z": acc["z"],
        "created": acc["created"],
        "industry": acc["industry"],
        "region": acc["region"],
    }
    contracts = _contracts(acc, churn["contract_stop"], grid)
    tables = {
        "truth": truth,
        "orders": _orders(rng, acc, h_eff, alive_from, churn, orders_to, grid, s),
        "usage": _usage(rng, acc, h_eff, ramp, alive_from, churn, grid, s),
        "tickets": _tickets(rng, acc, h_eff, ramp, alive_from, alive_to, grid, s),
        "surveys": _surveys(rng, h_eff, ramp, alive_from, alive_to, churn, contracts, grid, s),
        "contracts": contracts,
    }
    return {name: {k: _compact(v) for k, v in cols.items()} for name, cols in tables.items()}


def _compact(a: Arr) -> Arr:
    """Integer columns as int32 (days and indices fit): halves the memory of the merge."""
    return a.astype(np.int32) if a.dtype.kind == "i" else a


def _draw_accounts(rng: np.random.Generator, n: int, grid: _Grid, s: _Story) -> dict[str, Arr]:
    z = rng.standard_normal(n) + 1.5 * (rng.random(n) < s.p_giant)
    ind_p = np.array([p for _, p, _ in INDUSTRIES])
    industry = rng.choice(len(INDUSTRIES), n, p=ind_p / ind_p.sum())
    reg_p = np.array([p for _, p in REGIONS])
    region = rng.choice(len(REGIONS), n, p=reg_p / reg_p.sum())
    new = rng.random(n) < s.share_new
    created = np.where(
        new,
        rng.integers(0, max(grid.n_days - 90, 1), n),
        -rng.integers(30, 8 * 365, n),
    )
    mean_gap = np.clip(np.exp(np.log(22) - 0.35 * z + 0.35 * rng.standard_normal(n)), 7, 90)
    # project buyers: a few irregular orders a year (equipment, annual licences)
    project = rng.random(n) < s.share_project
    project_gap = np.exp(np.log(s.project_gap_days) + 0.4 * rng.standard_normal(n))
    mean_gap = np.where(project, np.clip(project_gap, 35, 180), mean_gap)
    shape = np.where(project, rng.uniform(*s.project_gap_shape, n), rng.uniform(*s.gap_shape, n))
    shift = np.array([d for _, _, d in INDUSTRIES])[industry]
    return {
        "z": z,
        "industry": industry,
        "region": region,
        "created": created,
        "mean_gap": mean_gap,
        "shape": shape,
        "project": project,
        "trend": rng.normal(0.0, 0.15, n),
        "basket": np.exp(np.log(1500) + 1.0 * z + 0.35 * rng.standard_normal(n)),
        "seats": np.clip(np.exp(np.log(25) + 0.6 * z + 0.4 * rng.standard_normal(n)), 3, 5000),
        "ticket_rate": 0.06 * np.exp(0.35 * z + 0.3 * rng.standard_normal(n)),
        "contracted": rng.random(n) < _sigmoid(s.p_contracted_logit + 0.8 * z),
        "tracked": rng.random(n) < s.usage_coverage,  # usage is logged for these accounts
        "anchor": np.where(new, created + rng.integers(0, 60, n), created),
        "level": s.health_level_mean + shift + s.health_level_sd * rng.standard_normal(n),
        "primary": rng.integers(0, len(PRODUCTS), n),
        "discount": rng.uniform(0.0, 0.2, n),
        "commit": rng.uniform(0.5, 0.9, n),
        "term": np.asarray(CONTRACT_TERMS)[
            rng.choice(len(CONTRACT_TERMS), n, p=np.asarray(s.term_shares))
        ],
    }


def _simulate_health(rng: np.random.Generator, acc: dict[str, Arr], grid: _Grid, s: _Story) -> Arr:
    """Weekly OU health with shocks, shape (accounts, weeks)."""
    n, w_n = len(acc["z"]), grid.n_weeks
    level = acc["level"]
    stat_sd = s.ou_noise / np.sqrt(2 * s.ou_reversion)
    created_week = np.floor_divide(acc["created"], 7)
    h = np.empty((n, w_n))
    x = level + stat_sd * rng.standard_normal(n)
    for w in range(w_n):
        if w:
            bad = (rng.random(n) < s.p_bad_shock) * rng.uniform(0.8, 2.0, n)
            good = (rng.random(n) < s.p_good_shock) * rng.uniform(0.3, 1.0, n)
            x = x + s.ou_reversion * (level - x) + s.ou_noise * rng.standard_normal(n) - bad + good
        honey = level + s.honeymoon + 0.3 * rng.standard_normal(n)
        x = np.where(created_week == w, honey, x)
        h[:, w] = x
    return h


def _first_event_week(rng: np.random.Generator, p: Arr) -> Arr:
    """Week of the first event of weekly hazards ``p`` (n x W); W when none happens."""
    cum = np.cumsum(-np.log1p(-p), axis=1)
    hit = cum > np.asarray(rng.exponential(1.0, p.shape[0]))[:, None]
    return np.where(hit.any(axis=1), hit.argmax(axis=1), p.shape[1])


def _draw_churn(
    rng: np.random.Generator, acc: dict[str, Arr], h: Arr, grid: _Grid, s: _Story
) -> dict[str, Arr]:
    """Decision week from the health and sudden hazards; churn day; the fade's shape."""
    n, w_n = h.shape
    smooth = np.empty_like(h)
    x = h[:, 0].copy()
    for w in range(w_n):
        x = (1 - s.ewma_alpha) * x + s.ewma_alpha * h[:, w]
        smooth[:, w] = x
    week_start = np.arange(w_n) * 7
    eligible = week_start[None, :] >= (acc["created"] + 7 * s.grace_weeks)[:, None]
    p_health = s.churn_max_weekly * _sigmoid((s.churn_threshold - smooth) / s.churn_width)
    wk_health = _first_event_week(rng, p_health * eligible)
    wk_sudden = _first_event_week(rng, s.sudden_weekly * eligible.astype(float))
    week = np.minimum(wk_health, wk_sudden)
    decision_day = np.where(week < w_n, week * 7 + rng.integers(0, 7, n), grid.n_days)
    decided = decision_day < grid.n_days  # the last week may run past end_date
    # the annual contract running on the decision day ends on lapse - 1
    term = acc["term"]
    k = np.maximum(1, -(-(decision_day - acc["anchor"] + 1) // term))
    lapse = acc["anchor"] + term * k
    health_kind = wk_health <= wk_sudden
    # a contract drop: at some renewal the account lets its contract lapse but stays, buying
    # on purchase orders (procurement policy, a framework agreement ends); per renewal
    first_k = np.maximum(1, -(-(0 - acc["anchor"]) // term))
    drop_k = first_k + rng.geometric(s.p_contract_drop * term / 365, n) - 1
    drop_day = np.where(acc["contracted"], acc["anchor"] + term * drop_k, _NEVER)
    # accounts under contract on the decision day leave when that contract lapses (it is
    # not renewed) and keep buying and using until then; early exits (insolvency, a
    # merger, a breach: the mid-term churn) stop at once and let the contract run out
    # unused (still not renewed). Accounts without a contract stop on the decision day.
    bound = acc["contracted"] & (decision_day < drop_day)
    waits = bound & (rng.random(n) >= s.p_early_exit)
    churn_day = np.where(waits, lapse, decision_day)
    contract_stop = np.where(decided & bound, lapse, drop_day)
    # usage does not stop on the churn date: some teams move to the new supplier a little
    # earlier, most keep logging in for a few weeks (grace period, data export)
    early = rng.random(n) < s.p_usage_stops_early
    usage_offset = np.where(
        early,
        -rng.integers(0, s.usage_early_days + 1, n),
        rng.integers(0, s.usage_tail_days + 1, n),
    )
    weeks = np.where(
        health_kind, rng.uniform(*s.fade_weeks, n), rng.uniform(*s.sudden_fade_weeks, n)
    )
    depth = np.where(
        health_kind, rng.uniform(*s.fade_depth, n), rng.uniform(*s.sudden_fade_depth, n)
    )
    # a churn planned after end_date (a lapse still ahead) already fades in the data
    return {
        "churn_day": np.where(decided, churn_day, _NEVER),
        "usage_end": np.where(decided, churn_day + usage_offset, _NEVER),
        "decision_day": np.where(decided, decision_day, -1),
        "kind": np.where(decided, np.where(health_kind, 1, 2), 0),
        "weeks": np.where(decided, weeks, 0.0),
        "depth": np.where(decided, depth, 0.0),
        "contract_stop": np.where(acc["contracted"], contract_stop, -1),
        "drop_day": np.where(acc["contracted"] & ~(decided & bound), drop_day, _NEVER),
    }


def _pauses(rng: np.random.Generator, n: int, grid: _Grid, s: _Story) -> Arr:
    """(accounts x weeks) mask of order pauses: a project ends, stock was built up, a budget
    freeze. Orders nearly stop and usage dips for 6-40 weeks, then both come back."""
    out = np.zeros((n, grid.n_weeks), bool)
    left = np.zeros(n)
    for w in range(grid.n_weeks):
        start = (left <= 0) & (rng.random(n) < s.pause_weekly)
        left = np.where(start, rng.uniform(*s.pause_weeks, n), left)
        out[:, w] = left > 0
        left -= 1
    return out


def _fade_ramp(churn: dict[str, Arr], grid: _Grid) -> Arr:
    """0 -> 1 over the ``weeks`` before the churn date (0 everywhere for non-churners)."""
    mid = np.arange(grid.n_weeks) * 7 + 3.5
    span = np.maximum(churn["weeks"] * 7, 1e-9)[:, None]
    ramp = 1 - (churn["churn_day"][:, None] - mid[None, :]) / span
    return np.clip(ramp, 0, 1) * (churn["weeks"] > 0)[:, None]


def _alive_min(h: Arr, alive_from: Arr, alive_to: Arr) -> Arr:
    alive = _alive_weeks(alive_from, alive_to, h.shape[1])
    return np.where(alive, h, np.inf).min(axis=1)


def _alive_weeks(alive_from: Arr, alive_to: Arr, n_weeks: int) -> Arr:
    """(accounts x weeks) mask of weeks that overlap the days [alive_from, alive_to)."""
    week_start = np.arange(n_weeks) * 7
    return (week_start[None, :] + 7 > alive_from[:, None]) & (
        week_start[None, :] < alive_to[:, None]
    )


def _orders(
    rng: np.random.Generator,
    acc: dict[str, Arr],
    h_eff: Arr,
    alive_from: Arr,
    churn: dict[str, Arr],
    alive_to: Arr,
    grid: _Grid,
    s: _Story,
) -> dict[str, Arr]:
    """Gamma renewal process in operational time, mapped to calendar days.

    Orders run from ``alive_from`` to ``alive_to``; between the churn day and a return
    (residual orders of a lost account) at a fraction of the speed and with small baskets.
    """
    n, w_n = h_eff.shape
    mid_years = (np.arange(w_n) * 7 + 3.5) / 365.25
    churn_day, return_day = churn["churn_day"], churn["return_day"]
    week_day = (np.arange(w_n) * 7)[None, :]
    gone = (week_day >= churn_day[:, None]) & (week_day < return_day[:, None])
    speed = (
        np.exp(s.order_health_beta * h_eff)
        * _SEASON_ORDERS[grid.week_month][None, :]
        * np.exp(acc["trend"][:, None] * mid_years[None, :])
        * _alive_weeks(alive_from, alive_to, grid.n_weeks)
        * np.where(acc["paused"], s.pause_order_speed, 1.0)
        * np.where(gone, acc["gone_speed"][:, None], 1.0)
    )
    cum = np.zeros((n, w_n + 1))
    np.cumsum(7 * speed / acc["mean_gap"][:, None], axis=1, out=cum[:, 1:])
    total = cum[:, -1]
    # enough gamma draws per account to pass its total operational time
    k = np.ceil(total + 5 * np.sqrt(total) + 5).astype(np.int64)
    owner = np.repeat(np.arange(n), k)
    shape = np.repeat(acc["shape"], k)
    gaps = rng.gamma(shape, 1 / shape)
    first = np.cumsum(k) - k
    # existing accounts are met mid-cycle; new accounts order soon after they are created
    phase = np.where(acc["created"] >= 0, 0.3, 1.0) * rng.random(n)
    gaps[first] *= phase
    t = np.cumsum(gaps)
    t -= np.repeat(t[first] - gaps[first], k)
    keep = t < total[owner]
    owner, t = owner[keep], t[keep]
    # invert the piecewise-linear clock with one global search (rows offset to be sorted)
    offset = np.concatenate([[0.0], np.cumsum(total + 1)[:-1]])
    flat = (cum + offset[:, None]).ravel()
    pos = np.searchsorted(flat, t + offset[owner], side="right") - 1
    week = np.clip(pos - owner * (w_n + 1), 0, w_n - 1)  # clip guards float round-off
    lo, hi = cum[owner, week], cum[owner, week + 1]
    frac = np.clip((t - lo) / np.maximum(hi - lo, 1e-12), 0.0, 0.9999)
    day = (7 * (week + frac)).astype(np.int64)
    ok = (day >= alive_from[owner]) & (day < alive_to[owner]) & (day < grid.n_days)
    owner, day, week = owner[ok], day[ok], week[ok]
    he = h_eff[owner, week]
    m = len(owner)
    basket = acc["basket"][owner] * np.exp(s.basket_health_beta * he + 0.4 * rng.standard_normal(m))
    basket *= np.where(
        (day >= churn_day[owner]) & (day < return_day[owner]), s.residual_basket, 1.0
    )
    n_lines = 1 + (rng.random(m) < 0.4) + (rng.random(m) < 0.1)
    first_product = np.where(
        rng.random(m) < 0.6, acc["primary"][owner], rng.integers(0, len(PRODUCTS), m)
    )
    step = rng.integers(1, len(PRODUCTS), m)
    order_uid = np.arange(m)
    line_order = np.repeat(order_uid, n_lines)
    line_no = np.arange(len(line_order)) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines)
    product = (first_product[line_order] + line_no * step[line_order]) % len(PRODUCTS)
    price = np.array([p for _, p in PRODUCTS])[product]
    line_acc = owner[line_order]
    unit = np.round(price * (1 - acc["discount"][line_acc]), 2)
    target = (basket / n_lines)[line_order] * np.exp(0.3 * rng.standard_normal(len(line_order)))
    qty = np.maximum(1, np.round(target / unit))
    amount = np.round(qty * unit, 2)
    line_day = day[line_order]
    # credit notes: a share of lines is (partly) returned 3-45 days later
    p_cn = s.p_credit_note * np.exp(-0.5 * he[line_order])
    cn = np.flatnonzero(rng.random(len(line_order)) < p_cn)
    cn_day = line_day[cn] + rng.integers(3, 46, len(cn))
    cn = cn[cn_day < grid.n_days]
    cn_day = cn_day[cn_day < grid.n_days]
    full = rng.random(len(cn)) < 0.4
    cn_qty = -np.where(
        full, qty[cn], np.maximum(1, np.round(qty[cn] * rng.uniform(0.1, 0.6, len(cn))))
    )
    return {
        "acc": np.concatenate([line_acc, line_acc[cn]]),
        "day": np.concatenate([line_day, cn_day]),
        "amount": np.concatenate([amount, np.round(cn_qty * unit[cn], 2)]),
        "quantity": np.concatenate([qty, cn_qty]),
        "product": np.concatenate([product, product[cn]]),
        "is_credit": np.concatenate([np.zeros(len(line_order), bool), np.ones(len(cn), bool)]),
        "uid": np.concatenate([line_order, len(line_order) + np.arange(len(cn))]),
        "line": np.concatenate([line_no, np.zeros(len(cn), np.int64)]),
    }


def _usage(
    rng: np.random.Generator,
    acc: dict[str, Arr],
    h_eff: Arr,
    ramp: Arr,
    alive_from: Arr,
    churn: dict[str, Arr],
    grid: _Grid,
    s: _Story,
) -> dict[str, Arr]:
    """Weekly active users, one row per account and week in use, dated on its Sunday.

    Besides health, usage follows the account's own slow ups and downs (projects,
    reorganisations: an AR(1) factor that makes a usage dip a noisy signal) and does not
    end exactly on the churn date: it stops up to ``usage_early_days`` before it or tails
    off (decaying) for up to ``usage_tail_days`` after it.
    """
    n, w_n = h_eff.shape
    wander = _ar1(rng, n, w_n, s.usage_noise_rho, s.usage_noise_sd)
    sunday = np.arange(w_n) * 7 + 6
    valid = (
        acc["tracked"][:, None]
        & (sunday[None, :] >= alive_from[:, None])
        & (
            (sunday[None, :] < churn["usage_end"][:, None])
            | (sunday[None, :] >= churn["return_day"][:, None])
        )
        & (sunday[None, :] < grid.n_days)
    )
    acc_i, week = np.nonzero(valid)
    age_weeks = (sunday[week] - acc["created"][acc_i]) / 7
    adoption = 1 - 0.8 * np.exp(-age_weeks / 6)
    back = sunday[week] >= churn["return_day"][acc_i]
    after = np.where(back, 0, np.maximum(sunday[week] - churn["churn_day"][acc_i], 0))
    mean = (
        acc["seats"][acc_i]
        * adoption
        * np.exp(s.usage_health_beta * h_eff[acc_i, week] + wander[acc_i, week])
        * (1 - s.usage_fade * ramp[acc_i, week])
        * np.exp(-after / s.usage_tail_tau)
        * _SEASON_USAGE[grid.week_month[week]]
        * np.where(acc["paused"][acc_i, week], s.pause_usage, 1.0)
        * np.exp(0.1 * rng.standard_normal(len(acc_i)))
    )
    return {"acc": acc_i, "day": sunday[week], "count": rng.poisson(mean).astype(float)}


def _ar1(rng: np.random.Generator, n: int, w_n: int, rho: float, sd: float) -> Arr:
    """(n x w_n) stationary AR(1) paths with lag-1 correlation ``rho`` and s.d. ``sd``."""
    out = np.empty((n, w_n))
    x = sd * rng.standard_normal(n)
    step = sd * np.sqrt(1 - rho**2)
    for w in range(w_n):
        if w:
            x = rho * x + step * rng.standard_normal(n)
        out[:, w] = x
    return out


def _tickets(
    rng: np.random.Generator,
    acc: dict[str, Arr],
    h_eff: Arr,
    ramp: Arr,
    alive_from: Arr,
    alive_to: Arr,
    grid: _Grid,
    s: _Story,
) -> dict[str, Arr]:
    rate = acc["ticket_rate"][:, None] * np.exp(-0.5 * h_eff + s.ticket_fade * ramp)
    counts = rng.poisson(rate * _alive_weeks(alive_from, alive_to, grid.n_weeks))
    acc_i, week = np.nonzero(counts)
    reps = counts[acc_i, week]
    acc_i, week = np.repeat(acc_i, reps), np.repeat(week, reps)
    m = len(acc_i)
    day = week * 7 + rng.integers(0, 7, m)
    ok = (day >= alive_from[acc_i]) & (day < alive_to[acc_i]) & (day < grid.n_days)
    acc_i, week, day = acc_i[ok], week[ok], day[ok]
    m = len(acc_i)
    he, rp = h_eff[acc_i, week], ramp[acc_i, week]
    complaint = rng.random(m) < _sigmoid(-1.8 - 0.8 * he + 0.8 * rp)
    latent = -0.6 * he + 0.6 * rp + rng.standard_normal(m)
    severity = np.searchsorted(np.array([-0.3, 0.9, 1.9]), latent)  # 0 low .. 3 critical
    mean_days = np.array([8.0, 6.0, 4.0, 2.0])[severity]
    resolved = day + np.ceil(rng.gamma(2.0, mean_days / 2)).astype(np.int64)
    return {
        "acc": acc_i,
        "day": day,
        "severity": severity,
        "complaint": complaint,
        "resolved": np.where(resolved < grid.n_days, resolved, -1),
    }


def _surveys(
    rng: np.random.Generator,
    h_eff: Arr,
    ramp: Arr,
    alive_from: Arr,
    alive_to: Arr,
    churn: dict[str, Arr],
    contracts: dict[str, Arr],
    grid: _Grid,
    s: _Story,
) -> dict[str, Arr]:
    """Quarterly NPS waves (about half answer, unhealthy accounts less often) and, before
    each contract end, a renewal-intent question (kind 1)."""
    nps = _nps_waves(rng, h_eff, ramp, alive_from, alive_to, grid, s)
    intent = _renewal_intent(rng, h_eff, ramp, alive_from, alive_to, churn, contracts, grid, s)
    return {k: np.concatenate([nps[k], intent[k]]) for k in nps}


def _renewal_intent(
    rng: np.random.Generator,
    h_eff: Arr,
    ramp: Arr,
    alive_from: Arr,
    alive_to: Arr,
    churn: dict[str, Arr],
    contracts: dict[str, Arr],
    grid: _Grid,
    s: _Story,
) -> dict[str, Arr]:
    """ "How likely will you renew?" (0-10), asked 70-130 days before a contract ends.

    About 60% answer (unhealthy accounts less often). An account that has already decided
    not to renew answers about 3 points lower, one about to drop its contract 2 points
    lower; with the noise, some leavers answer high and some stayers low.
    """
    acc_i, end = contracts["acc"], contracts["end"]
    m = len(acc_i)
    day = end + 1 - rng.integers(70, 131, m)
    week = np.clip(day // 7, 0, grid.n_weeks - 1)
    he, rp = h_eff[acc_i, week], ramp[acc_i, week]
    lapse = end + 1
    leaving = (lapse == churn["churn_day"][acc_i]) & (churn["decision_day"][acc_i] <= day)
    leaving &= churn["decision_day"][acc_i] >= 0
    dropping = lapse == churn["drop_day"][acc_i]
    answer = rng.random(m) < s.p_intent_answer * 2 * _sigmoid(0.4 * he - 0.5 * rp)
    ok = (
        answer
        & (day >= contracts["start"])
        & (day >= alive_from[acc_i])
        & (day < alive_to[acc_i])
        & (day >= 0)
        & (day < grid.n_days)
    )
    noise = rng.standard_normal(m)
    score = (
        7.0
        + 1.2 * he
        - 1.0 * rp
        - s.intent_leaving * leaving
        - s.intent_dropping * dropping
        + s.intent_noise * noise
    )
    return {
        "acc": acc_i[ok],
        "day": day[ok],
        "score": np.clip(np.round(score), 0, 10)[ok],
        "kind": np.ones(int(ok.sum()), np.int64),
    }


def _nps_waves(
    rng: np.random.Generator,
    h_eff: Arr,
    ramp: Arr,
    alive_from: Arr,
    alive_to: Arr,
    grid: _Grid,
    s: _Story,
) -> dict[str, Arr]:
    years = range(grid.start.year, grid.end.year + 1)
    waves = [(pd.Timestamp(y, mth, 15) - grid.start).days for y in years for mth in (2, 5, 8, 11)]
    waves = [d for d in waves if 0 <= d < grid.n_days]
    n = h_eff.shape[0]
    out: dict[str, list[Arr]] = {"acc": [], "day": [], "score": [], "kind": []}
    for wave in waves:
        day = np.asarray(wave + rng.integers(0, 21, n))
        week = np.minimum(day // 7, grid.n_weeks - 1)
        he = h_eff[np.arange(n), week]
        rp = ramp[np.arange(n), week]
        answer = rng.random(n) < _sigmoid(s.nps_answer_logit + 0.4 * he - 1.0 * rp)
        noise = rng.standard_normal(n)
        ok = answer & (day >= alive_from) & (day < alive_to) & (day < grid.n_days)
        score = np.clip(np.round(7.3 + s.nps_health * he - 1.0 * rp + s.nps_noise * noise), 0, 10)
        out["acc"].append(np.flatnonzero(ok))
        out["day"].append(day[ok])
        out["score"].append(score[ok])
        out["kind"].append(np.zeros(int(ok.sum()), np.int64))
    if not waves:
        empty = np.zeros(0, np.int64)
        return {"acc": empty, "day": empty, "score": np.zeros(0), "kind": empty}
    return {k: np.concatenate(v) for k, v in out.items()}


def _contracts(acc: dict[str, Arr], contract_stop: Arr, grid: _Grid) -> dict[str, Arr]:
    """Annual contracts overlapping the window, renewed until the account churns or drops
    its contract (``contract_stop``: the lapse day, the day after the last contract)."""
    anchor, term = acc["anchor"], acc["term"]
    stop = np.minimum(contract_stop, grid.n_days)  # contracts must start before this day
    k_lo = np.maximum(0, -(-(1 - term - anchor) // term))
    k_hi = np.floor_divide(stop - 1 - anchor, term)
    count = np.where(acc["contracted"], np.maximum(k_hi - k_lo + 1, 0), 0)
    acc_i = np.repeat(np.arange(len(anchor)), count)
    k = np.repeat(k_lo, count) + (
        np.arange(len(acc_i)) - np.repeat(np.cumsum(count) - count, count)
    )
    start = anchor[acc_i] + term[acc_i] * k
    revenue = term / acc["mean_gap"] * acc["basket"] * 1.4  # over one term
    value = np.round(
        revenue[acc_i] * acc["commit"][acc_i] * np.exp(acc["trend"][acc_i] * start / 365.25), -2
    )
    return {
        "acc": acc_i,
        "start": start,
        "end": start + term[acc_i] - 1,
        "value": value,
        "renewed": start + term[acc_i] < stop[acc_i],
    }


# --------------------------------------------------------------------------------------
# assembly into sorted, typed DataFrames
# --------------------------------------------------------------------------------------
def _labels(values: Sequence[str], codes: Arr) -> pd.Series:
    """A ``str`` column from small-integer codes (Arrow take: no Python string per row)."""
    return pd.Series(pa.array(values, pa.string()).take(pa.array(codes)), dtype="str")


def _assemble(parts: dict[str, dict[str, Arr]], grid: _Grid, rng: np.random.Generator) -> DemoWorld:
    t = parts["truth"]
    n = len(t["acc"])
    # ids follow creation order, like a CRM's running numbers
    number = np.empty(n, np.int64)
    number[np.lexsort((t["acc"], t["created"]))] = np.arange(1, n + 1)
    width = max(5, len(str(n)))
    ids = [f"KA{k:0{width}d}" for k in number]

    def dates(days: Arr) -> Arr:
        return _days_to_dates(grid.start, days)

    def sort_by(table: dict[str, Arr], *keys: str) -> dict[str, Arr]:
        """Rows in date order, then account number, then the given tie-breakers."""
        cols = [table[k] for k in reversed(keys)]
        key = np.lexsort((*cols, number[table["acc"]], table["day"]))
        return {k: v[key] for k, v in table.items()}

    tables = {
        "orders": _orders_frame(parts.pop("orders"), number, ids, dates),
        "accounts": _accounts_frame(t, ids, number, rng, dates),
    }
    u = sort_by(parts.pop("usage"))
    tables["usage"] = pd.DataFrame(
        {
            "account_id": _labels(ids, u["acc"]),
            "date": dates(u["day"]),
            "count": u["count"].astype(np.float64),
            "event_type": _labels(["active_users"], np.zeros(len(u["acc"]), np.int8)),
        }
    )
    k = sort_by(parts.pop("tickets"), "severity", "resolved")
    tables["tickets"] = pd.DataFrame(
        {
            "account_id": _labels(ids, k["acc"]),
            "opened_at": dates(k["day"]),
            "severity": _labels(SEVERITIES, k["severity"]),
            "is_complaint": k["complaint"].astype(bool),
            "resolved_at": np.where(
                k["resolved"] >= 0, dates(np.maximum(k["resolved"], 0)), np.datetime64("NaT", "us")
            ),
        }
    )
    v = sort_by(parts.pop("surveys"), "kind", "score")
    tables["surveys"] = pd.DataFrame(
        {
            "account_id": _labels(ids, v["acc"]),
            "date": dates(v["day"]),
            "score": v["score"].astype(np.float64),
            "kind": _labels(list(SURVEY_KINDS), v["kind"]),
        }
    )
    c = parts.pop("contracts")
    key = np.lexsort((c["start"], number[c["acc"]]))
    tables["contracts"] = pd.DataFrame(
        {
            "account_id": _labels(ids, c["acc"][key]),
            "start_date": dates(c["start"][key]),
            "end_date": dates(c["end"][key]),
            "value": c["value"][key].astype(np.float64),
            "renewed": c["renewed"][key].astype(bool),
            # signed the day they start: known from the start, as without the column
            "signed_date": dates(c["start"][key]),
        }
    )
    truth = _truth_frame(t, ids, number, dates, grid.n_days)
    return DemoWorld(tables, truth, grid.start, grid.end)


def _orders_frame(o: dict[str, Arr], number: Arr, ids: list[str], dates: Any) -> pd.DataFrame:
    acc_no = number[o["acc"]]
    # ERP-style running numbers: orders and credit notes numbered by date, then account
    key = np.lexsort((o["line"], o["uid"], o["is_credit"], acc_no, o["day"]))
    o = {k: v[key] for k, v in o.items()}
    acc, uid, credit = o["acc"], o["uid"], o["is_credit"]
    # lines of one order are adjacent; uids are unique per chunk, accounts per chunk
    first_row = np.r_[True, (uid[1:] != uid[:-1]) | (acc[1:] != acc[:-1])]
    num = np.where(credit, np.cumsum(first_row & credit), np.cumsum(first_row & ~credit))
    width = max(7, len(str(int(num.max(initial=0)))))
    prefix = pa.array(["SO", "CN"]).take(pa.array(credit.astype(np.int8)))
    digits = pc.utf8_lpad(pc.cast(pa.array(num), pa.string()), width, "0")
    return pd.DataFrame(
        {
            "account_id": _labels(ids, acc),
            "order_date": dates(o["day"]),
            "amount": o["amount"].astype(np.float64),
            "order_id": pd.Series(pc.binary_join_element_wise(prefix, digits, ""), dtype="str"),
            "product": _labels([p for p, _ in PRODUCTS], o["product"]),
            "quantity": o["quantity"].astype(np.float64),
        }
    )


def _accounts_frame(
    t: dict[str, Arr], ids: list[str], number: Arr, rng: np.random.Generator, dates: Any
) -> pd.DataFrame:
    n = len(ids)
    combos = len(_NAME_A) * len(_NAME_B) * len(_LEGAL)
    pick = rng.permutation(combos)[np.arange(n) % combos]
    a, rest = np.divmod(pick, len(_NAME_B) * len(_LEGAL))
    b, legal = np.divmod(rest, len(_LEGAL))
    names = [
        f"{_NAME_A[i]}{_NAME_B[j]} {_LEGAL[k]}" + (f" {no}" if row >= combos else "")
        for row, (i, j, k, no) in enumerate(zip(a, b, legal, number, strict=True))
    ]
    n_owners = int(np.clip(round(np.sqrt(n) / 4), 8, 15))
    first = rng.permutation(len(_FIRST))[:n_owners]
    last = rng.permutation(len(_LAST))[:n_owners]
    owners = [f"{_FIRST[i]}.{_LAST[j]}" for i, j in zip(first, last, strict=True)]
    load = rng.dirichlet(np.full(n_owners, 8.0))  # unequal books of business
    z = t["size_z"]
    segment = np.select([z > 2.0, z > 1.0, z > -0.3], [0, 1, 2], 3)
    owner_codes = rng.choice(n_owners, n, p=load)
    df = pd.DataFrame(
        {
            "account_id": pd.Series(ids, dtype="str"),
            "name": pd.Series(names, dtype="str"),
            "industry": _labels([i[0] for i in INDUSTRIES], t["industry"]),
            "region": _labels([r[0] for r in REGIONS], t["region"]),
            "created_at": dates(t["created"]),
            "owner": _labels(owners, owner_codes),
            "owner_email": _labels([f"{o}@example.com" for o in owners], owner_codes),
            "segment": _labels(["strategic", "enterprise", "mid-market", "smb"], segment),
        }
    )
    return df.iloc[np.argsort(number, kind="stable")].reset_index(drop=True)


def _truth_frame(
    t: dict[str, Arr], ids: list[str], number: Arr, dates: Any, n_days: int
) -> pd.DataFrame:
    decided = t["churn_kind"] > 0
    churned = decided & (t["churn_day"] < n_days)
    nat = np.datetime64("NaT", "us")
    df = pd.DataFrame(
        {
            "account_id": pd.Series(ids, dtype="str"),
            "churned": churned,
            "churn_date": np.where(churned, dates(np.where(churned, t["churn_day"], 0)), nat),
            "planned_churn_date": np.where(
                decided, dates(np.where(decided, t["churn_day"], 0)), nat
            ),
            "churn_kind": _labels(["", "health", "sudden"], t["churn_kind"]),
            "decision_date": np.where(decided, dates(np.maximum(t["decision_day"], 0)), nat),
            "warning_weeks": t["warning_weeks"],
            "fade_depth": t["fade_depth"],
            "health_end": t["health_end"],
            "health_min": t["health_min"],
            "mean_gap_days": t["mean_gap_days"],
            "gap_shape": t["gap_shape"],
            "trend_per_year": t["trend_per_year"],
            "contracted": t["contracted"].astype(bool),
            "contract_dropped_date": np.where(
                t["drop_day"] < n_days,
                dates(np.where(t["drop_day"] < n_days, t["drop_day"], 0)),
                nat,
            ),
            "contract_term_days": t["term"],
            "project_buyer": t["project"].astype(bool),
            "paused_weeks": t["paused_weeks"],
            "residual_orders_until": np.where(
                t["residual_to"] < _NEVER,
                dates(np.where(t["residual_to"] < _NEVER, t["residual_to"], 0)),
                nat,
            ),
            "return_date": np.where(
                t["return_day"] < n_days,
                dates(np.where(t["return_day"] < n_days, t["return_day"], 0)),
                nat,
            ),
            "new_account": t["new_account"].astype(bool),
            "size_z": t["size_z"],
        }
    )
    return df.iloc[np.argsort(number, kind="stable")].reset_index(drop=True)
