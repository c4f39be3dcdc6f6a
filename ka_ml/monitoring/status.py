"""What the scorer adds to its run record from monitoring: drift now, the latest backtest."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ka_ml.config import Config
from ka_ml.monitoring.backtest import latest_summary
from ka_ml.monitoring.drift import drift_report


def monitoring_record(
    churn_model: Any, features: pd.DataFrame, cfg: Config, as_of: pd.Timestamp
) -> dict[str, Any]:
    """``drift`` (PSI of this week's features against the champion's training reference)
    and, when one exists, ``backtest`` (the newest backtest summary dated by ``as_of``)."""
    profile = getattr(churn_model, "reference_profile_", None)
    record: dict[str, Any] = {"drift": drift_report(profile, features, cfg.monitoring)}
    backtest = latest_summary(cfg, as_of)
    if backtest is not None:
        record["backtest"] = backtest
    return record
