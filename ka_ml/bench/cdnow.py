"""`make bench-real`: ka_ml on the CDNOW master data set, against plain LightGBM, BG/NBD, RFM
and recency, with the default configuration and the CDNOW one.

CDNOW (Fader, Hardie & Lee 2005; see ``data/cdnow/ATTRIBUTION.md``) is the standard public
benchmark of non-contractual repeat buying: 23,570 customers who first bought in Q1 1997,
followed to 1998-06-30, orders only. It tests the purchase-cycle and "no order" churn side
of the product on real behaviour rather than on our own synthetic world.

The protocol, per configuration (by default ``configs/ka_ml.yaml``, the product's default,
and ``configs/cdnow.yaml``) and test cutoff C (1997-09-30 and 1997-12-31):

1. The raw rows become the product's orders table (one order per customer-day: same-day
   rows are summed, amount = dollars, quantity = CDs), written as CSV and read back through
   the product's loader, exactly as a user's export would be.
2. The product's own ``train --as-of C`` runs on rows dated before C only, into a fresh
   MLflow store (so C's champion is C's model), then its ``score`` runs at C. Nothing of
   the config is changed but its store and output folders (:func:`cutoff_config`). A
   refusal of ``train`` (e.g. too few labelled snapshots for the config's time split) is
   recorded, and the baselines are still measured.
3. On the same customers: BG/NBD fitted on rows before C; RFM logistic regression and
   recency only, fitted on the labelled training snapshots the product built before C;
   plain LightGBM (:func:`plain_lightgbm_predictions`: the team's yardstick script
   ``cdnow_plain_lightgbm.py``, kept outside this repository, redone in-process: the
   product's features at month starts, fixed parameters, no tuning, no calibration).
4. Everything is compared with what happened after C: churn = no order in [C, C + 90 d);
   ordered within 30/60/90 days; the days to the next order, censored at the end of the
   data (1998-06-30), for the concordance of the timing forecast and the coverage of its
   p10-p90 interval. Deltas against BG/NBD and plain LightGBM carry paired bootstrap
   intervals; the churn ROC AUC ``train`` reported (``report.evaluation.churn``) is set
   beside the one achieved; :func:`acceptance` applies issue 13's rules.

``configs/cdnow.yaml``'s settings were chosen on the product's own pre-cutoff validation
folds, never on the test cutoffs (see the comments in it).

    python -m ka_ml.bench.cdnow [--config PATH ...] [--out PATH] [--sample N] [--n-boot N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ka_ml.config import Config
    from ka_ml.data.history import History
    from ka_ml.jobs.train import TrainReport

DATA_FILE = Path(__file__).resolve().parent / "data" / "cdnow" / "CDNOW_master.txt.gz"
RESULTS_FILE = Path(__file__).resolve().parent / "results" / "cdnow.md"
# Benchmarked by default, in this order: the product's default config, then the CDNOW one.
DEFAULT_CONFIGS = (Path("configs/ka_ml.yaml"), Path("configs/cdnow.yaml"))
CUTOFFS: tuple[pd.Timestamp, ...] = (pd.Timestamp("1997-09-30"), pd.Timestamp("1997-12-31"))
# Orders are observed through 1998-06-30: the next-order time is censored at the start of
# 1998-07-01 (half-open, like every window in ka_ml).
DATA_END = pd.Timestamp("1998-07-01")
RAW_COLUMNS = ("customer_id", "date", "number_of_cds", "dollar_value")

PRODUCT = "ka_ml"
BGNBD = "BG/NBD"
RFM = "RFM logistic regression"
RECENCY = "recency only"
PLAIN = "plain LightGBM"
PREDICTORS = (PRODUCT, BGNBD, RFM, RECENCY, PLAIN)

Progress = Callable[[str], None]


# -- data -------------------------------------------------------------------------------
def read_cdnow(path: Path | str = DATA_FILE) -> pd.DataFrame:
    """The raw CDNOW rows (customer_id as zero-padded text, date as YYYYMMDD text)."""
    raw = pd.read_csv(path, sep=r"\s+", dtype={"customer_id": "str", "date": "str"})
    missing = [c for c in RAW_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: column(s) {missing} missing; found {list(raw.columns)}.")
    return raw


def to_orders(raw: pd.DataFrame) -> pd.DataFrame:
    """The product's orders table: one order per customer-day.

    Several CDNOW rows on one customer-day are one purchase occasion (BG/NBD counts
    occasions too), so they are summed: ``amount`` = dollars, ``quantity`` = CDs.
    """
    df = pd.DataFrame(
        {
            "account_id": raw["customer_id"].astype("str"),
            "order_date": pd.to_datetime(raw["date"].astype("str"), format="%Y%m%d"),
            "amount": raw["dollar_value"].astype("float64"),
            "quantity": raw["number_of_cds"].astype("float64"),
        }
    )
    return df.groupby(["account_id", "order_date"], as_index=False, sort=True).agg(
        amount=("amount", "sum"), quantity=("quantity", "sum")
    )


def sample_customers(raw: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """All rows of ``n`` customers drawn at random (for quick runs and tests)."""
    ids = raw["customer_id"].unique()
    if n >= len(ids):
        return raw
    keep = np.random.default_rng(seed).choice(ids, size=n, replace=False)
    return raw[raw["customer_id"].isin(keep)].reset_index(drop=True)


def load_history(raw: pd.DataFrame, folder: Path, cfg: Config) -> History:
    """Write the orders as ``orders.csv`` into ``folder`` and load it with the product's loader."""
    from ka_ml.data.loader import load_history as load

    folder.mkdir(parents=True, exist_ok=True)
    orders = to_orders(raw)
    orders.assign(order_date=orders["order_date"].dt.strftime("%Y-%m-%d")).to_csv(
        folder / "orders.csv", index=False
    )
    return load(folder, cfg.data)


def outcomes(
    history: History, cutoff: pd.Timestamp, cfg: Config, data_end: pd.Timestamp = DATA_END
) -> pd.DataFrame:
    """What happened after ``cutoff``, per customer, with the product's own label functions.

    ``churn``: no order in [cutoff, cutoff + horizon); ``days_to_next``: days to the first
    order on/after the cutoff, or to ``data_end`` when none came (``next_order_observed``
    False).
    """
    from ka_ml.features.labels import churn_labels, timing_labels

    ids = pd.Index(history.accounts["account_id"].astype(object))
    churn = churn_labels(history, cutoff, cfg, ids)
    timing = timing_labels(history, cutoff, data_end, ids)
    return pd.DataFrame(
        {
            "churn": churn["churn"].to_numpy(np.float64),
            "days_to_next": timing["days_to_next"].to_numpy(np.float64),
            "next_order_observed": timing["next_order_observed"].to_numpy(bool),
        },
        index=pd.Index(ids, name="account_id"),
    )


# -- the product ------------------------------------------------------------------------
@contextlib.contextmanager
def private_mlflow() -> Iterator[None]:
    """Ignore ``MLFLOW_TRACKING_URI`` while the benchmark runs: it never writes to a real store."""
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {k: os.environ.pop(k, None) for k in names}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is not None:
                os.environ[k] = v


@dataclass
class ProductRun:
    """What ``train`` + ``score`` gave at one cutoff; ``error`` when the product refused."""

    scores: pd.DataFrame | None
    report: TrainReport | None
    train_seconds: float
    score_seconds: float
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def cutoff_config(cfg: Config, root: Path) -> Config:
    """``cfg`` with its MLflow store and outputs inside ``root`` (a fresh store per cutoff)."""
    from ka_ml.config import PathsConfig

    return cfg.model_copy(
        update={
            "paths": PathsConfig(outputs=root / "outputs", models=root / "models"),
            "mlflow": cfg.mlflow.model_copy(update={"tracking_uri": None}),
        }
    )


def _ensure_champions(cfg: Config, report: TrainReport) -> list[str]:
    """Make this cutoff's models the champions of its fresh store, noting a gate refusal.

    The store is empty before the run, so the gate can only refuse a model on its own
    calibration; the benchmark still measures what ``train`` produced, and says so.
    """
    from ka_ml.modeling import promotion, registry

    client = registry.connect(cfg)
    notes = []
    for kind, name in (
        ("churn", cfg.mlflow.churn_model_name),
        ("timing", cfg.mlflow.timing_model_name),
    ):
        mv = registry.champion_version(client, name)
        version = report.versions[kind]
        if mv is None or str(mv.version) != version:
            registry.set_alias(client, name, promotion.CHAMPION, version)
            notes.append(
                f"{kind} model v{version} was not promoted by the gate "
                f"({report.decisions[kind]}); the benchmark scores it anyway."
            )
    return notes


def run_product(
    history: History, cfg: Config, cutoff: pd.Timestamp, root: Path, progress: Progress
) -> ProductRun:
    """The product's own ``train --as-of cutoff`` then ``score --as-of cutoff``, rows < cutoff.

    A refusal of the product (a :class:`KaMlError`, e.g. too few labelled snapshots for the
    config's time split) is a result, not a crash: it comes back as ``error`` and the
    baselines are still measured. Anything else is a bug and propagates.
    """
    from ka_ml.errors import KaMlError
    from ka_ml.jobs.score import run_scoring
    from ka_ml.jobs.train import run_training

    cut_cfg = cutoff_config(cfg, root)
    known = history.before(cutoff)
    report: TrainReport | None = None
    with private_mlflow():
        t0 = t1 = time.perf_counter()
        try:
            report = run_training(known, cut_cfg, cutoff, progress=progress)
            t1 = time.perf_counter()
            notes = _ensure_champions(cut_cfg, report)
            n = known.accounts["account_id"].nunique()
            progress(f"scoring {n:,} customers at {cutoff.date()}")
            result = run_scoring(known, cut_cfg, cutoff, root / "scores")
        except KaMlError as exc:
            step = "train" if report is None else "score"
            t2 = time.perf_counter()
            if report is None:
                t1 = t2
            progress(f"ka_ml {step} refused at {cutoff.date()}: {exc.message}")
            return ProductRun(
                None, report, t1 - t0, t2 - t1, error=f"`{step}` refused: {exc.render()}"
            )
        t2 = time.perf_counter()
        progress(f"scored in {t2 - t1:.0f} s: {result.record.get('timings', {})}")
    return ProductRun(result.scores, report, t1 - t0, t2 - t1, notes)


def _days_after(dates: pd.Series, cutoff: pd.Timestamp) -> np.ndarray:
    """Days from the cutoff to each date; NaN where the date is empty (beyond range)."""
    delta = pd.to_datetime(dates) - cutoff
    return np.asarray(delta.dt.days.to_numpy(dtype=np.float64, na_value=np.nan))


def product_predictions(
    scores: pd.DataFrame, cutoff: pd.Timestamp, windows: Sequence[int]
) -> pd.DataFrame:
    """The scores table as a prediction frame: churn, P(within k), q10/q50/q90 in days."""
    out = pd.DataFrame(
        {"churn_probability": scores["churn_probability"].to_numpy(np.float64)},
        index=pd.Index(scores["account_id"].astype(object), name="account_id"),
    )
    for k in windows:
        out[f"p_purchase_{k}d"] = scores[f"p_purchase_{k}d"].to_numpy(np.float64)
    for q, col in (
        ("q10", "next_purchase_p10_date"),
        ("q50", "expected_next_purchase_date"),
        ("q90", "next_purchase_p90_date"),
    ):
        out[q] = _days_after(scores[col], cutoff)
    return out


# -- baselines --------------------------------------------------------------------------
def bgnbd_predictions(
    history: History, cutoff: pd.Timestamp, cfg: Config, ids: pd.Index, max_days: int
) -> pd.DataFrame:
    """BG/NBD fitted on rows before the cutoff: churn, P(within k), and its time quantiles.

    Quantiles come from BG/NBD's own next-purchase distribution on a daily grid up to
    ``max_days`` (the product's timing range), beyond which they are open (NaN), as the
    product's are: both forecasts are then judged on the same footing.
    """
    from ka_ml.modeling.baselines import BGNBDChurn
    from ka_ml.modeling.timing import quantiles_from_cdf

    orders = history.before(cutoff).orders
    bg = BGNBDChurn()
    summary = bg.summary(orders, cutoff)  # once, for the fit and the forecasts
    bg.fit(orders, cutoff, summary)
    rfm = summary.reindex(ids)
    known = rfm["frequency"].notna().to_numpy()
    x, tx, T = (rfm[c].to_numpy(np.float64)[known] for c in ("frequency", "recency", "T"))
    out = pd.DataFrame(index=pd.Index(ids, name="account_id"), dtype=np.float64)

    def within(days: np.ndarray) -> np.ndarray:
        """P(order within each of ``days``) for the known customers, shape (customers, days)."""
        silent = bg.model_.prob_no_purchase(days[:, None] / bg.unit_days, x, tx, T)
        full = np.full((len(ids), len(days)), np.nan)
        full[known] = 1.0 - np.asarray(silent).T
        return full

    out["churn_probability"] = 1.0 - within(np.array([float(cfg.labels.horizon_days)]))[:, 0]
    for k in cfg.labels.purchase_windows:
        out[f"p_purchase_{k}d"] = within(np.array([float(k)]))[:, 0]
    grid = np.arange(max_days + 1, dtype=np.float64)
    F = within(grid[1:])
    q = quantiles_from_cdf(np.nan_to_num(F), grid, (0.1, 0.5, 0.9), index=out.index)
    q.loc[~known] = np.nan
    return pd.concat([out, q], axis=1)


def _window_target(ts: pd.DataFrame, cutoff: pd.Timestamp, k: int) -> tuple[pd.DataFrame, Any]:
    """Training rows whose k-day window closed before the cutoff, and "ordered within k"."""
    full = (cutoff - ts["as_of"]).dt.days >= k
    rows = ts[full]
    y = (rows["next_order_observed"].to_numpy(bool) & (rows["days_to_next"] < k)).astype(int)
    return rows, y


def logistic_predictions(
    history: History, cutoff: pd.Timestamp, cfg: Config, ids: pd.Index
) -> dict[str, pd.DataFrame]:
    """RFM logistic regression and recency only, fitted on the product's training snapshots.

    The snapshots are the ones ``train --as-of cutoff`` builds (rows before the cutoff, every
    churn label fully observed before it): churn on the labelled snapshots, "ordered within
    k days" on the snapshots whose k-day window closed before the cutoff. They score the
    features the product builds at the cutoff.
    """
    from ka_ml.features.build import build_features
    from ka_ml.features.snapshots import build_training_set
    from ka_ml.modeling.baselines import RecencyBaseline, RFMLogistic

    known = history.before(cutoff)
    ts = build_training_set(known, cfg, cutoff)
    now = build_features(known, cutoff, cfg).set_index("account_id").reindex(ids)
    labelled = ts[ts["churn"].notna()]
    out: dict[str, pd.DataFrame] = {}
    for name, make in ((RFM, RFMLogistic), (RECENCY, RecencyBaseline)):
        pred = pd.DataFrame(index=pd.Index(ids, name="account_id"))
        model = make().fit(labelled, labelled["churn"].to_numpy())
        pred["churn_probability"] = model.predict_proba(now)[:, 1]
        for k in cfg.labels.purchase_windows:
            rows, y = _window_target(ts, cutoff, k)
            pred[f"p_purchase_{k}d"] = make().fit(rows, y).predict_proba(now)[:, 1]
        out[name] = pred
    return out


# The plain LightGBM yardstick (the team's cdnow_plain_lightgbm.py, kept outside this
# repository) redone in-process: fixed parameters (no tuning, no calibration), early stopping
# on a customer-grouped split, a refit.
PLAIN_PARAMS: dict[str, Any] = {
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_child_samples": 200,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "random_state": 0,
    "verbose": -1,
}
PLAIN_FIRST_SNAPSHOT = pd.Timestamp("1997-05-01")
PLAIN_MAX_TREES = 3000
PLAIN_EARLY_STOPPING = 100


def plain_snapshots(
    cutoff: pd.Timestamp, horizon_days: int, first: pd.Timestamp = PLAIN_FIRST_SNAPSHOT
) -> list[pd.Timestamp]:
    """Month starts from ``first`` whose ``horizon_days`` churn window closed by the cutoff."""
    horizon = pd.Timedelta(days=horizon_days)
    return [d for d in pd.date_range(first, cutoff, freq="MS") if d + horizon <= cutoff]


def _no_order_within(orders: pd.DataFrame, ids: pd.Series, day: pd.Timestamp, days: int) -> Any:
    """1 where the customer placed no order in [day, day + days), else 0."""
    end = day + pd.Timedelta(days=days)
    window = orders[(orders["order_date"] >= day) & (orders["order_date"] < end)]
    buyers = set(window["account_id"].astype(str))
    return (~ids.astype(str).isin(buyers)).to_numpy(np.int64)


@dataclass
class PlainRun:
    predictions: pd.DataFrame
    snapshots: list[pd.Timestamp]
    rows: int
    features: int
    trees: int


def plain_lightgbm_predictions(
    history: History, cutoff: pd.Timestamp, cfg: Config, ids: pd.Index
) -> PlainRun:
    """The plain LightGBM baseline: the product's features, fixed parameters, no calibration.

    As the team's yardstick script ``cdnow_plain_lightgbm.py`` (kept outside this repository)
    does with ``ka-ml features``, in-process:
    features (``feature_frames`` with ``cfg``, rows before the cutoff only) at the month
    starts from 1997-05-01 whose churn window closed by the cutoff (none before 1997-08-01:
    the month starts after the first order instead), labelled "no order in the
    ``horizon_days`` from the snapshot"; numeric columns only; LightGBM with
    :data:`PLAIN_PARAMS`, early stopping (100 rounds) on a customer-grouped 20% split
    (``GroupShuffleSplit(random_state=0)``), then a refit on every labelled row with the best
    iteration; scored on the features at the cutoff. Customers not eligible at the cutoff
    get NaN.
    """
    import lightgbm as lgb
    from sklearn.model_selection import GroupShuffleSplit

    from ka_ml.features.build import feature_frames
    from ka_ml.features.catalog import scorer_only

    known = history.before(cutoff)
    horizon = cfg.labels.horizon_days
    # a cutoff too early for that (a short history): the month starts after the first order
    first = (pd.Timestamp(known.orders["order_date"].min()) + pd.offsets.MonthBegin(1)).normalize()
    snaps = plain_snapshots(cutoff, horizon) or plain_snapshots(cutoff, horizon, first)
    if not snaps:
        raise ValueError(f"no month start after {first.date()} is labelled by {cutoff.date()}")
    frames = feature_frames(known, [*snaps, cutoff], cfg)
    X = pd.concat([frames[s] for s in snaps], ignore_index=True)
    y = np.concatenate(
        [_no_order_within(known.orders, frames[s]["account_id"], s, horizon) for s in snaps]
    )
    # the model inputs `ka-ml features` writes (not the scorer-only columns)
    skip = {"account_id", "as_of", *scorer_only()}
    cols = [c for c in X.columns if c not in skip and X[c].dtype.kind in "fiub"]
    split = GroupShuffleSplit(1, test_size=0.2, random_state=0)
    tr, va = next(split.split(X, y, X["account_id"]))
    early = lgb.LGBMClassifier(n_estimators=PLAIN_MAX_TREES, **PLAIN_PARAMS).fit(
        X.iloc[tr][cols],
        y[tr],
        eval_X=(X.iloc[va][cols],),
        eval_y=(y[va],),
        callbacks=[lgb.early_stopping(PLAIN_EARLY_STOPPING, verbose=False)],
    )
    trees = int(early.best_iteration_ or PLAIN_MAX_TREES)
    model = lgb.LGBMClassifier(n_estimators=trees, **PLAIN_PARAMS).fit(X[cols], y)
    now = frames[cutoff]
    proba = np.asarray(model.predict_proba(now[cols]), dtype=np.float64)
    p = pd.Series(proba[:, 1], index=pd.Index(now["account_id"].astype(object)))
    pred = pd.DataFrame(
        {"churn_probability": p.reindex(ids).to_numpy(np.float64)},
        index=pd.Index(ids, name="account_id"),
    )
    return PlainRun(pred, snaps, len(y), len(cols), trees)


# -- evaluation -------------------------------------------------------------------------
def _concordance_on(d: np.ndarray, e: np.ndarray) -> Callable[[Any, Any], float]:
    """Harrell's C as a ``metric(y, p)`` for the bootstrap: ``y`` carries row indices."""
    from ka_ml.modeling import metrics as M

    def metric(idx: Any, pred: Any) -> float:
        i = np.asarray(idx, dtype=np.int64)
        return M.concordance_index(d[i], e[i], np.asarray(pred, dtype=np.float64))

    return metric


def _q50_for_ranking(pred: pd.DataFrame) -> np.ndarray:
    """The median forecast in days; beyond the range (NaN) ranks after every dated forecast,
    and among those by P(order within the largest window) (the product's own rule)."""
    from ka_ml.modeling.evaluate import ranking_time

    windows = [int(c[len("p_purchase_") : -1]) for c in pred.columns if c.startswith("p_purchase_")]
    return ranking_time(pred, windows)


@dataclass
class CutoffResult:
    metrics: pd.DataFrame
    deltas: pd.DataFrame
    n_customers: int
    n_scored: int


def evaluate_cutoff(
    cutoff: pd.Timestamp,
    preds: dict[str, pd.DataFrame],
    truth: pd.DataFrame,
    windows: Sequence[int],
    *,
    seed: int = 0,
    n_boot: int = 200,
) -> CutoffResult:
    """Every predictor on the customers all of them scored; deltas of ka_ml vs the yardsticks.

    Churn: ``churn_metrics``; purchase windows, concordance and coverage: ``timing_scores``
    (concordance of the median forecast, an open forecast ranking last) for the predictors
    that forecast the purchase windows (plain LightGBM forecasts churn only). Bootstrap
    intervals (95%, paired, ``n_boot`` resamples of customers) for the deltas.
    """
    from ka_ml.modeling import metrics as M
    from ka_ml.modeling.evaluate import by_day_share, timing_scores

    ids = truth.index
    common = np.ones(len(ids), dtype=bool)
    for p in preds.values():
        common &= np.isfinite(p.reindex(ids)["churn_probability"].to_numpy(np.float64))
    t = truth[common]
    y = t["churn"].to_numpy(np.float64)
    d = t["days_to_next"].to_numpy(np.float64)
    e = t["next_order_observed"].to_numpy(bool)
    rows = []
    aligned = {name: p.reindex(t.index) for name, p in preds.items()}
    for name, p in aligned.items():
        row: dict[str, Any] = {"cutoff": str(cutoff.date()), "predictor": name, "n": len(t)}
        pc = p["churn_probability"].to_numpy(np.float64)
        churn = M.churn_metrics(y, pc)
        row.update({f"churn_{k}": v for k, v in churn.items() if k != "n"})
        row["churn_mean_p"] = float(pc.mean()) if len(pc) else float("nan")
        if all(f"p_purchase_{k}d" in p for k in windows):
            timing = timing_scores(p.reset_index(drop=True), d, e, list(windows))
            row.update({k: v for k, v in timing.items() if not k.endswith("_n")})
            row["coverage_n"] = timing.get("coverage_n", float("nan"))
        if "q50" in p:
            row["concordance"] = M.concordance_index(d, e, _q50_for_ranking(p))
            row["median_by_share"], row["median_by_n"] = by_day_share(
                d, e, p["q50"].to_numpy(np.float64)
            )
        rows.append(row)
    metrics = pd.DataFrame(rows)
    deltas = _deltas(cutoff, aligned, y, d, e, seed=seed, n_boot=n_boot)
    return CutoffResult(metrics, deltas, len(ids), int(common.sum()))


DELTA_COLUMNS = ("cutoff", "baseline", "metric", PRODUCT, "theirs", "delta", "lo", "hi", "verdict")


def _deltas(
    cutoff: pd.Timestamp,
    aligned: dict[str, pd.DataFrame],
    y: np.ndarray,
    d: np.ndarray,
    e: np.ndarray,
    *,
    seed: int,
    n_boot: int,
) -> pd.DataFrame:
    """ka_ml minus BG/NBD and minus plain LightGBM, on every metric both of them forecast."""
    from ka_ml.modeling import metrics as M

    if PRODUCT not in aligned:
        return pd.DataFrame(columns=list(DELTA_COLUMNS))
    a = aligned[PRODUCT]
    y30 = (e & (d < 30)).astype(np.float64)
    idx = np.arange(len(d), dtype=np.float64)
    plan: list[tuple[str, Any, str, Callable[[Any, Any], float], bool]] = [
        ("churn ROC AUC", y, "churn_probability", M.roc_auc, True),
        ("churn Brier", y, "churn_probability", M.brier, False),
        ("P(order within 30 d) AUC", y30, "p_purchase_30d", M.roc_auc, True),
        ("P(order within 30 d) Brier", y30, "p_purchase_30d", M.brier, False),
    ]
    rows = []
    for baseline in (BGNBD, PLAIN):
        if baseline not in aligned:
            continue
        b = aligned[baseline]
        for metric, target, col, fn, higher in plan:
            if col not in a or col not in b:
                continue
            pa, pb = a[col].to_numpy(np.float64), b[col].to_numpy(np.float64)
            res = M.bootstrap_delta(target, pa, pb, fn, n_boot, seed)
            ours, theirs = fn(target, pa), fn(target, pb)
            rows.append(_delta_row(cutoff, baseline, metric, ours, theirs, res, higher))
        if "q50" in a and "q50" in b:
            fn = _concordance_on(d, e)
            qa, qb = _q50_for_ranking(a), _q50_for_ranking(b)
            res = M.bootstrap_delta(idx, qa, qb, fn, n_boot, seed)
            rows.append(
                _delta_row(
                    cutoff, baseline, "timing concordance", fn(idx, qa), fn(idx, qb), res, True
                )
            )
    return pd.DataFrame(rows, columns=list(DELTA_COLUMNS))


def _delta_row(
    cutoff: pd.Timestamp,
    baseline: str,
    metric: str,
    ours: float,
    theirs: float,
    res: dict[str, float],
    higher_is_better: bool,
) -> dict[str, Any]:
    lo, hi = res["lo"], res["hi"]
    better = lo > 0 if higher_is_better else hi < 0
    worse = hi < 0 if higher_is_better else lo > 0
    verdict = "better" if better else ("worse" if worse else "no clear difference")
    return {
        "cutoff": str(cutoff.date()),
        "baseline": baseline,
        "metric": metric,
        PRODUCT: float(ours),
        "theirs": float(theirs),
        "delta": res["delta"],
        "lo": lo,
        "hi": hi,
        "verdict": verdict,
    }


# -- the run ----------------------------------------------------------------------------
@dataclass
class BenchResult:
    """One configuration at every cutoff: metrics, deltas, validation and run notes."""

    config: str
    cfg: Config
    metrics: pd.DataFrame
    deltas: pd.DataFrame
    validation: pd.DataFrame
    runs: list[dict[str, Any]]
    seconds: float
    config_hash: str
    n_rows: int
    n_orders: int
    n_customers: int


def _validation_rows(cutoff: pd.Timestamp, report: TrainReport) -> list[dict[str, Any]]:
    """The training run's own out-of-time estimate (``report.evaluation``, all before the
    cutoff): churn from ``comparison``, 30-day AUC and concordance from ``timing_comparison``."""
    ev = report.evaluation
    timing = ev.timing_comparison.set_index("predictor")
    rows = []
    for _, r in ev.comparison.iterrows():
        name = str(r["predictor"])
        tname = "ka_ml timing model" if name == "ka_ml churn model" else name
        t = timing.loc[tname] if tname in timing.index else None
        rows.append(
            {
                "cutoff": str(cutoff.date()),
                "fold": report.split.get("test", "—"),
                "predictor": name,
                "churn_roc_auc": r["roc_auc"],
                "churn_brier": r["brier"],
                "p30_auc": t["p30_auc"] if t is not None and "p30_auc" in t else np.nan,
                "concordance": t.get("concordance", np.nan) if t is not None else np.nan,
            }
        )
    return rows


def _plain_summary(plain: PlainRun) -> str:
    first, last = plain.snapshots[0].date(), plain.snapshots[-1].date()
    return (
        f"{len(plain.snapshots)} month-start snapshots {first}..{last}, {plain.rows:,} rows, "
        f"{plain.features} numeric features, {plain.trees} trees"
    )


def run_benchmark(
    cfg: Config,
    raw: pd.DataFrame | None = None,
    cutoffs: Sequence[pd.Timestamp] = CUTOFFS,
    *,
    config: str = "",
    workdir: Path | None = None,
    n_boot: int = 200,
    progress: Progress = lambda s: None,
) -> BenchResult:
    """The benchmark of one configuration (``config`` names it in the results); everything
    it writes (store, outputs, CSV) lives in a temp dir."""
    from ka_ml.modeling.timing import interval_edges

    t0 = time.perf_counter()
    raw = read_cdnow() if raw is None else raw
    windows = list(cfg.labels.purchase_windows)
    max_days = int(interval_edges(windows)[-1])
    metrics, deltas, validation, runs = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="ka_ml_cdnow_", dir=workdir) as tmp:
        root = Path(tmp)
        history = load_history(raw, root / "data", cfg)
        progress(f"loaded {len(history.orders):,} orders of {len(history.accounts):,} customers")
        for cutoff in (pd.Timestamp(c) for c in cutoffs):
            tc = time.perf_counter()
            progress(f"{config} {cutoff.date()}: ka_ml train + score on rows before it ...")
            run = run_product(history, cfg, cutoff, root / str(cutoff.date()), progress)
            truth = outcomes(history, cutoff, cfg)
            preds: dict[str, pd.DataFrame] = {}
            if run.scores is not None:
                preds[PRODUCT] = product_predictions(run.scores, cutoff, windows)
            progress(f"{config} {cutoff.date()}: baselines ...")
            preds[BGNBD] = bgnbd_predictions(history, cutoff, cfg, truth.index, max_days)
            preds.update(logistic_predictions(history, cutoff, cfg, truth.index))
            plain = plain_lightgbm_predictions(history, cutoff, cfg, truth.index)
            preds[PLAIN] = plain.predictions
            res = evaluate_cutoff(cutoff, preds, truth, windows, seed=cfg.seed, n_boot=n_boot)
            m = res.metrics
            if run.report is not None:
                reported = run.report.evaluation.churn
                is_product = m["predictor"] == PRODUCT
                m.loc[is_product, "reported_roc_auc"] = float(reported["roc_auc"])
                m.loc[is_product, "reported_brier"] = float(reported["brier"])
                expected = run.report.evaluation.expected
                m.loc[is_product, "expected_roc_auc"] = expected.get("roc_auc", np.nan)
                m.loc[is_product, "expected_brier"] = expected.get("brier", np.nan)
                validation.extend(_validation_rows(cutoff, run.report))
            metrics.append(m)
            deltas.append(res.deltas)
            runs.append(
                {
                    "cutoff": str(cutoff.date()),
                    "customers": res.n_customers,
                    "scored": 0 if run.scores is None else len(run.scores),
                    "managers": _managers_view(run.scores),
                    "evaluated": res.n_scored,
                    "train_seconds": run.train_seconds,
                    "score_seconds": run.score_seconds,
                    "seconds": time.perf_counter() - tc,
                    "split": run.report.split if run.report is not None else {},
                    "decisions": run.report.decisions if run.report is not None else {},
                    "notes": run.notes,
                    "error": run.error,
                    "plain": _plain_summary(plain),
                }
            )

    def labelled(frames: list[pd.DataFrame]) -> pd.DataFrame:
        frames = [f for f in frames if len(f)]
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        df.insert(0, "config", config)
        return df

    return BenchResult(
        config=config,
        cfg=cfg,
        metrics=labelled(metrics),
        deltas=labelled(deltas) if any(len(d) for d in deltas) else _no_deltas(config),
        validation=labelled([pd.DataFrame(validation)]),
        runs=runs,
        seconds=time.perf_counter() - t0,
        config_hash=cfg.hash(),
        n_rows=len(raw),
        n_orders=len(history.orders),
        n_customers=len(history.accounts),
    )


def _no_deltas(config: str) -> pd.DataFrame:
    return pd.DataFrame(columns=["config", *DELTA_COLUMNS])


# -- acceptance (issue 13) and the results file -----------------------------------------
# Yardsticks ka_ml's churn score has to beat, in ROC AUC and in Brier.
YARDSTICKS = (RECENCY, RFM, BGNBD, PLAIN)
P30_AUC_TARGETS = {"1997-09-30": 0.786, "1997-12-31": 0.819}
CONCORDANCE_TARGETS = {"1997-09-30": 0.74, "1997-12-31": 0.78}
COVERAGE_TARGET = (0.75, 0.85)
REPORTED_TOLERANCE = 0.03


def _value(metrics: pd.DataFrame, cutoff: str, predictor: str, col: str) -> float:
    row = metrics[(metrics["cutoff"] == cutoff) & (metrics["predictor"] == predictor)]
    return float(row[col].iloc[0]) if len(row) and col in row else float("nan")


def _with_config(df: pd.DataFrame) -> pd.DataFrame:
    return df if "config" in df.columns else df.assign(config="")


Check = tuple[str, float, str, bool]  # target, ka_ml's value, the rule, met


def acceptance(metrics: pd.DataFrame, deltas: pd.DataFrame) -> pd.DataFrame:
    """Issue 13's acceptance rules for ka_ml, per config and cutoff: met or missed.

    ``metrics`` holds one row per (config, cutoff, predictor) as :func:`evaluate_cutoff`
    makes them (the ka_ml row with ``reported_roc_auc`` from ``train``); ``deltas`` the
    paired-bootstrap rows of :func:`_deltas`. A number that is missing (no ka_ml scores,
    a yardstick that could not be fitted) never meets a rule. Columns: config, cutoff,
    target, value (ka_ml's), required (the rule, with the yardstick's figure), met.
    """
    metrics, deltas = _with_config(metrics), _with_config(deltas)
    rows = []
    for config, cutoff in metrics[["config", "cutoff"]].drop_duplicates().itertuples(index=False):
        m = metrics[metrics["config"] == config]
        d = deltas[deltas["config"] == config]
        for target, value, required, met in _checks(m, d, str(cutoff)):
            rows.append((config, cutoff, target, value, required, bool(met)))
    return pd.DataFrame(rows, columns=["config", "cutoff", "target", "value", "required", "met"])


def _checks(m: pd.DataFrame, deltas: pd.DataFrame, cutoff: str) -> list[Check]:
    """The rules at one cutoff of one config (``m`` and ``deltas`` of that config)."""

    def ours(col: str) -> float:
        return _value(m, cutoff, PRODUCT, col)

    checks: list[Check] = []
    auc, brier = ours("churn_roc_auc"), ours("churn_brier")
    for name in YARDSTICKS:
        theirs = _value(m, cutoff, name, "churn_roc_auc")
        checks.append((f"churn ROC AUC above {name}", auc, f"> {_f(theirs, 4)}", auc > theirs))
    for name in YARDSTICKS:
        theirs = _value(m, cutoff, name, "churn_brier")
        checks.append((f"churn Brier below {name}", brier, f"< {_f(theirs, 4)}", brier < theirs))
    d = deltas[
        (deltas["cutoff"] == cutoff)
        & (deltas["baseline"] == BGNBD)
        & (deltas["metric"] == "churn ROC AUC")
    ]
    delta, lo, hi = (float(d[c].iloc[0]) if len(d) else np.nan for c in ("delta", "lo", "hi"))
    checks.append(
        (
            "churn ROC AUC minus BG/NBD's: 95% bootstrap interval above 0",
            delta,
            f"interval [{_f(lo, 4)}, {_f(hi, 4)}] > 0",
            lo > 0,
        )
    )
    if cutoff in P30_AUC_TARGETS:
        floor = P30_AUC_TARGETS[cutoff]
        p30 = ours("p30_auc")
        checks.append(("P(order within 30 d) ROC AUC", p30, f">= {floor}", p30 >= floor))
    if cutoff in CONCORDANCE_TARGETS:
        floor = CONCORDANCE_TARGETS[cutoff]
        c = ours("concordance")
        checks.append(("timing concordance", c, f">= {floor}", c >= floor))
    lo_cov, hi_cov = COVERAGE_TARGET
    cov = ours("p10_p90_coverage")
    checks.append(("p10-p90 coverage", cov, f"in [{lo_cov}, {hi_cov}]", lo_cov <= cov <= hi_cov))
    reported = ours("reported_roc_auc")
    gap = reported - auc
    checks.append(
        (
            "churn ROC AUC reported by train minus achieved",
            gap,
            f"within ±{REPORTED_TOLERANCE} (reported {_f(reported, 4)})",
            abs(gap) <= REPORTED_TOLERANCE,
        )
    )
    return checks


def _f(x: Any, digits: int = 3) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "—" if not np.isfinite(v) else f"{v:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 3) -> list[str]:
    """A markdown table: the first ``left`` columns are text, the others right-aligned."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * left + ["---:"] * (len(header) - left)) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ""
    with contextlib.suppress(OSError, AttributeError):
        load = ", load average at the end {:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())
    return f"{platform.platform()}, {cpu}, {os.cpu_count()} CPUs{load}"


def _config_label(result: BenchResult) -> str:
    default = ", the product's default: nothing CDNOW-specific" if _is_default(result) else ""
    return f"`{result.config}` (hash {result.config_hash}{default})"


def _is_default(result: BenchResult) -> bool:
    return Path(result.config).name == DEFAULT_CONFIGS[0].name


def _header(results: Sequence[BenchResult]) -> list[str]:
    from ka_ml.versions import package_versions

    first = results[0]
    versions = ", ".join(f"{k} {v}" for k, v in package_versions().items())
    minutes = sum(r.seconds for r in results) / 60
    horizons = sorted({r.cfg.labels.horizon_days for r in results})
    return [
        "# CDNOW benchmark (`make bench-real`)",
        "",
        f"- run: {pd.Timestamp.now().strftime('%Y-%m-%d %H:%M')}, wall time {minutes:.1f} min; "
        f"machine: {_machine()}",
        f"- versions: {versions}",
        "- data: `ka_ml/bench/data/cdnow/CDNOW_master.txt.gz` (Fader, Hardie & Lee 2005; see "
        f"`ATTRIBUTION.md`): {first.n_rows:,} rows, {first.n_customers:,} customers. "
        "Same-day rows are summed into one order per customer-day "
        f"({first.n_orders:,} orders; amount = dollars, quantity = CDs), written as an "
        "orders-only CSV and read through the product's loader.",
        "- configs: "
        + "; ".join(_config_label(r) for r in results)
        + ". The benchmark changes nothing in a config but its MLflow store and output "
        "folders (a fresh private store per cutoff): labels, features and tuning are the "
        "config's own.",
        f"- churn = no order in the {'/'.join(map(str, horizons))} days from the cutoff; the "
        "next-order time is censored at 1998-06-30.",
        "- protocol per config and cutoff C: the product's `train --as-of C` on rows before C "
        "(a fresh MLflow store), then its `score --as-of C`; BG/NBD fitted on rows before C; "
        "RFM logistic regression and recency only fitted on the product's labelled training "
        "snapshots before C (the k-day windows on snapshots whose window closed before C); "
        "plain LightGBM (fixed parameters, no tuning, no calibration) on the product's "
        "features at month starts from 1997-05-01 (for a C before 1997-08-01: from the "
        "first month start after the first order) whose 90-day window closed before C; "
        "every predictor on the customers all of them scored, against what happened from "
        "C on.",
    ]


def _acceptance_section(m: pd.DataFrame, deltas: pd.DataFrame) -> list[str]:
    acc = acceptance(m, deltas)
    rows = [
        [
            f"`{r['config']}`",
            r["cutoff"],
            r["target"],
            _f(r["value"], 4),
            r["required"],
            "met" if r["met"] else "**missed**",
        ]
        for r in acc.to_dict("records")
    ]
    summary = [
        f"- `{config}` at {cutoff}: {int(g['met'].sum())} of {len(g)} met"
        for (config, cutoff), g in acc.groupby(["config", "cutoff"], sort=False)
    ]
    return [
        "## Acceptance (issue 13)",
        "",
        "Per config and cutoff, ka_ml's churn score against every yardstick on the same "
        "customers (ROC AUC above, Brier below each), the paired bootstrap interval of its "
        "ROC AUC minus BG/NBD's, its purchase-timing forecast, and the ROC AUC `train` "
        "reported against the one the scores achieved at the cutoff. A missing figure (no "
        "ka_ml scores) counts as missed.",
        "",
        *summary,
        "",
        *_table(["config", "cutoff", "target", "ka_ml", "required", "result"], rows, left=3),
    ]


def _reported_section(m: pd.DataFrame) -> list[str]:
    ours = m[m["predictor"] == PRODUCT]
    rows = []
    for r in ours.to_dict("records"):
        rep_auc, rep_brier = r.get("reported_roc_auc", np.nan), r.get("reported_brier", np.nan)
        exp_auc = r.get("expected_roc_auc", np.nan)
        gap = float(rep_auc) - float(r["churn_roc_auc"])
        ok = "met" if abs(gap) <= REPORTED_TOLERANCE else "**missed**"
        rows.append(
            [
                f"`{r['config']}`",
                r["cutoff"],
                _f(rep_auc, 4),
                _f(r["churn_roc_auc"], 4),
                _f(gap, 4),
                ok,
                _f(exp_auc, 4),
                _f(float(exp_auc) - float(r["churn_roc_auc"]), 4),
                _f(rep_brier, 4),
                _f(r["churn_brier"], 4),
                _f(float(rep_brier) - float(r["churn_brier"]), 4),
            ]
        )
    header = ["config", "cutoff", "ROC AUC reported", "achieved", "reported - achieved"]
    header += [f"within ±{REPORTED_TOLERANCE}", "expected at C", "expected - achieved"]
    header += ["Brier reported", "achieved", "difference"]
    return [
        "## Reported by `train` vs achieved at the cutoff",
        "",
        "Reported: the churn ROC AUC and Brier of the `TrainReport` that `train --as-of C` "
        "returned (`report.evaluation.churn`, estimated on data before C); achieved: the "
        "same metrics of the churn probabilities `score --as-of C` wrote, against what "
        "happened after C (the churn table below). Expected at C: the ROC AUC `train` "
        "expects on the population at C from its final model's own probabilities "
        "(`report.evaluation.expected`; label-free, it assumes the calibration holds at C), "
        "printed beside the pooled figure. A config whose training was refused has no row.",
        "",
        *_table(header, rows, left=2),
    ]


def _managers_view(scores: pd.DataFrame | None) -> dict[str, int]:
    """What the report shows at the cutoff: accounts per lifecycle state and per light."""
    if scores is None or "lifecycle" not in scores:
        return {}
    out = {str(k): int(v) for k, v in scores["lifecycle"].astype(str).value_counts().items()}
    lit = scores["lifecycle"].astype(str).ne("lapsed")
    for light in ("red", "yellow", "green"):
        out[light] = int((scores.loc[lit, "health"] == light).sum())
    return out


def _managers_section(results: Sequence[BenchResult]) -> list[str]:
    rows = []
    for res in results:
        for r in res.runs:
            v = r.get("managers") or {}
            if not v:
                continue
            lit = v.get("active", 0) + v.get("new", 0)
            rows.append(
                [
                    f"`{res.config}`",
                    r["cutoff"],
                    f"{v.get('active', 0):,}",
                    f"{v.get('new', 0):,}",
                    f"{v.get('lapsed', 0):,}",
                    f"{v.get('red', 0):,}",
                    f"{v.get('yellow', 0):,}",
                    f"{v.get('red', 0) / lit:.1%}" if lit else "—",
                ]
            )
    header = ["config", "cutoff", "active", "new", "lapsed", "red", "yellow", "red share"]
    return [
        "## What managers would see at the cutoff",
        "",
        "The scores `score --as-of C` wrote, by lifecycle state (issue 14: lapsed accounts "
        "get no light and go to Win-back) and by light among the active and new accounts "
        "(red share: of those; the default budget keeps it at most ~15%).",
        "",
        *_table(header, rows, left=2),
    ]


def _evaluated_notes(results: Sequence[BenchResult]) -> list[str]:
    notes = []
    for res in results:
        for r in res.runs:
            if r["error"]:
                notes.append(
                    f"- `{res.config}` at {r['cutoff']}: ka_ml has no scores ({r['error']}); "
                    f"the other predictors are evaluated on the {r['evaluated']:,} customers "
                    "all of them scored."
                )
            elif r["scored"] < r["customers"] or r["evaluated"] < r["customers"]:
                notes.append(
                    f"- `{res.config}` at {r['cutoff']}: ka_ml scored {r['scored']:,} of "
                    f"{r['customers']:,} customers; every predictor is evaluated on the "
                    f"{r['evaluated']:,} customers all of them scored."
                )
    return notes


def _churn_section(m: pd.DataFrame, results: Sequence[BenchResult]) -> list[str]:
    rows = [
        [
            f"`{r['config']}`",
            r["cutoff"],
            r["predictor"],
            _f(r["churn_roc_auc"]),
            _f(r["churn_pr_auc"]),
            _f(r["churn_brier"], 4),
            _f(r["churn_top_decile_lift"], 2),
            _f(r["churn_mean_p"]),
            _f(r["churn_base_rate"]),
            f"{int(r['n']):,}",
        ]
        for r in m.to_dict("records")
    ]
    header = ["config", "cutoff", "predictor", "ROC AUC", "PR AUC", "Brier", "top-decile lift"]
    notes = _evaluated_notes(results)
    return [
        "## Churn: no order in the 90 days after the cutoff",
        "",
        "Mean P = the average predicted churn probability, beside the observed churn rate "
        "(calibration in the large). Customers = those every predictor scored.",
        *(["", *notes] if notes else []),
        "",
        *_table([*header, "mean P", "churn rate", "customers"], rows),
    ]


def _windows_section(m: pd.DataFrame, windows: Sequence[int]) -> list[str]:
    header = ["config", "cutoff", "predictor"]
    for k in windows:
        header += [f"{k} d AUC", f"{k} d Brier", f"{k} d accuracy", f"{k} d majority"]
    rows = []
    for r in m.to_dict("records"):
        if not any(np.isfinite(float(r.get(f"p{k}_auc", np.nan))) for k in windows):
            continue  # a churn-only predictor (plain LightGBM)
        row = [f"`{r['config']}`", r["cutoff"], r["predictor"]]
        for k in windows:
            row += [
                _f(r.get(f"p{k}_auc")),
                _f(r.get(f"p{k}_brier"), 4),
                _f(r.get(f"p{k}_accuracy")),
                _f(r.get(f"p{k}_majority_accuracy")),
            ]
        rows.append(row)
    return [
        "## Next order: P(order within k days)",
        "",
        "Accuracy predicts an order when P >= 0.5; majority = always the most frequent answer. "
        "Plain LightGBM is trained for churn only and is left out here: its 1 - P(churn) is "
        "its P(order within 90 d), with the churn table's AUC and Brier, and it has no 30 "
        "or 60 d forecast.",
        "",
        *_table(header, rows),
    ]


def _timing_section(m: pd.DataFrame) -> list[str]:
    rows = [
        [
            f"`{r['config']}`",
            r["cutoff"],
            r["predictor"],
            _f(r.get("concordance")),
            _f(r.get("p10_p90_coverage")),
            _f(r.get("coverage_n"), 0),
            _f(r.get("median_by_share")),
            _f(r.get("median_by_n"), 0),
        ]
        for r in m.to_dict("records")
        if np.isfinite(float(r.get("concordance", np.nan)))
    ]
    header = [
        "config",
        "cutoff",
        "predictor",
        "concordance",
        "p10-p90 coverage",
        "determinable",
        "ordered by the median date",
        "dated, determinable",
    ]
    return [
        "## Timing forecast: concordance and p10-p90 coverage",
        "",
        "Harrell's C of the days to the next order (censored at 1998-06-30) against the "
        "median forecast (`expected_next_purchase_date`; an open forecast, beyond the model's "
        "range, ranks after every dated one). Coverage = share of the determinable customers "
        "whose next order fell inside [p10, p90]; a customer without an order by 1998-06-30 "
        "whose p90 is open or later than that is undetermined and left out. BG/NBD's "
        "quantiles come from its own next-purchase distribution over the same range. "
        "Ordered by the median date: of the customers with a dated median whose answer is "
        "known (an order by 1998-06-30, or none through the median's day), the share that "
        "ordered by that day (0.5: on time; above: the dates are late).",
        "",
        *_table(header, rows),
    ]


def _delta_section(deltas: pd.DataFrame) -> list[str]:
    rows = [
        [
            f"`{r['config']}`",
            r["cutoff"],
            r["baseline"],
            r["metric"],
            _f(r[PRODUCT], 4),
            _f(r["theirs"], 4),
            f"{_f(r['delta'], 4)} [{_f(r['lo'], 4)}, {_f(r['hi'], 4)}]",
            r["verdict"],
        ]
        for r in deltas.to_dict("records")
    ]
    header = ["config", "cutoff", "baseline", "metric", "ka_ml", "baseline's"]
    return [
        "## ka_ml minus BG/NBD and minus plain LightGBM (paired bootstrap over customers, "
        "95% interval)",
        "",
        "Plain LightGBM forecasts churn only: its rows compare the churn score.",
        "",
        *_table([*header, "delta [95% CI]", "ka_ml is"], rows, left=4),
    ]


# Reference figures of /work/shared/datasets/README.md (churn ROC AUC / Brier).
REFERENCE = {
    "1997-09-30": {BGNBD: (0.764, 0.1174), RFM: (0.776, 0.1171), PLAIN: (0.775, 0.1163)},
    "1997-12-31": {BGNBD: (0.793, 0.1055), RFM: (0.806, 0.1047), PLAIN: (0.808, 0.1042)},
}
# The yardstick script itself (outside this repository) with configs/cdnow.yaml (its cutoff,
# AUC, Brier).
PLAIN_TOOL = {
    "1997-09-30": ("1997-10-01", 0.7771, 0.1164),
    "1997-12-31": ("1998-01-01", 0.8063, 0.1045),
}


def _reference_section(m: pd.DataFrame) -> list[str]:
    configs = list(dict.fromkeys(m["config"]))
    rows = []
    for cutoff, refs in REFERENCE.items():
        for name, (auc, brier) in refs.items():
            row = [cutoff, name, f"{auc:.3f} / {brier:.4f}"]
            for config in configs:
                mc = m[m["config"] == config]
                ours = "—"
                if cutoff in set(mc["cutoff"]):
                    ours = (
                        f"{_f(_value(mc, cutoff, name, 'churn_roc_auc'))} / "
                        f"{_f(_value(mc, cutoff, name, 'churn_brier'), 4)}"
                    )
                row.append(ours)
            rows.append(row)
    tool = "; ".join(f"{auc:.4f} / {brier:.4f} at {day}" for day, auc, brier in PLAIN_TOOL.values())
    return [
        "## Reference figures (datasets README) beside this run: churn ROC AUC / Brier",
        "",
        "Plain LightGBM is `plain_lightgbm_predictions` in `ka_ml/bench/cdnow.py`: the team's "
        "yardstick script `cdnow_plain_lightgbm.py` (kept outside this repository) redone "
        "in-process. The tool "
        f"itself, with `configs/cdnow.yaml`, gives {tool} (cutoffs one day later than the "
        "benchmark's); the in-process code reproduces those figures at the tool's cutoffs. "
        "At the benchmark's cutoffs the training snapshots are the same and only the "
        "features scored (as of the cutoff) and the 90-day outcome window move by a day, so "
        "differences of a few thousandths are expected.",
        "",
        *_table(
            ["cutoff", "predictor", "reference", *(f"this run, `{c}`" for c in configs)],
            rows,
            left=2,
        ),
    ]


def _validation_section(validation: pd.DataFrame) -> list[str]:
    rows = [
        [
            f"`{r['config']}`",
            r["cutoff"],
            r["predictor"],
            r["fold"],
            _f(r["churn_roc_auc"]),
            _f(r["churn_brier"], 4),
            _f(r["p30_auc"]),
            _f(r["concordance"]),
        ]
        for r in validation.to_dict("records")
    ]
    header = ["config", "train as-of", "predictor", "evaluated on", "churn ROC AUC"]
    return [
        "## Validation: the training run's own out-of-time estimate (pre-cutoff data only)",
        "",
        "What each `train --as-of C` run measured on its own held-out snapshots, all built "
        "from rows before C, for its models and the baselines it fits itself "
        "(`report.evaluation.comparison` and `timing_comparison`; concordance censored at the "
        "cutoff). These figures come from the run; the acceptance table compares the "
        "model's reported churn ROC AUC with the one it achieved after C.",
        "",
        *_table([*header, "churn Brier", "30 d AUC", "concordance"], rows, left=4),
    ]


def _runs_section(results: Sequence[BenchResult]) -> list[str]:
    lines = ["## Runs", ""]
    for res in results:
        lines.append(f"- `{res.config}`: {res.seconds / 60:.1f} min")
        for r in res.runs:
            lines.append(
                f"  - {r['cutoff']}: {r['customers']:,} customers, {r['evaluated']:,} evaluated, "
                f"{r['scored']:,} scored by ka_ml; {r['seconds']:.0f} s in all"
            )
            if r["error"]:
                lines.append(f"    - ka_ml: {r['error']}")
            else:
                lines.append(
                    f"    - ka_ml: train {r['train_seconds']:.0f} s, score "
                    f"{r['score_seconds']:.0f} s; split {r['split']}; gate: {r['decisions']}"
                )
            lines.append(f"    - plain LightGBM: {r['plain']}")
            lines += [f"    - note: {n}" for n in r["notes"]]
    return lines


def to_markdown(results: Sequence[BenchResult]) -> str:
    """The results file: protocol, acceptance, reported vs achieved, the tables, validation."""
    m = pd.concat([r.metrics for r in results], ignore_index=True)
    deltas = (
        pd.concat([r.deltas for r in results if len(r.deltas)], ignore_index=True)
        if any(len(r.deltas) for r in results)
        else _no_deltas("")
    )
    validation = pd.concat([r.validation for r in results], ignore_index=True)
    if validation.empty:
        validation = pd.DataFrame(
            columns=[
                "config",
                "cutoff",
                "predictor",
                "fold",
                "churn_roc_auc",
                "churn_brier",
                "p30_auc",
                "concordance",
            ]
        )
    windows = list(dict.fromkeys(k for r in results for k in r.cfg.labels.purchase_windows))
    sections = [
        _header(results),
        _acceptance_section(m, deltas),
        _reported_section(m),
        _managers_section(results),
        _churn_section(m, results),
        _windows_section(m, windows),
        _timing_section(m),
        _delta_section(deltas),
        _reference_section(m),
        _validation_section(validation),
        _runs_section(results),
    ]
    return "\n\n".join("\n".join(s) for s in sections) + "\n"


def write_results(text: str, path: Path | str = RESULTS_FILE) -> Path:
    """Replace the results file with this run's markdown."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def bench_parser(doc: str | None, out: Path) -> argparse.ArgumentParser:
    """The options the CDNOW benchmarks share: --config (repeatable), --out, --sample."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        default=None,
        help="a config to benchmark; repeat for several (default: "
        + " and ".join(str(c) for c in DEFAULT_CONFIGS)
        + ")",
    )
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--sample", type=int, default=None, help="only N random customers")
    return parser


def bench_inputs(
    args: argparse.Namespace,
) -> tuple[list[Path], list[Config], pd.DataFrame, Progress]:
    """Quiet logging, every config validated before anything runs, the (sampled) CDNOW
    rows, and a progress printer with the elapsed seconds."""
    import logging
    import warnings

    from ka_ml.config import load_config

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    warnings.filterwarnings("ignore")
    paths: list[Path] = args.config or list(DEFAULT_CONFIGS)
    cfgs = [load_config(p) for p in paths]
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True)

    raw = read_cdnow()
    if args.sample:
        raw = sample_customers(raw, args.sample, cfgs[0].seed)
    return paths, cfgs, raw, progress


def main(argv: Sequence[str] | None = None) -> Path:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm is imported

    parser = bench_parser(__doc__, RESULTS_FILE)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument(
        "--cutoffs",
        nargs="+",
        type=pd.Timestamp,
        default=list(CUTOFFS),
        help="the cutoffs (default: "
        + " and ".join(str(c.date()) for c in CUTOFFS)
        + "; earlier ones give shorter histories)",
    )
    args = parser.parse_args(argv)

    paths, cfgs, raw, progress = bench_inputs(args)
    results = [
        run_benchmark(
            cfg, raw, args.cutoffs, config=str(path), n_boot=args.n_boot, progress=progress
        )
        for path, cfg in zip(paths, cfgs, strict=True)
    ]
    text = to_markdown(results)
    path = write_results(text, args.out)
    print(text)
    progress(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
