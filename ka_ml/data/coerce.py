"""Reading raw cells as the History types them: ids, dates, numbers, booleans and text.

Pure (no I/O). :func:`coerce` types one raw column by its contract kind and says which
cells were missing, which were present but unreadable, and (dates, numbers) which a user
should be warned about; :mod:`ka_ml.data.validate` turns that into issues, worded with
:data:`BAD_PROBLEM`, :func:`bad_remedy` and :func:`grouped_numbers_texts`. The Spark reader
reads by the same tokens and patterns (:data:`MISSING_TOKENS`, :func:`yes_no_words`,
:data:`NUMBER_NOISE`, ...). The days a user types (:func:`parse_day`: YYYY-MM-DD only) and
the as-of the data are cut at (:func:`normalize_as_of`: UTC, midnight) are dates by the same
convention.

Typing rules (the History conventions):
- ids: strings, whitespace stripped; integer ids from typed sources render without ".0";
- dates: ``datetime64[us]`` at midnight. Read with ``data.read.date_format`` when set
  (a time of day may follow it), else as ISO 8601, else with a format guessed from the
  data (day-first when ``data.read.dayfirst`` is set or the data prove it), else per
  value when plausible (never bare numbers like "12"). Time-zone-aware values are
  converted to UTC before the time zone and time of day are dropped, so a CSV with
  offsets, a tz-aware Parquet column and a DuckDB TIMESTAMPTZ agree; rows that differ
  only in time of day are not exact repeats;
- numbers: ``float64``; decimal comma (``data.read.decimal: ','``), thousands separators
  (``1.234,56``, ``1,234.56``, ``1 234``, ``1'234``) and currency signs are understood;
- booleans: pandas nullable ``boolean`` from true/false/1/0/yes/no/y/n/t/f and the
  German, French, Spanish and Italian words (ja/nein, wahr/falsch, oui/non, vrai/faux,
  si/sí/sì/no, verdadero/vero/falso), any case;
- text: ``str``, stripped; blanks are missing;
- missing markers for ids, dates, numbers and booleans: blank, NA, N/A, #N/A, NaN, NaT,
  null, None (any case). Text columns treat only blanks as missing (``NA`` may be a region).
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api import types as ptypes
from pandas.tseries.api import guess_datetime_format

from ka_ml.config import ReadOptions
from ka_ml.data.rowkey import DAY_US
from ka_ml.data.schema import Kind
from ka_ml.errors import KaMlError

MISSING_TOKENS = frozenset({"", "na", "n/a", "#n/a", "nan", "nat", "null", "none"})
_LONGEST_MISSING_TOKEN = max(map(len, MISSING_TOKENS))
# English, then the yes/no words of the exports we meet most (German, French, Spanish,
# Italian): "no" is no in all of them
BOOL_TOKENS: Mapping[str, bool] = {
    **dict.fromkeys(("true", "t", "yes", "y", "1", "1.0"), True),
    **dict.fromkeys(("false", "f", "no", "n", "0", "0.0"), False),
    **dict.fromkeys(
        ("ja", "j", "wahr", "oui", "vrai", "si", "sí", "sì", "verdadero", "vero"), True
    ),
    **dict.fromkeys(("nein", "falsch", "non", "faux", "falso"), False),
}

NUMBER_NOISE = r"[\s\u00a0\u202f'’€$£¥]"  # spaces, apostrophes, currency signs
# an ISO currency code before or after the number ('EUR 1.234,56', '99 USD'), read once the
# noise is gone; and an accounting system's trailing minus ('202,94-', SAP) moved to the front
CURRENCY_CODE = r"^[A-Z]{3}(?=[-+]?[\d.,])|(?<=[\d.,])[A-Z]{3}$"
TRAILING_MINUS = r"^([\d.,]+)-$"
_GROUPED_COMMA_DECIMAL = r"[+-]?\d{1,3}(?:\.\d{3})+(?:,\d*)?"
_GROUPED_POINT_DECIMAL = r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?"
# a number written with the decimal mark where a thousands separator would be: 1-3 digits,
# the mark, exactly three ('1.266' under decimal '.'; '1,266' under ',')
LOOKS_GROUPED = {".": r"[+-]?[1-9]\d{0,2}\.\d{3}", ",": r"[+-]?[1-9]\d{0,2},\d{3}"}
# fewer such values than this in a column prove nothing
GROUPED_MIN_VALUES = 5
# A leftover (non-ISO, non-guessed) date is only trusted with three numeric parts or a
# month name with a 4-digit year: "5" or "12" must not become a date.
_PLAUSIBLE_DATE = (
    r"(?:.*?\d+\D+\d+\D+\d+.*)|(?:.*[A-Za-z]{3,}.*\d{4}.*)|(?:.*\d{4}.*[A-Za-z]{3,}.*)"
)
_DAY_MONTH = r"^\s*(?P<a>\d{1,2})[./-](?P<b>\d{1,2})[./-]\d{2,4}\b"
# times of day that may follow data.read.date_format (an offset converts to UTC first)
_TIME_SUFFIXES = tuple(
    sep + clock + zone
    for sep in (" ", "T")
    for clock in ("%H:%M:%S", "%H:%M", "%H:%M:%S.%f")
    for zone in ("", "%z")
)

# warnings.catch_warnings swaps process-wide filters: our own block runs one thread at a
# time (pandas' internal ones may still interleave, as under Dask's threaded scheduler: that
# can only change which warnings are shown, never a result)
_WARNINGS_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Coerced:
    values: pd.Series
    blank: pd.Series  # missing in the source
    bad: pd.Series  # present but unreadable as the column's kind
    ambiguous: pd.Series | None = None  # dates that read differently day-first
    timed: pd.Series | None = None  # dates with their time of day, when any has one
    grouped: pd.Series | None = None  # numbers that look grouped by thousands (_grouped_like)


def coerce(raw: pd.Series, kind: Kind, read: ReadOptions) -> _Coerced:
    """One raw column typed as ``kind`` by the rules above, with its missing and unreadable
    cells (and, for dates and numbers, what to warn about)."""
    if kind == "date":
        return _coerce_dates(raw, read)
    if kind == "float":
        return _coerce_floats(raw, read.decimal, check_grouping=read.grouping_check)
    if kind == "bool":
        return _coerce_bools(raw, read.yes_no)
    text = stripped(to_text(raw))
    blank = is_missing(text) if kind == "id" else (text.isna() | (text == ""))
    none = pd.Series(False, index=raw.index)
    return _Coerced(text.mask(blank).astype("str"), blank, none)


def _at_midnight(values: pd.Series) -> bool:
    """Every (non-missing) ``datetime64[us]`` value is at midnight."""
    arr = values.to_numpy()
    return bool((np.isnat(arr) | (arr.view("int64") % DAY_US == 0)).all())


def stripped(text: pd.Series) -> pd.Series:
    """``text.str.strip()``, or ``text`` itself when stripping changes no value: the typed
    column then shares the source's strings instead of keeping a second copy of them
    (ids from typed sources rarely carry spaces; ~0.4 GB at 100k accounts' 12M rows)."""
    stripped = text.str.strip()
    # stripping only removes characters: equal lengths mean equal values (missing stay missing)
    before = text.str.len().to_numpy(dtype="float64", na_value=np.nan)
    after = stripped.str.len().to_numpy(dtype="float64", na_value=np.nan)
    return text if np.array_equal(before, after, equal_nan=True) else stripped


def is_missing(text: pd.Series) -> pd.Series:
    """Missing, or a missing marker in any case. Only values as short as the longest marker
    are lower-cased and looked up (lower-casing never shortens a value), so a column of
    real ids costs one length pass instead of a lower-cased copy and a hash per value."""
    missing = text.isna()
    short = (text.str.len() <= _LONGEST_MISSING_TOKEN).fillna(False).to_numpy(bool)
    if not short.any():
        return missing
    token = np.zeros(len(text), dtype=bool)
    token[short] = text[short].str.lower().isin(MISSING_TOKENS).to_numpy(bool)
    return missing | token


def to_text(s: pd.Series) -> pd.Series:
    """Any column as ``str`` (NaN when missing); integral numbers without a trailing .0."""
    dtype = s.dtype
    if isinstance(dtype, pd.StringDtype):
        return s.astype("str")
    if ptypes.is_bool_dtype(dtype):
        return s.map({True: "true", False: "false"}).astype("str")
    if ptypes.is_integer_dtype(dtype):
        return s.astype("str")
    if ptypes.is_float_dtype(dtype):
        f = s.astype("float64")
        integral = np.isfinite(f) & (f == np.round(f)) & (f.abs() < 2**53)
        ints = f.where(integral, 0).astype("int64").astype("str")
        return f.astype("str").mask(integral, ints).mask(f.isna())
    if ptypes.is_object_dtype(dtype):
        return s.map(_scalar_text, na_action="ignore").astype("str")
    return s.astype("str").mask(s.isna())


def _scalar_text(v: object) -> str:
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, float | np.floating) and np.isfinite(v) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return str(v)


def _coerce_dates(raw: pd.Series, read: ReadOptions) -> _Coerced:
    if ptypes.is_datetime64_any_dtype(raw.dtype):
        values = raw
        if isinstance(raw.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        values = values.astype("datetime64[us]")
        days, timed = _dates_and_times(values)
        none = pd.Series(False, index=raw.index)
        return _Coerced(days, values.isna(), none, timed=timed)
    text = to_text(raw).str.strip()
    blank = is_missing(text)
    parsed, ambiguous = _parse_dates(text.mask(blank), read)
    bad = ~blank & parsed.isna()
    days, timed = _dates_and_times(parsed)
    return _Coerced(days, blank, bad, ambiguous, timed)


def _dates_and_times(values: pd.Series) -> tuple[pd.Series, pd.Series | None]:
    """The dates (at midnight) and, when any value has a time of day, the values as given:
    only rows equal with their time of day are repeats (see ``validate._check_table``)."""
    if _at_midnight(values):  # else normalize would only copy them
        return values, None
    return values.dt.normalize(), values


def _parse_dates(text: pd.Series, read: ReadOptions) -> tuple[pd.Series, pd.Series | None]:
    """Parse date strings in stages: configured format, ISO 8601, then (no format set) a
    format guessed from the data and, for what is left, pandas' per-value parser.

    Day/month order of the non-ISO values: day-first when configured, or when the data
    prove it (a first number above 12 and never a second one). Returns the dates (with
    their time of day, if any) and, when the order was a default guess, the values it
    changed (for a warning).
    """
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us]")
    todo = text.notna()
    if read.date_format:
        out, todo = _fill(out, todo, text, read.date_format, read.dayfirst)
    out, todo = _fill(out, todo, text, "ISO8601", read.dayfirst)
    if read.date_format is not None:
        # the configured date followed by a time of day ("25.09.2023 20:06:17"): dates
        # are dates, so the time is read and dropped like an ISO value's
        timed = todo & text.str.contains(":", regex=False).fillna(False).astype(bool)
        for suffix in _TIME_SUFFIXES:
            out, timed = _fill(out, timed, text, read.date_format + suffix, read.dayfirst)
        return out, None
    if not todo.any():
        return out, None
    parts = _day_month_parts(text[todo])
    day_first = read.dayfirst or bool((parts[0] > 12).any() and not (parts[1] > 12).any())
    guessed = guess_datetime_format(str(text[todo].iloc[0]), dayfirst=day_first)
    if guessed is not None:
        out, todo = _fill(out, todo, text, guessed, day_first)
    plausible = todo & text.str.fullmatch(_PLAUSIBLE_DATE).fillna(False).astype(bool)
    out, _ = _fill(out, plausible, text, "mixed", day_first)
    if day_first:
        return out, None
    ambiguous = (parts[0] <= 12) & (parts[1] <= 12) & (parts[0] != parts[1])
    return out, ambiguous.reindex(text.index, fill_value=False)


def _day_month_parts(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The first two numbers of dates like 03.01.2024 (NaN otherwise), via Arrow's regex
    engine: pandas' ``str.extract`` loops in Python, too slow for millions of rows."""
    arr = pa.array(text.astype("str"), from_pandas=True, type=pa.string())
    found = pc.extract_regex(arr, pattern=_DAY_MONTH)
    first, second = (
        pd.Series(
            pc.cast(pc.struct_field(found, name), pa.float64()).to_numpy(zero_copy_only=False),
            index=text.index,
        )
        for name in ("a", "b")
    )
    return first, second


def _fill(
    out: pd.Series, todo: pd.Series, text: pd.Series, fmt: str, dayfirst: bool
) -> tuple[pd.Series, pd.Series]:
    if not todo.any():
        return out, todo
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(
                text[todo], format=fmt, dayfirst=dayfirst, errors="coerce", utc=True
            )
        except (ValueError, TypeError, OverflowError):
            return out, todo
    parsed = parsed.dt.tz_localize(None).astype("datetime64[us]").reindex(text.index)
    got = parsed.notna()
    return out.mask(got, parsed), todo & ~got


def _coerce_floats(raw: pd.Series, decimal: str, *, check_grouping: bool = False) -> _Coerced:
    if ptypes.is_numeric_dtype(raw.dtype) or ptypes.is_bool_dtype(raw.dtype):
        values = raw.astype("float64")
        inf = pd.Series(np.isinf(values.to_numpy()), index=raw.index)
        return _Coerced(values.mask(inf), values.isna(), inf)
    text = to_text(raw).str.strip()
    blank = is_missing(text)
    present = text.mask(blank)
    if decimal == ",":
        # "12,5" needs only the comma swapped; values with a "." may use it to group thousands.
        simple = present.notna() & ~present.str.contains(".", regex=False).fillna(False)
        values = _to_float(present[simple].str.replace(",", ".", regex=False))
        values = values.reindex(raw.index)
    else:
        values = _to_float(present)
    retry = present.notna() & values.isna()
    if retry.any():
        values = values.mask(retry, _to_float(_clean_number(present[retry], decimal)))
    bad = ~blank & ~np.isfinite(values)
    grouped = _grouped_like(present, decimal) if check_grouping else None
    return _Coerced(values.mask(bad), blank, bad, grouped=grouped)


def _grouped_like(present: pd.Series, decimal: str) -> pd.Series | None:
    """The values of a number column read as decimals that look like whole numbers grouped
    by thousands with the decimal mark, or None when the column does not look so.

    A German export of whole euros writes 1.266 and 438: under decimal '.' they read 1.266
    and 438, and a user's 12-month revenue came out 8.0M instead of 29.7M with no word. A
    column looks so when at least ``GROUPED_MIN_VALUES`` values carry the mark, every one
    of them with exactly three digits after it and one to three (the first not 0) before,
    and some values are whole numbers without the mark. Decimals in a fixed format (12.50,
    0.125, 7.000) never look so; amounts in a currency of three decimal places can
    (``data.read.grouping_check: false``)."""
    marked = present.str.contains(decimal, regex=False).fillna(False).astype(bool)
    if decimal == ",":  # a '.' groups thousands already: 1.234,567 is no question
        marked &= ~present.str.contains(".", regex=False).fillna(False).astype(bool)
    rows = np.flatnonzero(marked.to_numpy())
    if len(rows) < GROUPED_MIN_VALUES:
        return None
    for some in (rows[:1000], rows):  # a column of decimals fails on its first values
        core = _strip_noise(present.iloc[some])
        if not bool(core.str.fullmatch(LOOKS_GROUPED[decimal]).fillna(False).all()):
            return None
    unmarked = present[present.notna() & ~marked]
    if not bool(_strip_noise(unmarked).str.fullmatch(r"[+-]?\d+").fillna(False).any()):
        return None
    return marked


def _strip_noise(text: pd.Series) -> pd.Series:
    """Spaces, currency signs and codes gone, a trailing minus moved to the front."""
    t = text.str.replace(NUMBER_NOISE, "", regex=True).str.replace(CURRENCY_CODE, "", regex=True)
    return t.str.replace(TRAILING_MINUS, r"-\1", regex=True)


def _to_float(text: pd.Series) -> pd.Series:
    return pd.to_numeric(text, errors="coerce").astype("float64").reindex(text.index)


def _clean_number(text: pd.Series, decimal: str) -> pd.Series:
    """'1.234,56' / '1,234.56' / '€ 1 234' / 'EUR 12,5' / '202,94-' -> '1234.56' /
    '1234.56' / '1234' / '12.5' / '-202.94'."""
    t = _strip_noise(text)
    if decimal == ",":
        grouped = t.str.fullmatch(_GROUPED_COMMA_DECIMAL).fillna(False).astype(bool)
        t = t.mask(grouped, t.str.replace(".", "", regex=False))
        return t.str.replace(",", ".", regex=False)
    grouped = t.str.fullmatch(_GROUPED_POINT_DECIMAL).fillna(False).astype(bool)
    return t.mask(grouped, t.str.replace(",", "", regex=False))


def yes_no_words(extra: Mapping[str, bool]) -> dict[str, bool]:
    """The words read as yes/no: :data:`BOOL_TOKENS` and the user's ``data.read.yes_no``."""
    return {**BOOL_TOKENS, **extra}


def _coerce_bools(raw: pd.Series, extra: Mapping[str, bool] | None = None) -> _Coerced:
    if ptypes.is_bool_dtype(raw.dtype):
        values = raw.astype("boolean")
        return _Coerced(values, values.isna(), pd.Series(False, index=raw.index))
    if ptypes.is_numeric_dtype(raw.dtype):
        f = raw.astype("float64")
        blank = f.isna()
        bad = ~blank & ~f.isin([0.0, 1.0])
        return _Coerced((f == 1).astype("boolean").mask(blank | bad), blank, bad)
    text = to_text(raw).str.strip()
    blank = is_missing(text)
    values = text.str.lower().map(yes_no_words(extra or {}))
    bad = ~blank & values.isna()
    return _Coerced(values.astype("boolean"), blank, bad)


# -- messages -----------------------------------------------------------------------------
BAD_PROBLEM: Mapping[Kind, str] = {
    "date": "values that cannot be read as dates",
    "float": "values that are not numbers",
    "bool": "values that are not yes/no",
    "id": "unreadable ids",
    "str": "unreadable text",
}


def bad_remedy(kind: Kind, read: ReadOptions) -> str:
    if kind == "date" and read.date_format:
        return (
            f"these values match neither data.read.date_format '{read.date_format}' (a "
            "time of day may follow) nor YYYY-MM-DD: change date_format to the format of "
            "these dates if every table writes them so (it applies to all tables), else "
            "export this column as YYYY-MM-DD (read in every table beside date_format), or "
            "correct or remove these rows."
        )
    if kind == "date":
        return (
            "write dates as YYYY-MM-DD (a time or time zone may follow), or set "
            "data.read.date_format (e.g. '%d.%m.%Y') for another fixed format; "
            "otherwise correct or remove these rows."
        )
    if kind == "float":
        if read.decimal == ",":
            return (
                "a decimal comma is configured (data.read.decimal: ','): write numbers like "
                "1.234,56 or 1234,56; otherwise correct or remove these rows."
            )
        return (
            "write plain numbers like 1234.56; if the file uses decimal commas (1.234,56) "
            "set data.read.decimal: ','; otherwise correct or remove these rows."
        )
    if kind == "bool":
        return (
            "use true/false, yes/no, y/n or 1/0 (any case; ja/nein, oui/non, si/no, "
            "wahr/falsch, vrai/faux are read too), or leave the cell blank; for other words "
            "(a ticket type: complaint, question) say what each means with data.read.yes_no: "
            "{complaint: true, question: false}."
        )
    return "correct or remove these rows."


def grouped_numbers_texts(read: ReadOptions) -> tuple[str, str]:
    """(problem, remedy) of the error about whole numbers grouped by the decimal mark
    (:func:`_grouped_like`); the Spark reader words it the same way."""
    mark, other = (".", ",") if read.decimal == "." else (",", ".")
    return (
        f"numbers that look like whole numbers with '{mark}' grouping thousands (every "
        f"value with a '{mark}' has exactly three digits after it; the others are whole) "
        f"would be read with '{mark}' as the decimal mark (data.read.decimal: "
        f"'{read.decimal}'): 1{mark}266 as 1.266, not 1266",
        f"if '{mark}' groups thousands in this file, set data.read.decimal: '{other}' "
        f"(1{mark}266 is then read as 1266); if these really are decimals with three places "
        "(e.g. amounts in KWD or BHD), set data.read.grouping_check: false.",
    )


def parse_day(value: str | None, what: str) -> pd.Timestamp | None:
    """A day a user typed (``--as-of``, ``KA_ML_AS_OF``): YYYY-MM-DD, and only so. pandas
    would read 01.10.2026 month-first (2026-01-10) without a word, a silent shift of the
    as-of by months. None for None or blank."""
    if value is None or not value.strip():
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        raise KaMlError(
            f"{what} '{value}' is not a date of the form YYYY-MM-DD.",
            "use the form YYYY-MM-DD (e.g. 2026-10-01 for 1 October 2026).",
        )
    try:
        return pd.Timestamp(value.strip())
    except (ValueError, TypeError) as e:
        raise KaMlError(f"{what} '{value}' is not a date.", "use the form YYYY-MM-DD.") from e


def normalize_as_of(as_of: pd.Timestamp | None) -> pd.Timestamp | None:
    """The as-of as the day the half-open rule cuts at (UTC, midnight)."""
    if as_of is None:
        return None
    ts = pd.Timestamp(as_of)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize()
