"""Small Histories built in code, typed like the loader's output (see ka_ml/data/history.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.data.schema import SCHEMA

Rows = Iterable[Mapping[str, Any]] | pd.DataFrame | None


def typed(table: str, rows: Rows) -> pd.DataFrame | None:
    """A frame with the contract's dtypes: ids str, dates datetime64[us], floats float64."""
    if rows is None:
        return None
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    spec = SCHEMA[table]
    if df.empty and len(df.columns) == 0:  # no rows given: every contract column, typed
        df = pd.DataFrame({c.name: pd.Series(dtype=object) for c in spec.columns})
    for col in df.columns:
        kind = spec.kind(col)
        if kind in ("id", "str"):
            df[col] = df[col].astype("str").where(df[col].notna(), None).astype("str")
        elif kind == "date":
            df[col] = pd.to_datetime(df[col]).astype("datetime64[us]")
        elif kind == "float":
            df[col] = df[col].astype("float64")
        elif kind == "bool":
            na = df[col].isna().any()
            df[col] = df[col].astype("boolean") if na else df[col].astype(bool)
    return df.reset_index(drop=True)


def make_history(
    orders: Rows,
    accounts: Rows = None,
    usage: Rows = None,
    tickets: Rows = None,
    surveys: Rows = None,
    contracts: Rows = None,
) -> History:
    """A History from row dicts; accounts default to the order/contract accounts."""
    o = typed("orders", orders)
    assert o is not None
    c = typed("contracts", contracts)
    if accounts is None:
        ids = set(o["account_id"])
        if c is not None:
            ids |= set(c["account_id"])
        accounts = [{"account_id": a} for a in sorted(ids)]
    acc = typed("accounts", accounts)
    assert acc is not None
    return History(
        orders=o,
        accounts=acc,
        usage=typed("usage", usage),
        tickets=typed("tickets", tickets),
        surveys=typed("surveys", surveys),
        contracts=c,
        source="test",
    )


def config(**sections: Mapping[str, Any]) -> Config:
    """A default Config with some sections overridden: ``config(labels={"horizon_days": 30})``."""
    base = Config().model_dump()
    for name, values in sections.items():
        base[name] = {**base[name], **values}
    return Config.model_validate(base)


def demo_in_cents(demo_dir: Path, folder: Path, from_day: str) -> Path:
    """A copy of the demo CSVs whose order amounts are in cents from ``from_day`` on (a new
    ERP's export, u31)."""
    shutil.copytree(demo_dir, folder)
    orders = pd.read_csv(folder / "orders.csv")
    late = orders["order_date"] >= from_day
    orders.loc[late, "amount"] = orders.loc[late, "amount"] * 100
    orders.to_csv(folder / "orders.csv", index=False)
    return folder


def write_ticket_types(folder: Path) -> dict[str, dict[str, str]]:
    """Two orders and three tickets whose type column says Complaint / question / QUESTION;
    the column remap that reads it as is_complaint."""
    pd.DataFrame(
        {"account_id": ["A1", "A2"], "order_date": ["2024-01-02", "2024-01-03"], "amount": [1, 2]}
    ).to_csv(folder / "orders.csv", index=False)
    pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A1"],
            "opened_at": ["2024-01-05", "2024-01-06", "2024-01-07"],
            "type": ["Complaint", "question", "QUESTION"],
        }
    ).to_csv(folder / "tickets.csv", index=False)
    return {"tickets": {"is_complaint": "type"}}
