"""Red / yellow / green health lights from the calibrated churn probability.

The rule, in order:

1. **Thresholds.** red when p >= ``red_threshold``, yellow when p >= ``yellow_threshold``,
   else green.
2. **Hysteresis.** An account keeps last week's worse light until its probability falls
   below that light's threshold by more than ``hysteresis``: a red account stays red while
   p >= red - h, a yellow (or red) one stays at least yellow while p >= yellow - h. Moving
   *up* is immediate. So an account hovering around a threshold does not flip every week,
   yet a real improvement shows within a week.
3. **Overrides** (each only raises, never lowers): an overdue account (past the p90 date of
   its previous purchase forecast with no order since; on a first run, more than
   ``overdue_ratio_fallback`` times its typical gap without an order) is at least yellow; an
   open critical complaint makes it at least yellow.

Every light carries its reason in words, and a recommended action per light and ABC tier.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ka_ml.config import HealthConfig

ORDER = {"green": 0, "yellow": 1, "red": 2}
NAMES = np.array(["green", "yellow", "red"])


def assign_lights(
    p: np.ndarray,
    prev: pd.Series | np.ndarray | None,
    cfg: HealthConfig,
    *,
    overdue: np.ndarray | None = None,
    critical_complaint: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(lights, reasons) for probabilities ``p`` given last week's lights ``prev``."""
    p = np.asarray(p, float)
    n = len(p)
    red, yellow, h = cfg.red_threshold, cfg.yellow_threshold, cfg.hysteresis
    level = np.where(p >= red, 2, np.where(p >= yellow, 1, 0))
    reason = np.array(
        [
            f"churn probability {x:.0%} ≥ red threshold {red:.0%}"
            if lv == 2
            else f"churn probability {x:.0%} ≥ yellow threshold {yellow:.0%}"
            if lv == 1
            else f"churn probability {x:.0%} below {yellow:.0%}"
            for x, lv in zip(p, level, strict=True)
        ],
        dtype=object,
    )
    if prev is not None:
        prev_level = pd.Series(np.asarray(prev, dtype=object)).map(ORDER).fillna(-1).to_numpy(int)
        keep_red = (prev_level == 2) & (level < 2) & (p >= red - h)
        keep_yellow = (prev_level >= 1) & (level < 1) & (p >= yellow - h)
        level = np.where(keep_red, 2, np.where(keep_yellow, 1, level))
        for mask, light, thr in ((keep_red, "red", red), (keep_yellow, "yellow", yellow)):
            reason[mask] = [
                f"stays {light}: churn probability {x:.0%} within the {h:.0%} hysteresis band "
                f"below the {thr:.0%} threshold"
                for x in p[mask]
            ]
    for flag, enabled, text in (
        (overdue, cfg.overdue_raises, "overdue: the expected next order has not come"),
        (critical_complaint, cfg.critical_complaint_raises, "an open critical complaint"),
    ):
        if flag is None or not enabled:
            continue
        raise_ = np.asarray(flag, bool) & (level < 1)
        level = np.where(raise_, 1, level)
        reason[raise_] = [f"raised to yellow: {text} ({r})" for r in reason[raise_]]
    del n
    return NAMES[level], reason


def recommended_actions(
    lights: np.ndarray, tiers: pd.Series | np.ndarray, cfg: HealthConfig
) -> np.ndarray:
    """The configured action for each (ABC tier, light); tier C's when the tier is unknown."""
    tiers_arr = pd.Series(np.asarray(tiers, dtype=object)).fillna("C").astype(str).to_numpy()
    out = []
    for light, tier in zip(lights, tiers_arr, strict=True):
        table = cfg.actions.get(tier) or cfg.actions.get("C") or {}
        out.append(table.get(str(light), ""))
    return np.asarray(out, dtype=object)
