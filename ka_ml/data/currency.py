"""Money in several currencies: the currency column of orders and contracts, and its issues.

Pure (no I/O). A column of orders or contracts whose name says it holds a currency
(:func:`currency_columns`: currency, CurrencyIsoCode, curr, ccy, WAERS, Währung, ...) is
read as each row's currency. Without ``data.currency_rates`` such a column holding more than
one currency is warned about (:func:`currency_issue`): the money is summed as it is. With
the rates, :func:`convert_currencies` multiplies each row's money (:data:`MONEY_COLUMNS`)
by its currency's rate, refuses the currencies without one, warns when a money table has no
currency column, and notes what it converted (:func:`converted_note`). The Spark reader
finds the same and words it with the same texts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import pandas as pd

from ka_ml.data.table import Table, show_cell
from ka_ml.errors import DataIssue

# Column names that say "currency" (currency, Currency Code, curr, ccy, SAP's WAERS,
# Währung/waehrung, devise, moneda, divisa, valuta), compared without case and punctuation
_CURRENCY_NAME = re.compile(
    r"(currenc|wahrung|waehrung|währung)|^(curr|cur|ccy|waers|devise|moneda|divisa|valuta)"
    r"(code|iso|isocode|id)?$"
)
MONEY_TABLES = {"orders": "order amounts", "contracts": "contract values"}
MONEY_COLUMNS = {"orders": "amount", "contracts": "value"}
CONVERTED = "converted with data.currency_rates"
RATES_FIX = (
    "add each currency's rate to data.currency_rates (the value of one unit in the "
    "currency the report shows, e.g. {{{example}: 1.17}}), or correct these rows."
)


def currency_columns(table: str, columns: Iterable[object]) -> list[str]:
    """The columns of orders or contracts whose name says they hold a currency."""
    if table not in MONEY_TABLES:
        return []
    names = [str(c) for c in columns]
    return [c for c in names if _CURRENCY_NAME.search(re.sub(r"[\W_]+", "", c.lower()))]


def currency_issue(table: str, column: str, counts: pd.Series) -> DataIssue | None:
    """The warning when a currency column holds more than one currency (``counts``: rows
    per value, most first): the amounts are summed as they are, whatever their currency."""
    if len(counts) < 2:
        return None
    counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
    listed = ", ".join(f"'{show_cell(v)}' ({int(n):,} rows)" for v, n in counts.head(8).items())
    if len(counts) > 8:
        listed += f" and {len(counts) - 8} more"
    money = MONEY_TABLES[table]
    return DataIssue(
        table,
        column,
        f"{money} in {len(counts)} currencies are added up as they are: {listed} "
        "(report.currency is only the label shown with every sum)",
        f"convert {money} to one currency before the export (e.g. with the rate of each "
        "row's date) and set report.currency to it, or give each currency's rate in "
        f"data.currency_rates (e.g. {{{show_cell(counts.index[0])}: 1, {show_cell(counts.index[1])}: "
        "<rate>}: the value of one unit in the report's currency); nothing to do if this "
        f"column does not describe {money}.",
        level="warning",
    )


def currency_codes(values: pd.Series) -> pd.Series:
    """A currency column as the rates are keyed: trimmed, upper case, '' when blank."""
    return values.astype("string").str.strip().str.upper().fillna("")


def _listed(counts: pd.Series, rates: Mapping[str, float] | None = None) -> str:
    counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
    shown = [
        f"'{show_cell(code)}' ({int(n):,} rows"
        + (f" at {rates[str(code)]:g})" if rates is not None else ")")
        for code, n in counts.head(8).items()
    ]
    more = f" and {len(counts) - 8} more" if len(counts) > 8 else ""
    return ", ".join(shown) + more


def unknown_currency_texts(table: str, counts: pd.Series) -> tuple[str, str]:
    """(problem, remedy) for rows whose currency ``data.currency_rates`` has no rate for
    (``counts``: rows per code)."""
    first = str(counts.sort_values(ascending=False, kind="stable").index[0])
    which = f"'{show_cell(first)}'" if len(counts) == 1 else _listed(counts)  # rows: said after
    return (
        f"{MONEY_TABLES[table]} in a currency data.currency_rates has no rate for: {which}",
        RATES_FIX.format(example=first),
    )


def converted_note(
    table: str, column: str, counts: pd.Series, rates: Mapping[str, float]
) -> DataIssue:
    """The note that the money was converted (``counts``: rows per code, '' = blank)."""
    blank = int(counts.get("", 0))
    coded = counts[counts.index != ""]
    said = _listed(coded, rates) if len(coded) else "none had a currency"
    rest = f"; {blank:,} blank rows taken as already in the report's currency" if blank else ""
    return DataIssue(
        table,
        column,
        f"{MONEY_TABLES[table]} {CONVERTED}: {said}{rest}",
        "none; keep data.currency_rates up to date as the rates move.",
        level="info",
    )


def is_conversion(issue: DataIssue) -> bool:
    """Whether ``issue`` is :func:`converted_note`'s (``validate`` says it)."""
    return issue.level == "info" and CONVERTED in issue.problem


def no_currency_column_issue(table: str) -> DataIssue:
    money = MONEY_TABLES[table]
    return DataIssue(
        table,
        None,
        f"data.currency_rates is set, but the table has no currency column (a column named "
        f"currency, CurrencyIsoCode, curr, ccy, WAERS, ...): its {money} are read as they are",
        f"export each row's currency beside its {money} in a column so named; nothing to "
        f"do if its {money} are all in the report's currency.",
        level="warning",
    )


def convert_currencies(t: Table, rates: Mapping[str, float] | None) -> tuple[bool, list[DataIssue]]:
    """(converted?, issues): with ``data.currency_rates``, the table's money column
    (:data:`MONEY_COLUMNS`) times the rate of each row's currency (its currency column,
    found by name; a blank one is the report's). A currency without a rate is an error
    naming its rows; a money table without a currency column is read as it is, with a
    warning."""
    money = MONEY_COLUMNS.get(t.name)
    if rates is None or money is None or money not in t.frame:
        return False, []
    columns = currency_columns(t.name, t.frame.columns)
    if not columns:
        return False, [no_currency_column_issue(t.name)]
    column = columns[0]
    code = currency_codes(t.frame[column])
    rate = code.map(rates).astype("float64")
    unknown = (code != "") & rate.isna()
    if unknown.any():
        counts = code[unknown].value_counts()
        problem, remedy = unknown_currency_texts(t.name, counts)
        return True, [t.issue(column, problem, remedy, unknown, show=[column, money])]
    t.frame[money] = t.frame[money] * rate.fillna(1.0).to_numpy()
    return True, [converted_note(t.name, column, code.value_counts(), rates)]
