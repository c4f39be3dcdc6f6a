# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Explore the account history
#
# Before training or trusting a churn model, look at what the data can support:
#
# 1. **Data profile**: which tables exist, how much history, what is missing.
# 2. **Cohort retention**: do accounts keep buying, and do newer cohorts behave differently?
# 3. **Purchase gaps**: how long is a normal cycle, and how regular is it? (This decides
#    whether "overdue against its own cycle" can work as an early-warning signal.)
# 4. **Churn by tier and industry**: where churn concentrates, with honest intervals.
# 5. **Usage and complaints before churn**: is there a visible fade in the ~90 days before
#    an account leaves? If not, no model can warn three months ahead.
#
# **Inputs** (environment variables, defaults as for `ka-ml`): `KA_ML_CONFIG`
# (`configs/ka_ml.yaml`), `KA_ML_DATA` (the config's source, else the demo data, generated
# on first use), `KA_ML_AS_OF` (the day after the last order), `KA_ML_FIGURES`
# (`outputs/figures/`, where every figure is also saved). Run it from the repo root or
# from `notebooks/`. All logic lives in `ka_ml.analysis.tables` / `ka_ml.analysis.plots`; this
# notebook only wires it and says what to look for.

# %%
# ruff: noqa: E402  (the environment is set up before the imports that read it)
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm is imported

from pathlib import Path

from ka_ml.analysis.notebook import find_project_root

_root = find_project_root(Path.cwd())
if _root is not None:
    os.chdir(_root)  # the defaults (config, demo data) are relative to the repo root

import pandas as pd
from IPython.display import display

from ka_ml.analysis import plots as P
from ka_ml.analysis import tables as A
from ka_ml.analysis.notebook import label_settings, load_truth, notebook_inputs, show_figure
from ka_ml.data.loader import load_history
from ka_ml.features.portfolio import abc_tiers, portfolio_revenue
from ka_ml.features.snapshots import build_training_set

pd.set_option("display.width", 140)
pd.set_option("display.max_columns", 20)

inp = notebook_inputs()
cfg = inp.cfg
history = load_history(inp.source, cfg.data, as_of=inp.as_of)
as_of = inp.as_of or history.default_as_of
FIG = inp.figures
print(f"config  : {inp.config_path or 'built-in defaults'}")
print(f"data    : {inp.source}")
print(f"as of   : {as_of.date()}  (only rows dated before it are used)")
print(f"figures : {FIG}")

# %% [markdown]
# ## 1. Data profile
#
# One row per table. Check that the date ranges overlap (a usage table that starts a year
# after the orders limits what the usage features can learn), that the account counts are
# plausible, and which columns have gaps. Loader warnings (rows dropped, duplicates) follow.

# %%
display(A.data_profile(history))
for w in history.warnings:
    print("warning:", w)

# %% [markdown]
# Monthly activity shows the shape of the business. Look for seasonality (a Q4 bump, a
# summer dip), long-run trends, and **steps**: a sudden jump or hole usually means an
# extraction problem (a missing month, a changed source system), not customer behaviour.
# Only complete months are drawn, so the last bar is not an artificial drop.

# %%
monthly = A.monthly_activity(history.orders, as_of)
show_figure(P.plot_monthly_activity(monthly), FIG, "monthly_activity")
# %% [markdown]
# ## 2. Cohort retention
#
# A cohort is the quarter of an account's first purchase; each cell is the share of that
# cohort that bought again *k* quarters later. Only complete quarters count, and cells the
# data cannot show yet are blank (not zero).
#
# * The **first cohort is the existing book**: accounts that were already customers when
#   the data starts, so it is older and steadier than the rest. Compare the later
#   cohorts with each other.
# * A curve that keeps falling means accounts leave for good; a curve that flattens means
#   the survivors are loyal. Small cohorts (see *n*) are noisy: read the pooled curve.
# * "Not buying this quarter" is not churn for accounts with long cycles: the purchase-gap
#   section tells how long a normal silence is.

# %%
cohorts = A.cohort_retention(history.orders, as_of, months_per_period=3)
display(cohorts.round(2))
show_figure(P.plot_cohort_retention(cohorts, months_per_period=3), FIG, "cohort_retention")
# %% [markdown]
# ## 3. Purchase-gap distributions
#
# The gap is the number of days between two purchase days of the same account.
#
# * **All gaps** (log scale): the spread of cycle lengths across the portfolio. A long
#   right tail is where churners and pauses live.
# * **Each account's typical (median) gap by ABC tier**: big accounts usually order more
#   often, so a 60-day silence means something different for an A than for a C account.
#   This is why the model uses gaps relative to the account's own cycle.
# * **Gap CV** (std / mean per account): 1 is what random, memoryless buying would give;
#   values well below 1 mean accounts buy in a rhythm, so an overdue next order is
#   informative. If most CVs were near or above 1, an overdue signal would be weak.

# %%
gaps = A.purchase_gaps(history.orders, as_of)
stats = A.gap_stats(gaps)
tiers = abc_tiers(portfolio_revenue(history, as_of, cfg.portfolio), cfg.portfolio)
print(
    f"{len(gaps):,} gaps over {len(stats):,} accounts; median gap "
    f"{gaps['gap_days'].median():.0f} days; median CV {stats['cv'].median():.2f}"
)
display(stats.join(tiers).groupby("abc_tier")[["median_gap_days", "cv"]].median().round(2))
show_figure(P.plot_purchase_gaps(gaps, stats, tiers), FIG, "purchase_gaps")
# %% [markdown]
# ## 4. Churn by tier and industry
#
# The labels here are exactly the ones the model is trained on: point-in-time snapshots at
# the training cadence (`features.snapshot_every_days`; when null, as by default, chosen
# from the history), churn = the configured definition (`labels.churn_definition`) within
# `labels.horizon_days`, for every scored account, or with `labels.at_risk_only: true` only
# for accounts still active at the snapshot. The cell prints the settings in force.
# Each account appears once per snapshot, so the Wilson intervals are somewhat optimistic.
#
# * Tiers and industries whose interval lies clearly off the overall rate are candidates
#   for slice checks in the model review (does the model see them?).
# * **By snapshot date**: the base rate should be roughly stable. A trend or a jump means
#   the test period will have a different base rate than training, which shows up as a
#   calibration shift, not as lower AUC.

# %%
ts = build_training_set(history.before(as_of), cfg, as_of)
labelled = ts[ts["churn"].notna()]
overall = float(labelled["churn"].mean())
print(label_settings(cfg, labelled["as_of"]))
print(
    f"{len(labelled):,} labelled snapshot rows ({labelled['as_of'].nunique()} snapshots), "
    f"churn definition {sorted(labelled['churn_definition'].unique())}, overall rate {overall:.1%}"
)
rates = {key: A.churn_rate_by(labelled, key) for key in ("abc_tier", "industry", "as_of")}
display(rates["abc_tier"].round(3))
display(rates["industry"].sort_values("rate", ascending=False).round(3))
titles = {"abc_tier": "ABC tier", "industry": "industry", "as_of": "snapshot date"}
fig = P.plot_churn_rates({titles[k]: v for k, v in rates.items()}, overall)
show_figure(fig, FIG, "churn_by_segment")
# %% [markdown]
# ## 5. Usage and complaints in the weeks before churn
#
# Every churned account is aligned on its churn date (week 0) and its activity in the 52
# weeks before is laid out week by week. With the demo data the true churn date is known
# (`_truth/ground_truth.csv`); on real data the stand-in is the day after the last purchase
# of accounts with no purchase in the last horizon.
#
# The comparison group is the retained accounts, each aligned on a date drawn from the
# churners' own dates, so both groups cover the same calendar (season, data coverage).
# Weeks before an account's first purchase or before the table starts are left out.
#
# * **Usage** is divided by each account's own level in the first 13 weeks of the window
#   (1.0 = usual level), so big and small accounts can be averaged. A decline that starts
#   well before week −13 is what a 90-day early warning can catch; a drop only in the last
#   few weeks is too late to act on.
# * **Complaints** are counted per 4-week block (raw counts; they are rare). A rise in the
#   months before churn, above the comparison group, makes complaint features worth having.

# %%
truth = load_truth(inp.source)
if truth is not None:
    churned = truth[truth["churned"] & (truth["churn_date"] < as_of)]
    anchors = churned.set_index("account_id")["churn_date"]
    retained_ids = pd.Index(truth.loc[~truth["churned"], "account_id"])
    anchor_kind = "true churn date (demo ground truth)"
else:
    anchors = A.churn_anchors_from_orders(history.orders, as_of, cfg.labels.horizon_days)
    retained_ids = A.first_purchase(history.orders, as_of).index.difference(anchors.index)
    anchor_kind = "day after the last purchase (no purchase in the last horizon)"
control = A.control_anchors(retained_ids, anchors, seed=cfg.seed)
groups = {"churned": anchors, "retained": control}
print(f"{len(anchors)} churned accounts aligned on the {anchor_kind}; {len(control)} retained")

first_seen = A.first_purchase(history.orders, as_of)
panels = []
if history.usage is not None:
    usage = A.aligned_curves(
        history.usage,
        groups,
        date_col="date",
        value_col="count",
        weeks_before=52,
        observed_from=first_seen.clip(lower=history.usage["date"].min()),
        baseline_bins=13,
    )
    panels.append(
        P.SignalPanel("Usage vs the account's own level", "usage / own level", usage, 1.0)
    )
if history.tickets is not None:
    t = history.tickets
    complaints = A.aligned_curves(
        t[t["is_complaint"].fillna(False).astype(bool)],
        groups,
        date_col="opened_at",
        weeks_before=52,
        weeks_per_bin=4,
        observed_from=first_seen.clip(lower=t["opened_at"].min()),
    )
    panels.append(P.SignalPanel("Complaints per 4 weeks", "complaints per account", complaints))
if panels:
    show_figure(P.plot_aligned_signals(panels), FIG, "signals_before_churn")
else:
    print("no usage or tickets table: nothing to align")

# %% [markdown]
# ## Summary
#
# The numbers behind the plots, in one place, to paste into a review or compare across
# data refreshes.

# %%
pooled = A.pooled_retention(cohorts)
summary = {
    "accounts": int(history.accounts["account_id"].nunique()),
    "months of orders": len(monthly),
    "pooled retention after 4 quarters": round(float(pooled.get(4, float("nan"))), 3),
    "median purchase gap (days)": float(gaps["gap_days"].median()),
    "share of accounts buying in a rhythm (CV < 0.8)": round(float((stats["cv"] < 0.8).mean()), 3),
    "churn rate (labelled snapshots)": round(overall, 3),
}
for key in ("abc_tier", "industry"):
    r = rates[key]
    summary[f"churn rate range by {key}"] = (
        f"{r['rate'].min():.1%} ({r.loc[r['rate'].idxmin(), key]}) - "
        f"{r['rate'].max():.1%} ({r.loc[r['rate'].idxmax(), key]})"
    )
if history.usage is not None:
    late = usage["churned"].loc[-4:, "mean"].mean() / usage["retained"].loc[-4:, "mean"].mean()
    summary["churners' usage in the last 4 weeks vs retained"] = round(float(late), 2)
display(pd.Series(summary, name="value").to_frame())
