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
# # 02 · Review the champion churn model
#
# The promotion gate in `ka-ml train` checks two numbers (ROC AUC against the old
# champion, calibration error under a ceiling). This notebook looks behind them, on the
# same out-of-time test rows the gate used:
#
# 1. **Which model, which rows**: the champion from the MLflow registry, its training
#    run, and the rebuilt test snapshot, checked against the metrics logged at training.
# 2. **Reliability**: can a manager read the probability as a probability?
# 3. **Lift**: how many churners a call list of the riskiest accounts reaches.
# 4. **SHAP summary**: what the model relies on, and in which direction.
# 5. **Slice metrics**: is it equally good for every tier, industry and tenure?
# 6. **Three accounts explained**: a caught churner, a false alarm and a miss, with the
#    reasons a manager would read.
#
# **Inputs** (environment variables): `KA_ML_CONFIG` (default `configs/ka_ml.yaml`),
# `KA_ML_DATA` (default: the config's source, else the demo data), `KA_ML_AS_OF` (default:
# the champion's own training date, to review it on the out-of-time rows it was judged on; a
# later date reviews it on newer rows it never saw: the snapshots dated on or after its
# training date whose churn horizon has passed by then, scored by the champion itself),
# `KA_ML_FIGURES` (default `outputs/figures/`). The MLflow store
# is the config's, or `MLFLOW_TRACKING_URI` when set. Needs a champion: run `make train`.

# %%
# ruff: noqa: E402  (the environment is set up before the imports that read it)
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm is imported
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets

from ka_ml.analysis.notebook import find_project_root

_root = find_project_root(Path.cwd())
if _root is not None:
    os.chdir(_root)  # the defaults (config, demo data, MLflow store) are relative to the root

import numpy as np
import pandas as pd
from IPython.display import display

from ka_ml.analysis import plots as P
from ka_ml.analysis import tables as A
from ka_ml.analysis.notebook import (
    champion_run,
    notebook_inputs,
    out_of_time_predictions,
    review_config,
    review_rows,
    show_figure,
    show_png,
)
from ka_ml.data.loader import load_history
from ka_ml.features.snapshots import build_training_set
from ka_ml.modeling import metrics as M
from ka_ml.modeling import registry
from ka_ml.modeling.evaluate import tenure_band
from ka_ml.scoring.explain import probability_contributions, top_reasons
from ka_ml.scoring.health import light_rule
from ka_ml.training.evaluation import origin_lights
from ka_ml.training.folds import make_folds
from ka_ml.training.tracking import plot_shap_summary

pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 20)
pd.set_option("display.max_colwidth", 90)

inp = notebook_inputs()
client = registry.connect(inp.cfg)
name = inp.cfg.mlflow.churn_model_name
model, version = registry.load_champion(client, name, "churn")
run = champion_run(client, name, version)
cfg = review_config(inp.cfg, run.run_id)
history = load_history(inp.source, cfg.data)
as_of = inp.as_of or run.as_of or history.default_as_of
known = history.before(as_of)
FIG = inp.figures
print(
    f"champion : {name} v{version} (run {run.run_id}, trained as of {run.as_of and run.as_of.date()})"
)
print(f"store    : {registry.tracking_uri(inp.cfg)}")
print(f"data     : {inp.source}")
print(f"as of    : {as_of.date()}")
print(f"figures  : {FIG}")
seen = history.before(run.as_of) if run.as_of else known  # what the champion was given
if run.data_fingerprint and seen.fingerprint() != run.data_fingerprint:
    print(
        "WARNING: this data (as cut at the champion's training date) is not the data the "
        f"champion was trained on (fingerprint {seen.fingerprint()} vs "
        f"{run.data_fingerprint}): the test rows below differ from the ones the promotion "
        "gate used."
    )

# %% [markdown]
# ## 1. The test rows
#
# The training set is rebuilt exactly as `ka-ml train` built it (same snapshots, same
# labels, the modelling settings recorded with the run) and split the same way: the test
# rows are the rolling origins, each scored at training by the procedure fitted only on
# snapshots whose outcome was known before it. The champion itself was refitted on every
# labelled snapshot, these rows included, so its own scores here would be in-sample: the
# figures below use the run's logged out-of-time predictions for the same rows. If they
# equal the logged metrics, this review is looking at the very rows the gate judged.
#
# With a `KA_ML_AS_OF` later than the champion's training date, the rows are instead the
# snapshots dated on or after that date whose churn horizon has passed by `KA_ML_AS_OF`,
# scored by the champion itself: it never saw their outcomes, so its own scores are out of
# time. The logged metrics then describe other rows and are shown for comparison only.

# %%
ts = build_training_set(known, cfg, as_of)
folds = make_folds(ts, cfg)
review = review_rows(
    folds.labelled,
    folds.test,
    run,
    as_of,
    model,
    lambda: out_of_time_predictions(run.run_id),
    cfg.labels.horizon_days,
)
test, p = review.rows, review.probability
X = test[model.features_]
y = test["churn"].to_numpy(dtype=float)
origins = sorted({str(pd.Timestamp(d).date()) for d in test["as_of"]})
print(
    f"{'newer' if review.newer else 'test'} snapshot(s) {origins}: {len(test)} "
    f"account-snapshots, {int(y.sum())} churned within {cfg.labels.horizon_days} days "
    f"({y.mean():.1%})"
)
if review.note:
    print(review.note)
now = M.churn_metrics(y, p)
logged = {k: run.metrics.get(f"test_churn_{k}", np.nan) for k in now}
logged_name = "logged at training (other rows)" if review.newer else "logged at training"
display(pd.DataFrame({"recomputed": now, logged_name: logged}).round(4))

# %% [markdown]
# ## 2. Reliability
#
# Accounts are binned by predicted probability (equal-count bins); each point is a bin's
# mean prediction against the share that actually churned, with the bin size written
# beside it. On the diagonal, "30%" means 3 in 10 such accounts churn: the health lights
# and the revenue-at-risk figures depend on that.
#
# * Points **below** the diagonal: the model over-warns (more red than needed); **above**:
#   it under-warns. The ECE in the title is the count-weighted mean gap; the promotion gate
#   requires it below `mlflow.calibration_ceiling`.
# * Look hardest at the bins around the yellow and red thresholds: that is where a
#   miscalibration changes a light. The table below the plot gives the light precision
#   and recall with the scorer's own rule (lifecycle states and light rule of the config)
#   on each origin's active and new accounts, as `train` logged them.

# %%
display(M.reliability_table(y, p).round(3))
show_png(M.plot_reliability(y, p, FIG / "reliability.png"))
lights = origin_lights(test, y, p, cfg)
print(
    f"ECE {now['ece']:.3f} (ceiling {cfg.mlflow.calibration_ceiling}); lights: "
    f"{light_rule(cfg.health)}"
)
display(pd.Series(lights, name="lights").round(3).to_frame())

# %% [markdown]
# ## 3. Lift
#
# Managers act on a ranked list. The **cumulative gains** curve says what share of all
# churners is reached by contacting the riskiest x% of accounts (the diagonal is a random
# list); **lift per decile** is each decile's churn rate over the base rate. A useful early
# warning has a top decile well above 1 and deciles that fall steadily: a bumpy profile
# means the ranking is only good at the very top.

# %%
show_png(M.plot_lift(y, p, FIG / "lift.png"))
order = np.argsort(-p, kind="stable")
reached = np.cumsum(y[order]) / max(y.sum(), 1)
display(
    pd.Series(
        {
            f"top {q:.0%} of accounts": reached[max(int(np.ceil(q * len(y))) - 1, 0)]
            for q in (0.1, 0.2, 0.3)
        },
        name="share of churners reached",
    )
    .round(3)
    .to_frame()
)

# %% [markdown]
# ## 4. SHAP summary
#
# Each dot is one test account's exact TreeSHAP contribution of a feature to its churn
# log-odds; colour is the feature's value (red high, blue low, grey missing: e.g. no
# contract, so no days to its end). Check that the directions
# make business sense: long recency and falling usage should push risk **up**, a running
# contract far from its end should push it **down**. A feature that matters a lot but has no
# plausible story (an ID-like column, a date artefact) is a leakage suspect.
# The table compares mean |SHAP| with LightGBM's split gain: gain counts how often a
# feature was useful in training, SHAP how much it moves these accounts' scores.

# %%
show_png(plot_shap_summary(model, X, FIG / "shap_summary.png"))
shap_imp = A.mean_abs_contributions(model.contributions(X), model.features_)
gain = model.feature_importance()
display(
    pd.DataFrame({"mean |SHAP| (log-odds)": shap_imp, "gain share": gain / gain.sum()})
    .loc[shap_imp.index[:12]]
    .round(3)
)

# %% [markdown]
# ## 5. Slice metrics
#
# The same metrics per ABC tier, industry and tenure band (left: ranking; right: mean
# predicted vs observed churn rate). Small slices have noisy numbers (see *n*), and a slice
# with one class has no AUC. Worry about a **large** slice whose AUC is near 0.5, or whose
# predicted rate sits far from the observed one: the model then under- or over-warns a
# whole group of accounts, which the overall ECE can hide. A-tier accounts deserve the
# closest look: they carry most of the revenue.

# %%
frame = pd.DataFrame(
    {
        "y": y,
        "p": p,
        "abc_tier": test["abc_tier"].astype(object).to_numpy(),
        "industry": test["industry"].astype(object).to_numpy(),
        "tenure_band": tenure_band(test["tenure_days"]).to_numpy(),
    }
)
slice_cols = ["abc_tier", "industry", "tenure_band"]
slices = M.slice_metrics(frame, "y", "p", slice_cols)
calibration = A.slice_calibration(frame, "y", "p", slice_cols)
display(
    slices[["slice", "value", "n", "base_rate", "roc_auc", "pr_auc", "brier"]]
    .merge(calibration[["slice", "value", "mean_p", "gap"]], on=["slice", "value"])
    .round(3)
)
show_figure(P.plot_slice_review(slices, calibration), FIG, "slice_metrics")
# %% [markdown]
# ## 6. Three accounts explained
#
# * **Caught churner**: the highest-scored account that did churn: do the reasons tell a
#   story a manager could act on?
# * **False alarm**: the highest-scored account that did not churn: a dip that recovered,
#   or a signal the model over-trusts?
# * **Missed churner**: the lowest-scored account that churned: often a sudden exit with no
#   fade, which no early warning can see; if it had visible warning signs, they are
#   missing features.
#
# Each account is one snapshot (its `as_of`; the same account can appear twice) and is
# picked by `p_out_of_time`, the probability used everywhere above. `p_champion` is the
# champion's own score of that row, what its reasons explain: on the champion's own test
# origins the champion was refitted on these outcomes, so it can differ (in-sample); on
# newer rows the two are the same.
#
# The reasons are the ones the weekly report shows (related features grouped); the bars
# are each feature's push on the probability in points, which add up with the remaining
# features to `p_champion` minus the **SHAP base**: the model's expected value, its
# average raw output (log-odds) over the reference accounts (those that got a light on its
# latest training snapshot; every training row for an older model), as a probability. It
# is not a churn rate: the average of log-odds sits far below the average probability.

# %%
picks = A.pick_examples(y, p)
rows = list(picks.values())
Xe = X.iloc[rows]
contrib, pe, base = probability_contributions(model, Xe)
reasons = top_reasons(model, Xe).reset_index(drop=True)
examples = A.example_accounts(picks, test, y, p, pe)
display(pd.concat([examples.round(3), reasons[["reason_1", "reason_2", "reason_3"]]], axis=1))
over = (
    "the accounts that got a light on its latest training snapshot"
    if getattr(model, "reason_reference_", None) is not None
    else "the training rows"
)
print(
    f"SHAP base {base:.1%}: the model's average log-odds over {over}, as a probability "
    f"(the churn rate of the rows reviewed here is {y.mean():.1%})"
)
explained = [
    P.AccountExplanation(
        f"{e.example}: {e.account_id} as of {e.as_of}\np = {e.p_out_of_time:.1%} out of time "
        f"(champion {e.p_champion:.1%}, SHAP base {base:.1%}), churned: {e.churned}",
        A.top_contributions(contrib[i], model.features_, Xe.iloc[i], top=8),
    )
    for i, e in enumerate(examples.itertuples(index=False))
]
show_figure(P.plot_account_explanations(explained), FIG, "example_accounts")
