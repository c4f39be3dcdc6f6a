"""The labelled snapshots split in time: rolling test origins, each with its own past.

:class:`Folds` holds the snapshots whose churn label is fully observed, the rolling origins
(:func:`ka_ml.modeling.split.rolling_origins`, purged by the horizon) and the pooled test rows;
:func:`censor_at` re-censors timing labels at a boundary, so a fit for an origin sees nothing
its date could not have known.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ka_ml.config import Config
from ka_ml.data.history import History
from ka_ml.errors import ModelError
from ka_ml.features.catalog import past_years, scorer_only
from ka_ml.modeling.split import Backtest, Origin, rolling_origins

KEY_COLUMNS = ("account_id", "as_of")


LABEL_COLUMNS = ("churn", "churn_definition", "days_to_next", "next_order_observed")

Progress = Callable[[str], None]


def account_groups(df: pd.DataFrame) -> np.ndarray:
    """One group per account (for splits that keep an account's snapshots together)."""
    return df["account_id"].astype("str").to_numpy()


def feature_columns(ts: pd.DataFrame) -> list[str]:
    """The model inputs of a snapshot table: every column but keys, labels, the features
    built only for the scorer's rules (:func:`ka_ml.features.catalog.scorer_only`), and the
    ones read from the same dates of past years (:func:`ka_ml.features.catalog.past_years`)
    when no snapshot reaches a year back: they would teach nothing, and a column LightGBM
    cannot split still moves which columns each tree samples (feature_fraction), so a
    history under a year would get other trees for a column it cannot have."""
    skip = {*KEY_COLUMNS, *LABEL_COLUMNS, *scorer_only()}
    empty = {c for c in past_years() if c in ts and not bool(ts[c].notna().any())}
    return [c for c in ts.columns if c not in skip | empty]


@dataclass(frozen=True)
class Folds:
    """The labelled snapshots, the test origins, and the pooled test rows. ``groups``: each
    labelled row's account group when the origins hold accounts out (a history shorter than
    the purge, :func:`ka_ml.modeling.split.grouped_origins`), else None."""

    split: Backtest
    labelled: pd.DataFrame
    test: pd.DataFrame  # every origin's test rows, pooled (in ``labelled`` order)
    groups: np.ndarray | None = None

    def test_fingerprint(self) -> str:
        """Content hash of the pooled test rows (account, date, labels): two training runs
        with the same one measured their procedures on the very same out-of-time rows, so
        their backtest figures compare (:mod:`ka_ml.training.tracking`'s gate)."""
        cols = ["account_id", "as_of", *(c for c in LABEL_COLUMNS if c in self.test.columns)]
        rows = pd.util.hash_pandas_object(self.test[cols], index=False).to_numpy()
        return hashlib.sha256(rows.tobytes() + ",".join(cols).encode()).hexdigest()[:16]

    def train_rows(self, origin: Origin) -> pd.DataFrame:
        return self.labelled[_origin_rows(self.labelled, self.groups, origin, tested=False)]

    def test_rows(self, origin: Origin) -> pd.DataFrame:
        return self.labelled[_origin_rows(self.labelled, self.groups, origin, tested=True)]


def _origin_rows(
    labelled: pd.DataFrame, groups: np.ndarray | None, origin: Origin, *, tested: bool
) -> pd.Series:
    """Which labelled rows an origin tests (its date; its account group when it holds
    accounts out) or trains on (its training dates; the other groups)."""
    dates = [origin.date] if tested else list(origin.train_dates)
    rows = labelled["as_of"].isin(dates)
    if origin.group is not None and groups is not None:
        rows &= (groups == origin.group) == tested
    return rows


def _purge(cfg: Config) -> int:
    return cfg.labels.horizon_days if cfg.tuning.purge_days is None else cfg.tuning.purge_days


def account_partition(accounts: pd.Series, k: int, seed: int) -> np.ndarray:
    """Each row's account group in ``0..k-1``: the accounts (sorted, so the same accounts
    give the same groups whatever the row order) dealt into ``k`` groups of near-equal size
    in a seeded random order."""
    ids = accounts.astype("str")
    unique = np.sort(ids.unique())
    group_of = np.empty(len(unique), dtype=np.int64)
    group_of[np.random.default_rng(seed).permutation(len(unique))] = np.arange(len(unique)) % k
    return group_of[np.searchsorted(unique, ids.to_numpy())]


def make_folds(ts: pd.DataFrame, cfg: Config) -> Folds:
    """Test origins over the snapshots whose churn label is fully observed: rolling in time,
    or holding accounts out when the history is shorter than the purge."""
    labelled = ts[ts["churn"].notna()].reset_index(drop=True)
    bt = rolling_origins(
        labelled["as_of"].unique(), purge_days=_purge(cfg), n_origins=cfg.tuning.backtest_origins
    )
    groups = (
        account_partition(labelled["account_id"], bt.account_groups, cfg.seed)
        if bt.grouped
        else None
    )
    tested = np.zeros(len(labelled), dtype=bool)
    for o in bt.origins:
        tested |= _origin_rows(labelled, groups, o, tested=True).to_numpy()
    return Folds(bt, labelled, labelled[tested].reset_index(drop=True), groups)


def check_labels(folds: Folds) -> None:
    """Refuse origins whose training or test rows hold a single churn class: nothing could
    be learned or measured."""
    for o in folds.split.origins:
        for where, df in (("training", folds.train_rows(o)), ("test", folds.test_rows(o))):
            y = df["churn"].to_numpy(float)
            n_pos = int(np.sum(y == 1))
            if n_pos == 0 or n_pos == len(y):
                kind = "no churners" if n_pos == 0 else "only churners"
                dates = sorted({str(pd.Timestamp(d).date()) for d in df["as_of"]})
                raise ModelError(
                    f"The {where} snapshots of the test origin {o.date.date()} "
                    f"({', '.join(dates) or 'none'}) contain {kind} ({len(y)} rows): a churn "
                    "model cannot be trained and tested.",
                    "use a longer history or more accounts, check labels.churn_definition and "
                    "labels.horizon_days against the data, or set a different --as-of.",
                )


def capped(rows: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    """``rows`` itself when it holds at most ``max_rows`` rows (or there is no cap), else a
    seeded uniform sample of ``max_rows`` of them in their original order: the same rows in,
    the same sample out, so fits of the same rows (a tuning trial and the backtest) agree.
    """
    if max_rows is None or len(rows) <= max_rows:
        return rows
    keep = np.random.default_rng(seed).choice(len(rows), size=max_rows, replace=False)
    return rows.iloc[np.sort(keep)]


@dataclass(frozen=True)
class AccountSample:
    """The history training learns from: every account, or a seeded sample of them."""

    history: History
    customers: int  # accounts with an order or a contract before the as-of date
    kept: int  # of them, the ones in ``history``


def sample_accounts(known: History, max_accounts: int | None, seed: int) -> AccountSample:
    """``known`` itself when at most ``max_accounts`` accounts have an order or a contract
    in it (or there is no cap), else only the rows of a seeded uniform sample of
    ``max_accounts`` of those accounts, in every table (an account with a running contract
    and no order is a snapshot row too; one with neither is none). The same history and
    seed give the same sample."""
    held = [known.orders["account_id"]]
    if known.contracts is not None:
        held.append(known.contracts["account_id"])
    ids = pd.Index(pd.unique(pd.concat(held, ignore_index=True))).sort_values()
    if max_accounts is None or len(ids) <= max_accounts:
        return AccountSample(known, len(ids), len(ids))
    keep = np.random.default_rng(seed).choice(len(ids), size=max_accounts, replace=False)
    return AccountSample(known.for_accounts(ids[np.sort(keep)]), len(ids), max_accounts)


def sampling_note(
    folds: Folds, timing_rows: int, cfg: Config, accounts: AccountSample | None = None
) -> str:
    """What the caps (``tuning.max_accounts``, ``max_churn_rows``, ``max_timing_rows``) do
    to this run's fits: '' when every fit uses every row of every account."""
    t = cfg.tuning
    parts = []
    if accounts is not None and accounts.kept < accounts.customers:
        parts.append(
            f"training learns from a seeded sample of {accounts.kept:,} of the "
            f"{accounts.customers:,} accounts with orders or contracts (tuning.max_accounts; "
            "scoring covers every account)"
        )
    n = len(folds.labelled)
    if t.max_churn_rows is not None and n > t.max_churn_rows:
        parts.append(
            f"churn fits use a seeded sample of at most {t.max_churn_rows:,} snapshot rows "
            f"(the final fit {t.max_churn_rows / n:.0%} of {n:,}; tuning.max_churn_rows)"
        )
    if t.max_timing_rows is not None and timing_rows > t.max_timing_rows:
        parts.append(
            f"purchase-timing fits at most {t.max_timing_rows:,} "
            f"(the final fit {t.max_timing_rows / timing_rows:.0%} of {timing_rows:,}; "
            "tuning.max_timing_rows)"
        )
    return "; ".join(parts)


def censor_at(df: pd.DataFrame, boundary: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Timing labels as they were known at ``boundary`` (re-censored, nothing later seen)."""
    limit = (pd.Timestamp(boundary) - df["as_of"]).dt.days.to_numpy(float)
    d = df["days_to_next"].to_numpy(float)
    e = df["next_order_observed"].to_numpy(bool)
    return np.minimum(d, limit), e & (d < limit)
