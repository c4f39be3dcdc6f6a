"""The CDNOW benchmark's loading and evaluation path (``ka_ml.bench.cdnow``).

The full benchmark trains on 23,570 customers at two cutoffs (minutes); here the same code
runs on 1,000 sampled customers at one cutoff with one Optuna trial (``slow``: about 30 s of
CPU, most of it the product's fixed train/score overhead: MLflow store, model logging,
explanations), and the pieces around it (same-day aggregation, outcomes, the targets) are
checked on frames typed inline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ka_ml.bench import cdnow
from ka_ml.config import Config, load_config
from ka_ml.modeling import metrics as M

REPO = Path(__file__).resolve().parents[1]


def _raw(rows: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(cdnow.RAW_COLUMNS)).astype(
        {"customer_id": "str", "date": "str"}
    )


def test_same_day_rows_become_one_order_with_summed_dollars_and_cds() -> None:
    raw = _raw(
        [
            ("00002", "19970112", 1, 12.00),
            ("00002", "19970112", 5, 77.00),
            ("00002", "19970330", 2, 20.76),
            ("00001", "19970101", 1, 11.77),
        ]
    )
    orders = cdnow.to_orders(raw)
    assert orders["account_id"].tolist() == ["00001", "00002", "00002"]
    assert orders["order_date"].dt.strftime("%Y-%m-%d").tolist() == [
        "1997-01-01",
        "1997-01-12",
        "1997-03-30",
    ]
    assert orders["amount"].tolist() == pytest.approx([11.77, 89.00, 20.76])
    assert orders["quantity"].tolist() == [1.0, 6.0, 2.0]


def test_the_shipped_file_holds_the_documented_rows_and_customers() -> None:
    raw = cdnow.read_cdnow()
    assert len(raw) == 69_659
    assert raw["customer_id"].nunique() == 23_570
    assert raw["customer_id"].str.len().eq(5).all()  # zero-padded ids stay text


def test_outcomes_label_churn_in_90_days_and_censor_the_next_order_at_the_data_end(
    tmp_path: Path,
) -> None:
    raw = _raw(
        [
            ("00001", "19970105", 1, 10.0),
            ("00001", "19971015", 1, 10.0),  # 15 days after the cutoff
            ("00002", "19970210", 1, 10.0),
            ("00002", "19980301", 1, 10.0),  # 152 days after: churned within 90 days
            ("00003", "19970301", 1, 10.0),  # never again: censored
        ]
    )
    cfg = load_config(REPO / "configs" / "cdnow.yaml")
    history = cdnow.load_history(raw, tmp_path / "data", cfg)
    truth = cdnow.outcomes(history, pd.Timestamp("1997-09-30"), cfg)
    assert truth["churn"].tolist() == [0.0, 1.0, 1.0]
    censored = (cdnow.DATA_END - pd.Timestamp("1997-09-30")).days
    assert truth["days_to_next"].tolist() == [15.0, 152.0, float(censored)]
    assert truth["next_order_observed"].tolist() == [True, True, False]


def test_targets_are_judged_per_cutoff_against_the_issue_thresholds() -> None:
    metrics = pd.DataFrame(
        [
            {
                "cutoff": "1997-09-30",
                "predictor": cdnow.PRODUCT,
                "churn_roc_auc": 0.80,
                "churn_brier": 0.110,
                "p30_auc": 0.79,
                "concordance": 0.76,
                "p10_p90_coverage": 0.90,
            },
            {"cutoff": "1997-09-30", "predictor": cdnow.BGNBD, "churn_brier": 0.117},
        ]
    )
    got = cdnow.targets(metrics).set_index("target")["met"].to_dict()
    assert got == {
        "churn ROC AUC >= 0.79": True,
        "churn Brier < BG/NBD's (0.1170)": True,
        "P(order within 30 d) AUC >= 0.80": False,
        "timing concordance >= 0.75": True,
        "p10-p90 coverage in [0.75, 0.85]": False,
    }


def test_plain_lightgbm_snapshots_are_the_month_starts_whose_window_closed_by_the_cutoff() -> None:
    got = cdnow.plain_snapshots(pd.Timestamp("1997-09-30"), 90)
    assert [str(d.date()) for d in got] == ["1997-05-01", "1997-06-01", "1997-07-01"]
    got = cdnow.plain_snapshots(pd.Timestamp("1997-12-31"), 90)
    assert str(got[-1].date()) == "1997-10-01" and len(got) == 6


def test_plain_lightgbm_trains_on_labelled_month_starts_and_scores_every_customer(
    tmp_path: Path,
) -> None:
    cfg = load_config(REPO / "configs" / "cdnow.yaml")
    raw = cdnow.sample_customers(cdnow.read_cdnow(), 2000, seed=3)
    history = cdnow.load_history(raw, tmp_path / "data", cfg)
    cutoff = cdnow.CUTOFFS[0]
    truth = cdnow.outcomes(history, cutoff, cfg)
    run = cdnow.plain_lightgbm_predictions(history, cutoff, cfg, truth.index)
    assert [str(d.date()) for d in run.snapshots] == ["1997-05-01", "1997-06-01", "1997-07-01"]
    assert run.rows == 3 * 2000  # every Q1-1997 customer is eligible at every month start
    assert run.features > 10 and 1 <= run.trees <= cdnow.PLAIN_MAX_TREES
    p = run.predictions["churn_probability"]
    assert p.index.equals(truth.index)
    assert p.between(0, 1).all()  # every customer scored, probabilities
    auc = M.roc_auc(truth["churn"].to_numpy(), p.to_numpy())
    assert 0.65 < auc < 0.9  # the full data gives 0.775 at this cutoff
    again = cdnow.plain_lightgbm_predictions(history, cutoff, cfg, truth.index)
    assert np.array_equal(again.predictions.to_numpy(), run.predictions.to_numpy())


@pytest.fixture(scope="module")
def sample_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[cdnow.BenchResult, Config]:
    """The benchmark on 1,000 customers, cutoff 1997-09-30, one Optuna trial."""
    cfg = load_config(REPO / "configs" / "cdnow.yaml")
    cfg = cfg.model_copy(
        update={"tuning": cfg.tuning.model_copy(update={"n_trials": 1, "timeout_seconds": 60})}
    )
    raw = cdnow.sample_customers(cdnow.read_cdnow(), 1000, seed=1)
    result = cdnow.run_benchmark(
        cfg, raw, cutoffs=(cdnow.CUTOFFS[0],), workdir=tmp_path_factory.mktemp("cdnow"), n_boot=20
    )
    return result, cfg


@pytest.mark.slow
def test_the_sample_benchmark_scores_every_predictor_on_every_customer(
    sample_result: tuple[cdnow.BenchResult, Config],
) -> None:
    result, _ = sample_result
    m = result.metrics
    assert m["predictor"].tolist() == list(cdnow.PREDICTORS)
    assert (m["cutoff"] == "1997-09-30").all()
    assert (m["n"] == 1000).all()
    assert result.n_customers == 1000
    assert result.runs[0]["scored"] == result.runs[0]["evaluated"] == 1000


@pytest.mark.slow
def test_the_sample_benchmark_reports_every_metric_as_a_probability_like_number(
    sample_result: tuple[cdnow.BenchResult, Config],
) -> None:
    result, _ = sample_result
    m = result.metrics.set_index("predictor")
    unit = ["churn_roc_auc", "churn_pr_auc", "churn_brier", "churn_base_rate"]
    for k in (30, 60, 90):
        unit += [f"p{k}_auc", f"p{k}_brier", f"p{k}_accuracy", f"p{k}_majority_accuracy"]
    values = m[unit].to_numpy(float)
    assert np.isfinite(values).all()
    assert ((values >= 0) & (values <= 1)).all()
    timing = m.loc[[cdnow.PRODUCT, cdnow.BGNBD], ["concordance", "p10_p90_coverage"]]
    assert ((timing >= 0) & (timing <= 1)).all().all()
    # logistic baselines give no time forecast: no concordance, rather than a made-up one
    assert m.loc[[cdnow.RFM, cdnow.RECENCY], "concordance"].isna().all()


@pytest.mark.slow
def test_the_sample_benchmark_compares_ka_ml_with_bgnbd_with_intervals_around_the_delta(
    sample_result: tuple[cdnow.BenchResult, Config],
) -> None:
    result, _ = sample_result
    d = result.deltas
    assert d["metric"].tolist() == [
        "churn ROC AUC",
        "churn Brier",
        "P(order within 30 d) AUC",
        "P(order within 30 d) Brier",
        "timing concordance",
    ]
    assert (d["lo"] <= d["hi"]).all()
    assert np.allclose(d["delta"], d[cdnow.PRODUCT] - d[cdnow.BGNBD])


@pytest.mark.slow
def test_the_results_file_carries_every_section_and_the_validation_fold(
    sample_result: tuple[cdnow.BenchResult, Config], tmp_path: Path
) -> None:
    result, cfg = sample_result
    path = cdnow.write_results(cdnow.to_markdown(result, cfg), tmp_path / "cdnow.md")
    text = path.read_text(encoding="utf-8")
    for heading in (
        "## Churn: no order in the 90 days after the cutoff",
        "## Next order: P(order within k days)",
        "## Timing forecast",
        "## ka_ml minus BG/NBD",
        "## Targets",
        "## Validation",
    ):
        assert heading in text
    assert "| 1997-09-30 | ka_ml |" in text
    assert set(result.validation["predictor"]) >= {"ka_ml churn model", "BG/NBD"}
