"""Splitting snapshots in time, never at random: rolling test origins.

Snapshots are taken every few weeks while the churn label looks 90 days ahead, so the
label windows of neighbouring snapshots overlap. A naive "earlier snapshots train, later
ones test" split would let a training label see the test period, and trees recognise the
same accounts with their outcomes. Every test origin ``T`` is therefore *purged*: a snapshot
at ``s`` trains for ``T`` only when its label window ``[s, s + horizon)`` closed by ``T``.
The purge is never shorter than the horizon (the config refuses it).

    |---- train (s + horizon <= T) ----|  purge  |T: test origin 1|
    |---- train --------------------|  purge  |T': origin 2|     (each origin its own fit)

A history whose labelled snapshots span less than the purge has no such test. Rather than
shorten the purge, the origins then hold *accounts* out (issue 13, point 8): origin ``k`` tests
the ``k``-th account group at its date and trains on the other groups' snapshots up to that
date, so no account is ever in a test and in a training window at once. That estimate is
in time (it cannot see the population move) and the note says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ka_ml.errors import ModelError
from ka_ml.features.catalog import plural


@dataclass(frozen=True)
class Origin:
    """One test: the snapshot ``date``, trained on ``train_dates`` only. ``group``: None for
    an out-of-time origin; else the account group it tests (at ``date``), whose snapshots its
    training leaves out (a history too short for the purge)."""

    date: pd.Timestamp
    train_dates: tuple[pd.Timestamp, ...]
    group: int | None = None


@dataclass(frozen=True)
class Backtest:
    """Test origins (latest first) and the dates the final model is fitted on."""

    origins: tuple[Origin, ...]
    final_dates: tuple[pd.Timestamp, ...]
    purge_days: int
    wanted: int

    @property
    def grouped(self) -> bool:
        """The origins hold accounts out instead of time (the history is shorter than the
        purge)."""
        return any(o.group is not None for o in self.origins)

    @property
    def account_groups(self) -> int:
        """How many account groups held-out origins deal the accounts into: one per origin,
        and never fewer than two (a single group would leave the origin nothing to train
        on); 0 for out-of-time origins."""
        return max(len(self.origins), 2) if self.grouped else 0

    @property
    def note(self) -> str:
        """Empty when the history gave every out-of-time origin asked for, else why not."""
        if self.grouped:
            span = (max(self.final_dates) - min(self.final_dates)).days
            return (
                f"the labelled snapshots span {span} days, less than the {self.purge_days}-day "
                "purge: no out-of-time test fits in this history, so each of the "
                f"{len(self.origins)} origin(s) tests 1 of {self.account_groups} account groups, "
                "held out of its training: an in-time estimate that cannot see the population "
                "change over time (a longer history gives out-of-time origins)"
            )
        if len(self.origins) >= self.wanted:
            return ""
        return (
            f"only {len(self.origins)} of {self.wanted} test origins fit in this history with "
            f"a {self.purge_days}-day purge: the estimate rests on fewer out-of-time rows"
        )

    def describe(self) -> dict[str, str]:
        """every (cadence), train (the final fit's snapshots: every labelled date, the test
        origins included), test (the origins), purge; :func:`describe_line` words it."""

        def span(d: tuple[pd.Timestamp, ...]) -> str:
            return f"{min(d).date()}..{max(d).date()} ({len(d)} snapshots)" if d else "none"

        steps = {(b - a).days for a, b in zip(self.final_dates, self.final_dates[1:], strict=False)}
        return {
            "every": f"{min(steps)} days" if steps else "-",
            "train": span(self.final_dates),
            "test": ", ".join(str(o.date.date()) for o in self.origins)
            + f" ({len(self.origins)} {plural(len(self.origins), 'origin')})",
            "purge": "none: accounts held out" if self.grouped else f"{self.purge_days} days",
        }


def rolling_origins(
    labelled_dates: list[pd.Timestamp] | np.ndarray | pd.DatetimeIndex,
    *,
    purge_days: int,
    n_origins: int,
    min_train_snapshots: int = 1,
) -> Backtest:
    """The latest ``n_origins`` labelled snapshot dates that have training data before them.

    An origin at ``T`` trains on the labelled snapshots ``s`` with ``s + purge <= T``: no
    training label window reaches into the test window of the same accounts. The final
    model is fitted on every labelled date. Fewer origins than asked when the history is
    short (``Backtest.note`` says so); none at all: account-grouped origins
    (:func:`grouped_origins`); fewer than two labelled dates is an error with the remedy.
    """
    dates = sorted(pd.Timestamp(d) for d in pd.unique(pd.DatetimeIndex(labelled_dates)))
    gap = pd.Timedelta(days=purge_days)
    origins: list[Origin] = []
    for t in reversed(dates):
        if len(origins) == n_origins:
            break
        train = tuple(d for d in dates if d + gap <= t)
        if len(train) >= min_train_snapshots:
            origins.append(Origin(t, train))
    if not origins:
        origins = grouped_origins(dates, n_origins)
    if not origins:
        seen = ", ".join(str(d.date()) for d in dates) or "none"
        raise ModelError(
            f"No test is possible: {len(dates)} fully labelled snapshot date(s) ({seen}); "
            "training needs two, and the history is too short for an out-of-time test with the "
            f"{purge_days}-day purge.",
            "provide a longer history (the churn horizon plus a few snapshot steps of orders "
            "before --as-of; twice the horizon for out-of-time origins), a later --as-of, or a "
            "shorter labels.horizon_days.",
        )
    return Backtest(tuple(origins), tuple(dates), purge_days, n_origins)


def grouped_origins(dates: list[pd.Timestamp], n_origins: int) -> list[Origin]:
    """Account-grouped origins for a history too short for the purge: the latest
    ``n_origins`` labelled dates that have an earlier one (the timing model learns from
    snapshots before its origin), origin ``k`` testing account group ``k`` and trained on
    every labelled date up to its own. None when fewer than two dates are labelled."""
    usable = dates[1:][::-1][:n_origins]
    return [Origin(t, tuple(d for d in dates if d <= t), group=k) for k, t in enumerate(usable)]


def describe_line(split: dict[str, str]) -> str:
    """:meth:`Backtest.describe` in one readable line."""
    words = {
        "every": "snapshots every {}",
        "train": "final fit on {} (the test origins included)",
        "test": "test origins {}",
        "purge": "purge {}",
    }
    return "; ".join(words.get(k, k + " {}").format(v) for k, v in split.items())
