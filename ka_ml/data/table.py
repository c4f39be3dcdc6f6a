"""One table under validation, and how a check's findings show its rows and cells.

A :class:`Table` holds a contract table between typing and assembly: the typed rows, whose
index labels point into the raw frame, so an issue's examples name the rows as the source
numbers them (``row N``: the file line for delimited files, where the header is line 1;
the 1-based row position for Parquet and databases). The checks of
:mod:`ka_ml.data.validate` and of the modules it calls share it, with :func:`show_cell`
(a cell as the user would recognise it; the Spark reader shows its examples so too) and
:func:`is_in` (text looked up by Arrow's hash). Pure (no I/O).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ka_ml.data.schema import TableSpec
from ka_ml.errors import DataIssue

_MAX_EXAMPLE_CHARS = 40


@dataclass
class Table:
    """One table under validation: typed rows whose index labels point into ``raw``."""

    spec: TableSpec
    raw: pd.DataFrame
    frame: pd.DataFrame
    base: int
    key: np.ndarray | None = None  # row_key of ``frame`` in sort order (see validate._sort_columns)

    @property
    def name(self) -> str:
        return self.spec.name

    def examples(self, mask: pd.Series, columns: Sequence[str]) -> tuple[str, ...]:
        """Up to five offending rows rendered as ``row 12: account_id='A1', x='...'``."""
        labels = mask.index[mask.to_numpy(dtype=bool)][:5]
        cols = [c for c in dict.fromkeys(("account_id", *columns)) if c in self.raw.columns]
        out = []
        for label in labels:
            shown = ", ".join(f"{c}='{show_cell(self.raw.at[label, c])}'" for c in cols)
            out.append(f"row {int(label) + self.base}: {shown}")
        return tuple(out)

    def issue(
        self,
        column: str | None,
        problem: str,
        remedy: str,
        mask: pd.Series,
        show: Sequence[str] = (),
        level: str = "error",
    ) -> DataIssue:
        cols = list(show) or ([column] if column else [])
        return DataIssue(
            self.name,
            column,
            problem,
            remedy,
            self.examples(mask, cols),
            int(mask.sum()),
            level,
        )

    def drop(self, mask: pd.Series | np.ndarray) -> None:
        keep = ~np.asarray(mask, dtype=bool)
        self.frame = self.frame[keep]
        if self.key is not None:
            self.key = self.key[keep]


def show_cell(value: object) -> str:
    """A raw cell as the user would recognise it (dates at midnight without the time)."""
    if isinstance(value, pd.Timestamp) and value == value.normalize():
        text = str(value.date())
    elif value is None or (not isinstance(value, str) and bool(pd.isna(value))):  # type: ignore[call-overload]
        text = ""
    else:
        text = str(value)
    return text if len(text) <= _MAX_EXAMPLE_CHARS else text[: _MAX_EXAMPLE_CHARS - 1] + "…"


def is_in(values: pd.Series, allowed: np.ndarray) -> pd.Series:
    """``values.isin(allowed)`` for text, by Arrow's hash lookup (pandas' is per value)."""
    arr = pa.array(values.array, from_pandas=True)
    found = pc.is_in(arr, value_set=pa.array(allowed, from_pandas=True), skip_nulls=True)
    return pd.Series(pc.fill_null(found, False).to_numpy(zero_copy_only=False), index=values.index)
