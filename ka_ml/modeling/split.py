"""Splitting snapshots in time, never at random: rolling test origins.

Snapshots are taken every few weeks while the churn label looks 90 days ahead, so the
label windows of neighbouring snapshots overlap. A naive "earlier snapshots train, later
ones test" split would let a training label see the test period, and trees recognise the
same accounts with their outcomes. Every test origin ``T`` is therefore *purged*: a snapshot
at ``s`` trains for ``T`` only when its label window ``[s, s + horizon)`` closed by ``T``.
The purge is never shorter than the horizon (the config refuses it).

    |---- train (s + horizon <= T) ----|  purge  |T: test origin 1|
    |---- train --------------------|  purge  |T': origin 2|     (each origin its own fit)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ka_ml.errors import ModelError


@dataclass(frozen=True)
class Origin:
    """One out-of-time test: the snapshot ``date``, trained on ``train_dates`` only."""

    date: pd.Timestamp
    train_dates: tuple[pd.Timestamp, ...]


@dataclass(frozen=True)
class Backtest:
    """Test origins (latest first) and the dates the final model is fitted on."""

    origins: tuple[Origin, ...]
    final_dates: tuple[pd.Timestamp, ...]
    purge_days: int
    wanted: int

    @property
    def note(self) -> str:
        """Empty when the history gave every origin asked for, else why not."""
        if len(self.origins) >= self.wanted:
            return ""
        return (
            f"only {len(self.origins)} of {self.wanted} test origins fit in this history with "
            f"a {self.purge_days}-day purge: the estimate rests on fewer out-of-time rows"
        )

    def describe(self) -> dict[str, str]:
        def span(d: tuple[pd.Timestamp, ...]) -> str:
            return f"{min(d).date()}..{max(d).date()} ({len(d)} snapshots)" if d else "none"

        steps = {(b - a).days for a, b in zip(self.final_dates, self.final_dates[1:], strict=False)}
        return {
            "every": f"{min(steps)} days" if steps else "-",
            "train": span(self.final_dates),
            "test": ", ".join(str(o.date.date()) for o in self.origins)
            + f" ({len(self.origins)} origins)",
            "purge": f"{self.purge_days} days",
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
    short (``Backtest.note`` says so); none at all is an error with the remedy.
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
        first = f"{dates[0].date()}..{dates[-1].date()}" if dates else "none"
        raise ModelError(
            f"No out-of-time test is possible: the fully labelled snapshots ({first}, "
            f"{len(dates)} dates) do not span the {purge_days}-day purge between a training "
            "snapshot and a later test snapshot.",
            "provide a longer history (at least twice the churn horizon of orders before "
            "--as-of), a later --as-of, or a shorter labels.horizon_days.",
        )
    return Backtest(tuple(origins), tuple(dates), purge_days, n_origins)
