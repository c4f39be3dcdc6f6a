"""Survey features: the latest score, its change, and how old it is."""

from __future__ import annotations

import numpy as np

from ka_ml.features import _np
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
    g_score = _np.ratio(
        np.bincount(group, weights=score).astype(np.float64),
        np.bincount(group).astype(np.float64),
    )
    g_code, g_day = code[new_day], day[new_day]
    k, ends = _np.last_index(g_code, n)
    last = _np.pick(g_score, ends, k > 0)
    previous = _np.pick(g_score, ends - 1, k > 1)
    return {
        "survey_score_last": last,
        "survey_score_change": last - previous,
        "survey_recency_days": t - _np.pick(g_day, ends, k > 0),
    }
