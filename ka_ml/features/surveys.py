"""Survey features: the latest score, its change, and how old it is."""

from __future__ import annotations

import numpy as np

from ka_ml.features import per_account
from ka_ml.features.encode import Arrays


def survey_features(s: Arrays, n: int, t: int) -> dict[str, np.ndarray]:
    """Survey features at as-of day ``t`` (``s`` holds answers before ``t``, sorted).

    Several answers on one day are averaged into that day's score, so the result does not
    depend on row order.
    """
    code, day, score = s["code"], s["day"], s["score"]
    new_day = np.ones(len(code), dtype=bool)
    new_day[1:] = (code[1:] != code[:-1]) | (day[1:] != day[:-1])
    group = np.cumsum(new_day) - 1
    g_score = per_account.ratio(
        np.bincount(group, weights=score).astype(np.float64),
        np.bincount(group).astype(np.float64),
    )
    g_code, g_day = code[new_day], day[new_day]
    k, ends = per_account.last_index(g_code, n)
    last = per_account.pick(g_score, ends, k > 0)
    previous = per_account.pick(g_score, ends - 1, k > 1)
    return {
        "survey_score_last": last,
        "survey_score_change": last - previous,
        "survey_recency_days": t - per_account.pick(g_day, ends, k > 0),
    }
