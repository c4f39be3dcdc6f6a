"""`ka-ml score --engine spark`: the scores frame of :func:`ka_ml.scoring.score.score_accounts`.

Features (this week and a week earlier, for the "what changed" text) come from
:func:`ka_ml.spark.features.feature_frame`. The champion models are broadcast once; each
account bucket is scored, explained and compared with its previous week in one pandas call
(:func:`ka_ml.spark.kernel.score_rows`). What needs the whole portfolio or the score
history - the portfolio columns, revenue at risk, the health lights with their hysteresis,
the manager's action - runs on the driver over one row per account, with the local
engine's own functions, so both engines write the same outputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.errors import ModelError
from ka_ml.features.catalog import ABC_CATEGORIES
from ka_ml.modeling.feature_frame import missing_features_error
from ka_ml.scoring.explain import lead_flagged_with_what_raised
from ka_ml.scoring.score import (
    ACCOUNT_COLUMNS,
    OPTIONAL_ACCOUNT_COLUMNS,
    Models,
    has_previous_run,
    light_columns,
    portfolio_columns,
    run_facts,
)
from ka_ml.spark import kernel
from ka_ml.spark.data import SparkHistory
from ka_ml.spark.features import Plan, as_spark, default_buckets, feature_frame

if TYPE_CHECKING:  # pyspark is optional: types only
    from pyspark.sql import DataFrame

N_REASONS = 3  # top_reasons' default
# features the driver needs after scoring (portfolio columns, revenue at risk, lights)
KEEP = (
    "abc_tier",
    "revenue_share",
    "dependency_index",
    "spend_365d",
    "recency_days",
    "overdue_ratio",
    "rhythm_quiet_chance",  # the lights' rhythm rule
    "season_quiet_chance",  # ... and its season
    "season_quiet_years",  # (the peers' groups come with the accounts' names)
    "season_pause_chance",  # ... and a yearly pause: how often, how soon back
    "season_pause_years",
    "next_order_days_years_before",
    "gaps_longer_than_silence",  # lapsed and overdue: silent this long before
    "repeat_orders",  # overdue by the typical gap: only with two gaps or more
    "gap_typical_days",  # ... the typical gap by time
    # "since last week": back from lapsed after how long, first order since last week
    "gap_last_days",
    "active_span_days",
    "open_critical_complaints",
    # lifecycle states and forward revenue (ka_ml.scoring.lifecycle)
    "gap_median_days",
    "gap_mean_days",  # the buying cycle of forward revenue: mean + std^2 / mean
    "gap_std_days",
    "contract_days_to_end",
    "has_active_contract",
    "orders_lifetime",
    "tenure_days",
    "spend_per_month",
    *(f"spend_{w}d" for w in (30, 90, 180)),
    # the scorecard (ka_ml.scoring.scorecard)
    "usage_yoy_90d",
    "usage_weekly_90d",
    "usage_trend_90d",
    "usage_recency_days",
    "complaints_90d",
    "complaints_365d",
    "basket_ratio_90d",
    "basket_days_90d",
)


def _score_udf(
    rows: pd.DataFrame,
    *,
    models: Any,
    as_of: pd.Timestamp,
    prev_day: pd.Timestamp | None,
    names: list[str],
    categories: dict[str, list[str]],
    windows: list[int],
    keep: list[str],
    chunk_rows: int,
    columns: list[str],
    recent_lapse_days: float,
    currency: str = "",
) -> pd.DataFrame:
    """One bucket of feature rows in, its scored accounts out (runs on executors)."""
    out = kernel.score_rows(
        rows,
        models.value,
        as_of,
        prev_day,
        names,
        categories,
        windows,
        keep,
        chunk_rows,
        recent_lapse_days,
        currency,
    )
    if out.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return kernel.to_spark(out[columns])


DATE_COLUMNS = (
    "as_of",
    "expected_next_purchase_date",
    "next_purchase_p10_date",
    "next_purchase_p90_date",
)


def _schema(windows: list[int], keep: list[str]) -> list[tuple[str, str]]:
    """The scorer's per-chunk columns (``score_chunk``) and the kept features."""
    cols = [("account_id", "string"), ("as_of", "timestamp_ntz"), ("churn_probability", "double")]
    cols += [(f"p_purchase_{k}d", "double") for k in windows]
    cols += [(c, "timestamp_ntz") for c in DATE_COLUMNS[1:]]
    for k in range(1, N_REASONS + 1):
        cols += [
            (f"reason_{k}", "string"),
            (f"reason_{k}_feature", "string"),
            (f"reason_{k}_shap", "double"),
            (f"reason_{k}_direction", "string"),
        ]
    cols.append(("changes", "string"))
    cols += [(c, "string" if c == "abc_tier" else "double") for c in keep]
    return cols


def score_frame(
    source: History | SparkHistory,
    cfg: Config,
    as_of: pd.Timestamp,
    models: Models,
    *,
    buckets: int | None = None,
    with_features: bool = False,
    compare: bool = True,
) -> tuple[pd.DataFrame, Plan, pd.DataFrame | None]:
    """Per-account model output (collected, sorted by account), the feature plan and,
    when asked, the feature table as of ``as_of`` (the local ``build_features`` frame)."""
    from pyspark.sql import functions as F

    sh = as_spark(source)
    as_of = pd.Timestamp(as_of)
    day = as_of.normalize()
    prev = _compare_day(sh, cfg, day, compare)
    dates = [day] if prev is None else [prev, day]
    feats = feature_frame(sh, dates, cfg, buckets=buckets)
    p = feats.plan
    timing = getattr(models.timing, "features_", None) or []
    missing = sorted({c for c in [*models.churn.features_, *timing] if c not in p.names})
    if missing:  # on the driver: inside the buckets it was a Java trace, exit 1
        feats.release()
        raise missing_features_error(missing)
    keep = [c for c in KEEP if c in p.names]
    windows = list(cfg.labels.purchase_windows)
    schema = _schema(windows, keep)
    broadcast = sh.spark.sparkContext.broadcast(models)
    columns = [c for c, _ in schema]
    names_, categories, chunk_rows = p.names, p.all_categories, cfg.scoring.chunk_rows
    horizon, currency = cfg.labels.horizon_days, cfg.report.currency

    def fn(rows: pd.DataFrame) -> pd.DataFrame:  # a plain function: Spark reads its hints
        return _score_udf(
            rows,
            models=broadcast,
            as_of=as_of,
            prev_day=prev,
            names=names_,
            categories=categories,
            windows=windows,
            keep=keep,
            chunk_rows=chunk_rows,
            columns=columns,
            recent_lapse_days=horizon,
            currency=currency,
        )

    n = buckets or default_buckets(sh)
    bucketed = feats.frame.withColumn("_bucket", F.pmod(F.xxhash64("account_id"), F.lit(n)))
    ddl = ", ".join(f"`{c}` {t}" for c, t in schema)
    scored = bucketed.groupBy("_bucket").applyInPandas(fn, ddl)
    scored = _with_account_names(scored, sh)
    table = None
    try:
        res = scored.toPandas()
        if with_features:
            now = feats.frame.where(F.col("as_of") == F.lit(day.to_pydatetime()))
            got = kernel.restore(now.toPandas(), p.names, p.all_categories)
            table = got.sort_values("account_id").reset_index(drop=True)
    finally:
        feats.release()
        broadcast.unpersist()
    return res.sort_values("account_id").reset_index(drop=True), p, table


def _compare_day(
    sh: SparkHistory, cfg: Config, day: pd.Timestamp, compare: bool
) -> pd.Timestamp | None:
    """The day "what changed" compares with (``scoring.change_lookback_days`` earlier);
    None on a first run or when the data starts later."""
    if not compare:  # a first run: no change to report, no week-earlier features needed
        return None
    prev = day - pd.Timedelta(days=cfg.scoring.change_lookback_days)
    return None if prev <= sh.first_date else prev


def driver_features(res: pd.DataFrame, keep: list[str]) -> pd.DataFrame:
    """The features the driver's portfolio columns and lights read, from the scored rows:
    the kept features (``keep``), the ABC tier as the local scorer's categories, and the
    accounts' industry and region joined with their names (the peers' groups of
    ``health.season_peers``, as text)."""
    X = pd.DataFrame(
        {c: res[c].to_numpy(np.float64, na_value=np.nan) for c in keep if c != "abc_tier"}
    )
    for c in ("industry", "region"):
        if c in res:
            X[c] = res[c].astype("string").to_numpy(dtype=object)
    if "abc_tier" in keep:
        tier = res["abc_tier"].astype(object)
        X["abc_tier"] = pd.Categorical(tier.where(tier.notna(), None), list(ABC_CATEGORIES))
    X.insert(0, "account_id", res["account_id"].astype(str).to_numpy())  # contracts, surveys
    return X


def _with_account_names(scored: DataFrame, sh: SparkHistory) -> DataFrame:
    """The scores joined with the accounts' names, owners, industries and regions."""
    acc = sh.table("accounts")
    names = [
        c
        for c in (*ACCOUNT_COLUMNS, *OPTIONAL_ACCOUNT_COLUMNS)
        if acc is not None and c in acc.columns
    ]
    if acc is None or not names:
        return scored
    return scored.join(acc.select("account_id", *names), "account_id", "left")


def score_accounts(
    source: History | SparkHistory,
    cfg: Config,
    as_of: pd.Timestamp,
    models: Models,
    score_history: pd.DataFrame | None = None,
    *,
    buckets: int | None = None,
) -> pd.DataFrame:
    """The local ``score_accounts`` frame, with features and model work on Spark."""
    scores, _ = score_with_features(
        source, cfg, as_of, models, score_history, buckets=buckets, features=False
    )
    return scores


def score_with_features(
    source: History | SparkHistory,
    cfg: Config,
    as_of: pd.Timestamp,
    models: Models,
    score_history: pd.DataFrame | None = None,
    *,
    buckets: int | None = None,
    features: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, feature table as of ``as_of``) - what ``run_scoring`` needs (the features
    feed the drift check); ``features=False`` skips collecting the features (empty frame)."""
    as_of = pd.Timestamp(as_of)

    compare = has_previous_run(score_history, as_of, cfg)
    res, p, table = score_frame(
        source, cfg, as_of, models, buckets=buckets, with_features=features, compare=compare
    )
    if res.empty:
        raise ModelError(
            f"No account is eligible for scoring as of {as_of.date()}.",
            "check --as-of against the data's dates (features.eligibility_days).",
        )
    X = driver_features(res, [c for c in KEEP if c in p.names])
    chunk_columns = [c for c, _ in _schema(list(cfg.labels.purchase_windows), [])]
    out = res[chunk_columns].copy()
    out["account_id"] = out["account_id"].astype(str)
    for c in DATE_COLUMNS:
        out[c] = out[c].astype("datetime64[us]")
    p_churn = out["churn_probability"].to_numpy(np.float64)
    # the driver needs only the contracts (their yearly value) of the history: a small table
    sh = as_spark(source)
    small = {t: sh.table(t) for t in ("contracts", "surveys")}
    stub = History(
        orders=pd.DataFrame(),
        accounts=pd.DataFrame(),
        **{t: None if f is None else f.toPandas() for t, f in small.items()},  # type: ignore[arg-type]
    )
    card = getattr(models.churn, "card_", None) or {}
    silence = card.get("longest_silence_days")
    out = portfolio_columns(out, X, p_churn, stub, cfg, as_of, longest_silence=silence)
    lapses = card.get("contract_lapses")
    out = light_columns(out, X, stub, cfg, as_of, score_history, contract_lapses=lapses)
    out = lead_flagged_with_what_raised(out)
    out["churn_model_version"] = models.churn_version
    out["timing_model_version"] = models.timing_version
    acc = res.set_index("account_id")
    for c in ACCOUNT_COLUMNS:
        out[c] = out["account_id"].map(acc[c]) if c in acc else pd.NA
    for c in OPTIONAL_ACCOUNT_COLUMNS:
        if c in acc:
            out[c] = out["account_id"].map(acc[c])
    out.attrs.update(run_facts(score_history, as_of, cfg))
    return out, (table if table is not None else pd.DataFrame())
