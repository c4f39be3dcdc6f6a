"""The account sheets' data rows as SpreadsheetML, written column-wise into the workbook.

XlsxWriter writes every cell through several Python calls (~10 µs a cell here): at 100,000
accounts the two account sheets' 5.6M cells took well over a minute. XlsxWriter still
writes the workbook (styles, the summary sheet, headers, widths, frozen panes, filters);
the data rows of the big sheets are produced here, a column at a time, as the same XML
XlsxWriter writes in ``constant_memory`` mode (``<c r="B2" s="3"><v>0.25</v></c>``,
inline strings, dates as serial numbers) and streamed into the sheet's part of the zip.

Cells mean what XlsxWriter's ``write_number`` / ``write_datetime`` / ``write_string`` /
``write_blank`` would store: text is always text (never a formula), missing values are
blank cells (kept only where they carry a format), strings are XML-escaped and control
characters written as ``_xHHHH_`` like XlsxWriter does.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from xlsxwriter.utility import xl_col_to_name

MAX_CHARS = 32_767  # Excel's longest cell text (XlsxWriter cuts there too)
CHUNK_ROWS = 5_000  # rows formatted and compressed at a time (bounds memory)
_EXCEL_EPOCH = np.datetime64("1899-12-30", "us")  # serial 0 for dates after 1900-02-28
_US_PER_DAY = 86_400_000_000
_ESCAPED_ESCAPE = re.compile("(_x[0-9a-fA-F]{4}_)")
_CONTROL = re.compile(r"([\x00-\x08\x0b-\x1f])")
_EDGE_SPACE = re.compile(r"^\s|\s$")


@dataclass(frozen=True)
class SheetColumn:
    """A data column: its kind ('number', 'date' or 'text'), values and cell styles.

    ``style``: the XlsxWriter format index of every cell (0 = none), per row when the
    column's format depends on the value (the light column's fill), else one for all.
    """

    kind: str
    values: pd.Series
    style: int | Sequence[int]


@dataclass(frozen=True)
class SheetData:
    """The data rows (from row 2, under the header) of one worksheet part."""

    part: str  # e.g. "xl/worksheets/sheet2.xml"
    columns: Sequence[SheetColumn]

    @property
    def n_rows(self) -> int:
        return len(self.columns[0].values) if self.columns else 0


def insert_rows(book: bytes, sheets: Sequence[SheetData], path: Path) -> None:
    """Copy the workbook ``book`` to ``path`` with each sheet's data rows inserted."""
    by_part = {s.part: s for s in sheets}
    with (
        zipfile.ZipFile(io.BytesIO(book)) as src,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            data = src.read(info)
            sheet = by_part.get(info.filename)
            if sheet is None:
                dst.writestr(info, data)
                continue
            head, tail = data.decode("utf-8").split("</sheetData>", 1)
            head = _widen_dimension(head, sheet)
            target = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            target.compress_type = zipfile.ZIP_DEFLATED
            with dst.open(target, "w", force_zip64=True) as out:
                out.write(head.encode("utf-8"))
                for chunk in row_chunks(sheet):
                    out.write(chunk.encode("utf-8"))
                out.write(("</sheetData>" + tail).encode("utf-8"))


def _widen_dimension(head: str, sheet: SheetData) -> str:
    last = xl_col_to_name(max(len(sheet.columns) - 1, 0))
    return re.sub(
        r'<dimension ref="[^"]*"/>',
        f'<dimension ref="A1:{last}{sheet.n_rows + 1}"/>',
        head,
        count=1,
    )


def row_chunks(sheet: SheetData, chunk: int = CHUNK_ROWS) -> Iterator[str]:
    """The ``<row>`` elements of the data rows, ``chunk`` rows per string."""
    writers = [_cells(j, c) for j, c in enumerate(sheet.columns)]
    for start in range(0, sheet.n_rows, chunk):
        stop = min(start + chunk, sheet.n_rows)
        rows = range(start + 2, stop + 2)  # Excel rows: the header is row 1
        cols = [w(start, stop, rows) for w in writers]
        yield "".join(
            f'<row r="{r}">{"".join(cells)}</row>'
            for r, cells in zip(rows, zip(*cols, strict=True), strict=True)
        )


Cells = Callable[[int, int, range], list[str]]


def _cells(j: int, column: SheetColumn) -> Cells:
    """A function giving column ``j``'s cells for rows [start, stop)."""
    letter = xl_col_to_name(j)
    styles = _styles(column.style, len(column.values))
    if column.kind == "text":
        texts, present = _texts(column.values)
    else:
        texts, present = _numbers(column.values, column.kind == "date")
    opening, closing = (
        (' t="inlineStr">', "</c>") if column.kind == "text" else ("><v>", "</v></c>")
    )

    def cells(start: int, stop: int, rows: range) -> list[str]:
        return [
            f'<c r="{letter}{r}"{s}{opening}{x}{closing}'
            if ok
            else (f'<c r="{letter}{r}"{s}/>' if s else "")  # a blank keeps its format
            for r, x, ok, s in zip(
                rows, texts[start:stop], present[start:stop], styles[start:stop], strict=True
            )
        ]

    return cells


def _styles(style: int | Sequence[int], n: int) -> list[str]:
    if isinstance(style, int):
        return [f' s="{style}"' if style else ""] * n
    return [f' s="{s}"' if s else "" for s in style]


def _numbers(values: pd.Series, dates: bool) -> tuple[list[str], list[bool]]:
    """``%.16G`` of each finite number (a date: its Excel serial day), and which exist."""
    if dates:
        stamps = values.to_numpy(dtype="datetime64[us]")
        present = ~np.isnat(stamps)
        x = (stamps - _EXCEL_EPOCH).astype("int64") / _US_PER_DAY
    else:
        x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        present = np.isfinite(x)
    return [f"{v:.16G}" for v in x.tolist()], present.tolist()


def _texts(values: pd.Series) -> tuple[list[str], list[bool]]:
    """Each text as an inline string's content (escaped), computed once per distinct text."""
    codes, uniques = pd.factorize(values.astype("string"), use_na_sentinel=True)
    shown = [_inline(str(u)[:MAX_CHARS]) for u in uniques.tolist()] + [""]
    return np.asarray(shown, dtype=object)[codes].tolist(), (codes >= 0).tolist()


def _inline(text: str) -> str:
    # XlsxWriter's order: cut to Excel's cell limit, escape literal _xHHHH_, control
    # characters as _xHHHH_, then XML
    text = _ESCAPED_ESCAPE.sub(r"_x005F\1", text)
    text = _CONTROL.sub(lambda m: f"_x{ord(m.group(1)):04X}_", text)
    preserve = ' xml:space="preserve"' if _EDGE_SPACE.search(text) else ""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<is><t{preserve}>{text}</t></is>"


__all__ = ["SheetColumn", "SheetData", "insert_rows", "row_chunks"]
