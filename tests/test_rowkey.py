"""row_key orders and identifies rows exactly as pandas' sort_values / duplicated do.

Hypothesis draws small frames of every column kind validation produces (Arrow-backed text,
datetime64[us], float64, nullable boolean), with missing values, repeats, ties on the
leading columns and non-ASCII text, and compares the key's order and repeats with pandas'
own on the same frame: the fast path must be the same function, not an approximation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ka_ml.data.rowkey import dense_codes, repeated, row_key, sort_order

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.one_of(st.none(), st.sampled_from(["a", "b", "B", "ä", "a b", "Z", "10", "9", "€", ""]))
day = st.one_of(
    st.none(), st.integers(0, 6).map(lambda d: pd.Timestamp("2024-01-01") + pd.Timedelta(days=d))
)
number = st.one_of(st.none(), st.sampled_from([-1.5, -0.0, 0.0, 0.25, 2.0, 1e12]))
flag = st.one_of(st.none(), st.booleans())
row = st.tuples(text, day, number, flag, text)


def frame_of(rows: list[tuple[object, ...]]) -> pd.DataFrame:
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 5
    return pd.DataFrame(
        {
            "id": pd.Series(cols[0], dtype="str"),
            "when": pd.Series(cols[1], dtype="datetime64[us]"),
            "amount": pd.Series(cols[2], dtype="float64"),
            "ok": pd.Series(cols[3], dtype="boolean"),
            "note": pd.Series(cols[4], dtype="str"),
        }
    )


@SETTINGS
@given(st.lists(row, max_size=40), st.permutations(["id", "when", "amount", "ok", "note"]))
def test_key_orders_and_repeats_like_pandas(
    rows: list[tuple[object, ...]], cols: list[str]
) -> None:
    frame = frame_of(rows)
    key = row_key(frame, cols)
    expected = frame.sort_values(cols, na_position="last", kind="stable").index.to_numpy()
    np.testing.assert_array_equal(sort_order(key), expected)
    np.testing.assert_array_equal(repeated(key), frame[cols].duplicated(keep="first").to_numpy())


@SETTINGS
@given(st.lists(row, min_size=1, max_size=40))
def test_equal_keys_mean_equal_rows(rows: list[tuple[object, ...]]) -> None:
    frame = frame_of(rows)
    cols = list(frame.columns)
    key = row_key(frame, cols)
    groups = pd.Series([repr(tuple(map(_plain, r))) for r in frame.itertuples(index=False)])
    # same key <=> same row (missing equal to missing, -0.0 equal to 0.0)
    assert pd.Series(key).groupby(groups.to_numpy()).nunique().eq(1).all()
    assert groups.groupby(key).nunique().eq(1).all()


def _plain(v: object) -> object:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
        return None
    return v + 0.0 if isinstance(v, float) else v


def test_missing_sorts_last_in_every_kind() -> None:
    frame = frame_of(
        [(None, None, None, None, None), ("a", pd.Timestamp("2024-01-02"), 1.0, True, "x")]
    )
    for col in frame.columns:
        codes, radix = dense_codes(frame[col])
        assert codes.tolist() == [1, 0] and radix == 2, col


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_frames(n: int) -> None:
    frame = frame_of([("a", None, 1.0, None, "x")] * n)
    key = row_key(frame, list(frame.columns))
    assert len(key) == n and sort_order(key).tolist() == list(range(n))
    assert not repeated(key).any()


def test_many_columns_do_not_overflow() -> None:
    # 30 columns of 1,000 distinct values: the mixed key must re-densify, not wrap around
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"c{i}": rng.integers(0, 1000, 2000).astype(float) for i in range(30)})
    frame = pd.concat([frame, frame.iloc[:50]], ignore_index=True)
    frame.iloc[:, :25] = 1.0  # ties on the first 25 columns: the last five decide
    key = row_key(frame, list(frame.columns))
    expected = frame.sort_values(list(frame.columns), kind="stable").index.to_numpy()
    np.testing.assert_array_equal(sort_order(key), expected)
    np.testing.assert_array_equal(repeated(key), frame.duplicated().to_numpy())


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(0, 5_000),
    distinct=st.integers(1, 6_000),
    presorted=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_sort_order_is_the_stable_sort_on_arrays_big_enough_for_introsort(
    n: int, distinct: int, presorted: bool, seed: int
) -> None:
    """sort_order uses NumPy's unstable sort and re-sorts tied rows: the same positions as
    the stable sort, on arrays past the small sizes where any sort is stable, with few and
    many ties, and on keys that arrive sorted but for a few rows."""
    rng = np.random.default_rng(seed)
    key = rng.integers(0, distinct, n).astype(np.int64)
    if presorted and n > 2:
        key.sort()
        swap = rng.integers(0, n, 2)
        key[swap] = key[swap[::-1]]
    np.testing.assert_array_equal(sort_order(key), np.argsort(key, kind="stable"))
    first = np.zeros(n, dtype=bool)
    first[np.unique(key, return_index=True)[1]] = True
    np.testing.assert_array_equal(repeated(key), ~first)
