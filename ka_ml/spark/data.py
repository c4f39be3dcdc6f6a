"""The contract's tables as Spark DataFrames: read from any path Spark reads, or a History.

:func:`read_history` is the Spark counterpart of :func:`ka_ml.data.loader.load_history`:

- sources: a folder (local, ``hdfs://``, ``s3a://``, ``abfss://``, ``dbfs:/``, ...) whose
  entries are named by table - files (``orders.csv``, ``orders.csv.gz``, ``orders.parquet``)
  or folders of part files as Spark writes them (``orders/``, ``orders.parquet/``, a Delta
  table) - or ``catalog:NAMESPACE`` for metastore tables ``NAMESPACE.orders``, ... The
  ``data.tables`` and ``data.columns`` remaps apply as in the local loader.
- typing follows the History conventions: ids and text as strings (stripped), dates as
  midnight timestamps (time-zone-aware values in UTC first), floats, booleans; every
  contract column exists (all-missing when the source lacks it).
- checks: missing tables/columns, blank required values, unreadable values, duplicate
  account ids, contracts ending before they start - all collected into one
  :class:`DataValidationError` with counts and example rows.

Text dates are read as ISO 8601 or with ``data.read.date_format`` (a time of day may
follow it; plus day-first numeric forms when ``data.read.dayfirst``); the local loader's
guessing of other formats is not repeated on Spark: set ``date_format`` for such exports.
Dates are days; each date column's time of day rides along hidden (``_clock_<column>``) so
that exact duplicate rows - equal with their time of day, as in the loader - and rows of
accounts missing from the accounts table are dropped inside each account bucket
(:func:`ka_ml.spark.kernel.unpack`), which costs no extra shuffle; ``validate --engine
spark`` also counts the repeats per table for the loader's warning
(:meth:`SparkHistory.repeated_rows`, one aggregation each).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd

from ka_ml.config import DataConfig, ReadOptions
from ka_ml.data.coerce import (
    BAD_PROBLEM,
    CURRENCY_CODE,
    GROUPED_MIN_VALUES,
    LOOKS_GROUPED,
    MISSING_TOKENS,
    NUMBER_NOISE,
    TRAILING_MINUS,
    bad_remedy,
    grouped_numbers_texts,
    yes_no_words,
)
from ka_ml.data.currency import (
    MONEY_COLUMNS,
    converted_note,
    currency_columns,
    currency_issue,
    is_conversion,
    no_currency_column_issue,
    unknown_currency_texts,
)
from ka_ml.data.history import History
from ka_ml.data.history_checks import (
    ORDER_LINE,
    amount_scale_break,
    amount_scale_issue,
    credits_over_spend_issue,
    lines_posted_twice_issue,
    order_examples,
    order_ids_shared_issue,
    renewed_while_running,
)
from ka_ml.data.loader import (
    DELIMITER_NAMES,
    RawRead,
    ambiguous_table,
    arrow_to_frame,
    column_targets,
    foreign_file_issues,
    foreign_table,
    history_from_read,
    in_source_names,
    sniff_delimiter,
    split_table_file,
    wrong_delimiter_issue,
)
from ka_ml.data.merges import merge_map, merged_note
from ka_ml.data.schema import EVENT_DATE, SCHEMA, SEVERITIES, SIGNED_DATE, SURVEY_SCALE, Kind
from ka_ml.data.spellings import (
    case_twins_texts,
    one_spelling,
    owner_spellings_texts,
    zero_twins_texts,
)
from ka_ml.data.sql import safe_url, sql_url
from ka_ml.data.table import show_cell
from ka_ml.data.validate import (
    EMPTY_ROWS,
    IMPOSSIBLE,
    REPEATED_ROWS,
    SEVERITY_FIX,
    SORT_KEYS,
    SURVEY_SCALE_FIX,
    blank_remedy,
    mapped_table_missing,
    repeated_rows_remedy,
    small_scale_issue,
)
from ka_ml.errors import DataIssue, DataValidationError, KaMlError
from ka_ml.spark.kernel import CLOCKS, SLOT_KINDS, SLOTS, TABLE_CODES, Layout

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger("ka_ml.data")
CATALOG_PREFIX = "catalog:"
EMPTY = "_empty"  # the typed tables' flag of a row with every cell empty (skipped)
SPARK_TYPES: Mapping[Kind, str] = {
    "id": "string",
    "str": "string",
    "date": "timestamp_ntz",
    "float": "double",
    "bool": "boolean",
}
_GROUPED_COMMA = r"^[+-]?\d{1,3}(\.\d{3})+(,\d*)?$"
_GROUPED_POINT = r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$"
_STRFTIME = {
    "Y": "yyyy",
    "y": "yy",
    "m": "MM",
    "d": "dd",
    "H": "HH",
    "M": "mm",
    "S": "ss",
    "f": "SSSSSS",
    "b": "MMM",
    "B": "MMMM",
    "z": "Z",
    "%": "%",
}
_DAYFIRST = ("d.M.yyyy", "d/M/yyyy", "d-M-yyyy", "d.M.yy", "d/M/yy")
# a time of day after data.read.date_format (the loader's _TIME_SUFFIXES, in Java patterns)
_TIME_SUFFIXES = tuple(
    sep + clock + zone
    for sep in (" ", "'T'")
    for clock in ("HH:mm:ss", "HH:mm", "HH:mm:ss.SSSSSS")
    for zone in ("", "XXX", "XX")
)
CLOCK_PREFIX = "_clock_"  # a date column's time of day, kept for repeats (kernel.CLOCKS)


@dataclass(frozen=True)
class SparkHistory:
    """Every contract table of one source as typed Spark DataFrames (see module doc).

    ``accounts`` is absent when the source has none (each bucket derives it, like the
    loader). The counterpart of :class:`History` for the Spark engine.
    """

    frames: Mapping[str, DataFrame]
    source: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)
    counts: Mapping[str, int] | None = None
    accounts_merged: int = 0  # as History's
    conversions: tuple[str, ...] = field(default_factory=tuple)  # as History's
    read_frames: Mapping[str, DataFrame] = field(default_factory=dict)  # typed, as read
    _days: dict[str, pd.Series] = field(default_factory=dict, repr=False, compare=False)

    @property
    def spark(self) -> SparkSession:
        return self.frames["orders"].sparkSession

    @property
    def accounts_given(self) -> bool:
        return "accounts" in self.frames

    def has(self, table: str) -> bool:
        return table in self.frames

    def repeated_rows(self, cfg: DataConfig) -> tuple[str, ...]:
        """The loader's warning on rows that exactly repeat an earlier row, per table
        (:func:`_repeated_rows`): asked by ``validate --engine spark``. Score and train
        drop the repeats inside each account's bucket without a line; counting them costs
        an aggregation of every table over all its columns (+10 s on 2.4M rows on 2 cores,
        about half again a read), which a weekly run on a cluster should not pay."""
        return tuple(in_source_names(i, cfg).render() for i in _repeated_rows(self.read_frames))

    def table(self, name: str) -> DataFrame | None:
        """A table's contract columns (without the hidden times of day), or None."""
        df = self.frames.get(name)
        if df is None:
            return None
        return df.select(*[f"`{c}`" for c in df.columns if not c.startswith(CLOCK_PREFIX)])

    def layout(self) -> Layout:
        """The tables and kernel columns each bucket rebuilds."""
        cols = {}
        for table, df in self.frames.items():
            present = set(df.columns)
            cols[table] = tuple(
                c.name
                for c in SCHEMA[table].columns
                if c.name in present and (c.name == "account_id" or c.name in SLOTS[table])
            )
        return Layout(cols, accounts_given=self.accounts_given)

    def row_counts(self) -> dict[str, int]:
        if self.counts is not None:
            return dict(self.counts)
        return {name: int(df.count()) for name, df in self.frames.items()}

    @property
    def accounts_derived(self) -> bool:
        """No accounts table: each bucket derives it from the ids (as the loader does)."""
        return not self.accounts_given

    def summary(self) -> dict[str, object]:
        """What `ka-ml validate --engine spark` prints (as :meth:`History.summary`)."""
        first, last = self.order_dates()
        return {
            "source": self.source,
            "tables": self.row_counts(),
            "first_order": str(first.date()),
            "last_order": str(last.date()),
            "warnings": list(self.warnings),
            "fingerprint": self.fingerprint(),
        }

    def order_dates(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """(first, last) order date (one small aggregation)."""
        from pyspark.sql import functions as F

        row = self.frames["orders"].agg(F.min("order_date"), F.max("order_date")).first()
        if row is None or row[0] is None:
            raise KaMlError("The orders table has no rows.", "pass data with orders.")
        return pd.Timestamp(row[0]).normalize(), pd.Timestamp(row[1]).normalize()

    def order_day_counts(
        self, window: int
    ) -> tuple[pd.Timestamp, pd.Timestamp, int, int, list[tuple[str, str | None]]] | None:
        """As ``ka_ml.jobs.data._order_day_counts`` for a local History: (newest order
        day, the order day before it, orders on the newest day, orders in the ``window`` days
        up to the day before, up to 3 of the newest day's (account, order id)); None with one
        order day."""
        from pyspark.sql import functions as F

        o = self.frames["orders"].withColumn("_day", F.to_date("order_date"))
        top = [r[0] for r in o.select("_day").distinct().orderBy(F.desc("_day")).limit(2).collect()]
        if len(top) < 2:
            return None
        newest, previous = pd.Timestamp(top[0]), pd.Timestamp(top[1])
        start = (previous - pd.Timedelta(days=window)).date()
        n_before = o.filter((F.col("_day") <= previous.date()) & (F.col("_day") > start)).count()
        on_newest = o.filter(F.col("_day") == newest.date())
        cols = ["account_id", *(["order_id"] if "order_id" in o.columns else [])]
        rows = on_newest.select(*cols).limit(3).collect()
        examples = [(str(r[0]), None if len(r) < 2 or r[1] is None else str(r[1])) for r in rows]
        return newest, previous, int(on_newest.count()), int(n_before), examples

    def day_counts(self, table: str) -> pd.Series:
        """Rows per day of ``table``'s event date (sorted by day): at most a few thousand
        values, collected for the driver's data checks (late feeds and orders, rows after
        the as-of), which read the same days as the local engine's. Aggregated once per
        table (``validate`` asks for the orders' twice)."""
        from pyspark.sql import functions as F

        if table in self._days:
            return self._days[table]
        frame = self.frames[table]
        got = (
            frame.groupBy(F.to_date(_known_date(table, frame)).alias("day"))
            .count()
            .where(F.col("day").isNotNull())
            .toPandas()
        )
        days = pd.DatetimeIndex(pd.to_datetime(got["day"]), name="day")
        self._days[table] = pd.Series(got["count"].to_numpy("int64"), index=days).sort_index()
        return self._days[table]

    @property
    def first_date(self) -> pd.Timestamp:
        return self.order_dates()[0]

    @property
    def default_as_of(self) -> pd.Timestamp:
        """The contract's default as-of: the day after the last order in the data."""
        return self.order_dates()[1] + pd.Timedelta(days=1)

    def schema_history(self) -> History:
        """A History with no rows and this source's tables and columns (for the catalog)."""
        empty = {
            name: pd.DataFrame(
                {c: pd.Series(dtype=object) for c in df.columns if not c.startswith(CLOCK_PREFIX)}
            )
            for name, df in self.frames.items()
        }
        if "accounts" not in empty:
            empty["accounts"] = pd.DataFrame(
                {c.name: pd.Series(dtype=object) for c in SCHEMA["accounts"].columns}
            )
        return History(**empty)  # type: ignore[arg-type]

    def categories(self) -> dict[str, list[str]]:
        """:func:`ka_ml.features.encode.feature_categories` of the whole accounts table."""
        out: dict[str, list[str]] = {}
        acc = self.frames.get("accounts")
        for col in ("industry", "region"):
            if acc is None:
                out[col] = []  # derived accounts have the column, all missing
            elif col in acc.columns:
                rows = acc.select(col).where(acc[col].isNotNull()).distinct().collect()
                out[col] = sorted(str(r[0]) for r in rows)
        return out

    def fingerprint(self) -> str:
        """Content hash of every table (row-order free: rows are hashed and summed)."""
        from pyspark.sql import functions as F

        h = hashlib.sha256()
        for name, df in sorted(self.frames.items()):
            row_hash = F.xxhash64(*[F.col(c) for c in df.columns]).cast("decimal(38,0)")
            total, n = df.agg(F.sum(row_hash), F.count(F.lit(1))).first() or (0, 0)
            h.update(f"{name}:{n}:{total}:{','.join(df.columns)}".encode())
        return "spark-" + h.hexdigest()[:16]

    def long_frame(self, buckets: int) -> DataFrame:
        """Every table's kernel columns in one frame, with each row's account ``_bucket``."""
        from pyspark.sql import functions as F

        parts = []
        for table, df in self.frames.items():
            slots = {slot: col for col, slot in SLOTS[table].items() if col in df.columns}
            cols = [F.lit(TABLE_CODES[table]).cast("tinyint").alias("_t"), F.col("account_id")]
            for date_slot, clock in CLOCKS.items():
                name = f"{CLOCK_PREFIX}{slots.get(date_slot)}"
                if name in df.columns:
                    slots[clock] = name
            for slot, kind in SLOT_KINDS.items():
                source = F.col(slots[slot]) if slot in slots else F.lit(None)
                cols.append(source.cast(SPARK_TYPES[kind]).alias(slot))
            parts.append(df.where(F.col("account_id").isNotNull()).select(*cols))
        long = reduce(lambda a, b: a.unionByName(b), parts)
        return long.withColumn("_bucket", F.pmod(F.xxhash64("account_id"), F.lit(buckets)))


def spark_schema(columns: list[str], kinds: Mapping[str, Kind]) -> str:
    """A DDL schema string (unknown columns are text)."""
    return ", ".join(f"`{c}` {SPARK_TYPES.get(kinds.get(c, 'str'), 'string')}" for c in columns)


def from_history(spark: SparkSession, history: History) -> SparkHistory:
    """A loaded History as Spark DataFrames (same rows, same types)."""
    frames: dict[str, DataFrame] = {}
    for name, df in history.tables().items():
        kinds = {c.name: c.kind for c in SCHEMA[name].columns}
        data = pd.DataFrame(index=df.index)
        for c in df.columns:
            kind = kinds.get(c, "str")
            col = df[c]
            if kind == "date":
                data[c] = col.astype("datetime64[us]")
            elif kind == "float":
                data[c] = col.astype("float64")
            elif kind == "bool":
                data[c] = col.astype("boolean")
            else:
                data[c] = col.astype(object).where(col.notna(), None)
        frames[name] = spark.createDataFrame(data, schema=spark_schema(list(df.columns), kinds))
    counts = {k: len(v) for k, v in history.tables().items()}
    return SparkHistory(frames, history.source, history.warnings, counts)


# -- reading ------------------------------------------------------------------------------
def _spark_order_notes(
    frames: Mapping[str, DataFrame], as_of: pd.Timestamp | None = None
) -> list[DataIssue]:
    """The loader's warnings on the whole data, found with Spark: credit notes larger than
    everything an account bought (revenue below zero), and contracts still running at the
    newest order marked renewed (the contracts are small: read on the driver). A user's
    -1e9 credit note and 57 such contracts passed without a word on Spark.

    With ``as_of``, judged on the rows known before it, as the local loader judges them
    after dropping later rows: a user's Spark report lacked "10 contracts running at the
    newest order (2026-10-23) ... marked renewed" that the local one gave for the same
    week, Spark having looked at the data's newest order a month later."""
    from pyspark.sql import functions as F

    orders = frames.get("orders")
    if orders is None:
        return []
    if as_of is not None:
        frames = {
            name: df.where(
                _known_date(name, df) < F.lit(pd.Timestamp(as_of).normalize().to_pydatetime())
            )
            for name, df in frames.items()
            if name in ("orders", "contracts")
        }
        orders = frames["orders"]
    out: list[DataIssue] = []
    amount = F.col("amount")
    per = orders.groupBy("account_id").agg(
        F.sum(F.when(amount < 0, amount).otherwise(0.0)).alias("_credits"),
        F.sum(F.when(amount > 0, amount).otherwise(0.0)).alias("_bought"),
    )
    over = per.where(-F.col("_credits") > F.col("_bought"))
    n_over = over.count()
    if n_over:
        culprits = orders.where(amount < 0).join(over, "account_id")
        rows = _collected(culprits.orderBy("amount").limit(3))
        bought = dict(zip(rows["account_id"], rows["_bought"], strict=True))
        examples = order_examples(rows, bought)
        out.append(credits_over_spend_issue(n_over, culprits.count(), examples))
    out += _spark_amount_scale(orders)
    if "order_id" in orders.columns:
        out += _spark_order_id_issues(orders.where(F.col("order_id").isNotNull()))
    contracts = frames.get("contracts")
    if contracts is not None and "renewed" in contracts.columns:
        newest = orders.agg(F.max("order_date")).collect()[0][0]
        if newest is not None:
            small = contracts.select("account_id", "start_date", "end_date", "renewed").toPandas()
            stub = History(
                orders=pd.DataFrame({"order_date": [pd.Timestamp(newest)]}),
                accounts=pd.DataFrame(),
                contracts=small,
            )
            out += renewed_while_running(stub)
    return out


def _repeated_rows(frames: Mapping[str, DataFrame]) -> list[DataIssue]:
    """The loader's warning on rows that exactly repeat an earlier row (equal with their time
    of day), per table, with the count and three examples. The kernel drops them inside each
    account's bucket without a word; a user's lake with one partition file copied twice (a
    re-run ingestion job, 14,768 order rows) read "valid" on Spark while the local engine
    named them."""
    from pyspark.sql import functions as F

    out: list[DataIssue] = []
    for name, df in frames.items():
        cols = [c for c in df.columns if c not in ("_bad", EMPTY) and not c.startswith("_raw_")]
        twice = df.groupBy(*cols).agg(F.count(F.lit(1)).alias("_times")).where("_times > 1")
        n = twice.agg(F.sum(F.col("_times") - 1)).first()
        if n is None or not n[0]:
            continue
        keys = [c for c in SORT_KEYS[name] if c in cols]
        shown = twice.orderBy(*(F.asc_nulls_last(c) for c in keys)).limit(3).collect()
        examples = tuple(
            ", ".join(f"{c}={_shown(r[c])}" for c in keys) + f" ({r['_times']} times)"
            for r in shown
        )
        out.append(
            DataIssue(
                name,
                None,
                REPEATED_ROWS,
                repeated_rows_remedy(name),
                examples,
                int(n[0]),
                "warning",
            )
        )
    return out


def _shown(value: Any) -> str:
    """A cell of an example row: a date as its day, anything else as the loader shows it."""
    if isinstance(value, datetime):  # pd.Timestamp too
        return str(pd.Timestamp(value).date())
    return show_cell(value)


def _spark_amount_scale(orders: DataFrame) -> list[DataIssue]:
    """:func:`ka_ml.data.history_checks.amount_scale_break` with Spark: the order days' line
    counts and median log amounts (a few thousand rows) come to the driver; the same warning."""
    from pyspark.sql import functions as F

    pos = orders.where(F.col("amount") > 0)
    days = (
        pos.groupBy(F.to_date("order_date").alias("day"))
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.percentile_approx(F.log10("amount"), 0.5, 10_000).alias("log_median"),
        )
        .toPandas()
    )
    days["day"] = pd.to_datetime(days["day"])
    found = amount_scale_break(days)
    if found is None:
        return []
    first = pos.where(F.col("order_date") >= F.lit(found.day.to_pydatetime()))
    rows = _collected(first.orderBy("order_date", "account_id").limit(3))
    return [amount_scale_issue(found, order_examples(rows))]


def _collected(rows: DataFrame) -> pd.DataFrame:
    """A few example rows (already limited) on the driver, as :func:`order_examples` reads
    them."""
    got = rows.collect()
    return pd.DataFrame([r.asDict() for r in got], columns=rows.columns)


def _known_date(table: str, frame: DataFrame) -> Column:
    """The date a row of ``table`` is known from (:func:`ka_ml.data.history.known_dates`):
    its event date; a contract's signed_date where it has one."""
    from pyspark.sql import functions as F

    day = F.col(EVENT_DATE[table])
    if table == "contracts" and SIGNED_DATE in frame.columns:
        day = F.coalesce(F.col(SIGNED_DATE), day)
    return day


def _spark_order_id_issues(orders: DataFrame) -> list[DataIssue]:
    """:func:`ka_ml.data.history_checks.order_id_issues` with Spark: order lines posted again
    on a later day, and order ids under more than one account (same counts and examples)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    out: list[DataIssue] = []
    line = [c for c in ORDER_LINE if c in orders.columns]
    first = F.min("order_date").over(Window.partitionBy(*line))
    later = orders.withColumn("_first", first).where(F.col("order_date") > F.col("_first"))
    n_later = later.count()
    if n_later:
        rows = later.orderBy(*(F.asc_nulls_last(c) for c in [*line, "order_date"])).limit(3)
        examples = tuple(
            f"account_id={show_cell(r['account_id'])}, order_id={show_cell(r['order_id'])}, "
            f"order_date={pd.Timestamp(r['order_date']).date()} "
            f"(first {pd.Timestamp(r['_first']).date()}), amount={float(r['amount']):,.2f}"
            for r in rows.collect()
        )
        out.append(lines_posted_twice_issue(n_later, examples))
    shared = (
        orders.select("order_id", "account_id")
        .distinct()
        .groupBy("order_id")
        .count()
        .where(F.col("count") > 1)
        .select("order_id")
    )
    n_ids = shared.count()
    if n_ids:
        rows_of = orders.join(shared, "order_id")
        firsts = rows_of.groupBy("order_id", "account_id").agg(
            F.min("order_date").alias("order_date")
        )
        first3 = firsts.orderBy("order_id", "account_id").limit(3).collect()
        examples = tuple(
            f"order_id={show_cell(r['order_id'])}, account_id={show_cell(r['account_id'])}, "
            f"order_date={pd.Timestamp(r['order_date']).date()}"
            for r in first3
        )
        out.append(order_ids_shared_issue(n_ids, rows_of.count(), examples))
    return out


def _roll_up_merged(
    frames: dict[str, DataFrame],
) -> tuple[dict[str, DataFrame], list[DataIssue], int]:
    """As the loader (:mod:`ka_ml.data.merges`): a merged account's rows of every table
    count as the account it went into, its own accounts row dropped; with the issues and how
    many accounts were merged. The marked accounts are few: they are collected, resolved in
    pandas, and replaced in each frame."""
    from pyspark.sql import functions as F

    accounts = frames.get("accounts")
    if accounts is None or "merged_into" not in accounts.columns:
        return frames, [], 0
    marked = (
        accounts.where(F.col("merged_into").isNotNull() & ~F.col(EMPTY))
        .select("account_id", "merged_into")
        .toPandas()
    )
    known = accounts.where(F.col("account_id").isin(list(marked["merged_into"].astype(str))))
    present = {str(r[0]) for r in known.select("account_id").distinct().collect()}
    pairs = pd.concat(
        [marked, pd.DataFrame({"account_id": sorted(present), "merged_into": None})],
        ignore_index=True,
    ).drop_duplicates("account_id")
    mapping, issues = merge_map(pairs)
    if not mapping or any(i.level == "error" for i in issues):
        return frames, issues, 0
    ids: dict[bool | float | int | str, bool | float | int | str | None] = {
        k: v for k, v in mapping.items()
    }
    out = {name: df.replace(ids, subset=["account_id"]) for name, df in frames.items()}
    out["accounts"] = accounts.where(~F.col("account_id").isin(list(mapping)))
    return out, [*issues, merged_note(mapping)], len(mapping)


def refuse_database_url(source: str) -> None:
    """Spark reads paths and catalog tables, not a database URL: say so, and what works.

    Reading through Spark's JDBC source would need the database's JDBC driver jar on the
    driver and every executor (``spark.jars``), which ka_ml neither ships nor can fetch
    offline; rather than fail inside the JVM, the run stops here, before a session starts.
    """
    url = sql_url(source)
    if url is None:
        return
    raise KaMlError(
        f"--engine spark does not read database URLs ({safe_url(url)}): Spark's JDBC "
        "reader needs the database's JDBC driver jar on every executor, which ka_ml does "
        "not ship.",
        "use --engine local, which streams the tables from the database (ka-ml train "
        "--engine spark works too: it reads locally and builds the snapshots on Spark); "
        "or export the tables to Parquet first (one file or folder per table, e.g. "
        "orders.parquet) and pass that folder, or catalog:NAMESPACE, to --engine spark.",
    )


def _database_file(text: str) -> bool:
    """A DuckDB or SQLite file, by its URI or its name: read by the local loader only."""
    return bool(re.match(r"^(duckdb|sqlite)(\+\w+)?://", text, re.IGNORECASE)) or (
        text.lower().endswith((".duckdb", ".ddb", ".sqlite", ".sqlite3", ".db"))
    )


def spark_only_source(source: str) -> bool:
    """A source the local loader cannot read whole and Spark can: metastore tables
    (``catalog:NAMESPACE``), a file system URI (``s3a://``, ``abfss://``, ``dbfs:/`` ...), or a
    folder holding a Delta table."""
    text = source.strip()
    if text.startswith((CATALOG_PREFIX, "dbfs:")):
        return True
    if sql_url(text) is not None or _database_file(text):
        return False  # a database: read on this machine
    if "://" in text:
        return True
    return os.path.isdir(text) and any(
        (Path(text) / name / "_delta_log").is_dir() for name in os.listdir(text)
    )


def collect_history(
    spark: SparkSession, source: str, cfg: DataConfig, as_of: pd.Timestamp | None
) -> History:
    """The tables Spark reads from ``source``, brought to this machine and typed and checked
    by the local loader (:func:`~ka_ml.data.loader.history_from_read`): what ``train
    --engine spark`` trains on when only Spark reads the source (training runs here; its
    snapshots are built on Spark from this History)."""
    refuse_database_url(source)
    raw, issues = _read_tables(spark, source, cfg)
    frames = {name: arrow_to_frame(df.toArrow()) for name, df in raw.items()}
    read = RawRead(frames, issues, sorted(raw), "folder")
    return history_from_read(read, source, cfg, as_of)


def read_history(
    spark: SparkSession, source: str, cfg: DataConfig, as_of: pd.Timestamp | None = None
) -> SparkHistory:
    """Read, type and check a source with Spark (see the module doc); raises every error.
    The whole source is read (the features leave out what is dated on or after a scoring
    date); ``as_of`` dates the warnings that look at the newest order, as the loader's."""
    from pyspark.sql import functions as F

    refuse_database_url(source)
    raw, issues = _read_tables(spark, source, cfg)
    if "orders" not in raw and not any(i.table == "orders" for i in issues):
        catalog = source.strip().startswith(CATALOG_PREFIX)
        issues.append(
            DataIssue(
                "orders",
                None,
                f"no orders table in '{source}' (found: {', '.join(sorted(raw)) or 'nothing'})",
                # a catalog source has no files: the namespace or the metastore is the fix
                "check the namespace (SHOW TABLES IN it) and that this Spark session reaches "
                "the metastore holding it (spark.sql.catalogImplementation=hive and its "
                "warehouse outside Databricks), or map your table's name with data.tables: "
                "{orders: YOUR_NAME}."
                if catalog
                else "add orders.csv / orders.parquet (or an orders/ folder), or map your "
                "table's name with data.tables: {orders: YOUR_NAME}.",
            )
        )
    frames: dict[str, DataFrame] = {}
    for name, df in raw.items():
        typed, found = _typed_table(df, name, cfg)
        issues.extend(found)
        if typed is not None:
            frames[name] = typed
    if any(i.level == "error" for i in issues):
        raise DataValidationError([in_source_names(i, cfg) for i in issues if i.level == "error"])
    counts, found = _check(raw, frames, cfg)
    frames = {name: df.where(~F.col(EMPTY)) for name, df in frames.items()}
    errors = [i for i in issues + found if i.level == "error"]
    if errors:
        raise DataValidationError([in_source_names(i, cfg) for i in errors])
    found += _spark_order_notes(frames, as_of)
    read_frames = frames
    frames, merged, n_merged = _roll_up_merged(frames)
    if errors := [i for i in merged if i.level == "error"]:
        raise DataValidationError([in_source_names(i, cfg) for i in errors])
    if n_merged and "accounts" in counts:  # as the loader counts: after the roll-up
        counts["accounts"] -= n_merged
    found += merged
    if "accounts" in frames and "owner" in frames["accounts"].columns:  # as the loader
        frames["accounts"], said = _one_owner_spelling(frames["accounts"])
        found += said
    warnings = [in_source_names(i, cfg) for i in issues + found if i.level == "warning"]
    for issue in warnings:
        log.warning(issue.render())
    typed_frames = {
        name: df.select(
            *[c for c in df.columns if c not in ("_bad", EMPTY) and not c.startswith("_raw_")]
        )
        for name, df in frames.items()
    }
    for name, rule in IMPOSSIBLE.items():  # as the loader: rows its rule drops (usage < 0)
        frame = typed_frames.get(name)
        if rule.drop and frame is not None and rule.column in frame.columns:
            broken = _rules(name, set(frame.columns))[rule.column].broken
            typed_frames[name] = frame.where(~F.coalesce(broken, F.lit(False)))
    rendered = tuple(i.render() for i in warnings)
    converted = tuple(in_source_names(i, cfg).render() for i in found if is_conversion(i))
    return SparkHistory(
        typed_frames,
        source,
        rendered,
        counts,
        accounts_merged=n_merged,
        conversions=converted,
        read_frames=read_frames,
    )


def _read_tables(
    spark: SparkSession, source: str, cfg: DataConfig
) -> tuple[dict[str, DataFrame], list[DataIssue]]:
    wanted = {cfg.tables.get(t, t).casefold(): t for t in SCHEMA}
    text = source.strip()
    if text.startswith(CATALOG_PREFIX):
        namespace = text[len(CATALOG_PREFIX) :].strip(". ")
        out, missing = {}, []
        for canon in SCHEMA:
            name = f"{namespace}.{cfg.tables.get(canon, canon)}" if namespace else canon
            if spark.catalog.tableExists(name):
                out[canon] = spark.table(name)
            elif canon in cfg.tables:  # as the loader: a mapped table must be there
                missing.append(mapped_table_missing(canon, cfg, [], text))
        return out, missing
    if _database_file(text):
        raise KaMlError(
            f"The Spark engine cannot read the database file '{text}'.",
            "export its tables to Parquet (a folder with orders.parquet, ...), or run with "
            "--engine local.",
        )
    if "://" not in text and not text.startswith("dbfs:") and os.path.exists(text):
        text = os.path.abspath(text)  # the executors' working folder may differ
    entries = _list(spark, text)
    found: dict[str, list[tuple[str, str]]] = {}
    unread: list[tuple[str, str]] = []  # (table, folder) of a table's folder with nothing read
    foreign: dict[str, list[str]] = {}  # as the loader: .xlsx, .json ... named like a table
    for path, name, is_dir in entries:
        if name.startswith((".", "_")):
            continue
        split = split_table_file(name)
        if split is None and not is_dir and (gone := foreign_table(name, wanted)) is not None:
            foreign.setdefault(gone, []).append(name)
            continue
        stem, fmt = split if split else (name, "")
        if is_dir and not fmt:
            fmt = _folder_format(spark, path)
        elif is_dir and name.lower().endswith((".csv", ".tsv", ".txt")):
            fmt = "text"
        table = wanted.get(stem.strip().casefold())
        if table is not None and fmt:
            found.setdefault(table, []).append((path, fmt))
        elif table is not None and is_dir:
            unread.append((table, name))
    out, issues = {}, foreign_file_issues(foreign, found, cfg)
    # a table's folder with nothing Spark reads: said, not skipped in silence (a user's
    # usage folder dropped every usage feature, and a model trained with them then failed)
    issues += [
        DataIssue(
            table,
            None,
            f"the folder '{name}' holds no file Spark reads (Parquet, CSV, Delta), so this "
            "table is not read",
            "put the table's part files in it (or in year=.../ partition folders), or "
            "remove the folder",
            level="warning" if not SCHEMA[table].required else "error",
        )
        for table, name in unread
        if table not in found
    ]
    names = sorted(name for _, name, _ in entries if not name.startswith((".", "_")))
    issues += [
        mapped_table_missing(t, cfg, names, text)
        for t in cfg.tables
        if t not in found and t not in foreign and not SCHEMA[t].required
    ]
    for table, paths in sorted(found.items()):
        if len(paths) > 1:
            issues.append(ambiguous_table(table, [p.rsplit("/", 1)[-1] for p, _ in paths]))
            continue
        path, fmt = paths[0]
        df, wrong = _read_one(spark, path, fmt, cfg.read, table)
        if wrong is not None:  # the loader's error for a file read with the wrong delimiter
            issues.append(wrong)
            continue
        out[table] = df
    return {t: _canonical(df, t, cfg, issues) for t, df in out.items()}, issues


def _list(spark: SparkSession, source: str) -> list[tuple[str, str, bool]]:
    """(path, name, is_folder) of the entries of a folder on any Hadoop file system."""
    jvm: Any = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    path = jvm.org.apache.hadoop.fs.Path(source)
    fs = path.getFileSystem(conf)
    if not fs.exists(path) or not fs.getFileStatus(path).isDirectory():
        raise KaMlError(
            f"Data source '{source}' is not a folder Spark can list.",
            "pass a folder of tables (orders.parquet, orders.csv, orders/ ...) on a file "
            "system Spark reads, or catalog:NAMESPACE for metastore tables.",
        )
    return [
        (str(s.getPath().toString()), str(s.getPath().getName()), bool(s.isDirectory()))
        for s in fs.listStatus(path)
    ]


def _folder_format(spark: SparkSession, path: str) -> str:
    """The format of a table folder's part files; a folder of Hive-style partitions
    (``orders/year=2024/month=1/part-*.parquet``, a lakehouse's usual layout) has its
    files' format (Spark reads the partitions as one table). '' when nothing is readable."""
    entries = _list(spark, path)
    names = [n.lower() for _, n, _ in entries]
    if "_delta_log" in names:
        return "delta"
    if any(n.endswith((".parquet", ".pq")) for n in names):
        return "parquet"
    if any(split_table_file(n) for n in names):
        return "text"
    parts = [p for p, n, is_dir in entries if is_dir and "=" in n and not n.startswith(("_", "."))]
    return _folder_format(spark, parts[0]) if parts else ""


def _read_one(
    spark: SparkSession, path: str, fmt: str, read: ReadOptions, table: str
) -> tuple[DataFrame, DataIssue | None]:
    """The table's frame, and the loader's error when a delimited file's header is one
    column holding another delimiter (:func:`wrong_delimiter_issue`)."""
    if fmt == "parquet":
        return spark.read.parquet(path), None
    if fmt == "delta":
        return spark.read.format("delta").load(path), None
    sep = DELIMITER_NAMES.get((read.delimiter or "").lower(), read.delimiter)
    configured = bool(sep)
    if not sep:
        first = spark.read.text(path).limit(1).collect()
        sep = sniff_delimiter(str(first[0][0]) if first else "")
    encoding = "UTF-8" if read.encoding.lower().replace("_", "-") == "utf-8-sig" else read.encoding
    df = (
        spark.read.option("header", True)
        .option("sep", sep)
        .option("encoding", encoding)
        .option("inferSchema", False)
        .option("mode", "PERMISSIVE")
        .csv(path)
    )
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return df, wrong_delimiter_issue(table, name, df.columns, sep, configured=configured)


def _canonical(df: DataFrame, table: str, cfg: DataConfig, issues: list[DataIssue]) -> DataFrame:
    """The loader's column naming (:func:`column_targets`); a clash keeps the first column."""
    targets, clashes = column_targets(df.columns, table, cfg)
    issues.extend(clashes)
    first = [targets.index(t) == i for i, t in enumerate(targets)]
    return df.select(
        *[
            df[f"`{name}`"].alias(target)
            for name, target, keep in zip(df.columns, targets, first, strict=True)
            if keep
        ]
    )


# -- typing -------------------------------------------------------------------------------
def _typed_table(
    df: DataFrame, table: str, cfg: DataConfig
) -> tuple[DataFrame | None, list[DataIssue]]:
    """Contract columns typed (plus a ``_bad`` array naming the unreadable ones per row)."""
    from pyspark.sql import functions as F

    spec = SCHEMA[table]
    issues = [
        DataIssue(
            table,
            c.name,
            "required column is missing",
            f"add the column, or map yours with data.columns: {{{table}: {{{c.name}: YOUR_COLUMN}}}}.",
        )
        for c in spec.columns
        if c.required and c.name not in df.columns
    ]
    if issues:
        return None, issues
    types = dict(df.dtypes)
    cols, bad = [], []
    for c in spec.columns:
        if c.name not in df.columns:
            cols.append(F.lit(None).cast(SPARK_TYPES[c.kind]).alias(c.name))
            continue
        value, is_bad = _coerce(F.col(c.name), types[c.name], c.kind, cfg.read)
        if c.name == "severity" and table == "tickets" and cfg.severity_synonyms:  # as the loader
            words = F.create_map(*[F.lit(x) for kv in cfg.severity_synonyms.items() for x in kv])
            value = F.coalesce(F.try_element_at(words, F.lower(value)), value)
        if c.name == MONEY_COLUMNS.get(table) and cfg.currency_rates is not None:
            value = value * _rate(df, table, cfg.currency_rates)  # as the loader
        ids = c.name in ("account_id", "merged_into")  # merged_into names an account too
        if ids and cfg.account_id_case != "keep":  # as the loader
            value = F.upper(value) if cfg.account_id_case == "upper" else F.lower(value)
        if ids and cfg.account_id_zeros == "strip":  # as the loader
            value = F.regexp_replace(value, "^0+(?=.)", "")
        if c.kind == "date":  # the day, and its time of day for telling repeats apart
            day = F.to_date(value).cast("timestamp_ntz")
            cols.append(_clock(value, day).alias(f"{CLOCK_PREFIX}{c.name}"))
            value = day
        cols.append(value.alias(c.name))
        bad.append(F.when(is_bad, F.lit(c.name)))
    # the source text rides along for error examples; column pruning drops it afterwards
    raw = [F.col(f"`{c}`").cast("string").alias(f"_raw_{c}") for c in df.columns if spec.kind(c)]
    bad_names = F.filter(F.array(*bad), lambda x: x.isNotNull()).alias("_bad")
    # every cell empty (a spreadsheet's trailing ';;;;' lines): skipped, as the loader does
    blank = [
        F.col(f"`{c}`").isNull() | (F.trim(F.col(f"`{c}`").cast("string")) == "")
        for c in df.columns
    ]
    empty = F.coalesce(reduce(lambda a, b: a & b, blank), F.lit(False)).alias(EMPTY)
    return df.select(*cols, *raw, bad_names, empty), []


def _missing(text: Column) -> Column:
    from pyspark.sql import functions as F

    return text.isNull() | F.lower(text).isin(*sorted(MISSING_TOKENS))  # as the local reader


def _coerce(col: Column, dtype: str, kind: Kind, read: ReadOptions) -> tuple[Column, Column]:
    """(typed value, unreadable flag) of one column by its contract kind and source type."""
    numeric = dtype in ("tinyint", "smallint", "int", "bigint", "float", "double") or (
        dtype.startswith("decimal")
    )
    if kind in ("id", "str"):
        return _coerce_text(col, kind, numeric)
    if kind == "date":
        return _coerce_date(col, dtype, read)
    if kind == "float":
        return _coerce_float(col, dtype, numeric, read)
    return _coerce_bool(col, dtype, numeric, read.yes_no)


def _coerce_text(col: Column, kind: Kind, numeric: bool) -> tuple[Column, Column]:
    """Ids and strings: integral numbers without a decimal point, text trimmed, blanks null."""
    from pyspark.sql import functions as F

    if numeric:
        integral = col.cast("double") == F.floor(col.cast("double"))
        text = F.when(integral, col.cast("decimal(38,0)").cast("string")).otherwise(
            col.cast("string")
        )
    else:
        text = F.trim(col.cast("string"))
    blank = _missing(text) if kind == "id" else (text.isNull() | (text == ""))
    return F.when(~blank, text), F.lit(False)


def _coerce_date(col: Column, dtype: str, read: ReadOptions) -> tuple[Column, Column]:
    """Dates with their time of day (in UTC; :func:`_typed_table` keeps the day): typed
    columns as they are, text by the configured format (a time of day may follow it), ISO,
    day-first."""
    from pyspark.sql import functions as F

    if dtype != "string":
        if dtype in ("timestamp", "date", "timestamp_ntz"):
            return col.cast("timestamp_ntz"), F.lit(False)
        return F.lit(None).cast("timestamp_ntz"), col.isNotNull()
    text = F.trim(col)
    present = ~_missing(text)
    tries = []
    if read.date_format:
        day = java_pattern(read.date_format)
        tries += [F.try_to_timestamp(text, F.lit(day + s)) for s in ("", *_TIME_SUFFIXES)]
    tries.append(text.try_cast("timestamp"))
    if read.dayfirst:
        tries += [F.try_to_timestamp(text, F.lit(p)) for p in _DAYFIRST]
    value = F.when(present, F.coalesce(*tries).cast("timestamp_ntz"))
    return value, present & value.isNull()


def _clock(value: Column, day: Column) -> Column:
    """Seconds after midnight of a date's time of day; null at midnight (as a plain date)."""
    from pyspark.sql import functions as F

    seconds = (F.unix_micros(value.cast("timestamp")) - F.unix_micros(day.cast("timestamp"))).cast(
        "double"
    ) / 1e6
    return F.when(seconds != 0, seconds)


def _coerce_float(
    col: Column, dtype: str, numeric: bool, read: ReadOptions
) -> tuple[Column, Column]:
    """Numbers: numeric columns cast, text read with the configured decimal mark and
    thousands separators; infinities unreadable."""
    from pyspark.sql import functions as F

    if numeric:
        value = col.cast("double")
        infinite = F.abs(value) == float("inf")
        return F.when(~infinite, value), F.coalesce(infinite, F.lit(False))
    if dtype != "string":
        return F.lit(None).cast("double"), col.isNotNull()
    text = F.trim(col)
    present = F.when(~_missing(text), text)
    clean = F.regexp_replace(F.regexp_replace(present, NUMBER_NOISE, ""), CURRENCY_CODE, "")
    clean = F.regexp_replace(clean, TRAILING_MINUS, "-$1")
    if read.decimal == ",":
        simple = F.when(~present.contains("."), F.regexp_replace(present, ",", "."))
        grouped = F.regexp_replace(F.regexp_replace(clean, r"\.", ""), ",", ".")
        retry = F.when(clean.rlike(_GROUPED_COMMA), grouped).otherwise(
            F.regexp_replace(clean, ",", ".")
        )
        value = F.coalesce(simple.try_cast("double"), retry.try_cast("double"))
    else:
        retry = F.when(clean.rlike(_GROUPED_POINT), F.regexp_replace(clean, ",", ""))
        value = F.coalesce(present.try_cast("double"), retry.otherwise(clean).try_cast("double"))
    value = F.when(present.isNotNull(), value)
    infinite = F.abs(value) == float("inf")
    return F.when(~infinite, value), present.isNotNull() & (value.isNull() | infinite)


def _coerce_bool(
    col: Column, dtype: str, numeric: bool, extra: Mapping[str, bool] | None = None
) -> tuple[Column, Column]:
    """Booleans: typed as they are, 1/0, or the true/false words (and ``data.read.yes_no``)."""
    from pyspark.sql import functions as F

    if dtype == "boolean":
        return col, F.lit(False)
    if numeric:
        f = col.cast("double")
        return F.when(f == 1, True).when(f == 0, False), col.isNotNull() & ~f.isin(0.0, 1.0)
    text = F.lower(F.trim(col.cast("string")))
    words = yes_no_words(extra or {})
    true = [w for w, v in words.items() if v]
    false = [w for w, v in words.items() if not v]
    value = F.when(text.isin(*true), True).when(text.isin(*false), False)
    return value, ~_missing(text) & value.isNull()


def java_pattern(strftime: str) -> str:
    """``%d.%m.%Y`` -> ``dd.MM.yyyy`` (Spark's datetime pattern); KaMlError when unknown."""
    out, i = [], 0
    while i < len(strftime):
        ch = strftime[i]
        if ch == "%" and i + 1 < len(strftime):
            token = strftime[i + 1]
            if token not in _STRFTIME:
                raise KaMlError(
                    f"data.read.date_format '{strftime}' uses %{token}, which the Spark engine "
                    "does not translate.",
                    f"use the directives {' '.join('%' + k for k in _STRFTIME)}, or run with "
                    "--engine local.",
                )
            out.append(_STRFTIME[token])
            i += 2
            continue
        out.append(f"'{ch}'" if ch.isalpha() else ("''" if ch == "'" else ch))
        i += 1
    return "".join(out)


# -- checks -------------------------------------------------------------------------------
def _check(
    raw: Mapping[str, DataFrame], frames: Mapping[str, DataFrame], cfg: DataConfig
) -> tuple[dict[str, int], list[DataIssue]]:
    """One aggregation per table: rows, blank required values, unreadable values, rules."""
    from pyspark.sql import functions as F

    counts: dict[str, int] = {}
    issues: list[DataIssue] = []
    for name, df in frames.items():
        grouping = _grouping_aggregates(name, raw[name], cfg.read)
        row = df.agg(*_check_aggregates(name, set(raw[name].columns)), *grouping).first()
        stats = row.asDict() if row is not None else {}
        empty = int(stats.pop(EMPTY, 0) or 0)
        counts[name] = int(stats.pop("_rows", 0) or 0) - empty
        if empty:
            problem, remedy = EMPTY_ROWS
            issues.append(DataIssue(name, None, problem, remedy, (), empty, "warning"))
        kept = df.where(~F.col(EMPTY))  # the rows every other check reads
        issues += _grouped_numbers(name, kept, stats, cfg.read)
        if stats.pop("_zeros", 0):
            issues += _zero_padding_twins(name, kept)
        cased = bool(stats.pop("_lower", 0)) & bool(stats.pop("_upper", 0))
        # as the loader: twins in the accounts table, or in every table without one (the
        # loader's check of other tables' ids against the accounts table is not repeated)
        if cased and cfg.account_id_case == "keep" and name in ("accounts", *_no(frames)):
            issues += _case_twins(name, kept)
        issues += [_issue(name, kept, key, int(n), cfg) for key, n in stats.items() if n]
    for name in frames:
        columns = currency_columns(name, raw[name].columns)
        if cfg.currency_rates is not None and name in MONEY_COLUMNS:  # as the loader
            if columns:  # the first, as the loader
                issues += _converted(name, columns[0], raw[name], cfg.currency_rates)
            elif MONEY_COLUMNS[name] in raw[name].columns:
                issues.append(no_currency_column_issue(name))
            continue
        for column in columns:  # as the loader
            issues += _currencies(name, column, raw[name])
    acc = frames.get("accounts")
    if acc is not None:
        issues += _duplicate_accounts(acc.where(~F.col(EMPTY)))
    surveys = frames.get("surveys")
    surveys = None if surveys is None else surveys.where(~F.col(EMPTY))
    if surveys is not None and not any(
        i.table == "surveys" and i.column == "score" for i in issues
    ):
        issues += _small_scale(surveys)
    return counts, issues


def _one_owner_spelling(accounts: DataFrame) -> tuple[DataFrame, list[DataIssue]]:
    """The loader's merge of owner names that differ only in case or spacing, and its
    warning (one small group-by: a row per spelling)."""
    from pyspark.sql import functions as F

    rows = accounts.where(F.col("owner").isNotNull()).groupBy("owner").count().toPandas()
    counts = rows.set_index("owner")["count"]
    mapping = one_spelling(counts)
    if not mapping:
        return accounts, []
    words = F.create_map(*[F.lit(x) for kv in sorted(mapping.items()) for x in kv])
    merged = accounts.withColumn(
        "owner", F.coalesce(F.try_element_at(words, F.col("owner")), F.col("owner"))
    )
    problem, remedy = owner_spellings_texts(mapping, counts)
    examples = tuple(f"owner='{a}'" for a in sorted(mapping)[:5])
    return merged, [DataIssue("accounts", "owner", problem, remedy, examples, level="warning")]


def _codes(column: str) -> Column:
    """A currency column as the rates are keyed (the loader's ``currency_codes``)."""
    from pyspark.sql import functions as F

    return F.coalesce(F.upper(F.trim(F.col(f"`{column}`").cast("string"))), F.lit(""))


def _rate(df: DataFrame, table: str, rates: Mapping[str, float]) -> Column:
    """Each row's rate by its currency column (1 without one, for a blank currency, and for
    an unknown one, which :func:`_converted` refuses)."""
    from pyspark.sql import functions as F

    columns = currency_columns(table, df.columns)
    if not columns:
        return F.lit(1.0)
    words = F.create_map(*[F.lit(x) for kv in sorted(rates.items()) for x in kv])
    return F.coalesce(F.try_element_at(words, _codes(columns[0])), F.lit(1.0))


def _converted(
    name: str, column: str, raw: DataFrame, rates: Mapping[str, float]
) -> list[DataIssue]:
    """The loader's note on converted money, or its error for currencies without a rate
    (one small group-by: a row per currency)."""

    code = _codes(column)
    counts = raw.groupBy(code.alias("v")).count().toPandas().set_index("v")["count"]
    unknown = counts[(counts.index != "") & ~counts.index.isin(list(rates))]
    if unknown.empty:
        return [converted_note(name, column, counts, rates)]
    problem, remedy = unknown_currency_texts(name, unknown)
    money = MONEY_COLUMNS[name]
    rows = raw.where(code.isin(list(unknown.index))).limit(5).collect()
    examples = tuple(
        ", ".join(f"{c}='{r[c]}'" for c in ("account_id", column, money) if c in raw.columns)
        for r in rows
    )
    return [DataIssue(name, column, problem, remedy, examples, int(unknown.sum()))]


def _currencies(name: str, column: str, raw: DataFrame) -> list[DataIssue]:
    """The loader's warning about amounts in several currencies (one small group-by)."""
    from pyspark.sql import functions as F

    value = F.upper(F.trim(F.col(f"`{column}`").cast("string")))
    rows = raw.where(value.isNotNull() & (value != "")).groupBy(value.alias("v")).count()
    counts = rows.toPandas().set_index("v")["count"].sort_values(ascending=False, kind="stable")
    issue = currency_issue(name, column, counts)
    return [issue] if issue is not None else []


def _small_scale(surveys: DataFrame) -> list[DataIssue]:
    """The loader's warning about survey kinds that look like a 1-5 scale (one small
    group-by: a row per kind)."""
    from pyspark.sql import functions as F

    score = F.col("score")
    stats = (
        surveys.groupBy("kind")
        .agg(F.count(score).alias("count"), F.min(score).alias("min"), F.max(score).alias("max"))
        .toPandas()
        .set_index("kind")
    )
    small = small_scale_issue(stats)
    return [small] if small is not None else []


def _check_aggregates(name: str, present: set[str]) -> list[Column]:
    """Counts of a table's rows, unreadable and blank required values, broken rules."""
    from pyspark.sql import functions as F

    aggs = [F.count(F.lit(1)).alias("_rows"), F.sum(F.col(EMPTY).cast("long")).alias(EMPTY)]
    for c in SCHEMA[name].columns:
        if c.name not in present:
            continue
        aggs.append(F.sum(F.array_contains("_bad", c.name).cast("long")).alias(f"bad:{c.name}"))
        if c.required:
            aggs.append(F.sum(_blank(c.name).cast("long")).alias(f"blank:{c.name}"))
    for column, rule in _rules(name, present).items():
        aggs.append(F.sum(rule.broken.cast("long")).alias(f"rule:{column}"))
    if "account_id" in present:  # leading zeros: the twins are looked for only if any
        ids = F.col("account_id")
        aggs.append(F.max(ids.startswith("0").cast("long")).alias("_zeros"))
        # ids in another letter case: only when some id has a lower- and some an upper-case letter
        aggs.append(F.max((ids != F.upper(ids)).cast("long")).alias("_lower"))
        aggs.append(F.max((ids != F.lower(ids)).cast("long")).alias("_upper"))
    return aggs


def _grouping_aggregates(name: str, raw: DataFrame, read: ReadOptions) -> list[Column]:
    """The loader's look for whole numbers grouped by the decimal mark
    (:func:`ka_ml.data.coerce._grouped_like`), as three counts per number column read
    from text: values with the mark, those of them that look grouped, whole ones."""
    from pyspark.sql import functions as F

    if not read.grouping_check:
        return []
    types = dict(raw.dtypes)
    aggs = []
    for c in SCHEMA[name].columns:
        if c.kind != "float" or types.get(c.name) != "string":
            continue
        marked, looks, whole = _grouping_flags(c.name, read.decimal)
        aggs += [
            F.sum(marked.cast("long")).alias(f"_gmark:{c.name}"),
            F.sum((marked & looks).cast("long")).alias(f"_glook:{c.name}"),
            F.max(whole.cast("long")).alias(f"_gwhole:{c.name}"),
        ]
    return aggs


def _grouping_flags(column: str, mark: str) -> tuple[Column, Column, Column]:
    """(carries the mark, looks grouped, whole without it) of a column's source text."""
    from pyspark.sql import functions as F

    text = F.trim(F.col(f"_raw_{column}"))
    clean = F.regexp_replace(F.regexp_replace(text, NUMBER_NOISE, ""), CURRENCY_CODE, "")
    clean = F.regexp_replace(clean, TRAILING_MINUS, "-$1")
    marked = F.coalesce(text.contains(mark), F.lit(False))
    if mark == ",":  # a '.' groups thousands already
        marked = marked & ~F.coalesce(text.contains("."), F.lit(False))
    looks = F.coalesce(clean.rlike(f"^{LOOKS_GROUPED[mark]}$"), F.lit(False))
    whole = ~marked & F.coalesce(clean.rlike(r"^[+-]?\d+$"), F.lit(False))
    return marked, looks, whole


def _grouped_numbers(name: str, df: DataFrame, stats: dict, read: ReadOptions) -> list[DataIssue]:
    """The loader's error for a column of whole numbers grouped by the decimal mark, from
    the counts of :func:`_grouping_aggregates` (popped from ``stats``)."""
    issues = []
    for key in [k for k in stats if k.startswith("_gmark:")]:
        column = key.split(":", 1)[1]
        marked = int(stats.pop(key) or 0)
        looks = int(stats.pop(f"_glook:{column}") or 0)
        whole = int(stats.pop(f"_gwhole:{column}") or 0)
        if marked >= GROUPED_MIN_VALUES and looks == marked and whole:
            problem, remedy = grouped_numbers_texts(read)
            flag = _grouping_flags(column, read.decimal)[0]
            examples = _examples(df, flag, column, name)
            issues.append(DataIssue(name, column, problem, remedy, examples, marked))
    return issues


def _blank(column: str) -> Column:
    """Missing required values (the unreadable ones are counted as such, not twice)."""
    from pyspark.sql import functions as F

    return F.col(column).isNull() & ~F.array_contains("_bad", column) & ~F.col(EMPTY)


class _Rule(NamedTuple):
    broken: Column  # the rows that break it
    problem: str
    remedy: str
    level: str = "error"


def _rules(name: str, present: set[str]) -> dict[str, _Rule]:
    """The local reader's table rules (:mod:`ka_ml.data.validate`) by column: those that
    refuse rows, and the impossible values it warns about."""
    from pyspark.sql import functions as F

    rules: dict[str, _Rule] = {}
    if name == "contracts":
        rules["end_date"] = _Rule(
            F.col("end_date") < F.col("start_date"),
            "contracts that end before they start",
            "correct start_date/end_date (swapped? check data.columns) or remove these rows.",
        )
    if name == "surveys":
        low, high = SURVEY_SCALE
        outside = (F.col("score") < low) | (F.col("score") > high)
        rules["score"] = _Rule(outside, "scores outside the 0-10 scale", SURVEY_SCALE_FIX)
    if name == "tickets" and "severity" in present:
        known = [*SEVERITIES, *sorted(MISSING_TOKENS)]
        value = F.lower(F.trim(F.col("severity")))
        unknown = value.isNotNull() & ~value.isin(known)
        rules["severity"] = _Rule(unknown, "unknown severities", SEVERITY_FIX)
    impossible = IMPOSSIBLE.get(name)
    if impossible is not None and impossible.column in present:
        floor = impossible.floor
        below = F.col(floor) if isinstance(floor, str) else F.lit(floor)
        rules[impossible.column] = _Rule(
            F.col(impossible.column) < below, impossible.problem, impossible.remedy, "warning"
        )
    return rules


def _no(frames: Mapping[str, DataFrame]) -> tuple[str, ...]:
    """Every table when there is no accounts table, else none."""
    return () if "accounts" in frames else tuple(frames)


def _case_twins(name: str, df: DataFrame) -> list[DataIssue]:
    """The loader's warning about ids that differ only in letter case ('KA-1', 'ka-1')."""
    from pyspark.sql import functions as F

    return _twin_issues(name, df, F.lower("account_id"), case_twins_texts)


def _twin_issues(
    name: str, df: DataFrame, key: Column, texts: Callable[[int], tuple[str, str]]
) -> list[DataIssue]:
    """The warning about distinct ids of one table that share a ``key`` (the same id but
    for letter case, or leading zeros), five groups as examples; [] without any."""
    from pyspark.sql import functions as F

    ids = df.select("account_id").where(F.col("account_id").isNotNull()).distinct()
    twins = (
        ids.groupBy(key.alias("_key"))
        .agg(F.sort_array(F.collect_list("account_id")).alias("ids"))
        .where(F.size("ids") > 1)
    )
    rows = twins.orderBy("_key").limit(5).collect()
    if not rows:
        return []
    problem, remedy = texts(int(twins.count()))
    examples = tuple(" and ".join(f"'{v}'" for v in r["ids"]) for r in rows)
    return [DataIssue(name, "account_id", problem, remedy, examples, level="warning")]


def _zero_padding_twins(name: str, df: DataFrame) -> list[DataIssue]:
    """The loader's warning about ids that differ only in leading zeros ('00017', '17')."""
    from pyspark.sql import functions as F

    core = F.regexp_replace("account_id", "^0+", "")
    return _twin_issues(name, df, F.when(core == "", "0").otherwise(core), zero_twins_texts)


def _issue(name: str, df: DataFrame, key: str, n: int, cfg: DataConfig) -> DataIssue:
    """The issue behind one non-zero count of :func:`_check_aggregates`, with examples."""
    from pyspark.sql import functions as F

    what, column = key.split(":", 1)
    if what == "bad":
        problem, remedy = _bad_message(SCHEMA[name].kind(column) or "str", cfg.read)
        rule = _Rule(F.array_contains("_bad", column), problem, remedy)
    elif what == "blank":
        rule = _Rule(_blank(column), "required values are missing", blank_remedy(name, column))
    else:
        rule = _rules(name, set(df.columns))[column]
    examples = _examples(df, rule.broken, column, name)
    return DataIssue(name, column, rule.problem, rule.remedy, examples, n, rule.level)


def _duplicate_accounts(acc: DataFrame) -> list[DataIssue]:
    from pyspark.sql import functions as F

    dup = acc.groupBy("account_id").count().where(F.col("count") > 1)
    ids = [str(r[0]) for r in dup.limit(5).collect()]
    if not ids:
        return []
    return [
        DataIssue(
            "accounts",
            "account_id",
            "account ids that appear on more than one row",
            "keep exactly one row per account in the accounts table.",
            tuple(f"account_id={i}" for i in ids),
            int(dup.count()),
        )
    ]


def _examples(typed: DataFrame, mask: Column, column: str, table: str) -> tuple[str, ...]:
    """Up to three offending rows as the source wrote them: the account, the value, and
    the row's date and order id where the table has them (Spark has no row numbers: a
    user's blank ids read "account_id=None, account_id=None", nothing to find them by),
    and the part file each came from when the table is a folder of them."""
    from pyspark.sql import functions as F

    near = [c for c in (EVENT_DATE.get(table), "order_id") if c and c != column]
    cols = list(dict.fromkeys(["account_id", column, *near]))
    have = [c for c in cols if f"_raw_{c}" in typed.columns]
    shown = [F.col(f"_raw_{c}") for c in have]
    parts = _input_files(typed)
    if len(parts) > 1:  # a table folder of part files: which part (a lake partition's)
        shown.append(F.input_file_name().alias("_file"))
    rows = typed.where(mask).select(*shown).limit(3).collect()
    return tuple(
        ", ".join(f"{c}={r[f'_raw_{c}']!r}" for c in have)
        + (f" in {_part_name(r['_file'], parts)}" if len(parts) > 1 and r["_file"] else "")
        for r in rows
    )


def _input_files(frame: DataFrame) -> list[str]:
    """The files a DataFrame reads (Spark's best effort; none for a metastore view or a
    frame made on the driver)."""
    try:
        return list(frame.inputFiles())
    except Exception:  # a source that cannot list its files names none
        return []


def _part_name(path: str, parts: list[str]) -> str:
    """``path`` from the folder the table's parts share (``year=2026/month=9/part-0.parquet``
    of ``.../orders/``): a user's lake with one partition file lacking ``amount`` got 14,768
    rows "without a value in amount" and no word of which file."""
    common = os.path.commonpath([p.split("://", 1)[-1] for p in parts])
    rest = path.split("://", 1)[-1]
    table = os.path.basename(common)
    return f"{table}/{os.path.relpath(rest, common)}" if rest.startswith(common) else path


def _bad_message(kind: Kind, read: ReadOptions) -> tuple[str, str]:

    remedy = bad_remedy(kind, read)
    if kind == "date":
        remedy = (
            "write dates as YYYY-MM-DD (a time or time zone may follow), or set "
            "data.read.date_format (e.g. '%d.%m.%Y'); the Spark engine does not guess other "
            "formats. Otherwise correct or remove these rows."
        )
    return BAD_PROBLEM[kind], remedy
