"""Figures for the notebooks, drawn from the tables in :mod:`ka_ml.analysis.tables`.

Every function returns a ``matplotlib.figure.Figure`` that is not attached to pyplot: no
backend is selected or changed (the notebooks may run headless, in a test), nothing is
shown twice, and :func:`save_figure` renders it with Agg. Nothing here computes a number
the tables do not already hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ka_ml.analysis.tables import OTHER_FEATURES, pooled_retention

RAISES, LOWERS = "#c0392b", "#27ae60"


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG (folders created); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out


# -- exploration ------------------------------------------------------------------------
def plot_monthly_activity(monthly: pd.DataFrame) -> Figure:
    """Net revenue, purchase days and buying accounts per month (from ``monthly_activity``)."""
    fig = new_figure(10, 6.5)
    axes = fig.subplots(3, 1, sharex=True)
    x = monthly.index
    axes[0].bar(x, monthly["revenue"], width=20, color="#34495e")
    axes[0].set(ylabel="net revenue", title="Portfolio activity per month")
    axes[1].plot(x, monthly["purchase_days"], marker="o", ms=3)
    axes[1].set(ylabel="purchase days")
    axes[2].plot(x, monthly["buying_accounts"], marker="o", ms=3, color="#8e44ad")
    axes[2].set(ylabel="accounts buying")
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig


def _cohort_labels(table: pd.DataFrame, months_per_period: int) -> list[str]:
    fmt = "%Y-%m" if months_per_period < 12 else "%Y"
    return [
        f"{pd.Timestamp(c).strftime(fmt)} (n={n})"
        for c, n in zip(
            table.index.get_level_values("cohort"),
            table.index.get_level_values("accounts"),
            strict=True,
        )
    ]


def plot_cohort_retention(table: pd.DataFrame, months_per_period: int = 3) -> Figure:
    """Heatmap of the cohort table and one retention curve per cohort, pooled curve bold."""
    fig = new_figure(13, 5.5)
    ax_map, ax_curve = fig.subplots(1, 2, width_ratios=[1.25, 1])
    values = table.to_numpy(dtype=np.float64)
    labels = _cohort_labels(table, months_per_period)
    im = ax_map.imshow(np.ma.masked_invalid(values), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax_map.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=6.5, color="w")
    ax_map.set(
        yticks=range(len(labels)),
        yticklabels=labels,
        xticks=range(values.shape[1]),
        xlabel=f"periods of {months_per_period} months since first purchase",
        title="Share of each cohort still buying",
    )
    fig.colorbar(im, ax=ax_map, shrink=0.8)
    ages = table.columns.to_numpy()
    for row, label in zip(values, labels, strict=True):
        ax_curve.plot(ages, row, alpha=0.45, lw=1, label=label)
    ax_curve.plot(
        ages, pooled_retention(table).to_numpy(), color="k", lw=2.5, label="all cohorts (pooled)"
    )
    ax_curve.set(
        xlabel=f"periods of {months_per_period} months since first purchase",
        ylabel="share buying in the period",
        ylim=(0, 1.05),
        title="Retention curves",
    )
    ax_curve.grid(alpha=0.3)
    ax_curve.legend(fontsize=6.5, ncol=2, loc="lower left")
    return fig


def plot_purchase_gaps(
    gaps: pd.DataFrame, stats: pd.DataFrame, groups: pd.Series | None = None
) -> Figure:
    """All gaps (log scale), each account's median gap (per group when given), gap CVs."""
    fig = new_figure(14, 4.5)
    ax_all, ax_med, ax_cv = fig.subplots(1, 3)
    g = gaps["gap_days"].to_numpy(dtype=np.float64)
    if len(g):
        # log-spaced edges at half days: every bin holds whole day values, none is empty
        bins = np.unique(np.round(np.geomspace(1, max(2.0, g.max()) + 1, 40))) - 0.5
        ax_all.hist(g, bins=bins, color="#2980b9")
        ax_all.axvline(np.median(g), color="k", ls="--", label=f"median {np.median(g):.0f} d")
        ax_all.legend()
    ax_all.set(xscale="log", xlabel="days between purchase days", ylabel="gaps", title="All gaps")
    med = stats["median_gap_days"]
    if groups is not None:
        grp = groups.reindex(med.index).astype(object).fillna("unknown").astype(str)
        names = sorted(grp.unique())
        data = [med[grp == n].dropna().to_numpy() for n in names]
        ax_med.boxplot(
            data, tick_labels=[f"{n}\n(n={len(d)})" for n, d in zip(names, data, strict=True)]
        )
        ax_med.set(yscale="log", ylabel="median gap (days)", title="Each account's typical gap")
    else:
        ax_med.hist(med.dropna(), bins=30, color="#2980b9")
        ax_med.set(
            xlabel="median gap (days)", ylabel="accounts", title="Each account's typical gap"
        )
    cv = stats["cv"].dropna().to_numpy()
    ax_cv.hist(cv, bins=30, color="#16a085")
    ax_cv.axvline(1.0, color="k", ls="--", label="1 = random (Poisson) buying")
    ax_cv.set(xlabel="gap CV (std / mean)", ylabel="accounts", title="How regular is the cycle?")
    ax_cv.legend()
    return fig


def _rate_panel(ax: Axes, table: pd.DataFrame, title: str, overall: float | None) -> None:
    key = table.columns[0]
    rate, lo, hi = (table[c].to_numpy(dtype=np.float64) for c in ("rate", "lo", "hi"))
    if pd.api.types.is_datetime64_any_dtype(table[key]):
        x = table[key]
        ax.plot(x, rate, marker="o", ms=3)
        ax.fill_between(x, lo, hi, alpha=0.2)
        ax.set(ylabel="churn rate (95% Wilson band)", title=f"Churn rate by {title}")
        if overall is not None:
            ax.axhline(overall, color="grey", ls="--", label=f"overall {overall:.1%}")
            ax.legend(loc="best", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.tick_params(axis="x", labelrotation=30)
        return
    y = np.arange(len(table))[::-1]
    ax.errorbar(rate, y, xerr=[rate - lo, hi - rate], fmt="o", capsize=3)
    ax.set_yticks(y, [f"{v} (n={n})" for v, n in zip(table[key], table["n"], strict=True)])
    ax.set_ylim(-0.7, len(table) - 0.3)
    if overall is not None:
        ax.axvline(overall, color="grey", ls="--", label=f"overall {overall:.1%}")
        ax.legend(loc="best", fontsize=8)
    ax.set(xlabel="churn rate (95% Wilson interval)", title=f"Churn rate by {title}")
    ax.set_xlim(left=0)


def plot_churn_rates(tables: Mapping[str, pd.DataFrame], overall: float | None = None) -> Figure:
    """One panel per ``churn_rate_by`` table, titled by its key; the overall rate dashed.

    A table grouped by dates (snapshot dates) is drawn as a line with a band.
    """
    fig = new_figure(5.0 * max(1, len(tables)), 4.5)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(tables))))
    for ax, (title, table) in zip(axes, tables.items(), strict=False):
        _rate_panel(ax, table, title, overall)
        ax.grid(alpha=0.3)
    return fig


@dataclass(frozen=True)
class SignalPanel:
    """One panel of aligned curves (from ``mean_curve``), e.g. churners vs control."""

    title: str
    ylabel: str
    curves: Mapping[str, pd.DataFrame]
    reference: float | None = None


def plot_aligned_signals(panels: Sequence[SignalPanel]) -> Figure:
    """Mean curves with a 95% band (1.96 standard errors) against weeks before the anchor."""
    fig = new_figure(6.0 * max(1, len(panels)), 4.5)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(panels))))
    for ax, panel in zip(axes, panels, strict=False):
        for label, curve in panel.curves.items():
            x = curve.index.to_numpy()
            m, se = curve["mean"].to_numpy(), curve["se"].to_numpy()
            n = int(curve["n"].max()) if len(curve) else 0
            ax.plot(x, m, marker="o", ms=2.5, label=f"{label} (n<={n})")
            ax.fill_between(x, m - 1.96 * se, m + 1.96 * se, alpha=0.2)
        if panel.reference is not None:
            ax.axhline(panel.reference, color="grey", ls="--")
        ax.axvline(0, color="k", lw=0.8)
        ax.set(xlabel="weeks before the churn date", ylabel=panel.ylabel, title=panel.title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


# -- model review -----------------------------------------------------------------------
def plot_slice_review(metrics: pd.DataFrame, calibration: pd.DataFrame) -> Figure:
    """Per slice column: ROC AUC per value (left) and observed vs predicted rate (right).

    ``metrics`` comes from ``modeling.metrics.slice_metrics``, ``calibration`` from
    ``analysis.slice_calibration``, both with the same slices.
    """
    slices = list(dict.fromkeys(metrics["slice"]))
    fig = new_figure(12, 3.2 * max(1, len(slices)))
    axes = np.atleast_2d(fig.subplots(max(1, len(slices)), 2, squeeze=False))
    for (ax_auc, ax_cal), name in zip(axes, slices, strict=False):
        m = metrics[metrics["slice"] == name]
        y = np.arange(len(m))[::-1]
        auc = m["roc_auc"].to_numpy(dtype=np.float64)
        ax_auc.barh(y, np.nan_to_num(auc), color="#2980b9")
        for yi in y[np.isnan(auc)]:
            ax_auc.text(0.02, yi, "no AUC: one class only", va="center", fontsize=8)
        ax_auc.set_yticks(y, [f"{v} (n={n})" for v, n in zip(m["value"], m["n"], strict=True)])
        ax_auc.axvline(0.5, color="grey", ls="--")
        ax_auc.set(xlim=(0, 1), xlabel="ROC AUC (0.5 = chance)", title=f"Ranking by {name}")
        c = calibration[calibration["slice"] == name].set_index("value").reindex(m["value"])
        ax_cal.scatter(c["observed_rate"], y, marker="o", color="k", label="observed")
        ax_cal.scatter(c["mean_p"], y, marker="x", color=RAISES, label="predicted (mean)")
        ax_cal.hlines(y, c["observed_rate"], c["mean_p"], color="grey", lw=1)
        ax_cal.set_yticks(y, list(m["value"]))
        ax_cal.set(xlabel="churn rate", title=f"Calibration by {name}")
        top = np.nanmax(
            np.r_[c["observed_rate"].to_numpy(float), c["mean_p"].to_numpy(float), 0.01]
        )
        ax_cal.set_xlim(0, top * 1.15)
        ax_cal.legend(fontsize=8, loc="best")
        for ax in (ax_auc, ax_cal):
            ax.set_ylim(-0.7, len(m) - 0.3)
            ax.grid(alpha=0.3, axis="x")
    return fig


@dataclass(frozen=True)
class AccountExplanation:
    """One explained account: its title line and its ``top_contributions`` table."""

    title: str
    contributions: pd.DataFrame


def _value_text(v: object) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    if isinstance(v, float | np.floating):
        return f"{v:,.2f}".rstrip("0").rstrip(".")
    return str(v)


def plot_account_explanations(examples: Sequence[AccountExplanation]) -> Figure:
    """One panel per account: each feature's push on its churn probability (points)."""
    fig = new_figure(6.0 * max(1, len(examples)), 4.8)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(examples))))
    for ax, ex in zip(axes, examples, strict=False):
        t = ex.contributions
        pts = t["contribution"].to_numpy(dtype=np.float64) * 100
        y = np.arange(len(t))[::-1]
        colors = [RAISES if v > 0 else LOWERS for v in pts]
        ax.barh(y, pts, color=colors)
        labels = [
            f if f == OTHER_FEATURES else f"{f} = {_value_text(v)}"
            for f, v in zip(t["feature"], t["value"], strict=True)
        ]
        ax.set_yticks(y, labels, fontsize=8)
        ax.axvline(0, color="k", lw=0.8)
        ax.set(xlabel="push on churn probability (points)", title=ex.title)
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3, axis="x")
    return fig
