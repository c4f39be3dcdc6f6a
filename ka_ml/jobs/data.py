"""Reading account history for a command, and the two commands that only write data.

One rule for which data a command reads when the user does not say (``--data``, else
``data.source``, else the demo world, generated on first use), read here or by Spark; and
the ``demo-data`` and ``features`` commands' writes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.data.loader import load_history
from ka_ml.data.schema import EVENT_DATE, SIGNED_DATE
from ka_ml.data.validate import SIGNED_REMEDY, future_rows_texts
from ka_ml.demo.world import generate_world, write_world
from ka_ml.errors import KaMlError
from ka_ml.features.build import build_features
from ka_ml.features.catalog import n_days, scorer_only
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
        return spark_data.read_history(spark_session(), source, cfg.data, as_of)
    return load_history(choose_source(cfg, data), cfg.data, as_of=as_of)


def load_for_training(
    cfg: Config, data: str | None, as_of: pd.Timestamp | None, engine: str = "local"
) -> History:
    """The history ``train`` works on, always on this machine (training runs here): read here,
    or, with ``--engine spark`` on a source only Spark reads (metastore tables, a file system
    URI, a Delta table), read by Spark and typed and checked here as the loader does, so
    ``train --engine spark`` trains on what ``score --engine spark`` scores."""
    source = choose_source(cfg, data)
    if check_engine(engine) == "spark":
        from ka_ml.spark import data as spark_data

        if spark_data.spark_only_source(source):
            return spark_data.collect_history(spark_session(), source, cfg.data, as_of)
    return load_history(source, cfg.data, as_of=as_of)


LONE_DAY_FACTOR = 10
"""The newest order day "stands alone" when the ``stale_data_days`` before the silence held at
least this many times its orders: one mistyped date, not a portfolio coming back."""


class LoneDay(NamedTuple):
    newest: pd.Timestamp  # the newest order day
    previous: pd.Timestamp  # the order day before it
    text: str  # both described, for a message


def lone_newest_orders(history: History | SparkHistory, silence_days: int) -> LoneDay | None:
    """The newest order day, described, when it stands alone: at least ``silence_days`` after
    the order day before it, with few orders against the ``silence_days`` up to that day
    (:data:`LONE_DAY_FACTOR`). One order typed 2026-05-03 among orders ending 2025-11-28
    otherwise dates a run five months on, with every account that much quieter. None when
    the newest orders look like the rest of the data."""
    days = _order_day_counts(history, silence_days)
    if days is None:
        return None
    newest, previous, n_newest, n_before, examples = days
    gap = (newest - previous).days
    if gap < silence_days or n_before < LONE_DAY_FACTOR * n_newest:
        return None
    named = (f"account {a}" + (f", order {i}" if i is not None else "") for a, i in examples)
    orders = f"{n_newest} order{'s' if n_newest > 1 else ''}: {'; '.join(named)}"
    return LoneDay(
        newest,
        previous,
        f"the newest order day, {newest.date()} ({orders}), stands alone {gap} days after "
        f"the order day before it ({previous.date()}; {n_before:,} orders in the "
        f"{silence_days} days up to then)",
    )


def _order_day_counts(
    history: History | SparkHistory, window: int
) -> tuple[pd.Timestamp, pd.Timestamp, int, int, list[tuple[str, str | None]]] | None:
    """(newest order day, the order day before it, orders on the newest day, orders in the
    ``window`` days up to the day before, up to 3 of the newest day's (account, order id))
    or None with fewer than two order days."""
    if not isinstance(history, History):
        return history.order_day_counts(window)
    o = history.orders
    day = o["order_date"].dt.normalize()
    distinct = day.drop_duplicates().nlargest(2)
    if len(distinct) < 2:
        return None
    newest, previous = pd.Timestamp(distinct.iloc[0]), pd.Timestamp(distinct.iloc[1])
    on_newest = o[day == newest]
    n_before = int(((day <= previous) & (day > previous - pd.Timedelta(days=window))).sum())
    head = on_newest.head(3)
    ids = head["order_id"] if "order_id" in head else pd.Series(None, index=head.index)
    examples = [
        (str(a), str(i) if pd.notna(i) else None)
        for a, i in zip(head["account_id"], ids, strict=True)
    ]
    return newest, previous, len(on_newest), n_before, examples


# why a date after tomorrow is refused, per kind of run (training: the default)
_AFTER_TOMORROW = {
    "scoring": "scores of a future date would be published as that week's.",
    "features": "the features of a future date would read the days to come as silence.",
    "validation": "ka-ml score, train and features refuse it (scores of a future date would "
    "be published as that week's; no outcome after today can be known).",
}


def refuse_after_tomorrow(as_of: pd.Timestamp, today: pd.Timestamp, what: str = "scoring") -> None:
    """Refuse an ``--as-of`` after tomorrow (``today``: the run's clock, the later of the UTC
    and the local date) for a ``what`` run ("scoring", "training", "features" or
    "validation"). `validate` asks it too, before the data is read: a user's `ka-ml validate
    --as-of 2027-06-01` said "valid", exit 0, and `ka-ml score` with the same date refused."""
    tomorrow = today.normalize() + pd.Timedelta(days=1)
    if as_of > tomorrow:
        raise KaMlError(
            f"--as-of {as_of.date()} is after tomorrow ({tomorrow.date()}): "
            + _AFTER_TOMORROW.get(what, "no outcome after today can be known."),
            f"pass a date up to {tomorrow.date()} (or leave --as-of out: the day after the "
            "newest order).",
        )


def check_as_of(
    history: History | SparkHistory,
    as_of: pd.Timestamp,
    cfg: Config,
    *,
    explicit: bool,
    today: pd.Timestamp,
    what: str = "scoring",
) -> None:
    """Refuse a ``what`` ("scoring", "training" or "features") date after tomorrow (``today``: the run's
    clock, the later of the UTC and the local date), and a date taken from the data whose
    newest order day stands alone (:func:`lone_newest_orders`, over
    ``scoring.stale_data_days``): a run dated by the data
    (the day after its last order) would be dated by one mistyped order, and a scored week
    would stay the latest everywhere (the read API, the write-back table, the digests)."""
    last = history.default_as_of - pd.Timedelta(days=1)  # the newest order's day
    tomorrow = today.normalize() + pd.Timedelta(days=1)
    if explicit:
        refuse_after_tomorrow(as_of, today, what)
    elif as_of > tomorrow:
        raise KaMlError(
            f"The {what} date {as_of.date()} (the day after the newest order) is after "
            f"tomorrow ({tomorrow.date()}): the data holds orders dated after today, newest "
            f"{last.date()}.",
            f"correct those order dates in the source (a typo in the year or month?), or pass "
            f"--as-of {tomorrow.date()} to leave them out.",
        )
    silence = cfg.scoring.stale_data_days
    if explicit or silence is None:
        return
    if lone := lone_newest_orders(history, silence):
        raise KaMlError(
            f"The {what} date would be {as_of.date()}, the day after the newest order, but "
            f"{lone.text}: every account would look that much quieter.",
            "correct that date in the source (a typo in the year or month?), or pass "
            f"--as-of {(lone.previous + pd.Timedelta(days=1)).date()} to leave it out; if "
            f"those orders are right, pass --as-of {as_of.date()} (scoring.stale_data_days "
            "sets the silence that counts).",
        )


def date_warnings(
    history: History | SparkHistory, cfg: Config, today: pd.Timestamp
) -> tuple[str, ...]:
    """What `validate` says of the order dates that `score` and `train` would refuse to be
    dated by: orders after tomorrow, a newest order day that stands alone; and of feeds
    behind the orders or with holes. Read the same way by Spark (`validate --engine spark`
    had said "valid" of a lake with an order dated 2027-06-01)."""
    out = []
    tomorrow = today.normalize() + pd.Timedelta(days=1)
    if future := _future_orders(history, tomorrow):
        n, first, account = future
        out.append(
            f"{n:,} orders are dated after today ({today.date()}), the earliest "
            f"{first.date()} (account {account}): score and train refuse to be dated by them; "
            "correct the dates (a typo in the year?)"
        )
    silence = cfg.scoring.stale_data_days
    if silence is not None and (lone := lone_newest_orders(history, silence)):
        out.append(
            f"{lone.text}: score and train, dated by the data, refuse it; correct that date "
            "(a typo in the year or month?) or pass --as-of"
        )
    days = _table_days(history)  # once for both checks
    out += orders_behind_feeds(days, "scoring or training")
    out += feed_holes(days, days["orders"].max() + pd.Timedelta(days=1))
    return tuple(out)


def _future_orders(
    history: History | SparkHistory, tomorrow: pd.Timestamp
) -> tuple[int, pd.Timestamp, str] | None:
    """(orders dated on or after ``tomorrow``, the earliest such date, its account) or None."""
    if isinstance(history, History):
        future = history.orders["order_date"] >= tomorrow
        if not future.any():
            return None
        first = history.orders.loc[future].nsmallest(1, "order_date").iloc[0]
        return int(future.sum()), pd.Timestamp(first["order_date"]), str(first["account_id"])
    counts = history.day_counts("orders")
    later = counts[counts.index >= tomorrow]
    if later.empty:
        return None
    from pyspark.sql import functions as F

    day = later.index.min()
    row = (
        history.frames["orders"]
        .where(F.to_date("order_date") == day.date())
        .orderBy("order_date", "account_id")
        .select("account_id")
        .first()
    )
    return int(later.sum()), pd.Timestamp(day), str(row[0]) if row is not None else "?"


FEEDS = ("usage", "tickets", "surveys")  # tables that arrive as feeds beside the orders
FEED_LOOKBACK_DAYS = 90  # a table is a regular feed with 8+ dated days in its last 90
# a feed's usual silence is the longest ending in its last year: a table answered in
# campaigns (surveys in March and September) has its gaps between campaigns as its silences
FEED_SILENCE_DAYS = 365


@dataclass(frozen=True)
class LateFeed:
    """A feed whose newest row is older than any silence in its last year and than the
    newest order: its export is late, not its accounts quiet."""

    table: str
    newest: pd.Timestamp  # its newest row's day
    lag: int  # days from that row to the scoring date
    usual: int  # its longest silence ending in its last year (FEED_SILENCE_DAYS)

    @property
    def read_as_of(self) -> pd.Timestamp:
        """The day its features are read as of: the day after its newest row."""
        return self.newest + pd.Timedelta(days=1)


def feed_lags(history: History, dates: Iterable[pd.Timestamp]) -> dict[str, int]:
    """Per regular feed (usage, tickets, surveys): the most days between a date of
    ``dates`` (the training snapshots) and the feed's newest row before it: how long after
    its newest row the model saw the feed. Kept on the model's card for
    :func:`align_feed_lags`."""
    days = _table_days(history, FEEDS)
    out: dict[str, int] = {}
    for table in FEEDS:
        d = days.get(table)
        if d is None or _silence_of(d, FEED_SILENCE_DAYS) is None:
            continue
        lags = [(t - d[i - 1]).days for t in dates if (i := int(d.searchsorted(t))) > 0]
        if lags:
            out[table] = int(max(lags))
    return out


# a feed the model always saw within this many days of its newest row (daily or weekly) is
# read as the model saw it; a feed answered in campaigns (surveys) keeps its own lag
ALIGN_MAX_LAG_DAYS = 7


def align_feed_lags(
    history: History, as_of: pd.Timestamp, learnt: Mapping[str, int]
) -> tuple[History, tuple[str, ...]]:
    """The history with each feed read as the model saw it: where the feed's newest row lies
    more days before ``as_of`` than the model ever saw it (``learnt``, from
    :func:`feed_lags`), its features are read as of that many days after the row
    (:attr:`History.feed_as_of`), with a warning each. A weekly usage feed dated Mondays,
    a model trained on Tuesdays (the day after the newest order) and scored on Mondays read
    every account 6 days quieter than anything it had learnt: 80 red and 156 yellow, "Product
    last used 7 days ago" the first reason of 713 of 782 accounts. Late feeds
    (:func:`late_feeds`) are read as of their own end already and left as they are."""
    if not learnt:
        return history, ()
    days = _table_days(history, learnt)  # the feeds the model saw, not the orders
    reads, said = dict(history.feed_as_of), []
    for table, most in sorted(learnt.items()):
        d = days.get(table)
        if table in reads or d is None or (i := int(d.searchsorted(as_of))) == 0:
            continue
        newest = d[i - 1]
        lag = (as_of - newest).days
        if lag <= most or most >= ALIGN_MAX_LAG_DAYS:  # a campaign feed: its lag is its own
            continue
        reads[table] = newest + pd.Timedelta(days=int(most))
        said.append(
            f"the {table} table's newest row before {as_of.date()} is from {newest.date()}, "
            f"{lag} days earlier, and the churn model never saw it more than {n_days(most)} "
            f"after its newest row (its training snapshots fell on another day of the "
            f"feed's cycle): its features are read as of {reads[table].date()}, as the model "
            f"saw them, so the {lag - most} days do not count as silence (score on the "
            "weekday the model was trained on, or train as of a scoring day)"
        )
    if not said:
        return history, ()
    return replace(history, feed_as_of=reads), tuple(said)


HOLE_MIN_DAYS = 14  # a usage feed with no row on any day for this long, and ...
HOLE_CADENCES = 3  # ... for this many of its usual gaps between dated days, has a hole
USAGE_WINDOW_DAYS = 182  # the usage windows a hole counts in (the 90 days against the 90 before)


def feed_holes(days: Mapping[str, pd.DatetimeIndex], as_of: pd.Timestamp) -> tuple[str, ...]:
    """A warning per hole in the usage feed over the last year before ``as_of``: days with
    no row for any account, at least HOLE_MIN_DAYS and HOLE_CADENCES of the feed's usual
    gaps long, that the feed came back from. A user's usage feed was down three weeks in
    October and never backfilled: from the first Monday after it came back the hole read as
    no usage for every account, 73 of the 81 accounts newly lit that week were healthy, 69
    of them led by "Usage in the last 90 days fell", with no word anywhere."""
    d = days.get("usage")
    if d is None:
        return ()
    d = d[(d < as_of) & (d >= as_of - pd.Timedelta(days=FEED_SILENCE_DAYS))]
    if len(d) < 8:
        return ()
    gaps = np.diff(d.to_numpy()).astype("timedelta64[D]").astype(int)
    usual = int(np.median(gaps))
    out = []
    for i in map(int, np.flatnonzero(gaps >= max(HOLE_MIN_DAYS, HOLE_CADENCES * usual))):
        start, end = d[i] + pd.Timedelta(days=1), d[i + 1] - pd.Timedelta(days=1)
        until = (end + pd.Timedelta(days=USAGE_WINDOW_DAYS)).date()
        out.append(
            f"the usage table has no row for any account from {start.date()} to {end.date()} "
            f"({n_days(int(gaps[i]) - 1)}), in a feed with a row every {n_days(usual)} "
            "otherwise: the usage windows that cover those days read them as no usage for "
            f"every account (reasons like 'Usage in the last 90 days fell', the usage "
            f"scorecard) until {until}. If the feed was down, refill those days in the export"
        )
    return tuple(out)


def late_feeds(
    days: Mapping[str, pd.DatetimeIndex], last_order: pd.Timestamp, as_of: pd.Timestamp
) -> list[LateFeed]:
    """The feeds (usage, tickets, surveys) that stopped early, from each table's dated days
    (sorted; :func:`_table_days`), for either engine: read on a weekly usage export that
    missed a Sunday, which made 439 accounts' risk rise 10 points or more with only a drift
    banner to say why."""
    out = []
    for table in FEEDS:
        d = days.get(table)
        if d is None or len(d) == 0:
            continue
        newest = d[-1]
        usual = _silence_of(d, FEED_SILENCE_DAYS)
        if usual is None or newest >= last_order:  # not a regular feed, or not behind
            continue
        lag = (as_of - newest).days
        if lag > usual:
            out.append(LateFeed(table, newest, lag, usual))
    return out


def orders_behind_feeds(
    days: Mapping[str, pd.DatetimeIndex], what: str = "scoring"
) -> tuple[str, ...]:
    """A warning per feed (usage, tickets, surveys) whose newest row lies further past the
    newest order than any silence between order days over their last 90 days: the orders
    export looks short, and a date taken from the data (the day after the newest order)
    leaves the feed's later rows out. A user's export whose orders stopped a month early
    (tickets to 2026-11-30, orders to 2026-10-31) was validated, trained and scored as of
    2026-11-01 without a word. ``days``: each table's sorted dated days, all of them."""
    orders = days.get("orders", pd.DatetimeIndex([]))
    silence = _silence_of(orders)
    if silence is None:  # no orders, or too few days to know their silences
        return ()
    last, out = orders[-1], []
    for table in FEEDS:
        d = days.get(table)
        if d is None or len(d) == 0 or (ahead := (d[-1] - last).days) <= silence:
            continue
        out.append(
            f"the orders end on {last.date()}, but the {table} run to {d[-1].date()}, "
            f"{ahead} days later: longer than any silence between order days over their last "
            f"{FEED_LOOKBACK_DAYS} days ({n_days(silence)}). Is the orders export missing its "
            f"last weeks? A {what} date taken from the data ({(last + pd.Timedelta(days=1)).date()}"
            f", the day after the newest order) dates the run {ahead} days back and leaves the "
            f"later {table} out. Fix: export the orders up to date, or pass --as-of to choose "
            "the date"
        )
    return tuple(out)


def orders_behind_feeds_of(history: History, what: str = "scoring") -> tuple[str, ...]:
    """:func:`orders_behind_feeds` of a loaded history."""
    return orders_behind_feeds(_table_days(history), what)


def _table_days(
    history: History | SparkHistory, tables: Iterable[str] = ("orders", *FEEDS)
) -> dict[str, pd.DatetimeIndex]:
    """Each dated table's sorted days (by default the orders and the feeds), all rows."""
    if not isinstance(history, History):
        return {t: pd.DatetimeIndex(history.day_counts(t).index) for t in tables if history.has(t)}
    return {
        t: _days(f[EVENT_DATE[t]])
        for t in tables
        if (f := getattr(history, t, None)) is not None and not f.empty
    }


def _days(dates: pd.Series) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(dates.dt.normalize().unique()).sort_values()


def _silence_of(days: pd.DatetimeIndex, over: int = FEED_LOOKBACK_DAYS) -> int | None:
    """The longest run of days without a row ending in a table's last ``over`` days (days
    between consecutive dated days, sorted; the silence leading into them counts); None when
    it is not a regular feed (fewer than 8 dated days in its last 90).

    The feeds are read over a year (:data:`FEED_SILENCE_DAYS`): a packaging supplier's NPS
    surveys, answered in a March and a September campaign, had "at most 1 day" of silence
    over their last 90 days (the days inside the campaign), so 10 of 13 weekly runs called
    the export late, read it as of its end and showed "Last survey answered 195 days ago"
    for weeks on an account answered 236 days before. The orders keep 90 days: a portfolio's
    order days are daily, and a late orders export should be seen within days."""
    if len(days) == 0:
        return None
    newest = days[-1]
    if (days > newest - pd.Timedelta(days=FEED_LOOKBACK_DAYS)).sum() < 8:
        return None
    start = newest - pd.Timedelta(days=over)
    recent, before = days[days > start], days[days <= start]
    lead = (recent[0] - before[-1]).days if len(before) else 0
    return max(int(pd.Series(recent).diff().dt.days.max()), lead)


def _late_feed_texts(
    late: list[LateFeed],
    last_order: pd.Timestamp,
    as_of: pd.Timestamp,
    orders_silence: int | None,
    *,
    read_as_of_end: bool = True,
) -> tuple[str, ...]:
    """A warning per late feed, saying how the scorer reads it (``orders_silence``: the
    orders' own longest silence, :func:`_silence_of`; ``read_as_of_end``: the local
    engine reads it as of its own end, the Spark engine as it is)."""
    last_order = last_order.normalize()
    # the orders late as well (said in their own warning): not "while orders run to", which
    # read as if they were current
    orders = (
        f"the orders, too, stop on {last_order.date()}"
        if orders_silence is not None and (as_of - last_order).days > orders_silence
        else f"while orders run to {last_order.date()}"
    )
    return tuple(
        f"the {f.table} table's newest row is from {f.newest.date()}, {f.lag} days before "
        f"the scoring date {as_of.date()}: a longer silence than any in its last year "
        f"(at most {n_days(f.usual)}), {orders}. "
        + (
            f"The export looks late: its features are read as of {f.read_as_of.date()}, so "
            f"the missing days do not count as {f.lag} days of silence (check the {f.table} "
            "export)"
            if read_as_of_end
            else f"The export looks late, and the Spark engine reads it as it is: every "
            f"account looks {f.lag} days quieter on it than it is (check the {f.table} "
            "export, or score with --engine local, which reads it as of its own end)"
        )
        for f in late
    )


def scoring_data_check(
    history: History | SparkHistory,
    as_of: pd.Timestamp,
    cfg: Config,
    *,
    explicit: bool,
    today: pd.Timestamp,
    demo: bool = False,
    what: str = "scoring",
) -> tuple[tuple[str, ...], History | SparkHistory]:
    """:func:`check_as_of` (of a ``what`` date), then (the warnings to record, the history
    to score).

    Warnings: the newest order lies ``scoring.stale_data_days`` or more before the scoring
    date, or beyond any silence between order days over the last 90 days (a stale export
    makes every account look that much quieter), or, for a date taken from the data, before
    ``today`` (the week scored is not this week); each late feed (:func:`late_feeds`); and,
    for a date taken from the data, each feed running past the orders
    (:func:`orders_behind_feeds`). The history scored reads each late feed as of its own end
    (:attr:`History.feed_as_of`): a late usage export made every account look 11 days
    quieter on it, and "No product usage for 11 days" then led 553 of 583 accounts' "risk
    up" and 50 of 54 "turned red" in one week. The Spark engine's history is scored as it
    is (:func:`_spark_data_check`: late feeds and orders said, not re-read). The orders'
    and each feed's days are read once for both."""
    check_as_of(history, as_of, cfg, explicit=explicit, today=today, what=what)
    if not isinstance(history, History):
        return _spark_data_check(history, as_of, cfg, explicit=explicit, today=today, demo=demo)
    days = _table_days(history)
    silence = _silence_of(days.get("orders", pd.DatetimeIndex([])))
    last = history.last_order_date.normalize()
    late = late_feeds(days, last, as_of)
    said = _stale_orders(
        last, as_of, cfg, silence, explicit=explicit, today=today, demo=demo
    ) + _late_feed_texts(late, last, as_of, silence)
    said += feed_holes(days, as_of)
    if not explicit:
        said += orders_behind_feeds(days)
    if late:
        history = replace(history, feed_as_of={f.table: f.read_as_of for f in late})
    return said, history


def _spark_data_check(
    history: SparkHistory,
    as_of: pd.Timestamp,
    cfg: Config,
    *,
    explicit: bool,
    today: pd.Timestamp,
    demo: bool,
) -> tuple[tuple[str, ...], SparkHistory]:
    """:func:`scoring_data_check` on Spark: the same stale-orders and late-feed warnings from
    each table's dated days (collected: a few thousand), and the rows dated on or after the
    as-of refused (``data.future_rows: error``) or added to the data's warnings (the
    features leave them out), as the local loader does. A
    user's Spark run scored a usage export 25 days late without a word, 357 of 516 red and
    yellow accounts led by "No product usage for 25 days", and ignored refuse_stale and
    future_rows: error. Late feeds are said, not re-read: Spark reads them as they are."""
    counts = {t: history.day_counts(t) for t in ("orders", *FEEDS, "contracts") if history.has(t)}
    signed = history.has("contracts") and SIGNED_DATE in history.frames["contracts"].columns
    if future := _spark_future_rows(counts, as_of, cfg, signed):  # the data's warnings
        history = replace(history, warnings=(*history.warnings, *future))
    days = {t: pd.DatetimeIndex(c.index[c.index < as_of]) for t, c in counts.items()}
    if len(days["orders"]) == 0:
        return (), history
    last = days["orders"][-1]
    silence = _silence_of(days["orders"])
    late = late_feeds(days, last, as_of)
    said = _stale_orders(
        last, as_of, cfg, silence, explicit=explicit, today=today, demo=demo
    ) + _late_feed_texts(late, last, as_of, silence, read_as_of_end=False)
    said += feed_holes(days, as_of)
    if not explicit:
        every = {t: pd.DatetimeIndex(c.index[c > 0]).sort_values() for t, c in counts.items()}
        said += orders_behind_feeds(every)
    return said, history


def _spark_future_rows(
    counts: Mapping[str, pd.Series], as_of: pd.Timestamp, cfg: Config, signed: bool = False
) -> tuple[str, ...]:
    """Rows dated on or after the as-of, per table: refused under ``data.future_rows:
    error`` (as the local loader does), else one warning each (the features leave them out,
    as the local loader drops them)."""
    found = {}
    for table, c in counts.items():
        after = c[c.index >= as_of.normalize()]
        if after.sum() > 0:
            found[table] = after
    if not found:
        return ()
    level = "warning" if cfg.data.future_rows == "drop" else "error"
    problem, remedy = future_rows_texts(as_of.normalize(), level)
    texts = tuple(
        f"table '{t}', column '{EVENT_DATE[t]}': {problem} ({int(a.sum()):,} "
        f"row{'s' * (int(a.sum()) != 1)}, dated "
        f"{a.index[0].date()}{'' if len(a) == 1 else f' to {a.index[-1].date()}'})"
        for t, a in found.items()
    )
    if level == "error":
        raise KaMlError("; ".join(texts) + ".", remedy)
    return tuple(
        f"{text}. Fix: {remedy}{SIGNED_REMEDY[signed] if t == 'contracts' else ''}"
        for t, text in zip(found, texts, strict=True)
    )


def _stale_orders(
    last: pd.Timestamp,
    as_of: pd.Timestamp,
    cfg: Config,
    orders_silence: int | None,
    *,
    explicit: bool,
    today: pd.Timestamp,
    demo: bool,
) -> tuple[str, ...]:
    """The warning when the orders stop ``scoring.stale_data_days`` or more before the
    scoring date, or beyond their own longest silence, or (a date taken from the data) long
    before today; ``last``: the newest order's day before the scoring date."""
    stale = cfg.scoring.stale_data_days
    lag = (as_of - last).days
    if stale is not None and lag >= stale:
        return (
            f"the newest order in the data is from {last.date()}, {lag} days before the "
            f"scoring date {as_of.date()}: if the export is stale, every account looks {lag} "
            "days quieter than it is (check the source; scoring.stale_data_days)",
        )
    usual = orders_silence if stale is not None else None
    if usual is not None and lag > usual:  # a portfolio ordering daily does not stop for a week
        return (
            f"the newest order in the data is from {last.date()}, {lag} days before the "
            f"scoring date {as_of.date()}: a longer silence than any between order days "
            f"in its last {FEED_LOOKBACK_DAYS} days (at most {n_days(usual)}). "
            f"If the orders export is late, every account looks {lag} days quieter and more "
            f"of them overdue than they are (check the export, or score --as-of "
            f"{(last + pd.Timedelta(days=1)).date()})",
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
    cfg: Config,
    data: str | None,
    as_of: pd.Timestamp | None,
    out: Path,
    engine: str,
    today: pd.Timestamp,
) -> tuple[pd.DataFrame, pd.Timestamp, tuple[str, ...]]:
    """The point-in-time feature table as of ``as_of`` (default: the data's), written to
    ``out`` (.parquet or .csv) atomically: the models' inputs, without the columns built
    only for the scorer's rules (:func:`ka_ml.features.catalog.scorer_only`); and the
    warnings about the data's freshness.

    The history is read as ``ka-ml score`` reads it (:func:`scoring_data_check`): a late
    feed as of its own end. A user comparing the file with the report found "Last survey
    answered 195 days ago" in one and 236 in the other for the same account and day."""
    if out.suffix not in (".parquet", ".csv"):
        raise KaMlError(f"--out '{out}' must end in .parquet or .csv.", "pick one of them.")
    loaded = load(cfg, data, as_of, engine)
    day = as_of or loaded.default_as_of
    demo = not (data or cfg.data.source)  # the embedded demo ends when it ends
    said, h = scoring_data_check(
        loaded, day, cfg, explicit=as_of is not None, today=today, demo=demo, what="features"
    )
    if engine == "spark":
        from ka_ml.spark import features as spark_features

        df = spark_features.build_features(h, day, cfg)
    else:
        df = build_features(h, day, cfg)  # type: ignore[arg-type]
    df = df.drop(columns=[c for c in scorer_only() if c in df.columns])
    if out.suffix == ".parquet":
        atomic_write(out, lambda p: df.to_parquet(p, index=False))
    else:
        atomic_write(out, lambda p: df.to_csv(p, index=False))
    return df, day, said
