"""`make bench`: the growth arithmetic, the phase split, the rendering, and a --quick run."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from ka_ml.bench import e2e
from ka_ml.bench.__main__ import FULL, main, to_markdown

SECTIONS = (
    "# ka_ml benchmarks",
    "## Run of ",
    "### Targets",
    "### `make train` on the default demo",
    "### Stages by portfolio size (issue 6.2)",
    "### Share of time per stage",
    "### Training phases",
    "### Scoring and explanation (issue 5.7)",
    "### SHAP throughput: ka_ml vs one LightGBM pred_contrib pass vs shap.TreeExplainer",
    "### Feature build (issue 3.7)",
    "accounts in bounded memory (issue 7.6)",
    "### Spark engine (local mode) against the local engine (issue 8)",
    "### Read API under load (issue 16.3)",
    "### The CLI end to end (`ka-ml features`, `train`, `score`)",
)


def test_the_exponent_is_the_slope_of_log_time_on_log_size() -> None:
    assert e2e.exponent([10, 100], [1.0, 10.0]) == pytest.approx(1.0)
    assert e2e.exponent([10, 100, 1000], [1.0, 100.0, 10_000.0]) == pytest.approx(2.0)
    assert e2e.exponent([1000, 10_000], [5.0, 5.0]) == pytest.approx(0.0)


def test_the_exponent_is_undefined_with_fewer_than_two_usable_sizes() -> None:
    assert math.isnan(e2e.exponent([10], [1.0]))
    assert math.isnan(e2e.exponent([10, 100], [1.0, float("nan")]))
    assert math.isnan(e2e.exponent([10, 100], [0.0, 3.0]))


def test_training_phases_run_from_one_progress_message_to_the_next() -> None:
    marks = [
        (2.0, "building training snapshots as of 2026-10-01 ..."),
        (5.0, "1234 snapshot rows, 50 features; split {...}"),
        (6.0, "tuning the churn model (Optuna, time-based CV) ..."),
        (9.0, "  churn trial 0: complete score=0.9"),
        (16.0, "tuning the purchase-timing model ..."),
        (26.0, "evaluating out of time against the baselines ..."),
    ]
    phases = e2e.train_phases(marks, total=30.0)
    assert phases == {
        "MLflow store + setup": 2.0,
        "snapshots": 3.0,
        "logging inputs": 1.0,
        "churn: tune + fit + calibrate": 10.0,
        "timing: tune + fit": 10.0,
        "evaluate + log + register": 4.0,
    }
    assert sum(phases.values()) == pytest.approx(30.0)


def _record(n: int, k: float) -> dict[str, Any]:
    """A fake per-size record whose times are ``k`` times the base ones."""
    parts = {
        "load models": 1.0,
        "features (as-of and week before)": 2.0 * k,
        "SHAP this week (shared by reasons and changes)": 1.5 * k,
        "reasons (texts)": 1.5 * k,
        "weekly changes (SHAP a week before + texts)": 6.0 * k,
        "write outputs": 4.0 * k,
        "score_accounts": 12.0 * k,
        "churn prediction + assembly": 1.0 * k,
    }
    return {
        "accounts": n,
        "world": {
            "generate_s": 1.0 * k,
            "write_s": 0.5 * k,
            "rows": {"orders": 70 * n},
            "peak_rss_mb": 100.0 * k,
        },
        "features": {
            "load_s": 2.0 * k,
            "features_s": 1.0 * k,
            "cpu_s": 3.0 * k,
            "eligible": n // 2,
            "feature_columns": 50,
            "peak_rss_mb": 200.0 * k,
        },
        "train": {
            "seconds": 40.0 * k,
            "cpu_s": 60.0 * k,
            "phases": {
                "store": 2.0,
                "snapshots": 8.0 * k,
                "churn: tune + fit + calibrate": 30.0 * k - 2.0,
            },
            "snapshot_rows": 15 * n,
            "trials": {"COMPLETE": 4},
            "split": {},
            "churn_roc_auc": 0.9,
            "peak_rss_mb": 300.0 * k,
        },
        "score": {
            "seconds": 20.0 * k,
            "cpu_s": 25.0 * k,
            "accounts_scored": n // 2,
            "parts": parts,
            "peak_rss_mb": 400.0 * k,
            "shap": {
                "rows": 1000,
                "ours_s": 0.25,
                "ours_rows_s": 4000.0,
                "ours_max_abs_diff": 0.0,
                "pred_contrib_s": 1.0,
                "pred_contrib_rows_s": 1000.0,
                "shap_s": 1.25,
                "shap_rows_s": 800.0,
                "max_abs_diff": 0.0,
                "trees": 200,
                "mean_leaves": 15.0,
                "max_depth": 6,
                "features": 50,
            },
        },
    }


def _fake_result() -> dict[str, Any]:
    mt = {
        "accounts": 2000,
        "n_trials": 12,
        "timeout_seconds": 90,
        "max_snapshots": 24,
        "overridden": False,
        **{
            f"{s}_{m}": v
            for s in ("demo_data", "train")
            for m, v in (("s", 9.0), ("cpu_s", 8.0), ("peak_rss_mb", 500.0))
        },
    }
    feats = [
        {
            "engine": e,
            "accounts": n,
            "orders": 100 * n,
            "snapshots": 1,
            "seconds": t,
            "peak_rss_mb": 150.0,
            "rss_after_load_mb": float("nan"),
            "output_rows": n,
        }
        for e, n, t in (
            ("pandas", 1000, 0.1),
            ("pandas", 10_000, 1.0),
            ("duckdb", 1000, 0.05),
            ("duckdb", 10_000, 0.5),
        )
    ]
    return {
        "plan": FULL,
        "date": "2026-11-26 12:00 UTC",
        "minutes": 20.0,
        "machine": {
            "platform": "Linux-x",
            "cpu": "AMD EPYC",
            "cores": "2 logical (2 usable)",
            "ram": "23.5 GiB",
        },
        "load_start": "0.1 / 0.1 / 0.1",
        "load_end": "1.0 / 1.0 / 1.0",
        "warm_up_s": 4.0,
        "make_train": mt,
        "e2e": [_record(10_000, 1.0), _record(100_000, 10.0)],
        "features": feats,
        "million": _million(9_000.0),
        "spark": {"records": [_spark_record(20_000, 10.0, 8.0), _spark_record(50_000, 25.0, 20.0)]},
        "api_load": _api_load(),
        "cli": _cli_records(),
    }


def _cli_record(n: int, score: float, feats: float, train: float, rss: float) -> dict[str, Any]:
    run = {"cpu_s": 1.0}
    return {
        "accounts": n,
        "rows": {"orders": 10},
        "load": {"load_s": 9.0},
        "duckdb": {"pandas_s": 4.0, "arrow_s": 1.0},
        "features": {**run, "wall_s": feats, "peak_rss_mb": 100.0},
        "train": {**run, "wall_s": train, "peak_rss_mb": 100.0},
        "score": {**run, "wall_s": score, "peak_rss_mb": rss},
    }


def _cli_records() -> list[dict[str, Any]]:
    return [
        _cli_record(10_000, 9.0, 2.0, 30.0, 500.0),
        _cli_record(100_000, 75.0, 14.0, 400.0, 3500.0),
    ]


def _api_load(account_p99: float = 150.0, inconsistent: int = 0) -> dict[str, Any]:
    def endpoint(p99: float, n: int) -> dict[str, Any]:
        return {
            "requests": n,
            "rps": n / 60,
            "p50_ms": p99 / 3,
            "p95_ms": p99 / 1.5,
            "p99_ms": p99,
            "max_ms": p99 * 2,
            "errors": 0,
            "inconsistent": 0,
        }

    def phase(name: str, workers: int, writer: bool) -> dict[str, Any]:
        by = {
            "account": endpoint(account_p99, 12_000),
            "list": endpoint(180.0, 6_000),
            "portfolio": endpoint(900.0, 2_000),
        }
        ph: dict[str, Any] = {
            "name": name,
            "workers": workers,
            "load1": 0.5,
            "seconds": 60.0,
            "requests": 20_000,
            "rps": 333.3,
            "p50_ms": 50.0,
            "p99_ms": 400.0,
            "errors": 0,
            "inconsistent": inconsistent if writer else 0,
            "by_endpoint": by,
            "weeks_seen": {"2026-03-02": 10, "2026-03-09": 10},
            "examples": [],
            "server_cpu_pct": 98.0,
            "client_cpu_pct": 20.0,
        }
        if writer:
            ph["writer"] = [{"as_of": "2026-03-09", "rows": 100_000, "seconds": 9.0}] * 3
        return ph

    return {
        "plan": {
            "name": "full",
            "accounts": 100_000,
            "weeks": 8,
            "owners": 200,
            "clients": 50,
            "seconds": 60.0,
            "max_new_weeks": 30,
            "workers": (1, 2),
        },
        "history": {"build_s": 70.0, "rows": 800_000, "write_s": [8.0] * 8, "file_mb": 700.0},
        "phases": [
            phase(name, w, name != "readers only")
            for w in (1, 2)
            for name in ("readers only", "with a scoring run writing")
        ],
    }


def test_the_api_load_section_states_throughput_latency_failures_and_the_targets() -> None:
    md = to_markdown(_fake_result())
    section = md.split("### Read API under load (issue 16.3)")[1]
    assert (
        "| 1 process, readers only | `/accounts/{id}` | 12,000 | 200 | 50.0 | 100.0 | 150.0 |"
        in section
    )
    assert "| 2 processes, with a scoring run writing | **all** | 20,000 | **333** |" in section
    assert "all phases: **0** (goal 0)" in section
    assert "the writer stored 3 weeks (9.0-9.0 s each) and readers saw 2 different" in section
    target = next(x for x in md.splitlines() if x.startswith("- Read API, 50 clients"))
    assert "0 failed or inconsistent requests (target 0: **met**)" in target
    assert "in every phase: **met**" in target
    result = _fake_result()
    result["api_load"] = _api_load(account_p99=250.0, inconsistent=2)
    md = to_markdown(result)
    target = next(x for x in md.splitlines() if x.startswith("- Read API, 50 clients"))
    assert "4 failed or inconsistent requests (target 0: **missed**)" in target
    assert "250 ms (1 process, readers only)" in target and "in every phase: **missed**" in target


def _million(peak: float) -> dict[str, Any]:
    return {
        "accounts": 1_000_000,
        "orders_per_account": 20,
        "train_accounts": 20_000,
        "train": {"seconds": 60.0, "peak_rss_mb": 900.0},
        "score": {
            "seconds": 900.0,
            "load_seconds": 40.0,
            "accounts_scored": 700_000,
            "orders": 20_000_000,
            "timings": {"score_and_explain": 600.0},
            "peak_rss_mb": peak,
        },
    }


def _spark_record(n: int, local_s: float, spark_s: float) -> dict[str, Any]:
    t = {"wall_s": 1.0, "cpu_s": 1.0}
    return {
        "accounts": n,
        "cores": 2,
        "rows": {"orders": 70 * n},
        "eligible": n // 2,
        "features": 50,
        "trees": 300,
        "model_accounts": 2_000,
        "times": {
            "local load": t,
            "local features": t,
            "local score": {"wall_s": local_s, "cpu_s": local_s},
            "spark read": t,
            "spark features": t,
            "spark score": {"wall_s": spark_s, "cpu_s": 2 * spark_s},
        },
        "spark_start": {"wall_s": 5.0, "cpu_s": 3.0},
        "warm_up": {"wall_s": 9.0, "cpu_s": 12.0},
        "max_abs_diff": 0.0,
        "same_lights": True,
    }


def test_the_scale_targets_say_met_or_missed_with_the_measured_figures() -> None:
    result = _fake_result()
    md = to_markdown(result)
    # 9,000 MiB is above the 8 GiB target
    assert "- Scoring 1,000,000 accounts (700,000 eligible) end to end: peak RSS 9,000 MiB" in md
    assert "< 8,192 MiB: **missed**" in md
    assert "| 700,000 | 900 | 40 | 600.0 | 9,000 | < 8,192 MiB: MISSED |" in md
    result["million"] = _million(3_000.0)
    assert "< 8,192 MiB: **met**" in to_markdown(result)
    # Spark against local at the largest size: 20 s vs 25 s, ratio 0.80
    assert "score 20.0 s vs 25.0 s (0.80x); max |dp| 0.0e+00, lights identical" in md
    # accounts per CPU second of Spark scoring: 25,000 eligible / 40 CPU s
    assert "| 50,000 | spark | 1.0 | 1.0 | 20.0 | 40.0 | 625 |" in md


def test_a_machine_without_spark_says_why_the_spark_benchmark_was_skipped() -> None:
    result = _fake_result()
    result["spark"] = {"skipped": "The Spark engine needs pyspark, which is not installed."}
    md = to_markdown(result)
    assert "- Spark engine: skipped (The Spark engine needs pyspark" in md
    assert "Skipped: The Spark engine needs pyspark, which is not installed." in md


def test_the_markdown_shows_both_sizes_side_by_side_with_ratio_and_exponent() -> None:
    md = to_markdown(_fake_result())
    for section in SECTIONS:
        assert section in md
    training = next(
        line for line in md.splitlines() if line.startswith("| training (run_training)")
    )
    cells = [c.strip() for c in training.strip("|").split("|")]
    # stage | 10k s | 100k s | ratio | exp. | 10k MiB | 100k MiB | ratio | exp. | load
    assert cells[1:] == [
        "40.0",
        "400.0",
        "10.0×",
        "1.00",
        "300",
        "3,000",
        "10.0×",
        "1.00",
        "n/a / n/a",
    ]
    # a part that does not grow has exponent 0
    assert re.search(r"\| load models \| 1\.0 \| 1\.0 \| 1\.0× \| 0\.00 \|", md)
    # 120 s at 100k misses the 60 s target
    assert "120.0 s in `score_accounts`" in md and "**missed**" in md
    assert (
        "| 10k | 1,000 | 200 trees, ~15.0 leaves, depth ≤ 6 | 4,000 | 1,000 | 800 | 4.00 "
        "| 0.0e+00 | 0.0e+00 |" in md
    )
    assert "pandas, 1 snapshot 1.0" in md and "duckdb, 1 snapshot 1.0" in md


def test_the_share_of_time_adds_up_to_the_whole_pipeline() -> None:
    md = to_markdown(_fake_result())
    section = md.split("### Share of time per stage")[1].split("###")[0]
    shares = re.findall(r"\| (\d+)% \| (\d+)% \|", section)
    assert len(shares) == 5
    for col in (0, 1):
        assert 98 <= sum(int(s[col]) for s in shares) <= 102  # rounding


def test_a_quick_run_writes_every_section_with_measured_numbers(tmp_path: Path) -> None:
    out = main(["--quick", "--out", str(tmp_path / "BENCH.md")])
    md = out.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert section in md, section
    assert md.count("## Run of ") == 1 and "(quick," in md
    assert "ka_ml " in md and "lightgbm " in md and "RAM" in md and "CPU " in md

    def row(prefix: str, within: str = "") -> list[str]:
        text = md.split(within, 1)[1] if within else md
        line = next(x for x in text.splitlines() if x.startswith(prefix))
        return [c.strip() for c in line.strip("|").split("|")]

    # seconds and peak memory were measured (positive numbers), not left blank
    for prefix in ("| training (run_training)", "| scoring run incl. outputs (run_scoring)"):
        cells = row(prefix)
        assert float(cells[1].replace(",", "")) > 0 and float(cells[4].replace(",", "")) > 50
    assert float(row("| `ka-ml train` (= `make train`)")[1].replace(",", "")) > 0
    # the three commands ran as a user runs them, timed from outside, beside DuckDB
    for cmd in ("features", "train", "score"):
        cells = row(f"| 300 | `ka-ml {cmd}` |")
        assert float(cells[2]) > 0 and float(cells[3]) > 0 and float(cells[4].replace(",", "")) > 50
    assert re.search(r"- `ka-ml score` with every output at 300 accounts .*: [\d.]+ s wall", md)
    assert re.search(r"Loading [\d.]+ s = [\d.]+x a DuckDB read into pandas", md)
    # the read API answered every request, each with one whole week
    assert "all phases: **0** (goal 0)" in md
    assert float(row("| 1 process, readers only | **all**")[3].strip("*").replace(",", "")) > 0
    shap = row("| 300 |", within="### SHAP throughput")
    assert all(float(shap[i].replace(",", "")) > 0 for i in (3, 4, 5))
    assert float(shap[7]) < 1e-10  # ka_ml's TreeSHAP per pattern = one pred_contrib pass
    assert float(shap[8]) < 1e-6  # and shap's explainer agrees
    assert re.search(r"\| pandas \| 300 \| [\d,]+ \| 1 \| \d+\.\d\d \|", md)
    # the bounded-memory scoring run scored accounts and measured its peak
    million = re.search(
        r"\| ([\d,]+) \| \d+ \| \d+ \| [\d.]+ \| ([\d,]+) \| < 8,192 MiB: met \|", md
    )
    assert million and int(million[1].replace(",", "")) > 0
    assert int(million[2].replace(",", "")) > 100
    owners = re.search(r"score history, (\d+) owner reports capped as the report is", md)
    assert owners and int(owners[1]) > 0  # the owners' reports were written too
    if "Skipped:" not in md:  # pyspark and Java here: both engines ran and agreed
        assert re.search(r"1,000: max \|dp\| \d\.\de[-+]\d\d, lights identical", md)


def test_a_failed_spark_run_keeps_the_other_results_and_says_what_broke(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ka_ml.bench import __main__ as bench
    from ka_ml.bench import features

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError(
            "benchmark case failed:\nTraceback ...\njava.lang.OutOfMemoryError: heap"
        )

    monkeypatch.setattr(bench.spark_bench, "unavailable", lambda: None)
    monkeypatch.setattr(features, "call_in_subprocess", broken)
    logged: list[str] = []
    got = bench._spark_bench(bench.QUICK, {}, logged.append)
    assert got == {
        "skipped": "the Spark run failed (java.lang.OutOfMemoryError: heap); "
        "rerun `python -m ka_ml.bench.spark`"
    }
    assert any("OutOfMemoryError" in line for line in logged)


def test_the_cli_targets_are_judged_at_the_largest_size() -> None:
    from ka_ml.bench import cli

    lines = cli.targets(_cli_records())
    assert lines[0].startswith("- `ka-ml score` with every output at 100,000 accounts: 75.0 s")
    assert "< 60 s: **missed**, < 3,072 MiB: **missed**" in lines[0]
    assert "14.0 s; target < 15 s: **met**" in lines[1]
    assert "Loading 9.0 s = 2.2x a DuckDB read into pandas (4.0 s; into Arrow 1.0 s)" in lines[1]
    assert "within 3x: **met**" in lines[1] and "400.0 s; target < 150 s: **missed**" in lines[2]


def test_a_timed_command_reports_its_own_peak_not_the_benchmarks(tmp_path: Path) -> None:
    """Linux keeps ru_maxrss across exec: a small command started from a large benchmark
    process must still report its own peak (the 10k rows once all showed the parent's)."""
    import sys

    import numpy as np

    from ka_ml.bench.cli import timed

    held = np.ones(300 * 2**20 // 8)  # 300 MiB resident in this process
    held[:] = 2.0
    small = timed([sys.executable, "-c", "pass"], {}, tmp_path)
    grows = timed(
        [sys.executable, "-c", "import numpy as np; a = np.ones(100 * 2**17); a[:] = 2"],
        {},
        tmp_path,
    )
    assert small["peak_rss_mb"] < 150 < held.nbytes / 2**20
    assert grows["peak_rss_mb"] > small["peak_rss_mb"] + 80  # its own 100 MiB array counts
    with pytest.raises(RuntimeError, match="failed \\(3\\)"):
        timed([sys.executable, "-c", "import sys; sys.exit(3)"], {}, tmp_path)


def test_trial_states_read_only_the_trial_lines_not_the_tuning_summary() -> None:
    lines = [
        "tuning the churn model on 3 rolling origins ...",
        "  churn trial 0: complete score=0.8895",
        "  churn trial 1: pruned after 1 of 3 origins, mean so far 0.8700",
        "churn tuning: 2 of 2 trials (1 complete, 1 pruned); the default parameters kept "
        "(best other trial 0.8700 vs their 0.8895)",
        "  timing trial 0: complete score=-0.392",
    ]
    assert e2e.trial_states(lines) == ["complete", "pruned", "complete"]
