"""The data contract (contract.md section 1) as code: tables, columns and their kinds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ka_ml.config import SEVERITY_LEVELS

Kind = Literal["id", "date", "float", "str", "bool"]

# NPS and renewal intent are read on this scale: the loader refuses scores outside it,
# and the reasons and the scorecard say a score out of its top ("renewal intent 3/10")
SURVEY_SCALE = (0.0, 10.0)


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = False


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    required: bool = False

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def kind(self, column: str) -> Kind | None:
        for c in self.columns:
            if c.name == column:
                return c.kind
        return None


SCHEMA: dict[str, TableSpec] = {
    "orders": TableSpec(
        "orders",
        (
            Column("account_id", "id", True),
            Column("order_date", "date", True),
            Column("amount", "float", True),
            Column("order_id", "id"),
            Column("product", "str"),
            Column("quantity", "float"),
        ),
        required=True,
    ),
    "accounts": TableSpec(
        "accounts",
        (
            Column("account_id", "id", True),
            Column("name", "str"),
            Column("industry", "str"),
            Column("region", "str"),
            Column("created_at", "date"),
            Column("owner", "str"),
            Column("owner_email", "str"),  # where the owner's digest goes (delivery)
            Column("merged_into", "id"),  # the account it was merged into (data.merges)
        ),
    ),
    "usage": TableSpec(
        "usage",
        (
            Column("account_id", "id", True),
            Column("date", "date", True),
            Column("count", "float", True),
            Column("event_type", "str"),
        ),
    ),
    "tickets": TableSpec(
        "tickets",
        (
            Column("account_id", "id", True),
            Column("opened_at", "date", True),
            Column("severity", "str"),
            Column("is_complaint", "bool"),
            Column("resolved_at", "date"),
        ),
    ),
    "surveys": TableSpec(
        "surveys",
        (
            Column("account_id", "id", True),
            Column("date", "date", True),
            Column("score", "float", True),
            Column("kind", "str"),
        ),
    ),
    "contracts": TableSpec(
        "contracts",
        (
            Column("account_id", "id", True),
            Column("start_date", "date", True),
            Column("end_date", "date", True),
            Column("value", "float"),
            Column("renewed", "bool"),
            Column("signed_date", "date"),
        ),
    ),
}

# The date that places a row in time (for the half-open as-of rule).
EVENT_DATE: dict[str, str] = {
    "orders": "order_date",
    "usage": "date",
    "tickets": "opened_at",
    "surveys": "date",
    "contracts": "start_date",
    "accounts": "created_at",
}

# A contract row with this date is known from it instead of its EVENT_DATE: a renewal signed
# before the as-of that starts after it (see ka_ml.data.history.known_dates).
SIGNED_DATE = "signed_date"

SEVERITIES = SEVERITY_LEVELS
