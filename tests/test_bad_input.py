"""Bad input as real exports bring it, beyond the loader/validation suites (issue 7.1).

Each case is handled (with the handling asserted) or refused with a specific message and
exit code 2, leaving the output folder, the score history and the registry unchanged.
Delimiters, decimal commas, encodings, BOMs, date formats, time zones, duplicate rows,
leading zeros and unknown accounts are covered by test_loader.py / test_validation.py.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import isolated, registry_state, small_config, write_config
from fixtures import make_history
from typer.testing import CliRunner

from ka_ml.cli import app
from ka_ml.config import Config, DataConfig
from ka_ml.data.history import History
from ka_ml.data.loader import load_history
from ka_ml.errors import DataValidationError, KaMlError, ModelError
from ka_ml.features.build import build_features
from ka_ml.jobs.score import run_scoring
from ka_ml.scoring.score_history import history_path


def check_scoring_date(
    h: History, as_of: pd.Timestamp, cfg: Config, **kw: object
) -> tuple[str, ...]:
    """The warnings :func:`ka_ml.jobs.data.scoring_data_check` records for ``as_of``."""
    from ka_ml.jobs.data import scoring_data_check

    return scoring_data_check(h, as_of, cfg, **kw)[0]  # type: ignore[arg-type]


def cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, " ".join(res.output.split())


# -- dates: an as-of before the data, too little history -------------------------------


def test_an_as_of_before_the_data_starts_is_refused_saying_why(
    trained: Any, demo_dir: Path, tmp_path: Path
) -> None:
    cfg = isolated(trained.cfg, tmp_path)
    before = registry_state(cfg)
    code, out = cli(
        "score", "--config", str(write_config(cfg, tmp_path / "c.yaml")),
        "--data", str(demo_dir), "--as-of", "2000-01-01",
    )  # fmt: skip
    assert code == 2, out
    assert "table 'orders': no orders remain after dropping" in out
    n = len(trained.history.orders)
    assert f"rows dated on or after the as-of date 2000-01-01 were dropped ({n} rows)" in out
    assert "Fix: pass a later --as-of" in out
    assert not (tmp_path / "outputs").exists()
    assert registry_state(cfg) == before


def test_a_future_scoring_date_is_refused_before_anything_is_written(
    trained: Any, demo_dir: Path, tmp_path: Path
) -> None:
    """Seen: one order typed as 2026-11-27 among September's made the weekly run (dated by
    the data) publish a week two months ahead, which then stayed 'latest' in the API."""
    cfg = isolated(trained.cfg, tmp_path)
    data = tmp_path / "data"
    shutil.copytree(demo_dir, data)
    with (data / "orders.csv").open("a") as f:
        f.write("KA00010,2099-11-27,1200\n")
    conf = str(write_config(cfg, tmp_path / "c.yaml"))
    code, out = cli("score", "--config", conf, "--data", str(data))
    assert code != 0, out
    assert "The scoring date 2099-11-28 (the day after the newest order) is after tomorrow" in out
    assert "correct those order dates in the source" in out
    code, out = cli("score", "--config", conf, "--data", str(demo_dir), "--as-of", "2099-01-05")
    assert code != 0 and "--as-of 2099-01-05 is after tomorrow" in out
    assert not (tmp_path / "outputs").exists()


def test_stale_data_can_stop_the_weekly_run_for_a_scheduler_watching_exit_codes(
    trained: Any, demo_dir: Path, tmp_path: Path
) -> None:
    """An operator: if the warehouse stops loading, every Monday scores the same data with
    exit 0 and the digests go out again; nothing a monitor could catch."""
    cfg = isolated(trained.cfg, tmp_path)
    cfg = cfg.model_copy(update={"scoring": cfg.scoring.model_copy(update={"refuse_stale": True})})
    conf = str(write_config(cfg, tmp_path / "c.yaml"))
    late = (trained.history.last_order_date + pd.Timedelta(days=9)).date()
    code, out = cli("score", "--config", conf, "--data", str(demo_dir), "--as-of", str(late))
    assert code == 2, out
    assert "Stale data, scoring refused (scoring.refuse_stale): the newest order" in out
    assert "scoring.refuse_stale: false to score with a warning" in out
    assert not (tmp_path / "outputs").exists()


def _orders_to(last: str, extra: list[str]) -> History:
    """Ten orders a day over the 60 days up to ``last``, plus one order on each ``extra`` day."""
    days = pd.date_range(end=last, periods=60).repeat(10).append(pd.DatetimeIndex(extra))
    n = len(days)
    orders = pd.DataFrame(
        {
            "account_id": [f"A{i % 40}" for i in range(n)],
            "order_date": days,
            "amount": 1.0,
            "order_id": [f"SO{i}" for i in range(n)],
        }
    )
    return History(
        orders=orders, accounts=pd.DataFrame({"account_id": [f"A{i}" for i in range(40)]})
    )


def test_a_lone_newest_order_day_is_named_and_a_run_dated_by_it_refused() -> None:
    """Seen: one order typed 03.05.2026 among orders ending 2025-11-28 dated the weekly run
    2026-05-04, marked 270 of 284 accounts lapsed, and the only warning blamed a stale export."""
    from ka_ml.jobs.data import date_warnings, lone_newest_orders

    cfg = Config()
    h = _orders_to("2025-11-28", ["2026-05-03"])
    lone = lone_newest_orders(h, 28)
    assert lone is not None
    assert lone.newest == pd.Timestamp("2026-05-03") and lone.previous == pd.Timestamp("2025-11-28")
    assert lone.text == (
        "the newest order day, 2026-05-03 (1 order: account A0, order SO600), stands alone 156 "
        "days after the order day before it (2025-11-28; 280 orders in the 28 days up to then)"
    )
    today = pd.Timestamp("2026-05-05")
    with pytest.raises(KaMlError) as err:
        check_scoring_date(h, pd.Timestamp("2026-05-04"), cfg, explicit=False, today=today)
    assert (
        "The scoring date would be 2026-05-04, the day after the newest order" in err.value.message
    )
    assert "--as-of 2025-11-29 to leave it out" in err.value.remedy
    assert "--as-of 2026-05-04" in err.value.remedy
    # chosen by the user, the date stands
    assert check_scoring_date(h, pd.Timestamp("2026-05-04"), cfg, explicit=True, today=today) == ()
    (said,) = date_warnings(h, cfg, today)
    assert said.startswith("the newest order day, 2026-05-03") and "score and train" in said
    # a portfolio coming back after a closure, or the usual weeks: nothing to say
    assert lone_newest_orders(_orders_to("2025-11-28", ["2026-01-10"] * 30), 28) is None
    assert lone_newest_orders(_orders_to("2025-11-28", ["2025-12-10"]), 28) is None
    assert lone_newest_orders(_orders_to("2025-11-28", []), 28) is None
    assert date_warnings(_orders_to("2025-11-28", []), cfg, today) == ()
    future, lone_too = date_warnings(h, cfg, pd.Timestamp("2026-03-01"))
    assert future.startswith("1 orders are dated after today (2026-03-01), the earliest 2026-05-03")
    assert lone_too == said


def test_a_feed_that_stopped_before_the_orders_is_warned_about() -> None:
    """Seen over a quarter: the weekly usage export (dated Sundays) missed 2026-10-04, and
    the run of 2026-10-05 raised 439 accounts' risk by 10 points or more with only a drift
    banner in the report; nothing said the usage table had stopped."""

    h = _orders_to("2026-10-04", [])
    sundays = pd.date_range(end="2026-09-27", periods=20, freq="7D")
    usage = pd.DataFrame({"account_id": "A1", "date": sundays, "count": 3.0})
    tickets = pd.DataFrame({"account_id": "A1", "opened_at": pd.to_datetime(["2026-05-02"])})
    h = replace(h, usage=usage, tickets=tickets)
    cfg, today = Config(), pd.Timestamp("2026-10-06")
    assert check_scoring_date(h, pd.Timestamp("2026-10-01"), cfg, explicit=True, today=today) == ()
    (late,) = check_scoring_date(h, pd.Timestamp("2026-10-05"), cfg, explicit=True, today=today)
    assert late.startswith(
        "the usage table's newest row is from 2026-09-27, 8 days before the scoring date "
        "2026-10-05: a longer silence than any in its last year (at most 7 days), while "
        "orders run to 2026-10-04. The export looks late: its features are read as of "
        "2026-09-28, so the missing days do not count as 8 days of silence"
    )


def test_a_survey_campaign_two_months_old_is_not_a_late_export() -> None:
    """Seen on a packaging supplier's NPS surveys, answered in a March and a September
    campaign: 10 of 13 weekly runs called the survey export late ("at most 1 day" of silence
    in its last 90 days, the days inside the campaign), read it as of its end and showed
    "Last survey answered 195 days ago" for weeks on an account answered 236 days before.
    The silence leading into the 90 days, between campaigns, is the table's usual one."""
    h = _orders_to("2026-11-23", [])
    campaigns = [("2025-03-10", "2025-03-21"), ("2025-09-15", "2025-09-26")]
    campaigns += [("2026-03-09", "2026-03-20"), ("2026-09-14", "2026-09-25")]
    answered = pd.DatetimeIndex([d for a, b in campaigns for d in pd.date_range(a, b)])
    surveys = pd.DataFrame({"account_id": "A1", "date": answered, "score": 8.0})
    h = replace(h, surveys=surveys)
    cfg, day = Config(), pd.Timestamp("2026-11-24")
    assert check_scoring_date(h, day, cfg, explicit=True, today=day) == ()
    # before September's campaign, March's is 165 days old: within the 178 days that
    # separated March's and September's a year before
    before = replace(h, surveys=surveys.iloc[:36])
    assert (
        check_scoring_date(before, pd.Timestamp("2026-09-01"), cfg, explicit=True, today=day) == ()
    )
    # a campaign table that has stopped for longer than its campaigns' gap is still late
    spring = pd.Timestamp("2027-04-01")
    later = replace(h, orders=_orders_to("2027-03-31", []).orders)
    (late,) = check_scoring_date(later, spring, cfg, explicit=True, today=spring)
    assert late.startswith("the surveys table's newest row is from 2026-09-25, 188 days before")
    assert "a longer silence than any in its last year (at most 178 days)" in late


def test_a_late_feed_is_read_as_of_its_own_end_and_the_orders_as_of_the_scoring_date() -> None:
    """Seen on three Mondays scored beside a usage export that had stopped: 553 of 583
    accounts' "risk up" and 50 of 54 "turned red" led with "No product usage for 11 days",
    the days the export had not yet delivered."""
    from ka_ml.features.build import build_features
    from ka_ml.jobs.data import scoring_data_check

    h = _orders_to("2026-09-30", [])
    days = pd.date_range(end="2026-09-27", periods=120, freq="D")
    usage = pd.DataFrame({"account_id": "A1", "date": days, "count": 3.0})
    h = replace(h, usage=usage)
    cfg, day = Config(), pd.Timestamp("2026-10-08")
    (orders_late, said), held = scoring_data_check(h, day, cfg, explicit=True, today=day)
    assert isinstance(held, History)
    assert dict(held.feed_as_of) == {"usage": pd.Timestamp("2026-09-28")}
    assert orders_late.startswith("the newest order in the data is from 2026-09-30")
    # the orders stopped too: not "while orders run to"
    assert "(at most 1 day), the orders, too, stop on 2026-09-30. The export looks late" in said
    on_time = pd.Timestamp("2026-09-28")
    nothing, same = scoring_data_check(h, on_time, cfg, explicit=True, today=day)
    assert nothing == () and same is h  # on time: as it is
    now, raw = build_features(held, day, cfg), build_features(h, day, cfg)
    at_end = build_features(h, pd.Timestamp("2026-09-28"), cfg)
    usage_cols = [c for c in now.columns if c.startswith("usage_")]
    pd.testing.assert_frame_equal(now[usage_cols], at_end[usage_cols])
    a1 = (now["account_id"] == "A1").to_numpy()
    assert now["usage_recency_days"][a1].item() == 1
    assert raw["usage_recency_days"][a1].item() == 11
    others = [c for c in now.columns if c not in usage_cols]
    pd.testing.assert_frame_equal(now[others], raw[others])  # orders: as of the scoring date


def test_a_weekly_feed_is_read_as_the_model_saw_it_on_another_weekday() -> None:
    """A weekly usage feed dated Mondays, a model trained on Tuesdays (the day after the
    newest order), scored on Mondays: every account read 6 days quieter than anything the
    model had learnt, 80 red and 156 yellow, "Product last used 7 days ago" the first reason
    of 713 of 782 accounts. The model's card keeps how long after the feed's newest row it
    saw it; the scorer reads the feed as of that many days after its newest row."""
    from ka_ml.jobs.data import align_feed_lags, feed_lags

    h = _orders_to("2026-11-30", [])
    mondays = pd.date_range("2026-01-05", "2026-11-23", freq="7D")  # one row a week
    h = replace(h, usage=pd.DataFrame({"account_id": "A1", "date": mondays, "count": 3.0}))
    tuesdays = pd.date_range("2026-03-03", "2026-08-25", freq="14D")
    assert feed_lags(h, tuesdays) == {"usage": 1}
    assert feed_lags(h, tuesdays + pd.Timedelta(days=6)) == {"usage": 7}  # Mondays: 7
    monday = pd.Timestamp("2026-11-30")
    held, (said,) = align_feed_lags(h, monday, {"usage": 1})
    assert dict(held.feed_as_of) == {"usage": pd.Timestamp("2026-11-24")}
    assert said.startswith(
        "the usage table's newest row before 2026-11-30 is from 2026-11-23, 7 days earlier, and "
        "the churn model never saw it more than 1 day after its newest row"
    )
    a1 = lambda f: f[f["account_id"] == "A1"]  # noqa: E731
    assert a1(build_features(held, monday, Config()))["usage_recency_days"].item() == 1
    assert a1(build_features(h, monday, Config()))["usage_recency_days"].item() == 7
    # on the model's weekday, within what it saw, or a feed read as late already: as it is
    assert align_feed_lags(h, pd.Timestamp("2026-11-24"), {"usage": 1}) == (h, ())
    assert align_feed_lags(h, monday, {"usage": 7}) == (h, ())
    late = replace(h, feed_as_of={"usage": pd.Timestamp("2026-11-20")})
    assert align_feed_lags(late, monday, {"usage": 1}) == (late, ())
    assert align_feed_lags(h, monday, {}) == (h, ())
    # a feed answered in campaigns, seen up to months after its newest row: its own lag
    assert align_feed_lags(h, monday, {"usage": 60})[1] == ()
    assert align_feed_lags(h, pd.Timestamp("2027-03-01"), {"usage": 30}) == (h, ())


def test_a_hole_in_the_usage_feed_is_said_by_validate_and_score() -> None:
    """A user's usage feed was down three weeks and never backfilled: from the first
    Monday after, 73 of 81 newly lit accounts were healthy, 69 led by "Usage in the last 90
    days fell", with no word anywhere."""
    from ka_ml.jobs.data import date_warnings, feed_holes, scoring_data_check

    h = _orders_to("2026-11-30", [])
    mondays = pd.date_range("2026-01-05", "2026-11-30", freq="7D")
    down = mondays.isin(pd.to_datetime(["2026-10-05", "2026-10-12", "2026-10-19"]))
    usage = pd.DataFrame({"account_id": "A1", "date": mondays[~down], "count": 3.0})
    h = replace(h, usage=usage)
    day = pd.Timestamp("2026-12-01")
    (hole,) = feed_holes({"usage": pd.DatetimeIndex(mondays[~down])}, day)
    assert hole.startswith(
        "the usage table has no row for any account from 2026-09-29 to 2026-10-25 (27 days), "
        "in a feed with a row every 7 days otherwise"
    )
    assert "until 2027-04-25" in hole
    said, _ = scoring_data_check(h, day, Config(), explicit=True, today=day)
    assert hole in said
    assert hole in date_warnings(h, Config(), day)
    # a feed without a hole, or one whose silence is still running (late, said apart)
    assert feed_holes({"usage": pd.DatetimeIndex(mondays)}, day) == ()
    assert feed_holes({"usage": pd.DatetimeIndex(mondays[:-8])}, day) == ()


def test_ka_ml_features_reads_a_late_feed_as_the_scorer_does(tmp_path: Path) -> None:
    """The feature file is the models' inputs as of a date: a user comparing it with the
    report read "Last survey answered 195 days ago" in one and 236 days in the other, for
    the same account on the same day (the scorer read the late feed as of its end)."""
    from ka_ml.jobs.data import write_features

    h = _orders_to("2026-09-30", [])
    src = tmp_path / "data"
    src.mkdir()
    h.orders.to_csv(src / "orders.csv", index=False)
    h.accounts.to_csv(src / "accounts.csv", index=False)
    days = pd.date_range(end="2026-09-27", periods=120, freq="D")
    pd.DataFrame({"account_id": "A1", "date": days, "count": 3.0}).to_csv(
        src / "usage.csv", index=False
    )
    day, out = pd.Timestamp("2026-10-08"), tmp_path / "f.csv"
    _, when, said = write_features(Config(), str(src), day, out, "local", day)
    assert when == day
    assert any("usage table" in w and "read as of 2026-09-28" in w for w in said), said
    a1 = pd.read_csv(out).set_index("account_id").loc["A1"]
    assert a1["usage_recency_days"] == 1  # as the scorer reads it, not 11
    assert a1["recency_days"] == 11  # its last order 2026-09-27: as of the scoring date
    with pytest.raises(KaMlError, match="the features of a future date"):
        write_features(Config(), str(src), day, out, "local", pd.Timestamp("2026-10-01"))


def test_train_refuses_a_date_taken_from_a_mistyped_order(
    trained: Any, demo_dir: Path, tmp_path: Path
) -> None:
    cfg = isolated(trained.cfg, tmp_path)
    before = registry_state(cfg)
    data = tmp_path / "data"
    shutil.copytree(demo_dir, data)
    last = trained.history.last_order_date
    typo = (last + pd.Timedelta(days=40)).date()
    with (data / "orders.csv").open("a") as f:
        f.write(f"KA00010,{typo},1200,SO_TYPO,Consumables,1\n")
    conf = str(write_config(cfg, tmp_path / "c.yaml"))
    code, out = cli("train", "--config", conf, "--data", str(data))
    assert code == 2, out
    assert f"The training date would be {(last + pd.Timedelta(days=41)).date()}" in out
    assert "account KA00010, order SO_TYPO" in out
    assert f"--as-of {(last + pd.Timedelta(days=1)).date()} to leave it out" in out
    assert registry_state(cfg) == before
    code, out = cli("validate", "--config", conf, "--data", str(data))
    assert code == 0 and f"warning: the newest order day, {typo}" in out


def test_scoring_dates_warn_when_the_data_looks_stale() -> None:

    cfg = Config()
    orders = pd.DataFrame(
        {
            "account_id": ["A", "B"],
            "order_date": pd.to_datetime(["2026-08-01", "2026-09-30"]),
            "amount": [1.0, 2.0],
        }
    )
    h = History(orders=orders, accounts=pd.DataFrame({"account_id": ["A", "B"]}))
    today = pd.Timestamp("2026-10-02 09:00")
    assert check_scoring_date(h, pd.Timestamp("2026-10-01"), cfg, explicit=False, today=today) == ()
    nov = pd.Timestamp("2026-11-05")
    (late,) = check_scoring_date(h, pd.Timestamp("2026-11-02"), cfg, explicit=True, today=nov)
    assert late.startswith("the newest order in the data is from 2026-09-30, 33 days before")
    later = pd.Timestamp("2026-11-20")  # the weekly run, dated by data 50 days old
    (old,) = check_scoring_date(h, pd.Timestamp("2026-10-01"), cfg, explicit=False, today=later)
    assert "2026-09-30, 51 days ago: these scores are as of 2026-10-01, not this week" in old
    assert check_scoring_date(
        h, pd.Timestamp("2026-10-01"), cfg, explicit=False, today=later, demo=True
    ) == ()  # fmt: skip
    quiet = cfg.model_copy(
        update={"scoring": cfg.scoring.model_copy(update={"stale_data_days": None})}
    )
    assert check_scoring_date(h, pd.Timestamp("2026-11-02"), quiet, explicit=True, today=nov) == ()
    assert check_scoring_date(h, pd.Timestamp("2026-10-03"), cfg, explicit=True, today=today) == ()


def test_a_late_orders_export_is_warned_about_before_the_28_days() -> None:
    """Seen: the demo orders every day (about 60 accounts a day), scored 8 and 15 days after
    its newest order with no warning, while the overdue yellows grew 115 -> 157 -> 182."""

    h, cfg = _orders_to("2026-09-30", []), Config()  # ten orders a day
    today = pd.Timestamp("2026-10-09")
    assert check_scoring_date(h, pd.Timestamp("2026-10-01"), cfg, explicit=True, today=today) == ()
    (late,) = check_scoring_date(h, pd.Timestamp("2026-10-08"), cfg, explicit=True, today=today)
    assert late == (
        "the newest order in the data is from 2026-09-30, 8 days before the scoring date "
        "2026-10-08: a longer silence than any between order days in its last 90 days (at most "
        "1 day). If the orders export is late, every account looks 8 days quieter and more of "
        "them overdue than they are (check the export, or score --as-of 2026-10-01)"
    )
    weekdays = _orders_to("2026-10-02", [])
    o = weekdays.orders
    weekdays = replace(weekdays, orders=o[o["order_date"].dt.dayofweek < 5])  # no weekend orders
    monday = pd.Timestamp("2026-10-05")  # the newest order on Friday: the usual weekend
    assert check_scoring_date(weekdays, monday, cfg, explicit=True, today=monday) == ()
    (tuesday,) = check_scoring_date(
        weekdays, monday + pd.Timedelta(days=1), cfg, explicit=True, today=monday
    )
    assert "4 days before the scoring date 2026-10-06" in tuesday and "(at most 3 days)" in tuesday
    quiet = cfg.model_copy(
        update={"scoring": cfg.scoring.model_copy(update={"stale_data_days": None})}
    )
    assert (
        check_scoring_date(h, pd.Timestamp("2026-10-08"), quiet, explicit=True, today=today) == ()
    )


def test_an_orders_export_ending_weeks_before_the_other_feeds_is_warned_about() -> None:
    """User test: an export whose orders stopped a month early (tickets to 2026-11-30,
    orders to 2026-10-31) was validated, trained and scored as of 2026-11-01 without a
    word: a date taken from the data left November out."""
    from ka_ml.jobs.data import date_warnings, orders_behind_feeds_of

    h = _orders_to("2026-10-31", [])
    tickets = pd.DataFrame(
        {
            "account_id": "A1",
            "opened_at": pd.date_range(end="2026-11-30", periods=40, freq="2D"),
        }
    )
    short = replace(h, tickets=tickets)
    (said,) = orders_behind_feeds_of(short, "training")
    assert said.startswith(
        "the orders end on 2026-10-31, but the tickets run to 2026-11-30, 30 days later: "
        "longer than any silence between order days over their last 90 days (1 day). Is the "
        "orders export missing its last weeks? A training date taken from the data "
        "(2026-11-01, the day after the newest order) dates the run 30 days back and leaves "
        "the later tickets out"
    )
    assert said.endswith("Fix: export the orders up to date, or pass --as-of to choose the date")
    today = pd.Timestamp("2026-12-01")
    assert any("missing its last weeks" in w for w in date_warnings(short, Config(), today))
    as_of = pd.Timestamp("2026-11-01")
    assert any(
        "missing its last weeks" in w
        for w in check_scoring_date(short, as_of, Config(), explicit=False, today=as_of)
    )
    # an explicit date is the user's choice; a feed a silence ahead is no alarm
    assert not any(
        "missing its last weeks" in w
        for w in check_scoring_date(short, as_of, Config(), explicit=True, today=as_of)
    )
    close = replace(
        h, tickets=tickets.assign(opened_at=tickets["opened_at"] - pd.Timedelta(days=29))
    )
    assert orders_behind_feeds_of(close) == ()


def test_too_little_history_for_the_horizon_is_a_clear_model_error(
    trained: Any, demo_dir: Path, tmp_path: Path
) -> None:
    cfg = isolated(trained.cfg, tmp_path)
    before = registry_state(cfg)
    # 120 days: one snapshot (28 days after the first order) has its 90-day label window
    early = (trained.history.first_date + pd.Timedelta(days=120)).date()
    code, out = cli(
        "train", "--config", str(write_config(cfg, tmp_path / "c.yaml")),
        "--data", str(demo_dir), "--as-of", str(early),
    )  # fmt: skip
    assert code == 2, out
    assert "No test is possible: 1 fully labelled snapshot date(s)" in out
    assert "90-day purge" in out and "Fix: provide a longer history" in out
    assert registry_state(cfg) == before  # no run, no version


@pytest.mark.slow
def test_a_history_shorter_than_the_purge_trains_on_held_out_accounts_and_scores(
    trained: Any, demo_dir: Path, tmp_path: Path, mlflow_state: None
) -> None:
    """Five months of orders: the labelled snapshots span less than the 90-day purge, so no
    out-of-time origin fits; training holds accounts out instead (issue 13, points 7-8),
    says so, and leaves a champion that scores (a registry of its own: the first model)."""
    from ka_ml.config import PathsConfig

    paths = PathsConfig(outputs=tmp_path / "outputs", models=tmp_path / "models")
    cfg = trained.cfg.model_copy(update={"paths": paths})
    path = str(write_config(cfg, tmp_path / "c.yaml"))
    early = str((trained.history.first_date + pd.Timedelta(days=150)).date())
    code, out = cli("train", "--config", path, "--data", str(demo_dir), "--as-of", early)
    assert code == 0, out
    assert "purge none: accounts held out" in out
    assert "less than the 90-day purge: no out-of-time test fits" in out
    assert "the training procedure on held-out accounts, in time, pooled over" in out
    assert "-> champion: no comparable champion yet" in out  # its own, new registry
    code, out = cli("score", "--config", path, "--data", str(demo_dir), "--as-of", early)
    assert code == 0, out
    assert "scored" in out


# -- labels: no churners, only churners, a single account -------------------------------


def _regular(n_accounts: int, days: int, every: int = 10) -> History:
    """Accounts that order every ``every`` days for ``days`` days: nobody churns."""
    ids = pd.DataFrame({"account_id": [f"A{i:03d}" for i in range(n_accounts)]})
    dates = pd.DataFrame(
        {"order_date": pd.date_range("2023-01-02", periods=days // every, freq=f"{every}D")}
    )
    return make_history(ids.merge(dates, how="cross").assign(amount=100.0))


def _one_off(n_accounts: int, spacing: int = 3) -> History:
    """Each account orders once, a few days after the previous one: every at-risk account
    churns (it never orders again)."""
    days = pd.to_timedelta(spacing * pd.RangeIndex(n_accounts), unit="D")
    return make_history(
        pd.DataFrame(
            {
                "account_id": [f"B{i:03d}" for i in range(n_accounts)],
                "order_date": pd.Timestamp("2023-01-02") + days,
                "amount": 50.0,
            }
        )
    )


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """A fresh MLflow store (and outputs) for the refused trainings."""
    return small_config(tmp_path_factory.mktemp("bad_input_store"))


@pytest.mark.parametrize(
    ("history", "kind"),
    [
        (_regular(40, 3 * 365), "no churners"),
        (_one_off(330), "only churners"),
        (_regular(1, 3 * 365), "no churners"),
    ],
    ids=["no-churners", "only-churners", "single-account"],
)
def test_training_data_with_a_single_churn_class_is_refused_before_any_mlflow_run(
    history: History, kind: str, empty_store: Config
) -> None:
    from ka_ml.jobs.train import run_training

    before = registry_state(empty_store)
    with pytest.raises(ModelError) as err:
        run_training(history, empty_store, history.default_as_of, progress=lambda s: None)
    assert "snapshots of the test origin" in err.value.message
    assert f"contain {kind}" in err.value.message
    assert "more accounts" in err.value.remedy and "labels.churn_definition" in err.value.remedy
    assert registry_state(empty_store) == before == {"runs": 0}


def _one_account(h: History, account: str) -> History:
    tables = {
        name: None if df is None else df[df["account_id"] == account].reset_index(drop=True)
        for name, df in h.tables().items()
    }
    accounts = tables["accounts"].assign(contact_email="ceo.private@customer.example")
    return replace(h, **{**tables, "accounts": accounts})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def single(trained: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The champion scores a one-account portfolio whose accounts table has a PII column."""
    h = trained.history
    account = str(h.orders.sort_values("order_date")["account_id"].iloc[-1])
    root = tmp_path_factory.mktemp("single")
    res = run_scoring(_one_account(h, account), isolated(trained.cfg, root), h.default_as_of)
    return root, res


def test_a_single_account_portfolio_is_scored_as_its_whole_portfolio(
    single: tuple[Path, Any],
) -> None:
    _, res = single
    s = res.scores
    assert len(s) == 1 and 0 <= s["churn_probability"].iloc[0] <= 1
    assert s["revenue_share"].iloc[0] == pytest.approx(1.0)
    assert str(s["abc_tier"].iloc[0]) == "A" and s["health"].iloc[0] in {"red", "yellow", "green"}
    drift = res.record["drift"]
    assert drift["banner"] is False and "too few to compare" in drift["message"]


def test_outputs_show_only_the_account_columns_the_scorer_selects(
    single: tuple[Path, Any],
) -> None:
    """An extra accounts column (here a private e-mail) never reaches any output file."""
    from ka_ml.scoring.score import ACCOUNT_COLUMNS

    _, res = single
    assert "contact_email" not in res.scores.columns
    assert set(ACCOUNT_COLUMNS) <= set(res.scores.columns)
    written = [p for p in res.out_dir.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"report.html", "scores.csv", "scores.xlsx"}
    for p in written:
        assert b"ceo.private" not in p.read_bytes(), p.name


# -- empty tables and huge files --------------------------------------------------------


def test_a_zero_byte_orders_file_fails_validate_naming_the_empty_table(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_bytes(b"")
    code, out = cli("validate", "--data", str(tmp_path))
    assert code == 2, out
    assert "table 'orders'" in out and "empty" in out and "orders is required" in out


def test_credit_notes_and_zero_amounts_are_kept_as_data(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        "account_id,order_date,amount\nA1,2024-01-05,100\nA1,2024-02-05,-50\n"
        "A1,2024-03-05,0\nA2,2024-03-01,10\n"
    )
    h = load_history(tmp_path, DataConfig())
    assert h.orders["amount"].tolist() == [100.0, -50.0, 0.0, 10.0] and h.warnings == ()
    f = build_features(h, pd.Timestamp("2024-04-01"), Config()).set_index("account_id")
    assert f.loc["A1", "spend_365d"] == 50.0  # the credit note subtracts
    assert (f.loc[["A1"], "credit_share_365d"] > 0).all()


def _never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    import ka_ml.data.loader as loader

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an oversized file was read")

    monkeypatch.setattr(loader.pd, "read_csv", refuse)
    monkeypatch.setattr(loader, "sniff_delimiter", refuse)
    monkeypatch.setattr(loader, "_header_line", refuse)


def test_a_2_gb_export_is_refused_before_a_byte_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "orders.csv").open("wb") as f:
        f.truncate(2 * 2**30)  # a sparse 2 GiB file: no disk or memory used
    _never_read(monkeypatch)
    code, out = cli("validate", "--data", str(tmp_path))
    assert code == 2, out
    assert "'orders.csv' is 2,048.00 MB, above the limit data.max_file_mb = 1,024 MB" in out
    assert "raise data.max_file_mb" in out


def test_the_file_size_limit_is_configurable_and_can_be_lifted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = "".join(f"A{i % 7},2024-01-{1 + i % 28:02d},{i}\n" for i in range(200))
    (tmp_path / "orders.csv").write_text("account_id,order_date,amount\n" + rows)
    size_kb = (tmp_path / "orders.csv").stat().st_size / 1024
    assert 2 < size_kb < 5
    assert len(load_history(tmp_path, DataConfig(max_file_mb=0.01)).orders) == 200  # 10 KB
    assert len(load_history(tmp_path, DataConfig(max_file_mb=None)).orders) == 200
    _never_read(monkeypatch)
    with pytest.raises(DataValidationError) as err:
        load_history(tmp_path, DataConfig(max_file_mb=0.001))
    assert [i.table for i in err.value.issues] == ["orders"]
    assert "above the limit data.max_file_mb = 0.001 MB" in str(err.value)


def test_an_oversized_database_file_is_refused_too(tmp_path: Path) -> None:
    db = tmp_path / "crm.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE orders (account_id TEXT, order_date TEXT, amount REAL)")
        con.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)",
            [("A1", "2024-01-05", float(i)) for i in range(2000)],
        )
    with pytest.raises(DataValidationError, match=r"'crm.sqlite' is .* MB, above the limit"):
        load_history(db, DataConfig(max_file_mb=0.01))
    assert len(load_history(db, DataConfig()).orders) == 2000


def test_nothing_is_written_for_refused_input(trained: Any, tmp_path: Path) -> None:
    """The refusals above happen while loading: no output folder, no score history."""
    cfg = isolated(trained.cfg, tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "orders.csv").write_text("account_id,order_date,amount\n")
    code, out = cli(
        "score", "--config", str(write_config(cfg, tmp_path / "c.yaml")),
        "--data", str(tmp_path / "data"), "--out", str(tmp_path / "week"),
    )  # fmt: skip
    assert code == 2 and "empty" in out
    assert not (tmp_path / "week").exists() and not history_path(cfg).exists()
