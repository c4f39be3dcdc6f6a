"""Very large portfolios: the report and the spreadsheet stay usable, the summary stays whole."""

from __future__ import annotations

from pathlib import Path

import openpyxl
from test_report import make_run, make_scores

from ka_ml.reporting.excel import write_excel
from ka_ml.reporting.html import render_report
from ka_ml.reporting.summary import order_by_risk


def test_the_report_shows_the_accounts_most_at_risk_and_says_how_many_are_left_out() -> None:
    scores = make_scores(40)
    html = render_report(scores, make_run(), max_accounts=10)
    top = scores.loc[order_by_risk(scores)[:10], "account_id"]
    rest = scores.loc[order_by_risk(scores)[10:], "account_id"]
    assert all(f"<small>{a}</small>" in html for a in top)
    assert not any(f"<small>{a}</small>" in html for a in rest)
    assert "Showing the 10 accounts with the most revenue at risk of 40" in html
    # the portfolio summary still counts every account
    assert "40 accounts" in html


def test_no_note_when_every_account_fits() -> None:
    html = render_report(make_scores(12), make_run(), max_accounts=100)
    assert "Showing the" not in html and "All accounts" in html


def test_the_spreadsheet_keeps_the_top_rows_and_a_whole_summary(tmp_path: Path) -> None:
    scores = make_scores(40)
    path = write_excel(scores, make_run(), tmp_path / "s.xlsx", max_rows=15)
    wb = openpyxl.load_workbook(path)
    assert wb["Accounts"].max_row == 16  # header + 15
    summary_text = " ".join(
        str(c.value) for row in wb["Summary"].iter_rows() for c in row if c.value is not None
    )
    assert "40" in summary_text
