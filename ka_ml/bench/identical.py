"""Same outputs before and after a change that should not change them (a refactoring).

Runs the main job end to end on the demo data (``demo-data``, ``train``, ``score``, as
``make all`` does) twice, in two private copies of the code: a base git revision and the
working tree as it is now (committed or not), each with its own data, MLflow store and
outputs. Then compares what a user gets:

- ``scores.parquet``: same columns, same rows in the same order; floats equal within
  ``1e-12``, everything else exactly;
- ``run_record.json`` minus the timings (the copies' own paths replaced by ``<tree>``);
- ``scores.csv`` the same way as a table (its numbers are the same floats written out in
  full: a 1e-17 change of a contribution changes its text, not what anyone reads);
- every other file of the run folder (``report.html``, ``owners/``) byte for byte, the
  copies' own paths replaced; ``scores.xlsx`` cell by cell (value, type, number
  format, fill), since the zip's bytes hold timestamps;
- every metric of every MLflow run, matched by run name (parent and child runs).

Tuning is bounded by trials, not by time, in both copies (``tuning.n_trials`` 8, so the
purchase-timing model is tuned too, and no effective timeout, written to
``configs/identical.yaml``): a time budget completes fewer trials on a busy machine, which
is a difference of load, not of code.

Prints the differences (nothing when there are none) and exits 1 when there are any.

    python -m ka_ml.bench.identical --base REV [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-12
VOLATILE = ("timings",)
CONFIG = "configs/identical.yaml"
TRIALS = 8  # the timing model tunes with a quarter of them, none below two


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def copy_base(rev: str, dest: Path) -> None:
    """The tree of ``rev`` (as committed), exported to ``dest``."""
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev], cwd=REPO, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def copy_working_tree(dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files of the working tree, as they are now."""
    dest.mkdir(parents=True)
    files = _git("ls-files", "-co", "--exclude-standard", "-z").split("\0")
    present = [f for f in files if f and (REPO / f).is_file()]
    tar = subprocess.run(
        ["tar", "-c", "-C", str(REPO), "--null", "-T", "-"],
        input="\0".join(present).encode(),
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)


def write_config(tree: Path) -> None:
    """The tree's default config with tuning bounded by :data:`TRIALS` trials only."""
    cfg = yaml.safe_load((tree / "configs" / "ka_ml.yaml").read_text())
    cfg.setdefault("tuning", {}).update({"n_trials": TRIALS, "timeout_seconds": 86400})
    (tree / CONFIG).write_text(yaml.safe_dump(cfg, sort_keys=False))


def run_demo(tree: Path, log: Path) -> None:
    """``make all``'s commands in ``tree`` with that tree's code and a private MLflow store."""
    write_config(tree)
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tree / 'models' / 'mlflow.db'}",
        "PYTHONHASHSEED": "0",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    check = subprocess.run(
        [sys.executable, "-c", "import ka_ml; print(ka_ml.__file__)"],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not check.startswith(str(tree)):
        raise RuntimeError(f"{tree} imports ka_ml from {check}, not from its own copy")
    with log.open("w") as fh:
        for cmd in ("demo-data", "train", "score"):
            subprocess.run(
                [sys.executable, "-m", "ka_ml", cmd, "--config", CONFIG],
                cwd=tree,
                env=env,
                check=True,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )


def _only_dir(root: Path) -> Path:
    dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if len(dirs) != 1:
        raise RuntimeError(f"expected one run folder in {root}, found {[d.name for d in dirs]}")
    return dirs[0]


def compare_scores(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """Differences between two score tables (empty when equal within the tolerance)."""
    if list(a.columns) != list(b.columns):
        return [f"columns differ: {sorted(set(a.columns) ^ set(b.columns))} / order"]
    if len(a) != len(b):
        return [f"row counts differ: {len(a)} vs {len(b)}"]
    out = []
    for col in a.columns:
        x, y = a[col], b[col]
        if pd.api.types.is_float_dtype(x) and pd.api.types.is_float_dtype(y):
            xa, ya = x.to_numpy(float), y.to_numpy(float)
            same_nan = np.isnan(xa) == np.isnan(ya)
            close = np.isclose(xa, ya, rtol=0.0, atol=TOLERANCE) | (np.isnan(xa) & np.isnan(ya))
            bad = ~(same_nan & close)
        else:
            bad = ~((x == y) | (x.isna() & y.isna())).to_numpy(bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            out.append(
                f"scores.{col}: {int(bad.sum())} rows differ (first: row {i}: "
                f"{x.iloc[i]!r} vs {y.iloc[i]!r})"
            )
    return out


def _normalise(value: Any, roots: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _normalise(v, roots) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_normalise(v, roots) for v in value]
    if isinstance(value, str):
        for root in roots:
            value = value.replace(root, "<tree>")
    return value


def compare_json(a: Any, b: Any, where: str = "run_record") -> list[str]:
    """Differences between two JSON values, by path (floats within the tolerance)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}.{k}: only in one" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += compare_json(a[k], b[k], f"{where}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in compare_json(x, y, f"{where}[{i}]")
        ]
    if isinstance(a, float) and isinstance(b, float) and abs(a - b) <= TOLERANCE:
        return []
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def mlflow_metrics(db: Path) -> dict[str, dict[str, float]]:
    """Every run's latest metrics by run name (``name#k`` for the k-th run of a name)."""
    con = sqlite3.connect(db)
    try:
        runs = con.execute(
            "SELECT run_uuid, name FROM runs ORDER BY start_time, run_uuid"
        ).fetchall()
        rows = con.execute("SELECT run_uuid, key, value FROM latest_metrics").fetchall()
    finally:
        con.close()
    by_run: dict[str, dict[str, float]] = {}
    for uuid, key, value in rows:
        by_run.setdefault(uuid, {})[key] = float(value)
    out: dict[str, dict[str, float]] = {}
    seen: dict[str, int] = {}
    for uuid, name in runs:
        k = seen[name] = seen.get(name, 0) + 1
        metrics = {m: v for m, v in by_run.get(uuid, {}).items() if "seconds" not in m}
        out[f"{name}#{k}"] = metrics
    return out


def compare_files(ra: Path, rb: Path, roots: tuple[str, ...]) -> list[str]:
    """The run folders' other files: text byte for byte (the copies' paths replaced),
    ``scores.xlsx`` cell by cell (value, type, number format, fill: the zip's own bytes
    hold timestamps)."""
    special = {"scores.parquet", "run_record.json", "scores.xlsx", "scores.csv"}
    names = {p.relative_to(ra).as_posix() for p in ra.rglob("*") if p.is_file()}
    other = {p.relative_to(rb).as_posix() for p in rb.rglob("*") if p.is_file()}
    out = [f"{n}: only in one" for n in sorted(names ^ other)]
    for name in sorted((names & other) - special):
        a, b = (_normalise((r / name).read_text("utf-8"), roots) for r in (ra, rb))
        if a != b:
            i = next(
                (k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)),
            )
            out.append(
                f"{name}: differs at character {i}: {a[i - 40 : i + 40]!r} vs {b[i - 40 : i + 40]!r}"
            )
    if "scores.xlsx" in names & other:
        out += compare_xlsx(ra / "scores.xlsx", rb / "scores.xlsx")
    if "scores.csv" in names & other:
        tables = [pd.read_csv(r / "scores.csv", keep_default_na=False) for r in (ra, rb)]
        out += [d.replace("scores.", "scores.csv: ", 1) for d in compare_scores(*tables)]
    return out


def compare_xlsx(a: Path, b: Path) -> list[str]:
    try:
        from openpyxl import load_workbook
    except ImportError:  # a test dependency: without it the spreadsheets are not compared
        return []
    wa, wb = load_workbook(a), load_workbook(b)
    if wa.sheetnames != wb.sheetnames:
        return [f"scores.xlsx: sheets {wa.sheetnames} vs {wb.sheetnames}"]
    out = []
    for name in wa.sheetnames:
        sa, sb = wa[name], wb[name]
        if (sa.max_row, sa.max_column, sa.freeze_panes, sa.auto_filter.ref) != (
            sb.max_row,
            sb.max_column,
            sb.freeze_panes,
            sb.auto_filter.ref,
        ):
            out.append(f"scores.xlsx/{name}: shape, frozen panes or filter differ")
            continue
        for row_a, row_b in zip(sa.iter_rows(), sb.iter_rows(), strict=True):
            for x, y in zip(row_a, row_b, strict=True):
                key_a = (x.value, x.data_type, x.number_format, x.fill.fgColor.rgb)
                key_b = (y.value, y.data_type, y.number_format, y.fill.fgColor.rgb)
                if key_a != key_b:
                    out.append(f"scores.xlsx/{name}!{x.coordinate}: {key_a!r} vs {key_b!r}")
                    break
    return out


def compare_trees(base: Path, head: Path) -> list[str]:
    """Every difference between the two copies' outputs."""
    ra, rb = _only_dir(base / "outputs"), _only_dir(head / "outputs")
    diffs = compare_scores(
        pd.read_parquet(ra / "scores.parquet"), pd.read_parquet(rb / "scores.parquet")
    )
    diffs += compare_files(ra, rb, (str(base), str(head)))
    roots = (str(base), str(head))
    ja = _normalise(json.loads((ra / "run_record.json").read_text()), roots)
    jb = _normalise(json.loads((rb / "run_record.json").read_text()), roots)
    diffs += compare_json(ja, jb)
    ma = mlflow_metrics(base / "models" / "mlflow.db")
    mb = mlflow_metrics(head / "models" / "mlflow.db")
    diffs += compare_json(ma, mb, "mlflow")
    return diffs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--keep", type=Path, help="keep both copies under this folder")
    args = parser.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="ka_ml_identical_"))
    base, head = root / "base", root / "head"
    copy_base(args.base, base)
    copy_working_tree(head)
    for tree in (base, head):
        print(f"running the demo in {tree} ...", flush=True)
        run_demo(tree, root / f"{tree.name}.log")
    diffs = compare_trees(base, head)
    rev = _git("rev-parse", "--short", args.base).strip()
    if diffs:
        print(f"{len(diffs)} differences from {rev}:")
        print("\n".join(f"- {d}" for d in diffs))
        return 1
    print(
        f"identical to {rev}: scores.parquet and scores.csv (floats within {TOLERANCE:g}), "
        "run_record.json (minus timings), the reports and owner files byte for byte, "
        "scores.xlsx cell by cell, MLflow metrics"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
