"""Accounts merged into others: one relationship, one account.

A CRM keeps a merged account as a row of its own, marked with the account it went into
(``accounts.merged_into``, e.g. a ``parent_customer_no`` mapped in ``data.columns``). Left
apart, the merged account's history stops at the merge: the model learns a churn that did
not happen, the scorer calls it lapsed and Win-back lists it ("contract ended 302 days ago"
for an account whose value moved to its parent). So its rows of every table are counted as
the account it merged into, and it is not scored on its own.

:func:`merge_map` resolves the column into child -> surviving account (chains followed to
their end) and says what it could not use; the engines apply it (the local loader in
:func:`ka_ml.data.validate.validate_tables`, Spark in :func:`ka_ml.spark.data.read_history`).
"""

from __future__ import annotations

import pandas as pd

from ka_ml.errors import DataIssue

COLUMN = "merged_into"


def _quoted(pairs: list[tuple[str, str]]) -> tuple[str, ...]:
    return tuple(f"account_id={a!r}, merged_into={b!r}" for a, b in pairs[:5])


def merge_map(accounts: pd.DataFrame | None) -> tuple[dict[str, str], list[DataIssue]]:
    """({merged account: the account its history now counts as}, issues).

    Chains (A into B, B into C) end at C. A ``merged_into`` naming no account in the table
    is ignored with a warning (the account stays itself); a loop (A into B, B into A) is an
    error, since no account survives it. Blank values and an account naming itself mean
    not merged."""
    if accounts is None or COLUMN not in accounts or accounts.empty:
        return {}, []
    ids = accounts["account_id"].astype(str)
    into = accounts[COLUMN].astype("string").str.strip()
    marked = (into.notna() & (into != "") & (into != ids)).to_numpy()
    pairs = dict(zip(ids[marked], into[marked].astype(str), strict=True))
    if not pairs:
        return {}, []
    issues: list[DataIssue] = []
    known = set(ids)
    unknown = sorted((a, b) for a, b in pairs.items() if b not in known)
    if unknown:
        issues.append(
            DataIssue(
                "accounts",
                COLUMN,
                f"{len(unknown):,} {'account is' if len(unknown) == 1 else 'accounts are'} "
                "marked as merged into an account that is not in the accounts table: kept as "
                "their own accounts",
                "add the surviving accounts to the accounts table, or correct the ids in "
                f"{COLUMN}.",
                _quoted(unknown),
                len(unknown),
                level="warning",
            )
        )
        for a, _ in unknown:
            del pairs[a]
    resolved: dict[str, str] = {}
    loops: list[tuple[str, str]] = []
    for start in sorted(pairs):
        seen, at = [start], pairs[start]
        while at in pairs and at not in seen:
            seen.append(at)
            at = pairs[at]
        if at in seen:  # came back round: no account survives
            loops.append((start, pairs[start]))
        else:
            resolved[start] = at
    if loops:
        issues.append(
            DataIssue(
                "accounts",
                COLUMN,
                f"{len(loops):,} {'account is' if len(loops) == 1 else 'accounts are'} merged "
                "in a loop (A into B and B, directly or through others, into A): no account "
                "of the loop survives to carry their history",
                f"leave {COLUMN} empty on the account that survived the merge.",
                _quoted(loops),
                len(loops),
            )
        )
    return resolved, issues


def rekey(frame: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """``frame`` with every merged account's id replaced by the surviving one's."""
    if not mapping or frame.empty:
        return frame
    ids = frame["account_id"]
    hit = ids.astype(str).isin(mapping).to_numpy()
    if not hit.any():
        return frame
    out = frame.copy(deep=False)
    new = ids.astype(object).copy()
    new[hit] = ids[hit].astype(str).map(mapping).to_numpy()
    out["account_id"] = new.astype(ids.dtype)
    return out


def merged_note(mapping: dict[str, str]) -> DataIssue:
    """The note that says what the roll-up did (level info: nothing was wrong)."""
    pairs = sorted(mapping.items())
    n = len(pairs)
    return DataIssue(
        "accounts",
        COLUMN,
        f"{n:,} {'account was' if n == 1 else 'accounts were'} merged into others: "
        f"{'its' if n == 1 else 'their'} orders and every other table's rows count as the "
        "account they went into, and they are not scored on their own (no lapse, no "
        "Win-back entry)",
        f"nothing to do; leave {COLUMN} empty where an account should be judged apart.",
        _quoted(pairs),
        n,
        level="info",
    )
