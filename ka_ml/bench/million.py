"""Scoring 1M accounts in bounded memory (issue 7.6): time and peak RSS of `run_scoring`.

Orders-only synthetic data (``features.synthetic_orders``, ~20 orders per account), models
trained on a 20,000-account sample of the same world, then the whole portfolio scored,
explained and written (scores.parquet/csv, the capped report and spreadsheet, the score
history, and one report per account owner: ``OWNERS`` of them, accounts dealt out in turn)
in one subprocess whose peak RSS (VmHWM) is the figure. Scoring works in chunks of
``scoring.chunk_rows`` accounts, so the wide intermediates (timing person-period rows, SHAP
matrices, reason texts) never exist for the whole portfolio at once, and the owners' reports
are written one owner at a time.

    python -m ka_ml.bench.million [--accounts N] [--orders-per-account K] [--owners M]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from ka_ml.bench.features import AS_OF, call_in_subprocess, peak_mb, synthetic_orders

TRAIN_ACCOUNTS = 20_000
PEAK_TARGET_MB = 8_192  # issue 7.6: under 8 GB
TUNING: dict[str, Any] = {"n_trials": 2, "timeout_seconds": 120}
OWNERS = 50  # account managers; each gets their own report (capped like report.html)


def _config(root: Path, tuning: dict[str, Any] | None = None) -> Any:
    from ka_ml.config import Config

    return Config.model_validate(
        {
            "paths": {"outputs": str(root / "outputs"), "models": str(root / "models")},
            "tuning": {**TUNING, **(tuning or {})},
            "features": {"max_snapshots": 18},
            # a throughput bench: the first model must become champion whatever its ECE
            "mlflow": {"calibration_ceiling": 1.0},
        }
    )


def _history(path: Path, owners: int = 0) -> Any:
    """The orders at ``path`` and their accounts (first order = created), dealt out in turn
    to ``owners`` account managers (none when 0)."""
    from ka_ml.data.history import History

    orders = pd.read_parquet(path)
    accounts = (
        orders.groupby("account_id", sort=True)["order_date"]
        .min()
        .rename("created_at")
        .reset_index()
    )
    if owners:
        k = pd.RangeIndex(len(accounts)) % owners
        accounts["owner"] = pd.array([f"Owner {i:02d}" for i in k], dtype="string")
    return History(orders=orders, accounts=accounts, source=str(path))


def case_train(path: str, root: str, tuning: dict[str, Any] | None = None) -> dict[str, Any]:
    from ka_ml.jobs.train import run_training

    t0 = time.perf_counter()
    h = _history(Path(path))
    report = run_training(h, _config(Path(root), tuning), AS_OF, progress=lambda s: None)
    return {
        "seconds": time.perf_counter() - t0,
        "peak_rss_mb": peak_mb(),
        "decisions": report.decisions,
    }


def case_score(path: str, root: str, owners: int = OWNERS) -> dict[str, Any]:
    """``run_scoring`` on the whole portfolio: seconds, stage timings, peak RSS (MiB)."""
    from ka_ml.jobs.score import run_scoring

    t0 = time.perf_counter()
    h = _history(Path(path), owners)
    loaded = time.perf_counter() - t0
    res = run_scoring(h, _config(Path(root)), AS_OF, Path(root) / "outputs" / "million")
    return {
        "seconds": time.perf_counter() - t0,
        "load_seconds": loaded,
        "accounts_scored": len(res.scores),
        "orders": len(h.orders),
        "timings": res.record["timings"],
        "owner_reports": int((res.record.get("delivery") or {}).get("owner_reports", 0)),
        "peak_rss_mb": peak_mb(),
    }


def run(
    accounts: int = 1_000_000,
    orders_per_account: int = 20,
    workdir: Path | None = None,
    env: dict[str, str] | None = None,
    tuning: dict[str, Any] | None = None,
    owners: int = OWNERS,
) -> dict[str, Any]:
    """Train on a sample, then score the whole synthetic portfolio (its accounts shared by
    ``owners`` account managers); both in subprocesses.

    ``tuning`` overrides :data:`TUNING` for the training (quick mode: one trial, one origin).
    """
    from ka_ml.bench.e2e import bench_env

    env = bench_env() if env is None else env
    train_accounts = min(TRAIN_ACCOUNTS, accounts)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        full = synthetic_orders(accounts, orders_per_account, seed=1)
        full.to_parquet(root / "full.parquet", index=False)
        ids = full["account_id"].drop_duplicates().iloc[:train_accounts]
        full[full["account_id"].isin(ids)].to_parquet(root / "train.parquet", index=False)
        del full
        args = {"path": str(root / "train.parquet"), "root": str(root)}
        train = call_in_subprocess(
            "ka_ml.bench.million", "case_train", {**args, "tuning": tuning}, env
        )
        args["path"] = str(root / "full.parquet")
        score = call_in_subprocess(
            "ka_ml.bench.million", "case_score", {**args, "owners": owners}, env
        )
    return {
        "accounts": accounts,
        "orders_per_account": orders_per_account,
        "train_accounts": train_accounts,
        "train": train,
        "score": score,
    }


def to_markdown(r: dict[str, Any]) -> str:
    s = r["score"]
    return "\n".join(
        [
            f"### Scoring {r['accounts']:,} accounts in bounded memory (issue 7.6)",
            "",
            f"Orders-only synthetic portfolio: {r['accounts']:,} accounts, {s['orders']:,} "
            f"orders (~{r['orders_per_account']} per account); models trained on "
            f"{r['train_accounts']:,} of them (training: {r['train']['seconds']:.0f} s, not counted). `run_scoring` end to end in one process "
            "(features, scores, reasons, week-over-week change, lights, parquet/csv, capped "
            f"report and spreadsheet, score history, {s.get('owner_reports', 0)} owner reports "
            "capped as the report is).",
            "",
            "| accounts scored | wall s | load s | score+explain s | peak RSS MiB | target |",
            "|---:|---:|---:|---:|---:|---|",
            f"| {s['accounts_scored']:,} | {s['seconds']:.0f} | {s['load_seconds']:.0f} | "
            f"{s['timings'].get('score_and_explain', float('nan')):.1f} | "
            f"{s['peak_rss_mb']:,.0f} | < {PEAK_TARGET_MB:,} MiB: "
            f"{'met' if s['peak_rss_mb'] < PEAK_TARGET_MB else 'MISSED'} |",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--orders-per-account", type=int, default=20)
    ap.add_argument("--owners", type=int, default=OWNERS)
    args = ap.parse_args(argv)
    print(to_markdown(run(args.accounts, args.orders_per_account, owners=args.owners)))


if __name__ == "__main__":
    main()
