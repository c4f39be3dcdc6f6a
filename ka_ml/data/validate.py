"""Typing and checking the contract's tables: raw frames in, a History and every issue out.

Pure (no I/O): :mod:`ka_ml.data.loader` reads, this module decides. All findings are
collected before anyone raises, so a user fixes an export in one round. Each finding is a
:class:`DataIssue` naming table, column, example rows (``row N`` = file line for delimited
files, where the header is line 1; 1-based row position for Parquet and databases), the
row count and the remedy.

:func:`validate_tables` orchestrates: each table's cells are typed (:mod:`ka_ml.data.coerce`)
and the table is checked (here; its currencies in :mod:`ka_ml.data.currency`; its account
ids and owner names in :mod:`ka_ml.data.spellings`, which also drops the rows of accounts
the accounts table lacks); rows dated on or after the as-of are dropped or refused; the
History is assembled, merged accounts are rolled up (:mod:`ka_ml.data.merges`) and the whole
is checked (order ids, credit notes, units, renewals: :mod:`ka_ml.data.history_checks`, the
checks that compare rows with each other). The table under validation is a
:class:`ka_ml.data.table.Table`.

The typing rules of the cells (the History conventions) are :mod:`ka_ml.data.coerce`'s;
beyond them:
- extra (non-contract) columns are kept as text, unstripped, blanks missing;
- every contract column exists in the result (all-missing when the source lacks it).

Rows are sorted on the table's keys, then every other column, and re-indexed, so the same
data from CSV, Parquet, DuckDB or SQLite gives identical frames and fingerprints.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, NamedTuple, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api import types as ptypes

from ka_ml.config import DataConfig, ReadOptions, close_matches
from ka_ml.data.coerce import (
    BAD_PROBLEM,
    MISSING_TOKENS,
    bad_remedy,
    coerce,
    grouped_numbers_texts,
    normalize_as_of,
    to_text,
)
from ka_ml.data.currency import convert_currencies, currency_columns, currency_issue
from ka_ml.data.history import OPTIONAL_TABLES, History, known_dates
from ka_ml.data.history_checks import (
    amount_scale,
    credits_over_spend,
    order_id_issues,
    renewed_while_running,
)
from ka_ml.data.merges import merge_map, merged_note, rekey
from ka_ml.data.rowkey import repeated, row_key, sort_order
from ka_ml.data.schema import (
    EVENT_DATE,
    SCHEMA,
    SEVERITIES,
    SIGNED_DATE,
    SURVEY_SCALE,
    Kind,
    TableSpec,
)
from ka_ml.data.spellings import (
    case_twin_issues,
    drop_unknown_accounts,
    fold_case,
    no_orders_left,
    owner_spellings,
    zero_core,
    zero_padding_twins,
)
from ka_ml.data.table import Table, is_in, show_cell
from ka_ml.errors import DataIssue

ROW_BASE_ATTR = "ka_ml_row_base"  # frame.attrs key: the row number of the first data row
# frame.attrs key: the source's own column names, before data.columns renamed them
SOURCE_COLUMNS_ATTR = "ka_ml_source_columns"

DTYPES: Mapping[Kind, Any] = {  # Any: pandas-stubs overloads astype on literals
    "id": "str",
    "date": "datetime64[us]",
    "float": "float64",
    "str": "str",
    "bool": "boolean",
}
SORT_KEYS: Mapping[str, tuple[str, ...]] = {
    "orders": ("account_id", "order_date", "order_id"),
    "accounts": ("account_id",),
    "usage": ("account_id", "date", "event_type"),
    "tickets": ("account_id", "opened_at"),
    "surveys": ("account_id", "date", "kind"),
    "contracts": ("account_id", "start_date", "end_date"),
}


# -- public API ---------------------------------------------------------------------------
def validate_tables(
    raw: Mapping[str, pd.DataFrame],
    cfg: DataConfig,
    as_of: pd.Timestamp | None,
    *,
    available: Sequence[str] | None = None,
    source: str | None = None,
) -> tuple[History, list[DataIssue]]:
    """Type every contract table, check it, drop unsafe rows; return History and issues.

    ``raw`` holds frames with canonical column names (see ``loader.read_raw_tables``).
    ``available`` names what the source contained (files or tables), quoted when the
    ``orders`` table, or a table ``data.tables`` maps, is missing (``source`` names it).
    The History is only meaningful when no issue has level ``"error"``; ``"info"`` issues
    are notes (e.g. accounts derived from orders).
    """
    cutoff = normalize_as_of(as_of)
    issues: list[DataIssue] = []
    tables: dict[str, Table] = {}
    given = {name: frame for name, frame in raw.items() if name in SCHEMA and frame is not None}
    checked = _per_table(lambda name, frame: _check_table(frame, SCHEMA[name], cfg), given)
    for name, spec in SCHEMA.items():
        if name not in checked:
            if spec.required:
                issues.append(_missing_table_issue(name, cfg, available or sorted(raw)))
            elif name in cfg.tables:  # the user said it is there: not silently without it
                issues.append(mapped_table_missing(name, cfg, available or sorted(raw), source))
            continue
        table, found = checked[name]
        issues.extend(found)
        if table is not None:
            tables[name] = table
    issues.extend(i for name, t in tables.items() if (i := zero_padding_twins(name, t)))
    future = _drop_future_rows(tables, cutoff, cfg.future_rows) if cutoff is not None else []
    orders = tables.get("orders")
    before_unknown = orders.frame["account_id"] if orders is not None else None
    # ids that match only when letter case is ignored come first: they cost real rows
    keep_case = cfg.account_id_case == "keep"
    twins = case_twin_issues(tables) if keep_case else []
    cased, unknown = drop_unknown_accounts(
        tables, case_checked=keep_case, zeros_checked=cfg.account_id_zeros == "keep"
    )
    issues[:0] = twins + cased
    issues.extend(future + unknown)
    if orders is not None and before_unknown is not None and orders.frame.empty:
        dropped = [i for i in future + cased + unknown if i.table == "orders"]
        issues.append(no_orders_left(dropped, before_unknown, tables.get("accounts")))
    history, notes = _assemble(tables)
    # the typed, unsorted tables are done with: freed (~0.5 GB at 100k accounts) before the
    # checks of the whole history, which ran at the load's peak memory
    del checked, tables, orders, before_unknown
    history, merged = _roll_up_merged(history)
    # side by side on the cores: the order-id check (hashing and sorting, mostly outside the
    # GIL) starts as soon as the quick first check is done, beside the other two
    checks: dict[str, Callable[[History], list[DataIssue]]] = {
        "renewed": renewed_while_running,
        "order ids": lambda h: order_id_issues(h.orders),
        "credits": credits_over_spend,
        "units": amount_scale,
    }
    history_issues = _per_table(lambda _, check: check(history), checks)
    said = (history_issues[name] for name in ("renewed", "credits", "units", "order ids"))
    return history, issues + notes + merged + [i for check in said for i in check]


def _roll_up_merged(history: History) -> tuple[History, list[DataIssue]]:
    """Merged accounts' rows counted as the account they went into (:mod:`ka_ml.data.merges`),
    the merged accounts' own rows gone from the accounts table."""
    mapping, issues = merge_map(None if history.accounts_derived else history.accounts)
    if not mapping or any(i.level == "error" for i in issues):
        return history, issues

    def moved(frame: pd.DataFrame | None, name: str) -> pd.DataFrame | None:
        return None if frame is None else _finish(rekey(frame, mapping), SCHEMA[name])

    accounts = history.accounts
    kept = accounts[~accounts["account_id"].astype(str).isin(mapping).to_numpy()]
    merged = replace(
        history,
        orders=_finish(rekey(history.orders, mapping), SCHEMA["orders"]),
        accounts=kept.reset_index(drop=True),
        usage=moved(history.usage, "usage"),
        tickets=moved(history.tickets, "tickets"),
        surveys=moved(history.surveys, "surveys"),
        contracts=moved(history.contracts, "contracts"),
        accounts_merged=len(mapping),
    )
    return merged, [*issues, merged_note(mapping)]


# -- per table ----------------------------------------------------------------------------
_T = TypeVar("_T")
_R = TypeVar("_R")


def _per_table(fn: Callable[[str, _T], _R], tables: Mapping[str, _T]) -> dict[str, _R]:
    """``fn(name, table)`` for each table (same keys, same order), one thread per core.

    The heavy steps (Arrow's dictionary encoding and take, NumPy's sorts, the casts) run
    without the GIL, so the two big tables (orders and usage) are checked and reordered side
    by side (`ka-ml features` at 100k accounts on two cores: 19.8 s instead of 27.0 s). Each
    call touches only its own table; results do not depend on the thread count.
    """
    names = list(tables)
    workers = min(len(names), os.cpu_count() or 1)
    if workers <= 1:
        return {name: fn(name, tables[name]) for name in names}
    with ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(lambda name: fn(name, tables[name]), names))
    return dict(zip(names, done, strict=True))


def _check_table(
    frame: pd.DataFrame, spec: TableSpec, cfg: DataConfig
) -> tuple[Table | None, list[DataIssue]]:
    read = cfg.read
    base = int(frame.attrs.get(ROW_BASE_ATTR, 1))
    raw = frame.reset_index(drop=True)
    raw.columns = [str(c) for c in raw.columns]
    skipped: list[DataIssue] = []
    empty = _empty_rows(raw)
    if empty.any():  # the row labels stay: messages still name the file's lines
        problem, remedy = EMPTY_ROWS
        skipped.append(
            Table(spec, raw, raw, base).issue(None, problem, remedy, empty, level="warning")
        )
        raw = raw[~empty.to_numpy()]
    if raw.empty:
        remedy = (
            "re-export the orders table with its rows (orders is required)."
            if spec.required
            else "re-export the table with its rows, or remove the file to run without it."
        )
        return None, [DataIssue(spec.name, None, "the table is empty (no data rows)", remedy)]

    missing = [c for c in spec.required_columns if c not in raw.columns]
    named = frame.attrs.get(SOURCE_COLUMNS_ATTR, list(raw.columns))  # as the user knows them
    issues = skipped + [missing_column_issue(spec.name, c, named, cfg) for c in missing]
    probe = Table(spec, raw, raw, base)
    typed: dict[str, pd.Series] = {}
    timed: dict[str, pd.Series] = {}  # date columns with a time of day: as given
    for col in spec.columns:
        if col.name not in raw.columns:
            continue
        coerced = coerce(raw[col.name], col.kind, read)
        typed[col.name] = coerced.values
        # before anything compares ids (repeats, twins, joins); merged_into names one too
        if col.name in ("account_id", "merged_into"):
            typed[col.name] = fold_case(coerced.values, cfg.account_id_case)
            if cfg.account_id_zeros == "strip":
                typed[col.name] = zero_core(typed[col.name])
        if coerced.bad.any():
            remedy = bad_remedy(col.kind, read)
            if col.kind == "date" and (day := _serial_day(raw[col.name][coerced.bad])):
                remedy = (
                    f"these look like spreadsheet serial day numbers ({day}): format the "
                    "column as dates (YYYY-MM-DD) in the spreadsheet before saving it; " + remedy
                )
            issues.append(probe.issue(col.name, BAD_PROBLEM[col.kind], remedy, coerced.bad))
        if col.required and coerced.blank.any():
            issues.append(_blank_issue(probe, col.name, coerced.blank))
        if coerced.ambiguous is not None and coerced.ambiguous.any():
            issues.append(_ambiguous_dates_issue(probe, col.name, coerced.ambiguous))
        if coerced.grouped is not None:
            issues.append(_grouped_numbers_issue(probe, col.name, coerced.grouped, read))
        if coerced.timed is not None:
            timed[col.name] = coerced.timed
    extras = [c for c in raw.columns if spec.kind(c) is None]
    for c in extras:
        text = to_text(raw[c])
        typed[c] = text.mask(text == "").astype("str")
    if missing:
        return None, issues

    if "severity" in typed and spec.name == "tickets":
        typed["severity"] = recode_severity(typed["severity"], cfg.severity_synonyms)
    frame = pd.DataFrame(typed, index=raw.index)
    # one key orders the rows (at the end) and finds the exact repeats (now)
    key = row_key(frame, _sort_columns(frame, spec))
    table = Table(spec, raw, frame, base, key)
    repeats = repeated(key)
    if timed and repeats.any():
        repeats = _repeated_with_times(frame, timed, _sort_columns(frame, spec), key, repeats)
    dup = pd.Series(repeats, index=frame.index)
    if dup.any():
        issues.append(
            table.issue(
                None,
                REPEATED_ROWS,
                repeated_rows_remedy(spec.name),
                dup,
                [c for c in SORT_KEYS[spec.name] if c in raw.columns],
                level="warning",
            )
        )
        table.drop(dup)
    converted, converted_issues = convert_currencies(table, cfg.currency_rates)
    issues.extend(converted_issues)
    issues.extend(_table_rules(table, converted=converted))
    return table, issues


def _serial_day(bad: pd.Series) -> str:
    """'45274 is 2023-12-14' when most unreadable dates are whole numbers of a
    spreadsheet's serial-day range (1954-2119, day 0 = 1899-12-30), else ''."""
    text = bad.astype("string").str.strip()
    serial = text.str.fullmatch(r"\d{5}(?:\.0+)?").fillna(False).astype(bool)
    if not len(text) or serial.mean() < 0.8:
        return ""
    first = text[serial].iloc[0]
    day = pd.Timestamp("1899-12-30") + pd.Timedelta(days=int(float(first)))
    return f"{first} is {day.date()}"


# (problem, remedy) of the warning about rows with every cell empty; the Spark reader's too
EMPTY_ROWS = (
    "rows with every cell empty were skipped (an export's trailing ';;;;' lines)",
    "nothing to do; remove them from the export to silence this.",
)


def _empty_rows(raw: pd.DataFrame) -> pd.Series:
    """Rows with every cell empty (missing or blank text): ';;;;' lines a spreadsheet saved
    at the end of a CSV were three errors ("rows without an account_id", "... a
    order_date", "... a amount"). Only rows without an account id are looked at whole."""
    none = pd.Series(False, index=raw.index)
    if "account_id" not in raw.columns:
        return none
    ids = raw["account_id"]
    cand = ids.isna().to_numpy(dtype=bool, copy=True)
    if not ptypes.is_numeric_dtype(ids.dtype):
        text = ids.astype("string")
        cand |= ((text == "") | text.str.isspace()).fillna(False).to_numpy(dtype=bool)
    if not cand.any():
        return none
    sub = raw[cand]
    blank = np.ones(len(sub), dtype=bool)
    for c in sub.columns:
        v = sub[c]
        blank &= (v.isna() | v.astype("string").str.strip().eq("").fillna(True)).to_numpy(bool)
    none[cand] = blank
    return none


def _repeated_with_times(
    frame: pd.DataFrame,
    timed: Mapping[str, pd.Series],
    columns: list[str],
    key: np.ndarray,
    repeats: np.ndarray,
) -> np.ndarray:
    """Of the rows that repeat an earlier row once dates are days (``repeats``), those that
    repeat it with the time of day too: two equal order lines at 09:15 and 16:40 are two
    orders that day, not one exported twice. Only the rows sharing a day key with another
    row are compared again, so the cost follows the repeats, not the table."""
    shared = pc.is_in(pa.array(key), value_set=pa.array(key[repeats]))  # a hash: not a sort
    among = np.flatnonzero(shared.to_numpy(zero_copy_only=False))
    rows = frame.iloc[among].assign(**{c: s.iloc[among] for c, s in timed.items()})
    out = np.zeros(len(key), dtype=bool)
    out[among] = repeated(row_key(rows, columns))
    return out


def _table_rules(t: Table, *, converted: bool = False) -> list[DataIssue]:
    """Checks specific to one table: unique accounts, contracts that end after they start,
    survey scores on the 0-10 scale, known ticket severities, impossible values, and (unless
    its amounts were ``converted`` by ``data.currency_rates``) amounts in several
    currencies."""
    f = t.frame
    issues: list[DataIssue] = []
    if t.name == "surveys":
        issues.extend(_survey_scale_issue(t))
    if t.name == "tickets" and "severity" in f.columns:
        issues.extend(_unknown_severity_issue(t))
    issues.extend(_impossible_values(t))
    for column in () if converted else currency_columns(t.name, f.columns):
        text = f[column].dropna().str.strip().str.upper()
        issue = currency_issue(t.name, column, text[text != ""].value_counts())
        issues.extend([issue] if issue is not None else [])
    if t.name == "accounts" and "owner" in f.columns:
        issues.extend(owner_spellings(t))
    if t.name == "accounts":
        ids = f["account_id"]
        dup = ids.duplicated(keep=False) & ids.notna()
        if dup.any():
            n_ids = ids[dup].nunique()
            differ = _differing_columns(f[dup.to_numpy()], "account_id")
            said = f"; their rows differ in {', '.join(differ)}" if differ else ""
            issues.append(
                t.issue(
                    "account_id",
                    f"account ids that appear on more than one row ({n_ids} ids{said})",
                    "keep exactly one row per account in the accounts table "
                    "(merge or remove the duplicates).",
                    dup,
                    ["name", *differ[:3]],
                )
            )
    if t.name == "contracts":
        backwards = f["end_date"] < f["start_date"]
        if backwards.any():
            issues.append(
                t.issue(
                    "end_date",
                    "contracts that end before they start",
                    "correct start_date/end_date (are the two columns swapped? check "
                    "data.columns) or remove these rows.",
                    backwards,
                    ["start_date", "end_date"],
                )
            )
    return issues


class Impossible(NamedTuple):
    """A value no export should hold: ``column`` below ``floor`` (a number, or another
    column of the row), warned about with ``problem`` and ``remedy``; the rows are dropped
    when ``drop``, else kept as given. ``shown``: the columns of the examples."""

    column: str
    floor: float | str
    problem: str
    remedy: str
    shown: tuple[str, ...]
    drop: bool = False


# The impossible values of each table; the Spark reader checks and words them the same.
# Negative usage counts are dropped (a count of events cannot be below 0; summed they
# would lower usage); the others are kept as given.
IMPOSSIBLE: dict[str, Impossible] = {
    "usage": Impossible(
        "count",
        0.0,
        "usage rows with a negative count were dropped",
        "a count of events cannot be negative: correct these rows in the export (are "
        "they corrections or differences?); nothing to do if they should be ignored.",
        ("date", "count"),
        drop=True,
    ),
    "tickets": Impossible(
        "resolved_at",
        "opened_at",
        "tickets resolved before they were opened (kept as given: they count as "
        "resolved, not open)",
        "correct opened_at/resolved_at (are the two columns swapped? check "
        "data.columns) or remove these rows.",
        ("opened_at", "resolved_at"),
    ),
    "contracts": Impossible(
        "value",
        0.0,
        "contracts with a negative value (kept as given: they lower the account's contract value)",
        "correct value (a credit belongs in orders, not contracts) or remove these rows.",
        ("start_date", "value"),
    ),
}


def _impossible_values(t: Table) -> list[DataIssue]:
    """The :data:`IMPOSSIBLE` warning of a table, with its examples (rows dropped where
    the rule says so)."""
    f = t.frame
    rule = IMPOSSIBLE.get(t.name)
    if rule is None or rule.column not in f.columns:
        return []
    floor = f[rule.floor] if isinstance(rule.floor, str) else rule.floor
    broken = f[rule.column] < floor
    if not broken.any():
        return []
    issue = t.issue(
        rule.column, rule.problem, rule.remedy, broken, list(rule.shown), level="warning"
    )
    if rule.drop:
        t.drop(broken)
    return [issue]


SURVEY_SCALE_FIX = (
    "survey scores (NPS, renewal intent) are read on a 0-10 scale: rescale them to 0-10 "
    "(e.g. divide a 0-100 score by 10), or correct or remove these rows."
)
SEVERITY_FIX = (
    "use low, medium, high or critical (any case), or map the export's words to them in the "
    "config (data.severity_synonyms, e.g. {sev-a: critical, routine: low}; it replaces the "
    "default list of urgent, blocker, P1, ...), or leave the cell empty when the severity "
    "is unknown."
)


def recode_severity(severity: pd.Series, synonyms: Mapping[str, str]) -> pd.Series:
    """Ticket severities with the export's words (``data.severity_synonyms``, any case)
    replaced by the tool's low/medium/high/critical; other values as given."""
    if not synonyms:
        return severity
    mapped = severity.str.strip().str.casefold().map(dict(synonyms))
    return mapped.where(mapped.notna(), severity).astype("str")


# A survey kind whose scores all sit at or below this, over at least this many answers,
# looks like a 1-5 (or 0-5) scale read as 0-10: every answer would be a detractor.
SMALL_SCALE_TOP, SMALL_SCALE_MIN_ANSWERS = 5.0, 20


def small_scale_issue(stats: pd.DataFrame) -> DataIssue | None:
    """The warning for survey kinds that look like a 1-5 scale. ``stats``: one row per
    kind (index: the kind, NaN/None for none), columns ``count``, ``min``, ``max`` of the
    scores (the loader and the Spark reader compute them their own way)."""
    small = stats[(stats["count"] >= SMALL_SCALE_MIN_ANSWERS) & (stats["max"] <= SMALL_SCALE_TOP)]
    if small.empty:
        return None
    examples = tuple(
        f"kind={'(none)' if _blank_kind(k) else show_cell(k)}: {int(r['count'])} answers, all between "
        f"{r['min']:g} and {r['max']:g}"
        for k, r in small.iterrows()
    )
    return DataIssue(
        "surveys",
        "score",
        "survey scores that look like a 1-5 scale (read on 0-10, every answer would count "
        "as a detractor)",
        "rescale them to 0-10 (e.g. (score - 1) * 2.5 for 1-5), or ignore this warning if "
        "these answers really are that low.",
        examples=examples,
        level="warning",
    )


def _blank_kind(kind: object) -> bool:
    return kind is None or (isinstance(kind, float) and np.isnan(kind))


def _survey_scale_issue(t: Table) -> list[DataIssue]:
    """Scores outside 0-10 (a 0-100 scale, negative values) would pass for very high or
    low intent and colour the renewal-intent scorecard: refused, not rescaled by guess.
    Scores that all sit on 0-5 for a kind are warned about (:func:`small_scale_issue`)."""
    score = t.frame["score"]
    low, high = SURVEY_SCALE
    outside = (score < low) | (score > high)  # missing scores compare False: kept as they are
    if not outside.any():
        kind = t.frame["kind"] if "kind" in t.frame else pd.Series(None, index=score.index)
        stats = score.groupby(kind.astype(object), dropna=False).agg(["count", "min", "max"])
        small = small_scale_issue(stats)
        return [small] if small is not None else []
    seen = score[outside]
    return [
        t.issue(
            "score",
            f"scores outside the 0-10 scale (found {seen.min():g} to {seen.max():g})",
            SURVEY_SCALE_FIX,
            outside,
            ["date", "score"],
        )
    ]


def _unknown_severity_issue(t: Table) -> list[DataIssue]:
    """Severities other than low/medium/high/critical (any case, blank = unknown) would
    count as not severe without a word (features.encode reads only high and critical)."""
    severity = t.frame["severity"].str.lower()  # stripped already; blanks are missing
    unknown = severity.notna() & ~is_in(severity, np.array([*SEVERITIES, *MISSING_TOKENS]))
    if not unknown.any():
        return []
    counts = t.frame["severity"][unknown].value_counts(sort=True)
    if len(counts) == 1:  # the issue counts its rows: one value needs no count of its own
        listed = f"'{show_cell(counts.index[0])}'"
    else:
        listed = ", ".join(f"'{show_cell(v)}' ({n} rows)" for v, n in counts.head(8).items())
    if len(counts) > 8:
        listed += f" and {len(counts) - 8} more"
    return [
        t.issue(
            "severity",
            f"unknown severities: {listed}",
            SEVERITY_FIX,
            unknown,
            ["opened_at", "severity"],
        )
    ]


# -- across tables ------------------------------------------------------------------------
def _differing_columns(rows: pd.DataFrame, key: str) -> list[str]:
    """The columns in which rows sharing a ``key`` disagree, in table order: a user's
    duplicate accounts were shown by their (identical) names, not by the owner they
    disagreed on."""
    out = []
    for c in rows.columns:
        if c == key:
            continue
        values = rows[c].astype("string").fillna("")
        if (values.groupby(rows[key].to_numpy()).nunique() > 1).any():
            out.append(str(c))
    return out


def _drop_future_rows(
    tables: dict[str, Table], cutoff: pd.Timestamp, policy: str
) -> list[DataIssue]:
    """Rows dated on/after the as-of are unknowable at that date: drop or refuse them.

    Accounts are never filtered (History.before keeps them too)."""
    issues = []
    level = "warning" if policy == "drop" else "error"
    for name, t in tables.items():
        if name == "accounts":
            continue
        col = EVENT_DATE[name]
        late = known_dates(name, t.frame) >= cutoff
        if not late.any():
            continue
        problem, remedy = future_rows_texts(cutoff, level)
        shown = [col]
        if name == "contracts":
            signed = SIGNED_DATE in t.frame.columns
            remedy += SIGNED_REMEDY[signed]
            shown += [SIGNED_DATE] if signed else []
        issues.append(t.issue(col, problem, remedy, late, shown, level))
        t.drop(late)
    return issues


# what the future-rows issue adds for contracts, without and with a signed_date column
SIGNED_REMEDY = {
    False: " A contract signed before the as-of that starts after it (a renewal signed "
    "ahead) is known at the as-of: give its signing date in a signed_date column (or map "
    "yours with data.columns) and it counts.",
    True: " (Contracts count from their signed_date, else their start_date.)",
}


def future_rows_texts(cutoff: pd.Timestamp, level: str) -> tuple[str, str]:
    """(problem, remedy) of the issue about rows dated on/after the as-of: dropped with a
    warning (``level="warning"``) or refused. The SQL reader, which leaves such rows in the
    database, words its warning the same way."""
    if level == "warning":
        return (
            f"rows dated on or after the as-of date {cutoff.date()} were dropped",
            "nothing to do for a backtest; to use these rows pass a later --as-of; set "
            "data.future_rows: error to refuse such rows instead.",
        )
    return (
        f"rows dated on or after the as-of date {cutoff.date()}",
        "pass a later --as-of, remove these rows, or set data.future_rows: drop "
        "to drop them with a warning.",
    )


def _assemble(tables: dict[str, Table]) -> tuple[History, list[DataIssue]]:
    """Final frames (contract columns, sorted, fresh index) and derived accounts."""
    frames = _per_table(lambda _, t: _finish(t.frame, t.spec, t.key), tables)
    orders = frames.get("orders", _empty(SCHEMA["orders"]))
    notes: list[DataIssue] = []
    accounts = frames.get("accounts")
    if accounts is None:
        accounts = derive_accounts(orders, [f for n, f in frames.items() if n != "orders"])
        notes.append(
            DataIssue(
                "accounts",
                None,
                f"no accounts table: {len(accounts)} accounts were derived from the ids in "
                "the data (created_at = first order date)",
                "add an accounts table (name, industry, region, ...) for industry and "
                "portfolio figures.",
                level="info",
            )
        )
    optional = {name: frames.get(name) for name in OPTIONAL_TABLES}
    derived = "accounts" not in frames
    history = History(orders=orders, accounts=accounts, accounts_derived=derived, **optional)  # type: ignore[arg-type]
    return history, notes


def derive_accounts(orders: pd.DataFrame, others: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One row per account id seen anywhere; created_at = its first order (NaT if none)."""
    ids = pd.concat([orders["account_id"], *(f["account_id"] for f in others)]).dropna()
    first = orders.groupby("account_id")["order_date"].min()
    frame = pd.DataFrame({"account_id": ids.drop_duplicates().astype("str")})
    created = first.reindex(pd.Index(frame["account_id"])).to_numpy()
    frame["created_at"] = pd.Series(created, index=frame.index).astype("datetime64[us]")
    return _finish(frame, SCHEMA["accounts"])


def _finish(frame: pd.DataFrame, spec: TableSpec, key: np.ndarray | None = None) -> pd.DataFrame:
    """Contract columns (typed, all-missing where absent), then extras; rows in key order.

    ``key`` is ``row_key(frame, _sort_columns(frame, spec))`` when the caller has it. The
    order equals ``sort_values(_sort_columns(...), na_position="last")``, which is stable:
    columns added here are all-missing, so they cannot reorder anything.
    """
    contract = [c.name for c in spec.columns]
    out = frame.copy(deep=False)  # copy-on-write: the casts below replace columns
    for col in spec.columns:
        if col.name not in out.columns:
            out[col.name] = pd.Series(pd.NA if col.kind == "bool" else None, index=out.index)
        out[col.name] = out[col.name].astype(DTYPES[col.kind])
    extras = [c for c in out.columns if c not in contract]
    out = out[contract + extras]
    if key is None:
        key = row_key(out, _sort_columns(out, spec))
    return out.take(sort_order(key)).reset_index(drop=True)


def _sort_columns(frame: pd.DataFrame, spec: TableSpec) -> list[str]:
    """The table's sort keys, then every other column in the frame's order."""
    keys = [c for c in SORT_KEYS[spec.name] if c in frame.columns]
    return keys + [c for c in frame.columns if c not in keys]


def _empty(spec: TableSpec) -> pd.DataFrame:
    return pd.DataFrame({c.name: pd.Series(dtype=DTYPES[c.kind]) for c in spec.columns})


# -- messages -----------------------------------------------------------------------------
REPEATED_ROWS = "rows that exactly repeat an earlier row were dropped"


def repeated_rows_remedy(table: str) -> str:
    """The fix of :data:`REPEATED_ROWS` for ``table`` (both engines say the same)."""
    return _DUPLICATE_REMEDY.get(table, _DUPLICATE_REMEDY[""])


_DUPLICATE_REMEDY = {
    "orders": "nothing to do if the export repeated rows; if these are genuine repeat "
    "orders, give every order its own order_id so they are kept.",
    "": "nothing to do if the export repeated rows; otherwise add a column that tells "
    "the rows apart.",
}


# what to do about a blank required value, where there is more to say than "fill it in"
BLANK_REMEDY: dict[tuple[str, str], str] = {
    ("contracts", "end_date"): (
        "fill in end_date or remove these rows. A contract without a fixed end (month-to-"
        "month, evergreen, auto-renewing) is exported with the end of its current term: the "
        "date it renews or can next be cancelled, updated as each term rolls on."
    ),
}


def blank_remedy(table: str, column: str) -> str:
    """The fix for rows without a value in a required ``column`` (both engines)."""
    return BLANK_REMEDY.get((table, column), f"fill in {column} or remove these rows.")


def _blank_issue(t: Table, column: str, blank: pd.Series) -> DataIssue:
    if column == "account_id":
        return t.issue(
            column,
            "rows without an account_id",
            "every row must name its account: fill in account_id or remove these rows "
            "(if the id is in another column, map it with data.columns).",
            blank,
            [c for c in SORT_KEYS[t.name] if c != "account_id"],
        )
    return t.issue(
        column,
        f"rows without a value in {column}",
        blank_remedy(t.name, column),
        blank,
    )


def _ambiguous_dates_issue(t: Table, column: str, ambiguous: pd.Series) -> DataIssue:
    return t.issue(
        column,
        "dates that read differently day-first and month-first were read month-first "
        "(data.read.dayfirst is false and nothing in the data says otherwise)",
        "set data.read.date_format (e.g. '%d.%m.%Y') or data.read.dayfirst: true if the "
        "day comes first; nothing to do if month-first is right.",
        ambiguous,
        level="warning",
    )


def _grouped_numbers_issue(
    t: Table, column: str, grouped: pd.Series, read: ReadOptions
) -> DataIssue:
    problem, remedy = grouped_numbers_texts(read)
    return t.issue(column, problem, remedy, grouped)


def _missing_table_issue(name: str, cfg: DataConfig, available: Sequence[str]) -> DataIssue:
    src = cfg.tables.get(name, name)
    found = ", ".join(f"'{a}'" for a in available[:20]) or "nothing"
    if len(available) > 20:
        found += f" and {len(available) - 20} more"
    return DataIssue(
        name,
        None,
        f"the required table is missing: expected a file {src}.csv, {src}.csv.gz or "
        f"{src}.parquet (or a database table '{src}'); found {found}",
        f"add the {name} table, or if it has another name map it in the config, "
        f"e.g. data.tables: {{{name}: sales}} to read sales.csv.",
    )


def mapped_table_missing(
    name: str, cfg: DataConfig, available: Sequence[str], source: str | None
) -> DataIssue:
    """The error for a table ``data.tables`` maps that the source does not hold: the user
    said it is there, so running without it (and its features) would be a silent loss."""
    src = cfg.tables[name]
    found = ", ".join(f"'{a}'" for a in available[:20]) or "nothing"
    if len(available) > 20:
        found += f" and {len(available) - 20} more"
    where = f" '{source}'" if source else ""
    stems = {a: re.sub(r"(\.[A-Za-z0-9]+)+$", "", a) for a in available}
    near = [a for a, stem in stems.items() if src.casefold() in stem.casefold()]
    near += [a for a in available if a not in near and close_matches(src, [stems[a]])]
    hint = (
        f"if it is '{near[0]}', set data.tables: {{{name}: {stems[near[0]]}}}; "
        if near
        else f"set data.tables.{name} to the name of the {name} file (without extension); "
    )
    return DataIssue(
        name,
        None,
        f"data.tables maps {name} to '{src}', but the source{where} has no file {src}.csv, "
        f"{src}.csv.gz or {src}.parquet (nor a database table '{src}'); found {found}",
        hint + f"or remove {name} from data.tables to run without that table.",
    )


def missing_column_issue(
    table: str, column: str, found_columns: Iterable[object], cfg: DataConfig
) -> DataIssue:
    """A required column the source lacks, naming the columns it has as the source names
    them (``found_columns``), the remap, and the column it probably means."""
    names = [str(c) for c in found_columns]
    found = ", ".join(f"'{c}'" for c in names) or "none"
    mapped = cfg.columns.get(table, {}).get(column)
    near = close_matches(mapped or column, names)
    if mapped:
        return DataIssue(
            table,
            column,
            f"the required column is missing: data.columns.{table}.{column} points to "
            f"'{mapped}', which is not among the columns found: {found}",
            remap_fix(table, column, near) + ".",
        )
    guess = near[0] if near else "<source column name>"
    return DataIssue(
        table,
        column,
        f"the required column is missing; columns found: {found}",
        (f"did you mean '{near[0]}'? " if near else "")
        + f"rename the source column to '{column}', or map it in the config: "
        f"data.columns: {{{table}: {{{column}: {guess}}}}}.",
    )


def remap_fix(table: str, column: str, near: list[str]) -> str:
    """The fix for a ``data.columns`` remap naming no source column: the close one found
    (``near``, from :func:`close_matches`), else the exact name to set."""
    if near:
        return f"did you mean '{near[0]}'? Set data.columns.{table}.{column}: {near[0]}"
    return f"set data.columns.{table}.{column} to the exact name of the source column"
