"""Typed configuration, validated once at the entry point.

``configs/ka_ml.yaml`` is parsed into :class:`Config`; unknown keys are rejected so a
typo never silently falls back to a default. Every business number (horizon, windows,
thresholds, tiers, the dependency alert) lives here, never in the code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ka_ml.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("configs/ka_ml.yaml")

TABLES = ("orders", "accounts", "usage", "tickets", "surveys", "contracts")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReadOptions(_Strict):
    """How delimited text files are parsed (set these for raw CRM exports)."""

    delimiter: str | None = Field(None, description="None = sniff ',' ';' '\\t' '|'")
    encoding: str = Field("utf-8", description="e.g. utf-8, utf-8-sig, latin-1")
    decimal: str = Field(".", description="'.' or ','")
    date_format: str | None = Field(None, description="strftime format; None = ISO/auto")
    dayfirst: bool = False


class DataConfig(_Strict):
    source: str | None = Field(None, description="folder or database file; None = demo data")
    demo_dir: Path = Path("data/demo")
    demo_accounts: int = Field(2000, ge=10)
    demo_years: float = Field(3.0, gt=0.5)
    demo_seed: int = 42
    tables: dict[str, str] = Field(
        default_factory=dict, description="canonical table -> name in the source"
    )
    columns: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="table -> {canonical column: source column}"
    )
    read: ReadOptions = ReadOptions()  # type: ignore[call-arg]
    future_rows: Literal["error", "drop"] = Field(
        "drop", description="rows dated on/after the as-of: drop with a warning, or error"
    )

    @field_validator("tables", "columns")
    @classmethod
    def _known_tables(cls, v: dict) -> dict:
        bad = sorted(set(v) - set(TABLES))
        if bad:
            raise ValueError(f"unknown table(s) {bad}; allowed: {list(TABLES)}")
        return v


class PathsConfig(_Strict):
    outputs: Path = Path("outputs")
    models: Path = Path("models")


class LabelsConfig(_Strict):
    horizon_days: int = Field(90, ge=7)
    churn_definition: Literal["auto", "no_order", "contract", "revenue_drop"] = "auto"
    revenue_drop_fraction: float = Field(
        0.2, gt=0, lt=1, description="revenue_drop: churn when window revenue < fraction x prior"
    )
    purchase_windows: list[int] = Field(default_factory=lambda: [30, 60, 90])
    at_risk_only: bool = Field(
        True,
        description="train and evaluate churn only on accounts still active at the snapshot "
        "(a running contract, or an order within the horizon before it); an account already "
        "inactive cannot churn again. False = every eligible account (e.g. the CDNOW setting).",
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
    snapshot_every_days: int = Field(30, ge=7, description="cadence of training snapshots")
    max_snapshots: int = Field(24, ge=1)
    chunk_accounts: int = Field(200_000, ge=1000, description="accounts per feature chunk")


class PortfolioConfig(_Strict):
    revenue_days: int = Field(365, description="revenue share is measured over this window")
    abc_method: Literal["share", "pareto"] = "pareto"
    abc_share_a: float = Field(0.30, description="share rule: A when share > this")
    abc_share_b: float = Field(0.10, description="share rule: B when share >= this")
    pareto_a: float = Field(0.80, description="pareto rule: A = accounts making the top 80%")
    pareto_b: float = Field(0.95, description="pareto rule: B = up to 95% cumulative")
    concentration: Literal["industry_share", "industry_hhi"] = "industry_share"
    dependency_alert: float = 0.4


class HealthConfig(_Strict):
    red_threshold: float = Field(0.5, gt=0, lt=1)
    yellow_threshold: float = Field(0.25, gt=0, lt=1)
    hysteresis: float = Field(
        0.05, ge=0, lt=0.5, description="leave a light only when past its threshold by this"
    )
    overdue_raises: bool = Field(True, description="past the p90 next-order date: at least yellow")
    overdue_ratio_fallback: float = Field(
        2.0, gt=1, description="first run (no forecast history): overdue past this x typical gap"
    )
    critical_complaint_raises: bool = Field(
        True, description="an open critical complaint: at least yellow"
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
        return self


class MlflowConfig(_Strict):
    tracking_uri: str | None = Field(
        None, description="None = sqlite:///<paths.models>/mlflow.db (MLFLOW_TRACKING_URI wins)"
    )
    experiment: str = "ka_ml"
    churn_model_name: str = "ka_ml_churn"
    timing_model_name: str = "ka_ml_timing"
    promotion_margin: float = Field(0.0, ge=0, description="ROC AUC gain needed to replace")
    calibration_ceiling: float = Field(0.05, gt=0, description="max ECE for promotion")


class TuningConfig(_Strict):
    n_trials: int = Field(12, ge=1)
    timeout_seconds: float = Field(90, gt=0)
    n_folds: int = Field(2, ge=1)
    test_snapshots: int = Field(1, ge=1)
    calibration_snapshots: int = Field(2, ge=1)
    purge_days: int | None = Field(
        None,
        ge=0,
        description="gap between folds; None = the churn horizon (no label window overlaps "
        "the next fold). Lower it only for short histories.",
    )


class Config(_Strict):
    seed: int = 42
    data: DataConfig = DataConfig()  # type: ignore[call-arg]
    paths: PathsConfig = PathsConfig()
    labels: LabelsConfig = LabelsConfig()
    features: FeaturesConfig = FeaturesConfig()
    portfolio: PortfolioConfig = PortfolioConfig()
    health: HealthConfig = HealthConfig()
    mlflow: MlflowConfig = MlflowConfig()
    tuning: TuningConfig = TuningConfig()

    def hash(self) -> str:
        """Stable hash of the resolved configuration (recorded with every output)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


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
            f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(
            f"Config file '{p}' is invalid: {lines}.",
            "correct or remove these keys (see configs/ka_ml.yaml for every key).",
        ) from e
