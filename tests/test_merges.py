"""Accounts merged into others (accounts.merged_into): one relationship, one account.

Seen on a software vendor's portfolio: an account merged into its parent stayed in the
Win-back list for 10 weeks ("contract ended 302 days ago"), its value already moved."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ka_ml.config import DataConfig
from ka_ml.data.loader import load_history
from ka_ml.data.merges import merge_map, rekey
from ka_ml.errors import DataValidationError


def _accounts(pairs: dict[str, str | None]) -> pd.DataFrame:
    return pd.DataFrame({"account_id": list(pairs), "merged_into": list(pairs.values())})


def test_chains_end_at_the_surviving_account_and_blanks_or_self_mean_not_merged() -> None:
    mapping, issues = merge_map(
        _accounts({"A": "B", "B": "C", "C": None, "D": " ", "E": "E", "F": " C "})
    )
    assert mapping == {"A": "C", "B": "C", "F": "C"}
    assert issues == []
    assert merge_map(None) == ({}, [])
    assert merge_map(pd.DataFrame({"account_id": ["A"]})) == ({}, [])


def test_an_unknown_target_is_ignored_with_a_warning_and_a_loop_is_an_error() -> None:
    mapping, issues = merge_map(_accounts({"A": "Z", "B": "C", "C": None}))
    assert mapping == {"B": "C"}
    (warn,) = issues
    assert warn.level == "warning" and warn.column == "merged_into"
    assert "not in the accounts table: kept as their own accounts" in warn.problem
    assert warn.examples == ("account_id='A', merged_into='Z'",)
    mapping, issues = merge_map(_accounts({"A": "B", "B": "A", "C": "A", "D": None}))
    (loop,) = issues
    assert loop.level == "error" and "loop" in loop.problem
    assert loop.remedy.startswith("leave merged_into empty on the account that survived")
    assert mapping == {}  # C ends in the loop too: nothing survives it


def test_rekey_replaces_only_the_merged_ids() -> None:
    frame = pd.DataFrame({"account_id": pd.Series(["A", "B", "C"], dtype="str"), "x": [1, 2, 3]})
    got = rekey(frame, {"A": "C"})
    assert got["account_id"].tolist() == ["C", "B", "C"] and got["x"].tolist() == [1, 2, 3]
    assert got["account_id"].dtype == frame["account_id"].dtype
    assert frame["account_id"].tolist() == ["A", "B", "C"]  # the input is left alone
    assert rekey(frame, {}) is frame


def _write(folder: Path) -> Path:
    folder.mkdir()
    pd.DataFrame(
        {
            "customer_no": ["P1", "C1", "X1"],
            "parent_customer_no": ["", "P1", ""],
        }
    ).to_csv(folder / "accounts.csv", index=False)
    pd.DataFrame(
        {
            "account_id": ["P1", "C1", "C1", "X1"],
            "order_date": ["2025-01-10", "2024-03-01", "2024-09-01", "2025-02-01"],
            "amount": [100.0, 50.0, 60.0, 10.0],
        }
    ).to_csv(folder / "orders.csv", index=False)
    pd.DataFrame(
        {
            "account_id": ["C1", "P1"],
            "start_date": ["2024-01-01", "2024-10-01"],
            "end_date": ["2024-09-30", "2026-09-30"],
        }
    ).to_csv(folder / "contracts.csv", index=False)
    return folder


def test_the_loader_counts_a_merged_accounts_rows_as_the_account_it_went_into(
    tmp_path: Path,
) -> None:
    folder = _write(tmp_path / "crm")
    cfg = DataConfig(
        columns={"accounts": {"account_id": "customer_no", "merged_into": "parent_customer_no"}}
    )
    h = load_history(folder, cfg)
    assert h.accounts["account_id"].tolist() == ["P1", "X1"]
    assert h.accounts_merged == 1  # `ka-ml validate` says so beside the accounts' rows
    assert h.orders["account_id"].tolist() == ["P1", "P1", "P1", "X1"]
    assert h.orders["order_date"].is_monotonic_increasing  # re-sorted within P1
    assert sorted(h.contracts["account_id"]) == ["P1", "P1"]
    # unmapped, the column is an extra one and nothing is merged
    plain = load_history(folder, DataConfig(columns={"accounts": {"account_id": "customer_no"}}))
    assert sorted(plain.accounts["account_id"]) == ["C1", "P1", "X1"]
    assert plain.accounts_merged == 0


def test_a_merge_loop_stops_the_load_naming_the_table_column_and_fix(tmp_path: Path) -> None:
    folder = _write(tmp_path / "crm")
    pd.DataFrame(
        {"customer_no": ["P1", "C1", "X1"], "parent_customer_no": ["C1", "P1", ""]}
    ).to_csv(folder / "accounts.csv", index=False)
    cfg = DataConfig(
        columns={"accounts": {"account_id": "customer_no", "merged_into": "parent_customer_no"}}
    )
    with pytest.raises(DataValidationError) as e:
        load_history(folder, cfg)
    text = str(e.value)
    assert "table 'accounts', column 'merged_into' ('parent_customer_no' in your data)" in text
    assert "Fix: leave merged_into empty on the account that survived the merge" in text
