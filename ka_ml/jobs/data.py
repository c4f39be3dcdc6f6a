"""Reading account history for a command, and the two commands that only write data.

One rule for which data a command reads when the user does not say (``--data``, else
``data.source``, else the demo world, generated on first use), read here or by Spark; and
the ``demo-data`` and ``features`` commands' writes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.data.loader import load_history
from ka_ml.demo.world import generate_world, write_world
from ka_ml.errors import KaMlError
from ka_ml.features.build import build_features
from ka_ml.io import atomic_write
from ka_ml.spark.session import check_engine, spark_session

if TYPE_CHECKING:
    from ka_ml.spark.data import SparkHistory

log = logging.getLogger("ka_ml.demo")


def choose_source(cfg: Config, explicit: str | None = None) -> str:
    """Explicit source, else ``data.source``, else the demo world (generated on first use)."""
    if explicit:
        return explicit
    if cfg.data.source:
        return cfg.data.source
    demo = Path(cfg.data.demo_dir)
    if not (demo / "orders.csv").exists():
        log.info("generating the demo data in %s (first use) ...", demo)
        world = generate_world(cfg.data.demo_accounts, cfg.data.demo_years, cfg.data.demo_seed)
        write_world(world, demo)
    return str(demo)


def load(
    cfg: Config, data: str | None, as_of: pd.Timestamp | None, engine: str = "local"
) -> History | SparkHistory:
    """The history a command works on: read and validated here, or read by Spark itself
    (``engine="spark"``, a :class:`~ka_ml.spark.data.SparkHistory`).

    The Spark engine's modules are imported only when it is chosen (declared in
    ``.importlinter``): they load the scorer, hence LightGBM and SHAP, which reading and
    ``ka-ml features``/``validate`` on the local engine never need (seconds per command).
    """
    if check_engine(engine) == "spark":
        from ka_ml.spark import data as spark_data

        source = choose_source(cfg, data)
        spark_data.refuse_database_url(source)  # before a JVM starts
        return spark_data.read_history(spark_session(), source, cfg.data)
    return load_history(choose_source(cfg, data), cfg.data, as_of=as_of)


def check_scoring_date(
    history: History | SparkHistory,
    as_of: pd.Timestamp,
    cfg: Config,
    *,
    explicit: bool,
    today: pd.Timestamp,
    demo: bool = False,
) -> tuple[str, ...]:
    """Refuse to score a date after tomorrow (``today``: the run's clock, in UTC): a weekly
    run dated by the data (the day after its last order) would publish a made-up future week
    for one mistyped order date, and that week would stay the latest everywhere (the read
    API, the write-back table, the digests). Returns the warnings to record: the newest order
    lies ``scoring.stale_data_days`` or more before the scoring date (a stale export makes
    every account look that much quieter), or, for a date taken from the data, before
    ``today`` (the week scored is not this week)."""
    last = history.default_as_of - pd.Timedelta(days=1)  # the newest order's day
    tomorrow = today.normalize() + pd.Timedelta(days=1)
    if as_of > tomorrow:
        if explicit:
            raise KaMlError(
                f"--as-of {as_of.date()} is after tomorrow ({tomorrow.date()}): scores of a "
                "future date would be published as that week's.",
                f"pass a date up to {tomorrow.date()} (or leave --as-of out: the day after the "
                "newest order).",
            )
        raise KaMlError(
            f"The scoring date {as_of.date()} (the day after the newest order) is after "
            f"tomorrow ({tomorrow.date()}): the data holds orders dated after today, newest "
            f"{last.date()}.",
            f"correct those order dates in the source (a typo in the year or month?), or pass "
            f"--as-of {tomorrow.date()} to score today's week without them.",
        )
    stale = cfg.scoring.stale_data_days
    lag = (as_of - last).days
    if stale is not None and lag >= stale:
        return (
            f"the newest order in the data is from {last.date()}, {lag} days before the "
            f"scoring date {as_of.date()}: if the export is stale, every account looks {lag} "
            "days quieter than it is (check the source; scoring.stale_data_days)",
        )
    age = (today.normalize() - last).days
    if stale is not None and not (explicit or demo) and age >= stale:  # dated by the data
        return (
            f"the newest order in the data is from {last.date()}, {age} days ago: these "
            f"scores are as of {as_of.date()}, not this week; if the export is stale, "
            "refresh it (scoring.stale_data_days)",
        )
    return ()


def write_demo(
    cfg: Config,
    out: Path | None,
    accounts: int | None,
    years: float | None,
    seed: int | None,
    fmt: str,
) -> tuple[list[Path], Path]:
    """The synthetic demo portfolio (config defaults for what is not given): files, folder."""
    if fmt not in ("csv", "parquet"):
        raise KaMlError(f"--format '{fmt}' is not supported.", "use csv or parquet.")
    target = out or Path(cfg.data.demo_dir)
    world = generate_world(
        accounts or cfg.data.demo_accounts,
        years or cfg.data.demo_years,
        cfg.data.demo_seed if seed is None else seed,
    )
    return write_world(world, target, fmt=fmt), target  # type: ignore[arg-type]


def write_features(
    cfg: Config, data: str | None, as_of: pd.Timestamp | None, out: Path, engine: str
) -> tuple[pd.DataFrame, pd.Timestamp]:
    """The point-in-time feature table as of ``as_of`` (default: the data's), written to
    ``out`` (.parquet or .csv) atomically."""
    if out.suffix not in (".parquet", ".csv"):
        raise KaMlError(f"--out '{out}' must end in .parquet or .csv.", "pick one of them.")
    h = load(cfg, data, as_of, engine)
    day = as_of or h.default_as_of
    if engine == "spark":
        from ka_ml.spark import features as spark_features

        df = spark_features.build_features(h, day, cfg)
    else:
        df = build_features(h, day, cfg)  # type: ignore[arg-type]
    if out.suffix == ".parquet":
        atomic_write(out, lambda p: df.to_parquet(p, index=False))
    else:
        atomic_write(out, lambda p: df.to_csv(p, index=False))
    return df, day
