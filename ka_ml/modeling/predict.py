"""One prediction entry point for both model kinds (used by pyfunc, scorer and evaluation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def predict_frame(
    model: Any,
    kind: str,
    X: pd.DataFrame,
    windows: list[int],
    churn_probability: np.ndarray | None = None,
) -> pd.DataFrame:
    """Churn: ``churn_probability``. Timing: ``p_purchase_{k}d`` and q10/q50/q90 days.

    ``churn_probability`` (timing only): the churn model's probabilities for the same rows;
    a timing model trained with an anchor (churn = no order within the horizon) rescales
    its curve to them, so P(order within the horizon) = 1 - P(churn). Without them (e.g.
    the timing model served alone) the hazard model's own curve is used."""
    if kind == "churn":
        return pd.DataFrame({"churn_probability": model.predict_proba(X)}, index=X.index)
    if kind == "timing":
        from ka_ml.modeling.timing import quantiles_from_cdf, within_from_cdf

        F = (
            model.anchored_cdf(X, churn_probability)
            if hasattr(model, "anchored_cdf")
            else model.cdf(X)
        )
        within = within_from_cdf(F, model.edges, windows, index=X.index)
        lo, hi = getattr(model, "interval_levels_", (0.1, 0.9))
        q = quantiles_from_cdf(F, model.edges, (lo, 0.5, hi), index=X.index)
        q.columns = ["q10", "q50", "q90"]  # the 80% interval's edges, whatever levels give it
        return pd.concat([within, q], axis=1)
    raise ValueError(f"unknown model kind {kind!r}; expected 'churn' or 'timing'")
