"""The three commands a user runs, end to end, as a user runs them (issue 17, point 5).

For each size: the demo world is written as Parquet with a config pointing at it (the
benchmark's training budget), then ``ka-ml features``, ``ka-ml train`` and ``ka-ml score``
run as subprocesses of this one, each timed from the outside: wall seconds, CPU seconds
(user + system, its own and its children's) and peak RSS (the largest of the command's
processes, from ``wait4``). ``score`` runs once for the week before, untimed, so the timed
run is a normal week with a previous run to compare with.

Beside them, in the same run and in fresh interpreters: ``load_history`` on the same files
against a plain DuckDB read of them into pandas frames (and into Arrow tables), and the
ratio. Rendered into the targets of BENCH.md by :mod:`ka_ml.bench.__main__`.

    python -m ka_ml.bench.cli [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from ka_ml.bench import e2e
from ka_ml.bench.features import call_in_subprocess

TABLES = ("orders", "accounts", "usage", "tickets", "surveys", "contracts")
TARGETS_S = {"score": 60.0, "features": 15.0, "train": 150.0}  # issue 17, at 100k accounts
SCORE_RSS_TARGET_MB = 3 * 1024
LOAD_RATIO_TARGET = 3.0


# Runs argv[2:] and writes its peak RSS (KiB) to argv[1]. Linux keeps ru_maxrss across exec,
# so a command started straight from this (large) process would report this process's peak
# whenever its own is smaller; started from this small launcher it reports its own.
_LAUNCHER = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def timed(cmd: Sequence[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    """Run ``cmd``; its wall and CPU seconds (with its children's) and peak RSS (MiB, its
    largest process). Raises on failure."""
    peak_file = cwd / "last_command.maxrss"
    peak_file.unlink(missing_ok=True)
    t = time.perf_counter()
    with open(cwd / "last_command.log", "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(peak_file), *cmd],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = (cwd / "last_command.log").read_text(encoding="utf-8")[-2000:]
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(int(peak_file.read_text()) / 1024, 1),  # Linux: KiB
    }


def case_load(data_dir: str) -> dict[str, Any]:
    """``load_history`` (read, type, validate) of the folder: seconds."""
    from ka_ml.config import Config
    from ka_ml.data.loader import load_history

    t = time.perf_counter()
    history = load_history(data_dir, Config().data)
    return {"load_s": round(time.perf_counter() - t, 3), "rows": sum(history.row_counts().values())}


def case_duckdb(data_dir: str) -> dict[str, Any]:
    """A plain DuckDB read of the same Parquet files: into pandas, and into Arrow."""
    import duckdb

    out: dict[str, Any] = {}
    for target in ("pandas", "arrow"):
        con = duckdb.connect()
        t = time.perf_counter()
        for name in TABLES:
            rel = con.sql(f"SELECT * FROM read_parquet('{Path(data_dir) / name}.parquet')")
            rel.df() if target == "pandas" else rel.to_arrow_table()
        out[f"{target}_s"] = round(time.perf_counter() - t, 3)
        con.close()
    return out


def _config(root: Path, data: Path, budget: e2e.Budget) -> Path:
    cfg = budget.overrides(root)
    cfg["data"] = {"source": str(data)}
    path = root / "ka_ml.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def run_size(
    n: int, budget: e2e.Budget, env: dict[str, str], root: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """One size: the world, then load vs DuckDB, features, train, score."""
    data = root / "data"
    world = call_in_subprocess(
        "ka_ml.bench.e2e", "case_world", {"n_accounts": n, "data_dir": str(data)}, env
    )
    cfg = str(_config(root, data, budget))
    cli = [sys.executable, "-m", "ka_ml"]
    rec: dict[str, Any] = {"accounts": n, "rows": world["rows"]}
    log(f"CLI at {n:,} accounts: load vs DuckDB ...")
    rec["load"] = call_in_subprocess("ka_ml.bench.cli", "case_load", {"data_dir": str(data)}, env)
    rec["duckdb"] = call_in_subprocess(
        "ka_ml.bench.cli", "case_duckdb", {"data_dir": str(data)}, env
    )
    log(f"CLI at {n:,} accounts: ka-ml features / train / score ...")
    rec["features"] = timed(
        [*cli, "features", "--config", cfg, "--out", str(root / "f.parquet")], env, root
    )
    rec["train"] = timed([*cli, "train", "--config", cfg], env, root)
    week_before = str(_default_as_of(data) - dt.timedelta(days=7))
    timed(
        [*cli, "score", "--config", cfg, "--as-of", week_before, "--out", str(root / "prev")],
        env,
        root,
    )
    rec["score"] = timed([*cli, "score", "--config", cfg, "--out", str(root / "out")], env, root)
    return rec


def _default_as_of(data: Path) -> dt.date:
    """The contract's default as-of: the day after the last order."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    last = pc.max(pq.read_table(data / "orders.parquet", columns=["order_date"])["order_date"])
    return dt.date.fromisoformat(str(last.as_py())[:10]) + dt.timedelta(days=1)


def run(
    sizes: Sequence[int],
    budget: e2e.Budget,
    env: dict[str, str] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> list[dict[str, Any]]:
    env = env or e2e.bench_env()
    with tempfile.TemporaryDirectory(prefix="ka_ml_bench_cli_") as tmp:
        records = []
        for n in sizes:
            root = Path(tmp) / f"n{n}"
            root.mkdir()
            records.append(run_size(n, budget, env, root, log))
        return records


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def targets(records: Sequence[dict[str, Any]], quick: bool = False) -> list[str]:
    """The issue's target lines, judged at the largest size."""
    if not records:
        return []
    r = records[-1]
    s, f, t = r["score"], r["features"], r["train"]
    ratio = r["load"]["load_s"] / max(r["duckdb"]["pandas_s"], 1e-9)
    note = " (quick mode: sizes too small to judge)" if quick else ""
    at = f"at {r['accounts']:,} accounts{note}"
    return [
        f"- `ka-ml score` with every output {at}: {s['wall_s']:.1f} s wall, peak RSS "
        f"{s['peak_rss_mb']:,.0f} MiB; targets < {TARGETS_S['score']:g} s: "
        f"{_verdict(s['wall_s'] < TARGETS_S['score'])}, < {SCORE_RSS_TARGET_MB:,} MiB: "
        f"{_verdict(s['peak_rss_mb'] < SCORE_RSS_TARGET_MB)}.",
        f"- `ka-ml features` {at}: {f['wall_s']:.1f} s; target < {TARGETS_S['features']:g} s: "
        f"{_verdict(f['wall_s'] < TARGETS_S['features'])}. Loading {r['load']['load_s']:.1f} s "
        f"= {ratio:.1f}x a DuckDB read into pandas ({r['duckdb']['pandas_s']:.1f} s; into Arrow "
        f"{r['duckdb']['arrow_s']:.1f} s); target within {LOAD_RATIO_TARGET:g}x: "
        f"{_verdict(ratio <= LOAD_RATIO_TARGET)}.",
        f"- `ka-ml train` {at}: {t['wall_s']:.1f} s; target < {TARGETS_S['train']:g} s: "
        f"{_verdict(t['wall_s'] < TARGETS_S['train'])}.",
    ]


def to_markdown(records: Sequence[dict[str, Any]], budget: e2e.Budget) -> str:
    lines = [
        "### The CLI end to end (`ka-ml features`, `train`, `score`)",
        "",
        f"Each command as a user runs it (a subprocess; peak RSS = its largest process); demo "
        f"world as Parquet; training budget: {budget.n_trials} trials, "
        f"{budget.max_snapshots} snapshots, {budget.backtest_origins} test "
        f"origin{'s' if budget.backtest_origins != 1 else ''} (tuning's folds: issue 17's "
        '"1 fold"), the default `tuning.max_accounts` (above it, `train` learns from a '
        "seeded sample of the accounts; `score` scores every one); `score` "
        "after an untimed run for the week before. Load = `load_history` in a fresh "
        "interpreter; DuckDB = `SELECT *` of the same files.",
        "",
        "| accounts | command | wall s | CPU s | peak RSS MiB |",
        "|---:|---|---:|---:|---:|",
    ]
    for r in records:
        for cmd in ("features", "train", "score"):
            c = r[cmd]
            lines.append(
                f"| {r['accounts']:,} | `ka-ml {cmd}` | {c['wall_s']:.1f} | {c['cpu_s']:.1f} | "
                f"{c['peak_rss_mb']:,.0f} |"
            )
    lines += [
        "",
        "| accounts | rows | load s | DuckDB -> pandas s | ratio | DuckDB -> Arrow s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        d, load = r["duckdb"], r["load"]["load_s"]
        lines.append(
            f"| {r['accounts']:,} | {sum(r['rows'].values()):,} | {load:.2f} | {d['pandas_s']:.2f} | "
            f"{load / max(d['pandas_s'], 1e-9):.1f}x | {d['arrow_s']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=list(e2e.SIZES))
    args = p.parse_args(argv)
    budget = e2e.Budget()
    records = run(args.sizes, budget, log=lambda s: print(f"[cli] {s}", flush=True))
    print(json.dumps(records, indent=1))
    print("\n".join(targets(records)))
    print(to_markdown(records, budget))


if __name__ == "__main__":
    main()
