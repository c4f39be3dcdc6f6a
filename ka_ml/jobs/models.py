"""`ka-ml models` and `ka-ml promote`: the model registry as a user sees it.

Listing the registered versions of both models (aliases, metrics) and moving the champion by
hand; the registry itself is :mod:`ka_ml.modeling.registry`.
"""

from __future__ import annotations

from ka_ml.config import Config
from ka_ml.modeling import registry


def list_models(cfg: Config) -> list[registry.VersionInfo]:
    """Every registered version of the configured churn and timing models."""
    return registry.list_versions(registry.connect(cfg), cfg)


def promote(cfg: Config, name: str, version: str, reason: str = "") -> registry.ManualPromotion:
    """Make ``version`` of ``name`` the champion by hand (logged in MLflow)."""
    return registry.promote_by_hand(registry.connect(cfg), cfg, name, version, reason=reason)
