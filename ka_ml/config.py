"""Typed configuration, validated once at the entry point.

``configs/ka_ml.yaml`` is parsed into :class:`Config`; unknown keys are rejected so a
typo never silently falls back to a default. Every business number (horizon, windows,
thresholds, tiers, the dependency alert) lives here, never in the code.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ka_ml.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("configs/ka_ml.yaml")

TABLES = ("orders", "accounts", "usage", "tickets", "surveys", "contracts")
SEVERITY_LEVELS = ("low", "medium", "high", "critical")  # the tool's ticket severities
# what the ticket exports we meet most call them (Zendesk, Jira, ServiceNow, German CRMs)
DEFAULT_SEVERITY_SYNONYMS = {
    **dict.fromkeys(("urgent", "blocker", "highest", "p1", "kritisch", "dringend"), "critical"),
    **dict.fromkeys(("major", "p2", "hoch"), "high"),
    **dict.fromkeys(("normal", "p3", "mittel"), "medium"),
    **dict.fromkeys(("minor", "trivial", "lowest", "p4", "niedrig"), "low"),
}
# the file names a folder source reads as tables (the loader's, and data.tables's below)
TEXT_SUFFIXES = (".csv.gz", ".tsv.gz", ".txt.gz", ".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
# a file name given as a table name: data.tables {orders: sales_lines.csv} means sales_lines
_TABLE_FILE_SUFFIX = re.compile(
    "(?:" + "|".join(re.escape(x) for x in TEXT_SUFFIXES + PARQUET_SUFFIXES) + ")$",
    re.IGNORECASE,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _without_credentials(uri: str | None, remedy: str) -> str | None:
    """Credentials never live in a config file (it gets committed and copied around):
    neither as ``user:password@`` nor as a ``password=`` query parameter (which database
    drivers accept too)."""
    from urllib.parse import parse_qsl, urlsplit

    if uri and "://" in uri:
        parts = urlsplit(uri)
        query = {k.lower() for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
        if parts.password or query & {"password", "passwd", "pwd"}:
            raise ValueError(f"contains a password: {remedy}")
    return uri


class ReadOptions(_Strict):
    """How delimited text files are parsed (set these for raw CRM exports)."""

    delimiter: str | None = Field(None, description="None = sniff ',' ';' '\\t' '|'")
    encoding: str = Field("utf-8", description="e.g. utf-8, utf-8-sig, latin-1")
    decimal: str = Field(".", description="'.' or ','")
    date_format: str | None = Field(None, description="strftime format; None = ISO/auto")
    dayfirst: bool = False
    grouping_check: bool = Field(
        True,
        description="refuse a number column that looks like whole numbers with thousands "
        "grouped by the decimal mark ('1.266' beside '438' under decimal '.'); false when "
        "three decimal places are real (amounts in KWD, BHD, OMR)",
    )
    yes_no: dict[str, bool] = Field(
        default_factory=dict,
        description="more words (any case) read in the yes/no columns (tickets.is_complaint, "
        "contracts.renewed), e.g. {complaint: true, question: false} for a ticket type column",
    )

    @field_validator("yes_no")
    @classmethod
    def _yes_no_words(cls, v: dict[str, bool]) -> dict[str, bool]:
        return {str(k).strip().lower(): bool(b) for k, b in v.items()}


class DataConfig(_Strict):
    # the YAML key is `schema` (a pydantic BaseModel attribute, hence the field's own name)
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )

    source: str | None = Field(
        None,
        description="folder, DuckDB/SQLite file, or a SQLAlchemy URL without a password "
        "(postgresql+psycopg://user@host:5432/db; the password comes from KA_ML_DB_PASSWORD "
        "or the driver's own PGPASSWORD / ~/.pgpass); None = demo data",
    )
    db_schema: str | None = Field(
        None,
        alias="schema",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="database sources: the schema holding the tables; None = the "
        "connection's default (PostgreSQL: search_path, usually public)",
    )
    lock_timeout_seconds: float | None = Field(
        300,
        gt=0,
        description="database sources (PostgreSQL): how long a read waits for a lock another "
        "session holds on a table (a migration, LOCK TABLE) before it fails naming the table; "
        "None = wait indefinitely",
    )
    demo_dir: Path = Path("data/demo")
    demo_accounts: int = Field(2000, ge=10)
    demo_years: float = Field(3.0, gt=0.5)
    demo_seed: int = 42
    tables: dict[str, str] = Field(
        default_factory=dict,
        description="canonical table -> name in the source (a file extension given with it, "
        "as in sales_lines.csv, is dropped); a table mapped here must be in the source",
    )
    columns: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="table -> {canonical column: source column}"
    )
    read: ReadOptions = ReadOptions()  # type: ignore[call-arg]
    account_id_case: Literal["keep", "upper", "lower"] = Field(
        "keep",
        description="letter case of account ids in every table, applied before anything "
        "else: keep (ids are case-sensitive, as Salesforce's 15-character ids are; ids that "
        "differ only in case are warned about) or fold them to upper / lower case so "
        "'ka-0287' and 'KA-0287' are one account",
    )
    account_id_zeros: Literal["keep", "strip"] = Field(
        "keep",
        description="leading zeros of account ids in every table: keep (ids are text: "
        "'00017' and '17' are two accounts, warned about) or strip them before anything "
        "else, so an export that wrote the id as a number in part of the file still matches",
    )
    severity_synonyms: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITY_SYNONYMS),
        description="ticket severities of the export (any case) -> low/medium/high/critical; "
        "replaces the default list, so keep its entries you need; other values than these "
        "and low/medium/high/critical are an error",
    )
    currency_rates: dict[str, float] | None = Field(
        None,
        description="the value of one unit of each currency in the currency the report "
        "shows (report.currency), e.g. {USD: 1, CAD: 0.73}: order amounts and contract "
        "values are converted row by row by their currency column (found by its name, as "
        "the mixed-currency warning finds it: currency, CurrencyIsoCode, WAERS, ...); a blank "
        "currency is taken as already in the report's; a currency without a rate is an "
        "error naming its rows. One rate per currency (a year's or a month's average): for "
        "the rate of each row's date, convert before the export (null: amounts as they are)",
    )
    future_rows: Literal["error", "drop"] = Field(
        "drop", description="rows dated on/after the as-of: drop with a warning, or error"
    )
    max_file_mb: float | None = Field(
        1024,
        gt=0,
        description="refuse a table file (or database file) larger than this many MB before "
        "reading it: tables are read whole, and delimited text needs several times its size "
        "in memory; null = no limit",
    )

    @field_validator("source")
    @classmethod
    def _no_credentials(cls, v: str | None) -> str | None:
        return _without_credentials(
            v,
            "remove it; a database password comes from the environment "
            "(KA_ML_DB_PASSWORD, or PGPASSWORD / ~/.pgpass for PostgreSQL)",
        )

    @field_validator("tables", "columns")
    @classmethod
    def _known_tables(cls, v: dict) -> dict:
        bad = sorted(set(v) - set(TABLES))
        if bad:
            hints = [f"'{b}' -> '{m[0]}'" for b in bad if (m := close_matches(b, TABLES))]
            hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
            raise ValueError(f"unknown table(s) {bad}{hint}; allowed: {list(TABLES)}")
        return v

    @field_validator("tables")
    @classmethod
    def _without_file_suffix(cls, v: dict[str, str]) -> dict[str, str]:
        return {table: _TABLE_FILE_SUFFIX.sub("", name.strip()) for table, name in v.items()}

    @field_validator("severity_synonyms")
    @classmethod
    def _known_severities(cls, v: dict[str, str]) -> dict[str, str]:
        out = {str(k).strip().casefold(): str(s).strip().casefold() for k, s in v.items()}
        bad = sorted({s for s in out.values() if s not in SEVERITY_LEVELS})
        if bad:
            raise ValueError(
                f"maps to {bad}, which are not severities; map each value to one of "
                f"{list(SEVERITY_LEVELS)}"
            )
        return out

    @field_validator("currency_rates")
    @classmethod
    def _positive_rates(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        """Codes as the rows are compared (trimmed, upper case); every rate above zero."""
        if v is None:
            return None
        out = {str(k).strip().upper(): float(r) for k, r in v.items()}
        if len(out) < len(v):
            raise ValueError("names a currency twice (codes are compared in upper case)")
        if bad := sorted(k for k, r in out.items() if not r > 0 or r == float("inf")):
            raise ValueError(f"needs a rate above zero for {bad}")
        return out


class PathsConfig(_Strict):
    outputs: Path = Path("outputs")
    models: Path = Path("models")


class LabelsConfig(_Strict):
    horizon_days: int = Field(90, ge=7)
    churn_definition: Literal["auto", "no_order", "contract", "revenue_drop"] = "auto"
    auto_orders_first_share: float | None = Field(
        0.5,
        gt=0,
        le=1,
        description="auto: where more than this share of the accounts whose last contract "
        "ended with no order since had stopped ordering over the horizon before it ended, "
        "contracts do not bind orders on this data and train judges every account by its "
        "orders (no_order), the champion's scores too; null = running contracts always by "
        "their end",
    )
    auto_min_contract_ends: int = Field(
        20, ge=1, description="auto: ... judged on at least this many such accounts"
    )
    revenue_drop_fraction: float = Field(
        0.2, gt=0, lt=1, description="revenue_drop: churn when window revenue < fraction x prior"
    )
    purchase_windows: list[int] = Field(default_factory=lambda: [30, 60, 90])
    at_risk_only: bool = Field(
        False,
        description="train and evaluate churn only on accounts still active at the snapshot "
        "(a running contract, or an order within the horizon before it). False (default) = "
        "every account the scorer scores, so the model is trained on the accounts it is "
        "used on.",
    )

    @field_validator("purchase_windows")
    @classmethod
    def _sorted_positive(cls, v: list[int]) -> list[int]:
        if not v or any(k <= 0 for k in v):
            raise ValueError("purchase_windows must be a non-empty list of positive day counts")
        return sorted(set(v))


class FeaturesConfig(_Strict):
    windows_days: list[int] = Field(default_factory=lambda: [30, 90, 180, 365])
    eligibility_days: int = Field(
        365, ge=1, description="eligible: an order within this many days, or an active contract"
    )
    snapshot_every_days: int | None = Field(
        None,
        ge=7,
        description="cadence of training snapshots; null = chosen from the history length "
        "(weekly to four-weekly, about target_snapshots over the history)",
    )
    max_snapshots: int | None = Field(
        None, ge=1, description="most snapshots built; null = as many as the cadence gives"
    )
    target_snapshots: int = Field(
        36, ge=4, description="automatic cadence: about this many snapshots over the history"
    )
    min_history_days: int = Field(
        28, ge=1, description="the first snapshot needs this much order history behind it"
    )
    chunk_accounts: int = Field(200_000, ge=1000, description="accounts per feature chunk")


class PortfolioConfig(_Strict):
    revenue_days: int = Field(365, description="revenue share is measured over this window")
    abc_method: Literal["share", "pareto"] = "pareto"
    abc_share_a: float = Field(0.30, description="share rule: A when share > this")
    abc_share_b: float = Field(0.10, description="share rule: B when share >= this")
    pareto_a: float = Field(0.80, description="pareto rule: A = accounts making the top 80%")
    pareto_b: float = Field(0.95, description="pareto rule: B = up to 95% cumulative")
    tier_hysteresis: float = Field(
        0.02,
        ge=0,
        lt=0.5,
        description="an account keeps last week's ABC tier while it stays within this much "
        "portfolio revenue share of the cut between the two tiers (pareto: of the cumulative "
        "share, share rule: of its own share); 0 = no hysteresis",
    )
    tier_a_note_share: float | None = Field(
        0.3,
        gt=0,
        le=1,
        description="pareto rule: the report notes when tier A holds more than this share of "
        "the active and new accounts (revenue spread evenly makes most accounts key accounts), "
        "with how many a lower pareto_a would keep; null: no note",
    )
    concentration: Literal["industry_share", "industry_hhi"] = "industry_share"
    dependency_alert: float = 0.4


class LifecycleConfig(_Strict):
    """Which accounts are judged for risk (new, active) and which are already lost (lapsed).

    Lapsed: the last contract ended more than ``contract_grace_days`` ago with none running
    and no order since its end, or (no contract running) no order for longer than
    ``lapsed_after_days`` (null = the churn horizon) and longer than
    ``lapsed_cycle_multiple`` times the account's own typical gap between orders. New (not lapsed): fewer than ``new_min_orders`` orders or a
    tenure shorter than ``new_min_tenure_days`` (null = the horizon); scored and flagged
    low confidence.
    """

    contract_grace_days: int = Field(
        30, ge=0, description="a contract that ended this many days ago may still be renewed"
    )
    lapsed_after_days: int | None = Field(
        None, ge=1, description="no order for longer than this (null = the horizon) ..."
    )
    lapsed_cycle_multiple: float = Field(
        3.0, ge=1, description="... and longer than this x the account's own typical gap"
    )
    silence_seen_before: int | None = Field(
        2,
        ge=1,
        description="an account with at least this many past gaps longer than its current "
        "silence has come back from such a silence before (an annual buyer whose season's "
        "call-offs make its typical gap 3 days, a project buyer between projects): not "
        "lapsed, and not overdue by the typical-gap rule (null: off)",
    )
    lapsed_min_churn_probability: float | None = Field(
        0.5,
        ge=0,
        le=1,
        description="an account is lapsed only when its churn probability is at least this: "
        "silent past its cycle, but the model gives it better than even odds of ordering "
        "within the horizon, it is judged, not written off (null: the silence alone)",
    )
    new_min_orders: int = Field(3, ge=1, description="fewer orders than this: new")
    new_min_tenure_days: int | None = Field(
        None, ge=0, description="a shorter tenure than this (null = the horizon): new"
    )


class ScorecardConfig(_Strict):
    """The business's own health measures, each read as red / yellow / green beside the model.

    Usage: weekly usage of the last 90 days against the 90 before (``usage_trend_90d``), or
    with ``usage_compare: year_before`` against the same days a year before where the
    account's usage reaches back that far (``usage_yoy_90d``); ratio red below
    ``usage_red_ratio``, yellow below ``usage_yellow_ratio``; no usage at all for 90 days
    is red. Complaints: complaints
    opened in the last 90 days (red from ``complaints_red``, yellow from
    ``complaints_yellow``). Renewal intent: the latest answer of the survey
    kinds in ``renewal_intent_kinds`` (red at or below ``intent_red``, yellow at or below
    ``intent_yellow``), kept apart from NPS (``nps_kinds``, not a scorecard light).
    Purchase rhythm: days since the last order over the account's typical gap (red from
    ``rhythm_red``, yellow from ``rhythm_yellow``). Order value: the spend per order day of
    the last 90 days over that of the 9 months before (red below ``order_value_red_ratio``,
    yellow below ``order_value_yellow_ratio``), on ``order_value_min_orders`` order days or
    more in each. Contract value: the latest renewal (started within
    ``contract_value_max_age_days``) against the terms it replaced (red below
    ``contract_value_red_ratio``, yellow below ``contract_value_yellow_ratio``).
    """

    usage_red_ratio: float = Field(0.5, gt=0)
    usage_yellow_ratio: float = Field(0.8, gt=0)
    usage_compare: Literal["previous_90d", "year_before"] = Field(
        "previous_90d",
        description="what the last 90 days of usage are compared with: the 90 days before; "
        "or year_before: the same 90 days a year before where the account's usage reaches "
        "back that far (else the 90 days before), for usage with strong seasons (a summer "
        "or December dip is then judged against last year's, not against the busier "
        "months before it); see the README for what it cost on a seasonal portfolio",
    )
    complaints_red: int = Field(3, ge=1)
    complaints_yellow: int = Field(1, ge=1)
    renewal_intent_kinds: list[str] = Field(
        default_factory=lambda: ["renewal_intent", "renewal"],
        description="survey kinds read as renewal intent (score 0-10)",
    )
    nps_kinds: list[str] = Field(default_factory=lambda: ["nps"])
    intent_red: float = Field(4.0, description="renewal intent at or below this: red")
    intent_yellow: float = Field(6.0, description="renewal intent at or below this: yellow")
    intent_max_age_days: int = Field(365, ge=1, description="older answers are not read")
    rhythm_red: float = Field(2.0, gt=0, description="days since the last order / typical gap")
    rhythm_yellow: float = Field(1.3, gt=0)
    order_value_red_ratio: float = Field(
        0.5,
        gt=0,
        description="spend per order day of the last 90 days / that of the 9 months before: "
        "red below this",
    )
    order_value_yellow_ratio: float = Field(0.8, gt=0, description="... yellow below this")
    contract_value_red_ratio: float = Field(
        0.6,
        gt=0,
        description="the latest renewal's value / that of the terms it replaced: red below this",
    )
    contract_value_yellow_ratio: float = Field(0.9, gt=0, description="... yellow below this")
    contract_value_max_age_days: int = Field(
        365, ge=1, description="renewals that started longer ago than this are not read"
    )
    order_value_min_orders: int = Field(
        5,
        ge=1,
        description="the order-value measure (and health.basket_drop_raises) needs at least "
        "this many order days in the last 90 days and in the 9 months before: an average of "
        "a few lumpy orders (a caterer's events) is no basket size",
    )

    @model_validator(mode="after")
    def _ordered(self) -> ScorecardConfig:
        if not (self.usage_red_ratio < self.usage_yellow_ratio):
            raise ValueError("usage_red_ratio must be below usage_yellow_ratio")
        if self.complaints_yellow > self.complaints_red:
            raise ValueError("complaints_yellow must not exceed complaints_red")
        if self.intent_red >= self.intent_yellow:
            raise ValueError("intent_red must be below intent_yellow")
        if self.rhythm_yellow >= self.rhythm_red:
            raise ValueError("rhythm_yellow must be below rhythm_red")
        if self.order_value_red_ratio >= self.order_value_yellow_ratio:
            raise ValueError("order_value_red_ratio must be below order_value_yellow_ratio")
        if self.contract_value_red_ratio >= self.contract_value_yellow_ratio:
            raise ValueError("contract_value_red_ratio must be below contract_value_yellow_ratio")
        return self


class HealthConfig(_Strict):
    mode: Literal["budget", "threshold"] = Field(
        "budget",
        description="budget: red = the riskiest red_share of active and new accounts, yellow "
        "the next yellow_share (ranked by rank_by); threshold: absolute probabilities",
    )
    rank_by: Literal["churn_probability", "revenue_at_risk"] = "churn_probability"
    red_share: float = Field(0.10, gt=0, lt=1)
    yellow_share: float = Field(0.20, ge=0, lt=1)
    red_min_probability: float = Field(
        0.25, ge=0, lt=1, description="budget mode: never red below this churn probability"
    )
    yellow_min_probability: float = Field(
        0.10, ge=0, lt=1, description="budget mode: never yellow below this churn probability"
    )
    red_threshold: float = Field(0.5, gt=0, lt=1)
    yellow_threshold: float = Field(0.25, gt=0, lt=1)
    hysteresis: float = Field(
        0.05, ge=0, lt=0.5, description="leave a light only when past its threshold by this"
    )
    overdue_raises: bool = Field(True, description="past the p90 next-order date: at least yellow")
    overdue_under_contract: bool = Field(
        False,
        description="the overdue rule also raises accounts judged by a running contract "
        "(churn_definition contract). Off: their orders are billing, not the relationship "
        "(an annual prepaid licence beside occasional services invoices), and the contract's "
        "lapse is what their churn probability forecasts. On four test worlds 1,093 such "
        "overdue yellows held 26 account-weeks lost within 90 days, 25 of them on frame "
        "contracts that do not bind orders, where labels.churn_definition: no_order is the fix",
    )
    overdue_ratio_fallback: float = Field(
        3.0,
        gt=1,
        description="no forecast made from the last order (a first run, or silent since "
        "before the score history): overdue past this x typical gap",
    )
    overdue_min_gaps: int = Field(
        2,
        ge=1,
        description="the typical-gap rule needs at least this many gaps between order days: "
        "one gap is no rhythm (an annual subscription invoice and a one-off invoice 36 days "
        "later made a healthy annual payer 'overdue, 5.8x the typical gap' half a year on)",
    )
    overdue_ratio_measured: bool = Field(
        True,
        description="instead, this run's own p90 in typical gaps (median over the accounts "
        "that ordered within scoring.change_lookback_days), when at least 30 did",
    )
    basket_drop_raises: bool = Field(
        False,
        description="an account whose baskets shrank (the order-value scorecard yellow or "
        "red: its spend per order day of the last 90 days below scorecard.order_value_yellow_ratio "
        "of the 9 months before, on scorecard.order_value_min_orders orders or more in each) "
        "is at least yellow: a customer moving its purchases to a competitor often keeps "
        "ordering, smaller, and stays green by a churn probability of no order in 90 days",
    )
    critical_complaint_raises: bool = Field(
        True, description="an open critical complaint: at least critical_complaint_light"
    )
    critical_complaint_light: Literal["yellow", "red"] = Field(
        "yellow",
        description="the light an open critical complaint raises an account to at least. "
        "Yellow by default: red stays the churn ranking's list; red puts every such account "
        "on it (a packaging supplier's 62 account-weeks with one open were all lost within "
        "90 days, at a median churn probability of 8%: too few cases for its model to learn)",
    )
    seen_before_max_light: Literal["yellow", "green"] | None = Field(
        None,
        description="the highest light the churn ranking gives an account judged by its orders "
        "(churn definition no_order) that is silent for longer than its typical gap and has "
        "come back from a silence this long before (lifecycle.silence_seen_before times: a "
        "project buyer between projects, a seasonal buyer off season); overrides still raise "
        "it. Off (null) by default: it sharpened a distributor's red list (really lost among "
        "the reds 28% -> 68%) and blunted the demo's (32% -> 29%); train's 'pauses' caution "
        "names it",
    )
    season_quiet: bool = Field(
        True,
        description="the rhythm rule also reads the same days of past years "
        "(season_quiet_chance at least rhythm_quiet_min: no order in the next horizon's days "
        "in each of the last two or three years, and back after each time): a beer garden "
        "in October, a ski hut in September, whose many short in-season gaps hide their "
        "winters from the gaps alone",
    )
    pause_min_gaps: float | None = Field(
        1.5,
        ge=1.0,
        description="... and the same date of past years (season_pause_chance at least "
        "rhythm_quiet_min: a gap between orders around that date at least as long as the "
        "silence now, ended within the horizon, in each of the last two or three years) "
        "for an account silent at least this many typical gaps: a plant closed three weeks "
        "every August. Shorter silences are left to the other rules (just past its gap, any "
        "account's past gaps look as long); null = off",
    )
    season_peers: Literal["industry", "region"] | None = Field(
        "industry",
        description="an account with fewer than two past years of its own to read its "
        "season from (a first-season landscaper in December) borrows the season of its "
        "peers: the accounts of the same industry (or region) with two years or more. Where "
        "their same days of past years were quiet (no order in the horizon's days, back "
        "after) at least rhythm_quiet_min of the time, and its own past year, if any, was "
        "too, it is not lit by its churn probability and not written off as lapsed; an "
        "account silent for a year minus the horizon or more missed its season and is "
        "judged as any other (null: off; needs season_quiet)",
    )
    season_peers_min: int = Field(
        5,
        ge=1,
        description="peers with two years or more of their own a group needs before it "
        "lends its season",
    )
    rhythm_quiet_min: float | None = Field(
        0.8,
        gt=0.5,
        le=1,
        description="an account judged by its orders (churn definition no_order) whose own "
        "gaps make the next churn horizon without an order at least this likely "
        "(rhythm_quiet_chance; 0.83 = two past gaps longer than its silence, both also "
        "longer than the silence plus the horizon: a rhythm seen twice) is not lit by its "
        "churn probability, "
        "which then only restates its rhythm (an annual buyer two months after its order): "
        "green unless an override raises it (null: off)",
    )
    quiet_spells_min: int | None = Field(
        2,
        ge=1,
        description="an account judged by its orders that has gone longer than its current "
        "silence plus the churn horizon without an order this many times before, and came "
        "back each time, is not lit by its churn probability either: no order in the "
        "horizon is something it has done and survived (a project buyer between projects, "
        "a seasonal buyer); lit again once its silence outgrows them (null: off)",
    )
    rhythm_excess_min: float | None = Field(
        0.0,
        ge=0,
        le=1,
        description="an account judged by its orders with three or more past gaps longer "
        "than its silence whose churn probability exceeds its own gaps' chance of no order "
        "in the horizon (rhythm_quiet_chance) by less than this is not lit by its churn "
        "probability either (a quarterly buyer the day after an order: 47% against 50%); "
        "0: lit only above its rhythm's chance; null: off",
    )
    win_back_action: str = Field(
        "Win-back: call to learn why they stopped and whether an offer would bring them back.",
        description="the action shown for lapsed accounts",
    )
    renewal_due_days: int | None = Field(
        90,
        ge=0,
        description="a running contract ending within this many days: the renewal action "
        "replaces the tier and light's (null: never)",
    )
    renewal_unlearnt_min_lapses: int | None = Field(
        10,
        ge=1,
        description="while the churn model has seen fewer accounts than this lapse under a "
        "running contract in its training labels, an account whose contract ends within "
        "renewal_due_days with no renewal on record is at least yellow: the model cannot "
        "tell a renewal from a loss (a lab distributor's 15 months held no lapsed 2-year "
        "tender; the model read 'contract ends in 13 days' as lowering the risk and every "
        "lost tender stayed green). Models trained before this rule are judged as before "
        "(null: off)",
    )
    renewal_action: str = Field(
        "Renewal due in {days}: agree the renewal with the buyer now.",
        description="the action shown while a renewal is due ({days}: e.g. '9 days' to the "
        "contract's end)",
    )
    renewal_silent_action: str = Field(
        "Renewal due in {days}, but no order for {silence}: ask what they still need before "
        "agreeing the renewal.",
        description="the renewal action for an account that has stopped ordering (silent "
        "longer than the horizon and over scorecard.rhythm_red typical gaps) under the "
        "running contract ({days}: to its end; {silence}: since the last order)",
    )
    renewal_overdue_action: str = Field(
        "Contract ended {days} ago without a renewal: agree the renewal with the buyer now.",
        description="the action shown once the contract has ended, none running, within "
        "lifecycle.contract_grace_days (while it may still be renewed; {days}: since its end)",
    )
    complaint_action: str | None = Field(
        "Open critical complaint: have it resolved with the customer this week, before any "
        "other conversation.",
        description="the action shown while an account has an open critical complaint, "
        "before the renewal and tier actions (null: those)",
    )
    actions: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {
            "A": {
                "red": "Dedicated team: escalate now and book a strategic meeting this month.",
                "yellow": "Dedicated team: raise at the next quarterly strategic meeting.",
                "green": "Dedicated team: keep the quarterly strategic meeting.",
            },
            "B": {
                "red": "Monthly deep review now: call the buyer this week.",
                "yellow": "Put on the agenda of this month's deep review.",
                "green": "Monthly deep review as usual.",
            },
            "C": {
                "red": "Standard service process: reach out and check satisfaction.",
                "yellow": "Standard service process: watch next month.",
                "green": "Standard service process.",
            },
        }
    )

    @model_validator(mode="after")
    def _ordered(self) -> HealthConfig:
        if self.yellow_threshold >= self.red_threshold:
            raise ValueError("yellow_threshold must be below red_threshold")
        if self.red_share + self.yellow_share >= 1:
            raise ValueError("red_share + yellow_share must stay below 1")
        return self


class MlflowConfig(_Strict):
    tracking_uri: str | None = Field(
        None, description="None = sqlite:///<paths.models>/mlflow.db (MLFLOW_TRACKING_URI wins)"
    )
    experiment: str = "ka_ml"
    churn_model_name: str = "ka_ml_churn"
    timing_model_name: str = "ka_ml_timing"
    promotion_margin: float = Field(0.0, ge=0, description="ROC AUC gain needed to replace")
    calibration_ceiling: float = Field(
        0.05,
        gt=0,
        description="max ECE for promotion (an ECE within what a perfectly calibrated model "
        "shows by chance on the test rows passes)",
    )
    few_test_accounts: int = Field(
        200,
        ge=0,
        description="below this many distinct accounts on the test origins, train says its "
        "figures are rough: the accounts scored later can do far worse or better than an "
        "interval over so few shows (0 = never say it)",
    )
    label_return_days: int = Field(
        365,
        ge=1,
        description="how long after its churn window an account labelled churn by 'no order' "
        "is watched for a next order, on snapshots the data follows that far",
    )
    max_label_return_share: float | None = Field(
        0.5,
        gt=0,
        le=1,
        description="train cautions when more than this share of those accounts ordered "
        "again: the label then marks pauses more often than losses (annual or project "
        "buyers), and its precision and ROC AUC say how well pauses are foreseen "
        "(null = never say it)",
    )

    @field_validator("tracking_uri")
    @classmethod
    def _no_credentials(cls, v: str | None) -> str | None:
        return _without_credentials(
            v,
            "set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_URI) "
            "in the environment instead",
        )


class TuningConfig(_Strict):
    n_trials: int = Field(12, ge=1)
    timeout_seconds: float = Field(90, gt=0)
    n_folds: int = Field(
        2, ge=1, description="not used since rolling origins (kept for old configs)"
    )
    test_snapshots: int = Field(1, ge=1, description="not used since rolling origins")
    calibration_snapshots: int = Field(2, ge=1, description="not used since rolling origins")
    backtest_origins: int = Field(
        3,
        ge=1,
        description="rolling out-of-time test origins in every train (fewer, with a note, "
        "when the history is short; when the labelled snapshots span less than the purge, "
        "origins that hold account groups out instead: in time, with a note)",
    )
    purge_days: int | None = Field(
        None,
        ge=0,
        description="days between a training snapshot and a test origin; None = the churn "
        "horizon, and never shorter than it (a shorter purge lets the model recognise "
        "accounts whose outcome it saw)",
    )
    max_accounts: int | None = Field(
        25_000,
        ge=100,
        description="accounts training learns from (snapshots, tuning, every test origin, "
        "the final fits); above it, a seeded random sample of that many of the accounts "
        "with an order or a contract before the as-of date. Scoring always covers every "
        "account. None = every account. Large portfolios only: a quicker retrain at a small "
        "cost in ROC AUC",
    )
    max_churn_rows: int | None = Field(
        500_000,
        ge=1000,
        description="snapshot rows one churn-model fit uses (tuning, each test origin, the "
        "final fit); above it, a seeded random sample of that many rows. None = every row. "
        "Large portfolios only: fit time grows faster than the rows, the gain in ROC AUC "
        "beyond a few hundred thousand rows is small",
    )
    max_timing_rows: int | None = Field(
        150_000,
        ge=1000,
        description="snapshot rows one purchase-timing fit uses (each becomes up to one row "
        "per interval of the hazard, ~8 on average); above it, a seeded random sample. "
        "None = every row",
    )


class ReportConfig(_Strict):
    currency: str = Field("", description="shown with money, e.g. EUR or €; '' = none")
    risk_rise_points: float = Field(
        0.10, gt=0, lt=1, description="a weekly rise this large (0.10 = 10 points) needs attention"
    )
    attention_rows: int = Field(25, ge=1, description="rows shown in 'Needs attention'")
    win_back_rows: int = Field(25, ge=1, description="rows shown in 'Win-back'")
    run_rate_days: int = Field(
        180,
        ge=30,
        description="revenue at risk without a running contract: the run rate of this many "
        "days (the nearest features.windows_days window), annualised",
    )
    max_accounts: int = Field(
        3000, ge=10, description="accounts shown in report.html (most revenue at risk first)"
    )
    max_excel_rows: int = Field(100_000, ge=10, description="account rows in scores.xlsx")


class ScoringConfig(_Strict):
    chunk_rows: int = Field(
        50_000, ge=100, description="accounts scored and explained per chunk (bounds memory)"
    )
    previous_run_max_days: int = Field(
        21, ge=1, description="'since last week' compares with the latest run this recent"
    )
    change_lookback_days: int = Field(
        7,
        ge=1,
        description="with no stored run to compare with, 'since last week' recomputes the "
        "features this many days back",
    )
    stale_data_days: int | None = Field(
        28,
        ge=1,
        description="score warns when the newest order is this many days before the scoring "
        "date (a stale export makes every account look quieter than it is); None = never",
    )
    refuse_stale: bool = Field(
        False,
        description="true: stale or late data (the warnings of stale_data_days and of late "
        "feeds or orders) stops score with exit 2 before anything is written, for a "
        "scheduler that watches exit codes",
    )


_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# a plain address (local@domain.tld): no display names, spaces, brackets or line breaks
EMAIL_ADDRESS = (
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


class SmtpConfig(_Strict):
    """The mail server the digests go through; credentials come from the environment."""

    host: str = "localhost"
    port: int = Field(587, ge=1, le=65535)
    tls: Literal["starttls", "ssl", "none"] = Field(
        "starttls", description="starttls (port 587), ssl (port 465) or none (a local relay)"
    )
    sender: str = Field("ka-ml@example.com", pattern=EMAIL_ADDRESS, description="From address")
    timeout_seconds: float = Field(30, gt=0)
    user_env: str = Field("KA_ML_SMTP_USER", pattern=_ENV_NAME)
    password_env: str = Field("KA_ML_SMTP_PASSWORD", pattern=_ENV_NAME)


class DeliveryConfig(_Strict):
    """Per-owner digests, e-mail, the read API and the database write-back (issue 9)."""

    owner_reports: bool = Field(True, description="score writes owners/<owner>.html + digests")
    recipients: dict[str, str] = Field(
        default_factory=dict, description="owner (as in accounts.owner) -> e-mail address"
    )
    address_template: str | None = Field(
        "{slug}@example.com",
        description="address of an owner missing from recipients: {owner} or {slug} "
        "(lower-case, dots, umlauts and ß spelled out: juergen.weiss); an address at "
        "example.com or another domain reserved for examples is a placeholder, never sent "
        "to; null = only recipients (an owner that is itself an address "
        "always works)",
    )
    default_recipient: str | None = Field(
        None,
        pattern=EMAIL_ADDRESS,
        description="gets the accounts without an owner, and owners without a real address "
        "(none, or only a placeholder such as {slug}@example.com)",
    )
    unassigned_label: str = Field("unassigned", min_length=1, description="the no-owner group")
    subject_prefix: str = "[ka-ml]"
    max_listed: int = Field(10, ge=1, description="accounts listed per section of a digest")
    attach_report: bool = Field(True, description="attach the owner's report.html to the mail")
    smtp: SmtpConfig = SmtpConfig()
    api_token_env: str = Field("KA_ML_API_TOKEN", pattern=_ENV_NAME)
    api_stale_after_days: int | None = Field(
        8,
        ge=0,
        description="GET /healthz answers status 'stale' when the latest scores' as-of date "
        "is more than this many days old (a weekly job that stopped: 8 = a week and a day); "
        "null = never",
    )
    writeback_url_env: str = Field("KA_ML_WRITEBACK_URL", pattern=_ENV_NAME)
    writeback_url: str | None = Field(
        None,
        description="SQLAlchemy URL without a password (the environment variable wins); "
        "null = sqlite:///<paths.outputs>/scores.db",
    )
    writeback_fallback: bool = Field(
        True,
        description="false: --writeback without the URL variable or writeback_url is an "
        "error before anything is scored, not a write to the local SQLite file (for "
        "production, where a missing environment file must stop the job)",
    )
    writeback_table: str = Field(
        "ka_ml_scores",
        pattern=r"^([A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}$",
        description="table, or schema.table (plain identifiers; the schema must exist)",
    )

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(owner for owner, addr in v.items() if not re.match(EMAIL_ADDRESS, addr))
        if bad:
            raise ValueError(f"not a plain e-mail address for owner(s) {bad[:5]}")
        return v

    @field_validator("address_template")
    @classmethod
    def _template_fields(cls, v: str | None) -> str | None:
        import string

        if v is None:
            return v
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(v) if f is not None}
        except ValueError as e:
            raise ValueError(f"not a valid template: {e}") from e
        if not fields or not fields <= {"owner", "slug"}:
            raise ValueError("use {owner} and/or {slug}, e.g. '{slug}@yourcompany.com'")
        return v

    @field_validator("writeback_url")
    @classmethod
    def _no_password(cls, v: str | None) -> str | None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if v is None:
            return v
        try:
            url = make_url(v)
        except ArgumentError as e:
            raise ValueError(f"not a SQLAlchemy URL: {e}") from e
        if url.password:
            raise ValueError(
                "contains a password: put the URL in the environment variable named by "
                "writeback_url_env instead of the config file"
            )
        return v


class MonitoringConfig(_Strict):
    """Input drift (PSI against the training reference) and outcome backtests (issue 7)."""

    psi_bins: int = Field(10, ge=2, le=50, description="quantile bins per numeric feature")
    psi_warn: float = Field(0.1, gt=0, description="PSI from which a feature is listed as shifting")
    psi_alert: float = Field(0.25, gt=0, description="PSI from which a feature counts as drifted")
    psi_natural_margin: float = Field(
        1.25,
        ge=1,
        description="a feature also needs PSI above this x its own snapshot-to-snapshot PSI "
        "in training (calendar-driven features move every week)",
    )
    min_features_alerting: int = Field(
        1, ge=1, description="drifted features needed to show the report's drift banner"
    )
    min_backtest_rows: int = Field(
        50, ge=1, description="labelled account-weeks needed before a retrain verdict"
    )
    min_backtest_churners: int = Field(
        10,
        ge=1,
        description="churners among them needed before the recalls and the ROC AUC count "
        "in the verdict (0 of 3 churners caught says little)",
    )
    min_red_recall: float = Field(0.3, ge=0, le=1, description="share of churners flagged red")
    min_red_yellow_recall: float = Field(
        0.5, ge=0, le=1, description="share of churners flagged red or yellow"
    )
    min_recall_of_ceiling: float = Field(
        0.6,
        ge=0,
        le=1,
        description="budget lights: a recall floor asks at most this share of the recall the "
        "budget allows (n lit / n churners, week by week); more churners than the budget "
        "holds is no reason to retrain",
    )
    min_roc_auc: float = Field(0.65, ge=0, le=1, description="ranking quality of churn scores")
    max_ece: float = Field(
        0.1,
        gt=0,
        le=1,
        description="calibration error of churn probabilities (an ECE within what a "
        "perfectly calibrated model shows by chance on the account-weeks passes)",
    )
    min_interval_hit_rate: float = Field(
        0.6, ge=0, le=1, description="share of next orders inside the p10-p90 window (80% nominal)"
    )

    @model_validator(mode="after")
    def _ordered(self) -> MonitoringConfig:
        if self.psi_warn > self.psi_alert:
            raise ValueError("psi_warn must not exceed psi_alert")
        return self


class Config(_Strict):
    seed: int = 42
    data: DataConfig = DataConfig()  # type: ignore[call-arg]
    paths: PathsConfig = PathsConfig()
    labels: LabelsConfig = LabelsConfig()
    features: FeaturesConfig = FeaturesConfig()
    portfolio: PortfolioConfig = PortfolioConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    health: HealthConfig = HealthConfig()
    scorecard: ScorecardConfig = ScorecardConfig()
    mlflow: MlflowConfig = MlflowConfig()
    tuning: TuningConfig = TuningConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    scoring: ScoringConfig = ScoringConfig()
    report: ReportConfig = ReportConfig()
    delivery: DeliveryConfig = DeliveryConfig()

    @model_validator(mode="after")
    def _purge_covers_horizon(self) -> Config:
        purge = self.tuning.purge_days
        if purge is not None and purge < self.labels.horizon_days:
            raise ValueError(
                f"tuning.purge_days ({purge}) is shorter than labels.horizon_days "
                f"({self.labels.horizon_days}): training and test label windows of the same "
                "accounts would overlap and the reported quality would be overstated; remove "
                "purge_days (short histories get fewer test origins instead, or origins "
                "that hold accounts out)"
            )
        return self

    def hash(self) -> str:
        """Stable hash of the resolved configuration (recorded with every output)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def close_matches(word: str, choices: Iterable[str]) -> list[str]:
    """The choices that look like a typo of ``word`` (case ignored), best first."""
    by_fold = {c.casefold(): c for c in choices}
    found = difflib.get_close_matches(word.casefold(), list(by_fold), n=3, cutoff=0.75)
    return [by_fold[f] for f in found]


def _typo_hint(err: Mapping[str, Any]) -> str:
    """' (did you mean 'delimiter'?)' for an unknown key next to a known one."""
    if err.get("type") != "extra_forbidden" or not err.get("loc"):
        return ""
    *parent, key = err["loc"]
    model: Any = Config
    for part in parent:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            field = next(
                (f for f in getattr(model, "model_fields", {}).values() if f.alias == part), None
            )
        if field is None or not isinstance(field.annotation, type):
            return ""
        model = field.annotation
    fields = getattr(model, "model_fields", {})
    names = [f.alias or n for n, f in fields.items()]
    found = close_matches(str(key), names)
    return f" (did you mean '{found[0]}'?)" if found else ""


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate a YAML config; ``None`` uses the default file when present."""
    p = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if not p.exists():
        if path is None:
            return Config()
        raise ConfigError(f"Config file '{p}' does not exist.", "pass an existing --config path.")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(
            f"Config file '{p}' is not valid YAML: {e}", "fix the YAML syntax."
        ) from e
    if not isinstance(raw, dict):
        raise ConfigError(f"Config file '{p}' must be a mapping.", "use key: value pairs.")
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        lines = "; ".join(
            f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}{_typo_hint(err)}"
            for err in e.errors()
        )
        raise ConfigError(
            f"Config file '{p}' is invalid: {lines}.",
            "correct or remove these keys (see configs/ka_ml.yaml for every key).",
        ) from e
