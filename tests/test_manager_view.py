"""What a manager sees, end to end: a portfolio built with known lapsed, new and active
accounts and one account above the dependency alert, scored with the session's champion
models, then read in every output (parquet, csv, html, xlsx, owner digest, read API)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import isolated
from openpyxl import load_workbook

from ka_ml.jobs.score import ScoreResult, run_scoring
from ka_ml.scoring.score_history import history_path

LAPSED, NEW, BIG = "ZZ-LAPSED", "ZZ-NEW", "ZZ-BIG"
NAMES = {LAPSED: "Gone Since Spring AG", NEW: "Fresh Start GmbH", BIG: "Whale Industries"}
OWNER = "dora.dependent"


@dataclass(frozen=True)
class Built:
    result: ScoreResult
    second: ScoreResult
    cfg: object
    as_of: pd.Timestamp


def _orders(account: str, days: list[int], amount: float, as_of: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": [f"{account}-{i}" for i in range(len(days))],
            "account_id": account,
            "order_date": [as_of - pd.Timedelta(days=d) for d in days],
            "amount": amount,
        }
    )


@pytest.fixture(scope="module")
def built(trained, tmp_path_factory: pytest.TempPathFactory) -> Built:  # type: ignore[no-untyped-def]
    h = trained.history
    as_of = h.default_as_of
    orders = h.orders
    recent = orders[orders["order_date"] >= as_of - pd.Timedelta(days=365)]
    rest = float(recent["amount"].sum())
    extra = pd.concat(
        [
            # ordered monthly for two years, then nothing for 300 days: lost
            _orders(LAPSED, list(range(300, 1000, 30)), 5_000.0, as_of),
            # one order three weeks ago: too little history to judge
            _orders(NEW, [21], 8_000.0, as_of),
            # twice the rest of the portfolio's revenue in its own industry: dependency
            _orders(BIG, list(range(5, 700, 14)), 2 * rest / 26, as_of),
        ],
        ignore_index=True,
    )
    for c in orders.columns:
        if c not in extra:
            extra[c] = orders[c].iloc[0] if c != "quantity" else 1
    accounts = h.accounts
    add = pd.DataFrame([{c: accounts[c].iloc[0] for c in accounts.columns}] * 3)
    add["account_id"] = [LAPSED, NEW, BIG]
    add["name"] = [NAMES[a] for a in add["account_id"]]
    add["owner"] = OWNER
    add["industry"] = ["Utilities", "Utilities", "Aerospace (only one)"]
    history = replace(
        h,
        orders=pd.concat([orders, extra[orders.columns]], ignore_index=True),
        accounts=pd.concat([accounts, add[accounts.columns]], ignore_index=True),
    )
    root = tmp_path_factory.mktemp("manager")
    cfg = isolated(trained.cfg, root)
    first = run_scoring(history, cfg, as_of, root / "first")
    second = run_scoring(history, cfg, as_of + pd.Timedelta(days=7), root / "second")
    return Built(first, second, cfg, as_of)


def _row(res: ScoreResult, account: str) -> pd.Series:
    s = pd.read_parquet(res.out_dir / "scores.parquet").set_index("account_id")
    return s.loc[account]


def test_lifecycle_states_are_in_the_parquet_and_csv(built: Built) -> None:
    for f in ("scores.parquet", "scores.csv"):
        path = built.result.out_dir / f
        s = (pd.read_parquet(path) if f.endswith("parquet") else pd.read_csv(path)).set_index(
            "account_id"
        )
        assert s.loc[LAPSED, "lifecycle"] == "lapsed"
        assert pd.isna(s.loc[LAPSED, "health"])  # no light for a lost account
        assert s.loc[LAPSED, "revenue_at_risk"] == 0
        assert 0 <= s.loc[LAPSED, "churn_probability"] <= 1  # still scored
        assert s.loc[NEW, "lifecycle"] == "new" and bool(s.loc[NEW, "low_confidence"])
        assert s.loc[NEW, "health"] in {"red", "yellow", "green"}
        assert s.loc[BIG, "lifecycle"] == "active" and bool(s.loc[BIG, "dependency_alert"])
        assert s.loc[BIG, "dependency_index"] > 0.4
        assert s.loc[BIG, "churn_definition"] == "no_order"


def test_no_lapsed_account_is_red_or_at_risk_and_red_stays_a_short_list(built: Built) -> None:
    s = built.result.scores
    lapsed = s["lifecycle"].eq("lapsed")
    assert lapsed.sum() > 10  # the demo has lost accounts
    assert s.loc[lapsed, "health"].isna().all() and (s.loc[lapsed, "revenue_at_risk"] == 0).all()
    red = s.loc[~lapsed, "health"].eq("red").mean()
    assert 0 < red <= 0.15 + 1e-9


def test_the_report_lists_lapsed_accounts_under_win_back_not_in_attention(built: Built) -> None:
    html = (built.result.out_dir / "report.html").read_text(encoding="utf-8")
    attention = html.split('id="attention"')[1].split("</section>")[0]
    win_back = html.split('id="winback"')[1].split("</section>")[0]
    assert NAMES[LAPSED] in win_back and NAMES[LAPSED] not in attention
    assert "no order for 300 days" in win_back
    # a first run reports no changes: nothing "turned red (new)"
    assert "turned red" not in attention and "First run" in attention
    dependency = html.split('id="dependency"')[1].split("</div>")[0]
    assert NAMES[BIG] in dependency and "new-customer development plan" in dependency
    assert "Herfindahl" in html and "top 5 accounts make" in html
    assert "red = the 10% of active and new accounts" in html


def test_the_light_by_tier_totals_add_up_to_the_accounts_still_to_keep(built: Built) -> None:
    """The table counts active and new accounts (its caption says so); its All row added up
    lapsed ones too, so Tier A + B + C fell short of the Total by the Win-back list."""
    import re

    s = built.result.scores
    html = (built.result.out_dir / "report.html").read_text(encoding="utf-8")
    foot = html.split('id="light-tier"')[1].split("<tfoot>")[1].split("</tfoot>")[0]
    counts = [int(c.replace(",", "")) for c in re.findall(r'<td class="n">([\d,]+)<small>', foot)]
    assert counts[-1] == sum(counts[:-1]) == int(s["lifecycle"].ne("lapsed").sum())
    assert counts[-1] < len(s)  # the built portfolio has lapsed accounts


def test_the_second_run_reports_changes_against_the_first(built: Built) -> None:
    s = built.second.scores
    lit = s["lifecycle"].ne("lapsed")
    assert s.loc[lit, "health_prev"].notna().mean() > 0.9
    html = (built.second.out_dir / "report.html").read_text(encoding="utf-8")
    assert "First run" not in html
    # the change is measured against what the first run reported (stored contributions)
    told = s[s["changes"].str.startswith("Risk")]
    assert len(told) > 0
    for text, d in zip(
        told["changes"],
        (told["churn_probability"] - told["churn_probability_prev"]) * 100,
        strict=True,
    ):
        n = f"{abs(d):.0f}"
        said = f"Risk {'up' if d >= 0 else 'down'} {n} pt{'' if n == '1' else 's'}"
        # unchanged: the usual text, or why the light moved anyway ("Risk unchanged at 2%, ...")
        assert text.startswith(said if round(abs(d)) else "Risk unchanged")
    first = built.result.scores
    assert (first["changes"] == "").all()  # a first run reports no changes


def test_the_spreadsheet_carries_stage_scorecard_and_the_alert(built: Built) -> None:
    wb = load_workbook(built.result.out_dir / "scores.xlsx", read_only=True)
    ws = wb["Accounts"] if "Accounts" in wb.sheetnames else wb.worksheets[1]
    rows = list(ws.iter_rows(values_only=True))
    header = list(rows[0])
    by_id = {r[header.index("Account ID")]: r for r in rows[1:]}
    assert by_id[BIG][header.index("Dependency alert")] == "yes"
    assert by_id[LAPSED][header.index("Stage")] == "lapsed"
    assert by_id[NEW][header.index("Low confidence")] == "yes"
    assert "Scorecard: Purchase rhythm" in header
    summary = {r[0]: r[1] for r in wb.worksheets[0].iter_rows(values_only=True) if r}
    assert summary["Dependency alerts"] >= 1


def test_the_owners_digest_names_the_dependency_and_the_win_back(built: Built) -> None:
    owners = built.result.out_dir / "owners"
    digest = next(p for p in owners.glob("*.digest.txt") if p.name.startswith("dora"))
    text = digest.read_text(encoding="utf-8")
    assert "DEPENDENCY ALERT (1)" in text and NAMES[BIG] in text
    assert "new-customer development plan" in text
    assert "WIN-BACK: LAPSED ACCOUNTS (1)" in text and NAMES[LAPSED] in text


def test_the_api_returns_the_alert_the_stage_and_the_scorecard(built: Built) -> None:
    from fastapi.testclient import TestClient

    from ka_ml.delivery.api import create_app

    client = TestClient(create_app(history_path(built.cfg)))
    big = client.get(f"/accounts/{BIG}").json()
    assert big["dependency_alert"] is True and big["lifecycle"] == "active"
    assert big["scorecard_purchase_rhythm"] in {"red", "yellow", "green"}
    gone = client.get(f"/accounts/{LAPSED}").json()
    assert gone["lifecycle"] == "lapsed" and gone["health"] is None
    page = client.get("/accounts", params={"lifecycle": "lapsed", "limit": 500}).json()
    assert LAPSED in {a["account_id"] for a in page["items"]}
    assert {a["lifecycle"] for a in page["items"]} == {"lapsed"}
    alerts = client.get("/accounts", params={"dependency_alert": True}).json()
    assert [a["account_id"] for a in alerts["items"]] == [BIG]
    assert np.isfinite(client.get("/portfolio").json()["summary"]["concentration"]["hhi"])


def test_outputs_folder_has_no_leftovers(built: Built) -> None:
    assert not [p for p in Path(built.result.out_dir).parent.iterdir() if ".staging." in p.name]
