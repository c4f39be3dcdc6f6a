"""The report's per-account HTML (one table row and one card per account), built in Python.

These two fragments are most of the report's bytes and, through Jinja, most of a weekly
run's time (about 3 ms per account: 100,000 accounts in owner reports took minutes).
Here every value is formatted once per distinct value and escaped with the same
``markupsafe.escape`` Jinja's autoescaping uses, and each account's HTML is one f-string:
the output is the same, byte for byte, as the template's loops it replaces.

Both fragments carry ``CID`` where the account's anchor id goes (its position in the
report), filled in when they are placed (:meth:`AccountHtml.render`). A report builds them
only for the accounts it shows: the portfolio's and each owner's report are capped at
``report.max_accounts``, so a run holds at most that many accounts' HTML at a time (at 1M
accounts, HTML for every account took ~5 GB).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import escape

from ka_ml.reporting.columns import N_REASONS, SCORECARD
from ka_ml.reporting.formatting import (
    fmt_date,
    fmt_index,
    fmt_money,
    fmt_pct,
    fmt_points,
    fmt_range,
    sort_date,
    sort_num,
)

CID = "\x00cid\x00"  # stands for the account's anchor id (no CRM text holds NUL bytes)


@dataclass(frozen=True)
class Layout:
    """What every account's HTML shares within a run."""

    currency: str
    windows: tuple[int, ...]
    svg_w: str
    bar_center: str
    dependency_response: str
    rise: float  # the risk rise the attention flags of the display rows use
    owner_column: bool = True  # False in an owner's own report: the same name on every row


@dataclass(frozen=True, eq=False)
class AccountHtml:
    """Each account's table row and card (``CID`` in place of its anchor id), by account id."""

    rows: dict[str, str]
    cards: dict[str, str]

    def render(self, account_ids: Sequence[str], cids: Sequence[str]) -> tuple[str, str]:
        """The table body and the cards of these accounts, in this order, with these ids."""
        rows = "".join(self.rows[a].replace(CID, c) for a, c in zip(account_ids, cids, strict=True))
        cards = "".join(
            self.cards[a].replace(CID, c) for a, c in zip(account_ids, cids, strict=True)
        )
        return rows, cards


Col = Sequence[str]  # one string per account
Part = str | Col  # a constant, or one string per account


def build(view: pd.DataFrame, layout: Layout) -> AccountHtml:
    """Rows and cards of every account of ``view`` (the report's display rows).

    Column-wise: each value is formatted and escaped once per distinct value, each
    conditional piece is chosen per column, and each account's HTML is one join.
    """
    c = _Columns(view, layout)
    ids = view["account_id"].tolist()
    return AccountHtml(dict(zip(ids, _row(c), strict=True)), dict(zip(ids, _card(c), strict=True)))


class _Columns:
    """The view's columns as escaped text (``e``), formatted text and flags, as lists."""

    def __init__(self, view: pd.DataFrame, layout: Layout) -> None:
        self.v, self.layout, self.n = view, layout, len(view)
        self._cache: dict[tuple[str, str], list[str]] = {}

    def e(self, col: str) -> list[str]:
        """The column as escaped text (what ``{{ a.col }}`` prints)."""
        return self.fmt(col, str, "e")

    def flag(self, col: str) -> np.ndarray:
        return self.v[col].fillna(False).astype(bool).to_numpy()

    def fmt(self, col: str, fn: Callable[[Any], str], name: str | None = None) -> list[str]:
        """``escape(fn(value))`` for the column, computed once per distinct value."""
        key = (col, str(name or getattr(fn, "__name__", repr(fn))))
        if key not in self._cache:
            codes, uniques = pd.factorize(self.v[col], use_na_sentinel=True)
            texts = [str(escape(fn(u))) for u in uniques.tolist()]
            texts.append(str(escape(fn(_missing(self.v[col])))))  # code -1: missing
            self._cache[key] = np.asarray(texts, dtype=object)[codes].tolist()
        return self._cache[key]

    def money(self, col: str) -> list[str]:
        cur = self.layout.currency
        return self.fmt(col, lambda x: fmt_money(x, cur), "money")

    def daterange(self, lo: str, hi: str) -> list[str]:
        key = (f"{lo}|{hi}", "range")
        if key not in self._cache:
            pairs = pd.Series(list(zip(self.v[lo].tolist(), self.v[hi].tolist(), strict=True)))
            self._cache[key] = _by_value(pairs.tolist(), lambda p: str(escape(fmt_range(*p))))
        return self._cache[key]


def _missing(s: pd.Series) -> Any:
    return pd.NaT if s.dtype.kind == "M" else np.nan


def _by_value(values: list[Any], fn: Callable[[Any], str]) -> list[str]:
    seen: dict[Any, str] = {}
    out = []
    for v in values:
        k = _key(v)
        text = seen.get(k)
        if text is None:
            text = seen[k] = fn(v)
        out.append(text)
    return out


def _key(value: Any) -> Hashable:
    if isinstance(value, tuple):
        return tuple(_key(v) for v in value)
    if value != value:  # NaN, NaT (never equal to themselves): one key
        return ("missing",)
    if isinstance(value, float):  # -0.0 == 0.0, but '-0%' != '0%'
        return (value, math.copysign(1.0, value))
    return value


def _when(mask: np.ndarray, then: Part, otherwise: Part = "") -> list[str]:
    """Per account: ``then`` where ``mask``, else ``otherwise`` (constants or columns)."""
    n = len(mask)
    a = np.full(n, then, dtype=object) if isinstance(then, str) else np.asarray(then, dtype=object)
    b = (
        np.full(n, otherwise, dtype=object)
        if isinstance(otherwise, str)
        else np.asarray(otherwise, dtype=object)
    )
    return np.where(mask, a, b).tolist()


def _cat(n: int, *parts: Part) -> list[str]:
    """Per account, the parts joined (constants repeat)."""
    if all(isinstance(p, str) for p in parts):
        return ["".join(parts)] * n  # type: ignore[arg-type]
    cols = [repeat(p, n) if isinstance(p, str) else p for p in parts]
    return ["".join(t) for t in zip(*cols, strict=False)]  # stops at the accounts' end


def _badge(c: _Columns) -> list[str]:
    health = c.e("health")
    shown = c.fmt("health", lambda h: h or "none", "badge")
    return _cat(c.n, '<span class="b ', health, '">', shown, "</span>")


def _lapsed(c: _Columns) -> np.ndarray:
    return (c.v["lifecycle"] == "lapsed").to_numpy()


def _row(c: _Columns) -> list[str]:
    n = c.n
    red = [_when((c.v[f"sc_{key}"] == "red").to_numpy(), f" {escape(key)}") for key, _ in SCORECARD]
    flags = _when(c.flag("sc_red"), _cat(n, "any", *red))
    new = _when(
        c.flag("low_conf"),
        _cat(n, ' <span class="lc" title="', c.e("lifecycle_reason"), '">new</span>'),
    )
    light = _when(_lapsed(c), '<span class="lc">lapsed</span>', _cat(n, *[_badge(c), new]))
    named = _when(c.flag("named"), _cat(n, "<small>", c.e("account_id"), "</small>"))
    prev = _when(
        c.flag("has_prev"), _cat(n, "<small>", c.fmt("risk_change", fmt_points), "</small>")
    )
    rank = [str(int(r)) for r in c.v["rank"].tolist()]
    owner = (
        _cat(n, '<td class="o">', c.fmt("owner", lambda o: o or "–", "or_dash"), "</td>")
        if c.layout.owner_column
        else ""
    )
    return _cat(
        n,
        f'<tr data-c="{CID}" data-l="',
        c.e("health"),
        '" data-t="',
        c.e("tier"),
        '" data-o="',
        c.e("owner"),
        '" data-y="',
        c.e("lifecycle"),
        '" data-k="',
        flags,
        '">',
        '<td data-s="',
        rank,
        '">',
        light,
        "</td>",
        f'<td class="ac"><a href="#{CID}">',
        c.e("name"),
        "</a>",
        named,
        "</td>",
        owner,
        "<td>",
        c.e("tier"),
        "</td>",
        '<td class="n" data-s="',
        c.fmt("p", sort_num),
        '">',
        c.fmt("p", fmt_pct),
        prev,
        "</td>",
        '<td class="n" data-s="',
        c.fmt("at_risk", sort_num),
        '">',
        c.money("at_risk"),
        "</td>",
        '<td data-s="',
        c.fmt("next", sort_date),
        '">',
        c.fmt("next", fmt_date),
        "<small>",
        c.daterange("p10", "p90"),
        "</small></td>",
        '<td class="o">',
        _dots(c),
        "</td>",
        '<td class="r"><span class="cl">',
        c.e("r1"),
        "</span></td>",
        '<td class="r"><span class="cl">',
        c.e("action"),
        "</span></td></tr>\n",
    )


def _dots(c: _Columns) -> list[str]:
    """One dot per measure, its light's initial inside (R, Y, G; – not measured): the
    light is read without telling the colours apart, and without hovering (a phone)."""
    parts: list[Part] = []
    for key, label in SCORECARD:
        sc = c.e(f"sc_{key}")
        on = _cat(
            c.n,
            '<span class="dot ',
            sc,
            f'" title="{escape(label)}: ',
            sc,
            " · ",
            c.e(f"sc_{key}_d"),
            '">',
            c.fmt(f"sc_{key}", _initial),
            "</span>",
        )
        off = f'<span class="dot" title="{escape(label)}: not measured">–</span>'
        parts.append(_when(c.v[f"sc_{key}"].ne("").to_numpy(), on, off))
    return _cat(c.n, *parts)


def _initial(light: Any) -> str:
    """'red' -> 'R' ('' when missing)."""
    return light[:1].upper() if isinstance(light, str) else ""


def _card(c: _Columns) -> list[str]:
    n = c.n
    return _cat(
        n,
        '<article class="card ',
        c.e("health"),
        f'" id="{CID}">\n',
        _card_head(c),
        "\n",
        _card_figures(c),
        "\n",
        _card_why(c),
        _card_scorecard(c),
        _card_reasons(c),
        _card_windows(c),
        "\n",
        _when(
            c.v["changes"].ne("").to_numpy(),
            _cat(n, '<p><span class="lbl">Since last week</span>', c.e("changes"), "</p>"),
        ),
        _when(
            c.v["action"].ne("").to_numpy(),
            _cat(n, '<p class="act"><span class="lbl">Action</span>', c.e("action"), "</p>"),
        ),
        "</article>\n",
    )


def _card_head(c: _Columns) -> list[str]:
    n = c.n
    light = _when(_lapsed(c), '<span class="lc">lapsed</span>', _badge(c))
    low = _when(c.flag("low_conf"), '<span class="lc">new · low confidence</span>')
    extra = [
        _when(c.v[col].ne("").to_numpy(), _cat(n, prefix, c.e(col)))
        for col, prefix in (
            ("owner", " · "),
            ("tier", " · tier "),
            ("industry", " · "),
            ("region", " · "),
        )
    ]
    dep = _when(
        c.flag("dep_alert"),
        _cat(
            n,
            " · dependency index ",
            c.fmt("dep", fmt_index),
            f": {escape(c.layout.dependency_response)}",
        ),
    )
    return _cat(
        n,
        '<div class="ch">',
        light,
        low,
        "<h3>",
        c.e("name"),
        "</h3><small>",
        c.e("account_id"),
        *extra,
        dep,
        "</small></div>",
    )


def _card_figures(c: _Columns) -> list[str]:
    n = c.n
    vs = _when(c.flag("has_prev"), _cat(n, ", ", c.fmt("risk_change", fmt_points), " vs last week"))
    lapsed = _cat(
        n,
        "<div><b>",
        c.money("win_back"),
        "</b><span>win-back value (",
        c.fmt("p_back", fmt_pct),
        " chance of an order)</span></div>",
    )
    active = _cat(
        n,
        "<div><b>",
        c.money("at_risk"),
        "</b><span>revenue at risk of ",
        c.money("expected_rev"),
        " expected in 12 months</span></div>",
    )
    return _cat(
        n,
        '<div class="fig"><div><b>',
        c.fmt("p", fmt_pct),
        "</b><span>churn probability",
        _when(c.flag("by_contract"), " (the contract ending unrenewed)"),
        vs,
        "</span></div>",
        _when(_lapsed(c), lapsed, active),
        "<div><b>",
        c.fmt("next", fmt_date),
        "</b><span>next order expected · ",
        c.daterange("p10", "p90"),
        "</span></div></div>",
    )


def _card_why(c: _Columns) -> list[str]:
    why = _when(c.v["health"].ne("").to_numpy(), _cat(c.n, "Why ", c.e("health"), ": "))
    return _when(
        c.v["light_reason"].ne("").to_numpy(),
        _cat(c.n, '<p class="why">', why, c.e("light_reason"), "</p>"),
    )


def _card_scorecard(c: _Columns) -> list[str]:
    """Each measure with its light as a badge (dot and word, like the account's light)."""
    items = [
        _when(
            c.v[f"sc_{key}"].ne("").to_numpy(),
            _cat(
                c.n,
                '<li><span class="b ',
                c.e(f"sc_{key}"),
                '">',
                c.e(f"sc_{key}"),
                f"</span><b>{escape(label)}</b>: ",
                c.e(f"sc_{key}_d"),
                "</li>",
            ),
        )
        for key, label in SCORECARD
    ]
    measured = [c.v[f"sc_{key}"].ne("").to_numpy(dtype=bool) for key, _ in SCORECARD]
    any_sc = np.logical_or.reduce(measured)
    return _when(any_sc, _cat(c.n, '<ul class="sc">', *items, "</ul>"))


def _card_reasons(c: _Columns) -> list[str]:
    n, bars, items = c.n, [], []
    for k in range(1, N_REASONS + 1):
        has = c.v[f"r{k}"].ne("").to_numpy()
        up = c.flag(f"r{k}_up")
        bars.append(
            _when(
                has,
                _cat(
                    n,
                    f'<text x="2" y="{18 * k - 5}">{k}</text><rect class="',
                    _when(up, "u", "d"),
                    '" x="',
                    c.e(f"r{k}_x"),
                    f'" y="{18 * k - 14}" width="',
                    c.e(f"r{k}_w"),
                    '" height="12"/>',
                ),
            )
        )
        items.append(
            _when(
                has,
                _cat(
                    n,
                    "<li>",
                    c.e(f"r{k}"),
                    ' <i class="',
                    _when(up, "up", "dn"),
                    '">',
                    c.e(f"r{k}_dir"),
                    " ",
                    c.fmt(f"r{k}_shap", fmt_points),
                    "</i></li>",
                ),
            )
        )
    w, b = escape(c.layout.svg_w), escape(c.layout.bar_center)
    head = f'<div class="rs"><svg class="sv" width="{w}" height="56" viewBox="0 0 {w} 56"><path class="ax" d="M{b} 0V56"/>\n'
    return _cat(n, head, *bars, "</svg>\n<ol>", *items, "</ol></div>\n")


def _card_windows(c: _Columns) -> list[str]:
    if not c.layout.windows:  # no timing forecast this run
        return _cat(c.n)
    parts: list[Part] = []
    for i, w in enumerate(c.layout.windows):
        parts += [" · " if i else "", f"{w} days ", c.fmt(f"pw{w}", fmt_pct)]
    return _cat(c.n, '<p><span class="lbl">Order within</span>', *parts, "</p>")


__all__ = ["CID", "AccountHtml", "Layout", "build"]
