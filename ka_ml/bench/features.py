"""Benchmark of the feature build: time and peak memory by portfolio size and snapshots.

Each case runs in its own subprocess (so its peak RSS is its own): it reads a synthetic
orders table from Parquet, builds a History and times ``build_features`` (1 snapshot) or
``build_training_set`` (12 monthly snapshots, labels included). A DuckDB SQL query of the
core order aggregates (count, sum, last date, mean gap via a window LAG) over the same
Parquet file is the yardstick. The growth exponent is the slope of log(time) on log(rows).

    python -m ka_ml.bench.features [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

AS_OF = pd.Timestamp("2026-01-01")
YEARS = 3.0
PRODUCTS = 40
QUICK_SIZES = (1000, 10000)
FULL_SIZES = (1000, 10000, 100000)
MARK = "BENCH_RESULT "  # prefixes the child's JSON line on stdout


def synthetic_orders(
    n_accounts: int, orders_per_account: int = 100, years: float = YEARS, seed: int = 0
) -> pd.DataFrame:
    """Orders-only data: Poisson(orders_per_account) orders per account over ``years``.

    Each account has its own active span inside the period (so recency, gaps and trends
    vary); amounts are lognormal with ~1% credit notes. Typed like the loader's output.
    """
    rng = np.random.default_rng(seed)
    days = int(years * 365)
    per = rng.poisson(orders_per_account, n_accounts)
    acc = np.repeat(np.arange(n_accounts), per)
    start = rng.integers(0, days // 3, n_accounts)
    stop = np.minimum(days, start + rng.integers(days // 3, days + 1, n_accounts))
    u = rng.random(len(acc))
    day = (start[acc] + u * (stop - start)[acc]).astype(np.int64)
    amount = rng.lognormal(6.0, 1.0, len(acc)).round(2)
    amount[rng.random(len(acc)) < 0.01] *= -0.3
    first = (AS_OF - pd.Timedelta(days=days)).to_datetime64().astype("datetime64[D]")
    ids = np.char.add("A", np.char.zfill(np.arange(n_accounts).astype(str), 7))
    df = pd.DataFrame(
        {
            "account_id": pd.array(ids[acc], dtype="str"),
            "order_date": (first + day).astype("datetime64[us]"),
            "amount": amount,
            "product": pd.array(
                np.char.add("P", rng.integers(0, PRODUCTS, len(acc)).astype(str)), dtype="str"
            ),
        }
    )
    return df.sort_values(["account_id", "order_date"], ignore_index=True)


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def peak_mb() -> float:
    """Peak RSS of this process since it started.

    VmHWM first: ``ru_maxrss`` survives ``exec`` on Linux, so a child forked from a big
    parent would report the parent's size.
    """
    peak = _status_mb("VmHWM")
    if peak == peak:  # not NaN
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 1024 if sys.platform != "darwin" else maxrss / 2**20


def _case_pandas(path: str, snapshots: int) -> dict[str, Any]:
    from ka_ml.config import Config
    from ka_ml.data.history import History
    from ka_ml.features import build_features, build_training_set

    t0 = time.perf_counter()
    orders = pd.read_parquet(path)
    orders["account_id"] = orders["account_id"].astype("str")
    orders["product"] = orders["product"].astype("str")
    accounts = pd.DataFrame({"account_id": pd.array(orders["account_id"].unique(), dtype="str")})
    history = History(orders=orders, accounts=accounts)
    load = time.perf_counter() - t0
    rss_loaded = _rss_mb()
    cfg = Config.model_validate(
        {"features": {"max_snapshots": snapshots, "snapshot_every_days": 30}}
    )
    t0 = time.perf_counter()
    if snapshots == 1:
        df = build_features(history, AS_OF, cfg)
    else:
        df = build_training_set(history, cfg, AS_OF)
    build = time.perf_counter() - t0
    return {
        "load_s": round(load, 3),
        "seconds": round(build, 3),
        "rss_after_load_mb": round(rss_loaded, 1),
        "peak_rss_mb": round(peak_mb(), 1),
        "output_rows": len(df),
        "output_columns": df.shape[1],
    }


def _case_duckdb(path: str, snapshots: int) -> dict[str, Any]:
    import duckdb

    sql = f"""
        WITH o AS (
            SELECT account_id, order_date, amount,
                   date_diff('day', LAG(order_date) OVER w, order_date) AS gap
            FROM read_parquet('{path}')
            WHERE order_date < TIMESTAMP '{AS_OF}'
            WINDOW w AS (PARTITION BY account_id ORDER BY order_date)
        )
        SELECT account_id, count(*) AS n, sum(amount) AS spend,
               max(order_date) AS last_order, avg(gap) AS mean_gap
        FROM o GROUP BY account_id
    """
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    t0 = time.perf_counter()
    df = con.execute(sql).df()
    build = time.perf_counter() - t0
    return {
        "load_s": 0.0,
        "seconds": round(build, 3),
        "rss_after_load_mb": float("nan"),
        "peak_rss_mb": round(peak_mb(), 1),
        "output_rows": len(df),
        "output_columns": df.shape[1],
    }


def call_in_subprocess(
    module: str,
    fn: str,
    kwargs: dict[str, Any],
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """``module.fn(**kwargs)`` in a fresh interpreter; its JSON-able dict result.

    A fresh process per case makes its peak RSS (VmHWM) the case's own and keeps one
    case's caches and threads from colouring the next one's time.
    """
    code = (
        "import importlib, json, sys; "
        f"r = getattr(importlib.import_module({module!r}), {fn!r})(**json.loads(sys.argv[1])); "
        f"print('\\n{MARK}' + json.dumps(r, default=str))"
    )
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"} if env is None else env
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark case {module}.{fn}{kwargs} failed:\n{done.stderr[-3000:]}")
    line = [x for x in done.stdout.splitlines() if x.startswith(MARK)][-1]
    return dict(json.loads(line[len(MARK) :]))


def _in_subprocess(engine: str, path: Path, snapshots: int) -> dict[str, Any]:
    return call_in_subprocess(
        "ka_ml.bench.features", f"_case_{engine}", {"path": str(path), "snapshots": snapshots}
    )


def run(
    sizes: Sequence[int] = FULL_SIZES,
    snapshots: Sequence[int] = (1, 12),
    orders_per_account: int = 100,
    workdir: Path | None = None,
) -> list[dict[str, Any]]:
    """One record per (engine, accounts, snapshots): rows, seconds, peak RSS (MiB)."""
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for n in sizes:
            orders = synthetic_orders(n, orders_per_account)
            path = Path(tmp) / f"orders_{n}.parquet"
            orders.to_parquet(path, index=False)
            rows = len(orders)
            del orders
            cases = [("pandas", k) for k in snapshots] + [("duckdb", 1)]
            for engine, k in cases:
                rec = {"engine": engine, "accounts": n, "orders": rows, "snapshots": k}
                rec.update(_in_subprocess(engine, path, k))
                records.append(rec)
    return records


def growth_exponents(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Slope of log(seconds) on log(orders) per (engine, snapshots): ~1 means linear."""
    out: dict[str, float] = {}
    df = pd.DataFrame(list(records))
    for (engine, k), g in df.groupby(["engine", "snapshots"]):
        g = g[g["seconds"] > 0]
        if g["orders"].nunique() >= 2:
            slope = np.polyfit(np.log(g["orders"]), np.log(g["seconds"]), 1)[0]
            out[f"{engine}, {k} snapshot{'s' if k != 1 else ''}"] = round(float(slope), 2)
    return out


def _versions() -> str:
    parts = [f"python {platform.python_version()}"]
    for pkg in ("pandas", "numpy", "pyarrow", "duckdb"):
        try:
            parts.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            parts.append(f"{pkg} n/a")
    return ", ".join(parts)


def to_markdown(records: Sequence[dict[str, Any]]) -> str:
    """A dated markdown section: machine, versions, the table and growth exponents."""
    lines = [
        f"## Feature build benchmark, {pd.Timestamp.now().strftime('%Y-%m-%d %H:%M')}",
        "",
        f"- machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs",
        f"- versions: {_versions()}",
        "- data: synthetic orders (account_id, order_date, amount, product), ~100 per account "
        "over 3 years; pandas = ka_ml.features (1 snapshot: build_features; more: "
        "build_training_set with labels); duckdb = SQL count/sum/last date/mean gap (LAG) "
        "over the same Parquet file.",
        "",
        "| engine | accounts | orders | snapshots | seconds | peak RSS MiB | RSS after load MiB | rows out |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        lines.append(
            f"| {r['engine']} | {r['accounts']:,} | {r['orders']:,} | {r['snapshots']} | "
            f"{r['seconds']:.2f} | {r['peak_rss_mb']:,.0f} | {r['rss_after_load_mb']:,.0f} | "
            f"{r['output_rows']:,} |"
        )
    exps = growth_exponents(records)
    if exps:
        lines += ["", "Growth exponent (slope of log time on log orders; 1 = linear):", ""]
        lines += [f"- {k}: {v}" for k, v in exps.items()]
    return "\n".join(lines) + "\n"


def write_results(records: Sequence[dict[str, Any]], path: Path | str) -> Path:
    """Append the results as a markdown section to ``path`` (created if needed)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a", encoding="utf-8") as f:
        f.write(("\n" if p.stat().st_size else "") + to_markdown(records))
    return p


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k accounts only")
    parser.add_argument("--out", type=Path, help="append the markdown section to this file")
    args = parser.parse_args(argv)
    records = run(QUICK_SIZES if args.quick else FULL_SIZES)
    if args.out:
        write_results(records, args.out)
    print(to_markdown(records))


if __name__ == "__main__":
    main()
