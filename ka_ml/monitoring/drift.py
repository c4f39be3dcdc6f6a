"""Input drift: this week's feature distributions against the training reference (PSI).

Why PSI: it is one number per feature that account managers' analysts already know from
credit scoring (0.1 = "shifting", 0.25 = "shifted"), it needs nothing but bin proportions
(so the reference shipped with the model is a few kB of JSON, not the training data), and
bin counts add up over chunks of accounts, so it scales with the chunked scorer.

The reference profile is taken at train time from the labelled training snapshots (the
ones the churn model learned from, never the unlabelled latest ones) and travels
with the champion model (``ChurnModel.reference_profile_``) and as an MLflow artifact:

- numeric feature: interior cut points at the reference's quantiles (``bins`` equal-count
  bins; tied quantiles merge, so a feature that is mostly 0 gets fewer bins), bins
  ``(-inf, e1], (e1, e2], ..., (ek, inf)``, plus a bin for missing values;
- categorical feature: one bin per reference category, one for categories the reference
  never saw ("other", proportion 0 in the reference) and one for missing values.

PSI = sum over bins of (a - e) * ln(a / e), with ``eps`` added to every proportion and
the proportions renormalised, so an empty bin costs a large but finite amount.

One week is one date, while the reference pools every training snapshot. Features that
move with the calendar (weekly usage exports: days since usage cycles 1..7; quarterly
survey campaigns; counts that grow as the portfolio ages) differ from the pool at *any*
single date: on the demo data ``usage_recency_days`` has PSI ~6 every week. So each
feature also carries its ``natural_psi``, the largest PSI of a single training snapshot
against the pool, and is flagged only beyond ``max(psi_alert, natural_psi x
psi_natural_margin)``. Stable features keep the plain thresholds; a real change (a unit
or currency switch, a broken export, a new category) still stands out.

A feature *filling in* (fewer accounts without a value than in training) is judged on its
values alone (:func:`judged_psi`): history accrues, so a yearly survey's "latest minus the
previous answer" exists for more accounts each autumn (a food wholesaler's third campaign
took it from 4% of the training rows to ~30% of the accounts: PSI 0.59, a banner in 8 of 12
weeks and atop every manager's digest, which no retrain could clear before the campaign's
labels closed). That is more data, not a broken export; the record lists it under
``filled_in``. A feature *emptying out* (a feed gone missing) keeps the missing bin in its
PSI and still alarms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ka_ml.config import MonitoringConfig
from ka_ml.features import catalog

NATURAL_MIN_ROWS = 50  # natural_psi reads frames of at least this many rows ...
NATURAL_MIN_SHARE = 0.25  # ... and this share of the median snapshot's
PROFILE_VERSION = 2  # 2: natural_psi by judged_psi (a version-1 profile is judged on every bin)
EPS = 1e-4
MIN_ROWS = 30  # fewer scored accounts: bin proportions are noise, no drift verdict


def _is_categorical(s: pd.Series) -> bool:
    return (
        isinstance(s.dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(s.dtype)
        or pd.api.types.is_bool_dtype(s.dtype)
        or s.dtype == object
    )


def _as_text(s: pd.Series) -> pd.Series:
    """Category values as plain strings, missing as None (so 'A' and 'A' always match)."""
    return s.astype("object").astype("string")


def numeric_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Interior cut points at the quantiles of the finite values (ties merged)."""
    v = values[np.isfinite(values)]
    if len(v) == 0 or bins < 2:
        return np.array([], dtype=float)
    return np.unique(np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1]))


def feature_profile(s: pd.Series, bins: int) -> dict[str, Any]:
    """The reference bins of one feature and the reference's proportions in them."""
    if _is_categorical(s):
        text = _as_text(s)
        categories = sorted(str(c) for c in text.dropna().unique())
        entry: dict[str, Any] = {"kind": "categorical", "categories": categories}
    else:
        values = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        entry = {"kind": "numeric", "edges": numeric_edges(values, bins).tolist()}
    counts = bin_counts(entry, s)
    entry["proportions"] = (counts / max(counts.sum(), 1)).tolist()
    entry["n"] = int(counts.sum())
    return entry


def reference_profile(X: pd.DataFrame, features: Sequence[str], bins: int = 10) -> dict[str, Any]:
    """A compact, JSON-ready profile of ``features`` in ``X`` (the training reference)."""
    return {
        "version": PROFILE_VERSION,
        "bins": bins,
        "n_rows": len(X),
        "features": {f: feature_profile(X[f], bins) for f in features if f in X.columns},
    }


def learned_snapshots(snapshots: pd.DataFrame) -> pd.DataFrame:
    """The snapshot dates with an observed churn label (every account of those dates, as
    the scorer sees every account), or all of them when the frame carries no labels."""
    if "churn" not in snapshots.columns or "as_of" not in snapshots.columns:
        return snapshots
    dates = snapshots.loc[snapshots["churn"].notna(), "as_of"].unique()
    return snapshots[snapshots["as_of"].isin(dates)]


def training_reference(
    snapshots: pd.DataFrame,
    features: Sequence[str],
    bins: int = 10,
    between: Sequence[pd.DataFrame] = (),
) -> dict[str, Any]:
    """The reference of a training run: pooled snapshots plus each feature's natural PSI.

    Only the snapshots the churn model learned from make the reference: with a ``churn``
    column, the dates where some label was observed (:func:`learned_snapshots`). The
    latest snapshots, the scoring date's own among them, have no label yet; pooled in,
    the as-of snapshot would be its own reference and, through ``natural_psi``, its own
    yardstick, so a change at the training date could never raise the banner.

    ``natural_psi`` is the largest PSI of any single snapshot date against the pool. A
    feature that moves with the calendar (weekly usage exports, quarterly survey
    campaigns, ageing counts) differs from the pool at every single date; judging this
    week against that movement, not against zero, keeps the banner for real changes.

    ``between``: feature frames at dates between the snapshots. Snapshots 7, 14, 21 or 28
    days apart all fall on one weekday, so a weekly export (usage dated on Sundays) looks
    the same at every snapshot and a week scored on another weekday looked drifted (PSI
    6.8 on "days since the last usage"); those frames count in ``natural_psi``, not in the
    pool.
    """
    snapshots = learned_snapshots(snapshots)
    profile = reference_profile(snapshots, features, bins)
    natural: dict[str, float] = dict.fromkeys(profile["features"], 0.0)
    dated = [g for _, g in snapshots.groupby("as_of", sort=True)]
    # a frame far smaller than the usual snapshot is noise to a PSI, not movement: a
    # portfolio whose first snapshots held 12-86 accounts (before its subscriptions began)
    # set natural PSIs of 9-13, and a PSI of 7.8 after a three-week usage outage raised
    # no banner
    usual = float(np.median([len(g) for g in dated])) if dated else 0.0
    floor = max(NATURAL_MIN_ROWS, NATURAL_MIN_SHARE * usual)
    groups = [g for g in [*dated, *between] if len(g) >= floor]
    profile["natural_frames_left_out"] = len(dated) + len(between) - len(groups)
    for group in groups:
        for name, value in feature_psi(profile, group).items():
            if np.isfinite(value):
                natural[name] = max(natural[name], value)
    for name, entry in profile["features"].items():
        entry["natural_psi"] = round(natural[name], 4)
    dates = pd.to_datetime(snapshots["as_of"]) if "as_of" in snapshots else pd.Series([])
    profile["snapshots"] = int(dates.nunique())
    profile["first_snapshot"] = str(dates.min().date()) if len(dates) else None
    profile["last_snapshot"] = str(dates.max().date()) if len(dates) else None
    return profile


def bin_counts(entry: Mapping[str, Any], s: pd.Series) -> np.ndarray:
    """Counts of ``s`` in the bins of one profile entry (additive over chunks of rows).

    Numeric: len(edges) + 1 value bins, then missing. Categorical: one per reference
    category, then other (unseen), then missing.
    """
    if entry["kind"] == "categorical":
        cats = list(entry["categories"])
        text = _as_text(s)
        code = pd.Categorical(text, categories=cats).codes.astype(np.int64)
        missing = text.isna().to_numpy()
        idx = np.where(missing, len(cats) + 1, np.where(code < 0, len(cats), code))
        return np.bincount(idx, minlength=len(cats) + 2).astype(np.int64)
    edges = np.asarray(entry["edges"], dtype=float)
    values = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    finite = np.isfinite(values)
    idx = np.full(len(values), len(edges) + 1, dtype=np.int64)
    idx[finite] = np.searchsorted(edges, values[finite], side="left")
    return np.bincount(idx, minlength=len(edges) + 2).astype(np.int64)


def psi(
    expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray, eps: float = EPS
) -> float:
    """Population stability index of two distributions over the same bins.

    Both are normalised to sum to 1 after adding ``eps`` to every bin (epsilon smoothing),
    so a bin empty on one side contributes a large, finite amount. Bins empty on both
    sides contribute 0. NaN when either side has no mass at all.
    """
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.shape != a.shape:
        raise ValueError(f"expected and actual need the same bins; got {e.shape} and {a.shape}.")
    if e.sum() <= 0 or a.sum() <= 0:
        return float("nan")
    e = e / e.sum() + eps
    a = a / a.sum() + eps
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def missing_share(counts: Sequence[float] | np.ndarray) -> float:
    """The share of the last bin (missing values, in both kinds of profile entry)."""
    c = np.asarray(counts, dtype=float)
    return float(c[-1] / c.sum()) if c.sum() > 0 else float("nan")


def judged_psi(
    expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray, eps: float = EPS
) -> float:
    """The PSI a feature is judged by: over every bin, or over its values alone (the missing
    bin dropped, both sides renormalised) when ``actual`` has fewer missing values than
    ``expected`` (the feature filled in as history accrued). NaN without values on a side
    (a feature the training rows never had: nothing learned from it to be misled)."""
    e, a = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    if e.shape != a.shape:
        raise ValueError(f"expected and actual need the same bins; got {e.shape} and {a.shape}.")
    if missing_share(a) < missing_share(e):
        return psi(e[:-1], a[:-1], eps)
    return psi(e, a, eps)


def _judges_values(profile: Mapping[str, Any]) -> bool:
    return int(profile.get("version", 1)) >= 2


def feature_counts(profile: Mapping[str, Any], X: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each profiled feature present in ``X``: its counts in the profile's bins."""
    return {
        name: bin_counts(entry, X[name])
        for name, entry in profile["features"].items()
        if name in X.columns
    }


def feature_psi(
    profile: Mapping[str, Any],
    X: pd.DataFrame,
    eps: float = EPS,
    counts: Mapping[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """The judged PSI (:func:`judged_psi`) of every profiled feature present in ``X``,
    largest first; a version-1 profile (a champion trained before features filling in were
    judged on their values) keeps the PSI over every bin, which its ``natural_psi`` measured.
    ``counts``: :func:`feature_counts` of ``X`` when the caller has them."""
    judge = judged_psi if _judges_values(profile) else psi
    counts = feature_counts(profile, X) if counts is None else counts
    out = {
        name: judge(profile["features"][name]["proportions"], actual, eps)
        for name, actual in counts.items()
    }
    return dict(sorted(out.items(), key=lambda kv: -np.nan_to_num(kv[1], nan=-1.0)))


def filled_in(
    profile: Mapping[str, Any], counts: Mapping[str, np.ndarray], cfg: MonitoringConfig
) -> list[dict[str, Any]]:
    """Features judged on their values alone that the missing bin would have put on alert
    (``counts``: :func:`feature_counts` of this week's rows): per feature the share of rows
    with a value in training and now, and the PSI over every bin. For the record and the
    data scientist; never a banner."""
    if not _judges_values(profile):
        return []
    alert_at = alert_levels(profile, cfg)
    out: list[dict[str, Any]] = []
    for name, actual in counts.items():
        expected = profile["features"][name]["proportions"]
        before, now = missing_share(expected), missing_share(actual)
        if not now < before:
            continue
        whole = psi(expected, actual)
        if np.isfinite(whole) and whole >= alert_at[name]:
            out.append(
                {
                    "feature": name,
                    "with_value_training": round(1.0 - before, 4),
                    "with_value_now": round(1.0 - now, 4),
                    "psi_all_bins": round(whole, 4),
                }
            )
    return sorted(out, key=lambda f: -f["psi_all_bins"])


def _label(feature: str) -> str:

    try:
        return catalog.get(feature).meaning
    except KeyError:
        return feature


def alert_levels(profile: Mapping[str, Any], cfg: MonitoringConfig) -> dict[str, float]:
    """Per feature: the PSI beyond which it counts as drifted.

    ``psi_alert``, or the feature's own snapshot-to-snapshot movement in the training
    period times ``psi_natural_margin`` when that is larger.
    """
    return {
        name: max(cfg.psi_alert, float(entry.get("natural_psi", 0.0)) * cfg.psi_natural_margin)
        for name, entry in profile["features"].items()
    }


def drift_report(
    profile: Mapping[str, Any] | None, X: pd.DataFrame, cfg: MonitoringConfig
) -> dict[str, Any]:
    """What the run record keeps and the report shows: PSI per feature, banner or not.

    A feature is listed as ``warn`` from ``psi_warn`` and as ``alert`` from its alert level
    (:func:`alert_levels`), both only beyond its natural movement; the ``banner`` is raised
    when at least ``min_features_alerting`` features are on alert. Without a profile (a
    champion trained before profiles existed) nothing is flagged and the message says how
    to get one.
    """
    thresholds = {
        "psi_warn": cfg.psi_warn,
        "psi_alert": cfg.psi_alert,
        "psi_natural_margin": cfg.psi_natural_margin,
        "min_features_alerting": cfg.min_features_alerting,
    }
    if not profile or not profile.get("features"):
        return _unchecked(
            "The champion model has no training reference profile, so input drift "
            "was not checked; retrain (ka-ml train) to enable the check.",
            thresholds,
        )
    if len(X) < MIN_ROWS:
        return _unchecked(
            f"Only {len(X)} accounts scored: too few to compare feature "
            f"distributions with the training data (drift is checked from {MIN_ROWS}).",
            thresholds,
            current_rows=len(X),
        )
    counts = feature_counts(profile, X)  # once: the PSI and the filled-in check share them
    values = feature_psi(profile, X, counts=counts)
    listed = shifted_features(profile, values, cfg)
    alerts = [f for f in listed if f["level"] == "alert"]
    banner = len(alerts) >= cfg.min_features_alerting
    filled = filled_in(profile, counts, cfg)
    return {
        "available": True,
        "banner": banner,
        "message": _drift_message(listed, alerts, banner, cfg) + _filled_note(filled),
        "features": listed,
        "filled_in": filled,
        "psi": {f: round(v, 4) if np.isfinite(v) else None for f, v in values.items()},
        "not_computed": sorted(set(profile["features"]) - set(X.columns)),
        "reference_rows": int(profile.get("n_rows", 0)),
        "reference_snapshots": profile.get("snapshots"),
        "current_rows": len(X),
        "thresholds": thresholds,
    }


def _unchecked(message: str, thresholds: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The record of a drift check that could not run, and why."""
    return {
        "available": False,
        "banner": False,
        "message": message,
        "features": [],
        **extra,
        "thresholds": thresholds,
    }


def shifted_features(
    profile: Mapping[str, Any], values: Mapping[str, float], cfg: MonitoringConfig
) -> list[dict[str, Any]]:
    """The features whose PSI reaches their warning level, each marked warn or alert."""
    alert_at = alert_levels(profile, cfg)
    listed: list[dict[str, Any]] = []
    for name, value in values.items():
        natural = float(profile["features"][name].get("natural_psi", 0.0))
        warn_at = max(cfg.psi_warn, natural * cfg.psi_natural_margin)
        if np.isfinite(value) and value >= warn_at:
            listed.append(
                {
                    "feature": name,
                    "psi": round(value, 4),
                    "natural_psi": round(natural, 4),
                    "level": "alert" if value >= alert_at[name] else "warn",
                }
            )
    return listed


def _filled_note(filled: list[dict[str, Any]]) -> str:
    """One sentence on the features that filled in ('' without any)."""
    if not filled:
        return ""
    top, n = filled[0], len(filled)
    return (
        f" {n} feature{'s' if n != 1 else ''} now ha{'ve' if n != 1 else 's'} a value for more "
        f"accounts than in training (largest: {_label(str(top['feature']))}, "
        f"{top['with_value_now']:.0%} of the accounts vs {top['with_value_training']:.0%} of "
        "the training rows): more history, judged on the values alone; the model learns from "
        "them at a retrain once their labels have closed."
    )


def _drift_message(
    listed: list[dict[str, Any]], alerts: list[dict[str, Any]], banner: bool, cfg: MonitoringConfig
) -> str:
    if banner:
        top, n = alerts[0], len(alerts)
        return (
            f"{n} input feature{'s' if n != 1 else ''} differ{'' if n != 1 else 's'} from the "
            f"training data beyond PSI {cfg.psi_alert:g} (largest: {_label(str(top['feature']))}, "
            f"PSI {float(top['psi']):.2f}). This week's scores may be less reliable: check the "
            "data export, and retrain (ka-ml train) if the change is real."
        )
    if listed:
        return (
            f"{len(listed)} input feature(s) are shifting (PSI {cfg.psi_warn:g} or more) but "
            "none enough to raise the alert."
        )
    return "No input feature has shifted beyond its usual week-to-week movement."
