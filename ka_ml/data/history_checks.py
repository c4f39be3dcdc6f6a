"""The whole-history checks: rows of the orders (or contracts) compared with each other.

Pure (no I/O). :mod:`ka_ml.data.validate` runs these on the assembled History, after merged
accounts are rolled up, and collects their warnings with the per-table issues. They read
many rows at once, not one cell or one row: credit notes larger than all an account bought
(:func:`credits_over_spend`), a lasting jump in the order amounts' level, i.e. a change of
units (:func:`amount_scale`, :func:`amount_scale_break`), order lines posted twice and order
ids under several accounts (:func:`order_id_issues`), and contracts marked renewed while
still running (:func:`renewed_while_running`). The Spark reader (:mod:`ka_ml.spark.data`)
finds the same with Spark and words it with the texts and helpers here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ka_ml.data.history import History
from ka_ml.data.rowkey import hash_codes, row_key
from ka_ml.data.table import show_cell
from ka_ml.errors import DataIssue


def credits_over_spend(history: History) -> list[DataIssue]:
    """A warning naming credit notes larger than all the account ever bought.

    A credit note subtracts from spend; one that outweighs every purchase on record makes
    the account's revenue negative (a -99,999,999 credit on an account with 135k of orders:
    revenue -99,984,242, tier C, no word anywhere), usually a wrong sign or scale."""
    o = history.orders
    amount = o["amount"].to_numpy(float)
    credit = amount < 0
    if not credit.any():
        return []
    codes, words = hash_codes(o["account_id"])  # no object copy of 10^7 ids
    credits = np.bincount(codes, weights=np.where(credit, -amount, 0.0), minlength=len(words))
    bought = np.bincount(codes, weights=np.where(amount > 0, amount, 0.0), minlength=len(words))
    over = credits > bought
    if not over.any():
        return []
    at = np.flatnonzero(over[codes] & credit)
    top = at[np.argsort(amount[at], kind="stable")[:3]]  # the three largest credits
    rows = o.iloc[top]
    examples = order_examples(rows, dict(zip(rows["account_id"], bought[codes[top]], strict=True)))
    return [credits_over_spend_issue(int(over.sum()), len(at), examples)]


def order_examples(
    rows: pd.DataFrame, bought: Mapping[Any, float] | None = None
) -> tuple[str, ...]:
    """Order rows as a warning's examples: account, day and amount, and with ``bought``
    (per account) all the account bought; both engines write them so."""
    lines = []
    for a, d, x in zip(
        rows["account_id"].astype(object),
        rows["order_date"].to_numpy(),
        rows["amount"].to_numpy(float),
        strict=True,
    ):
        line = f"account_id={show_cell(a)}, order_date={pd.Timestamp(d).date()}, amount={x:,.2f}"
        if bought is not None:
            line += f" (bought {float(bought.get(a, 0.0)):,.2f} in all)"
        lines.append(line)
    return tuple(lines)


SCALE_JUMP = 20.0
"""Order amounts whose level moves this many times (or to this fraction) from one month to
the next, and stays there, changed units (cents, thousands), not business: a price rise is
a few percent, a new segment a few times."""
SCALE_MIN_ROWS = 30  # order lines a month needs for its level to count


@dataclass(frozen=True)
class ScaleBreak:
    """Where the order amounts' level jumps: the first day at the new level, the levels
    (median amount per order line) before and after, and the order lines from it on."""

    day: pd.Timestamp
    before: float
    after: float
    rows: int


def amount_scale_break(days: pd.DataFrame) -> ScaleBreak | None:
    """The first lasting jump of :data:`SCALE_JUMP` in the order amounts' level, or None.

    ``days``: per order day, ``rows`` (positive amounts) and ``log_median`` (the lower
    median of those amounts' base-10 logarithms): what both engines aggregate. A month's
    level is the row-weighted median of its days'; a jump between months with
    :data:`SCALE_MIN_ROWS` lines each (or across one month, when it fell mid-month) counts
    when the months after it, together, stay that far from the months before. The day is
    where a split of those months fits the two levels best (a user's new ERP sent
    cents from 1 September: validate said "valid", and 50 of 94 reds read "Spend in the last
    30 days: 5,322,759 EUR")."""
    if days.empty:
        return None
    d = days.sort_values("day").reset_index(drop=True)
    month = d["day"].dt.to_period("M")

    def level(rows: pd.DataFrame) -> float:
        order = rows.sort_values("log_median")
        cum = order["rows"].cumsum().to_numpy()
        return float(order["log_median"].to_numpy()[np.searchsorted(cum, cum[-1] / 2.0)])

    months = [g for _, g in d.groupby(month, sort=True) if g["rows"].sum() >= SCALE_MIN_ROWS]
    jump = np.log10(SCALE_JUMP)
    for k in range(1, len(months)):
        # the month before, or the one before that when the jump fell mid-month (that
        # month's level then lies between the two and neither step reaches the factor)
        for gap in (1, 2)[: min(k, 2)]:
            if abs(level(months[k]) - level(months[k - gap])) < jump:
                continue
            lb = level(pd.concat(months[: k - gap + 1]))
            la = level(pd.concat(months[k:]))
            if abs(la - lb) < jump:
                continue
            window = pd.concat(months[k - gap : k + 1])
            w, lm = window["rows"].to_numpy(float), window["log_median"].to_numpy(float)
            cost_b = np.concatenate([[0.0], np.cumsum(w * np.abs(lm - lb))])
            cost_a = np.concatenate([np.cumsum((w * np.abs(lm - la))[::-1])[::-1], [0.0]])
            split = int(np.argmin(cost_b[:-1] + cost_a[:-1]))  # at least one day after
            day = pd.Timestamp(window["day"].iloc[split])
            rows = int(d.loc[d["day"] >= day, "rows"].sum())
            return ScaleBreak(day, float(10**lb), float(10**la), rows)
    return None


def order_amount_days(orders: pd.DataFrame) -> pd.DataFrame:
    """:func:`amount_scale_break`'s input from an orders frame.

    The lower median of a day's positive amounts (an amount of the day, as Spark's
    percentile_approx gives it; its logarithm is the logarithm's lower median) by one
    radix sort of the rows by day and a partition of each day: pandas' groupby quantile
    took 0.5 GB on top of the loaded history at 100k accounts (4.8M order lines), the
    peak of the whole load."""
    amount = orders["amount"].to_numpy(float)
    pos = amount > 0
    if not pos.any():
        return pd.DataFrame(
            {"day": pd.Series(dtype="datetime64[us]"), "rows": [], "log_median": []}
        )
    day = orders["order_date"].to_numpy("datetime64[D]").view(np.int64)[pos]
    first = int(day.min())
    span = day - first
    if int(span.max()) < 2**16:
        span = span.astype(np.uint16)  # NumPy sorts 16-bit integers by radix
    by_day = amount[pos][np.argsort(span, kind="stable")]
    rows = np.bincount(span)
    has = np.flatnonzero(rows)
    ends = np.cumsum(rows[has])
    starts = ends - rows[has]
    median = np.fromiter(
        (
            np.partition(by_day[s:e], (e - s - 1) // 2)[(e - s - 1) // 2]
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
        ),
        dtype=float,
        count=len(has),
    )
    return pd.DataFrame(
        {
            "day": (has + first).astype("datetime64[D]").astype("datetime64[us]"),
            "rows": rows[has],
            "log_median": np.log10(median),
        }
    )


def amount_scale_issue(found: ScaleBreak, examples: tuple[str, ...]) -> DataIssue:
    """The warning of a :class:`ScaleBreak` (both engines say the same)."""
    ratio = found.after / found.before
    up = ratio >= 1
    factor = ratio if up else 1 / ratio
    power = 10 ** round(np.log10(factor))
    near = abs(factor / power - 1) < 0.2  # 100 times, not 97
    said = f"{power:,.0f}" if near else f"{factor:,.0f}"
    how = f"about {said} times" if up else f"about 1/{said} of"
    return DataIssue(
        "orders",
        "amount",
        f"order amounts from {found.day.date()} on are {how} those before (median per "
        f"order line {found.after:,.2f} against {found.before:,.2f}): a change of units in "
        "the export (cents, thousands)? Spend, revenue shares, tiers and revenue at risk read "
        "them as they are, and the models see customers whose spend leapt",
        "export every order in one unit (restate the amounts on one side of that day), or "
        "correct the export; nothing to do if the business really changed this much.",
        examples=examples,
        n_rows=found.rows,
        level="warning",
    )


def amount_scale(history: History) -> list[DataIssue]:
    """:func:`amount_scale_issue` of the orders, with three lines from the jump's day on."""
    o = history.orders
    if o.empty or "amount" not in o:
        return []
    found = amount_scale_break(order_amount_days(o))
    if found is None:
        return []
    rows = o[(o["order_date"] >= found.day) & (o["amount"] > 0)].nsmallest(3, "order_date")
    return [amount_scale_issue(found, order_examples(rows))]


def credits_over_spend_issue(accounts: int, rows: int, examples: tuple[str, ...]) -> DataIssue:
    """The warning of :func:`credits_over_spend` (the Spark engine finds the same)."""
    return DataIssue(
        "orders",
        "amount",
        f"{accounts:,} {'account has' if accounts == 1 else 'accounts have'} credit "
        "notes (negative amounts) larger than everything bought in the data: revenue "
        "below zero",
        "check the sign and scale of these credit notes (a return entered as a sale of "
        "minus the price, cents read as units?); correct or remove them.",
        examples=examples,
        n_rows=rows,
        level="warning",
    )


# what makes two order rows the same line of the same order, but for the day
ORDER_LINE = ("account_id", "order_id", "product", "quantity", "amount")


def order_id_issues(orders: pd.DataFrame) -> list[DataIssue]:
    """Warnings on order ids that say a row was posted twice or to the wrong customer (the
    rows are kept: only the user can tell). A distributor's ERP export held 100 order lines
    posted again a day later under the same document number, and 30 document numbers
    re-booked for another customer; both passed without a word, the first inflating
    revenue, tiers and order values. Exact repeats (the day included) are dropped earlier.

    - the same line of an order (account, order_id, product, quantity, amount) dated after
      its first day: a double posting counts the amount twice;
    - an order id under more than one account (after merges are rolled up).

    One hash encoding of the ids and one integer sort (0.7 s for 4.8M rows); the lines are
    compared only where an account's order id spans several days."""
    if "order_id" not in orders or orders.empty or not orders["order_id"].notna().any():
        return []
    known = orders["order_id"].notna().to_numpy()
    o = orders if known.all() else orders[known]  # no copy of every column when all are
    idc = hash_codes(o["order_id"])[0]
    acc = hash_codes(o["account_id"])[0]
    radix = int(acc.max()) + 1
    pair = idc * radix + acc
    del acc  # temporaries go as soon as they are used: this ran at the load's peak memory
    order = np.argsort(pair)  # ties in any order: only neighbours are compared
    p = pair[order]
    del pair
    same_pair = p[1:] == p[:-1]
    d = o["order_date"].to_numpy("datetime64[D]").view(np.int64)[order]
    multi_day = same_pair & (d[1:] != d[:-1])
    del d
    out: list[DataIssue] = []
    # an account's order id on more than one day: its lines are compared
    spans = np.unique(p[1:][multi_day])
    if len(spans):
        rows = o.iloc[np.sort(order[np.isin(p, spans)])].reset_index(drop=True)
        later, first = _later_lines(rows)
        if later.any():
            keys = [*(c for c in ORDER_LINE if c in rows), "order_date"]
            shown = rows[later].sort_values(keys, kind="stable").index[:3]  # positions
            dates = rows["order_date"].to_numpy("datetime64[D]")
            amounts = rows["amount"].to_numpy(float)
            out.append(
                lines_posted_twice_issue(
                    int(later.sum()),
                    tuple(
                        f"account_id={show_cell(rows.at[k, 'account_id'])}, "
                        f"order_id={show_cell(rows.at[k, 'order_id'])}, order_date="
                        f"{dates[k]} (first {first[k]}), amount={amounts[k]:,.2f}"
                        for k in shown
                    ),
                )
            )
    i = p // radix  # the order id codes in pair order
    cross = (i[1:] == i[:-1]) & ~same_pair  # one id, another account
    if cross.any():
        codes = np.unique(i[1:][cross])
        shared = np.isin(idc, codes)
        ids = o["order_id"][shared]
        first_ids = np.sort(ids.drop_duplicates().to_numpy(dtype=object))[:3]
        firsts = (
            o[o["order_id"].isin(first_ids).to_numpy()]
            .sort_values(["order_id", "account_id", "order_date"], kind="stable")
            .drop_duplicates(["order_id", "account_id"])  # each account of an id, once
        )
        out.append(
            order_ids_shared_issue(
                len(codes),
                int(shared.sum()),
                tuple(
                    f"order_id={show_cell(i)}, account_id={show_cell(a)}, "
                    f"order_date={pd.Timestamp(t).date()}"
                    for i, a, t in zip(
                        firsts["order_id"].head(3),
                        firsts["account_id"].head(3),
                        firsts["order_date"].head(3),
                        strict=True,
                    )
                ),
            )
        )
    return out


def _later_lines(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per row, whether it repeats a line of its order (:data:`ORDER_LINE`) dated earlier,
    and the first day of its line (datetime64[D])."""
    line = row_key(rows, [c for c in ORDER_LINE if c in rows.columns])
    day = rows["order_date"].to_numpy("datetime64[D]").view(np.int64)
    first = pd.Series(day).groupby(line).transform("min").to_numpy()
    return day > first, first.view("datetime64[D]")


def lines_posted_twice_issue(rows: int, examples: tuple[str, ...]) -> DataIssue:
    """The warning of :func:`order_id_issues` on lines posted again (both engines)."""
    return DataIssue(
        "orders",
        "order_id",
        f"{rows:,} order {'line repeats' if rows == 1 else 'lines repeat'} a line of the same "
        "order on a later day (same account_id, order_id, product, quantity and amount): a "
        "double posting counts its amount twice in revenue, tiers and order values",
        "remove the repeated postings, keeping each line once; nothing to do if these orders "
        "were delivered and dated in equal parts on several days.",
        examples=examples,
        n_rows=rows,
        level="warning",
    )


def order_ids_shared_issue(ids: int, rows: int, examples: tuple[str, ...]) -> DataIssue:
    """The warning of :func:`order_id_issues` on ids under several accounts (both engines)."""
    return DataIssue(
        "orders",
        "order_id",
        f"{ids:,} order {'id appears' if ids == 1 else 'ids appear'} under more than one "
        "account: an order belongs to one customer",
        "correct account_id where rows were booked to the wrong customer; if your order "
        "numbers restart (per company or per year), make order_id unique, e.g. prefixed with "
        "the company code (each account's orders are counted apart, so nothing else changes).",
        examples=examples,
        n_rows=rows,
        level="warning",
    )


def renewed_while_running(history: History) -> list[DataIssue]:
    """A warning when contracts running at the newest order, with no later term of theirs
    in the table, are marked ``renewed``.

    The models never read ``renewed``: it says a follow-on contract was signed, which for a
    contract ending before an as-of date would tell the future. Marked on a contract still
    running, it usually means an auto-renewal term, and "Contract ends in 1 day" reasons then
    read wrong to a user who mapped it (read on a CRM export's "Auto Renewal: Yes")."""
    c = history.contracts
    if c is None or "renewed" not in c or history.orders.empty:
        return []
    newest = pd.Timestamp(history.orders["order_date"].max())
    running = (c["start_date"] <= newest) & (c["end_date"] >= newest)
    # a term with a later term of the same account in the table: the renewal is on record
    # (a user's 54 signed terms starting next January were counted as "still running" and
    # their accounts said to be scored as if the contract ended; they were not)
    latest_start = c.groupby("account_id", sort=False)["start_date"].transform("max")
    followed = latest_start > c["start_date"]
    flagged = (
        c["renewed"].astype("boolean").fillna(False).to_numpy(bool)
        & running.to_numpy(bool)
        & ~followed.to_numpy(bool)
    )
    if not flagged.any():
        return []
    rows = c.loc[flagged]
    examples = tuple(
        f"account_id={show_cell(a)}, end_date={pd.Timestamp(e).date()}"
        for a, e in zip(rows["account_id"].head(3), rows["end_date"].head(3), strict=True)
    )
    return [
        DataIssue(
            "contracts",
            "renewed",
            f"{int(flagged.sum()):,} contracts running at the newest order "
            f"({newest.date()}) with no later term in the table are marked renewed: the "
            "models do not read 'renewed' (it would "
            "tell whether a contract ending before a scoring date was followed by another), "
            "so these accounts are scored as if their contract ended on end_date",
            "if 'renewed' means an auto-renewal term, export the renewed term as a contract "
            "row of its own (or its end date as end_date); nothing to do if it records a "
            "renewal already signed (that next contract's row then follows).",
            examples=examples,
            n_rows=int(flagged.sum()),
            level="warning",
        )
    ]
