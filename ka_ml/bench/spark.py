"""Benchmark: the Spark engine in local mode against the local engine, on the same data.

For each size a demo world (all six tables) is written as Parquet; both engines read it
(local: ``load_history``; Spark: ``read_history``), build the as-of features, and score
and explain every eligible account (``score_accounts``: features at the as-of and a week
before, churn + timing predictions, TreeSHAP reasons and weekly changes). The two engines'
scores are compared (max |difference| of the churn probability, equal health lights).

The bench models are fitted directly (no tuning, no MLflow) on a 2,000-account world, with
the default search-space centre (15 leaves, depth 6) and a fixed number of trees, so that
explanation cost - a property of the model - is stated, not accidental.

CPU seconds are summed over the whole process tree (driver, JVM, Spark's Python workers)
from /proc, so throughput per core holds on a shared machine: ``accounts / CPU second`` is
what a cluster's cores deliver before cluster overheads.

    python -m ka_ml.bench.spark [--quick] [--cores N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SIZES = (20_000, 50_000)
QUICK_SIZES = (1_000,)
MODEL_ACCOUNTS = 2_000
TREES = 300
YEARS = 3.0
SEED = 11
TITLE = "### Spark engine (local mode) against the local engine (issue 8)"


def _tree_cpu_s(root: int | None = None) -> float:
    """User + system CPU seconds of a process and all its descendants (Linux /proc)."""
    root = os.getpid() if root is None else root
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo += [p for p, (parent, _) in stats.items() if parent == pid]
    return total


class _Timer:
    """Wall and process-tree CPU seconds of named steps."""

    def __init__(self) -> None:
        self.times: dict[str, dict[str, float]] = {}

    def __call__(self, name: str, fn: Callable[[], Any]) -> Any:
        w0, c0 = time.perf_counter(), _tree_cpu_s()
        out = fn()
        self.times[name] = {
            "wall_s": round(time.perf_counter() - w0, 2),
            "cpu_s": round(_tree_cpu_s() - c0, 2),
        }
        return out


def unavailable() -> str | None:
    """Why the Spark benchmark cannot run here (pyspark or Java missing), or None."""
    from ka_ml.errors import KaMlError
    from ka_ml.spark.session import require_spark

    try:
        require_spark()
    except KaMlError as e:
        return str(e)
    return None


def bench_models(root: Path, trees: int = TREES, accounts: int = MODEL_ACCOUNTS) -> Any:
    """Churn and timing models fitted on a small demo world (see module doc)."""
    from ka_ml.config import Config
    from ka_ml.data.loader import load_history
    from ka_ml.demo.world import generate_world, write_world
    from ka_ml.features.snapshots import build_training_set
    from ka_ml.modeling.churn import ChurnModel
    from ka_ml.modeling.lightgbm_params import default_params
    from ka_ml.modeling.timing import TimingModel, interval_edges
    from ka_ml.scoring.score import Models
    from ka_ml.training.folds import feature_columns

    write_world(generate_world(accounts, YEARS, SEED + 1), root, fmt="parquet")
    cfg = Config.model_validate({"features": {"max_snapshots": 8}})
    history = load_history(root, cfg.data)
    ts = build_training_set(history, cfg, history.default_as_of)
    feats = feature_columns(ts)
    labelled = ts[ts["churn"].notna()]
    churn = ChurnModel(params=default_params(), random_state=SEED).fit(
        labelled[feats], labelled["churn"].to_numpy(), num_boost_round=trees
    )
    churn.calibrate(labelled[feats], labelled["churn"].to_numpy())
    edges = interval_edges(cfg.labels.purchase_windows)
    timing = TimingModel(edges=edges, params=default_params(), random_state=SEED)
    timing.fit(
        ts[feats],
        ts["days_to_next"].to_numpy(float),
        ts["next_order_observed"].to_numpy(bool),
        num_boost_round=trees // 2,
    )
    return Models(churn, timing, "bench", "bench")


def run(
    sizes: Sequence[int] = SIZES,
    cores: int | None = None,
    workdir: Path | None = None,
    log: Callable[[str], None] = print,
    model_accounts: int = MODEL_ACCOUNTS,
) -> list[dict[str, Any]]:
    """One record per size: rows, eligible accounts, both engines' wall/CPU seconds."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ka_ml.config import Config
    from ka_ml.data.loader import load_history
    from ka_ml.demo.world import generate_world, write_world
    from ka_ml.features.build import build_features
    from ka_ml.scoring.score import score_accounts
    from ka_ml.spark import features as on_spark
    from ka_ml.spark.data import read_history
    from ka_ml.spark.score import score_accounts as score_on_spark
    from ka_ml.spark.session import spark_session

    cores = cores or len(os.sched_getaffinity(0))
    cfg = Config()
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        log("fitting the bench models ...")
        models = bench_models(Path(tmp) / "model_world", accounts=model_accounts)
        timer = _Timer()
        spark = timer(
            "start",
            lambda: spark_session(
                f"local[{cores}]",
                {"spark.sql.shuffle.partitions": str(4 * cores), "spark.driver.memory": "4g"},
            ),
        )
        start = timer.times["start"]
        warm = read_history(spark, str(Path(tmp) / "model_world"), cfg.data)
        timer("warm_up", lambda: score_on_spark(warm, cfg, warm.default_as_of, models))
        for n in sizes:
            log(f"{n:,} accounts: writing the demo world ...")
            path = Path(tmp) / f"world_{n}"
            write_world(generate_world(n, YEARS, SEED), path, fmt="parquet")
            t = _Timer()
            log(f"{n:,} accounts: local engine ...")
            history = t("local load", partial(load_history, path, cfg.data))
            as_of = history.default_as_of
            feats = t("local features", partial(build_features, history, as_of, cfg))
            local = t("local score", partial(score_accounts, history, cfg, as_of, models))
            log(f"{n:,} accounts: Spark engine (local[{cores}]) ...")
            sh = t("spark read", partial(read_history, spark, str(path), cfg.data))
            t("spark features", partial(on_spark.build_features, sh, as_of, cfg))
            got = t("spark score", partial(score_on_spark, sh, cfg, as_of, models))
            diff = np.abs(
                got["churn_probability"].to_numpy() - local["churn_probability"].to_numpy()
            )
            records.append(
                {
                    "accounts": n,
                    "cores": cores,
                    "rows": history.row_counts(),
                    "eligible": len(feats),
                    "features": feats.shape[1] - 2,
                    "trees": TREES,
                    "model_accounts": model_accounts,
                    "times": t.times,
                    "spark_start": start,
                    "warm_up": timer.times["warm_up"],
                    "max_abs_diff": float(diff.max()) if len(diff) else 0.0,
                    "same_lights": bool(
                        (got["health"].fillna("") == local["health"].fillna("")).all()
                    ),
                }
            )
            del history, local, got, sh
        spark.stop()
    return records


def case(
    sizes: list[int], cores: int | None = None, model_accounts: int = MODEL_ACCOUNTS
) -> dict[str, Any]:
    """:func:`run` for ``make bench`` (in its own process: the JVM goes with it)."""
    return {"records": run(sizes, cores, log=lambda s: None, model_accounts=model_accounts)}


def throughput(record: dict[str, Any], engine: str = "spark") -> dict[str, float]:
    """Accounts scored + explained per wall second and per CPU (core) second."""
    t = record["times"][f"{engine} score"]
    n = record["eligible"]
    return {"per_wall_s": n / t["wall_s"], "per_cpu_s": n / max(t["cpu_s"], 1e-9)}


def weekly_cost(
    per_cpu_s: float,
    accounts: int = 10_000_000,
    overhead: float = 2.0,
    price_per_core_hour: float = 0.06,
    fixed_minutes: float = 10.0,
    cores: int = 64,
) -> dict[str, float]:
    """The extrapolation in the README: core-hours and dollars of one weekly run.

    ``overhead`` multiplies the local-mode CPU time (cluster shuffle over the network,
    reading from object storage, skew, retries); ``fixed_minutes`` is cluster start-up and
    driver-side steps, paid on ``cores`` cores.
    """
    core_hours = accounts / per_cpu_s * overhead / 3600 + cores * fixed_minutes / 60
    return {
        "core_hours": core_hours,
        "usd": core_hours * price_per_core_hour,
        "wall_minutes": core_hours / cores * 60,
    }


def to_markdown(records: Sequence[dict[str, Any]]) -> str:
    """A '### Spark engine' section for BENCH.md."""
    if not records:
        return ""
    r0 = records[0]
    head = "| accounts | engine | read s | features s | score s | score CPU s | accounts / CPU s |"
    lines = [
        TITLE,
        "",
        f"Demo world ({YEARS:g} years, six tables, Parquet), bench models of {r0['trees']} churn "
        f"trees (15 leaves, depth <= 6) fitted on {r0['model_accounts']:,} accounts. Spark: "
        f"`local[{r0['cores']}]`, session start {r0['spark_start']['wall_s']} s, warm-up "
        f"(JIT + Python workers) {r0['warm_up']['wall_s']} s, not counted below. 'score' = "
        "`score_accounts` (features at the as-of and a week before, predictions, TreeSHAP "
        "reasons, weekly changes, lights). CPU s = the whole process tree (driver, JVM, "
        "Python workers).",
        "",
        head,
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        t = r["times"]
        for engine, read in (("local", "local load"), ("spark", "spark read")):
            lines.append(
                f"| {r['accounts']:,} | {engine} | {t[read]['wall_s']:.1f} | "
                f"{t[engine + ' features']['wall_s']:.1f} | {t[engine + ' score']['wall_s']:.1f} | "
                f"{t[engine + ' score']['cpu_s']:.1f} | {throughput(r, engine)['per_cpu_s']:,.0f} |"
            )
    lines += [
        "",
        "Parity: "
        + "; ".join(
            f"{r['accounts']:,}: max |dp| {r['max_abs_diff']:.1e}, lights "
            f"{'identical' if r['same_lights'] else 'DIFFERENT'}"
            for r in records
        )
        + ".",
    ]
    best = throughput(records[-1])["per_cpu_s"]
    cost = weekly_cost(best)
    lines += [
        "",
        f"Extrapolation to 10M accounts (README): {best:,.0f} accounts per CPU second x "
        f"overhead 2 + 10 min fixed on 64 cores = {cost['core_hours']:,.1f} core-hours, "
        f"~${cost['usd']:,.2f} at $0.06 per core-hour, ~{cost['wall_minutes']:,.0f} min on "
        "64 cores.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 accounts only")
    parser.add_argument("--cores", type=int, help="local[N] (default: usable cores)")
    parser.add_argument("--sizes", type=int, nargs="*", help="accounts per run")
    args = parser.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    records = run(sizes, args.cores, log=lambda s: print(f"[bench.spark] {s}", flush=True))
    print(to_markdown(records))
    print(pd.DataFrame([{"accounts": r["accounts"], **r["times"]} for r in records]).to_string())


if __name__ == "__main__":
    main()
