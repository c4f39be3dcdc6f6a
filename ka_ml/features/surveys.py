"""Survey features: the latest score, its change, and how old it is."""

from __future__ import annotations

import numpy as np

from ka_ml.features import per_account
from ka_ml.features.encode import Arrays


def survey_features(s: Arrays, n: int, t: int) -> dict[str, np.ndarray]:
    """Survey features at as-of day ``t`` (``s`` holds answers before ``t``, sorted).

    Several answers on one day are averaged into that day's score, so the result does not
    depend on row order. The change compares the latest answer with the previous answer of
    the same kind (``s["kind"]``, codes of the ``kind`` column; one kind without it): a
    software vendor's accounts read "Latest survey score 2.5, down 2.5 points" where a
    renewal-intent answer of 2.5 followed an NPS of 5.
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
    kind = s.get("kind")
    return {
        "survey_score_last": last,
        "survey_score_change": (
            last - previous if kind is None else _change_within_kind(code, day, kind, score, n)
        ),
        "survey_recency_days": t - per_account.pick(g_day, ends, k > 0),
    }


def _change_within_kind(
    code: np.ndarray, day: np.ndarray, kind: np.ndarray, score: np.ndarray, n: int
) -> np.ndarray:
    """Per account: the latest day's answers of the latest answer's kind (the largest kind
    code where kinds met on that day) minus that kind's previous day; NaN without one."""
    order = np.lexsort((day, kind, code))
    c, k, d, v = code[order], kind[order], day[order], score[order]
    new = np.ones(len(c), dtype=bool)
    new[1:] = (c[1:] != c[:-1]) | (k[1:] != k[:-1]) | (d[1:] != d[:-1])
    group = np.cumsum(new) - 1
    g_score = per_account.ratio(
        np.bincount(group, weights=v).astype(np.float64), np.bincount(group).astype(np.float64)
    )
    gc, gk, gd = c[new], k[new], d[new]
    same_run = np.zeros(len(gc), dtype=bool)  # the day before, of the same account and kind
    same_run[1:] = (gc[1:] == gc[:-1]) & (gk[1:] == gk[:-1])
    run_end = np.ones(len(gc), dtype=bool)
    run_end[:-1] = ~same_run[1:]
    change = np.full(len(gc), np.nan)
    both = np.flatnonzero(run_end & same_run)
    change[both] = g_score[both] - g_score[both - 1]
    ends = np.flatnonzero(run_end)
    latest = ends[np.lexsort((gk[ends], gd[ends], gc[ends]))]  # by account, then day, kind
    last_of_account = np.ones(len(latest), dtype=bool)
    last_of_account[:-1] = gc[latest][1:] != gc[latest][:-1]
    pick = latest[last_of_account]
    out = np.full(n, np.nan)
    out[gc[pick]] = change[pick]
    return out
