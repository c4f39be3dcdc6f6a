"""Per-account aggregates over code-sorted numpy arrays (counts, last index, distinct values,
ratios, relative changes): the building blocks of every feature family."""

from __future__ import annotations

import numpy as np

from ka_ml.features.catalog import CHANGE_CLIP


def count(code: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Per-account sum of ``weights`` (or row count) as float64, length ``n``."""
    if weights is not None:
        weights = weights.astype(np.float64, copy=False)
    return np.bincount(code, weights=weights, minlength=n).astype(np.float64, copy=False)


def last_index(code: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(per-account number of rows, index of its last row) for ``code`` sorted ascending."""
    counts = np.bincount(code, minlength=n)
    ends = np.cumsum(counts) - 1
    return counts, ends


def pick(values: np.ndarray, index: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``values[index]`` as float where ``valid``, NaN elsewhere (safe on empty arrays)."""
    out = np.full(len(index), np.nan)
    if valid.any():
        out[valid] = values[index[valid]]
    return out


def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, NaN where b == 0 or either is NaN."""
    out = np.full(len(a), np.nan)
    ok = (b != 0) & ~np.isnan(b)
    out[ok] = a[ok] / b[ok]
    return out


def rel_change(a: np.ndarray, b: np.ndarray, eps: float = 1.0) -> np.ndarray:
    """(a - b) / max(|b|, eps), clipped to [-1, 5] (NaN stays NaN).

    ``eps`` keeps the ratio finite when the earlier period is empty: 0 -> 3 orders reads
    as +300% (with eps=1), and the clip caps such jumps at +500%.
    """
    with np.errstate(invalid="ignore"):
        return np.clip((a - b) / np.maximum(np.abs(b), eps), *CHANGE_CLIP)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Distinct values via one sort (``np.unique``'s hash path is slow on large int arrays)."""
    if len(values) == 0:
        return values
    s = np.sort(values)
    keep = np.ones(len(s), dtype=bool)
    keep[1:] = s[1:] != s[:-1]
    return s[keep]


DENSE_LIMIT = 20_000_000  # accounts x distinct values up to which a dense bincount is used


def distinct_per_account(code: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Number of distinct non-negative ``values`` per account."""
    keep = values >= 0
    if not keep.any():
        return np.zeros(n)
    width = int(values[keep].max()) + 1
    key = code[keep] * np.int64(width) + values[keep]
    if n * width <= DENSE_LIMIT:
        seen = np.bincount(key, minlength=n * width).reshape(n, width) > 0
        return seen.sum(axis=1).astype(np.float64)
    return count(sorted_unique(key) // width, n)
