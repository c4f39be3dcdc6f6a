"""The pre-cutoff ablation (``ka_ml.bench.ablation``).

The date arithmetic (the old split's window, the origins every cadence shares) and the
measuring are checked on frames typed inline; the whole run goes once over 600 sampled
CDNOW customers with 2 Optuna trials (``slow``: about a minute of CPU), checking the
table's rows and that nothing at or after a cutoff was read.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ka_ml.bench import ablation as A
from ka_ml.bench import cdnow
from ka_ml.config import load_config

REPO = Path(__file__).resolve().parents[1]
SAMPLE = 600


def _weekly(first: str, n: int, every: int = 7) -> list[pd.Timestamp]:
    return list(pd.date_range(first, periods=n, freq=f"{every}D"))


def test_purged_training_dates_have_their_label_window_closed_by_the_origin() -> None:
    dates = _weekly("1997-01-01", 20)
    origin = dates[-1]  # 1997-05-14
    train = A.purged_train(dates, origin, 90)
    assert train and all(d + pd.Timedelta(days=90) <= origin for d in train)
    assert dates[len(train)] + pd.Timedelta(days=90) > origin  # the next one is not


def test_the_old_window_ends_before_the_two_calibration_snapshots_and_their_purge() -> None:
    dates = _weekly("1997-01-01", 40)  # to 1997-09-30
    origin = dates[-1]
    old = A.old_train_dates(dates, origin, 90)
    cal = list(A.purged_train(dates, origin, 90))[-2:]
    assert old and max(old) + pd.Timedelta(days=90) <= cal[0]
    # roughly 2 horizons + a cadence step before the origin, far behind the new window
    assert (origin - max(old)).days >= 2 * 90 + 7
    assert len(old) < len(A.purged_train(dates, origin, 90))
    # half a year of weekly snapshots (CDNOW's first cutoff): nothing left for training
    assert A.old_train_dates(dates[:27], dates[26], 90) == ()
    assert A.old_train_dates(dates[:30], dates[29], 90) == tuple(dates[:3])


def test_shared_origins_are_dates_every_cadence_has_with_training_dates_in_each() -> None:
    end = pd.Timestamp("1997-12-31")
    labelled = {
        c: [end - pd.Timedelta(days=c * k) for k in range(60) if c * k >= 90 and c * k <= 330]
        for c in (7, 14, 28)
    }
    shared = A.shared_origin_dates(labelled, 90, 3)
    assert shared == sorted(shared, reverse=True) and len(shared) == 3
    for t in shared:
        assert (end - t).days % 28 == 0
        assert all(t in v and A.purged_train(v, t, 90) for v in labelled.values())


def test_scores_are_per_origin_and_deltas_on_the_rows_both_predict() -> None:
    d1, d2 = pd.Timestamp("1997-06-01"), pd.Timestamp("1997-06-08")
    frame = pd.DataFrame(
        {
            "as_of": [d1] * 4 + [d2] * 4,
            "churn": [0.0, 0.0, 1.0, 1.0] * 2,
        }
    )
    perfect = np.array([0.1, 0.2, 0.8, 0.9] * 2)
    s = A.score(frame, perfect)
    assert s.rows == 8 and s.roc_auc == 1.0 and s.latest_origin == d2
    assert [d for d, _ in s.per_origin] == [d2, d1]
    flipped = perfect[::-1].copy()
    flipped[0] = np.nan  # a row one predictor leaves open is left out of the delta
    d_auc, d_brier = A.delta(frame, flipped, perfect)
    assert d_auc < 0 and d_brier > 0
    assert A.score(frame, flipped).rows == 7


def test_a_verdict_names_what_held_a_gain_back() -> None:
    """An alternative gaining the tuning threshold of pooled ROC AUC at a worse Brier score
    is not a candidate, and its row says why (it read "within ±0.002" of a +0.004 gain)."""
    frame = pd.DataFrame({"as_of": [pd.Timestamp("1997-06-01")] * 6, "churn": [0, 0, 0, 1, 1, 1.0]})
    ref = np.array([0.1, 0.2, 0.7, 0.3, 0.8, 0.9])  # one pair out of order, well separated
    ranked = np.array([0.50, 0.51, 0.52, 0.53, 0.54, 0.55])  # every pair in order, all ~0.5
    d_auc, d_brier = A.delta(frame, ranked, ref)
    assert d_auc > 0.002 and d_brier > 0
    said = A.verdict(frame, ranked, ref, "7 days", "28 days")
    assert said == "kept: 7 days (28 days gains pooled ROC AUC at a worse Brier score)"
    assert A.verdict(frame, ref, ranked, "7 days", "28 days").startswith(
        "kept: 7 days (28 days loses"
    )
    assert A.verdict(frame, ref, ref, "7 days", "28 days").endswith("within ±0.002)")


def _rfm_rows(date: str, n: int, seed: int) -> pd.DataFrame:
    """Customers drawn from the BG/NBD process itself (so its fit is well defined)."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(30, 300, n).astype(float)
    rate, drop = rng.gamma(0.8, 1 / 20, n), rng.beta(1.0, 3.0, n)
    repeat, span = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = rng.exponential(1 / rate[i])
        while t < tenure[i]:
            repeat[i], span[i] = repeat[i] + 1, np.floor(t)
            if rng.random() < drop[i]:
                break
            t += rng.exponential(1 / rate[i])
    return pd.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(n)],
            "as_of": pd.Timestamp(date),
            "repeat_orders": repeat,
            "active_span_days": span,
            "tenure_days": tenure,
        }
    )


def test_bgnbd_features_of_a_date_depend_only_on_that_dates_rows() -> None:
    early, late = _rfm_rows("1997-03-01", 300, 1), _rfm_rows("1997-06-01", 300, 2)
    alone = A.with_bgnbd_features(early, 90)
    both = A.with_bgnbd_features(pd.concat([early, late], ignore_index=True), 90)
    cols = list(A.BGNBD_FEATURES)
    np.testing.assert_allclose(both[cols].iloc[:300].to_numpy(), alone[cols].to_numpy())
    assert not np.allclose(both[cols].iloc[300:].to_numpy(), alone[cols].to_numpy())
    p_alive, p_none = alone["bgnbd_p_alive"], alone["bgnbd_p_no_order"]
    assert ((p_alive > 0) & (p_alive <= 1)).all() and ((p_none > 0) & (p_none < 1)).all()
    assert (alone["bgnbd_expected_orders"] > 0).all()
    # no repeat order: BG/NBD cannot have seen the drop-out, so P(alive) is 1
    assert (p_alive[alone["repeat_orders"] == 0] == 1).all()
    # a row without an order on record gets no BG/NBD value
    gone = early.assign(tenure_days=early["tenure_days"].where(early.index != 0))
    assert A.with_bgnbd_features(gone, 90)[cols].iloc[0].isna().all()


def test_monotone_constraints_follow_the_feature_order() -> None:
    feats = ["orders_90d", "industry", "recency_days", "spend_90d", "orders_lifetime"]
    assert A.monotone(feats, A.RISK_RISES, A.RISK_FALLS_ORDERS) == [-1, 0, 1, 0, -1]
    both = A.RISK_FALLS_ORDERS + A.RISK_FALLS_SPEND
    assert A.monotone(feats, A.RISK_RISES, both) == [-1, 0, 1, -1, -1]
    # every constrained name is a catalog feature (a renamed feature would silently go free)
    from ka_ml.features import catalog

    for name in (*A.RISK_RISES, *both):
        assert catalog.get(name).name == name


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("ablation") / "ablation.md"
    A.main(["--sample", str(SAMPLE), "--trials", "2", "--out", str(out)])
    return out.read_text(encoding="utf-8")


def _table(text: str) -> pd.DataFrame:
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    cells = [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]
    return pd.DataFrame(cells[1:], columns=cells[0])


@pytest.mark.slow
def test_the_table_has_every_block_at_both_cutoffs_with_a_decision(results: str) -> None:
    table = _table(results)
    assert set(table["cutoff"]) == {str(c.date()) for c in cdnow.CUTOFFS}
    # the two configs build the same CDNOW training sets: said once, run once
    assert "build identical training sets" in results
    assert set(table["config"]) == {"`ka_ml.yaml`, `cdnow.yaml`"}
    for _, rows in table.groupby("cutoff"):
        counts = rows["ablation"].value_counts().to_dict()
        assert counts == {
            "0 chosen": 1,
            "1 family": 6,
            "2 parameters": 2,
            "3 calibration": 5,
            "4 final fit": 2,
            "5 cadence": 3,
            "6 features": 4,
            "7 constraints": 3,
        }
        family = rows[rows["ablation"] == "1 family"]
        assert family["decision"].str.startswith("chosen:").sum() == 1
        assert set(family["what changed"]) >= {"BG/NBD", "RFM logistic regression"}
        assert (rows["decision"].str.len() > 0).all()
        assert (rows["Δ AUC"] == "ref").sum() == 8  # one reference per block and row 0


@pytest.mark.slow
def test_no_row_reads_data_at_or_after_its_cutoff(results: str) -> None:
    table = _table(results)
    for _, r in table[table["ROC AUC per origin"] != "—"].iterrows():
        cutoff = pd.Timestamp(r["cutoff"])
        for md in re.findall(r"(\d\d-\d\d) ", r["ROC AUC per origin"] + " "):
            origin = pd.Timestamp(f"1997-{md}")
            assert origin + pd.Timedelta(days=90) <= cutoff, (r["what changed"], origin)
    facts = re.findall(
        r"latest order read: (\S+); latest label window used ends (\S+) \(the cutoff: (\S+)\)",
        results,
    )
    assert len(facts) == len(cdnow.CUTOFFS)
    for last_order, label_end, cutoff in facts:
        assert pd.Timestamp(last_order) < pd.Timestamp(cutoff)
        assert pd.Timestamp(label_end) <= pd.Timestamp(cutoff)


@pytest.mark.slow
def test_reported_figures_are_the_ones_train_chose_on(tmp_path: Path) -> None:
    """Calibration rows reproduce ``Calibrator.choose``'s forward-judged Brier; the defaults'
    row is close to Optuna's trial 0 (the tuning objective is the mean origin ROC AUC)."""
    cfg = load_config(REPO / "configs" / "cdnow.yaml")
    raw = cdnow.sample_customers(cdnow.read_cdnow(), SAMPLE, cfg.seed)
    history = cdnow.load_history(raw, tmp_path / "data", cfg)
    cutoff = cdnow.CUTOFFS[0]
    setup = A.prepare(history, cfg, cutoff)
    assert setup.history.orders["order_date"].max() < cutoff
    assert (setup.folds.labelled["as_of"] + pd.Timedelta(days=90)).max() <= cutoff
    with A.scratch_store(cfg):
        ch = A.choose(setup, 2, lambda s: None)
    cal = {r.change.split(",")[0]: r for r in A.calibration_rows(ch)}
    for method, label in A.CALIBRATION_NAMES.items():
        assert cal[label].score is not None
        assert cal[label].score.brier == pytest.approx(ch.calibrator.cv_brier_[method])
    defaults = next(r for r in A.params_rows(ch, lambda s: None) if "trial 0" in r.change)
    trial0 = float(ch.tuning.trials.loc[ch.tuning.trials["number"] == 0, "value"].iloc[0])
    assert defaults.score is not None
    # tuning scores the early-stopped booster (80% of the accounts), the row the refitted
    # procedure on every account: the same parameters, close but not equal figures
    assert np.mean([v for _, v in defaults.score.per_origin]) == pytest.approx(trial0, abs=0.01)
