"""Reading a data source (folder of files, DuckDB, SQLite, a SQL database) into the contract's tables.

This is the only module that touches input files. It reads each contract table as raw
as possible (delimited text as strings, so ids like ``00017`` keep their zeros), applies
the ``data.tables`` and ``data.columns`` remaps so every frame carries canonical column
names, and leaves typing and checking to :mod:`ka_ml.data.validate`. Every problem found
while reading becomes a :class:`DataIssue`, collected rather than raised one at a time.

Sources accepted:
- a folder: files directly inside whose stem names a table (``orders.csv``,
  ``orders.csv.gz``, ``orders.parquet``, ``.tsv``/``.txt``), or a subfolder so named that
  holds the table's Parquet part files, Hive-style partition folders included
  (``orders/year=2024/month=1/part-0.parquet``: a lake's layout, read as the Spark engine
  reads it); other subfolders (like the demo's ``_truth/``) and other files are never read;
- a DuckDB file (``.duckdb``/``.ddb`` or ``duckdb:///path``), read through DuckDB;
- a SQLite file (``.sqlite``/``.sqlite3``/``.db`` or ``sqlite:///path``), read through the
  standard library's ``sqlite3`` (no DuckDB extension download needed offline);
- a database server by its SQLAlchemy URL (``postgresql+psycopg://user@host:5432/db``,
  any dialect SQLAlchemy has a driver for), password from the environment, tables in
  ``data.schema``: read by :mod:`ka_ml.data.sql` in chunks, only the contract's columns,
  and with ``data.future_rows: drop`` only the rows before the as-of (the rest counted).
Files are recognised by their magic bytes first, their extension second.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import logging
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from sqlalchemy.engine import URL

from ka_ml.config import (
    PARQUET_SUFFIXES,
    TEXT_SUFFIXES,
    DataConfig,
    ReadOptions,
    close_matches,
)
from ka_ml.data import sql
from ka_ml.data.coerce import normalize_as_of
from ka_ml.data.currency import currency_columns, is_conversion
from ka_ml.data.history import History
from ka_ml.data.schema import EVENT_DATE, SCHEMA, SIGNED_DATE
from ka_ml.data.validate import (
    ROW_BASE_ATTR,
    SOURCE_COLUMNS_ATTR,
    future_rows_texts,
    missing_column_issue,
    remap_fix,
    validate_tables,
)
from ka_ml.errors import DataIssue, DataValidationError, KaMlError

log = logging.getLogger("ka_ml.data")

SourceKind = Literal["folder", "duckdb", "sqlite", "sql"]

DUCKDB_SUFFIXES = (".duckdb", ".ddb")
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
DELIMITERS = (",", ";", "\t", "|")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URI = re.compile(r"^(?P<scheme>duckdb|sqlite)(?:\+\w+)?:///(?P<path>.*)$", re.IGNORECASE)
_SQLITE_MAGIC = b"SQLite format 3\x00"
_DUCKDB_MAGIC = b"DUCK"  # at byte offset 8 of a DuckDB file
DELIMITER_NAMES = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


@dataclass(frozen=True)
class RawRead:
    """What reading a source produced: raw frames, read problems and what was there."""

    frames: dict[str, pd.DataFrame]
    issues: list[DataIssue] = field(default_factory=list)
    available: list[str] = field(default_factory=list)
    kind: SourceKind = "folder"


def in_source_names(issue: DataIssue, cfg: DataConfig) -> DataIssue:
    """``issue`` with the source's own table and column names where the config maps them
    (``data.tables``, ``data.columns``): a user looks for 'customer_no' in 'order_lines',
    not for the contract's orders.account_id."""
    table = cfg.tables.get(issue.table)
    column = cfg.columns.get(issue.table, {}).get(issue.column or "")
    said = f"{issue.problem} {issue.remedy}"
    table = None if table is None or f"'{table}'" in said else table  # said once is enough
    column = None if column is None or f"'{column}'" in said else column
    if table is None and column is None:
        return issue
    return replace(issue, source_table=table, source_column=column)


# -- public API ---------------------------------------------------------------------------
def load_history(source: str | Path, cfg: DataConfig, as_of: pd.Timestamp | None = None) -> History:
    """Read, type and check a data source; the one entry point the rest of ka_ml uses.

    Raises :class:`DataValidationError` with every error found (read and validation) so a
    user fixes their export in one round. Warnings (rows dropped safely) are logged on the
    ``ka_ml.data`` logger and kept, rendered, in ``History.warnings`` for the run record.
    """
    return history_from_read(read_source(source, cfg, as_of=as_of), source, cfg, as_of)


def history_from_read(
    read: RawRead, source: str | Path, cfg: DataConfig, as_of: pd.Timestamp | None = None
) -> History:
    """:func:`load_history`'s typing and checks of what a reader read (this module's, or the
    Spark engine's raw tables collected here: ``train --engine spark`` on a source only
    Spark reads)."""
    history, found = validate_tables(
        read.frames, cfg, as_of, available=read.available, source=source_name(source)
    )
    # A table that could not be read is reported once, by the reader (its root cause).
    unreadable = {i.table for i in read.issues if i.level == "error"}
    issues = read.issues + [i for i in found if i.table not in unreadable]
    issues = [in_source_names(i, cfg) for i in issues]
    errors = [i for i in issues if i.level == "error"]
    if errors:
        raise DataValidationError(errors)
    for issue in issues:
        log.log(logging.WARNING if issue.level == "warning" else logging.INFO, issue.render())
    warnings = tuple(i.render() for i in issues if i.level == "warning")
    conversions = tuple(i.render() for i in issues if is_conversion(i))
    return replace(history, source=source_name(source), warnings=warnings, conversions=conversions)


def source_name(source: str | Path) -> str:
    """The source as recorded and shown: a database URL without any password."""
    url = sql.sql_url(source)
    return str(source) if url is None else sql.safe_url(url)


def read_raw_tables(source: str | Path, cfg: DataConfig) -> dict[str, pd.DataFrame]:
    """Raw frames by canonical table name, canonical column names applied, values untyped.

    Raises :class:`DataValidationError` when a table cannot be read at all (encoding,
    malformed file, two files for one table); missing tables are simply absent.
    """
    read = read_source(source, cfg)
    errors = [i for i in read.issues if i.level == "error"]
    if errors:
        raise DataValidationError(errors)
    return read.frames


def read_source(
    source: str | Path, cfg: DataConfig, *, as_of: pd.Timestamp | None = None
) -> RawRead:
    """Read every contract table present in ``source``; problems come back as issues.

    ``as_of`` only matters for a database server: with ``data.future_rows: drop`` the rows
    dated on/after it stay in the database (counted for the warning), see :func:`_read_sql`.
    """
    url = sql.sql_url(source)
    if url is not None:
        return _read_sql(url, cfg, as_of)
    kind, path = resolve_source(source)
    if kind == "folder":
        return _read_folder(path, cfg)
    too_big = _size_issue(path, "orders", cfg.max_file_mb)
    if too_big is not None:
        return RawRead({}, [too_big], [path.name], kind)
    return _read_database(kind, path, cfg)


def _size_issue(
    path: Path, table: str, limit_mb: float | None, parts: list[Path] | None = None
) -> DataIssue | None:
    """A file (or a table folder's ``parts`` together) above ``data.max_file_mb`` is refused
    before any byte is read.

    Tables are read whole into memory (delimited text as strings: several times the file
    size), so a multi-GB export would exhaust the machine minutes in; refusing up front
    with the size and the setting is the predictable behaviour.
    """
    size = sum(p.stat().st_size for p in (parts or [path]))
    if limit_mb is None or size <= limit_mb * 2**20:
        return None
    return DataIssue(
        table,
        None,
        f"'{path.name}' is {size / 2**20:,.2f} MB, above the limit data.max_file_mb = "
        f"{limit_mb:,g} MB (tables are read whole into memory)",
        "export a shorter period or only the key accounts, or raise data.max_file_mb if this "
        "machine has about 5x the file size in free memory (null = no limit).",
    )


def resolve_source(source: str | Path) -> tuple[SourceKind, Path]:
    """Classify a source as folder, DuckDB or SQLite file (URIs, magic bytes, extension)."""
    text = str(source).strip()
    match = _URI.match(text)
    if match:
        path = Path(match["path"]).expanduser()
        if not path.exists() and Path("/" + match["path"]).exists():
            path = Path("/" + match["path"])  # "sqlite:///tmp/x.db" meant /tmp/x.db
        if not path.exists():
            raise KaMlError(
                f"Database file '{path}' named by '{text}' does not exist.",
                "check the path (sqlite:///relative.db, sqlite:////absolute/path.db).",
            )
        return ("duckdb" if match["scheme"].lower() == "duckdb" else "sqlite"), path
    if "://" in text:
        raise KaMlError(
            f"Data source '{text.split('://', 1)[0]}://...' uses an unsupported URI scheme.",
            "pass a folder of CSV/Parquet files, a DuckDB or SQLite file, a duckdb:///path "
            "or sqlite:///path URI, or a database URL SQLAlchemy knows, e.g. "
            "postgresql+psycopg://user@host:5432/db.",
        )
    path = Path(text).expanduser()
    if not path.exists():
        raise KaMlError(
            f"Data source '{path}' does not exist.",
            "pass an existing folder of tables (orders.csv, ...) or a DuckDB/SQLite file "
            "with --data (or data.source in the config).",
        )
    if path.is_dir():
        return "folder", path
    kind = _database_kind(path)
    if kind is None and path.name.lower().endswith(EXCEL_SUFFIXES):
        raise KaMlError(
            f"Data source '{path}' is an Excel file: Excel files are not read.",
            "save each table as CSV (UTF-8) or Parquet into one folder (orders.csv, "
            "accounts.csv, ...) and pass that folder.",
        )
    if kind is None:
        raise KaMlError(
            f"Data source '{path}' is a file but not a DuckDB or SQLite database.",
            "pass the folder that holds the table files (the file stem names the table, "
            "e.g. data/orders.csv), or a .duckdb/.sqlite file.",
        )
    return kind, path


# -- folders ------------------------------------------------------------------------------
def split_table_file(name: str) -> tuple[str, Literal["text", "parquet"]] | None:
    """``orders.csv.gz`` -> ("orders", "text"); None for files that hold no table."""
    lower = name.lower()
    for suffix in TEXT_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], "text"
    for suffix in PARQUET_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], "parquet"
    return None


def foreign_table(name: str, wanted: Mapping[str, str]) -> str | None:
    """The table a file in a format not read names (``customers.xlsx`` -> accounts when
    data.tables maps accounts to customers), else None."""
    if "." not in name.strip("."):
        return None
    for stem in (name.split(".", 1)[0], name.rsplit(".", 1)[0]):
        table = wanted.get(stem.strip().casefold())
        if table is not None:
            return table
    return None


def foreign_file_issues(
    foreign: Mapping[str, list[str]], read: Iterable[str], cfg: DataConfig
) -> list[DataIssue]:
    """Files named like a table in a format not read (Excel, JSON, ...): an error when
    such a file is the only candidate for orders or a table data.tables maps (the user
    means it), a warning otherwise (the table is read without it, or from the other file)."""
    issues = []
    for table, names in sorted(foreign.items()):
        alone = table not in set(read)
        error = alone and (SCHEMA[table].required or table in cfg.tables)
        excel = any(n.lower().endswith(EXCEL_SUFFIXES) for n in names)
        kind = "Excel files are not read" if excel else "files of this format are not read"
        listed = " and ".join(f"'{n}'" for n in names)
        stem = cfg.tables.get(table, table)
        save = (
            f"save it as CSV (UTF-8) or Parquet under the same name ({stem}.csv or {stem}.parquet)"
        )
        if error:
            problem, remedy = (
                f"{listed}: {kind}, only CSV/TSV/TXT (optionally .gz) and Parquet",
                save + ".",
            )
        elif alone:
            problem = f"{listed} was not read ({kind}): the data are used without the {table} table"
            remedy = save + " to use it; remove it to silence this warning."
        else:
            problem = (
                f"{listed} was not read ({kind}); the {table} table was read from the other file"
            )
            remedy = (
                "nothing to do if that is the right file; otherwise remove it and " + save + "."
            )
        issues.append(
            DataIssue(table, None, problem, remedy, level="error" if error else "warning")
        )
    return issues


def ambiguous_table(table: str, names: list[str]) -> DataIssue:
    """The issue for a folder where several files (or entries) hold one table."""
    return DataIssue(
        table,
        None,
        f"{len(names)} files hold this table: " + " and ".join(f"'{n}'" for n in names),
        "keep one of them (remove or rename the others) so it is clear which to read.",
    )


FolderFormat = Literal["text", "parquet", "parquet_folder"]


def _hidden(name: str) -> bool:
    """Entries a lake's writers keep beside the data (``_SUCCESS``, ``_delta_log``,
    ``.crc`` files): never a table's rows."""
    return name.startswith((".", "_"))


def _table_folder(path: Path) -> tuple[list[Path], str]:
    """A subfolder named like a table: its Parquet part files (Hive-style ``key=value``
    folders included), read as one table, or none and why (a Delta table, CSV part files,
    nothing readable)."""
    if (path / "_delta_log").is_dir():
        return [], "it is a Delta table, which only the Spark engine reads"
    if parts := _parquet_parts(path):
        return parts, ""
    if any(
        split_table_file(p.name) for p in path.rglob("*") if p.is_file() and not _hidden(p.name)
    ):
        return [], "it holds CSV/text part files; a table folder is read when it holds Parquet"
    return [], "it holds no Parquet file"


def _parquet_parts(path: Path) -> list[Path]:
    """A table folder's Parquet part files, in path order (hidden entries left out)."""
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.name.lower().endswith(PARQUET_SUFFIXES)
        and not any(_hidden(part) for part in p.relative_to(path).parts)
    )


def _type_words(t: pa.DataType) -> str:
    """An Arrow type as a user reads it: 'text (large_string)', 'number (double)'."""
    kinds = (
        (pa.types.is_string, "text"),
        (pa.types.is_large_string, "text"),
        (pa.types.is_floating, "number"),
        (pa.types.is_integer, "whole number"),
        (pa.types.is_timestamp, "date and time"),
        (pa.types.is_date, "date"),
        (pa.types.is_boolean, "true/false"),
    )
    word = next((w for test, w in kinds if test(t)), "")
    return f"{word} ({t})" if word else str(t)


def _read_parquet_folder(
    path: Path, parts: list[Path], table: str, cfg: DataConfig
) -> tuple[pd.DataFrame | None, DataIssue | None]:
    """A table folder's Parquet part files (``parts``) as one table, as Spark reads it: the columns of
    every part, Hive-style partition folders as columns (``year=2024`` -> ``year``). Parts
    that disagree on a column's type are an error naming the column, the types and a part
    file of each (the parts would be read as one type or the other depending on the reader);
    parts without a column the others have are named (an error for a required column: "rows
    without a value in amount (14,768 rows)" had not said they were one month's file)."""
    try:
        schemas = [(p, pq.read_schema(p)) for p in parts]
    except (pa.ArrowException, OSError) as e:
        return None, DataIssue(
            table,
            None,
            f"the folder '{path.name}' holds a Parquet part that is not readable: {e}",
            "re-export the table, or remove the broken part file.",
        )
    seen: dict[str, tuple[pa.DataType, Path]] = {}
    for part, schema in schemas:
        for f in schema:
            if (
                f.name in seen
                and not seen[f.name][0].equals(f.type)
                and not pa.types.is_null(f.type)
            ):
                first_type, first_part = seen[f.name]
                if pa.types.is_null(first_type):
                    seen[f.name] = (f.type, part)
                    continue
                return None, DataIssue(
                    table,
                    f.name,
                    f"the part files of the folder '{path.name}' disagree on this column's "
                    f"type: {_type_words(first_type)} in '{first_part.relative_to(path)}', "
                    f"{_type_words(f.type)} in '{part.relative_to(path)}'",
                    "write every part of the table with the same column types (re-export the "
                    "odd part, or cast the column in the export).",
                )
            seen.setdefault(f.name, (f.type, part))
    lacking = _parts_lacking(path, table, cfg, schemas)
    if lacking is not None and lacking.level == "error":
        return None, lacking

    def read() -> pa.Table:
        unified = pa.unify_schemas([s for _, s in schemas], promote_options="permissive")
        files = [str(p) for p in parts]
        hive = {"format": "parquet", "partitioning": "hive", "partition_base_dir": str(path)}
        keys = [f for f in pads.dataset(files, **hive).schema if f.name not in unified.names]
        return pads.dataset(
            files, schema=pa.unify_schemas([unified, pa.schema(keys)]), **hive
        ).to_table()

    frame, issue = _arrow_frame(
        read,
        table,
        f"the Parquet parts of the folder '{path.name}' cannot be read as one table",
        "re-export the table with the same columns and types in every part.",
    )
    return frame, issue or lacking


def _parts_lacking(
    path: Path, table: str, cfg: DataConfig, schemas: list[tuple[Path, pa.Schema]]
) -> DataIssue | None:
    """The first column some parts of a table folder lack and others have, with the parts:
    an error when the contract requires it, else a warning (read as missing there)."""
    names = list(dict.fromkeys(f.name for _, schema in schemas for f in schema))
    canonical, _ = column_targets(names, table, cfg)
    required = set(SCHEMA[table].required_columns)
    for name, canon in zip(names, canonical, strict=True):
        parts = [p for p, schema in schemas if name not in schema.names]
        if not parts:
            continue
        error = canon in required
        shown = ", ".join(f"'{p.relative_to(path)}'" for p in parts[:3])
        return DataIssue(
            table,
            name,
            f"{len(parts)} of the {len(schemas)} part files of the folder '{path.name}' "
            f"{'has' if len(parts) == 1 else 'have'} no column '{name}' "
            f"({shown}{', ...' if len(parts) > 3 else ''})"
            + ("" if error else ": their rows are read without it"),
            "re-export those parts with the column"
            + ("." if error else ", or nothing to do if the column was added later."),
            level="error" if error else "warning",
        )
    return None


def _read_folder(folder: Path, cfg: DataConfig) -> RawRead:
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    files = [p for p in entries if p.is_file()]
    wanted = {cfg.tables.get(t, t).casefold(): t for t in SCHEMA}
    by_table: dict[str, list[tuple[Path, FolderFormat]]] = {}
    foreign: dict[str, list[str]] = {}  # tables' files in a format not read (.xlsx, .json)
    unread: list[DataIssue] = []  # a table's folder that cannot be read here
    folder_parts: dict[Path, list[Path]] = {}  # a table folder's Parquet parts, listed once
    for path in (p for p in entries if p.is_dir() and not _hidden(p.name)):
        split = split_table_file(path.name)  # Spark writes folders named orders.parquet/
        table = wanted.get((split[0] if split else path.name).strip().casefold())
        if table is None:
            continue
        parts, why = _table_folder(path)
        if parts:
            folder_parts[path] = parts
            by_table.setdefault(table, []).append((path, "parquet_folder"))
            continue
        unread.append(
            DataIssue(
                table,
                None,
                f"the folder '{path.name}' is not read: {why}",
                f"run with --engine spark, which reads it, or export the table as one file "
                f"({cfg.tables.get(table, table)}.parquet or .csv) or as Parquet part files in "
                "that folder.",
                level="error" if SCHEMA[table].required or table in cfg.tables else "warning",
            )
        )
    for path in files:
        split = split_table_file(path.name)
        if split is None:
            table = foreign_table(path.name, wanted)
            if table is not None:
                foreign.setdefault(table, []).append(path.name)
            continue
        table = wanted.get(split[0].strip().casefold())
        if table is not None:
            by_table.setdefault(table, []).append((path, split[1]))

    frames: dict[str, pd.DataFrame] = {}
    issues = foreign_file_issues(foreign, by_table, cfg)
    issues += [i for i in unread if i.table not in by_table]
    for table, found in sorted(by_table.items()):
        if len(found) > 1:
            issues.append(ambiguous_table(table, [p.name for p, _ in found]))
            continue
        path, fmt = found[0]
        too_big = _size_issue(path, table, cfg.max_file_mb, folder_parts.get(path))
        if too_big is not None:
            issues.append(too_big)
            continue
        if fmt == "text":
            frame, issue = _read_delimited(path, table, cfg.read)
        elif fmt == "parquet_folder":
            frame, issue = _read_parquet_folder(path, folder_parts[path], table, cfg)
        else:
            frame, issue = _read_parquet(path, table)
        if issue is not None:
            issues.append(issue)
        if frame is not None:
            frame, col_issues = canonical_columns(frame, table, cfg)
            issues.extend(col_issues)
            frames[table] = frame
    names = [p.name for p in entries if p.is_file() or not _hidden(p.name)]
    return RawRead(frames, issues, names, "folder")


def _read_delimited(
    path: Path, table: str, read: ReadOptions
) -> tuple[pd.DataFrame | None, DataIssue | None]:
    """Read a delimited file as strings (no value is interpreted here)."""
    try:
        encoding = codecs.lookup(read.encoding).name
    except LookupError:
        return None, DataIssue(
            table,
            None,
            f"data.read.encoding '{read.encoding}' is not a known text encoding",
            "set data.read.encoding to a valid name such as utf-8, latin-1 or cp1252.",
        )
    if encoding == "utf-8":
        encoding = "utf-8-sig"  # strips a byte-order mark; identical for plain UTF-8
    delimiter = DELIMITER_NAMES.get((read.delimiter or "").lower(), read.delimiter)
    try:
        header = _header_line(path, encoding)
        sep = delimiter or sniff_delimiter(header)
        wrong = wrong_delimiter_issue(
            table, path.name, _header_fields(header, sep), sep, configured=bool(delimiter)
        )
        if wrong is not None:  # before the file is parsed: its rows would not parse either
            return None, wrong
        frame = pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding=encoding,
            compression="infer",
        )
    except UnicodeDecodeError as e:
        return None, DataIssue(
            table,
            None,
            f"'{path.name}' is not valid {read.encoding} text ({e.reason} at byte {e.start})",
            "set data.read.encoding in the config to the file's encoding, "
            "e.g. data.read.encoding: latin-1 (or cp1252 for Windows exports).",
        )
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame()
    except pd.errors.ParserError as e:
        return None, DataIssue(
            table,
            None,
            f"'{path.name}' is not a well-formed delimited file: {str(e).strip()}",
            "check the delimiter (set data.read.delimiter, e.g. ';') and that quoted "
            "fields are closed; re-export the file if it was cut off.",
        )
    except (OSError, EOFError) as e:
        return None, DataIssue(
            table,
            None,
            f"'{path.name}' cannot be read: {e}",
            "re-export the file (a .gz file must be a complete gzip archive).",
        )
    frame.columns = _clean_names(frame.columns)
    frame.attrs[ROW_BASE_ATTR] = 2  # row numbers in messages are file lines (header = 1)
    return frame, None


def _header_line(path: Path, encoding: str) -> str:
    """The file's first line (its header), without the line break."""
    if path.name.lower().endswith(".gz"):
        with gzip.open(path, "rt", encoding=encoding, newline="") as gz:
            return gz.readline().rstrip("\r\n")
    with path.open(encoding=encoding, newline="") as f:
        return f.readline().rstrip("\r\n")


def sniff_delimiter(header: str) -> str:
    """The candidate delimiter occurring most often in the header line (',' on a tie)."""
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _header_fields(header: str, sep: str) -> list[str]:
    """The header's names as ``sep`` splits them (quotes honoured); a delimiter of more
    than one character (a pattern pandas reads) is not checked: [] then."""
    if len(sep) != 1:
        return []
    return _clean_names(next(csv.reader([header], delimiter=sep), []))


# a delimiter in a sentence, and as data.read.delimiter takes it in YAML
DELIMITER_WORDS = {",": "','", ";": "';'", "|": "'|'", "\t": "tab"}
DELIMITER_YAML = {",": "','", ";": "';'", "|": "'|'", "\t": '"\\t"'}


def wrong_delimiter_issue(
    table: str, file: str, columns: Sequence[str], sep: str, *, configured: bool
) -> DataIssue | None:
    """The error for a delimited file whose header was read as one column (``columns``, as
    ``sep`` split it) holding names joined by another common delimiter (:data:`DELIMITERS`):
    the file is ';'-separated and ``data.read.delimiter`` says ',' (``configured``; else the
    delimiter was sniffed). A German wholesaler's export read with ``delimiter: ","`` got 15
    errors, one per mapped column ("'Name' is not among the columns found:
    'Kundennummer;Name;Branche;...'"), none naming the delimiter. None when the header has
    several columns, or its one name holds no other delimiter (a table of one column)."""
    if len(columns) != 1:
        return None
    header = columns[0]
    names = {
        d: sum(1 for part in header.split(d) if part.strip(' "')) for d in DELIMITERS if d != sep
    }
    best = max(names, key=lambda d: names[d])  # ties: the order of DELIMITERS
    if names[best] < 2:
        return None
    shown = header.replace("\t", "\\t")
    shown = shown if len(shown) <= 100 else shown[:99] + "…"
    used = DELIMITER_WORDS.get(sep, repr(sep))
    read_as = f"data.read.delimiter {used}" if configured else f"the detected delimiter {used}"
    word = DELIMITER_WORDS[best]
    return DataIssue(
        table,
        None,
        f"under {read_as} the header of '{file}' is one column, '{shown}', which holds "
        f"{names[best]} names joined by {word}: the file looks {word}-separated",
        f"set data.read.delimiter: {DELIMITER_YAML[best]}"
        + (" (or leave it out / null to let it be detected)." if configured else "."),
    )


def _read_parquet(path: Path, table: str) -> tuple[pd.DataFrame | None, DataIssue | None]:
    return _arrow_frame(
        lambda: pq.read_table(path),
        table,
        f"'{path.name}' is not a readable Parquet file",
        "re-export the file as Parquet, or export it as CSV instead.",
    )


def _arrow_frame(
    read: Callable[[], pa.Table], table: str, problem: str, remedy: str
) -> tuple[pd.DataFrame | None, DataIssue | None]:
    """``read()``'s Arrow table as the loader's frame, or the issue ``problem: why``."""
    try:
        arrow = read()
    except (pa.ArrowException, OSError) as e:
        return None, DataIssue(table, None, f"{problem}: {e}", remedy)
    frame = arrow_to_frame(arrow)
    frame.attrs[ROW_BASE_ATTR] = 1
    return frame, None


def arrow_to_frame(arrow: pa.Table) -> pd.DataFrame:
    """Arrow -> pandas keeping integers and booleans exact (nullable, no float detour)."""

    def mapper(t: pa.DataType) -> object:
        if pa.types.is_integer(t):
            return pd.Int64Dtype()
        if pa.types.is_boolean(t):
            return pd.BooleanDtype()
        return None

    frame = arrow.to_pandas(types_mapper=mapper, date_as_object=False)
    if not isinstance(frame.index, pd.RangeIndex):
        # A frame saved with an index: a named index is data, an unnamed one is not.
        frame = frame.reset_index(drop=all(n is None for n in frame.index.names))
    frame = frame.reset_index(drop=True)
    frame.columns = _clean_names(frame.columns)
    return frame


# -- databases ----------------------------------------------------------------------------
def _database_kind(path: Path) -> SourceKind | None:
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if head.startswith(_SQLITE_MAGIC):
        return "sqlite"
    if head[8:12] == _DUCKDB_MAGIC:
        return "duckdb"
    lower = path.name.lower()
    if lower.endswith(DUCKDB_SUFFIXES):
        return "duckdb"
    if lower.endswith(SQLITE_SUFFIXES):
        return "sqlite"
    return None


def quote_identifier(name: str) -> str:
    """SQL-quote a table name (double quotes, embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def _table_names(cfg: DataConfig) -> tuple[dict[str, str], list[DataIssue]]:
    """(canonical table -> its plain name in the database, issues for names that are not
    plain identifiers): a name from the config reaches no SQL before this check."""
    issues: list[DataIssue] = []
    wanted: dict[str, str] = {}
    for table in SCHEMA:
        name = cfg.tables.get(table, table)
        if IDENTIFIER.match(name):
            wanted[table] = name
        else:
            issues.append(
                DataIssue(
                    table,
                    None,
                    f"data.tables.{table} = '{name}' is not a plain table name",
                    "use a name of letters, digits and underscores that starts with a letter "
                    "or underscore (create a view with such a name if needed).",
                )
            )
    return wanted, issues


def present_tables(wanted: dict[str, str], available: Iterable[str]) -> list[tuple[str, str]]:
    """(contract table, its name in the database) for each wanted table the database has,
    names matched case-insensitively (absent ones are reported by validation)."""
    lookup = {n.casefold(): n for n in available}
    return [(t, lookup[n.casefold()]) for t, n in wanted.items() if n.casefold() in lookup]


def _read_database(kind: SourceKind, path: Path, cfg: DataConfig) -> RawRead:
    wanted, issues = _table_names(cfg)
    reader = _DuckDbReader(path) if kind == "duckdb" else _SqliteReader(path)
    frames: dict[str, pd.DataFrame] = {}
    with reader:
        available = reader.tables()
        for table, actual in present_tables(wanted, available):
            frame = reader.read(actual)
            frame.columns = _clean_names(frame.columns)
            frame.attrs[ROW_BASE_ATTR] = 1
            frame, col_issues = canonical_columns(frame, table, cfg)
            issues.extend(col_issues)
            frames[table] = frame
    return RawRead(frames, issues, sorted(available), kind)


def _read_sql(url: URL, cfg: DataConfig, as_of: pd.Timestamp | None) -> RawRead:
    """The contract's tables from a database server (see :mod:`ka_ml.data.sql`).

    Per table: the columns the database reports are named as in a file (``data.columns``
    remap, then case-insensitive contract names), and only those that become contract
    columns (and a currency column of orders or contracts) are selected; a table lacking a
    required column is reported with every column it has and not read. With an as-of and
    ``data.future_rows: drop``, a table whose event date
    (:data:`~ka_ml.data.schema.EVENT_DATE`) is a DATE/TIMESTAMP column is read
    ``WHERE date < :as_of OR date IS NULL`` - the rows :func:`validate_tables` would drop
    anyway; they are counted instead, for the same warning (examples without row
    numbers). Not pushed down: accounts (never filtered), contracts with a ``signed_date``
    (known from that day, :func:`~ka_ml.data.history.known_dates`), text date columns
    (parsed here, not comparable there), and ``future_rows: error`` (those rows must be seen to be
    refused).
    """
    wanted, issues = _table_names(cfg)
    cutoff = normalize_as_of(as_of) if cfg.future_rows == "drop" else None
    frames: dict[str, pd.DataFrame] = {}
    with sql.SqlSource(url, cfg.db_schema, lock_timeout_s=cfg.lock_timeout_seconds) as db:
        available = db.tables()
        if "orders" in wanted:  # a name that is no plain identifier is its own error
            _check_orders_schema(db, wanted["orders"], available, cfg)
        for table, actual in present_tables(wanted, available):
            columns = db.columns(actual)
            targets, _ = column_targets([c.name for c in columns], table, cfg)
            missing = [c for c in SCHEMA[table].required_columns if c not in targets]
            if missing:
                named = [c.name for c in columns]
                issues += [missing_column_issue(table, c, named, cfg) for c in missing]
                continue
            # the contract's columns, and a currency column for the mixed-currency warning
            # (a user's CHF lines were summed as EUR without the warning a file gets)
            contract = {c.name for c in SCHEMA[table].columns}
            contract |= set(currency_columns(table, targets))
            picked = [(c, t) for c, t in zip(columns, targets, strict=True) if t in contract]
            source_of: dict[str, sql.SqlColumn] = {}
            for column, target in picked:  # a clash keeps the first (canonical_columns)
                source_of.setdefault(target, column)
            date = source_of.get(EVENT_DATE[table])
            before = None
            # contracts with a signing date are known from it: cut after the read
            signed = table == "contracts" and SIGNED_DATE in source_of
            pushed = table != "accounts" and not signed
            if cutoff is not None and pushed and date is not None and date.is_date:
                before = sql.Before(date, cutoff)
            try:
                arrow = db.read(actual, [c for c, _ in picked], before)
                if before is not None:
                    late = _rows_left_behind(db, actual, table, source_of["account_id"], before)
                    if arrow.num_rows == 0 and late is not None:
                        # every row lies on/after the as-of: read them, so the table is not
                        # "empty" but emptied by the as-of, exactly as from a file
                        arrow = db.read(actual, [c for c, _ in picked])
                    elif late is not None:
                        issues.append(late)
            except sql.TableError as e:
                # under the contract's name: the validation then does not also call the
                # table missing (the problem text names the database's table)
                issues.append(replace(e.issue, table=table))
                continue
            frame = arrow_to_frame(arrow)
            frame.attrs[ROW_BASE_ATTR] = 1
            frame, col_issues = canonical_columns(frame, table, cfg, [c.name for c in columns])
            issues.extend(col_issues)
            frames[table] = frame
    shown = [db.qualified(n) for n in available]
    return RawRead(frames, issues, shown, "sql")


def _check_orders_schema(
    db: sql.SqlSource, orders: str, available: list[str], cfg: DataConfig
) -> None:
    """The error naming the schema to set when the schema read holds no table and another
    one has the orders: a user's tables in schema 'crm', read without data.schema, got "the
    required table is missing: expected a file orders.csv ... found nothing", with no word
    of schemas (a wrong schema name lists them)."""
    if available:  # tables, just not the orders: the missing-table error lists them
        return
    elsewhere = db.schemas_holding(orders)
    if not elsewhere:
        return
    here = f"schema '{cfg.db_schema}'" if cfg.db_schema else "the connection's default schema"
    shown = ", ".join(f"'{s}'" for s in elsewhere)
    raise KaMlError(
        f"{sql.safe_url(db.url)}: {here} holds no table; a table '{orders}' is in schema {shown}.",
        f"set data.schema: {elsewhere[0]} (the schema holding the tables).",
    )


def _rows_left_behind(
    db: sql.SqlSource, actual: str, table: str, account: sql.SqlColumn, before: sql.Before
) -> DataIssue | None:
    """The warning :func:`validate_tables` gives for rows on/after the as-of, for the rows
    the query left in the database (counted there; examples as id and date)."""
    n, rows = db.count_from(actual, account, before)
    if n == 0:
        return None
    column = EVENT_DATE[table]
    problem, remedy = future_rows_texts(before.as_of, "warning")
    examples = tuple(f"account_id='{a}', {column}='{str(d)[:10]}'" for a, d in rows)
    return DataIssue(table, column, problem, remedy, examples, n, "warning")


class _DuckDbReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.con: object = None

    def __enter__(self) -> _DuckDbReader:
        import duckdb

        try:
            self.con = duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error as e:
            raise KaMlError(
                f"DuckDB file '{self.path}' cannot be opened: {e}",
                "close other programs writing to it, or check it is a DuckDB database.",
            ) from e
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()  # type: ignore[attr-defined]

    def tables(self) -> list[str]:
        rows = self.con.execute(  # type: ignore[attr-defined]
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema = current_schema()"
        ).fetchall()
        return [str(r[0]) for r in rows]

    def read(self, name: str) -> pd.DataFrame:
        arrow = self.con.sql(f"SELECT * FROM {quote_identifier(name)}").to_arrow_table()  # type: ignore[attr-defined]
        return arrow_to_frame(arrow)


class _SqliteReader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.con: sqlite3.Connection | None = None

    def __enter__(self) -> _SqliteReader:
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            self.con = sqlite3.connect(uri, uri=True)
            self.con.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        except sqlite3.Error as e:
            raise KaMlError(
                f"SQLite file '{self.path}' cannot be opened: {e}",
                "check that the file is a SQLite database (or pass a DuckDB file or folder).",
            ) from e
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.con is not None
        self.con.close()

    def tables(self) -> list[str]:
        assert self.con is not None
        rows = self.con.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
        ).fetchall()
        return [str(r[0]) for r in rows if not str(r[0]).startswith("sqlite_")]

    def read(self, name: str) -> pd.DataFrame:
        assert self.con is not None
        return pd.read_sql_query(f"SELECT * FROM {quote_identifier(name)}", self.con)


# -- columns ------------------------------------------------------------------------------
def _clean_names(columns: Iterable[object]) -> list[str]:
    """Header names without a byte-order mark (whatever the encoding) or outer spaces."""
    return [str(c).lstrip("\ufeff").removeprefix("ï»¿").strip() for c in columns]


def column_targets(
    columns: Iterable[object],
    table: str,
    cfg: DataConfig,
    found: Iterable[object] | None = None,
) -> tuple[list[str], list[DataIssue]]:
    """(the canonical name of each source column, issues): the naming rule
    both engines apply. ``data.columns`` remap first, then a case-insensitive match on the
    contract's names; other columns keep their name. Two source columns landing on the
    same name is an error (which one is meant?); the first one is kept. A remap wins over
    a source column bearing the contract's name (that one is not read), and a remap naming
    a column the source lacks is an error (:func:`stray_mappings`; ``found``: every column
    the source has, when ``columns`` are only those read).
    """
    remap = {
        str(src).strip().casefold(): canon for canon, src in cfg.columns.get(table, {}).items()
    }
    known = {c.name.casefold(): c.name for c in SCHEMA[table].columns}
    names = _clean_names(columns)
    present = {n.casefold() for n in names}
    # contract names the config points at another source column: a same-named source column
    # is not read as them (a gross 'amount' beside the mapped net one is not a clash)
    elsewhere = {canon for src, canon in remap.items() if src in present and src != canon}
    targets = [
        remap.get(n.casefold())
        or (t if (t := known.get(n.casefold()) or n) not in elsewhere else f"_not_read_{t}")
        for n in names
    ]
    issues: list[DataIssue] = []
    seen: dict[str, str] = {}
    for name, target in zip(names, targets, strict=True):
        if target in seen:
            issues.append(
                DataIssue(
                    table,
                    target,
                    f"source columns '{seen[target]}' and '{name}' both become '{target}'",
                    f"rename one of them in the source, or map it to another name in the "
                    f"config, e.g. data.columns: {{{table}: {{{target}_2: {name}}}}}.",
                )
            )
        else:
            seen[target] = name
    return targets, issues + stray_mappings(names, targets, table, cfg, found)


def stray_mappings(
    names: list[str],
    targets: list[str],
    table: str,
    cfg: DataConfig,
    found: Iterable[object] | None = None,
) -> list[DataIssue]:
    """An error per ``data.columns`` remap whose source column is not among ``names``.

    A user's ``orders: {amount: net_value_eur}`` on an orders table without that column
    (but with a gross ``amount``) validated, trained and scored on ``amount`` without a
    word. A required column that ends up missing is left to :func:`missing_column_issue`,
    which names the remap too."""
    present = {n.casefold() for n in names}
    shown = _clean_names(found) if found is not None else names
    listed = ", ".join(f"'{c}'" for c in shown) or "none"
    required = set(SCHEMA[table].required_columns)
    out = []
    for canon, src in cfg.columns.get(table, {}).items():
        source = str(src).strip()
        if source.casefold() in present or (canon in required and canon not in targets):
            continue
        instead = (
            f"the source's own '{canon}' column would be read instead"
            if canon in targets
            else f"'{canon}' would be read as missing"
        )
        fix = remap_fix(table, canon, close_matches(source, shown))
        out.append(
            DataIssue(
                table,
                canon,
                f"data.columns.{table}.{canon} points to '{source}', which is not among the "
                f"columns found: {listed}; {instead}",
                fix + f", or remove {canon} from data.columns.{table}.",
            )
        )
    return out


def canonical_columns(
    frame: pd.DataFrame, table: str, cfg: DataConfig, found: Iterable[object] | None = None
) -> tuple[pd.DataFrame, list[DataIssue]]:
    """Rename source columns to canonical names (:func:`column_targets`; ``found``: every
    column of the source when ``frame`` holds only those read); a clash drops the later
    column and is reported."""
    targets, issues = column_targets(frame.columns, table, cfg, found)
    if issues:
        keep = [targets.index(t) == i for i, t in enumerate(targets)]
        frame = frame.loc[:, keep]
        targets = [t for t, k in zip(targets, keep, strict=True) if k]
    attrs = dict(frame.attrs)
    names = _clean_names(frame.columns)
    frame = frame.set_axis(targets, axis=1)
    frame.attrs.update(attrs)
    frame.attrs[SOURCE_COLUMNS_ATTR] = names  # for messages: the user's names, not ours
    return frame, issues
