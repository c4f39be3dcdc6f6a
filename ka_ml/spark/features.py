"""Feature tables and training snapshots on Spark, equal to the local engine's.

Two steps, as in :mod:`ka_ml.features.build`:

1. per-account: ``groupBy(bucket).applyInPandas`` over the long frame of every table
   (:meth:`SparkHistory.long_frame`), each call running the local kernel on a whole bucket
   of accounts (:func:`ka_ml.spark.kernel.feature_rows` / ``training_rows``);
2. portfolio: one revenue figure per account is collected and run through the local
   engine's own :func:`add_portfolio_features` on the driver (shares need the whole
   portfolio; this frame is small next to the order history); the result joins back.

:func:`feature_frame` leaves the result in Spark (write it out at scale);
:func:`build_features`, :func:`feature_frames` and :func:`build_training_set` collect it as
the local functions' pandas frames. Training itself stays on one machine:
:func:`build_training_set` refuses, with the remedy, snapshots that would not fit.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.errors import KaMlError
from ka_ml.features import snapshots
from ka_ml.features.build import KEYS, add_portfolio_features
from ka_ml.features.catalog import features_for
from ka_ml.spark import kernel
from ka_ml.spark.data import SparkHistory, from_history
from ka_ml.spark.session import spark_session

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("ka_ml.spark")

Source = History | SparkHistory
MEMORY_FACTOR = 4  # the training set, its folds and LightGBM's copy live side by side


def as_spark(source: Source) -> SparkHistory:
    """A SparkHistory (a History is sent to the running/new session first)."""
    if isinstance(source, SparkHistory):
        return source

    return from_history(spark_session(), source)


def default_buckets(sh: SparkHistory) -> int:
    """Account buckets = ``spark.sql.shuffle.partitions`` (the knob Spark users tune)."""
    value = sh.spark.conf.get("spark.sql.shuffle.partitions") or "200"
    return int(value) if value.isdigit() else 200


@dataclass(frozen=True)
class Plan:
    """What the kernels need to know about the whole data (computed once on the driver)."""

    names: list[str]  # every feature, catalog order
    per_account: list[str]  # the kernel's features (no portfolio ones)
    categories: dict[str, list[str]]  # the accounts' attribute levels
    industry: bool  # the accounts table has an industry column

    @property
    def all_categories(self) -> dict[str, list[str]]:
        return kernel.all_categories(self.categories)


def plan(sh: SparkHistory, cfg: Config) -> Plan:
    schema = sh.schema_history()
    names = [s.name for s in features_for(schema, cfg.features.windows_days)]
    per_account = [n for n in names if n not in kernel.PORTFOLIO]
    return Plan(names, per_account, sh.categories(), "industry" in schema.accounts.columns)


def _ddl(names: Iterable[str], categorical: Iterable[str]) -> str:
    cats = set(categorical)
    return ", ".join(f"`{n}` {'string' if n in cats else 'double'}" for n in names)


def _kernel_udf(
    long: pd.DataFrame,
    *,
    layout: kernel.Layout,
    dates: list[pd.Timestamp],
    cfg: Config,
    categories: dict[str, list[str]],
    names: list[str],
    labels_as_of: pd.Timestamp | None,
) -> pd.DataFrame:
    """One bucket: long frame in, feature (and label) rows out (runs on executors)."""
    history = kernel.unpack(long, layout)
    if labels_as_of is None:
        rows = kernel.feature_rows(history, dates, cfg, categories, names)
    else:
        rows = kernel.training_rows(history, dates, labels_as_of, cfg, categories, names)
    return kernel.to_spark(rows)


def kernel_frame(
    sh: SparkHistory,
    dates: Sequence[pd.Timestamp],
    cfg: Config,
    p: Plan,
    *,
    labels_as_of: pd.Timestamp | None = None,
    buckets: int | None = None,
) -> DataFrame:
    """Per-account rows of every account of the universe at each date (see kernel)."""
    days = sorted({pd.Timestamp(d).normalize() for d in dates})
    schema = (
        "account_id string, as_of timestamp_ntz, _eligible boolean, _revenue double, "
        "_industry string, " + _ddl(p.per_account, p.categories)
    )
    if labels_as_of is not None:
        schema += ", " + ", ".join(f"{k} {v}" for k, v in kernel.LABELS.items())
    layout, categories, names = sh.layout(), p.categories, p.per_account

    def fn(long: pd.DataFrame) -> pd.DataFrame:  # a plain function: Spark reads its hints
        return _kernel_udf(
            long,
            layout=layout,
            dates=days,
            cfg=cfg,
            categories=categories,
            names=names,
            labels_as_of=labels_as_of,
        )

    long = sh.long_frame(buckets or default_buckets(sh))
    return long.groupBy("_bucket").applyInPandas(fn, schema)


def portfolio(revenue: pd.DataFrame, cfg: Config, p: Plan) -> pd.DataFrame:
    """Revenue share, ABC tier and dependency index of the eligible rows, per date.

    ``revenue``: ``account_id``, ``as_of``, ``_eligible``, ``_revenue``, ``_industry`` of
    every account of the universe. Runs the local engine's :func:`add_portfolio_features`.
    """
    out = []
    for stamp, g in revenue.groupby("as_of", sort=True):
        day = pd.Timestamp(str(stamp))
        g = g.sort_values("account_id")
        ids = g["account_id"].astype("str").to_numpy(dtype=object)
        rev = pd.Series(
            g["_revenue"].to_numpy(np.float64),
            index=pd.Index(ids, name="account_id"),
            name="revenue",
        )
        accounts = pd.DataFrame({"account_id": ids})
        if p.industry:
            accounts["industry"] = g["_industry"].astype(object).to_numpy()
        stub = History(orders=pd.DataFrame(), accounts=accounts)
        eligible = g[g["_eligible"].astype(bool)]
        rows = pd.DataFrame({"account_id": eligible["account_id"].astype("str").to_numpy()})
        done = add_portfolio_features(rows, stub, day, cfg, revenue=rev)
        done["as_of"] = np.datetime64(day, "us")
        done["abc_tier"] = done["abc_tier"].astype(object)
        out.append(done)
    if not out:
        return pd.DataFrame(
            {
                "account_id": pd.Series(dtype=object),
                "revenue_share": pd.Series(dtype="float64"),
                "abc_tier": pd.Series(dtype=object),
                "dependency_index": pd.Series(dtype="float64"),
                "as_of": pd.Series(dtype="datetime64[us]"),
            }
        )
    return pd.concat(out, ignore_index=True)


@dataclass(frozen=True)
class Features:
    """Feature rows in Spark (``frame``) and the persisted kernel output behind them."""

    frame: DataFrame
    plan: Plan
    cached: DataFrame

    def release(self) -> None:
        self.cached.unpersist()


def feature_frame(
    source: Source,
    dates: Sequence[pd.Timestamp],
    cfg: Config,
    *,
    labels_as_of: pd.Timestamp | None = None,
    buckets: int | None = None,
    check_memory: bool = False,
) -> Features:
    """The feature rows of every date as one Spark DataFrame (portfolio columns joined).

    Rows are the local feature tables' rows (eligible accounts), unordered; categorical
    features are text. Optional ``labels_as_of``: the training labels too. The kernel
    output stays persisted until :meth:`Features.release`; the caller collects or writes.
    """
    from pyspark.sql import functions as F

    sh = as_spark(source)
    p = plan(sh, cfg)
    rows = kernel_frame(sh, dates, cfg, p, labels_as_of=labels_as_of, buckets=buckets)
    rows = rows.persist()
    try:
        revenue = rows.select("account_id", "as_of", "_eligible", "_revenue", "_industry")
        collected = revenue.toPandas()
        if check_memory:
            n = int(collected["_eligible"].astype(bool).sum())
            width = len(p.names) + len(KEYS) + len(kernel.LABELS)
            check_fits(n, width)
            check_driver_fits(n, width, driver_heap(sh.spark))
        folio = portfolio(collected, cfg, p)
    except BaseException:
        rows.unpersist()
        raise
    del collected
    folio_df = sh.spark.createDataFrame(
        folio[["account_id", "as_of", *kernel.PORTFOLIO]],
        schema="account_id string, as_of timestamp_ntz, revenue_share double, "
        "abc_tier string, dependency_index double",
    )
    labels = list(kernel.LABELS) if labels_as_of is not None else []
    wanted = ["account_id", "as_of", *p.names, *labels]
    out = rows.where(F.col("_eligible")).join(folio_df, ["account_id", "as_of"], "inner")
    return Features(out.select(*[F.col(f"`{c}`") for c in wanted]), p, rows)


def _collect(df: DataFrame, p: Plan, extra: Sequence[str] = ()) -> pd.DataFrame:
    got = df.toPandas()
    out = kernel.restore(got, p.names, p.all_categories)
    for c in extra:
        out[c] = got[c].to_numpy()
    return out.sort_values(["as_of", "account_id"], kind="stable").reset_index(drop=True)


def feature_frames(
    source: Source, dates: Iterable[pd.Timestamp], cfg: Config, *, buckets: int | None = None
) -> dict[pd.Timestamp, pd.DataFrame]:
    """:func:`ka_ml.features.build.feature_frames` computed on Spark."""
    days = sorted({pd.Timestamp(d).normalize() for d in dates})
    if not days:
        return {}
    feats = feature_frame(source, days, cfg, buckets=buckets)
    try:
        table = _collect(feats.frame, feats.plan)
    finally:
        feats.release()
    return {d: table[table["as_of"] == np.datetime64(d, "us")].reset_index(drop=True) for d in days}


def build_features(
    source: Source, as_of: pd.Timestamp, cfg: Config, *, buckets: int | None = None
) -> pd.DataFrame:
    """:func:`ka_ml.features.build.build_features` computed on Spark (same frame)."""
    as_of = pd.Timestamp(as_of).normalize()
    return feature_frames(source, [as_of], cfg, buckets=buckets)[as_of]


def build_training_set(
    history: Source, cfg: Config, as_of: pd.Timestamp, *, buckets: int | None = None
) -> pd.DataFrame:
    """:func:`ka_ml.features.snapshots.build_training_set` with the snapshots built on Spark.

    The collected frame must fit this machine: a KaMlError with the remedy otherwise.
    """

    as_of = pd.Timestamp(as_of).normalize()
    sh = as_spark(history)
    first = _first_known_order(sh, as_of)
    probe = History(  # the first order is all snapshot_dates reads
        orders=pd.DataFrame(
            {"order_date": pd.Series([] if first is None else [first], dtype="datetime64[us]")}
        ),
        accounts=pd.DataFrame({"account_id": pd.Series(dtype="str")}),
    )
    dates = snapshots.snapshot_dates(probe, cfg, as_of)
    if not dates:
        if isinstance(history, History):
            return snapshots.build_training_set(history, cfg, as_of)
        raise KaMlError(
            f"No snapshot date: {snapshots.no_snapshot_reason(probe, cfg, as_of)}.",
            "pass a later --as-of or data with a longer order history.",
        )
    feats = feature_frame(sh, dates, cfg, labels_as_of=as_of, buckets=buckets, check_memory=True)
    try:
        ts = _collect(feats.frame, feats.plan, extra=list(kernel.LABELS))
    finally:
        feats.release()
    ts["churn"] = ts["churn"].astype("float64")
    ts["churn_definition"] = ts["churn_definition"].astype("str")
    ts["days_to_next"] = ts["days_to_next"].astype("float64")
    ts["next_order_observed"] = ts["next_order_observed"].astype(bool)
    horizon = pd.Timedelta(days=cfg.labels.horizon_days)
    for stamp, g in ts.groupby("as_of", sort=True):
        s = pd.Timestamp(str(stamp))
        label = g["churn"].to_numpy()
        observed = s + horizon <= as_of
        rate = (
            f"{np.nanmean(label):.1%}" if observed and np.isfinite(label).any() else "not observed"
        )
        log.info("snapshot %s: %d accounts, churn %s", s.date(), len(g), rate)
    return ts


def _first_known_order(sh: SparkHistory, as_of: pd.Timestamp) -> pd.Timestamp | None:
    from pyspark.sql import functions as F

    o = sh.frames["orders"]
    row = o.where(F.col("order_date") < F.lit(as_of.to_pydatetime())).agg(F.min("order_date"))
    first = row.first()
    return None if first is None or first[0] is None else pd.Timestamp(first[0])


def available_memory() -> int:
    """Bytes this machine can still give (MemAvailable; physical memory as a fallback)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 2**62


HEAP_FACTOR = 2  # a collected frame's Arrow batches and their copies in the driver's heap


def driver_heap(spark: SparkSession) -> int | None:
    """The driver JVM's maximum heap in bytes (``spark.driver.memory``), None if unknown."""
    try:
        return int(spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory())  # type: ignore[union-attr]
    except Exception:  # a platform that hides the JVM (Spark Connect)
        return None


def check_driver_fits(rows: int, columns: int, heap: int | None) -> None:
    """Refuse to collect the training snapshots through a driver heap too small for them
    (a user's 25,000 accounts died in the JVM, "OutOfMemoryError: Java heap space", after
    a minute under the 1 GiB Spark starts with), naming the setting."""
    need = rows * columns * 8 * HEAP_FACTOR
    if heap is None or need <= heap:
        return
    gib = max(2, -(-need * 3 // 2 // 2**30))  # half as much again, in whole GiB
    raise KaMlError(
        f"The training snapshots ({rows:,} rows x {columns} columns) pass through Spark's "
        f"driver, which needs about {need / 2**30:.1f} GiB of heap for them ({HEAP_FACTOR} x "
        f"rows x columns x 8 bytes) and has {heap / 2**30:.1f} GiB (spark.driver.memory).",
        f'give the driver more memory: PYSPARK_SUBMIT_ARGS="--driver-memory {gib}g '
        f'pyspark-shell" ka-ml train ... (spark-submit: --driver-memory {gib}g); or fewer '
        "snapshots (features.max_snapshots, features.snapshot_every_days).",
    )


def check_fits(rows: int, columns: int, available: int | None = None) -> None:
    """Refuse to collect a training set this machine cannot hold, with the remedy."""
    need = rows * columns * 8 * MEMORY_FACTOR
    have = available_memory() if available is None else available
    if need > have:
        raise KaMlError(
            f"The training snapshots ({rows:,} rows x {columns} columns) need about "
            f"{need / 2**30:.1f} GiB to train on ({MEMORY_FACTOR} x rows x columns x 8 bytes), "
            f"but this machine has {have / 2**30:.1f} GiB available. Training runs on one "
            "machine; only the snapshots are built on Spark.",
            "train on a bigger driver (and raise spark.driver.memory / maxResultSize), or "
            "fewer snapshots (features.max_snapshots, features.snapshot_every_days), or a "
            "sample of the accounts; scoring has no such limit.",
        )
