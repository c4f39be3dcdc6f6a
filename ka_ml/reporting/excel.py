"""The scores as a spreadsheet managers can filter, sort and annotate (``scores.xlsx``).

Three sheets: "Summary" (the portfolio figures of the report), "Accounts" (one row per
account, human headers, probabilities as percentages, dates as real dates, the light
column filled red/yellow/green, autofilter and a frozen header) and "Reasons" (one row
per account and reason rank, long format, easy to pivot).

Written with XlsxWriter directly (not ``DataFrame.to_excel``): every cell is written once
with its column's format (a light cell with its fill), text is always written as text, so
a CRM value that starts with ``=`` stays text instead of becoming a live formula
(spreadsheet formula injection). The account sheets' data rows are written as XML a column
at a time and streamed into the file (:mod:`ka_ml.reporting.sheet_rows`): XlsxWriter's
per-cell calls took over a minute at 100k accounts.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from ka_ml.io import atomic_write
from ka_ml.reporting.columns import N_REASONS, SCORECARD, num_col, purchase_windows
from ka_ml.reporting.formatting import fmt_points
from ka_ml.reporting.sheet_rows import SheetColumn, SheetData, insert_rows
from ka_ml.reporting.summary import (
    attention_flags,
    is_first_run,
    no_change_note,
    order_by_risk,
    portfolio_summary,
)

LIGHT_FILLS: dict[str, str] = {"red": "FFC7CE", "yellow": "FFEB9C", "green": "C6EFCE"}
HEADER_FILL = "E4E7EB"
PCT, PCT1, MONEY, DATE, POINTS, INDEX = "0%", "0.0%", "#,##0", "yyyy-mm-dd", "+0;-0;0", "0.00"
COUNT = "#,##0"  # a number of accounts: whole, with thousands separators
MAX_WIDTH = 60
# XML 1.0 refuses these control characters (the same set openpyxl rejects)
ILLEGAL_CHARACTERS = r"[\000-\010]|[\013-\014]|[\016-\037]"


@dataclass(frozen=True)
class Column:
    """One spreadsheet column: header, values, Excel number format ('' = general/text)."""

    header: str
    values: pd.Series
    fmt: str = ""


def _text(scores: pd.DataFrame, col: str) -> pd.Series:
    """A text column, missing values kept missing (empty cells, unlike the report's '')."""
    if col not in scores:
        return pd.Series(pd.NA, index=scores.index, dtype="string")
    return scores[col].astype("string")


def _dates(scores: pd.DataFrame, col: str) -> pd.Series:
    """A date column at midnight (Excel dates without a time), NaT where missing."""
    if col not in scores:
        return pd.Series(pd.NaT, index=scores.index, dtype="datetime64[us]")
    return pd.to_datetime(scores[col], errors="coerce").dt.normalize()


def _account_columns(scores: pd.DataFrame) -> list[Column]:
    s = scores.loc[order_by_risk(scores)]
    change = attention_flags(s)["risk_change"] * 100  # the change itself, any size
    alert = s["dependency_alert"].astype("boolean") if "dependency_alert" in s else None
    cols = [
        Column("Light", _text(s, "health")),
        Column("Account ID", _text(s, "account_id")),
        Column("Account", _text(s, "name")),
        Column("Owner", _text(s, "owner")),
        Column("Tier", _text(s, "abc_tier")),
        Column("Industry", _text(s, "industry")),
        Column("Region", _text(s, "region")),
        Column("Stage", _text(s, "lifecycle")),
        Column(
            "Low confidence",
            s["low_confidence"].astype("boolean").map({True: "yes", False: "no"}).astype("string")
            if "low_confidence" in s
            else _text(s, "low_confidence"),
        ),
        Column("Churn probability", num_col(s, "churn_probability"), PCT),
        Column("Last week", num_col(s, "churn_probability_prev"), PCT),
        Column("Change (pts)", change.round(1), POINTS),
        Column("Light last week", _text(s, "health_prev")),
        Column("Revenue 365 days", num_col(s, "revenue_365d"), MONEY),
        Column("Expected revenue 12 months", num_col(s, "expected_revenue_12m"), MONEY),
        Column("Revenue at risk", num_col(s, "revenue_at_risk"), MONEY),
        Column("Win-back value", num_col(s, "win_back_value"), MONEY),
        Column("Revenue share", num_col(s, "revenue_share"), PCT1),
        Column("Dependency index", num_col(s, "dependency_index"), INDEX),
        Column(
            "Dependency alert",
            alert.map({True: "yes", False: "no"}).astype("string")
            if alert is not None
            else _text(s, "dependency_alert"),
        ),
        Column("Next expected order", _dates(s, "expected_next_purchase_date"), DATE),
        Column("Order window from (p10)", _dates(s, "next_purchase_p10_date"), DATE),
        Column("Order window to (p90)", _dates(s, "next_purchase_p90_date"), DATE),
        *[
            Column(f"P(order within {k} days)", num_col(s, f"p_purchase_{k}d"), PCT)
            for k in purchase_windows(s)
        ],
        Column("Days since last order", num_col(s, "days_since_last_order"), "0"),
        Column("Why this light", _text(s, "light_reason")),
        *[
            c
            for key, label in SCORECARD
            for c in (
                Column(f"Scorecard: {label}", _text(s, f"scorecard_{key}")),
                Column(f"{label}: measured", _text(s, f"scorecard_{key}_detail")),
            )
        ],
        Column("Churn rule", _text(s, "churn_definition")),
        Column("Top reason", _text(s, "reason_1")),
        Column("Changes since last week", _text(s, "changes")),
        Column("Recommended action", _text(s, "recommended_action")),
        Column("Churn model", _text(s, "churn_model_version")),
        Column("Timing model", _text(s, "timing_model_version")),
    ]
    return cols


def _reason_columns(scores: pd.DataFrame) -> list[Column]:
    """Long format: one row per (account, rank) with a non-empty reason, report order."""
    s = scores.loc[order_by_risk(scores)].reset_index(drop=True)
    parts = [
        pd.DataFrame(
            {
                "order": np.arange(len(s)),
                "account_id": _text(s, "account_id"),
                "name": _text(s, "name"),
                "rank": k,
                "reason": _text(s, f"reason_{k}"),
                "feature": _text(s, f"reason_{k}_feature"),
                "shap": num_col(s, f"reason_{k}_shap") * 100,
                "direction": _text(s, f"reason_{k}_direction"),
            }
        )
        for k in range(1, N_REASONS + 1)
    ]
    long = pd.concat(parts, ignore_index=True).sort_values(["order", "rank"], kind="stable")
    long = long[long["reason"].fillna("").str.len() > 0]
    return [
        Column("Account ID", long["account_id"]),
        Column("Account", long["name"]),
        Column("Rank", long["rank"], "0"),
        Column("Reason", long["reason"]),
        Column("Contribution (pts)", long["shap"].round(2), "+0.0;-0.0;0.0"),
        Column("Direction", long["direction"]),
        # the model's internal name of the reason, for analysts: last, out of the readers' way
        Column("Feature code", long["feature"]),
    ]


def _summary_rows(scores: pd.DataFrame, run: dict[str, Any]) -> list[tuple[str, Any, str]]:
    s = portfolio_summary(scores, rise=float(run.get("risk_rise_points") or 0.1))
    thresholds = run.get("thresholds") or {}
    models = run.get("models") if isinstance(run.get("models"), dict) else {}
    data = run.get("data") if isinstance(run.get("data"), dict) else {}
    rows: list[tuple[str, Any, str]] = [
        ("As of", _as_of_date(run.get("as_of")), DATE),
        ("Churn definition", str(run.get("churn_definition") or ""), ""),
        ("Horizon (days)", run.get("horizon_days"), "0"),
        ("Lights", str(run.get("light_rule") or ""), ""),
        *_light_cut_rows(thresholds),
        ("Accounts", s["n_accounts"], COUNT),
        ("Revenue 365 days", s["total_revenue"], MONEY),
        *([("Currency", str(run["currency"]), "")] if run.get("currency") else []),
        ("Revenue at risk", s["revenue_at_risk"], MONEY),
        ("Revenue at risk rule", str(run.get("revenue_at_risk_rule") or ""), ""),
        ("Revenue at risk share", s["revenue_at_risk_share"], PCT1),
        *(
            [  # nothing to compare with: the report lists this week's reds to call
                ("To call this week", s["lights"].get("red", {}).get("accounts", 0), COUNT),
                ("Changes", no_change_note(s.get("last_run")), ""),
            ]
            if is_first_run(scores)
            else [("Need attention", s["needs_attention"], COUNT)]
        ),
        ("Turned red this week", s["turned_red"], COUNT),
        ("Back from lapsed, still red", s.get("back_red", 0), COUNT),
        (  # the rest of "Need attention": the four rows add up to it
            f"Risk up {fmt_points(float(run.get('risk_rise_points') or 0.1)).lstrip('+')} or "
            "more, besides those above",
            s["rising_more"],
            COUNT,
        ),
        ("Raised to yellow by a rule (was green), besides those above", s.get("raised", 0), COUNT),
        ("Lapsed (win-back)", s.get("win_back", {}).get("accounts", 0), COUNT),
        ("Lapsed since last week (was red)", s.get("lapsed_red", 0), COUNT),
        (
            "Top 5 accounts' revenue share",
            s.get("concentration", {}).get("top5_revenue_share"),
            PCT1,
        ),
        ("Dependency alerts", len(s["dependency_alerts"]), COUNT),
    ]
    rows += [(f"{k.capitalize()} model", str(v), "") for k, v in (models or {}).items()]
    fingerprint = run.get("data_fingerprint") or (data or {}).get("fingerprint")
    if fingerprint:
        rows.append(("Data fingerprint", str(fingerprint), ""))
    if run.get("owner"):
        rows.append(("Owner", str(run["owner"]), ""))
    rows += [("Warning", str(w), "") for w in run.get("warnings") or []]
    return rows


def _as_of_date(raw: Any) -> Any:
    """The scoring date as a real date cell (sortable, Excel's own date display); text only
    when the record holds something that is no date."""
    if raw is None or raw == "":
        return None
    try:
        return pd.Timestamp(raw).normalize()
    except (ValueError, TypeError):
        return str(raw)


def _light_cut_rows(thresholds: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """'Red from' / 'Yellow from': the thresholds in threshold mode; in budget mode (no
    fixed threshold) the shares and floors that decided the lights, the lowest churn
    probability the ranking lit each light with this run, and how many a rule lit."""
    if "red" in thresholds or "red_share" not in thresholds:
        return [
            ("Red from", thresholds.get("red"), PCT),
            ("Yellow from", thresholds.get("yellow"), PCT),
        ]

    def rule(share: str, floor: str, who: str) -> str:
        return (
            f"{who} {float(thresholds[share]):.0%} (never below a "
            f"{float(thresholds[floor]):.0%} churn probability)"
        )

    return [
        ("Red from", rule("red_share", "red_min_probability", "the riskiest"), ""),
        ("Yellow from", rule("yellow_share", "yellow_min_probability", "the next"), ""),
        ("Lowest red probability ranked this run", thresholds.get("lowest_red_probability"), PCT),
        (
            "Lowest yellow probability ranked this run",
            thresholds.get("lowest_yellow_probability"),
            PCT,
        ),
        (
            "Lit by a rule, below the ranking's cut",
            f"{thresholds.get('red_by_rule', 0)} red, {thresholds.get('yellow_by_rule', 0)} "
            "yellow (raised by a rule: overdue, an open critical complaint, shrinking baskets; "
            "hysteresis: "
            "kept from last week)",
            "",
        ),
    ]


def _clean(values: pd.Series) -> pd.Series:
    """Text without the control characters that spreadsheets refuse; line breaks as ``\n``.

    A carriage return would be stored escaped (``_x000D_``), which only Excel decodes;
    a cell's line break is ``\n`` everywhere.
    """
    if values.dtype.kind in "fiumMb":
        return values
    text = values.astype("string").str.replace(ILLEGAL_CHARACTERS, "", regex=True)
    return text.str.replace("\r\n", "\n", regex=False).str.replace("\r", "\n", regex=False)


class _Formats:
    """The workbook's cell formats, each created once (XlsxWriter wants few of them)."""

    def __init__(self, wb: Workbook) -> None:
        self.wb = wb
        self._cache: dict[tuple[tuple[str, Any], ...], Format] = {}

    def get(self, **props: Any) -> Format:
        key = tuple(sorted(props.items()))
        if key not in self._cache:
            self._cache[key] = self.wb.add_format(props)
        return self._cache[key]

    def header(self) -> Format:
        return self.get(bold=True, bg_color=f"#{HEADER_FILL}", valign="top", text_wrap=True)

    @staticmethod
    def index(fmt: Format | None) -> int:
        """The format's style index in the workbook (0: none); XlsxWriter assigns it on the
        format's first use, which this is for cells written outside XlsxWriter."""
        return 0 if fmt is None else int(fmt._get_xf_index())

    def cell(self, fmt: str, light: str | None = None) -> Format | None:
        props: dict[str, Any] = {"num_format": fmt} if fmt else {}
        if light in LIGHT_FILLS:
            props["bg_color"] = f"#{LIGHT_FILLS[light]}"
        return self.get(**props) if props else None


def _write_value(ws: Worksheet, r: int, j: int, value: Any, fmt: Format | None) -> None:
    """One cell: numbers as numbers, dates as dates, everything else as text, never a formula."""
    if value is None or value is pd.NA or value is pd.NaT:
        if fmt is not None:
            ws.write_blank(r, j, None, fmt)
    elif isinstance(value, pd.Timestamp):
        ws.write_datetime(r, j, value.to_pydatetime(), fmt)
    elif isinstance(value, (bool, np.bool_)):
        ws.write_boolean(r, j, bool(value), fmt)
    elif isinstance(value, (int, float, np.integer, np.floating)):
        x = float(value)
        if np.isfinite(x):
            ws.write_number(r, j, x, fmt)
        elif fmt is not None:
            ws.write_blank(r, j, None, fmt)
    else:
        ws.write_string(r, j, str(value), fmt)


def _write_table(
    ws: Worksheet, columns: Sequence[Column], formats: _Formats, lights: str | None = None
) -> SheetData:
    """Header row, widths, frozen header and filter; returns the data rows to insert.

    The data rows are written by :func:`sheet_rows.insert_rows` after the workbook is
    closed (XlsxWriter's per-cell writing is the slow part of a weekly run at 100k
    accounts); each column keeps its format, ``lights``' cells get their light's fill.
    """
    frame = pd.DataFrame(
        {i: _clean(c.values).reset_index(drop=True) for i, c in enumerate(columns)}
    )
    for j, c in enumerate(columns):
        ws.write_string(0, j, c.header, formats.header())
        ws.set_column(j, j, _width(c, frame[j]))
    cols = []
    for j, c in enumerate(columns):
        col = frame[j]
        kind = "number" if col.dtype.kind in "fiu" else "date" if col.dtype.kind == "M" else "text"
        plain = formats.index(formats.cell(c.fmt))
        style: int | list[int] = plain
        if c.header == lights:  # the light's fill, per row
            by_light = {v: formats.index(formats.cell(c.fmt, v)) for v in col.dropna().unique()}
            style = [by_light.get(v, plain) for v in col.tolist()]
        cols.append(SheetColumn(kind, col, style))
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, len(frame), len(columns) - 1)
    return SheetData(f"xl/worksheets/sheet{ws.index + 1}.xml", cols)


def _width(column: Column, values: pd.Series) -> float:
    if column.fmt == DATE:
        return 12.0
    if column.fmt:
        return max(10.0, min(len(column.header) * 0.9, 18.0))
    lengths = values.astype("string").str.len().dropna()
    typical = float(lengths.quantile(0.9)) if len(lengths) else 0.0
    return float(min(max(typical, len(column.header) * 0.9, 6.0) + 2, MAX_WIDTH))


def _summary_sheet(
    ws: Worksheet, scores: pd.DataFrame, run: dict[str, Any], formats: _Formats
) -> None:
    ws.write_string(0, 0, "Key-account health", formats.get(bold=True, font_size=14))
    r = 1
    for label, value, fmt in _summary_rows(scores, run):
        ws.write_string(r, 0, label)
        _write_value(ws, r, 1, value, formats.cell(fmt))
        r += 1
    s = portfolio_summary(scores, rise=float(run.get("risk_rise_points") or 0.1))
    tiers = list(s["tiers"])
    start = r + 1
    headers = ["Light", "Accounts", "Revenue 365 days", "Revenue at risk"]
    headers += [f"Tier {t} accounts" for t in tiers]
    bold = formats.get(bold=True, bg_color=f"#{HEADER_FILL}")
    for j, h in enumerate(headers):
        ws.write_string(start, j, h, bold)
    rows = [
        [light or "(none)", fig["accounts"], fig["revenue"], fig["revenue_at_risk"]]
        + [s["light_by_tier"][light][t]["accounts"] for t in tiers]
        for light, fig in s["lights"].items()
    ]
    if s["win_back"]["accounts"]:  # no light, none at risk: the rows add up to "Accounts"
        rows.append(
            ["lapsed (no light)", s["win_back"]["accounts"], s["win_back"]["revenue_365d"], 0.0]
        )
    for i, row in enumerate(rows, start=start + 1):
        light = str(row[0])
        for j, value in enumerate(row):
            if j == 0:
                _write_value(ws, i, j, value, formats.cell("", light))
            else:  # revenue in money, the rest counts of accounts
                _write_value(ws, i, j, value, formats.cell(MONEY if j in (2, 3) else COUNT))
    ws.set_column(0, 0, 26)
    ws.set_column(1, 1, 48)
    if len(headers) > 2:
        ws.set_column(2, len(headers) - 1, 16)


def _write_book(
    path: Path, scores: pd.DataFrame, run: dict[str, Any], max_rows: int | None = None
) -> None:
    # XlsxWriter writes the book in memory without the account sheets' data rows, which
    # are then streamed into their sheets (sheet_rows.insert_rows)
    buffer = io.BytesIO()
    wb = xlsxwriter.Workbook(buffer, {"in_memory": True})
    formats = _Formats(wb)
    _summary_sheet(wb.add_worksheet("Summary"), scores, run, formats)
    if max_rows is not None and len(scores) > max_rows:
        scores = scores.loc[order_by_risk(scores)[:max_rows]]
    sheets = [
        _write_table(wb.add_worksheet("Accounts"), _account_columns(scores), formats, "Light"),
        _write_table(wb.add_worksheet("Reasons"), _reason_columns(scores), formats),
    ]
    wb.close()
    insert_rows(buffer.getvalue(), sheets, path)


def write_excel(
    scores: pd.DataFrame, run: dict[str, Any], path: Path, *, max_rows: int | None = None
) -> Path:
    """Write ``scores.xlsx`` atomically (whole or not at all); returns the path.

    ``max_rows`` keeps the account sheets to the accounts with the most revenue at risk
    (spreadsheets slow down long before Excel's 1,048,576-row limit); the summary covers all.
    """
    return atomic_write(Path(path), lambda tmp: _write_book(tmp, scores, run, max_rows))
