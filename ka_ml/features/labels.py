"""Labels: did the account churn in the 90 days after a snapshot, and when did it next order.

Time is half-open. A snapshot at ``as_of`` = D has the label window W = [D, D + horizon).

Churn definitions (``labels.churn_definition``), per account:

- ``no_order``: no order dated in W. Reads orders in W only; a credit note or return
  (negative amount) is not an order, so a lost account's late refund does not "save" it.
- ``revenue_drop``: revenue in W < ``revenue_drop_fraction`` x revenue in [D - horizon, D);
  when that earlier revenue is not positive, churn = no positive revenue in W. Reads orders
  in [D - horizon, D + horizon) (the comparison period is part of the definition).
- ``contract``: the account's contracts lapse in W: no contract covers W's last day
  (D + horizon - 1, start <= day <= end) and no contract starts in W. An account without
  any contract counts as churned. Reads contracts started before W's end (known by then).
- ``auto`` (the product's definition): ``contract`` for accounts with a contract *around*
  the window - one that started before W's end and had not ended before D (running at D,
  or starting in W); ``no_order`` for the others (no contracts, or contracts that already
  lapsed before D). An account whose contract is already gone cannot "lapse" again:
  counting it as a churner at every later snapshot would reward the model for finding
  accounts that are already lost (on the demo data such rows were 40% of the positives).
  So: "within 90 days: contracts lapse, or no order where there are no contracts".

Timing: days from D to the first order (purchase row, not a credit) on/after D; orders on/after ``data_end`` are not
visible, so accounts without an observed next order are censored at ``data_end - D``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from ka_ml.config import Config, LabelsConfig
from ka_ml.data.history import History, is_purchase
from ka_ml.errors import ConfigError

DEFINITIONS = ("no_order", "contract", "revenue_drop")


def _ids(accounts: pd.Index | pd.Series | list[str]) -> pd.Index:
    return pd.Index(pd.Series(accounts, dtype="str").to_numpy(dtype=object), dtype=object)


def _orders_between(history: History, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    o = history.orders
    return o[(o["order_date"] >= start) & (o["order_date"] < end)]


def _purchases(orders: pd.DataFrame) -> pd.DataFrame:
    return orders[is_purchase(orders["amount"])]


def _revenue(orders: pd.DataFrame, ids: pd.Index) -> np.ndarray:
    rev = orders.groupby(orders["account_id"].astype(object), sort=False)["amount"].sum()
    return rev.reindex(ids).fillna(0.0).to_numpy(dtype=np.float64)


def churn_labels(
    history: History, as_of: pd.Timestamp, cfg: Config, accounts: pd.Index
) -> pd.DataFrame:
    """``account_id``, ``churn`` (0/1 int) and the ``churn_definition`` used, per account."""
    as_of = pd.Timestamp(as_of)
    horizon = pd.Timedelta(days=cfg.labels.horizon_days)
    end = as_of + horizon
    ids = _ids(accounts)
    definition = cfg.labels.churn_definition
    if definition == "contract" and history.contracts is None:
        raise ConfigError(
            "labels.churn_definition is 'contract' but the data has no contracts table.",
            "provide a contracts table or use churn_definition 'auto', 'no_order' or 'revenue_drop'.",
        )

    window = _orders_between(history, as_of, end)
    if definition == "revenue_drop":
        now = _revenue(window, ids)
        before = _revenue(_orders_between(history, as_of - horizon, as_of), ids)
        drop = np.where(before > 0, now < cfg.labels.revenue_drop_fraction * before, now <= 0)
        return _frame(ids, drop, np.full(len(ids), "revenue_drop", dtype=object))

    no_order = ~ids.isin(_purchases(window)["account_id"].astype(object))
    if definition == "no_order" or history.contracts is None:
        return _frame(ids, no_order, np.full(len(ids), "no_order", dtype=object))

    c = history.contracts
    known = c[c["start_date"] < end]
    last_day = end - pd.Timedelta(days=1)
    keeps = ((known["start_date"] <= last_day) & (known["end_date"] >= last_day)) | (
        known["start_date"] >= as_of
    )
    lapsed = ~ids.isin(known.loc[keeps, "account_id"].astype(object))
    if definition == "contract":
        return _frame(ids, lapsed, np.full(len(ids), "contract", dtype=object))

    around = known[known["end_date"] >= as_of]
    by_contract = ids.isin(around["account_id"].astype(object))
    churn = np.where(by_contract, lapsed, no_order)
    used = np.where(by_contract, "contract", "no_order").astype(object)
    return _frame(ids, churn, used)


class ContractEnds(NamedTuple):
    """How the accounts whose contracts ended stopped ordering (:func:`contract_end_silences`)."""

    ended: int  # accounts whose last contract ended before the as-of, no order since
    stopped_first: int  # of them, silent longer than the horizon when it ended
    median_silence: float  # days from their last order to that end, median over ``ended``


def contract_end_silences(
    history: History, as_of: pd.Timestamp, horizon_days: int
) -> ContractEnds | None:
    """Whether orders stop before contracts do, read from the contracts that ended before
    ``as_of``: of the accounts whose last contract ended then with no order since (a lost
    account, by its contract and by its orders), how many had already been silent longer
    than ``horizon_days`` at that end, and the median silence at the end. Where contracts
    bind orders most of them bought until the end (the demo: 32 of 97, median 42 days);
    a distributor's frame contracts ran on for months after its customers' last orders
    (87 of 104, median 204 days), which ``auto``, judging such accounts by the contract,
    sees only when the contract ends. None without contracts or such accounts. Orders and
    contracts known before ``as_of`` only."""
    c = history.contracts
    if c is None or c.empty:
        return None
    as_of = pd.Timestamp(as_of)
    known = c[c["start_date"] < as_of]
    last_end = known.groupby(known["account_id"].astype(object), sort=False)["end_date"].max()
    last_end = last_end[last_end < as_of]
    o = _purchases(history.orders[history.orders["order_date"] < as_of])
    o = o[o["account_id"].astype(object).isin(last_end.index)]
    if last_end.empty or o.empty:
        return None
    ids = o["account_id"].astype(object)
    end = ids.map(last_end)
    after = ids[(o["order_date"] > end).to_numpy()].unique()
    last_before = o["order_date"].where(o["order_date"] <= end).groupby(ids, sort=False).max()
    gone = last_before[~last_before.index.isin(after)].dropna()
    if gone.empty:
        return None
    silence = (last_end.reindex(gone.index) - gone).dt.days.to_numpy(float)
    return ContractEnds(len(gone), int((silence > horizon_days).sum()), float(np.median(silence)))


def orders_stop_first(labels: LabelsConfig, ends: ContractEnds | None) -> bool:
    """Whether ``auto`` judges every account by its orders on this data: more than
    ``labels.auto_orders_first_share`` of the accounts whose last contract ended with no order
    since (at least ``labels.auto_min_contract_ends`` of them) had stopped ordering over the
    horizon before it ended (:func:`contract_end_silences`). A distributor's frame contracts
    (87 of 104) and an electronics distributor's (151 of 202) ran on for months after the
    last order: judged by the contract, their key accounts scored 0.002 while they stopped
    buying. The demo's contracts bind orders (32 of 97): kept."""
    share = labels.auto_orders_first_share
    if labels.churn_definition != "auto" or share is None or ends is None:
        return False
    return ends.ended >= labels.auto_min_contract_ends and ends.stopped_first > share * ends.ended


ORDERS_FIRST = "orders_first"  # model card key / training metric: auto judged by orders


def judged_by_orders(cfg: Config) -> Config:
    """``cfg`` with ``labels.churn_definition: no_order``: what ``auto`` became where orders
    stop before contracts (:func:`orders_stop_first`), for the training that found it and for
    every run of the model it trained (scores, lights, backtest judge as it learnt)."""
    return cfg.model_copy(
        update={"labels": cfg.labels.model_copy(update={"churn_definition": "no_order"})}
    )


def orders_first_note(ends: ContractEnds, horizon_days: int) -> str:
    """What ``train`` says when ``auto`` judges every account by its orders."""
    return (
        f"labels.churn_definition auto judges every account by its orders (no_order): "
        f"{ends.stopped_first:,} of the {ends.ended:,} accounts whose last contract ended with "
        f"no order since had stopped ordering over {horizon_days} days before it ended (median "
        f"silence at the end {ends.median_silence:.0f} days), so on this data contracts do not "
        "bind orders and a loss shows in the orders months before the contract ends. To judge "
        "accounts with a running contract by its end anyway (licences, subscriptions billed "
        "once a term), set labels.auto_orders_first_share: null"
    )


def contract_rule_rows(X: pd.DataFrame) -> np.ndarray:
    """Feature rows whose churn the ``auto`` definition judges by their contract: one
    running at the as-of or ending on or after it (:func:`churn_labels`, with the contracts
    known at the as-of); the others by their orders."""
    n = len(X)
    nan = np.full(n, np.nan)
    to_end = X["contract_days_to_end"].to_numpy(float) if "contract_days_to_end" in X else nan
    active = X["has_active_contract"].to_numpy(float) if "has_active_contract" in X else nan
    return (np.nan_to_num(active) > 0) | (np.isfinite(to_end) & (to_end >= 0))


def _frame(ids: pd.Index, churn: np.ndarray, used: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": pd.array(ids.to_numpy(), dtype="str"),
            "churn": np.asarray(churn, dtype=bool).astype(np.int64),
            "churn_definition": pd.array(used, dtype="str"),
        }
    )


def timing_labels(
    history: History, as_of: pd.Timestamp, data_end: pd.Timestamp, accounts: pd.Index
) -> pd.DataFrame:
    """``days_to_next`` (first order on/after ``as_of``, or censoring time) and whether seen.

    Only orders in [as_of, data_end) are read: later ones are unknown at ``data_end``.
    """
    as_of, data_end = pd.Timestamp(as_of), pd.Timestamp(data_end)
    ids = _ids(accounts)
    seen = _purchases(_orders_between(history, as_of, data_end))
    first = seen.groupby(seen["account_id"].astype(object), sort=False)["order_date"].min()
    first = first.reindex(ids)
    observed = first.notna().to_numpy()
    censor = max((data_end - as_of).days, 0)
    waited = ((first - as_of).dt.days).to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.DataFrame(
        {
            "account_id": pd.array(ids.to_numpy(), dtype="str"),
            "days_to_next": np.where(observed, waited, float(censor)),
            "next_order_observed": observed,
        }
    )
