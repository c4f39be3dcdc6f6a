"""The training budget at large portfolios (issue 17): row caps per fit, tuning's early
stopping and models reused by the backtest, trials sharing their rows' Datasets. None may
change a model where it does not apply."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import small_config
from hypothesis import given, settings
from hypothesis import strategies as st

from ka_ml.config import Config
from ka_ml.jobs.train import Prepared, prepare
from ka_ml.modeling.churn import ChurnModel
from ka_ml.modeling.lightgbm_params import default_params
from ka_ml.modeling.timing import TimingModel
from ka_ml.modeling.tuning import params_key
from ka_ml.training import timing as timing_module
from ka_ml.training.churn import Rounds, backtest_churn, fit_churn_model, tune_churn
from ka_ml.training.folds import account_groups, capped, sample_accounts, sampling_note
from ka_ml.training.timing import (
    backtest_timing,
    count_timing_rows,
    fit_timing_model,
    timing_probe_data,
    timing_rows,
)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), cap=st.one_of(st.none(), st.integers(1, 300)), seed=st.integers(0, 5))
def test_capped_keeps_at_most_the_cap_in_order_and_is_reproducible(
    n: int, cap: int | None, seed: int
) -> None:
    rows = pd.DataFrame({"x": np.arange(n)}, index=np.arange(n) * 3 + 1)
    out = capped(rows, cap, seed)
    if cap is None or n <= cap:
        assert out is rows  # untouched: the same models as before the cap existed
        return
    assert len(out) == cap
    assert out.index.is_monotonic_increasing and out.index.is_unique
    assert set(out["x"]) <= set(rows["x"])
    assert out.equals(capped(rows, cap, seed))


def test_capped_draws_differ_between_seeds() -> None:
    rows = pd.DataFrame({"x": np.arange(1000)})
    assert not capped(rows, 100, 1).equals(capped(rows, 100, 2))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, demo_history: object) -> tuple:
    cfg = small_config(Path(tmp_path_factory.mktemp("budget")))
    as_of = demo_history.default_as_of  # type: ignore[attr-defined]
    return cfg, prepare(demo_history, cfg, as_of, lambda s: None, "local")  # type: ignore[arg-type]


def _with_tuning(cfg: Config, **over: object) -> Config:
    return cfg.model_copy(update={"tuning": cfg.tuning.model_copy(update=over)})


def test_the_backtest_reuses_tunings_early_stopping_and_gets_the_same_models(
    prepared: tuple[Config, Prepared], demo_history: object, tmp_path: Path, mlflow_state: None
) -> None:
    cfg, pre = prepared
    cfg = _with_tuning(cfg, n_trials=1)  # trial 0: the defaults, on every origin
    rounds: Rounds = {}
    # trials are nested runs: a private store and experiment (mlflow_state restores both)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.set_experiment("training-budget")
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        res = tune_churn(pre.folds, pre.feats, cfg, rounds=rounds)
    n = len(pre.folds.split.origins)
    assert {(k, params_key(res.best_params)) for k in range(n)} <= rounds.keys()
    reused = backtest_churn(demo_history, pre.folds, pre.feats, res.best_params, cfg, rounds)  # type: ignore[arg-type]
    fitted = backtest_churn(demo_history, pre.folds, pre.feats, res.best_params, cfg)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(reused, fitted, check_exact=True)
    # a wrong number of trees would give another model: the reuse is what makes them equal
    wrong = {key: r + 7 for key, r in rounds.items()}
    other = backtest_churn(demo_history, pre.folds, pre.feats, res.best_params, cfg, wrong)  # type: ignore[arg-type]
    assert not np.allclose(other["margin_lightgbm"], fitted["margin_lightgbm"])


def test_a_churn_fit_above_the_cap_is_the_fit_of_the_sample(
    prepared: tuple[Config, Prepared],
) -> None:
    cfg, pre = prepared
    rows = pre.folds.labelled
    cap = len(rows) // 3
    params = default_params()
    small = fit_churn_model(rows, pre.feats, params, _with_tuning(cfg, max_churn_rows=cap))
    sample = capped(rows, cap, cfg.seed)
    same = fit_churn_model(sample, pre.feats, params, _with_tuning(cfg, max_churn_rows=None))
    full = fit_churn_model(rows, pre.feats, params, _with_tuning(cfg, max_churn_rows=None))
    X = rows[pre.feats]
    np.testing.assert_array_equal(small.margin(X), same.margin(X))
    assert not np.allclose(small.margin(X), full.margin(X))


def test_a_timing_fit_above_the_cap_is_the_fit_of_the_sample(
    prepared: tuple[Config, Prepared],
) -> None:
    cfg, pre = prepared
    as_of = pre.ts["as_of"].max()
    rows = timing_rows(pre.ts, as_of)
    assert count_timing_rows(pre.ts, as_of) == len(rows) > 0
    cap = len(rows) // 2
    params = default_params()
    capped_cfg = _with_tuning(cfg, max_timing_rows=cap)
    a = fit_timing_model(rows, as_of, pre.feats, params, capped_cfg, refit=False)
    free = _with_tuning(cfg, max_timing_rows=None)
    b = fit_timing_model(capped(rows, cap, cfg.seed), as_of, pre.feats, params, free, refit=False)
    X = rows[pre.feats].reset_index(drop=True)
    np.testing.assert_array_equal(a.cdf(X), b.cdf(X))


def test_the_run_says_when_its_fits_are_sampled(prepared: tuple[Config, Prepared]) -> None:
    cfg, pre = prepared
    n = len(pre.folds.labelled)
    assert pre.sampling == ""  # the demo's rows are far below the defaults
    note = sampling_note(pre.folds, 5000, _with_tuning(cfg, max_churn_rows=n // 2))
    assert "tuning.max_churn_rows" in note and f"{n:,}" in note
    assert "max_timing_rows" not in note
    note = sampling_note(pre.folds, 5000, _with_tuning(cfg, max_timing_rows=1000))
    assert note.startswith("purchase-timing fits at most 1,000") and "20% of 5,000" in note


def _ids(h: object, table: str) -> set[str]:
    df = getattr(h, table)
    return set() if df is None else set(df["account_id"])


def test_an_account_sample_keeps_whole_histories_of_a_reproducible_subset(
    demo_history: object,
) -> None:
    known = demo_history.before(demo_history.default_as_of)  # type: ignore[attr-defined]
    # every account with an order or a contract (a running contract alone makes a row)
    customers = pd.unique(pd.concat([known.orders["account_id"], known.contracts["account_id"]]))
    assert sample_accounts(known, None, 0).history is known
    assert sample_accounts(known, len(customers), 0).history is known  # at the cap: untouched
    cap = len(customers) // 4
    s = sample_accounts(known, cap, 3)
    assert (s.customers, s.kept) == (len(customers), cap)
    kept = _ids(s.history, "orders") | _ids(s.history, "contracts")
    assert len(kept) == cap and kept <= set(customers)
    for table in ("accounts", "usage", "tickets", "surveys"):
        assert _ids(s.history, table) <= kept  # no row of an account left out
    # every row of a kept account, in the loader's order
    whole = known.orders[known.orders["account_id"].isin(kept)]
    pd.testing.assert_frame_equal(s.history.orders, whole)
    assert sample_accounts(known, cap, 3).history.orders.equals(s.history.orders)
    assert _ids(sample_accounts(known, cap, 4).history, "orders") != _ids(s.history, "orders")


@settings(max_examples=30, deadline=None)
@given(
    owners=st.lists(st.integers(0, 40), min_size=1, max_size=120),
    cap=st.integers(1, 50),
    seed=st.integers(0, 3),
)
def test_an_account_sample_holds_min_of_cap_and_customers(
    owners: list[int], cap: int, seed: int
) -> None:
    from ka_ml.data.history import History

    orders = pd.DataFrame(
        {
            "account_id": [f"A{i:03d}" for i in owners],
            "order_date": pd.Timestamp("2025-01-01") + pd.to_timedelta(range(len(owners)), "D"),
        }
    )
    accounts = pd.DataFrame({"account_id": [f"A{i:03d}" for i in range(45)]})
    s = sample_accounts(History(orders=orders, accounts=accounts), cap, seed)
    n = len(set(owners))
    assert s.customers == n and s.kept == min(cap, n) == len(_ids(s.history, "orders"))
    assert len(s.history.orders) == orders["account_id"].isin(_ids(s.history, "orders")).sum()


def test_the_run_says_when_it_learns_from_a_sample_of_accounts(
    prepared: tuple[Config, Prepared], demo_history: object
) -> None:
    cfg, pre = prepared
    assert pre.sample.kept == pre.sample.customers  # the demo is far below the default
    assert pre.sample.history is pre.known
    sample = sample_accounts(pre.known, 100, cfg.seed)
    note = sampling_note(pre.folds, 5000, cfg, sample)
    assert note.startswith(
        f"training learns from a seeded sample of 100 of the {sample.customers:,}"
    )
    assert "tuning.max_accounts" in note


def test_training_on_an_account_sample_builds_snapshots_of_those_accounts_only(
    tmp_path: Path, demo_history: object
) -> None:
    cfg = small_config(tmp_path, tuning={"n_trials": 1, "max_accounts": 150})
    as_of = demo_history.default_as_of  # type: ignore[attr-defined]
    pre = prepare(demo_history, cfg, as_of, lambda s: None, "local")  # type: ignore[arg-type]
    assert pre.sample.kept == 150 < pre.sample.customers
    held = _ids(pre.sample.history, "orders") | _ids(pre.sample.history, "contracts")
    assert set(pre.ts["account_id"]) <= held
    assert set(pre.known.orders["account_id"]) == set(
        demo_history.before(as_of).orders["account_id"]  # type: ignore[attr-defined]
    )
    assert "tuning.max_accounts" in pre.sampling
    # the portfolio features are the whole portfolio's, as the scorer reads them: every
    # feature of a sampled account is what the full history gives it
    from ka_ml.features.snapshots import build_training_set

    full = build_training_set(demo_history, cfg, as_of).set_index(["account_id", "as_of"])  # type: ignore[arg-type]
    got = pre.ts.set_index(["account_id", "as_of"])
    want = full.loc[got.index, got.columns]
    for col in ("revenue_share", "dependency_index", "abc_tier"):
        pd.testing.assert_series_equal(got[col], want[col])
    assert got["revenue_share"].sum() < 0.5 * got.groupby(level="as_of").ngroups
    pd.testing.assert_frame_equal(got, want)


def test_row_caps_are_validated() -> None:
    with pytest.raises(ValueError, match="max_churn_rows"):
        Config.model_validate({"tuning": {"max_churn_rows": 10}})
    with pytest.raises(ValueError, match="max_accounts"):
        Config.model_validate({"tuning": {"max_accounts": 5}})
    assert (
        Config.model_validate({"tuning": {"max_timing_rows": None}}).tuning.max_timing_rows is None
    )


# -- tuning trials share their rows' Datasets (issue 17: "tuning folds reuse Datasets") -----
OTHER_PARAMS = {
    "learning_rate": 0.12,
    "num_leaves": 7,
    "max_depth": 3,
    "min_child_samples": 150,  # a leaf-size change: binning must not depend on it
    "feature_fraction": 0.6,
    "bagging_fraction": 0.7,
    "bagging_freq": 1,
    "lambda_l2": 0.01,
}


def _same_booster(a: object, b: object) -> bool:
    return a.booster_.model_to_string() == b.booster_.model_to_string()  # type: ignore[attr-defined]


def test_trials_on_shared_churn_probe_data_fit_the_boosters_of_fresh_fits(
    prepared: tuple[Config, Prepared],
) -> None:
    cfg, pre = prepared
    rows = pre.folds.train_rows(pre.folds.split.origins[0])
    X, y, g = rows[pre.feats], rows["churn"].to_numpy(), account_groups(rows)
    data = ChurnModel(params=default_params(), random_state=cfg.seed).probe_data(X, y, g)
    fits = []
    for params in (OTHER_PARAMS, default_params(), OTHER_PARAMS):  # one Dataset, in turn
        shared = ChurnModel(params=params, random_state=cfg.seed, refit=False).fit_probe(data)
        fresh = ChurnModel(params=params, random_state=cfg.seed, refit=False).fit(X, y, g)
        assert _same_booster(shared, fresh)
        assert shared.n_features_in_ == fresh.n_features_in_ and shared.features_ == fresh.features_
        fits.append(shared)
    assert not _same_booster(fits[0], fits[1])  # the parameters do reach the booster


def test_shared_probe_data_is_binned_with_the_fits_seed_above_lightgbms_bin_sample() -> None:
    # LightGBM takes bin edges from a seeded sample of 200,000 rows: a Dataset binned with
    # other settings than the fit's would give other trees only above that size
    rng = np.random.default_rng(3)
    n = 210_000
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.exponential(size=n)})
    y = (X["a"] + np.log1p(X["b"]) + rng.normal(size=n) > 1).astype(int).to_numpy()
    g = rng.integers(0, 20_000, n).astype(str)
    params = {**default_params(), "learning_rate": 0.3}
    data = ChurnModel(params=params, random_state=7).probe_data(X, y, g)
    shared = ChurnModel(params=params, random_state=7, refit=False).fit_probe(data)
    fresh = ChurnModel(params=params, random_state=7, refit=False).fit(X, y, g)
    assert _same_booster(shared, fresh)


def test_timing_trials_on_shared_hazard_rows_fit_the_models_of_fresh_fits(
    prepared: tuple[Config, Prepared],
) -> None:
    cfg, pre = prepared
    latest = pre.folds.split.origins[0].date
    rows = timing_rows(pre.ts, latest)
    data = timing_probe_data(rows, latest, pre.feats, default_params(), cfg)
    X = pre.folds.test_rows(pre.folds.split.origins[0])[pre.feats]
    for params in (OTHER_PARAMS, default_params()):
        shared = TimingModel(edges=data.edges, params=params, random_state=cfg.seed).fit_probe(data)
        fresh = fit_timing_model(rows, latest, pre.feats, params, cfg, refit=False)
        assert _same_booster(shared, fresh)
        np.testing.assert_array_equal(shared.cdf(X), fresh.cdf(X))


def test_the_timing_backtest_reuses_the_tuned_model_of_the_latest_origin(
    prepared: tuple[Config, Prepared],
) -> None:
    cfg, pre = prepared
    latest = pre.folds.split.origins[0].date
    data = timing_probe_data(timing_rows(pre.ts, latest), latest, pre.feats, OTHER_PARAMS, cfg)
    tuned = TimingModel(edges=data.edges, params=OTHER_PARAMS, random_state=cfg.seed)
    reused = backtest_timing(pre.ts, pre.folds, pre.feats, OTHER_PARAMS, cfg, tuned.fit_probe(data))
    fitted = backtest_timing(pre.ts, pre.folds, pre.feats, OTHER_PARAMS, cfg)
    cols = [c for c in fitted.columns if c != "cdf"]
    pd.testing.assert_frame_equal(reused[cols], fitted[cols], check_exact=True)
    np.testing.assert_array_equal(np.stack(list(reused["cdf"])), np.stack(list(fitted["cdf"])))
    # a model of other parameters there changes the frame: the reuse is what makes them equal
    other = TimingModel(edges=data.edges, params=default_params(), random_state=cfg.seed)
    wrong = backtest_timing(pre.ts, pre.folds, pre.feats, OTHER_PARAMS, cfg, other.fit_probe(data))
    assert not np.allclose(wrong["p_purchase_30d"], fitted["p_purchase_30d"], equal_nan=True)


@pytest.mark.parametrize("n_trials", [4, 8])  # 4: no timing tuning (a quarter, below two)
def test_fit_timing_fits_the_latest_origin_once_when_tuning_fitted_it(
    prepared: tuple[Config, Prepared],
    tmp_path: Path,
    mlflow_state: None,
    monkeypatch: pytest.MonkeyPatch,
    n_trials: int,
) -> None:
    cfg, pre = prepared
    cfg = _with_tuning(cfg, n_trials=n_trials)
    calls: list[pd.Timestamp] = []
    real = timing_module.fit_timing_model

    def counted(rows: pd.DataFrame, boundary: pd.Timestamp, *a: object, **k: object) -> object:
        calls.append(pd.Timestamp(boundary))
        return real(rows, boundary, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(timing_module, "fit_timing_model", counted)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.set_experiment("timing-reuse")
    as_of = pre.ts["as_of"].max()
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        _, res, _ = timing_module.fit_timing(pre.ts, pre.folds, pre.feats, as_of, cfg)
    origins = [o.date for o in pre.folds.split.origins]
    tuned = not res.trials.empty
    assert tuned == (n_trials == 8)
    # the backtest fits every origin but the latest when tuning fitted it there; then the final
    assert calls == [*(origins[1:] if tuned else origins), as_of]


def test_churn_tuning_bins_each_origins_rows_once_for_all_its_trials(
    prepared: tuple[Config, Prepared],
    tmp_path: Path,
    mlflow_state: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg, pre = prepared
    built: list[int] = []
    real = ChurnModel.probe_data

    def counted(self: ChurnModel, X: pd.DataFrame, *a: object) -> object:
        built.append(len(X))
        return real(self, X, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(ChurnModel, "probe_data", counted)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.set_experiment("churn-reuse")
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        res = tune_churn(pre.folds, pre.feats, _with_tuning(cfg, n_trials=3))
    assert len(res.trials) == 3
    origins = pre.folds.split.origins
    assert built == [len(pre.folds.train_rows(o)) for o in origins]  # once each, in order
