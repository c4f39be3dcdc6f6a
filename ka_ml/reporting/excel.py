"""The scores as a spreadsheet managers can filter, sort and annotate (``scores.xlsx``).

Three sheets: "Summary" (the portfolio figures of the report), "Accounts" (one row per
account, human headers, probabilities as percentages, dates as real dates, the light
column filled red/yellow/green, autofilter and a frozen header) and "Reasons" (one row
per account and reason rank, long format, easy to pivot).

Written with openpyxl directly (not ``DataFrame.to_excel``) for two reasons: cell formats
and fills are set in one pass, and text from CRM exports that starts with ``=`` stays
text instead of becoming a live formula (spreadsheet formula injection).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from ka_ml.io import atomic_write
from ka_ml.reporting.html import (
    N_REASONS,
    attention_flags,
    order_by_risk,
    portfolio_summary,
    purchase_windows,
)

LIGHT_FILLS: dict[str, str] = {"red": "FFC7CE", "yellow": "FFEB9C", "green": "C6EFCE"}
HEADER_FILL = "E4E7EB"
PCT, PCT1, MONEY, DATE, POINTS, INDEX = "0%", "0.0%", "#,##0", "yyyy-mm-dd", "+0;-0;0", "0.00"
MAX_WIDTH = 60


@dataclass(frozen=True)
class Column:
    """One spreadsheet column: header, values, Excel number format ('' = general/text)."""

    header: str
    values: pd.Series
    fmt: str = ""


def _text(scores: pd.DataFrame, col: str) -> pd.Series:
    if col not in scores:
        return pd.Series(pd.NA, index=scores.index, dtype="string")
    return scores[col].astype("string")


def _num(scores: pd.DataFrame, col: str) -> pd.Series:
    if col not in scores:
        return pd.Series(np.nan, index=scores.index)
    return pd.to_numeric(scores[col], errors="coerce").astype("float64")


def _dates(scores: pd.DataFrame, col: str) -> pd.Series:
    if col not in scores:
        return pd.Series(pd.NaT, index=scores.index, dtype="datetime64[us]")
    return pd.to_datetime(scores[col], errors="coerce").dt.normalize()


def _account_columns(scores: pd.DataFrame) -> list[Column]:
    s = scores.loc[order_by_risk(scores)]
    change = attention_flags(s)["risk_change"] * 100
    alert = s["dependency_alert"].astype("boolean") if "dependency_alert" in s else None
    cols = [
        Column("Light", _text(s, "health")),
        Column("Account ID", _text(s, "account_id")),
        Column("Account", _text(s, "name")),
        Column("Owner", _text(s, "owner")),
        Column("Tier", _text(s, "abc_tier")),
        Column("Industry", _text(s, "industry")),
        Column("Region", _text(s, "region")),
        Column("Churn probability", _num(s, "churn_probability"), PCT),
        Column("Last week", _num(s, "churn_probability_prev"), PCT),
        Column("Change (pts)", change.round(1), POINTS),
        Column("Light last week", _text(s, "health_prev")),
        Column("Revenue 365 days", _num(s, "revenue_365d"), MONEY),
        Column("Revenue at risk", _num(s, "revenue_at_risk"), MONEY),
        Column("Revenue share", _num(s, "revenue_share"), PCT1),
        Column("Dependency index", _num(s, "dependency_index"), INDEX),
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
            Column(f"P(order within {k} days)", _num(s, f"p_purchase_{k}d"), PCT)
            for k in purchase_windows(s)
        ],
        Column("Days since last order", _num(s, "days_since_last_order"), "0"),
        Column("Why this light", _text(s, "light_reason")),
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
                "shap": _num(s, f"reason_{k}_shap") * 100,
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
        Column("Feature", long["feature"]),
        Column("Contribution (pts)", long["shap"].round(2), "+0.0;-0.0;0.0"),
        Column("Direction", long["direction"]),
    ]


def _summary_rows(scores: pd.DataFrame, run: dict[str, Any]) -> list[tuple[str, Any, str]]:
    s = portfolio_summary(scores)
    thresholds = run.get("thresholds") or {}
    models = run.get("models") if isinstance(run.get("models"), dict) else {}
    data = run.get("data") if isinstance(run.get("data"), dict) else {}
    rows: list[tuple[str, Any, str]] = [
        ("As of", str(run.get("as_of") or ""), ""),
        ("Churn definition", str(run.get("churn_definition") or ""), ""),
        ("Horizon (days)", run.get("horizon_days"), "0"),
        ("Red from", thresholds.get("red"), PCT),
        ("Yellow from", thresholds.get("yellow"), PCT),
        ("Accounts", s["n_accounts"], MONEY),
        ("Revenue 365 days", s["total_revenue"], MONEY),
        ("Revenue at risk", s["revenue_at_risk"], MONEY),
        ("Revenue at risk share", s["revenue_at_risk_share"], PCT1),
        ("Need attention", s["needs_attention"], "0"),
        ("Turned red this week", s["turned_red"], "0"),
        ("Risk up 10 pts or more", s["rising"], "0"),
        ("Dependency alerts", len(s["dependency_alerts"]), "0"),
    ]
    rows += [(f"{k.capitalize()} model", str(v), "") for k, v in (models or {}).items()]
    fingerprint = run.get("data_fingerprint") or (data or {}).get("fingerprint")
    if fingerprint:
        rows.append(("Data fingerprint", str(fingerprint), ""))
    if run.get("owner"):
        rows.append(("Owner", str(run["owner"]), ""))
    rows += [("Warning", str(w), "") for w in run.get("warnings") or []]
    return rows


def _clean(values: pd.Series) -> pd.Series:
    """Text without the control characters that openpyxl (and Excel) refuse."""
    if values.dtype.kind in "fiumMb":
        return values
    return values.astype("string").str.replace(ILLEGAL_CHARACTERS_RE.pattern, "", regex=True)


def _write_table(ws: Worksheet, columns: Sequence[Column]) -> None:
    """Header row plus data; formats, widths, and formula-looking text kept as text."""
    frame = pd.DataFrame(
        {i: _clean(c.values).reset_index(drop=True) for i, c in enumerate(columns)}
    )
    header_row = 1
    for j, c in enumerate(columns, start=1):
        cell = ws.cell(header_row, j, c.header)
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor=HEADER_FILL)
        cell.alignment = Alignment(vertical="top", wrap_text=True)
    body = frame.astype(object).where(frame.notna(), None)
    for r, row in enumerate(body.itertuples(index=False, name=None), start=header_row + 1):
        for j, value in enumerate(row, start=1):
            ws.cell(r, j, value)
    n = len(frame)
    for j, c in enumerate(columns, start=1):
        col = frame[j - 1]
        if c.fmt:
            for r in range(header_row + 1, header_row + 1 + n):
                ws.cell(r, j).number_format = c.fmt
        else:  # text that starts with "=" would be stored as a formula: force text
            looks_like_formula = col.astype("string").str.startswith("=").fillna(False)
            for pos in np.flatnonzero(looks_like_formula.to_numpy(bool)).tolist():
                ws.cell(header_row + 1 + pos, j).data_type = "s"
        ws.column_dimensions[get_column_letter(j)].width = _width(c, col)


def _width(column: Column, values: pd.Series) -> float:
    if column.fmt == DATE:
        return 12.0
    if column.fmt:
        return max(10.0, min(len(column.header) * 0.9, 18.0))
    lengths = values.astype("string").str.len().dropna()
    typical = float(lengths.quantile(0.9)) if len(lengths) else 0.0
    return float(min(max(typical, len(column.header) * 0.9, 6.0) + 2, MAX_WIDTH))


def _summary_sheet(ws: Worksheet, scores: pd.DataFrame, run: dict[str, Any]) -> None:
    ws.append(["Key-account health", None])
    ws.cell(1, 1).font = Font(bold=True, size=14)
    for label, value, fmt in _summary_rows(scores, run):
        ws.append([label, value])
        if fmt:
            ws.cell(ws.max_row, 2).number_format = fmt
    s = portfolio_summary(scores)
    tiers = list(s["tiers"])
    start = ws.max_row + 2
    headers = ["Light", "Accounts", "Revenue 365 days", "Revenue at risk"]
    headers += [f"Tier {t} accounts" for t in tiers]
    for j, h in enumerate(headers, start=1):
        cell = ws.cell(start, j, h)
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor=HEADER_FILL)
    for i, (light, fig) in enumerate(s["lights"].items(), start=start + 1):
        row = [light or "(none)", fig["accounts"], fig["revenue"], fig["revenue_at_risk"]]
        row += [s["light_by_tier"][light][t]["accounts"] for t in tiers]
        for j, value in enumerate(row, start=1):
            ws.cell(i, j, value).number_format = MONEY if j in (3, 4) else "General"
        if light in LIGHT_FILLS:
            ws.cell(i, 1).fill = PatternFill("solid", fgColor=LIGHT_FILLS[light])
    ws.column_dimensions["A"].width = 26
    ws.column_dimensions["B"].width = 48
    for j in range(3, len(headers) + 1):
        ws.column_dimensions[get_column_letter(j)].width = 16


def _accounts_sheet(ws: Worksheet, scores: pd.DataFrame) -> None:
    columns = _account_columns(scores)
    _write_table(ws, columns)
    light_col = 1 + next(i for i, c in enumerate(columns) if c.header == "Light")
    lights = columns[light_col - 1].values.fillna("").to_numpy(str)
    fills = {k: PatternFill("solid", fgColor=v) for k, v in LIGHT_FILLS.items()}
    for r, light in enumerate(lights, start=2):
        if light in fills:
            ws.cell(r, light_col).fill = fills[light]
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{len(scores) + 1}"


def _build(scores: pd.DataFrame, run: dict[str, Any], max_rows: int | None = None) -> Workbook:
    wb = Workbook()
    summary = wb.active
    assert summary is not None
    summary.title = "Summary"
    _summary_sheet(summary, scores, run)
    if max_rows is not None and len(scores) > max_rows:
        from ka_ml.reporting.html import order_by_risk

        scores = scores.loc[order_by_risk(scores)[:max_rows]]
    _accounts_sheet(wb.create_sheet("Accounts"), scores)
    reasons = wb.create_sheet("Reasons")
    _write_table(reasons, _reason_columns(scores))
    reasons.freeze_panes = "A2"
    reasons.auto_filter.ref = reasons.dimensions
    return wb


def write_excel(
    scores: pd.DataFrame, run: dict[str, Any], path: Path, *, max_rows: int | None = None
) -> Path:
    """Write ``scores.xlsx`` atomically (whole or not at all); returns the path.

    ``max_rows`` keeps the account sheets to the accounts with the most revenue at risk
    (spreadsheets slow down long before Excel's 1,048,576-row limit); the summary covers all.
    """
    wb = _build(scores, run, max_rows)
    return atomic_write(Path(path), lambda tmp: wb.save(tmp))
