"""`ka-ml`: the command-line edge. Parses options, loads config once, calls pure code.

Any :class:`KaMlError` becomes a one-paragraph message on stderr and exit code 2
(``--debug`` shows the traceback); unexpected errors exit 1.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm is imported (stack notes)

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape

from ka_ml.config import DEFAULT_CONFIG_PATH, Config, load_config
from ka_ml.errors import (
    SIGNALS_RECEIVED,
    KaMlError,
    Terminated,
    note_signal,
    stop_if_signalled,
)

app = typer.Typer(
    add_completion=False,
    # plain help: typer 0.29's rich panels label every flag `<bool>`, as if it took a value
    rich_markup_mode=None,
    no_args_is_help=True,
    help="Key-account health: churn risk, purchase timing, explained health lights.",
)


# tables written where there is no terminal (a file, cron's mail): wide enough for the
# widest (train's per-origin table), which squeezed its churn column to "0.0…" at 80
PLAIN_WIDTH = 160


def _console(stderr: bool = False) -> Console:
    """Rich's console on a terminal. Elsewhere (cron's mail, journald, a pipe) Rich would
    wrap every line at 80 columns (a success summary split mid-path) and squeeze tables:
    lines are not wrapped there (the terminal or the reader does), and tables get
    ``PLAIN_WIDTH`` columns unless ``COLUMNS`` says otherwise."""
    c = Console(stderr=stderr)
    if c.is_terminal:
        return c
    width = None if os.environ.get("COLUMNS") else PLAIN_WIDTH
    return Console(stderr=stderr, soft_wrap=True, width=width)


console = _console(stderr=True)
log = logging.getLogger("ka_ml")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="YAML config (default configs/ka_ml.yaml)")
]
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="folder, DuckDB/SQLite file, or database URL without password "
        "(postgresql+psycopg://user@host:5432/db; password from $KA_ML_DB_PASSWORD or "
        "PGPASSWORD/~/.pgpass; tables in data.schema); default: demo data",
    ),
]
AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="YYYY-MM-DD; default: day after the last order")
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="show tracebacks")]
EngineOpt = Annotated[
    str,
    typer.Option(
        "--engine",
        help="local, or spark (needs ka_ml[spark] and Java; master: spark-submit or "
        "$KA_ML_SPARK_MASTER, else local[*]; --data: any path Spark reads or catalog:NAMESPACE, "
        "not a database URL)",
    ),
]


def _local_iso(when: datetime) -> str:
    """``when`` (naive local time, as logging has it) in ISO 8601 with the zone's offset."""
    return when.astimezone().isoformat(timespec="seconds")


class _IsoFormatter(logging.Formatter):
    """``2026-12-05T06:00:56+01:00 WARNING message``: one line a record, date and zone in
    the time stamp (a weekly log read days later, a machine in another zone)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _local_iso(datetime.fromtimestamp(record.created))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler writing to whatever ``sys.stderr`` is when a record comes (as
    logging's own last-resort handler does), not the stream of the moment it was set up: a
    library logging at interpreter exit (py4j's clean-up) met a closed test stream."""

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def _setup_logging(debug: bool) -> None:
    from rich.logging import RichHandler
    from rich.text import Text

    handler: logging.Handler
    if console.is_terminal:  # Rich's columns, the time stamp with date and zone
        handler = RichHandler(
            console=console,
            show_path=False,
            log_time_format=lambda when: Text(f"[{_local_iso(when)}]"),
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:  # cron's mail, journald: plain lines, never wrapped or padded
        handler = _StderrHandler()
        handler.setFormatter(_IsoFormatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO, handlers=[handler], force=True
    )
    for noisy in ("alembic", "mlflow", "urllib3", "matplotlib", "numba", "shap", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # data warnings are printed once, in the command's own summary / run record
    logging.getLogger("ka_ml.data").setLevel(logging.ERROR if not debug else logging.DEBUG)


def _parse_date(value: str | None, what: str) -> pd.Timestamp | None:
    from ka_ml.data.coerce import parse_day

    return parse_day(value, what)


def _today(now: pd.Timestamp | None = None) -> pd.Timestamp:
    """The run's clock, as a naive day (the data's dates are naive): the later of today in
    UTC and today on the machine's local clock. East of UTC an early-morning run's local
    date is already the next day, and orders dated that day are not in the future; west
    of UTC the UTC date is the later one. ``now``: an aware instant (tests), else now."""
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    utc = now.tz_convert("UTC").tz_localize(None).normalize()
    local = pd.Timestamp(now.to_pydatetime().astimezone().replace(tzinfo=None)).normalize()
    return max(utc, local)


def _config(config: Path | None) -> Config:
    """The validated config; without --config and without configs/ka_ml.yaml here, the
    built-in defaults, said once (they read the embedded demo data unless --data is given:
    a scheduler run from the wrong folder had scored the demo without a word)."""
    if config is None and not DEFAULT_CONFIG_PATH.exists():
        log.warning(
            "no --config given and no %s in %s: the built-in defaults are used (the "
            "embedded demo data unless --data names yours)",
            DEFAULT_CONFIG_PATH,
            Path.cwd(),
        )
    return load_config(config)


def _options(config: Path | None, data: str | None = None, engine: str = "local") -> str:
    """This run's --config (the default file when it was used), --data and --engine as a
    printed command repeats them, paths absolute so it works from any folder: a user who
    ran a printed `ka-ml score --as-of D --writeback` without them wrote the demo's scores
    over the production table."""
    parts: list[str] = []
    path = config if config is not None else DEFAULT_CONFIG_PATH
    if config is not None or DEFAULT_CONFIG_PATH.exists():
        parts += ["--config", str(Path(path).resolve())]
    if data:
        parts += ["--data", str(Path(data).resolve()) if Path(data).exists() else data]
    if engine != "local":
        parts += ["--engine", engine]
    return "".join(f" {shlex.quote(x)}" for x in parts)


def _default_run(config: Path | None, data: str | None = None, engine: str = "local") -> bool:
    """Whether this run reads what `make train` trains (configs/ka_ml.yaml, no --data, the
    local engine): only then is `make train` a fix to print; a user scoring with --config
    my.yaml was told to run it, and it trains the default config instead."""
    if data or engine != "local" or not DEFAULT_CONFIG_PATH.exists():
        return False
    return config is None or Path(config).resolve() == DEFAULT_CONFIG_PATH.resolve()


def _load(cfg: Config, data: str | None, as_of: pd.Timestamp | None, engine: str = "local"):
    from ka_ml.jobs.data import load

    return load(cfg, data, as_of, engine)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (a scheduler's timeout, `kill`) stops a command as Ctrl-C does, so the same
    clean-up runs: the MLflow run is marked failed, a cut-short registration is rolled
    back, staged outputs are left unpublished; the exit code is 143, not Ctrl-C's 130."""
    note_signal(signum)
    raise Terminated(signum)


INTERRUPTED = "what it was writing was not published"


def _say_interrupted(why: str, interrupted: str | Callable[[], str]) -> None:
    """The one line an interrupted command ends with: why, and what it left."""
    left = interrupted() if callable(interrupted) else interrupted
    console.print(
        f"[bold red]interrupted[/] ({why}): {escape(left)}.", highlight=False, soft_wrap=True
    )


def _interrupted_by(signum: int, interrupted: str | Callable[[], str]) -> NoReturn:
    """Say the interruption and exit 128 + ``signum``."""
    _say_interrupted("Ctrl-C" if signum == signal.SIGINT else str(Terminated(signum)), interrupted)
    raise typer.Exit(128 + signum) from None


def _run(debug: bool, fn, interrupted: str | Callable[[], str] = INTERRUPTED) -> None:
    """Run a command's body: a KaMlError is one message and exit 2; Ctrl-C or SIGTERM say
    in one line that the command was interrupted and ``interrupted`` (what that left; a
    callable: asked then, when it depends on how far the command got), then exit 130
    (Ctrl-C) or 143 (SIGTERM)."""
    _setup_logging(debug)
    main = threading.current_thread() is threading.main_thread()  # signals: main thread only
    previous = signal.signal(signal.SIGTERM, _terminated) if main else None
    SIGNALS_RECEIVED.clear()
    try:
        fn()
        stop_if_signalled()  # a signal whose exception was lost (see stop_if_signalled)
    except KaMlError as e:
        if SIGNALS_RECEIVED:  # an error of our own that the interruption caused (SMTP)
            _interrupted_by(SIGNALS_RECEIVED[0], interrupted)
        if debug:
            console.print_exception()
        # escaped: "pip install 'ka_ml[spark]'" lost its "[spark]" to Rich markup
        console.print(f"[bold red]error:[/] {escape(e.render())}", highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt as e:
        _say_interrupted(str(e) or "Ctrl-C", interrupted)
        if isinstance(e, Terminated):
            raise typer.Exit(128 + e.signum) from None
        raise
    except typer.Exit:
        raise
    except Exception as e:
        if debug:
            console.print_exception()
        if SIGNALS_RECEIVED:  # a library's own error for our interruption (Spark: py4j)
            _interrupted_by(SIGNALS_RECEIVED[0], interrupted)
        from ka_ml.spark.session import out_of_memory, unreadable_part

        # a Java trace that named neither the cause nor the fix
        if (said := out_of_memory(e) or unreadable_part(e)) is not None:
            console.print(
                f"[bold red]error:[/] {escape(said.render())}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(said.exit_code) from None
        console.print(  # escaped: "Parquet column [amount]" lost its name to Rich markup
            f"[bold red]unexpected error:[/] {type(e).__name__}: {escape(str(e))}. "
            "Rerun with --debug for the traceback.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    finally:
        SIGNALS_RECEIVED.clear()  # said above: the next command in this process starts clean
        if main:
            signal.signal(signal.SIGTERM, previous)


@app.command()
def validate(
    config: ConfigOpt = None,
    data: DataOpt = None,
    as_of: AsOfOpt = None,
    engine: EngineOpt = "local",
    debug: DebugOpt = False,
) -> None:
    """Check a data source: print a summary, or the errors and exit non-zero."""

    def go() -> None:
        from ka_ml.jobs.data import date_warnings, refuse_after_tomorrow

        cfg = _config(config)
        day = _parse_date(as_of, "--as-of")
        if day is not None:  # the date score, train and features refuse, before the data
            refuse_after_tomorrow(day, _today(), "validation")
        # --engine spark: a lakehouse folder or catalog: source, read as `score` will read it
        h = _load(cfg, data, day, engine)
        s = h.summary()
        out = _console()
        out.print(f"[bold green]valid[/]: {s['source']}")
        for t, n in s["tables"].items():  # type: ignore[union-attr]
            # accounts once: its rows are the accounts (one row per id, checked)
            derived = " (no accounts table: derived from the ids in the data)"
            note = derived if t == "accounts" and h.accounts_derived else ""
            if t == "accounts" and (merged := h.accounts_merged):
                note = (
                    f" (and {merged:,} merged into others: their rows count as the account "
                    "they went into)"
                )
            out.print(f"  {t:<10} {n:>9,} rows{note}", soft_wrap=True)
        out.print(f"  orders from {s['first_order']} to {s['last_order']}")
        out.print(f"  fingerprint {s['fingerprint']}")
        dated = date_warnings(h, cfg, _today())
        mail = _address_warnings(h, cfg)
        # Spark: the repeated rows are counted here only (the loader says them as it reads)
        repeats = h.repeated_rows(cfg.data) if hasattr(h, "repeated_rows") else ()
        for note in getattr(h, "conversions", ()):  # money in other currencies, converted
            out.print(f"  note: {note}", soft_wrap=True)
        for w in (*h.warnings, *repeats, *dated, *mail):
            out.print(f"  [yellow]warning[/]: {w}", soft_wrap=True)

    _run(debug, go)


def _address_warnings(h: Any, cfg: Config) -> list[str]:
    """The owners whose digests would have no address of their own, from the accounts
    table (the digests are written only when ``delivery.owner_reports`` is on); ``h`` a
    History or the Spark engine's (`validate --engine spark` had said none of this)."""
    from ka_ml.data.history import History
    from ka_ml.delivery.addresses import owner_address_warnings

    if not cfg.delivery.owner_reports:
        return []
    if isinstance(h, History):
        return owner_address_warnings(h.accounts, cfg.delivery)
    accounts = h.table("accounts")  # Spark: only the owners' columns come to the driver
    if accounts is None:
        return []
    wanted = [c for c in ("account_id", "owner", "owner_email") if c in accounts.columns]
    return owner_address_warnings(accounts.select(*wanted).toPandas(), cfg.delivery)


@app.command("demo-data")
def demo_data(
    out: Annotated[
        Path | None, typer.Option("--out", help="folder (default data.demo_dir)")
    ] = None,
    accounts: Annotated[int | None, typer.Option("--accounts")] = None,
    years: Annotated[float | None, typer.Option("--years")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Write the synthetic demo portfolio (six tables + ground truth in _truth/)."""

    def go() -> None:
        from ka_ml.jobs.data import write_demo

        paths, target = write_demo(_config(config), out, accounts, years, seed, fmt)
        _console().print(f"wrote {len(paths)} files to {target}")

    _run(debug, go)


@app.command()
def features(
    out: Annotated[Path, typer.Option("--out", help="feature table: .parquet or .csv")],
    config: ConfigOpt = None,
    data: DataOpt = None,
    as_of: AsOfOpt = None,
    engine: EngineOpt = "local",
    debug: DebugOpt = False,
) -> None:
    """Write the point-in-time feature table as of --as-of."""

    def go() -> None:
        from ka_ml.jobs.data import write_features

        cfg = _config(config)
        day = _parse_date(as_of, "--as-of")
        df, day, said = write_features(cfg, data, day, out, engine, _today())
        for w in said:
            log.warning(w)
        _console().print(
            f"wrote {len(df):,} accounts x {df.shape[1] - 2} features as of {day.date()} to {out}"
        )

    _run(debug, go)


@app.command()
def train(
    config: ConfigOpt = None,
    data: DataOpt = None,
    as_of: AsOfOpt = None,
    engine: EngineOpt = "local",
    debug: DebugOpt = False,
) -> None:
    """Tune, train, evaluate (out of time, against baselines), track and register both models."""

    def go() -> None:
        from ka_ml.data.history import History
        from ka_ml.jobs.data import check_as_of, load_for_training, orders_behind_feeds_of
        from ka_ml.jobs.train import run_training
        from ka_ml.reporting.console import print_train_report

        cfg = _config(config)
        day = _parse_date(as_of, "--as-of")
        # training runs here (--engine spark builds the snapshots, and reads a source only
        # Spark reads: metastore tables, a file system URI, a Delta table)
        h = load_for_training(cfg, data, day, engine)
        when = day or h.default_as_of
        check_as_of(h, when, cfg, explicit=day is not None, today=_today(), what="training")
        if day is None and isinstance(h, History):
            for text in orders_behind_feeds_of(h, "training"):
                log.warning(text)
        report = run_training(h, cfg, when, log.info, engine)
        print_train_report(report, _console())

    _run(debug, go)


@app.command()
def score(
    out: Annotated[
        Path | None, typer.Option("--out", help="output folder (default outputs/<as-of>/)")
    ] = None,
    config: ConfigOpt = None,
    data: DataOpt = None,
    as_of: AsOfOpt = None,
    notify_owners: Annotated[
        bool, typer.Option("--notify", help="then e-mail each owner their digest (SMTP)")
    ] = False,
    writeback: Annotated[
        bool,
        typer.Option(
            "--writeback",
            help="also upsert the scores into the database at $KA_ML_WRITEBACK_URL "
            "(default: SQLite outputs/scores.db)",
        ),
    ] = False,
    engine: EngineOpt = "local",
    replace_forecast: Annotated[
        bool,
        typer.Option(
            "--replace-forecast",
            help="let a look back (a champion trained after --as-of) replace the forecast "
            "that date holds in the score history",
        ),
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Weekly batch scorer: champion models -> scores, reasons, health lights, report."""
    progress: list = []  # the run's Progress, once it starts: what an interruption left

    def go() -> None:
        from ka_ml.jobs.data import scoring_data_check
        from ka_ml.jobs.score import (
            Progress,
            check_output,
            check_writeback,
            run_scoring,
            writeback_fallback,
            writeback_url,
        )

        cfg = _config(config)
        day = _parse_date(as_of, "--as-of")
        check_output(out)  # before the data is read
        url = writeback_url(cfg, os.environ) if writeback else None
        fallback = writeback_fallback(cfg, os.environ) if writeback else ""
        # likewise: a week's scoring is not lost to the database
        check_writeback(cfg, url, fallback)
        loaded = [_load(cfg, data, day, engine)]
        when = day or loaded[0].default_as_of
        demo = not (data or cfg.data.source)  # the embedded demo ends when it ends
        # the warnings, and the history to score: a late feed read as of its own end
        stale, checked = scoring_data_check(
            loaded[0], when, cfg, explicit=day is not None, today=_today(), demo=demo
        )
        if stale and cfg.scoring.refuse_stale:  # a scheduler watching exit codes sees it
            raise KaMlError(
                f"Stale data, scoring refused (scoring.refuse_stale): {'; '.join(stale)}",
                "refresh the export and rerun; or score a date the data covers with --as-of; "
                "or set scoring.refuse_stale: false to score with a warning.",
            )
        for w in stale:
            log.warning(w)
        loaded = [replace(checked, warnings=(*checked.warnings, *stale))]
        del checked
        progress.append(
            Progress(
                options=_options(config, data, engine),
                config_option=_options(config),
                default_config=_default_run(config, data, engine),
            )
        )
        # handed over (popped): the scorer alone holds the History and can let it go
        try:
            res = run_scoring(
                loaded.pop(),
                cfg,
                when,
                out,
                writeback_url=url,
                writeback_warning=fallback,
                engine=engine,
                replace_forecast=replace_forecast,
                freshness=stale,
                progress=progress[0],
            )
        except KaMlError as e:  # published, the write-back failed: the digests were not sent
            if not (notify_owners and progress[0].published):
                raise
            raise KaMlError(
                e.message,
                f"{e.remedy} The digests were not sent either: "
                f"`{progress[0].notify_command()}` sends them.",
            ) from e
        lights = res.record["lights"]
        _console().print(
            f"scored {len(res.scores):,} accounts as of {res.record['as_of']}: "
            f"[red]{lights.get('red', 0):,} red[/], [yellow]{lights.get('yellow', 0):,} yellow[/], "
            f"[green]{lights.get('green', 0):,} green[/]{_unlit(res.record)} -> "
            f"{res.out_dir}/ (report.html, scores.parquet, scores.csv, scores.xlsx, "
            "run_record.json)"
        )
        _print_run_warnings(res.record, _console())
        _print_delivery(res.record)
        if notify_owners:
            from ka_ml.jobs.notify import notify as send_digests

            _print_notify(send_digests(res.out_dir, cfg, config_option=progress[0].config_option))
            progress[0].notified = True

    def interrupted() -> str:
        from ka_ml.jobs.score import Progress, interrupted_text

        done = progress[0] if progress else Progress()
        return interrupted_text(done, writeback=writeback, notify=notify_owners)

    _run(debug, go, interrupted)


def _unlit(record: dict) -> str:
    """', 240 lapsed (no light)': the accounts the run record's light counts leave out, so
    the summary line adds up ("1,803 accounts: 157 red, 390 yellow, 1016 green" left 240
    unnamed)."""
    lights = record.get("lights") or {}
    lit = sum(int(lights.get(k, 0)) for k in ("red", "yellow", "green"))
    rest = int(record.get("n_accounts") or 0) - lit
    if rest <= 0:
        return ""
    lapsed = int((record.get("lifecycle") or {}).get("lapsed", 0))
    other = rest - lapsed
    return (f", {lapsed:,} lapsed (no light)" if lapsed else "") + (
        f", {other:,} without a light" if other > 0 else ""
    )


def _print_run_warnings(record: dict, out: Console) -> None:
    """What the report's banners say, a line each: the data's warnings (rows dropped, values
    read as they were; stale data was said before the run), the scores look back, the
    inputs drifted (the drift banner's first sentence: the report lists the features). An
    operator's cron log showed only the stale-data line while 3,112 duplicate orders were
    dropped."""
    from ka_ml.reporting.run_notes import drift_line

    said = set(record.get("freshness") or [])
    for w in record.get("warnings") or []:
        if w not in said:
            out.print(f"[yellow]warning[/]: data: {escape(str(w))}", soft_wrap=True)
    if record.get("in_sample"):
        out.print(f"[yellow]warning[/]: {escape(record['in_sample']['message'])}", soft_wrap=True)
    if line := drift_line(record):
        out.print(
            f"[yellow]warning[/]: input drift: {escape(line)} See report.html.", soft_wrap=True
        )


def _print_delivery(record: dict) -> None:
    delivery = record.get("delivery") or {}
    out = _console()
    if delivery.get("owner_reports"):
        out.print(f"  {delivery['owner_reports']} owner reports + digests in owners/")
    for label in delivery.get("unaddressed") or []:
        out.print(
            f"  [yellow]warning[/]: no e-mail address for '{label}' (its digest is written "
            "but not sent: name one in delivery.recipients, or delivery.default_recipient for "
            "accounts without an owner)",
            soft_wrap=True,
        )
    _print_address_warnings(
        delivery.get("placeholder_addressed") or {},
        delivery.get("to_default_recipient") or {},
        out,
    )
    wb = delivery.get("writeback")
    if wb:
        out.print(
            f"  wrote back {wb['rows']:,} rows to {wb['url']} table {wb['table']}"
            + (f" (removed {wb['removed']:,} stale)" if wb["removed"] else ""),
            soft_wrap=True,
        )
        if wb.get("warning"):
            out.print(f"  [bold yellow]warning[/]: {escape(wb['warning'])}", soft_wrap=True)


def _print_address_warnings(
    placeholder: dict[str, str], to_default: dict[str, str], out: Console
) -> None:
    """The owners without an address of their own: a placeholder (never sent), or the
    default recipient standing in. A user's owner without an owner_email was addressed as
    petra.hoffmann@example.com by validate, score and notify, without a word."""
    from ka_ml.delivery.digest import address_warnings

    for line in address_warnings(placeholder, to_default):
        out.print(f"  [yellow]warning[/]: {escape(line)}", soft_wrap=True)


def _print_notify(res) -> None:
    from rich.table import Table

    from ka_ml.delivery.addresses import address_status

    table = Table("owner", "to", "accounts", "red", "turned red", box=None)
    found: dict[str, dict[str, str]] = {"placeholder": {}, "default": {}, "": {}}
    marks = {
        "placeholder": " [yellow](placeholder: never sent)[/]",
        "default": " (default_recipient)",
    }
    for o in res.outgoing:
        d = o.digest
        to = escape(d.address) if d.address else "[yellow]no address[/]"
        status = address_status(d.address, d.own_address, d.owner is not None)
        found[status][d.label] = d.address or ""
        to += marks.get(status, "")
        table.add_row(
            escape(d.label),
            to,
            str(d.counts["accounts"]),
            str(d.counts["red"]),
            str(d.counts["turned_red"]),
        )
    out = _console()
    out.print(table)
    if res.sent:
        out.print(f"sent {len(res.outgoing)} digests from {res.folder}/")
    else:
        where = res.written[0].parent if res.written else "-"
        out.print(f"dry run: wrote {len(res.written)} .eml files to {where}/ (nothing sent)")
    _print_address_warnings(found["placeholder"], found["default"], out)


@app.command()
def notify(
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="YYYY-MM-DD of the scores; default: the latest scored"),
    ] = None,
    scores: Annotated[
        Path | None,
        typer.Option("--scores", help="score output folder (default outputs/<as-of>/)"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="write DIR/<owner>.eml instead of sending")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="folder for the .eml files (--dry-run)")
    ] = None,
    owner: Annotated[
        list[str] | None, typer.Option("--owner", help="only this owner (repeatable)")
    ] = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """E-mail each account manager the digest of their own accounts (SMTP, or .eml files)."""

    def go() -> None:
        from ka_ml.jobs.notify import notify as send_digests
        from ka_ml.jobs.notify import scored_folder

        cfg = _config(config)
        if dry_run and out is None:
            raise KaMlError("--dry-run needs --out DIR.", "name a folder for the .eml files.")
        folder = scores or scored_folder(cfg.paths.outputs, _parse_date(as_of, "--as-of"))
        res = send_digests(
            folder,
            cfg,
            dry_run=dry_run,
            out=out,
            owners=owner or (),
            config_option=_options(config),
        )
        _print_notify(res)

    _run(debug, go)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1, max=64, help="server processes (one core each; README figures)"
        ),
    ] = 1,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Serve the read-only HTTP API over the score history (reference at /docs)."""

    def go() -> None:
        from ka_ml.jobs.serve import serve as run_api

        run_api(_config(config), host, port, os.environ, workers)

    _run(debug, go)


@app.command()
def backtest(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="JSON file (default outputs/backtests/backtest-<as-of>.json)"),
    ] = None,
    config: ConfigOpt = None,
    data: DataOpt = None,
    as_of: AsOfOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Outcome monitoring: how past weekly scores turned out once their horizon passed."""

    def go() -> None:
        from ka_ml.jobs.backtest import run_backtest
        from ka_ml.reporting.console import (
            lights_split_line,
            reds_silence_line,
            versions_lines,
        )

        cfg = _config(config)
        day = _parse_date(as_of, "--as-of")
        h = _load(cfg, data, day)
        res = run_backtest(h, cfg, day or h.default_as_of, out)
        shown = _console()
        s = res.summary
        weeks = int(s["weeks"])
        shown.print(
            f"backtest as of {s['backtest_as_of']}: {weeks} weekly "
            f"{'score' if weeks == 1 else 'scores'}, {s['account_weeks']:,} labelled "
            f"account-weeks -> {res.path}"
        )
        if waiting := res.details.get("waiting_weeks"):
            shown.print(
                f"  {len(waiting)} later {'week waits' if len(waiting) == 1 else 'weeks wait'} "
                f"for its {res.details['horizon_days']}-day horizon to pass: the next can be "
                f"judged from {waiting[0][1]} (ka-ml backtest --as-of {waiting[0][1]} with data "
                "up to then)",
                soft_wrap=True,
            )
        if left_out := res.details.get("left_out_look_back_weeks"):
            shown.print(
                f"  [yellow]left out[/] {len(left_out)} week(s) scored by a churn model trained "
                f"after them (look-backs, not forecasts): {', '.join(left_out)}",
                soft_wrap=True,
            )
        if beyond := res.details.get("left_out_beyond_data_weeks"):
            shown.print(
                f"  [yellow]left out[/] {len(beyond)} week(s) whose outcome the data cannot "
                f"tell yet ({', '.join(beyond)}): {res.details['left_out_beyond_data_reason']}",
                soft_wrap=True,
            )
        figures = {
            BACKTEST_LABELS.get(k, k.replace("_", " ")): v
            for k, v in s.items()
            if isinstance(v, float)
        }
        width = max((len(k) for k in figures), default=0)
        for key, value in figures.items():
            shown.print(f"  {key:<{width}}  {value:.3f}")
        if split := res.details.get("lights_by_churn_definition"):
            shown.print(f"  {lights_split_line(split)}", soft_wrap=True)
        if silent := reds_silence_line(res.details.get("reds_by_silence") or {}):
            shown.print(f"  [yellow]caution:[/] {silent}", soft_wrap=True)
        for line in versions_lines(res.details.get("by_churn_model_version") or {}):
            shown.print(f"  {line}", soft_wrap=True)
        if pauses := res.details.get("pauses_caution"):
            shown.print(f"  [yellow]caution:[/] {pauses}", soft_wrap=True)
        rec = res.details["recommendation"]
        colour = "red" if rec["retrain"] else "yellow" if rec.get("lights") else "green"
        shown.print(f"[{colour}]{res.details['recommendation']['message']}[/]", soft_wrap=True)

    _run(debug, go)


BACKTEST_LABELS = {
    "lit_roc_auc": "roc auc, accounts with a light",
    "red_precision_early": "red precision, reds within rhythm",
}


@app.command()
def models(config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    """List the registered versions of both models: aliases, creation time, run, test metrics."""

    def go() -> None:
        from ka_ml.jobs.models import list_models
        from ka_ml.reporting.console import print_models

        cfg = _config(config)
        print_models(list_models(cfg), cfg, _console())

    _run(debug, go)


@app.command("promote")
def promote_cmd(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="registered model name (see `ka-ml models`)")
    ],
    version: Annotated[
        str, typer.Argument(metavar="VERSION", help="version number to make champion, e.g. 3")
    ],
    reason: Annotated[
        str | None, typer.Option("--reason", help="why, stored with the promotion in MLflow")
    ] = None,
    config: ConfigOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Make VERSION of model NAME the champion by hand; the old champion becomes challenger."""

    def go() -> None:
        from ka_ml.jobs.models import promote
        from ka_ml.reporting.console import print_promotion

        cfg = _config(config)
        print_promotion(promote(cfg, name, version, reason or ""), cfg, _console())

    _run(debug, go)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit as e:
        sys.exit(e.code)


if __name__ == "__main__":
    main()
