"""Splitting snapshots in time, never at random.

``rolling_origins`` is what ``train`` uses: several test origins, each with the snapshots
whose whole label window closed before it (the purge is the horizon, never shorter).
``time_split`` and ``cv_folds`` are the older single split and its inner folds.

Snapshots are taken every few weeks while the churn label looks 90 days ahead, so the
label windows of neighbouring snapshots overlap. A naive "earlier snapshots train, later
ones test" split would let a training label see the test period. Every fold boundary is
therefore *purged*: a snapshot at ``s`` may sit in a fold that ends at ``b`` only when its
label window ``[s, s + horizon)`` closes by ``b``.

    |---- train ----|  purge  |-- calibration --|  purge  |-- test --|
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ka_ml.errors import ModelError


@dataclass(frozen=True)
class TimeSplit:
    train_dates: tuple[pd.Timestamp, ...]
    calibration_dates: tuple[pd.Timestamp, ...]
    test_dates: tuple[pd.Timestamp, ...]
    horizon_days: int

    @property
    def calibration_start(self) -> pd.Timestamp:
        return min(self.calibration_dates)

    @property
    def test_start(self) -> pd.Timestamp:
        return min(self.test_dates)

    def describe(self) -> dict[str, str]:
        def span(d: tuple[pd.Timestamp, ...]) -> str:
            return f"{min(d).date()}..{max(d).date()} ({len(d)} snapshots)"

        return {
            "train": span(self.train_dates),
            "calibration": span(self.calibration_dates),
            "test": span(self.test_dates),
        }


def _purged_before(
    dates: list[pd.Timestamp], boundary: pd.Timestamp, horizon: pd.Timedelta
) -> list:
    # strictly before the boundary even with no purge: a fold never shares a date with the next
    return [d for d in dates if d < boundary and d + horizon <= boundary]


def time_split(
    snapshot_dates: list[pd.Timestamp] | np.ndarray | pd.DatetimeIndex,
    *,
    horizon_days: int,
    test_snapshots: int = 1,
    calibration_snapshots: int = 2,
    min_train_snapshots: int = 2,
    purge_days: int | None = None,
) -> TimeSplit:
    """Latest labelled snapshots test, the ones before calibrate, earlier ones train (purged).

    ``snapshot_dates`` are the dates whose churn label is fully observed.
    """
    dates = sorted(pd.Timestamp(d) for d in pd.unique(pd.DatetimeIndex(snapshot_dates)))
    h = pd.Timedelta(days=horizon_days if purge_days is None else purge_days)
    need = test_snapshots + calibration_snapshots + min_train_snapshots
    if len(dates) < need:
        raise ModelError(
            f"Only {len(dates)} fully labelled snapshots; training needs at least {need} "
            f"(test {test_snapshots}, calibration {calibration_snapshots}, train "
            f"{min_train_snapshots}) plus a {horizon_days}-day purge between folds.",
            "provide a longer history, lower features.snapshot_every_days, or set a later --as-of.",
        )
    test = dates[-test_snapshots:]
    cal_pool = _purged_before(dates, test[0], h)
    cal = cal_pool[-calibration_snapshots:]
    train = _purged_before(dates, cal[0], h) if cal else []
    if len(cal) < calibration_snapshots or len(train) < min_train_snapshots:
        raise ModelError(
            f"After purging {horizon_days} days between folds only {len(train)} training and "
            f"{len(cal)} calibration snapshots remain (of {len(dates)} labelled).",
            "provide a longer history or lower tuning.calibration_snapshots / test_snapshots.",
        )
    return TimeSplit(tuple(train), tuple(cal), tuple(test), horizon_days)


def cv_folds(
    train_dates: tuple[pd.Timestamp, ...], *, n_folds: int, horizon_days: int
) -> list[tuple[list[pd.Timestamp], list[pd.Timestamp]]]:
    """Expanding-window folds inside the training dates, each purged before its validation.

    Fold i validates on one later block of dates and trains on everything whose label
    window closes before that block starts.
    """
    dates = sorted(train_dates)
    h = pd.Timedelta(days=horizon_days)
    folds = []
    block = max(1, len(dates) // (n_folds + 2))
    for i in range(n_folds, 0, -1):
        start = len(dates) - i * block
        if start < 0:  # more folds than dates: a negative start would wrap around
            continue
        val = dates[start : start + block]
        tr = _purged_before(dates, val[0], h)
        if len(tr) >= 1:
            folds.append((tr, val))
    if not folds:
        raise ModelError(
            f"Cannot build time-based CV folds from {len(dates)} training snapshots.",
            "provide a longer history or set tuning.n_folds lower.",
        )
    return folds


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

        return {
            "train": span(self.final_dates),
            "test": ", ".join(str(o.date.date()) for o in self.origins)
            + f" ({len(self.origins)} origins)",
            "purge_days": str(self.purge_days),
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
