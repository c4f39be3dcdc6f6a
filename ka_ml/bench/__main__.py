"""`make bench`: every benchmark in one run, one dated markdown section in BENCH.md.

Runs ``make train``'s commands on the default demo (timed), the end-to-end stages at 10k and
100k accounts (:mod:`ka_ml.bench.e2e`), ``ka-ml features/train/score`` as a user runs them
at the same sizes, with the load beside a DuckDB read (:mod:`ka_ml.bench.cli`), the feature-build benchmark
(:mod:`ka_ml.bench.features`), scoring 1M accounts in bounded memory
(:mod:`ka_ml.bench.million`), local-mode Spark against the local engine
(:mod:`ka_ml.bench.spark`; skipped, with the reason, without pyspark or Java) and the read
API under load with a scoring run writing (:mod:`ka_ml.bench.api_load`), then
replaces ``ka_ml/bench/results/BENCH.md`` with the machine, package versions, date and the
tables. ``--quick`` runs tiny sizes (a smoke test).

    python -m ka_ml.bench [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ka_ml.bench import api_load, cli, e2e, features, million
from ka_ml.bench import spark as spark_bench
from ka_ml.config import Config
from ka_ml.training.timing import timing_budget

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "BENCH.md"
PACKAGES = (
    "ka_ml",
    "pandas",
    "numpy",
    "pyarrow",
    "duckdb",
    "lightgbm",
    "scikit-learn",
    "mlflow",
    "optuna",
    "shap",
    "xlsxwriter",
    "pyspark",
)


@dataclass(frozen=True)
class Plan:
    """What one run measures (full: the issue's sizes; quick: a smoke test)."""

    name: str
    e2e_sizes: tuple[int, ...]
    budget: e2e.Budget
    shap_rows: int
    feature_sizes: tuple[int, ...]
    feature_snapshots: tuple[int, ...]
    orders_per_account: int
    million_accounts: int  # issue 7.6: run_scoring on this many accounts, peak RSS
    spark_sizes: tuple[int, ...]  # issue 8.5: local-mode Spark against the local engine
    spark_model_accounts: int
    train_overrides: dict[str, Any] = field(default_factory=dict)
    million_tuning: dict[str, Any] = field(default_factory=dict)  # over million.TUNING
    # quick only: `make train` and the feature benchmark run beside the end-to-end stages
    # (a smoke test: its figures are not comparable then)
    concurrent: bool = False
    api_load: api_load.LoadPlan = api_load.FULL  # issue 16.3: the read API under load
    cli_sizes: tuple[int, ...] = e2e.SIZES  # issue 17.5: the three commands end to end


FULL = Plan(
    "full",
    e2e.SIZES,
    e2e.Budget(),
    10_000,
    features.FULL_SIZES,
    (1, 12),
    100,
    1_000_000,
    spark_bench.SIZES,
    spark_bench.MODEL_ACCOUNTS,
)
QUICK = Plan(
    "quick",
    e2e.QUICK_SIZES,
    e2e.Budget(n_trials=1, max_snapshots=18, backtest_origins=1),
    500,
    (300, 600),
    (1,),
    20,
    1_000,
    spark_bench.QUICK_SIZES,
    300,
    {
        "data": {"demo_accounts": 300},
        "tuning": {"n_trials": 1, "timeout_seconds": 30, "backtest_origins": 1},
        "features": {"max_snapshots": 18},
    },
    {"n_trials": 1, "backtest_origins": 1},
    concurrent=True,
    api_load=api_load.QUICK,
    cli_sizes=e2e.QUICK_SIZES,
)


# --- the machine -------------------------------------------------------------------------
def _proc_field(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine() -> dict[str, str]:
    """Platform, CPU model, cores, RAM (Linux /proc; 'n/a' elsewhere)."""
    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    ram = f"{int(mem_kb.split()[0]) / 2**20:.1f} GiB" if mem_kb else "n/a"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "platform": platform.platform(),
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "n/a",
        "cores": f"{os.cpu_count()} logical ({usable} usable)",
        "ram": ram,
    }


def versions() -> str:
    parts = [f"python {platform.python_version()}"]
    for pkg in PACKAGES:
        try:
            parts.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            parts.append(f"{pkg} n/a")
    return ", ".join(parts)


def _load_avg() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# --- markdown ----------------------------------------------------------------------------
def _s(x: Any, digits: int = 1) -> str:
    """A number for a table cell ('n/a' for missing)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"
    return f"{x:,.{digits}f}"


def _k(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{n:,}"


def _growth(sizes: Sequence[int], values: Sequence[float | None]) -> tuple[str, str]:
    """(last/first ratio, fitted exponent) as table cells."""
    vals = [float("nan") if v is None else float(v) for v in values]
    ratio = vals[-1] / vals[0] if len(vals) > 1 and vals[0] > 0 else float("nan")
    return (
        f"{_s(ratio)}×" if math.isfinite(ratio) else "n/a",
        _s(e2e.exponent(sizes, vals), 2),
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 1) -> list[str]:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(align) + "|",
        *["| " + " | ".join(r) + " |" for r in rows],
    ]


# the case whose subprocess measured each row of ``stage_rows``
STAGE_CASES = ("world", "features", "features", "train", "score", "score")


def stage_rows(records: Sequence[dict[str, Any]]) -> list[tuple[str, list[float], list[float]]]:
    """(stage, seconds per size, peak MiB per size) for the issue 6.2 table."""
    nan = float("nan")

    def col(fn: Callable[[dict[str, Any]], float]) -> list[float]:
        return [fn(r) for r in records]

    return [
        (
            "demo data: generate + write Parquet (context)",
            col(lambda r: r["world"]["generate_s"] + r["world"]["write_s"]),
            col(lambda r: r["world"]["peak_rss_mb"]),
        ),
        (
            "load: read + type + validate",
            col(lambda r: r["features"]["load_s"]),
            col(lambda r: nan),
        ),
        (
            "feature build (1 snapshot; peak incl. load)",
            col(lambda r: r["features"]["features_s"]),
            col(lambda r: r["features"]["peak_rss_mb"]),
        ),
        (
            "training (run_training)",
            col(lambda r: r["train"]["seconds"]),
            col(lambda r: r["train"]["peak_rss_mb"]),
        ),
        (
            "scoring + explanation (score_accounts)",
            col(lambda r: r["score"]["parts"]["score_accounts"]),
            col(lambda r: nan),
        ),
        (
            "scoring run incl. outputs (run_scoring)",
            col(lambda r: r["score"]["seconds"]),
            col(lambda r: r["score"]["peak_rss_mb"]),
        ),
    ]


def _timing_trials(b: e2e.Budget) -> str:
    """How the budget tunes the purchase-timing model, as training decides it."""
    n, _ = timing_budget(Config.model_validate({"tuning": {"n_trials": b.n_trials}}))
    return f"{n} trials" if n else "not tuned: a quarter of the trials is below two"


def _stages_section(records: Sequence[dict[str, Any]], plan: Plan) -> list[str]:
    sizes = [r["accounts"] for r in records]
    head = ["stage"]
    head += [f"{_k(n)} s" for n in sizes] + ["time ratio", "time exp."]
    head += [f"{_k(n)} peak MiB" for n in sizes] + ["mem ratio", "mem exp.", "load at start"]
    rows = []
    for (name, secs, peaks), stage in zip(stage_rows(records), STAGE_CASES, strict=True):
        rows.append(
            [name, *[_s(x) for x in secs], *_growth(sizes, secs)]
            + [_s(x, 0) for x in peaks]
            + (list(_growth(sizes, peaks)) if all(math.isfinite(p) for p in peaks) else ["", ""])
            + [" / ".join(_s(r[stage].get("load1")) for r in records)]
        )
    b = plan.budget
    lines = [
        f"### Stages by portfolio size (issue 6.2): {', '.join(_k(n) for n in sizes)} accounts",
        "",
        f"Demo world, {e2e.YEARS:g} years, seed {e2e.SEED}, Parquet. Training budget at every "
        f"size: `tuning.n_trials={b.n_trials}` (timing model: {_timing_trials(b)}), "
        f"`tuning.backtest_origins={b.backtest_origins}`, "
        f"`features.max_snapshots={b.max_snapshots}`, "
        f"timeout {b.timeout_seconds:g} s (never reached: the trial count is the budget), "
        "the default `tuning.max_accounts` (above it training learns from a seeded sample "
        "of the accounts, so the training stage grows less than linearly past it). "
        "Ratio = largest / smallest size; exponent = slope of log(value) on log(accounts) "
        "(1 = linear). Peak = VmHWM of the stage's own process (load, features, and the "
        "scoring run each include reading the data). Load at start = the machine's 1-minute "
        "load average when the stage began, per size (2 cores: above 2 means contention).",
        "",
        *_table(head, rows),
        "",
    ]
    data = [
        f"{_k(r['accounts'])}: "
        + ", ".join(f"{t} {n:,}" for t, n in r["world"]["rows"].items())
        + f"; {r['features']['eligible']:,} eligible at the as-of, "
        f"{r['features']['feature_columns']} features, "
        f"{_s(r['train']['snapshot_rows'])} training snapshot rows"
        for r in records
    ]
    return [*lines, "Rows:", "", *[f"- {d}" for d in data], ""]


def _share_section(records: Sequence[dict[str, Any]]) -> list[str]:
    sizes = [r["accounts"] for r in records]
    parts: list[tuple[str, list[float]]] = [
        ("load (read + validate)", [r["features"]["load_s"] for r in records]),
        ("feature build (as-of)", [r["features"]["features_s"] for r in records]),
        ("training", [r["train"]["seconds"] for r in records]),
        ("scoring + explanation", [r["score"]["parts"]["score_accounts"] for r in records]),
        (
            "outputs, models, score history",
            [r["score"]["seconds"] - r["score"]["parts"]["score_accounts"] for r in records],
        ),
    ]
    totals = [sum(v[i] for _, v in parts) for i in range(len(sizes))]
    rows = [
        [name, *[f"{100 * v / t:.0f}%" for v, t in zip(vals, totals, strict=True)]]
        for name, vals in parts
    ]
    rows.append(["total seconds", *[_s(t) for t in totals]])
    return [
        "### Share of time per stage",
        "",
        "One pipeline pass: load once, build the as-of features, train, score and explain, "
        "write the outputs.",
        "",
        *_table(["stage", *[_k(n) for n in sizes]], rows),
        "",
    ]


def _train_section(records: Sequence[dict[str, Any]]) -> list[str]:
    sizes = [r["accounts"] for r in records]
    names = list(records[0]["train"]["phases"])
    rows = []
    for name in names:
        vals = [r["train"]["phases"].get(name) for r in records]
        total = records[-1]["train"]["seconds"]
        share = f"{100 * (vals[-1] or 0) / total:.0f}%" if total else "n/a"
        rows.append([name, *[_s(v) for v in vals], *_growth(sizes, vals), share])
    trials = "; ".join(
        f"{_k(r['accounts'])}: "
        + ", ".join(f"{n} {s.lower()}" for s, n in r["train"]["trials"].items())
        + f", test ROC AUC {r['train']['churn_roc_auc']}"
        for r in records
    )
    return [
        "### Training phases",
        "",
        *_table(
            ["phase", *[f"{_k(n)} s" for n in sizes], "ratio", "exp.", f"share at {_k(sizes[-1])}"],
            rows,
        ),
        "",
        f"Trials: {trials}. CPU seconds: "
        + ", ".join(f"{_k(r['accounts'])} {_s(r['train']['cpu_s'])}" for r in records)
        + ".",
        "",
    ]


def _score_section(records: Sequence[dict[str, Any]]) -> list[str]:
    sizes = [r["accounts"] for r in records]
    keys: list[str] = []
    for r in records:
        keys += [k for k in r["score"]["parts"] if k not in keys]
    order = [k for k in keys if k not in ("score_accounts",)] + ["score_accounts"]
    rows = []
    for k in order:
        vals = [r["score"]["parts"].get(k) for r in records]
        label = "**score_accounts: scored and explained**" if k == "score_accounts" else k
        rows.append([label, *[_s(v) for v in vals], *_growth(sizes, vals)])
    totals = [r["score"]["seconds"] for r in records]
    rows.append(["**run_scoring total**", *[_s(v) for v in totals], *_growth(sizes, totals)])
    scored = [r["score"]["accounts_scored"] for r in records]
    rows.append(["accounts scored (eligible)", *[_s(n) for n in scored], "", ""])
    rate = [n / r["score"]["parts"]["score_accounts"] for n, r in zip(scored, records, strict=True)]
    rows.append(["accounts scored + explained per s", *[_s(x, 0) for x in rate], "", ""])
    rows.append(
        ["peak RSS MiB (whole run)", *[_s(r["score"]["peak_rss_mb"], 0) for r in records], "", ""]
    )
    return [
        "### Scoring and explanation (issue 5.7)",
        "",
        "A weekly `run_scoring` per size, after last week's run (whose scores and "
        "contributions are stored); its parts are timed by wrapping the functions "
        "`score_accounts` calls ('churn prediction + assembly' is the rest of "
        "`score_accounts`). The SHAP work is one TreeSHAP pass, this week's, shared by "
        "the reasons and the weekly changes, which compare it with last week's stored "
        "contributions (without a stored run they explain the features of a week before "
        "again: a second pass).",
        "",
        *_table(["part", *[f"{_k(n)} s" for n in sizes], "ratio", "exp."], rows),
        "",
        "A SHAP pass costs (distinct split patterns per tree) x trees (x leaves x depth), "
        "the patterns growing slower than the rows: the champion churn boosters have "
        + " and ".join(
            f"{r['score']['shap']['trees']} trees at {_k(r['accounts'])}" for r in records
        )
        + " (early stopping keeps more rounds on more data).",
        "",
    ]


def _shap_section(records: Sequence[dict[str, Any]]) -> list[str]:
    rows = []
    for r in records:
        s = r["score"]["shap"]
        ours = s.get("ours_rows_s", s["pred_contrib_rows_s"])
        rows.append(
            [
                _k(r["accounts"]),
                _s(s["rows"]),
                f"{s['trees']} trees, ~{s['mean_leaves']} leaves, depth ≤ {s['max_depth']}",
                _s(ours, 0),
                _s(s["pred_contrib_rows_s"], 0),
                _s(s["shap_rows_s"], 0),
                _s(ours / s["pred_contrib_rows_s"], 2),
                f"{s.get('ours_max_abs_diff', 0.0):.1e}",
                f"{s['max_abs_diff']:.1e}",
            ]
        )
    head = [
        "model trained on",
        "rows explained",
        "churn booster",
        "ka_ml rows/s (chosen)",
        "one pred_contrib pass rows/s",
        "shap.TreeExplainer rows/s",
        "ka_ml speed-up (x)",
        "ka_ml max abs diff",
        "shap max abs diff",
    ]
    return [
        "### SHAP throughput: ka_ml vs one LightGBM pred_contrib pass vs shap.TreeExplainer",
        "",
        "Same champion churn booster and the same rows (the first eligible accounts at the "
        "as-of), in one process, one after the other. Chosen path: "
        "`ChurnModel.contributions` (LightGBM's TreeSHAP once per distinct split pattern of "
        "each tree, `ka_ml/modeling/treeshap.py`); the others: one `pred_contrib` pass over "
        "every row, and `shap.TreeExplainer(booster).shap_values(X)` (explainer construction "
        "included, `import shap` not). Max abs diff: from the single pass, on log-odds.",
        "",
        *_table(head, rows),
        "",
    ]


def _make_train_section(mt: dict[str, Any]) -> list[str]:
    cfg = (
        f"{mt['accounts']:,} accounts, tuning.n_trials {mt['n_trials']}, timeout "
        f"{mt['timeout_seconds']} s, features.max_snapshots {mt['max_snapshots']}"
    )
    note = (
        "**quick mode: a shrunken config, not the default demo**"
        if mt["overridden"]
        else "the default `configs/ka_ml.yaml`"
    )
    rows = [
        [
            "`ka-ml demo-data` (first use)",
            _s(mt["demo_data_s"]),
            _s(mt["demo_data_cpu_s"]),
            _s(mt["demo_data_peak_rss_mb"], 0),
            _s(mt.get("demo_data_load1")),
        ],
        [
            "`ka-ml train` (= `make train`)",
            _s(mt["train_s"]),
            _s(mt["train_cpu_s"]),
            _s(mt["train_peak_rss_mb"], 0),
            _s(mt.get("train_load1")),
        ],
    ]
    return [
        "### `make train` on the default demo",
        "",
        f"Config: {note} ({cfg}); a scratch folder with a copy of `configs/`, so a fresh "
        "MLflow store (its migrations included).",
        "",
        *_table(["command", "wall s", "CPU s", "peak RSS MiB", "load at start"], rows),
        "",
    ]


def _features_section(records: Sequence[dict[str, Any]], plan: Plan) -> list[str]:
    """The feature-build benchmark's table (issue 3.7), as in ``features.to_markdown``."""
    rows = [
        [
            r["engine"],
            _s(r["accounts"]),
            _s(r["orders"]),
            str(r["snapshots"]),
            _s(r["seconds"], 2),
            _s(r["peak_rss_mb"], 0),
            _s(r["rss_after_load_mb"], 0),
            _s(r["output_rows"]),
        ]
        for r in records
    ]
    head = [
        "engine",
        "accounts",
        "orders",
        "snapshots",
        "seconds",
        "peak RSS MiB",
        "RSS after load MiB",
        "rows out",
    ]
    exps = features.growth_exponents(records)
    return [
        "### Feature build (issue 3.7)",
        "",
        f"Synthetic orders (~{plan.orders_per_account} per account over "
        f"{features.YEARS:g} years; `ka_ml.bench.features`). pandas = ka_ml.features "
        "(1 snapshot: `build_features`; 12: `build_training_set` with labels); duckdb = "
        "the SQL yardstick (count, sum, last date, mean gap by LAG) over the same Parquet file.",
        "",
        *_table(head, rows),
        "",
        "Growth exponent (slope of log time on log orders; 1 = linear): "
        + ", ".join(f"{k} {v}" for k, v in exps.items())
        + ".",
        "",
    ]


def _targets_section(
    e2e_records: Sequence[dict[str, Any]], mt: dict[str, Any], plan: Plan
) -> list[str]:
    big = e2e_records[-1]
    s = big["score"]
    secs = s["parts"]["score_accounts"]
    met = "**met**" if secs < e2e.SCORE_TARGET_S else "**missed**"
    explain = sum(
        v for k, v in s["parts"].items() if k.startswith(("SHAP", "reasons", "weekly changes"))
    )
    lines = [
        "### Targets",
        "",
        f"- `make train` wall time ({mt['accounts']:,}-account demo): "
        f"{_s(mt['train_s'])} s (+ {_s(mt['demo_data_s'])} s to generate the demo data on "
        "first use).",
        f"- Scored and explained at {_k(big['accounts'])} accounts "
        f"({s['accounts_scored']:,} eligible): {_s(secs)} s in `score_accounts` "
        f"(of which explanations {_s(explain)} s); target < {e2e.SCORE_TARGET_S:g} s on "
        f"2 cores: {met}"
        + (" (quick mode: sizes too small to judge)." if plan.name == "quick" else ".")
        + f" The whole scoring run with every output: {_s(s['seconds'])} s.",
    ]
    return lines


def _scale_targets(result: dict[str, Any]) -> list[str]:
    """Target lines for issue 7.6 (1M accounts under 8 GiB) and issue 8.5 (Spark)."""
    m = result["million"]
    peak = m["score"]["peak_rss_mb"]
    lines = [
        f"- Scoring {m['accounts']:,} accounts ({m['score']['accounts_scored']:,} eligible) "
        f"end to end: peak RSS {_s(peak, 0)} MiB in {_s(m['score']['seconds'], 0)} s; target "
        f"< {million.PEAK_TARGET_MB:,} MiB: {'**met**' if peak < million.PEAK_TARGET_MB else '**missed**'}.",
    ]
    sp = result["spark"]
    if sp.get("records"):
        r = sp["records"][-1]
        t = r["times"]
        lines.append(
            f"- Spark `local[{r['cores']}]` vs the local engine at {r['accounts']:,} accounts: "
            f"score {t['spark score']['wall_s']:.1f} s vs {t['local score']['wall_s']:.1f} s "
            f"({t['spark score']['wall_s'] / max(t['local score']['wall_s'], 1e-9):.2f}x); "
            f"max |dp| {r['max_abs_diff']:.1e}, lights "
            f"{'identical' if r['same_lights'] else 'DIFFERENT'}."
        )
    else:
        lines.append(f"- Spark engine: skipped ({sp.get('skipped', 'no sizes')}).")
    if "api_load" in result:
        lines.append(_api_target(result["api_load"]))
    return lines


def _api_target(r: dict[str, Any]) -> str:
    """Issue 16.3: no failed request, p99 of /accounts/{id} under 200 ms."""
    failed = sum(ph["errors"] + ph["inconsistent"] for ph in r["phases"])
    p99 = [
        f"{ph['by_endpoint']['account']['p99_ms']:,.0f} ms ({ph['workers']} process"
        f"{'es' if ph['workers'] > 1 else ''}, {ph['name']})"
        for ph in r["phases"]
    ]
    met = all(ph["by_endpoint"]["account"]["p99_ms"] < api_load.P99_TARGET_MS for ph in r["phases"])
    best = max(r["phases"], key=lambda ph: ph["rps"])
    return (
        f"- Read API, {r['plan']['clients']} clients on {r['plan']['accounts']:,} accounts: "
        f"{failed} failed or inconsistent requests (target 0: {'**met**' if failed == 0 else '**missed**'}); "
        f"p99 of `/accounts/{{id}}` " + ", ".join(p99) + f" (target < "
        f"{api_load.P99_TARGET_MS:g} ms in every phase: {'**met**' if met else '**missed**'}); "
        f"up to {best['rps']:,.0f} requests/s."
    )


def to_markdown(result: dict[str, Any]) -> str:
    """The one dated section BENCH.md holds."""
    plan: Plan = result["plan"]
    m = result["machine"]
    lines = [
        "# ka_ml benchmarks",
        "",
        "Written by `make bench` (`python -m ka_ml.bench`); each run replaces this file.",
        "",
        f"## Run of {result['date']} ({plan.name}, {result['minutes']:.1f} min)",
        "",
        f"- machine: {m['platform']}; CPU {m['cpu']}; {m['cores']} cores; {m['ram']} RAM",
        f"- load average (1/5/15 min) at start: {result['load_start']}; at end: "
        f"{result['load_end']} (the machine may be shared: compare CPU seconds too)",
        f"- versions: {versions()}",
        "- method: each case in its own subprocess (peak RSS = its VmHWM); OMP_WAIT_POLICY="
        "PASSIVE; LightGBM on KA_ML_THREADS (default 2) threads; "
        + (
            f"compiled bytecode cached before timing (warm-up {result['warm_up_s']} s)."
            if plan.name == "full"
            else "quick mode: no warm-up; `make train`, the feature benchmark and the "
            "end-to-end stages ran concurrently (figures not comparable)."
        ),
        "",
    ]
    lines += _targets_section(result["e2e"], result["make_train"], plan)
    lines += cli.targets(result.get("cli") or [], quick=plan.name == "quick")
    lines += [*_scale_targets(result), ""]
    if result.get("cli"):
        lines += [cli.to_markdown(result["cli"], plan.budget)]
    lines += _make_train_section(result["make_train"])
    lines += _stages_section(result["e2e"], plan)
    lines += _share_section(result["e2e"])
    lines += _train_section(result["e2e"])
    lines += _score_section(result["e2e"])
    lines += _shap_section(result["e2e"])
    lines += _features_section(result["features"], plan)
    lines += [million.to_markdown(result["million"])]
    sp = result["spark"]
    lines += [
        spark_bench.to_markdown(sp["records"])
        if "records" in sp
        else f"{spark_bench.TITLE}\n\nSkipped: {sp['skipped']}\n"
    ]
    if "api_load" in result:
        lines += [api_load.to_markdown(result["api_load"])]
    return "\n".join(lines).rstrip() + "\n"


def write_results(result: dict[str, Any], path: Path | str) -> Path:
    """Replace ``path`` with this run's section (older runs live in git history)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(to_markdown(result), encoding="utf-8")
    os.replace(tmp, p)
    return p


# --- the run -----------------------------------------------------------------------------
def run(plan: Plan, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every benchmark of ``plan``; the raw results that :func:`to_markdown` renders."""
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "plan": plan,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(),
        "load_start": _load_avg(),
    }
    env = e2e.bench_env(e2e.PYCACHE)
    if plan.concurrent:
        result["warm_up_s"] = "skipped"
    else:
        log("warming up the bytecode cache ...")
        result["warm_up_s"] = e2e.warm_up(env)
    with ThreadPoolExecutor(max_workers=2) as pool:

        def feature_bench() -> list[dict[str, Any]]:
            log("feature build benchmark ...")
            return features.run(plan.feature_sizes, plan.feature_snapshots, plan.orders_per_account)

        log("make train on the demo ...")
        make_train = pool.submit(e2e.make_train, env, REPO, plan.train_overrides or None)
        if plan.concurrent:
            feats = pool.submit(feature_bench)
        else:
            make_train.result()
        result["e2e"] = e2e.run(plan.e2e_sizes, plan.budget, plan.shap_rows, env, log)
        result["features"] = feats.result() if plan.concurrent else feature_bench()
        result["make_train"] = make_train.result()
    log(f"the CLI end to end at {plan.cli_sizes} accounts ...")
    result["cli"] = cli.run(plan.cli_sizes, plan.budget, env, log)
    log(f"scoring {plan.million_accounts:,} accounts (memory) ...")
    result["million"] = million.run(plan.million_accounts, env=env, tuning=plan.million_tuning)
    result["spark"] = _spark_bench(plan, env, log)
    log(
        f"the read API under load ({plan.api_load.clients} clients, readers alone, then with a "
        "scoring run writing) ..."
    )
    result["api_load"] = api_load.run(plan.api_load, env=env, log=log)
    result["load_end"] = _load_avg()
    result["minutes"] = (time.perf_counter() - t0) / 60
    return result


def _spark_bench(plan: Plan, env: dict[str, str], log: Callable[[str], None]) -> dict[str, Any]:
    """The Spark records, or why they are missing (no pyspark / Java here)."""
    why = spark_bench.unavailable()
    if why is not None:
        log(f"Spark benchmark skipped: {why}")
        return {"skipped": why}
    log(f"Spark (local mode) against the local engine at {plan.spark_sizes} accounts ...")
    kwargs = {"sizes": list(plan.spark_sizes), "model_accounts": plan.spark_model_accounts}
    try:
        return features.call_in_subprocess("ka_ml.bench.spark", "case", kwargs, env)
    except RuntimeError as e:  # keep the other benchmarks' results; say what broke
        last = [x for x in str(e).splitlines() if x.strip()][-1]
        log(f"Spark benchmark failed: {e}")
        return {
            "skipped": f"the Spark run failed ({last.strip()}); rerun `python -m ka_ml.bench.spark`"
        }


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test (~2 min)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown file to replace")
    args = parser.parse_args(argv)
    result = run(QUICK if args.quick else FULL, log=lambda s: print(f"[bench] {s}", flush=True))
    path = write_results(result, args.out)
    print(f"[bench] wrote {path}", file=sys.stderr)
    return path


if __name__ == "__main__":
    main()
