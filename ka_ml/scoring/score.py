"""`ka-ml score`: champion models -> features as of the date -> scores, reasons, lights.

``score_accounts`` is pure (history, config, models in; the scores frame out);
``run_scoring`` adds the edges: the registry, the score history, the locked, atomic
writing of ``scores.parquet``/``scores.csv``/``report.html``/``scores.xlsx`` and the
run record.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.errors import ModelError
from ka_ml.features.build import build_features
from ka_ml.modeling.predict import predict_frame
from ka_ml.scoring.explain import changes_since, probability_contributions, top_reasons
from ka_ml.scoring.health import assign_lights, recommended_actions

log = logging.getLogger("ka_ml.score")

ACCOUNT_COLUMNS = ("name", "owner", "industry", "region")


@dataclass(frozen=True)
class Models:
    churn: Any
    timing: Any
    churn_version: str
    timing_version: str


def _days_to_dates(as_of: pd.Timestamp, days: pd.Series) -> pd.Series:
    d = pd.to_timedelta(np.ceil(days.to_numpy(float)), unit="D")
    return (as_of + d).astype("datetime64[us]")


def score_accounts(
    history: History,
    cfg: Config,
    as_of: pd.Timestamp,
    models: Models,
    score_history: pd.DataFrame | None = None,
    *,
    features: pd.DataFrame | None = None,
    engine: str = "local",
) -> pd.DataFrame:
    """One row per eligible account with every contract column (and the report's extras).

    ``features``: the feature table as of ``as_of`` when the caller built it already (the
    scorer does, to check it for drift); built here otherwise. ``engine="spark"``: the
    same frame from :mod:`ka_ml.spark.score` (which builds its own features).
    """
    as_of = pd.Timestamp(as_of)
    if engine == "spark":  # features, scores and reasons per account bucket on Spark
        from ka_ml.spark.score import score_accounts as on_spark

        return on_spark(history, cfg, as_of, models, score_history)
    feats = build_features(history, as_of, cfg) if features is None else features
    if feats.empty:
        raise ModelError(
            f"No account is eligible for scoring as of {as_of.date()}.",
            "check --as-of against the data's dates (features.eligibility_days).",
        )
    X = feats.reset_index(drop=True)
    before = features_week_before(history, as_of, cfg, X)
    out = score_in_chunks(
        models, X, before, cfg.labels.purchase_windows, as_of, cfg.scoring.chunk_rows
    )
    p = out["churn_probability"].to_numpy()
    out = portfolio_columns(out, X, p)
    out = light_columns(out, X, history, cfg, as_of, score_history)
    out["churn_model_version"] = models.churn_version
    out["timing_model_version"] = models.timing_version
    acc = history.accounts.set_index("account_id")
    for c in ACCOUNT_COLUMNS:
        out[c] = out["account_id"].map(acc[c]) if c in acc else pd.NA
    return out


def score_in_chunks(
    models: Models,
    X: pd.DataFrame,
    before: pd.DataFrame | None,
    windows: list[int],
    as_of: pd.Timestamp,
    chunk_rows: int,
) -> pd.DataFrame:
    """:func:`score_chunk` over ``chunk_rows`` accounts at a time, concatenated."""
    parts = [
        score_chunk(
            models,
            X.iloc[i : i + chunk_rows],
            None if before is None else before.iloc[i : i + chunk_rows],
            windows,
            as_of,
        )
        for i in range(0, len(X), chunk_rows)
    ]
    return pd.concat(parts, ignore_index=True)


def score_chunk(
    models: Models,
    X: pd.DataFrame,
    before: pd.DataFrame | None,
    windows: list[int],
    as_of: pd.Timestamp,
) -> pd.DataFrame:
    """Probabilities, timing forecast, reasons and weekly change for one chunk of accounts.

    Chunks bound the memory of the wide intermediates (the timing model's person-period
    rows, the SHAP matrices, the reason texts) whatever the portfolio size.
    """
    contrib, p, _ = probability_contributions(models.churn, X)  # one TreeSHAP pass
    timing = predict_frame(models.timing, "timing", X, windows, churn_probability=p)
    out = pd.DataFrame(
        {"account_id": X["account_id"].astype(str), "as_of": X["as_of"], "churn_probability": p},
        index=X.index,
    )
    for k in windows:
        out[f"p_purchase_{k}d"] = timing[f"p_purchase_{k}d"].to_numpy()
    out["expected_next_purchase_date"] = _days_to_dates(as_of, timing["q50"])
    out["next_purchase_p10_date"] = _days_to_dates(as_of, timing["q10"])
    out["next_purchase_p90_date"] = _days_to_dates(as_of, timing["q90"])
    out = pd.concat([out, top_reasons(models.churn, X, contributions=contrib)], axis=1)
    out["changes"] = ""
    if before is not None:
        changes = changes_since(models.churn, X, before, p, contrib).to_numpy()
        new = before["as_of"].isna().to_numpy()
        out["changes"] = np.where(new, "New on the list this week.", changes)
    return out


def portfolio_columns(out: pd.DataFrame, X: pd.DataFrame, p: np.ndarray) -> pd.DataFrame:
    from ka_ml.features.catalog import ABC_CATEGORIES

    tier = X["abc_tier"].astype("object") if "abc_tier" in X else pd.Series("C", index=X.index)
    out["abc_tier"] = pd.Categorical(tier, categories=list(ABC_CATEGORIES))
    out["revenue_share"] = X["revenue_share"].to_numpy(float) if "revenue_share" in X else np.nan
    out["dependency_index"] = (
        X["dependency_index"].to_numpy(float) if "dependency_index" in X else np.nan
    )
    revenue = X["spend_365d"].to_numpy(float) if "spend_365d" in X else np.full(len(X), np.nan)
    out["revenue_365d"] = revenue
    out["revenue_at_risk"] = np.clip(revenue, 0, None) * p
    out["days_since_last_order"] = X["recency_days"].to_numpy(float)
    out["last_order_date"] = out["as_of"] - pd.to_timedelta(out["days_since_last_order"], unit="D")
    return out


def light_columns(
    out: pd.DataFrame,
    X: pd.DataFrame,
    history: History,
    cfg: Config,
    as_of: pd.Timestamp,
    score_history: pd.DataFrame | None,
) -> pd.DataFrame:
    from ka_ml.scoring import history_store

    hist = (
        score_history
        if score_history is not None
        else pd.DataFrame(columns=list(history_store.COLUMNS))
    )
    prev = history_store.previous_week(hist, as_of)
    ids = out["account_id"]
    prev_light = ids.map(prev["health"]) if not prev.empty else None
    out["health_prev"] = prev_light if prev_light is not None else pd.NA
    out["churn_probability_prev"] = ids.map(prev["churn_probability"]) if not prev.empty else np.nan
    last_order = pd.Series(out["last_order_date"].to_numpy(), index=ids)
    p90 = history_store.open_forecast_p90(hist, last_order).to_numpy()
    has_forecast = ~pd.isna(p90)
    overdue_hist = has_forecast & (pd.to_datetime(p90) < as_of)
    ratio = X["overdue_ratio"].to_numpy(float) if "overdue_ratio" in X else np.full(len(X), np.nan)
    overdue_first = ~has_forecast & (np.nan_to_num(ratio) > cfg.health.overdue_ratio_fallback)
    critical = (
        X["open_critical_complaints"].to_numpy(float) > 0
        if "open_critical_complaints" in X
        else None
    )
    lights, reasons = assign_lights(
        out["churn_probability"].to_numpy(),
        prev_light,
        cfg.health,
        overdue=overdue_hist | overdue_first,
        critical_complaint=critical,
    )
    out["health"] = lights
    out["light_reason"] = reasons
    out["recommended_action"] = recommended_actions(
        lights, out["abc_tier"].astype("object"), cfg.health
    )
    return out


def features_week_before(
    history: History, as_of: pd.Timestamp, cfg: Config, X: pd.DataFrame
) -> pd.DataFrame | None:
    """The same accounts' features 7 days earlier (NaN rows where not eligible then)."""
    prev_day = as_of - pd.Timedelta(days=7)
    if prev_day <= history.first_date:
        return None
    return align_to(build_features(history, prev_day, cfg), X)


def align_to(before: pd.DataFrame, X: pd.DataFrame) -> pd.DataFrame:
    """``before``'s rows in ``X``'s account order (all-NaN rows for accounts it lacks),
    categoricals on ``X``'s categories."""
    aligned = before.set_index("account_id").reindex(X["account_id"]).reset_index()
    for c in X.columns:
        if isinstance(X[c].dtype, pd.CategoricalDtype):
            aligned[c] = pd.Categorical(aligned[c].astype("object"), categories=X[c].cat.categories)
    return aligned


def time_it(timings: dict[str, float], name: str, t0: float) -> float:
    now = time.perf_counter()
    timings[name] = round(now - t0, 3)
    return now
