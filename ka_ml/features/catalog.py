"""The feature catalog: the single source of truth for every model feature.

Each :class:`FeatureSpec` says what a feature means, its unit, the table (and optional
columns) it comes from, and how to say the account's own value to an account manager.
The feature builder, the README table and the plain-language reasons behind a churn score
all read this catalog, so a feature cannot exist in one place and not the others (a test
asserts that ``build_features`` produces exactly :func:`features_for` in catalog order).

Fixed windows by design (not config): trends compare the last 90 days with the 90 before,
"year" features use the last 365 days against the 365 before, usage activity looks at the
last 26 weeks. Only the order count/spend windows follow ``features.windows_days``. The
whole-history order features (``orders_lifetime`` ... ``first_order_amount``) read every
order row before the as-of, however old; their monthly rates use a month of 365/12 days.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from ka_ml.data.history import History
from ka_ml.data.schema import SURVEY_SCALE

Unit = Literal[
    "days",  # a duration in days
    "days_until",  # days until a date (negative: that many days ago)
    "count",  # a number of things
    "count_change",  # a signed difference of counts
    "currency",  # money in the data's currency
    "share",  # a fraction 0..1 shown as a percentage
    "change",  # relative change: -1 = fell to zero, +5 = rose 500% (the clip)
    "slope",  # relative change per month
    "ratio",  # x times something
    "times",  # how often: once, twice, 3 times
    "rate",  # things per month (orders a month): 2 significant digits below 1
    "number",  # a plain decimal number
    "score",  # a survey score
    "points",  # a signed difference of survey scores
    "flag",  # 1.0 yes / 0.0 no
    "category",  # a label
]
Kind = Literal["num", "cat"]

DEFAULT_WINDOWS: tuple[int, ...] = (30, 90, 180, 365)
TREND_DAYS = 90  # trends: last 90 days versus the 90 days before
YEAR_DAYS = 365  # "year" features: last 365 days versus the 365 before
MONTH_DAYS = YEAR_DAYS / 12  # one month (30.42 days) for every per-month rate
ACTIVE_WEEKS = 26  # usage activity: share of the last 26 weeks with any usage
CHANGE_CLIP = (-1.0, 5.0)  # relative changes are clipped to [-100%, +500%]
ABC_CATEGORIES: tuple[str, ...] = ("A", "B", "C")
CATEGORICAL_FROM_ACCOUNTS: tuple[str, ...] = ("industry", "region")
# a ratio to the usual below this is plainly within it ("No order for 20 days, 0.3 times
# the typical gap"): said with "(raises risk)" it reads as a mistake
RATIO_WELL_WITHIN = 0.5
# a window's count or spend is said beside the account's average over such a window when
# its tenure holds this many windows (a younger account's average is mostly the window),
# and reads as steady, not as bad news, within this share of that average
USUAL_MIN_WINDOWS = 2
USUAL_SAME_WITHIN = 0.05
# units whose value alone leaves a manager asking "against what?" ("Average time between
# orders: 96 days (raises risk)"): a model feature in one of them whose sentence says no
# comparison gets a variant saying the typical account's value (:func:`with_typical`)
TYPICAL_UNITS: frozenset[str] = frozenset(
    {"days", "count", "currency", "number", "rate", "share", "score"}
)
TYPICAL_CLAUSE = "{typical} at a typical account"
# units said with a sign ("rose 12%", "up 3 points"), and the factor of the digits said
_SIGNED_UNITS: dict[str, float] = {
    "change": 100.0,
    "slope": 100.0,
    "points": 1.0,
    "count_change": 1.0,
}
# what the spread of the gaps says with two order days: one gap has no spread to measure
ONE_GAP = "Only one gap between orders so far: too few orders to tell how regular they are"


def plural(n: float, word: str) -> str:
    """``word`` for one, ``word + "s"`` otherwise ('1 origin', '3 origins')."""
    return word if abs(n) == 1 else word + "s"


# from this many days on a duration is said in years ("Customer for 3,981 days" and "2
# orders in 3981 days" were read on a demo report: "10.9 years" is what a manager says)
YEARS_FROM_DAYS = 730


def n_days(n: float) -> str:
    """'1 day', '14 days', '2.1 years': a duration in words, rounded to whole days ('1
    days since the last order' was read on an account card), in years with one decimal
    from ``YEARS_FROM_DAYS`` days."""
    if not math.isfinite(n):
        return f"{n:.0f} days"
    whole = round(n)
    if abs(whole) >= YEARS_FROM_DAYS:
        return f"{abs(whole) / 365.25:.1f} years"
    return f"{whole:.0f} {plural(whole, 'day')}"


def points_unit(n: float) -> str:
    """'pt' for one probability point (either sign), else 'pts': the reasons', the weekly
    changes' and the reports' one wording."""
    return plural(n, "pt")


def format_value(unit: Unit, value: object, currency: str = "") -> str:
    """The value in words a manager reads, according to its unit; money with ``currency``
    (``report.currency``) as the report writes it: 'EUR' after, a one-character sign
    before ('€25,706')."""
    if unit == "category":
        return str(value)
    v = float(value)  # type: ignore[arg-type]
    if unit == "days":
        return n_days(v)
    if unit == "days_until":
        n = round(v)
        if n > 0:
            return f"ends in {n_days(n)}"
        if n == 0:
            return "ends today"
        return f"lapsed {n_days(-n)} ago"
    if unit == "count":
        return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"
    if unit == "count_change":
        n = round(v)
        return "unchanged" if n == 0 else (f"up {n:,}" if n > 0 else f"down {-n:,}")
    if unit == "currency":
        amount = "0" if f"{v:,.0f}" == "-0" else f"{v:,.0f}"
        if not currency:
            return amount
        return f"{currency}{amount}" if len(currency) == 1 else f"{amount} {currency}"
    if unit == "share":
        # "Share of company revenue: 0.0%" said nothing of one account in 2,000 (0.03%)
        pct = v * 100
        if 0 < pct < 0.01:
            return "under 0.01%"
        if 0 < abs(pct) < 1:
            return f"{pct:.2f}%"
        return f"{pct:.1f}%" if 0 < abs(pct) < 10 and not pct.is_integer() else f"{pct:.0f}%"
    if unit == "change":
        pct = round(v * 100)
        if pct == 0:
            return "did not change"
        if v >= CHANGE_CLIP[1]:
            return f"rose {pct}% or more"
        if v <= CHANGE_CLIP[0]:  # read as "fell 100%" by a manager: say what happened
            return "fell to zero"
        return f"rose {pct}%" if pct > 0 else f"fell {-pct}%"
    if unit == "slope":
        return f"{v * 100:+.0f}%"
    if unit == "ratio":
        return f"{v:.1f} times"
    if unit == "times":
        n = round(v)
        return {1: "once", 2: "twice"}.get(n, f"{n:,} times")
    if unit == "rate":
        if v == 0 or abs(v) >= 10:
            return f"{v:,.0f}"
        return f"{v:.1f}" if abs(v) >= 0.995 else f"{v:.2g}"
    if unit == "number":
        return f"{v:.2f}"
    if unit == "score":
        return f"{v:g}" if v.is_integer() else f"{v:.1f}"
    if unit == "points":
        p = round(v, 1)
        if p == 0:
            return "unchanged"
        s = f"{abs(p):g}"
        return f"up {s} {plural(p, 'point')}" if p > 0 else f"down {s} {plural(p, 'point')}"
    if unit == "flag":
        return "yes" if v >= 0.5 else "no"
    raise ValueError(f"unknown unit {unit!r}")


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(math.isnan(value))  # type: ignore[arg-type]
    except TypeError:
        return False


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: meaning, unit, source, and how to say its value to a manager.

    ``templates`` are tried in order; ``{value}`` is this feature's value, any other
    ``{name}`` is the same row's value of feature ``name`` (passed via ``other``). The
    first template whose fields are all known wins, so a richer sentence is used when the
    context is there ("No order for 143 days (typical gap 31 days)") and a plain one when
    it is not.
    """

    name: str
    family: str
    meaning: str
    unit: Unit
    table: str
    kind: Kind = "num"
    columns: tuple[str, ...] = ()  # "table.column" that must exist (beyond required ones)
    templates: tuple[str, ...] = ()
    missing: str = ""
    high_means: str = ""
    low_means: str = ""
    # (feature, minimum): below that value of the row's other feature, this one has a value
    # but measures nothing yet, and ``unmeasured`` is said instead of it (the spread of one
    # gap between orders is 0: not "perfectly regular", just not measurable)
    measured_from: tuple[str, float] | None = None
    unmeasured: str = ""
    # a feature of the same table that is missing when the account has no rows of it: then
    # that feature's ``missing`` (else this one's) is said instead of this one's value (an
    # account that never used the product read "Average weekly usage in the last 90 days: 0
    # (raises risk)"; one that never answered a survey, "No earlier answer to the same survey")
    absent_with: str = ""
    # False: built with the features (so every engine and every snapshot has it) for the
    # scorer's rules, never a model input (:func:`scorer_only`)
    model: bool = True
    # read from the same dates of past years: left out of the model inputs when no training
    # snapshot reaches a year back (:func:`past_years`)
    past_years: bool = False
    # which way a manager expects risk to go with the value: "lower" (a fall in usage, no
    # order in 90 days), "higher" (complaints, a silence), "" (no one way: tickets, order
    # value). Read where the sentence itself says good or bad news (a signed change, or a
    # count at zero), by :meth:`reads_backwards`, and for which side of the typical account
    # a value must be to say it (:meth:`agrees_with`)
    risk_rises_when: Literal["higher", "lower", ""] = ""
    # another feature whose value says whether this one's sentence is good or bad news: "No
    # order for 1 day (typical gap 63 days)" is news as good as the silence against the
    # account's own cycle (``overdue_ratio``), whatever the days
    reads_as: str = ""
    # other features a template names that say nothing at zero: a template naming one whose
    # value is 0 is passed over for the next ("Product not used for 522 days (in use 0% of
    # the last 26 weeks)" says the silence twice)
    clause_nonzero: tuple[str, ...] = ()
    # sentences tried before ``templates`` when the value is 0 ("One order day so far" says
    # what "Days with a repeat order after the first order day: 0" means)
    zero_templates: tuple[str, ...] = ()
    # other features a template names only when the account is silent past its typical gap
    # (this feature's value, or its ``reads_as`` one, said above 1 time the usual): "it went
    # longer without an order twice before and came back" tells a project buyer's pause from
    # a loss ("No order for 124 days, 17.7 times the typical gap of 7 days" alone read as an
    # emergency); of an account within its rhythm it says nothing
    clause_when_late: tuple[str, ...] = ()
    # a rate per month since the first order (``orders_per_month``) that, over this feature's
    # window of ``window_days``, is the account's own average for the window: a template's
    # ``{usual}`` ("Orders in the last 90 days: 1 (5.4 in an average 90 days)"; "Spend in
    # the last 180 days: 180,970 (raises risk)" said a level without saying against what).
    # Only for accounts whose tenure holds ``USUAL_MIN_WINDOWS`` windows. A template's
    # ``{typical}`` is the same feature at the typical account the reasons are measured
    # from (:func:`ka_ml.scoring.explain.reason_typical`; every level feature has such a
    # template, :func:`with_typical`), in words: said only where it
    # shows why the value moves the risk the way it does ("Orders in the last 90 days: 1
    # (1.1 in an average 90 days; 3 at a typical account) (raises risk)": steady for this
    # account, and fewer than the accounts the lights compare it with)
    per_month: str = ""
    window_days: int = 0

    def usual(self, rate: Any, tenure: Any) -> np.ndarray:
        """The account's average over this feature's window since its first order, from its
        ``per_month`` rate and ``tenure_days`` (arrays or numbers); NaN when the spec has
        none, or the tenure is under ``USUAL_MIN_WINDOWS`` windows."""
        r, t = np.asarray(rate, dtype=float), np.asarray(tenure, dtype=float)
        if not self.per_month:
            return np.full(np.broadcast(r, t).shape, np.nan)
        with np.errstate(invalid="ignore"):
            old_enough = t >= USUAL_MIN_WINDOWS * self.window_days
        return np.where(old_enough, r * self.window_days / MONTH_DAYS, np.nan)

    def _sides(self, value: Any, other: Any) -> tuple[np.ndarray, np.ndarray]:
        """(worse, better): where ``value`` is bad or good news against ``other`` (beyond
        ``USUAL_SAME_WITHIN``; counts against ``other`` rounded, as orders come whole)."""
        v, u = np.asarray(value, dtype=float), np.asarray(other, dtype=float)
        u = np.floor(u + 0.5) if self.unit == "count" else u
        with np.errstate(invalid="ignore"):
            below, above = v < (1 - USUAL_SAME_WITHIN) * u, v > (1 + USUAL_SAME_WITHIN) * u
        return (below, above) if self.risk_rises_when == "lower" else (above, below)

    def agrees_with(self, value: Any, other: Any, raises: Any) -> np.ndarray:
        """Where ``value`` against ``other`` (the typical account's) is the news the
        direction says: worse where "(raises risk)" (``raises``), better where "(lowers
        risk)"; as good as ``other`` agrees with neither. A feature without
        ``risk_rises_when`` has no good or bad side (an order value, a tenure, a typical
        gap): there any value beyond ``USUAL_SAME_WITHIN`` of ``other`` agrees, the way the
        risk moved being the model's alone. Never without either value."""
        v, u = np.asarray(value, dtype=float), np.asarray(other, dtype=float)
        worse, better = self._sides(v, u)
        if self.risk_rises_when:
            said = np.where(np.asarray(raises, dtype=bool), worse, better)
        else:
            said = np.broadcast_to(worse | better, np.broadcast(v, u, raises).shape)
        return said & np.isfinite(v + u)

    def usual_reads_against(self, value: Any, usual: Any, raises: Any) -> np.ndarray:
        """Where "(raises risk)" (``raises``) or "(lowers risk)" after the comparison with
        the usual contradicts it (arrays or numbers). Below the usual (by more than
        ``USUAL_SAME_WITHIN``) is bad news where the risk rises when the feature is lower;
        at or above it is not: "1 (1.0 in an average 90 days) (raises risk)" reads as a
        steady account called a risk. Without a usual or a value: never."""
        v, u = np.asarray(value, dtype=float), np.asarray(usual, dtype=float)
        if not self.risk_rises_when:
            return np.zeros(np.broadcast(v, u).shape, dtype=bool)
        # orders come whole: 1 in a window whose average is 1.1 is as usual, not below it
        worse, _ = self._sides(v, u)
        return (worse != np.asarray(raises, dtype=bool)) & np.isfinite(v) & np.isfinite(u)

    def say_usual(self, usual: float, currency: str = "") -> str:
        """The usual as a template's ``{usual}`` says it (a count's average with decimals;
        a whole count, as the typical account's median often is, without: "2", not "2.0")."""
        whole = self.unit == "count" and float(usual).is_integer()
        unit: Unit = "rate" if self.unit == "count" and not whole else self.unit
        return format_value(unit, usual, currency)

    def say_typical(self, typical: float, currency: str = "") -> str:
        """The typical account's value as a template's ``{typical}`` says it: as
        :meth:`say_usual`, and "none" for a count, amount, rate or share of 0
        ("Complaints per order in the last 365 days: 0.22 (none at a typical account)", not
        "(0.00 at a typical account)")."""
        if typical == 0 and self.unit != "days":
            return "none"
        return self.say_usual(typical, currency)

    def is_late(self, value: object, other: Mapping[str, object]) -> bool:
        """Whether the row is silent past its typical gap as its sentence says it: the ratio
        (this feature's value, or its ``reads_as`` feature's) said above "1.0 times"."""
        ratio = value if self.unit == "ratio" else other.get(self.reads_as)
        return not _is_missing(ratio) and round(float(ratio), 1) > 1  # type: ignore[arg-type]

    def format(self, value: object, currency: str = "") -> str:
        return format_value(self.unit, value, currency)

    def describe(
        self, value: object, *, other: Mapping[str, object] | None = None, currency: str = ""
    ) -> str:
        """A plain sentence with the account's own value (and related values of its row);
        money with ``currency`` ("Average order value ... 25,706" had no EUR)."""
        other = other or {}
        if self.absent_with and _is_missing(other.get(self.absent_with, 0.0)):
            # the table's absence, as the feature that tells it says it ("No survey answered")
            return get(self.absent_with).missing or self.missing or f"{self.meaning}: not available"
        if _is_missing(value):
            return self.missing or f"{self.meaning}: not available"
        if self.measured_from is not None:
            name, minimum = self.measured_from
            known = other.get(name)
            if not _is_missing(known) and float(known) < minimum:  # type: ignore[arg-type]
                return self.unmeasured
        zero = self.kind == "num" and float(value) == 0  # type: ignore[arg-type]
        late = bool(self.clause_when_late) and self.is_late(value, other)
        for template in (*self.zero_templates, *self.templates) if zero else self.templates:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
            values: dict[str, str] = {}
            for f in fields:
                if f == "value":
                    values[f] = self.format(value, currency)
                    continue
                if f == "typical":  # the typical account's value, in words (the caller's)
                    if _is_missing(other.get(f)):
                        break
                    values[f] = str(other[f])
                    continue
                if f == "usual":  # the words, when the caller computed them for many rows
                    said = other.get("usual")
                    rate, tenure = other.get(self.per_month), other.get("tenure_days")
                    if said is None and not (_is_missing(rate) or _is_missing(tenure)):
                        u = float(self.usual(rate, tenure))
                        said = self.say_usual(u, currency) if np.isfinite(u) else None
                    if _is_missing(said):
                        break
                    values[f] = str(said)
                    continue
                v = other.get(f)
                if (
                    _is_missing(v)
                    or (f in self.clause_nonzero and float(v) == 0)  # type: ignore[arg-type]
                    or (f in self.clause_when_late and not late)
                ):
                    break
                values[f] = get(f).format(v, currency)
            else:
                return template.format(**values)
        return f"{self.meaning}: {self.format(value, currency)}"

    def reads_backwards(self, values: np.ndarray, raises: np.ndarray) -> np.ndarray:
        """Per value, True where "(raises risk)" (``raises``) or "(lowers risk)" after this
        feature's sentence contradicts the sentence itself: "Survey score up 3 points since the
        previous survey (raises risk)", "Usage ... fell 6% ... (lowers risk)", "Complaints in
        the last 90 days: 0 (raises risk)". The model may mean it (against its reference
        account, through what the feature interacts with), but a manager reads it as an
        error. Signed changes read by the sign they are said with (a change said "did not
        change" reads neither way); counts, money and shares only at zero; other units and
        features without ``risk_rises_when`` never read backwards. A ratio to the usual
        (unit "ratio": 1 = as usual) is bad news past 1 ("3.3 times the typical gap":
        overdue) and good news below ``RATIO_WELL_WITHIN`` ("0.0 times": ordered yesterday);
        between, nearly due, it reads either way ("0.9 times the typical gap (raises
        risk)" is no contradiction)."""
        worse, better = self._news(values)
        raises = np.asarray(raises, dtype=bool)
        return (better & raises) | (worse & ~raises)

    def shows(self, values: Any, raises: Any) -> np.ndarray:
        """Per value, True where this feature's sentence itself says the news that "(raises
        risk)" (``raises``) or "(lowers risk)" after it says: "No order for 124 days, 3.3
        times the typical gap" before "(raises risk)" needs no other yardstick; "0.7 times"
        does. The mirror of :meth:`reads_backwards`."""
        worse, better = self._news(values)
        raises = np.asarray(raises, dtype=bool)
        return (worse & raises) | (better & ~raises)

    def _news(self, values: Any) -> tuple[np.ndarray, np.ndarray]:
        """(bad news, good news) per value, as the sentence says it (see
        :meth:`reads_backwards`); neither without ``risk_rises_when`` or a value."""
        v = np.asarray(values, float)
        worse = better = np.zeros(v.shape, bool)
        if not self.risk_rises_when:
            return worse, better
        worse_up = self.risk_rises_when == "higher"
        if self.unit in _SIGNED_UNITS:
            said = np.round(v * _SIGNED_UNITS[self.unit], 0 if self.unit != "points" else 1)
            up, down = said > 0, said < 0
            worse, better = (up, down) if worse_up else (down, up)
        elif self.unit == "ratio":
            said = np.round(v, 1)  # as said: "1.0 times" is as usual
            past, well_within = said > 1, said < RATIO_WELL_WITHIN
            worse, better = (past, well_within) if worse_up else (well_within, past)
        elif self.unit in ("count", "currency", "share"):
            zero = np.round(v, 6) == 0  # the best value when risk rises with it, else the worst
            worse, better = (worse, zero) if worse_up else (zero, better)
        finite = np.isfinite(v)
        return worse & finite, better & finite

    def available(self, history: History) -> bool:
        """True when the data has this feature's table and every column it needs."""
        tables = history.tables()
        if self.table not in tables:
            return False
        for ref in self.columns:
            table, column = ref.split(".")
            if table not in tables or column not in tables[table].columns:
                return False
        return True


def _window_specs(w: int) -> tuple[FeatureSpec, FeatureSpec]:
    """The order count and the spend over ``w`` days (any window: :func:`get` resolves
    ``orders_45d``), each with its typical-account variant (:func:`with_typical`)."""
    counts, spends = (
        FeatureSpec(
            f"orders_{w}d",
            "orders",
            f"Number of orders in the {w} days before the as-of date (distinct order_id when given, else rows)",
            "count",
            "orders",
            templates=(
                f"Orders in the last {w} days: {{value}} ({{usual}} in an average {w} days; "
                f"{TYPICAL_CLAUSE})",
                f"Orders in the last {w} days: {{value}} ({{usual}} in an average {w} days)",
                f"Orders in the last {w} days: {{value}}",
            ),
            high_means="buys often",
            low_means="few or no recent orders",
            risk_rises_when="lower",
            per_month="orders_per_month",
            window_days=w,
        ),
        FeatureSpec(
            f"spend_{w}d",
            "orders",
            f"Order amount summed over the {w} days before the as-of date (credits subtract)",
            "currency",
            "orders",
            templates=(
                f"Spend in the last {w} days: {{value}} ({{usual}} in an average {w} days; "
                f"{TYPICAL_CLAUSE})",
                f"Spend in the last {w} days: {{value}} ({{usual}} in an average {w} days)",
                f"Spend in the last {w} days: {{value}}",
            ),
            high_means="spends a lot",
            low_means="little recent spend",
            risk_rises_when="lower",
            per_month="spend_per_month",
            window_days=w,
        ),
    )
    return with_typical(counts), with_typical(spends)


_ORDER_SPECS_HEAD = (
    FeatureSpec(
        "recency_days",
        "orders",
        "Days from the last order to the as-of date (1 = ordered the day before)",
        "days",
        "orders",
        templates=(
            "No order for {value} (typical gap {gap_median_days}; it went longer without an "
            "order {gaps_longer_than_silence} before and came back)",
            # within its own cycle, the silence raises the risk against the accounts the
            # lights compare it with: "No order for 52 days (typical gap 78 days; 21 days at
            # a typical account)"
            f"No order for {{value}} (typical gap {{gap_median_days}}; {TYPICAL_CLAUSE})",
            "No order for {value} (typical gap {gap_median_days})",
            "No order for {value}",
        ),
        missing="No order on record",
        high_means="long time since the last order",
        low_means="ordered recently",
        risk_rises_when="higher",
        reads_as="overdue_ratio",
        clause_nonzero=("gaps_longer_than_silence",),
        clause_when_late=("gaps_longer_than_silence",),
    ),
)

_ORDER_SPECS_TAIL = (
    FeatureSpec(
        "gap_mean_days",
        "orders",
        "Mean days between consecutive order days over the whole history (same-day orders merged)",
        "days",
        "orders",
        templates=("Average time between orders: {value}",),
        missing="Fewer than two order days: no purchase rhythm yet",
        high_means="orders rarely",
        low_means="orders frequently",
    ),
    FeatureSpec(
        "gap_median_days",
        "orders",
        "Median days between consecutive order days (the account's typical purchase cycle)",
        "days",
        "orders",
        templates=("Typical time between orders: {value}",),
        missing="Fewer than two order days: no purchase rhythm yet",
        high_means="long purchase cycle",
        low_means="short purchase cycle",
    ),
    FeatureSpec(
        "gap_std_days",
        "orders",
        "Standard deviation (population) of the days between order days",
        "days",
        "orders",
        templates=("Time between orders varies by {value} (standard deviation)",),
        missing="Fewer than two order days: no purchase rhythm yet",
        measured_from=("repeat_orders", 2),
        unmeasured=ONE_GAP,
        high_means="irregular ordering",
        low_means="regular ordering",
    ),
    FeatureSpec(
        "gap_cv",
        "orders",
        "Coefficient of variation of the gaps (std / mean): 0 = perfectly regular",
        "number",
        "orders",
        # said in a manager's words: "std / mean of gaps" was read as jargon on red accounts
        templates=(
            "Spread of the gaps between orders: {value} times the average gap (0 = like clockwork)",
        ),
        missing="Fewer than two order days: no purchase rhythm yet",
        measured_from=("repeat_orders", 2),
        unmeasured=ONE_GAP,
        high_means="irregular ordering",
        low_means="regular ordering",
    ),
    FeatureSpec(
        "gap_last_days",
        "orders",
        "Days between the last two order days",
        "days",
        "orders",
        templates=("The last two orders were {value} apart",),
        missing="Fewer than two order days",
        high_means="the last reorder took long",
        low_means="the last reorder came quickly",
    ),
    FeatureSpec(
        "overdue_ratio",
        "orders",
        "Days since the last order divided by the median gap (above 1 = later than usual)",
        "ratio",
        "orders",
        templates=(
            "No order for {recency_days}, {value} the typical gap of {gap_median_days}; it "
            "went longer without an order {gaps_longer_than_silence} before and came back",
            "No order for {recency_days}, {value} the typical gap of {gap_median_days}",
            "Time since the last order is {value} the typical gap",
        ),
        clause_nonzero=("gaps_longer_than_silence",),
        clause_when_late=("gaps_longer_than_silence",),
        missing="Fewer than two order days: cannot tell whether an order is overdue",
        high_means="overdue against its own purchase cycle",
        low_means="within its usual purchase cycle",
        risk_rises_when="higher",
    ),
    FeatureSpec(
        "gap_typical_days",
        "orders",
        "The gap between order days that half of the account's time between orders was spent "
        "in, or a shorter one (gaps weighted by their length): the silence it is usually in, "
        "which a burst of orders a few days apart (a budget year-end) does not shorten as it "
        "does the median gap. The typical gap of the health lights' overdue rule, not a model "
        "input",
        "days",
        "orders",
        templates=("Typical silence between orders: {value}",),
        missing="Fewer than two order days",
        high_means="long silences between orders are usual",
        low_means="short silences between orders are usual",
        model=False,
    ),
    FeatureSpec(
        "rhythm_quiet_chance",
        "orders",
        "Chance, by the account's own gaps between order days, that no order comes in the "
        "next churn horizon: of its past gaps longer than the current silence (k), the share "
        "also longer than the silence plus the horizon (j), as (j + 0.5) / (k + 1); 0.5 with "
        "no such gap. For the health lights' rhythm rule (health.rhythm_quiet_min), not a "
        "model input",
        "share",
        "orders",
        templates=("By its own past gaps, chance of no order within the churn horizon: {value}",),
        missing="Fewer than two order days: no purchase rhythm yet",
        high_means="a quiet spell is its usual rhythm",
        low_means="its rhythm expects an order soon",
        model=False,
    ),
    FeatureSpec(
        "gaps_longer_than_silence",
        "orders",
        "How many of the account's past gaps between order days were longer than its current "
        "silence: it has come back from a silence this long that many times "
        "(lifecycle.silence_seen_before), not a model input",
        "times",
        "orders",
        templates=("It went longer than its current silence without an order {value} before",),
        missing="Fewer than two order days: no purchase rhythm yet",
        high_means="has been this quiet before and came back",
        low_means="quieter than ever before",
        model=False,
    ),
    FeatureSpec(
        "season_quiet_chance",
        "orders",
        "Chance, by the same season of past years, that no order comes in the next churn "
        "horizon: of the past years (up to 3) in which the account was already a customer, "
        "the share with no order in the same days (the horizon's days 365, 730, 1095 days "
        "before) and an order after them (it came back), as (q + 0.5) / (years + 1); NaN "
        "with no such year. For the health lights' rhythm rule (a beer garden in October, a "
        "ski hut in September), not a model input",
        "share",
        "orders",
        templates=(
            "By the same season of past years, chance of no order within the churn horizon: {value}",
        ),
        missing="No order a year before: no season to compare with",
        high_means="a quiet season is its usual course",
        low_means="it ordered in these days in past years",
        model=False,
    ),
    FeatureSpec(
        "season_quiet_years",
        "orders",
        "How many past years (up to 3) had no order in the same days as the next churn "
        "horizon, and an order after them (season_quiet_chance's q), not a model input",
        "count",
        "orders",
        templates=("Past years quiet in these days, then back: {value}",),
        missing="No order a year before: no season to compare with",
        high_means="quiet in this season before, and came back",
        low_means="ordered in this season before",
        model=False,
    ),
    FeatureSpec(
        "season_pause_chance",
        "orders",
        "Chance, by the same date of past years, that the account's current silence is a "
        "pause it takes every year: of the past years (up to 3) in which it was already a "
        "customer, the share in which the gap between its orders around the same date was "
        "at least as long as its silence now (less a week) and ended within the churn "
        "horizon after the date, as (q + 0.5) / (years + 1); NaN with no such year. For the "
        "health "
        "lights' rhythm rule (a plant closed three weeks every August), not a model input",
        "share",
        "orders",
        templates=(
            "By the same date of past years, chance this silence is its yearly pause: {value}",
        ),
        missing="No order a year before: no past year to compare with",
        high_means="as quiet on this date before, and back soon after",
        low_means="not this quiet on this date before",
        model=False,
    ),
    FeatureSpec(
        "season_pause_years",
        "orders",
        "How many past years (up to 3) the gap between the account's orders around the same "
        "date was at least as long as its silence now (less a week) and ended within the "
        "churn horizon after the date (season_pause_chance's q), not a model input",
        "count",
        "orders",
        templates=("Past years with a gap this long around this date, then back: {value}",),
        missing="No order a year before: no past year to compare with",
        high_means="as quiet on this date before, and back soon after",
        low_means="not this quiet on this date before",
        model=False,
    ),
    FeatureSpec(
        "next_order_days_years_before",
        "orders",
        "Days from the same date of past years to the account's next order then: the median "
        "over the past years (up to 3) in which it was already a customer, 365 for a year "
        "with no order in the year after the date; NaN with no such year. A yearly shutdown "
        "or season (a plant closed three weeks every August, a landscaper's spring) shows "
        "here and in no gap or window",
        "days",
        "orders",
        templates=("In past years its next order came {value} after this date",),
        missing="Not a customer a year before: no past year to compare with",
        high_means="a long pause usually follows this date",
        low_means="it usually ordered soon after this date",
        past_years=True,
    ),
    FeatureSpec(
        "orders_trend_90d",
        "orders",
        "Relative change in order count, last 90 days versus the 90 before: (a-b)/max(b,1), clipped to [-1, 5]",
        "change",
        "orders",
        templates=("Orders in the last 90 days {value} versus the 90 days before",),
        high_means="ordering more than before",
        low_means="ordering less than before",
        risk_rises_when="lower",
    ),
    FeatureSpec(
        "spend_trend_90d",
        "orders",
        "Relative change in spend, last 90 days versus the 90 before: (a-b)/max(|b|,1), clipped to [-1, 5]",
        "change",
        "orders",
        templates=("Spend in the last 90 days {value} versus the 90 days before",),
        high_means="spending more than before",
        low_means="spending less than before",
        risk_rises_when="lower",
    ),
    FeatureSpec(
        "spend_slope_12m",
        "orders",
        "Least-squares slope of spend over the last 12 months (12 buckets of 365/12 days), per month, divided by the mean monthly spend",
        "slope",
        "orders",
        templates=(
            "Monthly spend trend over the last year: {value} of an average month, per month",
        ),
        missing="No positive spend in the last year: no spend trend",
        high_means="spend growing through the year",
        low_means="spend shrinking through the year",
        risk_rises_when="lower",
    ),
    FeatureSpec(
        "products_365d",
        "orders",
        "Distinct products ordered in the last 365 days",
        "count",
        "orders",
        columns=("orders.product",),
        templates=("Distinct products bought in the last 365 days: {value}",),
        high_means="buys a broad range",
        low_means="buys a narrow range",
    ),
    FeatureSpec(
        "products_change_365d",
        "orders",
        "Distinct products in the last 365 days minus distinct products in the 365 days before",
        "count_change",
        "orders",
        columns=("orders.product",),
        templates=(
            "Distinct products bought in the last 365 days: {products_365d} ({value} versus the year before)",
            "Distinct products bought: {value} versus the year before",
        ),
        high_means="product range widening",
        low_means="product range narrowing",
        risk_rises_when="lower",
    ),
    FeatureSpec(
        "aov_365d",
        "orders",
        "Average order value over the last 365 days (spend / orders)",
        "currency",
        "orders",
        templates=("Average order value in the last 365 days: {value}",),
        missing="No order in the last 365 days",
        high_means="large orders",
        low_means="small orders",
    ),
    FeatureSpec(
        "aov_change_365d",
        "orders",
        "Relative change in average order value, last 365 days versus the 365 before, clipped to [-1, 5]",
        "change",
        "orders",
        templates=("Average order value {value} versus the year before",),
        missing="No orders in one of the last two years: no order-value comparison",
        high_means="orders getting larger",
        low_means="orders getting smaller",
        risk_rises_when="lower",
    ),
    FeatureSpec(
        "basket_ratio_90d",
        "orders",
        "Spend per order day of the last 90 days over that of the 275 days before them (days "
        "91 to 365); NaN unless both hold an order day. Per order day, not per order id: "
        "exports number an order's lines apart or not. For the order-value scorecard and the "
        "shrinking-basket rule (a customer moving its purchases to a competitor often keeps "
        "ordering, smaller), not a model input",
        "number",
        "orders",
        templates=(
            "Spend per order day in the last 90 days: {value} times that of the 9 months before",
        ),
        missing="No order in the last 90 days or in the 9 months before: no basket to compare",
        high_means="baskets as large as before or larger",
        low_means="baskets shrinking",
        model=False,
    ),
    FeatureSpec(
        "basket_days_90d",
        "orders",
        "The fewer of the order days in the last 90 days and in the 275 days before them: what "
        "basket_ratio_90d stands on (scorecard.order_value_min_orders), not a model input",
        "count",
        "orders",
        templates=("Order days behind the basket comparison: {value}",),
        high_means="a comparison of many order days",
        low_means="a comparison of few order days",
        model=False,
    ),
    FeatureSpec(
        "tenure_days",
        "orders",
        "Days since the relationship began: the earlier of the account's created_at (if before the as-of) and its first order",
        "days",
        "orders",
        templates=("Customer for {value}",),
        missing="Start of the relationship unknown",
        high_means="long-standing customer",
        low_means="new customer",
    ),
    # -- whole history: the same meaning at any tenure (no fixed window) ---------------------
    FeatureSpec(
        "orders_lifetime",
        "orders",
        "Number of orders over the whole known history before the as-of date (counted as in the windows: distinct order_id when given, else rows)",
        "count",
        "orders",
        templates=("Orders over the whole relationship: {value}",),
        high_means="a long buying history",
        low_means="few orders so far",
    ),
    FeatureSpec(
        "spend_lifetime",
        "orders",
        "Order amount summed over the whole known history before the as-of date (credits subtract)",
        "currency",
        "orders",
        templates=("Spend over the whole relationship: {value}",),
        high_means="a large customer over time",
        low_means="little spend so far",
    ),
    FeatureSpec(
        "orders_per_month",
        "orders",
        "Orders per month since the first order day, over the whole history (month = 365/12 days; at least one month is counted, so a brand-new account's rate does not explode)",
        "rate",
        "orders",
        templates=("Buys {value} times a month on average since the first order",),
        missing="No order on record",
        high_means="buys often over the relationship",
        low_means="buys rarely over the relationship",
    ),
    FeatureSpec(
        "spend_per_month",
        "orders",
        "Spend per month since the first order day, over the whole history (month = 365/12 days; at least one month is counted; credits subtract)",
        "currency",
        "orders",
        templates=("Spends {value} a month on average since the first order",),
        missing="No order on record",
        high_means="spends a lot per month over the relationship",
        low_means="spends little per month over the relationship",
    ),
    FeatureSpec(
        "repeat_orders",
        "orders",
        "Order days after the first one (BG/NBD's repeat frequency x; a day with only credit notes or returns is no order day, as for recency and the gaps)",
        "count",
        "orders",
        templates=("Days with a repeat order after the first order day: {value}",),
        zero_templates=(
            "One order day so far ({first_order_amount} spent), no repeat order yet",
            "One order day so far, no repeat order yet",
        ),
        risk_rises_when="lower",
        missing="No order on record",
        high_means="a loyal repeat buyer",
        low_means="bought once or rarely came back",
    ),
    FeatureSpec(
        "active_span_days",
        "orders",
        "Days from the first to the last order day (BG/NBD's t_x; 0 with a single order day)",
        "days",
        "orders",
        templates=("{value} between the first and the latest order",),
        missing="No order on record",
        high_means="has bought over a long span",
        low_means="has bought over a short span only",
    ),
    FeatureSpec(
        "recency_tenure_ratio",
        "orders",
        "Days since the last order divided by days since the first order (0..1; 1 = no order after the first order day)",
        "share",
        "orders",
        templates=(
            "No order for {recency_days}, {value} of the time since the first order",
            "Time since the last order: {value} of the time since the first order",
        ),
        missing="No order on record",
        high_means="quiet for much of the relationship",
        low_means="still buying late in the relationship",
        reads_as="overdue_ratio",
    ),
    FeatureSpec(
        "first_order_amount",
        "orders",
        "Order amount of the first known order day (all that day's rows, credits subtract)",
        "currency",
        "orders",
        templates=("Spent {value} on the first order day",),
        missing="No order on record",
        high_means="started with a large order",
        low_means="started with a small order",
    ),
    FeatureSpec(
        "credit_share_365d",
        "orders",
        "Credit notes and returns (negative amounts) as a share of gross sales, last 365 days",
        "share",
        "orders",
        templates=("Credits and returns equal {value} of gross sales in the last 365 days",),
        missing="Share of returns and credits not measurable: no sales to compare them with in the last 365 days",
        high_means="many returns or credits",
        low_means="few returns or credits",
    ),
)

_OTHER_SPECS = (
    # -- usage ----------------------------------------------------------------------------
    FeatureSpec(
        "usage_weekly_90d",
        "usage",
        "Mean weekly usage count over the last 90 days (sum / (90/7))",
        "count",
        "usage",
        templates=("Average weekly usage in the last 90 days: {value}",),
        high_means="heavy product use",
        low_means="little product use",
        missing="No product usage on record",
        absent_with="usage_recency_days",
        risk_rises_when="lower",
    ),
    FeatureSpec(
        "usage_trend_90d",
        "usage",
        "Relative change in usage, last 90 days versus the 90 before: (a-b)/max(b,1), clipped to [-1, 5]",
        "change",
        "usage",
        templates=("Usage in the last 90 days {value} versus the 90 days before",),
        high_means="usage growing",
        low_means="usage falling",
        missing="No product usage on record",
        absent_with="usage_recency_days",
        risk_rises_when="lower",
    ),
    FeatureSpec(
        "usage_recency_days",
        "usage",
        "Days since the last day with any usage (count > 0)",
        "days",
        "usage",
        # the clause says whether the silence is news: 11 days is long for an account in
        # use every week ("Product last used 11 days ago (raises risk)" read as nothing);
        # said as a silence, like "No order for 124 days" ("Product last used 11 days ago (in
        # use 96% of the last 26 weeks)" led a red account and read as good news)
        templates=(
            "Product not used for {value} (in use {usage_active_weeks_26w} of the last 26 weeks)",
            "Product not used for {value}",
        ),
        clause_nonzero=("usage_active_weeks_26w",),
        missing="No product usage on record",
        high_means="product not used lately",
        low_means="product used recently",
    ),
    FeatureSpec(
        "usage_active_weeks_26w",
        "usage",
        "Share of the last 26 weeks with any usage",
        "share",
        "usage",
        templates=("Active in {value} of the last 26 weeks",),
        high_means="uses the product every week",
        low_means="rarely uses the product",
        missing="No product usage on record",
        absent_with="usage_recency_days",
        risk_rises_when="lower",
    ),
    FeatureSpec(
        "usage_yoy_90d",
        "usage",
        "Relative change in usage, last 90 days versus the same 90 days a year before: "
        "(a-b)/max(b,1), clipped to [-1, 5]; missing unless the account's usage reaches back "
        "that far. For the usage scorecard (a seasonal dip compared with the season, not with "
        "the 90 days before), not a model input",
        "change",
        "usage",
        templates=("Usage in the last 90 days {value} versus the same days a year before",),
        high_means="usage growing",
        low_means="usage falling",
        missing="Less than 15 months of product usage: no year to compare with",
        model=False,
        risk_rises_when="lower",
    ),
    # -- tickets --------------------------------------------------------------------------
    FeatureSpec(
        "tickets_90d",
        "tickets",
        "Support tickets opened in the last 90 days",
        "count",
        "tickets",
        templates=("Support tickets in the last 90 days: {value}",),
        high_means="many recent support issues",
        low_means="few recent support issues",
    ),
    FeatureSpec(
        "tickets_365d",
        "tickets",
        "Support tickets opened in the last 365 days",
        "count",
        "tickets",
        templates=("Support tickets in the last 365 days: {value}",),
        high_means="many support issues this year",
        low_means="few support issues this year",
    ),
    FeatureSpec(
        "complaints_90d",
        "tickets",
        "Complaints opened in the last 90 days",
        "count",
        "tickets",
        columns=("tickets.is_complaint",),
        templates=("Complaints in the last 90 days: {value}",),
        high_means="recent complaints",
        low_means="no recent complaints",
        risk_rises_when="higher",
    ),
    FeatureSpec(
        "complaints_365d",
        "tickets",
        "Complaints opened in the last 365 days",
        "count",
        "tickets",
        columns=("tickets.is_complaint",),
        templates=("Complaints in the last 365 days: {value}",),
        high_means="complaints this year",
        low_means="no complaints this year",
        risk_rises_when="higher",
    ),
    FeatureSpec(
        "complaints_per_order_365d",
        "tickets",
        "Complaints per order over the last 365 days",
        "number",
        "tickets",
        columns=("tickets.is_complaint",),
        templates=("Complaints per order in the last 365 days: {value}",),
        missing="No order in the last 365 days: no complaint rate per order",
        high_means="complains about many orders",
        low_means="rarely complains about orders",
    ),
    FeatureSpec(
        "complaints_per_month_365d",
        "tickets",
        "Complaints per month over the last 365 days, or over the tenure when shorter (at least one month)",
        "number",
        "tickets",
        columns=("tickets.is_complaint",),
        templates=("Complaints per month over the last year: {value}",),
        high_means="complains often",
        low_means="rarely complains",
    ),
    FeatureSpec(
        "severe_ticket_share_365d",
        "tickets",
        "Share of the last 365 days' tickets with severity high or critical",
        "share",
        "tickets",
        columns=("tickets.severity",),
        templates=("High or critical severity: {value} of tickets in the last 365 days",),
        missing="No tickets in the last 365 days",
        high_means="serious issues",
        low_means="minor issues only",
    ),
    FeatureSpec(
        "open_tickets",
        "tickets",
        "Tickets open at the as-of date (opened before it, not resolved before it)",
        "count",
        "tickets",
        columns=("tickets.resolved_at",),
        templates=("Open support tickets: {value}",),
        high_means="unresolved issues",
        low_means="no unresolved issues",
    ),
    FeatureSpec(
        "open_critical_complaints",
        "tickets",
        "Complaints of severity critical open at the as-of date",
        "count",
        "tickets",
        columns=("tickets.resolved_at", "tickets.severity", "tickets.is_complaint"),
        templates=("Open critical complaints: {value}",),
        high_means="an unresolved critical complaint",
        low_means="no open critical complaint",
        risk_rises_when="higher",
    ),
    FeatureSpec(
        "resolve_days_mean_365d",
        "tickets",
        "Mean days from opening to resolution, tickets resolved in the last 365 days",
        "days",
        "tickets",
        columns=("tickets.resolved_at",),
        templates=("Tickets took {value} to resolve on average (last 365 days)",),
        missing="No ticket resolved in the last 365 days",
        high_means="slow issue resolution",
        low_means="fast issue resolution",
    ),
    # -- surveys --------------------------------------------------------------------------
    FeatureSpec(
        "survey_score_last",
        "surveys",
        "Latest survey score (NPS 0-10 or renewal intent; same-day answers averaged)",
        "score",
        "surveys",
        # out of the scale's top, as the scorecard says it ("renewal intent 3/10"): the
        # loader refuses scores off SURVEY_SCALE, and "Latest renewal intent score 2" left a
        # manager asking "of 5? of 10?"
        templates=(
            f"Latest survey score {{value}}/{SURVEY_SCALE[1]:g}, {{survey_score_change}}",
            f"Latest survey score {{value}}/{SURVEY_SCALE[1]:g}",
        ),
        missing="No survey answered",
        high_means="satisfied",
        low_means="dissatisfied",
    ),
    FeatureSpec(
        "survey_score_change",
        "surveys",
        "Latest survey score minus the previous answer of the same kind (NPS with NPS, renewal intent with renewal intent)",
        "points",
        "surveys",
        templates=("Survey score {value} since the previous answer to the same survey",),
        # an account that never answered says so ("No earlier answer to the same survey: no
        # change" was said of 21 of the demo's 32 such reasons, with no survey at all)
        missing="Only one answer to this survey so far: no trend yet",
        absent_with="survey_recency_days",
        high_means="satisfaction improving",
        low_means="satisfaction falling",
        risk_rises_when="lower",
    ),
    FeatureSpec(
        "survey_recency_days",
        "surveys",
        "Days since the latest survey answer",
        "days",
        "surveys",
        templates=("Last survey answered {value} ago",),
        missing="No survey answered",
        high_means="no recent feedback",
        low_means="recent feedback",
    ),
    # -- contracts ------------------------------------------------------------------------
    FeatureSpec(
        "contract_days_to_end",
        "contracts",
        "Days from the as-of date to the end of the current (or latest) contract; negative when lapsed",
        "days_until",
        "contracts",
        templates=("Contract {value}",),
        missing="No contract on record",
        high_means="contract runs for a long time",
        low_means="contract ends soon or has lapsed",
    ),
    FeatureSpec(
        "contract_value",
        "contracts",
        "Total value of the contracts running at the as-of date (0 when none)",
        "currency",
        "contracts",
        columns=("contracts.value",),
        templates=("Current contract value: {value}",),
        high_means="large contract",
        low_means="small or no contract",
    ),
    FeatureSpec(
        "contract_renewals",
        "contracts",
        "Contracts signed after the account's first one (renewals and follow-on contracts), known at the as-of",
        "count",
        "contracts",
        templates=("Contracts renewed or extended so far: {value}",),
        high_means="renews faithfully",
        low_means="few renewals",
    ),
    FeatureSpec(
        "has_active_contract",
        "contracts",
        "1 when a contract runs at the as-of date (start before it, end on or after it)",
        "flag",
        "contracts",
        templates=("Active contract: {value}",),
        high_means="under contract",
        low_means="no running contract",
    ),
    # -- account --------------------------------------------------------------------------
    FeatureSpec(
        "industry",
        "account",
        "The account's industry (categories fixed from the whole accounts table)",
        "category",
        "accounts",
        kind="cat",
        columns=("accounts.industry",),
        templates=("Industry: {value}",),
        missing="Industry unknown",
    ),
    FeatureSpec(
        "region",
        "account",
        "The account's region (categories fixed from the whole accounts table)",
        "category",
        "accounts",
        kind="cat",
        columns=("accounts.region",),
        templates=("Region: {value}",),
        missing="Region unknown",
    ),
    # -- portfolio ------------------------------------------------------------------------
    FeatureSpec(
        "revenue_share",
        "portfolio",
        "The account's share of total revenue over portfolio.revenue_days (negative revenue counts as 0)",
        "share",
        "orders",
        templates=("Share of company revenue: {value}",),
        high_means="a large part of company revenue",
        low_means="a small part of company revenue",
    ),
    FeatureSpec(
        "abc_tier",
        "portfolio",
        "ABC tier by revenue contribution (portfolio.abc_method: share or pareto rule)",
        "category",
        "orders",
        kind="cat",
        templates=("ABC tier {value}",),
    ),
    FeatureSpec(
        "dependency_index",
        "portfolio",
        "Customer dependency index: revenue share x industry concentration coefficient (portfolio.concentration)",
        "number",
        "orders",
        templates=("Customer dependency index: {value}",),
        high_means="the business depends heavily on this account",
        low_means="little dependency on this account",
    ),
)


def with_typical(spec: FeatureSpec) -> FeatureSpec:
    """``spec`` with, before each template that says the value alone, the same sentence
    with the typical account's value (``{typical}``, :data:`TYPICAL_CLAUSE`): for model
    features in :data:`TYPICAL_UNITS`. "Average time between orders: 96 days (raises risk)"
    left a manager asking against what; "(31 days at a typical account)" says it. The
    caller decides where it is said (:func:`ka_ml.scoring.explain.top_reasons`); without
    it the plain sentence follows."""
    if not spec.model or spec.kind != "num" or spec.unit not in TYPICAL_UNITS:
        return spec
    templates: list[str] = []
    for t in spec.templates:
        fields = {f for _, f, _, _ in string.Formatter().parse(t) if f}
        variant = f"{t} ({TYPICAL_CLAUSE})"
        if fields == {"value"} and variant not in spec.templates:
            templates.append(variant)
        templates.append(t)
    return replace(spec, templates=tuple(templates))


def catalog(windows: Iterable[int] = DEFAULT_WINDOWS) -> tuple[FeatureSpec, ...]:
    """Every feature for these count/spend windows, in catalog (= column) order."""
    ws = sorted(set(int(w) for w in windows))
    counts = tuple(_window_specs(w)[0] for w in ws)
    spends = tuple(_window_specs(w)[1] for w in ws)
    specs = (*_ORDER_SPECS_HEAD, *counts, *spends, *_ORDER_SPECS_TAIL, *_OTHER_SPECS)
    return tuple(with_typical(s) for s in specs)


FEATURES: tuple[FeatureSpec, ...] = catalog()
_BY_NAME: dict[str, FeatureSpec] = {f.name: f for f in FEATURES}
_WINDOW_NAME = re.compile(r"^(orders|spend)_(\d+)d$")


def get(name: str) -> FeatureSpec:
    """The spec of ``name``; window features for any window (``orders_45d``) also resolve."""
    spec = _BY_NAME.get(name)
    if spec is not None:
        return spec
    m = _WINDOW_NAME.match(name)
    if m:
        counts, spends = _window_specs(int(m.group(2)))
        return counts if m.group(1) == "orders" else spends
    raise KeyError(f"unknown feature {name!r}; see ka_ml.features.catalog.FEATURES")


def features_for(history: History, windows: Sequence[int] | None = None) -> list[FeatureSpec]:
    """The catalog features this data can produce (their table and columns exist)."""
    specs = catalog(DEFAULT_WINDOWS if windows is None else windows)
    return [s for s in specs if s.available(history)]


def past_years(specs: Iterable[FeatureSpec] = FEATURES) -> frozenset[str]:
    """Model features read from the same dates of past years (``FeatureSpec.past_years``)."""
    return frozenset(s.name for s in specs if s.past_years and s.model)


def scorer_only(specs: Iterable[FeatureSpec] = FEATURES) -> frozenset[str]:
    """Features built for the scorer's rules that no model reads (``FeatureSpec.model``)."""
    return frozenset(s.name for s in specs if not s.model)


def catalog_table_markdown(specs: Iterable[FeatureSpec] = FEATURES) -> str:
    """The catalog as a markdown table (for the README)."""
    lines = [
        "| feature | family | source | unit | meaning |",
        "|---|---|---|---|---|",
    ]
    for s in specs:
        cols = [c.split(".")[1] for c in s.columns]
        source = f"{s.table} ({', '.join(cols)})" if cols else s.table
        meaning = s.meaning.replace("|", "/")
        lines.append(f"| `{s.name}` | {s.family} | {source} | {s.unit} | {meaning} |")
    return "\n".join(lines) + "\n"
