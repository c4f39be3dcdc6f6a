"""TreeSHAP per distinct split pattern (``ka_ml.modeling.treeshap``) equals LightGBM's own
``pred_contrib`` on every row: numerical, categorical and missing values, rows exactly on a
split threshold, unseen categories, categories listed in another order, and the fallbacks."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ka_ml.modeling import treeshap

LEVELS = ["a", "b", "c", "d", "e"]


def _frame(n: int, seed: int, nan_share: float = 0.1) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    x[:, 3] = np.round(x[:, 3] * 3)  # a few repeated values: rows on the thresholds
    x[rng.random((n, 4)) < nan_share] = np.nan
    x[:, 2] = np.where(np.isnan(x[:, 2]), 0.0, x[:, 2])  # no missing here: LightGBM's
    cat = pd.Categorical(rng.choice(LEVELS, n), categories=LEVELS)  # missing_type None
    df = pd.DataFrame(x, columns=["f0", "f1", "f2", "f3"]).assign(kind=cat)
    logit = np.nan_to_num(x[:, 0]) - 0.5 * np.nan_to_num(x[:, 1]) + (cat.codes % 2) - 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return df, y


def _booster(df: pd.DataFrame, y: np.ndarray, rounds: int = 25) -> lgb.Booster:
    params = {
        "objective": "binary",
        "num_leaves": 7,
        "min_child_samples": 5,
        "min_data_per_group": 5,
        "cat_smooth": 1,
        "verbosity": -1,
        "seed": 0,
        "deterministic": True,
        "num_threads": 1,
    }
    return lgb.train(params, lgb.Dataset(df, y), num_boost_round=rounds)


def _on_thresholds(booster: lgb.Booster, df: pd.DataFrame) -> pd.DataFrame:
    """Copies of rows with numerical values set exactly to thresholds the trees split at."""
    splits = treeshap._splits(booster, booster.num_trees())
    rows = df.iloc[: 4 * len(splits)].copy().reset_index(drop=True)
    for i, used in enumerate(splits):
        for j, th in used.items():
            if th is not None:
                rows.iloc[(4 * i) % len(rows), j] = th[0]
                rows.iloc[(4 * i + 1) % len(rows), j] = th[-1]
    return rows


@pytest.fixture(autouse=True)
def _always_per_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take the per-pattern path at any size (the tests' frames are small)."""
    monkeypatch.setattr(treeshap, "MIN_ROWS_PER_TREE", 0)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), nan_share=st.sampled_from([0.0, 0.1, 0.4]))
def test_equals_lightgbm_pred_contrib_on_every_row(seed: int, nan_share: float) -> None:
    df, y = _frame(600, seed, nan_share)
    booster = _booster(df, y)
    X = pd.concat([df, _on_thresholds(booster, df)], ignore_index=True)
    for num_iteration in (booster.num_trees(), 7):
        ours = treeshap.tree_contributions(booster, X, num_iteration)
        theirs = booster.predict(X, pred_contrib=True, num_iteration=num_iteration)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
        margin = booster.predict(X, raw_score=True, num_iteration=num_iteration)
        np.testing.assert_allclose(ours.sum(axis=1), margin, rtol=0, atol=1e-10)


def test_unseen_and_reordered_categories_read_as_lightgbm_reads_them() -> None:
    df, y = _frame(800, 3)
    booster = _booster(df, y)
    X = df.copy()
    X["kind"] = pd.Categorical(
        np.where(np.arange(len(X)) % 7 == 0, "z", X["kind"].astype(str)),
        categories=["z", *LEVELS[::-1]],  # another order, and a level never trained on
    )
    ours = treeshap.tree_contributions(booster, X, booster.num_trees())
    theirs = booster.predict(X, pred_contrib=True)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def test_rows_share_patterns_so_the_work_shrinks() -> None:
    df, y = _frame(2000, 5)
    booster = _booster(df, y)
    splits = treeshap._splits(booster, booster.num_trees())
    matrix = treeshap._matrix(df, booster)
    assert matrix is not None
    bins = treeshap._global_bins(matrix, splits)
    for used in splits:
        first, inverse = treeshap._patterns(used, bins, len(df))
        assert len(first) < len(df) / 4
        # every row's pattern representative is on the same side of every split
        for j, th in used.items():
            x = matrix[:, j]
            rep = x[first][inverse]
            same_missing = np.isnan(x) == np.isnan(rep)
            assert same_missing.all()
            if th is None:
                np.testing.assert_array_equal(np.nan_to_num(x, nan=-1), np.nan_to_num(rep, nan=-1))
            else:
                for t in th:
                    ok = ~np.isnan(x)
                    np.testing.assert_array_equal(x[ok] <= t, rep[ok] <= t)


def test_frames_it_cannot_read_exactly_take_one_plain_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    df, y = _frame(500, 9)
    booster = _booster(df, y)
    calls: list[dict[str, object]] = []
    predict = booster.predict

    def spy(data: object, **kw: object) -> object:
        calls.append(kw)
        return predict(data, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(booster, "predict", spy)
    as_f32 = df.astype({c: "float32" for c in ["f0", "f1", "f2", "f3"]}).drop(columns="kind")
    assert treeshap._matrix(as_f32, booster) is None  # LightGBM would read it as float32
    flags = df.assign(f3=df["f3"] > 0)  # a bool column: read by LightGBM's own rules
    ours = treeshap.tree_contributions(booster, flags, booster.num_trees())
    assert len(calls) == 1 and "start_iteration" not in calls[0]
    theirs = predict(flags, pred_contrib=True)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
